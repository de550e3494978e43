"""``aioflags plane PATH``: lead the flag plane at PATH for the workers of this host, with no app (a sidecar).

The flag service is the one the ``AIOFLAGS_*`` variables describe, or with
``FLAGD_RESOLVER=in-process`` the flagd sync server of the ``FLAGD_*`` ones.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from aioflags._core._exceptions import ConfigurationError

from ._command import Command, fail

if TYPE_CHECKING:
    import argparse


def add_args(parser: argparse.ArgumentParser) -> None:
    """``plane``'s arguments: the plane's socket path."""
    parser.add_argument(
        "path", help="the plane's Unix socket path, as the workers give it"
    )


def run(args: argparse.Namespace) -> int:
    """Lead (or follow) until SIGTERM or Ctrl-C: 0, or 2 when it cannot."""
    import anyio

    from aioflags._client._client import Client
    from aioflags._client._config import Config
    from aioflags._client._environment import data_system_from_env
    from aioflags._datasystem._config import DataSystem

    # The data system the workers' Config.from_env() reads: flagd's, with
    # FLAGD_RESOLVER; else the flag service of the SDK key.
    try:
        flagd = data_system_from_env(os.environ, plane=args.path)
        system = flagd if flagd is not None else DataSystem.default(plane=args.path)
        config = Config.from_env(data_system=system, send_events=False)
    except ConfigurationError as exc:
        args.parser.error(str(exc))
    stray = sorted(
        name
        for name, text in os.environ.items()
        if name.startswith("FLAGD_") and name != "FLAGD_RESOLVER" and text.strip()
    )
    unread = (
        f" ({', '.join(stray)} set, but not FLAGD_RESOLVER)"
        if flagd is None and stray
        else ""
    )
    if flagd is None and not config.sdk_key:
        return fail(
            "aioflags plane needs the SDK key (AIOFLAGS_SDK_KEY) to lead for"
            " the workers of one environment, or FLAGD_RESOLVER=in-process with"
            f" FLAGD_HOST and FLAGD_PORT (or FLAGD_SOCKET_PATH) for flagd{unread}",
            2,
        )
    if unread:
        print(
            f"warning: aioflags plane leads for the SDK key's environment{unread}:"
            " set FLAGD_RESOLVER=in-process to lead for flagd instead",
            file=sys.stderr,
        )
    from aioflags._datasystem._plane._lock import PlaneUnusable, check_usable

    try:
        check_usable(args.path)
    except PlaneUnusable as exc:
        return fail(str(exc), 2)
    # Its role changes are what it has to say.
    logging.getLogger("aioflags.datasource").setLevel(logging.INFO)

    async def lead() -> None:
        # (SIGTERM and Ctrl-C end it cleanly while it starts, too)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as group:

                async def stop() -> None:
                    async for _ in signals:
                        group.cancel_scope.cancel()
                        return

                group.start_soon(stop)
                async with Client(config):
                    await anyio.sleep_forever()

    anyio.run(lead)
    return 0


COMMAND = Command(
    name="plane",
    help="lead the flag plane at PATH for this host's workers (a sidecar)",
    description="Read the flag service that AIOFLAGS_* environment variables "
    "describe (see Config.from_env), or with FLAGD_RESOLVER=in-process the "
    "flagd sync server the FLAGD_* variables describe, and serve its data to "
    "the workers of this host that run DataSystem.default(plane=PATH), or "
    "DataSystem.flagd(..., plane=PATH) with the same source (docs/scaling.md). "
    "While another process leads, it follows, and leads when that one goes. "
    "SIGTERM or Ctrl-C hands over and exits 0. It sends no analytics events.",
    add_args=add_args,
    run=run,
)
