"""Analytics events never take the client down, and lose nothing they should keep."""

from __future__ import annotations

import datetime
import math
from typing import Any

import anyio
import pytest

import aioflags
import aioflags.blocking
from aioflags import (
    Client,
    Config,
    ConfigurationError,
    Context,
    DataSystem,
    ProviderStatus,
)
from aioflags.testing import Fault, FlagServer
from tests.analytics import by_kind, flag, running

USER = Context.create("u1")


@pytest.mark.asyncio
async def test_a_broken_events_response_does_not_stop_flag_updates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An answer whose body does not decode is a 202 all the same: its body is never read."""
    async with running({"f": flag()}) as (server, client, _):
        server.fail(
            "/bulk", Fault(status=202, headers={"Content-Encoding": "gzip"}, body=b"no")
        )
        await client.bool_variation("f", USER, False)
        await client.flush()
        assert len(server.requests_to("/bulk")) == 1  # delivered, not retried
        await server.wait_for_stream()
        changed = anyio.Event()
        client.add_flag_change_handler(lambda keys: changed.set())
        server.set_flag("f", flag(on=False))
        with anyio.fail_after(30):
            await changed.wait()
        assert client.status is ProviderStatus.READY
        assert await client.bool_variation("f", USER, True) is False
    assert "analytics" not in caplog.text.lower()


@pytest.mark.asyncio
async def test_data_changed_after_track_is_sent_as_tracked() -> None:
    async with running({"f": flag()}) as (server, client, _):
        data: dict[str, Any] = {"cart": []}
        client.track("checkout", USER, data)
        data["when"] = datetime.datetime.now()  # not JSON, and not what was tracked
        await client.flush()
        custom = by_kind(server.events)["custom"]
        assert custom[0]["data"] == {"cart": []}
        assert client.status is ProviderStatus.READY


@pytest.mark.asyncio
async def test_a_context_changed_after_evaluation_loses_only_the_value_that_is_not_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nested: dict[str, Any] = {"street": "Main"}
    ann = Context.create("ann", attributes={"address": nested})
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        await client.bool_variation("f", ann, False)
        nested["since"] = datetime.date.today()  # the caller's dict, shared
        await client.bool_variation("f", USER, False)
        await client.flush()
        sent = {e["context"]["key"]: e["context"] for e in server.events_of("index")}
        assert set(sent) == {"ann", "u1"}  # both contexts' events were sent
        assert sent["ann"]["address"] == {"street": "Main", "since": None}
        assert client.status is ProviderStatus.READY
    # Once in the index event, once in the feature event.
    assert "2 analytics value(s) sent as null: not JSON (date)" in caplog.text


@pytest.mark.asyncio
async def test_infinite_timings_with_diagnostics_on() -> None:
    async with FlagServer({"f": flag()}) as server:
        config = server.config(
            "k", read_timeout=math.inf, context_keys_flush_interval=math.inf
        )
        async with Client(config) as client:
            assert client.status is ProviderStatus.READY
            await client.flush()
        assert server.diagnostic_events  # the init event went out


@pytest.mark.asyncio
async def test_track_identify_flush_on_a_client_never_started() -> None:
    client = Client(Config("k", events_uri="http://127.0.0.1:9"))
    client.track("e", USER)
    client.identify(USER)
    await client.flush()  # nothing to do, and no exception


@pytest.mark.asyncio
async def test_evaluations_before_a_start_that_does_not_wait_are_counted() -> None:
    async with FlagServer({"f": flag()}) as server:
        config = server.config("k", ready_timeout=0, diagnostic_opt_out=True)
        async with Client(config) as client:
            client.track("at-start", USER)  # before the runner has even begun
            await client.variation("f", USER, None)
            await client.wait_ready(10)
            await client.flush()
        kinds = by_kind(server.events)
        assert [e["key"] for e in kinds["custom"]] == ["at-start"]
        counters = kinds["summary"][0]["features"]["f"]["counters"]
        assert sum(c["count"] for c in counters) == 1


@pytest.mark.parametrize("name", ["ready_timeout", "flush_interval", "grace_period"])
def test_nan_is_refused(name: str) -> None:
    options: dict[str, Any] = {name: math.nan}
    with pytest.raises(ConfigurationError, match=name):
        Config("k", **options)


def test_empty_string_variables_are_unset() -> None:
    config = Config.from_env({"AIOFLAGS_SDK_KEY": "k", "AIOFLAGS_PROXY": ""})
    assert config.proxy is None
    with pytest.raises(ConfigurationError, match="AIOFLAGS_READY_TIMEOUT='nan'"):
        Config.from_env({"AIOFLAGS_READY_TIMEOUT": "nan"})


def test_the_blocking_client_sends_custom_and_identify_events() -> None:
    async def serve(stop: anyio.Event, ready: list[str]) -> None:
        async with FlagServer({"f": flag()}) as server:
            ready.append(server.url)
            await stop.wait()
            events.extend(server.events)

    events: list[Any] = []
    with anyio.from_thread.start_blocking_portal() as portal:
        stop = portal.call(anyio.Event)
        ready: list[str] = []
        future = portal.start_task_soon(serve, stop, ready)
        while not ready:
            portal.call(anyio.lowlevel.checkpoint)
        url = ready[0]
        config = Config(
            "k",
            base_uri=url,
            stream_uri=url,
            events_uri=url,
            diagnostic_opt_out=True,
            data_system=DataSystem.streaming(),
        )
        with aioflags.blocking.Client(config) as client:
            client.identify(USER)
            client.track("clicked", USER, {"n": 1}, 2.0)
            client.flush()
        portal.call(stop.set)
        future.result()
    kinds = by_kind(events)
    assert [e["key"] for e in kinds["custom"]] == ["clicked"]
    assert kinds["custom"][0]["metricValue"] == 2.0
    assert len(kinds["identify"]) == 1


def test_diagnostics_say_daemon_mode_and_the_store_type() -> None:
    from aioflags._analytics._diagnostics import Diagnostics
    from aioflags.stores import RedisStore

    store = RedisStore(url="redis://127.0.0.1:9/0")
    daemon = Config("k", data_system=DataSystem.daemon(store))
    writer = Config("k", data_system=DataSystem.streaming(store=store))
    plain = Config("k")
    configs = [
        Diagnostics(c, 0).init_event(0)["configuration"]
        for c in (daemon, writer, plain)
    ]
    assert [(c["usingRelayDaemon"], c["dataStoreType"]) for c in configs] == [
        (True, "redis"),
        (False, "redis"),
        (False, "memory"),
    ]
