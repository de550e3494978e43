"""flagd flags in their shared form, linked to what they share before the store compiles them.

A flagd document's ``$evaluators`` and a sync server's ``sync_context`` are
carried once, as shared items (segments keyed by their content's digest),
and each flag names the ones it uses
(``aioflags/_systems/_flagd/_data/_definitions.py``): so the change set that the
data system, the flag plane, saved state and ``aioflags serve`` write out
is as large as the document, not as the flags times what they share.

:func:`link` is the one place they meet again: the store passes each
change set through it before applying it, and compiles the flags it gives
back, each holding the shared values themselves (one object for every
flag that uses it). The store keeps the shared values it has seen
(:class:`Shared`), for a delta that puts a flag whose items came before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aioflags._core._frozen import set_field
from aioflags._core._json import raw_object
from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
)

from ._definitions import SHARED_PREFIX, linked_flag, shared_value, shares

if TYPE_CHECKING:
    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._datasystem._datatypes import RawPut

__all__ = ["Shared", "link"]

#: The shared values a store holds, by their items' keys.
Shared = dict[str, "JSONValue"]

#: What a flag's text holds if it is in the shared form (a quick test before
#: parsing it; a superset is harmless).
_MARKS: Final = ('"evaluators"', '"syncContext"')


def _shared_item(item: Change | RawPut) -> tuple[str, bool, JSONValue] | None:
    """(key, whether it is put, its value) of a shared item; None for anything else."""
    if isinstance(item, tuple):
        if item[0] != "segment" or not item[1].startswith(SHARED_PREFIX):
            return None
        if item[6]:  # deleted
            return item[1], False, None
        ok, value = shared_value(raw_object(item[3], item[4]))
        return item[1], ok, value
    if item.kind is not ObjectKind.SEGMENT or not item.key.startswith(SHARED_PREFIX):
        return None
    ok, value = shared_value(item.obj if item.action is ChangeKind.PUT else None)
    return item.key, ok, value


def _linked(item: Change | RawPut, shared: Shared) -> Change | None:
    """A flag put in the shared form, linked; None for anything else."""
    if isinstance(item, tuple):
        raw = item[3]
        if item[0] != "flag" or item[6] or not any(m in raw for m in _MARKS):
            return None
        key, version = item[1], item[2]
        obj: JSONObject | None = raw_object(raw, item[4])
    else:
        if item.kind is not ObjectKind.FLAG or item.action is not ChangeKind.PUT:
            return None
        key, version, obj = item.key, item.version, item.obj
    if obj is None or not shares(obj):
        return None
    return Change(
        action=ChangeKind.PUT,
        kind=ObjectKind.FLAG,
        key=key,
        version=version,
        obj=linked_flag(obj, shared),
    )


def link(change_set: ChangeSet, held: Shared) -> tuple[ChangeSet, Shared]:
    """``change_set`` with its flagd flags linked, and the shared values held after it.

    ``held``: the shared values held before (a full transfer replaces them;
    a delta adds to them, and deletes). The change set comes back as it is
    when nothing in it names a shared item, or nothing is shared at all (a
    LaunchDarkly payload: one look at each item).
    """
    intent = change_set.intent
    if intent is IntentCode.TRANSFER_NONE:
        return change_set, held
    full = intent is IntentCode.TRANSFER_FULL
    shared: Shared = {} if full else held
    items = change_set._items
    segment = ObjectKind.SEGMENT
    for item in items:
        # (the kind first, inline: a LaunchDarkly payload of 100,000 flags
        # passes through here on the event loop, in one step)
        if (
            item[0] != "segment"
            if isinstance(item, tuple)
            else item.kind is not segment
        ):
            continue
        found = _shared_item(item)
        if found is not None:
            if shared is held:
                shared = dict(held)  # (held is the store's until it swaps)
            key, put, value = found
            if put:
                shared[key] = value
            else:
                shared.pop(key, None)
    if not shared:
        return change_set, shared
    linked: list[Change | RawPut] | None = None
    for n, item in enumerate(items):
        flag = _linked(item, shared)
        if flag is not None:
            if linked is None:
                linked = list(items)
            linked[n] = flag
    if linked is None:
        return change_set, shared
    out = ChangeSet._raw(
        intent,
        linked,
        change_set.selector,
        change_set._patterns,
        change_set._nodes,
    )
    set_field(out, "compare_versions", change_set.compare_versions)
    return out, shared
