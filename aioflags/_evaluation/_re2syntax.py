r"""Python regular expressions in RE2's syntax, with Python's meaning.

For the ``matches`` operator (aioflags/_evaluation/_regex.py, which decides
when RE2 answers): :func:`translate` writes a pattern from Python's own parse
of it so that RE2 accepts exactly the strings Python's :mod:`re` does.
Unicode ``\d``, ``\s``, ``\w`` become the code points Python's :mod:`re`
gives them, case-insensitive letters become explicit classes, ``$`` keeps its
meaning before a final newline; what a value must be for the translation to
hold is returned with it (:class:`Needs`). Anything the translation cannot
render exactly (backreferences, lookaround, atomic groups, a case-insensitive
non-ASCII letter, RE2's repetition limit) raises :class:`Untranslatable`.
"""

from __future__ import annotations

import array
import enum
import importlib
import re
import sys
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["Needs", "Ranges", "Untranslatable", "translate"]

if sys.version_info >= (3, 11):
    _sre_parse: Any = importlib.import_module("re._parser")
    _sre_const: Any = importlib.import_module("re._constants")
else:  # pragma: no cover - exercised on the 3.10 leg
    _sre_parse = importlib.import_module("sre_parse")
    _sre_const = importlib.import_module("sre_constants")

_MAXREPEAT: Final[int] = int(_sre_const.MAXREPEAT)
_MAXCHAR: Final = 0x10FFFF
_SURROGATES: Final = (0xD800, 0xDFFF)
_RE2_MAX_REPEAT: Final = 1000


class Untranslatable(Exception):
    """The pattern has no exact RE2 equivalent (it stays with Python's re)."""


# ------------------------------------------------------------ code point sets
#
# A set of code points is a sorted tuple of disjoint inclusive ranges.

Ranges = tuple[tuple[int, int], ...]


