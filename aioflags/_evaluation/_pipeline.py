"""The evaluation, written once as plain Python: door, find, run, answer.

Every face evaluates through it: the async client's methods, the
synchronous methods of a :class:`~._snapshot.FlagSnapshot` (the snapshots
``client.snapshot()`` and ``aioflags.blocking.Client`` hand out, OFREP's,
the console's, migrations'). One evaluation of flag ``key`` is::

    Evaluation.answer(data, method, key, context, default)
      step.evaluate(...)            the composition's stages, outermost first
        (hooks: before)               a stage runs around the one it holds...
        (lens: the request's view)
        Flags.evaluate(...)           ...down to the flag data's own step:
          door(context, key)            a valid Context, a str key?
          find(matcher, key)            the flag's head, made once per snapshot
          run_head(head, ...)           its code run; what it raises mapped
          typed(result, kind, ...)      typed methods: WRONG_TYPE (the flag's system's rules)
          ledger.evaluated(...)         counted (analytics events on)
          other(...)                    what the door or the lookup turned away
        (hooks: after)
      method.answer(result, default)  the value, the detail, or the result

A *composition* is what a client run puts around the flag data (analytics
events, hooks with an evaluation stage of their own, a flag lens). It is a
value of ordinary objects, built once when a part changes (the client's
``Evaluator``), never decided per call: :class:`Flags` with the ledger
that counts (None: events off), wrapped in each stage's object, as a web
framework builds its middleware stack once. A new stage is one class with
an :meth:`Step.evaluate` that calls the step it holds, and one entry where
the client composes (``_client._evaluator.compose``). The hooks' stage is
``_client._hooks.HookStage``; the lens's, ``_lens._lens.LensStage``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar, final

from ._codegen import Code
from ._door import door, other
from ._evaluate import ERROR_RESULTS, run_head
from ._model import default_system
from ._results import detail_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from contextvars import ContextVar

    from aioflags._core._json import JSONValue

    from ._context import Context
    from ._door import Data
    from ._evaluate import Head, Matcher
    from ._model import CompiledFlag
    from ._recording import Ledger
    from ._results import EvaluationDetail, Result

__all__ = [
    "BOOL_VARIATION",
    "BOOL_VARIATION_DETAIL",
    "FLOAT_VARIATION",
    "FLOAT_VARIATION_DETAIL",
    "INT_VARIATION",
    "INT_VARIATION_DETAIL",
    "JSON_VARIATION",
    "JSON_VARIATION_DETAIL",
    "METHODS",
    "MIGRATION",
    "PLAIN",
    "RESULT",
    "STRING_VARIATION",
    "STRING_VARIATION_DETAIL",
    "VARIATION",
    "VARIATION_DETAIL",
    "CountedFlags",
    "Evaluation",
    "Flags",
    "LensedFlags",
    "Lensing",
    "Looking",
    "Method",
    "Step",
    "find",
    "flags_step",
    "typed",
    "value_of",
]


#: What a method answers (a value, a detail, a result).
A = TypeVar("A")


def value_of(result: Result, default: Any) -> Any:
    """The answer of a value method: the variation's value, or ``default``."""
    return default if result.variation_index is None else result.value


def _result_of(result: Result, default: Any) -> Result:
    """The answer of a method that answers the flag's result itself."""
    return result


def _stage_detail(result: Result, default: Any) -> EvaluationDetail[Any]:
    """The detail the hooks of ``migration_variation`` are shown (``default`` names a stage)."""
    from ._migration import Stage, stage_detail

    return stage_detail(detail_of(result, default), Stage(default))


@final
class Method(Generic[A]):
    """One evaluation method: what its value must be, what it answers, what hooks see.

    Attributes:
        name: the public method, as the hooks' series context names it.
        kind: the type its value must have (None: any JSON value).
        detail: whether its analytics events carry the reason (``*_detail``).
        answer: ``answer(result, default)``: what the caller gets.
        shown: ``shown(result, default)``: the detail the hooks'
            ``after_evaluation`` are shown; None: the result's own
            (:func:`~._results.detail_of`, which a result keeps once made).
    """

    __slots__ = ("answer", "detail", "kind", "name", "shown")

    def __init__(
        self,
        name: str,
        kind: type | None,
        detail: bool,
        answer: Callable[[Result, Any], A],
        shown: Callable[[Result, Any], EvaluationDetail[Any]] | None = None,
    ) -> None:
        self.name: str = name
        self.kind: type | None = kind
        self.detail: bool = detail
        self.answer: Callable[[Result, Any], A] = answer
        self.shown: Callable[[Result, Any], EvaluationDetail[Any]] | None = shown

    def __repr__(self) -> str:
        return f"<aioflags evaluation method {self.name}>"


