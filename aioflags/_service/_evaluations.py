"""The flag console's evaluations log: what SDKs' event posts say they evaluated.

A row per flag, variation and value (a migration's per flag and
operation), newest first, :data:`LOG_SIZE` of them: how many evaluations,
the last contexts, the reason or the error kind (inferred where the events
carry none), and a migration's origins, latencies, errors and consistency.
:class:`~._console.Console` composes one and shows its rows.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from aioflags._core._clock import wall_ms
from aioflags._core._pacing import Pacer

from . import _words as words
from ._shown import cut

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from aioflags._core._json import JSONObject, JSONValue

__all__ = ["LOG_SIZE", "EvaluationsLog"]

#: The evaluations log keeps this many rows (flag, variation, value), newest first.
LOG_SIZE: Final = 100
#: Contexts kept per log row (newest first).
_CONTEXTS: Final = 5


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "object"


def _wrong_type(value: object, flag: Mapping[str, JSONValue] | None) -> bool:
    """Whether ``value`` (a default served) is of another JSON type than the flag's values.

    A null default asks for no type (a JSON variation); a flag whose
    variations are of several types has no one type to differ from.
    """
    if flag is None or value is None:
        return False
    variations = flag.get("variations")
    types = {
        _json_type(v) for v in (variations if isinstance(variations, list) else [])
    }
    return len(types) == 1 and _json_type(value) not in types


def _contexts_of(event: Mapping[str, JSONValue]) -> list[JSONObject]:
    """The contexts (kind and key) an event names: ``context`` or ``contextKeys``."""
    found: list[JSONObject] = []
    context = event.get("context")
    keys = event.get("contextKeys")
    if isinstance(context, dict):
        kind = context.get("kind", "user")
        if kind == "multi":
            parts = [(k, v) for k, v in context.items() if k != "kind"]
        else:
            parts = [(kind, context)]
        for part_kind, part in parts:
            if isinstance(part_kind, str) and isinstance(part, dict):
                key = part.get("key")
                if isinstance(key, str):
                    found.append({"kind": cut(part_kind), "key": cut(key)})
    elif isinstance(keys, dict):
        found += [
            {"kind": cut(kind), "key": cut(key)}
            for kind, key in keys.items()
            if isinstance(key, str)
        ]
    return found[:_CONTEXTS]


#: The last instant a browser's ``Date`` holds (ms): a later time reads "Invalid Date".
_LAST_DATE: Final = 8_640_000_000_000_000


def _when(value: object) -> int:
    """An event's time in ms; now when it carries none, or one no page can show."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 < value <= _LAST_DATE
    ):
        return value
    return wall_ms()


@dataclass(slots=True)
class _Row:
    """One row of the evaluations log: what identifies it, and what adds up."""

    fixed: JSONObject
    count: int = 0
    last: int = 0
    contexts: list[JSONObject] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None
    # migration rows
    origins: set[str] = field(default_factory=set)
    latencies: dict[str, JSONValue] = field(default_factory=dict)
    errors: set[str] = field(default_factory=set)
    consistent: bool | None = None

    def add(self, count: int, when: int, contexts: list[JSONObject]) -> None:
        self.count += count
        self.last = max(self.last, when)
        for context in reversed(contexts):
            if context in self.contexts:
                self.contexts.remove(context)
            self.contexts.insert(0, context)
        del self.contexts[_CONTEXTS:]

    def as_json(self) -> JSONObject:
        row: JSONObject = {**self.fixed, "count": self.count}
        if self.fixed["type"] == "evaluation":
            row["default"] = self.fixed["variation"] is None
            row["error"] = self.error
            row["reason"] = self.reason
        else:
            row["origins"] = sorted(self.origins)
            row["latencies"] = dict(sorted(self.latencies.items()))
            row["errors"] = sorted(self.errors)
            row["consistent"] = self.consistent
        row["contexts"] = list(self.contexts)
        row["last"] = self.last
        return row


#: A migration's origins (any other name in an event is ignored: rows stay small).
_ORIGINS: Final = ("old", "new")


def _origins(values: object) -> list[str]:
    """The origins a measurement's ``values`` name (``old``, ``new``)."""
    if not isinstance(values, dict):
        return []
    return [o for o in _ORIGINS if values.get(o) is True]


