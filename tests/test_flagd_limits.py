"""flagd documents of any depth and width, and what is sized by input (issue 94).

Whatever shape flagd's provider evaluates, aioflags evaluates alike: an
else-if chain hundreds long, rules nested deeper than Python's recursion
limit (which aioflags leaves as it is), an ``or``/``and``/``if`` of
thousands of operands, built in time linear in their size. ``sem_ver``'s
cache of parsed versions is bounded by count and entry size; the
``sync_context`` is one object shared by the flags, not a copy each, and
what flags share (``$evaluators`` rules, the ``sync_context``) is written
once wherever flag data is written out: ``serve``'s ``/sdk/latest-all``,
a message's plane and saved-state events, the next message's digests
(docs/flagd.md, "Limits").
"""

from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from typing import Any

import anyio
import pytest

from aioflags import Context
from aioflags._datasystem._sources._versions import ContentVersions
from aioflags._datasystem._store import Store, snapshot_from_data
from aioflags._evaluation._model import compile_flag
from aioflags._systems._flagd._data._definitions import flagd_flags
from aioflags._systems._flagd._engine import _compile as _flagd
from aioflags._systems._flagd._engine import _jsonlogic
from aioflags._systems._flagd._engine import _operators as _flagdops
from aioflags._systems._flagd._engine._compile import targeting_outcomes
from aioflags._systems._flagd._engine._jsonlogic import build_targeting
from aioflags.sources import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    Selector,
)
from tests.processes import HTTP_GUARD

VARIANTS = {"on": True, "off": False}


def document(targeting: Any, **top: Any) -> dict[str, Any]:
    flag = {
        "state": "ENABLED",
        "variants": VARIANTS,
        "defaultVariant": "off",
        "targeting": targeting,
    }
    return {"flags": {"f": flag}, **top}


class Flag:
    """Flag ``f`` of a document, compiled once, evaluated for attributes."""

    def __init__(self, doc: dict[str, Any], **read: Any) -> None:
        self.snapshot = snapshot_from_data(dict(flagd_flags(doc, **read)))

    def __call__(self, **attributes: Any) -> tuple[Any, str]:
        context = Context.create("u", attributes=attributes)
        detail = self.snapshot.variation_detail("f", context, None)
        return detail.value, detail.reason["kind"]


def evaluate(doc: dict[str, Any], **attributes: Any) -> tuple[Any, str]:
    return Flag(doc)(**attributes)


def n_is(i: int) -> dict[str, Any]:
    return {"==": [{"var": "n"}, i]}


def else_if_chain(length: int, on: Any = "on", off: Any = "off") -> Any:
    """``if n == 0: on else if n == 1: off ... else off``, each if in the last's else."""
    rule: Any = off
    for i in reversed(range(length)):
        rule = {"if": [n_is(i), on if i % 2 == 0 else off, rule]}
    return rule


@pytest.mark.slow
# ------------------------------------------------------------------ J1: depth
@pytest.mark.parametrize("length", [248, 1_200])
def test_J1_an_else_if_chain_hundreds_long_evaluates(length: int) -> None:
    f = Flag(document(else_if_chain(length)))
    assert f(n=0) == (True, "TARGETING_MATCH")
    assert f(n=length - 1) == (length % 2 == 1, "TARGETING_MATCH")
    assert f(n=length - 2) == (length % 2 == 0, "TARGETING_MATCH")
    assert f(n=-1) == (False, "TARGETING_MATCH")


def test_J1_an_else_if_chain_inside_an_operator_evaluates() -> None:
    """The chain as a value (not the rule itself): one flat expression too."""
    chain = else_if_chain(300, on=True, off=False)
    doc = document({"if": [{"!": [{"!": [chain]}]}, "on", "off"]})
    assert evaluate(doc, n=298) == (True, "TARGETING_MATCH")
    assert evaluate(doc, n=299) == (False, "TARGETING_MATCH")


