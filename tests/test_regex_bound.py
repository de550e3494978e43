"""``matches`` in bounded time, with Python ``re``'s answers (aioflags/_evaluation/_regex.py)."""

from __future__ import annotations

import array
import random
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import re2
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aioflags import Context
from aioflags._datasystem._store import snapshot_from_data
from aioflags._evaluation._codegen import MAX_CLAUSES
from aioflags._evaluation._re2syntax import (
    Needs,
    Untranslatable,
    _ascii_folds,
    _literal,
    translate,
)
from aioflags._evaluation._regex import (
    CAP_BUDGET,
    FAST_BUDGET,
    MAX_PATTERN_LENGTH,
    Matcher,
    Route,
    backtracking_work,
    compile_pattern,
    re2_available,
)
from tests.flags import match_flag
from tests.reference import Case, compare

HOSTILE = "a" * 10_000 + "!"
#: Catastrophic in Python's re on HOSTILE-like values (exponential or worse).
CATASTROPHIC = [r"^(a+)+$", r"(a|a)*b", r"(\w+\s?)+$", r"^(a|aa)+$", r"((a*)*)*!x"]


def python(pattern: str, value: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "[[:alpha:]]"
        return re.search(pattern, value) is not None


def via_re2(pattern: str, value: str) -> bool | None:
    """RE2's answer through the translation, or None where it does not apply."""
    try:
        text, needs = translate(pattern)
    except Untranslatable:
        return None
    if needs & Needs.ASCII_TEXT and not value.isascii():
        return None
    if needs & Needs.NO_INNER_NEWLINE and "\n" in value[:-1]:
        return None
    if needs & Needs.NOT_EMPTY and not value:
        return None
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(text, options)
    except re2.error:
        return None
    return compiled.search(value) is not None


def forced(matcher: Matcher, *, limit: int = -1) -> Matcher:
    """The same matcher with a different fast limit (to force the RE2 route)."""
    return Matcher(
        matcher.pattern,
        matcher.search,
        limit=limit,
        cap=matcher.cap,
        re2=matcher._re2,
        needs=matcher._needs,
    )


def flag(pattern: str | list[str], *, interpreted: bool = False) -> dict[str, Any]:
    values = pattern if isinstance(pattern, list) else [pattern]
    fillers = None
    if interpreted:  # too many clauses to generate: the interpreter runs it
        filler = {"attribute": "zz", "op": "in", "values": ["q"]}
        fillers = [
            {"id": f"p{i}", "clauses": [filler], "variation": 1}
            for i in range(MAX_CLAUSES + 1)
        ]
    clause = {"attribute": "ua", "op": "matches", "values": values}
    return match_flag(clause, rule_id="m", rules_before=fillers)


def evaluate(f: dict[str, Any], value: str) -> Any:
    snap = snapshot_from_data({"f": f})
    return snap.variation("f", Context.create("u", attributes={"ua": value}), None)


# ------------------------------------------------------------------ the bound


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_a_catastrophic_pattern_sends_a_long_value_to_re2(pattern: str) -> None:
    m = compile_pattern(pattern)
    assert m is not None
    assert m.route(HOSTILE) is Route.RE2
    assert backtracking_work(pattern, m.limit) <= FAST_BUDGET
    assert m(HOSTILE) is False


@pytest.mark.parametrize("interpreted", [False, True], ids=["generated", "interpreter"])
@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_python_re_never_sees_a_value_beyond_the_patterns_budget(
    pattern: str, interpreted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both evaluation paths: Python's re only gets values its budget covers."""
    m = compile_pattern(pattern)  # the flag below gets this same matcher
    assert m is not None
    seen: list[int] = []
    real = m.search

    def spy(value: str) -> object:
        seen.append(len(value))
        return real(value)

    monkeypatch.setattr(m, "search", spy)
    f = flag(pattern, interpreted=interpreted)
    assert evaluate(f, HOSTILE) is False
    assert evaluate(f, "a") is python(pattern, "a")
    if m.limit >= 1:
        assert seen, "the short value went to Python's re"
    assert max(seen, default=0) <= m.limit
    assert backtracking_work(pattern, max(seen, default=0)) <= FAST_BUDGET


@pytest.mark.parametrize(
    ("apart", "overlapping"),
    [
        (r"\d+\.\d+", r"\d+\d\.\d+"),
        (r"(\w+)\s\1", r"(\w+)\w\1"),
        (r"\D+\d.+!", r"\D+\S.+!"),
        (r"[^\d]+\d.+!", r"[^\d]+\w.+!"),
        (r"(?a)\w+\s.+!", r"(?a)\w+\S.+!"),
    ],
)
def test_the_estimate_sees_a_repeat_that_cannot_run_into_what_follows(
    apart: str, overlapping: str
) -> None:
    """A digit run before a dot backtracks one way: quadratic search, not cubic."""
    assert backtracking_work(apart, 1000) < 1e7 < backtracking_work(overlapping, 1000)


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_without_re2_a_long_value_is_capped(pattern: str) -> None:
    m = compile_pattern(pattern, use_re2=False)
    assert m is not None
    assert m.limit == m.cap
    assert backtracking_work(pattern, m.cap) <= CAP_BUDGET
    assert m.route(HOSTILE) is Route.NO_MATCH
    assert m(HOSTILE) is False


@pytest.mark.parametrize(
    ("pattern", "value", "why"),
    [
        (r"(a)\1+$|(a+)+$", HOSTILE, "a backreference"),
        (r"(?=a)(a+)+$", HOSTILE, "a lookahead"),
        (r"(?i)(é+)+$", "é" * 10_000 + "!", "a case-insensitive non-ASCII letter"),
        (r"\b(a+)+$", "é" + HOSTILE, "Unicode \\b on non-ASCII text"),
        (r"(a+)+$", "\n" + HOSTILE, "$ after a newline that is not last"),
        (r"(a+)+$", "\ud800" + HOSTILE, "a lone surrogate (not UTF-8)"),
    ],
)
def test_what_re2_cannot_take_is_capped(pattern: str, value: str, why: str) -> None:
    m = compile_pattern(pattern)
    assert m is not None
    assert m.route(value) is Route.NO_MATCH, why
    assert backtracking_work(pattern, m.cap) <= CAP_BUDGET
    assert m(value) is False


def test_a_capped_pattern_still_matches_within_its_cap() -> None:
    m = compile_pattern(r"(\w+)\s\1")  # a backreference: Python's re only
    assert m is not None and m._re2 is None
    value = "x" * (m.cap // 2 - 1) + " " + "x" * (m.cap // 2 - 1)
    assert m.route(value) in (Route.RE, Route.RE_CAPPED)
    assert m(value) is True
    assert m("xx xx" + " " * m.cap) is False  # beyond the cap: no match


def test_a_capped_pattern_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="aioflags")
    for _ in range(3):
        compile_pattern(r"(?=b)(b+)+$")
    assert [r.getMessage() for r in caplog.records] == [
        "matches '(?=b)(b+)+$': values of more than "
        f"{compile_pattern(r'(?=b)(b+)+$').cap} characters never match it"  # type: ignore[union-attr]
        " (beyond RE2); see docs/faq.md"
    ]


@pytest.mark.slow
def test_hostile_evaluations_finish_in_a_subprocess() -> None:
    """A safety net over the counting tests: the old code runs for hours here."""
    script = textwrap.dedent(
        """
        from aioflags import Context
        from aioflags._datasystem._store import snapshot_from_data
        from tests.test_regex_bound import CATASTROPHIC, HOSTILE, flag
        for interpreted in (False, True):
            for pattern in CATASTROPHIC:
                snap = snapshot_from_data({"f": flag(pattern, interpreted=interpreted)})
                ctx = Context.create("u", attributes={"ua": "a" * 40 + "!"})
                assert snap.variation("f", ctx, None) is False
                ctx = Context.create("u", attributes={"ua": HOSTILE})
                assert snap.variation("f", ctx, None) is False
        print("done")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=240,  # a net (hours, before): under pytest-timeout's 300 s
        check=True,
    )
    assert out.stdout.strip() == "done"


def test_each_pattern_is_compiled_once_when_the_flag_is_built() -> None:
    pattern, other = r"^compiled-once-(x+)+$", r"compiled-once-other"
    before = compile_pattern.cache_info()
    snap = snapshot_from_data(
        {"f": flag(pattern), "g": {**flag([pattern, other]), "key": "g"}}
    )
    built = compile_pattern.cache_info()
    assert built.misses == before.misses + 2  # each pattern once
    calls = built.hits + built.misses
    for value in ("compiled-once-xx", "x" * 5000, "compiled-once-" + "x" * 5000):
        ctx = Context.create("u", attributes={"ua": value})
        snap.variation("f", ctx, None)
        snap.variation("g", ctx, None)
    after = compile_pattern.cache_info()
    assert after.hits + after.misses == calls  # evaluations never compile


def test_an_invalid_regex_never_matches() -> None:
    assert compile_pattern("[") is None
    assert compile_pattern("(?<x") is None
    assert evaluate(flag("["), "[") is False
    assert evaluate(flag(["[", "^a"]), "abc") is True


def test_re2_is_installed_for_the_tests() -> None:
    assert re2_available()


def test_a_matcher_says_what_it_is() -> None:
    shape = r"<Matcher '\^ab\+' limit=\d+ cap=\d+ re2>"
    assert re.fullmatch(shape, repr(compile_pattern("^ab+")))
    assert repr(compile_pattern(r"(a)\1")).endswith(" re>")


# ---------------------------------------------------------------- equivalence

TABLE: list[tuple[str, list[str]]] = [
    # anchors
    (r"^abc$", ["abc", "abc\n", "abc\n\n", "xabc", "ab\nabc", "abc\nx"]),
    (r"^abc", ["abc", "xabc", "x\nabc"]),
    (r"abc$", ["abc", "abc\n", "abcx", "abc\nabc\n"]),
    (r"\Aabc\Z", ["abc", "abc\n"]),
    (r"(?m)^b$", ["a\nb\nc", "b", "ab\n"]),
    (r"(?m)a$\nb", ["a\nb"]),
    (r"a$\n", ["a\n", "a\n\n"]),
    (r"^$", ["", "\n", "a", "\n\n"]),
    (r"$", ["", "x"]),
    (r"", ["", "x"]),
    # classes
    (r"[a-z]+@[a-z]+\.com", ["bob@example.com", "BOB@EXAMPLE.COM", "a@b.org"]),
    (r"^[^0-9]+$", ["abc", "ab1", "٣", ""]),
    (r"\d", ["1", "٣", "a", "²", "\u07c0"]),
    (r"^\w+$", ["abc_1", "é", "ß", "a-b", "٣", "ǅ", "\u0345", "·"]),
    (r"\s", [" ", "\t", "\u00a0", "\u2028", "\u3000", "\x1c", "x"]),
    (r"^[\D\W\S]$", ["a", "1", " ", "é"]),
    (r"[^\w\s]", ["a b", "a-b", "é"]),
    (r"(?a)^\w+$", ["abc", "é", "٣"]),
    (r"(?a)\d", ["٣", "3"]),
    (r"(?a)\s", ["\u00a0", " "]),
    (r"[[:alpha:]]", ["a", ":", "b", "]"]),
    (r"[\]\-^]", ["]", "-", "^", "a"]),
    (r".", ["\n", "a", ""]),
    (r"(?s).", ["\n"]),
    (r"^.$", ["é", "\U0001f600", "\n"]),
    # unicode
    (r"é", ["café", "cafe", "CAFÉ"]),
    (r"\U0001f600+", ["\U0001f600\U0001f600", "x"]),
    (r"[\u00e0-\u00ff]", ["ÿ", "À", "a"]),
    # case
    (r"(?i)straße", ["STRASSE", "strasse", "Straße"]),
    (r"(?i)k", ["K", "k", "\u212a", "x"]),
    (r"(?i)i", ["I", "\u0130", "\u0131", "x"]),
    (r"(?i)s", ["S", "\u017f", "x"]),
    (r"(?i)[a-z]", ["Q", "\u212a", "\u017f", "\u0130", "1"]),
    (r"(?i)[^k]", ["K", "\u212a", "k", "x"]),
    (r"(?ai)k", ["\u212a", "K"]),
    (r"(?i)[\w]", ["é", "K"]),
    (r"(?i)[k\d]", ["\u212a", "٣"]),
    (r"(?i:A)b", ["ab", "aB", "AB"]),
    (r"a(?-i:b)", ["ab"]),
    (r"(?i)Chrome/1[0-9]{2}\b", ["chrome/120 safari", "CHROME/1200", "Chrome/99"]),
    # alternation and repetition
    (r"cat|dog", ["hotdog", "caterpillar", "cow"]),
    (r"^(?:a|ab)(?:c|bcd)(d*)$", ["abcd", "abcdd", "ac", "abd"]),
    (r"^a{2,3}$", ["a", "aa", "aaa", "aaaa"]),
    (r"^a{,2}$", ["", "aa", "aaa"]),
    (r"^a{2}?$", ["aa", "a"]),
    (r"^(a|b)*?c$", ["ababc", "abab"]),
    (r"^(\d{3}-)+\d{4}$", ["555-555-1234", "555-1234", "55-1234"]),
    (r"^([a-z0-9]+\.)+com$", ["mail.example.com", "examplecom", "a..com"]),
    (r"(?x) a b  # spaced out", ["ab", "a b"]),
    (r"\bfoo\b", ["a foo b", "afoo", "foo_", "éfoo", "fooé", "foo"]),
    (r"\Bfoo", ["afoo", "foo"]),
    (r"\B", ["", "a", "ab"]),  # (RE2's \B matches "": it is never sent one)
    (r"(?a)\bfoo\b", ["éfooé", "afoo"]),
    (r"x*", ["", "y"]),
    (r"(?:)+a", ["a"]),
    (r"(a*)*b", ["aab", "aaa"]),
    (r"a{1000}", ["a" * 1000, "a" * 999]),
    (r"(?:a{1000}){1000}", ["a" * 1000]),
    (r"[^\s\S]", ["", "a", "\n"]),
    (r"[\ud7ff-\ue000]", ["\ud7ff", "\ue000", "a"]),
    (r"(?ai)é", ["É", "é"]),
    (r"(?i)[à-ÿ]", ["À", "ÿ", "Ÿ"]),
    (r"(?ai)[a-é]", ["é", "É", "Z", "à"]),
    # Python-only syntax stays with Python's re
    (r"(a)\1", ["aa", "ab"]),
    (r"(?=.*\d)\w{3}", ["ab1", "abc"]),
    (r"(?<!x)y", ["xy", "ay"]),
    (r"(?>a+)b", ["aab"]),
    (r"a++b", ["aab"]),
    (r"(a)?(?(1)b|c)", ["ab", "c", "b"]),
    (r"a{1001}", ["a" * 1001]),
    # invalid in Python (valid RE2): no match
    (r"\p{L}", ["a", "p{L}"]),
    (r"\Qa.b\E", ["a.b"]),
]


def table_cases() -> Iterator[tuple[str, str]]:
    for pattern, values in TABLE:
        for value in values:
            yield pattern, value


@pytest.mark.parametrize(("pattern", "value"), list(table_cases()))
def test_every_route_gives_pythons_answer(pattern: str, value: str) -> None:
    try:
        expected = python(pattern, value)
    except re.error:
        assert compile_pattern(pattern) is None
        return
    m = compile_pattern(pattern)
    assert m is not None
    assert m(value) is expected
    assert forced(m)(value) is expected  # RE2, where it takes the value
    assert compile_pattern(pattern, use_re2=False)(value) is expected  # type: ignore[misc]
    answer = via_re2(pattern, value)
    assert answer is None or answer is expected


def test_the_table_exercises_re2() -> None:
    """Most of the table goes through RE2 (a translation that refuses all proves nothing)."""
    valid = [(p, v) for p, v in table_cases() if compile_pattern(p) is not None]
    taken = [(p, v) for p, v in valid if via_re2(p, v) is not None]
    assert len(taken) > 0.8 * len(valid)


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"(?=x)", r"(?<!x)", r"(?>x)", r"x++", r"(a)?(?(1)b)", "x{1001}"],
)
def test_python_only_syntax_is_not_translated(pattern: str) -> None:
    if compile_pattern(pattern) is None:
        assert sys.version_info < (3, 11)  # atomic groups, possessive repeats
        return
    with pytest.raises(Untranslatable):
        translate(pattern)


@pytest.mark.slow
@pytest.mark.parametrize("ascii_only", [False, True], ids=["unicode", "ascii"])
def test_case_folds_of_ascii_characters_match_pythons_over_every_code_point(
    ascii_only: bool,
) -> None:
    """The fold table against Python's re on all of Unicode (a new fold fails here)."""
    points = array.array("I" if array.array("I").itemsize == 4 else "L")
    points.extend(range(0xD800))
    points.extend(range(0xE000, 0x110000))
    every = points.tobytes().decode(f"utf-32-{sys.byteorder[0]}e")
    flags = re.IGNORECASE | (re.ASCII if ascii_only else 0)
    folds = _ascii_folds(ascii_only)
    for c in range(128):
        matched = {ord(x) for x in re.findall(re.escape(chr(c)), every, flags)}
        mine = {p for lo, hi in _literal(c, flags) for p in range(lo, hi + 1)}
        assert mine == matched, (chr(c), sorted(matched))
        assert (c in folds) == (len(matched) > 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "atom"),
    [("", r"\d"), ("", r"\D"), ("", r"\s"), ("", r"\S"), ("", r"\w"), ("", r"\W"),
     ("(?a)", r"\w"), ("(?a)", r"\s"), ("", "."), ("(?s)", "."), ("", r"[^\d_]"),
     ("(?i)", "[a-f_]"), ("(?i)", r"[\d]"), ("(?i)", "[^k]"), ("(?i)", "[^i]"), ("(?ai)", "[k-s]")],
)  # fmt: skip
def test_character_classes_match_pythons_over_every_code_point(
    flags: str, atom: str
) -> None:
    points = array.array("I" if array.array("I").itemsize == 4 else "L")
    points.extend(range(0xD800))
    points.extend(range(0xE000, 0x110000))
    every = points.tobytes().decode(f"utf-32-{sys.byteorder[0]}e")
    runs = f"{flags}(?:{atom})+"
    expected = [m.span() for m in re.finditer(runs, every)]
    text, _ = translate(runs)
    got = [m.span() for m in re2.finditer(text, every)]
    assert got == expected


# Random patterns over a small grammar, against random short values.

_ATOMS = st.sampled_from(
    ["a", "b", "é", "K", ".", r"\d", r"\w", r"\s", r"\W", "[ab]", "[^a]", "[a-c]",
     r"\n", "^", "$", r"\b", r"\B", r"\A", r"\Z", "\u0130", "\u0131"]
)  # fmt: skip


def _patterns() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
            st.tuples(
                inner, st.sampled_from(["*", "+", "?", "{1,2}", "*?", "{2}"])
            ).map(lambda t: f"(?:{t[0]}){t[1]}"),
            inner.map(lambda p: f"({p})"),
        )

    body = st.recursive(_ATOMS, extend, max_leaves=8)
    return st.tuples(
        st.sampled_from(["", "(?i)", "(?m)", "(?s)", "(?a)", "(?im)"]), body
    ).map("".join)


@pytest.mark.slow
@pytest.mark.no_cover
@settings(max_examples=300)
@given(
    _patterns(),
    st.lists(st.text("abéK\n\u0130\u01311 _", max_size=8), min_size=1, max_size=4),
)
# Found by this test in CI: RE2's \B matched between the UTF-8 bytes of "é".
@example(pattern="(?a)\\B", values=["1é1"])
def test_random_patterns_agree_with_python(pattern: str, values: list[str]) -> None:
    m = compile_pattern(pattern)
    assert m is not None
    for value in values:
        expected = python(pattern, value)
        if forced(m).route(value) is not Route.NO_MATCH:  # (the cap's deviation)
            assert forced(m)(value) is expected, (pattern, value)
        answer = via_re2(pattern, value)
        assert answer is None or answer is expected, (pattern, value)


@pytest.mark.slow
@settings(max_examples=100)
@given(_patterns())
def test_the_work_estimate_grows_with_the_value(pattern: str) -> None:
    works = [backtracking_work(pattern, n) for n in (0, 1, 2, 5, 20, 100)]
    assert works == sorted(works)
    m = compile_pattern(pattern)
    assert m is not None
    assert backtracking_work(pattern, m.cap) <= CAP_BUDGET
    assert m.limit <= m.cap


# ------------------------------------------------------- which engine, by structure

#: Case-insensitive counted repeats of classes (and their kin): linear for
#: Python's re, thousands of RE2 instructions (each folded class a dozen,
#: for the Kelvin sign and the long s in UTF-8), on which RE2's DFA runs out
#: of memory and its fallback cost 100-360 ms an evaluation.
SLOW_IN_RE2 = [
    r"(?i)[a-z0-9]{1,1000}\.",
    r"(?i)[^x]{1000}y",
    r"(?i)[a-z]{1000}",
    r"(?i)[a-z]{500}[0-9]{500}",
    r".{1000}y",
    r"\w{100}",
]


def _words(alphabet: str, size: int, rng: random.Random) -> str:
    out = ""
    while len(out) < size:
        out += "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 1500))) + " "
    return out[:size]


_RNG = random.Random(38)
#: Values that made RE2's DFA run out of memory on those patterns.
DFA_BUSTERS = {
    "folds": _words("kK\u212as\u017fS", 4000, _RNG),
    "unicode": "".join(chr(_RNG.randint(32, 0x3000)) for _ in range(4000)),
    "ascii": _words("abcdefghijklmnopqrstuvwxyz0123456789.", 4000, _RNG),
}


def re2_steps(pattern: str, value: str) -> float:
    """RE2's worst case for ``value``: a step per instruction per byte."""
    size = re2.compile(translate(pattern)[0], _options()).programsize
    return float(size * len(value.encode()))


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    return options


@pytest.mark.slow
@pytest.mark.parametrize("value", list(DFA_BUSTERS), ids=list(DFA_BUSTERS))
@pytest.mark.parametrize("pattern", SLOW_IN_RE2)
def test_a_pattern_whose_re2_program_is_large_stays_with_python_re(
    pattern: str, value: str
) -> None:
    """The choice, not the time: re's worst case is the smaller, so re answers."""
    text = DFA_BUSTERS[value]
    m = compile_pattern(pattern)
    assert m is not None
    assert m.engine == "re"
    assert m.route(text) in (Route.RE, Route.RE_CAPPED)
    assert backtracking_work(pattern, len(text)) < re2_steps(pattern, text)
    assert backtracking_work(pattern, len(text)) <= CAP_BUDGET
    assert m(text) is python(pattern, text)


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_a_catastrophic_pattern_takes_re2_where_its_bound_is_the_smaller(
    pattern: str,
) -> None:
    m = compile_pattern(pattern)
    assert m is not None
    n = max(m.re2_from_ascii, m.limit + 1)
    assert backtracking_work(pattern, n) > re2_steps(pattern, "a" * n)
    assert m.route("a" * n) is Route.RE2
    assert m.route("a" * m.limit) is Route.RE
    assert m.re2_from_ascii <= m.re2_from  # non-ASCII text: up to 4 bytes a character


def test_beyond_its_cap_a_linear_pattern_takes_re2_within_the_budget() -> None:
    m = compile_pattern("^ab+")
    assert m is not None
    value = "a" + "b" * m.cap
    assert m.re2_from_ascii > len(value)  # RE2 is never the cheaper...
    assert re2_steps("^ab+", value) <= CAP_BUDGET  # ...but it is within the budget
    assert m.route(value) is Route.RE2
    assert m(value) is True


def test_a_pattern_over_the_length_cap_never_matches_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="aioflags")
    at_cap = "^" + "c" * (MAX_PATTERN_LENGTH - 2) + "d"
    over = at_cap + "e"
    assert compile_pattern(at_cap) is not None
    assert evaluate(flag(at_cap), at_cap[1:]) is True
    assert caplog.records == []
    for _ in range(3):
        assert compile_pattern(over) is None
        assert evaluate(flag(over), over[1:]) is False
    assert [r.getMessage() for r in caplog.records] == [
        f"matches pattern {over[:40]!r}... ({MAX_PATTERN_LENGTH + 1} characters) is"
        f" longer than {MAX_PATTERN_LENGTH} characters: it never matches;"
        " see docs/faq.md"
    ]


