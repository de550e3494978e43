"""Any bytes another writer leaves in Redis: the item is unusable, the rest served.

Redis holds bytes, not text: another writer (a script, a tool, a corrupted
replica) may leave invalid UTF-8 in a flag's JSON, in a variation, in a
segment, or in a hash field name. Such an item is the item's fault alone
(issue 60, F1): it is named in ``DataStoreStatus.malformed`` and logged once,
every other item is served and written as usual, and later changes are seen.
Against a real redis-server; time is a FakeClock, nothing sleeps.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest

from aioflags import Client, Config, DataSystem, ProviderEvent, ProviderStatus
from aioflags.sources import ObjectKind
from aioflags.stores import DataStoreStatus, RedisStore
from aioflags.testing import FakeClock, Fault, FlagServer
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
)

FEATURES = "launchdarkly:features"
SEGMENTS = "launchdarkly:segments"


def _flag_bytes(**fields: Any) -> bytes:
    """A flag "m" serving "m" to everyone, with ``fields`` over it, as JSON bytes."""
    return json.dumps({**flag("m", key="m"), **fields}).encode()


_BAD = b"\xff"
#: (placement, hash, field name, value, the item named malformed)
PLACEMENTS = [
    ("flag value", FEATURES, b"m", b'{"key":"' + _BAD + b'","version":1}', "m"),
    (
        "variation",
        FEATURES,
        b"m",
        _flag_bytes(variations=["x", "y"]).replace(b'"x"', b'"' + _BAD + b'"'),
        "m",
    ),
    (
        "clause value",
        FEATURES,
        b"m",
        _flag_bytes(
            rules=[
                {
                    "id": "r",
                    "variation": 0,
                    "clauses": [{"attribute": "key", "op": "in", "values": ["x"]}],
                }
            ]
        ).replace(b'"x"', b'"' + _BAD + b'"'),
        "m",
    ),
    ("flag field name", FEATURES, b"m" + _BAD, _flag_bytes(), "m\\xff"),
    (
        "segment value",
        SEGMENTS,
        b"t",
        b'{"key":"t","version":1,"included":["' + _BAD + b'"]}',
        "t",
    ),
    (
        "segment field name",
        SEGMENTS,
        b"t" + _BAD,
        b'{"key":"t","version":1,"included":[]}',
        "t\\xff",
    ),
]
IDS = [placement[0] for placement in PLACEMENTS]


def _malformed(hash_name: str, key: str) -> frozenset[tuple[ObjectKind, str]]:
    kind = ObjectKind.FLAG if hash_name == FEATURES else ObjectKind.SEGMENT
    return frozenset({(kind, key)})


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("aioflags") and r.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize("ttl", [0.2, 0], ids=["cached", "cache off"])
@pytest.mark.parametrize(
    ("where", "hash_name", "name", "value", "key"), PLACEMENTS, ids=IDS
)
@pytest.mark.asyncio
async def test_daemon_names_an_item_of_invalid_utf8_and_serves_the_rest(
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    where: str,
    hash_name: str,
    name: bytes,
    value: bytes,
    key: str,
    ttl: float,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=ttl)
    config = Config(data_system=DataSystem.daemon(store), send_events=False)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        await raw.hset(hash_name, name, value)
        async with Client(config, clock=clock) as client:
            assert client.status is ProviderStatus.READY
            assert await client.variation("f", USER, "default") == "v1"
            detail = await client.variation_detail("m", USER, "default")
            assert detail.value == "default"
            assert detail.error_kind == "FLAG_NOT_FOUND"
            assert store.status.malformed == _malformed(hash_name, key)
            lines = [line for line in _warnings(caplog) if "unusable" in line]
            assert len(lines) == 1 and repr(key) in lines[0], lines
            # Later changes are seen: the reader goes on.
            await raw.hset(FEATURES, "f", json.dumps(flag("v2", 2)))
            if ttl:
                async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED):
                    await clock.wait_for_sleeper(within=ttl)
                    await clock.advance(ttl)
            assert await client.variation("f", USER, "default") == "v2"
            assert client.status is ProviderStatus.READY
            # Mended by a writer: served, and no longer named (once read whole:
            # the TTL expires, or with the cache off an evaluation of every flag).
            await raw.hdel(hash_name, name)
            await raw.hset(FEATURES, "m", json.dumps(flag("m", 3, key="m")))
            async with expect_store_status(store, DataStoreStatus()):
                if ttl:
                    await clock.wait_for_sleeper(within=ttl)
                    await clock.advance(ttl)
                else:
                    await client.all_flags_state(USER)
            assert await client.variation("m", USER, "default") == "m"


@pytest.mark.parametrize(
    ("where", "hash_name", "name", "value", "key"), PLACEMENTS, ids=IDS
)
@pytest.mark.asyncio
async def test_read_write_serves_around_invalid_utf8_and_the_writer_goes_on(
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    where: str,
    hash_name: str,
    name: bytes,
    value: bytes,
    key: str,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url)
    server_flags = {"f": flag("net"), "m": flag("m", 5, key="m")}
    async with (
        raw_redis(redis_server) as raw,
        FlagServer(server_flags, segments={"t": {"key": "t", "version": 5}}) as server,
    ):
        # Before the network delivers, the store is served around the item.
        await seed(raw, {"f": flag("from-redis")})
        await raw.hset(hash_name, name, value)
        server.script("/sdk/stream", Fault(status=503))
        # (Streaming alone: changes then arrive without the clock moving.)
        config = network_config(server, DataSystem.streaming(store=store))
        async with Client(config, clock=clock) as client:
            assert client.status is ProviderStatus.READY
            assert await client.variation("f", USER, "default") == "from-redis"
            assert store.status.malformed == _malformed(hash_name, key)
            # The network delivers and its data set is written whole.
            async with expect_write(raw, "launchdarkly:$inited", "set"):
                with anyio.fail_after(30):
                    while await client.variation("f", USER, "default") != "net":
                        await clock.wait_for_sleepers()
                        await clock.advance(1)
            # Another writer leaves the bytes again; a change to that item
            # reads them (the version check), replaces them, and the writer
            # writes what comes next.
            await raw.hset(hash_name, name, value)
            async with expect_write(raw, hash_name, "hset"):
                if hash_name == FEATURES:
                    server.set_flag("m", flag("m2", 6, key="m"))
                else:
                    server.set_segment("t", {"key": "t", "version": 6})
            async with expect_write(raw, FEATURES, "hset"):
                server.set_flag("f", flag("net2", 7))
            stored_f = json.loads(await raw.hget(FEATURES, "f") or "null")
            assert stored_f["variations"][0] == "net2"
            assert store.status.available
            assert client.status is ProviderStatus.READY
            assert not [line for line in _warnings(caplog) if "failed" in line]
