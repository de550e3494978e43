"""Logging that follows Python's conventions: no handler, child loggers, fields, no key."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import aioflags
from aioflags import Client, ProviderStatus
from aioflags.testing import FlagServer
from tests.flags import BOOL_FLAG
from tests.processes import HTTP_GUARD

FLAG = BOOL_FLAG
SECRET = "sdk-0123456789abcdef-secret"


class NotAContext:
    """Something a caller might pass by mistake."""


@pytest.mark.slow
@pytest.mark.asyncio
async def test_the_library_configures_no_handler_and_no_level_on_any_logger() -> None:
    """The application decides; with nothing configured, WARNING reaches stderr."""
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/stream", status=503)
        async with Client(server.config(SECRET, send_events=False)):
            await server.wait_for_requests("/sdk/stream", 2)
    loggers = [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
        and (name == "aioflags" or name.startswith("aioflags."))
    ]
    assert {"aioflags", "aioflags.datasource", "aioflags.evaluation"} <= {
        logger.name for logger in loggers
    }
    for logger in loggers:
        assert logger.handlers == [], logger.name  # no NullHandler either
        assert logger.level == logging.NOTSET, logger.name
        assert logger.propagate, logger.name
    assert aioflags.__name__ == "aioflags"


# An ASGI app as the docs write one, served by uvicorn with its default logging
# (which configures only uvicorn's own loggers) and nothing else.
UVICORN_APP = """\
import os

import aioflags

URL = os.environ["FLAG_SERVICE_URL"]
client = aioflags.Client(
    aioflags.Config("sdk-key", base_uri=URL, stream_uri=URL, send_events=False)
)


