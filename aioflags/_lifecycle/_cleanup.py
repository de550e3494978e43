"""``aioflags cleanup``: remove a flag from code, on evidence, with libcst.

``cleanup FLAG --keep VALUE PATHS...`` rewrites the code that evaluates FLAG
as if it always answered VALUE (docs/lifecycle-tools.md):

- The sites: ``[await] R.variation(KEY, ...)`` and the typed methods
  (``bool_variation``...), on any receiver (the client, the blocking
  client, a ``FlagSnapshot``), KEY the key as a string or a module constant
  holding it (defined there, or imported from a module among the paths); and the generated accessors ``[await] R.name(ctx)``, ``name``
  the key as ``aioflags codegen`` names it.
- Each site (its ``await`` too) becomes the Python literal of VALUE, and
  what that makes dead folds: ``if``/``elif``/``else``, conditional
  expressions, ``and``/``or``/``not``, comparisons with a literal; a
  function's local variable assigned once from a site and used only where
  it folds away goes with it. Only what a site made constant folds: code
  that was constant before stays as it was.
- What it cannot prove safe it leaves as it is and lists (``file:line``,
  lines as they were before the rewrite, and why): a dynamic key, a
  ``*_detail`` evaluation, another argument with side effects, a value of
  another type than the method returns, the key used as data, a module
  ``codegen`` wrote.

It is a libcst codemod (:class:`FlagCleanup`, a
:class:`~libcst.codemod.CodemodCommand`): imports that only the code it
took out used go with it (libcst's ``RemoveImportsVisitor``). The evidence
is read first (``_evidence.py``); the files are found, read and written back
by ``_tree.py``; ``_cleanup_run.py`` drives the command.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import libcst as cst
from libcst.codemod import (
    CodemodCommand,
    CodemodContext,
    TransformFailure,
    TransformSuccess,
    transform_module,
)
from libcst.codemod.visitors import RemoveImportsVisitor
from libcst.helpers import get_full_name_for_node
from libcst.metadata import (
    FunctionScope,
    GlobalScope,
    PositionProvider,
    Scope,
    ScopeProvider,
)

from aioflags._lifecycle._codegen import HEADER, identifier
from aioflags._lifecycle._nesting import too_deep
from aioflags._lifecycle._pysource import literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from aioflags._core._json import JSONValue

__all__ = [
    "FileResult",
    "FlagCleanup",
    "Left",
    "accessor_names",
    "clean_source",
    "is_generated",
    "key_constants",
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
#: What ends a block: what follows it there is dead.
_TERMINAL: Final = (cst.Return, cst.Raise, cst.Continue, cst.Break)


@dataclass(frozen=True)
class Left:
    """A site or a use of the key left as it is, and why."""

    path: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.why}"


@dataclass
class FileResult:
    """One file's rewrite: its text before and after, and what was left."""

    path: Path
    before: bytes
    after: bytes
    rewritten: int = 0
    left: list[Left] = field(default_factory=list)
    note: str | None = None
    #: why the file could not be read, parsed or walked (it is left as it was)
    failed: str | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """The rewrite as a unified diff."""
        old = self.before.decode("utf-8", errors="replace")
        new = self.after.decode("utf-8", errors="replace")
        return "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=str(self.path),
                tofile=f"{self.path} (cleaned up)",
            )
        )


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8, a stray byte of a file name or an argument (a lone surrogate) as it was."""
    return text.encode("utf-8", "surrogateescape")


def accessor_names(key: str, generated: Iterable[bytes] = ()) -> frozenset[str]:
    """The names ``aioflags codegen`` may give the flag's accessor.

    Its name from the key (a keyword's gets ``_``), and the name the
    ``generated`` modules give it (``--name KEY=IDENT``): the method of
    their ``IDENT_KEY: Final = "KEY"`` constant. A name they give another
    flag is never this one's (``--name New-Checkout=...`` leaves
    ``new_checkout`` to ``new-checkout``).
    """
    base = identifier(key)
    names = {base, f"{base}_"}
    written = _utf8(literal(key).flat())
    for source in generated:
        for m in _KEY_CONSTANT.finditer(source):
            name = m.group(1).decode().lower()
            if m.group(2) == written:
                names.add(name)
            else:
                names.discard(name)
    return frozenset(names)


#: A generated module's key constant: its name, and the key's literal.
_KEY_CONSTANT: Final = re.compile(
    rb"^([A-Z][A-Z0-9_]*)_KEY: Final = \(?\s*(.+?)\s*\)?$", re.M
)


# ---------------------------------------------------------------- literals
def python_literal(value: JSONValue) -> str:
    """VALUE as Python source (double-quoted strings, as ruff format writes them)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
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


def _literal_value(node: cst.BaseExpression) -> tuple[bool, object]:
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


def _pure(node: cst.BaseExpression) -> bool:
    """True for an argument evaluating which has no side effect (names, literals, attributes)."""
    if isinstance(node, (cst.Name, cst.SimpleString, cst.Integer, cst.Float)):
        return True
    if isinstance(node, cst.Attribute):
        return _pure(node.value)
    if isinstance(node, cst.UnaryOperation):
        return _pure(node.expression)
    if isinstance(node, (cst.List, cst.Tuple, cst.Set)):
        return all(isinstance(e, cst.Element) and _pure(e.value) for e in node.elements)
    if isinstance(node, cst.Dict):
        return all(
            isinstance(e, cst.DictElement) and _pure(e.key) and _pure(e.value)
            for e in node.elements
        )
    return False


# ------------------------------------------------------------- the sites
@dataclass(frozen=True)
class _Site:
    """A call found in the first pass: a rewrite (``why`` None) or a reason to leave it."""

    call: cst.Call
    why: str | None


