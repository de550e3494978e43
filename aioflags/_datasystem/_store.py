"""The in-memory store: immutable snapshots swapped atomically (protocol.md §10).

``apply`` turns a change set into entries in time slices (yielding to the
event loop, so that ingesting 100,000 flags never stalls it), then swaps in
a new :class:`FlagSnapshot` in one synchronous step. It returns the keys of
the flags whose evaluation may have changed, including flags that reach a
changed flag or segment through prerequisites or ``segmentMatch`` clauses
(the keys come from the raw entries: nothing is compiled to find them).

A flag is held as its entry (ingest's raw put) in a :class:`Table` and
compiled on its first lookup: the tables are the evaluation layer's
(``aioflags/_evaluation/_tables.py``), so that an evaluation that compiles
a flag calls down into the model and never back up into the store (the
store asks the model to compile; never the other way round). The async client's ``all_flags_state`` awaits
:meth:`Store.warm` (compiling every flag not compiled yet, in slices), so
that it never compiles 10,000 flags in one go. With :attr:`Store.compile_ahead` (``Config.gc_freeze``),
:meth:`Store.maintain` compiles them all in the background after the swap, in
slices, freezing what it made. A delta does not copy the snapshot: the
new one reads a small overlay over the previous data (:class:`Layered`),
which the maintenance task merges into one table soon after (or the
delta itself, when the overlay has grown past an eighth of the data).

Rules: ``xfer-full`` replaces everything; ``xfer-changes`` upserts without
comparing versions (FDv2) unless the change set asks for it (FDv1 patches);
``none`` changes nothing. Deleted items are kept as tombstones.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import anyio
import anyio.to_thread

from aioflags._core._json import raw_object
from aioflags._core._pacing import Pacer
from aioflags._core._threads import sdk_limiter
from aioflags._evaluation._model import (
    CompiledFlag,
    CompiledSegment,
    compile_flag,
    compile_segment,
    flag_tombstone,
    registered,
    segment_tombstone,
    system_of,
)
from aioflags._evaluation._snapshot import FlagSnapshot
from aioflags._evaluation._tables import (
    PARSED,
    Layered,
    Table,
    entry_state,
    flag_table,
    make_flag,
    make_segment,
    segment_table,
)

from ._datatypes import (
    NO_SELECTOR,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    Selector,
)
from ._patterns import HeldPatterns, compile_patterns, held_patterns
from ._payloads import object_meta

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Mapping, Sequence

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._data import SnapshotData
    from aioflags._evaluation._guarded import Guarded
    from aioflags._evaluation._model import FlagSystem

    from ._datatypes import Change, RawPut

__all__ = ["Store", "snapshot_from_data"]

#: A flag or segment in the dependency index: "f" or "s", then its key. A
#: string, not a tuple holding the kind: the garbage collector does not
#: track it (at 100,000 flags, tuples here were ~180,000 objects more for
#: every full collection to walk while the data loads).
_Node: TypeAlias = str
_PREFIX: Final = {ObjectKind.FLAG: "f", ObjectKind.SEGMENT: "s"}
_FLAG: Final = ObjectKind.FLAG
_RAW_KINDS: Final = {k.value: k for k in ObjectKind}  # a RawPut's kind
_Item = TypeVar("_Item", CompiledFlag, CompiledSegment)


def _table(
    mapping: Mapping[str, _Item], make: Callable[[RawPut], _Item]
) -> Table[_Item]:
    """``mapping`` as a table (a snapshot built from objects holds a dict)."""
    if isinstance(mapping, Table):
        return mapping
    return Table(dict(mapping), make, dict(mapping))


def _state_of(mapping: Mapping[str, _Item], key: str) -> tuple[bool, int] | None:
    """(live, version) of ``key``'s item in a snapshot's mapping (None: absent)."""
    if isinstance(mapping, (Table, Layered)):
        return mapping.state_of(key)
    item = mapping.get(key)
    return None if item is None else entry_state(item)


def _state_over(
    entries: dict[str, RawPut | _Item], base: Table[_Item], key: str
) -> tuple[bool, int] | None:
    """(live, version) of ``key``'s item in ``entries`` over ``base`` (None: absent)."""
    entry = entries.get(key)
    return base.state_of(key) if entry is None else entry_state(entry)


