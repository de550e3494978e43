"""flagd targeting (JsonLogic) compiled: operators, coercions, bucketing, safety.

The behaviour pinned here is flagd's Python provider's
(``openfeature-flagd-core`` 2.0 over ``panzi-json-logic`` 1.0.1), with the
corrections docs/flagd.md lists: each has a test named for it below.
"""

from __future__ import annotations

import builtins
import json
import math
import sys
import traceback
from typing import Any

import mmh3
import pytest

from aioflags import Context
from aioflags._evaluation import _generate
from aioflags._systems._flagd._engine._fractional import Fractions, cbor, fractions_of
from aioflags._systems._flagd._engine._jsonlogic import TargetingError, build_targeting
from aioflags._systems._flagd._engine._operators import (
    RuleError,
    flagd_data,
    parse_version,
)

KEY = "flag"


def user(key: str = "user-1", **attributes: Any) -> Context:
    ctx = Context.from_dict({"kind": "user", "key": key, **attributes})
    assert ctx.valid
    return ctx


def run(
    rule: Any, ctx: Context | None = None, *, key: str = KEY, fractional: int = 3
) -> Any:
    code, operands = build_targeting(rule, key, fractional=fractional)
    return code(operands, ctx if ctx is not None else user(), None)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types (True is not 1, 1.0 is 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and (type(a) in (int, float)) == (type(b) in (int, float))


# ------------------------------------------------------------ the data a rule sees


def test_a_rule_sees_the_attributes_the_key_and_flagd_properties() -> None:
    ctx = user("u-7", email="a@b.c", plan={"tier": "gold"}, tags=["x", "y"])
    assert run({"var": "email"}, ctx) == "a@b.c"
    assert run({"var": "plan.tier"}, ctx) == "gold"
    assert run({"var": "tags.1"}, ctx) == "y"
    assert run({"var": "tags.length"}, ctx) == 2
    assert run({"var": "targetingKey"}, ctx) == "u-7"
    assert run({"var": "key"}, ctx) == "u-7"
    assert run({"var": "kind"}, ctx) == "user"
    assert run({"var": "$flagd.flagKey"}, ctx, key="my-flag") == "my-flag"
    stamp = run({"var": "$flagd.timestamp"}, ctx)
    assert type(stamp) is int and abs(stamp - __import__("time").time()) < 5
    whole = run({"var": ""}, ctx)
    assert whole["email"] == "a@b.c" and whole["targetingKey"] == "u-7"
    assert whole["$flagd"]["flagKey"] == KEY
    assert run({"var": "missing"}, ctx) is None
    assert run({"var": ["missing", "dflt"]}, ctx) == "dflt"
    assert run({"var": ["email", "dflt"]}, ctx) == "a@b.c"


def test_targeting_key_and_flagd_override_attributes_of_those_names() -> None:
    ctx = user("real", targetingKey="fake", **{"$flagd": {"flagKey": "nope"}})
    assert run({"var": "targetingKey"}, ctx) == "real"
    assert run({"var": "$flagd.flagKey"}, ctx) == KEY
    assert run({"var": "$flagd"}, ctx)["flagKey"] == KEY
    assert flagd_data(ctx, KEY)["targetingKey"] == "real"


def test_a_multi_kind_context_is_seen_kind_by_kind() -> None:
    ctx = Context.create_multi(user("u", email="e"), Context.create("o-1", "org"))
    assert run({"var": "user.email"}, ctx) == "e"
    assert run({"var": "org.targetingKey"}, ctx) == "o-1"
    assert run({"var": "targetingKey"}, ctx) == ctx.fully_qualified_key
    assert run({"var": "email"}, ctx) is None
    data = flagd_data(ctx, KEY)
    assert set(data) == {"user", "org", "$flagd", "targetingKey"}


def test_the_whole_data_is_one_object_in_an_evaluation() -> None:
    # (``==`` compares objects by identity, as JavaScript does)
    assert run({"==": [{"var": ""}, {"var": ""}]}) is True
    assert run({"==": [{"var": "$flagd"}, {"var": "$flagd"}]}) is True
    assert run({"==": [[1], [1]]}) is False


# ------------------------------------------------------------------ the forms


def test_if_chains_and_their_odd_forms() -> None:
    rule = {
        "if": [
            {"==": [{"var": "n"}, 1]},
            "one",
            {"==": [{"var": "n"}, 2]},
            "two",
            "many",
        ]
    }
    assert run(rule, user(n=1)) == "one"
    assert run(rule, user(n=2)) == "two"
    assert run(rule, user(n=3)) == "many"
    assert run({"if": [False, "a"]}) is None  # no else: null
    assert run({"if": []}) is None
    assert run({"if": "x"}) == "x"
    assert run({"if": [{"var": "x"}]}, user(x=5)) == 5
    assert run({"?:": [True, "y", "n"]}) == "y"
    assert run({"if": [{"var": "o"}, "truthy", "falsy"]}, user(o={})) == "truthy"
    falsy: Any
    for falsy in (0, "", [], None, False, 0.0):
        assert run({"if": [{"var": "v"}, "t", "f"]}, user(v=falsy)) == "f"


def test_and_or_return_an_operand() -> None:
    assert run({"and": [1, "a", [0]]}) == [0]
    assert run({"and": [1, "", "x"]}) == ""
    assert run({"or": [0, "", {"var": "v"}]}, user(v="hit")) == "hit"
    assert run({"or": [{"var": "o"}, "b"]}, user(o={})) == {}
    assert run({"and": [{"var": "o"}, "b"]}, user(o={})) == "b"
    assert run({"and": []}) is None and run({"or": []}) is None
    assert run({"and": "x"}) == "x"


def test_negations() -> None:
    assert run({"!": [{"var": "o"}]}, user(o={})) is False
    assert run({"!": [[]]}) is True
    assert run({"!": []}) is True
    assert run({"!!": ["0"]}) is True
    assert run({"!!": [0]}) is False
    assert run({"!!": []}) is False
    assert run({"!": [True, False]}) is False  # (the first argument's)


def test_loose_equality_coerces_as_javascript() -> None:
    cases = [
        (1, "1", True), ("1", 1, True), (0, False, True), (True, "1", True),
        (None, 0, True), (None, None, True), ("", None, False),
        ([1], "1", True), ("a,b", ["a", "b"], True), ({}, "[object Object]", True),
        ([], False, True), ([1], [1], False), (1, 1.0, True), ("abc", "abc", True),
    ]  # fmt: skip
    # (null == 0 is the reference's: null is 0 beside a number; JavaScript says false)
    for a, b, want in cases:
        assert run({"==": [a, b]}) is want, (a, b)
        assert run({"!=": [a, b]}) is (not want), (a, b)
    # the inline forms against a constant agree with the helper
    for value in ("1", 1, 1.0, True, None, [1], "x", {"a": 1}):
        ctx = user(v=value)
        for constant in ("1", 1, 1.5, "x"):
            general = run(
                {"==": [{"var": "v"}, {"var": "c"}]}, user(v=value, c=constant)
            )
            assert run({"==": [{"var": "v"}, constant]}, ctx) is general
            assert run({"==": [constant, {"var": "v"}]}, ctx) is general
            assert run({"!=": [{"var": "v"}, constant]}, ctx) is (not general)


def test_strict_equality_correction_keeps_booleans_apart_from_numbers() -> None:
    # correction: the reference answers true (Python's ==)
    assert run({"===": [True, 1]}) is False
    assert run({"===": [0, False]}) is False
    assert run({"!==": [True, 1]}) is True
    assert run({"===": [{"var": "v"}, 1]}, user(v=True)) is False
    assert run({"===": [{"var": "v"}, True]}, user(v=1)) is False
    # unchanged: one number type, strings, containers by content
    assert run({"===": [1, 1.0]}) is True
    assert run({"===": [{"var": "v"}, 1]}, user(v=1.0)) is True
    assert run({"===": ["1", 1]}) is False
    assert run({"===": [{"var": "v"}, "a"]}, user(v="a")) is True
    assert run({"===": [None, None]}) is True
    assert run({"===": [{"var": "v"}, None]}, user()) is True
    assert run({"===": [[1, 2], [1, 2]]}) is True


def test_comparisons_and_between() -> None:
    assert run({"<": [1, 2]}) is True
    assert run({"<": ["10", 9]}) is False  # numeric when one side is a number
    assert run({"<": ["a", "b"]}) is True
    assert run({"<": [1, 2, 3]}) is True and run({"<": [1, 3, 3]}) is False
    assert run({"<=": [1, 3, 3]}) is True
    assert run({">": [3, 2, 1]}) is True and run({">=": [3, 3, 4]}) is False
    assert run({"<": [1, 2, None]}) is True  # a null third: two arguments
    assert run({">": [{"var": "n"}, 5]}, user(n="6")) is True
    assert run({">": [{"var": "n"}, 5]}, user(n="x")) is False
    assert run({"<": [{"var": "n"}, 5]}, user()) is True  # null is 0
    value: Any
    for value in (1, 5, 7.5, "4", "abc", None, True, [3], {}):
        ctx = user(v=value, c=5)
        for op in ("<", "<=", ">", ">="):
            assert run({op: [{"var": "v"}, 5]}, ctx) is run(
                {op: [{"var": "v"}, {"var": "c"}]}, ctx
            )


def test_in_a_list_and_in_a_string() -> None:
    assert run({"in": [{"var": "t"}, ["gold", "silver"]]}, user(t="gold")) is True
    assert run({"in": [{"var": "t"}, ["gold", "silver"]]}, user(t="bronze")) is False
    assert run({"in": [{"var": "t"}, ["gold"]]}, user(t=["gold"])) is False
    assert run({"in": [{"var": "t"}, ["1"]]}, user(t=1)) is False
    assert run({"in": ["@b.c", {"var": "e"}]}, user(e="a@b.c")) is True
    assert run({"in": [1, "x1y"]}) is True  # the needle stringified
    assert run({"in": [{"var": "n"}, "x1y"]}, user(n=1)) is True
    assert run({"in": [1, [1.0, 2]]}) is True
    assert run({"in": ["a", 5]}) is False
    assert run({"in": ["a", None]}) is False


def test_in_correction_keeps_booleans_apart_from_numbers() -> None:
    # correction: JavaScript's indexOf (the reference's Python `in` finds them)
    assert run({"in": [True, [1, 2]]}) is False
    assert run({"in": [1, [True]]}) is False
    assert run({"in": [True, [True]]}) is True


def test_arithmetic() -> None:
    assert same(run({"+": [1, "2", 3.5]}), 6.5)
    assert same(run({"+": []}), 0)
    assert same(run({"+": ["x"]}), math.nan)
    assert same(run({"-": [5, 2]}), 3)
    assert same(run({"-": [5]}), -5)
    assert same(run({"-": [5, None]}), -5)  # a null second: negation
    assert same(run({"*": [2, "3"]}), 6.0)
    assert same(run({"*": [2, 3]}), 6)
    assert same(run({"/": [7, 2]}), 3.5)
    assert same(run({"%": [7, 3]}), 1)
    assert same(run({"%": [-7, 3]}), 2)  # Python's sign, as the reference
    assert same(run({"min": [3, "1", 2]}), 1.0)
    assert same(run({"max": [3, 1]}), 3)
    assert same(run({"max": []}), math.nan)
    assert same(run({"+": [{"var": "n"}, 1]}, user(n=[2])), 3)


@pytest.mark.parametrize(
    "rule",
    [
        {"/": [1, 0]},
        {"%": [1, 0]},
        {"/": [1, None]},
        {"/": [{"var": "n"}, {"var": "z"}]},
        {"+": [10**400, 0.5]},
        {"substr": ["abc", {"*": [1e308, 10]}]},
        {"var": ["a", 1, 2]},
    ],
)
def test_what_the_reference_raises_on_is_a_rule_error(rule: Any) -> None:
    # (flagd-core's OpenFeature client gives GENERAL for these: the head does too)
    with pytest.raises(RuleError):
        run(rule, user(n=1, z=0))


def test_strings() -> None:
    assert (
        run({"cat": ["a", 1, 2.5, None, [1, 2], {}]}) == "a12.5null1,2[object Object]"
    )
    assert run({"substr": ["jsonlogic", 4]}) == "logic"
    assert run({"substr": ["jsonlogic", -5]}) == "logic"
    assert run({"substr": ["jsonlogic", 1, 3]}) == "son"
    assert run({"substr": ["jsonlogic", 4, -2]}) == "log"
    assert run({"substr": ["abc", "x"]}) == "abc"
    assert run({"substr": ["abc", 1, "x"]}) == ""


def test_booleans_stringify_as_javascript_correction() -> None:
    # correction: the reference writes Python's True/False
    assert run({"cat": [True, "/", False]}) == "true/false"
    assert run({"in": [True, "is true"]}) is True
    assert run({"==": [[True], "true"]}) is True
    assert run({"substr": [False, 1]}) == "alse"


def test_log_returns_its_argument_and_prints_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # correction: the reference prints the value on standard output
    assert run({"log": [{"var": "v"}]}, user(v=[1])) == [1]
    assert capsys.readouterr().out == ""


def test_merge_missing_and_missing_some() -> None:
    assert run({"merge": [1, [2, 3], [[4]]]}) == [1, 2, 3, [4]]
    ctx = user(a=1, b="", c=None, d={"e": 0})
    assert run({"missing": ["a", "b", "c", "x", "d.e"]}, ctx) == ["b", "c", "x"]
    assert run({"missing": [["a", "x"]]}, ctx) == ["x"]
    assert run({"missing_some": [1, ["a", "x"]]}, ctx) == []
    assert run({"missing_some": [2, ["a", "x", "y"]]}, ctx) == ["x", "y"]
    assert run({"missing_some": [1, "a"]}, ctx) == []


def test_the_forms_over_lists() -> None:
    ctx = user(xs=[1, 2, 3], people=[{"age": 20}, {"age": 40}])
    assert run({"map": [{"var": "xs"}, {"*": [{"var": ""}, 2]}]}, ctx) == [2, 4, 6]
    assert run({"filter": [{"var": "xs"}, {">": [{"var": ""}, 1]}]}, ctx) == [2, 3]
    assert (
        run(
            {
                "reduce": [
                    {"var": "xs"},
                    {"+": [{"var": "current"}, {"var": "accumulator"}]},
                    0,
                ]
            },
            ctx,
        )
        == 6
    )
    assert run({"reduce": ["nope", {"var": "current"}, {"var": "x"}]}, ctx) == {
        "var": "x"
    }
    assert run({"all": [{"var": "people"}, {">": [{"var": "age"}, 18]}]}, ctx) is True
    assert run({"all": [[], True]}) is False
    assert run({"some": [{"var": "people"}, {">": [{"var": "age"}, 30]}]}, ctx) is True
    assert run({"none": [{"var": "people"}, {">": [{"var": "age"}, 50]}]}, ctx) is True
    assert run({"none": [5, True]}) is True and run({"some": [5, True]}) is False
    assert run({"map": ["x", 1]}) == [] and run({"filter": [[1]]}) == []
    assert run({"map": [[1, 2]]}) == [None, None]
    # inside, var reads the item: the context is out of reach
    assert run({"map": [[1], {"var": "targetingKey"}]}, ctx) == [None]


def test_a_rule_that_is_a_value_is_its_own_result() -> None:
    assert run("on") == "on"
    assert run(True) is True
    assert run({"a": 1, "b": {"var": "x"}}) == {"a": 1, "b": {"var": "x"}}
    assert run({"if": [True, {"a": 1, "b": 2}]}) == {"a": 1, "b": 2}
    assert run({"if": [True, [{"var": "v"}, 2]]}, user(v=1)) == [1, 2]


# ------------------------------------------------------- flagd's own operators


def test_starts_with_and_ends_with() -> None:
    ctx = user(email="jo@example.com", n=12)
    assert run({"starts_with": [{"var": "email"}, "jo@"]}, ctx) is True
    assert run({"ends_with": [{"var": "email"}, "@example.com"]}, ctx) is True
    assert run({"ends_with": [{"var": "email"}, "@EXAMPLE.com"]}, ctx) is False
    # null on error: not strings (no coercion), not two arguments
    assert run({"starts_with": [{"var": "n"}, "1"]}, ctx) is None
    assert run({"starts_with": [{"var": "none"}, "1"]}, ctx) is None
    assert run({"starts_with": ["abc", 1]}, ctx) is None
    assert run({"starts_with": ["abc"]}, ctx) is None
    assert run({"ends_with": ["abc", "c", "x"]}, ctx) is None
    assert (
        run(
            {"ends_with": [{"var": "email"}, {"var": "suffix"}]},
            user(email="ab", suffix="b"),
        )
        is True
    )


@pytest.mark.parametrize(
    ("value", "op", "target", "want"),
    [
        ("1.2.3", "=", "1.2.3", True),
        ("1.2.3+build", "=", "1.2.3", True),  # build metadata ignored
        ("v1.2.3", "=", "1.2.3", True),
        ("1.2", "=", "1.2.0", True),  # padded
        ("1", "<", "1.0.1", True),
        ("1.2.3", "!=", "1.2.4", True),
        ("1.0.0-alpha", "<", "1.0.0", True),
        ("1.0.0-alpha.1", "<", "1.0.0-alpha.beta", True),
        ("1.0.0-2", "<", "1.0.0-10", True),
        ("1.0.0-rc.1", ">", "1.0.0-beta.11", True),
        ("2.0.0", ">=", "2.0.0", True),
        ("1.9.9", "<=", "1.10.0", True),
        ("1.5.0", "^", "1.0.0", True),
        ("2.0.0", "^", "1.0.0", False),
        ("1.2.9", "~", "1.2.0", True),
        ("1.3.0", "~", "1.2.0", False),
        (1, "=", "1.0.0", True),  # a number read as its string
        (1.5, "=", "1.5.0", True),
        ("1.2.3", "=~", "1.2.3", None),  # unknown operator
        ("2.0.0.0", "=", "2.0.0", None),
        ("not-a-version", "<", "1.0.0", None),
        ("01.2.3", "=", "1.2.3", None),
        (None, "=", "1.0.0", None),
        (True, "=", "1.0.0", None),
        ("1.2.3", "=", "bad", None),
    ],
)
def test_sem_ver(value: Any, op: str, target: str, want: bool | None) -> None:
    ctx = user(v=value, t=target)
    assert (
        run({"sem_ver": [{"var": "v"}, op, target]}, ctx) is want
    )  # target parsed once
    assert (
        run({"sem_ver": [{"var": "v"}, op, {"var": "t"}]}, ctx) is want
    )  # at run time


def test_sem_ver_wants_three_arguments() -> None:
    assert run({"sem_ver": ["1.0.0", "="]}) is None
    assert run({"sem_ver": ["1.0.0", "=", "1.0.0", "x"]}) is None
    assert run({"sem_ver": [{"var": "v"}, "=", "1.0.0"]}, user(v=[1])) is None


def test_a_versions_parse_is_remembered_by_its_text_alone() -> None:
    assert parse_version("1") is not None
    assert run({"sem_ver": [{"var": "v"}, "=", "1.0.0"]}, user(v=1)) is True
    assert run({"sem_ver": [{"var": "v"}, "=", "1.0.0"]}, user(v=True)) is None


# --------------------------------------------------------------------- CBOR


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"),
        (65535, "19ffff"), (65536, "1a00010000"), (2**32 - 1, "1affffffff"),
        (2**32, "1b0000000100000000"), (2**64 - 1, "1bffffffffffffffff"),
        (2**64, "c249010000000000000000"), (-1, "20"), (-24, "37"), (-25, "3818"),
        (-(2**64), "3bffffffffffffffff"), (-(2**64) - 1, "c349010000000000000000"),
        (1.0, "01"), (-0.0, "00"), (-2.0, "21"), (1.5, "f93e00"), (-1.5, "f9be00"), (0.5, "f93800"),
        (6.103515625e-05, "f90400"), (6.097555160522461e-05, "f903ff"),
        (65504.5, "fa477fe080"), (100000.5, "fa47c35040"), (3.4028234663852886e38, "fa7f7fffff"),
        (1e-40, "fb37a16c262777579c"), (0.1, "fb3fb999999999999a"),
        (5.960464477539063e-08, "f90001"), (math.inf, "f97c00"), (-math.inf, "f9fc00"),
        (math.nan, "f97e00"), (2.0**63, "1b8000000000000000"), (-(2.0**63), "3b7fffffffffffffff"),
        (2.0**64, "fa5f800000"), (1e300, "fb7e37e43c8800759c"),
        (True, "f5"), (False, "f4"), (None, "f6"),
        ("", "60"), ("a", "6161"), ("ü", "62c3bc"), ("x" * 24, "7818" + "78" * 24),
        ([], "80"), ([1, [2]], "820181" + "02"),
        ({"b": 1, "a": 2, "aa": 3}, "a3" + "616102" + "616201" + "62616103"),
    ],
)  # fmt: skip
def test_cbor_is_deterministic_and_shortest(value: Any, encoded: str) -> None:
    assert cbor(value).hex() == encoded


