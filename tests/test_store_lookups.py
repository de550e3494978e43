"""Awaited evaluations with a cached Redis store: the first read, keys read through.

A client started without waiting evaluates Redis' data on its first awaited
evaluation, not an empty snapshot; a flag key the cached snapshot lacks is
read from Redis when evaluated (LaunchDarkly's per-item read-through cache),
its absence cached for the TTL, for ever with an infinite cache (issue 42).
Against a real redis-server; store reads are held on events, time is a
FakeClock, Redis commands are counted with INFO commandstats.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from aioflags import (
    Client,
    Config,
    DataSystem,
    ProviderEvent,
    ProviderStatus,
    sources,
)
from aioflags._datasystem._datatypes import Change, ObjectKind
from aioflags._datasystem._stores import _base, _sources
from aioflags._datasystem._stores._base import RawData
from aioflags._datasystem._stores._lookups import (
    MAX_ABSENT,
    LookupMode,
    StoreLookups,
)
from aioflags._datasystem._stores._redis import _RedisConnection
from aioflags.stores import DataStoreStatus, RedisStore, StoreMode
from aioflags.testing import FakeClock, FlagServer
from tests.redis_server import RedisServer
from tests.test_stores import (
    USER,
    expect_event,
    expect_store_status,
    flag,
    network_config,
    raw_redis,
    seed,
)


class HeldReads:
    """Holds every full read of the store until :meth:`release` (monkeypatched)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.began = anyio.Event()
        self.released = anyio.Event()
        load = _RedisConnection.load
        held = self

        async def held_load(connection: _RedisConnection) -> RawData:
            held.began.set()
            await held.released.wait()
            return await load(connection)

        monkeypatch.setattr(_RedisConnection, "load", held_load)

    def release(self) -> None:
        self.released.set()


async def calls(raw: Redis, command: str) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def daemon(store: RedisStore, **kwargs: Any) -> Config:
    return Config(data_system=DataSystem.daemon(store), send_events=False, **kwargs)


def with_sources(store: RedisStore, mode: StoreMode) -> DataSystem:
    return DataSystem.custom(
        synchronizers=[sources.streaming_synchronizer()], store=store, store_mode=mode
    )


@contextlib.asynccontextmanager
async def hung_network() -> AsyncIterator[FlagServer]:
    """A flag service that never answers: only Redis can serve."""
    async with FlagServer({"f": flag("from-network")}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        yield server


# ----------------------------------------------------------------- first read
@pytest.mark.asyncio
@pytest.mark.parametrize("mode", list(StoreMode), ids=lambda m: m.value)
@pytest.mark.parametrize("ttl", [15.0, None], ids=["ttl", "infinite"])
async def test_a_client_started_without_waiting_evaluates_the_first_read(
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    mode: StoreMode,
    ttl: float | None,
) -> None:
    """The harness's "with data source - ignores database when ds sends data"."""
    reads = HeldReads(monkeypatch)
    store = RedisStore(url=redis_server.url, cache_ttl=ttl)
    async with raw_redis(redis_server) as raw, hung_network() as server:
        await seed(raw, {"f": flag("from-redis")})
        config = network_config(server, with_sources(store, mode), ready_timeout=0)
        async with Client(config, clock=FakeClock()) as client:
            await reads.began.wait()  # the first read is in flight
            results: list[object] = []

            async def evaluate() -> None:
                results.append(await client.variation("f", USER, "default"))

            async with anyio.create_task_group() as tg:
                tg.start_soon(evaluate)
                await anyio.wait_all_tasks_blocked()
                # The sync snapshot does not wait: nothing has been read yet.
                assert client.snapshot().variation("f", USER, "default") == "default"
                assert results == []  # the awaited one waits for the read
                reads.release()
            assert results == ["from-redis"]


@pytest.mark.asyncio
async def test_a_daemon_started_without_waiting_evaluates_the_first_read(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = HeldReads(monkeypatch)
    store = RedisStore(url=redis_server.url)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("from-redis")})
        async with Client(daemon(store, ready_timeout=0), clock=FakeClock()) as client:
            await reads.began.wait()
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.wait_ready)
                await anyio.wait_all_tasks_blocked()
                reads.release()
                assert await client.variation("f", USER, "default") == "from-redis"


