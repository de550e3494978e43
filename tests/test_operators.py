"""Clause operators, one table per operator family (evaluation.md §6)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from aioflags._evaluation._operators import (
    compare_semver,
    compile_test,
    parse_instant,
    parse_semver,
)
from tests.flags import SEMVER_ASCENDING

CASES: list[tuple[str, Any, list[Any], bool]] = [
    # in
    ("in", "a", ["a", "b"], True),
    ("in", "c", ["a", "b"], False),
    ("in", 1, [1.0], True),
    ("in", 1.0, [1], True),
    ("in", True, [1], False),
    ("in", 1, [True], False),
    ("in", True, [True], True),
    ("in", [1], [[1]], True),
    ("in", {"a": 1}, [{"a": 1}], True),
    ("in", {"a": 1}, [{"a": 2}], False),
    ("in", None, [None], True),
    ("in", "a", [], False),
    # string operators
    ("startsWith", "hello", ["he"], True),
    ("startsWith", "hello", ["lo"], False),
    ("startsWith", "hello", [""], True),
    ("startsWith", 5, ["5"], False),
    ("startsWith", "5", [5], False),
    ("endsWith", "hello", ["lo", "x"], True),
    ("endsWith", "hello", ["he"], False),
    ("contains", "hello", ["ell"], True),
    ("contains", "hello", ["ELL"], False),
    ("contains", "hello", [""], True),
    ("matches", "hello", ["l+"], True),
    ("matches", "hello", ["^l"], False),
    ("matches", "hello", ["["], False),
    ("matches", "hello", ["[", "h"], True),
    ("matches", 5, ["5"], False),
    # numeric
    ("lessThan", 1, [2], True),
    ("lessThan", 2, [2], False),
    ("lessThanOrEqual", 2, [2.0], True),
    ("greaterThan", 3, [2], True),
    ("greaterThan", 2, [2], False),
    ("greaterThanOrEqual", 2, [2], True),
    ("lessThan", "1", [2], False),
    ("lessThan", 1, ["2"], False),
    ("lessThan", True, [2], False),
    ("lessThan", 1, [True], False),
    # dates
    ("before", 1000, [2000], True),
    ("before", 2000, [2000], False),
    ("after", 3000, [2000], True),
    ("before", "1970-01-01T00:00:01Z", [2000], True),
    ("before", "1970-01-01T00:00:01.5+00:00", [1501], True),
    ("after", "1970-01-01T01:00:00+01:00", [-1], True),
    ("before", "1970-01-01", [2000], False),
    ("before", "1970-01-01T00:00:01", [2000], False),
    ("before", "1970-01-01 00:00:01Z", [2000], False),
    ("before", "1512543600000", [2000], False),
    ("before", True, [2000], False),
    ("before", 1000, ["nope"], False),
    # semver
    ("semVerEqual", "2.0.0", ["2"], True),
    ("semVerEqual", "2.1.0", ["2.1"], True),
    ("semVerEqual", "1.0.0+a", ["1.0.0+b"], True),
    ("semVerLessThan", "1.0.0-rc.1", ["1.0.0"], True),
    ("semVerLessThan", "1.0.0-alpha", ["1.0.0-alpha.1"], True),
    ("semVerLessThan", "1.0.0-1", ["1.0.0-alpha"], True),
    ("semVerLessThan", "1.0.0-2", ["1.0.0-10"], True),
    ("semVerGreaterThan", "1.0.0-beta", ["1.0.0-alpha"], True),
    ("semVerGreaterThan", "1.10.0", ["1.9.0"], True),
    ("semVerEqual", "01.2.3", ["1.2.3"], False),
    ("semVerEqual", "v1.2.3", ["1.2.3"], False),
    ("semVerEqual", 1, ["1.0.0"], False),
    # unknown
    ("whatever", "a", ["a"], False),
]


@pytest.mark.parametrize(
    ("op", "value", "values", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1]!r}-{c[2]!r}" for c in CASES],
)
def test_operator(op: str, value: Any, values: list[Any], expected: bool) -> None:
    assert compile_test(op, values)(value) is expected


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("1970-01-01t00:00:00z", 0.0),
        ("1970-01-01T00:00:00.123456789Z", 123.456),
        ("2017-12-06T07:00:00-01:30", 1512549000000.0),
        ("2020-02-29T00:00:00Z", 1582934400000.0),
    ],
)
def test_parse_instant_valid(text: str, millis: float) -> None:
    assert parse_instant(text) == millis


@pytest.mark.parametrize(
    "text",
    [
        "2021-02-29T00:00:00Z",
        "2020-13-01T00:00:00Z",
        "2020-01-01T24:00:00Z",
        "2020-01-01T00:00:00+24:00",
        "2020-01-01T00:00:00+01:60",
        "2020-01-01T00:00:00+0100",
        "٢٠٢٠-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2020-01-01T00:00:00Z\n",
    ],
)
def test_parse_instant_invalid(text: str) -> None:
    assert parse_instant(text) is None


def test_parse_instant_types() -> None:
    assert parse_instant(5) == 5.0
    assert parse_instant(5.5) == 5.5
    assert parse_instant(True) is None
    assert parse_instant(None) is None


@pytest.mark.parametrize(
    "text", ["1.2.3-01", "1.2.3-", "1.2.3+", "1.2.3.4", " 1.2.3", "1..2", "1.2.3-a..b"]
)
def test_parse_semver_invalid(text: str) -> None:
    assert parse_semver(text) is None


def test_parse_semver_build_may_have_leading_zero() -> None:
    assert parse_semver("1.2.3+01") is not None


def test_compare_semver_orders_prereleases() -> None:
    parsed = [parse_semver(v) for v in SEMVER_ASCENDING]
    for a, b in itertools.pairwise(parsed):
        assert a is not None and b is not None
        assert compare_semver(a, b) == -1
        assert compare_semver(b, a) == 1
        assert compare_semver(a, a) == 0


def test_bad_regex_warning_never_escapes() -> None:
    # "[[a]" makes re emit a FutureWarning at compile time; warnings are errors in tests.
    assert compile_test("matches", ["[[a]"])("[a") in (True, False)
