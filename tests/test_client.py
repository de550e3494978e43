"""Client lifecycle: construction, readiness, handlers, restart, fork, trio."""

from __future__ import annotations

import functools
import logging
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import aioflags
from aioflags import (
    Client,
    ClientClosedError,
    Config,
    ConfigurationError,
    Context,
    DataSystem,
    ProviderEvent,
    ProviderStatus,
)
from aioflags.testing import FakeClock, FlagServer
from tests.flags import BOOL_FLAG

FLAG = BOOL_FLAG
USER = Context.create("u1")


def test_construction_needs_no_event_loop_and_does_no_io() -> None:
    client = Client(Config("sdk-key", base_uri="http://127.0.0.1:9", send_events=False))
    assert client.status is ProviderStatus.NOT_READY
    assert client.data_source_status is None
    assert "NOT_READY" in repr(client)
    assert not client.snapshot().initialized


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sdk_key": "has space"}, "sdk_key"),
        ({"sdk_key": "k", "base_uri": "ftp://x"}, "base_uri"),
        ({"sdk_key": "k", "ready_timeout": -1}, "ready_timeout"),
        ({"sdk_key": "k", "ready_timeout": True}, "ready_timeout"),
        ({"sdk_key": "k", "grace_period": -1}, "grace_period"),
        ({"sdk_key": "k", "retry_jitter": 2}, "retry_jitter"),
        (
            {"sdk_key": "k", "initial_retry_delay": 5, "max_retry_delay": 1},
            "max_retry_delay",
        ),
        ({"sdk_key": "k", "fatal_status_codes": {200}}, "fatal_status_codes"),
        ({"private_attributes": "email"}, "private_attributes"),
        ({"private_attributes": ("email", "")}, "private_attributes"),
        ({"private_attributes": 5}, "private_attributes"),  # was a TypeError
        # Below: accepted (or a bare TypeError) until these were checked.
        ({"sdk_key": "k", "data_system": "polling"}, "data_system"),
        ({"sdk_key": "k", "data_system": DataSystem.polling}, "data_system"),
        ({"sdk_key": "k", "data_system": object()}, "data_system"),
        *(
            ({"sdk_key": "k", name: "false"}, f"{name} must be True or False")
            for name in (
                "offline",
                "send_events",
                "all_attributes_private",
                "diagnostic_opt_out",
                "omit_anonymous_contexts",
                "compress_events",
                "gc_freeze",
            )
        ),
        ({"sdk_key": "k", "offline": 1}, "offline must be True or False"),
        ({"sdk_key": "k", "wrapper_name": "w\r\nX-Evil: 1"}, "wrapper_name"),
        ({"sdk_key": "k", "wrapper_name": 5}, "wrapper_name"),
        ({"sdk_key": "k", "wrapper_version": "1.0\n"}, "wrapper_version"),
        ({"sdk_key": "k", "instance_id": "id\r\n"}, "instance_id"),
        ({"sdk_key": "k", "instance_id": "caf\u00e9"}, "instance_id"),
        ({"sdk_key": "k", "retry_jitter": "0.5"}, "retry_jitter"),
        ({"sdk_key": "k", "fatal_status_codes": 401}, "fatal_status_codes"),
        ({"sdk_key": "k", "verify": 1}, "verify"),
        ({"sdk_key": "k", "proxy": 3128}, "proxy"),
        ({"sdk_key": "k", "proxy": "127.0.0.1:3128"}, "proxy"),
    ],
    ids=lambda v: str(v)[:50],
)
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Config(**kwargs)


def test_what_httpx_takes_as_a_proxy_is_taken() -> None:
    import httpx

    for proxy in (
        "HTTP://proxy.local:3128",
        "socks5://127.0.0.1:1080",
        httpx.URL("http://proxy.local:3128"),
        httpx.Proxy("http://proxy.local:3128", auth=("user", "secret")),
    ):
        assert Config("k", proxy=proxy).proxy is proxy  # type: ignore[arg-type]


def test_a_data_system_takes_its_sources_as_any_iterable() -> None:
    from aioflags.sources import polling_initializer, polling_synchronizer

    first, second = polling_initializer(), polling_synchronizer()
    for make in (lambda: [first], lambda: (first,), lambda: iter([first])):
        system = DataSystem(initializers=make(), synchronizers=[second])
        assert system.initializers == (first,)
        assert system.synchronizers == (second,)
        custom = DataSystem.custom(initializers=make(), synchronizers=(second,))
        assert custom.initializers == (first,)
    with pytest.raises(
        ConfigurationError, match=r"list \(or another iterable\) of source factories"
    ):
        DataSystem(initializers=first)  # type: ignore[arg-type]


