"""The client's lifecycle: one run of the data system at a time, in an ``async with`` block.

A :class:`Lifecycle` is in one of three states (docs/lifecycle.md)::

    IDLE ──async with──► RUNNING ──aclose() / the block ends / cancelled──► CLOSING
      ▲                                                                        │
      └──────────────────────────── every task ended ◄─────────────────────────┘

IDLE covers "constructed" and "closed": a closed client can be started again
unless it is FATAL. The state is read off the one :class:`Run` there may be
(none: IDLE; asked to stop: CLOSING), never kept beside it.

Each ``async with`` is one async context manager, :class:`_Block`:
a :class:`background_group` around the caller's block, so the caller's own
exceptions leave it unwrapped, with one run started in it. The run is a
runner task owning the task group where all background work runs (the
supervisor, event delivery, timers), inside a cancel scope that ``aclose()``
cancels. A run has its own store and status layer, so a closing run can never
touch the next one. Nothing a run does raises into the caller, except a
``BaseException`` that belongs to the application (``KeyboardInterrupt``...),
which leaves ``async with`` unwrapped.
"""

from __future__ import annotations

import enum
import functools
import importlib
import sys
from typing import TYPE_CHECKING, Final, final

from aioflags._core._exceptions import ClientClosedError
from aioflags._core._lifespan import Span, background_group
from aioflags._core._logname import CLIENT, client_label, client_logger, running
from aioflags._datasystem._config import (
    DataSystem,
    grace_period_of,
    uses_flag_service,
)
from aioflags._datasystem._context import SourceContext, end_run

from ._events import ProviderEvent, ProviderStatus

# What only a running client needs is imported when it starts (see
# _running_parts), and anyio by the methods that use it: not with aioflags.
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from random import Random
    from types import TracebackType

    import httpx
    from anyio.abc import TaskGroup, TaskStatus

    from aioflags._core._clock import Clock
    from aioflags._datasystem._datatypes import ChangeSet
    from aioflags._datasystem._plane._guardlink import GuardLink
    from aioflags._datasystem._store import Store
    from aioflags._datasystem._supervisor import Supervisor

    from ._config import Config
    from ._evaluator import Evaluator
    from ._events import EventBus
    from ._status import StatusLayer

__all__ = ["Lifecycle", "State"]

logger = client_logger("aioflags")
_CLOSE_BOUND: Final = 1.0  # seconds the SDK's own cleanup steps may take (each)
#: Seconds a handler that called aclose() may run on while the client stops.
_HANDLER_BOUND: Final = 2.0


class State(enum.Enum):
    """Where a client is in its life (see the module docstring)."""

    IDLE = "idle"
    RUNNING = "running"  # starting, or started
    CLOSING = "closing"


@final
class Run:
    """One start of the data system: its store, status layer and cancel scope."""

    __slots__ = (
        "abandoned",
        "done",
        "evaluator",
        "host",
        "inner",
        "layer",
        "loop",
        "scope",
        "store",
        "supervisor",
        "task",
    )

    def __init__(
        self,
        store: Store,
        evaluator: Evaluator,
        bus: EventBus,
        clock: Clock,
        grace: float,
    ) -> None:
        import anyio

        from ._status import StatusLayer

        self.evaluator = evaluator  # its events, hooks, big segments and gate
        self.store = store  # the data the evaluator reads
        self.layer = StatusLayer(bus, store, clock, grace, self.spawn)
        self.scope = anyio.CancelScope()  # what aclose() cancels
        self.done = anyio.Event()  # the runner task has ended
        self.task: int | None = None  # the runner task's id, once it has begun
        self.inner: TaskGroup | None = None
        #: The event loop the run runs on (anyio's token of it), and the task
        #: that entered its block.
        self.loop = anyio.lowlevel.current_token()
        self.host = anyio.get_current_task().id
        #: Its tasks were cancelled from outside the client (its loop ended).
        self.abandoned = False
        #: The supervisor of its data system, once started (its plane role).
        self.supervisor: Supervisor | None = None

    def spawn(self, func: Callable[[], Coroutine[object, object, None]]) -> None:
        """Start a status timer in this run's task group (never after it ended)."""
        if self.inner is not None:
            self.inner.start_soon(func)


