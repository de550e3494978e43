"""A snapshot's flags and segments: each compiled from its entry on its first lookup.

The store (``aioflags/_datasystem/_store.py``) builds these tables from
ingest's entries and hands them to a :class:`FlagSnapshot`; an evaluation
looks a flag up and, the first time, the table asks the model
(``_model.py``) to compile it. Both sides call down: the store into the
tables and the model, the snapshot into the tables and the model, and no
code below the data system ever calls back into it (issue 49:
``tests/test_layering.py`` traces a change set from the store's apply to
its first evaluation and checks that no call runs up a layer).

A table's entries are ingest's :data:`RawPut` tuples (strings and ints,
which the garbage collector does not track), a tuple of the same shape
holding a parsed object (:data:`PARSED`), or an object (tombstones,
malformed items).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeAlias, TypeVar

from aioflags._core._json import raw_object

from ._model import CompiledFlag, CompiledSegment, compile_flag, compile_segment

__all__ = [
    "PARSED",
    "Layered",
    "RawPut",
    "Table",
    "entry_state",
    "flag_table",
    "make_flag",
    "make_segment",
    "segment_table",
]


#: An entry as ingest makes it: ``(kind, key, version, source, path,
#: version, deleted, *nodes it uses)``, ``source`` a text and ``path`` where
#: the item's object sits in it (or :data:`PARSED`: ``source`` is the
#: object). The data system's ``RawPut`` (``_datasystem/_datatypes.py``)
#: is this type; it is named here too so that no annotation of this layer
#: names the one above.
RawPut: TypeAlias = tuple[Any, ...]
#: ``path`` of a flag entry whose source is a parsed object, not text.
PARSED: Final = -1
#: Held while a table makes an entry's object (one object a key).
_TABLE_LOCK: Final = threading.Lock()
_Item = TypeVar("_Item", CompiledFlag, CompiledSegment)


def make_flag(entry: RawPut) -> CompiledFlag:
    """The flag of a table's entry: its object read from the text, then compiled."""
    source, path = entry[3], entry[4]
    return compile_flag(
        entry[1], source if path == PARSED else raw_object(source, path)
    )


def make_segment(entry: RawPut) -> CompiledSegment:
    """The segment of a table's entry: its object read from the text, then compiled."""
    return compile_segment(entry[1], raw_object(entry[3], entry[4]))


def entry_state(entry: RawPut | CompiledFlag | CompiledSegment) -> tuple[bool, int]:
    """(live, version) of a table's entry, without making its object."""
    if isinstance(entry, tuple):
        return (not entry[6], entry[5])
    return (not entry.deleted, entry.version)


class Table(Mapping[str, _Item]):
    """A snapshot's flags or segments: each item made from its entry on its first lookup.

    Every item's entry (:attr:`entries`) is ingest's :data:`RawPut` tuple
    (which the garbage collector does not track: strings and ints), a
    tuple of the same shape for a parsed object, or an object (tombstones,
    malformed items). The first lookup of a key makes its item (``make``:
    compiles it), keeps it in :attr:`hot`, a plain ``dict``, and as its
    entry in place of what it was made of: so a
    snapshot of 100,000 flags that are never evaluated adds no object per
    flag for the collector to track, and no flag is compiled before it is
    used. The evaluation fast paths index :attr:`hot` (CPython specialises
    item access for an exact ``dict`` only). Its keys are fixed once built
    (the store makes a new table for new data); only an entry's form changes.
    """

    __slots__ = ("entries", "hot", "make")

    def __init__(
        self,
        entries: dict[str, RawPut | _Item],
        make: Callable[[RawPut], _Item],
        hot: dict[str, _Item] | None = None,
    ) -> None:
        #: Every item's entry, by key: its keys never change once the table
        #: is built; an entry is replaced by its item once made (a value
        #: written under the table lock: readers see either, and both say
        #: the same of the item: :func:`entry_state`).
        self.entries: dict[str, RawPut | _Item] = entries
        #: The items looked up so far, by key.
        self.hot: dict[str, _Item] = {} if hot is None else hot
        self.make: Callable[[RawPut], _Item] = make

    def __getitem__(self, key: str) -> _Item:
        try:
            return self.hot[key]
        except KeyError:
            entry = self.entries[key]  # (KeyError: no such item)
        with _TABLE_LOCK:  # one object a key, whatever the threads
            item = self.hot.get(key)
            if item is None:
                if isinstance(entry, tuple):
                    item = self.make(entry)
                    # The item is its entry from now on: the text or the
                    # parsed JSON it was made of is not kept beside it
                    # (a parsed flag is some twenty objects for the
                    # collector to walk, for as long as the data lasts).
                    self.entries[key] = item
                else:
                    item = entry
                self.hot[key] = item
        return item

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Table({len(self)} items, {len(self.hot)} looked up)"

    def state_of(self, key: str) -> tuple[bool, int] | None:
        """(live, version) of ``key``'s item without making its object; None: absent."""
        entry = self.entries.get(key)
        return None if entry is None else entry_state(entry)

    def with_overlay(self, overlay: Table[_Item]) -> Table[_Item]:
        """A new table: these entries, then ``overlay``'s over them.

        The items already made in either are kept (compiled work is not
        lost); the copies are C-speed (no object is made per entry).
        """
        entries = {**self.entries, **overlay.entries}
        # A copy first, in one C-level step: another thread (a blocking
        # client's) may add an item to ``hot`` meanwhile, and a walk of the
        # dict itself would then raise (its size changed during iteration).
        hot = self.hot.copy()
        for key in overlay.entries:  # (its keys never change)
            hot.pop(key, None)
        hot.update(overlay.hot)
        return Table(entries, self.make, hot)


def flag_table(entries: dict[str, RawPut | CompiledFlag]) -> Table[CompiledFlag]:
    """A snapshot's flags (see :class:`Table`): each compiled on its first lookup."""
    return Table(entries, make_flag)


def segment_table(
    entries: dict[str, RawPut | CompiledSegment],
) -> Table[CompiledSegment]:
    """A snapshot's segments (see :class:`Table`): each compiled on its first lookup."""
    return Table(entries, make_segment)


class Layered(Mapping[str, _Item]):
    """A read-only mapping: ``overlay`` over ``base`` (neither is ever written).

    What a snapshot reads after a delta until the overlay is merged: lookups
    cost one more dict probe; building one costs nothing like a copy.
    """

    __slots__ = ("_len", "base", "overlay")

    def __init__(self, base: Table[_Item], overlay: Table[_Item]) -> None:
        self.base: Table[_Item] = base
        self.overlay: Table[_Item] = overlay
        self._len = len(base) + sum(1 for k in overlay if k not in base)

    def __getitem__(self, key: str) -> _Item:
        if key in self.overlay.entries:
            return self.overlay[key]
        return self.base[key]

    def __contains__(self, key: object) -> bool:
        return key in self.overlay.entries or key in self.base

    def __iter__(self) -> Iterator[str]:
        yield from self.base
        base = self.base
        yield from (k for k in self.overlay if k not in base)

    def __len__(self) -> int:
        return self._len

    def state_of(self, key: str) -> tuple[bool, int] | None:
        """(live, version) of ``key``'s item without making its object; None: absent."""
        state = self.overlay.state_of(key)
        return self.base.state_of(key) if state is None else state

    def merged(self) -> Table[_Item]:
        """One table with the same items (C-speed copies)."""
        return self.base.with_overlay(self.overlay)
