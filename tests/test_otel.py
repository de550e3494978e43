"""aioflags.otel.TracingHook, checked with the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aioflags import Client, Config, Context, DataSystem
from aioflags.otel import TracingHook
from aioflags.testing import FlagData, FlagServer
from tests.analytics import flag

ORG = Context.create("org-key", "org")
pytestmark = pytest.mark.asyncio


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


def flags() -> FlagData:
    data = FlagData()
    data.update(
        data.flag("b").variations(True, False).fallthrough(True),
        data.flag("j").variations({"a": [1]}, {"b": 2}).fallthrough({"b": 2}),
        data.flag("off").variations(True, False).off_variation(False).off(),
        data.flag("x")
        .variations("p", "q")
        .fallthrough_rollout({"p": 50, "q": 50}, kind="org", experiment=True),
    )
    return data


def events_of(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events]


async def evaluate_in_span(
    provider: TracerProvider,
    memory: InMemorySpanExporter,
    hook: TracingHook,
    *calls: Any,
) -> tuple[list[Any], ReadableSpan]:
    results = []
    async with Client(
        Config(data_system=flags().data_system(), hooks=[hook])
    ) as client:
        with provider.get_tracer("app").start_as_current_span("request"):
            for method, key, context, default in calls:
                results.append(await getattr(client, method)(key, context, default))
    (request,) = [s for s in memory.get_finished_spans() if s.name == "request"]
    return results, request


async def test_an_evaluation_event_with_the_semantic_conventions_attributes(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter
    results, span = await evaluate_in_span(
        provider,
        memory,
        TracingHook(),
        ("bool_variation", "b", ORG, False),
        ("string_variation", "b", ORG, "d"),
        ("variation", "off", ORG, None),
        ("variation", "missing", ORG, 3),
    )
    assert results == [True, "d", False, 3]
    assert events_of(span) == [
        (
            "feature_flag.evaluation",
            {
                "feature_flag.key": "b",
                "feature_flag.provider.name": "LaunchDarkly",
                "feature_flag.context.id": "org:org-key",
                "feature_flag.result.variant": "0",
                "feature_flag.result.reason": "targeting_match",
            },
        ),
        (
            "feature_flag.evaluation",
            {
                "feature_flag.key": "b",
                "feature_flag.provider.name": "LaunchDarkly",
                "feature_flag.context.id": "org:org-key",
                "feature_flag.result.reason": "error",
                "error.type": "type_mismatch",
            },
        ),
        (
            "feature_flag.evaluation",
            {
                "feature_flag.key": "off",
                "feature_flag.provider.name": "LaunchDarkly",
                "feature_flag.context.id": "org:org-key",
                "feature_flag.result.variant": "1",
                "feature_flag.result.reason": "disabled",
            },
        ),
        (
            "feature_flag.evaluation",
            {
                "feature_flag.key": "missing",
                "feature_flag.provider.name": "LaunchDarkly",
                "feature_flag.context.id": "org:org-key",
                "feature_flag.result.reason": "error",
                "error.type": "flag_not_found",
            },
        ),
    ]
    # No span of the hook's own by default.
    assert [s.name for s in memory.get_finished_spans()] == ["request"]


async def test_values_are_opt_in_and_experiments_are_splits(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter
    _, span = await evaluate_in_span(
        provider,
        memory,
        TracingHook(include_value=True),
        ("json_variation", "j", ORG, None),
        ("bool_variation", "b", ORG, False),
        ("string_variation", "x", ORG, ""),
    )
    (j, b, x) = (attributes for _, attributes in events_of(span))
    assert j["feature_flag.result.value"] == json.dumps({"b": 2})
    assert b["feature_flag.result.value"] is True
    assert x["feature_flag.result.reason"] == "split"
    assert x["feature_flag.result.value"] in ("p", "q")


async def test_the_legacy_feature_flag_event_as_launchdarklys_hook_emits_it(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter
    _, span = await evaluate_in_span(
        provider,
        memory,
        TracingHook(include_value=True, legacy_event=True, evaluation_event=False),
        ("string_variation", "x", ORG, ""),
        ("variation", "missing", ORG, 3),
    )
    (x, missing) = events_of(span)
    assert x[0] == "feature_flag"
    value = x[1].pop("feature_flag.result.value")
    assert json.loads(value) in ("p", "q")
    assert x[1] == {
        "feature_flag.key": "x",
        "feature_flag.provider.name": "LaunchDarkly",
        "feature_flag.context.id": "org:org-key",
        "feature_flag.result.variationIndex": str(["p", "q"].index(json.loads(value))),
        "feature_flag.result.reason.inExperiment": "true",
    }
    assert missing == (
        "feature_flag",
        {
            "feature_flag.key": "missing",
            "feature_flag.provider.name": "LaunchDarkly",
            "feature_flag.context.id": "org:org-key",
            "feature_flag.result.value": "3",
        },
    )


async def test_child_spans_end_before_the_event_lands_on_the_callers_span(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter
    hook = TracingHook(add_spans=True, tracer_provider=provider)
    results, request = await evaluate_in_span(
        provider,
        memory,
        hook,
        ("bool_variation_detail", "b", ORG, False),
        ("variation", "b", ORG, False),
    )
    assert results[0].value is True and results[1] is True
    children = [s for s in memory.get_finished_spans() if s.name != "request"]
    assert [s.name for s in children] == ["bool_variation_detail", "variation"]
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == request.context.span_id
        assert dict(child.attributes or {}) == {
            "feature_flag.key": "b",
            "feature_flag.context.id": "org:org-key",
        }
        assert child.events == ()
    assert [name for name, _ in events_of(request)] == ["feature_flag.evaluation"] * 2
    # The caller's span is current again after each evaluation.
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_no_recording_span_means_no_event_and_no_error(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    _, memory = exporter
    async with Client(
        Config(data_system=flags().data_system(), hooks=[TracingHook()])
    ) as client:
        assert await client.bool_variation("b", ORG, False) is True
        assert client.snapshot().bool_variation("b", ORG, False) is True
    assert memory.get_finished_spans() == ()


async def test_the_sync_snapshot_face_is_traced_and_the_set_id_is_the_environment(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter
    async with FlagServer({"f": flag()}) as server:
        server.fail("/sdk/poll", headers={"X-LD-EnvID": "env-1"})
        config = server.config(
            send_events=False, hooks=[TracingHook()], data_system=DataSystem.polling()
        )
        async with Client(config) as client:
            snapshot = client.snapshot()
            with provider.get_tracer("app").start_as_current_span("request"):
                assert snapshot.bool_variation("f", ORG, False) is True
    (span,) = memory.get_finished_spans()
    ((name, attributes),) = events_of(span)
    assert name == "feature_flag.evaluation"
    assert attributes["feature_flag.set.id"] == "env-1"


async def test_legacy_event_set_id_metadata_and_a_caller_passing_no_context(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter
    hook = TracingHook(legacy_event=True)
    assert hook.metadata.name == "aioflags.otel.TracingHook"
    async with FlagServer({"f": flag()}) as server:
        server.fail("/sdk/poll", headers={"X-LD-EnvID": "env-1"})
        config = server.config(
            send_events=False, hooks=[hook], data_system=DataSystem.polling()
        )
        async with Client(config) as client:
            with provider.get_tracer("app").start_as_current_span("request"):
                assert await client.bool_variation("f", "not-a-context", False) is False  # type: ignore[arg-type]
    (span,) = memory.get_finished_spans()
    assert events_of(span) == [
        (
            "feature_flag.evaluation",
            {
                "feature_flag.key": "f",
                "feature_flag.provider.name": "LaunchDarkly",
                "feature_flag.result.reason": "error",
                "error.type": "invalid_context",
                "feature_flag.set.id": "env-1",
            },
        ),
        (
            "feature_flag",
            {
                "feature_flag.key": "f",
                "feature_flag.provider.name": "LaunchDarkly",
                "feature_flag.set.id": "env-1",
            },
        ),
    ]


async def test_a_span_exporter_given_for_the_provider_is_refused_saying_where_it_goes() -> (
    None
):
    """Issue 77: it failed with an AttributeError from inside OpenTelemetry."""
    with pytest.raises(TypeError) as info:
        TracingHook(tracer_provider=InMemorySpanExporter())  # type: ignore[arg-type]
    assert str(info.value) == (
        "TracingHook(tracer_provider=) takes an OpenTelemetry TracerProvider, got "
        "InMemorySpanExporter: an exporter goes into a provider, provider = "
        "TracerProvider(); provider.add_span_processor(SimpleSpanProcessor("
        "exporter)); TracingHook(tracer_provider=provider)"
    )