def _normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(ranges: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    start = 0
    for lo, hi in ranges:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAXCHAR:
        out.append((start, _MAXCHAR))
    return tuple(out)


def _singles(code_points: Iterable[int]) -> Ranges:
    return _normalize((c, c) for c in code_points)


_ASCII_CLASSES: Final[dict[str, Ranges]] = {
    "CATEGORY_DIGIT": ((0x30, 0x39),),
    "CATEGORY_SPACE": _singles(map(ord, " \t\n\r\f\v")),
    "CATEGORY_WORD": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
}


#: Where Unicode assigns letters, digits and spaces: planes 0-3 and 14 (4-13
#: are unassigned, 15-16 private use). tests/test_regex_bound.py compares the
#: classes with Python's re over every code point, so a Python whose Unicode
#: assigns more fails the suite, not a user.
_ASSIGNED_PLANES: Final = ((0, 0x3FFFF), (0xE0000, 0xEFFFF))
_UNICODE_PATTERNS: Final = {
    "CATEGORY_DIGIT": r"\d+",
    "CATEGORY_SPACE": r"\s+",
    "CATEGORY_WORD": r"\w+",
}


@lru_cache(maxsize=3)
def _unicode_class(name: str) -> Ranges:
    r"""``\d``, ``\s`` or ``\w`` as this Python's ``re`` sees them.

    Asked of ``re`` itself (once per process and class, some 20-50 ms), so the
    sets follow the running Python's Unicode version exactly.
    """
    typecode = "I" if array.array("I").itemsize == 4 else "L"
    spans: list[tuple[int, int]] = []
    for low, high in _ASSIGNED_PLANES:
        points = array.array(typecode, range(low, _SURROGATES[0]) if low == 0 else ())
        points.extend(range(max(low, _SURROGATES[1] + 1), high + 1))
        text = points.tobytes().decode(f"utf-32-{sys.byteorder[0]}e")
        # (A run across the surrogates would take them in: harmless, RE2 never
        # sees one.)
        found = re.finditer(_UNICODE_PATTERNS[name], text)
        spans.extend((points[m.start()], points[m.end() - 1]) for m in found)
    return _normalize(spans)


#: Code points outside ASCII that Python's case-insensitive ``re`` (Unicode
#: mode) matches to an ASCII letter: U+0130 and U+0131 (dotted capital and
#: dotless i) to i, U+017F (long s) to s, U+212A (Kelvin sign) to k.
#: tests/test_regex_bound.py checks every code point, so a Python that adds
#: one fails the suite, not a user.
_FOLD_CANDIDATES: Final = "\u0130\u0131\u017f\u212a"


@lru_cache(maxsize=2)
def _ascii_folds(ascii_only: bool) -> dict[int, Ranges]:
    """For each ASCII letter, every code point it matches case-insensitively."""
    flags = re.IGNORECASE | (re.ASCII if ascii_only else 0)
    pool = [chr(c) for c in range(128)] + list(_FOLD_CANDIDATES)
    out: dict[int, Ranges] = {}
    for c in range(128):
        if chr(c).isalpha():
            pattern = re.compile(re.escape(chr(c)), flags)
            out[c] = _singles(ord(x) for x in pool if pattern.fullmatch(x))
    return out


# ----------------------------------------------------------------- translation

_I, _M, _S, _A = re.IGNORECASE, re.MULTILINE, re.DOTALL, re.ASCII


def _category(name: str, flags: int, *, exact: bool = True) -> Ranges:
    r"""A class escape's code points; or, not ``exact``, a superset of them.

    The superset (ASCII's exact set, plus all of non-ASCII for ``\d``,
    ``\s``, ``\w``) needs no Unicode table: the cost estimate uses it.
    """
    negated = "_NOT_" in name
    base = name.replace("_NOT_", "_")
    if base not in _ASCII_CLASSES:  # pragma: no cover - LINEBREAK, of old re
        raise Untranslatable(name)
    if flags & _A:
        ranges = _ASCII_CLASSES[base]
    elif exact:
        ranges = _unicode_class(base)
    elif negated:  # fewer characters than ASCII's: a superset of the rest
        return _complement(_ASCII_CLASSES[base])
    else:
        return _normalize((*_ASCII_CLASSES[base], (128, _MAXCHAR)))
    return _complement(ranges) if negated else ranges


def _literal(c: int, flags: int) -> Ranges:
    if not flags & _I:
        return ((c, c),)
    if c < 128:
        return _ascii_folds(bool(flags & _A)).get(c, ((c, c),))
    if flags & _A:
        return ((c, c),)  # ASCII mode: nothing outside ASCII has a case
    raise Untranslatable("case-insensitive non-ASCII literal")


def _charset(
    items: Sequence[tuple[Any, Any]], flags: int, *, exact: bool = True
) -> Ranges:
    """A class's code points; or, not ``exact``, a superset of them."""
    negate = False
    parts: list[tuple[int, int]] = []
    has_category = has_cased = False
    for op, av in items:
        name = op.name
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            ranges = _literal(av, flags)
            has_cased = has_cased or len(ranges) > 1
            parts.extend(ranges)
        elif name == "RANGE":
            lo, hi = av
            if flags & _I:
                if hi >= 128 and not flags & _A:
                    raise Untranslatable("case-insensitive non-ASCII range")
                for c in range(lo, min(hi, 127) + 1):
                    ranges = _literal(c, flags)
                    has_cased = has_cased or len(ranges) > 1
                    parts.extend(ranges)
                if hi >= 128:
                    parts.append((max(lo, 128), hi))
            else:
                parts.append((lo, hi))
        elif name == "CATEGORY":
            has_category = True
            parts.extend(_category(av.name, flags, exact=exact))
        else:  # pragma: no cover - no other item in a class today
            raise Untranslatable(name)
    if has_category and has_cased:
        # Python tests the lowercased character against the whole set then.
        raise Untranslatable("case-insensitive class with a category")
    ranges = _normalize(parts)
    if negate and has_category and not exact and not flags & _A:
        return ((0, _MAXCHAR),)  # the complement of a superset is no superset
    return _complement(ranges) if negate else ranges


@lru_cache(maxsize=256)
def _char_class(ranges: Ranges) -> str:
    """RE2 syntax for a set (surrogates dropped: RE2 sees only UTF-8 text)."""
    kept: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if hi < _SURROGATES[0] or lo > _SURROGATES[1]:
            kept.append((lo, hi))
            continue
        if lo < _SURROGATES[0]:
            kept.append((lo, _SURROGATES[0] - 1))
        if hi > _SURROGATES[1]:
            kept.append((_SURROGATES[1] + 1, hi))
    if not kept:
        return r"[^\x00-\x{10FFFF}]"  # matches nothing
    if len(kept) == 1 and kept[0][0] == kept[0][1]:
        return f"\\x{{{kept[0][0]:X}}}"
    body = "".join(
        f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}"
        for lo, hi in kept
    )
    return f"[{body}]"


