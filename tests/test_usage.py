"""client.usage(): each flag's evaluations for the life of the client, from the summary counters.

Against a FlagServer that receives the client's events: what ``usage()``
reports agrees with the summaries the flushes sent, across flushes, flag
changes and a restart; with events off it reports no figures at all.
"""

from __future__ import annotations

import concurrent.futures
import copy
import datetime
import gc
import json
import pickle
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal

import aioflags
import aioflags.blocking
from aioflags import Client, Config, Context, FlagUsage, Usage, VariationUsage
from aioflags._analytics._usage import Tally
from aioflags._core._clock import wall_ms
from aioflags._datasystem._store import snapshot_from_data
from aioflags.testing import FlagData, FlagServer
from tests.analytics import flag, recorder_for, running

if TYPE_CHECKING:
    from aioflags._core._json import JSONObject

USER = Context.create("u1", attributes={"plan": "pro"})
OTHER = Context.create("u2", attributes={"plan": "free"})
BOUND = 10.0  # a safety net for waits on other threads, never a synchronisation

FLAGS: dict[str, JSONObject] = {
    # True for pro users (rule), False otherwise (fallthrough)
    "checkout": flag(
        rules=[
            {
                "id": "pro",
                "variation": 0,
                "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}],
            }
        ],
        fallthrough={"variation": 1},
    ),
    "banner": {
        "on": True,
        "variations": ["red", "green"],
        "fallthrough": {"variation": 0},
        "offVariation": 1,
    },
    "child": flag(prerequisites=[{"key": "parent", "variation": 0}]),
    "parent": flag(),
    "quiet": flag(excludeFromSummaries=True),
    "off-no-variation": flag(on=False, offVariation=None),
    "unused": flag(),
    "also-unused": flag(),
}


def served(usage: FlagUsage) -> dict[Any, int]:
    """A flag's values served, with their counts (values as JSON text, hashable)."""
    return {repr(v.value): v.evaluations for v in usage.variations}


def summed(summaries: list[JSONObject]) -> dict[str, int]:
    """Evaluations per flag key over the summary events the flushes sent."""
    out: dict[str, int] = {}
    for summary in summaries:
        for key, feature in summary["features"].items():
            out[key] = out.get(key, 0) + sum(c["count"] for c in feature["counters"])
    return out


async def changed(client: Client, key: str) -> anyio.Event:
    """An event set when the client has applied a change of flag ``key``."""
    seen = anyio.Event()

    def on_change(keys: frozenset[str]) -> None:
        if key in keys:
            seen.set()

    client.add_flag_change_handler(on_change)
    return seen


@pytest.mark.asyncio
async def test_usage_counts_evaluations_across_a_flush_and_a_flag_change() -> None:
    before = wall_ms()
    async with running(FLAGS) as (server, client, _):
        empty = client.usage()
        assert (empty.available, empty.counting) == (True, True)
        assert empty.flags == {}
        assert empty.never_evaluated == frozenset(FLAGS)
        assert empty.since is not None
        since = empty.since
        assert since.tzinfo is datetime.timezone.utc

        for _ in range(3):
            assert await client.bool_variation("checkout", USER, False) is True
        assert await client.bool_variation("checkout", OTHER, True) is False
        assert await client.variation_detail("banner", USER, "x") is not None
        assert client.snapshot().variation("child", USER, False) is True
        assert await client.variation("quiet", USER, None) is True
        assert await client.variation("off-no-variation", USER, "mine") == "mine"
        assert await client.variation("no-such-flag", USER, 7) == 7

        # Before any flush: the window's counters, read as they are.
        pending = client.usage()
        assert pending.flags["checkout"].evaluations == 4
        assert served(pending.flags["checkout"]) == {"True": 3, "False": 1}
        assert pending.flags["child"].evaluations == 1
        # A prerequisite's evaluation counts: the flag is in use.
        assert pending.flags["parent"].evaluations == 1
        # Excluded from LaunchDarkly's summaries, still counted here.
        assert pending.flags["quiet"].evaluations == 1
        off = pending.flags["off-no-variation"]
        assert (off.evaluations, off.variations, off.defaults) == (1, (), 1)
        missing = pending.flags["no-such-flag"]
        assert (missing.evaluations, missing.defaults) == (1, 1)
        assert pending.never_evaluated == {"unused", "also-unused"}

        await client.flush()
        flushed = client.usage()
        # The flush took the counters; the totals kept them.
        for key in ("checkout", "banner", "child", "parent", "quiet"):
            assert flushed.flags[key].evaluations == pending.flags[key].evaluations
        assert served(flushed.flags["checkout"]) == {"True": 3, "False": 1}
        first = flushed.flags["checkout"].last_evaluated
        assert before <= first.timestamp() * 1000 <= wall_ms()
        assert since <= first

        # The flag changes: its variations swap places, and a flag is added.
        seen = await changed(client, "checkout")
        server.set_flag(
            "checkout",
            {**FLAGS["checkout"], "variations": [False, True], "offVariation": 0},
        )
        server.set_flag("new-flag", flag())
        with anyio.fail_after(BOUND):
            await seen.wait()
        # Variation 0 now serves False: counted by value, with the old counts.
        assert await client.bool_variation("checkout", USER, True) is False
        assert await client.bool_variation("checkout", OTHER, False) is True
        await client.flush()
        after = client.usage()
        checkout = after.flags["checkout"]
        assert checkout.evaluations == 6
        assert served(checkout) == {"True": 4, "False": 2}
        assert checkout.variations[0] == VariationUsage(value=True, evaluations=4)
        assert checkout.last_evaluated >= first
        # A flag not evaluated since the first flush keeps its time.
        assert after.flags["banner"] == flushed.flags["banner"]
        assert after.never_evaluated == {"unused", "also-unused", "new-flag"}
        assert after.since == since

        # The same evaluations LaunchDarkly's summaries counted.
        sent = summed(server.events_of("summary"))
        assert "quiet" not in sent  # excludeFromSummaries
        for key, count in sent.items():
            assert after.flags[key].evaluations == count, key


