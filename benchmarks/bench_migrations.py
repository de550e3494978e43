"""A PARALLEL migration read of two slow origins: aioflags against LaunchDarkly's SDK.

    python benchmarks/bench_migrations.py [--runs N] [--delay-ms D] [--smoke]

Each origin takes ``D`` ms (50 by default): aioflags' origins are coroutines
(``await anyio.sleep``), LaunchDarkly's are plain functions that block
(``time.sleep``), run by its thread pool; its async client's (9.18) are
coroutines (``await asyncio.sleep``) run under ``asyncio.gather``. The wall
time of each ``migrator.read`` on the monotonic clock, every client with a
migration flag in ``shadow`` and analytics events off; the median and the
**worst** run are
printed for each, and their ratio to one origin's delay (1.0: the two reads
fully overlapped; 2.0: one after the other).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio

STAGES = ["off", "dualwrite", "shadow", "live", "rampdown", "complete"]
FLAG = {
    "key": "move",
    "version": 1,
    "on": True,
    "variations": STAGES,
    "fallthrough": {"variation": 2},
    "offVariation": 0,
}


async def ours(runs: int, delay: float) -> list[float]:
    from aioflags import Client, Config, Context
    from aioflags.migrations import ExecutionOrder, MigratorBuilder, Stage
    from aioflags.testing import FlagData

    async def origin(payload: Any) -> str:
        await anyio.sleep(delay)
        return "value"

    data = FlagData()
    data.set_flag("move", FLAG)
    async with Client(
        Config(data_system=data.data_system(), send_events=False)
    ) as client:
        migrator = (
            MigratorBuilder(client)
            .read(origin, origin)
            .write(origin, origin)
            .read_execution_order(ExecutionOrder.PARALLEL)
            .build()
        )
        user = Context.create("u")
        times = []
        for _ in range(runs):
            start = time.monotonic()
            result = await migrator.read("move", user, Stage.OFF)
            times.append(time.monotonic() - start)
            assert result.value == "value"
    return times


def theirs(runs: int, delay: float) -> list[float]:
    import ldclient
    from ldclient.config import Config
    from ldclient.feature_store import InMemoryFeatureStore
    from ldclient.migrations import ExecutionOrder, MigratorBuilder, Stage
    from ldclient.versioned_data_kind import FEATURES, SEGMENTS

    def origin(payload: Any) -> Any:
        time.sleep(delay)  # noqa: TID251 - LaunchDarkly's origins block (its thread pool)
        return ldclient.Result.success("value")

    store = InMemoryFeatureStore()
    store.init({FEATURES: {"move": FLAG}, SEGMENTS: {}})
    client = ldclient.LDClient(
        Config("sdk-key", feature_store=store, use_ldd=True, send_events=False)
    )
    try:
        migrator: Any = (
            MigratorBuilder(client)
            .read(origin, origin)
            .write(origin, origin)
            .read_execution_order(ExecutionOrder.PARALLEL)
            .build()
        )
        user = ldclient.Context.create("u")
        times = []
        for _ in range(runs):
            start = time.monotonic()
            result = migrator.read("move", user, Stage.OFF)
            times.append(time.monotonic() - start)
            assert result.value == "value"
    finally:
        client.close()
    return times


async def theirs_async(runs: int, delay: float) -> list[float]:
    """LaunchDarkly's async client (9.18): coroutine origins under ``asyncio.gather``."""
    import asyncio

    import ldclient
    from ldclient.async_client import AsyncLDClient
    from ldclient.async_config import AsyncConfig
    from ldclient.async_feature_store import AsyncInMemoryFeatureStore
    from ldclient.migrations import AsyncMigratorBuilder, ExecutionOrder, Stage
    from ldclient.versioned_data_kind import FEATURES, SEGMENTS

    async def origin(payload: Any) -> Any:
        await asyncio.sleep(delay)
        return ldclient.Result.success("value")

    store = AsyncInMemoryFeatureStore()
    await store.init({FEATURES: {"move": FLAG}, SEGMENTS: {}})
    config = AsyncConfig(
        "sdk-key", feature_store=store, use_ldd=True, send_events=False
    )
    async with AsyncLDClient(config) as client:
        migrator: Any = (
            AsyncMigratorBuilder(client)
            .read(origin, origin)
            .write(origin, origin)
            .read_execution_order(ExecutionOrder.PARALLEL)
            .build()
        )
        user = ldclient.Context.create("u")
        times = []
        for _ in range(runs):
            start = time.monotonic()
            result = await migrator.read("move", user, Stage.OFF)
            times.append(time.monotonic() - start)
            assert result.value == "value"
    return times


def _report(name: str, times: list[float], delay: float) -> None:
    median, worst = statistics.median(times), max(times)
    print(
        f"{name:<22} median {median * 1000:7.2f} ms  worst {worst * 1000:7.2f} ms"
        f"  (ratio to one origin: median {median / delay:.3f}, worst {worst / delay:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    runs, delay = (3, 0.005) if args.smoke else (args.runs, args.delay_ms / 1000)
    import logging

    logging.getLogger("ldclient").setLevel(logging.ERROR)
    _report("aioflags (task group)", anyio.run(ours, runs, delay), delay)
    _report("LaunchDarkly (threads)", theirs(runs, delay), delay)
    _report("LaunchDarkly (async)", anyio.run(theirs_async, runs, delay), delay)


if __name__ == "__main__":
    main()
