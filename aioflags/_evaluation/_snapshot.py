"""FlagSnapshot: one immutable version of the flag data, with a sync evaluation face.

The store swaps whole snapshots atomically, so an evaluation, or a request that
takes ``client.snapshot()`` once and evaluates many flags, always sees one
consistent version of the data.
"""

from __future__ import annotations

import json
import logging
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, final

from aioflags._core._clock import wall_ms

from ._context import Context
from ._evaluate import (
    ERROR_RESULTS,
    Matcher,
    Recorded,
    evaluate,
    own_prerequisites,
    prerequisites_reached,
    run_head,
    run_heads,
    typed_check,
)
from ._logonce import Occurrences
from ._results import (
    JSON_ENTRY,
    EvaluationDetail,
    FlagsState,
    Result,
    detail_of,
    flags_state_slot,
    keep_entry,
    keep_json,
    keep_json_value,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aioflags._core._json import JSONObject, JSONValue

    from ._membership import MembershipSource
    from ._migration import OpTracker, Stage
    from ._model import CompiledFlag, CompiledSegment
    from ._recording import EvaluationRecorder

__all__ = ["FlagSnapshot", "Series", "SeriesRun", "detail_of"]

logger = logging.getLogger("aioflags.evaluation")
_MISUSED: set[str] = set()  # the argument types already logged as not a Context
R = TypeVar("R")


def _misused(context: object) -> bool:
    """Whether an evaluation got something other than a Context or None.

    The evaluation methods check ``context.__class__ is Context`` at the
    door (an attribute load: cheaper than calling ``type()``); an object
    that only claims the class is found out here, as it has no ``_error``
    of None.
    """
    return context is not None and type(context) is not Context


def _refused(context: object, answer: R) -> R:
    """The answer of an evaluation without a valid Context: what was wrong is logged once.

    Something other than a Context is logged at ERROR once per type (a
    bug); no context (``None``) and an invalid Context (an empty key, often
    from a request that had none) at WARNING, once per reason.
    """
    if context is None:
        _invalid_context("None", "got no context (None)")
    elif type(context) is not Context:
        _not_a_context(context, answer)
    elif context._error is not None:
        _invalid_context(context._error, f"got an invalid Context ({context._error})")
    return answer


#: The reasons evaluations got no valid context already logged (None, or a
#: Context's error): at most this many, then one line says further are not.
_MAX_INVALID_CONTEXTS: Final = 100
_INVALID_CONTEXTS: Final = Occurrences(_MAX_INVALID_CONTEXTS)


def _invalid_context(reason: str, got: str) -> None:
    """An evaluation got ``None`` or an invalid Context: warn once per ``reason``."""
    if reason in _INVALID_CONTEXTS:
        return  # the lock only for a reason not logged yet
    count = _INVALID_CONTEXTS.add(reason)
    if count == 1:
        logger.warning(
            "aioflags evaluation %s: the default is returned with "
            "USER_NOT_SPECIFIED. Pass a valid Context: Context.create(key) with "
            "a non-empty key, or Context.from_dict({...}); context.error says "
            "what is wrong with one (logged once per reason)",
            got,
        )
    elif count == 0 and _INVALID_CONTEXTS.newly_full():
        logger.warning(
            "%d reasons for an invalid context have been logged: further ones "
            "are not (their evaluations still return the default, "
            "USER_NOT_SPECIFIED)",
            _MAX_INVALID_CONTEXTS,
        )


def _not_a_context(context: object, answer: R) -> R:
    """An evaluation got something other than a Context: log once per type."""
    _once_per_type(
        _MISUSED,
        context,
        "aioflags evaluations take an aioflags.Context, got %s %r: the default "
        "is returned with USER_NOT_SPECIFIED. Use Context.create(key) or "
        "Context.from_dict({...}).",
    )
    return answer


_NOT_KEYS: set[str] = set()  # the key types already logged as not a str


def _not_a_key(key: object, answer: R) -> R:
    """An evaluation got a flag key that is not a str: log once per type.

    Checked at the door before any lookup (``key.__class__ is not str``
    first: a str subclass, a ``StrEnum`` member, is a key too): an
    unhashable key (a list) would otherwise raise from the lookup.
    """
    _once_per_type(
        _NOT_KEYS,
        key,
        "aioflags flag keys are str, got %s %r: the default is returned "
        "(FLAG_NOT_FOUND)",
    )
    return answer


def _once_per_type(seen: set[str], given: object, message: str) -> None:
    """Log ``message`` (``%s %r``: the type's name, ``given``) once per type in ``seen``."""
    kind = type(given).__name__
    if kind not in seen:
        seen.add(kind)
        logger.error(message, kind, given)


#: Unknown flag keys already logged: at most this many, then none are logged.
_MAX_UNKNOWN_KEYS: Final = 1000
_UNKNOWN_KEYS: Final = Occurrences(_MAX_UNKNOWN_KEYS)


def _unknown_flag(key: str) -> Result:
    """An evaluation of a key that no flag has: warn once per key (a typo?)."""
    if key not in _UNKNOWN_KEYS:  # the lock only for a key not logged yet
        count = _UNKNOWN_KEYS.add(key)
        if count == 1:
            logger.warning(
                "No flag %r in the flag data: the default is returned "
                "(FLAG_NOT_FOUND). A typo in the key, or a flag not created in "
                "this environment? (logged once per key)",
                key,
            )
        elif count == 0 and _UNKNOWN_KEYS.newly_full():
            logger.warning(
                "%d unknown flag keys have been logged: further unknown keys are "
                "not (their evaluations still return the default, FLAG_NOT_FOUND)",
                _MAX_UNKNOWN_KEYS,
            )
    return _NOT_FOUND


T = TypeVar("T")
_NOT_READY: Final = ERROR_RESULTS["CLIENT_NOT_READY"]
_NO_CONTEXT: Final = ERROR_RESULTS["USER_NOT_SPECIFIED"]
_NOT_FOUND: Final = ERROR_RESULTS["FLAG_NOT_FOUND"]
_WRONG_TYPE: Final = ERROR_RESULTS["WRONG_TYPE"]
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_EMPTY_ENTRY: Final[JSONObject] = {}  # a placeholder, always replaced


def _meta_entry(
    flag: CompiledFlag,
    result: Result,
    with_reasons: bool,
    omit: bool,
    prerequisites: list[str] | tuple[str, ...],
) -> JSONObject:
    """A flag's ``$flagsState`` entry (evaluation.md §11)."""
    index, reason, experiment = result.variation_index, result.reason, result.experiment
    entry: JSONObject = {}
    if index is not None:
        entry["variation"] = index
    if not omit:
        entry["version"] = flag.version
        if with_reasons or experiment:
            entry["reason"] = reason
    if flag.track_events or experiment:
        entry["trackEvents"] = True
    if experiment:
        entry["trackReason"] = True
    if flag.debug_events_until_date is not None:
        entry["debugEventsUntilDate"] = flag.debug_events_until_date
    if prerequisites:
        entry["prerequisites"] = list(prerequisites)
    return entry


def _stage_detail(
    result: Result, default: Any, key: str | None = None
) -> EvaluationDetail[Any]:
    """The detail ``migration_variation`` serves (``default`` names a stage).

    With the flag's ``key``, a value that names no stage is logged (once).
    """
    from ._migration import Stage, stage_detail

    return stage_detail(detail_of(result, default), Stage(default), key)


def _run_evaluation(
    head: tuple[Any, ...], context: Context | None, _: object
) -> Result:
    """Run the head :meth:`FlagSnapshot._hooked` made."""
    _, snapshot, key, default, kind, detail = head
    result: Result = snapshot._evaluation(key, context, default, kind, detail)
    return result


class SeriesRun(Protocol):
    """A series compiled for its stages (``HookRunner.run``)."""

    def __call__(
        self,
        head: tuple[Any, ...] | Result,
        key: str,
        context: Context | None,
        matcher: Any,
        method: str,
        default: Any,
        present: Callable[[Result, Any], EvaluationDetail[Any]] = detail_of,
        /,
    ) -> Result:
        """``head``'s result for ``context``, with the series around it.

        ``method`` is the public method called; ``present`` makes the
        detail the ``after_evaluation`` stages see from the result.
        """
        ...


class Series(Protocol):
    """What runs around a snapshot's public evaluations: the client's hooks."""

    @property
    def run(self) -> SeriesRun:
        """The series, as compiled for the hooks registered so far."""
        ...


class _Plan:
    """What ``all_flags_state`` with given options knows before a context.

    Built once per snapshot and options: the values and ``$flagsState``
    entries of the flags whose result is constant (off, or a fixed
    fallthrough, ~a quarter of a typical environment), in flag order with
    placeholders for the others; the others to evaluate, as flat tuples (a
    loop over them reads no per-flag tuple) with each one's ``ops`` as the
    matcher's heads hold them (the loop reads nothing of a flag object but
    for an error); and the JSON pieces, once ``to_json`` has made them
    (:func:`_plan_json`).
    """

    __slots__ = (
        "flags",
        "json",
        "keys",
        "meta",
        "ops",
        "required",
        "values",
    )

    def __init__(
        self,
        values: JSONObject,
        meta: dict[str, JSONObject],
        dynamic: list[tuple[str, CompiledFlag, bool]],
        matcher: Matcher,
    ) -> None:
        self.values = values
        self.meta = meta
        self.keys: tuple[str, ...] = tuple(key for key, _, _ in dynamic)
        self.flags: tuple[CompiledFlag, ...] = tuple(flag for _, flag, _ in dynamic)
        #: as the snapshot's heads run them (a constant one's gives its result)
        self.ops: tuple[tuple[Any, ...], ...] = tuple(
            matcher.runnable_ops(key, flag)
            if flag.constant is None
            else (_constant, True, flag.constant)
            for key, flag in zip(self.keys, self.flags, strict=True)
        )
        #: whether each is another flag's prerequisite (its result is kept)
        self.required: tuple[bool, ...] = tuple(r for _, _, r in dynamic)
        self.json: tuple[list[str], list[str], tuple[int, ...] | None] | None = None


def _constant(head: tuple[Any, ...], context: Context, matcher: Matcher) -> Result:
    """The head of a constant flag in a plan's flags to evaluate: its result.

    ``head``: this function, ``True``, the result. (A flag whose details
    a debug window may omit: evaluated with the others, whatever the time.)
    """
    result: Result = head[2]
    return result


_DUMPS: Final = json.JSONEncoder(separators=(",", ":")).encode  # as to_json's


class _Pending:
    """An all-flags state's results, for the :class:`FlagsState` built on first read.

    ``results`` are those of the plan's flags to evaluate, in order; a
    result that belongs to its flag keeps its entry once built (a function
    of the result and the options alone: the prerequisites it reached are
    known from it), and the JSON of its entry and value; ``odd`` holds the
    entries of the others.
    """

    __slots__ = ("odd", "plan", "results", "with_reasons")

    def __init__(
        self,
        plan: _Plan,
        results: list[Result],
        odd: dict[str, JSONObject],
        with_reasons: bool,
    ) -> None:
        self.plan = plan
        self.results = results
        self.odd = odd
        self.with_reasons = with_reasons

    def _own_entry(self, flag: CompiledFlag, result: Result, slot: int) -> JSONObject:
        cache = result.cache
        assert cache is not None
        entry: JSONObject | None = cache[slot]
        if entry is None:
            entry = _meta_entry(
                flag, result, self.with_reasons, False, own_prerequisites(flag, result)
            )
            keep_entry(result, slot, entry)
        return entry

    def build(self) -> tuple[JSONObject, dict[str, JSONObject]]:
        """The values and entries: the plan's, with the results in place."""
        plan = self.plan
        values = dict(plan.values)
        meta = dict(plan.meta)
        slot = flags_state_slot(self.with_reasons, False)
        odd = self.odd
        for key, flag, result in zip(plan.keys, plan.flags, self.results, strict=True):
            values[key] = result.value
            cache = result.cache
            if cache is None:
                entry = odd[key]
            else:
                entry = cache[slot]
                if entry is None:
                    entry = self._own_entry(flag, result, slot)
            meta[key] = entry
        return values, meta

    def json(self) -> str | None:
        """``to_json()``'s text, joined from JSON kept in the plan and the results.

        What ``json.dumps(to_dict())`` gives, without building the dicts:
        the constant flags' pieces are the plan's, each result's are kept in
        it once made. ``None`` when a flag's key is ``$flagsState`` or
        ``$valid`` (to_dict's own keys replace it: serialise that instead).
        """
        values_json, meta_json, positions = _plan_json(self.plan)
        if positions is None:
            return None
        keys = self.plan.keys
        values_json = list(values_json)
        meta_json = list(meta_json)
        slot = flags_state_slot(self.with_reasons, False)
        odd = self.odd
        # Only the results are read (the plan's flags when a piece is made).
        for i, result in enumerate(self.results):
            at = positions[i]
            cache = result.cache
            if cache is None:
                name = _DUMPS(keys[i])
                values_json[at] = f"{name}:{_DUMPS(result.value)}"
                meta_json[at] = f"{name}:{_DUMPS(odd[keys[i]])}"
                continue
            value = result.json_value
            if value is None:
                value = f"{_DUMPS(keys[i])}:{_DUMPS(result.value)}"
                keep_json_value(result, value)
            values_json[at] = value
            entry = cache[JSON_ENTRY + slot]
            if entry is None:
                own = self._own_entry(self.plan.flags[i], result, slot)
                entry = f"{_DUMPS(keys[i])}:{_DUMPS(own)}"
                keep_json(result, slot, entry)
            meta_json[at] = entry
        values_json.append('"$flagsState":{' + ",".join(meta_json) + "}")
        values_json.append('"$valid":true')
        return "{" + ",".join(values_json) + "}"


def _plan_json(plan: _Plan) -> tuple[list[str], list[str], tuple[int, ...] | None]:
    """The plan's JSON pieces (``"key":value`` and ``"key":{entry}``), built once.

    In flag order, with empty placeholders for the flags to evaluate, whose
    places are ``positions``; ``positions`` is ``None`` if a flag's key
    is one of to_dict's own keys.
    """
    pieces = plan.json
    if pieces is None:
        values = plan.values
        if "$flagsState" in values or "$valid" in values:
            pieces = plan.json = ([], [], None)
        else:
            index = {key: i for i, key in enumerate(values)}
            pieces = plan.json = (
                [f"{_DUMPS(k)}:{_DUMPS(v)}" for k, v in values.items()],
                [f"{_DUMPS(k)}:{_DUMPS(v)}" for k, v in plan.meta.items()],
                tuple(index[key] for key in plan.keys),
            )
    return pieces


def _result_of(self: FlagSnapshot, key: str, context: Context | None) -> Result:
    """The flag's result for ``context``: an untyped evaluation recording nothing.

    Through the flag's head (:meth:`Matcher.head_of`): its constant
    result, or its ops, run by :func:`run_head`.
    """
    if not self._initialized:
        return _NOT_READY
    if context.__class__ is not Context or context._error is not None:
        return _refused(context, _NO_CONTEXT)
    given: object = key  # typed str; callers may not be
    if given.__class__ is not str and not isinstance(given, str):
        return _not_a_key(given, _NOT_FOUND)
    matcher = self._matcher
    head: tuple[Any, ...] | Result | None
    try:
        head = matcher.heads[key]
    except KeyError:  # first evaluated in this snapshot
        head = matcher.find_head(key)
        if head is None:
            return _unknown_flag(key)
    if type(head) is Result:  # a constant flag (a deleted one: FLAG_NOT_FOUND)
        return head
    return run_head(head, key, context, matcher)


def _evaluation_of(
    self: FlagSnapshot,
    key: str,
    context: Context | None,
    default: Any,
    kind: type | None,
    detail: bool,
) -> Result:
    """The result a method hands out (``kind``: its type; ``detail``: a ``*_detail`` one).

    Recorded as that method records it when analytics events are on (a
    value method's event has no reason). What the hooks' series runs.
    """
    events = self._events
    if events is not None:
        return self._recorded(events, key, context, default, kind, detail)
    if kind is not None:
        return self._typed(key, context, default, kind)
    matcher = self._matcher
    try:  # as in variation_detail(): a head made, run here (a call fewer)
        head = matcher.heads[key]
    except (KeyError, TypeError):
        head = None
    if head is None or context.__class__ is not Context or context._error is not None:
        return self._result(key, context)
    return run_head(head, key, context, matcher)


def _hooked_of(
    self: FlagSnapshot,
    hooks: Series,
    method: str,
    key: str,
    context: Context | None,
    default: Any,
    kind: type | None = None,
    detail: bool = False,
    present: Callable[[Result, Any], EvaluationDetail[Any]] = detail_of,
) -> Result:
    """The public ``method``'s evaluation (:meth:`_evaluation`), ``hooks``' series around it.

    Handed over as a head (``Matcher.heads``: a tuple whose first item
    runs it, called with ``(head, context, matcher)``).
    """
    head = (_run_evaluation, self, key, default, kind, detail)
    return hooks.run(head, key, context, None, method, default, present)


def _recorded_of(
    self: FlagSnapshot,
    events: EvaluationRecorder,
    key: str,
    context: Context | None,
    default: Any,
    kind: type | None,
    detail: bool,
) -> Result:
    """Evaluate as :meth:`_result` (then type-check for ``kind``), recording it.

    The path of every evaluation while analytics events are on: the
    prerequisites' evaluations are recorded too, before the flag's own.
    """
    given: object = key  # typed str; callers may not be
    if given.__class__ is not str and not isinstance(given, str):  # no event either
        return _not_a_key(given, _NOT_FOUND)
    try:
        flag: CompiledFlag | None = self._flags[key]
    except KeyError:  # a snapshot that is not ready holds none
        flag = None
    except Exception:  # noqa: BLE001 - making it raised: a bug, its head reports it
        return _result_of(self, key, context)  # (nothing to count it against)
    if context.__class__ is not Context or context._error is not None:
        if not self._initialized and not _misused(context):
            return _NOT_READY  # no event
        return _refused(context, _NO_CONTEXT)  # no event
    if flag is None or flag.deleted:
        if not self._initialized:
            events.unknown(key, context, default, _NOT_READY)
            return _NOT_READY
        events.unknown(key, context, default, _NOT_FOUND)
        return _NOT_FOUND if flag is not None else _unknown_flag(key)
    result = flag.constant
    recorded: Recorded | None = None
    if result is None:
        if flag.prerequisites:
            recorded = []
            result = evaluate(self._matcher, flag, context, recorded)
        else:
            result = evaluate(self._matcher, flag, context)
    if (
        kind is not None
        and result.variation_index is not None
        and default is not None
        and kind is not object
        and type(result.value) is not kind
    ):
        ok, value = typed_check(result.value, kind)
        if not ok:
            result = _WRONG_TYPE
        elif value is not result.value:
            result = result.with_value(value)
    events.evaluation(flag, context, result, default, detail, recorded)
    return result


def _typed_of(
    self: FlagSnapshot, key: str, context: Context | None, default: T, kind: type
) -> Result:
    """The flag's result typed for ``kind``: WRONG_TYPE if its value is not one.

    Recording nothing (``*_detail`` methods' path with events off).
    """
    matcher = self._matcher
    try:  # as in variation_detail()
        head = matcher.heads[key]
    except (KeyError, TypeError):
        head = None
    if head is None or context.__class__ is not Context or context._error is not None:
        result = self._result(key, context)
    else:
        result = run_head(head, key, context, matcher)
    if result.variation_index is None or default is None:
        return result
    ok, value = typed_check(result.value, kind)
    if not ok:
        return _WRONG_TYPE
    if value is result.value:
        return result
    return result.with_value(value)  # int <-> float


def _typed_value_of(
    self: FlagSnapshot,
    method: str,
    key: str,
    context: Context | None,
    default: T,
    kind: type,
) -> T:
    """What the typed value methods (``bool_variation``...) return.

    Their hooks or events path, else what :func:`_typed_of` and
    :func:`typed_check` do, without their calls.
    """
    hooks = self._hooks
    if hooks is not None:
        result = self._hooked(hooks, method, key, context, default, kind)
        return default if result.variation_index is None else result.value
    events = self._events
    if events is not None:
        result = self._recorded(events, key, context, default, kind, False)
        return default if result.variation_index is None else result.value
    # As _result() does it, in this frame; every failure gives the
    # default (a snapshot that is not ready holds no flags).
    if context.__class__ is not Context or context._error is not None:
        return _refused(context, default)
    given: object = key  # typed str; callers may not be
    if given.__class__ is not str and not isinstance(given, str):
        return _not_a_key(given, default)
    try:
        flag = self._flags.get(key)
    except Exception:  # noqa: BLE001 - making it raised: a bug, its head reports it
        _result_of(self, key, context)  # its EXCEPTION, logged once
        return default
    if flag is None:
        if self._initialized:
            _unknown_flag(key)
        return default
    constant = flag.constant  # a deleted flag's serves no variation
    result = evaluate(self._matcher, flag, context) if constant is None else constant
    value = result.value
    if result.variation_index is None:
        return default
    tv = type(value)
    if tv is kind or kind is object or default is None:
        return value  # type: ignore[no-any-return]
    if kind is int and tv is float:
        return int(value)  # type: ignore[return-value]
    if kind is float and tv is int:
        return float(value)  # type: ignore[return-value]
    return default  # WRONG_TYPE


def _typed_detail_of(
    self: FlagSnapshot,
    method: str,
    key: str,
    context: Context | None,
    default: T,
    kind: type,
) -> EvaluationDetail[T]:
    """What the typed ``*_detail`` methods return (``method``: the one called)."""
    hooks = self._hooks
    if hooks is not None:
        result = self._hooked(hooks, method, key, context, default, kind, True)
    else:
        result = self._evaluation(key, context, default, kind, True)
    return detail_of(result, default)


def _migration_variation(
    self: FlagSnapshot, key: str, context: Context | None, default_stage: Stage
) -> tuple[Stage, OpTracker]:
    """:meth:`FlagSnapshot.migration_variation` of ``self``."""
    from ._migration import checked_default, tracked_stage

    stage = checked_default(default_stage)
    default = stage.value
    hooks = self._hooks
    if hooks is not None:
        result = self._hooked(
            hooks,
            "migration_variation",
            key,
            context,
            default,
            present=_stage_detail,
        )
    else:
        result = self._evaluation(key, context, default, None, False)
    detail = _stage_detail(result, default, key)
    return tracked_stage(self._flags, key, context, detail, stage)


@final
class FlagSnapshot:
    """One immutable version of the flag data, evaluated synchronously.

    Get the current one with ``client.snapshot()``. Every method is pure and
    non-blocking: it never does I/O and never raises for bad data, a missing
    flag, a wrong type or an invalid context (it returns the default with an
    ``ERROR`` reason instead).

    Added in version 0.1.0.
    """

    __slots__ = (
        "_all_flags_plan",
        "_events",
        "_flags",
        "_hooks",
        "_initialized",
        "_matcher",
        "_segments",
        "_state_of",
    )

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag] = _EMPTY,
        segments: Mapping[str, CompiledSegment] = _EMPTY,
        *,
        initialized: bool = False,
        recorder: EvaluationRecorder | None = None,
        big_segments: MembershipSource | None = None,
        hooks: Series | None = None,
        hot: dict[str, CompiledFlag] | None = None,
        state_of: Callable[[str], tuple[bool, int] | None] | None = None,
    ) -> None:
        """``hot`` and ``state_of``: what a store's table of ``flags`` tells.

        The flags it has made so far (:attr:`Matcher.hot`), and whether a
        key's flag exists without making it (:attr:`flag_keys`).
        """
        # Not ready means no flags: variation()'s hot path relies on it and
        # skips the readiness check.
        self._flags = flags if initialized else _EMPTY
        self._segments = segments if initialized else _EMPTY
        self._initialized = initialized
        self._state_of = state_of if initialized else None
        # Big segments: where unbounded segments' memberships come from.
        self._matcher = Matcher(
            self._flags, self._segments, big_segments, hot if initialized else None
        )
        self._all_flags_plan: dict[tuple[bool, bool, bool], _Plan] | None = None
        # Analytics events: where evaluations are recorded (None: events off).
        self._events = recorder
        # The hooks' series around every public evaluation (None: no hooks).
        self._hooks = hooks

    def composed(
        self,
        recorder: EvaluationRecorder | None,
        big_segments: MembershipSource | None,
        hooks: Series | None,
    ) -> FlagSnapshot:
        """This snapshot's data with these parts: what the client's evaluator hands out.

        The one place a snapshot is built from another (the flags and
        segments are shared; the matcher, its heads and plans are new).
        """
        return FlagSnapshot(
            self._flags,
            self._segments,
            initialized=self._initialized,
            recorder=recorder,
            big_segments=big_segments,
            hooks=hooks,
            hot=self._matcher.hot,
            state_of=self._state_of,
        )

    def recording(self, recorder: EvaluationRecorder | None) -> FlagSnapshot:
        """This snapshot's data, recording evaluations into ``recorder`` (or not)."""
        return self.composed(recorder, self._matcher.big_segments, self._hooks)

    def with_memberships(
        self, source: MembershipSource, *, quiet: bool
    ) -> FlagSnapshot:
        """This snapshot, with unbounded segments' memberships from ``source``.

        For one pass of an awaited evaluation that needs big-segment
        memberships: it shares this snapshot's heads and all-flags plans
        (neither depends on where memberships come from). ``quiet``: it
        records no analytics events and runs no hooks (a pass whose result
        may be dropped).
        """
        snapshot = self.composed(
            None if quiet else self._events, source, None if quiet else self._hooks
        )
        snapshot._matcher.heads = self._matcher.heads
        plans = self._all_flags_plan
        if plans is None:
            plans = self._all_flags_plan = {}
        snapshot._all_flags_plan = plans
        return snapshot

    @property
    def observed(self) -> bool:
        """Whether evaluating this snapshot records analytics events or runs hooks."""
        return self._events is not None or self._hooks is not None

    @property
    def initialized(self) -> bool:
        """Whether this snapshot holds data from a source (else CLIENT_NOT_READY)."""
        return self._initialized

    @property
    def flag_keys(self) -> frozenset[str]:
        """The keys of the flags that exist (not deleted) in this snapshot."""
        flags = self._flags
        # A store's table tells without compiling a flag it has not made yet.
        state_of = self._state_of
        if state_of is None:
            return frozenset(k for k, f in flags.items() if not f.deleted)
        return frozenset(
            k for k in flags if (state := state_of(k)) is not None and state[0]
        )

    # The evaluation's steps: functions beside the class, its methods all
    # the same (assigned, not called from a method: no call more).
    _result = _result_of
    _evaluation = _evaluation_of
    _hooked = _hooked_of
    _recorded = _recorded_of
    _typed = _typed_of
    _typed_value = _typed_value_of
    _typed_detail = _typed_detail_of

    # --------------------------------------------------------------- untyped
    def variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value for ``context``, or ``default`` if none is served."""
        hooks = self._hooks
        if hooks is not None:
            hooked = self._hooked(hooks, "variation", key, context, default)
            return default if hooked.variation_index is None else hooked.value
        events = self._events
        if events is not None:
            recorded = self._recorded(events, key, context, default, None, False)
            return default if recorded.variation_index is None else recorded.value
        # The hot path: every failure returns the default, so the checks can be
        # merged (the reason is not needed here); a snapshot that is not ready
        # holds no flags, and a deleted flag's constant result serves no
        # variation.
        given: object = key  # typed str; callers may not be
        if given.__class__ is not str and not isinstance(given, str):
            return _not_a_key(given, default)
        try:
            flag: CompiledFlag | None = self._flags[key]
        except KeyError:
            flag = None
        if (
            flag is None
            or context.__class__ is not Context
            or context._error is not None
        ):
            if _misused(context):
                return _not_a_context(context, default)
            if self._initialized:  # (before: no data, nothing to say)
                if context.__class__ is not Context or context._error is not None:
                    _refused(context, default)
                elif flag is None:
                    _unknown_flag(key)
            return default
        result = flag.constant
        if result is None:
            result = evaluate(self._matcher, flag, context)
        return default if result.variation_index is None else result.value

    def variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """The value, the variation index and the reason."""
        hooks = self._hooks
        if hooks is not None:
            result = self._hooked(
                hooks, "variation_detail", key, context, default, detail=True
            )
        elif self._events is None:  # the common case: as _result(), one call fewer
            matcher = self._matcher
            try:
                head = matcher.heads[key]  # (none before the snapshot is ready)
            except (KeyError, TypeError):  # not made yet, no such flag, not a key
                head = None
            if (
                head is None
                or context.__class__ is not Context
                or context._error is not None
            ):
                result = self._result(key, context)
            else:
                result = run_head(head, key, context, matcher)
        else:
            result = self._recorded(self._events, key, context, default, None, True)
        return detail_of(result, default)

    # ----------------------------------------------------------------- typed

    def bool_variation(self, key: str, context: Context | None, default: bool) -> bool:
        """The flag's value if it is a boolean, else ``default`` (WRONG_TYPE)."""
        return self._typed_value("bool_variation", key, context, default, bool)

    def int_variation(self, key: str, context: Context | None, default: int) -> int:
        """The flag's value if it is a number (truncated toward zero), else ``default``."""
        return self._typed_value("int_variation", key, context, default, int)

    def float_variation(
        self, key: str, context: Context | None, default: float
    ) -> float:
        """The flag's value if it is a number (as a float), else ``default``."""
        return self._typed_value("float_variation", key, context, default, float)

    def string_variation(self, key: str, context: Context | None, default: str) -> str:
        """The flag's value if it is a string, else ``default``."""
        return self._typed_value("string_variation", key, context, default, str)

    def json_variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value, whatever its JSON type."""
        return self._typed_value("json_variation", key, context, default, object)

    def bool_variation_detail(
        self, key: str, context: Context | None, default: bool
    ) -> EvaluationDetail[bool]:
        """Like :meth:`bool_variation`, with the index and reason."""
        return self._typed_detail("bool_variation_detail", key, context, default, bool)

    def int_variation_detail(
        self, key: str, context: Context | None, default: int
    ) -> EvaluationDetail[int]:
        """Like :meth:`int_variation`, with the index and reason."""
        return self._typed_detail("int_variation_detail", key, context, default, int)

    def float_variation_detail(
        self, key: str, context: Context | None, default: float
    ) -> EvaluationDetail[float]:
        """Like :meth:`float_variation`, with the index and reason."""
        return self._typed_detail(
            "float_variation_detail", key, context, default, float
        )

    def string_variation_detail(
        self, key: str, context: Context | None, default: str
    ) -> EvaluationDetail[str]:
        """Like :meth:`string_variation`, with the index and reason."""
        return self._typed_detail("string_variation_detail", key, context, default, str)

    def json_variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """Like :meth:`json_variation`, with the index and reason."""
        return self._typed_detail(
            "json_variation_detail", key, context, default, object
        )

    # ------------------------------------------------------------ migrations
    def migration_variation(
        self, key: str, context: Context | None, default_stage: Stage
    ) -> tuple[Stage, OpTracker]:
        """The migration flag's stage for ``context``, and the operation's tracker.

        A value that names no stage gives ``default_stage`` with a
        ``WRONG_TYPE`` error reason, logged at WARNING once per flag and
        value; a ``default_stage`` that is not a
        :class:`~aioflags.migrations.Stage` is logged and ``OFF`` is used.
        Recorded as a value evaluation, as LaunchDarkly does; the hooks see
        the stage's detail.

        Added in version 0.1.0.
        """
        return _migration_variation(self, key, context, default_stage)

    # ------------------------------------------------------------- all flags
    def all_flags_state(
        self,
        context: Context | None,
        *,
        with_reasons: bool = False,
        client_side_only: bool = False,
        details_only_for_tracked_flags: bool = False,
    ) -> FlagsState:
        """Every flag's value for ``context`` (LaunchDarkly's bootstrap shape)."""
        return _all_flags_state(
            self,
            context,
            with_reasons,
            client_side_only,
            details_only_for_tracked_flags,
        )

    def _results(
        self, context: Context | None, client_side_only: bool
    ) -> list[tuple[str, CompiledFlag, Result]] | None:
        """Every flag's key, flag and result for ``context``, in flag order (OFREP's bulk).

        What :meth:`all_flags_state` evaluates (the same plan: each flag
        once, prerequisites read from the results of this call), handed
        over as results rather than LaunchDarkly's bootstrap shape; records
        nothing. None: the snapshot is not ready, or ``context`` is not a
        valid Context (logged as an evaluation's refusal is).
        """
        return _all_results(self, context, client_side_only)

    def openfeature_reason(self, key: str, detail: EvaluationDetail[Any]) -> str:
        """The reason of ``detail`` (an evaluation of ``key`` here) in OpenFeature's words.

        ``DISABLED`` for an off flag; ``SPLIT`` when a percentage rollout chose
        the variation (a rule's or the fallthrough's); ``TARGETING_MATCH`` for
        a target or a rule that serves one variation; ``STATIC`` for a flag
        with no targeting at all; ``DEFAULT`` for any other fallthrough;
        ``ERROR`` for an error. Any other kind keeps LaunchDarkly's word
        (``PREREQUISITE_FAILED``). The OpenFeature provider reports this.

        Added in version 0.1.0.
        """
        return self._openfeature_reason(key, detail.reason)

    def _flag(self, key: str) -> CompiledFlag | None:
        """The compiled flag ``key`` (None if absent or deleted), for OFREP."""
        flag = self._flags.get(key)
        return None if flag is None or flag.deleted else flag

    def _openfeature_reason(self, key: str, reason: Mapping[str, Any]) -> str:
        """:meth:`openfeature_reason` of a LaunchDarkly reason object."""
        return _openfeature_word(self._flags, key, reason)

    def __repr__(self) -> str:
        return (
            f"FlagSnapshot(flags={len(self._flags)}, initialized={self._initialized})"
        )


def _all_flags_state(
    snapshot: FlagSnapshot,
    context: Context | None,
    with_reasons: bool,
    client_side_only: bool,
    details_only_for_tracked_flags: bool,
) -> FlagsState:
    """:meth:`FlagSnapshot.all_flags_state` of ``snapshot``."""
    if (
        not snapshot._initialized
        or context.__class__ is not Context
        or context._error is not None
    ):
        return _refused(context, FlagsState(valid=False, values={}, meta={}))
    plan = _plan_of(
        snapshot, (with_reasons, client_side_only, details_only_for_tracked_flags)
    )
    matcher = snapshot._matcher
    done: dict[str, Result] = {}  # each prerequisite evaluated once in this call
    batch = matcher.batch(done)
    if not details_only_for_tracked_flags:
        # The common call: every flag to evaluate has code (the plan holds
        # the constant ones), and each result's entry is a function of
        # the result and the options alone, kept in the result once
        # built: the results are kept, and the values and entries put in
        # dicts when the state is first read (_Pending).
        odd_at: list[int] = []  # the results built for this call
        results = run_heads(
            plan.ops, plan.keys, plan.required, context, batch, done, odd_at
        )
        odd: dict[str, JSONObject] = {}  # their entries
        for at in odd_at:
            key = plan.keys[at]
            odd[key] = _entry(
                snapshot, plan.flags[at], results[at], context, with_reasons, False
            )
        return FlagsState._deferred(_Pending(plan, results, odd, with_reasons))
    values = dict(plan.values)  # constant flags filled in, the others in order
    meta = dict(plan.meta)
    slot = flags_state_slot(with_reasons, False)  # | omit, per flag
    now_ms = wall_ms()
    results = run_heads(plan.ops, plan.keys, plan.required, context, batch, done, [])
    for key, flag, result in zip(plan.keys, plan.flags, results, strict=True):
        values[key] = result.value
        omit = not (
            flag.track_events
            or result.experiment
            or ((debug := flag.debug_events_until_date) is not None and debug > now_ms)
        )
        cache = result.cache
        entry = None if cache is None else cache[slot | omit]
        meta[key] = (
            _entry(snapshot, flag, result, context, with_reasons, omit)
            if entry is None
            else entry
        )
    return FlagsState(valid=True, values=values, meta=meta)


def _plan_of(snapshot: FlagSnapshot, options: tuple[bool, bool, bool]) -> _Plan:
    """The snapshot's all-flags plan for ``options``, made on first use."""
    plans = snapshot._all_flags_plan
    if plans is None:
        plans = snapshot._all_flags_plan = {}
    plan = plans.get(options)
    if plan is None:
        plan = plans[options] = _plan(snapshot, *options)
    return plan


def _all_results(
    snapshot: FlagSnapshot, context: Context | None, client_side_only: bool
) -> list[tuple[str, CompiledFlag, Result]] | None:
    """:meth:`FlagSnapshot._results` of ``snapshot``."""
    if (
        not snapshot._initialized
        or context.__class__ is not Context
        or context._error is not None
    ):
        return _refused(context, None)
    plan = _plan_of(snapshot, (True, client_side_only, False))
    done: dict[str, Result] = {}  # each prerequisite evaluated once in this call
    batch = snapshot._matcher.batch(done)
    results = run_heads(plan.ops, plan.keys, plan.required, context, batch, done, [])
    evaluated = dict(zip(plan.keys, zip(plan.flags, results, strict=True), strict=True))
    flags = snapshot._flags
    out: list[tuple[str, CompiledFlag, Result]] = []
    for key in plan.values:  # every flag served, in flag order
        pair = evaluated.get(key)
        if pair is None:  # a constant one: the plan did not evaluate it
            flag = flags[key]
            constant = flag.constant
            assert constant is not None  # (else the plan evaluates it)
            out.append((key, flag, constant))
        else:
            out.append((key, *pair))
    return out


def _entry(
    snapshot: FlagSnapshot,
    flag: CompiledFlag,
    result: Result,
    context: Context,
    with_reasons: bool,
    omit: bool,
) -> JSONObject:
    """A flag's ``$flagsState`` entry for all-flags state.

    A function of this flag's precompiled result and the options (even
    the prerequisites reached), so built once per flag version and kept
    in the result; a result built for this evaluation, or an error's, has no cache: nor
    has its entry.
    """
    entry = _meta_entry(
        flag,
        result,
        with_reasons,
        omit,
        prerequisites_reached(snapshot._matcher, flag, context, result),
    )
    if result.cache is not None:
        keep_entry(result, flags_state_slot(with_reasons, omit), entry)
    return entry


def _plan(
    snapshot: FlagSnapshot,
    with_reasons: bool,
    client_side_only: bool,
    details_only: bool,
) -> _Plan:
    """What ``all_flags_state`` with these options can know before a context.

    Built once per snapshot and options: the values and ``$flagsState``
    entries of the flags whose result is constant (off, or a fixed
    fallthrough, ~a quarter of a typical environment), in flag order with
    placeholders for the others, and the others to evaluate.
    """
    values: JSONObject = {}
    meta: dict[str, JSONObject] = {}
    dynamic: list[tuple[str, CompiledFlag, bool]] = []
    # Only a prerequisite's result is kept for the flags that require it
    # (storing every flag's cost a dict insert each).
    required = {
        key
        for flag in snapshot._flags.values()
        if not flag.deleted
        for key in flag.prerequisite_keys
    }
    for key, flag in snapshot._flags.items():
        if flag.deleted or (client_side_only and not flag.client_side):
            continue
        result = flag.constant
        if result is None or (
            # whether details are omitted depends on the time
            details_only
            and flag.debug_events_until_date is not None
            and not (flag.track_events or result.experiment)
        ):
            values[key] = None
            meta[key] = _EMPTY_ENTRY
            # (a constant one's result is not kept: an off prerequisite
            # fails whatever it serves)
            dynamic.append((key, flag, result is None and key in required))
            continue
        omit = details_only and not (flag.track_events or result.experiment)
        values[key] = result.value
        meta[key] = _meta_entry(flag, result, with_reasons, omit, ())
    return _Plan(values, meta, dynamic, snapshot._matcher)


def _openfeature_word(
    flags: Mapping[str, CompiledFlag], key: str, reason: Mapping[str, Any]
) -> str:
    """:meth:`FlagSnapshot.openfeature_reason` of a LaunchDarkly reason object."""
    kind = reason["kind"]
    if kind == "OFF":
        return "DISABLED"
    flag = flags.get(key) if kind in ("RULE_MATCH", "FALLTHROUGH") else None
    if kind == "RULE_MATCH":
        rule = reason.get("ruleIndex")
        if (
            flag is not None
            and isinstance(rule, int)
            and rule < len(flag.rules)
            and flag.rules[rule][1].fixed is None
        ):
            return "SPLIT"
        return "TARGETING_MATCH"
    if kind == "TARGET_MATCH":
        return "TARGETING_MATCH"
    if kind == "FALLTHROUGH":
        if flag is None:
            return "DEFAULT"
        if flag.fallthrough is not None and flag.fallthrough.fixed is None:
            return "SPLIT"
        if not (flag.prerequisites or flag.targets or flag.rules):
            return "STATIC"
        return "DEFAULT"
    return str(kind)
