"""pytest fixtures for apps that use aioflags (loaded through the ``pytest11`` entry point).

Fixtures:

- ``aioflags_data``: a fresh :class:`~aioflags.testing.FlagData`, preset by
  the ``@pytest.mark.aioflags(...)`` marker; publish flags with
  ``aioflags_data.update(...)`` or ``aioflags_data.set_value(...)``.
- ``aioflags_flag_server`` (async; ``flag_server`` is its older name): a
  running :class:`~aioflags.testing.FlagServer` serving ``aioflags_data``;
  later publications are pushed to open streams.
- ``aioflags_config``: the :class:`~aioflags.Config` that ``aioflags_client``
  uses (FDv2 streaming from ``aioflags_flag_server``, analytics events to it);
  override it to change options.
- ``aioflags_client`` (async): a started :class:`~aioflags.Client`, closed
  after the test.
- ``aioflags_events``: an :class:`~aioflags.testing.EventLog` of the analytics
  events ``aioflags_client`` sent to ``aioflags_flag_server``: ``await
  aioflags_events.flush()`` sends what is buffered and returns them all.

The marker presets flags for one test (on a class or module, for all of them)::

    @pytest.mark.aioflags({"new-checkout": True}, segments={...})
    async def test_checkout(aioflags_client): ...

Its first argument (or ``values=``) maps flag keys to a value served to
everyone; ``flags=`` maps keys to a :class:`~aioflags.testing.FlagBuilder` or
flag JSON; ``segments=`` maps keys to a
:class:`~aioflags.testing.SegmentBuilder` or segment JSON.

Options (docs/testing.md, "Flag coverage"):

- ``--aioflags-coverage``: count every evaluation of the session (by any
  client, snapshot, blocking client or OpenFeature provider, the fixtures'
  and those the app builds) against each flag's branches, and report the
  branches no test took in a terminal section ``aioflags flag coverage``.
- ``--aioflags-coverage-json PATH``: write the counts as JSON too.
- ``--aioflags-coverage-fail-under P``: fail the session (exit status 1)
  when less than P% of the branches were taken, or when a crashed
  pytest-xdist worker's counts are missing. P is from 0 to 100, written
  ``90``, ``87.5`` or ``90%``.
- ``--aioflags-coverage-flags PATH`` (repeatable): count the flags of this
  flag file too, whether or not the session loaded it.

Each of the last three turns on ``--aioflags-coverage``.

The async fixtures run under pytest-asyncio (strict or auto mode: the test
is marked ``asyncio``), declared through its public ``pytest_asyncio.fixture``,
and under anyio's plugin (the test is marked ``anyio``), with or without
pytest-asyncio installed; each runs on the test's own event loop. A sync test
that asks for one fails with a message that says how to run it, and the
fixture stays usable by the tests after it.

Added in version 0.1.0.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import pytest

from aioflags import Client, Config, DataSystem
from aioflags._client._client import PROCESS_HOOKS
from aioflags._datasystem._sources._files import FlagFileError
from aioflags._testing._coverage import (
    CoverageHook,
    FlagCoverage,
    Report,
    summary_lines,
)
from aioflags.testing import (
    EventLog,
    FlagBuilder,
    FlagData,
    FlagServer,
    SegmentBuilder,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping
    from contextlib import AbstractAsyncContextManager

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "aioflags_client",
    "aioflags_config",
    "aioflags_data",
    "aioflags_events",
    "aioflags_flag_server",
    "flag_server",
]

_MARKER_HELP: Final = (
    "aioflags(values=None, *, flags=None, segments=None): preset aioflags test "
    "data for this test: values maps flag keys to a value served to everyone; "
    "flags maps keys to a FlagBuilder or flag JSON; segments maps keys to a "
    "SegmentBuilder or segment JSON."
)

_F = TypeVar("_F", bound="Callable[..., Any]")
_T = TypeVar("_T")


def _percent(text: str) -> float:
    """``--aioflags-coverage-fail-under``'s value: 90, 87.5 or 90%, from 0 to 100."""
    number = text.strip().removesuffix("%").rstrip()
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 100:  # NaN too
        raise argparse.ArgumentTypeError(
            f"expected a percentage from 0 to 100, written 90, 87.5 or 90%; got {text!r}"
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    """The flag coverage options."""
    group = parser.getgroup("aioflags", "aioflags flag coverage")
    group.addoption(
        "--aioflags-coverage",
        action="store_true",
        default=False,
        help="count every aioflags evaluation against its flag's branches (off, "
        "targets, rules, fallthrough, prerequisites) and report those no test took",
    )
    group.addoption(
        "--aioflags-coverage-json",
        metavar="PATH",
        default=None,
        help="write the flag coverage as JSON to PATH (implies --aioflags-coverage)",
    )
    group.addoption(
        "--aioflags-coverage-fail-under",
        metavar="P",
        type=_percent,
        default=None,
        help="fail if less than P%% of the flags' branches were taken: P from 0 "
        "to 100, written 90, 87.5 or 90%% (implies --aioflags-coverage)",
    )
    group.addoption(
        "--aioflags-coverage-flags",
        metavar="PATH",
        action="append",
        default=[],
        help="count the flags of this flag file too, loaded or not (repeatable; "
        "implies --aioflags-coverage)",
    )


class _Coverage:
    """One session's flag coverage: what it counts, and what it was asked."""

    def __init__(self, options: Any) -> None:
        self.coverage = FlagCoverage()
        self.json_path: str | None = options.aioflags_coverage_json
        self.fail_under: float | None = options.aioflags_coverage_fail_under
        self.files: list[str] = list(options.aioflags_coverage_flags)
        self.report: Report | None = None
        self.failed = False
        #: pytest-xdist workers whose counts were added, and those lost (with why).
        self.merged: set[str] = set()
        self.lost: dict[str, str] = {}

    def hook_for(self, client: Client) -> CoverageHook:
        return CoverageHook(self.coverage, client)


_COVERAGE: Final = pytest.StashKey[_Coverage]()


def _wanted(options: Any) -> bool:
    return bool(
        getattr(options, "aioflags_coverage", False)
        or getattr(options, "aioflags_coverage_json", None)
        or getattr(options, "aioflags_coverage_fail_under", None) is not None
        or getattr(options, "aioflags_coverage_flags", None)
    )


def _start_coverage(config: pytest.Config, options: Any) -> None:
    """Count evaluations from now on (once a session): clients built from now on register the hook."""
    if _COVERAGE in config.stash or not _wanted(options):
        return
    state = config.stash[_COVERAGE] = _Coverage(options)
    PROCESS_HOOKS.append(state.hook_for)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Start flag coverage before the conftests are imported (and the app with them)."""
    _start_coverage(early_config, early_config.known_args_namespace)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``aioflags`` marker (so ``--strict-markers`` accepts it).

    And start flag coverage, if the plugin came too late to start it earlier.
    """
    config.addinivalue_line("markers", _MARKER_HELP)
    _start_coverage(config, config.option)
    state = config.stash.get(_COVERAGE, None)
    if state is not None and state.files:
        try:
            state.coverage.learn_files(state.files)
        except FlagFileError as exc:
            raise pytest.UsageError(f"--aioflags-coverage-flags: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop counting: clients built after the session register nothing."""
    state = config.stash.get(_COVERAGE, None)
    if state is not None and state.hook_for in PROCESS_HOOKS:
        PROCESS_HOOKS.remove(state.hook_for)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: add what a worker counted to the controller's coverage.

    A worker that went down without handing its counts over (it crashed)
    is named in the report: what it counted is missing.
    """
    state = node.config.stash.get(_COVERAGE, None)
    if state is None:
        return
    worker = str(getattr(getattr(node, "gateway", None), "id", node))
    report = getattr(node, "workeroutput", {}).get("aioflags_coverage")
    if report is not None:
        # An interrupted worker is reported down twice, its counts with each.
        if worker not in state.merged:
            state.merged.add(worker)
            state.coverage.merge(report)
    elif error is not None:
        state.lost[worker] = str(error)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Make the report: a pytest-xdist worker hands it over, the controller tells.

    The controller (or a session without xdist) writes the JSON, and fails
    the session under ``--aioflags-coverage-fail-under``.
    """
    config = session.config
    state = config.stash.get(_COVERAGE, None)
    if state is None or config.option.collectonly:  # no test ran: nothing to tell
        return
    report = state.report = state.coverage.report()
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller reports
        workeroutput["aioflags_coverage"] = report
        return
    if state.lost:
        report["lost_workers"] = dict(sorted(state.lost.items()))
    if state.json_path is not None:
        path = Path(state.json_path)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    # A lost worker's flags and counts are missing: the figure proves nothing.
    if state.fail_under is not None and (
        report["percent"] < state.fail_under or state.lost
    ):
        state.failed = True
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The section ``aioflags flag coverage``: the branches no test took, the total."""
    state = config.stash.get(_COVERAGE, None)
    if state is None or state.report is None or hasattr(config, "workerinput"):
        return
    terminalreporter.write_sep("-", "aioflags flag coverage")
    for line in summary_lines(state.report):
        terminalreporter.write_line(line)
    if state.json_path is not None:
        terminalreporter.write_line(f"JSON written to {state.json_path}")
    if state.failed:
        why = (
            "cannot be shown: a worker's counts are missing"
            if state.lost
            else "not reached"
        )
        terminalreporter.write_line(
            f"FAIL Required flag coverage of {state.fail_under:g}% {why}. "
            f"Total flag coverage: {state.report['percent']:g}%",
            red=True,
            bold=True,
        )


def _run_by(request: pytest.FixtureRequest, name: str) -> Any:
    """The value of async fixture ``name`` on the test's own runner.

    anyio's plugin runs the coroutine fixtures of a test that uses
    ``anyio_backend``; pytest-asyncio runs those declared through its public
    ``pytest_asyncio.fixture`` for an asyncio test (in strict mode too). So each
    async fixture is declared twice, once for each (``_{name}_anyio`` and
    ``_{name}_asyncio``), and the public one asks for the test's with
    ``request.getfixturevalue``. A test neither runs gets told how.
    """
    test_is_async = inspect.iscoroutinefunction(request.function)
    if "anyio_backend" in request.fixturenames:
        return request.getfixturevalue(f"_{name}_anyio")
    if test_is_async and request.node.get_closest_marker("asyncio") is not None:
        return request.getfixturevalue(f"_{name}_asyncio")
    first = (
        "mark the test to run it" if test_is_async else "make the test async and run it"
    )
    pytest.fail(
        f"{name} is an async fixture: {first} with pytest-asyncio "
        "(@pytest.mark.asyncio, or asyncio_mode = auto) or anyio's plugin "
        "(@pytest.mark.anyio)",
        pytrace=False,
    )


def _declared(func: _F, runner: str) -> _F:
    """``func`` as fixture ``{func.__name__}_{runner}`` of anyio's plugin or pytest-asyncio."""
    name = f"{func.__name__}_{runner}"
    if runner == "asyncio":
        import pytest_asyncio

        return cast("_F", pytest_asyncio.fixture(func, name=name))
    # A plain coroutine fixture: pytest-asyncio's strict mode leaves it to anyio's.
    return cast("_F", pytest.fixture(func, name=name))


try:
    import pytest_asyncio  # noqa: F401 - (declares the fixtures for asyncio tests)
except ImportError:
    _PYTEST_ASYNCIO = False
else:
    _PYTEST_ASYNCIO = True


def _preset(data: FlagData, marker: pytest.Mark) -> None:
    if len(marker.args) > 1:
        raise pytest.UsageError(
            "@pytest.mark.aioflags takes one positional argument (the values)"
        )
    unknown = set(marker.kwargs) - {"values", "flags", "segments"}
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.aioflags got unknown arguments {sorted(unknown)}; "
            "it takes values, flags and segments"
        )
    values: Mapping[str, JSONValue] = (
        marker.args[0] if marker.args else marker.kwargs.get("values") or {}
    )
    segments: Mapping[str, SegmentBuilder | JSONObject] = (
        marker.kwargs.get("segments") or {}
    )
    flags: Mapping[str, FlagBuilder | JSONObject] = marker.kwargs.get("flags") or {}
    for key, segment in segments.items():
        if isinstance(segment, SegmentBuilder):
            data.update(segment)
        else:
            data.set_segment(key, segment)
    for key, value in values.items():
        data.set_value(key, value)
    for key, flag in flags.items():
        if isinstance(flag, FlagBuilder):
            data.update(flag)
        else:
            data.set_flag(key, flag)


@pytest.fixture
def aioflags_data(request: pytest.FixtureRequest) -> Iterator[FlagData]:
    """Test flag data, preset by ``@pytest.mark.aioflags`` (outermost marker first).

    Under ``--aioflags-coverage``, its flags count as the test left them,
    evaluated or not.
    """
    data = FlagData()
    problem = None
    try:
        for marker in reversed(list(request.node.iter_markers("aioflags"))):
            _preset(data, marker)
    except (TypeError, ValueError) as exc:  # bad values: say so without a traceback
        problem = str(exc)
    if problem is not None:
        pytest.fail(f"@pytest.mark.aioflags: {problem}", pytrace=False)
    yield data
    state = request.config.stash.get(_COVERAGE, None)
    if state is not None:
        state.coverage.learn_json(data.flags)


async def _entered(
    acm: AbstractAsyncContextManager[_T], request: pytest.FixtureRequest
) -> AsyncIterator[_T]:
    """Enter ``acm`` for the fixture's lifetime, and exit it from the same task.

    anyio's plugin runs a fixture's setup and teardown in one task. pytest-asyncio
    runs them in two, and a task group or cancel scope must be exited by the
    task that entered it; so there the context manager lives in a task of its
    own, started at setup and awaited at teardown (the fixture owns it).
    """
    if "anyio_backend" in request.fixturenames:
        async with acm as value:
            yield value
        return
    loop = asyncio.get_running_loop()
    entered: asyncio.Future[_T] = loop.create_future()
    release = asyncio.Event()

    async def host() -> None:
        try:
            async with acm as value:
                entered.set_result(value)
                await release.wait()
        except BaseException as exc:
            if entered.done():
                raise
            entered.set_exception(exc)

    # The one task this module starts; it is awaited below, never left behind.
    task = loop.create_task(host())
    try:
        yield await entered
    finally:
        release.set()
        await task


async def _aioflags_flag_server(
    aioflags_data: FlagData, request: pytest.FixtureRequest
) -> AsyncIterator[FlagServer]:
    async for server in _entered(FlagServer(), request):
        aioflags_data.attach(server)
        try:
            yield server
        finally:
            aioflags_data.detach(server)


_aioflags_flag_server_anyio = _declared(_aioflags_flag_server, "anyio")
if _PYTEST_ASYNCIO:
    _aioflags_flag_server_asyncio = _declared(_aioflags_flag_server, "asyncio")


@pytest.fixture
def aioflags_flag_server(request: pytest.FixtureRequest) -> FlagServer:
    """A running FlagServer on 127.0.0.1 that serves ``aioflags_data``.

    An async fixture: the test runs under pytest-asyncio or anyio's plugin.
    Added in version 0.2.0 (``flag_server`` is its older name).
    """
    server: FlagServer = _run_by(request, "aioflags_flag_server")
    return server


@pytest.fixture
def flag_server(aioflags_flag_server: FlagServer) -> FlagServer:
    """``aioflags_flag_server``'s older name: the same server."""
    return aioflags_flag_server


@pytest.fixture
def aioflags_config(aioflags_flag_server: FlagServer) -> Config:
    """The client configuration: FDv2 streaming from ``aioflags_flag_server``.

    Analytics events go to ``aioflags_flag_server`` too (it records them),
    never to LaunchDarkly.
    """
    return aioflags_flag_server.config(
        "test-sdk-key", data_system=DataSystem.streaming()
    )


async def _aioflags_client(
    aioflags_config: Config, request: pytest.FixtureRequest
) -> AsyncIterator[Client]:
    async for client in _entered(Client(aioflags_config), request):
        yield client


_aioflags_client_anyio = _declared(_aioflags_client, "anyio")
if _PYTEST_ASYNCIO:
    _aioflags_client_asyncio = _declared(_aioflags_client, "asyncio")


@pytest.fixture
def aioflags_client(aioflags_config: Config, request: pytest.FixtureRequest) -> Client:
    """A started client (READY once the first payload arrives), closed after the test.

    An async fixture: the test runs under pytest-asyncio or anyio's plugin.
    """
    client: Client = _run_by(request, "aioflags_client")
    return client


@pytest.fixture
def aioflags_events(
    aioflags_flag_server: FlagServer, aioflags_client: Client
) -> EventLog:
    """The analytics events ``aioflags_client`` sent to ``aioflags_flag_server``."""
    return EventLog(aioflags_flag_server, aioflags_client)
