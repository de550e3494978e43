"""Scripted in-memory sources and a recording listener for supervisor tests."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator
from typing import Any, Generic, TypeVar

import anyio
import httpx

from aioflags import (
    Basis,
    Change,
    ChangeKind,
    ChangeSet,
    DataSourceStatus,
    IntentCode,
    ObjectKind,
    Selector,
    SourceContext,
    SourceState,
    Update,
)
from aioflags._config import Config
from aioflags.testing import FakeClock

T = TypeVar("T")
#: Every Scripted source made by a test; tests/conftest.py closes them afterwards.
OPEN: list[Scripted[object]] = []


class Scripted(Generic[T]):
    """A source factory: each run's generator yields what the test `put`s."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._send, self._recv = anyio.create_memory_object_stream[T | BaseException](
            100
        )
        self.starts = 0
        self.finallies = 0
        self.active = False
        self.contexts: list[SourceContext] = []
        OPEN.append(self)  # type: ignore[arg-type]

    def __call__(self, context: SourceContext) -> AsyncGenerator[T, None]:
        self.contexts.append(context)
        return self._run()

    async def _run(self) -> AsyncGenerator[T, None]:
        self.starts += 1
        self.active = True
        try:
            async for item in self._recv:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.active = False
            self.finallies += 1

    async def put(self, item: T | BaseException) -> None:
        await self._send.send(item)
        await anyio.wait_all_tasks_blocked()

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
        self.settled_count = 0

    def data_source_status(self, status: DataSourceStatus) -> None:
        self.statuses.append(status)

    def data_changed(self, flags: frozenset[str]) -> None:
        self.changes.append(flags)

    def settled(self) -> None:
        self.settled_count += 1

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


def source_context(http: httpx.AsyncClient, clock: FakeClock) -> SourceContext:
    return SourceContext(
        selector=Selector,
        http=http,
        config=Config("sdk-key"),
        clock=clock,
        random=random.Random(0),
    )
