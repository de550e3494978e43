"""A LaunchDarkly flag's targeting, and its evaluations' reasons, in words (the console's details).

Pure functions over LaunchDarkly's flag JSON as the file or the service
holds it: nothing here evaluates; they say what a flag would do, in the
words the console page shows (``email ends with "@example.com"``,
``rollout: 30 % true, 70 % false (by key)``, ``rule 2 matched``). Rules
are numbered from 1, as people count. Malformed parts are described as
what they are (``variation 7 (no such variation)``), never raised.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

from aioflags._systems._text import whole, written

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "clause_text",
    "details",
    "named_variations",
    "reason_text",
    "rollout_share",
    "served_text",
    "summary_text",
]

#: Rollout weights are in 1/1000 of a percent (100000 is everyone).
_WEIGHT_PER_PERCENT: Final = 1000
#: Clause operators in words (``negate`` puts "not" in front).
_OPERATORS: Final = {
    "in": "is one of",
    "endsWith": "ends with",
    "startsWith": "starts with",
    "matches": "matches",
    "contains": "contains",
    "lessThan": "<",
    "lessThanOrEqual": "≤",
    "greaterThan": ">",
    "greaterThanOrEqual": "≥",
    "before": "is before",
    "after": "is after",
    "semVerEqual": "is version",
    "semVerLessThan": "is a version before",
    "semVerGreaterThan": "is a version after",
}


def _variations(flag: Mapping[str, JSONValue]) -> list[JSONValue]:
    variations = flag.get("variations")
    return variations if isinstance(variations, list) else []


def _variation(flag: Mapping[str, JSONValue], index: object) -> str:
    """``true (variation 0)``, or what is wrong with the index."""
    number = whole(index)
    variations = _variations(flag)
    if number is None:
        return "nothing (no variation)"
    if not 0 <= number < len(variations):
        return f"variation {number} (no such variation)"
    return f"{written(variations[number])} (variation {number})"


def _percent(weight: int) -> str:
    """A weight as a percentage: ``30 %``, ``12.5 %``.

    In integers, not floats: a file's weight may be past any float (JSON
    numbers have no bound), and must still be written, not raise.
    """
    whole, part = divmod(abs(weight), _WEIGHT_PER_PERCENT)
    text = f"{'-' if weight < 0 else ''}{whole}.{part:03d}".rstrip("0").rstrip(".")
    return f"{text} %"


def _rollout(flag: Mapping[str, JSONValue], rollout: Mapping[str, JSONValue]) -> str:
    """``rollout: 30 % true, 70 % false (by key)``; an experiment says so."""
    shares: list[str] = []
    buckets = rollout.get("variations")
    for bucket in buckets if isinstance(buckets, list) else []:
        if not isinstance(bucket, dict):
            continue
        weight = whole(bucket.get("weight")) or 0
        number = whole(bucket.get("variation"))
        variations = _variations(flag)
        value = (
            written(variations[number])
            if number is not None and 0 <= number < len(variations)
            else f"variation {number} (no such variation)"
        )
        shares.append(f"{_percent(weight)} {value}")
    experiment = rollout.get("kind") == "experiment"
    by = rollout.get("bucketBy")
    attribute = "key" if experiment or not isinstance(by, str) or not by else by
    kind = rollout.get("contextKind")
    by_text = (
        f"by {kind} {attribute}"
        if isinstance(kind, str) and kind
        else f"by {attribute}"
    )
    word = "experiment" if experiment else "rollout"
    return f"{word}: {', '.join(shares) or 'no variations'} ({by_text})"


def served_text(flag: Mapping[str, JSONValue], served: object) -> str:
    """What a variation-or-rollout (a rule's, the fallthrough) serves, in words."""
    if not isinstance(served, dict):
        return "nothing (no variation)"
    if "variation" in served and served["variation"] is not None:
        return f"serves {_variation(flag, served['variation'])}"
    rollout = served.get("rollout")
    if isinstance(rollout, dict):
        return _rollout(flag, rollout)
    return "nothing (no variation)"


#: A clause without values (it satisfies nothing; ``negate`` turns that over).
_NO_VALUES: Final = "(no values)"


def clause_text(
    clause: Mapping[str, JSONValue], segments: Collection[str] | None = None
) -> str:
    """One clause in words: ``email ends with "@example.com"``, ``in segment beta``.

    ``segments``: the keys of the segments there are; a segment named that is
    not one of them is written ``(no such segment)`` (it never matches).
    """
    op = clause.get("op")
    values = clause.get("values")
    items = values if isinstance(values, list) else []
    negate = clause.get("negate") is True
    if op == "segmentMatch":
        names = (
            ", ".join(
                written(v)
                if segments is None or (isinstance(v, str) and v in segments)
                else f"{written(v)} (no such segment)"
                for v in items
            )
            or _NO_VALUES
        )
        word = "segment" if len(items) == 1 else "one of the segments"
        return f"{'not ' if negate else ''}in {word} {names}"
    attribute = clause.get("attribute")
    name = attribute if isinstance(attribute, str) else written(attribute)
    kind = clause.get("contextKind")
    if isinstance(kind, str) and kind not in ("", "user"):
        name = f"{kind} {name}"
    quoted = (
        ", ".join(
            json.dumps(v, ensure_ascii=False) if _dumpable(v) else "…" for v in items
        )
        or _NO_VALUES
    )
    words = _OPERATORS.get(op) if isinstance(op, str) else None
    if words is None:
        words = f"{written(op)} (an operator the evaluator does not know)"
    elif op == "in" and len(items) == 1:
        words = "is"
    return f"{'not ' if negate else ''}{name} {words} {quoted}".rstrip()


def _dumpable(value: object) -> bool:
    try:
        json.dumps(value)
    except (RecursionError, ValueError, TypeError):
        return False
    return True


def _targets(flag: Mapping[str, JSONValue]) -> list[JSONObject]:
    """The individual targets: ``targets`` (users), then other kinds' ``contextTargets``.

    A user entry of ``contextTargets`` points into ``targets`` (its own
    values are not used by the evaluator), so it adds nothing here.
    """
    found: list[JSONObject] = []
    for field in ("targets", "contextTargets"):
        entries = flag.get(field)
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            kind = entry.get("contextKind") if field == "contextTargets" else "user"
            if not isinstance(kind, str) or kind == "":
                kind = "user"
            if field == "contextTargets" and kind == "user":
                continue
            values = entry.get("values")
            found.append(
                {
                    "kind": kind,
                    "values": [
                        written(v) for v in (values if isinstance(values, list) else [])
                    ],
                    "serves": f"serves {_variation(flag, entry.get('variation'))}",
                }
            )
    return found


def _rules(
    flag: Mapping[str, JSONValue], segments: Collection[str] | None
) -> list[JSONObject]:
    rules = flag.get("rules")
    found: list[JSONObject] = []
    for number, rule in enumerate(rules if isinstance(rules, list) else [], 1):
        if not isinstance(rule, dict):
            found.append(
                {
                    "index": number,
                    "id": None,
                    "description": None,
                    "clauses": [],
                    "serves": "nothing (a malformed rule)",
                }
            )
            continue
        clauses = rule.get("clauses")
        rule_id = rule.get("id")
        description = rule.get("description")
        found.append(
            {
                "index": number,
                "id": rule_id if isinstance(rule_id, str) else None,
                "description": description if isinstance(description, str) else None,
                "clauses": [
                    clause_text(c, segments)
                    if isinstance(c, dict)
                    else "a malformed clause"
                    for c in (clauses if isinstance(clauses, list) else [])
                ],
                "serves": served_text(flag, rule),
            }
        )
    return found


def _prerequisites(
    flag: Mapping[str, JSONValue], flags: Mapping[str, Mapping[str, JSONValue]]
) -> list[JSONObject]:
    """Each prerequisite: its key, and what it must serve (``checkout is true (variation 0)``)."""
    found: list[JSONObject] = []
    prerequisites = flag.get("prerequisites")
    for entry in prerequisites if isinstance(prerequisites, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            continue
        key = entry["key"]
        other = flags.get(key)
        variation = (
            f"{key} is {_variation(other, entry.get('variation'))}"
            if other is not None
            else f"{key} serves variation {written(entry.get('variation'))} "
            "(no such flag: it fails)"
        )
        found.append({"key": key, "variation": variation})
    return found


def _off(flag: Mapping[str, JSONValue]) -> str:
    off = flag.get("offVariation")
    if off is None:
        return "serves the default (no off variation)"
    return f"serves {_variation(flag, off)}"


def summary_text(flag: Mapping[str, JSONValue]) -> str:
    """What a flag does, in one line: on or off, and what it serves."""
    state = "on" if flag.get("on") is True else "off"
    targeted = bool(
        flag.get("rules") or flag.get("targets") or flag.get("contextTargets")
    )
    fallthrough = served_text(flag, flag.get("fallthrough"))
    if targeted:
        return f"{state}, with targets or rules, otherwise {fallthrough}"
    return f"{state}, {fallthrough}"


def details(
    flag: Mapping[str, JSONValue],
    flags: Mapping[str, Mapping[str, JSONValue]],
    segments: Collection[str] | None = None,
) -> JSONObject:
    """What the console's ``<key> details`` show of a LaunchDarkly flag's own.

    Its variations (a file may name them: ``variationNames``, not
    LaunchDarkly's), what it serves off and at the fallthrough, its targets,
    rules and prerequisites. ``flags``: every flag (prerequisites are
    written in their values); ``segments``: the keys of every segment (a
    rule naming another says so).
    """
    names = flag.get("variationNames")
    return {
        "variations": named_variations(flag, names),
        "off": _off(flag),
        "fallthrough": served_text(flag, flag.get("fallthrough")),
        "targets": _targets(flag),
        "rules": _rules(flag, segments),
        "prerequisites": _prerequisites(flag, flags),
    }


def named_variations(flag: Mapping[str, JSONValue], names: object) -> list[JSONValue]:
    """A flag's variations, each with its index, value in words, and name (``names``)."""
    return [
        {
            "index": i,
            "value": written(v),
            "name": names[i]
            if isinstance(names, list) and i < len(names) and isinstance(names[i], str)
            else None,
        }
        for i, v in enumerate(_variations(flag))
    ]


def reason_text(
    reason: Mapping[str, JSONValue],
    flag: Mapping[str, JSONValue] | None = None,
    variation: int | None = None,
) -> str | None:
    """A LaunchDarkly reason in words: ``rule 2 matched``, ``fallthrough rollout 30 %`` (None: not LaunchDarkly's).

    Rules are counted from 1. ``flag`` and ``variation``: the flag evaluated
    and the variation served, to say which share of a rollout served it
    (a reason does not carry it); without them, just ``fallthrough``.
    """
    kind = reason.get("kind")
    if kind == "OFF":
        return "off"
    if kind == "TARGET_MATCH":
        return "target match"
    if kind == "RULE_MATCH":
        index = whole(reason.get("ruleIndex"))
        if index is None or index < 0:  # an SDK's event says it: no index to trust
            return "rule matched"
        rules = flag.get("rules") if flag is not None else None
        rule = rules[index] if isinstance(rules, list) and index < len(rules) else None
        share = rollout_share(flag, rule, variation) if flag is not None else None
        text = f"rule {index + 1} matched"
        return text if share is None else f"{text}, rollout {share}"
    if kind == "PREREQUISITE_FAILED":
        key = reason.get("prerequisiteKey")
        if key is None:
            return "prerequisite failed"
        return f"prerequisite {written(key)} failed"
    if kind == "FALLTHROUGH":
        share = (
            rollout_share(flag, flag.get("fallthrough"), variation)
            if flag is not None
            else None
        )
        return "fallthrough" if share is None else f"fallthrough rollout {share}"
    return None


def rollout_share(
    flag: Mapping[str, JSONValue], served: object, variation: int | None
) -> str | None:
    """The share of a rollout that serves ``variation`` (``30 %``), or None."""
    if (
        variation is None
        or not isinstance(served, dict)
        or served.get("variation") is not None
    ):
        return None
    rollout = served.get("rollout")
    buckets = rollout.get("variations") if isinstance(rollout, dict) else None
    if not isinstance(buckets, list):
        return None
    weight = sum(
        whole(b.get("weight")) or 0
        for b in buckets
        if isinstance(b, dict) and whole(b.get("variation")) == variation
    )
    return _percent(weight)
