"""The guards' statistics: anytime-valid, one-sided evidence of harm from additive counts.

Every function here is pure (no I/O, no clock, no state) and reads only
sums that add across processes and across time: requests and errors per
arm, the sum and the sum of squares of a metric's values per arm, the
requests each arm received. A flag plane's leader adds its workers'
counts and asks the same question one process would.

Each answer is an :class:`Evidence`: an e-value (a nonnegative
supermartingale under the null, started at 1), so by Ville's inequality
the chance that it *ever* reaches ``1 / alpha``, however often it is
looked at, is at most ``alpha``. A guard may look after every request and
stop at the first crossing.

The methods:

- Rates and means: the mixture sequential probability ratio test (mSPRT)
  of Johari, Koomen, Pekelis & Walsh, "Always Valid Inference: Continuous
  Monitoring of A/B Tests", Operations Research 70(3), 2022, on the
  difference of the two arms under the normal approximation, as GrowthBook's
  ``gbstats`` runs it (``SequentialTwoSidedTTest``) and with its mixture's
  scale: a normal mixture of variance ``rho**2`` per observation (the
  normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon,
  "Time-uniform, nonparametric, nonasymptotic confidence sequences",
  Annals of Statistics 49(2), 2021), ``rho`` the one that makes the
  boundary tightest after :data:`N_STAR` requests (Waudby-Smith et al.,
  "Time-uniform central limit theory and asymptotic confidence sequences",
  arXiv:2103.06476v7, eq. (161), as ``gbstats`` cites it). A guard looks for harm only,
  so the mixture here is one-sided: the half-normal over positive harm
  (Johari et al., section 4), which gives ``2 * Phi(c)`` times the
  two-sided e-value: at least as large when the treatment is worse, and
  below 1 when it is better (a better treatment never decides). The rate
  test uses the pooled variance of the two rates (the variance under the
  null hypothesis of equal rates): with few errors in the control it does
  not mistake the control's luck for a precise estimate. Why this test and
  not the exact e-process for 2x2 tables of Turner, Ly & Grünwald (2024):
  one method for every metric, closed form in ``math`` alone, the same
  arithmetic as a published reference (``gbstats``) to check it against,
  and the normal approximation's weakness (few errors) is what the
  low-traffic floor :data:`MIN_PER_ARM` keeps out.
- The sample ratio: the Dirichlet-multinomial Bayes factor of Lindon &
  Malek, "Anytime-Valid Inference For Multinomial Count Data", NeurIPS
  2022 (``savvi``'s ``Multinomial``), with the prior's concentration
  :data:`SRM_CONCENTRATION` times the rollout's weights. It is exact (no
  approximation) and two-sided: any drift of the split counts.

Latency is tested as the mean of ``log(seconds)``: for a lognormal latency
the difference of those means is the log of the ratio of the medians.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "LOOK_EVERY",
    "LOOK_GROWTH",
    "MIN_PER_ARM",
    "N_STAR",
    "SRM_CONCENTRATION",
    "Evidence",
    "mean_evidence",
    "means",
    "next_look",
    "rate_evidence",
    "rates",
    "ratio",
    "ratio_evidence",
    "split_alpha",
]

#: The low-traffic floor: no test decides before each arm has this many
#: requests (the sample-ratio test: this many per arm on average). The
#: rate and mean tests lean on the normal approximation of an arm's mean;
#: for a rate that is the usual rule of thumb ``n * p >= 10`` (10 errors an
#: arm) at a 1 % error rate, and a fault that raises the rate to 5 % is
#: still caught by 2,000 requests an arm (docs/benchmarks.md). Below it the
#: e-value is still reported, never acted on.
MIN_PER_ARM: Final[int] = 1_000

#: The closest two looks of a guard come: this many requests per arm.
LOOK_EVERY: Final[int] = 100

#: Past the floor, a guard looks again when its requests have grown by
#: about ``1 / LOOK_GROWTH`` (in whole :data:`LOOK_EVERY` steps per arm).
LOOK_GROWTH: Final[int] = 8

#: The mixture's tuning: the total requests (both arms) at which the
#: boundary is tightest. The mixing variance is ``rho**2`` per observation,
#: ``rho**2 = (-2 ln a + ln(1 - 2 ln a)) / N_STAR`` (``gbstats``' formula,
#: its ``sequential_tuning_parameter``; 5,000 is its default). The choice is
#: not delicate: from 2,000 to 16,000 the median requests per arm to catch
#: 1 % -> 2 % errors at alpha 0.005 stay within 3,500-3,600, and 1 % -> 1.5 %
#: within 10,200-11,950 (300 seeded runs each). 4,000 sits in that flat
#: middle, tightest near the few thousand requests a doubled error rate
#: needs, and meets the power figures of docs/benchmarks.md with room.
N_STAR: Final[float] = 4_000.0

#: The sample-ratio test's Dirichlet prior is this many pseudo-requests,
#: split by the rollout's weights (``savvi``'s default ``k``).
SRM_CONCENTRATION: Final[float] = 100.0

_SQRT2: Final[float] = math.sqrt(2.0)
#: Past this, ``math.exp`` overflows: the e-value is reported as infinite.
_LOG_MAX: Final[float] = 709.0
_WORSE: Final = ("higher", "lower")


class Evidence(NamedTuple):
    """How strongly the counts say the treatment harms, and whether that decides.

    ``value`` is the anytime-valid e-value (a mixture likelihood ratio): under
    the null hypothesis it stays below ``1 / alpha`` at every look with
    probability at least ``1 - alpha``. ``decided`` is true when it reached
    ``1 / alpha`` and the low-traffic floor is met. ``needed`` is how many
    more requests each arm needs before a decision is possible at all (0: the
    floor is met).
    """

    value: float
    decided: bool
    needed: int


def split_alpha(alpha: float, tests: int) -> float:
    """The level each of ``tests`` tests gets so that together they keep ``alpha`` (Bonferroni).

    A guard with two metrics over one treatment runs each at ``alpha / 2``:
    the chance that any of them ever decides under the null stays at most
    ``alpha``, whatever the dependence between the metrics.
    """
    _check_alpha(alpha)
    if not _is_int(tests) or tests < 1:
        raise ValueError(f"tests must be an int >= 1, got {tests!r}")
    return alpha / tests


def next_look(seen: int, arms: int) -> int:
    """When a guard with ``arms`` arms looks next, having seen ``seen`` requests in all.

    The first look when the arms may have met the floor
    (:data:`MIN_PER_ARM` requests each, on average): no test can decide
    before, so an earlier look only costs. Then every :data:`LOOK_EVERY`
    requests per arm, or an eighth (:data:`LOOK_GROWTH`) of the requests
    seen so far, in whole steps of :data:`LOOK_EVERY` per arm, if that is
    more: a look costs the same at any count, so looks thin out as
    counts grow (23 from 1,000 to 10,000 requests per arm, not 91),
    and a decision comes at most an eighth of its requests after the look
    at every 100 would have made it. The e-values are valid whenever one
    looks: this sets only when. The simulations of docs/benchmarks.md
    look on this schedule (``tests/guard_streams.py``).
    """
    floor = MIN_PER_ARM * arms
    if seen < floor:
        return floor
    step = LOOK_EVERY * arms
    return seen + step * max(1, seen // (LOOK_GROWTH * step))


def rate_evidence(n_c: int, x_c: int, n_t: int, x_t: int, alpha: float) -> Evidence:
    """Evidence that the treatment's error rate is higher than the control's.

    ``n_c``/``n_t`` requests and ``x_c``/``x_t`` errors (Bernoulli counts)
    per arm. The one-sided mixture SPRT on the difference of the two rates,
    with the pooled variance (module docstring).
    """
    _check_count("n_c", n_c)
    _check_count("n_t", n_t)
    _check_count("x_c", x_c, n_c, "n_c")
    _check_count("x_t", x_t, n_t, "n_t")
    _check_alpha(alpha)
    return rates(n_c, x_c, n_t, x_t, alpha)


def rates(n_c: int, x_c: int, n_t: int, x_t: int, alpha: float) -> Evidence:
    """:func:`rate_evidence` of counts known to be valid (a watch's own): unchecked."""
    needed = max(0, MIN_PER_ARM - min(n_c, n_t))
    if n_c == 0 or n_t == 0:
        return Evidence(1.0, False, needed)
    pooled = (x_c + x_t) / (n_c + n_t)
    variance = pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t)
    value = _one_sided(x_t / n_t - x_c / n_c, variance, n_c + n_t, alpha)
    return Evidence(value, needed == 0 and value >= 1.0 / alpha, needed)


