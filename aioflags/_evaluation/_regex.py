r"""``matches`` clauses in bounded time (evaluation.md §6.5, docs/faq.md).

A ``matches`` clause applies a regular expression from flag data to a context
attribute, often an end user's (an email, a user agent). LaunchDarkly's Python
SDK runs Python's :mod:`re`, a backtracking engine: ``^(a+)+$`` against thirty
``a`` and a ``!`` takes a minute. This module keeps :mod:`re`'s answers and
bounds the cost, with one :class:`Matcher` per pattern, built once when the
flag is compiled:

* **Short values** go to Python's :mod:`re`, the reference. A pattern's
  *fast limit* is the longest value whose worst-case backtracking, estimated
  from the pattern's structure (:func:`backtracking_work`), stays within
  :data:`FAST_BUDGET` steps.
* **Longer values** go to RE2 (the optional ``google-re2`` package, extra
  ``aioflags[re2]``), a linear-time engine, where RE2's own worst case is the
  smaller (below), with the pattern *translated* (``_re2syntax.py``) from
  Python's own parse of it so that both engines accept the same strings:
  Unicode ``\d``, ``\s``, ``\w`` become the code points Python's :mod:`re`
  gives them, case-insensitive letters become explicit classes, ``$`` keeps its
  meaning before a final newline. Anything the translation cannot render
  exactly (backreferences, lookaround, atomic groups, a case-insensitive
  non-ASCII letter, RE2's repetition limit) stays with Python's :mod:`re`.
* **Otherwise** (no RE2, or a pattern or value RE2 cannot take exactly)
  Python's :mod:`re` runs on values up to the pattern's *cap*, the longest
  value within :data:`CAP_BUDGET` steps; a longer value does not match, and the
  first time a pattern is capped below :data:`LOG_BELOW` characters it is
  logged.

A pattern longer than :data:`MAX_PATTERN_LENGTH` is not compiled: it never
matches, and it is logged once. Patterns are compiled when flag data arrives,
on a worker thread (``aioflags/_datasystem/_patterns.py``), and a store holds
the matchers of its data (a :class:`NoMatcher` for a pattern that never
matches), so that :func:`matcher_for` finds them when a flag is compiled on
its first evaluation, and never parses a pattern of the data again.

**Which engine** is decided by structure, never by a clock. RE2's worst
case for a value is one step per instruction of its compiled program
(``programsize``) per byte of the value: when its DFA runs out of memory,
RE2 simulates the program's threads, each at most once a byte (measured at
0.1-0.7 ns a step, no more than a step of Python's ``re``). Python's
``re``'s is :func:`backtracking_work`. RE2 answers a value only from the
length at which its bound is the smaller (``Matcher.re2_from``; ASCII text is
a byte a character, other text up to four): a pattern that backtracks
catastrophically goes to RE2 past a short length, while a large counted
repeat of a case-insensitive class (``(?i)[a-z0-9]{1,1000}\.``: 10,004 RE2
instructions, each class a dozen for its folds such as the Kelvin sign, for
a backtracking cost linear in the value) never does. Beyond a pattern's cap,
RE2 also answers a value if its bound there is within :data:`CAP_BUDGET`
(``^ab+`` is linear in both engines: RE2 takes values over a million
characters). Otherwise the pattern behaves as one without RE2.

Only the ``True``/``False`` answer of ``search`` matters here, so greedy and
lazy repetition, and which alternative wins, never change a result.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import sys
import warnings
import weakref
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, final

from ._re2syntax import (
    _A,
    _ASCII_TEXT,
    _M,
    _MAXCHAR,
    _MAXREPEAT,
    _NO_INNER_NEWLINE,
    _NOT_EMPTY,
    _S,
    Ranges,
    Untranslatable,
    _charset,
    _complement,
    _literal,
    _normalize,
    _parse,
    translate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "CAP_BUDGET",
    "FAST_BUDGET",
    "MAX_PATTERN_LENGTH",
    "Matcher",
    "NoMatcher",
    "Route",
    "backtracking_work",
    "compile_pattern",
    "held",
    "hold",
    "matcher_for",
    "re2_available",
]

logger = logging.getLogger("aioflags.evaluation")

#: Estimated steps under which Python's ``re`` answers directly (about a
#: millisecond at worst): values within a pattern's fast limit never reach RE2.
FAST_BUDGET: Final = 100_000
#: Estimated steps Python's ``re`` may spend when RE2 cannot take a value.
CAP_BUDGET: Final = 10_000_000
#: Longest value the structure estimate considers (and so the largest cap).
MAX_LIMIT: Final = 1 << 20
#: A pattern capped below this many characters is logged once.
LOG_BELOW: Final = 10_000
#: The longest pattern compiled, in characters: a longer one never matches
#: (and is logged once). Compiling costs about 12 microseconds a character,
#: on a worker thread when flag data arrives (a 100 kB pattern took 1.2 s);
#: patterns written for targeting are a few dozen characters.
MAX_PATTERN_LENGTH: Final = 4096
#: ``Matcher.re2_from`` when RE2 is never the cheaper engine.
NEVER: Final = sys.maxsize
#: UTF-8 bytes a character takes at most: RE2 reads the value as UTF-8.
_UTF8_MAX: Final = 4


@lru_cache(maxsize=1)
def _load_re2() -> Any:
    """The ``re2`` module, imported on first need (5-15 ms), or ``None``."""
    try:
        import re2  # here: a process without a matches clause never pays for it
    except ImportError:  # pragma: no cover - the test environment installs it
        return None
    return re2


def re2_available() -> bool:
    """Whether the optional linear-time engine is installed."""
    return _load_re2() is not None


# ------------------------------------------------------------ the cost bound


def _mul(a: float, b: float) -> float:
    product = a * b
    return product if product < math.inf else math.inf


def _pow(base: float, exponent: int) -> float:
    if base <= 1.0:
        return 1.0
    return math.inf if exponent * math.log(base) > 700 else float(base**exponent)


def _one_char(
    items: Sequence[tuple[Any, Any]], flags: int, *, exact: bool = False
) -> Ranges | None:
    """A superset of the characters a sequence matches if it is one character.

    ``None`` if it is something else. Not ``exact``, Unicode classes are
    approximated (no table to build).
    """
    while len(items) == 1:
        op, av = items[0]
        name = op.name
        if name == "SUBPATTERN":
            flags = (flags | av[1]) & ~av[2]
            items = av[3]
            continue
        try:
            if name == "LITERAL":
                return _literal(av, flags)
            if name == "NOT_LITERAL":
                return _complement(_normalize(_literal(av, flags)))
            if name == "ANY":
                return ((0, _MAXCHAR),) if flags & _S else _complement(((10, 10),))
            if name == "IN":
                return _charset(av, flags, exact=exact)
        except Untranslatable:
            return ((0, _MAXCHAR),)  # some characters, which: unknown here
        return None
    return None


def _repeated_char(
    op: Any, av: Any, flags: int, *, exact: bool = False
) -> Ranges | None:
    """The characters of a greedy or lazy one-character repeat (in groups)."""
    while op.name == "SUBPATTERN" and len(av[3]) == 1:
        flags = (flags | av[1]) & ~av[2]
        op, av = av[3][0]
    if op.name not in ("MAX_REPEAT", "MIN_REPEAT"):
        return None
    return _one_char(av[2], flags, exact=exact)


def _followed_apart(
    op: Any,
    av: Any,
    after: Sequence[tuple[Any, Any]],
    flags: int,
    *,
    exact: bool = False,
) -> bool:
    """Whether a one-character repeat is followed by a character it cannot match."""
    repeated = _repeated_char(op, av, flags, exact=exact)
    if repeated is None:
        return False
    following = _one_char(after, flags, exact=exact)
    return following is not None and _disjoint(repeated, following)


def _disjoint(a: Ranges, b: Ranges) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return False
    return True


# A plan is the parse reduced to what the estimate needs, built once per
# pattern: ("one",) a character; ("seq", ((plan, collapses), ...));
# ("branch", plans); ("rep", low, high, one_char, body, possessive);
# ("backref",); ("atomic", body) for lookaround and atomic groups;
# ("cond", yes, no); ("unknown",).
Plan = tuple[Any, ...]
_ONE: Final[Plan] = ("one",)
_CHAR_OPS: Final = frozenset({"LITERAL", "NOT_LITERAL", "ANY", "IN", "AT"})


def _plan_seq(items: Sequence[tuple[Any, Any]], flags: int) -> Plan:
    steps = []
    for i, (op, av) in enumerate(items):
        # A one-character repeat followed by a character it cannot match
        # (``\d+\.``, ``(\w+)\s``): every shorter count fails at once, so only
        # one way reaches the rest of the pattern.
        after = items[i + 1 : i + 2]
        collapses = _followed_apart(op, av, after, flags)
        if not collapses and _followed_apart(op, av, after, flags | _A):
            # Apart in ASCII: the approximation of Unicode classes may be what
            # overlaps (``\w`` and ``\s``), so ask the tables.
            collapses = _followed_apart(op, av, after, flags, exact=True)
        steps.append((_plan_item(op, av, flags), collapses))
    return ("seq", tuple(steps))


def _plan_item(op: Any, av: Any, flags: int) -> Plan:
    name = op.name
    if name in _CHAR_OPS:
        return _ONE
    if name == "SUBPATTERN":
        return _plan_seq(av[3], (flags | av[1]) & ~av[2])
    if name == "BRANCH":
        return ("branch", tuple(_plan_seq(a, flags) for a in av[1]))
    if name == "GROUPREF":
        return ("backref",)
    if name == "GROUPREF_EXISTS":
        _, yes, no = av
        return ("cond", _plan_seq(yes, flags), _plan_seq(no or (), flags))
    if name in ("ASSERT", "ASSERT_NOT"):
        return ("atomic", _plan_seq(av[1], flags))
    if name == "ATOMIC_GROUP":
        return ("atomic", _plan_seq(av, flags))
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        low, high, body = av
        one_char = _one_char(body, flags) is not None
        possessive = name == "POSSESSIVE_REPEAT"
        return ("rep", low, high, one_char, _plan_seq(body, flags), possessive)
    return ("unknown",)  # pragma: no cover - a later Python's new node


def _cost(plan: Plan, n: int) -> tuple[float, float]:
    """Upper bounds on (ways, work) for a plan from one position.

    *ways*: how many times backtracking can ask it for another way to match
    (each way, the rest of the pattern runs again); *work*: the steps to
    exhaust all of them. In a sequence, an item runs once per way of the
    items before it.
    """
    kind = plan[0]
    if kind == "one":
        return 1.0, 1.0
    if kind == "seq":
        ways, work = 1.0, 0.0
        for step, collapses in plan[1]:
            w, k = _cost(step, n)
            if collapses:
                w, k = 1.0, k + w
            work += _mul(ways, k)
            ways = _mul(ways, w)
        return ways, work
    if kind == "branch":
        costs = [_cost(p, n) for p in plan[1]]
        return sum(w for w, _ in costs), sum(k for _, k in costs)
    if kind == "backref":
        return 1.0, n + 1.0
    if kind == "cond":
        (yw, yk), (nw, nk) = _cost(plan[1], n), _cost(plan[2], n)
        return yw + nw, yk + nk
    if kind == "atomic":
        return 1.0, _cost(plan[1], n)[1]  # succeeds at most once
    if kind == "rep":
        _, low, high, one_char, body, possessive = plan
        iterations = min(high, n + 1) if high != _MAXREPEAT else n + 1
        if one_char:
            ways = float(max(iterations - low + 1, 1))
            work = float(iterations + 1)
        else:
            body_ways, body_work = _cost(body, n)
            # j iterations of a body with b ways from a position: b**j ways.
            ways = _mul(iterations + 1.0, _pow(body_ways, iterations))
            work = _mul(ways, body_work + 1.0)
        return (1.0 if possessive else ways), work
    return math.inf, math.inf  # pragma: no cover - unknown here: no fast path


@lru_cache(maxsize=64)
def _plan(pattern: str) -> tuple[Plan, bool]:
    """The plan of a valid pattern and whether a search starts only at 0."""
    parsed = _parse(pattern)
    items = list(parsed)
    flags = parsed.state.flags
    anchored = (
        bool(items)
        and items[0][0].name == "AT"
        and (
            items[0][1].name == "AT_BEGINNING_STRING"
            or (items[0][1].name == "AT_BEGINNING" and not flags & _M)
        )
    )
    return _plan_seq(items, flags), anchored


def _work(plan: Plan, anchored: bool, n: int) -> float:
    starts = 1.0 if anchored else n + 1.0
    return _mul(starts, _cost(plan, n)[1]) + n + 1.0


def backtracking_work(pattern: str, n: int) -> float:
    """An upper bound on Python ``re.search`` steps for a value of ``n`` characters."""
    return _work(*_plan(pattern), n)


def _limit(plan: Plan, anchored: bool, budget: float) -> int:
    """The longest value (up to MAX_LIMIT) within ``budget`` estimated steps."""
    lo, hi = -1, MAX_LIMIT
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _work(plan, anchored, mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _re2_from(plan: Plan, anchored: bool, per_char: float, start: int) -> int:
    """The shortest length above ``start`` whose estimate exceeds ``per_char`` steps a character.

    That is, where RE2's worst case (``per_char``: its program's size times
    the bytes a character takes) is below Python's ``re``'s (module
    docstring); :data:`NEVER` if no length up to :data:`MAX_LIMIT` is.
    """
    if _work(plan, anchored, MAX_LIMIT) <= per_char * MAX_LIMIT:
        return NEVER
    lo, hi = start + 1, MAX_LIMIT
    while lo < hi:
        mid = (lo + hi) // 2
        if _work(plan, anchored, mid) > per_char * mid:
            hi = mid
        else:
            lo = mid + 1
    return lo


# ------------------------------------------------------------------ matching


class Route(enum.Enum):
    """Which engine answers for a value (:meth:`Matcher.route`)."""

    #: Python's ``re``, the value within the pattern's fast limit.
    RE = "re"
    #: RE2, linear time.
    RE2 = "re2"
    #: Python's ``re``, the value within the pattern's cap.
    RE_CAPPED = "re-capped"
    #: Longer than the cap and not for RE2: no match.
    NO_MATCH = "no-match"


@final
class Matcher:
    """``re.search(pattern, value) is not None``, in bounded time.

    Call it with a string. ``search`` (Python's compiled ``search``) and
    ``limit`` are public so that generated flag code can answer values of at
    most ``limit`` characters inline, exactly as :meth:`__call__` would.
    RE2, when given, answers values from ``re2_from`` characters (ASCII
    text: ``re2_from_ascii``), the lengths at which its worst case is below
    Python's ``re``'s, and values beyond the cap for which its worst case
    (``re2_size`` steps a byte) is within :data:`CAP_BUDGET` (module
    docstring).
    """

    __slots__ = (
        "__weakref__",
        "_needs",
        "_re2",
        "cap",
        "limit",
        "pattern",
        "re2_from",
        "re2_from_ascii",
        "re2_size",
        "search",
    )

    def __init__(
        self,
        pattern: str,
        search: Callable[[str], object],
        *,
        limit: int,
        cap: int,
        re2: Any = None,
        needs: int = 0,
        re2_from: int = 0,
        re2_from_ascii: int = 0,
        re2_size: int = 0,
    ) -> None:
        self.pattern = pattern
        self.search = search
        self.limit = limit
        self.cap = cap
        self._re2 = re2
        self._needs = int(needs)
        self.re2_from = re2_from
        self.re2_from_ascii = re2_from_ascii
        self.re2_size = re2_size

    @property
    def engine(self) -> str:
        """``"re2"`` if RE2 answers some values, else ``"re"``."""
        return "re2" if self._re2 is not None else "re"

    def route(self, value: str) -> Route:
        """The engine that answers for ``value``."""
        n = len(value)
        if n <= self.limit:
            return Route.RE
        if self._re2 is not None and self._re2_takes(value):
            if value.isascii():
                start, steps = self.re2_from_ascii, n * self.re2_size
            else:
                start, steps = self.re2_from, n * self.re2_size * _UTF8_MAX
            if n >= start or (n > self.cap and steps <= CAP_BUDGET):
                return Route.RE2
        return Route.RE_CAPPED if n <= self.cap else Route.NO_MATCH

    def _re2_takes(self, value: str) -> bool:
        needs = self._needs  # a plain int: IntFlag arithmetic costs microseconds
        if needs & _NOT_EMPTY and not value:
            return False
        if needs & _ASCII_TEXT and not value.isascii():
            return False
        if needs & _NO_INNER_NEWLINE and value.find("\n", 0, len(value) - 1) >= 0:
            return False
        # RE2 reads UTF-8: a lone surrogate (from JSON "\ud800") has none.
        return value.isascii() or not _has_surrogate(value)

    def __call__(self, value: str) -> bool:
        if len(value) <= self.limit:
            return self.search(value) is not None
        route = self.route(value)
        if route is Route.RE2:
            return self._re2.search(value) is not None
        if route is Route.RE_CAPPED:
            return self.search(value) is not None
        return False

    def __repr__(self) -> str:
        return (
            f"<Matcher {self.pattern!r} limit={self.limit} cap={self.cap}"
            f" {self.engine}>"
        )


@lru_cache(maxsize=1)
def _surrogates() -> re.Pattern[str]:
    # Compiled when first needed (a long non-ASCII value for RE2), not at
    # import: the class of 2,048 code points costs 2 M instructions to
    # compile, a tenth of `import aioflags`'s own modules.
    return re.compile("[\ud800-\udfff]")


def _has_surrogate(value: str) -> bool:
    return _surrogates().search(value) is not None


def _re2_options(re2: Any) -> Any:
    options = re2.Options()
    options.never_capture = True
    options.log_errors = False  # a pattern RE2 rejects is not news on stderr
    return options


def _compile_re2(pattern: str) -> tuple[Any, int]:
    """RE2's compiled form of ``pattern`` and its needs, or ``(None, 0)``."""
    re2 = _load_re2()
    if re2 is None:  # pragma: no cover - the tests install google-re2
        return None, 0
    try:
        text, needs = translate(pattern)
        return re2.compile(text, _re2_options(re2)), int(needs)
    except (Untranslatable, re2.error, RecursionError):
        return None, 0


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str, *, use_re2: bool = True) -> Matcher | None:
    """The bounded matcher for ``pattern``; ``None`` if it never matches.

    ``None`` for a pattern Python's ``re`` rejects, as in LaunchDarkly's
    SDKs, and for one longer than :data:`MAX_PATTERN_LENGTH` (logged once).
    The cache is keyed by the pattern; flag code gets its matchers through
    :func:`matcher_for`, which also finds those a store holds.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        logger.warning(
            "matches pattern %r... (%d characters) is longer than %d characters:"
            " it never matches; see docs/faq.md",
            pattern[:40],
            len(pattern),
            MAX_PATTERN_LENGTH,
        )
        return None
    try:
        # Some patterns raise FutureWarning at compile time (e.g. "[[a]"):
        # flag data must never turn into a warning in the host application.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = re.compile(pattern)
    except (re.error, ValueError, OverflowError, RecursionError):
        return None
    try:
        plan, anchored = _plan(pattern)
        cap = _limit(plan, anchored, CAP_BUDGET)
    except RecursionError:  # pragma: no cover - re.compile recurses first
        plan, anchored, cap = _ONE, True, 0
    re2, needs = _compile_re2(pattern) if use_re2 else (None, 0)
    limit = cap
    re2_from = re2_from_ascii = NEVER
    size = 0
    if re2 is not None:
        size = int(re2.programsize)
        re2_from_ascii = _re2_from(plan, anchored, float(size), 0)
        if re2_from_ascii == NEVER and (cap + 1) * size > CAP_BUDGET:
            # RE2's worst case is never the smaller, nor within the budget
            # beyond the cap: the pattern is Python's re's alone.
            re2, needs, size = None, 0, 0
        else:
            limit = min(cap, _limit(plan, anchored, FAST_BUDGET))
            if re2_from_ascii != NEVER:  # (up to 4 bytes a character: not sooner)
                per_char = float(size * _UTF8_MAX)
                re2_from = _re2_from(plan, anchored, per_char, re2_from_ascii - 1)
    if re2_from == NEVER and cap < LOG_BELOW:
        logger.warning(
            "matches %r: values of more than %d characters never match it (%s);"
            " see docs/faq.md",
            pattern,
            cap,
            "beyond RE2"
            if use_re2 and re2_available()
            else "aioflags[re2] would lift this",
        )
    return Matcher(
        pattern,
        compiled.search,
        limit=limit,
        cap=cap,
        re2=re2,
        needs=needs,
        re2_from=re2_from,
        re2_from_ascii=re2_from_ascii,
        re2_size=size,
    )


@final
class NoMatcher:
    """What a store holds for a pattern that never matches (invalid, too long).

    Held as a :class:`Matcher` is, so that :func:`matcher_for` answers
    ``None`` for it without parsing the pattern again (nor logging it again)
    once :func:`compile_pattern`'s cache has forgotten it.
    """

    __slots__ = ("__weakref__", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __repr__(self) -> str:
        return f"<NoMatcher {self.pattern[:40]!r}>"


#: Every matcher something holds (a compiled flag, a store's patterns): the
#: one :func:`matcher_for` gives, however many patterns the LRU cache of
#: :func:`compile_pattern` has seen since.
_live: weakref.WeakValueDictionary[str, Matcher | NoMatcher] = (
    weakref.WeakValueDictionary()
)


def held(pattern: str) -> Matcher | NoMatcher | None:
    """The outcome something holds for ``pattern`` already; ``None``: nothing does."""
    return _live.get(pattern)


def hold(pattern: str) -> Matcher | NoMatcher:
    """The outcome of ``pattern`` for a store to hold: compiled unless held already."""
    found = _live.get(pattern)
    if found is None:
        compiled = compile_pattern(pattern)
        found = NoMatcher(pattern) if compiled is None else compiled
        _live[pattern] = found
    return found


def matcher_for(pattern: str) -> Matcher | None:
    """The matcher of ``pattern``, one object for every clause and store holding it.

    Compiles only a pattern that nothing holds (and that the cache has
    lost): flag data's patterns are compiled when the data arrives, and a
    store holds those that never match too (:class:`NoMatcher`).
    """
    found = _live.get(pattern)
    if found is None:
        found = compile_pattern(pattern)
        if found is not None:
            _live[pattern] = found
    return found if isinstance(found, Matcher) else None
