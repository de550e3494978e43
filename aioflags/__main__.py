"""``python -m aioflags serve FILE``: a local flag service from a flag file.

Serves FDv2 (``/sdk/poll``, ``/sdk/stream``) and FDv1 (``/sdk/latest-all``,
``/all``) on 127.0.0.1, watches the file and pushes edits to connected clients,
and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from pathlib import Path

import anyio

from ._files import FlagFileError, load_flag_files
from ._sources._file import _stamp
from ._testserver import FlagServer

_WATCH_INTERVAL = 0.25


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(path: Path, host: str, port: int) -> None:
    """Serve ``path`` until cancelled, reloading it when it changes."""
    flags, segments = load_flag_files(path)
    async with FlagServer(flags, segments, host=host, port=port) as server:
        print(f"aioflags flag service for {path} at {server.url}", flush=True)
        print(
            f"  Config(sdk_key, base_uri={server.url!r}, stream_uri={server.url!r})",
            flush=True,
        )
        seen = _stamp((path,))
        while True:
            await anyio.sleep(_WATCH_INTERVAL)
            stamp = _stamp((path,))
            if stamp == seen:
                continue
            seen = stamp
            try:
                flags, segments = load_flag_files(path)
            except FlagFileError as exc:
                print(f"not reloaded: {exc}", file=sys.stderr, flush=True)
                continue
            server.replace_all(flags, segments)
            print(
                f"reloaded {path}: {len(flags)} flags, {len(segments)} segments",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m aioflags serve FILE [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(prog="python -m aioflags", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser(
        "serve", help="serve a flag file (JSON or YAML) on 127.0.0.1"
    )
    cmd.add_argument("file", type=Path)
    cmd.add_argument("--host", default="127.0.0.1")
    cmd.add_argument(
        "--port", type=int, default=8765, help="0 picks a free port (default 8765)"
    )
    cmd.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding an address other than loopback (the service has no authentication)",
    )
    args = parser.parse_args(argv)
    if not _is_loopback(args.host) and not args.allow_remote:
        parser.error(
            f"refusing to bind {args.host}: it is not a loopback address (use --allow-remote)"
        )
    try:
        anyio.run(serve, args.file, args.host, args.port)
    except FlagFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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


if __name__ == "__main__":
    sys.exit(main())
