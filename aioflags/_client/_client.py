"""Client: the SDK's face. Owns the data system's task group and the HTTP client.

Lifecycle (docs/lifecycle.md): ``Client(config)`` does no I/O and needs no
event loop (construct before fork, start per worker). ``async with client``
starts the data system and waits up to ``ready_timeout`` for READY, ERROR or
FATAL, never raising because the network is bad. ``aclose()`` is idempotent,
bounded and callable from any task, the client's own handlers included.

One explicit state machine::

    IDLE ──async with──► STARTING ──first status──► RUNNING
      ▲                     │ cancelled / aclose()     │ aclose() / block exits
      └── (every task ended) ◄── CLOSING ◄─────────────┘

IDLE covers "constructed" and "closed": a closed client can be started again
unless it is FATAL. After close the status is NOT_READY (FATAL stays FATAL)
and evaluations return the default with ``CLIENT_NOT_READY``: they agree.

Structure: each ``async with`` (an *entry*) opens its own
:func:`background_group` around the caller's block, so the caller's own
exceptions leave it unwrapped, and starts one *run* in it: a runner task that
owns an inner task group where all background work runs (the supervisor,
event delivery, timers), inside a cancel scope that ``aclose()`` cancels. A
run has its own store and status layer, so a closing run can never touch the
next one. Nothing a run does raises into the caller, except a
``BaseException`` that belongs to the application (``KeyboardInterrupt``...),
which leaves ``async with`` unwrapped. A fork is noticed in the child (``os.register_at_fork``): the parent's
run is dropped there, a warning is logged on first use, and the next
``async with`` starts afresh with a new instance id and reseeded jitter.
"""

from __future__ import annotations

import enum
import functools
import importlib
import logging
import os
import random as _random
import sys
import weakref
from contextlib import asynccontextmanager
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Final,
    ParamSpec,
    TypeVar,
    cast,
    final,
)

from aioflags._core._clock import Clock, MonotonicClock
from aioflags._core._exceptions import ClientClosedError, ConfigurationError
from aioflags._core._lifespan import Span, background_group
from aioflags._core._renamed import point_to
from aioflags._datasystem._config import DataSystem, is_local
from aioflags._datasystem._context import SourceContext
from aioflags._datasystem._stores._bigsegments import StatusListeners
from aioflags._evaluation._context import Context
from aioflags._evaluation._evaluate import Matcher, finish
from aioflags._evaluation._results import Result
from aioflags._evaluation._snapshot import FlagSnapshot, detail_of

from ._config import Config
from ._events import EventBus, EventDetails, Handler, ProviderEvent, ProviderStatus
from ._hooks import HookRunner, check_hook, unhooked
from ._listeners import FlagValueChange, ValueWatcher, value_changes

# What only a running client needs (HTTP, TLS, the data sources, the store,
# analytics) is imported when it starts, before READY: not with aioflags, and
# never by an evaluation (docs/benchmarks.md, "Import"). So is anyio: the
# methods that use it import it (they run once a client runs).
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    import httpx
    from anyio.abc import TaskGroup, TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream

    from aioflags._analytics._processor import EventProcessor
    from aioflags._core._json import JSONValue
    from aioflags._datasystem._datatypes import DataSourceStatus
    from aioflags._datasystem._store import Store
    from aioflags._datasystem._stores._bigsegments import (
        BigSegments,
        BigSegmentStoreStatus,
    )
    from aioflags._datasystem._stores._gate import EvaluationGate
    from aioflags._datasystem._supervisor import Supervisor
    from aioflags._evaluation._migration import OpTracker, Stage
    from aioflags._evaluation._results import EvaluationDetail, FlagsState

    from ._hooks import Hook
    from ._status import StatusLayer

__all__ = ["Client"]

T = TypeVar("T")
P = ParamSpec("P")

logger = logging.getLogger("aioflags")
events_logger = logging.getLogger("aioflags.events")
_CLOSE_BOUND: Final = 1.0  # seconds the SDK's own cleanup steps may take (each)
#: Seconds a handler that called aclose() may run on while the client stops.
_HANDLER_BOUND: Final = 2.0
_LIVE_CLIENTS: Final[weakref.WeakSet[Client]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE_CLIENTS):
        _reset_after_fork(client)


