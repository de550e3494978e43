"""flagd's flags to the tools: codegen's default, the console's changes, cleanup's evidence.

What ``aioflags codegen``, the console's editing API and ``aioflags
cleanup``'s flag-file evidence ask of a flagd flag (``FlagSystem``:
``values``, ``value_names``, ``description``, ``code_default``,
``served_index``, ``serve_one_asks``, ``changed``, ``settled_refusals``),
read from its definition (the flag object's ``"flagd"`` part): its
variants, its default variant, its state (``ENABLED``/``DISABLED``: the
flag object's ``on`` is its mirror) and its targeting.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aioflags._core._json import same_json

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "changed",
    "code_default",
    "description",
    "serve_one_asks",
    "served_index",
    "settled_refusals",
    "value_names",
    "values",
]


def _variants(definition: Mapping[str, JSONValue]) -> Mapping[str, JSONValue]:
    variants = definition.get("variants")
    return variants if isinstance(variants, dict) else {}


def values(definition: Mapping[str, JSONValue]) -> list[JSONValue]:
    """Its variants' values, in their order."""
    return list(_variants(definition).values())


def value_names(definition: Mapping[str, JSONValue]) -> list[str]:
    """Its variants' names, in their order."""
    return list(_variants(definition))


def description(definition: Mapping[str, JSONValue]) -> str | None:
    """Its metadata's ``description`` (flagd has no description of its own)."""
    metadata = definition.get("metadata")
    said = metadata.get("description") if isinstance(metadata, dict) else None
    return said if isinstance(said, str) else None


def code_default(
    definition: Mapping[str, JSONValue], variations: Sequence[JSONValue]
) -> tuple[JSONValue, str]:
    """Its default variant's value, else its first variant's."""
    variants = _variants(definition)
    name = definition.get("defaultVariant")
    if isinstance(name, str) and name in variants:
        return variants[
            name
        ], f"its default variant ({json.dumps(name, ensure_ascii=False)})"
    why = (
        "it has no default variant"
        if name is None
        else "its default variant names none"
    )
    return variations[0], f"its first variant ({why})"


def served_index(definition: Mapping[str, JSONValue]) -> int | str | None:
    """Its default variant's index, unless it has targeting (``"rules"``); None: none."""
    if "targeting" in definition:
        return "rules"
    names = value_names(definition)
    default = definition.get("defaultVariant")
    return names.index(default) if default in names else None


def serve_one_asks(key: str, definition: Mapping[str, JSONValue]) -> str | None:
    """Its targeting stops applying: the console asks first."""
    if "targeting" not in definition:
        return None
    return (
        f"{key!r} has targeting: choosing a variant serves it to everyone; "
        'send "confirm": true to continue (Reset puts it back)'
    )


def changed(
    flag: Mapping[str, JSONValue],
    definition: Mapping[str, JSONValue],
    on: bool | None,
    index: int | None,
) -> JSONObject:
    """Its state ``ENABLED``/``DISABLED``; variant ``index`` its default variant, targeting dropped.

    Its state is what evaluates (the flag object's ``on`` is its mirror),
    and the variant served to everyone its default variant.
    """
    part: JSONObject = dict(definition)
    if on is not None:
        part["state"] = "ENABLED" if on else "DISABLED"
    if index is not None:
        part.pop("targeting", None)
        part["defaultVariant"] = value_names(definition)[index]
    out: JSONObject = dict(flag)
    out["flagd"] = part
    out["on"] = part.get("state") == "ENABLED"
    return out


def settled_refusals(
    definition: Mapping[str, JSONValue], value: JSONValue, subject: str
) -> list[str]:
    """Settled on ``value``: ENABLED, no targeting, that default variant.

    DISABLED serves the caller's default (the code's own, which the file
    does not know), as a LaunchDarkly flag that is off with no off
    variation does; so does an enabled flag with no default variant.
    """
    if definition.get("state") != "ENABLED":
        return [
            f"{subject} is DISABLED: clients serve the caller's default "
            "(the code's own), not one value"
        ]
    if "targeting" in definition:
        return [f"{subject} has targeting: not everyone gets the same value"]
    variants = _variants(definition)
    name = definition.get("defaultVariant")
    if not isinstance(name, str) or name not in variants:
        what = (
            "no default variant"
            if name is None
            else "a default variant that names none"
        )
        return [
            f"{subject} has {what}: clients serve the caller's default, not one value"
        ]
    got = variants[name]
    if not same_json(got, value):
        return [
            f"{subject} serves its default variant {json.dumps(name)} "
            f"= {json.dumps(got)}, not {json.dumps(value)}"
        ]
    return []
