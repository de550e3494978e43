"""What ``client.usage()`` returns: each flag's evaluations for the life of the client.

Made on request from the analytics pipeline's summary counters, which every
flush folds into the client's lifetime totals (``_analytics._usage``): the
evaluation path counts nothing more for it. Built only when asked for.
"""

from __future__ import annotations

import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, final

from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aioflags._analytics._usage import FlagTotal
    from aioflags._client._config import Config
    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "FlagUsage",
    "Usage",
    "VariationUsage",
    "no_figures_reason",
    "no_usage",
    "usage_of",
]


@final
class VariationUsage(Frozen):
    """One value a flag served, and how many evaluations served it.

    Attributes:
        value: the variation's value.
        evaluations: how many evaluations served it.

    Added in version 0.1.0.
    """

    __slots__ = ("value", "evaluations")  # noqa: RUF023 - fields in order
    value: JSONValue
    evaluations: int

    def __init__(self, *, value: JSONValue, evaluations: int) -> None:
        set_field(self, "value", value)
        set_field(self, "evaluations", evaluations)


@final
class FlagUsage(Frozen):
    """One flag's evaluations for the life of the client (an item of :attr:`Usage.flags`).

    Attributes:
        key: the flag's key.
        evaluations: how many times it was evaluated, as a prerequisite of
            another flag too; ``sum(v.evaluations for v in variations) +
            defaults``.
        variations: the values it served, with how many evaluations served
            each, most served first (at equal counts, values of earlier
            versions of the flag first, then by variation index). Told apart
            by value, so they add up across changes of the flag that reorder
            its variations.
        defaults: the evaluations that served no variation but the caller's
            default: the flag was off with no off variation, not in the data
            (``FLAG_NOT_FOUND``), the client was not ready, or an error.
        last_evaluated: when it was last evaluated (UTC), to within one
            ``flush_interval`` (5 s by default): the end of the last flush
            window that counted it, or the call to ``usage()`` if it was
            evaluated since the last flush. Never earlier than the evaluation.
        overridden: the evaluations a flag lens token overrode (docs/lens.md),
            counted here only: not in ``evaluations``, ``variations`` or
            ``defaults``, as they are in no analytics event. Added in
            version 0.2.0.

    Added in version 0.1.0.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "key",
        "evaluations",
        "variations",
        "defaults",
        "last_evaluated",
        "overridden",
    )
    key: str
    evaluations: int
    variations: tuple[VariationUsage, ...]
    defaults: int
    last_evaluated: datetime.datetime
    overridden: int

    def __init__(
        self,
        *,
        key: str,
        evaluations: int,
        variations: tuple[VariationUsage, ...],
        defaults: int,
        last_evaluated: datetime.datetime,
        overridden: int = 0,
    ) -> None:
        set_field(self, "key", key)
        set_field(self, "evaluations", evaluations)
        set_field(self, "variations", variations)
        set_field(self, "defaults", defaults)
        set_field(self, "last_evaluated", last_evaluated)
        set_field(self, "overridden", overridden)

    def to_dict(self) -> JSONObject:
        """The flag's figures as JSON-ready values: ``last_evaluated`` in ISO 8601.

        ``{"key", "evaluations", "variations": [{"value", "evaluations"}, ...],
        "defaults", "last_evaluated", "overridden"}``, a fresh dict (the values served are
        the flag's own JSON: copy them before changing them).

        Added in version 0.1.0.
        """
        return {
            "key": self.key,
            "evaluations": self.evaluations,
            "variations": [
                {"value": v.value, "evaluations": v.evaluations}
                for v in self.variations
            ],
            "defaults": self.defaults,
            "last_evaluated": self.last_evaluated.isoformat(),
            "overridden": self.overridden,
        }


@final
class Usage(Frozen):
    """Which flags a client evaluated, how often, serving what: ``client.usage()``.

    Made from the counters analytics events keep for LaunchDarkly's summary,
    so it exists only while events are on (``Config.events_enabled``):
    otherwise :attr:`available` is False and there are no figures, rather
    than zeros that would call every flag unused.

    Attributes:
        available: whether evaluations are counted at all. False when
            analytics events are off (``offline=True``, no SDK key, a data
            system that needs none such as ``DataSystem.file`` or
            ``FlagData.data_system()``, ``send_events=False``), or before
            the client first starts: then ``since`` is None and ``flags`` and
            ``never_evaluated`` are empty, telling nothing, and ``reason``
            says which.
        reason: why there are no figures when ``available`` is False (which
            setting turned events off, or that the client has not started);
            None when there are.
        counting: whether evaluations are being counted now: the client is
            running with events on. The figures of a client that closed are
            those of its life until then; if LaunchDarkly refused the SDK key
            (HTTP 401 or 403), events stop, and so does counting.
        since: when counting began (UTC): the client's first start.
        flags: per flag key, each flag evaluated since then, as a
            prerequisite too; a key not in the data (``FLAG_NOT_FOUND``)
            included.
        never_evaluated: the keys of the flags in the client's data that
            were never evaluated since then: its current data, or the last
            data it had while it is not ready or once it closed.

    Added in version 0.1.0.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "available",
        "reason",
        "counting",
        "since",
        "flags",
        "never_evaluated",
    )
    available: bool
    reason: str | None
    counting: bool
    since: datetime.datetime | None
    flags: Mapping[str, FlagUsage]
    never_evaluated: frozenset[str]

    def __init__(
        self,
        *,
        available: bool,
        counting: bool,
        since: datetime.datetime | None,
        flags: Mapping[str, FlagUsage],
        never_evaluated: frozenset[str],
        reason: str | None = None,
    ) -> None:
        set_field(self, "available", available)
        set_field(self, "reason", reason)
        set_field(self, "counting", counting)
        set_field(self, "since", since)
        # read-only: a Usage is a value
        set_field(self, "flags", MappingProxyType(dict(flags)))
        set_field(self, "never_evaluated", never_evaluated)

    def to_dict(self) -> JSONObject:
        """The usage as JSON-ready values, for a report or a log line.

        The fields by name, a fresh dict: ``since`` in ISO 8601 (or None),
        ``flags`` by key as :meth:`FlagUsage.to_dict` gives them, and
        ``never_evaluated`` as a sorted list. ``json.dumps`` takes it as is.

        Added in version 0.1.0.
        """
        return {
            "available": self.available,
            "reason": self.reason,
            "counting": self.counting,
            "since": None if self.since is None else self.since.isoformat(),
            "flags": {key: flag.to_dict() for key, flag in self.flags.items()},
            "never_evaluated": sorted(self.never_evaluated),
        }

    def __reduce__(self) -> tuple[object, ...]:
        # Through __init__ with a plain dict: a mappingproxy cannot be pickled
        # (nor deep-copied).
        return (_usage, (*self._astuple()[:4], dict(self.flags), self.never_evaluated))


