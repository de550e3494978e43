"""Blast radius: which contexts a change of flag files flips (``aioflags diff``).

Both flag files are read by the one loader (:func:`load_flag_files`) and put
in one :class:`Store`, the old data then the new, each item's version
stamped by its content: the store's own change fan-out (what flag change
handlers are told) names the flags whose evaluation may differ, through
prerequisites and segments. Those flags alone are evaluated, by each
snapshot's evaluator (what ``variation_detail`` answers); every other flag
is the same function of the context in both, and cannot flip anyone.

A flag *flips* a context when the value it serves differs as JSON (``1``
and ``1.0`` and ``true`` are three values), or when one side serves a
variation and the other none (the caller's default, with an ``ERROR``
reason). Both sides serving none is no flip.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import decode_text, parse, raw_decode
from aioflags._datasystem._datatypes import ObjectKind, full_transfer, puts
from aioflags._datasystem._sources._files import load_flag_files
from aioflags._datasystem._sources._versions import same_content
from aioflags._datasystem._store import Store
from aioflags._evaluation._context import Context, read_context, written_otherwise
from aioflags._evaluation._pipeline import PLAIN, RESULT

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._datasystem._datatypes import ChangeSet
    from aioflags._evaluation._results import Reason, Result
    from aioflags._evaluation._snapshot import FlagSnapshot

__all__ = ["DiffReport", "diff_files", "read_contexts"]

#: Example contexts kept per transition.
EXAMPLES: Final = 5
#: Skipped lines named on stderr (the JSON lists them all).
SKIPPED_SHOWN: Final = 20
#: Pairs of results remembered per flag (a flag serves few distinct results).
_MEMO: Final = 4096
#: Distinct sets of ignored properties told apart (further ones only counted).
IGNORED_SETS: Final = 20


@dataclass(slots=True)
class Transition:
    """The contexts one flag moves from one value to another."""

    #: the value served before and after (``None`` with ``*_served`` false:
    #: no variation, the caller's default)
    old: JSONValue
    new: JSONValue
    old_served: bool
    new_served: bool
    count: int = 0
    #: up to :data:`EXAMPLES` contexts: fully qualified key, old and new reason
    examples: list[tuple[str, Reason, Reason]] = field(default_factory=list)


@dataclass(slots=True)
class FlagBlast:
    """What a change does to one flag that both files have, for the contexts."""

    key: str
    #: the transitions, by the JSON text of the old and new value (None: none served)
    transitions: dict[tuple[str | None, str | None], Transition] = field(
        default_factory=dict
    )
    #: pairs of details seen (by identity), and their transition (None: no flip)
    memo: dict[
        tuple[int, int],
        tuple[Result, Result, Transition | None],
    ] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        """How many contexts the flag flips."""
        return sum(t.count for t in self.transitions.values())

    def classify(self, old: Result, new: Result) -> Transition | None:
        """The transition from ``old`` to ``new`` (None if the value is the same)."""
        old_served = old.variation_index is not None
        new_served = new.variation_index is not None
        before = _text(old.value) if old_served else None
        after = _text(new.value) if new_served else None
        transition = None
        if before != after:
            transition = self.transitions.get((before, after))
            if transition is None:
                transition = self.transitions[before, after] = Transition(
                    old.value if old_served else None,
                    new.value if new_served else None,
                    old_served,
                    new_served,
                )
        # A flag's results live as long as the snapshot, built once, so
        # identity names them (mostly: some are built per evaluation). The
        # entry holds both, so neither id is reused while it is here.
        if len(self.memo) < _MEMO:
            self.memo[id(old), id(new)] = (old, new, transition)
        return transition


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry of the contexts file that is not a context, by its line."""

    line: int
    error: str


@dataclass(slots=True)
class Ignored:
    """Contexts whose reading ignored the same top-level properties."""

    #: the properties the old user JSON (no ``kind``) ignored
    names: tuple[str, ...]
    #: the line of the first such context, and its fully qualified key
    line: int
    example: str
    count: int = 0

    def message(self) -> str:
        """The WARNING line's words: what was ignored, how often, how to write it."""
        more = self.count - 1
        return (
            f"line {self.line} (key {self.example!r})"
            + (f" and {more:,} more context{_s(more)}" if more else "")
            + f": {written_otherwise(self.names)}"
        )