def test_cbor_refuses_what_is_no_unicode_or_no_json() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        cbor("\ud800")
    with pytest.raises(TypeError):
        cbor(object())


# --------------------------------------------------------------- fractional


def _bucket(data: bytes, total: int) -> int:
    return (mmh3.hash(data, signed=False) * total) >> 32


def test_fractional_v3_buckets_the_cbor_of_flag_key_and_targeting_key() -> None:
    rule = {"fractional": [["a", 30], ["b", 50], ["c", 20]]}
    for key in ("user-1", "user-2", "jon@company.com", "ü-ñ", "x" * 40):
        # [flagKey, targetingKey] as CBOR, by hand
        data = bytes([0x82, 0x60 + len(KEY)]) + KEY.encode()
        raw = key.encode()
        data += (
            bytes([0x60 + len(raw)]) if len(raw) < 24 else bytes([0x78, len(raw)])
        ) + raw
        bucket = _bucket(data, 100)
        want = "a" if bucket < 30 else "b" if bucket < 80 else "c"
        assert run(rule, user(key)) == want, key


def test_fractional_v3_buckets_any_value_given() -> None:
    rule = {"fractional": [{"var": "h"}, ["a", 1], ["b", 1], ["c", 1], ["d", 1]]}
    for value in ("user1", 123, 1.5, True, None, [1, "x"], {"k": [1.0]}, 2**70, -0.0):
        got = run(rule, user(h=value))
        if value is None:
            assert got is None  # no bucketing value
            continue
        if isinstance(value, list):
            continue  # a list is the shorthand form (below)
        assert got == "abcd"[_bucket(cbor(value), 4)], value
    # a float with no fraction buckets as its integer
    assert run(rule, user(h=3.0)) == run(rule, user(h=3))


