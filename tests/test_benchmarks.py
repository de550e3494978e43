"""Smoke runs of the benchmarks with tiny sizes, so they cannot rot (timings never asserted).

The scripts run in one child process, started when the session's tests start
(tests/benchmark_smoke.py, the hooks in tests/conftest.py); each test checks
one script's exit status and output, as if it had been run on its own.
"""

from __future__ import annotations

import pytest

from tests.benchmark_smoke import (
    NEEDS_REDIS,
    SCRIPT_TIMEOUT,
    SCRIPTS,
    SmokeRun,
    runnable,
)

#: What a script with no counterpart in LaunchDarkly's SDK prints instead.
OWN_FIGURES = {
    "bench_console.py": ("median",),
    "bench_serve_posts.py": ("worst of",),
    "bench_plane_liveness.py": ("worse of",),
    # (the guards' statistics: simulated alarms and power, no SDK to race)
    "bench_guards.py": ("alarms",),
    # (what a guard costs, against aioflags without one)
    "bench_guard_cost.py": ("instructions",),
    # (attribution between two guarded flags, through the client)
    "bench_guard_attribution.py": ("pinned",),
    # (guards end to end: the pin's figures under uvicorn's workers)
    "bench_guards_e2e.py": ("requests/s reached",),
    # (aioflags' provider, step by step: nothing to compare with)
    "bench_of_provider_split.py": ("per provider call",),
}


# The smoke runs may still be going when the first of these tests starts.
# Without a redis-server, bench_scaling.py is not run and its test is skipped
# (failed under CI) by its marker (tests/conftest.py).
@pytest.mark.slow
@pytest.mark.timeout(SCRIPT_TIMEOUT * len(SCRIPTS) + 60)
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(s, marks=pytest.mark.redis) if s in NEEDS_REDIS else s
        for s in SCRIPTS
    ],
)
def test_benchmark_smoke(script: str, smoke_run: SmokeRun) -> None:
    result = smoke_run.results().get(script)
    assert result is not None, f"{script} did not finish:\n{smoke_run.output()}"
    assert result.returncode == 0, result.stdout + result.stderr
    # A comparison prints its ratio (or its differences); the console and
    # serve's memory have no counterpart in LaunchDarkly's SDK and print
    # their own figures.
    expected = OWN_FIGURES.get(script, ("ratio", "differences"))
    assert any(word in result.stdout for word in expected), result.stdout


def test_without_a_redis_server_the_scripts_needing_one_are_not_run() -> None:
    assert set(SCRIPTS) > NEEDS_REDIS
    assert set(runnable(SCRIPTS, redis=False)) == set(SCRIPTS) - NEEDS_REDIS
    assert runnable(SCRIPTS, redis=True) == SCRIPTS
