"""aioflags against flagd's Python provider on random contexts: flagd flags (issue 88).

    python benchmarks/bench_flagd_differential.py [--contexts 10000] [--seed 0]
        [--testbed /tmp/flagd-testbed] [--flags 120] [--known known.json] [--smoke]
        [--no-shapes]

Needs flagd's provider (``pip install -e '.[flagd,openfeature]' --group
flagd-reference``; see flagd_reference.py). Every context is evaluated
against every flag of (a) the testbed's flag files (``--testbed``: a
checkout of open-feature/flagd-testbed, read in place, ``flags/*.json`` and
``evaluator/flags/*.json``, each file a document) and (b) a document of
``--flags`` random flags (flagd_random.py) and its deep and wide ones
(else-if chains, nesting, ``or``/``and``/``if``/``in`` hundreds wide:
``--no-shapes`` leaves them out), plus a key no document has,
with each of the five typed methods, on both sides; value, variant, reason,
error code and metadata are compared (``$flagd.timestamp`` frozen in both).

Each difference is traced to its cause: the rule's sub-expressions are run
alone on both sides (aioflags' compiled targeting, flagd's ``jsonLogic``),
descending while one differs; the innermost that differs, with its
arguments' values, names the cause ("``===`` of (bool, int)"). A
difference whose rule values agree is the flag's (variant, default,
type). Differences are printed grouped by cause, each with its count and
its smallest examples (``--examples``; the fewest characters of rule,
definition and context). An ``in`` names the kinds its list holds
(``'in' of (int, list of bool/int)``) and an empty string shows as ``""``,
so that a documented correction's pattern cannot swallow another cause.

``--known`` is a JSON list of ``{"cause": REGEX, "why": TEXT}``: causes
matching one are documented corrections, counted apart; by default
``flagd_known.json`` beside this script (docs/flagd.md, "Where aioflags
corrects flagd's Python provider"), ``--known none`` for none. Exit status
1 when a difference is not known.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flagd_random import ContextGenerator, FlagGenerator, quirk_documents
from flagd_reference import (
    FROZEN,
    METHODS,
    Ours,
    Reference,
    canon,
    freeze_time,
    our_raw,
)

#: A key no document has: FLAG_NOT_FOUND on both sides.
MISSING = "no-such-flag"
#: The documented corrections, the default ``--known``.
KNOWN = Path(__file__).resolve().parent / "flagd_known.json"
#: Operators whose later arguments run in another scope (an item of a list).
_SCOPED = {"map", "filter", "reduce", "all", "some", "none"}


def load_testbed(root: Path) -> list[tuple[str, dict[str, Any]]]:
    files = sorted((root / "flags").glob("*.json")) + sorted(
        (root / "evaluator" / "flags").glob("*.json")
    )
    if not files:
        raise SystemExit(f"--testbed {root}: no flags/*.json there")
    return [(str(p.relative_to(root)), json.loads(p.read_text())) for p in files]


def probe_document() -> dict[str, Any]:
    """A flag that says whether both sides read the frozen ``$flagd.timestamp``."""
    return {
        "flags": {
            "frozen-clock": {
                "state": "ENABLED",
                "variants": {"frozen": True, "running": False},
                "defaultVariant": "running",
                "targeting": {
                    "if": [
                        {"==": [{"var": "$flagd.timestamp"}, FROZEN]},
                        "frozen",
                        "running",
                    ]
                },
            }
        }
    }


class Side:
    """One document on both sides."""

    def __init__(self, name: str, document: dict[str, Any], folder: Path) -> None:
        from aioflags._systems._flagd._data._definitions import flagd_flags

        self.name = name
        self.document = document
        path = folder / f"{len(list(folder.iterdir()))}.json"
        path.write_text(json.dumps(document))
        self.reference = Reference(document)
        self.ours = Ours(path)
        # The rules as aioflags reads them ($ref replaced), for tracing.
        self.rules = {
            key: flag.get("flagd", {}).get("targeting")
            for key, flag in flagd_flags(json.loads(json.dumps(document))).items()
        }
        self.keys = [*document["flags"], MISSING]

    def replaced(self, key: str, context: Any) -> tuple[str, Any, list[Any]] | None:
        """A cause when flagd's provider's ``$ref`` replacement changed ``key``'s rule.

        (It puts each evaluator's JSON into the flags' JSON with ``re.sub``,
        as a template: a backslash in it is an escape.) Only where that
        changes what the rule gives for ``context`` in flagd's own evaluator:
        (cause, aioflags' rule, [flagd's rule]).
        """
        flag = self.reference.core._flag_store.get_flag(key)
        theirs, ours = flag.targeting if flag is not None else None, self.rules.get(key)
        if not theirs or not ours or canon(theirs) == canon(ours):
            return None
        raw = self.reference.raw
        if raw(key, theirs, context) == raw(key, ours, context):
            return None
        return (
            "rule: flagd's provider's $ref replacement changes it "
            "(the evaluator's JSON is an re.sub template)",
            ours,
            [theirs],
        )


# ------------------------------------------------------------------ causes
def _type(value: Any) -> str:
    if isinstance(value, tuple):
        return value[0]
    return "null" if value is None else "str"


def _same(theirs: tuple[str, Any], ours: tuple[str, Any]) -> bool:
    """Both give the same value, or both the same error (PARSE_ERROR, GENERAL)."""
    if theirs[0] != ours[0]:
        return False
    return theirs[0] in ("parse error", "error") or theirs[1] == ours[1]


def _short(raw: tuple[str, Any]) -> str:
    kind, value = raw
    if kind != "value":
        return f"{kind} ({value})"
    return '""' if value == "" else _type(value)


def _argument(op: str, value: Any) -> str:
    """An argument's kind in a cause; ``in``'s list with the kinds it holds."""
    if value == "":
        return '""'
    if op == "in" and isinstance(value, tuple) and value[0] == "list" and value[1]:
        return "list of " + "/".join(sorted({_type(v) for v in value[1]}))
    return _type(value)


def _children(node: Any) -> list[Any]:
    if not isinstance(node, dict) or len(node) != 1:
        return []
    op, args = next(iter(node.items()))
    items = args if isinstance(args, list) else [args]
    return items[:1] if op in _SCOPED else items


def trace(
    key: str, rule: Any, context: Any, reference: Reference
) -> tuple[str, Any, list[Any]]:
    """(cause, the innermost rule that differs, its arguments' values per flagd).

    Empty when the rule's values agree (the difference is the flag's).
    """
    if rule is None:
        return ("", None, [])
    theirs, ours = reference.raw(key, rule, context), our_raw(key, rule, context)
    if _same(theirs, ours):
        return ("", None, [])
    if ours[0] == "parse error" and theirs[0] == "value":
        return (
            f"rule: refused when compiled by aioflags ({ours[1]}), not reached in flagd",
            rule,
            [],
        )
    node = rule
    while True:
        for child in _children(node):
            if isinstance(child, dict) and not _same(
                reference.raw(key, child, context), our_raw(key, child, context)
            ):
                node = child
                break
        else:
            break
    theirs, ours = reference.raw(key, node, context), our_raw(key, node, context)
    args = [reference.raw(key, c, context)[1] for c in _children(node)]
    op = next(iter(node)) if isinstance(node, dict) and len(node) == 1 else "?"
    if op == "var" and args and isinstance(args[0], str):
        op = f"var {args[0]}"
    kinds = ", ".join(_argument(op, a) for a in args)
    return (
        f"rule: {op!r} of ({kinds}){_predicate(op, node, args)}: "
        f"flagd {_short(theirs)}, aioflags {_short(ours)}",
        node,
        args,
    )


def _predicate(op: str, node: Any, args: list[Any]) -> str:
    """An array operator's predicate, which runs on each element (not traced into).

    `` by OP of (KINDS)``, the kinds of the list's elements named too
    (``var`` for a reference): the difference is the predicate's on some
    element, where its own cause would be named.
    """
    if op not in _SCOPED:
        return ""
    operands = node[op] if isinstance(node[op], list) else [node[op]]
    if len(operands) < 2 or not isinstance(operands[1], dict) or len(operands[1]) != 1:
        return ""
    inner, inner_args = next(iter(operands[1].items()))
    if not isinstance(inner_args, list):
        inner_args = [inner_args]
    kinds = ", ".join(
        "var" if isinstance(a, dict) and "var" in a else _type(canon(a))
        for a in inner_args
    )
    elements = ""
    if args and isinstance(args[0], tuple) and args[0][0] == "list" and args[0][1]:
        elements = " over " + "/".join(sorted({_type(v) for v in args[0][1]}))
    return f" by {inner!r} of ({kinds}){elements}"


def _kinds(definition: Any) -> str:
    if not isinstance(definition, dict):
        return "no flag"
    values = definition.get("variants", {}).values()
    return "/".join(sorted({_type(canon(v)) for v in values}))


def _served(definition: Any, answer: tuple[Any, ...]) -> str:
    variants = definition.get("variants", {}) if isinstance(definition, dict) else {}
    name = answer[1]
    return _type(canon(variants[name])) if name in variants else "?"


def flag_cause(
    method: str, definition: Any, theirs: tuple[Any, ...], ours: tuple[Any, ...]
) -> str:
    """The cause of a difference whose rule values agree: the answers' shape."""
    if theirs[3] is not None and ours[3] is not None:
        return f"flag: errors differ: flagd {theirs[3]}, aioflags {ours[3]}"
    if "TYPE_MISMATCH" in (theirs[3], ours[3]):
        served = _served(definition, ours if theirs[3] else theirs)
        return (
            f"flag: {method} of a {served} variant: flagd {theirs[3] or 'serves it'}, "
            f"aioflags {ours[3] or 'serves it'}"
        )
    fields = ("value", "variant", "reason", "error", "metadata")
    which = [f for f, a, b in zip(fields, theirs, ours, strict=False) if a != b]
    return (
        f"flag: {'/'.join(which)} differ: flagd {theirs[2]}/{theirs[3]}, "
        f"aioflags {ours[2]}/{ours[3]}"
    )


