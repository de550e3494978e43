"""The Redis store against a real redis-server: layout, read-write, daemon, outages.

Every test here starts its own redis-server (tests/redis_server.py) and reads
the raw keys with redis-py to check what aioflags wrote against LaunchDarkly's
layout (shared/stores.md §1). Writes are awaited through Redis keyspace
notifications, status changes through listeners: nothing sleeps or polls.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from aioflags import (
    Client,
    Config,
    ConfigurationError,
    Context,
    DataSourceStatus,
    DataSystem,
    EventDetails,
    ProviderEvent,
    ProviderStatus,
    SourceState,
    sources,
)
from aioflags._datasystem._stores._base import StoreFailure, encode_change
from aioflags._datasystem._stores._sources import RETRY_INTERVAL
from aioflags.sources import ObjectKind
from aioflags.stores import DataStoreStatus, RedisStore, StoreMode
from aioflags.testing import FakeClock, Fault, FlagServer
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


@contextlib.asynccontextmanager
async def expect_write(raw: Redis, key: str, command: str) -> AsyncIterator[None]:
    """Wait, on leaving the block, for Redis to report ``command`` on ``key``."""
    await raw.config_set("notify-keyspace-events", "KA")
    async with raw.pubsub() as pubsub:
        await pubsub.subscribe(f"__keyspace@0__:{key}")
        yield
        with anyio.fail_after(30):
            async for message in pubsub.listen():
                if message["type"] == "message" and message["data"] == command:
                    break


@contextlib.asynccontextmanager
async def expect_store_status(
    store: RedisStore, expected: DataStoreStatus
) -> AsyncIterator[None]:
    """Wait, on leaving the block, until the store's status becomes ``expected``."""
    reached = anyio.Event()

    def listener(status: DataStoreStatus) -> None:
        if status == expected:
            reached.set()

    remove = store.add_status_listener(listener)
    try:
        yield
        with anyio.fail_after(30):
            await reached.wait()
    finally:
        remove()


@contextlib.asynccontextmanager
async def expect_event(
    client: Client, event: ProviderEvent, match: Callable[[EventDetails], bool] = bool
) -> AsyncIterator[list[EventDetails]]:
    """Wait, on leaving the block, for ``event`` (matching ``match``) on ``client``."""
    got: list[EventDetails] = []
    seen = anyio.Event()

    def handler(details: EventDetails) -> None:
        if match(details):
            got.append(details)
            seen.set()

    client.add_handler(event, handler)
    try:
        yield got
        with anyio.fail_after(30):
            await seen.wait()
    finally:
        client.remove_handler(event, handler)


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


async def seed(raw: Redis, flags: dict[str, Any], *, inited: bool = True) -> None:
    """Write flags the way LaunchDarkly's SDKs and Relay do, without aioflags."""
    if flags:
        await raw.hset(
            "launchdarkly:features",
            mapping={k: json.dumps(v) for k, v in flags.items()},
        )
    if inited:
        await raw.set("launchdarkly:$inited", "1")


def network_config(server: FlagServer, system: DataSystem, **kwargs: Any) -> Config:
    return Config(
        "sdk-key",
        base_uri=server.url,
        stream_uri=server.url,
        data_system=system,
        **kwargs,
        send_events=False,
    )


# ------------------------------------------------------------------ the store
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


def test_data_system_presets_with_a_store() -> None:
    store = RedisStore()
    for system in (
        DataSystem.default(store=store),
        DataSystem.streaming(store=store),
        DataSystem.polling(store=store),
    ):
        assert system.store is store and system.store_mode is StoreMode.READ_WRITE
    # The store is not a listed source: the supervisor serves it beside them.
    assert len(DataSystem.default(store=store).initializers) == 1
    assert DataSystem.polling(store=store).initializers == ()
    daemon = DataSystem.daemon(store)
    assert daemon.store is store and daemon.store_mode is StoreMode.READ_ONLY
    assert daemon.initializers == () and daemon.synchronizers == ()
    assert daemon.fdv1_fallback is None
    assert DataSystem.default().store is None
    with pytest.raises(ConfigurationError, match="needs a store"):
        DataSystem.daemon(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="persistent store"):
        DataSystem(store=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="store_mode"):
        DataSystem(store_mode="read-write")  # type: ignore[arg-type]


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


