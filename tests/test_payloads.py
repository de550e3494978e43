"""Payload assembly: FDv2 events and polling bodies, FDv1 payloads (protocol.md §2, §4, §5)."""

from __future__ import annotations

from typing import Any

import pytest

from aioflags._datasystem._payloads import (
    ChangeSetBuilder,
    fdv1_delete,
    fdv1_full,
    fdv1_patch,
    parse_fdv2_poll,
)
from aioflags.sources import ChangeKind, IntentCode, ObjectKind, ProtocolError, Selector

INTENT_FULL = {
    "payloads": [
        {"id": "p", "target": 1, "intentCode": "xfer-full", "reason": "payload-missing"}
    ]
}
INTENT_NONE = {
    "payloads": [{"id": "p", "target": 1, "intentCode": "none", "reason": "up-to-date"}]
}
PUT = {"kind": "flag", "key": "f", "version": 3, "object": {"key": "f", "version": 3}}
DONE = {"state": "(p:1)", "version": 1}


def test_builder_full_then_deltas() -> None:
    b = ChangeSetBuilder()
    assert b.intent is None
    b.server_intent(INTENT_FULL)
    b.put_object(PUT)
    b.delete_object({"kind": "segment", "key": "s", "version": 2})
    cs = b.payload_transferred(DONE)
    assert cs.intent is IntentCode.TRANSFER_FULL and cs.selector == Selector(
        state="(p:1)", version=1
    )
    assert [(c.action, c.kind, c.key) for c in cs.changes] == [
        (ChangeKind.PUT, ObjectKind.FLAG, "f"),
        (ChangeKind.DELETE, ObjectKind.SEGMENT, "s"),
    ]
    b.put_object(PUT)
    assert (
        b.payload_transferred({"state": "(p:2)", "version": 2}).intent
        is IntentCode.TRANSFER_CHANGES
    )


def test_builder_error_drops_pending_and_keeps_intent_none_means_deltas() -> None:
    b = ChangeSetBuilder()
    assert b.server_intent(INTENT_NONE) is IntentCode.TRANSFER_NONE
    b.put_object(PUT)
    b.error()
    b.put_object({**PUT, "key": "g"})
    cs = b.payload_transferred(DONE)
    assert cs.intent is IntentCode.TRANSFER_CHANGES and [c.key for c in cs.changes] == [
        "g"
    ]
    b.reset()
    with pytest.raises(ProtocolError, match="without a server-intent"):
        b.payload_transferred(DONE)


def test_builder_ignores_unknown_kinds() -> None:
    b = ChangeSetBuilder()
    b.server_intent(INTENT_FULL)
    b.put_object({**PUT, "kind": "gizmo"})
    b.delete_object({"kind": "gizmo", "key": "g", "version": 1})
    assert b.payload_transferred(DONE).changes == ()


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("server_intent", []),
        ("server_intent", {"payloads": []}),
        ("server_intent", {"payloads": [{"intentCode": "bogus"}]}),
        ("payload_transferred", {"state": "x"}),
    ],
)
def test_builder_rejects_bad_events(method: str, data: Any) -> None:
    b = ChangeSetBuilder()
    b.server_intent(INTENT_FULL)
    with pytest.raises(ProtocolError):
        getattr(b, method)(data)


