"""``aioflags validate`` on a flagd document: what the reader took but its author did not mean.

flagd's linter (its system's document format asks it, ``_document.py``):
a field flagd ignores, variants of several types, a variant that is null,
a default variant that names none, a ``$ref`` to no evaluator or inside
one, and targeting that can only fail (``_lint_targeting.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aioflags._datasystem._sources._lint import Problem, did_you_mean

from ._lint_targeting import targeting_problems

if TYPE_CHECKING:
    from collections.abc import Iterator

    from aioflags._datasystem._sources._lint import Where

__all__ = ["flagd_problems"]


#: The fields of a flagd flag (``key``: in flagd's list form).
_FLAGD_FIELDS: Final = (
    "state",
    "variants",
    "defaultVariant",
    "targeting",
    "metadata",
    "key",
)


def _json_kind(value: object) -> str:
    """The JSON type of a variant's value, as flagd's schema groups them."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "object"


def _refs(rule: object, at: Where) -> Iterator[tuple[Where, str]]:
    """Every ``{"$ref": name}`` in a rule, with where it is."""
    if isinstance(rule, dict):
        name = rule.get("$ref")
        if len(rule) == 1 and isinstance(name, str):
            yield at, name
            return
        for key, item in rule.items():
            yield from _refs(item, (*at, key))
    elif isinstance(rule, list):
        for n, item in enumerate(rule):
            yield from _refs(item, (*at, n))


def flagd_problems(data: Any) -> list[Problem]:
    """What a flagd document the loader took still gets wrong (``aioflags validate``).

    The loader refuses what flagd refuses (no ``state``, no variants...);
    what it takes may still not say what its author meant: a field flagd
    ignores (a misspelt ``defaultVariant``), variants of different types
    (a typed evaluation of some is a type mismatch), a variant whose value
    is null (never served), a default variant that names none (an error
    where it would serve), a ``$ref`` to no evaluator, or one inside an
    evaluator (flagd resolves one level: both make the flag a parse error);
    and targeting that can only fail (``_lint_targeting``).
    """
    found: list[Problem] = []
    if not isinstance(data, dict):
        return found
    evaluators = data.get("$evaluators")
    evaluators = evaluators if isinstance(evaluators, dict) else {}
    for name, rule in evaluators.items():
        found += (
            Problem(
                ("$evaluators", name, *at[2:]),
                f"{ref!r} is referred to inside an evaluator: flagd resolves "
                "references one level deep, so a flag that uses this evaluator "
                "is a PARSE_ERROR",
            )
            for at, ref in _refs(rule, ("$evaluators", name))
        )
    flags = data.get("flags")
    pairs = (
        [(key, ("flags", key), flag) for key, flag in flags.items()]
        if isinstance(flags, dict)
        else [
            (flag.get("key") if isinstance(flag, dict) else n, ("flags", n), flag)
            for n, flag in enumerate(flags)
        ]
        if isinstance(flags, list)
        else []
    )
    for _key, at, flag in pairs:
        if not isinstance(flag, dict):
            continue
        known = [f for f in _FLAGD_FIELDS if f != "key" or at[1] != _key]
        for field in flag:
            if field not in known:
                found.append(
                    Problem(
                        (*at, field),
                        f"unknown field {field!r}{did_you_mean(field, known)}: "
                        "flagd's flags have no such field, so it is ignored",
                    )
                )
        variants = flag.get("variants")
        if isinstance(variants, dict):
            kinds = {_json_kind(v) for v in variants.values()} - {"null"}
            if len(kinds) > 1:
                found.append(
                    Problem(
                        (*at, "variants"),
                        f"the variants' values are of {len(kinds)} types "
                        f"({', '.join(sorted(kinds))}): a typed evaluation of "
                        "some of them is a type mismatch",
                    )
                )
            found += (
                Problem(
                    (*at, "variants", name),
                    f"variant {name!r} is null: flagd never serves it (an "
                    "evaluation that chooses it is an error)",
                )
                for name, value in variants.items()
                if value is None
            )
            default = flag.get("defaultVariant")
            if isinstance(default, bool):
                default = "true" if default else "false"
            if isinstance(default, str) and default and default not in variants:
                found.append(
                    Problem(
                        (*at, "defaultVariant"),
                        f"default variant {default!r} is not one of the flag's "
                        f"variants{did_you_mean(default, list(variants))}: "
                        "evaluations that would serve it are an error (GENERAL)",
                    )
                )
        found += (
            Problem(
                where,
                f"no evaluator is named {ref!r}"
                f"{did_you_mean(ref, list(evaluators))}: the flag is a PARSE_ERROR",
                True,
            )
            for where, ref in _refs(flag.get("targeting"), (*at, "targeting"))
            if ref not in evaluators
        )
        found += (
            Problem(f.at, f.what, warning=f.warning)
            for f in targeting_problems(
                flag.get("targeting"),
                (*at, "targeting"),
                flag=str(_key),
                variants=variants if isinstance(variants, dict) else None,
                evaluators=evaluators,
                meant=did_you_mean,
            )
        )
    for name, rule in evaluators.items():  # (those no flag uses, too)
        found += (
            Problem(f.at, f.what, warning=f.warning)
            for f in targeting_problems(
                rule,
                ("$evaluators", name),
                flag="",
                variants=None,
                evaluators=evaluators,
                meant=did_you_mean,
                evaluator=True,
            )
        )
    # (a problem in an evaluator is met once for each flag that uses it)
    return list(dict.fromkeys(found))
