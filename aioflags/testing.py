"""Test aids for applications and for aioflags itself (no pytest import here).

- :class:`FakeClock`: a clock you advance by hand, so retry, failover and grace
  periods are tested without waiting.
- :class:`FlagServer`: a real flag service on 127.0.0.1 (FDv2 and FDv1) with
  fault injection and request/connection recording; it also accepts and
  records analytics events (``/bulk``, ``/diagnostic``).
- :class:`FlagdServer`: a flagd sync server (``flagd.sync.v1`` over gRPC) on
  127.0.0.1 or a Unix socket, for ``DataSystem.flagd()``: serves flagd
  documents, pushes changes, refuses with a status code, drops streams,
  stops and starts again, and records every call (the ``flagd`` extra).
- :class:`EventLog`: the analytics events a client sent to a FlagServer.
- :class:`Limits`: every bound of what a FlagServer (and ``OFREPApp``) accepts.
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

from ._asgi._limits import Limits as Limits
from ._service._faults import Fault as Fault
from ._service._recorder import RecordedRequest as RecordedRequest
from ._service._server import FlagServer as FlagServer
from ._systems._flagd._test_server import FlagdCall as FlagdCall
from ._systems._flagd._test_server import FlagdServer as FlagdServer
from ._testing._testdata import FlagBuilder as FlagBuilder
from ._testing._testdata import FlagData as FlagData
from ._testing._testdata import SegmentBuilder as SegmentBuilder
from ._testing._testdata import clause as clause
from ._testing._testdata import in_segment as in_segment

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._client._client import Client
    from ._core._json import JSONObject

__all__ = [
    "EventLog",
    "FakeClock",
    "Fault",
    "FlagBuilder",
    "FlagData",
    "FlagServer",
    "FlagdCall",
    "FlagdServer",
    "Limits",
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

    Every wait here is a handshake, never a poll: :meth:`advance` returns
    once each sleeper it woke has run up to its next ``await``; what that
    task then waits for (a response, another task) is the test's to wait
    for, with :meth:`wait_for_sleeper` or the waits of
    :class:`FlagServer` and of the client.
    """

    __slots__ = ("_counter", "_now", "_sleeper_added", "_sleepers")

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, anyio.Event, anyio.Event]] = []
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
        wake, resumed = anyio.Event(), anyio.Event()
        heapq.heappush(
            self._sleepers, (self._now + seconds, next(self._counter), wake, resumed)
        )
        if self._sleeper_added is not None:
            self._sleeper_added.set()
            self._sleeper_added = None
        try:
            await wake.wait()
        finally:
            wake.set()  # a cancelled sleeper no longer counts as sleeping
            resumed.set()  # the handshake advance() waits for

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
            lambda: any(d <= limit for d, _, e, _ in self._sleepers if not e.is_set())
        )

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            if self._sleeper_added is None:
                self._sleeper_added = anyio.Event()
            await self._sleeper_added.wait()

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock."""
        return sum(1 for _, _, e, _ in self._sleepers if not e.is_set())

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline of a sleeping task, if any."""
        live = [d for d, _, e, _ in self._sleepers if not e.is_set()]
        return min(live) if live else None

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order.

        Tasks already scheduled run first (one pass of the event loop), so
        a timer started just before the call is counted. Each woken sleeper
        runs up to its next ``await`` before the next one wakes, and before
        this returns; a sleeper that goes back to sleep on this clock within
        the advance is woken again.
        """
        # Two checkpoints: asyncio runs ready tasks in order, so one would do;
        # trio runs each batch of ready tasks in a random order, so a task
        # scheduled before the call is sure to have run only once this task
        # has been through two batches.
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, wake, resumed = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            wake.set()
            await resumed.wait()
        self._now = target
        await anyio.lowlevel.checkpoint()


@final
class EventLog:
    """The analytics events a client sent to a :class:`FlagServer`, for assertions.

    ``await log.flush()`` makes the client send what it has buffered and
    returns every event the server has received; :meth:`of` picks one kind::

        client.track("checkout", user)
        events = await log.flush()
        assert log.of("custom")[0]["key"] == "checkout"

    The pytest plugin's ``aioflags_events`` fixture is one of these.
    """

    __slots__ = ("_client", "_server")

    def __init__(self, server: FlagServer, client: Client) -> None:
        self._server = server
        self._client = client

    @property
    def events(self) -> list[JSONObject]:
        """Every analytics event received so far, in arrival order."""
        return self._server.events

    def of(self, kind: str) -> list[JSONObject]:
        """The events of one kind: ``"feature"``, ``"custom"``, ``"summary"``..."""
        return self._server.events_of(kind)

    async def flush(self) -> list[JSONObject]:
        """Send what the client has buffered; return every event received so far."""
        await self._client.flush()
        return self._server.events

    def clear(self) -> None:
        """Forget the events received so far."""
        self._server.clear_events()