def test_fractional_v2_buckets_a_string() -> None:
    rule = {"fractional": [{"var": "h"}, ["a", 50], ["b", 50]]}
    shorthand = {"fractional": [["a", 50], ["b", 50]]}
    for text in ("user1", "jon@company.com", "ü"):
        want = "ab"[_bucket(text.encode(), 100) >= 50]
        assert run(rule, user(h=text), fractional=2) == want
        want = "ab"[_bucket((KEY + text).encode(), 100) >= 50]
        assert run(shorthand, user(text), fractional=2) == want
        # a non-string first argument: by flagKey + targetingKey (null dropped)
        assert run(rule, user(text), fractional=2) == want
    assert (
        run({"fractional": [5, ["a", 50], ["b", 50]]}, user("u"), fractional=2) is None
    )


@pytest.mark.parametrize(
    ("rule", "ctx", "want"),
    [
        # (outcomes flagd's testbed v3.9.0 publishes, as cases of our own)
        ({"fractional": [["heads"], ["tails", 1]]}, user("jon@company.com"), "tails"),
        (
            {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]},
                            ["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]]},
            user("k", user={"name": "jack"}),
            "diamonds",
        ),
        (
            {"fractional": [{"var": "h"}, *[[f"bucket{i}", 4] for i in range(1, 26)]]},
            user("k", h=2147483648),
            "bucket25",
        ),
        (
            {"fractional": [{"var": "h"}, *[[f"bucket{i}", 4] for i in range(1, 26)]]},
            user("k", h=9007199254740992.0),
            "bucket10",
        ),
        (
            {"fractional": [{"var": "h"}, *[[f"bucket{i}", 4] for i in range(1, 26)]]},
            user("k", h=True),
            "bucket5",
        ),
    ],
)  # fmt: skip
def test_fractional_published_outcomes(rule: Any, ctx: Context, want: str) -> None:
    key = (
        "fractional-flag" if "cat" in json.dumps(rule) else "fractional-flag-shorthand"
    )
    if "bucket1" in json.dumps(rule):
        key = "fractional-basic-flag"
    assert run(rule, ctx, key=key) == want


