"""Seeded random flagd flags and OpenFeature contexts (for ``bench_flagd_differential.py``).

The flags use every operator flagd's schema lists (``targeting.json``: the
JsonLogic subset and ``fractional``, ``sem_ver``, ``starts_with``,
``ends_with``), nested, with ``$ref`` into ``$evaluators``; the contexts
hold the edge types: numbers as strings, missing attributes, null, booleans
beside 0 and 1, floats with and without a fraction, nested objects, lists,
unicode and empty strings, a missing or empty targeting key.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from flagd_reference import FROZEN
from openfeature.evaluation_context import EvaluationContext

#: Attributes the generated rules read (dotted: nested objects).
ATTRIBUTES = [
    "age",
    "score",
    "name",
    "email",
    "version",
    "country",
    "tier",
    "flag",
    "tags",
    "scores",
    "time",
    "ünï",
    "empty",
    "user.name",
    "user.id",
    "user.meta.level",
]
STRINGS = [
    "",
    "a\\b",
    "a",
    "A",
    "abc",
    "xyz",
    "de",
    "us",
    "gold",
    "ünïcødé",
    "a.b",
    "10",
    "1.5",
    "true",
    "null",
    "alice@example.com",
    "bob@test.io",
]
NUMBERS = [0, 1, -1, 2, 10, 18, 1.5, 10.0, -0.0, 99.9, 2**31, 2**53 + 1, 1e20]
VERSIONS = [
    "1.0.0",
    "1.2.3",
    "v1.2.3",
    "1.2",
    "1",
    "2.0.0-rc.1",
    "2.0.0",
    "1.0.0+build",
    "2.0.0.0",
    "bad",
    "V3.0.0",
]
EDGES: list[Any] = [
    "a\\b",
    "ü",
    None,
    "",
    "10",
    10,
    10.0,
    "1.5",
    1.5,
    True,
    False,
    0,
    1,
    "0",
    "true",
    "false",
    [],
    {},
    [1, "a"],
    {"a": 1},
    "ünï",
    -0.0,
    FROZEN,
    FROZEN - 1,
    str(FROZEN),
]
NAMES = [
    "on",
    "off",
    "a",
    "b",
    "c",
    "blue",
    "green",
    "true",
    "false",
    "1",
    "0",
    "1.5",
    "ünï",
    "null",
    "10",
]
COMPARE = ["==", "!=", "===", "!==", "<", "<=", ">", ">="]
SEMVER_OPS = ["=", "!=", "<", "<=", ">", ">=", "^", "~"]


class FlagGenerator:
    """One seeded document of random flagd flags."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.evaluators: dict[str, Any] = {}
        self.nested_refs = 0

    # ----------------------------------------------------------- literals
    def literal(self) -> Any:
        r = self.r
        edge = r.choice([e for e in EDGES if not isinstance(e, dict)])
        # (an object in a rule is an operator: a rule's literals are not objects)
        return copy.deepcopy(
            r.choice([r.choice(STRINGS), r.choice(NUMBERS), edge, r.choice(VERSIONS)])
        )

    def scalar(self) -> Any:
        r = self.r
        return r.choice(
            [r.choice(STRINGS), r.choice(NUMBERS), r.choice([True, False, None])]
        )

    def var(self) -> Any:
        r = self.r
        path = r.choice(
            [
                *ATTRIBUTES,
                "targetingKey",
                "$flagd.flagKey",
                "$flagd.timestamp",
                "tags.0",
                "missing.attr",
            ]
        )
        pick = r.random()
        if pick < 0.15:
            return {"var": [path, self.scalar()]}
        if pick < 0.2:
            return {"var": [path]}
        return {"var": path}

    # -------------------------------------------------------------- values
    def value(self, depth: int) -> Any:
        r = self.r
        if depth <= 0 or r.random() < 0.55:
            return self.var() if r.random() < 0.8 else self.literal()
        kind = r.choice(
            [
                "arith",
                "arith",
                "cat",
                "substr",
                "minmax",
                "if",
                "merge",
                "reduce",
                "map",
                "filter",
                "in",
                "not",
                "missing",
                "log",
            ]
        )
        d = depth - 1
        if kind == "arith":
            op = r.choice(["+", "-", "*", "/", "%"])
            args = [self.value(d), r.choice([*NUMBERS, "2", 0, True, None, "x"])]
            if op in "+*" and r.random() < 0.3:
                args.append(self.value(d))
            if op == "-" and r.random() < 0.2:
                args = args[:1]
            return {op: args}
        if kind == "cat":
            return {"cat": [self.value(d) for _ in range(r.randint(1, 3))]}
        if kind == "substr":
            args = [self.value(d), r.randint(-3, 3)]
            if r.random() < 0.5:
                args.append(r.randint(-3, 3))
            return {"substr": args}
        if kind == "minmax":
            return {
                r.choice(["min", "max"]): [
                    self.value(d) for _ in range(r.randint(0, 3))
                ]
            }
        if kind == "if":
            return {"if": [self.condition(d), self.value(d), self.value(d)]}
        if kind == "merge":
            return {"merge": [self.value(d), [self.scalar()], self.value(d)]}
        if kind == "reduce":
            body = {
                r.choice(["+", "*", "max", "cat"]): [
                    {"var": "current"},
                    {"var": "accumulator"},
                ]
            }
            return {"reduce": [self.list_value(), body, r.choice([0, 1, "", None])]}
        if kind == "map":
            return {
                "map": [
                    self.list_value(),
                    {
                        r.choice(["+", "*", "cat"]): [
                            {"var": ""},
                            r.choice([1, "x", 2.5]),
                        ]
                    },
                ]
            }
        if kind == "filter":
            return {
                "filter": [
                    self.list_value(),
                    {r.choice(COMPARE): [{"var": ""}, self.scalar()]},
                ]
            }
        if kind == "in":
            return {"in": [self.value(d), self.value(d)]}
        if kind == "not":
            return {r.choice(["!", "!!"]): [self.value(d)]}
        if kind == "missing":
            return {"missing": [r.choice(ATTRIBUTES) for _ in range(r.randint(0, 2))]}
        return {"log": self.value(d)}

    def list_value(self) -> Any:
        r = self.r
        if r.random() < 0.6:
            return {
                "var": r.choice(["tags", "scores", "user.meta", "missing.attr", "name"])
            }
        return [self.scalar() for _ in range(r.randint(0, 3))]

    # ---------------------------------------------------------- conditions
    def condition(self, depth: int) -> Any:
        r = self.r
        kinds = [
            "compare",
            "compare",
            "compare",
            "in",
            "in_list",
            "starts",
            "ends",
            "semver",
            "not",
            "var",
            "between",
            "some",
            "missing_some",
        ]
        if depth > 0:
            kinds += ["and", "or", "and", "or", "arith_compare"]
            if not self.nested_refs or r.random() < 0.05:
                kinds.append("ref")
        kind = r.choice(kinds)
        d = depth - 1
        if kind == "compare":
            args = [self.value(d), self.literal()]
            if r.random() < 0.3:
                args.reverse()
            return {r.choice(COMPARE): args}
        if kind == "arith_compare":
            return {r.choice(COMPARE): [self.value(depth), r.choice(NUMBERS)]}
        if kind == "between":
            lo, hi = sorted(r.sample([0, 1, 10, 18, 1.5, 65, 100], 2))
            return {r.choice(["<", "<="]): [lo, self.value(d), hi]}
        if kind == "in":
            return {"in": [r.choice(STRINGS), self.var()]}
        if kind == "in_list":
            return {
                "in": [self.value(d), [self.scalar() for _ in range(r.randint(0, 4))]]
            }
        if kind in ("starts", "ends"):
            op = "starts_with" if kind == "starts" else "ends_with"
            args = [self.value(d), r.choice([*STRINGS, 1, None])]
            if r.random() < 0.05:
                args = args[:1]
            return {op: args}
        if kind == "semver":
            op = r.choice([*SEMVER_OPS, *SEMVER_OPS, "===", "=="])
            args = [
                self.var() if r.random() < 0.8 else r.choice(VERSIONS),
                op,
                r.choice(VERSIONS),
            ]
            if r.random() < 0.04:
                args = args[:2]
            return {"sem_ver": args}
        if kind == "not":
            return {
                r.choice(["!", "!!"]): [self.condition(d) if depth > 0 else self.var()]
            }
        if kind == "var":
            return self.var()
        if kind == "some":
            op = r.choice(["some", "all", "none"])
            return {
                op: [
                    self.list_value(),
                    {r.choice(COMPARE): [{"var": ""}, self.scalar()]},
                ]
            }
        if kind == "missing_some":
            return {
                "missing_some": [
                    r.randint(0, 2),
                    [r.choice(ATTRIBUTES) for _ in range(r.randint(1, 3))],
                ]
            }
        if kind in ("and", "or"):
            return {kind: [self.condition(d) for _ in range(r.randint(1, 3))]}
        # ref: a condition shared through $evaluators (flagd replaces one
        # level: a $ref inside an evaluator stays, an operator it does not know)
        name = f"rule-{r.randint(0, 5)}"
        if name not in self.evaluators:
            self.evaluators[name] = None  # (taken: no evaluator refers to itself)
            self.nested_refs += 1
            rule = self.condition(1)
            while not _plain(rule):
                rule = self.condition(1)
            self.nested_refs -= 1
            self.evaluators[name] = rule
        return {"$ref": name}

    # ------------------------------------------------------------- results
    def result(self, names: list[str], depth: int) -> Any:
        r = self.r
        pick = r.random()
        if depth <= 0 or pick < 0.35:
            return self.leaf(names)
        d = depth - 1
        if pick < 0.7:
            args: list[Any] = []
            for _ in range(r.randint(1, 2)):
                args += [self.condition(2), self.result(names, d)]
            if r.random() < 0.8:
                args.append(self.result(names, d))
            return {
                r.choice(["if", "if", "if", "?:"]) if len(args) == 3 else "if": args
            }
        if pick < 0.85:
            return self.fractional(names)
        if pick < 0.9:
            return {r.choice(["or", "and"]): [self.value(1), self.leaf(names)]}
        if pick < 0.95:
            return {"cat": [self.leaf(names), r.choice(["", self.var()])]}
        return self.var()

    def leaf(self, names: list[str]) -> Any:
        r = self.r
        pick = r.random()
        if pick < 0.75:
            return r.choice(names)
        if pick < 0.8:
            return r.choice(NAMES)
        if pick < 0.88:
            return None
        if pick < 0.94:
            return r.choice([True, False])
        return r.choice([1, 0, 1.5, 10])

    def fractional(self, names: list[str]) -> Any:
        r = self.r
        args: list[Any] = []
        pick = r.random()
        if pick < 0.3:
            args.append({"var": "targetingKey"})
        elif pick < 0.5:
            args.append(
                {
                    "cat": [
                        {"var": "$flagd.flagKey"},
                        {"var": r.choice(["user.id", "email", "targetingKey"])},
                    ]
                }
            )
        elif pick < 0.65:
            args.append(self.var())
        elif pick < 0.7:
            args.append(self.literal())
        for _ in range(r.randint(1, 4)):
            name = r.choice(names) if r.random() < 0.9 else self.leaf(names)
            if r.random() < 0.08:
                entry: list[Any] = [name]
            else:
                entry = [name, r.choice([1, 5, 25, 50, 50, 100, 0, -10, 50.0, 33])]
            args.append(entry)
        return {"fractional": args}

    # --------------------------------------------------------------- flags
    def variants(self) -> tuple[str, dict[str, Any]]:
        r = self.r
        kind = r.choice(["boolean", "string", "integer", "float", "object", "mixed"])
        if kind == "boolean":
            names = r.choice([["on", "off"], ["true", "false"], ["a", "b", "c"]])
            values: list[Any] = [r.choice([True, False]) for _ in names]
            values[0], values[-1] = True, False
        else:
            names = r.sample(NAMES, r.randint(1, 4))
            if kind == "string":
                values = [r.choice([n, n.upper(), "", "ünï"]) for n in names]
            elif kind == "integer":
                values = [r.choice([0, 1, -1, 42, 2**40]) for _ in names]
            elif kind == "float":
                values = [r.choice([0.5, 1.0, -2.25, 1e-3, 3.0]) for _ in names]
            elif kind == "object":
                values = [
                    r.choice([{"n": n}, [n, 1], {}, [], {"deep": {"x": [1, 2]}}])
                    for n in names
                ]
            else:
                values = [r.choice([1, 2.5, 0, 7.0]) for _ in names]
        return kind, dict(zip(names, values, strict=True))

    def flag(self) -> dict[str, Any]:
        r = self.r
        _, variants = self.variants()
        names = list(variants)
        flag: dict[str, Any] = {
            "state": "DISABLED" if r.random() < 0.07 else "ENABLED",
            "variants": variants,
        }
        pick = r.random()
        if pick < 0.75:
            flag["defaultVariant"] = r.choice(names)
        elif pick < 0.83:
            flag["defaultVariant"] = None
        elif pick < 0.9:
            pass
        elif pick < 0.95:
            flag["defaultVariant"] = ""
        else:
            flag["defaultVariant"] = r.choice([n for n in NAMES if n not in variants])
        pick = r.random()
        if pick < 0.1:
            pass
        elif pick < 0.14:
            flag["targeting"] = {}
        else:
            rule = self.result(names, 3)
            if not isinstance(rule, dict):
                rule = {"if": [self.condition(2), rule, self.leaf(names)]}
            flag["targeting"] = rule
        if r.random() < 0.2:
            flag["metadata"] = {
                "owner": r.choice(["ui", "ünï"]),
                "rank": r.choice([1, 2.5]),
                "beta": r.choice([True, False]),
            }
        return flag

    def shape_flags(self) -> dict[str, Any]:
        """Deep and wide flags (issue 94): the shapes a compiler to Python may trip on.

        An else-if chain of 248 ``if`` nested in each other's else, ``!``
        and ``and`` nested 150 deep, an ``or``/``and`` of 197 and of 600
        conditions, an ``if`` of 300 pairs, an ``in`` of a 2,000-item list:
        all of them flagd's provider evaluates.
        """
        r = self.r
        flags: dict[str, Any] = {}

        def flag(name: str, rule: Any) -> None:
            _, variants = self.variants()
            names = list(variants)
            if callable(rule):
                rule = rule(names)
            flags[f"shape-{name}"] = {
                "state": "ENABLED",
                "variants": variants,
                "defaultVariant": r.choice(names),
                "targeting": rule,
            }

        def chain(names: list[str]) -> Any:
            rule: Any = self.leaf(names)
            for _ in range(248):
                rule = {"if": [self.condition(0), self.leaf(names), rule]}
            return rule

        def nested(op: str) -> Any:
            def rule(names: list[str]) -> Any:
                inner: Any = self.condition(0)
                for _ in range(150):
                    inner = {op: [inner]} if op == "!" else {op: [self.var(), inner]}
                return {"if": [inner, self.leaf(names), self.leaf(names)]}

            return rule

        def wide(op: str, n: int) -> Any:
            def rule(names: list[str]) -> Any:
                conditions = [self.condition(0) for _ in range(n)]
                return {"if": [{op: conditions}, self.leaf(names), self.leaf(names)]}

            return rule

        def pairs(names: list[str]) -> Any:
            args: list[Any] = []
            for _ in range(300):
                args += [self.condition(0), self.leaf(names)]
            return {"if": [*args, self.leaf(names)]}

        def in_list(names: list[str]) -> Any:
            items = [self.scalar() for _ in range(2000)]
            return {"if": [{"in": [self.var(), items]}, self.leaf(names), None]}

        flag("else-if-248", chain)
        flag("not-150", nested("!"))
        flag("and-150", nested("and"))
        flag("or-197", wide("or", 197))
        flag("and-197", wide("and", 197))
        flag("or-600", wide("or", 600))
        flag("if-300-pairs", pairs)
        flag("in-2000", in_list)
        return flags

    def document(self, flags: int, *, shapes: bool = False) -> dict[str, Any]:
        """``flags`` random flags; with ``shapes``, the deep and wide ones too (:meth:`shape_flags`)."""
        document: dict[str, Any] = {
            "$schema": "https://flagd.dev/schema/v0/flags.json",
            "metadata": {"flagSetId": "random", "version": "1"},
            "flags": {f"flag-{i}": self.flag() for i in range(flags)},
        }
        if shapes:
            document["flags"].update(self.shape_flags())
        if self.evaluators:
            document["$evaluators"] = self.evaluators
        return document


