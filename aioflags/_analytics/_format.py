"""Buffered records to LaunchDarkly's JSON events, with private attributes redacted.

Runs at flush time, off the evaluation path (events.md §3, §4). Contexts are
immutable, so a record holds the context itself and it is only serialised
here; nothing the application passed in is mutated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aioflags._evaluation._context import parse_reference

from ._recorder import CUSTOM, DEBUG, FEATURE, IDENTIFY, INDEX, MIGRATION_OP

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._migration import MigrationOpEvent

    from ._recorder import Batch, Counter, Record

__all__ = ["EventFormatter", "by_flag", "escape_reference", "features", "summary_head"]

#: Never redacted: they identify the context.
_PROTECTED: Final = frozenset({"kind", "key", "anonymous", "_meta"})


def escape_reference(path: tuple[str, ...]) -> str:
    """How a redacted attribute is listed in ``_meta.redactedAttributes``.

    A plain top-level name stays plain; a name containing ``/`` or ``~``, and
    any nested path, is written as a reference (``~`` as ``~0``, ``/`` as
    ``~1``, components joined by ``/``, with a leading ``/``).
    """
    if len(path) == 1 and "/" not in path[0] and "~" not in path[0]:
        return path[0]
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


def _parse(references: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    parsed = (parse_reference(r, literal=False) for r in references)
    return tuple(p for p in parsed if p is not None and p[0] not in _PROTECTED)


def _redact(body: JSONObject, path: tuple[str, ...], redacted: list[str]) -> JSONObject:
    """``body`` without the attribute at ``path`` (copied where changed), listing it."""
    head = path[0]
    if head not in body:
        return body
    if len(path) == 1:
        body = dict(body)
        del body[head]
        name = escape_reference(path)
        if name not in redacted:
            redacted.append(name)
        return body
    inner = body[head]
    if not isinstance(inner, dict):
        return body
    before = len(redacted)
    changed = _redact(inner, path[1:], redacted)
    if changed is inner:
        return body
    if len(redacted) > before:
        # Listed as the whole path, not as the inner remainder.
        redacted[-1] = escape_reference(path)
    body = dict(body)
    body[head] = changed
    return body


class EventFormatter:
    """Turns a :class:`~aioflags._analytics._recorder.Batch` into the ``/bulk`` payload."""

    __slots__ = ("_all_private", "_global", "_omit_anonymous")

    def __init__(
        self,
        *,
        all_private: bool,
        private: Sequence[str],
        omit_anonymous: bool,
    ) -> None:
        # Config's all_attributes_private, private_attributes and
        # omit_anonymous_contexts (analytics sits below the client's Config).
        self._all_private = all_private
        self._global = _parse(private)
        self._omit_anonymous = omit_anonymous

    # ------------------------------------------------------------- contexts
    def _single(self, part: Context, redact_anonymous: bool) -> JSONObject:
        values = part._values
        body: JSONObject = {"kind": part._kind, "key": part._key}
        anonymous = bool(values.get("anonymous"))
        redacted: list[str] = []
        if self._all_private or (anonymous and redact_anonymous):
            redacted.extend(
                escape_reference((name,)) for name in values if name not in _PROTECTED
            )
        else:
            attrs: JSONObject = {k: v for k, v in values.items() if k not in _PROTECTED}
            for path in (*self._global, *_parse(part._private)):
                attrs = _redact(attrs, path, redacted)
            body.update(attrs)
        if anonymous:
            body["anonymous"] = True
        if redacted:
            body["_meta"] = {"redactedAttributes": redacted}
        return body

    def context(
        self, context: Context, *, redact_anonymous: bool, omit_anonymous: bool = False
    ) -> JSONObject | None:
        """The context as events carry it; ``None`` if omitted (all anonymous)."""
        parts = list(context._parts.values())
        if omit_anonymous:
            parts = [p for p in parts if not p._values.get("anonymous")]
            if not parts:
                return None
        if len(parts) == 1:
            return self._single(parts[0], redact_anonymous)
        out: JSONObject = {"kind": "multi"}
        for part in parts:
            body = self._single(part, redact_anonymous)
            del body["kind"]
            out[part._kind] = body
        return out

    # --------------------------------------------------------------- events
    def _evaluation(self, record: Record) -> JSONObject:
        kind, now, context, flag, result, value, default, detail, prereq_of = record
        debug = kind == DEBUG
        event: JSONObject = {
            "kind": "debug" if debug else "feature",
            "creationDate": now,
            "key": flag.key,
            "version": flag.version,
            "context": self.context(context, redact_anonymous=not debug),
            "value": value,
        }
        if result.variation_index is not None:
            event["variation"] = result.variation_index
        if prereq_of is None:
            event["default"] = default
        elif not debug:
            event["prereqOf"] = prereq_of
        if detail or result.experiment:
            event["reason"] = dict(result.reason)
        return event

    def record(self, record: Record) -> JSONObject | None:
        """One buffered record as its event; ``None`` if omitted (all anonymous)."""
        kind = record[0]
        if kind in (FEATURE, DEBUG):
            return self._evaluation(record)
        if kind in (INDEX, IDENTIFY):
            context = self.context(
                record[2],
                redact_anonymous=False,
                omit_anonymous=self._omit_anonymous,
            )
            if context is None:
                return None
            return {
                "kind": "index" if kind == INDEX else "identify",
                "creationDate": record[1],
                "context": context,
            }
        if kind == MIGRATION_OP:
            return self._migration_op(record[1], record[2])
        assert kind == CUSTOM
        _, now, context, key, data, metric_value = record
        event = {
            "kind": "custom",
            "creationDate": now,
            "key": key,
            "context": self.context(context, redact_anonymous=True),
        }
        if data is not None:
            event["data"] = data
        if metric_value is not None:
            event["metricValue"] = metric_value
        return event

    def _migration_op(self, now: int, op: MigrationOpEvent) -> JSONObject:
        """A ``migration_op`` event, as LaunchDarkly's SDKs send it."""
        detail = op.detail
        evaluation: JSONObject = {"key": op.key, "value": detail.value}
        if op.version is not None:
            evaluation["version"] = op.version
        evaluation["default"] = op.default_stage.value
        if detail.variation_index is not None:
            evaluation["variation"] = detail.variation_index
        evaluation["reason"] = dict(detail.reason)
        event: JSONObject = {
            "kind": "migration_op",
            "creationDate": now,
            "operation": op.operation.value,
            "context": self.context(op.context, redact_anonymous=True),
            "evaluation": evaluation,
        }
        if op.sampling_ratio != 1:
            event["samplingRatio"] = op.sampling_ratio
        measurements: list[JSONValue] = [
            {"key": "invoked", "values": {o.value: True for o in op.invoked}}
        ]
        if op.consistent is not None:
            # samplingRatio always, 1 included: LaunchDarkly's conformance
            # harness requires it (its SDKs omit it when it is 1; docs/events.md).
            consistent: JSONObject = {
                "key": "consistent",
                "value": op.consistent,
                "samplingRatio": op.consistent_ratio,
            }
            measurements.append(consistent)
        if op.latencies:
            latency = {o.value: ms for o, ms in op.latencies}
            measurements.append({"key": "latency_ms", "values": latency})
        if op.errors:
            errors = {o.value: True for o in op.errors}
            measurements.append({"key": "error", "values": errors})
        event["measurements"] = measurements
        return event

    def events(self, batch: Batch) -> list[JSONObject]:
        """Every buffered event, in order, then the summary (if anything was counted)."""
        out = [e for e in map(self.record, batch.records) if e is not None]
        summary = self.summary(batch)
        if summary is not None:
            out.append(summary)
        return out

    def summary(self, batch: Batch) -> JSONObject | None:
        """The batch's summary event (``None`` if nothing was counted).

        The dict form, in one step: the flush writes the same event's JSON
        a slice of flags at a time, straight from the counters
        (:class:`~aioflags._analytics._summary.SummaryWriter`); the tests
        hold the two to the same bytes.
        """
        if not batch.counters:
            return None
        groups = by_flag(batch.counters, {})
        return {**summary_head(batch), "features": features(list(groups.items()))}


