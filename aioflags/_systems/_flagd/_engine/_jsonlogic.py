"""flagd targeting (JsonLogic) compiled to Python, once per shape of rule.

A flagd flag's ``targeting`` is a JsonLogic rule. :func:`build_targeting`
turns it into one generated function, as :mod:`._codegen` does for
LaunchDarkly flags: the common forms are written inline (``if``, ``and``,
``or``, ``!``, ``==``/``===`` and their negations against a constant, ``in``
a literal list or string, a literal ``var`` path, ``starts_with`` and
``ends_with`` against a constant, the comparisons with a constant number),
the rest call the helpers of :mod:`._operators` (a real function each).

The generated source holds fixed fragments and operand indices only: every
string, number, ``var`` path, list and object of the rule is an item of the
operand tuple the function is called with, read as ``o[0]``, ``o[1]``...
Two rules of the same shape (the same operators in the same places, the same
literal kinds) have the same source, compiled once and shared; flag data
can never become code. This module is the generator's front end for
JsonLogic: it drives :mod:`._jsonlogic_compiler` (the rule's nodes to
source) and :mod:`._generate`, its back end, compiles the source (as it
does :mod:`._codegen`'s).

Any depth and any width compile, in time linear in the rule's size, and
Python's recursion limit is left as it is (:mod:`._jsonlogic_compiler`
says how).

The semantics are flagd's Python provider's (see :mod:`._operators`), with
one choice of flagd's own: an operator the rule names that flagd's schema
does not know is a :class:`TargetingError` when the rule is compiled (the
flag evaluates to ``PARSE_ERROR``), wherever it stands; the reference
raises only when an evaluation reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from aioflags._evaluation._generate import Front, generate

from . import _fractional as frac
from . import _jsonlogic_compiler as _jc
from . import _operators as ops
from ._jsonlogic_compiler import (
    ROOT,
    Compiler,
    Expr,
    TargetingError,
    args_of,
    fractional_form,
    if_items,
    is_constant,
    is_operator,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._context import Context

    from ._jsonlogic_compiler import FractionalForm, RulePath

__all__ = [
    "Choice",
    "Targeting",
    "TargetingError",
    "build_targeting",
    "constant_run",
    "flagd_data",
]

flagd_data = ops.flagd_data

#: ``run(operands, context, state)``: the rule's JSON result.
Targeting = Callable[[Any, "Context", Any], "JSONValue"]


class _Miss:
    """What a group of a wide ``if`` gives when none of its tests holds."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "_MISS"


_MISS: Final = _Miss()

#: How deep in ``if``s a branch's ``fractional`` gets results of its own
#: (:func:`_returned`); past it, it serves the flag's (it is not counted).
_MAX_BRANCH_DEPTH: Final = 16

#: What the generated code calls, beside the back end's builtins.
_FRONT: Final = Front(
    "flagd targeting",
    {
        "_truthy": ops.truthy,
        "_eq": ops.loose_equals,
        "_ne": ops.not_loose_equals,
        "_seq": ops.strict_equals,
        "_sne": ops.not_strict_equals,
        "_lt": ops.less,
        "_le": ops.less_equal,
        "_gt": ops.greater,
        "_ge": ops.greater_equal,
        "_not": ops.not_,
        "_bool": ops.bool_,
        "_add": ops.add,
        "_sub": ops.subtract,
        "_mul": ops.multiply,
        "_div": ops.divide,
        "_mod": ops.modulo,
        "_in": ops.in_,
        "_min": ops.minimum,
        "_max": ops.maximum,
        "_cat": ops.cat,
        "_substr": ops.substr,
        "_merge": ops.merge,
        "_log": ops.log,
        "_starts": ops.starts_with,
        "_ends": ops.ends_with,
        "_sem_ver": ops.sem_ver,
        "_sem_ver_to": ops.sem_ver_to,
        "_var": ops.var,
        "_walk": ops.walk,
        "_missing": ops.missing,
        "_missing_some": ops.missing_some,
        "_map": ops.map_,
        "_filter": ops.filter_,
        "_reduce": ops.reduce_,
        "_all": ops.all_,
        "_some": ops.some,
        "_none": ops.none,
        "_data": ops.flagd_data,
        "_attributes": ops.attributes,
        "_tk": ops.targeting_key,
        "_now": ops.now,
        "_fractional": frac.fractional,
        "_fractional_data": frac.fractional_data,
        "_fractional_key": frac.fractional_key,
        "_fractional_by": frac.fractional_by,
        "_fractional_by2": frac.fractional_by2,
        "_fractional_key2": frac.fractional_key2,
        "_fail": ops.fail,
        "_RuleError": ops.RuleError,
        "_MISS": _MISS,
    },
)


