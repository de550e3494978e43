"""Flags compiled to Python functions, one per shape of flag (evaluation.md §13).

A flag's targets, rules and fallthrough become the body of one generated
function, so an evaluation is one call instead of a walk over rule objects
with a call per clause: the common clauses (``in``, ``startsWith``,
``endsWith``, ``contains``, ``matches`` and the numeric comparisons on a
top-level attribute, ``segmentMatch``) are written inline, the rest call their
compiled predicate. Segment rules, and the rules of a flag too big to generate
whole, get the same inline forms from :func:`build_predicate`.

The generated source holds nothing from the flag data: every key, attribute
name, clause value, rollout weight and result is an *operand*, an item of
the tuple the function is called with (its :class:`Code`'s ``operands``),
which the source reads as ``o[0]``, ``o[1]``... (see :class:`_Writer`). So two flags of the
same shape (the same target kinds, the same operators in the same places)
have the same source: it is compiled once and the function is shared, and
flag data can never become code. A rollout that is not an experiment is
bucketed inline. This module is the generator's front end for
LaunchDarkly's flags: :mod:`._generate`, its back end, compiles the source
(as it does :mod:`._jsonlogic`'s).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from types import FunctionType, MethodType
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    NamedTuple,
    Protocol,
    TypeAlias,
    final,
)

from ._context import NO_ATTRIBUTES
from ._generate import Front, generate
from ._operators import OPERATORS, semver_key

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

    from ._context import Context
    from ._results import Result

__all__ = [
    "MAX_CLAUSES",
    "Code",
    "InlineClause",
    "Prerequisite",
    "Runner",
    "build_predicate",
    "build_runner",
    "build_segment",
    "slow_clause",
]

#: ``run(operands, context, state) -> Result``: a flag's code, shared by
#: the flags of its shape, called with the flag's own operands (its
#: :class:`Code`'s). Each runner reads the operands it was made with (the
#: generated code, ``o[0]``, ``o[1]``...; the evaluator's own runners, the
#: flag or the exception they hold): their shape is the runner's, hence
#: ``Any`` here.
Runner: TypeAlias = Callable[[Any, "Context", Any], "Result"]


@final
class Code:
    """What an evaluation runs of a flag whose result is not constant: its head.

    ``run(operands, context, state)`` gives the flag's result (a
    :data:`Runner`). ``plain``: the flag is on, well formed and has no
    prerequisites of its own, so as another flag's prerequisite its result
    is what its code gives, and analytics events count no prerequisite of
    it. ``operands``: all an evaluation reads of the flag's own. A
    snapshot's ``Matcher.heads`` hold a flag's constant ``Result`` or its
    :class:`Code` (``_evaluate.Head``); the generated prerequisite checks
    read ``plain`` and call ``run`` of the heads they find.

    What runs a head reads its ``run`` into a local, then calls it
    (``run = head.run; run(head.operands, ...)``): a call written
    ``head.run(...)`` looks ``run`` up as a method, which CPython does not
    specialise for a slot (~70 more instructions a call, measured).
    """

    __slots__ = ("operands", "plain", "run")

    def __init__(self, run: Runner, plain: bool, operands: tuple[object, ...]) -> None:
        self.run: Runner = run
        self.plain: bool = plain
        self.operands: tuple[object, ...] = operands

    def __repr__(self) -> str:
        plain = " plain" if self.plain else ""
        return f"<aioflags code {self.run.__qualname__}{plain}>"


#: Flags with more clauses than this are evaluated by the interpreter: one
#: compile must stay short (it runs on the event loop) and such flags are rare.
MAX_CLAUSES: Final = 64


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


try:
    # CPython's own SHA-1: half the instructions of OpenSSL's per bucket (no
    # EVP context to set up), and no hashlib import. Bucketing is not
    # security: any SHA-1 gives the same buckets.
    from _sha1 import sha1 as _sha1  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - a build without the builtin hashes
    from hashlib import sha1 as _sha1

_BUCKET_SCALE: Final = float(0xFFFFFFFFFFFFFFF)


def bucket_value(prefix: str, v: object) -> float:
    """The bucket in ``[0, 1)`` of attribute value ``v`` (0 if not a string or int)."""
    tv = type(v)
    text: str
    if tv is str:
        text = v  # type: ignore[assignment]
    elif tv is int:
        text = str(v)
    else:
        return 0.0
    digest = _sha1((prefix + text).encode()).digest()
    # The first 15 hex digits of the digest are its first 60 bits.
    return (int.from_bytes(digest[:8], "big") >> 4) / _BUCKET_SCALE


class Rollout(NamedTuple):
    """A rollout the generator writes inline (not an experiment).

    The context's part of kind ``kind`` is bucketed by its top-level
    attribute ``attribute`` with ``prefix``; the first of ``results`` whose
    cumulative weight in ``thresholds`` exceeds the bucket is served, the
    last one if none does. A context without the part is served
    ``missing``, and, unless it is None (the attribute is ``key``, always
    a string), one whose bucket is 0 (the attribute missing, or neither a
    string nor an integer) ``zero``: each equal to the result its bucket
    would serve, but another object, so that a guard does not count it as
    assigned by chance (``_model.Resolver``).
    """

    prefix: str
    kind: str
    attribute: str
    thresholds: tuple[float, ...]
    results: tuple[object, ...]
    missing: object
    zero: object | None


#: What the generated code calls, beside the back end's builtins.
_FRONT: Final = Front(
    "generated",
    {
        "_slow": slow_clause,
        "_bucket": bucket_value,
        "_semver": semver_key,
        "_NOTHING": NO_ATTRIBUTES,
        "_Code": Code,
    },
)
_PLACEHOLDER: Final = re.compile("\x00(\\d+)\x01")


class _Writer:
    """Collects the source lines and the operands of one flag.

    Every operand (a key, an attribute name, a clause value, a result to
    return, a clause's generic test) is an item of one tuple, the generated
    function's first argument ``o``, read as ``o[i]`` where it is used. The
    function is shared by every flag of the same shape, so what an
    evaluation reads of one flag's own is the flag, its tuple and the items
    it uses. (Once another program's work has evicted them from the CPU's
    caches, each 64-byte line read is a miss: the operands used to be
    argument defaults of a function per flag, and the call read that
    function and its defaults and wrote every default's reference count,
    used or not: ~2.5 more lines a flag, ~15% of an evaluation's misses.)
    A segment's or a rule's predicate is the function bound to its tuple
    (:meth:`bound`): what calls it passes no operands.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.operands: list[object] = []
        self.parts: dict[str, int] = {}  # context kind -> index of its part variable
        self.values: set[int] = set()  # the parts whose attributes a clause reads
        #: where the parts are read, in :attr:`lines` (after what reads none)
        self.parts_at = 0

    def operand(self, value: object) -> str:
        """A placeholder for ``value``, numbered in :meth:`function`."""
        self.operands.append(value)
        return f"\x00{len(self.operands) - 1}\x01"

    def key_in(self, kind: str, keys: frozenset[str]) -> str:
        """The test that the part of ``kind``'s key is in ``keys`` (a target list, a segment's).

        False for a context without the part. The user part's key is read
        where it is tested (``ctx._user_key``: ``None`` without one, in no
        list), with no part variable to set first.
        """
        if kind == "user":
            self.part(kind)
            return f"ctx._user_key in {self.operand(keys)}"
        p = self.part(kind)
        return f"{p} is not None and {p}._key in {self.operand(keys)}"

    def key(self, kind: str) -> str:
        """The key of the part of ``kind`` (one the context has)."""
        return "ctx._user_key" if kind == "user" else f"{self.part(kind)}._key"

    def missing(self, kind: str) -> str:
        """The test that the context has no part of ``kind``."""
        return "ctx._user is None" if kind == "user" else f"{self.part(kind)} is None"

    def part(self, kind: str) -> str:
        index = self.parts.get(kind)
        if index is None:
            index = self.parts[kind] = len(self.parts)
        return f"p{index}"

    def clause(self, c: InlineClause | Callable[..., bool]) -> str:
        if not isinstance(c, InlineClause):
            return f"{self.operand(c)}(ctx, st)"
        names = [self.operand(o) for o in c.operands]
        if c.op == "segmentMatch":
            not_ = "not " if c.negate else ""  # (both give a bool)
            return f"({not_}st.match_segments({names[0]}, ctx))"
        operator = OPERATORS[c.op]
        index = int(self.part(c.kind)[1:])
        self.values.add(index)
        values = f"a{index}"
        # The attribute is looked up in the guard's first type test; a value
        # the guard refuses is absent (no match, even negated) or the test's.
        lookup = f"type(v := {values}({self.operand(c.name)}))"
        guard = operator.guard.format(*names).replace("type(v)", lookup, 1)
        test = operator.template.format(*names)
        if c.negate:
            test = f"not ({test})"
        slow = f"v is not None and _slow({self.operand(c.test)}, v, {c.negate})"
        return f"(({test}) if {guard} else ({slow}))"

    def serve(
        self, indent: str, fixed: object, resolve: Callable[..., object] | Rollout
    ) -> None:
        lines = self.lines
        if fixed is not None:
            lines.append(f"{indent}return {self.operand(fixed)}")
        elif isinstance(resolve, Rollout):
            prefix, kind, attribute, thresholds, results, missing, zero = resolve
            index = int(self.part(kind)[1:])
            self.values.add(index)
            # A context without the kind is not bucketed (see Rollout);
            # else the attribute's value's bucket, read as a clause reads
            # it (a{index}).
            lines.append(f"{indent}if {self.missing(kind)}:")
            lines.append(f"{indent}    return {self.operand(missing)}")
            lines.append(
                f"{indent}b = _bucket({self.operand(prefix)}, "
                f"a{index}({self.operand(attribute)}))"
            )
            if zero is not None:
                lines.append(f"{indent}if b == 0.0:")
                lines.append(f"{indent}    return {self.operand(zero)}")
            for threshold, result in zip(thresholds, results, strict=False):
                lines.append(f"{indent}if b < {self.operand(threshold)}:")
                lines.append(f"{indent}    return {self.operand(result)}")
            lines.append(f"{indent}return {self.operand(results[-1])}")
        else:
            lines.append(f"{indent}return {self.operand(resolve)}(ctx)")

    def function(self, name: str) -> tuple[FunctionType, tuple[object, ...]]:
        """``name(o, ctx, st)``, shared by every flag of this shape, and ``o``."""
        head = ["    parts = ctx._parts"] if len(self.parts) > 1 else []
        parts = "parts" if head else "ctx._parts"
        for kind, index in self.parts.items():
            if kind == "multi":
                # No context has a part of kind "multi" (a multi-kind
                # context's own kind is "multi": it is not its own part), so
                # a clause on it finds no value and matches nothing, negated
                # or not, as LaunchDarkly's SDK has it.
                head.append(f"    p{index} = None")
                if index in self.values:
                    head.append(f"    a{index} = _NOTHING")
                continue
            if kind == "user":
                # Most flags': the context has it at hand (no operand, no
                # test of its kind, no dict), its key and its presence
                # read where they are tested (key_in, key, missing).
                if index in self.values:
                    head.append(f"    a{index} = ctx._user_get")
                continue
            # A single-kind context is its own part: no dict lookup for it.
            k = self.operand(kind)
            head.append(f"    p{index} = ctx if ctx._kind == {k} else {parts}.get({k})")
            if index in self.values:
                head.append(
                    f"    a{index} = _NOTHING if p{index} is None else p{index}._get"
                )
        operands = tuple(self.operands)
        source = _PLACEHOLDER.sub(
            lambda m: f"o[{m.group(1)}]",
            "\n".join(
                [
                    f"def {name}(o, ctx, st):",
                    *self.lines[: self.parts_at],
                    *head,
                    *self.lines[self.parts_at :],
                ]
            ),
        )
        return generate(_FRONT, [source]), operands

    def bound(self, name: str) -> Callable[[Context, Any], bool]:
        """``name(ctx, st)``: :meth:`function` bound to the operands."""
        return MethodType(*self.function(name))


class Prerequisite(Protocol):
    """What the generated code reads of a prerequisite (``_model.Prerequisite``)."""

    @property
    def key(self) -> str:
        """The prerequisite flag's key."""
        ...

    @property
    def variation(self) -> int:
        """The variation it must serve."""
        ...

    @property
    def failed(self) -> object:
        """The result when it does not."""
        ...


def build_runner(
    prerequisites: tuple[Prerequisite, ...],
    targets: tuple[tuple[str, Mapping[str, object]], ...],
    rules: Sequence[
        tuple[
            Sequence[InlineClause | Callable[..., bool]],
            object,
            Callable[..., object] | Rollout,
        ]
    ],
    fallthrough: tuple[object, Callable[..., object] | Rollout],
) -> tuple[Runner, tuple[object, ...]] | None:
    """The generated function for a flag and its operands, or ``None`` if too big.

    The flag is evaluated by ``run(operands, context, state)`` (its
    :class:`Code`).

    ``rules`` holds, per rule, its clauses, its fixed result (or ``None``) and
    its resolve function, or the :class:`Rollout` to write inline;
    ``fallthrough`` the same pair.
    """
    if sum(len(clauses) for clauses, _, _ in rules) > MAX_CLAUSES:
        return None
    w = _Writer()
    body = w.lines
    if prerequisites:
        # The state's method on the careful path (cycles, recording) and in
        # all-flags state (results known); else each prerequisite inline, as
        # Matcher.prerequisites_failed does it.
        every = w.operand(prerequisites)
        body.append("    if not st.inline_prerequisites:")
        body.append(f"        r = st.prerequisites_failed({every}, ctx)")
        body.append("        if r is not None:")
        body.append("            return r")
        body.append("    else:")
        for prereq in prerequisites:
            key = w.operand(prereq.key)
            failed = w.operand(prereq.failed)
            variation = w.operand(prereq.variation)
            # Through the prerequisite's head in st.heads, where the
            # client's fast path has most often just put it. A constant flag
            # (its head is its result) or one that is not plain (malformed,
            # missing, a chain) goes to the method.
            body.append("        try:")
            body.append(f"            h = st.heads[{key}]")
            body.append("        except KeyError:")
            body.append(f"            h = st.prerequisite_head({key})")
            one = every if len(prerequisites) == 1 else w.operand((prereq,))
            # (its run read first: see Code)
            body.append("        if type(h) is _Code and h.plain:")
            body.append("            run = h.run")
            body.append(
                f"            if run(h.operands, ctx, st).variation_index != {variation}:"
            )
            body.append(f"                return {failed}")
            body.append("        else:")
            body.append(f"            r = st.prerequisites_failed({one}, ctx)")
            body.append("            if r is not None:")
            body.append("                return r")
    # (the parts are read past the prerequisites: a failed one reads none)
    w.parts_at = len(body)
    for kind, lookup in targets:
        # Most contexts are in no target list: one membership test for them,
        # in a set (it keeps each key's hash beside it: no key read to
        # compare, as a dict of strings must).
        body.append(f"    if {w.key_in(kind, frozenset(lookup))}:")
        body.append(f"        return {w.operand(lookup)}[{w.key(kind)}]")
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
    return w.bound("match")


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
                body.append(f"    if {w.key_in(kind, keys)}:")
                body.append(f"        return {answer}")
    for clauses, threshold, bucket in rules:
        test = " and ".join(w.clause(c) for c in clauses) or "True"
        if threshold is not None:
            test = f"{test} and {w.operand(bucket)}(ctx) < {w.operand(threshold)}"
        body.append(f"    if {test}:")
        body.append("        return True")
    body.append("    return False")
    return w.bound("contains")
