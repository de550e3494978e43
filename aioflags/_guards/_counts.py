"""A guard's counts for one arm: plain additive numbers, summed across requests and processes.

Nothing but counts: no context key, attribute or value of a request is
kept. A flag plane's leader adds its workers' counts with :meth:`Counts.add`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Counts"]

#: The shortest duration counted: a clock that did not move, went back, or
#: gave NaN or infinity counts this. Its ``log2``, as a request scope keeps it.
TINY: Final = 1e-9
LOG2_TINY: Final = math.log2(TINY)
_LN2: Final = math.log(2.0)
_LN2_SQUARED: Final = _LN2 * _LN2


def _floored(log2: float) -> float:
    """A request's ``log2(seconds)``, or :data:`LOG2_TINY`'s if it is not finite."""
    return log2 if -math.inf < log2 < math.inf else LOG2_TINY


class Counts:
    """One arm's requests, errors, log-latency sums and app metrics' sums.

    Attributes:
        requests: requests served this arm.
        errors: those that raised or answered 5xx.
        log_n: the latency samples (one per request).
        log_s: their sum of ``log(seconds)``.
        log_q: their sum of ``log(seconds)²``.
        metrics: per app metric, ``[n, Σ, Σ²]`` of each request's sum.
    """

    __slots__ = ("errors", "log_n", "log_q", "log_s", "metrics", "requests")

    def __init__(self) -> None:
        self.requests: int = 0
        self.errors: int = 0
        self.log_n: int = 0
        self.log_s: float = 0.0
        self.log_q: float = 0.0
        self.metrics: dict[str, list[float]] = {}

    def add(self, other: Counts) -> None:
        """Add ``other``'s counts to these (a plane leader summing its workers)."""
        self.requests += other.requests
        self.errors += other.errors
        self.log_n += other.log_n
        self.log_s += other.log_s
        self.log_q += other.log_q
        for name, (n, s, q) in other.metrics.items():
            mine = self.metrics.get(name)
            if mine is None:
                self.metrics[name] = [n, s, q]
            else:
                mine[0] += n
                mine[1] += s
                mine[2] += q

    def add_requests(self, failed: bool, logs: list[float]) -> None:
        """Add requests by the ``log2`` of their durations in seconds (and, if ``failed``, as errors).

        A request scope takes the ``log2`` as it ends (``_scope``); here
        they add as natural logarithms and their squares. One that is not
        finite (a clock that gave NaN or infinity) counts as :data:`TINY`.
        """
        taken = len(logs)
        self.requests += taken
        if failed:
            self.errors += taken
        self.log_n += taken
        # (the sum of squares as hypot's square: one call in C, where
        # map(mul) and sum take a call per value; tests/test_guards.py
        # pins that it is the sum of squares)
        log_s = sum(logs)
        if not -math.inf < log_s < math.inf:  # (NaN or infinite: a clock gone wrong)
            logs = list(map(_floored, logs))
            log_s = sum(logs)
        self.log_s += log_s * _LN2
        self.log_q += math.hypot(*logs) ** 2 * _LN2_SQUARED

    def add_metrics(self, sent: list[Mapping[str, float]]) -> None:
        """Add requests' app metrics' sums (``[n, Σ, Σ²]`` each)."""
        sums = self.metrics
        for values in sent:
            for name, value in values.items():
                kept = sums.get(name)
                if kept is None:
                    sums[name] = [1, value, value * value]
                else:
                    kept[0] += 1
                    kept[1] += value
                    kept[2] += value * value

    def metric(self, name: str) -> tuple[int, float, float]:
        """App metric ``name``'s ``(n, Σ, Σ²)`` (zeros if never sent)."""
        sums = self.metrics.get(name)
        if sums is None:
            return 0, 0.0, 0.0
        return int(sums[0]), sums[1], sums[2]

    def __repr__(self) -> str:
        return (
            f"Counts(requests={self.requests}, errors={self.errors},"
            f" log_n={self.log_n}, metrics={sorted(self.metrics)})"
        )
