"""Redis losing its data or going away mid-run, against a real redis-server.

A Redis restarted without persistence, flushed, or failed over to an empty
replica must not turn every flag into its default: the data read last stays
served, the status says the store is unhealthy, one line is logged, and the
client is READY again once a writer has initialised the store (issue 38).
An outage is logged when it begins, at most once a minute while it lasts,
and when it ends. Time is a FakeClock; waits are on events and Redis
keyspace notifications, never sleeps.
"""

from __future__ import annotations

import logging
import re

import anyio
import pytest

from aioflags import Client, Config, DataSystem, ProviderEvent, ProviderStatus
from aioflags._datasystem._stores._sources import RETRY_INTERVAL
from aioflags._datasystem._stores._writer import CHECK_INTERVAL
from aioflags.stores import DataStoreStatus, RedisStore
from aioflags.testing import FakeClock, FlagServer
from tests.redis_server import RedisServer
from tests.test_stores import (
    USER,
    expect_event,
    expect_store_status,
    expect_write,
    flag,
    network_config,
    raw_redis,
    seed,
    stored,
)


def status_of(client: Client) -> ProviderStatus:
    """The client's status, read anew (no narrowing across awaits)."""
    return client.status


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING-and-above lines aioflags logged so far."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("aioflags") and r.levelno >= logging.WARNING
    ]


async def retry(clock: FakeClock, times: int) -> None:
    """Let the daemon's 0.5 s retry run ``times`` times."""
    for _ in range(times):
        await clock.wait_for_sleeper(within=RETRY_INTERVAL)
        await clock.advance(RETRY_INTERVAL)


@pytest.mark.asyncio
async def test_daemon_keeps_serving_when_redis_comes_back_empty_and_says_so_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioflags")
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=1)
    config = Config(
        data_system=DataSystem.daemon(store), grace_period=5, send_events=False
    )
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(config, clock=clock) as client:
            assert status_of(client) is ProviderStatus.READY
            await clock.wait_for_sleeper(within=1)
            caplog.clear()
            await raw.flushdb()
            async with (
                expect_store_status(store, DataStoreStatus(stale=True)),
                expect_event(client, ProviderEvent.STALE) as stale,
            ):
                await clock.advance(1)
            assert "lost its data" in (stale[0].message or "")
            detail = await client.variation_detail("f", USER, "default")
            assert detail.value == "v1" and detail.error_kind is None
            # A writer's change lands before it initialises the store again:
            # a store that had $inited is not served without it.
            await raw.hset("launchdarkly:features", "g", '{"key":"g","version":1}')
            await retry(clock, 4)
            assert status_of(client) is ProviderStatus.STALE
            async with expect_event(client, ProviderEvent.ERROR):
                await retry(clock, 6)  # past the 5 s grace period
            assert status_of(client) is ProviderStatus.ERROR
            assert await client.variation("f", USER, "default") == "v1"
            lines = warnings(caplog)
            assert len(lines) == 1 and "lost its data" in lines[0], lines
            # Initialised again (a writer's full data set): READY, and served.
            await seed(raw, {"f": flag("v2", 2)})
            await clock.wait_for_sleeper(within=RETRY_INTERVAL)
            async with (
                expect_store_status(store, DataStoreStatus()),
                expect_event(client, ProviderEvent.READY),
            ):
                await clock.advance(RETRY_INTERVAL)
            assert await client.variation("f", USER, "default") == "v2"
            assert status_of(client) is ProviderStatus.READY
            assert warnings(caplog) == lines  # the recovery is INFO
            assert "initialised again" in caplog.text


@pytest.mark.asyncio
async def test_daemon_with_the_cache_off_evaluates_the_last_data_once_redis_is_empty(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url, cache_ttl=0)
    config = Config(data_system=DataSystem.daemon(store), send_events=False)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(config, clock=FakeClock()) as client:
            assert await client.variation("f", USER, "default") == "v1"
            await raw.flushdb()
            # Each evaluation reads Redis first: it finds it empty, and
            # evaluates what was read last, at once.
            async with expect_event(client, ProviderEvent.STALE):
                detail = await client.variation_detail("f", USER, "default")
            assert detail.value == "v1" and detail.error_kind is None
            await seed(raw, {"f": flag("v2", 2)})
            async with expect_event(client, ProviderEvent.READY):
                assert await client.variation("f", USER, "default") == "v2"


@pytest.mark.asyncio
async def test_read_write_rewrites_the_whole_data_set_when_redis_is_flushed(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url)
    flags = {"f": flag("v1"), "g": flag(True, key="g")}
    async with FlagServer(flags) as server, raw_redis(redis_server) as raw:
        async with expect_write(raw, "launchdarkly:$inited", "set"):
            client = Client(
                network_config(server, DataSystem.streaming(store=store)), clock=clock
            )
            await client.__aenter__()
        try:
            written = await stored(raw)
            assert set(written["launchdarkly:features"][1]) == {"f", "g"}
            await raw.flushdb()
            with anyio.fail_after(30):
                await clock.wait_for_sleeper(within=CHECK_INTERVAL)
            async with (
                expect_store_status(store, DataStoreStatus(stale=True)),
                expect_store_status(store, DataStoreStatus()),
                expect_write(raw, "launchdarkly:$inited", "set"),
            ):
                await clock.advance(CHECK_INTERVAL)
            assert await stored(raw) == written
            assert status_of(client) is ProviderStatus.READY
            assert [line for line in warnings(caplog) if "lost its data" in line]
        finally:
            await client.__aexit__(None, None, None)


@pytest.mark.asyncio
async def test_a_redis_outage_is_logged_once_a_minute_then_its_recovery(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioflags")
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=1)
    config = Config(
        data_system=DataSystem.daemon(store), grace_period=5, send_events=False
    )
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
    async with Client(config, clock=clock) as client:
        await clock.wait_for_sleeper(within=1)
        caplog.clear()
        redis_server.stop()
        async with expect_event(client, ProviderEvent.STALE):
            await clock.advance(1)
        await retry(clock, 260)  # 130 s of retries, two a second
        assert await client.variation("f", USER, "default") == "v1"
        redis_server.start()
        async with raw_redis(redis_server) as raw:
            await seed(raw, {"f": flag("v2", 2)})
        async with expect_event(client, ProviderEvent.READY):
            await retry(clock, 1)
    lines = warnings(caplog)
    assert len(lines) == 4, lines
    assert "reading the store failed" in lines[0]
    for line in lines[1:3]:
        assert re.search(r"still unavailable after \d+ s \(\d+ more failures", line)
    assert re.search(r"\((119|120) more failures", lines[1]), lines[1]
    assert "available again (unavailable for 130 s)" in lines[3]