async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    async with client:
        print(f"app: started {client.status.name}", flush=True)
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})
"""


#: The loggers of the event loops' accept errors (asyncio's and trio's).
LOOP_LOGGERS = ("asyncio", "trio.serve_listeners")


@pytest.mark.asyncio
async def test_a_flag_server_filters_no_logger_of_the_process() -> None:
    """Issue 77: a FlagServer put filters on asyncio's (and trio's) logger.

    One dropped accept errors while a server ran, the other some of
    asyncio's tracebacks until the process ended: an application's own
    servers' records too. Only ``aioflags serve``, an application, filters
    them in its own process.
    """
    before = {name: list(logging.getLogger(name).filters) for name in LOOP_LOGGERS}
    async with (
        FlagServer({"f": FLAG}) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD) as http,
    ):
        assert (await http.get(f"{server.url}/sdk/latest-all")).status_code == 200
        running = {name: list(logging.getLogger(name).filters) for name in LOOP_LOGGERS}
    after = {name: list(logging.getLogger(name).filters) for name in LOOP_LOGGERS}
    assert running == before
    assert after == before


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_warning_reaches_the_terminal_of_a_uvicorn_app_that_configured_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "flags_app.py").write_text(UVICORN_APP)
    lines: list[str] = []
    async with FlagServer({"f": FLAG}) as server:
        # The poll makes the client READY (an INFO line), then every stream
        # connection fails with a 503 (a WARNING, retried).
        server.fail("/sdk/stream", status=503)
        command = [sys.executable, "-m", "uvicorn", "flags_app:app", "--port", "0"]
        env = {**os.environ, "FLAG_SERVICE_URL": server.url}
        env.pop("PYTHONWARNINGS", None)
        async with await anyio.open_process(
            command, cwd=tmp_path, env=env, stderr=subprocess.STDOUT
        ) as process:
            assert process.stdout is not None
            output = BufferedByteReceiveStream(process.stdout)
            try:
                with anyio.fail_after(30):
                    while not (
                        any(line.startswith("app: started") for line in lines)
                        and any("/sdk/stream" in line for line in lines)
                    ):
                        line = await output.receive_until(b"\n", 65536)
                        lines.append(line.decode())
            finally:
                process.terminate()
    text = "\n".join(lines)
    assert "app: started READY" in text, text
    warning = next(line for line in lines if "/sdk/stream" in line)
    assert warning.startswith("aioflags data source: Received HTTP error 503"), text
    assert warning.endswith("- will retry"), text
    # INFO stays quiet: the client became READY, and its INFO line is not shown.
    assert not any("READY in" in line for line in lines), text
    assert "Polling" not in text and "Connected to" not in text, text


@pytest.mark.asyncio
async def test_info_lines_for_polling_connecting_and_ready_with_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "aioflags")
    async with FlagServer({"f": FLAG, "g": FLAG}) as server:
        config = server.config(SECRET, send_events=False)
        async with Client(config) as client:
            await server.wait_for_stream()
            assert client.status is ProviderStatus.READY
            # A change seen by the client: its stream is connected (and logged).
            changed = anyio.Event()
            client.add_handler(
                aioflags.ProviderEvent.CONFIGURATION_CHANGED, lambda _: changed.set()
            )
            server.set_flag("g", {**FLAG, "on": False})
            with anyio.fail_after(30):  # a guard, not a timing
                await changed.wait()
    ready = [r for r in caplog.records if "READY in" in r.getMessage()]
    assert len(ready) == 1 and ready[0].name == "aioflags.datasource"
    assert "with 2 flags" in ready[0].getMessage()
    assert ready[0].flags == 2 and ready[0].elapsed_ms >= 0  # type: ignore[attr-defined]
    connected = [
        r for r in caplog.records if "Connected to the flag stream" in r.getMessage()
    ]
    assert connected and connected[0].url == f"{server.url}/sdk/stream"  # type: ignore[attr-defined]
    assert connected[0].source == "fdv2-stream"  # type: ignore[attr-defined]
    assert SECRET not in caplog.text


@pytest.mark.asyncio
async def test_source_errors_carry_url_and_status_as_fields_and_never_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", status=401)
        server.fail("/sdk/stream", status=401)
        config = server.config(SECRET, send_events=False)
        async with Client(config) as client:
            assert client.status is ProviderStatus.FATAL
    errors = [r for r in caplog.records if getattr(r, "status_code", None) == 401]
    assert errors, caplog.text
    record = errors[0]
    assert record.name == "aioflags.datasource"
    assert record.url == f"{server.url}/sdk/poll"  # type: ignore[attr-defined]
    assert record.error_kind == "error_response"  # type: ignore[attr-defined]
    assert record.source == "fdv2-poll"  # type: ignore[attr-defined]
    assert "server-side SDK key" in record.getMessage()
    assert SECRET not in caplog.text


KEY_A = "sdk-00000000-0000-0000-0000-000000aaaaaa"
KEY_B = "sdk-00000000-0000-0000-0000-000000bbbbbb"


def _retries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "aioflags.datasource" and "503" in r.getMessage()
    ]


@pytest.mark.asyncio
async def test_two_clients_lines_say_which_client_logged_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 77: two environments in one process, and no telling whose warning."""
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/stream", status=503)
        a = Client(server.config(KEY_A, send_events=False))
        b = Client(server.config(KEY_B, send_events=False, application_id="checkout"))
        async with a, b:
            await server.wait_for_requests("/sdk/stream", 4)  # both, twice
            # (while both run: once one has closed, the other's lines carry
            # its label in a field only, as a lone client's do)
            retries = _retries(caplog)
    labels = {"sdk-…aaaaaa", "sdk-…bbbbbb checkout"}
    seen = set()
    for record in retries:
        label = record.aioflags_client  # type: ignore[attr-defined]
        assert label in labels
        assert record.getMessage().startswith(f"[{label}] aioflags data source: ")
        seen.add(label)
    assert seen == labels
    # Never more of a key than its last six characters.
    assert KEY_A[:-6] not in caplog.text and KEY_B[:-6] not in caplog.text


@pytest.mark.asyncio
async def test_two_clients_unknown_flag_warnings_say_which_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """T13: "No flag 'x' in the flag data ... a typo?" did not say which client.

    An evaluation runs in the caller's task, not the client's: the line
    names the client evaluating, whichever way it evaluates (awaited, or
    on a snapshot; analytics events on or off), once per key and client.
    """
    user = aioflags.Context.create("u")
    async with FlagServer({"f": FLAG}) as server:
        a = Client(server.config(KEY_A, send_events=False))
        b = Client(server.config(KEY_B, application_id="checkout"))  # events on
        async with a, b:
            for client in (a, b, a):
                assert await client.variation("t13-typo", user, "d") == "d"
            assert b.snapshot().variation("t13-snap", user, "d") == "d"
    said = sorted(
        (r.getMessage().partition(" (FLAG_NOT_FOUND)")[0], r.aioflags_client)  # type: ignore[attr-defined]
        for r in caplog.records
        if "in the flag data" in r.getMessage()
    )
    a_label, b_label = "sdk-…aaaaaa", "sdk-…bbbbbb checkout"
    assert said == [
        (
            f"[{a_label}] No flag 't13-typo' in the flag data: the default is returned",
            a_label,
        ),
        (
            f"[{b_label}] No flag 't13-snap' in the flag data: the default is returned",
            b_label,
        ),
        (
            f"[{b_label}] No flag 't13-typo' in the flag data: the default is returned",
            b_label,
        ),
    ]


