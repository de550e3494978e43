"""The sources that read a persistent store.

- :func:`read_until_initialized` (a store with sources: read-write, or
  read-only with sources): beside the network sources, serve the store if it
  has been initialised, reading it again as its cache says, until the
  sources deliver; never written back.
- :func:`daemon_synchronizer` (daemon mode): the store is the only source.
  The whole store is read, applied as the client's snapshot, and read again
  when ``cache_ttl`` expires. With the cache off, each awaited evaluation
  then reads what it needs (see :mod:`~aioflags._datasystem._stores._items`
  and :class:`~aioflags._datasystem._stores._gate.Refresher`).
  Between full reads, both readers read through the flag keys awaited
  evaluations miss (see :mod:`~aioflags._datasystem._stores._lookups`). After the
  first read only the items whose stored JSON changed are decoded and applied,
  so a reload of an unchanged store costs one round trip and no compiling.
  An item that cannot be used (invalid JSON, nested too deeply, no integer
  version) is skipped, and unserved if it was served (every reader agrees,
  whatever it read before), reported in the store's status (logged once),
  and served again once a writer replaces it; every other item is read and
  applied as usual.
  A store that had its ``$inited`` key and lost it (``FLUSHDB``, a restart
  without persistence, a failover to an empty replica) is not applied: the
  data read last stays served, the status is INTERRUPTED (the client STALE,
  then ERROR after the grace period) until a writer initialises it again.
  Each trouble (outage, not initialised, lost) is reported once when it
  begins, not at every retry; the status tracker logs a long outage at most
  once a minute.
"""

from __future__ import annotations

import enum
import math
from contextlib import aclosing
from typing import TYPE_CHECKING, Final, NamedTuple

import anyio

from aioflags._core._logname import client_logger
from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    ErrorInfo,
    ErrorKind,
    IntentCode,
    ObjectKind,
    SourceState,
    Update,
)

from ._base import (
    Recovery,
    StoreFailure,
    StoreStatusTracker,
    decode_item,
    decode_items,
)
from ._items import changes_read, changes_since, read_needed
from ._lookups import LookupMode

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable

    from aioflags._core._clock import Clock
    from aioflags._datasystem._context import SourceContext

    from ._base import Item, PersistentStore, RawData, StoreConnection, StoredText
    from ._gate import Refresher
    from ._lookups import StoreLookups

__all__ = ["daemon_synchronizer", "read_until_initialized"]

logger = client_logger("aioflags.datasource")

#: Seconds between attempts while the store is down or not initialised.
RETRY_INTERVAL: Final = 0.5
#: The shortest reload interval: what ``cache_ttl=0`` ("off") means here.
MIN_RELOAD_INTERVAL: Final = 0.1


def _flat(data: RawData) -> list[tuple[ObjectKind, str, StoredText]]:
    return [
        (kind, key, text)
        for kind, items in data.items.items()
        for key, text in items.items()
    ]


def _store_error(ctx: SourceContext, message: str) -> ErrorInfo:
    return ErrorInfo(kind=ErrorKind.STORE_ERROR, message=message, time=ctx.clock.now())


async def read_until_initialized(
    store: PersistentStore,
    clock: Clock,
    delivered: Callable[[], bool],
    apply: Callable[[ChangeSet], Awaitable[None]],
    refresher: Refresher | None = None,
    lookups: StoreLookups | None = None,
) -> None:
    """Serve the store until the data system has data of its own.

    For a data system with sources and a store (read-write, or read-only with
    sources): runs beside the sources, so a slow store never delays them. The
    store's data is applied (never written back) if it is initialised
    (``$inited``); the store is read again when ``cache_ttl`` expires, and
    what changed is applied (with the cache off, ``cache_ttl=0``, and a
    ``refresher``: once it is served, each evaluation reads what it needs,
    and the whole store only for one that needs every flag). While an
    initialised store is served, ``lookups`` (the cache on) reads through
    the flag keys evaluations miss (with an infinite TTL too, which is never
    read whole again). Stops as soon as the sources have delivered (``delivered()``);
    ``apply`` must not apply after that. An unexpected exception is
    logged and retried (:class:`~._base.Recovery`), never raised into the
    client.
    """
    on_demand = refresher if refresher is not None and store.cache_ttl == 0 else None
    if on_demand is not None:
        on_demand.active = True
    recovery = Recovery(f"Reading the {store.description}", store.status_tracker, clock)
    try:
        while not delivered():
            try:
                await _read_until_initialized(
                    store, clock, delivered, apply, on_demand, lookups
                )
            except Exception as exc:  # noqa: BLE001, PERF203 - Recovery logs it
                # Read again from the start (a full read) after a backoff.
                await recovery.retry_after(exc)
            else:
                return
    finally:
        if on_demand is not None:
            on_demand.stop()
        if lookups is not None:
            lookups.stop()


