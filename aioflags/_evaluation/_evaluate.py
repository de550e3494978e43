"""The evaluator: pure, synchronous, no I/O (evaluation.md §4-§11).

Everything here reads one immutable snapshot of compiled flags and segments.
Recursion state (the prerequisite chain, the segment stack, prerequisites
reached for all-flags state, big-segment status) lives in a per-evaluation
:class:`_State`, so evaluations are re-entrant and thread-safe; a
counting matcher (``Matcher.counting``: analytics events) is made once per
flag and holds no per-evaluation state either.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, final

from ._codegen import Code
from ._guarded import guarded_head
from ._logonce import Occurrences
from ._membership import unbounded_member
from ._model import (
    MALFORMED,
    NOT_FOUND,
    CompiledFlag,
    CompiledSegment,
    MalformedAbort,
    Prerequisite,
)
from ._results import Reason, Result
from ._tables import Table

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aioflags._core._json import JSONValue

    from ._context import Context
    from ._guarded import Guarded
    from ._membership import MembershipSource
    from ._model import SegmentMatcher
    from ._recording import Ledger

__all__ = [
    "ERROR_RESULTS",
    "MAX_CHAIN_DEPTH",
    "Counters",
    "Head",
    "Matcher",
    "Recording",
    "counting_run",
    "finish",
    "own_prerequisites",
    "prerequisites_reached",
    "run_head",
    "run_heads",
    "typed_check",
]

logger = logging.getLogger("aioflags.evaluation")
#: Flags and error kinds whose failures are remembered (then counted, not logged).
_MAX_FAILING: Final = 1000
_FAILURES: Final = Occurrences(_MAX_FAILING)


def _error(kind: str) -> Result:
    return Result(None, None, Reason({"kind": "ERROR", "errorKind": kind}), False, None)


#: The error results by errorKind (shared reasons: copy before exposing).
ERROR_RESULTS: Final[dict[str, Result]] = {
    kind: _error(kind)
    for kind in ("CLIENT_NOT_READY", "USER_NOT_SPECIFIED", "WRONG_TYPE", "EXCEPTION")
}
ERROR_RESULTS["FLAG_NOT_FOUND"] = NOT_FOUND
ERROR_RESULTS["MALFORMED_FLAG"] = MALFORMED
_EXCEPTION: Final = ERROR_RESULTS["EXCEPTION"]
#: What :func:`finish` gives for an abort: MALFORMED_FLAG, as ``MALFORMED``
#: is, but its own object, so that an abort (no big-segment status) is told
#: from code that serves ``MALFORMED`` (a malformed part reached: with the
#: status, as LaunchDarkly gives it).
_ABORTED: Final = Result(None, None, MALFORMED.reason, False, None)

#: The deepest the evaluator follows a chain of prerequisites (or of segments
#: nested in segment rules): a flag's prerequisite is at level 1, its
#: prerequisite's at level 2, and so on; so are the segments nested in a
#: segment's rules below it. Running a flag or matching a segment's rules
#: deeper aborts the evaluation (MALFORMED_FLAG), as a cycle does. Each
#: level costs the evaluator's recursion a few Python frames, and a chain
#: must fail by a rule that ``aioflags validate`` states (it reads this),
#: not when the interpreter's stack runs out (``RecursionError``, which
#: depends on the caller's stack). What is not run does not count: a
#: constant prerequisite (an off flag, a fixed fallthrough), a segment
#: without rules.
MAX_CHAIN_DEPTH: Final = 100


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


#: What an evaluation runs of a flag (``Matcher.heads``): its constant
#: result, or its :class:`~._codegen.Code` (what runs it, whether it is
#: plain, its operands), which :func:`run_head` runs.
Head: TypeAlias = "Code | Result"

#: A matcher's counting matchers for one ledger (``Matcher.counters``): by
#: flag key, variation's and variation_detail's; then the counting heads
#: they share, by prerequisite key.
Counters: TypeAlias = (
    "tuple[dict[str, Recording], dict[str, Recording], dict[str, Head]]"
)


def _missing(operands: tuple[()], ctx: Context, st: object) -> Result:
    raise AssertionError("a missing flag's head is never run")


#: the head of a flag that is not there, for the inline prerequisite
#: checks: not plain (see Code), so handed to the prerequisite walk
_NO_FLAG: Final = Code(_missing, False, ())


#: :attr:`Matcher.done` of a snapshot's own matcher
_NO_RESULTS: Final[Mapping[str, Result]] = MappingProxyType({})


class _Segments(Protocol):
    """What :func:`_match_segments` reads of a matcher (``Matcher``, ``_State``)."""

    @property
    def segments(self) -> Mapping[str, CompiledSegment]: ...
    @property
    def hot_segments(self) -> dict[str, CompiledSegment]: ...

    def _contains(self, seg: CompiledSegment, ctx: Context) -> bool: ...

    def match_segments(self, keys: tuple[str, ...], ctx: Context, /) -> bool: ...


def _match_segments(self: _Segments, keys: tuple[str, ...], ctx: Context) -> bool:
    """Whether ``ctx`` is in any of the segments ``keys`` (missing ones: no).

    ``Matcher.match_segments`` and ``_State.match_segments``: each decides
    what a segment its code was not generated for contains (``_contains``).
    """
    hot = self.hot_segments
    for key in keys:
        seg = hot.get(key)  # (a plain dict: no call of the table's own lookup)
        if seg is None:
            try:
                seg = self.segments[key]  # (made on first lookup)
            except KeyError:
                continue
        contains = seg.contains  # generated for the common segments
        if self._contains(seg, ctx) if contains is None else contains(ctx, self):
            return True
    return False


def _hot(segments: Mapping[str, CompiledSegment]) -> dict[str, CompiledSegment]:
    """The plain dict of ``segments`` an evaluation reads first (see :class:`Matcher`)."""
    if type(segments) is Table:
        return segments.hot
    return segments if type(segments) is dict else {}


class _Walks(Protocol):
    """What the prerequisite walk reads of a matcher or a state."""

    @property
    def flags(self) -> Mapping[str, CompiledFlag]: ...
    @property
    def hot(self) -> dict[str, CompiledFlag]: ...
    @property
    def done(self) -> Mapping[str, Result]: ...
    @property
    def chain(self) -> list[str] | None: ...
    @property
    def ledger(self) -> Ledger | None: ...
    @property
    def detail(self) -> bool: ...
    @property
    def guarded(self) -> Mapping[str, Guarded] | None: ...


def _guarded_code(walk: _Walks, key: str, flag: CompiledFlag) -> Code:
    """What the prerequisite walk runs of non-constant ``flag``: its code, or its guarded head.

    A guarded prerequisite is evaluated as its head is, whichever path
    reaches it: a pin serves control, and a randomized answer notes the
    request's arm (:func:`~._guarded.guarded_run`, with the walk's state).
    """
    code = flag.code
    guarded = walk.guarded
    guard = None if guarded is None else guarded.get(key)
    if guard is not None:
        head = guarded_head(guard, flag, code)
        if type(head) is Code:
            return head
    return code


def _prerequisites_failed(
    st: Any, prerequisites: tuple[Prerequisite, ...], ctx: Context
) -> Result | None:
    """The result of the first of ``prerequisites`` that fails, or ``None``.

    The one prerequisite walk, what a flag's code calls on its state
    (``st.prerequisites_failed``, a :class:`_Walks`: the shared
    :class:`Matcher`, a :class:`Recording` one, a careful :class:`_State`).
    In order, each prerequisite: a missing or deleted flag fails; else
    its result, its constant one (off, malformed, fixed), one this
    evaluation has already (all-flags state's ``done``), or its code run:
    on the careful path (``chain``) with cycles and depth checked and the
    top-level flag's prerequisites reached noted; elsewhere only a
    prerequisite without prerequisites of its own reaches here. Counted
    in ``ledger`` if any (analytics events), whether or not it then fails.
    An off or malformed prerequisite fails whatever it serves
    (evaluation.md §5.2), as does one serving another variation.
    """
    walk: _Walks = st
    chain = walk.chain
    reached = st.prerequisites if chain is not None and len(chain) == 1 else None
    flags = walk.flags
    hot = walk.hot
    done = walk.done
    ledger = walk.ledger
    for prereq in prerequisites:
        key = prereq.key
        if chain is not None:
            if key in chain:
                raise MalformedAbort(f"prerequisite cycle through {key!r}")
            if reached is not None:
                reached.append(key)
        pflag: CompiledFlag | None
        try:
            pflag = hot[key]
        except KeyError:
            pflag = flags.get(key)  # (made on first lookup)
        if pflag is None or pflag.deleted:
            return prereq.failed
        result = pflag.constant
        if result is None:
            result = done.get(key)
            if result is None:
                if chain is None:
                    if pflag.prerequisites:
                        # (Matcher._needs_state sends its flag to the careful path)
                        raise AssertionError(f"a prerequisite chain at {key!r}")
                    code = pflag.code
                    if walk.guarded is not None:  # (a guard's pin, its arm)
                        code = _guarded_code(walk, key, pflag)
                    run = code.run
                    result = run(code.operands, ctx, st)
                else:
                    if len(chain) > MAX_CHAIN_DEPTH:
                        raise MalformedAbort(
                            f"prerequisite chain deeper than {MAX_CHAIN_DEPTH} "
                            f"levels at {key!r}"
                        )
                    chain.append(key)
                    code = pflag.code
                    if walk.guarded is not None:  # (a guard's pin, its arm)
                        code = _guarded_code(walk, key, pflag)
                    run = code.run
                    result = run(code.operands, ctx, st)
                    chain.pop()
        if ledger is not None:
            ledger.record(pflag, ctx, result, None, prereq.of, walk.detail)
        if (
            not pflag.on
            or pflag.malformed is not None
            or result.variation_index != prereq.variation
        ):
            return prereq.failed
    return None


@final
class Matcher:
    """The evaluation state of the fast path: one per snapshot.

    Evaluations never write to it but for caches: :attr:`heads`, what the
    fast paths run of each evaluated flag, its constant result or its code
    (one dict store per flag and snapshot), and the counting matchers made
    of it (:attr:`counters`: one per ledger and flag evaluated that is not
    plain).

    It answers what the common flags need with nothing allocated per
    evaluation: ``segmentMatch`` for bounded segments whose rules reference
    no segment, and prerequisites that have no prerequisites of their own
    (no cycle can pass through them; the generated code runs a plain
    prerequisite's head, looked up in :attr:`heads`; the others and the constant ones go to
    :meth:`prerequisites_failed`). A flag that needs more (a prerequisite
    chain, a big or nested segment: :meth:`_needs_state`, known from the
    snapshot's data) has a head that runs it on the careful path, with a
    :class:`_State` of its own (:func:`_careful_run`): the shared matcher
    never meets what it cannot do.
    Flags and segments are read by item access (``flags[key]``), so the
    snapshot's mappings may compile them on first access; a flag is looked
    up in :attr:`hot` first.
    """

    __slots__ = (
        "__weakref__",
        "big_segments",
        "counters",
        "done",
        "flags",
        "guarded",
        "heads",
        "hot",
        "hot_segments",
        "inline_prerequisites",
        "segments",
    )

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag],
        segments: Mapping[str, CompiledSegment],
        big_segments: MembershipSource | None = None,
        hot: dict[str, CompiledFlag] | None = None,
        guarded: Mapping[str, Guarded] | None = None,
    ) -> None:
        self.flags: Mapping[str, CompiledFlag] = flags
        #: The client's guards by flag key (issue 98), or None: none. Read
        #: when a flag's head is made (:meth:`_keep`), never per evaluation.
        self.guarded: Mapping[str, Guarded] | None = guarded or None
        #: Flags by key in a plain dict, the one the fast paths index first
        #: (CPython specialises item access for an exact dict only): ``hot``
        #: if given (a store's table: the flags it has made so far), the
        #: mapping itself if it is a dict, else empty. A key missing here
        #: may still be in :attr:`flags`.
        self.hot: dict[str, CompiledFlag] = (
            hot if hot is not None else flags if type(flags) is dict else {}
        )
        #: What the fast paths and the inline prerequisite checks run of
        #: each flag evaluated so far, by key (:meth:`find_head` adds to it):
        #: its result if it is constant, else its code (:meth:`_runnable`).
        self.heads: dict[str, Head] = {}
        self.segments: Mapping[str, CompiledSegment] = segments
        #: Segments by key in a plain dict, read first (as :attr:`hot` for
        #: flags): a table's segments made so far, the mapping itself if it
        #: is a dict, else empty.
        self.hot_segments: dict[str, CompiledSegment] = _hot(segments)
        # Where unbounded segments' memberships come from (None: nowhere).
        self.big_segments: MembershipSource | None = big_segments
        #: True: the generated code checks prerequisites inline, as
        #: prerequisites_failed() below does (False: it calls the method)
        self.inline_prerequisites: bool = True
        #: Results of flags already evaluated for this context, which
        #: :meth:`prerequisites_failed` reads first: a batch's (see
        #: :meth:`batch`); none for the snapshot's own.
        self.done: Mapping[str, Result] = _NO_RESULTS
        #: The counting matchers made of this one, by ledger: by flag key,
        #: variation's and variation_detail's (each flag's own: its
        #: prerequisites are counted ``prereq_of`` it), then the counting
        #: heads they share (:attr:`Recording.heads`). :meth:`counting_state` finds
        #: a flag's, and makes it on its first counted evaluation.
        self.counters: dict[Ledger, Counters] = {}

    def counting_state(self, ledger: Ledger, key: str, detail: bool) -> Recording:
        """What flag ``key`` (not plain) reads its data through while ``ledger`` counts.

        Its counting matcher (:meth:`counting`, made on its first counted
        evaluation), which counts each prerequisite it evaluates, before
        the flag's own evaluation is counted. ``detail``: for a
        ``*_detail`` method (its events carry the reason).
        """
        counters = self.counters.get(ledger)
        if counters is not None:
            state = (counters[1] if detail else counters[0]).get(key)
            if state is not None:
                return state
        return self.counting(ledger, key, detail)

    def counting(self, ledger: Ledger, of: str, detail: bool) -> Recording:
        """A counting matcher for flag ``of`` (not plain): each prerequisite counted in ``ledger``.

        Each plain prerequisite is checked inline, as on the plain path,
        through a counting head that counts it (a counting
        :class:`Recording`), as required by ``of``; the others by the
        prerequisite walk, which counts each one it evaluates. Made once
        per snapshot, ledger and flag (kept in :attr:`counters`, where
        :meth:`counting_state` finds it next time).
        """
        counters = self.counters.get(ledger)
        if counters is None:
            counters = self.counters[ledger] = ({}, {}, {})
        state = Recording(self, ledger, detail, of, counters[2])
        (counters[1] if detail else counters[0])[of] = state
        return state

    def batch(self, done: Mapping[str, Result]) -> Matcher:
        """A matcher for one all-flags evaluation, which reads results from ``done``.

        ``all_flags_state`` evaluates every flag for one context, and puts
        in ``done`` each result that a flag's code returned (so an on
        flag's, reached with no chain and no abort). A plain prerequisite
        is checked inline, as on the client's paths: its head runs again
        (evaluation is pure). The others go to :meth:`prerequisites_failed`,
        which reads ``done`` instead of evaluating them again. It lives for
        one call and shares this matcher's data and heads.
        """
        batch = Matcher(
            self.flags, self.segments, self.big_segments, self.hot, self.guarded
        )
        batch.heads = self.heads  # (the same snapshot: the same heads)
        batch.done = done
        return batch

    def _keep(self, key: str, flag: CompiledFlag) -> Head:
        """Flag ``key``'s head, made of ``flag`` and kept in :attr:`heads`.

        Its constant result (off, or nothing but a fixed fallthrough), else
        what runs it (:meth:`_runnable`); a guarded flag's wrapped by its
        guard (:func:`~._guarded.guarded_head`).
        """
        head: Head = self._runnable(flag) if flag.constant is None else flag.constant
        guarded = self.guarded
        if guarded is not None:
            guard = guarded.get(key)
            if guard is not None:
                head = guarded_head(guard, flag, head)
        self.heads[key] = head
        return head

    def find_head(self, key: str) -> Head | None:
        """Flag ``key``'s head (made on first use), or None if there is no such flag.

        A deleted flag has none: it is not there (the door's
        :func:`~._door.other` answers it). A bug in making the head
        (compiling the flag, choosing its path) gives a head that raises it
        when run (not kept in :attr:`heads`): so it is that evaluation's
        EXCEPTION, logged where heads are run (:func:`run_head`), as a bug
        in running it is. The flag's presence is asked first, so that a
        ``KeyError`` from such a bug is never taken for a missing flag.
        """
        if key not in self.hot and key not in self.flags:
            return None
        try:
            flag = self.flag(key)
            if flag.deleted:
                return None
            return self._keep(key, flag)
        except Exception as exc:  # noqa: BLE001 (raised again where it runs)
            return Code(_raise, True, (exc,))

    def _runnable(self, flag: CompiledFlag) -> Code:
        """What the fast paths run for non-constant ``flag`` in this snapshot.

        Its code; for a flag that needs a per-evaluation state
        (:meth:`_needs_state`), a code of :func:`_careful_run`, which
        evaluates it on the careful path. Not plain: as a prerequisite, the
        checks hand it to :meth:`prerequisites_failed`.
        """
        if self._needs_state(flag):
            return Code(_careful_run, False, (flag,))
        return flag.code

    def _needs_state(self, flag: CompiledFlag) -> bool:
        """Whether evaluating non-constant ``flag`` needs a per-evaluation state.

        It does when its code can reach a prerequisite chain (a prerequisite
        whose code runs and has prerequisites of its own: cycles are the
        state's to find) or a big or nested segment (membership from the
        big-segment store, its status in the result; cycles), in its own
        rules or a prerequisite's. This snapshot's flags and segments never
        change: decided once per flag, when its head is made.
        """
        if self._stateful_segments(flag.segment_keys):
            return True
        for key in flag.prerequisite_keys:
            try:
                prerequisite = self.flag(key)
            except KeyError:
                continue  # missing: the prerequisite fails
            # A constant one (off, malformed, deleted, fixed) runs no code.
            if prerequisite.constant is None and (
                prerequisite.prerequisites
                or self._stateful_segments(prerequisite.segment_keys)
            ):
                return True
        return False

    def _stateful_segments(self, keys: frozenset[str]) -> bool:
        """Whether any of the segments ``keys`` is big or references segments."""
        segments = self.segments
        for key in keys:
            try:
                seg = segments[key]
            except KeyError:
                continue  # missing: matches nothing
            if seg.unbounded or seg.segment_keys:
                return True
        return False

    def flag(self, key: str) -> CompiledFlag:
        """The flag ``key`` (made on first lookup); ``KeyError`` if there is none."""
        try:
            return self.hot[key]
        except KeyError:
            return self.flags[key]  # (made on first lookup)

    def made(self, key: str) -> CompiledFlag | None:
        """:meth:`flag`, or None if there is none or making it raised.

        For analytics events, which count an evaluation against its flag:
        a bug in making the flag is reported where its head runs (the head
        :meth:`find_head` gives raises it), and such an evaluation has no
        flag to be counted against.
        """
        try:
            return self.flag(key)
        except KeyError:
            return None
        except Exception:  # noqa: BLE001 - reported where its head runs
            return None

    def runnable_code(self, key: str, flag: CompiledFlag) -> Code:
        """What runs non-constant flag ``key`` here, as its head holds it.

        For all-flags state's plan (one code per flag shared with the heads).
        """
        head = self.heads.get(key)
        if type(head) is not Code:
            made = self._keep(key, flag)
            head = made if type(made) is Code else self._runnable(flag)
        return head

    def prerequisite_head(self, key: str) -> Head:
        """Flag ``key``'s head for the generated prerequisite checks (kept).

        A missing flag's is :data:`_NO_FLAG`, which is not plain: the check
        then goes to :meth:`prerequisites_failed`, as for a constant flag.
        """
        try:
            flag = self.flag(key)
        except KeyError:
            return _NO_FLAG
        # (a deleted one fails, as a missing one does: not kept)
        return _NO_FLAG if flag.deleted else self._keep(key, flag)

    #: What the prerequisite walk reads: no chain (a flag that needs one
    #: takes the careful path), nothing counted.
    chain: Final = None
    ledger: Final = None
    detail: Final = False

    prerequisites_failed = _prerequisites_failed

    match_segments = _match_segments

    def _contains(self, seg: CompiledSegment, ctx: Context) -> bool:
        if seg.malformed is not None:
            raise MalformedAbort(f"segment {seg.key!r} is malformed")
        if seg.unbounded or seg.segment_keys:
            # (_needs_state() sends its flag to the careful path)
            raise AssertionError(f"segment {seg.key!r} is big or nested")
        member = _membership(seg, ctx._parts)
        if member is not None:
            return member
        return bool(seg.rules) and _rules_match(seg, ctx, self)


@final
class Recording:
    """A counting matcher: one flag's prerequisite evaluations counted (:meth:`Matcher.counting`).

    What a flag that is not plain runs with when analytics events are on:
    what a flag's code calls on its state, as :class:`Matcher` answers it,
    over the same data, but each prerequisite evaluation is counted in
    :attr:`ledger` (``prereq_of`` :attr:`of`, the flag that required it)
    before the flag's own evaluation is counted. Made once per snapshot,
    ledger and flag: nothing is allocated per evaluation. The flag's code
    checks each prerequisite inline, through :attr:`heads`, as on the
    plain path: a plain prerequisite's head here is a counting head
    (:func:`counting_run`), which runs the prerequisite's own head and
    has the ledger count it. A constant, missing or not-plain prerequisite
    goes to the prerequisite walk, which counts each one it evaluates. A
    flag on the careful path has its state count them (:func:`_careful_run`).
    """

    __slots__ = (
        "_matcher",
        "big_segments",
        "detail",
        "flags",
        "guarded",
        "heads",
        "hot",
        "hot_segments",
        "ledger",
        "of",
        "segments",
    )

    #: The flag's code checks plain prerequisites inline, through :attr:`heads`.
    inline_prerequisites: Final = True

    def __init__(
        self,
        matcher: Matcher,
        ledger: Ledger,
        detail: bool,
        of: str,
        heads: dict[str, Head],
    ) -> None:
        # (by a weak reference: the matcher holds this one, and a cycle would
        # keep a replaced snapshot's data until a full collection, or for
        # good once gc.freeze() has frozen it)
        self._matcher = weakref.ref(matcher)
        self.flags: Mapping[str, CompiledFlag] = matcher.flags
        self.hot: dict[str, CompiledFlag] = matcher.hot
        self.segments: Mapping[str, CompiledSegment] = matcher.segments
        self.hot_segments: dict[str, CompiledSegment] = matcher.hot_segments
        self.big_segments: MembershipSource | None = matcher.big_segments
        #: The client's guards by flag key (the prerequisite walk's, as the matcher's).
        self.guarded: Mapping[str, Guarded] | None = matcher.guarded
        #: Where each prerequisite evaluation is counted, and whether for
        #: a ``*_detail`` method (its events carry the reason).
        self.ledger: Ledger = ledger
        self.detail: bool = detail
        #: The flag whose prerequisites it counts (their ``prereq_of``).
        self.of: str = of
        #: Each prerequisite's head here, by key: a plain one's counting
        #: head, else the matcher's (:meth:`prerequisite_head`); shared by
        #: the flags' counting matchers of one matcher and ledger.
        self.heads: dict[str, Head] = heads

    def prerequisite_head(self, key: str) -> Head:
        """Flag ``key``'s head for the inline prerequisite checks (kept).

        The matcher's, but for a plain one: a counting head that runs it
        and counts it (:func:`counting_run`). A missing or deleted flag's
        is not kept, as the matcher does not keep it.
        """
        matcher = self._matcher()
        assert matcher is not None  # (evaluating its data: the caller holds it)
        head = matcher.prerequisite_head(key)
        if head is _NO_FLAG:
            return head
        if type(head) is Code and head.plain:
            head = Code(counting_run, True, (head, key))
        self.heads[key] = head
        return head

    #: What the prerequisite walk reads: no results yet, no chain (a
    #: prerequisite chain never reaches here: ``Matcher._needs_state``
    #: sends its flag to the careful path).
    done: Final[Mapping[str, Result]] = _NO_RESULTS
    chain: Final = None
    prerequisites_failed = _prerequisites_failed
    match_segments = _match_segments
    _contains = Matcher._contains

    def made(self, key: str) -> CompiledFlag | None:
        """Its matcher's :meth:`Matcher.made` (what a ledger reads: ``Counting``)."""
        matcher = self._matcher()
        assert matcher is not None  # (evaluating its data: the caller holds it)
        return matcher.made(key)


def counting_run(operands: tuple[Code, str], context: Context, st: Recording) -> Result:
    """A counting head's run: a plain prerequisite's own head run, then counted.

    A counting head is plain, its operands the prerequisite's own head and
    its key: the result is counted in the counting matcher's ledger
    (``Ledger.evaluated``, as the flag itself is), ``prereq_of`` the flag
    the matcher was made for (:attr:`Recording.of`).
    """
    own, key = operands
    run = own.run
    result = run(own.operands, context, st)
    st.ledger.evaluated(st, key, context, result, None, st.detail, st.of)
    return result


@final
class _State:
    """Per-evaluation state of the careful path.

    The prerequisite chain (cycles), the segment stack (cycles), the
    big-segment status, the prerequisites the top-level flag reached (for
    all-flags state) and, for analytics events, the ledger that counts
    every prerequisite evaluation. What a flag's code calls on its state (``EvalState``), as
    :class:`Matcher` answers it on the fast path, with the checks that path
    does not need: a state of its own, not a kind of matcher.
    """

    __slots__ = (
        "big",
        "big_segments",
        "chain",
        "detail",
        "flags",
        "guarded",
        "hot",
        "hot_segments",
        "ledger",
        "prerequisites",
        "segment_stack",
        "segments",
    )

    #: the generated code calls prerequisites_failed() for every prerequisite
    inline_prerequisites: Final = False
    #: no results of this evaluation's to read (all-flags state's are the
    #: batch matcher's)
    done: Final[Mapping[str, Result]] = _NO_RESULTS

    def __init__(
        self,
        matcher: Matcher | Recording,
        key: str,
        ledger: Ledger | None = None,
        detail: bool = False,
    ) -> None:
        self.flags = matcher.flags
        self.hot = matcher.hot
        self.segments = matcher.segments
        self.hot_segments = matcher.hot_segments
        self.big_segments = matcher.big_segments
        #: The client's guards by flag key: a guarded prerequisite's pin is
        #: seen on this path too (:func:`_guarded_code`).
        self.guarded = matcher.guarded
        self.chain: list[str] = [key]
        self.segment_stack: list[str] = []
        self.big: str | None = None
        #: the top-level flag's prerequisites reached, in order
        self.prerequisites: list[str] = []
        #: where each prerequisite evaluation is counted (analytics), as
        #: it is reached, depth first: those before an abort too
        self.ledger = ledger
        self.detail = detail

    prerequisites_failed = _prerequisites_failed
    match_segments = _match_segments

    def _contains(self, seg: CompiledSegment, ctx: Context) -> bool:
        if seg.malformed is not None:
            raise MalformedAbort(f"segment {seg.key!r} is malformed")
        if seg.unbounded:
            # Membership from the big-segment store (shared/stores.md §6.2).
            member, self.big = unbounded_member(self.big_segments, seg, ctx, self.big)
        else:
            member = _membership(seg, ctx._parts)
        if member is not None:
            return member
        if not seg.rules:
            return False
        if seg.key in self.segment_stack:
            raise MalformedAbort(f"segment rule cycle through {seg.key!r}")
        if len(self.segment_stack) > MAX_CHAIN_DEPTH:
            raise MalformedAbort(
                f"segment rule chain deeper than {MAX_CHAIN_DEPTH} levels at "
                f"{seg.key!r}"
            )
        self.segment_stack.append(seg.key)
        try:
            return _rules_match(seg, ctx, self)
        finally:
            self.segment_stack.pop()


def _with_big(result: Result, big: str) -> Result:
    """The result with the big-segment status in its reason (for this evaluation)."""
    reason = Reason({**result.reason, "bigSegmentsStatus": big})
    return Result(result.value, result.variation_index, reason, result.experiment, None)


def _raise(operands: tuple[Exception], ctx: Context | None, st: object) -> Result:
    """The run of a flag whose head could not be made (:meth:`Matcher.find_head`).

    Its head is plain (run as it is, on every path), its operand the
    exception, raised again where the head is run.
    """
    raise operands[0]


def _careful(
    matcher: Matcher | Recording,
    flag: CompiledFlag,
    ctx: Context,
    ledger: Ledger | None = None,
    detail: bool = False,
) -> Result:
    """Evaluate non-constant ``flag`` with a per-evaluation state.

    The careful path: prerequisite chains (cycles and depth are checked),
    big segments (their status goes in the result's reason), nested
    segments; each prerequisite evaluation counted in ``ledger``, if any.
    What the flag's code raises is left to where its head runs
    (:func:`run_head`).
    """
    st = _State(matcher, flag.key, ledger, detail)
    code = flag.code
    run = code.run
    result = run(code.operands, ctx, st)
    big = st.big
    return result if big is None else _with_big(result, big)


def _careful_run(
    operands: tuple[CompiledFlag], ctx: Context, st: Matcher | Recording
) -> Result:
    """The run of the head of a flag that needs the careful path (``Matcher._runnable``).

    The head is not plain, its operand the flag; ``st``: the
    snapshot's matcher (or all-flags state's), whose data it evaluates. A
    counting matcher's ledger (:meth:`Matcher.counting`) counts the
    prerequisite evaluations the state reaches, depth first, even when the
    flag's own evaluation then fails.
    """
    return _careful(st, operands[0], ctx, st.ledger, st.detail)


def run_heads(
    heads: tuple[Code, ...],
    keys: tuple[str, ...],
    kept: tuple[bool, ...],
    ctx: Context,
    st: Matcher,
    done: dict[str, Result],
    odd: list[int],
) -> list[Result]:
    """The results of flags ``keys`` from their ``heads`` for ``ctx``, in order.

    All-flags state's batch: one loop, with no call per flag but its
    code's. What a flag's code raises is mapped to its result by
    :func:`finish`, under its key, as :func:`run_head` maps it. A result
    whose ``kept`` is true is put in ``done`` (by key) unless its code
    raised (a prerequisite's result is not taken from an error); the
    positions of the results without a cache (an error, a big segment's
    status) are appended to ``odd``.
    """
    results: list[Result] = []
    keep = results.append
    for key, head, required in zip(keys, heads, kept, strict=True):
        try:
            run = head.run
            result = run(head.operands, ctx, st)
        except Exception as exc:  # noqa: BLE001 - mapped and logged: the flag's answer
            result = finish(key, exc, st.flags)
        else:
            if required:  # another flag's prerequisite: kept for it
                done[key] = result
        if result.cache is None:  # an error or a big segment's status
            odd.append(len(results))
        keep(result)
    return results


def finish(
    key: str, exc: Exception, flags: Mapping[str, CompiledFlag] | None = None
) -> Result:
    """The answer of an evaluation of flag ``key`` whose code raised ``exc``.

    For :func:`run_head` (and the all-flags batch, :func:`run_heads`, which
    runs its flags' code in one loop). An abort (a malformed part reached,
    a cycle, a chain too deep) is MALFORMED_FLAG. Anything else is a bug in
    the code or in its operands: the flag's system's word for it (of
    ``flags``, the data evaluated): EXCEPTION, or a flagd flag's GENERAL.
    Each is logged, once per flag and kind (:func:`_failed`).
    """
    if isinstance(exc, MalformedAbort):
        _failed(key, "MALFORMED_FLAG", exc)
        return _ABORTED
    failed = _EXCEPTION if flags is None else _failure_of(flags, key)
    _failed(key, str(failed.reason.get("errorKind")), exc)
    return failed


def _failure_of(flags: Mapping[str, CompiledFlag], key: str) -> Result:
    """What flag ``key``'s system answers for a failed evaluation (asked on a failure's path only)."""
    try:
        flag = flags.get(key)  # (made on access: it may be what failed)
    except Exception:  # noqa: BLE001 - a flag that cannot be made is nobody's
        return _EXCEPTION
    return _EXCEPTION if flag is None else flag.system.failed


def _failed(key: str, kind: str, exc: Exception) -> None:
    """Log an evaluation's failure once per flag and kind, then count it.

    The first is logged in full (an unexpected error with its traceback,
    once); then a WARNING line at the 10th, 100th, 1,000th... failure says
    how many there were, and each one in between is a DEBUG line without a
    traceback. A flag that fails on every evaluation so logs a few lines, not
    one traceback per evaluation (a deep recursion's can be ~1,000 frames).
    """
    count = _FAILURES.add((key, kind))
    unexpected = kind not in ("MALFORMED_FLAG", "PARSE_ERROR")  # (a bug's)
    if count == 1:
        if unexpected:
            logger.error(
                "Unexpected error evaluating flag %r: the default is returned "
                "(%s). Logged once with its traceback; later failures "
                "of this flag are counted",
                key,
                kind,
                exc_info=exc,
            )
        else:
            logger.warning(
                "Flag %r could not be evaluated: %s; the default is returned "
                "(%s). Logged once; later failures of this flag are counted",
                key,
                exc,
                kind,
            )
    elif count == 0:  # too many failing flags remembered: not counted
        if _FAILURES.newly_full():
            logger.warning(
                "Failures of %d flags have been logged: failures of further "
                "flags are logged at DEBUG level only",
                _MAX_FAILING,
            )
        logger.debug("Flag %r could not be evaluated (%s): %s", key, kind, exc)
    elif _is_power_of_ten(count):
        logger.warning(
            "Flag %r has failed %d times (%s), last: %s",
            key,
            count,
            kind,
            f"{type(exc).__name__}: {exc}" if unexpected else exc,
        )
    else:
        logger.debug("Flag %r could not be evaluated again (%s): %s", key, kind, exc)


def _is_power_of_ten(count: int) -> bool:
    while count % 10 == 0:
        count //= 10
    return count == 1


def run_head(
    head: Head,
    key: str,
    context: Context,
    matcher: Matcher | Recording | _State | None,
) -> Result:
    """Flag ``key``'s result from its head (``Matcher.heads``) for ``context``: the run step.

    A constant result as it is; else the head's code run, with ``matcher``
    the data it reads. The one place of the pipeline where what a flag's
    code raised is mapped to a result (:func:`finish`): an abort to
    MALFORMED_FLAG, anything else to its system's failure (EXCEPTION; a flagd flag's: GENERAL),
    logged once per flag and kind.
    """
    if type(head) is Result:
        return head
    run = head.run
    try:
        return run(head.operands, context, matcher)
    except Exception as exc:  # noqa: BLE001 - mapped and logged: the evaluation's answer
        return finish(key, exc, None if matcher is None else matcher.flags)


def prerequisites_reached(
    matcher: Matcher, flag: CompiledFlag, ctx: Context, result: Result
) -> list[str] | tuple[str, ...]:
    """The keys of ``flag``'s prerequisites that its evaluation reached, in order.

    For all-flags state (evaluation.md §11). Known from the result itself when
    it is one of the flag's precompiled results (a prerequisite's own
    failure, or anything past the prerequisites); else the careful path
    evaluates the flag again to find out (pure, and rare: an abort, an
    error, a big segment).
    """
    if result.cache is not None:
        return own_prerequisites(flag, result)
    keys = flag.prerequisite_keys
    if not keys or flag.constant is not None:  # off or malformed: none reached
        return ()
    if result is _EXCEPTION:  # a bug (reported): it would raise again
        return ()
    st = _State(matcher, flag.key)
    # A malformed part or a bug ends the re-run (reported where the flag
    # was evaluated: not again); the prerequisites reached before it count.
    code = flag.code
    with contextlib.suppress(Exception):
        run = code.run
        run(code.operands, ctx, st)
    return st.prerequisites


def own_prerequisites(flag: CompiledFlag, result: Result) -> tuple[str, ...]:
    """The prerequisites reached, for one of ``flag``'s precompiled results.

    A prerequisite's own failure reached those up to it; any other result
    of an on flag reached them all; an off or malformed flag reached none,
    nor did a guard's pin (served before the flag's code runs).
    """
    keys = flag.prerequisite_keys
    if not keys or flag.constant is not None:
        return ()
    if result.reason.get("kind") == "GUARDED":  # a guard's pin: none evaluated
        return ()
    for i, prereq in enumerate(flag.prerequisites):
        if result is prereq.failed:
            return keys[: i + 1]
    return keys


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