def test_fractional_published_v2_outcome() -> None:
    rule = {"fractional": [["heads"], ["tails", 1]]}
    assert (
        run(
            rule, user("jon@company.com"), key="fractional-flag-shorthand", fractional=2
        )
        == "heads"
    )


def test_fractional_weights_and_errors() -> None:
    one = {"fractional": [["only", 1]]}
    assert run(one) == "only"
    assert run({"fractional": [["a", 0], ["b", 5]]}) == "b"
    assert run({"fractional": [["a", -3], ["b", 5]]}) == "b"  # clamped to 0
    assert run({"fractional": [["a", 0]]}) is None  # total 0
    assert run({"fractional": [["a", 2**31], ["b", 1]]}) is None  # past MaxInt32
    assert run({"fractional": [["a", 50.0], ["b", 50]]}) is None  # v3: integers only
    assert run({"fractional": [["a", 50.0], ["b", 50]]}, fractional=2) in ("a", "b")
    assert run({"fractional": [["a", 50.5], ["b", 50]]}, fractional=2) is None
    assert run({"fractional": [["a", True], ["b", 50]]}) is None
    assert run({"fractional": [["a", 1, 2]]}) is None
    assert run({"fractional": [["a", 1, 2]]}, fractional=2) == "a"
    assert run({"fractional": ["x", "a"]}) is None  # an entry not a list
    assert run({"fractional": []}) is None
    assert run({"fractional": [[None, 1]]}) is None
    assert run({"fractional": [[7, 1]]}) == 7
    # nested: weights and variants computed
    nested = {"fractional": [{"var": "targetingKey"},
                             [{"if": [{"var": "vip"}, "gold", "plain"]}, 1],
                             ["x", {"if": [{"var": "vip"}, 0, 1]}]]}  # fmt: skip
    assert run(nested, user(vip=True)) == "gold"
    assert run(nested, user(vip=False)) in ("plain", "x")
    # the value evaluating to a list: the shorthand, every argument an entry
    listed = {"fractional": [{"var": "e"}, ["b", 1]]}
    assert run(listed, user(e=["a", 1])) in ("a", "b")


