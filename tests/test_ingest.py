"""Ingest that never blocks the loop: sliced parsing, cold flags, overlays (no timings)."""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import gc
import json
import logging
import pickle
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import pytest

import aioflags._core._json
import aioflags._core._pacing
import aioflags._datasystem._payloads
import aioflags._datasystem._store
import aioflags._evaluation._model
import aioflags._evaluation._tables
from aioflags import (
    Client,
    Config,
    Context,
    EvaluationSeriesContext,
    Hook,
    HookMetadata,
)
from aioflags._client._evaluator import Evaluator
from aioflags._client._hooks import HookRunner
from aioflags._client._http import make_http_client
from aioflags._client._transport import LazyTLSTransport
from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import RAW_EVENT
from aioflags._core._pacing import MAX_OBJECTS, Pacer
from aioflags._datasystem._patterns import compile_patterns
from aioflags._datasystem._payloads import (
    fdv1_full,
    fdv1_patch,
    parse_fdv2_poll,
    parse_fdv2_poll_stream,
    parse_fdv2_poll_text,
)
from aioflags._datasystem._store import Store
from aioflags._evaluation._model import CompiledFlag
from aioflags._evaluation._pipeline import PLAIN
from aioflags._evaluation._tables import Layered, Table
from aioflags.sources import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    Selector,
    SourceContext,
    SourceState,
    Update,
)
from aioflags.testing import FlagServer

USER = Context.create("user-1")


def made(flags: Mapping[str, CompiledFlag], key: str) -> bool:
    """Whether the snapshot's table has compiled flag ``key`` (a lookup compiles it)."""
    if isinstance(flags, Layered):
        if key in flags.overlay.entries:
            return key in flags.overlay.hot
        flags = flags.base
    assert isinstance(flags, Table)
    return key in flags.hot


def flag(key: str, version: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "version": version,
        "on": True,
        "variations": ["a", "b"],
        "fallthrough": {"variation": 0},
        "offVariation": 1,
        **extra,
    }


def segment(
    key: str, version: int = 1, included: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {"key": key, "version": version, "included": list(included), "salt": "s"}


def poll_body(
    flags: dict[str, Any],
    segments: dict[str, Any] | None = None,
    intent: str = "xfer-full",
) -> str:
    events: list[dict[str, Any]] = [
        {
            "event": "server-intent",
            "data": {"payloads": [{"id": "p", "target": 1, "intentCode": intent}]},
        }
    ]
    for kind, items in (("flag", flags), ("segment", segments or {})):
        events += [
            {
                "event": "put-object",
                "data": {"kind": kind, "key": k, "version": o["version"], "object": o},
            }
            for k, o in items.items()
        ]
    events.append(
        {"event": "payload-transferred", "data": {"state": "(p:1)", "version": 1}}
    )
    return json.dumps({"events": events})


def segment_rule(seg: str) -> dict[str, Any]:
    return {
        "id": f"r-{seg}",
        "variation": 1,
        "clauses": [{"attribute": "", "op": "segmentMatch", "values": [seg]}],
    }


@pytest.fixture
def checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pacer's yields to the event loop (an instrumented checkpoint)."""
    calls: list[int] = []
    real = aioflags._core._pacing.checkpoint

    async def counting() -> None:
        calls.append(1)
        await real()

    monkeypatch.setattr(aioflags._core._pacing, "checkpoint", counting)
    return calls


# ------------------------------------------------------------------ parsing
@pytest.mark.asyncio
async def test_poll_parsing_yields_to_the_loop_at_least_every_n_objects(
    checkpoints: list[int],
) -> None:
    n = 5 * MAX_OBJECTS + 7
    body = poll_body({f"f{i}": flag(f"f{i}") for i in range(n)})
    change_set = await parse_fdv2_poll_text(body)
    assert len(change_set.changes) == n
    assert len(checkpoints) >= n // MAX_OBJECTS


@pytest.mark.asyncio
async def test_applying_yields_to_the_loop_at_least_every_n_objects(
    checkpoints: list[int],
) -> None:
    n = 5 * MAX_OBJECTS + 7
    change_set = await parse_fdv2_poll_text(
        poll_body({f"f{i}": flag(f"f{i}") for i in range(n)})
    )
    checkpoints.clear()
    await Store().apply(change_set)
    assert len(checkpoints) >= n // MAX_OBJECTS


@pytest.mark.asyncio
async def test_background_compilation_yields_at_least_every_n_objects(
    checkpoints: list[int],
) -> None:
    n = 3 * MAX_OBJECTS
    store = Store()
    store.compile_ahead = True
    store.apply_now(
        await parse_fdv2_poll_text(
            poll_body({f"f{i}": flag(f"f{i}") for i in range(n)})
        )
    )
    checkpoints.clear()
    assert not await store._maintain_once()
    assert len(checkpoints) >= n // MAX_OBJECTS - 1
    assert all(made(store.snapshot._data.flags, k) for k in store.snapshot._data.flags)


@pytest.mark.asyncio
async def test_text_parser_agrees_with_the_parsed_body() -> None:
    flags = {"a": flag("a"), "b": flag("b", 3, on=False)}
    body = poll_body(flags, {"s": segment("s")})
    from_text = await parse_fdv2_poll_text(body)
    assert from_text == parse_fdv2_poll(json.loads(body))
    assert from_text.changes[0]._raw is not None  # kept as text, not as a dict
    assert from_text.changes[0].obj == flags["a"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"events": [', "invalid JSON"),
        ('{"events": []} trailing', "extra data"),
        ('{"events": [{"event": "heart-beat"},]}', "invalid JSON"),
        ('{"events": {}}', "'events' key is missing"),
        ("[]", "'events' key is missing"),
        ("{}", "'events' key is missing"),
        ('{"events": []}', "didn't receive any known protocol events"),
        ('{"events": [NaN]}', "NaN is not valid JSON"),
        ('{"events": [' + "[" * 100000 + "]" * 100000 + "]}", "nested too deeply"),
        # (an element that is no event is skipped: the payload never ends)
        ('{"events": [1]}', "didn't receive any known protocol events"),
    ],
)
async def test_text_parser_rejects_what_the_strict_parser_rejects(
    body: str, words: str
) -> None:
    with pytest.raises(ProtocolError, match=words):
        await parse_fdv2_poll_text(body)


async def in_chunks(text: str, size: int) -> AsyncIterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
async def test_a_body_parsed_as_it_arrives_is_the_body_parsed_whole(size: int) -> None:
    # Every cut: inside strings, numbers, whitespace, between events.
    body = json.loads(
        poll_body(
            {f"f{i}": flag(f"f{i}", 10 * i + 7, salt='é\\u00e9"') for i in range(5)},
            {"s": segment("s")},
        )
    )
    body["n"] = 1234567  # a number a cut would shorten
    text = "\ufeff " + json.dumps(body, indent=1)
    whole = await parse_fdv2_poll_text(text)
    assert await parse_fdv2_poll_stream(in_chunks(text, size)) == whole
    assert [c.version for c in whole.changes] == [7, 17, 27, 37, 47, 1]


@pytest.mark.asyncio
async def test_a_body_cut_in_two_anywhere_parses_the_same() -> None:
    text = poll_body({"a": flag("a"), "b": flag("b", 2)}, {"s": segment("s")})
    whole = await parse_fdv2_poll_text(text)
    for cut in range(len(text) + 1):
        parsed = await parse_fdv2_poll_stream(in_chunks2(text[:cut], text[cut:]))
        assert parsed == whole, cut


async def in_chunks2(*parts: str) -> AsyncIterator[str]:
    for part in parts:
        yield part


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [1, 5, 4096])
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"events": [', "invalid JSON"),
        ('{"events": []} trailing', "extra data"),
        ('{"events": [{"event": "heart-beat"},]}', "invalid JSON"),
        ('{"events": [{"event": "x"} {"event": "y"}]}', "expected ',' or ']'"),
        ('{"events": []', "expected ',' or '}'"),
        ('{"events": [{"event": "heart-beat"}, {"ev', "invalid JSON"),
        ('{"events": {}}', "'events' key is missing"),
        ('{"n": 12', "invalid JSON"),
        ('{"events": [NaN]}', "NaN is not valid JSON"),
        ("", "expected '{'"),
    ],
)
async def test_a_body_parsed_as_it_arrives_is_checked_as_strictly(
    size: int, body: str, words: str
) -> None:
    with pytest.raises(ProtocolError, match=words):
        await parse_fdv2_poll_stream(in_chunks(body, size))


