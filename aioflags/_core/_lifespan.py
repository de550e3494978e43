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

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from anyio import CancelScope
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


@final
class background_group:
    """Enter to get a :class:`Span`; on exit, ``await on_exit()`` (shielded), then cancel the group.

    ``on_exit`` is the owner's bounded shutdown (stopping its tasks, closing
    connections); it runs whether the block ended normally, raised, or was
    cancelled.

    A class, not an async generator: an event loop that ends while the
    block is open (an ``asyncio.run()`` that returned without leaving
    ``async with client:``) finalises the async generators still open, from
    a task of its own, and exiting this group's cancel scopes from another
    task fails with a screenful of tracebacks. A class leaves the loop
    nothing to finalise: the owner sees its tasks cancelled and says what
    happened (the client does, once).
    """

    __slots__ = ("_guard", "_on_exit", "_span", "_stack")

    def __init__(self, on_exit: Callable[[], Awaitable[None]] | None = None) -> None:
        self._on_exit = on_exit
        self._stack: AsyncExitStack | None = None
        self._guard: CancelScope | None = None
        self._span: Span | None = None

    async def __aenter__(self) -> Span:
        import anyio

        stack = AsyncExitStack()
        guard = stack.enter_context(anyio.CancelScope())
        try:
            tg = await stack.enter_async_context(anyio.create_task_group())
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._stack, self._guard = stack, guard
        self._span = span = Span(tg)
        return span

    @property
    def forwarded(self) -> BaseException | None:
        """A background task's ``BaseException`` that is to leave the block (if any)."""
        return None if self._span is None else self._span._forwarded

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        import anyio

        stack, guard, span = self._stack, self._guard, self._span
        assert stack is not None
        assert guard is not None
        assert span is not None
        if exc is not None:
            # Caught inside the group (it never sees it, so never wraps it),
            # and nothing may replace it on the way out.
            guard.shield = True
        try:
            try:
                if self._on_exit is not None:
                    with anyio.CancelScope(shield=True):
                        await self._on_exit()
            finally:
                span.tg.cancel_scope.cancel()
        except BaseException as error:
            if not await stack.__aexit__(type(error), error, error.__traceback__):
                raise
        else:
            await stack.__aexit__(None, None, None)
        forwarded = span._forwarded
        if forwarded is not None:
            if exc is not None and forwarded is not exc:
                forwarded.__context__ = exc
            raise forwarded
        return False  # the caller's exception, if any, leaves as it is
