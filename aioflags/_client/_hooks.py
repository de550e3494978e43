"""Evaluation and track hooks: the public types, and the runner the client uses.

Hooks cost nothing until one with an evaluation stage of its own is
registered: the client's evaluator then composes anew, with the hooks'
stage (:class:`HookStage`) outermost in its evaluation
(``_evaluation._pipeline``). Only a hook's own stages run (which of its stages are :class:`Hook`'s
pass-through is looked up at registration): a hook with no evaluation
stage of its own leaves the composition as it was. Every evaluation entry
point of ``Client``, ``FlagSnapshot`` and ``aioflags.blocking.Client``
is that evaluation, so all of them run the series; ``all_flags_state``
and prerequisites do not.

Stages are synchronous: the sync ``FlagSnapshot`` face has no event loop to
await on, and a hook that waited on I/O would stall every evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeGuard, TypeVar, final

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field
from aioflags._core._logname import client_logger
from aioflags._evaluation._results import detail_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._door import Data
    from aioflags._evaluation._pipeline import Method, Step
    from aioflags._evaluation._results import EvaluationDetail, Result

__all__ = [
    "EvaluationSeriesContext",
    "Hook",
    "HookMetadata",
    "HookRunner",
    "HookStage",
    "OneHookStage",
    "TrackSeriesContext",
    "hook_stage",
]

logger = client_logger("aioflags.hooks")

T = TypeVar("T")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_NEW: Final = object.__new__
_PROXY: Final = MappingProxyType
_STAGES: Final = ("before_evaluation", "after_evaluation", "after_track")


@final
class HookMetadata(Frozen):
    """What a hook says about itself.

    Attributes:
        name: the hook's name, used in log messages about it.

    Added in version 0.1.0.
    """

    __slots__ = ("name",)
    __match_args__: ClassVar[tuple[str, ...]] = ("name",)
    name: str

    def __init__(self, name: str) -> None:
        set_field(self, "name", name)


@final
class EvaluationSeriesContext:
    """What every stage of one evaluation's hook series is told about it (read-only).

    Attributes:
        key: the flag key.
        context: the evaluation context, as the caller passed it.
        default_value: the default the caller passed.
        method: the public method called: ``"variation"``,
            ``"variation_detail"``, ``"bool_variation"``,
            ``"bool_variation_detail"``, ... (the same names on ``Client``,
            ``FlagSnapshot`` and ``aioflags.blocking.Client``).
        environment_id: the LaunchDarkly environment's id, from the flag
            service's ``X-LD-EnvID`` response header; ``None`` until known.

    Added in version 0.1.0.
    """

    # Built for every evaluation while hooks are registered: plain slots
    # (a frozen dataclass takes twice as long to build), read through
    # properties. OneHookStage.evaluate sets them without __init__: keep it
    # in step with __init__.
    __slots__ = ("_context", "_default", "_env", "_key", "_method")

    def __init__(
        self,
        key: str,
        context: Context | None,
        default_value: Any,
        method: str,
        environment_id: str | None = None,
    ) -> None:
        self._key = key
        self._context = context
        self._default = default_value
        self._method = method
        self._env = environment_id

    @property
    def key(self) -> str:
        """The flag key."""
        return self._key

    @property
    def context(self) -> Context | None:
        """The evaluation context, as the caller passed it."""
        return self._context

    @property
    def default_value(self) -> Any:
        """The default the caller passed."""
        return self._default

    @property
    def method(self) -> str:
        """The public method called (``"bool_variation"``...)."""
        return self._method

    @property
    def environment_id(self) -> str | None:
        """The environment's id (``X-LD-EnvID``), or ``None`` until known."""
        return self._env

    def _fields(self) -> tuple[object, ...]:
        return (self._key, self._context, self._default, self._method, self._env)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvaluationSeriesContext):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self._key, self._method, self._env))

    def __repr__(self) -> str:
        return (
            f"EvaluationSeriesContext(key={self._key!r}, context={self._context!r}, "
            f"default_value={self._default!r}, method={self._method!r}, "
            f"environment_id={self._env!r})"
        )


