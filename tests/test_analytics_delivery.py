"""Delivering analytics events: headers, retry, refusal, bounds, capacity, gzip, diagnostics."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio
import pytest

from aioflags import Context
from aioflags._analytics._processor import CLOSE_BOUND, RETRY_PAUSE
from aioflags.testing import Fault, RecordedRequest
from tests.analytics import flag, running
from tests.raw_server import complete, long_body, raw_server, trickled

pytestmark = pytest.mark.asyncio

USER = Context.create("u1")


async def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port: int = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    return port


async def test_bulk_posts_carry_launchdarkly_s_headers() -> None:
    async with running(application_id="app") as (server, client, _):
        client.identify(USER)
        await client.flush()
        client.identify(Context.create("u2"))
        await client.flush()
    first, second = server.requests_to("/bulk")
    headers = first.headers
    assert first.method == "POST"
    assert headers["authorization"] == "sdk-key"
    assert headers["user-agent"].startswith("aioflags/")
    assert "application/json" in headers["content-type"]
    assert headers["x-launchdarkly-event-schema"] == "4"
    assert headers["x-launchdarkly-tags"] == "application-id/app"
    assert "content-encoding" not in headers
    assert uuid.UUID(headers["x-launchdarkly-payload-id"]).version == 4
    assert (
        second.headers["x-launchdarkly-payload-id"]
        != headers["x-launchdarkly-payload-id"]
    )


async def test_a_cookie_the_events_server_sets_is_sent_back() -> None:
    """Posts are made once per client (not by ``build_request``): cookies still go."""
    async with running() as (server, client, _):
        server.script("/bulk", Fault(headers={"Set-Cookie": "lb=one; Path=/"}))
        client.identify(USER)
        await client.flush()
        client.identify(Context.create("u2"))
        await client.flush()
    first, second = server.requests_to("/bulk")
    assert "cookie" not in first.headers
    assert second.headers["cookie"] == "lb=one"
    assert second.headers["x-launchdarkly-event-schema"] == "4"
    assert uuid.UUID(second.headers["x-launchdarkly-payload-id"]).version == 4
    assert second.headers["authorization"] == "sdk-key"


async def test_a_5xx_is_retried_once_with_the_same_payload_id() -> None:
    async with running() as (server, client, clock), anyio.create_task_group() as tg:
        server.script("/bulk", Fault(status=503))
        client.identify(USER)
        tg.start_soon(client.flush)
        await clock.wait_for_sleeper(within=1.0)  # the pause before the retry
        await clock.advance(1.0)
        await server.wait_for_requests("/bulk", 2)
        first, retry = server.requests_to("/bulk")
        assert (
            first.headers["x-launchdarkly-payload-id"]
            == retry.headers["x-launchdarkly-payload-id"]
        )
        assert first.body == retry.body
        assert [e["kind"] for e in server.events] == ["identify"]


async def test_a_payload_that_fails_twice_is_dropped_and_delivery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running() as (server, client, clock), anyio.create_task_group() as tg:
        server.script("/bulk", Fault(status=500), Fault(status=429))
        client.identify(USER)
        tg.start_soon(client.flush)
        await clock.wait_for_sleeper(within=1.0)
        await clock.advance(1.0)
        await server.wait_for_requests("/bulk", 2)
        await client.flush()  # the failed round is over; this one is empty
        client.identify(Context.create("u2"))
        await client.flush()
    assert len(server.requests_to("/bulk")) == 3
    assert [e["context"]["key"] for e in server.events] == ["u2"]
    assert "dropped after a retry" in caplog.text


async def test_a_network_error_is_retried_once() -> None:
    port = await closed_port()
    options: dict[str, Any] = {"events_uri": f"http://127.0.0.1:{port}"}
    async with (
        running(**options) as (_, client, clock),
        anyio.create_task_group() as tg,
    ):
        client.identify(USER)
        done = anyio.Event()

        async def flush() -> None:
            await client.flush()
            done.set()

        tg.start_soon(flush)
        await clock.wait_for_sleeper(within=1.0)  # the first attempt failed
        await clock.advance(1.0)
        with anyio.fail_after(30):
            await done.wait()


async def test_the_body_of_an_events_answer_is_not_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only its status and headers count: 64 MiB of it (or a gzip bomb) is not read.

    The client reads a few KB, then hangs up: the server sees its writes refused.
    """
    async with (
        raw_server(long_body(64 << 20)) as sink,
        running(events_uri=sink.url) as (_, client, _),
    ):
        client.identify(USER)
        await client.flush()
        await sink.wait_until(lambda: sink.hung_up == 1, "the client hang up")
    assert sink.paths == ["/bulk"]
    assert not _warned(caplog)  # delivered: nothing failed


def _warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the events' logger warned of (not the whole log: on a loaded
    machine asyncio's debug mode logs slow steps, naming the module)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "aioflags.events" and record.levelno >= logging.WARNING
    ]