# -------------------------------------------------------------- read-write mode
@pytest.mark.parametrize(
    "preset",
    [DataSystem.default, DataSystem.streaming, DataSystem.polling],
    ids=["default", "streaming", "polling"],
)
@pytest.mark.asyncio
async def test_read_write_writes_launchdarklys_layout(
    redis_server: RedisServer, preset: Callable[..., DataSystem]
) -> None:
    store = RedisStore(url=redis_server.url)
    async with (
        raw_redis(redis_server) as raw,
        FlagServer({"f": flag("on")}, {"s": SEGMENT}) as server,
    ):
        async with expect_write(raw, "launchdarkly:$inited", "set"):
            client = Client(network_config(server, preset(store=store)))
            await client.__aenter__()
        try:
            assert client.status is ProviderStatus.READY
            served = server.flags["f"]
            assert await stored(raw) == {
                "launchdarkly:$inited": ("string", "launchdarkly:$inited"),
                "launchdarkly:features": ("hash", {"f": served}),
                "launchdarkly:segments": ("hash", {"s": server.segments["s"]}),
            }
        finally:
            await client.__aexit__(None, None, None)


@pytest.mark.asyncio
async def test_read_write_upserts_changes_and_writes_deletions_as_tombstones(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url)
    async with (
        raw_redis(redis_server) as raw,
        FlagServer({"f": flag("on"), "g": flag("g", key="g")}) as server,
    ):
        async with expect_write(raw, "launchdarkly:$inited", "set"):
            client = Client(network_config(server, DataSystem.streaming(store=store)))
            await client.__aenter__()
        try:
            async with expect_write(raw, "launchdarkly:features", "hset"):
                server.set_flag("h", flag("new", key="h"))
            async with expect_write(raw, "launchdarkly:features", "hset"):
                server.delete_flag("f")
            features = (await stored(raw))["launchdarkly:features"][1]
            assert features["h"] == server.flags["h"]
            assert features["g"] == server.flags["g"]  # untouched items stay
            tombstone = features["f"]
            assert tombstone == {
                "key": "f",
                "version": tombstone["version"],
                "deleted": True,
            }
            assert tombstone["version"] > server.flags["h"]["version"] - 1
        finally:
            await client.__aexit__(None, None, None)


@pytest.mark.asyncio
async def test_read_write_starts_from_an_initialised_store_while_the_network_fails(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url)
    async with (
        raw_redis(redis_server) as raw,
        FlagServer({"f": flag("from-network")}) as server,
    ):
        await seed(raw, {"f": flag("from-redis", 1)})
        before = await stored(raw)
        server.script("/sdk/poll", Fault(status=503))
        server.script("/sdk/stream", Fault(status=503))
        config = network_config(server, DataSystem.default(store=store))
        async with Client(config, clock=clock) as client:
            assert client.status is ProviderStatus.READY
            assert await client.variation("f", USER, "default") == "from-redis"
            # Data read from the store is never written back to it.
            assert await stored(raw) == before
            # The network's retries are timed by the fake clock, the requests
            # they make are real: move the clock a second at a time until the
            # network's data is stored (one advance of the whole delay could
            # end before a retry's backoff had begun, and never wake it).
            with anyio.fail_after(30):
                while (await stored(raw))["launchdarkly:features"][1] != server.flags:
                    await clock.wait_for_sleepers()
                    await clock.advance(1)
            assert await client.variation("f", USER, "default") == "from-network"


@pytest.mark.asyncio
async def test_an_initialised_store_is_read_again_per_ttl_until_the_sources_deliver(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=5)
    async with raw_redis(redis_server) as raw, FlagServer({}) as server:
        await seed(raw, {"f": flag("v1"), "g": flag("same", key="g")})
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        config = network_config(server, DataSystem.default(store=store))
        async with Client(config, clock=clock) as client:
            assert await client.variation("f", USER, "x") == "v1"
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("v2", 2)))
            await clock.wait_for_sleeper(within=5)
            await clock.advance(4.9)
            assert await client.variation("f", USER, "x") == "v1"  # cached
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED) as got:
                await clock.advance(0.1)
            assert got[0].flags_changed == {"f"}  # only what changed
            assert await client.variation("f", USER, "x") == "v2"


