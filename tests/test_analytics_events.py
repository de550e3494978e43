"""Analytics events end to end: a client posting to a FlagServer on 127.0.0.1 (events.md §3-§8)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from aioflags import Context
from aioflags._core._clock import wall_ms
from tests.analytics import by_kind, flag, running

pytestmark = pytest.mark.asyncio

USER = Context.create("u1", name="Ann", attributes={"plan": "pro"})
USER_JSON = {"kind": "user", "key": "u1", "name": "Ann", "plan": "pro"}


@pytest.fixture
def now_ms() -> int:
    """The local clock, to place debug windows hours away from it."""
    return wall_ms()


def counters(summary: dict, key: str) -> list[dict]:  # type: ignore[type-arg]
    return summary["features"][key]["counters"]  # type: ignore[no-any-return]


async def test_tracked_flag_gives_index_feature_and_summary_events() -> None:
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        assert await client.bool_variation("f", USER, False) is True
        await client.flush()
        events = by_kind(server.events)
    assert [e["kind"] for e in server.events] == ["index", "feature", "summary"]
    (index,) = events["index"]
    assert index["context"] == USER_JSON
    (feature,) = events["feature"]
    assert feature == {
        "kind": "feature",
        "creationDate": index["creationDate"],
        "key": "f",
        "version": 1,
        "context": USER_JSON,
        "value": True,
        "variation": 0,
        "default": False,
    }
    (summary,) = events["summary"]
    assert summary["startDate"] <= summary["endDate"]
    assert summary["features"] == {
        "f": {
            "default": False,
            "contextKinds": ["user"],
            "counters": [{"variation": 0, "version": 1, "value": True, "count": 1}],
        }
    }


async def test_detail_methods_add_the_reason_to_feature_events() -> None:
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        await client.variation_detail("f", USER, False)
        await client.string_variation_detail("f", USER, "x")  # WRONG_TYPE
        await client.flush()
        features = by_kind(server.events)["feature"]
    assert features[0]["reason"] == {"kind": "FALLTHROUGH"}
    assert features[1]["reason"] == {"kind": "ERROR", "errorKind": "WRONG_TYPE"}
    assert features[1]["value"] == "x"
    assert "variation" not in features[1]


async def test_untracked_flag_gives_only_index_and_summary() -> None:
    async with running({"f": flag()}) as (server, client, _):
        await client.variation("f", USER, False)
        await client.flush()
    assert [e["kind"] for e in server.events] == ["index", "summary"]


async def test_summary_counters_for_every_evaluation_path() -> None:
    flags = {
        "served": flag(version=3),
        "no-off-variation": flag(on=False, offVariation=None),
        "parent": flag(prerequisites=[{"key": "prereq", "variation": 0}]),
        "prereq": flag(),
    }
    async with running(flags) as (server, client, _):
        await client.variation("served", USER, False)
        await client.variation("served", USER, False)
        await client.string_variation("served", USER, "dflt")  # wrong type
        await client.variation("missing", USER, "dflt")  # unknown flag
        await client.variation("no-off-variation", USER, "off-default")
        await client.variation("parent", USER, False)
        await client.flush()
        (summary,) = by_kind(server.events)["summary"]
    version = server.flags["served"]["version"]
    assert counters(summary, "served") == [
        {"variation": 0, "version": version, "value": True, "count": 2},
        # the wrong type's row: the value it returned, as its feature event
        {"version": version, "value": "dflt", "count": 1},
    ]
    assert counters(summary, "missing") == [
        {"unknown": True, "value": "dflt", "count": 1}
    ]
    assert summary["features"]["missing"]["default"] == "dflt"
    (off,) = counters(summary, "no-off-variation")
    assert "variation" not in off and off["value"] == "off-default"
    assert counters(summary, "parent")[0]["count"] == 1
    assert counters(summary, "prereq")[0]["count"] == 1  # counted as a prerequisite


async def test_invalid_context_makes_no_event() -> None:
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        await client.variation("f", Context.create(""), False)
        await client.variation("f", None, False)
        await client.flush()
    assert server.events == []
    assert server.requests_to("/bulk") == []


async def test_two_versions_of_a_flag_give_two_counters() -> None:
    async with running({"f": flag()}) as (server, client, _):
        changed = anyio.Event()
        client.add_flag_change_handler(lambda keys: changed.set())
        await client.variation("f", USER, False)
        server.set_flag("f", flag(fallthrough={"variation": 1}))
        await changed.wait()
        await client.variation("f", USER, False)
        await client.flush()
        (summary,) = by_kind(server.events)["summary"]
    rows = counters(summary, "f")
    assert [(r["variation"], r["count"]) for r in rows] == [(0, 1), (1, 1)]
    assert rows[0]["version"] < rows[1]["version"]


async def test_summary_is_reset_after_each_flush() -> None:
    async with running({"f": flag()}) as (server, client, _):
        await client.variation("f", USER, False)
        await client.flush()
        await client.flush()  # nothing new: nothing sent
        await client.variation("f", USER, False)
        await client.flush()
        payloads = server.event_payloads
    assert len(payloads) == 2
    assert [e["kind"] for e in payloads[1]] == ["summary"]  # context already seen
    assert counters(payloads[1][0], "f")[0]["count"] == 1


async def test_multi_kind_context_kinds_are_listed() -> None:
    org = Context.create("o1", "org")
    multi = Context.create_multi(USER, org)
    async with running({"f": flag()}) as (server, client, _):
        await client.variation("f", multi, False)
        await client.variation("f", org, False)
        await client.flush()
        events = by_kind(server.events)
    assert events["summary"][0]["features"]["f"]["contextKinds"] == ["org", "user"]
    assert [e["context"]["kind"] for e in events["index"]] == ["multi", "org"]


# ------------------------------------------------------------ prerequisites
async def test_prerequisite_events_come_first_with_prereq_of_and_no_default() -> None:
    flags = {
        "top": flag(trackEvents=True, prerequisites=[{"key": "mid", "variation": 0}]),
        "mid": flag(trackEvents=True, prerequisites=[{"key": "leaf", "variation": 0}]),
        "leaf": flag(trackEvents=True),
    }
    async with running(flags) as (server, client, _):
        await client.variation_detail("top", USER, False)
        await client.flush()
        features = by_kind(server.events)["feature"]
    assert [(f["key"], f.get("prereqOf")) for f in features] == [
        ("leaf", "mid"),
        ("mid", "top"),
        ("top", None),
    ]
    assert "default" not in features[0] and "default" not in features[1]
    assert features[2]["default"] is False
    assert all("reason" in f for f in features)  # the top call was *_detail


async def test_a_shared_prerequisite_is_reported_for_each_flag_that_required_it() -> (
    None
):
    # Each flag that is not plain has its own counting matcher (per
    # snapshot), sharing the prerequisites' counting heads: each
    # evaluation's prerequisite event names the flag evaluated, both
    # methods, in turn. (The prerequisite has targets: a flag that runs,
    # checked inline, not a constant one, which the walk counts.)
    flags = {
        "a": flag(prerequisites=[{"key": "p", "variation": 0}]),
        "b": flag(prerequisites=[{"key": "p", "variation": 0}]),
        "p": flag(trackEvents=True, targets=[{"values": ["x"], "variation": 1}]),
    }
    async with running(flags) as (server, client, _):
        await client.variation("a", USER, False)
        await client.variation("b", USER, False)
        await client.variation_detail("a", USER, False)
        await client.variation_detail("b", USER, False)
        await client.variation("a", USER, False)
        await client.flush()
        events = by_kind(server.events)
    features = events["feature"]
    assert [(f["key"], f["prereqOf"], "reason" in f) for f in features] == [
        ("p", "a", False),
        ("p", "b", False),
        ("p", "a", True),
        ("p", "b", True),
        ("p", "a", False),
    ]
    (summary,) = events["summary"]
    assert counters(summary, "p")[0]["count"] == 5


async def test_off_prerequisite_is_recorded_and_prerequisites_of_an_off_flag_are_not() -> (
    None
):
    flags = {
        "parent": flag(prerequisites=[{"key": "off-prereq", "variation": 0}]),
        "off-prereq": flag(on=False, trackEvents=True),
        "off-parent": flag(on=False, prerequisites=[{"key": "leaf", "variation": 0}]),
        "leaf": flag(trackEvents=True),
    }
    async with running(flags) as (server, client, _):
        await client.variation("parent", USER, True)
        await client.variation("off-parent", USER, True)
        await client.flush()
        events = by_kind(server.events)
    (feature,) = events["feature"]
    assert feature["key"] == "off-prereq" and feature["prereqOf"] == "parent"
    assert feature["variation"] == 1
    assert "leaf" not in events["summary"][0]["features"]


# -------------------------------------------------------------- experiments
async def test_experiments_carry_their_reason_even_from_plain_variation() -> None:
    flags = {
        "rule": flag(
            rules=[
                {
                    "id": "rule1",
                    "variation": 0,
                    "trackEvents": True,
                    "clauses": [{"attribute": "key", "op": "in", "values": ["u1"]}],
                }
            ]
        ),
        "fallthrough": flag(trackEventsFallthrough=True),
        "experiment": flag(
            fallthrough={
                "rollout": {
                    "kind": "experiment",
                    "variations": [{"variation": 0, "weight": 100000}],
                }
            }
        ),
    }
    async with running(flags) as (server, client, _):
        for key in flags:
            await client.variation(key, USER, False)
        await client.flush()
        features = {f["key"]: f for f in by_kind(server.events)["feature"]}
    assert features["rule"]["reason"] == {
        "kind": "RULE_MATCH",
        "ruleIndex": 0,
        "ruleId": "rule1",
    }
    assert features["fallthrough"]["reason"] == {"kind": "FALLTHROUGH"}
    assert features["experiment"]["reason"] == {
        "kind": "FALLTHROUGH",
        "inExperiment": True,
    }


# ----------------------------------------------------------- deduplication
async def test_a_context_is_indexed_once_per_window() -> None:
    options: dict[str, Any] = {
        "flush_interval": 5.0,
        "context_keys_flush_interval": 10.0,
    }
    async with running({"f": flag()}, **options) as (server, client, clock):
        await client.variation("f", Context.create("u1"), False)
        await client.variation("f", Context.create("u1"), False)  # another object
        await client.variation("f", Context.create("u2"), False)
        await client.flush()
        assert len(server.events_of("index")) == 2
        await clock.advance(10.0)  # the ticker forgets the contexts
        await client.variation("f", Context.create("u1"), False)
        await client.flush()
    assert [e["context"]["key"] for e in server.events_of("index")] == [
        "u1",
        "u2",
        "u1",
    ]


async def test_contexts_are_forgotten_on_their_own_schedule_when_it_is_shorter() -> (
    None
):
    """``context_keys_flush_interval`` below ``flush_interval`` is not rounded up."""
    options: dict[str, Any] = {
        "flush_interval": 60.0,
        "context_keys_flush_interval": 2.0,
    }
    async with running({"f": flag()}, **options) as (server, client, clock):
        await client.variation("f", USER, False)
        await clock.advance(2.0)  # the ticker forgets the contexts
        await client.variation("f", USER, False)
        await clock.advance(2.0)
        await client.variation("f", USER, False)
        await client.variation("f", USER, False)  # seen in this window
        assert server.event_payloads == []
        await clock.advance(56.0)  # and flushes on its own schedule
        events = await server.wait_for_payloads()
    assert len(server.event_payloads) == 1
    assert [e["kind"] for e in events[0]] == ["index", "index", "index", "summary"]


async def test_context_keys_capacity_bounds_the_memory() -> None:
    async with running({"f": flag()}, context_keys_capacity=2) as (server, client, _):
        for key in ("a", "b", "c", "a"):  # "a" was forgotten to make room for "c"
            await client.variation("f", Context.create(key), False)
        await client.flush()
    assert [e["context"]["key"] for e in server.events_of("index")] == [
        "a",
        "b",
        "c",
        "a",
    ]


async def test_identify_makes_the_index_event_unnecessary() -> None:
    async with running() as (server, client, _):
        client.identify(USER)
        client.track("checkout", USER)
        await client.flush()
    assert [e["kind"] for e in server.events] == ["identify", "custom"]


# ---------------------------------------------------------- custom, identify
async def test_custom_event_fields() -> None:
    async with running() as (server, client, _):
        client.track("with-data", USER, data={"cart": 3}, metric_value=42.5)
        client.track("plain", USER)
        await client.flush()
        events = by_kind(server.events)
    first, second = events["custom"]
    assert first == {
        "kind": "custom",
        "creationDate": first["creationDate"],
        "key": "with-data",
        "context": USER_JSON,
        "data": {"cart": 3},
        "metricValue": 42.5,
    }
    assert "data" not in second and "metricValue" not in second
    assert events["index"][0]["context"] == USER_JSON


async def test_identify_event_fields() -> None:
    async with running() as (server, client, _):
        client.identify(USER)
        await client.flush()
    (event,) = by_kind(server.events)["identify"]
    assert event["context"] == USER_JSON
    assert isinstance(event["creationDate"], int)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.track("", USER),
        lambda c: c.track(3, USER),
        lambda c: c.track("k", "not a context"),
        lambda c: c.track("k", Context.create("")),
        lambda c: c.track("k", USER, data=object()),
        lambda c: c.identify(None),
        lambda c: c.identify(Context.create("")),
    ],
    ids=[
        "empty-key",
        "int-key",
        "str-context",
        "invalid-context",
        "data-not-json",
        "identify-none",
        "identify-invalid",
    ],
)
async def test_track_and_identify_never_raise(call, caplog) -> None:  # type: ignore[no-untyped-def]
    async with running() as (server, client, _):
        call(client)
        await client.flush()
    assert server.events == []
    assert "dropped" in caplog.text


async def test_a_non_numeric_metric_value_is_left_out() -> None:
    async with running() as (server, client, _):
        client.track("k", USER, metric_value="3")  # type: ignore[arg-type]
        await client.flush()
    assert "metricValue" not in server.events_of("custom")[0]


# ------------------------------------------------------------ debug events
async def test_debug_window_open_gives_a_debug_event(now_ms: int) -> None:
    hour = 3_600_000
    flags = {"f": flag(debugEventsUntilDate=now_ms + hour)}
    async with running(flags) as (server, client, _):
        await client.variation("f", USER, False)
        await client.flush()
        events = by_kind(server.events)
    (debug,) = events["debug"]
    assert debug["key"] == "f" and debug["value"] is True and debug["default"] is False
    assert "reason" not in debug
    assert "feature" not in events  # debugging does not make it tracked


async def test_debug_window_in_the_past_gives_none(now_ms: int) -> None:
    flags = {"f": flag(debugEventsUntilDate=now_ms - 3_600_000)}
    async with running(flags) as (server, client, _):
        await client.variation("f", USER, False)
        await client.flush()
    assert "debug" not in by_kind(server.events)


async def test_debug_window_closed_by_the_server_clock(now_ms: int) -> None:
    """The local clock says the window is open; the event recorder's Date says not."""
    hour = 3_600_000
    flags = {"f": flag(debugEventsUntilDate=now_ms + hour)}
    async with running(flags) as (server, client, _):
        server.clock_skew = 2 * 3600.0  # the server's clock is two hours ahead
        client.identify(USER)
        await client.flush()  # the SDK learns the server's time from the response
        await client.variation("f", USER, False)
        await client.flush()
    assert "debug" not in by_kind(server.events)


