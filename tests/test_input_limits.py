"""The SDK's input limits: an oversized input is refused, read no further, and retried.

Every transport caps what it holds of one payload: a polling body (counted
once decompressed, so a gzip bomb stops at the limit), a stream line, a
stream event and a streamed payload at ``Config.max_payload_bytes``; the
changes of one payload at ``Config.max_payload_changes``. Over a limit the
source fails as for invalid data: one log line names the limit and the option
that raises it, a ready client goes STALE and keeps serving the last good
data, and the source retries with backoff (polls on their schedule, streams
by reconnecting) until a payload within the limits arrives. The limits are
set small here: no test allocates more than a few megabytes.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import httpx
import pytest

from aioflags import (
    Client,
    Config,
    ConfigurationError,
    DataSystem,
    ErrorKind,
    ProviderStatus,
    SourceState,
    sources,
)
from aioflags._client._http import make_http_client
from aioflags._datasystem._sources._body import PIECE, body_pieces
from aioflags.sources import ProtocolError
from aioflags.testing import FakeClock, Fault, FlagServer
from tests.sources import poller, source_context
from tests.test_hostile_input import (
    FDV1_POLL,
    POLL,
    USER,
    StatusWatch,
    error_of,
    flag,
    raw_stream_server,
    sse,
    value,
)

LIMIT = 4096  # max_payload_bytes in these tests
SOME = 3  # max_payload_changes in these tests
BYTES_OPTION = "(Config.max_payload_bytes)"
CHANGES_OPTION = "(Config.max_payload_changes)"


def flags(count: int, filler: int = 0) -> dict[str, dict[str, Any]]:
    """``f`` (value "big") and ``g1``..., each with ``filler`` characters of padding."""
    made = {"f": {**flag("big"), "key": "f", "version": 9}}
    for i in range(1, count):
        made[f"g{i}"] = {**flag(i), "key": f"g{i}", "version": 9}
    for obj in made.values():
        obj["description"] = "x" * filler
    return made


def fdv2_poll_body(objects: dict[str, dict[str, Any]]) -> bytes:
    intent = {"payloads": [{"id": "p", "target": 9, "intentCode": "xfer-full"}]}
    puts = [
        {
            "event": "put-object",
            "data": {"kind": "flag", "key": k, "version": 9, "object": o},
        }
        for k, o in objects.items()
    ]
    events = [
        {"event": "server-intent", "data": intent},
        *puts,
        {"event": "payload-transferred", "data": {"state": "s9", "version": 9}},
    ]
    return json.dumps({"events": events}).encode()


def fdv1_poll_body(objects: dict[str, dict[str, Any]]) -> bytes:
    return json.dumps({"flags": objects, "segments": {}}).encode()


def fdv2_stream(objects: dict[str, dict[str, Any]], version: int) -> bytes:
    intent = {"payloads": [{"id": "p", "target": version, "intentCode": "xfer-full"}]}
    puts = b"".join(
        sse(
            "put-object",
            json.dumps(
                {"kind": "flag", "key": k, "version": version, "object": o}
            ).encode(),
        )
        for k, o in objects.items()
    )
    done = {"state": f"(p:{version})", "version": version}
    return (
        sse("server-intent", json.dumps(intent).encode())
        + puts
        + sse("payload-transferred", json.dumps(done).encode())
    )


def fdv1_stream(objects: dict[str, dict[str, Any]], version: int) -> bytes:
    data = {k: {**o, "version": version} for k, o in objects.items()}
    return sse("put", json.dumps({"path": "/", "data": {"flags": data}}).encode())


def one_flag(value: str) -> dict[str, dict[str, Any]]:
    return {"f": {**flag(value), "key": "f", "version": 1}}


def limit_records(caplog: pytest.LogCaptureFixture, option: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if option in r.getMessage()]


# ------------------------------------------------------------------ config
def test_the_limits_have_generous_defaults_and_must_be_positive_integers() -> None:
    config = Config("k")
    assert config.max_payload_bytes == 100 * 1024 * 1024
    assert config.max_payload_changes == 250_000
    assert Config("k", max_payload_bytes=10**9).max_payload_bytes == 10**9
    for name in ("max_payload_bytes", "max_payload_changes"):
        for bad in (0, -1, 1.5, True, "100"):
            options: dict[str, Any] = {name: bad}
            with pytest.raises(ConfigurationError, match=f"{name} must be a positive"):
                Config("k", **options)


# ----------------------------------------------------------------- polling
POLL_CASES = pytest.mark.parametrize(
    ("path", "body", "headers", "message"),
    [
        (
            POLL,
            fdv2_poll_body(flags(1, filler=2 * LIMIT)),
            {},
            f"the body is over the limit of 4,096 bytes {BYTES_OPTION}",
        ),
        (
            FDV1_POLL,
            fdv1_poll_body(flags(1, filler=2 * LIMIT)),
            {},
            f"the body is over the limit of 4,096 bytes {BYTES_OPTION}",
        ),
        (  # 5 MB of JSON whitespace in 5 kB: a bomb stopped at the limit
            POLL,
            gzip.compress(b"{" + b" " * 5_000_000 + b"}"),
            {"Content-Encoding": "gzip"},
            f"the body is over the limit of 4,096 bytes {BYTES_OPTION}",
        ),
        (
            FDV1_POLL,
            gzip.compress(b"{" + b" " * 5_000_000 + b"}"),
            {"Content-Encoding": "gzip"},
            f"the body is over the limit of 4,096 bytes {BYTES_OPTION}",
        ),
        (
            POLL,
            fdv2_poll_body(flags(SOME + 1)),
            {},
            f"the payload is over the limit of 3 changes {CHANGES_OPTION}",
        ),
        (
            FDV1_POLL,
            fdv1_poll_body(flags(SOME + 1)),
            {},
            f"the payload is over the limit of 3 changes {CHANGES_OPTION}",
        ),
    ],
    ids=[
        "fdv2-body",
        "fdv1-body",
        "fdv2-gzip-bomb",
        "fdv1-gzip-bomb",
        "fdv2-changes",
        "fdv1-changes",
    ],
)


@POLL_CASES
@pytest.mark.asyncio
async def test_an_oversized_poll_is_refused_logged_once_and_polled_again(
    path: str,
    body: bytes,
    headers: dict[str, str],
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    async with FlagServer({"f": flag("v1")}) as server:
        cfg = server.config(
            data_system=DataSystem.custom(synchronizers=[poller(path)]),
            grace_period=60,
            send_events=False,
            max_payload_bytes=LIMIT,
            max_payload_changes=SOME,
        )
        client = Client(cfg, clock=clock)
        watch = StatusWatch(client)
        async with client:
            assert await value(client) == "v1"
            server.fail(path, Fault(body=body, headers=headers))
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await watch.until(ProviderStatus.STALE)
            error = error_of(client)
            assert error.kind is ErrorKind.INVALID_DATA
            assert message in error.message and f"{server.url}{path}" in error.message
            option = message.rsplit("(", 1)[1].rstrip(")")
            assert f"raise {option}" in error.message
            assert limit_records(caplog, option) == [
                f"aioflags data source: {error.message}"
            ]
            assert await value(client) == "v1"  # the last good data
            server.clear_faults()
            server.set_flag("f", flag("v2"))
            await clock.wait_for_sleeper(within=10)
            await clock.advance(10)
            await watch.until(ProviderStatus.READY)
            assert await value(client) == "v2"


@pytest.mark.asyncio
async def test_an_oversized_body_fails_the_polling_initializer() -> None:
    """The default data system's first source reports it; the next source goes on."""
    async with FlagServer({"f": flag("v1")}) as server:
        server.fail(POLL, Fault(body=fdv2_poll_body(flags(1, filler=2 * LIMIT))))
        config = server.config(send_events=False, max_payload_bytes=LIMIT)
        async with make_http_client(config, "instance") as http:
            ctx = source_context(http, config=config)
            async with aclosing(sources.polling_initializer()(ctx)) as bases:
                basis = await bases.__anext__()
    assert basis.change_set is None and basis.error is not None
    assert basis.error.kind is ErrorKind.INVALID_DATA
    assert f"the body is over the limit of 4,096 bytes {BYTES_OPTION}" in (
        basis.error.message
    )