def context_cause(context: Any) -> str:
    """Why aioflags refuses ``context`` (empty: it takes it)."""
    from aioflags.openfeature import to_flagd_context

    try:
        to_flagd_context(context)
    except Exception as exc:  # noqa: BLE001
        return f"context refused by aioflags: {type(exc).__name__}"
    return ""


def _size(example: dict[str, Any]) -> int:
    return len(
        json.dumps(
            [example.get(k) for k in ("rule", "definition", "context")], default=str
        )
    )


def _keep(kept: list[dict[str, Any]], most: int, example: dict[str, Any]) -> None:
    """Keep the ``most`` smallest examples of a cause, smallest first."""
    if len(kept) < most or (kept and _size(example) < _size(kept[-1])):
        kept.append(example)
        kept.sort(key=_size)
        del kept[most:]


# -------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contexts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--testbed", type=Path, default=None)
    parser.add_argument("--flags", type=int, default=120, help="random flags")
    parser.add_argument(
        "--known", default=str(KNOWN), help="documented corrections (none: none)"
    )
    parser.add_argument("--examples", type=int, default=2, help="examples per cause")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--no-shapes",
        dest="shapes",
        action="store_false",
        help="leave out the deep and wide flags (flagd_random.FlagGenerator.shape_flags)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.contexts, args.flags = 20, 20
    logging.disable(logging.CRITICAL)
    known = [
        (re.compile(item["cause"]), item["why"])
        for item in (
            [] if args.known == "none" else json.loads(Path(args.known).read_text())
        )
    ]
    freeze_time()
    documents: list[tuple[str, dict[str, Any]]] = [("probe", probe_document())]
    if args.testbed is not None:
        documents += load_testbed(args.testbed)
    documents.append(
        (
            f"random (seed {args.seed})",
            FlagGenerator(args.seed).document(args.flags, shapes=args.shapes),
        )
    )
    folder = Path(tempfile.mkdtemp(prefix="flagd-differential-"))
    documents[1:1] = quirk_documents()
    sides: list[Side] = []
    unloaded: dict[str, dict[str, Any]] = {}
    for name, document in documents:
        try:
            sides.append(Side(name, document, folder))
        except Exception as exc:  # noqa: BLE001, PERF203
            unloaded[
                f"document: flagd's provider cannot load it ({type(exc).__name__}: {exc})"
            ] = {
                "document": name,
                "definition": document,
            }
    contexts = ContextGenerator(args.seed, [d for _, d in documents])
    try:
        probe = sides[0]
        for side in (probe.reference, probe.ours):
            got = side.resolve("boolean", "frozen-clock", contexts.context())
            if got[1] != "frozen":
                raise SystemExit(
                    f"$flagd.timestamp is not frozen: {type(side).__name__} {got}"
                )
        causes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        counts: dict[str, int] = defaultdict(int)
        evaluations = 0
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # (panzi's `log` prints)
            for _ in range(args.contexts):
                context = contexts.context()
                refused = context_cause(context)
                for side in sides:
                    for key in side.keys:
                        traced: tuple[str, Any, list[Any]] | None = None
                        for method in METHODS:
                            evaluations += 1
                            theirs = side.reference.resolve(method, key, context)
                            ours = side.ours.resolve(method, key, context)
                            if theirs[:5] == ours[:5]:
                                continue
                            if traced is None:
                                traced = (
                                    (refused, None, [])
                                    if refused
                                    else side.replaced(key, context)
                                    or trace(
                                        key,
                                        side.rules.get(key),
                                        context,
                                        side.reference,
                                    )
                                )
                            definition = side.document["flags"].get(key)
                            cause = traced[0] or flag_cause(
                                method, definition, theirs, ours
                            )
                            counts[cause] += 1
                            _keep(
                                causes[cause],
                                args.examples,
                                {
                                    "document": side.name,
                                    "flag": key,
                                    "definition": definition,
                                    "rule": traced[1],
                                    "arguments": traced[2],
                                    "method": method,
                                    "context": {
                                        "targeting_key": context.targeting_key,
                                        "attributes": context.attributes,
                                    },
                                    "flagd": theirs,
                                    "aioflags": ours,
                                },
                            )
        elapsed = time.perf_counter() - start
    finally:
        for side in sides:
            side.ours.close()
    for cause, example in unloaded.items():
        counts[cause] += 1
        causes[cause].append(example)
    flags = sum(len(s.keys) for s in sides)
    documented = {c for c in counts if any(p.search(c) for p, _ in known)}
    unknown = sum(n for c, n in counts.items() if c not in documented)
    print(
        f"\nflagd differential: {args.contexts} random contexts x {flags} flags "
        f"({len(sides)} documents) x 5 typed methods = {evaluations} evaluations "
        f"on each side in {elapsed:.1f} s: {sum(counts.values())} differences "
        f"({unknown} not known, {sum(counts.values()) - unknown} documented corrections) "
        f"in {len(counts)} causes"
    )
    for cause in sorted(counts, key=lambda c: (c in documented, -counts[c])):
        mark = " (documented)" if cause in documented else ""
        print(f"\n[{counts[cause]}]{mark} {cause}")
        for example in causes[cause]:
            print("   ", json.dumps(example, default=str, ensure_ascii=False))
    sys.exit(1 if unknown else 0)


if __name__ == "__main__":
    main()
