"""Error messages that diagnose: the URL, the status or the root cause, and what to do.

Every failure here happens on a real socket on 127.0.0.1: TLS spoken to a
plain-HTTP port, a connection reset (RST), a connection dropped mid-body, a
refused connection, and 401/404 answers. Each transport goes through the one
translation in ``aioflags._datasystem._sources._common.failure``.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from aioflags import (
    Client,
    Config,
    ConfigurationError,
    DataSystem,
    ErrorInfo,
    ErrorKind,
    sources,
)
from aioflags.__main__ import main
from aioflags._client._http import make_http_client
from aioflags._datasystem._sources._common import PollTimeout, display_url, failure
from aioflags.sources import SourceContext, Update
from aioflags.testing import FakeClock, Fault, FlagServer
from tests.sources import source_context

SDK_KEY = "sdk-0123-secret-key"
POLL, STREAM, FDV1_POLL = "/sdk/poll", "/sdk/stream", "/sdk/latest-all"
Factory = Callable[[SourceContext], AsyncGenerator[Update, None]]
TRANSPORTS: dict[str, tuple[str, Callable[[], Factory]]] = {
    "fdv2-poll": (POLL, lambda: sources.polling_synchronizer(interval=5)),
    "fdv2-stream": (STREAM, sources.streaming_synchronizer),
    "fdv1-poll": (FDV1_POLL, lambda: sources.fdv1_polling_synchronizer(interval=5)),
}
ALL_TRANSPORTS = pytest.mark.parametrize("transport", list(TRANSPORTS))


async def first_error(transport: str, base: str) -> ErrorInfo:
    """The error that one transport's first attempt against ``base`` reports."""
    _, factory = TRANSPORTS[transport]
    config = Config(
        SDK_KEY, base_uri=base, stream_uri=base, connect_timeout=5, send_events=False
    )
    async with make_http_client(config, "instance") as http:
        ctx = source_context(http, config=config)
        async with aclosing(factory()(ctx)) as updates:
            with anyio.fail_after(30):
                update = await updates.__anext__()
    assert update.error is not None, update
    assert SDK_KEY not in update.error.message
    return update.error


