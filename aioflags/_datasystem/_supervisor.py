"""The supervisor: one task that runs the data system's sources (protocol.md §7).

State machine (also in docs/data-system.md)::

    start ──► INITIALIZERS ──(defined selector)──► SYNCHRONIZERS ◄─┐
                 │  failure/no selector: next one       │  FALLBACK: next (wraps)
                 │  all tried ───────────────────────►  │  RECOVER: back to primary
                 │                                      │  REMOVE: drop it for good;
                 │                                      │          none left ──► OFF
                 └──(directive)──┐      ┌──(directive)──┘
                                 ▼      ▼
                   apply the payload, close the source,
                   cancel the FDv2 scope
                                 │
               FDv1 poller configured? ──no──► OFF (no retries)
                                 │ yes
                                 ▼
                              FDV1 (one-way, for the life of the client)

An initializer that gives no result within ``initializing_timeout`` is
cancelled and the next source starts. A synchronizer run fails over when it
stays INITIALIZING for
``initializing_timeout`` or INTERRUPTED for ``interrupted_timeout``; a run on a
fallback synchronizer returns to the primary after ``recovery_after`` VALID.
The timings are tracked per run, so a new synchronizer that hangs fails over
even when the previous one left the status VALID.

Faults are isolated: an exception escaping a source is treated as that
source failing, logged with its traceback unless it is a ``SourceError`` (a
source ending with a reason, whose message is the report). Nothing escapes
into the task group that the client owns.
"""

from __future__ import annotations

import enum
import logging
import math
from contextlib import aclosing, nullcontext
from typing import TYPE_CHECKING, Final, Protocol, TypeGuard, TypeVar
from urllib.parse import urlsplit

import anyio

from aioflags._core._exceptions import ProtocolError, SourceError
from aioflags._core._logname import client_logger

from ._datatypes import (
    Basis,
    DataSourceStatus,
    ErrorInfo,
    ErrorKind,
    SourceState,
    Update,
)
from ._stores._mode import StoreMode

# The persistent-store machinery (``_stores/_sources.py``, ``_writer.py``
# and what they share, ``_base.py``) is imported by a data system that has
# a store: a client without one never loads it (tests/test_import.py).

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager
    from random import Random

    from anyio.abc import TaskStatus

    from aioflags._core._clock import Clock

    from ._config import DataSystem
    from ._context import InitializerFactory, SourceContext, SynchronizerFactory
    from ._datatypes import ChangeSet
    from ._mirror import EventMirror
    from ._plane._config import Plane
    from ._plane._follower import Following
    from ._plane._leader import PlaneServer
    from ._sources._saved import Preload, StateSaver
    from ._store import Store
    from ._stores._gate import Refresher
    from ._stores._lookups import StoreLookups
    from ._stores._writer import StoreWriter

__all__ = ["DataSystemListener", "Supervisor"]

logger = client_logger("aioflags.datasource")

#: The ``source`` field of a failure's log record, from its URL's path (the
#: names the connection records use).
_SOURCES: Final = (
    ("/sdk/stream", "fdv2-stream"),
    ("/sdk/poll", "fdv2-poll"),
    ("/sdk/latest-all", "fdv1-poll"),
    ("/all", "fdv1-stream"),
)


def _source_of(url: str) -> str | None:
    path = urlsplit(url).path
    return next((name for end, name in _SOURCES if path.endswith(end)), None)


T = TypeVar("T")


class DataSystemListener(Protocol):
    """What the supervisor reports to (the client's status layer)."""

    def data_source_status(self, status: DataSourceStatus) -> None:
        """The data system's status changed."""

    def data_changed(self, flags: frozenset[str], origin: str | None = None) -> None:
        """A change set was applied; ``flags`` may have changed value.

        ``origin``: where the data came from, when not the network (the
        saved state's words, for the READY event).
        """


def _effective(state: SourceState, current: SourceState) -> SourceState:
    """Interrupted before it was ever valid is still initializing (protocol.md §8)."""
    if state is SourceState.INTERRUPTED and current is SourceState.INITIALIZING:
        return SourceState.INITIALIZING
    return state


