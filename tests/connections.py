# ruff: noqa: ASYNC109 - the timeouts are httpcore's own interface, passed on
"""Counting the process's HTTP connections on the client side (httpcore's network backend).

ASGI has no event for a connection opening or closing, so the flag server
cannot count them; the tests that ask whether a client closed every socket
count them where they are made instead. :func:`counting` gives every
httpcore connection pool made meanwhile a network backend that counts the
streams it opens and closes (httpx builds its pools without one: the
backend is the pool's own, documented parameter).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import anyio
import httpcore
import pytest


class Connections:
    """TCP connections opened and closed by the process's HTTP clients."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        self._changed: anyio.Event | None = None

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_until(self, predicate: Callable[[Connections], bool]) -> None:
        """Wait until ``predicate(self)`` holds (re-checked at each open and close)."""
        while not predicate(self):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    async def all_closed(self) -> None:
        """Wait until every connection opened so far is closed (30 s at most: a guard)."""
        with anyio.fail_after(30):  # (a net a loaded machine cannot beat, issue 97)
            await self.wait_until(lambda c: c.closed == c.opened)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, count: Connections) -> None:
        self._inner = inner
        self._count = count
        self._open = True

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._open:
                self._open = False
                self._count.closed += 1
                self._count._notify()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self._inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return self

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, count: Connections) -> None:
        self._count = count

    @staticmethod
    def _inner() -> httpcore.AsyncNetworkBackend:
        return httpcore.AnyIOBackend()  # (anyio runs on trio too)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner().connect_tcp(
            host, port, timeout, local_address, socket_options
        )
        self._count.opened += 1
        self._count._notify()
        return _Stream(stream, self._count)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner().connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner().sleep(seconds)


@contextlib.contextmanager
def counting() -> Iterator[Connections]:
    """Count the connections of every httpcore pool made within."""
    count = Connections()
    with pytest.MonkeyPatch.context() as patch:
        made = httpcore.AsyncConnectionPool.__init__

        def init(self: httpcore.AsyncConnectionPool, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("network_backend", _Backend(count))
            made(self, *args, **kwargs)

        patch.setattr(httpcore.AsyncConnectionPool, "__init__", init)
        yield count