# ----------------------------------------------------------- body decoding
async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _response(encoding: str, *parts: bytes) -> httpx.Response:
    headers = {"Content-Encoding": encoding} if encoding else {}
    request = httpx.Request("GET", "http://127.0.0.1/sdk/poll")
    return httpx.Response(
        200, headers=headers, content=_chunks(*parts), request=request
    )


def _deflate(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(wbits=wbits)
    return compressor.compress(data) + compressor.flush()


BODY = json.dumps({"events": [{"n": i, "pad": "y" * 50} for i in range(5000)]}).encode()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("", BODY),
        ("identity", BODY),
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("deflate", _deflate(BODY, zlib.MAX_WBITS)),  # zlib-wrapped, as specified
        ("deflate", _deflate(BODY, -zlib.MAX_WBITS)),  # raw, as some servers send
    ],
    ids=["none", "identity", "gzip", "x-gzip", "deflate-zlib", "deflate-raw"],
)
@pytest.mark.parametrize("chunk", [7, 1000, 1 << 20])
@pytest.mark.asyncio
async def test_bodies_are_decoded_in_bounded_pieces_however_they_arrive(
    encoding: str, encoded: bytes, chunk: int
) -> None:
    parts = [encoded[i : i + chunk] for i in range(0, len(encoded), chunk)]
    pieces = [
        p async for p in body_pieces(_response(encoding, *parts), limit=len(BODY))
    ]
    assert b"".join(pieces) == BODY
    assert max(map(len, pieces)) <= max(
        PIECE, chunk if encoding in ("", "identity") else 0
    )


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.asyncio
async def test_the_limit_is_the_most_bytes_taken(encoding: str) -> None:
    """A body of exactly the limit is taken; one byte more is refused."""
    encoded = gzip.compress(BODY) if encoding == "gzip" else BODY
    taken = body_pieces(_response(encoding, encoded), limit=len(BODY))
    assert b"".join([p async for p in taken]) == BODY
    with pytest.raises(ProtocolError, match=BYTES_OPTION.replace(".", r"\.")):
        async for _ in body_pieces(_response(encoding, encoded), limit=len(BODY) - 1):
            pass


