"""What every persistent store shares: its status, its connection protocol, item JSON.

Items are stored the way LaunchDarkly's SDKs and Relay Proxy store them: the
whole flag or segment as JSON text including ``key`` and ``version``; a
deleted item is a *tombstone* ``{"key": ..., "version": N, "deleted": true}``.
Readers treat any value with ``"deleted": true`` as absent, whatever else it
holds (Go writes ``"key": "$deleted"``), while keeping its version.

Another writer may leave an item no reader can use (bytes that are not UTF-8,
in its JSON or in its key; invalid JSON, JSON nested too deeply to parse, no
integer version). Such a fault is the item's alone:
it is parsed with the SDK's strict parser (which cannot be crashed), skipped,
named in :attr:`DataStoreStatus.malformed` and logged once, and every other
item is read and written as usual.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, TypeAlias, final

from aioflags._core._exceptions import ProtocolError
from aioflags._core._frozen import Frozen, set_field
from aioflags._core._json import parse
from aioflags._core._logname import client_logger
from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ObjectKind,
)

from ._mode import OUTAGE_LOG_INTERVAL

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager

    from aioflags._core._clock import Clock
    from aioflags._core._json import JSONObject

__all__ = [
    "DataStoreStatus",
    "Decoded",
    "EncodedItem",
    "Item",
    "PersistentStore",
    "RawData",
    "Recovery",
    "StoreConnection",
    "StoreFailure",
    "StoreStatusTracker",
    "StoredText",
    "Unreadable",
    "decode_items",
    "encode_change",
    "parse_item",
]

logger = client_logger("aioflags.datasource")

#: An item as stored: its version and its JSON text.
EncodedItem: TypeAlias = tuple[int, str]
#: A stored item's kind and key.
Item: TypeAlias = tuple[ObjectKind, str]
_SLICE: Final = 0.005  # seconds of JSON work between yields to the event loop
#: Seconds before the first retry after an unexpected exception, and the longest.
RECOVERY_DELAYS: Final = (0.5, 30.0)


@final
class Unreadable(NamedTuple):
    """A stored item whose bytes are not text (not UTF-8), and why: never parsed.

    A store gives it in place of the item's JSON text; every reader reports
    the item as unusable with :attr:`reason`, as it does invalid JSON. Two
    reads of the same bytes give equal values, so an unchanged item is not
    decoded or reported again.
    """

    reason: str


#: A stored item as a store read it: its JSON text, or why it cannot be read.
StoredText: TypeAlias = "str | Unreadable"


def stored_text(value: bytes) -> StoredText:
    """A stored value's bytes as text, strictly (never U+FFFD)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Unreadable(f"invalid UTF-8 at byte {exc.start} ({exc.reason})")


def stored_items(fields: Mapping[bytes, bytes]) -> dict[str, StoredText]:
    r"""A stored hash's fields as item keys and texts; a key that is not UTF-8 is unreadable.

    Such a key cannot name a flag or a segment: it is kept, with its bad bytes
    written as ``\xNN`` escapes, so that readers can name it.
    """
    items: dict[str, StoredText] = {}
    for name, value in fields.items():
        try:
            key = name.decode("utf-8")
        except UnicodeDecodeError as exc:  # noqa: PERF203 - rare: not on the way
            items[name.decode("utf-8", "backslashreplace")] = Unreadable(
                f"its key is not UTF-8 (invalid byte {exc.start})"
            )
        else:
            items[key] = stored_text(value)
    return items


class StoreFailure(Exception):
    """A store operation failed (connection refused, timeout, conflict...)."""


@final
class DataStoreStatus(Frozen):
    """A persistent store's health, as the data system last saw it.

    Attributes:
        available: the last operation on the store succeeded.
        stale: the store came back after an outage and may be out of date;
            in read-write mode the data system is rewriting it.
        malformed: the stored items read last that cannot be used (invalid
            JSON, nested too deeply, no integer version), as ``(kind, key)``
            pairs: they are not served (a flag among them evaluates to the
            default with ``FLAG_NOT_FOUND``) until a writer replaces them.

    Added in version 0.1.0.
    """

    __slots__ = ("available", "stale", "malformed")  # noqa: RUF023 - in order
    available: bool
    stale: bool
    malformed: frozenset[Item]

    def __init__(
        self,
        *,
        available: bool = True,
        stale: bool = False,
        malformed: frozenset[Item] = frozenset(),
    ) -> None:
        set_field(self, "available", available)
        set_field(self, "stale", stale)
        set_field(self, "malformed", malformed)


