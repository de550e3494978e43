"""A flagd flag's branches and the branch an evaluation took (flag coverage, docs/coverage.md).

A flagd flag's branches are flagd's reasons: ``static`` for a flag with no
targeting (its default variant, for everyone), or ``default`` where it has
no default variant; with targeting, each variant the targeting can name
(``variant:<name>``) and, where it can name none, ``default`` (the default
variant). A ``DISABLED`` flag has none (it serves the code's default); an
evaluation of one counts as ``disabled``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._model import CompiledFlag

__all__ = ["branch_taken", "branches"]

#: A flagd flag's branch for each of flagd's reasons (but TARGETING_MATCH,
#: which is the variant's: ``variant:<name>``).
_BRANCHES: Final = {
    "STATIC": "static",
    "DEFAULT": "default",
    "DISABLED": "disabled",
}


def branches(flag: CompiledFlag) -> dict[str, JSONValue]:
    """``flag``'s branches, each with the value it serves (None: the caller's default)."""
    names = flag.variant_names or ()
    if not flag.on:
        return {}  # DISABLED: the code's own default, nothing of the flag's
    constant = flag.constant
    if constant is not None:
        kind = constant.reason.get("kind")
        index = constant.variation_index
        if kind == "TARGETING_MATCH" and index is not None:  # a rule that is a name
            return {f"variant:{names[index]}": constant.value}
        branch = _BRANCHES.get(str(kind))
        return {} if branch is None else {branch: constant.value}
    served = flag.targeting_serves
    if served is None:
        return {}
    indexes, none, default = served
    found: dict[str, JSONValue] = {
        f"variant:{names[at]}": flag.variations[at] for at in indexes
    }
    if none:  # the default variant (or the caller's default: no value known)
        found["default"] = None if default is None else flag.variations[default]
    return found


def branch_taken(
    flag: CompiledFlag | None, reason: Mapping[str, Any], index: int | None
) -> str | None:
    """The branch an evaluation with ``reason`` took (None: not one of flagd's)."""
    kind = reason.get("kind")
    if kind == "TARGETING_MATCH":  # the targeting named a variant
        names = None if flag is None else flag.variant_names
        if names is not None and index is not None and index < len(names):
            return f"variant:{names[index]}"
        return f"variant:#{index}"
    return _BRANCHES.get(str(kind))