class _Finder(cst.CSTVisitor):
    """The first pass: the key's constants, the sites, and the key used as data."""

    def __init__(
        self,
        key: str,
        value: JSONValue,
        imported: Mapping[str, frozenset[str]],
        accessors: frozenset[str],
        module: str,
        scopes: Mapping[cst.CSTNode, Scope | None],
    ) -> None:
        super().__init__()
        self._module = module
        self._scopes = scopes
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
        self.sites: dict[cst.Call, _Site] = {}
        self.data: list[tuple[cst.CSTNode, str]] = []
        self._key_nodes: set[cst.CSTNode] = set()
        #: the names that define a constant (not uses of it)
        self._definitions: set[cst.CSTNode] = set()
        #: calls that are another call's argument, and whether each function
        #: around is async (an un-awaited call there may be a coroutine)
        self._passed: set[cst.CSTNode] = set()
        self._async: list[bool] = []
        #: the f-strings the walk is in: their quote, and whether in a `{...=}`
        self._fstrings: list[tuple[str, bool]] = []

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        source = self._absolute(node)
        names = {
            name
            for module, defined in self._imported.items()
            if source is not None and same_module(source, module)
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
        bound = _Bound()
        node.visit(bound)
        self._bound = bound.values
        self._accessor_classes = bound.accessor_classes
        for statement in node.body:
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1:
                    target, value = small.targets[0].target, small.value
                elif isinstance(small, cst.AnnAssign) and small.value is not None:
                    target, value = small.target, small.value
                else:
                    continue
                if isinstance(target, cst.Name) and _string(value) == self.key:
                    self.constants.add(target.value)
                    self._definitions.add(target)
                    self._key_nodes.add(value)

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
        scope = self._scopes.get(node)
        while scope is not None and not isinstance(scope, GlobalScope):
            if scope.assignments[node.value]:
                return False  # (a local, a parameter, a loop variable)
            scope = scope.parent
        return scope is not None and len(scope.assignments[node.value]) == 1

    def visit_Call(self, node: cst.Call) -> None:
        self._passed.update(
            arg.value for arg in node.args if isinstance(arg.value, cst.Call)
        )
        func = node.func
        if not isinstance(func, cst.Attribute):
            return
        method = func.attr.value
        args = node.args
        if method in _METHODS or method in _DETAILS:
            if not args or args[0].keyword is not None or args[0].star:
                return
            first = args[0].value
            if not self._is_key(first):
                if _string(first) is None and not isinstance(
                    first, (cst.Integer, cst.Float)
                ):
                    self.sites[node] = _Site(
                        node,
                        f"{method}() with a dynamic key: cannot tell whether it "
                        f"evaluates {self.key!r}",
                    )
                return
            self._key_nodes.add(first)
            if method in _DETAILS:
                self.sites[node] = _Site(
                    node, f"{method}(): the detail (reason, variation) has no constant"
                )
                return
            self.sites[node] = _Site(node, self._why_not(node, method, args[1:]))
        elif method in self.accessors or (
            method.endswith("_detail") and method[: -len("_detail")] in self.accessors
        ):
            if len(args) != 1 or args[0].keyword is not None or args[0].star:
                return
            known = self._accessor_receiver(func.value)
            if known is False or (known is None and not self._accessor_classes):
                return  # (another object's method of that name)
            if known is None:
                self.sites[node] = _Site(
                    node,
                    f"{method}(): cannot tell that its receiver is codegen's Flags "
                    "or BlockingFlags (assign it from Flags(client), or annotate "
                    "the parameter): rewrite it by hand",
                )
                return
            if method.endswith("_detail") and method not in self.accessors:
                self.sites[node] = _Site(
                    node, f"{method}(): the detail (reason, variation) has no constant"
                )
                return
            self.sites[node] = _Site(node, self._why_not(node, None, args))

    def _accessor_receiver(self, receiver: cst.BaseExpression) -> bool | None:
        """Whether ``receiver`` is codegen's ``Flags``/``BlockingFlags`` (None: cannot tell).

        ``Flags(client)`` itself, or a name every binding of which is one
        (``flags = Flags(client)``, a parameter annotated ``Flags``).
        """
        if isinstance(receiver, cst.Call):
            return _is_accessor_class(receiver.func)
        if not isinstance(receiver, cst.Name):
            return None
        scope = self._scopes.get(receiver)
        bindings = scope[receiver.value] if scope is not None else set()
        if not bindings:
            return None
        for binding in bindings:
            bound = getattr(binding, "node", None)
            if isinstance(bound, cst.Param):
                annotation = bound.annotation
                if annotation is None or not _names_accessor_class(
                    annotation.annotation
                ):
                    return None
                continue
            value = self._bound.get(bound) if isinstance(bound, cst.Name) else None
            if not isinstance(value, cst.Call) or not _is_accessor_class(value.func):
                return None  # (something else, or maybe Flags by another way)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._async.append(node.asynchronous is not None)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._async.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._async.append(False)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._async.pop()

    # (where an un-awaited call's value goes on as a value: in an async
    # function, a coroutine handed to gather, a task list, a caller)
    def _pass(self, *nodes: cst.BaseExpression | None) -> None:
        self._passed.update(node for node in nodes if isinstance(node, cst.Call))

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> None:
        self._pass(node.elt)

    def visit_ListComp(self, node: cst.ListComp) -> None:
        self._pass(node.elt)

    def visit_SetComp(self, node: cst.SetComp) -> None:
        self._pass(node.elt)

    def visit_DictComp(self, node: cst.DictComp) -> None:
        self._pass(node.key, node.value)

    def visit_Element(self, node: cst.Element) -> None:
        self._pass(node.value)

    def visit_DictElement(self, node: cst.DictElement) -> None:
        self._pass(node.key, node.value)

    def visit_Return(self, node: cst.Return) -> None:
        self._pass(node.value)

    def visit_Yield(self, node: cst.Yield) -> None:
        if not isinstance(node.value, cst.From):
            self._pass(node.value)

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        self._fstrings.append((node.quote[0], False))

    def leave_FormattedString(self, original_node: cst.FormattedString) -> None:
        self._fstrings.pop()

    def visit_FormattedStringExpression(
        self, node: cst.FormattedStringExpression
    ) -> None:
        quote, debug = self._fstrings[-1]
        self._fstrings.append((quote, debug or node.equal is not None))

    def leave_FormattedStringExpression(
        self, original_node: cst.FormattedStringExpression
    ) -> None:
        self._fstrings.pop()

    def _in_fstring(self) -> str | None:
        """Why VALUE cannot be written where the walk is, inside an f-string (None: it can)."""
        if not self._fstrings:
            return None
        quote, debug = self._fstrings[-1]
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
        if node in self._passed and self._async and self._async[-1]:
            return (
                "passed on un-awaited in an async function (a coroutine, to "
                "create_task or gather?): rewrite it by hand"
            )
        in_fstring = self._in_fstring()
        if in_fstring is not None:
            return in_fstring
        for arg in rest:
            if arg.star or not _pure(arg.value):
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


# ------------------------------------------------------------ the rewrite
class _Rewriter(cst.CSTTransformer):
    """The second pass: the sites made constant, and what that makes dead folded."""

    def __init__(
        self,
        value: JSONValue,
        sites: dict[cst.Call, _Site],
        substitute: dict[cst.Name, cst.CSTNode],
        removed: set[cst.CSTNode],
    ) -> None:
        super().__init__()
        self.value = value
        self.sites = sites
        #: a variable's uses -> its assignment: replaced by the value
        self.substitute = substitute
        #: the assignments of variables substituted: removed
        self.removed = removed
        #: the expressions made constant, with their value
        self.constant: dict[cst.CSTNode, object] = {}
        #: the uses substituted (to see whether each folded away)
        self.uses: dict[cst.CSTNode, cst.Name] = {}
        self.rewritten = 0
        self._elifs: set[cst.If] = set()
        #: the statements of a branch a fold kept, brought up a block
        self._inlined: set[cst.BaseStatement] = set()
        #: the quotes of the f-strings the walk is in
        self._quotes: list[str] = []
        #: the statements whose test stays with the flag's constant in it
        #: (``X and False`` where X may have effects)
        self.stuck: list[cst.CSTNode] = []
        #: the nodes of the tree read that a fold took out or replaced: the
        #: imports they used go where nothing else uses them
        self.dropped: list[cst.CSTNode] = []

    def _make(
        self, value: object, like: cst.BaseExpression, *, float_: bool = False
    ) -> cst.BaseExpression:
        text = python_literal(value)
        if float_ and isinstance(value, int) and not isinstance(value, bool):
            text = repr(float(value))
        if self._quotes and self._quotes[-1] in text:
            text = text.replace('"', "'")  # (the finder checked: _Finder._in_fstring)
        node = cst.parse_expression(text)
        if like.lpar:
            node = node.with_changes(lpar=like.lpar, rpar=like.rpar)
        self.constant[node] = value
        return node

    def _keep(
        self, node: cst.BaseExpression, original: cst.BaseExpression
    ) -> cst.BaseExpression:
        """``node`` in ``original``'s place: with its parentheses if it has none."""
        if original.lpar and not node.lpar:
            kept = node.with_changes(lpar=original.lpar, rpar=original.rpar)
            if node in self.constant:
                self.constant[kept] = self.constant[node]
            if node in self.uses:
                self.uses[kept] = self.uses[node]
            return kept
        return node

    # ------------------------------------------------------------ sites
    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        self._quotes.append(node.quote[0])

    def leave_FormattedString(
        self, original: cst.FormattedString, updated: cst.FormattedString
    ) -> cst.FormattedString:
        self._quotes.pop()
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        site = self.sites.get(original)
        if site is None or site.why is not None:
            return updated
        self.rewritten += 1
        self.dropped.append(original)
        func = original.func
        float_ = (
            isinstance(func, cst.Attribute) and func.attr.value == "float_variation"
        )
        return self._make(self.value, updated, float_=float_)

    def leave_Await(
        self, original: cst.Await, updated: cst.Await
    ) -> cst.BaseExpression:
        inner = updated.expression
        if inner in self.constant:
            node = inner.with_changes(lpar=updated.lpar, rpar=updated.rpar)
            self.constant[node] = self.constant[inner]
            return node
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if original in self.substitute:
            node = self._make(self.value, updated)
            self.uses[node] = original
            return node
        return updated

    # ------------------------------------------------------ expressions
    def _bracketed(self, node: cst.BaseExpression) -> cst.BaseExpression:
        """A constant in parentheses, where its own precedence would change the code."""
        if node.lpar:
            return node
        kept = node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        self.constant[kept] = self.constant[node]
        if node in self.uses:
            self.uses[kept] = self.uses[node]
        return kept

    def leave_Attribute(
        self, original: cst.Attribute, updated: cst.Attribute
    ) -> cst.BaseExpression:
        # (`3.bit_length()` does not parse, `-3 .real` is -(3 .real))
        value = updated.value
        if value in self.constant and isinstance(
            value, (cst.Integer, cst.UnaryOperation)
        ):
            return updated.with_changes(value=self._bracketed(value))
        return updated

    def leave_Subscript(
        self, original: cst.Subscript, updated: cst.Subscript
    ) -> cst.BaseExpression:
        value = updated.value
        if value in self.constant and isinstance(value, cst.UnaryOperation):
            return updated.with_changes(value=self._bracketed(value))
        return updated

    def leave_BinaryOperation(
        self, original: cst.BinaryOperation, updated: cst.BinaryOperation
    ) -> cst.BaseExpression:
        # (`-3 ** 2` is -(3 ** 2))
        left = updated.left
        if (
            isinstance(updated.operator, cst.Power)
            and left in self.constant
            and isinstance(left, cst.UnaryOperation)
        ):
            return updated.with_changes(left=self._bracketed(left))
        return updated

    def leave_UnaryOperation(
        self, original: cst.UnaryOperation, updated: cst.UnaryOperation
    ) -> cst.BaseExpression:
        if (
            isinstance(updated.operator, cst.Not)
            and updated.expression in self.constant
        ):
            self._fold(updated.expression)
            self.dropped.append(original)
            return self._make(not self.constant[updated.expression], updated)
        return updated

    def _fold(self, node: cst.CSTNode) -> None:
        """``node`` (made constant) folds away: its substituted uses are gone."""
        self.uses.pop(node, None)

    def leave_BooleanOperation(
        self, original: cst.BooleanOperation, updated: cst.BooleanOperation
    ) -> cst.BaseExpression:
        left = updated.left
        if left not in self.constant:
            return updated
        truthy = bool(self.constant[left])
        is_and = isinstance(updated.operator, cst.And)
        self.dropped.append(original)
        if truthy == is_and:  # `True and X`, `False or X`: X
            self._fold(left)
            kept = self._keep(updated.right, updated)
            known, literal = _literal_value(updated.right)
            if known:  # (a literal the flag's value chose: it folds on)
                self.constant[kept] = literal
            return kept
        return self._keep(left, updated)  # `False and X`, `True or X`: the left

    def leave_Comparison(
        self, original: cst.Comparison, updated: cst.Comparison
    ) -> cst.BaseExpression:
        if len(updated.comparisons) != 1:
            return updated
        target = updated.comparisons[0]
        a, b = updated.left, target.comparator
        if a in self.constant:
            mine, other = a, b
        elif b in self.constant:
            mine, other = b, a
        else:
            return updated
        known, literal = _literal_value(other)
        if not known:
            return updated
        value = self.constant[mine]
        op = target.operator
        result: bool
        if isinstance(op, cst.Equal):
            result = value == literal
        elif isinstance(op, cst.NotEqual):
            result = value != literal
        elif isinstance(op, (cst.Is, cst.IsNot)) and (
            literal is None or isinstance(literal, bool)
        ):
            result = (value is literal) == isinstance(op, cst.Is)
        else:
            return updated
        self._fold(mine)
        self.dropped.append(original)
        return self._make(result, updated)

    def leave_IfExp(
        self, original: cst.IfExp, updated: cst.IfExp
    ) -> cst.BaseExpression:
        test = self._test(updated.test, original)
        if test not in self.constant:
            return updated if test is updated.test else updated.with_changes(test=test)
        self._fold(test)
        self.dropped.append(original)
        chosen = updated.body if self.constant[test] else updated.orelse
        return self._keep(chosen, updated)

    def leave_CompFor(self, original: cst.CompFor, updated: cst.CompFor) -> cst.CompFor:
        """A comprehension's ``if <truthy>`` goes (an ``if <falsy>`` stays: the loop still runs)."""
        ifs = [i for i in updated.ifs if not self.constant.get(i.test)]
        for i in updated.ifs:
            if self.constant.get(i.test):
                self._fold(i.test)
                self.dropped.append(original)
        return (
            updated if len(ifs) == len(updated.ifs) else updated.with_changes(ifs=ifs)
        )

    # ------------------------------------------------------- statements
    def visit_If(self, node: cst.If) -> None:
        if isinstance(node.orelse, cst.If):
            self._elifs.add(node.orelse)

    def _test(
        self, test: cst.BaseExpression, statement: cst.CSTNode
    ) -> cst.BaseExpression:
        """A test (only its truth matters) with ``X and <truthy>``, ``X or <falsy>`` made ``X``.

        ``X and <falsy>`` and ``X or <truthy>`` are that constant when X is
        a name or an attribute (nothing to evaluate); else X may have
        effects: the test stays, and ``statement`` is listed as stuck.
        """
        if (
            not isinstance(test, cst.BooleanOperation)
            or test.right not in self.constant
        ):
            return test
        truthy = bool(self.constant[test.right])
        if truthy != isinstance(test.operator, cst.And):
            if not _pure(test.left):
                self.stuck.append(statement)
                return test
            self._fold(test.right)
            return self._make(truthy, test)
        self._fold(test.right)
        return self._keep(self._test(test.left, statement), test)

    def leave_While(
        self, original: cst.While, updated: cst.While
    ) -> (
        cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel
    ):
        test = self._test(updated.test, original)
        if test is updated.test:
            return updated
        self.dropped.append(original)
        if test in self.constant and not self.constant[test]:
            self._fold(test)  # (never looped: its else runs, once)
            if updated.orelse is None:
                return cst.RemoveFromParent()
            return self._inline(updated.orelse.body, updated.leading_lines)
        return updated.with_changes(test=test)

    def _orelse(self, orelse: cst.If | cst.Else | None) -> cst.If | cst.Else | None:
        """An ``elif`` chain with the ``elif`` tests made constant folded."""
        if not isinstance(orelse, cst.If) or orelse.test not in self.constant:
            return orelse
        self._fold(orelse.test)
        if self.constant[orelse.test]:
            return cst.Else(body=orelse.body, leading_lines=orelse.leading_lines)
        return orelse.orelse  # (its own elifs were folded when it was left)

    def leave_If(
        self, original: cst.If, updated: cst.If
    ) -> (
        cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel
    ):
        test = self._test(updated.test, original)
        if test is not updated.test:
            updated = updated.with_changes(test=test)
        orelse = self._orelse(updated.orelse)
        if orelse is not updated.orelse:
            updated = updated.with_changes(orelse=orelse)
        test = updated.test
        if updated is not original:
            self.dropped.append(original)  # (an elif or a test folded)
        if original in self._elifs or test not in self.constant:
            return updated
        self._fold(test)
        if self.constant[test]:
            return self._inline(updated.body, updated.leading_lines)
        if updated.orelse is None:
            return cst.RemoveFromParent()
        if isinstance(updated.orelse, cst.If):
            return updated.orelse.with_changes(leading_lines=updated.leading_lines)
        return self._inline(updated.orelse.body, updated.leading_lines)

    def _inline(
        self, body: cst.BaseSuite, leading: Sequence[cst.EmptyLine]
    ) -> cst.FlattenSentinel[cst.BaseStatement]:
        statements: list[cst.BaseStatement]
        if isinstance(body, cst.IndentedBlock):
            statements = list(body.body)
        else:
            assert isinstance(body, cst.SimpleStatementSuite)
            statements = [cst.SimpleStatementLine(body=body.body)]
        # (a `pass` alone in the branch kept goes: the block around it says
        # `pass` again if it ends up empty)
        statements = [
            st
            for st in statements
            if not (
                isinstance(st, cst.SimpleStatementLine)
                and all(isinstance(small, cst.Pass) for small in st.body)
                and not any(line.comment for line in st.leading_lines)
            )
        ]
        if not statements:
            return cst.FlattenSentinel([])
        first = statements[0]
        if isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            lines = [*leading, *first.leading_lines]
            statements[0] = first.with_changes(leading_lines=lines)
        self._inlined.update(statements)
        return cst.FlattenSentinel(statements)

    def _reachable(
        self, body: Sequence[cst.BaseStatement]
    ) -> Sequence[cst.BaseStatement]:
        """``body`` without what follows a ``return`` (``raise``...) that a fold brought up."""
        for at, statement in enumerate(body):
            if (
                statement in self._inlined
                and isinstance(statement, cst.SimpleStatementLine)
                and isinstance(statement.body[-1], _TERMINAL)
            ):
                return body[: at + 1]
        return body

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        def gone(o: cst.BaseSmallStatement, s: cst.BaseSmallStatement) -> bool:
            # (an assignment that goes, or a statement the flag made a bare
            # constant: `await flags.warm_up(ctx)` alone on its line)
            return o in self.removed or (
                isinstance(s, cst.Expr) and s.value in self.constant
            )

        if any(gone(o, s) for o, s in zip(original.body, updated.body, strict=True)):
            body = [
                s
                for o, s in zip(original.body, updated.body, strict=True)
                if not gone(o, s)
            ]
            self.dropped.append(original)
            if not body:
                return cst.RemoveFromParent()
            return updated.with_changes(body=body)
        return updated

    def leave_ExceptHandler(
        self, original: cst.ExceptHandler, updated: cst.ExceptHandler
    ) -> cst.ExceptHandler:
        """``except E as exc:`` whose ``exc`` only a folded branch used loses ``as exc``."""
        if (
            updated.name is None
            or updated.body is original.body
            or not isinstance(updated.name.name, cst.Name)
        ):
            return updated
        name = updated.name.name.value
        if name in _names_used(original.body) and name not in _names_used(updated.body):
            return updated.with_changes(name=None)
        return updated

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        body = self._reachable(updated.body)
        if body is not updated.body:
            self.dropped.append(original)
        if not body:
            return updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])
        body = _no_blank_start(original.body, body)
        return updated if body is updated.body else updated.with_changes(body=body)


