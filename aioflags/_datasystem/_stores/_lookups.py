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
  infinite cache), as LaunchDarkly's per-item cache does. Concurrent
  evaluations of one key share one read.

The store reader (``_sources.py``) does every read and every apply, in its
own task; evaluations only ask and wait. The synchronous snapshot never
waits. Once the sources have delivered, their data is authoritative and
nothing is read through (:meth:`StoreLookups.stop`).
"""

from __future__ import annotations

import enum
import logging
import math
from typing import TYPE_CHECKING, Final

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from aioflags._core._clock import Clock

__all__ = ["LookupMode", "StoreLookups"]

logger = logging.getLogger("aioflags.datasource")

#: Absent keys remembered before expired ones are first pruned; then again
#: each time their number doubles (pruning is a bound on the work, not on the
#: keys: a key whose absence has not expired is kept).
_PRUNE_AT: Final = 1024


class LookupMode(enum.Enum):
    """What the store reader does for an evaluated key the snapshot lacks."""

    #: The first read is under way: evaluations wait for it.
    STARTING = "starting"
    #: The store is served: a missing key is looked up in the store.
    READ_THROUGH = "read-through"
    #: Daemon mode on a store that is not initialised yet: a missing key
    #: makes the reader read the whole store now (rather than at its next retry).
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
        "_mode",
        "_pending",
        "_prune_at",
        "_stopped",
        "_ttl",
        "_wake",
    )

    def __init__(self, clock: Clock, ttl: float, bound: float) -> None:
        self._clock = clock
        self._ttl = ttl  # how long an absence is believed (inf: for ever)
        self._bound = bound  # the longest an evaluation waits (the store's timeout)
        self._first = anyio.Event()  # set once the first read is over
        self._mode = LookupMode.STARTING
        self._pending: dict[str, anyio.Event] = {}  # keys asked, not answered
        self._wake = anyio.Event()
        self._absent: dict[str, float] = {}  # key -> until when it is absent
        self._prune_at = _PRUNE_AT
        self._stopped = False

    # ------------------------------------------------------------ evaluations
    async def before(self, key: str | None, holds: Callable[[str], bool]) -> None:
        """Wait for the first read, then read ``key`` through if the snapshot lacks it.

        ``holds(key)``: whether the current snapshot has the key (a flag or
        its tombstone). ``key`` None (all flags): the first read only. Never
        waits longer than the store's timeout in all; never raises.
        """
        if self._first.is_set() and (
            key is None or self._mode is LookupMode.IDLE or holds(key)
        ):
            return  # the common case, without a cancel scope
        with anyio.move_on_after(self._bound) as scope:
            await self._first.wait()
            if key is None or self._mode is LookupMode.IDLE or holds(key):
                return
            until = self._absent.get(key)
            if until is not None and self._clock.now() < until:
                return
            done = self._pending.get(key)
            if done is None:  # the first to ask: later ones share its read
                done = self._pending[key] = anyio.Event()
                self._wake.set()
            await done.wait()
        if scope.cancelled_caught:
            logger.warning(
                "The persistent store was not read within %g s (its timeout): "
                "evaluating the data read last",
                self._bound,
            )

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
            if len(self._absent) >= self._prune_at:
                self._absent = {k: t for k, t in self._absent.items() if t > now}
                self._prune_at = max(_PRUNE_AT, 2 * len(self._absent))
            ttl = self._ttl if seconds is None else seconds
            until = now + ttl if not math.isinf(ttl) else math.inf
            for key in absent:
                self._absent[key] = until
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