def test_config_headers_and_secret_repr() -> None:
    config = Config("secret-key", application_id="app", wrapper_name="w")
    assert "secret-key" not in repr(config)
    assert config.tags_header == "application-id/app"
    assert config.wrapper_header == "w"
    assert Config("k").tags_header is None and Config("k").wrapper_header is None
    spaced = Config("k", wrapper_name="my wrapper", wrapper_version="1.0 beta")
    assert spaced.wrapper_header == "my wrapper/1.0 beta"  # spaces inside are valid
    assert Config("k", instance_id="").instance_id == ""  # unset: a uuid4 each


def test_client_needs_a_config_and_a_key_for_the_network() -> None:
    with pytest.raises(ConfigurationError, match=r"aioflags\.Config"):
        Client("sdk-key")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="sdk_key is required"):
        Client(Config())


@pytest.mark.asyncio
async def test_offline_is_ready_and_serves_defaults() -> None:
    async with Client(Config(offline=True)) as client:
        assert client.status is ProviderStatus.READY
        detail = await client.variation_detail("f", USER, 1)
        assert detail.value == 1 and detail.error_kind == "CLIENT_NOT_READY"


@pytest.mark.asyncio
async def test_ready_timeout_is_error_then_ready_when_data_arrives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        gate = anyio.Event()
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        config = server.config("k", send_events=False, ready_timeout=0.05)
        client = Client(config)
        errors: list[aioflags.EventDetails] = []
        client.add_handler(ProviderEvent.ERROR, errors.append)
        client.add_handler(ProviderEvent.READY, lambda _: gate.set())
        async with client:
            assert client.status is ProviderStatus.ERROR
            assert "not ready after 0.05 s; still trying" in caplog.text
            server.clear_faults()
            await client.aclose()
        # A fresh start with a healthy server becomes READY and the handler persists.
        async with client:
            with anyio.fail_after(30):
                await gate.wait()
            assert await client.wait_ready(timeout=5) is ProviderStatus.READY
        assert errors[0].error_code == "PROVIDER_NOT_READY"


async def refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    async with await anyio.create_tcp_listener(
        local_host="127.0.0.1", local_port=0
    ) as listener:
        return int(listener.extra(anyio.abc.SocketAttribute.local_port))


async def first_failure(client: Client) -> None:
    """Wait until a source has reported a failure (the client is starting)."""
    layer = client._life.layer
    assert layer is not None
    with anyio.fail_after(30):
        await layer.wait_data_source(lambda s: s is not None and s.error is not None)


async def not_ready_until_the_grace_period(client: Client, clock: FakeClock) -> str:
    """NOT_READY through retryable failures; ERROR when grace_period=7 s has passed.

    Returns the ERROR's message.
    """
    await first_failure(client)
    await clock.advance(6.9)  # retries come and fail meanwhile
    await first_failure(client)
    await client._bus.wait_delivered()
    seen = [client.status]  # still starting
    await clock.advance(0.1)
    seen.append(client.status)  # broken
    assert seen == [ProviderStatus.NOT_READY, ProviderStatus.ERROR]
    details = client.status_details
    assert details is not None and details.error_code == "PROVIDER_NOT_READY"
    assert details.message.startswith("not ready after 7 s; still trying")
    return details.message