@pytest.mark.parametrize(
    ("method", "data", "said"),
    [
        (
            "put_object",
            {"kind": "flag", "key": "f", "version": "1", "object": {}},
            "flag 'f', whose put-object has no integer 'version'",
        ),
        (
            "put_object",
            {"kind": "segment", "key": "f", "version": 1},
            "segment 'f', whose put-object has no 'object' that is an object",
        ),
        (
            "delete_object",
            {"kind": "flag", "key": "f", "version": None},
            "flag 'f', whose delete-object has no integer 'version'",
        ),
    ],
)
def test_an_object_the_builder_cannot_use_is_put_with_no_object(
    method: str, data: Any, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    b = ChangeSetBuilder()
    b.server_intent(INTENT_FULL)
    getattr(b, method)(data)
    b.put_object(PUT)
    (unusable, good) = b.payload_transferred(DONE).changes
    assert (unusable.action, unusable.key, unusable.obj) == (ChangeKind.PUT, "f", None)
    assert unusable.kind.value == data["kind"] and good.obj == PUT["object"]
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said in line and "answers MALFORMED_FLAG" in line


def test_parse_poll() -> None:
    body = {
        "events": [
            {"event": "server-intent", "data": INTENT_FULL},
            {"event": "heart-beat", "data": {}},
            {"data": {}},
            {"event": "put-object", "data": PUT},
            {
                "event": "delete-object",
                "data": {"kind": "flag", "key": "g", "version": 1},
            },
            {"event": "payload-transferred", "data": DONE},
            {"event": "put-object", "data": {**PUT, "key": "ignored-after-transfer"}},
        ]
    }
    cs = parse_fdv2_poll(body)
    assert [c.key for c in cs.changes] == ["f", "g"]
    none = parse_fdv2_poll(
        {"events": [{"event": "server-intent", "data": INTENT_NONE}]}
    )
    assert none.intent is IntentCode.TRANSFER_NONE and none.changes == ()


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"events": "x"},
        {"events": [1]},
        {"events": [{"event": "server-intent", "data": INTENT_FULL}]},
    ],
)
def test_parse_poll_rejects(body: Any) -> None:
    with pytest.raises(ProtocolError):
        parse_fdv2_poll(body)


def test_fdv1_payloads() -> None:
    cs = fdv1_full(
        {
            "flags": {"f": {"key": "f", "version": 1}},
            "segments": {"s": {"key": "s", "version": 2}},
        }
    )
    assert cs.intent is IntentCode.TRANSFER_FULL and not cs.selector.defined
    assert [(c.kind, c.key, c.version) for c in cs.changes] == [
        (ObjectKind.FLAG, "f", 1),
        (ObjectKind.SEGMENT, "s", 2),
    ]
    assert fdv1_full({"flags": {}}).changes == ()
    patch = fdv1_patch({"path": "/segments/s", "data": {"key": "s", "version": 3}})
    assert (
        patch is not None
        and patch.compare_versions
        and patch.changes[0].kind is ObjectKind.SEGMENT
    )
    removal = fdv1_delete({"path": "/flags/f", "version": 4})
    assert removal is not None and removal.changes[0].action is ChangeKind.DELETE
    assert fdv1_patch({"path": "/other/x", "data": {}}) is None
    assert fdv1_delete({"path": "/flags/", "version": 1}) is None


@pytest.mark.parametrize(
    ("fn", "data"),
    [
        (fdv1_full, []),
        (fdv1_full, {"flags": []}),
        (fdv1_patch, {"path": "/flags/f", "data": {"key": "f"}}),
        (fdv1_delete, {"path": "/flags/f"}),
    ],
)
def test_fdv1_rejects(fn: Any, data: Any) -> None:
    with pytest.raises(ProtocolError):
        fn(data)


def test_fdv1_puts_what_it_cannot_use_with_no_object_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    long = "k" * 500
    body = {
        "flags": {"f": {"key": "f"}, "g": {"version": 2}, long: 5},
        "segments": {"s": None},
    }
    changes = fdv1_full(body).changes
    assert [(c.key, c.version, c.obj) for c in changes] == [
        ("f", 0, None),
        ("g", 2, {"version": 2}),
        (long, 0, None),
        ("s", 0, None),
    ]
    (said,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said.startswith("Could not use 3 objects of the flag data: flag 'f', ")
    assert f"flag {'k' * 100!r}..., not an object" in said and long not in said
    assert "segment 's'" in said and "answers MALFORMED_FLAG" in said


def test_builder_skips_objects_of_no_shape_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = ChangeSetBuilder()
    b.server_intent(INTENT_FULL)
    b.put_object("x")
    b.put_object({"kind": 7, "key": "f", "version": 1, "object": {}})
    b.delete_object([])
    b.put_object({"kind": "flag", "key": None, "version": 1, "object": {}})
    b.put_object({"kind": "gizmo", "object": "later protocols may say anything"})
    b.put_object(PUT)
    assert [c.key for c in b.payload_transferred(DONE).changes] == ["f"]
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1 and said[0].startswith("Could not use 4 objects")
    assert "a delete-object whose data is not an object" in said[0]
    assert "MALFORMED_FLAG" not in said[0]  # (none named: all skipped)
    b.server_intent(INTENT_FULL)
    b.payload_transferred(DONE)  # a clean payload says nothing
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
