"""A LaunchDarkly flag's branches and the branch an evaluation took (flag coverage, docs/coverage.md).

``off``; each prerequisite that can fail (``prerequisite:<key>``); each
variation its individual targets serve (``target:<variation index>``);
each rule (``rule:<id>``, or ``rule:<index>`` for a rule with no id); the
fallthrough (``fallthrough``, or ``fallthrough:<variation index>`` for
each variation a rollout can serve). An evaluation's reason says which it
took.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._model import CompiledFlag

__all__ = ["branch_taken", "branches"]


def branches(flag: CompiledFlag) -> dict[str, JSONValue]:
    """``flag``'s branches (each named by a variation's index: no value of its own)."""
    names = ["off"]
    names += [f"prerequisite:{p.key}" for p in flag.prerequisites]
    targets = {
        result.variation_index
        for _, lookup in flag.targets
        for result in lookup.values()
        if result.variation_index is not None
    }
    names += [f"target:{index}" for index in sorted(targets)]
    for index, (_, resolver) in enumerate(flag.rules):
        reason = resolver._served()[0].reason
        rule_id = reason.get("ruleId") if reason.get("kind") == "RULE_MATCH" else None
        names.append(f"rule:{rule_id or index}")
    fallthrough = flag.fallthrough
    if fallthrough is None or fallthrough.fixed is not None:
        names.append("fallthrough")
    else:
        indexes = dict.fromkeys(
            result.variation_index
            for result in fallthrough._served()
            if result.variation_index is not None
        )
        names += [f"fallthrough:{index}" for index in indexes]
    return dict.fromkeys(names)


def branch_taken(
    flag: CompiledFlag | None, reason: Mapping[str, Any], index: int | None
) -> str | None:
    """The branch an evaluation with ``reason`` took (None: not one of LaunchDarkly's).

    ``flag`` tells whether its fallthrough is a rollout (named by the
    variation served, ``index``); None if the data at hand no longer holds it.
    """
    kind = reason.get("kind")
    if kind == "FALLTHROUGH":
        fallthrough = None if flag is None else flag.fallthrough
        if fallthrough is None or fallthrough.fixed is not None:
            return "fallthrough"
        return f"fallthrough:{index}"
    if kind == "RULE_MATCH":
        return f"rule:{reason.get('ruleId') or reason.get('ruleIndex')}"
    if kind == "OFF":
        return "off"
    if kind == "TARGET_MATCH":
        return f"target:{index}"
    if kind == "PREREQUISITE_FAILED":
        return f"prerequisite:{reason.get('prerequisiteKey')}"
    return None
