"""The change fan-out: every open event stream, and the changes each is yet to send.

The SDK streams (FDv2 and FDv1) and the console pages' stream are each a
subscriber with a queue bounded by bytes (``_outbox``): a change is written
once and queued for every stream of its path; a stream whose client reads
slowly collapses its queue to one full payload, sent when it catches up.
:meth:`Fanout.serve` serves one stream as an ASGI response.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

import anyio

from aioflags._asgi._limits import ended_by_disconnect

from . import _wire as wire
from ._outbox import ABORT, CLOSE, FULL, Outbox
from ._paths import STREAMS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from starlette.types import Receive, Send

    from aioflags._asgi._signal import Signal

    from ._faults import Fault

__all__ = ["Fanout"]


@dataclass(frozen=True, slots=True)
class _Subscriber:
    """One open stream: its path, its queue, and whether it holds the console's token."""

    path: str
    outbox: Outbox
    #: A console page's stream that sent the page's token (counted apart).
    held: bool = False


@final
class Fanout:
    """The open streams, each fed the changes of its path.

    ``full(path)``: a stream's whole data as one message (what a lagging
    stream is sent instead of its queue); ``queue_bytes``: how much a
    stream may have waiting.
    """

    __slots__ = ("_full", "_ids", "_open", "_queue_bytes", "_signal", "_subscribers")

    def __init__(
        self, signal: Signal, queue_bytes: int, full: Callable[[str], bytes]
    ) -> None:
        self._signal = signal
        self._queue_bytes = queue_bytes
        self._full = full
        self._ids = itertools.count(1)
        self._subscribers: dict[int, _Subscriber] = {}
        #: The streams whose client has its first payload, by number.
        self._open: dict[int, str] = {}

    def push(self, messages: Mapping[str, bytes]) -> None:
        """Queue a change for every stream of each path (written once, shared)."""
        for subscriber in self._subscribers.values():
            message = messages.get(subscriber.path)
            if message is not None:
                subscriber.outbox.put(message)

    def push_full(self, path: str) -> None:
        """Queue the whole data for every stream of ``path`` (at most one pending)."""
        for subscriber in self._subscribers.values():
            if subscriber.path == path:
                subscriber.outbox.put_full()

    def disconnect(self, *, abort: bool = False) -> None:
        """End every open stream: cleanly, or by dropping the socket mid-body."""
        for subscriber in self._subscribers.values():
            subscriber.outbox.put_mark(ABORT if abort else CLOSE)

    def count(self, path: str, held: bool | None = None) -> int:
        """How many streams of ``path`` there are (open or opening).

        ``held``: only those that hold the console's token (True), or only
        those that do not (False).
        """
        return sum(
            1
            for s in self._subscribers.values()
            if s.path == path and (held is None or s.held is held)
        )

    def open_streams(self, path: str | None = None) -> int:
        """How many streams have their first payload (of ``path``, or SDK streams)."""
        return sum(
            1
            for p in self._open.values()
            if p == path or (path is None and p in STREAMS)
        )

    async def serve(
        self,
        path: str,
        first: bytes,
        receive: Receive,
        send: Send,
        fault: Fault | None,
        *,
        held: bool = False,
    ) -> None:
        """Serve one stream: ``first``, then every change pushed, until it ends.

        ``held``: a console page's stream that holds the page's token.

        The stream is registered before the first await: every change made
        after ``first`` was written is pushed to it. Returning without ending
        the body drops the connection mid-body (Hypercorn closes it): that is
        how an abort, a dropped slow reader and a stopping server end a
        stream; the client closing its socket ends it at once.
        """
        number = next(self._ids)
        subscriber = _Subscriber(path, Outbox(self._queue_bytes), held)
        self._subscribers[number] = subscriber
        try:
            async with ended_by_disconnect(receive):
                await self._feed(send, subscriber, number, first, fault)
        finally:
            self._subscribers.pop(number, None)
            self._open.pop(number, None)
            self._signal.notify()

    async def _feed(
        self,
        send: Send,
        subscriber: _Subscriber,
        number: int,
        first: bytes,
        fault: Fault | None,
    ) -> None:
        """Send the stream's head, first payload and queued changes; return to end it."""
        await send(wire.stream_start())
        await send(wire.stream_chunk(first))
        # Open (for wait_for_stream) once the client has its first payload.
        self._open[number] = subscriber.path
        self._signal.notify()
        if fault is not None and fault.close_after_events:
            await send(wire.stream_end())
            return
        if fault is not None and fault.abort_after_events:
            return  # drop the connection mid-body
        if fault is not None and fault.hang_after_events:
            await anyio.sleep_forever()
        while True:
            message = await subscriber.outbox.get()
            if message is CLOSE:
                await send(wire.stream_end())
                return
            if message is ABORT:
                return
            if message is FULL:
                message = self._full(subscriber.path)
            await send(wire.stream_chunk(message))
