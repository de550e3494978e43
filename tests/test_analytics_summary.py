"""Summary counters equal a recount of the evaluations made (seeded, randomised)."""

from __future__ import annotations

import collections
import random
import threading
from typing import Any

import anyio
import pytest

from aioflags import Context
from aioflags._datasystem._store import snapshot_from_data
from tests.analytics import flag, running

FLAGS: dict[str, dict[str, Any]] = {
    "a": flag(
        trackEvents=True,
        rules=[
            {
                "id": "pro",
                "variation": 1,
                "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
            }
        ],
    ),
    "b": {
        "on": True,
        "variations": ["x", "y", "z"],
        "offVariation": 0,
        "fallthrough": {
            "rollout": {
                "variations": [
                    {"variation": 0, "weight": 30000},
                    {"variation": 1, "weight": 30000},
                    {"variation": 2, "weight": 40000},
                ]
            }
        },
    },
    "c": flag(on=False),
    "d": flag(
        prerequisites=[{"key": "a", "variation": 0}, {"key": "b", "variation": 2}]
    ),
    "e": flag(prerequisites=[{"key": "d", "variation": 0}], trackEvents=True),
    "n": {"on": True, "variations": [1, 2.5], "fallthrough": {"variation": 1}},
}
KEYS = [*FLAGS, "missing"]
METHODS = [
    ("variation", None),
    ("variation_detail", None),
    ("bool_variation", False),
    ("bool_variation_detail", False),
    ("string_variation", "s"),
    ("int_variation_detail", 0),
    ("float_variation", 0.0),
    ("json_variation", None),
]


def recount(
    snapshot: Any, key: str, context: Context, method: str, default: Any
) -> list:  # type: ignore[type-arg]
    """The (key, variation, version) of every evaluation one call makes, prerequisites first."""
    typed = method.removesuffix("_detail") + "_detail"
    out: list[tuple[str, int | None, int | None]] = []

    def version(k: str) -> int | None:
        return snapshot._data.flags[k].version if k in snapshot._data.flags else None

    def visit(k: str) -> None:  # a prerequisite's own evaluation, depth first
        raw = FLAGS[k]
        if raw.get("on"):
            for p in raw.get("prerequisites", []):
                visit(p["key"])
                if (
                    snapshot.variation_detail(p["key"], context, None).variation_index
                    != p["variation"]
                ):
                    break
        out.append(
            (k, snapshot.variation_detail(k, context, None).variation_index, version(k))
        )

    if key in FLAGS and FLAGS[key].get("on"):
        for p in FLAGS[key].get("prerequisites", []):
            visit(p["key"])
            if (
                snapshot.variation_detail(p["key"], context, None).variation_index
                != p["variation"]
            ):
                break
    detail = getattr(snapshot, typed)(key, context, default)
    out.append((key, detail.variation_index, version(key)))
    return out


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_summary_counters_equal_a_recount(seed: int) -> None:
    rng = random.Random(seed)
    expected: collections.Counter[tuple[str, int | None, int | None]] = (
        collections.Counter()
    )
    async with running(FLAGS, seed=seed) as (server, client, _):
        served = {k: v["version"] for k, v in server.flags.items()}
        oracle = snapshot_from_data(
            {k: {**v, "version": served[k]} for k, v in FLAGS.items()}
        )
        for _ in range(300):
            key = rng.choice(KEYS)
            method, default = rng.choice(METHODS)
            context = Context.create(
                f"u{rng.randrange(20)}",
                attributes={"plan": rng.choice(["pro", "free"])},
            )
            await getattr(client, method)(key, context, default)
            expected.update(recount(oracle, key, context, method, default))
        await client.flush()
        (summary,) = server.events_of("summary")
    counted: collections.Counter[tuple[str, int | None, int | None]] = (
        collections.Counter()
    )
    for key, feature in summary["features"].items():
        for row in feature["counters"]:
            version = None if row.get("unknown") else row["version"]
            counted[(key, row.get("variation"), version)] += row["count"]
    assert counted == expected
    assert sum(expected.values()) > 300  # prerequisites were counted too