@pytest.mark.asyncio
async def test_not_waiting_a_refused_connection_is_error_after_the_grace_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused connection may be fixed by waiting: NOT_READY until grace_period."""
    base = f"http://127.0.0.1:{await refused_port()}"
    clock = FakeClock()
    config = Config(
        "k",
        base_uri=base,
        stream_uri=base,
        send_events=False,
        ready_timeout=0,
        grace_period=7,
    )
    async with Client(config, clock=clock) as client:
        assert client.status is ProviderStatus.NOT_READY  # it did not wait
        message = await not_ready_until_the_grace_period(client, clock)
        assert "ConnectionRefusedError" in message
    assert "aioflags client not ready after 7 s" in caplog.text


@pytest.mark.asyncio
async def test_not_waiting_a_server_that_answers_503_is_error_after_the_grace_period() -> (
    None
):
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", status=503)
        server.fail("/sdk/stream", status=503)
        clock = FakeClock()
        config = server.config("k", send_events=False, ready_timeout=0, grace_period=7)
        async with Client(config, clock=clock) as client:
            message = await not_ready_until_the_grace_period(client, clock)
            assert "HTTP error 503" in message


@pytest.mark.asyncio
async def test_not_waiting_without_a_grace_period_the_first_failure_is_error() -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", status=503)
        server.fail("/sdk/stream", status=503)
        config = server.config("k", send_events=False, ready_timeout=0, grace_period=0)
        # A fake clock that nobody advances: only the failure can make it ERROR.
        async with Client(config, clock=FakeClock()) as client:
            with anyio.fail_after(30):
                await client.wait_for_status(ProviderStatus.ERROR)
            details = client.status_details
            assert details is not None and "HTTP error 503" in details.message
            assert details.error_code == "PROVIDER_NOT_READY"


@pytest.mark.asyncio
async def test_not_waiting_a_hard_failure_is_fatal_at_once() -> None:
    """401: waiting will not fix it, so no grace period is waited out."""
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", status=401)
        server.fail("/sdk/stream", status=401)
        config = server.config("k", send_events=False, ready_timeout=0, grace_period=7)
        async with Client(config, clock=FakeClock()) as client:
            with anyio.fail_after(30):
                status = await client.wait_for_status(
                    ProviderStatus.ERROR, ProviderStatus.FATAL
                )
            assert status is ProviderStatus.FATAL


@pytest.mark.asyncio
async def test_not_waiting_a_silent_server_is_error_after_the_grace_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        clock = FakeClock()
        config = server.config("k", send_events=False, ready_timeout=0, grace_period=7)
        async with Client(config, clock=clock) as client:
            await clock.wait_for_sleeper(within=7)
            await clock.advance(6.9)
            seen = [client.status]  # still starting
            await clock.advance(0.1)
            seen.append(client.status)  # broken
            assert seen == [ProviderStatus.NOT_READY, ProviderStatus.ERROR]
            details = client.status_details
            assert details is not None and details.error_code == "PROVIDER_NOT_READY"
    assert "not ready after 7 s; still trying (no answer yet" in caplog.text


@pytest.mark.asyncio
async def test_wait_ready_returns_the_status_on_timeout() -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        async with Client(
            server.config("k", send_events=False, ready_timeout=0.01)
        ) as client:
            assert await client.wait_ready(timeout=0.01) is ProviderStatus.ERROR


@pytest.mark.asyncio
async def test_a_wait_begun_before_the_client_starts_waits_for_its_start() -> None:
    """``tg.start_soon(serve)`` then a wait: the wait runs first, on an idle client."""
    client = Client(Config(offline=True))
    order: list[str] = []

    async def serve(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with client:
            order.append("started")
            task_status.started()
            await anyio.sleep_forever()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                functools.partial(serve, task_status=anyio.TASK_STATUS_IGNORED)
            )
            order.append("waiting")
            assert await client.wait_ready() is ProviderStatus.READY
            assert await client.wait_for_status(ProviderStatus.READY) is (
                ProviderStatus.READY
            )
            tg.cancel_scope.cancel()
    assert order == ["waiting", "started"]
    # Never started: a bounded wait returns the status it found.
    assert await Client(Config(offline=True)).wait_ready(0.01) is (
        ProviderStatus.NOT_READY
    )


@pytest.mark.asyncio
async def test_waiting_returns_when_the_client_closes_meanwhile() -> None:
    """No timeout, no data: closing the client ends both waits."""
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        ended: list[object] = []

        async def wait_ready() -> None:
            ended.append(await client.wait_ready())

        async def wait_for_ready() -> None:
            with pytest.raises(ClientClosedError) as closed:
                await client.wait_for_status(ProviderStatus.READY)
            ended.append(str(closed.value))

        config = server.config("k", send_events=False, ready_timeout=0)
        async with Client(config) as client:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait_ready)
                    tg.start_soon(wait_for_ready)
                    await anyio.wait_all_tasks_blocked()
                    assert ended == []
                    await client.aclose()
        assert sorted(map(str, ended)) == [
            "ProviderStatus.NOT_READY",
            "the aioflags client closed while wait_for_status() waited for READY",
        ]


@pytest.mark.asyncio
async def test_late_handler_runs_once_with_the_details_that_set_the_status() -> None:
    async with (
        FlagServer({"f": FLAG}) as server,
        Client(server.config("k", send_events=False)) as client,
    ):
        got: list[aioflags.EventDetails] = []
        client.add_handler(ProviderEvent.READY, got.append)
        await client._bus.wait_delivered()
        assert [(d.event, d.status, d.message) for d in got] == [
            (ProviderEvent.READY, ProviderStatus.READY, "flag data received")
        ]
        client.remove_handler(ProviderEvent.READY, got.append)


@pytest.mark.asyncio
async def test_typed_methods_and_all_flags_through_the_client() -> None:
    async with (
        FlagServer({"f": FLAG, "s": {**FLAG, "variations": ["a", "b"]}}) as server,
        Client(server.config("k", send_events=False)) as client,
    ):
        assert await client.bool_variation("f", USER, False) is True
        assert (
            await client.bool_variation_detail("f", USER, False)
        ).variation_index == 0
        assert await client.string_variation("s", USER, "") == "a"
        assert (
            await client.string_variation_detail("f", USER, "")
        ).error_kind == "WRONG_TYPE"
        assert await client.int_variation("f", USER, 7) == 7
        assert (await client.int_variation_detail("s", USER, 7)).value == 7
        assert await client.float_variation("f", USER, 1.5) == 1.5
        assert (await client.float_variation_detail("f", USER, 1.5)).value == 1.5
        assert await client.json_variation("s", USER, None) == "a"
        assert (await client.json_variation_detail("s", USER, None)).value == "a"
        assert await client.variation("s", USER, None) == "a"
        state = await client.all_flags_state(USER, with_reasons=True)
        assert state.to_dict()["$flagsState"]["f"]["reason"] == {"kind": "FALLTHROUGH"}
        assert client.snapshot().bool_variation("f", USER, False) is True


@pytest.mark.asyncio
async def test_starting_twice_is_an_error_and_aclose_outside_is_a_no_op() -> None:
    client = Client(Config(offline=True))
    await client.aclose()
    async with client:
        with pytest.raises(RuntimeError, match="already started"):
            await client.__aenter__()


def test_secure_mode_hash_matches_launchdarkly() -> None:
    import ldclient
    from ldclient.config import Config as LDConfig

    ld = ldclient.LDClient(LDConfig("secret", offline=True))
    try:
        client = Client(Config("secret", offline=True))
        for ctx in (
            Context.create("u1"),
            Context.create_multi(Context.create("u:1"), Context.create("o%1", "org")),
        ):
            theirs = ld.secure_mode_hash(ldclient.Context.from_dict(ctx.to_dict()))
            assert client.secure_mode_hash(ctx) == theirs
    finally:
        ld.close()  # type: ignore[no-untyped-call]


def test_secure_mode_hash_of_a_string_says_it_takes_a_context() -> None:
    client = Client(Config("secret", offline=True))
    with pytest.raises(TypeError, match=r"takes an aioflags\.Context.*got 'u1'"):
        client.secure_mode_hash("u1")  # type: ignore[arg-type]


def test_the_client_runs_on_trio() -> None:
    async def main() -> None:
        async with FlagServer({"f": FLAG}) as server:
            async with Client(server.config("k", send_events=False)) as client:
                assert client.status is ProviderStatus.READY
                await server.wait_for_stream()
                changed = anyio.Event()
                client.add_flag_change_handler(lambda keys: changed.set())
                server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
                with anyio.fail_after(30):
                    await changed.wait()
                assert await client.variation("f", USER, None) is False
            with anyio.fail_after(30):  # the server sees the EOF a step later
                await server.wait_for_streams_closed()

    anyio.run(main, backend="trio")


def test_a_migration_runs_on_trio_where_asyncio_s_cancelled_error_is_an_error() -> None:
    """On trio asyncio's CancelledError cancels nothing: an origin's failure.

    (tests/test_migrations.py runs on asyncio, where it is one when the
    caller is not being cancelled.)
    """
    import asyncio

    from aioflags.migrations import MigratorBuilder, Stage

    shadow = {
        "on": True,
        "version": 1,
        "variations": [stage.value for stage in Stage],
        "fallthrough": {"variation": 2},  # shadow: old authoritative, new read too
        "offVariation": 0,
    }

    async def raises(payload: object) -> str:
        raise asyncio.CancelledError

    async def value(payload: object) -> str:
        return "value"

    async def main() -> None:
        async with (
            FlagServer({"m": shadow}) as server,
            Client(server.config("k", send_events=False)) as client,
        ):
            migrator = (
                MigratorBuilder(client)
                .read(value, raises)  # PARALLEL, the default
                .write(raises, value)
                .build()
            )
            read = await migrator.read("m", USER, Stage.OFF)
            write = await migrator.write("m", USER, Stage.OFF)
        assert read.value == "value"
        assert isinstance(write.authoritative.exception, asyncio.CancelledError)
        assert write.nonauthoritative is None

    anyio.run(main, backend="trio")


def _revoked_client() -> Client:
    """A client whose only source reports a refused SDK key: FATAL."""
    from aioflags import ErrorInfo, ErrorKind, SourceState
    from aioflags.sources import Update

    async def revoked(ctx: aioflags.sources.SourceContext) -> Any:
        yield Update(
            state=SourceState.OFF,
            error=ErrorInfo(
                kind=ErrorKind.ERROR_RESPONSE,
                status_code=401,
                message="HTTP error 401",
                fatal=True,
            ),
        )

    return Client(Config(data_system=DataSystem.custom(synchronizers=[revoked])))


@pytest.mark.asyncio
async def test_custom_fatal_source_makes_the_client_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "aioflags")
    client = _revoked_client()
    async with client:
        assert client.status is ProviderStatus.FATAL
    assert "cannot initialise" in caplog.text


@pytest.mark.asyncio
async def test_a_wait_for_ready_on_a_fatal_client_ends_running_or_closed() -> None:
    """FATAL is final (the client is not started again): a wait ends at once."""
    client = _revoked_client()
    with anyio.fail_after(30):
        async with client:
            assert client.status is ProviderStatus.FATAL
            assert await client.wait_ready() is ProviderStatus.FATAL
            with pytest.raises(
                ClientClosedError, match=r"is FATAL .* waited for READY"
            ):
                await client.wait_for_status(ProviderStatus.READY)
        with pytest.raises(ClientClosedError, match="is FATAL"):
            await client.wait_for_status(ProviderStatus.READY)


def test_flag_change_handler_must_be_callable() -> None:
    # Checked when it is added, not when the first change would call it.
    client = Client(Config(offline=True))
    with pytest.raises(TypeError, match="callable"):
        client.add_flag_change_handler("on_change")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handler must be callable, got None"):
        client.add_flag_value_change_handler("f", USER, None)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_flag_change_and_value_change_listeners() -> None:
    flags = {"f": FLAG, "g": {**FLAG, "variations": ["a", "b"]}}
    async with (
        FlagServer(flags) as server,
        Client(server.config("k", send_events=False)) as client,
    ):
        await server.wait_for_stream()
        all_changes: list[frozenset[str]] = []
        remove_all = client.add_flag_change_handler(all_changes.append)
        value_changes: list[aioflags.FlagValueChange] = []

        async def on_value(change: aioflags.FlagValueChange) -> None:
            value_changes.append(change)

        remove_value = client.add_flag_value_change_handler(
            "f", USER, on_value, default=None
        )
        async with client.flag_value_changes("f", USER) as changes:
            server.set_flag(
                "g",
                {**FLAG, "variations": ["a", "b"], "fallthrough": {"variation": 1}},
            )
            server.set_flag(
                "f", {**FLAG, "version": 9}
            )  # a new version, same value: no value change
            server.set_flag("f", {**FLAG, "fallthrough": {"variation": 1}})
            with anyio.fail_after(30):
                change = await changes.receive()
        assert (change.key, change.old_value, change.new_value) == (
            "f",
            True,
            False,
        )
        await client._bus.wait_delivered()
        assert value_changes == [change]
        assert {"g"} in all_changes and {"f"} in all_changes
        remove_all()
        remove_value()
        changed_again = anyio.Event()
        client.add_flag_change_handler(lambda keys: changed_again.set())
        server.set_flag("f", FLAG)
        with anyio.fail_after(30):
            await changed_again.wait()  # delivered after the removed handlers' turn
        assert len(value_changes) == 1
