"""A flush encodes its batch a slice at a time: the same bytes, and none lost at close."""

from __future__ import annotations

import datetime
import decimal
import enum
import gzip
import itertools
import json
import math
import random
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from aioflags import Config, Context
from aioflags._analytics import _mend, _processor, _recorder, _summary
from aioflags._analytics._processor import EventProcessor
from aioflags._analytics._recorder import INDEX, Recorder
from aioflags._datasystem._store import snapshot_from_data
from aioflags._evaluation._model import compile_flag
from aioflags.testing import FakeClock
from tests.analytics import flag, formatter_for, recorder_for, running

if TYPE_CHECKING:
    from collections.abc import Callable


pytestmark = pytest.mark.asyncio

FLAGS: dict[str, object] = {
    "plain": {**flag(), "key": "plain", "version": 3},
    "tracked": {**flag(trackEvents=True), "key": "tracked", "version": 1},
}
ANONYMOUS = Context.create("anon", anonymous=True)


def users(n: int) -> list[Context]:
    return [
        Context.create(f"u{i}", name=f"User {i}", attributes={"plan": "pro", "n": i})
        for i in range(n)
    ]


def evaluations(n: int) -> Callable[[Recorder], None]:
    """``n`` new contexts, each evaluating both flags: index, feature, summary."""

    def feed(rec: Recorder) -> None:
        snapshot = snapshot_from_data(FLAGS).recording(rec)
        for context in users(n):
            snapshot.variation("plain", context, False)
            snapshot.variation("tracked", context, False)

    return feed


def identifies(n: int) -> Callable[[Recorder], None]:
    """``n`` identify events: records and no summary."""

    def feed(rec: Recorder) -> None:
        for context in users(n):
            rec.identify(context)

    return feed


def same_context_again(rec: Recorder) -> None:
    """One index event, then counts only: the summary."""
    snapshot = snapshot_from_data(FLAGS).recording(rec)
    context = users(1)[0]
    for _ in range(3):
        snapshot.variation("plain", context, False)


def omitted_in_the_middle(rec: Recorder) -> None:
    """Whole slices of records that format to nothing (omitted anonymous contexts)."""
    evaluations(30)(rec)
    rec._outbox.extend([(INDEX, 1000, ANONYMOUS)] * 120)
    identifies(30)(rec)


MANY = 450  # flags: several summary slices


def many_flags(rec: Recorder) -> None:
    """A summary of many flags, some with several counters for one key.

    Two full transfers (new flag objects, the same versions, then a new
    version of every other flag), two context kinds, off and fallthrough
    variations, the default, and unknown keys among them.
    """
    for transfer in range(2):
        data: dict[str, object] = {
            f"f{i}": {
                **flag(on=i % 3 != 0),
                "key": f"f{i}",
                "version": 1 + transfer * (i % 2),
            }
            for i in range(MANY)
        }
        snapshot = snapshot_from_data(data).recording(rec)
        for kind in ("user", "org"):
            context = Context.create(f"c{transfer}", kind=kind)
            for i in range(MANY):
                snapshot.variation(f"f{i}", context, "default")
                if i % 50 == 0:
                    snapshot.variation(f"missing{i}", context, i)
            snapshot.variation("f1", context, ["another", "default"])


class Level(enum.IntEnum):
    HIGH = 2


#: Variation values of every JSON type, escapes and non-ASCII text included.
VALUES: list[Any] = [
    'caf\u00e9 "quoted" \\ \u2603',
    1.5,
    -0.0,
    10**20,
    None,
    {"nested": ["a", {"b": [1, 2.25, None, True]}], "\u00fc": "\n"},
    [],
]


def varied_values(rec: Recorder) -> None:
    """A summary written flag by flag, each counted once: every kind of value.

    Keys that need escaping, variations of every JSON type, defaults of
    other types (a tuple, an ``IntEnum``), the default served (an off flag
    without an off variation), unknown keys, one and several context kinds.
    """
    data: dict[str, object] = {
        key: {
            **flag(on=i % 4 != 3, variations=VALUES, fallthrough={"variation": i}),
            "key": key,
            "version": 7,
            **({"offVariation": None} if i % 4 == 3 else {}),
        }
        for i, key in enumerate(
            ["plain", 'qu"ote', "\u00e9t\u00e9", "a/b~c", "50%", "y"]
        )
    }
    snapshot = snapshot_from_data(data).recording(rec)
    multi = Context.create_multi(Context.create("m", kind="org"), Context.create("m"))
    defaults: list[Any] = [False, ("a", 1), Level.HIGH, 2.5, "d\u00e9faut", None]
    for context in (Context.create("u"), Context.create("d", kind="device"), multi):
        for key, default in zip(data, defaults, strict=True):
            snapshot.variation(key, context, default)
        snapshot.variation("missing \u2603", context, defaults[1])