@pytest.mark.asyncio
async def test_a_counter_s_value_is_that_of_the_first_evaluation_it_counted() -> None:
    """events.md §3: a WRONG_TYPE call's counter says the default it returned, as its event."""
    pro = {"attribute": "plan", "op": "in", "values": ["pro"]}
    flags = {
        "f": flag(trackEvents=True),  # serves True (variation 0)
        # plan pro: variation 0; anyone else: a malformed fallthrough, no variation
        "r": flag(
            rules=[{"id": "pro", "variation": 0, "clauses": [pro]}], fallthrough={}
        ),
    }
    ann = Context.create("ann", attributes={"plan": "pro"})
    bob = Context.create("bob")
    async with running(flags) as (server, client, _):
        assert await client.bool_variation("f", ann, False) is True
        detail = await client.string_variation_detail("f", ann, "nope")
        assert (detail.value, detail.error_kind) == ("nope", "WRONG_TYPE")
        assert await client.string_variation("f", ann, "later") == "later"
        # The snapshot's own fast path: r's counter exists (ann), bob is the
        # last context seen (f), and r serves bob no variation.
        assert await client.variation("r", ann, "d0") is True
        assert await client.variation("f", bob, "d1") is True
        assert await client.variation("r", bob, "d2") == "d2"
        assert await client.variation("r", bob, "d3") == "d3"
        await client.flush()
        (summary,) = server.events_of("summary")
        wrong = [
            e
            for e in server.events_of("feature")
            if e["key"] == "f" and e.get("reason", {}).get("errorKind") == "WRONG_TYPE"
        ]
    features = summary["features"]
    version = server.flags["f"]["version"]
    assert features["f"]["default"] is False  # the flag's first evaluation's
    assert features["f"]["counters"] == [
        {"variation": 0, "version": version, "value": True, "count": 2},
        {"version": version, "value": "nope", "count": 2},
    ]
    assert [e["value"] for e in wrong] == ["nope"]  # the event agrees
    assert features["r"]["counters"][1] == {
        "version": server.flags["r"]["version"],
        "value": "d2",
        "count": 2,
    }


