"""The flag lens: signed per-request overrides and evaluation traces.

A support engineer reproduces "with the new checkout on, user 42 sees a
blank page" in a deployed app, for *one request*, without flipping the
flag for anyone else::

    import aioflags
    from aioflags.lens import LensConfig, LensMiddleware

    config = aioflags.Config(
        sdk_key,
        lens=LensConfig(secrets=[secret], allow=["new-checkout", "checkout-*"]),
    )
    app.add_middleware(LensMiddleware, client=client)  # FastAPI, Starlette

then mints a token (``aioflags lens mint --secret-file F --flag
new-checkout=true``, or :func:`mint`) and sends it in the
``X-Aioflags-Lens`` header, or follows a one-time link (the token after
its ``#``) whose page sets a cookie once the user turns the lens on. Every
evaluation that request makes, in its task and the tasks it starts, serves
the token's variations (reason ``{"kind": "OVERRIDE", "lens": <jti>}``, no
analytics event); a token with ``trace`` gets every evaluation listed in the
``X-Aioflags-Trace`` response header. Install with ``pip install
'aioflags[lens]'`` (PyJWT). See docs/lens.md.

Added in version 0.2.0.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, final

from ._client._blocking import Client as BlockingClient
from ._lens._config import LensConfig
from ._lens._lens import warn
from ._lens._link import confirm_page, redeem
from ._lens._token import mint
from ._lens._web import (
    HEADER,
    PARAM,
    TRACE_HEADER,
    bearer_lens,
    cookie_token,
    location,
    marker,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, MutableMapping

    from ._client._client import Client
    from ._guards._scope import Guards
    from ._lens._lens import Lens, View
    from ._lens._link import Answer

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = [
    "LensConfig",
    "LensMiddleware",
    "LensScope",
    "aiohttp_middleware",
    "mint",
    "scope",
]


_HEADER_BYTES = HEADER.encode()
_PARAM_BYTES = PARAM.encode()


def _exists(client: Client) -> Callable[[str], bool] | None:
    """Whether a flag is in ``client``'s current data (None: it has none yet).

    Asked only of a token's own flags: a request pays for those, not for
    every flag of the data.
    """
    data = client._snapshot_quietly()
    return data._has_flag if data.initialized else None


def _served(client: Client, middleware: str) -> None:
    """A middleware was made for ``client``: its lens reads tokens, or a WARNING says none will.

    A client with guards and no lens gets no WARNING: the middleware opens
    each request's scope for its guards.
    """
    lens = client._lens
    if lens is not None:
        lens.serve()
        return
    if client._guards.by_flag is not None:
        return  # (it opens the guards' request scope)
    logging.getLogger("aioflags.lens").warning(
        "aioflags lens: %s on a client without Config(lens=LensConfig(...)) or"
        " Config(guards=[...]): every request passes through untouched, and tokens"
        " are ignored",
        middleware,
    )


@final
class LensMiddleware:
    """The flag lens for an ASGI app: ``app.add_middleware(LensMiddleware, client=client)``.

    Requests that carry a valid lens token (the ``X-Aioflags-Lens``
    header, or the ``aioflags_lens`` cookie) see the token's overrides in
    every evaluation of ``client`` they make, and, if the token asks for
    it, get the ``X-Aioflags-Trace`` response header. A link
    (``page?aioflags_lens#aioflags_lens=TOKEN``) is answered by the
    middleware itself: a ``GET`` gets a confirm page, whose button posts
    the token (from the fragment, which never reaches a server) back to the
    same URL; that ``POST``, from the page's own site, redeems the token
    once and answers a 303 to the URL without the marker, setting the
    cookie. A bad token never fails a request: it goes on without the lens
    (one WARNING a minute per cause). With no ``Config(lens=...)``, every
    request passes through untouched. A client with guards
    (``Config(guards=[...])``) gets every HTTP request run inside
    ``client.guards.request()``, its status that of
    ``http.response.start``, recorded as its response ends. See
    docs/lens.md.

    Added in version 0.2.0.
    """

    __slots__ = ("_guards", "_lens", "app", "client")

    def __init__(self, app: ASGIApp, *, client: Client) -> None:
        self.app: ASGIApp = app
        self.client: Client = client
        # (both fixed when the client is made: a request reads no more)
        guards = client._guards
        self._guards: Guards | None = guards if guards.by_flag is not None else None
        self._lens: Lens | None = client._lens
        _served(client, "LensMiddleware")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: in the guards' scope, through the lens if it carries a valid token."""
        if self._guards is not None and scope["type"] == "http":
            await self._guarded(self._guards, scope, receive, send)
        elif self._lens is None:
            await self.app(scope, receive, send)
        else:
            await self._lensed(self._lens, scope, receive, send)

    async def _guarded(
        self, guards: Guards, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """One HTTP request in the guards' scope, recorded as its response ends.

        Its status is ``http.response.start``'s; it is recorded when the
        response's last body message (``more_body`` false) is handed to the
        server, so its latency runs until then (a streaming response's
        whole stream; a background task after it is not timed, and what it
        raises or evaluates counts nowhere). An exception leaving the app
        before that is an error, raised again untouched. A request whose
        client left (``http.disconnect`` received, the server's ``send``
        failing, the task cancelled) counts nowhere. An app that returns
        without ending its response is an error (the server answers 500 or
        cuts it).
        """
        request = guards.request()
        left = ended = False
        status: int | None = None

        async def receiving() -> Message:
            nonlocal left
            message = await receive()
            if message["type"] == "http.disconnect":
                left = True
            return message

        async def sending(message: Message) -> None:
            nonlocal left, status, ended
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body" and not message.get("more_body", False):
                request.end(status)
                ended = True
            try:
                await send(message)
            except Exception:  # the server cannot send: its client left
                left = True
                raise

        with request:  # (sync: no coroutine to make for entering and leaving)
            try:
                if self._lens is None:
                    await self.app(scope, receiving, sending)
                else:
                    await self._lensed(self._lens, scope, receiving, sending)
            except BaseException as exc:
                if left or not isinstance(exc, Exception):  # (left, or cancelled)
                    request.discard()
                raise
            if left:
                request.discard()
            elif not ended:  # (an app that returned without ending its response)
                request.end(500)

    async def _lensed(
        self, lens: Lens, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Serve one ASGI connection through the lens if it carries a valid token."""
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if kind == "http" and _PARAM_BYTES in query:
            marked, kept = marker(query.decode("latin-1"))
            if marked:
                await self._link(lens, scope, receive, send, kept)
                return
        token = _header_token(scope)
        if token is None:
            if not lens.bearer_said:
                _bearer(lens, scope)
            await self.app(scope, receive, send)
            return
        view = lens.open(token, _exists(self.client))
        if view is None:
            await self.app(scope, receive, send)
            return
        with lens.looking(view):
            if view.trace is None or kind != "http":
                await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, _traced(send, view))

    async def _link(
        self, lens: Lens, scope: Scope, receive: Receive, send: Send, kept: str
    ) -> None:
        """Answer a link: its confirm page, or (``POST``) its redemption."""
        raw = scope.get("raw_path")
        path = (
            raw.decode("latin-1")
            if isinstance(raw, bytes)
            else str(scope["path"]).encode().decode("latin-1")
        )
        clean = location(path.partition("?")[0], kept)
        method = scope.get("method", "GET")
        if method != "POST":
            await _send(send, confirm_page(clean), method == "HEAD")
            return
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

        async def read(limit: int) -> bytes | None:
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                if len(body) > limit or not message.get("more_body", False):
                    return bytes(body)

        answer = await redeem(
            lens,
            _exists(self.client),
            clean,
            headers.get,
            read,
            scope.get("scheme") == "https",
        )
        if answer is not None:
            await _send(send, answer, False)


async def _send(send: Send, answer: Answer, head: bool) -> None:
    """Send ``answer`` (its body left out for a ``HEAD``)."""
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in answer.headers]
    await send(
        {"type": "http.response.start", "status": answer.status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


def _header_token(scope: Scope) -> str | None:
    """The request's token: its ``X-Aioflags-Lens`` header, else its cookie."""
    cookies: list[str] = []
    for name, value in scope.get("headers", ()):
        lowered = name.lower()
        if lowered == _HEADER_BYTES:
            return str(value.decode("latin-1")).strip()
        if lowered == b"cookie":
            cookies.append(value.decode("latin-1"))
    return cookie_token(cookies) if cookies else None


def _bearer(lens: Lens, scope: Scope) -> None:
    """Tell a lens token sent as ``Authorization: Bearer`` (once: then never read again)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization" and bearer_lens(value.decode("latin-1")):
            lens.bearer()
            return


def _traced(send: Send, view: View) -> Send:
    """``send``, with the trace added to the response's headers."""

    async def traced(message: Message) -> None:
        if message["type"] == "http.response.start":
            header = view.header() or ""
            message = dict(message)
            message["headers"] = [
                *message.get("headers", ()),
                (TRACE_HEADER.encode(), header.encode("ascii")),
            ]
        await send(message)

    return traced


def aiohttp_middleware(client: Client) -> Any:
    """Make the flag lens's aiohttp middleware: ``middlewares=[aiohttp_middleware(client)]``.

    What :class:`~aioflags.lens.LensMiddleware` does for ASGI apps: a
    request with a valid token (header or cookie) sees its overrides, and
    gets the trace if the token asks for it; a link is answered with its
    confirm page, and its ``POST`` redeems the token once, setting the
    cookie; a bad token never fails the request. A response already sent
    (a ``StreamResponse`` prepared by the handler) carries no trace. A
    client with guards gets every request run inside
    ``client.guards.request()``, its status the handler's response's (or
    the ``HTTPException``'s it raised). See docs/lens.md.

    Added in version 0.2.0.
    """
    from aiohttp import web
    from multidict import CIMultiDict

    _served(client, "aiohttp_middleware")

    async def answered(request: web.Request, kept: str, lens: Lens) -> web.Response:
        """A link's answer: its confirm page, or (``POST``) its redemption."""
        path = request.raw_path.partition("?")[0].encode().decode("latin-1")
        clean = location(path, kept.encode().decode("latin-1"))
        if request.method != "POST":
            answer: Answer | None = confirm_page(clean)
        else:

            async def read(limit: int) -> bytes | None:
                body = bytearray()
                while len(body) <= limit:
                    chunk = await request.content.read(limit + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
                return bytes(body)

            answer = await redeem(
                lens, _exists(client), clean, request.headers.get, read, request.secure
            )
        assert answer is not None  # (aiohttp ends a handler whose client left)
        headers = CIMultiDict(
            (name, value)
            for name, value in answer.headers
            if name != "content-length"  # (aiohttp's own)
        )
        return web.Response(status=answer.status, body=answer.body, headers=headers)

    guards = client._guards if client._guards.by_flag is not None else None

    @web.middleware
    async def lens_middleware(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if guards is None:
            return await lensed(request, handler)
        scope = guards.request()
        with scope:
            try:
                response = await lensed(request, handler)
            except web.HTTPException as exc:  # (a response: 5xx counts)
                scope.end(exc.status)
                raise
            except BaseException as exc:
                if _left(request) or not isinstance(exc, Exception):
                    scope.discard()  # (its client left, or it was cancelled)
                raise
            scope.end(response.status)
            return response

    async def lensed(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        lens = client._lens
        if lens is None:
            return await handler(request)
        query = request.raw_path.partition("?")[2]
        if PARAM in query:
            marked, kept = marker(query)
            if marked:
                return await answered(request, kept, lens)
        token = request.headers.get(HEADER)
        if token is None:
            token = cookie_token(request.headers.getall("Cookie", ()))
        if token is None:
            if not lens.bearer_said and any(
                bearer_lens(value)
                for value in request.headers.getall("Authorization", ())
            ):
                lens.bearer()
            return await handler(request)
        view = lens.open(token.strip(), _exists(client))
        if view is None:
            return await handler(request)
        with lens.looking(view):
            response = await handler(request)
        header = view.header()
        if header is not None and not response.prepared:
            response.headers[TRACE_HEADER] = header
        return response

    return lens_middleware


def _left(request: Any) -> bool:
    """Whether an aiohttp request's client has left (its connection closed)."""
    transport = request.transport
    return transport is None or bool(transport.is_closing())


@final
class LensScope:
    """What :func:`scope` gives: whether the token applies, and the trace so far.

    Added in version 0.2.0.
    """

    __slots__ = ("_view",)

    def __init__(self, view: View | None) -> None:
        self._view = view

    @property
    def active(self) -> bool:
        """Whether the token was valid: evaluations inside see its overrides."""
        return self._view is not None

    @property
    def token_id(self) -> str | None:
        """The token's ``jti`` (None: no valid token)."""
        return None if self._view is None else self._view.jti

    def trace(self) -> str | None:
        """The trace so far, as the ``X-Aioflags-Trace`` header would carry it.

        None: no valid token, or one that asked for no trace.
        """
        return None if self._view is None else self._view.header()


def scope(client: Client | BlockingClient, token: str) -> _Scope:
    """Evaluate ``client``'s flags through the lens inside the ``with`` block.

    ``with aioflags.lens.scope(client, token):`` is, for work outside a
    request (a Celery task, a script), what the middleware does for a
    request, for an ``aioflags.Client`` or an ``aioflags.blocking.Client``.
    The block's own task (or thread) and the tasks it starts see the
    token's overrides; nothing else does. ``async with`` does the same
    (nothing in it awaits). A bad token never raises: the block runs
    without the lens, and a WARNING (one a minute per cause) says why; so
    does a client without ``Config(lens=...)``. Enter and leave it in one
    task (a ``ContextVar`` is set and reset).

    Added in version 0.2.0.
    """
    return _Scope(client, token)


@final
class _Scope:
    """What :func:`scope` returns: a block entered with ``with`` or ``async with``."""

    __slots__ = ("_block", "_client", "_token")

    def __init__(self, client: Client | BlockingClient, token: str) -> None:
        self._client = client
        self._token = token
        self._block: contextlib.AbstractContextManager[LensScope] | None = None

    def __enter__(self) -> LensScope:
        if self._block is not None:
            raise RuntimeError("this lens scope is entered already: make another")
        self._block = _looking(self._client, self._token)
        return self._block.__enter__()

    def __exit__(self, *exc: Any) -> None:
        block, self._block = self._block, None
        if block is not None:
            block.__exit__(*exc)

    async def __aenter__(self) -> LensScope:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)


@contextlib.contextmanager
def _looking(client: Client | BlockingClient, token: str) -> Iterator[LensScope]:
    """:func:`scope`'s block: the view ``token`` gives set for its inside."""
    face = client.async_client if isinstance(client, BlockingClient) else client
    lens = face._lens
    if lens is not None:
        lens.serve()  # (scope() reads tokens: no middleware needed)
    else:
        warn(
            "config",
            "aioflags lens: scope() on a client without Config(lens=LensConfig(...)):"
            " the token is not used",
        )
        yield LensScope(None)
        return
    view = lens.open(token, _exists(face))
    if view is None:
        yield LensScope(None)
        return
    with lens.looking(view):
        yield LensScope(view)
