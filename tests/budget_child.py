"""The loop the instruction budget counts (tests/test_instruction_budget.py).

    python tests/budget_child.py CONFIGURATION

Starts a client on 100 flags of the shared corpus (``benchmarks/corpus.py``:
targets, rules, segments, rollouts, prerequisites) from an initializer (no
network), evaluates every flag for five contexts (the warm-up: every flag
compiled, every head made), then, between ``os.getpgrp()`` and
``os.getppid()`` (where callgrind zeroes and dumps its counters), every
flag once for 20 contexts it has not seen, with ``await
client.variation``, the garbage collector off (a collection counts what
the heap holds, not what an evaluation does). CONFIGURATION is ``plain`` (analytics events off),
``events`` (on, recorded; the delivery fails fast on a closed port, after
the window), ``hooks`` (events on and one pass-through hook), ``lens``
(events on and a flag lens configured, no request with a token) or
``lens-open`` (the same while another request, elsewhere, has a view
open from before the warm-up: the evaluation reads the lens's variable and
finds no view of its own).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import aioflags
import aioflags.lens
from aioflags.lens import LensConfig, mint


def _benchmark(name: str) -> Any:
    """A module of ``benchmarks/`` (untyped): the shared corpus, its helpers."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SECRET = "s" * 32
FLAGS = int(os.environ.get("BUDGET_FLAGS", "100"))
WARM = 5
MEASURED = 20


class PassThrough(aioflags.Hook):
    """A hook whose own stages return the data (the series runs)."""

    def before_evaluation(self, series_context: Any, data: Any) -> Any:
        return data

    def after_evaluation(self, series_context: Any, data: Any, detail: Any) -> Any:
        return data


async def main(configuration: str) -> None:
    corpus = _benchmark("corpus")
    data = corpus.make_corpus(FLAGS, n_segments=50)
    keys = list(data["flags"])
    raw = corpus.contexts(WARM + MEASURED)
    config = aioflags.Config(
        "sdk-key",
        data_system=_benchmark("_common").in_memory_system(data),
        send_events=configuration != "plain",
        events_uri="http://127.0.0.1:9",  # (discard: nothing listens)
        flush_interval=3600,
        diagnostic_opt_out=True,
        ready_timeout=600,
        hooks=[PassThrough()] if configuration == "hooks" else [],
        lens=LensConfig(secrets=[SECRET], allow=["*"])
        if configuration.startswith("lens")
        else None,
    )
    async with aioflags.Client(config) as client:
        if client.status is not aioflags.ProviderStatus.READY:
            raise SystemExit(f"not READY: {client.status}")
        if configuration == "lens-open":  # another request's view, open throughout
            # (before the warm-up: the window counts the steps that run while
            # a view is open, warmed, not their first runs after the swap)
            other = contextvars.Context()
            view = aioflags.lens.scope(client, mint(SECRET, {"flag-0": True}))
            other.run(view.__enter__)
        users = [aioflags.Context.from_dict(c) for c in raw]
        for user in users[:WARM]:
            for key in keys:
                await client.variation(key, user, False)
        gc.collect()
        gc.disable()  # (a collection's count is the heap's, not the evaluation's)
        os.getpgrp()  # the window opens
        for user in users[WARM:]:
            for key in keys:
                await client.variation(key, user, False)
        os.getppid()  # the window closes: callgrind has dumped its count
        # Nothing after the window is counted: closing the client (2 s for
        # its undelivered events) and the interpreter's teardown, run ~50
        # times slower under valgrind, would only cost the test's time.
        os._exit(0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
