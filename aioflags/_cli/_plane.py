"""``aioflags plane PATH``: lead the flag plane at PATH for the workers of this host, with no app (a sidecar).

The flag service is the one the ``AIOFLAGS_*`` variables describe, or the
data system a flag system's own variables describe (its configuration's
``from_environment``: flagd's, with ``FLAGD_RESOLVER=in-process``, its sync
server), as the workers' ``Config.from_env()`` reads them.
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
    from aioflags._client._environment import data_system_from_env, refuse_unclaimed
    from aioflags._datasystem._config import DataSystem

    # The data system the workers' Config.from_env() reads: a flag system's,
    # from its variables (its source is what the plane names); else the
    # flag service of the SDK key.
    try:
        own = data_system_from_env(os.environ, plane=args.path)
        system = own if own is not None else DataSystem.default(plane=args.path)
        config = Config.from_env(data_system=system, send_events=False)
    except ConfigurationError as exc:
        args.parser.error(str(exc))
    unread = None  # a flag system's variables, set in vain: what they lack
    if own is None:
        try:
            refuse_unclaimed(os.environ)
        except ConfigurationError as exc:
            unread = str(exc)
    if own is None and not config.sdk_key:
        return fail(
            unread
            or "aioflags plane needs the SDK key (AIOFLAGS_SDK_KEY) to lead for"
            " the workers of one environment, or the variables of a flag"
            " system's data system (docs/configuration.md)",
            2,
        )
    if unread:
        print(
            "warning: aioflags plane leads for the SDK key's environment, and"
            f" {unread}",
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
    "describe (see Config.from_env), or the source a flag system's own "
    "variables describe (docs/configuration.md), and serve its data to "
    "the workers of this host that run DataSystem.default(plane=PATH), or "
    "that flag system's preset with plane=PATH and the same source "
    "(docs/scaling.md). "
    "While another process leads, it follows, and leads when that one goes. "
    "SIGTERM or Ctrl-C hands over and exits 0. It sends no analytics events.",
    add_args=add_args,
    run=run,
)
