"""A task group for background work that spans the caller's block without wrapping it.

``async with anyio.create_task_group()`` around a caller's block turns any
exception from that block into an ``ExceptionGroup``: ``except KeyError``
around ``async with client:`` would silently stop matching. The objects that
own background work (the client, ``FlagServer``) enter this instead: the
caller's exception is caught inside the group, the group is cancelled and
exited cleanly, and the very same exception is raised again outside it, with
its traceback. Exceptions from the background tasks themselves must be
handled inside those tasks (they are bugs if they escape).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.abc import TaskGroup

__all__ = ["background_group"]


@asynccontextmanager
async def background_group(
    on_exit: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[TaskGroup]:
    """Yield a task group; on exit, await ``on_exit()`` (shielded), then cancel the group.

    ``on_exit`` is the owner's bounded shutdown (closing connections, a final
    flush); it runs whether the block ended normally, raised, or was cancelled.
    """
    caught: BaseException | None = None
    async with anyio.create_task_group() as tg:
        try:
            yield tg
        # BLE001: caught only to leave the group unwrapped; raised again below.
        except BaseException as exc:  # noqa: BLE001
            caught = exc
        finally:
            if on_exit is not None:
                with anyio.CancelScope(shield=True):
                    await on_exit()
            tg.cancel_scope.cancel()
    if caught is not None:
        raise caught
