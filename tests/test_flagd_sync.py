"""DataSystem.flagd(): flagd's sync protocol against aioflags.testing.FlagdServer on loopback.

Connection policy (flagd's providers specification as docs/flagd.md says):
retry with backoff, fatal status codes, STALE then ERROR after the grace
period, READY on the next configuration, stream deadlines, re-initialisation;
what a request carries (selector, provider id) and what a message brings
(sync context, GetMetadata's metadata). Time is a FakeClock's: no test
sleeps.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import AsyncIterator
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
    Context,
    DataSystem,
    ProviderEvent,
    ProviderStatus,
)
from aioflags._datasystem._datatypes import ObjectKind, SourceState
from aioflags._systems._flagd._data._shared import link
from aioflags._systems._flagd._sync import _source
from aioflags._systems._flagd._sync._source import FlagdShared
from aioflags.testing import FakeClock, FlagdServer
from tests.processes import HTTP_GUARD
from tests.sources import source_context
from tests.tls_server import CA, CERTS

USER = Context.create("user-1")


def flag(default: str, **more: Any) -> dict[str, Any]:
    return {
        "state": "ENABLED",
        "variants": {"hi": "hello", "bye": "goodbye"},
        "defaultVariant": default,
        **more,
    }


DOC: dict[str, Any] = {"flags": {"greeting": flag("hi"), "other": flag("bye")}}
#: A flag with targeting (its evaluation is another module's: only the data is read here).
TARGETED = flag(
    "hi", targeting={"if": [{"==": [{"var": "injectedmetadata"}, "set"]}, "bye"]}
)


def flagd(server: FlagdServer, **options: Any) -> Config:
    options.setdefault("retry_backoff", (1.0, 1.0))
    # ``deadline`` runs in real time: on a loaded machine an attempt past
    # the default 0.5 s would fail and sleep a backoff these tests' clock
    # does not advance again (they count calls and steps, not its bound).
    options.setdefault("deadline", 30.0)
    if "socket_path" not in options:
        options.setdefault("target", server.target)
    return Config(data_system=DataSystem.flagd(**options), send_events=False)


async def greeting(client: Client) -> str:
    return str(await client.variation("greeting", USER, "default"))


async def status(client: Client, *wanted: ProviderStatus) -> None:
    with anyio.fail_after(30):
        await client.wait_for_status(*wanted)


async def reconnect(clock: FakeClock) -> None:
    """Let the source's backoff (1 s in these tests) pass."""
    with anyio.fail_after(30):
        await clock.wait_for_sleeper(within=1)
    await clock.advance(1)


async def reconnect_until(
    client: Client, clock: FakeClock, wanted: ProviderStatus
) -> None:
    """Let the source's backoff pass until the client is ``wanted``.

    (An attempt under way as the server came back may connect by itself,
    with no backoff to let pass: the status, not a sleeper, is the end.)
    """
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:

            async def advance() -> None:
                while True:
                    await clock.wait_for_sleeper(within=1)
                    await clock.advance(1)

            group.start_soon(advance)
            await client.wait_for_status(wanted)
            group.cancel_scope.cancel()


