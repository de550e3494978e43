"""The reconnect delay schedule: exponential, capped, jittered, reset when healthy."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from random import Random

    from aioflags._core._clock import Clock

__all__ = ["Backoff"]


class Backoff:
    """Delays of ``initial * 2**n`` capped at ``maximum``, minus up to ``jitter`` of it.

    A connection that stayed healthy for ``reset_after`` seconds resets the
    schedule (protocol.md §3). Clock and randomness are injected.
    """

    __slots__ = (
        "_attempt",
        "_clock",
        "_healthy_since",
        "_random",
        "initial",
        "jitter",
        "maximum",
        "reset_after",
    )

    def __init__(
        self,
        *,
        initial: float,
        maximum: float,
        jitter: float,
        reset_after: float,
        clock: Clock,
        random: Random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.reset_after = reset_after
        self._clock = clock
        self._random = random
        self._attempt = 0
        self._healthy_since: float | None = None

    def connected(self) -> None:
        """A connection succeeded: start measuring how long it stays healthy."""
        self._healthy_since = self._clock.now()

    def next_delay(self) -> float:
        """The delay before the next attempt (the connection has just failed)."""
        since = self._healthy_since
        if since is not None and self._clock.now() - since >= self.reset_after:
            self._attempt = 0
        self._healthy_since = None
        delay = min(self.initial * 2.0**self._attempt, self.maximum)
        self._attempt = min(self._attempt + 1, 62)
        return delay - self._random.random() * self.jitter * delay
