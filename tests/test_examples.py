"""The examples run as tests: README command 1 must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import RedisServer

#: Each example runs in a process of its own.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>``, which must exit 0."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_quickstart_tells_the_whole_story() -> None:
    result = run_example("quickstart.py")
    out = result.stdout
    assert "status: READY" in out
    assert "bob    new-checkout=True  (FALLTHROUGH)" in out  # the live change arrived
    assert (
        "FDv1 fallback engaged: True; status: READY; stream connections open: 0" in out
    )
    assert "[log] The flag service directed a fallback to FDv1" in out
    assert (
        "CONFIGURATION_CHANGED -> status READY ['banner-colour']" in out
    )  # via FDv1 polling
    assert "6. Closed: status NOT_READY, stream connections open: 0" in out
    assert result.stderr == ""


def test_redis_workers_share_one_redis(redis_server: RedisServer) -> None:
    out = run_example("redis_workers.py", redis_server.url).stdout.splitlines()
    assert out[0] == "1. writer: READY, streaming and writing to Redis"
    assert out[1:4] == [f"2. worker {n}: READY, new-checkout=False" for n in range(3)]
    assert sorted(out[5:8]) == [
        f"4. worker {n}: new-checkout=True (via Redis)" for n in range(3)
    ]
    assert out[8] == (
        "5. store status: "
        "DataStoreStatus(available=True, stale=False, malformed=frozenset())"
    )


def test_prometheus_metrics_from_status_events_and_a_hook() -> None:
    result = run_example("prometheus_metrics.py")
    out = [line.strip() for line in result.stdout.splitlines()]
    assert out == [
        "1. READY, four evaluations:",
        'aioflags_provider_status{status="READY"} 1.0',
        'aioflags_evaluations_total{flag="new-checkout",reason="FALLTHROUGH"} 3.0',
        'aioflags_evaluations_total{flag="new-checkout",reason="WRONG_TYPE"} 1.0',
        "2. a flag changed:",
        "aioflags_flags_changed_total 1.0",
        "3. the flag service is down:",
        'aioflags_provider_status{status="STALE"} 1.0',
        'aioflags_provider_events_total{event="STALE"} 1.0',
        'aioflags_data_source_state{state="interrupted"} 1.0',
        "aioflags_data_source_last_error_status_code 503.0",
    ]
    # The example configures no logging: the outage it stages still reaches
    # stderr (Python's last-resort handler, WARNING and above), and nothing else.
    errors = result.stderr.splitlines()
    assert errors, "the 503 was not reported"
    assert all(
        line.startswith("aioflags data source: Received HTTP error 503 for ")
        and line.endswith(" - will retry")
        for line in errors
    ), result.stderr
