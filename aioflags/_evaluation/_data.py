"""SnapshotData: one immutable version of the flag data, as an evaluation reads it.

A :class:`~._snapshot.FlagSnapshot` is this data and the composition it
was handed out with (events, hooks, lens); its methods are one call each,
``evaluation.answer(data, ...)``. The evaluation pipeline reads the data
through the :class:`~._door.Data` protocol, by the public attributes it
names (:attr:`SnapshotData.initialized`, :attr:`SnapshotData.matcher`);
the all-flags state, OFREP, the store and the gate read the rest.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NoReturn, final

from aioflags._core._frozen import refuse, set_field

from ._evaluate import Matcher

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._guarded import Guarded
    from ._membership import MembershipSource
    from ._model import CompiledFlag, CompiledSegment

__all__ = ["EMPTY", "SnapshotData"]

EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@final
class SnapshotData:
    """One immutable version of the flag data: what an evaluation reads of a snapshot.

    Attributes:
        initialized: whether it holds data from a source. Not ready means
            no flags: every evaluation answers ``CLIENT_NOT_READY`` (the
            door's answer).
        flags: the flags by key (deleted ones kept as tombstones); a
            store's table may compile a flag on first access. Empty when
            not initialized.
        segments: the segments by key, as :attr:`flags`.
        matcher: the flags' heads and what their code reads (flags,
            segments, big segments' memberships): what the pipeline runs.
            Its caches (heads, counting matchers) fill as flags are
            evaluated; it is this data's alone, or shared with data that
            differs from it only in where memberships come from
            (:meth:`with_memberships`).
        state_of: what a store's table tells of a key without compiling
            its flag (``(exists, version)``, or None for no entry); None
            when the flags are a plain mapping.
        plans: the all-flags state's plans for this data, by options
            (``_snapshot._Plan``), made on first use: a cache, shared by
            :meth:`with_memberships`.

    Assignment raises: a snapshot's data never changes once handed out.
    """

    __slots__ = ("flags", "initialized", "matcher", "plans", "segments", "state_of")

    initialized: bool
    flags: Mapping[str, CompiledFlag]
    segments: Mapping[str, CompiledSegment]
    matcher: Matcher
    state_of: Callable[[str], tuple[bool, int] | None] | None
    plans: dict[tuple[bool, bool, bool], Any]

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag] = EMPTY,
        segments: Mapping[str, CompiledSegment] = EMPTY,
        *,
        initialized: bool = False,
        big_segments: MembershipSource | None = None,
        hot: dict[str, CompiledFlag] | None = None,
        state_of: Callable[[str], tuple[bool, int] | None] | None = None,
        plans: dict[tuple[bool, bool, bool], Any] | None = None,
        guarded: Mapping[str, Guarded] | None = None,
    ) -> None:
        """``big_segments``: where unbounded segments' memberships come from.

        ``hot`` and ``state_of``: what a store's table of ``flags`` tells:
        the flags it has made so far (:attr:`Matcher.hot`), and whether a
        key's flag exists without making it. ``plans``: another data's
        all-flags plans, to share (:meth:`with_memberships`). ``guarded``:
        the client's guards by flag key (:attr:`Matcher.guarded`).
        """
        # Not ready means no flags: no head is found, the door answers.
        if not initialized:
            flags, segments, hot, state_of = EMPTY, EMPTY, None, None
        set_field(self, "initialized", initialized)
        set_field(self, "flags", flags)
        set_field(self, "segments", segments)
        set_field(self, "state_of", state_of)
        set_field(self, "matcher", Matcher(flags, segments, big_segments, hot, guarded))
        set_field(self, "plans", {} if plans is None else plans)

    def composed(self, big_segments: MembershipSource | None) -> SnapshotData:
        """This data with ``big_segments``' memberships, and a matcher of its own.

        The flags, segments and the table's hot flags are shared; the
        matcher, its heads and the all-flags plans are new (what a client
        hands out: ``FlagSnapshot.composed``).
        """
        return SnapshotData(
            self.flags,
            self.segments,
            initialized=self.initialized,
            big_segments=big_segments,
            hot=self.matcher.hot,
            state_of=self.state_of,
            guarded=self.matcher.guarded,
        )

    def with_memberships(self, source: MembershipSource) -> SnapshotData:
        """This data, with unbounded segments' memberships from ``source``.

        For one pass of an awaited evaluation that needs big-segment
        memberships: it shares this data's heads and all-flags plans
        (neither depends on where memberships come from).
        """
        data = SnapshotData(
            self.flags,
            self.segments,
            initialized=self.initialized,
            big_segments=source,
            hot=self.matcher.hot,
            state_of=self.state_of,
            plans=self.plans,
            guarded=self.matcher.guarded,
        )
        # (before it is handed out: the new matcher's cache is this one's)
        data.matcher.heads = self.matcher.heads
        return data

    def has_flag(self, key: str) -> bool:
        """Whether flag ``key`` exists (not deleted), without making it."""
        state_of = self.state_of
        if state_of is None:
            flag = self.flags.get(key)
            return flag is not None and not flag.deleted
        state = state_of(key)
        return state is not None and state[0]

    def flag_keys(self) -> frozenset[str]:
        """The keys of the flags that exist (not deleted)."""
        flags = self.flags
        # A store's table tells without compiling a flag it has not made yet.
        state_of = self.state_of
        if state_of is None:
            return frozenset(k for k, f in flags.items() if not f.deleted)
        return frozenset(
            k for k in flags if (state := state_of(k)) is not None and state[0]
        )

    def flag(self, key: str) -> CompiledFlag | None:
        """The compiled flag ``key`` (None if absent or deleted)."""
        flag = self.flags.get(key)
        return None if flag is None or flag.deleted else flag

    def __setattr__(self, name: str, value: object) -> NoReturn:
        refuse(name, "assign to")

    def __delattr__(self, name: str) -> NoReturn:
        refuse(name, "delete")

    def __repr__(self) -> str:
        return f"SnapshotData(flags={len(self.flags)}, initialized={self.initialized})"
