"""The flag service's endpoints (protocol.md §3-§5; events.md)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "EVENTS_BULK",
    "EVENTS_DIAGNOSTIC",
    "FDV1_POLL",
    "FDV1_STREAM",
    "FDV2_POLL",
    "FDV2_STREAM",
    "STREAMS",
]

FDV2_POLL: Final = "/sdk/poll"
FDV2_STREAM: Final = "/sdk/stream"
FDV1_POLL: Final = "/sdk/latest-all"
FDV1_STREAM: Final = "/all"
EVENTS_BULK: Final = "/bulk"
EVENTS_DIAGNOSTIC: Final = "/diagnostic"
STREAMS: Final = (FDV2_STREAM, FDV1_STREAM)
