"""FlagSnapshot: the sync evaluation face over one immutable version of the flag data.

A snapshot is its data (``_data.SnapshotData``) and the composition it was
handed out with (events, hooks, lens); each method is one call,
``evaluation.answer(data, ...)``. The store swaps whole snapshots
atomically, so an evaluation, or a request that takes ``client.snapshot()``
once and evaluates many flags, always sees one consistent version of the
data. The all-flags state (its plan, its entries) and the OpenFeature
reason's classification are functions of the data beside it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

from aioflags._core._clock import wall_ms

from ._codegen import Code
from ._data import EMPTY, SnapshotData
from ._door import admits, refused
from ._evaluate import (
    Matcher,
    own_prerequisites,
    prerequisites_reached,
    run_heads,
)
from ._model import default_system
from ._pipeline import (
    BOOL_VARIATION,
    BOOL_VARIATION_DETAIL,
    FLOAT_VARIATION,
    FLOAT_VARIATION_DETAIL,
    INT_VARIATION,
    INT_VARIATION_DETAIL,
    JSON_VARIATION,
    JSON_VARIATION_DETAIL,
    MIGRATION,
    PLAIN,
    STRING_VARIATION,
    STRING_VARIATION_DETAIL,
    VARIATION,
    VARIATION_DETAIL,
    Evaluation,
    flags_step,
)
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

    from ._context import Context
    from ._guarded import Guarded
    from ._membership import MembershipSource
    from ._migration import OpTracker, Stage
    from ._model import CompiledFlag, CompiledSegment, FlagSystem
    from ._pipeline import Looking, Method
    from ._recording import Ledger

__all__ = ["FlagSnapshot", "detail_of"]

A = TypeVar("A")

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


class _Plan:
    """What ``all_flags_state`` with given options knows before a context.

    Built once per snapshot and options: the values and ``$flagsState``
    entries of the flags whose result is constant (off, or a fixed
    fallthrough, ~a quarter of a typical environment), in flag order with
    placeholders for the others; the others to evaluate, as flat tuples (a
    loop over them reads no per-flag tuple) with each one's code as the
    matcher's heads hold it (the loop reads nothing of a flag object but
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
        self.ops: tuple[Code, ...] = tuple(
            matcher.runnable_code(key, flag)
            if flag.constant is None
            else Code(_constant, True, (flag.constant,))
            for key, flag in zip(self.keys, self.flags, strict=True)
        )
        #: whether each is another flag's prerequisite (its result is kept)
        self.required: tuple[bool, ...] = tuple(r for _, _, r in dynamic)
        self.json: tuple[list[str], list[str], tuple[int, ...] | None] | None = None


def _constant(operands: tuple[Result], context: Context, matcher: Matcher) -> Result:
    """The run of a constant flag in a plan's flags to evaluate: its result.

    Its code is plain, its operand the result. (A flag whose details a
    debug window may omit: evaluated with the others, whatever the time.)
    """
    return operands[0]


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


