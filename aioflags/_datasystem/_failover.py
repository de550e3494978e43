"""The synchronizers' failover: one runs at a time, and what ends its run (protocol.md §7).

:class:`Failover` runs the data system's synchronizers in turn, each under
``aclosing``. A run fails over to the next synchronizer when it stays
INITIALIZING for ``initializing_timeout`` or INTERRUPTED for
``interrupted_timeout``; a run on a fallback synchronizer returns to the
primary after ``recovery_after`` VALID; a synchronizer that ends, goes OFF
or raises is dropped for good. The timings are tracked per run, so a new
synchronizer that hangs fails over even when the previous one left the
status VALID, and they are for time without progress: while a source's
response brings ``PROGRESS_BYTES`` each window, its deadline moves on
(:class:`Headway`). What an item does (applied, reported) is the
supervisor's, handed in as ``handle``; so is the report of a source that
raised (``crashed``).
"""

from __future__ import annotations

import enum
import math
from contextlib import aclosing
from typing import TYPE_CHECKING, TypeGuard, TypeVar

from aioflags._core._clock import Timeout, before
from aioflags._core._logname import client_logger

from ._context import progress_of
from ._datatypes import SourceState, Update

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from aioflags._core._clock import Clock

    from ._config import DataSystem
    from ._context import Progress, SourceContext, SynchronizerFactory

__all__ = ["Failover", "Headway", "Outcome", "effective", "is_update", "next_item"]

logger = client_logger("aioflags.datasource")

T = TypeVar("T")


def effective(state: SourceState, current: SourceState) -> SourceState:
    """Interrupted before it was ever valid is still initializing (protocol.md §8)."""
    if state is SourceState.INTERRUPTED and current is SourceState.INITIALIZING:
        return SourceState.INITIALIZING
    return state


def is_update(item: object) -> TypeGuard[Update]:
    """Runtime guard: custom sources are user code and may yield anything."""
    return isinstance(item, Update)


class Outcome(enum.Enum):
    """How a synchronizer's run ends: what runs next."""

    FDV1 = "fdv1"
    REMOVE = "remove"
    FALLBACK = "fallback"
    RECOVER = "recover"


async def _anext(gen: AsyncIterator[T]) -> T | None:
    """The next item, ``None`` at the end."""
    try:
        return await gen.__anext__()
    except StopAsyncIteration:
        return None


async def next_item(
    gen: AsyncIterator[T],
    deadline: float | None,
    clock: Clock,
    headway: Headway | None = None,
) -> T | Timeout | None:
    """The next item, ``None`` at the end, or ``TIMEOUT`` past the deadline.

    With ``headway``, a deadline that comes while the source's response is
    arriving moves on (:meth:`Headway.later`).
    """
    if deadline is None:
        return await _anext(gen)
    later = None if headway is None else headway.later
    return await before(clock, deadline, lambda: _anext(gen), later)


class Headway:
    """A source's deadline, moved on while its response's bytes arrive (issue 95, K1).

    A big payload on a slow link may take longer than
    ``initializing_timeout``: cut there, the attempt starts over (on the
    same synchronizer, if it is the only one) and never ends. So as the
    deadline comes, it moves on by ``window`` if the run's sources received
    ``PROGRESS_BYTES`` since the last look (``_context.Progress``): the
    timeout is for time without progress. A server that trickles a byte
    now and then still trips it.
    """

    __slots__ = ("_clock", "_mark", "_progress", "until", "window")

    def __init__(self, progress: Progress, clock: Clock, window: float) -> None:
        self._progress = progress
        self._clock = clock
        self._mark = progress.mark()
        #: The length of one window (the timeout the deadline is for).
        self.window = window
        #: The deadline as moved on so far (``-inf``: not moved).
        self.until = -math.inf

    def later(self) -> float | None:
        """The deadline moved on by a window, if bytes arrived; None: it stands."""
        progress = self._progress
        if not progress.moved(self._mark):
            return None
        self._mark = progress.mark()
        self.until = self._clock.now() + self.window
        return self.until


