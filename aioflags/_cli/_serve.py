"""``aioflags serve FILE``: a local flag service from a flag file, on 127.0.0.1.

It serves FDv2 (``/sdk/poll``, ``/sdk/stream``) and FDv1 (``/sdk/latest-all``,
``/all``), watches the file and pushes edits to connected clients, and stops
cleanly on Ctrl-C. This module reads the arguments and says what goes wrong
in one line; what runs is ``_serving``'s, imported then.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path

from ._command import Command, fail
from ._where import bind_host, config_line, is_loopback, literal_host

_SERVE_PORT = 8765
_SERVE_DEFAULT_URL = f"http://127.0.0.1:{_SERVE_PORT}"
#: ``serve --help``'s description: argparse's raw formatter keeps its lines
#: (the Config line must not be wrapped), so they are wrapped here.
_SERVE_DESCRIPTION = f"""\
A local flag service from a flag file, for development and tests. Edits of
the file are pushed to connected clients. Point your app at the URL it
prints, events included (the console's Evaluations log is fed by them; an
app without events_uri sends them to LaunchDarkly). With the default port:

{config_line(_SERVE_DEFAULT_URL)}

or set AIOFLAGS_BASE_URI, AIOFLAGS_STREAM_URI and AIOFLAGS_EVENTS_URI for
Config.from_env(). The console is at {_SERVE_DEFAULT_URL}/ui/."""


def add_args(parser: argparse.ArgumentParser) -> None:
    """``serve``'s arguments: the file, where to listen, the lens, the bounds."""
    parser.add_argument(
        "file",
        type=Path,
        help="a flag file in LaunchDarkly's file-data-source shape "
        "(flags, flagValues, segments)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=_SERVE_PORT,
        help=f"0 picks a free port (default {_SERVE_PORT})",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding an address other than loopback (the service has no authentication)",
    )
    parser.add_argument(
        "--lens-secret-file",
        type=Path,
        metavar="F",
        help="the flag lens secret (your app's LensConfig.secrets[0]): the "
        "console then makes lens links (docs/lens.md)",
    )
    parser.add_argument(
        "--lens-allow",
        action="append",
        default=None,
        metavar="PATTERN",
        help="one of your app's LensConfig.allow patterns (repeatable): a lens "
        "link made for a flag outside them says the app will not override it",
    )
    parser.add_argument(
        "--limit",
        type=_limit,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one of the service's bounds (aioflags.testing.Limits), again for "
        "each: max_body=128KiB, max_events_body=16MiB, body_timeout=60, ... "
        "(sizes in bytes, KiB or MiB; times in seconds)",
    )


def _limit(text: str) -> tuple[str, int | float]:
    """``--limit NAME=VALUE``: a field of ``Limits`` and its value (KiB, MiB allowed)."""
    import dataclasses

    from aioflags._asgi._limits import Limits

    fields = {f.name: f for f in dataclasses.fields(Limits)}
    name, equals, value = text.partition("=")
    if not equals or name not in fields:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give NAME=VALUE with NAME one of {', '.join(fields)}"
        )
    whole = fields[name].type == "int"  # (a size or a count; else seconds)
    factor = 1
    for suffix, size in (("KiB", 1024), ("MiB", 1024 * 1024)):
        if whole and value.endswith(suffix):
            value, factor = value.removesuffix(suffix), size
    try:
        number = float(value) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: {name} is a number (sizes may end in KiB or MiB)"
        ) from None
    if not whole:
        return name, number
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r}: {name} is a whole number")
    return name, int(number)


#: glibc's ``mallopt`` parameter for the size from which a block is mapped alone.
_M_MMAP_THRESHOLD = -3


