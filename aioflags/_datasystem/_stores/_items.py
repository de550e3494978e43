"""What a store reader read, as changes from what it applied last.

:func:`changes_since` turns what a full read found into the changes from
what was applied last, decoding
only the items whose JSON changed. An item that cannot be used is skipped,
and unserved if it was served, so that every reader serves the same whatever
it read before; the reader reports the unusable items in the store's status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
)

from ._base import decode_items, full_change_set

if TYPE_CHECKING:
    from ._base import Item

__all__ = ["changes_since"]


async def changes_since(
    seen: dict[Item, str] | None, items: dict[Item, str], bad: dict[Item, str]
) -> ChangeSet | None:
    """The first read as a full transfer; later ones as the differences only.

    ``bad`` (the unusable items, and why) is brought up to date with ``items``.
    """
    if seen is None:
        decoded = await decode_items([(k, key, t) for (k, key), t in items.items()])
        bad.clear()
        bad.update(decoded.unusable)
        return full_change_set(decoded.changes)
    changed = [
        (kind, key, text)
        for (kind, key), text in items.items()
        if seen.get((kind, key)) != text
    ]
    # A key gone from the hash (not a tombstone): absent from now on.
    removed = [item for item in seen if item not in items]
    return _change_set(await _delta(seen, changed, removed, bad))


async def _delta(
    seen: dict[Item, str],
    changed: list[tuple[ObjectKind, str, str]],
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