def _usage(
    available: bool,
    reason: str | None,
    counting: bool,
    since: datetime.datetime | None,
    flags: Mapping[str, FlagUsage],
    never_evaluated: frozenset[str],
) -> Usage:
    """``Usage(...)`` from its fields in order (pickle, ``copy``)."""
    return Usage(
        available=available,
        reason=reason,
        counting=counting,
        since=since,
        flags=flags,
        never_evaluated=never_evaluated,
    )


def _utc(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


def usage_of(
    totals: dict[str, FlagTotal],
    *,
    since_ms: int,
    counting: bool,
    flag_keys: frozenset[str],
    overridden: Mapping[str, int] | None = None,
    now_ms: int = 0,
) -> Usage:
    """The :class:`Usage` of these totals, against the data's ``flag_keys``.

    ``overridden``: the flag lens's overridden evaluations per key (a flag
    evaluated only so is last evaluated ``now_ms``, at most).
    """
    # Flags evaluated in one flush window share its end: one datetime each.
    times: dict[int, datetime.datetime] = {}
    flags: dict[str, FlagUsage] = {}
    for key, total in totals.items():
        served = total.served
        if len(served) > 1:
            served = sorted(served, key=_most_first)
        last = times.get(total.last_ms)
        if last is None:
            last = times[total.last_ms] = _utc(total.last_ms)
        flags[key] = FlagUsage(
            key=key,
            evaluations=total.evaluations,
            variations=tuple(
                [VariationUsage(value=value, evaluations=n) for value, n in served]
            ),
            defaults=total.defaults,
            last_evaluated=last,
        )
    for key, count in (overridden or {}).items():
        flag = flags.get(key)
        flags[key] = (
            FlagUsage(
                key=key,
                evaluations=0,
                variations=(),
                defaults=0,
                last_evaluated=_utc(now_ms),
                overridden=count,
            )
            if flag is None
            else FlagUsage(
                key=key,
                evaluations=flag.evaluations,
                variations=flag.variations,
                defaults=flag.defaults,
                last_evaluated=flag.last_evaluated,
                overridden=count,
            )
        )
    return Usage(
        available=True,
        counting=counting,
        since=_utc(since_ms),
        flags=flags,
        never_evaluated=flag_keys.difference(flags),
    )


def _most_first(entry: list[Any]) -> int:
    count: int = entry[1]
    return -count


def no_figures_reason(config: Config) -> str:
    """Why a client with this configuration and no counters has no usage figures."""
    from aioflags._datasystem._config import is_local

    if config.offline:
        why = "Config(offline=True)"
    elif config.data_system is not None and is_local(config.data_system):
        why = (
            "the data system reads local flag data only, as DataSystem.file and "
            "FlagData.data_system() do, and sends no events"
        )
    elif (unrecorded := config._unrecorded_system()) is not None:
        why = (
            f"the data system is {unrecorded.name}'s, and LaunchDarkly's recorder "
            "knows none of its flags: set events_uri to a recorder of your own "
            "to send them"
        )
    elif not config.send_events:
        why = "Config(send_events=False)"
    elif config.sdk_key is None:
        why = "no sdk_key"
    else:
        return (
            "the client has not started (in this process): evaluations are "
            "counted from its first start"
        )
    return (
        f"analytics events are off ({why}), and usage() counts evaluations "
        "with their counters"
    )


def no_usage(reason: str) -> Usage:
    """The :class:`Usage` of a client that counts nothing, and ``reason`` why."""
    return Usage(
        available=False,
        reason=reason,
        counting=False,
        since=None,
        flags={},
        never_evaluated=frozenset(),
    )