@pytest.mark.slow
def test_J1_rules_nested_deeper_than_the_recursion_limit_evaluate() -> None:
    limit = sys.getrecursionlimit()
    depth = limit + 500
    nots: Any = {"var": "x"}
    for _ in range(depth):  # (an even count: !!...!x is x's truthiness)
        nots = {"!": [nots]}
    ands: Any = {"var": "x"}
    for i in range(depth):
        ands = {"and": [{"!": [n_is(i)]}, ands]}
    deep_list: Any = [{"var": "x"}]
    for _ in range(depth):
        deep_list = [deep_list]
    cases: list[tuple[Any, dict[str, Any], bool]] = [
        (nots, {"x": "yes"}, True),
        (nots, {"x": ""}, False),
        (ands, {"x": 1, "n": -1}, True),
        (ands, {"x": 1, "n": 700}, False),
        ({"!!": [deep_list]}, {}, True),
    ]
    for rule, attributes, value in cases:
        doc = document({"if": [rule, "on", "off"]})
        assert evaluate(doc, **attributes) == (value, "TARGETING_MATCH")
    assert sys.getrecursionlimit() == limit  # (a library changes nothing global)


@pytest.mark.slow
def test_J1_past_4800_levels_the_flag_alone_is_refused_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def nots(depth: int) -> Any:
        rule: Any = {"var": "x"}
        for _ in range(depth):
            rule = {"!": [rule]}
        return {"if": [rule, "on", "off"]}

    doc = {
        "flags": {
            "deep": {**document(nots(4_700))["flags"]["f"]},
            "too-deep": {**document(nots(4_900))["flags"]["f"]},
            "plain": {**document(nots(2))["flags"]["f"]},
        }
    }
    snapshot = snapshot_from_data(dict(flagd_flags(doc)))
    user = Context.create("u", attributes={"x": 1})
    assert snapshot.variation_detail("deep", user, None).value is True
    assert snapshot.variation_detail("plain", user, None).value is True
    refused = snapshot.variation_detail("too-deep", user, None)
    assert refused.reason == {"kind": "ERROR", "errorKind": "PARSE_ERROR"}
    assert "nested deeper than 4800 levels" in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.slow
def test_J1_a_deep_evaluator_is_read_without_recursion() -> None:
    shared: Any = {"var": "x"}
    for _ in range(3 * sys.getrecursionlimit()):
        shared = {"!": [shared]}
    doc = document(
        {"if": [{"$ref": "deep"}, "on", "off"]},
        **{"$evaluators": {"deep": shared}},
    )
    deep_rule: Any = {"if": [[[[[[{"$ref": "deep"}]]]]], "on"]}
    for _ in range(2 * sys.getrecursionlimit()):
        deep_rule = {"if": [False, "off", deep_rule]}
    flags = flagd_flags(document(deep_rule, **{"$evaluators": {"deep": shared}}))
    assert flags["f"]["flagd"]["targeting"] is not deep_rule  # (read, not kept)
    assert evaluate(doc, x=True) == (True, "TARGETING_MATCH")


@pytest.mark.slow
def test_J1_what_a_deep_chain_can_serve_is_read_without_recursion() -> None:
    names, none = targeting_outcomes(else_if_chain(3 * sys.getrecursionlimit()))
    assert names == frozenset({"on", "off"})
    assert none is False
    flag = compile_flag("f", flagd_flags(document(else_if_chain(2_000)))["f"])
    assert flag.malformed is None
    assert flag.targeting_serves == ((0, 1), False, 1)


# ------------------------------------------------------------------ J2: width
def wide(op: str, n: int) -> dict[str, Any]:
    return {op: [n_is(i) if op == "or" else {"!": [n_is(i)]} for i in range(n)]}


@pytest.mark.slow
@pytest.mark.parametrize("op", ["or", "and"])
def test_J2_an_and_or_of_100000_conditions_evaluates(op: str) -> None:
    """(~10 s each on a busy machine: compiling 4 MB of Python)"""
    f = Flag(document({"if": [wide(op, 100_000), "on", "off"]}))
    if op == "or":
        assert f(n=99_999) == (True, "TARGETING_MATCH")
        assert f(n=0) == (True, "TARGETING_MATCH")
        assert f(n=100_000) == (False, "TARGETING_MATCH")
    else:
        assert f(n=99_999) == (False, "TARGETING_MATCH")
        assert f(n=100_000) == (True, "TARGETING_MATCH")


