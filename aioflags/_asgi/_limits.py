"""What the local flag service accepts: every bound of it in one value, ``Limits``.

``FlagServer(limits=...)`` (and so ``aioflags serve``) and ``OFREPApp(limits=...)``
take one; every part of the service reads its bounds from it. Request
bodies are held within them by one ASGI middleware, :class:`BodyLimits`,
around the whole service and around a standalone ``OFREPApp``: a route
added later inherits every bound. It needs no web framework (``OFREPApp``
needs none).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

import anyio

from ._http import respond

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BodyLimits",
    "BodyRefused",
    "HeadLimit",
    "Limits",
    "drop_body",
    "ended_by_disconnect",
    "header_number",
    "read_body",
    "until_disconnect",
]


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
            (Hypercorn's keep-alive).
        max_head: the largest request line and headers, in bytes (a larger
            one is refused: 431).
        backlog: connections waiting to be accepted (the listen backlog, at
            most 65535).
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
        if self.backlog > _MAX_BACKLOG:  # (listen() takes a C int; kernels cap it)
            raise ValueError(
                f"Limits.backlog must be at most {_MAX_BACKLOG}, got {self.backlog!r}"
            )


class BodyRefused(Exception):
    """A request body past a bound of :class:`BodyLimits`: too large or too slow.

    Raised by the ``receive`` that :class:`BodyLimits` hands its app, where
    the app reads the body; an app that answers in its own words (OFREP)
    catches it, any other lets it go and :class:`BodyLimits` answers.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        #: ``413`` (too large) or ``408`` (too slow).
        self.status = status
        self.message = message


#: The largest listen backlog taken (the kernel caps it lower anyway).
_MAX_BACKLOG: Final = 65535
#: Seconds a client may go on sending a body too large before it is answered
#: (what it sends meanwhile is dropped): it then reads the answer, not a reset.
LINGER: Final = 2.0
#: ...and it is answered at once when it has sent nothing for this long (a
#: client that waits to be told, or has sent all it will).
LINGER_QUIET: Final = 0.25
#: A numeric header's digits past this many are not read: 10**18 is more
#: than any real length or version (``int()`` itself refuses 4,300 digits).
_MAX_DIGITS: Final = 18


def header_number(value: str) -> int | None:
    """A numeric header's value (``Content-Length``, ``Last-Event-ID``), or None.

    ASCII digits only: ``str.isdigit()`` alone also accepts ``²`` and other
    digits ``int()`` refuses. More than 18 digits (past leading zeros) read
    as 10**18, more than anything real: ``int()`` never sees them (it refuses
    more than 4,300).
    """
    if not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0")
    return int(digits or "0") if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


