"""Seeded request streams for the guards' statistics, and the runs that test them on those streams.

A stream is a guarded rollout seen every ``BLOCK`` requests per arm (the
contract's "looked at every 100 requests"): each look adds a block of
requests to both arms. A block is drawn exactly, not request by request:

- errors: a binomial count per arm (``binomial``: inversion of the CDF,
  exact; ``random.binomialvariate`` is Python 3.12's);
- latency: ``log(seconds)`` normal, so a block's sum is one normal draw and
  its sum of squared deviations is ``sigma**2`` times a chi-square with
  ``BLOCK - 1`` degrees of freedom, independent of the sum (Cochran's
  theorem): ``s`` and ``q`` exactly as 100 draws would give them.

A guard at run time looks on a schedule (``_stats.next_look``): at the
floor, then as its counts grow by an eighth; ``scheduled`` keeps those
looks of a stream, for the stopping times a guard has (the power). The
same stream goes through aioflags' test (``first_decision``) and
through a reference (``savvi``, ``gbstats``: ``reference_*``, imported only
when called) so that their decisions can be compared run by run. Used by
tests/test_guards_stats.py and benchmarks/bench_guards.py.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aioflags._guards._stats import (
    MIN_PER_ARM,
    N_STAR,
    Evidence,
    mean_evidence,
    next_look,
    rate_evidence,
)

BLOCK = 100

#: The latency model: lognormal, the control's median 100 ms, this spread of
#: ``log(seconds)`` (a p99 about 10x the median: a wide, realistic tail).
LOG_SIGMA = 1.0
LOG_MEDIAN = math.log(0.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Look:
    """Both arms' sums after a look: requests, errors, and ``log(seconds)``'s sum and sum of squares."""

    n: int  # requests per arm (the same in both: BLOCK per look)
    x_c: int = 0
    x_t: int = 0
    s_c: float = 0.0
    q_c: float = 0.0
    s_t: float = 0.0
    q_t: float = 0.0


def binomial(rng: random.Random, n: int, p: float) -> int:
    """One exact Binomial(n, p) draw by inversion of its CDF (fast for small ``n * p``)."""
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    q = 1.0 - p
    odds = p / q
    prob = q**n
    u = rng.random()
    x = 0
    while u > prob and x < n:
        u -= prob
        x += 1
        prob *= odds * (n - x + 1) / x
    return x


def error_stream(
    rng: random.Random, p_c: float, p_t: float, looks: int
) -> Iterator[Look]:
    """Error counts, a look every ``BLOCK`` requests per arm: control rate ``p_c``, treatment ``p_t``."""
    x_c = x_t = 0
    for look in range(1, looks + 1):
        x_c += binomial(rng, BLOCK, p_c)
        x_t += binomial(rng, BLOCK, p_t)
        yield Look(n=look * BLOCK, x_c=x_c, x_t=x_t)


def _normal_block(rng: random.Random, mu: float) -> tuple[float, float]:
    """The sum and the sum of squares of ``BLOCK`` draws of Normal(mu, LOG_SIGMA)."""
    mean = rng.gauss(mu, LOG_SIGMA / math.sqrt(BLOCK))
    deviations = LOG_SIGMA**2 * rng.gammavariate((BLOCK - 1) / 2, 2.0)
    return BLOCK * mean, deviations + BLOCK * mean * mean


def latency_stream(rng: random.Random, slower: float, looks: int) -> Iterator[Look]:
    """``log(seconds)`` sums, a look every ``BLOCK`` requests per arm: the treatment ``slower`` times the median."""
    s_c = q_c = s_t = q_t = 0.0
    for look in range(1, looks + 1):
        s, q = _normal_block(rng, LOG_MEDIAN)
        s_c, q_c = s_c + s, q_c + q
        s, q = _normal_block(rng, LOG_MEDIAN + math.log(slower))
        s_t, q_t = s_t + s, q_t + q
        yield Look(n=look * BLOCK, s_c=s_c, q_c=q_c, s_t=s_t, q_t=q_t)


def errors_test(look: Look, alpha: float) -> Evidence:
    """aioflags' rate test on a look."""
    return rate_evidence(look.n, look.x_c, look.n, look.x_t, alpha)


def latency_test(look: Look, alpha: float) -> Evidence:
    """aioflags' mean test (higher is worse) on a look."""
    return mean_evidence(look.n, look.s_c, look.q_c, look.n, look.s_t, look.q_t, alpha)


