"""Big (unbounded) segments: membership from a store, an LRU per context key, status.

LaunchDarkly keeps the members of a big segment in a store (Redis, written by
the Relay Proxy), not in the segment itself. Evaluating a ``segmentMatch``
clause on such a segment needs the context key's *membership*: the segment
refs (``<segmentKey>.g<generation>``) it is included in or excluded from.

Evaluation is pure and never waits, so the lookup happens around it:

- The evaluator asks ``unbounded_member`` (``aioflags._evaluation._membership``) at the one point where an
  unbounded segment is reached. A membership in the LRU (per context key,
  ``context_cache_size`` entries, ``context_cache_time`` seconds) answers at
  once.
- In an ``await``-ed evaluation (:meth:`BigSegments.evaluate`, what the
  async client's methods use) a miss is noted in the pass (:class:`_Pass`)
  and answered for now as a store error: the evaluation runs to its end on
  a twin of the snapshot that records nothing and runs no hooks, and its
  result is dropped. The memberships it needed are fetched (one query per
  key at a time, however many evaluations want it, in this object's task
  group), and the evaluation runs again with the answers in hand: a value
  (the keys a pass needed), not an exception, says so. Each pass learns
  every key it met, so this ends; the recording evaluation runs once.
- On a miss in a synchronous evaluation (``client.snapshot()``, the blocking
  client) nothing can wait: the fetch is requested in the background and
  this evaluation answers as LaunchDarkly's SDKs do when the store fails:
  no membership (only the segment's rules can match) and ``STORE_ERROR``.

The store's status is polled on a timer (``status_poll_interval``), never
per evaluation; a membership answer takes its status (HEALTHY, STALE,
STORE_ERROR) from the last poll.
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Protocol,
    TypeAlias,
    TypeVar,
    final,
)

from aioflags._core._clock import wall_ms
from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field
from aioflags._core._logname import client_logger
from aioflags._evaluation._context import Context
from aioflags._evaluation._membership import HEALTHY, STALE, STORE_ERROR

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from contextlib import AbstractAsyncContextManager

    from anyio.abc import TaskGroup

    from aioflags._core._clock import Clock
    from aioflags._evaluation._snapshot import FlagSnapshot

# anyio is imported in the functions that use it: they run once a client
# runs, so `import aioflags` does not load it (tests/test_import.py).

__all__ = [
    "BigSegmentStore",
    "BigSegmentStoreConnection",
    "BigSegmentStoreStatus",
    "BigSegments",
    "BigSegmentsConfig",
    "StatusListeners",
    "context_hash",
]

logger = client_logger("aioflags.evaluation")

#: Seconds a store query may take before it counts as a store error.
QUERY_BOUND: Final = 5.0

#: A membership: segment ref -> included (True) or excluded (False).
Membership: TypeAlias = "Mapping[str, bool]"
#: What a query for one context key gave: its membership (None: none), and
#: whether the query failed.
_Answer: TypeAlias = "tuple[Mapping[str, bool] | None, bool]"
_FAILED: Final[_Answer] = (None, True)

T = TypeVar("T")


@final
class BigSegmentStoreStatus(Frozen):
    """The big-segment store's health, as the last status poll saw it.

    Attributes:
        available: the last metadata query succeeded.
        stale: the store's data is older than ``stale_after`` (or it never
            says when it was last synchronised): whatever keeps it current
            (the Relay Proxy) may have stopped.

    Added in version 0.1.0.
    """

    __slots__ = ("available", "stale")
    available: bool
    stale: bool

    def __init__(self, *, available: bool, stale: bool) -> None:
        set_field(self, "available", available)
        set_field(self, "stale", stale)


class BigSegmentStoreConnection(Protocol):
    """An open connection to a big-segment store; any method may raise on failure.

    Added in version 0.1.0.
    """

    async def get_metadata(self) -> int | None:
        """When the store was last synchronised (epoch milliseconds), None if unknown."""
        ...

    async def get_membership(self, context_hash: str) -> Mapping[str, bool] | None:
        """The segment refs the context with this key hash is in (True) or out of (False).

        ``context_hash`` is :func:`context_hash` of the context key. ``None``
        or an empty mapping: no membership.
        """
        ...


class BigSegmentStore(Protocol):
    """A store of big-segment memberships, e.g. ``aioflags.stores.RedisBigSegmentStore``.

    Implement it to read memberships from elsewhere: ``connect()`` returns an
    async context manager that opens a :class:`BigSegmentStoreConnection`
    when a client starts and closes it when the client stops.

    Added in version 0.1.0.
    """

    def connect(self) -> AbstractAsyncContextManager[BigSegmentStoreConnection]:
        """Open a connection, closed when the context exits."""
        ...


def _number(name: str, value: object, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    if not 0 < value < math.inf:
        raise ConfigurationError(f"{name} must be > 0 and finite, got {value!r}")
    return float(value)


@final
class BigSegmentsConfig(Frozen):
    """Where big-segment memberships come from, and how they are cached.

    Args:
        store: the store, e.g. ``aioflags.stores.RedisBigSegmentStore(url=...)``.
        context_cache_size: how many context keys' memberships are cached
            (least recently used evicted first).
        context_cache_time: seconds a cached membership is used before the
            store is asked again.
        status_poll_interval: seconds between queries of the store's
            metadata (its status).
        stale_after: the store is STALE when its last synchronisation is
            older than this many seconds.

    Raises:
        ConfigurationError: an invalid value.

    Added in version 0.1.0.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "store",
        "context_cache_size",
        "context_cache_time",
        "status_poll_interval",
        "stale_after",
    )
    __match_args__: ClassVar[tuple[str, ...]] = ("store",)
    store: BigSegmentStore
    context_cache_size: int
    context_cache_time: float
    status_poll_interval: float
    stale_after: float

    def __init__(
        self,
        store: BigSegmentStore,
        *,
        context_cache_size: int = 1000,
        context_cache_time: float = 5.0,
        status_poll_interval: float = 5.0,
        stale_after: float = 120.0,
    ) -> None:
        set_field(self, "store", store)
        set_field(self, "context_cache_size", context_cache_size)
        set_field(self, "context_cache_time", context_cache_time)
        set_field(self, "status_poll_interval", status_poll_interval)
        set_field(self, "stale_after", stale_after)
        self._validate()

    def _validate(self) -> None:
        store: Any = self.store
        if not callable(getattr(store, "connect", None)):
            raise ConfigurationError(
                "BigSegmentsConfig.store must be a big-segment store such as "
                f"aioflags.stores.RedisBigSegmentStore, got {store!r}"
            )
        _number("context_cache_size", self.context_cache_size, integer=True)
        for name in ("context_cache_time", "status_poll_interval", "stale_after"):
            _number(name, getattr(self, name))