@pytest.mark.asyncio
async def test_the_wait_for_the_first_read_is_bounded_by_the_store_timeout(
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reads = HeldReads(monkeypatch)  # never released: a read that never ends
    store = RedisStore(url=redis_server.url, timeout=0.05)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("from-redis")})
    async with Client(daemon(store, ready_timeout=0), clock=FakeClock()) as client:
        await reads.began.wait()
        with anyio.fail_after(30):
            assert await client.variation("f", USER, "default") == "default"
    assert any(
        "waited 0.15 s (3 times the persistent store's timeout)" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


@pytest.mark.asyncio
async def test_the_sources_delivering_release_evaluations_waiting_for_the_store(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = HeldReads(monkeypatch)  # never released, and a 30 s timeout
    store = RedisStore(url=redis_server.url, timeout=30)
    async with FlagServer({"f": flag("from-network")}) as server:
        system = with_sources(store, StoreMode.READ_ONLY)
        config = network_config(server, system, ready_timeout=0)
        async with Client(config, clock=FakeClock()) as client:
            await reads.began.wait()
            with anyio.fail_after(30):
                assert await client.variation("f", USER, "x") == "from-network"
                assert client.status is ProviderStatus.READY


# ---------------------------------------------------------------- read-through
@pytest.mark.asyncio
async def test_a_flag_created_after_start_is_read_through_with_its_segment(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()  # never advanced: the TTL never expires here
    store = RedisStore(url=redis_server.url, cache_ttl=15)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(daemon(store), clock=clock) as client:
            new = flag("new", key="g") | {
                "rules": [
                    {
                        "id": "r",
                        "variation": 1,
                        "clauses": [
                            {"attribute": "", "op": "segmentMatch", "values": ["s"]}
                        ],
                    }
                ]
            }
            segment = {"key": "s", "version": 1, "included": ["u1"], "salt": "x"}
            await raw.hset("launchdarkly:segments", "s", json.dumps(segment))
            await raw.hset("launchdarkly:features", "g", json.dumps(new))
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("v2", 2)))
            assert client.snapshot().variation("g", USER, "default") == "default"
            # Read through, with the segment it needs: u1 is in it ("off").
            assert await client.variation("g", USER, "default") == "off"
            assert client.snapshot().variation("g", USER, "default") == "off"
            # What the snapshot held stays until the TTL expires.
            assert await client.variation("f", USER, "default") == "v1"


@pytest.mark.asyncio
async def test_a_missing_key_costs_one_read_per_ttl_however_many_evaluate_it(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=15)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(daemon(store), clock=clock) as client:
            before = await calls(raw, "hmget")
            results: list[object] = []

            async def evaluate() -> None:
                results.append(await client.variation("typo", USER, "default"))

            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(evaluate)
            assert results == ["default"] * 50
            assert await calls(raw, "hmget") == before + 1  # one read for all
            for _ in range(10):  # its absence is cached
                assert await client.variation("typo", USER, "default") == "default"
            assert await calls(raw, "hmget") == before + 1
            await raw.hset("launchdarkly:features", "typo", json.dumps(flag("now")))
            await clock.wait_for_sleeper(within=15)
            await clock.advance(14.9)
            assert await client.variation("typo", USER, "default") == "default"
            # The TTL expired: the store is read again (whole: "typo" with it).
            await clock.advance(0.1)
            await clock.wait_for_sleeper(within=15)
            assert await client.variation("typo", USER, "default") == "now"
            assert await calls(raw, "hmget") == before + 1


@pytest.mark.asyncio
async def test_with_an_infinite_cache_absence_and_cached_flags_are_kept_for_ever(
    redis_server: RedisServer,
) -> None:
    """The harness's "infinite cache - shows changes never"."""
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=None)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(daemon(store), clock=clock) as client:
            assert await client.variation("later", USER, "default") == "default"
            # A flag created after start-up and never evaluated is read through.
            await raw.hset("launchdarkly:features", "g", json.dumps(flag("g", key="g")))
            assert await client.variation("g", USER, "default") == "g"
            await raw.hset("launchdarkly:features", "later", json.dumps(flag("l")))
            await raw.hset("launchdarkly:features", "f", json.dumps(flag("v2", 2)))
            await raw.hset("launchdarkly:features", "g", json.dumps(flag("g2", 2)))
            await clock.advance(10**9)
            assert await client.variation("later", USER, "default") == "default"
            assert await client.variation("f", USER, "default") == "v1"
            assert await client.variation("g", USER, "default") == "g"