@final
class FlagSnapshot:
    """One immutable version of the flag data, evaluated synchronously.

    Get the current one with ``client.snapshot()``. Every method is pure and
    non-blocking: it never does I/O and never raises for bad data, a missing
    flag, a wrong type or an invalid context (it returns the default with an
    ``ERROR`` reason instead).

    Added in version 0.1.0.
    """

    # A face: the data (``_data.SnapshotData``) and the composition its
    # methods run (events, hooks, lens), each method one call of
    # ``_evaluation.answer(_data, ...)``.
    __slots__ = ("_data", "_evaluation")

    _data: SnapshotData
    _evaluation: Evaluation

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag] = EMPTY,
        segments: Mapping[str, CompiledSegment] = EMPTY,
        *,
        initialized: bool = False,
        evaluation: Evaluation = PLAIN,
        big_segments: MembershipSource | None = None,
        hot: dict[str, CompiledFlag] | None = None,
        state_of: Callable[[str], tuple[bool, int] | None] | None = None,
        guarded: Mapping[str, Guarded] | None = None,
    ) -> None:
        """``evaluation``: the composition's, which every method calls.

        ``hot`` and ``state_of``: what a store's table of ``flags`` tells:
        the flags it has made so far (:attr:`Matcher.hot`), and whether a
        key's flag exists without making it (:attr:`flag_keys`).
        ``guarded``: the client's guards by flag key (issue 98).
        """
        self._data = SnapshotData(
            flags,
            segments,
            initialized=initialized,
            big_segments=big_segments,
            hot=hot,
            state_of=state_of,
            guarded=guarded,
        )
        #: The composition its methods run (events, hooks, lens).
        self._evaluation = evaluation

    def composed(
        self, evaluation: Evaluation, big_segments: MembershipSource | None
    ) -> FlagSnapshot:
        """This snapshot's data evaluated by ``evaluation``: what the client hands out.

        The one place a snapshot is built from another (the flags and
        segments are shared; the matcher, its heads and plans are new).
        """
        return _face(self._data.composed(big_segments), evaluation)

    def recording(self, ledger: Ledger) -> FlagSnapshot:
        """This snapshot's data, its evaluations counted in ``ledger`` (no hooks)."""
        evaluation = Evaluation(flags_step(ledger), ledger=ledger)
        return self.composed(evaluation, self._data.matcher.big_segments)

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
        data = self._data.with_memberships(source)
        return _face(data, PLAIN if quiet else self._evaluation)

    @property
    def observed(self) -> bool:
        """Whether evaluating this snapshot records analytics events or runs hooks."""
        return self._evaluation.observed

    @property
    def initialized(self) -> bool:
        """Whether this snapshot holds data from a source (else CLIENT_NOT_READY)."""
        return self._data.initialized

    def _has_flag(self, key: str) -> bool:
        """Whether flag ``key`` exists (not deleted), without making it."""
        return self._data.has_flag(key)

    @property
    def flag_keys(self) -> frozenset[str]:
        """The keys of the flags that exist (not deleted) in this snapshot."""
        return self._data.flag_keys()

    # Each method is its composition's evaluation (``_pipeline``) of the
    # data this snapshot holds: one call.

    def _answer(
        self, method: Method[A], key: str, context: Context | None, default: Any
    ) -> A:
        """What ``method`` answers for flag ``key`` here (the evaluator's gate calls this)."""
        return self._evaluation.answer(self._data, method, key, context, default)

    # --------------------------------------------------------------- untyped
    def variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value for ``context``, or ``default`` if none is served."""
        return self._evaluation.answer(self._data, VARIATION, key, context, default)

    def variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """The value, the variation index and the reason."""
        answer: EvaluationDetail[JSONValue] = self._evaluation.answer(
            self._data, VARIATION_DETAIL, key, context, default
        )
        return answer

    # ----------------------------------------------------------------- typed

    def bool_variation(self, key: str, context: Context | None, default: bool) -> bool:
        """The flag's value if it is a boolean, else ``default`` (WRONG_TYPE)."""
        answer: bool = self._evaluation.answer(
            self._data, BOOL_VARIATION, key, context, default
        )
        return answer

    def int_variation(self, key: str, context: Context | None, default: int) -> int:
        """The flag's value if it is a number (truncated toward zero), else ``default``."""
        answer: int = self._evaluation.answer(
            self._data, INT_VARIATION, key, context, default
        )
        return answer

    def float_variation(
        self, key: str, context: Context | None, default: float
    ) -> float:
        """The flag's value if it is a number (as a float), else ``default``."""
        answer: float = self._evaluation.answer(
            self._data, FLOAT_VARIATION, key, context, default
        )
        return answer

    def string_variation(self, key: str, context: Context | None, default: str) -> str:
        """The flag's value if it is a string, else ``default``."""
        answer: str = self._evaluation.answer(
            self._data, STRING_VARIATION, key, context, default
        )
        return answer

    def json_variation(
        self, key: str, context: Context | None, default: JSONValue
    ) -> JSONValue:
        """The flag's value, whatever its JSON type."""
        return self._evaluation.answer(
            self._data, JSON_VARIATION, key, context, default
        )

    def bool_variation_detail(
        self, key: str, context: Context | None, default: bool
    ) -> EvaluationDetail[bool]:
        """Like :meth:`bool_variation`, with the index and reason."""
        answer: EvaluationDetail[bool] = self._evaluation.answer(
            self._data, BOOL_VARIATION_DETAIL, key, context, default
        )
        return answer

    def int_variation_detail(
        self, key: str, context: Context | None, default: int
    ) -> EvaluationDetail[int]:
        """Like :meth:`int_variation`, with the index and reason."""
        answer: EvaluationDetail[int] = self._evaluation.answer(
            self._data, INT_VARIATION_DETAIL, key, context, default
        )
        return answer

    def float_variation_detail(
        self, key: str, context: Context | None, default: float
    ) -> EvaluationDetail[float]:
        """Like :meth:`float_variation`, with the index and reason."""
        answer: EvaluationDetail[float] = self._evaluation.answer(
            self._data, FLOAT_VARIATION_DETAIL, key, context, default
        )
        return answer

    def string_variation_detail(
        self, key: str, context: Context | None, default: str
    ) -> EvaluationDetail[str]:
        """Like :meth:`string_variation`, with the index and reason."""
        answer: EvaluationDetail[str] = self._evaluation.answer(
            self._data, STRING_VARIATION_DETAIL, key, context, default
        )
        return answer

    def json_variation_detail(
        self, key: str, context: Context | None, default: JSONValue
    ) -> EvaluationDetail[JSONValue]:
        """Like :meth:`json_variation`, with the index and reason."""
        answer: EvaluationDetail[JSONValue] = self._evaluation.answer(
            self._data, JSON_VARIATION_DETAIL, key, context, default
        )
        return answer

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
        from ._migration import Stage, checked_default, stage_detail, tracked_stage

        stage = checked_default(default_stage)
        default = stage.value
        result: Result = self._evaluation.answer(
            self._data, MIGRATION, key, context, default
        )
        detail = stage_detail(detail_of(result, default), Stage(default), key)
        return tracked_stage(self._data.flags, key, context, detail, stage)

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
        view = self._view()
        if view is not None:
            return _through_lens(
                self,
                view,
                context,
                with_reasons,
                client_side_only,
                details_only_for_tracked_flags,
            )
        return _all_flags_state(
            self._data,
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
        results = _all_results(self._data, context, client_side_only)
        view = self._view()
        if view is None or results is None or context is None:
            return results
        return list(view.looked(self._data.matcher, results, context))

    def _view(self) -> Looking | None:
        """The flag lens's view of the current request (None: no lens, or no token)."""
        lens = self._evaluation.lens
        return None if lens is None or not lens.active else lens.get()

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

    def openfeature_variant(
        self, key: str, detail: EvaluationDetail[Any]
    ) -> str | None:
        """The variant ``detail`` (an evaluation of ``key`` here) served, in OpenFeature's words.

        A flagd flag's variant name (``"on"``, ``"blue"``); for a
        LaunchDarkly flag, its variation index as text (``"0"``); ``None``
        when the evaluation served none (the caller's default). The
        OpenFeature provider reports this as ``variant``.

        Added in version 0.2.0.
        """
        return _variant_of(self._data.flag(key), detail.variation_index)

    def flag_metadata(self, key: str) -> dict[str, JSONValue]:
        """Flag ``key``'s metadata: OpenFeature's flag metadata.

        A flagd flag's metadata, its flag set's merged under its own
        (``flagSetId``, ``version``, whatever its document says); ``{}``
        for a LaunchDarkly flag and for a key with no flag. A fresh dict.

        Added in version 0.2.0.
        """
        return dict(_metadata_of(self._data.flag(key)))

    def openfeature_details(
        self, key: str, detail: EvaluationDetail[Any]
    ) -> tuple[str, str | None, Mapping[str, JSONValue]]:
        """What OpenFeature reports of ``detail`` (an evaluation of ``key`` here), from one lookup of the flag.

        ``(reason, variant, metadata)``: :meth:`openfeature_reason`,
        :meth:`openfeature_variant`, and the flag's metadata as
        :meth:`flag_metadata` gives it but read-only and not a copy: one
        mapping per compiled flag (one shared empty mapping for a
        LaunchDarkly flag and for a key with no flag), which a caller
        cannot change. The OpenFeature provider reports these.

        Added in version 0.2.0.
        """
        flag = self._data.flag(key)
        return (
            _openfeature_word(flag, detail.reason),
            _variant_of(flag, detail.variation_index),
            _metadata_of(flag),
        )

    def openfeature_flag(self, key: str) -> CompiledFlag | None:
        """The compiled flag ``key`` (None if absent or deleted), for the OpenFeature provider.

        One lookup gives the provider the flag's system (``flag.system``:
        its context mapping) and the answers it keeps for the flag's
        details (``flag.openfeature``: reason, variant and metadata never
        change for a flag version).

        Added in version 0.2.0.
        """
        # (SnapshotData.flag, without its frame, and first from the flags
        # made so far, a plain dict: Matcher.hot; this runs per provider call)
        data = self._data
        flag = data.matcher.hot.get(key)
        if flag is None:
            flag = data.flags.get(key)
        return None if flag is None or flag.deleted else flag

    def flag_format(self, key: str) -> str | None:
        """Which system's flag ``key`` is: ``"flagd"``, ``"launchdarkly"``, or ``None`` (no flag).

        The name of the flag's system (docs/architecture.md, "Flag
        systems"): a flagd flag's evaluation context is flagd's (the
        OpenFeature provider maps OpenFeature's as flagd's providers do: a
        targeting key is optional, every attribute is one of flagd's).

        Added in version 0.2.0.
        """
        flag = self._data.flag(key)
        return None if flag is None else flag.system.name

    def _system(self, key: str) -> FlagSystem | None:
        """Flag ``key``'s system (None: no flag), for the faces that ask it."""
        flag = self._data.flag(key)
        return None if flag is None else flag.system

    def _flag(self, key: str) -> CompiledFlag | None:
        """The compiled flag ``key`` (None if absent or deleted), for OFREP and the provider."""
        return self._data.flag(key)

    def _openfeature_reason(self, key: str, reason: Mapping[str, Any]) -> str:
        """:meth:`openfeature_reason` of a LaunchDarkly reason object."""
        return _openfeature_word(self._data.flag(key), reason)

    def __repr__(self) -> str:
        data = self._data
        return f"FlagSnapshot(flags={len(data.flags)}, initialized={data.initialized})"


def _all_flags_state(
    data: SnapshotData,
    context: Context | None,
    with_reasons: bool,
    client_side_only: bool,
    details_only_for_tracked_flags: bool,
) -> FlagsState:
    """:meth:`FlagSnapshot.all_flags_state` of a snapshot's ``data`` (no lens view)."""
    if not data.initialized or not admits(context):
        return refused(context, FlagsState(valid=False, values={}, meta={}))
    plan = _plan_of(
        data, (with_reasons, client_side_only, details_only_for_tracked_flags)
    )
    matcher = data.matcher
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
                data, plan.flags[at], results[at], context, with_reasons, False
            )
        return FlagsState._deferred(_Pending(plan, results, odd, with_reasons))
    values = dict(plan.values)  # constant flags filled in, the others in order
    meta = dict(plan.meta)
    slot = flags_state_slot(with_reasons, False)  # | omit, per flag
    now_ms = wall_ms()
    results = run_heads(plan.ops, plan.keys, plan.required, context, batch, done, [])
    for key, flag, result in zip(plan.keys, plan.flags, results, strict=True):
        values[key] = result.value
        omit = not _detailed(flag, result, now_ms)
        cache = result.cache
        entry = None if cache is None else cache[slot | omit]
        meta[key] = (
            _entry(data, flag, result, context, with_reasons, omit)
            if entry is None
            else entry
        )
    return FlagsState(valid=True, values=values, meta=meta)


