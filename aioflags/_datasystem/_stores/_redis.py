"""RedisStore: flags and segments in Redis, in LaunchDarkly's layout.

Keys (``<prefix>`` defaults to ``launchdarkly``)::

    <prefix>:features   hash  flag key    -> the flag's JSON (or a tombstone)
    <prefix>:segments   hash  segment key -> the segment's JSON (or a tombstone)
    <prefix>:$inited    string, present once a full data set has been written

A full data set is written in one MULTI/EXEC (DEL and HSET per kind, then SET
``$inited``). Incremental changes are written with optimistic concurrency:
WATCH both hashes, read the stored versions, and in one MULTI/EXEC write only
the items newer than what Redis holds (an item no reader can use has no
version: it is replaced, and a WARNING names it); a WATCH conflict retries,
up to 10 attempts. redis-py's asyncio client does the I/O; its errors are
translated into :class:`StoreFailure` here, at one boundary.

Replies are bytes, decoded here item by item: Redis holds whatever another
writer left, and bytes that are not UTF-8 (in an item's JSON or in its key)
make that item alone unusable (:class:`~._base.Unreadable`), never the read.
"""

from __future__ import annotations

import contextlib
import math
import urllib.parse
from typing import TYPE_CHECKING, Final, cast, final

import anyio

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._logname import client_logger
from aioflags._datasystem._datatypes import ObjectKind

