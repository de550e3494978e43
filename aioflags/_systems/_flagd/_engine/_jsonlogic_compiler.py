"""JsonLogic's compiler: a flagd rule's nodes written as Python source over operands.

The front end of :mod:`._jsonlogic`: :class:`Compiler` walks a rule and
writes each node's source, every literal an operand (``o[0]``, ``o[1]``...),
the common forms inline and the rest a call of a :mod:`._operators` helper;
the special forms (``if``, ``and``/``or``, ``var``, ``missing``, the list
operators, ``fractional``, ``sem_ver``) are functions of the compiler, one
per operator (:data:`_SPECIAL`). :func:`._jsonlogic.build_targeting` drives
it and hands the source to the back end.

Any depth and any width compile, in time linear in the rule's size, and
Python's recursion limit is left as it is: a subtree past :data:`_MAX_DEPTH`
becomes a function of its own, compiled from a work list (no recursion
through it); an ``if`` in an ``if``'s else is read as one flat chain; an
``and``/``or``/``if`` of more than :data:`WIDTH` operands becomes a tree
of functions :data:`WIDTH` wide, as deep as the log of its width (so is
an evaluation's recursion: the depth over :data:`_MAX_DEPTH`, plus that).
"""

from __future__ import annotations

from functools import partial
from itertools import count
from typing import TYPE_CHECKING, Final, NamedTuple, cast

from . import _fractional as frac
from . import _operators as ops

if TYPE_CHECKING:
    from collections.abc import Callable

    from aioflags._core._json import JSONValue

__all__ = [
    "ROOT",
    "WIDTH",
    "Compiler",
    "Expr",
    "FractionalForm",
    "RulePath",
    "TargetingError",
    "args_of",
    "fractional_form",
    "if_items",
    "is_constant",
    "is_operator",
]


class TargetingError(Exception):
    """A rule flagd cannot apply (unknown operator, malformed operator form flagd refuses).

    The flag evaluates to ``PARSE_ERROR``. ``str(exc)`` says what and where,
    e.g. ``"targeting: if[1]: unknown operator 'foo'"``.
    """


#: The pip command that brings what ``fractional`` needs (MurmurHash3).
EXTRA: Final = "pip install 'aioflags[flagd]'"

#: Past this nesting, a subtree becomes a function of its own: CPython's
#: parser refuses expressions nested ~200 parentheses deep. The subtree is
#: compiled after the rest (``Compiler.pending``), so the compiler's own
#: recursion is bounded by this too, however deep the rule.
_MAX_DEPTH: Final = 24
#: The most functions hoisted one inside another (an evaluation recurses
#: once a function): a rule nested deeper than ``_MAX_DEPTH`` times this
#: (4,800 levels) is refused, rather than exhaust Python's stack as it runs.
_MAX_HOISTS: Final = 200
#: Past this many operands, an ``and``/``or``/``if`` is cut into groups of
#: this many, each a function of its own (and the groups grouped again):
#: one function's source, locals and frame stay small however wide the rule.
WIDTH: Final = 32

#: Operators each helper implements with every argument evaluated first.
_CALLS: Final[dict[str, str]] = {
    "==": "_eq",
    "!=": "_ne",
    "===": "_seq",
    "!==": "_sne",
    "<": "_lt",
    "<=": "_le",
    ">": "_gt",
    ">=": "_ge",
    "!": "_not",
    "!!": "_bool",
    "+": "_add",
    "-": "_sub",
    "*": "_mul",
    "/": "_div",
    "%": "_mod",
    "in": "_in",
    "min": "_min",
    "max": "_max",
    "cat": "_cat",
    "substr": "_substr",
    "merge": "_merge",
    "log": "_log",
    "starts_with": "_starts",
    "ends_with": "_ends",
    "sem_ver": "_sem_ver",
}
#: Helpers whose result Python's truthiness reads as JsonLogic does (a
#: bool, None, a string, a list): tested without :func:`._operators.truthy`.
_SAFE_CALLS: Final = frozenset(
    {
        "==", "!=", "===", "!==", "<", "<=", ">", ">=", "!", "!!", "in",
        "cat", "substr", "merge", "starts_with", "ends_with", "sem_ver",
    }
)  # fmt: skip
_LISTS: Final = {
    "map": "_map",
    "filter": "_filter",
    "all": "_all",
    "some": "_some",
    "none": "_none",
}
_SAFE_LISTS: Final = frozenset({"map", "filter", "all", "some", "none"})
#: Comparison operators written inline against a constant number.
_COMPARE: Final = {
    "<": ("<", "_lt"),
    "<=": ("<=", "_le"),
    ">": (">", "_gt"),
    ">=": (">=", "_ge"),
}


