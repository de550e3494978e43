"""Flags and segments compiled at ingest (evaluation.md §1, §2, §13).

Flag JSON is parsed once, when it arrives, into slotted objects: target lists
become sets, clauses become predicates, rule and fallthrough results become
precomputed ``(value, variation_index, reason)`` tuples, bucketing prefixes are
built. Evaluation (``_evaluate.py``) then touches no JSON.

A flag whose JSON has the wrong types is kept as *malformed*: it evaluates to
``MALFORMED_FLAG`` and does not poison the others. Out-of-range variation
indexes and invalid attribute references stay lazy: they are only an error
when evaluation actually reaches them. :func:`checked_flag` and
:func:`checked_segment` list both kinds, as the compiler decides them
(``aioflags validate``); a compile for evaluation logs the lazy ones once,
as a WARNING naming the flag or segment.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, TypeAlias

from aioflags._core._logname import client_logger

from ._codegen import (
    Code,
    InlineClause,
    Rollout,
    bucket_value,
    build_predicate,
    build_runner,
    build_segment,
)
from ._context import Context, parse_reference
from ._logonce import Occurrences
from ._operators import OPERATORS, compile_test
from ._results import Reason, Result, own_cache

if TYPE_CHECKING:
    import logging
    from collections.abc import Sequence

    from aioflags._core._json import JSONObject, JSONValue

    from ._system_parts import DocumentFormat, SystemConfiguration


__all__ = [
    "MALFORMED",
    "NOT_FOUND",
    "UNUSABLE",
    "CompiledFlag",
    "CompiledSegment",
    "FlagSystem",
    "MalformedAbort",
    "Result",
    "Split",
    "checked_flag",
    "checked_segment",
    "compile_flag",
    "compile_launchdarkly",
    "compile_segment",
    "default_system",
    "document_format",
    "flag_tombstone",
    "formats",
    "launchdarkly_splits",
    "read_by",
    "register",
    "registered",
    "segment_tombstone",
    "splits_of",
    "system_named",
    "system_of",
    "unregister",
]

logger = client_logger("aioflags.evaluation")


def _error_reason(kind: str) -> Reason:
    return Reason({"kind": "ERROR", "errorKind": kind})


MALFORMED: Final = Result(None, None, _error_reason("MALFORMED_FLAG"), False, None)
#: A deleted flag's constant result.
NOT_FOUND: Final = Result(None, None, _error_reason("FLAG_NOT_FOUND"), False, None)
_OFF: Final = Reason({"kind": "OFF"})
_FALLTHROUGH: Final = Reason({"kind": "FALLTHROUGH"})
_TARGET_MATCH: Final = Reason({"kind": "TARGET_MATCH"})


class MalformedAbort(Exception):
    """Aborts a whole evaluation with MALFORMED_FLAG (cycles, invalid references)."""


#: Why a flag or segment put with no object (``Change.obj`` None) is
#: malformed: its source could not use what the flag data held for it, and
#: said so then (``ChangeSetBuilder``), so its compile logs nothing more.
UNUSABLE: Final = "the flag data held no usable object for it (logged as it arrived)"


class _Bad(Exception):
    """Raised while compiling JSON of the wrong shape."""


#: Where the compiler notes each place it decides "MALFORMED_FLAG if
#: reached" while :func:`checked_flag` or :func:`checked_segment` runs (a
#: context variable, so the hot compile path's signatures stay as they are
#: and a compile anywhere else, on any thread, notes nothing).
_problems: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "aioflags_compile_problems", default=None
)


#: Elsewhere (a flag or segment compiled to be evaluated), each thread's
#: notes of the compile under way, logged when it ends (:func:`_said`).
_unlisted = threading.local()


def _note(problem: str) -> None:
    """Record a lazy MALFORMED_FLAG path: listed by ``checked_*``, else logged.

    While :func:`checked_flag` or :func:`checked_segment` runs, the problem
    joins its list (``aioflags validate``); otherwise it is kept for the
    compile under way on this thread, which logs it once it ends.
    """
    problems = _problems.get()
    if problems is None:
        problems = _unlisted.__dict__.setdefault("noted", [])
    if problem not in problems:
        problems.append(problem)


def _said(malformed: str | None, what: str, key: str, version: int) -> None:
    """A compile ended: log what it noted, unless it is malformed as a whole (logged)."""
    noted: list[str] | None = _unlisted.__dict__.pop("noted", None)
    if not noted or malformed is not None:
        return
    if _first(what, key, version):
        logger.warning(
            "%s %r evaluates to MALFORMED_FLAG wherever an evaluation reaches "
            "these parts: %s (logged as it is compiled; `aioflags validate` "
            "lists them)",
            what,
            key,
            "; ".join(noted),
        )


#: The flag and segment versions whose MALFORMED_FLAG parts were logged.
_SAID: Final = Occurrences(1000)


def _first(what: str, key: str, version: int) -> bool:
    """Whether this flag or segment version's problems are to be logged: once.

    A full transfer (a reconnect, each poll) makes a new snapshot, whose
    flags compile again on their first evaluation: without this a
    malformed flag would be logged again at every poll. Once the record is
    full (0), a version it cannot hold is logged each time rather than
    never.
    """
    return _SAID.add((what, key, version)) in (0, 1)


def _told(what: str, key: str, version: int) -> bool:
    """Whether to log that a flag or segment version is malformed as a whole.

    Once (:func:`_first`), and never while a caller notes the problems
    (:func:`checked_flag`: ``aioflags validate`` says them itself, with
    their line).
    """
    return _problems.get() is None and _first(what, key, version)


@contextlib.contextmanager
def _noting() -> Iterator[list[str]]:
    problems: list[str] = []
    token = _problems.set(problems)
    try:
        yield problems
    finally:
        _problems.reset(token)


def _where(reason: Reason) -> str:
    """The part of a flag that serves a result with ``reason``, as the JSON names it."""
    kind = reason["kind"]
    if kind == "RULE_MATCH":
        return f"rules[{reason['ruleIndex']}]"
    if kind == "FALLTHROUGH":
        return "the fallthrough"
    if kind == "TARGET_MATCH":
        return "a target"
    return "offVariation"  # OFF, and PREREQUISITE_FAILED (the off variation)


class SegmentMatcher(Protocol):
    """What a ``segmentMatch`` clause needs from the evaluation state."""

    def match_segments(self, keys: tuple[str, ...], ctx: Context, /) -> bool: ...


class EvalState(SegmentMatcher, Protocol):
    """What evaluating a flag needs from the per-evaluation state.

    The generated code also reads its ``inline_prerequisites``; when that
    is true (``Matcher`` itself), its ``heads`` and ``prerequisite_head``
    (see ``aioflags._evaluation._evaluate.Matcher``).
    """

    def prerequisites_failed(
        self, prerequisites: tuple[Prerequisite, ...], ctx: Context, /
    ) -> Result | None: ...


Clause: TypeAlias = Callable[[Context, SegmentMatcher], bool]
Resolve: TypeAlias = Callable[[Context], "Result"]

# ------------------------------------------------------------- JSON readers


def _opt(
    obj: Mapping[str, JSONValue], field: str, typ: type, default: JSONValue
) -> JSONValue:
    value = obj.get(field)
    if value is None:
        return default
    if typ is int or typ is bool:
        if type(value) is not typ:
            raise _Bad(
                f"{field!r} must be {'an integer' if typ is int else 'a boolean'}"
            )
    elif not isinstance(value, typ):
        raise _Bad(f"{field!r} must be of type {typ.__name__}")
    return value


def _objects(obj: Mapping[str, JSONValue], field: str) -> list[JSONObject]:
    items = _opt(obj, field, list, [])
    for item in items:
        if not isinstance(item, dict):
            raise _Bad(f"every entry of {field!r} must be an object")
    return items  # type: ignore[no-any-return]


def _strings(obj: Mapping[str, JSONValue], field: str) -> list[str]:
    items = _opt(obj, field, list, [])
    if not all(isinstance(s, str) for s in items):
        raise _Bad(f"{field!r} must be a list of strings")
    return items  # type: ignore[no-any-return]


# ---------------------------------------------------------------- clauses
#
# A clause on one top-level attribute with a common operator becomes an
# InlineClause, which the code generator writes inline (aioflags/_evaluation/_codegen.py);
# any other clause is compiled here into a predicate.


def _lookup(values: JSONObject, path: tuple[str, ...]) -> JSONValue:
    value = values.get(path[0])
    for component in path[1:]:
        if type(value) is not dict:
            return None
        value = value.get(component)
    return value


def predicate(clause: InlineClause | Clause) -> Clause:
    """The predicate of one compiled clause (generated for an inline one)."""
    return build_predicate((clause,)) if isinstance(clause, InlineClause) else clause


def _compile_clause(raw: JSONObject) -> InlineClause | Clause:
    """What the code generator can inline, or else the clause's predicate."""
    op = _opt(raw, "op", str, "")
    values = _opt(raw, "values", list, [])
    negate = bool(_opt(raw, "negate", bool, False))
    context_kind = _opt(raw, "contextKind", str, "")
    attribute = _opt(raw, "attribute", str, "")

    if op == "segmentMatch":
        keys = tuple(v for v in values if isinstance(v, str))
        return InlineClause(op, "", "", (keys,), None, negate)

    test = compile_test(op, values)
    path = parse_reference(attribute, literal=not context_kind)
    kind = context_kind or "user"

    if path == ("kind",):

        def kind_clause(ctx: Context, st: SegmentMatcher) -> bool:
            return any(test(k) for k in ctx._parts) != negate

        return kind_clause

    if path is None:
        _note(f"a clause has an invalid attribute reference {attribute!r}")

        def invalid_clause(ctx: Context, st: SegmentMatcher) -> bool:
            if kind not in ctx._parts:
                return False
            raise MalformedAbort(f"invalid attribute reference {attribute!r}")

        return invalid_clause

    if len(path) == 1:
        operator = OPERATORS.get(op)
        inline = None if operator is None else operator.inline
        operands = None if inline is None else inline(values)
        if operands is not None:
            return InlineClause(op, kind, path[0], operands, test, negate)
        name = path[0]

        def clause(ctx: Context, st: SegmentMatcher) -> bool:
            part = ctx._parts.get(kind)
            if part is None:
                return False
            v = part._values.get(name)
            if v is None:
                return False
            if type(v) is list:
                return any(test(e) for e in v) != negate
            return test(v) != negate

        return clause

    def path_clause(ctx: Context, st: SegmentMatcher) -> bool:
        part = ctx._parts.get(kind)
        if part is None:
            return False
        v = _lookup(part._values, path)
        if v is None:
            return False
        if type(v) is list:
            return any(test(e) for e in v) != negate
        return test(v) != negate

    return path_clause


