"""The guarded head: how a guarded flag's evaluation notes its arm and serves a pin.

A guard (issue 98, ``aioflags._guards``) watches one flag. The evaluation
knows guards only through the two protocols here: a snapshot's
:class:`~._evaluate.Matcher` holds the client's guards by flag key
(:class:`Guarded`) and, once per flag per snapshot (when the flag's head
is made), asks the flag's guard for its :class:`Watch` of that flag
version; a flag with one gets a head that runs :func:`guarded_run`. An
unguarded flag's head is its own: it pays nothing per evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ._codegen import Code

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._context import Context
    from ._model import CompiledFlag
    from ._results import Result

__all__ = ["Guarded", "Watch", "guarded_head", "guarded_run"]


class Watch(Protocol):
    """A guard's watch of one flag version, as an evaluation reads it.

    Attributes:
        pinned: the result to serve instead of the flag's own (control,
            reason ``GUARDED``), or None: not pinned. Read on every
            evaluation of the flag.
    """

    pinned: Result | None

    def note(self, arm: int, /) -> None:
        """An evaluation served arm ``arm``: the open request scope's arm, if it has none."""
        ...


class Guarded(Protocol):
    """A guard on one flag, as a snapshot's matcher holds it."""

    def watch(
        self, flag: CompiledFlag | None, /
    ) -> tuple[Watch, Mapping[int, int]] | None:
        """Its watch of ``flag``'s version and the flag's randomized results.

        The mapping is ``id(result) -> arm`` for each result that only a
        randomized assignment serves (a rollout, ``fractional``). None:
        nothing to watch (no flag, no rollout, a ``control`` it does not
        serve). Asked once per flag object (its head is made once per
        snapshot), and by the store as data arrives (``flag`` None: the
        flag is missing); never raises.
        """
        ...


def guarded_run(operands: tuple[object, ...], ctx: Context, st: object) -> Result:
    """The run of a guarded flag's head: the pin, or the flag's own result with its arm noted.

    ``operands``: the watch, the flag's own head (a :class:`Code`) and its
    arms by result id. Raises only what the flag's own code raises.
    """
    watch: Watch = operands[0]  # type: ignore[assignment]
    pinned = watch.pinned
    if pinned is not None:
        return pinned
    inner: Code = operands[1]  # type: ignore[assignment]
    run = inner.run
    result = run(inner.operands, ctx, st)
    arm = operands[2].get(id(result))  # type: ignore[attr-defined]
    if arm is not None:
        watch.note(arm)
    return result


def guarded_head(
    guard: Guarded, flag: CompiledFlag, head: Code | Result
) -> Code | Result:
    """Flag ``flag``'s head ``head``, guarded by ``guard`` if it watches the flag.

    A constant head (the flag is off or serves one variation to all) has
    no randomized result: it is kept as it is. The guarded head keeps
    ``plain`` of the flag's own, so that prerequisite checks and counting
    take the same paths (a prerequisite on a pinned flag sees control).
    """
    if type(head) is not Code:
        return head
    watched = guard.watch(flag)
    if watched is None:
        return head
    watch, arms = watched
    return Code(guarded_run, head.plain, (watch, head, arms))
