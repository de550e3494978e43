"""What ``aioflags serve`` runs: the flag service of one file, its start lines, its reloader.

Its command (``_serve``) reads the arguments and says the errors; this
module, imported when it runs, holds the service (``FlagServer``) for the
file and applies each settled save of it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from aioflags._core._clock import MonotonicClock
from aioflags._datasystem._sources._watch import Failed, FlagFileWatcher, Held, Loaded
from aioflags._service._server import FlagServer

from ._where import config_line, console_url, listening

if TYPE_CHECKING:
    from pathlib import Path

    from aioflags._asgi._limits import Limits

_WATCH_INTERVAL = 0.25
#: ``serve`` keeps the last this many requests and event payloads (memory stays
#: bounded however long it runs; the console's log is bounded by itself).
SERVE_KEEP = 1000
#: ... and at most this many bytes of recorded request bodies (and as many of
#: event payloads): ten 8 MiB event posts keep it under 150 MB.
SERVE_KEEP_BYTES = 32 * 1024 * 1024


def _trouble(path: Path, message: str) -> tuple[str, int | None, str]:
    """A loader's one-line error as the console shows it: file, line, message.

    The loader writes ``PATH:LINE:COLUMN: problem`` where it knows the line,
    ``PATH: problem`` otherwise.
    """
    name = str(path)
    rest = message.removeprefix(name) if message.startswith(name) else message
    where, colon, problem = rest.partition(": ")
    numbers = where.lstrip(":").split(":")
    if colon and numbers[0].isdigit():
        return name, int(numbers[0]), problem
    return name, None, rest.removeprefix(": ")


async def serve(
    path: Path,
    host: str,
    port: int,
    lens_secret: bytes | None = None,
    limits: Limits | None = None,
    lens_allow: list[str] | None = None,
) -> None:
    """Serve ``path`` until cancelled, reloading it when it changes."""
    # Read once, by the reloader's own rule: an empty file is refused at
    # start as on a reload (a save being written).
    watcher = FlagFileWatcher((path,), MonotonicClock())
    first = watcher.load()
    async with FlagServer(
        first.flags,
        first.segments,
        host=host,
        port=port,
        keep=SERVE_KEEP,
        keep_bytes=SERVE_KEEP_BYTES,
        lens_secret=lens_secret,
        lens_allow=lens_allow,
        limits=limits,
    ) as server:
        print(f"aioflags flag service for {path} at {server.url}", flush=True)
        print(config_line(server.url), flush=True)
        console = console_url(server.url, host, server.address)
        if server.lens_key is not None:
            # (after "#": a fragment reaches no request, so no log; the page
            # keeps the key, and only a page that has it makes lens links)
            console = f"{console}#lens-key={server.lens_key}"
        print(f"Console: {console}", flush=True)
        if server.lens_key is not None:
            print(
                "  Share a lens signs with the lens secret: only a page opened at"
                " this address (with its #lens-key, new at each start) may use it",
                flush=True,
            )
        bound = listening(server.url, host, server.address)
        if bound is not None:
            print(bound, flush=True)
        await watch(path, server, watcher)


async def watch(
    path: Path,
    server: FlagServer,
    watcher: FlagFileWatcher,
    *,
    interval: float = _WATCH_INTERVAL,
) -> None:
    """``serve``'s reloader: apply each settled save of ``path`` to ``server``, forever.

    ``watcher`` made the server's first load (:meth:`FlagFileWatcher.load`).
    The rule of when a save applies is the file source's
    (:mod:`aioflags._datasystem._sources._watch`); a save that is refused,
    or held for dropping most flags, shows on the console's trouble alert
    and on stderr, and the last good data is served meanwhile. Checks wait
    on the watcher's clock (a fake one in tests).
    """
    while True:
        await watcher.clock.sleep(interval)
        outcome = await watcher.check()
        if isinstance(outcome, Failed):
            print(f"not reloaded: {outcome.message}", file=sys.stderr, flush=True)
            server.show_file_trouble(*_trouble(path, outcome.message))
        elif isinstance(outcome, Held):
            if outcome.warn:  # logged at WARNING
                server.show_file_trouble(*_trouble(path, outcome.message))
            else:  # a quiet wait: what was shown before is not the news now
                server.clear_file_trouble()
        elif isinstance(outcome, Loaded):
            try:
                server.replace_all(outcome.flags, outcome.segments)
            except Exception as exc:  # noqa: BLE001 - a save's fault refuses that save alone
                from aioflags._datasystem._sources._cause import cause_of

                message = f"{path}: cannot be served: {cause_of(exc)}"
                print(f"not reloaded: {message}", file=sys.stderr, flush=True)
                server.show_file_trouble(*_trouble(path, message))
                continue
            server.clear_file_trouble()
            print(
                f"reloaded {path}: {len(outcome.flags)} flags, "
                f"{len(outcome.segments)} segments",
                flush=True,
            )
