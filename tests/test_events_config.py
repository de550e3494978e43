"""Analytics event options of Config: LaunchDarkly's defaults, validation, when events are on."""

from __future__ import annotations

import pytest

import aioflags
from aioflags import Config, ConfigurationError, DataSystem
from aioflags.testing import FlagData


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
    ],
)
def test_events_are_on_only_with_a_flag_service(config: Config, enabled: bool) -> None:
    assert config.events_enabled is enabled


def test_a_custom_source_without_a_key_sends_no_events() -> None:
    async def source(ctx: aioflags.SourceContext):  # type: ignore[no-untyped-def]
        yield  # pragma: no cover

    assert not Config(
        data_system=DataSystem.custom(synchronizers=[source])
    ).events_enabled