class Seen(list[Any]):
    """What handlers saw (they run in their own tasks): :meth:`until` waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self._added = anyio.Event()

    def add(self, item: object) -> None:
        self.append(item)
        self._added.set()
        self._added = anyio.Event()

    async def until(self, count: int) -> None:
        with anyio.fail_after(30):
            while len(self) < count:
                await self._added.wait()


@asynccontextmanager
async def changes(client: Client) -> AsyncIterator[Seen]:
    """The flags each CONFIGURATION_CHANGED names, as they arrive."""
    seen = Seen()
    client.add_handler(
        ProviderEvent.CONFIGURATION_CHANGED,
        lambda details: seen.add(frozenset(details.flags_changed)),
    )
    yield seen


# ------------------------------------------------------------------ data


@pytest.mark.asyncio
async def test_a_client_reads_flagd_flags_from_a_sync_server() -> None:
    async with (
        FlagdServer(DOC) as server,
        Client(flagd(server, provider_id="weather-app")) as client,
    ):
        assert client.status is ProviderStatus.READY
        detail = await client.variation_detail("greeting", USER, "default")
        assert (detail.value, detail.reason) == ("hello", {"kind": "STATIC"})
        # GetMetadata for the context, FetchAllFlags to start, then the stream.
        await server.wait_until(lambda s: s.open_streams == 1)
        methods = [call.method for call in server.calls]
        assert methods == ["GetMetadata", "FetchAllFlags", "SyncFlags"]
        assert {c.provider_id for c in server.calls if c.method != "GetMetadata"} == {
            "weather-app"
        }


@pytest.mark.asyncio
async def test_each_message_replaces_the_whole_configuration() -> None:
    async with (
        FlagdServer(DOC) as server,
        Client(flagd(server)) as client,
        changes(client) as changed,
    ):
        server.set_document({"flags": {"greeting": flag("bye"), "new": flag("hi")}})
        await changed.until(1)
        assert changed == [frozenset({"greeting", "other", "new"})]
        assert await greeting(client) == "goodbye"
        gone = await client.variation_detail("other", USER, "default")
        assert gone.value == "default"
        assert gone.reason == {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}
        # One flag changed: only it is announced.
        server.set_flag("new", flag("bye"))
        await changed.until(2)
        assert changed[1] == frozenset({"new"})


#: Targeting of every shape the evaluation compiles ($ref, fractional, sem_ver).
RULES: dict[str, Any] = {
    "$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@example.com"]}},
    "flags": {
        "ref": flag("hi", targeting={"if": [{"$ref": "staff"}, "bye", None]}),
        "split": flag(
            "hi",
            targeting={"fractional": [{"var": "email"}, ["hi", 50], ["bye", 50]]},
        ),
        "version": flag(
            "hi",
            targeting={"if": [{"sem_ver": [{"var": "v"}, ">=", "1.2.0"]}, "bye"]},
        ),
        "static": flag("hi"),
    },
}


@pytest.mark.asyncio
async def test_served_and_evaluated_flags_are_announced_only_when_they_change() -> None:
    # What was applied and evaluated is compared with the next message as
    # it arrived: nothing that serves or compiles a flag changes its data.
    async with (
        FlagdServer(RULES) as server,
        Client(flagd(server)) as client,
        changes(client) as changed,
    ):
        await server.wait_until(lambda s: s.open_streams == 1)
        for n in range(20):
            user = Context.from_dict(
                {
                    "kind": "user",
                    "key": f"u{n}",
                    "email": f"u{n}@example.com",
                    "v": "1.3.0",
                }
            )
            for key in RULES["flags"]:
                await client.variation_detail(key, user, "default")
        server.set_document(RULES)  # the same again: nothing changed
        again = {**RULES, "flags": {**RULES["flags"], "static": flag("bye")}}
        server.set_document(again)
        await changed.until(1)
        assert changed == [frozenset({"static"})]


@pytest.mark.asyncio
async def test_the_selector_travels_as_the_header_and_in_the_body() -> None:
    sources = {"default": DOC, "extra": {"flags": {"selected": flag("bye")}}}
    async with (
        FlagdServer(sources=sources) as server,
        Client(flagd(server, selector="source=extra")) as client,
    ):
        assert await client.variation("selected", USER, "x") == "goodbye"
        assert await greeting(client) == "default"  # not in the selected source
        for call in server.calls:
            if call.method != "GetMetadata":
                assert (call.selector_header, call.selector) == (
                    "source=extra",
                    "source=extra",
                )


def test_the_server_selects_by_source_and_by_flag_set() -> None:
    web = {"flags": {"a": flag("hi")}, "metadata": {"flagSetId": "web"}}
    api = {
        "flags": {"b": flag("hi"), "c": flag("hi", metadata={"flagSetId": "web"})},
        "$evaluators": {"rule": {"==": [1, 1]}},
    }
    server = FlagdServer(sources={"web.json": web, "api.json": api})
    assert server.selected("web.json") == web
    assert server.selected("source=api.json") == api
    assert set(server.selected("")["flags"]) == {"a", "b", "c"}
    assert set(server.selected("flagSetId=web")["flags"]) == {"a", "c"}
    assert set(server.selected("flagSetId=")["flags"]) == {"b"}
    assert server.selected("")["$evaluators"] == {"rule": {"==": [1, 1]}}
    with pytest.raises(ValueError, match="invalid selector key 'app'"):
        server.selected("app=x")


@pytest.mark.asyncio
async def test_a_selector_flagd_refuses_is_retried_as_a_failure() -> None:
    clock = FakeClock()
    async with (
        FlagdServer(DOC) as server,
        Client(flagd(server, selector="app=weather"), clock=clock) as client,
    ):
        # INVALID_ARGUMENT, at once: ERROR (not listed as fatal: retried).
        assert client.status is ProviderStatus.ERROR
        error = client.data_source_status.error  # type: ignore[union-attr]
        assert error is not None and "INVALID_ARGUMENT" in error.message
        await reconnect(clock)
        await server.wait_until(lambda s: s.streams_opened >= 2)


# ------------------------------------------------------------ the context


async def first_update(server: FlagdServer, **options: Any) -> Any:
    """The synchronizer's first update, read directly from the source."""
    system = DataSystem.flagd(server.target, **options)
    async with httpx.AsyncClient(timeout=HTTP_GUARD) as http:
        source = system.synchronizers[0](source_context(http))
        async with aclosing(source) as updates:
            return await anext(updates)


