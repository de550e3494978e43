"""Provider status and events with OpenFeature semantics (status-and-events.md §2).

Guarantees, all on one event loop:

- **Single source of truth.** The status is a fold over emitted events (READY →
  READY, STALE → STALE, ERROR → ERROR or FATAL for ``PROVIDER_FATAL``,
  CONFIGURATION_CHANGED leaves it). FATAL is sticky.
- **Total order.** :meth:`EventBus.emit` is one synchronous step: update the
  status, remember the event that set it, enqueue it to every registered
  matching handler, with a monotonic sequence number.
- **Per-handler FIFO.** Each handler has its own queue: order is kept, nothing
  is lost, a slow handler delays only itself, and an exception in a handler is
  logged and isolated. An idle handler costs no task: one dispatcher delivers,
  and an async handler gets a task only while its result is being awaited.
- **Late attach replays exactly once.** Registering a handler and, if the
  status matches, enqueuing the event that set it, happen in one step.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeAlias, TypeGuard, final

from aioflags._core._frozen import Frozen, set_field
from aioflags._core._logname import client_logger

if TYPE_CHECKING:
    import anyio
    from anyio.abc import TaskGroup

# anyio is imported in the functions that use it: they run once a client
# runs, so `import aioflags` does not load it (tests/test_import.py).

__all__ = ["EventBus", "EventDetails", "Handler", "ProviderEvent", "ProviderStatus"]

logger = client_logger("aioflags")


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
class EventDetails(Frozen):
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

    __slots__ = (  # noqa: RUF023 - fields in order
        "event",
        "status",
        "seq",
        "message",
        "error_code",
        "flags_changed",
        "provider_name",
    )
    event: ProviderEvent
    status: ProviderStatus
    seq: int
    message: str
    error_code: str | None
    flags_changed: frozenset[str]
    provider_name: str

    def __init__(
        self,
        *,
        event: ProviderEvent,
        status: ProviderStatus,
        seq: int,
        message: str = "",
        error_code: str | None = None,
        flags_changed: frozenset[str] = frozenset(),
        provider_name: str = "aioflags",
    ) -> None:
        set_field(self, "event", event)
        set_field(self, "status", status)
        set_field(self, "seq", seq)
        set_field(self, "message", message)
        set_field(self, "error_code", error_code)
        set_field(self, "flags_changed", flags_changed)
        set_field(self, "provider_name", provider_name)


Handler: TypeAlias = Callable[[EventDetails], "Awaitable[None] | None"]


async def _checkpoint() -> None:
    # anyio.lowlevel (and the dataclasses it imports) once events flow, not
    # with aioflags.
    from anyio.lowlevel import checkpoint

    await checkpoint()


def _awaitable(result: object) -> TypeGuard[Awaitable[None]]:
    """Whether a handler's result must be awaited (``inspect.isawaitable``)."""
    import inspect  # an async handler's first event, not aioflags' import

    return inspect.isawaitable(result)


_REPLAYED: Final = {
    ProviderEvent.READY: (ProviderStatus.READY,),
    ProviderEvent.STALE: (ProviderStatus.STALE,),
    ProviderEvent.ERROR: (ProviderStatus.ERROR, ProviderStatus.FATAL),
}
_BATCH: Final = 256  # handler calls between the dispatcher's yields to the loop
_HANDLER_RAISED: Final = (
    "An aioflags event handler raised; other handlers are unaffected"
)


class _Subscriber:
    """A handler and, while an async delivery to it runs, the events it still owes."""

    __slots__ = ("draining", "event", "handler", "queue", "removed")

    def __init__(self, event: ProviderEvent, handler: Handler) -> None:
        self.event = event
        self.handler = handler
        self.queue: deque[EventDetails] = deque()
        self.draining = False  # a task is awaiting this handler's result
        self.removed = False  # unregistered: receives nothing more

    def call(self, details: EventDetails) -> object:
        return self.handler(details)


