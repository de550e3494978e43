"""One evaluation per composition: every evaluation method, written once from one text.

A *composition* is what a client run puts around the flag data: analytics
events (a ledger that counts evaluations), hooks with an evaluation stage
of their own (their stages' text), and, for the async client, a gate that
awaited evaluations pass first. It is decided once, when a part changes
(the client's ``Evaluator``), never per call; :func:`body` writes the
evaluation for exactly that composition, with only the stages it has::

    door     a valid Context?                        no ─┐
    find     the flag's head (Matcher.heads)       none ─┤
    before   the hooks' before stages                    │
    lens     the request's override, if any (a lens)     │
    run      RUN_HEAD: the flag's code, its errors mapped│
    type     typed methods: WRONG_TYPE                   │
    count    in place, or the ledger's (events on)       │
    trace    the request's trace, if asked for (a lens)  │
    after    the hooks' after stages, shown the detail   │
    answer   the value or the default; the detail        │
    other    the door's answer (:func:`~._door.other`) ◄─┘
             with the hooks' stages around it

Every face evaluates through it: the synchronous methods of a
:class:`~._snapshot.FlagSnapshot` (its :class:`Evaluation`: the
snapshots ``client.snapshot()`` and ``aioflags.blocking.Client`` hand
out, OFREP's and the console's), and the async client's methods
(``_client._composition`` writes them from :func:`body` too, reading the
store's snapshot in the caller's frame). A new stage is one more part of
:class:`Composition` and one more ``if`` in :func:`body`; every face has
it, as every face has the flag lens's (``aioflags.lens``).

The functions run in the caller's frame (a call more would cost ~490
instructions, 9 % of an evaluation, callgrind), and their source is
registered for tracebacks and coverage tools (:func:`compiled`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol, final

from ._codegen import compiled
from ._context import Context
from ._door import DOOR, other
from ._evaluate import ERROR_RESULTS, RUN_HEAD_NAMES, typed_check, write_run_head
from ._results import detail_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from ._door import Data
    from ._evaluate import Matcher
    from ._model import CompiledFlag
    from ._recording import Ledger
    from ._results import EvaluationDetail, Result

__all__ = [
    "METHODS",
    "PLAIN",
    "Composition",
    "Evaluation",
    "Lensing",
    "Looking",
    "StageText",
    "SyncMethod",
    "body",
    "compiled",
    "names",
]


class StageText(Protocol):
    """The text of the hooks' stages (``_client._hooks.Stages``), at any indent.

    :meth:`before` and :meth:`after` are written before and after the
    statements that set ``result``; they read :attr:`names`, and ``key``,
    ``context``, ``default``, ``method`` and ``present``.
    """

    @property
    def names(self) -> Mapping[str, object]:
        """What the stages' text reads by name (each hook, the runner...)."""
        ...

    def before(self, indent: str) -> list[str]:
        """The series context, then each ``before_evaluation``."""
        ...

    def after(self, indent: str, detail_of_result: bool = True) -> list[str]:
        """Each ``after_evaluation``, shown ``present(result, default)``.

        ``detail_of_result``: ``present`` is ``detail_of`` (a result's own
        detail, when it has one, is shown).
        """
        ...


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

    @property
    def active(self) -> int:
        """How many views are set now, anywhere (0: :meth:`get` answers None)."""
        ...

    def get(self) -> Looking | None:
        """The current request's view (None: no valid token)."""
        ...


