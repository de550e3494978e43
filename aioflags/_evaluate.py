"""The evaluator: pure, synchronous, no I/O (evaluation.md §4-§11).

Everything here reads one immutable snapshot of compiled flags and segments.
Recursion state (the prerequisite chain, the segment stack, prerequisites
recorded for all-flags state, big-segment status) lives in a per-evaluation
:class:`_State`, so evaluations are re-entrant and thread-safe.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, TypeAlias

from ._model import (
    MALFORMED,
    NOT_FOUND,
    CompiledFlag,
    CompiledSegment,
    MalformedAbort,
    Prerequisite,
    Result,
)
from ._results import Reason
from ._stores._bigsegments import unbounded_member

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._context import Context
    from ._json import JSONValue
    from ._model import SegmentMatcher
    from ._stores._bigsegments import BigSegments

__all__ = [
    "ERROR_RESULTS",
    "Matcher",
    "Recorded",
    "evaluate",
    "evaluate_one",
    "typed_check",
]

logger = logging.getLogger("aioflags.evaluation")


def _error(kind: str) -> Result:
    return (None, None, Reason({"kind": "ERROR", "errorKind": kind}), False, None)


#: The error results by errorKind (shared reasons: copy before exposing).
ERROR_RESULTS: Final[dict[str, Result]] = {
    kind: _error(kind)
    for kind in ("CLIENT_NOT_READY", "USER_NOT_SPECIFIED", "WRONG_TYPE", "EXCEPTION")
}
ERROR_RESULTS["FLAG_NOT_FOUND"] = NOT_FOUND
ERROR_RESULTS["MALFORMED_FLAG"] = MALFORMED
_EXCEPTION: Final = ERROR_RESULTS["EXCEPTION"]


OK, ABORTED, FAILED = 0, 1, 2


class _Outcome:
    """A memo entry for an evaluation that did not just return a result."""

    __slots__ = ("big", "index", "status")

    def __init__(self, index: int | None, big: str | None, status: int) -> None:
        self.index = index
        self.big = big
        self.status = status


_ABORTED: Final = _Outcome(None, None, ABORTED)
_FAILED: Final = _Outcome(None, None, FAILED)

#: Outcomes of flags already evaluated at top level in one all-flags pass, by
#: key: the result itself (the common case: nothing to allocate), or an
#: outcome (aborted, failed, or with a big-segment status).
Memo: TypeAlias = "dict[str, Result | _Outcome]"

#: Prerequisite evaluations, for analytics events: ``(prerequisite flag, its
#: result, the key of the flag that required it)``, depth first.
Recorded: TypeAlias = "list[tuple[CompiledFlag, Result, str]]"


class _NeedState(Exception):
    """The shared matcher met something only a per-evaluation state can do."""


def _membership(seg: CompiledSegment, parts: Mapping[str, Context]) -> bool | None:
    """A bounded segment's lists: included (True), excluded (False) or neither."""
    user = parts.get("user")
    if user is not None and user._key in seg.included:
        return True
    for kind, keys in seg.included_contexts:
        part = parts.get(kind)
        if part is not None and part._key in keys:
            return True
    if user is not None and user._key in seg.excluded:
        return False
    for kind, keys in seg.excluded_contexts:
        part = parts.get(kind)
        if part is not None and part._key in keys:
            return False
    return None


def _rules_match(seg: CompiledSegment, ctx: Context, st: SegmentMatcher) -> bool:
    for rule in seg.rules:
        if rule.match(ctx, st) and (
            rule.threshold is None or rule.bucketer.bucket(ctx) < rule.threshold
        ):
            return True
    return False