def _parts(
    mapping: Mapping[str, _Item], make: Callable[[RawPut], _Item]
) -> tuple[Table[_Item], Table[_Item]]:
    """(base, overlay) of a snapshot's mapping."""
    if isinstance(mapping, Layered):
        return mapping.base, mapping.overlay
    return _table(mapping, make), Table({}, make)


def _flag_entry(
    change: Change | RawPut,
) -> tuple[RawPut | CompiledFlag, tuple[_Node, ...]]:
    """A flag change as a table holds it (see :class:`Table`) and the nodes it uses."""
    if isinstance(change, tuple):  # ingest's put: its text and what it uses
        return change, (() if change[6] else change[7:])
    key = change.key
    if change.action is ChangeKind.DELETE:
        return flag_tombstone(key, change.version), ()
    obj = change.obj
    if not isinstance(obj, dict):
        return compile_flag(key, obj), ()  # malformed: say so now
    meta = object_meta(obj)
    entry = ("flag", key, meta[0], obj, PARSED, meta[0], meta[1])
    return entry, (() if meta[1] else meta[2:])


def _large(
    items: Sequence[Change | RawPut],
) -> dict[FlagSystem, list[tuple[str, JSONValue]]]:
    """The definitions of ``items``' flag objects that are large, by their system.

    Each flag system says which of its definitions are large
    (``FlagSystem.is_large``: flagd's, a large targeting). Only objects (a
    flagd source's): a flag that ingest holds as text is read, and
    compiled, when it is first evaluated.
    """
    large: dict[FlagSystem, list[tuple[str, JSONValue]]] = {}
    for item in items:
        if isinstance(item, tuple) or item.kind is not ObjectKind.FLAG:
            continue
        obj = item.obj if item.action is ChangeKind.PUT else None
        if isinstance(obj, dict):
            system, definition = system_of(obj)
            if system.is_large(definition):
                large.setdefault(system, []).append((item.key, definition))
    return large


def _link(
    change_set: ChangeSet, held: Mapping[str, dict[str, JSONValue]]
) -> tuple[ChangeSet, dict[str, dict[str, JSONValue]]]:
    """``change_set`` linked by each flag system to what its flags share (``FlagSystem.link``).

    ``held``: the shared values each system held before, by its name;
    returned: those after ``change_set``.
    """
    shared = {}
    for system in registered():
        change_set, shared[system.name] = system.link(
            change_set, held.get(system.name, {})
        )
    return change_set, shared


def _segment_entry(
    change: Change | RawPut,
) -> tuple[CompiledSegment, tuple[_Node, ...]]:
    if isinstance(change, tuple):
        segment = compile_segment(change[1], raw_object(change[3], change[4]))
    elif change.action is ChangeKind.DELETE:
        return segment_tombstone(change.key, change.version), ()
    else:
        segment = compile_segment(change.key, change.obj)
    if segment.deleted or not segment.segment_keys:
        return segment, ()
    return segment, tuple("s" + k for k in segment.segment_keys)


