"""Awaited evaluations of a cached store: the first read, and missing keys read through.

With a persistent store served through a cache (``cache_ttl`` > 0: daemon
mode, or with sources until they deliver), the snapshot holds what the last
full read found and evaluations cost no round trip. Two things an awaited
evaluation (``await client.variation(...)``) does first, through
:class:`StoreLookups`:

- **before the first read has been applied** (a client started without
  waiting), it waits for that read, never longer than the store's own
  timeout: it evaluates the store's data, not an empty snapshot;
- **a flag key the snapshot does not hold** is read through: the store
  reader looks it up (``HMGET``; every key asked meanwhile in one read),
  applies it if it exists (with what it needs that the snapshot lacks), and
  remembers its absence otherwise, for ``cache_ttl`` (for ever with an
  infinite cache), as LaunchDarkly's per-item cache does, for at most
  :data:`MAX_ABSENT` keys (the oldest forgotten first, as LaunchDarkly's
  ``ExpiringDict(max_len=1000)``). Concurrent evaluations of one key share
  one read; an evaluation of a key known absent waits for nothing.

An evaluation never waits longer than :data:`WAIT_TIMEOUTS` times the
store's ``timeout``: what it waits for is a chain of store operations (a full
read under way when it asks, the ``HMGET``, and for a key found the full read
that brings it with what it needs), each bounded by that timeout. A wait that
runs out is logged (WARNING) once, then at most once per
:data:`~aioflags._datasystem._stores._mode.OUTAGE_LOG_INTERVAL` with the
number of evaluations it happened to since.

The store reader (``_sources.py``) does every read and every apply, in its
own task; evaluations only ask and wait. The synchronous snapshot never
waits. Once the sources have delivered, their data is authoritative and
nothing is read through (:meth:`StoreLookups.stop`).
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Final

import anyio

from aioflags._core._logname import client_logger

from ._mode import OUTAGE_LOG_INTERVAL

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from aioflags._core._clock import Clock

__all__ = ["MAX_ABSENT", "WAIT_TIMEOUTS", "LookupMode", "StoreLookups"]

logger = client_logger("aioflags.datasource")

#: The most absent keys remembered: once there are as many, the expired ones
#: are dropped, then the oldest (typos and keys from request input are not
#: kept for ever, even with an infinite cache).
MAX_ABSENT: Final = 1000
#: An evaluation waits at most this many store timeouts: a full read under
#: way, the ``HMGET``, and for a key found the full read that brings it.
WAIT_TIMEOUTS: Final = 3


class LookupMode(enum.Enum):
    """What the store reader does for an evaluated key the snapshot lacks."""

    #: The first read is under way: evaluations wait for it.
    STARTING = "starting"
    #: The store is served: a missing key is looked up in the store.
    READ_THROUGH = "read-through"
    #: Daemon mode on a store that is not initialised yet: a missing key
    #: makes the reader read the whole store now (rather than at its next
    #: retry), unless it did so for another key since its last retry.
    RELOAD = "reload"
    #: Nothing is read through (the store is down, has lost its data, is not
    #: initialised while sources run, or the sources have delivered).
    IDLE = "idle"


class StoreLookups:
    """Between awaited evaluations and the store reader (see the module docstring).

    Evaluations call :meth:`before`. The reader calls :meth:`read` after each
    full read (what a missing key gets now; the first one ends the wait for
    it), waits with :meth:`wait_request`, takes the keys with
    :meth:`requested`, and calls :meth:`answered` once what it found is
    applied. :meth:`stop`: no reader any more (the sources delivered, or the
    run ended).
    """

    __slots__ = (
        "_absent",
        "_bound",
        "_clock",
        "_first",
        "_late",
        "_late_logged_at",
        "_mode",
        "_pending",
        "_stopped",
        "_ttl",
        "_wake",
    )

    def __init__(self, clock: Clock, ttl: float, timeout: float) -> None:
        self._clock = clock
        self._ttl = ttl  # how long an absence is believed (inf: for ever)
        self._bound = WAIT_TIMEOUTS * timeout  # the longest an evaluation waits
        self._first = anyio.Event()  # set once the first read is over
        self._mode = LookupMode.STARTING
        self._pending: dict[str, anyio.Event] = {}  # keys asked, not answered
        self._wake = anyio.Event()
        # key -> until when it is absent, oldest first (at most MAX_ABSENT)
        self._absent: dict[str, float] = {}
        self._late = 0  # waits run out since the last WARNING about them
        self._late_logged_at = -math.inf  # when that WARNING was logged
        self._stopped = False

    # ------------------------------------------------------------ evaluations
    async def before(self, key: str | None, holds: Callable[[str], bool]) -> None:
        """Wait for the first read, then read ``key`` through if the snapshot lacks it.

        ``holds(key)``: whether the current snapshot has the key (a flag or
        its tombstone). ``key`` None (all flags): the first read only. Never
        waits longer than :data:`WAIT_TIMEOUTS` store timeouts in all; never
        raises. A key known absent, like a key the snapshot holds, returns at
        once, without a cancel scope.
        """
        if self._first.is_set() and (
            key is None
            or self._mode is LookupMode.IDLE
            or holds(key)
            or self._known_absent(key)
        ):
            return  # the common cases, without a cancel scope
        with anyio.move_on_after(self._bound) as scope:
            await self._first.wait()
            if (
                key is None
                or self._mode is LookupMode.IDLE
                or holds(key)
                or self._known_absent(key)
            ):
                return
            done = self._pending.get(key)
            if done is None:  # the first to ask: later ones share its read
                done = self._pending[key] = anyio.Event()
                self._wake.set()
            await done.wait()
        if scope.cancelled_caught:
            self._log_late()

    def _known_absent(self, key: str) -> bool:
        """Whether ``key``'s absence was read and has not expired."""
        until = self._absent.get(key)
        return until is not None and (until == math.inf or self._clock.now() < until)

    def _log_late(self) -> None:
        """A wait ran out: a WARNING now, at most once per OUTAGE_LOG_INTERVAL."""
        self._late += 1
        now = self._clock.now()
        if now - self._late_logged_at < OUTAGE_LOG_INTERVAL:
            return
        logger.warning(
            "An awaited evaluation waited %g s (%d times the persistent store's "
            "timeout) for the store, then evaluated the flags held without it "
            "(%d such evaluations since the last message)",
            self._bound,
            WAIT_TIMEOUTS,
            self._late,
        )
        self._late_logged_at = now
        self._late = 0

    # ----------------------------------------------------------------- reader
    def read(self, mode: LookupMode) -> None:
        """A full read is over (applied, or failed): what missing keys get now.

        After :meth:`stop`, nothing is read through whatever a read that was
        under way then found.
        """
        self._mode = LookupMode.IDLE if self._stopped else mode
        self._first.set()
        if self._mode is LookupMode.IDLE:
            self._release(list(self._pending))
            self._wake.set()  # a reader waiting for requests looks again

    def requested(self) -> list[str]:
        """The keys evaluations are waiting for."""
        return list(self._pending)

    async def wait_request(self) -> None:
        """Wait until an evaluation asks for a key, or nothing is read through."""
        while not self._pending and self._mode is not LookupMode.IDLE:
            self._wake = anyio.Event()
            await self._wake.wait()

    def answered(
        self,
        keys: Collection[str],
        absent: Collection[str],
        seconds: float | None = None,
    ) -> None:
        """``keys`` were read and what was found applied; ``absent``: not in the store.

        An absence is believed for ``seconds``, by default the cache's TTL
        (for ever if infinite).
        """
        if absent:
            now = self._clock.now()
            ttl = self._ttl if seconds is None else seconds
            until = now + ttl if not math.isinf(ttl) else math.inf
            remembered = self._absent
            if len(remembered) + len(absent) > MAX_ABSENT:
                # Drop the expired ones first (one pass per batch), then the
                # oldest as long as there are too many.
                remembered = {k: t for k, t in remembered.items() if t > now}
                self._absent = remembered
            for key in absent:
                remembered.pop(key, None)  # the newest last
                remembered[key] = until
            while len(remembered) > MAX_ABSENT:
                del remembered[next(iter(remembered))]
        self._release(keys)

    def stop(self) -> None:
        """No reader any more: waiting evaluations go on, later ones do not wait."""
        self._stopped = True
        self.read(LookupMode.IDLE)

    def _release(self, keys: Collection[str]) -> None:
        for key in keys:
            done = self._pending.pop(key, None)
            if done is not None:
                done.set()
