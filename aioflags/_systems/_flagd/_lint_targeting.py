"""``aioflags validate`` on a flagd flag's targeting: the rules that can only fail.

flagd takes these rules, and nothing refuses them until an evaluation
meets them (docs/flagd.md, "Checking a file"):

- a ``fractional`` whose weights are all 0: it gives null for every
  context, so the flag serves its default variant (a warning: flagd
  serves it);
- a ``fractional`` weight that is not an integer (``50.0``): flagd's
  Python provider, and aioflags' default bucketing, refuse the whole
  ``fractional``, which then gives null for every context (a warning);
- a ``sem_ver`` with an operator it lacks (``=>``): it gives null for
  every context, so its condition is never true (a warning);
- a ``fractional`` bucket, or an ``if``'s result, naming a variant the
  flag does not have: the evaluations that reach it are an error
  (``GENERAL``), as flagd has it (an error).

The walk is iterative (a rule nested as deep as the reader takes is
walked without recursion), follows a flag's ``{"$ref": name}`` into the
evaluator it names (one level, as flagd resolves them: a problem inside
an evaluator is placed there), and reads a rule's value as flagd does:
what a served position holds names a variant by its text (``true`` names
``"true"``, ``1`` names ``"1"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["SEMVER_OPERATORS", "Found", "targeting_problems"]

#: ``sem_ver``'s operators (flagd's schema lists the same).
SEMVER_OPERATORS: Final = ("=", "!=", "<", "<=", ">", ">=", "^", "~")
#: JsonLogic's conditionals: ``[if, then, elif, then, ..., else]``.
_CONDITIONALS: Final = ("if", "?:")

Where = tuple[str | int, ...]


class Found(NamedTuple):
    """A problem of a flag's targeting: where, what, and whether flagd serves it."""

    at: Where
    what: str
    warning: bool


