"""What a store reader read, as changes; with the cache off, only what evaluations need.

:func:`changes_since` (a full read) and :func:`changes_read` (some items)
turn what was read into the changes from what was applied last, decoding
only the items whose JSON changed. An item that cannot be used is skipped,
and unserved if it was served, so that every reader serves the same whatever
it read before; the reader reports the unusable items in the store's status.

An awaited evaluation of one flag with ``cache_ttl=0`` (see
:class:`~aioflags._datasystem._stores._gate.Refresher`) needs that flag, the
prerequisite flags it reaches and the segments its ``segmentMatch`` clauses
name (segments name segments too). :func:`read_needed` reads them in rounds:
the flags asked (with the store's "initialised" marker), then what the items
just read reach and were not read yet, until nothing new is reached; each
round is one atomic read (for Redis one ``MULTI`` of ``HMGET`` per kind and
``EXISTS $inited``). A flag without prerequisites or segments costs one
round trip, whatever the size of the store; LaunchDarkly's SDKs, uncached,
read each of these items on its own.

Items of different rounds may be read at different moments, as
LaunchDarkly's per-item reads are; what each evaluation needs is read after
it began, so it sees every write that finished before then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    full_transfer,
)
from aioflags._datasystem._payloads import object_meta

from ._base import Unreadable, decode_items, parse_item

if TYPE_CHECKING:
    from collections.abc import Collection

    from ._base import Item, StoreConnection, StoredText

__all__ = ["Needed", "changes_read", "changes_since", "read_needed"]

#: The kind of a node of :func:`~aioflags._datasystem._payloads.object_meta`.
_NODE_KINDS: Final = {"f": ObjectKind.FLAG, "s": ObjectKind.SEGMENT}


class Needed(NamedTuple):
    """What :func:`read_needed` read: each item's JSON (None: not in the store)."""

    texts: dict[Item, StoredText | None]
    initialized: bool


async def read_needed(connection: StoreConnection, flags: Collection[str]) -> Needed:
    """Read ``flags`` and every flag and segment they reach; raises StoreFailure."""
    texts: dict[Item, StoredText | None] = {}
    asked: dict[ObjectKind, list[str]] = {ObjectKind.FLAG: sorted(flags)}
    initialized: bool | None = None
    while True:
        data = await connection.read_items(asked)
        if initialized is None:  # as the first round found it
            initialized = data.initialized
        reached: dict[ObjectKind, list[str]] = {}
        for kind, keys in asked.items():
            found = data.items.get(kind, {})
            for key in keys:
                texts[kind, key] = text = found.get(key)
                if text is not None:
                    for item in _reaches(text):
                        if item not in texts:
                            texts[item] = None  # (read in the next round)
                            reached.setdefault(item[0], []).append(item[1])
        if not reached:
            return Needed(texts, initialized)
        asked = reached


def _reaches(text: StoredText) -> list[Item]:
    """The flags and segments a stored item reaches (none if it is unusable)."""
    if isinstance(text, Unreadable):
        return []  # the reader reports it when it decodes it
    obj = parse_item(text)
    if isinstance(obj, str):
        return []  # (likewise)
    return [(_NODE_KINDS[node[0]], node[1:]) for node in object_meta(obj, text)[2:]]


async def changes_since(
    seen: dict[Item, StoredText] | None,
    items: dict[Item, StoredText],
    bad: dict[Item, str],
) -> ChangeSet | None:
    """The first read as a full transfer; later ones as the differences only.

    ``bad`` (the unusable items, and why) is brought up to date with ``items``.
    """
    if seen is None:
        decoded = await decode_items([(k, key, t) for (k, key), t in items.items()])
        bad.clear()
        bad.update(decoded.unusable)
        return full_transfer(decoded.changes)
    changed = [
        (kind, key, text)
        for (kind, key), text in items.items()
        if seen.get((kind, key)) != text
    ]
    # A key gone from the hash (not a tombstone): absent from now on.
    removed = [item for item in seen if item not in items]
    return _change_set(await _delta(seen, changed, removed, bad))


async def changes_read(
    seen: dict[Item, StoredText],
    texts: dict[Item, StoredText | None],
    bad: dict[Item, str],
) -> ChangeSet | None:
    """What changed among the items read (``texts``; None: not in the store)."""
    changed = [
        (kind, key, text)
        for (kind, key), text in texts.items()
        if text is not None and seen.get((kind, key)) != text
    ]
    removed = [item for item, text in texts.items() if text is None and item in seen]
    return _change_set(await _delta(seen, changed, removed, bad))


async def _delta(
    seen: dict[Item, StoredText],
    changed: list[tuple[ObjectKind, str, StoredText]],
    removed: list[Item],
    bad: dict[Item, str],
) -> list[Change]:
    """The changes from what was applied (``seen``) to what was read; both updated.

    ``changed``: the items whose JSON differs from ``seen``; ``removed``: the
    items of ``seen`` gone from the store. An item now unusable is removed
    too if it was served: every reader then serves the same, whatever it
    read before. ``bad`` (the unusable items, and why) is kept up to date.
    """
    decoded = await decode_items(changed)
    changes = decoded.changes
    for change in changes:
        bad.pop((change.kind, change.key), None)
    for item, reason in decoded.unusable.items():
        if item in seen and item not in bad:  # served until now
            changes.append(_gone(item))
        bad[item] = reason
    for item in removed:
        if bad.pop(item, None) is None:  # served until now
            changes.append(_gone(item))
        del seen[item]
    for kind, key, text in changed:
        seen[kind, key] = text
    return changes


def _gone(item: Item) -> Change:
    return Change(action=ChangeKind.DELETE, kind=item[0], key=item[1], version=0)


def _change_set(changes: list[Change]) -> ChangeSet | None:
    if not changes:
        return None
    return ChangeSet(intent=IntentCode.TRANSFER_CHANGES, changes=tuple(changes))
