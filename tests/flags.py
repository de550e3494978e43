"""Flag JSON and contexts that many test modules share (never mutate them)."""

from __future__ import annotations

from typing import Any

#: On, serving ``True`` (variation 0); ``False`` when off.
BOOL_FLAG: dict[str, Any] = {
    "on": True,
    "variations": [True, False],
    "offVariation": 1,
    "fallthrough": {"variation": 0},
}

#: On, serving ``"on"`` (variation 0); ``"off"`` when off.
STRING_FLAG: dict[str, Any] = {**BOOL_FLAG, "variations": ["on", "off"]}

#: Semantic versions in ascending precedence (semver.org, section 11).
SEMVER_ASCENDING = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
]


def match_flag(
    clause: dict[str, Any],
    *,
    key: str = "f",
    rule_id: str = "r1",
    rules_before: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """On; serves ``True`` (variation 0, rule ``rule_id``) where ``clause`` matches, else ``False``."""
    rule = {"id": rule_id, "variation": 0, "clauses": [clause]}
    return {
        "key": key,
        "version": 1,
        "on": True,
        "variations": [True, False],
        "offVariation": 1,
        "fallthrough": {"variation": 1},
        "rules": [*(rules_before or []), rule],
        "salt": "s",
    }