class RulePath:
    """Where a node stands in the rule (``if[1]: ==[0]``), spelt out for a message only.

    A step and its parent: making one costs the same however deep the node
    (a string each would cost the depth: a rule's depth squared in all).
    """

    __slots__ = ("parent", "step")

    def __init__(self, parent: RulePath | None, step: str) -> None:
        self.parent = parent
        self.step = step

    def __getitem__(self, index: int) -> RulePath:
        """The path of argument ``index``."""
        return RulePath(self, f"[{index}]")

    def op(self, op: str) -> RulePath:
        """The path of operator ``op`` here."""
        return RulePath(self, f": {op}" if self else op)

    def __bool__(self) -> bool:
        return self.parent is not None or bool(self.step)

    def __str__(self) -> str:
        steps = []
        node: RulePath | None = self
        while node is not None:
            steps.append(node.step)
            node = node.parent
        return "".join(reversed(steps))


#: The path of the rule itself.
ROOT: Final = RulePath(None, "")


def if_items(
    args: list[JSONValue], where: RulePath
) -> list[tuple[JSONValue, RulePath]]:
    """An ``if``'s arguments with their paths, an ``if`` in its else spliced in.

    ``if(a, b, if(c, d, e))`` is ``if(a, b, c, d, e)``: the usual else-if
    chain written nested is read as one flat chain (no nesting to compile
    or to run, however long). Always an odd count: pairs, then the else.
    """
    items: list[tuple[JSONValue, RulePath]] = []
    while True:
        if len(args) % 2 == 0:
            args = [*args, None]
        items.extend((a, where[i]) for i, a in enumerate(args[:-1]))
        last, at = args[-1], where[len(args) - 1]
        if isinstance(last, dict) and len(last) == 1:
            op, inner = args_of(last)
            if op in ("if", "?:") and len(inner) > 1:
                args, where = inner, at.op(op)
                continue
        items.append((last, at))
        return items


def is_operator(node: JSONValue) -> bool:
    """Whether ``node`` is an operator: an object of one key."""
    return isinstance(node, dict) and len(node) == 1


def is_constant(node: JSONValue) -> bool:
    """Whether ``node`` evaluates to itself (no operator in it that runs).

    Iterative: a list nested however deep is walked without recursion.
    """
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif is_operator(item):
            return False
    return True


def args_of(node: dict[str, JSONValue]) -> tuple[str, list[JSONValue]]:
    """An operator's name and its arguments (a lone argument as a list of one)."""
    op, value = next(iter(node.items()))
    return op, value if isinstance(value, list) else [value]


class Expr:
    """A compiled subexpression: its source and whether Python's truthiness is JsonLogic's."""

    __slots__ = ("safe", "src")

    def __init__(self, src: str, safe: bool) -> None:
        self.src = src
        self.safe = safe


