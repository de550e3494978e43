"""``aioflags validate``'s linter: flag files against their JSON Schema, with ``file:line:col``.

The schema (``flagfile.schema.json``) is the one statement of what a flag
file may hold: editors read it, and so does this module. It checks the
keywords the schema uses (and refuses any other: the schema cannot use one
that goes unchecked here), says what is wrong in words, and suggests the
field or operator meant for a misspelt one (``operator`` → ``op``,
``In`` → ``in``). Then what a schema cannot say: a prerequisite on a flag,
or a ``segmentMatch`` on a segment, that none of the files given defines.

Each problem carries where it is, ``file:line:col``, found by walking the
file's text: YAML's composed nodes carry their marks; JSON's positions are
found by a scan of the text alongside the values ``json`` read (the
standard library gives none, and the text is known to be valid JSON by
then). The SDK itself stays as tolerant as LaunchDarkly's (an unknown field
is ignored, an unknown operator never matches): that a flag file says what
its author meant is the linter's job.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import json
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from aioflags._core._json import same_json
from aioflags._evaluation._model import document_format

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path

__all__ = [
    "Linted",
    "Places",
    "Problem",
    "Where",
    "default_problems",
    "did_you_mean",
    "lint",
    "pointer",
    "reference_problems",
    "same_json",
    "schema",
    "schema_problems",
]

#: A place in a file's data: its keys and indexes from the top.
Where = tuple[str | int, ...]


class Problem(NamedTuple):
    """One thing wrong: where in the data, and what."""

    at: Where
    what: str
    #: The shape of a value (a type, a minimum): what makes the compiler
    #: refuse the flag or segment it is in (MALFORMED_FLAG).
    shape: bool = False
    #: What its system serves all the same (``validate`` warns; its exit
    #: status stays 0 for it).
    warning: bool = False


class Linted(NamedTuple):
    """A problem of one file, placed: ``file:line:col``, then as :class:`Problem`."""

    place: str
    at: Where
    what: str
    shape: bool
    warning: bool


#: Keywords that only describe (no effect on validity).
_ANNOTATIONS: Final = frozenset(
    {"$schema", "$defs", "title", "description", "examples"}
)
#: The keywords checked here: a schema with any other is refused.
KEYWORDS: Final = frozenset(
    {"type", "properties", "additionalProperties", "items", "required", "minimum"}
    | {"$ref", "enum", "prefixItems"}
)
_TYPES: Final[Mapping[str, Callable[[object], bool]]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
}
_NAMES: Final = {
    "object": "an object",
    "array": "a list",
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


#: What a missing required field does.
_WITHOUT: Final = {"op": ": a clause without one never matches"}


@cache
def schema() -> dict[str, Any]:
    """The flag files' JSON Schema, as shipped in the package."""
    text = resources.files("aioflags").joinpath("flagfile.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _kind(value: object) -> str:
    for name, test in _TYPES.items():
        if name != "number" and test(value):
            return _NAMES[name]
    return "a number"


def _short(value: object) -> str:
    """A scalar as JSON, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def did_you_mean(given: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the known word closest to ``given``, if one is."""
    folded = {word.casefold(): word for word in known}
    match = folded.get(given.casefold())
    if match is None:
        close = difflib.get_close_matches(given, known, n=1, cutoff=0.6)
        match = close[0] if close else None
    if match is None:  # a word cut short or spelt out: `operator` for `op`
        lower = given.casefold()
        starts = [
            word
            for word in known
            if len(word) > 1
            and (lower.startswith(word.casefold()) or word.casefold().startswith(lower))
        ]
        match = max(starts, key=len) if starts else None
    return f" (did you mean {match!r}?)" if match is not None else ""


def schema_problems(
    value: object,
    node: Mapping[str, Any] | bool | None = None,
    at: Where = (),
    root: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Where ``value`` breaks the schema (``node``: a part of it; the whole by default).

    ``root``: the schema whose ``$defs`` a ``$ref`` names (the flag files'
    by default; a flag system's own for its schema).
    """
    if root is None:
        root = schema()
    if node is None:
        node = root
    if node is True:
        return []
    if node is False:
        return [Problem(at, "not allowed here")]
    assert isinstance(node, dict)
    unknown = set(node) - _ANNOTATIONS - KEYWORDS
    if unknown:
        raise ValueError(f"the schema uses keywords the linter ignores: {unknown}")
    found: list[Problem] = []
    if "$ref" in node:
        ref: str = node["$ref"]
        found += schema_problems(value, root["$defs"][ref.split("/")[-1]], at, root)
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_TYPES[t](value) for t in types):
            expected = " or ".join(_NAMES[t] for t in types if t != "null")
            given = (
                _kind(value)
                if isinstance(value, (dict, list))
                else f"{_short(value)} is {_kind(value)}"
            )
            return [*found, Problem(at, f"{given}, where {expected} is expected", True)]
    if "enum" in node and value not in node["enum"]:
        known = [v for v in node["enum"] if isinstance(v, str)]
        meant = did_you_mean(value, known) if isinstance(value, str) else ""
        if at and at[-1] == "op":
            found.append(
                Problem(
                    at, f"unknown operator {value!r}{meant}: the clause never matches"
                )
            )
        else:
            found.append(Problem(at, f"unknown value {value!r}{meant}"))
    if isinstance(value, dict):
        properties: Mapping[str, Any] = node.get("properties", {})
        found += (
            Problem(at, f"{key!r} is required{_WITHOUT.get(key, '')}")
            for key in node.get("required", ())
            if key not in value
        )
        others = node.get("additionalProperties", True)
        for key, item in value.items():
            sub = properties.get(key, others)
            if sub is False:
                found.append(
                    Problem(
                        (*at, key),
                        f"unknown field {key!r}{did_you_mean(key, list(properties))}: "
                        "LaunchDarkly's model has no such field, so it is ignored",
                    )
                )
            else:
                found += schema_problems(item, sub, (*at, key), root)
    if isinstance(value, list):
        # (draft 2020-12: prefixItems by place, then items for the rest)
        prefix: list[Any] = node.get("prefixItems", [])
        for n, item in enumerate(value):
            sub = prefix[n] if n < len(prefix) else node.get("items")
            if sub is not None:
                found += schema_problems(item, sub, (*at, n), root)
    if "minimum" in node and _TYPES["number"](value) and value < node["minimum"]:
        found.append(Problem(at, f"{value} is less than {node['minimum']}", True))
    return found


def reference_problems(
    files: list[Any], flags: Mapping[str, Any], segments: Mapping[str, Any]
) -> list[tuple[int, Problem]]:
    """Prerequisites and ``segmentMatch`` clauses naming what no file defines.

    ``files``: each file's data; the problems are by file index.
    """
    found: list[tuple[int, Problem]] = []
    for n, data in enumerate(files):
        if not isinstance(data, dict):
            continue
        for section in ("flags", "segments"):
            items = data.get(section)
            if not isinstance(items, dict):
                continue
            for key, item in items.items():
                if not isinstance(item, dict):
                    continue
                at: Where = (section, key)
                if section == "flags":
                    for i, prerequisite in _listed(item, "prerequisites"):
                        name = prerequisite.get("key")
                        if isinstance(name, str) and name not in flags:
                            found.append(
                                (
                                    n,
                                    Problem(
                                        (*at, "prerequisites", i, "key"),
                                        f"prerequisite flag {name!r} is not defined"
                                        f"{did_you_mean(name, list(flags))}: the flag "
                                        "serves its off variation",
                                    ),
                                )
                            )
                for where, clause in _clauses(item, at):
                    if clause.get("op") != "segmentMatch":
                        continue
                    values = clause.get("values")
                    for i, name in enumerate(
                        values if isinstance(values, list) else []
                    ):
                        if isinstance(name, str) and name not in segments:
                            found.append(
                                (
                                    n,
                                    Problem(
                                        (*where, "values", i),
                                        f"segment {name!r} is not defined"
                                        f"{did_you_mean(name, list(segments))}: it matches"
                                        " no one",
                                    ),
                                )
                            )
    return found


def default_problems(data: Any) -> list[Problem]:
    """A flag's ``default`` (``aioflags codegen``'s) that is none of its variations."""
    found: list[Problem] = []
    flags = data.get("flags") if isinstance(data, dict) else None
    for key, flag in flags.items() if isinstance(flags, dict) else ():
        if not isinstance(flag, dict) or "default" not in flag:
            continue
        variations = flag.get("variations")
        if not isinstance(variations, list):
            variations = []
        if not any(same_json(flag["default"], v) for v in variations):
            found.append(
                Problem(
                    ("flags", key, "default"),
                    f"default {_short(flag['default'])} is not one of the flag's "
                    "variations: `aioflags codegen` refuses it",
                )
            )
    return found


def _listed(
    item: Mapping[str, Any], field: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    listed = item.get(field)
    if isinstance(listed, list):
        for i, entry in enumerate(listed):
            if isinstance(entry, dict):
                yield i, entry


def _clauses(
    item: Mapping[str, Any], at: Where
) -> Iterator[tuple[Where, dict[str, Any]]]:
    for r, rule in _listed(item, "rules"):
        for c, clause in _listed(rule, "clauses"):
            yield (*at, "rules", r, "clauses", c), clause


# ----------------------------------------------------------------- where
_SPACE: Final = re.compile(r"[ \t\n\r]*")
_SCALAR: Final = re.compile(r"-?[0-9][0-9.eE+-]*|true|false|null")


def json_positions(text: str) -> dict[Where, int]:
    """Where each value of valid JSON ``text`` starts (an object member: its key)."""
    found: dict[Where, int] = {}
    scan = json.decoder.scanstring  # type: ignore[attr-defined]

    def skip(i: int) -> int:
        match = _SPACE.match(text, i)
        assert match is not None
        return match.end()

    def value(i: int, at: Where) -> int:
        i = skip(i)
        found.setdefault(at, i)
        char = text[i]
        if char == "{":
            i = skip(i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                start = skip(i)
                key, i = scan(text, start + 1)
                found[(*at, key)] = start
                i = skip(skip(i) + 1)  # past ':'
                i = skip(value(i, (*at, key)))
                if text[i] == "}":
                    return i + 1
                i += 1  # ','
        if char == "[":
            i = skip(i + 1)
            if text[i] == "]":
                return i + 1
            n = 0
            while True:
                i = skip(value(i, (*at, n)))
                n += 1
                if text[i] == "]":
                    return i + 1
                i = skip(i + 1)
        if char == '"':
            return int(scan(text, i + 1)[1])
        match = _SCALAR.match(text, i)
        assert match is not None
        return match.end()

    # What was found so far, if the scan stops: the file was read as JSON.
    with contextlib.suppress(RecursionError, IndexError, AssertionError, ValueError):
        value(0, ())
    return found


def yaml_positions(text: str) -> dict[Where, tuple[int, int]]:
    """Where each value of a YAML flag file starts, as ``(line, col)`` (an entry: its key)."""
    from ._yaml import JSONYamlLoader

    found: dict[Where, tuple[int, int]] = {}
    loader = JSONYamlLoader(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()

    def walk(node: Any, at: Where, mark: Any) -> None:
        found.setdefault(at, (mark.line + 1, mark.column + 1))
        kind = type(node).__name__
        if kind == "MappingNode":
            for key_node, item in node.value:
                walk(item, (*at, str(key_node.value)), key_node.start_mark)
        elif kind == "SequenceNode":
            for n, item in enumerate(node.value):
                walk(item, (*at, n), item.start_mark)

    if root is not None:
        with contextlib.suppress(RecursionError):
            walk(root, (), root.start_mark)
    return found


class Places:
    """``file:line:col`` for a place in one file's data (its nearest known ancestor's)."""

    __slots__ = ("_lines", "_path", "_positions")

    def __init__(self, path: Path, text: str) -> None:
        self._path = path
        self._positions: Mapping[Where, int | tuple[int, int]]
        if path.suffix.lower() in (".yaml", ".yml"):
            self._positions = yaml_positions(text)
        else:
            self._positions = json_positions(text)
        self._lines = [0] + [m.end() for m in re.finditer("\n", text)]

    def __call__(self, at: Where) -> str:
        while at and at not in self._positions:
            at = at[:-1]
        place = self._positions.get(at)
        if place is None:
            return str(self._path)
        if isinstance(place, int):
            line = bisect.bisect_right(self._lines, place)
            place = (line, place - self._lines[line - 1] + 1)
        return f"{self._path}:{place[0]}:{place[1]}"


def lint(
    files: list[tuple[Path, str, Any]],
    flags: Mapping[str, Any],
    segments: Mapping[str, Any],
) -> tuple[list[Linted], dict[tuple[str, str], str]]:
    """Each file's problems, placed; and where each flag and segment is.

    ``files``: each file's path, text and data (as read); ``flags`` and
    ``segments``: all files' together. The second result gives
    ``file:line:col`` by ``("flags" or "segments", key)``.
    """
    found: list[Linted] = []
    places = [Places(path, text) for path, text, _ in files]
    by_file: list[list[Problem]] = []
    for _, _, data in files:
        document = document_format(data)  # (a flag system's own: its linter)
        by_file.append(
            schema_problems(data) + default_problems(data)
            if document is None
            else [Problem(*p) for p in document.problems(data)]
        )
    for n, problem in reference_problems([d for _, _, d in files], flags, segments):
        by_file[n].append(problem)
    for place, problems in zip(places, by_file, strict=True):
        found += (Linted(place(p.at), *p) for p in problems)
    where: dict[tuple[str, str], str] = {}
    for place, (_, _, data) in zip(places, files, strict=True):
        if not isinstance(data, dict):
            continue
        for section in ("flags", "flagValues", "segments"):
            items = data.get(section)
            if isinstance(items, dict):
                kind = "segments" if section == "segments" else "flags"
                for key in items:
                    where[(kind, key)] = place((section, key))
    return found, where


def pointer(at: Where) -> str:
    """``flags/f/rules/0``: a place in a file's data, as a JSON Pointer without the ``/``."""
    return "/".join(str(part) for part in at) or "the file"