@pytest.mark.asyncio
async def test_one_clients_lines_carry_its_label_as_a_field_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/stream", status=503)
        async with Client(server.config(KEY_A, send_events=False)):
            await server.wait_for_requests("/sdk/stream", 2)
    retries = _retries(caplog)
    assert retries
    for record in retries:
        assert record.aioflags_client == "sdk-…aaaaaa"  # type: ignore[attr-defined]
        assert record.getMessage().startswith("aioflags data source: ")


def test_a_client_without_a_long_key_is_named_by_a_number() -> None:
    from aioflags._core._logname import client_label

    first = client_label(None, None)
    assert re.fullmatch(r"client \d+", first)
    assert client_label("sdk-short", "app") == f"client {int(first[7:]) + 1} app"
    assert client_label("x" * 14 + "123456", None) == "…123456"


@pytest.mark.asyncio
async def test_data_source_noise_can_be_silenced_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logging.getLogger("aioflags.datasource").setLevel(logging.CRITICAL)
    try:
        async with FlagServer({"f": FLAG}) as server:
            server.fail("/sdk/poll", status=503)
            config = server.config(SECRET, send_events=False)
            async with Client(config) as client:
                # A type of its own: "not a Context" is logged once per type.
                await client.bool_variation("f", NotAContext(), False)  # type: ignore[arg-type]
    finally:
        logging.getLogger("aioflags.datasource").setLevel(logging.NOTSET)
    names = {r.name for r in caplog.records}
    assert "aioflags.datasource" not in names
    assert "aioflags.evaluation" in names  # other areas still speak


def _every_field(record: logging.LogRecord) -> str:
    return " ".join(f"{k}={v!r}" for k, v in vars(record).items())


@pytest.mark.asyncio
async def test_the_switch_to_fdv1_is_logged_with_the_source_and_never_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "aioflags")
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", headers={"X-LD-FD-Fallback": "true"})
        config = server.config(
            SECRET,
            send_events=False,
            data_system=aioflags.DataSystem.custom(
                initializers=[aioflags.sources.polling_initializer()],
                fdv1_fallback=aioflags.sources.fdv1_polling_synchronizer(),
            ),
        )
        async with Client(config) as client:
            await server.wait_for_requests("/sdk/latest-all")
            assert client.status is ProviderStatus.READY
    switch = [r for r in caplog.records if "fallback to FDv1" in r.getMessage()]
    assert switch and switch[0].name == "aioflags.datasource"
    fdv1 = [r for r in caplog.records if getattr(r, "source", None) == "fdv1-poll"]
    assert fdv1 and fdv1[0].levelno == logging.INFO
    assert fdv1[0].url == f"{server.url}/sdk/latest-all"  # type: ignore[attr-defined]
    assert caplog.records.index(switch[0]) < caplog.records.index(fdv1[0])
    # Not in any message, nor in any field, at any level.
    assert all(SECRET not in _every_field(r) for r in caplog.records)
    assert SECRET not in caplog.text


@pytest.mark.asyncio
async def test_the_test_tools_log_on_their_own_child_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "aioflags")
    async with FlagServer({"f": FLAG}) as server:
        config = server.config(SECRET, send_events=False)
        async with Client(config):
            await server.wait_for_stream()
    testing = [r for r in caplog.records if r.name == "aioflags.testing"]
    assert "FlagServer listening on" in testing[0].getMessage()
    assert any("GET /sdk/stream" in r.getMessage() for r in testing)
    assert all(SECRET not in _every_field(r) for r in caplog.records)
    caplog.clear()
    logging.getLogger("aioflags.testing").setLevel(logging.CRITICAL)
    try:
        async with FlagServer({"f": FLAG}) as server:
            config = server.config(SECRET, send_events=False)
            async with Client(config):
                await server.wait_for_stream()
    finally:
        logging.getLogger("aioflags.testing").setLevel(logging.NOTSET)
    names = {r.name for r in caplog.records}
    assert "aioflags.testing" not in names and "aioflags.datasource" in names