@dataclass(slots=True)
class DiffReport:
    """What a change of flag files does to a set of contexts."""

    contexts: int = 0
    #: contexts for which at least one flag flips
    flipped: int = 0
    old_flags: int = 0
    new_flags: int = 0
    #: the flags that flip some context, by key
    flags: dict[str, FlagBlast] = field(default_factory=dict)
    #: flags whose evaluation may differ (they, their prerequisites or
    #: segments changed) but that flip none of these contexts
    unflipped: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: contexts evaluated without top-level properties their reading ignored
    #: (the old user JSON), and the first :data:`IGNORED_SETS` distinct sets
    ignored: int = 0
    ignored_sets: dict[tuple[str, ...], Ignored] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        """Whether the change does anything: a context flips, a flag comes or goes."""
        return bool(self.flags or self.added or self.removed)

    def to_json(self) -> JSONObject:
        """The report as one JSON object (``aioflags diff --json``)."""
        return {
            "contexts": self.contexts,
            "flipped": self.flipped,
            "flags": {
                key: {
                    "changed": flag.changed,
                    "transitions": [
                        {
                            "from": t.old,
                            "to": t.new,
                            "fromDefault": not t.old_served,
                            "toDefault": not t.new_served,
                            "count": t.count,
                            "examples": [key for key, _, _ in t.examples],
                            "reasons": [
                                {"from": dict(old), "to": dict(new)}
                                for _, old, new in t.examples
                            ],
                        }
                        for t in _ordered(flag)
                    ],
                }
                for key, flag in sorted(self.flags.items())
            },
            "unflipped": list(self.unflipped),
            "added": list(self.added),
            "removed": list(self.removed),
            "skipped": [{"line": s.line, "error": s.error} for s in self.skipped],
            "ignored": {
                "contexts": self.ignored,
                "sets": [
                    {
                        "attributes": list(i.names),
                        "contexts": i.count,
                        "line": i.line,
                        "example": i.example,
                        "fix": written_otherwise(i.names),
                    }
                    for i in self.ignored_sets.values()
                ],
            },
        }

    def lines(self) -> Iterator[str]:
        """The report for a terminal, line by line."""
        n = self.contexts
        skipped = len(self.skipped)
        yield (
            f"{n:,} context{_s(n)}"
            + (f" ({skipped:,} line{_s(skipped)} skipped)" if skipped else "")
            + f", {self.old_flags:,} flag{_s(self.old_flags)} before, "
            f"{self.new_flags:,} after"
        )
        if self.ignored:
            first = next(iter(self.ignored_sets.values()))
            yield (
                f"{self.ignored:,} of them evaluated without attributes their "
                f"JSON has, as LaunchDarkly reads it: {first.message()}"
            )
        for key, flag in sorted(self.flags.items()):
            yield ""
            yield f"{key}: {flag.changed:,} of {n:,} contexts change"
            for t in _ordered(flag):
                yield (
                    f"  {_shown(t.old, t.old_served)} -> {_shown(t.new, t.new_served)}: "
                    f"{t.count:,} context{_s(t.count)}"
                )
                for context_key, old, new in t.examples:
                    yield f"    {context_key}: {_reason(old)} -> {_reason(new)}"
        if self.unflipped:
            yield ""
            yield (
                "changed, but flip none of these contexts: " + ", ".join(self.unflipped)
            )
        if self.added:
            yield ""
            yield "added: " + ", ".join(self.added)
        if self.removed:
            yield ""
            yield "removed: " + ", ".join(self.removed)
        yield ""
        flags = len(self.flags)
        yield (
            f"{flags:,} flag{_s(flags)} flip{'s' if flags == 1 else ''} {self.flipped:,} of "
            f"{n:,} contexts; {len(self.added)} added, {len(self.removed)} removed"
        )


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _text(value: JSONValue) -> str:
    """A value as JSON text: the same text, the same value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _shown(value: JSONValue, served: bool) -> str:
    return _text(value) if served else "(default)"


def _reason(reason: Mapping[str, JSONValue]) -> str:
    """``RULE_MATCH ruleIndex=0 ruleId=beta``: a reason on one line."""
    parts = [str(reason.get("kind"))]
    parts += (
        f"{name}={value if isinstance(value, str) else _text(value)}"
        for name, value in reason.items()
        if name != "kind"
    )
    return " ".join(parts)


def _ordered(flag: FlagBlast) -> list[Transition]:
    """The flag's transitions, the most contexts first."""
    return sorted(
        flag.transitions.values(),
        key=lambda t: (
            -t.count,
            _shown(t.old, t.old_served),
            _shown(t.new, t.new_served),
        ),
    )


