"""The benchmark scripts' ``--smoke`` runs, all in one child process, off the test loop.

    python -m tests.benchmark_smoke bench_eval.py bench_regex.py ...

runs each script as ``python benchmarks/<script> --smoke`` would (as
``__main__``, its folder first on ``sys.path``, ``sys.argv`` set), one after
another in this one process, with its stdout and stderr captured; the child
processes a script starts are its own, as they would be. One process pays
the interpreter start and the imports of both SDKs once, not once per script.
As each script ends, one line goes to stdout: ``SMOKE`` and a JSON object
with its name, its exit status (what ``python <script>`` would have exited
with), its stdout and its stderr.

The tests (tests/test_benchmarks.py) read those lines. The conftest starts
this process when the session's tests start (``SmokeRun``) and runs the smoke
tests last: the scripts spend most of their time starting processes and
waiting on sockets, which the second core does while the other tests run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import runpy
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("bench_*.py"))
#: The scripts that start a redis-server (their tests carry the ``redis`` marker).
NEEDS_REDIS: frozenset[str] = frozenset({"bench_scaling.py"})
#: Seconds each script may take, as when each ran in a process of its own.
SCRIPT_TIMEOUT = 120
_MARKER = "SMOKE "


@dataclass(frozen=True)
class Result:
    """What ``python benchmarks/<script> --smoke`` exited with and printed."""

    returncode: int
    stdout: str
    stderr: str


# --------------------------------------------------------------- the child
def _exit_status(code: object) -> int:
    """What the interpreter exits with for ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1  # sys.exit("message"): the message goes to stderr


def _read(file: IO[str]) -> str:
    with file:
        file.seek(0)
        return file.read()


def run_script(script: str) -> Result:
    """Run one script's smoke mode in this process."""
    path = BENCHMARKS / script
    # Files, not StringIO: a script may hand its sys.stderr to a child process.
    stdout = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
    stderr = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(path), "--smoke"]
    sys.path.insert(0, str(BENCHMARKS))
    status = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(str(path), run_name="__main__")
            except SystemExit as exit_:
                status = _exit_status(exit_.code)
                if status and not isinstance(exit_.code, int):
                    print(exit_.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - the script's failure, reported
                status = 1
                traceback.print_exc()
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        # What one script turned off globally is not the next one's start.
        logging.disable(logging.NOTSET)
    return Result(status, _read(stdout), _read(stderr))


def main(scripts: list[str]) -> None:
    """Run ``scripts`` one after another; a ``SMOKE`` line as each ends."""
    for script in scripts:
        result = run_script(script)
        line = {"script": script, **result.__dict__}
        print(_MARKER + json.dumps(line), flush=True)


# -------------------------------------------------------------- the parent
def runnable(scripts: list[str], *, redis: bool) -> list[str]:
    """The scripts to run: those needing a redis-server only if there is one (``redis``).

    The parent decides once, with the answer the ``redis`` marker's skip
    gives (tests/redis_server.py's ``find``): a script left out has its test
    skipped (failed under CI), never failed for a redis-server that appeared,
    or was still being installed, while the scripts ran.
    """
    return [s for s in scripts if redis or s not in NEEDS_REDIS]


class SmokeRun:
    """The child process above, started now; its results once it has ended.

    It runs in a session of its own, so that stopping it also stops the
    servers and workers its scripts started (no process outlives the tests).

    ``shared``: a directory the session's pytest-xdist workers share. The
    first worker to claim it starts the run there (its output in a file of
    that directory); the others join it, reading that file once the owner's
    process has ended: one run per session, not one per worker (each run
    is half a minute of CPU). The owner lets its run end before it stops it.
    """

    def __init__(self, scripts: list[str], shared: Path | None = None) -> None:
        self.scripts = scripts
        self._results: dict[str, Result] | None = None
        self._process: subprocess.Popen[str] | None = None
        self._pid_file = None if shared is None else shared / "benchmark-smoke.pid"
        if shared is not None and not _claim(shared / "benchmark-smoke.claim"):
            self._output = (shared / "benchmark-smoke.out").open(encoding="utf-8")
            return  # joined: the owner's process writes the output
        if shared is None:
            self._output = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        else:
            self._output = (shared / "benchmark-smoke.out").open("w+", encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmark_smoke", *scripts],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        if self._pid_file is not None:
            temporary = self._pid_file.with_suffix(".tmp")
            temporary.write_text(str(self._process.pid))
            temporary.replace(self._pid_file)  # whole, or not there

    def results(self) -> dict[str, Result]:
        """Each finished script's result; waits for the process to end first.

        A script still running when the time is up (``SCRIPT_TIMEOUT`` per
        script) has no result: it and the scripts after it fail their tests.
        """
        if self._results is None:
            bound = SCRIPT_TIMEOUT * len(self.scripts)
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(bound)
                self.stop()
            else:
                _wait_for_pid(self._pid_file, bound)
            results = {}
            self._output.seek(0)
            for line in self._output:
                if line.startswith(_MARKER):
                    fields = json.loads(line.removeprefix(_MARKER))
                    script = fields.pop("script")
                    results[script] = Result(**fields)
            self._results = results
        return self._results

    def output(self) -> str:
        """Everything the process printed (for a failure message)."""
        self._output.seek(0)
        return self._output.read()

    def stop(self) -> None:
        """Stop the process and everything it started, if still running (the owner's)."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def close(self) -> None:
        """Stop, and release the output file (a shared run: once it has ended)."""
        shared = self._pid_file is not None and self._process is not None
        if shared:
            self.results()  # another worker may be reading it: let it end
        self.stop()
        self._output.close()
        if shared and self._pid_file is not None:
            # (a worker reading the output has it open: removing it is safe)
            shutil.rmtree(self._pid_file.parent, ignore_errors=True)


def _claim(path: Path) -> bool:
    """Whether this process is the first to claim ``path`` (created exclusively)."""
    try:
        path.touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def _wait_for_pid(pid_file: Path | None, bound: float) -> None:
    """Wait up to ``bound`` seconds for the process named in ``pid_file`` to end.

    The owner writes the file as it starts the run, at the session's start;
    the smoke tests run last, so it is there by then (if not, the run never
    started: the tests fail, naming no result). A pidfd is readable once
    the process has ended.
    """
    if pid_file is None or not pid_file.exists():
        return
    try:
        pidfd = os.pidfd_open(int(pid_file.read_text()))
    except ProcessLookupError:
        return  # ended and reaped
    try:
        select.select([pidfd], [], [], bound)
    finally:
        os.close(pidfd)


if __name__ == "__main__":
    main(sys.argv[1:])