@final
class Composition:
    """What a client run composes with the flag data, decided once per change.

    Attributes:
        own: the async client's evaluations read the data in the caller's
            frame (no big segments; no gate, or one that present keys
            pass without a wait). A snapshot's always do.
        stages: the text of the hooks' stages when a hook has an
            evaluation stage of its own (None: none has), as they are
            when composed (a hook added later composes anew).
        ledger: where evaluations are counted (None: analytics events off).
        lens: the flag lens (``aioflags.lens``): the request's view, if
            any, overrides flags and traces them (None: not configured).
    """

    __slots__ = ("ledger", "lens", "own", "stages")

    def __init__(
        self,
        *,
        own: bool,
        stages: StageText | None,
        ledger: Ledger | None,
        lens: Lensing | None = None,
    ) -> None:
        self.own: bool = own
        self.stages: StageText | None = stages
        self.ledger: Ledger | None = ledger
        self.lens: Lensing | None = lens

    @property
    def observed(self) -> bool:
        """Whether its evaluations are counted, run hooks or look through a lens."""
        return (
            self.stages is not None or self.ledger is not None or self.lens is not None
        )

    @property
    def name(self) -> str:
        """The stages it has, for the generated code's file name."""
        if not self.own:
            return "gated"
        parts = [
            "hooks" if self.stages is not None else "",
            "events" if self.ledger is not None else "",
            "lens" if self.lens is not None else "",
        ]
        return "+".join(part for part in parts if part) or "plain"


#: The evaluation methods: the type each one's value must have (None: any),
#: whether it answers the detail (and its events carry the reason), what it
#: answers (``value``, ``detail``, or ``result``: the flag's result, for a
#: caller that makes its own answer), and the public method its hooks'
#: series context names.
METHODS: Final[dict[str, tuple[type | None, bool, str, str]]] = {
    "variation": (None, False, "value", "variation"),
    "variation_detail": (None, True, "detail", "variation_detail"),
    "bool_variation": (bool, False, "value", "bool_variation"),
    "int_variation": (int, False, "value", "int_variation"),
    "float_variation": (float, False, "value", "float_variation"),
    "string_variation": (str, False, "value", "string_variation"),
    "json_variation": (None, False, "value", "json_variation"),
    "bool_variation_detail": (bool, True, "detail", "bool_variation_detail"),
    "int_variation_detail": (int, True, "detail", "int_variation_detail"),
    "float_variation_detail": (float, True, "detail", "float_variation_detail"),
    "string_variation_detail": (str, True, "detail", "string_variation_detail"),
    "json_variation_detail": (None, True, "detail", "json_variation_detail"),
    # the flag's result, counted as a value evaluation (``aioflags diff``)
    "result": (None, False, "result", "variation"),
    # a migration flag's result: counted as a value evaluation, the hooks
    # shown the stage's detail (``FlagSnapshot.migration_variation``)
    "migration": (None, False, "result", "migration_variation"),
}


def _answer(indent: str, answer: str) -> list[str]:
    """The answer stage: the value or the default, the detail, or the result."""
    if answer == "detail":
        return [
            f"{indent}shown = result.detail",
            f"{indent}return detail_of(result, default) if shown is None else shown",
        ]
    if answer == "result":
        return [f"{indent}return result"]
    return [
        f"{indent}return default if result.variation_index is None else result.value"
    ]


def body(composition: Composition, method: str, data: str) -> list[str]:
    """The statements from the door to the answer of ``method``, for ``composition``.

    ``data`` is the expression of the snapshot the flag is read from. A
    call the door or the lookup turns away falls through past them: the
    writer adds what answers it (a snapshot's :func:`~._door.other`, the
    async client's gate).
    """
    kind, detail, answer, _ = METHODS[method]
    stages = composition.stages
    ledger = composition.ledger
    indent = " " * 12  # (the run's statements sit under the door and the lookup)
    lines = [
        # door: a valid Context
        f"    if {DOOR}:",
        # find: the flag's head, made once per snapshot
        f"        matcher = {data}._matcher",
        "        try:",
        "            head = matcher.heads[key]",
        "        except KeyError:  # first evaluated in this snapshot",
        "            head = matcher.find_head(key)",
        "        except TypeError:  # an unhashable key: the door says so",
        "            head = None",
        "        if head is not None:",
    ]
    state = "matcher"
    pick: list[str] = []
    if ledger is not None:
        # count (set up): a flag that is not plain (prerequisites: their
        # evaluations are counted too) runs with a matcher that counts them
        if ledger.in_place is None:
            state = f"matcher if head[1] else matcher.recording(ledger)[{int(detail)}]"
        else:
            # (the loop's ledger: prerequisites inline, counted in place,
            # with the flag's own counting matcher, looked up here)
            state = "state"
            pick = [
                "if head[1]:",
                "    state = matcher",
                "else:",
                "    try:",
                f"        state = matcher.counters[ledger][{int(detail)}][key]",
                "    except KeyError:  # its first evaluation in this snapshot",
                f"        state = matcher.counting(ledger, key, {int(detail)})",
            ]
    # before, run: the head, in this frame, with the hooks' stages around it
    if stages is not None:
        lines += stages.before(indent)
    if composition.lens is None:
        lines += _run(indent, state, kind, ledger, detail, pick)
    else:
        # lens: the request's view (None: no token) overrides the flag, or
        # the flag's code runs; an overridden evaluation is not counted
        inner = indent + "    "
        lines += [
            f"{indent}{_LOOK}",
            f"{indent}if view is None or (result := view.override(matcher, key,"
            " context)) is None:",
            *_run(inner, state, kind, ledger, detail, pick),
        ]
        if kind is not None:
            lines += [f"{indent}else:", *_typed(inner)]
        lines += _saw(indent)
    if stages is not None:
        lines += stages.after(indent, answer != "result")
    return lines + _answer(indent, answer)


