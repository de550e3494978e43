"""aioflags.otel.Metrics: evaluation counts read through the OpenTelemetry SDK's metric reader.

The counts are the summary counters' (folded in at each flush): they equal
the evaluations made, per flag, variant, reason and error, with analytics
events off and on; the summary events a flag service received agree.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import aioflags.blocking
from aioflags import Client, Config, ConfigurationError, Context, ProviderStatus
from aioflags.lens import LensConfig, mint, scope
from aioflags.otel import ERRORS, REQUESTS, SUCCESSES, Metrics
from aioflags.testing import FlagData, FlagServer, clause
from tests.analytics import flag

PRO = Context.create("u-pro", attributes={"plan": "pro"})
FREE = Context.create("u-free", attributes={"plan": "free"})
ORG = Context.create("org-1", "org")
SECRET = "metrics-lens-secret-0123456789abcdef0123"

#: A series as the tests compare it: the instrument's name and attributes.
Series = tuple[str, frozenset[tuple[str, Any]]]


@pytest.fixture
def reader() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    yield provider, memory
    provider.shutdown()


def collected(memory: InMemoryMetricReader) -> dict[Series, int]:
    """Every data point the reader collects now, by instrument and attributes."""
    out: dict[Series, int] = {}
    data = memory.get_metrics_data()
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope_metrics in resource.scope_metrics:
            assert scope_metrics.scope.name == "aioflags"
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    series = (metric.name, frozenset((point.attributes or {}).items()))
                    assert series not in out
                    out[series] = int(point.value)  # type: ignore[union-attr]
    return out


async def changed(client: Client, data: FlagData, builder: Any) -> None:
    """Update flag data and wait until the client has applied it."""
    seen = anyio.Event()
    client.add_flag_change_handler(lambda keys: seen.set())
    data.update(builder)
    with anyio.fail_after(30):
        await seen.wait()


def series(name: str, **attributes: Any) -> Series:
    renamed = {
        "key": "feature_flag.key",
        "variant": "feature_flag.result.variant",
        "reason": "feature_flag.result.reason",
        "error": "error.type",
    }
    return (name, frozenset((renamed.get(k, k), v) for k, v in attributes.items()))


def flags() -> FlagData:
    data = FlagData()
    data.update(
        data.flag("checkout")
        .variations(True, False)
        .rule(clause("plan", "in", "pro"), serve=True)
        .fallthrough(False),
        data.flag("banner").variations("red", "green").off_variation("green").off(),
        data.flag("dark").variations(True, False).off_variation(None).off(),
        data.flag("exp")
        .variations("p", "q")
        .fallthrough_rollout({"p": 50, "q": 50}, kind="org", experiment=True),
        data.flag("parent").variations(True, False).fallthrough(True),
        data.flag("child").variations(1, 2).fallthrough(1).prerequisite("parent", True),
    )
    return data


async def evaluate(client: Client) -> None:
    """12 requests: known variants, reasons and errors."""
    assert await client.bool_variation("checkout", PRO, False) is True  # rule
    assert await client.bool_variation("checkout", PRO, False) is True
    assert await client.bool_variation("checkout", FREE, True) is False  # fallthrough
    assert await client.string_variation("banner", PRO, "?") == "green"  # off
    assert await client.bool_variation("dark", PRO, True) is True  # off, none
    assert await client.string_variation("exp", ORG, "?") in ("p", "q")  # split
    assert await client.int_variation("child", PRO, 0) == 1  # + its prerequisite
    assert await client.bool_variation("missing", PRO, False) is False  # not found
    assert await client.int_variation("checkout", PRO, 7) == 7  # wrong type
    assert await client.variation("checkout", PRO, None) is True
    assert (await client.variation_detail("banner", FREE, "?")).value == "green"
    assert await client.string_variation("exp", ORG, "?") in ("p", "q")


def expected(exp_variant: str) -> dict[Series, int]:
    return {
        series(REQUESTS, key="checkout"): 5,
        series(REQUESTS, key="banner"): 2,
        series(REQUESTS, key="dark"): 1,
        series(REQUESTS, key="exp"): 2,
        series(REQUESTS, key="child"): 1,
        series(REQUESTS, key="parent"): 1,  # as a prerequisite, as summaries count
        series(REQUESTS, key="missing"): 1,
        series(SUCCESSES, key="checkout", variant="0", reason="targeting_match"): 3,
        series(SUCCESSES, key="checkout", variant="1", reason="targeting_match"): 1,
        series(SUCCESSES, key="banner", variant="1", reason="disabled"): 2,
        series(SUCCESSES, key="dark", reason="disabled"): 1,
        series(SUCCESSES, key="exp", variant=exp_variant, reason="split"): 2,
        series(SUCCESSES, key="child", variant="0", reason="targeting_match"): 1,
        series(SUCCESSES, key="parent", variant="0", reason="targeting_match"): 1,
        series(ERRORS, key="missing", reason="error", error="flag_not_found"): 1,
        series(ERRORS, key="checkout", reason="error", error="type_mismatch"): 1,
    }


@pytest.mark.asyncio
async def test_counts_equal_the_evaluations_made_with_events_off(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    config = Config(data_system=flags().data_system(), metrics=Metrics(provider))
    assert not config.events_enabled
    async with Client(config) as client:
        await evaluate(client)
        assert collected(memory) == {}  # not flushed yet: at most one flush behind
        await client.flush()
        exp = (await client.string_variation_detail("exp", ORG, "?")).variation_index
        first = collected(memory)
        assert first == expected(str(exp))
        # Cumulative: a second round adds to the first.
        await evaluate(client)
        await client.flush()
        second = collected(memory)
        assert second[series(REQUESTS, key="checkout")] == 10
        assert second[series(REQUESTS, key="exp")] == 5  # (the detail call too)
        # usage() has figures now too: the same counters.
        assert client.usage().flags["checkout"].evaluations == 10
    # The totals outlive the client: counters never go back.
    assert collected(memory) == second


@pytest.mark.asyncio
async def test_counts_agree_with_the_summaries_a_service_received(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    async with (
        FlagServer(
            {
                "a": flag(
                    rules=[
                        {
                            "id": "pro",
                            "variation": 0,
                            "clauses": [
                                {"attribute": "plan", "op": "in", "values": ["pro"]}
                            ],
                        }
                    ],
                    fallthrough={"variation": 1},
                ),
                "b": flag(on=False, offVariation=1),
            }
        ) as server,
        Client(server.config("sdk-key", metrics=Metrics(provider))) as client,
    ):
        assert client._config.events_enabled
        for _ in range(3):
            await client.variation("a", PRO, None)
            await client.variation("a", FREE, None)
            await client.variation("b", PRO, None)
        await client.variation("nope", PRO, None)
        await client.flush()
        summary = (await server.wait_for_events(kind="summary"))[-1]
        sent = {
            key: sum(c["count"] for c in feature["counters"])
            for key, feature in summary["features"].items()
        }
        got = collected(memory)
        assert sent == {"a": 6, "b": 3, "nope": 1}
        for key, count in sent.items():
            assert got[series(REQUESTS, key=key)] == count
        assert (
            got[series(SUCCESSES, key="a", variant="0", reason="targeting_match")] == 3
        )
        assert got[series(SUCCESSES, key="b", variant="1", reason="disabled")] == 3
        assert got[series(ERRORS, key="nope", reason="error", error="flag_not_found")]


@pytest.mark.asyncio
async def test_overridden_evaluations_count_as_override(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    config = Config(
        data_system=flags().data_system(),
        metrics=Metrics(provider),
        lens=LensConfig(secrets=[SECRET], allow=["checkout"]),
    )
    async with Client(config) as client:
        with scope(client, mint(SECRET, {"checkout": False})):
            assert await client.bool_variation("checkout", PRO, True) is False
            assert await client.bool_variation("checkout", PRO, True) is False
        assert await client.bool_variation("checkout", PRO, False) is True
        await client.flush()
        assert collected(memory) == {
            series(REQUESTS, key="checkout"): 3,
            series(SUCCESSES, key="checkout", reason="override"): 2,
            series(SUCCESSES, key="checkout", variant="0", reason="targeting_match"): 1,
        }
        await client.flush()  # nothing new: nothing counted twice
        assert collected(memory)[series(REQUESTS, key="checkout")] == 3


@pytest.mark.asyncio
async def test_environments_keep_their_own_series(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    prod = Metrics(provider, attributes={"deployment.environment.name": "prod"})
    staging = Metrics(provider, attributes={"deployment.environment.name": "staging"})
    data = flags().data_system()
    async with (
        Client(Config(data_system=data, metrics=prod)) as one,
        Client(Config(data_system=flags().data_system(), metrics=staging)) as two,
    ):
        await one.variation("checkout", PRO, None)
        for _ in range(4):
            await two.variation("checkout", FREE, None)
        await one.flush()
        await two.flush()
        got = collected(memory)
    requests = {k: v for k, v in got.items() if k[0] == REQUESTS}
    assert requests == {
        series(REQUESTS, key="checkout", **{"deployment.environment.name": "prod"}): 1,
        series(
            REQUESTS, key="checkout", **{"deployment.environment.name": "staging"}
        ): 4,
    }


@pytest.mark.asyncio
async def test_one_metrics_given_to_two_clients_sums_them(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    shared = Metrics(provider)
    for _ in range(2):  # one after the other, as test fixtures make them
        async with Client(
            Config(data_system=flags().data_system(), metrics=shared)
        ) as client:
            await client.variation("checkout", PRO, None)
    assert collected(memory)[series(REQUESTS, key="checkout")] == 2


@pytest.mark.asyncio
async def test_threads_count_too(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    config = Config(data_system=flags().data_system(), metrics=Metrics(provider))
    async with Client(config) as client:
        snapshot = client.snapshot()

        def work() -> None:
            for _ in range(100):
                snapshot.variation("checkout", PRO, None)

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(anyio.to_thread.run_sync, work)
        await client.flush()
    assert collected(memory)[series(REQUESTS, key="checkout")] == 400


def test_blocking_client_counts(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    config = Config(data_system=flags().data_system(), metrics=Metrics(provider))
    with aioflags.blocking.Client(config) as client:
        for _ in range(3):
            assert client.variation("checkout", FREE, None) is False
        client.flush()
        assert collected(memory) == {
            series(REQUESTS, key="checkout"): 3,
            series(SUCCESSES, key="checkout", variant="1", reason="targeting_match"): 3,
        }


@pytest.mark.asyncio
async def test_offline_counts_nothing_and_starts_nothing(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    async with Client(Config(offline=True, metrics=Metrics(provider))) as client:
        assert await client.variation("checkout", PRO, "d") == "d"
        await client.flush()
    assert collected(memory) == {}


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"aioflags\.otel\.Metrics"):
        Config(offline=True, metrics="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="attributes"):
        Metrics(attributes={"env": ["a", object()]})  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="must be a dict"):
        Metrics(attributes=[("env", "prod")])  # type: ignore[arg-type]


def test_a_metric_reader_given_for_the_provider_is_refused_saying_where_it_goes() -> (
    None
):
    """Issue 77: it failed with an AttributeError from inside OpenTelemetry."""
    with pytest.raises(TypeError) as info:
        Metrics(meter_provider=InMemoryMetricReader())  # type: ignore[arg-type]
    assert str(info.value) == (
        "Metrics(meter_provider=) takes an OpenTelemetry MeterProvider, got "
        "InMemoryMetricReader: a metric reader goes into a provider, "
        "Metrics(meter_provider=MeterProvider(metric_readers=[reader]))"
    )
    with pytest.raises(
        TypeError,
        match=r"^Metrics\(meter_provider=\) takes an OpenTelemetry "
        r"MeterProvider, got str$",
    ):
        Metrics(meter_provider="prod")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_flag_that_changes_keeps_its_series(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    data = FlagData()
    data.update(data.flag("f").variations("a", "b").fallthrough("b"))
    async with Client(
        Config(data_system=data.data_system(), metrics=Metrics(provider))
    ) as client:
        assert await client.variation("f", PRO, "?") == "b"
        await client.flush()
        # A third variation, served, then the flag turned off.
        await changed(
            client, data, data.flag("f").variations("a", "b", "c").fallthrough("c")
        )
        assert await client.variation("f", PRO, "?") == "c"
        assert await client.variation("f", PRO, "?") == "c"
        await client.flush()
        await changed(client, data, data.flag("f").off_variation("a").off())
        assert await client.variation("f", PRO, "?") == "a"
        await client.flush()
        assert collected(memory) == {
            series(REQUESTS, key="f"): 4,
            series(SUCCESSES, key="f", variant="1", reason="targeting_match"): 1,
            series(SUCCESSES, key="f", variant="2", reason="targeting_match"): 2,
            series(SUCCESSES, key="f", variant="0", reason="disabled"): 1,
        }


@pytest.mark.asyncio
async def test_every_error_kind_has_its_series(
    reader: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, memory = reader
    bad = flag(fallthrough={"variation": 9})  # no such variation
    async with FlagServer({"f": flag(), "bad": bad}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        config = server.config(
            "k", send_events=False, ready_timeout=0.05, metrics=Metrics(provider)
        )
        client = Client(config)
        async with client:  # not ready: the service hangs
            assert (await client.variation_detail("f", PRO, 1)).error_kind == (
                "CLIENT_NOT_READY"
            )
            server.clear_faults()
            await client.aclose()
        async with client:  # a fresh start: ready (one tally for the client's life)
            assert await client.wait_ready(timeout=10) is ProviderStatus.READY
            invalid = Context.create("")
            assert (await client.variation_detail("f", invalid, 1)).error_kind == (
                "USER_NOT_SPECIFIED"
            )
            assert (await client.variation_detail("bad", PRO, 1)).error_kind == (
                "MALFORMED_FLAG"
            )
            await client.flush()
    got = collected(memory)
    assert got[series(ERRORS, key="f", reason="error", error="provider_not_ready")] == 1
    assert got[series(ERRORS, key="f", reason="error", error="invalid_context")] == 1
    assert got[series(ERRORS, key="bad", reason="error", error="parse_error")] == 1


GLOBAL_PROVIDER = """
import anyio
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aioflags import Client, Config, Context
from aioflags.otel import REQUESTS, Metrics
from aioflags.testing import FlagData

memory = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[memory]))


async def main() -> None:
    data = FlagData()
    data.update(data.flag("f").variations("a", "b").fallthrough("b"))
    config = Config(data_system=data.data_system(), metrics=Metrics())
    async with Client(config) as client:
        for _ in range(3):
            await client.variation("f", Context.create("u"), None)
        await client.flush()
    for resource in memory.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == REQUESTS:
                    print(metric.name, [p.value for p in metric.data.data_points])


anyio.run(main)
"""


def test_metrics_without_a_provider_use_the_global_one(tmp_path: Path) -> None:
    # A process of its own: OpenTelemetry's global provider is set once.
    script = tmp_path / "global_provider.py"
    script.write_text(GLOBAL_PROVIDER)
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{REQUESTS} [3]"
