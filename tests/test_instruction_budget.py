"""The evaluation's instruction budget, counted in CI: a regression fails the build (issue 76).

callgrind counts ``tests/budget_child.py``'s window: 2,000 ``await
client.variation`` (100 flags of the shared corpus, 20 new contexts),
the collector off. A count is the same from run to run for one
interpreter and checkout, whatever else the machine does (CPython 3.11:
other versions count otherwise, and are skipped). The ceilings are the
counts measured when they were set, plus a margin for where the checkout
lies (below): an evaluation that grows by ~10 % fails here. They are
budgets, not goals: lower them when the code gets cheaper, raise one only
with a reason in the commit that does. (lens.md's "a lens no request uses
costs at most 3 %" is pinned by behaviour, in tests/test_lens.py: its
stage is in no evaluation then; 3 % is within what layout moves a count.
So is issue 86's G9, a request with no token while another holds one:
no lens stage runs for it, tests/test_lens_edges.py; its figure, counted
with ``budget_child.py lens-open``, is in docs/benchmarks.md.)

Needs valgrind: skipped without it, failed under CI (``CI`` or
``VALGRIND_TESTS_REQUIRED`` set; ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    # (valgrind runs the child ~50 times slower: 15-60 s each, by the load)
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        sys.version_info[:2] != (3, 11),
        reason="the ceilings are CPython 3.11's counts",
    ),
]

HERE = Path(__file__).resolve().parent
EVALUATIONS = 100 * 20

#: Instructions per ``await client.variation``: the most measured at
#: issue 76's first slice, plus 5 %. Where the checkout lies moves a count
#: by up to ~6 % (the code's file names shift the heap's layout): three
#: paths counted 10,143-10,533, 13,117-13,924 and 19,574-20,448.
CEILINGS = {
    "plain": 11_100,  # analytics events off
    "events": 14_650,  # events on: each evaluation recorded
    "hooks": 21_500,  # events on and one pass-through hook
}


def _valgrind() -> str:
    path = shutil.which("valgrind")
    if path is None:
        why = "valgrind not found: install it (Debian: apt-get install valgrind)"
        if os.environ.get("CI") or os.environ.get("VALGRIND_TESTS_REQUIRED"):
            pytest.fail(f"{why} (required under CI)", pytrace=False)
        pytest.skip(why)
    return path


def _uncovered() -> dict[str, str]:
    """This environment, but for coverage's: the child is counted, not measured.

    (``coverage run``'s ``patch = subprocess`` measures every child
    through ``COVERAGE_PROCESS_CONFIG``: its tracer would be counted too.)
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("COVERAGE_")
    }
    environment["PYTHONHASHSEED"] = "0"
    return environment


def count(configuration: str, out: Path) -> int:
    """Instructions per evaluation in the child's window, for ``configuration``."""
    run = subprocess.run(
        [
            _valgrind(),
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--zero-before=os_getpgrp",
            "--dump-before=os_getppid",
            sys.executable,
            str(HERE / "budget_child.py"),
            configuration,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_uncovered(),
        check=False,
    )
    dumps = sorted(out.parent.glob(f"{out.name}.*"))
    assert run.returncode == 0 and dumps, run.stdout[-2000:] + run.stderr[-3000:]
    totals = re.search(r"^totals:\s*(\d+)", dumps[0].read_text(), re.M)
    assert totals is not None
    return int(totals.group(1)) // EVALUATIONS


@pytest.mark.parametrize("configuration", sorted(CEILINGS))
def test_an_evaluation_stays_within_its_instruction_budget(
    configuration: str, tmp_path: Path
) -> None:
    measured = count(configuration, tmp_path / "callgrind.out")
    ceiling = CEILINGS[configuration]
    assert measured <= ceiling, (
        f"{configuration}: {measured:,} instructions per evaluation, over the "
        f"budget of {ceiling:,} (tests/test_instruction_budget.py)"
    )
    # (a window that counted nothing, or far less, is a broken window)
    assert measured > ceiling // 2, measured
