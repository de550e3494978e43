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

The patterns of a put whose text ingest parses (a poll body, a stream's
events) are found as it is parsed (``_payloads.put_meta``) and travel with
its change set, by text and by item, so that :func:`compile_patterns` does
not parse the texts a second time (at 1,000 flags of which 200 have a
``matches`` clause, that second parse was 37 M instructions of a first
start's 550 M), nor search every item's text for one (ingest's list by item
is complete).

Most change sets have nothing to compile (no ``matches`` clause, or only
patterns held already, as when a streamed change touches a flag's other
rules, or a poll brings the data again): :func:`held_patterns` tells so on
the loop, cheaply, and the store then makes no thread hop at all.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final, TypeAlias

from aioflags._core._json import raw_object

from ._datatypes import ChangeKind, ObjectKind

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._regex import Matcher, NoMatcher

    from ._datatypes import Change, RawPut

__all__ = [
    "FoundPatterns",
    "HeldPatterns",
    "compile_patterns",
    "held_patterns",
    "patterns_by_item",
    "patterns_in",
]

#: Each flag's or segment's node (``"f"`` or ``"s"``, then its key) and the
#: outcomes of its distinct ``matches`` patterns, as a store holds them.
HeldPatterns: TypeAlias = "dict[str, tuple[Matcher | NoMatcher, ...]]"

#: The patterns of raw puts, found as ingest parsed their texts: for a raw
#: text, where its object sits in it (the put's path) and its objects's
#: distinct patterns. Keyed by the text itself: whatever the item that holds
#: it, the same text at the same path has the same patterns.
FoundPatterns: TypeAlias = "dict[str, tuple[int, tuple[str, ...]]]"

_FLAG: Final = ObjectKind.FLAG.value  # a RawPut's kind
#: The most items, and characters of raw text that may hold a ``matches``
#: clause, that :func:`held_patterns` reads on the event loop (a streamed
#: change is one item of a few kB; reading 64 kB takes well under a ms).
_LOOP_ITEMS: Final = 64
_LOOP_CHARS: Final = 64 * 1024
#: The most items with patterns whose outcomes :func:`held_patterns` looks
#: up on the event loop when ingest listed them (a dict lookup a pattern:
#: 4,096 take about a millisecond).
_LOOP_NODES: Final = 4096


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


def _patterns_of(
    item: Change | RawPut, found: FoundPatterns | None
) -> tuple[str, tuple[str, ...]]:
    """The item's node (``"f"`` or ``"s"``, then its key) and its distinct patterns.

    None for a deletion. A raw text that cannot hold a ``matches`` clause is
    not parsed, nor one whose patterns ``found`` holds.
    """
    if isinstance(item, tuple):  # ingest's put: (kind, key, version, raw, path, ...)
        node = ("f" if item[0] == _FLAG else "s") + item[1]
        raw = item[3]
        if item[6] or not _may_match(raw):  # deleted, or no such clause
            return node, ()
        known = found.get(raw) if found else None
        if known is not None and known[0] == item[4]:
            return node, known[1]
        return node, tuple(dict.fromkeys(patterns_in(raw_object(raw, item[4]))))
    node = ("f" if item.kind is ObjectKind.FLAG else "s") + item.key
    obj = item.obj if item.action is ChangeKind.PUT else None
    if isinstance(obj, dict) and obj.get("deleted"):
        return node, ()
    return node, tuple(dict.fromkeys(patterns_in(obj)))


def patterns_by_item(
    items: Sequence[Change | RawPut],
    found: FoundPatterns | None = None,
    nodes: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Each item's node and its distinct patterns; the last item of a node counts.

    An item without patterns (a deletion, say) has no entry. ``found``: the
    patterns ingest found as it parsed the items (their change set's);
    ``nodes``: what this returns, made by ingest as it parsed them (then
    the items are not read at all).
    """
    if nodes is not None:
        return nodes
    by_item: dict[str, tuple[str, ...]] = {}
    for item in items:
        node, patterns = _patterns_of(item, found)
        if patterns:
            by_item[node] = patterns
        else:
            by_item.pop(node, None)
    return by_item


def held_patterns(
    items: Sequence[Change | RawPut],
    found: FoundPatterns | None = None,
    nodes: dict[str, tuple[str, ...]] | None = None,
) -> HeldPatterns | None:
    """The items' outcomes, if every pattern is held already; ``None`` if not.

    Cheap, for the event loop: ``None`` also when the change set is too
    large to read here (a full transfer, usually), or when its texts that
    may hold a ``matches`` clause are too long to parse here; then
    :func:`compile_patterns` reads them on a worker thread. With ``nodes``
    (ingest's, see :func:`patterns_by_item`) no text is read: only so many
    items with patterns are looked up here (a lookup each).
    """
    if nodes is not None:
        if len(nodes) > _LOOP_NODES:
            return None
    elif len(items) > _LOOP_ITEMS:
        return None
    else:
        size = 0
        for item in items:
            if isinstance(item, tuple) and not item[6] and _may_match(item[3]):
                size += len(item[3])
        if size > _LOOP_CHARS:
            return None
    outcomes: HeldPatterns = {}
    by_item = patterns_by_item(items, found, nodes)
    if not by_item:
        return outcomes
    if "aioflags._evaluation._regex" not in sys.modules:
        # Nothing is held before a first pattern is compiled: the machinery
        # is imported with it, on the worker thread (compile_patterns), not
        # here on the loop. Data without a matches clause never loads it.
        return None
    from aioflags._evaluation._regex import held

    known: dict[str, Matcher | NoMatcher] = {}  # (each pattern looked up once)
    for node, patterns in by_item.items():
        held_ones = []
        for pattern in patterns:
            outcome = known.get(pattern)
            if outcome is None:
                outcome = held(pattern)
                if outcome is None:
                    return None  # something to compile
                known[pattern] = outcome
            held_ones.append(outcome)
        outcomes[node] = tuple(held_ones)
    return outcomes


def compile_patterns(
    items: Sequence[Change | RawPut],
    found: FoundPatterns | None = None,
    nodes: dict[str, tuple[str, ...]] | None = None,
) -> HeldPatterns:
    """Each item's node and the outcomes of its patterns (compiled unless held).

    Meant for a worker thread (it parses raw texts, imports RE2 and builds
    Unicode tables the first time a pattern needs them); the caller holds
    the result for as long as its data may compile a flag that uses them.
    ``found``, ``nodes``: the patterns ingest found as it parsed the items.
    """
    by_item = patterns_by_item(items, found, nodes)
    if not by_item:
        return {}
    from aioflags._evaluation._regex import hold  # (see held_patterns)

    return {node: tuple(map(hold, patterns)) for node, patterns in by_item.items()}
