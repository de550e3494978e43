"""Technology migrations: move from one database or service to another in stages.

A migration flag's variations name the :class:`Stage` (``off`` →
``dualwrite`` → ``shadow`` → ``live`` → ``rampdown`` → ``complete``); a
:class:`Migrator` reads and writes through the stage the flag serves, calls
the old and the new origin as that stage says, and sends LaunchDarkly
``migration_op`` events with each operation's latency, errors and
consistency::

    from aioflags.migrations import ExecutionOrder, MigratorBuilder, Stage

    migrator = (
        MigratorBuilder(client)
        .read(read_old, read_new, comparison=operator.eq)
        .write(write_old, write_new)
        .read_execution_order(ExecutionOrder.PARALLEL)
        .build()
    )
    result = await migrator.read("move-orders", context, Stage.OFF, payload=order_id)

Coroutine-function origins run on the event loop; plain functions run in a
worker thread each (``anyio.to_thread.run_sync``), so they may block; a
``PARALLEL`` read runs both in a task group of the caller's.
``MigratorBuilder(blocking_client)``, over an ``aioflags.blocking.Client``,
builds a :class:`BlockingMigrator` for sync code, whose ``read`` and
``write`` are plain methods (LaunchDarkly's sync shape): the same migrator,
run on the client's event loop thread, its plain origins in worker threads.
Without a migrator, ``await client.migration_variation(...)`` gives the stage
and an :class:`OpTracker` to fill in and pass to ``client.track_migration_op``.
The names are those of LaunchDarkly's Python SDK (``ldclient.migrations``);
``AsyncMigratorBuilder``, ``AsyncMigrator`` and ``AsyncMigratorFn``, the
names its async client uses, are aliases of the same classes and type.
See docs/migrations.md.

Added in version 0.1.0.
"""

from __future__ import annotations

from ._client._migrator import AsyncMigratorFn as AsyncMigratorFn
from ._client._migrator import BlockingMigrator as BlockingMigrator
from ._client._migrator import ExecutionOrder as ExecutionOrder
from ._client._migrator import Migrator as Migrator
from ._client._migrator import MigratorBuilder as MigratorBuilder
from ._client._migrator import MigratorCompareFn as MigratorCompareFn
from ._client._migrator import MigratorFn as MigratorFn
from ._client._migrator import OperationResult as OperationResult
from ._client._migrator import Result as Result
from ._client._migrator import WriteResult as WriteResult
from ._evaluation._migration import Operation as Operation
from ._evaluation._migration import OpTracker as OpTracker
from ._evaluation._migration import Origin as Origin
from ._evaluation._migration import Stage as Stage

#: LaunchDarkly's async client's name for :class:`Migrator` (the same class).
AsyncMigrator = Migrator
#: LaunchDarkly's async client's name for :class:`MigratorBuilder` (the same class).
AsyncMigratorBuilder = MigratorBuilder

__all__ = [
    "AsyncMigrator",
    "AsyncMigratorBuilder",
    "AsyncMigratorFn",
    "BlockingMigrator",
    "ExecutionOrder",
    "Migrator",
    "MigratorBuilder",
    "MigratorCompareFn",
    "MigratorFn",
    "OpTracker",
    "Operation",
    "OperationResult",
    "Origin",
    "Result",
    "Stage",
    "WriteResult",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "aioflags.migrations"
del _name, _obj