#: The lens stage's read of the request's view: the ``ContextVar`` only
#: while some view is open (``Lens.active``), else None at the cost of an
#: attribute.
_LOOK: Final = "view = lens.get() if lens.active else None"


def _saw(indent: str) -> list[str]:
    """The trace stage: the view (if any) is told what the evaluation answered."""
    return [
        f"{indent}if view is not None:",
        f"{indent}    view.saw(key, result, default)",
    ]


def _typed(indent: str) -> list[str]:
    """The type stage: a typed method's value has its type, else WRONG_TYPE."""
    return [
        f"{indent}if result.variation_index is not None and default is not"
        " None and type(result.value) is not kind:",
        f"{indent}    ok, value = typed_check(result.value, kind)",
        f"{indent}    if not ok:",
        f"{indent}        result = WRONG_TYPE",
        f"{indent}    elif value is not result.value:  # int <-> float",
        f"{indent}        result = result.with_value(value)",
    ]


def _run(
    indent: str,
    state: str,
    kind: type | None,
    ledger: Ledger | None,
    detail: bool,
    pick: list[str],
) -> list[str]:
    """Run the head, [type], [count]: what sets ``result`` from the flag's code."""
    lines = write_run_head(indent, state, pick)
    if kind is not None:
        lines += _typed(indent)
    if ledger is not None:  # count (the ledger's common case in place, if any)
        record = "ledger.evaluated(matcher, key, context, result, default" + (
            ", True)" if detail else ")"
        )
        text = ledger.in_place
        count = [record] if text is None else text.format(record=record).splitlines()
        lines += [indent + line for line in count]
    return lines


def _stage_detail(result: Result, default: Any) -> EvaluationDetail[Any]:
    """The detail the hooks of ``migration_variation`` are shown (``default`` names a stage)."""
    from ._migration import Stage, stage_detail

    return stage_detail(detail_of(result, default), Stage(default))


def names(composition: Composition, method: str) -> dict[str, Any]:
    """What :func:`body`'s text for ``method`` reads by name."""
    kind, _, answer, public = METHODS[method]
    stages = composition.stages
    return {
        "__name__": __name__,  # (where tracers and profilers say it runs)
        **(stages.names if stages is not None else {}),
        **RUN_HEAD_NAMES,
        "Context": Context,
        "detail_of": detail_of,
        "ledger": composition.ledger,
        "WRONG_TYPE": ERROR_RESULTS["WRONG_TYPE"],
        "kind": kind,
        "typed_check": typed_check,
        "method": public,  # (what the hooks' series context says)
        # (the detail the after stages are shown)
        "present": _stage_detail if answer == "result" else detail_of,
        "other": other,
        "lens": composition.lens,
    }