def summary_head(batch: Batch) -> JSONObject:
    """The summary event without its ``features`` (which come last)."""
    return {"kind": "summary", "startDate": batch.start_ms, "endDate": batch.end_ms}


def by_flag(
    counters: Iterable[tuple[str, Counter]], groups: dict[str, list[Counter]]
) -> dict[str, list[Counter]]:
    """Add ``counters`` to ``groups`` (returned): each flag key's counters.

    Keys are in the order they were first counted. A flag may have several counters: each full transfer makes new flag
    objects, unchanged or not (issue 42), and an unknown key has its own.
    """
    for key, counter in counters:
        same = groups.get(key)
        if same is None:
            groups[key] = [counter]
        else:
            same.append(counter)
    return groups


def features(groups: list[tuple[str, list[Counter]]]) -> JSONObject:
    """The summary's ``features`` for these flags (:func:`by_flag`), by key, as dicts."""
    return {key: _feature(counters) for key, counters in groups}


def _made(counter: Counter) -> int:
    return counter.order


def _feature(counters: list[Counter]) -> JSONObject:
    """One flag's entry: a row per (version, variation) served, counts summed.

    Counters of one version (see :func:`by_flag`) are summed into one row
    per variation served and one default row per version (``version`` None:
    the flag was unknown).
    """
    if len(counters) > 1:  # (from two ledgers: in the order they were made)
        counters = sorted(counters, key=_made)
    kinds: set[str] = set()
    rows: dict[tuple[int | None, int | None], JSONObject] = {}
    for counter in counters:
        kinds |= counter.kinds
        flag = counter.flag
        version = None if flag is None else flag.version
        for index, count in enumerate(counter.counts):
            if count:
                assert flag is not None
                row = rows.get((version, index))
                if row is None:
                    row = rows[version, index] = {
                        "variation": index,
                        "version": version,
                        "value": flag.variations[index],
                        "count": 0,
                    }
                row["count"] += count
        if counter.none:
            row = rows.get((version, None))
            if row is None:
                new: JSONObject = (
                    {"unknown": True} if flag is None else {"version": version}
                )
                new["value"] = counter.none_value
                new["count"] = 0
                row = rows[version, None] = new
            row["count"] += counter.none
    return {
        "default": counters[0].default,
        "contextKinds": [*sorted(kinds)],
        "counters": list(rows.values()),
    }
