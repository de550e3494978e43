"""The flag service as a Starlette application: middlewares around mounted apps.

A request passes the middlewares (body limits, recording, refusal, faults:
see ``_middleware``), then reaches its route:

- the SDK endpoints: the FDv2 and FDv1 polls (``_flagset``), their streams
  (``_fanout``) and the analytics event posts (``_recorder``);
- OFREP (every path under ``/ofrep/``, whatever its characters:
  ``_ofrep``), which answers in its own words;
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
import re
import zlib
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from aioflags._asgi._limits import BodyLimits, HeadLimit
from aioflags._core._clock import wall_ms
from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import parse
from aioflags._ofrep._handler import OFREPHandler

from . import _console as console
from . import _wire as wire
from ._console import EVENTS, HEADERS, PREFIX
from ._console_app import console_app
from ._guard import foreign_events_post, is_loopback_bind, is_loopback_host
from ._middleware import FAULT, DefaultHeaders, Faults, Recording, Refusal
from ._paths import (
    EVENTS_BULK,
    EVENTS_DIAGNOSTIC,
    FDV1_POLL,
    FDV1_STREAM,
    FDV2_POLL,
    FDV2_STREAM,
    STREAMS,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from starlette.datastructures import Headers
    from starlette.types import ASGIApp, Receive, Scope, Send

    from aioflags._asgi._limits import Limits
    from aioflags._asgi._signal import Signal
    from aioflags._core._json import JSONObject
    from aioflags._ofrep._source import DataSource

    from ._console import Console
    from ._fanout import Fanout
    from ._faults import Fault, FaultPlan
    from ._flagset import FlagSet
    from ._recorder import Recorder

__all__ = ["Served", "ServiceApp"]

_EVENT_PATHS: Final = (EVENTS_BULK, EVENTS_DIAGNOSTIC)
#: OFREP answers pages on this machine (a web app in development calling
#: ``aioflags serve``): any scheme and port of localhost, 127.0.0.1, [::1].
_OFREP_CORS: Final = Middleware(
    CORSMiddleware,
    allow_origin_regex=r"[a-z][a-z0-9+.-]*://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?",
    allow_methods=["POST", "GET", "OPTIONS"],
    allow_headers=[
        "content-type",
        "if-none-match",
        "authorization",
        "x-api-key",
        "last-event-id",
    ],
    expose_headers=["ETag"],
    max_age=600,
)


class _Under(Route):
    """A route for every path under ``prefix``, a newline in it too.

    Starlette's ``{rest:path}`` is the pattern ``.*``, which stops at a
    newline: a flag key with one (``%0A`` in the URL) fell through to the
    service's own ``404 {"message": "not found"}``, not an OFREP answer.
    """

    def __init__(
        self, prefix: str, app: ASGIApp, *, middleware: Sequence[Middleware]
    ) -> None:
        super().__init__(prefix + "{rest:path}", app, middleware=middleware)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


class Served(Protocol):
    """What the app needs of the server it answers for: its public face."""

    limits: Limits
    #: Seconds added to the clock of the event endpoints' ``Date``.
    clock_skew: float

    @property
    def host(self) -> str: ...

    def set_flag(self, key: str, flag: JSONObject) -> None: ...


class ServiceApp:
    """The ASGI application of one ``FlagServer``, over the parts it composes.

    ``server``'s public face gives the host it listens on, its clock skew
    and its limits, and takes the console's changes (``set_flag``);
    ``data`` is its flag data, ``fanout`` its open streams, ``recorder``
    and ``faults`` what it received and how it is to misbehave,
    ``console`` and ``ofrep`` the console's state and OFREP's source;
    ``signal`` wakes its waits and ``console_changed`` tells the console's
    pages.
    """

    def __init__(
        self,
        server: Served,
        *,
        data: FlagSet,
        fanout: Fanout,
        recorder: Recorder,
        faults: FaultPlan,
        console: Console,
        ofrep: DataSource,
        signal: Signal,
        console_changed: Callable[[], None],
    ) -> None:
        self._server = server
        self._data = data
        self._fanout = fanout
        self._recorder = recorder
        self._console = console
        self._signal = signal
        self._console_changed = console_changed
        #: The requests being served (stopping the server ends them).
        self._requests: set[anyio.CancelScope] = set()
        limits = server.limits
        larger = dict.fromkeys(_EVENT_PATHS, limits.max_events_body)
        stream = _Stream(self)
        self._starlette = Starlette(
            routes=[
                Route(FDV2_POLL, self._poll, methods=["GET"]),
                Route(FDV1_POLL, self._poll, methods=["GET"]),
                Route(FDV2_STREAM, stream, methods=["GET"]),
                Route(FDV1_STREAM, stream, methods=["GET"]),
                Route(EVENTS_BULK, self._events, methods=["POST"]),
                Route(EVENTS_DIAGNOSTIC, self._events, methods=["POST"]),
                _Under(
                    "/ofrep/",
                    OFREPHandler(ofrep, expose="all", limits=limits),
                    middleware=[_OFREP_CORS],
                ),
                Route(PREFIX, _console_moved),
                console_app(console, server, data, stream),
            ],
            middleware=[
                Middleware(BodyLimits, limits=limits, larger=larger),
                Middleware(HeadLimit, limits=limits),
                Middleware(Recording, recorder=recorder),
                Middleware(Refusal, why=self._refusal),
                Middleware(Faults, plan=faults, dated=_EVENT_PATHS, date=self._date),
            ],
            exception_handlers={
                HTTPException: _http_error,
                ClientDisconnect: _client_gone,
            },
        )
        # (outside Starlette's own: its 500s under /ui have the headers too)
        self._app = DefaultHeaders(self._starlette, HEADERS, under=PREFIX)

    @property
    def routes(self) -> list[BaseRoute]:
        """Its routes (Starlette's): one added here passes every middleware."""
        return self._starlette.routes

    def end_requests(self) -> None:
        """End every request being served (streams, hangs): the server stops."""
        for scope in list(self._requests):
            scope.cancel()

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
        with anyio.CancelScope() as request:  # (stopping the server ends it)
            self._requests.add(request)
            try:
                await self._app(scope, receive, send)
            finally:
                self._requests.discard(request)

    def _refusal(self, method: str, path: str, headers: Headers) -> str | None:
        """Why to refuse a request on its head.

        The console's rules for the console (its Host, the page's token, no
        foreign Origin), before anything else is done with it (a fault a
        test planned for it included); DNS rebinding and a web page's event
        post for the rest.
        """
        if path == PREFIX or path.startswith(f"{PREFIX}/"):
            return self._console.refusal(method, path, headers)
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
        data = self._data
        fault: Fault | None = request.scope.get(FAULT)
        if self._console.sdk_seen("poll", request.headers):  # (the console lists it)
            self._console_changed()
        etag = f'"{data.version}"'
        if etag in wire.etags(request.headers.get("if-none-match")) and (
            fault is None or fault.body is None
        ):
            return Response(status_code=304, headers={"etag": etag})
        # (a body is made only when it is sent)
        if fault is not None and fault.body is not None:
            body = fault.body
        elif request.url.path == FDV2_POLL:
            body = data.fdv2_poll_body(request.query_params.get("basis"))
        else:
            body = data.fdv1_poll_body()
        return Response(body, media_type="application/json", headers={"etag": etag})

    async def _events(self, request: Request) -> Response:
        status = await self._receive_events(
            request.url.path, request.headers, await request.body()
        )
        return Response(b"", status_code=status, headers={"date": self._date()})

    async def _receive_events(
        self, path: str, headers: Mapping[str, str], body: bytes
    ) -> int:
        """Record an event post; the HTTP status to answer.

        Anything that is not a JSON array of objects (``/bulk``) or a JSON
        object (``/diagnostic``), a corrupt or oversized gzip body, or JSON
        nested past what the parser takes, is a ``400`` and nothing is kept.
        A ``/bulk`` payload goes to the console in slices (``Pacer``): one of
        tens of thousands of events does not hold the event loop meanwhile.
        """
        try:
            if headers.get("content-encoding") == "gzip":
                body = _gunzip(body, self._server.limits.max_events_decompressed)
            data = parse(body)
        except (ProtocolError, zlib.error, ValueError):
            return 400
        if path == EVENTS_DIAGNOSTIC:
            if not isinstance(data, dict):
                return 400
            self._recorder.keep_event(self._recorder.diagnostics, body)
            if self._console.sdk_seen("events", headers, data):
                self._console_changed()
            self._signal.notify()
            return 202
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            return 400
        if not self._recorder.first_delivery(headers.get("x-launchdarkly-payload-id")):
            return 202  # a retry of a payload already received
        self._recorder.keep_event(self._recorder.payloads, body)
        seen = self._console.sdk_seen("events", headers)
        try:
            if await self._console.record(data, self._data.flags) or seen:
                self._console_changed()
        finally:
            self._signal.notify()  # (even if the request is cancelled meanwhile)
        return 202

    async def serve_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one event stream: an SDK's, or a console page's (see ``Fanout.serve``)."""
        path, fault = scope["path"], scope.get(FAULT)
        held = path == EVENTS and self._console.holds_token(
            Request(scope).query_params.get("token")
        )
        if path == EVENTS and self._fanout.count(path, held) >= console.PAGES:
            # The console's pages send its token: streams without it (any
            # local process can open them) have places of their own, and
            # cannot take a page's.
            message = (
                f"the console has {console.PAGES} pages open already: "
                "close one of them and reload this one"
                if held
                else f"{console.PAGES} event streams without the console's token "
                "are open already (the console's page sends it: open the page)"
            )
            await JSONResponse({"message": message}, 503)(scope, receive, send)
            return
        if fault is not None and fault.events is not None:
            first = fault.events.encode()
        elif path == EVENTS:
            first = self._console.state_event(self._data.flags)
        else:
            first = self._data.first(path, Request(scope).query_params.get("basis"))
        sdk = None
        if path in STREAMS:
            sdk = self._console.stream_opened(Request(scope).headers)
        if sdk is not None:
            self._console_changed()
        try:
            await self._fanout.serve(path, first, receive, send, fault, held=held)
        finally:
            if sdk is not None:
                self._console.stream_closed(sdk)
                self._console_changed()


async def _http_error(request: Request, exc: Exception) -> Response:
    """An ``HTTPException`` (no such route or method, a bad console request).

    Its body is read first, so that a request no route takes is recorded
    as it was sent (a test may point a callback at the server, and read
    what it posted).
    """
    assert isinstance(exc, HTTPException)
    with contextlib.suppress(ClientDisconnect):  # (nobody to answer, then)
        await request.body()
    if exc.status_code == 405:
        message = f"{request.method} is not allowed here"
    else:
        message = "not found" if exc.status_code == 404 else exc.detail
    return JSONResponse({"message": message}, exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client went away before its body was whole: nobody's error, and
    # nobody to answer (what is sent goes nowhere).
    return Response(status_code=400)


async def _console_moved(request: Request) -> Response:
    return RedirectResponse("/ui/", 308)


class _Stream:
    """A stream endpoint (an ASGI app: Starlette hands it the request as is)."""

    def __init__(self, app: ServiceApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app.serve_stream(scope, receive, send)


def _gunzip(body: bytes, limit: int) -> bytes:
    """``body`` gunzipped; ``ValueError`` past ``limit`` bytes (a bomb stops there)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    data = inflater.decompress(body, limit + 1)
    if len(data) > limit:
        raise ValueError(f"the body is larger than {limit} bytes once gunzipped")
    if not inflater.eof:
        raise ValueError("the gzip body is truncated")
    return data
