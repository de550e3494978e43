"""The read-write mode's writer against an in-memory store: order, recovery, faults."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
import pytest

from aioflags._datasystem._stores._base import (
    RECOVERY_DELAYS,
    DataStoreStatus,
    EncodedItem,
    RawData,
    StoredText,
    StoreFailure,
    StoreStatusTracker,
)
from aioflags._datasystem._stores._sources import RETRY_INTERVAL
from aioflags._datasystem._stores._writer import CHECK_INTERVAL, open_writer
from aioflags.sources import Change, ChangeKind, ChangeSet, IntentCode, ObjectKind
from aioflags.testing import FakeClock


def put(key: str, version: int, kind: ObjectKind = ObjectKind.FLAG) -> Change:
    obj = {"key": key, "version": version}
    return Change(action=ChangeKind.PUT, kind=kind, key=key, version=version, obj=obj)


class MemoryConnection:
    """Records calls; fails while ``failures`` is positive (or raises ``bug``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.failures = 0
        self.ping_failures = 0
        self.bug: Exception | None = None
        self.inited = True  # what initialized() answers
        self.write_gate: anyio.Event | None = None  # holds upsert() up

    def _maybe_fail(self) -> None:
        if self.bug is not None:
            raise self.bug
        if self.failures > 0:
            self.failures -= 1
            raise StoreFailure("connection refused")

    async def load(self) -> RawData:
        raise NotImplementedError

    async def read_items(self, keys: Mapping[ObjectKind, Sequence[str]]) -> RawData:
        raise NotImplementedError

    async def get(self, kind: ObjectKind, keys: Sequence[str]) -> dict[str, StoredText]:
        raise NotImplementedError

    async def init(self, items: Mapping[ObjectKind, Mapping[str, EncodedItem]]) -> None:
        self._maybe_fail()
        self.calls.append(("init", {k.value: sorted(v) for k, v in items.items() if v}))

    async def upsert(
        self, items: Sequence[tuple[ObjectKind, str, EncodedItem]]
    ) -> None:
        if self.write_gate is not None:
            await self.write_gate.wait()
        self._maybe_fail()
        self.calls.append(("upsert", [(key, item[0]) for _, key, item in items]))

    async def ping(self) -> None:
        if self.ping_failures > 0:
            self.ping_failures -= 1
            raise StoreFailure("still down")

    async def initialized(self) -> bool:
        self.calls.append(("initialized", None))
        await self.ping()
        return self.inited


class MemoryStore:
    def __init__(self) -> None:
        self.connection = MemoryConnection()
        self.status_tracker = StoreStatusTracker("memory store")
        self.cache_ttl = 15.0
        self.timeout = 5.0
        self.description = "memory store"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[MemoryConnection]:
        yield self.connection


def full(*changes: Change) -> ChangeSet:
    return ChangeSet(intent=IntentCode.TRANSFER_FULL, changes=changes)


def delta(*changes: Change, compare: bool = False) -> ChangeSet:
    return ChangeSet(
        intent=IntentCode.TRANSFER_CHANGES, changes=changes, compare_versions=compare
    )


@pytest.mark.asyncio
async def test_change_sets_are_written_in_order_and_fdv1_patches_compare_versions() -> (
    None
):
    store = MemoryStore()
    async with open_writer(store, FakeClock()) as writer:
        assert writer is not None
        writer.submit(ChangeSet.no_changes())
        writer.submit(full(put("a", 1), put("s", 1, ObjectKind.SEGMENT)))
        await writer.wait_idle()
        writer.submit(delta(put("b", 2)))
        await writer.wait_idle()
        writer.submit(delta(put("b", 1), put("c", 3), compare=True))
        await writer.wait_idle()
        # A full transfer in the middle of a batch: one replacement of everything.
        writer.submit(delta(put("d", 1)))
        writer.submit(full(put("e", 1)))
        writer.submit(delta(put("f", 1)))
        await writer.wait_idle()
    assert store.connection.calls == [
        ("init", {"flag": ["a"], "segment": ["s"]}),
        ("upsert", [("b", 2)]),
        ("upsert", [("c", 3)]),
        ("init", {"flag": ["e", "f"]}),
    ]
    assert store.status_tracker.status == DataStoreStatus()


@pytest.mark.asyncio
async def test_a_failed_write_is_retried_as_a_full_rewrite_when_the_store_returns() -> (
    None
):
    clock = FakeClock()
    store = MemoryStore()
    seen: list[DataStoreStatus] = []
    remove = store.status_tracker.add(seen.append)
    async with open_writer(store, clock) as writer:
        assert writer is not None
        writer.submit(full(put("a", 1)))
        await writer.wait_idle()
        store.connection.failures = 1
        store.connection.ping_failures = 1
        writer.submit(delta(put("b", 2)))
        await clock.wait_for_sleeper(within=RETRY_INTERVAL)
        await clock.advance(RETRY_INTERVAL)  # the probe fails: still down
        await clock.wait_for_sleeper(within=RETRY_INTERVAL)
        await clock.advance(RETRY_INTERVAL)
        await writer.wait_idle()
    remove()
    remove()  # removing twice is harmless
    assert store.connection.calls == [
        ("init", {"flag": ["a"]}),
        ("init", {"flag": ["a", "b"]}),
    ]
    assert seen == [
        DataStoreStatus(available=False),
        DataStoreStatus(available=True, stale=True),
        DataStoreStatus(available=True),
    ]


@pytest.mark.asyncio
async def test_without_a_full_transfer_recovery_upserts_everything_it_holds() -> None:
    clock = FakeClock()
    store = MemoryStore()
    async with open_writer(store, clock) as writer:
        assert writer is not None
        store.connection.failures = 1
        writer.submit(delta(put("a", 1)))
        await clock.wait_for_sleeper(within=RETRY_INTERVAL)
        writer.submit(delta(put("b", 1)))
        await clock.advance(RETRY_INTERVAL)
        await writer.wait_idle()
    assert store.connection.calls == [("upsert", [("a", 1), ("b", 1)])]


@pytest.mark.asyncio
async def test_a_bug_in_the_writer_is_logged_and_never_escapes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    store.connection.bug = RuntimeError("boom")
    unavailable = anyio.Event()
    store.status_tracker.add(lambda status: unavailable.set())
    async with open_writer(store, FakeClock()) as writer:
        assert writer is not None
        writer.submit(full(put("a", 1)))
        with anyio.fail_after(30):
            await unavailable.wait()
    assert "store writer failed unexpectedly" in caplog.text
    assert store.status_tracker.status.available is False


@pytest.mark.asyncio
async def test_after_a_bug_the_writer_backs_off_and_writes_everything_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = MemoryStore()
    seen: list[DataStoreStatus] = []
    store.status_tracker.add(seen.append)
    async with open_writer(store, clock) as writer:
        assert writer is not None
        writer.submit(full(put("a", 1)))
        await writer.wait_idle()
        store.connection.bug = RuntimeError("boom")
        writer.submit(delta(put("b", 2)))
        await clock.wait_for_sleeper(within=RECOVERY_DELAYS[0])
        await clock.advance(RECOVERY_DELAYS[0])  # fails again: the wait doubles
        await clock.wait_for_sleeper(within=2 * RECOVERY_DELAYS[0])
        store.connection.bug = None
        writer.submit(delta(put("c", 3)))
        await clock.advance(2 * RECOVERY_DELAYS[0])
        await writer.wait_idle()
    # Nothing lost: the whole mirror is written once the writer goes through.
    assert store.connection.calls == [
        ("init", {"flag": ["a"]}),
        ("init", {"flag": ["a", "b", "c"]}),
    ]
    assert seen == [DataStoreStatus(available=False), DataStoreStatus()]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, tracebacks  # once per episode
    assert "store writer failed unexpectedly" in tracebacks[0].getMessage()


@pytest.mark.asyncio
async def test_no_store_no_writer() -> None:
    async with open_writer(None, FakeClock()) as writer:
        assert writer is None


async def check(clock: FakeClock) -> None:
    """Let the writer's check for a store that lost its data run once."""
    await clock.wait_for_sleeper(within=CHECK_INTERVAL)
    await clock.advance(CHECK_INTERVAL)


@pytest.mark.asyncio
async def test_a_store_that_lost_its_data_is_rewritten_whole_while_idle() -> None:
    clock = FakeClock()
    store = MemoryStore()
    seen: list[DataStoreStatus] = []
    store.status_tracker.add(seen.append)
    async with open_writer(store, clock) as writer:
        assert writer is not None
        writer.submit(delta(put("a", 1)))
        await writer.wait_idle()
        store.connection.inited = False
        await check(clock)  # no full data set written yet: nothing to check
        writer.submit(full(put("a", 2), put("b", 1)))
        await writer.wait_idle()
        store.connection.inited = True
        await check(clock)  # still initialised: nothing to do
        store.connection.inited = False
        await check(clock)
        await writer.wait_idle()
    assert store.connection.calls == [
        ("upsert", [("a", 1)]),
        ("init", {"flag": ["a", "b"]}),
        ("initialized", None),
        ("initialized", None),
        ("init", {"flag": ["a", "b"]}),
    ]
    assert seen == [DataStoreStatus(stale=True), DataStoreStatus()]


@pytest.mark.asyncio
async def test_a_store_down_while_idle_is_reported_and_rewritten_when_back() -> None:
    clock = FakeClock()
    store = MemoryStore()
    seen: list[DataStoreStatus] = []
    store.status_tracker.add(seen.append)
    async with open_writer(store, clock) as writer:
        assert writer is not None
        writer.submit(full(put("a", 1)))
        await writer.wait_idle()
        store.connection.ping_failures = 1  # the check fails
        store.connection.failures = 1  # and so does the rewrite it asks for
        await check(clock)
        await clock.wait_for_sleeper(within=RETRY_INTERVAL)
        await clock.advance(RETRY_INTERVAL)  # the probe answers
        await writer.wait_idle()
    assert store.connection.calls == [
        ("init", {"flag": ["a"]}),
        ("initialized", None),
        ("init", {"flag": ["a"]}),
    ]
    assert seen == [
        DataStoreStatus(available=False),
        DataStoreStatus(available=True, stale=True),
        DataStoreStatus(),
    ]


@pytest.mark.asyncio
async def test_a_rewrite_asked_for_during_a_write_follows_it() -> None:
    """The check finds $inited gone while a change is being written: both happen."""
    clock = FakeClock()
    store = MemoryStore()
    async with open_writer(store, clock) as writer:
        assert writer is not None
        writer.submit(full(put("a", 1)))
        await writer.wait_idle()
        store.connection.inited = False
        store.connection.write_gate = written = anyio.Event()
        writer.submit(delta(put("b", 1)))  # the write waits to be done
        await check(clock)
        await clock.wait_for_sleeper(within=CHECK_INTERVAL)  # the check is over
        written.set()
        await writer.wait_idle()
    assert store.connection.calls == [
        ("init", {"flag": ["a"]}),
        ("initialized", None),
        ("upsert", [("b", 1)]),
        ("init", {"flag": ["a", "b"]}),
    ]
    assert store.status_tracker.status == DataStoreStatus()
