"""The code generator's back end: a function's source in, its shared function out.

Two front ends write Python for it: :mod:`._codegen` a LaunchDarkly flag's
targets, rules and clauses, :mod:`._jsonlogic` a flagd flag's targeting.
Both keep to one discipline, and this module is where it is kept:

- **Operands, not data.** A front end writes its fixed fragments and
  operand indices only: every key, name, value and result of the flag is
  an item of the tuple the function is called with (``o[0]``, ``o[1]``...),
  so flag data can never become code, and two flags of one shape have one
  source.
- **One shape cache.** A source is compiled once; its function is shared
  by every flag of its shape (a front end's own: each front end's code
  names its own helpers). The cache is bounded: past :data:`_CACHE_SIZE`
  sources it is emptied, and what was built keeps its function.
- **One globals policy.** A generated function sees the builtins of
  :data:`_BUILTINS` and the helpers its :class:`Front` names, nothing
  else (no ``__import__``, ``getattr`` or ``open``): each shape its own
  copy, so what one defines is no other's.
- **One compile-and-exec.** :func:`generate` compiles a function's source
  under a name of its own (one counter), and registers that source in
  :mod:`linecache` for as long as the code lives, so tracebacks, ``pdb``
  and ``inspect.getsource`` show the generated code (attrs'
  ``_linecache_and_compile`` does the same). It is the one ``exec`` in
  aioflags.
"""

from __future__ import annotations

import linecache
import weakref
from itertools import count
from typing import TYPE_CHECKING, Final, cast, final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import CodeType, FunctionType

__all__ = ["Front", "generate"]

#: The builtins a generated function may name: the types its guards test,
#: and what LaunchDarkly's prerequisite checks catch.
_BUILTINS: Final[Mapping[str, object]] = {
    "type": type,
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "list": list,
    "tuple": tuple,
    "len": len,
    "KeyError": KeyError,
}
#: The most sources the shape cache holds (LaunchDarkly's and flagd's
#: together: 1,024 each before they shared one cache).
_CACHE_SIZE: Final = 2048

#: Source (with the front end that wrote it) -> the function it defines.
_shapes: dict[tuple[Front, str], FunctionType] = {}
_names = count()


@final
class Front:
    """A front end of the generator: the helpers its generated code names.

    ``label`` begins the name every function it generates is compiled
    under (``<aioflags generated run 12>``), as tracebacks show it.
    ``helpers``: each name a global of the generated code, beside
    :data:`_BUILTINS`; a private name (``_slow``), so that none shadows a
    builtin or a function's own name.
    """

    __slots__ = ("globals", "label")

    def __init__(self, label: str, helpers: Mapping[str, object]) -> None:
        for name in helpers:
            if not (name.startswith("_") and name.isidentifier()):
                raise ValueError(f"a helper's name begins with '_' (private): {name!r}")
        self.label = label
        self.globals: Final[Mapping[str, object]] = {
            "__builtins__": _BUILTINS,
            **helpers,
        }

    def __repr__(self) -> str:
        return f"<aioflags generator front {self.label!r}>"


def generate(front: Front, pieces: Sequence[str]) -> FunctionType:
    """The function the last of ``pieces`` defines, shared by every flag of this shape.

    Each piece is the source of one function (``def NAME(...):``) that
    ``front`` wrote; the others are what the last one calls, defined
    beside it. Each piece is compiled on its own (CPython holds the GIL
    through a ``compile``: a wide rule's megabytes at once would stop
    every other thread, the event loop's too, while the store builds it
    on a worker thread), under a name of its own.
    """
    source = "\n".join(pieces)
    shared = _shapes.get((front, source))
    if shared is not None:
        return shared
    if len(_shapes) >= _CACHE_SIZE:
        _shapes.clear()  # a cache only: built flags keep their function
    namespace = dict(front.globals)
    shape = next(_names)
    name = ""
    for piece in pieces:
        name = piece[4 : piece.index("(")]  # ("def NAME(...)")
        filename = f"<aioflags {front.label} {name} {shape}>"
        # Safe: the source is made of the front end's fixed fragments and
        # operand indices; the flag's data reaches the code as operands only.
        exec(compile(piece, filename, "exec"), namespace)
        _register(cast("FunctionType", namespace[name]).__code__, piece)
    shared = cast("FunctionType", namespace[name])
    _shapes[front, source] = shared
    return shared


def _register(code: CodeType, source: str) -> None:
    """Let tracebacks and debuggers show generated code, while the code lives."""
    filename = code.co_filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(code, linecache.cache.pop, filename, None).atexit = False
