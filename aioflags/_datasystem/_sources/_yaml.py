"""YAML flag files read as JSON written in YAML: YAML 1.2's core schema, keys as text.

PyYAML alone reads YAML 1.1, where ``on``, ``off``, ``yes`` and ``no`` are
booleans (in any case): LaunchDarkly's flag JSON written as YAML
(``on: true``) would have a key ``True`` instead of ``"on"``. This loader
reads YAML 1.2's core schema (YAML's version since 2009) instead:
``true``/``false`` (and ``True``, ``TRUE``, ``False``, ``FALSE``) are
the only booleans, ``null``/``~``/nothing the only null; integers are
decimal, ``0o`` octal or ``0x`` hex (``0777`` is 777); anything else plain
is a string (``2024-01-01``, ``1_000``, ``1:30`` included).

What a flag file holds is JSON, so the loader builds JSON values only:

- a mapping key is always its text (``123:`` is the key ``"123"``,
  ``on:`` is ``"on"``); a list or mapping as a key is an error;
- a key twice in one mapping is an error (YAML requires keys to be unique;
  PyYAML would keep the last one silently);
- anchors (``&name``), aliases (``*name``) and ``<<`` merges work as YAML
  defines them (``yaml.safe_dump`` writes an object met twice as an alias),
  within bounds checked as the document is composed, before anything walks
  it: an alias costs nothing to read and everything to walk (600 bytes of
  aliases of aliases are ten billion values), and whatever reads a flag
  walks it. A document is an error, at the alias, if its aliases expand it
  past :data:`EXPANSION_FACTOR` times the nodes it writes (and past
  :data:`EXPANSION_FLOOR`), nest it deeper than :data:`EXPANSION_DEPTH`, or
  sit inside the node they name. Each anchor's expanded size is counted
  once, so checking costs what composing does;
- ``.inf`` and ``.nan``, timestamps, ``!!binary``, ``!!set``, ``!!omap``
  and ``!!pairs`` are errors: JSON has no such values.

Every error is PyYAML's ``MarkedYAMLError`` with the line and column.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Final

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

__all__ = ["EXPANSION_DEPTH", "EXPANSION_FACTOR", "EXPANSION_FLOOR", "JSONYamlLoader"]

_TAG: Final = "tag:yaml.org,2002:"
_MERGE: Final = _TAG + "merge"
# YAML 1.2.2 §10.3.2 (the core schema's tag resolution).
_NULL: Final = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL: Final = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT: Final = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT: Final = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)

#: A document may expand to this many times the nodes written in it, or to
#: :data:`EXPANSION_FLOOR` nodes, whichever is more. Whatever reads a flag
#: walks its expansion (validating, versioning, the body ``serve`` keeps,
#: diffing), and walking a node costs about 1 us and 11 bytes of JSON where
#: reading one written costs about 50 us and 700 bytes (PyYAML is pure
#: Python; measured with ``validate`` on 450 flags sharing a list of 2,000
#: keys). So 50 times lets aliases at most double what loading the file
#: costs, however large it is; flags sharing rule lists expand about 8 times
#: (~20 nodes of their own, ~150 shared), and thousands of them pass.
EXPANSION_FACTOR: Final = 50
#: Small files may expand to this many nodes whatever their size: about a
#: second of walking and 11 MB of JSON, enough for hundreds of flags sharing
#: a list of 2,000 keys. The 600-byte alias bomb expands to ten billion
#: (``eval`` ran out of memory near 5.7 GB).
EXPANSION_FLOOR: Final = 1_000_000
#: Aliases may nest a document this many levels deep. Written out, YAML
#: nests about 300 levels before this loader's composer runs out of stack
#: ("YAML nested too deeply"); an alias nests what it names without
#: recursing, so a chain of aliases reached 1,000 levels under the node bound
#: and ran the readers that walk it out of stack (``RecursionError`` in
#: ``eval``). 500 is past anything written and half the recursion limit.
EXPANSION_DEPTH: Final = 500
#: Counts stop growing here (past any bound): constant-time arithmetic, where
#: aliases of aliases would make numbers as long as the file.
_SATURATED: Final = 2**62


class JSONYamlLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML loader for JSON: YAML 1.2's core schema, unique text keys, bounded aliases."""

    # Drop PyYAML's YAML 1.1 resolvers (yes/no/on/off booleans, sexagesimal
    # and underscored numbers, timestamps, ``=``); the core schema's follow.
    yaml_implicit_resolvers: ClassVar[dict[str | None, list[tuple[str, Any]]]] = {}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[MappingNode] = set()
        # Nodes written, and nodes the expansion visits so far in document
        # order (an alias counts what it names), for the expansion bound.
        self._written = 0
        self._expanded = 0
        # The expanded size and height (levels, itself included) of each
        # anchored node, once it is complete; the depth of the node being
        # composed, and the deepest level its expansion reaches so far.
        self._sizes: dict[Node, tuple[int, int]] = {}
        self._depth = 0
        self._deepest = 0
        # After each alias: the expanded count, and where the alias is written.
        self._aliases: list[tuple[int, Any]] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Count the nodes the expansion would visit: an alias costs what it names, once."""
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)  # or "undefined alias"
            known = self._sizes.get(node)
            if known is None:  # its anchor's node is not complete: a cycle
                raise ComposerError(
                    None,
                    None,
                    f"the alias *{event.anchor} is inside the node it names: "
                    "it would expand without end",
                    event.start_mark,
                )
            size, height = known
            reach = self._depth + height
            if reach > EXPANSION_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"aliases nest this document deeper than {EXPANSION_DEPTH} "
                    f"levels (*{event.anchor}, at level {self._depth + 1}, "
                    f"names {height} levels)",
                    event.start_mark,
                )
            self._deepest = max(self._deepest, reach)
            self._expanded = min(self._expanded + size, _SATURATED)
            self._aliases.append((self._expanded, event.start_mark))
            return node
        before, outer = self._expanded, self._deepest
        self._written += 1
        self._expanded = min(self._expanded + 1, _SATURATED)
        self._depth += 1
        self._deepest = self._depth
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            height = self._deepest - self._depth + 1
            self._sizes[node] = (self._expanded - before, height)
        self._depth -= 1
        self._deepest = max(outer, self._deepest)
        return node

    def compose_document(self) -> Any:
        """Refuse a document that expands past the bound, before anything walks it."""
        node = super().compose_document()
        bound = max(EXPANSION_FACTOR * self._written, EXPANSION_FLOOR)
        if self._expanded > bound:
            # The first alias after which the count is past the bound.
            mark = next(
                (mark for count, mark in self._aliases if count > bound),
                self._aliases[-1][1],
            )
            raise ComposerError(
                None,
                None,
                f"aliases expand this document past {bound:,} nodes "
                f"(an alias bomb?): a flag file may expand to "
                f"{EXPANSION_FACTOR} times the {self._written:,} nodes it "
                f"writes, or to {EXPANSION_FLOOR:,}",
                mark,
            )
        self._sizes.clear()
        self._aliases.clear()
        return node

    def flatten_mapping(self, node: MappingNode) -> None:
        """Refuse a key twice in one mapping (before ``<<`` merges add theirs)."""
        if node not in self._checked:
            self._checked.add(node)
            first: dict[str, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                    continue
                seen = first.setdefault(key_node.value, key_node.start_mark)
                if seen is not key_node.start_mark:
                    raise ConstructorError(
                        None,
                        None,
                        f"the key {key_node.value!r} appears twice in one mapping "
                        f"(first at line {seen.line + 1}): keys must be unique",
                        key_node.start_mark,
                    )
        super().flatten_mapping(node)

    def construct_mapping(
        self, node: MappingNode, deep: bool = False
    ) -> dict[str, Any]:
        """A JSON object: each key is the text written, whatever it looks like."""
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise ConstructorError(
                    None,
                    None,
                    f"a key must be plain text (JSON object keys are strings), "
                    f"not a {'list' if key_node.id == 'sequence' else 'mapping'}",
                    key_node.start_mark,
                )
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def _scalar(loader: JSONYamlLoader, node: ScalarNode) -> str:
    text: str = loader.construct_scalar(node)
    return text


def _bad(node: ScalarNode, problem: str) -> ConstructorError:
    return ConstructorError(None, None, problem, node.start_mark)


def _null(loader: JSONYamlLoader, node: ScalarNode) -> None:
    _scalar(loader, node)


def _bool(loader: JSONYamlLoader, node: ScalarNode) -> bool:
    text = _scalar(loader, node)
    if not _BOOL.match(text):
        raise _bad(node, f"{text!r} is not a boolean: write true or false")
    return text.lower() == "true"


def _int(loader: JSONYamlLoader, node: ScalarNode) -> int:
    text = _scalar(loader, node)
    if not _INT.match(text):
        raise _bad(node, f"{text!r} is not an integer")
    try:
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)
    except ValueError as exc:  # more digits than int() converts
        raise _bad(node, f"{text[:20]!r}...: {exc}") from None


def _float(loader: JSONYamlLoader, node: ScalarNode) -> float:
    text = _scalar(loader, node)
    if not _FLOAT.match(text):
        raise _bad(node, f"{text!r} is not a number")
    value = float(text) if text[-1] in "0123456789." else math.nan  # .inf, .nan
    if math.isinf(value) and text[-1] != "f":
        raise _bad(node, f"{text!r} is too large for a number")
    if not math.isfinite(value):
        raise _bad(node, f"{text!r} is not a JSON number (JSON has no infinity or NaN)")
    return value


def _merge(loader: JSONYamlLoader, node: ScalarNode) -> str:
    return _scalar(loader, node)  # ``<<`` where a value goes: text, as in YAML 1.2


_NOT_JSON: Final = {
    "timestamp": "a !!timestamp is not a JSON value: quote it to keep it as text",
    "binary": "!!binary data is not a JSON value: write it as a base64 string",
    "set": "a !!set is not a JSON value: write a list",
    "omap": "an !!omap is not a JSON value: write a mapping",
    "pairs": "!!pairs are not a JSON value: write a mapping or a list",
}


def _not_json(loader: JSONYamlLoader, node: Any) -> None:
    raise ConstructorError(
        None, None, _NOT_JSON[node.tag.rpartition(":")[2]], node.start_mark
    )


for _tag, _pattern, _first in (
    ("bool", _BOOL, "tTfF"),
    ("int", _INT, "-+0123456789"),
    ("float", _FLOAT, "-+.0123456789"),
    ("merge", re.compile(r"^<<$"), "<"),
):
    JSONYamlLoader.add_implicit_resolver(_TAG + _tag, _pattern, list(_first))
JSONYamlLoader.add_implicit_resolver(_TAG + "null", _NULL, ["~", "n", "N", ""])
for _tag, _construct in (
    ("null", _null),
    ("bool", _bool),
    ("int", _int),
    ("float", _float),
    ("merge", _merge),
    *((kind, _not_json) for kind in _NOT_JSON),
):
    JSONYamlLoader.add_constructor(_TAG + _tag, _construct)
