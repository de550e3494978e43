"""A store reader meeting an exception it did not foresee goes on (issue 60, F1).

Whatever a store reader meets (a bug, a library's surprise) is reported in
the status, logged once with its traceback, and retried after a backoff:
it never ends daemon mode's reads, nor the store's service before the
network delivers. An in-memory store whose reads can be made to raise;
time is a FakeClock.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence

import pytest

from aioflags import Client, Config, DataSystem, ProviderEvent, ProviderStatus
from aioflags._datasystem._stores._base import (
    RECOVERY_DELAYS,
    EncodedItem,
    RawData,
    StoredText,
    StoreStatusTracker,
)
from aioflags.sources import ObjectKind
from aioflags.stores import DataStoreStatus
from aioflags.testing import FakeClock, Fault, FlagServer
from tests.test_stores import USER, expect_event, flag


class FaultyConnection:
    """Reads ``flags``; raises ``bug`` (once set) on each read while it is set."""

    def __init__(self) -> None:
        self.flags: dict[str, str] = {}
        self.bug: Exception | None = None
        self.loads = 0

    async def load(self) -> RawData:
        self.loads += 1
        if self.bug is not None:
            raise self.bug
        return RawData(
            items={ObjectKind.FLAG: dict(self.flags), ObjectKind.SEGMENT: {}},
            initialized=True,
        )

    async def read_items(self, keys: Mapping[ObjectKind, Sequence[str]]) -> RawData:
        raise NotImplementedError

    async def get(self, kind: ObjectKind, keys: Sequence[str]) -> dict[str, StoredText]:
        raise NotImplementedError

    async def init(self, items: Mapping[ObjectKind, Mapping[str, EncodedItem]]) -> None:
        raise NotImplementedError

    async def upsert(
        self, items: Sequence[tuple[ObjectKind, str, EncodedItem]]
    ) -> None:
        raise NotImplementedError

    async def ping(self) -> None:
        pass

    async def initialized(self) -> bool:
        return True


class FaultyStore:
    def __init__(self, cache_ttl: float) -> None:
        self.connection = FaultyConnection()
        self.status_tracker = StoreStatusTracker("faulty store")
        self.cache_ttl = cache_ttl
        self.timeout = 5.0
        self.description = "faulty store"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[FaultyConnection]:
        yield self.connection


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.name.startswith("aioflags")]


@pytest.mark.asyncio
async def test_daemon_reads_on_after_an_unexpected_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = FaultyStore(cache_ttl=1)
    store.connection.flags = {"f": json.dumps(flag("v1"))}
    config = Config(data_system=DataSystem.daemon(store), send_events=False)
    async with Client(config, clock=clock) as client:
        assert await client.variation("f", USER, "default") == "v1"
        store.connection.bug = RuntimeError("a surprise")
        async with expect_event(client, ProviderEvent.STALE) as stale:
            await clock.wait_for_sleeper(within=1)
            await clock.advance(1)
        assert "failed unexpectedly" in (stale[0].message or "")
        assert store.status_tracker.status == DataStoreStatus(available=False)
        # Retried after 0.5 s, then 1 s: it fails again, and is retried.
        loads = store.connection.loads
        await clock.wait_for_sleeper(within=RECOVERY_DELAYS[0])
        await clock.advance(RECOVERY_DELAYS[0])
        await clock.wait_for_sleeper(within=2 * RECOVERY_DELAYS[0])
        assert store.connection.loads == loads + 1
        # The surprise is gone: served again, later changes too.
        store.connection.bug = None
        store.connection.flags = {"f": json.dumps(flag("v2", 2))}
        async with expect_event(client, ProviderEvent.READY):
            await clock.advance(2 * RECOVERY_DELAYS[0])
        assert store.status_tracker.status == DataStoreStatus()
        assert await client.variation("f", USER, "default") == "v2"
        assert client.status is ProviderStatus.READY
    assert len(_tracebacks(caplog)) == 1  # once per episode


@pytest.mark.asyncio
async def test_a_store_served_before_the_network_is_read_on_after_an_unexpected_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = FaultyStore(cache_ttl=1)
    store.connection.bug = RuntimeError("a surprise")
    store.connection.flags = {"f": json.dumps(flag("from-store"))}
    async with FlagServer({"f": flag("net")}) as server:
        server.fail("/sdk/stream", Fault(status=503))
        config = server.config(
            data_system=DataSystem.streaming(store=store),
            send_events=False,
            ready_timeout=0,
        )
        async with Client(config, clock=clock) as client:
            await clock.wait_for_sleeper(within=RECOVERY_DELAYS[0])
            store.connection.bug = None
            async with expect_event(client, ProviderEvent.READY):
                await clock.advance(RECOVERY_DELAYS[0])
            assert await client.variation("f", USER, "default") == "from-store"
    assert len(_tracebacks(caplog)) == 1
