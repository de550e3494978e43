"""One evaluation per composition: the client's awaited evaluations, written once.

A *composition* is what a client run puts around the flag data: analytics
events (the event loop's ledger), hooks with an evaluation stage of their
own (their stages), and a gate that awaited evaluations pass
first (a persistent store's reads, big segments). The evaluator decides it
once, when a part changes (:class:`Composition`), never per call, and
:func:`write` writes each of the client's awaited evaluation methods
(:data:`METHODS`) for exactly that composition from one text, with only
the stages it has::

    guard    still its composition, the class's own method?  no: the
             client's method now (:class:`Face`)
    door     a valid Context?                        no ─┐
    find     the flag's head (Matcher.heads)       none ─┤
    run      the hooks' before stages, RUN_HEAD          │
    type     typed methods: WRONG_TYPE                   │
    count    Ledger.record (analytics events on)         │
    after    the hooks' after stages, shown the detail   │
    answer   the value or the default; the detail        │
    other    the snapshot's method, through the gate ◄───┘
             (the door's refusals, a missing flag, a gate every
              evaluation passes: big segments, a store read per call)

A stage is written in one place here; a new one (an override layer, say)
is one more ``if`` in :func:`write` and one more part of
:class:`Composition`. The functions run in the caller's own frame (the
client installs them as its methods: a call more would cost ~490
instructions, 9 % of an evaluation, callgrind), and their source is
registered for tracebacks.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Final, Protocol, final

from aioflags._evaluation._codegen import register_source
from aioflags._evaluation._context import Context
from aioflags._evaluation._evaluate import (
    ERROR_RESULTS,
    RUN_HEAD_NAMES,
    typed_check,
    write_run_head,
)
from aioflags._evaluation._results import detail_of
from aioflags._evaluation._snapshot import FlagSnapshot

from ._hooks import Stages

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from types import CodeType

    from aioflags._analytics._recorder import Ledger

    from ._hooks import HookRunner

    #: What the written methods read the data from (``Evaluator.store``).
    class _Data(Protocol):
        @property
        def snapshot(self) -> FlagSnapshot: ...

    #: ``Evaluator.now``: the snapshot to evaluate ``key`` in now, or None.
    _Now = Callable[[str], FlagSnapshot | None]
    #: ``Evaluator.later``: the evaluation once the gate has let it through.
    _Later = Callable[..., Awaitable[Any]]

    #: What holds the composition now (``Evaluator``).
    class _Holder(Protocol):
        @property
        def composition(self) -> Composition: ...


__all__ = ["METHODS", "Composition", "Face", "Method", "through_class", "write"]


class Method(Protocol):
    """``await method(key, context, default)``: one of a client's evaluation methods."""

    async def __call__(
        self, key: str, context: Context | None, default: Any, /
    ) -> Any: ...


@final
class Composition:
    """What a client run composes with the flag data, decided once per change.

    Attributes:
        own: evaluations read the data in the caller's frame (no big
            segments; no gate, or one that present keys pass without a wait).
        hooks: the client's hooks when one has an evaluation stage of its
            own (None: none has); their stages as they are when composed
            are written around the run (a hook added later composes anew).
        ledger: where evaluations are counted (None: analytics events off).
    """

    __slots__ = ("hooks", "ledger", "own")

    def __init__(
        self, *, own: bool, hooks: HookRunner | None, ledger: Ledger | None
    ) -> None:
        self.own = own
        self.hooks = hooks
        self.ledger = ledger

    @property
    def name(self) -> str:
        """The stages it has, for the generated code's file name."""
        if not self.own:
            return "gated"
        parts = [
            "hooks" if self.hooks is not None else "",
            "events" if self.ledger is not None else "",
        ]
        return "+".join(part for part in parts if part) or "plain"


_COUNTER: Final = itertools.count()
#: The code of each text written so far: a text depends on the stages
#: alone (which hook runs where is a name bound to it, not in the text),
#: so a composition of a shape met before compiles nothing (a compile of
#: the twelve methods costs ~10 ms of the event loop; binding them, ~0.1).
_CODE: Final[dict[str, CodeType]] = {}