def _reset_after_fork(client: Client) -> None:
    # One client's trouble must not stop the others' reset, and an exception
    # here would be printed by os.fork and then lost.
    try:
        client._after_fork()
    except Exception:  # pragma: no cover - defensive
        logger.exception("aioflags could not reset a client after fork")


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _new_instance_id() -> str:
    """A random UUID (version 4) in text, as ``str(uuid.uuid4())`` makes it.

    Written out because :mod:`uuid` imports :mod:`platform` (milliseconds),
    and clients are often constructed while an application is imported.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _running_parts(config: Config) -> list[str]:
    """The modules a client with ``config`` needs once it runs (not to evaluate).

    HTTP (httpx, with ssl, email, http, urllib...), the network sources, the
    store and its status, the supervisor, analytics: most of what
    ``import aioflags`` used to take (docs/benchmarks.md, "Import").
    """
    names = ["aioflags._datasystem._store", "aioflags._client._status"]
    if not config.offline:
        names += ["aioflags._client._http", "aioflags._datasystem._supervisor"]
        if config.data_system is None:
            names += [
                "aioflags._datasystem._sources._polling",
                "aioflags._datasystem._sources._streaming",
            ]
        if config.events_enabled:
            names.append("aioflags._analytics._processor")
    return names


def _import_all(names: list[str]) -> None:
    for name in names:
        importlib.import_module(name)


def _needs_tls(config: Config) -> bool:
    """Whether a client with ``config`` will send ``https://`` requests itself.

    To its flag service (unless its data system is local) and to its event
    recorder (when events are on), through its own transport (no proxy:
    httpx's transports then do TLS). A source given its own ``base_uri`` is
    not looked at: an ``https://`` one sets TLS up on its first request.
    """
    from ._http import proxied

    uris = []
    if config.data_system is None or not is_local(config.data_system):
        uris += [config.base_uri, config.stream_uri]
    if config.events_enabled:
        uris.append(config.events_uri)
    return any(uri.startswith("https://") for uri in uris) and not proxied(config)


async def _open_http(config: Config, instance_id: str) -> httpx.AsyncClient:
    """The client's ``httpx.AsyncClient``, built on worker threads (:func:`_in_thread`).

    When the client will send ``https://`` requests, their TLS transport is
    made now rather than on the first one: loading the CA bundle (tens of
    milliseconds, the GIL released) runs on one thread while another imports
    what httpx's transports need (a process's first start), and the first
    request does not wait for it. A client talking ``http://`` loads no CA
    bundle. Errors are raised as they are (``OSError``, ``ValueError``).
    """
    import anyio

    from . import _http, _transport

    tls: list[httpx.AsyncHTTPTransport] = []
    if _needs_tls(config):
        failed: list[OSError | ValueError] = []

        async def make_tls() -> None:
            try:
                await _in_thread(
                    lambda: tls.append(_transport.tls_transport(config.verify))
                )
            except (OSError, ValueError) as exc:  # raised below, not as a group
                failed.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(make_tls)
            await _in_thread(functools.partial(importlib.import_module, "httpcore"))
        if failed:
            raise failed[0]
    made: list[httpx.AsyncClient] = []
    await _in_thread(
        lambda: made.append(
            _http.make_http_client(config, instance_id, tls=tls[0] if tls else None)
        )
    )
    return made[0]


async def _in_thread(func: Callable[[], object]) -> None:
    """Run ``func`` on a worker thread (a seam for tests).

    Loading a CA bundle is 25-150 ms of blocking file and TLS work, and the
    first httpx transport imports httpcore: both are done on worker threads,
    not on the loop (:func:`_open_http`); so is importing the modules a
    running client needs (:func:`_running_parts`).
    """
    import anyio

    from aioflags._core._threads import sdk_limiter

    await anyio.to_thread.run_sync(func, limiter=sdk_limiter())


def _not_cancellation(exc: BaseException) -> BaseException | None:
    """The first exception in ``exc`` (a group, maybe) that is not a cancellation."""
    import anyio

    cancelled = anyio.get_cancelled_exc_class()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        inner = getattr(current, "exceptions", None)
        if inner is not None:
            pending.extend(inner)
        elif not isinstance(current, cancelled):
            return current
    return None


class _Phase(enum.Enum):
    """Where the client is in its life (see the module docstring)."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"


class _Entry:
    """One ``async with client`` (or ``__aenter__``): its span and its task."""

    __slots__ = ("cm", "span", "task")

    def __init__(
        self, cm: AbstractAsyncContextManager[Span], span: Span, task: int
    ) -> None:
        self.cm = cm
        self.span = span
        self.task = task


class _Run:
    """One start of the data system, in the span of one entry, with its own state."""

    __slots__ = (
        "done",
        "entry",
        "events",
        "inner",
        "layer",
        "live",
        "scope",
        "store",
        "task",
    )

    def __init__(self, entry: _Entry, store: Store, layer: StatusLayer) -> None:
        import anyio

        self.entry = entry
        self.events: EventProcessor | None = None
        self.store = store
        self.layer = layer
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.live = False  # the runner task has begun (so it will set ``done``)
        self.task: int | None = None  # the runner task's id
        self.inner: TaskGroup | None = None

    def spawn(self, func: Callable[[], Coroutine[object, object, None]]) -> None:
        """Start a status timer in this run's inner group (never after it ended)."""
        if self.inner is not None:
            self.inner.start_soon(func)


class _WarningStore:
    """Stands in for the store until the first evaluation, which it warns about once.

    Used while a client has never been started, and in a child process for a
    client that was running when the process forked. Only ``snapshot`` (or
    ``direct``) is read before a start replaces it; the first read warns (through the client) and
    puts a plain empty store in place, so evaluations pay nothing for this.
    """

    __slots__ = ("_client",)
    events: EventProcessor | None = None  # track() and friends: events are off
    gate: EvaluationGate | None = None  # evaluations: nothing to await first
    big_segments: BigSegments | None = None  # no big-segment status yet

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def snapshot(self) -> FlagSnapshot:
        client = self._client
        client._warn_misuse()
        return client._store.snapshot

    @property
    def direct(self) -> Matcher | None:  # as snapshot, for the straight-line paths
        client = self._client
        client._warn_misuse()
        return client._store.direct

    async def warm(self) -> FlagSnapshot:
        return self.snapshot  # empty: nothing to compile


