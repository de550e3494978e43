"""Provider status and events with OpenFeature semantics (status-and-events.md §2).

Guarantees, all on one event loop:

- **Single source of truth.** The status is a fold over emitted events (READY →
  READY, STALE → STALE, ERROR → ERROR or FATAL for ``PROVIDER_FATAL``,
  CONFIGURATION_CHANGED leaves it). FATAL is sticky.
- **Total order.** :meth:`EventBus.emit` is one synchronous step: update the
  status, remember the event that set it, enqueue it to every registered
  matching handler, with a monotonic sequence number.
- **Per-handler FIFO.** Each handler has its own queue and consumer task: order
  is kept, nothing is lost, a slow handler delays only itself, and an exception
  in a handler is logged and isolated.
- **Late attach replays exactly once.** Registering a handler and, if the
  status matches, enqueuing the event that set it, happen in one step.
"""

from __future__ import annotations

import enum
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias, final

import anyio

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["EventBus", "EventDetails", "Handler", "ProviderEvent", "ProviderStatus"]

logger = logging.getLogger("aioflags")


class ProviderStatus(enum.Enum):
    """The client's status (OpenFeature provider status).

    Added in version 0.1.0.
    """

    NOT_READY = "NOT_READY"
    READY = "READY"
    STALE = "STALE"
    ERROR = "ERROR"
    FATAL = "FATAL"


class ProviderEvent(enum.Enum):
    """The events the client emits (OpenFeature provider events).

    FATAL arrives as an ``ERROR`` event whose ``error_code`` is
    ``"PROVIDER_FATAL"``.

    Added in version 0.1.0.
    """

    READY = "PROVIDER_READY"
    ERROR = "PROVIDER_ERROR"
    STALE = "PROVIDER_STALE"
    CONFIGURATION_CHANGED = "PROVIDER_CONFIGURATION_CHANGED"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EventDetails:
    """What a handler receives.

    Attributes:
        event: the event.
        status: the status this event set (the status after it was applied).
        seq: a sequence number, strictly increasing per client.
        message: a human-readable description.
        error_code: for ERROR events: ``"PROVIDER_FATAL"``, ``"PROVIDER_NOT_READY"``
            or ``"GENERAL"``; otherwise ``None``.
        flags_changed: for CONFIGURATION_CHANGED, the keys of the flags whose
            value may have changed (including through segments and prerequisites).
        provider_name: always ``"aioflags"``.

    Added in version 0.1.0.
    """

    event: ProviderEvent
    status: ProviderStatus
    seq: int
    message: str = ""
    error_code: str | None = None
    flags_changed: frozenset[str] = field(default_factory=frozenset)
    provider_name: str = "aioflags"


Handler: TypeAlias = Callable[[EventDetails], "Awaitable[None] | None"]

_REPLAYED: Final = {
    ProviderEvent.READY: (ProviderStatus.READY,),
    ProviderEvent.STALE: (ProviderStatus.STALE,),
    ProviderEvent.ERROR: (ProviderStatus.ERROR, ProviderStatus.FATAL),
}


class _Subscriber:
    """A handler and, while the client runs, its own queue."""

    __slots__ = ("event", "handler", "recv", "send")

    def __init__(self, event: ProviderEvent, handler: Handler) -> None:
        self.event = event
        self.handler = handler
        self.send: MemoryObjectSendStream[EventDetails] | None = None
        self.recv: MemoryObjectReceiveStream[EventDetails] | None = None

    def open(self) -> MemoryObjectReceiveStream[EventDetails]:
        self.send, self.recv = anyio.create_memory_object_stream[EventDetails](math.inf)
        return self.recv

    def close(self) -> None:
        if self.send is not None:
            self.send.close()
            self.send = None

    def release(self) -> None:
        """Close the receiving end too, once no consumer can be running.

        A consumer task cancelled before it ever ran never entered its
        ``with recv:`` block; without this its stream would be left open.
        """
        self.close()
        if self.recv is not None:
            self.recv.close()
            self.recv = None