@final
class TrackSeriesContext(Frozen):
    """What ``after_track`` is told about one ``client.track()`` call.

    Attributes:
        key: the event key.
        context: the context the event is about.
        data: the JSON data attached, or ``None``.
        metric_value: the metric value, or ``None``.
        environment_id: the LaunchDarkly environment's id; ``None`` until known.

    Added in version 0.1.0.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "key",
        "context",
        "data",
        "metric_value",
        "environment_id",
    )
    __match_args__: ClassVar[tuple[str, ...]] = (
        "key",
        "context",
        "data",
        "metric_value",
        "environment_id",
    )
    key: str
    context: Context
    data: JSONValue
    metric_value: float | None
    environment_id: str | None

    def __init__(
        self,
        key: str,
        context: Context,
        data: JSONValue,
        metric_value: float | None,
        environment_id: str | None = None,
    ) -> None:
        set_field(self, "key", key)
        set_field(self, "context", context)
        set_field(self, "data", data)
        set_field(self, "metric_value", metric_value)
        set_field(self, "environment_id", environment_id)


class Hook:
    """Base class of evaluation and track hooks: override the stages you need.

    Every stage has a pass-through default, so a hook written today keeps
    working when stages are added. Stages are synchronous and run on the
    caller's task (or thread), inside the evaluation: keep them fast, and
    hand anything slow (I/O) to a task or a queue of your own. A stage that
    raises is logged (once per hook and stage) and otherwise ignored: the
    evaluation, the other hooks and the returned value are unaffected.

    Register hooks with ``Config(hooks=[...])`` or ``client.add_hook(hook)``.
    ``before_evaluation`` stages run in registration order,
    ``after_evaluation`` stages in reverse order, ``after_track`` in order.

    Added in version 0.1.0.
    """

    @property
    def metadata(self) -> HookMetadata:
        """The hook's metadata (by default, named after its class)."""
        return HookMetadata(name=type(self).__qualname__)

    def before_evaluation(
        self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Called before a flag is evaluated; returns the data for ``after_evaluation``.

        Args:
            series_context: the evaluation's key, context, default and method.
            data: this hook's series data so far (empty: this is the first stage).

        Returns:
            The data this hook's ``after_evaluation`` receives: return a new
            mapping with your additions (``{**data, "span": span}``).
        """
        return data

    def after_evaluation(
        self,
        series_context: EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        """Called after a flag is evaluated, before the caller gets the value.

        Args:
            series_context: as given to ``before_evaluation``.
            data: what this hook's ``before_evaluation`` returned (empty if it
                raised).
            detail: exactly what the caller gets: the value (the default on
                error), the variation index and the reason.

        Returns:
            The series data (unused for now: the last stage of the series).
        """
        return data

    def after_track(self, series_context: TrackSeriesContext) -> None:
        """Called after ``client.track()`` handed a custom event to the event processor."""


def check_hook(hook: object, where: str) -> Hook:
    """``hook`` if it is a usable :class:`Hook`; a clear error otherwise."""
    if not isinstance(hook, Hook):
        raise ConfigurationError(
            f"{where} takes aioflags.Hook instances (subclass aioflags.Hook), "
            f"got {hook!r}"
        )
    import inspect  # when hooks are registered, not with aioflags

    for stage in _STAGES:
        if inspect.iscoroutinefunction(getattr(hook, stage)):
            raise ConfigurationError(
                f"{type(hook).__qualname__}.{stage} is async: hook stages are "
                "synchronous (they also run on the sync FlagSnapshot face); hand "
                "slow work to a task or queue of your own (docs/hooks.md)"
            )
    return hook


def _own(hook: Hook, stage: str) -> bool:
    """Whether ``hook``'s ``stage`` is its own, not :class:`Hook`'s pass-through.

    Read once, at registration: a class attribute, or one set on the
    instance before it was registered.
    """
    method = getattr(hook, stage)
    return getattr(method, "__func__", method) is not getattr(Hook, stage)


def _name(hook: Hook) -> str:
    try:
        return str(hook.metadata.name)
    except Exception:  # noqa: BLE001 - a broken metadata property must not break evaluation
        return type(hook).__qualname__


def hook_stage(runner: HookRunner, inner: Step) -> Step:
    """The hooks' stage around ``inner``, for the stages ``runner`` has now.

    One registration of a hook with an evaluation stage of its own:
    :class:`OneHookStage`, which runs it with no loop over hooks and no
    list of their data; two or more (the same hook registered twice runs
    twice, as LaunchDarkly's SDK runs it): :class:`HookStage`. Chosen
    once, when the client composes.
    """
    before, after = runner.stages
    if len(before) > 1 or len(after) > 1:
        return HookStage(runner, inner)
    if before and after and after[0][1] != 0:  # (two registrations: each one stage)
        return HookStage(runner, inner)
    return OneHookStage(runner, inner)


@final
class OneHookStage:
    """The hooks' stage of a composition with one hook that observes evaluations.

    What :class:`HookStage` does for one hook, without its loops and its
    list of each hook's data (~1,500 instructions an evaluation, issue
    87): the series context, the hook's ``before_evaluation`` (if its
    own), the step it holds, then its ``after_evaluation`` (if its own),
    shown the detail the caller gets. Isolated as :class:`HookStage`'s
    stages are: one that raises, or a ``before_evaluation`` that returns
    something other than a mapping, is logged (once per stage) and its
    ``after_evaluation`` gets empty data.
    """

    __slots__ = ("after", "before", "hook", "inner", "runner")

    def __init__(self, runner: HookRunner, inner: Step) -> None:
        self.runner = runner
        before, after = runner.stages
        #: the hook (the one in :attr:`HookRunner.stages`)
        self.hook: Hook = before[0] if before else after[0][0]
        #: whether its ``before_evaluation`` is its own (else: not run)
        self.before: bool = bool(before)
        #: whether its ``after_evaluation`` is its own (else: not run)
        self.after: bool = bool(after)
        self.inner = inner

    def evaluate(
        self,
        data: Data,
        method: Method[Any],
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Result:
        """The hook's stages around the inner step's evaluation of flag ``key``."""
        hook = self.hook
        # The series context, built without its __init__ (called through the
        # type's C slot, a frame of its own: 759 instructions an evaluation,
        # 5 % of the hook mode, issue 87). Its slots are set here as
        # __init__ sets them: change both together (tests/test_hooks.py
        # compares what this stage's hook sees with HookStage's, built by
        # the constructor).
        series: EvaluationSeriesContext = _NEW(EvaluationSeriesContext)
        series._key = key
        series._context = context
        series._default = default
        series._method = method.name
        series._env = self.runner.environment_id
        given: Mapping[str, Any] = _EMPTY
        if self.before:
            try:
                returned: object = hook.before_evaluation(series, _EMPTY)
            except Exception:  # noqa: BLE001 - isolated, logged once per hook and stage
                self.runner._stage_failed(hook, "before_evaluation", None)
            else:
                if returned is not _EMPTY:  # (the pass-through's: no test)
                    if _is_mapping(returned):
                        given = returned
                    else:
                        self.runner._stage_failed(
                            hook, "before_evaluation", type(returned).__name__
                        )
        result = self.inner.evaluate(data, method, key, context, default)
        if self.after:
            shown = method.shown
            if shown is None:  # (the result's own detail: kept in it once made)
                detail = result.detail
                if detail is None:
                    detail = detail_of(result, default)
            else:
                detail = shown(result, default)
            try:
                hook.after_evaluation(series, given, detail)
            except Exception:  # noqa: BLE001 - isolated, logged once per hook and stage
                self.runner._stage_failed(hook, "after_evaluation", None)
        return result


@final
class HookStage:
    """The hooks' stage of a composition: each hook's stages around the step it holds.

    One evaluation: the series context, each ``before_evaluation`` in
    registration order, the step it holds (``inner``: the lens, or the
    flag data's own), then each ``after_evaluation`` in reverse order,
    shown the detail the caller gets (``method.shown``), as pluggy runs
    every implementation of a pytest hook: a loop over hook objects. Only
    a hook's own stages run (:attr:`HookRunner.stages`, read once, when
    the client composes). Every stage is looked up on its hook when it
    runs (as a method call does), and isolated: a stage that raises, or a
    ``before_evaluation`` that returns something other than a mapping, is
    logged (once per hook and stage) and its next stage gets empty data.
    For two hooks or more (one: :class:`OneHookStage`, :func:`hook_stage`).
    """

    __slots__ = ("after", "before", "inner", "runner")

    def __init__(self, runner: HookRunner, inner: Step) -> None:
        self.runner = runner
        #: the hooks whose ``before_evaluation`` is their own, in order
        self.before: tuple[Hook, ...]
        #: those whose ``after_evaluation`` is, the last first, each with the
        #: position of its ``before_evaluation`` in :attr:`before` (-1: none)
        self.after: tuple[tuple[Hook, int], ...]
        self.before, self.after = runner.stages
        self.inner = inner

    def evaluate(
        self,
        data: Data,
        method: Method[Any],
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Result:
        """The hooks' stages around the inner step's evaluation of flag ``key``."""
        runner = self.runner
        series = EvaluationSeriesContext(
            key, context, default, method.name, runner.environment_id
        )
        kept: list[Mapping[str, Any]] = []  # each before stage's data, in order
        for hook in self.before:
            given: Mapping[str, Any] = _EMPTY
            try:
                returned: object = hook.before_evaluation(series, _EMPTY)
            except Exception:  # noqa: BLE001 - isolated, logged once per hook and stage
                runner._stage_failed(hook, "before_evaluation", None)
            else:
                if returned is not _EMPTY:  # (the pass-through's: no test)
                    if _is_mapping(returned):
                        given = returned
                    else:
                        runner._stage_failed(
                            hook, "before_evaluation", type(returned).__name__
                        )
            kept.append(given)
        result = self.inner.evaluate(data, method, key, context, default)
        if self.after:
            shown = method.shown
            detail = (
                detail_of(result, default) if shown is None else shown(result, default)
            )
            for hook, position in self.after:
                try:
                    hook.after_evaluation(
                        series, _EMPTY if position < 0 else kept[position], detail
                    )
                except Exception:  # noqa: BLE001, PERF203 - isolated, logged once per hook and stage
                    runner._stage_failed(hook, "after_evaluation", None)
        return result


def _is_mapping(data: object) -> TypeGuard[Mapping[str, Any]]:
    """Whether a ``before_evaluation`` returned a mapping (a dict, a proxy: no ABC test)."""
    kind = type(data)
    return kind is dict or kind is _PROXY or isinstance(data, Mapping)


class HookRunner:
    """A client's hooks (copy-on-write) and the environment id.

    Shared by every run of one client. A hook with an evaluation stage of
    its own changes the client's composition (the evaluator composes
    anew, with a :class:`HookStage` of :attr:`stages`): it applies to the
    evaluations that start after it was added, and to the snapshots
    handed out from then on (a snapshot is evaluated as it was composed).
    """

    __slots__ = ("_failed", "environment_id", "hooks", "stages")

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self.hooks: tuple[Hook, ...] = ()
        #: The evaluation stages that run, as one value (read once per
        #: composition, so a hook added meanwhile is all in or all out): the
        #: hooks whose ``before_evaluation`` is their own (not
        #: :class:`Hook`'s pass-through), in registration order; and those
        #: whose ``after_evaluation`` is, each with the position of its
        #: ``before_evaluation`` in the first (-1: it gets empty data). A
        #: hook that observes no evaluation thus costs an evaluation
        #: nothing, and the detail is built only for an ``after_evaluation``.
        self.stages: tuple[tuple[Hook, ...], tuple[tuple[Hook, int], ...]] = (
            (),
            (),
        )
        self.environment_id: str | None = None
        self._failed: set[tuple[int, str]] = set()
        for hook in hooks:
            self.add(hook)

    @property
    def observes_evaluations(self) -> bool:
        """Whether any hook has an evaluation stage of its own."""
        before, after = self.stages
        return bool(before or after)

    def add(self, hook: Hook) -> None:
        """Register ``hook`` after the others (its stages are looked up now)."""
        before, after = self.stages
        if _own(hook, "before_evaluation"):
            before = (*before, hook)
            position = len(before) - 1
        else:
            position = -1
        if _own(hook, "after_evaluation"):  # (in the order they run: the last first)
            after = ((hook, position), *after)
        self.stages = (before, after)
        self.hooks = (*self.hooks, hook)

    def _stage_failed(self, hook: Hook, stage: str, problem: str | None) -> None:
        """Log a failed stage once per hook and stage (then at DEBUG)."""
        key = (id(hook), stage)
        first = key not in self._failed
        self._failed.add(key)
        name = _name(hook)
        if problem is None:
            logger.log(
                logging.ERROR if first else logging.DEBUG,
                "aioflags hook %r raised in %s; the evaluation is unaffected%s",
                name,
                stage,
                " (logged once per hook and stage)" if first else "",
                exc_info=True,
                extra={"hook": name, "stage": stage},
            )
        elif first:
            logger.error(
                "aioflags hook %r: %s returned %s, not a mapping; its next stage "
                "gets empty data (return the data, e.g. `return {**data, ...}`)",
                name,
                stage,
                problem,
                extra={"hook": name, "stage": stage},
            )

    # ----------------------------------------------------------------- track
    def after_track(
        self,
        key: str,
        context: Context,
        data: JSONValue,
        metric_value: float | None,
    ) -> None:
        """Run every hook's ``after_track``, in registration order."""
        hooks = self.hooks
        series = TrackSeriesContext(
            key, context, data, metric_value, self.environment_id
        )
        for hook in hooks:
            try:
                hook.after_track(series)
            except Exception:  # noqa: BLE001, PERF203 - isolated, logged once per hook and stage
                self._stage_failed(hook, "after_track", None)