def test_fractional_weighed_once_as_at_run_time() -> None:
    entries = [["a", 10], ["b", 0], ["c", 25], ["d", 65]]
    fractions = fractions_of(entries, 3)
    assert isinstance(fractions, Fractions)
    assert fractions.thresholds == (10, 10, 35, 100)
    static = {"fractional": [{"var": "h"}, *entries]}
    dynamic = {"fractional": [{"var": "h"}, *[[v, {"+": [w]}] for v, w in entries]]}
    for i in range(200):
        ctx = user(f"u{i}", h=f"v{i}")
        assert run(static, ctx) == run(dynamic, ctx)
        assert run(static, ctx, fractional=2) == run(dynamic, ctx, fractional=2)


def test_fractional_needs_a_targeting_key_for_the_shorthand() -> None:
    rule = {"fractional": [["a", 1], ["b", 1]]}
    ctx = user("k")
    assert run(rule, ctx) in ("a", "b")
    # inside map the data is the item: its own targetingKey, or null
    inner = {"map": [[{"targetingKey": "k", "$flagd": {"flagKey": KEY}}, {}], rule]}
    assert run(inner, ctx) == [run(rule, ctx), None]
    with pytest.raises(RuleError):
        run({"map": [[1], rule]}, ctx)


def test_fractional_without_mmh3_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = builtins.__import__

    def no_mmh3(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "mmh3":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "mmh3")
    monkeypatch.setattr(builtins, "__import__", no_mmh3)
    with pytest.raises(TargetingError, match=r"pip install 'aioflags\[flagd\]'"):
        build_targeting({"if": [True, {"fractional": [["a", 1]]}]}, KEY)
    assert run({"if": [True, "a"]}) == "a"  # the rest needs none


