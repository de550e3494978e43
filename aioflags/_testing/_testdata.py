"""FlagData: build flags and segments in tests, and serve them with or without a server.

A :class:`FlagData` holds flags and segments as LaunchDarkly JSON. Builders
(:class:`FlagBuilder`, :class:`SegmentBuilder`) describe them without JSON by
hand; :meth:`FlagData.update` publishes a builder to every place the data is
served: in-memory data systems made by :meth:`FlagData.data_system` (no
server, no sockets) and :class:`~aioflags.testing.FlagServer` instances
attached with :meth:`FlagData.attach`.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Final, cast, final

import anyio

from aioflags._datasystem._config import DataSystem
from aioflags._datasystem._context import mark_local
from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    SourceState,
    Update,
    full_transfer,
    puts,
)
from aioflags._evaluation._migration import Stage

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterable, Mapping

    from anyio.streams.memory import MemoryObjectSendStream

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._datasystem._context import SourceContext
    from aioflags._service._server import FlagServer

__all__ = ["FlagBuilder", "FlagData", "SegmentBuilder", "clause", "in_segment"]

_WEIGHT_SCALE: Final = 1000  # LaunchDarkly weights are in thousandths of a percent
_JSON_TYPES: Final = (
    "None, bool, int, float, str, or lists and dicts (with str keys) of them"
)


def _not_json(value: object, where: str) -> str | None:
    """Where ``value`` stops being JSON (a path and the culprit), or None."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _not_json(item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                return f"{where} has the key {name!r} (type {type(name).__name__})"
            problem = _not_json(item, f"{where}.{name}" if where else name)
            if problem is not None:
                return problem
        return None
    return f"{where or 'the value'} is {value!r} (type {type(value).__name__})"


def _require_json(value: object, what: str, where: str = "") -> None:
    problem = _not_json(value, where)
    if problem is not None:
        raise TypeError(f"{what}: {problem}, which is not JSON; use {_JSON_TYPES}")


def clause(
    attribute: str,
    op: str,
    *values: JSONValue,
    kind: str = "user",
    negate: bool = False,
) -> JSONObject:
    """A rule clause: ``attribute`` compared with ``op`` to any of ``values``.

    ``attribute`` is a reference such as ``"email"`` or ``"/address/city"``;
    ``op`` is one of LaunchDarkly's operators (``"in"``, ``"endsWith"``,
    ``"greaterThan"``, ``"semVerLessThan"``, ...).

    Added in version 0.1.0.
    """
    if not values:
        raise ValueError(f"clause({attribute!r}, {op!r}) needs at least one value")
    return {
        "contextKind": kind,
        "attribute": attribute,
        "op": op,
        "values": list(values),
        "negate": negate,
    }


def in_segment(*segment_keys: str, negate: bool = False) -> JSONObject:
    """A clause that matches contexts in any of the segments.

    Added in version 0.1.0.
    """
    if not segment_keys:
        raise ValueError("in_segment() needs at least one segment key")
    return {
        "attribute": "",
        "op": "segmentMatch",
        "values": list(segment_keys),
        "negate": negate,
    }


def _rollout(
    index_weights: list[tuple[int, float]],
    *,
    bucket_by: str | None,
    kind: str,
    seed: int | None,
    experiment: bool,
) -> JSONObject:
    total = sum(w for _, w in index_weights)
    if not math.isclose(total, 100.0, abs_tol=1e-6):
        raise ValueError(f"rollout percentages must add up to 100, not {total:g}")
    variations: list[JSONValue] = [
        {"variation": i, "weight": round(w * _WEIGHT_SCALE)} for i, w in index_weights
    ]
    rollout: JSONObject = {"variations": variations, "contextKind": kind}
    if bucket_by is not None:
        rollout["bucketBy"] = bucket_by
    if seed is not None:
        rollout["seed"] = seed
    if experiment:
        rollout["kind"] = "experiment"
    return rollout


def _ratio(key: str, method: str, ratio: int | None) -> int | None:
    """``ratio`` if it is ``None`` or an int of 0 or more, else a ValueError saying so."""
    given: object = ratio
    if given is None or (type(given) is int and given >= 0):
        return ratio
    raise ValueError(
        f"flag {key!r}: {method}() takes an int of 0 or more (1 in that many; "
        f"0: none) or None, got {given!r}"
    )