def _give_large_blocks_back() -> None:
    """``serve``'s process: a block of 128 KiB or more goes back to the system when freed.

    glibc's malloc maps such a block on its own and unmaps it when freed,
    but raises that threshold to the size of each one freed (up to 32 MiB):
    after the first 8 MiB event post, each post's copies (its body, its
    text, the list it parses to) came from the heap, which keeps the space
    freed between blocks still in use. Ten 8 MiB posts of ``[{},{},…]``
    left ``serve`` at 222 MB; with the threshold fixed at glibc's default,
    as ``MALLOC_MMAP_THRESHOLD_=131072`` would, at 124 MB
    (``benchmarks/bench_serve_posts.py``). An application configures its
    own process; a FlagServer's leaves malloc as it is. Where that setting
    is the user's (the variable is set), or malloc is not glibc's, nothing.
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - no mallopt (not glibc)
        return
    mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def _check(args: argparse.Namespace) -> None:
    """Refuse (a usage error, exit 2) what ``serve`` must not start with."""
    try:
        args.host = bind_host(args.host)
    except ValueError as exc:
        args.parser.error(f"--host: {exc}")
    if not is_loopback(args.host) and not args.allow_remote:
        args.parser.error(
            f"refusing to bind {args.host}: it is not a loopback address (use --allow-remote)"
        )
    if args.lens_allow is not None and args.lens_secret_file is None:
        args.parser.error("--lens-allow needs --lens-secret-file")
    if args.lens_allow is not None and not all(args.lens_allow):
        args.parser.error("--lens-allow: a pattern is a flag key or a glob, not empty")


def _cannot_listen(exc: OSError, host: str) -> str | None:
    """Why the socket could not listen, said with the fix; None for an error it does not know."""
    if exc.errno == errno.EADDRINUSE:
        return (
            "the address is in use (pick another with --port, or --port 0 "
            "for a free one)"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address" + (
            " (it has no IPv6 loopback: use 127.0.0.1)"
            if is_loopback(host) and ":" in host
            else ""
        )
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges: try --port 0)"
    return None


def run(args: argparse.Namespace) -> int:
    """Serve ``args.file`` until Ctrl-C or SIGTERM: 0, or 2 with one line on stderr."""
    _check(args)
    lens_secret = None
    if args.lens_secret_file is not None:
        from aioflags._lens._cli import read_secret

        try:
            lens_secret = read_secret(args.lens_secret_file)
        except (OSError, ValueError) as exc:
            return fail(f"--lens-secret-file: {exc}", 2)
        # Each lens link the console makes is said on stderr (INFO; never
        # its token): who runs `serve` sees what was made with the secret.
        logging.getLogger("aioflags.lens").setLevel(logging.INFO)
    from aioflags._asgi._limits import Limits

    try:
        limits = Limits(**dict(args.limit))
    except ValueError as exc:  # (a bound that is no positive number)
        args.parser.error(f"--limit: {exc}")
    # (imported here: asyncio, anyio and socket are most of what the
    # command would take to start for --help)
    import asyncio
    import socket

    import anyio

    from aioflags._datasystem._sources._files import FlagFileError

    # `serve` is an application, and configures its own process: asyncio's
    # accept errors become one line per episode (a FlagServer in a user's
    # process filters nothing).
    from aioflags._service._hosting import filter_loop_noise

    from ._serving import serve

    _give_large_blocks_back()
    try:
        with filter_loop_noise():
            anyio.run(
                serve,
                args.file,
                args.host,
                args.port,
                lens_secret,
                limits,
                args.lens_allow,
            )
    except FlagFileError as exc:
        return fail(str(exc), 2)
    except ModuleNotFoundError as exc:
        return fail(str(exc), 2)
    except socket.gaierror as exc:  # (an OSError: before it)
        return fail(
            f"cannot listen on {args.host}: the name does not resolve to an "
            f"address ({exc.strerror or exc}); give an IP address or a name this "
            "machine resolves",
            2,
        )
    except OSError as exc:
        why = _cannot_listen(exc, args.host)
        if why is None:
            raise
        return fail(f"cannot listen on {literal_host(args.host)}:{args.port}: {why}", 2)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    except asyncio.CancelledError:
        # On Ctrl-C anyio's runner cancels the main task; without
        # Task.uncancel() (Python 3.10) it cannot tell that cancellation from
        # others and reports it instead of KeyboardInterrupt. Nothing else
        # cancels the main task.
        if hasattr(asyncio.Task, "uncancel"):
            raise
        print("stopped", flush=True)
    return 0


COMMAND = Command(
    name="serve",
    help="serve a flag file (JSON or YAML) on 127.0.0.1",
    description=_SERVE_DESCRIPTION,
    add_args=add_args,
    run=run,
    raw_description=True,
)
