"""The ``aioflags cleanup`` command: evidence, then every file in memory, then the writes.

The order is the safety (docs/lifecycle-tools.md, "Safe on real trees"):

1. VALUE parsed, and the evidence read whole; without evidence it refuses
   unless ``--force``. Nothing is read from the tree before it agrees.
2. Every file found is read (regular files only, ``_tree.find``/``read``)
   and rewritten in memory. A file libcst cannot parse or walk is listed
   and left; the others go on.
3. Only then is anything written: each changed file only if its bytes are
   still those read, compared just before the rename (``_tree.write``).

Exit status: 0 rewritten or nothing to do; 1 refused (by the evidence, or
for want of it); 2 a usage error; 3 some files left as they were (listed:
unreadable, unparsable, changed meanwhile, read-only...), none damaged.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Final

from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import parse
from aioflags._lifecycle import _tree
from aioflags._lifecycle._evidence import (
    MAX_DEPTH,
    CleanupError,
    depth,
    refusals,
    variation_for,
)
from aioflags._lifecycle._output import say

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aioflags._core._json import JSONValue
    from aioflags._lifecycle._cleanup import FileResult

__all__ = ["REFUSED", "SOME_LEFT", "USAGE", "cleanup"]

REFUSED: Final = 1
USAGE: Final = 2
SOME_LEFT: Final = 3


def _error(message: str) -> int:
    say(f"error: {message}", err=True)
    return USAGE


def _value(keep: str) -> JSONValue | None:
    try:
        value = parse(keep)
    except ProtocolError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # (1e400: no flag serves it, and Python has no literal for it)
    return None if depth(value) > MAX_DEPTH else value


def _not_a_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (a FIFO would hang the read)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # (its reader says why)
    if stat.S_ISREG(mode):
        return None
    return "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"


def cleanup(
    flag: str,
    keep: str,
    paths: Sequence[Path],
    *,
    evidence: Sequence[Path],
    flag_files: Sequence[Path],
    force: bool,
    dry_run: bool,
    transformed: Callable[[Path], None] | None = None,
) -> int:
    """Rewrite (or, ``dry_run``, show) the code of ``paths`` as if ``flag`` always served ``keep``.

    ``transformed`` is called with each file's path once it is rewritten in
    memory, before anything is written (a test saves an edit there).
    Returns the exit status (the module docstring).
    """
    value = _value(keep)
    if value is None:
        return _error(
            f"--keep {keep}: not JSON nested at most {MAX_DEPTH} deep, with "
            "finite numbers (a string is --keep '\"green\"')"
        )
    try:
        import libcst  # noqa: F401  # (its absence is a usage error)
    except ImportError:
        return _error("aioflags cleanup needs libcst: pip install 'aioflags[codemod]'")
    try:
        found, skipped = _tree.find(paths or [Path()])
    except FileNotFoundError as exc:
        return _error(f"{exc.filename}: no such file or directory")
    status, value = _agreed(flag, value, evidence, flag_files, force=force)
    if status:
        return status
    sources = _read(found, skipped)
    results = _rewritten(flag, value, sources, transformed)
    rewritten, touched, left = _apply(results, skipped, dry_run=dry_run)
    return _report(flag, sources, rewritten, touched, left, skipped, dry_run=dry_run)


def _agreed(
    flag: str,
    value: JSONValue,
    evidence: Sequence[Path],
    flag_files: Sequence[Path],
    *,
    force: bool,
) -> tuple[int, JSONValue]:
    """What the evidence says: 0 and the value to write (from the flag files), or the exit status."""
    if not evidence and not flag_files and not force:
        say(
            f"refused: no evidence of what {flag!r} serves; nothing changed. Give "
            "--evidence (a flag coverage JSON, client.usage() saved as JSON) or "
            "--flags FILE, or --force to rewrite anyway",
            err=True,
        )
        return REFUSED, value
    for given in (*evidence, *flag_files):
        kind = _not_a_file(given)
        if kind is not None:
            return _error(f"{given}: {kind}, not a file"), value
    try:
        if flag_files:
            value = variation_for(flag, value, flag_files)
        refused, value = refusals(flag, value, evidence, flag_files)
    except CleanupError as exc:
        return _error(str(exc)), value
    return _verdict(
        flag, value, refused, force=force, given=bool(evidence or flag_files)
    ), value


def _verdict(
    flag: str, value: JSONValue, refused: Sequence[str], *, force: bool, given: bool
) -> int:
    """What the evidence refused, said; 0 if the rewrite goes on (``--force`` says so)."""
    shown = json.dumps(value, ensure_ascii=False)
    if refused:
        for line in refused:
            say(line)
        if not force:
            say(
                f"refused: the evidence does not show {flag!r} serving {shown} "
                "to everyone; nothing changed (--force to rewrite anyway)",
                err=True,
            )
            return REFUSED
        say(f"--force: rewriting {flag!r} as {shown} against the evidence above")
    elif not given:
        say(f"--force: rewriting {flag!r} as {shown} with no evidence")
    return 0


def _read(
    found: Sequence[_tree.Found], skipped: list[_tree.Skipped]
) -> list[_tree.Source]:
    """The files found, read (those that cannot be go to ``skipped``)."""
    sources: list[_tree.Source] = []
    for entry in found:
        got = _tree.read(entry)
        if isinstance(got, _tree.Skipped):
            skipped.append(got)
        else:
            sources.append(got)
    return sources


def _rewritten(
    flag: str,
    value: JSONValue,
    sources: Sequence[_tree.Source],
    transformed: Callable[[Path], None] | None,
) -> list[tuple[_tree.Source, FileResult]]:
    """Every file rewritten in memory: nothing is written yet."""
    from aioflags._lifecycle._cleanup import (
        accessor_names,
        clean_source,
        is_generated,
        key_constants,
        names_taken_from,
    )

    # (a key constant one module defines, others import)
    everything = [(source.path, source.data) for source in sources]
    imported = key_constants(everything, flag)
    # (the name codegen's modules give the accessor: --name KEY=IDENT)
    accessors = accessor_names(
        flag, (source.data for source in sources if is_generated(source.data))
    )
    results: list[tuple[_tree.Source, FileResult]] = []
    for source in sources:
        result = clean_source(
            source.path,
            source.data,
            flag,
            value,
            imported,
            names_taken_from(source.path, everything),
            accessors,
        )
        results.append((source, result))
        if transformed is not None:
            transformed(source.path)
    return results


def _apply(
    results: Sequence[tuple[_tree.Source, FileResult]],
    skipped: list[_tree.Skipped],
    *,
    dry_run: bool,
) -> tuple[int, int, list[str]]:
    """Each changed file written (``dry_run``: its diff shown): the sites rewritten, the files touched, what was left."""
    rewritten = touched = 0
    left: list[str] = []
    for source, result in results:
        if result.note:
            say(result.note)
        if result.failed is not None:
            skipped.append(_tree.Skipped(source.path, result.failed))
            continue
        if result.changed:
            if dry_run:  # (what the run would leave, it says so too)
                why = _tree.writable(source)
            else:
                with _tree.terminated_as_interrupted():
                    why = _tree.write(source, result.after)
            if why is not None:
                skipped.append(_tree.Skipped(source.path, why))
                continue
            if dry_run:
                say(result.diff(), end="")
            touched += 1
            rewritten += result.rewritten
        left += [str(entry) for entry in result.left]
    return rewritten, touched, left


def _report(
    flag: str,
    sources: Sequence[_tree.Source],
    rewritten: int,
    touched: int,
    left: Sequence[str],
    skipped: Sequence[_tree.Skipped],
    *,
    dry_run: bool,
) -> int:
    """What was left, the files left as they were, the summary; the exit status."""
    for line in left:
        say(f"left: {line}")
    skipped = list(dict.fromkeys(skipped))
    for file in sorted(skipped, key=lambda s: str(s.path)):
        say(f"file left as it was: {file}")
    summary = (
        f"{'would rewrite' if dry_run else 'rewrote'} {rewritten} sites, "
        f"left {len(left)}, {touched} files {'to touch' if dry_run else 'touched'}"
    )
    if skipped:
        summary += f", {len(skipped)} left as they were (listed above)"
    say(summary)
    if skipped:
        return SOME_LEFT
    if not rewritten and not left:
        from aioflags._lifecycle._cleanup import keys_evaluated

        keys = keys_evaluated(source.data for source in sources) - {flag}
        close = difflib.get_close_matches(flag, sorted(keys), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        say(f"no call site evaluates {flag!r}{hint}", err=True)
    return 0
