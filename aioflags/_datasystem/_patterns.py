"""The ``matches`` patterns of a change set, compiled when the data arrives.

Compiling a pattern costs about 12 microseconds a character (Python's own
parse, the cost estimate, RE2's translation), and a flag is compiled on its
first evaluation: on the event loop, a 100 kB pattern there stalled it for
1.2 s. The store instead calls :func:`compile_patterns` on a worker thread
(under the SDK's own limiter, ``aioflags/_core/_threads.py``) before it
installs a change set, and holds the outcomes per flag and segment: when a
flag is compiled, its clauses find them
(:func:`aioflags._evaluation._regex.matcher_for`) and compile nothing. A
pattern that never matches is held too (a ``NoMatcher``), so it is never
parsed again either.

Most change sets have nothing to compile (no ``matches`` clause, or only
patterns held already, as when a streamed change touches a flag's other
rules): :func:`held_patterns` tells so on the loop, cheaply, and the store
then makes no thread hop at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeAlias

from aioflags._core._json import raw_object
from aioflags._evaluation._regex import held, hold

from ._datatypes import ChangeKind, ObjectKind

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._regex import Matcher, NoMatcher

    from ._datatypes import Change, RawPut

__all__ = [
    "HeldPatterns",
    "compile_patterns",
    "held_patterns",
    "patterns_by_item",
    "patterns_in",
]

#: Each flag's or segment's node (``"f"`` or ``"s"``, then its key) and the
#: outcomes of its distinct ``matches`` patterns, as a store holds them.
HeldPatterns: TypeAlias = "dict[str, tuple[Matcher | NoMatcher, ...]]"

_FLAG: Final = ObjectKind.FLAG.value  # a RawPut's kind
#: The most items, and characters of raw text that may hold a ``matches``
#: clause, that :func:`held_patterns` reads on the event loop (a streamed
#: change is one item of a few kB; reading 64 kB takes well under a ms).
_LOOP_ITEMS: Final = 64
_LOOP_CHARS: Final = 64 * 1024


def patterns_in(obj: JSONValue) -> Iterator[str]:
    """The patterns of a flag's or segment's ``matches`` clauses (in its rules)."""
    rules = obj.get("rules") if isinstance(obj, dict) else None
    if not isinstance(rules, list):
        return
    for rule in rules:
        clauses = rule.get("clauses") if isinstance(rule, dict) else None
        if not isinstance(clauses, list):
            continue
        for clause in clauses:
            if isinstance(clause, dict) and clause.get("op") == "matches":
                values = clause.get("values")
                if isinstance(values, list):
                    yield from (v for v in values if isinstance(v, str))


def _may_match(raw: str) -> bool:
    # The text names the operator, or may spell it with an escape.
    return '"matches"' in raw or "\\u" in raw


def _object(item: Change | RawPut) -> tuple[str, JSONValue]:
    """The item's node (``"f"`` or ``"s"``, then its key) and its object.

    The object is ``None`` for a deletion and for a raw text that cannot
    hold a ``matches`` clause (nothing parsed).
    """
    if isinstance(item, tuple):  # ingest's put: (kind, key, version, raw, path, ...)
        node = ("f" if item[0] == _FLAG else "s") + item[1]
        if item[6] or not _may_match(item[3]):  # deleted, or no such clause
            return node, None
        return node, raw_object(item[3], item[4])
    node = ("f" if item.kind is ObjectKind.FLAG else "s") + item.key
    if item.action is not ChangeKind.PUT:
        return node, None
    obj = item.obj
    return node, None if isinstance(obj, dict) and obj.get("deleted") else obj


def patterns_by_item(items: Sequence[Change | RawPut]) -> dict[str, tuple[str, ...]]:
    """Each item's node and its distinct patterns; the last item of a node counts.

    An item without patterns (a deletion, say) has no entry.
    """
    found: dict[str, tuple[str, ...]] = {}
    for item in items:
        node, obj = _object(item)
        patterns = tuple(dict.fromkeys(patterns_in(obj)))
        if patterns:
            found[node] = patterns
        else:
            found.pop(node, None)
    return found


def held_patterns(items: Sequence[Change | RawPut]) -> HeldPatterns | None:
    """The items' outcomes, if every pattern is held already; ``None`` if not.

    Cheap, for the event loop: ``None`` also when the change set is too
    large to read here (a full transfer, usually), or when its texts that
    may hold a ``matches`` clause are too long to parse here; then
    :func:`compile_patterns` reads them on a worker thread.
    """
    if len(items) > _LOOP_ITEMS:
        return None
    size = 0
    for item in items:
        if isinstance(item, tuple) and not item[6] and _may_match(item[3]):
            size += len(item[3])
    if size > _LOOP_CHARS:
        return None
    outcomes: HeldPatterns = {}
    for node, patterns in patterns_by_item(items).items():
        found = []
        for pattern in patterns:
            outcome = held(pattern)
            if outcome is None:
                return None  # something to compile
            found.append(outcome)
        outcomes[node] = tuple(found)
    return outcomes


def compile_patterns(items: Sequence[Change | RawPut]) -> HeldPatterns:
    """Each item's node and the outcomes of its patterns (compiled unless held).

    Meant for a worker thread (it parses raw texts, imports RE2 and builds
    Unicode tables the first time a pattern needs them); the caller holds
    the result for as long as its data may compile a flag that uses them.
    """
    return {
        node: tuple(map(hold, patterns))
        for node, patterns in patterns_by_item(items).items()
    }
