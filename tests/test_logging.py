"""Logging that follows Python's conventions: a NullHandler, child loggers, fields, no key."""

from __future__ import annotations

import logging

import pytest

import aioflags
from aioflags import Client, ProviderStatus
from aioflags.testing import FlagServer
from tests.flags import BOOL_FLAG

FLAG = BOOL_FLAG
SECRET = "sdk-0123456789abcdef-secret"


class NotAContext:
    """Something a caller might pass by mistake."""


def test_the_library_logger_has_a_null_handler_and_no_level() -> None:
    logger = logging.getLogger("aioflags")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert logger.level == logging.NOTSET  # the application decides
    assert aioflags.__name__ == "aioflags"


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
