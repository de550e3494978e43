"""What every ``aioflags`` command is made of, and the one way they say an error.

A command is a value, not a subclass: :class:`Command` holds the functions
that add its arguments and run it. ``aioflags.__main__`` adds each to the
parser with :func:`add` and runs the one given.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import Callable


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One ``aioflags`` command: its parser's words, its arguments and its run."""

    #: the word after ``aioflags``
    name: str
    #: its line in ``aioflags --help``
    help: str
    #: what ``aioflags NAME --help`` says above the arguments
    description: str
    #: adds the command's arguments to its own parser
    add_args: Callable[[argparse.ArgumentParser], None]
    #: runs it: the exit status (a usage error exits 2 through ``args.parser``)
    run: Callable[[argparse.Namespace], int]
    #: the description's lines kept as written (argparse wraps them otherwise)
    raw_description: bool = False
    #: takes what argparse left over (``parse_known_args``), returns what it
    #: did not take: the rest is an error
    rest: Callable[[argparse.Namespace, list[str]], list[str]] | None = None


def add(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], command: Command
) -> None:
    """Add ``command`` to the ``aioflags`` parser's subparsers ``commands``.

    Its run is ``args.run``, with its own parser (``args.parser``) to say a
    usage error, and ``args.rest`` what takes the arguments left over.
    """
    parser = commands.add_parser(
        command.name,
        help=command.help,
        description=command.description,
        formatter_class=argparse.RawDescriptionHelpFormatter
        if command.raw_description
        else argparse.HelpFormatter,
    )
    parser.set_defaults(run=command.run, parser=parser, rest=command.rest)
    command.add_args(parser)


def fail(message: str, status: int) -> int:
    """Say ``error: message`` on stderr (one line); return the exit ``status``."""
    print(f"error: {message}", file=sys.stderr)
    return status
