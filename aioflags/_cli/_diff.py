"""``aioflags diff OLD NEW --contexts FILE``: which contexts a change of flag files flips, flag by flag; exit 1 if anything changes."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._command import Command, fail

if TYPE_CHECKING:
    import argparse


def add_args(parser: argparse.ArgumentParser) -> None:
    """``diff``'s arguments: the two flag files, the contexts, ``--json``."""
    parser.add_argument("old", type=Path, help="the flag file before the change")
    parser.add_argument("new", type=Path, help="the flag file after the change")
    parser.add_argument(
        "--contexts",
        required=True,
        type=Path,
        help="JSON Lines (one context a line) or one JSON array of contexts, "
        "in LaunchDarkly's context JSON (entries that are not contexts are "
        "reported and skipped; none usable is an error)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as one JSON object"
    )


def run(args: argparse.Namespace) -> int:
    """Say what changing ``args.old`` into ``args.new`` does: 0 nothing, 1 something, 2 an error."""
    return diff(args.old, args.new, args.contexts, as_json=args.json)


def diff(old: Path, new: Path, contexts: Path, *, as_json: bool) -> int:
    """Print what changing ``old`` into ``new`` does to the contexts; 1 if anything.

    The entries of ``contexts`` that are not contexts are named on stderr and
    skipped. 2 when a file cannot be read, or when ``contexts`` has entries
    but none is a context.
    """
    from aioflags._datasystem._sources._files import FlagFileError
    from aioflags._diff._blast import SKIPPED_SHOWN, diff_files

    try:
        report = diff_files(old, new, contexts)
    except FlagFileError as exc:
        return fail(str(exc), 2)
    except OSError as exc:
        return fail(f"{contexts}: cannot read the contexts: {exc.strerror or exc}", 2)
    for skipped in report.skipped[:SKIPPED_SHOWN]:
        print(f"{contexts}:{skipped.line}: skipped: {skipped.error}", file=sys.stderr)
    more = len(report.skipped) - SKIPPED_SHOWN
    if more > 0:
        print(f"{contexts}: {more} more line(s) skipped", file=sys.stderr)
    # Read as LaunchDarkly reads them, the old user JSON's ignored properties
    # are said: once per distinct set (the report counts them all).
    for ignored in report.ignored_sets.values():
        logging.getLogger("aioflags.evaluation").warning(
            "%s: %s", contexts, ignored.message()
        )
    counted = sum(i.count for i in report.ignored_sets.values())
    if report.ignored > counted:
        logging.getLogger("aioflags.evaluation").warning(
            "%s: %d more contexts had other attributes ignored",
            contexts,
            report.ignored - counted,
        )
    if report.skipped and not report.contexts:
        # A report on none of the contexts given would say "flip none".
        return fail(
            f"{contexts}: no context could be read; expected JSON Lines "
            "(one context object a line) or one JSON array of context objects, "
            "in LaunchDarkly's context JSON",
            2,
        )
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            print(line)
    return 1 if report.changes else 0


COMMAND = Command(
    name="diff",
    help="which contexts a change of flag files flips; exit 1 if anything changes",
    description="Evaluate every flag of OLD and NEW (flag files, JSON or "
    "YAML) for every context in CONTEXTS and say, per flag, how many contexts "
    "change value and from what to what, with examples and their reasons; "
    "and which flags were added or removed. Exit 0 when nothing changes, 1 "
    "when something does, 2 on an error.",
    add_args=add_args,
    run=run,
)