def served(update: Any) -> dict[str, Any]:
    """The flagd parts of an update's flags, as the store compiles them (linked)."""
    linked, _ = link(update.change_set, {})
    parts = {}
    for c in linked.changes:
        if c.kind is ObjectKind.FLAG and c.obj is not None:
            parts[c.key] = c.obj["flagd"]
    return parts


@pytest.mark.asyncio
async def test_the_sync_context_travels_with_the_flags_that_target() -> None:
    doc = {"flags": {"targeted": TARGETED, "static": flag("hi")}}
    async with FlagdServer(doc, sync_context={"injectedmetadata": "set"}) as server:
        update = await first_update(server)
        assert update.state is SourceState.VALID
        flags = served(update)
        assert flags["targeted"]["context"] == {"injectedmetadata": "set"}
        assert "context" not in flags["static"]  # it reads none
        # The stream's own context: GetMetadata is never asked.
        assert [c.method for c in server.calls] == ["SyncFlags"]


@pytest.mark.asyncio
async def test_get_metadata_gives_the_context_where_the_stream_sends_none() -> None:
    doc = {"flags": {"targeted": TARGETED}}
    async with FlagdServer(doc, metadata={"injectedmetadata": "set"}) as server:
        flags = served(await first_update(server))
        assert flags["targeted"]["context"] == {"injectedmetadata": "set"}
        assert [c.method for c in server.calls] == ["SyncFlags", "GetMetadata"]


@pytest.mark.asyncio
async def test_an_unimplemented_get_metadata_is_asked_once_and_the_stream_starts() -> (
    None
):
    clock = FakeClock()
    doc = {"flags": {"targeted": TARGETED}}
    async with (
        FlagdServer(doc, get_metadata=False) as server,
        Client(flagd(server), clock=clock) as client,
    ):
        assert client.status is ProviderStatus.READY
        # The initializer learnt GetMetadata is not there: it fetches
        # nothing (the data, without the context that may come, is left to
        # the stream), and the stream does not ask again.
        methods = [c.method for c in server.calls]
        assert methods == ["GetMetadata", "SyncFlags"]
        server.drop_streams()
        await reconnect(clock)
        await server.wait_until(lambda s: s.streams_opened == 2)
        # The source remembers: no GetMetadata on the new stream.
        assert [c.method for c in server.calls][2:] == ["SyncFlags"]


