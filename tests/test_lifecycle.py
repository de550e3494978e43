"""The ``async with`` lifecycle (issue 17): exceptions, cancellation, close, restart, fork, load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import aioflags
from aioflags import Client, Config, Context, ProviderEvent, ProviderStatus
from aioflags._client import _lifecycle
from aioflags._datasystem import _supervisor
from aioflags.testing import FlagServer
from tests.connections import Connections, counting
from tests.flags import BOOL_FLAG

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

FLAG = BOOL_FLAG
USER = Context.create("u1")


# httpx's and httpcore's body iterators are async generators nested inside one
# another; closing the outer one (we do, with aclosing) leaves the inner ones to
# the garbage collector, and trio warns about each. Upstream: encode/httpx#3686.
# The connections themselves are closed (the test counts them, client side).
HTTPX_TRIO_GENERATORS = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object "
    "(Response|BoundAsyncStream|AsyncResponseStream|PoolByteStream"
    "|HTTP11ConnectionByteStream|AsyncHTTP11Connection)"
    ":pytest.PytestUnraisableExceptionWarning"
)
#: Both backends; under trio a client that is left with its stream open
#: leaves httpx's inner generators to the collector (the warning above).
BACKENDS = ["asyncio", pytest.param("trio", marks=HTTPX_TRIO_GENERATORS)]


class Shutdown(BaseException):
    """A BaseException subclass of the user's own (like KeyboardInterrupt)."""


def config_for(server: FlagServer, **kwargs: Any) -> Config:
    # ready_timeout: a net for READY (issue 97); tests of its expiry give their own
    return server.config("k", **{"ready_timeout": 30, **kwargs}, send_events=False)


def sdk_tasks() -> set[str]:
    """Names of the running tasks that belong to an aioflags client."""
    return {
        f"{t.id}:{t.name}"
        for t in anyio.get_running_tasks()
        if t.name is not None
        and t.name.startswith(("aioflags", "Client", "EventBus", "Supervisor"))
        and "._service." not in t.name
    }


def bus_tasks_now() -> set[str]:
    return {t for t in sdk_tasks() if "_events." in t}


@pytest.fixture
def connections() -> Iterator[Connections]:
    """The client side's connections (ASGI has no connection events for a server)."""
    with counting() as count:
        yield count


@pytest.mark.asyncio
async def test_connections_are_counted_where_they_are_made(
    connections: Connections,
) -> None:
    # What the tests below rely on: a client's connections are counted open,
    # and closed once it is (the count is no vacuous 0 == 0).
    async with FlagServer({"f": FLAG}) as server:
        async with Client(config_for(server)):
            assert connections.opened >= 1
            assert connections.closed < connections.opened
        await connections.all_closed()


# ------------------------------------------------------------- exceptions

#: A config whose HTTP client cannot be built: its CA bundle does not exist.
UNBUILDABLE_HTTP = Config(
    "k", base_uri="https://127.0.0.1:9", verify="/nonexistent/ca.pem", send_events=False
)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exc_type", [KeyError, Shutdown])
def test_the_callers_exception_leaves_async_with_unchanged(
    backend: str,
    exc_type: type[BaseException],
    connections: Connections,
) -> None:
    raised = exc_type("mine")

    async def main() -> None:
        async with FlagServer({"f": FLAG}) as server:
            client = Client(config_for(server))
            caught: BaseException | None = None
            try:
                async with client:
                    assert client.status is ProviderStatus.READY
                    raise raised
            except exc_type as exc:  # what users write: it must match
                caught = exc
            assert caught is raised  # not an ExceptionGroup, not a copy
            tb = caught.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            assert tb is not None and tb.tb_frame.f_code.co_name == "main"
            assert client.status is ProviderStatus.NOT_READY
            await connections.all_closed()

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_flag_server_does_not_wrap_the_callers_exception(backend: str) -> None:
    async def main() -> None:
        with pytest.raises(KeyError, match="x"):
            async with FlagServer():
                raise KeyError("x")

    anyio.run(main, backend=backend)


@pytest.mark.asyncio
async def test_a_bug_in_the_sdks_tasks_never_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: object, **_: object) -> None:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("a bug in the supervisor")

    monkeypatch.setattr(_supervisor.Supervisor, "run", broken)
    async with (
        FlagServer({"f": FLAG}) as server,
        Client(config_for(server)) as client,
    ):
        assert client.status is ProviderStatus.ERROR
        assert "internal error" in (client._bus.last_status_event or "").message  # type: ignore[union-attr]
    assert "failed unexpectedly" in caplog.text