@pytest.mark.asyncio
@pytest.mark.parametrize("ttl", [1.0, None], ids=["ttl", "infinite"])
async def test_a_daemon_on_an_empty_store_reads_it_when_a_key_is_evaluated(
    redis_server: RedisServer, ttl: float | None
) -> None:
    """The harness's "store mode * - no data source - {ttl, infinite} cache" leaves."""
    clock = FakeClock()  # never advanced: the 0.5 s retry never runs
    store = RedisStore(url=redis_server.url, cache_ttl=ttl)
    async with (
        raw_redis(redis_server) as raw,
        Client(daemon(store, ready_timeout=0), clock=clock) as client,
    ):
        assert await client.variation("other", USER, "default") == "default"
        # Written the way the harness does: flags, no $inited.
        await seed(raw, {"f": flag("fallthrough")}, inited=False)
        results: list[object] = []

        async def evaluate() -> None:
            results.append(await client.variation("f", USER, "default"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(evaluate)
            # "other" was read at once: "f" waits for the retry.
            await clock.wait_for_sleeper(within=0.5)
            await clock.advance(0.5)
        assert results == ["fallthrough"]
        assert client.status is ProviderStatus.READY
        await raw.hset("launchdarkly:features", "f", json.dumps(flag("new", 2)))
        if ttl is None:
            await clock.advance(10**9)
            assert await client.variation("f", USER, "default") == "fallthrough"
        else:
            await clock.wait_for_sleeper(within=ttl)
            async with expect_event(client, ProviderEvent.CONFIGURATION_CHANGED):
                await clock.advance(ttl)
            assert await client.variation("f", USER, "default") == "new"


@pytest.mark.asyncio
async def test_a_daemon_on_an_empty_store_reads_it_at_once_once_per_retry(
    redis_server: RedisServer,
) -> None:
    """Distinct missing keys do not cost a full read each (at most one early)."""
    clock = FakeClock()  # never advanced: the 0.5 s retry never runs
    store = RedisStore(url=redis_server.url, cache_ttl=15, timeout=0.1)
    async with (
        raw_redis(redis_server) as raw,
        Client(daemon(store, ready_timeout=0), clock=clock) as client,
    ):
        await clock.wait_for_sleeper(within=0.5)  # the first read is over
        before = await calls(raw, "exec")  # one MULTI/EXEC per full read
        for i in range(4):  # after the first, each waits out its 0.3 s bound
            assert await client.variation(f"k{i}", USER, "default") == "default"
        assert await calls(raw, "exec") == before + 1


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", list(StoreMode), ids=lambda m: m.value)
async def test_with_sources_keys_are_read_through_until_the_sources_deliver(
    redis_server: RedisServer, mode: StoreMode
) -> None:
    store = RedisStore(url=redis_server.url, cache_ttl=math.inf)
    async with raw_redis(redis_server) as raw, hung_network() as server:
        await seed(raw, {"f": flag("from-redis")})
        config = network_config(server, with_sources(store, mode))
        async with Client(config, clock=FakeClock()) as client:
            assert client.status is ProviderStatus.READY  # from Redis
            await raw.hset("launchdarkly:features", "g", json.dumps(flag("g", key="g")))
            assert await client.variation("g", USER, "default") == "g"


@pytest.mark.asyncio
async def test_once_the_sources_deliver_nothing_is_read_through(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url, cache_ttl=15)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("from-redis")})
        async with FlagServer({"f": flag("from-network")}) as server:
            system = with_sources(store, StoreMode.READ_ONLY)
            async with Client(
                network_config(server, system), clock=FakeClock()
            ) as client:
                # READY may come from Redis first: a change on the stream, seen
                # by the client, says the stream's payload has arrived.
                changed = anyio.Event()
                client.add_handler(
                    ProviderEvent.CONFIGURATION_CHANGED, lambda _: changed.set()
                )
                await server.wait_for_stream()
                server.set_flag("f", flag("from-network"))
                with anyio.fail_after(30):  # a guard, not a timing
                    await changed.wait()
                assert await client.variation("f", USER, "x") == "from-network"
                await raw.hset("launchdarkly:features", "g", json.dumps(flag("g")))
                before = await calls(raw, "hmget")
                assert await client.variation("g", USER, "default") == "default"
                assert await calls(raw, "hmget") == before