@pytest.mark.asyncio
async def test_usage_tells_values_apart_as_json_does() -> None:
    """``True`` is not ``1`` (nor ``[True]`` ``[1]``), though Python's ``==`` says so.

    A change of the flag makes new objects of equal values: they add up.
    """
    values = [1, True, [1], [True], {"n": 1.5}]
    mixed = flag(
        variations=values,
        targets=[{"values": [f"u{i}"], "variation": i} for i in range(len(values))],
    )
    users = [Context.create(f"u{i}") for i in range(len(values))]
    async with running({"mixed": mixed}) as (server, client, _):
        for user in users:
            await client.variation("mixed", user, None)
        await client.flush()
        seen = await changed(client, "mixed")
        server.set_flag("mixed", copy.deepcopy(mixed))  # a new version
        with anyio.fail_after(BOUND):
            await seen.wait()
        for user in users:
            await client.variation("mixed", user, None)
        usage = client.usage().flags["mixed"]
    assert [(v.value, v.evaluations) for v in usage.variations] == [
        (value, 2) for value in values
    ]
    assert [type(v.value) for v in usage.variations] == [type(v) for v in values]


@pytest.mark.asyncio
async def test_usage_after_close_and_across_a_restart() -> None:
    async with running({"a": flag(), "b": flag()}) as (server, client, _):
        await client.variation("a", USER, False)
    # Closed: the final flush took the last window; the figures remain.
    closed = client.usage()
    assert (closed.available, closed.counting) == (True, False)
    assert closed.flags["a"].evaluations == 1
    assert closed.never_evaluated == {"b"}  # the data the client last had

    async with FlagServer({"a": flag(), "b": flag()}) as server:
        config = server.config(
            data_system=aioflags.DataSystem.streaming(), diagnostic_opt_out=True
        )
        restartable = Client(config)
        async with restartable:
            await restartable.variation("a", USER, False)
        async with restartable:
            await restartable.variation("a", USER, False)
            await restartable.variation("b", USER, False)
            running_again = restartable.usage()
        assert running_again.counting
        # For the life of the client: both runs count.
        assert running_again.flags["a"].evaluations == 2
        assert running_again.flags["b"].evaluations == 1
        assert running_again.never_evaluated == frozenset()


@pytest.mark.asyncio
async def test_usage_with_events_off_says_it_has_no_data() -> None:
    data = FlagData()
    data.update(data.flag("a").boolean(), data.flag("b").boolean())
    # An in-memory data system needs no SDK key: no analytics events.
    async with Client(Config(data_system=data.data_system())) as client:
        assert not client.config.events_enabled
        await client.variation("a", USER, False)
        usage = client.usage()
    assert usage == Usage(
        available=False,
        reason=LOCAL_ONLY,
        counting=False,
        since=None,
        flags={},
        never_evaluated=frozenset(),
    )
    async with FlagServer({"a": flag()}) as server:
        off = Client(server.config(send_events=False))
        async with off:
            await off.variation("a", USER, False)
            assert not off.usage().available
    # A client never started has counted nothing either, events on or off.
    assert not Client(Config(offline=True)).usage().available
    assert not Client(Config("sdk-key")).usage().available


