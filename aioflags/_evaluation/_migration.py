"""Migration flags: stages, origins, and the tracker of one migration operation.

Sync and pure, as the rest of evaluation: a snapshot's ``migration_variation``
turns a flag's value into a :class:`Stage` and hands out an :class:`OpTracker`
for the measurements of one read or write; ``client.track_migration_op``
turns the tracker into a ``migration_op`` analytics event
(:class:`MigrationOpEvent`), or refuses it with the reason. The names,
values and rules are LaunchDarkly's (its Python SDK's
``ldclient.migrations``), so that moving from it is mechanical.
"""

from __future__ import annotations

import datetime
import enum
import inspect
import logging
import random
from typing import TYPE_CHECKING, Final, final

from ._evaluate import ERROR_RESULTS
from ._logonce import Occurrences
from ._results import EvaluationDetail

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import timedelta

    from ._context import Context
    from ._model import CompiledFlag

__all__ = [
    "MigrationOpEvent",
    "OpTracker",
    "Operation",
    "Origin",
    "Stage",
    "checked_default",
    "event_of",
    "stage_detail",
    "tracked_stage",
]

logger = logging.getLogger("aioflags.migrations")

#: Where the consistency check of a tracker made by a bare snapshot draws
#: from; the client's ``migration_variation`` gives its trackers the
#: client's own random source (``Client(random=...)``).
_snapshot_random: Final = random.Random()


class Stage(enum.Enum):
    """The stage of a technology migration, in the order a migration moves through.

    ``OFF`` → ``DUALWRITE`` → ``SHADOW`` → ``LIVE`` → ``RAMPDOWN`` → ``COMPLETE``.
    The values are the migration flag's variation values.

    Added in version 0.1.0.
    """

    OFF = "off"
    """Not started: read from and write to the old origin only."""
    DUALWRITE = "dualwrite"
    """Write to both (old first, authoritative); read from the old origin."""
    SHADOW = "shadow"
    """Read from and write to both; the old origin is authoritative."""
    LIVE = "live"
    """Read from and write to both; the new origin is authoritative."""
    RAMPDOWN = "rampdown"
    """Write to both (new first, authoritative); read from the new origin."""
    COMPLETE = "complete"
    """Finished: read from and write to the new origin only."""

    @staticmethod
    def from_str(stage: str) -> Stage | None:
        """The stage named ``stage`` (``"off"``...), or ``None``, as LaunchDarkly's."""
        for member in Stage:
            if member.value == stage:
                return member
        return None


class Operation(enum.Enum):
    """The kind of migration operation a ``migration_op`` event reports.

    Added in version 0.1.0.
    """

    READ = "read"
    """A read: with two origins, the reads may run concurrently."""
    WRITE = "write"
    """A write: with two origins, the authoritative one is written first."""


class Origin(enum.Enum):
    """One of the two sources of data a migration moves between.

    Added in version 0.1.0.
    """

    OLD = "old"
    """The origin the migration moves away from."""
    NEW = "new"
    """The origin the migration moves to."""


_STAGES: Final[dict[object, Stage]] = {stage.value: stage for stage in Stage}
_WRONG_TYPE: Final = ERROR_RESULTS["WRONG_TYPE"]
_STAGE_NAMES: Final = ", ".join(repr(stage.value) for stage in Stage)

#: The (flag key, value) pairs, and the defaults, already logged as naming
#: no stage: each is logged once, not on every operation (at most this many).
_MAX_LOGGED: Final = 1000
_NOT_STAGES: Final = Occurrences(_MAX_LOGGED)
_BAD_DEFAULTS: Final = Occurrences(_MAX_LOGGED)


