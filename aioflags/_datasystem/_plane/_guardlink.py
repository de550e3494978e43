"""What the plane carries for guards (issue 98): the workers' counts up, the leader's decisions down.

:class:`GuardLink` is all the plane asks of a process's guards
(``aioflags._guards`` implements it; the client hands it to the data
system beside it, see :class:`~aioflags._datasystem._supervisor.Supervisor`).
The plane reads and writes only opaque JSON objects: a follower sends its
guards' cumulative counts to the leader (:func:`send_reports`), as a
member id of its own so that a reconnect, or a report to a new leader,
replaces what it sent before and never adds to it; the leader hands each
follower's latest report to its guards, and sends what they decided to
every follower (:mod:`._leader`). :class:`SafeLink` calls the link so
that a fault in it is logged once and never ends the plane.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Final, Protocol, final

from aioflags._core._logname import client_logger

from . import _wire as wire

if TYPE_CHECKING:
    from collections.abc import Callable

    from aioflags._core._clock import Clock
    from aioflags._core._json import JSONObject

    from ._follower import Following

__all__ = ["REPORT_SECONDS", "GuardLink", "SafeLink", "member_id", "send_reports"]

logger = client_logger("aioflags.datasource")

#: How often a follower sends its guards' counts, when they changed.
REPORT_SECONDS: Final = 1.0


class GuardLink(Protocol):
    """What the plane asks of a process's guards (None where there are none).

    Every method is called on the event loop and must not block. Reports
    are cumulative: a report replaces the same member's last one.
    """

    def role(self, role: str) -> None:
        """This process's place: ``"solo"``, ``"leader"`` or ``"follower"`` (a leader or a solo process decides)."""

    def report(self) -> JSONObject | None:
        """This process's own cumulative counts (None: nothing to send)."""

    def reported(self, member: str, report: JSONObject) -> None:
        """Leader: a follower's latest report (it replaces that member's last one)."""

    def decisions(self) -> JSONObject | None:
        """Leader: what every follower must apply (pins), or None (nothing to send)."""

    def decided(self, decisions: JSONObject) -> None:
        """Follower: the leader's decisions, to apply."""


def member_id() -> str:
    """A new member id: this process's, unique to one run of a client.

    A worker that restarts is a new member: the leader keeps counting what
    the one before it reported, and adds the new one's.
    """
    return f"{os.getpid()}-{os.urandom(8).hex()}"


@final
class SafeLink:
    """Calls a :class:`GuardLink` for the plane: a fault in it is logged once and ignored.

    A fault is the link raising, or giving what JSON cannot say, or a
    line longer than :data:`._wire.MAX_GUARD_LINE` (either way). ``member``: this
    process's member id (:func:`member_id`).
    """

    __slots__ = ("_link", "_said", "member")

    def __init__(self, link: GuardLink, member: str) -> None:
        self._link = link
        self.member = member
        self._said = False

    def role(self, role: str | None) -> None:
        """Tell the link this process's role (None, off the plane: ``"solo"``)."""
        self._call(self._link.role, "solo" if role is None else role)

    def reported(self, member: str, counts: JSONObject) -> None:
        """Hand the link a follower's report."""
        self._call(self._link.reported, member, counts)

    def decided(self, decisions: JSONObject) -> None:
        """Hand the link the leader's decisions."""
        self._call(self._link.decided, decisions)

    def report_line(self) -> bytes | None:
        """This process's report as a wire line (None: nothing to send, or a fault)."""
        try:
            counts = self._link.report()
            if counts is None:
                return None
            line = wire.guard_report(self.member, counts)
        except Exception:  # noqa: BLE001 - said once, with the traceback
            self._fault("report()")
            return None
        return self._bounded(line, "report()")

    def decisions_line(self) -> bytes | None:
        """The link's decisions as a wire line (None: nothing to send, or a fault)."""
        try:
            decisions = self._link.decisions()
            if decisions is None:
                return None
            line = wire.guard_decisions(decisions)
        except Exception:  # noqa: BLE001 - said once, with the traceback
            self._fault("decisions()")
            return None
        return self._bounded(line, "decisions()")

    def _bounded(self, line: bytes, what: str) -> bytes | None:
        """``line``, unless it is over the wire's bound for a guard's line (said)."""
        if len(line) <= wire.MAX_GUARD_LINE:
            return line
        self._say(
            f"{what} gave {len(line)} bytes, over the plane's"
            f" {wire.MAX_GUARD_LINE} a line: not sent",
            trace=False,
        )
        return None

    def _call(self, method: Callable[..., object], *args: object) -> None:
        try:
            method(*args)
        except Exception:  # noqa: BLE001 - said once, with the traceback
            self._fault(f"{getattr(method, '__name__', 'a method')}()")

    def _fault(self, what: str) -> None:
        """Inside an ``except``: the link failed (said once, with the traceback)."""
        self._say(f"{what} raised", trace=True)

    def _say(self, what: str, *, trace: bool) -> None:
        if self._said:
            return
        self._said = True
        logger.error(
            "The guards' link to the flag plane failed: %s. The plane goes on"
            " (this is said once)",
            what,
            exc_info=trace,
        )


async def send_reports(link: SafeLink, following: Following, clock: Clock) -> None:
    """Send a follower's counts to its leader: once it answers, then when they change.

    Checked every :data:`REPORT_SECONDS`; ends when the leader goes (the
    follower's reading ends it too).
    """
    await following.answered.wait()
    send = following.send
    if send is None:  # pragma: no cover - (set before answered)
        return
    last: bytes | None = None
    with contextlib.suppress(*wire.GONE):
        while True:
            line = link.report_line()
            if line is not None and line != last:
                await send(line)
                last = line
            await clock.sleep(REPORT_SECONDS)