class EventBus:
    """Owns the status and the handlers; delivery runs in the client's task group.

    Delivery costs no task per handler: one dispatcher task calls handlers in
    turn, yielding to the event loop every ``_BATCH`` calls so that thousands
    of handlers never stall it. A handler that returns an awaitable gets a task
    of its own only while it has work: the task awaits the result, then
    delivers that handler's further queued events and ends. So a slow handler
    delays only itself, and each handler still sees its events in order.
    """

    def __init__(self) -> None:
        self.status = ProviderStatus.NOT_READY
        self.last_status_event: EventDetails | None = None
        self._seq = 0
        self._subscribers: dict[ProviderEvent, dict[_Subscriber, None]] = {
            event: {} for event in ProviderEvent
        }
        # What the dispatcher still has to deliver, in emit order: each event
        # with the handlers registered when it was emitted (or one, a replay).
        self._pending: deque[tuple[EventDetails, tuple[_Subscriber, ...]]] = deque()
        self._tg: TaskGroup | None = None
        self._wake: anyio.Event | None = None
        self._closing = False
        self._closed = False  # the client is closing: its status stays NOT_READY
        self._delivery_tasks: set[int] = set()  # the dispatcher's and drains' ids
        #: The cancel scope around each drain's await of a handler, by task id:
        #: a handler that closes the client is shielded in it (let_finish).
        self._awaiting: dict[int, anyio.CancelScope] = {}
        #: One event per waiting task, set when the status changes: each is
        #: made by its waiter, on the waiter's loop, and dropped when that
        #: wait ends (a client may run on one loop, then on another).
        self._waiters: list[anyio.Event] = []
        #: Where a handler's BaseException (KeyboardInterrupt...) goes: the
        #: client hands it to the caller's task. ``None``: raised in place.
        self.forward: Callable[[BaseException], None] | None = None
        #: Handler calls made by the dispatcher since it last yielded (for tests).
        self.calls_since_yield = 0

    async def wait_status(
        self, predicate: Callable[[ProviderStatus], bool]
    ) -> ProviderStatus:
        """Wait until ``predicate(status)`` holds (level-triggered: may coalesce)."""
        import anyio

        while not predicate(self.status):
            changed = anyio.Event()
            self._waiters.append(changed)
            try:
                await changed.wait()
            finally:
                if changed in self._waiters:  # cancelled before it was set
                    self._waiters.remove(changed)
        return self.status

    async def wait_delivered(self) -> None:
        """Wait until every event emitted so far has been handed to its handlers.

        A handshake, not a poll: a marker is queued behind what is pending, and
        delivery is in order, so when the marker is reached every earlier
        event has been passed to each handler (an async handler's awaitable
        has been started or queued behind its earlier ones). Only while the
        bus is attached.
        """
        import anyio

        reached = anyio.Event()
        marker = _Subscriber(ProviderEvent.READY, lambda _: reached.set())
        self._push(
            EventDetails(event=ProviderEvent.READY, status=self.status, seq=0),
            (marker,),
        )
        await reached.wait()

    def wake(self) -> None:
        """Wake every status wait to look again (the client's run has ended)."""
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for changed in waiters:
            changed.set()

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
        if self._closed:
            logger.debug("Dropping %s: the client is closing", event.name)
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
        if self._tg is not None and not self._closing:
            subs = self._subscribers[event]
            if subs:
                self._push(details, tuple(subs))
        return details

    def reset(self) -> None:
        """Back to NOT_READY after shutdown (the one status the SDK infers)."""
        self._closed = False
        if self.status is not ProviderStatus.FATAL:
            self.status = ProviderStatus.NOT_READY
            self.last_status_event = None
            self._notify()

    def close(self) -> None:
        """The client is closing: NOT_READY now, and no status until :meth:`reset`.

        For a close requested from inside the client (a handler), which
        returns before the run has ended: what the ending run still reports
        must not turn the status back from NOT_READY.
        """
        self.reset()
        self._closed = True

    def let_finish(self, tasks: list[int], bound: float) -> None:
        """Shield the handler that one of ``tasks`` awaits, for ``bound`` seconds.

        The handler asked the client to close: it runs on to its end (or
        until ``bound`` passes) while the rest of the client stops.
        """
        import anyio

        for task in tasks:
            scope = self._awaiting.get(task)
            if scope is not None:
                scope.shield = True
                scope.deadline = min(scope.deadline, anyio.current_time() + bound)
                return

    # ------------------------------------------------------------- handlers
    def add(self, event: ProviderEvent, handler: Handler) -> _Subscriber:
        """Register a handler; replay the current status's event if it matches.

        Registration and replay are one synchronous step: no event can be
        emitted between them, so the handler sees every event exactly once.
        Returns a token for :meth:`discard`.
        """
        if not isinstance(event, ProviderEvent):
            raise TypeError(f"event must be an aioflags.ProviderEvent, got {event!r}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        sub = _Subscriber(event, handler)
        self._subscribers[event][sub] = None
        if self._tg is not None and not self._closing:
            self._replay(sub)
        return sub

    def remove(self, event: ProviderEvent, handler: Handler) -> None:
        """Unregister a handler; it receives nothing more, not even what is queued."""
        for sub in self._subscribers[event]:
            if sub.handler == handler:
                self.discard(sub)
                return

    def discard(self, sub: _Subscriber) -> None:
        """Unregister the handler behind a token from :meth:`add`, in O(1)."""
        sub.removed = True
        sub.queue.clear()
        self._subscribers[sub.event].pop(sub, None)

    def _replay(self, sub: _Subscriber) -> None:
        last = self.last_status_event
        if last is not None and self.status in _REPLAYED.get(sub.event, ()):
            self._push(last, (sub,))

    def _push(self, details: EventDetails, subs: tuple[_Subscriber, ...]) -> None:
        self._pending.append((details, subs))
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------- delivery
    def attach(self, tg: TaskGroup) -> None:
        """Start delivering: replay to every handler, start the dispatcher in ``tg``."""
        self._tg = tg
        self._closing = False
        for subs in self._subscribers.values():
            for sub in subs:
                self._replay(sub)
        tg.start_soon(self._dispatch)

    def detach(self) -> None:
        """Stop accepting events; the dispatcher delivers what is queued, then ends.

        (At the client's shutdown the task group is cancelled first, so what is
        still queued then is dropped.) Handlers persist for the next :meth:`attach`.
        """
        self._closing = True
        if self._wake is not None:
            self._wake.set()

    def release(self) -> None:
        """After the task group has exited: drop what was never delivered."""
        self.detach()
        self._forget_delivery()

    def _forget_delivery(self) -> None:
        self._tg = None
        self._wake = None
        self._delivery_tasks.clear()
        self._pending.clear()
        for subs in self._subscribers.values():
            for sub in subs:
                sub.queue.clear()
                sub.draining = False

    def after_fork(self) -> None:
        """In a forked child: forget the parent's delivery, loop and status.

        Only references are dropped: the parent's loop and events must not be
        touched here (the fork may have happened on any thread). Handlers
        persist; FATAL stays FATAL (an invalid key is invalid here too).
        """
        self._closing = True
        self._forget_delivery()
        self._waiters = []
        if self.status is not ProviderStatus.FATAL:
            self.status = ProviderStatus.NOT_READY
            self.last_status_event = None

    def in_delivery_task(self) -> bool:
        """Whether the current task is delivering events (running a handler)."""
        import anyio

        return anyio.get_current_task().id in self._delivery_tasks

    async def _dispatch(self) -> None:
        import anyio

        me = anyio.get_current_task().id
        self._delivery_tasks.add(me)
        pending = self._pending
        try:
            while True:
                while pending:
                    details, subs = pending.popleft()
                    for sub in subs:
                        if sub.removed:
                            continue
                        if sub.draining:  # its task delivers, after what it owes
                            sub.queue.append(details)
                        else:
                            self._deliver(sub, details)
                        await self._count_call()
                if self._closing:
                    return
                self._wake = anyio.Event()
                await self._wake.wait()
                self._wake = None
                self.calls_since_yield = 0
        finally:
            self._delivery_tasks.discard(me)

    async def _count_call(self) -> None:
        self.calls_since_yield += 1
        if self.calls_since_yield >= _BATCH:
            self.calls_since_yield = 0
            await _checkpoint()

    def _deliver(self, sub: _Subscriber, details: EventDetails) -> None:
        """Call the handler; if it returns an awaitable, a task awaits it."""
        try:
            result = sub.call(details)
        except Exception:
            logger.exception(_HANDLER_RAISED)
            return
        # BLE001: KeyboardInterrupt, SystemExit... belong to the application.
        except BaseException as exc:  # noqa: BLE001
            self._forward(exc)
            return
        if result is not None and _awaitable(result):
            sub.draining = True
            assert self._tg is not None
            self._tg.start_soon(self._drain, sub, result)

    def _forward(self, exc: BaseException) -> None:
        """A handler raised a BaseException: it belongs to the application."""
        if self.forward is None:
            raise exc
        self.forward(exc)

    async def _drain(self, sub: _Subscriber, pending: Awaitable[None]) -> None:
        """Await the handler's result, then deliver the events it owes, in order."""
        import anyio

        me = anyio.get_current_task().id
        self._delivery_tasks.add(me)
        cancelled = anyio.get_cancelled_exc_class()
        try:
            while True:
                try:
                    with anyio.CancelScope() as awaiting:
                        self._awaiting[me] = awaiting
                        try:
                            await pending
                        finally:
                            del self._awaiting[me]
                    if awaiting.cancelled_caught:  # shielded by let_finish()
                        logger.warning(
                            "An aioflags event handler that closed the client did "
                            "not finish within its bound: it was cancelled"
                        )
                except cancelled:
                    # Ours (the client is closing) arrives again at the next
                    # checkpoint; a foreign one (the handler awaited a future
                    # that something else cancelled) is the handler's failure.
                    await _checkpoint()
                    logger.error("%s: it was cancelled from outside", _HANDLER_RAISED)
                except Exception:
                    logger.exception(_HANDLER_RAISED)
                # BLE001: KeyboardInterrupt, SystemExit... belong to the application.
                except BaseException as exc:  # noqa: BLE001
                    self._forward(exc)
                    return
                while True:
                    if not sub.queue or sub.removed:
                        return
                    details = sub.queue.popleft()
                    try:
                        result = sub.call(details)
                    except Exception:
                        logger.exception(_HANDLER_RAISED)
                        continue
                    except BaseException as exc:  # noqa: BLE001 - as above
                        self._forward(exc)
                        return
                    finally:
                        await self._count_call()
                    if result is not None and _awaitable(result):
                        pending = result
                        break
        finally:
            sub.draining = False
            self._delivery_tasks.discard(me)