def _named(value: object) -> str | None:
    """The variant a literal in a served position names (None: it names none)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _operator(node: object) -> tuple[str, Any] | None:
    """``(op, args)`` of a JsonLogic operation (an object of one key), else None."""
    if isinstance(node, dict) and len(node) == 1:
        op, args = next(iter(node.items()))
        return op, args
    return None


def _semver_meant(op: str, meant: Callable[[str, list[str]], str]) -> str:
    """`` (did you mean '>='?)`` for a sem_ver operator written the other way round."""
    for known in SEMVER_OPERATORS:
        if sorted(known) == sorted(op):
            return f" (did you mean {known!r}?)"
    return meant(op, list(SEMVER_OPERATORS))


def _weight_problem(weight: object) -> str | None:
    """What is wrong with a literal ``fractional`` weight (None: nothing said here)."""
    if isinstance(weight, (bool, str)):
        return (
            f"weight {weight!r} is not a number: flagd refuses the whole fractional, "
            "which gives null for every context (the flag serves its default variant)"
        )
    if isinstance(weight, float):
        whole = weight.is_integer()
        fix = f"; write {int(weight)}" if whole else ""
        who = (
            "flagd's Python provider and aioflags' default bucketing refuse"
            if whole
            else "flagd refuses"
        )
        return (
            f"weight {weight!r} is not an integer: {who} the whole fractional, "
            "which gives null for every context (the flag serves its default "
            f"variant){fix}"
        )
    return None


def targeting_problems(
    rule: object,
    at: Where,
    *,
    flag: str,
    variants: Mapping[str, object] | None,
    evaluators: Mapping[str, object],
    meant: Callable[[str, list[str]], str],
    evaluator: bool = False,
) -> list[Found]:
    """The problems of one flag's targeting ``rule`` (at ``at``), as the module lists them.

    ``variants``: the flag's (None: an evaluator walked on its own, whose
    served values name no flag's variants). ``meant(word, known)``: the
    ``(did you mean ...)`` of a misspelt name. ``evaluator``: ``rule`` is
    an evaluator's (a ``$ref`` in it is not followed).
    """
    found: list[Found] = []
    # (node, where, whether its value is what the flag serves, in an evaluator)
    stack: list[tuple[object, Where, bool, bool]] = [(rule, at, True, evaluator)]
    while stack:
        node, where, served, inside = stack.pop()
        whose = f"flag {flag!r}'s" if inside else "the flag's"
        operation = _operator(node)
        if operation is None:
            if isinstance(node, list):
                stack += (
                    (item, (*where, n), False, inside) for n, item in enumerate(node)
                )
            elif isinstance(node, dict):
                stack += ((v, (*where, k), False, inside) for k, v in node.items())
            elif served and node is not None and variants is not None:
                name = _named(node)
                if name is not None and name not in variants:
                    found.append(
                        Found(
                            where,
                            f"{name!r} is not one of {whose} variants"
                            f"{meant(name, list(variants))}: evaluations that reach "
                            "it are an error (GENERAL)",
                            False,
                        )
                    )
            continue
        op, args = operation
        here: Where = (*where, op)
        if op == "$ref":
            target = evaluators.get(args) if isinstance(args, str) else None
            if target is not None and not inside:  # (one level, as flagd)
                stack.append((target, ("$evaluators", args), served, True))
            continue
        if not isinstance(args, list):
            stack.append((args, here, False, inside))
            continue
        if op in _CONDITIONALS:
            last = len(args) - 1
            for n, arg in enumerate(args):
                result = n % 2 == 1 or (n == last and n > 0)
                stack.append((arg, (*here, n), served and result, inside))
            continue
        if op == "fractional":
            found += _fractional(args, here, served, whose, variants, meant)
            bucketing = not (args and isinstance(args[0], list))
            for n, arg in enumerate(args):
                if n == 0 and bucketing:
                    stack.append((arg, (*here, 0), False, inside))
                elif isinstance(arg, list):
                    for m, item in enumerate(arg):
                        # (a literal variant: said by _fractional)
                        chosen = served and m == 0 and _operator(item) is not None
                        stack.append((item, (*here, n, m), chosen, inside))
            continue
        if op == "sem_ver" and len(args) == 3:
            operator = args[1]
            if _operator(operator) is None and operator not in SEMVER_OPERATORS:
                hint = (
                    _semver_meant(operator, meant) if isinstance(operator, str) else ""
                )
                found.append(
                    Found(
                        (*here, 1),
                        f"sem_ver has no operator {operator!r}{hint}: it gives null "
                        "for every context, so its condition is never true",
                        True,
                    )
                )
        stack += ((arg, (*here, n), False, inside) for n, arg in enumerate(args))
    return found


def _fractional(
    args: list[Any],
    here: Where,
    served: bool,
    whose: str,
    variants: Mapping[str, object] | None,
    meant: Callable[[str, list[str]], str],
) -> list[Found]:
    """What is wrong with a ``fractional``'s buckets (their weights, their variants)."""
    found: list[Found] = []
    start = 0 if args and isinstance(args[0], list) else 1
    buckets = [(n, arg) for n, arg in enumerate(args) if n >= start]
    weights: list[object] = []
    for n, bucket in buckets:
        if not isinstance(bucket, list) or not bucket:
            return found  # (refused as it runs: flagd gives null; not said here)
        weight = bucket[1] if len(bucket) > 1 else 1
        weights.append(weight)
        problem = _weight_problem(weight)
        if problem is not None:
            found.append(Found((*here, n, 1), problem, True))
        variant = bucket[0]
        name = _named(variant) if variant is not None else None
        if (
            served
            and variants is not None
            and name is not None
            and name not in variants
        ):
            found.append(
                Found(
                    (*here, n, 0),
                    f"variant {name!r} is not one of {whose} variants"
                    f"{meant(name, list(variants))}: the contexts bucketed here get "
                    "an error (GENERAL)",
                    False,
                )
            )
    # (a negative weight counts as 0)
    if weights and all(type(w) is int and w <= 0 for w in weights):
        found.append(
            Found(
                here,
                "every weight is 0: the fractional gives null for every context, "
                "so the flag serves its default variant",
                True,
            )
        )
    return found
