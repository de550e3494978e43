"""What an awaited evaluation may do before it evaluates: refresh, read through, fetch memberships.

The async client's evaluation methods evaluate the current snapshot at once,
unless the run has an :class:`EvaluationGate`:

- a :class:`Refresher`, when the persistent store's cache is off
  (``cache_ttl=0``) and the store is being served (daemon mode, or with
  sources before they deliver): the evaluation waits until what it needs
  has been read again and applied (the flag it evaluates, with the
  prerequisites and segments it reaches; the whole store for
  ``all_flags_state``), so it sees every write that finished before it
  began (concurrent evaluations share one read);
- :class:`~aioflags._datasystem._stores._lookups.StoreLookups`, when the
  store's cache is on (``cache_ttl`` > 0) and the store is being served: the
  evaluation waits for the first read, and a key the snapshot lacks is read
  through. Only evaluations of keys the snapshot lacks go through the gate
  for it (:attr:`EvaluationGate.always` is False): the others keep the
  client's straight-line path;
- big segments (:class:`~aioflags._datasystem._stores._bigsegments.BigSegments`): the
  memberships it needs are fetched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar

import anyio

from aioflags._core._logname import client_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from aioflags._evaluation._context import Context
    from aioflags._evaluation._snapshot import FlagSnapshot

    from ._bigsegments import BigSegments
    from ._lookups import StoreLookups

__all__ = ["EvaluationGate", "Refresher"]

logger = client_logger("aioflags.datasource")

#: Seconds an evaluation waits for a store read before it evaluates what it has.
REFRESH_BOUND: Final = 5.0

T = TypeVar("T")


class Refresher:
    """Store reads on demand: the uncached ("off") mode of a persistent store.

    The reader (daemon synchronizer, or the reader before the sources
    deliver) takes the requests with :meth:`take` (their number, and the
    flag keys they need), reads and applies what they need, calls
    :meth:`served` with that number, then :meth:`wait_request`. An
    evaluation calls :meth:`refresh`, which returns once a read that began
    after the call, and covered its key, has been applied (or has failed).
    It is active from the start (a request made before the reader runs is
    served by its first read) until :meth:`stop`: the reader stops it when
    it ends, and so does the end of the client's run.
    """

    __slots__ = ("_done", "_keys", "_requested", "_served", "_wake", "active")

    def __init__(self) -> None:
        self.active = True
        self._requested = 0
        self._served = 0
        # The flag keys asked since the last take(); None: the whole store.
        self._keys: set[str] | None = set()
        self._wake = anyio.Event()
        self._done = anyio.Event()

    async def refresh(self, key: str | None = None) -> None:
        """Wait until flag ``key`` (None: every flag) has been read and applied.

        Only a read that began after this call counts.
        """
        if not self.active:
            return
        if key is None:
            self._keys = None
        elif self._keys is not None:
            self._keys.add(key)
        self._requested += 1
        mine = self._requested
        self._wake.set()
        with anyio.move_on_after(REFRESH_BOUND) as scope:
            while self._unserved(mine):
                await self._done.wait()
        if scope.cancelled_caught:
            logger.warning(
                "The persistent store was not read within %g s: evaluating the "
                "data read last",
                REFRESH_BOUND,
            )

    def _unserved(self, number: int) -> bool:
        return self.active and self._served < number

    def take(self) -> tuple[int, frozenset[str] | None]:
        """What a read that begins now serves: the requests' number, their flag keys.

        The keys are those asked since the last call; None: the whole store
        (a request for every flag).
        """
        keys, self._keys = self._keys, set()
        return self._requested, None if keys is None else frozenset(keys)

    async def wait_request(self) -> None:
        """Wait until an evaluation asks for a read that has not been served."""
        while self._requested <= self._served:
            await self._wake.wait()
            self._wake = anyio.Event()

    def served(self, number: int) -> None:
        """Requests up to ``number`` are served (the read was applied, or failed)."""
        if number > self._served:
            self._served = number
        self._done.set()
        self._done = anyio.Event()

    def stop(self) -> None:
        """No reader any more: waiting evaluations go on, later ones do not wait."""
        self.active = False
        self._done.set()
        self._done = anyio.Event()


class EvaluationGate:
    """One run's steps before an awaited evaluation (see the module docstring)."""

    __slots__ = ("always", "big_segments", "lookups", "refresher", "snapshot")

    def __init__(
        self,
        snapshot: Callable[[], FlagSnapshot],
        refresher: Refresher | None,
        big_segments: BigSegments | None,
        lookups: StoreLookups | None = None,
    ) -> None:
        #: The snapshot evaluations run on, current when called (the
        #: client's evaluator's: the store's data with events and hooks).
        self.snapshot = snapshot
        self.refresher = refresher
        self.big_segments = big_segments
        self.lookups = lookups
        #: Every evaluation goes through the gate; False: only those of keys
        #: the snapshot lacks (the lookups' alone), the others may evaluate
        #: the snapshot straight away.
        self.always = refresher is not None or big_segments is not None

    def passes(self, key: str) -> bool:
        """Whether an evaluation of flag ``key`` needs nothing from this gate.

        True when the gate only serves keys the snapshot lacks (a cached
        store's lookups, :attr:`always` False) and the snapshot holds
        ``key``: the client then evaluates the snapshot at once, without a
        coroutine (holding a key means the first read is over, or the
        sources have delivered).
        """
        return not self.always and key in self.snapshot()._data.flags

    async def evaluate(
        self,
        key: str | None,
        context: Context | None,
        run: Callable[[FlagSnapshot], T],
    ) -> T:
        """``run(snapshot)`` on the snapshot current after the steps.

        The request by name: the evaluation of flag ``key`` (None: every
        flag, all-flags state) for ``context``. ``run`` calls one of the
        snapshot's methods with them, so that a snapshot's own override
        (the hooks') is what runs.
        """
        if key is not None and type(key) is not str:
            key = str.__str__(key)  # a str subclass (a StrEnum): its plain value
        refresher = self.refresher
        if refresher is not None:
            await refresher.refresh(key)  # returns at once while not active
        lookups = self.lookups
        if lookups is not None:
            await lookups.before(key, self._holds)
        snapshot = self.snapshot()
        big = self.big_segments
        if big is None:
            return run(snapshot)
        return await big.evaluate(snapshot, context, run)

    def _holds(self, key: str) -> bool:
        """Whether the current snapshot has ``key`` (a flag, or its tombstone)."""
        return key in self.snapshot()._data.flags
