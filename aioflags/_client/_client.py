"""Client: the SDK's face. Its lifecycle runs in ``_lifecycle.py``.

Lifecycle (docs/lifecycle.md): ``Client(config)`` does no I/O and needs no
event loop (construct before fork, start per worker). ``async with client``
starts the data system and waits up to ``ready_timeout`` for READY, ERROR or
FATAL, never raising because the network is bad. ``aclose()`` is idempotent,
bounded and callable from any task, the client's own handlers included. The
blocks, the run and its task groups are the :class:`Lifecycle`'s; the client
hands it the store a run serves and takes back what evaluations read.

After close the status is NOT_READY (FATAL stays FATAL) and evaluations return
the default with ``CLIENT_NOT_READY``: they agree. A fork is noticed in the
child (``os.register_at_fork``): the parent's run is dropped there, a warning
is logged on first use, and the next ``async with`` starts afresh with a new
instance id and reseeded jitter.
"""

from __future__ import annotations

import functools
import os
import random as _random
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    TypeVar,
    final,
)

from aioflags._core._clock import Clock, MonotonicClock, wall_ms
from aioflags._core._exceptions import ClientClosedError, ConfigurationError
from aioflags._core._logname import client_logger
from aioflags._core._renamed import point_to
from aioflags._datasystem._stores._bigsegments import StatusListeners
from aioflags._evaluation._context import Context
from aioflags._evaluation._pipeline import (
    BOOL_VARIATION,
    BOOL_VARIATION_DETAIL,
    FLOAT_VARIATION,
    FLOAT_VARIATION_DETAIL,
    INT_VARIATION,
    INT_VARIATION_DETAIL,
    JSON_VARIATION,
    JSON_VARIATION_DETAIL,
    STRING_VARIATION,
    STRING_VARIATION_DETAIL,
    VARIATION,
    VARIATION_DETAIL,
)
from aioflags._evaluation._snapshot import FlagSnapshot

from ._awaiting import Answered, Pending, answered
from ._config import Config
from ._evaluator import Data, Evaluator
from ._events import EventBus, EventDetails, Handler, ProviderEvent, ProviderStatus
from ._hooks import HookRunner, check_hook
from ._lifecycle import Lifecycle
from ._listeners import FlagValueChange, ValueWatcher, value_changes
from ._usage import Usage, no_figures_reason, no_usage, usage_of

# What only a running client needs (HTTP, TLS, the data sources, the store,
# analytics) is imported when it starts (_lifecycle.py), before READY: not
# with aioflags, and never by an evaluation (docs/benchmarks.md, "Import").
# So is anyio: the methods that use it import it.
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from anyio.streams.memory import MemoryObjectReceiveStream

    from aioflags._analytics._metrics import MetricFeed
    from aioflags._analytics._usage import Tally
    from aioflags._core._json import JSONValue
    from aioflags._datasystem._datatypes import DataSourceStatus
    from aioflags._datasystem._store import Store
    from aioflags._datasystem._stores._bigsegments import (
        BigSegmentStoreStatus,
    )
    from aioflags._evaluation._data import SnapshotData
    from aioflags._evaluation._migration import OpTracker, Stage
    from aioflags._evaluation._pipeline import Step
    from aioflags._evaluation._results import EvaluationDetail, FlagsState
    from aioflags._guards._scope import Guards
    from aioflags._lens._lens import Lens

    from ._hooks import Hook


__all__ = ["Client", "hosted", "openfeature_read", "own_tracker"]

T = TypeVar("T")

logger = client_logger("aioflags")
events_logger = client_logger("aioflags.events")
_LIVE_CLIENTS: Final[weakref.WeakSet[Client]] = weakref.WeakSet()
#: Makers of the hooks every client built from now on registers after
#: ``Config.hooks``, each called with the client it is built for (an
#: ``aioflags.blocking.Client`` or an OpenFeature provider builds one too):
#: how a test session reaches the clients an app builds itself. Private:
#: the pytest plugin's ``--aioflags-coverage`` adds its maker for the
#: session and removes it after. Empty (the rule), it costs a client's
#: construction one truth test, and its evaluations nothing.
PROCESS_HOOKS: Final[list[Callable[[Client], Hook]]] = []

