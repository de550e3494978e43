"""Evaluation metrics: the summary counters folded into totals per flag, variant and reason.

What ``aioflags.otel.Metrics`` exports. Nothing is counted for it on the
evaluation path: each flush folds the summary counters it takes (the ones
LaunchDarkly's summary event and ``client.usage()`` are made of), and the
same walk (``_usage.Tally.fold``) adds their counts, through the client's
:class:`MetricFeed`, to its exporter's :class:`MetricTotals`, on the loop,
under the totals' lock; a metric reader, on whatever thread it collects,
copies them under that lock and makes the series (:meth:`MetricTotals.read`).

A counter counts one flag object (one version of a flag) per variation
served, and the evaluations that served the caller's default. What it does
not tell, the recorder notes on its slow path, which these evaluations take
anyway (:meth:`~aioflags._analytics._recorder.Counter.note`): the reason of
an evaluation that served no variation (an error kind, or an off flag with
no off variation), and the evaluations of an experiment. The rest follows
from the flag object: a flag that is off serves its off variation
(``disabled``), one that is on serves a variation by its targeting
(``targeting_match``). These are OpenTelemetry's words (its feature-flag
semantic conventions), the same that ``aioflags.otel.TracingHook`` writes.
A flag lens token's overrides are in no counter: the feed reads the lens's
own counts at each flush (``override``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


__all__ = [
    "ERROR_TYPES",
    "OVERRIDE",
    "REASONS",
    "SPLIT",
    "Exporter",
    "MetricFeed",
    "MetricKey",
    "MetricTotals",
    "error_type",
    "reason_word",
]

#: LaunchDarkly's reason kinds in OpenTelemetry's words (its semantic
#: conventions' ``feature_flag.result.reason``).
REASONS: Final[Mapping[str, str]] = {
    "TARGET_MATCH": "targeting_match",
    "RULE_MATCH": "targeting_match",
    "FALLTHROUGH": "targeting_match",
    "PREREQUISITE_FAILED": "targeting_match",
    "OFF": "disabled",
    "ERROR": "error",
}
#: LaunchDarkly's error kinds in OpenTelemetry's words (``error.type``).
ERROR_TYPES: Final[Mapping[str, str]] = {
    "FLAG_NOT_FOUND": "flag_not_found",
    "CLIENT_NOT_READY": "provider_not_ready",
    "USER_NOT_SPECIFIED": "invalid_context",
    "WRONG_TYPE": "type_mismatch",
    "MALFORMED_FLAG": "parse_error",
    "EXCEPTION": "general",
}
#: The reason of an experiment's evaluation (``inExperiment``).
SPLIT: Final = "split"
#: The reason of an evaluation a flag lens token overrode (docs/lens.md).
OVERRIDE: Final = "override"

#: One series: the flag key, the variant (the variation index as text; None:
#: none served), the reason (OpenTelemetry's word), the error type (None:
#: not an error).
MetricKey: TypeAlias = "tuple[str, str | None, str, str | None]"


def reason_word(kind: object, in_experiment: object = False) -> str:
    """A LaunchDarkly reason kind in OpenTelemetry's words (``unknown`` if none)."""
    if in_experiment:
        return SPLIT
    return REASONS.get(kind, "unknown") if isinstance(kind, str) else "unknown"


def error_type(kind: object) -> str:
    """A LaunchDarkly error kind as OpenTelemetry's ``error.type``."""
    return ERROR_TYPES.get(kind, "general") if isinstance(kind, str) else "general"


#: The variants' texts, made once ("0", "1", ...).
_VARIANTS: Final = tuple(str(i) for i in range(64))


def _variant(index: int) -> str:
    return _VARIANTS[index] if index < len(_VARIANTS) else str(index)


class MetricTotals:
    """Evaluations per flag key, variant, reason and error, for the life of an exporter.

    One per ``aioflags.otel.Metrics``, shared by the clients given it. Kept
    as the counters are (per flag key, a count per variation, added to in
    place as the fold walks them), so that a flush adds to it cheaply: the
    series are made by :meth:`read`, on the metric reader's thread. Each
    client's fold adds under :attr:`lock`, a slice of counters at a time
    (clients on other threads may add at once).
    """

    __slots__ = ("lock", "odd", "off", "on")

    def __init__(self) -> None:
        #: Held while a feed adds, and while :meth:`read` copies.
        self.lock = threading.Lock()
        #: Per flag key, the evaluations that served each variation while
        #: the flag was on (``targeting_match``, experiments' included).
        self.on: dict[str, list[int]] = {}
        #: The same while it was off (``disabled``).
        self.off: dict[str, list[int]] = {}
        #: The series the counts alone do not tell: an experiment's
        #: evaluations (``split``: taken out of :attr:`on`'s at :meth:`read`),
        #: those that served no variation (by error or reason), overrides.
        self.odd: dict[MetricKey, int] = {}

    def read(self) -> dict[MetricKey, int]:
        """Every series and its count, as of the last flush (from any thread)."""
        with self.lock:
            on = {key: counts.copy() for key, counts in self.on.items()}
            off = {key: counts.copy() for key, counts in self.off.items()}
            odd = self.odd.copy()
        out = odd
        for into, word in ((on, "targeting_match"), (off, "disabled")):
            for key, counts in into.items():
                for index, count in enumerate(counts):
                    if count:
                        variant = _variant(index)
                        if word != "disabled":
                            count -= odd.get((key, variant, SPLIT, None), 0)
                        if count:
                            out[key, variant, word, None] = count
        return out


class MetricFeed:
    """What one client's flushes add to its exporter's :class:`MetricTotals`.

    On the client's loop only. The fold of a flush's counters
    (``_usage.Tally.fold``) adds each one's counts to the totals' ``on`` or
    ``off``, under :attr:`lock`, as it walks them for ``usage()``: a
    flag object's first through :meth:`add`, the next in place, in the
    list it returned; and its notes (:meth:`noted`). Then :meth:`publish`
    adds the lens's overridden evaluations (they are in no counter).
    """

    __slots__ = ("_overridden", "_seen", "totals")

    def __init__(
        self,
        totals: MetricTotals,
        overridden: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.totals = totals
        self._overridden = overridden
        #: The lens's counts at the last publish (its counts only grow).
        self._seen: dict[str, int] = {}

    @property
    def lock(self) -> threading.Lock:
        """The totals' lock: held while the fold adds to them."""
        return self.totals.lock

    def add(self, on: bool, key: str, counts: list[int]) -> list[int]:
        """Add a counter of flag ``key`` (``on``: the flag was on); its list (lock held).

        The list of the flag's counts per variation, grown in place to
        hold ``counts`` (never replaced: a flag object's later counters are
        added to it in place, ``_usage.Tally.fold``).
        """
        into = self.totals.on if on else self.totals.off
        added = into.get(key)
        if added is None:
            added = into[key] = [0] * len(counts)
        elif len(added) < len(counts):
            added += bytes(len(counts) - len(added))  # zeros
        for index, count in enumerate(counts):
            added[index] += count
        return added

    def noted(self, key: str, notes: Mapping[tuple[int | None, str], int]) -> None:
        """Add a counter's notes (lock held)."""
        odd = self.totals.odd
        series: MetricKey
        for (index, label), count in notes.items():
            if index is not None:  # (only experiments are noted with one)
                series = (key, _variant(index), SPLIT, None)
            elif label in ERROR_TYPES:
                series = (key, None, "error", ERROR_TYPES[label])
            else:
                series = (key, None, reason_word(label), None)
            odd[series] = odd.get(series, 0) + count

    def publish(self) -> None:
        """A flush's counters are all in: add the lens's overrides since the last."""
        if self._overridden is None:
            return
        seen = self._seen
        totals = self.totals
        for key, count in self._overridden().items():
            more = count - seen.get(key, 0)
            if more > 0:
                seen[key] = count
                series: MetricKey = (key, None, OVERRIDE, None)
                with totals.lock:
                    totals.odd[series] = totals.odd.get(series, 0) + more


class Exporter(Protocol):
    """What a client reads of ``Config.metrics`` (``aioflags.otel.Metrics``)."""

    @property
    def _totals(self) -> MetricTotals:
        """Where the client's flushes add their counts."""
        ...
