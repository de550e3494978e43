"""A change signal: every waiter re-checks its condition when anything changes.

The service's parts (the flag data, the fan-out, the recorder) say that
something changed; a test waits for what it needs (``wait_until``) instead
of sleeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Signal"]


class Signal:
    """Wakes every :meth:`wait_until` to re-check its predicate on :meth:`notify`."""

    __slots__ = ("_changed",)

    def __init__(self) -> None:
        self._changed: anyio.Event | None = None

    def notify(self) -> None:
        """Something changed."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is re-checked on every :meth:`notify`."""
        while not predicate():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