@pytest.mark.asyncio
async def test_the_parser_never_holds_the_whole_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What it keeps is what it has not parsed yet: about a chunk and an event.
    windows: list[int] = []
    more = aioflags._datasystem._payloads._Window.more

    async def recording(self: Any, pos: int, at_least: int = 1) -> int:
        new = await more(self, pos, at_least)
        windows.append(len(self.text))
        return new

    monkeypatch.setattr(aioflags._datasystem._payloads._Window, "more", recording)
    text = poll_body({f"f{i}": flag(f"f{i}") for i in range(2000)})
    change_set = await parse_fdv2_poll_stream(in_chunks(text, 4096))
    assert len(change_set.changes) == 2000
    assert len(windows) >= len(text) // 4096
    assert max(windows) < 2 * 4096 < len(text) // 20


@pytest.mark.asyncio
async def test_an_invalid_event_is_retried_a_logarithmic_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Text that is invalid (not just cut short) is tried again only when the
    # window has doubled, so a big body after it costs linear work, once.
    refills: list[int] = []
    more = aioflags._datasystem._payloads._Window.more

    async def counting(self: Any, pos: int, at_least: int = 1) -> int:
        refills.append(at_least)
        return await more(self, pos, at_least)

    monkeypatch.setattr(aioflags._datasystem._payloads._Window, "more", counting)
    text = '{"events": [{"event": "x", "data": tru}, ' + " " * 400_000 + "]}"
    with pytest.raises(ProtocolError, match="invalid JSON"):
        await parse_fdv2_poll_stream(in_chunks(text, 16))
    assert len(refills) < 2 * 400_000 // 16  # one pass over the chunks
    retries = [n for n in refills if n > 1]
    assert 0 < len(retries) < 20


@pytest.mark.asyncio
async def test_text_parser_checks_but_ignores_what_follows_the_payload() -> None:
    body = json.loads(poll_body({"a": flag("a")}))
    body["events"].append({"event": "put-object", "data": {"bad": True}})
    body["other"] = [1, {"x": None}]
    change_set = await parse_fdv2_poll_text("\ufeff " + json.dumps(body, indent=2))
    assert [c.key for c in change_set.changes] == ["a"]
    broken = json.dumps(body)[:-1] + ", }"
    with pytest.raises(ProtocolError):
        await parse_fdv2_poll_text(broken)


# ------------------------------------------------------------------ Change
def test_a_raw_change_is_the_same_value_as_a_parsed_one() -> None:
    obj = flag("a")
    text = json.dumps({"event": "put-object", "data": {"object": obj}})
    raw = Change._raw_put(ObjectKind.FLAG, "a", 1, text, RAW_EVENT)
    parsed = Change(
        action=ChangeKind.PUT, kind=ObjectKind.FLAG, key="a", version=1, obj=obj
    )
    assert raw == parsed and repr(raw) == repr(parsed)
    assert raw.obj == obj and raw.obj is raw.obj  # parsed once
    with pytest.raises(dataclasses.FrozenInstanceError):
        raw.key = "b"
    deleted = Change(action=ChangeKind.DELETE, kind=ObjectKind.FLAG, key="a", version=2)
    assert hash(deleted) == hash(
        Change(action=ChangeKind.DELETE, kind=ObjectKind.FLAG, key="a", version=2)
    )
    assert deleted != parsed and deleted.obj is None
    assert copy.deepcopy(raw) == raw and pickle.loads(pickle.dumps(raw)) == raw


