"""LaunchDarkly's flags to the tools: codegen's default, the console's changes, cleanup's evidence.

What ``aioflags codegen``, the console's editing API and ``aioflags
cleanup``'s flag-file evidence ask of a LaunchDarkly flag (``FlagSystem``:
``values``, ``code_default``, ``served_index``, ``serve_one_asks``,
``changed``, ``settled_refusals``): its variations, its off variation, its
fallthrough, and the targets and rules that serving one variation to
everyone drops.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

from aioflags._core._json import same_json
from aioflags._systems._text import whole

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "changed",
    "code_default",
    "serve_one_asks",
    "served_index",
    "settled_refusals",
    "targeted",
    "values",
]

#: What serving one variation to everyone drops.
_TARGETING: Final = ("targets", "contextTargets", "rules")


def values(flag: Mapping[str, JSONValue]) -> list[JSONValue]:
    """Its variations (none: an empty list)."""
    variations = flag.get("variations")
    return variations if isinstance(variations, list) else []


def targeted(flag: Mapping[str, JSONValue]) -> bool:
    """Whether a flag has rules or individual targets (a fixed variation drops them)."""
    return bool(flag.get("rules") or flag.get("targets") or flag.get("contextTargets"))


def code_default(
    flag: Mapping[str, JSONValue], variations: Sequence[JSONValue]
) -> tuple[JSONValue, str]:
    """Its off variation, else its first."""
    off = flag.get("offVariation")
    if type(off) is int and 0 <= off < len(variations):
        return variations[off], "its off variation"
    return variations[0], "its first variation (it has no off variation)"


def served_index(flag: Mapping[str, JSONValue]) -> int | str | None:
    """Its fallthrough's variation, ``"rules"``, ``"rollout"``, or None."""
    if targeted(flag):
        return "rules"
    fallthrough = flag.get("fallthrough")
    if not isinstance(fallthrough, dict):
        return None
    variation = whole(fallthrough.get("variation"))
    if variation is not None:
        return variation
    return "rollout" if "rollout" in fallthrough else None


def serve_one_asks(key: str, flag: Mapping[str, JSONValue]) -> str | None:
    """Its rules and targets stop applying: the console asks first."""
    if not targeted(flag):
        return None
    return (
        f"{key!r} has rules or individual targets: choosing a variation serves "
        'it to everyone; send "confirm": true to continue (Reset puts them back)'
    )


def changed(
    flag: Mapping[str, JSONValue], on: bool | None, index: int | None
) -> JSONObject:
    """``on`` switched; variation ``index`` its fallthrough, its targets and rules dropped."""
    out: JSONObject = dict(flag)
    if on is not None:
        out["on"] = on
    if index is not None:
        # Serve it to everyone: targets and rules would keep serving others.
        for targeting in _TARGETING:
            out.pop(targeting, None)
        out["fallthrough"] = {"variation": index}
    return out


def settled_refusals(
    flag: Mapping[str, JSONValue], value: JSONValue, subject: str
) -> list[str]:
    """Why ``flag`` may serve someone else than ``value``: off, prerequisites, targets, rules, a rollout."""
    variations = values(flag)
    want = json.dumps(value)

    def served(index: object, what: str) -> list[str]:
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < len(variations)
        ):
            return [f"{subject} {what} serves no variation (the caller's default)"]
        got = variations[index]
        if not same_json(got, value):
            return [f"{subject} {what} serves {json.dumps(got)}, not {want}"]
        return []

    if flag.get("on") is not True:
        return served(flag.get("offVariation"), "is off and its off variation")
    out = []
    if flag.get("prerequisites"):
        out.append(f"{subject} has prerequisites: not everyone gets the same value")
    if flag.get("targets") or flag.get("contextTargets"):
        out.append(
            f"{subject} has individual targets: not everyone gets the same value"
        )
    if flag.get("rules"):
        out.append(f"{subject} has rules: not everyone gets the same value")
    fallthrough = flag.get("fallthrough")
    if not isinstance(fallthrough, dict) or "variation" not in fallthrough:
        out.append(
            f"{subject} falls through to a rollout: not everyone gets the same value"
        )
    else:
        out += served(fallthrough.get("variation"), "falls through to a variation that")
    return out
