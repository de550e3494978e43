"""Prometheus metrics from aioflags' status events, data-source status and a hook.

    pip install prometheus-client
    python examples/prometheus_metrics.py

What it exports (see docs/logging.md, "Metrics"):

- ``aioflags_provider_status{status}``: 1 for the current status (READY,
  STALE, ERROR, FATAL, NOT_READY), from the status events;
- ``aioflags_provider_events_total{event}`` and
  ``aioflags_flags_changed_total``: the events, and the flags they changed;
- ``aioflags_data_source_state{state}``, ``aioflags_data_source_state_seconds``,
  ``aioflags_data_source_last_error_status_code`` and
  ``aioflags_fdv1_fallback``: ``client.data_source_status``, read at scrape
  time;
- ``aioflags_evaluations_total{flag, reason}``: from an evaluation hook.

The story: a flag service on 127.0.0.1 (``FlagServer``), a client that
becomes READY, evaluations, a flag change, then an outage (STALE). In an app,
``prometheus_client.start_http_server(9100, registry=registry)`` (or your
framework's /metrics route) serves the same registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import aioflags
from aioflags import EventDetails, ProviderEvent, ProviderStatus
from aioflags.testing import FlagServer

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

FLAG = {
    "on": True,
    "variations": [False, True],
    "offVariation": 0,
    "fallthrough": {"variation": 1},
}


class EvaluationCounter(aioflags.Hook):
    """Counts evaluations by flag and reason kind (a hook: sync, in memory)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "aioflags_evaluations",
            "Flag evaluations by flag and reason kind",
            ["flag", "reason"],
            registry=registry,
        )

    def after_evaluation(
        self,
        series_context: aioflags.EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: aioflags.EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        reason = detail.error_kind or str(detail.reason.get("kind"))
        self.total.labels(series_context.key, reason).inc()
        return data


class DataSourceCollector(Collector):
    """``client.data_source_status``, read when Prometheus scrapes."""

    def __init__(self, client: aioflags.Client) -> None:
        self.client = client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.client.data_source_status
        if status is None:  # not started
            return
        state = GaugeMetricFamily(
            "aioflags_data_source_state", "The data system's state", labels=["state"]
        )
        for each in aioflags.SourceState:
            state.add_metric([each.value], 1.0 if each is status.state else 0.0)
        yield state
        yield GaugeMetricFamily(
            "aioflags_data_source_state_seconds",
            "Seconds since the data system's state last changed",
            value=max(0.0, anyio.current_time() - status.since),
        )
        code = status.error.status_code if status.error else 0
        yield GaugeMetricFamily(
            "aioflags_data_source_last_error_status_code",
            "HTTP status of the last data-source error (0: none)",
            value=float(code),
        )
        yield GaugeMetricFamily(
            "aioflags_fdv1_fallback",
            "1 once the flag service directed the fallback to FDv1",
            value=1.0 if status.fdv1_fallback else 0.0,
        )


class StatusMetrics:
    """Status events as Prometheus metrics: add it before the client starts."""

    def __init__(self, client: aioflags.Client, registry: CollectorRegistry) -> None:
        self.status = Gauge(
            "aioflags_provider_status",
            "1 for the client's current provider status",
            ["status"],
            registry=registry,
        )
        self.events = Counter(
            "aioflags_provider_events",
            "Provider events by kind",
            ["event"],
            registry=registry,
        )
        self.flags_changed = Counter(
            "aioflags_flags_changed",
            "Flags changed, as CONFIGURATION_CHANGED events report them",
            registry=registry,
        )
        self.set_status(client.status)
        for event in ProviderEvent:
            client.add_handler(event, self.on_event)
        registry.register(DataSourceCollector(client))

    def set_status(self, current: ProviderStatus) -> None:
        for status in ProviderStatus:
            self.status.labels(status.name).set(1 if status is current else 0)

    def on_event(self, details: EventDetails) -> None:
        self.events.labels(details.event.name).inc()
        self.flags_changed.inc(len(details.flags_changed))
        status = details.status
        if details.error_code == "PROVIDER_FATAL":
            status = ProviderStatus.FATAL
        self.set_status(status)


def show(registry: CollectorRegistry, *names: str) -> None:
    """Print the samples of the metrics named (what a scrape would return)."""
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(names) and not line.startswith("#"):
            print(f"    {line}")


async def main() -> None:
    registry = CollectorRegistry()
    async with FlagServer({"new-checkout": FLAG}) as server:
        config = aioflags.Config(
            "sdk-key",
            base_uri=server.url,
            stream_uri=server.url,
            send_events=False,
            hooks=[EvaluationCounter(registry)],
        )
        client = aioflags.Client(config)
        StatusMetrics(client, registry)
        changed, stale = anyio.Event(), anyio.Event()
        client.add_handler(ProviderEvent.CONFIGURATION_CHANGED, lambda d: changed.set())
        client.add_handler(ProviderEvent.STALE, lambda d: stale.set())
        async with client:
            await server.wait_for_stream()
            user = aioflags.Context.create("user-42")
            for _ in range(3):
                await client.bool_variation("new-checkout", user, False)
            await client.string_variation("new-checkout", user, "?")  # WRONG_TYPE
            print("1. READY, four evaluations:")
            show(registry, 'aioflags_provider_status{status="READY"}')
            show(registry, "aioflags_evaluations_total")

            server.set_flag("new-checkout", {**FLAG, "on": False})
            await changed.wait()
            print("2. a flag changed:")
            show(registry, "aioflags_flags_changed_total")

            server.fail("/sdk/stream", status=503)
            server.fail("/sdk/poll", status=503)
            server.disconnect_streams()
            await stale.wait()
            print("3. the flag service is down:")
            show(
                registry,
                'aioflags_provider_status{status="STALE"}',
                'aioflags_provider_events_total{event="STALE"}',
                'aioflags_data_source_state{state="interrupted"}',
                "aioflags_data_source_last_error_status_code",
            )


if __name__ == "__main__":
    anyio.run(main)