@pytest.mark.asyncio
async def test_http_that_cannot_be_set_up_is_fatal_with_the_reason() -> None:
    client = Client(UNBUILDABLE_HTTP)
    async with client:
        assert client.status is ProviderStatus.FATAL
    last = client._bus.last_status_event
    assert last is not None and "Config.verify" in last.message


# ----------------------------------------------------------- cancellation
async def cancelled_after(
    checkpoints: int,
    body: Callable[[], Awaitable[None]],
) -> bool:
    """Run ``body`` in a scope cancelled after ``checkpoints`` loop turns; True if it finished first."""
    finished = False
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def canceller() -> None:
            for _ in range(checkpoints):
                await anyio.lowlevel.checkpoint()
            scope.cancel()

        tg.start_soon(canceller)
        with scope:
            await body()
            finished = True
        tg.cancel_scope.cancel()
    return finished


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["asyncio", pytest.param("trio", marks=HTTPX_TRIO_GENERATORS)]
)
@pytest.mark.parametrize("phase", ["start-up", "shutdown"])
def test_cancellation_at_every_checkpoint_leaves_nothing_behind(
    phase: str,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    connections: Connections,
) -> None:
    async def inline(func: Callable[[], object]) -> None:
        # The worker-thread hop takes thousands of loop turns and cannot be
        # cancelled anyway; inline it so that each turn below is an await point.
        func()
        await anyio.lowlevel.checkpoint()

    monkeypatch.setattr(_lifecycle, "_in_thread", inline)

    async def main() -> None:
        async with FlagServer({"f": FLAG}) as server:
            baseline = sdk_tasks()
            client = Client(config_for(server))
            completed = 0
            checkpoints = 0
            while completed < 3:  # past the last checkpoint, a few times over
                deadline_before = anyio.current_effective_deadline()

                async def body() -> None:
                    async with client:
                        assert client.status is ProviderStatus.READY
                        if phase == "shutdown":
                            await server.wait_for_stream()
                            # From here, cancellation lands during shutdown.
                            await anyio.lowlevel.checkpoint()

                with anyio.fail_after(30):  # an enclosing scope of the caller's
                    if phase == "shutdown":
                        await body()  # warm up: find how long start-up takes
                    finished = await cancelled_after(checkpoints, body)
                completed += finished
                # Nothing of the client is left running, the caller's scopes
                # are intact...
                assert sdk_tasks() == baseline, f"after {checkpoints} checkpoints"
                assert anyio.current_effective_deadline() == deadline_before
                assert client.status is ProviderStatus.NOT_READY
                detail = await client.variation_detail("f", USER, None)
                assert detail.error_kind == "CLIENT_NOT_READY"
                # ... and every connection it opened is closed.
                await connections.all_closed()
                checkpoints += 1
            assert checkpoints > 10  # start-up has await points, each was hit

    anyio.run(main, backend=backend)


@pytest.mark.asyncio
@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
async def test_asyncio_timeout_around_start_up_leaves_nothing_behind(
    connections: Connections,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        baseline = sdk_tasks()
        client = Client(config_for(server))
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):  # noqa: PT012 - the timeout must wrap it all
            async with asyncio.timeout(None) as timeout:
                async with anyio.create_task_group() as tg:

                    async def expire_when_requested() -> None:
                        await server.wait_for_requests("/sdk/poll")
                        timeout.reschedule(loop.time())

                    tg.start_soon(expire_when_requested)
                    async with client:
                        pytest.fail("start-up was not interrupted")
        assert sdk_tasks() == baseline
        await connections.all_closed()
        # The client can still be started afterwards.
        server.clear_faults()
        async with client:
            assert client.status is ProviderStatus.READY


# ------------------------------------------------------------------ close
@pytest.mark.asyncio
async def test_aclose_from_a_handler_returns_at_once(
    monkeypatch: pytest.MonkeyPatch,
    connections: Connections,
) -> None:
    # If aclose() waited for its bound here, the test would hang, not pass.
    monkeypatch.setattr(_lifecycle, "_CLOSE_BOUND", 3600.0)
    async with FlagServer({"f": FLAG}) as server:
        returned = anyio.Event()
        client = Client(config_for(server))

        async def on_change(keys: frozenset[str]) -> None:
            await client.aclose()
            returned.set()  # reached: aclose() returned normally, in the handler

        client.add_flag_change_handler(on_change)
        with anyio.fail_after(30):
            async with client:
                await server.wait_for_stream()
                server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
                await returned.wait()
                assert client.status is ProviderStatus.NOT_READY  # at once
                await client.aclose()  # waits for the run the handler stopped
                assert client._life.run is None  # closed for good, within the block
                await client.aclose()  # idempotent
        await connections.all_closed()