class Needs(enum.IntFlag):
    """What a translated pattern needs of a value to mean what Python means."""

    NOTHING = 0
    #: Python's ``\b`` uses Unicode ``\w``; RE2's is ASCII, and RE2's ``\B``
    #: also matches inside a multi-byte character: same on ASCII text.
    ASCII_TEXT = 1
    #: Python's ``$`` also matches before a final newline, written here as
    #: RE2's multi-line ``$``: the same when no newline comes before the last
    #: character.
    NO_INNER_NEWLINE = 2
    #: Python's ``\B`` (before 3.14) never matches an empty string; RE2's does.
    NOT_EMPTY = 4


_ASCII_TEXT: Final = int(Needs.ASCII_TEXT)
_NO_INNER_NEWLINE: Final = int(Needs.NO_INNER_NEWLINE)
_NOT_EMPTY: Final = int(Needs.NOT_EMPTY)

_AT: Final[dict[str, tuple[str, Needs]]] = {
    "AT_BEGINNING": (r"\A", Needs.NOTHING),
    "AT_BEGINNING_STRING": (r"\A", Needs.NOTHING),
    "AT_BEGINNING_LINE": (r"(?m:^)", Needs.NOTHING),
    "AT_END": (r"(?m:$)", Needs.NO_INNER_NEWLINE),
    "AT_END_LINE": (r"(?m:$)", Needs.NOTHING),
    "AT_END_STRING": (r"\z", Needs.NOTHING),
}


class _Translator:
    def __init__(self) -> None:
        self.needs = Needs.NOTHING

    def sequence(self, items: Iterable[tuple[Any, Any]], flags: int) -> str:
        return "".join(self.item(op, av, flags) for op, av in items)

    def item(self, op: Any, av: Any, flags: int) -> str:
        name = op.name
        if name == "LITERAL":
            return _char_class(_literal(av, flags))
        if name == "NOT_LITERAL":
            return _char_class(_complement(_normalize(_literal(av, flags))))
        if name == "ANY":
            every = ((0, _MAXCHAR),)
            return _char_class(every if flags & _S else _complement(((10, 10),)))
        if name == "IN":
            return _char_class(_charset(av, flags))
        if name == "BRANCH":
            _, alternatives = av
            return "(?:" + "|".join(self.sequence(a, flags) for a in alternatives) + ")"
        if name == "SUBPATTERN":
            _, add, remove, body = av
            return "(?:" + self.sequence(body, (flags | add) & ~remove) + ")"
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, body = av
            return "(?:" + self.sequence(body, flags) + ")" + _repeat(low, high)
        if name == "AT":
            at = av.name
            if at in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
                # RE2 tests positions in UTF-8 bytes: between the two bytes
                # of "é" it sees two non-word bytes, where its \B (even under
                # (?a)) matches and Python has no position at all.
                if not flags & _A or at == "AT_NON_BOUNDARY":
                    self.needs |= Needs.ASCII_TEXT
                if at == "AT_NON_BOUNDARY":
                    self.needs |= Needs.NOT_EMPTY
                return r"\b" if at == "AT_BOUNDARY" else r"\B"
            if flags & _M:
                at = {"AT_BEGINNING": "AT_BEGINNING_LINE", "AT_END": "AT_END_LINE"}.get(
                    at, at
                )
            if at not in _AT:  # pragma: no cover - no other position today
                raise Untranslatable(at)
            text, needs = _AT[at]
            self.needs |= needs
            return text
        # GROUPREF, GROUPREF_EXISTS, ASSERT, ASSERT_NOT, ATOMIC_GROUP,
        # POSSESSIVE_REPEAT and anything a later Python adds.
        raise Untranslatable(name)


def _repeat(low: int, high: int) -> str:
    if low > _RE2_MAX_REPEAT or (high != _MAXREPEAT and high > _RE2_MAX_REPEAT):
        raise Untranslatable("repetition count over RE2's limit")
    if high == _MAXREPEAT:
        return "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
    if low == high:
        return f"{{{low}}}"
    return "?" if (low, high) == (0, 1) else f"{{{low},{high}}}"


def _parse(pattern: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _sre_parse.parse(pattern)


def translate(pattern: str) -> tuple[str, Needs]:
    """The RE2 pattern with Python ``re.search`` semantics, and what it needs.

    Raises :class:`Untranslatable` for a pattern RE2 cannot express exactly
    (and whatever Python's parser raises for an invalid one).
    """
    parsed = _parse(pattern)
    translator = _Translator()
    text = translator.sequence(parsed, parsed.state.flags)
    return text, translator.needs
