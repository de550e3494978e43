"""Flag coverage: which branches of each flag a test session's evaluations took.

The pytest plugin's ``--aioflags-coverage`` (no pytest import here). A
flag's *branches* are the ways an evaluation can end: ``off``; each
prerequisite that can fail (``prerequisite:<key>``); each variation its
individual targets serve (``target:<variation index>``); each rule
(``rule:<id>``, or ``rule:<index>`` for a rule with no id); the
fallthrough (``fallthrough``, or ``fallthrough:<variation index>`` for
each variation a rollout can serve). An evaluation's reason says which it
took.

Each flag's system names its branches (``FlagSystem.branches``,
``branch_taken``): a flagd flag's are flagd's reasons (docs/coverage.md,
``aioflags/_systems/_flagd/_coverage.py``): ``static``, ``default``,
``variant:<name>``; an evaluation of a ``DISABLED`` one counts as
``disabled``.

:class:`FlagCoverage` learns the branches from the flags it is shown
(every version of a flag adds its branches to the ones known) and counts
evaluations against them; :class:`CoverageHook` is what every client
built during the session registers (``_client.PROCESS_HOOKS``): after each
evaluation it counts the branch taken, and shows the coverage the
client's data whenever that data changes, so the flags nothing evaluated
count too. The evaluation path itself is untouched.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final, TypedDict

from aioflags._client._client import _WarnOnUse
from aioflags._client._hooks import Hook, HookMetadata
from aioflags._evaluation._model import compile_flag
from aioflags._systems import registered

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from aioflags._client._client import Client
    from aioflags._client._hooks import EvaluationSeriesContext
    from aioflags._core._json import JSONValue
    from aioflags._evaluation._model import CompiledFlag
    from aioflags._evaluation._results import EvaluationDetail
    from aioflags._evaluation._snapshot import FlagSnapshot

__all__ = ["CoverageHook", "FlagCoverage", "Report"]

#: The longest value the report shows (longer ones are cut, with "…").
_VALUE_SHOWN: Final = 40
#: The order branches are listed in: by kind (their prefix), then as learned.
_RANK: Final = {
    "off": 0,
    "disabled": 0,
    "prerequisite": 1,
    "target": 2,
    "rule": 3,
    "variant": 3,
    "fallthrough": 4,
    "static": 4,
    "default": 4,
}


class _FlagCounts(TypedDict):
    branches: dict[str, int]
    covered: int
    total: int


class FlagReport(_FlagCounts, total=False):
    """One flag in the JSON report: evaluations per branch, and the counts.

    ``values`` (when the flag's variations are known): the value a
    ``target:<i>`` or ``fallthrough:<i>`` branch serves, as JSON text, by
    branch: people think in values, the branches are named by index.
    ``served`` (for the branches taken): the values their evaluations
    served, as compact JSON (never cut), with how many evaluations served
    each: the evidence ``aioflags cleanup --evidence`` reads.
    """

    values: dict[str, str]
    served: dict[str, dict[str, int]]


class _Totals(TypedDict):
    flags: dict[str, FlagReport]
    covered: int
    total: int
    percent: float


class Report(_Totals, total=False):
    """The JSON report (``--aioflags-coverage-json``).

    ``lost_workers`` (only when there are some): the pytest-xdist workers
    that went down without handing their counts over, each with why: the
    flags and evaluations they counted are missing from the figures (which
    may then be too low or too high). (A class of its own: 3.10 has no
    ``NotRequired``.)
    """

    lost_workers: dict[str, str]


def _rank(branch: str) -> int:
    return _RANK.get(branch.partition(":")[0], len(_RANK))


def branches_of(flag: CompiledFlag) -> list[str]:
    """The branches of ``flag``, as its system names them (none for a deleted or malformed flag)."""
    if flag.deleted or flag.malformed is not None:
        return []
    return list(flag.system.branches(flag))


def branch_taken(
    flag: CompiledFlag | None, detail: EvaluationDetail[Any]
) -> str | None:
    """The branch an evaluation of ``flag`` took, by its reason, as its system says (None: an error).

    ``flag`` tells whether its fallthrough is a rollout (named by the
    variation served); None if the data at hand no longer holds it: then
    the first system that knows the reason's kind names the branch.
    """
    reason, index = detail.reason, detail.variation_index
    if flag is not None:
        return flag.system.branch_taken(flag, reason, index)
    for system in registered():
        branch = system.branch_taken(None, reason, index)
        if branch is not None:
            return branch
    return None


class FlagCoverage:
    """The session's flags' branches, each with the number of evaluations that took it.

    Thread-safe: a blocking client's evaluations run on the caller's thread.
    """

    def __init__(self) -> None:
        #: flag key -> branch -> evaluations (0: known, never taken)
        self._flags: dict[str, dict[str, int]] = {}
        #: flag key -> its variations as JSON text (the last version learned)
        self._values: dict[str, tuple[str, ...]] = {}
        #: flag key -> branch -> value served (compact JSON) -> evaluations
        self._served: dict[str, dict[str, dict[str, int]]] = {}
        #: flag key -> branch named otherwise than by index (a flagd flag's)
        #: -> the value it serves, as JSON text
        self._branch_values: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    # -------------------------------------------------------------- learning
    def learn(self, flag: CompiledFlag) -> None:
        """Add ``flag``'s branches to those known for its key."""
        branches = branches_of(flag)
        if not branches:
            return
        values = tuple(_shown(v) for v in flag.variations)
        by_branch = {  # (the branches a value names, not an index: flagd's)
            b: _shown(v) for b, v in flag.system.branches(flag).items() if v is not None
        }
        with self._lock:
            self._values[flag.key] = values
            if by_branch:
                self._branch_values.setdefault(flag.key, {}).update(by_branch)
            known = self._flags.setdefault(flag.key, {})
            for branch in branches:
                known.setdefault(branch, 0)

    def learn_snapshot(self, snapshot: FlagSnapshot) -> None:
        """Learn every flag in ``snapshot``."""
        for key in snapshot.flag_keys:
            flag = snapshot._flag(key)
            if flag is not None:
                self.learn(flag)

    def learn_json(self, flags: Mapping[str, JSONValue]) -> None:
        """Learn flags given as LaunchDarkly's flag JSON, by key."""
        for key, raw in flags.items():
            self.learn(compile_flag(key, raw))

    def learn_files(self, paths: Iterable[str | Path]) -> None:
        """Learn the flags of flag files (JSON or YAML, as ``DataSystem.file`` reads them).

        Raises:
            FlagFileError: a file is missing or malformed.
        """
        from aioflags._datasystem._sources._files import load_flag_files

        flags, _ = load_flag_files(*paths)
        self.learn_json(dict(flags))

    # -------------------------------------------------------------- counting
    def count(
        self, key: str, flag: CompiledFlag | None, detail: EvaluationDetail[Any]
    ) -> None:
        """Count one evaluation of flag ``key`` that ended with ``detail``."""
        branch = branch_taken(flag, detail)
        if branch is None:
            return
        value = _compact(detail.value)
        with self._lock:
            known = self._flags.setdefault(key, {})
            known[branch] = known.get(branch, 0) + 1
            served = self._served.setdefault(key, {}).setdefault(branch, {})
            served[value] = served.get(value, 0) + 1

    def merge(self, report: Report) -> None:
        """Add another process's :meth:`report` (a pytest-xdist worker's) to this one."""
        with self._lock:
            for key, flag in report["flags"].items():
                for branch, text in flag.get("values", {}).items():
                    kind, _, index = branch.partition(":")
                    if kind not in ("target", "fallthrough") or not index.isdigit():
                        # a branch not named by index (a flagd flag's)
                        self._branch_values.setdefault(key, {})[branch] = text
                    else:
                        values = list(self._values.get(key, ()))
                        values += [""] * (int(index) + 1 - len(values))
                        values[int(index)] = values[int(index)] or text
                        self._values[key] = tuple(values)
                known = self._flags.setdefault(key, {})
                for branch, count in flag["branches"].items():
                    known[branch] = known.get(branch, 0) + count
                mine = self._served.setdefault(key, {})
                for branch, by_value in flag.get("served", {}).items():
                    counts = mine.setdefault(branch, {})
                    for text, count in by_value.items():
                        counts[text] = counts.get(text, 0) + count

    # ------------------------------------------------------------- reporting
    def report(self) -> Report:
        """The JSON report: per flag, evaluations per branch (and what each serves); the totals."""
        with self._lock:
            flags = {key: dict(branches) for key, branches in self._flags.items()}
            known_values = dict(self._values)
            branch_values = {k: dict(v) for k, v in self._branch_values.items()}
            served = {
                key: {branch: dict(values) for branch, values in by.items()}
                for key, by in self._served.items()
            }
        out: dict[str, FlagReport] = {}
        covered = total = 0
        for key in sorted(flags):
            branches = dict(sorted(flags[key].items(), key=lambda b: _rank(b[0])))
            n = sum(1 for count in branches.values() if count)
            out[key] = {"branches": branches, "covered": n, "total": len(branches)}
            values = _values_of(branches, known_values.get(key))
            values.update(
                (branch, text)
                for branch, text in branch_values.get(key, {}).items()
                if branch in branches
            )
            if values:
                out[key]["values"] = values
            if served.get(key):
                out[key]["served"] = {
                    branch: dict(sorted(served[key][branch].items()))
                    for branch in branches
                    if branch in served[key]
                }
            covered += n
            total += len(branches)
        percent = 100.0 if total == 0 else round(100.0 * covered / total, 2)
        return {"flags": out, "covered": covered, "total": total, "percent": percent}


def _compact(value: JSONValue) -> str:
    """A served value as ``served`` records it: compact JSON, whole."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _shown(value: JSONValue) -> str:
    """A variation's value as the report shows it (compact JSON, cut when long)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= _VALUE_SHOWN else text[: _VALUE_SHOWN - 1] + "…"


def _values_of(
    branches: Mapping[str, int], values: tuple[str, ...] | None
) -> dict[str, str]:
    """What each ``target:<i>`` and ``fallthrough:<i>`` branch serves, by branch."""
    if not values:
        return {}
    out = {}
    for branch in branches:
        kind, _, index = branch.partition(":")
        if kind in ("target", "fallthrough") and index.isdigit():
            at = int(index)
            if at < len(values) and values[at]:
                out[branch] = values[at]
    return out


def _named(branch: str, flag: FlagReport) -> str:
    """A branch as the summary names it: with the value it serves, if known."""
    value = flag.get("values", {}).get(branch)
    return branch if value is None else f"{branch} ({value})"


def summary_lines(report: Report) -> list[str]:
    """The terminal section: each flag with a branch not taken, the total, lost workers."""
    rows = [
        (
            key,
            f"{flag['covered']}/{flag['total']}",
            "missing: "
            + ", ".join(
                _named(b, flag) for b, count in flag["branches"].items() if not count
            ),
        )
        for key, flag in report["flags"].items()
        if flag["covered"] < flag["total"]
    ]
    total = (
        "TOTAL",
        f"{report['covered']}/{report['total']}",
        f"{report['percent']:g}%",
    )
    width = max(len(row[0]) for row in [*rows, total])
    counts = max(len(row[1]) for row in [*rows, total])
    lines = [f"{k:<{width}}  {n:>{counts}}  {rest}" for k, n, rest in [*rows, total]]
    lines += [
        f"WARNING: pytest-xdist worker {worker} went down ({why}): the flags "
        "and evaluations it counted are missing from the figures above"
        for worker, why in report.get("lost_workers", {}).items()
    ]
    return lines


class CoverageHook(Hook):
    """What each client built during the session registers: counts its evaluations.

    After each evaluation it counts the branch taken (by the reason), and,
    when the client's data has changed since its last evaluation, shows
    the coverage every flag of the new data. It holds the client weakly.
    """

    def __init__(self, coverage: FlagCoverage, client: Client) -> None:
        self._coverage = coverage
        self._client = weakref.ref(client)
        self._seen: FlagSnapshot | None = None

    @property
    def metadata(self) -> HookMetadata:
        """Named for log messages about it."""
        return HookMetadata(name="aioflags flag coverage")

    def after_evaluation(
        self,
        series_context: EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        """Count the branch this evaluation took."""
        key = series_context.key
        flag = None
        client = self._client()
        store = None if client is None else client._store
        if store is not None and not isinstance(store, _WarnOnUse):
            snapshot = store.snapshot
            if snapshot is not self._seen:
                self._seen = snapshot
                self._coverage.learn_snapshot(snapshot)
            flag = snapshot._flag(key)
        self._coverage.count(key, flag, detail)
        return data
