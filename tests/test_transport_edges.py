"""Transport edges: what a server can put in headers and fields, short of a status.

A redirect to a URL httpx cannot follow, an ``ETag`` or an SSE ``id`` that is
not a legal header value, a ``retry:`` field that is no sane integer, or an
initializer that never answers: each is an outage the source retries (or the
supervisor moves past), never a source removed for good or a start that
stalls. Served by the real loopback FlagServer.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from aioflags import (
    Client,
    Config,
    Context,
    DataSystem,
    ErrorKind,
    ProviderStatus,
    SourceState,
    sources,
)
from aioflags.testing import FakeClock, Fault, FlagServer
from tests.connections import counting
from tests.sources import poller

pytestmark = pytest.mark.asyncio

USER = Context.create("user-1")
POLL, STREAM, FDV1_POLL = "/sdk/poll", "/sdk/stream", "/sdk/latest-all"
FLAG = {"on": True, "variations": ["v1"], "fallthrough": {"variation": 0}}


def config(server: FlagServer, system: DataSystem, **kwargs: Any) -> Config:
    options = {"send_events": False, "retry_jitter": 0, "grace_period": 60}
    return server.config(data_system=system, **{**options, **kwargs})


async def until(client: Client, status: ProviderStatus) -> None:
    with anyio.fail_after(30):  # a safety net: the wait ends on a status event
        await client.wait_for_status(status)


def error_of(client: Client) -> tuple[SourceState, ErrorKind, str]:
    status = client.data_source_status
    assert status is not None and status.error is not None
    return status.state, status.error.kind, status.error.message


# ---------------------------------------------------------------- redirects
REDIRECTS = pytest.mark.parametrize(
    ("location", "cause"),
    [
        # The socket layer's OverflowError, inside anyio's ExceptionGroup.
        ("http://127.0.0.1:99999/x", "port must be 0-65535"),
        ("data:,hello", "InvalidURL"),  # httpx.InvalidURL is no httpx.HTTPError
    ],
    ids=["port-out-of-range", "data-url"],
)


@REDIRECTS
@pytest.mark.parametrize("path", [POLL, FDV1_POLL], ids=["fdv2-poll", "fdv1-poll"])
async def test_a_redirect_it_cannot_follow_interrupts_the_poller_which_retries(
    path: str, location: str, cause: str
) -> None:
    clock = FakeClock()
    source = poller(path)
    system = DataSystem.custom(synchronizers=[source])
    async with (
        FlagServer({"f": FLAG}) as server,
        Client(config(server, system), clock=clock) as client,
    ):
        assert await client.variation("f", USER, "default") == "v1"
        server.fail(path, Fault(status=302, headers={"Location": location}))
        await clock.wait_for_sleeper(within=10)
        await clock.advance(10)
        await until(client, ProviderStatus.STALE)
        state, kind, message = error_of(client)
        assert state is SourceState.INTERRUPTED  # not removed: OFF
        assert kind is ErrorKind.NETWORK_ERROR
        assert cause in message and f"{server.url}{path}" in message
        server.clear_faults()
        await clock.wait_for_sleeper(within=10)
        await clock.advance(10)
        await until(client, ProviderStatus.READY)


async def test_a_redirect_it_cannot_follow_interrupts_the_fdv1_fallback_poller() -> (
    None
):
    """After the directive the FDv1 poller is the only source: it must not go OFF."""
    clock = FakeClock()
    async with FlagServer({"f": FLAG}) as server:
        server.fail(POLL, Fault(headers={"X-LD-FD-Fallback": "true"}))
        system = DataSystem.polling(interval=10)
        async with Client(config(server, system), clock=clock) as client:
            with anyio.fail_after(30):
                await server.wait_for_requests(FDV1_POLL)
                await clock.wait_for_sleeper(within=10)
            redirect = Fault(status=302, headers={"Location": "data:,hello"})
            server.fail(FDV1_POLL, redirect)
            await clock.advance(10)
            await until(client, ProviderStatus.STALE)
            state, kind, _ = error_of(client)
            assert state is SourceState.INTERRUPTED and kind is ErrorKind.NETWORK_ERROR
            server.clear_faults(FDV1_POLL)
            with anyio.fail_after(30):
                await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await until(client, ProviderStatus.READY)


@REDIRECTS
async def test_a_redirect_it_cannot_follow_interrupts_the_stream_which_reconnects(
    location: str, cause: str
) -> None:
    clock = FakeClock()
    system = DataSystem.custom(synchronizers=[sources.streaming_synchronizer()])
    async with FlagServer({"f": FLAG}) as server:
        server.script(
            STREAM,
            Fault(close_after_events=True),
            Fault(status=307, headers={"Location": location}),
        )
        async with Client(config(server, system), clock=clock) as client:
            assert await client.variation("f", USER, "default") == "v1"
            await clock.wait_for_sleeper(within=1)  # the clean close's backoff
            await clock.advance(1)
            await until(client, ProviderStatus.STALE)
            state, kind, message = error_of(client)
            assert state is SourceState.INTERRUPTED
            assert kind is ErrorKind.NETWORK_ERROR and cause in message
            await clock.wait_for_sleeper(within=2)  # the reconnect backoff
            await clock.advance(2)
            await server.wait_for_requests(STREAM, 3)
            await until(client, ProviderStatus.READY)


@REDIRECTS
async def test_a_redirect_it_cannot_follow_fails_the_initializer_as_a_network_error(
    location: str, cause: str
) -> None:
    """Reported as the request's failure, not as a bug with a traceback."""
    system = DataSystem.custom(
        initializers=[sources.polling_initializer()],
        synchronizers=[sources.streaming_synchronizer()],
    )
    async with FlagServer({"f": FLAG}) as server:
        server.fail(POLL, Fault(status=302, headers={"Location": location}))
        async with Client(config(server, system)) as client:
            assert client.status is ProviderStatus.READY  # from the stream
            _, kind, message = error_of(client)  # errors are sticky
            assert kind is ErrorKind.NETWORK_ERROR
            assert cause in message and f"{server.url}{POLL}" in message