async def _read_until_initialized(
    store: PersistentStore,
    clock: Clock,
    delivered: Callable[[], bool],
    apply: Callable[[ChangeSet], Awaitable[None]],
    on_demand: Refresher | None,
    lookups: StoreLookups | None,
) -> None:
    tracker = store.status_tracker
    ttl = store.cache_ttl
    logged = False
    seen: dict[Item, StoredText] | None = None
    bad: dict[Item, str] = {}  # the unusable items read, and why
    async with store.connect() as connection:
        while not delivered():
            # (A full read: the keys asked are read with every other.)
            number = on_demand.take()[0] if on_demand is not None else 0
            keys = lookups.requested() if lookups is not None else []
            try:
                data = await connection.load()
            except StoreFailure as exc:
                tracker.failed(exc, clock.now())
                if on_demand is not None:
                    on_demand.served(number)  # tried: evaluate what there is
                _read(lookups, keys, LookupMode.IDLE)
                await clock.sleep(RETRY_INTERVAL)
                continue
            tracker.succeeded(clock.now())
            items: dict[tuple[ObjectKind, str], StoredText] = {}
            if data.initialized:
                # Served, and read again as the cache says, until the sources
                # deliver: the first read whole, then what changed.
                items = {(kind, key): text for kind, key, text in _flat(data)}
                change_set = await changes_since(seen, items, bad)
                seen = items
                tracker.malformed(bad)
                if change_set is not None:
                    await apply(change_set)
            elif not logged:
                logged = True
                logger.info(
                    "The %s is not initialised yet: waiting for the flag service",
                    store.description,
                )
            if on_demand is not None:
                on_demand.served(number)
                if seen is not None and data.initialized:
                    # Served: each evaluation reads what it needs, until
                    # the sources deliver or it needs every flag.
                    while not delivered():
                        await on_demand.wait_request()
                        number, wanted = on_demand.take()
                        if wanted is None or delivered():
                            break  # the whole store (or nothing): above
                        try:
                            needed = await read_needed(connection, wanted)
                        except StoreFailure as exc:
                            tracker.failed(exc, clock.now())
                            on_demand.served(number)  # evaluate what there is
                            await clock.sleep(RETRY_INTERVAL)
                            break
                        tracker.succeeded(clock.now())
                        if needed.initialized:  # (else: not served, as above)
                            change_set = await changes_read(seen, needed.texts, bad)
                            tracker.malformed(bad)
                            if change_set is not None:
                                await apply(change_set)
                        on_demand.served(number)
                    continue
            if lookups is not None and seen is not None and data.initialized:
                _read(lookups, keys, LookupMode.READ_THROUGH, items)
                # Served: missing keys read through until the TTL expires
                # (never, if infinite) or the sources deliver.
                reload_at = clock.now() + _interval(ttl)
                while not delivered() and await _sleep_or_request(
                    clock, reload_at - clock.now(), lookups
                ):
                    found = await _look_up(
                        connection, lookups.requested(), seen, bad, tracker, clock
                    )
                    if found.change_set is not None:
                        await apply(found.change_set)
                    found.answer(lookups)
                continue
            _read(lookups, keys, LookupMode.IDLE)  # not initialised: not served
            if math.isinf(ttl):
                return  # an infinite cache: read once, whatever it found
            if on_demand is not None:
                await on_demand.wait_request()
            else:
                await clock.sleep(_interval(ttl))


def _interval(ttl: float) -> float:
    return max(ttl, MIN_RELOAD_INTERVAL)


def _read(
    lookups: StoreLookups | None,
    keys: list[str],
    mode: LookupMode,
    items: dict[tuple[ObjectKind, str], StoredText] | None = None,
) -> None:
    """Tell ``lookups`` a full read is over; ``items``: what it found, and served.

    The keys asked before it began are answered: absent if it found and
    served the store without them, else asked again next time.
    """
    if lookups is not None:
        lookups.read(mode)
        lookups.answered(keys, () if items is None else _absent(keys, items))


