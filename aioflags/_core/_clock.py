"""The clocks: monotonic for durations (injectable for tests), and the wall clock.

Durations are measured on the event loop's monotonic clock. The wall clock is
read in one place, :func:`wall_ms`, for what the protocols define as
wall-clock time: event ``creationDate`` values, the debug window
(``debugEventsUntilDate``) and HTTP ``Date`` headers.
"""

from __future__ import annotations

import datetime
from typing import Protocol, final

# anyio is imported in the functions that use it: they run once a client
# runs, so `import aioflags` does not load it (tests/test_import.py).

__all__ = ["Clock", "MonotonicClock", "wall_ms"]


def wall_ms() -> int:
    """Milliseconds since the epoch, UTC (never use it to measure a duration)."""
    return int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)


class Clock(Protocol):
    """Monotonic time and sleeping. ``aioflags.testing.FakeClock`` drives tests."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's time."""
        ...


@final
class MonotonicClock:
    """The event loop's clock (``anyio.current_time``)."""

    __slots__ = ()

    def now(self) -> float:
        """Seconds on the event loop's monotonic clock."""
        import anyio

        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep``."""
        import anyio

        await anyio.sleep(seconds)
