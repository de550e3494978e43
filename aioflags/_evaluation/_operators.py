"""Clause operators, compiled once per clause when flag data arrives.

:func:`compile_test` turns an operator name and its clause values into a
predicate over one context value. Clause values that cannot serve the operator
(a bad regex, date or version, a non-string for a string operator) are dropped
at compile time: they never match, they are not errors (evaluation.md §6.2).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Final, NamedTuple, TypeAlias

# The regular-expression machinery (``_regex.py``, ``_re2syntax.py``) is
# imported by the first ``matches`` clause compiled: a process whose flags
# have none never loads it (tests/test_import.py; docs/benchmarks.md,
# "Cold start to the first evaluation").

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

__all__ = [
    "OPERATORS",
    "Operator",
    "SemVer",
    "compile_test",
    "parse_instant",
    "parse_semver",
    "semver_key",
]

Test = Callable[["JSONValue"], bool]

_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_ONE_US: Final = _dt.timedelta(microseconds=1)
# RFC 3339 date-time, strictly: the offset is required. [0-9], not \d, which
# also matches non-ASCII digits.
_RFC3339: Final = (
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_NUM: Final = r"(?:0|[1-9][0-9]*)"
_IDENT: Final = r"[0-9A-Za-z-]+"
_SEMVER: Final = (
    rf"({_NUM})(?:\.({_NUM}))?(?:\.({_NUM}))?"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+({_IDENT}(?:\.{_IDENT})*))?"
)


@lru_cache(maxsize=2)
def _compiled(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled on its first use, not at import.

    Only flags with date or semantic-version operators need them, and
    compiling both costs 3.5 M instructions, 6 % of ``import aioflags``.
    """
    return re.compile(pattern)


def _is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


@lru_cache(maxsize=4096)
def _parse_instant_str(text: str) -> float | None:
    m = _compiled(_RFC3339).fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    fraction = (m.group(7) or "")[:6].ljust(6, "0")
    if m.group(8):
        offset = _dt.timedelta(0)
    else:
        off_h, off_m = int(m.group(10)), int(m.group(11))
        if off_h > 23 or off_m > 59:
            return None
        offset = _dt.timedelta(hours=off_h, minutes=off_m)
        if m.group(9) == "-":
            offset = -offset
    try:
        moment = _dt.datetime(
            year,
            month,
            day,
            hour,
            minute,
            second,
            int(fraction),
            tzinfo=_dt.timezone(offset),
        )
    except ValueError:
        return None
    micros = (moment - _EPOCH) // _ONE_US
    return (micros / 10**6) * 1000.0


def parse_instant(value: JSONValue) -> float | None:
    """Epoch milliseconds for a number or a strict RFC 3339 string; else ``None``."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        return _parse_instant_str(value)
    return None


class SemVer(NamedTuple):
    """A parsed semantic version (build metadata is dropped: it never orders)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...]


@lru_cache(maxsize=4096)
def parse_semver(text: str) -> SemVer | None:
    """Parse SemVer 2.0.0, allowing a missing minor or patch (``"2"`` = ``2.0.0``)."""
    m = _compiled(_SEMVER).fullmatch(text)
    if m is None:
        return None
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    for ident in pre:
        if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
            return None
    return SemVer(int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), pre)


def compare_semver(a: SemVer, b: SemVer) -> int:
    """Precedence: -1, 0 or 1."""
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    pa, pb = a.prerelease, b.prerelease
    if pa == pb:
        return 0
    if not pa:
        return 1
    if not pb:
        return -1
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        xd, yd = x.isdigit(), y.isdigit()
        if xd and yd:
            return -1 if int(x) < int(y) else 1
        if xd != yd:
            return -1 if xd else 1
        return -1 if x < y else 1
    return -1 if len(pa) < len(pb) else 1


def _semver_of(value: JSONValue) -> SemVer | None:
    return parse_semver(value) if isinstance(value, str) else None


#: A version's precedence as a plain tuple: ``a < b`` exactly when
#: ``compare_semver(a, b) == -1``, so a clause compares in one C-level step.
SemVerKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def _key_of(s: SemVer) -> SemVerKey:
    if not s.prerelease:
        return (s.major, s.minor, s.patch, 1, ())  # a release follows its prereleases
    # Numeric identifiers order numerically and before alphanumeric ones, which
    # order as ASCII; a shorter run of equal identifiers comes first.
    ids = tuple((0, int(i)) if i.isdigit() else (1, i) for i in s.prerelease)
    return (s.major, s.minor, s.patch, 0, ids)


