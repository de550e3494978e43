"""Network sources end to end: Client + DataSystem against the real loopback FlagServer.

Socket behaviour (connections closed, reconnects, headers, the fallback
directive on every response path) is proven against a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import aioflags
from aioflags import (
    Client,
    Config,
    Context,
    DataSystem,
    ProviderEvent,
    ProviderStatus,
    SourceState,
)
from aioflags.testing import FakeClock, Fault, FlagServer
from tests.connections import counting
from tests.flags import STRING_FLAG
from tests.sources import poller

pytestmark = pytest.mark.asyncio

USER = Context.create("user-1")
FLAG = STRING_FLAG
FALLBACK = {"X-LD-FD-Fallback": "true"}
POLL, STREAM, FDV1_POLL, FDV1_STREAM = (
    "/sdk/poll",
    "/sdk/stream",
    "/sdk/latest-all",
    "/all",
)
#: A safety net against a hang, never a timing (issue 97: a deadline a
#: loaded machine can beat is a red test that teaches people to ignore red).
#: Where a test proves that something happens at once rather than after a
#: timeout of the SDK's, that timeout is far longer than this (or the test's
#: clock is a FakeClock), so only a wait on it could trip this.
GUARD = 30


def config(server: FlagServer, **kwargs: Any) -> Config:
    # send_events: these tests count requests to the data endpoints
    # ready_timeout: a net for READY (issue 97); tests of its expiry give their own
    return server.config(**{"ready_timeout": GUARD, "send_events": False, **kwargs})


@asynccontextmanager
async def serving(**flags: dict[str, Any]) -> AsyncIterator[FlagServer]:
    async with FlagServer(flags or {"f": FLAG}) as server:
        yield server


@asynccontextmanager
async def streaming(clock: FakeClock) -> AsyncIterator[tuple[FlagServer, Client]]:
    """FlagServer and a streaming client on ``clock``, its stream open."""
    async with (
        serving() as server,
        Client(
            config(server, data_system=DataSystem.streaming()), clock=clock
        ) as client,
    ):
        await server.wait_for_stream()
        yield server, client


def status_of(client: Client) -> ProviderStatus:
    """Read through a call so mypy does not narrow the status across awaits."""
    return client.status


async def value(client: Client, key: str = "f") -> object:
    return await client.variation(key, USER, "default")


async def eventually(client: Client, expected: object, key: str = "f") -> None:
    """Wait until `key` serves `expected`, re-checked at each change event."""
    told = [anyio.Event()]

    def on_change(keys: frozenset[str]) -> None:
        told[0].set()

    remove = client.add_flag_change_handler(on_change)
    try:
        with anyio.fail_after(GUARD):
            while await value(client, key) != expected:
                await told[0].wait()
                told[0] = anyio.Event()
    finally:
        remove()


async def test_default_data_system_end_to_end() -> None:
    async with serving() as server:
        changes: list[aioflags.EventDetails] = []
        client = Client(config(server))
        client.add_handler(ProviderEvent.CONFIGURATION_CHANGED, changes.append)
        async with client:
            assert client.status is ProviderStatus.READY
            assert await value(client) == "on"
            poll = server.requests_to(POLL)[0]
            assert "basis" not in poll.query  # no selector yet
            stream = await server.wait_for_requests(STREAM)
            assert (
                stream.query["basis"] == server.state
            )  # basis = the state, never the version
            await server.wait_for_stream()
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            await eventually(client, "off")
            await client._bus.wait_delivered()
            assert changes[0].flags_changed == {"f"}
            assert client.data_source_status is not None
            assert client.data_source_status.state is SourceState.VALID
        # The client closed its socket; the server sees the EOF a step later.
        with anyio.fail_after(GUARD):
            await server.wait_for_streams_closed()
        assert status_of(client) is ProviderStatus.NOT_READY


@pytest.mark.parametrize("how", ["keyword", "positional"])
async def test_server_config_takes_the_sdk_key_as_documented(how: str) -> None:
    # docs/testing.md writes server.config(sdk_key=...): it raised TypeError
    # ("got multiple values for argument") while the key was positional-only.
    async with serving() as server:
        if how == "keyword":
            cfg = server.config(sdk_key="my-key", send_events=False)
        else:
            cfg = server.config("my-key", send_events=False)
        assert cfg.sdk_key == "my-key"
        async with Client(cfg) as client:
            assert await client.string_variation("f", USER, "fallback") != "fallback"
        assert server.requests
        assert {r.headers["authorization"] for r in server.requests} == {"my-key"}


async def test_headers_on_every_request() -> None:
    async with serving() as server:
        cfg = config(
            server,
            application_id="my-app",
            application_version="1.2",
            wrapper_name="fastapi",
            wrapper_version="0.1",
            instance_id="instance-1",
        )
        async with Client(cfg):
            await server.wait_for_requests(STREAM)
        for request in server.requests:
            assert request.headers["authorization"] == "sdk-key"
            assert request.headers["user-agent"] == f"aioflags/{aioflags.__version__}"
            assert request.headers["x-launchdarkly-instance-id"] == "instance-1"
            assert (
                request.headers["x-launchdarkly-tags"]
                == "application-id/my-app application-version/1.2"
            )
            assert request.headers["x-launchdarkly-wrapper"] == "fastapi/0.1"
        assert server.requests_to(STREAM)[0].headers["accept"] == "text/event-stream"


async def test_stream_reconnects_with_the_current_basis_and_applies_nothing_early() -> (
    None
):
    clock = FakeClock()
    async with serving() as server:
        # First stream: a complete payload, then the server closes the connection.
        server.script(STREAM, Fault(close_after_events=True))
        async with Client(
            config(server, data_system=DataSystem.streaming()), clock=clock
        ) as client:
            assert await value(client) == "on"
            first = server.requests_to(STREAM)[0]
            assert "basis" not in first.query
            first_state = server.state
            server.set_flag(
                "f", {**FLAG, "fallthrough": {"variation": 1}}
            )  # no stream open: next poll/connect
            # Second stream: objects but no payload-transferred before a hang: nothing applied.
            partial = (
                'event: server-intent\ndata: {"payloads":[{"id":"x","target":9,"intentCode":"xfer-full"}]}\n\n'
                'event: put-object\ndata: {"kind":"flag","key":"f","version":9,"object":'
                + json.dumps(
                    {**FLAG, "key": "f", "version": 9, "fallthrough": {"variation": 1}}
                )
                + "}\n\n"
            )
            server.script(STREAM, Fault(events=partial, hang_after_events=True))
            await clock.wait_for_sleeper(
                within=30
            )  # the client saw the close and backs off
            await clock.advance(30)  # past any backoff
            second = await server.wait_for_requests(STREAM, 2)
            assert second.query["basis"] == first_state  # recomputed: the basis we hold
            await server.wait_for_stream()
            assert await value(client) == "on"  # the partial payload was not applied
            assert client.status is ProviderStatus.READY, (
                client.data_source_status
            )  # a clean close reports nothing


async def test_error_event_drops_pending_changes_and_unknown_things_are_ignored() -> (
    None
):
    flag9 = {**FLAG, "key": "f", "version": 9, "fallthrough": {"variation": 1}}
    events = (
        'event: server-intent\ndata: {"payloads":[{"id":"x","target":9,"intentCode":"xfer-full"}]}\n\n'
        'event: put-object\ndata: {"kind":"flag","key":"f","version":1,"object":'
        + json.dumps({**FLAG, "key": "f", "version": 1})
        + "}\n\n"
        'event: put-object\ndata: {"kind":"gizmo","key":"g","version":1,"object":{}}\n\n'
        "event: mystery\ndata: {}\n\n"
        "event: heart-beat\ndata: {}\n\n"
        'event: payload-transferred\ndata: {"state":"(p:x:1)","version":1}\n\n'
        'event: put-object\ndata: {"kind":"flag","key":"f","version":9,"object":'
        + json.dumps(flag9)
        + "}\n\n"
        'event: error\ndata: {"payloadId":"x","reason":"oops"}\n\n'
        'event: goodbye\ndata: {"reason":"bye"}\n\n'
        'event: payload-transferred\ndata: {"state":"(p:x:2)","version":2}\n\n'
    )
    async with serving() as server:
        server.script(STREAM, Fault(events=events, hang_after_events=True))
        async with Client(config(server, data_system=DataSystem.streaming())) as client:
            await server.wait_for_stream()
            assert (
                await value(client) == "on"
            )  # the queued change was dropped by the error event
            assert client.status is ProviderStatus.READY


async def test_malformed_stream_data_reconnects_and_keeps_last_good_data() -> None:
    clock = FakeClock()
    async with streaming(clock) as (server, client):
        server.fail(
            STREAM,
            events="event: put-object\ndata: {not json\n\n",
            hang_after_events=True,
        )
        server.disconnect_streams()
        # The first backoff is at most 1 s and the next at least 1 s: advancing
        # exactly 1 s reconnects once, into the bad data, and no further.
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        await server.wait_for_requests(STREAM, 2)
        with anyio.fail_after(GUARD):
            await client._bus.wait_status(lambda s: s is ProviderStatus.STALE)
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert status.error.kind is aioflags.ErrorKind.INVALID_DATA
        assert await value(client) == "on"  # last good data
        server.clear_faults()
        await clock.wait_for_sleeper(within=2)  # the reconnect backoff
        await clock.advance(2)
        with anyio.fail_after(GUARD):
            await client._bus.wait_status(lambda s: s is ProviderStatus.READY)


async def test_polling_etag_and_304_mean_no_change() -> None:
    clock = FakeClock()
    async with (
        serving() as server,
        Client(
            config(server, data_system=DataSystem.polling(interval=30)), clock=clock
        ) as client,
    ):
        assert await value(client) == "on"
        await clock.wait_for_sleeper(within=30)
        await clock.advance(30)
        second = await server.wait_for_requests(POLL, 2)
        assert second.headers["if-none-match"] == '"1"'
        assert second.query["basis"] == server.state
        await clock.wait_for_sleeper(within=30)  # the 304 was handled
        assert await value(client) == "on"  # 304: no change, not empty data
        server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
        await clock.advance(30)
        await server.wait_for_requests(POLL, 3)
        await eventually(client, "off")


# -------------------------------------------------------------- the directive


async def test_directive_on_stream_connect_switches_to_fdv1_and_closes_the_stream() -> (
    None
):
    async with serving() as server:
        server.fail(STREAM, headers=FALLBACK)
        async with Client(config(server)) as client:
            await server.wait_for_requests(FDV1_POLL)
            # The stream's payload was applied first, then its socket was closed at
            # once: not at the stream's read timeout (300 s).
            with anyio.fail_after(GUARD):
                await server.wait_for_streams_closed()
            assert client.data_source_status is not None
            assert client.data_source_status.fdv1_fallback
            assert await value(client) == "on"
            streams = len(server.requests_to(STREAM))
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            assert len(server.requests_to(STREAM)) == streams  # never reconnected
            assert client.status is ProviderStatus.READY


@pytest.mark.parametrize(
    "status", [None, 500, 403, 304], ids=["200", "500", "403", "304"]
)
async def test_directive_on_the_polling_initializer(status: int | None) -> None:
    async with serving() as server:
        if status == 304:
            server.fail(POLL, headers=FALLBACK, status=None)
        else:
            server.fail(POLL, headers=FALLBACK, status=status)
        async with Client(config(server)) as client:
            await server.wait_for_requests(FDV1_POLL)
            assert (
                server.requests_to(STREAM) == []
            )  # FDv2 synchronizers never contacted
            assert await value(client) == "on"
            assert client.status is ProviderStatus.READY


async def test_directive_without_fdv1_is_off_and_retries_nothing() -> None:
    async with serving() as server:
        server.fail(POLL, headers=FALLBACK, status=503)
        system = DataSystem.custom(
            initializers=[aioflags.sources.polling_initializer()],
            synchronizers=[aioflags.sources.streaming_synchronizer()],
        )
        errors: list[aioflags.EventDetails] = []
        client = Client(config(server, data_system=system))
        client.add_handler(ProviderEvent.ERROR, errors.append)
        async with client:
            assert client.status is ProviderStatus.ERROR
            assert client.data_source_status is not None
            assert client.data_source_status.state is SourceState.OFF
            await client._bus.wait_delivered()
            assert len(server.requests) == 1
            assert errors[0].error_code == "GENERAL"


async def test_directive_on_a_stream_error_response() -> None:
    async with serving() as server:
        server.fail(STREAM, headers=FALLBACK, status=500)
        async with Client(config(server)) as client:
            await server.wait_for_requests(FDV1_POLL)
            assert len(server.requests_to(STREAM)) == 1
            assert client.status is ProviderStatus.READY


# ---------------------------------------------------------- connection policy


async def test_invalid_sdk_key_is_fatal_and_never_retried() -> None:
    async with serving() as server:
        for path in (POLL, STREAM, FDV1_POLL):
            server.fail(path, status=401)
        client = Client(config(server))
        async with client:
            assert client.status is ProviderStatus.FATAL
            count = len(server.requests)
            assert count == 3  # initializer, streaming, polling: each tried once
        assert client.status is ProviderStatus.FATAL
        with pytest.raises(aioflags.ClientClosedError, match="FATAL"):
            async with client:
                pass


async def test_a_403_after_start_removes_the_source_and_is_error_not_fatal() -> None:
    clock = FakeClock()
    async with streaming(clock) as (server, client):
        server.fail(STREAM, status=403)
        server.disconnect_streams()
        await clock.wait_for_sleeper(within=2)
        await clock.advance(2)
        with anyio.fail_after(GUARD):
            await client._bus.wait_status(lambda s: s is ProviderStatus.ERROR)
        assert await value(client) == "on"  # last good data served
        await clock.advance(10_000)
        assert len(server.requests_to(STREAM)) == 2  # removed for good: never retried
        assert client.status is ProviderStatus.ERROR


async def test_stale_then_error_after_grace_then_ready_with_changes() -> None:
    clock = FakeClock()
    async with serving() as server:
        statuses: list[ProviderStatus] = []
        client = Client(
            config(server, data_system=DataSystem.streaming(), grace_period=5),
            clock=clock,
        )
        for event in ProviderEvent:
            client.add_handler(event, lambda d: statuses.append(d.status))
        async with client:
            await server.wait_for_stream()
            # The server ends the stream and refuses reconnections for a while.
            server.fail(STREAM, status=503)
            server.disconnect_streams()
            await clock.wait_for_sleeper(
                within=2
            )  # a clean close: back off, report nothing
            assert client.status is ProviderStatus.READY
            await clock.advance(2)  # reconnect -> 503 -> STALE
            with anyio.fail_after(GUARD):
                await client._bus.wait_status(lambda s: s is ProviderStatus.STALE)
            assert await value(client) == "on"  # last good data served
            await clock.advance(5)  # the grace period
            with anyio.fail_after(GUARD):
                await client._bus.wait_status(lambda s: s is ProviderStatus.ERROR)
            server.clear_faults()
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            await clock.advance(60)
            with anyio.fail_after(GUARD):
                await client._bus.wait_status(lambda s: s is ProviderStatus.READY)
            await eventually(client, "off")
            await client._bus.wait_delivered()
        assert statuses[:3] == [
            ProviderStatus.READY,
            ProviderStatus.STALE,
            ProviderStatus.ERROR,
        ]
        assert ProviderStatus.READY in statuses[3:]


async def test_fdv1_only_data_system() -> None:
    async with (
        serving() as server,
        Client(config(server, data_system=DataSystem.fdv1())) as client,
    ):
        assert await value(client) == "on"
        await server.wait_for_stream(FDV1_STREAM)
        server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
        await eventually(client, "off")
        server.delete_flag("f")
        await eventually(client, "default")


# ------------------------------------------------------------------ shutdown


async def test_aclose_is_bounded_while_the_server_hangs_mid_response() -> None:
    with counting() as connections:
        async with serving() as server:
            server.fail(POLL, hang=True)
            # The hung poll could end only at its read timeout, an hour: a
            # close that waited for it could not beat GUARD.
            client = Client(config(server, ready_timeout=0.2, read_timeout=3600))
            async with client:
                await server.wait_for_requests(POLL)
                assert (
                    client.status is ProviderStatus.ERROR
                )  # ready_timeout passed while trying
                with anyio.fail_after(GUARD):
                    await client.aclose()
            assert connections.opened >= 1
            with anyio.fail_after(GUARD):
                await connections.all_closed()


async def test_aclose_during_a_stream_closes_the_socket() -> None:
    async with serving() as server:
        client = Client(config(server))
        async with client:
            await server.wait_for_stream()
            await client.aclose()
            await client.aclose()  # idempotent
            # closed by aclose, not at the stream's read timeout (300 s)
            with anyio.fail_after(GUARD):
                await server.wait_for_streams_closed()
        assert client.status is ProviderStatus.NOT_READY


async def test_restart_after_close() -> None:
    async with serving() as server:
        client = Client(config(server))
        async with client:
            assert client.status is ProviderStatus.READY
        async with client:
            assert client.status is ProviderStatus.READY
            assert await value(client) == "on"


# ------------------------------------------------------------- error paths


@pytest.mark.parametrize(
    ("fault", "kind", "state"),
    [
        (Fault(status=500), aioflags.ErrorKind.ERROR_RESPONSE, SourceState.INTERRUPTED),
        (Fault(status=404), aioflags.ErrorKind.ERROR_RESPONSE, SourceState.OFF),
        (
            Fault(body=b"{not json"),
            aioflags.ErrorKind.INVALID_DATA,
            SourceState.INTERRUPTED,
        ),
        (
            Fault(body=b'{"flags": []}'),
            aioflags.ErrorKind.INVALID_DATA,
            SourceState.INTERRUPTED,
        ),
    ],
    ids=["500", "404", "bad-json", "bad-shape"],
)
@pytest.mark.parametrize("path", [POLL, FDV1_POLL])
async def test_polling_error_paths(
    path: str, fault: Fault, kind: aioflags.ErrorKind, state: SourceState
) -> None:
    clock = FakeClock()
    source = poller(path)
    system = DataSystem.custom(synchronizers=[source])
    async with (
        serving() as server,
        Client(
            config(server, data_system=system, grace_period=0), clock=clock
        ) as client,
    ):
        assert await value(client) == "on"
        server.fail(path, fault)
        await clock.wait_for_sleeper(within=10)
        await clock.advance(10)
        await server.wait_for_requests(path, 2)
        with anyio.fail_after(GUARD):
            await client._bus.wait_status(lambda s: s is ProviderStatus.ERROR)
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert status.error.kind is kind
        expected = (
            SourceState.OFF if state is SourceState.OFF else SourceState.INTERRUPTED
        )
        assert status.state is expected
        assert await value(client) == "on"
        if state is SourceState.INTERRUPTED:
            server.clear_faults()
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            with anyio.fail_after(GUARD):
                await client._bus.wait_status(lambda s: s is ProviderStatus.READY)


async def test_fdv1_polling_304_is_no_change() -> None:
    clock = FakeClock()
    system = DataSystem.custom(
        synchronizers=[aioflags.sources.fdv1_polling_synchronizer(interval=5)]
    )
    async with (
        serving() as server,
        Client(config(server, data_system=system), clock=clock) as client,
    ):
        await clock.wait_for_sleeper(within=5)
        await clock.advance(5)
        second = await server.wait_for_requests(FDV1_POLL, 2)
        assert second.headers["if-none-match"] == '"1"'
        assert "basis" not in second.query  # never sent to FDv1 endpoints
        assert await value(client) == "on"


async def test_fdv1_polling_asks_again_in_full_after_a_body_it_could_not_use() -> None:
    """The ETag of a body that failed to parse is not sent: a 304 would keep it."""
    clock = FakeClock()
    system = DataSystem.custom(
        synchronizers=[aioflags.sources.fdv1_polling_synchronizer(interval=5)]
    )
    async with serving() as server:
        server.script(FDV1_POLL, Fault(body=b'{"flags": 5}'))  # JSON, not a payload
        async with Client(
            # A grace period past the poll interval: its timer is not the
            # sleeper within 5 s.
            config(server, data_system=system, ready_timeout=0, grace_period=60),
            clock=clock,
        ) as client:
            await clock.wait_for_sleeper(within=5)
            # Not waited for: a failure the next poll may fix leaves it
            # NOT_READY until the grace period ends.
            assert client.data_source_status is not None
            assert client.data_source_status.error is not None
            assert client.status is ProviderStatus.NOT_READY
            await clock.advance(5)
            second = await server.wait_for_requests(FDV1_POLL, 2)
            assert "if-none-match" not in second.headers
            with anyio.fail_after(GUARD):
                await client.wait_for_status(ProviderStatus.READY)
            assert await value(client) == "on"


@pytest.mark.slow
@pytest.mark.parametrize("fdv1", [False, True], ids=["fdv2", "fdv1"])
async def test_stream_wrong_content_type_and_refused_connection(fdv1: bool) -> None:
    clock = FakeClock()
    source = (
        aioflags.sources.fdv1_streaming_synchronizer()
        if fdv1
        else aioflags.sources.streaming_synchronizer()
    )
    path = FDV1_STREAM if fdv1 else STREAM
    async with serving() as server:
        server.script(path, Fault(status=200, body=b"plain text"))
        system = DataSystem.custom(synchronizers=[source])
        async with Client(
            config(server, data_system=system, ready_timeout=0.2), clock=clock
        ) as client:
            await server.wait_for_requests(path)
            # The source reports the error before it sleeps to retry.
            await clock.wait_for_sleeper(within=2)
            status = client.data_source_status
            assert status is not None and status.error is not None
            assert "text/event-stream" in status.error.message
            await clock.advance(2)
            await server.wait_for_stream(path)
            with anyio.fail_after(GUARD):
                await client._bus.wait_status(lambda s: s is ProviderStatus.READY)
    # Nothing listens any more: connection refused is a network error, retried.
    async with Client(
        config(
            server,
            data_system=DataSystem.custom(synchronizers=[source]),
            ready_timeout=0.2,
        ),
        clock=FakeClock(),
    ) as client:
        # ready_timeout is real time: on a slow machine the refusal may be
        # reported after it, so wait for the report itself.
        assert client._life.layer is not None
        with anyio.fail_after(GUARD):
            await client._life.layer.wait_data_source(
                lambda status: status is not None and status.error is not None
            )
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert status.error.kind is aioflags.ErrorKind.NETWORK_ERROR
        assert client.status is ProviderStatus.ERROR


async def test_fdv1_stream_bad_data_and_unrecoverable_status() -> None:
    clock = FakeClock()
    system = DataSystem.custom(
        synchronizers=[aioflags.sources.fdv1_streaming_synchronizer()]
    )
    async with (
        serving() as server,
        Client(
            config(server, data_system=system, grace_period=0), clock=clock
        ) as client,
    ):
        await server.wait_for_stream(FDV1_STREAM)
        server.script(
            FDV1_STREAM,
            Fault(
                events='event: patch\ndata: {"path": 5}\n\nevent: put\ndata: {bad\n\n',
                hang_after_events=True,
            ),
        )
        server.disconnect_streams()
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        with anyio.fail_after(GUARD):
            await client._bus.wait_status(lambda s: s is ProviderStatus.ERROR)
        server.fail(FDV1_STREAM, status=404)
        await clock.wait_for_sleeper(within=2)
        await clock.advance(2)
        await server.wait_for_requests(FDV1_STREAM, 3)
        assert client._life.layer is not None
        with anyio.fail_after(GUARD):
            await client._life.layer.wait_data_source(
                lambda status: status is not None and status.state is SourceState.OFF
            )
        assert await value(client) == "on"


async def test_aclose_while_a_stream_is_stalled_mid_event() -> None:
    half_event = 'event: put-object\ndata: {"kind":"flag","key":"f","vers'
    async with serving() as server:
        server.fail(STREAM, events=half_event, hang_after_events=True)
        client = Client(
            config(server, data_system=DataSystem.streaming(), ready_timeout=0.2)
        )
        async with client:
            await server.wait_for_stream()
            assert (
                client.status is ProviderStatus.ERROR
            )  # no complete payload ever arrived
            # The stalled stream could end only at its read timeout (300 s).
            with anyio.fail_after(GUARD):
                await client.aclose()
        with anyio.fail_after(GUARD):
            await server.wait_for_streams_closed()


@pytest.mark.slow
async def test_a_50_mb_payload_is_handled() -> None:
    big = {
        **FLAG,
        "variations": ["x" * (50 * 1024 * 1024), "small"],
        "fallthrough": {"variation": 1},
    }
    async with FlagServer({"big": big, "f": FLAG}) as server:
        system = DataSystem.custom(
            initializers=[aioflags.sources.polling_initializer()]
        )
        async with Client(
            config(server, data_system=system, ready_timeout=30)
        ) as client:
            assert client.status is ProviderStatus.READY
            assert await client.variation("big", USER, None) == "small"
            assert await value(client) == "on"


@pytest.mark.slow
async def test_a_silent_stream_times_out_and_reconnects_with_the_basis() -> None:
    async with serving() as server:
        server.script(STREAM, Fault(hang_after_events=True))  # a payload, then silence
        cfg = config(
            server,
            data_system=DataSystem.streaming(),
            stream_read_timeout=0.3,
            initial_retry_delay=0.01,
        )
        async with Client(cfg) as client:
            with anyio.fail_after(GUARD):
                second = await server.wait_for_requests(STREAM, 2)
            assert second.query["basis"] == server.state
            assert await value(client) == "on"


async def test_directive_on_a_polling_synchronizer_switches_to_fdv1() -> None:
    clock = FakeClock()
    async with serving() as server:
        system = DataSystem.polling(interval=10)
        async with Client(config(server, data_system=system), clock=clock) as client:
            server.fail(
                POLL, headers=FALLBACK
            )  # a 200 with a payload, and the directive
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await server.wait_for_requests(FDV1_POLL)
            assert await value(client) == "off"  # the directive's payload was applied
            polls = len(server.requests_to(POLL))
            await clock.advance(50)  # five FDv2 poll intervals
            assert len(server.requests_to(POLL)) == polls  # FDv2 polling never resumes


async def test_failover_closes_the_abandoned_stream() -> None:
    clock = FakeClock()
    async with serving() as server:
        # The stream connects but never completes a payload: after 10 s the
        # supervisor fails over to polling and the stream's socket is closed.
        server.fail(STREAM, events="", hang_after_events=True)
        async with Client(config(server, ready_timeout=1), clock=clock) as client:
            await server.wait_for_stream()
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            with anyio.fail_after(GUARD):  # (the FakeClock's time stands still)
                await server.wait_for_streams_closed()
            await server.wait_for_requests(
                POLL, 2
            )  # the polling synchronizer took over
            assert client.status is ProviderStatus.READY


async def test_a_payload_that_ends_mid_way_is_not_applied() -> None:
    clock = FakeClock()
    cut = 'event: server-intent\ndata: {"payloads":[{"id":"x","target":2,"intentCode":"xfer-full"}]}\n\nevent: put-obj'
    async with streaming(clock) as (server, client):
        server.script(STREAM, Fault(events=cut, abort_after_events=True))
        server.disconnect_streams()
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        await server.wait_for_requests(STREAM, 2)
        with anyio.fail_after(GUARD):
            await client._bus.wait_status(lambda s: s is ProviderStatus.STALE)
        assert await value(client) == "on"


async def test_the_service_makes_the_fdv1_poll_body_once_per_data_version() -> None:
    """FDv1 SDKs poll for all the data every time: the service serialises it
    once per data version (1,000 flags took ~20 ms a poll on its event loop),
    and a change makes the next poll's body anew."""
    import httpx

    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        first = await http.get(FDV1_POLL)
        kept = server._data.fdv1_poll_body()
        assert server._data.fdv1_poll_body() is kept  # made once
        assert json.loads(kept) == first.json()
        server.replace_all({"f": {**STRING_FLAG, "on": not STRING_FLAG["on"]}})
        second = await http.get(FDV1_POLL)
        assert server._data.fdv1_poll_body() is not kept
        assert second.json()["flags"]["f"]["on"] is not STRING_FLAG["on"]
        assert (
            second.json()["flags"]["f"]["version"]
            > first.json()["flags"]["f"]["version"]
        )
        unchanged = await http.get(
            FDV1_POLL, headers={"if-none-match": second.headers["etag"]}
        )
        assert unchanged.status_code == 304
        # A list of tags, or a weak one, matches as HTTP says (RFC 9110 13.1.2).
        tags = f'"x", W/{second.headers["etag"]}'
        listed = await http.get(FDV1_POLL, headers={"if-none-match": tags})
        assert listed.status_code == 304


