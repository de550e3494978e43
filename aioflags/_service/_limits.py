"""What the local flag service accepts: every bound of it in one value, ``Limits``.

``FlagServer(limits=...)`` (and so ``aioflags serve``) and ``OFREPApp(limits=...)``
take one; every part of the service reads its bounds from it. And the one
reader of a request body within them, :func:`read_body`, that the SDK
endpoints, the console and OFREP share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

import anyio

if TYPE_CHECKING:
    from starlette.types import Receive

__all__ = ["BodyTooLarge", "Limits", "read_body"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Every bound of the local flag service (``FlagServer``, ``aioflags serve``, ``OFREPApp``).

    The defaults are what the service has always used; a test may lower one
    (``Limits(body_timeout=0.5)``) to see what happens past it quickly.

    Attributes:
        max_body: the largest request body, in bytes, but for analytics
            events (an SDK's, the console's, OFREP's requests): a larger one
            is refused (413; OFREP: 400) before it is read, if its
            ``Content-Length`` says so, else as soon as it passes the bound.
        max_events_body: the largest analytics events post, in bytes, as sent
            (compressed or not).
        max_events_decompressed: the largest analytics events post once
            inflated, in bytes: a gzip bomb is refused, never inflated whole.
        body_timeout: seconds a client has to send a whole request body (a
            trickle is refused: 408; OFREP: 400).
        idle_timeout: seconds a connection may stay open sending nothing
            (Hypercorn's keep-alive), and the service's relay's the same.
        max_head: the largest request line and headers, in bytes.
        backlog: connections waiting to be accepted (the listen backlog).
        stream_queue_bytes: bytes of changes a flag stream may have waiting
            for a client that reads slowly; past it, the client is sent a
            fresh full transfer when it catches up, never an unbounded queue.
        ofrep_keepalive: seconds between the OFREP change stream's comment
            lines (proxies keep a quiet stream open).

    Added in version 0.2.0.
    """

    max_body: int = 64 * 1024
    max_events_body: int = 8 * 1024 * 1024
    max_events_decompressed: int = 32 * 1024 * 1024
    body_timeout: float = 30.0
    idle_timeout: float = 5.0
    max_head: int = 16 * 1024
    backlog: int = 1024
    stream_queue_bytes: int = 4 * 1024 * 1024
    ofrep_keepalive: float = 15.0

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Limits.{name} must be a number, got {value!r}")
            if not value > 0:  # (NaN too)
                raise ValueError(f"Limits.{name} must be more than 0, got {value!r}")


class BodyTooLarge(Exception):
    """A request body passed its bound (:func:`read_body`)."""


async def read_body(receive: Receive, cap: int) -> bytes:
    """A request's whole body, within ``cap`` bytes (its caller bounds the time).

    Raises:
        BodyTooLarge: it passed ``cap`` (refused as soon as it did).
        anyio.EndOfStream: the client went away first.
    """
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise anyio.EndOfStream
        body += message.get("body", b"")
        if len(body) > cap:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return bytes(body)
