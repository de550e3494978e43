"""Several environments in one process (issue 63): two clients, two SDK keys, one loop.

Each client has its own data, status, events, hooks, usage and lens; what
one does never reaches the other. (What they share, the logger names and
a pytest session's flag coverage, is in docs/configuration.md.)
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import aioflags
from aioflags import Client, Context, DataSystem, ProviderEvent, ProviderStatus
from aioflags.lens import LensConfig, mint, scope
from aioflags.testing import FlagServer
from tests.flags import STRING_FLAG

pytestmark = pytest.mark.asyncio

USER = Context.create("user-1")
STREAM = "/sdk/stream"
SECRET = "environments-lens-secret-0123456789abcdef"


def flag(served: int) -> dict[str, Any]:
    return {**STRING_FLAG, "key": "f", "fallthrough": {"variation": served}}


class Seen(aioflags.Hook):
    """Counts the evaluations it is shown."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def after_evaluation(self, series: Any, data: Any, detail: Any) -> Any:
        self.keys.append(series.key)
        return data


async def test_two_environments_share_a_loop_and_nothing_else() -> None:
    prod_hook, staging_hook = Seen(), Seen()
    lens = LensConfig(secrets=[SECRET], allow=["f"])
    async with (
        FlagServer({"f": flag(0)}) as prod_server,
        FlagServer({"f": flag(1)}) as staging_server,
        Client(
            prod_server.config(
                "sdk-prod-key",
                data_system=DataSystem.streaming(),
                hooks=[prod_hook],
                lens=lens,
                grace_period=60,
            )
        ) as prod,
        Client(
            staging_server.config(
                "sdk-staging-key",
                data_system=DataSystem.streaming(),
                hooks=[staging_hook],
                grace_period=60,
            )
        ) as staging,
    ):
        # Their own data, from their own service, with their own key.
        assert await prod.variation("f", USER, "?") == "on"
        assert await staging.variation("f", USER, "?") == "off"
        assert (
            prod_server.requests_to(STREAM)[0].headers["authorization"]
            == "sdk-prod-key"
        )
        assert (
            staging_server.requests_to(STREAM)[0].headers["authorization"]
            == "sdk-staging-key"
        )

        # Their own hooks.
        assert prod_hook.keys == ["f"] and staging_hook.keys == ["f"]

        # Their own lens: a prod token applies to prod's evaluations only.
        with scope(prod, mint(SECRET, {"f": "off"})):
            assert await prod.variation("f", USER, "?") == "off"
            assert await staging.variation("f", USER, "?") == "off"  # its own value
        with scope(staging, mint(SECRET, {"f": "on"})) as lensed:
            assert not lensed.active  # staging has no lens
            assert await staging.variation("f", USER, "?") == "off"

        # Their own status: staging's service goes away, prod stays READY.
        stale = anyio.Event()
        staging.add_handler(ProviderEvent.STALE, lambda details: stale.set())
        prod_events: list[ProviderEvent] = []
        prod.add_handler(ProviderEvent.STALE, lambda d: prod_events.append(d.event))
        staging_server.fail(STREAM, status=503)
        staging_server.disconnect_streams()
        with anyio.fail_after(30):
            await stale.wait()
        assert staging.status is ProviderStatus.STALE
        assert prod.status is ProviderStatus.READY and prod_events == []

        # Their own events: each service receives its own client's only.
        await prod.flush()
        await staging.flush()
        prod_summary = await prod_server.wait_for_events(kind="summary")
        staging_summary = await staging_server.wait_for_events(kind="summary")
        prod_counts = prod_summary[-1]["features"]["f"]["counters"]
        staging_counts = staging_summary[-1]["features"]["f"]["counters"]
        assert {c["value"] for c in prod_counts} == {"on"}  # (the override: none)
        assert {c["value"] for c in staging_counts} == {"off"}
        # Their own usage.
        assert prod.usage().flags["f"].overridden == 1
        assert staging.usage().flags["f"].overridden == 0
