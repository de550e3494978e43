"""Ending a test's subprocess whatever happens: signalled, read to its end, never left running.

A process left running when its ``Popen`` is collected is a
``ResourceWarning`` (an error here) in whichever test runs next, and a
process that goes on using ports and CPU; a test that gives up on one
(its guard passed) kills it before it fails (issue 97).
"""

from __future__ import annotations

import signal
import subprocess

#: A safety net against a hang, never a timing: a process asked to end
#: takes longer than a few seconds to do so on a loaded machine.
GUARD = 60


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