#: Timeouts that make the deadline of a post 1.25 s.
QUICK: dict[str, Any] = {"connect_timeout": 0.25, "read_timeout": 1.0}


@pytest.mark.slow
async def test_an_events_answer_trickled_for_ever_fails_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpx's read timeout is per read: a post ends within connect + read timeout.

    Its status trickles in: the post failed, and is retried.
    """
    async with (
        raw_server(complete(202)) as sink,
        running(events_uri=sink.url, **QUICK) as (_, client, clock),
        anyio.create_task_group() as tg,
    ):
        sink.script(trickled(every=0.05, head=True))
        client.identify(USER)
        tg.start_soon(client.flush)
        with anyio.fail_after(30):  # a guard: the attempt ends at its deadline
            await clock.wait_for_sleeper(within=RETRY_PAUSE)  # before the retry
        assert "no answer within 1.25 s" in caplog.text
        await clock.advance(RETRY_PAUSE)
        await sink.wait_until(lambda: len(sink.paths) == 2, "the retry")
        await sink.wait_until(lambda: sink.hung_up == 1, "the client hang up")
    assert "dropped" not in caplog.text  # the retry delivered them


@pytest.mark.slow
async def test_an_events_answer_whose_body_trickles_is_a_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once the status is in, the body is not waited for: not to its end, not twice."""
    async with (
        raw_server(trickled(every=0.05, status=202)) as sink,
        running(events_uri=sink.url, **QUICK) as (_, client, _),
    ):
        client.identify(USER)
        await client.flush()
        await sink.wait_until(lambda: sink.hung_up == 1, "the client hang up")
    assert sink.paths == ["/bulk"]  # not retried
    assert not _warned(caplog)  # delivered: nothing failed


#: Diagnostic events on, a periodic one every minute.
DIAGNOSTICS: dict[str, Any] = {
    "diagnostic_opt_out": False,
    "diagnostic_recording_interval": 60.0,
}