class Choice(Protocol):
    """What a rule's value chooses: the flag model's results, by what a rule gives.

    Given to :func:`build_targeting`, it makes the generated code return
    the flag's result itself: a branch whose value is written in the rule
    (a variant's name, ``null``) returns the result chosen when the rule is
    compiled; a computed one looks a string up in :attr:`by_name` (else
    :attr:`general`) and hands anything else to :meth:`result_of`.
    """

    @property
    def by_name(self) -> Mapping[str, object]:
        """The result of each name a rule may give."""
        ...

    @property
    def general(self) -> object:
        """The result of a name no variant has, and of a rule that fails as it runs."""
        ...

    def result_of(self, value: JSONValue) -> object:
        """The result of any value a rule gives."""
        ...

    def randomized(self, form: FractionalForm, where: str) -> Choice:
        """The choice of a ``fractional`` that is a branch's value (``form``, at ``where``).

        Its own results (equal to this choice's, other objects), which
        only that fractional serves: a guard counts them (``Split``).
        """
        ...


def constant_run(o: Any, ctx: Context, st: Any) -> JSONValue:
    """The run of a rule that is a value (``"on"``, ``true``...): the value.

    :func:`build_targeting` gives it, with the value as its one operand,
    for such a rule: what is run is known to be constant by this run.
    """
    return o[0]


def build_targeting(
    rule: JSONValue,
    flag_key: str,
    *,
    fractional: int = 3,
    choose: Choice | None = None,
    static: dict[str, JSONValue] | None = None,
) -> tuple[Targeting, tuple[object, ...]]:
    """``(run, operands)``: ``run(operands, context, state)`` gives the rule's JSON result.

    ``fractional`` is the bucketing version (3, or 2 for fleets whose other
    evaluators still use it). ``state`` is passed through, unused. A rule
    that is not an operator (``"on"``, ``true``, an object of several keys)
    is its own result. With ``choose``, ``run`` gives what the rule's value
    chooses instead (:class:`Choice`), and a rule that fails as it runs
    (:class:`~._operators.RuleError`) gives ``choose.general``. ``static``:
    flagd's static context (a sync server's ``sync_context``), which the
    rule sees under the evaluation context's own attributes.

    Raises:
        TargetingError: an operator flagd does not know, or ``fractional``
            without MurmurHash3 installed.
    """
    if fractional not in (2, 3):
        raise ValueError(f"fractional must be 2 or 3, not {fractional!r}")
    if not is_operator(rule):
        return constant_run, (rule if choose is None else choose.result_of(rule),)
    try:
        return _build(rule, flag_key, fractional, choose, static)
    except RecursionError:
        raise TargetingError("targeting: nested too deeply to compile") from None


