"""Helpers for the analytics event tests: a FlagServer, a client sending events to it."""

from __future__ import annotations

import contextlib
import random
from typing import TYPE_CHECKING, Any

from aioflags import Client, Config, DataSystem
from aioflags._analytics._format import EventFormatter
from aioflags._analytics._recorder import Recorder
from aioflags._core._clock import wall_ms
from aioflags.testing import FakeClock, FlagServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from aioflags._core._json import JSONObject

#: The keys LaunchDarkly's harness allows on each server-side event kind.
ALLOWED_KEYS = {
    "feature": {
        "kind",
        "creationDate",
        "key",
        "version",
        "value",
        "variation",
        "reason",
        "default",
        "prereqOf",
        "context",
    },
    "debug": {
        "kind",
        "creationDate",
        "key",
        "context",
        "version",
        "value",
        "variation",
        "reason",
        "default",
    },
    "index": {"kind", "creationDate", "context"},
    "identify": {"kind", "creationDate", "context"},
    "custom": {"kind", "creationDate", "key", "data", "metricValue", "context"},
    "summary": {"kind", "startDate", "endDate", "features"},
}


def flag(**fields: Any) -> JSONObject:
    """A boolean flag, on, serving ``True`` (variation 0) to everyone."""
    return {
        "on": True,
        "variations": [True, False],
        "fallthrough": {"variation": 0},
        "offVariation": 1,
        **fields,
    }


@contextlib.asynccontextmanager
async def running(
    flags: dict[str, JSONObject] | None = None,
    *,
    seed: int = 0,
    rng: random.Random | None = None,
    **options: Any,
) -> AsyncIterator[tuple[FlagServer, Client, FakeClock]]:
    """A FlagServer and a READY client sending events to it, on a fake clock.

    The client's random source is ``rng``, or one seeded with ``seed``.

    The fake clock never moves unless the test moves it, so nothing is
    flushed but by ``client.flush()`` (or closing the client).
    """
    options.setdefault("diagnostic_opt_out", True)
    async with FlagServer(flags or {}) as server:
        clock = FakeClock()
        options.setdefault("events_uri", server.url)
        config = Config(
            "sdk-key",
            base_uri=server.url,
            stream_uri=server.url,
            data_system=DataSystem.streaming(),
            **options,
        )
        if rng is None:
            rng = random.Random(seed)
        async with Client(config, clock=clock, random=rng) as client:
            yield server, client, clock


def by_kind(events: list[JSONObject]) -> dict[str, list[JSONObject]]:
    """The events grouped by kind, each checked against the harness's allowed keys."""
    out: dict[str, list[JSONObject]] = {}
    for event in events:
        kind = event["kind"]
        assert set(event) <= ALLOWED_KEYS[kind], (kind, set(event) - ALLOWED_KEYS[kind])
        out.setdefault(kind, []).append(event)
    return out


def recorder_for(config: Config, now_ms: Callable[[], int] | None = None) -> Recorder:
    """The Recorder an EventProcessor makes for ``config``, seeded."""
    return Recorder(
        capacity=config.events_capacity,
        keys_capacity=config.context_keys_capacity,
        omit_anonymous=config.omit_anonymous_contexts,
        random=random.Random(0),
        now_ms=wall_ms if now_ms is None else now_ms,
    )


def formatter_for(config: Config) -> EventFormatter:
    """The EventFormatter an EventProcessor makes for ``config``."""
    return EventFormatter(
        all_private=config.all_attributes_private,
        private=config.private_attributes,
        omit_anonymous=config.omit_anonymous_contexts,
    )
