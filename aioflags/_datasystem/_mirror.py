"""The applied data set as FDv2 event texts: what saved state writes and the flag plane sends.

An :class:`EventMirror` folds each change set the data system applies into
one ``put-object`` event text per flag and segment (the text it arrived
in, when it came by FDv2: nothing is serialised again), deleted items kept
as versions only. :meth:`EventMirror.fold` also answers the events a change
set made (a delta, as FDv2 sends one), and :meth:`EventMirror.full_events`
the whole data set (a full transfer).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final, final

from aioflags._core._json import RAW_DATA, RAW_EVENT

from ._datatypes import NO_SELECTOR, Change, ChangeKind, IntentCode, ObjectKind

if TYPE_CHECKING:
    from ._datatypes import ChangeSet, Selector

__all__ = ["EventMirror", "Folding", "event_of"]

_COMPACT: Final = (",", ":")


def event_of(change: Change) -> str | None:
    """A put as a ``put-object`` event's text (None: a delete, or a tombstone).

    A put with no object (one its source could not use) is sent as such,
    with ``"object": null``: its receiver keeps it as malformed too.
    """
    obj = change.obj
    if change.action is ChangeKind.DELETE or (
        obj is not None and obj.get("deleted") is True
    ):
        return None
    data = {
        "kind": change.kind.value,
        "key": change.key,
        "version": change.version,
        "object": obj,
    }
    return json.dumps({"event": "put-object", "data": data}, separators=_COMPACT)


def _delete_event(kind: str, key: str, version: int) -> str:
    data = {"kind": kind, "key": key, "version": version}
    return json.dumps({"event": "delete-object", "data": data}, separators=_COMPACT)


@final
class Folding:
    """A change set's event texts, made and not yet folded in (:meth:`EventMirror.prepare`)."""

    __slots__ = ("change_set", "texts")

    def __init__(
        self, change_set: ChangeSet, texts: list[tuple[str, str, int, str | None]]
    ) -> None:
        self.change_set = change_set
        #: (kind, key, version, event text; None: a delete), in the change set's order
        self.texts = texts


@final
class EventMirror:
    """The data set applied so far: each item's ``put-object`` event text, by kind and key.

    ``full``: whether a full data set has been folded in (before that, it
    holds only the changes seen, and is no data set to start from).
    ``selector``: the selector of the last change set that had one.
    """

    __slots__ = ("_items", "full", "selector")

    def __init__(self) -> None:
        #: kind ("flag", "segment") → key → (version, event text; None: deleted)
        self._items: dict[str, dict[str, tuple[int, str | None]]] = {
            "flag": {},
            "segment": {},
        }
        self.full = False
        self.selector: Selector = NO_SELECTOR

    def fold(self, change_set: ChangeSet) -> list[str]:
        """Fold ``change_set`` in; the events of what it changed (puts and deletes), in order.

        A full transfer replaces what the mirror held (its events are every
        item's). An FDv1 patch older than the item held changes nothing, as
        the store does not apply it. (:meth:`prepare`, then :meth:`commit`.)
        """
        return self.commit(self.prepare(change_set))

    def prepare(self, change_set: ChangeSet) -> Folding:
        """``change_set``'s event texts, made before anything changes: what may raise.

        An item that cannot be written as JSON (nested past what the
        encoder follows from here) raises here, with the mirror untouched,
        so that its caller can refuse the whole change set before the store
        applies it.
        """
        texts: list[tuple[str, str, int, str | None]] = []
        if change_set.intent is not IntentCode.TRANSFER_NONE:
            for item in change_set._items:
                if isinstance(item, Change):
                    kind, key, version = item.kind.value, item.key, item.version
                    text = event_of(item)
                else:  # a raw put: (kind, key, version, raw, path, ...)
                    kind, key, version, raw, path = item[:5]
                    if path == RAW_EVENT:
                        text = raw
                    elif path == RAW_DATA:
                        text = f'{{"event":"put-object","data":{raw}}}'
                    else:  # (no other place a put's text comes from)
                        text = event_of(Change._raw_put(ObjectKind(kind), *item[1:5]))
                texts.append((kind, key, version, text))
        return Folding(change_set, texts)

    def commit(self, folding: Folding) -> list[str]:
        """Fold a prepared change set in (:meth:`prepare`); the events of what it changed."""
        change_set = folding.change_set
        if change_set.intent is IntentCode.TRANSFER_NONE:
            return []
        if change_set.intent is IntentCode.TRANSFER_FULL:
            self.full = True
            for items in self._items.values():
                items.clear()
        if change_set.selector.defined:
            self.selector = change_set.selector
        compare = change_set.compare_versions
        events: list[str] = []
        for kind, key, version, text in folding.texts:
            items = self._items[kind]
            old = items.get(key)
            if compare and old and old[0] >= version:
                continue
            items[key] = (version, text)
            events.append(_delete_event(kind, key, version) if text is None else text)
        return events

    def copy(self) -> EventMirror:
        """Another mirror holding the same data now (the texts shared, never copied)."""
        other = EventMirror()
        other._items = {kind: dict(items) for kind, items in self._items.items()}
        other.full = self.full
        other.selector = self.selector
        return other

    def full_events(self) -> list[str]:
        """Every item's ``put-object`` event text (a full transfer's, deleted items left out)."""
        return [
            text
            for items in self._items.values()
            for _, text in items.values()
            if text is not None
        ]