def _deadline(
    system: DataSystem, state: SourceState, since: float, index: int
) -> tuple[float | None, Outcome]:
    if state is SourceState.INITIALIZING:
        return since + system.initializing_timeout, Outcome.FALLBACK
    if state is SourceState.INTERRUPTED:
        return since + system.interrupted_timeout, Outcome.FALLBACK
    if index != 0:
        return since + system.recovery_after, Outcome.RECOVER
    return None, Outcome.FALLBACK


class Failover:
    """The synchronizers of one data system, run in turn with failover and recovery.

    ``handle`` applies and reports one item (``Supervisor._handle``): an
    :class:`Outcome` ends the run. ``crashed`` reports a source that raised.
    """

    __slots__ = ("_clock", "_context", "_crashed", "_handle", "_system")

    def __init__(
        self,
        system: DataSystem,
        context: SourceContext,
        clock: Clock,
        handle: Callable[[Update], Awaitable[Outcome | None]],
        crashed: Callable[[str, Exception, SourceState], None],
    ) -> None:
        self._system = system
        self._context = context
        self._clock = clock
        self._handle = handle
        self._crashed = crashed

    async def run(self, factories: Sequence[SynchronizerFactory]) -> bool:
        """Run ``factories`` in turn until the FDv1 directive (True) or none is left (False)."""
        active = list(factories)
        index = 0
        while active:
            outcome = await self._run_synchronizer(active[index], index)
            if outcome is Outcome.FDV1:
                return True
            if outcome is Outcome.REMOVE:
                del active[index]
                if index >= len(active):
                    index = 0
            elif outcome is Outcome.RECOVER:
                index = 0
            else:
                index = (index + 1) % len(active)
        return False

    async def _run_synchronizer(
        self, factory: SynchronizerFactory, index: int
    ) -> Outcome:
        name = f"synchronizer {index}"
        run_state, since = SourceState.INITIALIZING, self._clock.now()
        progress = progress_of(self._context)
        headway = None
        try:
            async with aclosing(factory(self._context)) as gen:
                while True:
                    deadline, on_timeout = _deadline(
                        self._system, run_state, since, index
                    )
                    if deadline is not None and on_timeout is Outcome.FALLBACK:
                        # A failure's timeout: for time without progress.
                        if headway is None:
                            window = deadline - since
                            headway = Headway(progress, self._clock, window)
                        deadline = max(deadline, headway.until)
                    # (one item a step: the last is not held while the
                    # source waits for the next, nor its change set)
                    step = await self._step(
                        gen, deadline, name, run_state, on_timeout, headway
                    )
                    if isinstance(step, Outcome):
                        return step
                    if step is not run_state:
                        run_state, since = step, self._clock.now()
                        headway = None  # (a new state, a new window)
        except Exception as exc:  # noqa: BLE001 - crashed() logs the traceback
            self._crashed(f"Data source {name}", exc, SourceState.INTERRUPTED)
            return Outcome.REMOVE

    async def _step(
        self,
        gen: AsyncIterator[Update],
        deadline: float | None,
        name: str,
        run_state: SourceState,
        on_timeout: Outcome,
        headway: Headway | None = None,
    ) -> Outcome | SourceState:
        """Take and handle a synchronizer's next item: how its run ends, or its state now."""
        item = await next_item(gen, deadline, self._clock, headway)
        if item is None:
            logger.info("Data source %s ended", name)
            return Outcome.REMOVE
        if isinstance(item, Timeout):
            logger.warning(
                "Data source %s was %s for too long: %s",
                name,
                run_state.value,
                on_timeout.value,
            )
            return on_timeout
        if not is_update(item):
            logger.error("%s yielded %r, not an Update; ignoring it", name, item)
            return run_state
        outcome = await self._handle(item)
        if outcome is not None:
            return outcome
        return effective(item.state, run_state)