@final
class Client:
    """The aioflags client: ``async with aioflags.Client(config) as client: ...``.

    Args:
        config: the configuration.
        clock: the clock for retries, failover and the grace period (tests pass
            ``aioflags.testing.FakeClock``).
        random: the random source for backoff jitter, event sampling and
            migrations (``RANDOM`` order, ``checkRatio``); a fresh one,
            reseeded in a forked child, by default.

    Evaluation methods never raise for bad data, a missing flag, a wrong type,
    an invalid context or a client that is not ready: they return the default
    with an ``ERROR`` reason.

    Added in version 0.1.0.
    """

    __slots__ = (
        "__weakref__",
        "_big_segment_listeners",
        "_bus",
        "_clock",
        "_config",
        "_entries",
        "_forked_from",
        "_hooks",
        "_instance_id",
        "_own_random",
        "_phase",
        "_pid",
        "_random",
        "_run",
        "_status_layer",
        "_store",
        "_supervisor",
    )

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        random: _random.Random | None = None,
    ) -> None:
        if not isinstance(config, Config):
            raise ConfigurationError(f"Client takes an aioflags.Config, got {config!r}")
        system = config.data_system
        if system is None and not config.offline and config.sdk_key is None:
            raise ConfigurationError(
                "an sdk_key is required to connect to the flag service "
                "(or use offline=True, or a data system that needs none such as DataSystem.file)"
            )
        self._config = config
        self._clock: Clock = clock or MonotonicClock()
        self._own_random = random is None
        self._random = random or _random.Random()
        self._instance_id = config.instance_id or _new_instance_id()
        self._bus = EventBus()
        # None until a hook is registered: evaluations then pay nothing for hooks.
        self._hooks = HookRunner(config.hooks) if config.hooks else None
        self._big_segment_listeners = StatusListeners()
        self._store = cast("Store", _WarningStore(self))  # until started
        self._phase = _Phase.IDLE
        self._pid = os.getpid()
        self._forked_from: int | None = None
        self._entries: list[_Entry] = []  # open `async with` blocks, innermost last
        self._run: _Run | None = None
        self._status_layer: StatusLayer | None = None
        self._supervisor: Supervisor | None = None
        _LIVE_CLIENTS.add(self)

    # ------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> Client:
        import anyio

        self._warn_forked()
        # What a running client needs is imported now, before READY, on a
        # worker thread (the event loop goes on meanwhile): not with aioflags,
        # and never by an evaluation. Once loaded, there is nothing to wait for.
        missing = [n for n in _running_parts(self._config) if n not in sys.modules]
        if missing:
            await _in_thread(functools.partial(_import_all, missing))
        if self._bus.status is ProviderStatus.FATAL:
            raise ClientClosedError(
                "this client is FATAL (e.g. an invalid SDK key): create a new one"
            )
        if self._phase is not _Phase.IDLE:
            raise RuntimeError(
                f"this client is already {'closing' if self._phase is _Phase.CLOSING else 'started'}: "
                "use one `async with client:` at a time (leave it, or await "
                "client.aclose(), before starting it again)"
            )
        self._phase = _Phase.STARTING  # claimed before the first await
        holder: list[_Entry] = []
        cm = background_group(functools.partial(self._on_span_exit, holder))
        try:
            span = await cm.__aenter__()
        except BaseException:
            self._phase = _Phase.IDLE
            raise
        entry = _Entry(cm, span, anyio.get_current_task().id)
        holder.append(entry)
        self._entries.append(entry)
        try:
            await self._start(entry)
        except BaseException as exc:
            self._entries.remove(entry)
            # The span's exit stops the run (shielded) and raises ``exc`` again.
            if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        import anyio

        if not self._entries:  # closed and forgotten (a fork), or exited twice
            await self.aclose()
            return None
        entry = self._entries[-1]
        if entry.task != anyio.get_current_task().id:
            raise RuntimeError("leave `async with client:` in the task that entered it")
        self._entries.pop()
        return await entry.cm.__aexit__(exc_type, exc, tb)

    def __enter__(self) -> None:
        raise TypeError(
            "aioflags.Client is an async context manager: use `async with client:`"
            " (for sync code, see docs/sync.md)"
        )

    def __exit__(self, *args: object) -> None:  # pragma: no cover - never entered
        raise TypeError("use `async with client:`")

    async def _on_span_exit(self, holder: list[_Entry]) -> None:
        """The span is closing: stop the run that lives in it; then NOT_READY."""
        run = self._run
        if run is not None and holder and run.entry is holder[0]:
            await self._stop(run)
        elif run is None:
            self._reset()  # a run that ended by itself (a crash) is closed now

    async def _start(self, entry: _Entry) -> None:
        """Start one run in ``entry``'s span and wait for its first status."""
        import anyio

        from ._status import StatusLayer

        store = self._new_store()
        store.freeze_gc = store.compile_ahead = self._config.gc_freeze
        layer = StatusLayer(
            self._bus, store, self._clock, self._config.grace_period, self._spawn
        )
        run = _Run(entry, store, layer)
        if self._config.events_enabled:
            # Recording starts now, synchronously: with ready_timeout=0 the
            # caller evaluates before the runner has even begun; delivery
            # starts once HTTP is set up.
            from aioflags._analytics._processor import EventProcessor

            run.events = EventProcessor(
                self._config, None, store, self._clock, self._random
            )
            store.attach_events(run.events)
        elif self._config.sdk_key is None and self._config._events_wanted():
            # Daemon mode needs no key for flags, but LaunchDarkly needs one to
            # receive events: say so, or every flag looks "never evaluated".
            events_logger.warning(
                "Analytics events are off: no sdk_key is configured. Flags are "
                "served, but LaunchDarkly receives no evaluations, experiment "
                "data or track() events. Pass the SDK key to Config to send "
                "them, or send_events=False to turn them off without this warning"
            )
        self._attach_gate(store)
        self._run = run
        self._store = store
        self._status_layer = layer
        self._bus.reset()
        self._bus.forward = entry.span.raise_in_host
        self._pid = os.getpid()
        try:
            await entry.span.tg.start(self._runner, run, name="aioflags client")
        except BaseException:
            if not run.live:  # cancelled before it began: nothing will set it
                self._end_run(run)
                run.done.set()
            raise
        timeout = self._config.ready_timeout
        if timeout > 0:
            with anyio.move_on_after(timeout):
                await self._bus.wait_status(
                    lambda s: s is not ProviderStatus.NOT_READY or run.done.is_set()
                )
        if run.scope.cancel_called:
            raise ClientClosedError("the client was closed while it was starting")
        if timeout > 0 and self._bus.status is ProviderStatus.NOT_READY:
            layer.ready_timed_out(timeout, self._waiting_for())
        if self._phase is _Phase.STARTING:
            self._phase = _Phase.RUNNING

    def _attach_gate(self, store: Store) -> None:
        """What this run's awaited evaluations do first, if anything.

        Attached before the run starts, so that no evaluation misses it; the
        big segments' task (store connection, status poller) starts with the
        run, and the store reader serves the refresher or the lookups.
        """
        config = self._config
        if config.offline:
            return
        from aioflags._datasystem._stores._bigsegments import BigSegments
        from aioflags._datasystem._stores._gate import EvaluationGate, Refresher
        from aioflags._datasystem._stores._lookups import StoreLookups

        big = None
        if config.big_segments is not None:
            big = BigSegments(
                config.big_segments, self._clock, self._big_segment_listeners
            )
            store.attach_big_segments(big)
        system = config.data_system
        persistent = system.store if system is not None else None
        refresher = lookups = None
        if persistent is not None and persistent.cache_ttl == 0:
            refresher = Refresher()  # every awaited evaluation reads the store
        elif persistent is not None:  # the first read; missing keys read through
            lookups = StoreLookups(
                self._clock, persistent.cache_ttl, persistent.timeout
            )
        if big is not None or refresher is not None or lookups is not None:
            store.gate = EvaluationGate(store, refresher, big, lookups)

    def _waiting_for(self) -> str:
        """What a start that is not ready yet waits for, when no error says more."""
        config = self._config
        if config.data_system is not None:
            return "no data source has answered yet"
        return (
            f"no answer yet from the flag service at {config.base_uri} and "
            f"{config.stream_uri}: is it reachable from here? A request gives "
            f"up after connect_timeout={config.connect_timeout:g} s or "
            f"read_timeout={config.read_timeout:g} s"
        )

    def _spawn(self, func: Callable[[], Coroutine[object, object, None]]) -> None:
        if self._run is not None:
            self._run.spawn(func)

    async def _stop(self, run: _Run) -> None:
        """Cancel ``run`` and wait until it has ended (every task, every socket).

        Shielded: a caller cancelled meanwhile still gets a closed client. The
        SDK's own cleanup steps are each bounded; only a handler of yours that
        shields itself from cancellation can make this wait longer.
        """
        import anyio

        self._phase = _Phase.CLOSING
        run.scope.cancel()
        with anyio.CancelScope(shield=True):
            await run.done.wait()

    def _end_run(self, run: _Run) -> None:
        """``run`` has ended: back to IDLE; if it was asked to stop, reset too."""
        if self._run is not run:
            return
        self._run = None
        self._phase = _Phase.IDLE
        self._bus.forward = None
        if run.scope.cancel_called:
            self._reset()

    def _new_store(self) -> Store:
        """A store for a run (or for a client not running), with the hooks."""
        from aioflags._datasystem._store import Store

        store = Store()
        if self._hooks is not None:
            store.attach_hooks(self._hooks)
        return store

    def _reset(self) -> None:
        """Status and evaluations agree: NOT_READY and CLIENT_NOT_READY."""
        self._store = self._new_store()
        self._bus.reset()

    async def _runner(self, run: _Run, *, task_status: TaskStatus[None]) -> None:
        import anyio

        run.live = True
        run.task = anyio.get_current_task().id
        task_status.started()
        try:
            with run.scope:
                await self._run_data_system(run)
        except Exception as exc:
            # A bug, not a network fault: the caller's task must not see it.
            logger.exception("The aioflags client failed unexpectedly")
            self._bus.emit(
                ProviderEvent.ERROR,
                error_code="GENERAL",
                message=f"internal error: {exc!r}; serving last known data",
            )
        except BaseException as exc:
            forwarded = _not_cancellation(exc)
            if forwarded is None:
                raise
            # KeyboardInterrupt, SystemExit... in one of the client's tasks:
            # it belongs to the application, unwrapped, in the caller's task.
            run.entry.span.raise_in_host(forwarded)
        finally:
            self._end_run(run)
            run.done.set()

    async def _run_data_system(self, run: _Run) -> None:
        import anyio

        config = self._config
        made: list[httpx.AsyncClient] = []
        try:
            # The inner group first: event delivery is attached before anything
            # can be reported, so even a FATAL set-up reaches the handlers.
            async with self._inner_group(run) as inner:
                big = run.store.big_segments
                if big is not None and not config.offline:
                    inner.start_soon(big.run)  # stops with `inner`
                if config.offline:
                    self._bus.emit(
                        ProviderEvent.READY,
                        message="offline: evaluations return defaults",
                    )
                    return  # the group lives on (delivery) until the client closes
                if config.ready_timeout == 0:  # nobody waited: ERROR in time
                    inner.start_soon(run.layer.unwaited, self._waiting_for())
                try:
                    made.append(await _open_http(config, self._instance_id))
                # ssl.SSLError is an OSError.
                except (OSError, ValueError) as exc:
                    message = f"cannot set up HTTP: {exc} (check Config.verify and Config.proxy)"
                    logger.error("aioflags client %s", message)
                    self._bus.emit(
                        ProviderEvent.ERROR,
                        error_code="PROVIDER_FATAL",
                        message=message,
                    )
                    return
                store = run.store
                if run.events is not None:  # analytics events (stop with `inner`)
                    run.events.use_http(made[0])
                    await inner.start(run.events.run)
                context = SourceContext(
                    selector=lambda: store.selector,
                    http=made[0],
                    config=config,
                    clock=self._clock,
                    random=self._random,
                )
                system = config.data_system or DataSystem.default()
                from aioflags._datasystem._supervisor import (
                    Supervisor,  # loaded by __aenter__
                )

                self._supervisor = Supervisor(
                    system, store, context, run.layer, self._clock
                )
                inner.start_soon(self._supervisor.run)
        finally:
            gate = run.store.gate
            if gate is not None:  # no reader any more: evaluations go on
                if gate.refresher is not None:
                    gate.refresher.stop()
                if gate.lookups is not None:
                    gate.lookups.stop()
            if made:
                with anyio.move_on_after(_CLOSE_BOUND, shield=True):
                    await made[0].aclose()

    @asynccontextmanager
    async def _inner_group(self, run: _Run) -> AsyncIterator[TaskGroup]:
        """The run's task group, with event delivery attached to it."""
        import anyio

        try:
            async with anyio.create_task_group() as inner:
                run.inner = inner
                self._bus.attach(inner)
                yield inner
        finally:
            run.inner = None
            self._bus.release()

    def _in_run(self, run: _Run) -> list[int] | None:
        """The current task and its ancestors up to ``run``'s runner, if it is one of ``run``'s.

        ``None`` when the current task is not one of ``run``'s (a handler, a
        source...).
        """
        import anyio

        tasks = {t.id: t for t in anyio.get_running_tasks()}
        task: int | None = anyio.get_current_task().id
        chain: list[int] = []
        while task is not None:
            if task == run.task:
                return chain
            chain.append(task)
            info = tasks.get(task)
            task = info.parent_id if info is not None else None
        return None

    async def aclose(self) -> None:
        """Stop the data system, close every connection, leave no task behind.

        Idempotent, callable from any task; returns once the client has
        stopped (the SDK's own steps are each bounded, so this takes a few
        seconds at most even if the servers hang; the final analytics flush
        is one of them). From one of
        the client's own handlers it asks the client to stop and returns at
        once; that handler then runs on to its end (for up to 2 seconds)
        while the rest of the client stops. Afterwards (from a handler too)
        the status is NOT_READY (FATAL stays FATAL), evaluations return the
        default with ``CLIENT_NOT_READY``, and the client can be started
        again unless it is FATAL. It does not leave the ``async with`` block:
        the block still ends where you wrote it.
        """
        self._warn_forked()
        run = self._run
        if run is None:
            if not self._entries or self._phase is _Phase.IDLE:
                self._reset()  # a run that ended by itself is closed now
            return
        chain = self._in_run(run)
        if chain is not None:
            # Waiting here would wait for this very task: request the stop
            # only, let the handler that asked finish, and be closed for it.
            self._phase = _Phase.CLOSING
            self._bus.let_finish(chain, _HANDLER_BOUND)
            run.scope.cancel()
            self._store = self._new_store()
            self._bus.close()
            return
        await self._stop(run)

    # ----------------------------------------------------------------- fork
    def _after_fork(self) -> None:
        """In a forked child: forget the parent's run (its loop, sockets and tasks).

        Only references are dropped, and nothing of the parent's loop is
        touched: the fork may have happened on any thread.
        """
        self._instance_id = self._config.instance_id or _new_instance_id()
        if self._own_random:
            self._random = _random.Random()
        if self._run is None and not self._entries:
            return  # constructed or closed before the fork: the supported pattern
        self._forked_from = self._pid
        self._store = cast("Store", _WarningStore(self))
        self._bus.after_fork()
        self._run = None
        self._entries = []
        self._status_layer = None
        self._supervisor = None
        self._phase = _Phase.IDLE

    def _warn_misuse(self) -> None:
        """First evaluation of a client never started, or forked while running."""
        store: object = self._store  # a _WarningStore in disguise, until now
        if not isinstance(store, _WarningStore):
            return
        self._store = self._new_store()
        if self._forked_from is None:
            logger.warning(
                "aioflags client evaluated before it was started: evaluations "
                "return defaults (CLIENT_NOT_READY) until `async with client:` "
                "starts it (in your app's lifespan, for example)"
            )
            return
        self._warn_forked()

    def _warn_forked(self) -> None:
        parent = self._forked_from
        if parent is None:
            return
        self._forked_from = None
        store: object = self._store
        if isinstance(store, _WarningStore):
            self._store = self._new_store()
        logger.warning(
            "aioflags client was running in process %d when it forked; in this "
            "process (%d) it has no connection and no data (status NOT_READY, "
            "evaluations CLIENT_NOT_READY) until it is started here (`async with "
            "client:`, or start() for an aioflags.blocking.Client). Construct "
            "clients before fork and start them in each worker.",
            parent,
            os.getpid(),
        )

    # ---------------------------------------------------------------- status
    @property
    def status(self) -> ProviderStatus:
        """The current provider status."""
        if self._forked_from is not None:
            self._warn_forked()
        return self._bus.status

    @property
    def status_details(self) -> EventDetails | None:
        """The status event that set the current status (its message, error code, seq).

        ``None`` while the status is the NOT_READY the client starts with (or
        returns to after it closes). The OpenFeature provider reports its
        ``message`` when initialisation does not end READY.

        Added in version 0.1.0.
        """
        return self._bus.last_status_event

    @property
    def config(self) -> Config:
        """The configuration this client was constructed with (immutable).

        Added in version 0.1.0.
        """
        return self._config

    async def wait_for_status(self, *statuses: ProviderStatus) -> ProviderStatus:
        """Wait until the status is one of ``statuses``; return it.

        Returns at once when it already is. Level-triggered: a status held
        only briefly between two checks may be missed, so wait for the set
        of statuses you can act on (``READY, ERROR, FATAL`` to wait for the
        first settled status, say) rather than for one transition. Bound it
        with your own timeout (``anyio.fail_after``, ``asyncio.timeout``);
        :meth:`wait_ready` is this with a timeout, for READY or FATAL.

        Raises:
            ValueError: no status was given.
            TypeError: a value is not a :class:`ProviderStatus`.

        Added in version 0.1.0.
        """
        if not statuses:
            raise ValueError("wait_for_status() needs at least one ProviderStatus")
        # Checked at run time too: a string ("READY") would wait forever.
        given: tuple[object, ...] = statuses  # callers may not be typed
        wrong = [s for s in given if not isinstance(s, ProviderStatus)]
        if wrong:
            raise TypeError(
                f"wait_for_status() takes ProviderStatus values, got {wrong[0]!r}"
            )
        wanted = frozenset(statuses)
        return await self._bus.wait_status(wanted.__contains__)

    @property
    def data_source_status(self) -> DataSourceStatus | None:
        """The data system's own status (state, since, last error, FDv1 fallback)."""
        return self._status_layer.data_source if self._status_layer else None

    @property
    def big_segment_store_status(self) -> BigSegmentStoreStatus | None:
        """The big-segment store's status, as its last poll saw it.

        ``None`` when big segments are not configured, or the client has not
        polled the store yet (it does at start, then every
        ``BigSegmentsConfig.status_poll_interval`` seconds).

        Added in version 0.1.0.
        """
        big = self._store.big_segments
        return big.status if big is not None else None

    def add_big_segment_store_status_listener(
        self, listener: Callable[[BigSegmentStoreStatus], None]
    ) -> Callable[[], None]:
        """Call ``listener(status)`` when the big-segment store's status changes.

        Called on the event loop with the first poll's status, then whenever
        ``available`` or ``stale`` changes; a failing listener is logged.
        Returns a function that removes it. Listeners stay across restarts of
        the client.

        Added in version 0.1.0.
        """
        return self._big_segment_listeners.add(listener)

    # ASYNC109: the public contract (API.md) names the parameter; a status is
    # returned when it passes, never an exception.
    async def wait_ready(self, timeout: float | None = None) -> ProviderStatus:  # noqa: ASYNC109
        """Wait until the status is READY (or FATAL), up to ``timeout`` seconds.

        Returns the status then; never raises because the network is bad.
        """
        import anyio

        with anyio.move_on_after(timeout):
            await self.wait_for_status(ProviderStatus.READY, ProviderStatus.FATAL)
        return self._bus.status

    def add_handler(self, event: ProviderEvent, handler: Handler) -> None:
        """Call ``handler(details)`` (sync or async) for every ``event``, in order.

        If the client is already in the status the event sets, the handler runs
        once at once with the details of the event that set it.
        """
        self._bus.add(event, handler)

    def remove_handler(self, event: ProviderEvent, handler: Handler) -> None:
        """Stop calling ``handler`` for ``event``."""
        self._bus.remove(event, handler)

    # ------------------------------------------------------ change listeners
    def add_flag_change_handler(
        self, handler: Callable[[frozenset[str]], Awaitable[None] | None]
    ) -> Callable[[], None]:
        """Call ``handler(flag_keys)`` whenever flags change; returns a remover.

        The keys include flags changed through segments and prerequisites.
        """
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        token = self._bus.add(
            ProviderEvent.CONFIGURATION_CHANGED,
            lambda details: handler(details.flags_changed),
        )
        return functools.partial(self._bus.discard, token)

    def add_flag_value_change_handler(
        self,
        key: str,
        context: Context,
        handler: Callable[[FlagValueChange], Awaitable[None] | None],
        *,
        default: JSONValue = None,
    ) -> Callable[[], None]:
        """Call ``handler(FlagValueChange)`` when ``key``'s value for ``context`` changes.

        The value is evaluated now, then again on each change of that flag;
        the handler runs only when it differs. Returns a remover.
        """
        watcher = ValueWatcher(self._snapshot_quietly, key, context, default, handler)
        token = self._bus.add(ProviderEvent.CONFIGURATION_CHANGED, watcher)
        return functools.partial(self._bus.discard, token)

    def flag_value_changes(
        self, key: str, context: Context, *, default: JSONValue = None
    ) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[FlagValueChange]]:
        """Changes as an async iterator: ``async with client.flag_value_changes(k, ctx) as it``."""
        return value_changes(
            lambda push: self.add_flag_value_change_handler(
                key, context, push, default=default
            )
        )

    # ------------------------------------------------------------ evaluation
    def snapshot(self) -> FlagSnapshot:
        """The current immutable snapshot, for sync and request-consistent evaluation."""
        return self._store.snapshot

    def _snapshot_quietly(self) -> FlagSnapshot:
        """The snapshot, without the warning an evaluation before start gives."""
        store: object = self._store
        if isinstance(store, _WarningStore):
            from aioflags._datasystem._store import Store

            return Store().snapshot
        return unhooked(self._store.snapshot)  # the SDK's own evaluations

    def add_hook(self, hook: Hook) -> None:
        """Register an evaluation and track hook, after those registered so far.

        It applies to evaluations that start after this call: on this client,
        on the snapshots it hands out, and on those handed out since its
        first hook was registered (docs/hooks.md). Call it on the client's
        event loop (or before starting it); an ``aioflags.blocking.Client``
        has an ``add_hook`` of its own that does so.

        Raises:
            ConfigurationError: ``hook`` is not an ``aioflags.Hook``, or has
                an async stage.

        Added in version 0.1.0.
        """
        check_hook(hook, "add_hook()")
        runner = self._hooks
        if runner is not None:
            observed = runner.observes_evaluations
            runner.add(hook)
            if observed or not runner.observes_evaluations:
                return
            # The first hook with an evaluation stage: the store's snapshot
            # may let the client evaluate around the hooks (HookedSnapshot).
        else:
            runner = self._hooks = HookRunner((hook,))
        store: object = self._store
        if not isinstance(store, _WarningStore):  # it attaches on replacement
            self._store.attach_hooks(runner)

    async def _evaluate(
        self,
        call: Callable[Concatenate[FlagSnapshot, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``call(snapshot, *args, **kwargs)`` on the current snapshot, after the gate if any.

        ``call`` calls one of the snapshot's methods (``_all_flags_state``),
        so that a snapshot's own override (the hooks') is what runs; the
        context among ``args`` tells big segments what it may ask.
        """
        store = self._store
        gate = store.gate
        if gate is not None:  # a store read, big-segment memberships: awaited
            return await gate.evaluate(call, *args, **kwargs)
        return call(store.snapshot, *args, **kwargs)

    async def variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value for ``context``, or ``default``."""
        # The common case in this frame: no gate, events or hooks (the
        # store's ``direct`` is then the snapshot's matcher), a valid context, a present
        # flag, read as its head: its result if it is constant, else its
        # value_ops (its code, whether it is plain, then the code's
        # operands, with results that are one object for every flag that
        # serves the same value: the reason is not read here): nothing of
        # the flag object. The context's type is checked here, at the door
        # (``__class__``: an attribute load, ~80 instructions less than
        # calling type()).
        # Anything the flag's code cannot finish alone (a prerequisite
        # chain, an abort) goes to the driver, which runs it again
        # (evaluation is pure) and handles it, and a bug in it is reported
        # as EXCEPTION (finish()); anything else (no such flag, not a valid
        # Context) to the snapshot's method.
        store = self._store
        matcher = store.direct
        if (
            matcher is not None
            and context.__class__ is Context
            and context._error is None
        ):
            head: tuple[Any, ...] | Result | None
            try:
                head = matcher.heads[key]
            except KeyError:  # first evaluated in this snapshot
                head = matcher.find_head(key)
            # None: no such flag here, for the snapshot's method (or a
            # cached store's gate, which may read it through) below.
            if head is not None:
                if type(head) is Result:
                    result = head
                else:
                    try:
                        result = head[0](head, context, matcher)
                    except Exception as exc:  # noqa: BLE001 (finish() reports it)
                        result = finish(matcher, key, context, exc)
                return default if result.variation_index is None else result.value
        # As _evaluate() does it, without a second coroutine (~1,100
        # instructions, on every hooked or recorded evaluation).
        gate = store.gate
        if gate is not None and (gate.always or not gate.passes(key)):
            return await gate.evaluate(_variation, key, context, default)
        return store.snapshot.variation(key, context, default)

    async def variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """The value, the variation index and the reason."""
        store = self._store
        matcher = store.direct
        if (
            matcher is not None
            and context.__class__ is Context
            and context._error is None
        ):
            head: tuple[Any, ...] | Result | None
            try:  # as in variation(); its own results, not variation()'s heads
                head = matcher.details[key]
            except KeyError:
                head = matcher.find_head(key, details=True)
            if head is not None:  # (None: as in variation())
                if type(head) is Result:
                    result = head
                else:
                    try:
                        result = head[0](head, context, matcher)
                    except Exception as exc:  # noqa: BLE001 (finish() reports it)
                        result = finish(matcher, key, context, exc)
                # A result that serves a variation is its own detail.
                if result.variation_index is None:
                    return detail_of(result, default)
                return result
        gate = store.gate  # as in variation()
        if gate is not None and (gate.always or not gate.passes(key)):
            return await gate.evaluate(_variation_detail, key, context, default)
        return store.snapshot.variation_detail(key, context, default)

    async def bool_variation(
        self, key: str, context: Context | None, default: bool
    ) -> bool:
        """The flag's value if it is a boolean, else ``default`` (WRONG_TYPE)."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.bool_variation(key, context, default)
        return await gate.evaluate(_bool_variation, key, context, default)

    async def int_variation(
        self, key: str, context: Context | None, default: int
    ) -> int:
        """The flag's value if it is a number (truncated), else ``default``."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.int_variation(key, context, default)
        return await gate.evaluate(_int_variation, key, context, default)

    async def float_variation(
        self, key: str, context: Context | None, default: float
    ) -> float:
        """The flag's value if it is a number, else ``default``."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.float_variation(key, context, default)
        return await gate.evaluate(_float_variation, key, context, default)

    async def string_variation(
        self, key: str, context: Context | None, default: str
    ) -> str:
        """The flag's value if it is a string, else ``default``."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.string_variation(key, context, default)
        return await gate.evaluate(_string_variation, key, context, default)

    async def json_variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value, whatever its JSON type."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.json_variation(key, context, default)
        return await gate.evaluate(_json_variation, key, context, default)

    async def bool_variation_detail(
        self, key: str, context: Context | None, default: bool
    ) -> EvaluationDetail[bool]:
        """Like :meth:`bool_variation`, with the index and reason."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.bool_variation_detail(key, context, default)
        return await gate.evaluate(_bool_variation_detail, key, context, default)

    async def int_variation_detail(
        self, key: str, context: Context | None, default: int
    ) -> EvaluationDetail[int]:
        """Like :meth:`int_variation`, with the index and reason."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.int_variation_detail(key, context, default)
        return await gate.evaluate(_int_variation_detail, key, context, default)

    async def float_variation_detail(
        self, key: str, context: Context | None, default: float
    ) -> EvaluationDetail[float]:
        """Like :meth:`float_variation`, with the index and reason."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.float_variation_detail(key, context, default)
        return await gate.evaluate(_float_variation_detail, key, context, default)

    async def string_variation_detail(
        self, key: str, context: Context | None, default: str
    ) -> EvaluationDetail[str]:
        """Like :meth:`string_variation`, with the index and reason."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.string_variation_detail(key, context, default)
        return await gate.evaluate(_string_variation_detail, key, context, default)

    async def json_variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """Like :meth:`json_variation`, with the index and reason."""
        store = self._store  # as _evaluate(), without a second coroutine
        gate = store.gate
        if gate is None or (not gate.always and gate.passes(key)):
            return store.snapshot.json_variation_detail(key, context, default)
        return await gate.evaluate(_json_variation_detail, key, context, default)

    async def all_flags_state(
        self,
        context: Context | None,
        *,
        with_reasons: bool = False,
        client_side_only: bool = False,
        details_only_for_tracked_flags: bool = False,
    ) -> FlagsState:
        """Every flag's value for ``context``, in LaunchDarkly's bootstrap shape."""
        # Every flag is evaluated: compile the cold ones first, in slices.
        await self._store.warm()
        return await self._evaluate(
            _all_flags_state,
            context,
            with_reasons=with_reasons,
            client_side_only=client_side_only,
            details_only_for_tracked_flags=details_only_for_tracked_flags,
        )

    # ------------------------------------------------------------ migrations
    async def migration_variation(
        self, key: str, context: Context | None, default_stage: Stage
    ) -> tuple[Stage, OpTracker]:
        """The migration flag's stage for ``context``, and a tracker for the operation.

        Evaluated as any flag is (hooks see the method ``migration_variation``;
        analytics events record it). A value that names no stage gives
        ``default_stage`` with a ``WRONG_TYPE`` error reason, as LaunchDarkly
        does. Record the operation's measurements on the tracker and pass it
        to :meth:`track_migration_op`; a ``Migrator`` does both for you
        (docs/migrations.md).

        Added in version 0.1.0.
        """
        stage, tracker = await self._evaluate(
            _migration_variation, key, context, default_stage
        )
        # Its consistency sampling draws from the client's random source.
        tracker._random = self._random
        return stage, tracker

    def track_migration_op(self, tracker: OpTracker) -> None:
        """Send a ``migration_op`` event with the measurements ``tracker`` holds.

        Never blocks and never raises: the event is buffered and sent with
        the next flush. A tracker that lacks what the event needs (an
        operation, an invoked origin, a valid context...) is refused, and
        the reason is logged (logger ``aioflags.migrations``). Sends nothing
        while events are off.

        Added in version 0.1.0.
        """
        from aioflags._evaluation._migration import event_of

        try:
            event = event_of(tracker)
            events = self._store.events
            if event is not None and events is not None:
                events.migration_op(event)
        except Exception:  # never raises into the application
            logger.exception("track_migration_op() failed")

    # ------------------------------------------------------ analytics events
    def track(
        self,
        event_key: str,
        context: Context,
        data: JSONValue = None,
        metric_value: float | None = None,
    ) -> None:
        """Send a custom event (a metric, a conversion) for ``context``.

        Never blocks and never raises: the event is buffered and sent with
        the next flush; bad input is logged and dropped. Sends nothing while
        events are off (see ``Config.events_enabled``) or the client is closed.
        Then runs the hooks' ``after_track`` stages (docs/hooks.md), whether
        or not events are on.

        Args:
            event_key: the event's key, as the metric in LaunchDarkly names it.
            context: who did it.
            data: any JSON value to attach.
            metric_value: a number, for numeric metrics.

        Added in version 0.1.0.
        """
        events = self._store.events
        if events is not None:
            try:
                events.track(event_key, context, data, metric_value)
            except Exception:  # never raises into the application
                logger.exception("track(%r) failed", event_key)
        hooks = self._hooks
        if hooks is not None:
            hooks.after_track(event_key, context, data, metric_value)

    def identify(self, context: Context) -> None:
        """Tell LaunchDarkly about ``context`` (an ``identify`` event).

        Never blocks and never raises; does nothing while events are off.

        Added in version 0.1.0.
        """
        events = self._store.events
        if events is not None:
            try:
                events.identify(context)
            except Exception:  # never raises into the application
                logger.exception("identify() failed")

    # ASYNC109: a bound that is part of the contract ("flush is bounded"),
    # as in wait_ready(); nothing is raised when it passes.
    async def flush(self, *, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Send the buffered analytics events now, waiting up to ``timeout`` seconds.

        Returns when the delivery (with its one retry) is over, or at the
        deadline, whichever comes first; never raises because the events
        endpoint is down. Closing the client flushes too.

        Added in version 0.1.0.
        """
        events = self._store.events
        if events is not None:
            await events.flush(timeout)

    def secure_mode_hash(self, context: Context) -> str:
        """HMAC-SHA256 of the context's fully-qualified key with the SDK key, in hex."""
        import hashlib  # its one use: not with aioflags
        import hmac

        key = (self._config.sdk_key or "").encode()
        return hmac.new(
            key, context.fully_qualified_key.encode(), hashlib.sha256
        ).hexdigest()

    def __repr__(self) -> str:
        return f"<aioflags.Client status={self._bus.status.name}>"


#: LaunchDarkly SDK names that both clients spell differently (docs/migration.md).
# What the gate calls on the snapshot it picks (ordinary calls: a snapshot's
# own override, the hooks', is what runs). Functions of the module, not
# lambdas in the methods: a lambda would make the method's arguments cells,
# which costs the straight-line path ~700 instructions per call.


def _all_flags_state(
    s: FlagSnapshot, /, c: Context | None, **options: bool
) -> FlagsState:
    return s.all_flags_state(c, **options)


def _migration_variation(
    s: FlagSnapshot, /, k: str, c: Context | None, d: Stage
) -> tuple[Stage, OpTracker]:
    return s.migration_variation(k, c, d)


def _variation(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.variation(k, c, d)


def _variation_detail(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.variation_detail(k, c, d)


def _bool_variation(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.bool_variation(k, c, d)


def _int_variation(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.int_variation(k, c, d)


def _float_variation(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.float_variation(k, c, d)


def _string_variation(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.string_variation(k, c, d)


def _json_variation(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.json_variation(k, c, d)


def _bool_variation_detail(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.bool_variation_detail(k, c, d)


def _int_variation_detail(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.int_variation_detail(k, c, d)


def _float_variation_detail(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.float_variation_detail(k, c, d)


def _string_variation_detail(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.string_variation_detail(k, c, d)


def _json_variation_detail(s: FlagSnapshot, k: str, c: Context | None, d: Any) -> Any:
    return s.json_variation_detail(k, c, d)


LAUNCHDARKLY_NAMES: Final = {
    "is_initialized": (
        "check `client.status is ProviderStatus.READY` (or STALE: serving "
        "last known data), or `await client.wait_ready(timeout)`"
    ),
    "is_offline": "read client.config.offline",
    "get_sdk_key": "read client.config.sdk_key",
    "flag_tracker": (
        "use client.add_flag_change_handler(fn) or "
        "client.add_flag_value_change_handler(key, context, fn)"
    ),
    "data_source_status_provider": (
        "read client.data_source_status, or add a handler with "
        "client.add_handler(ProviderEvent.READY / STALE / ERROR, fn)"
    ),
    "big_segment_store_status_provider": (
        "read client.big_segment_store_status, or add a listener with "
        "client.add_big_segment_store_status_listener(fn)"
    ),
    "postfork": (
        "there is nothing to call: a client running at a fork warns in the "
        "child and starts afresh when it is started there"
    ),
}

point_to(
    Client,
    "aioflags.Client",
    start=(
        "the client starts with `async with client:` (or `await "
        "client.__aenter__()`); for sync code, aioflags.blocking.Client has start()"
    ),
    close="leave the `async with client:` block, or `await client.aclose()`",
    **LAUNCHDARKLY_NAMES,
)
