"""A worker process of the plane's guard tests (tests/test_plane_guards.py).

    python -m tests.plane_guard_worker PLANE URL

A client on the plane (as ``tests.plane_worker serve``) with a fake guard
link that says what the plane does with it, a line each:
``role ROLE``; ``reported PID`` (leading: a follower's report, which
names its process); ``decided BY CARRIED`` (following: the leader's
decisions, by the leader's process id, carrying the pid of the leader it
followed before, or ``None``). Its report is its process id; leading, it
decides ``{"by": its pid, "carried": the last leader's pid it was told}``
(as a real leader carries on the pins it was told). SIGTERM closes it.
"""

from __future__ import annotations

import functools
import os
import signal
import sys

import anyio

import aioflags
from tests.plane_worker import USER, _config, say

PID = os.getpid()


class PrintingLink:
    """A guard link that prints what the plane does with it."""

    def __init__(self) -> None:
        self.leading = False
        self.last: object = None  # the pid of the leader whose decisions it applied

    def role(self, role: str) -> None:
        self.leading = role == "leader"
        say(f"role {role}")

    def report(self) -> dict[str, object]:
        return {"pid": PID}

    def reported(self, member: str, report: dict[str, object]) -> None:
        say(f"reported {report.get('pid')}")

    def decisions(self) -> dict[str, object] | None:
        return {"by": PID, "carried": self.last} if self.leading else None

    def decided(self, decisions: dict[str, object]) -> None:
        self.last = decisions.get("by")
        say(f"decided {decisions.get('by')} {decisions.get('carried')}")


async def serve(plane: str, url: str) -> None:
    client = aioflags.Client(_config(plane, url))
    client._life.guard_link = PrintingLink()
    async with client:
        await client.variation("f", USER, "default")
        say("ready")
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                return


if __name__ == "__main__":
    anyio.run(functools.partial(serve, *sys.argv[1:3]))
