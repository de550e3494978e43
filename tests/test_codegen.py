"""Flags compiled to Python functions (aioflags/_evaluation/_codegen.py).

The generated code must do exactly what the interpreter (``interpret``) does,
must never turn flag data into code, and must share compiled code between
flags of one shape. The differential test holds both against LaunchDarkly.
"""

from __future__ import annotations

import itertools
import random
import sys
from typing import Any, NoReturn

import pytest

from aioflags import Context
from aioflags._evaluation._codegen import MAX_CLAUSES, Code, InlineClause
from aioflags._evaluation._evaluate import Matcher, _careful_run, _State, run_head
from aioflags._evaluation._model import (
    CompiledFlag,
    MalformedAbort,
    _compile_clause,
    compile_flag,
    compile_segment,
    interpret,
    predicate,
)
from aioflags._evaluation._operators import (
    OPERATORS,
    compare_semver,
    compile_test,
    parse_semver,
    semver_key,
)
from aioflags._evaluation._results import Result
from tests.flags import SEMVER_ASCENDING
from tests.reference import Generator


def _run(flag: CompiledFlag, ctx: Context, st: Any) -> Result:
    """Flag ``flag``'s code run for ``ctx`` with state ``st`` (nothing mapped)."""
    code = flag.code
    return code.run(code.operands, ctx, st)


def _careful(matcher: Matcher, key: str, ctx: Context) -> Result:
    """Flag ``key`` evaluated on the careful path, whatever it needs, as heads run."""
    head = Code(_careful_run, False, (matcher.flag(key),))
    return run_head(head, key, ctx, matcher)


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except MalformedAbort:
        return "MalformedAbort"


@pytest.mark.parametrize("seed", range(40))
def test_generated_code_does_what_the_interpreter_does(seed: int) -> None:
    case = Generator(seed).case(n_flags=10, n_contexts=10)
    flags = {k: compile_flag(k, v) for k, v in case.flags.items()}
    segments = {k: compile_segment(k, v) for k, v in case.segments.items()}
    compared = 0
    for raw in case.contexts:
        ctx = Context.from_dict(raw)
        if not ctx.valid:
            continue
        for key, flag in flags.items():
            if flag.constant is not None:
                continue
            generated = _outcome(_run, flag, ctx, _State(Matcher(flags, segments), key))
            interpreted = _outcome(
                interpret, flag, ctx, _State(Matcher(flags, segments), key)
            )
            assert generated == interpreted, (key, raw)
            compared += 1
    assert compared  # a seed that compared nothing would prove nothing


def test_flags_of_one_shape_share_their_code_and_not_their_data() -> None:
    def flag(key: str, email: str, serve: int) -> CompiledFlag:
        return compile_flag(
            key,
            {
                "key": key,
                "version": 1,
                "on": True,
                "variations": ["a", "b", "c"],
                "fallthrough": {"variation": 0},
                "rules": [
                    {
                        "variation": serve,
                        "clauses": [
                            {"attribute": "email", "op": "endsWith", "values": [email]}
                        ],
                    }
                ],
            },
        )

    one, two = flag("one", "@a.com", 1), flag("two", "@b.com", 2)
    assert one.code.run.__code__ is two.code.run.__code__
    ann = Context.from_dict({"kind": "user", "key": "ann", "email": "ann@b.com"})
    matcher = Matcher({}, {})
    assert _run(one, ann, matcher).value == "a"
    assert _run(two, ann, matcher).value == "c"


def test_flag_data_never_becomes_code() -> None:
    hostile = '"); raise SystemExit("injected"); ("'
    flag = compile_flag(
        hostile,
        {
            "key": hostile,
            "version": 1,
            "on": True,
            "variations": [hostile, "b"],
            "fallthrough": {"variation": 1},
            "targets": [{"variation": 0, "values": [hostile]}],
            "rules": [
                {
                    "variation": 0,
                    "clauses": [
                        {"attribute": hostile, "op": "in", "values": [hostile]}
                    ],
                },
                {
                    "variation": 0,
                    "clauses": [
                        {"attribute": "key", "op": "matches", "values": [hostile]}
                    ],
                },
            ],
        },
    )
    assert flag.malformed is None
    code = flag.code.run.__code__
    for text in (code.co_names, code.co_consts):
        assert hostile not in repr(text)
    matcher = Matcher({}, {})
    assert _run(flag, Context.create(hostile), matcher).variation_index == 0
    assert (
        _run(
            flag,
            Context.from_dict({"kind": "user", "key": "x", hostile: hostile}),
            matcher,
        ).variation_index
        == 0
    )
    assert _run(flag, Context.create("x"), matcher).variation_index == 1


def test_a_flag_too_big_to_generate_is_interpreted() -> None:
    clauses = [
        {"attribute": "n", "op": "lessThan", "values": [i]}
        for i in range(MAX_CLAUSES + 1)
    ]
    flag = compile_flag(
        "big",
        {
            "key": "big",
            "version": 1,
            "on": True,
            "variations": [False, True],
            "fallthrough": {"variation": 0},
            "rules": [{"variation": 1, "clauses": clauses}],
        },
    )
    assert flag.code.run.__name__ == "_interpreted"  # no generated code
    matcher = Matcher({}, {})
    assert (
        _run(
            flag, Context.from_dict({"kind": "user", "key": "k", "n": -1}), matcher
        ).value
        is True
    )
    assert (
        _run(
            flag, Context.from_dict({"kind": "user", "key": "k", "n": 1}), matcher
        ).value
        is False
    )


