"""The first pass of ``aioflags cleanup``: the flag's sites in a module, and what may go with them.

:class:`Finder` walks the module once: the key's constants (defined there,
or imported from a module that defines one), each evaluation of the key
(a site to rewrite, or one to leave and why), and the key used as data.
:func:`variables` and :func:`receivers` find the local variables that
hold a site's value or the receiver of sites only (their assignments may
go with them). The second pass, ``_cleanup_fold.py``, rewrites.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

import libcst as cst
import libcst.matchers as m
from libcst.helpers import get_full_name_for_node
from libcst.metadata import FunctionScope, GlobalScope, Scope, ScopeProvider

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from libcst.metadata import BaseAssignment

    from aioflags._core._json import JSONValue

__all__ = [
    "Finder",
    "Site",
    "literal_value",
    "pure",
    "python_literal",
    "receivers",
    "variables",
]

#: The evaluation methods, by the type of value each returns (None: any).
_METHODS: Final[dict[str, tuple[type, ...] | None]] = {
    "variation": None,
    "json_variation": None,
    "bool_variation": (bool,),
    "int_variation": (int,),
    "float_variation": (int, float),
    "string_variation": (str,),
}
_DETAILS: Final = frozenset(f"{m}_detail" for m in _METHODS)


def python_literal(value: JSONValue) -> str:
    """VALUE as Python source (double-quoted strings, as ruff format writes them)."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    items = (
        f"{json.dumps(k, ensure_ascii=False)}: {python_literal(v)}"
        for k, v in value.items()
    )
    return "{" + ", ".join(items) + "}"


def literal_value(node: cst.BaseExpression) -> tuple[bool, object]:
    """(True, its value) for a literal written in the source; (False, None) otherwise."""
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return True, {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, (cst.SimpleString, cst.Integer, cst.Float)):
        value = node.evaluated_value
        return value is not None, value
    if (
        isinstance(node, cst.UnaryOperation)
        and isinstance(node.operator, cst.Minus)
        and isinstance(node.expression, (cst.Integer, cst.Float))
    ):
        return True, -node.expression.evaluated_value
    return False, None