@final
class Lifecycle:
    """Starts and stops one client's data system: its ``async with`` blocks and its run.

    Args:
        config: the client's configuration.
        clock: the client's clock.
        bus: the client's status and handlers.
        new_store: makes a run's new store and the evaluator over it, with
            the hooks, analytics and the evaluation gate.
        serve: puts a run's evaluator in front of evaluations; ``None`` puts
            a fresh empty store (the client is not running: CLIENT_NOT_READY).
        abandoned: called when a run ended because its tasks were cancelled
            from outside the client (its event loop ended with the client
            running), once its status is NOT_READY.
    """

    __slots__ = (
        "_abandoned",
        "_blocks",
        "_bus",
        "_clock",
        "_config",
        "_new_store",
        "_serve",
        "ended",
        "guard_link",
        "label",
        "layer",
        "run",
    )

    def __init__(
        self,
        config: Config,
        clock: Clock,
        bus: EventBus,
        new_store: Callable[[], tuple[Store, Evaluator]],
        serve: Callable[[Evaluator | None], None],
        abandoned: Callable[[], None],
    ) -> None:
        self._config = config
        #: How log lines name this client (``aioflags._core._logname``).
        self.label = client_label(config.sdk_key, config.application_id)
        self._abandoned = abandoned
        self._clock = clock
        self._bus = bus
        self._new_store = new_store
        self._serve = serve
        #: The open blocks, innermost last: the task that entered each, and its manager.
        self._blocks: list[tuple[int, _Block]] = []
        self.run: Run | None = None  # the run not ended yet, in the innermost block
        #: How many runs have ended: a wait that began before an end knows
        #: the client it waits on has stopped (its status will not change).
        self.ended = 0
        self.layer: StatusLayer | None = None  # the last run's (data_source_status)
        #: The client's guards as a flag plane carries them (None: none): set
        #: by the client before a run starts (issue 98, docs/scaling.md).
        self.guard_link: GuardLink | None = None

    @property
    def plane_role(self) -> str | None:
        """The run's place on its flag plane (None: no plane, or not running)."""
        run = self.run
        if run is None or run.supervisor is None or run.scope.cancel_called:
            return None
        return run.supervisor.plane_role

    @property
    def state(self) -> State:
        """IDLE, RUNNING or CLOSING, read off the run."""
        run = self.run
        if run is None:
            return State.IDLE
        return State.CLOSING if run.scope.cancel_called else State.RUNNING

    # ------------------------------------------------------------ the block
    async def enter(self, instance_id: str, random: Random) -> None:
        """``async with client``: start a run and wait up to ``ready_timeout`` for a status."""
        import anyio

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
        state = self.state
        if state is not State.IDLE:
            self._check_loop("start it again")
            raise RuntimeError(
                f"this client is already {'closing' if state is State.CLOSING else 'started'}: "
                "use one `async with client:` at a time (leave it, or await "
                "client.aclose(), before starting it again)"
            )
        self.run = run = self._begin()  # claimed before the next await
        block = _Block(self, run, instance_id, random)
        entry = (anyio.get_current_task().id, block)
        self._blocks.append(entry)
        try:
            await block.__aenter__()
        except BaseException:
            self._blocks.remove(entry)
            raise

    async def exit(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Leave the innermost block: stop its run (bounded), then NOT_READY."""
        import anyio

        if not self._blocks:  # closed and forgotten (a fork), or exited twice
            await self.aclose()
            return None
        task, block = self._blocks[-1]
        self._check_loop("leave `async with client:`")
        if task == anyio.get_current_task().id:
            self._blocks.pop()
            return await block.__aexit__(exc_type, exc, tb)
        _check_elsewhere(task)
        # Another task leaves it, once the one that entered has ended: a
        # pytest-asyncio yield fixture's teardown, an app's lifespan run by
        # a test's setup and teardown.
        self._blocks.pop()
        return await block.leave_elsewhere()

    def _begin(self) -> Run:
        """A new run, serving evaluations from now on (status NOT_READY)."""
        config = self._config
        grace = grace_period_of(config.data_system, config.grace_period)
        run = Run(*self._new_store(), self._bus, self._clock, grace)
        self.layer = run.layer
        self._serve(run.evaluator)
        self._bus.reset()
        return run

    async def _start(
        self, run: Run, span: Span, instance_id: str, random: Random
    ) -> None:
        """Start ``run`` in ``span``'s group; wait up to ``ready_timeout`` for a status.

        The run's tasks, and this start, log with the client's label.
        """
        label = CLIENT.set(self.label)
        try:
            await self._start_labelled(run, span, instance_id, random)
        finally:
            CLIENT.reset(label)

    async def _start_labelled(
        self, run: Run, span: Span, instance_id: str, random: Random
    ) -> None:
        import anyio

        self._bus.forward = span.raise_in_host
        try:
            await span.tg.start(
                self._runner, run, span, instance_id, random, name="aioflags client"
            )
        except BaseException:
            if run.task is None:  # cancelled before it began: end it here
                self._end(run)
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
            run.layer.ready_timed_out(timeout, _waiting_for(self._config))

    async def _leave(self, run: Run) -> None:
        """The block is closing: stop the run that lives in it; then NOT_READY."""
        if self.run is run:
            await self._stop(run)
        elif self.run is None:
            self._reset()  # a run that ended by itself (a crash) is closed now

    # ------------------------------------------------------------- closing
    async def aclose(self) -> None:
        """``Client.aclose()``: stop the run, or ask it to stop from one of its handlers."""
        run = self.run
        if run is None:
            self._reset()  # a run that ended by itself is closed now
            return
        self._check_loop("close it")
        chain = _in_run(run)
        if chain is not None:
            # Waiting here would wait for this very task: request the stop
            # only, let the handler that asked finish, and be closed for it.
            self._bus.let_finish(chain, _HANDLER_BOUND)
            run.scope.cancel()
            self._serve(None)
            self._bus.close()
            return
        await self._stop(run)

    async def _stop(self, run: Run) -> None:
        """Cancel ``run`` and wait until it has ended (every task, every socket).

        Shielded: a caller cancelled meanwhile still gets a closed client. The
        SDK's own cleanup steps are each bounded; only a handler of yours that
        shields itself from cancellation can make this wait longer.
        """
        import anyio

        run.scope.cancel()
        with anyio.CancelScope(shield=True):
            await run.done.wait()

    def _check_loop(self, what: str) -> None:
        """Refuse, saying why, to ``what`` the running client from another event loop.

        Its cancel scope, events and task group belong to the loop that
        started it: touched from another, they fail deep in anyio or asyncio.
        """
        import anyio.lowlevel

        run = self.run
        if run is None:
            return
        try:
            here = anyio.lowlevel.current_token()
        except RuntimeError:  # no event loop here at all (a sync caller)
            here = None
        if here != run.loop:
            raise RuntimeError(
                f"this aioflags client runs on another event loop (the one "
                f"that entered `async with client:`): {what} from that loop. "
                "A client runs on one event loop: give each loop (or thread) "
                "a client of its own, or use aioflags.blocking.Client from threads"
            )

    def after_block(self) -> None:
        """A block of the client has been left (its run ended): what it leaves behind.

        The flag system whose flags every source serves is asked
        (``SystemConfiguration.after_block``): flagd's collects its gRPC
        objects, so that its asyncio engine is not kept on this event loop
        for the next one.
        """
        from aioflags._datasystem._config import configuration_named, flag_system_of

        system = self._config.data_system
        configuration = (
            None if system is None else configuration_named(flag_system_of(system))
        )
        if configuration is not None:
            configuration.after_block()

    def _end(self, run: Run) -> None:
        """``run`` has ended: IDLE; if it was asked to stop, NOT_READY too."""
        run.done.set()
        self.ended += 1
        self._bus.wake()  # waits end with the run (a FATAL status sets nothing)
        if self.run is not run:
            return
        self.run = None
        self._bus.forward = None
        if run.scope.cancel_called:
            self._reset()
        elif run.abandoned:
            # Nothing will leave its block (its loop is ending): forget the
            # block, and say so when the client is next used.
            self._blocks = [b for b in self._blocks if b[1].run is not run]
            self._reset()
            self._abandoned()

    def _reset(self) -> None:
        """Status and evaluations agree: NOT_READY and CLIENT_NOT_READY."""
        self._serve(None)
        self._bus.reset()

    def after_fork(self) -> bool:
        """In a forked child: forget the parent's run; whether there was one.

        Only references are dropped, and nothing of the parent's loop is
        touched: the fork may have happened on any thread.
        """
        if self.run is None and not self._blocks:
            return False  # constructed or closed before the fork: nothing to drop
        self._bus.after_fork()
        self.run = None
        self._blocks = []
        self.layer = None
        return True

    # ------------------------------------------------------------- the run
    async def _runner(
        self,
        run: Run,
        span: Span,
        instance_id: str,
        random: Random,
        *,
        task_status: TaskStatus[None],
    ) -> None:
        import anyio

        run.task = anyio.get_current_task().id
        task_status.started()
        with running():  # (its lines name it when two or more run)
            try:
                with run.scope:
                    await self._run_data_system(run, instance_id, random)
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
                    if _abandoned(run, span):
                        run.abandoned = True
                        logger.warning(
                            "aioflags client was still running when its event loop "
                            "ended (`async with client:` was never left): it has "
                            "stopped (NOT_READY; evaluations return defaults, "
                            "CLIENT_NOT_READY). A client runs on the event loop that "
                            "starts it: leave `async with client:` (or await "
                            "client.aclose()) before that loop ends, and start the "
                            "client on the loop that uses it"
                        )
                    raise
                # KeyboardInterrupt, SystemExit... in one of the client's tasks:
                # it belongs to the application, unwrapped, in the caller's task.
                span.raise_in_host(forwarded)
            finally:
                self._end(run)

    async def _run_data_system(
        self, run: Run, instance_id: str, random: Random
    ) -> None:
        import anyio

        config = self._config
        bus = self._bus
        store = run.store
        made: list[httpx.AsyncClient] = []
        context: SourceContext | None = None
        try:
            # The task group, with event delivery attached first: even a
            # FATAL set-up reaches the handlers.
            async with anyio.create_task_group() as inner:
                run.inner = inner
                bus.attach(inner)
                big = run.evaluator.big_segments
                if big is not None and not config.offline:
                    inner.start_soon(big.run)  # stops with `inner`
                if config.offline:
                    bus.emit(
                        ProviderEvent.READY,
                        message="offline: evaluations return defaults",
                    )
                    return  # the group lives on (delivery) until the client closes
                if config.ready_timeout == 0:  # nobody waited: ERROR in time
                    inner.start_soon(run.layer.unwaited, _waiting_for(config))
                system = config.data_system or DataSystem.default()
                preload = None
                if system.saved_state is not None:
                    # Read beside the HTTP client's making: READY from disk
                    # does not wait for the CA bundle.
                    from aioflags._datasystem._sources._saved import Preload

                    preload = Preload(system.saved_state, keep=system.plane is not None)

                    async def apply(change_set: ChangeSet, origin: str) -> None:
                        changed = await store.apply(change_set)
                        run.layer.data_changed(changed, origin)

                    inner.start_soon(preload.run, config, apply)
                events = run.evaluator.events
                if _needs_http(config, system):
                    try:
                        made.append(await _open_http(config, instance_id))
                    # ssl.SSLError is an OSError.
                    except (OSError, ValueError) as exc:
                        message = f"cannot set up HTTP: {exc} (check Config.verify and Config.proxy)"
                        logger.error("aioflags client %s", message)
                        bus.emit(
                            ProviderEvent.ERROR,
                            error_code="PROVIDER_FATAL",
                            message=message,
                        )
                        return
                if events is not None:  # analytics events (stop with `inner`)
                    events.use_http(made[0])
                    await inner.start(events.run)
                context = SourceContext(
                    selector=lambda: store.selector,
                    http=made[0] if made else None,
                    config=config,
                    clock=self._clock,
                    random=random,
                )
                from aioflags._datasystem._supervisor import (
                    Supervisor,  # loaded by enter()
                )

                gate = run.evaluator.gate
                supervisor = Supervisor(
                    system,
                    store,
                    context,
                    run.layer,
                    self._clock,
                    refresher=None if gate is None else gate.refresher,
                    lookups=None if gate is None else gate.lookups,
                    environment=run.evaluator.record_environment_id,
                    preload=preload,
                    guards=self.guard_link,
                )
                run.supervisor = supervisor
                inner.start_soon(supervisor.run)
        finally:
            run.inner = None
            bus.release()  # what was never delivered is dropped
            gate = run.evaluator.gate
            if gate is not None:  # no reader any more: evaluations go on
                if gate.refresher is not None:
                    gate.refresher.stop()
                if gate.lookups is not None:
                    gate.lookups.stop()
            if context is not None:  # what its sources left to close
                with anyio.move_on_after(_CLOSE_BOUND, shield=True):
                    await end_run(context)
            if made:
                with anyio.move_on_after(_CLOSE_BOUND, shield=True):
                    await made[0].aclose()


@final
class _Block:
    """One ``async with client:`` block: its run in a background group, stopped as it ends.

    The caller's exceptions leave it unwrapped (:func:`background_group`). A
    class, not an async generator, for the reason ``background_group`` is
    one: nothing for an event loop that ends with the block open to finalise
    from a task of its own.
    """

    __slots__ = ("_group", "_instance_id", "_life", "_random", "run")

    def __init__(
        self, life: Lifecycle, run: Run, instance_id: str, random: Random
    ) -> None:
        self._life = life
        self.run = run
        self._instance_id = instance_id
        self._random = random
        self._group: background_group | None = None

    async def __aenter__(self) -> None:
        life, run = self._life, self.run
        group = background_group(functools.partial(life._leave, run))
        span = await group.__aenter__()
        self._group = group
        try:
            await life._start(run, span, self._instance_id, self._random)
        except BaseException as exc:
            await group.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._group is not None
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        finally:
            self._life.after_block()

    async def leave_elsewhere(self) -> bool:
        """Leave the block from a task other than the one that entered it, which has ended.

        The run is stopped as leaving it stops it (bounded, shielded: every
        task of the client ends, every socket closes). The group itself is
        not exited (asyncio and anyio exit a cancel scope only in the task
        that entered it): with nothing left in it and its task gone, it is
        dropped with the block. The caller's exception, if any, leaves as it
        is; a background task's ``BaseException`` that was to leave the
        block is raised here.
        """
        import anyio

        group = self._group
        assert group is not None
        with anyio.CancelScope(shield=True):
            await self._life._leave(self.run)
        forwarded = group.forwarded
        if forwarded is not None:
            raise forwarded
        return False


def _check_elsewhere(task: int) -> None:
    """Refuse, saying why, to leave a block that task ``task`` entered, here.

    Under asyncio, another task may leave it once ``task`` has ended (its
    cancel scopes are gone with it); never while it runs (its cancel scopes
    would be left inconsistent), and never under trio (a task cannot end
    with a nursery open).
    """
    import asyncio

    import anyio

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio
        raise RuntimeError(
            "leave `async with client:` in the task that entered it: under "
            "trio, a nursery cannot be left by another task. Enter and leave "
            "it in one task: with pytest-trio, a fixture's setup and teardown "
            "run in one task; or keep the client in a task of its own for the "
            "test's duration"
        ) from None
    if any(t.id == task for t in anyio.get_running_tasks()):
        raise RuntimeError(
            "leave `async with client:` in the task that entered it, or once "
            "that task has ended: it is still running, and the client's task "
            "group is part of it. (A pytest-asyncio yield fixture's teardown "
            "may leave it: its setup task has ended by then.)"
        )


def _waiting_for(config: Config) -> str:
    """What a start that is not ready yet waits for, when no error says more."""
    if config.data_system is not None:
        return "no data source has answered yet"
    return (
        f"no answer yet from the flag service at {config.base_uri} and "
        f"{config.stream_uri}: is it reachable from here? A request gives "
        f"up after connect_timeout={config.connect_timeout:g} s or "
        f"read_timeout={config.read_timeout:g} s"
    )


def _in_run(run: Run) -> list[int] | None:
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


def _abandoned(run: Run, span: Span) -> bool:
    """Whether ``run`` was cancelled because its event loop is ending with it open.

    As asyncio cancels every task left when its loop ends (``asyncio.run()``
    returned, a test's loop closed): natively, by no cancel scope of the
    client's, after the task that entered the block has ended without
    leaving it. (anyio cancels a task natively too, when its ``start()`` is
    cancelled: its host is still there.)
    """
    import anyio

    if run.scope.cancel_called or span.tg.cancel_scope.cancel_called:
        return False
    return all(task.id != run.host for task in anyio.get_running_tasks())


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


# ------------------------------------------------------------ start-up I/O
def _running_parts(config: Config) -> list[str]:
    """The modules a client with ``config`` needs once it runs (not to evaluate).

    HTTP (httpx, with ssl, email, http, urllib...), the network sources, the
    store and its status, the supervisor, analytics: most of what
    ``import aioflags`` used to take (docs/benchmarks.md, "Import").
    """
    names = ["aioflags._datasystem._store", "aioflags._client._status"]
    if not config.offline:
        names.append("aioflags._datasystem._supervisor")
        if _needs_http(config, config.data_system or DataSystem.default()):
            names.append("aioflags._client._http")
        if config.data_system is None:
            names += [
                "aioflags._datasystem._sources._polling",
                "aioflags._datasystem._sources._streaming",
            ]
        elif config.data_system.store is not None:  # (the supervisor's, with one)
            names += [
                "aioflags._datasystem._stores._sources",
                "aioflags._datasystem._stores._writer",
            ]
        if config.events_enabled or config.metrics is not None:
            names.append("aioflags._analytics._processor")
    return names


def _needs_http(config: Config, system: DataSystem) -> bool:
    """Whether a running client with ``config`` and ``system`` makes an HTTP client.

    Not when it sends no analytics events (nor metrics) and every source of
    its data system is local or reads a flagd sync server (a gRPC
    connection of its own): then httpx is never imported (~30 ms of a
    process's first start).
    """
    return (
        config.events_enabled or config.metrics is not None or uses_flag_service(system)
    )


def _import_all(names: list[str]) -> None:
    for name in names:
        importlib.import_module(name)


def _needs_tls(config: Config) -> bool:
    """Whether a client with ``config`` will send ``https://`` requests itself.

    To its flag service (unless no source of its data system talks to it:
    local sources, flagd's sync with its own connection) and to its event
    recorder (when events are on), through its own transport (no proxy:
    httpx's transports then do TLS). A source given its own ``base_uri`` is
    not looked at: an ``https://`` one sets TLS up on its first request.
    """
    from ._http import proxied

    uris = []
    if config.data_system is None or uses_flag_service(config.data_system):
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