@pytest.mark.parametrize("get_metadata", [True, False])
@pytest.mark.asyncio
async def test_the_stream_opens_on_the_initializer_s_connection(
    get_metadata: bool,
) -> None:
    # One connection before READY, not two (a TLS handshake fewer to a
    # remote flagd); a stream opened again gets a connection of its own.
    clock = FakeClock()
    async with (
        FlagdServer(DOC, get_metadata=get_metadata) as server,
        Client(flagd(server), clock=clock) as client,
    ):
        assert client.status is ProviderStatus.READY
        await server.wait_until(lambda s: s.streams_opened == 1)
        first = [(c.method, c.peer) for c in server.calls]
        methods = ["GetMetadata", "FetchAllFlags", "SyncFlags"]
        assert [m for m, _ in first] == (methods if get_metadata else methods[::2])
        assert len({peer for _, peer in first}) == 1
        server.drop_streams()
        await reconnect(clock)
        await server.wait_until(lambda s: s.streams_opened == 2)
        again = server.calls[-1]
        assert again.method == "SyncFlags"
        assert again.peer != first[0][1]


@pytest.mark.asyncio
async def test_an_initializer_s_connection_nobody_takes_closes_with_the_run() -> None:
    # An initializer alone (no synchronizer to take its connection): the
    # connection it keeps is closed as the client's run ends.
    import grpc

    async with FlagdServer(DOC) as server:
        system = DataSystem.flagd(server.target, deadline=30.0)
        kept: list[Any] = []
        real_park = FlagdShared.park

        async def park(self: FlagdShared, ctx: Any, channel: Any) -> None:
            kept.append(channel)
            await real_park(self, ctx, channel)

        config = Config(
            data_system=DataSystem.custom(initializers=system.initializers),
            send_events=False,
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(FlagdShared, "park", park)
            async with Client(config) as client:
                assert await greeting(client) == "hello"
                [channel] = kept
                assert channel.get_state() is not grpc.ChannelConnectivity.SHUTDOWN
            assert channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN


# ---------------------------------------------------------- connection


@pytest.mark.asyncio
async def test_an_unreachable_server_is_error_at_once_and_ready_when_it_answers() -> (
    None
):
    clock = FakeClock()
    async with FlagdServer(DOC) as server:
        # GetMetadata, FetchAllFlags, the first stream
        server.refuse("UNAVAILABLE", times=3)
        async with Client(flagd(server), clock=clock) as client:
            # Not ready_timeout: the first failed attempt says ERROR.
            assert client.status is ProviderStatus.ERROR
            assert await greeting(client) == "default"
            await reconnect(clock)
            await status(client, ProviderStatus.READY)
            assert await greeting(client) == "hello"
            assert server.refused == 3
            assert server.streams_opened == 2


@pytest.mark.asyncio
async def test_a_fatal_status_code_ends_the_source_and_the_client_is_fatal() -> None:
    clock = FakeClock()
    async with FlagdServer(DOC) as server:
        server.refuse("PERMISSION_DENIED")
        system = flagd(server, fatal_status_codes=["PERMISSION_DENIED"])
        async with Client(system, clock=clock) as client:
            await status(client, ProviderStatus.FATAL)
            calls = len(server.calls)
            methods = [c.method for c in server.calls]
            assert methods == ["GetMetadata", "FetchAllFlags", "SyncFlags"]
            assert clock.sleepers == 0  # no retry waits
            await clock.advance(3600)
            assert len(server.calls) == calls  # never called again
            assert client.status is ProviderStatus.FATAL


@pytest.mark.asyncio
async def test_a_lost_connection_is_stale_then_error_after_the_grace_period() -> None:
    clock = FakeClock()
    async with (
        FlagdServer(DOC) as server,
        Client(flagd(server, retry_grace_period=3.0), clock=clock) as client,
    ):
        events = Seen()
        for event in (ProviderEvent.STALE, ProviderEvent.ERROR, ProviderEvent.READY):
            client.add_handler(event, lambda _, e=event: events.add(e))  # type: ignore[misc]
        await server.wait_until(lambda s: s.open_streams == 1)
        await server.stop()
        await status(client, ProviderStatus.STALE)  # at once
        assert await greeting(client) == "hello"  # the last data
        for _ in range(2):  # 2 s: still within grace (reconnects fail)
            await reconnect(clock)
        assert client.status is ProviderStatus.STALE
        await reconnect(clock)  # 3 s
        await status(client, ProviderStatus.ERROR)
        await server.start()  # (on the same port)
        await reconnect_until(client, clock, ProviderStatus.READY)
        await events.until(4)
        assert events == [
            ProviderEvent.READY,  # (replayed to the handler as it was added)
            ProviderEvent.STALE,
            ProviderEvent.ERROR,
            ProviderEvent.READY,
        ]


@pytest.mark.asyncio
async def test_the_grace_period_is_the_data_system_s() -> None:
    async with FlagdServer(DOC) as server:
        config = flagd(server, retry_grace_period=0.0)
        assert config.grace_period == 5.0  # Config's, which flagd's replaces
        async with Client(config) as client:
            await server.stop()
            await status(client, ProviderStatus.ERROR)  # no grace: at once


@pytest.mark.asyncio
async def test_a_stream_past_its_deadline_is_opened_again() -> None:
    clock = FakeClock()
    async with (
        FlagdServer(DOC) as server,
        Client(flagd(server, stream_deadline=30.0), clock=clock) as client,
    ):
        with anyio.fail_after(30):
            await clock.wait_for_sleeper(within=30)
        await clock.advance(30)
        await reconnect(clock)
        await server.wait_until(lambda s: s.streams_opened == 2)
        assert client.status is ProviderStatus.READY  # no report on the way


@pytest.mark.asyncio
async def test_a_stream_the_server_ends_is_opened_again_without_a_report() -> None:
    clock = FakeClock()
    async with (
        FlagdServer(DOC) as server,
        Client(flagd(server), clock=clock) as client,
        changes(client) as changed,
    ):
        stale: list[object] = []
        client.add_handler(ProviderEvent.STALE, stale.append)
        await server.wait_until(lambda s: s.open_streams == 1)
        server.drop_streams()
        await reconnect(clock)
        await server.wait_until(lambda s: s.streams_opened == 2 and s.open_streams == 1)
        server.set_flag("greeting", flag("bye"))
        await changed.until(1)
        assert await greeting(client) == "goodbye"
        assert stale == []


@pytest.mark.asyncio
async def test_96_small1_an_attempt_s_stream_closes_under_aclosing_within_it() -> None:
    # The synchronizer consumes each attempt's stream (an async generator)
    # under aclosing: closed while it hands on the stream's update (as the
    # supervisor closes it at shutdown or failover), the stream's cleanup
    # runs then, within the close, not later in a task the event loop's
    # asyncgen finalizer starts for a generator nobody closed.
    stream_code = _source._stream.__code__
    firstiter, finalizer = sys.get_asyncgen_hooks()
    started: list[str] = []  # (names: a reference would keep it alive)
    finalized: list[str] = []

    def on_firstiter(agen: Any) -> None:
        if agen.ag_code is stream_code:
            started.append(agen.__qualname__)
        if firstiter is not None:
            firstiter(agen)

    def on_finalizer(agen: Any) -> None:
        if agen.ag_code is stream_code:
            finalized.append(agen.__qualname__)
        if finalizer is not None:
            finalizer(agen)

    # (a generator keeps the finalizer of its first iteration: set before)
    sys.set_asyncgen_hooks(firstiter=on_firstiter, finalizer=on_finalizer)
    try:
        async with FlagdServer(DOC) as server:
            update = await first_update(server, deadline=30.0)
            # (the stream's own update: it was suspended inside the attempt)
            assert update.state is SourceState.VALID
            assert update.change_set is not None
            del update
            gc.collect()  # (what a cycle kept is finalized now, not later)
            assert len(started) == 1
            assert finalized == [], "the stream was left to the asyncgen finalizer"
            await server.wait_until(lambda s: s.open_streams == 0)
    finally:
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)