def _string(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def pure(node: cst.BaseExpression) -> bool:
    """True for an argument evaluating which has no side effect (names, literals, attributes)."""
    return m.matches(node, _PURE)


_PURELY: Final = m.MatchIfTrue(pure)
_PURE_ELEMENTS: Final = [m.ZeroOrMore(m.Element(_PURELY))]
_PURE: Final = (
    m.Name()
    | m.SimpleString()
    | m.Integer()
    | m.Float()
    | m.Attribute(value=_PURELY)
    | m.UnaryOperation(expression=_PURELY)
    | m.List(_PURE_ELEMENTS)
    | m.Tuple(_PURE_ELEMENTS)
    | m.Set(_PURE_ELEMENTS)
    | m.Dict([m.ZeroOrMore(m.DictElement(_PURELY, _PURELY))])
)


@dataclass(frozen=True)
class Site:
    """A call found in the first pass: a rewrite (``why`` None) or a reason to leave it."""

    call: cst.Call
    why: str | None


#: ``name = value``, ``name: T = value``: an assignment of one value to one name.
Assignment: TypeAlias = tuple[cst.Assign | cst.AnnAssign, cst.Name, cst.BaseExpression]

#: ``name = value``, ``name: T = value`` (an annotation alone too: no value)
_ONE_NAME: Final = m.Assign(targets=[m.AssignTarget(target=m.Name())]) | m.AnnAssign(
    target=m.Name()
)
_EVALUATIONS: Final = frozenset(_METHODS) | _DETAILS
_POSITIONAL: Final = m.Arg(keyword=None, star="")
#: ``R.variation(KEY, ...)`` and its kin, KEY positional
_EVALUATION: Final = m.Call(
    func=m.Attribute(attr=m.Name(m.MatchIfTrue(_EVALUATIONS.__contains__))),
    args=[_POSITIONAL, m.ZeroOrMore()],
)
#: ``R.name(ctx)``: another method, one positional argument (an accessor?)
_ONE_ARGUMENT: Final = m.Call(
    func=m.Attribute(attr=m.Name(m.MatchIfTrue(lambda n: n not in _EVALUATIONS))),
    args=[_POSITIONAL],
)
#: Where a call's value goes on as a value (an element, returned, yielded...):
#: in an async function, a coroutine handed to gather, a task list, a caller.
_PASSES_ON: Final = (
    m.Element()
    | m.DictElement()
    | m.Return()
    | m.Yield()
    | m.GeneratorExp()
    | m.ListComp()
    | m.SetComp()
    | m.DictComp()
)


class Finder(cst.CSTVisitor):
    """The first pass: the key's constants, the sites, and the key used as data."""

    METADATA_DEPENDENCIES = (ScopeProvider,)

    def __init__(
        self,
        key: str,
        value: JSONValue,
        imported: Mapping[str, frozenset[str]],
        accessors: frozenset[str],
        module: str,
        parents: Callable[[], Mapping[cst.CSTNode, cst.CSTNode]],
    ) -> None:
        super().__init__()
        self._module = module
        #: each node's parent (libcst's ParentNodeProvider), made when a site
        #: asks: most modules have none
        self._parents = parents
        #: the names assigned one value (``x = value``): the value
        self._bound: dict[cst.CSTNode, cst.BaseExpression] = {}
        #: whether the module imports Flags or BlockingFlags
        self._accessor_classes = False
        self.key = key
        self.value = value
        self.accessors = accessors
        #: the names of module constants holding the key, here or imported
        self.constants: set[str] = set()
        self._imported = imported
        self.sites: dict[cst.Call, Site] = {}
        self.data: list[tuple[cst.CSTNode, str]] = []
        #: the module's assignments of one value to one name
        self.assignments: list[Assignment] = []
        self._key_nodes: set[cst.CSTNode] = set()
        #: the names that define a constant (not uses of it)
        self._definitions: set[cst.CSTNode] = set()

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        source = self._absolute(node)
        names = {
            name
            for module, defined in self._imported.items()
            if source is not None and _same_module(source, module)
            for name in defined
        }
        for alias in node.names:
            if not isinstance(alias.name, cst.Name):
                continue
            if alias.name.value not in names:
                continue
            name = alias.name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self._definitions.add(name)
                name = alias.asname.name
            self.constants.add(name.value)
            self._definitions.add(name)

    def _absolute(self, node: cst.ImportFrom) -> str | None:
        """The module an import takes from, its dots resolved against this module's packages."""
        written = get_full_name_for_node(node.module) if node.module else ""
        if not node.relative:
            return written
        parts = self._module.split(".")[: -len(node.relative)]
        if not parts:
            return written or None  # (above the packages known: its own name)
        return ".".join([*parts, written] if written else parts)

    def visit_Module(self, node: cst.Module) -> None:
        found = m.findall(node, _ONE_NAME | m.ImportAlias())
        self.assignments = _assignments(found)
        self._bound = {name: value for _, name, value in self.assignments}
        self._accessor_classes = any(
            isinstance(alias, cst.ImportAlias)
            and alias.evaluated_name.rsplit(".", 1)[-1] in _ACCESSOR_CLASSES
            for alias in found
        )
        module = {  # (the module's own statements)
            small
            for line in node.body
            if isinstance(line, cst.SimpleStatementLine)
            for small in line.body
        }
        for assign, name, value in self.assignments:
            if assign in module and _string(value) == self.key:
                self.constants.add(name.value)
                self._definitions.add(name)
                self._key_nodes.add(value)

    def _parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self._parents().get(node)

    def _is_key(self, node: cst.BaseExpression) -> bool:
        if _string(node) == self.key:
            return True
        return (
            isinstance(node, cst.Name)
            and node.value in self.constants
            and self._the_constant(node)
        )

    def _the_constant(self, node: cst.Name) -> bool:
        """Whether ``node`` reads the module's constant: bound once there, not shadowed where it is read."""
        scope = self.get_metadata(ScopeProvider, node, None)
        while scope is not None and not isinstance(scope, GlobalScope):
            if scope.assignments[node.value]:
                return False  # (a local, a parameter, a loop variable)
            scope = scope.parent
        return scope is not None and len(scope.assignments[node.value]) == 1

    def visit_Call(self, node: cst.Call) -> None:
        # (not libcst's @m.visit: a MatcherDecoratableVisitor costs ~30 ms
        # to construct, one per file)
        if m.matches(node, _EVALUATION):
            self._evaluation(node)
        elif m.matches(node, _ONE_ARGUMENT):
            self._accessor(node)

    def _evaluation(self, node: cst.Call) -> None:
        """``R.variation(KEY, ...)`` and its kin: a site if KEY is the key."""
        method = cst.ensure_type(node.func, cst.Attribute).attr.value
        first = node.args[0].value
        if not self._is_key(first):
            if _string(first) is None and not isinstance(
                first, (cst.Integer, cst.Float)
            ):
                self.sites[node] = Site(
                    node,
                    f"{method}() with a dynamic key: cannot tell whether it "
                    f"evaluates {self.key!r}",
                )
            return
        self._key_nodes.add(first)
        if method in _DETAILS:
            self.sites[node] = Site(
                node, f"{method}(): the detail (reason, variation) has no constant"
            )
            return
        self.sites[node] = Site(node, self._why_not(node, method, node.args[1:]))

    def _accessor(self, node: cst.Call) -> None:
        """``R.name(ctx)``: a site if R is codegen's ``Flags``/``BlockingFlags``."""
        method = cst.ensure_type(node.func, cst.Attribute).attr.value
        if method not in self.accessors and (
            not method.endswith("_detail")
            or method[: -len("_detail")] not in self.accessors
        ):
            return  # (not the flag's accessor)
        known = self._accessor_receiver(cst.ensure_type(node.func, cst.Attribute).value)
        if known is False or (known is None and not self._accessor_classes):
            return  # (another object's method of that name)
        if known is None:
            self.sites[node] = Site(
                node,
                f"{method}(): cannot tell that its receiver is codegen's Flags "
                "or BlockingFlags (assign it from Flags(client), or annotate "
                "the parameter): rewrite it by hand",
            )
            return
        if method.endswith("_detail") and method not in self.accessors:
            self.sites[node] = Site(
                node, f"{method}(): the detail (reason, variation) has no constant"
            )
            return
        self.sites[node] = Site(node, self._why_not(node, None, node.args))

    def _accessor_receiver(self, receiver: cst.BaseExpression) -> bool | None:
        """Whether ``receiver`` is codegen's ``Flags``/``BlockingFlags`` (None: cannot tell).

        ``Flags(client)`` itself, or a name every binding of which is one
        (``flags = Flags(client)``, a parameter annotated ``Flags``).
        """
        if isinstance(receiver, cst.Call):
            return m.matches(receiver, _NEW_ACCESSORS)
        if not isinstance(receiver, cst.Name):
            return None
        scope = self.get_metadata(ScopeProvider, receiver, None)
        bindings = scope[receiver.value] if scope is not None else set()
        if not bindings:
            return None
        for binding in bindings:
            bound = getattr(binding, "node", None)
            if isinstance(bound, cst.Param):
                if not m.matches(bound, _ACCESSORS_PARAM):
                    return None
                continue
            value = self._bound.get(bound) if isinstance(bound, cst.Name) else None
            if value is None or not m.matches(value, _NEW_ACCESSORS):
                return None  # (something else, or maybe Flags by another way)
        return True

    def _around(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        """The nodes around ``node``, innermost first."""
        parent = self._parent(node)
        while parent is not None:
            yield parent
            parent = self._parent(parent)

    def _passed_on(self, node: cst.Call) -> bool:
        """Whether the call's value goes on as a value in an async function."""
        parent = self._parent(node)
        if isinstance(parent, cst.Arg):  # (a call's argument, not a class's base)
            if not isinstance(self._parent(parent), cst.Call):
                return False
        elif parent is None or not m.matches(parent, _PASSES_ON):
            return False
        function = next(
            (
                n
                for n in self._around(node)
                if isinstance(n, (cst.FunctionDef, cst.Lambda))
            ),
            None,
        )
        return (
            isinstance(function, cst.FunctionDef) and function.asynchronous is not None
        )

    def _in_fstring(self, node: cst.Call) -> str | None:
        """Why VALUE cannot be written at ``node``, inside an f-string (None: it can)."""
        debug = False  # (inside a `{...=}` of the innermost f-string)
        for around in self._around(node):
            if isinstance(around, cst.FormattedStringExpression):
                debug = debug or around.equal is not None
            elif isinstance(around, cst.FormattedString):
                return self._quoted(around.quote[0], debug)
        return None

    def _quoted(self, quote: str, debug: bool) -> str | None:
        if debug:
            return "inside an f-string's `{...=}`, whose text would change: rewrite it by hand"
        if isinstance(self.value, dict):
            return "a JSON object inside an f-string (its braces): rewrite it by hand"
        text = python_literal(self.value)
        if "\\" in text or (quote in text and (quote == "'" or "'" in text)):
            return "inside an f-string whose quotes the value needs: rewrite it by hand"
        return None

    def _why_not(
        self, node: cst.Call, method: str | None, rest: Sequence[cst.Arg]
    ) -> str | None:
        if self._passed_on(node):
            return (
                "passed on un-awaited in an async function (a coroutine, to "
                "create_task or gather?): rewrite it by hand"
            )
        in_fstring = self._in_fstring(node)
        if in_fstring is not None:
            return in_fstring
        for arg in rest:
            if arg.star or not pure(arg.value):
                return (
                    "another argument may have side effects (a call, an await...): "
                    "rewrite it by hand"
                )
        types = _METHODS.get(method or "variation")
        if types is not None and (
            not isinstance(self.value, types)
            or (isinstance(self.value, bool) and bool not in types)
        ):
            return (
                f"{method}() cannot return {json.dumps(self.value)}: "
                "it serves its default for a value of another type"
            )
        return None

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if node not in self._key_nodes and _string(node) == self.key:
            self.data.append((node, f"the key {self.key!r} used as data"))

    def visit_Name(self, node: cst.Name) -> None:
        if (
            node.value in self.constants
            and node not in self._key_nodes
            and node not in self._definitions
        ):
            self.data.append((node, f"the key constant {node.value} used as data"))


#: Calls that read a function's locals by name: its variables all stay.
_LOCALS_READERS: Final = frozenset({"locals", "vars", "eval", "exec"})


def _same_module(a: str, b: str) -> bool:
    """Whether two dotted names may be one module (one ends with the other, at a dot)."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _reads_its_locals(scope: FunctionScope) -> bool:
    """Whether the function calls ``locals()``, ``vars()``, ``eval`` or ``exec`` (a variable may be read by name)."""
    return any(scope.accesses[name] for name in _LOCALS_READERS)


def _assignments(nodes: Iterable[cst.CSTNode]) -> list[Assignment]:
    """Those of ``nodes`` that assign one value to one name, in order."""
    out: list[Assignment] = []
    for node in nodes:
        if isinstance(node, cst.Assign):
            target = node.targets[0].target
            out.append((node, cst.ensure_type(target, cst.Name), node.value))
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            out.append((node, cst.ensure_type(node.target, cst.Name), node.value))
    return out


def _once(
    assignments: Iterable[Assignment],
    scopes: Mapping[cst.CSTNode, Scope | None],
    wanted: Callable[[cst.BaseExpression], bool],
) -> Iterator[tuple[cst.CSTNode, cst.BaseExpression, BaseAssignment, Scope]]:
    """Those of ``assignments`` of a ``wanted`` value to a function's variable bound only there."""
    for assign, name, value in assignments:
        scope = scopes.get(assign)
        if not wanted(value) or not isinstance(scope, FunctionScope):
            continue
        bound = scope.assignments[name.value]
        if len(bound) == 1 and not _reads_its_locals(scope):
            yield assign, value, next(iter(bound)), scope


def variables(
    assignments: Iterable[Assignment],
    scopes: Mapping[cst.CSTNode, Scope | None],
    sites: dict[cst.Call, Site],
) -> dict[cst.CSTNode, list[cst.Name]]:
    """Local variables assigned once, from a site: their assignment, and their uses."""

    def from_site(value: cst.BaseExpression) -> bool:
        call = value.expression if isinstance(value, cst.Await) else value
        site = sites.get(call) if isinstance(call, cst.Call) else None
        return site is not None and site.why is None

    out: dict[cst.CSTNode, list[cst.Name]] = {}
    for assign, _, only, _ in _once(assignments, scopes, from_site):
        uses = [a.node for a in only.references]
        names = [use for use in uses if isinstance(use, cst.Name)]
        if getattr(only, "node", None) is not None and uses and names == uses:
            out[assign] = names
    return out


#: The generated accessors' classes: constructing one has no effect.
_ACCESSOR_CLASSES: Final = frozenset({"Flags", "BlockingFlags"})
_ACCESSOR_CLASS: Final = m.Name(m.MatchIfTrue(_ACCESSOR_CLASSES.__contains__))
#: ``Flags(...)``, ``BlockingFlags(...)``, ``module.Flags(...)``
_NEW_ACCESSORS: Final = m.Call(func=_ACCESSOR_CLASS | m.Attribute(attr=_ACCESSOR_CLASS))
#: A parameter annotated ``Flags`` (``"Flags"``, ``m.Flags``)
_ACCESSORS_PARAM: Final = m.Param(
    annotation=m.Annotation(
        _ACCESSOR_CLASS
        | m.Attribute(attr=_ACCESSOR_CLASS)
        | m.MatchIfTrue(
            lambda node: (_string(node) or "").rsplit(".", 1)[-1] in _ACCESSOR_CLASSES
        )
    )
)


def _makes_receiver(value: cst.BaseExpression, scope: Scope) -> bool:
    """Whether ``value`` makes a receiver with no effect: ``Flags(client)`` (imported), ``R.snapshot()``."""
    if not isinstance(value, cst.Call):
        return False
    func = value.func
    if isinstance(func, cst.Attribute):
        return func.attr.value == "snapshot" and not value.args and pure(func.value)
    if not isinstance(func, cst.Name) or func.value not in _ACCESSOR_CLASSES:
        return False
    if not all(
        arg.keyword is None and not arg.star and pure(arg.value) for arg in value.args
    ):
        return False
    defined = scope.globals.assignments[func.value]
    return bool(defined) and all(
        isinstance(getattr(a, "node", None), cst.ImportFrom) for a in defined
    )


def receivers(
    assignments: Iterable[Assignment],
    scopes: Mapping[cst.CSTNode, Scope | None],
    sites: dict[cst.Call, Site],
) -> set[cst.CSTNode]:
    """The assignments of local receivers that only sites rewritten use (``flags = Flags(client)``).

    Once the sites are constants, such a variable is never read: its
    assignment goes (only for a value made with no effect: the generated
    accessors' classes, imported, and ``snapshot()``).
    """
    used = {
        cst.ensure_type(site.call.func, cst.Attribute).value
        for site in sites.values()
        if site.why is None and m.matches(site.call.func, m.Attribute(value=m.Name()))
    }
    if not used:
        return set()
    return {
        assign
        for assign, value, only, scope in _once(
            assignments, scopes, lambda value: isinstance(value, cst.Call)
        )
        if only.references
        and all(access.node in used for access in only.references)
        and _makes_receiver(value, scope)
    }