class BodyLimits:
    """ASGI middleware: every request body within :class:`Limits` (size and time).

    The app reads the body as it would (``await request.body()``, or its
    own ``receive`` loop); the ``receive`` it is given refuses a body whose
    ``Content-Length`` is past the cap before reading any of it, one that
    passes the cap as soon as it does, and one still arriving
    ``limits.body_timeout`` seconds after the request began, each by
    raising :class:`BodyRefused`. A refusal the app lets go is answered
    here: ``413`` or ``408``, ``{"message": ...}``, and the connection
    closed. Before a body too large is refused, what the client still sends
    of it is read and dropped for up to :data:`LINGER` seconds (never kept;
    less once it goes quiet for :data:`LINGER_QUIET`),
    so that a client that sends its whole body before it reads (most do)
    reads the answer, not a reset. An answer that begins before its
    request's body was read whole (a refusal on its head) says
    ``Connection: close`` over HTTP/1, for the connection ends with it.
    Once a response has begun, a refusal ends
    the request as the client's disconnect would. Once the body is complete, ``receive`` is
    the server's own (a stream waits for the disconnect as long as it likes).

    ``larger``: paths whose bodies may be larger than ``limits.max_body``
    (the analytics event posts), and their caps. Every other path, a route
    mounted later included, has ``max_body``.
    """

    def __init__(
        self, app: ASGIApp, limits: Limits, *, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self._limits = limits
        self._larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self._limits
        cap = self._larger.get(scope["path"], limits.max_body)
        declared = None
        chunked = False
        for name, value in scope["headers"]:
            if name.lower() == b"content-length":
                declared = header_number(value.decode("latin-1"))
            elif name.lower() == b"transfer-encoding":
                chunked = True
        # Over HTTP/1 an answer sent before its request's body was read
        # ends the connection (the server cannot read on past the body).
        ends_unread = scope.get("http_version") != "2" and (chunked or bool(declared))
        deadline = anyio.current_time() + limits.body_timeout
        size = 0
        complete = started = refused = False

        async def refuse(status: int, message: str) -> Message:
            nonlocal refused
            refused = True
            if started:  # (too late to answer: the request ends)
                return {"type": "http.disconnect"}
            if status == 413:  # read and drop the rest for a while (see LINGER)
                with anyio.move_on_after(LINGER):
                    while True:
                        with anyio.move_on_after(LINGER_QUIET) as quiet:
                            more = (await receive()).get("more_body", False)
                        if quiet.cancelled_caught or not more:
                            break
            raise BodyRefused(status, message)

        async def bounded() -> Message:
            nonlocal size, complete
            if complete or refused:
                return await receive()
            if declared is not None and declared > cap:
                return await refuse(413, f"the body is larger than {cap} bytes")
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                message = await receive()
                if message["type"] != "http.request":
                    return message
                size += len(message.get("body", b""))
                if size <= cap:
                    complete = not message.get("more_body", False)
                    return message
            if (
                size > cap
            ):  # (refused past the deadline's scope: its drain may outlast it)
                return await refuse(413, f"the body is larger than {cap} bytes")
            slow = f"the body took over {limits.body_timeout:g} s to arrive"
            return await refuse(408, slow)

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                if ends_unread and not complete:
                    # Say so, or a client puts the connection back in its
                    # pool and its next request meets the close.
                    said = [v for n, v in headers if n.lower() == b"connection"]
                    if b"close" not in said:
                        headers.append((b"connection", b"close"))
                        message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, bounded, watched)
        except BodyRefused as refusal:
            if started:
                raise
            await _refuse(send, refusal.status, refusal.message)


async def _refuse(send: Send, status: int, message: str) -> None:
    """A refusal in the service's words: ``{"message": ...}``, the connection closed."""
    body = json.dumps({"message": message}).encode()
    await respond(send, status, [(b"connection", b"close")], body)


class HeadLimit:
    """ASGI middleware: a request whose line and headers pass ``limits.max_head`` bytes is a 431.

    (Hypercorn bounds a head while it arrives; one that arrives whole in a
    read, up to 64 KiB, is bounded here.) Its body is dropped first, within
    the :class:`BodyLimits` around it: answered before its body, a client
    that sends it whole reads a reset, and Hypercorn's HTTP/2 fails the
    whole connection (pgjones/hypercorn#329).
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self._max = limits.max_head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = len(scope.get("raw_path") or b"") + len(scope["query_string"])
            head = target + sum(len(k) + len(v) + 4 for k, v in scope["headers"])
            if head > self._max:
                why = f"the request line and headers are over {self._max} bytes"
                await drop_body(receive)
                await _refuse(send, 431, why)
                return
        await self.app(scope, receive, send)


async def read_body(receive: Receive) -> bytes:
    """A request's whole body (bounded by the :class:`BodyLimits` around its app).

    Raises:
        BodyRefused: past a bound of the :class:`BodyLimits` around the app.
        anyio.EndOfStream: the client went away first.
    """
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise anyio.EndOfStream
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def drop_body(receive: Receive) -> None:
    """Read a request's body to its end (or the client's leaving), keeping none of it."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return


async def until_disconnect(receive: Receive) -> None:
    """Wait until the client goes away (reading, and dropping, what it sends)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@contextlib.asynccontextmanager
async def ended_by_disconnect(receive: Receive) -> AsyncIterator[None]:
    """A block (a stream's) that ends as soon as its client goes away."""
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            await until_disconnect(receive)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        yield
        tg.cancel_scope.cancel()