# ------------------------------------------------------------------ input
def _same(a: JSONObject, b: JSONObject | None) -> bool:
    """Whether two items are the same but for their version."""
    return b is not None and same_content(a, b)


def _transfer(
    flags: Mapping[str, JSONObject],
    segments: Mapping[str, JSONObject],
    before: tuple[Mapping[str, JSONObject], Mapping[str, JSONObject]] | None = None,
) -> ChangeSet:
    """The items as a full transfer, each versioned by its content.

    Version 1; with ``before``, 2 for an item that is not the same as
    there: the store tells a changed item by its version.
    """
    old_flags, old_segments = before or (None, None)
    return full_transfer(
        puts(ObjectKind.FLAG, _versioned(flags, old_flags)),
        puts(ObjectKind.SEGMENT, _versioned(segments, old_segments)),
    )


def _versioned(
    items: Mapping[str, JSONObject], before: Mapping[str, JSONObject] | None
) -> dict[str, JSONObject]:
    """Each item at version 1, or 2 if ``before`` has it otherwise."""
    return {
        key: {
            **obj,
            "version": 1 if before is None or _same(obj, before.get(key)) else 2,
        }
        for key, obj in items.items()
    }


def snapshots(
    old_path: Path, new_path: Path
) -> tuple[FlagSnapshot, FlagSnapshot, frozenset[str]]:
    """The old and new files' snapshots, and the flags whose evaluation may differ.

    Raises:
        FlagFileError: a file is missing or malformed (the message names it).
    """
    # (flagd flags in their shared form: a flag is compared, and written,
    # without the evaluators it shares; the store links them)
    old_flags, old_segments = load_flag_files(old_path, share=True)
    new_flags, new_segments = load_flag_files(new_path, share=True)
    store = Store()
    store.apply_now(_transfer(old_flags, old_segments))
    old = store.snapshot
    changed = store.apply_now(
        _transfer(new_flags, new_segments, (old_flags, old_segments))
    )
    return old, store.snapshot, changed


def read_contexts(
    lines: Iterable[bytes],
) -> Iterator[tuple[int, Context | str, tuple[str, ...]]]:
    """Each context of the file, or why an entry is not one, with its line number.

    With each context, the top-level properties its reading ignored: an
    object without ``kind`` is LaunchDarkly's old user JSON, which reads
    ``key``, ``name``, ``email``... and ``custom``, and ignores the others.

    Two forms: JSON Lines, one context object a line; or, when the file's
    first non-blank character is ``[``, one JSON array of context objects
    (each numbered by the line it starts on). Blank lines are skipped
    without a word (a file may end with one).
    """
    numbered = enumerate(lines, 1)
    first = True
    for number, line in numbered:
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):  # a byte-order mark
            line = line[3:]
        if not line.strip():
            continue
        if first and line.lstrip().startswith(b"["):
            rest = b"".join(more for _, more in numbered)
            yield from _array_contexts(number, line + rest)
            return
        first = False
        try:
            data = parse(line)
        except ProtocolError as exc:
            yield number, str(exc), ()
            continue
        yield number, *_context_of(data)


#: JSON's insignificant whitespace (RFC 8259 section 2).
_BLANK: Final = re.compile(r"[ \t\n\r]*")
_ARRAY: Final = "the JSON array of contexts"


def _past_blanks(text: str, pos: int) -> int:
    """Where the first character at or after ``pos`` that is not whitespace is."""
    match = _BLANK.match(text, pos)
    return match.end() if match else pos


def _context_of(data: JSONValue) -> tuple[Context | str, tuple[str, ...]]:
    """``data`` as a context, or why it is not one; the properties it ignored."""
    if not isinstance(data, dict):
        return (
            "a context must be a JSON object: one a line, "
            "or the whole file one JSON array of them"
        ), ()
    context, ignored = read_context(data)
    if context.error is not None:
        return f"not a valid context: {context.error}", ()
    return context, ignored


