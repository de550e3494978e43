"""What OFREP evaluates: a :class:`Source`, and :class:`DataSource`, one over raw flag data.

A running client is a :class:`Source` through ``aioflags.ofrep``'s
adapter; ``aioflags serve``'s flags through :class:`DataSource`, which
keeps a store of its own up to date with the data's version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio

from aioflags._asgi._signal import Signal
from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    full_transfer,
    puts,
)
from aioflags._datasystem._store import Store

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aioflags._core._json import JSONObject
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._results import EvaluationDetail
    from aioflags._evaluation._snapshot import FlagSnapshot

__all__ = [
    "DataSource",
    "Source",
]


class Source(Protocol):
    """What OFREP evaluates: a client, or ``serve``'s own flags."""

    def snapshot(self) -> FlagSnapshot:
        """The current flag data."""
        ...

    def ready(self) -> bool:
        """Whether there is flag data to evaluate yet."""
        ...

    def version(self) -> int:
        """A number that grows with every data change."""
        ...

    async def evaluate(self, key: str, context: Context) -> EvaluationDetail[Any]:
        """Evaluate one flag as the source's own evaluation (events, hooks)."""
        ...

    async def changed(self, after: int) -> None:
        """Return once :meth:`version` is past ``after``."""
        ...


#: Item changes a :class:`DataSource` keeps for its next snapshot; past this
#: many, the snapshot is built again from every object instead.
_MAX_PENDING: Final = 10_000


class DataSource:
    """A :class:`Source` over raw flag data (``aioflags serve``'s): no client.

    ``version()`` gives the data's version and ``items()`` its flags and
    segments by key (read only when the snapshot is built); the snapshot is brought up to date
    when the version moved, so the very next request after a change sees
    it. Changes told with :meth:`changed_item` are applied alone to the
    store (every other flag stays compiled: an evaluation of 1,000 flags
    after a change compiles one, not 1,000); without them, the store is
    built again from ``items()``. ``notify()`` is called on every change
    (it wakes the streams). Evaluations record nothing: the service has no
    analytics of its own.
    """

    def __init__(
        self,
        version: Callable[[], int],
        items: Callable[[], tuple[Mapping[str, JSONObject], Mapping[str, JSONObject]]],
    ) -> None:
        self._version = version
        self._items = items
        self._store: Store | None = None
        #: the version the store holds
        self._at: int | None = None
        #: the changes since, in order; None: build the store again
        self._pending: list[Change] | None = None
        self._changed = Signal()
        #: While :meth:`fresh_snapshot` builds a store: the changes since the
        #: version it builds (None: none is being built, or too many came).
        self._during: list[Change] | None = None
        self._building = anyio.Lock()

    def changed_item(
        self, kind: str, key: str, version: int, obj: JSONObject | None
    ) -> None:
        """An item was put (``obj``) or deleted (None): the next snapshot applies it alone."""
        change = Change(
            action=ChangeKind.PUT if obj is not None else ChangeKind.DELETE,
            kind=ObjectKind(kind),
            key=key,
            version=version,
            obj=obj,
        )
        during = self._during
        if during is not None:
            if len(during) >= _MAX_PENDING:
                self._during = None
            else:
                during.append(change)
        pending = self._pending
        if pending is None:
            return  # the store is built again anyway
        if len(pending) >= _MAX_PENDING:
            self._pending = None
            return
        pending.append(change)

    def version(self) -> int:
        return self._version()

    def ready(self) -> bool:
        return True

    def snapshot(self) -> FlagSnapshot:
        version = self._version()
        store = self._store
        if store is not None and self._at == version:
            return store.snapshot
        if store is not None and self._pending is not None:
            store.apply_now(
                ChangeSet(
                    intent=IntentCode.TRANSFER_CHANGES, changes=tuple(self._pending)
                )
            )
        else:
            store = self._store = Store()
            store.apply_now(self._everything())
        self._at = version
        self._pending = []
        return store.snapshot

    def _everything(self) -> ChangeSet:
        """Every object of the data, as one full transfer."""
        flags, segments = self._items()
        return full_transfer(
            puts(ObjectKind.FLAG, flags), puts(ObjectKind.SEGMENT, segments)
        )

    async def fresh_snapshot(self) -> FlagSnapshot:
        """:meth:`snapshot`, but a store built from every object is built in slices.

        The first time (or after more changes than are kept) the store is
        built from the whole data: at 20,000 flags that held the event loop
        over a second. A few changes are applied at once, as :meth:`snapshot`
        does. The snapshot is of the data as it was when asked, or newer.
        """
        async with self._building:
            if self._store is not None and self._pending is not None:
                return self.snapshot()
            version = self._version()
            everything = self._everything()
            self._during = []
            try:
                store = Store()
                await store.apply(everything)
                during = self._during
            finally:
                self._during = None
            if self._store is not None and self._pending is not None:
                return self.snapshot()  # built meanwhile (and kept up to date)
            self._store, self._at, self._pending = store, version, during
            return store.snapshot

    async def evaluate(self, key: str, context: Context) -> EvaluationDetail[Any]:
        return self.snapshot().variation_detail(key, context, None)

    def notify(self) -> None:
        self._changed.notify()

    async def changed(self, after: int) -> None:
        await self._changed.wait_until(lambda: self.version() > after)