def _value(name: str, kind: type | None) -> Method[Any]:
    return Method(name, kind, False, value_of)


def _detail(name: str, kind: type | None) -> Method[EvaluationDetail[Any]]:
    return Method(name, kind, True, detail_of)


# The public evaluation methods (``Client``'s, ``FlagSnapshot``'s).
VARIATION: Final[Method[JSONValue]] = _value("variation", None)
VARIATION_DETAIL: Final[Method[EvaluationDetail[JSONValue]]] = _detail(
    "variation_detail", None
)
BOOL_VARIATION: Final[Method[bool]] = _value("bool_variation", bool)
INT_VARIATION: Final[Method[int]] = _value("int_variation", int)
FLOAT_VARIATION: Final[Method[float]] = _value("float_variation", float)
STRING_VARIATION: Final[Method[str]] = _value("string_variation", str)
JSON_VARIATION: Final[Method[JSONValue]] = _value("json_variation", None)
BOOL_VARIATION_DETAIL: Final[Method[EvaluationDetail[bool]]] = _detail(
    "bool_variation_detail", bool
)
INT_VARIATION_DETAIL: Final[Method[EvaluationDetail[int]]] = _detail(
    "int_variation_detail", int
)
FLOAT_VARIATION_DETAIL: Final[Method[EvaluationDetail[float]]] = _detail(
    "float_variation_detail", float
)
STRING_VARIATION_DETAIL: Final[Method[EvaluationDetail[str]]] = _detail(
    "string_variation_detail", str
)
JSON_VARIATION_DETAIL: Final[Method[EvaluationDetail[JSONValue]]] = _detail(
    "json_variation_detail", None
)
#: The public evaluation methods, by name.
METHODS: Final[dict[str, Method[Any]]] = {
    "variation": VARIATION,
    "variation_detail": VARIATION_DETAIL,
    "bool_variation": BOOL_VARIATION,
    "int_variation": INT_VARIATION,
    "float_variation": FLOAT_VARIATION,
    "string_variation": STRING_VARIATION,
    "json_variation": JSON_VARIATION,
    "bool_variation_detail": BOOL_VARIATION_DETAIL,
    "int_variation_detail": INT_VARIATION_DETAIL,
    "float_variation_detail": FLOAT_VARIATION_DETAIL,
    "string_variation_detail": STRING_VARIATION_DETAIL,
    "json_variation_detail": JSON_VARIATION_DETAIL,
}
#: The flag's result, counted as a value evaluation (``aioflags diff``).
RESULT: Final[Method[Result]] = Method("variation", None, False, _result_of)
#: A migration flag's result: counted as a value evaluation, the hooks
#: shown the stage's detail (``FlagSnapshot.migration_variation``).
MIGRATION: Final[Method[Result]] = Method(
    "migration_variation", None, False, _result_of, _stage_detail
)

#: What a typed method answers for a value of another type.
_WRONG_TYPE: Final = ERROR_RESULTS["WRONG_TYPE"]


def find(matcher: Matcher, key: str) -> Head | None:
    """Flag ``key``'s head in ``matcher``'s snapshot (made on its first evaluation there).

    None: no such flag, or a deleted one (the door's :func:`~._door.other`
    answers). A head is the flag's constant result, or what runs its code
    (:func:`~._evaluate.run_head`).
    """
    head = matcher.heads.get(key)
    return matcher.find_head(key) if head is None else head


def typed(
    result: Result, kind: type, default: Any, matcher: Matcher, key: str
) -> Result:
    """The type step of a typed method: ``result``, or WRONG_TYPE (evaluation.md §10).

    A value of the method's type passes as it is; any other is the flag's
    system's to judge (``FlagSystem.typed_check``, the flag ``key`` of
    ``matcher``'s data): for a LaunchDarkly flag an int served to
    ``float_variation`` is a float (and the reverse, truncated); flagd's
    converts no number to another and counts no boolean a number. A
    ``default`` of None checks nothing.
    """
    if result.variation_index is None or default is None or type(result.value) is kind:
        return result
    flag = matcher.flags.get(key)  # (a value of another type: rare)
    system = default_system() if flag is None else flag.system
    ok, value = system.typed_check(result.value, kind)
    if not ok:
        return _WRONG_TYPE
    return result if value is result.value else result.with_value(value)


