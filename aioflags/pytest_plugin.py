"""pytest fixtures for apps that use aioflags (loaded through the ``pytest11`` entry point).

Fixtures:

- ``aioflags_data``: a fresh :class:`~aioflags.testing.FlagData`, preset by
  the ``@pytest.mark.aioflags(...)`` marker; publish flags with
  ``aioflags_data.update(...)`` or ``aioflags_data.set_value(...)``.
- ``flag_server`` (async): a running :class:`~aioflags.testing.FlagServer`
  serving ``aioflags_data``; later publications are pushed to open streams.
- ``aioflags_config``: the :class:`~aioflags.Config` that ``aioflags_client``
  uses (FDv2 streaming from ``flag_server``, analytics events to it);
  override it to change options.
- ``aioflags_client`` (async): a started :class:`~aioflags.Client`, closed
  after the test.
- ``aioflags_events``: an :class:`~aioflags.testing.EventLog` of the analytics
  events ``aioflags_client`` sent to ``flag_server``: ``await
  aioflags_events.flush()`` sends what is buffered and returns them all.

The marker presets flags for one test (on a class or module, for all of them)::

    @pytest.mark.aioflags({"new-checkout": True}, segments={...})
    async def test_checkout(aioflags_client): ...

Its first argument (or ``values=``) maps flag keys to a value served to
everyone; ``flags=`` maps keys to a :class:`~aioflags.testing.FlagBuilder` or
flag JSON; ``segments=`` maps keys to a
:class:`~aioflags.testing.SegmentBuilder` or segment JSON.

The async fixtures run under pytest-asyncio (strict or auto mode: the test
is marked ``asyncio``) and under anyio's plugin (the test is marked
``anyio``); each runs on the test's own event loop.

Added in version 0.1.0.
"""

from __future__ import annotations

import asyncio
import types
from typing import TYPE_CHECKING, Any, Final, TypeVar

import pytest

from aioflags import Client, Config, DataSystem
from aioflags.testing import (
    EventLog,
    FlagBuilder,
    FlagData,
    FlagServer,
    SegmentBuilder,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator, Mapping
    from contextlib import AbstractAsyncContextManager

    from aioflags._json import JSONObject, JSONValue

__all__ = [
    "aioflags_client",
    "aioflags_config",
    "aioflags_data",
    "aioflags_events",
    "flag_server",
]

_MARKER_HELP: Final = (
    "aioflags(values=None, *, flags=None, segments=None): preset aioflags test "
    "data for this test: values maps flag keys to a value served to everyone; "
    "flags maps keys to a FlagBuilder or flag JSON; segments maps keys to a "
    "SegmentBuilder or segment JSON."
)
_ASYNC_FIXTURES: Final = frozenset({"flag_server", "aioflags_client"})
_anyio_copies: dict[Callable[..., Any], Callable[..., Any]] = {}

_F = TypeVar("_F", bound="Callable[..., Any]")
_T = TypeVar("_T")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``aioflags`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line("markers", _MARKER_HELP)


def _asyncio_fixture(func: _F) -> _F:
    """Mark ``func`` the way ``@pytest_asyncio.fixture`` does (without importing it).

    pytest-asyncio in strict mode then runs it for asyncio tests; for anyio
    tests :func:`pytest_fixture_setup` swaps in an unmarked copy, which
    pytest-asyncio leaves to anyio's plugin.
    """
    func._force_asyncio_fixture = True  # type: ignore[attr-defined]
    func._loop_scope = None  # type: ignore[attr-defined]
    return func


def _unmarked(func: Callable[..., Any]) -> Callable[..., Any]:
    copy = _anyio_copies.get(func)
    if copy is None:
        assert isinstance(func, types.FunctionType)
        copy = types.FunctionType(
            func.__code__,
            func.__globals__,
            func.__name__,
            func.__defaults__,
            func.__closure__,
        )
        copy.__qualname__ = func.__qualname__
        copy.__module__ = func.__module__
        _anyio_copies[func] = copy
    return copy


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Run our async fixtures on the test's own runner: anyio's or pytest-asyncio's."""
    func = fixturedef.func
    if fixturedef.argname not in _ASYNC_FIXTURES or func.__module__ != __name__:
        return (yield)
    if "anyio_backend" in request.fixturenames:
        # anyio's plugin runs coroutine fixtures of anyio tests.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fixturedef, "func", _unmarked(func))
            return (yield)
    if request.node.get_closest_marker("asyncio") is not None:
        return (yield)  # pytest-asyncio runs it: it is marked as its own
    pytest.fail(
        f"{fixturedef.argname} is an async fixture: make the test async and run "
        "it with pytest-asyncio (@pytest.mark.asyncio, or asyncio_mode = auto) "
        "or anyio's plugin (@pytest.mark.anyio)",
        pytrace=False,
    )


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
def aioflags_data(request: pytest.FixtureRequest) -> FlagData:
    """Test flag data, preset by ``@pytest.mark.aioflags`` (outermost marker first)."""
    data = FlagData()
    for marker in reversed(list(request.node.iter_markers("aioflags"))):
        _preset(data, marker)
    return data


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


@pytest.fixture
@_asyncio_fixture
async def flag_server(
    aioflags_data: FlagData, request: pytest.FixtureRequest
) -> AsyncIterator[FlagServer]:
    """A running FlagServer on 127.0.0.1 that serves ``aioflags_data``."""
    async for server in _entered(FlagServer(), request):
        aioflags_data.attach(server)
        try:
            yield server
        finally:
            aioflags_data.detach(server)


@pytest.fixture
def aioflags_config(flag_server: FlagServer) -> Config:
    """The client configuration: FDv2 streaming from ``flag_server``.

    Analytics events go to ``flag_server`` too (it records them), never to
    LaunchDarkly.
    """
    return Config(
        "test-sdk-key",
        base_uri=flag_server.url,
        stream_uri=flag_server.url,
        events_uri=flag_server.url,
        data_system=DataSystem.streaming(),
    )


@pytest.fixture
@_asyncio_fixture
async def aioflags_client(
    aioflags_config: Config, request: pytest.FixtureRequest
) -> AsyncIterator[Client]:
    """A started client (READY once the first payload arrives), closed after the test."""
    async for client in _entered(Client(aioflags_config), request):
        yield client


@pytest.fixture
def aioflags_events(flag_server: FlagServer, aioflags_client: Client) -> EventLog:
    """The analytics events ``aioflags_client`` sent to ``flag_server``."""
    return EventLog(flag_server, aioflags_client)
