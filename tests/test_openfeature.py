"""AioflagsProvider, driven through OpenFeature's client API against a FlagServer."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import (
    ErrorCode,
    GeneralError,
    InvalidContextError,
    ProviderFatalError,
    TargetingKeyMissingError,
)
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason
from openfeature.hook import Hook as OpenFeatureHook
from openfeature.hook import HookContext
from openfeature.provider import ProviderStatus
from openfeature.track import TrackingEventDetails

import aioflags
import aioflags.blocking
from aioflags.openfeature import AioflagsProvider, to_context
from aioflags.testing import FlagData, FlagServer, clause

USER = EvaluationContext("u1", {"email": "u1@example.com"})


def flag_data() -> FlagData:
    data = FlagData()
    data.update(
        data.flag("checkout").rule(
            clause("email", "endsWith", "@example.com"), serve=True
        ),
        data.flag("color")
        .variations("red", "green")
        .fallthrough_rollout({"red": 50, "green": 50}),
        data.flag("static").value_for_all("same"),
        data.flag("num").variations(3, 2.5).fallthrough(3),
        data.flag("obj").variations({"a": 1}, "text").fallthrough({"a": 1}),
        data.flag("off").off(),
        data.flag("target").variations("x", "y").target("y", "u1"),
    )
    data.update(
        data.flag("split-rule")
        .variations("a", "b")
        .rule(clause("key", "in", "u1"), rollout={"a": 100})
    )
    data.set_flag("broken", {"on": True, "variations": [1], "fallthrough": {}})
    return data


class Events:
    """OpenFeature handlers run on a thread pool: collect and wait thread-safely."""

    def __init__(self) -> None:
        self.seen: list[tuple[ProviderEvent, EventDetails]] = []
        self._cond = threading.Condition()
        self.handlers: list[tuple[ProviderEvent, Callable[[EventDetails], None]]] = []
        for event in (
            ProviderEvent.PROVIDER_READY,
            ProviderEvent.PROVIDER_ERROR,
            ProviderEvent.PROVIDER_STALE,
            ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
        ):

            def handler(details: EventDetails, event: ProviderEvent = event) -> None:
                if details.provider_name != "aioflags":
                    return  # the no-op provider's READY, replayed at once
                with self._cond:
                    self.seen.append((event, details))
                    self._cond.notify_all()

            api.add_handler(event, handler)
            self.handlers.append((event, handler))

    def _wait(self, predicate: Callable[[], bool]) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout=30)  # (a net: issue 97)

    async def wait_for(
        self,
        event: ProviderEvent,
        where: Callable[[EventDetails], bool] = lambda d: True,
    ) -> EventDetails:
        def matches() -> list[EventDetails]:
            return [d for e, d in self.seen if e is event and where(d)]

        assert await asyncio.to_thread(self._wait, lambda: bool(matches())), self.seen
        return matches()[0]

    def close(self) -> None:
        for event, handler in self.handlers:
            with contextlib.suppress(ValueError):  # api.shutdown() dropped it
                api.remove_handler(event, handler)


@pytest.fixture
def events() -> Iterator[Events]:
    """The provider events the OpenFeature API delivers during one test."""
    seen = Events()
    yield seen
    seen.close()


@contextlib.asynccontextmanager
async def serving(data: FlagData | None = None) -> AsyncIterator[FlagServer]:
    async with FlagServer() as server:
        (data or flag_data()).attach(server)
        try:
            yield server
        finally:
            await asyncio.to_thread(api.shutdown)
            api.clear_providers()


# Short timeouts so a hanging server is given up on at once.
QUICK: dict[str, Any] = {
    "ready_timeout": 0.2,
    "read_timeout": 0.3,
    "stream_read_timeout": 0.3,
    "initial_retry_delay": 0.05,
}


@pytest.mark.asyncio
async def test_evaluations_through_the_openfeature_client() -> None:
    async with serving() as server:
        provider = AioflagsProvider(server.config())
        await asyncio.to_thread(api.set_provider_and_wait, provider)
        client = api.get_client()
        assert client.get_provider_status() is ProviderStatus.READY
        assert provider.get_metadata().name == "aioflags"
        assert provider.client.status is aioflags.ProviderStatus.READY

        details = client.get_boolean_details("checkout", False, USER)
        assert (details.value, details.variant, details.reason) == (
            True,
            "0",
            Reason.TARGETING_MATCH,
        )
        details = await client.get_boolean_details_async("checkout", False, USER)
        assert details.value is True and details.reason == Reason.TARGETING_MATCH
        assert client.get_string_details("target", "", USER).value == "y"
        assert (
            client.get_string_details("color", "", USER).reason is Reason.SPLIT
        )  # the enum member
        assert client.get_string_details("split-rule", "", USER).reason == Reason.SPLIT
        assert client.get_string_details("static", "", USER).reason is Reason.STATIC
        off = client.get_boolean_details("off", True, USER)
        assert (off.value, off.reason) == (False, Reason.DISABLED)
        assert client.get_integer_value("num", 0, USER) == 3
        number = await client.get_float_details_async("num", 0.0, USER)
        assert number.value == 3.0 and isinstance(number.value, float)
        assert client.get_object_value("obj", {}, USER) == {"a": 1}
        assert (await client.get_object_details_async("obj", {}, USER)).variant == "0"

        cases: list[tuple[Any, str, Any, ErrorCode]] = [
            (client.get_boolean_details, "nope", False, ErrorCode.FLAG_NOT_FOUND),
            (client.get_integer_details, "checkout", 7, ErrorCode.TYPE_MISMATCH),
            (client.get_string_details, "broken", "d", ErrorCode.PARSE_ERROR),
        ]
        for get, key, default, code in cases:
            failed = get(key, default, USER)
            assert (failed.value, failed.error_code, failed.reason) == (
                default,
                code,
                Reason.ERROR,
            )
        # The async path gets the default too: errors are raised, not returned.
        as_int = await client.get_integer_details_async("checkout", 7, USER)
        assert (as_int.value, as_int.error_code) == (7, ErrorCode.TYPE_MISMATCH)
        as_obj = await client.get_object_details_async("static", {"d": 1}, USER)
        assert as_obj.value == {"d": 1}
        missing = client.get_boolean_details("checkout", False, EvaluationContext())
        assert missing.error_code is ErrorCode.TARGETING_KEY_MISSING


@pytest.mark.asyncio
async def test_track_through_the_openfeature_client_reaches_the_events_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aioflags.openfeature")
    async with serving() as server:
        provider = AioflagsProvider(server.config())
        await asyncio.to_thread(api.set_provider_and_wait, provider)
        client = api.get_client()
        details = TrackingEventDetails(99.5, {"currency": "EUR", "items": ("a", "b")})
        client.track("checkout-completed", USER, details)
        client.track("page-viewed", EvaluationContext("u2"))
        client.track("with-value-only", USER, TrackingEventDetails(value=3))
        for _ in range(3):  # dropped, not raised; warned about once
            client.track("no-key", EvaluationContext(), details)
        await provider.client.flush()
        with anyio.fail_after(30):
            custom = await server.wait_for_events(3, kind="custom")
    assert [e["key"] for e in custom] == [
        "checkout-completed",
        "page-viewed",
        "with-value-only",
    ]
    checkout, viewed, value_only = custom
    assert checkout["metricValue"] == 99.5
    assert checkout["data"] == {"currency": "EUR", "items": ["a", "b"]}
    assert checkout["context"] == {
        "kind": "user",
        "key": "u1",
        "email": "u1@example.com",
    }
    assert viewed.get("metricValue") is None and viewed.get("data") is None
    assert viewed["context"] == {"kind": "user", "key": "u2"}
    assert value_only["metricValue"] == 3 and value_only.get("data") is None
    dropped = [r for r in caplog.records if "'no-key'" in r.getMessage()]
    levels = [r.levelno for r in dropped]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert all(r.name == "aioflags.openfeature" for r in dropped)
    assert all("targeting key" in r.getMessage() for r in dropped)


def test_attribute_values_of_subclasses_map_as_their_base_types_do() -> None:
    """The mapping's exact-type fast path leaves subclasses to the general checks.

    A str subclass, an IntEnum, a bool, an OrderedDict, a tuple, a dict
    subclass with a datetime inside: each maps as its base type's value
    does, for a LaunchDarkly flag's context and a flagd flag's alike.
    """
    import collections
    import enum

    from aioflags.openfeature import to_flagd_context

    class Tier(enum.IntEnum):
        GOLD = 3

    class Name(str):
        pass

    class Bag(dict):  # type: ignore[type-arg]
        pass

    when = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)
    given: dict[str, Any] = {
        "tier": Tier.GOLD,
        "nick": Name("ann"),
        "on": True,
        "ratio": 0.5,
        "nothing": None,
        "ordered": collections.OrderedDict([("a", 1), ("b", when)]),
        "pair": ("x", when),
        "bag": Bag({"since": when, "inner": {"at": when, "n": 1}}),
        "list": [when, {"at": when}],
    }
    expected = {
        "tier": 3,
        "nick": "ann",
        "on": True,
        "ratio": 0.5,
        "ordered": {"a": 1, "b": when.isoformat()},
        "pair": ["x", when.isoformat()],
        "bag": {"since": when.isoformat(), "inner": {"at": when.isoformat(), "n": 1}},
        "list": [when.isoformat(), {"at": when.isoformat()}],
    }
    ld = to_context(EvaluationContext("k", given)).to_dict()
    assert {k: v for k, v in ld.items() if k not in ("kind", "key")} == expected
    assert type(ld["bag"]) is dict and type(ld["bag"]["inner"]) is dict
    flagd = to_flagd_context(EvaluationContext("k", given)).to_dict()
    assert {k: v for k, v in flagd.items() if k not in ("kind", "key")} == expected


def test_evaluation_contexts_map_to_aioflags_contexts() -> None:
    when = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)
    ctx = to_context(
        EvaluationContext(
            "o1",
            {
                "kind": "org",
                "name": "Acme",
                "anonymous": True,
                "privateAttributes": ["plan"],
                "plan": "pro",
                "since": when,
                "tags": ["a", when],
            },
        )
    )
    assert ctx.to_dict() == {
        "kind": "org",
        "key": "o1",
        "name": "Acme",
        "anonymous": True,
        "plan": "pro",
        "since": when.isoformat(),
        "tags": ["a", when.isoformat()],
        "_meta": {"privateAttributes": ["plan"]},
    }
    assert to_context(EvaluationContext(None, {"key": "k"})).key == "k"
    multi = to_context(
        EvaluationContext(
            None,
            {
                "kind": "multi",
                "user": {"targetingKey": "u", "email": "e"},
                "org": {"key": "o"},
            },
        )
    )
    assert multi.kinds == ("org", "user")
    assert multi.individual_context("user").get("email") == "e"  # type: ignore[union-attr]
    for bad, error in (
        (None, TargetingKeyMissingError),
        (EvaluationContext("k", {"kind": 5}), InvalidContextError),
        # A string, not a list: refused rather than redacting its letters.
        (EvaluationContext("k", {"privateAttributes": "email"}), InvalidContextError),
        (EvaluationContext("k", {"kind": "bad kind!"}), InvalidContextError),
        (EvaluationContext(None, {"kind": "multi"}), InvalidContextError),
        (EvaluationContext(None, {"kind": "multi", "user": "x"}), InvalidContextError),
        (
            EvaluationContext(None, {"kind": "multi", "user": {}}),
            TargetingKeyMissingError,
        ),
    ):
        with pytest.raises(error):
            to_context(bad)


def test_an_attribute_with_an_empty_name_is_dropped_as_launchdarkly_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Was InvalidContextError: LaunchDarkly's SDKs (and its OpenFeature
    # provider) drop an attribute whose name is empty and evaluate (issue 80).
    caplog.set_level(logging.DEBUG, logger="aioflags.openfeature")
    for _ in range(2):
        ctx = to_context(EvaluationContext("k", {"": 1, "plan": "pro"}))
        assert ctx.to_dict() == {"kind": "user", "key": "k", "plan": "pro"}
    multi = to_context(
        EvaluationContext(None, {"kind": "multi", "org": {"key": "o", "": True}})
    )
    assert multi.to_dict() == {"kind": "org", "key": "o"}
    dropped = [
        r
        for r in caplog.records
        if r.name == "aioflags.openfeature" and "attribute named ''" in r.getMessage()
    ]
    assert [r.levelno for r in dropped] == [logging.DEBUG]  # once per name


@pytest.mark.slow
@pytest.mark.asyncio
async def test_events_are_forwarded_after_initialisation(events: Events) -> None:
    data = flag_data()
    async with serving(data) as server:
        streaming = aioflags.DataSystem.streaming()
        provider = AioflagsProvider(server.config(data_system=streaming))
        await asyncio.to_thread(api.set_provider_and_wait, provider)
        await events.wait_for(ProviderEvent.PROVIDER_READY)
        data.set_value("static", "changed")
        changed = await events.wait_for(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
        assert changed.flags_changed == ["static"]
        # Only the SDK's own READY: the replay of the client's is not forwarded.
        assert [e for e, _ in events.seen].count(ProviderEvent.PROVIDER_READY) == 1
        # Losing the only source after READY is ERROR; the last data is served.
        server.fail("/sdk/stream", status=401)
        server.disconnect_streams()
        error = await events.wait_for(ProviderEvent.PROVIDER_ERROR)
        assert error.error_code is ErrorCode.GENERAL and "401" in str(error.message)
        client = api.get_client()
        assert client.get_provider_status() is ProviderStatus.ERROR
        assert client.get_boolean_value("checkout", False, USER) is True


@pytest.mark.slow
@pytest.mark.asyncio
async def test_fatal_after_a_failed_start_is_forwarded_as_provider_fatal(
    events: Events,
) -> None:
    async with serving() as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        streaming = aioflags.DataSystem.streaming()
        provider = AioflagsProvider(server.config(**QUICK, data_system=streaming))
        with pytest.raises(GeneralError):
            await asyncio.to_thread(api.set_provider_and_wait, provider)
        server.fail("/sdk/stream", status=401)
        server.disconnect_streams(abort=True)
        await events.wait_for(
            ProviderEvent.PROVIDER_ERROR,
            lambda d: d.error_code is ErrorCode.PROVIDER_FATAL,
        )
        client = api.get_client()
        assert client.get_provider_status() is ProviderStatus.FATAL
        details = client.get_boolean_details("checkout", False, USER)
        assert details.error_code is ErrorCode.PROVIDER_FATAL
        with pytest.raises(ProviderFatalError):
            provider.resolve_boolean_details("checkout", False, USER)


@pytest.mark.asyncio
async def test_a_fatal_start_raises_provider_fatal() -> None:
    async with serving() as server:
        server.fail("/sdk/poll", status=401)
        server.fail("/sdk/stream", status=401)
        provider = AioflagsProvider(server.config())
        with pytest.raises(ProviderFatalError):
            await asyncio.to_thread(api.set_provider_and_wait, provider)
        assert api.get_client().get_provider_status() is ProviderStatus.FATAL


@pytest.mark.slow
@pytest.mark.asyncio
async def test_not_ready_in_time_is_an_error_and_later_ready_is_forwarded(
    events: Events,
) -> None:
    async with serving() as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        provider = AioflagsProvider(server.config(**QUICK))
        with pytest.raises(GeneralError, match="not ready"):
            await asyncio.to_thread(api.set_provider_and_wait, provider)
        client = api.get_client()
        assert client.get_provider_status() is ProviderStatus.ERROR
        assert (
            client.get_boolean_details("checkout", False, USER).error_code
            is ErrorCode.PROVIDER_NOT_READY
        )
        server.clear_faults()
        server.disconnect_streams(abort=True)
        await events.wait_for(ProviderEvent.PROVIDER_READY)


@pytest.mark.asyncio
async def test_initialize_on_the_loop_thread_says_what_to_do() -> None:
    async with serving() as server:
        provider = AioflagsProvider(server.config())
        with pytest.raises(GeneralError, match=r"asyncio\.to_thread"):
            provider.initialize(EvaluationContext())
        provider.shutdown()  # nothing started: a no-op


def test_a_shared_client_without_its_loop_says_what_to_do() -> None:
    shared = aioflags.Client(aioflags.Config(offline=True))
    provider = AioflagsProvider(shared)  # built where no loop runs
    with pytest.raises(GeneralError, match="knows no event loop") as raised:
        provider.initialize(EvaluationContext())
    assert "pass loop=" in str(raised.value)
    assert "build it from an aioflags.Config" in str(raised.value)
    provider.shutdown()
    with pytest.raises(TypeError, match=r"Config, Client or blocking\.Client"):
        AioflagsProvider("sdk-key")  # type: ignore[arg-type]


def client_threads() -> int:
    return [t.name for t in threading.enumerate()].count("aioflags-client")


async def streams_closed(server: FlagServer) -> None:
    """The server has seen every stream close.

    The client closed its socket on its own thread before shutdown returned;
    the server runs on this loop and notices the close when it next runs, so
    the test waits for that (bounded) instead of reading the count at once.
    """
    with anyio.fail_after(30):
        await server.wait_until(lambda: server.open_streams() == 0)


@pytest.mark.asyncio
async def test_built_where_no_loop_runs_the_client_runs_on_a_thread_of_its_own() -> (
    None
):
    data = flag_data()
    async with serving(data) as server:
        events = Events()
        try:
            streaming = aioflags.DataSystem.streaming()
            # As at import or in sync start-up code: no loop in this thread.
            provider = await asyncio.to_thread(
                AioflagsProvider, server.config(data_system=streaming)
            )
            await asyncio.to_thread(api.set_provider_and_wait, provider)
            assert client_threads() == 1
            # Initialised again while running: the same thread and client.
            await asyncio.to_thread(provider.initialize, EvaluationContext())
            assert client_threads() == 1
            client = api.get_client()
            assert client.get_provider_status() is ProviderStatus.READY
            # Evaluations from this loop (not the client's) and from other threads.
            assert client.get_boolean_value("checkout", False, USER) is True
            details = await client.get_boolean_details_async("checkout", False, USER)
            assert (details.value, details.reason) == (True, Reason.TARGETING_MATCH)
            assert (
                await asyncio.to_thread(client.get_string_value, "static", "", USER)
                == "same"
            )
            data.set_value("static", "changed")
            changed = await events.wait_for(
                ProviderEvent.PROVIDER_CONFIGURATION_CHANGED
            )
            assert changed.flags_changed == ["static"]
            assert client.get_string_value("static", "", USER) == "changed"
            client.track("on-another-thread", USER, TrackingEventDetails(1.5))
        finally:
            events.close()
        try:
            await asyncio.to_thread(api.shutdown)  # also drops the API's handlers
            assert client_threads() == 0
            # Closing the client flushed the event tracked from this thread.
            tracked = server.events_of("custom")
            assert [(e["key"], e["metricValue"]) for e in tracked] == [
                ("on-another-thread", 1.5)
            ]
            assert provider.client.status is aioflags.ProviderStatus.NOT_READY
            await streams_closed(server)
            await asyncio.to_thread(provider.shutdown)  # idempotent
            # Initialised again after shutdown: a fresh thread and client run.
            await asyncio.to_thread(api.set_provider_and_wait, provider)
            assert client_threads() == 1
            assert api.get_client().get_string_value("static", "", USER) == "changed"
        finally:
            await asyncio.to_thread(api.shutdown)
    assert client_threads() == 0


@pytest.mark.asyncio
async def test_set_provider_from_sync_set_up_becomes_ready(events: Events) -> None:
    async with serving() as server:
        provider = await asyncio.to_thread(AioflagsProvider, server.config())
        api.set_provider(provider)  # returns at once; initialises on a thread
        await events.wait_for(ProviderEvent.PROVIDER_READY)
        client = api.get_client()
        assert client.get_provider_status() is ProviderStatus.READY
        assert (await client.get_boolean_details_async("checkout", False, USER)).value


@pytest.mark.slow
@pytest.mark.asyncio
async def test_on_a_thread_not_ready_in_time_then_ready_then_fatal(
    events: Events,
) -> None:
    async with serving() as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        streaming = aioflags.DataSystem.streaming()
        provider = await asyncio.to_thread(
            AioflagsProvider, server.config(**QUICK, data_system=streaming)
        )
        with pytest.raises(GeneralError, match="not ready"):
            await asyncio.to_thread(api.set_provider_and_wait, provider)
        client = api.get_client()
        assert client.get_provider_status() is ProviderStatus.ERROR
        server.clear_faults()
        server.disconnect_streams(abort=True)
        await events.wait_for(ProviderEvent.PROVIDER_READY)
        assert client.get_boolean_value("checkout", False, USER) is True
        server.fail("/sdk/stream", status=401)
        server.disconnect_streams()
        await events.wait_for(ProviderEvent.PROVIDER_ERROR)
        await asyncio.to_thread(provider.shutdown)
        assert client_threads() == 0


@pytest.mark.asyncio
async def test_on_a_thread_a_fatal_start_raises_provider_fatal_and_stays_fatal() -> (
    None
):
    async with serving() as server:
        server.fail("/sdk/poll", status=401)
        server.fail("/sdk/stream", status=401)
        provider = await asyncio.to_thread(AioflagsProvider, server.config())
        with pytest.raises(ProviderFatalError):
            await asyncio.to_thread(api.set_provider_and_wait, provider)
        assert api.get_client().get_provider_status() is ProviderStatus.FATAL
        await asyncio.to_thread(provider.shutdown)
        assert client_threads() == 0
        with pytest.raises(ProviderFatalError, match="create a new one"):
            await asyncio.to_thread(provider.initialize, EvaluationContext())
        assert client_threads() == 0


@pytest.mark.asyncio
async def test_on_a_thread_shutdown_aborts_an_initialize_that_is_waiting() -> None:
    async with serving() as server:
        server.fail("/sdk/stream", hang=True)
        streaming = aioflags.DataSystem.streaming()
        provider = await asyncio.to_thread(
            AioflagsProvider,
            server.config(data_system=streaming, ready_timeout=60.0),
        )
        outcome: list[BaseException] = []
        async with anyio.create_task_group() as tg:

            async def initialize() -> None:
                try:
                    await asyncio.to_thread(provider.initialize, EvaluationContext())
                except GeneralError as exc:
                    outcome.append(exc)

            tg.start_soon(initialize)
            await server.wait_for_requests("/sdk/stream")  # waiting for READY
            await asyncio.to_thread(provider.shutdown)  # not after 60 s
        assert "shut down while initialize was running" in str(outcome[0])
        assert client_threads() == 0
        await server.wait_for_streams_closed()


@pytest.mark.asyncio
async def test_built_where_no_loop_runs_then_initialised_on_a_loop_says_what_to_do() -> (
    None
):
    provider = await asyncio.to_thread(AioflagsProvider, aioflags.Config(offline=True))
    with pytest.raises(GeneralError) as raised:
        provider.initialize(
            EvaluationContext()
        )  # on this loop's thread: would block it
    message = str(raised.value)
    assert "running asyncio event loop's own thread" in message
    assert "await asyncio.to_thread(api.set_provider_and_wait, provider)" in message
    assert client_threads() == 0


def test_under_trio_initialise_on_a_worker_thread_and_evaluate() -> None:
    import trio

    data = flag_data()
    provider = AioflagsProvider(aioflags.Config(data_system=data.data_system()))

    async def main() -> None:
        with pytest.raises(GeneralError) as raised:
            provider.initialize(EvaluationContext())  # would block trio
        message = str(raised.value)
        assert "inside trio.run" in message
        assert "trio.to_thread.run_sync(api.set_provider_and_wait, provider)" in message
        assert "work from trio and asyncio" in message
        await trio.to_thread.run_sync(api.set_provider_and_wait, provider)
        client = api.get_client()
        details = await client.get_boolean_details_async("checkout", False, USER)
        assert (details.value, details.reason) == (True, Reason.TARGETING_MATCH)
        assert client.get_string_value("static", "", USER) == "same"
        await trio.to_thread.run_sync(api.shutdown)

    try:
        trio.run(main)
    finally:
        api.clear_providers()
    assert client_threads() == 0


@pytest.mark.asyncio
async def test_a_shared_client_is_not_closed_by_the_provider() -> None:
    async with serving() as server, aioflags.Client(server.config()) as shared:
        provider = AioflagsProvider(shared)
        await asyncio.to_thread(api.set_provider_and_wait, provider)
        assert api.get_client().get_boolean_value("checkout", False, USER)
        await asyncio.to_thread(provider.shutdown)
        await asyncio.to_thread(provider.shutdown)  # idempotent
        assert shared.status is aioflags.ProviderStatus.READY
        assert await shared.bool_variation(
            "checkout",
            aioflags.Context.create("x", attributes={"email": "a@example.com"}),
            False,
        )


@pytest.mark.asyncio
async def test_a_shared_blocking_client_serves_openfeature_and_sync_code() -> None:
    async with serving() as server:
        shared = aioflags.blocking.Client(server.config())
        provider = AioflagsProvider(shared)
        with pytest.raises(GeneralError, match=r"not started: start it"):
            await asyncio.to_thread(provider.initialize, EvaluationContext())
        await asyncio.to_thread(shared.start)
        try:
            await asyncio.to_thread(api.set_provider_and_wait, provider)
            client = api.get_client()
            assert client.get_boolean_value("checkout", False, USER) is True
            ctx = aioflags.Context.create("x", attributes={"email": "a@example.com"})
            assert shared.bool_variation("checkout", ctx, False) is True
            await asyncio.to_thread(api.shutdown)  # leaves the shared client running
            assert shared.status is aioflags.ProviderStatus.READY
            assert client_threads() == 1
            await asyncio.to_thread(api.set_provider_and_wait, provider)  # again
            assert api.get_client().get_boolean_value("checkout", False, USER)
        finally:
            await asyncio.to_thread(shared.close)
        assert client_threads() == 0


@pytest.mark.asyncio
async def test_shutdown_closes_an_owned_client() -> None:
    async with serving() as server:
        provider = AioflagsProvider(server.config())
        await asyncio.to_thread(api.set_provider_and_wait, provider)
        await asyncio.to_thread(api.shutdown)
        assert provider.client.status is aioflags.ProviderStatus.NOT_READY
        await streams_closed(server)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_set_provider_at_import_serves_evaluations_on_uvicorn() -> None:
    """The common set-up, in a fresh process: set_provider at import, no loop running."""
    script = Path(__file__).with_name("openfeature_at_import.py")
    async with FlagServer() as server:
        flag_data().attach(server)
        result = await anyio.run_process(
            [sys.executable, "-X", "dev", str(script), server.url], check=False
        )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "Warning" not in stderr, stderr  # ResourceWarning shows under -X dev
    answers = json.loads(result.stdout)
    assert answers["/checkout"] == {
        "value": True,
        "reason": "TARGETING_MATCH",
        "error_code": None,
        "status": "READY",
        "handler_thread": "MainThread",  # uvicorn's loop, not the client's
        "client_threads": 1,
    }
    assert answers["/static"] == {"value": "same", "reason": "STATIC"}
    assert answers["client_threads_after_shutdown"] == 0


class OpenFeatureRecorder(OpenFeatureHook):
    """An OpenFeature hook: records what OpenFeature hands it."""

    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    def before(
        self, hook_context: HookContext, hints: Mapping[str, Any]
    ) -> EvaluationContext | None:
        self.calls.append(("openfeature.before", hook_context.flag_key))
        return None

    def after(
        self,
        hook_context: HookContext,
        details: FlagEvaluationDetails[Any],
        hints: Mapping[str, Any],
    ) -> None:
        self.calls.append(("openfeature.after", (details.value, details.variant)))


class AioflagsRecorder(aioflags.Hook):
    """An aioflags hook on the same client."""

    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    def before_evaluation(
        self,
        series_context: aioflags.EvaluationSeriesContext,
        data: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        self.calls.append(("aioflags.before", series_context.method))
        return data

    def after_evaluation(
        self,
        series_context: aioflags.EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: aioflags.EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        self.calls.append(("aioflags.after", (detail.value, detail.variation_index)))
        return data


@pytest.mark.asyncio
async def test_openfeature_hooks_pass_through_and_aioflags_hooks_run_inside() -> None:
    calls: list[tuple[str, Any]] = []
    async with serving() as server:
        provider = AioflagsProvider(server.config(hooks=[AioflagsRecorder(calls)]))
        await asyncio.to_thread(api.set_provider_and_wait, provider)
        assert provider.get_provider_hooks() == []  # nothing added or taken away
        api.add_hooks([OpenFeatureRecorder(calls)])
        try:
            client = api.get_client()
            assert client.get_boolean_value("checkout", False, USER) is True
            assert await client.get_boolean_value_async("checkout", False, USER)
        finally:
            api.clear_hooks()
    # OpenFeature's hooks wrap the provider; aioflags' hooks wrap the evaluation.
    assert (
        calls
        == [
            ("openfeature.before", "checkout"),
            ("aioflags.before", "bool_variation_detail"),
            ("aioflags.after", (True, 0)),
            ("openfeature.after", (True, "0")),
        ]
        * 2
    )