def _shown(value: object) -> str:
    """``repr(value)``, cut short: a flag's value may be a large JSON object."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def stage_detail(
    detail: EvaluationDetail[object], default: Stage, key: str | None = None
) -> EvaluationDetail[object]:
    """``detail`` if its value names a stage, else the default with WRONG_TYPE.

    As LaunchDarkly does it: a value that is not a stage's name (or not a
    string) serves no variation, and the reason says why. With the flag's
    ``key``, that is also logged at WARNING, once per flag and value: the
    operation goes to the default stage's origins, which the caller did not
    choose (a typo in a variation, or a flag that is not a migration flag).
    """
    value = detail.value
    if type(value) is str and value in _STAGES:
        return detail
    if key is not None:
        _not_a_stage(key, value, default)
    return EvaluationDetail(
        value=default.value, variation_index=None, reason=_WRONG_TYPE.reason
    )


def _not_a_stage(key: str, value: object, default: Stage) -> None:
    """Log, once per flag and value, that flag ``key`` served ``value``, no stage."""
    if _NOT_STAGES.add((key, type(value).__name__, _shown(value))) != 1:
        return  # logged already (or too many are remembered: not again)
    logger.warning(
        "Migration flag %r served %s, which is not a stage (one of %s); the "
        "default stage %r is used (reason WRONG_TYPE). Make the flag's "
        "variations the stage names, or fix the one that is misspelt. Logged "
        "once per flag and value",
        key,
        _shown(value),
        _STAGE_NAMES,
        default.value,
    )


def tracked_stage(
    flags: Mapping[str, CompiledFlag],
    key: str,
    context: Context | None,
    detail: EvaluationDetail[object],
    default: Stage,
) -> tuple[Stage, OpTracker]:
    """The stage ``detail`` (from :func:`stage_detail`) names, and its tracker."""
    flag = flags.get(key)
    if flag is not None and flag.deleted:
        flag = None
    stage = _STAGES[detail.value]
    return stage, OpTracker(key, flag, context, detail, default)


def checked_default(default: object) -> Stage:
    """``default`` if it is a :class:`Stage`, else ``OFF`` (logged), as LaunchDarkly does.

    Logged at ERROR once per value, saying what to pass: a stage's name as a
    string (``"shadow"``) is not taken for the stage, as LaunchDarkly's SDKs
    do not take it.
    """
    if isinstance(default, Stage):
        return default
    if _BAD_DEFAULTS.add((type(default).__name__, _shown(default))) == 1:
        named = Stage.from_str(default) if isinstance(default, str) else None
        fix = (
            f"pass Stage.{named.name}"
            if named is not None
            else "pass a Stage (from aioflags.migrations)"
        )
        logger.error(
            "The default stage must be an aioflags.migrations.Stage, not %s "
            "(%s): %s. Stage.OFF is used meanwhile. Logged once per value",
            _shown(default),
            type(default).__name__,
            fix,
        )
    return Stage.OFF


def _sampled(ratio: int, rng: random.Random) -> bool:
    """Whether to take a sample at a rate of 1 in ``ratio`` (0: never, 1: always)."""
    if ratio == 1:
        return True
    return ratio > 1 and rng.random() < 1 / ratio


@final
class MigrationOpEvent:
    """What one ``migration_op`` event reports (formatted at flush time)."""

    __slots__ = (
        "consistent",
        "consistent_ratio",
        "context",
        "default_stage",
        "detail",
        "errors",
        "invoked",
        "key",
        "latencies",
        "operation",
        "sampling_ratio",
        "version",
    )

    def __init__(
        self,
        *,
        key: str,
        context: Context,
        version: int | None,
        sampling_ratio: int,
        operation: Operation,
        default_stage: Stage,
        detail: EvaluationDetail[object],
        invoked: tuple[Origin, ...],
        consistent: bool | None,
        consistent_ratio: int,
        errors: tuple[Origin, ...],
        latencies: tuple[tuple[Origin, float], ...],
    ) -> None:
        self.key: str = key
        self.context: Context = context
        #: the flag's version; ``None`` when there was no flag
        self.version: int | None = version
        #: send the event with probability 1/ratio (the flag's ``samplingRatio``)
        self.sampling_ratio: int = sampling_ratio
        self.operation: Operation = operation
        self.default_stage: Stage = default_stage
        self.detail: EvaluationDetail[object] = detail
        self.invoked: tuple[Origin, ...] = invoked
        self.consistent: bool | None = consistent
        #: the flag's ``migration.checkRatio``, when a check ran
        self.consistent_ratio: int = consistent_ratio
        self.errors: tuple[Origin, ...] = errors
        #: (origin, milliseconds)
        self.latencies: tuple[tuple[Origin, float], ...] = latencies


@final
class OpTracker:
    """The measurements of one migration operation, for a ``migration_op`` event.

    ``client.migration_variation`` hands one out with the stage; a
    ``Migrator`` fills it in and tracks it itself. Code that runs its own
    migration records what happened (each method returns the tracker, so
    calls chain) and passes it to ``client.track_migration_op``, which
    refuses it, with a logged reason, when it lacks what an event needs:
    an operation, at least one invoked origin, a valid context, and no
    measurement for an origin that was not invoked.

    One tracker per operation, used on one event loop.

    Added in version 0.1.0.
    """

    __slots__ = (
        "_check_ratio",
        "_consistent",
        "_context",
        "_default",
        "_detail",
        "_errors",
        "_flag",
        "_invoked",
        "_key",
        "_latencies",
        "_operation",
        "_random",
    )

    def __init__(
        self,
        key: str,
        flag: CompiledFlag | None,
        context: Context | None,
        detail: EvaluationDetail[object],
        default_stage: Stage,
    ) -> None:
        """Made by ``migration_variation``; not meant to be made directly."""
        self._key = key
        self._flag = flag
        self._context = context
        self._detail = detail
        self._default = default_stage
        self._check_ratio = 1 if flag is None else flag.migration_check_ratio
        self._operation: Operation | None = None
        self._invoked: set[Origin] = set()
        self._consistent: bool | None = None
        self._errors: set[Origin] = set()
        self._latencies: dict[Origin, float] = {}
        #: the consistency check's sampling draws from it (see _snapshot_random)
        self._random: random.Random = _snapshot_random

    def operation(self, op: Operation) -> OpTracker:
        """Record which operation this is (a read or a write)."""
        if isinstance(op, Operation):
            self._operation = op
        return self

    def invoked(self, origin: Origin) -> OpTracker:
        """Record that ``origin`` was called."""
        if isinstance(origin, Origin):
            self._invoked.add(origin)
        return self

    def consistent(self, is_consistent: Callable[[], bool]) -> OpTracker:
        """Record the result of a consistency check, when the flag samples one.

        ``is_consistent`` is called only for the sample the flag's
        ``migration.checkRatio`` asks for (1 in ``checkRatio`` operations;
        every one when the flag sets none), so an expensive comparison runs
        only then. If it raises, or returns an awaitable (pass a plain
        function here; a ``Migrator`` awaits an async comparison itself),
        the error is logged and nothing is recorded.
        """
        if self._check_sampled():
            try:
                self._record_consistency(is_consistent())
            except Exception:  # noqa: BLE001 - logged: a failed check records nothing
                self._check_failed()
        return self

    def _check_sampled(self) -> bool:
        """Whether this operation is in the sample ``migration.checkRatio`` asks for."""
        return _sampled(self._check_ratio, self._random)

    def _check_failed(self) -> None:
        """Log the exception the comparison raised (nothing is recorded)."""
        logger.exception(
            "The migration's consistency check for %r raised; "
            "no consistency is recorded",
            self._key,
        )

    def _record_consistency(self, outcome: object) -> None:
        """Record what the comparison returned; an awaitable is refused, logged.

        :meth:`consistent` is sync: it cannot await a coroutine (whose truth
        is always ``True``). A ``Migrator`` awaits an async comparison itself.
        Testing the outcome's truth may raise (numpy's or pandas' ``==``
        gives an array): call it where the comparison's own errors are
        caught, as they are that check's failure.
        """
        if inspect.isawaitable(outcome):
            if inspect.iscoroutine(outcome):
                outcome.close()  # never awaited: no RuntimeWarning
            logger.error(
                "The migration's consistency check for %r returned an awaitable; "
                "OpTracker.consistent() takes a plain function (a Migrator awaits "
                "an async comparison); no consistency is recorded",
                self._key,
            )
            return
        self._consistent = bool(outcome)

    def error(self, origin: Origin) -> OpTracker:
        """Record that the call to ``origin`` failed."""
        if isinstance(origin, Origin):
            self._errors.add(origin)
        return self

    def latency(self, origin: Origin, duration: timedelta) -> OpTracker:
        """Record how long the call to ``origin`` took.

        ``duration`` is a ``datetime.timedelta``, as LaunchDarkly's SDK takes
        it: ``timedelta(seconds=time.monotonic() - start)``.

        Raises:
            TypeError: ``duration`` is not a ``timedelta`` (seconds as a
                number, say): the message says how to write it.
        """
        given: object = duration  # checked at run time: callers may not be typed
        if not isinstance(given, datetime.timedelta):
            what = f"{type(given).__name__} {given!r}"[:100]
            seconds = isinstance(given, (int, float)) and not isinstance(given, bool)
            raise TypeError(
                "OpTracker.latency(origin, duration) takes the duration as a "
                f"datetime.timedelta, got {what}"
                + (f": timedelta(seconds={given!r})" if seconds else "")
            )
        if isinstance(origin, Origin):
            self._latencies[origin] = duration.total_seconds() * 1000
        return self

    def _build(self) -> MigrationOpEvent | str:
        """The event, or why there is none (``track_migration_op`` logs it)."""
        if self._operation is None:
            return "operation not provided"
        if not self._key:
            return "migration operation cannot contain an empty key"
        if not self._invoked:
            return "no origins were invoked"
        context = self._context
        if context is None or getattr(context, "_error", "") is not None:
            return "provided context was invalid"
        for origin in Origin:
            if origin in self._invoked:
                continue
            if origin in self._latencies:
                return f"provided latency for origin '{origin.value}' without recording invocation"
            if origin in self._errors:
                return f"provided error for origin '{origin.value}' without recording invocation"
        if self._consistent is not None and len(self._invoked) != 2:
            return "provided consistency without recording both invocations"
        flag = self._flag
        return MigrationOpEvent(
            key=self._key,
            context=context,
            version=None if flag is None else flag.version,
            sampling_ratio=1 if flag is None else flag.sampling_ratio,
            operation=self._operation,
            default_stage=self._default,
            detail=self._detail,
            invoked=tuple(o for o in Origin if o in self._invoked),
            consistent=self._consistent,
            consistent_ratio=self._check_ratio,
            errors=tuple(o for o in Origin if o in self._errors),
            latencies=tuple(
                (o, self._latencies[o]) for o in Origin if o in self._latencies
            ),
        )


def event_of(tracker: object) -> MigrationOpEvent | None:
    """The event ``tracker`` makes, or ``None`` with the reason logged."""
    if not isinstance(tracker, OpTracker):
        logger.error(
            "track_migration_op() takes the OpTracker that migration_variation() "
            "returned, got %r; no event will be emitted",
            tracker,
        )
        return None
    event = tracker._build()
    if isinstance(event, str):
        logger.error(
            "error generating migration op event: %s; no event will be emitted", event
        )
        return None
    return event
