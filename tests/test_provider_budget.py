"""The OpenFeature provider's instructions above its evaluation, counted: a regression fails (issue 96).

Runs ``benchmarks/bench_of_provider_split.py`` (callgrind, as
tests/test_instruction_budget.py counts: the main thread's window, the
collector off) on its own flags and reads its ``above`` columns: a
provider call minus the snapshot's evaluation under it, with the same 50
context objects again and again (kept: issue 96's cache) and with a new
object per call (mapped each time, as OpenFeature's own client gives
them). The ceilings are the counts measured when they were set plus ~3 %
(issue 96's goal, at most 8,000 above the evaluation with the same
objects, is met: docs/benchmarks.md). Lower them when the provider gets
cheaper.

Needs valgrind: skipped without it, failed under CI (as
tests/test_instruction_budget.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        sys.version_info[:2] != (3, 11),
        reason="the ceilings are CPython 3.11's counts",
    ),
]

SCRIPT = (
    Path(__file__).resolve().parent.parent / "benchmarks" / "bench_of_provider_split.py"
)

#: Instructions per provider call above its evaluation: (the same
#: objects again, a new object per call), per flag of the script's own.
#: Measured 2026-11-29 (issue 96, branch provider3 over d908747; the worse
#: of two 1,000-call runs and a 300-call one: they move by a few dozen,
#: with the addresses the identity-keyed caches hash): 7,654 and 23,226;
#: 7,651 and 23,307; 7,473 and 41,332 (provider2's, over f442ac7: 12,679
#: and 28,295; 12,665 and 28,297; 11,877 and 46,161).
#: (A new object per call moves a little more with the window's length:
#: ~3 % more in 20 calls than in 1,000; this test counts 300.)
CEILINGS = {
    "own-ref": (7_900, 24_100),  # flagd, $ref
    "split-static": (7_900, 24_100),  # flagd, no targeting
    "split-launchdarkly": (7_700, 42_600),  # LaunchDarkly, one rule
}


def test_issue96_the_provider_stays_within_its_budget_above_the_evaluation() -> None:
    if shutil.which("valgrind") is None:
        why = "valgrind not found: install it (Debian: apt-get install valgrind)"
        if os.environ.get("CI") or os.environ.get("VALGRIND_TESTS_REQUIRED"):
            pytest.fail(f"{why} (required under CI)", pytrace=False)
        pytest.skip(why)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--evaluations", "300"],
        capture_output=True,
        text=True,
        timeout=800,
        env=environment,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    found = {}
    for line in run.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in CEILINGS:
            *_, above, _new, above_new = fields
            found[fields[0]] = (
                int(above.replace(",", "")),
                int(above_new.replace(",", "")),
            )
    assert set(found) == set(CEILINGS), run.stdout
    over = {
        key: (measured, CEILINGS[key])
        for key, measured in found.items()
        if measured[0] > CEILINGS[key][0] or measured[1] > CEILINGS[key][1]
    }
    assert not over, f"over budget (measured, ceiling): {over}"
    # (a window that counted nothing is a broken window)
    assert all(a > 1_000 and b > 1_000 for a, b in found.values()), found
