"""A flush encodes its batch a slice at a time: the same bytes, and none lost at close."""

from __future__ import annotations

import gzip
import json
import random
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest

from aioflags import Config, Context
from aioflags._analytics import _processor
from aioflags._analytics._format import EventFormatter
from aioflags._analytics._processor import EventProcessor
from aioflags._analytics._recorder import INDEX, Recorder
from aioflags._datasystem._store import snapshot_from_data
from aioflags.testing import FakeClock
from tests.analytics import flag, running

if TYPE_CHECKING:
    from collections.abc import Callable

    from aioflags._datasystem._store import Store

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


CASES: dict[str, tuple[Callable[[Recorder], None], dict[str, Any]]] = {
    "many-slices": (evaluations(130), {}),
    "one-slice": (evaluations(10), {}),
    "no-summary": (identifies(120), {}),
    "summary-only": (same_context_again, {}),
    "omitted-slices": (omitted_in_the_middle, {"omit_anonymous_contexts": True}),
    "gzip-on-a-thread": (evaluations(400), {"compress_events": True}),
    "gzip-on-the-loop": (identifies(3), {"compress_events": True}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_payload_is_the_json_of_every_event_byte_for_byte(case: str) -> None:
    """The sliced encoding gives what one ``json.dumps`` of the batch gave."""
    feed, options = CASES[case]
    config = Config("k", **options)

    reference = Recorder(config, random.Random(0), now_ms=lambda: 1000)
    feed(reference)
    batch = reference.take()
    assert batch is not None
    events = EventFormatter(config).events(batch)
    expected = json.dumps(events, separators=(",", ":"), allow_nan=False).encode()

    processor = EventProcessor(
        config,
        None,
        cast("Store", None),  # not attached: only the encoding runs
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
