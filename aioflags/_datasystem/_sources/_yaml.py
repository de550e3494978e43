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
- anchors (``&name``) and aliases (``*name``) are errors: JSON has no
  references, and aliases expand without bound (a few hundred bytes of
  nested aliases make billions of values once anything walks them). A
  ``<<`` merge of a mapping written in place still works;
- ``.inf`` and ``.nan``, timestamps, ``!!binary``, ``!!set``, ``!!omap``
  and ``!!pairs`` are errors: JSON has no such values.

Every error is PyYAML's ``MarkedYAMLError`` with the line and column.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Final

import yaml  # type: ignore[import-untyped]
from yaml.composer import ComposerError  # type: ignore[import-untyped]
from yaml.constructor import ConstructorError  # type: ignore[import-untyped]
from yaml.events import AliasEvent  # type: ignore[import-untyped]
from yaml.nodes import MappingNode, ScalarNode  # type: ignore[import-untyped]

__all__ = ["JSONYamlLoader"]

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


class JSONYamlLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML loader for JSON: YAML 1.2's core schema, unique text keys, no aliases."""

    # Drop PyYAML's YAML 1.1 resolvers (yes/no/on/off booleans, sexagesimal
    # and underscored numbers, timestamps, ``=``); the core schema's follow.
    yaml_implicit_resolvers: ClassVar[dict[str | None, list[tuple[str, Any]]]] = {}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[MappingNode] = set()

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse an anchor or an alias where it is written, before anything expands it."""
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            what = f"an alias (*{event.anchor})"
        elif getattr(event, "anchor", None) is not None:
            what = f"an anchor (&{event.anchor})"
        else:
            return super().compose_node(parent, index)
        raise ComposerError(
            None,
            None,
            f"{what} is not allowed in a flag file: write the value out",
            event.start_mark,
        )

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