def _is_update(item: object) -> TypeGuard[Update]:
    """Runtime guard: custom sources are user code and may yield anything."""
    return isinstance(item, Update)


def _is_basis(item: object) -> TypeGuard[Basis]:
    """Runtime guard: custom sources are user code and may yield anything."""
    return isinstance(item, Basis)


#: How long a follower may be without a leader before it says its data may be old.
_LEADERLESS: Final = 1.0


class _Retry:
    """A follower's waits between attempts to reach a leader: 5 ms doubling to 500 ms, jittered."""

    __slots__ = ("_delay", "_random")

    def __init__(self, random: Random) -> None:
        self._random = random
        self._delay = 0.005

    def reset(self) -> None:
        self._delay = 0.005

    def next(self) -> float:
        delay = self._delay
        self._delay = min(delay * 2, 0.5)
        return delay * (0.5 + self._random.random() / 2)


class _Outcome(enum.Enum):
    FDV1 = "fdv1"
    REMOVE = "remove"
    FALLBACK = "fallback"
    RECOVER = "recover"


class _Timeout:
    """Marker: the read deadline passed before the source yielded."""


_TIMEOUT: Final = _Timeout()


class _StatusTracker:
    """Data-source status rules (protocol.md §8)."""

    def __init__(self, listener: DataSystemListener, clock: Clock) -> None:
        self._listener = listener
        self._clock = clock
        self.status = DataSourceStatus(
            state=SourceState.INITIALIZING, since=clock.now()
        )
        #: Told each new status too (a plane's leader, for its followers).
        self.also: Callable[[DataSourceStatus], None] | None = None

    def crashed(self, name: str, exc: Exception, state: SourceState) -> None:
        """A source (or the supervisor) raised: report it.

        A :class:`SourceError` is a source ending with a reason: its message
        is the report. Anything else is a bug: logged with its traceback.
        """
        if isinstance(exc, SourceError):
            kind = (
                ErrorKind.INVALID_DATA
                if isinstance(exc, ProtocolError)
                else ErrorKind.ERROR_RESPONSE
                if exc.status_code
                else ErrorKind.NETWORK_ERROR
            )
            error = ErrorInfo(
                kind=kind,
                status_code=exc.status_code,
                message=f"{name}: {exc}",
                time=self._clock.now(),
            )
        else:
            logger.exception("%s failed unexpectedly", name)
            error = ErrorInfo(
                kind=ErrorKind.UNKNOWN,
                message=f"{name} raised {exc!r}",
                time=self._clock.now(),
            )
        self.update(state, error)

    def update(
        self,
        state: SourceState,
        error: ErrorInfo | None = None,
        *,
        fdv1: bool | None = None,
    ) -> None:
        old = self.status
        state = _effective(state, old.state)
        if error is not None:
            # The status carries the message; the log keeps the history of them.
            level = logging.ERROR if state is SourceState.OFF else logging.WARNING
            logger.log(
                level,
                "aioflags data source: %s",
                error.message,
                extra={
                    "url": error.url or None,
                    "source": _source_of(error.url) if error.url else None,
                    "status_code": error.status_code or None,
                    "error_kind": error.kind.value,
                    "state": state.value,
                },
            )
        fallback = old.fdv1_fallback if fdv1 is None else fdv1
        if state is old.state and error is None and fallback == old.fdv1_fallback:
            return
        self.status = DataSourceStatus(
            state=state,
            since=old.since if state is old.state else self._clock.now(),
            error=error if error is not None else old.error,
            fdv1_fallback=fallback,
        )
        self._listener.data_source_status(self.status)
        if self.also is not None:
            self.also(self.status)