@pytest.mark.asyncio
async def test_the_store_is_not_read_once_the_sources_have_delivered(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflags._datasystem._stores._redis import _RedisConnection

    # Each read of the store begun, and whether the client was READY then;
    # and the end of the reader's connection (the reader has stopped).
    began: list[bool] = []
    ready = anyio.Event()
    closed = anyio.Event()
    load, connect = _RedisConnection.load, RedisStore.connect

    async def counted(self: _RedisConnection) -> Any:
        began.append(ready.is_set())
        return await load(self)

    @contextlib.asynccontextmanager
    async def watched(self: RedisStore) -> AsyncIterator[_RedisConnection]:
        async with connect(self) as connection:
            yield connection
        closed.set()

    monkeypatch.setattr(_RedisConnection, "load", counted)
    monkeypatch.setattr(RedisStore, "connect", watched)
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=5)
    async with (
        raw_redis(redis_server) as raw,
        FlagServer({"f": flag("from-network")}) as server,
    ):
        # Not initialised: READY can only come from the network.
        await seed(raw, {"f": flag("from-redis", 1)}, inited=False)
        system = DataSystem.custom(
            synchronizers=[sources.streaming_synchronizer()],
            store=store,
            store_mode=StoreMode.READ_ONLY,
        )
        async with Client(network_config(server, system), clock=clock) as client:
            assert client.status is ProviderStatus.READY
            ready.set()
            assert await client.variation("f", USER, "x") == "from-network"
            # Initialised and changed behind its back: ignored, and not read.
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("direct", 5)))
            await raw.set("launchdarkly:$inited", "1")
            # The reader stops: at once if it had not read yet; if it had
            # (a read may even be under way: it began before READY), once
            # the cache expires, when it looks again.
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:

                    async def expire() -> None:
                        while True:
                            await clock.wait_for_sleeper(within=5)
                            await clock.advance(5)

                    tg.start_soon(expire)
                    await closed.wait()
                    tg.cancel_scope.cancel()
            assert await client.variation("f", USER, "x") == "from-network"
            assert True not in began  # no read begun once READY