# ---------------------------------------------------- compile-time refusals


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"foo": [1]}, "targeting: unknown operator 'foo'"),
        ({"if": [True, {"foo": []}]}, "targeting: if[1]: unknown operator 'foo'"),
        (
            {"if": [False, "x", {"and": [1, {"$ref": "r"}]}]},
            "targeting: if[2]: and[1]: no evaluator is named 'r'",
        ),
        ({"abs": [-1]}, "unknown operator 'abs'"),
        ({"contains_any": [[1], [1]]}, "unknown operator 'contains_any'"),
        ({"set": ["a", 1]}, "unknown operator 'set'"),
        ({"var.x": []}, "unknown operator 'var.x'"),
        ({"map": [[1], {"nope": 1}]}, "targeting: map[1]: unknown operator 'nope'"),
    ],
)
def test_an_unknown_operator_is_refused_wherever_it_stands(
    rule: Any, message: str
) -> None:
    # correction: the reference refuses it only when an evaluation reaches it
    with pytest.raises(TargetingError) as caught:
        build_targeting(rule, KEY)
    assert message in str(caught.value)


def test_the_bucketing_version_is_2_or_3() -> None:
    with pytest.raises(ValueError, match="fractional"):
        build_targeting({"var": "x"}, KEY, fractional=1)