@pytest.mark.asyncio
async def test_a_handler_that_closes_the_client_runs_to_its_end(
    connections: Connections,
) -> None:
    """Its code after aclose() runs, and sees the client closed at once."""
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        seen: list[object] = []
        finished = anyio.Event()

        async def on_change(keys: frozenset[str]) -> None:
            await client.aclose()
            seen.append(client.status)
            detail = await client.variation_detail("f", USER, "default")
            seen.append(detail.error_kind)
            for _ in range(10):  # checkpoints where it used to be cancelled
                await anyio.lowlevel.checkpoint()
            seen.append("finished")
            finished.set()

        client.add_flag_change_handler(on_change)
        with anyio.fail_after(30):
            async with client:
                await server.wait_for_stream()
                server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
                await finished.wait()
                await client.aclose()  # waits for the run's end
                assert client._life.run is None
                assert client.status is ProviderStatus.NOT_READY
        assert seen == [ProviderStatus.NOT_READY, "CLIENT_NOT_READY", "finished"]
        await connections.all_closed()


@pytest.mark.asyncio
async def test_a_handler_that_closes_the_client_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    connections: Connections,
) -> None:
    """A handler that never ends after aclose() is cancelled at the bound."""
    monkeypatch.setattr(_lifecycle, "_HANDLER_BOUND", 0.01)
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        outcome: list[str] = []

        async def on_ready(details: aioflags.EventDetails) -> None:
            await client.aclose()
            try:
                await anyio.Event().wait()  # never set
            except anyio.get_cancelled_exc_class():
                outcome.append("cancelled")
                raise

        client.add_handler(ProviderEvent.READY, on_ready)
        with anyio.fail_after(30):
            async with client:
                await client.wait_for_status(ProviderStatus.NOT_READY)
                await client.aclose()  # waits for the run's end: the bound
                assert client._life.run is None
        assert outcome == ["cancelled"]
        assert "did not finish within its bound" in caplog.text
        await connections.all_closed()


