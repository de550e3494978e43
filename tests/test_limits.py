"""One ``Limits`` value: every bound of the local flag service, and each part reads it (issue 61)."""

from __future__ import annotations

import math

import anyio
import httpx
import pytest

from aioflags import Client, Config, ConfigurationError
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagServer, Limits
from tests.flags import BOOL_FLAG

GUARD = 10.0  # a safety net, never a synchronisation


def test_the_defaults_are_the_service_s_bounds() -> None:
    limits = Limits()
    assert (limits.max_body, limits.max_events_body) == (64 * 1024, 8 * 1024 * 1024)
    assert (limits.body_timeout, limits.idle_timeout) == (30.0, 5.0)
    assert limits.stream_queue_bytes == 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"max_body": 0}, ValueError),
        ({"body_timeout": -1.0}, ValueError),
        ({"idle_timeout": math.nan}, ValueError),
        ({"max_body": "64k"}, TypeError),
        ({"backlog": True}, TypeError),
    ],
)
def test_a_bound_that_is_no_positive_number_is_refused(
    given: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error, match=f"Limits.{next(iter(given))} must be"):
        Limits(**given)  # type: ignore[arg-type]


def test_only_a_limits_is_taken() -> None:
    with pytest.raises(TypeError, match=r"aioflags\.testing\.Limits"):
        FlagServer(limits={"max_body": 10})  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_every_part_of_a_flag_server_reads_its_limits() -> None:
    limits = Limits(max_body=100, max_events_body=1000, body_timeout=0.3)
    async with (
        FlagServer({"f": BOOL_FLAG}, limits=limits) as server,
        httpx.AsyncClient(base_url=server.url, timeout=GUARD) as http,
    ):
        page = await http.get("/ui/")
        token = page.text.split('name="aioflags-token" content="')[1].split('"')[0]
        # The console's API: 101 bytes is too many.
        answer = await http.post(
            "/ui/api/flag",
            content=b" " * 101,
            headers={"x-aioflags-token": token, "content-type": "application/json"},
        )
        assert answer.status_code == 413
        # An event post may be larger than other requests, up to its own bound.
        events = await http.post("/bulk", content=b"[" + b" " * 500 + b"]")
        assert events.status_code == 202
        events = await http.post("/bulk", content=b"[" + b" " * 1000 + b"]")
        assert events.status_code == 413
        # OFREP, in its own words.
        ofrep = await http.post(
            "/ofrep/v1/evaluate/flags",
            content=b'{"context": {"key": "' + b"u" * 100 + b'"}}',
        )
        assert ofrep.status_code == 400
        assert "larger than 100 bytes" in ofrep.json()["errorDetails"]
        # A body that trickles is refused once body_timeout has passed.
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        async with await anyio.connect_tcp(host, int(port)) as raw:
            await raw.send(
                b"POST /bulk HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n["
            )
            with anyio.fail_after(GUARD):
                head = await raw.receive()
        assert head.startswith(b"HTTP/1.1 408")


@pytest.mark.asyncio
async def test_an_ofrep_app_takes_limits_and_only_limits() -> None:
    client = Client(Config(offline=True))  # (never started)
    with pytest.raises(ConfigurationError, match=r"aioflags\.testing\.Limits"):
        OFREPApp(client, limits=30)  # type: ignore[arg-type]