# -------------------------------------------------------------- bucketing


class Bucketer:
    """Computes a context's bucket in ``[0, 1)`` (or -1 if it lacks the kind)."""

    __slots__ = ("_attribute", "_kind", "_path", "_prefix")

    def __init__(
        self, *, prefix: str, kind: str, attribute: str, literal: bool
    ) -> None:
        self._prefix = prefix
        self._kind = kind
        self._attribute = attribute
        self._path = parse_reference(attribute, literal=literal)

    def note_if_invalid(self) -> None:
        """Note an invalid reference (for a bucketer that evaluations use)."""
        if self._path is None:
            _note(f"a rollout has an invalid bucketBy reference {self._attribute!r}")

    def bucket(self, ctx: Context) -> float:
        part = ctx._parts.get(self._kind)
        if part is None:
            return -1.0
        path = self._path
        if path is None:
            raise MalformedAbort(f"invalid bucketBy reference {self._attribute!r}")
        v: JSONValue = (
            part._values.get(path[0]) if len(path) == 1 else _lookup(part._values, path)
        )
        return bucket_value(self._prefix, v)


# --------------------------------------------------------- variation/rollout


class _Variations:
    """A flag's variations and the results that name them."""

    __slots__ = ("values",)

    def __init__(self, values: list[JSONValue]) -> None:
        self.values: list[JSONValue] = values

    def result(self, index: int, reason: Reason, experiment: bool = False) -> Result:
        """The flag's own result serving variation ``index`` (MALFORMED if none)."""
        if 0 <= index < len(self.values):
            return Result(self.values[index], index, reason, experiment, own_cache())
        count = len(self.values)
        _note(
            f"{_where(reason)} serves variation {index}, but the flag has "
            f"{count} variation{'' if count == 1 else 's'}"
        )
        return MALFORMED


def _twin(result: Result) -> Result:
    """Another object serving what ``result`` serves (MALFORMED as it is).

    Equal to it (Result compares by value) but not it: what a rollout
    serves a context it cannot bucket, which a guard must not count as
    chosen by chance (:meth:`Resolver.split`).
    """
    if result is MALFORMED:
        return result
    return Result(
        result.value,
        result.variation_index,
        result.reason,
        result.experiment,
        own_cache(),
    )


