"""The in-memory store: immutable snapshots swapped atomically (protocol.md §10).

``apply`` compiles a change set's objects (in time-sliced chunks, yielding to
the event loop so that ingesting 10,000 flags never stalls it), then swaps in a
new :class:`FlagSnapshot` in one synchronous step. It returns the keys of the
flags whose evaluation may have changed, including flags that reach a changed
flag or segment through prerequisites or ``segmentMatch`` clauses.

Rules: ``xfer-full`` replaces everything; ``xfer-changes`` upserts without
comparing versions (FDv2) unless the change set asks for it (FDv1 patches);
``none`` changes nothing. Deleted items are kept as tombstones.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, TypeAlias

import anyio.lowlevel

from ._datatypes import (
    NO_SELECTOR,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    Selector,
)
from ._model import (
    CompiledFlag,
    CompiledSegment,
    compile_flag,
    compile_segment,
    flag_tombstone,
    segment_tombstone,
)
from ._snapshot import FlagSnapshot

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._analytics._processor import EventProcessor
    from ._datatypes import Change
    from ._stores._bigsegments import BigSegments
    from ._stores._gate import EvaluationGate

__all__ = ["Store"]

_Node: TypeAlias = tuple[ObjectKind, str]
_SLICE: Final = 0.005  # seconds of compiling between yields to the event loop
_FLAG: Final = ObjectKind.FLAG
_SEGMENT: Final = ObjectKind.SEGMENT


def _compile(change: Change) -> CompiledFlag | CompiledSegment:
    if change.kind is _FLAG:
        if change.action is ChangeKind.DELETE or change.obj is None:
            return flag_tombstone(change.key, change.version)
        return compile_flag(change.key, change.obj)
    if change.action is ChangeKind.DELETE or change.obj is None:
        return segment_tombstone(change.key, change.version)
    return compile_segment(change.key, change.obj)


def _dependencies(item: CompiledFlag | CompiledSegment) -> Iterable[_Node]:
    if item.deleted:
        return ()
    segments = [(_SEGMENT, k) for k in item.segment_keys]
    if isinstance(item, CompiledFlag):
        return [*((_FLAG, k) for k in item.prerequisite_keys), *segments]
    return segments


class Store:
    """Holds the current snapshot and the selector; applies change sets."""

    __slots__ = (
        "_dependents",
        "_selector",
        "big_segments",
        "events",
        "gate",
        "snapshot",
    )

    def __init__(self) -> None:
        #: The current immutable snapshot (a plain attribute: read on every evaluation).
        self.snapshot = FlagSnapshot()
        self._selector = NO_SELECTOR
        # dependency -> the flags and segments that use it
        self._dependents: dict[_Node, set[_Node]] = {}
        #: The analytics event processor whose recorder every snapshot
        #: records evaluations into (None: events are off).
        self.events: EventProcessor | None = None
        #: Where every snapshot's unbounded segments get their memberships
        #: (None: big segments are not configured).
        self.big_segments: BigSegments | None = None
        #: What the async client's evaluations await first (store reads with
        #: the cache off, big-segment memberships); None: nothing.
        self.gate: EvaluationGate | None = None

    def attach_big_segments(self, big_segments: BigSegments) -> None:
        """Evaluate unbounded segments from ``big_segments`` from now on."""
        self.big_segments = big_segments
        self.snapshot = self.snapshot.resolving(big_segments)

    def attach_events(self, processor: EventProcessor) -> None:
        """Record every evaluation from now on into ``processor``'s recorder."""
        self.events = processor
        self.snapshot = self.snapshot.recording(processor.recorder)

    def detach_events(self, processor: EventProcessor) -> None:
        """Stop recording into ``processor`` (if it is the attached one)."""
        if self.events is processor:
            self.events = None
            self.snapshot = self.snapshot.recording(None)

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
        compiled: list[CompiledFlag | CompiledSegment] = []
        deadline = time.perf_counter() + _SLICE
        for change in change_set.changes:
            compiled.append(_compile(change))
            if time.perf_counter() > deadline:
                await anyio.lowlevel.checkpoint()
                deadline = time.perf_counter() + _SLICE
        return self._swap(change_set, compiled)

    def apply_now(self, change_set: ChangeSet) -> frozenset[str]:
        """Apply a change set synchronously (for sync callers and tests)."""
        return self._swap(change_set, [_compile(c) for c in change_set.changes])

    def _swap(
        self, change_set: ChangeSet, compiled: list[CompiledFlag | CompiledSegment]
    ) -> frozenset[str]:
        intent = change_set.intent
        if intent is IntentCode.TRANSFER_NONE:
            return frozenset()
        old = self.snapshot
        old_flags, old_segments = old._flags, old._segments
        changed: set[_Node] = set()
        if intent is IntentCode.TRANSFER_FULL:
            flags: dict[str, CompiledFlag] = {}
            segments: dict[str, CompiledSegment] = {}
            for item in compiled:
                if isinstance(item, CompiledFlag):
                    flags[item.key] = item
                else:
                    segments[item.key] = item
            for kind, new, before in (
                (_FLAG, flags, old_flags),
                (_SEGMENT, segments, old_segments),
            ):
                for key in new.keys() | before.keys():
                    a, b = before.get(key), new.get(key)
                    live_a = a is not None and not a.deleted
                    live_b = b is not None and not b.deleted
                    if live_a != live_b or (live_a and a.version != b.version):  # type: ignore[union-attr]
                        changed.add((kind, key))
            self._rebuild_dependents(flags, segments)
        else:
            flags = dict(old_flags)
            segments = dict(old_segments)
            compare = change_set.compare_versions
            for item in compiled:
                prev: CompiledFlag | CompiledSegment | None
                if isinstance(item, CompiledFlag):
                    node: _Node = (_FLAG, item.key)
                    prev = flags.get(item.key)
                    if compare and prev is not None and prev.version >= item.version:
                        continue
                    flags[item.key] = item
                else:
                    node = (_SEGMENT, item.key)
                    prev = segments.get(item.key)
                    if compare and prev is not None and prev.version >= item.version:
                        continue
                    segments[item.key] = item
                changed.add(node)
                self._update_dependents(node, prev, item)
        events = self.events
        self.snapshot = FlagSnapshot(
            flags,
            segments,
            initialized=True,
            recorder=None if events is None else events.recorder,
            big_segments=self.big_segments,
        )
        self._selector = change_set.selector
        return self._affected_flags(changed)

    # ------------------------------------------------------------ dependents
    def _rebuild_dependents(
        self, flags: dict[str, CompiledFlag], segments: dict[str, CompiledSegment]
    ) -> None:
        dependents: dict[_Node, set[_Node]] = {}
        for kind, items in ((_FLAG, flags), (_SEGMENT, segments)):
            for key, item in items.items():
                for dep in _dependencies(item):
                    dependents.setdefault(dep, set()).add((kind, key))
        self._dependents = dependents

    def _update_dependents(
        self,
        node: _Node,
        prev: CompiledFlag | CompiledSegment | None,
        item: CompiledFlag | CompiledSegment,
    ) -> None:
        if prev is not None:
            for dep in _dependencies(prev):
                users = self._dependents.get(dep)
                if users is not None:
                    users.discard(node)
        for dep in _dependencies(item):
            self._dependents.setdefault(dep, set()).add(node)

    def _affected_flags(self, changed: set[_Node]) -> frozenset[str]:
        seen = set(changed)
        stack = list(changed)
        dependents = self._dependents
        while stack:
            for user in dependents.get(stack.pop(), ()):
                if user not in seen:
                    seen.add(user)
                    stack.append(user)
        return frozenset(key for kind, key in seen if kind is _FLAG)


def snapshot_from_data(
    flags: dict[str, object] | None = None, segments: dict[str, object] | None = None
) -> FlagSnapshot:
    """Build a snapshot straight from flag and segment JSON (tests, files)."""
    return FlagSnapshot(
        {k: compile_flag(k, v) for k, v in (flags or {}).items()},
        {k: compile_segment(k, v) for k, v in (segments or {}).items()},
        initialized=True,
    )
