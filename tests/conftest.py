"""Shared fixtures for aioflags' own tests."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import inspect
import os
import shutil
import socket
import sys
import tempfile
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings

from tests import benchmark_smoke, sources
from tests.redis_server import RedisServer, executable
from tests.redis_server import find as find_redis_server

# No test asserts a wall-clock time, Hypothesis' per-example deadline (200 ms)
# included: on a loaded CI machine one example of the bucketing test took
# 650 ms. Profiles apply to every @given that does not set its own deadline.
settings.register_profile("aioflags", deadline=None)
settings.load_profile("aioflags")

#: Hosts a test may connect to: the loopback interface only.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

# Extension modules a test may import first under pytester, loaded before
# any test: pytester puts sys.modules back as it was when its test ends,
# and an extension module dropped that way and imported (initialised)
# again by a later test can take the process down (_multiprocessing's,
# dropped after a sample imported hypercorn: a segmentation fault reading a
# SemLock attribute as it was imported again; tests/test_docs.py).
importlib.import_module("multiprocessing.synchronize")
with contextlib.suppress(ImportError):  # (the flagd extra's, where installed)
    importlib.import_module("grpc._cython.cygrpc")


# --------------------------------------------------------- asyncio debug mode
def _load_per_core() -> float:
    """The last minute's load average per CPU core, at least 1 (1 where unknown)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - (none on this platform)
        return 1.0
    return max(1.0, load / (os.cpu_count() or 1))


class DebugLoop(asyncio.SelectorEventLoop):
    """asyncio's debug mode (``asyncio_debug = true``) without its source tracebacks.

    Every check of the debug mode reads ``loop._debug``, which pytest-asyncio
    sets: a call from another thread raises, a blocking socket is refused, a
    slow callback is logged, a coroutine's origin is tracked for "never
    awaited" (CPython 3.10 to 3.13 alike). What reads ``get_debug()`` is only
    diagnostics: transports' DEBUG logs, and the stack each Handle, Future and
    Task records where it is created, which the C Future takes with
    ``traceback.extract_stack()`` (the whole pytest stack, each line looked up,
    each file stat'ed): ~40% of the CPU time of the asyncio tests. Run with
    ``--asyncio-source-tracebacks`` to get them back when debugging.
    """

    def __init__(self) -> None:
        super().__init__()
        # A callback is "slow" from 1 s, not asyncio's 0.1 s: on CI's loaded
        # 2-core machine a 0.1-0.3 s step is the machine, not a blocked loop,
        # and its WARNING lands in the log capture of whichever test runs
        # then. A step that blocks the loop for a second is still named.
        # Relative to the machine: a second of an idle machine's time, as
        # long as the runnable processes per core make it (issue 97: at
        # load 15 on two cores a step of the SDK's took 2.5 s).
        self.slow_callback_duration = 1.0 * _load_per_core()

    def get_debug(self) -> bool:
        """False: no source tracebacks, no transport DEBUG logs (the checks stay on)."""
        return False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--asyncio-source-tracebacks",
        action="store_true",
        help="asyncio's full debug mode: record where each handle, future and "
        "task was created (slower; see DebugLoop in tests/conftest.py)",
    )


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    """The event loop of pytest-asyncio's tests."""
    del item
    if config.getoption("asyncio_source_tracebacks"):
        return {"debug": asyncio.SelectorEventLoop}
    return {"debug": DebugLoop}


# ------------------------------------- Python 3.10: the taskgroup backport
def _let_anyio_see_backported_waits() -> None:
    """On Python 3.10, make Hypercorn's TaskGroup backport visible to anyio (this suite only).

    Hypercorn uses the ``taskgroup`` backport there (a ``FlagServer``'s
    HTTP server); its tasks wait on a ``WaitTaskRescheduled`` where asyncio
    has a future, and ``anyio.wait_all_tasks_blocked()`` asks every task's
    waiter ``done()``, which it lacks: a test waiting for the tasks to
    block fails with an AttributeError. A task waiting on one is blocked:
    ``done()`` is False. This suite's own workaround: the pytest plugin
    shipped to users patched it in every session until issue 77 (a library
    changes nothing global its user did not ask for), and docs/testing.md
    tells users of Python 3.10 how to do the same.
    ``tests/test_client.py``'s
    ``test_waiting_returns_when_the_client_closes_meanwhile`` pins it on 3.10.
    """
    if not _BACKPORTED_TASKGROUP:
        return
    try:  # pragma: no cover - Python 3.10 only
        waits = importlib.import_module("taskgroup.install").WaitTaskRescheduled
    except (ImportError, AttributeError):  # pragma: no cover
        return
    if not hasattr(waits, "done"):  # pragma: no cover
        waits.done = lambda self: False


