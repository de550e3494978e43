"""``matches`` patterns compiled when data arrives, off the loop (aioflags/_datasystem/_patterns.py)."""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest

from aioflags import Context
from aioflags._core._json import RAW_DATA, RAW_OBJECT
from aioflags._datasystem import _patterns
from aioflags._datasystem._datatypes import (
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
)
from aioflags._datasystem._patterns import (
    FoundPatterns,
    compile_patterns,
    held_patterns,
    patterns_by_item,
    patterns_in,
)
from aioflags._datasystem._payloads import ChangeSetBuilder, parse_fdv2_poll_text
from aioflags._datasystem._store import Store
from aioflags._evaluation import _regex
from aioflags._evaluation._regex import (
    MAX_PATTERN_LENGTH,
    Matcher,
    NoMatcher,
    compile_pattern,
)
from tests.flags import match_flag
from tests.test_ingest import poll_body
from tests.test_store import delete, delta, put


def big(tag: str) -> str:
    """An alternation of emails as long as a pattern may be (some 50 ms to compile)."""
    emails = "|".join(f"user{i}@big\\.example" for i in range(300))
    body = f"|{tag})$"
    return ("^(" + emails)[: MAX_PATTERN_LENGTH - len(body)] + body


def matches(*patterns: str, key: str = "f") -> dict[str, Any]:
    return match_flag(
        {"attribute": "email", "op": "matches", "values": list(patterns)}, key=key
    )


def held_by(store: Store) -> dict[str, Matcher | NoMatcher]:
    """What ``store`` holds, by pattern."""
    return {m.pattern: m for held in store._patterns.values() for m in held}


def segment(key: str, pattern: str) -> dict[str, Any]:
    clause = {"attribute": "email", "op": "matches", "values": [pattern]}
    return {
        "key": key,
        "version": 1,
        "rules": [{"id": "r", "clauses": [clause]}],
        "salt": "s",
    }


