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
even when the previous one left the status VALID. Those timeouts are for time
without progress: while a source's response brings ``PROGRESS_BYTES`` each
window (a big payload on a slow link), its deadline moves on
(:class:`~._failover.Headway`). The synchronizers' turns are
:class:`~._failover.Failover`'s, a collaborator the supervisor composes.

Faults are isolated: an exception escaping a source is treated as that
source failing, logged with its traceback unless it is a ``SourceError`` (a
source ending with a reason, whose message is the report). Nothing escapes
into the task group that the client owns.
"""

from __future__ import annotations

import logging
import math
from contextlib import aclosing, nullcontext
from typing import TYPE_CHECKING, Final, Protocol, TypeGuard
from urllib.parse import urlsplit

import anyio

from aioflags._core._clock import Timeout
from aioflags._core._exceptions import ProtocolError, SourceError
from aioflags._core._logname import client_logger

from ._context import progress_of
from ._datatypes import (
    Basis,
    DataSourceStatus,
    ErrorInfo,
    ErrorKind,
    SourceState,
    Update,
)
from ._failover import (
    Failover,
    Headway,
    Outcome,
    effective,
    is_update,
    next_item,
)
from ._sources._cause import cause_of
from ._stores._mode import StoreMode

# The persistent-store machinery (``_stores/_sources.py``, ``_writer.py``
# and what they share, ``_base.py``) is imported by a data system that has
# a store: a client without one never loads it (tests/test_import.py).

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from anyio.abc import TaskStatus

    from aioflags._core._clock import Clock

    from ._config import DataSystem
    from ._context import (
        InitializerFactory,
        SourceContext,
    )
    from ._datatypes import ChangeSet
    from ._mirror import EventMirror
    from ._plane._guardlink import GuardLink
    from ._plane._member import PlaneMember
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


class DataSystemListener(Protocol):
    """What the supervisor reports to (the client's status layer)."""

    def data_source_status(self, status: DataSourceStatus) -> None:
        """The data system's status changed."""

    def data_changed(self, flags: frozenset[str], origin: str | None = None) -> None:
        """A change set was applied; ``flags`` may have changed value.

        ``origin``: where the data came from, when not the network (the
        saved state's words, for the READY event).
        """


def _is_basis(item: object) -> TypeGuard[Basis]:
    """Runtime guard: custom sources are user code and may yield anything."""
    return isinstance(item, Basis)


class _StatusTracker:
    """Data-source status rules (protocol.md §8)."""

    def __init__(self, listener: DataSystemListener, clock: Clock) -> None:
        self._listener = listener
        self._clock = clock
        self.status = DataSourceStatus(
            state=SourceState.INITIALIZING, since=clock.now()
        )
        #: A source or the supervisor raised what no source raises (a bug).
        self.raised = False
        #: Told each new status too (a plane's leader, for its followers).
        self.also: Callable[[DataSourceStatus], None] | None = None

    def watch(self, watcher: Callable[[DataSourceStatus], None] | None) -> None:
        """Tell ``watcher`` each new status from now on (None: stop)."""
        self.also = watcher

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
            self.raised = True
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
        state = effective(state, old.state)
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
    ``guards``: the client's guards, which a flag plane carries (None: none).
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
        guards: GuardLink | None = None,
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
        #: The synchronizers' turns (this supervisor applies what they bring).
        self._failover = Failover(
            system, context, clock, self._handle, self._status.crashed
        )
        self._fdv2_scope: anyio.CancelScope | None = None
        self._run_fdv1 = False  # (set once: the directive, an FDv1 source configured)
        self._writer: StoreWriter | None = None
        #: Saves the network's data to ``DataSystem.saved_state`` (None: not asked).
        self._saver: StateSaver | None = None
        self._apply_lock = anyio.Lock()
        #: With a flag plane: this process's place on it (docs/scaling.md).
        self._plane: PlaneMember | None = None
        if system.plane is not None:
            from ._plane._member import PlaneHost, PlaneMember

            host = PlaneHost(
                self._run,
                self._handle,
                lambda: store.initialized,
                self._adopt,
                environment,
            )
            self._plane = PlaneMember(
                system.plane, host, self._status, context, clock, guards
            )
            self._environment = self._plane.named
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
                if self._plane is None:
                    await self._run(task_status=task_status)
                else:
                    task_status.started()
                    await self._plane.run()
            finally:
                if self._saver is not None:  # what it has not saved yet
                    await self._saver.close()
            store_reader.cancel_scope.cancel()

    async def _run(
        self,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
        resume: bool = False,
    ) -> bool:
        """The data system until it is OFF (``resume``: from the data held); whether it crashed."""
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
        return self._status.raised and self._status.status.state is SourceState.OFF

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
                limit = self._system.initializing_timeout  # (as any initializer's)
                if await self._preload.wait(limit, self._clock):  # read, applied
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
                if not await self._apply(
                    basis.change_set, persist=basis.persist, origin=origin
                ):
                    continue  # (refused: as an initializer that failed)
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

    async def _first(self, factory: InitializerFactory, name: str) -> Basis | None:
        """The initializer's first result; None if it ended, failed or took too long.

        It has ``initializing_timeout`` to answer: a server that trickles a
        byte at a time never trips the read timeout, and would stall the
        start for good while a healthy synchronizer waits its turn. A
        response whose bytes arrive (``PROGRESS_BYTES`` a window) is not
        cut: the timeout is for time without progress (:class:`~._failover.Headway`).
        """
        timeout = self._system.initializing_timeout
        deadline = None if math.isinf(timeout) else self._clock.now() + timeout
        headway = Headway(progress_of(self._context), self._clock, timeout)
        try:
            async with aclosing(factory(self._context)) as gen:
                while True:
                    item = await next_item(gen, deadline, self._clock, headway)
                    if item is None:
                        return None
                    if isinstance(item, Timeout):
                        logger.warning(
                            "Data source %s gave no result, nor data arriving, "
                            "within %g s: starting the next data source",
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
        if await self._failover.run(self._synchronizer_factories):
            self._fall_back_to_fdv1()
            return
        logger.error(
            "Every aioflags synchronizer has stopped: %s",
            "serving last known data"
            if self._store.initialized
            else "no flag data was received, evaluations return defaults",
        )
        self._status.update(SourceState.OFF)

    async def _handle(self, update: Update) -> Outcome | None:
        self._environment_id(update.environment_id)
        if (
            update.change_set is not None
            and not await self._apply(update.change_set)
            and not update.fallback_to_fdv1
        ):
            return None  # (refused: INTERRUPTED, the source goes on)
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
            return Outcome.FDV1
        if update.state is SourceState.OFF:
            return Outcome.REMOVE
        return None

    async def _apply(
        self, change_set: ChangeSet, *, persist: bool = True, origin: str | None = None
    ) -> bool:
        """Apply ``change_set`` everywhere it goes; False: refused whole, nothing changed.

        On a plane, its event texts are made first: an item the plane cannot
        carry (data nested past what the JSON encoder follows) refuses the
        change set before the store applies it, so that the leader, its
        followers and saved state never differ, and no source ends for it.
        """
        folding = None
        if self._plane is not None:
            try:
                folding = self._plane.prepare(change_set)
            except Exception as exc:  # noqa: BLE001 - data's fault: refused, said once
                self._refused(exc)
                return False
        async with self._apply_lock:
            changed = await self._store.apply(change_set)
            self._delivered = True
        lookups = self._lookups
        if lookups is not None and self._store_beside_sources:
            # The sources delivered: their data is authoritative, nothing is
            # waited for or read through from the store from now on.
            lookups.stop()
        if self._plane is not None:
            self._plane.applied(change_set, folding)
        # (on a plane, only its leader writes: the data is the same)
        persist = persist and self.plane_role != "follower"
        if persist and self._writer is not None:
            self._writer.submit(change_set)
        if persist and self._saver is not None:
            self._saver.submit(change_set)
        self._listener.data_changed(changed, origin)
        return True

    def _refused(self, exc: Exception) -> None:
        """A change set the flag plane cannot carry: STALE on the last good data, said in one line (by the status)."""
        message = (
            f"a change set the flag plane cannot carry was refused: {cause_of(exc)}"
        )
        logger.debug("%s", message, exc_info=exc)
        error = ErrorInfo(
            kind=ErrorKind.INVALID_DATA, message=message, time=self._clock.now()
        )
        self._status.update(SourceState.INTERRUPTED, error)

    async def _apply_from_store(self, change_set: ChangeSet) -> None:
        """The store's data, unless the sources delivered first (never written back)."""
        async with self._apply_lock:
            if self._delivered:
                return
            changed = await self._store.apply(change_set)
        self._mirrored(change_set)
        self._listener.data_changed(changed)

    def _adopt(self, mirror: EventMirror) -> None:
        """A plane's member came to lead from the data held: saved state starts there."""
        if self._saver is not None:
            self._saver.adopt(mirror)

    def _mirrored(self, change_set: ChangeSet | None) -> None:
        """A change set applied beside ``_apply`` (saved state read at start, the store's data): to the plane too."""
        if self._plane is not None and change_set is not None:
            self._plane.applied(change_set)

    @property
    def plane_role(self) -> str | None:
        """This process's place on its plane (None: no plane, or not on it)."""
        return None if self._plane is None else self._plane.role

    # ----------------------------------------------------------------- FDv1
    async def _fdv1_item(self, item: object) -> bool:
        """Handle one item of the FDv1 fallback source; whether it went OFF."""
        if not is_update(item):
            logger.error("FDv1 source yielded %r, not an Update; ignoring it", item)
            return False
        self._environment_id(item.environment_id)
        if item.change_set is not None and not await self._apply(item.change_set):
            return False  # (refused: INTERRUPTED, the FDv1 source goes on)
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
