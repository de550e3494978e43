"""Where evaluations are counted (analytics events, events.md §3-§9).

The analytics layer's ``Recorder`` sits above evaluation and is handed down
to a composition at run time (``_pipeline.CountedFlags.ledger``). This
Protocol is the part of it an evaluation uses, named here, so that
evaluation's annotations name nothing above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

    from ._context import Context
    from ._model import CompiledFlag
    from ._results import Result

__all__ = ["Counting", "Ledger"]


class Counting(Protocol):
    """What a ledger reads of the matcher an evaluation ran on (``Matcher``)."""

    @property
    def hot(self) -> dict[str, CompiledFlag]:
        """Flags by key, the ones made so far."""
        ...

    def made(self, key: str) -> CompiledFlag | None:
        """Flag ``key``, made if need be; None if there is none or making it raised."""
        ...


class Ledger(Protocol):
    """Counts evaluations: what an evaluation calls while analytics events are on.

    The event loop's ledger (``Recorder.loop``) is written on the loop's
    thread only (the async client's methods); the recorder itself from
    any thread (it holds its own lock: a snapshot's methods).
    """

    def evaluated(
        self,
        matcher: Counting,
        key: str,
        context: Context,
        result: Result,
        default: JSONValue,
        detail: bool = False,
        prereq_of: str | None = None,
        /,
    ) -> None:
        """Count an evaluation of flag ``key`` of ``matcher``'s data (the count step).

        ``detail``: a ``*_detail`` method's (its events carry the reason);
        ``prereq_of``: the flag that required it, for a prerequisite. A
        flag whose code could not be made is counted against nothing.
        """

    def record(
        self,
        flag: CompiledFlag,
        context: Context,
        result: Result,
        default: JSONValue,
        prereq_of: str | None = None,
        detail: bool = False,
        /,
    ) -> None:
        """Count an evaluation of ``flag`` (a prerequisite of flag ``prereq_of``).

        ``detail``: a ``*_detail`` method's (its events carry the reason).
        """

    def unknown(
        self, key: str, context: Context | None, default: JSONValue, result: Result, /
    ) -> None:
        """Count an evaluation of a flag that is not there (or of data not ready).

        ``context`` None: an evaluation with no valid Context (counted, in
        no summary).
        """
