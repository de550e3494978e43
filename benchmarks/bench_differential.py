"""A large seeded differential run: aioflags vs LaunchDarkly's Python SDK on random data.

    python benchmarks/bench_differential.py [--cases 3000] [--seed 0] [--smoke]

The test suite runs 150 cases; this runs many more. It prints the count of cases,
evaluations and all-flags comparisons, and every difference found (exit status 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reference import Generator, compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.cases = 5
    logging.disable(logging.CRITICAL)
    start = time.perf_counter()
    problems: list[str] = []
    evaluations = 0
    for seed in range(args.seed, args.seed + args.cases):
        case = Generator(seed).case()
        evaluations += (len(case.flags) + 1) * len(case.contexts)
        problems += [f"seed {seed}: {p}" for p in compare(case)]
    elapsed = time.perf_counter() - start
    print(
        f"\ndifferential: {args.cases} random cases, {evaluations} evaluations and "
        f"{3 * args.cases * 12} all-flags states compared in {elapsed:.1f} s: "
        f"{len(problems)} differences"
    )
    for problem in problems[:20]:
        print(" ", problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