@lru_cache(maxsize=4096)
def semver_key(text: str) -> SemVerKey | None:
    """The precedence key of a version string, or ``None`` if it is not SemVer."""
    s = parse_semver(text)
    return None if s is None else _key_of(s)


def _never(value: JSONValue) -> bool:
    return False


def _compile_in(values: Sequence[JSONValue]) -> Test:
    strs: set[str] = set()
    nums: set[int | float] = set()
    bools: set[bool] = set()
    others: list[JSONValue] = []
    for c in values:
        if type(c) is str:
            strs.add(c)
        elif type(c) is bool:
            bools.add(c)
        elif _is_number(c):
            nums.add(c)
        else:
            others.append(c)

    return partial(
        _in, frozenset(strs), frozenset(bools), frozenset(nums), tuple(others)
    )


# A clause's test is one of these with its operands bound (``partial``): one
# object for the collector to walk, where a closure would be three (the
# function, its cells and their tuple), for as long as its flag lasts.
def _in(
    strs: frozenset[str],
    bools: frozenset[bool],
    nums: frozenset[int | float],
    others: tuple[JSONValue, ...],
    v: JSONValue,
) -> bool:
    tv = type(v)
    if tv is str:
        return v in strs
    if tv is bool:
        return v in bools
    if tv is int or tv is float:
        return v in nums
    return any(v == o for o in others)


_COMPARE: Final = {
    "lessThan": float.__lt__,
    "lessThanOrEqual": float.__le__,
    "greaterThan": float.__gt__,
    "greaterThanOrEqual": float.__ge__,
}
#: "any clause value c with v OP c" is "v OP bound", the bound being the
#: largest value for < and <=, the smallest for > and >=.
_BOUND: Final = {
    "lessThan": max,
    "lessThanOrEqual": max,
    "greaterThan": min,
    "greaterThanOrEqual": min,
}
_NUMBERS: Final = frozenset({int, float})


def _compile_numeric(values: Sequence[JSONValue], op: str) -> Test:
    cs = [float(c) for c in values if _is_number(c)]
    if not cs:
        return _never
    return partial(_numeric, _COMPARE[op], _BOUND[op](cs))


def _numeric(
    compare: Callable[[float, float], bool], bound: float, v: JSONValue
) -> bool:
    return type(v) in _NUMBERS and compare(float(v), bound)


def _compile_dates(values: Sequence[JSONValue], before: bool) -> Test:
    cs = tuple(t for t in map(parse_instant, values) if t is not None)
    if not cs:
        return _never
    # "Strictly before any clause instant" is "before the latest" (and after: the earliest).
    return partial(_date, max(cs) if before else min(cs), before)


def _date(bound: float, before: bool, v: JSONValue) -> bool:
    tv = type(v)
    if tv is int or tv is float:
        t: float | None = float(v)
    elif tv is str:
        t = _parse_instant_str(v)
    else:
        return False
    if t is None:
        return False
    return t < bound if before else t > bound


def _compile_semver(values: Sequence[JSONValue], want: int) -> Test:
    cs = [_key_of(s) for s in map(_semver_of, values) if s is not None]
    if not cs:
        return _never
    if want == 0:
        return partial(_semver_in, frozenset(cs))
    # Any clause version c with v < c is v < the largest (and > the smallest).
    if want < 0:
        return partial(_semver_below, max(cs))
    return partial(_semver_above, min(cs))


def _semver_in(members: frozenset[SemVerKey], v: JSONValue) -> bool:
    return type(v) is str and semver_key(v) in members


def _semver_below(high: SemVerKey, v: JSONValue) -> bool:
    return type(v) is str and (k := semver_key(v)) is not None and k < high


def _semver_above(low: SemVerKey, v: JSONValue) -> bool:
    return type(v) is str and (k := semver_key(v)) is not None and k > low


def _strings(values: Sequence[JSONValue]) -> tuple[str, ...]:
    return tuple(c for c in values if isinstance(c, str))