CASES: dict[str, tuple[Callable[[Recorder], None], dict[str, Any]]] = {
    "many-slices": (evaluations(130), {}),
    "one-slice": (evaluations(10), {}),
    "no-summary": (identifies(120), {}),
    "summary-only": (same_context_again, {}),
    "many-flags": (many_flags, {}),
    "varied-values": (varied_values, {}),
    "omitted-slices": (omitted_in_the_middle, {"omit_anonymous_contexts": True}),
    "gzip-on-a-thread": (evaluations(400), {"compress_events": True}),
    "gzip-on-the-loop": (identifies(3), {"compress_events": True}),
}


@pytest.mark.parametrize("group_slice", [_processor._GROUP_SLICE, 7])
@pytest.mark.parametrize("case", list(CASES))
async def test_a_payload_is_the_json_of_every_event_byte_for_byte(
    case: str, group_slice: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sliced encoding gives what one ``json.dumps`` of the batch gave.

    Also with the summary's counters grouped by key a few at a time (a
    key's counters then span groups).
    """
    monkeypatch.setattr(_processor, "_GROUP_SLICE", group_slice)
    feed, options = CASES[case]
    config = Config("k", **options)

    reference = recorder_for(config, now_ms=lambda: 1000)
    feed(reference)
    batch = reference.take()
    assert batch is not None
    events = formatter_for(config).events(batch)
    expected = json.dumps(events, separators=(",", ":"), allow_nan=False).encode()

    processor = EventProcessor(
        config,
        None,
        None,  # not attached: only the encoding runs
        FakeClock(),
        random.Random(0),
        now_ms=lambda: 1000,
    )
    feed(processor.recorder)
    payload = await processor._take()
    assert payload is not None
    body = gzip.decompress(payload.body) if config.compress_events else payload.body
    assert body == expected
    assert payload.count == len(events)
    if case == "many-slices":
        assert len(batch.records) > 4 * _processor._ENCODE_SLICE
    if case == "gzip-on-a-thread":
        assert len(expected) >= _processor._THREAD_GZIP_BYTES
    if case == "many-flags":
        assert len(batch.counters) > 4 * _processor._SUMMARY_SLICE
        assert len(batch.counters) > len(events[-1]["features"])  # merged rows


async def test_flush_after_flush_the_summary_is_the_same_json() -> None:
    """Flush after flush over the same flag objects, from one writer.

    Each window serves other variations (a row appears, goes), the default
    (a row of its own), other defaults and kinds, and a flag of the next
    transfer (new objects) beside the old ones.
    """
    config = Config("k")
    reference = recorder_for(config, now_ms=lambda: 1000)
    processor = EventProcessor(
        config, None, None, FakeClock(), random.Random(0), now_ms=lambda: 1000
    )
    data: dict[str, Any] = {
        f"f{i}": {
            **flag(variations=VALUES, offVariation=None),
            "key": f"f{i}",
            "version": 2,
            "rules": [
                {
                    "id": f"r{j}",
                    "variation": j,
                    "clauses": [{"attribute": "n", "op": "in", "values": [j]}],
                }
                for j in range(len(VALUES))
            ],
        }
        for i in range(30)
    }
    old = snapshot_from_data(data)
    new = snapshot_from_data({**data, "f0": {**data["f0"], "on": False}})
    windows = [
        (old, [0], "user", False),
        (old, [*range(len(VALUES))], "user", True),
        (old, [0, 1, 6], "user", False),
        (old, [6, 2], "org", "default"),
        (old, [3, 4, 5], "user", None),
        (new, [1], "user", False),
    ]
    for snapshot, served, kind, default in windows:
        for recorder in (reference, processor.recorder):
            recording = snapshot.recording(recorder)
            for n in served:
                context = Context.create(f"c{n}", kind=kind, attributes={"n": n})
                for key in data:
                    recording.variation(key, context, default)
        batch = reference.take()
        assert batch is not None
        events = formatter_for(config).events(batch)
        assert events[-1]["kind"] == "summary"
        payload = await processor._take()
        assert payload is not None
        assert payload.body == json.dumps(events, separators=(",", ":")).encode()


async def test_the_events_are_encoded_a_slice_at_a_time_with_a_checkpoint_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between two checkpoints, at most ``_ENCODE_SLICE`` events are encoded."""
    steps: list[int | None] = []  # events encoded by one _dumps; None: a checkpoint
    dumps = _processor._dumps

    def counting_dumps(events: list[Any]) -> tuple[bytes, list[str]]:
        steps.append(len(events))
        return dumps(events)

    async def checkpoint() -> None:
        steps.append(None)

    monkeypatch.setattr(_processor, "_dumps", counting_dumps)
    monkeypatch.setattr(_processor, "checkpoint", checkpoint)
    config = Config("k")
    processor = EventProcessor(config, None, None, FakeClock(), random.Random(0))
    evaluations(130)(processor.recorder)  # 260 index and feature events
    payload = await processor._take()
    assert payload is not None
    encoded = [n for n in steps if n is not None]
    assert sum(encoded) == len(json.loads(payload.body)) - 1  # and the summary
    assert len(encoded) > 4
    assert max(encoded) <= _processor._ENCODE_SLICE
    # No two slices without a checkpoint between them.
    assert all(a is None or b is None for a, b in itertools.pairwise(steps)), steps


async def test_a_summary_of_many_flags_is_encoded_a_slice_of_flags_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between two checkpoints, at most ``_SUMMARY_SLICE`` flags are formatted."""
    formatted: list[int] = []
    at_checkpoints: list[int] = []

    entries = _summary.SummaryWriter.entries

    def counting_entries(
        self: _summary.SummaryWriter, groups: list[Any], odd: list[str]
    ) -> str:
        formatted.append(len(groups))
        return entries(self, groups, odd)

    async def checkpoint() -> None:
        at_checkpoints.append(sum(formatted))

    monkeypatch.setattr(_summary.SummaryWriter, "entries", counting_entries)
    monkeypatch.setattr(_processor, "checkpoint", checkpoint)
    config = Config("k")
    processor = EventProcessor(config, None, None, FakeClock(), random.Random(0))
    snapshot = snapshot_from_data(
        {f"f{i}": {**flag(), "key": f"f{i}", "version": 1} for i in range(MANY)}
    ).recording(processor.recorder)
    context = Context.create("u")
    for i in range(MANY):
        snapshot.variation(f"f{i}", context, False)
    payload = await processor._take()
    assert payload is not None
    (*_, summary) = json.loads(payload.body)
    assert len(summary["features"]) == MANY
    assert sum(formatted) == MANY
    steps = [b - a for a, b in itertools.pairwise([0, *at_checkpoints, MANY])]
    assert max(steps) <= _processor._SUMMARY_SLICE


async def test_a_default_that_is_not_json_is_sent_as_null_with_every_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Changed after it was counted, or never JSON: the counts are all sent."""
    processor = EventProcessor(Config("k"), None, None, FakeClock(), random.Random(0))
    snapshot = snapshot_from_data(
        {key: {**flag(), "key": key, "version": 1} for key in ("a", "b", "c", "d")}
    ).recording(processor.recorder)
    context = Context.create("u")
    default: dict[str, Any] = {}
    snapshot.variation("a", context, False)
    snapshot.variation("b", context, default)
    snapshot.variation("c", context, False)
    for _ in range(3):
        snapshot.variation("d", context, decimal.Decimal("1.5"))
    default["when"] = object()  # the caller's dict, shared
    payload = await processor._take()
    assert payload is not None
    (*_, summary) = json.loads(payload.body)
    features = summary["features"]
    assert list(features) == ["a", "b", "c", "d"]
    assert features["b"]["default"] == {"when": None}
    assert features["d"]["default"] is None
    assert [c["count"] for c in features["d"]["counters"]] == [3]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        "2 analytics value(s) sent as null: not JSON (object, Decimal). Context "
        "attributes, defaults and event data must be JSON values"
    )