@asynccontextmanager
async def tcp_server(
    handle: Callable[[anyio.abc.SocketStream], Awaitable[None]],
) -> AsyncIterator[int]:
    """A listener on 127.0.0.1 running ``handle`` per connection; yields the port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port: int = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve_one(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await handle(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve_one)
        yield port
        tg.cancel_scope.cancel()


async def plain_http_400(stream: anyio.abc.SocketStream) -> None:
    """What a plain-HTTP server says to a TLS ClientHello: a 400 in clear text."""
    await stream.receive()
    await stream.send(
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )


async def hang_up(stream: anyio.abc.SocketStream) -> None:
    """Read what the client sends first, then close without a word."""
    await stream.receive()


async def reset(stream: anyio.abc.SocketStream) -> None:
    """Read the request, then close with SO_LINGER 0: the peer gets an RST."""
    await stream.receive()
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@ALL_TRANSPORTS
@pytest.mark.asyncio
async def test_tls_to_a_plain_http_port_names_the_ssl_error_url_and_fix(
    transport: str,
) -> None:
    async with tcp_server(plain_http_400) as port:
        base = f"https://127.0.0.1:{port}"
        error = await first_error(transport, base)
    path = TRANSPORTS[transport][0]
    assert error.kind is ErrorKind.NETWORK_ERROR
    assert f"{base}{path}" in error.message
    assert (
        "[SSL" in error.message
    )  # the ssl module's own words, e.g. WRONG_VERSION_NUMBER
    assert "is the URL http:// rather than https://?" in error.message


@pytest.mark.asyncio
async def test_tls_to_a_server_that_hangs_up_names_the_handshake() -> None:
    """A server that drops the ClientHello gives UNEXPECTED_EOF instead."""
    async with tcp_server(hang_up) as port:
        base = f"https://127.0.0.1:{port}"
        error = await first_error("fdv2-poll", base)
    assert "SSLEOFError" in error.message and base in error.message
    assert "hung up during the TLS handshake" in error.message
    assert "http:// rather than https://" in error.message


@ALL_TRANSPORTS
@pytest.mark.asyncio
async def test_a_connection_reset_names_connection_reset_error(transport: str) -> None:
    async with tcp_server(reset) as port:
        base = f"http://127.0.0.1:{port}"
        error = await first_error(transport, base)
    assert error.kind is ErrorKind.NETWORK_ERROR
    assert f"{base}{TRANSPORTS[transport][0]}" in error.message
    assert "ConnectionResetError" in error.message
    assert "Connection reset by peer" in error.message


@pytest.mark.asyncio
async def test_a_stream_dropped_mid_body_names_what_the_http_layer_saw() -> None:
    async with FlagServer({"f": {"on": True}}) as server:
        server.script(
            STREAM, Fault(events="event: heart-beat\n", abort_after_events=True)
        )
        error = await first_error("fdv2-stream", server.url)
    assert f"{server.url}{STREAM}" in error.message
    assert "RemoteProtocolError" in error.message
    assert "peer closed connection" in error.message


@ALL_TRANSPORTS
@pytest.mark.asyncio
async def test_a_refused_connection_says_nothing_is_listening(transport: str) -> None:
    async with tcp_server(reset) as port:
        pass  # the port is closed again: nothing listens there now
    base = f"http://127.0.0.1:{port}"
    error = await first_error(transport, base)
    assert "ConnectionRefusedError" in error.message and base in error.message
    assert "check the host and port" in error.message


@ALL_TRANSPORTS
@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (404, "check the base URI (or the relay proxy's path)"),
        (401, "check that the SDK key is the server-side SDK key of this environment"),
    ],
)
@pytest.mark.asyncio
async def test_a_404_or_401_names_the_status_url_and_fix(
    transport: str, status: int, hint: str
) -> None:
    path = TRANSPORTS[transport][0]
    async with FlagServer() as server:
        server.fail(path, status=status)
        error = await first_error(transport, server.url)
    assert error.kind is ErrorKind.ERROR_RESPONSE and error.status_code == status
    assert f"HTTP error {status}" in error.message
    assert f"{server.url}{path}" in error.message
    assert hint in error.message


@pytest.mark.asyncio
async def test_the_client_status_and_the_log_carry_the_same_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer() as server:
        server.fail(POLL, status=404)
        system = DataSystem.custom(
            synchronizers=[sources.polling_synchronizer(interval=5)]
        )
        cfg = server.config(
            SDK_KEY, data_system=system, ready_timeout=5, send_events=False
        )
        with caplog.at_level(logging.WARNING, logger="aioflags"):
            async with Client(cfg, clock=FakeClock()) as client:
                status = client.data_source_status
                assert status is not None and status.error is not None
                message = status.error.message
    assert f"{server.url}{POLL}" in message and "HTTP error 404" in message
    assert message in caplog.text
    assert SDK_KEY not in caplog.text


def test_credentials_and_query_never_reach_the_message() -> None:
    url = httpx.URL("https://user:pa55@relay.example:8443/sdk/poll?basis=x&filter=y")
    assert display_url(url) == "https://relay.example:8443/sdk/poll"


def _chained(outer: Exception, root: BaseException) -> Exception:
    outer.__cause__ = root
    return outer


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            _chained(
                httpx.ConnectError(""),
                ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED]"),
            ),
            "Config(verify='/path/to/ca.pem')",
        ),
        (
            _chained(
                httpx.ConnectError("[Errno -2] Name unknown"),  # httpx repeats it
                socket.gaierror(-2, "Name unknown"),
            ),
            "gaierror: [Errno -2] Name unknown (ConnectError) - the host name did not",
        ),
        (httpx.ProxyError("407 from proxy"), "check Config.proxy"),
        (httpx.ConnectTimeout(""), "no connection within Config.connect_timeout"),
        (httpx.ReadTimeout(""), "silent for longer than the read timeout"),
        (httpx.ReadError("boom"), "failed: ReadError: boom"),
        (
            PollTimeout("no complete response within 20 s"),
            "within 20 s - the server answers too slowly: raise Config.read_timeout",
        ),
    ],
    ids=[
        "untrusted-cert",
        "dns",
        "proxy",
        "connect-timeout",
        "read-timeout",
        "plain",
        "deadline",
    ],
)
def test_transport_hints(exc: Exception, expected: str) -> None:
    """The mapping alone, for failures a loopback socket cannot stage."""
    config = Config(SDK_KEY, send_events=False)
    # verify=False: it never sends, so no CA bundle to load
    ctx = source_context(httpx.AsyncClient(verify=False), config=config)
    error, retry = failure(
        ctx, "polling request", "https://relay.example/sdk/poll", exc
    )
    assert retry and error.kind is ErrorKind.NETWORK_ERROR
    assert error.message.startswith("polling request to https://relay.example/sdk/poll")
    assert expected in error.message


# ------------------------------------------------------ wrong types in Config
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"data_system": DataSystem.polling},
            "data_system must be an aioflags.DataSystem, got the method that makes "
            "one: call it, as in data_system=DataSystem.polling()",
        ),
        (
            {"data_system": "streaming"},
            "data_system must be an aioflags.DataSystem, got 'streaming': "
            "use data_system=DataSystem.streaming()",
        ),
        (
            {"send_events": "false"},
            "send_events must be True or False, got 'false': a string is not parsed "
            "here (Config.from_env() reads true/false from the environment)",
        ),
        (
            {"wrapper_name": "w\r\n"},
            "wrapper_name is sent as an HTTP header value: it must be a string of "
            "visible ASCII characters (spaces only inside), got 'w\\r\\n'",
        ),
    ],
    ids=[
        "data-system-not-called",
        "data-system-as-a-string",
        "boolean-as-a-string",
        "header-option-with-a-newline",
    ],
)
def test_config_of_a_wrong_type_says_what_to_give(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Config("k", **options)
    assert str(raised.value) == message


# ------------------------------------------------- configuration from the env
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"AIOFLAGS_SDK_KEY": "k\n"},
            "AIOFLAGS_SDK_KEY: sdk_key has '\\n' at the end (read from a file or "
            "an environment variable? strip it)",
        ),
        (
            {"LAUNCHDARKLY_SDK_KEY": "sdk key"},
            "LAUNCHDARKLY_SDK_KEY: sdk_key has ' ' at position 3",
        ),
        (
            {"AIOFLAGS_SDK_KEY": "k", "AIOFLAGS_BASE_URI": "relay:8030"},
            "AIOFLAGS_BASE_URI: base_uri must be an http:// or https:// URL, "
            "got 'relay:8030'",
        ),
        (
            {"AIOFLAGS_SDK_KEY": "k", "AIOFLAGS_READY_TIMEOUT": "-1"},
            "AIOFLAGS_READY_TIMEOUT: ready_timeout must be >= 0, got -1.0",
        ),
        (
            {"AIOFLAGS_SDK_KEY": "k", "AIOFLAGS_POLL_INTERVAL": "0"},
            "AIOFLAGS_POLL_INTERVAL: poll_interval must be > 0, got 0.0",
        ),
    ],
    ids=["key-newline", "ld-key-space", "base-uri", "ready-timeout", "poll-interval"],
)
def test_config_from_env_errors_name_the_variable(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env(env)
    assert str(raised.value).startswith(expected), raised.value
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AIOFLAGS_CONNECT_TIMEOUT": "1000"}, "AIOFLAGS_CONNECT_TIMEOUT"),
        ({"AIOFLAGS_READ_TIMEOUT": "0.5"}, "AIOFLAGS_READ_TIMEOUT"),
        (
            {"AIOFLAGS_CONNECT_TIMEOUT": "5", "AIOFLAGS_READ_TIMEOUT": "1"},
            "AIOFLAGS_READ_TIMEOUT, AIOFLAGS_CONNECT_TIMEOUT",
        ),
    ],
    ids=["second-option", "first-option", "both"],
)
def test_config_from_env_names_each_variable_an_error_is_about(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message about two options names the variables that set either, not the first word's."""
    validate = Config._validate

    def with_a_check_of_two_options(config: Config) -> None:
        validate(config)
        if config.read_timeout < config.connect_timeout:
            raise ConfigurationError(
                "read_timeout must not be smaller than connect_timeout"
            )

    monkeypatch.setattr(Config, "_validate", with_a_check_of_two_options)
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env({"AIOFLAGS_SDK_KEY": "k", **env})
    assert str(raised.value) == (
        f"{named}: read_timeout must not be smaller than connect_timeout"
    )