@pytest.mark.asyncio
async def test_a_store_initialised_after_start_is_served_once_the_ttl_expires(
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While the sources have not delivered, "not initialised" is cached for the TTL."""
    from aioflags._datasystem._stores._redis import _RedisConnection

    caplog.set_level(logging.INFO, logger="aioflags")
    read = anyio.Event()
    load = _RedisConnection.load

    async def watched(self: _RedisConnection) -> Any:
        data = await load(self)
        # The reader goes on from here to its sleep on the clock (the TTL)
        # without awaiting anything else: asleep once this task runs again.
        read.set()
        return data

    monkeypatch.setattr(_RedisConnection, "load", watched)
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=5)
    async with raw_redis(redis_server) as raw, FlagServer({}) as server:
        await seed(raw, {"f": flag("from-redis")}, inited=False)
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        config = network_config(
            server, DataSystem.default(store=store), ready_timeout=0.05
        )
        client = Client(config, clock=clock)
        async with expect_event(client, ProviderEvent.READY):
            await client.__aenter__()
            try:
                assert client.status is not ProviderStatus.READY
                # The store was read and found not initialised: cached for 5 s.
                # Wait for that read, not for a number of sleepers: the
                # writer's check and the supervisor's timer sleep on the clock
                # too, before the read or after it (a loaded machine).
                with anyio.fail_after(30):
                    await read.wait()
                assert "is not initialised yet" in caplog.text
                await raw.set("launchdarkly:$inited", "1")
                await clock.advance(4.9)
                assert await client.variation("f", USER, "x") == "x"
                await clock.advance(0.1)
            except BaseException:
                await client.__aexit__(None, None, None)
                raise
        try:
            assert await client.variation("f", USER, "x") == "from-redis"
        finally:
            await client.__aexit__(None, None, None)


@pytest.mark.asyncio
async def test_a_hung_redis_never_delays_the_network(
    redis_server: RedisServer,
) -> None:
    """Redis accepts connections but never answers (SIGSTOP): the network wins."""
    store = RedisStore(url=redis_server.url, timeout=30)
    assert redis_server.pid is not None
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        async with FlagServer({"f": flag("from-network")}) as server:
            config = network_config(server, DataSystem.default(store=store))
            async with Client(config) as client:
                assert client.status is ProviderStatus.READY
                assert await client.variation("f", USER, "x") == "from-network"
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)


@pytest.mark.asyncio
async def test_read_only_mode_with_sources_reads_the_store_and_never_writes_it(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url)
    system = DataSystem.custom(
        synchronizers=[sources.streaming_synchronizer()],
        store=store,
        store_mode=StoreMode.READ_ONLY,
    )
    assert system.store is store and system.store_mode is StoreMode.READ_ONLY
    async with (
        raw_redis(redis_server) as raw,
        FlagServer({"f": flag("from-network")}) as server,
    ):
        # Another version than the network's, so the change is reported.
        await seed(raw, {"f": flag("from-redis", 1000)})
        before = await stored(raw)
        server.script("/sdk/stream", Fault(status=503))
        config = network_config(server, system)
        async with Client(config, clock=clock) as client:
            assert await client.variation("f", USER, "default") == "from-redis"
            await clock.wait_for_sleeper(within=config.max_retry_delay)
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED):
                await clock.advance(config.max_retry_delay)
            assert await client.variation("f", USER, "default") == "from-network"
        assert await stored(raw) == before


def test_custom_with_a_store_and_no_sources_is_daemon_mode() -> None:
    store = RedisStore()
    system = DataSystem.custom(store=store)
    assert system.store_mode is StoreMode.READ_ONLY and system.synchronizers == ()
    assert DataSystem.custom().store is None
    with pytest.raises(ConfigurationError, match="store_mode"):
        DataSystem.custom(
            synchronizers=[sources.streaming_synchronizer()],
            store=store,
            store_mode="read-only",  # type: ignore[arg-type]
        )


@pytest.mark.asyncio
async def test_read_write_ignores_a_store_that_is_not_initialised(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url)
    async with raw_redis(redis_server) as raw, FlagServer({}) as server:
        await seed(raw, {"f": flag("from-redis")}, inited=False)
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        config = network_config(
            server, DataSystem.default(store=store), ready_timeout=0.05
        )
        async with Client(config) as client:
            assert client.status is ProviderStatus.ERROR  # not ready: still trying
            detail = await client.variation_detail("f", USER, "default")
            assert detail.value == "default" and detail.error_kind == "CLIENT_NOT_READY"


# ------------------------------------------------------------------ daemon mode
@pytest.mark.asyncio
async def test_daemon_serves_the_store_and_never_the_network(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url)
    async with (
        raw_redis(redis_server) as raw,
        FlagServer({"f": flag("network")}) as server,
    ):
        # Written the way Relay and other SDKs do, tombstones included, and no
        # $inited: daemon mode serves what is there (stores.md §3).
        await seed(
            raw,
            {
                "f": flag("from-redis"),
                "go-deleted": {"key": "$deleted", "version": 5, "deleted": True},
                "bare-deleted": {"version": 3, "deleted": True},
                "broken": "not an object",
            },
            inited=False,
        )
        await raw.hset("launchdarkly:segments", "s", json.dumps(SEGMENT))
        before = await stored(raw)
        config = server.config(data_system=DataSystem.daemon(store), send_events=False)
        async with Client(config) as client:
            assert client.status is ProviderStatus.READY
            assert await client.variation("f", USER, "default") == "from-redis"
            for deleted in ("go-deleted", "bare-deleted", "broken"):
                detail = await client.variation_detail(deleted, USER, "default")
                assert detail.error_kind == "FLAG_NOT_FOUND"
            assert client.snapshot().variation("f", USER, None) == "from-redis"
        assert (
            server.requests_to("/sdk/poll") == server.requests_to("/sdk/stream") == []
        )
        assert await stored(raw) == before  # read-only: nothing written


@pytest.mark.asyncio
async def test_daemon_with_a_custom_prefix_reads_only_that_prefix(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url, prefix="custom-prefix")
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("default-prefix")})
        await raw.hset(
            "custom-prefix:features", "g", json.dumps(flag("custom", key="g"))
        )
        async with Client(
            Config(data_system=DataSystem.daemon(store), send_events=False)
        ) as client:
            assert await client.variation("g", USER, "default") == "custom"
            assert await client.variation("f", USER, "default") == "default"


async def hgetall_calls(raw: Redis) -> int:
    return await calls(raw, "hgetall")


async def calls(raw: Redis, command: str) -> int:
    """How many times Redis has run ``command`` (lower case) so far."""
    stats = await raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.asyncio
async def test_daemon_reloads_when_the_cache_ttl_expires(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=15)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1"), "g": flag("same", key="g")})
        async with Client(
            Config(data_system=DataSystem.daemon(store), send_events=False), clock=clock
        ) as client:
            assert await hgetall_calls(raw) == 2  # one read: features and segments
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("v2", 2)))
            await clock.wait_for_sleeper(within=15)
            await clock.advance(14.9)
            assert await client.variation("f", USER, "default") == "v1"
            assert await hgetall_calls(raw) == 2  # the cache has not expired
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED) as got:
                await clock.advance(0.1)
            assert got[0].flags_changed == {"f"}  # only what changed in Redis
            assert await client.variation("f", USER, "default") == "v2"
            # A flag removed from the hash (not tombstoned) is gone at the next reload.
            await raw.hdel("launchdarkly:features", "g")
            await clock.wait_for_sleeper(within=15)
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED) as got:
                await clock.advance(15)
            assert got[0].flags_changed == {"g"}
            assert await client.variation("g", USER, "default") == "default"


@pytest.mark.asyncio
async def test_daemon_with_an_infinite_cache_reads_the_store_once(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=None)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(
            Config(data_system=DataSystem.daemon(store), send_events=False), clock=clock
        ) as client:
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("v2", 2)))
            await clock.advance(10**9)
            assert await client.variation("f", USER, "default") == "v1"
            assert await hgetall_calls(raw) == 2


async def commands(raw: Redis) -> int:
    """Every command Redis has run so far, but the INFO calls that count them."""
    stats = await raw.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


@pytest.mark.asyncio
async def test_daemon_evaluations_from_a_warm_cache_cost_no_round_trip(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url, cache_ttl=15)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        await raw.hset("launchdarkly:segments", "s", json.dumps(SEGMENT))
        async with Client(
            Config(data_system=DataSystem.daemon(store), send_events=False),
            clock=FakeClock(),
        ) as client:
            before = await commands(raw)
            for _ in range(100):
                assert await client.variation("f", USER, "default") == "v1"
                assert await client.bool_variation("f", USER, True) is True  # str
                await client.variation_detail("missing", USER, "default")
            await client.all_flags_state(USER)
            assert client.snapshot().variation("f", USER, "default") == "v1"
            # Not one command, but the key the snapshot lacks: read through
            # once (HMGET), its absence then cached for the TTL.
            assert await commands(raw) == before + 1


@pytest.mark.asyncio
async def test_daemon_with_the_cache_off_reads_redis_for_every_evaluation(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()  # never advanced: no timer is involved
    store = RedisStore(url=redis_server.url, cache_ttl=0)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(
            Config(data_system=DataSystem.daemon(store), send_events=False), clock=clock
        ) as client:
            assert await client.variation("f", USER, "default") == "v1"
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("v2", 2)))
            # The very next evaluation sees the write, and announces it.
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED) as got:
                assert await client.variation("f", USER, "default") == "v2"
            assert got[0].flags_changed == {"f"}
            before = await hgetall_calls(raw), await calls(raw, "hmget")
            assert await client.bool_variation("f", USER, False) is False  # v2: str
            # One read per evaluation, of the flag it evaluates (issue 48).
            assert (await hgetall_calls(raw), await calls(raw, "hmget")) == (
                before[0],
                before[1] + 1,
            )
            # The sync snapshot cannot wait: it is the data read last.
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("v3", 3)))
            assert client.snapshot().variation("f", USER, "default") == "v2"
            # Concurrent evaluations share reads: each sees v3, and far fewer
            # reads than evaluations happen (the one running, and one more).
            hmgets = await calls(raw, "hmget")
            values: list[object] = []

            async def evaluate() -> None:
                values.append(await client.variation("f", USER, "default"))

            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(evaluate)
            assert values == ["v3"] * 50
            assert await calls(raw, "hmget") - hmgets <= 2
            # A deletion straight in Redis: gone at the next evaluation.
            await raw.hdel("launchdarkly:features", "f")
            assert await client.variation("f", USER, "default") == "default"


@pytest.mark.asyncio
async def test_cache_off_outage_evaluates_last_data_without_waiting_for_retries(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=0)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
    async with Client(
        Config(data_system=DataSystem.daemon(store), send_events=False), clock=clock
    ) as client:
        assert await client.variation("f", USER, "default") == "v1"
        async with expect_store_status(store, DataStoreStatus(available=False)):
            redis_server.stop()
            # The read fails: the evaluation goes on with the last data.
            assert await client.variation("f", USER, "default") == "v1"
        redis_server.start()
        async with raw_redis(redis_server) as raw:
            await seed(raw, {"f": flag("v2", 2)})
        await clock.wait_for_sleeper(within=RETRY_INTERVAL)
        async with expect_store_status(store, DataStoreStatus()):
            await clock.advance(RETRY_INTERVAL)
        assert await client.variation("f", USER, "default") == "v2"


@pytest.mark.asyncio
async def test_cache_off_with_sources_reads_redis_until_the_sources_deliver(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url, cache_ttl=0)
    async with raw_redis(redis_server) as raw, FlagServer({}) as server:
        await seed(raw, {"f": flag("from-redis")}, inited=False)
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        system = DataSystem.custom(
            synchronizers=[sources.streaming_synchronizer()],
            store=store,
            store_mode=StoreMode.READ_ONLY,
        )
        async with Client(
            network_config(server, system, ready_timeout=0), clock=FakeClock()
        ) as client:
            # Not initialised: not served (the harness's "ignores database
            # until init key is set"), however often it is read.
            detail = await client.variation_detail("f", USER, "default")
            assert detail.error_kind == "CLIENT_NOT_READY"
            await raw.set("launchdarkly:$inited", "1")
            assert await client.variation("f", USER, "default") == "from-redis"
            # Until the sources deliver, Redis is read again for each
            # evaluation: the flag it evaluates, not the whole store.
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("changed", 2)))
            before = await hgetall_calls(raw), await calls(raw, "hmget")
            assert await client.variation("f", USER, "default") == "changed"
            assert (await hgetall_calls(raw), await calls(raw, "hmget")) == (
                before[0],
                before[1] + 1,
            )


@pytest.mark.asyncio
async def test_daemon_on_an_uninitialised_store_is_not_ready_and_says_why(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url)
    config = Config(
        data_system=DataSystem.daemon(store), ready_timeout=1, send_events=False
    )
    async with raw_redis(redis_server) as raw, Client(config, clock=clock) as client:
        status = client.data_source_status
        assert status is not None and status.state is SourceState.INITIALIZING
        assert status.error is not None
        assert "is not initialised (no flags, no $inited key)" in status.error.message
        # ready_timeout passed: ERROR while still trying, with the reason.
        assert client.status is ProviderStatus.ERROR
        detail = await client.variation_detail("f", USER, "default")
        assert detail.error_kind == "CLIENT_NOT_READY"
        await seed(raw, {"f": flag("v1")})
        await clock.wait_for_sleeper(within=RETRY_INTERVAL)
        async with expect_event(client, ProviderEvent.READY):
            await clock.advance(RETRY_INTERVAL)
        assert await client.variation("f", USER, "default") == "v1"


# ---------------------------------------------------------------------- outages
@pytest.mark.asyncio
async def test_daemon_outage_is_stale_then_error_then_ready_again(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=1)
    config = Config(
        data_system=DataSystem.daemon(store), grace_period=5, send_events=False
    )
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
    async with Client(config, clock=clock) as client:
        await clock.wait_for_sleeper(within=1)
        redis_server.stop()
        async with (
            expect_store_status(store, DataStoreStatus(available=False)),
            expect_event(client, ProviderEvent.STALE) as stale,
        ):
            await clock.advance(1)
        assert "Redis store" in (stale[0].message or "")
        # Last known data, no evaluation error.
        detail = await client.variation_detail("f", USER, "default")
        assert detail.value == "v1" and detail.error_kind is None
        async with expect_event(client, ProviderEvent.ERROR):
            await clock.advance(5)
        assert client.status is ProviderStatus.ERROR
        assert await client.variation("f", USER, "default") == "v1"
        # Redis returns (empty: no persistence); a writer fills it again.
        redis_server.start()
        async with raw_redis(redis_server) as raw:
            await seed(raw, {"f": flag("v2", 2)})
        await clock.wait_for_sleeper(within=RETRY_INTERVAL)
        async with (
            expect_store_status(store, DataStoreStatus(available=True)),
            expect_event(client, ProviderEvent.READY),
        ):
            await clock.advance(RETRY_INTERVAL)
        assert await client.variation("f", USER, "default") == "v2"
        status = client.data_source_status
        assert (
            isinstance(status, DataSourceStatus) and status.state is SourceState.VALID
        )


@pytest.mark.asyncio
async def test_read_write_outage_keeps_serving_and_rewrites_redis_when_it_returns(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url)
    async with FlagServer({"f": flag("v1")}) as server:
        async with (
            raw_redis(redis_server) as raw,
            expect_write(raw, "launchdarkly:$inited", "set"),
        ):
            client = Client(
                network_config(server, DataSystem.streaming(store=store)), clock=clock
            )
            await client.__aenter__()
        try:
            redis_server.stop()
            async with (
                expect_store_status(store, DataStoreStatus(available=False)),
                expect_event(client, ProviderEvent.CONFIGURATION_CHANGED),
            ):
                server.set_flag("f", flag("v2"))
            # The flags come from the network: evaluation and status are unaffected.
            assert await client.variation("f", USER, "default") == "v2"
            assert client.status is ProviderStatus.READY
            redis_server.start()
            await clock.wait_for_sleeper(within=RETRY_INTERVAL)
            async with (
                expect_store_status(store, DataStoreStatus(available=True, stale=True)),
                expect_store_status(
                    store, DataStoreStatus(available=True, stale=False)
                ),
            ):
                await clock.advance(RETRY_INTERVAL)
            async with raw_redis(redis_server) as raw:
                assert await stored(raw) == {
                    "launchdarkly:$inited": ("string", "launchdarkly:$inited"),
                    "launchdarkly:features": ("hash", {"f": server.flags["f"]}),
                }
        finally:
            await client.__aexit__(None, None, None)


def test_tombstones_are_encoded_like_launchdarklys_python_sdk() -> None:
    from aioflags.sources import Change, ChangeKind

    change = Change(action=ChangeKind.DELETE, kind=ObjectKind.FLAG, key="f", version=9)
    assert encode_change(change) == (9, '{"key":"f","version":9,"deleted":true}')


@pytest.mark.asyncio
async def test_read_write_without_redis_serves_the_network_and_reports_the_store(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url)
    redis_server.stop()
    async with FlagServer({"f": flag("from-network")}) as server:
        async with expect_store_status(store, DataStoreStatus(available=False)):
            client = Client(network_config(server, DataSystem.default(store=store)))
            await client.__aenter__()
        try:
            assert client.status is ProviderStatus.READY
            assert await client.variation("f", USER, "default") == "from-network"
        finally:
            await client.__aexit__(None, None, None)


@pytest.mark.asyncio
async def test_an_upsert_retries_when_another_writer_changes_the_hash(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCH conflicts retry (up to 10 attempts), then fail."""
    import redis

    from aioflags._datasystem._stores._base import stored_version as real

    conflicts = [1]

    def meddle(text: str | bytes | None) -> int | None:
        # Another writer touches the hash between WATCH and EXEC.
        if conflicts[0] > 0:
            conflicts[0] -= 1
            with redis.Redis.from_url(redis_server.url) as other:
                other.hset("launchdarkly:features", "other", "{}")
        return real(text)

    monkeypatch.setattr("aioflags._datasystem._stores._redis.stored_version", meddle)
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


@pytest.mark.asyncio
async def test_a_writer_closed_right_after_ready_leaves_the_store_initialised(
    redis_server: RedisServer,
) -> None:
    """What was applied is written before the writer stops (bounded)."""
    store = RedisStore(url=redis_server.url)
    async with (
        raw_redis(redis_server) as raw,
        FlagServer({"f": flag("on")}) as server,
    ):
        config = network_config(server, DataSystem.streaming(store=store))
        async with Client(config) as client:
            assert client.status is ProviderStatus.READY
        assert await raw.exists("launchdarkly:$inited") == 1
        stored_flag = await raw.hget("launchdarkly:features", "f")
        assert stored_flag is not None and json.loads(stored_flag)["key"] == "f"
