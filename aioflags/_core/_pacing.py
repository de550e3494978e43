"""Pacing for long synchronous work on the event loop: yield every few milliseconds.

Ingest (parsing a poll body, applying a change set, compiling flags in the
background) runs on the event loop in slices: :class:`Pacer` is ticked once
per object and yields to the loop when a slice is used up, or at the latest
every :data:`MAX_OBJECTS` objects, whatever the clock says. The clock is read
at every object (tens of nanoseconds against the microseconds an object
costs): an object that costs a millisecond (a segment with regular
expressions, a big flag compiled) never stretches a slice by more than itself.

With ``hold_gc``, the cyclic garbage collector does not run *inside* a
slice (it is disabled at the slice's start and enabled again before each
yield, around any other wait, :meth:`Pacer.outside`, and when the work
ends: :meth:`Pacer.close`). Parsing allocates some
fifty containers an event that die with it; the collections they set off
(every 700 allocations, each young one now and then an older one) were a
quarter of the parser's time. Nothing is collected less: the counts the
collector keeps go on growing, and the first allocation after the slice
(another task's, or the next slice's) runs what is due.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, Final, TypeVar

import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable

__all__ = ["MAX_OBJECTS", "SLICE", "Pacer", "checkpoint"]

#: Seconds of work between yields to the event loop.
SLICE: Final = 0.004
#: Objects between yields at the most.
MAX_OBJECTS: Final = 512

T = TypeVar("T")
_now: Final = time.perf_counter
#: Yields to the event loop (a module attribute, so tests can count the calls).
checkpoint = anyio.lowlevel.checkpoint


class Pacer:
    """Counts objects done; :meth:`tick` yields when this slice is used up."""

    __slots__ = ("_count", "_deadline", "_held", "freeze_gc", "yields")

    def __init__(self, *, freeze_gc: bool = False, hold_gc: bool = False) -> None:
        #: ``Config.gc_freeze``: at each pause, ``gc.freeze()`` what the slice
        #: allocated, so that the collections it would trigger (each walking
        #: the whole heap) do not happen.
        self.freeze_gc = freeze_gc
        self._count = 0
        self._deadline = _now() + SLICE
        #: How many times this pacer yielded.
        self.yields = 0
        # Whether this pacer disabled the collector (only if it was enabled).
        self._held = hold_gc and gc.isenabled()
        if self._held:
            gc.disable()

    def due(self) -> bool:
        """Count one object; whether the slice is used up (then call :meth:`pause`)."""
        self._count += 1
        return self._count >= MAX_OBJECTS or _now() > self._deadline

    async def pause(self) -> None:
        """Yield to the event loop and start a new slice."""
        self.yields += 1
        if self.freeze_gc:
            gc.freeze()
        await self.outside(checkpoint())
        self.restart()

    async def outside(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` (a wait for something else) with the collector enabled.

        Any await may run other tasks: the collector is held within a
        slice only, never while the loop runs anything else.
        """
        if not self._held:
            return await awaitable
        gc.enable()
        try:
            return await awaitable
        finally:
            self._held = gc.isenabled()  # (someone else may have disabled it)
            if self._held:
                gc.disable()

    def restart(self) -> None:
        """Start a new slice (without yielding: the synchronous callers)."""
        self._count = 0
        self._deadline = _now() + SLICE

    def close(self) -> None:
        """The work is over (or failed): enable the collector if this pacer held it."""
        if self._held:
            self._held = False
            gc.enable()

    async def tick(self) -> None:
        """Count one object, yielding when the slice is used up."""
        if self.due():
            await self.pause()
