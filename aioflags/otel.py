"""OpenTelemetry for flag evaluations: traces (``TracingHook``) and metrics (``Metrics``).

Install with ``pip install 'aioflags[otel]'`` (the OpenTelemetry API only; your
application brings the SDK and exporter it already uses)::

    from aioflags.otel import Metrics, TracingHook

    config = aioflags.Config(sdk_key, hooks=[TracingHook()], metrics=Metrics())

With the hook, every evaluation adds a ``feature_flag.evaluation`` event, with
the OpenTelemetry semantic conventions' ``feature_flag.*`` attributes, to the
span that is current where you ``await client.variation(...)`` (or call a
``FlagSnapshot``'s methods). See docs/hooks.md. With the metrics, the
client's evaluations are counted per flag, variant, reason and error, at no
cost to an evaluation. See docs/logging.md, "Metrics".

Added in version 0.1.0.
"""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING, Any, Final, final

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
except ImportError as _missing:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "aioflags.otel needs the OpenTelemetry API: pip install 'aioflags[otel]'"
    ) from _missing

from ._analytics._metrics import MetricKey, MetricTotals, error_type, reason_word
from ._client._hooks import EvaluationSeriesContext, Hook, HookMetadata
from ._core._exceptions import ConfigurationError
from ._evaluation._context import Context
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from opentelemetry.metrics import (
        CallbackOptions,
        Counter,
        MeterProvider,
        Observation,
    )
    from opentelemetry.util.types import AttributeValue

    from ._evaluation._results import EvaluationDetail
    from ._guards._status import GuardEvent

__all__ = ["Metrics", "TracingHook"]

#: The semantic conventions' event for one evaluation.
EVALUATION_EVENT: Final = "feature_flag.evaluation"
#: The older span event LaunchDarkly's Python OpenTelemetry hook emits.
LEGACY_EVENT: Final = "feature_flag"

_SPAN: Final = "aioflags.otel.span"
_TOKEN: Final = "aioflags.otel.token"


def _check_provider(call: str, given: object, method: str, provider: str) -> None:
    """A TypeError now, naming what was given, if it is no provider (no ``method``).

    ``call`` is ``Metrics(meter_provider=``: a metric reader or a span
    exporter given where its provider goes failed with an AttributeError
    from inside OpenTelemetry.
    """
    if given is None or callable(getattr(given, method, None)):
        return
    what = f"{call}) takes an OpenTelemetry {provider}, got {type(given).__name__}"
    if callable(getattr(given, "collect", None)):  # a metric reader
        what += (
            ": a metric reader goes into a provider, "
            f"{call}MeterProvider(metric_readers=[reader]))"
        )
    elif callable(getattr(given, "export", None)):  # a span exporter
        what += (
            ": an exporter goes into a provider, provider = TracerProvider(); "
            "provider.add_span_processor(SimpleSpanProcessor(exporter)); "
            f"{call}provider)"
        )
    raise TypeError(what)


def _context_id(series: EvaluationSeriesContext) -> str | None:
    context = series.context
    # Anything but a Context: the evaluation says so in its reason.
    return context.fully_qualified_key if type(context) is Context else None