def _detailed(flag: CompiledFlag, result: Result, now_ms: int) -> bool:
    """Whether ``details_only_for_tracked_flags`` keeps this entry's details.

    A tracked flag, an experiment's result, or a flag debugging until later
    than ``now_ms``.
    """
    debug = flag.debug_events_until_date
    return (
        flag.track_events or result.experiment or (debug is not None and debug > now_ms)
    )


def _through_lens(
    snapshot: FlagSnapshot,
    view: Looking,
    context: Context | None,
    with_reasons: bool,
    client_side_only: bool,
    details_only_for_tracked_flags: bool,
) -> FlagsState:
    """:func:`_all_flags_state` as a request with a lens token sees it.

    Every flag's result, overridden where the token says so (and traced),
    in flag order: the state an overridden flag's evaluation would give.
    """
    results = snapshot._results(context, client_side_only)
    if results is None:  # not ready, or no valid context (logged)
        return FlagsState(valid=False, values={}, meta={})
    assert context is not None  # (else no results)
    values: JSONObject = {}
    meta: dict[str, JSONObject] = {}
    now_ms = wall_ms()
    for key, flag, result in results:
        values[key] = result.value
        omit = details_only_for_tracked_flags and not _detailed(flag, result, now_ms)
        meta[key] = _entry(snapshot._data, flag, result, context, with_reasons, omit)
    return FlagsState(valid=True, values=values, meta=meta)