@pytest.mark.asyncio
async def test_aclose_from_outside_cancels_a_running_handler(
    connections: Connections,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        started = anyio.Event()
        outcome: list[str] = []

        async def on_ready(details: aioflags.EventDetails) -> None:
            started.set()
            try:
                await anyio.Event().wait()  # never set
            except anyio.get_cancelled_exc_class():
                outcome.append("cancelled")
                raise

        client.add_handler(ProviderEvent.READY, on_ready)
        with anyio.fail_after(30):
            async with client:
                await started.wait()
                await client.aclose()
                assert outcome == ["cancelled"]
                assert client.status is ProviderStatus.NOT_READY
                assert client._life.run is None
                assert bus_tasks_now() == set()
        await connections.all_closed()


@pytest.mark.asyncio
async def test_after_close_status_and_evaluations_agree() -> None:
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        async with client:
            assert await client.bool_variation("f", USER, False) is True
            await client.aclose()
            assert client.status is ProviderStatus.NOT_READY
            detail = await client.variation_detail("f", USER, "default")
            assert (detail.value, detail.error_kind) == ("default", "CLIENT_NOT_READY")
            assert not client.snapshot().initialized


@pytest.mark.asyncio
async def test_restart_after_aclose_in_and_after_the_block(
    connections: Connections,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        statuses = []
        # A lifespan that closes and starts again before it ends (each entry
        # has its own exit: an exit stack, or nested blocks).
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(client)
            statuses.append(client.status)
            await client.aclose()
            statuses.append(client.status)
            await stack.enter_async_context(client)
            statuses.append(client.status)
            assert await client.bool_variation("f", USER, False) is True
        statuses.append(client.status)
        async with client:
            await client.aclose()
            async with client:  # in the block, after aclose()
                statuses.append(client.status)
            statuses.append(client.status)
        assert [s.name for s in statuses] == [
            "READY",
            "NOT_READY",
            "READY",
            "NOT_READY",
            "READY",
            "NOT_READY",
        ]
        # And twice in a row, each serving fresh data.
        for variation, expected in ((1, False), (0, True)):
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": variation}})
            async with client:
                assert await client.bool_variation("f", USER, not expected) is expected
        await connections.all_closed()


@pytest.mark.asyncio
async def test_starting_twice_concurrently_is_refused() -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        client = Client(config_for(server, ready_timeout=30))
        errors: list[BaseException] = []
        async with anyio.create_task_group() as tg:

            async def second() -> None:
                await server.wait_for_requests("/sdk/poll")
                try:
                    await client.__aenter__()
                except RuntimeError as exc:
                    errors.append(exc)
                await client.aclose()  # from another task: stops the first start

            tg.start_soon(second)
            with pytest.raises(aioflags.ClientClosedError, match="closed while it"):
                async with client:
                    pytest.fail("the start was closed by the other task")
        assert "already started" in str(errors[0])
        assert client.status is ProviderStatus.NOT_READY


# ------------------------------------------------------------------- fork
@pytest.mark.asyncio
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_client_running_when_the_process_forks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "aioflags")
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        async with client:
            parent_instance = client._instance_id
            parent_random = client._random.random()
            client._random.seed(1)  # the child's draw must not repeat the parent's
            expected_parent_draw = client._random.random()
            read, write = os.pipe()
            with warnings.catch_warnings():
                # 3.12+ warns that forking a process with threads may deadlock;
                # this test's child uses no lock that a parent thread holds.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child reports through the pipe
                report: dict[str, Any] = {}
                try:
                    report["status"] = client.status.name
                    report["warned"] = caplog.text.count("when it forked")
                    detail = client.snapshot().variation_detail("f", USER, None)
                    report["error_kind"] = detail.error_kind
                    report["warned_again"] = caplog.text.count("when it forked")
                    report["draw"] = client._random.random()

                    async def child() -> None:
                        async with client:
                            report["started"] = client.status.name
                            report["value"] = await client.variation("f", USER, None)
                            report["instance"] = client._instance_id

                    # A new loop of the child's own, in a thread without the
                    # parent's running-loop state.
                    # TID251: the library never starts threads; this test's child must.
                    thread = threading.Thread(target=anyio.run, args=(child,))  # noqa: TID251
                    thread.start()
                    thread.join()
                finally:
                    os.write(write, json.dumps(report).encode())
                    os._exit(0)
            os.close(write)
            _, status = await anyio.to_thread.run_sync(os.waitpid, pid, 0)
            with os.fdopen(read) as pipe:
                report = json.loads(pipe.read())
            assert os.waitstatus_to_exitcode(status) == 0
            assert report["status"] == "NOT_READY"  # not READY forever
            assert report["warned"] == 1 and report["warned_again"] == 1
            assert report["error_kind"] == "CLIENT_NOT_READY"
            assert report["started"] == "READY" and report["value"] is True
            assert report["instance"] != parent_instance
            assert report["draw"] != expected_parent_draw
            assert parent_random is not None
            # The parent is untouched.
            assert client.status is ProviderStatus.READY
            assert "when it forked" not in caplog.text


def test_constructing_before_fork_warns_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client(Config("k", send_events=False))
    before = client._instance_id
    client._after_fork()  # what os.register_at_fork runs in the child
    assert client.status is ProviderStatus.NOT_READY
    assert client._instance_id != before
    assert "forked" not in caplog.text


# ------------------------------------------------------------------- load
@pytest.mark.slow
@pytest.mark.asyncio
async def test_ten_thousand_handlers_cost_no_task_and_never_stall_the_loop() -> None:
    async with (
        FlagServer({"f": FLAG}) as server,
        Client(config_for(server)) as client,
    ):
        await server.wait_for_stream()
        bus_tasks = bus_tasks_now()
        assert len(bus_tasks) == 1  # the dispatcher
        calls = 0
        since_loop_turn = 0
        worst = 0
        got_all = anyio.Event()

        def handler(keys: frozenset[str]) -> None:
            nonlocal calls, since_loop_turn, worst
            calls += 1
            since_loop_turn += 1
            worst = max(worst, since_loop_turn)
            if calls == 10_000:
                got_all.set()

        for _ in range(10_000):
            client.add_flag_change_handler(handler)
        assert bus_tasks_now() == bus_tasks  # none per handler

        async def loop_turns() -> None:
            nonlocal since_loop_turn
            while True:
                since_loop_turn = 0
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(loop_turns)
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            with anyio.fail_after(30):
                await got_all.wait()
            assert bus_tasks_now() == bus_tasks  # delivered with no task per handler
            tg.cancel_scope.cancel()
        # The loop ran other work at least every 256 handler calls.
        assert 0 < worst <= 256


@pytest.mark.asyncio
async def test_value_watchers_of_other_flags_cost_no_task() -> None:
    async with (
        FlagServer({"f": FLAG, "g": FLAG}) as server,
        Client(config_for(server)) as client,
    ):
        await server.wait_for_stream()
        changes: list[aioflags.FlagValueChange] = []
        removers = [
            client.add_flag_value_change_handler("g", USER, changes.append)
            for _ in range(1000)
        ]
        async with client.flag_value_changes("f", USER) as stream:
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            with anyio.fail_after(30):
                assert (await stream.receive()).new_value is False
        assert changes == []
        for remove in removers:
            remove()
        assert not client._bus._subscribers[ProviderEvent.CONFIGURATION_CHANGED]


# ------------------------------------------- found in review (issue 17)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("owner", ["Client", "FlagServer"])
def test_the_callers_exception_survives_an_outer_cancellation_in_flight(
    backend: str, owner: str
) -> None:
    async def main() -> None:
        async with FlagServer({"f": FLAG}) as server:
            raised = KeyError("mine")
            cm = Client(config_for(server)) if owner == "Client" else FlagServer()
            caught: BaseException | None = None
            try:
                with anyio.CancelScope() as scope:
                    async with cm:
                        scope.cancel()  # a shutdown arrives...
                        raise raised  # ...while the block is raising
            except KeyError as exc:
                caught = exc
            assert caught is raised  # not lost, not replaced by the cancellation

    anyio.run(main, backend=backend)


class Stop(BaseException):
    """What sys.exit() or Ctrl-C is to a handler: it belongs to the application."""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_handlers_base_exception_leaves_async_with_unwrapped(
    backend: str, kind: str
) -> None:
    async def main() -> None:
        async with FlagServer({"f": FLAG}) as server:
            client = Client(config_for(server))

            def sync_handler(keys: frozenset[str]) -> None:
                raise Stop("from a handler")

            async def async_handler(keys: frozenset[str]) -> None:
                await anyio.lowlevel.checkpoint()
                raise Stop("from a handler")

            client.add_flag_change_handler(
                sync_handler if kind == "sync" else async_handler
            )
            block_cancelled = False
            with pytest.raises(Stop, match="from a handler"):  # noqa: PT012
                async with client:
                    await server.wait_for_stream()
                    server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
                    try:
                        await anyio.sleep_forever()
                    except anyio.get_cancelled_exc_class():
                        block_cancelled = True
                        raise
            assert block_cancelled
            assert sdk_tasks() == set()
            assert client.status is ProviderStatus.NOT_READY

    anyio.run(main, backend=backend)


@pytest.mark.asyncio
async def test_a_foreign_cancellation_in_a_handler_is_its_failure_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        gate = asyncio.get_running_loop().create_future()
        calls: list[frozenset[str]] = []
        first, third = anyio.Event(), anyio.Event()

        async def handler(keys: frozenset[str]) -> None:
            calls.append(keys)
            if len(calls) == 1:
                first.set()
                await gate  # cancelled by something else, below
            if len(calls) == 3:
                third.set()

        client.add_flag_change_handler(handler)
        async with client:
            await server.wait_for_stream()
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            with anyio.fail_after(30):
                await first.wait()
            gate.cancel()
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 0}})
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            with anyio.fail_after(30):
                await third.wait()  # delivery to it goes on, in order
            assert client.status is ProviderStatus.READY
            assert await client.bool_variation("f", USER, True) is False
        assert "cancelled from outside" in caplog.text