class Supervisor:
    """Runs initializers, then synchronizers with failover, then maybe FDv1.

    Owned by the client, which starts ``supervisor.run`` in its run's task group.
    """

    def __init__(
        self,
        system: DataSystem,
        store: Store,
        context: SourceContext,
        listener: DataSystemListener,
        clock: Clock,
        *,
        refresher: Refresher | None = None,
        lookups: StoreLookups | None = None,
        environment: Callable[[str], None] | None = None,
        preload: Preload | None = None,
    ) -> None:
        self._system = system
        #: The saved state, read beside the client's start (None: read here).
        self._preload = preload
        self._store = store
        #: Store reads on demand (the store's cache is off), if the client has one.
        self._refresher = refresher
        #: The first read and keys read through (the store's cache is on), if any.
        self._lookups = lookups
        #: Told the environment's id when the flag service names it (the hooks').
        self._environment = environment
        self._context = context
        self._listener = listener
        self._clock = clock
        self._status = _StatusTracker(listener, clock)
        self._fdv2_scope: anyio.CancelScope | None = None
        # Set once, when the directive arrives and an FDv1 source is configured.
        self._run_fdv1 = False
        self._writer: StoreWriter | None = None
        #: Saves the network's data to ``DataSystem.saved_state`` (None: not asked).
        self._saver: StateSaver | None = None
        self._apply_lock = anyio.Lock()
        #: With a flag plane: the applied data as event texts (for followers,
        #: and to serve them at once if this process comes to lead), the
        #: server while it leads, and its role (docs/scaling.md).
        self._mirror: EventMirror | None = None
        self._server: PlaneServer | None = None
        self.plane_role: str | None = None
        if system.plane is not None:
            from ._mirror import EventMirror

            self._mirror = EventMirror()
        # The sources have applied data: the persistent store is not served any more.
        self._delivered = False
        # A store and sources: the store is served beside them until they deliver.
        self._store_beside_sources = system.store is not None and bool(
            system.initializers or system.synchronizers
        )
        # A store and no sources at all: daemon mode, the store is the synchronizer.
        self._synchronizer_factories = system.synchronizers
        if system.store is not None and not self._store_beside_sources:
            from ._stores._sources import daemon_synchronizer

            self._synchronizer_factories = (
                daemon_synchronizer(system.store, self._refresher, self._lookups),
            )

    def _environment_id(self, environment_id: str | None) -> None:
        """A source named its environment (``X-LD-EnvID``): pass it on."""
        if environment_id and self._environment is not None:
            self._environment(environment_id)

    @property
    def status(self) -> DataSourceStatus:
        """The current data-source status."""
        return self._status.status

    async def run(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The supervisor task. Returns when the data system is OFF."""
        # Read-write mode: applied change sets are also written to the store.
        # With sources, the store is served beside them until they deliver.
        system, store = self._system, self._system.store
        writes = system.store_mode is StoreMode.READ_WRITE
        if store is None:
            opened: AbstractAsyncContextManager[StoreWriter | None] = nullcontext()
        else:
            from ._stores._sources import read_until_initialized
            from ._stores._writer import open_writer

            opened = open_writer(store if writes else None, self._clock)
        async with opened as writer, anyio.create_task_group() as store_reader:
            self._writer = writer
            saved = system.saved_state
            if saved is not None:
                from ._sources._saved import StateSaver

                self._saver = StateSaver(saved, self._clock)
                store_reader.start_soon(self._saver.run)
            # Compiles cold flags and merges delta overlays in the background.
            store_reader.start_soon(self._store.maintain)
            if store is not None and (system.initializers or system.synchronizers):
                store_reader.start_soon(  # (imported above, with a store)
                    read_until_initialized,
                    store,
                    self._clock,
                    lambda: self._delivered,
                    self._apply_from_store,
                    self._refresher,
                    self._lookups,
                )
            try:
                if system.plane is None:
                    await self._run(task_status=task_status)
                else:
                    task_status.started()
                    try:
                        await self._on_plane(system.plane)
                    except Exception as exc:  # noqa: BLE001 - crashed() logs the traceback
                        # A bug of ours: the last known data stays served.
                        self._status.crashed(
                            "The aioflags flag plane", exc, SourceState.OFF
                        )
            finally:
                if self._saver is not None:  # what it has not saved yet
                    await self._saver.close()
            store_reader.cancel_scope.cancel()

    async def _run(
        self,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
        resume: bool = False,
    ) -> None:
        """The data system, until it is OFF; ``resume``: from the data held (no initializer)."""
        task_status.started()
        try:
            # The directive cancels this scope from inside: whatever FDv2 work
            # is still under way (a source, a failover timer) stops there.
            with anyio.CancelScope() as self._fdv2_scope:
                await self._fdv2(resume=resume)
            if self._run_fdv1:
                await self._fdv1()
        except Exception as exc:  # noqa: BLE001 - crashed() logs the traceback
            # A bug of ours: the last known data stays served.
            self._status.crashed("The aioflags data system", exc, SourceState.OFF)

    # ----------------------------------------------------------------- FDv2
    def _fall_back_to_fdv1(self) -> None:
        """The directive arrived (payload applied, source closed): leave FDv2 for good."""
        self._run_fdv1 = self._system.fdv1_fallback is not None
        if self._run_fdv1:
            logger.warning(
                "The flag service directed a fallback to FDv1: switching for good"
            )
            self._status.update(self._status.status.state, fdv1=True)
        else:
            logger.warning(
                "The flag service sent the FDv1 fallback directive and no FDv1 source is "
                "configured: the data system is OFF, serving last known data"
            )
            self._status.update(SourceState.OFF, fdv1=True)
        assert self._fdv2_scope is not None
        self._fdv2_scope.cancel()

    async def _fdv2(self, *, resume: bool = False) -> None:
        if not resume and await self._initializers():
            self._fall_back_to_fdv1()
        elif self._synchronizer_factories:
            await self._synchronizers()

    async def _initializers(self) -> bool:
        """Run initializers; return True if the fallback directive arrived."""
        saved = self._system.saved_state
        for index, factory in enumerate(self._system.initializers):
            if factory is saved and self._preload is not None:
                if await self._preloaded(self._preload):  # read (and applied)
                    self._mirrored(self._preload.take())
                continue
            basis = await self._first(factory, f"initializer {index}")
            if basis is None:
                continue
            self._environment_id(basis.environment_id)
            if basis.change_set is not None:
                origin = (
                    saved.origin() if saved is not None and factory is saved else None
                )
                await self._apply(
                    basis.change_set, persist=basis.persist, origin=origin
                )
            elif basis.error is not None:
                self._status.update(SourceState.INTERRUPTED, basis.error)
            if basis.fallback_to_fdv1:
                return True
            if basis.change_set is not None and basis.change_set.selector.defined:
                return False
        if not self._synchronizer_factories:
            # Nothing to keep data fresh: what the initializers gave is final.
            self._status.update(
                SourceState.VALID if self._store.initialized else SourceState.OFF
            )
        return False

    async def _preloaded(self, preload: Preload) -> bool:
        """Wait for the saved state read beside the start; False: given up.

        It has ``initializing_timeout``, as every initializer has: a read
        stuck on a hung network mount would otherwise hold the start for
        good. Given up, nothing of the file is applied (the network's data
        must not be overwritten by it later); a file being applied when
        the time is up is waited for (that is work on the loop, not I/O).
        """
        timeout = self._system.initializing_timeout
        async with anyio.create_task_group() as group:

            async def timer() -> None:
                await self._clock.sleep(timeout)
                group.cancel_scope.cancel()

            if not math.isinf(timeout):
                group.start_soon(timer)
            await preload.done.wait()
            group.cancel_scope.cancel()
        if preload.done.is_set() or not preload.give_up():
            await preload.done.wait()
            return True
        logger.warning(
            "The saved state in %s was not read within %g s: starting the next "
            "data source (what the read gives when it ends is dropped)",
            preload.saved.path,
            timeout,
        )
        return False

    async def _first(self, factory: InitializerFactory, name: str) -> Basis | None:
        """The initializer's first result; None if it ended, failed or took too long.

        It has ``initializing_timeout`` to answer: a server that trickles a
        byte at a time never trips the read timeout, and would stall the
        start for good while a healthy synchronizer waits its turn.
        """
        timeout = self._system.initializing_timeout
        deadline = None if math.isinf(timeout) else self._clock.now() + timeout
        try:
            async with aclosing(factory(self._context)) as gen:
                while True:
                    item = await self._next(gen, deadline)
                    if item is None:
                        return None
                    if isinstance(item, _Timeout):
                        logger.warning(
                            "Data source %s gave no result within %g s: "
                            "starting the next data source",
                            name,
                            timeout,
                        )
                        return None
                    if _is_basis(item):
                        return item
                    logger.error("%s yielded %r, not a Basis; ignoring it", name, item)
        except Exception as exc:  # noqa: BLE001 - crashed() logs the traceback
            self._status.crashed(f"Data source {name}", exc, SourceState.INTERRUPTED)
        return None

    async def _synchronizers(self) -> None:
        active = list(self._synchronizer_factories)
        index = 0
        while active:
            outcome = await self._run_synchronizer(active[index], index)
            if outcome is _Outcome.FDV1:
                self._fall_back_to_fdv1()
                return
            if outcome is _Outcome.REMOVE:
                del active[index]
                if index >= len(active):
                    index = 0
            elif outcome is _Outcome.RECOVER:
                index = 0
            else:
                index = (index + 1) % len(active)
        logger.error(
            "Every aioflags synchronizer has stopped: %s",
            "serving last known data"
            if self._store.initialized
            else "no flag data was received, evaluations return defaults",
        )
        self._status.update(SourceState.OFF)

    def _deadline(
        self, state: SourceState, since: float, index: int
    ) -> tuple[float | None, _Outcome]:
        system = self._system
        if state is SourceState.INITIALIZING:
            return since + system.initializing_timeout, _Outcome.FALLBACK
        if state is SourceState.INTERRUPTED:
            return since + system.interrupted_timeout, _Outcome.FALLBACK
        if index != 0:
            return since + system.recovery_after, _Outcome.RECOVER
        return None, _Outcome.FALLBACK

    async def _run_synchronizer(
        self, factory: SynchronizerFactory, index: int
    ) -> _Outcome:
        name = f"synchronizer {index}"
        run_state, since = SourceState.INITIALIZING, self._clock.now()
        try:
            async with aclosing(factory(self._context)) as gen:
                while True:
                    deadline, on_timeout = self._deadline(run_state, since, index)
                    # (one item a step: the last is not held while the
                    # source waits for the next, nor its change set)
                    step = await self._step(gen, deadline, name, run_state, on_timeout)
                    if isinstance(step, _Outcome):
                        return step
                    if step is not run_state:
                        run_state, since = step, self._clock.now()
        except Exception as exc:  # noqa: BLE001 - crashed() logs the traceback
            self._status.crashed(f"Data source {name}", exc, SourceState.INTERRUPTED)
            return _Outcome.REMOVE

    async def _step(
        self,
        gen: AsyncIterator[Update],
        deadline: float | None,
        name: str,
        run_state: SourceState,
        on_timeout: _Outcome,
    ) -> _Outcome | SourceState:
        """Take and handle a synchronizer's next item: how its run ends, or its state now."""
        item = await self._next(gen, deadline)
        if item is None:
            logger.info("Data source %s ended", name)
            return _Outcome.REMOVE
        if isinstance(item, _Timeout):
            logger.warning(
                "Data source %s was %s for too long: %s",
                name,
                run_state.value,
                on_timeout.value,
            )
            return on_timeout
        if not _is_update(item):
            logger.error("%s yielded %r, not an Update; ignoring it", name, item)
            return run_state
        outcome = await self._handle(item)
        if outcome is not None:
            return outcome
        return _effective(item.state, run_state)

    async def _next(
        self, gen: AsyncIterator[T], deadline: float | None
    ) -> T | _Timeout | None:
        """The next item, ``None`` at the end, or ``_TIMEOUT`` past the deadline."""
        if deadline is None:
            try:
                return await gen.__anext__()
            except StopAsyncIteration:
                return None
        remaining = deadline - self._clock.now()
        if remaining <= 0:
            return _TIMEOUT
        result: T | _Timeout | None = _TIMEOUT
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:

            async def timer() -> None:
                await self._clock.sleep(remaining)
                tg.cancel_scope.cancel()

            tg.start_soon(timer)
            try:
                result = await gen.__anext__()
            except StopAsyncIteration:
                result = None
            except Exception as exc:  # noqa: BLE001 - re-raised below, unwrapped
                failure = exc  # raised here, the group would wrap it in a group
            tg.cancel_scope.cancel()
        if failure is not None:
            try:
                raise failure
            finally:
                del failure
        return result

    async def _handle(self, update: Update) -> _Outcome | None:
        self._environment_id(update.environment_id)
        if update.change_set is not None:
            await self._apply(update.change_set)
        if update.state is SourceState.VALID:
            self._status.update(SourceState.VALID, update.error)
        elif update.fallback_to_fdv1:
            # A switch, not an outage: keep the state, record the error.
            self._status.update(self._status.status.state, update.error)
        else:
            # One synchronizer going OFF is not the data system going OFF: the
            # next one takes over; OFF is reported when none is left.
            self._status.update(SourceState.INTERRUPTED, update.error)
        if update.fallback_to_fdv1:
            return _Outcome.FDV1
        if update.state is SourceState.OFF:
            return _Outcome.REMOVE
        return None

    async def _apply(
        self, change_set: ChangeSet, *, persist: bool = True, origin: str | None = None
    ) -> None:
        async with self._apply_lock:
            changed = await self._store.apply(change_set)
            self._delivered = True
        lookups = self._lookups
        if lookups is not None and self._store_beside_sources:
            # The sources delivered: their data is authoritative, nothing is
            # waited for or read through from the store from now on.
            lookups.stop()
        self._mirrored(change_set)
        # (on a plane, only its leader writes: the data is the same)
        persist = persist and self.plane_role != "follower"
        if persist and self._writer is not None:
            self._writer.submit(change_set)
        if persist and self._saver is not None:
            self._saver.submit(change_set)
        self._listener.data_changed(changed, origin)

    async def _apply_from_store(self, change_set: ChangeSet) -> None:
        """The store's data, unless the sources delivered first (never written back)."""
        async with self._apply_lock:
            if self._delivered:
                return
            changed = await self._store.apply(change_set)
        self._mirrored(change_set)
        self._listener.data_changed(changed)

    def _mirrored(self, change_set: ChangeSet | None) -> None:
        """A change set applied beside ``_apply`` (saved state read at start, the store's data): to the plane too."""
        mirror = self._mirror
        if mirror is not None and change_set is not None:
            events = mirror.fold(change_set)
            if self._server is not None:
                self._server.publish(change_set, events)

    # ---------------------------------------------------------------- plane
    async def _on_plane(self, plane: Plane) -> None:
        """Lead or follow on ``plane`` until the client closes (docs/scaling.md).

        Lead while this process holds the lock; else follow the leader's
        socket, and when it closes, try the lock again. A path that cannot
        be used (not a socket, another environment's leader...) is one
        ERROR, and this process runs its own upstream as if it had no plane.
        """
        from ._plane._lock import PlaneUnusable, try_lead
        from ._plane._wire import environment_of

        config = self._context.config
        environment = environment_of(config.sdk_key, config.payload_filter_key)
        retry = _Retry(self._context.random)
        lost: float | None = None  # when this follower lost its leader
        try:
            while True:
                lease = try_lead(plane.lock_path)
                if lease is not None:
                    # A follower that takes the lead goes on from the data it
                    # holds: no initializer, and its followers served at once.
                    resume = self.plane_role == "follower" and self._store.initialized
                    try:
                        await self._lead(plane, environment, resume=resume)
                    finally:
                        lease.release()
                    return
                self._role("follower", plane)
                following = await self._follow(plane, environment)
                if following.applied:  # (a leader that only fails is backed off)
                    retry.reset()
                if following.connected:
                    lost = self._clock.now()
                    logger.info(
                        "The leader of the flag plane at %s is gone: taking its"
                        " place, or following the one who does",
                        plane.path,
                    )
                elif lost is not None and self._clock.now() - lost >= _LEADERLESS:
                    self._leaderless(plane, lost)
                await self._clock.sleep(retry.next())
        except PlaneUnusable as exc:
            logger.error(
                "The flag plane cannot be used: %s. This process reads the flag"
                " service itself, as if it had no plane, until it is restarted",
                exc,
            )
            self._role(None, plane)
            await self._run(resume=self._store.initialized)

    async def _lead(self, plane: Plane, environment: str, *, resume: bool) -> None:
        """Run the data system, serving what it applies to the followers, until closed.

        ``resume``: from the data it holds (it followed), with no initializer.
        """
        from ._plane._leader import PlaneServer

        assert self._mirror is not None
        server = PlaneServer(
            plane.path, environment, self._mirror, lambda: self._status.status
        )
        listener = await server.listen()
        if resume and self._saver is not None:
            # It saved nothing while it followed: it starts from the data held.
            self._saver.adopt(self._mirror)
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, listener, self._clock)
            self._server = server
            self._status.also = server.publish_status
            self._role("leader", plane)
            try:
                await self._run(resume=resume)
                await anyio.sleep_forever()  # OFF: its last data stays served
            finally:
                self._server = None
                self._status.also = None
                group.cancel_scope.cancel()

    async def _follow(self, plane: Plane, environment: str) -> Following:
        """Follow the leader until its socket closes; what the follower saw."""
        from ._plane._follower import Following, follow
        from ._plane._lock import PlaneUnusable

        following = Following()
        try:
            async with aclosing(
                follow(
                    plane.path,
                    environment,
                    self._context.config,
                    self._clock,
                    following,
                )
            ) as updates:
                async for update in updates:
                    await self._handle(update)
        except ProtocolError as exc:
            logger.warning(
                "The flag plane's leader at %s sent data this process cannot use"
                " (%s): reconnecting",
                plane.path,
                exc,
            )
        except PlaneUnusable:
            raise
        except Exception:  # a bug of ours: follow again, never end the client
            logger.exception(
                "Following the flag plane's leader at %s failed: reconnecting",
                plane.path,
            )
        return following

    def _leaderless(self, plane: Plane, since: float) -> None:
        """No leader has taken this follower for a while: its data may be old."""
        if self._status.status.state is SourceState.VALID:
            self._status.update(
                SourceState.INTERRUPTED,
                ErrorInfo(
                    kind=ErrorKind.NETWORK_ERROR,
                    message=f"no leader on the flag plane at {plane.path} for"
                    f" {self._clock.now() - since:.1f} s",
                    time=self._clock.now(),
                ),
            )

    def _role(self, role: str | None, plane: Plane) -> None:
        """This process's place on the plane: one INFO line when it changes."""
        if role == self.plane_role:
            return
        self.plane_role = role
        if role is None:
            logger.info("This process no longer uses the flag plane at %s", plane.path)
        else:
            verb = "leads" if role == "leader" else "follows the leader of"
            logger.info("This process %s the flag plane at %s", verb, plane.path)

    # ----------------------------------------------------------------- FDv1
    async def _fdv1_item(self, item: object) -> bool:
        """Handle one item of the FDv1 fallback source; whether it went OFF."""
        if not _is_update(item):
            logger.error("FDv1 source yielded %r, not an Update; ignoring it", item)
            return False
        self._environment_id(item.environment_id)
        if item.change_set is not None:
            await self._apply(item.change_set)
        # Directives from the FDv1 source itself are ignored: the switch is one-way.
        self._status.update(item.state, item.error)
        return item.state is SourceState.OFF

    async def _fdv1(self) -> None:
        factory = self._system.fdv1_fallback
        assert factory is not None
        try:
            async with aclosing(factory(self._context)) as gen:
                async for item in gen:
                    off = await self._fdv1_item(item)
                    # (not held while the source waits for its next poll,
                    # nor its change set)
                    del item
                    if off:
                        break
        except Exception as exc:  # noqa: BLE001 - crashed() logs the traceback
            self._status.crashed("The FDv1 fallback source", exc, SourceState.OFF)
            return
        logger.error("The FDv1 fallback source stopped: serving last known data")
        self._status.update(SourceState.OFF)
