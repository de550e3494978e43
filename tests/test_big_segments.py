"""Big segments against a real redis-server (shared/stores.md §6).

The memberships are written the way LaunchDarkly's Relay Proxy writes them
(raw keys, hashed context keys, ``<segment>.g<generation>`` refs) and read
through aioflags; queries are counted with Redis's own ``INFO commandstats``.
Status changes are awaited through the client's listener; the poller runs on
a FakeClock, so a test decides when the next poll happens.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from aioflags import (
    BigSegmentsConfig,
    Client,
    Config,
    ConfigurationError,
    Context,
    DataSystem,
)
from aioflags._core._clock import wall_ms
from aioflags._datasystem._store import Store
from aioflags._datasystem._stores._gate import EvaluationGate
from aioflags.stores import (
    BigSegmentStoreStatus,
    RedisBigSegmentStore,
    RedisStore,
    context_hash,
)
from aioflags.testing import FakeClock, FlagServer
from tests.flags import match_flag
from tests.redis_server import RedisServer

HEALTHY = BigSegmentStoreStatus(available=True, stale=False)
STALE = BigSegmentStoreStatus(available=True, stale=True)
DOWN = BigSegmentStoreStatus(available=False, stale=False)


def segment(
    key: str = "big", generation: int | None = 2, **extra: Any
) -> dict[str, Any]:
    seg: dict[str, Any] = {
        "key": key,
        "version": 1,
        "unbounded": True,
        "generation": generation,
        "salt": "s",
        # Ignored for an unbounded segment (the harness's "regular include
        # list is ignored for big segment").
        "included": ["listed"],
    }
    seg.update(extra)
    return seg


def flag(key: str = "f", *segments: str) -> dict[str, Any]:
    """True for contexts in any of ``segments`` (default: "big"), else False."""
    clause = {
        "attribute": "key",
        "op": "segmentMatch",
        "values": list(segments or ("big",)),
    }
    return match_flag(clause, key=key)


@contextlib.asynccontextmanager
async def raw_redis(server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def seed(
    raw: Redis,
    flags: list[dict[str, Any]],
    segments: list[dict[str, Any]],
    *,
    synchronized_on: int | None = None,
) -> None:
    """Flags, segments and the sync time, as the Relay Proxy writes them."""
    await raw.hset(
        "launchdarkly:features", mapping={f["key"]: json.dumps(f) for f in flags}
    )
    if segments:
        await raw.hset(
            "launchdarkly:segments", mapping={s["key"]: json.dumps(s) for s in segments}
        )
    await raw.set("launchdarkly:$inited", "")
    if synchronized_on is not None:
        await raw.set("launchdarkly:big_segments_synchronized_on", str(synchronized_on))


async def member(
    raw: Redis,
    key: str,
    *,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> None:
    digest = context_hash(key)
    if include:
        await raw.sadd(f"launchdarkly:big_segment_include:{digest}", *include)
    if exclude:
        await raw.sadd(f"launchdarkly:big_segment_exclude:{digest}", *exclude)


async def calls(raw: Redis, command: str) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def config(server: RedisServer, **options: Any) -> Config:
    return Config(
        data_system=DataSystem.daemon(RedisStore(url=server.url, cache_ttl=None)),
        big_segments=BigSegmentsConfig(
            store=RedisBigSegmentStore(url=server.url), **options
        ),
        send_events=False,
    )


@contextlib.asynccontextmanager
async def statuses(client: Client) -> AsyncIterator[list[BigSegmentStoreStatus]]:
    """Every status the client's listener sees while the block runs."""
    seen: list[BigSegmentStoreStatus] = []
    remove = client.add_big_segment_store_status_listener(seen.append)
    try:
        yield seen
    finally:
        remove()


async def until_status(client: Client, expected: BigSegmentStoreStatus) -> None:
    if client.big_segment_store_status == expected:
        return
    reached = anyio.Event()

    def listener(status: BigSegmentStoreStatus) -> None:
        if status == expected:
            reached.set()

    remove = client.add_big_segment_store_status_listener(listener)
    try:
        with anyio.fail_after(30):
            await reached.wait()
    finally:
        remove()


