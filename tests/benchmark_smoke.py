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
import fcntl
import json
import logging
import os
import runpy
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
#: flagd's comparisons need flagd's own provider, which cannot share the
#: tests' environment (its protobuf floor is above what the tests' pinned
#: grpcio-tools allows): `nox -s flagd_bench` smoke-runs them in their own.
OWN_ENVIRONMENT: frozenset[str] = frozenset(
    p.name for p in BENCHMARKS.glob("bench_flagd_*.py")
)
SCRIPTS = sorted(
    p.name for p in BENCHMARKS.glob("bench_*.py") if p.name not in OWN_ENVIRONMENT
)
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

    ``shared``: a fresh directory the session's pytest-xdist workers share
    (the controller makes it, and removes it at the end). One run per
    session, not one per worker (each run is half a minute of CPU): the
    first worker to lock the directory's lock file, and to create its output
    file, starts the run and hands the lock to it (the child inherits the
    locked descriptor, which the worker then closes: the lock is released
    when the run ends, however it ends). Any other worker joins it: it
    waits for the lock, then reads the output. The owner lets its run end
    before it stops it, as another worker may be waiting for it.
    """

    def __init__(self, scripts: list[str], shared: Path | None = None) -> None:
        self.scripts = scripts
        self._results: dict[str, Result] | None = None
        self._process: subprocess.Popen[str] | None = None
        self._shared = shared
        self._output: IO[str] | None = None
        locked = None
        if shared is None:
            self._output = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        else:
            locked = _own(shared)
            if locked is None:
                return  # joined: another worker's run writes the output
            self._output = (shared / _OUTPUT).open("w+", encoding="utf-8")
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.benchmark_smoke", *scripts],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                pass_fds=() if locked is None else (locked,),
            )
        finally:
            if locked is not None:
                os.close(locked)  # the child holds the lock now

    def results(self) -> dict[str, Result]:
        """Each finished script's result; waits for the run to end first.

        A script still running when the time is up (``SCRIPT_TIMEOUT`` per
        script) has no result: it and the scripts after it fail their tests.
        A joining worker waits for the owner's run, whose owner bounds it.
        """
        if self._results is None:
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(SCRIPT_TIMEOUT * len(self.scripts))
                self.stop()
            elif self._shared is not None:
                _wait_unlocked(self._shared / _LOCK)
            results = {}
            for line in self.output().splitlines():
                if line.startswith(_MARKER):
                    fields = json.loads(line.removeprefix(_MARKER))
                    script = fields.pop("script")
                    results[script] = Result(**fields)
            self._results = results
        return self._results

    def output(self) -> str:
        """Everything the process printed (for a failure message)."""
        if self._output is None:  # joined: the owner's file, once there
            if self._shared is None or not (self._shared / _OUTPUT).exists():
                return ""
            self._output = (self._shared / _OUTPUT).open(encoding="utf-8")
        self._output.seek(0)
        return self._output.read()

    def stop(self) -> None:
        """Stop the process and everything it started, if still running (the owner's)."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def close(self) -> None:
        """Stop (a shared run: once it has ended), and release the output file."""
        try:
            if self._shared is not None and self._process is not None:
                self.results()  # another worker may be waiting for it: let it end
        finally:
            self.stop()
            if self._output is not None:
                self._output.close()


_LOCK = "benchmark-smoke.lock"
_OUTPUT = "benchmark-smoke.out"


def _own(shared: Path) -> int | None:
    """The locked lock file's descriptor if this worker is to start the run, else None.

    Locked first, then the output file created exclusively: a worker that
    finds the lock taken, or the run already made (and over), joins it.
    """
    locked = os.open(shared / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(locked, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (shared / _OUTPUT).touch(exist_ok=False)
    except (BlockingIOError, FileExistsError):
        os.close(locked)
        return None
    return locked


def _wait_unlocked(lock: Path) -> None:
    """Wait until the run holding ``lock`` has ended (the owner made it before joining was possible)."""
    with lock.open("rb") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_SH)  # released with the run


if __name__ == "__main__":
    main(sys.argv[1:])
