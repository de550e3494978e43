"""The sources that read a persistent store.

- :func:`store_initializer` (read-write mode): before the network delivers,
  start from the store if it has been initialised. Its data has no selector,
  so the network initializers and synchronizers still run and supersede it;
  it is never written back (``persist=False``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from aioflags._datatypes import (
    Basis,
    ErrorInfo,
    ErrorKind,
    ObjectKind,
)

from ._base import StoreFailure, decode_items, full_change_set

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

    from aioflags._datasystem import SourceContext

    from ._base import PersistentStore, RawData

__all__ = ["store_initializer"]

logger = logging.getLogger("aioflags")

#: Seconds between attempts while the store is down or not initialised.
RETRY_INTERVAL: Final = 0.5


def _flat(data: RawData) -> list[tuple[ObjectKind, str, str]]:
    return [
        (kind, key, text)
        for kind, items in data.items.items()
        for key, text in items.items()
    ]


def _store_error(ctx: SourceContext, message: str) -> ErrorInfo:
    return ErrorInfo(kind=ErrorKind.STORE_ERROR, message=message, time=ctx.clock.now())


def store_initializer(
    store: PersistentStore,
) -> Callable[[SourceContext], AsyncGenerator[Basis, None]]:
    """Start from the store's data if it is initialised (read-write mode)."""

    async def initializer(ctx: SourceContext) -> AsyncGenerator[Basis, None]:
        tracker = store.status_tracker
        try:
            async with store.connect() as connection:
                data = await connection.load()
        except StoreFailure as exc:
            tracker.failed(exc)
            yield Basis(
                change_set=None,
                error=_store_error(ctx, f"the {store.description}: {exc}"),
            )
            return
        tracker.succeeded()
        if not data.initialized:
            logger.info(
                "The %s is not initialised yet: waiting for the flag service",
                store.description,
            )
            return
        changes = await decode_items(_flat(data))
        yield Basis(change_set=full_change_set(changes), persist=False)

    return initializer
