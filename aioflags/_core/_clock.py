"""The clocks: monotonic for durations (injectable for tests), and the wall clock.

Durations are measured on the event loop's monotonic clock. The wall clock is
read in one place, :func:`wall_ms`, for what the protocols define as
wall-clock time: event ``creationDate`` values, the debug window
(``debugEventsUntilDate``) and HTTP ``Date`` headers.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Final, Protocol, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

# anyio is imported in the functions that use it: they run once a client
# runs, so `import aioflags` does not load it (tests/test_import.py).

__all__ = ["TIMEOUT", "Clock", "MonotonicClock", "Timeout", "before", "wall_ms"]

T = TypeVar("T")


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


@final
class Timeout:
    """Marker: a clock passed the deadline before what was awaited came (:func:`before`)."""

    __slots__ = ()


TIMEOUT: Final = Timeout()


async def before(
    clock: Clock,
    deadline: float,
    get: Callable[[], Awaitable[T]],
    later: Callable[[], float | None] | None = None,
) -> T | Timeout:
    """What ``get()`` gives, or :data:`TIMEOUT` once ``clock`` reaches ``deadline``.

    ``get()`` is awaited in the caller's task (a timer task beside it
    cancels it at the deadline), and what it raises is raised as it is,
    not wrapped in a group. A deadline already passed is :data:`TIMEOUT`
    at once. On ``clock``'s time, so that a ``FakeClock`` drives it.
    ``later``, asked as the deadline comes, may give a later one to wait
    for instead (``get()`` is making progress); None: it is the deadline.
    """
    import anyio

    remaining = deadline - clock.now()
    if remaining <= 0:
        return TIMEOUT
    result: T | Timeout = TIMEOUT
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def timer() -> None:
            wait = remaining
            while True:
                await clock.sleep(wait)
                moved = None if later is None else later()
                if moved is None or moved <= clock.now():
                    break
                wait = moved - clock.now()
            tg.cancel_scope.cancel()

        tg.start_soon(timer)
        try:
            result = await get()
        except Exception as exc:  # noqa: BLE001 - re-raised below, unwrapped
            failure = exc  # raised here, the group would wrap it in a group
        tg.cancel_scope.cancel()
    if failure is not None:
        try:
            raise failure
        finally:
            del failure
    return result
