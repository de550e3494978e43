"""OpenTelemetry tracing for flag evaluations: ``aioflags.otel.TracingHook``.

Install with ``pip install 'aioflags[otel]'`` (the OpenTelemetry API only; your
application brings the SDK and exporter it already uses)::

    from aioflags.otel import TracingHook

    config = aioflags.Config(sdk_key, hooks=[TracingHook()])

Every evaluation then adds a ``feature_flag.evaluation`` event, with the
OpenTelemetry semantic conventions' ``feature_flag.*`` attributes, to the span
that is current where you ``await client.variation(...)`` (or call a
``FlagSnapshot``'s methods). See docs/hooks.md.

Added in version 0.1.0.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final, final

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError as _missing:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "aioflags.otel needs the OpenTelemetry API: pip install 'aioflags[otel]'"
    ) from _missing

from ._client._hooks import EvaluationSeriesContext, Hook, HookMetadata
from ._evaluation._context import Context
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.util.types import AttributeValue

    from ._evaluation._results import EvaluationDetail

__all__ = ["TracingHook"]

#: The semantic conventions' event for one evaluation.
EVALUATION_EVENT: Final = "feature_flag.evaluation"
#: The older span event LaunchDarkly's Python OpenTelemetry hook emits.
LEGACY_EVENT: Final = "feature_flag"

# LaunchDarkly's reasons and error kinds in the conventions' words (hooks.md §6).
_REASONS: Final = {
    "TARGET_MATCH": "targeting_match",
    "RULE_MATCH": "targeting_match",
    "FALLTHROUGH": "targeting_match",
    "PREREQUISITE_FAILED": "targeting_match",
    "OFF": "disabled",
    "ERROR": "error",
}
_ERROR_TYPES: Final = {
    "FLAG_NOT_FOUND": "flag_not_found",
    "CLIENT_NOT_READY": "provider_not_ready",
    "USER_NOT_SPECIFIED": "invalid_context",
    "WRONG_TYPE": "type_mismatch",
    "MALFORMED_FLAG": "parse_error",
    "EXCEPTION": "general",
}
_SPAN: Final = "aioflags.otel.span"
_TOKEN: Final = "aioflags.otel.token"


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
        reason = detail.reason
        kind = reason.get("kind")
        attributes["feature_flag.result.reason"] = (
            "split"
            if reason.get("inExperiment")
            else _REASONS.get(kind, "unknown")
            if isinstance(kind, str)
            else "unknown"
        )
        error = detail.error_kind
        if error is not None:
            attributes["error.type"] = _ERROR_TYPES.get(error, "general")
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