LOCAL_ONLY = (
    "analytics events are off (the data system reads local flag data only, as "
    "DataSystem.file and FlagData.data_system() do, and sends no events), and "
    "usage() counts evaluations with their counters"
)


@pytest.mark.asyncio
async def test_usage_without_figures_says_why(tmp_path: Path) -> None:
    # It said available=False and nothing more: a first try read as a bug.
    path = tmp_path / "flags.json"
    path.write_text('{"flagValues": {"a": true}}')
    async with Client(Config(data_system=aioflags.DataSystem.file(path))) as client:
        assert await client.variation("a", USER, False) is True
        from_file = client.usage()
    assert (from_file.available, from_file.reason) == (False, LOCAL_ONLY)
    assert f"reason={LOCAL_ONLY!r}" in repr(from_file)
    assert (
        pickle.loads(pickle.dumps(from_file)) == copy.deepcopy(from_file) == from_file
    )
    async with FlagServer({"a": flag()}) as server:
        async with Client(server.config(send_events=False)) as client:
            await client.variation("a", USER, False)
            assert client.usage().reason == (
                "analytics events are off (Config(send_events=False)), and "
                "usage() counts evaluations with their counters"
            )
        not_started = Client(server.config()).usage()
    assert not_started.reason == (
        "the client has not started (in this process): evaluations are counted "
        "from its first start"
    )
    assert Client(Config(offline=True)).usage().reason == (
        "analytics events are off (Config(offline=True)), and usage() counts "
        "evaluations with their counters"
    )
    assert from_file.to_dict() == {
        "available": False,
        "reason": LOCAL_ONLY,
        "counting": False,
        "since": None,
        "flags": {},
        "never_evaluated": [],
    }


@pytest.mark.asyncio
async def test_usage_to_dict_is_json_ready() -> None:
    async with running(FLAGS) as (_, client, _):
        await client.variation("banner", USER, "x")
        await client.variation("banner", USER, "x")
        await client.variation("no-such-flag", USER, 7)
        usage = client.usage()
    assert usage.reason is None
    assert usage.since is not None
    data = json.loads(json.dumps(usage.to_dict()))
    banner = usage.flags["banner"]
    assert data == {
        "available": True,
        "reason": None,
        "counting": True,
        "since": usage.since.isoformat(),
        "flags": {
            "banner": {
                "key": "banner",
                "evaluations": 2,
                "variations": [{"value": "red", "evaluations": 2}],
                "defaults": 0,
                "last_evaluated": banner.last_evaluated.isoformat(),
                "overridden": 0,
            },
            "no-such-flag": {
                "key": "no-such-flag",
                "evaluations": 1,
                "variations": [],
                "defaults": 1,
                "last_evaluated": usage.flags[
                    "no-such-flag"
                ].last_evaluated.isoformat(),
                "overridden": 0,
            },
        },
        "never_evaluated": sorted(set(FLAGS) - {"banner"}),
    }
    assert datetime.datetime.fromisoformat(data["since"]) == usage.since


@pytest.mark.asyncio
async def test_usage_stops_counting_when_events_are_refused() -> None:
    async with running({"a": flag()}) as (server, client, _):
        server.fail("/bulk", status=401)
        await client.variation("a", USER, False)
        await client.flush()  # refused: events stop for good, counting too
        await client.variation("a", USER, False)
        usage = client.usage()
    assert usage.available and not usage.counting
    assert usage.flags["a"].evaluations == 1


def test_a_read_between_the_slices_of_a_fold_misses_nothing() -> None:
    """A flush folds what it took a slice at a time; usage() may read in between."""
    keys = [f"f{i}" for i in range(1_200)]
    snapshot = snapshot_from_data(
        {key: {**flag(), "key": key, "version": 1} for key in keys}
    )
    recorder = recorder_for(Config("sdk-key"))
    tally = recorder.tally = Tally(0)
    recording = snapshot.recording(recorder)
    for key in keys:
        recording.variation(key, USER, False)
    recording.variation("missing", USER, None)
    assert recorder.take() is not None
    reads = []
    while True:
        more = tally.fold(500)
        reads.append(tally.read(recorder.counted(), 0))
        if not more:
            break
    assert len(reads) == 3  # 1,201 counters: three slices
    for read in reads:
        assert len(read) == 1_201
        assert all(total.evaluations == 1 for total in read.values())
        assert read["f0"].served == [[True, 1]]
        assert read["missing"].defaults == 1


