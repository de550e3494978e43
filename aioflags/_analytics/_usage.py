"""Lifetime usage: each flag's evaluations since the client began counting (``client.usage()``).

The recorder's summary counters are the only count of evaluations, and each
flush takes them (:meth:`Recorder.take`). The take hands them to the
:class:`Tally` as they are (:meth:`Tally.taken`, no work per flag); the event
processor then folds them into one total per flag key a slice at a time
(:meth:`Tally.fold`), letting other tasks run between slices, as it encodes
the summary. So counting for ``usage()`` adds nothing to an evaluation, and
a flush of thousands of flags holds the loop no longer than before. A read
adds what is taken but not folded yet, and the counters of the window not
flushed yet, copied under the recorder's lock.

A flag's variations are told apart by value, not index: a flag change may
reorder them, and what a flag serves is what tells whether it is still needed.
A total counts by index for the flag object it added last and tells values
apart when read or when the variations change (:class:`FlagTotal`): a fold
makes nothing for the collector but a flag's first total.
A window's counters are folded without telling exactly when in the window a
flag was evaluated (the counters do not record it): a flag's last evaluation
is given as the end of the last window that counted it, at most one
``flush_interval`` late, never early.

The tally is read and changed on the client's event loop only (the flushes
and ``Client.usage()`` run there; ``aioflags.blocking.Client`` hands its
call to the loop), so it needs no lock of its own.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from contextlib import AbstractContextManager

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._model import CompiledFlag

__all__ = ["Counts", "Feed", "FlagTotal", "Pending", "Tally"]

#: A flag key's counts in the window not flushed yet, copied: its flag (None:
#: unknown), the count per variation, the count of defaults served.
Pending: TypeAlias = "tuple[str, CompiledFlag | None, list[int], int]"


class Counts(Protocol):
    """What the tally reads of a summary counter (the recorder's ``Counter``)."""

    @property
    def flag(self) -> CompiledFlag | None:
        """The flag counted (None: a flag not in the data)."""
        ...

    @property
    def counts(self) -> list[int]:
        """The evaluations that served each variation, by index."""
        ...

    @property
    def none(self) -> int:
        """The evaluations that served no variation (the caller's default)."""
        ...

    @property
    def notes(self) -> dict[tuple[int | None, str], int] | None:
        """What the counts do not tell: experiments, and why no variation (``_metrics``)."""
        ...


class Feed(Protocol):
    """Evaluation metrics, as the fold adds to them (``_metrics.MetricFeed``).

    Their counts per flag key and variation, for a flag that was on and
    one that was off, are lists added to in place, under their lock.
    """

    @property
    def lock(self) -> AbstractContextManager[object]:
        """Held while they are added to (other clients may share them)."""
        ...

    def add(self, on: bool, key: str, counts: list[int]) -> list[int]:
        """Add a counter of flag ``key`` (``on`` or off); its list, to add to in place.

        The list of its counts per variation, at least as long as
        ``counts`` (it may grow, in place, never replaced).
        """
        ...

    def noted(self, key: str, notes: Mapping[tuple[int | None, str], int]) -> None:
        """Add a counter's notes (what its counts do not tell)."""

    def publish(self) -> None:
        """The flush's counters are all added."""


#: No lock (a fold without metrics).
_UNLOCKED: Final = contextlib.nullcontext()


def _same(a: JSONValue, b: JSONValue) -> bool:
    """Whether two variation values are the same JSON value (``True`` is not ``1``)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, dict)):
        # Python's == takes True for 1 inside containers too.
        return json.dumps(a, sort_keys=True, default=repr) == json.dumps(
            b, sort_keys=True, default=repr
        )
    return bool(a == b)


class FlagTotal:
    """One flag key's evaluations so far: how many, which values, when last.

    Two objects for the collector per flag (itself and its counts), whatever
    it serves: the counts are kept by variation index for the flag object
    added last, and told apart by value (:attr:`served`) only when read or
    when the flag's variations change. A flag first serving a variation
    makes nothing; a tally of thousands of flags stays cheap for every
    collection that walks it.
    """

    __slots__ = (
        "_counts",
        "_earlier",
        "_variations",
        "defaults",
        "evaluations",
        "last_ms",
        "tallied",
    )

    def __init__(self) -> None:
        self.evaluations = 0
        #: Evaluations that served no variation (the caller's default).
        self.defaults = 0
        #: The end of the last window that counted it (epoch ms).
        self.last_ms = 0
        # The variations last added from, and the count served of each
        # (by index): a flag's versions are matched by value when its
        # variations change, not at every flush.
        self._variations: tuple[JSONValue, ...] | None = None
        self._counts: list[int] = _NO_COUNTS
        # ``[value, count]`` per value served by earlier variations (a
        # flag change), in the order first served; None until one.
        self._earlier: list[list[Any]] | None = None
        #: With metrics: their counts per variation of the flag object
        #: added last (that of :attr:`_variations`), added to in place.
        self.tallied: list[int] | None = None

    @property
    def served(self) -> list[list[Any]]:
        """``[value, count]`` per value served: the earlier variations' first, then by index.

        A fresh list (the caller may sort it). Values equal as JSON are one
        entry, whichever variation served them.
        """
        out = [] if self._earlier is None else [e.copy() for e in self._earlier]
        if self._variations is not None:
            _merge(out, self._variations, self._counts)
        return out

    def copy(self) -> FlagTotal:
        """An independent copy (a read adds what is not folded yet to it)."""
        total = FlagTotal()
        total.evaluations = self.evaluations
        total.defaults = self.defaults
        total.last_ms = self.last_ms
        total._variations = self._variations
        total._counts = self._counts.copy()
        if self._earlier is not None:
            total._earlier = [entry.copy() for entry in self._earlier]
        return total

    def add(
        self, flag: CompiledFlag | None, counts: list[int], none: int, end_ms: int
    ) -> None:
        """Add one counter's counts (``counts[i]``: variation ``i`` of ``flag``)."""
        total = none
        if flag is not None:
            variations = flag.variations
            if variations is not self._variations:
                self.rebase(variations)
            mine = self._counts
            for index, count in enumerate(counts):
                if count:
                    total += count
                    mine[index] += count
        if total:
            self.evaluations += total
            self.defaults += none
            if end_ms > self.last_ms:
                self.last_ms = end_ms

    def rebase(self, variations: tuple[JSONValue, ...]) -> None:
        """Count by the index of ``variations`` from now on (a flag object's, new or changed).

        What the variations before served is kept by value.
        """
        if self._variations is not None and any(self._counts):
            if self._earlier is None:
                self._earlier = []
            _merge(self._earlier, self._variations, self._counts)
        self._variations = variations
        self._counts = [0] * len(variations)


#: The counts of a total that has counted no flag object yet.
_NO_COUNTS: Final[list[int]] = []


def _merge(
    entries: list[list[Any]], variations: tuple[JSONValue, ...], counts: list[int]
) -> None:
    """Add ``counts`` (by index of ``variations``) to ``entries``, by value."""
    for index, count in enumerate(counts):
        if count:
            value = variations[index]
            for entry in entries:
                if _same(entry[0], value):
                    entry[1] += count
                    break
            else:
                entries.append([value, count])


#: What a flush took: the counters by flag (or by key: flags not in the
#: data), and when its window ended.
_Taken: TypeAlias = "tuple[Mapping[Any, Counts], int]"


class Tally:
    """The evaluations of a client's life, per flag key, folded in after each flush.

    One per client (its runs share it): the client's recorders hand it what
    each flush takes (:meth:`taken`), their event processors fold it in
    (:meth:`fold`).
    """

    __slots__ = ("_at", "_flags", "_taken", "metrics", "since_ms")

    def __init__(self, since_ms: int, metrics: Feed | None = None) -> None:
        #: When counting began (epoch ms): the client's first run with events on.
        self.since_ms = since_ms
        #: Where the fold hands each slice of counters for evaluation
        #: metrics too (None: no metrics configured).
        self.metrics = metrics
        self._flags: dict[str, FlagTotal] = {}
        # Taken, not folded yet: the first one from index ``_at`` on.
        self._taken: deque[_Taken] = deque()
        self._at = 0

    def taken(
        self,
        counters: Mapping[CompiledFlag, Counts],
        unknown: Mapping[str, Counts],
        end_ms: int,
    ) -> None:
        """A flush took these counters (its recorder's, no longer counted into).

        Kept as they are (no work per flag here: the take holds the loop),
        to be folded in by :meth:`fold`.
        """
        if counters:
            self._taken.append((counters, end_ms))
        if unknown:
            self._taken.append((unknown, end_ms))

    @property
    def unfolded(self) -> bool:
        """Whether counters taken are waiting to be folded in."""
        return bool(self._taken)

    def fold(self, limit: int) -> bool:
        """Fold up to ``limit`` counters taken into the totals; whether any are left.

        With metrics (:attr:`metrics`), into theirs too, in the same walk
        (a walk of their own costs a third more), under their lock: clients
        on other threads may share them. A flag object's counts go to the
        list :attr:`FlagTotal.tallied` holds, found when its first counter
        is folded.
        """
        flags = self._flags
        taken = self._taken
        metrics = self.metrics
        lock = _UNLOCKED if metrics is None else metrics.lock
        while taken and limit > 0:
            items, end_ms = taken[0]
            stop = min(len(items), self._at + limit)
            with lock:
                # Skipping what earlier slices folded is a C loop (~2 ns an item).
                for key, counter in islice(items.items(), self._at, stop):
                    if key.__class__ is not str:  # a flag: its key
                        key = key.key
                    total = flags.get(key)
                    if total is None:
                        total = flags[key] = FlagTotal()
                    if metrics is not None and counter.notes is not None:
                        metrics.noted(key, counter.notes)
                    flag = counter.flag
                    if flag is None or flag.variations is not total._variations:
                        total.add(flag, counter.counts, counter.none, end_ms)
                        if metrics is not None and flag is not None:
                            total.tallied = metrics.add(flag.on, key, counter.counts)
                        continue
                    # FlagTotal.add in place, for the variations it added last
                    # (a call costs as much as the rest); and the metrics'
                    # counts of this flag object, if any.
                    tallied = total.tallied
                    mine = total._counts
                    none = counter.none
                    added = none
                    index = 0
                    for count in counter.counts:
                        if count:
                            mine[index] += count
                            added += count
                            if tallied is not None:
                                tallied[index] += count
                        index += 1  # noqa: SIM113 (enumerate: a tuple per item)
                    if added:
                        total.evaluations += added
                        total.defaults += none
                        if end_ms > total.last_ms:
                            total.last_ms = end_ms
            limit -= stop - self._at
            if stop == len(items):
                taken.popleft()
                self._at = 0
            else:
                self._at = stop
        return bool(taken)

    def publish(self) -> None:
        """A flush folded all it took (the metrics read what is not in a counter)."""
        if self.metrics is not None:
            self.metrics.publish()

    def read(self, pending: Iterable[Pending], now_ms: int) -> dict[str, FlagTotal]:
        """The totals, with what is not folded yet and ``pending`` (at ``now_ms``).

        Only the totals that change are copied: the result is read at once,
        before the loop folds anything more.
        """
        flags = self._flags
        out = dict(flags)
        copied: set[str] = set()

        def total_of(key: str) -> FlagTotal:
            total = out.get(key)
            if total is None:
                total = out[key] = FlagTotal()
                copied.add(key)
            elif key not in copied:
                total = out[key] = total.copy()
                copied.add(key)
            return total

        at = self._at
        for items, end_ms in self._taken:
            for key, counter in islice(items.items(), at, None):
                if key.__class__ is not str:
                    key = key.key
                total_of(key).add(counter.flag, counter.counts, counter.none, end_ms)
            at = 0
        for key, flag, counts, none in pending:
            total_of(key).add(flag, counts, none, now_ms)
        return out