@pytest.fixture
def compiled_on(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each pattern ``compile_pattern`` compiles, with the thread it ran on."""
    seen: list[tuple[str, int]] = []
    real = _regex.compile_pattern

    def spy(pattern: str) -> Matcher | None:
        seen.append((pattern, threading.get_ident()))
        return real(pattern)

    monkeypatch.setattr(_regex, "compile_pattern", spy)
    return seen


@pytest.mark.asyncio
async def test_patterns_are_compiled_off_the_loop_before_any_evaluation(
    compiled_on: list[tuple[str, int]],
) -> None:
    """Ingest's path: the patterns of flags and segments, on a worker thread."""
    flag_pattern, segment_pattern = big("off-loop"), "off-loop-segment$"
    assert len(flag_pattern) == MAX_PATTERN_LENGTH
    body = poll_body(
        {
            "f": matches(flag_pattern),
            "plain": match_flag(
                {"attribute": "key", "op": "in", "values": ["u"]}, key="plain"
            ),
        },
        {"s": segment("s", segment_pattern)},
    )
    store = Store()
    await store.apply(await parse_fdv2_poll_text(body))
    loop = threading.get_ident()
    assert {p for p, _ in compiled_on} == {flag_pattern, segment_pattern}
    assert all(thread != loop for _, thread in compiled_on)
    held = held_by(store)[flag_pattern]
    assert isinstance(held, Matcher) and held.pattern == flag_pattern
    compiled_on.clear()
    ctx = Context.create("u", attributes={"email": "off-loop"})
    assert store.snapshot.variation("f", ctx, None) is True
    assert compiled_on == []  # the flag's first evaluation compiled nothing


@pytest.mark.asyncio
async def test_the_store_holds_its_patterns_whatever_the_cache_forgets(
    compiled_on: list[tuple[str, int]],
) -> None:
    pattern = "^held-by-the-store-(x+)+$"
    store = Store()
    await store.apply(await parse_fdv2_poll_text(poll_body({"f": matches(pattern)})))
    compile_pattern.cache_clear()  # 1024 other patterns since, say
    compiled_on.clear()
    ctx = Context.create("u", attributes={"email": "held-by-the-store-xx"})
    assert store.snapshot.variation("f", ctx, None) is True
    assert compiled_on == []


@pytest.mark.asyncio
async def test_a_delta_adds_patterns_and_a_full_transfer_replaces_them() -> None:
    store = Store()
    await store.apply(await parse_fdv2_poll_text(poll_body({"f": matches("^one$")})))
    changes = (put("g", matches("^two$", key="g")),)
    await store.apply(ChangeSet(intent=IntentCode.TRANSFER_CHANGES, changes=changes))
    assert set(held_by(store)) == {"^one$", "^two$"}
    await store.apply(
        await parse_fdv2_poll_text(poll_body({"h": matches("^three$", key="h")}))
    )
    assert set(held_by(store)) == {"^three$"}


@pytest.mark.asyncio
async def test_a_delta_replaces_a_changed_items_patterns_and_drops_a_deleted_ones() -> (
    None
):
    """What a store holds never outgrows its data between full transfers."""
    store = Store()
    body = poll_body(
        {"f": matches("^one$"), "g": matches("^two$", key="g")},
        {"s": segment("s", "^seg$")},
    )
    await store.apply(await parse_fdv2_poll_text(body))
    assert set(held_by(store)) == {"^one$", "^two$", "^seg$"}
    changed = {**matches("^uno$"), "version": 2}  # f's pattern changes (raw put)
    await store.apply(
        await parse_fdv2_poll_text(poll_body({"f": changed}, intent="xfer-changes"))
    )
    assert set(held_by(store)) == {"^uno$", "^two$", "^seg$"}
    await store.apply(delta(delete("g", 2), delete("s", 2, ObjectKind.SEGMENT)))
    assert set(held_by(store)) == {"^uno$"}
    plain = {**matches("^uno$"), "rules": [], "version": 3}  # its clause removed
    await store.apply(delta(put("f", plain)))
    assert held_by(store) == {}


@pytest.mark.asyncio
async def test_a_patch_the_store_refuses_leaves_its_patterns() -> None:
    store = Store()
    await store.apply(delta(put("f", {**matches("^new$"), "version": 5}), fdv1=True))
    await store.apply(delta(put("f", {**matches("^old$"), "version": 4}), fdv1=True))
    assert set(held_by(store)) == {"^new$"}


def test_the_sync_apply_compiles_them_too() -> None:
    store = Store()
    store.apply_now(
        ChangeSet(
            intent=IntentCode.TRANSFER_FULL,
            changes=(put("f", matches("^sync-apply$")), delete("gone", 2)),
        )
    )
    assert isinstance(held_by(store)["^sync-apply$"], Matcher)


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each function handed to a worker thread (``anyio.to_thread.run_sync``)."""
    seen: list[object] = []
    real = anyio.to_thread.run_sync

    async def spy(func: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    return seen


@pytest.mark.asyncio
async def test_a_change_set_with_nothing_to_compile_makes_no_thread_hop(
    hops: list[object],
) -> None:
    plain = match_flag({"attribute": "key", "op": "in", "values": ["u"]}, key="p")
    store = Store()
    await store.apply(
        await parse_fdv2_poll_text(
            poll_body({"f": matches("^kept-no-hop$"), "p": plain})
        )
    )
    assert hops == [compile_patterns]  # a new pattern: compiled off the loop
    hops.clear()

    async def changes(flag: dict[str, Any]) -> None:  # streamed, as raw puts
        body = poll_body({flag["key"]: flag}, intent="xfer-changes")
        await store.apply(await parse_fdv2_poll_text(body))

    await changes({**plain, "version": 2})  # no matches clause
    await changes(
        {**matches("^kept-no-hop$"), "version": 2, "fallthrough": {"variation": 0}}
    )
    await store.apply(
        delta(put("g", matches("^kept-no-hop$", key="g")))
    )  # held already
    await store.apply(delta(delete("p", 3)))
    assert hops == []
    ctx = Context.create("u", attributes={"email": "kept-no-hop"})
    assert store.snapshot.variation("g", ctx, None) is True
    await store.apply(delta(put("h", matches("^new-no-hop$", key="h"))))
    assert hops == [compile_patterns]


@pytest.mark.asyncio
async def test_patterns_that_never_match_are_held_and_never_parsed_again(
    compiled_on: list[tuple[str, int]], caplog: pytest.LogCaptureFixture
) -> None:
    invalid, too_long = "[", "x" * (MAX_PATTERN_LENGTH + 1)
    store = Store()
    await store.apply(
        await parse_fdv2_poll_text(poll_body({"f": matches(invalid, too_long)}))
    )
    assert [p for p, _ in compiled_on] == [invalid, too_long]
    assert all(isinstance(m, NoMatcher) for m in held_by(store).values())
    compile_pattern.cache_clear()  # 1024 other patterns since, say
    compiled_on.clear()
    caplog.clear()
    ctx = Context.create("u", attributes={"email": "x" * 10})
    assert store.snapshot.variation("f", ctx, None) is False
    assert compiled_on == []  # evaluation parsed neither again
    assert "never matches" not in caplog.text  # nor logged the long one again
    assert held_patterns([put("g", matches(invalid, key="g"))]) is not None


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (matches("a", "b", "a"), ["a", "b", "a"]),
        (segment("s", "c"), ["c"]),
        (
            {"rules": [{"clauses": [{"op": "matches", "values": ["d", 1, None]}]}]},
            ["d"],
        ),
        ({"rules": [{"clauses": [{"op": "in", "values": ["e"]}]}]}, []),
        ({"rules": "no"}, []),
        ({"rules": ["no", {"clauses": "no"}, {"clauses": ["no"]}]}, []),
        ({"rules": [{"clauses": [{"op": "matches", "values": "no"}]}]}, []),
        ("not an object", []),
    ],
)
def test_patterns_are_read_from_rules_whatever_their_shape(
    obj: Any, expected: list[str]
) -> None:
    assert list(patterns_in(obj)) == expected


def test_deletes_and_texts_without_the_operator_are_skipped() -> None:
    escaped = '{"rules": [{"clauses": [{"op": "m\\u0061tches", "values": ["esc"]}]}]}'
    items: list[Any] = [
        ("flag", "a", 1, '{"key": "a"}', RAW_OBJECT, 1, False),
        ("flag", "b", 2, '{"op": "matches"}', RAW_OBJECT, 2, True),  # deleted
        ("flag", "c", 1, escaped, RAW_OBJECT, 1, False),
        delete("d", 3),
    ]
    compiled = compile_patterns(items)
    assert list(compiled) == ["fc"]
    assert [m.pattern for m in compiled["fc"]] == ["esc"]
    assert delete("d", 3).action is ChangeKind.DELETE


@pytest.mark.asyncio
async def test_a_parsed_poll_body_brings_its_patterns_and_no_text_is_parsed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deleted = {**matches("^gone$", key="d"), "deleted": True}
    body = poll_body(
        {
            "f": matches("^a", "^b", "^a"),
            "e": matches("^esc$", key="e"),
            "d": deleted,
            "n": match_flag({"attribute": "k", "op": "in", "values": ["x"]}, key="n"),
        },
        {"s": segment("s", "^seg")},
    )
    # The operator spelled with an escape in one flag: found all the same.
    body = body.replace(
        '"op": "matches", "values": ["^esc$"]',
        '"op": "m\\u0061tches", "values": ["^esc$"]',
    )
    assert "m\\u0061tches" in body
    change_set = await parse_fdv2_poll_text(body)
    items, found = change_set._items, change_set._patterns
    assert found is not None
    expected = {"ff": ("^a", "^b"), "fe": ("^esc$",), "ss": ("^seg",)}
    assert patterns_by_item(items) == expected  # parsing the texts again
    with monkeypatch.context() as m:
        m.setattr(_patterns, "raw_object", no_reparse_guard)
        assert patterns_by_item(items, found) == expected
        store = Store()
        await store.apply(change_set)
        assert set(held_by(store)) == {"^a", "^b", "^esc$", "^seg"}
    ctx = Context.create("u", attributes={"email": "esc"})
    assert store.snapshot.variation("e", ctx, None) is True


def no_reparse_guard(raw: str, path: int) -> Any:
    raise AssertionError(f"parsed again: {raw[:40]}")


def test_a_streamed_put_brings_its_patterns_and_an_error_drops_them() -> None:
    builder = ChangeSetBuilder()
    builder.server_intent(
        {"payloads": [{"id": "p", "target": 1, "intentCode": "xfer-changes"}]}
    )
    data = {"kind": "flag", "key": "f", "version": 1, "object": matches("^x")}
    raw = json.dumps(data)
    builder.put_object(data, raw, RAW_DATA)
    builder.error()  # the server abandons the payload: its puts are dropped
    builder.put_object(data, raw, RAW_DATA)
    change_set = builder.payload_transferred({"state": "(p:2)", "version": 2})
    assert change_set._patterns == {raw: (RAW_DATA, ("^x",))}
    assert builder._patterns == {}


def test_patterns_found_at_another_path_of_the_same_text_are_not_used() -> None:
    raw = json.dumps(matches("^real$"))
    item = ("flag", "f", 1, raw, RAW_OBJECT, 1, False)
    wrong: FoundPatterns = {raw: (RAW_DATA, ("^not-this$",))}
    assert patterns_by_item([item], wrong) == {"ff": ("^real$",)}
    right: FoundPatterns = {raw: (RAW_OBJECT, ("^found$",))}
    assert patterns_by_item([item], right) == {"ff": ("^found$",)}