@pytest.mark.asyncio
async def test_a_closed_client_starts_again() -> None:
    async with FlagdServer(DOC) as server:
        client = Client(flagd(server))
        async with client:
            assert await greeting(client) == "hello"
        await server.wait_until(lambda s: s.open_streams == 0)
        server.set_flag("greeting", flag("bye"))
        async with client:
            assert client.status is ProviderStatus.READY
            assert await greeting(client) == "goodbye"
        assert server.calls_of("FetchAllFlags") == 2


# ----------------------------------------------------- transports


@pytest.mark.asyncio
async def test_a_unix_socket_alone_names_the_server(tmp_path: Path) -> None:
    path = tmp_path / "flagd.sock"
    async with FlagdServer(DOC, socket_path=path) as server:
        assert server.target == f"unix:{path}"
        async with Client(flagd(server, socket_path=path)) as client:
            assert await greeting(client) == "hello"


@pytest.mark.asyncio
async def test_tls_with_a_private_ca() -> None:
    tls = (CERTS / "server.pem", CERTS / "server.key")
    async with FlagdServer(DOC, tls=tls) as server:
        target = f"localhost:{server.port}"
        async with Client(
            flagd(server, target=target, tls=True, cert_path=CA)
        ) as client:
            assert await greeting(client) == "hello"
        # The system roots do not hold the test CA: refused, retried.
        async with Client(flagd(server, target=target, tls=True)) as client:
            assert client.status is ProviderStatus.ERROR


