"""What a snapshot records its evaluations into (analytics events, events.md §3-§9).

The analytics layer's ``Recorder`` sits above evaluation and is handed down
to a snapshot at run time (``FlagSnapshot.recording``). These Protocols are
the part of it a snapshot uses, named here, so that evaluation's annotations
name nothing above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping

    from aioflags._core._json import JSONValue

    from ._context import Context
    from ._model import CompiledFlag
    from ._results import Result

__all__ = ["EvaluationRecorder", "SummaryCounter"]


class SummaryCounter(Protocol):
    """One flag version's summary in a flush window, which a snapshot counts into.

    ``counts[i]`` counts the evaluations that served variation ``i``,
    ``none`` those that served none, ``none_value`` the value the first of
    those returned (its caller's default); ``kind`` is the kind of the
    single-kind contexts last counted, ``tracked`` whether each evaluation
    of the flag needs a full event.
    """

    counts: list[int]
    none: int
    none_value: JSONValue

    @property
    def kind(self) -> str: ...

    @property
    def tracked(self) -> bool: ...


class EvaluationRecorder(Protocol):
    """Records evaluations: what a snapshot calls while analytics events are on.

    :attr:`lock` is held across each evaluation's records; under it a
    snapshot may count an evaluation straight into :attr:`counters` when
    nothing else is to be recorded (the flag's counter exists, it is not
    tracked, the result is no experiment, the context is :attr:`last` and
    of the counter's kind), else it calls :meth:`evaluation_locked`.
    """

    @property
    def lock(self) -> threading.RLock: ...

    @property
    def counters(self) -> Mapping[CompiledFlag, SummaryCounter]: ...

    @property
    def last(self) -> Context | None: ...

    def evaluation_locked(
        self,
        flag: CompiledFlag,
        context: Context,
        result: Result,
        default: JSONValue,
        detail: bool,
        prereq_of: str | None = None,
    ) -> None:
        """Record one evaluation of a known flag, :attr:`lock` held (a prerequisite has ``prereq_of``)."""

    def unknown(
        self, key: str, context: Context, default: JSONValue, result: Result
    ) -> None:
        """Record an evaluation of a flag that does not exist (or a snapshot not ready)."""
