"""The migrator: reads and writes through a migration flag's stage, measured.

``MigratorBuilder(client).read(old, new).write(old, new).build()`` makes a
:class:`Migrator`; each ``await migrator.read(...)`` or ``write(...)``
evaluates the flag (``client.migration_variation``), calls the origins the
stage names, records what happened on the operation's tracker and tracks it
(``client.track_migration_op``). The stages, orders and results are
LaunchDarkly's. Coroutine-function origins run on the event loop; plain
functions run in a worker thread each (``anyio.to_thread.run_sync``), so
they may block; a ``PARALLEL`` read runs both in a task group of the
caller's.

Given an ``aioflags.blocking.Client``, the builder makes a
:class:`BlockingMigrator`: the same :class:`Migrator`, run on that client's
event loop thread (its blocking portal), behind sync ``read`` and
``write``. Its plain origins so run in worker threads of that loop, as
LaunchDarkly's sync migrator runs them on threads of its own.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
import math
import sys
from datetime import timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Generic,
    TypeAlias,
    TypeVar,
    cast,
    final,
    overload,
)

import anyio

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field
from aioflags._evaluation._migration import Operation, Origin, Stage

from ._awaiting import RESULT_NAMES, Pending
from ._client import Client

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from aioflags._evaluation._context import Context
    from aioflags._evaluation._migration import OpTracker

    from ._blocking import Client as BlockingClient

__all__ = [
    "AsyncMigratorFn",
    "BlockingMigrator",
    "ExecutionOrder",
    "Migrator",
    "MigratorBuilder",
    "MigratorCompareFn",
    "MigratorFn",
    "OperationResult",
    "Result",
    "WriteResult",
]

T = TypeVar("T")
_M = TypeVar("_M", bound="Migrator | BlockingMigrator")

logger = logging.getLogger("aioflags.migrations")

#: The monotonic clock latencies are measured on (a seam for tests).
_now: Callable[[], float] = anyio.current_time


@final
class Result(Frozen, Generic[T]):
    """The outcome of a call to an origin: a value, or an error.

    Make one with :meth:`success` or :meth:`fail` (the constructor takes
    ``value, error, exception``, positionally too, as LaunchDarkly's). An
    origin may also return any other value (a success with that value) or
    raise (a failure, whose ``exception`` is what it raised: an
    ``Exception``, or a ``CancelledError`` of its own, which is not the
    caller's cancellation).

    Attributes:
        value: what a successful call returned (``None`` for a failure).
        error: what went wrong, for a failure (``None`` for a success).
        exception: the exception a failure comes from, if any.

    Added in version 0.1.0.
    """

    __slots__ = ("value", "error", "exception")  # noqa: RUF023 - fields in order
    value: T | None
    error: str | None
    exception: BaseException | None

    def __init__(
        self,
        value: T | None = None,
        error: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        set_field(self, "value", value)
        set_field(self, "error", error)
        set_field(self, "exception", exception)

    @staticmethod
    def success(value: T) -> Result[T]:
        """A successful outcome with ``value``."""
        return Result(value=value)

    @staticmethod
    def fail(error: str, exception: BaseException | None = None) -> Result[Any]:
        """A failed outcome, described by ``error`` (and the ``exception``, if any)."""
        return Result(error=error, exception=exception)

    def is_success(self) -> bool:
        """Whether the call succeeded."""
        return self.error is None


@final
class OperationResult(Frozen):
    """The outcome of a migration operation on one origin.

    Attributes:
        origin: the origin that was called.
        value: what it returned, for a success.
        error: what went wrong, for a failure (``None`` for a success).
        exception: the exception a failure comes from, if any.

    Added in version 0.1.0.
    """

    __slots__ = ("origin", "value", "error", "exception")  # noqa: RUF023 - fields in order
    origin: Origin
    value: Any
    error: str | None
    exception: BaseException | None

    def __init__(self, origin: Origin, result: Result[Any]) -> None:
        """``result``, from ``origin`` (positional too, as LaunchDarkly's)."""
        set_field(self, "origin", origin)
        set_field(self, "value", result.value)
        set_field(self, "error", result.error)
        set_field(self, "exception", result.exception)

    def is_success(self) -> bool:
        """Whether the call succeeded."""
        return self.error is None


@final
class WriteResult(Frozen):
    """The outcome of a migration write: the authoritative write, and the other.

    The authoritative origin is written first; if that fails, the other is
    not written and ``nonauthoritative`` is ``None`` (as it is in the stages
    that write to one origin).

    Attributes:
        authoritative: the write to the origin the stage trusts.
        nonauthoritative: the write to the other origin, if it was made.

    Added in version 0.1.0.
    """

    __slots__ = ("authoritative", "nonauthoritative")
    authoritative: OperationResult
    nonauthoritative: OperationResult | None

    def __init__(
        self,
        authoritative: OperationResult,
        nonauthoritative: OperationResult | None = None,
    ) -> None:
        set_field(self, "authoritative", authoritative)
        set_field(self, "nonauthoritative", nonauthoritative)


class ExecutionOrder(enum.Enum):
    """How a read that calls both origins runs them.

    Added in version 0.1.0.
    """

    SERIAL = "serial"
    """The authoritative origin, then the other."""
    RANDOM = "random"
    """One, then the other, in an order drawn at random for each read."""
    PARALLEL = "parallel"
    """Both at once, in a task group of the caller's (the default)."""

    @staticmethod
    def from_str(order: str) -> ExecutionOrder | None:
        """The order named ``order`` (``"serial"``...), or ``None``, as LaunchDarkly's."""
        for member in ExecutionOrder:
            if member.value == order:
                return member
        return None


#: An origin: called with the operation's payload, returns a :class:`Result`
#: (or any other value, a success) or an awaitable of one; raising is a failure.
#: A coroutine function runs on the event loop; a plain function runs in a
#: worker thread, so it may block.
MigratorFn: TypeAlias = "Callable[[Any], Awaitable[Any] | Any]"
#: LaunchDarkly's async name for :data:`MigratorFn` (``ldclient.migrations``).
AsyncMigratorFn: TypeAlias = "MigratorFn"
#: Compares the two origins' values of a successful read: ``True`` if they agree.
#: A coroutine function too: the migrator awaits what it returns.
MigratorCompareFn: TypeAlias = "Callable[[Any, Any], bool | Awaitable[bool]]"

_READS: Final = {  # stage → (authoritative origin, the other one or None)
    Stage.OFF: (Origin.OLD, None),
    Stage.DUALWRITE: (Origin.OLD, None),
    Stage.SHADOW: (Origin.OLD, Origin.NEW),
    Stage.LIVE: (Origin.NEW, Origin.OLD),
    Stage.RAMPDOWN: (Origin.NEW, None),
    Stage.COMPLETE: (Origin.NEW, None),
}
_WRITES: Final = {
    Stage.OFF: (Origin.OLD, None),
    Stage.DUALWRITE: (Origin.OLD, Origin.NEW),
    Stage.SHADOW: (Origin.OLD, Origin.NEW),
    Stage.LIVE: (Origin.NEW, Origin.OLD),
    Stage.RAMPDOWN: (Origin.NEW, Origin.OLD),
    Stage.COMPLETE: (Origin.NEW, None),
}


def _is_async(fn: object) -> bool:
    """Whether ``fn`` is a coroutine function (or an object whose ``__call__`` is one).

    ``functools.partial`` of one and ``AsyncMock`` count (``inspect`` sees
    through them). Anything else is called in a worker thread.
    """
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with async __call__
    )


def _warn_none(key: str, operation: Operation, origin: Origin) -> None:
    """Log that ``origin``'s ``operation`` returned ``None``: a success, maybe unmeant."""
    logger.warning(
        "Migration %r: the %s origin's %s returned None, which is a success "
        "with the value None. Return Result.success(None) if that is meant, or "
        "Result.fail(...) if None means a miss. Logged once per origin",
        key,
        origin.value,
        operation.value,
    )


class _Call:
    """One operation's calls to its origins, measured on its tracker."""

    __slots__ = (
        "_errors",
        "_key",
        "_latency",
        "_operation",
        "_origins",
        "_payload",
        "_tracker",
        "_warned",
    )

    def __init__(
        self,
        origins: dict[Origin, MigratorFn],
        tracker: OpTracker,
        payload: Any,
        *,
        latency: bool,
        errors: bool,
        key: str,
        operation: Operation,
        warned: set[tuple[Operation, Origin]],
    ) -> None:
        self._origins = origins
        self._tracker = tracker
        self._payload = payload
        self._latency = latency
        self._errors = errors
        self._key = key
        self._operation = operation
        # The (operation, origin) pairs whose bare None was logged already.
        self._warned = warned

    async def run(self, origin: Origin, *, own_task: bool = False) -> OperationResult:
        """Call ``origin``; an exception it raises is a failed result.

        So is a ``CancelledError`` of its own (it awaited a future another
        task cancelled, say); the caller's cancellation propagates.
        ``own_task``: the call runs in a task of the migrator's own, which
        nothing but its task group cancels.

        A coroutine function is awaited on the loop; a plain function is
        called in a worker thread, so a blocking one blocks neither the loop
        nor the other origin of a ``PARALLEL`` read. Cancelling the caller
        then waits for the function to return (a thread cannot be
        interrupted): the call never outlives the operation. An awaitable a
        plain function returns is awaited on the loop.
        """
        fn = self._origins[origin]
        start = _now()
        try:
            if _is_async(fn):
                outcome = fn(self._payload)
            else:
                outcome = await anyio.to_thread.run_sync(fn, self._payload)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:  # noqa: BLE001 - an origin's failure is its result
            outcome = Result.fail(
                f"'{origin.value}' operation raised an exception", exc
            )
        except asyncio.CancelledError as exc:
            if _cancelled(own_task=own_task):
                raise
            outcome = Result.fail(
                f"'{origin.value}' operation raised an exception", exc
            )
        if not isinstance(outcome, Result):
            if outcome is None:
                self._returned_none(origin)
            outcome = Result.success(outcome)
        tracker = self._tracker
        if self._latency:
            elapsed = _now() - start
            tracker.latency(origin, timedelta(seconds=elapsed))
        if self._errors and not outcome.is_success():
            tracker.error(origin)
        tracker.invoked(origin)
        return OperationResult(origin=origin, result=outcome)

    def _returned_none(self, origin: Origin) -> None:
        """``origin`` returned a bare ``None``: logged once per migrator, operation and origin."""
        warned = self._warned
        pair = (self._operation, origin)
        if pair in warned:
            return
        warned.add(pair)
        _warn_none(self._key, self._operation, origin)


def _cancelled(*, own_task: bool) -> bool:
    """Whether the ``CancelledError`` an origin's call raised is the caller's cancellation.

    Called as it propagates: if not, the origin raised it of its own (it
    awaited a future another task cancelled, or raised one) and it is that
    origin's failure. In doubt, it is a cancellation: structured concurrency
    never loses one.
    """
    if anyio.get_cancelled_exc_class() is not asyncio.CancelledError:
        return False  # trio's cancellation is its own class: asyncio's cancels nothing
    if anyio.current_effective_deadline() == -math.inf:
        return True  # a cancel scope around the call (the caller's, a timeout's)
    if sys.version_info >= (3, 11):
        # A native Task.cancel() (asyncio.timeout, an aiohttp handler's
        # disconnect) that no cancel scope records.
        task = asyncio.current_task()
        return task is None or task.cancelling() > 0
    else:  # pragma: no cover - exercised on the 3.10 leg
        # No Task.cancelling(): a native Task.cancel() of the caller's task
        # looks the same; a task of the migrator's own is never cancelled
        # natively, only by its task group's cancel scope.
        return not own_task


@final
class Migrator:
    """Reads and writes through a migration flag's stage (made by :class:`MigratorBuilder`).

    Which origins each stage calls (docs/migrations.md has the table):

    ========== ================================ ================================
    stage      read                             write
    ========== ================================ ================================
    off        old                              old
    dualwrite  old                              old, then new
    shadow     old (authoritative) and new      old, then new
    live       new (authoritative) and old      new, then old
    rampdown   new                              new, then old
    complete   new                              new
    ========== ================================ ================================

    Added in version 0.1.0.
    """

    __slots__ = (
        "_client",
        "_comparison",
        "_errors",
        "_latency",
        "_order",
        "_reads",
        "_warned",
        "_writes",
    )

    def __init__(
        self,
        client: Client,
        *,
        order: ExecutionOrder,
        reads: dict[Origin, MigratorFn],
        comparison: MigratorCompareFn | None,
        writes: dict[Origin, MigratorFn],
        latency: bool,
        errors: bool,
    ) -> None:
        """Made by :meth:`MigratorBuilder.build`."""
        self._client = client
        self._order = order
        self._reads = reads
        self._comparison = comparison
        self._writes = writes
        self._latency = latency
        self._errors = errors
        # The (operation, origin) pairs whose bare None was logged (row 59).
        self._warned: set[tuple[Operation, Origin]] = set()

    def read(
        self,
        key: str,
        context: Context,
        default_stage: Stage,
        payload: Any = None,
    ) -> Coroutine[Any, Any, OperationResult]:
        """Read through the stage of flag ``key``: the authoritative origin's result.

        In ``shadow`` and ``live`` both origins are read (in the builder's
        :class:`ExecutionOrder`) and, with a comparison function and two
        successes, their values are compared as the flag's
        ``migration.checkRatio`` samples. Cancelling the caller cancels the
        origins' calls. ``payload`` is passed to the origins.

        Await it: unawaited, what it returns raises a ``TypeError`` that
        says so where it is used as a result (``.is_success()``,
        ``.value``, ``bool()``).
        """
        return Pending(
            self._read(key, context, default_stage, payload),
            "migrator.read",
            RESULT_NAMES,
        )

    async def _read(
        self, key: str, context: Context, default_stage: Stage, payload: Any
    ) -> OperationResult:
        client = self._client
        stage, tracker = await client.migration_variation(key, context, default_stage)
        tracker.operation(Operation.READ)
        call = self._call(self._reads, tracker, payload, key, Operation.READ)
        first, second = _READS[stage]
        if second is None:
            result = await call.run(first)
        else:
            result = await self._read_both(call, first, second, tracker)
        client.track_migration_op(tracker)
        return result

    async def _read_both(
        self, call: _Call, first: Origin, second: Origin, tracker: OpTracker
    ) -> OperationResult:
        results: dict[Origin, OperationResult] = {}
        if self._order is ExecutionOrder.PARALLEL:

            async def run(origin: Origin) -> None:
                results[origin] = await call.run(origin, own_task=True)

            # call.run never raises but for cancellation: the group never
            # makes an ExceptionGroup of an origin's failure (nor of a
            # CancelledError of its own, which anyio would take for the
            # task's cancellation and the read would have no result).
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, first)
                tg.start_soon(run, second)
        else:
            order = (first, second)
            # RANDOM draws from the client's random source, as its others do.
            rng = self._client._random
            if self._order is ExecutionOrder.RANDOM and rng.random() < 0.5:
                order = (second, first)
            for origin in order:
                results[origin] = await call.run(origin)
        authoritative, other = results[first], results[second]
        compare = self._comparison
        if (
            compare is not None
            and authoritative.is_success()
            and other.is_success()
            and tracker._check_sampled()
        ):
            # As tracker.consistent(), but an async comparison is awaited. The
            # outcome's truth is tested inside the try: it may raise too.
            try:
                outcome = compare(authoritative.value, other.value)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
                tracker._record_consistency(outcome)
            except Exception:  # noqa: BLE001 - logged: a failed check records nothing
                tracker._check_failed()
        return authoritative

    def write(
        self,
        key: str,
        context: Context,
        default_stage: Stage,
        payload: Any = None,
    ) -> Coroutine[Any, Any, WriteResult]:
        """Write through the stage of flag ``key``: authoritative origin first.

        In the stages that write to both, the other origin is written only
        if the authoritative write succeeded. ``payload`` is passed to the
        origins. If the caller is cancelled after a write completed, the
        ``migration_op`` event still reports the writes that completed
        (they are not undone), and the cancellation propagates.

        Await it: unawaited, what it returns raises a ``TypeError`` that
        says so where it is used as a result (``.authoritative``,
        ``bool()``).
        """
        return Pending(
            self._write(key, context, default_stage, payload),
            "migrator.write",
            RESULT_NAMES,
        )

    async def _write(
        self, key: str, context: Context, default_stage: Stage, payload: Any
    ) -> WriteResult:
        client = self._client
        stage, tracker = await client.migration_variation(key, context, default_stage)
        tracker.operation(Operation.WRITE)
        call = self._call(self._writes, tracker, payload, key, Operation.WRITE)
        first, second = _WRITES[stage]
        try:
            authoritative = await call.run(first)
            other = None
            if second is not None and authoritative.is_success():
                other = await call.run(second)
        except anyio.get_cancelled_exc_class():
            # A write that completed is not undone by the cancellation: report
            # it (as LaunchDarkly's async migrator does). Recording is sync and
            # does no I/O, so it cannot be cut short; the cancellation goes on.
            if tracker._invoked:
                client.track_migration_op(tracker)
            raise
        client.track_migration_op(tracker)
        return WriteResult(authoritative, other)

    def _call(
        self,
        origins: dict[Origin, MigratorFn],
        tracker: OpTracker,
        payload: Any,
        key: str,
        operation: Operation,
    ) -> _Call:
        return _Call(
            origins,
            tracker,
            payload,
            latency=self._latency,
            errors=self._errors,
            key=key,
            operation=operation,
            warned=self._warned,
        )


@final
class BlockingMigrator:
    """A :class:`Migrator` for sync code (made by :class:`MigratorBuilder` over an ``aioflags.blocking.Client``).

    LaunchDarkly's sync ``Migrator``: ``read`` and ``write`` are plain
    methods that return when the operation is done. Each runs the same
    :class:`Migrator` (stages, orders, measurements, events) on the blocking
    client's event loop thread, where its plain origins run in worker
    threads: a ``PARALLEL`` read calls both origins at once, each in a
    thread, and returns when both returned. Any number of threads may call
    it at once.

    The client must be started (``with client:`` or ``client.start()``).

    Added in version 0.1.0.
    """

    __slots__ = ("_client", "_migrator")

    def __init__(self, client: BlockingClient, migrator: Migrator) -> None:
        """Made by :meth:`MigratorBuilder.build`."""
        self._client = client
        self._migrator = migrator

    def read(
        self,
        key: str,
        context: Context,
        default_stage: Stage,
        payload: Any = None,
    ) -> OperationResult:
        """Read through the stage of flag ``key``, as :meth:`Migrator.read`, waiting for it.

        Raises:
            ClientClosedError: the client is not started, or was closed
                during the read.
            RuntimeError: called on a running event loop's own thread (which
                it would block) or on the client's own thread (a handler).
        """
        read = functools.partial(
            self._migrator.read, key, context, default_stage, payload
        )
        return self._client._run_migration("read", read)

    def write(
        self,
        key: str,
        context: Context,
        default_stage: Stage,
        payload: Any = None,
    ) -> WriteResult:
        """Write through the stage of flag ``key``, as :meth:`Migrator.write`, waiting for it.

        Raises:
            ClientClosedError: the client is not started, or was closed
                during the write.
            RuntimeError: called on a running event loop's own thread (which
                it would block) or on the client's own thread (a handler).
        """
        write = functools.partial(
            self._migrator.write, key, context, default_stage, payload
        )
        return self._client._run_migration("write", write)


_ORDERS: Final = ", ".join(f"ExecutionOrder.{order.name}" for order in ExecutionOrder)


@final
class MigratorBuilder(Generic[_M]):
    """Configures a :class:`Migrator`, as LaunchDarkly's ``MigratorBuilder`` does.

    ``read`` and ``write`` are required; by default reads that call both
    origins run them in ``PARALLEL``, and latency and errors are tracked.
    Each method returns the builder, so calls chain.

    Over an ``aioflags.Client`` it builds a :class:`Migrator` (``await
    migrator.read(...)``); over an ``aioflags.blocking.Client``, a
    :class:`BlockingMigrator` (``migrator.read(...)``, LaunchDarkly's sync
    shape).

    Added in version 0.1.0.
    """

    __slots__ = ("_client", "_errors", "_latency", "_order", "_read", "_write")

    @overload
    def __init__(self: MigratorBuilder[Migrator], client: Client) -> None: ...
    @overload
    def __init__(
        self: MigratorBuilder[BlockingMigrator], client: BlockingClient
    ) -> None: ...
    def __init__(self, client: Client | BlockingClient) -> None:
        """A builder of migrators that evaluate and track through ``client``.

        Raises:
            ConfigurationError: ``client`` is neither an ``aioflags.Client``
                nor an ``aioflags.blocking.Client``.
        """
        if not isinstance(client, Client):
            # Imported only here: async code never loads the blocking client.
            from ._blocking import Client as BlockingClient

            if not isinstance(client, BlockingClient):
                raise ConfigurationError(
                    "MigratorBuilder takes an aioflags.Client (async code) or an "
                    f"aioflags.blocking.Client (sync code), got {client!r}"
                )
        self._client = client
        self._order = ExecutionOrder.PARALLEL
        self._latency = True
        self._errors = True
        self._read: tuple[MigratorFn, MigratorFn, MigratorCompareFn | None] | None
        self._read = None
        self._write: tuple[MigratorFn, MigratorFn] | None = None

    def read(
        self,
        old: MigratorFn,
        new: MigratorFn,
        comparison: MigratorCompareFn | None = None,
    ) -> MigratorBuilder[_M]:
        """The read from each origin, and how to compare their values (optional).

        ``old`` and ``new`` take the payload of ``migrator.read`` and return
        a :class:`Result` or a value. A coroutine function runs on the event
        loop; a plain function runs in a worker thread
        (``anyio.to_thread.run_sync``), so it may block without blocking the
        loop, and a ``PARALLEL`` read of two plain functions runs them at
        once. ``comparison`` (a plain function or a coroutine function,
        which is awaited) gets both values when both reads succeeded and
        returns whether they agree: the ``consistent`` measurement. It runs
        on the event loop, so it must not block, and only for the operations
        the flag's ``migration.checkRatio`` samples.
        """
        self._read = (old, new, comparison)
        return self

    def write(self, old: MigratorFn, new: MigratorFn) -> MigratorBuilder[_M]:
        """The write to each origin: as :meth:`read`'s, with ``migrator.write``'s payload."""
        self._write = (old, new)
        return self

    def read_execution_order(self, order: ExecutionOrder) -> MigratorBuilder[_M]:
        """How a read that calls both origins runs them (default ``PARALLEL``).

        Raises:
            ConfigurationError: ``order`` is not an :class:`ExecutionOrder`
                (a name such as ``"serial"``: parse it with
                :meth:`ExecutionOrder.from_str`). LaunchDarkly's builder
                ignores it and runs reads in ``PARALLEL``, silently.
        """
        given: object = order  # typed ExecutionOrder; callers may not be
        if not isinstance(given, ExecutionOrder):
            named = ExecutionOrder.from_str(given) if isinstance(given, str) else None
            hint = (
                f"; for {given!r}, pass ExecutionOrder.{named.name}"
                if named is not None
                else "; ExecutionOrder.from_str(name) parses a name"
            )
            raise ConfigurationError(
                "MigratorBuilder.read_execution_order() takes an ExecutionOrder "
                f"({_ORDERS}), got {given!r}{hint}"
            )
        self._order = given
        return self

    def track_latency(self, enabled: bool) -> MigratorBuilder[_M]:
        """Whether to measure each origin's latency (on the monotonic clock; default on)."""
        self._latency = enabled
        return self

    def track_errors(self, enabled: bool) -> MigratorBuilder[_M]:
        """Whether to report the origins whose call failed (default on)."""
        self._errors = enabled
        return self

    def build(self) -> _M:
        """The migrator: a :class:`Migrator`, or a :class:`BlockingMigrator` for a blocking client.

        Raises:
            ConfigurationError: ``read`` or ``write`` was not configured
                (LaunchDarkly's ``build`` returns the message instead).
        """
        if self._read is None:
            raise ConfigurationError(
                "MigratorBuilder.build(): read configuration not provided; "
                "call .read(old, new) first"
            )
        if self._write is None:
            raise ConfigurationError(
                "MigratorBuilder.build(): write configuration not provided; "
                "call .write(old, new) first"
            )
        old_read, new_read, comparison = self._read
        old_write, new_write = self._write
        client = self._client
        migrator = Migrator(
            client if isinstance(client, Client) else client.async_client,
            order=self._order,
            reads={Origin.OLD: old_read, Origin.NEW: new_read},
            comparison=comparison,
            writes={Origin.OLD: old_write, Origin.NEW: new_write},
            latency=self._latency,
            errors=self._errors,
        )
        if isinstance(client, Client):
            return cast("_M", migrator)
        return cast("_M", BlockingMigrator(client, migrator))
