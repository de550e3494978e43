"""The ``matches`` patterns of a change set, compiled when the data arrives.

Compiling a pattern costs about 12 microseconds a character (Python's own
parse, the cost estimate, RE2's translation), and a flag is compiled on its
first evaluation: on the event loop, a 100 kB pattern there stalled it for
1.2 s. The store instead calls :func:`compile_patterns` on a worker thread
before it installs a change set (as large payloads are parsed off the loop),
and keeps the matchers of its data: when a flag is compiled, its clauses find
them (:func:`aioflags._evaluation._regex.matcher_for`) and compile nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aioflags._core._json import raw_object
from aioflags._evaluation._regex import matcher_for

from ._datatypes import ChangeKind

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._regex import Matcher

    from ._datatypes import Change, RawPut

__all__ = ["compile_patterns", "patterns_in"]


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


def compile_patterns(
    items: Sequence[Change | RawPut],
) -> Mapping[str, Matcher | None]:
    """Every pattern in the items' ``matches`` clauses, with its matcher.

    Meant for a worker thread (it imports RE2 and builds Unicode tables the
    first time a pattern needs them); the caller keeps the result for as long
    as its data may compile a flag that uses them.
    """
    found: dict[str, Matcher | None] = {}
    for item in items:
        obj: JSONValue
        if isinstance(
            item, tuple
        ):  # ingest's put: (kind, key, version, raw, path, ...)
            if item[6] or not _may_match(item[3]):  # deleted, or no such clause
                continue
            obj = raw_object(item[3], item[4])
        elif item.action is ChangeKind.PUT:
            obj = item.obj
        else:
            continue
        for pattern in patterns_in(obj):
            if pattern not in found:
                found[pattern] = matcher_for(pattern)
    return found
