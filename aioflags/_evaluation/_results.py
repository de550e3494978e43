"""Evaluation results handed to applications: EvaluationDetail and FlagsState."""

from __future__ import annotations

import json
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Generic,
    NoReturn,
    Protocol,
    TypeVar,
    cast,
    final,
)

from aioflags._core._frozen import Frozen, _rebuild, set_field
from aioflags._core._renamed import point_to

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "EvaluationDetail",
    "FlagsState",
    "Reason",
    "Result",
    "detail_of",
    "keep_entry",
    "keep_json",
    "keep_json_value",
    "own_cache",
]

T = TypeVar("T")


def _read_only() -> NoReturn:
    """Refuse to mutate a reason (reasons are shared between evaluations)."""
    raise TypeError(
        "evaluation reasons are read-only; use dict(reason) for a mutable copy"
    )


@final
class Reason(dict[str, "JSONValue"]):
    """LaunchDarkly's JSON reason, as a read-only ``dict``.

    It is a real ``dict`` (``isinstance``, ``json.dumps`` and ``==`` work as
    usual), but mutating it raises ``TypeError``: reasons are shared between
    evaluations. ``dict(reason)`` gives a mutable copy.

    Added in version 0.1.0.
    """

    __slots__ = ()

    # Every mutator refuses (declared one by one, so type checkers agree).
    def __setitem__(self, *args: object) -> NoReturn:
        _read_only()

    def __delitem__(self, *args: object) -> NoReturn:
        _read_only()

    def clear(self) -> NoReturn:
        _read_only()

    def pop(self, *args: object) -> NoReturn:
        _read_only()

    def popitem(self) -> NoReturn:
        _read_only()

    def setdefault(self, *args: object) -> NoReturn:
        _read_only()

    def update(self, *args: object, **kwargs: object) -> NoReturn:
        _read_only()

    def __ior__(self, *args: object) -> NoReturn:  # type: ignore[misc]
        _read_only()

    def copy(self) -> dict[str, JSONValue]:
        """A mutable plain-dict copy."""
        return dict(self)

    def __reduce__(self) -> tuple[type[Reason], tuple[dict[str, JSONValue]]]:
        return (Reason, (dict(self),))


def flags_state_slot(with_reasons: bool, omit_details: bool) -> int:
    """Where in ``Result.cache`` the entry for these options is kept."""
    return with_reasons << 1 | omit_details


