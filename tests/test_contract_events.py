"""The contract-test service's analytics events: config, commands, capabilities (events.md §12)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_contract_service import USER, running, service

pytestmark = pytest.mark.asyncio


def events_config(base: str | None, **fields: Any) -> dict[str, Any]:
    # The v3 harness sends every field, null when unset (baseEventsConfig).
    config: dict[str, Any] = {
        "baseUri": base,
        "capacity": None,
        "enableDiagnostics": None,
        "allAttributesPrivate": None,
        "globalPrivateAttributes": None,
        "flushIntervalMs": 1000000,
        "omitAnonymousContexts": None,
        "enableGzip": None,
    }
    config.update(fields)
    return config


async def test_capabilities_declare_the_events_suite() -> None:
    async with running() as harness:
        caps = set((await harness.http.get("/")).json()["capabilities"])
    assert {
        "event-gzip",
        "optional-event-gzip",
        "event-sampling",
        "inline-context",
        "inline-context-all",
        "anonymous-redaction",
        "omit-anonymous-contexts",
        "client-prereq-events",
        "service-endpoints",
    } <= caps


async def test_custom_identify_and_flush_commands_post_events() -> None:
    async with running() as harness:
        url = await harness.create(events=events_config(harness.server.url))
        await harness.command(
            url,
            "customEvent",
            {
                "eventKey": "checkout",
                "context": USER,
                "data": {"cart": 3},
                "omitNullData": None,
                "metricValue": 7,
            },
        )
        await harness.command(url, "identifyEvent", {"context": {"key": "u2"}})
        assert await harness.command(
            url,
            "evaluate",
            {
                "flagKey": "n",
                "context": USER,
                "valueType": "int",
                "defaultValue": 0,
                "detail": False,
            },
        ) == {"value": 7}
        await harness.command(url, "flushEvents", {})
        await harness.server.wait_for_events(kind="summary")
        events = harness.server.events
    kinds = [e["kind"] for e in events]
    assert kinds == ["index", "custom", "identify", "feature", "summary"]
    custom = events[1]
    assert custom["data"] == {"cart": 3} and custom["metricValue"] == 7


async def test_events_config_maps_onto_config() -> None:
    config, _ = service.config_from(
        {
            "credential": "k",
            "events": events_config(
                "http://127.0.0.1:1/",
                capacity=20,
                enableDiagnostics=True,
                allAttributesPrivate=True,
                globalPrivateAttributes=["email", "/address/street"],
                flushIntervalMs=250,
                omitAnonymousContexts=True,
                enableGzip=True,
            ),
            "clientSide": {"initialContext": {"key": "u"}},  # ignored
        }
    )
    assert config.events_enabled
    assert config.events_uri == "http://127.0.0.1:1"
    assert config.events_capacity == 20
    assert config.diagnostic_opt_out is False
    assert config.all_attributes_private is True
    assert config.private_attributes == ("email", "/address/street")
    assert config.flush_interval == 0.25
    assert config.omit_anonymous_contexts is True
    assert config.compress_events is True


async def test_null_events_means_off_and_null_fields_mean_defaults() -> None:
    off, _ = service.config_from({"credential": "k", "events": None})
    assert not off.events_enabled
    on, _ = service.config_from(
        {
            "credential": "k",
            "serviceEndpoints": {"events": "http://127.0.0.1:2"},
            "events": events_config(None, flushIntervalMs=None, capacity=0),
        }
    )
    assert on.events_uri == "http://127.0.0.1:2"
    assert on.events_capacity == 10000 and on.flush_interval == 5.0
    assert on.diagnostic_opt_out is True and on.compress_events is False