@pytest.mark.parametrize("status", [401, 403, 404, 413])
async def test_an_unrecoverable_status_stops_event_delivery_for_good(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        server.fail("/bulk", status=status)
        client.identify(USER)
        await client.flush()
        await client.variation("f", USER, False)
        client.track("k", USER)
        client.identify(USER)
        await client.flush()
    assert len(server.requests_to("/bulk")) == 1  # not retried, nothing after
    assert f"refused (HTTP {status}" in caplog.text


@pytest.mark.slow
async def test_flush_is_bounded_when_the_endpoint_hangs() -> None:
    async with running() as (server, client, _):
        server.fail("/bulk", hang=True)
        client.identify(USER)
        with anyio.fail_after(30):
            await client.flush(timeout=0.1)
        # The hung post is still owed: closing waits for it (CLOSE_BOUND).


@pytest.mark.slow
async def test_closing_is_bounded_when_the_endpoint_hangs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with anyio.fail_after(CLOSE_BOUND + 5):  # a safety net, not a measurement
        async with running() as (server, client, _):
            server.fail("/bulk", hang=True)
            client.identify(USER)
    assert server.events == []
    await server.wait_for_requests("/bulk")  # it was tried
    assert "1 of 1 analytics event(s) recorded before" in caplog.text


def keys(request: RecordedRequest) -> list[str]:
    """The context keys of the events in one ``/bulk`` request's body."""
    body = request.json()
    assert isinstance(body, list)
    return [e["context"]["key"] for e in body if isinstance(e, dict)]


@pytest.mark.slow
async def test_closing_sends_the_newest_events_while_a_slow_post_is_in_flight(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 48 (D2): an endpoint slower than the close bound.

    The batch in flight when the client closes is not sent again (that
    re-send used to take the whole bound), the events recorded after it
    are sent at once, and the close says how many it could not deliver.
    """
    older = [f"old{n}" for n in range(100)]
    newer = [f"new{n}" for n in range(100)]
    async with running() as (server, client, _):
        server.fail("/bulk", delay=CLOSE_BOUND + 1)  # every post: ~3 s
        for key in older:
            client.identify(Context.create(key))
        with anyio.move_on_after(0):
            await client.flush()  # asks for a delivery, does not wait for it
        await server.wait_for_requests("/bulk")  # the older batch is in flight
        for key in newer:
            client.identify(Context.create(key))
        with anyio.fail_after(CLOSE_BOUND + 5):  # a safety net, not a measurement
            await client.aclose()
        first, second = server.requests_to("/bulk")
        assert keys(first) == older
        assert keys(second) == newer  # not the older batch again
        # Both arrive, though too late for the bound: 200 of 200 (it was
        # 100: the bound went on the older batch, the newer was never sent).
        with anyio.fail_after(30):
            await server.wait_for_payloads(2)
    assert sorted(e["context"]["key"] for e in server.events) == sorted(older + newer)
    (warning,) = [r for r in caplog.records if "not confirmed" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "200 of 200 analytics event(s)" in warning.getMessage()


@pytest.mark.slow
async def test_closing_waits_for_a_delivery_in_flight_rather_than_resending_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The newest events are delivered first; the hung post is not sent again."""
    async with running() as (server, client, _):
        server.script("/bulk", Fault(hang=True))  # the first post only
        client.identify(USER)
        with anyio.move_on_after(0):
            await client.flush()
        await server.wait_for_requests("/bulk")
        client.identify(Context.create("u2"))
    hung, newest = server.requests_to("/bulk")
    assert keys(hung) == ["u1"]
    assert keys(newest) == ["u2"]
    assert [e["context"]["key"] for e in server.events] == ["u2"]
    assert "1 of 2 analytics event(s)" in caplog.text


async def test_capacity_drops_events_with_one_warning_and_keeps_the_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running({"f": flag()}, events_capacity=3) as (server, client, _):
        await client.variation("f", USER, False)  # an index event
        for _ in range(5):
            client.track("k", USER)
        await client.flush()
        for _ in range(4):
            client.track("k", USER)
        await client.flush()
    first, second = server.event_payloads
    assert [e["kind"] for e in first] == ["index", "custom", "custom", "summary"]
    assert [e["kind"] for e in second] == ["custom"] * 3
    warnings = [r for r in caplog.records if "buffer was full" in r.getMessage()]
    # Once per overflowing window, at its flush, with the count dropped.
    assert ["3 event(s) dropped" in r.getMessage() for r in warnings] == [True, False]
    assert "1 event(s) dropped" in warnings[1].getMessage()
    assert all(r.levelno == logging.WARNING for r in warnings)


async def test_gzip() -> None:
    async with running(compress_events=True) as (server, client, _):
        client.identify(USER)
        await client.flush()
    (request,) = server.requests_to("/bulk")
    assert request.headers["content-encoding"] == "gzip"
    assert request.body[:2] == b"\x1f\x8b"
    assert [e["kind"] for e in server.events] == ["identify"]


async def test_diagnostic_init_and_periodic_events() -> None:
    async with running(**DIAGNOSTICS) as (server, client, clock):
        await server.wait_until(lambda: len(server.diagnostic_events) == 1)
        for key in ("a", "b", "a"):
            client.track("k", Context.create(key))
        await clock.advance(60.0)
        await server.wait_until(lambda: len(server.diagnostic_events) == 2)
    init, periodic = server.diagnostic_events
    assert init["kind"] == "diagnostic-init"
    assert init["id"]["sdkKeySuffix"] == "sdk-key"[-6:]
    assert init["sdk"]["name"] == "aioflags"
    assert init["platform"]["name"] == "python"
    assert init["configuration"]["customEventsURI"] is True
    assert init["configuration"]["eventsCapacity"] == 10000
    assert periodic["kind"] == "diagnostic"
    assert periodic["id"] == init["id"]
    assert periodic["deduplicatedUsers"] == 1
    assert periodic["droppedEvents"] == 0
    assert periodic["dataSinceDate"] <= periodic["creationDate"]
    (request,) = server.requests_to("/diagnostic")[:1]
    assert "x-launchdarkly-payload-id" not in request.headers


async def test_diagnostic_opt_out_sends_none() -> None:
    async with running(diagnostic_opt_out=True) as (server, client, _):
        client.identify(USER)
        await client.flush()
    assert server.requests_to("/diagnostic") == []


async def test_the_ticker_flushes_every_flush_interval() -> None:
    async with running(flush_interval=5.0) as (server, client, clock):
        client.identify(USER)
        await clock.advance(5.0)
        await server.wait_for_events()
    assert [e["kind"] for e in server.events] == ["identify"]


async def test_diagnostics_are_gzipped_too_and_name_the_wrapper() -> None:
    options: dict[str, Any] = {
        "diagnostic_opt_out": False,
        "compress_events": True,
        "wrapper_name": "my-wrapper",
        "wrapper_version": "2.0",
    }
    async with running(**options) as (server, _, _clock):
        await server.wait_until(lambda: len(server.diagnostic_events) == 1)
    (init,) = server.diagnostic_events
    assert init["sdk"]["wrapperName"] == "my-wrapper"
    assert init["sdk"]["wrapperVersion"] == "2.0"
    (request,) = server.requests_to("/diagnostic")
    assert request.headers["content-encoding"] == "gzip"


async def test_no_diagnostics_after_delivery_is_refused() -> None:
    async with running(**DIAGNOSTICS) as (server, client, clock):
        await server.wait_until(lambda: len(server.diagnostic_events) == 1)
        server.fail("/bulk", status=401)
        client.identify(USER)
        await client.flush()
        await clock.wait_for_sleepers(2)  # the flush ticker and the diagnostics
        await clock.advance(60.0)
        # Back asleep: had the diagnostics loop posted, it would have waited
        # for the answer, so the server would have the request by now.
        await clock.wait_for_sleepers(2)
    assert len(server.requests_to("/diagnostic")) == 1