@final
class EvaluationDetail(Frozen, Generic[T]):
    """The value a flag evaluated to, with the variation index and the reason.

    Attributes:
        value: the flag's value, or the default passed by the caller when the
            evaluation produced no variation (then ``variation_index`` is None).
        variation_index: the index of the served variation, or ``None``.
        reason: LaunchDarkly's JSON reason, e.g. ``{"kind": "RULE_MATCH",
            "ruleIndex": 0, "ruleId": "r1"}`` or ``{"kind": "ERROR",
            "errorKind": "FLAG_NOT_FOUND"}``, as a read-only dict
            (:class:`Reason`).

    Added in version 0.1.0.
    """

    __slots__ = ("value", "variation_index", "reason")  # noqa: RUF023 - fields in order
    #: the fields, in order
    _FIELDS: ClassVar[tuple[str, ...]] = ("value", "variation_index", "reason")
    value: T
    variation_index: int | None
    reason: Reason

    def __init__(
        self, *, value: T, variation_index: int | None, reason: Reason
    ) -> None:
        set_field(self, "value", value)
        set_field(self, "variation_index", variation_index)
        set_field(self, "reason", reason)

    def _names(self) -> tuple[str, ...]:
        return self._FIELDS

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvaluationDetail):
            return NotImplemented
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __repr__(self) -> str:
        return (
            f"EvaluationDetail(value={self.value!r}, "
            f"variation_index={self.variation_index!r}, reason={self.reason!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (EvaluationDetail, self._astuple()))

    def __replace__(self, **changes: Any) -> EvaluationDetail[T]:
        """A copy with ``changes`` (``copy.replace``, 3.13)."""
        values = dict(zip(self._FIELDS, self._astuple(), strict=True))
        unknown = changes.keys() - values.keys()
        if unknown:
            raise TypeError(f"EvaluationDetail has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        return EvaluationDetail(**values)

    @property
    def is_default_value(self) -> bool:
        """Whether the caller's default was returned (no variation was served)."""
        return self.variation_index is None

    @property
    def error_kind(self) -> str | None:
        """The ``errorKind`` of an ``ERROR`` reason, else ``None``."""
        kind = self.reason.get("errorKind")
        return (
            kind
            if self.reason.get("kind") == "ERROR" and isinstance(kind, str)
            else None
        )


@final
class Result:
    """The outcome of evaluating one flag, mostly precomputed at compile time.

    Private: what applications get is an :class:`EvaluationDetail`, made
    from a result at the public boundary (:func:`detail_of`). A flag's
    results are built when it is compiled, and a result that serves a
    variation keeps the detail made of it (:attr:`detail`), so that
    ``variation_detail`` builds one per result, not per evaluation. A
    result that serves no variation has ``value`` ``None``; the detail
    then carries the caller's default and is built per call.

    A slotted class: evaluation reads its fields by name at the speed of a
    local (a ``NamedTuple``'s index or field costs ~100 more CPU
    instructions). Results are never mutated (assignment raises, as for
    any ``EvaluationDetail``). The reason dict is shared and read-only.
    """

    __slots__ = (
        "cache",
        "detail",
        "experiment",
        "json_value",
        "place",
        "reason",
        "value",
        "variation_index",
    )

    value: JSONValue
    variation_index: int | None
    reason: Reason
    #: the public detail made of this result (None until first handed out)
    detail: EvaluationDetail[JSONValue] | None

    #: whether the result counts as an experiment for all-flags state
    #: (``inExperiment``, a rule with ``trackEvents``, or the fallthrough of a
    #: flag with ``trackEventsFallthrough``): known when the flag is compiled
    experiment: bool
    #: the variation it is counted under in a summary's counts in place
    #: (analytics events): :attr:`variation_index`, but None when it serves
    #: none or is an experiment's (those are counted the long way, the
    #: latter with a full event). One test for the two on the count path.
    place: int | None
    #: for a result that belongs to one flag: its ``$flagsState`` entries for
    #: all-flags state, built on first use, one per combination of options
    #: at :func:`flags_state_slot` (one read-only sequence shared by all
    #: until the first is kept: :func:`own_cache`); ``None`` for an error's
    #: or one built for one evaluation
    cache: Sequence[Any] | None
    #: all-flags state's JSON of the value (``"key":value``), kept once
    #: made, for ``FlagsState.to_json`` (the entries' JSON is in ``cache``)
    json_value: str | None

    def __init__(
        self,
        value: JSONValue,
        variation_index: int | None,
        reason: Reason,
        experiment: bool,
        cache: Sequence[Any] | None,
    ) -> None:
        # Through the slots' own setters: object.__setattr__ looks each up
        # first, and a flag's compilation builds several results.
        _SET_VALUE(self, value)
        _SET_INDEX(self, variation_index)
        _SET_REASON(self, reason)
        _SET_EXPERIMENT(self, experiment)
        _SET_PLACE(self, None if experiment else variation_index)
        _SET_CACHE(self, cache)
        _SET_JSON_VALUE(self, None)
        _SET_DETAIL(self, None)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        _read_only()

    def __delattr__(self, name: str) -> NoReturn:
        _read_only()

    def _fields(self) -> tuple[JSONValue, int | None, Reason]:
        return (self.value, self.variation_index, self.reason)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Result):
            return self._fields() == other._fields()
        if isinstance(other, EvaluationDetail):
            return self._fields() == other._astuple()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Result(value={self.value!r}, variation_index={self.variation_index!r}, "
            f"reason={self.reason!r})"
        )

    def with_value(self, value: JSONValue) -> Result:
        """The same result serving ``value`` (a typed conversion), for one evaluation."""
        return Result(value, self.variation_index, self.reason, self.experiment, None)


class Deferred(Protocol):
    """What a :class:`FlagsState` built on first read is built from."""

    def build(self) -> tuple[JSONObject, dict[str, JSONObject]]:
        """The values and the ``$flagsState`` entries, in flag order."""
        ...

    def json(self) -> str | None:
        """``to_json()``'s text, or ``None`` to serialise :meth:`build`'s dicts."""
        ...


def _setter(cls: type, name: str) -> Callable[[object, object], None]:
    """The setter of slot ``name`` of ``cls``."""
    return cast("Callable[[object, object], None]", vars(cls)[name].__set__)


# The slots' setters (Result refuses assignment, as EvaluationDetail does).
_SET_VALUE: Final = _setter(Result, "value")
_SET_INDEX: Final = _setter(Result, "variation_index")
_SET_REASON: Final = _setter(Result, "reason")
_SET_DETAIL: Final = _setter(Result, "detail")
_DETAIL: Final = EvaluationDetail.__new__
_SET_DETAIL_VALUE: Final = _setter(EvaluationDetail, "value")
_SET_DETAIL_INDEX: Final = _setter(EvaluationDetail, "variation_index")
_SET_DETAIL_REASON: Final = _setter(EvaluationDetail, "reason")


def detail_of(result: Result, default: Any) -> EvaluationDetail[Any]:
    """The public detail of ``result`` (``default`` if it serves no variation).

    A result that serves a variation keeps the detail made of it: made
    once per result (a flag's precompiled results live as long as the
    flag), through the slots' setters.
    """
    index = result.variation_index
    if index is None:
        return EvaluationDetail(
            value=default, variation_index=None, reason=result.reason
        )
    detail = result.detail
    if detail is None:
        detail = _DETAIL(EvaluationDetail)
        _SET_DETAIL_VALUE(detail, result.value)
        _SET_DETAIL_INDEX(detail, index)
        _SET_DETAIL_REASON(detail, result.reason)
        _SET_DETAIL(result, detail)  # (two threads at once: either is right)
    return detail


_SET_EXPERIMENT: Final = _setter(Result, "experiment")
_SET_PLACE: Final = _setter(Result, "place")
_SET_CACHE: Final = _setter(Result, "cache")
_SET_JSON_VALUE: Final = _setter(Result, "json_value")


def _kept(result: Result) -> list[Any]:
    """The list ``result`` keeps its entries in, made at the first one kept."""
    cache = result.cache
    assert cache is not None, "only a flag's own result keeps its entries"
    if cache is _NOTHING_KEPT:
        # (two threads at once: one list is kept, the other's entry is
        # made again when it is next needed)
        cache = list(_NOTHING_KEPT)
        _SET_CACHE(result, cache)
    return cast("list[Any]", cache)


def keep_entry(result: Result, slot: int, entry: JSONObject) -> None:
    """Keep ``entry`` in a result that belongs to one flag, at ``slot``."""
    _kept(result)[slot] = entry


#: where in ``Result.cache`` the JSON of the entry at slot ``s`` is kept
#: (``"key":{...}``): at ``JSON_ENTRY + s``
JSON_ENTRY: Final = 4


def keep_json(result: Result, slot: int, text: str) -> None:
    """Keep the JSON of a result's entry at ``slot`` (see :data:`JSON_ENTRY`)."""
    _kept(result)[JSON_ENTRY + slot] = text


def keep_json_value(result: Result, text: str) -> None:
    """Keep the JSON of a result's value (``"key":value``)."""
    _SET_JSON_VALUE(result, text)


#: The ``cache`` of a flag's own result that has kept nothing yet: one
#: read-only sequence for all (read as a list is: an entry is None until
#: kept). A result's own list is made when all-flags state first keeps an
#: entry in it, so a compiled flag's results hold no object of their own
#: for the collector to walk until then.
_NOTHING_KEPT: Final[tuple[Any, ...]] = (None,) * 8


def own_cache() -> Sequence[Any]:
    """The ``cache`` of a result that belongs to one flag (nothing kept yet).

    Its entries for all-flags state at :func:`flags_state_slot`, then their
    JSON (see :data:`JSON_ENTRY`); shared until the first is kept.
    """
    return _NOTHING_KEPT


@final
class FlagsState:
    """All flags' values for one context: the result of ``all_flags_state``.

    ``to_dict()`` gives LaunchDarkly's bootstrap JSON shape, for client-side
    SDKs: ``{"flag-key": value, ..., "$flagsState": {...}, "$valid": true}``.

    Added in version 0.1.0.
    """

    __slots__ = ("_meta", "_pending", "_valid", "_values")

    def __init__(
        self, *, valid: bool, values: JSONObject, meta: dict[str, JSONObject]
    ) -> None:
        self._valid = valid
        self._values: JSONObject | None = values
        self._meta = meta
        self._pending: Deferred | None = None

    @classmethod
    def _deferred(cls, pending: Deferred) -> FlagsState:
        """A valid state whose values and entries ``pending`` gives on first read.

        ``all_flags_state`` evaluates every flag and keeps the results;
        their values and ``$flagsState`` entries (a function of each result,
        its flag and the options) are put in dicts when first read, and
        ``to_json()`` joins JSON kept beside them.
        """
        state = cls(valid=True, values={}, meta={})
        state._values = None
        state._pending = pending
        return state

    def _built(self) -> tuple[JSONObject, dict[str, JSONObject]]:
        values = self._values
        if values is None:
            assert self._pending is not None
            # Two threads may both build: the same dicts, either kept.
            values, self._meta = self._pending.build()
            self._values = values
        return values, self._meta

    @property
    def valid(self) -> bool:
        """False when the client had no data or the context was invalid."""
        return self._valid

    def get_flag_value(self, key: str) -> JSONValue:
        """The value of one flag (``None`` if absent or if it served no variation)."""
        return self._built()[0].get(key)

    def get_flag_reason(self, key: str) -> JSONObject | None:
        """The reason of one flag, if reasons were recorded for it."""
        reason = self._built()[1].get(key, {}).get("reason")
        return dict(reason) if reason is not None else None

    def to_dict(self) -> JSONObject:
        """LaunchDarkly's bootstrap JSON shape, as a fresh dict."""
        values, meta = self._built()
        out: JSONObject = dict(values)
        entries: JSONObject = {}
        for key, shared in meta.items():
            # Entries are shared between calls: each a copy, and its nested
            # reason and prerequisites too (only they are containers).
            entry = dict(shared)
            if "reason" in entry:
                entry["reason"] = dict(entry["reason"])
            if "prerequisites" in entry:
                entry["prerequisites"] = list(entry["prerequisites"])
            entries[key] = entry
        out["$flagsState"] = entries
        out["$valid"] = self._valid
        return out

    def to_json(self) -> str:
        """``to_dict()`` serialised as JSON."""
        pending = self._pending
        if pending is not None:
            text = pending.json()
            if text is not None:
                return text
        # Serialising reads the shared entries and copies nothing.
        values, meta = self._built()
        out: JSONObject = dict(values)
        out["$flagsState"] = meta
        out["$valid"] = self._valid
        return json.dumps(out, separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlagsState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FlagsState(valid={self._valid}, flags={len(self._built()[0])})"


point_to(
    FlagsState,
    "aioflags.FlagsState",
    to_json_dict="use state.to_dict() (LaunchDarkly's bootstrap JSON, as a dict)",
    to_json_string="use state.to_json() (LaunchDarkly's bootstrap JSON, as text)",
)
