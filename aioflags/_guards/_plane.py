"""A client's guards on a flag plane (issue 98): their counts up to the leader, its decisions down.

:class:`PlaneLink` is the plane's ``GuardLink``
(``aioflags._datasystem._plane._guardlink``) over a client's
:class:`~._scope.Guards`. A follower reports each guard's counts of the
flag version it watches (cumulative, per arm) and never decides; the
leader adds each follower's last report of the same version to its own
before it looks (:meth:`~._watch.Watch.total`), and its decisions (pinned,
alerted, released, per guard and version) are applied by every follower.
A follower that comes to lead carries on the decisions it applied: they
are its own watches' states.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final, final

from ._counts import Counts

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aioflags._core._json import JSONObject

    from ._watch import GuardRun, Watch

__all__ = ["PlaneLink"]

#: The most followers' reports a leader keeps (a worker that restarts is a
#: new member): past it, the one heard from least recently is dropped.
MAX_MEMBERS: Final = 1000
_DECIDED: Final = ("pinned", "alerted", "released")


def _counts(arms: object, size: int) -> list[Counts] | None:
    """A report's arms as :class:`Counts` (None: not ``size`` well-formed arms)."""
    if type(arms) is not list or len(arms) != size:
        return None
    made = []
    for arm in arms:
        if type(arm) is not list or len(arm) != 6 or type(arm[5]) is not dict:
            return None
        counts = Counts()
        numbers = arm[:5]
        if not all(
            type(n) in (int, float) and math.isfinite(n)  # (no bool: type is)
            for n in numbers
        ):
            return None
        counts.requests, counts.errors, counts.log_n = map(int, numbers[:3])
        counts.log_s, counts.log_q = float(numbers[3]), float(numbers[4])
        for name, sums in arm[5].items():
            if type(sums) is not list or len(sums) != 3:
                return None
            counts.metrics[name] = [float(x) for x in sums]
        made.append(counts)
    return made


@final
class PlaneLink:
    """What a flag plane asks of a client's guards (``GuardLink``), over its runs."""

    __slots__ = ("_reports", "_runs", "_told")

    def __init__(self, runs: Mapping[str, GuardRun]) -> None:
        """``runs``: the client's guards by name."""
        self._runs = runs
        #: Each follower's last report (leading), by member.
        self._reports: dict[str, JSONObject] = {}
        #: The leader's last decisions (following), applied as versions come.
        self._told: JSONObject = {}

    def role(self, role: str) -> None:
        """Only a leader or a process on its own decides; a follower counts."""
        follows = role == "follower"
        for run in self._runs.values():
            run.follows = follows
        if not follows:
            self._merge()

    def report(self) -> JSONObject | None:
        """Each guard's counts of the version it watches (and the last decisions applied)."""
        self._apply()  # (a version that came after the leader's decisions)
        report: dict[str, Any] = {}
        for name, run in self._runs.items():
            watch = run.current
            if watch is None:
                continue
            watch.fold(look=False)  # (the requests ended since its last look)
            report[name] = {
                "version": watch.version,
                "arms": [
                    [c.requests, c.errors, c.log_n, c.log_s, c.log_q, c.metrics]
                    for c in watch.counts
                ],
            }
        return report or None

    def reported(self, member: str, report: JSONObject) -> None:
        """A follower's latest report: it replaces its last one; the guards look."""
        self._reports.pop(member, None)
        self._reports[member] = report
        while len(self._reports) > MAX_MEMBERS:
            del self._reports[next(iter(self._reports))]
        self._merge()

    def decisions(self) -> JSONObject | None:
        """Each guard's decision for the version it watches (None: none decided)."""
        self._merge()
        decided: dict[str, Any] = {}
        for name, run in self._runs.items():
            watch = run.current
            if watch is None or watch.state not in _DECIDED:
                continue
            pinned = watch.pinned
            decided[name] = {
                "version": watch.version,
                "state": watch.state,
                "control": None if pinned is None else pinned.variation_index,
                "message": watch.message,
            }
        return decided or None

    def decided(self, decisions: JSONObject) -> None:
        """The leader's decisions: applied to the watches of the same versions."""
        self._told = decisions
        self._apply()

    def _apply(self) -> None:
        for name, said in self._told.items():
            run = self._runs.get(name)
            watch = None if run is None else run.current
            if watch is None or type(said) is not dict:
                continue
            if said.get("version") != watch.version:
                continue  # (another version: its own decisions)
            state = said.get("state")
            message = said.get("message")
            text = message if type(message) is str else f"Guard {name!r} {state}"
            if state == "released":
                if watch.state in ("pinned", "alerted"):
                    watch.release()
                else:
                    watch.released = True  # (it never decides again, as the leader)
            else:
                watch.adopt(str(state), said.get("control"), text)

    def _merge(self) -> None:
        """Each watch's followers' counts, from their last reports of its version; it looks."""
        for name, run in self._runs.items():
            watch = run.current
            if watch is None:
                continue
            others = {
                member: counts
                for member, report in self._reports.items()
                if (counts := _arms_of(report.get(name), watch)) is not None
            }
            if others or watch.others:
                watch.others = others
                watch.fold(look=False)  # (its own requests so far, then theirs)
                watch.look()


def _arms_of(said: object, watch: Watch) -> list[Counts] | None:
    """A report's counts of ``watch``'s version (None: of another, or not well formed)."""
    if type(said) is not dict or said.get("version") != watch.version:
        return None
    return _counts(said.get("arms"), len(watch.counts))
