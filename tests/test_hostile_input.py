"""Hostile payloads on every transport: rejected as invalid data, never a source crash.

A payload nested 100,000 deep, or with bytes that are not UTF-8, is refused:
the last good data keeps being served, a ready client goes STALE (one that is
not ready yet stays NOT_READY), the error says what was wrong, and the source
recovers with the next good payload (polls on their schedule, streams by
reconnecting). Streams are served by a scripted raw-socket server, because
the bytes on the wire must be exactly the hostile ones.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

import aioflags
from aioflags import (
    Client,
    Config,
    Context,
    DataSystem,
    ErrorKind,
    EventDetails,
    ProviderEvent,
    ProviderStatus,
    SourceState,
    sources,
)
from aioflags._client._http import make_http_client
from aioflags._core._json import parse
from aioflags._datasystem._sources._common import parse_json
from aioflags._datasystem._sources._watch import SETTLE
from aioflags.testing import FakeClock, Fault, FlagServer
from tests.raw_server import complete, raw_server, trickled
from tests.sources import poller, source_context

USER = Context.create("user-1")
POLL, FDV1_POLL = "/sdk/poll", "/sdk/latest-all"
DEEP = b"[" * 100_000 + b"]" * 100_000
BAD_UTF8 = b'"v\xff\xfe2"'  # was applied as "v\ufffd\ufffd2"
HOSTILE = pytest.mark.parametrize(
    ("raw", "cause"),
    [(DEEP, "nested too deeply"), (BAD_UTF8, "invalid UTF-8")],
    ids=["100k-deep", "invalid-utf8"],
)


def flag(value: object) -> dict[str, Any]:
    return {"on": True, "variations": [value], "fallthrough": {"variation": 0}}


def with_raw_value(document: object, raw: bytes) -> bytes:
    """``document`` as JSON bytes, with the string "RAW" replaced by ``raw`` verbatim."""
    return json.dumps(document).encode().replace(b'"RAW"', raw)


def fdv2_poll_body(raw: bytes) -> bytes:
    intent = {"payloads": [{"id": "p", "target": 9, "intentCode": "xfer-full"}]}
    obj = {"key": "f", "version": 9, **flag("RAW")}
    return with_raw_value(
        {
            "events": [
                {"event": "server-intent", "data": intent},
                {
                    "event": "put-object",
                    "data": {"kind": "flag", "key": "f", "version": 9, "object": obj},
                },
                # (the payload's end too: a deep object alone is served as
                # MALFORMED_FLAG and the rest applies, test_unusable_objects.py)
                {
                    "event": "payload-transferred",
                    "data": {"state": "RAW", "version": 9},
                },
            ]
        },
        raw,
    )


def fdv1_body(raw: bytes) -> bytes:
    obj = {"key": "f", "version": 9, **flag("RAW")}
    return with_raw_value({"flags": {"f": obj}, "segments": {}}, raw)


def sse(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def fdv2_stream(raw: bytes, version: int) -> bytes:
    intent = {"payloads": [{"id": "p", "target": version, "intentCode": "xfer-full"}]}
    obj = {"key": "f", "version": version, **flag("RAW")}
    put = {"kind": "flag", "key": "f", "version": version, "object": obj}
    done = {"state": "RAW", "version": version}  # (as in fdv2_poll_body)
    return (
        sse("server-intent", json.dumps(intent).encode())
        + sse("put-object", with_raw_value(put, raw))
        + sse("payload-transferred", with_raw_value(done, raw))
    )


def fdv1_stream(raw: bytes, version: int) -> bytes:
    obj = {"key": "f", "version": version, **flag("RAW")}
    return sse("put", with_raw_value({"path": "/", "data": {"flags": {"f": obj}}}, raw))


class StatusWatch:
    """Waits for a client status through the public handlers (no sleeping)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: list[EventDetails] = []
        self._changed = anyio.Event()
        for event in ProviderEvent:
            client.add_handler(event, self._on_event)

    def _on_event(self, details: EventDetails) -> None:
        self.events.append(details)
        self._changed.set()
        self._changed = anyio.Event()

    async def until(
        self,
        status: ProviderStatus,
        clock: FakeClock | None = None,
        within: float = 10,
    ) -> None:
        """Wait for ``status``; with ``clock``, moving it on by ``within`` whenever a task sleeps that soon.

        With a clock, a poll that fails on its way (a keep-alive connection
        the server closed as it was reused: seen under load) and is retried
        on the clock does not leave the wait hanging: the retry is woken.
        """
        with anyio.fail_after(30):  # a safety net: the wait ends on an event
            while self.client.status is not status:
                if clock is None:
                    await self._changed.wait()
                elif (
                    await self._changed_or_sleeper(clock, within)
                    and self.client.status is not status
                ):
                    await clock.advance(within)

    async def _changed_or_sleeper(self, clock: FakeClock, within: float) -> bool:
        """Wait for a status event or a task sleeping within ``within``: True if the latter."""
        changed, slept = self._changed, False
        async with anyio.create_task_group() as tg:

            async def on_change() -> None:
                await changed.wait()
                tg.cancel_scope.cancel()

            async def on_sleeper() -> None:
                nonlocal slept
                await clock.wait_for_sleeper(within=within)
                slept = True
                tg.cancel_scope.cancel()

            tg.start_soon(on_change)
            tg.start_soon(on_sleeper)
        return slept