# Inline clause forms against the generic test, value by value.
_VALUES: list[Any] = [
    None,
    "",
    "a",
    "abc",
    "x@example.com",
    "2.1.0",
    "2.1.0-beta.1",
    "3",
    "1970-01-01T00:00:01Z",
    "1970-01-01T00:00:01+25:00",
    "30",
    0,
    1,
    30,
    30.0,
    45.5,
    1000,
    # around 2**53, where an int stops being exactly a float: the inline
    # forms compare without float(v) and must agree with the test
    2**53 - 1,
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    2**60,
    2.0**53,
    1.5e16,
    1700000000000,
    1700000000000.5,
    float("inf"),
    True,
    False,
    ["a", "zzz"],
    [30, "b"],
    [],
    {"a": 1},
]
_CLAUSES: list[tuple[str, list[Any]]] = [
    ("in", ["a", "abc"]),
    ("in", ["a", 30, True]),
    ("in", []),
    ("startsWith", ["a", "x@"]),
    ("startsWith", [1]),
    ("endsWith", ["c", ".com"]),
    ("contains", ["b"]),
    ("contains", ["b", "@"]),
    ("matches", ["^a.c$"]),
    ("matches", ["["]),
    ("lessThan", [30]),
    ("lessThan", [1, 30, "40"]),
    ("lessThanOrEqual", [30.0]),
    ("greaterThan", [1, 30]),
    ("greaterThanOrEqual", [45.5, 2]),
    ("lessThan", [2**53]),  # left to the test: float(v) may round to it
    ("lessThanOrEqual", [2**53 + 1]),
    ("greaterThan", [2**53 - 1]),
    ("greaterThanOrEqual", [-(2**53) + 1]),
    ("greaterThan", [-(2**53)]),
    ("lessThan", [2**60, 1.5]),
    ("lessThan", [float("inf")]),
    ("before", [1700000000000]),
    ("after", [1700000000000.25]),
    ("before", [1000, "1970-01-01T00:00:02Z"]),
    ("after", [0, "bad"]),
    ("after", ["bad"]),
    ("semVerEqual", ["2.1", "3.0.0"]),
    ("semVerLessThan", ["2.1.0", "1.0.0"]),
    ("semVerGreaterThan", ["2.1.0-beta", "9.9.9"]),
    ("semVerGreaterThan", ["no"]),
]


def _expected(op: str, values: list[Any], negate: bool, value: Any) -> bool:
    """evaluation.md §6: a missing value never matches; a list matches if any element does."""
    if value is None:
        return False
    test = compile_test(op, values)
    matched = any(map(test, value)) if isinstance(value, list) else test(value)
    return matched != negate


@pytest.mark.parametrize(("op", "values"), _CLAUSES)
@pytest.mark.parametrize("negate", [False, True])
def test_inline_forms_agree_with_the_generic_test(
    op: str, values: list[Any], negate: bool
) -> None:
    raw = {"attribute": "v", "op": op, "values": values, "negate": negate}
    spec = _compile_clause(raw)
    fast = predicate(spec)
    inline = compile_flag(
        "f",
        {
            "key": "f",
            "version": 1,
            "on": True,
            "variations": [False, True],
            "fallthrough": {"variation": 0},
            "rules": [{"variation": 1, "clauses": [raw]}],
        },
    )
    matcher = Matcher({}, {})
    for value in _VALUES:
        ctx = Context.from_dict({"kind": "user", "key": "k", "v": value})
        expected = _expected(op, values, negate, value)
        assert fast(ctx, matcher) == expected, (value, spec)
        assert _run(inline, ctx, matcher).value == expected, (value, spec)
    no_attribute = Context.create("k")
    assert fast(no_attribute, matcher) is False
    assert _run(inline, no_attribute, matcher).value is False


@pytest.mark.parametrize(
    ("op", "values", "inline"),
    [
        ("in", ["a"], True),
        ("startsWith", ["a"], True),
        ("endsWith", ["a"], True),
        ("contains", ["a"], True),
        ("contains", ["a", "b"], False),
        ("matches", ["^a"], True),
        ("matches", ["["], False),
        ("lessThan", [1, 2], True),
        ("before", ["1970-01-01T00:00:01Z"], True),
        ("after", [5], True),
        ("after", ["bad"], False),
        ("semVerEqual", ["2.1"], True),
        ("semVerLessThan", ["2.1"], True),
        ("semVerGreaterThan", ["2.1"], True),
        ("semVerGreaterThan", ["no"], False),
        ("segmentMatch", ["s"], True),
        ("unknown", ["s"], False),
    ],
)
def test_inline_forms_cover_the_common_operators(
    op: str, values: list[Any], inline: bool
) -> None:
    spec = _compile_clause({"attribute": "v", "op": op, "values": values})
    assert isinstance(spec, InlineClause) == inline
    assert not isinstance(spec, InlineClause) or spec.op == op
    path = _compile_clause({"attribute": "/v/w", "contextKind": "user", "op": op})
    assert not isinstance(path, InlineClause) or op == "segmentMatch"


def test_every_operator_is_one_record_with_an_inline_form() -> None:
    from aioflags._evaluation._operators import OPERATORS

    assert set(OPERATORS) == {
        "in", "startsWith", "endsWith", "contains", "matches", "lessThan",
        "lessThanOrEqual", "greaterThan", "greaterThanOrEqual", "before", "after",
        "semVerEqual", "semVerLessThan", "semVerGreaterThan",
    }  # fmt: skip
    for name, operator in OPERATORS.items():
        assert operator.name == name
        assert operator.inline is not None and operator.template and operator.guard


