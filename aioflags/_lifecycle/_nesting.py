"""Whether a Python source is nested too deep to hand to libcst.

libcst's parser is native code with no depth guard of its own: a source
nested deep enough (an expression in ~1,300 parentheses, a chain of
~20,000 unary minus signs) overflows its stack and the process dies with
SIGSEGV, taking ``aioflags cleanup`` and every other file with it. Python's
own parser stops far sooner, with an exception: at 200 parentheses
("too many nested parentheses"), 100 indents, and a few thousand levels
of anything else (``RecursionError`` or ``MemoryError``). So a source
Python's parser refuses for its depth is not given to libcst (it could
not be a valid module anyway); ``cleanup`` lists it as left, with the
reason.

A source Python refuses for another syntax error still goes to libcst,
which says where (its message is the clearer one), unless its brackets
alone are nested deeper than Python takes: the standard library's
tokenizer counts them without recursion.
"""

from __future__ import annotations

import ast
import io
import tokenize
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["MAX_BRACKETS", "too_deep"]

#: Python's parser refuses brackets nested deeper than this (its tokenizer's
#: MAXLEVEL).
MAX_BRACKETS: Final = 200
#: What Python's parser says of a source nested too deep for it.
_DEPTH_MESSAGES: Final = (
    "too many nested parentheses",
    "too many levels of indentation",
    "too complex",
    "too deeply nested",
)
_OPEN: Final = frozenset("([{")
_CLOSE: Final = frozenset(")]}")


def too_deep(text: str, path: Path) -> str | None:
    """Why ``text`` (the module at ``path``) must not go to libcst; None: it may."""
    try:
        ast.parse(text, str(path))
    except (RecursionError, MemoryError):
        return "nested too deep to parse (Python's own parser gives up on it)"
    except SyntaxError as exc:
        message = str(exc.msg)
        if any(said in message for said in _DEPTH_MESSAGES):
            line = f" (line {exc.lineno})" if exc.lineno else ""
            return f"nested too deep to parse: {message}{line}"
        return _brackets(text)
    except ValueError:  # (a NUL byte: libcst says so)
        return None
    return None


def _brackets(text: str) -> str | None:
    """Brackets nested deeper than Python takes, counted by the tokenizer."""
    depth = 0
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    try:
        for token in tokens:
            if token.type != tokenize.OP:
                continue
            if token.string in _OPEN:
                depth += 1
                if depth > MAX_BRACKETS:
                    return (
                        f"nested too deep to parse: brackets more than "
                        f"{MAX_BRACKETS} deep (line {token.start[0]})"
                    )
            elif token.string in _CLOSE:
                depth = max(0, depth - 1)
    except (tokenize.TokenError, SyntaxError) as exc:  # (an unclosed string...)
        # (since 3.12 the tokenizer is Python's own, which refuses the depth)
        if any(said in str(exc) for said in _DEPTH_MESSAGES):
            return f"nested too deep to parse: {exc}"
        return None
    return None