# ------------------------------------------------- values sent back as headers
@pytest.mark.parametrize("path", [POLL, FDV1_POLL], ids=["fdv2-poll", "fdv1-poll"])
async def test_an_etag_that_is_no_header_value_is_not_sent_back(path: str) -> None:
    clock = FakeClock()
    source = poller(path)
    system = DataSystem.custom(synchronizers=[source])
    async with FlagServer({"f": FLAG}) as server:
        server.fail(path, Fault(headers={"ETag": '"caf\u00e9"'}))
        async with Client(config(server, system), clock=clock) as client:
            assert client.status is ProviderStatus.READY
            with anyio.fail_after(30):
                await clock.wait_for_sleeper(within=10)
                await clock.advance(10)
                second = await server.wait_for_requests(path, 2)
                await clock.wait_for_sleeper(within=10)  # the poll was taken
            assert "if-none-match" not in second.headers
            assert client.status is ProviderStatus.READY
            status = client.data_source_status
            assert status is not None and status.error is None


async def test_a_stream_event_id_that_is_no_header_value_is_ignored() -> None:
    """The last usable id is sent on reconnect; the unusable one never is."""
    clock = FakeClock()
    system = DataSystem.custom(synchronizers=[sources.streaming_synchronizer()])
    events = (
        "id: good-1\nevent: heart-beat\ndata: {}\n\n"
        "id: caf\u00e9\nevent: heart-beat\ndata: {}\n\n"
    )
    async with FlagServer({"f": FLAG}) as server:
        server.script(STREAM, Fault(events=events, close_after_events=True))
        cfg = config(server, system, ready_timeout=0)
        async with Client(cfg, clock=clock) as client:
            with anyio.fail_after(30):
                await clock.wait_for_sleeper(within=1)  # the clean close's backoff
                await clock.advance(1)
                second = await server.wait_for_requests(STREAM, 2)
            assert second.headers["last-event-id"] == "good-1"
            await until(client, ProviderStatus.READY)


# --------------------------------------------------------------- retry: field
@pytest.mark.parametrize(
    ("retry", "delay"),
    [
        ("0", 0.1),  # raised to the floor: 0 reconnected in a hot loop
        ("9" * 5000, 1.0),  # no sane integer: ignored (int() raised ValueError)
    ],
    ids=["zero", "5000-digits"],
)
async def test_a_server_retry_field_never_makes_a_hot_loop_or_a_crash(
    retry: str, delay: float
) -> None:
    clock = FakeClock()
    system = DataSystem.custom(synchronizers=[sources.streaming_synchronizer()])
    events = f"retry: {retry}\nevent: heart-beat\ndata: {{}}\n\n"
    drop = Fault(events=events, close_after_events=True)
    async with FlagServer({"f": FLAG}) as server:
        server.script(STREAM, drop, drop, drop)  # a server that drops each stream
        cfg = config(server, system, ready_timeout=0, initial_retry_delay=1.0)
        async with Client(cfg, clock=clock) as client:
            # The backoff doubles from the server's delay: no hot loop.
            for attempt in range(3):
                wait = delay * 2**attempt
                with anyio.fail_after(30):
                    await clock.wait_for_sleeper(within=wait)  # the reconnect backoff
                assert clock.next_deadline == pytest.approx(clock.now() + wait)
                assert len(server.requests_to(STREAM)) == attempt + 1
                await clock.advance(wait)
            await until(client, ProviderStatus.READY)
            assert len(server.requests_to(STREAM)) == 4


# ------------------------------------------------------ initializer deadline
async def test_an_initializer_that_never_answers_gives_way_to_the_synchronizers() -> (
    None
):
    """A poll that never completes (a slow loris never trips the read timeout)."""
    clock = FakeClock()
    system = DataSystem.custom(
        initializers=[sources.polling_initializer()],
        synchronizers=[sources.streaming_synchronizer()],
    )
    with counting() as connections:
        async with FlagServer({"f": FLAG}) as server:
            server.fail(POLL, Fault(hang=True))
            cfg = config(server, system, ready_timeout=0, read_timeout=600)
            async with Client(cfg, clock=clock) as client:
                with anyio.fail_after(30):
                    await server.wait_for_requests(POLL)
                    await clock.wait_for_sleeper(within=10)  # initializing_timeout
                assert not server.requests_to(STREAM)
                await clock.advance(10)
                await until(client, ProviderStatus.READY)  # from the stream
                assert await client.variation("f", USER, "default") == "v1"
                with anyio.fail_after(30):  # the abandoned poll's socket is closed
                    await connections.wait_until(lambda c: c.closed >= 1)
                status = client.data_source_status
                assert status is not None and status.state is SourceState.VALID
