"""The guards' statistics (issue 98, aioflags/_guards/_stats.py): pure functions over additive counts.

Unit tests of each test's shape (one-sided, monotone, the low-traffic
floor, the sample-ratio check, bad input), then small seeded simulations
on the streams of tests/guard_streams.py: false alarms under a binomial
bound, and the power figures of the contract at a tenth of the
benchmark's size (benchmarks/bench_guards.py runs the full ones).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioflags._guards._stats import (
    MIN_PER_ARM,
    Evidence,
    mean_evidence,
    rate_evidence,
    ratio_evidence,
    split_alpha,
)
from tests.guard_streams import (
    RATIO_CASES,
    REFERENCE_ALPHA,
    REFERENCES,
    Look,
    Stream,
    Test,
    binomial,
    error_pairs,
    error_stream,
    errors_test,
    latency_looks,
    latency_stream,
    latency_test,
    median,
    recorded_reference,
    references,
    stopping_times,
)

N = 10_000  # requests per arm, well above the floor


def _log_sums(values: list[float]) -> tuple[int, float, float]:
    return len(values), math.fsum(values), math.fsum(v * v for v in values)


# -- rates -------------------------------------------------------------------


def test_a_higher_treatment_error_rate_decides() -> None:
    evidence = rate_evidence(N, 100, N, 200, 0.01)
    assert evidence.decided
    assert evidence.value >= 100
    assert evidence.needed == 0


def test_equal_rates_do_not_decide() -> None:
    evidence = rate_evidence(N, 100, N, 100, 0.01)
    assert not evidence.decided
    assert evidence.value < 1


def test_a_better_treatment_never_decides() -> None:
    """One-sided: a treatment with far fewer errors gives an e-value below 1."""
    for x_t in (0, 10, 50, 99):
        evidence = rate_evidence(N, 100, N, x_t, 0.01)
        assert not evidence.decided
        assert evidence.value < 1


def test_rate_evidence_grows_with_the_treatment_errors() -> None:
    values = [rate_evidence(N, 100, N, x_t, 0.01).value for x_t in range(80, 260, 10)]
    assert values == sorted(values)
    assert values[0] < 1 < 100 < values[-1]


def test_rate_evidence_grows_with_traffic_at_the_same_rates() -> None:
    values = [
        rate_evidence(n, n // 100, n, n // 50, 0.01).value
        for n in (2_000, 5_000, 20_000)
    ]
    assert values == sorted(values)


def test_low_traffic_never_decides_and_says_how_much_more_it_needs() -> None:
    n = MIN_PER_ARM - 100
    # Every request of the treatment failed: still no decision under the floor.
    evidence = rate_evidence(n, 0, n, n, 0.01)
    assert not evidence.decided
    assert evidence.value > 100
    assert evidence.needed == 100
    assert rate_evidence(n, 0, MIN_PER_ARM + 5, 30, 0.01).needed == 100
    assert rate_evidence(MIN_PER_ARM, 0, MIN_PER_ARM, MIN_PER_ARM, 0.01).decided


def test_no_requests_is_no_evidence() -> None:
    assert rate_evidence(0, 0, 0, 0, 0.01) == Evidence(
        value=1.0, decided=False, needed=MIN_PER_ARM
    )
    # No errors in either arm: no evidence either way (the value at no harm).
    assert (
        rate_evidence(N, 0, N, 0, 0.01).value == rate_evidence(N, 50, N, 50, 0.01).value
    )


def test_a_smaller_alpha_asks_for_more() -> None:
    loose = rate_evidence(N, 100, N, 150, 0.05)
    strict = rate_evidence(N, 100, N, 150, 0.001)
    assert loose.decided
    assert not strict.decided


def test_overwhelming_evidence_is_infinite_not_an_overflow() -> None:
    evidence = rate_evidence(10**7, 0, 10**7, 10**6, 0.01)
    assert evidence.value == math.inf
    assert evidence.decided


# -- means -------------------------------------------------------------------


def _arm(rng: random.Random, mu: float, n: int) -> tuple[int, float, float]:
    return _log_sums([rng.gauss(mu, 1.0) for _ in range(n)])


def test_a_slower_treatment_decides_and_a_faster_one_never_does() -> None:
    rng = random.Random(7)
    control = _arm(rng, 0.0, 5_000)
    slower = _arm(rng, math.log(1.2), 5_000)
    faster = _arm(rng, -math.log(1.2), 5_000)
    assert mean_evidence(*control, *slower, 0.01).decided
    assert not mean_evidence(*control, *faster, 0.01).decided
    assert mean_evidence(*control, *faster, 0.01).value < 1
    # When lower is worse (a metric like conversions), the roles swap.
    assert mean_evidence(*control, *faster, 0.01, worse="lower").decided
    assert not mean_evidence(*control, *slower, 0.01, worse="lower").decided


def test_mean_evidence_grows_with_the_difference() -> None:
    control = (N, 0.0, float(N))  # mean 0, variance 1
    values = [
        mean_evidence(*control, N, d * N, N + d * d * N, 0.01).value
        for d in (0.0, 0.02, 0.04, 0.06, 0.08)
    ]
    assert values == sorted(values)
    assert values[0] < 1 < 100 < values[-1]


def test_mean_low_traffic_never_decides() -> None:
    n = MIN_PER_ARM // 2
    evidence = mean_evidence(n, 0.0, float(n), n, 5.0 * n, 26.0 * n, 0.01)
    assert evidence.value > 100
    assert not evidence.decided
    assert evidence.needed == MIN_PER_ARM - n


def test_constant_arms_say_nothing() -> None:
    """No spread in either arm: the normal model has nothing to say (the value at no harm)."""
    evidence = mean_evidence(N, 1.0 * N, 1.0 * N, N, 2.0 * N, 4.0 * N, 0.01)
    same = mean_evidence(N, 0.0, 1.0 * N, N, 0.0, 1.0 * N, 0.01)
    assert evidence == Evidence(value=same.value, decided=False, needed=0)
    assert evidence.value < 1


# -- properties (Hypothesis) ---------------------------------------------------

arms = st.integers(min_value=0, max_value=10**7)
levels = st.floats(min_value=1e-6, max_value=0.5)


@pytest.mark.slow
@pytest.mark.no_cover
@given(arms, arms, st.data(), levels)
def test_a_treatment_no_worse_never_decides_whatever_the_counts(
    n_c: int, n_t: int, data: st.DataObject, alpha: float
) -> None:
    """One-sided: at an equal or lower error rate the e-value stays below 1."""
    x_c = data.draw(st.integers(min_value=0, max_value=n_c))
    # the treatment's errors at most its share of the control's rate
    x_t = data.draw(st.integers(min_value=0, max_value=x_c * n_t // n_c if n_c else 0))
    evidence = rate_evidence(n_c, x_c, n_t, x_t, alpha)
    assert evidence.value <= 1.0
    assert not evidence.decided


@pytest.mark.slow
@pytest.mark.no_cover
@given(
    st.integers(min_value=MIN_PER_ARM, max_value=10**6),
    st.floats(min_value=0.0, max_value=0.5),
    st.integers(min_value=1, max_value=50),
    levels,
)
def test_more_treatment_errors_never_weaken_the_evidence(
    n: int, rate: float, extra: int, alpha: float
) -> None:
    x_c = round(n * rate)
    x_t = min(n - extra, x_c)
    before = rate_evidence(n, x_c, n, x_t, alpha).value
    after = rate_evidence(n, x_c, n, x_t + extra, alpha).value
    assert after >= before


# -- the sample ratio --------------------------------------------------------


def test_srm_55_45_on_a_50_50_rollout_decides() -> None:
    assert ratio_evidence([5_500, 4_500], [50, 50], 0.01).decided
    assert ratio_evidence([4_500, 5_500], [0.5, 0.5], 0.01).decided


def test_srm_50_2_49_8_on_a_50_50_rollout_does_not() -> None:
    for total in (10_000, 50_000):
        counts = [total * 502 // 1000, total * 498 // 1000]
        assert not ratio_evidence(counts, [50, 50], 0.01).decided


def test_srm_follows_the_weights() -> None:
    assert not ratio_evidence([9_000, 1_000], [90, 10], 0.01).decided
    assert ratio_evidence([9_000, 1_000], [50, 50], 0.01).decided
    assert not ratio_evidence([3_300, 3_350, 3_350], [1, 1, 1], 0.01).decided


def test_srm_an_arm_that_gets_nothing_decides() -> None:
    """A starved arm is the worst mismatch: the floor counts all the requests."""
    evidence = ratio_evidence([2 * MIN_PER_ARM, 0], [1, 1], 0.01)
    assert evidence.decided
    assert evidence.needed == 0


def test_srm_low_traffic_never_decides() -> None:
    evidence = ratio_evidence([MIN_PER_ARM, 0], [1, 1], 0.01)
    assert evidence.value > 100
    assert not evidence.decided
    assert evidence.needed == MIN_PER_ARM // 2


# -- alpha -------------------------------------------------------------------


def test_split_alpha_is_bonferroni() -> None:
    assert split_alpha(0.01, 2) == 0.005
    assert split_alpha(0.05, 1) == 0.05


# -- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: rate_evidence(-1, 0, 10, 0, 0.01), "n_c"),
        (lambda: rate_evidence(10, 0, 10.0, 0, 0.01), "n_t"),  # type: ignore[arg-type]
        (lambda: rate_evidence(10, 11, 10, 0, 0.01), "x_c"),
        (lambda: rate_evidence(10, 0, 10, -2, 0.01), "x_t"),
        (lambda: rate_evidence(10, True, 10, 0, 0.01), "x_c"),
        (lambda: rate_evidence(10, 0, 10, 0, 0.0), "alpha"),
        (lambda: rate_evidence(10, 0, 10, 0, 1.0), "alpha"),
        (lambda: rate_evidence(10, 0, 10, 0, math.nan), "alpha"),
        (lambda: mean_evidence(10, math.nan, 1.0, 10, 0.0, 1.0, 0.01), "s_c"),
        (lambda: mean_evidence(10, 0.0, -1.0, 10, 0.0, 1.0, 0.01), "q_c"),
        (lambda: mean_evidence(10, 0.0, 1.0, 10, 0.0, math.inf, 0.01), "q_t"),
        (lambda: mean_evidence(10, 0.0, 1.0, 10, 0.0, 1.0, 0.01, worse="up"), "worse"),
        (lambda: ratio_evidence([10], [1], 0.01), "counts"),
        (lambda: ratio_evidence([10, -1], [1, 1], 0.01), "counts"),
        (lambda: ratio_evidence([10, 10], [1], 0.01), "weights"),
        (lambda: ratio_evidence([10, 10], [1, 0], 0.01), "weights"),
        (lambda: ratio_evidence([10, 10], [1, math.nan], 0.01), "weights"),
        (lambda: ratio_evidence([10, 10], [1, 1], 2), "alpha"),
        (lambda: split_alpha(0.01, 0), "tests"),
        (lambda: split_alpha(-0.01, 2), "alpha"),
    ],
)
def test_bad_input_raises_naming_the_argument(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        call()  # type: ignore[operator]


# -- seeded simulations --------------------------------------------------------
#
# Deterministic (seeded); the bounds are the ones a test that keeps its level
# meets with room: under the null, the alarms of R runs are at most
# Binomial(R, alpha), and BOUND is its one-in-10,000 upper tail.


def _binomial_bound(runs: int, alpha: float) -> int:
    """The alarms that R runs at level alpha exceed with chance under 1e-4 (normal tail, z = 3.72)."""
    mean = runs * alpha
    return math.ceil(mean + 3.72 * math.sqrt(mean * (1 - alpha)))


def _errors_aa(rng: random.Random, looks: int) -> Iterator[Look]:
    return error_stream(rng, 0.01, 0.01, looks)


def _latency_aa(rng: random.Random, looks: int) -> Iterator[Look]:
    return latency_stream(rng, 1.0, looks)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize(
    ("stream", "test"),
    [(_errors_aa, errors_test), (_latency_aa, latency_test)],
    ids=["errors", "latency"],
)
def test_aa_false_alarms_stay_under_alpha(
    stream: Stream, test: Test, alpha: float
) -> None:
    """200 A/A runs of 20,000 requests per arm, looked at every 100."""
    alarms = stopping_times(200, 98, stream, test, alpha, looks=200)
    fired = sum(1 for n in alarms if n != math.inf)
    assert fired <= _binomial_bound(200, alpha)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rate", "share", "looks"), [(0.001, 0.1, 200), (0.3, 0.9, 30)]
)
def test_aa_false_alarms_stay_under_alpha_at_other_rates_and_splits(
    rate: float, share: float, looks: int
) -> None:
    """A rare error (0.1 %) with a 10 % treatment arm, a common one (30 %) with a 90 % arm."""
    rng = random.Random(11)
    block_c = 100
    block_t = round(block_c * share / (1 - share))
    alarms = 0
    for _ in range(200):
        n_c = x_c = n_t = x_t = 0
        for _ in range(looks):
            n_c, n_t = n_c + block_c, n_t + block_t
            x_c += binomial(rng, block_c, rate)
            x_t += binomial(rng, block_t, rate)
            if rate_evidence(n_c, x_c, n_t, x_t, 0.05).decided:
                alarms += 1
                break
    assert alarms <= _binomial_bound(200, 0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stream", "target"),
    [
        (lambda rng, looks: error_stream(rng, 0.01, 0.02, looks), 20_000),
        (lambda rng, looks: error_stream(rng, 0.01, 0.05, looks), 2_000),
    ],
    ids=["1%->2%", "1%->5%"],
)
def test_power_errors_median_meets_the_contract(stream: Stream, target: int) -> None:
    """At alpha 0.005 (the default 0.01 split across errors and latency)."""
    found = stopping_times(
        100, 2, stream, errors_test, 0.005, looks=target // 100 * 2, on_schedule=True
    )
    assert median(found) <= target


@pytest.mark.slow
def test_power_latency_20_percent_slower_median_meets_the_contract() -> None:
    found = stopping_times(
        100,
        3,
        lambda rng, looks: latency_stream(rng, 1.2, looks),
        latency_test,
        0.005,
        looks=100,
        on_schedule=True,
    )
    assert median(found) <= 5_000


# -- the references: savvi's and gbstats' answers, recorded (tests/guard_streams.py) --


def _recorded() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(REFERENCES.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("case", range(len(RATIO_CASES)))
def test_the_sample_ratio_is_savvis_multinomial(case: int) -> None:
    """The same Bayes factor as savvi's Multinomial (Lindon & Malek), to rounding."""
    counts, weights = RATIO_CASES[case]
    odds = _recorded()["sample_ratio"][case]
    ours = ratio_evidence(counts, weights, 0.01)
    assert ours.value == pytest.approx(odds, rel=1e-9)
    assert ours.decided == (odds >= 100)