def test_config_from_env_names_no_variable_for_the_value_it_got() -> None:
    """A value that reads like an option's name names no variable of its own."""
    env = {"AIOFLAGS_BASE_URI": "proxy", "AIOFLAGS_PROXY": "http://127.0.0.1:3128"}
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env(env)
    assert str(raised.value) == (
        "AIOFLAGS_BASE_URI: base_uri must be an http:// or https:// URL, got 'proxy'"
    )


def test_config_from_env_names_no_variable_for_a_keyword_that_wins() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env({"AIOFLAGS_READY_TIMEOUT": "1"}, ready_timeout=-1)
    assert str(raised.value) == "ready_timeout must be >= 0, got -1"


def test_eval_without_a_key_or_a_file_suggests_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in list(os.environ):
        if variable.startswith("AIOFLAGS_") or variable == "LAUNCHDARKLY_SDK_KEY":
            monkeypatch.delenv(variable)
    assert main(["eval", "f", "--context", "u1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no flag file and no SDK key: evaluate from a flag ")
    assert "--file FLAGS.json" in err and "set AIOFLAGS_SDK_KEY" in err


@pytest.mark.parametrize("where", ["argument", "file"])
def test_eval_says_in_one_line_that_a_context_is_nested_too_deeply(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a RecursionError traceback: one line, exit status 2, as for invalid JSON."""
    deep = '{"kind": "user", "key": "u1", "a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    if where == "file":
        (tmp_path / "context.json").write_text(deep)
        deep = f"@{tmp_path / 'context.json'}"
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "f", "--context", deep, "--file", "flags.json"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith("error: --context: JSON nested too deeply to parse\n"), err
    assert "Traceback" not in err