def _absent(
    keys: list[str], items: dict[tuple[ObjectKind, str], StoredText]
) -> list[str]:
    """The flag keys that ``items`` (as read from the store) has no live flag for."""
    return [key for key in keys if not _live(key, items.get((ObjectKind.FLAG, key)))]


def _live(key: str, text: StoredText | None) -> bool:
    """Whether a flag's stored JSON is a flag (not absent, unusable or a tombstone)."""
    if text is None:
        return False
    change = decode_item(ObjectKind.FLAG, key, text)
    return isinstance(change, Change) and change.action is ChangeKind.PUT


async def _sleep_or_request(
    clock: Clock, seconds: float, lookups: StoreLookups
) -> bool:
    """Sleep ``seconds`` (inf: for ever) unless an evaluation asks for a key first.

    True: keys are waiting to be read through. False: the time is up, or
    nothing is read through any more (:meth:`StoreLookups.stop`).
    """
    if seconds <= 0:
        return False
    async with anyio.create_task_group() as race:  # the first to finish wins

        async def timer() -> None:
            if math.isinf(seconds):
                await anyio.sleep_forever()
            await clock.sleep(seconds)
            race.cancel_scope.cancel()

        async def request() -> None:
            await lookups.wait_request()
            race.cancel_scope.cancel()

        race.start_soon(timer)
        race.start_soon(request)
    return bool(lookups.requested())


class _Found(NamedTuple):
    """What reading keys through found: apply ``change_set``, then answer the keys."""

    keys: list[str]
    change_set: ChangeSet | None
    absent: list[str]
    seconds: float | None = None  # how long they are absent (None: the TTL)

    def answer(self, lookups: StoreLookups) -> None:
        lookups.answered(self.keys, self.absent, self.seconds)


async def _look_up(
    connection: StoreConnection,
    keys: list[str],
    seen: dict[Item, StoredText],
    bad: dict[Item, str],
    tracker: StoreStatusTracker,
    clock: Clock,
    *,
    require_inited: bool = True,
) -> _Found:
    """Read ``keys`` through: what to apply, and which keys the store lacks.

    One ``HMGET`` for every key asked. If one of them is there, the store is
    read whole (once) and what the snapshot lacks is applied: the flags, and
    the segments and prerequisites they may need. What the snapshot holds is
    left as it is until the TTL expires, as in LaunchDarkly's per-item cache.
    ``seen`` (what was applied) and ``bad`` (the unusable items, reported
    to the ``tracker``) are updated; with ``require_inited``, a store
    without its ``$inited`` key is not applied. The keys the store lacks are
    absent for the TTL; those of a read that failed, or found the store
    without its ``$inited`` key, for :data:`RETRY_INTERVAL`, so that a down,
    hung or emptied store does not cost every evaluation of a missing key a
    round trip and a wait.
    """
    try:
        found = await connection.get(ObjectKind.FLAG, keys)
        data = None
        if any(_live(key, text) for key, text in found.items()):
            data = await connection.load()
    except StoreFailure as exc:
        tracker.failed(exc, clock.now())
        return _Found(keys, None, keys, RETRY_INTERVAL)
    if data is None:
        return _Found(keys, None, keys)
    if require_inited and not data.initialized:
        # Lost its data meanwhile (or being written again): not served, and
        # the keys not asked again before the next retry, as on a failure;
        # the next full read says what the store holds.
        return _Found(keys, None, keys, RETRY_INTERVAL)
    items = {(kind, key): text for kind, key, text in _flat(data)}
    new = {item: text for item, text in items.items() if item not in seen}
    seen.update(new)
    found_items = await decode_items([(kind, key, t) for (kind, key), t in new.items()])
    decoded = found_items.changes
    if found_items.unusable:
        bad.update(found_items.unusable)
        tracker.malformed(bad)
    change_set = (
        ChangeSet(intent=IntentCode.TRANSFER_CHANGES, changes=tuple(decoded))
        if decoded
        else None
    )
    # Absent: not put by this read (its new items are decoded once, above),
    # nor live in it among the items applied before (rare: a key asked while
    # the snapshot lacks it was unusable when it was applied).
    put = {
        change.key
        for change in decoded
        if change.kind is ObjectKind.FLAG and change.action is ChangeKind.PUT
    }
    absent = [
        key
        for key in keys
        if key not in put
        and (
            (ObjectKind.FLAG, key) in new
            or not _live(key, items.get((ObjectKind.FLAG, key)))
        )
    ]
    return _Found(keys, change_set, absent)


