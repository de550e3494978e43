"""Event-loop stalls from `matches` patterns: a big pattern's first evaluation,
and the slow RE2 family's cost per evaluation.

    python benchmarks/bench_regex_stall.py [--repeat 3] [--smoke]

1. **First-evaluation stall**: a client starts on one flag whose `matches`
   pattern is a 4 kB or 100 kB alternation of emails; a probe task measures
   the event loop's longest stall (a 1 ms sleep's lateness) from the start
   through `wait_ready()` and the first `await client.variation(...)`. Each
   repeat has a pattern of its own (no process-wide cache helps).
2. **The slow RE2 family**: case-insensitive counted repeats of classes
   (`(?i)[a-z0-9]{1,1000}\\.` ...), whose RE2 translation has thousands of
   instructions, against 4,000-character values that make RE2's DFA run out
   of memory (words of letters mixed with the Kelvin sign and the long s,
   random non-ASCII text): ms per evaluation through `FlagSnapshot.variation`,
   beside Python's `re.search` (what LaunchDarkly's SDK runs).

To measure another checkout (e.g. the main branch, before the change):
`PYTHONPATH=/path/to/checkout python benchmarks/bench_regex_stall.py`; the
first line names the aioflags measured. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import time
from typing import Any

import anyio
from _common import in_memory_system, table

import aioflags
from aioflags._datasystem._store import snapshot_from_data

SLOW_FAMILY = [
    r"(?i)[a-z0-9]{1,1000}\.",
    r"(?i)[^x]{1000}y",
    r"(?i)[a-z]{1000}",
]


def flag(key: str, pattern: str) -> dict[str, Any]:
    return {
        "key": key,
        "version": 1,
        "on": True,
        "variations": [False, True],
        "offVariation": 0,
        "fallthrough": {"variation": 0},
        "rules": [
            {
                "id": "m",
                "clauses": [
                    {"attribute": "email", "op": "matches", "values": [pattern]}
                ],
                "variation": 1,
            }
        ],
        "salt": "",
    }


def emails(size: int, tag: str) -> str:
    """An alternation of escaped emails, about ``size`` characters long."""
    parts: list[str] = []
    total = 0
    while total < size:
        parts.append(f"user{len(parts)}-{tag}@example\\.com")
        total += len(parts[-1]) + 1
    return "^(" + "|".join(parts) + ")$"


async def first_evaluation_stall(pattern: str) -> float:
    """The longest event-loop stall (ms) from start to the first evaluation."""
    data = {"flags": {"f": flag("f", pattern)}, "segments": {}}
    client = aioflags.Client(
        aioflags.Config(data_system=in_memory_system(data), send_events=False)
    )
    worst = 0.0
    done = anyio.Event()

    async def probe() -> None:
        nonlocal worst
        while not done.is_set():
            start = time.perf_counter()
            await anyio.sleep(0.001)
            worst = max(worst, time.perf_counter() - start - 0.001)

    ctx = aioflags.Context.create("u", attributes={"email": "user1-x@example.com"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe)
        await anyio.sleep(0.01)  # the probe runs
        async with client:
            await client.wait_ready()
            await client.variation("f", ctx, False)
        done.set()
    return worst * 1e3


def words(alphabet: str, size: int, rng: random.Random) -> str:
    out: list[str] = []
    total = 0
    while total < size:
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 1500)))
        out.append(word)
        total += len(word) + 1
    return " ".join(out)[:size]


def once(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1e3


def slow_family(size: int, repeat: int) -> str:
    rng = random.Random(1)
    values = {
        "words with K, k, s, long s and the Kelvin sign": words(
            "kK\u212as\u017fS", size, rng
        ),
        "random non-ASCII text": "".join(
            chr(rng.randint(32, 0x3000)) for _ in range(size)
        ),
    }
    flags = {f"f{i}": flag(f"f{i}", p) for i, p in enumerate(SLOW_FAMILY)}
    snapshot = snapshot_from_data(flags)
    out = []
    for i, pattern in enumerate(SLOW_FAMILY):
        rows: dict[str, list[float]] = {"aioflags": [], "Python re.search": []}
        for value in values.values():
            ctx = aioflags.Context.create("u", attributes={"email": value})
            compiled = re.compile(pattern)
            for _ in range(repeat):
                rows["aioflags"].append(once(snapshot.variation, f"f{i}", ctx, None))
                rows["Python re.search"].append(once(compiled.search, value))
        out.append(
            table(
                f"{pattern} against {size}-character values"
                f" ({' / '.join(values)}): ms per evaluation",
                "ms",
                list(rows.items()),
                "Python re.search",
            )
        )
    return "\n".join(out)


def run(sizes: list[int], family_size: int, repeat: int) -> str:
    logging.getLogger("aioflags").setLevel(logging.ERROR)
    out = [f"aioflags from {aioflags.__file__}"]
    anyio.run(first_evaluation_stall, "^warm-up")  # imports, first-use tables
    floor = [anyio.run(first_evaluation_stall, "^ab") for _ in range(repeat)]
    for size in sizes:
        samples = [
            anyio.run(first_evaluation_stall, emails(size, f"r{i}"))
            for i in range(repeat)
        ]
        out.append(
            table(
                f"{size // 1000} kB pattern: longest event-loop stall, start to first"
                " evaluation",
                "ms",
                [
                    (f"aioflags, the {size // 1000} kB pattern", samples),
                    ("aioflags, a 3-character pattern", floor),
                ],
                "aioflags, a 3-character pattern",
            )
        )
    out.append(slow_family(family_size, repeat))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, to keep the script from rotting",
    )
    args = parser.parse_args()
    if args.smoke:
        print(run([1_000], 200, 1))
    else:
        print(run([4_000, 100_000], 4_000, args.repeat))


if __name__ == "__main__":
    main()