class EventBus:
    """Owns the status and the handlers; consumers run in the client's task group."""

    def __init__(self) -> None:
        self.status = ProviderStatus.NOT_READY
        self.last_status_event: EventDetails | None = None
        self._seq = 0
        self._subscribers: list[_Subscriber] = []
        self._tg: TaskGroup | None = None
        self._changed: anyio.Event | None = None  # created on first wait (needs a loop)

    async def wait_status(
        self, predicate: Callable[[ProviderStatus], bool]
    ) -> ProviderStatus:
        """Wait until ``predicate(status)`` holds (level-triggered: may coalesce)."""
        while not predicate(self.status):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        return self.status

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # ----------------------------------------------------------------- emit
    def emit(
        self,
        event: ProviderEvent,
        *,
        message: str = "",
        error_code: str | None = None,
        flags_changed: frozenset[str] = frozenset(),
    ) -> EventDetails | None:
        """Apply one event: status, then every matching handler's queue.

        Returns the details, or ``None`` if the event was dropped (after FATAL).
        """
        if self.status is ProviderStatus.FATAL:
            logger.debug("Dropping %s: the client is FATAL", event.name)
            return None
        if event is ProviderEvent.READY:
            self.status = ProviderStatus.READY
        elif event is ProviderEvent.STALE:
            self.status = ProviderStatus.STALE
        elif event is ProviderEvent.ERROR:
            fatal = error_code == "PROVIDER_FATAL"
            self.status = ProviderStatus.FATAL if fatal else ProviderStatus.ERROR
        self._seq += 1
        details = EventDetails(
            event=event,
            status=self.status,
            seq=self._seq,
            message=message,
            error_code=error_code,
            flags_changed=flags_changed,
        )
        if event is not ProviderEvent.CONFIGURATION_CHANGED:
            self.last_status_event = details
            self._notify()
        for sub in self._subscribers:
            if sub.event is event and sub.send is not None:
                sub.send.send_nowait(details)
        return details

    def reset(self) -> None:
        """Back to NOT_READY after shutdown (the one status the SDK infers)."""
        if self.status is not ProviderStatus.FATAL:
            self.status = ProviderStatus.NOT_READY
            self.last_status_event = None
            self._notify()

    # ------------------------------------------------------------- handlers
    def add(self, event: ProviderEvent, handler: Handler) -> None:
        """Register a handler; replay the current status's event if it matches."""
        if not isinstance(event, ProviderEvent):
            raise TypeError(f"event must be an aioflags.ProviderEvent, got {event!r}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        sub = _Subscriber(event, handler)
        self._subscribers.append(sub)
        if self._tg is not None:
            self._start(sub)

    def remove(self, event: ProviderEvent, handler: Handler) -> None:
        """Unregister a handler (events already queued for it are still delivered)."""
        for sub in self._subscribers:
            if sub.event is event and sub.handler == handler:
                self._subscribers.remove(sub)
                sub.close()
                return

    def attach(self, tg: TaskGroup) -> None:
        """Start a consumer for every handler in the client's task group."""
        self._tg = tg
        for sub in self._subscribers:
            self._start(sub)

    def detach(self) -> None:
        """Stop delivering (the task group is being cancelled); handlers persist.

        Closes every handler's queue: a consumer that is still running delivers
        what was queued, then finishes.
        """
        self._tg = None
        for sub in self._subscribers:
            sub.close()

    def release(self) -> None:
        """After the task group has exited: close every queue's receiving end."""
        self.detach()
        for sub in self._subscribers:
            sub.release()

    def _start(self, sub: _Subscriber) -> None:
        """Open the handler's queue, replay the current status, start its consumer.

        One synchronous step: no event can be emitted between the replay and
        the registration, so the handler sees every event exactly once.
        """
        assert self._tg is not None
        recv = sub.open()
        last = self.last_status_event
        if last is not None and self.status in _REPLAYED.get(sub.event, ()):
            assert sub.send is not None
            sub.send.send_nowait(last)
        self._tg.start_soon(self._consume, sub.handler, recv)

    async def _consume(
        self, handler: Handler, recv: MemoryObjectReceiveStream[EventDetails]
    ) -> None:
        with recv:
            async for details in recv:
                try:
                    result = handler(details)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception(
                        "An aioflags event handler raised; other handlers are unaffected"
                    )
