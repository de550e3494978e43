"""``aioflags schema``: print the JSON Schema of flag files (for editors)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from ._command import Command

if TYPE_CHECKING:
    import argparse


def add_args(parser: argparse.ArgumentParser) -> None:
    """``schema``'s arguments: ``--format``."""
    parser.add_argument(
        "--format",
        choices=("launchdarkly", "flagd"),
        default="launchdarkly",
        help="which flag files: LaunchDarkly's shape (the default) or flagd's",
    )


def run(args: argparse.Namespace) -> int:
    """Print the schema ``args.format`` names (shipped in the package): 0."""
    name = "flagd.schema.json" if args.format == "flagd" else "flagfile.schema.json"
    schema = resources.files("aioflags").joinpath(name)
    print(schema.read_text("utf-8"), end="")
    return 0


COMMAND = Command(
    name="schema",
    help="print the JSON Schema of flag files (for editors)",
    description="Print the JSON Schema of flag files (flagfile.schema.json, "
    "shipped in the package; with --format flagd, flagd's flag definitions: "
    "flagd.schema.json): save it, and point your editor at it for "
    "completion and checks as you type.",
    add_args=add_args,
    run=run,
)