#: How many texts :data:`_CODE` keeps (a text per method and shape of
#: stages: hooks added one by one over a run make new shapes).
_KEPT: Final = 128


def _compiled(source: str, name: str) -> CodeType:
    """``source`` compiled, once while it is among the last used; for tracebacks too."""
    code = _CODE.pop(source, None)
    if code is None:
        filename = f"<aioflags evaluation {next(_COUNTER)}: {name}>"
        code = compile(source, filename, "exec")
        register_source(code, source)  # (dropped when the code is)
        if len(_CODE) >= _KEPT:
            del _CODE[next(iter(_CODE))]  # the least recently used
    _CODE[source] = code  # (the most recently used last)
    return code


@final
class Face:
    """The client a composition's methods are installed on, and its class's own methods.

    A written method is set on the client's instance (``Client._install``),
    so a reference to it may outlive its composition (kept by a caller, put
    back by a mock's ``patch.object`` on exit), and a test may patch the
    class's method. Each written method checks, first, that it is still its
    evaluator's composition and that the class's method is still the
    original; if not, the call goes where ``client.<method>`` would go
    through the class (:func:`through_class`).
    """

    __slots__ = ("client", "originals")

    def __init__(self, client: object, originals: Mapping[str, Any]) -> None:
        self.client = client
        #: The class's own methods, by name (what an unpatched class holds).
        self.originals = originals


def through_class(client: object, name: str) -> Any:
    """``client.<name>`` as the class gives it (a patched class's mock too)."""
    import inspect  # (only for a method out of date: not with aioflags)

    cls = type(client)
    attr = inspect.getattr_static(cls, name)
    get = getattr(type(attr), "__get__", None)
    return attr if get is None else get(attr, client, cls)


#: The client's awaited evaluation methods: the type each one's value must
#: have (None: any), and whether it answers the detail.
METHODS: Final[dict[str, tuple[type | None, bool]]] = {
    "variation": (None, False),
    "variation_detail": (None, True),
    "bool_variation": (bool, False),
    "int_variation": (int, False),
    "float_variation": (float, False),
    "string_variation": (str, False),
    "json_variation": (None, False),
    "bool_variation_detail": (bool, True),
    "int_variation_detail": (int, True),
    "float_variation_detail": (float, True),
    "string_variation_detail": (str, True),
    "json_variation_detail": (None, True),
}


def write(
    composition: Composition,
    method: str,
    store: _Data,
    now: _Now,
    later: _Later,
    holder: _Holder,
    face: Face | None,
) -> Method:
    """The client's awaited ``method`` (one of :data:`METHODS`) for ``composition``.

    It reads the flag data from ``store``; what it does not evaluate in its
    own frame (the door's refusals, a missing flag, a gate) it hands to the
    snapshot ``now(key)`` gives, or awaits ``later``. ``holder`` holds
    the composition now: a method of another one (kept after its
    composition changed) hands the call on, through ``face``'s class.
    """
    kind, detail = METHODS[method]
    return _written(composition, store, now, later, holder, face, method, kind, detail)