def _plain(rule: Any) -> bool:
    """No non-ASCII character, no backslash: what flagd's provider can put in place of a ``$ref``.

    (It replaces ``{"$ref": name}`` with ``re.sub``, the evaluator's JSON as
    the replacement template: ``\\uXXXX`` there fails the whole document, a
    backslash is taken as an escape. ``quirk_documents`` shows both apart.)
    """
    text = json.dumps(rule)
    return "\\" not in text


def quirk_documents() -> list[tuple[str, dict[str, Any]]]:
    """Documents that show flagd's provider's ``$ref`` replacement apart from the random ones."""

    def document(literal: str) -> dict[str, Any]:
        return {
            "$evaluators": {"is-it": {"==": [{"var": "name"}, literal]}},
            "flags": {
                "ref-literal": {
                    "state": "ENABLED",
                    "variants": {"yes": True, "no": False},
                    "defaultVariant": "no",
                    "targeting": {"if": [{"$ref": "is-it"}, "yes", "no"]},
                }
            },
        }

    return [
        ("evaluator with a non-ASCII string", document("ü")),
        ("evaluator with a backslash", document("a\\b")),
    ]


# ------------------------------------------------------------------ contexts
def _paths(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for op, args in node.items():
            if op == "var":
                path = args[0] if isinstance(args, list) and args else args
                if isinstance(path, str) and path and not path.startswith("$flagd"):
                    found.add(path)
            _paths(args, found)
    elif isinstance(node, list):
        for item in node:
            _paths(item, found)


def _literals(node: Any, found: list[Any]) -> None:
    if isinstance(node, dict):
        for args in node.values():
            _literals(args, found)
    elif isinstance(node, list):
        for item in node:
            _literals(item, found)
    elif isinstance(node, (str, int, float)) and not isinstance(node, bool):
        found.append(node)


class ContextGenerator:
    """Seeded OpenFeature contexts over the attributes the documents' rules read."""

    def __init__(self, seed: int, documents: list[dict[str, Any]]) -> None:
        self.r = random.Random(seed)
        paths: set[str] = set(ATTRIBUTES)
        literals: list[Any] = []
        for document in documents:
            _paths(document, paths)
            _literals(document.get("flags"), literals)
            _literals(document.get("$evaluators"), literals)
        paths.discard("targetingKey")
        self.paths = sorted(p for p in paths if p not in ("current", "accumulator"))
        self.literals = sorted(set(literals), key=repr) or ["a"]

    def attribute(self) -> Any:
        r = self.r
        pick = r.random()
        if pick < 0.4:
            return r.choice(self.literals)
        if pick < 0.8:
            return copy.deepcopy(r.choice(EDGES))
        if pick < 0.9:
            return [r.choice(self.literals) for _ in range(r.randint(0, 3))]
        return {"x": r.choice(self.literals), "level": r.choice(NUMBERS)}

    def context(self) -> EvaluationContext:
        r = self.r
        pick = r.random()
        if pick < 0.1:
            key: str | None = None
        elif pick < 0.15:
            key = ""
        elif pick < 0.2:
            key = r.choice(["ünïcødé", "123", "user-1", "a b"])
        else:
            key = f"user-{r.randint(0, 10**6)}"
        attributes: dict[str, Any] = {}
        for path in self.paths:
            if r.random() < 0.45:
                continue
            *outer, last = path.split(".")
            here = attributes
            for part in outer:
                nested = here.get(part)
                if not isinstance(nested, dict):
                    nested = here[part] = {}
                here = nested
            here[last] = self.attribute()
        if r.random() < 0.05:
            attributes["targetingKey"] = r.choice(["other", 1, None])
        return EvaluationContext(key, attributes)
