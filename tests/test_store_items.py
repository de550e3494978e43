"""Store faults are per item; with the cache off an evaluation reads what it needs.

Issue 48. D1: one item another writer left unusable (here JSON nested far
deeper than any parser recurses) must cost that item alone: the daemon keeps
reading Redis, the read-write writer keeps writing it, the store's status
names the item and the log says so once. N4: with ``cache_ttl=0`` an awaited
evaluation reads the flag it evaluates and what that flag reaches, never the
whole store; proved by counting the commands a real redis-server ran (INFO
commandstats), not by timing. Time is a FakeClock; waits are on events and
keyspace notifications, never sleeps.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from aioflags import Client, Config, DataSystem, ProviderEvent, ProviderStatus
from aioflags.sources import ObjectKind
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

FEATURES = "launchdarkly:features"
SEGMENTS = "launchdarkly:segments"


def deep(key: str, version: int = 1) -> str:
    """A flag whose variation is nested 100,000 deep: no JSON parser can read it."""
    nested = "[" * 100_000 + "]" * 100_000
    return (
        f'{{"key":"{key}","version":{version},"on":true,"variations":[{nested}],'
        '"fallthrough":{"variation":0},"salt":"s"}'
    )


def unusable_lines(caplog: pytest.LogCaptureFixture, key: str) -> list[str]:
    """The log lines that name ``key`` as unusable, or as no longer so."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("aioflags") and f"unusable flag {key!r}" in r.getMessage()
    ]


def daemon(store: RedisStore, **kwargs: Any) -> Config:
    return Config(data_system=DataSystem.daemon(store), send_events=False, **kwargs)


# ------------------------------------------------------------ D1: daemon mode
@pytest.mark.asyncio
async def test_daemon_skips_an_unusable_item_keeps_reading_and_serves_it_once_fixed(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioflags")
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=1)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1"), "g": flag("g1", key="g")})
        await raw.hset(FEATURES, "deep", deep("deep"))  # another writer's
        async with Client(daemon(store), clock=clock) as client:
            # The good items are served; the bad one alone is missing, and
            # the store's status names it.
            assert client.status is ProviderStatus.READY
            assert await client.variation("f", USER, "default") == "v1"
            detail = await client.variation_detail("deep", USER, "default")
            assert detail.error_kind == "FLAG_NOT_FOUND"
            assert store.status == DataStoreStatus(
                malformed=frozenset({(ObjectKind.FLAG, "deep")})
            )
            # A served flag breaks, another changes: the daemon reads on.
            await raw.hset(FEATURES, "g", deep("g", 2))
            await raw.hset(FEATURES, "f", json.dumps(flag("v2", 2)))
            await clock.wait_for_sleeper(within=1)
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED) as got:
                await clock.advance(1)
            assert got[0].flags_changed == {"f", "g"}
            assert await client.variation("f", USER, "default") == "v2"
            # Not the version read before: every worker serves the same.
            detail = await client.variation_detail("g", USER, "default")
            assert detail.error_kind == "FLAG_NOT_FOUND"
            assert store.status.malformed == {
                (ObjectKind.FLAG, "deep"),
                (ObjectKind.FLAG, "g"),
            }
            await raw.hset(FEATURES, "f", json.dumps(flag("v3", 3)))
            await clock.wait_for_sleeper(within=1)
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED):
                await clock.advance(1)
            assert await client.variation("f", USER, "default") == "v3"
            # Fixed by a writer: served at the next read, the status clean.
            await raw.hset(FEATURES, "deep", json.dumps(flag("d", 2, key="deep")))
            await raw.hset(FEATURES, "g", json.dumps(flag("g3", 3, key="g")))
            await clock.wait_for_sleeper(within=1)
            async with expect_store_status(store, DataStoreStatus()):
                await clock.advance(1)
            assert await client.variation("deep", USER, "default") == "d"
            assert await client.variation("g", USER, "default") == "g3"
            assert client.status is ProviderStatus.READY
    # Each logged once when it broke, once when mended, not at every read.
    assert len(unusable_lines(caplog, "deep")) == 2
    assert len(unusable_lines(caplog, "g")) == 2
    assert "JSON nested too deeply to parse" in unusable_lines(caplog, "deep")[0]