def scheduled(stream: Iterator[Look]) -> Iterator[Look]:
    """The looks of ``stream`` a guard takes at run time (``_stats.next_look``, per arm).

    The stream has a look every ``BLOCK`` requests per arm; a guard looks
    first at the floor, then as its counts grow by an eighth, always at a
    whole number of blocks: so this keeps exactly the looks it takes.
    """
    due = next_look(0, 1)
    for look in stream:
        if look.n >= due:
            due = next_look(look.n, 1)
            yield look


def first_decision(
    stream: Iterator[Look], test: Callable[[Look, float], bool | Evidence], alpha: float
) -> int | None:
    """Requests per arm at the first look where ``test`` decides; None if it never does."""
    for look in stream:
        answer = test(look, alpha)
        if answer.decided if isinstance(answer, Evidence) else answer:
            return look.n
    return None


#: A stream maker: ``stream(rng, looks)``; a test of one look at a level.
Stream = Callable[[random.Random, int], Iterator[Look]]
Test = Callable[[Look, float], Evidence]


def stopping_times(
    runs: int,
    seed: int,
    stream: Stream,
    test: Test,
    alpha: float,
    looks: int,
    *,
    on_schedule: bool = False,
) -> list[float]:
    """Requests per arm at which each of ``runs`` seeded runs decided (math.inf: never, within ``looks``).

    ``on_schedule``: only at the looks a guard takes at run time (the
    power); else at every look, every 100 requests per arm (false alarms:
    the contract's "looked at every 100", more looks than a guard takes).
    """
    rng = random.Random(seed)
    found: list[float] = []
    for _ in range(runs):
        looked = stream(rng, looks)
        n = first_decision(scheduled(looked) if on_schedule else looked, test, alpha)
        found.append(math.inf if n is None else n)
    return found


