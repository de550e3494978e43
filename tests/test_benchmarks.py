"""Smoke runs of the benchmarks with tiny sizes, so they cannot rot (timings never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import executable

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "script", sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py"))
)
def test_benchmark_smoke(script: str) -> None:
    if script == "bench_scaling.py":
        executable()  # needs a redis-server: skipped without one (failed under CI)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ratio" in result.stdout or "differences" in result.stdout
