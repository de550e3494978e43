"""Status and event guarantees (status-and-events.md §2), deterministic and randomised."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from aioflags import EventDetails, ProviderEvent, ProviderStatus
from aioflags._client._events import EventBus

FOLD = {
    ProviderEvent.READY: ProviderStatus.READY,
    ProviderEvent.STALE: ProviderStatus.STALE,
}


def fold(
    status: ProviderStatus, event: ProviderEvent, code: str | None
) -> ProviderStatus:
    if status is ProviderStatus.FATAL:
        return status
    if event is ProviderEvent.ERROR:
        return (
            ProviderStatus.FATAL if code == "PROVIDER_FATAL" else ProviderStatus.ERROR
        )
    return FOLD.get(event, status)


@pytest.mark.asyncio
async def test_status_is_updated_before_any_handler_runs() -> None:
    bus = EventBus()
    seen: list[tuple[ProviderStatus, ProviderStatus]] = []
    async with anyio.create_task_group() as tg:
        bus.attach(tg)
        bus.add(ProviderEvent.STALE, lambda d: seen.append((d.status, bus.status)))
        bus.emit(ProviderEvent.READY)
        bus.emit(ProviderEvent.STALE, message="down")
        await bus.wait_delivered()
        bus.detach()
        tg.cancel_scope.cancel()
    assert seen == [(ProviderStatus.STALE, ProviderStatus.STALE)]


@pytest.mark.asyncio
async def test_late_handler_replay_exactly_once_with_real_details() -> None:
    bus = EventBus()
    got: list[EventDetails] = []
    async with anyio.create_task_group() as tg:
        bus.attach(tg)
        bus.emit(ProviderEvent.ERROR, error_code="PROVIDER_NOT_READY", message="slow")
        bus.add(ProviderEvent.ERROR, got.append)
        bus.add(ProviderEvent.READY, got.append)  # not in READY: no replay
        bus.add(ProviderEvent.CONFIGURATION_CHANGED, got.append)  # never replayed
        await bus.wait_delivered()
        assert [(d.event, d.error_code, d.message, d.seq) for d in got] == [
            (ProviderEvent.ERROR, "PROVIDER_NOT_READY", "slow", 1)
        ]
        bus.emit(ProviderEvent.READY)
        await bus.wait_delivered()
        assert [d.seq for d in got] == [1, 2]
        bus.detach()
        tg.cancel_scope.cancel()


@pytest.mark.asyncio
async def test_fatal_is_sticky_and_replayed_to_error_handlers() -> None:
    bus = EventBus()
    got: list[EventDetails] = []
    async with anyio.create_task_group() as tg:
        bus.attach(tg)
        bus.emit(ProviderEvent.ERROR, error_code="PROVIDER_FATAL", message="bad key")
        assert bus.emit(ProviderEvent.READY) is None
        bus.reset()
        assert bus.status is ProviderStatus.FATAL
        bus.add(ProviderEvent.ERROR, got.append)
        await bus.wait_delivered()
        bus.detach()
        tg.cancel_scope.cancel()
    assert [(d.status, d.error_code) for d in got] == [
        (ProviderStatus.FATAL, "PROVIDER_FATAL")
    ]


@pytest.mark.asyncio
async def test_handlers_are_isolated_ordered_and_may_be_async(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    slow_gate = anyio.Event()
    slow: list[int] = []
    fast: list[int] = []

    slow_done = anyio.Event()

    async def slow_handler(d: EventDetails) -> None:
        await slow_gate.wait()
        slow.append(d.seq)
        if len(slow) == 5:
            slow_done.set()

    def broken(d: EventDetails) -> None:
        raise RuntimeError("handler bug")

    async with anyio.create_task_group() as tg:
        bus.attach(tg)
        bus.add(ProviderEvent.CONFIGURATION_CHANGED, slow_handler)
        bus.add(ProviderEvent.CONFIGURATION_CHANGED, broken)
        bus.add(ProviderEvent.CONFIGURATION_CHANGED, lambda d: fast.append(d.seq))
        for _ in range(5):
            bus.emit(
                ProviderEvent.CONFIGURATION_CHANGED, flags_changed=frozenset({"f"})
            )
        await bus.wait_delivered()
        assert (
            fast == [1, 2, 3, 4, 5] and slow == []
        )  # the slow handler delays only itself
        slow_gate.set()
        await slow_done.wait()
        assert slow == [1, 2, 3, 4, 5]
        bus.remove(ProviderEvent.CONFIGURATION_CHANGED, slow_handler)
        bus.emit(ProviderEvent.CONFIGURATION_CHANGED)
        await bus.wait_delivered()
        assert slow == [1, 2, 3, 4, 5] and fast[-1] == 6
        bus.detach()
        tg.cancel_scope.cancel()
    assert caplog.text.count("RuntimeError: handler bug") == 6


def test_add_rejects_bad_arguments() -> None:
    bus = EventBus()
    with pytest.raises(TypeError, match="ProviderEvent"):
        bus.add("READY", print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        bus.add(ProviderEvent.READY, "nope")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_handlers_persist_across_restarts() -> None:
    bus = EventBus()
    got: list[int] = []
    bus.add(ProviderEvent.READY, lambda d: got.append(d.seq))  # added before start
    for _ in range(2):
        async with anyio.create_task_group() as tg:
            bus.attach(tg)
            bus.emit(ProviderEvent.READY)
            await bus.wait_delivered()
            bus.detach()
            bus.reset()
            tg.cancel_scope.cancel()
    assert got == [1, 2]


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(0, 400, 50), ids=lambda s: f"seeds-{s}")
async def test_randomised_ordering_replay_and_fold(seed: int) -> None:
    """Random emits and attaches: per handler, replay first, then every matching event once, in order."""
    for iteration in range(seed, seed + 50):
        r = random.Random(iteration)
        bus = EventBus()
        records: list[
            tuple[ProviderEvent, list[EventDetails], int, EventDetails | None]
        ] = []
        expected_status = ProviderStatus.NOT_READY
        emitted: list[EventDetails] = []
        async with anyio.create_task_group() as tg:
            bus.attach(tg)
            for _ in range(r.randrange(5, 40)):
                if r.random() < 0.35:
                    event = r.choice(list(ProviderEvent))
                    got: list[EventDetails] = []
                    replay = bus.last_status_event
                    matches = {
                        ProviderEvent.READY: (ProviderStatus.READY,),
                        ProviderEvent.STALE: (ProviderStatus.STALE,),
                        ProviderEvent.ERROR: (
                            ProviderStatus.ERROR,
                            ProviderStatus.FATAL,
                        ),
                    }.get(event, ())
                    expect_replay = replay if bus.status in matches else None
                    bus.add(event, got.append)
                    records.append((event, got, bus._seq, expect_replay))
                else:
                    event = r.choice(list(ProviderEvent))
                    code = (
                        r.choice([None, "GENERAL", "PROVIDER_FATAL"])
                        if event is ProviderEvent.ERROR
                        else None
                    )
                    details = bus.emit(event, error_code=code)
                    expected_status = fold(expected_status, event, code)
                    if details is not None:
                        emitted.append(details)
                        assert details.status is bus.status
                if r.random() < 0.3:
                    await anyio.lowlevel.checkpoint()
            # Closing every queue lets each consumer drain it and finish: the task
            # group then exits by itself, with every queued event delivered.
            bus.detach()
        assert bus.status is expected_status
        for event, got, attached_at, replay in records:
            live = [d for d in emitted if d.event is event and d.seq > attached_at]
            assert got == ([replay] if replay else []) + live, f"iteration {iteration}"
            seqs = [d.seq for d in got]
            assert seqs == sorted(set(seqs))


def details(**kwargs: Any) -> EventDetails:
    return EventDetails(
        event=ProviderEvent.READY, status=ProviderStatus.READY, seq=1, **kwargs
    )


def test_event_details_defaults() -> None:
    d = details()
    assert (
        d.provider_name == "aioflags"
        and d.flags_changed == frozenset()
        and d.error_code is None
    )