class Compiler:
    """The source and operands of one rule (as :mod:`._codegen`'s ``_Writer`` writes a flag's)."""

    def __init__(self, flag_key: str, version: int) -> None:
        self.flag_key = flag_key
        self.version = version
        self.operands: list[object] = []
        self.functions: list[str] = []  # the subtrees hoisted into functions
        #: hoisted subtrees still to compile: (index, node, scope, path, level)
        self.pending: list[tuple[int, JSONValue, str | None, RulePath, int]] = []
        self.level = 0  # how many hoisted functions the one compiled is in
        self.temps = count()
        self.scopes = count(1)
        self.attributes = False  # whether the top scope reads attributes (g)
        self.whole = False  # whether it reads the whole data (D)
        self.key_index: int | None = None
        self.hash_index: int | None = None

    # ------------------------------------------------------------ operands
    def operand(self, value: object) -> str:
        self.operands.append(value)
        return f"o[{len(self.operands) - 1}]"

    def flag(self) -> str:
        if self.key_index is None:
            self.operand(self.flag_key)
            self.key_index = len(self.operands) - 1
        return f"o[{self.key_index}]"

    def murmur(self, path: RulePath) -> str:
        if self.hash_index is None:
            try:
                import mmh3  # (the flagd extra's: only where a fractional is)
            except ImportError:
                raise TargetingError(
                    f"{path}: fractional needs MurmurHash3 (the mmh3 package): {EXTRA}"
                ) from None
            # (unsigned MurmurHash3 x86 32, seed 0: mmh3.hash(b, signed=False)'s)
            self.operand(mmh3.mmh3_32_uintdigest)
            self.hash_index = len(self.operands) - 1
        return f"o[{self.hash_index}]"

    def temp(self) -> str:
        return f"t{next(self.temps)}"

    # ----------------------------------------------------------- the scopes
    def data(self, scope: str | None) -> str:
        """The whole data of ``scope`` (the context's flagd data at the top).

        At the top it is made once an evaluation (``D``): the reference's
        data is one object, which ``==`` compares by identity.
        """
        if scope is None:
            self.whole = True
            return "D"
        return scope

    def targeting_key(self) -> str:
        return "(ctx._key or _tk(ctx))"

    # ------------------------------------------------------------- the tree
    def expr(
        self, node: JSONValue, scope: str | None, path: RulePath, depth: int
    ) -> Expr:
        if depth >= _MAX_DEPTH and (
            is_operator(node) or (isinstance(node, list) and not is_constant(node))
        ):
            return self.hoist(node, scope, path)
        if isinstance(node, list):
            if is_constant(node):
                return Expr(self.operand(node), True)
            items = [
                self.expr(item, scope, path[i], depth + 1).src
                for i, item in enumerate(node)
            ]
            return Expr(f"[{', '.join(items)}]", True)
        if not is_operator(node):
            if node is None or isinstance(node, bool):
                return Expr(repr(node), True)
            # a dict of 0 or 2+ keys is a value (its truthiness: always true)
            return Expr(self.operand(node), not isinstance(node, (dict, float)))
        op, args = args_of(cast("dict[str, JSONValue]", node))
        where = path.op(op)
        method = _SPECIAL.get(op)
        if method is not None:
            return method(self, args, scope, where, depth + 1)
        if op in _CALLS:
            return self.call(op, args, scope, where, depth + 1)
        at = f"targeting: {f'{path}: ' if path else ''}"
        name = cast("dict[str, JSONValue]", node)[op]
        if op == "$ref" and isinstance(name, str):
            # (left by the reader: what `aioflags validate` says of it too)
            raise TargetingError(
                f"{at}no evaluator is named {name!r} (a $ref inside an "
                "evaluator is not resolved either: flagd resolves one level)"
            )
        raise TargetingError(f"{at}unknown operator {op!r}")

    def each(
        self, args: list[JSONValue], scope: str | None, where: RulePath, depth: int
    ) -> list[str]:
        return [self.expr(a, scope, where[i], depth).src for i, a in enumerate(args)]

    def truth(self, e: Expr) -> str:
        return e.src if e.safe else f"_truthy({e.src})"

    def call(
        self,
        op: str,
        args: list[JSONValue],
        scope: str | None,
        where: RulePath,
        depth: int,
    ) -> Expr:
        inline = self.inline(op, args, scope, where, depth)
        if inline is not None:
            return inline
        srcs = self.each(args, scope, where, depth)
        return Expr(f"{_CALLS[op]}({', '.join(srcs)})", op in _SAFE_CALLS)

    def inline(
        self,
        op: str,
        args: list[JSONValue],
        scope: str | None,
        where: RulePath,
        depth: int,
    ) -> Expr | None:
        """The inline form of a call with a constant operand, or ``None``."""
        if len(args) == 1 and op in ("!", "!!"):
            e = self.expr(args[0], scope, where[0], depth)
            truth = self.truth(e)
            if op == "!":
                return Expr(f"(not {truth})", True)
            return Expr(truth if not e.safe else f"bool({truth})", True)
        if len(args) != 2:
            return None
        first, second = args
        if op in ("starts_with", "ends_with") and isinstance(second, str):
            a = self.expr(first, scope, where[0], depth).src
            t, c = self.temp(), self.operand(second)
            method = "startswith" if op == "starts_with" else "endswith"
            return Expr(
                f"({t}.{method}({c}) if type({t} := {a}) is str else None)", True
            )
        if op == "in":
            return self.in_(first, second, scope, where, depth)
        if op in ("==", "!=", "===", "!=="):
            if (
                is_operator(second)
                and not is_operator(first)
                and not isinstance(first, list)
            ):
                # (the constant first: the order of evaluation is unchanged)
                return self.equals(op, second, first, scope, where, depth, 1)
            return self.equals(op, first, second, scope, where, depth, 0)
        if op in _COMPARE and type(second) in (int, float):
            a = self.expr(first, scope, where[0], depth).src
            t, c = self.temp(), self.operand(second)
            symbol, helper = _COMPARE[op]
            return Expr(
                f"({t} {symbol} {c} if type({t} := {a}) is int or type({t}) is float "
                f"else {helper}({t}, {c}))",
                True,
            )
        return None

    def equals(
        self,
        op: str,
        node: JSONValue,
        constant: JSONValue,
        scope: str | None,
        where: RulePath,
        depth: int,
        at: int,
    ) -> Expr | None:
        kind = type(constant)
        if kind not in (str, int, float, bool) and constant is not None:
            return None
        a = self.expr(node, scope, where[at], depth).src
        negate = op in ("!=", "!==")
        if op in ("===", "!=="):
            if constant is None or kind is bool:
                return Expr(f"({a} is {'not ' if negate else ''}{constant!r})", True)
            c = self.operand(constant)
            if kind is str:
                return Expr(f"({a} {'!=' if negate else '=='} {c})", True)
            t = self.temp()
            test = f"(type({t} := {a}) is not bool and {t} == {c})"
            return Expr(f"(not {test})" if negate else test, True)
        if kind is bool or constant is None:
            return None
        c = self.operand(constant)
        t = self.temp()
        helper = "_ne" if negate else "_eq"
        pair = f"{c}, {t}" if at else f"{t}, {c}"
        same = (
            f"type({t} := {a}) is str"
            if kind is str
            else f"type({t} := {a}) is int or type({t}) is float"
        )
        return Expr(
            f"({t} {'!=' if negate else '=='} {c} if {same} else {helper}({pair}))",
            True,
        )

    def in_(
        self,
        needle: JSONValue,
        haystack: JSONValue,
        scope: str | None,
        where: RulePath,
        depth: int,
    ) -> Expr | None:
        if (
            isinstance(haystack, list)
            and haystack
            and all(type(h) is str for h in haystack)
        ):
            a = self.expr(needle, scope, where[0], depth).src
            t, members = self.temp(), self.operand(frozenset(haystack))
            return Expr(f"(type({t} := {a}) is str and {t} in {members})", True)
        if isinstance(haystack, str):
            a = self.expr(needle, scope, where[0], depth).src
            t, c = self.temp(), self.operand(haystack)
            return Expr(
                f"({t} in {c} if type({t} := {a}) is str else _in({t}, {c}))", True
            )
        return None

    def params(self, scope: str | None) -> str:
        """The parameters of a function hoisted in ``scope`` (as it is called)."""
        return "o, ctx, g, D" if scope is None else f"o, {scope}"

    def hoist(self, node: JSONValue, scope: str | None, path: RulePath) -> Expr:
        """``node`` as a function of its own, called where it stands.

        Compiled later (:meth:`finish`), so that the compiler's recursion
        stays bounded; its result is tested with ``_truthy`` (its kind is
        not known yet).
        """
        if self.level >= _MAX_HOISTS:
            raise TargetingError(
                f"targeting: nested deeper than {_MAX_DEPTH * _MAX_HOISTS} levels, "
                "aioflags' limit: write it flatter (docs/flagd.md, Limits)"
            )
        index = len(self.functions)
        self.functions.append("")  # (its place, kept in order)
        self.pending.append((index, node, scope, path, self.level + 1))
        return Expr(f"_f{index}({self.params(scope)})", False)

    def finish(self) -> None:
        """Compile the hoisted subtrees (each may hoist more), without recursion."""
        while self.pending:
            index, node, scope, path, self.level = self.pending.pop()
            e = self.expr(node, scope, path, 0)
            self.functions[index] = (
                f"def _f{index}({self.params(scope)}):\n    return {e.src}\n"
            )

    def grouped(self, parts: list[Expr], scope: str | None, op: str) -> list[Expr]:
        """``parts`` of an ``and``/``or`` as at most :data:`WIDTH` calls, grouped.

        JsonLogic's ``and`` and ``or`` are associative (each gives the
        first part that decides, else the last): a group's function gives
        the group's ``op``, and the groups are grouped again, as deep as
        the log of the width.
        """
        while len(parts) > WIDTH:
            parts = [
                self.function(self.chain(op, parts[at : at + WIDTH]), scope)
                for at in range(0, len(parts), WIDTH)
            ]
        return parts

    # ----------------------------------------------- chains and groups
    def if_chain(
        self, pairs: list[tuple[Expr, Expr]], last: str, safe: bool
    ) -> tuple[str, bool]:
        """``if`` over ``pairs`` (test, then), else ``last``: one flat expression."""
        pieces = []
        for test, then in pairs:
            pieces.append(f"({then.src}) if {self.truth(test)} else ")
            safe = safe and then.safe
        return f"({''.join(pieces)}{last})", safe

    def miss_chain(self, groups: list[Expr], last: str, safe: bool) -> tuple[str, bool]:
        """The first of ``groups`` that is not ``_MISS``, else ``last``."""
        t = self.temp()
        pieces = [f"{t} if ({t} := {g.src}) is not _MISS else " for g in groups]
        return f"({''.join(pieces)}{last})", safe and all(g.safe for g in groups)

    def if_groups(
        self, pairs: list[tuple[Expr, Expr]], scope: str | None
    ) -> list[Expr]:
        """Wide ``if`` pairs as at most :data:`WIDTH` calls, each giving its branch or ``_MISS``.

        A tree of functions, each :data:`WIDTH` wide: as deep as the log
        of the width, however many pairs.
        """
        groups = [
            self.function(self.if_chain(pairs[at : at + WIDTH], "_MISS", True), scope)
            for at in range(0, len(pairs), WIDTH)
        ]
        while len(groups) > WIDTH:
            groups = [
                self.function(
                    self.miss_chain(groups[at : at + WIDTH], "_MISS", True), scope
                )
                for at in range(0, len(groups), WIDTH)
            ]
        return groups

    def function(self, body: tuple[str, bool], scope: str | None) -> Expr:
        """A function returning ``body``'s source, and its call (of ``body``'s kind)."""
        index = len(self.functions)
        params = self.params(scope)
        self.functions.append(f"def _f{index}({params}):\n    return {body[0]}\n")
        return Expr(f"_f{index}({params})", body[1])

    def chain(self, op: str, parts: list[Expr]) -> tuple[str, bool]:
        """``parts`` joined by ``op`` (JsonLogic's), flat: no nesting however many.

        Python's ``and``/``or`` where every part but the last is safe;
        else each part is kept in one temporary, tested with ``_truthy``,
        and the chain gives the temporary.
        """
        if all(part.safe for part in parts[:-1]):
            return f"({f' {op} '.join(part.src for part in parts)})", parts[-1].safe
        t = self.temp()
        negate = "not " if op == "and" else ""
        tests = [
            f"{negate}{'' if part.safe else '_truthy'}({t} := {part.src})"
            for part in parts[:-1]
        ]
        last = f"({t} := {parts[-1].src}) is {t}"  # (true: the last part, kept)
        return f"(({' or '.join(tests)} or {last}) and {t})", False


