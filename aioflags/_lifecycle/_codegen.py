"""``aioflags codegen``: a typed accessor per flag, generated from flag files.

The module it writes holds a class ``Flags`` (on an :class:`aioflags.Client`)
and a class ``BlockingFlags`` (on an :class:`aioflags.blocking.Client`) with
one method per flag, ``name(context)``, and one ``name_detail(context)``,
typed from the flag's variations. It is written as ``ruff format`` leaves it
(this module formats it: nothing is run over it) and passes ``mypy
--strict``; the same input gives the same bytes. The rules it follows
(docs/lifecycle-tools.md):

- Flags are taken in the order of their keys (Python's string order: by
  code point), and named in that order.
- A key's name: camelCase split at its humps, lower case, every run of other
  characters than ``a-z``, ``0-9`` and ``_`` one ``_``, no ``_`` at either
  end (``new-checkout``, ``newCheckout`` → ``new_checkout``); ``flag_``
  before a leading digit; ``flag`` for a key with no letter or digit.
- A name that is a Python keyword, or a type the module's annotations name
  (``bool``, ``int``, ``float``, ``str``, ``list``, ``dict``), gets a
  trailing ``_`` (``class`` → ``class_``). A name (or its ``_detail``) that
  an earlier flag's methods have gets ``_2``, ``_3``..., the first free.
  Both are renames: listed at the top of the module and printed.
- Types: all booleans ``bool``; all integers ``int``; numbers with a
  fraction among them ``float``; all strings ``Literal[...]`` of them, in
  the order of the variations; objects with the same keys and the same type
  under each key (a scalar type, ``list[JSON]`` or ``dict[str, JSON]``;
  ``int`` with ``float`` is ``float``) a ``TypedDict``; anything else the
  module's own recursive ``JSON``. A Literal or a TypedDict is named after
  the method in CamelCase (``checkout_config`` → ``CheckoutConfig``), with
  ``2``, ``3``... when the name is taken.
- The default passed to the client: the flag's ``default:`` from its file
  (one of its variations), else its off variation, else its first variation.
"""

from __future__ import annotations

import difflib
import json
import keyword
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aioflags._core._exceptions import AioflagsError, ProtocolError
from aioflags._core._json import parse
from aioflags._datasystem._sources._files import load_flag_files, read_flag_file
from aioflags._datasystem._sources._lint import same_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "CodegenError",
    "Generated",
    "check",
    "generate",
    "identifier",
    "load",
    "unified_diff",
]

#: The formatter's line length (``ruff format``'s default, and Black's).
LINE: Final = 88
_INDENT: Final = "    "

_HUMP: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_OTHER: Final = re.compile(r"[^a-z0-9_]+")
_UNDERSCORES: Final = re.compile(r"_+")
#: Lowercase names the module's annotations use inside the classes: a method
#: so named would hide the type from the methods after it.
_TYPE_NAMES: Final = frozenset({"bool", "int", "float", "str", "list", "dict"})
#: The module's own names, never a flag's type's name.
_MODULE_NAMES: Final = frozenset(
    {
        "JSON",
        "Flags",
        "BlockingFlags",
        "Client",
        "Context",
        "EvaluationDetail",
        "Final",
        "Literal",
        "TypeAlias",
        "TypedDict",
        "TYPE_CHECKING",
    }
)


class CodegenError(AioflagsError):
    """The flags cannot be generated (a file unreadable, a default no variation)."""


def identifier(key: str) -> str:
    """A flag key as a Python name, before keywords and collisions (the module docstring's rule)."""
    name = _HUMP.sub("_", key).lower()
    name = _UNDERSCORES.sub("_", _OTHER.sub("_", name)).strip("_")
    if not name:
        return "flag"
    return f"flag_{name}" if name[0].isdigit() else name


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_")) or "Flag"


# ------------------------------------------------------------------ types
@dataclass(frozen=True)
class _Type:
    """A flag's type: how it is written, and which client method reads it."""

    kind: str  # bool, int, float, str, literal, typeddict, json
    literals: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()


def _scalar(value: JSONValue) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list[JSON]"
    return "dict[str, JSON]"


def _merge(a: str, b: str) -> str | None:
    if a == b:
        return a
    if {a, b} == {"int", "float"}:
        return "float"
    return None


