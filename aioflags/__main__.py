"""The ``aioflags`` command (also ``python -m aioflags``).

- ``serve FILE``: a local flag service from a flag file. Serves FDv2
  (``/sdk/poll``, ``/sdk/stream``) and FDv1 (``/sdk/latest-all``, ``/all``) on
  127.0.0.1, watches the file and pushes edits to connected clients, and stops
  cleanly on Ctrl-C.
- ``validate FILE...``: check flag files and say what is wrong, exit 1 if anything is.
- ``eval FLAG --context JSON``: evaluate one flag from flag files or the flag
  service, and print the value, the variation and the reason as JSON.
- ``diff OLD NEW --contexts FILE``: which contexts a change of flag files
  flips, flag by flag; exit 1 if anything changes.
- ``schema``: print the JSON Schema of flag files (for editors).
- ``codegen FILE... -o MODULE.py``: a typed accessor per flag (``--check``:
  exit 1 with a diff when MODULE.py is not what the files make now).
- ``cleanup FLAG --keep VALUE PATHS...``: rewrite the code that evaluates
  FLAG as if it always served VALUE, and fold what that makes dead (libcst:
  ``aioflags[codemod]``); refused (exit 1) when ``--evidence`` or ``--flags``
  say FLAG serves something else, unless ``--force``.
- ``lens mint`` / ``lens inspect``: flag lens tokens (docs/lens.md).
- ``plane PATH``: lead the flag plane at PATH for the workers of this host,
  with no app (a sidecar); the flag service from ``AIOFLAGS_*`` variables.

Each command is a module of ``aioflags._cli`` with its own arguments; this
module builds the parser from them and runs the one given.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from ._cli import (
    _cleanup,
    _codegen,
    _diff,
    _eval,
    _lens,
    _plane,
    _schema,
    _serve,
    _validate,
)
from ._cli._command import add
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._cli._command import Command

#: In the order ``aioflags --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    _serve.COMMAND,
    _validate.COMMAND,
    _diff.COMMAND,
    _schema.COMMAND,
    _codegen.COMMAND,
    _cleanup.COMMAND,
    _eval.COMMAND,
    _plane.COMMAND,
    _lens.COMMAND,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioflags",
        description="aioflags: feature flags for asyncio services.",
        epilog="`python -m aioflags` is the same command.",
    )
    parser.add_argument(
        "--version", action="version", version=f"aioflags {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        add(commands, command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line: ``aioflags {serve,validate,diff,codegen,cleanup,eval,schema,plane,lens} ...`` (``--help`` for each)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    rest: Callable[[argparse.Namespace, list[str]], list[str]] | None = getattr(
        args, "rest", None
    )
    if extra and rest is not None:
        extra = rest(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # The command is an application: aioflags' warnings go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