from ._base import (
    DataStoreStatus,
    RawData,
    StoreFailure,
    StoreStatusTracker,
    stored_items,
    stored_text,
    stored_version,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from redis.asyncio import Redis
    from redis.typing import EncodableT, FieldT

    from ._base import EncodedItem, StoredText

__all__ = ["RedisBigSegmentStore", "RedisStore"]

logger = client_logger("aioflags.datasource")

_KINDS: Final = ((ObjectKind.FLAG, "features"), (ObjectKind.SEGMENT, "segments"))
_MAX_ATTEMPTS: Final = (
    10  # optimistic-concurrency attempts (LaunchDarkly's SDKs use 10)
)
_CLOSE_BOUND: Final = 1.0  # seconds closing the connection pool may take
_SCHEMES: Final = ("redis://", "rediss://", "unix://")


def _require_redis() -> None:
    """Raise a ConfigurationError saying how to install redis-py if it is missing."""
    try:
        import redis.asyncio  # noqa: F401 (the import is the check)
    except ImportError as exc:
        raise ConfigurationError(
            "aioflags.stores.RedisStore needs redis-py: pip install 'aioflags[redis]'"
        ) from exc


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    return float(value)


def redact(url: str) -> str:
    """The URL without its password (safe for logs and messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + netloc))


@final
class RedisStore:
    """A Redis persistent store in LaunchDarkly's layout (extra ``aioflags[redis]``).

    Share one Redis with LaunchDarkly's SDKs and Relay Proxy in either
    direction: write it with ``DataSystem.default(store=store)`` (read-write
    mode), read it with ``DataSystem.daemon(store)`` (daemon mode). Creating
    the store does no I/O; each client opens its own connections while it runs
    and closes them when it stops.

    Args:
        url: a redis-py URL: ``redis://[[user]:password@]host:port/db``,
            ``rediss://`` (TLS) or ``unix://``. The password never appears in
            logs or messages.
        prefix: the key prefix (``<prefix>:features``, ``<prefix>:segments``,
            ``<prefix>:$inited``).
        cache_ttl: how long (seconds) what was read from Redis is served
            before Redis is read again: in daemon mode always, with sources
            until they deliver. ``None`` or ``math.inf``: read once, never
            again. ``0`` (off): every awaited evaluation reads Redis first
            (the synchronous snapshot evaluates the data read last).
        timeout: seconds to connect and for each command's reply.

    Raises:
        ConfigurationError: an invalid argument, or redis-py is not installed.

    Added in version 0.1.0.
    """

    __slots__ = ("_cache_ttl", "_prefix", "_status", "_timeout", "_url")

    def __init__(
        self,
        *,
        url: str = "redis://localhost:6379/0",
        prefix: str = "launchdarkly",
        cache_ttl: float | None = 15.0,
        timeout: float = 5.0,
    ) -> None:
        _check_location(url, prefix, "RedisStore")
        ttl = math.inf if cache_ttl is None else _seconds("cache_ttl", cache_ttl)
        if not ttl >= 0:
            raise ConfigurationError(
                f"cache_ttl must be >= 0 or None, got {cache_ttl!r}"
            )
        if not 0 < _seconds("timeout", timeout) < math.inf:
            raise ConfigurationError(f"timeout must be > 0 and finite, got {timeout!r}")
        self._url = url
        self._prefix = prefix
        self._cache_ttl = float(ttl)
        self._timeout = float(timeout)
        self._status = StoreStatusTracker(
            f"Redis store {redact(url)} (prefix {prefix!r})"
        )

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    @property
    def cache_ttl(self) -> float:
        """The daemon-mode cache time in seconds (``math.inf``: never reloaded)."""
        return self._cache_ttl

    @property
    def timeout(self) -> float:
        """Seconds to connect and for each command's reply.

        Added in version 0.1.0.
        """
        return self._timeout

    @property
    def description(self) -> str:
        """The store in words, for messages: URL without password, and prefix."""
        return f"Redis store {redact(self._url)} (prefix {self._prefix!r})"

    @property
    def status(self) -> DataStoreStatus:
        """The store's health as the data system last saw it."""
        return self._status.status

    @property
    def status_tracker(self) -> StoreStatusTracker:
        """Where the data system reports this store's health (internal)."""
        return self._status

    def add_status_listener(
        self, listener: Callable[[DataStoreStatus], None]
    ) -> Callable[[], None]:
        """Call ``listener(status)`` on every status change; returns a remover."""
        return self._status.add(listener)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[_RedisConnection]:
        """A connection pool for one data-system component (internal).

        redis-py connects lazily: opening does no I/O. Closing is bounded and
        shielded, so the pool's sockets close even when the caller is cancelled.
        """
        async with _client(self._url, self._timeout) as client:
            yield _RedisConnection(client, self._prefix)

    def __repr__(self) -> str:
        return f"<RedisStore {redact(self._url)} prefix={self._prefix!r}>"


@contextlib.asynccontextmanager
async def _client(url: str, seconds: float) -> AsyncIterator[Redis]:
    """A redis-py client (a lazy pool), closed bounded and shielded on exit."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = Redis.from_url(
        url,
        # Bytes: the readers decode each item on its own (an item that is not
        # UTF-8 is that item's fault, not the whole read's).
        decode_responses=False,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        # aioflags retries on its own schedule (and its own clock).
        retry=Retry(NoBackoff(), 0),
    )
    try:
        yield client
    finally:
        with anyio.move_on_after(_CLOSE_BOUND, shield=True):
            await client.aclose()


def _check_location(url: object, prefix: object, owner: str) -> None:
    """Checked at run time (callers may not be typed); redis-py must be installed."""
    _require_redis()
    _check_url(url, owner)
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(f"{owner} prefix must be a non-empty string")


def _check_url(url: object, what: str) -> None:
    from redis.connection import parse_url

    if not isinstance(url, str) or not url.startswith(_SCHEMES):
        raise ConfigurationError(
            f"{what} url must start with redis://, rediss:// or unix://"
        )
    try:
        parse_url(url)  # type: ignore[no-untyped-call]  # unannotated in redis-py
    except ValueError as exc:
        raise ConfigurationError(
            f"{what} url {redact(url)!r} is invalid: {exc}"
        ) from exc


class _RedisConnection:
    """The store operations over one redis-py client."""

    __slots__ = ("_errors", "_hashes", "_inited", "_redis", "_watch_error")

    def __init__(self, client: Redis, prefix: str) -> None:
        from redis.exceptions import RedisError, WatchError

        self._redis = client
        self._hashes = {kind: f"{prefix}:{name}" for kind, name in _KINDS}
        self._inited = f"{prefix}:$inited"
        self._watch_error: type[Exception] = WatchError
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)

    def _failure(self, what: str, exc: Exception) -> StoreFailure:
        return StoreFailure(f"{what} failed: {str(exc) or type(exc).__name__}")

    async def load(self) -> RawData:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for kind, _ in _KINDS:
                    pipe.hgetall(self._hashes[kind])
                pipe.exists(self._inited)
                flags, segments, inited = await pipe.execute()
        except self._errors as exc:
            raise self._failure("reading the store", exc) from exc
        return RawData(
            items={
                ObjectKind.FLAG: stored_items(flags),
                ObjectKind.SEGMENT: stored_items(segments),
            },
            initialized=bool(inited),
        )

    async def read_items(self, keys: Mapping[ObjectKind, Sequence[str]]) -> RawData:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                asked = [(kind, list(names)) for kind, names in keys.items() if names]
                for kind, names in asked:
                    pipe.hmget(self._hashes[kind], names)
                pipe.exists(self._inited)
                *texts, inited = await pipe.execute()
        except self._errors as exc:
            raise self._failure("reading items", exc) from exc
        items: dict[ObjectKind, dict[str, StoredText]] = {
            kind: {} for kind, _ in _KINDS
        }
        for (kind, names), found in zip(asked, texts, strict=True):
            items[kind].update(
                (key, stored_text(value))
                for key, value in zip(names, found, strict=True)
                if value is not None  # (None: not there)
            )
        return RawData(items=items, initialized=bool(inited))

    async def get(self, kind: ObjectKind, keys: Sequence[str]) -> dict[str, StoredText]:
        if not keys:
            return {}
        try:
            replies = await self._redis.hmget(self._hashes[kind], list(keys))
        except self._errors as exc:
            raise self._failure("reading items", exc) from exc
        values = cast("list[bytes | None]", replies)  # (decode_responses=False)
        return {  # (None: not there)
            key: stored_text(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    async def init(self, items: Mapping[ObjectKind, Mapping[str, EncodedItem]]) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for kind, _ in _KINDS:
                    pipe.delete(self._hashes[kind])
                    mapping: dict[FieldT, EncodableT] = {
                        key: text for key, (_, text) in items[kind].items()
                    }
                    if mapping:
                        pipe.hset(self._hashes[kind], mapping=mapping)
                # LaunchDarkly's Python SDK writes the key's own name; only
                # its existence matters to readers.
                pipe.set(self._inited, self._inited)
                await pipe.execute()
        except self._errors as exc:
            raise self._failure("writing the full data set", exc) from exc

    async def upsert(
        self, items: Sequence[tuple[ObjectKind, str, EncodedItem]]
    ) -> None:
        if not items:
            return
        try:
            for _ in range(_MAX_ATTEMPTS):
                if await self._try_upsert(items):
                    return
        except self._errors as exc:
            raise self._failure("writing changes", exc) from exc
        raise StoreFailure(
            f"writing changes failed: the stored items kept changing "
            f"({_MAX_ATTEMPTS} attempts)"
        )

    async def _try_upsert(
        self, items: Sequence[tuple[ObjectKind, str, EncodedItem]]
    ) -> bool:
        """One optimistic attempt; True when done, False on a WATCH conflict."""
        keys: dict[ObjectKind, list[str]] = {}
        for kind, key, _ in items:
            keys.setdefault(kind, [])
            if key not in keys[kind]:
                keys[kind].append(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(*(self._hashes[kind] for kind in keys))
            versions: dict[tuple[ObjectKind, str], int | None] = {}
            unusable: list[tuple[ObjectKind, str]] = []  # there, but no version
            for kind, names in keys.items():
                stored = await pipe.hmget(self._hashes[kind], names)
                for name, text in zip(names, stored, strict=True):
                    versions[kind, name] = version = stored_version(text)
                    if version is None and text is not None:
                        unusable.append((kind, name))
            winners: dict[tuple[ObjectKind, str], str] = {}
            for kind, key, (version, text) in items:
                current = versions[kind, key]
                # Same-or-older versions are ignored, as LaunchDarkly's SDKs do.
                if current is None or current < version:
                    versions[kind, key] = version
                    winners[kind, key] = text
            if not winners:
                return True
            pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            for kind in keys:
                mapping: dict[FieldT, EncodableT] = {
                    k: t for (c, k), t in winners.items() if c is kind
                }
                if mapping:
                    pipe.hset(self._hashes[kind], mapping=mapping)
            try:
                await pipe.execute()
            except self._watch_error:
                return False
        for kind, key in unusable:
            if (kind, key) in winners:
                logger.warning(
                    "Replaced the unusable stored %s %r under %s (another "
                    "writer left it so)",
                    kind.value,
                    key,
                    self._hashes[kind],
                )
        return True

    async def ping(self) -> None:
        await self.initialized()

    async def initialized(self) -> bool:
        try:
            return bool(await self._redis.exists(self._inited))
        except self._errors as exc:
            raise self._failure("checking the store", exc) from exc


@final
class RedisBigSegmentStore:
    """Big-segment memberships in Redis, in LaunchDarkly's layout (extra ``aioflags[redis]``).

    Read what LaunchDarkly's Relay Proxy writes (aioflags never writes it)::

        <prefix>:big_segments_synchronized_on       string  epoch ms of the last sync
        <prefix>:big_segment_include:<contextHash>  set     segment refs included
        <prefix>:big_segment_exclude:<contextHash>  set     segment refs excluded

    where ``<contextHash>`` is the standard base64 of the SHA-256 of the
    context key, and a segment ref is ``<segmentKey>.g<generation>``. Use it
    in ``aioflags.BigSegmentsConfig(store=...)``. Creating it does no I/O.

    Args:
        url: a redis-py URL, as for :class:`RedisStore`.
        prefix: the key prefix (the Relay Proxy's, ``launchdarkly`` by default).
        timeout: seconds to connect and for each command's reply.

    Raises:
        ConfigurationError: an invalid argument, or redis-py is not installed.

    Added in version 0.1.0.
    """

    __slots__ = ("_prefix", "_timeout", "_url")

    def __init__(
        self,
        *,
        url: str = "redis://localhost:6379/0",
        prefix: str = "launchdarkly",
        timeout: float = 5.0,
    ) -> None:
        _check_location(url, prefix, "RedisBigSegmentStore")
        if not 0 < _seconds("timeout", timeout) < math.inf:
            raise ConfigurationError(f"timeout must be > 0 and finite, got {timeout!r}")
        self._url = url
        self._prefix = prefix
        self._timeout = float(timeout)

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[_RedisBigSegmentConnection]:
        """A connection pool for one client run (internal)."""
        async with _client(self._url, self._timeout) as client:
            yield _RedisBigSegmentConnection(client, self._prefix)

    def __repr__(self) -> str:
        return f"<RedisBigSegmentStore {redact(self._url)} prefix={self._prefix!r}>"


class _RedisBigSegmentConnection:
    """Big-segment queries over one redis-py client."""

    __slots__ = ("_errors", "_prefix", "_redis")

    def __init__(self, client: Redis, prefix: str) -> None:
        from redis.exceptions import RedisError

        self._redis = client
        self._prefix = prefix
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)

    async def get_metadata(self) -> int | None:
        """The last synchronisation (epoch ms); None if Redis does not say."""
        try:
            text = await self._redis.get(f"{self._prefix}:big_segments_synchronized_on")
        except self._errors as exc:
            raise StoreFailure(
                f"reading the big-segment metadata failed: {str(exc) or type(exc).__name__}"
            ) from exc
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            return None  # unusable: treated as unknown (stale)

    async def get_membership(self, context_hash: str) -> dict[str, bool] | None:
        """Excluded refs False, then included refs True (include wins)."""
        prefix = self._prefix
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.smembers(f"{prefix}:big_segment_include:{context_hash}")
                pipe.smembers(f"{prefix}:big_segment_exclude:{context_hash}")
                included, excluded = await pipe.execute()
        except self._errors as exc:
            raise StoreFailure(
                f"reading a big-segment membership failed: "
                f"{str(exc) or type(exc).__name__}"
            ) from exc
        if not included and not excluded:
            return None
        # A ref that is not UTF-8 names no segment: it can match none.
        membership = dict.fromkeys(_refs(excluded), False)
        membership.update(dict.fromkeys(_refs(included), True))
        return membership


def _refs(values: set[bytes]) -> list[str]:
    """The segment refs of a membership set that are text (UTF-8)."""
    refs = []
    for value in values:
        text = stored_text(value)
        if isinstance(text, str):
            refs.append(text)
    return refs
