"""A flagd flag's definition, and its evaluations' reasons, in words (the console's details)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

from aioflags._systems._text import written

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from aioflags._core._json import JSONObject, JSONValue

__all__ = ["details", "reason_text", "summary_text"]


def _default(part: Mapping[str, JSONValue]) -> str:
    """What a flagd flag serves when its targeting chooses nothing, in words."""
    variants = part.get("variants")
    name = part.get("defaultVariant")
    if isinstance(variants, dict) and isinstance(name, str) and name in variants:
        return f"serves its default variant {written(name)} ({written(variants[name])})"
    if name is None:
        return "serves the code's default (no default variant)"
    return f"an error: its default variant {written(name)} names none"


def _summary(part: Mapping[str, JSONValue]) -> str:
    state = part.get("state")
    if state != "ENABLED":
        return "DISABLED, serves the code's default"
    targeting = ", with targeting, otherwise" if "targeting" in part else ","
    return f"ENABLED{targeting} {_default(part)}"


def _own(part: Mapping[str, JSONValue]) -> JSONObject:
    """A flagd flag's own fields, as the details show them (targeting as JSON text)."""
    targeting = part.get("targeting")
    metadata = part.get("metadata")
    return {
        "state": part.get("state"),
        "defaultVariant": part.get("defaultVariant"),
        "targeting": None
        if targeting is None
        else json.dumps(targeting, indent=2, ensure_ascii=False),
        "metadata": {k: written(v) for k, v in metadata.items()}
        if isinstance(metadata, dict)
        else {},
    }


def summary_text(flag: Mapping[str, JSONValue], part: Mapping[str, JSONValue]) -> str:
    """What a flagd flag does, in one line: its state, and what it serves."""
    return _summary(part)


def details(
    flag: Mapping[str, JSONValue],
    part: Mapping[str, JSONValue],
    flags: Mapping[str, Mapping[str, JSONValue]],
    segments: Collection[str] | None = None,
) -> JSONObject:
    """What the console's ``<key> details`` show of a flagd flag's own: its variants, flagd's fields."""
    variants = part.get("variants")
    names = list(variants) if isinstance(variants, dict) else None
    values = flag.get("variations")
    return {
        "variations": [
            {
                "index": i,
                "value": written(v),
                "name": names[i] if names is not None and i < len(names) else None,
            }
            for i, v in enumerate(values if isinstance(values, list) else [])
        ],
        "off": "serves the code's default (DISABLED)",
        "fallthrough": _default(part),
        "targets": [],
        "rules": [],
        "prerequisites": [],
        "flagd": _own(part),
    }


def reason_text(
    reason: Mapping[str, JSONValue],
    flag: Mapping[str, JSONValue] | None = None,
    variation: int | None = None,
) -> str | None:
    """A flagd reason in words (None: not one of flagd's)."""
    kind = reason.get("kind")
    return _REASONS.get(kind) if isinstance(kind, str) else None


#: flagd's reasons in words (a flagd flag's evaluations give them).
_REASONS: Final = {
    "STATIC": "static (the default variant)",
    "TARGETING_MATCH": "targeting match",
    "DEFAULT": "default",
    "DISABLED": "disabled",
}