@pytest.mark.asyncio
async def test_a_read_through_on_a_stopped_redis_answers_the_default_at_once(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(url=redis_server.url, cache_ttl=15)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
    async with Client(daemon(store), clock=FakeClock()) as client:
        async with expect_store_status(store, DataStoreStatus(available=False)):
            redis_server.stop()
            with anyio.fail_after(30):
                assert await client.variation("g", USER, "default") == "default"
        assert await client.variation("f", USER, "default") == "v1"  # cached


@pytest.mark.asyncio
async def test_a_flag_found_on_a_slow_store_is_served_though_its_reads_outlast_the_timeout(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read takes 0.3 s, within the 0.5 s timeout; the chain takes 0.6 s.

    The sleeps make the store slow (the behaviour under test), they
    synchronise nothing: the evaluation must wait for the whole chain, more
    than one timeout. Its bound, three (1.5 s), leaves a loaded machine 0.9 s.
    """
    store = RedisStore(url=redis_server.url, cache_ttl=15, timeout=0.5)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(daemon(store), clock=FakeClock()) as client:
            await raw.hset("launchdarkly:features", "g", json.dumps(flag("g", key="g")))
            get, load = _RedisConnection.get, _RedisConnection.load

            async def slow_get(connection: _RedisConnection, *args: Any) -> Any:
                await anyio.sleep(0.3)
                return await get(connection, *args)

            async def slow_load(connection: _RedisConnection) -> RawData:
                await anyio.sleep(0.3)
                return await load(connection)

            monkeypatch.setattr(_RedisConnection, "get", slow_get)
            monkeypatch.setattr(_RedisConnection, "load", slow_load)
            assert await client.variation("g", USER, "default") == "g"


@pytest.mark.asyncio
async def test_a_key_found_without_inited_is_not_asked_again_before_the_retry(
    redis_server: RedisServer,
) -> None:
    """While ``$inited`` is missing (Relay repopulating), not a read per evaluation."""
    clock = FakeClock()
    store = RedisStore(url=redis_server.url, cache_ttl=15)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(daemon(store), clock=clock) as client:
            await raw.delete("launchdarkly:$inited")
            await raw.hset("launchdarkly:features", "g", json.dumps(flag("g", key="g")))
            before = await calls(raw, "hmget")
            for _ in range(5):
                assert await client.variation("g", USER, "default") == "default"
            assert await calls(raw, "hmget") == before + 1
            await clock.advance(0.5)  # the retry interval: asked again
            await raw.set("launchdarkly:$inited", "1")
            assert await client.variation("g", USER, "default") == "g"
            assert await calls(raw, "hmget") == before + 2


@pytest.mark.asyncio
async def test_a_flag_read_through_is_decoded_once_by_the_read_that_applies_it(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once to see that the HMGET found a flag, once to apply it: not a third time."""
    decoded: list[str] = []
    decode = _base.decode_item

    def counted(kind: ObjectKind, key: str, text: str) -> Change | str:
        decoded.append(key)
        return decode(kind, key, text)

    store = RedisStore(url=redis_server.url, cache_ttl=15)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(daemon(store), clock=FakeClock()) as client:
            await raw.hset("launchdarkly:features", "g", json.dumps(flag("g", key="g")))
            monkeypatch.setattr(_base, "decode_item", counted)
            monkeypatch.setattr(_sources, "decode_item", counted)
            assert await client.variation("g", USER, "default") == "g"
            assert await client.variation("g", USER, "default") == "g"
    assert decoded == ["g", "g"]


# ------------------------------------------------------------ StoreLookups alone
def _holds(key: str) -> bool:
    return key == "f"


@pytest.mark.asyncio
async def test_absent_keys_are_bounded_the_oldest_forgotten_first() -> None:
    lookups = StoreLookups(FakeClock(), math.inf, 5.0)
    for batch in range(50):  # 50,000 typos, with an infinite cache
        lookups.answered([], [f"typo-{batch}-{i}" for i in range(1000)])
    assert len(lookups._absent) == MAX_ABSENT == 1000
    assert next(iter(lookups._absent)) == "typo-49-0"  # the newest kept
    lookups.answered([], ["typo-49-0"])  # asked again: the newest now
    lookups.answered([], ["new"])
    assert list(lookups._absent)[:1] == ["typo-49-2"]
    assert list(lookups._absent)[-2:] == ["typo-49-0", "new"]


@pytest.mark.asyncio
async def test_expired_absences_are_dropped_before_the_oldest_live_ones() -> None:
    clock = FakeClock()
    lookups = StoreLookups(clock, 100.0, 5.0)
    lookups.answered([], ["oldest"])
    lookups.answered([], [f"k{i}" for i in range(999)], seconds=0.5)
    await clock.advance(1)  # the 999 expired; "oldest" has not
    lookups.answered([], ["new"])
    assert list(lookups._absent) == ["oldest", "new"]


class CountedScopes:
    """Counts the cancel scopes ``move_on_after`` opens (monkeypatched)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = 0
        move_on_after = anyio.move_on_after

        def counted(*args: Any, **kwargs: Any) -> anyio.CancelScope:
            self.opened += 1
            return move_on_after(*args, **kwargs)

        monkeypatch.setattr(anyio, "move_on_after", counted)


@pytest.mark.asyncio
@pytest.mark.parametrize("ttl", [15.0, math.inf], ids=["ttl", "infinite"])
async def test_a_key_known_absent_is_answered_without_a_scope_or_a_wait(
    monkeypatch: pytest.MonkeyPatch, ttl: float
) -> None:
    clock = FakeClock()
    lookups = StoreLookups(clock, ttl, 5.0)
    lookups.read(LookupMode.READ_THROUGH)
    lookups.answered([], ["typo"])
    scopes = CountedScopes(monkeypatch)
    for _ in range(10):
        await lookups.before("typo", _holds)
        await lookups.before("f", _holds)
    assert scopes.opened == 0
    assert lookups.requested() == []
    if math.isinf(ttl):
        return
    await clock.advance(ttl)  # expired: asked again, and waited for
    async with anyio.create_task_group() as tg:
        tg.start_soon(lookups.before, "typo", _holds)
        await anyio.wait_all_tasks_blocked()
        assert lookups.requested() == ["typo"]
        lookups.answered(["typo"], ["typo"])
    assert scopes.opened == 1


@pytest.mark.asyncio
async def test_waits_that_run_out_are_logged_once_a_minute_with_their_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    lookups = StoreLookups(clock, 15.0, 0.01)  # no reader: every wait runs out
    lookups.read(LookupMode.READ_THROUGH)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    for key in ("a", "b", "c"):
        with anyio.fail_after(30):
            await lookups.before(key, _holds)
    assert len(warnings()) == 1
    assert "waited 0.03 s (3 times the persistent store's timeout)" in warnings()[0]
    await clock.advance(60)
    with anyio.fail_after(30):
        await lookups.before("d", _holds)
    assert len(warnings()) == 2
    assert "(3 such evaluations since the last message)" in warnings()[1]


@pytest.mark.asyncio
@pytest.mark.parametrize("ttl", [0, 15])
async def test_a_str_enum_key_is_read_through_as_its_plain_value(
    redis_server: RedisServer, ttl: float
) -> None:
    """A key that is a ``str`` subclass reaches the store as its plain value.

    A ``(str, Enum)`` member is a ``str`` to evaluation (it hashes and
    compares as its value), so the gate reads it through as that value:
    the flag is found, and the flags' keys stay plain ``str``.
    """
    import enum

    class Key(str, enum.Enum):
        G = "g"

    store = RedisStore(url=redis_server.url, cache_ttl=ttl)
    async with raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")})
        async with Client(daemon(store), clock=FakeClock()) as client:
            await raw.hset(
                "launchdarkly:features", "g", json.dumps(flag("new", key="g"))
            )
            assert await client.variation(Key.G, USER, "default") == "new"
            keys = client.snapshot().flag_keys
            assert keys == {"f", "g"}
            assert all(type(key) is str for key in keys)