@pytest.mark.asyncio
async def test_a_gzip_bomb_is_inflated_no_further_than_the_limit() -> None:
    """50 MB of zeros in 50 kB, in one network read: never more than a piece at a time."""
    bomb = gzip.compress(b"\0" * 50_000_000)
    seen: list[int] = []

    async def inflate() -> None:
        async for piece in body_pieces(_response("gzip", bomb), limit=1 << 20):
            seen.append(len(piece))  # noqa: PERF401 - kept as the pieces come

    with pytest.raises(ProtocolError, match=r"over the limit of 1,048,576 bytes"):
        await inflate()
    assert max(seen) <= PIECE
    assert sum(seen) <= 1 << 20


@pytest.mark.asyncio
async def test_a_body_not_in_its_encoding_is_a_decoding_error() -> None:
    with pytest.raises(httpx.DecodingError, match="not valid gzip"):
        async for _ in body_pieces(_response("gzip", b"not gzip at all")):
            pass


# --------------------------------------------------------------- streaming
def _no_newline(fdv1: bool) -> bytes:
    return b"event: put\ndata: " if fdv1 else b"event: put-object\ndata: "


STREAM_CASES = pytest.mark.parametrize(
    ("hostile", "message"),
    [
        (  # a line that never ends
            lambda fdv1: _no_newline(fdv1) + b"x" * (LIMIT * 4),
            f"a stream line is over the limit of 4,096 bytes {BYTES_OPTION}",
        ),
        (  # an event whose data lines never end
            lambda fdv1: _no_newline(fdv1) + b"xx\ndata: " * LIMIT,
            f"a stream event is over the limit of 4,096 bytes {BYTES_OPTION}",
        ),
        (  # too many flags in one payload
            lambda fdv1: (fdv1_stream if fdv1 else fdv2_stream)(flags(SOME + 1), 2),
            f"the payload is over the limit of 3 changes {CHANGES_OPTION}",
        ),
    ],
    ids=["line", "event", "changes"],
)