@final
class FlagBuilder:
    """Describes one flag; publish it with :meth:`FlagData.update`.

    Every method returns the builder, so calls chain. Variations are named by
    value, not by index: ``.fallthrough("green")``. A new builder is a boolean
    flag that is on and serves ``True`` to everyone.

    Added in version 0.1.0.
    """

    __slots__ = (
        "_check_ratio",
        "_client_side",
        "_fallthrough",
        "_key",
        "_off_variation",
        "_on",
        "_prerequisites",
        "_rules",
        "_sampling_ratio",
        "_targets",
        "_track_events",
        "_variations",
    )

    def __init__(self, key: str) -> None:
        if not isinstance(cast("object", key), str) or not key:
            raise ValueError("a flag key must be a non-empty string")
        self._key = key
        self._on = True
        self._variations: list[JSONValue] = [True, False]
        self._fallthrough: JSONObject = {"variation": 0}
        self._off_variation: int | None = 1
        self._targets: dict[tuple[str, int], list[str]] = {}
        self._rules: list[JSONObject] = []
        self._prerequisites: list[tuple[str, JSONValue]] = []
        self._client_side = False
        self._track_events = False
        self._check_ratio: int | None = None
        self._sampling_ratio: int | None = None

    @property
    def key(self) -> str:
        """The flag key."""
        return self._key

    def copy(self) -> FlagBuilder:
        """An independent copy of this builder."""
        other = FlagBuilder(self._key)
        for name in self.__slots__:
            setattr(other, name, copy.deepcopy(getattr(self, name)))
        return other

    def _index(self, value: JSONValue) -> int:
        for i, v in enumerate(self._variations):
            if v == value and type(v) is type(value):
                return i
        raise ValueError(
            f"flag {self._key!r}: {value!r} is not one of its variations "
            f"{self._variations!r}; call .variations(...) first"
        )

    # -------------------------------------------------------------- shape
    def boolean(self) -> FlagBuilder:
        """Make it a boolean flag: variations ``[True, False]``, serving ``True``, off ``False``."""
        return self.variations(True, False).fallthrough(True).off_variation(False)

    def variations(self, *values: JSONValue) -> FlagBuilder:
        """Set the variations (at least one).

        Targets and rules are cleared; the fallthrough becomes the first
        variation and the off variation the last.
        """
        if not values:
            raise ValueError(
                f"flag {self._key!r}: variations() needs at least one value"
            )
        self._variations = list(values)
        self._targets.clear()
        self._rules.clear()
        self._fallthrough = {"variation": 0}
        self._off_variation = len(values) - 1
        return self

    def value_for_all(self, value: JSONValue) -> FlagBuilder:
        """Serve ``value`` to everyone, on or off (what ``flagValues`` in a flag file does).

        A boolean keeps both variations (``[True, False]``), so rules and
        targets can serve the other one later; any other value is the only
        variation.
        """
        if isinstance(value, bool):
            self.variations(True, False)
            self.fallthrough(value).off_variation(value)
        else:
            self.variations(value)
        self._on = True
        self._prerequisites.clear()
        return self

    def migration(self, stage: Stage | str = Stage.OFF) -> FlagBuilder:
        """Make it a migration flag serving ``stage`` to everyone (docs/migrations.md).

        The variations become the six stage names (``"off"``, ``"dualwrite"``,
        ``"shadow"``, ``"live"``, ``"rampdown"``, ``"complete"``), as in a
        migration flag made in LaunchDarkly; the off variation is ``"off"``.
        Targets and rules name stages by those strings
        (``.target("live", "user-1")``, or ``Stage.LIVE.value``). Set the
        sampling with :meth:`migration_check_ratio` and :meth:`sampling_ratio`.
        """
        if isinstance(stage, Stage):
            stage = stage.value
        self.variations(*(member.value for member in Stage))
        self._fallthrough = {"variation": self._index(stage)}
        self._off_variation = self._index(Stage.OFF.value)
        return self

    def migration_check_ratio(self, ratio: int | None) -> FlagBuilder:
        """Run a migrator's consistency check for 1 in ``ratio`` reads (``migration.checkRatio``).

        0 never runs it, 1 runs it for every read (as ``None``, the default:
        the flag then has no ``migration`` field).
        """
        self._check_ratio = _ratio(self._key, "migration_check_ratio", ratio)
        return self

    def sampling_ratio(self, ratio: int | None) -> FlagBuilder:
        """Send 1 in ``ratio`` of the flag's events (``samplingRatio``): ``migration_op`` ones too.

        0 sends none, 1 sends every one (as ``None``, the default: the flag
        then has no ``samplingRatio`` field).
        """
        self._sampling_ratio = _ratio(self._key, "sampling_ratio", ratio)
        return self

    def on(self, on: bool = True) -> FlagBuilder:
        """Turn targeting on (or off with ``on(False)``)."""
        self._on = on
        return self

    def off(self) -> FlagBuilder:
        """Turn targeting off: everyone gets the off variation."""
        return self.on(False)

    def fallthrough(self, value: JSONValue) -> FlagBuilder:
        """What contexts that match no target or rule get."""
        self._fallthrough = {"variation": self._index(value)}
        return self

    def fallthrough_rollout(
        self,
        percentages: Mapping[JSONValue, float] | Iterable[tuple[JSONValue, float]],
        *,
        bucket_by: str | None = None,
        kind: str = "user",
        seed: int | None = None,
        experiment: bool = False,
    ) -> FlagBuilder:
        """Split contexts that match nothing by percentage: ``{"red": 50, "blue": 50}``."""
        self._fallthrough = {
            "rollout": _rollout(
                self._weights(percentages),
                bucket_by=bucket_by,
                kind=kind,
                seed=seed,
                experiment=experiment,
            )
        }
        return self

    def _weights(
        self, percentages: Mapping[JSONValue, float] | Iterable[tuple[JSONValue, float]]
    ) -> list[tuple[int, float]]:
        items = percentages.items() if isinstance(percentages, dict) else percentages
        return [(self._index(v), float(w)) for v, w in items]

    def off_variation(self, value: JSONValue | None) -> FlagBuilder:
        """What everyone gets while the flag is off (``None``: the caller's default)."""
        self._off_variation = None if value is None else self._index(value)
        return self

    # ---------------------------------------------------------- targeting
    def target(self, value: JSONValue, *keys: str, kind: str = "user") -> FlagBuilder:
        """Serve ``value`` to the contexts of ``kind`` with these keys."""
        index = self._index(value)
        for (k, i), existing in self._targets.items():
            if k == kind and i != index:
                existing[:] = [x for x in existing if x not in keys]
        targeted = self._targets.setdefault((kind, index), [])
        targeted.extend(k for k in dict.fromkeys(keys) if k not in targeted)
        return self

    def rule(
        self,
        *clauses: JSONObject,
        serve: JSONValue = None,
        rollout: Mapping[JSONValue, float] | None = None,
        bucket_by: str | None = None,
        kind: str = "user",
        seed: int | None = None,
        experiment: bool = False,
        rule_id: str | None = None,
        id: str | None = None,  # (the rule's "id", as coverage names it)
    ) -> FlagBuilder:
        """Add a rule: when every clause matches, ``serve`` a value or a ``rollout``.

        Build clauses with :func:`clause` and :func:`in_segment`. ``id`` (or
        ``rule_id``, its older name) is the rule's ``id``: flag coverage
        names the rule's branch ``rule:<id>`` (``rule:<index>`` without one).
        """
        if id is not None and rule_id is not None and id != rule_id:
            raise ValueError(
                f"flag {self._key!r}: give the rule's id once (id={id!r} or"
                f" rule_id={rule_id!r})"
            )
        rule_id = rule_id if id is None else id
        if not clauses:
            raise ValueError(f"flag {self._key!r}: a rule needs at least one clause")
        if (rollout is None) == (serve is None):
            raise ValueError(
                f"flag {self._key!r}: a rule takes either serve= or rollout=, not both"
            )
        rule: JSONObject = {
            "id": rule_id or f"rule-{len(self._rules)}",
            "clauses": [dict(c) for c in clauses],
        }
        if rollout is not None:
            rule["rollout"] = _rollout(
                self._weights(rollout),
                bucket_by=bucket_by,
                kind=kind,
                seed=seed,
                experiment=experiment,
            )
        else:
            rule["variation"] = self._index(serve)
        self._rules.append(rule)
        return self

    def clear_targeting(self) -> FlagBuilder:
        """Remove every target, rule and prerequisite."""
        self._targets.clear()
        self._rules.clear()
        self._prerequisites.clear()
        return self

    def prerequisite(self, flag_key: str, value: JSONValue) -> FlagBuilder:
        """Require flag ``flag_key`` to serve ``value`` first (else the off variation)."""
        self._prerequisites.append((flag_key, value))
        return self

    def client_side(self, available: bool = True) -> FlagBuilder:
        """Make the flag available to client-side SDKs (``all_flags_state(client_side_only=True)``)."""
        self._client_side = available
        return self

    def track_events(self, track: bool = True) -> FlagBuilder:
        """Set ``trackEvents`` (full details in ``all_flags_state`` for tracked flags)."""
        self._track_events = track
        return self

    # -------------------------------------------------------------- output
    def build(self, flags: Mapping[str, JSONObject] | None = None) -> JSONObject:
        """The flag's LaunchDarkly JSON (``version`` is set when it is published).

        ``flags`` resolves prerequisite values to variation indexes.
        """
        prerequisites: list[JSONValue] = []
        for other, value in self._prerequisites:
            target = (flags or {}).get(other)
            if target is None:
                raise ValueError(
                    f"flag {self._key!r}: prerequisite flag {other!r} is unknown; "
                    "publish it first"
                )
            variations = target.get("variations")
            assert isinstance(variations, list)
            matches = [
                i
                for i, v in enumerate(variations)
                if v == value and type(v) is type(value)
            ]
            if not matches:
                raise ValueError(
                    f"flag {self._key!r}: prerequisite {other!r} has no variation {value!r}"
                )
            prerequisites.append({"key": other, "variation": matches[0]})
        targets: list[JSONValue] = []
        context_targets: list[JSONValue] = []
        for (kind, index), keys in self._targets.items():
            if not keys:
                continue
            if kind == "user":
                targets.append({"variation": index, "values": list(keys)})
                context_targets.append(
                    {"contextKind": "user", "variation": index, "values": []}
                )
            else:
                context_targets.append(
                    {"contextKind": kind, "variation": index, "values": list(keys)}
                )
        flag: JSONObject = {
            "key": self._key,
            "on": self._on,
            "variations": copy.deepcopy(self._variations),
            "fallthrough": copy.deepcopy(self._fallthrough),
            "offVariation": self._off_variation,
            "targets": targets,
            "contextTargets": context_targets,
            "rules": copy.deepcopy(self._rules),
            "prerequisites": prerequisites,
            "salt": f"{self._key}-salt",
            "trackEvents": self._track_events,
            "clientSide": self._client_side,
            "clientSideAvailability": {
                "usingEnvironmentId": self._client_side,
                "usingMobileKey": self._client_side,
            },
        }
        if self._check_ratio is not None:
            flag["migration"] = {"checkRatio": self._check_ratio}
        if self._sampling_ratio is not None:
            flag["samplingRatio"] = self._sampling_ratio
        return flag


