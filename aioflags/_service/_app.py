"""The flag service as a Starlette application: middlewares around mounted apps.

A request passes the middlewares (body limits, recording, refusal, faults:
see ``_middleware``), then reaches its route:

- the SDK endpoints: the FDv2 and FDv1 polls, their streams (the fan-out
  of ``FlagServer``) and the analytics event posts;
- OFREP (``/ofrep/...``, ``_ofrep``), which answers in its own words;
- the console, mounted under ``/ui`` with its own rules (the page's token,
  no foreign ``Origin``) and headers (``_console``);
- JSON ``404`` otherwise.

A route added here, or an app mounted, inherits every middleware (and so
every limit). A handler that fails answers ``500`` (Starlette's), never more
than that one request; a stream whose client stops reading collapses its
queue to one full payload past a few MiB (see ``_outbox``).
"""

from __future__ import annotations

import contextlib
import email.utils
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from aioflags._core._clock import wall_ms

from . import _console as console
from ._console_app import console_app
from ._guard import foreign_events_post, is_loopback_bind, is_loopback_host
from ._limits import BodyLimits
from ._middleware import FAULT, Faults, Recording, Refusal
from ._ofrep import OFREPHandler
from ._paths import (
    EVENTS_BULK,
    EVENTS_DIAGNOSTIC,
    FDV1_POLL,
    FDV1_STREAM,
    FDV2_POLL,
    FDV2_STREAM,
)

if TYPE_CHECKING:
    from starlette.datastructures import Headers
    from starlette.types import Receive, Scope, Send

    from ._faults import Fault, FaultPlan
    from ._host import Host
    from ._recorder import Recorder

__all__ = ["ServiceApp"]

_EVENT_PATHS: Final = (EVENTS_BULK, EVENTS_DIAGNOSTIC)


def _fault_of(scope: Scope) -> Fault | None:
    fault: Fault | None = scope.get(FAULT)
    return fault


def _fault_headers(scope: Scope) -> dict[str, str]:
    fault = _fault_of(scope)
    return dict(fault.headers) if fault is not None else {}


class ServiceApp:
    """The ASGI application of one ``FlagServer`` (its :class:`~._host.Host`)."""

    def __init__(self, server: Host, *, recorder: Recorder, faults: FaultPlan) -> None:
        self._server = server
        limits = server.limits
        larger = dict.fromkeys(_EVENT_PATHS, limits.max_events_body)
        self._app = Starlette(
            routes=[
                Route(FDV2_POLL, self._poll, methods=["GET"]),
                Route(FDV1_POLL, self._poll, methods=["GET"]),
                Route(FDV2_STREAM, _Stream(server)),
                Route(FDV1_STREAM, _Stream(server)),
                Route(EVENTS_BULK, self._events, methods=["POST"]),
                Route(EVENTS_DIAGNOSTIC, self._events, methods=["POST"]),
                Route(
                    "/ofrep/{rest:path}",
                    OFREPHandler(server._ofrep, expose="all", cors=True, limits=limits),
                ),
                Route(console.PREFIX, _console_moved),
                Mount(
                    console.PREFIX,
                    app=console_app(server._console, server, _Stream(server)),
                ),
            ],
            middleware=[
                Middleware(BodyLimits, limits=limits, larger=larger),
                Middleware(Recording, recorder=recorder),
                Middleware(Refusal, why=self._refusal),
                Middleware(Faults, plan=faults, dated=_EVENT_PATHS, date=self._date),
            ],
            exception_handlers={
                404: _not_found,
                405: _not_allowed,
                ClientDisconnect: _client_gone,
            },
        )

    @property
    def routes(self) -> list[BaseRoute]:
        """Its routes (Starlette's): one added here passes every middleware."""
        return self._app.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # (the lifespan: Starlette's)
            await self._app(scope, receive, send)
            return
        if not scope["path"].startswith("/"):
            # absolute-form (a proxy's request line): route its path
            try:
                path = urlsplit(scope["path"]).path or "/"
            except ValueError:
                path = "/"
            scope = {**scope, "path": path}
        with self._server._handling():  # (stopping the server ends it)
            await self._app(scope, receive, send)

    def _refusal(self, method: str, path: str, headers: Headers) -> str | None:
        """Why to refuse a request on its head: DNS rebinding, a web page's event post."""
        bound = self._server.host
        host = headers.get("host")
        if is_loopback_bind(bound) and not is_loopback_host(host):
            return "refused: this server answers to localhost and loopback addresses"
        if (
            path in _EVENT_PATHS
            and method == "POST"
            and foreign_events_post(headers, bound)
        ):
            return "refused: an event post from a web page of another site"
        return None

    def _date(self) -> str:
        now = wall_ms() / 1000 + self._server.clock_skew
        return email.utils.formatdate(now, usegmt=True)

    # -------------------------------------------------------------- routes
    async def _poll(self, request: Request) -> Response:
        server = self._server
        fault = _fault_of(request.scope)
        extra = _fault_headers(request.scope)
        server._sdk_polled(request.headers)
        etag = f'"{server._data.version}"'
        if request.headers.get("if-none-match") == etag and (
            fault is None or fault.body is None
        ):
            return Response(status_code=304, headers={"etag": etag, **extra})
        # (a body is made only when it is sent)
        if fault is not None and fault.body is not None:
            body = fault.body
        elif request.url.path == FDV2_POLL:
            body = server._data.fdv2_poll_body(request.query_params.get("basis"))
        else:
            body = server._data.fdv1_poll_body()
        return Response(
            body, media_type="application/json", headers={"etag": etag, **extra}
        )

    async def _events(self, request: Request) -> Response:
        status = await self._server._receive_events(
            request.url.path, request.headers, await request.body()
        )
        headers = {"date": self._date(), **_fault_headers(request.scope)}
        return Response(b"", status_code=status, headers=headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    await _read_whole(request)
    return JSONResponse({"message": "not found"}, 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    await _read_whole(request)
    return JSONResponse({"message": f"{request.method} is not allowed here"}, 405)


async def _read_whole(request: Request) -> None:
    """Read a request no route takes, so that it is recorded as it was sent.

    (A test may point a callback at the server, and read what it posted.)
    """
    with contextlib.suppress(ClientDisconnect):  # (nobody to answer, then)
        await request.body()


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client went away before its body was whole: nobody's error, and
    # nobody to answer (what is sent goes nowhere).
    return Response(status_code=400)


async def _console_moved(request: Request) -> Response:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in console.HEADERS}
    return RedirectResponse("/ui/", 308, headers=headers)


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _stream(
    server: Host,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Serve a stream of the server's fan-out, with ``headers`` and a fault's."""
    request = Request(scope)
    await server._stream(
        scope["path"],
        request.query_params,
        request.headers,
        _fault_of(scope),
        receive,
        send,
        [*headers, *_encoded(_fault_headers(scope))],
    )


class _Stream:
    """A stream endpoint (an ASGI app: Starlette hands it the request as is)."""

    def __init__(self, server: Host) -> None:
        self._server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _stream(self._server, scope, receive, send, [])
