"""Ending a test's subprocess whatever happens: signalled, read to its end, never left running.

A process left running when its ``Popen`` is collected is a
``ResourceWarning`` (an error here) in whichever test runs next, and a
process that goes on using ports and CPU; a test that gives up on one
(its guard passed) kills it before it fails (issue 97).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

#: A safety net against a hang, never a timing: a process asked to end
#: takes longer than a few seconds to do so on a loaded machine.
GUARD = 60
#: The same for ``mypy --strict`` over generated code: a cold run (aioflags'
#: own types and its dependencies' checked first) took over 120 s at load 16
#: on two cores (issue 97). Tests that run it allow themselves more too
#: (``pytest.mark.timeout(MYPY_TEST_TIMEOUT)``).
MYPY_GUARD = 600
MYPY_TEST_TIMEOUT = 900
#: An HTTP client's timeout in the tests: a guard against a hang, not
#: httpx's 5 s default, which an answer on a loaded machine can outlast
#: (issue 97: an Evaluate of 2,000 flags at load 16).
HTTP_GUARD = 60


def mypy_strict(
    cwd: Path, cache: Path, *files: str
) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` over ``files`` in ``cwd``: an empty config, ``cache`` shared.

    ``cache`` is the session's (the ``mypy_cache`` fixture): aioflags' own
    types are checked once per test process, not once per test; mypy
    rechecks a module whose file changed, so no test meets a stale entry.
    """
    (cwd / "mypy.ini").write_text("[mypy]\n")
    return subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini"),
            *("--cache-dir", str(cache), *files),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=MYPY_GUARD,
        check=False,
    )


def ended(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    """Send ``sig``, then what it wrote on its pipes once it exited.

    If it has not exited within :data:`GUARD`, it is killed and waited for,
    and ``subprocess.TimeoutExpired`` is raised: a hang fails the test, and
    leaves nothing behind.
    """
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.communicate(timeout=GUARD)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
