"""Development sessions: tests on every supported Python, quick, lint, typecheck, docs, bench."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.error_on_missing_interpreters = False

SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]
#: The tests ``nox -s quick`` leaves out (markers: pyproject.toml): those
#: needing a redis-server or Chromium, the differential ones and the slow ones.
QUICK = "not (slow or redis or chromium or differential)"


def _expose_pyenv_versions() -> None:
    """pyenv shims only answer for active versions: activate every installed 3.10-3.13."""
    if shutil.which("pyenv") is None:
        return
    installed = subprocess.run(
        ["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False
    ).stdout.split()
    wanted = [v for v in installed if any(v.startswith(s + ".") for s in SUPPORTED)]
    if wanted:
        os.environ["PYENV_VERSION"] = ":".join(wanted)


_expose_pyenv_versions()


def _install(session: nox.Session, *groups: str) -> None:
    session.install("-U", "pip")
    args = [arg for group in groups for arg in ("--group", group)]
    session.install("-e", ".", *args)


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    """Run the test suite with coverage on one interpreter."""
    _install(session, "tests")
    session.run("coverage", "run", "-m", "pytest", "-n", "2", *session.posargs)
    session.run("coverage", "combine")
    session.run("coverage", "report")


@nox.session
def quick(session: nox.Session) -> None:
    """The unit tests in under a minute, no coverage (``nox -R -s quick`` to rerun)."""
    _install(session, "tests")
    session.run("python", "-m", "pytest", "-m", QUICK, *session.posargs)


#: Busy processes beside the suite in ``nox -s load``: on this project's
#: two-core machines, 12 keep the load average near 14 (issue 97).
LOAD_PROCESSES = 12


@nox.session
def load(session: nox.Session) -> None:
    """The README's test command with the machine kept busy (``-- N`` busy processes, default 12).

    A suite that is red under load teaches people to ignore red: every test
    must wait for events, never for a deadline that load can beat. This
    starts N busy-loop processes, runs the tests as the README does, prints
    the load average and the time, and stops the busy processes whatever
    happens.
    """
    _install(session, "tests")
    args = list(session.posargs)
    count = int(args.pop(0)) if args and args[0].isdigit() else LOAD_PROCESSES
    busy = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    began = time.monotonic()
    try:
        session.run("coverage", "run", "-m", "pytest", "-n", "2", *args)
        session.run("coverage", "combine", "-q")
        session.run("coverage", "report")
    finally:
        load_average = os.getloadavg()
        for process in busy:
            process.kill()
        for process in busy:
            process.wait()
        session.log(
            f"{count} busy processes; load average {load_average[0]:.1f} "
            f"(1 min), {load_average[1]:.1f} (5 min); "
            f"{time.monotonic() - began:.0f} s"
        )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the tests; pyright on tests/typing/."""
    _install(session, "typing")
    session.run("mypy")
    session.run("pyright", "--pythonpath", f"{session.bin}/python", "tests/typing/")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with LaunchDarkly's SDK (never a CI gate)."""
    _install(session, "tests")
    for script in sorted(Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session
def reference(session: nox.Session) -> None:
    """The guards' statistics against savvi and gbstats, live (the ``reference`` group).

    The suite reads their answers from tests/guard_references.json; this
    checks the record is what the libraries answer today, and
    ``nox -s reference -- write`` records it again.
    """
    _install(session, "tests", "reference")
    if session.posargs == ["write"]:
        session.run("python", "-m", "tests.guard_streams")
        return
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "tests/test_guards_stats.py",
        "-k",
        "recorded_references",
    )


@nox.session
def flagd_bench(session: nox.Session) -> None:
    """flagd's comparisons with flagd's own Python provider, in an environment of their own.

    ``nox -s flagd_bench`` smoke-runs them (the tests' environment cannot
    hold the reference: tests/benchmark_smoke.py); ``nox -s flagd_bench --
    --testbed /path/to/flagd-testbed`` runs them in full.
    """
    session.install("-U", "pip")
    session.install("-e", ".[flagd,openfeature]", "--group", "flagd-reference")
    for script in sorted(Path("benchmarks").glob("bench_flagd_*.py")):
        session.run("python", str(script), *(session.posargs or ["--smoke"]))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with ``mkdocs build --strict``."""
    _install(session, "docs")
    session.run(
        "mkdocs", "build", "--strict", "-d", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )
