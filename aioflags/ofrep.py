"""OFREP for your own app: ``OFREPApp`` serves OpenFeature's remote evaluation protocol.

Mount it beside your routes, and any OpenFeature OFREP provider (the
browser's ``@openfeature/ofrep-web-provider``, Python's
``openfeature-provider-ofrep``, Go, Java...) evaluates flags with your
running :class:`~aioflags.Client`: the server's data, the server's idea of
who the user is::

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from aioflags.ofrep import OFREPApp

    app = Starlette(routes=[Mount("/flags", OFREPApp(client))])
    # providers use the base URL http://host/flags

It is a plain ASGI application: no web framework is needed. See
docs/ofrep.md for what it answers, ``expose`` and ``context``.

Added in version 0.1.0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, final

from ._asgi._limits import BodyLimits, Limits
from ._asgi._signal import Signal
from ._client._events import ProviderEvent
from ._core._exceptions import ConfigurationError
from ._ofrep._handler import OFREPHandler
from ._ofrep._request import Request as Request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from ._client._client import Client
    from ._client._events import EventDetails
    from ._evaluation._context import Context
    from ._evaluation._results import EvaluationDetail
    from ._evaluation._snapshot import FlagSnapshot

__all__ = ["OFREPApp", "Request"]


class _ClientSource:
    """OFREP's view of a running client: its snapshot, its evaluations, its changes."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._version = 0
        self._changed = Signal()
        client.add_handler(ProviderEvent.CONFIGURATION_CHANGED, self._on_change)

    def _on_change(self, details: EventDetails) -> None:
        self._version += 1
        self._changed.notify()

    def snapshot(self) -> FlagSnapshot:
        return self._client.snapshot()

    def ready(self) -> bool:
        return self._client.snapshot().initialized

    def version(self) -> int:
        return self._version

    async def evaluate(self, key: str, context: Context) -> EvaluationDetail[Any]:
        # The client's own evaluation: hooks run, feature and summary events.
        return await self._client.variation_detail(key, context, None)

    async def changed(self, after: int) -> None:
        await self._changed.wait_until(lambda: self._version > after)


@final
class OFREPApp:
    """An ASGI app answering OFREP with a running :class:`~aioflags.Client`.

    Args:
        client: the app's client (started and closed by the app).
        context: optional ``(request, ofrep_context) -> Context`` (sync or
            async) that derives the evaluated context from the request (a
            session cookie, an auth header) instead of trusting the body;
            ``request`` has ``.headers``, ``.cookies`` and ``.scope``;
            ``ofrep_context`` is the body's ``context`` object. If it raises,
            the answer is ``400 INVALID_CONTEXT``.
        expose: ``"client-side"`` (the default) serves only the flags
            LaunchDarkly marks available to client-side SDKs; any other key
            answers exactly as an unknown one, so its existence does not
            leak; the app logs it at WARNING (``aioflags.ofrep``) once per
            key, with the fix, and once for a bulk answer that leaves flags
            out. ``"all"``: every flag.
        limits: the bounds of a request body (``max_body``,
            ``body_timeout``) and the change stream's keep-alive
            (``ofrep_keepalive``): an ``aioflags.testing.Limits``; its
            defaults when None (64 KiB, 30 s, 15 s). Added in version 0.2.0.

    Single-flag evaluations are the client's own (hooks, feature and
    summary events); a bulk request is recorded like ``all_flags_state``.
    CORS is the app's (Starlette's ``CORSMiddleware`` with
    ``expose_headers=["ETag"]``).

    Added in version 0.1.0.
    """

    __slots__ = ("_app",)

    def __init__(
        self,
        client: Client,
        *,
        context: Callable[[Request, dict[str, Any]], Context | Awaitable[Context]]
        | None = None,
        expose: Literal["client-side", "all"] = "client-side",
        limits: Limits | None = None,
    ) -> None:
        if expose not in ("client-side", "all"):
            raise ConfigurationError(
                f'expose must be "client-side" or "all", not {expose!r}'
            )
        if context is not None and not callable(context):
            raise ConfigurationError(f"context must be callable, not {context!r}")
        if limits is not None and not isinstance(limits, Limits):
            raise ConfigurationError(
                f"limits must be an aioflags.testing.Limits, not {limits!r}"
            )
        limits = Limits() if limits is None else limits
        handler = OFREPHandler(
            _ClientSource(client), context=context, expose=expose, limits=limits
        )
        # Request bodies within limits: the one middleware the flag service uses.
        self._app = BodyLimits(handler, limits)

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """Answer one ASGI connection (``http`` requests; anything else is ignored)."""
        await self._app(scope, receive, send)
