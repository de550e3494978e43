"""Values that are not JSON: sent as ``null``, each named once per flush (events.md §3).

A context's attributes and an evaluation's default are the caller's values,
recorded as given and serialised only at flush time: one such value must not
cost the rest of its event, or a flag's whole summary.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Final

from aioflags._core._logname import client_logger

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

__all__ = ["MEND_DEPTH", "NOT_WRITTEN", "as_json", "say_not_json", "serialisable"]

logger = client_logger("aioflags.events")

#: What ``json.dumps`` raises for a value it cannot write: not JSON
#: (TypeError, ValueError: NaN, a circular reference), or too deep.
NOT_WRITTEN: Final = (TypeError, ValueError, RecursionError)

#: How deep a value is followed when one is mended (JSON nested deeper is
#: not something an analytics event holds; deeper parts are sent as null).
MEND_DEPTH: Final = 64


def serialisable(event: JSONValue) -> bool:
    """Whether ``json.dumps`` writes ``event`` (NaN and the infinities refused)."""
    try:
        json.dumps(event, allow_nan=False)
    except NOT_WRITTEN:
        return False
    return True


def as_json(
    value: object, odd: list[str], within: frozenset[int] = frozenset()
) -> JSONValue:
    """``value`` with each part that is not JSON as ``None``; each such part named in ``odd``.

    Not JSON: NaN and the infinities, and any object that is not a str,
    number, bool, None, dict with str keys, list or tuple (a ``Decimal``, a
    ``datetime``, a set), a container inside itself, or nesting past
    :data:`MEND_DEPTH`. ``within``: the containers this one is inside
    (their ids; their number is the depth).
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        odd.append(f"float {value!r}")
        return None
    if isinstance(value, (dict, list, tuple)):
        if id(value) in within:
            odd.append("a container inside itself")
            return None
        if len(within) >= MEND_DEPTH:
            odd.append(f"nesting deeper than {MEND_DEPTH}")
            return None
        inside = within | {id(value)}
        if isinstance(value, dict):
            out: dict[str, JSONValue] = {}
            for key, item in value.items():
                if isinstance(key, str):
                    out[key] = as_json(item, odd, inside)
                else:
                    odd.append(f"a key of type {type(key).__name__}")
            return out
        return [as_json(item, odd, inside) for item in value]
    odd.append(type(value).__name__)
    return None


def say_not_json(odd: list[str]) -> None:
    """One WARNING per flush for the values that were sent as ``null``."""
    if odd:
        logger.warning(
            "%d analytics value(s) sent as null: not JSON (%s). Context "
            "attributes, defaults and event data must be JSON values: str, "
            "a finite number, bool, None, lists and dicts of them",
            len(odd),
            ", ".join(dict.fromkeys(odd)),
        )