# ------------------------------------------------------- configuration


def test_the_extra_missing_is_an_error_at_configuration_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'aioflags\[flagd\]'"):
        DataSystem.flagd()


def test_configuration_needs_no_grpc_import() -> None:
    import subprocess

    code = (
        "import sys; from aioflags import DataSystem; DataSystem.flagd();"
        "assert 'grpc' not in sys.modules, 'grpc imported';"
        "assert 'google.protobuf' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_START_WITHOUT_HTTP = """
import json, sys
import anyio
from aioflags import Client, Config, Context, DataSystem

async def main(target, events_uri):
    more = {"sdk_key": "k", "events_uri": events_uri} if events_uri else {"send_events": False}
    config = Config(data_system=DataSystem.flagd(target, deadline=30.0), ready_timeout=120, **more)
    async with Client(config) as client:
        value = await client.variation("greeting", Context.create("u"), "default")
        print(json.dumps([str(client.status), value, "httpx" in sys.modules]))

anyio.run(main, *sys.argv[1:])
"""


@pytest.mark.slow
@pytest.mark.parametrize("events_uri", ["", "http://127.0.0.1:9/"])
@pytest.mark.asyncio
async def test_a_flagd_client_without_events_makes_no_http_client(
    events_uri: str,
) -> None:
    # Its sources speak gRPC: httpx (~30 ms of a first start) is left
    # unimported unless events go to an events_uri of the app's own.
    async with FlagdServer(DOC) as server:
        out = await anyio.run_process(
            [sys.executable, "-c", _START_WITHOUT_HTTP, server.target, events_uri],
            check=False,
        )
    assert out.returncode == 0, out.stderr.decode()
    status_, value, imported = json.loads(out.stdout.decode().splitlines()[-1])
    assert (status_, value) == ("ProviderStatus.READY", "hello")
    assert imported is bool(events_uri)


def test_a_source_context_without_http_says_why() -> None:
    context = source_context(None)
    with pytest.raises(RuntimeError, match="made no HTTP client"):
        context.http  # noqa: B018


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fatal_status_codes": ["DENIED"]}, "gRPC status names"),
        ({"fatal_status_codes": "PERMISSION_DENIED"}, "gRPC status names"),
        ({"target": "a:1", "socket_path": "/s"}, "not both"),
        ({"cert_path": "/ca.pem"}, "give tls=True"),
        ({"retry_backoff": (5.0, 1.0)}, "longest delay"),
        ({"retry_backoff": 1.0}, r"\(first, most\)"),
        ({"deadline": 0}, "deadline"),
        ({"fractional": 1}, "fractional"),
        ({"target": ""}, "gRPC target"),
    ],
)
def test_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DataSystem.flagd(**options)


def test_the_defaults_are_flagd_s() -> None:
    system = DataSystem.flagd()
    assert system.grace_period == 5.0
    assert len(system.initializers) == 1
    assert len(system.synchronizers) == 1


def test_trio_is_refused_at_start() -> None:
    async def main() -> None:
        config = Config(data_system=DataSystem.flagd("127.0.0.1:9"), send_events=False)
        async with Client(config) as client:
            assert client.status is ProviderStatus.FATAL
            status = client.data_source_status
            assert status is not None and status.error is not None
            assert "asyncio only" in status.error.message

    anyio.run(main, backend="trio")


# ------------------------------------------------------- the environment


def test_flagd_s_provider_variables_configure_the_data_system() -> None:
    config = Config.from_env(
        {
            "FLAGD_RESOLVER": "in-process",
            "FLAGD_HOST": "flagd.internal",
            "FLAGD_SYNC_PORT": "9090",
            "FLAGD_PORT": "8013",  # (the RPC resolver's: not this one's)
            "FLAGD_SOURCE_SELECTOR": "flagSetId=web",
            "FLAGD_PROVIDER_ID": "web-1",
            "FLAGD_TLS": "true",
            "FLAGD_SERVER_CERT_PATH": CA,
            "FLAGD_RETRY_GRACE_PERIOD": "10",
            "FLAGD_FATAL_STATUS_CODES": "PERMISSION_DENIED, UNAUTHENTICATED",
            "FLAGD_DEADLINE_MS": "1000",
            "FLAGD_STREAM_DEADLINE_MS": "0",
            "FLAGD_KEEP_ALIVE_TIME_MS": "0",
            "FLAGD_RETRY_BACKOFF_MS": "500",
            "FLAGD_RETRY_BACKOFF_MAX_MS": "2000",
        },
        send_events=False,
    )
    system = config.data_system
    assert system is not None and system.grace_period == 10.0
    options = _options(system)
    assert options.target == "flagd.internal:9090"
    assert (options.selector, options.provider_id) == ("flagSetId=web", "web-1")
    assert (options.tls, options.cert_path) == (True, CA)
    assert options.fatal_status_codes == {"PERMISSION_DENIED", "UNAUTHENTICATED"}
    assert (options.deadline, options.stream_deadline) == (1.0, 0.0)
    assert options.keepalive is None
    assert options.retry_backoff == (0.5, 2.0)


def _options(system: DataSystem) -> Any:
    """The options a flagd data system's sources were built with."""
    source = system.synchronizers[0]
    cells = [c.cell_contents for c in source.__closure__ or ()]
    return next(c for c in cells if type(c).__name__ == "FlagdOptions")


def test_without_flagd_s_resolver_its_variables_are_not_read() -> None:
    config = Config.from_env({"FLAGD_HOST": "x", "AIOFLAGS_SDK_KEY": "sdk-1"})
    assert config.data_system is None
    unix = Config.from_env(
        {"FLAGD_RESOLVER": "in-process", "FLAGD_SOCKET_PATH": "/run/flagd.sock"}
    )
    assert unix.data_system is not None
    assert _options(unix.data_system).target == "unix:/run/flagd.sock"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FLAGD_RESOLVER": "rpc"}, "FLAGD_RESOLVER"),
        ({"FLAGD_DEADLINE_MS": "soon"}, "FLAGD_DEADLINE_MS"),
        ({"FLAGD_DEADLINE_MS": "0"}, "FLAGD_DEADLINE_MS"),
        ({"FLAGD_SYNC_PORT": "port"}, "FLAGD_SYNC_PORT"),
        ({"FLAGD_TLS": "maybe"}, "FLAGD_TLS"),
        ({"FLAGD_FATAL_STATUS_CODES": "DENIED"}, "FLAGD_FATAL_STATUS_CODES"),
        ({"FLAGD_RETRY_GRACE_PERIOD": "-1"}, "FLAGD_RETRY_GRACE_PERIOD"),
    ],
)
def test_a_flagd_variable_that_cannot_be_used_is_named(
    env: dict[str, str], variable: str
) -> None:
    env = {"FLAGD_RESOLVER": "in-process", **env}
    with pytest.raises(ConfigurationError, match=variable):
        Config.from_env(env)


