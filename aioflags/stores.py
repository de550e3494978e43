"""Persistent stores: share flags between processes through Redis.

``RedisStore`` keeps flags and segments in Redis in LaunchDarkly's layout, so
aioflags, LaunchDarkly's SDKs and LaunchDarkly's Relay Proxy can share one
Redis in either direction. It needs the extra ``aioflags[redis]``
(redis-py's asyncio client; so the store runs on asyncio, not trio)::

    store = aioflags.stores.RedisStore(url="redis://localhost:6379/0")

    # read-write: stream from the flag service, write every change to Redis
    aioflags.Config("sdk-key", data_system=aioflags.DataSystem.default(store=store))

    # daemon mode: flags only from Redis, never from the flag service (the
    # key is for analytics events: without it none are sent, with a warning)
    aioflags.Config("sdk-key", data_system=aioflags.DataSystem.daemon(store))

Big segments: ``RedisBigSegmentStore`` reads the memberships LaunchDarkly's
Relay Proxy writes, for ``aioflags.BigSegmentsConfig(store=...)``; implement
``BigSegmentStore`` to read them from elsewhere (docs/big-segments.md).

See docs/stores.md for the layout, the modes, caching and the store status.

Added in version 0.1.0.
"""

from __future__ import annotations

from ._datasystem._stores._base import DataStoreStatus as DataStoreStatus
from ._datasystem._stores._bigsegments import BigSegmentStore as BigSegmentStore
from ._datasystem._stores._bigsegments import (
    BigSegmentStoreConnection as BigSegmentStoreConnection,
)
from ._datasystem._stores._bigsegments import (
    BigSegmentStoreStatus as BigSegmentStoreStatus,
)
from ._datasystem._stores._bigsegments import context_hash as context_hash
from ._datasystem._stores._mode import StoreMode as StoreMode
from ._datasystem._stores._redis import RedisBigSegmentStore as RedisBigSegmentStore
from ._datasystem._stores._redis import RedisStore as RedisStore

__all__ = [
    "BigSegmentStore",
    "BigSegmentStoreConnection",
    "BigSegmentStoreStatus",
    "DataStoreStatus",
    "RedisBigSegmentStore",
    "RedisStore",
    "StoreMode",
    "context_hash",
]

for _name in __all__:
    globals()[_name].__module__ = "aioflags.stores"
del _name