@final
class SegmentBuilder:
    """Describes one segment; publish it with :meth:`FlagData.update`.

    Added in version 0.1.0.
    """

    __slots__ = ("_excluded", "_included", "_key", "_rules")

    def __init__(self, key: str) -> None:
        if not isinstance(cast("object", key), str) or not key:
            raise ValueError("a segment key must be a non-empty string")
        self._key = key
        self._included: dict[str, list[str]] = {}
        self._excluded: dict[str, list[str]] = {}
        self._rules: list[JSONObject] = []

    @property
    def key(self) -> str:
        """The segment key."""
        return self._key

    def copy(self) -> SegmentBuilder:
        """An independent copy of this builder."""
        other = SegmentBuilder(self._key)
        other._included = copy.deepcopy(self._included)
        other._excluded = copy.deepcopy(self._excluded)
        other._rules = copy.deepcopy(self._rules)
        return other

    def included(self, *keys: str, kind: str = "user") -> SegmentBuilder:
        """Put the contexts of ``kind`` with these keys in the segment."""
        self._included.setdefault(kind, []).extend(keys)
        return self

    def excluded(self, *keys: str, kind: str = "user") -> SegmentBuilder:
        """Keep the contexts of ``kind`` with these keys out, whatever the rules say."""
        self._excluded.setdefault(kind, []).extend(keys)
        return self

    def rule(
        self,
        *clauses: JSONObject,
        percentage: float | None = None,
        bucket_by: str | None = None,
        kind: str = "user",
    ) -> SegmentBuilder:
        """Contexts matching every clause are in (only ``percentage`` of them, if given)."""
        if not clauses:
            raise ValueError(f"segment {self._key!r}: a rule needs at least one clause")
        rule: JSONObject = {
            "id": f"rule-{len(self._rules)}",
            "clauses": [dict(c) for c in clauses],
        }
        if percentage is not None:
            if not 0 <= percentage <= 100:
                raise ValueError(
                    f"segment {self._key!r}: percentage must be within 0..100"
                )
            rule["weight"] = round(percentage * _WEIGHT_SCALE)
            rule["rolloutContextKind"] = kind
            if bucket_by is not None:
                rule["bucketBy"] = bucket_by
        self._rules.append(rule)
        return self

    def build(self) -> JSONObject:
        """The segment's LaunchDarkly JSON (``version`` is set when it is published)."""

        def split(
            by_kind: dict[str, list[str]],
        ) -> tuple[list[JSONValue], list[JSONValue]]:
            users: list[JSONValue] = list(by_kind.get("user", []))
            others: list[JSONValue] = [
                {"contextKind": k, "values": list(v)}
                for k, v in by_kind.items()
                if k != "user"
            ]
            return users, others

        included, included_contexts = split(self._included)
        excluded, excluded_contexts = split(self._excluded)
        return {
            "key": self._key,
            "included": included,
            "excluded": excluded,
            "includedContexts": included_contexts,
            "excludedContexts": excluded_contexts,
            "rules": copy.deepcopy(self._rules),
            "salt": f"{self._key}-salt",
        }


