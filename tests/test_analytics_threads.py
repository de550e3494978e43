"""Summary counts stay exact when many threads evaluate (docs/sync.md: any number)."""

from __future__ import annotations

import concurrent.futures
import random
import sys
import threading
from typing import TYPE_CHECKING

from aioflags import Config, Context
from aioflags._analytics._recorder import Recorder
from aioflags._datasystem._store import snapshot_from_data
from tests.analytics import flag

if TYPE_CHECKING:
    from collections.abc import Iterator

    from aioflags._evaluation._snapshot import FlagSnapshot

THREADS = 8
ROUNDS = 10_000  # per thread; each round evaluates four ways
BOUND = 60.0  # a safety net for waits on threads, never a synchronisation


def versions(rec: Recorder) -> Iterator[FlagSnapshot]:
    """Snapshots of ever newer versions of the same flags, recording into ``rec``."""
    version = 0
    while True:
        version += 1
        yield snapshot_from_data(
            {
                "plain": {**flag(), "key": "plain", "version": version},
                "tracked": {**flag(trackEvents=True), "key": "tracked", "version": 1},
                "child": {
                    **flag(prerequisites=[{"key": "plain", "variation": 0}]),
                    "key": "child",
                    "version": version,
                },
            }
        ).recording(rec)


def test_summary_counts_are_exact_with_threads_flag_changes_and_flushes() -> None:
    """N threads x M evaluations while flags change and flushes happen: all counted.

    Each round evaluates ``plain`` (the snapshot's inlined hot path),
    ``child`` (its prerequisite ``plain`` is counted too), ``tracked`` (the
    recorder's own path, with a full event) and a flag that does not exist.
    A short switch interval makes the threads interleave often enough that
    unguarded counters lose counts in every run.
    """
    rec = Recorder(Config("k", events_capacity=10**9), random.Random(0))
    snapshots = versions(rec)
    current = [next(snapshots)]
    counted: dict[str, int] = {}
    ready = threading.Barrier(THREADS + 1)

    def evaluate(n: int) -> None:
        context = Context.create(f"user-{n}")
        ready.wait(BOUND)
        for _ in range(ROUNDS):
            snapshot = current[0]
            snapshot.variation("plain", context, False)
            snapshot.bool_variation("child", context, False)
            snapshot.variation_detail("tracked", context, False)
            snapshot.variation("missing", context, False)

    def take() -> None:
        batch = rec.take()
        if batch is None:
            return
        for key, counter in batch.counters:
            counted[key] = counted.get(key, 0) + counter.none + sum(counter.counts)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            done = [pool.submit(evaluate, n) for n in range(THREADS)]
            ready.wait(BOUND)
            flushes = 0
            # Flush, and change the flags, for as long as the threads evaluate.
            while not all(future.done() for future in done):
                take()
                flushes += 1
                if flushes % 8 == 0:
                    current[0] = next(snapshots)
            for future in done:
                future.result(BOUND)  # re-raises what failed in a thread
    finally:
        sys.setswitchinterval(interval)
    take()

    assert flushes > 10  # the flushes did race with the evaluations
    total = THREADS * ROUNDS
    assert counted == {
        "plain": 2 * total,  # evaluated, and as the prerequisite of child
        "child": total,
        "tracked": total,
        "missing": total,
    }
