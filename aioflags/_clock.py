"""The clock the data system measures durations with (injectable for tests)."""

from __future__ import annotations

from typing import Protocol, final

import anyio

__all__ = ["Clock", "MonotonicClock"]


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
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep``."""
        await anyio.sleep(seconds)