@final
class FlagData:
    """Flags and segments for tests, served in memory or by attached FlagServers.

    ::

        data = FlagData()
        data.update(data.flag("new-checkout").boolean())
        data.update(
            data.flag("banner")
            .variations("red", "green")
            .rule(clause("email", "endsWith", "@example.com"), serve="green")
        )
        config = aioflags.Config(data_system=data.data_system())   # no server
        # or: async with FlagServer() as server: data.attach(server)

    Every publication reaches every running client at once, as a change pushed
    on a stream would.

    Added in version 0.1.0.
    """

    __slots__ = (
        "_builders",
        "_flags",
        "_segments",
        "_servers",
        "_subscribers",
        "_version",
    )

    def __init__(self) -> None:
        self._flags: dict[str, JSONObject] = {}
        self._segments: dict[str, JSONObject] = {}
        self._builders: dict[str, FlagBuilder] = {}
        self._version = 0
        self._subscribers: list[MemoryObjectSendStream[ChangeSet]] = []
        self._servers: list[FlagServer] = []

    # ---------------------------------------------------------- builders
    def flag(self, key: str) -> FlagBuilder:
        """A builder for flag ``key``: a copy of the last one published, or a new one."""
        existing = self._builders.get(key)
        return existing.copy() if existing is not None else FlagBuilder(key)

    @staticmethod
    def segment(key: str) -> SegmentBuilder:
        """A new builder for segment ``key`` (publishing it replaces the old one)."""
        return SegmentBuilder(key)

    # --------------------------------------------------------- publishing
    def update(self, *builders: FlagBuilder | SegmentBuilder) -> None:
        """Publish flags and segments, in order, to every client and server."""
        changes: list[Change] = []
        for builder in builders:
            if isinstance(builder, FlagBuilder):
                obj = builder.build(self._flags)
                self._builders[builder.key] = builder.copy()
                changes.append(self._store(ObjectKind.FLAG, builder.key, obj))
            elif isinstance(builder, SegmentBuilder):
                changes.append(
                    self._store(ObjectKind.SEGMENT, builder.key, builder.build())
                )
            else:
                raise TypeError(
                    f"update() takes FlagBuilder or SegmentBuilder, got {builder!r}"
                )
        self._publish(changes)

    def set_value(self, key: str, value: JSONValue) -> None:
        """Publish a flag that serves ``value`` to everyone."""
        _require_json(value, f"flag {key!r}", "value")
        self.update(self.flag(key).value_for_all(value))

    def set_flag(self, key: str, flag: JSONObject) -> None:
        """Publish a flag given as LaunchDarkly JSON."""
        self._builders.pop(key, None)
        self._publish([self._store(ObjectKind.FLAG, key, dict(flag))])

    def set_segment(self, key: str, segment: JSONObject) -> None:
        """Publish a segment given as LaunchDarkly JSON."""
        self._publish([self._store(ObjectKind.SEGMENT, key, dict(segment))])

    def delete_flag(self, key: str) -> None:
        """Delete a flag everywhere (evaluations then answer FLAG_NOT_FOUND)."""
        self._delete(ObjectKind.FLAG, key)

    def delete_segment(self, key: str) -> None:
        """Delete a segment everywhere."""
        self._delete(ObjectKind.SEGMENT, key)

    @property
    def flags(self) -> dict[str, JSONObject]:
        """The published flags as LaunchDarkly JSON (a deep copy)."""
        return copy.deepcopy(self._flags)

    @property
    def segments(self) -> dict[str, JSONObject]:
        """The published segments as LaunchDarkly JSON (a deep copy)."""
        return copy.deepcopy(self._segments)

    def _store(self, kind: ObjectKind, key: str, obj: JSONObject) -> Change:
        _require_json(obj, f"{kind.value} {key!r}")
        self._version += 1
        obj = {**obj, "key": key, "version": self._version}
        (self._flags if kind is ObjectKind.FLAG else self._segments)[key] = obj
        return Change(
            action=ChangeKind.PUT, kind=kind, key=key, version=self._version, obj=obj
        )

    def _delete(self, kind: ObjectKind, key: str) -> None:
        self._version += 1
        items = self._flags if kind is ObjectKind.FLAG else self._segments
        items.pop(key, None)
        if kind is ObjectKind.FLAG:
            self._builders.pop(key, None)
        self._publish(
            [
                Change(
                    action=ChangeKind.DELETE, kind=kind, key=key, version=self._version
                )
            ]
        )

    def _publish(self, changes: list[Change]) -> None:
        change_set = ChangeSet(
            intent=IntentCode.TRANSFER_CHANGES, changes=tuple(changes)
        )
        for send in self._subscribers:  # unbounded: never blocks
            send.send_nowait(change_set)
        for server in self._servers:
            for change in changes:
                server.apply_change(change)

    # ------------------------------------------------------------ serving
    def attach(self, server: FlagServer) -> None:
        """Serve this data from ``server`` now and publish every later change to it."""
        server.replace_all(self._flags, self._segments)
        self._servers.append(server)

    def detach(self, server: FlagServer) -> None:
        """Stop publishing to ``server`` (its data stays as it is)."""
        self._servers.remove(server)

    def data_system(self) -> DataSystem:
        """An in-memory data system serving this data: no server, no sockets.

        The client gets the data published so far at start, and every later
        publication at once.
        """
        # Local: it needs no SDK key, so the client sends no analytics events.
        return DataSystem.custom(synchronizers=[mark_local(self._synchronizer)])

    async def _synchronizer(self, ctx: SourceContext) -> AsyncGenerator[Update, None]:
        del ctx  # an in-memory source needs no HTTP, config or clock
        send, receive = anyio.create_memory_object_stream[ChangeSet](math.inf)
        self._subscribers.append(send)
        try:
            full = full_transfer(
                puts(ObjectKind.FLAG, self._flags),
                puts(ObjectKind.SEGMENT, self._segments),
            )
            yield Update(state=SourceState.VALID, change_set=full)
            async for change_set in receive:
                yield Update(state=SourceState.VALID, change_set=change_set)
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()
            receive.close()
