"""FDv2 payloads from a later protocol, or with objects of no shape (issue 63).

A ``put-object`` or ``delete-object`` of a kind this SDK does not know is a
later protocol's: skipped whatever it holds (one DEBUG line). One whose
``data`` is not an object, or has no string ``kind``, has no shape at all:
skipped, and said in one WARNING per payload. Everything else in the
payload applies, and the data source stays VALID. Both by polling and by
streaming, in a full transfer and in a change. (On a4622ce the first kind
of object with a non-object ``object``, and each of the shapeless ones,
refused the whole payload: the client stayed NOT_READY, then ERROR.)
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest

from aioflags import Client, Context, DataSystem, ProviderStatus
from aioflags.sources import SourceState
from aioflags.testing import FakeClock, Fault, FlagServer
from tests.flags import STRING_FLAG

pytestmark = pytest.mark.asyncio

USER = Context.create("user-1")
POLL, STREAM = "/sdk/poll", "/sdk/stream"
INTENT_FULL = {"payloads": [{"id": "p", "target": 1, "intentCode": "xfer-full"}]}
INTENT_CHANGES = {"payloads": [{"id": "p", "target": 2, "intentCode": "xfer-changes"}]}

#: What a later protocol, or a broken one, may send beside the flags.
STRANGE: list[tuple[str, Any]] = [
    # later kinds: skipped whatever they hold
    ("put-object", {"kind": "experiment", "key": "e", "version": 1, "object": [1, 2]}),
    ("put-object", {"kind": "gizmo", "version": "v2"}),
    ("delete-object", {"kind": "gizmo", "key": 7}),
    # no shape at all: skipped, and said
    ("put-object", "not an object"),
    ("put-object", {"kind": 7, "key": "f", "version": 1, "object": {}}),
    ("delete-object", []),
]


def flag(version: int, served: int) -> dict[str, Any]:
    return {
        **STRING_FLAG,
        "key": "f",
        "version": version,
        "fallthrough": {"variation": served},
    }


def events(intent: Any, version: int, served: int, state: str) -> list[tuple[str, Any]]:
    put = {
        "kind": "flag",
        "key": "f",
        "version": version,
        "object": flag(version, served),
    }
    return [
        ("server-intent", intent),
        *STRANGE[:3],
        ("put-object", put),
        *STRANGE[3:],
        ("payload-transferred", {"state": state, "version": version}),
    ]


def poll_body(items: list[tuple[str, Any]]) -> bytes:
    return json.dumps({"events": [{"event": e, "data": d} for e, d in items]}).encode()


def sse(items: list[tuple[str, Any]]) -> str:
    return "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in items)


def check_said(caplog: pytest.LogCaptureFixture, payloads: int) -> None:
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "Could not use" in r.getMessage()
    ]
    assert len(warned) == payloads, warned  # one line per payload
    assert all(m.startswith("Could not use 3 objects of the flag data") for m in warned)
    assert ": a put-object whose data is not an object;" in warned[0]
    unknown = [
        r.getMessage() for r in caplog.records if "unknown kind" in r.getMessage()
    ]
    assert any("'experiment'" in m for m in unknown)
    assert any("delete-object of unknown kind 'gizmo'" in m for m in unknown)


def status_of(client: Client) -> ProviderStatus:
    """Read through a call so mypy does not narrow the status across awaits."""
    return client.status


def valid(client: Client) -> bool:
    status = client.data_source_status
    return (
        status is not None
        and status.state is SourceState.VALID
        and status.error is None
    )


async def test_polling_skips_what_it_cannot_read_and_applies_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "aioflags")
    clock = FakeClock()
    async with FlagServer({"f": flag(1, 0)}) as server:
        server.script(
            POLL,
            Fault(body=poll_body(events(INTENT_FULL, 1, 0, "(p:1)"))),
            Fault(body=poll_body(events(INTENT_CHANGES, 2, 1, "(p:2)"))),
        )
        config = server.config(
            send_events=False, data_system=DataSystem.polling(interval=30)
        )
        async with Client(config, clock=clock) as client:
            assert client.status is ProviderStatus.READY and valid(client)
            assert await client.variation("f", USER, "?") == "on"
            await clock.wait_for_sleeper(within=30)
            await clock.advance(30)
            await server.wait_for_requests(POLL, 2)
            with anyio.fail_after(30):
                while await client.variation("f", USER, "?") != "off":
                    await clock.wait_for_sleeper(within=30)
            assert valid(client)
            assert status_of(client) is ProviderStatus.READY
    check_said(caplog, 2)


async def test_streaming_skips_what_it_cannot_read_and_applies_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "aioflags")
    text = sse(events(INTENT_FULL, 1, 0, "(p:1)")) + sse(
        events(INTENT_CHANGES, 2, 1, "(p:2)")[1:]  # a change on the same stream
    )
    async with FlagServer({"f": flag(1, 0)}) as server:
        server.script(STREAM, Fault(events=text, hang_after_events=True))
        config = server.config(send_events=False, data_system=DataSystem.streaming())
        async with Client(config) as client:
            await server.wait_for_stream()
            told = anyio.Event()
            client.add_flag_change_handler(lambda keys: told.set())
            with anyio.fail_after(30):
                while await client.variation("f", USER, "?") != "off":
                    await told.wait()
                    told = anyio.Event()
            assert valid(client)
            assert client.status is ProviderStatus.READY
    check_said(caplog, 2)