@pytest.mark.asyncio
async def test_concurrent_acloses_then_a_restart_serve_the_new_run() -> None:
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        async with client, anyio.create_task_group() as tg:
            tg.start_soon(client.aclose)  # another task starts closing first...
            await anyio.lowlevel.checkpoint()
            await client.aclose()  # ...this one waits for the same stop...
            async with client:  # ...and restarts before the other one resumes
                changed = anyio.Event()
                client.add_flag_change_handler(lambda keys: changed.set())
                assert client.status is ProviderStatus.READY
                server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
                with anyio.fail_after(30):
                    await changed.wait()
                assert await client.bool_variation("f", USER, True) is False
                assert client.status is ProviderStatus.READY


@pytest.mark.asyncio
async def test_aclose_right_after_a_start_that_does_not_wait(
    connections: Connections,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server, ready_timeout=0))
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(client)
            await client.aclose()
            assert sdk_tasks() == set()  # aclose() waited for the run, begun or not
            await stack.enter_async_context(client)
            assert await client.wait_ready(10) is ProviderStatus.READY
        await connections.all_closed()


@pytest.mark.asyncio
async def test_aclose_after_the_data_system_crashed_closes_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: object, **_: object) -> None:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("a bug in the supervisor")

    monkeypatch.setattr(_supervisor.Supervisor, "run", broken)
    async with FlagServer({"f": FLAG}) as server:
        client = Client(config_for(server))
        async with client:
            statuses = [client.status]
            await client.aclose()
            statuses.append(client.status)
            detail = await client.variation_detail("f", USER, None)
            assert detail.error_kind == "CLIENT_NOT_READY"
        assert [s.name for s in statuses] == ["ERROR", "NOT_READY"]