@pytest.mark.slow
@pytest.mark.parametrize("slower", [1.0, 1.2])
def test_latency_decides_between_gbstats_at_alpha_and_at_twice_alpha(
    slower: float,
) -> None:
    """gbstats' SequentialTwoSidedTTest on the same sums, look by look.

    The one-sided e-value is the two-sided one times 2 * Phi(c): between 1
    and 2 when the treatment is worse. So where gbstats' interval excludes
    0 above at alpha, aioflags decides; where aioflags decides, gbstats
    does at 2 * alpha with the same mixture.
    """
    recorded = _recorded()["latency"][str(slower)]
    looks = list(latency_looks(slower))
    assert len(looks) == len(recorded)
    decided = 0
    for look, (theirs, theirs_twice) in zip(looks, recorded, strict=True):
        ours = latency_test(look, REFERENCE_ALPHA).decided
        decided += ours
        if theirs:
            assert ours, look
        if ours:
            assert theirs_twice, look
    assert decided > 0 if slower > 1 else decided >= 0


@pytest.mark.slow
def test_errors_agree_with_savvi_on_the_same_streams() -> None:
    """savvi's multinomial test of the errors' split (two-sided, conditional): fewer decisions, later."""
    stops = iter(_recorded()["errors"])
    pairs = error_pairs(recorded_reference(stops))
    assert next(stops, "done") == "done"  # (every recorded stream was read)
    agree = sum((mine is None) == (theirs is None) for mine, theirs in pairs)
    assert agree >= 36
    ratios = [mine / theirs for mine, theirs in pairs if mine and theirs]
    assert ratios
    assert median(ratios) <= 1.0


@pytest.mark.slow
def test_the_recorded_references_are_what_savvi_and_gbstats_answer() -> None:
    """tests/guard_references.json is today's answer of the libraries (the `reference` group).

    Skipped where the group is not installed (`nox -s reference` installs
    it); the three tests above read the record everywhere.
    """
    pytest.importorskip("savvi.multinomial")
    pytest.importorskip("gbstats")
    live = references()
    recorded = _recorded()
    assert live["errors"] == recorded["errors"]
    assert live["latency"] == recorded["latency"]
    assert live["sample_ratio"] == pytest.approx(recorded["sample_ratio"], rel=1e-12)
