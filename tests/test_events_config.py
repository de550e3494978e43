"""Analytics event options of Config: LaunchDarkly's defaults, validation, when events are on."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

import aioflags
import aioflags.sources
from aioflags import Config, ConfigurationError, DataSystem
from aioflags._datasystem._payloads import fdv1_full
from aioflags.testing import FlagData

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from tests.redis_server import RedisServer


def test_defaults_are_launchdarkly_s() -> None:
    config = Config("sdk-key")
    assert config.send_events is True
    assert config.events_uri == "https://events.launchdarkly.com"
    assert config.events_capacity == 10000
    assert config.flush_interval == 5.0
    assert config.all_attributes_private is False
    assert config.private_attributes == ()
    assert config.context_keys_capacity == 1000
    assert config.context_keys_flush_interval == 300.0
    assert config.diagnostic_opt_out is False
    assert config.diagnostic_recording_interval == 900.0
    assert config.omit_anonymous_contexts is False
    assert config.compress_events is False


def test_events_uri_loses_its_trailing_slash() -> None:
    assert Config("k", events_uri="http://127.0.0.1:1/").events_uri == (
        "http://127.0.0.1:1"
    )


def test_private_attributes_become_a_tuple() -> None:
    config = Config("k", private_attributes=["email", "/address/street"])  # type: ignore[arg-type]
    assert config.private_attributes == ("email", "/address/street")


def test_private_attributes_from_a_generator_are_kept() -> None:
    """The check reads them once: a generator is not used up before it is kept."""
    config = Config("k", private_attributes=(a for a in ["email"]))  # type: ignore[arg-type]
    assert config.private_attributes == ("email",)


@pytest.mark.parametrize(
    "options",
    [
        {"events_uri": "ftp://x"},
        {"events_capacity": 0},
        {"events_capacity": 1.5},
        {"events_capacity": True},
        {"flush_interval": 0},
        {"context_keys_capacity": -1},
        {"context_keys_flush_interval": 0},
        {"diagnostic_recording_interval": 59},
        {"private_attributes": "email"},
        {"private_attributes": ("",)},
        {"private_attributes": (3,)},
    ],
    ids=lambda o: "-".join(f"{k}={v!r}" for k, v in o.items()),
)
def test_bad_event_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Config("k", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "enabled"),
    [
        (Config("k"), True),
        (Config("k", send_events=False), False),
        (Config("k", offline=True), False),
        (Config(offline=True), False),
        (Config(data_system=FlagData().data_system()), False),
        (Config("k", data_system=FlagData().data_system()), False),
        (Config("k", data_system=DataSystem.file("flags.json")), False),
        (Config("k", data_system=DataSystem.streaming()), True),
        (Config("k", data_system=DataSystem.custom()), True),
        (Config("k", data_system=DataSystem.flagd()), False),
        (
            Config(
                "k",
                data_system=DataSystem.flagd(),
                events_uri="http://relay.internal:8030",
            ),
            True,
        ),
    ],
    ids=[
        "default",
        "send_events-off",
        "offline",
        "offline-no-key",
        "flagdata-no-key",
        "flagdata",
        "file",
        "streaming",
        "custom",
        "flagd",
        "flagd-own-recorder",
    ],
)
def test_events_are_on_only_with_a_flag_service(config: Config, enabled: bool) -> None:
    assert config.events_enabled is enabled


def test_a_custom_source_without_a_key_sends_no_events() -> None:
    async def source(ctx: aioflags.sources.SourceContext):  # type: ignore[no-untyped-def]
        yield  # pragma: no cover

    assert not Config(
        data_system=DataSystem.custom(synchronizers=[source])
    ).events_enabled


# ------------------------------------------------- events off for want of a key
NO_KEY = "Analytics events are off: no sdk_key is configured"


def in_memory() -> DataSystem:
    """A data system with one source that is not local (as a flag service is)."""

    async def initializer(
        ctx: aioflags.sources.SourceContext,
    ) -> AsyncGenerator[aioflags.sources.Basis, None]:
        yield aioflags.sources.Basis(change_set=fdv1_full({"flags": {}}))

    return DataSystem.custom(initializers=[initializer])


def warnings_about_the_key(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aioflags.events" and r.getMessage().startswith(NO_KEY)
    ]


@pytest.mark.asyncio
async def test_events_off_only_for_want_of_a_key_are_warned_about_once_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = aioflags.Context.create("u")
    async with aioflags.Client(Config(data_system=in_memory())) as client:
        assert warnings_about_the_key(caplog) == [
            NO_KEY + ". Flags are served, but LaunchDarkly receives no evaluations, "
            "experiment data or track() events. Pass the SDK key to Config to send "
            "them, or send_events=False to turn them off without this warning"
        ]
        for _ in range(3):
            await client.variation("f", user, False)
        client.track("clicked", user)
    (record,) = [r for r in caplog.records if r.getMessage().startswith(NO_KEY)]
    assert record.levelname == "WARNING"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "config",
    [
        Config(
            "k",
            data_system=in_memory(),
            events_uri="http://127.0.0.1:9",
            diagnostic_opt_out=True,
        ),
        Config(data_system=in_memory(), send_events=False),
        Config(data_system=FlagData().data_system()),
        Config(offline=True),
    ],
    ids=["with-a-key", "send_events-off", "local-source", "offline"],
)
async def test_no_warning_when_events_are_on_or_off_on_purpose(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    async with aioflags.Client(config):
        pass
    assert warnings_about_the_key(caplog) == []


@pytest.mark.asyncio
async def test_daemon_mode_without_a_key_warns_that_events_are_off(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    from aioflags.stores import RedisStore

    store = RedisStore(url=redis_server.url)
    config = Config(data_system=DataSystem.daemon(store), ready_timeout=0)
    async with aioflags.Client(config):
        assert len(warnings_about_the_key(caplog)) == 1
    caplog.clear()
    keyed = Config(
        "k",
        data_system=DataSystem.daemon(store),
        ready_timeout=0,
        events_uri="http://127.0.0.1:9",
        diagnostic_opt_out=True,
    )
    assert keyed.events_enabled
    async with aioflags.Client(keyed):
        pass
    assert warnings_about_the_key(caplog) == []


def where_events_go(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.getMessage().startswith("Analytics events go")
    ]


@pytest.mark.asyncio
async def test_local_flags_with_remote_events_say_where_events_go_once_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An app pointed at `aioflags serve` by base_uri alone: its console stays empty."""
    caplog.set_level(logging.INFO, "aioflags.events")
    config = Config(
        "k",
        data_system=in_memory(),
        base_uri="http://localhost:8765",
        events_uri="http://events.example.com",  # nothing is recorded, nothing sent
        diagnostic_opt_out=True,
    )
    async with aioflags.Client(config):
        pass
    (record,) = where_events_go(caplog)
    assert record.levelname == "INFO" and record.name == "aioflags.events"
    assert record.getMessage() == (
        "Analytics events go to http://events.example.com, not to the flag service "
        "on this machine (http://localhost:8765): set "
        "events_uri='http://localhost:8765' (AIOFLAGS_EVENTS_URI) to send them "
        "there (the console of `aioflags serve` shows them), or send_events=False "
        "to send none"
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "options",
    [
        {"base_uri": "http://127.0.0.1:8765", "events_uri": "http://127.0.0.1:8765"},
        {"base_uri": "http://[::1]:8765", "events_uri": "http://localhost:9"},
        {"base_uri": "https://relay.example.com", "events_uri": "http://127.0.0.1:9"},
    ],
    ids=["both-local", "both-local-other-names", "remote-flags"],
)
async def test_nothing_is_said_of_events_that_go_where_flags_come_from(
    options: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "aioflags.events")
    config = Config("k", data_system=in_memory(), diagnostic_opt_out=True, **options)  # type: ignore[arg-type]
    async with aioflags.Client(config):
        pass
    assert where_events_go(caplog) == []


@pytest.mark.asyncio
async def test_a_flagd_client_without_a_key_says_nothing_of_launchdarklys_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aioflags.testing import FlagdServer

    flag = {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"}
    async with FlagdServer({"flags": {"f": flag}}) as server:
        config = Config(data_system=DataSystem.flagd(server.target))
        assert not config.events_enabled
        async with aioflags.Client(config) as client:
            assert await client.variation("f", aioflags.Context.create("u"), False)
            assert "the data system is flagd's" in (client.usage().reason or "")
    assert warnings_about_the_key(caplog) == []