def test_generated_code_shows_in_tracebacks() -> None:
    import traceback

    class Failing:
        def match_segments(self, keys: tuple[str, ...], ctx: Context) -> bool:
            raise ZeroDivisionError

    segment_rule = {
        "variation": 0,
        "clauses": [{"attribute": "", "op": "segmentMatch", "values": ["s"]}],
    }
    flag = compile_flag("f", _flag("f", rules=[segment_rule]))
    with pytest.raises(ZeroDivisionError) as info:
        _run(flag, Context.create("ann"), Failing())
    text = "".join(traceback.format_exception(info.value))
    assert "<aioflags generated run" in text
    assert "st.match_segments(o[" in text


VERSIONS = [
    *SEMVER_ASCENDING,
    "1.0.0+build",
    "1.0.1",
    "1.1",
    "2",
    "10.0.0",
]


def test_semver_keys_order_as_precedence() -> None:
    for a, b in itertools.product(VERSIONS, repeat=2):
        expected = compare_semver(parse_semver(a), parse_semver(b))  # type: ignore[arg-type]
        ka, kb = semver_key(a), semver_key(b)
        assert ka is not None and kb is not None
        assert (ka > kb) - (ka < kb) == expected, (a, b)
    assert semver_key("1.02.0") is None


# The hot paths try the generated code with the shared matcher and come back
# to the careful path (a state, logging) for prerequisites and failures.
def _flag(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "key": key,
        "version": 1,
        "on": True,
        "variations": ["off", "on"],
        "offVariation": 0,
        "fallthrough": {"variation": 1},
        **fields,
    }


def _key_in(*keys: str) -> dict[str, Any]:
    """A clause: the context's key is one of ``keys``."""
    return {"attribute": "key", "op": "in", "values": list(keys)}


def _off_for(key: str) -> dict[str, Any]:
    """A rule serving variation 0 ("off") to the context keyed ``key``."""
    return {"variation": 0, "clauses": [_key_in(key)]}


BROKEN_RULE = {
    "variation": 0,
    "clauses": [{"attribute": "/", "contextKind": "user", "op": "in", "values": ["x"]}],
}


def _snapshot(flags: dict[str, Any], segments: dict[str, Any] | None = None) -> Any:
    from aioflags._datasystem._store import snapshot_from_data

    return snapshot_from_data(flags, segments or {})


def test_variation_of_a_flag_with_prerequisites() -> None:
    snap = _snapshot(
        {
            "base": _flag(
                "base",
                rules=[
                    {
                        "variation": 0,
                        "clauses": [
                            {"attribute": "key", "op": "in", "values": ["bob"]}
                        ],
                    }
                ],
            ),
            "top": _flag("top", prerequisites=[{"key": "base", "variation": 1}]),
        }
    )
    assert snap.variation("top", Context.create("ann"), "default") == "on"
    assert snap.variation("top", Context.create("bob"), "default") == "off"