def _array_contexts(
    first: int, data: bytes
) -> Iterator[tuple[int, Context | str, tuple[str, ...]]]:
    """The elements of one JSON array of contexts whose ``[`` is on line ``first``.

    Read element by element, so that each is numbered by its line and a bad
    element is skipped alone; invalid JSON ends the array (there is no
    telling where the next element starts), named at its line.
    """
    try:
        text = decode_text(data)
    except ProtocolError as exc:
        yield first, str(exc), ()
        return
    line, counted = first, 0

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    pos = _past_blanks(text, text.index("[") + 1)
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            try:
                value, end = raw_decode(text, pos)
            except ProtocolError as exc:
                yield line_at(pos), f"{exc} (in {_ARRAY}: the rest is not read)", ()
                return
            yield line_at(pos), *_context_of(value)
            pos = _past_blanks(text, end)
            if text.startswith(",", pos):
                pos = _past_blanks(text, pos + 1)
                continue
            if text.startswith("]", pos):
                pos += 1
                break
            yield (
                line_at(pos),
                f"expected ',' or ']' in {_ARRAY}: the rest is not read",
                (),
            )
            return
    pos = _past_blanks(text, pos)
    if pos < len(text):
        yield line_at(pos), f"text after {_ARRAY} is not read", ()


# ------------------------------------------------------------------- diff
def diff(
    old: FlagSnapshot,
    new: FlagSnapshot,
    changed: frozenset[str],
    contexts: Iterable[tuple[int, Context | str, tuple[str, ...]]],
) -> DiffReport:
    """Evaluate the flags in ``changed`` that both snapshots have, for each context."""
    old_keys, new_keys = old.flag_keys, new.flag_keys
    report = DiffReport(
        old_flags=len(old_keys),
        new_flags=len(new_keys),
        added=sorted(new_keys - old_keys),
        removed=sorted(old_keys - new_keys),
    )
    flags = [FlagBlast(key) for key in sorted(changed & old_keys & new_keys)]
    # What variation_detail() makes its detail of, without hooks or
    # analytics (the plain evaluation): a flag's own results are built
    # once, with the flag.
    answer = PLAIN.answer
    old_data, new_data = old._data, new._data  # (what it reads of each snapshot)
    plan = [(flag.key, flag.memo.get, flag.classify) for flag in flags]
    evaluated = flipped = 0
    for number, context, ignored in contexts:
        if type(context) is str:
            report.skipped.append(Skipped(number, context))
            continue
        assert isinstance(context, Context)
        evaluated += 1
        if ignored:
            _note_ignored(report, number, context, ignored)
        flips = False
        for key, seen_pair, classify in plan:
            o = answer(old_data, RESULT, key, context, None)
            n = answer(new_data, RESULT, key, context, None)
            seen = seen_pair((id(o), id(n)))
            if seen is not None and seen[0] is o and seen[1] is n:
                transition = seen[2]
                if transition is None:
                    continue
            else:
                transition = classify(o, n)
                if transition is None:
                    continue
            flips = True
            transition.count += 1
            if len(transition.examples) < EXAMPLES:
                transition.examples.append(
                    (context.fully_qualified_key, o.reason, n.reason)
                )
        flipped += flips
    report.contexts = evaluated
    report.flipped = flipped
    for flag in flags:
        if flag.transitions:
            report.flags[flag.key] = flag
        else:
            report.unflipped.append(flag.key)
    return report


def _note_ignored(
    report: DiffReport, number: int, context: Context, ignored: tuple[str, ...]
) -> None:
    """Count a context read without ``ignored`` (and its set, if one of the first)."""
    report.ignored += 1
    names = tuple(sorted(ignored))
    same = report.ignored_sets.get(names)
    if same is None and len(report.ignored_sets) < IGNORED_SETS:
        same = report.ignored_sets[names] = Ignored(
            names, number, context.fully_qualified_key
        )
    if same is not None:
        same.count += 1


def diff_files(old_path: Path, new_path: Path, contexts_path: Path) -> DiffReport:
    """What changing ``old_path`` into ``new_path`` does to each context of the file.

    Raises:
        FlagFileError: a flag file is missing or malformed.
        OSError: the contexts file cannot be read.
    """
    old, new, changed = snapshots(old_path, new_path)
    with contexts_path.open("rb") as lines:
        return diff(old, new, changed, read_contexts(lines))