def _shape(variations: Sequence[JSONValue]) -> tuple[tuple[str, str], ...] | None:
    """The fields all variations share (same keys, same types), or None."""
    if not all(isinstance(v, dict) for v in variations):
        return None
    first: dict[str, JSONValue] = variations[0]
    keys = sorted(first)
    if not keys:
        return None
    types = {key: _scalar(first[key]) for key in keys}
    for other in variations[1:]:
        if sorted(other) != keys:
            return None
        for key in keys:
            merged = _merge(types[key], _scalar(other[key]))
            if merged is None:
                return None
            types[key] = merged
    return tuple((key, types[key]) for key in keys)


def flag_type(variations: Sequence[JSONValue]) -> _Type:
    """The type of a flag with these variations (at least one)."""
    kinds = {_scalar(v) for v in variations}
    if kinds == {"bool"}:
        return _Type("bool")
    if kinds == {"int"}:
        return _Type("int")
    if kinds <= {"int", "float"}:
        return _Type("float")
    if kinds == {"str"}:
        return _Type("literal", tuple(dict.fromkeys(variations)))
    fields = _shape(variations)
    if fields is not None:
        return _Type("typeddict", fields=fields)
    return _Type("json")


# ------------------------------------------------------------- the flags
@dataclass(frozen=True)
class _Flag:
    key: str
    name: str
    type: _Type
    type_name: str  # the annotation: bool, ..., JSON, or the alias/TypedDict
    default: JSONValue
    default_from: str
    variations: tuple[JSONValue, ...]
    description: str | None
    renamed: str | None  # why the name is not identifier(key)


@dataclass(frozen=True)
class Generated:
    """What ``codegen`` made: the module's text, and what it says on the way."""

    text: str
    #: One line per rename, and per flag left out.
    notes: tuple[str, ...]
    flags: int


def _json(value: JSONValue) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


def _quoted_key(key: str) -> str:
    """A key for a comment: JSON, ASCII (no character ends a comment)."""
    return json.dumps(key)


def _defaults(
    key: str, raw: Mapping[str, JSONValue], variations: Sequence[JSONValue], ld: bool
) -> tuple[JSONValue, str]:
    if not ld and "default" in raw:
        default = raw["default"]
        if not any(same_json(default, v) for v in variations):
            raise CodegenError(
                f"flag {key!r}: default {_json(default)} is not one of its "
                f"variations ({', '.join(_json(v) for v in variations)}); "
                "`aioflags validate` says where"
            )
        return default, "its default"
    off = raw.get("offVariation")
    if type(off) is int and 0 <= off < len(variations):
        return variations[off], "its off variation"
    return variations[0], "its first variation (it has no off variation)"


def _flags(
    sources: Sequence[tuple[Mapping[str, JSONObject], bool]],
) -> tuple[list[_Flag], list[str]]:
    """Name and type every flag; the notes: renames and flags left out."""
    merged: dict[str, tuple[JSONObject, bool]] = {}
    for flags, ld in sources:
        for key, raw in flags.items():
            if key in merged:
                raise CodegenError(f"flag {key!r} is defined more than once")
            merged[key] = (raw, ld)
    notes: list[str] = []
    out: list[_Flag] = []
    taken: set[str] = set()
    owner: dict[str, str] = {}
    type_names: set[str] = set(_MODULE_NAMES)
    for key in sorted(merged):
        raw, ld = merged[key]
        if raw.get("deleted") is True:
            continue
        variations = raw.get("variations")
        if not isinstance(variations, list) or not variations:
            notes.append(f"flag {_quoted_key(key)} has no variations: no accessor")
            continue
        base = identifier(key)
        why = None
        if keyword.iskeyword(base) or base in _TYPE_NAMES:
            what = "a Python keyword" if keyword.iskeyword(base) else "a type's name"
            why = f"{base} is {what}"
            base += "_"
        name, n = base, 2
        while name in taken or f"{name}_detail" in taken:
            clash = owner.get(name) or owner[f"{name}_detail"]
            why = f"{name} is flag {_quoted_key(clash)}'s"
            name, n = f"{base}_{n}", n + 1
        taken |= {name, f"{name}_detail"}
        owner[name] = owner[f"{name}_detail"] = key
        if why is not None:
            notes.append(f"flag {_quoted_key(key)} is {name} ({why})")
        kind = flag_type(variations)
        type_name = kind.kind if kind.kind in ("bool", "int", "float") else "JSON"
        if kind.kind in ("literal", "typeddict"):
            type_name, m = _camel(name), 2
            while type_name in type_names:
                type_name, m = f"{_camel(name)}{m}", m + 1
            type_names.add(type_name)
        default, default_from = _defaults(key, raw, variations, ld)
        if kind.kind == "float":
            default = float(default)
        description = None if ld else raw.get("description")
        out.append(
            _Flag(
                key,
                name,
                kind,
                type_name,
                default,
                default_from,
                tuple(variations),
                description if isinstance(description, str) else None,
                why,
            )
        )
    return out, notes


