"""Flag coverage: which branches of each flag a test session's evaluations took.

The pytest plugin's ``--aioflags-coverage`` (no pytest import here). A
flag's *branches* are the ways an evaluation can end: ``off``; each
prerequisite that can fail (``prerequisite:<key>``); each variation its
individual targets serve (``target:<variation index>``); each rule
(``rule:<id>``, or ``rule:<index>`` for a rule with no id); the
fallthrough (``fallthrough``, or ``fallthrough:<variation index>`` for
each variation a rollout can serve). An evaluation's reason says which it
took.

A flagd flag's branches are flagd's reasons (docs/coverage.md): ``static``
for a flag with no targeting (its default variant, for everyone), or
``default`` where it has no default variant; with targeting, each variant
the targeting can name (``variant:<name>``) and, where it can name none,
``default`` (the default variant). A ``DISABLED`` flag has none (it serves
the code's default); an evaluation of one counts as ``disabled``.

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
#: A flagd flag's branch for each of flagd's reasons (but TARGETING_MATCH,
#: which is the variant's: ``variant:<name>``).
_FLAGD_BRANCHES: Final = {
    "STATIC": "static",
    "DEFAULT": "default",
    "DISABLED": "disabled",
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
    """The branches of ``flag`` (none for a deleted or malformed flag)."""
    if flag.deleted or flag.malformed is not None:
        return []
    if flag.variant_names is not None:
        return list(_flagd_branches(flag))
    branches = ["off"]
    branches += [f"prerequisite:{p.key}" for p in flag.prerequisites]
    targets = {
        result.variation_index
        for _, lookup in flag.targets
        for result in lookup.values()
        if result.variation_index is not None
    }
    branches += [f"target:{index}" for index in sorted(targets)]
    for index, (_, resolver) in enumerate(flag.rules):
        reason = resolver._served()[0].reason
        rule_id = reason.get("ruleId") if reason.get("kind") == "RULE_MATCH" else None
        branches.append(f"rule:{rule_id or index}")
    fallthrough = flag.fallthrough
    if fallthrough is None or fallthrough.fixed is not None:
        branches.append("fallthrough")
    else:
        indexes = dict.fromkeys(
            result.variation_index
            for result in fallthrough._served()
            if result.variation_index is not None
        )
        branches += [f"fallthrough:{index}" for index in indexes]
    return branches


def _flagd_branches(flag: CompiledFlag) -> dict[str, JSONValue]:
    """A flagd flag's branches, each with the value it serves (None: the caller's default)."""
    names = flag.variant_names or ()
    if not flag.on:
        return {}  # DISABLED: the code's own default, nothing of the flag's
    constant = flag.constant
    if constant is not None:
        kind = constant.reason.get("kind")
        index = constant.variation_index
        if kind == "TARGETING_MATCH" and index is not None:  # a rule that is a name
            return {f"variant:{names[index]}": constant.value}
        branch = _FLAGD_BRANCHES.get(str(kind))
        return {} if branch is None else {branch: constant.value}
    served = flag.targeting_serves
    if served is None:
        return {}
    indexes, none, default = served
    branches: dict[str, JSONValue] = {
        f"variant:{names[at]}": flag.variations[at] for at in indexes
    }
    if none:  # the default variant (or the caller's default: no value known)
        branches["default"] = None if default is None else flag.variations[default]
    return branches


def branch_taken(
    flag: CompiledFlag | None, detail: EvaluationDetail[Any]
) -> str | None:
    """The branch an evaluation of ``flag`` took, by its reason (None: an error).

    ``flag`` tells whether its fallthrough is a rollout (named by the
    variation served); None if the data at hand no longer holds it.
    """
    reason = detail.reason
    kind = reason.get("kind")
    if kind == "FALLTHROUGH":
        fallthrough = None if flag is None else flag.fallthrough
        if fallthrough is None or fallthrough.fixed is not None:
            return "fallthrough"
        return f"fallthrough:{detail.variation_index}"
    if kind == "RULE_MATCH":
        return f"rule:{reason.get('ruleId') or reason.get('ruleIndex')}"
    if kind == "OFF":
        return "off"
    if kind == "TARGET_MATCH":
        return f"target:{detail.variation_index}"
    if kind == "PREREQUISITE_FAILED":
        return f"prerequisite:{reason.get('prerequisiteKey')}"
    if kind == "TARGETING_MATCH":  # a flagd flag's targeting named a variant
        index = detail.variation_index
        names = None if flag is None else flag.variant_names
        if names is not None and index is not None and index < len(names):
            return f"variant:{names[index]}"
        return f"variant:#{index}"
    return _FLAGD_BRANCHES.get(str(kind))


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
        by_branch = (
            {b: _shown(v) for b, v in _flagd_branches(flag).items() if v is not None}
            if flag.variant_names is not None
            else {}
        )
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
                        # a branch not named by index: a flagd flag's
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