class _CountingLock:
    """A re-entrant lock that counts how often it is taken."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.taken = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.taken += 1
        return self.lock.acquire(blocking, timeout)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.asyncio
async def test_the_loop_counts_its_evaluations_without_the_lock() -> None:
    """issue 49: the event loop's own evaluations count without the recorder's lock.

    Only a new counter, a new context or a full event take it (the other
    threads' ledger is under it); a flag with prerequisites is counted with
    them; the summary still counts every evaluation.
    """
    flags = {
        "p": flag(),
        "q": flag(prerequisites=[{"key": "p", "variation": 0}]),
    }
    ann = Context.create("ann")
    async with running(flags) as (server, client, _):
        events = client._evaluator.events
        assert events is not None
        lock = _CountingLock()
        events.recorder.lock = lock  # type: ignore[assignment]
        assert await client.variation("p", ann, False) is True
        first = lock.taken  # a new counter and a new context
        for _ in range(10):
            assert await client.variation("p", ann, False) is True
        assert lock.taken == first
        assert await client.variation("q", ann, False) is True
        await client.flush()
        (summary,) = server.events_of("summary")
    counts = {
        key: sum(c["count"] for c in feature["counters"])
        for key, feature in summary["features"].items()
    }
    assert counts == {"p": 12, "q": 1}  # p: 11 and once as q's prerequisite


@pytest.mark.asyncio
async def test_each_flush_s_summary_counts_its_own_window_on_recycled_counters() -> (
    None
):
    """issue 59: the loop's counters serve again after a flush, afresh.

    A flag counted in one window and not the next is not in the next
    summary; a flag counted in both counts from zero in the second, with
    the second window's default and context kinds; and it counts into the
    same counter (none is made per flag and window).
    """
    flags = {"a": flag(), "b": flag()}
    ann, org = Context.create("ann"), Context.create("o1", "org")
    async with running(flags) as (server, client, _):
        events = client._evaluator.events
        assert events is not None
        loop = events.recorder.loop
        for _ in range(3):
            assert await client.variation("a", ann, False) is True
            assert await client.variation("b", ann, False) is True
        counter = next(iter(loop.counters.values()))
        await client.flush()
        assert await client.variation("a", org, "x") is True
        assert list(loop.counters.values()) == [counter]
        await client.flush()
        first, second = server.events_of("summary")
    assert set(first["features"]) == {"a", "b"}
    assert first["features"]["a"]["counters"][0]["count"] == 3
    assert second["features"] == {
        "a": {
            "default": "x",
            "contextKinds": ["org"],
            "counters": [{"variation": 0, "version": 1, "value": True, "count": 1}],
        }
    }


@pytest.mark.asyncio
async def test_a_flag_counted_again_has_the_default_of_its_first_evaluation_in_the_window() -> (
    None
):
    """issue 59: a flag counted in the window before is counted in place from
    the next window's first evaluation, with that evaluation's default.

    Whatever the default of the window before, the summary's is the one its
    own first evaluation passed; later defaults of the window do not change it.
    """
    ann = Context.create("ann")
    other = {"not": "the default before"}
    default: Any
    async with running({"a": flag()}) as (server, client, _):
        for default in (False, False, "x"):
            assert await client.variation("a", ann, default) is True
        await client.flush()
        for default in (other, False, False):  # another default first
            assert await client.variation("a", ann, default) is True
        await client.flush()
        for default in (other, "x"):  # the window before's first
            assert await client.variation("a", ann, default) is True
        await client.flush()
        for default in (False, other):  # and another again
            assert await client.variation("a", ann, default) is True
        await client.flush()
        summaries = server.events_of("summary")
    assert [s["features"]["a"]["default"] for s in summaries] == [
        False,
        other,
        other,
        False,
    ]
    assert [s["features"]["a"]["counters"][0]["count"] for s in summaries] == [
        3,
        3,
        2,
        2,
    ]


@pytest.mark.asyncio
async def test_each_window_s_summary_lists_the_context_kinds_it_counted() -> None:
    ann, bob = Context.create("ann"), Context.create("bob")
    org = Context.create("o1", "org")
    multi = Context.create_multi(Context.create("cy"), Context.create("d1", "device"))
    windows = [[ann, bob], [org, org], [ann, org], [bob], [multi], [ann]]
    async with running({"a": flag(), "b": flag()}) as (server, client, _):
        for contexts in windows:
            for context in contexts:
                for key in ("a", "b", "a"):
                    assert await client.variation(key, context, False) is True
            await client.flush()
        summaries = server.events_of("summary")
    assert len(summaries) == len(windows)
    for contexts, summary in zip(windows, summaries, strict=True):
        kinds = sorted({kind for c in contexts for kind in c.kinds})
        for key, count in (("a", 2), ("b", 1)):
            feature = summary["features"][key]
            assert feature["contextKinds"] == kinds
            assert feature["counters"][0]["count"] == count * len(contexts)


@pytest.mark.asyncio
async def test_a_flag_not_counted_in_a_window_is_not_in_its_summary() -> None:
    ann = Context.create("ann")
    async with running({"a": flag(), "b": flag(), "c": flag()}) as (server, c, _):
        for keys in (["a", "b", "c"], ["b"], ["a", "c"], ["c"]):
            for key in keys:
                for _ in range(2):
                    assert await c.variation(key, ann, False) is True
            await c.flush()
            loop = c._evaluator.events.recorder.loop  # type: ignore[union-attr]
            assert not loop.fast  # nothing counted in place before it counts
        summaries = server.events_of("summary")
        assert {flag.key for flag in loop.spare} == {"c"}
    assert [sorted(s["features"]) for s in summaries] == [
        ["a", "b", "c"],
        ["b"],
        ["a", "c"],
        ["c"],
    ]
    for summary in summaries:
        for feature in summary["features"].values():
            assert feature["counters"][0]["count"] == 2


@pytest.mark.asyncio
async def test_a_data_change_leaves_nothing_of_the_flag_replaced() -> None:
    ann = Context.create("ann")
    async with running({"a": flag(), "b": flag()}) as (server, client, _):
        events = client._evaluator.events
        assert events is not None
        loop = events.recorder.loop
        for key in ("a", "b", "a"):
            await client.variation(key, ann, False)
        await client.flush()
        old = set(loop.spare)
        changed = anyio.Event()
        client.add_flag_change_handler(lambda keys: changed.set())
        server.set_flag("a", flag(fallthrough={"variation": 1}))
        await changed.wait()
        for key in ("a", "a"):
            assert await client.variation(key, ann, False) is False
        await client.flush()
        assert not old & {*loop.spare, *loop.counters, *loop.flags_fast}
        assert await client.variation("a", ann, False) is False  # in place
        await client.flush()
        first, second, third = server.events_of("summary")
    assert set(first["features"]) == {"a", "b"}
    (before,) = first["features"]["a"]["counters"]
    version = before["version"] + 1
    assert second["features"] == {
        "a": {
            "default": False,
            "contextKinds": ["user"],
            "counters": [
                {"variation": 1, "version": version, "value": False, "count": 2}
            ],
        }
    }
    assert third["features"]["a"]["counters"] == [
        {"variation": 1, "version": version, "value": False, "count": 1}
    ]


async def summary_across_a_change(
    flags: dict[str, Any],
    before: tuple[str, ...],
    change: tuple[str, dict[str, Any]],
    after: tuple[str, ...],
) -> dict[str, Any]:
    """The one summary of one context's evaluations of ``before``, a flag's change, then ``after``.

    No flush between: the change lands mid-window (the client has applied
    it before ``after`` is evaluated).
    """
    ann = Context.create("ann")
    async with running(flags) as (server, client, _):
        for key in before:
            await client.variation(key, ann, False)
        changed = anyio.Event()
        client.add_flag_change_handler(lambda keys: changed.set())
        server.set_flag(*change)
        await changed.wait()
        for key in after:
            await client.variation(key, ann, False)
        await client.flush()
        (summary,) = server.events_of("summary")
    return summary


@pytest.mark.asyncio
async def test_a_data_change_mid_window_counts_the_new_version_apart() -> None:
    # The same context before and after the change, with no flush between:
    # what is counted in place (by key, for one snapshot's flags) must not
    # carry the old version's counter over to the new flag.
    summary = await summary_across_a_change(
        {"a": flag(), "b": flag()},
        ("a", "b", "a", "b"),
        ("a", flag(fallthrough={"variation": 1})),
        ("a", "b", "a", "a"),
    )
    rows = summary["features"]["a"]["counters"]
    old, new = sorted(rows, key=lambda row: row["version"])
    assert (old["value"], old["count"]) == (True, 2)
    assert (new["value"], new["count"], new["version"]) == (
        False,
        3,
        old["version"] + 1,
    )
    assert summary["features"]["b"]["counters"][0]["count"] == 3


@pytest.mark.asyncio
async def test_a_prerequisite_changed_mid_window_is_counted_apart() -> None:
    # A prerequisite's evaluation is counted in place by key too (the
    # count a composition writes): a change of it replaces the snapshot,
    # and its evaluations through each flag that requires it, and its
    # own, count against its new version from then on. (Its targets make
    # it a flag that runs, checked inline, not a constant one.)
    needs_p = [{"key": "p", "variation": 0}]
    targets = [{"values": ["x"], "variation": 1}]
    flags = {
        "a": flag(prerequisites=needs_p),
        "b": flag(prerequisites=needs_p),
        "p": flag(targets=targets),
    }
    summary = await summary_across_a_change(
        flags,
        ("a", "b", "p", "a", "b"),
        ("p", flag(targets=targets, fallthrough={"variation": 1})),
        ("a", "b", "p"),
    )
    rows = summary["features"]["p"]["counters"]
    old, new = sorted(rows, key=lambda row: row["version"])
    assert (old["value"], old["count"]) == (True, 5)
    assert (new["value"], new["count"], new["version"]) == (
        False,
        3,
        old["version"] + 1,
    )
    # (the prerequisite now fails: "a" and "b" serve their off variation)
    for key in ("a", "b"):
        assert [row["count"] for row in summary["features"][key]["counters"]] == [
            2,
            1,
        ]


@pytest.mark.asyncio
async def test_a_flag_left_as_it_was_by_a_change_counts_in_place_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A change of another flag replaces the snapshot (its flags by key are
    # forgotten), not this flag's object: its next evaluation for the same
    # context is counted in place again, without the recorder's lock.
    ann = Context.create("ann")
    async with running({"a": flag(), "b": flag()}) as (server, client, _):
        events = client._evaluator.events
        assert events is not None
        recorder = events.recorder
        for key in ("a", "b", "a"):
            await client.variation(key, ann, False)
        changed = anyio.Event()
        client.add_flag_change_handler(lambda keys: changed.set())
        server.set_flag("b", flag(fallthrough={"variation": 1}))
        await changed.wait()
        counted = 0
        count = type(recorder).count

        def counting(*args: Any) -> None:
            nonlocal counted
            counted += 1
            count(*args)

        monkeypatch.setattr(type(recorder), "count", counting)
        for _ in range(3):
            assert await client.variation("a", ann, False) is True
        assert counted == 0
        await client.flush()
        (summary,) = server.events_of("summary")
    assert summary["features"]["a"]["counters"][0]["count"] == 5
