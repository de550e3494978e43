"""A persistent store's mode (read-only or read-write), apart from the store machinery.

``StoreMode``, and the interval of outage log lines, live apart from
``_base.py`` (what every persistent store shares): the data system's configuration, its
supervisor and a client's store lookups name these whatever the data
system, and a client without a persistent store never imports the rest
(issue 49: ``import aioflags`` and a start load only what they use).
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["OUTAGE_LOG_INTERVAL", "StoreMode"]

#: Seconds between two log lines about one store outage.
OUTAGE_LOG_INTERVAL: Final = 60.0


class StoreMode(enum.Enum):
    """Whether the data system writes what its sources deliver to the store.

    Added in version 0.1.0.
    """

    #: Read the store, never write it (daemon mode).
    READ_ONLY = "read-only"
    #: Write every applied change set to the store.
    READ_WRITE = "read-write"