def test_context_hash_is_launchdarklys() -> None:
    # The harness's constants (shared/stores.md §6.1): SHA-256 of the key
    # alone, standard base64 with padding.
    assert context_hash("user-key") == "CEXjZY7cHJG/ydFy7q4+YEFwVrG3/pkJwA4FAjrbfx0="
    assert context_hash("user1") == "CgQblGLKpKMbrDVn4Lbm/ZEAeH2yq0M9lvbReMq/zpA="


def test_configuration_is_checked() -> None:
    store = RedisBigSegmentStore(url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match="context_cache_size"):
        BigSegmentsConfig(store=store, context_cache_size=0)
    with pytest.raises(ConfigurationError, match="context_cache_size"):
        BigSegmentsConfig(store=store, context_cache_size=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="stale_after"):
        BigSegmentsConfig(store=store, stale_after=-1)
    with pytest.raises(ConfigurationError, match="status_poll_interval"):
        BigSegmentsConfig(store=store, status_poll_interval=float("inf"))
    with pytest.raises(ConfigurationError, match="big-segment store"):
        BigSegmentsConfig(store="redis://localhost")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="BigSegmentsConfig"):
        Config(big_segments=store)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="url"):
        RedisBigSegmentStore(url="http://localhost")
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisBigSegmentStore(prefix="")
    assert "secret" not in repr(RedisBigSegmentStore(url="redis://:secret@h:1/0"))


@pytest.mark.asyncio
async def test_membership_from_relays_layout_decides_and_reports_healthy(
    redis_server: RedisServer,
) -> None:
    rule = {
        "id": "sr",
        "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
    }
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment(rules=[rule])], synchronized_on=wall_ms())
        await member(raw, "in", include=("big.g2",))
        await member(raw, "out", exclude=("big.g2",))
        await member(raw, "both", include=("big.g2",), exclude=("big.g2",))
        await member(raw, "old-generation", include=("big.g1",))
        async with Client(config(redis_server)) as client:
            await until_status(client, HEALTHY)

            async def detail(key: str, **attributes: Any) -> tuple[Any, dict[str, Any]]:
                ctx = Context.create(key, attributes=attributes)
                got = await client.bool_variation_detail("f", ctx, False)
                return got.value, dict(got.reason)

            rule_match = {
                "kind": "RULE_MATCH",
                "ruleIndex": 0,
                "ruleId": "r1",
                "bigSegmentsStatus": "HEALTHY",
            }
            fallthrough = {"kind": "FALLTHROUGH", "bigSegmentsStatus": "HEALTHY"}
            assert await detail("in") == (True, rule_match)
            # Excluded: the segment's rules are not consulted.
            assert await detail("out", plan="pro") == (False, fallthrough)
            assert await detail("both") == (True, rule_match)  # include wins
            # No membership for this generation: the rules decide.
            assert await detail("old-generation") == (False, fallthrough)
            assert await detail("nobody", plan="pro") == (True, rule_match)
            # The segment's own include list is ignored for a big segment.
            assert await detail("listed") == (False, fallthrough)


@pytest.mark.asyncio
async def test_no_generation_no_kind_and_not_configured(
    redis_server: RedisServer,
) -> None:
    async with raw_redis(redis_server) as raw:
        await seed(
            raw,
            [flag("f"), flag("g", "nogen"), flag("h", "org")],
            [
                segment(),
                segment("nogen", generation=None),
                segment("org", unboundedContextKind="org"),
            ],
            synchronized_on=wall_ms(),
        )
        await member(raw, "u", include=("big.g2", "nogen.g2", "org.g2"))
        user = Context.create("u")
        async with Client(config(redis_server)) as client:
            await until_status(client, HEALTHY)
            before = await calls(raw, "smembers")
            got = await client.variation_detail("g", user, None)
            assert dict(got.reason) == {
                "kind": "FALLTHROUGH",
                "bigSegmentsStatus": "NOT_CONFIGURED",
            }
            # The context has no "org" part: no query, no status.
            got = await client.variation_detail("h", user, None)
            assert dict(got.reason) == {"kind": "FALLTHROUGH"}
            assert await calls(raw, "smembers") == before
        # Without BigSegmentsConfig: only the rules, NOT_CONFIGURED.
        plain = Config(
            data_system=DataSystem.daemon(RedisStore(url=redis_server.url)),
            send_events=False,
        )
        async with Client(plain) as client:
            got = await client.variation_detail("f", user, None)
            assert got.value is False
            assert dict(got.reason)["bigSegmentsStatus"] == "NOT_CONFIGURED"
            assert client.big_segment_store_status is None


