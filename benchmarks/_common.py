"""Shared helpers for the benchmarks: the three clients loaded with one corpus, tables."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aioflags
import aioflags.sources
from aioflags._datasystem._payloads import fdv1_full

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterator


@contextlib.contextmanager
def server_process(*argv: str) -> Iterator[str]:
    """Run ``python *argv`` (a server that prints its URL last on its first
    line) and yield that URL; the process is stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()  # type: ignore[union-attr]


def in_memory_system(data: dict[str, Any]) -> aioflags.DataSystem:
    """A data system whose one initializer yields ``data`` (no network)."""

    async def initializer(
        ctx: aioflags.sources.SourceContext,
    ) -> AsyncGenerator[aioflags.sources.Basis, None]:
        yield aioflags.sources.Basis(change_set=fdv1_full(data))

    return aioflags.DataSystem.custom(initializers=[initializer])


def ld_sync_client(data: dict[str, Any]) -> Any:
    import ldclient
    from ldclient.config import Config
    from ldclient.feature_store import InMemoryFeatureStore
    from ldclient.versioned_data_kind import FEATURES, SEGMENTS

    store = InMemoryFeatureStore()
    store.init({FEATURES: data["flags"], SEGMENTS: data["segments"]})
    return ldclient.LDClient(
        Config("sdk-key", feature_store=store, use_ldd=True, send_events=False)
    )


async def ld_async_client(
    data: dict[str, Any],
    events_uri: str | None = None,
    hooks: list[Any] | None = None,
    **options: Any,
) -> Any:
    from ldclient.async_client import AsyncLDClient
    from ldclient.async_config import AsyncConfig
    from ldclient.async_feature_store import AsyncInMemoryFeatureStore
    from ldclient.versioned_data_kind import FEATURES, SEGMENTS

    store = AsyncInMemoryFeatureStore()
    await store.init({FEATURES: data["flags"], SEGMENTS: data["segments"]})
    events: dict[str, Any] = (
        {"send_events": False}
        if events_uri is None
        else {"send_events": True, "events_uri": events_uri}
    )
    client = AsyncLDClient(
        AsyncConfig(
            "sdk-key",
            feature_store=store,
            use_ldd=True,
            hooks=hooks or [],
            **events,
            **options,
        )
    )
    await client.start(start_wait=5)
    return client


def summary(samples: list[float]) -> tuple[float, float, float]:
    """Median, and the spread as (min, max)."""
    return statistics.median(samples), min(samples), max(samples)


def table(
    title: str, unit: str, rows: list[tuple[str, list[float]]], baseline: str
) -> str:
    """A plain-text table: median, min-max, and the ratio baseline/row."""
    base = statistics.median(dict(rows)[baseline])
    width = max(34, *(len(name) + 2 for name, _ in rows))
    lines = [
        f"\n{title}",
        f"  {'implementation':<{width}}{'median':>12}{'min':>10}{'max':>10}"
        f"   ratio vs {baseline}",
    ]
    for name, samples in rows:
        med, lo, hi = summary(samples)
        lines.append(
            f"  {name:<{width}}{med:>10.2f}{unit:>2}{lo:>10.2f}{hi:>10.2f}"
            f"   {base / med:6.1f}x"
        )
    return "\n".join(lines)


def callgrind_windows(
    folder: Path, script: str, child: list[object], windows: int, per_window: int
) -> list[int]:
    """Run ``script --child CHILD...`` under callgrind; instructions per call in each window.

    The child opens each of its ``windows`` windows with ``os.getpgrp()``
    and closes it with ``os.getppid()`` (callgrind zeroes, then dumps), as
    tests/test_instruction_budget.py counts; each window's main-thread
    ``summary:`` is divided by ``per_window``. ``child``'s items are passed
    as JSON (strings as they are). Exits, with the child's output, if
    valgrind is missing or a window was not dumped.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind not found (Debian: apt-get install valgrind)")
    out = folder / "callgrind.out"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    environment["PYTHONHASHSEED"] = "0"
    run = subprocess.run(
        [
            valgrind,
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            "--zero-before=os_getpgrp",
            "--dump-before=os_getppid",
            sys.executable,
            script,
            "--child",
            *(a if isinstance(a, str) else json.dumps(a) for a in child),
        ],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    counts = []
    for index in range(1, windows + 1):
        dump = out.with_name(f"callgrind.out.{index}-01")
        text = dump.read_text() if dump.exists() else ""
        found = re.search(r"^summary:\s*(\d+)", text, re.M)
        if run.returncode != 0 or found is None:
            raise SystemExit(run.stdout[-2000:] + run.stderr[-4000:])
        counts.append(int(found.group(1)) // per_window)
    return counts
