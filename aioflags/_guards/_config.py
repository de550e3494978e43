"""``Guard`` and its metrics: what ``Config(guards=[...])`` takes, checked as it is made."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, Literal, final

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aioflags._core._json import JSONValue

__all__ = ["ACTIONS", "Guard", "Metric", "check_guards", "errors", "latency", "metric"]

#: What a guard does when it decides.
ACTIONS: Final = ("alert", "pin")
#: The names of the built-in metrics (an app metric may not take one).
_BUILT_IN: Final = ("errors", "latency")


@final
class Metric(Frozen):
    """One thing a guard compares between its arms: ``errors()``, ``latency()`` or ``metric(name)``.

    Attributes:
        name: ``"errors"``, ``"latency"``, or the app metric's name (what
            ``client.track(name, context, metric_value=...)`` sends).
        worse: ``"higher"`` or ``"lower"``: which way is harm.

    Added in version 0.2.0.
    """

    __slots__ = ("name", "worse")
    name: str
    worse: Literal["higher", "lower"]

    def __init__(self, name: str, *, worse: Literal["higher", "lower"]) -> None:
        set_field(self, "name", name)
        set_field(self, "worse", worse)


def errors() -> Metric:
    """The share of requests that raised or answered 5xx: worse when higher.

    Added in version 0.2.0.
    """
    return Metric("errors", worse="higher")


def latency() -> Metric:
    """How long a request took (compared on its logarithm): worse when higher.

    Added in version 0.2.0.
    """
    return Metric("latency", worse="higher")


def metric(name: str, *, worse: Literal["higher", "lower"]) -> Metric:
    """An app metric: the values ``client.track(name, ..., metric_value=x)`` sends in a request, summed.

    ``worse`` is required: a guard looks for harm in one direction only,
    and only you know whether more of ``name`` (a cart's value, a retry
    count) is good or bad.

    Raises:
        ConfigurationError: ``name`` empty or built in, ``worse`` not
            ``"higher"`` or ``"lower"``.

    Added in version 0.2.0.
    """
    given: object = name  # (callers may not be typed)
    if not isinstance(given, str) or not given:
        raise ConfigurationError(
            f"aioflags.guards.metric(name) takes the metric's name, got {name!r}"
        )
    if name in _BUILT_IN:
        raise ConfigurationError(
            f"aioflags.guards.metric({name!r}): use aioflags.guards.{name}() for"
            " the built-in metric"
        )
    if worse not in ("higher", "lower"):
        raise ConfigurationError(
            f'aioflags.guards.metric({name!r}, worse=...) is "higher" or "lower"'
            " (which way is harm: a guard tests one side only), got"
            f" {worse!r}"
        )
    return Metric(name, worse=worse)


def _json_key(value: object) -> object:
    """``value`` as a hashable key that JSON's equality decides (``True`` is not ``1``; ``1`` is ``1.0``)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, dict):
        return ("object", frozenset((k, _json_key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(_json_key(v) for v in value))
    return ("other", value)


@final
class Guard(Frozen):
    """A guard on one flag's rollout (issue 98): ``Config(guards=[Guard(...)])``.

    It compares the requests that the flag's randomized assignment (a
    rollout, flagd's ``fractional``) sent to each variation against those
    sent to ``control``, on each of ``metrics``, with an anytime-valid
    one-sided test; when a treatment is worse, it alerts (one WARNING, an
    event, its status) and, with ``action="pin"``, serves ``control``
    (reason ``{"kind": "GUARDED", "guard": name}``) until the flag's
    version changes or ``client.guards.release(name)``.

    Args:
        flag: the guarded flag's key.
        control: the variation's value that is known good.
        metrics: what to compare (``aioflags.guards.errors()``,
            ``latency()``, ``metric(name, worse=...)``); both built-ins by
            default.
        action: ``"alert"`` (default) or ``"pin"``.
        alpha: the false-alarm rate, in (0, 0.5), split across the metrics
            and treatments (default 0.01).
        name: the guard's name (default: the flag key).

    Raises:
        ConfigurationError: a field that is not valid, named.

    Added in version 0.2.0.
    """

    __slots__ = ("flag", "control", "metrics", "action", "alpha", "name")  # noqa: RUF023 - fields in order
    flag: str
    control: JSONValue
    metrics: tuple[Metric, ...]
    action: Literal["alert", "pin"]
    alpha: float
    name: str

    def __init__(
        self,
        flag: str,
        *,
        control: JSONValue,
        metrics: Iterable[Metric] = (errors(), latency()),
        action: Literal["alert", "pin"] = "alert",
        alpha: float = 0.01,
        name: str | None = None,
    ) -> None:
        given: object = flag  # (callers may not be typed)
        if not isinstance(given, str) or not given:
            raise ConfigurationError(f"Guard(flag) is the flag's key, got {flag!r}")
        what = f"Guard({flag!r})"
        listed: object = metrics  # (callers may not be typed)
        if isinstance(listed, (str, bytes, Metric)) or not hasattr(listed, "__iter__"):
            raise ConfigurationError(
                f"{what}: metrics is a list, such as"
                " [aioflags.guards.errors(), aioflags.guards.latency()]"
            )
        kept: tuple[object, ...] = tuple(metrics)
        if not kept:
            raise ConfigurationError(f"{what}: metrics needs at least one metric")
        seen: set[str] = set()
        for one in kept:
            if not isinstance(one, Metric):
                raise ConfigurationError(
                    f"{what}: unknown metric {one!r} in metrics: use"
                    " aioflags.guards.errors(), latency() or metric(name, worse=...)"
                )
            if one.name in seen:
                raise ConfigurationError(
                    f"{what}: metric {one.name!r} is in metrics twice"
                )
            seen.add(one.name)
        if action not in ACTIONS:
            raise ConfigurationError(
                f'{what}: action is "alert" or "pin", got {action!r}'
            )
        level: object = alpha
        if (
            isinstance(level, bool)
            or not isinstance(level, (int, float))
            or not math.isfinite(level)
            or not 0 < level < 0.5
        ):
            raise ConfigurationError(
                f"{what}: alpha is the false-alarm rate, in (0, 0.5), got {alpha!r}"
            )
        label: object = flag if name is None else name
        if not isinstance(label, str) or not label:
            raise ConfigurationError(f"{what}: name is a non-empty str, got {name!r}")
        set_field(self, "flag", flag)
        set_field(self, "control", control)
        set_field(self, "metrics", kept)  # (each checked a Metric above)
        set_field(self, "action", action)
        set_field(self, "alpha", float(alpha))
        set_field(self, "name", label)

    def _key(self) -> tuple[object, ...]:
        # The fields, ``control`` as JSON compares it: a dict or list control
        # hashes (Config, which holds guards, is hashable), and
        # ``control=True`` is not ``control=1`` (that guard serves another
        # variation). repr, copy and pickle read the fields as they are.
        return (
            self.flag,
            _json_key(self.control),
            self.metrics,
            self.action,
            self.alpha,
            self.name,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Guard)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def check_guards(given: object) -> tuple[Guard, ...]:
    """``Config(guards=...)``: a sequence of :class:`Guard`, one per flag, names unique.

    Raises:
        ConfigurationError: naming the field and what is wrong.
    """
    if isinstance(given, (str, bytes, Guard)) or not hasattr(given, "__iter__"):
        raise ConfigurationError(
            f"guards must be a list of aioflags.Guard, got {given!r}"
        )
    guards = tuple(given)
    flags: set[str] = set()
    names: set[str] = set()
    for guard in guards:
        if not isinstance(guard, Guard):
            raise ConfigurationError(
                f"guards must be a list of aioflags.Guard, got {guard!r} in it"
            )
        if guard.flag in flags:
            raise ConfigurationError(
                f"guards: two guards on flag {guard.flag!r} (one guard per flag:"
                " give it every metric)"
            )
        if guard.name in names:
            raise ConfigurationError(
                f"guards: two guards named {guard.name!r} (name=... tells them apart)"
            )
        flags.add(guard.flag)
        names.add(guard.name)
    return guards