# ---------------------------------------------------------- the special forms
# The operators that are not one helper's call: each a function of the
# compiler, the node's arguments, the scope, the node's path and its depth
# (as :data:`_SPECIAL` calls it).


def _if(
    c: Compiler, args: list[JSONValue], scope: str | None, where: RulePath, depth: int
) -> Expr:
    if not args:
        return Expr("None", True)
    if len(args) == 1:
        return c.expr(args[0], scope, where[0], depth)
    items = if_items(args, where)
    pairs = [
        (
            c.expr(items[i][0], scope, items[i][1], depth),
            c.expr(items[i + 1][0], scope, items[i + 1][1], depth),
        )
        for i in range(0, len(items) - 1, 2)
    ]
    last = c.expr(items[-1][0], scope, items[-1][1], depth)
    if len(pairs) <= WIDTH:
        return Expr(*c.if_chain(pairs, last.src, last.safe))
    groups = c.if_groups(pairs, scope)
    return Expr(*c.miss_chain(groups, last.src, last.safe))


def _and_or(
    op: str,
    c: Compiler,
    args: list[JSONValue],
    scope: str | None,
    where: RulePath,
    depth: int,
) -> Expr:
    if not args:
        return Expr("None", True)
    parts = [c.expr(a, scope, where[i], depth) for i, a in enumerate(args)]
    return Expr(*c.chain(op, c.grouped(parts, scope, op)))


