"""What a snapshot records its evaluations into (analytics events, events.md §3-§9).

The analytics layer's ``Recorder`` sits above evaluation and is handed down
to a snapshot at run time (``FlagSnapshot.recording``). These Protocols are
the part of it a snapshot uses, named here, so that evaluation's annotations
name nothing above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

    from ._context import Context
    from ._evaluate import Recorded
    from ._model import CompiledFlag
    from ._results import Result

__all__ = ["EvaluationRecorder"]


class EvaluationRecorder(Protocol):
    """Records evaluations: what a snapshot calls while analytics events are on.

    From any thread (the recorder holds its own lock).
    """

    def evaluation(
        self,
        flag: CompiledFlag,
        context: Context,
        result: Result,
        default: JSONValue,
        detail: bool,
        prerequisites: Recorded | None = None,
    ) -> None:
        """Record one evaluation of a known flag, after the prerequisites' it reached."""

    def unknown(
        self, key: str, context: Context, default: JSONValue, result: Result
    ) -> None:
        """Record an evaluation of a flag that does not exist (or a snapshot not ready)."""