def _written(
    composition: Composition,
    store: _Data,
    now: _Now,
    later: _Later,
    holder: _Holder,
    face: Face | None,
    method: str,
    kind: type | None,
    detail: bool,
) -> Method:
    """One method for ``composition``: the stages it has, in order, and no others."""
    hooks = composition.hooks
    ledger = composition.ledger
    # The hooks' stages as they are now: a hook added later composes anew.
    before, after = hooks.stages if hooks is not None else ((), ())
    # (the run's statements sit under the door and find, and under the
    # count's check that there is a flag when events are on)
    indent = " " * (16 if ledger is not None else 12)
    stages = Stages(hooks, before, after, indent)
    lines = [
        f"async def {method}(key, context, default):",
        # still this composition's? (else where client.<method> goes now;
        # a patch of the class's method changes the composition too)
        "    if holder.composition is not composition:",
        "        return await elsewhere(key, context, default)",
    ]
    if composition.own:
        lines += [
            # door: a valid Context (``__class__``: an attribute load, ~80
            # instructions less than calling type())
            "    if context.__class__ is Context and context._error is None:",
            # find: the flag's head, made once per snapshot
            "        matcher = store.snapshot._matcher",
            "        try:",
            "            head = matcher.heads[key]",
            "        except KeyError:  # first evaluated in this snapshot",
            "            head = matcher.find_head(key)",
            "        except TypeError:  # an unhashable key: the snapshot says so",
            "            head = None",
            "        if head is not None:",
        ]
        state = "matcher"
        if ledger is not None:
            outer = indent[:-4]
            # count (set up): the flag counted against (making it raised:
            # nothing to count it against, the snapshot's method answers);
            # a flag that is not plain (prerequisites: their evaluations
            # are counted too) runs with a matcher that counts them
            lines += [
                f"{outer}try:",
                f"{outer}    flag = matcher.hot[key]",
                f"{outer}except KeyError:",
                f"{outer}    flag = matcher.made(key)",
                f"{outer}if flag is not None:",
            ]
            recording = 1 if detail else 0
            state = f"matcher if head[1] else matcher.recording(ledger)[{recording}]"
        # run: the head, in this frame, with the hooks' stages around it
        # (the series' own text: a call to it would cost ~500 instructions)
        lines += stages.before
        lines += write_run_head(indent, state)
        if kind is not None:  # type: the value's type, else WRONG_TYPE
            lines += [
                f"{indent}if result.variation_index is not None and default is not"
                " None and type(result.value) is not kind:",
                f"{indent}    ok, value = typed_check(result.value, kind)",
                f"{indent}    if not ok:",
                f"{indent}        result = WRONG_TYPE",
                f"{indent}    elif value is not result.value:  # int <-> float",
                f"{indent}        result = result.with_value(value)",
            ]
        if ledger is not None:  # count
            lines.append(
                f"{indent}ledger.record(flag, context, result, default"
                + (", None, True)" if detail else ")")
            )
        lines += stages.after
        # answer
        if detail:
            lines += [
                f"{indent}shown = result.detail",
                f"{indent}return detail_of(result, default) if shown is None"
                " else shown",
            ]
        else:
            lines.append(
                f"{indent}return default if result.variation_index is None"
                " else result.value"
            )
    # other: what the snapshot's method answers, through the gate if any
    # (as Evaluator.evaluate() does it, without a second coroutine)
    lines += [
        "    snapshot = now(key)",
        "    if snapshot is not None:",
        f"        return snapshot.{method}(key, context, default)",
        f"    return await later(FlagSnapshot.{method}, key, context, default)",
        "",
    ]
    source = "\n".join(lines)
    namespace: dict[str, Any] = {
        **stages.names,
        **RUN_HEAD_NAMES,
        "Context": Context,
        "FlagSnapshot": FlagSnapshot,
        "detail_of": detail_of,
        "ledger": ledger,
        "WRONG_TYPE": ERROR_RESULTS["WRONG_TYPE"],
        "kind": kind,
        "typed_check": typed_check,
        "later": later,
        "method": method,  # (what the hooks' series context says)
        "present": detail_of,  # (the detail the after stages are shown)
        "now": now,
        "store": store,
    }
    if face is not None:
        client = face.client
        original = face.originals[method]

        async def elsewhere(key: str, context: Context | None, default: Any) -> Any:
            return await through_class(client, method)(key, context, default)

    else:

        async def elsewhere(key: str, context: Context | None, default: Any) -> Any:
            raise RuntimeError("a method of a composition that has changed")

    namespace["elsewhere"] = elsewhere
    namespace["holder"] = holder
    namespace["composition"] = composition
    exec(_compiled(source, composition.name), namespace)  # no data in the text
    function = namespace[method]
    if face is not None:  # what the class's method says of itself
        import inspect  # (on a client's first call: not with aioflags)

        function.__doc__ = original.__doc__
        function.__annotations__ = dict(original.__annotations__)
        signature = inspect.signature(original)
        function.__signature__ = signature.replace(
            parameters=list(signature.parameters.values())[1:]
        )
    function.__qualname__ = f"Client.{method}"
    function.__module__ = "aioflags"
    written: Method = function
    return written