def _no_blank_start(
    before: Sequence[cst.BaseStatement], after: Sequence[cst.BaseStatement]
) -> Sequence[cst.BaseStatement]:
    """``after`` whose first statement has no blank lines before it where ``before``'s had none.

    The statements before it went: so do the blank lines that parted it
    from them (never a comment).
    """
    was = before[0] if before else None
    first = after[0] if after else None
    if (
        isinstance(was, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
        and not was.leading_lines
        and isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
        and first.leading_lines
        and not any(line.comment for line in first.leading_lines)
    ):
        return [first.with_changes(leading_lines=[]), *after[1:]]
    return after


#: Calls that read a function's locals by name: its variables all stay.
_LOCALS_READERS: Final = frozenset({"locals", "vars", "eval", "exec"})


def _reads_its_locals(scope: FunctionScope) -> bool:
    """Whether the function calls ``locals()``, ``vars()``, ``eval`` or ``exec`` (a variable may be read by name)."""
    return any(scope.accesses[name] for name in _LOCALS_READERS)


def _variables(
    tree: cst.Module,
    scopes: Mapping[cst.CSTNode, Scope | None],
    sites: dict[cst.Call, _Site],
) -> dict[cst.CSTNode, list[cst.Name]]:
    """Local variables assigned once, from a site: their assignment, and their uses."""
    out: dict[cst.CSTNode, list[cst.Name]] = {}
    finder = _Assignments(sites)
    tree.visit(finder)
    for assign, name in finder.found:
        scope = scopes.get(assign)
        if not isinstance(scope, FunctionScope) or _reads_its_locals(scope):
            continue
        assignments = scope.assignments[name]
        if len(assignments) != 1:
            continue
        (only,) = assignments
        if getattr(only, "node", None) is None:
            continue
        uses = [a.node for a in only.references]
        if all(isinstance(u, cst.Name) for u in uses) and uses:
            out[assign] = [u for u in uses if isinstance(u, cst.Name)]
    return out


#: The generated accessors' classes: constructing one has no effect.
_ACCESSOR_CLASSES: Final = frozenset({"Flags", "BlockingFlags"})


def _is_accessor_class(func: cst.BaseExpression) -> bool:
    """``Flags``, ``BlockingFlags``, or ``module.Flags``."""
    if isinstance(func, cst.Attribute):
        func = func.attr
    return isinstance(func, cst.Name) and func.value in _ACCESSOR_CLASSES


def _names_accessor_class(annotation: cst.BaseExpression) -> bool:
    """An annotation that is ``Flags``/``BlockingFlags`` (``"Flags"``, ``m.Flags``)."""
    written = _string(annotation)
    if written is not None:
        return written.rsplit(".", 1)[-1] in _ACCESSOR_CLASSES
    return _is_accessor_class(annotation)


class _Bound(cst.CSTVisitor):
    """The value of each single-name assignment, and whether Flags is imported."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[cst.CSTNode, cst.BaseExpression] = {}
        self.accessor_classes = False

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            self.values[node.targets[0].target] = node.value

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name) and node.value is not None:
            self.values[node.target] = node.value

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if node.evaluated_name.rsplit(".", 1)[-1] in _ACCESSOR_CLASSES:
            self.accessor_classes = True


def _makes_receiver(value: cst.BaseExpression, scope: Scope) -> bool:
    """Whether ``value`` makes a receiver with no effect: ``Flags(client)`` (imported), ``R.snapshot()``."""
    if not isinstance(value, cst.Call):
        return False
    func = value.func
    if isinstance(func, cst.Attribute):
        return func.attr.value == "snapshot" and not value.args and _pure(func.value)
    if not isinstance(func, cst.Name) or func.value not in _ACCESSOR_CLASSES:
        return False
    if not all(
        arg.keyword is None and not arg.star and _pure(arg.value) for arg in value.args
    ):
        return False
    defined = scope.globals.assignments[func.value]
    return bool(defined) and all(
        isinstance(getattr(a, "node", None), cst.ImportFrom) for a in defined
    )


def _receivers(
    tree: cst.Module,
    scopes: Mapping[cst.CSTNode, Scope | None],
    sites: dict[cst.Call, _Site],
) -> set[cst.CSTNode]:
    """The assignments of local receivers that only sites rewritten use (``flags = Flags(client)``).

    Once the sites are constants, such a variable is never read: its
    assignment goes (only for a value made with no effect: the generated
    accessors' classes, imported, and ``snapshot()``).
    """
    receivers = {
        site.call.func.value
        for site in sites.values()
        if site.why is None
        and isinstance(site.call.func, cst.Attribute)
        and isinstance(site.call.func.value, cst.Name)
    }
    if not receivers:
        return set()
    finder = _Assignments(sites, receivers=True)
    tree.visit(finder)
    out: set[cst.CSTNode] = set()
    for assign, name in finder.found:
        scope = scopes.get(assign)
        if not isinstance(scope, FunctionScope) or _reads_its_locals(scope):
            continue
        assignments = scope.assignments[name]
        if len(assignments) != 1:
            continue
        (only,) = assignments
        value = getattr(assign, "value", None)
        uses = [a.node for a in only.references]
        if (
            uses
            and all(use in receivers for use in uses)
            and isinstance(value, cst.BaseExpression)
            and _makes_receiver(value, scope)
        ):
            out.add(assign)
    return out


class _Assignments(cst.CSTVisitor):
    """Assignments of one name from a site (or, ``receivers``, from any call)."""

    def __init__(
        self, sites: dict[cst.Call, _Site], *, receivers: bool = False
    ) -> None:
        super().__init__()
        self.sites = sites
        self.receivers = receivers
        self.found: list[tuple[cst.CSTNode, str]] = []

    def _site(self, value: cst.BaseExpression | None) -> bool:
        if self.receivers:
            return isinstance(value, cst.Call)
        if isinstance(value, cst.Await):
            value = value.expression
        site = self.sites.get(value) if isinstance(value, cst.Call) else None
        return site is not None and site.why is None

    def visit_Assign(self, node: cst.Assign) -> None:
        if (
            len(node.targets) == 1
            and isinstance(node.targets[0].target, cst.Name)
            and self._site(node.value)
        ):
            self.found.append((node, node.targets[0].target.value))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name) and self._site(node.value):
            self.found.append((node, node.target.value))


def _surviving(tree: cst.Module, uses: dict[cst.CSTNode, cst.Name]) -> set[cst.Name]:
    """The uses of variables replaced by the value that are still in ``tree`` (did not fold)."""
    left: set[cst.Name] = set()

    class _Walk(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if node in uses:
                left.add(uses[node])
            return True

    tree.visit(_Walk())
    return left


def key_constants(
    sources: Iterable[tuple[Path, bytes]], key: str
) -> dict[str, frozenset[str]]:
    """The module constants holding ``key`` (``NAME = "key"``) in ``sources``: their names by module (:func:`dotted_name`).

    A module importing one of them from its module (``from m import NAME``)
    evaluates the flag with it: :func:`clean_source`'s ``imported``.
    """
    pattern = re.compile(
        rb"^([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=[ \t]*([\"'])"
        + re.escape(_utf8(key))
        + rb"\2[ \t]*(?:#.*)?$",
        re.M,
    )
    out: dict[str, frozenset[str]] = {}
    for path, source in sources:
        names = frozenset(m.group(1).decode() for m in pattern.finditer(source))
        if names:
            module = dotted_name(path)
            out[module] = out.get(module, frozenset()) | names
    return out


def _decode(source: bytes) -> tuple[str, str] | str:
    """The text of a Python source and its encoding (PEP 263), or why it cannot be read."""
    lines = iter(source.splitlines(keepends=True))
    try:
        encoding, _ = tokenize.detect_encoding(lambda: next(lines, b""))
        return source.decode(encoding), encoding
    except SyntaxError as exc:
        return f"cannot read it: {exc.msg}"
    except (UnicodeDecodeError, LookupError):
        return (
            "cannot read it: not UTF-8, and no coding cookie (`# -*- coding: ... -*-`) "
            "says its encoding"
        )


def _failure(error: Exception) -> str:
    """Why libcst could not parse or walk a file, in one line."""
    if isinstance(error, cst.ParserSyntaxError):
        return f"cannot parse it: {error.message} (line {error.raw_line})"
    if isinstance(error, RecursionError):
        return "nested too deep for libcst to walk (an expression or elif chain)"
    if isinstance(error, MemoryError):
        return "too large for libcst to walk"
    return f"libcst cannot walk it: {type(error).__name__}: {error}"


def dotted_name(path: Path) -> str:
    """The module ``path`` is, named by its packages (the directories with an ``__init__.py`` around it).

    ``app/views.py`` in a package ``app`` is ``app.views``; a module outside
    any package is its stem. Matched by suffix (:func:`same_module`): a tree
    named below its root still finds its imports.
    """
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def same_module(a: str, b: str) -> bool:
    """Whether two dotted names may be one module (one ends with the other, at a dot)."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _module_name(path: Path) -> tuple[str, str]:
    """A module and package name for ``path`` that relative imports resolve in.

    Made from the whole absolute path, so that ``from .. import x`` always
    has a package to climb; only consistency matters (an import is matched
    against names resolved the same way).
    """
    parts = [part.replace(".", "_") or "_" for part in path.absolute().parent.parts[1:]]
    package = ".".join(parts) or "_"
    return f"{package}.{path.stem.replace('.', '_')}", package


class FlagCleanup(CodemodCommand):
    """The rewrite of one module, on libcst's codemod framework.

    Its transform finds FLAG's sites (``_Finder``), makes them VALUE and
    folds what that makes dead (``_Rewriter``, until no local variable it
    substituted is left behind), and schedules the nodes it took out with
    :class:`~libcst.codemod.visitors.RemoveImportsVisitor`, which
    :class:`~libcst.codemod.CodemodCommand` runs after it: an import only
    they used goes. In an ``__init__.py`` imports stay (a package's names
    are its interface: other modules may import them from it), and so does
    an import whose name ``named_elsewhere`` says another file takes from
    this module (``patch("app.views.ld_client")``, ``from app.views import
    ld_client``).
    """

    DESCRIPTION = "Rewrite a flag's evaluations as one value and fold what goes dead."
    METADATA_DEPENDENCIES = (PositionProvider, ScopeProvider)

    def __init__(
        self,
        context: CodemodContext,
        key: str,
        value: JSONValue,
        imported: Mapping[str, frozenset[str]] | None = None,
        named_elsewhere: Callable[[str], Path | None] | None = None,
        accessors: frozenset[str] | None = None,
    ) -> None:
        super().__init__(context)
        self.named_elsewhere = named_elsewhere
        self.accessors = accessors if accessors is not None else accessor_names(key)
        self.key = key
        self.value = value
        self.imported = imported or {}
        self.rewritten = 0
        self.left: list[Left] = []

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        path = self.context.filename or "<module>"
        scopes = (
            self.context.wrapper.resolve(ScopeProvider) if self.context.wrapper else {}
        )
        module = dotted_name(Path(path))
        finder = _Finder(
            self.key, self.value, self.imported, self.accessors, module, scopes
        )
        tree.visit(finder)

        def line(node: cst.CSTNode) -> int:
            return self.get_metadata(PositionProvider, node).start.line

        source = tree.code
        for site in finder.sites.values():
            # (a dynamic key is worth a word where the file names the key)
            if site.why is not None and (
                "dynamic key" not in site.why or self.key in source or finder.constants
            ):
                self.left.append(Left(path, line(site.call), site.why))
        for node, why in finder.data:
            self.left.append(Left(path, line(node), why))
        self.left.sort(key=lambda left: left.line)
        if not any(site.why is None for site in finder.sites.values()):
            return tree
        variables = _variables(tree, scopes, finder.sites)
        # Each use of such a variable is replaced by the value where that folds
        # away; the uses that do not fold stay as they were (a second pass
        # without them), and the assignment stays for them.
        folding = {use: assign for assign, uses in variables.items() for use in uses}
        receivers = _receivers(tree, scopes, finder.sites)
        while True:
            removed = receivers | {
                assign
                for assign, uses in variables.items()
                if all(use in folding for use in uses)
            }
            rewriter = _Rewriter(self.value, finder.sites, folding, removed)
            out = tree.visit(rewriter)
            kept = _surviving(out, rewriter.uses)
            if not kept:
                break
            for use in kept:
                del folding[use]
        self.rewritten = rewriter.rewritten
        for node in rewriter.stuck:
            self.left.append(
                Left(
                    path,
                    line(node),
                    "the condition still evaluates what is beside the flag's "
                    "value (it may have effects): fold it by hand",
                )
            )
        if Path(path).name != "__init__.py":
            for node in rewriter.dropped:
                self.remove_unused_import_by_node(node)
            self._keep_imports_named_elsewhere(tree, out, line)
        self.left.sort(key=lambda left: left.line)
        return out

    def _keep_imports_named_elsewhere(
        self, tree: cst.Module, out: cst.Module, line: Callable[[cst.CSTNode], int]
    ) -> None:
        """Take back the removals of imports that must stay, and list those now unused.

        An import stays when another file takes its name from this module,
        or when its statement holds a comment (``# noqa``: imported for its
        effect?; a comment on a name kept: libcst would move or drop it).
        """
        key = RemoveImportsVisitor.CONTEXT_KEY
        scheduled = self.context.scratch.get(key)
        if not scheduled:
            return
        kept: list[tuple[str, str | None, str | None]] = []
        used = _names_used(out)
        for module, obj, alias in dict.fromkeys(scheduled):
            local = alias or obj or module.split(".")[0]
            found = _import_of(tree, local)
            other = self.named_elsewhere(local) if self.named_elsewhere else None
            if other is not None:
                why = (
                    f"{other} takes it from this module (a mock.patch target?): "
                    "left; remove both by hand"
                )
            elif found is not None and _has_comment(found[1]):
                why = (
                    "its import statement holds a comment (# noqa: imported for "
                    "its effect?): left; remove it by hand"
                )
            else:
                kept.append((module, obj, alias))
                continue
            if local not in used:
                self.left.append(
                    Left(
                        self.context.filename or "<module>",
                        line(found[0]) if found is not None else 1,
                        f"the import of {local} is unused now, but {why}",
                    )
                )
        if kept:
            self.context.scratch[key] = kept
        else:  # (nothing to remove: libcst's visitor need not walk the module)
            del self.context.scratch[key]

    def transform_module(self, tree: cst.Module) -> cst.Module:
        # (RemoveImportsVisitor may empty an `if TYPE_CHECKING:` block)
        return super().transform_module(tree).visit(_Tidy(tree))


def _names_used(tree: cst.CSTNode) -> set[str]:
    """The names a module (or a node) uses outside its import statements."""
    names: set[str] = set()

    class _Names(cst.CSTVisitor):
        def visit_Import(self, node: cst.Import) -> bool:
            return False

        def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
            return False

        def visit_Name(self, node: cst.Name) -> None:
            names.add(node.value)

    tree.visit(_Names())
    return names


def _import_of(
    tree: cst.Module, local: str
) -> tuple[cst.ImportAlias, cst.SimpleStatementLine] | None:
    """The name of the import that binds ``local`` in ``tree``, and its statement, if one does."""
    found: list[tuple[cst.ImportAlias, cst.SimpleStatementLine]] = []
    statements: list[cst.SimpleStatementLine] = []

    class _Imports(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
            statements.append(node)

        def leave_SimpleStatementLine(
            self, original_node: cst.SimpleStatementLine
        ) -> None:
            statements.pop()

        def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
            bound = node.evaluated_alias or node.evaluated_name.split(".")[0]
            if bound == local and not found and statements:
                found.append((node, statements[-1]))

    tree.visit(_Imports())
    return found[0] if found else None


def _has_comment(node: cst.CSTNode) -> bool:
    """Whether ``node`` holds a comment (its leading lines too)."""
    found: list[cst.Comment] = []

    class _Comments(cst.CSTVisitor):
        def visit_Comment(self, node: cst.Comment) -> None:
            found.append(node)

    node.visit(_Comments())
    return bool(found)


class _Tidy(cst.CSTTransformer):
    """A block left with no statement says ``pass``; a module whose first statements went starts with the next."""

    def __init__(self, before: cst.Module) -> None:
        super().__init__()
        self.before = before

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        body = _no_blank_start(self.before.body, updated.body)
        return updated if body is updated.body else updated.with_changes(body=body)

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        if updated.body:
            return updated
        return updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])


def _kept(source: bytes) -> set[str] | None:
    """What a function's kind and names hang on, in ``source``; None if it does not parse here.

    ``f() yields`` for a generator (a ``yield`` of its own), ``f() global
    x`` for each ``global``/``nonlocal`` declaration: a fold that takes the
    last of them changes what the function is, or which ``x`` it binds.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    found: set[str] = set()

    def walk(node: ast.AST, prefix: str, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                walk(child, f"{prefix}{child.name}.", f"{prefix}{child.name}")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.", None)
            elif isinstance(child, ast.Lambda):
                walk(child, prefix, None)
            else:
                if isinstance(child, (ast.Yield, ast.YieldFrom)) and function:
                    found.add(f"{function}() yields")
                if isinstance(child, (ast.Global, ast.Nonlocal)):
                    kind = "global" if isinstance(child, ast.Global) else "nonlocal"
                    where = f"{function}()" if function else prefix or "the module"
                    found.update(f"{where} {kind} {name}" for name in child.names)
                walk(child, prefix, function)

    try:
        walk(tree, "", None)
    except RecursionError:
        return None
    return found


def _lost(before: bytes, after: bytes) -> list[str]:
    """What ``after`` would lose of ``before``'s generators and declarations (:func:`_kept`)."""
    was, now = _kept(before), _kept(after)
    if was is None or now is None:
        return []
    return sorted(was - now)


def _compiles(source: bytes, path: Path) -> bool:
    """Whether this Python parses ``source`` (the check a rewrite passes before it is written)."""
    try:
        compile(source, str(path), "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _mentions(
    source: bytes,
    key: str,
    imported: Mapping[str, frozenset[str]],
    accessors: frozenset[str],
) -> bool:
    """Whether ``source`` names the key, its accessor or a key constant it may import.

    A file that names none of them has no site: it is not parsed (most of a
    tree). A key spelt with escapes in a string (a backslash in it) is not
    looked for.
    """
    needles = {_utf8(key), *(_utf8(name) for name in accessors)}
    needles |= {_utf8(name) for names in imported.values() for name in names}
    if not key.isascii() and all(ord(c) < 256 for c in key):
        needles.add(key.encode("latin-1"))  # (a file with a coding cookie)
    return any(needle in source for needle in needles)


def is_generated(source: bytes) -> bool:
    """Whether ``source`` is a module ``aioflags codegen`` wrote (its header)."""
    head = source[:4096].decode("utf-8", errors="replace")
    return any(line.startswith(HEADER) for line in head.splitlines()[:3])


_EVALUATED: Final = re.compile(
    rb"""_?variation(?:_detail)?\(\s*(?:"([^"\\\n]+)"|'([^'\\\n]+)')"""
)


def names_taken_from(
    module: Path, sources: Sequence[tuple[Path, bytes]]
) -> Callable[[str], Path | None]:
    """Which of ``sources`` names ``NAME`` through ``module``, if one does.

    ``app.views.NAME`` (a mock's ``patch("app.views.NAME")``, a string),
    ``from app.views import NAME``, ``from .views import NAME``: the module
    named by its packages (the directories with an ``__init__.py`` around
    it). Read with patterns, not parsed: an import cleanup would remove
    stays when another file takes it from the module.
    """
    dotted = re.escape(_utf8(dotted_name(module)))
    stem = re.escape(_utf8(module.stem))

    def named(name: str) -> Path | None:
        word = re.escape(_utf8(name))
        imports = rb"\s+import\s+(?:\([^)]*|[^\n]*)\b" + word + rb"\b"
        ways = [
            rb"\b" + dotted + rb"\." + word + rb"\b",  # patch("app.views.name")
            rb"\bfrom\s+" + dotted + imports,  # from app.views import name
            rb"\bfrom\s+\.[\w.]*\b" + stem + imports,  # from .views import name
            # patch.object(views, "name"), getattr(app.views, "name")
            rb"\b" + stem + rb"\s*,\s*[rbuRBU]?[\"']" + word + rb"[\"']",
        ]
        if not name.startswith("_"):  # (a star import takes every public name)
            ways.append(
                rb"\bfrom\s+(?:" + dotted + rb"|\.[\w.]*\b" + stem + rb")\s+import\s+\*"
            )
        pattern = re.compile(b"|".join(ways))
        return next(
            (path for path, text in sources if path != module and pattern.search(text)),
            None,
        )

    return named


def keys_evaluated(sources: Iterable[bytes]) -> set[str]:
    """The keys written as a string in the first argument of an evaluation (``variation("k"``...).

    Read with a pattern, not parsed: what "did you mean" offers for a key
    that no site evaluates.
    """
    return {
        (m.group(1) or m.group(2)).decode("utf-8", "replace")
        for source in sources
        for m in _EVALUATED.finditer(source)
    }


def clean_source(
    path: Path,
    source: bytes,
    key: str,
    value: JSONValue,
    imported: Mapping[str, frozenset[str]] | None = None,
    named_elsewhere: Callable[[str], Path | None] | None = None,
    accessors: frozenset[str] | None = None,
) -> FileResult:
    """``source`` (the file at ``path``) with FLAG's sites made ``value``, and what was left.

    ``imported``: the names of key constants other modules define
    (:func:`key_constants`), recognised where this one imports them.
    ``named_elsewhere(name)``: the other file that takes ``name`` from
    this module, if one does. ``accessors``: the names of the flag's
    accessor (:func:`accessor_names`, with the generated modules) (its import then stays; :class:`FlagCleanup`). A
    file that cannot be read, parsed or walked comes back unchanged with
    :attr:`FileResult.failed` saying why; so does a rewrite that would not
    parse (never written).
    """
    result = FileResult(path, source, source)
    if is_generated(source):
        if _utf8(key) in source:
            result.note = (
                f"{path}: written by `aioflags codegen`, left alone: remove "
                f"{key!r} from the flag file and regenerate it (the command in "
                "its header)"
            )
        return result
    if accessors is None:
        accessors = accessor_names(key)
    imported = imported or {}
    if not _mentions(source, key, imported, accessors):
        return result
    decoded = _decode(source)
    if isinstance(decoded, str):
        result.failed = decoded
        return result
    text, encoding = decoded
    deep = too_deep(text, path)  # (libcst's parser would crash the process)
    if deep is not None:
        result.failed = deep
        return result
    module, package = _module_name(path)
    command = FlagCleanup(
        CodemodContext(
            filename=str(path), full_module_name=module, full_package_name=package
        ),
        key,
        value,
        imported,
        named_elsewhere,
        accessors,
    )
    outcome = transform_module(command, text)
    result.left = command.left
    if isinstance(outcome, TransformFailure):
        result.failed = _failure(outcome.error)
        result.left = []
        return result
    if not isinstance(outcome, TransformSuccess):  # (Ctrl-C: TransformExit)
        raise KeyboardInterrupt
    if outcome.code == text:
        return result
    try:
        after = outcome.code.encode(encoding)
    except UnicodeEncodeError:
        result.failed = (
            f"the value cannot be written in the file's encoding ({encoding}): "
            "left as it is"
        )
        result.left = []
        return result
    lost = _lost(source, after)
    if lost:
        result.failed = (
            f"the rewrite would take away {'; '.join(lost)} (a generator would "
            "no longer be one, a name would bind elsewhere): left as it is; "
            "rewrite it by hand"
        )
        result.left = []
        return result
    if not _compiles(after, path) and _compiles(source, path):
        result.failed = (
            "the rewrite would not parse: left as it is (a bug: please report "
            "it with the file)"
        )
        result.left = []
        return result
    result.after = after
    result.rewritten = command.rewritten
    return result