def _compile_strings(
    values: Sequence[JSONValue], make: Callable[[tuple[str, ...]], Test]
) -> Test:
    strs = _strings(values)
    return make(strs) if strs else _never


def _compile_contains(strs: tuple[str, ...]) -> Test:
    if len(strs) == 1:
        return partial(_contains, strs[0])
    return partial(_contains_any, strs)


def _contains(c: str, v: JSONValue) -> bool:
    return type(v) is str and c in v


def _contains_any(strs: tuple[str, ...], v: JSONValue) -> bool:
    return type(v) is str and any(c in v for c in strs)


def _compile_starts_with(strs: tuple[str, ...]) -> Test:
    return partial(_starts_with, strs)


def _compile_ends_with(strs: tuple[str, ...]) -> Test:
    return partial(_ends_with, strs)


def _starts_with(strs: tuple[str, ...], v: JSONValue) -> bool:
    return type(v) is str and v.startswith(strs)


def _ends_with(strs: tuple[str, ...], v: JSONValue) -> bool:
    return type(v) is str and v.endswith(strs)


def _compile_matches(strs: tuple[str, ...]) -> Test:
    # One bounded matcher per pattern (aioflags/_evaluation/_regex.py), the same one the
    # generated code uses through the inline form.
    from ._regex import matcher_for  # (on the first matches clause)

    matchers = tuple(m for m in map(matcher_for, strs) if m is not None)
    if not matchers:
        return _never
    if len(matchers) == 1:
        return partial(_matches, matchers[0])
    return partial(_matches_any, matchers)


def _matches(match: Callable[[str], bool], v: JSONValue) -> bool:
    return type(v) is str and match(v)


def _matches_any(matchers: tuple[Callable[[str], bool], ...], v: JSONValue) -> bool:
    return type(v) is str and any(m(v) for m in matchers)


def _inline_contains(values: Sequence[JSONValue]) -> tuple[object, ...] | None:
    strs = _strings(values)
    return (strs[0],) if len(strs) == 1 else None


def _inline_matches(values: Sequence[JSONValue]) -> tuple[object, ...] | None:
    strs = _strings(values)
    if len(strs) != 1:
        return None
    # The matcher's Python ``search`` and fast limit, as two operands: the
    # generated code calls the search it is given. (Read from the matcher
    # there, ``matcher.search(v)`` looked a slot up as a method, which
    # CPython does not specialise: ~100 instructions a clause, measured.)
    from ._regex import matcher_for  # (on the first matches clause)

    matcher = matcher_for(strs[0])
    return None if matcher is None else (matcher.search, matcher.limit)


#: 2**53: every integer of smaller magnitude is exactly a float
_EXACT: Final = 2.0**53


def _exact_bound(bound: float) -> tuple[object, ...] | None:
    """The operand of an inline comparison ``v OP bound`` with no ``float(v)``.

    LaunchDarkly compares numbers as floats: ``float(v) OP bound``. Compared
    directly, Python compares an int and a float exactly, and the two differ
    only when ``float(v)`` rounds to ``bound``, which needs ``bound`` to be a
    whole number of magnitude 2**53 or more: such a bound is left to the
    generic test (``None``). Any other whole bound becomes an int, so that
    an int value compares with it in one specialised step (converting the
    value costs ~250 CPU instructions).
    """
    if not bound.is_integer():
        return (bound,)  # a fraction, an infinity or NaN: compares as it is
    return (int(bound),) if abs(bound) < _EXACT else None


def _inline_numeric(op: str) -> Inline:
    def inline(values: Sequence[JSONValue]) -> tuple[object, ...] | None:
        numbers = [float(c) for c in values if _is_number(c)]
        return _exact_bound(_BOUND[op](numbers)) if numbers else None

    return inline


def _inline_date(before: bool) -> Inline:
    # "Strictly before any clause instant" is "before the latest" (and after:
    # the earliest), on epoch milliseconds; strings go to the generic test.
    def inline(values: Sequence[JSONValue]) -> tuple[object, ...] | None:
        instants = [t for t in map(parse_instant, values) if t is not None]
        if not instants:
            return None
        return _exact_bound(max(instants) if before else min(instants))

    return inline