class SyncMethod(Protocol):
    """``method(snapshot, key, context, default)``: one of a snapshot's evaluations.

    ``snapshot`` is a ``FlagSnapshot``: the data it reads.
    """

    def __call__(
        self,
        snapshot: Data,
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Any: ...


def _write_sync(composition: Composition, method: str) -> SyncMethod:
    """A snapshot's ``method`` for ``composition``: :func:`body`, then the door's answer."""
    stages = composition.stages
    lines = [
        f"def {method}(snapshot, key, context, default):",
        *body(composition, method, "snapshot"),
        # other: the door's answer, with the hooks' stages around it
        *(stages.before("    ") if stages is not None else ()),
        "    result = other(snapshot, key, context, default, ledger)",
        *(["    " + _LOOK, *_saw("    ")] if composition.lens is not None else ()),
        *(
            stages.after("    ", METHODS[method][2] != "result")
            if stages is not None
            else ()
        ),
        *_answer("    ", METHODS[method][2]),
        "",
    ]
    namespace = names(composition, method)
    exec(compiled("\n".join(lines), composition.name), namespace)  # no data
    function: SyncMethod = namespace[method]
    return function


@final
class _Unwritten:
    """An :class:`Evaluation`'s method before its first call: writes it, then calls it.

    A snapshot uses a few of its fourteen methods: each is written on its
    first call, as a flag's code is on its first evaluation.
    """

    __slots__ = ("evaluation", "method", "written")

    def __init__(self, evaluation: Evaluation, method: str) -> None:
        self.evaluation = evaluation
        self.method = method
        self.written: SyncMethod | None = None  # (for a caller that kept this)

    def __call__(
        self,
        snapshot: Data,
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Any:
        written = self.written
        if written is None:
            written = _write_sync(self.evaluation.composition, self.method)
            setattr(self.evaluation, self.method, written)
            self.written = written
        return written(snapshot, key, context, default)


@final
class Evaluation:
    """One composition's synchronous evaluations: what a snapshot's methods call.

    ``evaluation.variation(snapshot, key, context, default)``... for each
    of :data:`METHODS`, written for :attr:`composition` on first call.
    Made once per composition (the client's evaluator holds its own, a
    snapshot the one it was composed with): the mode is never tested per
    call.
    """

    __slots__ = (
        "bool_variation",
        "bool_variation_detail",
        "composition",
        "float_variation",
        "float_variation_detail",
        "int_variation",
        "int_variation_detail",
        "json_variation",
        "json_variation_detail",
        "migration",
        "result",
        "string_variation",
        "string_variation_detail",
        "variation",
        "variation_detail",
    )

    variation: SyncMethod
    variation_detail: SyncMethod
    bool_variation: SyncMethod
    int_variation: SyncMethod
    float_variation: SyncMethod
    string_variation: SyncMethod
    json_variation: SyncMethod
    bool_variation_detail: SyncMethod
    int_variation_detail: SyncMethod
    float_variation_detail: SyncMethod
    string_variation_detail: SyncMethod
    json_variation_detail: SyncMethod
    migration: SyncMethod
    result: SyncMethod

    def __init__(self, composition: Composition) -> None:
        self.composition: Composition = composition
        for method in METHODS:
            setattr(self, method, _Unwritten(self, method))

    def __repr__(self) -> str:
        return f"<aioflags Evaluation {self.composition.name}>"


#: The evaluation of the plain composition: no events, no hooks (a
#: store's snapshots, and a pass of big segments that may be dropped).
PLAIN: Final = Evaluation(Composition(own=True, stages=None, ledger=None))


def write(
    composition: Composition,
    method: str,
    head: list[str],
    tail: list[str],
    namespace: Mapping[str, Any],
) -> Callable[..., Any]:
    """A function: ``head`` (its ``def`` line), :func:`body`, ``tail``.

    For the async client's methods (``_client._composition``): their
    ``data`` is the store's snapshot (``store.snapshot``), their ``tail``
    what answers the rest (a composition that is not :attr:`~Composition.own`
    has no body: the tail answers all); ``namespace`` adds what they read.
    """
    own = body(composition, method, "store.snapshot") if composition.own else []
    lines = [*head, *own, *tail, ""]
    space = {**names(composition, method), **namespace}
    exec(compiled("\n".join(lines), composition.name), space)  # no data
    function: Callable[..., Any] = space[method]
    return function
