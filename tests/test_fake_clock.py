"""FakeClock: every wait is a handshake (no polling), on asyncio and trio."""

from __future__ import annotations

import anyio
import pytest

from aioflags.testing import FakeClock

BACKENDS = ["asyncio", "trio"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_advance_wakes_in_deadline_order_and_again_within_the_window(
    backend: str,
) -> None:
    async def main() -> list[tuple[str, float]]:
        clock = FakeClock()
        woke: list[tuple[str, float]] = []

        async def ticker(name: str, period: float) -> None:
            while True:
                await clock.sleep(period)
                woke.append((name, clock.now()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker, "three", 3.0)
            tg.start_soon(ticker, "two", 2.0)
            await clock.wait_for_sleepers(2)
            await clock.advance(6.5)
            assert clock.now() == 6.5
            tg.cancel_scope.cancel()
        return woke

    # Each wake-up ran to the ticker's next sleep before the next one woke,
    # so a sleeper that sleeps again inside the window is woken again.
    assert anyio.run(main, backend=backend) == [
        ("two", 2.0),
        ("three", 3.0),
        ("two", 4.0),
        ("three", 6.0),
        ("two", 6.0),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_advance_returns_once_the_woken_task_reached_its_next_await(
    backend: str,
) -> None:
    async def main() -> list[str]:
        clock = FakeClock()
        steps: list[str] = []
        gate = anyio.Event()

        async def sleeper() -> None:
            await clock.sleep(1)
            steps.append("woke")
            await gate.wait()  # not the clock: advance does not wait for this
            steps.append("passed the gate")

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await clock.wait_for_sleeper(within=1)
            await clock.advance(1)
            steps.append("advance returned")
            gate.set()
        return steps

    assert anyio.run(main, backend=backend) == [
        "woke",
        "advance returned",
        "passed the gate",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_timer_started_just_before_advance_is_counted(backend: str) -> None:
    async def main() -> float | None:
        clock = FakeClock()
        fired: list[float] = []

        async def timer() -> None:
            await clock.sleep(5)
            fired.append(clock.now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(timer)  # scheduled, not yet sleeping
            await clock.advance(5)
        return fired[0] if fired else None

    assert anyio.run(main, backend=backend) == 5.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cancelled_sleeper_is_skipped(backend: str) -> None:
    async def main() -> int:
        clock = FakeClock()
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.sleep, 1)
            await clock.wait_for_sleepers(1)
            tg.cancel_scope.cancel()
        assert clock.sleepers == 0
        await clock.advance(2)  # nothing to wake, nothing to wait for
        return clock.sleepers

    assert anyio.run(main, backend=backend) == 0