# What the typed methods, the details and all-flags state return
# (``_awaiting.py``, issue 95): unawaited, it refuses to be used as a value.
# With the data in memory the answer is made in the method's frame: the
# class called and its two slots set, no helper's frame (~360 CPU
# instructions less); ``bool_variation``'s two common answers are made once.
# An awaitable of aioflags' own costs an ``await`` ~550 instructions more
# than a coroutine even so (+~1,400 made per call): ``variation``, which the
# speed floors measure, stays a coroutine (docs/benchmarks.md, "A forgotten
# await").
_BOOL_VARIATION: Final = "client.bool_variation"
_TRUE: Final = answered(_BOOL_VARIATION, True)
_FALSE: Final = answered(_BOOL_VARIATION, False)


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


class _WarnOnUse:
    """The data of a client not started: warns once, on the first evaluation.

    Used while a client has never been started, and in a child process for a
    client that was running when the process forked: the client's evaluator
    reads its data here (it is :class:`Data`, not a store: the store's
    module is imported when a client starts). The first read warns (through
    the client) and puts a plain empty store and evaluator in place, so
    evaluations pay nothing for this.
    """

    __slots__ = ("_client", "on_swap")

    def __init__(self, client: Client) -> None:
        self._client = client
        #: (its snapshot is the store's it puts in place: that one calls)
        self.on_swap: Callable[[], None] | None = None

    @property
    def snapshot(self) -> FlagSnapshot:
        client = self._client
        client._warn_misuse()
        return client._store.snapshot

    @property
    def data(self) -> SnapshotData:
        client = self._client
        client._warn_misuse()
        return client._store.data

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
        "_evaluator",
        "_forked_from",
        "_guards",
        "_hooks",
        "_instance_id",
        "_last_flag_keys",
        "_lens",
        "_life",
        "_loop_ended",
        "_own_random",
        "_random",
        "_start_hint",
        "_store",
        "_tally",
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
                "an sdk_key is required to connect to the flag service: pass "
                "Config(sdk_key), or set AIOFLAGS_SDK_KEY (or LAUNCHDARKLY_SDK_KEY) "
                "for Config.from_env(); or use offline=True, or a data system that "
                "needs none such as DataSystem.file"
            )
        self._config = config
        self._clock: Clock = clock or MonotonicClock()
        self._own_random = random is None
        self._random = random or _random.Random()
        self._instance_id = config.instance_id or _new_instance_id()
        #: How the messages about a client not started say to start it
        #: (aioflags.blocking.Client says its own way).
        self._start_hint = (
            "start it with `async with client:` (in your app's lifespan, for example)"
        )
        self._bus = EventBus()
        hooks: Sequence[Hook] = config.hooks
        if PROCESS_HOOKS:  # the test session's (pytest --aioflags-coverage)
            hooks = (*hooks, *(make(self) for make in PROCESS_HOOKS))
        # None until a hook is registered: evaluations then pay nothing for hooks.
        self._hooks = HookRunner(hooks) if hooks else None
        #: The flag lens (None: not configured: evaluation has no lens stage).
        self._lens: Lens | None = None
        if config.lens is not None:
            from aioflags._lens._lens import Lens

            self._lens = Lens(config.lens)
        self._big_segment_listeners = StatusListeners()
        from aioflags._guards._scope import Guards

        #: The guards (issue 98): with none configured, a cheap no-op.
        self._guards = Guards(config.guards, None if clock is None else clock.now)
        decided = getattr(config.metrics, "_guard_decided", None)
        if decided is not None and self._guards.by_flag is not None:
            self._guards.add_handler(decided)  # (aioflags.otel's counter)
        self._use(_WarnOnUse(self))  # until started
        self._forked_from: int | None = None
        #: Its run ended with its event loop (never left): said on next use.
        self._loop_ended = False
        #: Each flag's evaluations for usage(), folded in at every flush
        #: (None until a run with analytics events on starts counting).
        self._tally: Tally | None = None
        #: The flags of the last data a run served, for usage() once it ended.
        self._last_flag_keys: frozenset[str] = frozenset()
        self._life = Lifecycle(
            config,
            self._clock,
            self._bus,
            self._evaluator_for_run,
            self._serve,
            self._abandoned,
        )
        guarded, system = self._guards.by_flag, config.data_system
        if guarded is not None and system is not None and system.plane is not None:
            from aioflags._guards._plane import (
                PlaneLink,
            )  # (its counts and pins shared)

            runs = {run.config.name: run for run in guarded.values()}
            self._life.guard_link = PlaneLink(runs)
        _LIVE_CLIENTS.add(self)

    # ------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> Client:
        self._warn_forked()
        self._loop_ended = False
        await self._life.enter(self._instance_id, self._random)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._warn_forked()
        return await self._life.exit(exc_type, exc, tb)

    def __enter__(self) -> None:
        raise TypeError(
            "aioflags.Client is an async context manager: use `async with client:`"
            " (for sync code, see docs/sync.md)"
        )

    def __exit__(self, *args: object) -> None:  # pragma: no cover - never entered
        raise TypeError("use `async with client:`")

    def _evaluator_for_run(self) -> tuple[Store, Evaluator]:
        """A run's new store, and what its evaluations go through: hooks, analytics, gate."""
        store = self._new_store()
        store.freeze_gc = store.compile_ahead = self._config.gc_freeze
        evaluator = Evaluator(store, self._hooks, self._lens, self._life.label)
        config = self._config
        if config.events_enabled or (config.metrics is not None and not config.offline):
            # Recording starts now, synchronously: with ready_timeout=0 the
            # caller evaluates before the run has even begun; delivery
            # starts once HTTP is set up. With events off, metrics count:
            # the processor folds its counters and sends nothing.
            from aioflags._analytics._processor import EventProcessor
            from aioflags._analytics._usage import Tally

            if self._tally is None:  # one for the client's life: its runs share it
                self._tally = Tally(wall_ms(), self._metric_feed())
            evaluator.record(
                EventProcessor(
                    config,
                    None,
                    evaluator.record,
                    self._clock,
                    self._random,
                    tally=self._tally,
                    counting=not config.events_enabled,
                ),
                True,
            )
        if config.events_enabled:
            if self._config._events_elsewhere():
                events_logger.info(
                    "Analytics events go to %s, not to the flag service on this "
                    "machine (%s): set events_uri=%r (AIOFLAGS_EVENTS_URI) to send "
                    "them there (the console of `aioflags serve` shows them), or "
                    "send_events=False to send none",
                    self._config.events_uri,
                    self._config.base_uri,
                    self._config.base_uri,
                )
        elif self._config.sdk_key is None and self._config._events_wanted():
            # Daemon mode needs no key for flags, but LaunchDarkly needs one to
            # receive events: say so, or every flag looks "never evaluated".
            events_logger.warning(
                "Analytics events are off: no sdk_key is configured. Flags are "
                "served, but LaunchDarkly receives no evaluations, experiment "
                "data or track() events. Pass the SDK key to Config to send "
                "them, or send_events=False to turn them off without this warning"
            )
        self._attach_gate(evaluator)
        return store, evaluator

    def _metric_feed(self) -> MetricFeed | None:
        """What this client's flushes add to ``Config.metrics`` (None: no metrics)."""
        exporter = self._config.metrics
        if exporter is None:
            return None
        from aioflags._analytics._metrics import MetricFeed

        lens = self._lens
        return MetricFeed(exporter._totals, None if lens is None else lens.counts)

    def _serve(self, evaluator: Evaluator | None) -> None:
        """Evaluations go through ``evaluator`` from now on; ``None``: a fresh empty store."""
        if evaluator is None:
            self._keep_flag_keys()
            self._use(self._new_store())
        else:
            self._store = evaluator.store
            self._install(evaluator)

    def _use(self, store: Data) -> None:
        """Evaluate ``store``'s data, with the hooks, from now on (no run's parts)."""
        self._store = store
        self._install(Evaluator(store, self._hooks, self._lens))

    def _install(self, evaluator: Evaluator) -> None:
        """Evaluate through ``evaluator`` from now on (the one before lets go of its store)."""
        old: Evaluator | None = getattr(self, "_evaluator", None)
        self._evaluator = evaluator
        if old is not None and old is not evaluator:
            old.retire()

    def _keep_flag_keys(self) -> None:
        """A run ends: keep the keys of the flags it served, for :meth:`usage`."""
        if self._tally is not None:  # events on: usage() has figures
            ended = self._evaluator.store.snapshot
            if ended.initialized:
                self._last_flag_keys = ended.flag_keys

    def _attach_gate(self, evaluator: Evaluator) -> None:
        """What this run's awaited evaluations do first, if anything.

        Attached before the run starts, so that no evaluation misses it; the
        big segments' task (store connection, status poller) starts with the
        run, and the store reader serves the refresher or the lookups.
        """
        config = self._config
        system = config.data_system
        persistent = system.store if system is not None else None
        if config.offline or (config.big_segments is None and persistent is None):
            return  # nothing first: the gate's modules are not imported
        from aioflags._datasystem._stores._bigsegments import BigSegments
        from aioflags._datasystem._stores._gate import EvaluationGate, Refresher
        from aioflags._datasystem._stores._lookups import StoreLookups

        big = None
        if config.big_segments is not None:
            big = BigSegments(
                config.big_segments, self._clock, self._big_segment_listeners
            )
            evaluator.use_big_segments(big)
        refresher = lookups = None
        if persistent is not None and persistent.cache_ttl == 0:
            refresher = Refresher()  # every awaited evaluation reads the store
        elif persistent is not None:  # the first read; missing keys read through
            lookups = StoreLookups(
                self._clock, persistent.cache_ttl, persistent.timeout
            )
        if big is not None or refresher is not None or lookups is not None:
            evaluator.use_gate(
                EvaluationGate(evaluator.snapshot, refresher, big, lookups)
            )

    def _new_store(self) -> Store:
        """A store for a run (or for a client not running)."""
        from aioflags._datasystem._store import Store

        store = Store()
        store.guarded = self._guards.by_flag  # (None: no guards)
        return store

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
        await self._life.aclose()

    # ----------------------------------------------------------------- fork
    def _after_fork(self) -> None:
        """In a forked child: a new identity, and the parent's run forgotten."""
        self._instance_id = self._config.instance_id or _new_instance_id()
        self._tally = None  # the parent's evaluations are not this process's
        self._last_flag_keys = frozenset()
        if self._own_random:
            self._random = _random.Random()
        if self._life.after_fork():  # it was running: warn on first use
            self._forked_from = os.getppid()
            self._loop_ended = False
            self._use(_WarnOnUse(self))

    def _abandoned(self) -> None:
        """Its run ended with its event loop, never left: warn on first use."""
        self._loop_ended = True
        self._use(_WarnOnUse(self))

    def _warn_misuse(self) -> None:
        """First evaluation of a client never started, forked while running, or whose loop ended."""
        if not isinstance(self._store, _WarnOnUse):
            return
        self._use(self._new_store())
        if self._loop_ended:
            self._loop_ended = False
            logger.warning(
                "aioflags client evaluated after the event loop it ran on ended "
                "with it still running: evaluations return defaults "
                "(CLIENT_NOT_READY) until it is started on this loop: %s",
                self._start_hint,
            )
            return
        if self._forked_from is None:
            logger.warning(
                "aioflags client evaluated before it was started: evaluations "
                "return defaults (CLIENT_NOT_READY) until it is started: %s",
                self._start_hint,
            )
            return
        self._warn_forked()

    def _warn_forked(self) -> None:
        parent = self._forked_from
        if parent is None:
            return
        self._forked_from = None
        if isinstance(self._store, _WarnOnUse):
            self._use(self._new_store())
        logger.warning(
            "aioflags client was running in process %d when it forked; in this "
            "process (%d) it has no connection and no data (status NOT_READY, "
            "evaluations CLIENT_NOT_READY) until it is started here (`async with "
            "client:`, or start() for an aioflags.blocking.Client). Construct "
            "clients before fork and start them in each worker.",
            parent,
            os.getpid(),
        )

    # ---------------------------------------------------------------- guards
    @property
    def guards(self) -> Guards:
        """The guarded rollouts (``Config(guards=[...])``): request scope, status, release, events.

        Always there: with no guard configured, ``client.guards.request()``
        is a cheap no-op and the status is empty (docs/guards.md).

        Added in version 0.2.0.
        """
        return self._guards

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
            ClientClosedError: the client closed while waiting, or is FATAL
                (its status will not change again). A client not started
                yet is waited for: another task may be starting it.

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
        status = await self._wait_running(wanted.__contains__)
        if status not in wanted:
            waited = " or ".join(sorted(s.name for s in wanted))
            raise ClientClosedError(
                f"the aioflags client is FATAL (its SDK key was refused): "
                f"wait_for_status() waited for {waited}"
                if status is ProviderStatus.FATAL
                else f"the aioflags client closed while wait_for_status() "
                f"waited for {waited}"
            )
        return status

    async def _wait_running(
        self, wanted: Callable[[ProviderStatus], bool]
    ) -> ProviderStatus:
        """The status once ``wanted`` holds, or once the client has stopped.

        Stopped: FATAL (final: it is not started again), or a run that was
        going when the wait began, or began since, has ended. A client not
        started yet is waited for: another task may be starting it
        (``tg.start_soon(serve)``, then a wait).
        """
        life = self._life
        ended = life.ended
        return await self._bus.wait_status(
            lambda status: (
                wanted(status) or status is ProviderStatus.FATAL or life.ended != ended
            )
        )

    @property
    def plane_role(self) -> str | None:
        """This process's place on the flag plane: ``"leader"``, ``"follower"``, ``"solo"`` or None.

        ``"solo"``: its leader does not answer (stopped, silent, a lock
        nobody serves), and it reads the flag service itself, keeping its
        data, until a leader answers again (a WARNING said why). None
        without ``plane=`` in the data system, before the client starts,
        after it closes, and when the plane could not be used (this
        process then reads the flag service itself; an ERROR said why).
        See docs/scaling.md.

        Added in version 0.2.0.
        """
        return self._life.plane_role

    @property
    def data_source_status(self) -> DataSourceStatus | None:
        """The data system's own status (state, since, last error, FDv1 fallback)."""
        layer = self._life.layer
        return layer.data_source if layer is not None else None

    @property
    def big_segment_store_status(self) -> BigSegmentStoreStatus | None:
        """The big-segment store's status, as its last poll saw it.

        ``None`` when big segments are not configured, or the client has not
        polled the store yet (it does at start, then every
        ``BigSegmentsConfig.status_poll_interval`` seconds).

        Added in version 0.1.0.
        """
        big = self._evaluator.big_segments
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

        Returns the status then; never raises. If the client closes
        meanwhile, returns its status then (NOT_READY). A client not started
        yet is waited for (another task may be starting it): bound the wait
        with ``timeout`` where nothing may start it.
        """
        import anyio

        with anyio.move_on_after(timeout):
            await self._wait_running(lambda status: status is ProviderStatus.READY)
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
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
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
        """The current immutable snapshot, for sync and request-consistent evaluation.

        Its methods evaluate as this client's do: counted in analytics
        events, run through the hooks and the flag lens, each in the
        calling thread; it never waits, so big segments' memberships are
        the cached ones (docs/big-segments.md). Before the client is ready its
        evaluations answer the default with ``CLIENT_NOT_READY``; before it
        is started, the first also logs a WARNING. Callable from any
        thread: ``aioflags.blocking.Client`` evaluates through it.
        """
        return self._evaluator.snapshot()

    def _snapshot_quietly(self) -> FlagSnapshot:
        """The snapshot without hooks, and without the warning an evaluation before start gives."""
        if isinstance(self._store, _WarnOnUse):
            from aioflags._datasystem._store import Store

            return Store().snapshot
        return self._evaluator.unhooked()  # the SDK's own evaluations

    def add_hook(self, hook: Hook) -> None:
        """Register an evaluation and track hook, after those registered so far.

        It applies to evaluations that start after this call: on this client,
        and on the snapshots it hands out from then on (a snapshot taken
        before keeps the hooks it was handed out with: docs/hooks.md). The
        same hook registered twice runs twice. Call it on the client's
        event loop (or before starting it); an ``aioflags.blocking.Client``
        has an ``add_hook`` of its own that does so.

        Raises:
            ConfigurationError: ``hook`` is not an ``aioflags.Hook``, or has
                an async stage.

        Added in version 0.1.0.
        """
        check_hook(hook, "add_hook()")
        runner = self._hooks
        if runner is None:
            runner = self._hooks = HookRunner()
        runner.add(hook)
        # (runs are started with the client's runner: this one's evaluator
        # composes it from now on, and its hot path may close)
        self._evaluator.use_hooks(runner)

    async def variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value for ``context``, or ``default``.

        Await it. Unlike the typed methods and the details, it returns a
        native coroutine, so ``if client.variation(...):`` without
        ``await`` is always true, silently at run time: an awaitable that
        refuses a truth test costs an evaluation ~1,400 CPU instructions
        more, and this is the method the speed floors measure
        (docs/benchmarks.md, "A forgotten await"). Type checkers report it
        (docs/quickstart.md); ``bool_variation`` refuses it at run time.
        """
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, VARIATION, key, context, default
            )
            return VARIATION.answer(result, default)
        return await evaluator.gated(VARIATION, key, context, default)

    def variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> Coroutine[Any, Any, EvaluationDetail[JSONValue]]:
        """The value, the variation index and the reason."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, VARIATION_DETAIL, key, context, default
            )
            done: Answered[EvaluationDetail[JSONValue]] = Answered()
            done.call = "client.variation_detail"
            done.answer = VARIATION_DETAIL.answer(result, default)
            return done
        return Pending(
            evaluator.gated(VARIATION_DETAIL, key, context, default),
            "client.variation_detail",
        )

    def bool_variation(
        self, key: str, context: Context | None, default: bool
    ) -> Coroutine[Any, Any, bool]:
        """The flag's value if it is a boolean, else ``default`` (WRONG_TYPE).

        Await it. Unawaited, ``if client.bool_variation(...):`` would test
        a coroutine, always true: what it returns raises a ``TypeError``
        in a boolean context instead, naming the fix (issue 95). With the
        data in memory it is evaluated at the call (hooks run, the event
        is recorded), and awaiting it gives that answer; behind a gate (a
        persistent store's reads, big segments) when it is awaited, as
        the other methods are.
        """
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, BOOL_VARIATION, key, context, default
            )
            answer = BOOL_VARIATION.answer(result, default)
            # (True or False, but for a default of another type, which the
            # signature does not stop: one of two made once, no allocation)
            given: object = answer
            if given is True:
                return _TRUE
            if given is False:
                return _FALSE
            return answered(_BOOL_VARIATION, answer)  # (made per call)
        return Pending(
            evaluator.gated(BOOL_VARIATION, key, context, default),
            _BOOL_VARIATION,
        )

    def int_variation(
        self, key: str, context: Context | None, default: int
    ) -> Coroutine[Any, Any, int]:
        """The flag's value if it is a number (truncated), else ``default``."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, INT_VARIATION, key, context, default
            )
            done: Answered[int] = Answered()
            done.call = "client.int_variation"
            done.answer = INT_VARIATION.answer(result, default)
            return done
        return Pending(
            evaluator.gated(INT_VARIATION, key, context, default),
            "client.int_variation",
        )

    def float_variation(
        self, key: str, context: Context | None, default: float
    ) -> Coroutine[Any, Any, float]:
        """The flag's value if it is a number, else ``default``."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, FLOAT_VARIATION, key, context, default
            )
            done: Answered[float] = Answered()
            done.call = "client.float_variation"
            done.answer = FLOAT_VARIATION.answer(result, default)
            return done
        return Pending(
            evaluator.gated(FLOAT_VARIATION, key, context, default),
            "client.float_variation",
        )

    def string_variation(
        self, key: str, context: Context | None, default: str
    ) -> Coroutine[Any, Any, str]:
        """The flag's value if it is a string, else ``default``."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, STRING_VARIATION, key, context, default
            )
            done: Answered[str] = Answered()
            done.call = "client.string_variation"
            done.answer = STRING_VARIATION.answer(result, default)
            return done
        return Pending(
            evaluator.gated(STRING_VARIATION, key, context, default),
            "client.string_variation",
        )

    def json_variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> Coroutine[Any, Any, JSONValue]:
        """The flag's value, whatever its JSON type."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, JSON_VARIATION, key, context, default
            )
            done: Answered[JSONValue] = Answered()
            done.call = "client.json_variation"
            done.answer = JSON_VARIATION.answer(result, default)
            return done
        return Pending(
            evaluator.gated(JSON_VARIATION, key, context, default),
            "client.json_variation",
        )

    def bool_variation_detail(
        self, key: str, context: Context | None, default: bool
    ) -> Coroutine[Any, Any, EvaluationDetail[bool]]:
        """Like :meth:`bool_variation`, with the index and reason."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, BOOL_VARIATION_DETAIL, key, context, default
            )
            done: Answered[EvaluationDetail[bool]] = Answered()
            done.call = "client.bool_variation_detail"
            done.answer = BOOL_VARIATION_DETAIL.answer(result, default)
            return done
        return Pending(
            evaluator.gated(BOOL_VARIATION_DETAIL, key, context, default),
            "client.bool_variation_detail",
        )

    def int_variation_detail(
        self, key: str, context: Context | None, default: int
    ) -> Coroutine[Any, Any, EvaluationDetail[int]]:
        """Like :meth:`int_variation`, with the index and reason."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, INT_VARIATION_DETAIL, key, context, default
            )
            done: Answered[EvaluationDetail[int]] = Answered()
            done.call = "client.int_variation_detail"
            done.answer = INT_VARIATION_DETAIL.answer(result, default)
            return done
        return Pending(
            evaluator.gated(INT_VARIATION_DETAIL, key, context, default),
            "client.int_variation_detail",
        )

    def float_variation_detail(
        self, key: str, context: Context | None, default: float
    ) -> Coroutine[Any, Any, EvaluationDetail[float]]:
        """Like :meth:`float_variation`, with the index and reason."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, FLOAT_VARIATION_DETAIL, key, context, default
            )
            done: Answered[EvaluationDetail[float]] = Answered()
            done.call = "client.float_variation_detail"
            done.answer = FLOAT_VARIATION_DETAIL.answer(result, default)
            return done
        return Pending(
            evaluator.gated(FLOAT_VARIATION_DETAIL, key, context, default),
            "client.float_variation_detail",
        )

    def string_variation_detail(
        self, key: str, context: Context | None, default: str
    ) -> Coroutine[Any, Any, EvaluationDetail[str]]:
        """Like :meth:`string_variation`, with the index and reason."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, STRING_VARIATION_DETAIL, key, context, default
            )
            done: Answered[EvaluationDetail[str]] = Answered()
            done.call = "client.string_variation_detail"
            done.answer = STRING_VARIATION_DETAIL.answer(result, default)
            return done
        return Pending(
            evaluator.gated(STRING_VARIATION_DETAIL, key, context, default),
            "client.string_variation_detail",
        )

    def json_variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> Coroutine[Any, Any, EvaluationDetail[JSONValue]]:
        """Like :meth:`json_variation`, with the index and reason."""
        evaluator = self._evaluator
        if evaluator.gate is None:  # (the store's data, evaluated in this frame)
            result = evaluator.evaluation.step.evaluate(
                evaluator.store.data, JSON_VARIATION_DETAIL, key, context, default
            )
            done: Answered[EvaluationDetail[JSONValue]] = Answered()
            done.call = "client.json_variation_detail"
            done.answer = JSON_VARIATION_DETAIL.answer(result, default)
            return done
        return Pending(
            evaluator.gated(JSON_VARIATION_DETAIL, key, context, default),
            "client.json_variation_detail",
        )

    def all_flags_state(
        self,
        context: Context | None,
        *,
        with_reasons: bool = False,
        client_side_only: bool = False,
        details_only_for_tracked_flags: bool = False,
    ) -> Coroutine[Any, Any, FlagsState]:
        """Every flag's value for ``context``, in LaunchDarkly's bootstrap shape.

        Await it: unawaited, what it returns raises a ``TypeError`` that
        says so where it is used as the state (``.to_json()``,
        ``.valid``, ``bool()``).
        """
        return Pending(
            self._evaluator.all_flags_state(
                context,
                with_reasons=with_reasons,
                client_side_only=client_side_only,
                details_only_for_tracked_flags=details_only_for_tracked_flags,
            ),
            "client.all_flags_state",
        )

    # ------------------------------------------------------------ migrations
    async def migration_variation(
        self, key: str, context: Context | None, default_stage: Stage
    ) -> tuple[Stage, OpTracker]:
        """The migration flag's stage for ``context``, and a tracker for the operation.

        Evaluated as any flag is (hooks see the method ``migration_variation``;
        analytics events record it). A value that names no stage gives
        ``default_stage`` with a ``WRONG_TYPE`` error reason, as LaunchDarkly
        does, logged at WARNING once per flag and value. Record the operation's measurements on the tracker and pass it
        to :meth:`track_migration_op`; a ``Migrator`` does both for you
        (docs/migrations.md).

        Added in version 0.1.0.
        """
        stage, tracker = await self._evaluator.evaluate(
            FlagSnapshot.migration_variation, key, context, default_stage
        )
        return stage, own_tracker(self, tracker)

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
            events = self._evaluator.events
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
        events = self._evaluator.events
        if events is not None:
            try:
                events.track(event_key, context, data, metric_value)
            except Exception:  # never raises into the application
                logger.exception("track(%r) failed", event_key)
        if self._guards.by_flag is not None:  # a guard metric, in a request
            self._guards.track(event_key, metric_value)
        hooks = self._hooks
        if hooks is not None:
            hooks.after_track(event_key, context, data, metric_value)

    def identify(self, context: Context) -> None:
        """Tell LaunchDarkly about ``context`` (an ``identify`` event).

        Never blocks and never raises; does nothing while events are off.

        Added in version 0.1.0.
        """
        events = self._evaluator.events
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
        events = self._evaluator.events
        if events is not None:
            await events.flush(timeout)

    def usage(self) -> Usage:
        """Each flag's evaluations for the life of the client, and the flags never evaluated.

        Per flag: how many evaluations, which values they served and how
        often, and when it was last evaluated (to within one
        ``flush_interval``); and the flags of the current data that were
        never evaluated since the client first started. Prerequisites'
        evaluations count. Made from the counters analytics events keep for
        LaunchDarkly's summary, which each flush folds into the client's
        totals: evaluations cost nothing more for it. With analytics events
        off (``config.events_enabled`` is False) there are no such counters:
        the result's ``available`` is False, it has no figures, and its
        ``reason`` says why. ``to_dict()`` gives it as JSON-ready values.
        The flags never evaluated are those of the current data, or of the
        last data the client had while it is not ready or once it closed.

        Never blocks on I/O; it copies the counters of the window not yet
        flushed, under the lock evaluations count under, and makes a value
        per flag evaluated (~2.5 ms for 1,000 flags): call it for a report,
        not per request. Call it on the client's event loop (an
        ``aioflags.blocking.Client`` has a ``usage()`` of its own that does
        so). It answers after the client closed too, with the figures of its
        life until then (docs/events.md, "Usage").

        Added in version 0.1.0.
        """
        tally = self._tally
        if tally is None:
            return no_usage(no_figures_reason(self._config))
        events = self._evaluator.events
        pending = events.recorder.counted() if events is not None else ()
        data = self._snapshot_quietly()
        now_ms = wall_ms()
        return usage_of(
            tally.read(pending, now_ms),
            since_ms=tally.since_ms,
            counting=events is not None,
            flag_keys=data.flag_keys if data.initialized else self._last_flag_keys,
            overridden=None if self._lens is None else self._lens.counts(),
            now_ms=now_ms,
        )

    def secure_mode_hash(self, context: Context) -> str:
        """HMAC-SHA256 of the context's fully-qualified key with the SDK key, in hex.

        Raises:
            TypeError: ``context`` is not an :class:`aioflags.Context`.
        """
        import hashlib  # its one use: not with aioflags
        import hmac

        given: object = context  # checked at run time: callers may not be typed
        if not isinstance(given, Context):
            raise TypeError(
                "secure_mode_hash() takes an aioflags.Context "
                f"(aioflags.Context.create(key)), got {context!r}"
            )
        key = (self._config.sdk_key or "").encode()
        return hmac.new(
            key, context.fully_qualified_key.encode(), hashlib.sha256
        ).hexdigest()

    def __repr__(self) -> str:
        return f"<aioflags.Client status={self._bus.status.name}>"


def hosted(config: Config) -> Client:
    """The async client an ``aioflags.blocking.Client`` runs on its thread.

    What differs from ``Client(config)`` is what the blocking client needs
    of it: the messages about a client not started say its way
    (``start()`` or ``with client:``), and its flag lens, if configured,
    reads tokens from the start (``aioflags.lens.scope()`` is the only way
    a blocking client has to set one: no middleware is ever made for it).
    """
    client = Client(config)
    client._start_hint = "call client.start() or use `with client:`"
    if client._lens is not None:
        client._lens.serve()
    return client


def own_tracker(client: Client, tracker: OpTracker) -> OpTracker:
    """``tracker``, its consistency sampling drawing from ``client``'s random source.

    What :meth:`Client.migration_variation` gives its trackers, and the
    blocking client gives those its snapshot makes (``Client(random=...)``;
    a bare snapshot's draw from a source of their own).
    """
    tracker._random = client._random
    return tracker


def openfeature_read(
    client: Client,
) -> tuple[ProviderStatus, FlagSnapshot, SnapshotData, Step]:
    """``client.status`` and ``client.snapshot()``, with that snapshot's data and steps, in one call.

    The OpenFeature provider's read per evaluation (issue 96): what the
    property and the method give (the fork check first, as the property
    makes it), without their frames; and the snapshot's data and its
    composition's outermost step, which the provider runs itself
    (``Evaluation.answer`` without its frame and the method's answer, on
    an answer it keeps).
    """
    if client._forked_from is not None:
        client._warn_forked()
    status = client._bus.status
    # (Evaluator.snapshot's test of the snapshot it made, inline: the same
    # store data, its snapshot; else the method makes it)
    evaluator = client._evaluator
    made = evaluator._made
    if made is not None and made[0] is evaluator.store.snapshot:
        snapshot = made[1]
    else:
        snapshot = evaluator.snapshot()
    return status, snapshot, snapshot._data, snapshot._evaluation.step


#: LaunchDarkly SDK names that both clients spell differently (docs/migration.md).
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