# ------------------------------------------------------------ formatting
@dataclass(frozen=True)
class _Node:
    """An expression as the formatter splits it: an atom, or brackets around items.

    A bracket's items are nodes, or ``(key, node)`` pairs (a dict's).
    ``comma``: a trailing comma when the items go one a line (not for a
    subscript of one item, where it would make a tuple).
    """

    text: str  # an atom's text, or the opening: "f(", "Literal[", "{"
    items: tuple[_Node | tuple[str, _Node], ...] | None = None
    close: str = ""
    comma: bool = True

    def flat(self) -> str:
        if self.items is None:
            return self.text
        return self.text + ", ".join(_flat_item(i) for i in self.items) + self.close


def _flat_item(item: _Node | tuple[str, _Node]) -> str:
    if isinstance(item, tuple):
        return f"{item[0]}: {item[1].flat()}"
    return item.flat()


def _lines(node: _Node, indent: str, prefix: str = "", suffix: str = "") -> list[str]:
    """``node`` as ``ruff format`` writes it, after ``prefix``, before ``suffix``."""
    flat = f"{indent}{prefix}{node.flat()}{suffix}"
    if len(flat) <= LINE or node.items is None or not node.items:
        return [flat]
    inner = indent + _INDENT
    body = ", ".join(_flat_item(i) for i in node.items)
    lines = [f"{indent}{prefix}{node.text}"]
    if len(inner) + len(body) <= LINE:
        lines.append(inner + body)
    else:
        comma = "," if node.comma or len(node.items) > 1 else ""
        for item in node.items:
            if isinstance(item, tuple):
                lines += _lines(item[1], inner, f"{item[0]}: ", comma)
            else:
                lines += _lines(item, inner, "", comma)
    lines.append(f"{indent}{node.close}{suffix}")
    return lines


def _assignment(target: str, value: _Node) -> list[str]:
    """``target = value``; an atom too long is put in parentheses, if that makes it fit."""
    line = f"{target} = {value.flat()}"
    if value.items is None and len(line) > LINE and len(_INDENT + value.text) <= LINE:
        return [f"{target} = (", _INDENT + value.text, ")"]
    return _lines(value, "", f"{target} = ")