#: Python 3.10: Hypercorn's asyncio TaskGroup is the ``taskgroup`` backport
#: (a variable, not ``sys.version_info``: mypy checks both branches).
_BACKPORTED_TASKGROUP: bool = sys.version_info < (3, 11)


_let_anyio_see_backported_waits()


# ----------------------------------------- what a test needs installed
#: tests/chromium.py, by name: importing it imports Playwright.
_CHROMIUM = "tests.chromium"


def _from_chromium(value: object) -> bool:
    """Whether a module global is tests/chromium.py or one of its names."""
    if inspect.ismodule(value):
        return value.__name__ == _CHROMIUM
    return getattr(value, "__module__", None) == _CHROMIUM


def _uses_chromium(module: ModuleType | None) -> bool:
    return module is not None and any(map(_from_chromium, vars(module).values()))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what each test needs installed; the benchmark smoke tests last.

    ``redis``: the test uses the ``redis_server`` fixture. ``chromium``: its
    module imports from tests/chromium.py. A new test gets its marker by
    what it uses, before ``-m`` selects (hence ``tryfirst``). The smoke
    tests' scripts run meanwhile, in the background.
    """
    for item in items:
        if "redis_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)
        if _uses_chromium(getattr(item, "module", None)):
            item.add_marker(pytest.mark.chromium)
    items.sort(key=lambda item: _smoke_script(item) is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``redis`` or ``chromium`` is skipped (failed under CI) without it.

    Skipped with a one-line reason saying what to install; failed instead
    when ``CI``, ``REDIS_TESTS_REQUIRED`` or ``CHROMIUM_TESTS_REQUIRED`` is
    set (.ci/run sets the last two).
    """
    if item.get_closest_marker("redis"):
        executable()
    if item.get_closest_marker("chromium"):
        from tests import chromium  # Playwright: for the browser tests only

        chromium.executable()


# ------------------------------------------------------ benchmark smoke runs
#: The session's benchmark smoke runs (tests/benchmark_smoke.py), once started.
SMOKE_RUN = pytest.StashKey[benchmark_smoke.SmokeRun]()


def _smoke_script(item: pytest.Item) -> str | None:
    """The benchmark script a smoke test item checks, or None for any other test."""
    if not (
        isinstance(item, pytest.Function)
        and item.originalname == "test_benchmark_smoke"
        and item.path.name == "test_benchmarks.py"
    ):
        return None
    script = item.callspec.params["script"]
    assert isinstance(script, str)
    return script


