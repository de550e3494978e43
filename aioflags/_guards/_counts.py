"""A guard's counts for one arm: plain additive numbers, summed across requests and processes.

Nothing but counts: no context key, attribute or value of a request is
kept. A flag plane's leader adds its workers' counts with :meth:`Counts.add`.
"""

from __future__ import annotations

__all__ = ["Counts"]


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