def context_hash(key: str) -> str:
    """The store's name for a context key: base64 (standard, padded) of its SHA-256."""
    import base64  # a membership query's, not aioflags' import
    import hashlib

    return base64.b64encode(hashlib.sha256(key.encode()).digest()).decode("ascii")


class _Pass:
    """Where the passes of awaited evaluations get their memberships.

    The membership source of the snapshots those passes run on
    (:meth:`FlagSnapshot.with_memberships`); one per :class:`BigSegments`,
    used on the event loop's thread only. For the pass running now
    (:meth:`BigSegments._pass` sets both): ``known``, the answers its
    evaluation has, shared by its passes (fetched, or read from the cache
    once: later passes see the same); ``needed``, the context keys it met
    without an answer, in order, which the pass returns (while there are
    any, its result is not the evaluation's: each miss is answered as a
    store error for now).
    """

    __slots__ = ("big", "known", "needed")

    def __init__(self, big: BigSegments) -> None:
        self.big = big
        self.known: dict[str, _Answer] = {}
        self.needed: list[str] = []

    def answer(self, key: str) -> tuple[Mapping[str, bool] | None, str]:
        """``key``'s membership and status for this pass."""
        known = self.known
        got = known.get(key)
        big = self.big
        if got is None:
            got = big._cached(key)
            if got is None or big._status is None:
                if key not in self.needed:
                    self.needed.append(key)
                return None, STORE_ERROR
            known[key] = got
        membership, failed = got
        return membership, STORE_ERROR if failed else big._word()


class _Pending:
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        import anyio

        self.done = anyio.Event()
        self.answer: _Answer = _FAILED


