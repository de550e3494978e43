"""Guarded rollouts' statistics at full size: false alarms, power, and agreement with the references.

    python benchmarks/bench_guards.py [--runs 2000] [--seed 98] [--smoke]

Seeded simulations of tests/guard_streams.py's streams (a look every 100
requests per arm, each block drawn exactly), through aioflags' tests
(aioflags/_guards/_stats.py), printing the contract's table
(../shared/guards.md, "Figures"): the share of A/A runs that ever alarm
(50,000 requests per arm, 1 % errors, looked at every block), and the
median requests per arm to decide for a doubled error rate, a five-fold
one and a latency 20 % slower at the median, looked at when a guard looks
at run time (``scheduled``: at the 1,000 floor, then as the counts grow by
an eighth). Power is measured at alpha 0.005: the default 0.01 split
across a guard's two default metrics.

Then the same streams through the published references, when the
``reference`` dependency group is installed (``savvi``, ``gbstats``):
decisions run by run and the ratio of the stopping times. Nothing is
asserted here (tests/test_guards_stats.py asserts at a smaller size).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioflags._guards._stats import MIN_PER_ARM, N_STAR, ratio_evidence, split_alpha
from tests.guard_streams import (
    BLOCK,
    LOG_SIGMA,
    Look,
    Stream,
    Test,
    error_stream,
    errors_test,
    first_decision,
    latency_stream,
    latency_test,
    median,
    reference_errors,
    reference_latency,
    same_mixture_tuning,
    stopping_pair,
    stopping_times,
)

if TYPE_CHECKING:
    from collections.abc import Callable

#: The default guard: alpha 0.01 split across errors and latency.
POWER_ALPHA = split_alpha(0.01, 2)


def _figures(runs: int, seed: int, aa_looks: int) -> list[str]:
    rows: list[str] = []
    aa: list[tuple[str, Stream, Test]] = [
        ("A/A, errors 1 %", lambda r, k: error_stream(r, 0.01, 0.01, k), errors_test),
        ("A/A, latency", lambda r, k: latency_stream(r, 1.0, k), latency_test),
    ]
    for name, stream, test in aa:
        for alpha in (0.05, 0.01):
            found = stopping_times(runs, seed, stream, test, alpha, aa_looks)
            alarms = sum(1 for n in found if n != math.inf) / runs
            verdict = "ok" if alarms <= alpha else "OVER"
            rows.append(
                f"  {name:<34}{alpha:>7}{runs:>7}  alarms {alarms:.4f}"
                f"  (<= {alpha}: {verdict})"
            )
    power: list[tuple[str, Stream, Test, int]] = [
        (
            "errors 1 % -> 2 %",
            lambda r, k: error_stream(r, 0.01, 0.02, k),
            errors_test,
            20_000,
        ),
        (
            "errors 1 % -> 5 %",
            lambda r, k: error_stream(r, 0.01, 0.05, k),
            errors_test,
            2_000,
        ),
        (
            "latency 20 % slower (median)",
            lambda r, k: latency_stream(r, 1.2, k),
            latency_test,
            5_000,
        ),
    ]
    for name, stream, test, target in power:
        found = stopping_times(
            runs, seed + 1, stream, test, POWER_ALPHA, aa_looks, on_schedule=True
        )
        decided = sum(1 for n in found if n != math.inf)
        mid = median(found)
        verdict = "ok" if mid <= target else "OVER"
        rows.append(
            f"  {name:<34}{POWER_ALPHA:>7}{runs:>7}  median {mid:>7,.0f} per arm"
            f"  (<= {target:,}: {verdict}); decided {decided}/{runs}"
        )
    return rows


def _agreement(runs: int, seed: int, looks: int) -> list[str]:
    try:
        import gbstats  # noqa: F401 - only to say whether the references are there
        import savvi  # noqa: F401
    except ImportError:
        return [
            "  references not installed (the `reference` group): nothing to compare"
        ]
    rows: list[str] = []
    cases: list[tuple[str, Stream, Test, Callable[[Look, float], bool]]] = [
        (
            "errors 1 % -> 2 %, savvi",
            lambda r, k: error_stream(r, 0.01, 0.02, k),
            errors_test,
            reference_errors,
        ),
        (
            "errors A/A, savvi",
            lambda r, k: error_stream(r, 0.01, 0.01, k),
            errors_test,
            reference_errors,
        ),
        (
            "latency 20 % slower, gbstats",
            lambda r, k: latency_stream(r, 1.2, k),
            latency_test,
            reference_latency,
        ),
        (
            "latency A/A, gbstats",
            lambda r, k: latency_stream(r, 1.0, k),
            latency_test,
            reference_latency,
        ),
    ]
    for name, stream, ours, reference in cases:
        rng = random.Random(seed)
        agree = 0
        ratios: list[float] = []
        for _ in range(runs):
            mine, theirs = stopping_pair(
                stream(rng, looks), ours, reference, POWER_ALPHA
            )
            agree += (mine is None) == (theirs is None)
            if mine is not None and theirs is not None:
                ratios.append(mine / theirs)
        spread = (
            f"stopping-time ratio ours/theirs: median {median(ratios):.2f},"
            f" {min(ratios):.2f}-{max(ratios):.2f}"
            if ratios
            else "stopping-time ratio: no run where both decided"
        )
        rows.append(f"  {name:<34}decisions agree {agree}/{runs}; {spread}")
    # The same mixture at twice the level: aioflags' one-sided test must stop
    # between gbstats at alpha and gbstats at 2 * alpha (tests/guard_streams.py).
    tuning = same_mixture_tuning(POWER_ALPHA, 2 * POWER_ALPHA)
    rng = random.Random(seed)
    inside = 0
    for _ in range(runs):
        stream = latency_stream(rng, 1.2, looks)
        looks_seen = list(stream)
        mine = first_decision(iter(looks_seen), latency_test, POWER_ALPHA)
        late = first_decision(iter(looks_seen), reference_latency, POWER_ALPHA)
        early = first_decision(
            iter(looks_seen),
            lambda look, a: reference_latency(look, 2 * a, tuning=tuning),
            POWER_ALPHA,
        )
        big = math.inf
        inside += (early or big) <= (mine or big) <= (late or big)
    rows.append(
        f"  {'latency, gbstats at a and 2a':<34}ours between the two in {inside}/{runs}"
    )
    worst = 0.0
    rng = random.Random(seed)
    import numpy as np
    from savvi.multinomial import Multinomial

    for _ in range(runs):
        # Around 50/50, as a rollout's arms are: some decide, most do not.
        total = rng.randrange(100, 20_000)
        first = round(total / 2 + rng.gauss(0, 1.5 * math.sqrt(total)))
        counts = [first, total - first]
        test = Multinomial(POWER_ALPHA, np.array([0.5, 0.5]))
        test.update(np.array(counts))
        ours = ratio_evidence(counts, [1, 1], POWER_ALPHA).value
        worst = max(worst, abs(math.log(ours) - math.log(test.odds)))
    rows.append(
        f"  {'sample ratio, savvi Multinomial':<34}largest |log e-value difference|"
        f" {worst:.1e} over {runs} count pairs"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--agreement-runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=98)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    aa_looks = 50_000 // BLOCK
    if args.smoke:
        args.runs, args.agreement_runs, aa_looks = 20, 5, 50
    started = time.perf_counter()
    print(
        f"Guarded rollouts: the statistics (seed {args.seed}; A/A looked at every"
        f" {BLOCK} requests per arm, power on a guard's schedule; up to"
        f" {aa_looks * BLOCK:,}; floor {MIN_PER_ARM:,} per arm;"
        f" N_STAR {N_STAR:,.0f}; latency log-sd {LOG_SIGMA})"
    )
    print(f"  {'row':<34}{'alpha':>7}{'runs':>7}  result")
    for row in _figures(args.runs, args.seed, aa_looks):
        print(row, flush=True)
    print(f"\nThe same streams through the references (alpha {POWER_ALPHA}):")
    for row in _agreement(args.agreement_runs, args.seed, aa_looks // 5):
        print(row, flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
