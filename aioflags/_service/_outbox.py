"""A stream's messages waiting for its client, bounded by bytes.

Each open stream (an SDK's, a console page's) has an :class:`Outbox`: the
server puts every change in it, the stream's task takes them out as the
client reads. A client that stops reading would make the queue grow with
every change; past its limit of bytes waiting (``Limits.stream_queue_bytes``), the
outbox forgets them all and holds one mark instead, :data:`FULL`: "send the
whole data as it is when you get there". The stream then catches up with
one full payload, whatever it missed, and nothing more is queued behind the
mark (the full payload will carry it). A console page's stream only ever
holds the mark: its message *is* the whole state.

The messages are bytes made once per change and shared by every outbox, so
streams that lag together hold one copy, not one each.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from aioflags._asgi._signal import Signal

__all__ = ["ABORT", "CLOSE", "FULL", "Outbox"]

# Marks (compared by identity): end the stream cleanly, drop it mid-body, or
# send the whole data as it is when the mark is taken.
CLOSE: Final = b"\x00close"
ABORT: Final = b"\x00abort"
FULL: Final = b"\x00full"


class Outbox:
    """One stream's queue: messages and marks, at most ``limit`` bytes of messages."""

    __slots__ = ("_bytes", "_full", "_items", "_limit", "_put", "collapsed")

    def __init__(self, limit: int) -> None:
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._limit = limit
        #: :data:`FULL` is waiting: later messages are carried by it.
        self._full = False
        self._put = Signal()
        #: How many times the queue collapsed to a full payload.
        self.collapsed = 0

    @property
    def queued_bytes(self) -> int:
        """Bytes of messages waiting (marks count nothing)."""
        return self._bytes

    def put(self, message: bytes) -> None:
        """Queue one change; past the limit, every message waiting becomes :data:`FULL`."""
        if self._full:
            return  # the full payload to come carries this change too
        self._items.append(message)
        self._bytes += len(message)
        if self._bytes > self._limit:
            self._items = deque(m for m in self._items if m is CLOSE or m is ABORT)
            self._bytes = 0
            self.collapsed += 1
            self.put_full()
        self._put.notify()

    def put_full(self) -> None:
        """Queue :data:`FULL` unless it is waiting already."""
        if not self._full:
            self._full = True
            self._items.append(FULL)
            self._put.notify()

    def put_mark(self, mark: bytes) -> None:
        """Queue :data:`CLOSE` or :data:`ABORT`."""
        self._items.append(mark)
        self._put.notify()

    async def get(self) -> bytes:
        """The next message or mark, waiting for one."""
        await self._put.wait_until(lambda: bool(self._items))
        item = self._items.popleft()
        if item is FULL:
            self._full = False  # the whole data is written now: later changes queue
        elif item is not CLOSE and item is not ABORT:
            self._bytes -= len(item)
        return item