def mean_evidence(
    n_c: int,
    s_c: float,
    q_c: float,
    n_t: int,
    s_t: float,
    q_t: float,
    alpha: float,
    worse: str = "higher",
) -> Evidence:
    """Evidence that the treatment's mean is worse (``worse``: higher, or lower) than the control's.

    Per arm: ``n`` values, ``s`` their sum, ``q`` the sum of their squares.
    The one-sided mixture SPRT on the difference of the means, each arm's
    variance its own (Welch's; ``gbstats`` likewise). Latency goes in as
    ``log(seconds)``: the test is then on the ratio of the medians.
    """
    _check_count("n_c", n_c)
    _check_count("n_t", n_t)
    for name, number in (("s_c", s_c), ("q_c", q_c), ("s_t", s_t), ("q_t", q_t)):
        _check_finite(name, number)
    if q_c < 0:
        raise ValueError(f"q_c must be a sum of squares (>= 0), got {q_c!r}")
    if q_t < 0:
        raise ValueError(f"q_t must be a sum of squares (>= 0), got {q_t!r}")
    _check_alpha(alpha)
    if worse not in _WORSE:
        raise ValueError(f"worse must be 'higher' or 'lower', got {worse!r}")
    return means(n_c, s_c, q_c, n_t, s_t, q_t, alpha, worse == "higher")