def _var(
    c: Compiler, args: list[JSONValue], scope: str | None, where: RulePath, depth: int
) -> Expr:
    if len(args) > 2:
        # (the reference's var takes two: more is a TypeError there)
        c.each(args, scope, where, depth)
        return Expr(
            f"_fail({c.operand(f'targeting: {where}: more than 2 arguments')})",
            False,
        )
    key = args[0] if args else None
    default = c.expr(args[1], scope, where[1], depth) if len(args) > 1 else None
    d = default.src if default is not None else "None"
    if scope is not None or not isinstance(key, str) or key == "":
        k = c.expr(key, scope, where[0], depth).src
        return Expr(f"_var({c.data(scope)}, {k}, {d})", False)
    props = key.split(".")
    first, rest = props[0], props[1:]
    if first == "targetingKey":
        base = c.targeting_key()
    elif first == "$flagd":
        if rest and rest[0] == "flagKey":
            base, rest = c.flag(), rest[1:]
        elif rest and rest[0] == "timestamp":
            base, rest = "_now()", rest[1:]
        else:
            base = f"{c.data(scope)}[{c.operand(first)}]"
    else:
        c.attributes = True
        base = f"g({c.operand(first)})"
    if rest:
        return Expr(f"_walk({base}, {c.operand(tuple(rest))}, {d})", False)
    if default is None:
        return Expr(base, False)
    t = c.temp()
    return Expr(f"({t} if ({t} := {base}) is not None else {d})", False)