class Resolver:
    """A rule's or the fallthrough's variation or rollout, ready to serve.

    ``fixed`` is the precomputed result when there is no rollout to compute.

    A rollout serves a context without the context kind it buckets
    (bucket -1) the first bucket's variation, and one whose bucketing
    attribute is missing or neither a string nor an integer (bucket 0) the
    first bucket with a weight, as LaunchDarkly's SDKs do; but not the
    bucket's own result: a twin of it (:func:`_twin`), equal by value, so
    that its identity says the assignment was not by chance
    (:meth:`split` lists the buckets' own results only).
    """

    __slots__ = (
        "_bucketer",
        "_entries",
        "_experiment",
        "_last",
        "_missing",
        "_where",
        "_zero",
        "fixed",
        "rollout",
    )

    def __init__(
        self,
        raw: JSONObject,
        flag_key: str,
        salt: str,
        variations: _Variations,
        reason: Reason,
        track: bool,
    ) -> None:
        self.fixed: Result | None = None
        #: the rollout as the code generator writes it inline (not an
        #: experiment, bucketed by a top-level attribute), else None
        self.rollout: Rollout | None = None
        variation = _opt(raw, "variation", int, None)
        rollout = _opt(raw, "rollout", dict, None)
        if variation is not None:
            self.fixed = variations.result(variation, reason, track)
            return
        entries = _objects(rollout, "variations") if rollout is not None else []
        if rollout is None or not entries:
            _note(
                f"{_where(reason)} has neither a variation nor a rollout with variations"
            )
            self.fixed = MALFORMED
            return
        experiment = rollout.get("kind") == "experiment"
        seed = _opt(rollout, "seed", int, None)
        context_kind = _opt(rollout, "contextKind", str, "")
        bucket_by = _opt(rollout, "bucketBy", str, "") or "key"
        self._experiment = experiment
        self._bucketer = Bucketer(
            prefix=f"{seed}." if seed is not None else f"{flag_key}.{salt}.",
            kind=context_kind or "user",
            attribute="key" if experiment else bucket_by,
            literal=not context_kind,
        )
        self._bucketer.note_if_invalid()
        in_exp = Reason({**reason, "inExperiment": True})
        total = 0.0
        built: list[tuple[float, Result, Result]] = []
        for entry in entries:
            index = _opt(entry, "variation", int, None)
            weight = _opt(entry, "weight", int, 0)
            untracked = bool(_opt(entry, "untracked", bool, False))
            total += weight / 100000.0
            if index is None:
                _note(f"a rollout bucket of {_where(reason)} has no variation")
            plain = (
                variations.result(index, reason, track)
                if index is not None
                else MALFORMED
            )
            tracked = plain
            if experiment and not untracked:
                tracked = (
                    variations.result(index, in_exp, True)
                    if index is not None
                    else MALFORMED
                )
            built.append((total, plain, tracked))
        self._entries = tuple(built)
        self._last = built[-1]
        self._where = _where(reason)
        # What a context it cannot bucket gets (see the class): twins of
        # the results served at bucket -1 (no part of the kind: never an
        # experiment's) and at bucket 0 (no usable value; a key always is).
        self._missing = _twin(self._at(-1.0)[1])
        path = self._bucketer._path
        self._zero = None if path == ("key",) else _twin(self._served_at(0.0))
        if not experiment and path is not None and len(path) == 1:
            self.rollout = Rollout(
                self._bucketer._prefix,
                self._bucketer._kind,
                path[0],
                tuple(threshold for threshold, _, _ in built[:-1]),
                tuple(plain for _, plain, _ in built),
                self._missing,
                self._zero,
            )

    def _at(self, b: float) -> tuple[float, Result, Result]:
        """The bucket entry that bucket ``b`` falls in (the last past the weights)."""
        for entry in self._entries:
            if b < entry[0]:
                return entry
        return self._last

    def _served_at(self, b: float) -> Result:
        """What a context in bucket ``b`` (>= 0) is served."""
        _, plain, tracked = self._at(b)
        return tracked if self._experiment else plain

    def resolve(self, ctx: Context) -> Result:
        """The result for ``ctx`` (a rollout buckets it; a fixed result is returned as is)."""
        fixed = self.fixed
        if fixed is not None:
            return fixed
        b = self._bucketer.bucket(ctx)
        if b <= 0.0:
            if b < 0.0:
                return self._missing
            zero = self._zero
            if zero is not None:
                return zero
        for threshold, plain, tracked in self._entries:
            if b < threshold:
                return tracked if self._experiment else plain
        _, plain, tracked = self._last
        return tracked if self._experiment else plain

    def split(self) -> Split | None:
        """The rollout as a :class:`Split` (None: a fixed variation, or nothing served by chance).

        One entry per bucket that a bucketed context can fall in (a
        weight past the others' sum; the last bucket also takes what the
        weights leave under 100%), each bucket's own result (an
        experiment's tracked one): several buckets of one variation are
        several entries. A bucket serving MALFORMED_FLAG (no such
        variation) is left out, and the weights are the shares of the
        buckets listed, summing to 1: what a counted context's chances
        are. Never the twins a context it cannot bucket gets. None for a
        rollout whose ``bucketBy`` is no valid reference too (every
        evaluation reaching it is MALFORMED_FLAG).
        """
        if self.fixed is not None or self._bucketer._path is None:
            return None
        results: list[Result] = []
        shares: list[float] = []
        low = 0.0
        for threshold, plain, tracked in self._entries:
            high = max(low, min(threshold, 1.0))
            if high > low:
                results.append(tracked if self._experiment else plain)
                shares.append(high - low)
            low = high
        if low < 1.0:  # (the last bucket takes the rest)
            _, plain, tracked = self._last
            last = tracked if self._experiment else plain
            if results and results[-1] is last:
                shares[-1] += 1.0 - low
            else:
                results.append(last)
                shares.append(1.0 - low)
        kept = [
            (r, w) for r, w in zip(results, shares, strict=True) if r is not MALFORMED
        ]
        total = sum(w for _, w in kept)
        if not kept or total <= 0.0:
            return None
        kind = "experiment" if self._experiment else "rollout"
        return Split(
            tuple(r for r, _ in kept),
            tuple(w / total for _, w in kept),
            f"the {kind} of {self._where}",
        )

    def _served(self) -> tuple[Result, ...]:
        """The results it can serve: the fixed one, or each rollout bucket with a weight.

        The last bucket also serves what is past the weights (they sum to
        less than 100%). Read by the pytest plugin's flag coverage, never
        by an evaluation.
        """
        fixed = self.fixed
        if fixed is not None:
            return (fixed,)
        served: list[Result] = []
        low = 0.0
        for threshold, plain, _ in self._entries:
            if threshold > low:
                served.append(plain)
            low = threshold
        if low < 1.0:
            served.append(self._last[1])
        return tuple(served)


# -------------------------------------------------------------------- flags


class Prerequisite:
    """A prerequisite: the flag key, the required index, the result if it fails.

    ``of``: the key of the flag that requires it (its analytics events say so).
    """

    __slots__ = ("failed", "key", "of", "variation")

    def __init__(self, key: str, variation: int, failed: Result, of: str = "") -> None:
        self.key = key
        self.variation = variation
        self.failed = failed
        self.of = of


# ------------------------------------------------------------ flag systems
# A *flag system* (LaunchDarkly's, flagd's: ``aioflags/_systems/``) is one
# object per kind of flag, chosen once, when a flag is compiled, and held by
# the compiled flag (``CompiledFlag.system``), as httpx holds one transport
# per URL pattern: the faces ask the flag's system, never test a string.
# The protocol and the registry live here, beside the flag that holds one
# (the evaluation layer; each names the other, so neither moves alone), the
# parts that name no flag (its document format, its configuration) in
# ``_system_parts.py``; the systems live above and register in one line
# (:func:`register`) when ``aioflags`` is imported. A system claims the flag
# objects that hold its *part* (flagd's: ``{"key": ..., "flagd": {...}}``);
# the system whose part is None (LaunchDarkly's) takes every other object.