@pytest.mark.asyncio
async def test_daemon_with_the_cache_off_skips_an_unusable_item_it_reads(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioflags")
    store = RedisStore(url=redis_server.url, cache_ttl=0)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(daemon(store), clock=FakeClock()) as client:
            assert await client.variation("f", USER, "default") == "v1"
            await raw.hset(FEATURES, "f", deep("f", 2))
            for _ in range(3):
                detail = await client.variation_detail("f", USER, "default")
                assert detail.error_kind == "FLAG_NOT_FOUND"
            assert store.status.malformed == {(ObjectKind.FLAG, "f")}
            await raw.hset(FEATURES, "f", json.dumps(flag("v3", 3)))
            assert await client.variation("f", USER, "default") == "v3"
            assert store.status == DataStoreStatus()
    assert len(unusable_lines(caplog, "f")) == 2  # broken, mended


# -------------------------------------------------------- D1: read-write mode
@pytest.mark.asyncio
async def test_the_writer_replaces_an_unusable_item_and_keeps_writing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioflags")
    store = RedisStore(url=redis_server.url)
    async with (
        raw_redis(redis_server) as raw,
        FlagServer({"f": flag("on"), "g": flag("g", key="g")}) as server,
    ):
        async with expect_write(raw, "launchdarkly:$inited", "set"):
            client = Client(network_config(server, DataSystem.streaming(store=store)))
            await client.__aenter__()
        try:
            await raw.hset(FEATURES, "f", deep("f", 50))  # another writer's
            # The upsert reads the stored version of f: unusable, replaced.
            async with expect_write(raw, FEATURES, "hset"):
                server.set_flag("f", flag("new"))
            async with expect_write(raw, FEATURES, "hset"):
                server.set_flag("g", flag("g2", key="g"))
            features = (await stored(raw))[FEATURES][1]
            assert features["f"] == server.flags["f"]
            assert features["g"] == server.flags["g"]
            assert store.status == DataStoreStatus()
            assert client.status is ProviderStatus.READY
        finally:
            await client.__aexit__(None, None, None)
    replaced = [r.getMessage() for r in caplog.records if "Replaced" in r.getMessage()]
    assert replaced == [
        "Replaced the unusable stored flag 'f' under launchdarkly:features "
        "(another writer left it so)"
    ]


@pytest.mark.asyncio
async def test_read_write_starts_from_a_store_holding_an_unusable_item(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url)
    async with raw_redis(redis_server) as raw, FlagServer({}) as server:
        await seed(raw, {"f": flag("from-redis")})
        await raw.hset(FEATURES, "deep", deep("deep"))
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        config = network_config(server, DataSystem.default(store=store))
        async with Client(config, clock=FakeClock()) as client:
            assert client.status is ProviderStatus.READY  # from Redis
            assert await client.variation("f", USER, "default") == "from-redis"
            assert store.status.malformed == {(ObjectKind.FLAG, "deep")}


# ---------------------------------------------- N4: the cache off reads little
def reaching(value: str, version: int = 1) -> dict[str, Any]:
    """Flag f: prerequisite p, then a rule on segment s (which names segment s2)."""
    return {
        **flag(value, version),
        "prerequisites": [{"key": "p", "variation": 0}],
        "rules": [
            {
                "id": "r",
                "clauses": [{"attribute": "", "op": "segmentMatch", "values": ["s"]}],
                "variation": 1,
            }
        ],
    }


def segment(key: str, version: int, *, included: list[str], within: str = "") -> str:
    rules = (
        [{"clauses": [{"attribute": "", "op": "segmentMatch", "values": [within]}]}]
        if within
        else []
    )
    obj = {"key": key, "version": version, "included": included, "rules": rules}
    return json.dumps({**obj, "salt": "x"})


async def command_counts(raw: Any) -> dict[str, int]:
    stats = await raw.info("commandstats")
    return {
        k.removeprefix("cmdstat_"): int(v["calls"])
        for k, v in stats.items()
        if k != "cmdstat_info"
    }


def spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


@pytest.mark.asyncio
async def test_the_cache_off_reads_the_flag_evaluated_and_what_it_reaches(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url, cache_ttl=0)
    async with raw_redis(redis_server) as raw:
        filler = {f"other-{i}": flag(i, key=f"other-{i}") for i in range(2000)}
        await seed(raw, {**filler, "f": reaching("f-on"), "p": flag("p", key="p")})
        await raw.hset(SEGMENTS, "s", segment("s", 1, included=[], within="s2"))
        await raw.hset(SEGMENTS, "s2", segment("s2", 1, included=[]))
        async with Client(daemon(store), clock=FakeClock()) as client:
            assert await client.variation("f", USER, "default") == "f-on"
            before = await command_counts(raw)
            assert await client.variation("f", USER, "default") == "f-on"
            # Three atomic rounds: f (and $inited), then p and s, then s2;
            # never HGETALL, whatever the size of the store.
            assert spent(before, await command_counts(raw)) == {
                "multi": 3,
                "hmget": 4,
                "exists": 3,
                "exec": 3,
            }
            # Each item it reaches is read after the evaluation began: a
            # write to the nested segment shows at the next evaluation.
            await raw.hset(SEGMENTS, "s2", segment("s2", 2, included=["u1"]))
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED) as got:
                assert await client.variation("f", USER, "default") == "off"
            assert got[0].flags_changed == {"f"}
            # A flag that reaches nothing: one round trip.
            before = await command_counts(raw)
            assert await client.variation("other-7", USER, "default") == 7
            assert spent(before, await command_counts(raw)) == {
                "multi": 1,
                "hmget": 1,
                "exists": 1,
                "exec": 1,
            }
            # Every flag (all_flags_state): the whole store, as before.
            before = await command_counts(raw)
            state = await client.all_flags_state(USER)
            assert state.get_flag_value("p") == "p"
            assert spent(before, await command_counts(raw))["hgetall"] == 2


@pytest.mark.asyncio
async def test_J4_the_cache_off_reads_the_items_a_flagd_flag_shares(
    redis_server: RedisServer,
) -> None:
    """A flagd flag stored in its shared form is read with the evaluator it names."""
    from aioflags._systems._flagd._data._definitions import flagd_flags

    shared: dict[str, Any] = {}
    flags = flagd_flags(
        {
            "$evaluators": {"is-u1": {"==": [{"var": "targetingKey"}, "u1"]}},
            "flags": {
                "f": {
                    "state": "ENABLED",
                    "variants": {"on": "f-on", "off": "f-off"},
                    "defaultVariant": "off",
                    "targeting": {"if": [{"$ref": "is-u1"}, "on", "off"]},
                }
            },
        },
        shared=shared,
    )
    store = RedisStore(url=redis_server.url, cache_ttl=0)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"other": flag("o", key="other")})
        async with Client(daemon(store), clock=FakeClock()) as client:
            assert await client.variation("other", USER, "default") == "o"
            # Written after the start's full read: read through, with its evaluator.
            for key, item in shared.items():
                await raw.hset(SEGMENTS, key, json.dumps(item))
            await seed(raw, flags)
            assert await client.variation("f", USER, "default") == "f-on"
