"""Test aids for applications and for aioflags itself (no pytest import here).

- :class:`FakeClock`: a clock you advance by hand, so retry, failover and grace
  periods are tested without waiting.
- :class:`FlagServer`: a real flag service on 127.0.0.1 (FDv2 and FDv1) with
  fault injection and request/connection recording.
- :class:`FlagData` with :class:`FlagBuilder`, :class:`SegmentBuilder`,
  :func:`clause` and :func:`in_segment`: flags described in Python, served by
  an in-memory data system or by attached FlagServers.

The pytest fixtures over these live in :mod:`aioflags.pytest_plugin`.

Added in version 0.1.0.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, final

import anyio
import anyio.lowlevel

from ._testdata import FlagBuilder as FlagBuilder
from ._testdata import FlagData as FlagData
from ._testdata import SegmentBuilder as SegmentBuilder
from ._testdata import clause as clause
from ._testdata import in_segment as in_segment
from ._testserver import Fault as Fault
from ._testserver import FlagServer as FlagServer
from ._testserver import RecordedRequest as RecordedRequest

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "FakeClock",
    "Fault",
    "FlagBuilder",
    "FlagData",
    "FlagServer",
    "RecordedRequest",
    "SegmentBuilder",
    "clause",
    "in_segment",
]


@final
class FakeClock:
    """A monotonic clock that only moves when :meth:`advance` is called.

    Sleepers wake in deadline order when time passes their deadline. Pass it to
    ``Client(config, clock=...)`` to drive backoff, failover and grace periods.
    """

    __slots__ = ("_counter", "_now", "_sleeper_added", "_sleepers")

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._counter = itertools.count()
        self._sleeper_added: anyio.Event | None = None

    def now(self) -> float:
        """The current fake time in seconds."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds``."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(
            self._sleepers, (self._now + seconds, next(self._counter), event)
        )
        if self._sleeper_added is not None:
            self._sleeper_added.set()
            self._sleeper_added = None
        try:
            await event.wait()
        finally:
            event.set()  # a cancelled sleeper no longer counts as sleeping

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Wait until at least ``count`` tasks are sleeping on this clock."""
        await self._wait_until(lambda: self.sleepers >= count)

    async def wait_for_sleeper(self, *, within: float) -> None:
        """Wait until a task sleeps until at most ``within`` seconds from now.

        Use it before ``advance(within)`` so that the advance is sure to wake
        the sleep you mean (a retry backoff, say) rather than race with it.
        """
        limit = self._now + within
        await self._wait_until(
            lambda: any(d <= limit for d, _, e in self._sleepers if not e.is_set())
        )

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            if self._sleeper_added is None:
                self._sleeper_added = anyio.Event()
            await self._sleeper_added.wait()

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock."""
        return sum(1 for _, _, e in self._sleepers if not e.is_set())

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline of a sleeping task, if any."""
        live = [d for d, _, e in self._sleepers if not e.is_set()]
        return min(live) if live else None

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in order and letting them run."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, event = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            event.set()
            await anyio.wait_all_tasks_blocked()
        self._now = target
        await anyio.wait_all_tasks_blocked()
