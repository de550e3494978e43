"""The flag service as an ASGI application (Starlette routing), served by ``_hosting``.

Every request goes through one pipeline before its route:

1. refusal on its head alone (DNS rebinding, a web page's event post, the
   console's Host/Origin/token rules): nothing of a refused body is read;
2. its body read up to the endpoint's cap (``413`` past it, before anything is
   kept) and within a time bound (``408``);
3. recorded (the history is bounded by :class:`FlagServer`'s ``keep`` and
   ``keep_bytes``);
4. the endpoint's injected fault, if any (delay, hang, status, body...);
5. its route: the FDv2/FDv1 polls and streams, the event endpoints, the
   console under ``/ui``, JSON ``404`` otherwise.

A handler that fails answers ``500`` (Hypercorn's own isolation), never
more than that one request; a stream whose client stops reading collapses
its queue to one full payload past a few MiB (see ``_outbox``).
"""

from __future__ import annotations

import email.utils
import json
import logging
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, urlsplit

import anyio
from starlette.responses import Response
from starlette.routing import Route, Router

from aioflags._core._clock import wall_ms

from . import _console as console
from ._host import RequestInfo
from ._limits import BodyTooLarge, read_body
from ._ofrep import OFREPHandler, header_number
from ._paths import (
    EVENTS_BULK,
    EVENTS_DIAGNOSTIC,
    FDV1_POLL,
    FDV1_STREAM,
    FDV2_POLL,
    FDV2_STREAM,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request
    from starlette.types import Message, Receive, Scope, Send

    from ._host import Fault, Host

__all__ = ["ServiceApp"]

logger = logging.getLogger("aioflags.testing")

#: The scope key under which the pipeline hands its findings to the route.
_INFO: Final = "aioflags.request"
_EVENT_PATHS: Final = (EVENTS_BULK, EVENTS_DIAGNOSTIC)
_OFREP: Final = "/ofrep/"


def _json(status: int, data: object, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _console_response(
    reply: console.Reply, extra: list[tuple[bytes, bytes]]
) -> Response:
    headers = {
        k.decode("latin-1"): v.decode("latin-1") for k, v in [*reply.headers, *extra]
    }
    return Response(
        reply.body,
        status_code=reply.status,
        media_type=reply.content_type.decode(),
        headers=headers,
    )


async def until_disconnect(receive: Receive) -> None:
    """Wait until the client goes away (the request body is already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the already-read body once, then the client's own."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class ServiceApp:
    """The ASGI application of one ``FlagServer`` (its :class:`~._host.Host`)."""

    def __init__(self, server: Host) -> None:
        self._server = server
        self._ofrep = OFREPHandler(
            server._ofrep, expose="all", cors=True, limits=server.limits
        )
        self._router = Router(
            routes=[
                Route(FDV2_POLL, self._poll, methods=["GET"]),
                Route(FDV1_POLL, self._poll, methods=["GET"]),
                Route(FDV2_STREAM, _Raw(self._stream_endpoint)),
                Route(FDV1_STREAM, _Raw(self._stream_endpoint)),
                Route(EVENTS_BULK, self._events, methods=["POST"]),
                Route(EVENTS_DIAGNOSTIC, self._events, methods=["POST"]),
                Route("/ofrep/{rest:path}", _Raw(self._ofrep_endpoint)),
                Route(console.PREFIX, _Raw(self._console_endpoint)),
                Route(f"{console.PREFIX}/{{rest:path}}", _Raw(self._console_endpoint)),
            ],
            default=self._not_found,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            with self._server._handling():
                await self._pipeline(scope, receive, send)

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _pipeline(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = self._server
        path: str = scope["path"]
        if not path.startswith("/"):  # absolute-form (a proxy's request line)
            try:
                path = urlsplit(path).path or "/"
            except ValueError:
                path = "/"
            scope = {**scope, "path": path}
        method: str = scope["method"]
        # Latin-1 is HTTP's own: any byte decodes (Hypercorn has checked the rest).
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope["headers"]
        }
        query = {
            k: v[0]
            for k, v in parse_qs(
                scope["query_string"].decode("latin-1"), keep_blank_values=True
            ).items()
        }
        client = scope.get("client")
        request_id, connection = server._request_started(client[1] if client else None)
        is_console = path == console.PREFIX or path.startswith(f"{console.PREFIX}/")
        refused: Response | None = None
        if is_console:
            reply = server._console.refusal(method, headers)
            refused = None if reply is None else _console_response(reply, [])
        elif server._refused(path, method, headers):
            refused = _json(403, {"message": "refused"})
        if refused is not None:
            server._record(method, path, query, headers, connection, b"")
            await refused(scope, receive, send)
            return
        if path.startswith(_OFREP):
            # OFREP bounds its own bodies and answers in its own words (400
            # with an OFREP failure body and CORS headers a page can read).
            server._record(method, path, query, headers, connection, b"")
            info = RequestInfo(request_id, headers, query, b"", None)
            await self._router({**scope, _INFO: info}, receive, send)
            return
        limits = server.limits
        cap = limits.max_events_body if path in _EVENT_PATHS else limits.max_body
        declared = header_number(headers.get("content-length", ""))
        if declared is not None and declared > cap:
            server._record(method, path, query, headers, connection, b"")
            await self._too_large(cap)(scope, receive, send)
            return
        try:
            with anyio.fail_after(limits.body_timeout):
                body = await read_body(receive, cap)
        except BodyTooLarge:
            server._record(method, path, query, headers, connection, b"")
            await self._too_large(cap)(scope, receive, send)
            return
        except TimeoutError:
            server._record(method, path, query, headers, connection, b"")
            await _json(
                408,
                {"message": f"the body took over {limits.body_timeout:g} s to arrive"},
                {"connection": "close"},
            )(scope, receive, send)
            return
        except anyio.EndOfStream:
            return  # the client went away before sending its body
        server._record(method, path, query, headers, connection, body)
        fault = server._fault_for(path)
        logger.debug(
            "FlagServer %s: %s %s%s",
            server.url,
            method,
            path,
            "" if fault is None else f" ({fault!r})",
            extra={"url": f"{server.url}{path}", "fault": fault is not None},
        )
        if fault is not None and fault.delay:
            await anyio.sleep(fault.delay)
        if fault is not None and fault.hang:
            await until_disconnect(receive)
            return
        if fault is not None and fault.status is not None:
            await self._fault_reply(path, fault)(scope, receive, send)
            return
        info = RequestInfo(request_id, headers, query, body, fault)
        await self._router({**scope, _INFO: info}, _replaying(body, receive), send)

    @staticmethod
    def _too_large(cap: int) -> Response:
        return _json(
            413,
            {"message": f"the body is larger than {cap} bytes"},
            {"connection": "close"},
        )

    def _fault_reply(self, path: str, fault: Fault) -> Response:
        assert fault.status is not None
        body = (
            fault.body
            if fault.body is not None
            else f"fault injected: HTTP {fault.status}".encode()
        )
        headers = dict(fault.headers)
        if path in _EVENT_PATHS:
            headers = {"date": self._date(), **headers}
        return Response(
            body, status_code=fault.status, media_type="text/plain", headers=headers
        )

    def _date(self) -> str:
        now = wall_ms() / 1000 + self._server.clock_skew
        return email.utils.formatdate(now, usegmt=True)

    # -------------------------------------------------------------- routes
    @staticmethod
    def _info(request: Request) -> RequestInfo:
        info: RequestInfo = request.scope[_INFO]
        return info

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _json(404, {"message": "not found"})(scope, receive, send)

    async def _poll(self, request: Request) -> Response:
        server = self._server
        info = self._info(request)
        fault = info.fault
        extra = dict(fault.headers) if fault is not None else {}
        server._sdk_polled(info.headers)
        etag = f'"{server._version}"'
        if info.headers.get("if-none-match") == etag and (
            fault is None or fault.body is None
        ):
            return Response(status_code=304, headers={"etag": etag, **extra})
        # (a body is made only when it is sent)
        if fault is not None and fault.body is not None:
            body = fault.body
        elif request.url.path == FDV2_POLL:
            body = server._fdv2_poll_body(info.query.get("basis"))
        else:
            body = server._fdv1_poll_body()
        return Response(
            body,
            media_type="application/json",
            headers={"etag": etag, **extra},
        )

    async def _events(self, request: Request) -> Response:
        info = self._info(request)
        status = await self._server._receive_events(
            request.url.path, info.headers, info.body
        )
        extra = dict(info.fault.headers) if info.fault is not None else {}
        return Response(
            b"", status_code=status, headers={"date": self._date(), **extra}
        )

    async def _console_endpoint(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        info: RequestInfo = scope[_INFO]
        reply = await self._server._console.respond(
            self._server,
            scope["method"],
            scope["path"],
            info.headers,
            info.body,
            info.query,
        )
        extra = (
            [(k.encode(), v.encode()) for k, v in info.fault.headers.items()]
            if info.fault is not None
            else []
        )
        if reply is None:  # the console page's event stream
            await self._server._stream(
                scope["path"], info, receive, send, [*console.HEADERS, *extra]
            )
            return
        await _console_response(reply, extra)(scope, receive, send)

    async def _ofrep_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._ofrep(scope, receive, send)  # type: ignore[arg-type]

    async def _stream_endpoint(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        info: RequestInfo = scope[_INFO]
        extra = (
            [(k.encode(), v.encode()) for k, v in info.fault.headers.items()]
            if info.fault is not None
            else []
        )
        await self._server._stream(scope["path"], info, receive, send, extra)


class _Raw:
    """A raw ASGI endpoint for a Starlette ``Route``.

    A bound method would be taken for a request-response function.
    """

    __slots__ = ("_handler",)

    def __init__(self, handler: Callable[[Scope, Receive, Send], Awaitable[None]]):
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handler(scope, receive, send)
