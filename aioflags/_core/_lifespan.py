r"""A task group for background work that spans the caller's block without wrapping it.

``async with anyio.create_task_group()`` around a caller's block turns any
exception from that block into an ``ExceptionGroup``: ``except KeyError``
around ``async with client:`` would silently stop matching. The objects that
own background work (the client, ``FlagServer``) enter a :class:`Span`
instead: the caller's exception is caught inside the group, the owner's
bounded shutdown runs, the group is cancelled and exited under a shield (so an
outer cancellation cannot replace the exception on the way out), and the very
same exception is raised again outside the group, with its traceback.

Background tasks handle their own ``Exception``\\ s. A ``BaseException`` that
is not a cancellation (``KeyboardInterrupt`` delivered to a background task
under trio, ``SystemExit``) must reach the caller: a task hands it to
:meth:`Span.raise_in_host`, which cancels the caller's block and raises that
exception from ``async with``, unwrapped.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.abc import TaskGroup

# anyio is imported in the functions that use it: they run once a client
# runs, so `import aioflags` does not load it (tests/test_import.py).

__all__ = ["Span", "background_group"]


@final
class Span:
    """The task group of one ``async with`` block, and what must leave it."""

    __slots__ = ("_forwarded", "tg")

    def __init__(self, tg: TaskGroup) -> None:
        self.tg = tg
        self._forwarded: BaseException | None = None

    def raise_in_host(self, exc: BaseException) -> None:
        """Make ``exc`` (a background task's ``KeyboardInterrupt``...) leave the block."""
        if self._forwarded is None:
            self._forwarded = exc
        self.tg.cancel_scope.cancel()


@asynccontextmanager
async def background_group(
    on_exit: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Span]:
    """Yield a :class:`Span`; on exit, ``await on_exit()`` (shielded), then cancel the group.

    ``on_exit`` is the owner's bounded shutdown (stopping its tasks, closing
    connections); it runs whether the block ended normally, raised, or was
    cancelled.
    """
    import anyio

    caught: BaseException | None = None
    span: Span | None = None
    with anyio.CancelScope() as guard:
        async with anyio.create_task_group() as tg:
            span = Span(tg)
            try:
                yield span
            # BLE001: caught only to leave the group unwrapped; raised again below.
            except BaseException as exc:  # noqa: BLE001
                caught = exc
                guard.shield = True  # nothing may replace it on the way out
            finally:
                if on_exit is not None:
                    with anyio.CancelScope(shield=True):
                        await on_exit()
                tg.cancel_scope.cancel()
    forwarded = span._forwarded if span is not None else None
    if forwarded is not None:
        if caught is not None and forwarded is not caught:
            forwarded.__context__ = caught
        raise forwarded
    if caught is not None:
        raise caught