def daemon_synchronizer(
    store: PersistentStore,
    refresher: Refresher | None = None,
    lookups: StoreLookups | None = None,
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """The store as the only source, reloaded when ``cache_ttl`` expires.

    With the cache off (``cache_ttl=0``) and a ``refresher``: once served,
    each awaited evaluation reads what it needs (the flag, and the flags and
    segments it reaches), so it sees them as they are; an evaluation of every
    flag, an outage or a lost ``$inited`` key makes the next read whole.
    With the cache on and ``lookups``: the flag keys evaluations miss are
    read through between reloads; while the store is not initialised, a
    missing key makes the next read happen at once, at most once per
    :data:`RETRY_INTERVAL` (the keys asked after it wait for the retry).
    """

    async def synchronizer(ctx: SourceContext) -> AsyncGenerator[Update, None]:
        on_demand = (
            refresher if refresher is not None and store.cache_ttl == 0 else None
        )
        if on_demand is not None:
            on_demand.active = True
        recovery = Recovery(
            f"Reading the {store.description}", store.status_tracker, ctx.clock
        )
        try:
            while True:
                try:
                    async with aclosing(
                        _daemon(store, ctx, on_demand, lookups)
                    ) as updates:
                        async for update in updates:
                            if update.state is SourceState.VALID:
                                recovery.recovered()
                            yield update
                except Exception as exc:  # noqa: BLE001, PERF203 - Recovery logs it
                    # Read again from the start (a full read, its change set
                    # a full transfer) after a backoff; reported meanwhile.
                    yield _interrupted(
                        ctx,
                        f"reading the {store.description} failed unexpectedly: "
                        f"{type(exc).__name__}: {exc}",
                    )
                    await recovery.retry_after(exc)
        finally:
            if on_demand is not None:
                on_demand.stop()
            if lookups is not None:
                lookups.stop()

    return synchronizer


async def _daemon(
    store: PersistentStore,
    ctx: SourceContext,
    on_demand: Refresher | None,
    lookups: StoreLookups | None,
) -> AsyncGenerator[Update, None]:
    tracker = store.status_tracker
    ttl = store.cache_ttl
    seen: dict[Item, StoredText] | None = None  # what was applied last
    bad: dict[Item, str] = {}  # the unusable items among them, and why
    inited = False  # the store has had its $inited key during this run
    early = False  # the last read was one an evaluation asked for
    reported: _Trouble | None = None  # what the status says is wrong: once each
    async with store.connect() as connection:
        while True:
            # (A full read: the keys asked are read with every other.)
            number = on_demand.take()[0] if on_demand is not None else 0
            keys = lookups.requested() if lookups is not None else []
            try:
                data = await connection.load()
            except StoreFailure as exc:
                # An outage's first failure goes into the status (the
                # supervisor logs it); the tracker logs the rest, rate-limited.
                first = reported is not _Trouble.DOWN
                tracker.failed(exc, ctx.clock.now(), announced=first)
                if first:
                    reported = _Trouble.DOWN
                    yield _interrupted(ctx, f"the {store.description}: {exc}")
                if on_demand is not None:
                    on_demand.served(number)  # tried: evaluate what there is
                _read(lookups, keys, LookupMode.IDLE)
                await ctx.clock.sleep(RETRY_INTERVAL)
                continue
            items = {(kind, key): text for kind, key, text in _flat(data)}
            inited = inited or data.initialized
            # Without $inited, the items are served only if this store never
            # had it (written that way, as Relay and SDKs may): a store that
            # had it and lost it was flushed or restarted empty.
            usable = data.initialized or (bool(items) and not inited)
            tracker.succeeded(ctx.clock.now(), stale=not usable and seen is not None)
            if not usable:
                trouble = _Trouble.UNINITIALISED if seen is None else _Trouble.LOST
                if reported is not trouble:
                    reported = trouble
                    yield _interrupted(ctx, _unusable(store, trouble))
                if on_demand is not None:
                    on_demand.served(number)
                    if trouble is _Trouble.LOST:
                        # Read again when evaluated, as when it was served.
                        await on_demand.wait_request()
                        continue
                if lookups is not None and trouble is _Trouble.UNINITIALISED:
                    # Nothing to serve: a key evaluated meanwhile is read
                    # (with the whole store) at once, not at the next retry;
                    # after such a read, the next one waits for the retry,
                    # so that distinct keys cost one full read per interval.
                    _read(lookups, keys, LookupMode.RELOAD, {})
                    if early:
                        early = False
                        await ctx.clock.sleep(RETRY_INTERVAL)
                    else:
                        early = await _sleep_or_request(
                            ctx.clock, RETRY_INTERVAL, lookups
                        )
                    continue
                _read(lookups, keys, LookupMode.IDLE)
                await ctx.clock.sleep(RETRY_INTERVAL)
                continue
            if reported is _Trouble.LOST:
                logger.info(
                    "aioflags daemon mode: the %s is initialised again: serving it",
                    store.description,
                )
            reported = None
            change_set = await changes_since(seen, items, bad)
            seen = items
            tracker.malformed(bad)
            yield Update(state=SourceState.VALID, change_set=change_set)
            # Resumed once the supervisor has applied it.
            if on_demand is not None:
                on_demand.served(number)
                # Each evaluation reads what it needs, until one needs every
                # flag, the store fails, or it has lost its $inited key:
                # then the whole store is read (and the trouble reported).
                while True:
                    await on_demand.wait_request()
                    number, wanted = on_demand.take()
                    if wanted is None:
                        break
                    try:
                        needed = await read_needed(connection, wanted)
                    except StoreFailure as exc:
                        tracker.failed(exc, ctx.clock.now(), announced=True)
                        reported = _Trouble.DOWN
                        yield _interrupted(ctx, f"the {store.description}: {exc}")
                        on_demand.served(number)  # evaluate what there is
                        await ctx.clock.sleep(RETRY_INTERVAL)
                        break
                    if inited and not needed.initialized:
                        break  # lost its data: not applied (the full read says so)
                    inited = inited or needed.initialized
                    tracker.succeeded(ctx.clock.now())
                    change_set = await changes_read(seen, needed.texts, bad)
                    tracker.malformed(bad)
                    yield Update(state=SourceState.VALID, change_set=change_set)
                    on_demand.served(number)
                continue
            if math.isinf(ttl):
                logger.info(
                    "aioflags daemon mode: the %s was read once (infinite cache)",
                    store.description,
                )
            if lookups is not None:
                _read(lookups, keys, LookupMode.READ_THROUGH, items)
                # Served: missing keys read through until the TTL expires
                # (never, with an infinite cache).
                reload_at = ctx.clock.now() + _interval(ttl)
                while await _sleep_or_request(
                    ctx.clock, reload_at - ctx.clock.now(), lookups
                ):
                    found = await _look_up(
                        connection,
                        lookups.requested(),
                        seen,
                        bad,
                        tracker,
                        ctx.clock,
                        require_inited=inited,
                    )
                    if found.change_set is not None:
                        yield Update(
                            state=SourceState.VALID, change_set=found.change_set
                        )
                    found.answer(lookups)
                if not math.isinf(ttl):
                    continue  # the TTL expired: read the whole store again
            if math.isinf(ttl):
                await anyio.sleep_forever()
            await ctx.clock.sleep(_interval(ttl))


def _interrupted(ctx: SourceContext, message: str) -> Update:
    return Update(state=SourceState.INTERRUPTED, error=_store_error(ctx, message))


class _Trouble(enum.Enum):
    """What keeps the daemon from serving the store (reported once each time)."""

    DOWN = "down"
    UNINITIALISED = "uninitialised"
    LOST = "lost"


def _unusable(store: PersistentStore, trouble: _Trouble) -> str:
    """Why the store's content is not served (uninitialised, or lost)."""
    if trouble is _Trouble.UNINITIALISED:
        return (
            f"the {store.description} is not initialised (no flags, no $inited "
            "key): waiting for a writer such as the Relay Proxy or an SDK in "
            "read-write mode"
        )
    return (
        f"the {store.description} has lost its data (its $inited key is gone: "
        "flushed, or restarted without persistence): serving the data read "
        "last until a writer such as the Relay Proxy or an SDK in read-write "
        "mode initialises it again"
    )