@pytest.mark.slow
@pytest.mark.parametrize("n", [197, 1_000])
def test_J2_an_and_or_past_196_conditions_is_not_malformed(n: int) -> None:
    f = Flag(document({"if": [wide("or", n), "on", "off"]}))
    assert f(n=n - 1) == (True, "TARGETING_MATCH")
    assert f(n=n) == (False, "TARGETING_MATCH")
    # a part Python's truthiness cannot test (a number): kept and given
    mixed = {"or": [{"var": "z"}, *wide("or", n)["or"], {"var": "last"}]}
    rule = {"if": [{"==": [mixed, 5]}, "on", "off"]}
    f = Flag(document(rule))
    assert f(z=0, n=-1, last=5) == (True, "TARGETING_MATCH")
    assert f(z=5, n=-1) == (True, "TARGETING_MATCH")
    assert f(z=0, n=3, last=5) == (False, "TARGETING_MATCH")
    rule = {"if": [{"==": [{"and": [1, *[{"var": "z"}] * n]}, 0]}, "on", "off"]}
    f = Flag(document(rule))
    assert f(z=0) == (True, "TARGETING_MATCH")
    assert f(z=2) == (False, "TARGETING_MATCH")


@pytest.mark.slow
@pytest.mark.parametrize("pairs", [300, 5_000])
def test_J2_an_if_of_thousands_of_pairs_evaluates(pairs: int) -> None:
    args: list[Any] = []
    tests: list[Any] = []
    for i in range(pairs):
        args += [n_is(i), "on" if i % 3 else "off"]
        tests += [n_is(i), bool(i % 3)]
    for rule in (
        {"if": [*args, "off"]},  # the rule: statements
        {"if": [{"if": [*tests, False]}, "on", "off"]},  # a value
    ):
        f = Flag(document(rule))
        assert f(n=pairs - 1) == (bool((pairs - 1) % 3), "TARGETING_MATCH")
        assert f(n=1) == (True, "TARGETING_MATCH")
        assert f(n=3) == (False, "TARGETING_MATCH")
    assert evaluate(document({"if": [*args, "on"]}), n=-1) == (
        True,
        "TARGETING_MATCH",
    )


def build_seconds(n: int) -> float:
    rule = {"if": [wide("or", n), "on", {"if": [wide("and", n), "off", "on"]}]}
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        build_targeting(rule, f"f{n}")
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.slow
def test_J2_building_is_linear_in_the_width() -> None:
    """Four times the conditions, about four times the work (CPU time, best of three)."""
    small, large = build_seconds(2_000), build_seconds(8_000)
    assert large < 8 * small, (small, large)  # (quadratic: 16 times)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_J2_a_large_targeting_is_built_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store builds it on a worker thread; the first evaluation builds nothing."""
    builds: list[int] = []
    build = _jsonlogic.build_targeting

    def recorded(*args: Any, **kwargs: Any) -> Any:
        builds.append(threading.get_ident())
        return build(*args, **kwargs)

    monkeypatch.setattr(_flagd, "build_targeting", recorded)
    flags = flagd_flags(document({"if": [wide("or", 5_000), "on", "off"]}))
    changes = tuple(
        Change(action=ChangeKind.PUT, kind=ObjectKind.FLAG, key=k, version=1, obj=v)
        for k, v in flags.items()
    )
    store = Store()
    ticks = 0

    async def ticker() -> None:
        # (a probe, not a synchronisation: it counts the loop's turns)
        nonlocal ticks
        while True:
            await anyio.sleep(0.001)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.lowlevel.checkpoint()
        start = ticks
        await store.apply(
            ChangeSet(
                intent=IntentCode.TRANSFER_FULL,
                changes=changes,
                selector=Selector(state="(p:1)", version=1),
            )
        )
        during = ticks - start
        tg.cancel_scope.cancel()
    assert len(builds) == 1
    assert builds[0] != threading.get_ident()
    assert during > 1  # the loop ran other tasks while the rule was built
    user = Context.create("u", attributes={"n": 4_999})
    assert store.snapshot.variation_detail("f", user, None).value is True
    assert len(builds) == 1  # (taken as built)


