"""Flag value change listeners: one flag, one context, old and new value."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, final

from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.streams.memory import MemoryObjectReceiveStream

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._snapshot import FlagSnapshot

    from ._events import EventDetails

# anyio is imported in the functions that use it: they run once a client
# runs, so `import aioflags` does not load it (tests/test_import.py).

__all__ = ["FlagValueChange", "ValueWatcher", "value_changes"]


@final
class FlagValueChange(Frozen):
    """A flag's value for one context changed.

    Added in version 0.1.0.
    """

    __slots__ = ("key", "old_value", "new_value")  # noqa: RUF023 - fields in order
    key: str
    old_value: JSONValue
    new_value: JSONValue

    def __init__(self, *, key: str, old_value: JSONValue, new_value: JSONValue) -> None:
        set_field(self, "key", key)
        set_field(self, "old_value", old_value)
        set_field(self, "new_value", new_value)


class ValueWatcher:
    """A CONFIGURATION_CHANGED handler that re-evaluates one flag for one context."""

    def __init__(
        self,
        snapshot: Callable[[], FlagSnapshot],
        key: str,
        context: Context,
        default: JSONValue,
        handler: Callable[[FlagValueChange], Awaitable[None] | None],
    ) -> None:
        self._snapshot = snapshot
        self._key = key
        self._context = context
        self._default = default
        self._handler = handler
        self._value = snapshot().variation(key, context, default)

    def __call__(self, details: EventDetails) -> Awaitable[None] | None:
        # Sync, so that watchers of other flags cost the dispatcher a set
        # lookup and no task; the user's handler may still be async.
        if self._key not in details.flags_changed:
            return None
        new = self._snapshot().variation(self._key, self._context, self._default)
        if new == self._value:
            return None
        change = FlagValueChange(key=self._key, old_value=self._value, new_value=new)
        self._value = new
        return self._handler(change)


@asynccontextmanager
async def value_changes(
    add: Callable[[Callable[[FlagValueChange], None]], Callable[[], None]],
) -> AsyncIterator[MemoryObjectReceiveStream[FlagValueChange]]:
    """An async iterator of changes, registered for the ``async with`` block."""
    import anyio

    send, recv = anyio.create_memory_object_stream[FlagValueChange](math.inf)
    remove = add(send.send_nowait)
    try:
        with send, recv:
            yield recv
    finally:
        remove()