@pytest.mark.asyncio
async def test_one_query_per_key_per_evaluation_and_across_concurrent_ones(
    redis_server: RedisServer,
) -> None:
    async with raw_redis(redis_server) as raw:
        await seed(
            raw,
            [flag("f", "big", "other")],
            [segment(), segment("other", unboundedContextKind="org")],
            synchronized_on=wall_ms(),
        )
        await member(raw, "k", include=("other.g2",))
        # Two kinds with the same key: one query, by key regardless of kind.
        multi = Context.create_multi(
            Context.create("k"), Context.create("k", kind="org")
        )
        async with Client(config(redis_server)) as client:
            await until_status(client, HEALTHY)
            before = await calls(raw, "smembers")
            results: list[bool] = []

            async def evaluate() -> None:
                results.append(await client.bool_variation("f", multi, False))

            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(evaluate)
            assert results == [True] * 20
            # One membership query (SMEMBERS include + exclude) for all of them.
            assert await calls(raw, "smembers") == before + 2


@pytest.mark.asyncio
async def test_the_lru_is_per_key_expires_and_evicts(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
        async with Client(
            config(redis_server, context_cache_size=2, context_cache_time=5.0),
            clock=clock,
        ) as client:
            await until_status(client, HEALTHY)

            async def queried(key: str) -> bool:
                before = await calls(raw, "smembers")
                await client.bool_variation("f", Context.create(key), False)
                return await calls(raw, "smembers") > before

            assert await queried("user1")
            assert not await queried("user1")  # cached across evaluations
            assert await queried("user2")
            assert not await queried("user2")
            assert await queried("user3")  # evicts user1, the least recently used
            assert await queried("user1")
            # Expiry: cached for context_cache_time on the client's clock.
            await clock.advance(4.9)
            assert not await queried("user1")
            await clock.advance(0.1)
            assert await queried("user1")


@pytest.mark.asyncio
async def test_membership_changes_show_after_the_cache_time(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    user = Context.create("u")
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
        async with Client(config(redis_server), clock=clock) as client:
            assert await client.bool_variation("f", user, False) is False
            await member(raw, "u", include=("big.g2",))
            assert await client.bool_variation("f", user, False) is False  # cached
            await clock.advance(5.0)
            assert await client.bool_variation("f", user, False) is True


@pytest.mark.asyncio
async def test_stale_when_the_last_sync_is_older_than_stale_after(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    user = Context.create("u")
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms() - 60_000)
        await member(raw, "u", include=("big.g2",))
        client = Client(
            config(redis_server, stale_after=30.0, status_poll_interval=5.0),
            clock=clock,
        )
        # The listener is in place before the first poll.
        async with statuses(client) as seen, client:
            await until_status(client, STALE)
            got = await client.bool_variation_detail("f", user, False)
            assert got.value is True  # stale data is still used
            assert dict(got.reason)["bigSegmentsStatus"] == "STALE"
            # The Relay Proxy syncs again: HEALTHY at the next poll.
            await raw.set("launchdarkly:big_segments_synchronized_on", str(wall_ms()))
            polls = await calls(raw, "get")
            await clock.wait_for_sleeper(within=5.0)
            await clock.advance(5.0)
            await until_status(client, HEALTHY)
            got = await client.bool_variation_detail("f", user, False)
            assert dict(got.reason)["bigSegmentsStatus"] == "HEALTHY"
            # A missing timestamp is stale too.
            await raw.delete("launchdarkly:big_segments_synchronized_on")
            await clock.wait_for_sleeper(within=5.0)
            await clock.advance(5.0)
            await until_status(client, STALE)
            assert seen == [STALE, HEALTHY, STALE]
            # Evaluations never poll: only the timer does (one GET per poll).
            for _ in range(10):
                await client.bool_variation("f", Context.create("x"), False)
            assert await calls(raw, "get") == polls + 2


@pytest.mark.asyncio
async def test_store_error_when_redis_stops_and_healthy_when_it_returns(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
        await member(raw, "cached", include=("big.g2",))
    client = Client(config(redis_server, context_cache_time=1000.0), clock=clock)
    async with statuses(client) as seen, client:
        await until_status(client, HEALTHY)
        cached = Context.create("cached")
        assert await client.bool_variation("f", cached, False) is True
        redis_server.stop()
        await clock.wait_for_sleeper(within=5.0)
        await clock.advance(5.0)
        await until_status(client, DOWN)
        # A cached membership still decides; the status says the store is down.
        got = await client.bool_variation_detail("f", cached, False)
        assert (got.value, dict(got.reason)["bigSegmentsStatus"]) == (
            True,
            "STORE_ERROR",
        )
        # A query that fails: no membership, the rules only, STORE_ERROR.
        got = await client.bool_variation_detail("f", Context.create("new"), False)
        assert got.value is False
        assert dict(got.reason) == {
            "kind": "FALLTHROUGH",
            "bigSegmentsStatus": "STORE_ERROR",
        }
        redis_server.start()
        async with raw_redis(redis_server) as raw:
            await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
            await member(raw, "new", include=("big.g2",))
        await clock.wait_for_sleeper(within=5.0)
        await clock.advance(5.0)
        await until_status(client, HEALTHY)
        # The failed query was not cached: asked again, and found.
        got = await client.bool_variation_detail("f", Context.create("new"), False)
        assert (got.value, dict(got.reason)["bigSegmentsStatus"]) == (
            True,
            "HEALTHY",
        )
    assert seen == [HEALTHY, DOWN, HEALTHY]


@pytest.mark.asyncio
async def test_a_store_down_at_start_reports_store_error(
    redis_server: RedisServer,
) -> None:
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    cfg = Config(
        data_system=DataSystem.daemon(RedisStore(url=redis_server.url)),
        big_segments=BigSegmentsConfig(store=RedisBigSegmentStore(url=dead)),
        send_events=False,
    )
    async with Client(cfg) as client:
        got = await client.bool_variation_detail("f", Context.create("u"), False)
        assert dict(got.reason) == {
            "kind": "FALLTHROUGH",
            "bigSegmentsStatus": "STORE_ERROR",
        }
        assert client.big_segment_store_status == DOWN


@pytest.mark.asyncio
async def test_the_sync_snapshot_uses_the_cache_and_fetches_misses_in_the_background(
    redis_server: RedisServer,
) -> None:
    user = Context.create("u")
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
        await member(raw, "u", include=("big.g2",))
        async with Client(config(redis_server)) as client:
            await until_status(client, HEALTHY)
            got = client.snapshot().bool_variation_detail("f", user, False)
            # A miss cannot wait: answered as a store failure, fetch requested.
            assert got.value is False
            assert dict(got.reason)["bigSegmentsStatus"] == "STORE_ERROR"
            big = client._evaluator.big_segments
            assert big is not None
            await big.fetch("u")  # joins the requested fetch (or reads its result)
            got = client.snapshot().bool_variation_detail("f", user, False)
            assert (got.value, dict(got.reason)["bigSegmentsStatus"]) == (
                True,
                "HEALTHY",
            )
            # From another thread (the blocking client's case): same, thread-safely.
            other = Context.create("v")
            await member(raw, "v", include=("big.g2",))
            answers: list[Any] = []

            def in_thread() -> None:
                answers.append(client.snapshot().bool_variation("f", other, False))

            await anyio.to_thread.run_sync(in_thread)
            assert answers == [False]
            await big.fetch("v")
            assert client.snapshot().bool_variation("f", other, False) is True
            await anyio.to_thread.run_sync(in_thread)  # a hit, read from the thread
            assert answers == [False, True]


@pytest.mark.asyncio
async def test_all_flags_state_fetches_memberships(redis_server: RedisServer) -> None:
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag("f"), flag("g")], [segment()], synchronized_on=wall_ms())
        await member(raw, "u", include=("big.g2",))
        async with Client(config(redis_server)) as client:
            before = await calls(raw, "smembers")
            state = await client.all_flags_state(Context.create("u"), with_reasons=True)
            assert state.get_flag_value("f") is True
            assert state.get_flag_value("g") is True
            reason = state.get_flag_reason("f")
            assert reason is not None
            assert reason["bigSegmentsStatus"] == "HEALTHY"
            assert await calls(raw, "smembers") == before + 2


@pytest.mark.asyncio
async def test_a_failing_listener_is_logged_and_others_still_run(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=1)
    client = Client(config(redis_server))

    def broken(status: BigSegmentStoreStatus) -> None:
        raise RuntimeError("listener bug")

    client.add_big_segment_store_status_listener(broken)
    assert client.big_segment_store_status is None  # not started: not polled
    async with client:
        await until_status(client, STALE)
    assert "big-segment store status listener failed" in caplog.text


class SlowStore:
    """A BigSegmentStore of the application's own: answers when the test says."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.queried = anyio.Event()
        self.queries: list[str] = []

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[SlowStore]:
        yield self

    async def get_metadata(self) -> int | None:
        return wall_ms()

    async def get_membership(self, context_hash: str) -> dict[str, bool] | None:
        self.queries.append(context_hash)
        self.queried.set()
        await self.release.wait()
        return {"big.g2": True}


@pytest.mark.asyncio
async def test_a_slow_store_never_blocks_the_loop_and_waiters_share_its_answer() -> (
    None
):
    from aioflags.testing import FlagData

    store = SlowStore()
    data = FlagData()
    system = data.data_system()
    config = Config(
        data_system=system,
        big_segments=BigSegmentsConfig(store=store),
        send_events=False,
    )
    async with Client(config) as client:
        # Flags and an unbounded segment, applied as a source would.
        served = client._store
        assert isinstance(served, Store)
        await served.apply(_change_set([flag()], [segment()]))
        user = Context.create("u")
        results: list[bool] = []

        async def evaluate() -> None:
            results.append(await client.bool_variation("f", user, False))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(evaluate)
            # The evaluations wait on the store; the loop runs on meanwhile.
            with anyio.fail_after(30):
                await store.queried.wait()
            assert results == []
            other = await client.bool_variation_detail(
                "f", Context.create("org-only", kind="org"), False
            )
            assert dict(other.reason) == {"kind": "FALLTHROUGH"}  # no query needed
            store.release.set()
        assert results == [True, True, True]
        assert store.queries == [context_hash("u")]  # one query for the three


def _change_set(flags: list[dict[str, Any]], segments: list[dict[str, Any]]) -> Any:
    from aioflags.sources import Change, ChangeKind, ChangeSet, IntentCode, ObjectKind

    changes = [
        Change(
            action=ChangeKind.PUT,
            kind=kind,
            key=obj["key"],
            version=obj["version"],
            obj=obj,
        )
        for kind, objs in ((ObjectKind.FLAG, flags), (ObjectKind.SEGMENT, segments))
        for obj in objs
    ]
    return ChangeSet(intent=IntentCode.TRANSFER_FULL, changes=tuple(changes))


@pytest.mark.asyncio
async def test_hooks_run_once_per_evaluation_that_fetches_memberships(
    redis_server: RedisServer,
) -> None:
    from aioflags import EvaluationSeriesContext, Hook, HookMetadata

    stages: list[tuple[str, str, object]] = []

    class Seen(Hook):
        @property
        def metadata(self) -> HookMetadata:
            return HookMetadata(name="seen")

        def before_evaluation(
            self, series_context: EvaluationSeriesContext, data: Any
        ) -> Any:
            stages.append(("before", series_context.key, None))
            return data

        def after_evaluation(
            self, series_context: EvaluationSeriesContext, data: Any, detail: Any
        ) -> Any:
            stages.append(("after", series_context.key, detail.value))
            return data

    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
        await member(raw, "in", include=("big.g2",))
        cfg = config(redis_server)
        cfg = Config(
            data_system=cfg.data_system,
            big_segments=cfg.big_segments,
            send_events=False,
            hooks=[Seen()],
        )
        async with Client(cfg) as client:
            before = await calls(raw, "smembers")
            # A cache miss: the membership is fetched, the series runs once.
            assert await client.bool_variation("f", Context.create("in"), False)
            assert await calls(raw, "smembers") > before
            assert stages == [("before", "f", None), ("after", "f", True)]


@pytest.mark.asyncio
async def test_an_evaluation_that_fetches_memberships_is_recorded_once(
    redis_server: RedisServer,
) -> None:
    """The passes that meet an uncached membership record nothing; the last one does."""
    async with raw_redis(redis_server) as raw, FlagServer({}) as events:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
        await member(raw, "in", include=("big.g2",))
        cfg = config(redis_server)
        cfg = Config(
            "sdk-key",
            data_system=cfg.data_system,
            big_segments=cfg.big_segments,
            events_uri=events.url,
            diagnostic_opt_out=True,
        )
        async with Client(cfg) as client:
            await until_status(client, HEALTHY)
            before = await calls(raw, "smembers")
            # A cache miss: one pass needs the membership, it is fetched,
            # the evaluation runs again and is recorded once, with its answer.
            assert await client.bool_variation("f", Context.create("in"), False)
            assert await calls(raw, "smembers") > before
            await client.flush()
        (summary,) = [e for e in events.events if e["kind"] == "summary"]
        assert summary["features"]["f"]["counters"] == [
            {"variation": 0, "version": 1, "value": True, "count": 1}
        ]


@pytest.mark.asyncio
async def test_cached_memberships_cost_one_pass_with_events_on(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every membership of the context cached, the snapshot evaluates once.

    The quiet passes that discover what to fetch are for cache misses only:
    with events on (a recording snapshot), a second pass per call would
    double every awaited evaluation of a client with big segments.
    """
    from aioflags._evaluation._snapshot import FlagSnapshot

    passes: list[str] = []
    # (the gate's passes evaluate a snapshot through _answer: by method)
    answer = FlagSnapshot._answer

    def answered(self: Any, method: Any, *args: Any) -> Any:
        passes.append(method.name)
        return answer(self, method, *args)

    monkeypatch.setattr(FlagSnapshot, "_answer", answered)
    all_flags_state = FlagSnapshot.all_flags_state

    def counted(self: Any, *args: Any, **kw: Any) -> Any:
        passes.append("all_flags_state")
        return all_flags_state(self, *args, **kw)

    monkeypatch.setattr(FlagSnapshot, "all_flags_state", counted)
    made: list[bool] = []  # the pass snapshots made, by quiet
    with_memberships = FlagSnapshot.with_memberships

    def making(self: Any, source: Any, *, quiet: bool) -> Any:
        made.append(quiet)
        return with_memberships(self, source, quiet=quiet)

    monkeypatch.setattr(FlagSnapshot, "with_memberships", making)
    async with raw_redis(redis_server) as raw, FlagServer({}) as events:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
        await member(raw, "in", include=("big.g2",))
        cfg = config(redis_server)
        cfg = Config(
            "sdk-key",
            data_system=cfg.data_system,
            big_segments=cfg.big_segments,
            events_uri=events.url,
            diagnostic_opt_out=True,
        )
        context = Context.create("in")
        async with Client(cfg) as client:
            await until_status(client, HEALTHY)
            assert await client.bool_variation("f", context, False)  # fetched
            passes.clear()
            assert await client.bool_variation("f", context, False)  # cached
            await client.all_flags_state(context)
            assert passes == ["bool_variation", "all_flags_state"]
            # made once per snapshot: the first call's quiet and loud ones
            assert made == [True, False]
            await client.flush()
        (summary,) = [e for e in events.events if e["kind"] == "summary"]
        assert summary["features"]["f"]["counters"] == [
            {"variation": 0, "version": 1, "value": True, "count": 2}
        ]


class NeverConnects(SlowStore):
    """A store of the application's own whose connect() never returns."""

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[SlowStore]:
        await anyio.sleep_forever()
        yield self  # pragma: no cover - never reached


@pytest.mark.asyncio
async def test_a_store_that_never_connects_answers_store_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aioflags._datasystem._stores._bigsegments as bigsegments
    from aioflags.testing import FlagData

    monkeypatch.setattr(bigsegments, "QUERY_BOUND", 0.05)  # the bound, shortened
    config = Config(
        data_system=FlagData().data_system(),
        big_segments=BigSegmentsConfig(store=NeverConnects()),
        send_events=False,
    )
    async with Client(config) as client:
        served = client._store
        assert isinstance(served, Store)
        await served.apply(_change_set([flag()], [segment()]))
        with anyio.fail_after(30):  # the evaluation must not hang
            detail = await client.bool_variation_detail("f", Context.create("u"), False)
        assert detail.value is False
        assert detail.reason["bigSegmentsStatus"] == "STORE_ERROR"


@pytest.mark.asyncio
async def test_typed_evaluations_go_to_the_gate_without_asking_whether_it_passes(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With big segments every evaluation goes through the gate: no passes() call."""
    asked: list[str] = []
    passes = EvaluationGate.passes

    def counted(gate: EvaluationGate, key: str) -> bool:
        asked.append(key)
        return passes(gate, key)

    monkeypatch.setattr(EvaluationGate, "passes", counted)
    async with raw_redis(redis_server) as raw:
        await seed(raw, [flag()], [segment()], synchronized_on=wall_ms())
        await member(raw, "in", include=("big.g2",))
        async with Client(config(redis_server)) as client:
            await until_status(client, HEALTHY)
            ctx = Context.create("in")
            assert await client.bool_variation("f", ctx, False) is True
            assert (await client.bool_variation_detail("f", ctx, False)).value is True
            assert await client.variation("f", ctx, False) is True
            assert (await client.variation_detail("f", ctx, False)).value is True
    assert asked == []


def test_a_pass_gets_memberships_from_its_own_source_and_shares_the_compiled_code() -> (
    None
):
    """``FlagSnapshot.with_memberships``: what one pass of an awaited evaluation runs on.

    Its memberships come from the source it is given (no side channel);
    it reuses the snapshot's heads and all-flags plans (a pass compiles
    nothing again); a quiet pass records no analytics events.
    """
    from aioflags._datasystem._store import snapshot_from_data
    from tests.analytics import recorder_for

    class Source:
        def __init__(self, membership: dict[str, bool] | None) -> None:
            self.membership = membership
            self.asked: list[str] = []

        def answer(self, key: str) -> tuple[dict[str, bool] | None, str]:
            self.asked.append(key)
            return self.membership, "HEALTHY"

    rec = recorder_for(Config("k"), now_ms=lambda: 1000)
    data = snapshot_from_data({"f": flag()}, {"big": segment()})
    snapshot = data.recording(rec)
    assert snapshot.observed and not data.observed
    context = Context.create("in")

    quiet_source = Source(None)
    quiet = snapshot.with_memberships(quiet_source, quiet=True)
    assert not quiet.observed
    detail = quiet.variation_detail("f", context, None)
    assert (detail.value, detail.reason.get("bigSegmentsStatus")) == (False, "HEALTHY")
    assert quiet_source.asked == ["in"]
    assert rec.take() is None  # a quiet pass records nothing

    loud_source = Source({"big.g2": True})
    loud = snapshot.with_memberships(loud_source, quiet=False)
    assert loud.observed
    assert loud.variation("f", context, None) is True
    assert loud_source.asked == ["in"]
    assert rec.take() is not None  # the pass that counts is recorded

    # One snapshot's passes share its compiled code: heads and plans.
    assert (
        quiet._data.matcher.heads
        is loud._data.matcher.heads
        is snapshot._data.matcher.heads
    )
    assert "f" in snapshot._data.matcher.heads
    quiet.all_flags_state(context)
    assert snapshot._data.plans  # the plan made by the pass is the snapshot's
    assert loud._data.plans is snapshot._data.plans


def test_a_pass_started_inside_another_leaves_the_outer_ones_memberships() -> None:
    """A pass may start while another runs: a hook's awaited evaluation whose
    task starts eagerly (``asyncio.eager_task_factory``) runs its first pass
    inside the outer one's. The outer pass then still answers from what its
    evaluation knows, and reports only what it needed itself.
    """
    from aioflags._datasystem._store import snapshot_from_data
    from aioflags._datasystem._stores._bigsegments import (
        BigSegments,
        StatusListeners,
    )
    from aioflags._evaluation._snapshot import FlagSnapshot

    big = BigSegments(
        BigSegmentsConfig(store=SlowStore()), FakeClock(), StatusListeners()
    )
    data = snapshot_from_data({"f": flag()}, {"big": segment()})
    inner_needed: list[list[str]] = []

    def inner(snapshot: FlagSnapshot) -> Any:
        return snapshot.variation("f", Context.create("other"), None)

    def outer(snapshot: FlagSnapshot) -> Any:
        inner_needed.append(big._pass(data, inner, {}, quiet=True)[1])
        return snapshot.variation("f", Context.create("in"), None)

    known: dict[str, Any] = {"in": ({"big.g2": True}, False)}  # fetched
    assert big._pass(data, outer, known, quiet=True) == (True, [])
    assert inner_needed == [["other"]]