@STREAM_CASES
@pytest.mark.parametrize("fdv1", [False, True], ids=["fdv2-stream", "fdv1-stream"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.asyncio
async def test_an_oversized_stream_input_drops_the_stream_and_it_reconnects(
    fdv1: bool,
    encoding: str,
    hostile: Any,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    payload = fdv1_stream if fdv1 else fdv2_stream
    source = (
        sources.fdv1_streaming_synchronizer()
        if fdv1
        else sources.streaming_synchronizer()
    )

    def encode(body: bytes) -> bytes:
        return gzip.compress(body) if encoding == "gzip" else body

    async with raw_stream_server(
        (encode(payload(one_flag("v1"), 1)), True),  # good data, then a clean close
        (encode(hostile(fdv1)), False),  # too big, kept open
        (encode(payload(one_flag("v2"), 3)), False),  # good data after the reconnect
        headers=f"content-encoding: {encoding}\r\n".encode(),
    ) as server:
        cfg = Config(
            "sdk-key",
            stream_uri=server.url,
            data_system=DataSystem.custom(synchronizers=[source]),
            retry_jitter=0,
            send_events=False,
            max_payload_bytes=LIMIT,
            max_payload_changes=SOME,
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
            assert message in error.message and server.url in error.message
            option = message.rsplit("(", 1)[1].rstrip(")")
            assert limit_records(caplog, option) == [
                f"aioflags data source: {error.message}"
            ]
            assert await value(client) == "v1"  # never the oversized payload
            await clock.wait_for_sleeper(within=2)  # the reconnect backoff
            await clock.advance(2)
            await server.wait_for_requests(3)
            await watch.until(ProviderStatus.READY)
            assert await value(client) == "v2"
            status = client.data_source_status
            assert status is not None and status.state is SourceState.VALID


@pytest.mark.asyncio
async def test_a_streamed_payload_over_the_byte_limit_is_refused() -> None:
    """Each event is within the limit; the events of one payload together are not."""
    events = fdv2_stream(flags(SOME, filler=LIMIT // 2), 2)
    async with raw_stream_server(
        (fdv2_stream(one_flag("v1"), 1), True), (events, False)
    ) as server:
        clock = FakeClock()
        cfg = Config(
            "sdk-key",
            stream_uri=server.url,
            data_system=DataSystem.custom(
                synchronizers=[sources.streaming_synchronizer()]
            ),
            retry_jitter=0,
            send_events=False,
            max_payload_bytes=LIMIT,
        )
        client = Client(cfg, clock=clock)
        watch = StatusWatch(client)
        async with client:
            await clock.wait_for_sleeper(within=1)
            await clock.advance(1)
            await watch.until(ProviderStatus.STALE)
            assert (
                f"the payload is over the limit of 4,096 bytes {BYTES_OPTION}"
                in error_of(client).message
            )
            assert await value(client) == "v1"


@pytest.mark.asyncio
async def test_payloads_within_the_limits_are_counted_afresh_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Payload after payload on one connection, each near the limits: all are taken."""

    def payload(version: int) -> bytes:
        objects = flags(SOME, filler=LIMIT // 4)
        objects["f"] = {**objects["f"], **flag(f"v{version}"), "version": version}
        return fdv2_stream(objects, version)

    body = b"".join(payload(v) for v in (1, 2, 3))
    async with raw_stream_server((body, False)) as server:
        cfg = Config(
            "sdk-key",
            stream_uri=server.url,
            data_system=DataSystem.custom(
                synchronizers=[sources.streaming_synchronizer()]
            ),
            send_events=False,
            max_payload_bytes=LIMIT,
            max_payload_changes=SOME,
        )
        client = Client(cfg)
        third = anyio.Event()
        client.add_flag_value_change_handler(
            "f", USER, lambda change: third.set() if change.new_value == "v3" else None
        )
        async with client:
            with anyio.fail_after(30):  # a safety net: the wait ends on the change
                await third.wait()
            assert await value(client) == "v3"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