def median(values: list[float]) -> float:
    """The median, with a run that never decided (``math.inf``) counted as the latest."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def reference_errors(look: Look, alpha: float) -> bool:
    """``savvi``'s test of the same question, on the errors alone: does it reject?

    Lindon & Malek's multinomial test (``savvi.multinomial.Multinomial``)
    on the two arms' error counts against the traffic split (50/50): with
    equal requests per arm, errors split 50/50 exactly when the rates are
    equal. Two-sided and conditional on the errors; the same floor as ours.
    """
    import numpy as np
    from savvi.multinomial import Multinomial

    test = Multinomial(alpha, np.array([0.5, 0.5]))
    test.update(np.array([look.x_c, look.x_t]))
    return bool(
        look.n >= MIN_PER_ARM and look.x_t > look.x_c and test.odds >= 1 / alpha
    )


def reference_latency(look: Look, alpha: float, *, tuning: float = N_STAR) -> bool:
    """``gbstats``' sequential test on the same sums: does its interval exclude 0 above?

    ``SequentialTwoSidedTTest`` on the absolute difference, its tuning
    parameter ``tuning`` (aioflags' :data:`N_STAR` unless given).
    """
    from gbstats.frequentist.tests import (
        SequentialConfig,
        SequentialTwoSidedTTest,
    )
    from gbstats.models.statistics import SampleMeanStatistic

    control = SampleMeanStatistic(n=look.n, sum=look.s_c, sum_squares=look.q_c)
    treatment = SampleMeanStatistic(n=look.n, sum=look.s_t, sum_squares=look.q_t)
    config = SequentialConfig(
        alpha=alpha, difference_type="absolute", sequential_tuning_parameter=tuning
    )
    test = SequentialTwoSidedTTest(control, treatment, config)
    low, _ = test.confidence_interval
    return bool(look.n >= MIN_PER_ARM and low > 0)


def same_mixture_tuning(alpha: float, other: float) -> float:
    """The ``gbstats`` tuning parameter at level ``other`` whose mixture is aioflags' at ``alpha``.

    ``gbstats`` derives the mixture's ``rho`` from its level; this keeps the
    mixture fixed while the level changes, for the sandwich of
    tests/test_guards_stats.py: the one-sided e-value is the two-sided one
    times ``2 * Phi(c)``, between 1 and 2 when the treatment is worse, so
    aioflags decides no later than ``gbstats`` at ``alpha`` and no sooner
    than ``gbstats`` at ``2 * alpha`` with the same mixture.
    """

    def spent(level: float) -> float:
        return -2 * math.log(level) + math.log(1 - 2 * math.log(level))

    return N_STAR * spent(other) / spent(alpha)


def stopping_pair(
    stream: Iterator[Look],
    ours: Callable[[Look, float], Evidence],
    reference: Callable[[Look, float], bool],
    alpha: float,
) -> tuple[int | None, int | None]:
    """Requests per arm at which each test first decides on one stream (None: never)."""
    mine: int | None = None
    theirs: int | None = None
    for look in stream:
        if mine is None and ours(look, alpha).decided:
            mine = look.n
        if theirs is None and reference(look, alpha):
            theirs = look.n
        if mine is not None and theirs is not None:
            break
    return mine, theirs


# -- the references, recorded ------------------------------------------------
#
# savvi and gbstats pull numpy, scipy, pandas and cvxpy (the `reference`
# group, ~100 s to install on a fresh machine): what they answer on the
# streams above is recorded in tests/guard_references.json, which the tests
# read on every run, everywhere. `python -m tests.guard_streams` (with the
# group installed) writes it again; a test checks the file is what they
# answer today wherever the group is installed.

#: The recorded references' file.
REFERENCES = Path(__file__).with_name("guard_references.json")
#: The sample-ratio cases: (counts, weights).
RATIO_CASES: Final = (
    ([5_500, 4_500], [0.5, 0.5]),
    ([5_020, 4_980], [0.5, 0.5]),
    ([880, 1_120], [0.5, 0.5]),
    ([2_400, 7_600], [0.25, 0.75]),
    ([800, 700, 1_500], [0.25, 0.25, 0.5]),
)
#: The latency streams: (seed, streams, looks), each at ``slower`` 1.0 and 1.2.
LATENCY_STREAMS: Final = (12, 30, 40)
#: The error streams: (seed, streams), 1 % → 2 %, looked at every 100.
ERROR_STREAMS: Final = (5, 40)
#: The level of the recorded comparisons.
REFERENCE_ALPHA: Final = 0.005


def savvi_odds(counts: list[int], weights: list[float]) -> float:
    """savvi's ``Multinomial`` odds for ``counts`` against ``weights`` (at alpha 0.01)."""
    import numpy as np
    from savvi.multinomial import Multinomial

    test = Multinomial(0.01, np.array(weights))
    test.update(np.array(counts))
    return float(test.odds)


def latency_looks(slower: float) -> Iterator[Look]:
    """Every look of the recorded latency streams at ``slower``, in order."""
    seed, streams, looks = LATENCY_STREAMS
    rng = random.Random(seed)
    for _ in range(streams):
        yield from latency_stream(rng, slower, looks)


def error_pairs(
    reference: Callable[[Look, float], bool],
) -> list[tuple[int | None, int | None]]:
    """:func:`stopping_pair` over the recorded error streams, with ``reference`` as theirs."""
    seed, streams = ERROR_STREAMS
    rng = random.Random(seed)
    return [
        stopping_pair(
            error_stream(rng, 0.01, 0.02, 100),
            errors_test,
            reference,
            REFERENCE_ALPHA,
        )
        for _ in range(streams)
    ]


def recorded_reference(stops: Iterator[int | None]) -> Callable[[Look, float], bool]:
    """A reference that answers as the recorded one did: it first decides at the recorded look.

    ``stops``: the requests per arm at which the library first decided on
    each stream, in order (None: never); each call of :func:`stopping_pair`
    takes the next. It consumes each stream exactly as the live one does.
    """
    current: list[int | None] = []

    def decided(look: Look, alpha: float) -> bool:
        if look.n <= BLOCK:  # (a stream's first look: the next stream's stop)
            current[:] = [next(stops)]
        stop = current[0]
        return stop is not None and look.n >= stop

    return decided


def references() -> dict[str, object]:
    """What savvi and gbstats answer on the recorded streams (the ``reference`` group)."""
    tuning = same_mixture_tuning(REFERENCE_ALPHA, 2 * REFERENCE_ALPHA)
    latency = {
        str(slower): [
            [
                reference_latency(look, REFERENCE_ALPHA),
                reference_latency(look, 2 * REFERENCE_ALPHA, tuning=tuning),
            ]
            for look in latency_looks(slower)
        ]
        for slower in (1.0, 1.2)
    }
    return {
        "sample_ratio": [savvi_odds(c, w) for c, w in RATIO_CASES],
        "latency": latency,
        "errors": [theirs for _, theirs in error_pairs(reference_errors)],
    }


if __name__ == "__main__":
    REFERENCES.write_text(json.dumps(references()) + "\n", encoding="utf-8")
    print(f"wrote {REFERENCES}")
