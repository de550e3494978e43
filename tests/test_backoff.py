"""The reconnect schedule: exponential, capped, jittered, reset after a healthy connection."""

from __future__ import annotations

import random

import anyio
import pytest

from aioflags._datasystem._sources._backoff import Backoff
from aioflags.testing import FakeClock


def make(clock: FakeClock, jitter: float = 0.0, seed: int = 0) -> Backoff:
    return Backoff(
        initial=1.0,
        maximum=30.0,
        jitter=jitter,
        reset_after=60.0,
        clock=clock,
        random=random.Random(seed),
    )


def test_doubles_up_to_the_cap_without_jitter() -> None:
    backoff = make(FakeClock())
    assert [backoff.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize("seed", range(20))
def test_jitter_subtracts_at_most_half(seed: int) -> None:
    backoff = make(FakeClock(), jitter=0.5, seed=seed)
    for full in (1, 2, 4, 8, 16, 30, 30):
        delay = backoff.next_delay()
        assert full / 2 <= delay <= full


def test_resets_after_a_healthy_minute_only() -> None:
    clock = FakeClock()
    backoff = make(clock)

    async def advance(seconds: float) -> None:
        await clock.advance(seconds)

    for _ in range(4):
        backoff.next_delay()
    backoff.connected()
    anyio.run(advance, 59.0)
    assert backoff.next_delay() == 16  # up for 59 s: no reset
    backoff.connected()
    anyio.run(advance, 60.0)
    assert backoff.next_delay() == 1  # up for 60 s: reset