def test_an_offline_flag_source_is_a_flagd_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    config = Config.from_env(
        {"FLAGD_RESOLVER": "in-process", "FLAGD_OFFLINE_FLAG_SOURCE_PATH": str(path)}
    )
    assert config.data_system is not None
    assert config.data_system.synchronizers  # the file's (reloaded) source
    assert config.data_system.initializers == ()


# ------------------------------------------------------------- the plane


@pytest.mark.asyncio
async def test_two_clients_on_one_plane_share_one_sync_stream(tmp_path: Path) -> None:
    plane = str(tmp_path / "flags.plane")
    async with FlagdServer(DOC) as server:
        config = flagd(server, plane=plane)
        async with Client(config) as leader, Client(config) as follower:
            assert {leader.plane_role, follower.plane_role} == {"leader", "follower"}
            assert await greeting(follower) == "hello"
            await server.wait_until(lambda s: s.open_streams == 1)
            async with changes(follower) as changed:
                server.set_flag("greeting", flag("bye"))
                await changed.until(1)
            assert await greeting(follower) == "goodbye"
            assert server.streams_opened == 1  # the leader's alone
            assert server.calls_of("FetchAllFlags") == 1


@pytest.mark.asyncio
async def test_a_server_that_never_answers_is_error_after_the_deadline() -> None:
    # A listener that accepts and says nothing (no HTTP/2, no configuration):
    # ``deadline`` bounds the attempt, so the client reports ERROR while
    # the source keeps trying, long before ready_timeout would.
    accepted: list[anyio.abc.SocketStream] = []
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def hold(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                accepted.append(stream)
                await anyio.sleep_forever()

        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, hold)
            system = DataSystem.flagd(f"127.0.0.1:{port}", deadline=0.5)
            config = Config(data_system=system, send_events=False, ready_timeout=60)
            with anyio.fail_after(20):
                async with Client(config) as client:
                    await client.wait_for_status(ProviderStatus.ERROR)
                    assert accepted  # it did connect: the deadline ended it
            group.cancel_scope.cancel()