def _value(value: Any) -> AttributeValue:
    """A flag value as an attribute: scalars as they are, the rest as JSON."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


@final
class TracingHook(Hook):
    """Records flag evaluations in OpenTelemetry traces.

    In ``after_evaluation`` it adds a ``feature_flag.evaluation`` event to
    the current span (nothing when no span is recording) with the semantic
    conventions' attributes: ``feature_flag.key``,
    ``feature_flag.provider.name``, ``feature_flag.context.id`` (the
    context's fully-qualified key), ``feature_flag.result.variant`` (the
    variation index), ``feature_flag.result.reason``, ``error.type`` on
    error, ``feature_flag.set.id`` (the environment id, once known) and,
    with ``include_value``, ``feature_flag.result.value``.

    Args:
        add_spans: also wrap each evaluation in a span of its own, named after
            the method (``"bool_variation"``...), child of the current span;
            the event is still added to the caller's span.
        include_value: add the evaluated value (``feature_flag.result.value``):
            values may be large or sensitive, so it is opt-in.
        legacy_event: also add the older ``feature_flag`` span event with the
            attributes LaunchDarkly's Python OpenTelemetry hook gives it
            (``feature_flag.result.variationIndex`` as a string, ...), for
            dashboards built on that hook.
        evaluation_event: add the ``feature_flag.evaluation`` event (turn it
            off to emit only the legacy one).
        provider_name: ``feature_flag.provider.name``.
        tracer_provider: where ``add_spans`` spans come from (default: the
            global tracer provider).

    Added in version 0.1.0.
    """

    def __init__(
        self,
        add_spans: bool = False,
        include_value: bool = False,
        *,
        legacy_event: bool = False,
        evaluation_event: bool = True,
        provider_name: str = "LaunchDarkly",
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._add_spans = add_spans
        self._include_value = include_value
        self._legacy_event = legacy_event
        self._evaluation_event = evaluation_event
        self._provider = provider_name
        _check_provider(
            "TracingHook(tracer_provider=",
            tracer_provider,
            "get_tracer",
            "TracerProvider",
        )
        self._tracer = trace.get_tracer(
            "aioflags", __version__, tracer_provider=tracer_provider
        )

    @property
    def metadata(self) -> HookMetadata:
        """Named ``aioflags.otel.TracingHook``."""
        return HookMetadata(name="aioflags.otel.TracingHook")

    def before_evaluation(
        self, series_context: EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """With ``add_spans``: start the evaluation's span and make it current."""
        if not self._add_spans:
            return data
        attributes: dict[str, AttributeValue] = {"feature_flag.key": series_context.key}
        context_id = _context_id(series_context)
        if context_id is not None:
            attributes["feature_flag.context.id"] = context_id
        span = self._tracer.start_span(series_context.method, attributes=attributes)
        # Attached and detached by this evaluation's own stages, which run on
        # the caller's task, one after the other: the token stays in its context.
        token = otel_context.attach(trace.set_span_in_context(span))
        return {**data, _SPAN: span, _TOKEN: token}

    def after_evaluation(
        self,
        series_context: EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        """End the evaluation's span (if any), then add the event(s) to the current span."""
        token = data.get(_TOKEN)
        if token is not None:
            otel_context.detach(token)
        span = data.get(_SPAN)
        if span is not None:
            span.end()
        current = trace.get_current_span()
        if not current.is_recording():
            return data
        if self._evaluation_event:
            current.add_event(
                EVALUATION_EVENT, self._evaluation_attributes(series_context, detail)
            )
        if self._legacy_event:
            current.add_event(
                LEGACY_EVENT, self._legacy_attributes(series_context, detail)
            )
        return data

    def _common_attributes(
        self, series: EvaluationSeriesContext
    ) -> dict[str, AttributeValue]:
        """The attributes both event forms open with: flag, provider, context."""
        attributes: dict[str, AttributeValue] = {
            "feature_flag.key": series.key,
            "feature_flag.provider.name": self._provider,
        }
        context_id = _context_id(series)
        if context_id is not None:
            attributes["feature_flag.context.id"] = context_id
        return attributes

    def _evaluation_attributes(
        self, series: EvaluationSeriesContext, detail: EvaluationDetail[Any]
    ) -> dict[str, AttributeValue]:
        attributes = self._common_attributes(series)
        if detail.variation_index is not None:
            attributes["feature_flag.result.variant"] = str(detail.variation_index)
        # LaunchDarkly's reasons and error kinds in the conventions' words
        # (hooks.md §6), as the metrics say them.
        reason = detail.reason
        attributes["feature_flag.result.reason"] = reason_word(
            reason.get("kind"), reason.get("inExperiment")
        )
        error = detail.error_kind
        if error is not None:
            attributes["error.type"] = error_type(error)
        if series.environment_id:
            attributes["feature_flag.set.id"] = series.environment_id
        if self._include_value:
            attributes["feature_flag.result.value"] = _value(detail.value)
        return attributes

    def _legacy_attributes(
        self, series: EvaluationSeriesContext, detail: EvaluationDetail[Any]
    ) -> dict[str, AttributeValue]:
        attributes = self._common_attributes(series)
        if detail.variation_index is not None:
            attributes["feature_flag.result.variationIndex"] = str(
                detail.variation_index
            )
        if detail.reason.get("inExperiment"):
            attributes["feature_flag.result.reason.inExperiment"] = "true"
        if series.environment_id:
            attributes["feature_flag.set.id"] = series.environment_id
        if self._include_value:
            attributes["feature_flag.result.value"] = json.dumps(detail.value)
        return attributes


#: The instruments' names: OpenFeature's OpenTelemetry hooks' (JS, Go, .NET).
REQUESTS: Final = "feature_flag.evaluation_requests_total"
SUCCESSES: Final = "feature_flag.evaluation_success_total"
ERRORS: Final = "feature_flag.evaluation_error_total"
#: Guarded rollouts' decisions (issue 98): a counter, per guard, flag, metric, action.
GUARD_DECISIONS: Final = "aioflags.guard.decisions"
#: A decision's action, as ``Guard(action=...)`` says it, by its event's kind.
_ACTIONS: Final = {"alerted": "alert", "pinned": "pin"}


@final
class Metrics:
    """Evaluation metrics for OpenTelemetry, read from the counters analytics keep.

    Give it to a client (``Config(metrics=Metrics())``). Three observable
    counters, read when the metric reader collects:

    - ``feature_flag.evaluation_requests_total``: evaluations per
      ``feature_flag.key``;
    - ``feature_flag.evaluation_success_total``: those that did not fail,
      per ``feature_flag.key``, ``feature_flag.result.variant`` (the
      variation index; absent when the default was served) and
      ``feature_flag.result.reason`` (``targeting_match``, ``disabled``,
      ``split``, or ``override`` for a flag lens token's);
    - ``feature_flag.evaluation_error_total``: those that failed, per
      ``feature_flag.key`` and ``error.type`` (``flag_not_found``,
      ``type_mismatch``, ``provider_not_ready``, ...), with the reason
      ``error``.

    A client with guards (``Config(guards=[...])``) also counts each
    decision of theirs in the counter ``aioflags.guard.decisions``, at
    once, per ``aioflags.guard.name``, ``feature_flag.key``,
    ``aioflags.guard.metric`` and ``aioflags.guard.action`` (``alert``,
    ``pin``).

    An evaluation costs nothing more for them: they are the counters
    LaunchDarkly's summary event is made of, folded in at each flush (every
    ``flush_interval``, and ``await client.flush()``), so they are at most
    one flush behind. With analytics events off they count all the same
    (the client then counts as it would to send events, and sends none).
    A prerequisite's evaluations count, as in LaunchDarkly's summary.

    One ``Metrics`` counts for every client given it, for its own life:
    give each environment its own, with ``attributes`` that tell them
    apart. Instruments are made once per meter provider.

    Args:
        meter_provider: where the instruments are made (default: the global
            meter provider, as it is when this is made).
        attributes: added to every series, e.g.
            ``{"deployment.environment.name": "prod"}``.

    Raises:
        ConfigurationError: an attribute that is not a string key with a
            string, boolean, integer or float value.
        TypeError: ``meter_provider`` is not a meter provider (a metric
            reader goes into one: ``MeterProvider(metric_readers=[reader])``).

    Added in version 0.2.0.
    """

    __slots__ = ("__weakref__", "_attributes", "_decisions", "_metric_totals")

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        _check_provider(
            "Metrics(meter_provider=", meter_provider, "get_meter", "MeterProvider"
        )
        given: object = attributes  # checked at run time: callers may not be typed
        extra: dict[str, AttributeValue] = {}
        if given is not None:
            if not isinstance(given, dict):
                raise ConfigurationError(
                    f"Metrics(attributes=) must be a dict, got {given!r}"
                )
            for name, value in given.items():
                if not isinstance(name, str) or not isinstance(
                    value, (str, bool, int, float)
                ):
                    raise ConfigurationError(
                        "Metrics(attributes=) takes string names with string, "
                        f"boolean, integer or float values, got {name!r}: {value!r}"
                    )
                extra[name] = value
        self._attributes = extra
        self._metric_totals = MetricTotals()
        provider = meter_provider or metrics.get_meter_provider()
        instruments = _INSTRUMENTS.get(provider)
        if instruments is None:
            instruments = _INSTRUMENTS[provider] = _Instruments(provider)
        instruments.exporters.add(self)
        self._decisions: Counter = instruments.decisions

    def _guard_decided(self, event: GuardEvent) -> None:
        """A guard's event (a client with guards calls it): its decisions counted."""
        action = _ACTIONS.get(event.kind)
        if action is None:  # (a release: no decision)
            return
        attributes: dict[str, AttributeValue] = {
            "aioflags.guard.name": event.name,
            "feature_flag.key": event.flag,
            "aioflags.guard.metric": event.metric or "",
            "aioflags.guard.action": action,
        }
        attributes.update(self._attributes)
        self._decisions.add(1, attributes)

    @property
    def _totals(self) -> MetricTotals:
        """Where the clients given it add their counts (at each flush)."""
        return self._metric_totals

    def __repr__(self) -> str:
        return f"Metrics(attributes={self._attributes!r})"


# What one series counts into, per instrument: its attributes (without the
# exporter's), or None (not this instrument's).


def _request(series: MetricKey) -> dict[str, AttributeValue] | None:
    return {"feature_flag.key": series[0]}


def _success(series: MetricKey) -> dict[str, AttributeValue] | None:
    key, variant, reason, error = series
    if error is not None:
        return None
    attributes: dict[str, AttributeValue] = {
        "feature_flag.key": key,
        "feature_flag.result.reason": reason,
    }
    if variant is not None:
        attributes["feature_flag.result.variant"] = variant
    return attributes


def _error(series: MetricKey) -> dict[str, AttributeValue] | None:
    key, _, reason, error = series
    if error is None:
        return None
    return {
        "feature_flag.key": key,
        "feature_flag.result.reason": reason,
        "error.type": error,
    }


class _Instruments:
    """The three observable counters of one meter provider, who they read, and the guards' counter."""

    __slots__ = ("__weakref__", "decisions", "exporters")

    def __init__(self, provider: MeterProvider) -> None:
        #: The :class:`Metrics` made for this provider (while they live).
        self.exporters: weakref.WeakSet[Metrics] = weakref.WeakSet()
        meter = provider.get_meter("aioflags", __version__)
        unit = "{evaluation}"
        meter.create_observable_counter(
            REQUESTS,
            [self._reader(_request)],
            unit,
            "Flag evaluations, per flag key",
        )
        meter.create_observable_counter(
            SUCCESSES,
            [self._reader(_success)],
            unit,
            "Flag evaluations that did not fail, per flag key, variant and reason",
        )
        meter.create_observable_counter(
            ERRORS,
            [self._reader(_error)],
            unit,
            "Flag evaluations that failed, per flag key and error type",
        )
        self.decisions: Counter = meter.create_counter(
            GUARD_DECISIONS,
            "{decision}",
            "Guarded rollouts' decisions, per guard, flag key, metric and action",
        )

    def _reader(
        self, pick: Callable[[MetricKey], dict[str, AttributeValue] | None]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """An instrument's callback: the series it counts, summed by attributes.

        It holds this object weakly: a provider's meter outlives it.
        """
        ref = weakref.ref(self)

        def read(options: CallbackOptions) -> Iterable[Observation]:
            instruments = ref()
            if instruments is None:
                return []
            sums: dict[tuple[tuple[str, AttributeValue], ...], int] = {}
            for exporter in list(instruments.exporters):
                extra = exporter._attributes
                for series, count in exporter._totals.read().items():
                    attributes = pick(series)
                    if attributes is None:
                        continue
                    attributes.update(extra)
                    at = tuple(sorted(attributes.items()))
                    sums[at] = sums.get(at, 0) + count
            return [metrics.Observation(count, dict(at)) for at, count in sums.items()]

        return read


#: The instruments made, per meter provider (a provider keeps one of each name).
_INSTRUMENTS: Final[weakref.WeakKeyDictionary[MeterProvider, _Instruments]] = (
    weakref.WeakKeyDictionary()
)
