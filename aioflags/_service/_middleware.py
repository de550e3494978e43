"""The flag service's request pipeline: one ASGI middleware per concern.

``_app`` stacks them around its routes, in the order a request meets them:

1. :class:`~aioflags._asgi._limits.BodyLimits`: the body within its size and time (it
   reads nothing itself: the ``receive`` every layer below is given is
   bounded);
2. :class:`~aioflags._asgi._limits.HeadLimit`: a request line and headers past
   ``max_head`` are a ``431`` (its body dropped first; not recorded);
3. :class:`Recording`: every request is recorded (``FlagServer.requests``),
   once its body is read or its answer begins, refused ones too;
4. :class:`Refusal`: a request refused on its head alone (DNS rebinding, a
   web page's event post; the console adds its own rules on its mount):
   ``403`` and why, nothing of its body read (but over HTTP/2, see there);
5. :class:`Faults`: the endpoint's injected fault, if any (delay, hang,
   status, body...; a test's doing).

Each is a plain ASGI middleware over Starlette's request types; a route
added later, or an app mounted later, passes through all five.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.responses import JSONResponse, Response

from aioflags._asgi._limits import drop_body, read_body, until_disconnect

from ._recorder import RecordedRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ._faults import Fault, FaultPlan
    from ._recorder import Recorder

__all__ = [
    "FAULT",
    "DefaultHeaders",
    "Faults",
    "Recording",
    "Refusal",
]

logger = logging.getLogger("aioflags.testing")

#: The scope key under which :class:`Faults` hands a route the fault it is
#: to apply itself (headers, a body, a stream's events).
FAULT: Final = "aioflags.fault"


class Recording:
    """Record every request: its method, path, query, headers and (whole) body.

    A request is recorded once: when its body has been read to its end, or
    when its answer begins, or when it is over, whichever comes first; a
    body that was not read whole (refused, or not read at all) is recorded
    empty.
    """

    def __init__(self, app: ASGIApp, recorder: Recorder) -> None:
        self.app = app
        self._recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        complete = done = False

        def record() -> None:
            nonlocal done
            if done:
                return
            done = True
            logger.debug("FlagServer: %s %s", scope["method"], scope["path"])
            self._recorder.record(
                RecordedRequest(
                    method=scope["method"],
                    path=scope["path"],
                    query=dict(QueryParams(scope["query_string"])),
                    headers=dict(Headers(scope=scope)),
                    body=bytes(body) if complete else b"",
                )
            )

        async def receiving() -> Message:
            nonlocal complete
            message = await receive()
            if not done and message["type"] == "http.request":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    complete = True
                    record()
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                record()
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        finally:
            record()


class Refusal:
    """Refuse a request on its head alone: ``403``, ``{"message": why}``.

    ``why(method, path, headers)`` is the reason to refuse it, or None to
    serve it. Nothing of a refused request's body is read.
    """

    def __init__(
        self, app: ASGIApp, why: Callable[[str, str, Headers], str | None]
    ) -> None:
        self.app = app
        self._why = why

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            why = self._why(scope["method"], scope["path"], Headers(scope=scope))
            if why is not None:
                if scope.get("http_version") == "2":
                    # Hypercorn's HTTP/2 fails the whole connection when an
                    # answer ends a stream whose body is still coming
                    # (pgjones/hypercorn#329): read it (bounded) first.
                    await drop_body(receive)
                refused = JSONResponse({"message": why}, 403)
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


class DefaultHeaders:
    """Every response to a path ``under`` a prefix carries ``headers`` (those it does not set).

    The console's security policy: nothing from another host, no framing,
    no sniffing, no caching; on its pages, its API, its refusals and its
    errors alike.
    """

    def __init__(self, app: ASGIApp, headers: Mapping[str, str], under: str) -> None:
        self.app = app
        self._headers = headers
        self._under = under

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path == self._under or path.startswith(f"{self._under}/")
        ):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _with_headers(send, self._headers, keep=True))


@dataclass(frozen=True, slots=True)
class Faults:
    """Apply the fault a test planned for the endpoint (``FlagServer.fail``, ``script``).

    The request's body is read first (it is recorded as sent). Then a
    ``delay`` waits, a ``hang`` never answers (until the client goes), a
    ``status`` is answered here (``dated`` paths with a ``Date`` header:
    the event endpoints); otherwise the route answers, with the fault's
    ``headers`` added to its answer, and the fault under the scope key
    :data:`FAULT` for what only the route can apply (a body, a stream's
    events).
    """

    app: ASGIApp
    plan: FaultPlan
    date: Callable[[], str]
    dated: Collection[str] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self.plan.next_for(scope["path"]) if scope["type"] == "http" else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        logger.debug(
            "FlagServer: %s %s meets %r", scope["method"], scope["path"], fault
        )
        try:
            body = await read_body(receive)
        except anyio.EndOfStream:
            return  # the client went away before sending its body
        if fault.delay:
            await anyio.sleep(fault.delay)
        if fault.hang:
            await until_disconnect(receive)
            return
        if fault.status is not None:
            await self._answer(scope["path"], fault)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        sending = _with_headers(send, fault.headers, keep=False)
        await self.app({**scope, FAULT: fault}, replay, sending)

    def _answer(self, path: str, fault: Fault) -> Response:
        assert fault.status is not None
        body = (
            fault.body
            if fault.body is not None
            else f"fault injected: HTTP {fault.status}".encode()
        )
        headers = dict(fault.headers)
        if path in self.dated:
            headers = {"date": self.date(), **headers}
        return Response(
            body, status_code=fault.status, media_type="text/plain", headers=headers
        )


def _with_headers(send: Send, headers: Mapping[str, str], *, keep: bool) -> Send:
    """``send``, adding ``headers`` to the response's start.

    ``keep``: a header the response sets itself is kept (else replaced).
    """

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            given = MutableHeaders(scope=message)
            for name, value in headers.items():
                if keep:
                    given.setdefault(name, value)
                else:
                    given[name] = value
        await send(message)

    return sending