def _missing(
    op: str,
    c: Compiler,
    args: list[JSONValue],
    scope: str | None,
    where: RulePath,
    depth: int,
) -> Expr:
    srcs = [c.data(scope), *c.each(args, scope, where, depth)]
    return Expr(f"_{op}({', '.join(srcs)})", True)


def _over_list(
    op: str,
    c: Compiler,
    args: list[JSONValue],
    scope: str | None,
    where: RulePath,
    depth: int,
) -> Expr:
    empty = {
        "map": "[]",
        "filter": "[]",
        "all": "False",
        "some": "False",
        "none": "True",
        "reduce": "None",
    }
    if not args or (op != "map" and op != "reduce" and len(args) < 2):
        return Expr(empty[op], True)
    items = c.expr(args[0], scope, where[0], depth).src
    inner = f"d{next(c.scopes)}"
    body = c.expr(args[1], inner, where[1], depth).src if len(args) > 1 else "None"
    each = f"(lambda {inner}: {body})"
    if op == "reduce":
        initial = c.operand(args[2]) if len(args) > 2 else "None"
        return Expr(f"_reduce({items}, {each}, {initial})", False)
    return Expr(f"{_LISTS[op]}({items}, {each})", op in _SAFE_LISTS)


def _fractional(
    c: Compiler, args: list[JSONValue], scope: str | None, where: RulePath, depth: int
) -> Expr:
    hash_ = c.murmur(where)
    if not args:
        return Expr("None", True)
    v = c.version
    if scope is not None:
        srcs = c.each(args, scope, where, depth)
        return Expr(
            f"_fractional_data({hash_}, {scope}, {v}, {', '.join(srcs)})", False
        )
    first = args[0]
    if is_constant(args) and isinstance(first, list):
        # every entry known: weighed now; bucketed by the targeting key
        fractions = frac.fractions_of(args, v)
        prefix = frac.fractional_prefix(c.flag_key, v)
        if fractions is None or prefix is None:
            return Expr("None", True)
        return Expr(
            f"_fractional_key{'' if v == 3 else '2'}({c.operand(prefix)}, {c.targeting_key()}, "
            f"{c.operand(fractions)}, {hash_})",
            False,
        )
    if not isinstance(first, list) and is_constant(args[1:]):
        fractions = frac.fractions_of(args[1:], v)
        value = c.expr(first, scope, where[0], depth).src
        general = f"_fractional({hash_}, {c.flag()}, {c.targeting_key()}, {v}, {{t}}, *{c.operand(tuple(args[1:]))})"
        if fractions is None:
            return Expr(general.format(t=value), False)
        t = c.temp()
        usable = (
            f"type({t} := {value}) is not list and {t} is not None"
            if v == 3
            else f"type({t} := {value}) is str"
        )
        return Expr(
            f"(_fractional_by{'' if v == 3 else '2'}({t}, {c.operand(fractions)}, {hash_}) if {usable} else {general.format(t=t)})",
            False,
        )
    srcs = c.each(args, scope, where, depth)
    return Expr(
        f"_fractional({hash_}, {c.flag()}, {c.targeting_key()}, {v}, {', '.join(srcs)})",
        False,
    )