class Store:
    """Holds the current snapshot and the selector; applies change sets."""

    __slots__ = (
        "_dependents",
        "_frozen",
        "_patterns",
        "_selector",
        "_shared",
        "_uses",
        "_wake",
        "_warm",
        "compile_ahead",
        "data",
        "flag_count",
        "freeze_gc",
        "guarded",
        "on_swap",
        "snapshot",
    )

    def __init__(self) -> None:
        #: The current immutable snapshot of the data (a plain attribute: read
        #: on every evaluation). Data alone: the client's evaluator composes
        #: it with analytics events, hooks and big segments.
        self.snapshot = FlagSnapshot()
        #: The current snapshot's data (:class:`SnapshotData`), what the
        #: client's awaited evaluations read: replaced with :attr:`snapshot`.
        self.data: SnapshotData = self.snapshot._data
        #: Called as the snapshot is replaced, before anything evaluates the
        #: new one (the client's evaluator: the event loop's ledger counts
        #: the current data's flags in place by key, and forgets them).
        self.on_swap: Callable[[], None] | None = None
        #: The client's guards by flag key (issue 98): every snapshot made
        #: here hands them to its matcher, and each is shown its flag as
        #: data arrives (:meth:`_swap`). None: no guards.
        self.guarded: Mapping[str, Guarded] | None = None
        #: The compiled ``matches`` patterns of the data, by flag and
        #: segment (node): made before a change set is installed (on a
        #: worker thread, if any is new: see ``_patterns.py``), held so that
        #: compiling a flag on its first evaluation finds them. A full
        #: transfer replaces them all; a delta, those of the items it changes
        #: or deletes (so a pattern nothing uses any more is let go).
        self._patterns: HeldPatterns = {}
        #: How many flags the snapshot holds that are not deleted (kept as
        #: change sets are applied: counting 100,000 flags is a stall).
        self.flag_count = 0
        self._selector = NO_SELECTOR
        #: The values each flag system's flags share (flagd's evaluators:
        #: ``FlagSystem.link``), by system name, then by item key.
        self._shared: dict[str, dict[str, JSONValue]] = {}
        # node -> the nodes it uses; dependency -> the nodes that use it
        self._uses: dict[_Node, tuple[_Node, ...]] = {}
        self._dependents: dict[_Node, set[_Node]] | None = {}
        #: Call ``gc.freeze()`` once a full transfer is compiled (opt-in).
        self.freeze_gc = False
        #: Compile every flag not compiled yet in the background after a change set
        #: (the client sets it with ``gc_freeze``). Off, a flag is compiled
        #: on its first evaluation: a compiled flag is some 50 objects the
        #: garbage collector tracks, and compiling 10,000 at once grows the
        #: heap fast enough to set off full collections (each walking the
        #: whole heap, 50-200 ms at that size) unless they are frozen as
        #: they are made.
        self.compile_ahead = False
        self._wake: anyio.Event | None = None
        self._frozen: Mapping[str, CompiledFlag] | None = None  # last frozen data
        self._warm: Mapping[str, CompiledFlag] | None = None  # last fully compiled

    @property
    def selector(self) -> Selector:
        """The selector of the last applied full or delta change set."""
        return self._selector

    @property
    def initialized(self) -> bool:
        """Whether any data has been applied."""
        return self.snapshot.initialized

    async def apply(self, change_set: ChangeSet) -> frozenset[str]:
        """Apply a change set; return the keys of flags that may have changed."""
        change_set, shared = _link(change_set, self._shared)
        items, found, nodes = change_set._items, change_set._patterns, change_set._nodes
        patterns = held_patterns(items, found, nodes)  # None: something to compile
        if patterns is None:  # its patterns compiled off the event loop, first,
            # on the SDK's own threads (the app's pool may be full). Abandoned
            # if cancelled, as parsing is: a payload of many long patterns
            # must not hold up a shutdown.
            patterns = await anyio.to_thread.run_sync(
                compile_patterns,
                items,
                found,
                nodes,
                abandon_on_cancel=True,
                limiter=sdk_limiter(),
            )
        for system, large in _large(items).items():  # built off the event loop too
            await anyio.to_thread.run_sync(
                system.prebuild, large, abandon_on_cancel=True, limiter=sdk_limiter()
            )
        pacer = Pacer(freeze_gc=self.freeze_gc, hold_gc=True)
        steps = self._steps(change_set, pacer, patterns)
        try:
            while True:
                next(steps)
                await pacer.pause()
        except StopIteration as done:
            changed: frozenset[str] = done.value
        finally:
            pacer.close()
        self._shared = shared
        if self._wake is not None:
            self._wake.set()
        return changed

    def apply_now(self, change_set: ChangeSet) -> frozenset[str]:
        """Apply a change set synchronously (for sync callers and tests)."""
        change_set, self._shared = _link(change_set, self._shared)
        patterns = compile_patterns(
            change_set._items, change_set._patterns, change_set._nodes
        )
        pacer = Pacer()
        steps = self._steps(change_set, pacer, patterns)
        try:
            while True:
                next(steps)
                pacer.restart()
        except StopIteration as done:
            changed: frozenset[str] = done.value
        if self._wake is not None:
            self._wake.set()
        return changed

    # ---------------------------------------------------------------- apply
    def _steps(
        self, change_set: ChangeSet, pacer: Pacer, patterns: HeldPatterns
    ) -> Generator[None, None, frozenset[str]]:
        """The work of an apply; it yields where the caller may pause (sliced)."""
        intent = change_set.intent
        if intent is IntentCode.TRANSFER_NONE:
            return frozenset()
        if intent is IntentCode.TRANSFER_FULL:
            changed = yield from self._full(change_set, pacer)
            self._patterns = patterns
            return changed
        return (yield from self._delta(change_set, pacer, patterns))

    def _full(
        self, change_set: ChangeSet, pacer: Pacer
    ) -> Generator[None, None, frozenset[str]]:
        old = self.data
        old_flags, old_segments = old.flags, old.segments
        initial = not old_flags and not old_segments  # everything is new
        # Every item's entry: ingest's put tuple itself (no object per item;
        # see Table), or an object for anything else.
        entries: dict[str, RawPut | CompiledFlag] = {}
        segments: dict[str, RawPut | CompiledSegment] = {}
        uses: dict[_Node, tuple[_Node, ...]] = {}
        changed: set[_Node] = set()
        live_flags: set[str] = set()  # built as it goes: a frozenset of
        # 100,000 keys from a list at the end was a 10-20 ms step
        live: bool
        version: int
        for change in change_set._items:
            if isinstance(change, tuple):
                # ingest's put (the common case, inline): its dependency
                # nodes already made
                key = change[1]
                live = not change[6]  # deleted
                version = change[5]
                if change[0] == "flag":
                    kind = _FLAG
                    entries[key] = change
                    if live:
                        live_flags.add(key)
                    else:
                        live_flags.discard(key)
                else:
                    kind = _RAW_KINDS[change[0]]
                    segments[key] = change
                if live and len(change) > 7:
                    uses[_PREFIX[kind] + key] = change[7:]
            else:
                kind, key = change.kind, change.key
                if kind is _FLAG:
                    entry, deps = _flag_entry(change)
                    entries[key] = entry
                    live, version = entry_state(entry)
                    if live:
                        live_flags.add(key)
                    else:
                        live_flags.discard(key)  # the last change of a key counts
                else:
                    segment, deps = _segment_entry(change)
                    segments[key] = segment
                    live, version = entry_state(segment)
                if deps:
                    uses[_PREFIX[kind] + key] = deps
            if not initial:
                before = (
                    _state_of(old_flags, key)
                    if kind is _FLAG
                    else _state_of(old_segments, key)
                )
                if (False if before is None else before[0]) is not live or (
                    live and before[1] != version  # type: ignore[index]
                ):
                    changed.add(_PREFIX[kind] + key)
            if pacer.due():
                yield
        if not initial:  # what the new data set no longer has
            olds: tuple[tuple[str, Mapping[str, object], Mapping[str, Any]], ...] = (
                ("f", entries, old_flags),
                ("s", segments, old_segments),
            )
            for prefix, new, previous in olds:
                for key in previous:  # (keys only: no object made)
                    if key not in new:
                        state = _state_of(previous, key)
                        if state is not None and state[0]:
                            changed.add(prefix + key)
                    if pacer.due():
                        yield
        self._uses = uses
        self._dependents = None  # indexed when a later change set needs it
        live_keys = frozenset(live_flags)
        self.flag_count = len(live_keys)
        self._install(flag_table(entries), segment_table(segments), change_set.selector)
        if initial:  # every live flag is new: no need to walk the dependents
            return live_keys
        return (yield from self._affected(changed, pacer))

    def _delta(
        self, change_set: ChangeSet, pacer: Pacer, patterns: HeldPatterns
    ) -> Generator[None, None, frozenset[str]]:
        old = self.data
        flag_base, flag_overlay = _parts(old.flags, make_flag)
        segment_base, segment_overlay = _parts(old.segments, make_segment)
        # What earlier deltas changed (small), then this one's changes.
        flag_entries = dict(flag_overlay.entries)
        segment_entries = dict(segment_overlay.entries)
        compare = change_set.compare_versions
        dependents = yield from self._index(pacer)
        changed: set[_Node] = set()
        written: tuple[set[str], set[str]] = (set(), set())  # flag, segment keys
        count = self.flag_count
        for change in change_set._items:
            kind, key = (
                (_RAW_KINDS[change[0]], change[1])
                if isinstance(change, tuple)
                else (change.kind, change.key)
            )
            if kind is _FLAG:
                flag, deps = _flag_entry(change)
                prev = _state_over(flag_entries, flag_base, key)
                live, version = entry_state(flag)
                if compare and prev is not None and prev[1] >= version:
                    continue
                flag_entries[key] = flag
                written[0].add(key)
                count += live - (prev is not None and prev[0])
            else:
                segment, deps = _segment_entry(change)
                prev = _state_over(segment_entries, segment_base, key)
                if compare and prev is not None and prev[1] >= segment.version:
                    continue
                segment_entries[key] = segment
                written[1].add(key)
            node = _PREFIX[kind] + key
            changed.add(node)
            self._set_uses(dependents, node, deps)
            if pacer.due():
                yield
        self.flag_count = count
        self._install(
            self._compact(flag_base, flag_overlay, flag_entries, written[0]),
            self._compact(segment_base, segment_overlay, segment_entries, written[1]),
            change_set.selector,
        )
        held = self._patterns
        for node in changed:  # an item's patterns replace its old ones
            outcomes = patterns.get(node)
            if outcomes:
                held[node] = outcomes
            else:
                held.pop(node, None)
        return (yield from self._affected(changed, pacer))

    @staticmethod
    def _compact(
        base: Table[_Item],
        overlay: Table[_Item],
        entries: dict[str, RawPut | _Item],
        written: set[str],
    ) -> Mapping[str, _Item]:
        """``base`` with ``entries`` over it (``overlay``: the items made of the last).

        ``written``: the keys this delta wrote into ``entries``. The items the
        overlay made of the others are kept, as their entries too: one made
        while the delta was applied (its entry in the overlay is then the
        item, in ``entries`` still what it was made of) is not made again.
        """
        if not entries:
            return base
        # (copied in one C-level step, not walked: a thread may add to it)
        kept = overlay.hot.copy()
        for key in written:
            kept.pop(key, None)
        entries.update(kept)
        changed = Table(entries, overlay.make)
        changed.hot.update(kept)
        if len(entries) * 8 > len(base):
            return base.with_overlay(changed)
        return Layered(base, changed)

    def _install(
        self,
        flags: Mapping[str, CompiledFlag],
        segments: Mapping[str, CompiledSegment],
        selector: Selector,
    ) -> None:
        self._swap(self._snapshot_of(flags, segments))
        self._selector = selector

    def _swap(self, snapshot: FlagSnapshot) -> None:
        """Evaluate ``snapshot`` from now on (:attr:`on_swap` told first)."""
        if self.on_swap is not None:
            self.on_swap()
        # (the data first: a reader of either sees this data or the last)
        self.data = snapshot._data
        self.snapshot = snapshot
        guarded = self.guarded
        if guarded is not None:
            data = snapshot._data
            for key, guard in guarded.items():
                # (checked, and what is wrong said, once per version: a
                # guard's watch never raises)
                guard.watch(data.flag(key))

    def _snapshot_of(
        self, flags: Mapping[str, CompiledFlag], segments: Mapping[str, CompiledSegment]
    ) -> FlagSnapshot:
        """A ready snapshot of this data, with what its table tells (hot flags, states)."""
        return FlagSnapshot(
            flags,
            segments,
            initialized=True,
            hot=flags.hot if isinstance(flags, Table) else None,
            state_of=flags.state_of if isinstance(flags, (Table, Layered)) else None,
            guarded=self.guarded,
        )

    # ------------------------------------------------------------ dependents
    def _index(self, pacer: Pacer) -> Generator[None, None, dict[_Node, set[_Node]]]:
        """Each dependency and the nodes that use it (built on first need, in slices)."""
        dependents = self._dependents
        if dependents is None:
            dependents = {}
            for node, deps in self._uses.items():
                for dep in deps:
                    users = dependents.get(dep)
                    if users is None:
                        dependents[dep] = {node}
                    else:
                        users.add(node)
                if pacer.due():
                    yield
            self._dependents = dependents
        return dependents

    def _set_uses(
        self,
        dependents: dict[_Node, set[_Node]],
        node: _Node,
        deps: tuple[_Node, ...],
    ) -> None:
        for dep in self._uses.pop(node, ()):
            users = dependents.get(dep)
            if users is not None:
                users.discard(node)
        if deps:
            self._uses[node] = deps
            for dep in deps:
                dependents.setdefault(dep, set()).add(node)

    def _affected(
        self, changed: set[_Node], pacer: Pacer
    ) -> Generator[None, None, frozenset[str]]:
        dependents = yield from self._index(pacer)
        seen = set(changed)
        stack = list(changed)
        while stack:
            for user in dependents.get(stack.pop(), ()):
                if user not in seen:
                    seen.add(user)
                    stack.append(user)
            if pacer.due():
                yield
        return frozenset(node[1:] for node in seen if node[0] == "f")

    # ---------------------------------------------------------- maintenance
    async def warm(self) -> FlagSnapshot:
        """The current snapshot with every flag compiled, compiling in slices.

        What ``all_flags_state`` awaits first: right after a full transfer
        the background pass may not have reached every flag yet, and
        evaluating them all would otherwise compile the rest in one step on
        the event loop. Costs nothing once the snapshot's flags are warm.
        """
        while True:
            snapshot = self.snapshot
            flags = snapshot._data.flags
            if flags is self._warm or not snapshot.initialized:
                return snapshot
            pacer = Pacer(freeze_gc=False)
            for key in list(flags):  # (keys: each flag is compiled as it goes)
                flags[key]
                if pacer.due():
                    await pacer.pause()
            if self.data.flags is flags:
                self._warm = flags
                return self.snapshot
            # replaced meanwhile: warm the new one (its flags are mostly the same)

    async def maintain(self) -> None:
        """The store's background task: merge overlays, compile the flags.

        Runs for as long as the data system; every step is sliced, and a new
        snapshot restarts the work on it. Flags are compiled ahead only with
        :attr:`compile_ahead`; with :attr:`freeze_gc`, once a snapshot is
        fully compiled ``gc.freeze()`` moves everything alive to the
        collector's permanent generation (later full collections then skip
        the flags).
        """
        self._wake = anyio.Event()
        try:
            while True:
                if not await self._maintain_once():
                    await self._wake.wait()
                self._wake = anyio.Event()
        finally:
            self._wake = None

    async def _maintain_once(self) -> bool:
        """One pass over the current snapshot; False if it was not replaced meanwhile."""
        data = self.data
        if not data.initialized:
            return False
        flags, segments = data.flags, data.segments
        if isinstance(flags, Layered) or isinstance(segments, Layered):
            flags = flags.merged() if isinstance(flags, Layered) else flags
            segments = segments.merged() if isinstance(segments, Layered) else segments
            snapshot = self._snapshot_of(flags, segments)
            self._swap(snapshot)
        if not self.compile_ahead or flags is self._warm:
            return False  # (already compiled, and frozen if asked: nothing to walk)
        freeze = self.freeze_gc
        pacer = Pacer(freeze_gc=freeze)  # what each slice compiled: frozen
        for key in list(flags):  # (keys: each flag is compiled as it goes)
            flags[key]
            if pacer.due():
                await pacer.pause()
                if self.data.flags is not flags:
                    return True  # replaced: start again on the new one
        if self.data.flags is not flags:
            return True
        self._warm = flags
        if freeze and self._frozen is not flags:
            self._frozen = flags
            gc.freeze()
        return False


def snapshot_from_data(
    flags: dict[str, object] | None = None, segments: dict[str, object] | None = None
) -> FlagSnapshot:
    """Build a snapshot straight from flag and segment JSON (tests, files)."""
    return FlagSnapshot(
        {k: compile_flag(k, v) for k, v in (flags or {}).items()},
        {k: compile_segment(k, v) for k, v in (segments or {}).items()},
        initialized=True,
    )
