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
    CompiledFlag,
    CompiledSegment,
    MalformedAbort,
    Result,
    served,
)
from ._results import Reason

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._context import Context
    from ._json import JSONValue

__all__ = ["ERROR_RESULTS", "evaluate", "typed_check"]

logger = logging.getLogger("aioflags")


def _error(kind: str) -> Result:
    return (None, None, Reason({"kind": "ERROR", "errorKind": kind}), False, None)


#: The error results by errorKind (shared reasons: copy before exposing).
ERROR_RESULTS: Final[dict[str, Result]] = {
    kind: _error(kind)
    for kind in (
        "CLIENT_NOT_READY",
        "USER_NOT_SPECIFIED",
        "FLAG_NOT_FOUND",
        "WRONG_TYPE",
        "EXCEPTION",
    )
}
ERROR_RESULTS["MALFORMED_FLAG"] = MALFORMED
_EXCEPTION: Final = ERROR_RESULTS["EXCEPTION"]


#: Outcomes of flags already evaluated at top level in one all-flags pass, by
#: key: (variation index, big-segment status, OK / ABORTED / FAILED).
Memo: TypeAlias = "dict[str, tuple[int | None, str | None, int]]"
OK, ABORTED, FAILED = 0, 1, 2


class _State:
    """Per-evaluation recursion state; also answers ``segmentMatch`` clauses."""

    __slots__ = (
        "big",
        "chain",
        "flags",
        "memo",
        "prerequisites",
        "segment_stack",
        "segments",
    )

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag],
        segments: Mapping[str, CompiledSegment],
        key: str,
        memo: Memo | None = None,
    ) -> None:
        self.flags = flags
        self.segments = segments
        self.memo = memo
        self.chain: list[str] = [key]
        self.segment_stack: list[str] = []
        self.big: str | None = None
        self.prerequisites: list[str] = []

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
        parts = ctx._parts
        if seg.unbounded:
            # aioflags has no big-segment store, so membership is NOT_CONFIGURED
            # (recorded only once the context has the segment's kind) and only the
            # rules can match; without a generation nothing can (evaluation.md §7.2).
            if seg.generation is None:
                self.big = "NOT_CONFIGURED"
                return False
            if seg.unbounded_kind not in parts:
                return False
            self.big = "NOT_CONFIGURED"
        else:
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
        if not seg.rules:
            return False
        if seg.key in self.segment_stack:
            raise MalformedAbort(f"segment rule cycle through {seg.key!r}")
        self.segment_stack.append(seg.key)
        try:
            for rule in seg.rules:
                for clause in rule.clauses:
                    if not clause(ctx, self):
                        break
                else:
                    if (
                        rule.threshold is None
                        or rule.bucketer.bucket(ctx) < rule.threshold
                    ):
                        return True
            return False
        finally:
            self.segment_stack.pop()


#: The state shared by flags that need none (it is never written to).
_NO_STATE: Final = _State({}, {}, "")


def _evaluate_flag(flag: CompiledFlag, ctx: Context, st: _State) -> Result:
    if flag.malformed is not None:
        return MALFORMED
    if not flag.on:
        return flag.off_result
    if flag.prerequisites:
        chain = st.chain
        top = len(chain) == 1
        for prereq in flag.prerequisites:
            key = prereq.key
            if key in chain:
                raise MalformedAbort(f"prerequisite cycle through {key!r}")
            if top:
                st.prerequisites.append(key)
            pflag = st.flags.get(key)
            if pflag is None or pflag.deleted:
                return prereq.failed
            memo = st.memo
            hit = memo.get(key) if memo is not None else None
            if hit is not None:
                # Evaluated at top level earlier in this pass: the outcome is the
                # same here (a cycle through it would have aborted it there too).
                index, big, status = hit
                if status == ABORTED:
                    raise MalformedAbort(f"prerequisite {key!r} could not be evaluated")
                if status == FAILED:
                    raise RuntimeError(f"prerequisite {key!r} failed unexpectedly")
                if big is not None:
                    st.big = big
            else:
                chain.append(key)
                index = _evaluate_flag(pflag, ctx, st)[1]
                chain.pop()
            if not pflag.on or index != prereq.variation:
                return prereq.failed
    if flag.targets:
        parts = ctx._parts
        for kind, keys, result in flag.targets:
            part = parts.get(kind)
            if part is not None and part._key in keys:
                return result
    for clauses, resolver in flag.rules:
        for clause in clauses:
            if not clause(ctx, st):
                break
        else:
            fixed = resolver.fixed
            return fixed if fixed is not None else resolver.resolve(ctx)
    fallthrough = flag.fallthrough
    assert fallthrough is not None
    fixed = fallthrough.fixed
    return fixed if fixed is not None else fallthrough.resolve(ctx)


def evaluate(
    flags: Mapping[str, CompiledFlag],
    segments: Mapping[str, CompiledSegment],
    flag: CompiledFlag,
    ctx: Context,
    memo: Memo | None = None,
) -> tuple[Result, _State]:
    """Evaluate one (present, non-deleted) flag for a valid context.

    Returns the result and the state (for the prerequisites it recorded).
    Never raises: aborts give MALFORMED_FLAG, anything unexpected EXCEPTION.
    With ``memo`` (one all-flags pass), prerequisites already evaluated at top
    level are not evaluated again, and this flag's outcome is recorded.
    """
    # Most flags have neither prerequisites nor segment clauses: they never
    # touch the state, so they share one instead of allocating their own.
    st = _State(flags, segments, flag.key, memo) if flag.needs_state else _NO_STATE
    try:
        result = _evaluate_flag(flag, ctx, st)
    except MalformedAbort as exc:
        logger.warning("Flag %r could not be evaluated: %s", flag.key, exc)
        if memo is not None:
            memo[flag.key] = (None, None, ABORTED)
        return MALFORMED, st
    except Exception:
        logger.exception("Unexpected error evaluating flag %r", flag.key)
        if memo is not None:
            memo[flag.key] = (None, None, FAILED)
        return _EXCEPTION, st
    if memo is not None:
        memo[flag.key] = (result[1], st.big, OK)
    if st.big is not None:
        reason = Reason({**result[2], "bigSegmentsStatus": st.big})
        index = result[1]
        if index is None:
            result = (result[0], None, reason, result[3], None)
        else:
            result = served(result[0], index, reason, result[3])
    return result, st


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