async def test_the_service_makes_the_fdv2_poll_body_once_per_data_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 60, F3: at 20,000 flags each ``/sdk/poll`` took 740 ms to write."""
    import httpx

    from aioflags._service import _wire

    made = 0
    poll_body = _wire.fdv2_poll_body

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal made
        made += 1
        return poll_body(*args, **kwargs)

    monkeypatch.setattr(_wire, "fdv2_poll_body", counting)
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        first = [(await http.get("/sdk/poll")).json() for _ in range(3)]
        assert made == 1
        assert first[0] == first[2]
        server.set_flag("f", {**STRING_FLAG, "on": not STRING_FLAG["on"]})
        second = (await http.get("/sdk/poll")).json()
        assert made == 2
        assert second != first[0]
        assert second["events"][-1]["data"]["state"] == server.state


async def test_a_client_gets_the_edited_data_from_a_restarted_service() -> None:
    """H4: ``serve`` stopped, its file edited, started again on the same port.

    The client reconnects with its basis, the state of the service before;
    the state's version restarted from the same number, so it was told "up
    to date" and served the old data for as long as it ran, status VALID.
    The state is new at each start: the client gets the edited data, whole.
    (``f``'s edit bumps its version, so the client announces it; ``g``'s
    does not, and is served all the same: docs/testing.md.)
    """
    clock = FakeClock()

    async def hold(
        stop: anyio.Event,
        stopped: anyio.Event,
        *,
        task_status: anyio.abc.TaskStatus[FlagServer],
    ) -> None:
        async with FlagServer({"f": FLAG, "g": FLAG}) as server:
            task_status.started(server)
            await stop.wait()
        stopped.set()

    async with anyio.create_task_group() as group:
        stop, stopped = anyio.Event(), anyio.Event()
        first: FlagServer = await group.start(hold, stop, stopped)
        port = int(first.url.rsplit(":", 1)[1])
        async with Client(
            config(first, data_system=DataSystem.streaming()), clock=clock
        ) as client:
            await first.wait_for_stream()
            assert await value(client, "f") == await value(client, "g") == "on"
            basis = first.state
            stop.set()  # the service stops...
            with anyio.fail_after(GUARD):
                await stopped.wait()
            edited = {**FLAG, "fallthrough": {"variation": 1}}
            # ... and starts again, its file edited, on the same port
            async with FlagServer(
                {"f": {**edited, "version": 2}, "g": edited}, port=port
            ) as second:
                await clock.wait_for_sleeper(within=30)  # the client backs off
                await clock.advance(30)
                stream = await second.wait_for_requests(STREAM)
                assert stream.query["basis"] == basis  # what it holds
                await eventually(client, "off", "f")
                assert await value(client, "g") == "off"  # the same payload
                status = client.data_source_status
                assert status is not None and status.state is SourceState.VALID
