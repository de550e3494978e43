"""Flags compiled to Python functions, one per flag (evaluation.md §13).

A flag's targets, rules and fallthrough become the body of one generated
function, so an evaluation is one call instead of a walk over rule objects
with a call per clause: the common clauses (``in``, ``startsWith``,
``endsWith``, ``contains``, ``matches`` and the numeric comparisons on a
top-level attribute, ``segmentMatch``) are written inline, the rest call their
compiled predicate. Segment rules, and the rules of a flag too big to generate
whole, get the same inline forms from :func:`build_predicate`.

The generated source holds nothing from the flag data: every key, attribute
name, clause value and result is an *operand*, passed to the generated
function as an argument default, and the source names it ``_0``, ``_1``,
... (or as an item of the default ``_c``: see :class:`_Writer`). So two flags of the same shape (the same targets kinds count, the same
operators in the same places) have the same source: it is compiled once and
its code is reused, and flag data can never become code.
"""

from __future__ import annotations

import linecache
import weakref
from collections.abc import Callable, Mapping, Sequence
from itertools import count
from types import CodeType, FunctionType, MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeAlias, cast

from ._operators import OPERATORS, semver_key

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

    from ._context import Context
    from ._results import Result

__all__ = [
    "MAX_CLAUSES",
    "InlineClause",
    "Runner",
    "build_predicate",
    "build_runner",
    "build_segment",
    "slow_clause",
]

#: ``run(context, state) -> Result``
Runner: TypeAlias = Callable[["Context", Any], "Result"]

#: Flags with more clauses than this are evaluated by the interpreter: one
#: compile must stay short (it runs on the event loop) and such flags are rare.
MAX_CLAUSES: Final = 64
_CACHE_SIZE: Final = 1024


class InlineClause(NamedTuple):
    """A clause the generator can write inline.

    ``op`` is the operator's name in flag JSON: ``"segmentMatch"``
    (``operands``: the segment keys), or an operator of
    :data:`aioflags._evaluation._operators.OPERATORS` whose inline form applies
    (``operands``: what its template names ``{0}``, ``{1}``...; ``test``: its
    generic test, for the values the inline form does not decide).
    """

    op: str
    kind: str
    name: str
    operands: tuple[object, ...]
    test: Callable[[JSONValue], bool] | None
    negate: bool


def slow_clause(test: Callable[[JSONValue], bool], v: JSONValue, negate: bool) -> bool:
    """The generic clause semantics for a present value the inline form left."""
    if type(v) is list:
        return any(test(e) for e in v) != negate
    return test(v) != negate


_GLOBALS: Final[dict[str, object]] = {
    "__builtins__": {
        "type": type,
        "float": float,
        "int": int,
        "str": str,
        "len": len,
        "KeyError": KeyError,
    },
    "_slow": slow_clause,
    "_semver": semver_key,
    "_EMPTY": MappingProxyType({}),
}
_shapes: dict[str, tuple[CodeType, dict[str, object]]] = {}
_names = count()


def _register_source(code: CodeType, source: str) -> None:
    """Let tracebacks and debuggers show generated code, while the code lives."""
    filename = code.co_filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(code, linecache.cache.pop, filename, None).atexit = False


