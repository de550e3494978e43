"""``aioflags codegen``: a typed accessor per flag, generated from flag files.

The module it writes holds a class ``Flags`` (on an :class:`aioflags.Client`)
and a class ``BlockingFlags`` (on an :class:`aioflags.blocking.Client`) with
one method per flag, ``name(context)``, and one ``name_detail(context)``,
typed from the flag's variations. It is written as ``ruff format`` leaves it
(this module formats it: nothing is run over it) and passes ``mypy
--strict``; the same input gives the same bytes. The rules it follows
(docs/lifecycle-tools.md):

- Flags are taken in the order of their keys (Python's string order: by
  code point).
- A key's name depends on the key alone: camelCase split at its humps,
  lower case, every run of other characters than ``a-z``, ``0-9`` and
  ``_`` one ``_``, no ``_`` at either end (``new-checkout``,
  ``newCheckout`` → ``new_checkout``); ``flag_`` before a leading digit;
  ``flag`` for a key with no letter or digit. A name that is a Python
  keyword, or a type the module's annotations name (``bool``, ``int``,
  ``float``, ``str``, ``list``, ``dict``), gets a trailing ``_`` (``class``
  → ``class_``): a rename, listed at the top of the module and printed.
  ``--name KEY=IDENT`` gives a flag another name (``IDENT``: lower-case
  ASCII letters, digits and ``_``, from a letter, not ending ``_detail``,
  no keyword or type name).
- Names never move: two flags whose names (or a name and another's
  ``..._detail``) are the same are refused, naming both, until
  ``--name`` tells them apart. Adding, removing or renaming a flag never
  changes which flag another flag's methods read.
- Types: all booleans ``bool``; all integers ``int``; numbers with a
  fraction among them ``float``; all strings ``Literal[...]`` of them, in
  the order of the variations; objects with the same keys and the same type
  under each key (a scalar type, ``list[JSON]`` or ``dict[str, JSON]``;
  ``int`` with ``float`` is ``float``) a ``TypedDict``; anything else the
  module's own recursive ``JSON``. A Literal or a TypedDict is named after
  the method in CamelCase (``checkout_config`` → ``CheckoutConfig``), with
  a trailing ``_`` when that is a name of the module's own or a keyword
  (``none`` → ``None_``, ``flags`` → ``Flags_``); two flags with one type
  name are refused, as two with one method name are. A TypedDict is
  written in the class form when its fields are ASCII names (no keyword,
  no leading ``__``, none the module's annotations use), else in the
  functional form.
- A value nested more than :data:`MAX_DEPTH` levels is refused (Python's
  parser stops at 200 brackets).
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
from aioflags._datasystem._sources._lint import did_you_mean, same_json, schema
from aioflags._evaluation._model import default_system, read_by
from aioflags._lifecycle._pysource import (
    INDENT,
    LINE,
    Node,
    assignment,
    call_node,
    doc_lines,
    docstring,
    escape,
    layout,
    literal,
    string,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._evaluation._model import FlagSystem

__all__ = [
    "HEADER",
    "MAX_DEPTH",
    "CodegenError",
    "Generated",
    "command_line",
    "generate",
    "identifier",
    "load",
    "name_problem",
    "unified_diff",
]

_HUMP: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_OTHER: Final = re.compile(r"[^a-z0-9_]+")
#: What ``--name`` may give: a name as codegen makes them.
_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")
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
#: A value nested deeper is refused: the default is written as a literal in
#: a call, and Python's parser stops at 200 brackets (mypy and others recurse).
MAX_DEPTH: Final = 100
#: The fields of a flag codegen reads (a misspelt one is said).
_READS: Final = ["variations", "offVariation", "default", "description"]
#: The first line of every module codegen writes: ``-o`` overwrites only a
#: file that starts with it.
HEADER: Final = "# Generated by `aioflags codegen`: do not edit. Regenerate with"


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
    #: its values' names, by variation, as its system names them (None: numbered)
    variants: tuple[str, ...] | None = None


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


def _system(
    raw: Mapping[str, JSONValue], ld: bool
) -> tuple[FlagSystem, Mapping[str, JSONValue]]:
    """The flag system that reads ``raw``, and its definition (``--from-ld``'s: the default)."""
    return (default_system(), raw) if ld else read_by(raw)


def _defaults(
    key: str, raw: Mapping[str, JSONValue], variations: Sequence[JSONValue], ld: bool
) -> tuple[JSONValue, str]:
    """The default an accessor passes, and whence: the flag file's, else its system's."""
    system, definition = _system(raw, ld)
    if not ld and system.part is None and "default" in raw:
        default = raw["default"]
        if not any(same_json(default, v) for v in variations):
            raise CodegenError(
                f"flag {key!r}: default {_json(default)} is not one of its "
                f"variations ({', '.join(_json(v) for v in variations)}); "
                "`aioflags validate` says where"
            )
        return default, "its default"
    return system.code_default(raw, definition, variations)


def name_problem(ident: str) -> str | None:
    """Why ``--name KEY=IDENT`` cannot give a flag the name ``ident``, or None."""
    if not _NAME.fullmatch(ident):
        return (
            "a name is lower-case ASCII letters, digits and _, from a letter "
            "(as codegen's names are)"
        )
    if keyword.iskeyword(ident):
        return "it is a Python keyword"
    if ident in _TYPE_NAMES:
        return "it is a type the module's annotations name"
    if ident.endswith("_detail"):
        return "a name ending _detail would be another flag's _detail method"
    return None


def _depth(value: JSONValue) -> int:
    """How many lists and objects nest in ``value`` (without recursing)."""
    deepest = 0
    stack: list[tuple[JSONValue, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack += ((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack += ((v, depth + 1) for v in item)
        else:
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def _variations(key: str, raw: JSONObject, ld: bool) -> list[JSONValue]:
    """A flag's variations (its system's values), checked: some, none nested too deeply."""
    system, definition = _system(raw, ld)
    variations = system.values(raw, definition)
    if not variations:
        known = schema()["$defs"]["flag"]["properties"]
        misspelt = [
            f"unknown field {field!r}{hint}"
            for field in raw
            if field not in known and (hint := did_you_mean(field, _READS))
        ]
        if misspelt and not ld:
            raise CodegenError(
                f"flag {key!r}: {'; '.join(misspelt)}; it has no variations: "
                "nothing to type its accessor from"
            )
        raise CodegenError(
            f"flag {key!r} has no variations: nothing to type its accessor "
            "from (`aioflags validate` says what else is wrong)"
        )
    values = [*variations, raw["default"]] if "default" in raw else variations
    deepest = max(_depth(v) for v in values)
    if deepest > MAX_DEPTH:
        raise CodegenError(
            f"flag {key!r}: a value nested {deepest} levels deep: a module "
            f"writes at most {MAX_DEPTH} (Python's parser stops at 200)"
        )
    return variations


def _name(key: str, names: Mapping[str, str]) -> tuple[str, str | None]:
    """A flag's method name, and why it is not ``identifier(key)`` (None: it is)."""
    if key in names:
        return names[key], "--name"
    base = identifier(key)
    if keyword.iskeyword(base):
        return f"{base}_", f"{base} is a Python keyword"
    if base in _TYPE_NAMES:
        return f"{base}_", f"{base} is a type's name"
    return base, None


def _type_name(name: str) -> tuple[str, str | None]:
    """The name of a flag's Literal or TypedDict, and why it has a ``_`` (None: no ``_``)."""
    camel = _camel(name)
    if camel in _MODULE_NAMES:
        return f"{camel}_", f"{camel} is the module's"
    if keyword.iskeyword(camel):
        return f"{camel}_", f"{camel} is a Python keyword"
    return camel, None


def _clash(a: str, b: str, what: str) -> CodegenError:
    return CodegenError(
        f"flags {_quoted_key(a)} and {_quoted_key(b)} would both have {what}: "
        f"give one of them another name with --name KEY=IDENT"
    )


def _flags(
    sources: Sequence[tuple[Mapping[str, JSONObject], bool]],
    names: Mapping[str, str],
) -> tuple[list[_Flag], list[str]]:
    """Name and type every flag; the notes: the renames."""
    merged: dict[str, tuple[JSONObject, bool]] = {}
    for flags, ld in sources:
        for key, raw in flags.items():
            if key in merged:
                raise CodegenError(f"flag {key!r} is defined more than once")
            merged[key] = (raw, ld)
    live = [key for key in sorted(merged) if merged[key][0].get("deleted") is not True]
    for key, ident in sorted(names.items()):
        if key not in live:
            raise CodegenError(
                f"--name {key}={ident}: no flag {key!r}{did_you_mean(key, live)}"
            )
        problem = name_problem(ident)
        if problem is not None:
            raise CodegenError(f"--name {key}={ident}: {problem}")
    notes: list[str] = []
    out: list[_Flag] = []
    owner: dict[str, str] = {}  # method name -> the key whose method it is
    type_owner: dict[str, str] = {}
    for key in live:
        raw, ld = merged[key]
        variations = _variations(key, raw, ld)
        name, why = _name(key, names)
        for method in (name, f"{name}_detail"):
            if method in owner:
                raise _clash(owner[method], key, f"the method {method}")
            owner[method] = key
        if why is not None:
            notes.append(f"flag {_quoted_key(key)} is {name} ({why})")
        kind = flag_type(variations)
        type_name = kind.kind if kind.kind in ("bool", "int", "float") else "JSON"
        if kind.kind in ("literal", "typeddict"):
            type_name, type_why = _type_name(name)
            if type_name in type_owner:
                raise _clash(type_owner[type_name], key, f"the type {type_name}")
            type_owner[type_name] = key
            if type_why is not None:
                notes.append(
                    f"flag {_quoted_key(key)}'s type is {type_name} ({type_why})"
                )
        default, default_from = _defaults(key, raw, variations, ld)
        if kind.kind == "float":
            try:
                default = float(default)
            except OverflowError:
                raise CodegenError(
                    f"flag {key!r}: its default {default} is too large for a float"
                ) from None
        system, definition = _system(raw, ld)
        variants = system.value_names(raw, definition)
        description = None if ld else system.description(raw, definition)
        out.append(
            _Flag(
                key,
                name,
                kind,
                type_name,
                default,
                default_from,
                tuple(variations),
                description,
                why,
                None if variants is None else tuple(variants),
            )
        )
    return out, notes


# ------------------------------------------------------------ the module
def _flag_doc(flag: _Flag) -> list[str]:
    lines = doc_lines(flag.description) if flag.description else []
    key = doc_lines(f"``{flag.key}``")
    if not lines:
        lines = [f"The flag {' '.join(key)}."]
    if flag.variants is not None:  # (its values by name: flagd's variants)
        variants = ", ".join(
            f"{_json(name)} = {_json(value)}"
            for name, value in zip(flag.variants, flag.variations, strict=True)
        )
        served = f"Variants: {variants}."
    else:
        served = f"Variations: {', '.join(_json(v) for v in flag.variations)}."
    lines += [
        "",
        *doc_lines(served),
        *doc_lines(
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
    indent, body = INDENT, INDENT * 2
    keyword_ = "def" if blocking else "async def"
    wait = "" if blocking else "await "
    method = f"self._client.{_METHODS[flag.type.kind]}_variation"
    args = (Node(f"{flag.name.upper()}_KEY"), Node("context"), literal(flag.default))
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
            out += docstring(
                [f"Like :meth:`{flag.name}`, with the variation index and the reason."],
                body,
            )
        else:
            out += docstring(_flag_doc(flag), body)
        node = call_node(method + ("_detail" if detail else ""), *args)
        if flag.type.kind in ("bool", "int", "float"):
            out += layout(node, body, f"return {wait}")
        else:
            local = "detail" if detail else "value"
            out += layout(node, body, f"{local} = {wait}")
            out += layout(
                call_node("cast", Node(string(returns)), Node(local)), body, "return "
            )
        out.append("")
    return out


_JSON_ALIAS: Final = (
    'JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"'
)


def _class_field(field: str) -> bool:
    """Whether a TypedDict's field can be written in the class form, as itself.

    Not a keyword; no leading ``__`` (the class body would mangle it); not a
    name the annotations use (the field would hide it); ASCII (Python
    normalises other names: ``ﬁ`` would be ``fi``).
    """
    return (
        field.isascii()
        and field.isidentifier()
        and not keyword.iskeyword(field)
        and not field.startswith("__")
        and field not in _TYPE_NAMES
        and field != "JSON"
    )


def _type_definition(flag: _Flag) -> list[str]:
    if flag.type.kind == "literal":
        items = tuple(Node(string(s)) for s in flag.type.literals)
        node = Node("Literal[", items, "]", comma=len(items) > 1)
        return layout(node, "", f"{flag.type_name}: TypeAlias = ")
    fields = flag.type.fields
    if all(_class_field(f) for f, _ in fields):
        out = [f"class {flag.type_name}(TypedDict):"]
        if len(out[0]) > LINE:
            out = [f"class {flag.type_name}(", f"{INDENT}TypedDict", "):"]
        out += docstring(doc_lines(f"The value of the flag ``{flag.key}``."), INDENT)
        out.append("")
        out += [f"{INDENT}{field}: {kind}" for field, kind in fields]
        return out
    shape = Node("{", tuple((string(f), Node(kind)) for f, kind in fields), "}")
    node = call_node("TypedDict", Node(string(flag.type_name)), shape)
    return layout(node, "", f"{flag.type_name} = ")


def _module(flags: list[_Flag], notes: list[str], command: str) -> str:
    kinds = {flag.type.kind for flag in flags}
    uses_json = "json" in kinds or any(
        "JSON" in kind for flag in flags for _, kind in flag.type.fields
    )
    out = [
        HEADER,
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
        f"{INDENT}import aioflags.blocking",
        f"{INDENT}from aioflags import Client, Context, EvaluationDetail",
        "",
    ]
    if uses_json:
        out += ["#: Any JSON value.", _JSON_ALIAS, ""]
    if flags:
        out.append("#: The flags' keys.")
        for flag in flags:
            out += assignment(f"{flag.name.upper()}_KEY: Final", literal(flag.key))
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
            f'{INDENT}"""Typed flag values from an :class:`{doc}`: ``{cls}(client)``."""',
            "",
            f'{INDENT}__slots__ = ("_client",)',
            "",
            f"{INDENT}def __init__(self, client: {client}) -> None:",
            f"{INDENT * 2}self._client = client",
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
        raise CodegenError(
            f"{path}: {exc}: --from-ld reads LaunchDarkly's flag JSON; a flag "
            "file (JSON or YAML) goes without --from-ld"
        ) from None
    flags = data.get("flags") if isinstance(data, dict) else None
    if not isinstance(flags, dict) or not all(
        isinstance(flag, dict) for flag in flags.values()
    ):
        raise CodegenError(
            f"{path}: not LaunchDarkly's flag JSON: expected an object with "
            '"flags" (flag objects by key), as /sdk/latest-all answers; a '
            "flag file (JSON or YAML) goes without --from-ld"
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
            # Empty is an error, as it is to serve and validate.
            flags, _ = load_flag_files(*files, allow_empty=False)
        except FlagFileError as exc:
            raise CodegenError(str(exc)) from None
        sources.append((flags, False))
    sources += ((_ld_flags(path), True) for path in ld_files)
    return sources


def _shell_word(word: str) -> str:
    """A word of a shell command on one line: ``$'...'`` when it has a control character."""
    if all(c.isprintable() for c in word):
        return shlex.quote(word)
    out = []
    for char in word:
        if char in "\\'":
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char.isprintable():
            out.append(char)
        elif 0xDC80 <= ord(char) <= 0xDCFF:  # a byte of a name not UTF-8 (PEP 383)
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        else:  # (bash's \\xHH is a byte: \\uHHHH is the character)
            out.append(escape(char).replace("\\x", "\\u00"))
    return "$'" + "".join(out) + "'"


def command_line(
    files: Iterable[Path],
    ld_files: Iterable[Path],
    out: Path,
    names: Mapping[str, str] | None = None,
) -> str:
    """The command that regenerates the module (as its header says it), on one line."""
    words = ["aioflags", "codegen", *(str(f) for f in files)]
    for path in ld_files:
        words += ["--from-ld", str(path)]
    for key, ident in sorted((names or {}).items()):
        words += ["--name", f"{key}={ident}"]
    words += ["-o", str(out)]
    return " ".join(_shell_word(word) for word in words)


def generate(
    sources: Sequence[tuple[Mapping[str, JSONObject], bool]],
    command: str,
    names: Mapping[str, str] | None = None,
) -> Generated:
    """The module for these flags (``load``'s), saying ``command`` regenerates it.

    ``names``: ``--name``'s, by key.

    Raises:
        CodegenError: a flag's ``default`` is no variation of it, a key is
            defined twice, two flags would have one name, a ``names`` entry
            is no flag or no name, a value cannot be written.
    """
    flags, notes = _flags(sources, names or {})
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
