"""aioflags and LaunchDarkly's Python SDK share one Redis, in both directions.

The strongest proof that the layout is LaunchDarkly's: their SDK's own Redis
store reads what aioflags wrote and evaluates it, and aioflags in daemon mode
evaluates what their store wrote (their tombstones included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from aioflags import Client, Config, Context, DataSystem
from aioflags.stores import RedisStore
from aioflags.testing import FlagServer
from tests.redis_server import RedisServer
from tests.test_stores import SEGMENT, expect_write, flag, network_config, raw_redis

pytestmark = pytest.mark.differential

USER = Context.create("u1")
IN_SEGMENT: dict[str, Any] = {
    **flag("outside", key="in-segment"),
    "rules": [
        {
            "id": "r1",
            "variation": 0,
            "clauses": [
                {
                    "attribute": "",
                    "op": "segmentMatch",
                    "values": ["s"],
                    "negate": False,
                }
            ],
        }
    ],
    "fallthrough": {"variation": 1},
    "variations": ["inside", "outside"],
}


@contextlib.contextmanager
def launchdarkly_store(url: str) -> Iterator[Any]:
    """LaunchDarkly's own Redis feature store, uncached, closed afterwards."""
    from ldclient.feature_store import CacheConfig
    from ldclient.integrations import Redis

    store: Any = Redis.new_feature_store(url=url, caching=CacheConfig.disabled())
    try:
        yield store
    finally:
        # Their wrapper has no close(): disconnect the pool it owns (no socket leaks).
        store._core._pool.disconnect()


@pytest.mark.asyncio
async def test_launchdarklys_sdk_evaluates_what_aioflags_wrote(
    redis_server: RedisServer,
) -> None:
    import ldclient
    from ldclient.config import Config as LDConfig
    from ldclient.versioned_data_kind import FEATURES

    store = RedisStore(url=redis_server.url)
    flags = {"f": flag("on"), "gone": flag("x", key="gone"), "in-segment": IN_SEGMENT}
    async with (
        raw_redis(redis_server) as raw,
        FlagServer(flags, {"s": SEGMENT}) as server,
    ):
        async with expect_write(raw, "launchdarkly:$inited", "set"):
            client = Client(network_config(server, DataSystem.streaming(store=store)))
            await client.__aenter__()
        try:
            async with expect_write(raw, "launchdarkly:features", "hset"):
                server.delete_flag("gone")
        finally:
            await client.__aexit__(None, None, None)

    with launchdarkly_store(redis_server.url) as theirs:
        assert theirs.initialized
        assert sorted(theirs.all(FEATURES, lambda items: items)) == ["f", "in-segment"]
        ld: Any = ldclient.LDClient(
            LDConfig("sdk-key", feature_store=theirs, use_ldd=True, send_events=False)
        )
        try:
            user = ldclient.Context.create("u1")
            assert ld.variation("f", user, "default") == "on"
            assert ld.variation("in-segment", user, "default") == "inside"
            detail = ld.variation_detail("gone", user, "default")
            assert detail.reason == {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}
        finally:
            ld.close()


@pytest.mark.asyncio
async def test_aioflags_daemon_evaluates_what_launchdarklys_store_wrote(
    redis_server: RedisServer,
) -> None:
    from ldclient.versioned_data_kind import FEATURES, SEGMENTS

    with launchdarkly_store(redis_server.url) as theirs:
        theirs.init(
            {
                FEATURES: {
                    "f": flag("v1"),
                    "gone": flag("x", key="gone"),
                    "in-segment": IN_SEGMENT,
                },
                SEGMENTS: {"s": SEGMENT},
            }
        )
        theirs.upsert(FEATURES, flag("v2", 2))
        theirs.delete(FEATURES, "gone", 5)  # their tombstone
        theirs.upsert(FEATURES, flag("older", 1))  # ignored: older than 2

    store = RedisStore(url=redis_server.url)
    async with Client(Config(data_system=DataSystem.daemon(store))) as client:
        assert await client.variation("f", USER, "default") == "v2"
        assert await client.variation("in-segment", USER, "default") == "inside"
        detail = await client.variation_detail("gone", USER, "default")
        assert detail.error_kind == "FLAG_NOT_FOUND"