# ------------------------------------------------- generated code, shapes, safety


def _source(rule: Any, key: str = KEY) -> str:
    code, _ = build_targeting(rule, key)
    return "".join(__import__("linecache").getlines(code.__code__.co_filename))


def test_flag_data_never_becomes_code() -> None:
    hostile = [
        '"); raise SystemExit("injected"); ("',
        "'\n__import__('os').system('false')\n'",
        "\x00\x01o[0]",
        "__import__",
        "}}{{0}}",
        "\\",
    ]
    for text in hostile:
        rule = {
            "if": [
                {"==": [{"var": text}, text]},
                text,
                {"in": [{"var": f"{text}.{text}"}, [text, "x"]]},
                {"cat": [text, {"var": ["nope", text]}]},
                {"starts_with": [{"var": text}, text]},
                text,
                {"fractional": [[text, 1], ["other", 1]]},
            ]
        }
        code, operands = build_targeting(rule, text)
        source = _source(rule, text)
        assert text not in source
        for part in (code.__code__.co_names, code.__code__.co_consts):
            assert text not in repr(part)
        assert code(operands, user("k", **{text: text}), None) == text
        assert code(operands, user("k"), None) in (text, "other")
    # operator names that look like code are unknown operators, never code
    for op in ("__import__", "o[0]", "exec", "_eq", "lambda: 1", "'\n"):
        with pytest.raises(TargetingError):
            build_targeting({op: [1]}, KEY)


