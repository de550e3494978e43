"""``aioflags validate FILE...``: check flag files and say what is wrong, where; exit 1 if anything is."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._command import Command, fail

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Mapping


def add_args(parser: argparse.ArgumentParser) -> None:
    """``validate``'s arguments: the flag files."""
    parser.add_argument("files", type=Path, nargs="+", help="flag files (JSON or YAML)")


def run(args: argparse.Namespace) -> int:
    """Check ``args.files``: 0 when nothing is wrong, 1 when something is."""
    return validate(args.files)


def _cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each cycle of a graph once, as its path from its first node back to it.

    Depth first with a stack of its own, not Python's: a chain of thousands
    of flags is no deeper for it than a short one.
    """
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        path = [start]
        on_path = {start}
        targets = [iter(edges[start])]
        while targets:
            target = next(targets[-1], None)
            if target is None:  # every edge of path[-1] followed
                node = path.pop()
                on_path.discard(node)
                done.add(node)
                targets.pop()
            elif target in on_path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done and target in edges:
                path.append(target)
                on_path.add(target)
                targets.append(iter(edges[target]))
    return cycles


def _too_deep(runs: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The nodes whose chains go deeper than the evaluator follows them.

    ``runs`` maps each flag the evaluator runs (not constant) to its
    prerequisites' keys, or each segment with rules to the segments its
    rules reference. The evaluator aborts (MALFORMED_FLAG) when it is about
    to run one deeper than ``MAX_CHAIN_DEPTH`` levels below the first, so a
    node is listed when its longest chain is longer than that: with the
    chain, from it to the deepest node.
    Cycles are left to :func:`_cycles` (an edge back into the path is not
    followed). Iterative, as :func:`_cycles`.
    """
    from aioflags._evaluation._evaluate import MAX_CHAIN_DEPTH

    #: the longest chain below each flag whose chains are all known
    below: dict[str, list[str]] = {}
    for start in runs:
        if start in below:
            continue
        path = [start]
        targets = [iter(runs[start])]
        deepest: list[list[str]] = [[]]
        while targets:
            target = next(targets[-1], None)
            if target is None:
                node = path.pop()
                targets.pop()
                below[node] = chain = deepest.pop()
                if deepest and len(chain) + 1 > len(deepest[-1]):
                    deepest[-1] = [node, *chain]
            elif target in below:
                if len(below[target]) + 1 > len(deepest[-1]):
                    deepest[-1] = [target, *below[target]]
            elif target in runs and target not in path:
                path.append(target)
                targets.append(iter(runs[target]))
                deepest.append([])
    return {
        key: [key, *below[key]] for key in runs if len(below[key]) > MAX_CHAIN_DEPTH
    }


def _shortened(chain: list[str]) -> str:
    """A chain of flags for a message: its ends, and how many are between."""
    if len(chain) <= 6:
        return " -> ".join(chain)
    return (
        f"{' -> '.join(chain[:3])} -> ... ({len(chain) - 6} more) -> "
        f"{' -> '.join(chain[-3:])}"
    )