def _chooses_by_chance(node: JSONValue) -> bool:
    """Whether ``node`` is a ``fractional``, or an ``if`` with one among its branches (however nested)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if not is_operator(item):
            continue
        op, args = args_of(cast("dict[str, JSONValue]", item))
        if op == "fractional":
            return True
        if op in ("if", "?:") and len(args) > 1:
            stack.extend(args[at] for at in range(1, len(args), 2))
            if len(args) % 2 == 1:
                stack.append(args[-1])
    return False


def _returned(
    c: Compiler, node: JSONValue, path: RulePath, depth: int, choose: Choice | None
) -> str:
    """The source of what the run returns for a branch of ``node``'s value.

    A ``fractional`` that is a branch's value (the rule, an ``if``'s
    branch, however nested in ``if``s) returns results of its own
    (:meth:`Choice.randomized`): a guard counts what it serves.
    """
    if choose is None:
        return c.expr(node, None, path, depth).src
    if is_constant(node):  # written in the rule: chosen now
        return c.operand(choose.result_of(node))
    if depth < _MAX_BRANCH_DEPTH and _chooses_by_chance(node):
        op, args = args_of(cast("dict[str, JSONValue]", node))
        if op == "fractional":
            where = path.op(op)
            choose = choose.randomized(fractional_form(c, args), f"targeting: {where}")
        else:
            items = if_items(args, path.op(op))
            if len(items) <= 2 * _jc.WIDTH:  # (a wider one: see Compiler.if_groups)
                pairs = [
                    (
                        c.expr(items[i][0], None, items[i][1], depth + 1),
                        Expr(
                            _returned(c, *items[i + 1], depth + 1, choose),
                            True,
                        ),
                    )
                    for i in range(0, len(items) - 1, 2)
                ]
                last = _returned(c, *items[-1], depth + 1, choose)
                return c.if_chain(pairs, last, True)[0]
    src = c.expr(node, None, path, depth).src
    t = c.temp()
    return (
        f"{c.operand(choose.by_name)}.get({t}, {c.operand(choose.general)}) "
        f"if type({t} := {src}) is str else {c.operand(choose.result_of)}({t})"
    )


def _build(
    rule: JSONValue,
    flag_key: str,
    fractional: int,
    choose: Choice | None,
    static: dict[str, JSONValue] | None,
) -> tuple[Targeting, tuple[object, ...]]:
    c = Compiler(flag_key, fractional)
    top = rule
    lines: list[str] = []
    op, args = args_of(cast("dict[str, JSONValue]", top))
    if op in ("if", "?:") and len(args) > 1:
        # the usual rule: an if chain, written as statements (no nesting)
        items = if_items(args, ROOT.op(op))
        pairs = [
            (
                c.expr(items[i][0], None, items[i][1], 1),
                Expr(_returned(c, items[i + 1][0], items[i + 1][1], 1, choose), True),
            )
            for i in range(0, len(items) - 1, 2)
        ]
        last = _returned(c, items[-1][0], items[-1][1], 1, choose)
        if len(pairs) > _jc.WIDTH:  # (wide: in groups, see Compiler.if_groups)
            for group in c.if_groups(pairs, None):
                lines.append(f"    if (r := {group.src}) is not _MISS:")
                lines.append("        return r")
        else:
            for test, then in pairs:
                lines.append(f"    if {c.truth(test)}:")
                lines.append(f"        return {then.src}")
        lines.append(f"    return {last}")
    else:
        lines.append(f"    return {_returned(c, top, ROOT, 0, choose)}")
    c.finish()
    if choose is not None:
        # (no cost in the common case: CPython's try is free until it raises)
        general = c.operand(choose.general)
        lines = [
            "    try:",
            *(f"    {line}" for line in lines),
            "    except _RuleError:",
            f"        return {general}",
        ]
    head = []
    hoisted = bool(c.functions)  # (they take g and D: both defined)
    if c.attributes and static:
        head.append(f"    g = _attributes(ctx, {c.flag()}, {c.operand(static)})")
    elif c.attributes:
        head.append(
            f"    g = ctx._get if ctx._kind != 'multi' else _attributes(ctx, {c.flag()})"
        )
    elif hoisted:
        head.append("    g = None")
    if c.whole and static:
        head.append(f"    D = _data(ctx, {c.flag()}, {c.operand(static)})")
    elif c.whole:
        head.append(f"    D = _data(ctx, {c.flag()})")
    elif hoisted:
        head.append("    D = None")
    run = "\n".join(["def run(o, ctx, st):", *head, *lines]) + "\n"
    return cast("Targeting", generate(_FRONT, [*c.functions, run])), tuple(c.operands)