class FractionalForm(NamedTuple):
    """What a ``fractional`` at the rule's top scope can serve, as it compiles (:func:`fractional_form`)."""

    #: whether it can give a variant's name at all (flagd refuses its
    #: variants, or it has none: it always gives null)
    serves: bool
    #: its variants weighed, when its entries are constant; None: its
    #: weights are computed per evaluation
    fractions: frac.Fractions | None


def fractional_form(c: Compiler, args: list[JSONValue]) -> FractionalForm:
    """What ``fractional`` with ``args`` serves, as :func:`_fractional` writes it at the top scope."""
    if not args:
        return FractionalForm(False, None)
    v = c.version
    first = args[0]
    if is_constant(args) and isinstance(first, list):
        fractions = frac.fractions_of(args, v)
        prefix = frac.fractional_prefix(c.flag_key, v)
        return FractionalForm(fractions is not None and prefix is not None, fractions)
    if not isinstance(first, list) and is_constant(args[1:]):
        # (entries flagd refuses: the general form refuses them too)
        fractions = frac.fractions_of(args[1:], v)
        return FractionalForm(fractions is not None, fractions)
    return FractionalForm(True, None)


def _sem_ver(
    c: Compiler, args: list[JSONValue], scope: str | None, where: RulePath, depth: int
) -> Expr:
    if len(args) == 3 and isinstance(args[1], str) and is_constant(args[2]):
        test = ops.semver_test(args[1])
        target = ops.version_of(args[2])
        if test is not None and target is not None:
            a = c.expr(args[0], scope, where[0], depth).src
            return Expr(
                f"_sem_ver_to({a}, {c.operand(test)}, {c.operand(target)})",
                True,
            )
    return c.call("sem_ver", args, scope, where, depth)


#: The special forms by operator (every other known operator is a :data:`_CALLS` helper).
_SPECIAL: Final[
    dict[str, Callable[[Compiler, list[JSONValue], str | None, RulePath, int], Expr]]
] = {
    "if": _if,
    "?:": _if,
    "and": partial(_and_or, "and"),
    "or": partial(_and_or, "or"),
    "var": _var,
    "missing": partial(_missing, "missing"),
    "missing_some": partial(_missing, "missing_some"),
    "fractional": _fractional,
    "sem_ver": _sem_ver,
    **{
        op: partial(_over_list, op)
        for op in ("map", "filter", "reduce", "all", "some", "none")
    },
}
