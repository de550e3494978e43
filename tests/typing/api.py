"""Documented usage, type-checked (mypy --strict and pyright), never run.

Each ``assert_type`` pins what a user's type checker infers from the public
API: a change that loses or widens a type fails ``mypy`` and
``tests/test_typing.py`` (pyright), not a user's build.
"""

from __future__ import annotations

import datetime

from typing_extensions import assert_type

import aioflags
import aioflags.blocking
import aioflags.migrations
import aioflags.sources
import aioflags.testing
from aioflags import (
    Config,
    Context,
    DataSystem,
    EvaluationDetail,
    EventDetails,
    FlagsState,
    FlagUsage,
    FlagValueChange,
    ProviderEvent,
    ProviderStatus,
    Usage,
    VariationUsage,
)


async def lifespan() -> None:
    config = Config("sdk-key", data_system=DataSystem.streaming())
    async with aioflags.Client(config) as client:
        user = Context.create("user-42", attributes={"plan": "pro"})
        assert_type(await client.bool_variation("f", user, False), bool)
        assert_type(await client.int_variation("f", user, 0), int)
        assert_type(await client.float_variation("f", user, 0.0), float)
        assert_type(await client.string_variation("f", user, ""), str)
        assert_type(
            await client.bool_variation_detail("f", user, False),
            EvaluationDetail[bool],
        )
        assert_type(
            await client.string_variation_detail("f", user, ""),
            EvaluationDetail[str],
        )
        assert_type(await client.all_flags_state(user), FlagsState)
        assert_type(client.status, ProviderStatus)
        assert_type(await client.wait_ready(timeout=5), ProviderStatus)
        assert_type(
            await client.wait_for_status(ProviderStatus.READY, ProviderStatus.FATAL),
            ProviderStatus,
        )
        assert_type(client.status_details, EventDetails | None)
        assert_type(client.config, Config)
        snapshot = client.snapshot()
        detail = snapshot.variation_detail("f", user, None)
        assert_type(snapshot.openfeature_reason("f", detail), str)

        snapshot = client.snapshot()  # request-consistent, synchronous
        assert_type(snapshot.bool_variation("f", user, False), bool)

        def on_ready(details: EventDetails) -> None:
            assert_type(details.status, ProviderStatus)

        client.add_handler(ProviderEvent.READY, on_ready)
        remove = client.add_flag_change_handler(lambda keys: None)
        remove()
        async with client.flag_value_changes("f", user) as changes:
            async for change in changes:
                assert_type(change, FlagValueChange)
        client.track("checkout", user, {"cart": [1, 2]}, metric_value=9.5)
        await client.flush()

        usage = client.usage()  # which flags this client evaluates, and how
        assert_type(usage, Usage)
        if usage.available:  # analytics events are on: there are figures
            assert_type(usage.since, datetime.datetime | None)
            assert_type(usage.never_evaluated, frozenset[str])
            for key, flag in usage.flags.items():
                assert_type(key, str)
                assert_type(flag, FlagUsage)
                assert_type(flag.evaluations, int)
                assert_type(flag.last_evaluated, datetime.datetime)
                for served in flag.variations:
                    assert_type(served, VariationUsage)
                    assert_type(served.evaluations, int)


async def migrations(client: aioflags.Client, user: Context) -> None:
    from aioflags.migrations import (
        AsyncMigrator,
        AsyncMigratorBuilder,
        AsyncMigratorFn,
        ExecutionOrder,
        MigratorBuilder,
        OperationResult,
        OpTracker,
        Origin,
        Result,
        Stage,
        WriteResult,
    )

    stage, tracker = await client.migration_variation("move", user, Stage.OFF)
    assert_type(stage, Stage)
    assert_type(tracker, OpTracker)
    client.track_migration_op(tracker)

    async def read_old(payload: object) -> Result[str]:
        return Result.success("value")

    migrator = (
        MigratorBuilder(client)
        .read(read_old, lambda payload: "value", lambda a, b: a == b)
        .write(read_old, read_old)
        .build()
    )
    assert_type(await migrator.read("move", user, Stage.OFF), OperationResult)
    assert_type(await migrator.write("move", user, Stage.OFF, 1), WriteResult)

    # LaunchDarkly's async names, and an async comparison.
    async def same(a: object, b: object) -> bool:
        return a == b

    origin: AsyncMigratorFn = read_old
    ported: AsyncMigrator = (
        AsyncMigratorBuilder(client).read(origin, origin, same).write(origin, origin)
    ).build()
    assert_type(Stage.from_str("live"), Stage | None)
    assert_type(ExecutionOrder.from_str("serial"), ExecutionOrder | None)
    assert_type(await ported.read("move", user, Stage.OFF), OperationResult)
    assert_type(OperationResult(Origin.OLD, Result("v", None, None)), OperationResult)


def blocking_use() -> None:
    with aioflags.blocking.Client(Config("sdk-key")) as client:
        user = Context.create("user-42")
        assert_type(client.bool_variation("f", user, False), bool)
        assert_type(client.async_client, aioflags.Client)
        assert_type(client.status_details, EventDetails | None)
        assert_type(client.config, Config)
        assert_type(client.usage(), Usage)
        from aioflags.migrations import OpTracker, Stage

        stage, tracker = client.migration_variation("move", user, Stage.OFF)
        assert_type(stage, Stage)
        client.track_migration_op(assert_type(tracker, OpTracker))

        from aioflags.migrations import (
            BlockingMigrator,
            MigratorBuilder,
            OperationResult,
            WriteResult,
        )

        def read_old(payload: object) -> str:
            return "value"

        migrator = (
            MigratorBuilder(client)
            .read(read_old, read_old, lambda a, b: a == b)
            .write(read_old, read_old)
            .build()
        )
        assert_type(migrator, BlockingMigrator)
        assert_type(migrator.read("move", user, Stage.OFF), OperationResult)
        assert_type(migrator.write("move", user, Stage.OFF, 1), WriteResult)


async def custom_data_system() -> None:
    system = DataSystem.custom(
        initializers=[aioflags.sources.polling_initializer()],
        synchronizers=[
            aioflags.sources.streaming_synchronizer(),
            aioflags.sources.polling_synchronizer(interval=60),
        ],
        fdv1_fallback=aioflags.sources.fdv1_polling_synchronizer(),
    )
    assert_type(system, DataSystem)


async def in_tests() -> None:
    data = aioflags.testing.FlagData()
    data.update(data.flag("new-checkout").variations(True, False).fallthrough(True))
    async with aioflags.testing.FlagServer() as server:
        data.attach(server)
        assert_type(server.url, str)
        assert_type(server.lens_key, str | None)
        async with aioflags.Client(server.config(send_events=False)) as client:
            assert_type(server.show_guards(client.guards), None)
        clock = aioflags.testing.FakeClock()
        await clock.advance(5)
        assert_type(clock.now(), float)
