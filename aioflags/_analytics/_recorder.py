"""The recorder: the evaluation-path half of analytics events (events.md §3-§9).

Everything here is synchronous and does no I/O. An evaluation is counted in
the summary in place (one counter per flag version and variation, in lists
allocated once per flag: the loop's serve again from one flush window to the
next, :meth:`Recorder.recycle`) and, only when LaunchDarkly asks
for more (a tracked flag, an experiment, a debug window, a context not seen
recently), a small record is appended to a bounded buffer. Records are turned
into JSON at flush time, off the evaluation path (``_format``).

Any number of threads may record at once (``aioflags.blocking.Client``,
``client.snapshot()`` on worker threads): what they record goes through
:attr:`Recorder.lock`, so that no count is lost between an increment and a
flush, or between two threads creating the same counter. An increment alone
is not atomic: ``+=`` reads, adds and writes, and free-threaded builds run
threads in parallel.

The event loop's own evaluations (``await client.variation``) count into a
ledger of their own, :attr:`Recorder.loop`, without the lock: only the loop's
thread writes it, and the flush that takes it runs on that thread too. Its
common case (a counter that exists, an untracked flag, no experiment, the
context it counted last) is one increment by flag key, written in the
count step itself (:meth:`Ledger.evaluated`, a plain prerequisite's too, in
its counting head; a prerequisite the walk evaluates, by flag object,
:meth:`Ledger.record`); a flag's first evaluation in a window, when its
counter of the window before is back with the same default, a few steps more
(:meth:`Ledger.evaluated`, :meth:`Ledger.arm`); anything else (a new counter,
a new context, a full event) takes the lock, as the other threads' records
do.

Nothing is logged here, and no code of the application's runs under the lock:
events dropped because the buffer is full are only counted, and the event
processor says so at flush time, on the loop. A warning logged under the lock
would wait for the log handler's own lock, which a thread inside that handler
holds while it evaluates a flag (and so waits for ours): a deadlock, and a
slow handler would stall every evaluating thread.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from aioflags._core._clock import wall_ms

from ._metrics import ERROR_TYPES, SPLIT

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._migration import MigrationOpEvent
    from aioflags._evaluation._model import CompiledFlag, Result
    from aioflags._evaluation._recording import Counting
    from aioflags._evaluation._results import Reason

    from ._usage import Pending, Tally

__all__ = [
    "CUSTOM",
    "DEBUG",
    "FEATURE",
    "IDENTIFY",
    "INDEX",
    "MIGRATION_OP",
    "Batch",
    "Counter",
    "Ledger",
    "Recorder",
]

# Record kinds: the first item of every buffered record.
FEATURE: Final = (
    0  # (FEATURE, ms, context, flag, result, value, default, detail, prereq_of)
)
DEBUG: Final = 1  # same shape as FEATURE
CUSTOM: Final = 2  # (CUSTOM, ms, context, key, data, metric_value)
IDENTIFY: Final = 3  # (IDENTIFY, ms, context)
INDEX: Final = 4  # (INDEX, ms, context)
MIGRATION_OP: Final = 5  # (MIGRATION_OP, ms, MigrationOpEvent)

#: One buffered event, as recorded (formatted at flush time).
Record: TypeAlias = "tuple[Any, ...]"

_NO_KINDS: Final[frozenset[str]] = frozenset()
#: Each combination of context kinds counted, as one object: a window's
#: counters share them (no set per counter), and the flush writes each
#: one's text once. Bounded: kinds are the application's to name.
_KINDS: Final[dict[frozenset[str], frozenset[str]]] = {}
_KINDS_KEPT: Final = 1_000


def _kinds(kinds: frozenset[str]) -> frozenset[str]:
    """The shared object equal to ``kinds`` (``kinds`` itself, past the bound)."""
    shared = _KINDS.get(kinds)
    if shared is not None:
        return shared
    if len(_KINDS) < _KINDS_KEPT:
        # setdefault: a thread of another recorder may have added it meanwhile
        return _KINDS.setdefault(kinds, kinds)
    return kinds


class Counter:
    """One flag version's summary in a flush window, counted in place.

    ``counts[i]`` counts the evaluations that served variation ``i`` (the
    list is allocated once, as long as the flag's variations); ``none``
    counts those that served none (the default), and ``none_value`` is the
    value the first of them returned: its caller's default (a counter's
    value is its first evaluation's, events.md §3, which a ``WRONG_TYPE``
    call's feature event carries too); ``default`` is the caller's default
    of the flag's first evaluation. ``flag`` is None for an unknown flag.
    ``order`` orders the counters of one window as they were made (a flag
    may have several: one per ledger, and per flag object).
    """

    __slots__ = (
        "counts",
        "default",
        "excluded",
        "flag",
        "heads",
        "kind",
        "kinds",
        "none",
        "none_value",
        "notes",
        "order",
        "tracked",
    )

    def __init__(
        self, flag: CompiledFlag | None, default: JSONValue, order: int = 0
    ) -> None:
        self.order = order
        if flag is not None and flag.deleted:
            flag = None  # a deleted flag is an unknown one
        self.flag = flag
        self.default = default
        self.counts = [0] * len(flag.variations) if flag is not None else []
        self.none = 0
        self.none_value: JSONValue = None
        #: the context kinds counted (one frozenset per combination, shared
        #: by every counter that counted it: :func:`_kinds`)
        self.kinds: frozenset[str] = _NO_KINDS
        #: the kind of the single-kind contexts last counted ("" otherwise)
        self.kind = ""
        self.tracked = flag is not None and (
            flag.track_events or flag.debug_events_until_date is not None
        )
        self.excluded = flag is not None and flag.exclude_from_summaries
        #: The summary's text of each variation's row up to its count,
        #: written by the first flush that writes the row (``_summary``):
        #: a counter serves again for its flag object
        #: (:meth:`Recorder.recycle`), so later flushes write a row as its
        #: count alone. None until a flush writes one.
        self.heads: list[str | None] | None = None
        #: What the counts alone do not tell, for evaluation metrics
        #: (``_metrics``): per ``(variation index or None, label)``, the
        #: evaluations of an experiment (``"split"``) and those that served
        #: no variation (label: the error kind, or the reason kind). None
        #: until one is noted.
        self.notes: dict[tuple[int | None, str], int] | None = None

    def reuse(self, order: int, kinds: frozenset[str], kind: str) -> None:
        """Count a new window from nothing, in place (the window before's, written and folded).

        Zeros in place: the list is kept from window to window (a new one
        would be a young object in place of an old one: full collections
        sooner). Its ledger does it as it takes the counter back, at the
        window's first evaluation of the flag, not as the flush hands the
        counters back: that would be a step per flag held on the loop at
        every flush (~2,000 instructions a counter).
        """
        counts = self.counts
        counts[:] = (0,) * len(counts)
        self.none = 0
        self.none_value = None
        self.notes = None
        self.kinds = kinds
        self.kind = kind
        self.order = order

    def note(self, index: int | None, reason: Reason) -> None:
        """Note an evaluation the counts do not tell enough of (:attr:`notes`).

        On the slow path only (under the recorder's lock, or the unknown
        flags' counting): no variation served, or an experiment's.
        """
        if index is None:
            kind = reason.get("kind")
            if kind == "ERROR":
                error = reason.get("errorKind")
                label = (
                    error
                    if isinstance(error, str) and error in ERROR_TYPES
                    else "EXCEPTION"
                )
            else:
                label = kind if isinstance(kind, str) else ""
        elif reason.get("inExperiment"):
            label = SPLIT
        else:
            return
        notes = self.notes
        if notes is None:
            notes = self.notes = {}
        at = (index, label)
        notes[at] = notes.get(at, 0) + 1

    def add_kinds(self, context: Context) -> None:
        """Count the kinds of ``context`` (the slow path: a kind not seen last)."""
        self.kinds = _kinds(self.kinds.union(context._parts))
        self.kind = "" if context._kind == "multi" else context._kind


class Ledger:
    """One flush window's summary counters, and the context counted last, of one writer.

    The recorder has two: the other threads' (written under its lock) and
    the event loop's (:attr:`Recorder.loop`: written only on the loop's
    thread, whose common case is counted without the lock: :meth:`evaluated`).
    """

    __slots__ = (
        "counters",
        "fast",
        "fast_kind",
        "fast_kinds",
        "flags_fast",
        "last",
        "recorder",
        "spare",
    )

    def __init__(self, recorder: Recorder) -> None:
        #: The window's counters, by flag object (a full transfer makes new
        #: objects for unchanged versions: ``_format._feature`` merges their
        #: rows by version and variation).
        self.counters: dict[CompiledFlag, Counter] = {}
        #: What is counted in place (:meth:`evaluated`): by flag key, the
        #: ``counts`` of the counters of the current data's flags that are
        #: not tracked and that have counted a context of kind
        #: :attr:`fast_kind` (a single kind) in this window. Emptied when a
        #: context of another kind is counted, when the data is replaced
        #: (:meth:`forget_fast`: a flag's object may be new, counted
        #: against a new counter), and with the window. Only the loop's
        #: ledger has entries.
        self.fast: dict[str, list[int]] = {}
        #: The same ``counts``, by flag object: what :meth:`record` (a
        #: prerequisite's evaluation, made by any matcher) counts in place.
        self.flags_fast: dict[CompiledFlag, list[int]] = {}
        self.fast_kind = ""
        #: The kinds a counter counted in place has counted (``{fast_kind}``).
        self.fast_kinds = _NO_KINDS
        #: The context counted last (an index event was considered for it).
        self.last: Context | None = None

        self.recorder = recorder
        #: Counters of the window before, by flag object, that a flush has
        #: written and folded (:meth:`Recorder.recycle`): a flag counted
        #: again takes its counter back, zeroed, rather than a new one. Only
        #: the loop's ledger has entries; what the window just taken did not
        #: count again is dropped at the take (a flag object replaced by a
        #: data change is not kept beyond a window). Each is still as the
        #: flush wrote it (zeroed as it is taken back): its ``default``, the
        #: window before's, is what :meth:`arm` takes it back for in place.
        self.spare: dict[CompiledFlag, Counter] = {}

    def record(
        self,
        flag: CompiledFlag,
        context: Context,
        result: Result,
        default: JSONValue,
        prereq_of: str | None = None,
        detail: bool = False,
    ) -> None:
        """Record an evaluation of present ``flag`` (a prerequisite's), on the loop.

        ``prereq_of``: the flag that required it, for a prerequisite;
        ``detail``: a ``*_detail`` method's (its events carry the reason). Only
        the event loop's thread calls this, on :attr:`Recorder.loop`. Its
        common case (an untracked flag already counted for a context of
        this kind, the context counted last, a variation served, no
        experiment) is one increment in :attr:`flags_fast`, without the
        lock: nothing else writes these counters, and the flush
        that takes them runs on that thread; so is a flag's first evaluation
        in a window that :meth:`arm` takes. The rest is the recorder's,
        under the lock.
        """
        place = result.place
        if context is self.last and place is not None:
            # Subscripts, not ``flags_fast.get(flag)``: a method call costs ~150
            # instructions more, and a flag not counted in place yet (a
            # KeyError) takes the slow path anyway.
            try:
                self.flags_fast[flag][place] += 1
            except KeyError:
                if self.arm(flag, place, default) is not None:
                    return
            else:
                return
        recorder = self.recorder
        with recorder.lock:
            recorder.count(self, flag, context, result, default, detail, prereq_of)

    def evaluated(
        self,
        matcher: Counting,
        key: str,
        context: Context,
        result: Result,
        default: JSONValue,
        detail: bool = False,
        prereq_of: str | None = None,
    ) -> None:
        """Count an evaluation of flag ``key`` of ``matcher``'s data, on the loop: the count step.

        ``detail``: a ``*_detail`` method's (its events carry the reason);
        ``prereq_of``: the flag that required it, for a prerequisite (a
        counting matcher's counting heads count theirs here too).

        Its common case first, in place, by key (:attr:`fast`: the flag
        object is not looked up): the context counted last, a variation
        served, no experiment (``result.place``), a flag of the current
        data counted in place already. Else the flag is looked up; one
        whose code could not be made is counted against nothing (its
        head's EXCEPTION, as the door's answer is). For the context
        counted last and a result counted in place: a flag object counted
        in place already (by object: the data was replaced since, the
        object kept) is counted so, and keyed again; a flag's first
        evaluation of the window goes to :meth:`arm`. The rest goes to the
        recorder, under the lock. From then on its evaluations count in
        place (while the contexts are of one kind), in :attr:`fast`, until
        the data is replaced (:meth:`forget_fast`).
        """
        place = result.place
        if context is self.last and place is not None:
            counts = self.fast.get(key)
            if counts is not None:
                counts[place] += 1
                return
        # (in ``hot`` if its head ran: a flag is made before its head)
        flag = matcher.hot.get(key)
        if flag is None:
            flag = matcher.made(key)
            if flag is None:
                return
        if context is self.last and place is not None:
            counts = self.flags_fast.get(flag)
            if counts is not None:  # (its object was counted before a swap)
                counts[place] += 1
                self.fast[key] = counts
                return
            counts = self.arm(flag, place, default)
            if counts is not None:
                self.fast[key] = counts
                return
        recorder = self.recorder
        with recorder.lock:
            recorder.count(self, flag, context, result, default, detail, prereq_of)
        counts = self.flags_fast.get(flag)
        if counts is not None:  # counted in place from now on, by key
            self.fast[key] = counts

    def forget_fast(self) -> None:
        """The data evaluated is replaced: count nothing in place by key until counted anew.

        The store calls this as it replaces its snapshot (``Store.on_swap``),
        on the loop's thread, before anything evaluates the new data, and
        the evaluator as it composes anew (its data may be another store's): a
        flag's object may be new with it, and counted against a new
        counter (:meth:`evaluated` finds it). What :attr:`flags_fast` holds,
        by flag object, still holds.
        """
        self.fast.clear()

    def arm(
        self, flag: CompiledFlag, index: int, default: JSONValue
    ) -> list[int] | None:
        """Count ``flag``'s first evaluation of the window in place, if it can be; its counts if so.

        For the common case of :meth:`record` and :meth:`evaluated` (the
        context counted last, variation ``index`` served, no experiment)
        where :attr:`flags_fast` has no entry for ``flag``: a flag counted
        in the window before, untracked, whose counter is back
        (:attr:`spare`) with the default now passed (``default is`` the
        window before's: the summary's default is the window's first
        evaluation's), while contexts are of one kind. Its counter is
        taken back, zeroed, as the slow path would (kinds:
        :attr:`fast_kinds`), and counts in place from now on: no lock (but
        for the window's first counter: its start), no new counter. Only
        the loop's thread calls this, on :attr:`Recorder.loop`.
        """
        counter = self.spare.get(flag)
        if (
            counter is None
            or counter.default is not default
            or counter.tracked
            or not self.fast_kind
            or flag in self.counters  # (made before its counter came back)
        ):
            return None
        del self.spare[flag]
        recorder = self.recorder
        counter.reuse(next(recorder._made), self.fast_kinds, self.fast_kind)
        counts = counter.counts
        counts[index] = 1
        if self.counters:
            self.counters[flag] = counter
        else:  # the window's first counter, maybe: its start (as _counter)
            with recorder.lock:
                if recorder._empty():
                    recorder._start = recorder._now()
                self.counters[flag] = counter
        self.flags_fast[flag] = counts
        return counts

    def unknown(
        self, key: str, context: Context | None, default: JSONValue, result: Result
    ) -> None:
        """Record an evaluation of a flag that is not there (the recorder's, locked)."""
        self.recorder.unknown(key, context, default, result)


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """What one flush takes from the recorder."""

    records: list[Record]
    counters: list[tuple[str, Counter]]
    start_ms: int
    end_ms: int
    #: Events dropped in this flush window because the buffer was full.
    dropped: int = 0
    #: The loop's ledger's counters taken (among :attr:`counters`), by flag
    #: object: handed back to :meth:`Recorder.recycle` once written and folded.
    own: dict[CompiledFlag, Counter] = field(default_factory=dict)


class Recorder:
    """Records evaluations, custom and identify events; never blocks, never raises.

    Owned by the event processor, which takes the buffer at every flush.
    Thread-safe: each method holds :attr:`lock` while it reads or changes the
    recorder's state.
    """

    __slots__ = (
        "_capacity",
        "_keys",
        "_keys_capacity",
        "_made",
        "_now",
        "_omit_anonymous",
        "_outbox",
        "_random",
        "_refused",
        "_start",
        "_unknown",
        "_window_dropped",
        "deduplicated",
        "dropped",
        "lock",
        "loop",
        "server_time",
        "shared",
        "tally",
    )

    def __init__(
        self,
        *,
        capacity: int,
        keys_capacity: int,
        omit_anonymous: bool,
        random: random.Random,
        now_ms: Callable[[], int] = wall_ms,
        tally: Tally | None = None,
    ) -> None:
        # The three settings (Config's events_capacity, context_keys_capacity
        # and omit_anonymous_contexts), not the Config: analytics sits below
        # the client layer that holds it.
        self._capacity = capacity
        self._keys_capacity = keys_capacity
        self._omit_anonymous = omit_anonymous
        self._random = random
        self._now = now_ms
        #: Held by every read and change of what follows (threads record at
        #: once), but for :attr:`loop`'s common case (:meth:`Ledger.evaluated`).
        #: Nothing under it logs or calls the application. Re-entrant all the
        #: same, at no cost (a plain lock costs as much, ~70 ns): a signal
        #: handler or a finalizer that evaluates a flag may run on a thread
        #: holding it.
        self.lock: threading.RLock = threading.RLock()
        self._outbox: list[Record] = []
        #: The summary of this flush window: what any thread counts (under
        #: :attr:`lock`) and what the event loop's evaluations count.
        self.shared = Ledger(self)
        self.loop = Ledger(self)
        self._unknown: dict[str, Counter] = {}
        #: Evaluations with no valid Context, by flag key: for the tally
        #: only (``usage()``, metrics), never summarised.
        self._refused: dict[str, Counter] = {}
        #: The ``order`` of the counters made or taken back (one step: the
        #: loop's ledger takes from it without the lock, :meth:`Ledger.arm`).
        self._made = itertools.count(1)
        self._start = 0
        self._keys: OrderedDict[str, None] = OrderedDict()
        #: Events dropped since the last :meth:`take` (the flush warns).
        self._window_dropped = 0
        #: The event recorder's clock (epoch ms) from its last ``Date`` header.
        self.server_time: int = 0
        #: Diagnostics: events dropped because the buffer was full, contexts
        #: found in the recently-seen set.
        self.dropped: int = 0
        self.deduplicated: int = 0
        #: Where :meth:`take` hands the counters it takes, for ``client.usage()``
        #: (None: nowhere). Off the evaluation path: at flush time.
        self.tally = tally

    # ------------------------------------------------------------ the hot path
    def record(
        self,
        flag: CompiledFlag,
        context: Context,
        result: Result,
        default: JSONValue,
        prereq_of: str | None = None,
        detail: bool = False,
    ) -> None:
        """Record one evaluation of present ``flag``, from any thread.

        ``prereq_of``: the flag that required it, for a prerequisite (its
        evaluation is recorded before that flag's own); ``detail``: a
        ``*_detail`` method's (its events carry the reason). Under
        :attr:`lock` (``acquire()`` and ``release()``: on CPython 3.11,
        ~900 instructions, ``with`` ~2,000).
        """
        lock = self.lock
        lock.acquire()
        try:
            self.count(self.shared, flag, context, result, default, detail, prereq_of)
        finally:
            lock.release()

    def evaluated(
        self,
        matcher: Counting,
        key: str,
        context: Context,
        result: Result,
        default: JSONValue,
        detail: bool = False,
        prereq_of: str | None = None,
    ) -> None:
        """Count an evaluation of flag ``key`` of ``matcher``'s data, from any thread.

        As :meth:`record` (the lookup of the flag is the count stage's, as
        :meth:`Ledger.evaluated`'s): one whose code could not be made is
        counted against nothing.
        """
        flag: CompiledFlag | None
        try:
            flag = matcher.hot[key]
        except KeyError:
            flag = matcher.made(key)
        if flag is None:
            return
        lock = self.lock
        lock.acquire()
        try:
            self.count(self.shared, flag, context, result, default, detail, prereq_of)
        finally:
            lock.release()

    def count(
        self,
        ledger: Ledger,
        flag: CompiledFlag,
        context: Context,
        result: Result,
        default: JSONValue,
        detail: bool,
        prereq_of: str | None,
    ) -> None:
        """Record one evaluation into ``ledger``, :attr:`lock` held.

        ``prereq_of``: the flag that required it, for a prerequisite.
        """
        counter = ledger.counters.get(flag)
        if counter is None:
            counter = self._counter(ledger, flag, default)
        index = result.variation_index
        if index is None:
            if not counter.none:
                counter.none_value = default
            counter.none += 1
            counter.note(None, result.reason)
        else:
            counter.counts[index] += 1
            if result.experiment:
                counter.note(index, result.reason)
        if context._kind != counter.kind:
            counter.add_kinds(context)
        full = counter.tracked or result.experiment
        # One timestamp for the index event and the full event it comes with.
        now = self._now() if full else None
        if context is not ledger.last:
            ledger.last = context
            self._notice(context, now)
        if ledger is self.loop:
            # Counted in place from now on (Ledger.evaluated), while contexts
            # of this one kind are: a context of another kind may add a
            # kind to every counter, so their places are forgotten.
            kind = context._kind
            if kind != ledger.fast_kind:
                ledger.fast.clear()
                ledger.flags_fast.clear()
                if kind == "multi":
                    ledger.fast_kind, ledger.fast_kinds = "", _NO_KINDS
                else:
                    ledger.fast_kind = kind
                    ledger.fast_kinds = _kinds(frozenset((kind,)))
            if ledger.fast_kind and not counter.tracked:
                ledger.flags_fast[flag] = counter.counts
        if now is not None:
            value = default if index is None else result.value
            self._full(flag, context, result, value, default, detail, prereq_of, now)

    def unknown(
        self, key: str, context: Context | None, default: JSONValue, result: Result
    ) -> None:
        """Record an evaluation of a flag that does not exist (or a client not ready).

        ``context`` None: the evaluation had no valid Context. Such an
        evaluation is in no summary (LaunchDarkly's have no context to
        count it for), but ``usage()`` and evaluation metrics count it
        (metrics: ``invalid_context``), as a flag key's default served.
        """
        with self.lock:
            counters = self._unknown if context is not None else self._refused
            counter = counters.get(key)
            if counter is None:
                if context is not None and self._empty():
                    self._start = self._now()
                counter = counters[key] = Counter(None, default, next(self._made))
            if not counter.none:
                counter.none_value = default
            counter.none += 1
            counter.note(None, result.reason)
            if context is None:  # no kinds to count, no index event to consider
                return
            if context._kind != counter.kind:
                counter.add_kinds(context)
            if context is not self.shared.last:
                self.shared.last = context
                self._notice(context, None)

    def _empty(self) -> bool:
        """Whether nothing is counted in this window yet (lock held)."""
        return not (self.shared.counters or self.loop.counters or self._unknown)

    def _counter(
        self, ledger: Ledger, flag: CompiledFlag, default: JSONValue
    ) -> Counter:
        if self._empty():
            self._start = self._now()
        order = next(self._made)
        counter = ledger.spare.pop(flag, None)
        if counter is None:
            counter = Counter(flag, default, order)
        else:  # the window before's, written and folded: as new, in place
            counter.reuse(order, _NO_KINDS, "")
            counter.default = default
        ledger.counters[flag] = counter
        return counter

    def _full(
        self,
        flag: CompiledFlag,
        context: Context,
        result: Result,
        value: JSONValue,
        default: JSONValue,
        detail: bool,
        prereq_of: str | None,
        now: int,
    ) -> None:
        """A tracked flag, an experiment or a debug window: full event records."""
        ratio = flag.sampling_ratio
        if (flag.track_events or result.experiment) and self._sampled(ratio):
            self._add(
                (FEATURE, now, context, flag, result, value, default, detail, prereq_of)
            )
        until = flag.debug_events_until_date
        if (
            until is not None
            and until > now
            and until > self.server_time
            and self._sampled(ratio)
        ):
            self._add(
                (DEBUG, now, context, flag, result, value, default, detail, prereq_of)
            )

    def _sampled(self, ratio: int) -> bool:
        if ratio == 1:
            return True
        return ratio > 1 and self._random.randrange(ratio) == 0

    # ------------------------------------------------------------- contexts
    def _notice(self, context: Context, now: int | None) -> None:
        """A context not seen by the last record: an index event unless seen recently."""
        keys = self._keys
        key = context._fq_key
        if key in keys:
            keys.move_to_end(key)
            self.deduplicated += 1
            return
        keys[key] = None
        if len(keys) > self._keys_capacity:
            keys.popitem(last=False)
        if self._omit_anonymous and _all_anonymous(context):
            return
        self._add((INDEX, self._now() if now is None else now, context))

    def reset_context_keys(self) -> None:
        """Forget the recently seen contexts (every ``context_keys_flush_interval``)."""
        with self.lock:
            self._keys.clear()
            self.shared.last = self.loop.last = None

    # ------------------------------------- custom, identify, migration_op
    def custom(
        self,
        key: str,
        context: Context,
        data: JSONValue,
        metric_value: float | None,
    ) -> None:
        """Record a custom event (``client.track``)."""
        now = self._now()
        with self.lock:
            self.shared.last = context
            self._notice(context, now)  # always looked up: it may need an index
            self._add((CUSTOM, now, context, key, data, metric_value))

    def identify(self, context: Context) -> None:
        """Record an identify event: it makes an index event for the context unnecessary."""
        now = self._now()
        with self.lock:
            self._remember(context)
            if self._omit_anonymous and _all_anonymous(context):
                return
            self._add((IDENTIFY, now, context))

    def migration_op(self, event: MigrationOpEvent) -> None:
        """Record a ``migration_op`` event, sampled as the flag's ``samplingRatio`` asks.

        It carries its context in full, so the context needs no index event
        (as LaunchDarkly does it: the context is remembered, none is made).
        """
        now = self._now()
        with self.lock:
            self._remember(event.context)
            if self._sampled(event.sampling_ratio):
                self._add((MIGRATION_OP, now, event))

    def _remember(self, context: Context) -> None:
        """Mark ``context`` as seen recently, without an index event (lock held).

        A context seen already counts as deduplicated (diagnostics), as
        LaunchDarkly counts it for identify and migration_op events.
        """
        keys = self._keys
        key = context._fq_key
        if key in keys:
            keys.move_to_end(key)
            self.deduplicated += 1
        else:
            keys[key] = None
            if len(keys) > self._keys_capacity:
                keys.popitem(last=False)

    # --------------------------------------------------------------- buffer
    def _add(self, record: Record) -> None:
        if len(self._outbox) >= self._capacity:
            # Counted only: the flush logs it, outside the lock.
            self.dropped += 1
            self._window_dropped += 1
            return
        self._outbox.append(record)

    def take(self) -> Batch | None:
        """Take everything buffered and summarised since the last call (or ``None``).

        Once taken, nothing records into the batch any more: it is the caller's.
        """
        with self.lock:  # (the loop's ledger: on the loop's thread, as its writes)
            records, self._outbox = self._outbox, []
            counters, self.shared.counters = self.shared.counters, {}
            own, self.loop.counters = self.loop.counters, {}
            self.loop.fast = {}
            self.loop.flags_fast = {}
            self.loop.spare = {}  # not counted again in the window taken
            unknown, self._unknown = self._unknown, {}
            refused, self._refused = self._refused, {}
            dropped, self._window_dropped = self._window_dropped, 0
            start = self._start
        if refused and self.tally is not None:
            self.tally.taken({}, refused, self._now())
        if not records and not counters and not own and not unknown:
            return None
        end = self._now()
        if self.tally is not None:  # every counter: usage() counts excluded flags too
            self.tally.taken(own, unknown, end)
            self.tally.taken(counters, {}, end)
        summary = [(flag.key, c) for flag, c in own.items() if not c.excluded]
        summary += [(flag.key, c) for flag, c in counters.items() if not c.excluded]
        summary += unknown.items()
        return Batch(
            records=records,
            counters=summary,
            start_ms=start,
            end_ms=end,
            dropped=dropped,
            own=own,
        )

    def recycle(self, own: dict[CompiledFlag, Counter]) -> None:
        """A batch's :attr:`Batch.own` is written and folded: its counters serve again.

        On the loop's thread, which alone reads and writes the loop's
        ledger. The next window counts each flag it counts again into its
        counter (zeroed as it is taken back: nothing per flag here, where
        the flush holds the loop), so no counter, counts list or frozenset
        is made per flag and window, and no object of them is left for the
        collector; a flag evaluated with the default of its counter's
        window counts in place from its first evaluation
        (:meth:`Ledger.arm`). Whoever holds the batch must read none of
        ``own``'s counters from now on.
        """
        self.loop.spare = own

    def counted(self) -> list[Pending]:
        """What this window has counted so far, per flag key, copied (``client.usage()``).

        Copied under :attr:`lock`, as threads count into the counters (the
        loop's ledger, which the loop counts into without it, is copied
        first: a dict's copy is one step that no thread interrupts); the
        window stays as it is, for the next flush to take.
        """
        with self.lock:
            own = self.loop.counters.copy()
            out: list[Pending] = [
                (flag.key, c.flag, c.counts.copy(), c.none)
                for counters in (own, self.shared.counters)
                for flag, c in counters.items()
            ]
            out += [
                (key, None, c.counts.copy(), c.none)
                for unknown in (self._unknown, self._refused)
                for key, c in unknown.items()
            ]
        return out


def _all_anonymous(context: Context) -> bool:
    return all(part._values.get("anonymous") for part in context._parts.values())
