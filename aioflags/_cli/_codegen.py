"""``aioflags codegen FILE... -o MODULE.py``: a typed accessor per flag (``--check``: exit 1 with a diff when MODULE.py is stale)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ._command import Command

if TYPE_CHECKING:
    from collections.abc import Mapping


def add_args(parser: argparse.ArgumentParser) -> None:
    """``codegen``'s arguments: the flag files, ``--from-ld``, ``-o``, ``--check``, ``--name``."""
    parser.add_argument(
        "files",
        type=Path,
        nargs="*",
        help="flag files (JSON or YAML), as serve reads them",
    )
    parser.add_argument(
        "--from-ld",
        dest="ld_files",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="LaunchDarkly's flag JSON, the shape of /sdk/latest-all "
        '({"flags": {...}, "segments": {...}}); repeatable',
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="MODULE.py",
        help="the module to write",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing: exit 1 and print a diff when MODULE.py is not "
        "what the flags make now, 0 when it is",
    )
    parser.add_argument(
        "--name",
        dest="names",
        type=_name,
        action="append",
        default=[],
        metavar="KEY=IDENT",
        help="name flag KEY's methods IDENT (IDENT_detail): for two keys that "
        "would have one name; repeatable",
    )


def _name(text: str) -> tuple[str, str]:
    """``--name KEY=IDENT`` (a key may hold ``=``: IDENT is after the last)."""
    from aioflags._lifecycle._codegen import name_problem

    key, equals, ident = text.rpartition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=IDENT")
    problem = name_problem(ident)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return key, ident


def run(args: argparse.Namespace) -> int:
    """Write (or check) ``args.output``: 0, 1 when stale, 2 on an error."""
    if not args.files and not args.ld_files:
        args.parser.error("give flag files, or --from-ld FILE")
    names: dict[str, str] = {}
    for key, ident in args.names:
        if names.setdefault(key, ident) != ident:
            args.parser.error(f"--name: {key!r} is named twice")
    return codegen(
        args.files, args.ld_files, args.output, check=args.check, names=names
    )


def codegen(
    files: list[Path],
    ld_files: list[Path],
    out: Path,
    *,
    check: bool,
    names: Mapping[str, str] | None = None,
) -> int:
    """Write (or ``check``) the typed accessors of the flags in ``files`` and ``ld_files``.

    0 when written, or current; 1 when ``check`` finds ``out`` stale (the
    diff printed); 2 when a file cannot be read, the flags cannot be typed,
    or ``out`` is no module codegen wrote (left as it is).
    """
    from aioflags._lifecycle._codegen_run import run

    return run(files, ld_files, out, check=check, names=names or {})


COMMAND = Command(
    name="codegen",
    help="write a typed accessor per flag (a Python module); --check for CI",
    description="Write MODULE.py: a class Flags (on an aioflags.Client) and "
    "a class BlockingFlags (on an aioflags.blocking.Client) with one typed "
    "method per flag, and one *_detail method, typed from the flag's "
    "variations (docs/lifecycle-tools.md). The module passes mypy --strict "
    "and is formatted as ruff format leaves it; the same flags give the "
    "same bytes.",
    add_args=add_args,
    run=run,
)