@pytest.mark.parametrize("prerequisite_first", [False, True])
def test_inline_prerequisites_run_plain_ones_heads_and_hand_the_rest_on(
    prerequisite_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob_is_off = _off_for("bob")
    required = {
        "plain": _flag("plain", rules=[bob_is_off]),
        "constant": _flag("constant"),
        "off": _flag("off", on=False, offVariation=1),
        "malformed": _flag("malformed", fallthrough={"variation": 99}),
        "chain": _flag("chain", prerequisites=[{"key": "plain", "variation": 1}]),
        "aborts": _flag("aborts", rules=[BROKEN_RULE]),
        "deleted": {"key": "deleted", "version": 2, "deleted": True},
    }
    keys = [*required, "missing"]
    snap = _snapshot(
        {
            **required,
            **{
                f"on-{key}": _flag(
                    f"on-{key}", prerequisites=[{"key": key, "variation": 1}]
                )
                for key in keys
            },
        }
    )
    heads = snap._data.matcher.heads
    handed_on: list[str] = []
    method = Matcher.prerequisites_failed

    def spy(self: Matcher, prerequisites: Any, ctx: Context) -> Any:
        handed_on.extend(p.key for p in prerequisites)
        return method(self, prerequisites, ctx)

    monkeypatch.setattr(Matcher, "prerequisites_failed", spy)
    met = {"plain", "constant", "chain"}
    for name in ("ann", "bob"):
        ctx = Context.create(name)
        for key in keys:
            if prerequisite_first and key != "missing":
                snap.variation(key, ctx, "default")
            detail = snap.variation_detail(f"on-{key}", ctx, "default")
            if key in met and not (name == "bob" and key in ("plain", "chain")):
                assert (detail.value, detail.reason) == ("on", {"kind": "FALLTHROUGH"})
            elif key == "aborts":  # the prerequisite's abort is the flag's
                assert detail.reason == {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}
            else:
                assert (detail.value, detail.reason) == (
                    "off",
                    {"kind": "PREREQUISITE_FAILED", "prerequisiteKey": key},
                ), (name, key)
    # Every one was read through the heads (the missing and the deleted
    # flag are not kept there: the evaluations read them, and the door
    # answers those), but the chain: the flag that requires it takes the
    # careful path from the start (a state of its own). A constant flag is
    # its result, a plain one (on, well formed, no prerequisites) is run.
    read = heads
    assert {key for key in keys if key in read} == set(required) - {"deleted"} - (
        set() if prerequisite_first else {"chain"}
    )
    plain = {
        key: "result" if isinstance(head := read[key], Result) else head.plain
        for key in required
        if key in read
    }
    assert plain == {
        "plain": True,
        "constant": "result",
        "off": "result",
        "malformed": "result",
        **({"chain": False} if prerequisite_first else {}),
        "aborts": True,
    }
    # Only those that are not plain went to the method; the chain to the
    # careful path's.
    assert set(handed_on) == set(keys) - {"plain", "aborts", "chain"}


@pytest.mark.parametrize("seed", range(40))
def test_the_inline_checks_do_what_the_careful_path_does(seed: int) -> None:
    # The shared matcher's inline prerequisite checks (through its heads)
    # against the careful path (a state per evaluation), on random flags;
    # flags in a random order, so that a prerequisite is read before its
    # flag or not. Each through run_head, as the client runs heads.
    case = Generator(seed).case(n_flags=10, n_contexts=10)
    flags = {k: compile_flag(k, v) for k, v in case.flags.items()}
    segments = {k: compile_segment(k, v) for k, v in case.segments.items()}
    order = list(flags)
    random.Random(seed).shuffle(order)
    compared = ran = 0
    for raw in case.contexts:
        ctx = Context.from_dict(raw)
        if not ctx.valid:
            continue
        matcher = Matcher(flags, segments)
        for key in order:
            flag = flags[key]
            # The head the client runs (made as its fast path makes it), or
            # the careful path for a flag that needs it: the same answer.
            head = matcher.find_head(key)
            if flag.constant is not None:
                continue
            assert type(head) is Code
            inline = run_head(head, key, ctx, matcher)
            careful = _careful(matcher, key, ctx)
            assert inline == careful, (seed, key, raw)
            compared += 1
            # Its code itself: what run_head maps is an abort.
            try:
                got = head.run(head.operands, ctx, matcher)
            except MalformedAbort:  # an abort: MALFORMED_FLAG (finish())
                assert careful.reason["errorKind"] == "MALFORMED_FLAG"
                continue
            assert got == careful, (seed, key, raw)
            ran += 1
    assert compared and ran


def test_heads_follow_a_prerequisite_through_deltas() -> None:
    # Through a real store, deltas change a prerequisite while the flag that
    # requires it stays the same compiled object, shared by the snapshots:
    # each snapshot's heads read that snapshot's prerequisite, so the
    # client's paths agree with the snapshot's at every step.
    from aioflags._datasystem._store import Store
    from aioflags.sources import (
        Change,
        ChangeKind,
        ChangeSet,
        IntentCode,
        ObjectKind,
        Selector,
    )
    from tests.reference import _awaited, client_over

    bob_off, ann_off = _off_for("bob"), _off_for("ann")

    def put(key: str, version: int, **fields: Any) -> Change:
        obj = {**_flag(key, **fields), "version": version}
        return Change(
            action=ChangeKind.PUT,
            kind=ObjectKind.FLAG,
            key=key,
            version=version,
            obj=obj,
        )

    def delta(n: int, *changes: Change) -> ChangeSet:
        return ChangeSet(
            intent=IntentCode.TRANSFER_CHANGES,
            changes=changes,
            selector=Selector(state=f"(p:{n})", version=n),
        )

    requires_p = {"prerequisites": [{"key": "P", "variation": 1}]}
    store = Store()
    store.apply_now(
        ChangeSet(
            intent=IntentCode.TRANSFER_FULL,
            changes=(
                *(put(f"x{i}", 1) for i in range(40)),
                put("P", 1, rules=[bob_off]),
                put("F", 1, **requires_p),
            ),
            selector=Selector(state="(p:1)", version=1),
        )
    )
    client = client_over(store.snapshot)
    client._use(store)  # each step's snapshot
    steps = [
        ("P constant", put("P", 2)),
        ("P plain, ann off", put("P", 3, rules=[ann_off])),
        (
            "P deleted",
            Change(action=ChangeKind.DELETE, kind=ObjectKind.FLAG, key="P", version=4),
        ),
        (
            "P requires a missing Q",
            put("P", 5, rules=[bob_off], prerequisites=[{"key": "Q", "variation": 1}]),
        ),
        ("Q added", put("Q", 1)),
        (
            "a cycle F -> P -> F",
            put("P", 6, rules=[bob_off], prerequisites=[{"key": "F", "variation": 1}]),
        ),
        ("P plain, bob off", put("P", 7, rules=[bob_off])),
    ]
    seen: dict[str, set[int]] = {}
    for n, (label, change) in enumerate([("initial", None), *steps], start=1):
        if change is not None:
            store.apply_now(delta(n, change))
        snap = store.snapshot
        seen.setdefault("F", set()).add(id(snap._data.flags["F"]))
        for name in ("ann", "bob"):
            ctx = Context.create(name)
            expected = snap.variation_detail("F", ctx, "default")
            assert _awaited(client.variation_detail("F", ctx, "default")) == expected, (
                label
            )
            assert _awaited(client.variation("F", ctx, "default")) == expected.value, (
                label
            )
    # The flag requiring P was one compiled object through P's changes
    # (else this test would not show that its heads follow them).
    assert len(seen["F"]) < len(steps)


def _in_segment(*keys: str, variation: int = 0) -> dict[str, Any]:
    """A rule serving ``variation`` to the members of segments ``keys``."""
    clause = {"attribute": "", "op": "segmentMatch", "values": list(keys)}
    return {"variation": variation, "clauses": [clause]}


def _segment(key: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "version": 1, **fields}


def test_segment_clauses_give_what_the_careful_path_gives() -> None:
    # Bounded, deleted, big, nested, malformed and missing segments, in
    # clauses of one key and of two, negated: the client's paths and the
    # snapshot's agree, and a flag with a big or nested segment takes the
    # careful path.
    from tests.reference import _awaited, client_over

    segments = {
        "bounded": _segment("bounded", included=["ann"]),
        "deleted": _segment("deleted", deleted=True, included=["ann"]),
        "unbounded": _segment("unbounded", unbounded=True),
        "nested": _segment("nested", rules=[_in_segment("bounded")]),
        "malformed": _segment("malformed", rules="not a list"),
    }
    every = [key for key in segments if key not in ("unbounded", "nested")]
    every.append("missing")
    raw = {
        "all": _flag(
            "all",
            rules=[
                *(_in_segment(key) for key in every),
                _in_segment("bounded", "deleted"),
            ],
        ),
        "big": _flag("big", rules=[_in_segment("unbounded")]),
        "nested": _flag("nested", rules=[_in_segment("nested")]),
        "bounded-only": _flag("bounded-only", rules=[_in_segment("bounded")]),
        "negated": _flag(
            "negated",
            rules=[
                {
                    "variation": 0,
                    "clauses": [
                        {
                            "attribute": "",
                            "op": "segmentMatch",
                            "values": ["bounded"],
                            "negate": True,
                        }
                    ],
                }
            ],
        ),
        "plain": _flag("plain", rules=[_in_segment("bounded")]),
        "requires-plain": _flag(
            "requires-plain", prerequisites=[{"key": "plain", "variation": 1}]
        ),
    }
    snap = _snapshot(raw, segments)
    matcher = snap._data.matcher
    for key in ("big", "nested"):
        careful = matcher.find_head(key)
        assert type(careful) is Code and careful.run is _careful_run
    # Every path gives what the careful path gives.
    client = client_over(snap)
    contexts = [Context.create("ann"), Context.create("bob")]
    org = Context.create("ann", "org")
    for key in raw:
        for ctx in [*contexts, org, Context.create_multi(contexts[0], org)]:
            expected = snap.variation_detail(key, ctx, None)
            assert _awaited(client.variation_detail(key, ctx, None)) == expected, key
            assert _awaited(client.variation(key, ctx, None)) == expected.value, key
    assert [snap.variation("bounded-only", ctx, None) for ctx in contexts] == [
        "off",
        "on",
    ]
    assert [snap.variation("negated", ctx, None) for ctx in contexts] == ["on", "off"]


def test_segment_clauses_follow_a_segment_through_deltas() -> None:
    # Through a real store, deltas change a segment while the flag that
    # matches it stays the same compiled object: each snapshot's heads read
    # that snapshot's segment (or none), so the client's paths agree with
    # the snapshot's at every step.
    from aioflags._datasystem._store import Store
    from aioflags.sources import (
        Change,
        ChangeKind,
        ChangeSet,
        IntentCode,
        ObjectKind,
        Selector,
    )
    from tests.reference import _awaited, client_over

    def put(kind: ObjectKind, key: str, version: int, obj: dict[str, Any]) -> Change:
        return Change(
            action=ChangeKind.PUT,
            kind=kind,
            key=key,
            version=version,
            obj={**obj, "version": version},
        )

    def segment(version: int, **fields: Any) -> Change:
        return put(ObjectKind.SEGMENT, "S", version, _segment("S", **fields))

    store = Store()
    store.apply_now(
        ChangeSet(
            intent=IntentCode.TRANSFER_FULL,
            changes=(
                put(ObjectKind.FLAG, "F", 1, _flag("F", rules=[_in_segment("S")])),
                segment(1, included=["ann"]),
            ),
            selector=Selector(state="(p:1)", version=1),
        )
    )
    client = client_over(store.snapshot)
    client._use(store)  # each step's snapshot
    steps = [
        ("bob included instead", segment(2, included=["bob"])),
        ("a rule: ann's key", segment(3, rules=[{"clauses": [_key_in("ann")]}])),
        ("nested: in T, missing", segment(4, rules=[_in_segment("T")])),
        (
            "T added, bob in it",
            put(ObjectKind.SEGMENT, "T", 1, _segment("T", included=["bob"])),
        ),
        ("unbounded", segment(5, unbounded=True, included=["ann"])),
        ("malformed", segment(6, included="ann")),
        (
            "deleted",
            Change(
                action=ChangeKind.DELETE, kind=ObjectKind.SEGMENT, key="S", version=7
            ),
        ),
        ("back, ann included", segment(8, included=["ann"])),
    ]
    seen = set()
    answers = set()
    for n, (label, change) in enumerate([("initial", None), *steps], start=1):
        if change is not None:
            store.apply_now(
                ChangeSet(
                    intent=IntentCode.TRANSFER_CHANGES,
                    changes=(change,),
                    selector=Selector(state=f"(p:{n})", version=n),
                )
            )
        snap = store.snapshot
        seen.add(id(snap._data.flags["F"]))
        for name in ("ann", "bob"):
            ctx = Context.create(name)
            expected = snap.variation_detail("F", ctx, "default")
            got = _awaited(client.variation_detail("F", ctx, "default"))
            assert got == expected, label
            assert _awaited(client.variation("F", ctx, "default")) == expected.value, (
                label
            )
            answers.add((label, name, expected.value))
    # The flag was one compiled object through S's changes, and the
    # answers changed with them (else this test would show nothing).
    assert len(seen) == 1
    assert ("initial", "ann", "off") in answers and ("initial", "bob", "on") in answers
    assert ("bob included instead", "ann", "on") in answers
    assert ("bob included instead", "bob", "off") in answers


def test_json_no_check_foresaw_makes_a_malformed_flag_not_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Valid JSON that compiling cannot take (a float overflows): the flag
    # is malformed, logged, and every path gives MALFORMED_FLAG or, for a
    # flag that requires it, what the careful path gives; nothing raises
    # (the client's heads compile a prerequisite when they link it).
    from tests.reference import _awaited, client_over

    huge = 10**400
    raw = {
        "weight": _flag(
            "weight",
            fallthrough={"rollout": {"variations": [{"variation": 1, "weight": huge}]}},
        ),
        "bound": _flag(
            "bound",
            rules=[
                {
                    "variation": 0,
                    "clauses": [{"attribute": "n", "op": "lessThan", "values": [huge]}],
                }
            ],
        ),
        "needs-weight": _flag(
            "needs-weight", prerequisites=[{"key": "weight", "variation": 1}]
        ),
    }
    segment = {"key": "s", "version": 1, "rules": [{"weight": huge, "clauses": []}]}
    snap = _snapshot(raw, {"s": segment})
    client = client_over(snap)
    ann = Context.create("ann")
    for key in ("weight", "bound"):
        detail = _awaited(client.variation_detail(key, ann, "default"))
        assert detail.reason == {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}
        assert _awaited(client.variation(key, ann, "default")) == "default"
    expected = snap.variation_detail("needs-weight", ann, "default")
    assert _awaited(client.variation_detail("needs-weight", ann, "default")) == expected
    assert _awaited(client.variation("needs-weight", ann, "default")) == expected.value
    assert compile_segment("s", segment).malformed
    assert "could not be compiled" in caplog.text and "OverflowError" in caplog.text


def test_inline_prerequisites_stop_at_the_first_that_fails() -> None:
    required = {
        "yes": _flag("yes"),
        "no": _flag("no", fallthrough={"variation": 0}),
        "also-yes": _flag(
            "also-yes",
            rules=[
                {
                    "variation": 1,
                    "clauses": [{"attribute": "key", "op": "in", "values": ["ann"]}],
                }
            ],
            fallthrough={"variation": 0},
        ),
    }

    def needing(*keys: str) -> dict[str, Any]:
        name = "needs-" + "-".join(keys)
        prerequisites = [{"key": key, "variation": 1} for key in keys]
        return {name: _flag(name, prerequisites=prerequisites)}

    snap = _snapshot(
        {
            **required,
            **needing("also-yes", "yes"),
            **needing("also-yes", "no", "yes"),
            **needing("no", "also-yes"),
        }
    )
    ann, bob = Context.create("ann"), Context.create("bob")

    def failed(key: str, ctx: Context) -> object:
        return snap.variation_detail(key, ctx, "default").reason.get("prerequisiteKey")

    assert failed("needs-also-yes-yes", ann) is None
    assert failed("needs-also-yes-yes", bob) == "also-yes"
    assert failed("needs-also-yes-no-yes", ann) == "no"
    assert failed("needs-no-also-yes", ann) == "no"


def test_variation_comes_back_to_the_careful_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snap = _snapshot(
        {
            "broken": _flag("broken", rules=[BROKEN_RULE]),
            "big": _flag(
                "big",
                rules=[
                    {
                        "variation": 0,
                        "clauses": [
                            {
                                "attribute": "",
                                "op": "segmentMatch",
                                "values": ["unbounded"],
                            }
                        ],
                    }
                ],
            ),
        },
        {"unbounded": {"key": "unbounded", "version": 1, "unbounded": True}},
    )
    ann = Context.create("ann")
    assert snap.variation("broken", ann, "default") == "default"
    assert (
        snap.variation_detail("broken", ann, "default").reason["errorKind"]
        == "MALFORMED_FLAG"
    )
    assert "could not be evaluated" in caplog.text
    detail = snap.variation_detail("big", ann, "default")
    assert detail.value == "on"
    assert detail.reason["bigSegmentsStatus"] == "NOT_CONFIGURED"
    assert snap.variation("big", ann, "default") == "on"


def test_all_flags_state_reports_failed_prerequisites(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = _snapshot(
        {
            "broken": _flag("broken", rules=[BROKEN_RULE]),
            "failing": _flag(
                "failing",
                rules=[
                    {
                        "variation": 1,
                        "clauses": [{"attribute": "key", "op": "in", "values": ["x"]}],
                    }
                ],
            ),
            "on-broken": _flag(
                "on-broken", prerequisites=[{"key": "broken", "variation": 1}]
            ),
            "on-failing": _flag(
                "on-failing", prerequisites=[{"key": "failing", "variation": 1}]
            ),
        }
    )

    def boom(operands: object, ctx: Context, st: object) -> NoReturn:
        raise ZeroDivisionError

    failing = snap._data.flags["failing"]
    code = failing.code
    monkeypatch.setattr(failing, "code", Code(boom, code.plain, code.operands))
    state = snap.all_flags_state(Context.create("ann"), with_reasons=True).to_dict()
    reasons = {k: v["reason"] for k, v in state["$flagsState"].items()}
    assert reasons["broken"]["errorKind"] == "MALFORMED_FLAG"
    assert reasons["on-broken"]["errorKind"] == "MALFORMED_FLAG"
    assert reasons["failing"]["errorKind"] == "EXCEPTION"
    assert reasons["on-failing"]["errorKind"] == "EXCEPTION"
    assert "Unexpected error evaluating flag 'on-failing'" in caplog.text
    # A malformed prerequisite was reached; after an unexpected error (a bug,
    # logged once) none are reported, as LaunchDarkly's SDKs do.
    prerequisites = {k: v.get("prerequisites") for k, v in state["$flagsState"].items()}
    assert prerequisites["on-broken"] == ["broken"]
    assert prerequisites["on-failing"] is None


def test_all_flags_state_checks_plain_prerequisites_inline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # All-flags state runs the snapshot's heads: a plain prerequisite's
    # check is inline (no method), and the state is what each flag's
    # careful evaluation gives; a constant or missing prerequisite still
    # goes to the method.
    bob_is_off = _off_for("bob")
    segments = {"s": _segment("s", included=["ann"])}
    raw = {
        "plain": _flag("plain", rules=[bob_is_off, _in_segment("s")]),
        "needs-plain": _flag(
            "needs-plain", prerequisites=[{"key": "plain", "variation": 1}]
        ),
        "constant": _flag("constant"),
        "needs-constant": _flag(
            "needs-constant",
            prerequisites=[{"key": "constant", "variation": 1}],
            rules=[bob_is_off],
        ),
        "needs-missing": _flag(
            "needs-missing", prerequisites=[{"key": "missing", "variation": 1}]
        ),
    }
    contexts = [Context.create(name) for name in ("ann", "bob", "cy")]
    snap = _snapshot(raw, segments)
    expected = {
        ctx.key: {key: snap.variation_detail(key, ctx, None) for key in raw}
        for ctx in contexts
    }
    asked: list[tuple[str, ...]] = []
    method = Matcher.prerequisites_failed

    def counted(self: Matcher, prerequisites: Any, ctx: Context) -> Any:
        asked.append(tuple(p.key for p in prerequisites))
        return method(self, prerequisites, ctx)

    fresh = _snapshot(raw, segments)
    monkeypatch.setattr(Matcher, "prerequisites_failed", counted)
    for ctx in contexts:
        state = fresh.all_flags_state(ctx, with_reasons=True).to_dict()
        for key, detail in expected[ctx.key].items():
            assert state[key] == detail.value, (ctx.key, key)
            assert state["$flagsState"][key]["reason"] == detail.reason, (ctx.key, key)
    assert asked and all(keys in (("constant",), ("missing",)) for keys in asked)


def test_a_flag_that_needs_a_state_has_a_head_that_takes_the_careful_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Known from the snapshot's data when the head is made: a prerequisite
    # chain, a cycle, a big or a nested segment, in the flag's rules or in a
    # prerequisite's, sends the flag to the careful path (a state per
    # evaluation); a plain prerequisite or a bounded segment does not.
    def on(key: str, *prerequisites: str, **fields: Any) -> dict[str, Any]:
        required = [{"key": p, "variation": 1} for p in prerequisites]
        return _flag(key, prerequisites=required, **fields)

    flags = {
        key: compile_flag(key, raw)
        for key, raw in {
            "base": _flag("base", rules=[_off_for("bob")]),
            "off": _flag("off", on=False),
            "middle": on("middle", "base"),
            "top": on("top", "middle"),
            "cycle": on("cycle", "loop"),
            "loop": on("loop", "cycle"),
            "big": _flag("big", rules=[_in_segment("big")]),
            "on-big": on("on-big", "big"),
            "nested": _flag("nested", rules=[_in_segment("nested")]),
            "bounded": _flag("bounded", rules=[_in_segment("bounded", "missing")]),
            "on-off": on("on-off", "off", "missing"),
        }.items()
    }
    segments = {
        key: compile_segment(key, raw)
        for key, raw in {
            "big": _segment("big", unbounded=True),
            "nested": _segment(
                "nested", rules=[{"clauses": [_in_segment("bounded")["clauses"][0]]}]
            ),
            "bounded": _segment("bounded", included=["bob"]),
        }.items()
    }
    careful = {"top", "cycle", "loop", "big", "on-big", "nested"}
    states: list[str] = []
    real = _State.__init__

    def counted(self: _State, *args: Any) -> None:
        real(self, *args)
        states.append(self.chain[0])

    monkeypatch.setattr(_State, "__init__", counted)
    matcher = Matcher(flags, segments)
    for key, flag in flags.items():
        if flag.constant is not None:
            continue
        head = matcher.find_head(key)
        assert type(head) is Code
        assert (head.run is _careful_run) == (key in careful), key
        assert head.plain is (flag.code.plain and key not in careful), key
        for name in ("ann", "bob"):
            ctx = Context.create(name)
            states.clear()
            # (what a head raises is mapped where heads run: run_head)
            fast = run_head(head, key, ctx, matcher)
            assert states == ([key] if key in careful else []), key
            assert fast == _careful(matcher, key, ctx), (key, name)
    top, loop = matcher.find_head("top"), matcher.find_head("loop")
    assert top is not None and loop is not None
    assert run_head(top, "top", Context.create("bob"), matcher).reason == {
        "kind": "PREREQUISITE_FAILED",
        "prerequisiteKey": "middle",
    }
    assert run_head(loop, "loop", Context.create("ann"), matcher).reason == {
        "kind": "ERROR",
        "errorKind": "MALFORMED_FLAG",
    }


def test_the_shared_matcher_never_meets_what_needs_a_state() -> None:
    # The careful path is chosen before the code runs, so the shared
    # matcher's checks reaching a chain or a big segment would be a bug,
    # not a request to start again.
    flags = {
        "base": compile_flag("base", _flag("base")),
        "middle": compile_flag(
            "middle", _flag("middle", prerequisites=[{"key": "base", "variation": 1}])
        ),
    }
    prerequisites = compile_flag(
        "top", _flag("top", prerequisites=[{"key": "middle", "variation": 1}])
    ).prerequisites
    ann = Context.create("ann")
    assert (
        Matcher(flags, {}).prerequisites_failed(flags["middle"].prerequisites, ann)
        is None
    )
    with pytest.raises(AssertionError, match="prerequisite chain"):
        Matcher(flags, {}).prerequisites_failed(prerequisites, ann)
    big = {"big": compile_segment("big", _segment("big", unbounded=True))}
    with pytest.raises(AssertionError, match="big or nested"):
        Matcher({}, big).match_segments(("big",), ann)


def test_the_careful_path_is_taken_without_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No exception steers an evaluation: a chain's or a big segment's
    # evaluations, through the client's head and the driver, raise nothing
    # once the snapshot's heads are made (a first evaluation's lookups may
    # miss a cache, a KeyError caught where it is raised).
    snap = _snapshot(
        {
            "base": _flag("base", rules=[_off_for("bob")]),
            "middle": _flag("middle", prerequisites=[{"key": "base", "variation": 1}]),
            "top": _flag("top", prerequisites=[{"key": "middle", "variation": 1}]),
            "big": _flag("big", rules=[_in_segment("big")]),
        },
        {"big": _segment("big", unbounded=True)},
    )
    matcher = snap._data.matcher
    raised: list[str] = []

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if event == "exception":
            raised.append(f"{arg[0].__name__} in {frame.f_code.co_name}")
        return trace

    for name in ("ann", "bob"):
        ctx = Context.create(name)
        for key in ("top", "big"):
            expected = snap.variation_detail(key, ctx, "default")  # heads made
            head = matcher.find_head(key)
            assert type(head) is Code
            # Coverage's tracer, when the suite runs under it, is put back.
            previous = sys.gettrace()
            sys.settrace(trace)
            try:
                value = head.run(head.operands, ctx, matcher).value
                detail = run_head(head, key, ctx, matcher)
            finally:
                sys.settrace(previous)
            assert raised == [], (key, name)
            assert (value, detail.value) == (expected.value, expected.value)
    assert snap.variation_detail("top", Context.create("bob"), "x").value == "off"
    assert snap.variation_detail("big", Context.create("ann"), "x").reason == {
        "kind": "FALLTHROUGH",
        "bigSegmentsStatus": "NOT_CONFIGURED",
    }


def test_a_prerequisite_cycle_is_found_on_the_careful_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snap = _snapshot(
        {
            "a": _flag("a", prerequisites=[{"key": "b", "variation": 1}]),
            "b": _flag("b", prerequisites=[{"key": "a", "variation": 1}]),
            "self": _flag("self", prerequisites=[{"key": "self", "variation": 1}]),
            "on-a": _flag("on-a", prerequisites=[{"key": "a", "variation": 1}]),
        }
    )
    ann = Context.create("ann")
    for key in ("a", "b", "self", "on-a"):
        detail = snap.variation_detail(key, ann, "default")
        assert detail.reason == {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}, key
    assert "prerequisite cycle" in caplog.text


def test_the_shape_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # (the generator's back end holds the one shape cache, flagd's too)
    import aioflags._evaluation._generate as codegen

    monkeypatch.setattr(codegen, "_CACHE_SIZE", 1)
    monkeypatch.setattr(codegen, "_shapes", {})
    rule = {
        "variation": 0,
        "clauses": [{"attribute": "key", "op": "in", "values": ["x"]}],
    }
    one = compile_flag("one", _flag("one", rules=[rule]))
    two = compile_flag("two", _flag("two", rules=[rule, rule]))
    assert len(codegen._shapes) == 1
    ann = Context.from_dict({"kind": "user", "key": "x"})
    assert (
        _run(one, ann, Matcher({}, {})).value
        == _run(two, ann, Matcher({}, {})).value
        == "off"
    )


def test_a_rollout_by_the_kind_multi_buckets_nothing() -> None:
    # No context has a part of kind "multi" (a multi-kind context is not its
    # own part): the bucket is -1, the first variation, as the interpreter.
    flag = compile_flag(
        "f",
        _flag(
            "f",
            variations=["a", "b"],
            fallthrough={
                "rollout": {
                    "contextKind": "multi",
                    "variations": [
                        {"variation": 0, "weight": 0},
                        {"variation": 1, "weight": 100000},
                    ],
                }
            },
        ),
    )
    multi = Context.from_dict(
        {"kind": "multi", "user": {"key": "u"}, "org": {"key": "o"}}
    )
    matcher = Matcher({}, {})
    assert _run(flag, multi, matcher).value == "a"
    assert interpret(flag, multi, matcher).value == "a"


@pytest.mark.parametrize("op", sorted(set(OPERATORS) - {"segmentMatch"}))
def test_a_clause_on_kind_multi_matches_nothing(op: str) -> None:
    """No context has a part of kind "multi": the rule never matches, negated or not.

    LaunchDarkly's SDK serves the fallthrough; the generated code once raised
    NameError for such a clause (every evaluation of the flag an EXCEPTION).
    """
    rules = [
        {
            "variation": 0,
            "clauses": [
                {
                    "contextKind": "multi",
                    "attribute": attribute,
                    "op": op,
                    "negate": negate,
                    "values": ["x", "multi", 1, "2020-01-01T00:00:00Z", "1.0.0"],
                }
            ],
        }
        for attribute in ("key", "name")
        for negate in (False, True)
    ]
    snap = _snapshot({"f": _flag("f", rules=rules)})
    contexts = [
        Context.create("x"),
        Context.from_dict({"kind": "org", "key": "x", "name": "x"}),
        Context.from_dict(
            {"kind": "multi", "user": {"key": "x"}, "org": {"key": "x", "name": "x"}}
        ),
    ]
    for context in contexts:
        assert snap.variation("f", context, "default") == "on"
        detail = snap.variation_detail("f", context, "default")
        assert (detail.value, detail.reason) == ("on", {"kind": "FALLTHROUGH"})