def test_a_flag_serving_new_values_makes_nothing_for_the_collector() -> None:
    """Each total is two tracked objects, whatever its flag serves, and values add up by JSON.

    A tally holds one total per flag evaluated for the client's life: every
    collection of its generation walks them. A flag serving a variation for
    the first time (in a later window) must not make a new one; two
    variations of equal value are one entry, added to by the next version.
    """
    keys = [f"f{i}" for i in range(200)]
    data: dict[str, JSONObject] = {
        key: {
            **flag(
                variations=["a", "b", "a"],
                targets=[
                    {"values": ["u1"], "variation": 1},
                    {"values": ["u2"], "variation": 2},
                ],
            ),
            "key": key,
            "version": 1,
        }
        for key in keys
    }
    snapshot = snapshot_from_data(dict(data))
    recorder = recorder_for(Config("sdk-key"))
    tally = recorder.tally = Tally(0)
    recording = snapshot.recording(recorder)

    def window(context: Context) -> None:
        for key in keys:
            recording.variation(key, context, None)
        assert recorder.take() is not None
        while tally.fold(1_000):
            pass

    window(Context.create("u0"))  # variation 0: "a"
    gc.collect()
    before = {id(o) for o in gc.get_objects()}
    window(USER)  # variation 1 ("b"), first served now
    window(USER)
    window(Context.create("u2"))  # variation 2: "a" again
    made = [o for o in gc.get_objects() if id(o) not in before]
    totals = tally.read([], 0)
    assert [o for o in made if any(o is t for t in totals.values())] == []
    assert not any(
        type(o) is list and len(o) == 2 and o[0] in ("a", "b") for o in made
    ), "an entry made per value served"
    for total in totals.values():
        assert len([o for o in gc.get_referents(total) if type(o) is list]) == 1
        assert total.served == [["a", 2], ["b", 2]]
    # A new version (new objects, equal values reordered): counted by value.
    changed = snapshot_from_data(
        {
            key: {**value, "variations": ["b", "a", "a"], "version": 2}
            for key, value in data.items()
        }
    )
    recording = changed.recording(recorder)
    window(Context.create("u0"))  # variation 0 now: "b"
    assert tally.read([], 0)["f0"].served == [["a", 2], ["b", 3]]
    # A read adds the window not flushed yet to copies: the totals keep theirs.
    recording.variation("f0", USER, None)  # variation 1 now: "a"
    read = tally.read(recorder.counted(), 0)["f0"]
    assert (read.evaluations, read.served) == (6, [["a", 3], ["b", 3]])
    read.served[0][1] = 99
    kept = tally.read([], 0)["f0"]
    assert (kept.evaluations, kept.served) == (5, [["a", 2], ["b", 3]])
    kept.served[0][1] = 99
    assert tally.read([], 0)["f0"].served == [["a", 2], ["b", 3]]


def test_usage_value_is_frozen_and_survives_pickle_and_copy() -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    entry = FlagUsage(
        key="a",
        evaluations=3,
        variations=(VariationUsage(value={"k": [1]}, evaluations=2),),
        defaults=1,
        last_evaluated=now,
    )
    usage = Usage(
        available=True,
        reason=None,
        counting=True,
        since=now,
        flags={"a": entry},
        never_evaluated=frozenset({"b"}),
    )
    with pytest.raises(FrozenInstanceError):
        usage.counting = False
    with pytest.raises(TypeError):
        usage.flags["b"] = entry  # type: ignore[index]
    assert pickle.loads(pickle.dumps(usage)) == usage
    assert copy.deepcopy(usage) == usage
    assert copy.copy(usage) == usage
    assert "FlagUsage(key='a', evaluations=3" in repr(usage)


def test_usage_on_the_blocking_client_counts_every_thread() -> None:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(FlagServer({"a": flag()})) as server,
    ):
        config = server.config(
            data_system=aioflags.DataSystem.streaming(), diagnostic_opt_out=True
        )
        with aioflags.blocking.Client(config) as client:
            assert client.variation("a", USER, False) is True
            assert client.usage().flags["a"].evaluations == 1
            with concurrent.futures.ThreadPoolExecutor(1) as pool:  # another thread
                other = pool.submit(client.variation, "a", OTHER, False)
                assert other.result(BOUND) is True
            client.flush(timeout=BOUND)
            usage = client.usage()
            assert usage.counting
            assert usage.flags["a"].evaluations == 2
        closed = client.usage()  # not started: read in this thread
        assert not closed.counting
        assert closed.flags["a"].evaluations == 2
    events_off = aioflags.blocking.Client(Config(offline=True))
    with events_off:
        assert not events_off.usage().available
