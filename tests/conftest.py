"""Shared fixtures for aioflags' own tests."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from tests import sources
from tests.redis_server import RedisServer, executable

# No test asserts a wall-clock time, Hypothesis' per-example deadline (200 ms)
# included: on a loaded CI machine one example of the bucketing test took
# 650 ms. Profiles apply to every @given that does not set its own deadline.
settings.register_profile("aioflags", deadline=None)
settings.load_profile("aioflags")

#: Hosts a test may connect to: the loopback interface only.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@pytest.fixture(autouse=True)
def _close_scripted_sources() -> Iterator[None]:
    yield
    while sources.OPEN:
        sources.OPEN.pop().close()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh redis-server on a free 127.0.0.1 port, stopped by PID afterwards."""
    server = RedisServer(executable(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _host(address: object) -> str | None:
    """The host of an AF_INET/AF_INET6 address tuple (None for Unix sockets)."""
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    return None


@pytest.fixture(autouse=True)
def loopback_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail any test that resolves or connects to a host other than 127.0.0.1.

    Analytics events are on by default and go to events.launchdarkly.com: a
    test that forgets to point ``events_uri`` at a FlagServer (or to turn
    events off) must fail here, not post to LaunchDarkly. The attempt itself
    fails at once (an ``OSError``), and the test is failed at teardown even if
    the code under test swallowed that error (as event delivery does).
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(what: str) -> OSError:
        attempts.append(what)
        return OSError(
            errno.ENETUNREACH, f"tests may only connect to 127.0.0.1: {what}"
        )

    def connect(self: socket.socket, address: Any) -> None:
        host = _host(address)
        if host is not None and host not in LOOPBACK:
            raise refuse(f"connect to {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        host = _host(address)
        if host is not None and host not in LOOPBACK:
            refuse(f"connect to {address!r}")
            return errno.ENETUNREACH
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in LOOPBACK:
            attempts.append(f"resolve {name!r}")
            raise socket.gaierror(
                socket.EAI_NONAME, f"tests may only connect to 127.0.0.1: {name!r}"
            )
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    if attempts:
        pytest.fail(
            "this test tried to reach a host other than 127.0.0.1 (point "
            "events_uri at a FlagServer or turn events off): " + "; ".join(attempts),
            pytrace=False,
        )