async def test_tracked_flag_in_a_debug_window_gives_both(now_ms: int) -> None:
    flags = {"f": flag(trackEvents=True, debugEventsUntilDate=now_ms + 3_600_000)}
    async with running(flags) as (server, client, _):
        await client.variation_detail("f", USER, False)
        await client.flush()
        events = by_kind(server.events)
    assert len(events["feature"]) == len(events["debug"]) == 1
    assert events["debug"][0]["reason"] == {"kind": "FALLTHROUGH"}


# ------------------------------------------------- sampling and exclusion
async def test_sampling_ratio_zero_suppresses_feature_and_debug_events(
    now_ms: int,
) -> None:
    flags = {
        "f": flag(
            trackEvents=True,
            samplingRatio=0,
            debugEventsUntilDate=now_ms + 3_600_000,
        )
    }
    async with running(flags) as (server, client, _):
        await client.variation("f", USER, False)
        await client.flush()
    assert [e["kind"] for e in server.events] == ["index", "summary"]


@pytest.mark.parametrize("ratio", [1, None], ids=["one", "null"])
async def test_sampling_ratio_one_or_absent_always_sends(ratio: int | None) -> None:
    async with running({"f": flag(trackEvents=True, samplingRatio=ratio)}) as (
        server,
        client,
        _,
    ):
        for _ in range(5):
            await client.variation("f", USER, False)
        await client.flush()
    assert len(server.events_of("feature")) == 5