def _plan_of(data: SnapshotData, options: tuple[bool, bool, bool]) -> _Plan:
    """The data's all-flags plan for ``options``, made on first use."""
    plans = data.plans
    plan: _Plan | None = plans.get(options)
    if plan is None:
        plan = plans[options] = _plan(data, *options)
    return plan


def _all_results(
    data: SnapshotData, context: Context | None, client_side_only: bool
) -> list[tuple[str, CompiledFlag, Result]] | None:
    """:meth:`FlagSnapshot._results` of a snapshot's ``data`` (no lens view)."""
    if not data.initialized or not admits(context):
        return refused(context, None)
    plan = _plan_of(data, (True, client_side_only, False))
    done: dict[str, Result] = {}  # each prerequisite evaluated once in this call
    batch = data.matcher.batch(done)
    results = run_heads(plan.ops, plan.keys, plan.required, context, batch, done, [])
    evaluated = dict(zip(plan.keys, zip(plan.flags, results, strict=True), strict=True))
    flags = data.flags
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
    data: SnapshotData,
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
        prerequisites_reached(data.matcher, flag, context, result),
    )
    if result.cache is not None:
        keep_entry(result, flags_state_slot(with_reasons, omit), entry)
    return entry


def _plan(
    data: SnapshotData,
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
        for flag in data.flags.values()
        if not flag.deleted
        for key in flag.prerequisite_keys
    }
    for key, flag in data.flags.items():
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
    return _Plan(values, meta, dynamic, data.matcher)


def _face(data: SnapshotData, evaluation: Evaluation) -> FlagSnapshot:
    """A snapshot of ``data`` whose methods run ``evaluation`` (another's data, composed anew)."""
    snapshot = object.__new__(FlagSnapshot)
    snapshot._data = data
    snapshot._evaluation = evaluation
    return snapshot


# ------------------------------------------------------------- OpenFeature
def _system(flag: CompiledFlag | None) -> FlagSystem:
    """``flag``'s system; a key with no flag reads as the default system's."""
    return default_system() if flag is None else flag.system


def _variant_of(flag: CompiledFlag | None, index: int | None) -> str | None:
    """:meth:`FlagSnapshot.openfeature_variant` of variation ``index`` of ``flag``."""
    if index is None:
        return None
    return _system(flag).variant(flag, index)


def _metadata_of(flag: CompiledFlag | None) -> Mapping[str, JSONValue]:
    """``flag``'s metadata (read-only), as its system gives it."""
    return _system(flag).metadata(flag)


def _openfeature_word(flag: CompiledFlag | None, reason: Mapping[str, Any]) -> str:
    """:meth:`FlagSnapshot.openfeature_reason` of a reason object of ``flag``."""
    return _system(flag).reason_word(flag, reason)
