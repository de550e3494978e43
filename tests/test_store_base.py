"""Store internals without Redis: status listeners, decoding stored items."""

from __future__ import annotations

import logging

import pytest

from aioflags import ChangeKind, ObjectKind
from aioflags._datasystem._stores._base import (
    DataStoreStatus,
    StoreFailure,
    StoreStatusTracker,
    decode_items,
    stored_version,
)


def test_a_failing_status_listener_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    tracker = StoreStatusTracker("memory store")

    def broken(status: DataStoreStatus) -> None:
        raise ValueError("listener bug")

    tracker.add(broken)
    with caplog.at_level(logging.ERROR, logger="aioflags"):
        tracker.failed(StoreFailure("down"))
    assert "status listener failed" in caplog.text
    assert tracker.status == DataStoreStatus(available=False)


@pytest.mark.asyncio
async def test_decoding_yields_to_the_event_loop_and_skips_bad_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aioflags._datasystem._stores import _base

    monkeypatch.setattr(_base, "_SLICE", -1.0)  # yield after every item
    changes = await decode_items(
        [
            (ObjectKind.FLAG, "a", '{"key":"a","version":1}'),
            (ObjectKind.FLAG, "b", "{not json"),
            (ObjectKind.SEGMENT, "c", '{"version":2,"deleted":true}'),
        ]
    )
    assert [(c.key, c.action) for c in changes] == [
        ("a", ChangeKind.PUT),
        ("c", ChangeKind.DELETE),
    ]
    assert [stored_version(t) for t in (None, "{x", "[]", '{"version":4}')] == [
        None,
        None,
        None,
        4,
    ]