class Matcher:
    """Answers ``segmentMatch`` for one snapshot, with no per-evaluation state.

    One is shared by every evaluation of a snapshot (it is never written to),
    so a flag with segment clauses but no prerequisites allocates nothing. It
    covers the common segments: bounded, their rules without ``segmentMatch``.
    For the others (and for prerequisites) it raises :class:`_NeedState` and the
    evaluation starts again with a :class:`_State` (evaluation is pure).
    """

    __slots__ = ("big_segments", "flags", "segments")

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag],
        segments: Mapping[str, CompiledSegment],
        big_segments: BigSegments | None = None,
    ) -> None:
        self.flags = flags
        self.segments = segments
        # Where unbounded segments' memberships come from (None: nowhere).
        self.big_segments = big_segments

    def prerequisites_failed(
        self, prerequisites: tuple[Prerequisite, ...], ctx: Context
    ) -> Result | None:
        raise _NeedState

    def match_segments(self, keys: tuple[str, ...], ctx: Context) -> bool:
        segments = self.segments
        for key in keys:
            seg = segments.get(key)
            if seg is not None and not seg.deleted and self._contains(seg, ctx):
                return True
        return False

    def _contains(self, seg: CompiledSegment, ctx: Context) -> bool:
        if seg.malformed is not None:
            raise MalformedAbort(f"segment {seg.key!r} is malformed")
        if seg.unbounded or seg.segment_keys:
            raise _NeedState
        member = _membership(seg, ctx._parts)
        if member is not None:
            return member
        return bool(seg.rules) and _rules_match(seg, ctx, self)


class _State(Matcher):
    """Per-evaluation recursion state: prerequisites, nested and big segments."""

    __slots__ = ("big", "chain", "memo", "prerequisites", "recorded", "segment_stack")

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag],
        segments: Mapping[str, CompiledSegment],
        key: str,
        memo: Memo | None = None,
        recorded: Recorded | None = None,
        big_segments: BigSegments | None = None,
    ) -> None:
        self.flags = flags
        self.segments = segments
        self.big_segments = big_segments
        self.memo = memo
        self.chain: list[str] = [key]
        self.segment_stack: list[str] = []
        self.big: str | None = None
        # The top-level flag's prerequisites, for all-flags state only.
        self.prerequisites: list[str] | None = None if memo is None else []
        # Every prerequisite evaluation, for analytics events (or None).
        self.recorded = recorded

    def prerequisites_failed(
        self, prerequisites: tuple[Prerequisite, ...], ctx: Context
    ) -> Result | None:
        """The result of the first prerequisite that fails, or ``None``."""
        chain = self.chain
        record = self.prerequisites if len(chain) == 1 else None
        for prereq in prerequisites:
            key = prereq.key
            if key in chain:
                raise MalformedAbort(f"prerequisite cycle through {key!r}")
            if record is not None:
                record.append(key)
            pflag = self.flags.get(key)
            if pflag is None or pflag.deleted:
                return prereq.failed
            if not pflag.on or pflag.malformed is not None:
                # An off prerequisite fails whatever it serves; so does a
                # malformed one (it serves no variation).
                if self.recorded is not None and pflag.constant is not None:
                    self.recorded.append((pflag, pflag.constant, chain[-1]))
                return prereq.failed
            if _prerequisite_index(pflag, ctx, self) != prereq.variation:
                return prereq.failed
        return None

    def _contains(self, seg: CompiledSegment, ctx: Context) -> bool:
        if seg.malformed is not None:
            raise MalformedAbort(f"segment {seg.key!r} is malformed")
        if seg.unbounded:
            # Membership from the big-segment store (shared/stores.md §6.2).
            member, self.big = unbounded_member(self.big_segments, seg, ctx, self.big)
            if member is not None:
                return member
        else:
            member = _membership(seg, ctx._parts)
            if member is not None:
                return member
        if not seg.rules:
            return False
        if seg.key in self.segment_stack:
            raise MalformedAbort(f"segment rule cycle through {seg.key!r}")
        self.segment_stack.append(seg.key)
        try:
            return _rules_match(seg, ctx, self)
        finally:
            self.segment_stack.pop()