def means(
    n_c: int,
    s_c: float,
    q_c: float,
    n_t: int,
    s_t: float,
    q_t: float,
    alpha: float,
    higher: bool = True,
) -> Evidence:
    """:func:`mean_evidence` of sums known to be valid (a watch's own): unchecked.

    ``higher``: a higher mean is worse (else a lower one).
    """
    needed = max(0, MIN_PER_ARM - min(n_c, n_t))
    if n_c < 2 or n_t < 2:
        return Evidence(1.0, False, needed)
    mean_c, mean_t = s_c / n_c, s_t / n_t
    # The sample variance from the sums; rounding may leave it a hair below 0.
    var_c = max(0.0, (q_c - s_c * mean_c) / (n_c - 1))
    var_t = max(0.0, (q_t - s_t * mean_t) / (n_t - 1))
    harm = mean_t - mean_c if higher else mean_c - mean_t
    value = _one_sided(harm, var_c / n_c + var_t / n_t, n_c + n_t, alpha)
    return Evidence(value, needed == 0 and value >= 1.0 / alpha, needed)


def ratio_evidence(
    counts: Sequence[int], weights: Sequence[float], alpha: float
) -> Evidence:
    """Evidence that the arms' request counts do not follow the rollout's weights.

    The sample-ratio mismatch test of Lindon & Malek (2022): the
    Dirichlet-multinomial Bayes factor against the multinomial with the
    weights' proportions. Two-sided (any drift); exact at any count; the
    floor asks for :data:`MIN_PER_ARM` requests per arm on average.
    """
    if len(counts) < 2:
        raise ValueError(f"counts must hold two arms or more, got {len(counts)}")
    if len(weights) != len(counts):
        raise ValueError(
            f"weights must have one weight per count: {len(weights)} for {len(counts)}"
        )
    for count in counts:
        _check_count("counts", count)
    for weight in weights:
        _check_finite("weights", weight)
        if weight <= 0:
            raise ValueError(f"weights must be > 0, got {weight!r}")
    _check_alpha(alpha)
    whole = math.fsum(weights)
    return ratio(counts, [weight / whole for weight in weights], alpha)


def ratio(counts: Sequence[int], shares: Sequence[float], alpha: float) -> Evidence:
    """:func:`ratio_evidence` of counts known to be valid (a watch's own): unchecked.

    ``shares``: the weights' proportions (each > 0, summing to 1).
    """
    arms = len(counts)
    total = sum(counts)
    needed = max(0, -(-(MIN_PER_ARM * arms - total) // arms))
    log_value = math.lgamma(SRM_CONCENTRATION) - math.lgamma(SRM_CONCENTRATION + total)
    for count, share in zip(counts, shares, strict=True):
        prior = SRM_CONCENTRATION * share
        log_value += math.lgamma(prior + count) - math.lgamma(prior)
        log_value -= count * math.log(share)
    value = _exp(log_value)
    return Evidence(value, needed == 0 and value >= 1.0 / alpha, needed)


def _one_sided(harm: float, variance: float, total: int, alpha: float) -> float:
    """The half-normal mixture's likelihood ratio for ``harm`` > 0 (module docstring).

    ``harm`` estimates the difference, ``variance`` is its variance, and
    ``total`` requests in all set the mixture's scale: ``r = total * rho**2``
    is the mixing variance over ``variance``. With ``z = harm / sqrt(variance)``
    and ``c = z * sqrt(r / (1 + r))`` the e-value is
    ``2 * Phi(c) * exp(c**2 / 2) / sqrt(1 + r)`` (``gbstats``' two-sided one
    is the same without ``2 * Phi(c)``).
    """
    r = total * _rho_squared(alpha)
    if variance <= 0.0:
        # No spread in either arm (no errors at all, say): no evidence of a
        # difference, the value at c = 0, as the formula gives at no harm.
        return 1.0 / math.sqrt(1.0 + r)
    c = harm / math.sqrt(variance) * math.sqrt(r / (1.0 + r))
    tail = 0.5 * math.erfc(-c / _SQRT2)  # Phi(c), accurate far in the lower tail
    if tail <= 0.0:
        return 0.0
    return _exp(math.log(2.0 * tail) + c * c / 2.0 - 0.5 * math.log1p(r))


@functools.lru_cache(maxsize=32)  # a guard asks at a level or two, every look
def _rho_squared(alpha: float) -> float:
    """The mixing variance per observation that is tightest at :data:`N_STAR` (``gbstats``)."""
    log_alpha = -2.0 * math.log(alpha)
    return (log_alpha + math.log(log_alpha + 1.0)) / N_STAR


def _exp(log_value: float) -> float:
    return math.inf if log_value > _LOG_MAX else math.exp(log_value)


def _check_alpha(alpha: float) -> None:
    if not _is_number(alpha):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _check_count(
    name: str, count: int, most: int | None = None, most_name: str = ""
) -> None:
    if not _is_int(count) or count < 0:
        raise ValueError(f"{name} must be an int >= 0, got {count!r}")
    if most is not None and count > most:
        raise ValueError(f"{name} must be at most {most_name} ({most}), got {count}")


def _check_finite(name: str, number: float) -> None:
    if not _is_number(number) or not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
