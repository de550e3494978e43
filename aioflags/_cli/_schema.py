"""``aioflags schema``: print the JSON Schema of flag files (for editors)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from ._command import Command

if TYPE_CHECKING:
    import argparse


def add_args(parser: argparse.ArgumentParser) -> None:
    """``schema``'s arguments: ``--format``."""
    from aioflags._evaluation._model import default_system, formats

    parser.add_argument(
        "--format",
        choices=formats(),  # (each registered flag system's with a format)
        default=default_system().name,
        help="which flag files: LaunchDarkly's shape (the default) or a flag "
        "system's own",
    )


def run(args: argparse.Namespace) -> int:
    """Print the schema of the format ``args.format`` names: 0.

    A flag system's own format says its schema (``FlagSystem.document``);
    the file reader's own shape's is ``flagfile.schema.json``, shipped.
    """
    from aioflags._evaluation._model import system_named

    system = system_named(args.format)
    document = None if system is None else system.document
    if document is None:
        schema = resources.files("aioflags").joinpath("flagfile.schema.json")
        print(schema.read_text("utf-8"), end="")
    else:
        print(document.schema(), end="")
    return 0


COMMAND = Command(
    name="schema",
    help="print the JSON Schema of flag files (for editors)",
    description="Print the JSON Schema of flag files (flagfile.schema.json, "
    "shipped in the package; with --format NAME, the schema of the files "
    "of flag system NAME): save it, and point your editor at it for "
    "completion and checks as you type.",
    add_args=add_args,
    run=run,
)