def test_one_event_loop_after_another_each_gets_grpc_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # gRPC's asyncio engine stays on the loop that made it while any gRPC
    # object lives; a run's objects outlive it in reference cycles, and the
    # next loop's calls were answered on the closed one ("Event loop is
    # closed" in gRPC's callbacks; a process crashed). Clients and servers
    # let them go as they close (release_grpc).
    import asyncio

    async def dropped() -> None:
        async with FlagdServer(DOC) as server, Client(flagd(server)) as client:
            await server.wait_until(lambda s: s.open_streams == 1)
            server.drop_streams()
            await server.stop()
            assert client.status is not ProviderStatus.FATAL

    async def served() -> None:
        async with FlagdServer(DOC) as server, Client(flagd(server)) as client:
            assert await greeting(client) == "hello"

    for run in (dropped, served, dropped, served, dropped, served):
        asyncio.run(run())
    closed = [
        r
        for r in caplog.records
        if r.exc_info is not None and "Event loop is closed" in str(r.exc_info[1])
    ]
    assert closed == []


@pytest.mark.slow
def test_96_a_flagd_client_that_ends_well_closes_without_the_collector() -> None:
    # Each flagd close ran gc.collect() (release_grpc): a full collection in
    # the app's process at every client close, for gRPC objects a cycle
    # kept. Attempts now forget their frames and the collector runs only
    # when an object aioflags made still lives (a call cancelled before it
    # was sent: a cycle of gRPC's own).
    import asyncio

    async def served() -> None:
        async with FlagdServer(DOC) as server, Client(flagd(server)) as client:
            assert await greeting(client) == "hello"

    async def dropped() -> None:
        async with FlagdServer(DOC) as server, Client(flagd(server)) as client:
            await server.wait_until(lambda s: s.open_streams == 1)
            server.drop_streams()
            await server.stop()
            assert client.status is not ProviderStatus.FATAL

    def grpc_objects() -> list[str]:
        names = ("Channel", "AioChannel", "UnaryStreamCall", "_AioCall", "Server")
        return [
            type(o).__qualname__
            for o in gc.get_objects()
            if str(getattr(type(o), "__module__", "")).startswith("grpc")
            and type(o).__qualname__ in names
        ]

    collections: list[str] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(count)
    try:
        for run in (served, dropped, served):
            collections.clear()
            asyncio.run(run())
            assert grpc_objects() == [], run.__name__
            # (the dropped run may close while a reconnect to the stopped
            # server is being refused: a call cancelled before it was sent,
            # which only the collector frees; on a busy machine it does)
            if run is served:
                assert collections == [], "a client that ended well collected"
    finally:
        gc.callbacks.remove(count)
        if enabled:
            gc.enable()