# ---------------------------------------------------------------- J3: sem_ver
def long_version(i: int, size: int) -> str:
    """A valid version of ``size`` characters: a long pre-release, distinct by ``i``."""
    head = f"1.0.{i}-"
    return head + ".".join(["a"] * ((size - len(head)) // 2))


def retained_by_sem_ver(versions: list[str]) -> int:
    rule = {"if": [{"sem_ver": [{"var": "v"}, ">=", "0.1.0"]}, "on", "off"]}
    snapshot = snapshot_from_data(dict(flagd_flags(document(rule))))
    snapshot.variation_detail("f", Context.create("u", attributes={"v": "1"}), None)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for version in versions:
            context = Context.create("u", attributes={"v": version})
            assert snapshot.variation_detail("f", context, None).value is True
        del context
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_J3_sem_ver_keeps_no_long_version() -> None:
    """20 distinct 64 KB versions from the context: nothing of them kept."""
    versions = [long_version(i, 64 * 1024) for i in range(20)]
    retained = retained_by_sem_ver(versions)
    # (each parses to ~3 MB: kept, 20 would hold 60 MB)
    assert retained < 1_000_000, retained


def test_J3_sem_ver_keeps_a_bounded_number_of_short_versions() -> None:
    count = _flagdops.CACHED_VERSIONS
    versions = [
        long_version(i, _flagdops.CACHED_VERSION_LENGTH) for i in range(count * 3)
    ]
    retained = retained_by_sem_ver(versions)
    assert len(_flagdops._versions) == count
    assert versions[-1] in _flagdops._versions  # (the last ones are kept)
    assert retained < 20_000 * count, retained  # (~4 MB at most, docs/flagd.md)


# -------------------------------------------------------- J4: shared, not copied
def big_context(size: int) -> dict[str, Any]:
    return {f"attribute-{i}": f"value-{i}" for i in range(size // 32)}


@pytest.mark.slow
def test_J4_the_sync_context_is_one_object_for_every_flag() -> None:
    context = big_context(225 * 1024)
    flags = {
        f"f{i}": {
            "state": "ENABLED",
            "variants": VARIANTS,
            "defaultVariant": "off",
            "targeting": {"if": [{"var": "attribute-1"}, "on", "off"]},
        }
        for i in range(2_000)
    }
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        read = flagd_flags({"flags": flags}, context=context)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(flag["flagd"]["context"] is context for flag in read.values())
    # (a copy each: 2,000 dicts of 7,200 entries, ~600 MB)
    assert grown < 20_000_000, grown


def test_J4_a_large_sync_context_costs_no_copy_per_evaluation() -> None:
    context = big_context(225 * 1024)
    doc = document({"if": [{"==": [{"var": "attribute-7"}, "value-7"]}, "on", "off"]})
    snapshot = snapshot_from_data(dict(flagd_flags(doc, context=context)))
    user = Context.create("u", attributes={"n": 1})
    assert snapshot.variation_detail("f", user, None).value is True
    tracemalloc.start()
    try:
        for _ in range(10):
            assert snapshot.variation_detail("f", user, None).value is True
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000, peak  # (a merged copy: ~300 KB an evaluation)
    own = Context.create("u", attributes={"attribute-7": "mine"})
    assert snapshot.variation_detail("f", own, None).value is False


@pytest.mark.slow
def test_J4_successive_sync_messages_keep_no_copy_of_the_context_per_flag() -> None:
    """The content versions keep a digest of each flag, not its JSON (context and all)."""
    context = {"blob": "x" * 100 * 1024, "attribute-1": True}
    flags = {
        f"f{i}": {
            "state": "ENABLED",
            "variants": VARIANTS,
            "defaultVariant": "off",
            "targeting": {"if": [{"var": "attribute-1"}, "on", "off"]},
        }
        for i in range(200)
    }
    versions = ContentVersions()
    versions.stamp("flag", flagd_flags({"flags": flags}, context=context))
    tracemalloc.start()
    try:
        read = flagd_flags({"flags": flags}, context=context)
        stamped = versions.stamp("flag", read)
        del read
        retained = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert {flag["version"] for flag in stamped.values()} == {1}
    # (each flag's JSON kept: 200 x 100 KB, 20 MB)
    assert retained < 2_000_000, retained
    changed = flagd_flags({"flags": flags}, context={**context, "attribute-1": 0})
    assert {flag["version"] for flag in versions.stamp("flag", changed).values()} == {2}


# ------------------------------------ J4: what flags share is written once
def shared_document(flags: int, emails: int) -> dict[str, Any]:
    """``flags`` flags, each ``$ref``-ing one large shared evaluator (``emails`` long)."""
    big = {"in": [{"var": "email"}, [f"user-{i}@example.com" for i in range(emails)]]}
    return {
        "$evaluators": {"listed": big, "small": {"==": [{"var": "n"}, 1]}},
        "flags": {
            f"f{i}": {
                "state": "ENABLED",
                "variants": VARIANTS,
                "defaultVariant": "off",
                "targeting": {
                    "if": [{"or": [{"$ref": "listed"}, {"$ref": "small"}]}, "on", "off"]
                },
            }
            for i in range(flags)
        },
    }


def written(change_set: ChangeSet) -> int:
    """The bytes the flag plane and saved state write of ``change_set`` (its event texts)."""
    from aioflags._datasystem._mirror import EventMirror

    texts = EventMirror().prepare(change_set).texts
    return sum(len(text or "") for _, _, _, text in texts)


async def first_flagd_update(server: Any, **options: Any) -> Any:
    """A flagd synchronizer's first update, read directly from the source."""
    from contextlib import aclosing

    import httpx

    from aioflags import DataSystem
    from tests.sources import source_context

    system = DataSystem.flagd(server.target, **options)
    async with httpx.AsyncClient(timeout=HTTP_GUARD) as http:
        source = system.synchronizers[0](source_context(http))
        async with aclosing(source) as updates:
            return await anext(updates)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_J4_serve_s_latest_all_writes_a_shared_evaluator_once(
    tmp_path: Any,
) -> None:
    """A 70 KB evaluator shared by 200 flags: /sdk/latest-all was 200 copies (14 MB)."""
    import json

    import httpx

    from aioflags import Client
    from aioflags._datasystem._sources._watch import FlagFileWatcher
    from aioflags.testing import FakeClock, FlagServer

    path = tmp_path / "flags.json"
    path.write_text(json.dumps(shared_document(200, 3_000)))
    size = path.stat().st_size
    loaded = FlagFileWatcher((path,), FakeClock()).load()  # (serve's reading)
    async with FlagServer(loaded.flags, loaded.segments) as server:
        async with httpx.AsyncClient(timeout=HTTP_GUARD) as http:
            answer = await http.get(server.url + "/sdk/latest-all")
        assert answer.status_code == 200
        assert len(answer.content) <= 2 * size, (len(answer.content), size)
        # A client of that serve evaluates as the document says.
        async with Client(server.config(send_events=False)) as client:
            listed = Context.create("u", attributes={"email": "user-2999@example.com"})
            assert await client.variation("f199", listed, None) is True
            small = Context.create("u", attributes={"n": 1})
            assert await client.variation("f0", small, None) is True
            other = Context.create("u", attributes={"email": "x", "n": 2})
            assert await client.variation("f7", other, None) is False


@pytest.mark.slow
@pytest.mark.asyncio
async def test_J4_a_sync_message_s_change_set_writes_a_shared_evaluator_once() -> None:
    """What a plane and saved state write of a message, and what the next digests, is its size."""
    import json

    from aioflags._datasystem._sources import _versions
    from aioflags.testing import FlagdServer

    doc = shared_document(200, 3_000)
    size = len(json.dumps(doc))
    async with FlagdServer(doc) as server:
        update = await first_flagd_update(server)
    assert written(update.change_set) <= 2 * size, (written(update.change_set), size)
    flags = {
        c.key: c.obj for c in update.change_set.changes if c.kind is ObjectKind.FLAG
    }
    # (what the next message's content versions digest: each flag's JSON)
    digested = sum(len(_versions._content(flag)) for flag in flags.values() if flag)
    assert digested <= size, (digested, size)
    from aioflags._systems._flagd._data._shared import link

    linked, _ = link(update.change_set, {})
    parts = [
        c.obj["flagd"] for c in linked.changes if c.kind is ObjectKind.FLAG and c.obj
    ]
    listed = doc["$evaluators"]["listed"]
    assert all(part["targeting"]["if"][0]["or"][0] == listed for part in parts)
    assert len({id(part["targeting"]["if"][0]["or"][0]) for part in parts}) == 1


@pytest.mark.slow
@pytest.mark.asyncio
async def test_J4_a_large_sync_context_over_many_flags_is_written_once() -> None:
    """A 100 KB sync_context over 200 targeting flags: written 200 times (20 MB) before."""
    import json

    from aioflags.testing import FlagdServer

    context = big_context(100 * 1024)
    doc = document({"if": [{"var": "attribute-1"}, "on", "off"]})
    doc["flags"] = {f"f{i}": doc["flags"]["f"] for i in range(200)}
    size = len(json.dumps(doc)) + len(json.dumps(context))
    async with FlagdServer(doc, sync_context=context) as server:
        update = await first_flagd_update(server)
    assert written(update.change_set) <= 2 * size, (written(update.change_set), size)
    store = Store()
    await store.apply(update.change_set)
    user = Context.create("u")
    assert store.snapshot.variation_detail("f199", user, None).value is True


def test_J4_a_changed_evaluator_changes_the_flags_that_use_it_and_no_others() -> None:
    """Shared items are keyed by content: versions and compiled flags follow an evaluator."""
    from aioflags._datasystem._datatypes import full_transfer, puts

    def message(limit: int) -> dict[str, Any]:
        rules = {"a": {">": [{"var": "n"}, limit]}, "b": {"==": [{"var": "n"}, 0]}}
        flag = {"state": "ENABLED", "variants": VARIANTS, "defaultVariant": "off"}
        return {
            "$evaluators": rules,
            "flags": {
                "uses-a": {**flag, "targeting": {"if": [{"$ref": "a"}, "on", "off"]}},
                "uses-b": {**flag, "targeting": {"if": [{"$ref": "b"}, "on", "off"]}},
            },
        }

    store = Store()
    versions = ContentVersions()
    user = Context.create("u", attributes={"n": 5})
    for limit, served, moved in ((1, True, 1), (9, False, 2)):
        shared: dict[str, Any] = {}
        flags = versions.stamp("flag", flagd_flags(message(limit), shared=shared))
        store.apply_now(
            full_transfer(
                puts(ObjectKind.SEGMENT, shared), puts(ObjectKind.FLAG, flags)
            )
        )
        assert store.snapshot.variation_detail("uses-a", user, None).value is served
        assert (flags["uses-a"]["version"], flags["uses-b"]["version"]) == (moved, 1)
    # A delta that puts a flag alone links it to the items held.
    again = flagd_flags(message(1), shared={})["uses-b"]
    store.apply_now(
        ChangeSet(
            intent=IntentCode.TRANSFER_CHANGES,
            changes=(
                Change(
                    action=ChangeKind.PUT,
                    kind=ObjectKind.FLAG,
                    key="uses-b",
                    version=3,
                    obj={**again, "version": 3},
                ),
            ),
            selector=Selector(state="s", version=2),
        )
    )
    zero = Context.create("u", attributes={"n": 0})
    assert store.snapshot.variation_detail("uses-b", zero, None).value is True
