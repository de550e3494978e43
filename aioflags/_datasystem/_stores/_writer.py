"""Read-write mode: every applied change set is written through to the store.

The supervisor hands each applied change set to :meth:`StoreWriter.submit`
(synchronous, never blocks); one task writes them in order. The in-memory
snapshot is never held back or rolled back by the store: a failed write only
flips the store's status.

- A full transfer replaces the store's data set atomically (and sets
  ``$inited``); changes are written with the store's version check, deletions
  as tombstones.
- The writer keeps a mirror of what it was asked to persist (each item's
  version and JSON text). When a write fails, the store is marked unavailable
  and probed every 0.5 s; when it answers it is marked available but stale,
  the whole mirror is rewritten (a full init if a full transfer was ever seen,
  otherwise version-checked upserts), and the status becomes healthy.
- A store that lost its data while the writer had nothing to write (its
  ``$inited`` key gone: ``FLUSHDB``, a restart without persistence) is
  noticed within 5 s (:meth:`StoreWriter.watch`) and rewritten the same way.
- An unexpected exception (a bug, a library's surprise) never stops the
  writer: it is logged, the store reported unavailable, and the whole mirror
  written again after a backoff (:class:`~._base.Recovery`).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Final

import anyio
import anyio.lowlevel

from aioflags._core._logname import client_logger
from aioflags._datasystem._datatypes import ChangeSet, IntentCode, ObjectKind

from ._base import EncodedItem, Recovery, StoreFailure, encode_change
from ._sources import RETRY_INTERVAL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aioflags._core._clock import Clock

    from ._base import PersistentStore, StoreConnection

__all__ = ["StoreWriter", "open_writer"]

logger = client_logger("aioflags.datasource")

_SLICE: Final = 0.005  # seconds of encoding between yields to the event loop
_Item = tuple[ObjectKind, str, EncodedItem]


#: Seconds a closing writer may spend writing what is still queued.
DRAIN_BOUND: Final = 1.0
#: Seconds between two checks that the store still holds the data set written.
CHECK_INTERVAL: Final = 5.0


class StoreWriter:
    """Writes applied change sets to a persistent store, in order, in one task."""

    __slots__ = (
        "_clock",
        "_dirty",
        "_full_seen",
        "_idle",
        "_mirror",
        "_queue",
        "_store",
        "_wake",
    )

    def __init__(self, store: PersistentStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._queue: list[ChangeSet] = []
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._mirror: dict[ObjectKind, dict[str, EncodedItem]] = {
            ObjectKind.FLAG: {},
            ObjectKind.SEGMENT: {},
        }
        self._full_seen = False
        self._dirty = False

    def submit(self, change_set: ChangeSet) -> None:
        """Queue an applied change set for writing (never blocks)."""
        if change_set.intent is IntentCode.TRANSFER_NONE:
            return
        self._queue.append(change_set)
        if self._idle.is_set():
            self._idle = anyio.Event()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Wait until everything submitted so far has been written."""
        await self._idle.wait()

    async def run(self, connection: StoreConnection) -> None:
        """The writer task: an unexpected exception is retried, never raised.

        What was being written goes back to the queue, and the whole mirror
        is written again once the retry goes through.
        """
        recovery = Recovery(
            "The aioflags store writer",
            self._store.status_tracker,
            self._clock,
        )
        while True:
            try:
                await self._loop(connection, recovery)
            except Exception as exc:  # noqa: BLE001, PERF203 - Recovery logs it
                self._dirty = True
                await recovery.retry_after(exc)

    async def _loop(self, connection: StoreConnection, recovery: Recovery) -> None:
        while True:
            if not self._queue and not self._dirty:
                self._idle.set()
                await self._wake.wait()
                self._wake = anyio.Event()
                continue
            if await self._write_next(connection):
                recovery.recovered()
            else:
                await self._wait_available(connection)

    async def _write_next(self, connection: StoreConnection) -> bool:
        """Write what is queued; False if the store failed (it is then dirty).

        A rewrite asked for while this write runs (by :meth:`watch`) stays
        asked for: the next round does it.
        """
        batch, self._queue = self._queue, []
        rewrite, self._dirty = self._dirty, False
        try:
            upserts, full = await self._fold(batch)
            if full or rewrite:
                await self._write_all(connection)
            else:
                await connection.upsert(upserts)
        except StoreFailure as exc:
            self._dirty = True
            self._store.status_tracker.failed(exc, self._clock.now())
            return False
        except BaseException:
            # Cancelled mid-write (the client is closing): the batch goes back
            # to the queue for drain(). Folding it again changes nothing.
            self._queue = batch + self._queue
            self._dirty = self._dirty or rewrite
            raise
        self._store.status_tracker.succeeded(self._clock.now(), stale=self._dirty)
        return True

    async def drain(self, connection: StoreConnection) -> None:
        """Write what is still queued, in the caller's task (the writer has stopped).

        Never raises: the client is closing.
        """
        try:
            while self._queue or self._dirty:
                if not await self._write_next(connection):
                    return  # the store is down: nothing more can be done now
        except Exception as exc:
            logger.exception("The aioflags store writer failed unexpectedly")
            self._store.status_tracker.failed(exc, self._clock.now())

    async def _fold(self, batch: list[ChangeSet]) -> tuple[list[_Item], bool]:
        """Apply the batch to the mirror; return its upserts and whether it had a full."""
        upserts: list[_Item] = []
        full = False
        deadline = time.perf_counter() + _SLICE
        for change_set in batch:
            if change_set.intent is IntentCode.TRANSFER_FULL:
                full = self._full_seen = True
                upserts = []
                for items in self._mirror.values():
                    items.clear()
            for change in change_set.changes:
                items = self._mirror[change.kind]
                old = items.get(change.key)
                if change_set.compare_versions and old and old[0] >= change.version:
                    continue
                encoded = encode_change(change)
                items[change.key] = encoded
                upserts.append((change.kind, change.key, encoded))
                if time.perf_counter() > deadline:
                    await anyio.lowlevel.checkpoint()
                    deadline = time.perf_counter() + _SLICE
        return upserts, full

    async def _write_all(self, connection: StoreConnection) -> None:
        if self._full_seen:
            await connection.init(self._mirror)
            # Replaced whole: no item another writer left unusable is left.
            self._store.status_tracker.malformed({})
        else:
            await connection.upsert(
                [
                    (kind, key, item)
                    for kind, items in self._mirror.items()
                    for key, item in items.items()
                ]
            )

    async def _wait_available(self, connection: StoreConnection) -> None:
        tracker = self._store.status_tracker
        while True:
            await self._clock.sleep(RETRY_INTERVAL)
            try:
                await connection.ping()
            except StoreFailure as exc:
                tracker.failed(exc, self._clock.now())  # counted, rate-limited
                continue
            # Back, but missing what failed: rewrite it before calling it healthy.
            tracker.succeeded(self._clock.now(), stale=True)
            return

    async def watch(self, connection: StoreConnection) -> None:
        """Rewrite the whole data set when the store lost it (``$inited`` gone).

        Runs beside :meth:`run`: every :data:`CHECK_INTERVAL`, once a full
        data set has been written, checks that the store still has it. A
        store flushed or restarted empty (changes written since do not bring
        ``$inited`` back), or one that does not answer, is rewritten whole by
        the writer (through its outage handling if it is down), so that
        readers in daemon mode recover even when no flag changes.
        """
        while True:
            await self._clock.sleep(CHECK_INTERVAL)
            if self._dirty or not self._full_seen:
                continue  # a rewrite is due anyway, or nothing was written whole
            try:
                if await connection.initialized():
                    continue
            except StoreFailure:
                pass  # down: the rewrite fails and reports the outage
            except Exception:
                logger.exception(
                    "Checking the %s failed unexpectedly: writing the whole "
                    "data set again",
                    self._store.description,
                )
            else:
                logger.warning(
                    "The %s has lost its data (its $inited key is gone): "
                    "writing the whole data set again",
                    self._store.description,
                )
                self._store.status_tracker.succeeded(self._clock.now(), stale=True)
            self._dirty = True
            if self._idle.is_set():
                self._idle = anyio.Event()
            self._wake.set()


@contextlib.asynccontextmanager
async def open_writer(
    store: PersistentStore | None, clock: Clock
) -> AsyncIterator[StoreWriter | None]:
    """A running writer for ``store`` (None: nothing to write), stopped on exit."""
    if store is None:
        yield None
        return
    writer = StoreWriter(store, clock)
    async with store.connect() as connection:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.run, connection)
                tg.start_soon(writer.watch, connection)
                try:
                    yield writer
                finally:
                    tg.cancel_scope.cancel()
        finally:
            # What was applied is written before the store is let go (a client
            # closed right after READY must leave it initialised), in this
            # task, shielded from the close's cancellation, and bounded: a
            # store that does not answer cannot hold the close up.
            with anyio.move_on_after(DRAIN_BOUND, shield=True):
                await writer.drain(connection)