class Split(NamedTuple):
    """One randomized assignment of a flag (a rollout, a fractional): the results it serves, each with its weight.

    What a guard counts (issue 98, ``docs/architecture.md``, "Flag
    systems"): an evaluation whose result *is* (by identity, ``id``; a
    :class:`Result` compares by value) one of :attr:`results` was assigned
    by chance. No other path of the flag (a target, a rule without a
    rollout, the off variation, a prerequisite, an error, a context the
    assignment cannot bucket) returns one of these objects.
    """

    #: the results it serves, each an object no other path of the flag
    #: returns; several may serve one variation (LaunchDarkly's buckets)
    results: tuple[Result, ...]
    #: each result's share of what the assignment serves (they sum to 1);
    #: None: computed per request (not known)
    weights: tuple[float, ...] | None
    #: where it is, in words: ``"the rollout of the fallthrough"``,
    #: ``"the rollout of rules[2]"``, ``"targeting: if[1]: fractional"``
    where: str


class FlagSystem(Protocol):
    """One kind of flag: how it compiles, types, fails and reads to the faces.

    Attributes:
        name: the system's word (``FlagSnapshot.flag_format``):
            ``"launchdarkly"``, ``"flagd"``.
        part: the key of a flag object that holds this system's definition
            (``"flagd"``); None: the flag object is the definition (one
            system only, the default).
        unusable: the result of a flag whose definition cannot be compiled
            at all (LaunchDarkly: MALFORMED_FLAG; flagd: PARSE_ERROR).
        failed: what an evaluation whose code raised answers (LaunchDarkly:
            EXCEPTION; flagd: GENERAL).
        unserved_variant: OFREP's ``variant`` when the evaluation served no
            variant (None: the answer has no ``variant``).
        error_kinds: the ``errorKind`` words its evaluations can give.
        events_recorded: whether LaunchDarkly's event recorder knows its
            flags (flagd's: no; ``usage()`` and ``Config`` say so of a data
            system of its flags).
        document: how a file of its flags is recognised and read
            (:class:`DocumentFormat`); None: its flags are the file
            reader's own shape (LaunchDarkly's).
        configuration: its data system's options and environment
            variables (:class:`SystemConfiguration`); None: it
            contributes none (LaunchDarkly's are ``Config``'s own).
    """

    name: str
    part: str | None
    unusable: Result
    failed: Result
    unserved_variant: str | None
    error_kinds: frozenset[str]
    events_recorded: bool
    document: DocumentFormat | None
    configuration: SystemConfiguration | None

    def compile(self, flag: CompiledFlag, definition: JSONValue, /) -> None:
        """Fill ``flag``'s fields from its ``definition`` (raise to make it unusable)."""
        ...

    def typed_check(self, value: JSONValue, kind: type) -> tuple[bool, JSONValue]:
        """The type step's rule: whether ``value`` suits a method of ``kind``, and as what."""
        ...

    def variant(self, flag: CompiledFlag | None, index: int) -> str:
        """The name of ``flag``'s variation ``index`` (OpenFeature's ``variant``)."""
        ...

    def metadata(self, flag: CompiledFlag | None) -> Mapping[str, JSONValue]:
        """``flag``'s metadata (OpenFeature's flag metadata), read-only."""
        ...

    def ofrep_metadata(
        self, flag: CompiledFlag | None, version: int, reason: Mapping[str, Any]
    ) -> dict[str, JSONValue]:
        """OFREP's ``metadata`` of an answer of ``flag`` (a fresh dict)."""
        ...

    def reason_word(self, flag: CompiledFlag | None, reason: Mapping[str, Any]) -> str:
        """OpenFeature's word for ``reason``, an evaluation's of ``flag``."""
        ...

    def splits(self, flag: CompiledFlag) -> tuple[Split, ...]:
        """``flag``'s randomized assignments (empty: none): what a guard counts.

        Asked once per flag version (:func:`splits_of`), never by an
        evaluation; see :class:`Split`.
        """
        ...

    def branches(self, flag: CompiledFlag) -> dict[str, JSONValue]:
        """Flag coverage's branches of ``flag``, each with the value it serves (None: by index)."""
        ...

    def branch_taken(
        self, flag: CompiledFlag | None, reason: Mapping[str, Any], index: int | None
    ) -> str | None:
        """The coverage branch an evaluation with ``reason`` took (None: none of its own)."""
        ...

    def summary_text(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> str:
        """What flag JSON ``flag`` (its ``definition``, this system's part) does, in one line."""
        ...

    def details(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        flags: Mapping[str, Mapping[str, JSONValue]],
        segments: Collection[str] | None,
    ) -> JSONObject:
        """What the console's details show of a flag's own parts (variations, off, fallthrough...)."""
        ...

    def reason_text(
        self,
        reason: Mapping[str, JSONValue],
        flag: Mapping[str, JSONValue] | None,
        variation: int | None,
    ) -> str | None:
        """One of this system's reasons in words (None: not one of its own)."""
        ...

    def context_from(
        self,
        targeting_key: JSONValue,
        attributes: Mapping[str, Any],
        logger: logging.Logger | None = None,
    ) -> Context:
        """The Context a JSON body (OFREP's ``context``) or OpenFeature's context is for this system's flags.

        ``attributes``: JSON values, or an OpenFeature context's (the
        provider hands them as they are: a value that is not JSON, a
        datetime, is made JSON here, ``_ofcontext.json_value``, in the
        mapping's one pass). ``logger``: where a dropped attribute is said
        (the face's).

        Raises:
            ContextError: the body is no context this system evaluates
                (``aioflags._client._ofcontext``), with OpenFeature's code.
        """
        ...

    # The tools' questions, of flag JSON ``flag`` and its ``definition``
    # (this system's part): codegen, the console's changes, cleanup's evidence.
    def values(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> list[JSONValue]:
        """The values ``flag`` may serve, by variation index (codegen's types, the console's choices)."""
        ...

    def value_names(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> list[str] | None:
        """The names of its :meth:`values`, in their order (flagd's variants); None: numbered."""
        ...

    def description(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> str | None:
        """What the flag's own data says it is for (codegen's docstring), or None."""
        ...

    def code_default(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        values: Sequence[JSONValue],
    ) -> tuple[JSONValue, str]:
        """The default codegen writes for ``flag`` (one of ``values``), and whence, in words.

        (``its off variation``, ``its default variant ("on")``).
        """
        ...

    def served_index(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> int | str | None:
        """What the console's row says ``flag`` serves when on.

        The index of the value it serves everyone, ``"rules"`` (targeting:
        serving one value asks first), ``"rollout"``, or None (none).
        """
        ...

    def serve_one_asks(
        self,
        key: str,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
    ) -> str | None:
        """Why serving one value to everyone needs ``"confirm": true`` (the console's 409), or None."""
        ...

    def changed(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        on: bool | None,
        index: int | None,
    ) -> JSONObject:
        """A new flag object: ``flag`` switched on or off, serving value ``index`` to everyone.

        None: that part unchanged. ``index`` is one of :meth:`values`'s,
        and whatever targeting it drops was asked about
        (:meth:`serve_one_asks`). The console's change.
        """
        ...

    def settled_refusals(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        value: JSONValue,
        subject: str,
    ) -> list[str]:
        """Why ``flag`` may serve someone something else than ``value`` (empty: it serves everyone that).

        Each refusal begins with ``subject`` (the file and the key):
        ``aioflags cleanup``'s evidence of the flag files.
        """
        ...

    def is_large(self, definition: JSONValue) -> bool:
        """Whether ``definition`` is slow to compile: the store has it built ahead.

        Cheap: the store asks it, on the event loop, of each flag object a
        change set puts (flagd's: a targeting of 2,000 nodes or more).
        """
        ...

    def prebuild(self, definitions: list[tuple[str, JSONValue]]) -> None:
        """Compile ``definitions`` (key, definition), each large, ahead of their flags.

        The store calls it on a worker thread before it installs their
        change set; :meth:`compile` then takes what it built, so the flag's
        first evaluation does not block the event loop.
        """
        ...

    # What the store (``aioflags/_datasystem/_store.py``) and the payloads
    # (``_payloads.object_meta``) ask of what a system's flags share.
    # LaunchDarkly's: nothing.
    def shared_keys(self, flag: JSONObject) -> Sequence[str]:
        """The keys of the shared items (segments) flag object ``flag`` names.

        What its flags share, carried once (flagd's evaluators): a store
        reader reads them with the flag (``_payloads.object_meta``).
        """
        ...

    def link(
        self, change_set: Any, held: dict[str, JSONValue]
    ) -> tuple[Any, dict[str, JSONValue]]:
        """``change_set`` with this system's flags linked to the shared values they name.

        ``change_set``: a change set the store applies (the data system's
        ``ChangeSet``, a layer above); ``held``: the shared values the
        store held before it. Returns the change set to apply (itself when
        nothing in it is linked) and the shared values held after it, which
        the store keeps for the next one.
        """
        ...


#: The registered systems, by name, in the order they registered.
_SYSTEMS: Final[dict[str, FlagSystem]] = {}
#: The systems that claim a flag object by a part of it, by that part.
_BY_PART: Final[dict[str, FlagSystem]] = {}
#: The system of every other flag object (empty: none registered yet).
_DEFAULT: list[FlagSystem] = []


def register(system: FlagSystem) -> FlagSystem:
    """Register ``system`` (again: replace the one of its name); return it.

    A system whose ``part`` is None becomes the default, the system of
    every flag object no other system claims.
    """
    old = _SYSTEMS.pop(system.name, None)
    if old is not None and old.part is not None:
        _BY_PART.pop(old.part, None)
    _SYSTEMS[system.name] = system
    if system.part is None:
        _DEFAULT[:] = [system]
    else:
        _BY_PART[system.part] = system
    return system


def unregister(system: FlagSystem) -> None:
    """Forget ``system`` (a test's own system, once the test is done)."""
    if _SYSTEMS.get(system.name) is not system:
        return
    del _SYSTEMS[system.name]
    if system.part is not None:
        _BY_PART.pop(system.part, None)
    elif _DEFAULT and _DEFAULT[0] is system:
        _DEFAULT.clear()


def registered() -> tuple[FlagSystem, ...]:
    """The registered systems, in the order they registered."""
    return tuple(_SYSTEMS.values())


def system_named(name: str) -> FlagSystem | None:
    """The registered system called ``name``, or None."""
    return _SYSTEMS.get(name)


def default_system() -> FlagSystem:
    """The system of a flag object no other system claims (LaunchDarkly's)."""
    if not _DEFAULT:
        raise RuntimeError(
            "no flag system is registered: import aioflags before its modules"
        )
    return _DEFAULT[0]


def formats() -> tuple[str, ...]:
    """The formats a flag file may be read as: each registered flag system's with one.

    The default system's (LaunchDarkly's) is the reader's own shape; a
    system that declares a document format (``FlagSystem.document``) names
    another.
    """
    return tuple(
        s.name for s in registered() if s.part is None or s.document is not None
    )


def document_format(data: object, format: str | None = None) -> DocumentFormat | None:
    """The flag system's document format a file is read as (None: the reader's own).

    ``format``: a system's name (``format=`` of ``_sources._files.parse_flag_files``);
    None: the first registered system whose format recognises ``data``.
    """
    if format is not None:
        named = system_named(format)
        return None if named is None else named.document
    for system in registered():
        document = system.document
        if document is not None and document.recognises(data):
            return document
    return None


def system_of(raw: Mapping[str, Any]) -> tuple[FlagSystem, JSONValue]:
    """The system that claims flag object ``raw``, and its definition there."""
    if _BY_PART:
        for part, system in _BY_PART.items():
            if part in raw:
                return system, raw[part]
    return default_system(), raw


def read_by(raw: Mapping[str, Any]) -> tuple[FlagSystem, Mapping[str, JSONValue]]:
    """The system whose tools read flag JSON ``raw``, and its definition there (an object).

    :func:`system_of`'s, unless its part is no object: then the default
    system's, of ``raw`` itself (the tools describe what it is).
    """
    system, definition = system_of(raw)
    if not isinstance(definition, dict):
        return default_system(), raw
    return system, definition


def splits_of(flag: CompiledFlag) -> tuple[Split, ...]:
    """``flag``'s randomized assignments, as its system says (``FlagSystem.splits``).

    Empty for a flag that serves none: deleted, malformed, off (disabled),
    or without a rollout (``fractional``).
    """
    if flag.deleted or flag.malformed is not None or not flag.on:
        return ()
    return flag.system.splits(flag)


class CompiledFlag:
    """A flag ready for evaluation. ``malformed`` is set when the JSON was unusable."""

    __slots__ = (
        "client_side",
        "code",
        "compiled_splits",
        "constant",
        "debug_events_until_date",
        "deleted",
        "exclude_from_summaries",
        "fallthrough",
        "flag_metadata",
        "key",
        "malformed",
        "migration_check_ratio",
        "off_result",
        "on",
        "openfeature",
        "prerequisite_keys",
        "prerequisites",
        "rules",
        "sampling_ratio",
        "segment_keys",
        "system",
        "targeting_serves",
        "targets",
        "track_events",
        "track_events_fallthrough",
        "variant_names",
        "variations",
        "version",
    )

    key: str
    version: int
    deleted: bool
    on: bool
    off_result: Result
    prerequisites: tuple[Prerequisite, ...]
    #: runs of same-kind targets: (context kind, {context key: result})
    targets: tuple[tuple[str, dict[str, Result]], ...]
    #: (the rule's clauses, what it serves); the generated code inlines the
    #: inline ones, the interpreter makes predicates of them
    rules: tuple[tuple[tuple[InlineClause | Clause, ...], Resolver], ...]
    fallthrough: Resolver | None
    track_events: bool
    track_events_fallthrough: bool
    debug_events_until_date: int | float | None
    client_side: bool
    malformed: str | None
    #: the result for every context, when it depends on none (off, malformed,
    #: or on with nothing but a fixed fallthrough); ``None`` otherwise
    constant: Result | None
    #: evaluates the flag when ``constant`` is None: ``code.run(code.operands,
    #: context, state)``, its ``run`` shared by the flags of the same shape,
    #: its operands all an evaluation reads of the flag's own (the
    #: matcher's ``heads`` map keys to it if it is not constant)
    code: Code
    prerequisite_keys: tuple[str, ...]
    segment_keys: frozenset[str]
    #: analytics events: send feature and debug events with probability
    #: 1/ratio (1: always, 0: never; anything but an integer counts as 0)
    sampling_ratio: int
    #: analytics events: leave the flag out of summary events
    exclude_from_summaries: bool
    #: a migration flag's ``migration.checkRatio``: run the consistency check
    #: with probability 1/ratio (1: always, 0: never; as ``sampling_ratio``)
    migration_check_ratio: int
    #: the flag system it belongs to (:class:`FlagSystem`): what the
    #: faces ask of it (its reasons, types, metadata, context mapping)
    system: FlagSystem
    #: the variation values (summary events name them by index)
    variations: tuple[JSONValue, ...]
    #: the randomized assignments its system found as it compiled it
    #: (flagd's fractionals: what only its compiler sees); empty for a
    #: system that finds them when asked. Ask :func:`splits_of`.
    compiled_splits: tuple[Split, ...]
    #: a flagd flag's variant names, by variation index (OpenFeature's
    #: ``variant``); ``None`` for a LaunchDarkly flag
    variant_names: tuple[str, ...] | None
    #: a flagd flag's metadata (its flag set's merged under its own), read-only
    #: (OpenFeature's provider hands this one mapping out); ``None`` for a
    #: LaunchDarkly flag
    flag_metadata: Mapping[str, JSONValue] | None
    #: the OpenFeature provider's answers (reason, variant, metadata) for
    #: this flag version's details, kept by the provider
    #: (``aioflags._client._ofanswers.answers_of``): they never change
    openfeature: dict[int, Any]
    #: what an enabled flagd flag's targeting can choose: the variation
    #: indexes it can name, whether it can name none (reason DEFAULT), and
    #: the default variant's index served then (None: the caller's
    #: default); ``None`` for a flag without targeting and a LaunchDarkly
    #: flag (flag coverage's branches)
    targeting_serves: tuple[tuple[int, ...], bool, int | None] | None


def _target_maps(
    targets: list[tuple[str, frozenset[str], Result]],
) -> tuple[tuple[str, dict[str, Result]], ...]:
    """Merge runs of same-kind target lists into one lookup per run.

    The first list holding a key wins, as in a linear scan; runs keep their
    order, so a multi-kind context still meets the kinds in the flag's order.
    """
    maps: list[tuple[str, dict[str, Result]]] = []
    for kind, keys, result in targets:
        if not keys:
            continue
        if not maps or maps[-1][0] != kind:
            maps.append((kind, {}))
        lookup = maps[-1][1]
        for k in keys:
            lookup.setdefault(k, result)
    return tuple(maps)


def _segment_refs(clauses: list[JSONObject]) -> set[str]:
    return {
        v
        for c in clauses
        if c.get("op") == "segmentMatch" and isinstance(c.get("values"), list)
        for v in c["values"]
        if isinstance(v, str)
    }


def compile_flag(key: str, raw: JSONValue) -> CompiledFlag:
    """Compile flag JSON; a malformed flag is returned marked, never raised."""
    _unlisted.__dict__.pop("noted", None)  # (a compile interrupted by a BaseException)
    flag = object.__new__(CompiledFlag)
    flag.key = key
    flag.version = 0
    flag.deleted = False
    flag.prerequisite_keys = ()
    flag.segment_keys = frozenset()
    flag.track_events = False
    flag.track_events_fallthrough = False
    flag.debug_events_until_date = None
    flag.client_side = False
    flag.malformed = None
    flag.on = False
    flag.off_result = Result(None, None, _OFF, False, None)
    flag.prerequisites = ()
    flag.targets = ()
    flag.rules = ()
    flag.fallthrough = None
    flag.constant = None
    flag.code = _CONSTANT_ONLY
    flag.sampling_ratio = 1
    flag.exclude_from_summaries = False
    flag.migration_check_ratio = 1
    flag.variations = ()
    flag.compiled_splits = ()
    flag.variant_names = None
    flag.flag_metadata = None
    flag.openfeature = {}
    flag.targeting_serves = None
    flag.system = default_system()
    try:
        if not isinstance(raw, dict):
            raise _Bad("a flag must be a JSON object" if raw is not None else UNUSABLE)
        ratio = raw.get("samplingRatio", 1)
        flag.sampling_ratio = 1 if ratio is None else ratio if type(ratio) is int else 0
        flag.exclude_from_summaries = raw.get("excludeFromSummaries") is True
        migration = raw.get("migration")
        if isinstance(migration, dict):
            check = migration.get("checkRatio", 1)
            flag.migration_check_ratio = (
                1 if check is None else check if type(check) is int else 0
            )
        version = raw.get("version")
        if type(version) is int:
            flag.version = version
        if raw.get("deleted") is True:
            flag.deleted = True
            flag.constant = NOT_FOUND
        else:
            system, definition = system_of(raw)
            flag.system = system
            system.compile(flag, definition)
    except _Bad as exc:
        flag.malformed = str(exc)
        flag.constant = MALFORMED
        if raw is not None and _told("Flag", key, flag.version):
            logger.error(
                "Flag %r is malformed and will evaluate to MALFORMED_FLAG: %s", key, exc
            )
    except Exception as exc:  # JSON no check foresaw (a weight of 10**400)
        flag.malformed = f"{type(exc).__name__}: {exc}"
        # (in its system's word: a bad flagd definition is PARSE_ERROR)
        flag.constant = unusable = flag.system.unusable
        if _told("Flag", key, flag.version):
            logger.exception(
                "Flag %r could not be compiled and will evaluate to %s",
                key,
                unusable.reason.get("errorKind"),
            )
    # Plain: read as a prerequisite through its code (see Code).
    if flag.on and flag.malformed is None and not flag.prerequisites:
        flag.code = Code(flag.code.run, True, flag.code.operands)
    _said(flag.malformed, "Flag", key, flag.version)
    return flag


def compile_launchdarkly(flag: CompiledFlag, raw: JSONValue) -> None:
    """A LaunchDarkly flag: LaunchDarkly's system's ``compile`` (``aioflags._systems._launchdarkly``)."""
    if not isinstance(raw, dict):  # (compile_flag checked it)
        raise _Bad("a flag must be a JSON object")
    _compile_flag_body(flag, raw)
    if not flag.on:
        flag.constant = flag.off_result


def launchdarkly_splits(flag: CompiledFlag) -> tuple[Split, ...]:
    """A LaunchDarkly flag's rollouts (its rules', then its fallthrough's): LaunchDarkly's system's ``splits``.

    Experiments too (``inExperiment`` or not); see :meth:`Resolver.split`.
    """
    if not flag.on or flag.malformed is not None or flag.fallthrough is None:
        return ()
    resolvers = [resolver for _, resolver in flag.rules]
    resolvers.append(flag.fallthrough)
    return tuple(split for split in (r.split() for r in resolvers) if split is not None)


def _compile_flag_body(flag: CompiledFlag, raw: JSONObject) -> None:
    key = flag.key
    if type(raw.get("version")) is not int:
        raise _Bad("'version' must be an integer")
    _opt(raw, "key", str, key)
    salt = _opt(raw, "salt", str, "")
    variations = _Variations(_opt(raw, "variations", list, []))
    flag.variations = tuple(variations.values)
    flag.on = bool(_opt(raw, "on", bool, False))
    off_variation = _opt(raw, "offVariation", int, None)

    def off_value(reason: Reason) -> Result:
        if off_variation is None:
            return Result(None, None, reason, False, own_cache())
        return variations.result(off_variation, reason)

    flag.off_result = off_value(_OFF)
    prereqs = []
    for p in _objects(raw, "prerequisites"):
        pkey = _opt(p, "key", str, None)
        pvar = _opt(p, "variation", int, None)
        if pkey is None or pvar is None:
            raise _Bad("a prerequisite needs a string 'key' and an integer 'variation'")
        prereqs.append(
            Prerequisite(
                pkey,
                pvar,
                off_value(
                    Reason({"kind": "PREREQUISITE_FAILED", "prerequisiteKey": pkey})
                ),
                flag.key,
            )
        )
    flag.prerequisites = tuple(prereqs)
    flag.prerequisite_keys = tuple(p.key for p in prereqs)

    # Targets (evaluation.md §5.3).
    target_sets = [
        (_opt(t, "variation", int, 0), frozenset(_strings(t, "values")))
        for t in _objects(raw, "targets")
    ]
    targets: list[tuple[str, frozenset[str], Result]] = []
    context_targets = _objects(raw, "contextTargets")
    if not context_targets:
        targets = [
            ("user", values, variations.result(v, _TARGET_MATCH))
            for v, values in target_sets
        ]
    else:
        for t in context_targets:
            kind = _opt(t, "contextKind", str, "") or "user"
            v = _opt(t, "variation", int, 0)
            if kind == "user":
                found = next((values for tv, values in target_sets if tv == v), None)
                if found is not None:
                    targets.append(("user", found, variations.result(v, _TARGET_MATCH)))
            else:
                targets.append(
                    (
                        kind,
                        frozenset(_strings(t, "values")),
                        variations.result(v, _TARGET_MATCH),
                    )
                )
    flag.targets = _target_maps(targets)

    rules = []
    inline: list[
        tuple[tuple[InlineClause | Clause, ...], Result | None, Resolve | Rollout]
    ] = []
    segments: set[str] = set()
    for index, r in enumerate(_objects(raw, "rules")):
        rule_id = _opt(r, "id", str, "")
        fields: JSONObject = {"kind": "RULE_MATCH", "ruleIndex": index}
        if rule_id:
            fields["ruleId"] = rule_id
        reason = Reason(fields)
        clauses = _objects(r, "clauses")
        segments |= _segment_refs(clauses)
        track = bool(_opt(r, "trackEvents", bool, False))
        compiled = tuple(_compile_clause(c) for c in clauses)
        resolver = Resolver(r, key, salt, variations, reason, track)
        rules.append((compiled, resolver))
        inline.append((compiled, resolver.fixed, resolver.rollout or resolver.resolve))
    flag.rules = tuple(rules)
    flag.segment_keys = frozenset(segments)
    flag.track_events = bool(_opt(raw, "trackEvents", bool, False))
    flag.track_events_fallthrough = bool(
        _opt(raw, "trackEventsFallthrough", bool, False)
    )
    flag.fallthrough = Resolver(
        _opt(raw, "fallthrough", dict, {}),
        key,
        salt,
        variations,
        _FALLTHROUGH,
        flag.track_events_fallthrough,
    )
    fallthrough = flag.fallthrough
    if not (prereqs or flag.targets or rules) and fallthrough.fixed is not None:
        flag.constant = fallthrough.fixed
    else:
        built = build_runner(
            flag.prerequisites,
            flag.targets,
            inline,
            (fallthrough.fixed, fallthrough.rollout or fallthrough.resolve),
        )
        if built is None:
            flag.code = Code(_interpreted, False, (flag, _matchers(flag)))
        else:
            run, operands = built
            flag.code = Code(run, False, operands)
    debug = raw.get("debugEventsUntilDate")
    if debug is not None and type(debug) not in (int, float):
        raise _Bad("'debugEventsUntilDate' must be a number")
    flag.debug_events_until_date = debug
    availability = _opt(raw, "clientSideAvailability", dict, None)
    if availability is not None:
        flag.client_side = bool(_opt(availability, "usingEnvironmentId", bool, False))
    else:
        flag.client_side = bool(_opt(raw, "clientSide", bool, False))


def _constant_only(operands: tuple[()], ctx: Context, st: EvalState) -> Result:
    raise AssertionError("a flag with a constant result is never run")


#: the code of a flag whose result is constant (never run)
_CONSTANT_ONLY: Final = Code(_constant_only, False, ())


def _interpreted(
    operands: tuple[CompiledFlag, tuple[Clause, ...]], ctx: Context, st: EvalState
) -> Result:
    """The ``run`` of a flag too big to generate code for.

    Its operands: the flag and its rules' predicates.
    """
    flag, matchers = operands
    return interpret(flag, ctx, st, matchers=matchers)


def _matchers(flag: CompiledFlag) -> tuple[Clause, ...]:
    """One predicate per rule, for the interpreter."""
    return tuple(build_predicate(clauses) for clauses, _ in flag.rules)


def interpret(
    flag: CompiledFlag,
    ctx: Context,
    st: EvalState,
    *,
    matchers: tuple[Clause, ...] | None = None,
) -> Result:
    """Evaluate an on, well-formed flag by walking its compiled parts.

    What the generated code does, for flags too big to generate code for
    (``matchers``, built once, are the rules' predicates); the tests also hold
    the two against each other.
    """
    if matchers is None:
        matchers = _matchers(flag)
    if flag.prerequisites:
        failed = st.prerequisites_failed(flag.prerequisites, ctx)
        if failed is not None:
            return failed
    targets = flag.targets
    if targets:
        parts = ctx._parts
        for kind, lookup in targets:
            part = parts.get(kind)
            if part is not None:
                hit = lookup.get(part._key)
                if hit is not None:
                    return hit
    for match, (_, resolver) in zip(matchers, flag.rules, strict=True):
        if match(ctx, st):
            fixed = resolver.fixed
            return fixed if fixed is not None else resolver.resolve(ctx)
    fallthrough = flag.fallthrough
    assert fallthrough is not None
    fixed = fallthrough.fixed
    return fixed if fixed is not None else fallthrough.resolve(ctx)


# ----------------------------------------------------------------- segments


class SegmentRule:
    """A segment rule: all its clauses as one predicate, and an optional weight."""

    __slots__ = ("bucketer", "match", "threshold")

    def __init__(
        self, match: Clause, threshold: float | None, bucketer: Bucketer
    ) -> None:
        self.match = match
        self.threshold = threshold
        self.bucketer = bucketer


class CompiledSegment:
    """A segment ready for membership checks."""

    __slots__ = (
        "contains",
        "deleted",
        "excluded",
        "excluded_contexts",
        "generation",
        "included",
        "included_contexts",
        "key",
        "malformed",
        "rules",
        "segment_keys",
        "unbounded",
        "unbounded_kind",
        "version",
    )

    key: str
    version: int
    deleted: bool
    included: frozenset[str]
    excluded: frozenset[str]
    included_contexts: tuple[tuple[str, frozenset[str]], ...]
    excluded_contexts: tuple[tuple[str, frozenset[str]], ...]
    rules: tuple[SegmentRule, ...]
    #: ``contains(context, state)``: the membership of a bounded segment
    #: whose rules reference no segment (a deleted one has nobody); ``None``
    #: for the others (unbounded, nested, malformed): the state decides
    contains: Callable[[Context, SegmentMatcher], bool] | None
    unbounded: bool
    unbounded_kind: str
    generation: int | None
    malformed: str | None
    segment_keys: frozenset[str]


def _context_lists(
    raw: JSONObject, field: str
) -> tuple[tuple[str, frozenset[str]], ...]:
    return tuple(
        ((_opt(e, "contextKind", str, "") or "user"), frozenset(_strings(e, "values")))
        for e in _objects(raw, field)
    )


def _no_member(ctx: Context, st: SegmentMatcher) -> bool:
    """A deleted segment's membership: nobody."""
    return False


def compile_segment(key: str, raw: JSONValue) -> CompiledSegment:
    """Compile segment JSON; a malformed segment never matches and is logged."""
    _unlisted.__dict__.pop("noted", None)  # (a compile interrupted by a BaseException)
    seg = object.__new__(CompiledSegment)
    seg.key = key
    seg.version = 0
    seg.deleted = False
    seg.malformed = None
    seg.included = seg.excluded = frozenset()
    seg.included_contexts = seg.excluded_contexts = ()
    seg.rules = ()
    seg.unbounded = False
    seg.unbounded_kind = "user"
    seg.generation = None
    seg.segment_keys = frozenset()
    seg.contains = None
    try:
        if not isinstance(raw, dict):
            raise _Bad(
                "a segment must be a JSON object" if raw is not None else UNUSABLE
            )
        version = raw.get("version")
        if type(version) is int:
            seg.version = version
        if raw.get("deleted") is True:
            seg.deleted = True
            seg.contains = _no_member
            return seg
        salt = _opt(raw, "salt", str, "")
        seg.included = frozenset(_strings(raw, "included"))
        seg.excluded = frozenset(_strings(raw, "excluded"))
        seg.included_contexts = _context_lists(raw, "includedContexts")
        seg.excluded_contexts = _context_lists(raw, "excludedContexts")
        seg.unbounded = bool(_opt(raw, "unbounded", bool, False))
        seg.unbounded_kind = _opt(raw, "unboundedContextKind", str, "") or "user"
        seg.generation = _opt(raw, "generation", int, None)
        rules = []
        compiled = []
        refs: set[str] = set()
        for r in _objects(raw, "rules"):
            weight = _opt(r, "weight", int, None)
            kind = _opt(r, "rolloutContextKind", str, "")
            clauses = _objects(r, "clauses")
            refs |= _segment_refs(clauses)
            inline = tuple(_compile_clause(c) for c in clauses)
            rule = SegmentRule(
                build_predicate(inline),
                None if weight is None else weight / 100000.0,
                Bucketer(
                    prefix=f"{key}.{salt}.",
                    kind=kind or "user",
                    attribute=_opt(r, "bucketBy", str, "") or "key",
                    literal=not kind,
                ),
            )
            if rule.threshold is not None:  # else it never buckets
                rule.bucketer.note_if_invalid()
            rules.append(rule)
            compiled.append((inline, rule.threshold, rule.bucketer.bucket))
        seg.rules = tuple(rules)
        seg.segment_keys = frozenset(refs)
        if not (seg.unbounded or refs):
            # Bounded, and no rule references a segment (no cycle): its
            # lists and rules as one generated function.
            seg.contains = build_segment(
                (("user", seg.included), *seg.included_contexts),
                (("user", seg.excluded), *seg.excluded_contexts),
                compiled,
            )
    except Exception as exc:  # _Bad, or JSON no check foresaw
        seg.malformed = (
            str(exc) if isinstance(exc, _Bad) else f"{type(exc).__name__}: {exc}"
        )
        seg.rules = ()
        seg.contains = None
        if raw is not None and _told("Segment", key, seg.version):
            logger.error(
                "Segment %r is malformed: flags that reach it evaluate to "
                "MALFORMED_FLAG: %s",
                key,
                seg.malformed,
                exc_info=not isinstance(exc, _Bad),
            )
    _said(seg.malformed, "Segment", key, seg.version)
    return seg


def checked_flag(key: str, raw: JSONValue) -> tuple[CompiledFlag, list[str]]:
    """Compile a flag, and say why evaluations of it return MALFORMED_FLAG.

    The problems are the JSON's shape, when the flag is malformed as a whole
    (every evaluation is MALFORMED_FLAG); else each part that makes the
    evaluations reaching it MALFORMED_FLAG, as the compiler decides them (a
    variation index out of range, a rule or fallthrough that serves nothing,
    an invalid attribute reference). Empty: none.
    """
    with _noting() as problems:
        flag = compile_flag(key, raw)
    return flag, [flag.malformed] if flag.malformed is not None else problems


def checked_segment(key: str, raw: JSONValue) -> tuple[CompiledSegment, list[str]]:
    """Compile a segment, and say why flags that reach it evaluate to MALFORMED_FLAG."""
    with _noting() as problems:
        seg = compile_segment(key, raw)
    return seg, [seg.malformed] if seg.malformed is not None else problems


def flag_tombstone(key: str, version: int) -> CompiledFlag:
    """A deleted flag (kept so that older versions cannot resurrect it)."""
    return compile_flag(key, {"key": key, "version": version, "deleted": True})


def segment_tombstone(key: str, version: int) -> CompiledSegment:
    """A deleted segment."""
    return compile_segment(key, {"key": key, "version": version, "deleted": True})