class StoreStatusTracker:
    """Holds a store's status, logs its outages, calls its listeners.

    An outage is logged when it begins (WARNING), then at most once per
    :data:`OUTAGE_LOG_INTERVAL` while it lasts (WARNING, with the number of
    failures since the line before), and when it ends (WARNING, with its
    length): a store that is down for ten minutes and retried every 0.5 s
    logs a dozen lines, not 1,200. ``now`` is the caller's clock.

    The readers report the items they cannot use (:meth:`malformed`): each is
    logged (WARNING) once when it breaks, and once when it is usable again.
    """

    __slots__ = (
        "_description",
        "_down_since",
        "_failures",
        "_listeners",
        "_logged_at",
        "_malformed",
        "status",
    )

    def __init__(self, description: str) -> None:
        self._description = description
        self._listeners: list[Callable[[DataStoreStatus], None]] = []
        self.status: DataStoreStatus = DataStoreStatus()
        self._down_since = 0.0  # when the outage began
        self._logged_at = 0.0  # when it was last logged
        self._failures = 0  # failures since then
        self._malformed: dict[Item, str] = {}  # unusable items, and why

    def add(self, listener: Callable[[DataStoreStatus], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def failed(
        self, exc: BaseException, now: float, *, announced: bool = False
    ) -> None:
        """An operation failed; ``announced``: the caller reports it (not logged here).

        Daemon mode reports an outage's first failure through the data-source
        status, whose line the supervisor logs: it passes ``announced=True``
        so that the failure is logged once, not twice.
        """
        if self.status.available:
            self._down_since = self._logged_at = now
            self._failures = 0
            if not announced:
                logger.warning("The %s is unavailable: %s", self._description, exc)
        else:
            self._failures += 1
            if now - self._logged_at >= OUTAGE_LOG_INTERVAL:
                logger.warning(
                    "The %s is still unavailable after %.0f s (%d more failures "
                    "since the last message): %s",
                    self._description,
                    now - self._down_since,
                    self._failures,
                    exc,
                )
                self._logged_at = now
                self._failures = 0
        self._set(available=False, stale=False)

    def succeeded(self, now: float, *, stale: bool = False) -> None:
        """An operation succeeded; ``stale``: the store's data needs rewriting."""
        if not self.status.available:
            logger.warning(
                "The %s is available again (unavailable for %.0f s)",
                self._description,
                now - self._down_since,
            )
        self._set(available=True, stale=stale)

    def malformed(self, items: Mapping[Item, str]) -> None:
        """The stored items that cannot be used now, each with the reason why.

        Replaces what was reported before: an item that breaks (or breaks
        anew, for another reason) is logged once, and so is an item that is
        usable again or gone.
        """
        old = self._malformed
        if items == old:
            return
        for (kind, key), reason in items.items():
            if old.get((kind, key)) != reason:
                logger.warning(
                    "The %s holds an unusable %s %r (%s): it is not served "
                    "until a writer replaces it",
                    self._description,
                    kind.value,
                    key,
                    reason,
                )
        for kind, key in old.keys() - items.keys():
            logger.warning(
                "The %s no longer holds the unusable %s %r",
                self._description,
                kind.value,
                key,
            )
        self._malformed = dict(items)
        self._set(
            available=self.status.available,
            stale=self.status.stale,
            malformed=frozenset(items),
        )

    def _set(
        self, *, available: bool, stale: bool, malformed: frozenset[Item] | None = None
    ) -> None:
        status = DataStoreStatus(
            available=available,
            stale=stale,
            malformed=self.status.malformed if malformed is None else malformed,
        )
        if status == self.status:
            return
        self.status = status
        for listener in list(self._listeners):
            _notify(listener, status)


class Recovery:
    """How a store reader or writer goes on after an unexpected exception.

    Whatever a store reader or writer meets that it did not foresee (a bug, a
    library's surprise) is never the end of it: :meth:`retry_after` reports
    the store unavailable, logs the first exception of an episode with its
    traceback (the tracker logs the rest, rate-limited), and waits before the
    next attempt, 0.5 s at first and twice as long each time, up to 30 s.
    :meth:`recovered` (an attempt went through) ends the episode.
    """

    __slots__ = ("_clock", "_delay", "_tracker", "_what")

    def __init__(self, what: str, tracker: StoreStatusTracker, clock: Clock) -> None:
        self._what = what
        self._tracker = tracker
        self._clock = clock
        self._delay: float | None = None  # None: no episode

    async def retry_after(self, exc: Exception) -> None:
        """Report ``exc``, then wait until the next attempt is due."""
        delay = self._delay
        if delay is None:  # the first of an episode
            delay = RECOVERY_DELAYS[0]
            logger.error(
                "%s failed unexpectedly: retrying (the store is reported "
                "unavailable meanwhile)",
                self._what,
                exc_info=exc,
            )
            self._tracker.failed(exc, self._clock.now(), announced=True)
        else:
            self._tracker.failed(exc, self._clock.now())
        self._delay = min(delay * 2, RECOVERY_DELAYS[1])
        await self._clock.sleep(delay)

    def recovered(self) -> None:
        """An attempt went through: the next exception starts a new episode."""
        self._delay = None


def _notify(
    listener: Callable[[DataStoreStatus], None], status: DataStoreStatus
) -> None:
    """Call a status listener; a failing listener is logged, never raised."""
    try:
        listener(status)
    except Exception:
        logger.exception("A data store status listener failed")


@final
class RawData(Frozen):
    """A whole store as read in one transaction: JSON text per kind and key."""

    __slots__ = ("items", "initialized")  # noqa: RUF023 - fields in order
    items: Mapping[ObjectKind, Mapping[str, StoredText]]
    initialized: bool

    def __init__(
        self, *, items: Mapping[ObjectKind, Mapping[str, StoredText]], initialized: bool
    ) -> None:
        set_field(self, "items", items)
        set_field(self, "initialized", initialized)


class StoreConnection(Protocol):
    """An open connection to a persistent store; every method may raise StoreFailure."""

    async def load(self) -> RawData:
        """Read every item and the "initialised" marker, atomically."""
        ...

    async def read_items(self, keys: Mapping[ObjectKind, Sequence[str]]) -> RawData:
        """Those of ``keys`` the store holds, and its "initialised" marker, atomically."""
        ...

    async def get(self, kind: ObjectKind, keys: Sequence[str]) -> dict[str, StoredText]:
        """The stored JSON text of those of ``keys`` the store holds (one read)."""
        ...

    async def init(self, items: Mapping[ObjectKind, Mapping[str, EncodedItem]]) -> None:
        """Replace the whole data set atomically and mark the store initialised."""
        ...

    async def upsert(
        self, items: Sequence[tuple[ObjectKind, str, EncodedItem]]
    ) -> None:
        """Write the items newer than the store's copies, atomically."""
        ...

    async def ping(self) -> None:
        """Check that the store answers."""
        ...

    async def initialized(self) -> bool:
        """Whether the store holds a full data set (its "initialised" marker)."""
        ...


class PersistentStore(Protocol):
    """What the data system needs of a persistent store (``RedisStore``)."""

    @property
    def cache_ttl(self) -> float:
        """Seconds a daemon-mode snapshot is kept before the store is read again."""
        ...

    @property
    def description(self) -> str:
        """What to call the store in messages (no secrets)."""
        ...

    @property
    def timeout(self) -> float:
        """Seconds one operation may take (connecting, then each reply)."""
        ...

    @property
    def status_tracker(self) -> StoreStatusTracker:
        """Where readers and writers report the store's health."""
        ...

    def connect(self) -> AbstractAsyncContextManager[StoreConnection]:
        """Open a connection, closed when the context exits."""
        ...


def encode_change(change: Change) -> EncodedItem:
    """A change as the store keeps it: the item's JSON, or a tombstone."""
    if change.action is ChangeKind.DELETE or change.obj is None:
        obj: dict[str, object] = {
            "key": change.key,
            "version": change.version,
            "deleted": True,
        }
    else:
        obj = {**change.obj, "key": change.key, "version": change.version}
    return change.version, json.dumps(obj, separators=(",", ":"))


def parse_item(text: str | bytes | Unreadable) -> JSONObject | str:
    """A stored item's JSON object with an integer version, or why it is unusable."""
    if isinstance(text, Unreadable):
        return text.reason
    try:
        obj = parse(text)
    except ProtocolError as exc:  # invalid (UTF-8 or JSON), or nested too deeply
        return str(exc)
    if not isinstance(obj, dict) or type(obj.get("version")) is not int:
        return "not a JSON object with an integer version"
    return obj


def decode_item(kind: ObjectKind, key: str, text: StoredText) -> Change | str:
    """A stored item as a put or (for a tombstone) a delete; or why it is unusable.

    Never raises and never logs: the caller reports unusable items (see
    :meth:`StoreStatusTracker.malformed`).
    """
    obj = parse_item(text)
    if isinstance(obj, str):
        return obj
    if obj.get("deleted") is True:
        return Change(
            action=ChangeKind.DELETE, kind=kind, key=key, version=obj["version"]
        )
    return Change(
        action=ChangeKind.PUT, kind=kind, key=key, version=obj["version"], obj=obj
    )


def stored_version(text: str | bytes | Unreadable | None) -> int | None:
    """The version of a stored item's JSON text (None: absent or unusable)."""
    if text is None:
        return None
    obj = parse_item(text)
    return None if isinstance(obj, str) else obj["version"]


class Decoded(NamedTuple):
    """Stored items decoded: the usable ones as changes, the others with why."""

    changes: list[Change]
    unusable: dict[Item, str]


async def decode_items(
    items: Sequence[tuple[ObjectKind, str, StoredText]],
) -> Decoded:
    """Decode stored items in time slices, yielding to the event loop between them."""
    import anyio.lowlevel  # with a store only: not with aioflags

    decoded = Decoded([], {})
    deadline = time.perf_counter() + _SLICE
    for kind, key, text in items:
        change = decode_item(kind, key, text)
        if isinstance(change, str):
            decoded.unusable[kind, key] = change
        else:
            decoded.changes.append(change)
        if time.perf_counter() > deadline:
            await anyio.lowlevel.checkpoint()
            deadline = time.perf_counter() + _SLICE
    return decoded
