"""FlagServer: the local flag service (FDv2 and FDv1, events, console) on 127.0.0.1.

It holds an in-memory flag set, pushes changes to open streams, injects
faults per endpoint, records every request, with awaitable waits so tests
never sleep.
HTTP is Hypercorn's (``_hosting``), routing Starlette's (``_app``); both
come with the ``service`` extra and are imported when a server starts, so
``aioflags.testing`` imports without them. Under ``/ui/`` it serves the flag
console (``_console.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, final

import anyio
import httpx

from aioflags._asgi._limits import Limits
from aioflags._asgi._signal import Signal
from aioflags._client._config import Config
from aioflags._core._json import parse
from aioflags._core._lifespan import Span, background_group
from aioflags._datasystem._datatypes import Change, ChangeKind
from aioflags._ofrep._source import DataSource

from . import _console as console
from . import _shown as shown
from ._fanout import Fanout
from ._faults import Fault, FaultPlan
from ._flagset import Edit, FlagSet
from ._paths import (
    FDV1_STREAM,
    FDV2_STREAM,
)
from ._recorder import RecordedRequest, Recorder

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterable, Mapping
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from anyio.abc import TaskGroup

    from aioflags._core._json import JSONObject
    from aioflags._guards._scope import Guards

    from ._app import ServiceApp


__all__ = ["Fault", "FlagServer", "RecordedRequest"]

#: The test tools' own logger: silence it alone without losing the client's.
logger = logging.getLogger("aioflags.testing")

#: Seconds ``__aexit__`` gives Hypercorn to close its connections.
_SHUTDOWN_BOUND: Final = 5.0
_INSTALL: Final = (
    "FlagServer and `aioflags serve` need the service extra: "
    "pip install 'aioflags[service]'"
)


@final
class FlagServer:
    """A flag service on 127.0.0.1, for tests and ``python -m aioflags serve``.

    Use it as an async context manager; ``url`` is set once it is listening::

        async with FlagServer(flags={"my-flag": flag_json}) as server:
            config = server.config()  # flags and events from and to this server

    ``url + "/ui/"`` is its flag console: a page that lists the flags, flips
    them and shows what connected SDKs evaluated (see docs/console.md).

    Each flag and segment has its own ``version``: one more on each change
    of it (or the version its JSON comes with, if higher), kept by
    :meth:`replace_all` when its content is unchanged; the payload's version
    (:attr:`state`) moves on with every change.

    ``keep``: remember only the last ``keep`` requests (``requests``), event
    payloads and diagnostic events (None, the default: all of them, as tests
    want); ``keep_bytes``: and only as many recorded request bodies as fit in
    that many bytes, and as many event payloads and diagnostic events (their
    JSON, gzip undone) as fit in that many more. ``aioflags serve`` keeps
    1000 and 32 MiB, so its memory stays bounded. An open stream has at most
    ``limits.stream_queue_bytes`` (4 MiB) of changes waiting for its client; past that, they collapse to one
    full payload sent when the client reads again. Bound to loopback, the
    server refuses (403) a request whose ``Host`` is not a loopback name (DNS
    rebinding), and every server refuses an event post from a web page of
    another site.

    ``lens_secret``: the flag lens secret (the first of the app's
    ``LensConfig.secrets``): the console then has a "Share a lens" form that
    makes links (docs/lens.md), for a page opened with :attr:`lens_key`
    after its ``#`` (``url + "/ui/#lens-key=" + server.lens_key``). Added in
    version 0.2.0. ``lens_allow``: the app's ``LensConfig.allow`` (glob
    patterns), so that a link made for a flag outside it says, where it is
    made, that the app will not override that flag; without it, each link
    says the console could not check (it needs ``lens_secret``).

    ``limits``: every bound of what the server accepts (request bodies and
    how long they may take, idle connections, the listen backlog, a slow
    stream's queue...): an :class:`~aioflags.testing.Limits`; its defaults
    when None. Added in version 0.2.0.

    HTTP is served by Hypercorn with Starlette's routing: install the
    ``service`` extra (``pip install 'aioflags[service]'``).

    Added in version 0.1.0.
    """

    def __init__(
        self,
        flags: Mapping[str, JSONObject] | None = None,
        segments: Mapping[str, JSONObject] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keep: int | None = None,
        keep_bytes: int | None = None,
        lens_secret: str | bytes | None = None,
        lens_allow: Iterable[str] | None = None,
        limits: Limits | None = None,
    ) -> None:
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be at least 1 or None, not {keep!r}")
        if keep_bytes is not None and keep_bytes < 0:
            raise ValueError(
                f"keep_bytes must be 0 or more, or None, not {keep_bytes!r}"
            )
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(
                f"limits must be an aioflags.testing.Limits, not {limits!r}"
            )
        #: Every bound of what it accepts.
        self.limits: Limits = Limits() if limits is None else limits
        self._host = host
        self._signal = Signal()
        self._recorder = Recorder(self._signal, keep=keep, keep_bytes=keep_bytes)
        self._faults = FaultPlan()
        self._port = port
        self._data = FlagSet(flags, segments)
        self._fanout = Fanout(self._signal, self.limits.stream_queue_bytes, self._full)
        #: Its ASGI app, once running.
        self._app: ServiceApp | None = None
        self._tg: TaskGroup | None = None
        self._span: AbstractAsyncContextManager[Span] | None = None
        self._shutdown: anyio.Event | None = None
        self._served: anyio.Event | None = None
        #: Hypercorn's scope: shielded, cancelled by :meth:`_stop` alone.
        self._serving: anyio.CancelScope | None = None
        self.url: str = ""
        #: The IP address the public socket is bound to (``host`` resolved).
        self._bound: str = ""
        #: Seconds added to the clock in the ``Date`` header of event responses
        #: (analytics debug windows compare with the server's clock).
        self.clock_skew: float = 0.0
        self._console = console.Console(host, lambda: self._ofrep.fresh_snapshot())
        if lens_secret is not None:
            from aioflags._lens._config import LensConfig

            # (checked as the app's LensConfig checks them: a secret of 32
            # bytes at least, non-empty patterns)
            lens = LensConfig(
                secrets=[lens_secret], allow=["*"] if lens_allow is None else lens_allow
            )
            allow = None if lens_allow is None else lens.allow
            self._console.use_lens(lens.secrets[0], allow)
        elif lens_allow is not None:
            raise ValueError("lens_allow is the allow list of lens_secret's links")
        #: What OFREP evaluates: this server's flags, rebuilt when they change.
        self._ofrep = DataSource(
            lambda: self._data.version, lambda: (self._data.flags, self._data.segments)
        )

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> FlagServer:
        if self._span is not None:
            raise RuntimeError("this FlagServer is already running")
        try:
            from . import _app, _hosting  # noqa: F401 - (_app: the extra is there)
        except ImportError as exc:  # starlette or hypercorn missing
            raise ModuleNotFoundError(f"{_INSTALL} ({exc})", name=exc.name) from exc
        # Binding is synchronous: nothing can be cancelled between creating the
        # socket and handing it to the task group that closes it.
        sock = _hosting.bind(self._host, self._port, self.limits.backlog)
        try:
            span = background_group(self._stop)
            self._tg = (await span.__aenter__()).tg
        except BaseException:
            sock.close()
            raise
        self._span = span
        self._bound, port = sock.getsockname()[:2]
        self.url = str(httpx.URL(scheme="http", host=self._host, port=port))
        self._console.url = self.url
        self._shutdown = anyio.Event()
        self._served = anyio.Event()
        self._serving = anyio.CancelScope(shield=True)
        self._app = app = self._make_app()
        self._tg.start_soon(self._run, _hosting.serve_asgi, app, sock)
        logger.info("FlagServer listening on %s", self.url, extra={"url": self.url})
        return self

    def _make_app(self) -> ServiceApp:
        """Its ASGI app, over its parts."""
        from ._app import ServiceApp

        return ServiceApp(
            self,
            data=self._data,
            fanout=self._fanout,
            recorder=self._recorder,
            faults=self._faults,
            console=self._console,
            ofrep=self._ofrep,
            signal=self._signal,
            console_changed=self._push_console,
        )

    async def _run(
        self, serve: Callable[..., Any], app: object, sock: socket.socket
    ) -> None:
        assert self._shutdown is not None
        assert self._served is not None
        # Hypercorn is stopped by its shutdown trigger: cancelled while it
        # starts, it leaves its lifespan task pending for ever (asyncio) and the
        # socket unclosed. A cancellation of the block reaches it through
        # _stop, which sets the trigger, and cancels it only past its bound.
        assert self._serving is not None
        try:
            with self._serving:
                await serve(app, sock, self._shutdown.wait, self.limits)
        finally:
            self._served.set()

    async def _stop(self) -> None:
        """End every stream and hang, then let Hypercorn close its connections."""
        if self._app is not None:
            self._app.end_requests()
        if self._shutdown is not None and self._served is not None:
            self._shutdown.set()
            with anyio.move_on_after(_SHUTDOWN_BOUND):
                await self._served.wait()
            if self._serving is not None:
                self._serving.cancel()  # (past the bound: it is, now)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        span, self._span, self._tg = self._span, None, None
        if span is None:
            return None
        return await span.__aexit__(exc_type, exc, tb)

    def config(self, sdk_key: str = "sdk-key", **options: Any) -> Config:
        """A :class:`~aioflags.Config` that takes flags from and sends events to this server.

        ``sdk_key`` (positional or keyword, as for ``Config``) is the key the
        client sends; the server accepts any. ``base_uri``, ``stream_uri`` and
        ``events_uri`` are this server's ``url``; ``options`` are any other
        ``Config`` arguments (they may override those three too). Call it once
        the server is listening.

        Added in version 0.1.0.
        """
        if not self.url:
            raise RuntimeError("this FlagServer is not listening yet: enter it first")
        uris = {"base_uri": self.url, "stream_uri": self.url, "events_uri": self.url}
        return Config(sdk_key, **{**uris, **options})

    # ---------------------------------------------------------------- data
    @property
    def host(self) -> str:
        """The host it was asked to listen on (``127.0.0.1``, ``localhost``, ``0.0.0.0``...).

        Its rules follow it: bound to loopback, it answers only requests that
        name this machine. Added in version 0.2.0.
        """
        return self._host

    @property
    def address(self) -> str:
        """The IP address it listens on (``host`` resolved) once running; ``""`` before.

        Added in version 0.2.0.
        """
        return self._bound

    def show_guards(self, guards: Guards) -> None:
        """Show a client's guards on the console: ``server.show_guards(client.guards)``.

        ``/ui/api/state`` then carries each guard's status, the page shows
        a banner for each alerted or pinned guard (its flag, the metric,
        both arms' figures, what it pinned to) with a Release button, and
        ``POST /ui/api/guards/<name>/release`` (the console's token and
        origin rules) releases it. Each decision or release reaches open
        pages at once. Call it on the event loop the server runs on; a
        second call replaces the first's guards on the page. For an app
        whose client is in this process (a Python-built service, a test, a
        demo): ``aioflags serve`` serves flags to clients in other
        processes, whose guards it cannot see (docs/console.md).

        Added in version 0.2.0.
        """
        from ._banners import ShownGuards

        self._console.guards = ShownGuards(guards, self._push_console)
        self._push_console()

    @property
    def lens_key(self) -> str | None:
        """The key a console page needs to make lens links (None: no ``lens_secret``).

        Made anew for each server: a page opened at ``url +
        "/ui/#lens-key=" + lens_key`` keeps it (in its tab's
        ``sessionStorage``) and may make links; any other page, or local
        process, that reads the console may not (docs/console.md).
        ``aioflags serve`` prints that address at start.

        Added in version 0.2.0.
        """
        return self._console.lens_key

    @property
    def state(self) -> str:
        """The FDv2 payload state of the current data (changes with every edit)."""
        return self._data.state

    @property
    def flags(self) -> dict[str, JSONObject]:
        """A copy of the current flags."""
        return {k: dict(v) for k, v in self._data.flags.items()}

    @property
    def segments(self) -> dict[str, JSONObject]:
        """A copy of the current segments."""
        return {k: dict(v) for k, v in self._data.segments.items()}

    def set_flag(self, key: str, flag: JSONObject) -> None:
        """Create or replace a flag and push it to every open stream."""
        self._changed(self._data.put("flag", key, flag))

    def set_segment(self, key: str, segment: JSONObject) -> None:
        """Create or replace a segment and push it to every open stream."""
        self._changed(self._data.put("segment", key, segment))

    def delete_flag(self, key: str) -> None:
        """Delete a flag and push the deletion to every open stream."""
        self._changed(self._data.delete("flag", key))

    def delete_segment(self, key: str) -> None:
        """Delete a segment and push the deletion to every open stream."""
        self._changed(self._data.delete("segment", key))

    def apply_change(self, change: Change) -> None:
        """Apply one data-system change (a put or a delete), as ``FlagData`` does."""
        kind = change.kind.value
        if change.action is ChangeKind.DELETE:
            self._changed(self._data.delete(kind, change.key))
        else:
            assert change.obj is not None
            self._changed(self._data.put(kind, change.key, change.obj))

    def replace_all(
        self,
        flags: Mapping[str, JSONObject],
        segments: Mapping[str, JSONObject] | None = None,
    ) -> None:
        """Replace the whole data set; open streams get a full transfer.

        Items whose content is unchanged keep their version; the others get
        a new one, so clients announce exactly the flags that changed.
        """
        self._changed(self._data.replace_all(flags, segments or {}))

    def disconnect_streams(self, *, abort: bool = False) -> None:
        """End every open stream: cleanly, or by dropping the socket mid-body."""
        self._fanout.disconnect(abort=abort)

    def _changed(self, change: Edit) -> None:
        """Hand a change of the data on: OFREP, every SDK stream, the console."""
        for kind, key, version, item in change.items:
            self._ofrep.changed_item(kind, key, version, item)
            if item is None and kind == "flag":
                self._console.forget(key)
        if change.replaced:
            self._console.forget_all()  # the new data wins over the console's changes
        self._ofrep.notify()
        self._fanout.push(
            {FDV2_STREAM: change.fdv2.encode(), FDV1_STREAM: change.fdv1.encode()}
        )
        self._push_console()

    def _push_console(self) -> None:
        """Tell every open console page that the state changed (at most one pending)."""
        self._console.invalidate()
        self._fanout.push_full(console.EVENTS)

    def _full(self, path: str) -> bytes:
        """A stream's whole data as one message (a lagging stream catches up with it)."""
        if path == console.EVENTS:
            return self._console.state_event(self._data.flags)
        return self._data.full(path)

    # -------------------------------------------------------------- faults
    def fail(self, path: str, fault: Fault | None = None, /, **kwargs: object) -> None:
        """Apply ``fault`` (or ``Fault(**kwargs)``) to every request to ``path`` until cleared."""
        self._faults.fail(path, fault or Fault(**kwargs))  # type: ignore[arg-type]

    def script(self, path: str, *faults: Fault) -> None:
        """Answer the next requests to ``path`` with these faults, in order, then normally."""
        self._faults.script(path, faults)

    def clear_faults(self, path: str | None = None) -> None:
        """Remove the faults of ``path`` (or of every endpoint)."""
        self._faults.clear(path)

    # --------------------------------------------------------------- waits
    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is re-checked on every server event."""
        await self._signal.wait_until(predicate)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (within ``keep`` and ``keep_bytes``), oldest first."""
        return self._recorder.requests

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to ``path``."""
        return self._recorder.requests_to(path)

    async def wait_for_requests(self, path: str, count: int = 1) -> RecordedRequest:
        """Wait until ``path`` has had ``count`` requests; return the last one."""
        await self.wait_until(lambda: len(self.requests_to(path)) >= count)
        return self.requests_to(path)[count - 1]

    def open_streams(self, path: str | None = None) -> int:
        """How many stream connections are open (to ``path``, or to either SDK stream).

        A console page's event stream (``/ui/api/events``) counts only when asked by path.
        """
        return self._fanout.open_streams(path)

    async def wait_for_stream(self, path: str = FDV2_STREAM) -> None:
        """Wait until a stream to ``path`` is open."""
        await self.wait_until(lambda: self.open_streams(path) > 0)

    async def wait_for_streams_closed(self, path: str | None = None) -> None:
        """Wait until every stream connection (to ``path``) has been closed by the client."""
        await self.wait_until(lambda: self.open_streams(path) == 0)

    # ------------------------------------------------------ analytics events
    @property
    def events(self) -> list[JSONObject]:
        """Every analytics event received on ``/bulk``, in arrival order.

        A payload is counted once even if the SDK retried it (same
        ``X-LaunchDarkly-Payload-ID``), as LaunchDarkly does.
        """
        return [e for payload in self.event_payloads for e in payload]

    @property
    def event_payloads(self) -> list[list[JSONObject]]:
        """The ``/bulk`` payloads (one per flush), in arrival order."""
        # Kept as the JSON received (what it costs is what keep_bytes counts),
        # parsed when asked: parsed, 8 MiB of ``[{},{},...]`` took 200 MB.
        return [parse(body) for _, body in self._recorder.payloads]

    @property
    def diagnostic_events(self) -> list[JSONObject]:
        """Every diagnostic event received on ``/diagnostic``."""
        return [parse(body) for _, body in self._recorder.diagnostics]

    def events_of(self, kind: str) -> list[JSONObject]:
        """The received analytics events of one ``kind`` (``"feature"``, ``"summary"``...)."""
        return [e for e in self.events if e.get("kind") == kind]

    def clear_events(self) -> None:
        """Forget the analytics and diagnostic events received so far."""
        self._recorder.clear_events()

    async def wait_for_events(
        self, count: int = 1, *, kind: str | None = None
    ) -> list[JSONObject]:
        """Wait until ``count`` analytics events (of ``kind``) have arrived; return them all."""
        await self.wait_until(
            lambda: len(self.events if kind is None else self.events_of(kind)) >= count
        )
        return self.events if kind is None else self.events_of(kind)

    async def wait_for_payloads(self, count: int = 1) -> list[list[JSONObject]]:
        """Wait until ``count`` ``/bulk`` payloads have arrived; return them all."""
        await self.wait_until(lambda: len(self._recorder.payloads) >= count)
        return self.event_payloads

    def show_file_trouble(self, file: str, line: int | None, message: str) -> None:
        """Show on the console that a flag file cannot be read now, and why.

        For a server that serves a file's data (as ``aioflags serve`` does):
        the console's alert names ``file`` (and ``line``, if known) and
        ``message`` until :meth:`clear_file_trouble`; the server goes on
        serving the last good data.

        Added in version 0.2.0.
        """
        self._console.trouble = {
            "file": shown.visible(file),
            "line": line,
            "message": shown.visible(message),
        }
        self._push_console()

    def clear_file_trouble(self) -> None:
        """The flag file reads again: the console's alert goes (see :meth:`show_file_trouble`).

        Added in version 0.2.0.
        """
        if self._console.trouble is not None:
            self._console.trouble = None
            self._push_console()