@pytest.mark.asyncio
async def test_a_parsed_change_set_is_the_same_value_whole() -> None:
    # Its puts are kept as tuples; ``changes`` builds the Change objects.
    body = poll_body({"a": flag("a"), "b": flag("b", 2)}, {"s": segment("s")})
    parsed = await parse_fdv2_poll_text(body)
    built = ChangeSet(
        intent=IntentCode.TRANSFER_FULL,
        changes=parse_fdv2_poll(json.loads(body)).changes,
        selector=Selector(state="(p:1)", version=1),
    )
    assert parsed == built
    assert repr(parsed) == repr(built)
    assert copy.copy(parsed) == built and pickle.loads(pickle.dumps(parsed)) == built
    assert parsed.changes is parsed.changes  # built once
    assert [c.kind for c in parsed.changes] == [ObjectKind.FLAG] * 2 + [
        ObjectKind.SEGMENT
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.changes = ()  # type: ignore[misc]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_ingested_puts_are_not_tracked_by_the_garbage_collector() -> None:
    # A full collection walks every tracked object: the change set of
    # 1,000 puts adds its list, not an object per put (nor for the keys a
    # flag uses), and the cold flag keeps the same tuple, not a new one.
    flags = {
        f"f{i}": flag(
            f"f{i}",
            prerequisites=[{"key": "f0", "variation": 0}] if i % 2 else [],
            rules=[segment_rule("s")] if i % 3 == 0 else [],
        )
        for i in range(1000)
    }
    change_set = await parse_fdv2_poll_text(poll_body(flags, {"s": segment("s")}))
    gc.collect()
    items = change_set._items
    assert len(items) == 1001
    assert not any(gc.is_tracked(item) for item in items)
    store = Store()
    store.apply_now(change_set)
    table = store.snapshot._data.flags
    assert isinstance(table, Table) and table.entries["f3"] is items[3]
    assert not made(table, "f3")
    assert store.apply_now(
        await parse_fdv2_poll_text(poll_body({**flags, "f0": flag("f0", 2)}))
    ) >= {"f0", "f1", "f3"}  # f1 and f3 reach f0: the nodes came through


@pytest.mark.asyncio
@pytest.mark.parametrize("broken", [False, True])
async def test_the_collector_is_held_within_slices_only(
    monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    # Disabled while a slice parses, enabled at every yield to the loop and
    # once the work is over, however it ends.
    at_yields: list[bool] = []
    real = aioflags._core._pacing.checkpoint

    async def recording() -> None:
        at_yields.append(gc.isenabled())
        await real()

    monkeypatch.setattr(aioflags._core._pacing, "checkpoint", recording)
    seen: list[bool] = []
    put_meta = aioflags._datasystem._payloads.put_meta

    def spying(obj: Any) -> Any:
        seen.append(gc.isenabled())
        return put_meta(obj)

    monkeypatch.setattr(aioflags._datasystem._payloads, "put_meta", spying)
    body = poll_body({f"f{i}": flag(f"f{i}") for i in range(3 * MAX_OBJECTS)})
    if broken:
        body = body[: len(body) // 2]
    assert gc.isenabled()
    if broken:
        with pytest.raises(ProtocolError):
            await parse_fdv2_poll_text(body)
    else:
        await Store().apply(await parse_fdv2_poll_text(body))
    assert gc.isenabled()
    assert at_yields and all(at_yields)
    assert seen and not any(seen)


@pytest.mark.asyncio
async def test_the_collector_runs_while_the_parser_waits_for_the_network() -> None:
    # Waiting for the next chunk runs other tasks: never with it held.
    at_reads: list[bool] = []

    async def chunks(text: str) -> AsyncIterator[str]:
        for i in range(0, len(text), 512):
            at_reads.append(gc.isenabled())
            yield text[i : i + 512]

    body = poll_body({f"f{i}": flag(f"f{i}") for i in range(200)})
    change_set = await parse_fdv2_poll_stream(chunks(body))
    assert len(change_set.changes) == 200
    assert len(at_reads) > 20 and all(at_reads)
    assert gc.isenabled()


@pytest.mark.asyncio
async def test_a_disabled_collector_stays_disabled() -> None:
    body = poll_body({f"f{i}": flag(f"f{i}") for i in range(2 * MAX_OBJECTS)})
    gc.disable()
    try:
        await Store().apply(await parse_fdv2_poll_text(body))
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.asyncio
async def test_the_window_is_refilled_before_an_event_that_may_be_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # json's error for an event cut by the window's end counts the lines of
    # the whole window: the parser refills first, so that error is rare.
    failures: list[int] = []
    decoder = aioflags._core._json._DECODER

    class Counting:
        def scan_once(self, text: str, pos: int) -> tuple[Any, int]:
            try:
                return decoder.scan_once(text, pos)  # type: ignore[attr-defined,no-any-return]
            except (StopIteration, ValueError):
                failures.append(pos)
                raise

        def raw_decode(self, text: str, pos: int) -> tuple[Any, int]:
            try:
                return decoder.raw_decode(text, pos)
            except ValueError:
                failures.append(pos)
                raise

    monkeypatch.setattr(aioflags._datasystem._payloads, "_DECODER", Counting())
    text = poll_body({f"f{i}": flag(f"f{i}") for i in range(2000)})
    change_set = await parse_fdv2_poll_stream(in_chunks(text, 4096))
    assert len(change_set.changes) == 2000
    assert len(failures) <= 2 < len(text) // 4096


# -------------------------------------------------------------- cold flags
@pytest.mark.asyncio
async def test_flags_are_compiled_on_first_use_and_keep_their_identity() -> None:
    store = Store()
    store.apply_now(
        await parse_fdv2_poll_text(poll_body({"a": flag("a"), "b": flag("b")}))
    )
    snapshot = store.snapshot
    flags = snapshot._data.flags
    assert not made(flags, "a") and not made(flags, "b")
    assert snapshot.variation("a", USER, "x") == "a"
    a = flags["a"]
    assert made(flags, "a") and flags["a"] is a and type(a) is CompiledFlag
    assert not made(flags, "b")
    assert snapshot.flag_keys == {"a", "b"}  # keys and versions need no compiling
    assert not made(flags, "b")


def test_first_evaluation_compiles_exactly_once_under_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store()
    store.apply_now(
        ChangeSet(intent=IntentCode.TRANSFER_FULL, changes=(put("a", flag("a")),))
    )
    threads_n = 8
    calls: list[str] = []
    inside = threading.Event()
    release = threading.Event()
    real = aioflags._evaluation._model.compile_flag

    def slow_compile(key: str, raw: Any) -> CompiledFlag:
        calls.append(key)
        inside.set()
        assert release.wait(30)
        return real(key, raw)

    class CountingLock:
        """The compile lock, telling when every thread has reached it."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._count = 0
            self._guard = threading.Lock()
            self.all_arrived = threading.Event()

        def __enter__(self) -> None:
            with self._guard:
                self._count += 1
                if self._count == threads_n:
                    self.all_arrived.set()
            self._lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self._lock.release()

    lock = CountingLock()
    monkeypatch.setattr(aioflags._evaluation._tables, "_TABLE_LOCK", lock)
    monkeypatch.setattr(aioflags._evaluation._tables, "compile_flag", slow_compile)
    snapshot = store.snapshot
    started = threading.Barrier(threads_n + 1)
    results: list[object] = []

    def evaluate() -> None:
        started.wait(30)
        results.append(snapshot.variation_detail("a", USER, "x").value)

    threads = [
        threading.Thread(target=evaluate)  # noqa: TID251 - evaluations from threads, as the blocking client and OpenFeature do
        for _ in range(threads_n)
    ]
    for t in threads:
        t.start()
    started.wait(30)  # every thread is about to evaluate
    assert inside.wait(30)  # one of them is compiling...
    assert lock.all_arrived.wait(30)  # ...and every one has come to compile it
    release.set()
    for t in threads:
        t.join(30)
    assert calls == ["a"]
    assert results == ["a"] * threads_n


@pytest.mark.asyncio
async def test_evaluation_indexes_a_plain_dict_of_the_flags_made_so_far() -> None:
    # CPython specialises item access for an exact dict only: the fast
    # paths index Table.hot, and fall back to the table on a miss.
    store = Store()
    child = flag("child", prerequisites=[{"key": "parent", "variation": 0}])
    body = poll_body({"parent": flag("parent"), "child": child, "other": flag("other")})
    store.apply_now(await parse_fdv2_poll_text(body))
    table = store.snapshot._data.flags
    hot = store.snapshot._data.matcher.hot
    assert type(table) is Table and type(hot) is dict and hot is table.hot
    assert hot == {}
    # A snapshot composed of this data (events, hooks...) indexes the same.
    assert store.snapshot.composed(PLAIN, None)._data.matcher.hot is table.hot
    # A prerequisite never looked up is made, not taken for a missing one.
    assert store.snapshot.variation("child", USER, "x") == "a"
    assert hot.keys() == {"child", "parent"}
    assert all(hot[k] is table[k] for k in hot)
    async with aioflags.Client(aioflags.Config(offline=True)) as client:
        served = client._store  # the run's store
        assert isinstance(served, Store)
        served._swap(store.snapshot)  # the client's own fast path
        assert await client.variation("other", USER, "x") == "a"
        assert await client.variation("absent", USER, "x") == "x"
    assert hot.keys() == {"child", "parent", "other"}
    # A merged delta's table starts with what was made, but the changed flag.
    store.apply_now(
        delta(await parse_fdv2_poll_text(poll_body({"parent": flag("parent", 2)})))
    )
    await store._maintain_once()
    merged = store.snapshot._data.flags
    assert type(merged) is Table and store.snapshot._data.matcher.hot is merged.hot
    assert merged.hot.keys() == {"child", "other"}
    assert merged.hot["child"] is table["child"]


@pytest.mark.asyncio
async def test_segment_matches_index_a_plain_dict_of_the_segments_made_so_far() -> None:
    # As for flags: segmentMatch reads the table's hot dict first (no call
    # of the table's own lookup), and falls back to the table on a miss, a
    # delta's layered segments included.
    store = Store()
    flags = {
        "f": flag("f", rules=[segment_rule("s"), segment_rule("t")]),
        "g": flag("g", rules=[segment_rule("missing")]),
    }
    segments = {"s": segment("s", included=("ann",)), "t": segment("t")}
    segments.update({f"other-{i}": segment(f"other-{i}") for i in range(20)})
    store.apply_now(await parse_fdv2_poll_text(poll_body(flags, segments)))
    table = store.snapshot._data.segments
    hot = store.snapshot._data.matcher.hot_segments
    assert type(table) is Table and hot is table.hot and hot == {}
    ann, bob = Context.create("ann"), Context.create("bob")
    assert store.snapshot.variation("f", ann, "x") == "b"  # in s
    assert store.snapshot.variation("f", bob, "x") == "a"  # in neither
    assert store.snapshot.variation("g", ann, "x") == "a"  # missing: no match
    assert hot.keys() == {"s", "t"} and all(hot[k] is table[k] for k in hot)
    # A delta that leaves the segments layered: the overlay's are read.
    store.apply_now(
        delta(
            await parse_fdv2_poll_text(
                poll_body({}, {"t": segment("t", 2, included=("bob",))})
            )
        )
    )
    layered = store.snapshot._data.segments
    assert type(layered) is Layered and store.snapshot._data.matcher.hot_segments == {}
    assert store.snapshot.variation("f", bob, "x") == "b"  # in t now
    assert store.snapshot.variation("f", ann, "x") == "b"


def put(key: str, obj: Any, kind: ObjectKind = ObjectKind.FLAG) -> Change:
    return Change(action=ChangeKind.PUT, kind=kind, key=key, version=1, obj=obj)


@pytest.mark.asyncio
async def test_a_malformed_flag_is_logged_once_and_evaluates_to_malformed_flag(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    bad = flag("bad", prerequisites=[{"variation": 0}])  # a prerequisite without key
    store.apply_now(
        await parse_fdv2_poll_text(poll_body({"bad": bad, "ok": flag("ok")}))
    )
    with caplog.at_level(logging.ERROR, logger="aioflags"):
        for _ in range(3):
            detail = store.snapshot.variation_detail("bad", USER, "x")
            assert detail.value == "x"
            assert detail.reason == {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}
        await store._maintain_once()  # the background pass does not log it again
    logged = [r for r in caplog.records if "'bad'" in r.getMessage()]
    assert len(logged) == 1 and "malformed" in logged[0].getMessage()


@pytest.mark.asyncio
async def test_a_malformed_flag_is_logged_by_the_background_pass_before_any_evaluation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    store.compile_ahead = True  # Config(gc_freeze=True)
    bad = flag("bad", variations="not a list")
    store.apply_now(await parse_fdv2_poll_text(poll_body({"bad": bad})))
    with caplog.at_level(logging.ERROR, logger="aioflags"):
        await store._maintain_once()
    assert any("'bad'" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------- change listeners
@pytest.mark.asyncio
async def test_changes_reach_flags_through_prerequisites_and_segments_while_cold() -> (
    None
):
    flags = {
        "base": flag("base"),
        "child": flag("child", prerequisites=[{"key": "base", "variation": 0}]),
        "grandchild": flag(
            "grandchild", prerequisites=[{"key": "child", "variation": 0}]
        ),
        "seg-user": flag("seg-user", rules=[segment_rule("s")]),
        "plain": flag("plain"),
    }
    store = Store()
    first = await store.apply(
        await parse_fdv2_poll_text(poll_body(flags, {"s": segment("s")}))
    )
    assert first == set(flags)
    assert not any(made(store.snapshot._data.flags, k) for k in flags)
    changed = await store.apply(
        delta(await parse_fdv2_poll_text(poll_body({"base": flag("base", 2)})))
    )
    assert changed == {"base", "child", "grandchild"}
    changed = await store.apply(
        delta(await parse_fdv2_poll_text(poll_body({}, {"s": segment("s", 2, ("u",))})))
    )
    assert changed == {"seg-user"}
    # Dependencies came from the raw entries: nothing had to be compiled.
    assert not made(store.snapshot._data.flags, "grandchild")
    # A full transfer that changes only the segment reaches its user too.
    changed = await store.apply(
        await parse_fdv2_poll_text(
            poll_body({**flags, "base": flag("base", 2)}, {"s": segment("s", 3)})
        )
    )
    assert changed == {"seg-user"}


def delta(change_set: ChangeSet) -> ChangeSet:
    return ChangeSet(
        intent=IntentCode.TRANSFER_CHANGES,
        changes=change_set.changes,
        selector=Selector(state="(p:2)", version=2),
    )


# ------------------------------------------------------------------ deltas
@pytest.mark.asyncio
async def test_a_delta_does_not_copy_the_snapshot() -> None:
    store = Store()
    store.apply_now(
        await parse_fdv2_poll_text(
            poll_body({f"f{i}": flag(f"f{i}") for i in range(100)})
        )
    )
    base = store.snapshot._data.flags
    changed = store.apply_now(
        delta(await parse_fdv2_poll_text(poll_body({"f1": flag("f1", 2, on=False)})))
    )
    assert changed == {"f1"}
    flags = store.snapshot._data.flags
    assert isinstance(flags, Layered) and flags.base is base  # not copied
    assert len(flags.overlay) == 1 and len(flags) == 100
    assert store.snapshot.variation("f1", USER, "x") == "b"
    assert store.snapshot.variation("f2", USER, "x") == "a"
    assert base["f1"].version == 1  # the old snapshot is untouched
    # The maintenance pass merges the overlay into one table.
    await store._maintain_once()
    merged = store.snapshot._data.flags
    assert type(merged) is Table and merged["f1"].version == 2 and len(merged) == 100
    assert store.snapshot.variation("f1", USER, "x") == "b"


@pytest.mark.asyncio
async def test_a_large_delta_is_merged_at_once() -> None:
    store = Store()
    store.apply_now(
        await parse_fdv2_poll_text(
            poll_body({f"f{i}": flag(f"f{i}") for i in range(16)})
        )
    )
    store.apply_now(
        delta(
            await parse_fdv2_poll_text(
                poll_body(
                    {"f1": flag("f1", 2), "f2": flag("f2", 2), "new": flag("new")}
                )
            )
        )
    )
    flags = store.snapshot._data.flags
    assert type(flags) is Table and len(flags) == 17 and flags["f2"].version == 2


@pytest.mark.slow
@pytest.mark.asyncio
async def test_cold_flags_are_no_objects_for_the_garbage_collector() -> None:
    # Every full collection walks every tracked object, and objects that
    # survive set off the next full collection: a snapshot of flags never
    # evaluated adds none per flag (its entries are untracked tuples of
    # strings and ints; the dependency index holds strings).
    n = 1000
    flags = {
        f"f{i}": flag(
            f"f{i}",
            prerequisites=[{"key": "f0", "variation": 0}] if i % 2 else [],
            rules=[segment_rule("s")] if i % 3 == 0 else [],
        )
        for i in range(n)
    }
    text = poll_body(flags, {"s": segment("s")})
    Store().apply_now(await parse_fdv2_poll_text(text))  # imports, caches
    store = Store()
    gc.collect()
    before = len(gc.get_objects())
    store.apply_now(await parse_fdv2_poll_text(text))
    gc.collect()
    added = len(gc.get_objects()) - before
    assert added < 50  # a few containers, whatever n
    table = store.snapshot._data.flags
    assert type(table) is Table and len(table) == n
    assert not any(gc.is_tracked(e) for e in table.entries.values())
    assert not any(gc.is_tracked(d) for d in store._uses.values())
    # A flag is compiled on its first lookup, the same object from then on
    # (f3 evaluates its prerequisite f0 too).
    assert store.snapshot.variation("f3", USER, "x") == "a"
    f3 = table["f3"]
    assert table["f3"] is f3 and made(table, "f0")
    assert not any(made(table, k) for k in table if k not in ("f0", "f3"))


@pytest.mark.asyncio
async def test_segments_are_compiled_on_first_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store()
    store.apply_now(
        await parse_fdv2_poll_text(
            poll_body(
                {"f": flag("f", rules=[segment_rule("s")]), "g": flag("g")},
                {
                    "s": segment("s", included=("u",)),
                    "t": segment("t"),
                    "bad": {"key": "bad", "version": 1, "rules": 7},  # malformed
                },
            )
        )
    )
    segments = store.snapshot._data.segments
    assert type(segments) is Table and len(segments) == 3
    assert not segments.hot  # nothing compiled at ingest
    assert store.snapshot.variation("f", Context.create("u"), "x") == "b"
    assert store.snapshot.variation("f", USER, "x") == "a"
    assert list(segments.hot) == ["s"]  # the one the flag reads
    assert segments["s"] is segments["s"]  # compiled once
    assert "bad" in segments and segments["bad"].malformed is not None
    # A change to a segment still reaches the flags that use it (no compiling).
    changed = store.apply_now(
        await parse_fdv2_poll_text(
            poll_body(
                {"f": flag("f", rules=[segment_rule("s")]), "g": flag("g")},
                {"s": segment("s", 2), "t": segment("t"), "bad": segment("bad")},
            )
        )
    )
    assert changed == {"f"}


def test_the_store_counts_live_flags_as_change_sets_apply() -> None:
    # What READY's log line reports, without a set of every key.
    store = Store()
    changed = store.apply_now(
        ChangeSet(
            intent=IntentCode.TRANSFER_FULL,
            changes=(
                put("a", flag("a")),
                put("b", flag("b")),
                put("a", flag("a", 2)),  # a key twice: the last change counts
                put("b", flag("b", 2, deleted=True)),
                put("s", segment("s"), ObjectKind.SEGMENT),
            ),
        )
    )
    assert changed == {"a"} and store.flag_count == 1
    store.apply_now(
        ChangeSet(
            intent=IntentCode.TRANSFER_CHANGES,
            changes=(
                put("b", flag("b", 3)),
                put("c", flag("c")),
                Change(
                    action=ChangeKind.DELETE, kind=ObjectKind.FLAG, key="a", version=3
                ),
            ),
        )
    )
    assert store.flag_count == 2 == len(store.snapshot.flag_keys)


# ------------------------------------------------------------------ gc_freeze
@pytest.mark.asyncio
@pytest.mark.parametrize("freeze", [False, True])
async def test_gc_freeze_is_opt_in(
    monkeypatch: pytest.MonkeyPatch, freeze: bool
) -> None:
    frozen: list[int] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(1))
    # A slice ends on a count or a clock; a loaded machine must not end one
    # (each pause freezes what its slice compiled): the clock stands still.
    monkeypatch.setattr(aioflags._core._pacing, "_now", lambda: 0.0)
    store = Store()
    store.freeze_gc = store.compile_ahead = freeze
    store.apply_now(await parse_fdv2_poll_text(poll_body({"a": flag("a")})))
    await store._maintain_once()
    await store._maintain_once()  # the same data: frozen once
    assert len(frozen) == (1 if freeze else 0)
    assert made(store.snapshot._data.flags, "a") is freeze


@pytest.mark.asyncio
async def test_a_compiled_snapshot_is_not_walked_again(
    checkpoints: list[int],
) -> None:
    # A wake with no new data (a status change, a no-op update) must not walk
    # every flag again: each walked slice would yield, and freeze, for nothing.
    store = Store()
    store.compile_ahead = True
    n = 2 * MAX_OBJECTS
    store.apply_now(
        await parse_fdv2_poll_text(
            poll_body({f"f{i}": flag(f"f{i}") for i in range(n)})
        )
    )
    await store._maintain_once()
    assert len(checkpoints) >= 1
    checkpoints.clear()
    await store._maintain_once()
    assert checkpoints == []


@pytest.mark.asyncio
async def test_by_default_flags_are_compiled_on_first_use_only() -> None:
    # The background pass merges overlays but compiles nothing: the heap
    # grows with the flags evaluated, not with the whole data set at once.
    store = Store()
    store.apply_now(
        await parse_fdv2_poll_text(poll_body({"a": flag("a"), "b": flag("b")}))
    )
    await store._maintain_once()
    flags = store.snapshot._data.flags
    assert not made(flags, "a") and not made(flags, "b")
    assert store.snapshot.variation("a", USER, "x") == "a"
    assert made(flags, "a") and not made(flags, "b")


@pytest.mark.asyncio
async def test_the_client_compiles_ahead_with_gc_freeze_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aioflags.testing import FlagData

    monkeypatch.setattr(gc, "freeze", lambda: None)  # not this test process's heap
    for freeze in (False, True):
        config = Config(
            data_system=FlagData().data_system(), send_events=False, gc_freeze=freeze
        )
        async with Client(config) as c:
            served = c._store
            assert isinstance(served, Store)
            assert served.compile_ahead is freeze
            assert served.freeze_gc is freeze


def test_gc_freeze_is_a_config_option() -> None:
    assert Config("sdk-key").gc_freeze is False
    assert Config("sdk-key", gc_freeze=True).gc_freeze is True


# -------------------------------------------------------------- transport
@pytest.mark.asyncio
async def test_plain_http_never_sets_up_tls() -> None:
    async with FlagServer({"a": flag("a")}) as server:
        config = server.config(send_events=False)
        async with make_http_client(config, "instance") as http:
            transport = http._transport
            assert isinstance(transport, LazyTLSTransport)
            response = await http.get(f"{server.url}/sdk/latest-all")
            assert response.status_code == 200
            assert not transport.tls_ready


@pytest.mark.asyncio
async def test_hooks_still_run_after_the_overlay_is_merged() -> None:
    calls: list[str] = []

    class Seen(Hook):
        @property
        def metadata(self) -> HookMetadata:
            return HookMetadata(name="seen")

        def before_evaluation(
            self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
        ) -> Mapping[str, Any]:
            calls.append(series_context.key)
            return data

    store = Store()
    evaluator = Evaluator(store, HookRunner((Seen(),)))
    store.apply_now(await parse_fdv2_poll_text(poll_body({"f1": flag("f1")})))
    store.apply_now(
        delta(await parse_fdv2_poll_text(poll_body({"f1": flag("f1", 2, on=False)})))
    )
    await store._maintain_once()  # merges the overlay into a new snapshot
    assert type(store.snapshot._data.flags) is Table
    assert evaluator.snapshot().variation("f1", USER, "x") == "b"
    assert calls == ["f1"]


@pytest.mark.asyncio
async def test_a_proxy_named_in_the_environment_is_still_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # httpx reads HTTP(S)_PROXY only when it builds its own transport: the
    # lazy-TLS transport must step aside, or the proxy would be bypassed.
    async with (
        FlagServer({"a": flag("a")}) as origin,
        FlagServer({"a": flag("a")}) as proxy,
    ):
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        config = origin.config(send_events=False)
        async with make_http_client(config, "instance") as http:
            response = await http.get(f"{origin.url}/sdk/latest-all")
        assert response.status_code == 200
        assert proxy.requests_to("/sdk/latest-all") and not origin.requests


@pytest.mark.asyncio
async def test_all_flags_state_compiles_cold_flags_in_slices_first(
    checkpoints: list[int],
) -> None:
    # Right after a full transfer every flag is cold; all_flags_state evaluates
    # them all, so the client compiles them in slices before (never in one
    # step on the loop), and only once per snapshot.
    from aioflags.testing import FlagData

    n = 6 * MAX_OBJECTS
    flags = {f"f{i}": flag(f"f{i}") for i in range(n)}
    config = Config(data_system=FlagData().data_system(), send_events=False)
    async with Client(config) as c:
        served = c._store
        assert isinstance(served, Store)
        await served.apply(await parse_fdv2_poll_text(poll_body(flags)))
        assert not any(made(served.snapshot._data.flags, k) for k in flags)
        checkpoints.clear()
        state = await c.all_flags_state(USER)
        assert state.valid and state.get_flag_value(f"f{n - 1}") == "a"
        # (the background pass may compile some of them meanwhile: both pace)
        assert len(checkpoints) >= n // MAX_OBJECTS - 2
        assert all(made(c._store.snapshot._data.flags, k) for k in flags)
        checkpoints.clear()
        await c.all_flags_state(USER)
        assert checkpoints == []  # warm already: nothing to do


# ------------------------------------------------- what the collector walks
def _flag_json_alive(keys: Mapping[str, object]) -> int:
    """How many parsed flag objects of ``keys`` are alive (those the caller holds too)."""
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if type(o) is dict
        and "variations" in o
        and type(key := o.get("key")) is str
        and key in keys
    )


async def _directs_to_fdv1(ctx: SourceContext) -> AsyncGenerator[Update, None]:
    yield Update(state=SourceState.VALID, fallback_to_fdv1=True)


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["synchronizer", "fdv1 fallback", "fdv1 stream"])
async def test_a_polled_payload_is_not_kept_once_its_flags_are_compiled(
    where: str,
) -> None:
    # FDv1 parses a payload whole (a poll, or a stream's put). Each flag's
    # parsed JSON is kept until the flag is compiled, then only the
    # compiled flag: not by the snapshot's table, and not by the source or
    # the data system while the next poll or event is awaited, whether
    # FDv1 polling is a synchronizer or the directed fallback (where the
    # default, streaming and polling data systems run it), or the source
    # is the FDv1 stream. (Every full collection walks what is kept:
    # parsed JSON is some twenty objects a flag.)
    flags = {
        f"f{i}": flag(
            f"f{i}",
            targets=[{"values": ["u1", "u2"], "variation": 1}],
            rules=[segment_rule("s")],
        )
        for i in range(40)
    }
    poller = aioflags.sources.fdv1_polling_synchronizer(interval=3600)
    system = {
        "synchronizer": aioflags.DataSystem.custom(synchronizers=[poller]),
        "fdv1 fallback": aioflags.DataSystem.custom(
            synchronizers=[_directs_to_fdv1], fdv1_fallback=poller
        ),
        "fdv1 stream": aioflags.DataSystem.custom(
            synchronizers=[aioflags.sources.fdv1_streaming_synchronizer()]
        ),
    }[where]
    async with FlagServer(flags, {"s": segment("s")}) as server:
        held_by_test_and_server = _flag_json_alive(flags)
        config = server.config(data_system=system, send_events=False)
        async with Client(config) as client:
            # Parsed, not compiled yet: the table holds each flag's JSON.
            assert _flag_json_alive(flags) == held_by_test_and_server + len(flags)
            for key in flags:
                assert await client.variation(key, USER, "x") == "a"
            assert _flag_json_alive(flags) == held_by_test_and_server


def test_a_compiled_flag_is_few_objects_for_the_collector() -> None:
    # Every full collection walks every compiled flag, for as long as the
    # data lasts: its results keep no list for all-flags state until one
    # is needed, and a clause's test is one object, not a closure's three.
    # (A budget: 45 objects a flag of this shape before either.)
    def shaped(key: str) -> dict[str, Any]:
        return flag(
            key,
            targets=[{"values": ["u1", "u2"], "variation": 1}],
            rules=[
                {"id": f"r{j}", "variation": j % 2, "clauses": [clause]}
                for j, clause in enumerate(
                    [
                        {"attribute": "email", "op": "endsWith", "values": ["@x.io"]},
                        {"attribute": "name", "op": "startsWith", "values": ["A"]},
                        {"attribute": "email", "op": "contains", "values": ["t"]},
                    ]
                )
            ],
        )

    compile_flag = aioflags._evaluation._model.compile_flag
    first = compile_flag("f", shaped("f"))  # the shape's code, made once
    raws = [shaped(f"f{i}") for i in range(200)]
    gc.collect()
    before = len(gc.get_objects())
    compiled = [compile_flag(raw["key"], raw) for raw in raws]
    gc.collect()
    per_flag = (len(gc.get_objects()) - before) / len(compiled)
    assert per_flag <= 36
    del first  # (alive through the count, and its shape's code with it)
    # All-flags state still keeps the entries it makes, in a list of the
    # result's own: the shared tuple is never written.
    snapshot = aioflags._datasystem._store.snapshot_from_data(
        {"f": shaped("f"), "g": shaped("g")}, {}
    )
    state = snapshot.all_flags_state(USER, with_reasons=True)
    again = snapshot.all_flags_state(USER, with_reasons=True)
    assert state.to_dict()["f"] == again.to_dict()["g"] == "a"
    assert state._meta["f"] is again._meta["f"]  # made once, kept


def test_a_flag_compiled_while_a_delta_is_applied_is_not_compiled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An overlay (an earlier delta, not merged yet) holds x, not compiled
    # yet. A second delta is applied in slices; between two, the loop (or a
    # blocking client's thread) evaluates x on the current data, which
    # compiles it and keeps the item as x's entry. The new data, in which
    # the delta does not change x, keeps x as compiled.
    store = Store()
    store.apply_now(fdv1_full({"flags": {f"f{i}": flag(f"f{i}") for i in range(100)}}))
    patch = fdv1_patch({"path": "/flags/x", "data": flag("x")})
    assert patch is not None
    store.apply_now(patch)
    old = store.snapshot
    assert isinstance(old._data.flags, Layered)
    change_set = fdv1_patch({"path": "/flags/y", "data": flag("y")})
    assert change_set is not None
    # Every slice is one object: the apply pauses at each chance, as a big one does.
    monkeypatch.setattr(aioflags._core._pacing, "MAX_OBJECTS", 1)
    steps = store._steps(
        change_set,
        Pacer(),
        compile_patterns(change_set._items, change_set._patterns, change_set._nodes),
    )
    next(steps)  # the apply pauses: an evaluation of x runs
    compiled = old._data.flags["x"]
    for _ in steps:
        pass
    assert store.snapshot._data.flags is not old._data.flags
    assert store.snapshot._data.flags["x"] is compiled  # not compiled a second time
    assert store.snapshot.variation("y", USER, "z") == "a"


def test_merging_data_while_a_thread_compiles_its_flags_does_not_fail() -> None:
    # A blocking client's thread compiles flags (adds to a table's ``hot``)
    # while the loop builds the next data from that table (a merge, or a
    # delta's carry-over of the overlay's items): neither may walk the
    # dict as it grows ("dictionary changed size during iteration"). The
    # switch interval is made tiny so the threads interleave at once.
    n = 20_000

    def made(entry: tuple[Any, ...]) -> CompiledFlag:
        return aioflags._evaluation._model.compile_flag(entry[1], flag(entry[1]))

    entries: dict[str, Any] = {f"k{i}": ("flag", f"k{i}") for i in range(n)}
    table = Table(entries, made)
    for i in range(0, n, 2):
        table[f"k{i}"]
    stop = threading.Event()

    def compiles() -> None:
        for i in range(1, n, 2):
            if stop.is_set():
                return
            table[f"k{i}"]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        compiling = pool.submit(compiles)
        try:
            for _ in range(50):
                merged = table.with_overlay(Table({}, made))
                kept = Store._compact(Table({}, made), table, dict(entries), {"k0"})
                assert "k0" in merged.hot
                assert isinstance(kept, Table)  # (an overlay this big is merged)
                assert "k0" not in kept.hot  # (written by the delta: made anew)
        finally:
            stop.set()
            sys.setswitchinterval(interval)
        compiling.result()