def error_of(client: Client) -> aioflags.ErrorInfo:
    status = client.data_source_status
    assert status is not None and status.error is not None
    return status.error


async def value(client: Client) -> object:
    return await client.variation("f", USER, "default")


# ----------------------------------------------------------------- polling
@HOSTILE
@pytest.mark.parametrize("path", [POLL, FDV1_POLL], ids=["fdv2-poll", "fdv1-poll"])
@pytest.mark.asyncio
async def test_hostile_poll_body_is_invalid_data_and_the_poller_recovers(
    path: str, raw: bytes, cause: str
) -> None:
    clock = FakeClock()
    source = poller(path)
    body = fdv2_poll_body(raw) if path == POLL else fdv1_body(raw)
    async with FlagServer({"f": flag("v1")}) as server:
        cfg = server.config(
            data_system=DataSystem.custom(synchronizers=[source]),
            grace_period=60,
            send_events=False,
        )
        client = Client(cfg, clock=clock)
        watch = StatusWatch(client)
        async with client:
            assert await value(client) == "v1"
            server.fail(path, Fault(body=body))
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await watch.until(ProviderStatus.STALE)
            error = error_of(client)
            assert error.kind is ErrorKind.INVALID_DATA
            assert cause in error.message and f"{server.url}{path}" in error.message
            assert await value(client) == "v1"  # the last good data
            server.clear_faults()
            server.set_flag("f", flag("v2"))
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await watch.until(ProviderStatus.READY)
            assert await value(client) == "v2"
            status = client.data_source_status
            assert status is not None and status.state is SourceState.VALID