# ----------------------------------------------------- LaunchDarkly's results

DIFFERENTIAL_PATTERNS = [
    r"^[a-m].*@",
    r"example\.com$",
    r"(?i)chrome/1[0-9]{2}",
    r"\bMobile\b",
    r"\b\w+ Mobile\b",
    r"^Mozilla/5\.0 \(([^)]+)\)",
    r"\d+\.\d+\.\d+",
    r"^([a-z0-9]+\.)+com$",
    r"(a+)+$",
    r"(\w+)\s\1",
    r"[",
]
DIFFERENTIAL_VALUES = [
    "bob@example.com",
    "zed@example.com\n",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) " + "KHTML " * 60 + "Chrome/121.0.6167.85",
    "mail." * 100 + "example.com",
    "1.2.3 " * 100,
    "café Mobile",
    "x" * 400 + ".example.com\n",
    "Ünïcödé " * 80 + "Mobile",
    "a" * 300,  # ("a" * 300 + "!" would stall LaunchDarkly's SDK on (a+)+$)
    "hello hello",
]


def test_long_and_short_values_match_launchdarkly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("CRITICAL")
    flags = {}
    for i, pattern in enumerate(DIFFERENTIAL_PATTERNS):
        for negate in (False, True):
            key = f"f{i}{'n' if negate else ''}"
            f = {**flag(pattern), "key": key}
            f["rules"][0]["clauses"][0]["negate"] = negate
            flags[key] = f
    contexts: list[dict[str, Any]] = [
        {"kind": "user", "key": f"u{j}", "ua": v}
        for j, v in enumerate(DIFFERENTIAL_VALUES)
    ]
    contexts.append({"kind": "user", "key": "list", "ua": DIFFERENTIAL_VALUES})
    assert compare(Case(flags, {}, contexts)) == []
    routes = {
        m.route(v)
        for m in filter(None, map(compile_pattern, DIFFERENTIAL_PATTERNS))
        for v in DIFFERENTIAL_VALUES
    }
    assert {Route.RE, Route.RE2, Route.RE_CAPPED} <= routes