def _string(text: str) -> str:
    """A string literal as ruff writes it: double quotes unless single ones escape less."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for char in text:
        if char == "\\" or char == quote:
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return quote + "".join(out) + quote


def _literal(value: JSONValue) -> _Node:
    """A JSON value as a Python literal."""
    if value is None or isinstance(value, bool):
        return _Node(repr(value))
    if isinstance(value, (int, float)):
        return _Node(repr(value).replace("e+", "e"))  # (ruff writes 1e100)
    if isinstance(value, str):
        return _Node(_string(value))
    if isinstance(value, list):
        return _Node("[", tuple(_literal(v) for v in value), "]")
    return _Node("{", tuple((_string(k), _literal(v)) for k, v in value.items()), "}")


def _call(function: str, *args: _Node) -> _Node:
    return _Node(f"{function}(", args, ")")


_PRINTABLE: Final = re.compile(r"[^\S ]|[\x00-\x1f\x7f-\x9f]")


def _doc_lines(text: str) -> list[str]:
    """Text for a docstring: its own lines, tabs as spaces, escaped for ``\"\"\"``."""
    lines = [line.expandtabs(4).rstrip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    common = min(
        (len(line) - len(line.lstrip(" ")) for line in lines if line), default=0
    )
    out = []
    for line in lines:
        line = line[common:].replace("\\", "\\\\")
        line = _PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
        out.append(line.replace('"""', '\\"\\"\\"'))
    return out


def _docstring(lines: list[str], indent: str) -> list[str]:
    """A docstring as ruff leaves it: one line, or a summary and the rest."""
    if lines and lines[-1].endswith('"'):
        lines[-1] += " "
    if lines and lines[0].startswith('"'):
        lines[0] = " " + lines[0]
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    out = [f'{indent}"""{lines[0]}']
    out += [f"{indent}{line}" if line else "" for line in lines[1:]]
    out.append(f'{indent}"""')
    return out


def _flag_doc(flag: _Flag) -> list[str]:
    lines = _doc_lines(flag.description) if flag.description else []
    key = _doc_lines(f"``{flag.key}``")
    if not lines:
        lines = [f"The flag {' '.join(key)}."]
    variations = ", ".join(_json(v) for v in flag.variations)
    lines += [
        "",
        *_doc_lines(f"Variations: {variations}."),
        *_doc_lines(
            f"Default (when it cannot be evaluated, or serves a value of "
            f"another type): {_json(flag.default)}, {flag.default_from}."
        ),
    ]
    return lines


_METHODS: Final = {
    "bool": "bool",
    "int": "int",
    "float": "float",
    "literal": "string",
    "typeddict": "json",
    "json": "json",
}


def _methods(flag: _Flag, blocking: bool) -> list[str]:
    """A flag's two methods in a class."""
    indent, body = _INDENT, _INDENT * 2
    keyword_ = "def" if blocking else "async def"
    wait = "" if blocking else "await "
    method = f"self._client.{_METHODS[flag.type.kind]}_variation"
    args = (_Node(f"{flag.name.upper()}_KEY"), _Node("context"), _literal(flag.default))
    out: list[str] = []
    for detail in (False, True):
        name = f"{flag.name}_detail" if detail else flag.name
        returns = f"EvaluationDetail[{flag.type_name}]" if detail else flag.type_name
        head = f"{indent}{keyword_} {name}(self, context: Context) -> {returns}:"
        if len(head) <= LINE:
            out.append(head)
        else:
            out += [f"{indent}{keyword_} {name}(", f"{body}self, context: Context"]
            tail = f"{indent}) -> {returns}:"
            if len(tail) <= LINE:
                out.append(tail)
            elif detail:
                out += [
                    f"{indent}) -> EvaluationDetail[",
                    f"{body}{flag.type_name}",
                    f"{indent}]:",
                ]
            elif len(body + flag.type_name) <= LINE:
                out += [f"{indent}) -> (", f"{body}{flag.type_name}", f"{indent}):"]
            else:
                out.append(tail)
        if detail:
            out += _docstring(
                [f"Like :meth:`{flag.name}`, with the variation index and the reason."],
                body,
            )
        else:
            out += _docstring(_flag_doc(flag), body)
        call = _call(method + ("_detail" if detail else ""), *args)
        if flag.type.kind in ("bool", "int", "float"):
            out += _lines(call, body, f"return {wait}")
        else:
            local = "detail" if detail else "value"
            out += _lines(call, body, f"{local} = {wait}")
            out += _lines(
                _call("cast", _Node(_string(returns)), _Node(local)), body, "return "
            )
        out.append("")
    return out


_JSON_ALIAS: Final = (
    'JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"'
)


def _type_definition(flag: _Flag) -> list[str]:
    if flag.type.kind == "literal":
        items = tuple(_Node(_string(s)) for s in flag.type.literals)
        node = _Node("Literal[", items, "]", comma=len(items) > 1)
        return _lines(node, "", f"{flag.type_name}: TypeAlias = ")
    fields = flag.type.fields
    if all(f.isidentifier() and not keyword.iskeyword(f) for f, _ in fields):
        out = [f"class {flag.type_name}(TypedDict):"]
        if len(out[0]) > LINE:
            out = [f"class {flag.type_name}(", f"{_INDENT}TypedDict", "):"]
        out += _docstring(_doc_lines(f"The value of the flag ``{flag.key}``."), _INDENT)
        out.append("")
        out += [f"{_INDENT}{field}: {kind}" for field, kind in fields]
        return out
    shape = _Node("{", tuple((_string(f), _Node(kind)) for f, kind in fields), "}")
    node = _call("TypedDict", _Node(_string(flag.type_name)), shape)
    return _lines(node, "", f"{flag.type_name} = ")


def _module(flags: list[_Flag], notes: list[str], command: str) -> str:
    kinds = {flag.type.kind for flag in flags}
    uses_json = "json" in kinds or any(
        "JSON" in kind for flag in flags for _, kind in flag.type.fields
    )
    out = [
        "# Generated by `aioflags codegen`: do not edit. Regenerate with",
        f"#   {command}",
        "# (and add --check to fail when this file is not what the flags make now).",
    ]
    if notes:
        out.append("#")
        out += [f"# {note}" for note in notes]
    out += [
        '"""Typed accessors for the flags (generated by ``aioflags codegen``)."""',
        "",
        "from __future__ import annotations",
        "",
    ]
    typing = ["TYPE_CHECKING", "Final"]
    if "literal" in kinds:
        typing.append("Literal")
    if "literal" in kinds or uses_json:
        typing.append("TypeAlias")
    if "typeddict" in kinds:
        typing.append("TypedDict")
    if kinds - {"bool", "int", "float"}:
        typing.append("cast")
    out += [
        f"from typing import {', '.join(typing)}",
        "",
        "if TYPE_CHECKING:",
        f"{_INDENT}import aioflags.blocking",
        f"{_INDENT}from aioflags import Client, Context, EvaluationDetail",
        "",
    ]
    if uses_json:
        out += ["#: Any JSON value.", _JSON_ALIAS, ""]
    if flags:
        out.append("#: The flags' keys.")
        for flag in flags:
            out += _assignment(f"{flag.name.upper()}_KEY: Final", _literal(flag.key))
    for flag in flags:
        if flag.type.kind in ("literal", "typeddict"):
            out += ["", "", *_type_definition(flag)]
    for cls, blocking, client, doc in (
        ("Flags", False, "Client", "aioflags.Client"),
        ("BlockingFlags", True, "aioflags.blocking.Client", "aioflags.blocking.Client"),
    ):
        out += [
            "",
            "",
            f"class {cls}:",
            f'{_INDENT}"""Typed flag values from an :class:`{doc}`: ``{cls}(client)``."""',
            "",
            f'{_INDENT}__slots__ = ("_client",)',
            "",
            f"{_INDENT}def __init__(self, client: {client}) -> None:",
            f"{_INDENT * 2}self._client = client",
            "",
        ]
        for flag in flags:
            out += _methods(flag, blocking)
        out.pop()  # (no blank line at the end of the class)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- inputs
def _ld_flags(path: Path) -> dict[str, JSONObject]:
    """LaunchDarkly's flag JSON (``/sdk/latest-all``): its ``flags``, by key."""
    raw = read_flag_file(path)
    if isinstance(raw, str):
        raise CodegenError(f"{path}: cannot read the file: {raw}")
    try:
        data = parse(raw)
    except ProtocolError as exc:
        raise CodegenError(f"{path}: invalid JSON: {exc}") from None
    flags = data.get("flags") if isinstance(data, dict) else None
    if not isinstance(flags, dict) or not all(
        isinstance(flag, dict) for flag in flags.values()
    ):
        raise CodegenError(
            f"{path}: not LaunchDarkly's flag JSON: expected an object with "
            '"flags" (flag objects by key), as /sdk/latest-all answers'
        )
    return flags


def load(
    files: Sequence[Path], ld_files: Sequence[Path]
) -> list[tuple[Mapping[str, JSONObject], bool]]:
    """The flags of flag files (one loader for all) and of LaunchDarkly's JSON files.

    Raises:
        CodegenError: a file is missing or unreadable (its message says why).
    """
    from aioflags._datasystem._sources._files import FlagFileError

    sources: list[tuple[Mapping[str, JSONObject], bool]] = []
    if files:
        try:
            flags, _ = load_flag_files(*files)
        except FlagFileError as exc:
            raise CodegenError(str(exc)) from None
        sources.append((flags, False))
    sources += ((_ld_flags(path), True) for path in ld_files)
    return sources


def command_line(files: Iterable[Path], ld_files: Iterable[Path], out: Path) -> str:
    """The command that regenerates the module (as its header says it)."""
    words = ["aioflags", "codegen", *(str(f) for f in files)]
    for path in ld_files:
        words += ["--from-ld", str(path)]
    words += ["-o", str(out)]
    return shlex.join(words)


def generate(
    sources: Sequence[tuple[Mapping[str, JSONObject], bool]], command: str
) -> Generated:
    """The module for these flags (``load``'s), saying ``command`` regenerates it.

    Raises:
        CodegenError: a flag's ``default`` is no variation of it, or a key
            is defined twice.
    """
    flags, notes = _flags(sources)
    return Generated(_module(flags, notes, command), tuple(notes), len(flags))


def unified_diff(old: str, new: str, path: str) -> str:
    """What regenerating ``path`` changes, as a unified diff."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=path,
            tofile=f"{path} (generated now)",
        )
    )


def check(path: Path, generated: Generated) -> str | None:
    """None when ``path`` holds ``generated``; else the diff that would make it so."""
    try:
        old = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        old = ""
    if old == generated.text:
        return None
    return unified_diff(old, generated.text, str(path)) or f"{path} differs\n"