def validate(paths: list[Path]) -> int:
    """Check flag files as a linter would; print what is wrong, where. 0 if nothing.

    First what the schema says (an unknown field, with the one meant; an
    unknown operator; a value of the wrong type) and what no file defines
    (a prerequisite's flag, a ``segmentMatch``'s segment), each at its
    ``file:line:col``: the SDK ignores an unknown field and never matches
    an unknown operator, as LaunchDarkly's do, so nothing else would say so.
    Then what makes evaluations return MALFORMED_FLAG: the compiler's own
    verdicts (a malformed flag or segment, a variation index out of range,
    a rule that serves nothing, an invalid attribute reference), and the
    prerequisite and segment cycles the evaluator aborts. A file in a flag
    system's own format is checked by its linter (``FlagSystem.document``:
    flagd's says a field flagd ignores, variants of several types, a
    default variant that names none, a ``$ref`` to no evaluator, targeting
    that can only fail), and its flags compiled: one its system cannot
    use is its system's error for every evaluation (flagd's PARSE_ERROR).
    What the system serves all the same (flagd: a ``fractional`` whose
    weights are all 0, a ``sem_ver`` operator it lacks) is a warning:
    said, counted, and no change to the exit status.
    """
    from aioflags._datasystem._sources._files import (
        FlagFileError,
        flag_file_text,
        load_flag_files,
    )
    from aioflags._datasystem._sources._lint import lint, pointer
    from aioflags._evaluation._evaluate import MAX_CHAIN_DEPTH
    from aioflags._evaluation._model import (
        checked_flag,
        checked_segment,
        default_system,
        system_of,
    )

    try:
        # Empty is an error, as it is to serve and DataSystem.file's reloads.
        # (warn=False: what the loader would log, an index out of range,
        # is said below with its line, once)
        flags, segments = load_flag_files(*paths, allow_empty=False, warn=False)
        files = [(path, *flag_file_text(path)) for path in paths]
    except FlagFileError as exc:
        return fail(str(exc), 1)
    try:
        linted, where = lint(files, flags, segments)
    except RecursionError:  # (what the reader took, nested past the walks)
        names = ", ".join(str(p) for p in paths)
        return fail(f"{names}: nested too deeply to check", 1)
    # A flag or segment whose shape the schema refuses: said there, where
    # it is, rather than again in the compiler's words.
    misshapen = {(p.at[0], p.at[1]) for p in linted if p.shape and len(p.at) > 1}
    problems: list[str] = []
    unusable: list[tuple[str, str]] = []  # (of a system's own: its error kind)
    prerequisites: dict[str, tuple[str, ...]] = {}
    runs: dict[str, tuple[str, ...]] = {}  # the flags the evaluator runs
    # The flags of a system of their own (flagd's): what its compiler
    # refuses makes every evaluation its system's error (flagd: PARSE_ERROR).
    own = {
        key: system
        for key, raw in flags.items()
        if (system := system_of(raw)[0]) is not default_system()
    }
    for key, raw in flags.items():
        flag, found = checked_flag(key, raw)
        at = where.get(("flags", key), "")
        if ("flags", key) in misshapen:
            continue
        if key in own:  # a flag its own system cannot use: its error, always
            kind = str(own[key].unusable.reason.get("errorKind"))
            unusable += ((f"{at}: flag {key!r}: {problem}", kind) for problem in found)
        else:
            problems += (f"{at}: flag {key!r}: {problem}" for problem in found)
        prerequisites[key] = flag.prerequisite_keys
        if flag.constant is None:
            runs[key] = flag.prerequisite_keys
    nested: dict[str, frozenset[str]] = {}
    matched: dict[str, list[str]] = {}  # the segments whose rules are matched
    for key, raw in segments.items():
        segment, found = checked_segment(key, raw)
        at = where.get(("segments", key), "")
        if ("segments", key) not in misshapen:
            problems += (f"{at}: segment {key!r}: {problem}" for problem in found)
        nested[key] = segment.segment_keys
        if segment.rules:  # the evaluator follows a segment's rules alone
            matched[key] = sorted(segment.segment_keys)
    problems += (
        f"{where.get(('flags', cycle[0]), '')}: flag {cycle[0]!r}: prerequisite "
        f"cycle {' -> '.join(cycle)}"
        for cycle in _cycles(prerequisites)
    )
    problems += (
        f"{where.get(('flags', key), '')}: flag {key!r}: prerequisite chain "
        f"{len(chain) - 1} levels deep, more than the evaluator's "
        f"{MAX_CHAIN_DEPTH}: {_shortened(chain)}"
        for key, chain in _too_deep(runs).items()
    )
    problems += (
        f"{where.get(('segments', key), '')}: segment {key!r}: segment rule chain "
        f"{len(chain) - 1} levels deep, more than the evaluator's "
        f"{MAX_CHAIN_DEPTH}: {_shortened(chain)}"
        for key, chain in _too_deep(matched).items()
    )
    problems += (
        f"{where.get(('segments', cycle[0]), '')}: segment {cycle[0]!r}: segment "
        f"rule cycle {' -> '.join(cycle)}"
        for cycle in _cycles({k: sorted(v) for k, v in nested.items()})
    )
    for p in linted:
        malformed = (
            " (evaluations that reach it are MALFORMED_FLAG)"
            if p.shape and not (len(p.at) > 1 and p.at[1] in own)
            else ""
        )
        kind = "warning" if p.warning else "error"
        print(
            f"{kind}: {p.place}: {pointer(p.at)}: {p.what}{malformed}", file=sys.stderr
        )
    for problem in problems:
        print(
            f"error: {problem} (evaluations that reach it are MALFORMED_FLAG)",
            file=sys.stderr,
        )
    for problem, kind in unusable:
        print(f"error: {problem} (every evaluation of it is {kind})", file=sys.stderr)
    warnings = sum(p.warning for p in linted)
    count = len(linted) - warnings + len(problems) + len(unusable)
    names = ", ".join(str(p) for p in paths)
    verdict = f"{count} problem(s)" if count else "valid"
    if warnings:  # (what a system serves all the same: the exit status stays)
        verdict += f", {warnings} warning(s)"
    print(f"{names}: {len(flags)} flags, {len(segments)} segments: {verdict}")
    return 1 if count else 0


COMMAND = Command(
    name="validate",
    help="check flag files; exit 1 if anything is wrong",
    description="Load flag files as DataSystem.file(), `serve` and `eval "
    "--file` do (the same loader), compile every flag and segment, and say "
    "what is wrong with each. A warning (what a flag system serves all the "
    "same, such as targeting that can only fail) leaves the exit status 0.",
    add_args=add_args,
    run=run,
)
