"""The evaluation's instruction budget, counted in CI: a regression fails the build (issue 76).

callgrind counts ``tests/budget_child.py``'s window: 2,000 ``await
client.variation`` (100 flags of the shared corpus, 20 new contexts),
the collector off, on the main thread alone (:func:`count`). A count
repeats to ~0.1 % from run to run and from one checkout's path to
another's, whatever else the machine does (CPython 3.11: other versions
count otherwise, and are skipped). The ceilings are the counts measured
when they were set, plus ~2 %: an evaluation that grows by ~2 % fails
here. They are budgets, not goals: lower them when the code gets
cheaper, raise one only with a reason in the commit that does. (lens.md's
"a lens no request uses costs at most 3 %" is pinned by behaviour, in
tests/test_lens.py: its stage is in no evaluation then. Issue 86's G9, a
request with no token while another holds one, is pinned both ways: one
read of the lens's variable per evaluation, tests/test_lens_edges.py, and
at most 3 % over events on, counted here.)

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
#: issue 87 (typed heads, the per-flag code, the one-hook stage; the main
#: thread's count: 7,794, 10,399 and 14,128), plus ~2 % for the checkout's
#: path (the count moves ~1 % with where the tree lies).
CEILINGS = {
    "plain": 7_950,  # analytics events off
    "events": 10_650,  # events on: each evaluation recorded
    "hooks": 14_400,  # events on and one pass-through hook
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
    """Instructions per evaluation in the child's window, for ``configuration``.

    The main thread's own count, from its ``summary:`` (what it executed
    between the zero and the dump). ``--zero-before`` zeroes the current
    thread's costs alone, so a dump of every thread together, or the
    ``totals:`` of its cost lines, also carried costs from before the window
    (the SDK's worker threads' imports and CA bundle, call sites that were
    never zeroed): 4.7-7.3 million more in a 21-million window, moved by
    timing and by where the checkout lies (issue 86, G9).
    """
    run = subprocess.run(
        [
            _valgrind(),
            "--tool=callgrind",
            "--separate-threads=yes",
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
    main = out.parent / f"{out.name}.1-01"  # (the window's dump, thread 1)
    assert run.returncode == 0 and main.exists(), (
        run.stdout[-2000:] + run.stderr[-3000:]
    )
    summary = re.search(r"^summary:\s*(\d+)", main.read_text(), re.M)
    assert summary is not None
    return int(summary.group(1)) // EVALUATIONS


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


def test_a_view_held_elsewhere_costs_an_evaluation_at_most_3_percent(
    tmp_path: Path,
) -> None:
    """G9: while another request holds a lens view, an evaluation costs at most 3 % more.

    lens.md's budget for a request without a token, counted in one
    checkout against events on (``lens-open``: the other request's view
    open from before the warm-up; +9.4 % when every evaluation ran the
    lens's stage). ``events`` repeats to ~0.03 % (10,414-10,417);
    ``lens-open`` moves by up to 0.3 % from run to run, upwards (10,698 in
    most runs, on c462060 as now; 10,716 and 10,728 seen, the last in CI's
    suite under load: +3.0 %), so it is the lesser of two runs.
    """
    events = count("events", tmp_path / "events.out")
    lens_open = min(
        count("lens-open", tmp_path / f"lens-open-{run}.out") for run in (1, 2)
    )
    assert lens_open <= events * 1.03, (
        f"lens-open: {lens_open:,} instructions per evaluation, events on "
        f"{events:,}: +{(lens_open / events - 1) * 100:.1f} % (lens.md: at most 3 %)"
    )