@pytest.mark.slow
@pytest.mark.parametrize("path", [POLL, FDV1_POLL], ids=["fdv2-poll", "fdv1-poll"])
@pytest.mark.asyncio
async def test_a_poll_trickled_for_ever_is_an_interruption_at_its_deadline(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx's read timeout is per read: a poll ends within connect + read timeout.

    The one that does not is a network error (STALE, logged), and polling goes on.
    """
    clock = FakeClock()
    good = complete(
        body=fdv2_poll_body(b'"v1"') if path == POLL else fdv1_body(b'"v1"')
    )
    async with raw_server(good) as server:
        server.script(good, trickled(every=0.05))
        cfg = Config(
            "sdk-key",
            base_uri=server.url,
            data_system=DataSystem.custom(synchronizers=[poller(path)]),
            grace_period=60,
            send_events=False,
            connect_timeout=0.25,
            read_timeout=1.0,
        )
        client = Client(cfg, clock=clock)
        watch = StatusWatch(client)
        async with client:
            assert await value(client) == "v1"
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await watch.until(ProviderStatus.STALE)  # within the 1.25 s deadline
            error = error_of(client)
            assert error.kind is ErrorKind.NETWORK_ERROR
            assert "no complete response within 1.25 s" in error.message
            assert f"{server.url}{path}" in error.message
            await server.wait_until(lambda: server.hung_up == 1, "the poll hang up")
            with anyio.fail_after(30):  # a guard: the next poll is scheduled
                await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await watch.until(ProviderStatus.READY)
            assert server.paths == [path] * 3
            status = client.data_source_status
            assert status is not None and status.state is SourceState.VALID
    assert "no complete response within 1.25 s" in caplog.text


@HOSTILE
@pytest.mark.asyncio
async def test_hostile_body_fails_the_polling_initializer_as_invalid_data(
    raw: bytes, cause: str
) -> None:
    """The default data system's initializer reports it; the next source goes on."""
    async with FlagServer({"f": flag("v1")}) as server:
        server.fail(POLL, Fault(body=fdv2_poll_body(raw)))
        config = server.config(send_events=False)
        async with make_http_client(config, "instance") as http:
            ctx = source_context(http, config=config)
            async with aclosing(sources.polling_initializer()(ctx)) as bases:
                basis = await bases.__anext__()
    assert basis.change_set is None and basis.error is not None
    assert basis.error.kind is ErrorKind.INVALID_DATA
    assert cause in basis.error.message and server.url in basis.error.message


@pytest.mark.asyncio
async def test_hostile_first_poll_leaves_the_client_not_ready_until_good_data() -> None:
    clock = FakeClock()
    system = DataSystem.custom(synchronizers=[sources.polling_synchronizer(interval=5)])
    async with FlagServer({"f": flag("v1")}) as server:
        server.script(POLL, Fault(body=fdv2_poll_body(DEEP)))
        client = Client(
            # The start's wait is the wall clock's (not the fake one): at
            # load 16 the deep body took past its default 5 s, and ERROR
            # (not ready in time) came before the second poll (issue 97).
            server.config(data_system=system, send_events=False, ready_timeout=600),
            clock=clock,
        )
        watch = StatusWatch(client)
        async with anyio.create_task_group() as tg:
            entered = anyio.Event()

            async def run() -> None:
                async with client:
                    entered.set()
                    await anyio.sleep_forever()

            tg.start_soon(run)
            await server.wait_for_requests(POLL)
            await clock.wait_for_sleeper(within=5)  # the next poll
            assert client.status is ProviderStatus.NOT_READY
            status = client.data_source_status
            assert status is not None and status.state is SourceState.INITIALIZING
            assert error_of(client).kind is ErrorKind.INVALID_DATA
            await clock.advance(5)
            await watch.until(ProviderStatus.READY, clock, within=5)
            await entered.wait()
            assert await value(client) == "v1"
            tg.cancel_scope.cancel()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_huge_shallow_garbage_and_wrongly_typed_flags_never_crash_the_poller() -> (
    None
):
    """Big garbage is refused as a payload; a wrongly typed flag is refused alone."""
    clock = FakeClock()
    system = DataSystem.custom(
        synchronizers=[sources.polling_synchronizer(interval=10)]
    )
    garbage = b"[" + b"0," * 1_000_000 + b"0]"  # 2 MB, parsed on a worker thread
    async with FlagServer({"f": flag("v1")}) as server:
        cfg = server.config(data_system=system, grace_period=60, send_events=False)
        client = Client(cfg, clock=clock)
        watch = StatusWatch(client)
        async with client:
            server.fail(POLL, Fault(body=garbage))
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await watch.until(ProviderStatus.STALE)
            assert error_of(client).kind is ErrorKind.INVALID_DATA
            assert "'events' key is missing" in error_of(client).message
            server.clear_faults()
            server.replace_all(
                {
                    "f": flag("v2"),
                    "bad": {
                        "on": "yes",
                        "variations": {"0": 1},
                        "rules": [{"clauses": "x"}],
                        "fallthrough": {"variation": "0"},
                        "targets": 7,
                    },
                }
            )
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await watch.until(ProviderStatus.READY)
            assert await value(client) == "v2"
            detail = await client.variation_detail("bad", USER, "default")
            assert detail.value == "default"
            assert detail.error_kind == "MALFORMED_FLAG"


# --------------------------------------------------------------- streaming
class RawStreamServer:
    """Answers each stream request with the next scripted body, byte for byte.

    A body is sent after a 200 ``text/event-stream`` head; then the server
    closes the connection if the script says so, or keeps it open until the
    client hangs up (which it may do while the body is being sent). Requests
    past the script are kept open with no data. ``headers`` are extra header
    lines (``b"content-encoding: gzip\r\n"``) sent with every head.
    """

    def __init__(self, *bodies: tuple[bytes, bool], headers: bytes = b"") -> None:
        self._script = list(bodies)
        self._headers = headers
        self.requests = 0
        self.url = ""
        self._request_seen = anyio.Event()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self.url = f"http://127.0.0.1:{port}"
        async with listener:
            task_status.started()
            await listener.serve(self._handle)

    async def wait_for_requests(self, count: int) -> None:
        with anyio.fail_after(30):
            while self.requests < count:
                await self._request_seen.wait()

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    head += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            self.requests += 1
            self._request_seen.set()
            self._request_seen = anyio.Event()
            body, close = self._script.pop(0) if self._script else (b"", False)
            try:
                await stream.send(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    + self._headers
                    + b"connection: close\r\n\r\n"
                    + body
                )
                if close:
                    return
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return


@asynccontextmanager
async def raw_stream_server(
    *bodies: tuple[bytes, bool], headers: bytes = b""
) -> AsyncIterator[RawStreamServer]:
    server = RawStreamServer(*bodies, headers=headers)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        yield server
        tg.cancel_scope.cancel()


@HOSTILE
@pytest.mark.parametrize("fdv1", [False, True], ids=["fdv2-stream", "fdv1-stream"])
@pytest.mark.asyncio
async def test_hostile_stream_event_restarts_the_stream_and_it_recovers(
    fdv1: bool, raw: bytes, cause: str
) -> None:
    clock = FakeClock()
    payload = fdv1_stream if fdv1 else fdv2_stream
    source = (
        sources.fdv1_streaming_synchronizer()
        if fdv1
        else sources.streaming_synchronizer()
    )
    async with raw_stream_server(
        (payload(b'"v1"', 1), True),  # good data, then a clean close
        (payload(raw, 2), False),  # hostile data, kept open
        (payload(b'"v2"', 3), False),  # good data after the reconnect
    ) as server:
        cfg = Config(
            "sdk-key",
            stream_uri=server.url,
            data_system=DataSystem.custom(synchronizers=[source]),
            retry_jitter=0,
            send_events=False,
        )
        client = Client(cfg, clock=clock)
        watch = StatusWatch(client)
        async with client:
            assert await value(client) == "v1"
            await clock.wait_for_sleeper(within=1)  # the clean close's backoff
            await clock.advance(1)
            await server.wait_for_requests(2)
            await watch.until(ProviderStatus.STALE)
            error = error_of(client)
            assert error.kind is ErrorKind.INVALID_DATA
            assert cause in error.message and server.url in error.message
            assert await value(client) == "v1"  # never the hostile value
            await clock.wait_for_sleeper(within=2)  # the reconnect backoff
            await clock.advance(2)
            await server.wait_for_requests(3)
            await watch.until(ProviderStatus.READY)
            assert await value(client) == "v2"
            status = client.data_source_status
            assert status is not None and status.state is SourceState.VALID


# -------------------------------------------------------------------- files
@HOSTILE
@pytest.mark.asyncio
async def test_hostile_flag_file_is_invalid_data_and_a_fixed_file_recovers(
    tmp_path: Path, raw: bytes, cause: str
) -> None:
    clock = FakeClock()
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flagValues": {"f": "v1"}}))
    system = DataSystem.file(path, reload=True, interval=1)
    client = Client(
        Config("sdk-key", data_system=system, send_events=False), clock=clock
    )
    watch = StatusWatch(client)
    async with client:
        assert await value(client) == "v1"
        path.write_bytes(with_raw_value({"flagValues": {"f": "RAW"}}, raw))
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        await clock.wait_for_sleeper(within=SETTLE)  # the settle check
        await clock.advance(SETTLE)
        await watch.until(ProviderStatus.STALE)
        error = error_of(client)
        assert error.kind is ErrorKind.INVALID_DATA and cause in error.message
        assert await value(client) == "v1"
        path.write_text(json.dumps({"flagValues": {"f": "v2", "g": 1}}))
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        await clock.wait_for_sleeper(within=SETTLE)  # the settle check
        await clock.advance(SETTLE)
        await watch.until(ProviderStatus.READY)
        assert await value(client) == "v2"


# -------------------------------------------------------- parsing off-loop
@pytest.mark.asyncio
async def test_deep_json_is_refused_on_the_worker_thread_too() -> None:
    """Bodies over 256 KiB are parsed on a worker thread: the same rules apply."""
    deep = b"[" * 300_000 + b"]" * 300_000
    with pytest.raises(aioflags.sources.ProtocolError, match="nested too deeply"):
        await parse_json(deep)
    with pytest.raises(aioflags.sources.ProtocolError, match="invalid UTF-8"):
        await parse_json(b"[" + b'"x",' * 100_000 + b'"\xff"]')


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (DEEP, "nested too deeply"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b'["v\xff\xfe2"]', "invalid UTF-8 at byte 3"),
        (b'"\xed\xa0\x80"', "invalid UTF-8"),  # an encoded surrogate is not UTF-8
        (b"[NaN]", "NaN is not valid JSON"),
        (b"-Infinity", "-Infinity is not valid JSON"),
        (b"[1,", "invalid JSON"),
        (b"1" * 5000, "invalid JSON"),  # past int's digit limit: a ValueError
        (b"", "invalid JSON"),
    ],
    ids=[
        "deep-arrays",
        "deep-objects",
        "bad-utf8",
        "surrogate",
        "nan",
        "infinity",
        "truncated",
        "huge-int",
        "empty",
    ],
)
def test_parse_refuses_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(aioflags.sources.ProtocolError, match=message):
        parse(data)


def test_parse_accepts_json_and_ignores_a_byte_order_mark() -> None:
    assert parse(b'\xef\xbb\xbf{"a": ["\xc3\xa9"]}') == {"a": ["é"]}
    assert parse('{"a": 1.5}') == {"a": 1.5}
