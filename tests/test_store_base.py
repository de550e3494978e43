"""Store internals without Redis: status listeners, decoding stored items."""

from __future__ import annotations

import logging

import pytest

from aioflags._datasystem._stores._base import (
    DataStoreStatus,
    StoreFailure,
    StoreStatusTracker,
    decode_items,
    stored_version,
)
from aioflags.sources import ChangeKind, ObjectKind


def test_a_failing_status_listener_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    tracker = StoreStatusTracker("memory store")

    def broken(status: DataStoreStatus) -> None:
        raise ValueError("listener bug")

    tracker.add(broken)
    with caplog.at_level(logging.ERROR, logger="aioflags"):
        tracker.failed(StoreFailure("down"), 0.0)
    assert "status listener failed" in caplog.text
    assert tracker.status == DataStoreStatus(available=False)


#: JSON nested too deeply for any parser's recursion (issue 48, D1).
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.asyncio
async def test_decoding_yields_to_the_event_loop_and_skips_bad_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aioflags._datasystem._stores import _base

    monkeypatch.setattr(_base, "_SLICE", -1.0)  # yield after every item
    decoded = await decode_items(
        [
            (ObjectKind.FLAG, "a", '{"key":"a","version":1}'),
            (ObjectKind.FLAG, "b", "{not json"),
            (ObjectKind.SEGMENT, "c", '{"version":2,"deleted":true}'),
            (ObjectKind.FLAG, "deep", f'{{"key":"deep","version":1,"v":{DEEP}}}'),
            (ObjectKind.FLAG, "list", "[]"),
        ]
    )
    assert [(c.key, c.action) for c in decoded.changes] == [
        ("a", ChangeKind.PUT),
        ("c", ChangeKind.DELETE),
    ]
    # Each unusable item with why: the caller reports them (the status, once).
    assert decoded.unusable == {
        (ObjectKind.FLAG, "b"): "invalid JSON: Expecting property name enclosed "
        "in double quotes: line 1 column 2 (char 1)",
        (ObjectKind.FLAG, "deep"): "JSON nested too deeply to parse",
        (ObjectKind.FLAG, "list"): "not a JSON object with an integer version",
    }
    texts = (None, "{x", "[]", '{"version":4}', DEEP)
    assert [stored_version(t) for t in texts] == [None, None, None, 4, None]


def test_unusable_items_are_logged_once_when_they_break_and_when_mended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = StoreStatusTracker("memory store")
    seen: list[DataStoreStatus] = []
    tracker.add(seen.append)
    bad = {(ObjectKind.FLAG, "f"): "JSON nested too deeply to parse"}
    with caplog.at_level(logging.WARNING, logger="aioflags"):
        for _ in range(3):
            tracker.malformed(bad)
            tracker.succeeded(0.0)
        tracker.malformed({})
    assert [r.getMessage() for r in caplog.records] == [
        "The memory store holds an unusable flag 'f' (JSON nested too deeply to "
        "parse): it is not served until a writer replaces it",
        "The memory store no longer holds the unusable flag 'f'",
    ]
    assert seen == [
        DataStoreStatus(malformed=frozenset({(ObjectKind.FLAG, "f")})),
        DataStoreStatus(),
    ]


def test_an_outage_is_logged_when_it_begins_once_a_minute_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = StoreStatusTracker("memory store")
    with caplog.at_level(logging.WARNING, logger="aioflags"):
        for now in (0.0, 0.5, 30.0, 59.5):
            tracker.failed(StoreFailure("down"), now)
        assert [r.getMessage() for r in caplog.records] == [
            "The memory store is unavailable: down"
        ]
        for now in (60.0, 60.5, 119.5, 120.0):
            tracker.failed(StoreFailure("still down"), now)
        tracker.succeeded(125.0, stale=True)
        tracker.failed(StoreFailure("again"), 200.0, announced=True)
        tracker.succeeded(200.5)
    assert [r.getMessage() for r in caplog.records][1:] == [
        "The memory store is still unavailable after 60 s (4 more failures since "
        "the last message): still down",
        "The memory store is still unavailable after 120 s (3 more failures since "
        "the last message): still down",
        "The memory store is available again (unavailable for 125 s)",
        # The caller reported the first failure itself (the data-source status).
        "The memory store is available again (unavailable for 0 s)",
    ]
    assert tracker.status == DataStoreStatus()
