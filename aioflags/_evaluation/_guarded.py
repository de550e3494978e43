"""The guarded head: how a guarded flag's evaluation notes its arm and serves a pin.

A guard (issue 98, ``aioflags._guards``) watches one flag. The evaluation
knows guards only through the protocols here: a snapshot's
:class:`~._evaluate.Matcher` holds the client's guards by flag key
(:class:`Guarded`) and, once per flag per snapshot (when the flag's head
is made), asks the flag's guard for its :class:`Watch` of that flag
version; a flag with one gets a head that runs :func:`guarded_run`. An
unguarded flag's head is its own: it pays nothing per evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ._codegen import Code

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextvars import ContextVar

    from ._codegen import Runner
    from ._context import Context
    from ._model import CompiledFlag
    from ._results import Result

__all__ = ["Guarded", "Lane", "Noted", "Watch", "guarded_head", "guarded_run"]


class Lane(Protocol):
    """One arm of a :class:`Watch`: what a request scope notes."""

    @property
    def watch(self) -> object:
        """The watch whose arm it is."""
        ...


class Noted(Protocol):
    """An open request scope, as an evaluation writes to it.

    Attributes:
        lane: the arm the first guarded flag evaluated in the scope served
            (its first evaluation there), None: none yet.
    """

    lane: Lane | None

    def also(self, lane: Lane, /) -> None:
        """Note the arm of another guarded flag, if its first evaluation in the scope."""
        ...


class Watch(Protocol):
    """A guard's watch of one flag version, as an evaluation reads it.

    Attributes:
        pinned: the result to serve instead of the flag's own (control,
            reason ``GUARDED``), or None: not pinned. Read on every
            evaluation of the flag.
        scope: the client's open request scope (a ``ContextVar``; None
            outside one).
    """

    pinned: Result | None
    scope: ContextVar[Noted | None]


class Guarded(Protocol):
    """A guard on one flag, as a snapshot's matcher holds it."""

    def watch(
        self, flag: CompiledFlag | None, /
    ) -> tuple[Watch, Mapping[int, Lane]] | None:
        """Its watch of ``flag``'s version and the flag's randomized results.

        The mapping is ``id(result) -> lane`` (its arm) for each result that only a
        randomized assignment serves (a rollout, ``fractional``). None:
        nothing to watch (no flag, no rollout, a ``control`` it does not
        serve). Asked once per flag object (its head is made once per
        snapshot), and by the store as data arrives (``flag`` None: the
        flag is missing); never raises.
        """
        ...


def guarded_run(operands: Any, ctx: Context, st: object) -> Result:
    """The run of a guarded flag's head: the pin, or the flag's own result with its arm noted.

    ``operands``: the watch, the flag's own code's ``run`` and operands,
    its arms' lanes by result id, and the watch's request scope variable.
    The first evaluation in an open scope that a randomized assignment
    served notes its lane in the scope. Raises only what the flag's own
    code raises.
    """
    watch = operands[0]
    pinned: Result | None = watch.pinned
    if pinned is not None:
        return pinned
    run: Runner = operands[1]
    result = run(operands[2], ctx, st)
    lane = operands[3].get(id(result))
    if lane is not None:
        scope = operands[4].get()
        if scope is not None:
            noted = scope.lane
            if noted is None:
                scope.lane = lane
            elif noted.watch is not watch:  # (another guarded flag: rare)
                scope.also(lane)
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
    # (the flag's run and operands, not its Code: two loads fewer a run)
    return Code(
        guarded_run, head.plain, (watch, head.run, head.operands, arms, watch.scope)
    )
