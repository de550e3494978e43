"""AioflagsProvider, driven through OpenFeature's client API against a FlagServer."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

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
from openfeature.flag_evaluation import Reason
from openfeature.provider import ProviderStatus

import aioflags
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
            return self._cond.wait_for(predicate, timeout=10)

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
            api.remove_handler(event, handler)


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


def config(server: FlagServer, **options: Any) -> aioflags.Config:
    return aioflags.Config(
        "sdk-key",
        base_uri=server.url,
        stream_uri=server.url,
        events_uri=server.url,
        **options,
    )


@pytest.mark.asyncio
async def test_evaluations_through_the_openfeature_client() -> None:
    async with serving() as server:
        provider = AioflagsProvider(config(server))
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
        assert client.get_string_details("color", "", USER).reason == Reason.SPLIT
        assert client.get_string_details("split-rule", "", USER).reason == Reason.SPLIT
        assert client.get_string_details("static", "", USER).reason == Reason.STATIC
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


@pytest.mark.asyncio
async def test_events_are_forwarded_after_initialisation() -> None:
    data = flag_data()
    async with serving(data) as server:
        events = Events()
        try:
            streaming = aioflags.DataSystem.streaming()
            provider = AioflagsProvider(config(server, data_system=streaming))
            await asyncio.to_thread(api.set_provider_and_wait, provider)
            await events.wait_for(ProviderEvent.PROVIDER_READY)
            data.set_value("static", "changed")
            changed = await events.wait_for(
                ProviderEvent.PROVIDER_CONFIGURATION_CHANGED
            )
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
        finally:
            events.close()


@pytest.mark.asyncio
async def test_fatal_after_a_failed_start_is_forwarded_as_provider_fatal() -> None:
    async with serving() as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        events = Events()
        try:
            streaming = aioflags.DataSystem.streaming()
            provider = AioflagsProvider(config(server, **QUICK, data_system=streaming))
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
        finally:
            events.close()


@pytest.mark.asyncio
async def test_a_fatal_start_raises_provider_fatal() -> None:
    async with serving() as server:
        server.fail("/sdk/poll", status=401)
        server.fail("/sdk/stream", status=401)
        provider = AioflagsProvider(config(server))
        with pytest.raises(ProviderFatalError):
            await asyncio.to_thread(api.set_provider_and_wait, provider)
        assert api.get_client().get_provider_status() is ProviderStatus.FATAL


@pytest.mark.asyncio
async def test_not_ready_in_time_is_an_error_and_later_ready_is_forwarded() -> None:
    async with serving() as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        events = Events()
        try:
            provider = AioflagsProvider(config(server, **QUICK))
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
        finally:
            events.close()


@pytest.mark.asyncio
async def test_initialize_on_the_loop_thread_says_what_to_do() -> None:
    async with serving() as server:
        provider = AioflagsProvider(config(server))
        with pytest.raises(GeneralError, match=r"asyncio\.to_thread"):
            provider.initialize(EvaluationContext())
        provider.shutdown()  # nothing started: a no-op


def test_a_provider_made_outside_a_loop_needs_one() -> None:
    provider = AioflagsProvider(aioflags.Config(offline=True))
    with pytest.raises(GeneralError, match="no running event loop"):
        provider.initialize(EvaluationContext())
    provider.shutdown()
    with pytest.raises(TypeError, match="Config or Client"):
        AioflagsProvider("sdk-key")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_shared_client_is_not_closed_by_the_provider() -> None:
    async with serving() as server, aioflags.Client(config(server)) as shared:
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
async def test_shutdown_closes_an_owned_client() -> None:
    async with serving() as server:
        provider = AioflagsProvider(config(server))
        await asyncio.to_thread(api.set_provider_and_wait, provider)
        await asyncio.to_thread(api.shutdown)
        assert provider.client.status is aioflags.ProviderStatus.NOT_READY
        assert server.open_streams() == 0
