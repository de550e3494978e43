"""Scripted in-memory sources and a recording listener for supervisor tests."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Callable
from typing import Any, Generic, TypeVar

import anyio
import httpx

from aioflags import DataSourceStatus, SourceState
from aioflags._client._config import Config
from aioflags.sources import (
    Basis,
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    Selector,
    SourceContext,
    Update,
)
from aioflags.testing import FakeClock

T = TypeVar("T")
#: Every Scripted source made by a test; tests/conftest.py closes them afterwards.
OPEN: list[Scripted[object]] = []


class _Told:
    """Wakes waiters each time something changed; a wait re-checks its predicate."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self, predicate: Callable[[], bool], what: str) -> None:
        try:
            with anyio.fail_after(30):  # a guard with a message, not a timing
                while not predicate():
                    await self._event.wait()
        except TimeoutError:  # pragma: no cover - a test bug
            raise AssertionError(f"never {what}") from None


class Scripted(Generic[T]):
    """A source factory: each run's generator yields what the test `put`s.

    Every wait is a handshake: `put` returns once the consumer has taken the
    item and asked for the next one (or closed the source), `wait_started` /
    `wait_ended` once a run has started / run its ``finally``. `started_at`
    records the fake time of each start, so "not before 10 s" is asserted
    as a fact rather than by waiting for nothing to happen.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._send, self._recv = anyio.create_memory_object_stream[T | BaseException](
            100
        )
        self.starts = 0
        self.finallies = 0
        self.active = False
        self.contexts: list[SourceContext] = []
        self.started_at: list[float] = []
        self._sent = 0
        self._consumed = 0
        self._told = _Told()
        OPEN.append(self)  # type: ignore[arg-type]

    def __call__(self, context: SourceContext) -> AsyncGenerator[T, None]:
        self.contexts.append(context)
        return self._run(context)

    async def _run(self, context: SourceContext) -> AsyncGenerator[T, None]:
        self.starts += 1
        self.started_at.append(context.clock.now())
        self.active = True
        self._told.notify()
        try:
            async for item in self._recv:
                try:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                finally:
                    self._consumed += 1
                    self._told.notify()
        finally:
            self.active = False
            self.finallies += 1
            self._told.notify()

    async def _wait(self, predicate: Callable[[], bool], what: str) -> None:
        await self._told.wait(predicate, f"{self.name}: {what}")

    async def put(self, item: T | BaseException) -> None:
        """Hand `item` to the running source; return once it was consumed."""
        await self._send.send(item)
        self._sent += 1
        sent = self._sent
        await self._wait(lambda: self._consumed >= sent, f"consumed item {sent}")

    async def wait_started(self, count: int = 1) -> None:
        await self._wait(lambda: self.starts >= count, f"started {count} time(s)")

    async def wait_ended(self, count: int = 1) -> None:
        await self._wait(lambda: self.finallies >= count, f"ended {count} time(s)")

    def close(self) -> None:
        self._send.close()
        self._recv.close()


class Ended:
    """A source factory whose generator ends at once (after yielding `items`)."""

    def __init__(self, *items: object) -> None:
        self.items = items
        self.starts = 0

    def __call__(self, context: SourceContext) -> AsyncGenerator[Any, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[Any, None]:
        self.starts += 1
        for item in self.items:
            yield item


class Recorder:
    """A DataSystemListener that records what it is told."""

    def __init__(self) -> None:
        self.statuses: list[DataSourceStatus] = []
        self.changes: list[frozenset[str]] = []
        self._told = _Told()

    def data_source_status(self, status: DataSourceStatus) -> None:
        self.statuses.append(status)
        self._told.notify()

    def data_changed(self, flags: frozenset[str], origin: str | None = None) -> None:
        self.changes.append(flags)
        self._told.notify()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate` holds, re-checked each time the listener is told."""
        await self._told.wait(predicate, "told what was waited for")

    @property
    def states(self) -> list[SourceState]:
        return [s.state for s in self.statuses]


def flag_json(key: str, value: object = True, version: int = 1) -> dict[str, object]:
    return {
        "key": key,
        "version": version,
        "on": True,
        "variations": [value],
        "fallthrough": {"variation": 0},
    }


def put(key: str, value: object = True, version: int = 1) -> Change:
    return Change(
        action=ChangeKind.PUT,
        kind=ObjectKind.FLAG,
        key=key,
        version=version,
        obj=flag_json(key, value, version),
    )


def full(*changes: Change, state: str = "(p:1)", version: int = 1) -> ChangeSet:
    return ChangeSet(
        intent=IntentCode.TRANSFER_FULL,
        changes=changes,
        selector=Selector(state=state, version=version) if state else Selector(),
    )


def basis(*changes: Change, state: str = "(p:1)", fallback: bool = False) -> Basis:
    return Basis(
        change_set=full(*changes, state=state),
        persist=bool(state),
        fallback_to_fdv1=fallback,
    )


def valid(*changes: Change, fallback: bool = False, state: str = "(p:2)") -> Update:
    return Update(
        state=SourceState.VALID,
        change_set=full(*changes, state=state) if changes else None,
        fallback_to_fdv1=fallback,
    )


def source_context(
    http: httpx.AsyncClient | None,
    clock: FakeClock | None = None,
    *,
    config: Config | None = None,
    selector: Selector | None = None,
) -> SourceContext:
    """What a source gets from the supervisor: a fixed selector and seeded random."""
    fixed = Selector() if selector is None else selector
    return SourceContext(
        selector=lambda: fixed,
        http=http,
        config=config or Config("sdk-key"),
        clock=clock or FakeClock(),
        random=random.Random(0),
    )


def poller(path: str) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """A synchronizer polling every 10 s: FDv1's for ``/sdk/latest-all``, else FDv2's."""
    from aioflags.sources import fdv1_polling_synchronizer, polling_synchronizer

    if path == "/sdk/latest-all":
        return fdv1_polling_synchronizer(interval=10)
    return polling_synchronizer(interval=10)