def _inline_semver(reduce: Callable[[list[SemVerKey]], object]) -> Inline:
    def inline(values: Sequence[JSONValue]) -> tuple[object, ...] | None:
        keys = [_key_of(s) for s in map(_semver_of, values) if s is not None]
        return (reduce(keys),) if keys else None

    return inline


Inline: TypeAlias = "Callable[[Sequence[JSONValue]], tuple[object, ...] | None]"
_STR: Final = "type(v) is str"
_NUMBER: Final = "((t := type(v)) is int or t is float)"


class Operator(NamedTuple):
    """One LaunchDarkly clause operator (evaluation.md §6.2), in one place.

    ``test(values)`` compiles the generic predicate over one context value,
    which decides every value. ``inline(values)`` gives the operands of the
    inline form (or ``None``: the generated code calls the test instead);
    the inline form is ``template`` on a value ``v`` for which ``guard``
    holds (both formatted with the operands' names as ``{0}``, ``{1}``...),
    and the generated code asks the test about any other value. The code
    generator (aioflags/_evaluation/_codegen.py) writes them; tests hold the inline form
    to the test, value by value.
    """

    name: str
    test: Callable[[Sequence[JSONValue]], Test]
    inline: Inline | None = None
    guard: str = ""
    template: str = ""


#: Every operator, by its name in flag JSON. ``segmentMatch`` is not an
#: operator on a value: aioflags/_evaluation/_model.py compiles it on its own. An unknown
#: operator matches nothing.
OPERATORS: Final[dict[str, Operator]] = {
    op.name: op
    for op in (
        Operator(
            "in",
            _compile_in,
            lambda values: (frozenset(_strings(values)),),
            _STR,
            "v in {0}",
        ),
        Operator(
            "startsWith",
            lambda values: _compile_strings(values, _compile_starts_with),
            lambda values: (_strings(values),),
            _STR,
            "v.startswith({0})",
        ),
        Operator(
            "endsWith",
            lambda values: _compile_strings(values, _compile_ends_with),
            lambda values: (_strings(values),),
            _STR,
            "v.endswith({0})",
        ),
        Operator(
            "contains",
            lambda values: _compile_strings(values, _compile_contains),
            _inline_contains,
            _STR,
            "{0} in v",
        ),
        Operator(
            # A string within the matcher's fast limit is answered by its
            # Python ``search`` inline, as the matcher itself would; a longer
            # one goes to the test, which is the matcher.
            "matches",
            lambda values: _compile_strings(values, _compile_matches),
            _inline_matches,
            f"{_STR} and len(v) <= {{1}}",
            "{0}(v) is not None",
        ),
        *(
            Operator(
                op,
                lambda values, op=op: _compile_numeric(values, op),  # type: ignore[misc]
                _inline_numeric(op),
                _NUMBER,
                f"v {symbol} {{0}}",
            )
            for op, symbol in (
                ("lessThan", "<"),
                ("lessThanOrEqual", "<="),
                ("greaterThan", ">"),
                ("greaterThanOrEqual", ">="),
            )
        ),
        Operator(
            "before",
            lambda values: _compile_dates(values, before=True),
            _inline_date(before=True),
            _NUMBER,
            "v < {0}",
        ),
        Operator(
            "after",
            lambda values: _compile_dates(values, before=False),
            _inline_date(before=False),
            _NUMBER,
            "v > {0}",
        ),
        Operator(
            "semVerEqual",
            lambda values: _compile_semver(values, 0),
            _inline_semver(frozenset),
            _STR,
            "_semver(v) in {0}",
        ),
        Operator(
            "semVerLessThan",
            lambda values: _compile_semver(values, -1),
            _inline_semver(max),
            _STR,
            "(k := _semver(v)) is not None and k < {0}",
        ),
        Operator(
            "semVerGreaterThan",
            lambda values: _compile_semver(values, 1),
            _inline_semver(min),
            _STR,
            "(k := _semver(v)) is not None and k > {0}",
        ),
    )
}


def compile_test(op: str, values: Sequence[JSONValue]) -> Test:
    """The predicate for ``op`` over the clause ``values`` (never raises)."""
    operator = OPERATORS.get(op)
    return _never if operator is None else operator.test(values)