class StatusListeners:
    """The client's big-segment status listeners (they outlive each run)."""

    __slots__ = ("listeners",)

    def __init__(self) -> None:
        self.listeners: list[Callable[[BigSegmentStoreStatus], None]] = []

    def add(
        self, listener: Callable[[BigSegmentStoreStatus], None]
    ) -> Callable[[], None]:
        self.listeners.append(listener)

        def remove() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)

        return remove

    def notify(self, status: BigSegmentStoreStatus) -> None:
        for listener in list(self.listeners):
            _call(listener, status)


class BigSegments:
    """One client run's big segments: connection, LRU, status poller, fetches."""

    __slots__ = (
        "_cache",
        "_call_soon",
        "_clock",
        "_config",
        "_connection",
        "_down_logged",
        "_inflight",
        "_listeners",
        "_passes",
        "_requested",
        "_source",
        "_started",
        "_status",
        "_tg",
        "_thread",
        "_wake",
    )

    def __init__(
        self, config: BigSegmentsConfig, clock: Clock, listeners: StatusListeners
    ) -> None:
        import anyio

        self._config = config
        self._clock = clock
        self._listeners = listeners
        # key -> (membership, expiry on the client's clock, on time.monotonic)
        self._cache: collections.OrderedDict[
            str, tuple[Mapping[str, bool] | None, float, float]
        ] = collections.OrderedDict()
        self._inflight: dict[str, _Pending] = {}
        self._status: BigSegmentStoreStatus | None = None
        #: Set once the first status poll is over, or the run ended.
        self._started = anyio.Event()
        self._connection: BigSegmentStoreConnection | None = None
        self._tg: TaskGroup | None = None
        self._thread = threading.get_ident()
        self._call_soon: Callable[..., object] | None = None
        self._down_logged = False
        #: Keys synchronous evaluations asked for (from any thread).
        self._requested: set[str] = set()
        self._wake = anyio.Event()
        #: The membership source of awaited evaluations' passes, and the
        #: snapshots they run on: the last snapshot evaluated here, and its
        #: passes' (by ``quiet``), made when first needed.
        self._source = _Pass(self)
        self._passes: tuple[FlagSnapshot, dict[bool, FlagSnapshot]] | None = None

    @property
    def status(self) -> BigSegmentStoreStatus | None:
        """The last polled status (None until the first poll is over)."""
        return self._status

    # ------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Open the store, poll its status, serve fetches; until cancelled.

        A bug or a store that cannot even be opened is logged; evaluations
        then answer STORE_ERROR. Never raises an ``Exception``.
        """
        import anyio

        try:
            self._thread = threading.get_ident()
            self._call_soon = _call_soon_threadsafe()
            async with (
                self._config.store.connect() as connection,
                anyio.create_task_group() as tg,
            ):
                self._connection = connection
                self._tg = tg
                tg.start_soon(self._poll)
                tg.start_soon(self._fetcher)
                await anyio.sleep_forever()
        except Exception as exc:
            logger.exception("The big-segment store could not be used")
            self._set_status(BigSegmentStoreStatus(available=False, stale=False), exc)
        finally:
            self._tg = None
            self._connection = None
            self._started.set()
            for pending in list(self._inflight.values()):
                pending.done.set()  # their answer says: failed

    async def _poll(self) -> None:
        interval = self._config.status_poll_interval
        while True:
            await self._poll_once()
            self._started.set()
            await self._clock.sleep(interval)

    async def _poll_once(self) -> None:
        import anyio

        connection = self._connection
        assert connection is not None
        try:
            with anyio.fail_after(QUERY_BOUND):
                synced = await connection.get_metadata()
        # BLE001: any failure of a store (ours or the application's) is a
        # store error, never an exception out of the poller.
        except Exception as exc:  # noqa: BLE001
            self._set_status(BigSegmentStoreStatus(available=False, stale=False), exc)
            return
        stale = synced is None or (
            wall_ms() - synced >= self._config.stale_after * 1000
        )
        self._set_status(BigSegmentStoreStatus(available=True, stale=stale))

    def _set_status(
        self, status: BigSegmentStoreStatus, exc: BaseException | None = None
    ) -> None:
        old = self._status
        self._status = status
        if status == old:
            return
        if not status.available:
            logger.warning(
                "The big-segment store is unavailable (%s): big segments "
                "evaluate with STORE_ERROR",
                exc,
            )
        elif old is not None and not old.available:
            logger.warning("The big-segment store is available again")
        if status.available and status.stale:
            logger.warning(
                "The big-segment store is stale: not synchronised within %g s",
                self._config.stale_after,
            )
        self._listeners.notify(status)

    # ---------------------------------------------------------------- cache
    def _cached(self, key: str, *, touch: bool = True) -> _Answer | None:
        """A fresh cached membership; ``touch``: mark it recently used.

        Only the event loop's thread touches (changes) the cache; another
        thread (the blocking client's callers) only reads it.
        """
        entry = self._cache.get(key)
        if entry is None:
            return None
        membership, expires, expires_monotonic = entry
        # The client's clock is the event loop's: another thread has none.
        expired = (
            self._clock.now() >= expires
            if touch
            else time.monotonic() >= expires_monotonic
        )
        if expired:
            if touch:
                self._cache.pop(key, None)
            return None
        if touch:
            with contextlib.suppress(KeyError):  # evicted meanwhile: still fresh
                self._cache.move_to_end(key)
        return membership, False

    def _remember(self, key: str, membership: Mapping[str, bool] | None) -> None:
        cache = self._cache
        ttl = self._config.context_cache_time
        cache[key] = (membership, self._clock.now() + ttl, time.monotonic() + ttl)
        cache.move_to_end(key)
        while len(cache) > self._config.context_cache_size:
            cache.popitem(last=False)

    # -------------------------------------------------------------- fetches
    async def fetch(self, key: str) -> _Answer:
        """``key``'s membership: cached, or queried (one query per key at a time)."""
        import anyio

        # Bounded: a store whose connect() never returns must not hang the
        # caller's evaluation (it answers STORE_ERROR instead).
        with anyio.move_on_after(QUERY_BOUND):
            await self._started.wait()
        if not self._started.is_set():
            return _FAILED
        cached = self._cached(key)
        if cached is not None:
            return cached
        pending = self._inflight.get(key) or self._spawn(key)
        if pending is None:
            return _FAILED  # not running (the client is closing)
        await pending.done.wait()
        return pending.answer

    def _spawn(self, key: str) -> _Pending | None:
        tg = self._tg
        if tg is None:
            return None
        pending = self._inflight.get(key)
        if pending is None:
            pending = self._inflight[key] = _Pending()
            tg.start_soon(self._query, key, pending)
        return pending

    async def _query(self, key: str, pending: _Pending) -> None:
        import anyio

        connection = self._connection
        try:
            assert connection is not None
            with anyio.fail_after(QUERY_BOUND):
                raw = await connection.get_membership(context_hash(key))
            membership = _normalise(raw)
            self._remember(key, membership)
            pending.answer = (membership, False)
            self._down_logged = False
        except Exception as exc:  # noqa: BLE001 (any store failure: STORE_ERROR)
            if not self._down_logged:
                self._down_logged = True
                logger.warning(
                    "Big-segment membership query failed (%s): STORE_ERROR", exc
                )
        finally:
            if self._inflight.get(key) is pending:
                del self._inflight[key]
            pending.done.set()

    def request(self, key: str) -> None:
        """Fetch ``key``'s membership in the background (any thread; never blocks)."""
        if key in self._inflight or self._tg is None:
            return
        self._requested.add(key)
        if threading.get_ident() == self._thread:
            self._wake_up()
            return
        call_soon = self._call_soon
        if call_soon is not None:
            # RuntimeError: the loop has closed; nothing to fetch for.
            with contextlib.suppress(RuntimeError):
                call_soon(self._wake_up)

    def _wake_up(self) -> None:
        self._wake.set()

    async def _fetcher(self) -> None:
        """Start the fetches requested by synchronous evaluations."""
        import anyio

        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            requested, self._requested = self._requested, set()
            for key in requested:
                if self._cached(key) is None:
                    self._spawn(key)

    # ----------------------------------------------------------- evaluation
    def answer(self, key: str) -> tuple[Mapping[str, bool] | None, str]:
        """``key``'s membership and status for a synchronous evaluation.

        The membership source of the snapshots the client hands out: the
        cache only (an awaited evaluation's passes have their own,
        :class:`_Pass`). A miss is fetched in the background and answered
        as a store error.
        """
        got = self._cached(key, touch=threading.get_ident() == self._thread)
        if got is None:
            self.request(key)
            return None, STORE_ERROR
        membership, failed = got
        return membership, STORE_ERROR if failed else self._word()

    def _word(self) -> str:
        status = self._status
        if status is None or not status.available:
            return STORE_ERROR
        return STALE if status.stale else HEALTHY

    async def evaluate(
        self,
        snapshot: FlagSnapshot,
        context: Context | None,
        run: Callable[[FlagSnapshot], T],
    ) -> T:
        """``run(snapshot)`` (one of its methods, for ``context``), fetching what it needs.

        The evaluation runs in passes over the snapshot's data composed
        with the passes' membership source (:class:`_Pass`). A pass that may
        be dropped records no analytics events and runs no hooks; it returns
        the memberships it met uncached: they are fetched and it runs again
        (evaluation is pure), until it needs none. Then the snapshot
        evaluates once with every answer in hand: its events are recorded
        and its hooks' series runs exactly once per call (a snapshot that
        does neither keeps the quiet pass's result).

        When every membership the call can ask is cached already (each key
        of ``context``'s), the snapshot evaluates at once, with those
        answers in hand: one pass, as without big segments.
        """
        known: dict[str, _Answer] = {}
        if isinstance(context, Context) and self._all_cached(context, known):
            return self._pass(snapshot, run, known, quiet=False)[0]
        while True:
            result, needed = self._pass(snapshot, run, known, quiet=True)
            if not needed:
                break
            for key in needed:
                known[key] = await self.fetch(key)
        if not snapshot.observed:
            return result
        return self._pass(snapshot, run, known, quiet=False)[0]

    def _pass(
        self,
        snapshot: FlagSnapshot,
        run: Callable[[FlagSnapshot], T],
        known: dict[str, _Answer],
        *,
        quiet: bool,
    ) -> tuple[T, list[str]]:
        """One pass of :meth:`evaluate`: its result, and the keys it needed.

        ``quiet``: no analytics events, no hooks (a pass that may be
        dropped). It runs on ``snapshot``'s data composed with the passes'
        membership source (:class:`_Pass`), made once per snapshot; the
        source holds ``known`` and the keys needed while it runs.
        """
        passes = self._passes
        if passes is None or passes[0] is not snapshot:
            passes = self._passes = (snapshot, {})
        source = self._source
        on = passes[1].get(quiet)
        if on is None:
            on = passes[1][quiet] = snapshot.with_memberships(source, quiet=quiet)
        # A pass may start inside another (a hook's evaluation whose task
        # starts eagerly): the outer pass's state is put back after it.
        outer = source.known, source.needed
        source.known = known
        needed: list[str] = []
        source.needed = needed
        try:
            return run(on), needed
        finally:
            source.known, source.needed = outer

    def _all_cached(self, context: Context, known: dict[str, _Answer]) -> bool:
        """Whether each of ``context``'s keys has a fresh cached membership (into ``known``).

        A membership is asked by a context's key (one of its parts'), so
        with all of them in ``known`` no evaluation of ``context`` can miss.
        """
        if self._status is None:
            return False
        for part in context._parts.values():
            got = self._cached(part._key)
            if got is None:
                return False
            known[part._key] = got
        return True


def _call(
    listener: Callable[[BigSegmentStoreStatus], None], status: BigSegmentStoreStatus
) -> None:
    """Call a status listener; a failing listener is logged, never raised."""
    try:
        listener(status)
    except Exception:
        logger.exception("A big-segment store status listener failed")


def _normalise(raw: Mapping[str, object] | None) -> Mapping[str, bool] | None:
    """A store's answer as a membership; values that are not booleans are dropped."""
    if not raw:
        return None
    membership = {ref: v for ref, v in raw.items() if isinstance(v, bool)}
    return membership or None


def _call_soon_threadsafe() -> Callable[..., object] | None:
    """How another thread schedules a callback on this event loop (asyncio or trio)."""
    try:
        import asyncio

        return asyncio.get_running_loop().call_soon_threadsafe
    except RuntimeError:
        pass
    try:
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    except (ImportError, RuntimeError):  # pragma: no cover - neither loop
        return None
