"""``aioflags cleanup FLAG --keep VALUE PATHS...``: remove a flag from code (libcst: ``aioflags[codemod]``).

It rewrites the code that evaluates FLAG as if it always served VALUE, and
folds what that makes dead; refused (exit 1) when ``--evidence`` or
``--flags`` say FLAG serves something else, unless ``--force``. The
codemod is ``aioflags._lifecycle``'s, imported when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._command import Command

if TYPE_CHECKING:
    import argparse


def add_args(parser: argparse.ArgumentParser) -> None:
    """``cleanup``'s arguments: the flag, the paths, ``--keep``, the evidence, ``--force``, ``--dry-run``."""
    parser.add_argument("flag", help="the flag key")
    parser.add_argument("paths", type=Path, nargs="*", help="files and directories")
    parser.add_argument(
        "--keep",
        required=True,
        metavar="VALUE",
        help="the value to keep, as JSON, as eval prints it (true, 3, '\"green\"')",
    )
    parser.add_argument(
        "--evidence",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a flag coverage JSON (pytest --aioflags-coverage-json) or "
        "client.usage().to_dict() saved as JSON; repeatable",
    )
    parser.add_argument(
        "--flags",
        dest="flag_files",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a flag file: refuse unless VALUE is one of FLAG's variations "
        "and FLAG serves it to everyone; repeatable",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="rewrite even when the evidence refuses, or with no evidence",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing: print the rewrite as a unified diff",
    )


def run(args: argparse.Namespace) -> int:
    """Rewrite the code under ``args.paths``; the exit status as docs/lifecycle-tools.md gives it."""
    from aioflags._lifecycle._cleanup_run import cleanup

    return cleanup(
        args.flag,
        args.keep,
        args.paths,
        evidence=args.evidence,
        flag_files=args.flag_files,
        force=args.force,
        dry_run=args.dry_run,
    )


def rest(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """Paths after the options (argparse stops taking a positional list at the first option).

    Returns:
        What is left: the options argparse did not know.
    """
    args.paths += [Path(arg) for arg in extra if not arg.startswith("-")]
    return [arg for arg in extra if arg.startswith("-")]


COMMAND = Command(
    name="cleanup",
    help="remove a flag from code: its evaluations become VALUE, dead branches go",
    description="Rewrite the Python code under PATHS (default: .) that "
    "evaluates FLAG (client and blocking-client variation methods, "
    "FlagSnapshot, the accessors aioflags codegen writes, the key as a "
    "module constant) as if it always served VALUE, and fold the if/else, "
    "conditional expressions, and/or/not and comparisons that makes dead; "
    "comments and formatting are kept (libcst: pip install "
    "'aioflags[codemod]'). What it cannot prove safe it leaves and lists "
    "with file:line. The evidence is read first: exit 1, nothing changed, "
    "when it shows FLAG serving anything but VALUE, or when there is none "
    "(--force to go without). Every file is rewritten in memory before one "
    "is written, and each only if it is still as read: exit 3 when some are "
    "left as they were, listed (docs/lifecycle-tools.md).",
    add_args=add_args,
    run=run,
    rest=rest,
)