def _runnable(scripts: list[str]) -> list[str]:
    """The smoke runs to start (without a redis-server, not those needing one)."""
    return benchmark_smoke.runnable(scripts, redis=find_redis_server() is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Start the selected benchmark smoke runs as the tests start; stop them at the end."""
    scripts = [s for s in map(_smoke_script, session.items) if s is not None]
    if session.config.option.collectonly:  # nothing will run
        scripts = []
    scripts = _runnable(scripts)
    if scripts:
        session.stash[SMOKE_RUN] = benchmark_smoke.SmokeRun(
            scripts, _shared_by_workers(session.config)
        )
    try:
        return (yield)
    finally:
        if scripts:
            session.stash[SMOKE_RUN].close()


#: The directory the controller makes for its workers' benchmark smoke run.
SMOKE_DIR = pytest.StashKey[Path]()


def _shared_by_workers(config: pytest.Config) -> Path | None:
    """The directory this session's pytest-xdist workers share (None: no workers)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    return Path(workerinput["aioflags_smoke_dir"])


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist's controller: each worker gets the session's fresh smoke directory."""
    config = node.config
    if SMOKE_DIR not in config.stash:
        config.stash[SMOKE_DIR] = Path(tempfile.mkdtemp(prefix="aioflags-smoke-"))
    node.workerinput["aioflags_smoke_dir"] = str(config.stash[SMOKE_DIR])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker under ``coverage run`` saves its data now, not at its exit.

    The controller kills a worker still running 10 s after it was asked to
    exit (xdist's ``EXIT_TIMEOUT``), and coverage saves at exit: on a busy
    machine a worker's exit took longer, and the README's command reported
    89 % with every test passed (issue 97's ``.ci/run`` under load).
    """
    if getattr(session.config, "workerinput", None) is None:
        return
    try:
        import coverage
    except ImportError:  # (not in the tests group: nothing to save)
        return
    measuring = coverage.Coverage.current()
    if measuring is not None:
        measuring.stop()
        measuring.save()


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller removes the smoke directory once its workers are done."""
    shared = config.stash.get(SMOKE_DIR, None)
    if shared is not None:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for this test process's runs of ``processes.mypy_strict`` (issue 97)."""
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.fixture(scope="session")
def smoke_run(request: pytest.FixtureRequest) -> Iterator[benchmark_smoke.SmokeRun]:
    """The session's benchmark smoke runs (started now if the session did not)."""
    run = request.session.stash.get(SMOKE_RUN, None)
    if run is not None:
        yield run
        return
    run = benchmark_smoke.SmokeRun(_runnable(benchmark_smoke.SCRIPTS))
    try:
        yield run
    finally:
        run.close()


@pytest.fixture(autouse=True)
def _no_cover(request: pytest.FixtureRequest) -> Iterator[None]:
    """Coverage paused while a test marked ``no_cover`` runs (under ``coverage run``).

    The randomized comparisons and stress runs (thousands of evaluations,
    hundreds of examples) reach no line the unit tests do not, and under
    coverage's tracer they took 2.5 times as long: a quarter of the
    README's test command. Paused, as pytest-cov's ``no_cover`` does.
    """
    cov = None
    if request.node.get_closest_marker("no_cover") is not None:
        import coverage

        cov = coverage.Coverage.current()
    if cov is None:
        yield
        return
    cov.stop()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            # Coverage warns, restarting, of the modules imported while it
            # was paused ("already-imported"): they were imported measured,
            # before the pause. As an error (filterwarnings), it kept
            # coverage stopped for the rest of a serial run.
            warnings.filterwarnings(
                "ignore", message="Already imported a file that will be measured"
            )
            cov.start()


@pytest.fixture(autouse=True)
def _forget_logged_evaluation_noise() -> None:
    """Each test sees the first warning for a flag key or failure (logged once per process)."""
    from aioflags._client import _ofcontext
    from aioflags._evaluation import _context, _door, _evaluate, _model

    _ofcontext._DROPPED.clear()
    _context._IGNORED_NAMES.clear()
    _evaluate._FAILURES.clear()
    _door._UNKNOWN_KEYS.clear()
    _door._NOT_KEYS.clear()
    _door._INVALID_CONTEXTS.clear()
    _model._SAID.clear()


@pytest.fixture(autouse=True)
def _close_scripted_sources() -> Iterator[None]:
    yield
    while sources.OPEN:
        sources.OPEN.pop().close()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh redis-server on a free 127.0.0.1 port, stopped by PID afterwards."""
    server = RedisServer(executable(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _host(address: object) -> str | None:
    """The host of an AF_INET/AF_INET6 address tuple (None for Unix sockets)."""
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    return None


@pytest.fixture(autouse=True)
def loopback_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail any test that resolves or connects to a host other than 127.0.0.1.

    Analytics events are on by default and go to events.launchdarkly.com: a
    test that forgets to point ``events_uri`` at a FlagServer (or to turn
    events off) must fail here, not post to LaunchDarkly. The attempt itself
    fails at once (an ``OSError``), and the test is failed at teardown even if
    the code under test swallowed that error (as event delivery does).
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(what: str) -> OSError:
        attempts.append(what)
        return OSError(
            errno.ENETUNREACH, f"tests may only connect to 127.0.0.1: {what}"
        )

    def connect(self: socket.socket, address: Any) -> None:
        host = _host(address)
        if host is not None and host not in LOOPBACK:
            raise refuse(f"connect to {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        host = _host(address)
        if host is not None and host not in LOOPBACK:
            refuse(f"connect to {address!r}")
            return errno.ENETUNREACH
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in LOOPBACK:
            attempts.append(f"resolve {name!r}")
            raise socket.gaierror(
                socket.EAI_NONAME, f"tests may only connect to 127.0.0.1: {name!r}"
            )
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    if attempts:
        pytest.fail(
            "this test tried to reach a host other than 127.0.0.1 (point "
            "events_uri at a FlagServer or turn events off): " + "; ".join(attempts),
            pytrace=False,
        )