async def test_a_variation_that_is_not_json_is_sent_as_null_at_every_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Flag data made in code may hold one: named at each flush that counts it."""
    processor = EventProcessor(Config("k"), None, None, FakeClock(), random.Random(0))
    odd = {**flag(variations=[decimal.Decimal("1.5"), 2]), "key": "odd", "version": 1}
    snapshot = snapshot_from_data({"odd": odd}).recording(processor.recorder)
    for _ in range(2):
        snapshot.variation("odd", Context.create("u"), 0)
        payload = await processor._take()
        assert payload is not None
        (*_, summary) = json.loads(payload.body)
        assert summary["features"]["odd"]["counters"] == [
            {"variation": 0, "version": 1, "value": None, "count": 1}
        ]
        (warning,) = [r.getMessage() for r in caplog.records]
        assert "1 analytics value(s) sent as null: not JSON (Decimal)" in warning
        caplog.clear()


async def test_past_their_bound_kinds_are_neither_shared_nor_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kinds are the application's to name: what is kept of them is bounded."""
    monkeypatch.setattr(_recorder, "_KINDS_KEPT", 0)
    monkeypatch.setattr(_summary, "_KINDS_KEPT", 0)
    processor = EventProcessor(Config("k"), None, None, FakeClock(), random.Random(0))
    flags: dict[str, object] = {
        key: {**flag(), "key": key, "version": 1} for key in ("a", "b")
    }
    snapshot = snapshot_from_data(flags).recording(processor.recorder)
    for kind in ("k1", "k2"):
        snapshot.variation("a", Context.create("u", kind=kind), False)
        snapshot.variation("b", Context.create("u", kind=kind), False)
        payload = await processor._take()
        assert payload is not None
        (*_, summary) = json.loads(payload.body)
        assert [f["contextKinds"] for f in summary["features"].values()] == [[kind]] * 2
        assert processor._summary_writer._kinds == {}


async def test_context_attributes_that_are_not_json_are_sent_as_null(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The event is sent; only the values that JSON cannot hold become null."""
    processor = EventProcessor(Config("k"), None, None, FakeClock(), random.Random(0))
    attributes = {
        "score": float("nan"),
        "when": datetime.datetime(2026, 1, 1),
        "tags": {"a", "b"},
        "nested": {"ok": 1, "inf": float("inf"), "list": [1, decimal.Decimal(2)]},
        "plain": "kept",
    }
    context = Context.create("u-odd", attributes=attributes)
    assert context.valid
    processor.identify(context)
    payload = await processor._take()
    assert payload is not None
    (identify,) = [e for e in json.loads(payload.body) if e["kind"] == "identify"]
    assert identify["context"] == {
        "kind": "user",
        "key": "u-odd",
        "score": None,
        "when": None,
        "tags": None,
        "nested": {"ok": 1, "inf": None, "list": [1, None]},
        "plain": "kept",
    }
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "5 analytics value(s) sent as null: not JSON (float nan, datetime, " in (
        warning
    )


async def test_a_circular_or_too_deep_value_costs_only_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cycle (json.dumps: ValueError) and nesting past the mending's depth."""
    processor = EventProcessor(Config("k"), None, None, FakeClock(), random.Random(0))
    loop: list[Any] = [1]
    loop.append(loop)
    deep: list[Any] = [{"a", "set"}]  # not JSON at the bottom: always mended
    for _ in range(5000):
        deep = [deep]
    processor.identify(Context.create("looped", attributes={"loop": loop}))
    processor.identify(Context.create("deep", attributes={"deep": deep}))
    processor.identify(Context.create("plain"))
    payload = await processor._take()
    assert payload is not None
    sent = {
        e["context"]["key"]: e["context"]
        for e in json.loads(payload.body)
        if e["kind"] == "identify"
    }
    assert set(sent) == {"looped", "deep", "plain"}
    assert sent["looped"]["loop"] == [1, None]
    depth, level = 0, sent["deep"]["deep"]
    while isinstance(level, list):
        depth, level = depth + 1, level[0] if level else None
    assert depth == _mend.MEND_DEPTH - 2  # the event and its context: two
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "a container inside itself, nesting deeper than 64" in warning


async def test_an_event_json_dumps_finds_too_deep_is_sent_as_mended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RecursionError from json.dumps (its depth differs by Python) loses nothing."""
    processor = EventProcessor(Config("k"), None, None, FakeClock(), random.Random(0))
    processor.identify(Context.create("u"))
    dumps = json.dumps
    raised: list[bool] = []

    def too_deep_once(value: Any, **options: Any) -> str:
        if not raised:
            raised.append(True)
            raise RecursionError("maximum recursion depth exceeded while encoding")
        return dumps(value, **options)

    monkeypatch.setattr(json, "dumps", too_deep_once)  # the module _processor uses
    payload = await processor._take()
    monkeypatch.undo()
    assert payload is not None and raised
    kinds = [e["kind"] for e in json.loads(payload.body)]
    assert kinds == ["identify"]


@pytest.mark.parametrize("metric", [float("nan"), float("inf"), -float("inf")])
async def test_a_metric_value_that_is_not_finite_is_left_out_and_said(
    caplog: pytest.LogCaptureFixture, metric: float
) -> None:
    processor = EventProcessor(Config("k"), None, None, FakeClock(), random.Random(0))
    processor.track("checkout", Context.create("u"), {"n": 1}, metric)
    payload = await processor._take()
    assert payload is not None
    (custom,) = [e for e in json.loads(payload.body) if e["kind"] == "custom"]
    assert custom["data"] == {"n": 1} and "metricValue" not in custom
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning == (
        f"track('checkout'): metric_value must be a finite number, got {metric!r}; "
        "the event is sent without it"
    )


async def test_closing_during_a_flush_still_sends_the_whole_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client closes while a big batch is between two slices: none of it is lost."""
    between_slices, go_on = anyio.Event(), anyio.Event()

    async def checkpoint() -> None:
        between_slices.set()
        await go_on.wait()  # the close is delivered here, unless shielded

    monkeypatch.setattr(_processor, "checkpoint", checkpoint)
    contexts = users(3 * _processor._ENCODE_SLICE)
    async with running({"f": flag()}) as (server, client, _):
        for context in contexts:
            await client.variation("f", context, False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.flush)
            await between_slices.wait()
            tg.start_soon(client.aclose)
            await anyio.wait_all_tasks_blocked()  # the close waits for the sender
            go_on.set()
    (payload,) = server.event_payloads
    assert [e["context"]["key"] for e in payload if e["kind"] == "index"] == [
        c.key for c in contexts
    ]
    assert payload[-1]["kind"] == "summary"


@pytest.mark.slow
async def test_a_batch_being_encoded_at_close_is_counted_if_not_delivered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The close's warning counts the batch the sender was still encoding."""
    between_slices, go_on = anyio.Event(), anyio.Event()

    async def checkpoint() -> None:
        between_slices.set()
        await go_on.wait()

    monkeypatch.setattr(_processor, "checkpoint", checkpoint)
    contexts = users(3 * _processor._ENCODE_SLICE)
    async with running({"f": flag()}) as (server, client, _):
        server.fail("/bulk", hang=True)
        for context in contexts:
            await client.variation("f", context, False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.flush)
            await between_slices.wait()
            tg.start_soon(client.aclose)
            await anyio.wait_all_tasks_blocked()  # the close waits for the sender
            go_on.set()
    assert len(server.requests_to("/bulk")) == 1  # no final batch: nothing new
    # An index event per context, and the summary.
    assert f"{len(contexts) + 1} of {len(contexts) + 1} analytics" in caplog.text


async def test_a_recycled_counter_writes_its_rows_as_the_first_flush_did() -> None:
    """A counter's rows are written from the heads kept (issue 59), byte for byte.

    A row whose value is not JSON is not kept: its value is named in
    ``odd`` at every flush, as before.
    """
    flag = compile_flag(
        "f", {"key": "f", "version": 3, "on": True, "variations": [math.nan, "b"]}
    )
    counter = _recorder.Counter(flag, "d")
    counter.counts[:] = [2, 5]
    writer = _summary.SummaryWriter()
    texts, odds = [], []
    for _ in range(2):
        odd: list[str] = []
        texts.append(writer.entries([("f", counter)], odd))
        odds.append(odd)
    assert texts[0] == texts[1]
    assert odds[0] == odds[1] != []
    assert counter.heads is not None
    assert counter.heads[0] is None and counter.heads[1] is not None
    assert json.loads("{" + texts[0] + "}")["f"]["counters"] == [
        {"variation": 0, "version": 3, "value": None, "count": 2},
        {"variation": 1, "version": 3, "value": "b", "count": 5},
    ]
