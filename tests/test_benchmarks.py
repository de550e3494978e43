"""Smoke runs of the benchmarks with tiny sizes, so they cannot rot (timings never asserted).

The scripts run in one child process, started when the session's tests start
(tests/benchmark_smoke.py, the hooks in tests/conftest.py); each test checks
one script's exit status and output, as if it had been run on its own.
"""

from __future__ import annotations

import pytest

from tests.benchmark_smoke import SCRIPT_TIMEOUT, SCRIPTS, SmokeRun
from tests.redis_server import executable


# The smoke runs may still be going when the first of these tests starts.
@pytest.mark.timeout(SCRIPT_TIMEOUT * len(SCRIPTS) + 60)
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_smoke(script: str, smoke_run: SmokeRun) -> None:
    if script == "bench_scaling.py":
        executable()  # needs a redis-server: skipped without one (failed under CI)
    result = smoke_run.results().get(script)
    assert result is not None, f"{script} did not finish:\n{smoke_run.output()}"
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ratio" in result.stdout or "differences" in result.stdout
