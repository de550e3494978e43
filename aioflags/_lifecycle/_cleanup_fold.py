"""The second pass of ``aioflags cleanup``: the sites made constant, and what that makes dead folded.

:class:`Rewriter` is one libcst transformer: leaving a site it puts the
value's literal in its place, and leaving each node above it folds what
the constant decides (``not``, ``and``/``or``, a comparison with a
literal, a conditional expression, ``if``/``elif``/``else``, ``while``, a
comprehension's ``if``), what follows a ``return`` a fold brought up, and
the assignments the first pass found going (``_cleanup_sites.py``).
"""

from __future__ import annotations

import operator
from collections import Counter
from typing import TYPE_CHECKING, Final

import libcst as cst
import libcst.matchers as m

from aioflags._lifecycle._cleanup_sites import literal_value, pure, python_literal

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aioflags._core._json import JSONValue
    from aioflags._lifecycle._cleanup_sites import Site

__all__ = ["Rewriter", "names_used", "no_blank_start", "surviving", "tidy"]

#: A site that returns a float: an ``int`` value is written as one.
_FLOAT_METHOD: Final = m.Attribute(attr=m.Name("float_variation"))
#: A line of ``pass`` with no comment above it.
_BARE_PASS: Final = m.SimpleStatementLine(
    body=[m.ZeroOrMore(m.Pass())],
    leading_lines=[m.ZeroOrMore(m.EmptyLine(comment=None))],
)
#: The comparisons with a literal that fold.
_COMPARE: Final[dict[type[cst.BaseCompOp], Callable[[object, object], object]]] = {
    cst.Equal: operator.eq,
    cst.NotEqual: operator.ne,
    cst.Is: operator.is_,
    cst.IsNot: operator.is_not,
}
#: ``except E as name:``
_EXCEPT_AS: Final = m.ExceptHandler(
    name=m.AsName(name=m.SaveMatchedNode(m.Name(), "name"))
)
#: A line that ends its block (what follows it there is dead).
_ENDS_BLOCK: Final = m.SimpleStatementLine(
    body=[m.ZeroOrMore(), m.Return() | m.Raise() | m.Continue() | m.Break()]
)


class Rewriter(cst.CSTTransformer):
    """The second pass: the sites made constant, and what that makes dead folded."""

    def __init__(
        self,
        value: JSONValue,
        sites: dict[cst.Call, Site],
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
            text = text.replace('"', "'")  # (the finder checked: Finder.in_fstring)
        node = cst.parse_expression(text)
        if like.lpar:
            node = node.with_changes(lpar=like.lpar, rpar=like.rpar)
        self.constant[node] = value
        return node

    def _keep(
        self, node: cst.BaseExpression, original: cst.BaseExpression
    ) -> cst.BaseExpression:
        """``node`` in ``original``'s place: with its parentheses if it has none."""
        return self._in(original.lpar, original.rpar, node) if original.lpar else node

    def _bracketed(self, node: cst.BaseExpression) -> cst.BaseExpression:
        """A constant in parentheses, where its own precedence would change the code."""
        return self._in([cst.LeftParen()], [cst.RightParen()], node)

    def _in(
        self,
        lpar: Sequence[cst.LeftParen],
        rpar: Sequence[cst.RightParen],
        node: cst.BaseExpression,
    ) -> cst.BaseExpression:
        if node.lpar:
            return node
        kept = node.with_changes(lpar=lpar, rpar=rpar)
        if node in self.constant:
            self.constant[kept] = self.constant[node]
        if node in self.uses:
            self.uses[kept] = self.uses[node]
        return kept

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
        float_ = m.matches(original.func, _FLOAT_METHOD)
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
    def _made(self, node: cst.BaseExpression, shape: m.BaseMatcherNode) -> bool:
        """Whether ``node`` is a constant the rewrite made, of that shape."""
        return node in self.constant and m.matches(node, shape)

    def leave_Attribute(
        self, original: cst.Attribute, updated: cst.Attribute
    ) -> cst.BaseExpression:
        # (`3.bit_length()` does not parse, `-3 .real` is -(3 .real))
        if self._made(updated.value, m.Integer() | m.UnaryOperation()):
            return updated.with_changes(value=self._bracketed(updated.value))
        return updated

    def leave_Subscript(
        self, original: cst.Subscript, updated: cst.Subscript
    ) -> cst.BaseExpression:
        if self._made(updated.value, m.UnaryOperation()):
            return updated.with_changes(value=self._bracketed(updated.value))
        return updated

    def leave_BinaryOperation(
        self, original: cst.BinaryOperation, updated: cst.BinaryOperation
    ) -> cst.BaseExpression:
        # (`-3 ** 2` is -(3 ** 2))
        if m.matches(updated.operator, m.Power()) and self._made(
            updated.left, m.UnaryOperation()
        ):
            return updated.with_changes(left=self._bracketed(updated.left))
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
            known, literal = literal_value(updated.right)
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
        known, literal = literal_value(other)
        if not known:
            return updated
        compare = _COMPARE.get(type(target.operator))
        if compare is None or (
            compare in (operator.is_, operator.is_not)  # (`is` a singleton only)
            and not (literal is None or isinstance(literal, bool))
        ):
            return updated
        self._fold(mine)
        self.dropped.append(original)
        return self._make(bool(compare(self.constant[mine], literal)), updated)

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
            if not pure(test.left):
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
        statements = [st for st in statements if not m.matches(st, _BARE_PASS)]
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
            if statement in self._inlined and m.matches(statement, _ENDS_BLOCK):
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
        found = m.extract(updated, _EXCEPT_AS)
        if updated.body is original.body or found is None:
            return updated
        name = cst.ensure_type(found["name"], cst.Name).value
        if name in names_used(original.body) and name not in names_used(updated.body):
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
        body = no_blank_start(original.body, body)
        return updated if body is updated.body else updated.with_changes(body=body)


def no_blank_start(
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


def surviving(tree: cst.Module, uses: dict[cst.CSTNode, cst.Name]) -> set[cst.Name]:
    """The uses of variables replaced by the value that are still in ``tree`` (did not fold)."""
    return {uses[node] for node in m.findall(tree, m.MatchIfTrue(uses.__contains__))}


def names_used(tree: cst.CSTNode) -> set[str]:
    """The names a module (or a node) uses outside its import statements."""
    names = Counter(_names(tree))
    names.subtract(
        name
        for statement in m.findall(tree, m.Import() | m.ImportFrom())
        for name in _names(statement)
    )
    return {name for name, count in names.items() if count > 0}


def _names(tree: cst.CSTNode) -> list[str]:
    return [cst.ensure_type(n, cst.Name).value for n in m.findall(tree, m.Name())]


def tidy(before: cst.Module, after: cst.Module) -> cst.Module:
    """``after`` where a block left with no statement says ``pass``, and a module whose first statements went starts with the next.

    (libcst's ``RemoveImportsVisitor`` may empty an ``if TYPE_CHECKING:`` block.)
    """
    out = cst.ensure_type(
        m.replace(after, m.IndentedBlock(body=[]), _says_pass), cst.Module
    )
    body = no_blank_start(before.body, out.body)
    return out if body is out.body else out.with_changes(body=body)


def _says_pass(block: cst.CSTNode, _: object) -> cst.CSTNode:
    return block.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])
