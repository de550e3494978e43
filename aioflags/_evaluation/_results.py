"""Evaluation results handed to applications: EvaluationDetail and FlagsState."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, ClassVar, Generic, NoReturn, TypeVar, final

from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    from aioflags._core._json import JSONObject, JSONValue

__all__ = ["EvaluationDetail", "FlagsState", "Reason", "Result", "ResultCache"]

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


class ResultCache:
    """What is built from one flag's precompiled result on first use, then shared.

    ``detail`` is the ``EvaluationDetail`` (for a result that serves a
    variation); ``flags_state`` holds the result's ``$flagsState`` entries
    for all-flags state, one per combination of options, at
    :func:`flags_state_slot`.
    """

    __slots__ = ("detail", "flags_state")

    def __init__(self) -> None:
        self.detail: EvaluationDetail[JSONValue] | None = None
        self.flags_state: list[JSONObject | None] = [None, None, None, None]


def flags_state_slot(with_reasons: bool, omit_details: bool) -> int:
    """Where in ``ResultCache.flags_state`` the entry for these options is kept."""
    return with_reasons << 1 | omit_details


@final
class Result:
    """The outcome of evaluating one flag, mostly precomputed at compile time.

    A slotted class rather than a tuple: evaluation reads its fields by name
    at the speed of a local (a ``NamedTuple``'s index or field costs ~100
    more CPU instructions). Results are never mutated. The reason dict is
    shared: copy it before handing it to application code.
    """

    __slots__ = ("cache", "experiment", "reason", "value", "variation_index")

    #: the variation's value (``None`` when no variation is served)
    value: JSONValue
    #: the served variation's index, ``None`` when the default is returned
    variation_index: int | None
    reason: Reason
    #: whether the result counts as an experiment for all-flags state
    #: (``inExperiment``, a rule with ``trackEvents``, or the fallthrough of a
    #: flag with ``trackEventsFallthrough``): known when the flag is compiled
    experiment: bool
    #: for a result that belongs to one flag: what is built from it on first
    #: use; ``None`` for results shared between flags or built for one
    #: evaluation
    cache: ResultCache | None

    def __init__(
        self,
        value: JSONValue,
        variation_index: int | None,
        reason: Reason,
        experiment: bool,
        cache: ResultCache | None,
    ) -> None:
        self.value = value
        self.variation_index = variation_index
        self.reason = reason
        self.experiment = experiment
        self.cache = cache

    def with_value(self, value: JSONValue) -> Result:
        """The same result serving ``value`` (a typed conversion), for one evaluation."""
        return Result(value, self.variation_index, self.reason, self.experiment, None)

    def __repr__(self) -> str:
        return (
            f"Result(value={self.value!r}, variation_index={self.variation_index!r}, "
            f"reason={dict(self.reason)!r}, experiment={self.experiment!r})"
        )


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
    value: T
    variation_index: int | None
    reason: Reason

    def __init__(
        self, *, value: T, variation_index: int | None, reason: Reason
    ) -> None:
        set_field(self, "value", value)
        set_field(self, "variation_index", variation_index)
        set_field(self, "reason", reason)

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
class FlagsState:
    """All flags' values for one context: the result of ``all_flags_state``.

    ``to_dict()`` gives LaunchDarkly's bootstrap JSON shape, for client-side
    SDKs: ``{"flag-key": value, ..., "$flagsState": {...}, "$valid": true}``.

    Added in version 0.1.0.
    """

    __slots__ = ("_meta", "_valid", "_values")

    def __init__(
        self, *, valid: bool, values: JSONObject, meta: dict[str, JSONObject]
    ) -> None:
        self._valid = valid
        self._values = values
        self._meta = meta

    @property
    def valid(self) -> bool:
        """False when the client had no data or the context was invalid."""
        return self._valid

    def get_flag_value(self, key: str) -> JSONValue:
        """The value of one flag (``None`` if absent or if it served no variation)."""
        return self._values.get(key)

    def get_flag_reason(self, key: str) -> JSONObject | None:
        """The reason of one flag, if reasons were recorded for it."""
        reason = self._meta.get(key, {}).get("reason")
        return dict(reason) if reason is not None else None

    def to_dict(self) -> JSONObject:
        """LaunchDarkly's bootstrap JSON shape, as a fresh dict."""
        out: JSONObject = dict(self._values)
        out["$flagsState"] = {
            key: {
                k: (
                    dict(v) if k == "reason" else list(v) if k == "prerequisites" else v
                )
                for k, v in meta.items()
            }
            for key, meta in self._meta.items()
        }
        out["$valid"] = self._valid
        return out

    def to_json(self) -> str:
        """``to_dict()`` serialised as JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlagsState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FlagsState(valid={self._valid}, flags={len(self._values)})"