@pytest.mark.asyncio
async def test_aclose_from_a_task_that_a_handler_started_waits_for_the_stop() -> None:
    async with FlagServer({"f": FLAG}) as server, anyio.create_task_group() as user_tg:
        client = Client(config_for(server))
        done = anyio.Event()
        seen: list[str] = []

        async def shutdown_app() -> None:  # the app's own task, in the app's group
            await client.aclose()
            seen.append(client.status.name)
            seen.extend(sdk_tasks())
            done.set()

        client.add_handler(
            ProviderEvent.READY, lambda d: user_tg.start_soon(shutdown_app)
        )
        async with client:
            with anyio.fail_after(30):
                await done.wait()
        assert seen == ["NOT_READY"]


@pytest.mark.asyncio
async def test_a_fatal_set_up_reaches_error_handlers_early_and_late() -> None:
    client = Client(UNBUILDABLE_HTTP)
    before: list[str | None] = []
    client.add_handler(ProviderEvent.ERROR, lambda d: before.append(d.error_code))
    async with client:
        assert client.status is ProviderStatus.FATAL
        late: list[str | None] = []
        client.add_handler(ProviderEvent.ERROR, lambda d: late.append(d.error_code))
        await client._bus.wait_status(lambda s: True)
        with anyio.fail_after(30):
            while not (before and late):
                await anyio.lowlevel.checkpoint()
    assert before == late == ["PROVIDER_FATAL"]


@pytest.mark.asyncio
async def test_leaving_flag_value_changes_with_a_change_queued_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer({"f": FLAG}) as server, Client(config_for(server)) as client:
        await server.wait_for_stream()
        async with client.flag_value_changes("f", USER) as changes:
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            with anyio.fail_after(30):
                while client.snapshot().variation("f", USER, None) is True:
                    await anyio.lowlevel.checkpoint()
            assert changes is not None
        flushed = anyio.Event()
        client.add_flag_change_handler(lambda keys: flushed.set())
        server.set_flag("f", FLAG)
        with anyio.fail_after(30):
            await flushed.wait()  # everything queued before has been delivered
    assert "handler raised" not in caplog.text


@pytest.mark.parametrize(
    "backend", ["asyncio", pytest.param("trio", marks=HTTPX_TRIO_GENERATORS)]
)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_from_a_worker_thread_resets_the_child(backend: str) -> None:
    def fork_and_report(client: Client) -> dict[str, Any]:
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # threads + fork
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            try:
                detail = client.snapshot().variation_detail("f", USER, None)
                report = {"status": client.status.name, "error": detail.error_kind}
                os.write(write, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read) as pipe:
            result: dict[str, Any] = json.loads(pipe.read())
            return result

    async def main() -> None:
        async with (
            FlagServer({"f": FLAG}) as server,
            Client(config_for(server)) as client,
        ):
            await client._bus.wait_status(lambda s: True)
            report = await anyio.to_thread.run_sync(fork_and_report, client)
            assert report == {"status": "NOT_READY", "error": "CLIENT_NOT_READY"}
            assert client.status is ProviderStatus.READY  # the parent is untouched

    anyio.run(main, backend=backend)


@pytest.mark.asyncio
async def test_flag_server_refuses_a_second_concurrent_entry() -> None:
    server = FlagServer({"f": FLAG})
    results: list[str] = []
    release = anyio.Event()

    async def use() -> None:
        try:
            async with server:
                results.append("entered")
                await release.wait()
        except RuntimeError as exc:
            results.append(str(exc))
            release.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(use)
        tg.start_soon(use)
    assert sorted(results) == ["entered", "this FlagServer is already running"]