def test_rules_of_one_shape_share_their_function_not_their_data() -> None:
    a = {
        "if": [
            {"in": [{"var": "tier"}, ["gold"]]},
            "on",
            {"sem_ver": [{"var": "v"}, ">=", "1.0.0"]},
            "new",
            "off",
        ]
    }
    b = {
        "if": [
            {"in": [{"var": "plan"}, ["pro", "max"]]},
            "yes",
            {"sem_ver": [{"var": "w"}, "<", "3.1"]},
            "old",
            "no",
        ]
    }
    run_a, ops_a = build_targeting(a, "flag-a")
    run_b, ops_b = build_targeting(b, "flag-b")
    assert run_a is run_b
    assert ops_a != ops_b
    ctx = user(tier="gold", plan="basic", v="0.1", w="3.0")
    assert run_a(ops_a, ctx, None) == "on"
    assert run_b(ops_b, ctx, None) == "old"
    # another shape, another function
    run_c, _ = build_targeting(
        {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}, "flag-c"
    )
    assert run_c is not run_a


def test_the_shape_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # (the generator's back end holds the one shape cache, LaunchDarkly's too)
    monkeypatch.setattr(_generate, "_CACHE_SIZE", 3)
    monkeypatch.setattr(_generate, "_shapes", {})
    for i in range(10):
        build_targeting({"+": [{"var": "x"}] * (i + 1)}, KEY)
        assert len(_generate._shapes) <= 3
    assert run({"+": [{"var": "x"}, 1]}, user(x=1)) == 2


def test_a_generated_function_shows_in_tracebacks() -> None:
    code, operands = build_targeting({"if": [True, {"/": [1, {"var": "zero"}]}]}, KEY)
    with pytest.raises(RuleError) as caught:
        code(operands, user(zero=0), None)
    text = "".join(traceback.format_exception(caught.value))
    assert "aioflags flagd targeting" in text
    assert "return _div(" in text


def test_a_deep_rule_compiles() -> None:
    # (deeper than CPython's parser takes one expression: split into functions)
    rule: Any = {"var": "x"}
    for _ in range(100):
        rule = {"if": [{"var": "flag"}, {"and": [True, rule]}, "no"]}
    assert run(rule, user(flag=True, x="deep")) == "deep"
    assert run(rule, user(flag=False, x="deep")) == "no"
    nested: Any = 1
    for _ in range(150):
        nested = {"+": [nested, 1]}
    assert run(nested) == 151
    inner: Any = {"var": ""}
    for _ in range(60):
        inner = {"+": [inner, 1]}
    assert run({"map": [[1, 2], inner]}) == [61, 62]