async def test_sampling_ratio_sends_about_one_in_ratio() -> None:
    async with running({"f": flag(trackEvents=True, samplingRatio=4)}, seed=7) as (
        server,
        client,
        _,
    ):
        for _ in range(400):
            await client.variation("f", USER, False)
        await client.flush()
        sent = len(server.events_of("feature"))
        (summary,) = server.events_of("summary")
    assert 60 < sent < 140  # ~100 (a seeded random source: the same every run)
    assert counters(summary, "f")[0]["count"] == 400  # summaries are not sampled


async def test_excluded_flag_is_left_out_of_the_summary_only() -> None:
    flags = {
        "f": flag(trackEvents=True, excludeFromSummaries=True),
        "parent": flag(prerequisites=[{"key": "p", "variation": 0}]),
        "p": flag(excludeFromSummaries=True),
    }
    async with running(flags) as (server, client, _):
        await client.variation("f", USER, False)
        await client.variation("parent", USER, False)
        await client.flush()
        events = by_kind(server.events)
    assert len(events["feature"]) == 1
    assert set(events["summary"][0]["features"]) == {"parent"}


# ------------------------------------------------------------- the switch
async def test_no_events_when_send_events_is_off() -> None:
    async with running({"f": flag(trackEvents=True)}, send_events=False) as (
        server,
        client,
        _,
    ):
        await client.variation("f", USER, False)
        client.track("k", USER)
        client.identify(USER)
        await client.flush()
    assert server.requests_to("/bulk") == []
    assert server.requests_to("/diagnostic") == []


async def test_all_flags_state_makes_no_events() -> None:
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        await client.all_flags_state(USER)
        await client.flush()
    assert server.events == []


async def test_closing_the_client_flushes() -> None:
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        await client.variation("f", USER, False)
        client.track("k", USER)
    assert [e["kind"] for e in server.events] == [
        "index",
        "feature",
        "custom",
        "summary",
    ]


async def test_the_snapshot_s_sync_face_records_too() -> None:
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        snapshot = client.snapshot()
        snapshot.variation("f", USER, False)
        snapshot.int_variation_detail("f", USER, 0)
        await client.flush()
    assert len(server.events_of("feature")) == 2