class EvaluationsLog:
    """The evaluations log of one console: its rows, and the event posts they are read from."""

    __slots__ = ("_log",)

    def __init__(self) -> None:
        self._log: OrderedDict[tuple[object, ...], _Row] = OrderedDict()

    @property
    def rows(self) -> list[JSONObject]:
        """The log, newest first."""
        return [row.as_json() for row in reversed(self._log.values())]

    def _row(self, identity: tuple[object, ...], fixed: JSONObject) -> _Row:
        """The log's row of ``identity`` (new, or moved to the top)."""
        row = self._log.pop(identity, None)
        if row is None:
            row = _Row(fixed)
        self._log[identity] = row
        while len(self._log) > LOG_SIZE:
            self._log.popitem(last=False)
        return row

    def _evaluation_row(
        self, key: str, variation: object, value: object, *, create: bool = True
    ) -> _Row | None:
        variation = words.whole(variation)
        text = cut(words.written(value))
        identity = ("evaluation", key, variation, text)
        if not create and identity not in self._log:
            return None
        return self._row(
            identity,
            {
                "type": "evaluation",
                "key": cut(key),
                "value": text,
                "variation": variation,
            },
        )

    async def record(
        self,
        payload: Iterable[JSONObject],
        flags: Mapping[str, Mapping[str, JSONValue]] | None = None,
    ) -> bool:
        """Log one ``/bulk`` payload's evaluations and migrations; whether it had any.

        Summary counters count every evaluation (their time: the summary's
        ``endDate``); a feature event counts one only for a flag the
        payload's summaries do not cover (SDKs that send both would
        otherwise be counted twice), and otherwise adds its context, reason
        and time to its counter's row. Debug events add the same, never a
        count. Index events name contexts but no flag: they are not tied to
        any row. ``migration_op`` events make migration rows (per flag and
        operation: the origins that ran, their latest latencies, the origins
        that failed, and whether any consistency check failed).

        Where events carry no reason (summary counters), the error kind of a
        default is *inferred*: ``unknown: true`` is ``FLAG_NOT_FOUND``, a
        default of another JSON type than the flag's variations (``flags``,
        the service's own) is ``WRONG_TYPE``; other defaults say none.

        It is done in slices (``Pacer``), so that a payload of tens of
        thousands of events (up to 32 MiB of JSON) does not hold the event
        loop meanwhile.
        """
        pacer = Pacer()
        flags = flags or {}
        events = list(payload)
        counted = False
        summarised: set[str] = set()
        for event in events:
            if pacer.due():
                await pacer.pause()
            features = event.get("features")
            if event.get("kind") != "summary" or not isinstance(features, dict):
                continue
            when = _when(event.get("endDate"))
            for key, feature in features.items():
                summarised.add(key)
                counters = (
                    feature.get("counters") if isinstance(feature, dict) else None
                )
                for counter in counters if isinstance(counters, list) else []:
                    if isinstance(counter, dict):
                        counted |= self._count(key, counter, flags.get(key), when)
        for event in events:
            if pacer.due():
                await pacer.pause()
            kind = event.get("kind")
            if kind in ("feature", "debug"):
                key = event.get("key")
                alone = isinstance(key, str) and key not in summarised
                counted |= self._feature(
                    event, flags, count=kind == "feature" and alone
                )
            elif kind == "migration_op":
                counted |= self._migration(event)
        return counted

    def _count(
        self,
        key: str,
        counter: Mapping[str, JSONValue],
        flag: Mapping[str, JSONValue] | None,
        when: int,
    ) -> bool:
        count = words.whole(counter.get("count"))
        if count is None or count <= 0:
            return False
        value = counter.get("value")
        row = self._evaluation_row(key, counter.get("variation"), value)
        assert row is not None
        if counter.get("unknown") is True:
            row.error = "FLAG_NOT_FOUND"
        elif row.fixed["variation"] is None and _wrong_type(value, flag):
            row.error = "WRONG_TYPE"
        row.add(count, when, [])
        return True

    def _feature(
        self,
        event: Mapping[str, JSONValue],
        flags: Mapping[str, Mapping[str, JSONValue]],
        *,
        count: bool,
    ) -> bool:
        key = event.get("key")
        if not isinstance(key, str):
            return False
        value = event.get("value")
        row = self._evaluation_row(key, event.get("variation"), value, create=count)
        if row is None:
            return False
        reason = event.get("reason")
        flag = flags.get(key)
        variation = row.fixed["variation"]
        if isinstance(reason, dict):
            row.reason = words.reason_text(
                reason, flag, variation if isinstance(variation, int) else None
            )
            error = reason.get("errorKind")
            if isinstance(error, str):
                row.error = cut(error)
        elif variation is None and _wrong_type(value, flag):
            row.error = "WRONG_TYPE"
        row.add(
            1 if count else 0, _when(event.get("creationDate")), _contexts_of(event)
        )
        return True

    def _migration(self, event: Mapping[str, JSONValue]) -> bool:
        evaluation = event.get("evaluation")
        key = evaluation.get("key") if isinstance(evaluation, dict) else None
        operation = event.get("operation")
        if not isinstance(key, str) or operation not in ("read", "write"):
            return False
        row = self._row(
            ("migration", key, operation),
            {"type": "migration", "key": cut(key), "operation": operation},
        )
        measurements = event.get("measurements")
        for measurement in measurements if isinstance(measurements, list) else []:
            if not isinstance(measurement, dict):
                continue
            name = measurement.get("key")
            values = measurement.get("values")
            if name == "invoked":
                row.origins.update(_origins(values))
            elif name == "error":
                row.errors.update(_origins(values))
            elif name == "latency_ms" and isinstance(values, dict):
                for origin in _ORIGINS:
                    ms = values.get(origin)
                    if isinstance(ms, (int, float)) and not isinstance(ms, bool):
                        row.latencies[origin] = ms
            elif name == "consistent" and isinstance(measurement.get("value"), bool):
                # One inconsistency is what a developer must see.
                row.consistent = (
                    measurement["value"] is True and row.consistent is not False
                )
        row.add(1, _when(event.get("creationDate")), _contexts_of(event))
        return True
