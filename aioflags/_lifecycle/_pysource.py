"""Python source as ``ruff format`` writes it, for ``aioflags codegen``'s module.

Expressions split at their brackets as the formatter splits them, string
literals quoted and escaped as it leaves them, docstrings indented as it
indents them: the generated module needs no formatter run over it. Every
character that is not printable is written as its escape, so nothing a
flag holds can end a literal, a comment or a docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

__all__ = [
    "INDENT",
    "LINE",
    "Node",
    "assignment",
    "call_node",
    "doc_lines",
    "docstring",
    "escape",
    "layout",
    "literal",
    "string",
]

#: The formatter's line length (``ruff format``'s default, and Black's).
LINE: Final = 88
INDENT: Final = "    "


@dataclass(frozen=True)
class Node:
    """An expression as the formatter splits it: an atom, or brackets around items.

    A bracket's items are nodes, or ``(key, node)`` pairs (a dict's).
    ``comma``: a trailing comma when the items go one a line (not for a
    subscript of one item, where it would make a tuple).
    """

    text: str  # an atom's text, or the opening: "f(", "Literal[", "{"
    items: tuple[Node | tuple[str, Node], ...] | None = None
    close: str = ""
    comma: bool = True

    def flat(self) -> str:
        if self.items is None:
            return self.text
        return self.text + ", ".join(_flat_item(i) for i in self.items) + self.close


def _flat_item(item: Node | tuple[str, Node]) -> str:
    if isinstance(item, tuple):
        return f"{item[0]}: {item[1].flat()}"
    return item.flat()


def layout(node: Node, indent: str, prefix: str = "", suffix: str = "") -> list[str]:
    """``node`` as ``ruff format`` writes it, after ``prefix``, before ``suffix``."""
    flat = f"{indent}{prefix}{node.flat()}{suffix}"
    if len(flat) <= LINE or node.items is None or not node.items:
        return [flat]
    inner = indent + INDENT
    body = ", ".join(_flat_item(i) for i in node.items)
    lines = [f"{indent}{prefix}{node.text}"]
    if len(inner) + len(body) <= LINE:
        lines.append(inner + body)
    else:
        comma = "," if node.comma or len(node.items) > 1 else ""
        for item in node.items:
            if isinstance(item, tuple):
                lines += layout(item[1], inner, f"{item[0]}: ", comma)
            else:
                lines += layout(item, inner, "", comma)
    lines.append(f"{indent}{node.close}{suffix}")
    return lines


def assignment(target: str, value: Node) -> list[str]:
    """``target = value``; an atom too long is put in parentheses, if that makes it fit."""
    line = f"{target} = {value.flat()}"
    if value.items is None and len(line) > LINE and len(INDENT + value.text) <= LINE:
        return [f"{target} = (", INDENT + value.text, ")"]
    return layout(value, "", f"{target} = ")


def escape(char: str) -> str:
    """A character as a string literal's escape."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def string(text: str) -> str:
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
            out.append(escape(char))
    return quote + "".join(out) + quote


def literal(value: JSONValue) -> Node:
    """A JSON value as a Python literal."""
    if value is None or isinstance(value, bool):
        return Node(repr(value))
    if isinstance(value, (int, float)):
        return Node(repr(value).replace("e+", "e"))  # (ruff writes 1e100)
    if isinstance(value, str):
        return Node(string(value))
    if isinstance(value, list):
        return Node("[", tuple(literal(v) for v in value), "]")
    return Node("{", tuple((string(k), literal(v)) for k, v in value.items()), "}")


def call_node(function: str, *args: Node) -> Node:
    return Node(f"{function}(", args, ")")


def doc_lines(text: str) -> list[str]:
    """Text for a docstring: its own lines, tabs as spaces, escaped for ``\"\"\"``.

    Every character that is not printable (controls, format characters)
    is written as its escape; a lone surrogate as the text of its escape
    (a backslash written twice): Python 3.13 encodes a docstring as UTF-8
    when it compiles it (to strip its indentation), which a surrogate fails.
    """
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
        line = "".join(_doc_char(c) for c in line)
        out.append(line.replace('"""', '\\"\\"\\"'))
    return out


def _doc_char(char: str) -> str:
    if char == " " or char.isprintable():
        return char
    if "\ud800" <= char <= "\udfff":
        return "\\" + escape(char)  # (the escape's text, not the character)
    return escape(char)


def docstring(lines: list[str], indent: str) -> list[str]:
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