class Step(Protocol):
    """One step of a composition: it evaluates, or runs a stage around the step it holds."""

    def evaluate(
        self,
        data: Data,
        method: Method[Any],
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Result:
        """Flag ``key``'s result for ``context`` in ``data`` (a snapshot)."""
        ...


def flags_step(ledger: Ledger | None, client: str | None = None) -> Step:
    """The flag data's own step: :class:`Flags` (events off), or :class:`CountedFlags`.

    Chosen once, when a composition is made: ``ledger`` counts each
    evaluation (analytics events on), None for none; ``client``, the label
    of the client it evaluates for (its log lines name it).
    """
    return Flags(client) if ledger is None else CountedFlags(ledger, client)


@final
class Flags:
    """The flag data's own step, the innermost of every composition: nothing counted.

    door, find, run and type, in order, for a valid Context and a flag
    that exists; the door's answer (:func:`~._door.other`) for anything
    else. With analytics events on, :class:`CountedFlags` is the step
    (:func:`flags_step`).
    """

    __slots__ = ("client",)

    def __init__(self, client: str | None = None) -> None:
        #: The label of the client it evaluates for (its log lines name it).
        self.client = client

    def evaluate(
        self,
        data: Data,
        method: Method[Any],
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Result:
        """Door → find → run → type; else the door's answer."""
        if door(context, key):
            matcher = data.matcher
            head = find(matcher, key)
            if head is not None:
                result = run_head(head, key, context, matcher)
                kind = method.kind
                # (the type step's first test inline: a value of the kind
                # passes without its call)
                if kind is not None and type(result.value) is not kind:
                    result = typed(result, kind, default, matcher, key)
                return result
        return other(data, key, context, default, None, self.client)

    def __repr__(self) -> str:
        return "Flags()"


@final
class CountedFlags:
    """The flag data's own step with analytics events on: each evaluation counted.

    :class:`Flags`' door, find, run and type, then ``ledger`` counts the
    evaluation; a flag with prerequisites runs with a matcher that counts
    them too (``Matcher.counting_state``), before the flag itself. The
    door's answers are counted as unknown flags (:func:`~._door.other`).
    """

    __slots__ = ("client", "ledger")

    def __init__(self, ledger: Ledger, client: str | None = None) -> None:
        self.ledger: Ledger = ledger
        #: The label of the client it evaluates for (its log lines name it).
        self.client = client

    def evaluate(
        self,
        data: Data,
        method: Method[Any],
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Result:
        """Door → find → run → type → count; else the door's answer, counted."""
        if door(context, key):
            matcher = data.matcher
            head = find(matcher, key)
            if head is not None:
                ledger = self.ledger
                if type(head) is not Code or head.plain:
                    result = run_head(head, key, context, matcher)
                else:  # (not plain: its prerequisites are counted too)
                    state = matcher.counting_state(ledger, key, method.detail)
                    result = run_head(head, key, context, state)
                kind = method.kind
                # (the type step's first test inline: a value of the kind
                # passes without its call)
                if kind is not None and type(result.value) is not kind:
                    result = typed(result, kind, default, matcher, key)
                ledger.evaluated(matcher, key, context, result, default, method.detail)
                return result
        return other(data, key, context, default, self.ledger, self.client)

    def __repr__(self) -> str:
        return "Flags(counted)"


@final
class LensedFlags:
    """The flag data's own step in a composition whose lens has a view open somewhere.

    While some request, anywhere, has a lens view open, a composition with
    a lens runs this step in place of :class:`Flags`: it reads the current
    request's view (``var``, the lens's ``ContextVar``) and, with none,
    evaluates as :class:`Flags` does, in this same frame; with one, it
    hands the evaluation to ``lensed`` (the lens's stage around the flag
    data's step). A request without a token pays one ``ContextVar.get``
    for the tokens other requests hold, not a stage's call (issue 86, G9).

    Its no-view path is :meth:`CountedFlags.evaluate` (:meth:`Flags.evaluate`
    for no ledger), written out again: a call to it would be the cost this
    step exists to save. Change them together (tests/test_lens.py compares
    them, events included).
    """

    __slots__ = ("client", "ledger", "lensed", "var")

    def __init__(
        self,
        ledger: Ledger | None,
        var: ContextVar[Any],
        lensed: Step,
        client: str | None = None,
    ) -> None:
        self.ledger: Ledger | None = ledger
        self.var: ContextVar[Any] = var  # (a View or None)
        self.lensed: Step = lensed
        #: The label of the client it evaluates for (as :class:`Flags`).
        self.client = client

    def evaluate(
        self,
        data: Data,
        method: Method[Any],
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Result:
        """The lens's stage for a request with a view; else door → find → run → type → count."""
        if self.var.get() is not None:
            return self.lensed.evaluate(data, method, key, context, default)
        if door(context, key):  # (from here on: CountedFlags.evaluate)
            matcher = data.matcher
            head = find(matcher, key)
            if head is not None:
                ledger = self.ledger
                if ledger is None or type(head) is not Code or head.plain:
                    result = run_head(head, key, context, matcher)
                else:  # (not plain: its prerequisites are counted too)
                    state = matcher.counting_state(ledger, key, method.detail)
                    result = run_head(head, key, context, state)
                kind = method.kind
                # (the type step's first test inline: a value of the kind
                # passes without its call)
                if kind is not None and type(result.value) is not kind:
                    result = typed(result, kind, default, matcher, key)
                if ledger is not None:
                    ledger.evaluated(
                        matcher, key, context, result, default, method.detail
                    )
                return result
        return other(data, key, context, default, self.ledger, self.client)

    def __repr__(self) -> str:
        return "LensedFlags()" if self.ledger is None else "LensedFlags(counted)"


class Looking(Protocol):
    """One request's view through the flag lens (``aioflags._lens._lens.View``)."""

    def override(self, matcher: Matcher, key: str, context: Context) -> Result | None:
        """Flag ``key``'s overridden result for ``context``, or None."""
        ...

    def saw(self, key: str, result: Result, default: Any) -> None:
        """Flag ``key`` was evaluated: its trace entry, if a trace was asked for."""
        ...

    def looked(
        self,
        matcher: Matcher,
        results: Iterable[tuple[str, CompiledFlag, Result]],
        context: Context,
    ) -> Iterator[tuple[str, CompiledFlag, Result]]:
        """An all-flags evaluation's results, overridden and traced."""
        ...


class Lensing(Protocol):
    """The flag lens a composition has (``aioflags._lens._lens.Lens``)."""

    def watch(self, evaluation: Evaluation) -> None:
        """Turn ``evaluation``'s lens stage in and out as views open and close (:meth:`Evaluation.look`)."""
        ...

    @property
    def active(self) -> int:
        """How many views are set now, anywhere (0: :meth:`get` answers None)."""
        ...

    def get(self) -> Looking | None:
        """The current request's view (None: no valid token)."""
        ...


@final
class Evaluation:
    """A composition: the steps one evaluation runs, outermost first, built once.

    ``step`` is the outermost stage (or :class:`Flags` alone: the plain
    composition); ``ledger`` and ``lens`` are what it was composed with,
    for what reads them beside an evaluation (all-flags state reads the
    lens; ``observed``). Made once per change of a part (the client's
    evaluator); a snapshot keeps the one it was handed out with.

    With a lens, ``looking`` is the same steps with the lens's stage among
    them: :attr:`step` while some request, anywhere, has a view open, and
    the steps without it while none has (:meth:`look`, which the lens
    calls as the count of open views leaves or reaches zero). So a lens no
    request uses costs an evaluation nothing (lens.md: at most 3 %).
    """

    __slots__ = (
        "__weakref__",
        "_looking",
        "_still",
        "hooked",
        "ledger",
        "lens",
        "step",
    )

    def __init__(
        self,
        step: Step,
        *,
        ledger: Ledger | None = None,
        lens: Lensing | None = None,
        hooked: bool = False,
        looking: Step | None = None,
    ) -> None:
        self.step: Step = step
        self.ledger: Ledger | None = ledger
        self.lens: Lensing | None = lens
        self.hooked: bool = hooked
        self._still: Step = step
        self._looking: Step | None = looking

    def look(self, open_views: bool) -> None:
        """Some request has a lens view open (True), or none has: the lens's stage in or out."""
        looking = self._looking
        if looking is not None:
            self.step = looking if open_views else self._still

    def answer(
        self,
        data: Data,
        method: Method[A],
        key: str,
        context: Context | None,
        default: Any,
    ) -> A:
        """What ``method`` answers for flag ``key`` in ``data``: the steps, then the answer."""
        result = self.step.evaluate(data, method, key, context, default)
        return method.answer(result, default)

    @property
    def observed(self) -> bool:
        """Whether its evaluations are counted, run hooks or look through a lens."""
        return self.hooked or self.ledger is not None or self.lens is not None

    @property
    def name(self) -> str:
        """The stages it has: ``plain``, or ``hooks``, ``events``, ``lens`` joined by ``+``."""
        parts = [
            "hooks" if self.hooked else "",
            "events" if self.ledger is not None else "",
            "lens" if self.lens is not None else "",
        ]
        return "+".join(part for part in parts if part) or "plain"

    def __repr__(self) -> str:
        return f"<aioflags Evaluation {self.name}>"


#: The plain composition: no events, no hooks, no lens (a store's
#: snapshots, and a pass of big segments that may be dropped).
PLAIN: Final = Evaluation(Flags())