def _prerequisite_index(pflag: CompiledFlag, ctx: Context, st: _State) -> int | None:
    """The variation index an (on) prerequisite serves, evaluated at most once."""
    key = pflag.key
    memo = st.memo
    hit = memo.get(key) if memo is not None else None
    if hit is not None:
        # Evaluated at top level earlier in this pass: the outcome is the
        # same here (a cycle through it would have aborted it there too).
        if not isinstance(hit, _Outcome):
            return hit[1]
        if hit.status == ABORTED:
            raise MalformedAbort(f"prerequisite {key!r} could not be evaluated")
        if hit.status == FAILED:
            raise RuntimeError(f"prerequisite {key!r} failed unexpectedly")
        st.big = hit.big
        return hit.index
    constant = pflag.constant
    recorded = st.recorded
    if constant is not None:
        if recorded is not None:
            recorded.append((pflag, constant, st.chain[-1]))
        return constant[1]
    st.chain.append(key)
    result = pflag.run(ctx, st)
    st.chain.pop()
    if recorded is not None:
        recorded.append((pflag, result, st.chain[-1]))
    return result[1]


def _with_big(result: Result, big: str) -> Result:
    """The result with the big-segment status in its reason (for this evaluation)."""
    reason = Reason({**result[2], "bigSegmentsStatus": big})
    return (result[0], result[1], reason, result[3], None)


def evaluate_one(
    matcher: Matcher,
    flag: CompiledFlag,
    ctx: Context,
    recorded: Recorded | None = None,
) -> Result:
    """Evaluate one (present) flag for a valid context, with a state; never raises.

    The careful path. The hot paths first try ``flag.run(ctx, matcher)`` on a
    flag without prerequisites (nothing to allocate); they come here for a
    flag with prerequisites, or when that raised: evaluation is pure, so this
    does it again with a state (for big or nested segments), and logs and
    returns MALFORMED_FLAG or EXCEPTION if it fails again. The flag's result
    is not constant (the callers return a constant one at once). With
    ``recorded``, every prerequisite evaluation is appended to it, depth first,
    as ``(prerequisite, its result, the key of the flag that required it)``.
    """
    st = _State(
        matcher.flags, matcher.segments, flag.key, None, recorded, matcher.big_segments
    )
    try:
        result = flag.run(ctx, st)
    except MalformedAbort as exc:
        logger.warning("Flag %r could not be evaluated: %s", flag.key, exc)
        return MALFORMED
    except Exception:
        logger.exception("Unexpected error evaluating flag %r", flag.key)
        return _EXCEPTION
    big = st.big
    return result if big is None else _with_big(result, big)


def evaluate(
    matcher: Matcher, flag: CompiledFlag, ctx: Context, memo: Memo
) -> tuple[Result, _State]:
    """Evaluate one (present, non-constant) flag in an all-flags pass, with a state.

    The careful path, as :func:`evaluate_one`, for a flag with prerequisites or
    whose ``run(ctx, matcher)`` raised. Returns the result and the state (for
    the prerequisites it recorded), and records the outcome in
    ``memo``, so that a prerequisite already evaluated in this pass is not
    evaluated again. Never raises: aborts give MALFORMED_FLAG, anything
    unexpected EXCEPTION.
    """
    key = flag.key
    st = _State(matcher.flags, matcher.segments, key, memo, None, matcher.big_segments)
    try:
        result = flag.run(ctx, st)
    except MalformedAbort as exc:
        logger.warning("Flag %r could not be evaluated: %s", key, exc)
        memo[key] = _ABORTED
        return MALFORMED, st
    except Exception:
        logger.exception("Unexpected error evaluating flag %r", key)
        memo[key] = _FAILED
        return _EXCEPTION, st
    big = st.big
    if big is None:
        memo[key] = result
        return result, st
    memo[key] = _Outcome(result[1], big, OK)
    return _with_big(result, big), st


def typed_check(value: JSONValue, kind: type) -> tuple[bool, JSONValue]:
    """Check a variation value against a typed method (§10); return (ok, value)."""
    tv = type(value)
    if kind is bool:
        return tv is bool, value
    if kind is int:
        if tv is int:
            return True, value
        if tv is float:
            return True, int(value)
        return False, value
    if kind is float:
        if tv is float:
            return True, value
        if tv is int:
            return True, float(value)
        return False, value
    if kind is str:
        return tv is str, value
    return True, value
