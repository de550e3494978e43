"""Guarded rollouts' attribution at full size: two guarded flags changed together, a fault in one.

    python benchmarks/bench_guard_attribution.py [--runs 50] [--seed 98] [--smoke]

Through a real client (``FlagData``, the default guard: errors and
latency, alpha 0.01, ``action="pin"``) on two 50/50 boolean rollouts "a"
and "b"; every request evaluates both in a scope; 1 % of requests fail,
and "a"'s treatment fails 5 % of its requests (the contract's 1 % -> 5 %);
latency is lognormal and the same in every arm. Time is a fake clock.

- independent bucketing (each flag by its own key): each run goes until
  "a" pins (or 40,000 requests), then 20,000 requests more; the contract
  wants "a" named and "b" never pinned.
- correlated bucketing (the same rollout seed: "a"'s treatment requests are
  "b"'s): 40,000 requests a run; the contract wants neither pinned, each
  saying it cannot tell.

Prints per scenario how often each guard pinned, said "cannot tell", and
the median requests until "a" pinned. Nothing is asserted here
(tests/test_guards_audit.py asserts at CI size).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioflags
from aioflags import Context, Guard
from aioflags.testing import FlagData

BASE, FAULT = 0.01, 0.04


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _data(seed: int | None) -> FlagData:
    data = FlagData()
    for key in ("a", "b"):
        data.update(
            data.flag(key)
            .boolean()
            .fallthrough_rollout({True: 50, False: 50}, seed=seed)
        )
    return data


async def _run(
    seed: int, *, bucket_seed: int | None, most: int, after: int
) -> tuple[str, str, int | None]:
    """One run: the states of "a" and "b" at its end, and the requests until "a" pinned."""
    guards = [Guard(key, control=False, action="pin") for key in ("a", "b")]
    config = aioflags.Config(
        data_system=_data(bucket_seed).data_system(), guards=guards
    )
    rng = random.Random(seed)
    pinned_at: int | None = None
    async with aioflags.Client(config) as client:
        clock = _Clock()
        client.guards.clock = clock
        for i in range(most):
            with contextlib.suppress(LookupError):
                async with client.guards.request():
                    user = Context.create(f"r{seed}-{i}")
                    a = await client.bool_variation("a", user, False)
                    await client.bool_variation("b", user, False)
                    clock.now += rng.lognormvariate(-4.0, 0.5)
                    if rng.random() < BASE + (FAULT if a else 0.0):
                        raise LookupError("failed")
            if pinned_at is None and client.guards.status["a"].state == "pinned":
                pinned_at = i + 1
                most = min(most, i + 1 + after)
            if i + 1 >= most:
                break
        status = client.guards.status
        return status["a"].state, status["b"].state, pinned_at


async def _scenario(
    name: str, runs: int, seed: int, bucket_seed: int | None, most: int, after: int
) -> str:
    ends = [
        await _run(seed * 10_000 + run, bucket_seed=bucket_seed, most=most, after=after)
        for run in range(runs)
    ]
    a_pinned = sum(1 for a, _, _ in ends if a == "pinned")
    b_pinned = sum(1 for _, b, _ in ends if b == "pinned")
    told = sum(1 for a, b, _ in ends if a == b == "cannot tell")
    times = [n for _, _, n in ends if n is not None]
    mid = f"{statistics.median(times):,.0f}" if times else "-"
    return (
        f"  {name:<26}{runs:>6}  'a' pinned {a_pinned}/{runs}, 'b' (healthy)"
        f" pinned {b_pinned}/{runs}, both 'cannot tell' {told}/{runs};"
        f" median requests until 'a' pinned {mid}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=98)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    # (the guards' WARNINGs are the figures below, counted: not printed)
    logging.getLogger("aioflags.guards").setLevel(logging.ERROR)
    most, after = 40_000, 20_000
    if args.smoke:
        args.runs, most, after = 2, 3_000, 200
    started = time.perf_counter()
    print(
        f"Guarded rollouts: attribution between two flags (seed {args.seed}; errors"
        f" {BASE:.0%}, 'a' treatment +{FAULT:.0%}; default guard, pin)"
    )
    print(f"  {'scenario':<26}{'runs':>6}  result")
    for name, bucket_seed in (
        ("independent bucketing", None),
        ("correlated (same seed)", 7),
    ):
        row = asyncio.run(
            _scenario(
                name,
                args.runs,
                args.seed,
                bucket_seed=bucket_seed,
                most=most,
                after=after,
            )
        )
        print(row, flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
