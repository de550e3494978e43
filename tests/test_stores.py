"""The Redis store against a real redis-server: LaunchDarkly's layout, versions.

Every test here starts its own redis-server (tests/redis_server.py) and reads
the raw keys with redis-py to check what aioflags wrote against LaunchDarkly's
layout (shared/stores.md §1). Writes are awaited through Redis keyspace
notifications, status changes through listeners: nothing sleeps or polls.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from aioflags import (
    ConfigurationError,
    Context,
    ObjectKind,
)
from aioflags._stores._base import StoreFailure, encode_change
from aioflags.stores import DataStoreStatus, RedisStore
from tests.redis_server import RedisServer

USER = Context.create("u1")


def flag(value: Any, version: int = 1, key: str = "f") -> dict[str, Any]:
    """A flag that serves ``value`` to everyone."""
    return {
        "key": key,
        "version": version,
        "on": True,
        "variations": [value, "off"],
        "offVariation": 1,
        "fallthrough": {"variation": 0},
        "salt": "s",
    }


SEGMENT: dict[str, Any] = {"key": "s", "version": 3, "included": ["u1"], "salt": "x"}


@contextlib.asynccontextmanager
async def raw_redis(server: RedisServer) -> AsyncIterator[Redis]:
    """A plain redis-py client to read and write the keys behind aioflags' back."""
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def stored(raw: Redis, prefix: str = "launchdarkly") -> dict[str, Any]:
    """Every key under ``prefix`` with its Redis type and decoded content."""
    out: dict[str, Any] = {}
    for key in sorted(str(k) for k in await raw.keys(f"{prefix}:*")):
        kind = await raw.type(key)
        if kind == "hash":
            fields = await raw.hgetall(key)
            out[key] = ("hash", {k: json.loads(v) for k, v in fields.items()})
        else:
            out[key] = (kind, await raw.get(key))
    return out


def test_store_construction_validates_and_does_no_io() -> None:
    store = RedisStore(url="redis://user:hunter2@127.0.0.1:9/0", cache_ttl=None)
    assert store.cache_ttl == math.inf and store.prefix == "launchdarkly"
    assert "hunter2" not in repr(store) and "hunter2" not in store.description
    assert store.status == DataStoreStatus(available=True, stale=False)
    assert RedisStore(url="redis://:pw@h:1/0").description.count("***") == 1
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "http://x"}, "url must start"),
        ({"url": "redis://h:notaport/0"}, "is invalid"),
        ({"prefix": ""}, "prefix"),
        ({"cache_ttl": -1}, "cache_ttl"),
        ({"cache_ttl": "15"}, "cache_ttl"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            RedisStore(**kwargs)


@pytest.mark.asyncio
async def test_full_init_replaces_everything_and_marks_the_store_inited(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url)
    async with raw_redis(redis_server) as raw, store.connect() as connection:
        await raw.hset("launchdarkly:features", "stale", json.dumps(flag(0)))
        await raw.hset("launchdarkly:segments", "old", json.dumps(SEGMENT))
        await connection.init(
            {
                ObjectKind.FLAG: {"f": (7, json.dumps(flag("on", 7)))},
                ObjectKind.SEGMENT: {},
            }
        )
        assert await stored(raw) == {
            "launchdarkly:$inited": ("string", "launchdarkly:$inited"),
            "launchdarkly:features": ("hash", {"f": flag("on", 7)}),
        }
        data = await connection.load()
        assert data.initialized
        assert set(data.items[ObjectKind.FLAG]) == {"f"}


@pytest.mark.asyncio
async def test_upserts_respect_the_versions_in_redis(redis_server: RedisServer) -> None:
    """Versions 1 and 100 do not overwrite a stored 100; 200 does; tombstones too."""
    store = RedisStore(url=redis_server.url, prefix="p")
    async with raw_redis(redis_server) as raw, store.connect() as connection:
        await raw.hset("p:features", "f", json.dumps(flag("theirs", 100)))
        for version in (1, 100):
            await connection.upsert(
                [(ObjectKind.FLAG, "f", (version, json.dumps(flag("mine", version))))]
            )
        assert json.loads(await raw.hget("p:features", "f") or "")["version"] == 100
        await connection.upsert(
            [
                (ObjectKind.FLAG, "f", (200, json.dumps(flag("mine", 200)))),
                (ObjectKind.SEGMENT, "s", (3, json.dumps(SEGMENT))),
                # Within one batch the newest wins too.
                (ObjectKind.FLAG, "f", (150, json.dumps(flag("older", 150)))),
            ]
        )
        assert await stored(raw, "p") == {
            "p:features": ("hash", {"f": flag("mine", 200)}),
            "p:segments": ("hash", {"s": SEGMENT}),
        }
        await connection.upsert([])


@pytest.mark.asyncio
async def test_operations_on_a_stopped_server_raise_store_failure(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url)
    redis_server.stop()
    async with store.connect() as connection:
        for operation in (
            connection.load(),
            connection.ping(),
            connection.init({ObjectKind.FLAG: {}, ObjectKind.SEGMENT: {}}),
            connection.upsert([(ObjectKind.FLAG, "f", (1, "{}"))]),
        ):
            with pytest.raises(StoreFailure, match="failed"):
                await operation


def test_tombstones_are_encoded_like_launchdarklys_python_sdk() -> None:
    from aioflags import Change, ChangeKind

    change = Change(action=ChangeKind.DELETE, kind=ObjectKind.FLAG, key="f", version=9)
    assert encode_change(change) == (9, '{"key":"f","version":9,"deleted":true}')


@pytest.mark.asyncio
async def test_an_upsert_retries_when_another_writer_changes_the_hash(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCH conflicts retry (up to 10 attempts), then fail."""
    import redis

    from aioflags._stores._base import stored_version as real

    conflicts = [1]

    def meddle(text: str | bytes | None) -> int | None:
        # Another writer touches the hash between WATCH and EXEC.
        if conflicts[0] > 0:
            conflicts[0] -= 1
            with redis.Redis.from_url(redis_server.url) as other:
                other.hset("launchdarkly:features", "other", "{}")
        return real(text)

    monkeypatch.setattr("aioflags._stores._redis.stored_version", meddle)
    store = RedisStore(url=redis_server.url)
    item = (ObjectKind.FLAG, "f", (1, json.dumps(flag("v1"))))
    async with raw_redis(redis_server) as raw, store.connect() as connection:
        await connection.upsert([item])
        assert await raw.hget("launchdarkly:features", "f") == item[2][1]
        conflicts[0] = 10
        with pytest.raises(StoreFailure, match="kept changing"):
            await connection.upsert([(ObjectKind.FLAG, "f", (2, "{}"))])


def test_redis_py_missing_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"aioflags\[redis\]"):
        RedisStore()