class _Writer:
    """Collects the source lines and the operands of one flag.

    Operands are *hot* (read on the common path: keys, attribute names,
    clause values), each its own argument default, or *cold* (read at most
    once per evaluation: a result to return, a clause's generic test for the
    values its inline form leaves), items of one tuple default ``_c``. Each
    default costs on every call, used or not (the call copies it into the
    frame, leaving clears it): a cold operand costs an index when used.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.operands: list[object] = []
        self.cold: list[object] = []
        self.parts: dict[str, int] = {}  # context kind -> index of its part variable
        self.values: set[int] = set()  # the parts whose attributes a clause reads

    def operand(self, value: object) -> str:
        self.operands.append(value)
        return f"_{len(self.operands) - 1}"

    def cold_operand(self, value: object) -> str:
        self.cold.append(value)
        return f"_c[{len(self.cold) - 1}]"

    def part(self, kind: str) -> str:
        index = self.parts.get(kind)
        if index is None:
            index = self.parts[kind] = len(self.parts)
        return f"p{index}"

    def clause(self, c: InlineClause | Callable[..., bool]) -> str:
        if not isinstance(c, InlineClause):
            return f"{self.cold_operand(c)}(ctx, st)"
        names = [self.operand(o) for o in c.operands]
        if c.op == "segmentMatch":
            return f"(st.match_segments({names[0]}, ctx) != {c.negate})"
        operator = OPERATORS[c.op]
        index = int(self.part(c.kind)[1:])
        self.values.add(index)
        values = f"a{index}"
        # The attribute is looked up in the guard's first type test; a value
        # the guard refuses is absent (no match, even negated) or the test's.
        lookup = f"type(v := {values}.get({self.operand(c.name)}))"
        guard = operator.guard.format(*names).replace("type(v)", lookup, 1)
        test = operator.template.format(*names)
        if c.negate:
            test = f"not ({test})"
        slow = f"v is not None and _slow({self.cold_operand(c.test)}, v, {c.negate})"
        return f"(({test}) if {guard} else ({slow}))"

    def serve(self, indent: str, fixed: object, resolve: Callable[..., object]) -> None:
        if fixed is not None:
            self.lines.append(f"{indent}return {self.cold_operand(fixed)}")
        else:
            self.lines.append(f"{indent}return {self.cold_operand(resolve)}(ctx)")

    def function(self, name: str) -> FunctionType:
        """``name(ctx, st)`` with the lines as its body and the operands as defaults."""
        head = ["    parts = ctx._parts"] if len(self.parts) > 1 else []
        parts = "parts" if head else "ctx._parts"
        for kind, index in self.parts.items():
            # A single-kind context is its own part: no dict lookup for it.
            k = self.operand(kind)
            head.append(f"    p{index} = ctx if ctx._kind == {k} else {parts}.get({k})")
            if index in self.values:
                head.append(
                    f"    a{index} = _EMPTY if p{index} is None else p{index}._values"
                )
        names = "".join(f", _{i}=None" for i in range(len(self.operands)))
        defaults = tuple(self.operands)
        if self.cold:
            names += ", _c=None"
            defaults += (tuple(self.cold),)
        source = "\n".join([f"def {name}(ctx, st{names}):", *head, *self.lines])
        shape = _shapes.get(source)
        if shape is None:
            if len(_shapes) >= _CACHE_SIZE:
                _shapes.clear()  # a cache only: built functions keep their code
            namespace: dict[str, object] = {}
            globals_ = dict(_GLOBALS)
            # Safe: the source is built from the fixed fragments above and
            # operand names only; the flag data reaches the code as defaults.
            filename = f"<aioflags generated {name} {next(_names)}>"
            exec(compile(source, filename, "exec"), globals_, namespace)
            code = cast("FunctionType", namespace[name]).__code__
            _register_source(code, source)
            shape = _shapes[source] = (code, globals_)
        # The operands are the defaults: read as fast locals, and one tuple per
        # function (no closure cells for the garbage collector to walk).
        code, globals_ = shape
        return FunctionType(code, globals_, name, defaults)


def build_runner(
    prerequisites: tuple[object, ...],
    targets: tuple[tuple[str, Mapping[str, object]], ...],
    rules: Sequence[
        tuple[
            Sequence[InlineClause | Callable[..., bool]],
            object,
            Callable[..., object],
        ]
    ],
    fallthrough: tuple[object, Callable[..., object]],
) -> Runner | None:
    """The generated function for a flag, or ``None`` if it is too big.

    ``rules`` holds, per rule, its clauses, its fixed result (or ``None``) and
    its resolve function; ``fallthrough`` the same pair.
    """
    if sum(len(clauses) for clauses, _, _ in rules) > MAX_CLAUSES:
        return None
    w = _Writer()
    body = w.lines
    if prerequisites:
        # The state's method on the careful path (cycles, recording) and in
        # all-flags state (results known); else each prerequisite inline, as
        # Matcher.prerequisites_failed does it.
        every = w.cold_operand(prerequisites)
        body.append("    if not st.inline_prerequisites:")
        body.append(f"        r = st.prerequisites_failed({every}, ctx)")
        body.append("        if r is not None:")
        body.append("            return r")
        body.append("    else:")
        for prereq in prerequisites:
            key = w.operand(prereq.key)  # type: ignore[attr-defined]
            failed = w.cold_operand(prereq.failed)  # type: ignore[attr-defined]
            variation = w.operand(prereq.variation)  # type: ignore[attr-defined]
            # (Matcher.hot first: see there)
            body.append("        try:")
            body.append(f"            f = st.hot[{key}]")
            body.append("        except KeyError:")
            body.append(f"            f = st.flags.get({key})")
            body.append("        if f is None or not f.on or f.malformed is not None:")
            body.append(f"            return {failed}")
            body.append("        if f.prerequisites:")
            body.append("            st.need_state()  # a chain: the careful path's")
            body.append(
                "        if (q if (q := f.constant) is not None else (g := f.run)(ctx, st))"
                f".variation_index != {variation}:"
            )
            body.append(f"            return {failed}")
    for kind, lookup in targets:
        p = w.part(kind)
        keys = w.operand(lookup)
        # Most contexts are in no target list: one membership test for them.
        body.append(f"    if {p} is not None and {p}._key in {keys}:")
        body.append(f"        return {keys}[{p}._key]")
    unconditional = False
    for clauses, fixed, resolve in rules:
        if not clauses:
            w.serve("    ", fixed, resolve)
            unconditional = True
            break
        body.append(f"    if {' and '.join(w.clause(c) for c in clauses)}:")
        w.serve("        ", fixed, resolve)
    if not unconditional:
        w.serve("    ", *fallthrough)
    return w.function("run")


def build_predicate(
    clauses: Sequence[InlineClause | Callable[..., bool]],
) -> Callable[[Context, Any], bool]:
    """All of ``clauses`` as one generated ``match(context, state) -> bool``.

    The same inline forms as :func:`build_runner`, for segment rules and for
    the interpreter's rules. A longer list is split into functions of at most
    ``MAX_CLAUSES`` clauses, so that no compile runs long.
    """
    if len(clauses) > MAX_CLAUSES:
        chunks = tuple(
            build_predicate(clauses[i : i + MAX_CLAUSES])
            for i in range(0, len(clauses), MAX_CLAUSES)
        )

        def all_of(ctx: Context, st: Any) -> bool:
            for chunk in chunks:  # noqa: SIM110 (all() with a generator is slower)
                if not chunk(ctx, st):
                    return False
            return True

        return all_of
    w = _Writer()
    w.lines.append(f"    return {' and '.join(map(w.clause, clauses)) or 'True'}")
    return w.function("match")


def build_segment(
    included: tuple[tuple[str, frozenset[str]], ...],
    excluded: tuple[tuple[str, frozenset[str]], ...],
    rules: Sequence[
        tuple[
            Sequence[InlineClause | Callable[..., bool]],
            float | None,
            Callable[[Context], float],
        ]
    ],
) -> Callable[[Context, Any], bool] | None:
    """A bounded segment's membership as one ``contains(context, state) -> bool``.

    ``included`` and ``excluded`` hold the context keys listed per kind
    (``user`` first: the segment's plain lists), in the order they are
    checked; ``rules`` holds, per rule, its clauses, its weight threshold
    (or ``None``) and its bucket function. ``None`` if it is too big.
    """
    if sum(len(clauses) for clauses, _, _ in rules) > MAX_CLAUSES:
        return None
    w = _Writer()
    body = w.lines
    for lists, answer in ((included, True), (excluded, False)):
        for kind, keys in lists:
            if keys:
                p = w.part(kind)
                body.append(
                    f"    if {p} is not None and {p}._key in {w.operand(keys)}:"
                )
                body.append(f"        return {answer}")
    for clauses, threshold, bucket in rules:
        test = " and ".join(w.clause(c) for c in clauses) or "True"
        if threshold is not None:
            test = f"{test} and {w.cold_operand(bucket)}(ctx) < {w.operand(threshold)}"
        body.append(f"    if {test}:")
        body.append("        return True")
    body.append("    return False")
    return w.function("contains")
