"""What every ``aioflags`` command is made of, and the one way they say an error.

A command is a value, not a subclass: :class:`Command` holds the functions
that add its arguments and run it. ``aioflags.__main__`` adds each to the
parser with :func:`add` and runs the one given.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, final

from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    from collections.abc import Callable


@final
class Command(Frozen):
    """One ``aioflags`` command: its parser's words, its arguments and its run.

    A :class:`Frozen` value, not a dataclass: ``aioflags --help`` does not
    import :mod:`dataclasses` (and :mod:`inspect`, :mod:`ast`) for it.

    Attributes:
        name: the word after ``aioflags``.
        help: its line in ``aioflags --help``.
        description: what ``aioflags NAME --help`` says above the arguments.
        add_args: adds the command's arguments to its own parser.
        run: runs it, and returns the exit status (a usage error exits 2
            through ``args.parser``).
        raw_description: the description's lines kept as written (argparse
            wraps them otherwise).
        rest: takes what argparse left over (``parse_known_args``) and
            returns what it did not take, which is an error.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "name",
        "help",
        "description",
        "add_args",
        "run",
        "raw_description",
        "rest",
    )
    name: str
    help: str
    description: str
    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    raw_description: bool
    rest: Callable[[argparse.Namespace, list[str]], list[str]] | None

    def __init__(
        self,
        *,
        name: str,
        help: str,
        description: str,
        add_args: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int],
        raw_description: bool = False,
        rest: Callable[[argparse.Namespace, list[str]], list[str]] | None = None,
    ) -> None:
        set_field(self, "name", name)
        set_field(self, "help", help)
        set_field(self, "description", description)
        set_field(self, "add_args", add_args)
        set_field(self, "run", run)
        set_field(self, "raw_description", raw_description)
        set_field(self, "rest", rest)


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
