"""The store: atomic snapshots, full vs delta vs FDv1 semantics, tombstones, dependents."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from aioflags import Context
from aioflags._datasystem._store import Store
from aioflags.sources import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    Selector,
)
from tests.sources import flag_json

USER = Context.create("u1")


def flag(key: str, version: int = 1, value: Any = True, **extra: Any) -> dict[str, Any]:
    return {**flag_json(key, value, version), **extra}


def put(key: str, obj: dict[str, Any], kind: ObjectKind = ObjectKind.FLAG) -> Change:
    return Change(
        action=ChangeKind.PUT, kind=kind, key=key, version=obj["version"], obj=obj
    )


def delete(key: str, version: int, kind: ObjectKind = ObjectKind.FLAG) -> Change:
    return Change(action=ChangeKind.DELETE, kind=kind, key=key, version=version)


def full(*changes: Change, state: str = "(p:1)") -> ChangeSet:
    return ChangeSet(
        intent=IntentCode.TRANSFER_FULL,
        changes=changes,
        selector=Selector(state=state, version=1),
    )


def delta(*changes: Change, fdv1: bool = False) -> ChangeSet:
    sel = Selector() if fdv1 else Selector(state="(p:2)", version=2)
    return ChangeSet(
        intent=IntentCode.TRANSFER_CHANGES,
        changes=changes,
        selector=sel,
        compare_versions=fdv1,
    )


def test_full_transfer_replaces_everything_and_reports_what_changed() -> None:
    store = Store()
    before = (store.initialized, store.selector.defined)
    assert before == (False, False)
    assert store.apply_now(full(put("a", flag("a")), put("b", flag("b")))) == {"a", "b"}
    assert (store.initialized, store.selector) == (
        True,
        Selector(state="(p:1)", version=1),
    )
    old = store.snapshot
    changed = store.apply_now(
        full(put("a", flag("a")), put("c", flag("c")), state="(p:3)")
    )
    assert changed == {"b", "c"}  # b removed, c added, a unchanged (same version)
    assert store.snapshot.flag_keys == {"a", "c"}
    assert old.flag_keys == {
        "a",
        "b",
    }  # the old snapshot is untouched: swaps are atomic


def test_fdv2_deltas_do_not_compare_versions() -> None:
    store = Store()
    store.apply_now(full(put("a", flag("a", 5, "new"))))
    assert store.apply_now(delta(put("a", flag("a", 2, "older")))) == {"a"}
    assert store.snapshot.variation("a", USER, None) == "older"
    assert store.selector.state == "(p:2)"


def test_fdv1_patches_compare_versions_and_reset_the_selector() -> None:
    store = Store()
    store.apply_now(full(put("a", flag("a", 5, "v5"))))
    assert (
        store.apply_now(delta(put("a", flag("a", 4, "v4")), fdv1=True)) == frozenset()
    )
    assert store.snapshot.variation("a", USER, None) == "v5"
    assert store.apply_now(delta(put("a", flag("a", 6, "v6")), fdv1=True)) == {"a"}
    assert store.snapshot.variation("a", USER, None) == "v6"
    assert not store.selector.defined


def test_deletes_leave_tombstones_that_older_versions_cannot_resurrect() -> None:
    store = Store()
    store.apply_now(
        full(
            put("a", flag("a", 1)),
            put("s", {"key": "s", "version": 1}, ObjectKind.SEGMENT),
        )
    )
    assert store.apply_now(delta(delete("a", 3), fdv1=True)) == {"a"}
    assert (
        store.snapshot.variation_detail("a", USER, None).error_kind == "FLAG_NOT_FOUND"
    )
    assert store.apply_now(delta(put("a", flag("a", 2)), fdv1=True)) == frozenset()
    assert (
        store.snapshot.variation_detail("a", USER, None).error_kind == "FLAG_NOT_FOUND"
    )
    store.apply_now(delta(delete("s", 2, ObjectKind.SEGMENT)))
    # A full transfer that still lists a deleted item keeps it deleted.
    changed = store.apply_now(
        full(
            put("b", flag("b")),
            Change(action=ChangeKind.DELETE, kind=ObjectKind.FLAG, key="a", version=3),
        )
    )
    assert changed == {"b"}


def test_intent_none_changes_nothing() -> None:
    store = Store()
    store.apply_now(full(put("a", flag("a"))))
    assert store.apply_now(ChangeSet.no_changes()) == frozenset()
    assert store.selector.state == "(p:1)"


def test_changes_propagate_through_prerequisites_and_segments() -> None:
    store = Store()
    seg_rule = {
        "clauses": [{"attribute": "", "op": "segmentMatch", "values": ["inner"]}]
    }
    store.apply_now(
        full(
            put("base", flag("base")),
            put(
                "child", flag("child", prerequisites=[{"key": "base", "variation": 0}])
            ),
            put(
                "grandchild",
                flag("grandchild", prerequisites=[{"key": "child", "variation": 0}]),
            ),
            put(
                "by-segment",
                flag(
                    "by-segment",
                    rules=[
                        {
                            "clauses": [
                                {
                                    "attribute": "",
                                    "op": "segmentMatch",
                                    "values": ["outer"],
                                }
                            ],
                            "variation": 0,
                        }
                    ],
                ),
            ),
            put(
                "outer",
                {"key": "outer", "version": 1, "rules": [seg_rule]},
                ObjectKind.SEGMENT,
            ),
            put("inner", {"key": "inner", "version": 1}, ObjectKind.SEGMENT),
            put("unrelated", flag("unrelated")),
        )
    )
    assert store.apply_now(delta(put("base", flag("base", 2)))) == {
        "base",
        "child",
        "grandchild",
    }
    assert store.apply_now(
        delta(put("inner", {"key": "inner", "version": 2}, ObjectKind.SEGMENT))
    ) == {"by-segment"}
    # After "child" drops its prerequisite, base no longer reaches it.
    store.apply_now(delta(put("child", flag("child", 3))))
    assert store.apply_now(delta(put("base", flag("base", 4)))) == {"base"}


@pytest.mark.slow
@pytest.mark.asyncio
async def test_large_payloads_are_compiled_in_slices_that_let_the_loop_run() -> None:
    store = Store()
    many = full(
        *(
            put(
                f"f{i}",
                flag(
                    f"f{i}",
                    rules=[
                        {
                            "clauses": [
                                {
                                    "attribute": "email",
                                    "op": "matches",
                                    "values": [f"^user{i}@"],
                                }
                            ],
                            "variation": 0,
                        }
                    ],
                ),
            )
            for i in range(3000)
        )
    )
    ticks = 0

    async def ticker() -> None:
        # A probe, not a synchronisation: it counts the loop's turns. It
        # sleeps between them rather than spin, so that the worker thread
        # compiling the patterns is not starved of the GIL (under coverage,
        # a spinning probe made this test take minutes).
        nonlocal ticks
        while True:
            await anyio.sleep(0.001)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.lowlevel.checkpoint()
        start = ticks
        changed = await store.apply(many)
        tg.cancel_scope.cancel()
    assert len(changed) == 3000
    assert ticks - start > 1  # the loop ran other tasks while the payload was compiled


def test_segments_in_full_transfers_are_tracked() -> None:
    store = Store()
    store.apply_now(full(put("s", {"key": "s", "version": 1}, ObjectKind.SEGMENT)))
    assert (
        store.apply_now(full(put("s", {"key": "s", "version": 2}, ObjectKind.SEGMENT)))
        == frozenset()
    )
