"""One guard at run time: its watch of each flag version, its counts, its looks and decisions.

A :class:`GuardRun` is what a snapshot's matcher holds for the guarded
flag (``_evaluation._guarded.Guarded``); shown a flag version, it checks
it (the flag exists, ``control`` is one of its variations, it has a
randomized assignment) and gives the :class:`Watch` of that version: a
new version starts afresh (counts, pin, decision dropped). A request
scope records each request's outcome in its arm's :class:`Lane`
(``_scope``), folded into the arm's :class:`~._counts.Counts`, and on
the schedule of :func:`~._stats.next_look` (from 1,000 requests per arm,
then as the counts grow by an eighth) the watch looks: the sample ratio
first, then each metric, treatment against control, with alpha split
across them (``_stats``).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any, Final, Literal

from aioflags._evaluation._model import splits_of
from aioflags._evaluation._results import Reason, Result, own_cache

from . import _stats
from ._counts import Counts
from ._status import ArmStatus, GuardEvent, GuardStatus, MetricEvidence

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable, Mapping, Sequence

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._model import CompiledFlag

    from ._config import Guard, Metric

__all__ = ["FOLD_EVERY", "GuardRun", "Lane", "Watch", "record_joint"]

logger = logging.getLogger("aioflags.guards")

#: The most requests whose seconds wait in a watch's lanes between two
#: looks: then they are folded (summed), looks or not.
FOLD_EVERY: Final = 250


class Lane:
    """One arm of a watch, as a request scope notes it and its end records into it.

    What the guarded head notes in the scope (``_evaluation._guarded.Lane``)
    and what the scope's end appends to, without a computation or an
    allocation beyond the float: :attr:`ok` or :attr:`failed` takes the
    request's seconds, :attr:`metrics` its app metrics' sums (if any).
    :meth:`Watch.fold` takes them into the arm's counts.
    """

    __slots__ = ("arm", "failed", "metrics", "ok", "watch")

    def __init__(self, watch: Watch, arm: int) -> None:
        self.watch: Watch = watch
        self.arm: int = arm
        #: The ``log2`` of the seconds of the requests that ended since the
        #: last fold: those that succeeded, and those that failed.
        self.ok: list[float] = []
        self.failed: list[float] = []
        #: Their app metrics' sums, of the requests that sent some.
        self.metrics: list[Mapping[str, float]] = []


def _same(value: JSONValue, control: JSONValue) -> bool:
    """Whether a variation's value is ``control`` as JSON sees it (``True`` is not ``1``)."""
    if isinstance(value, bool) or isinstance(control, bool):
        return value is control
    return bool(value == control)


class _Split:
    """One randomized assignment's arms: their indexes, weights and control.

    ``known``: whether the weights are the assignment's (else each arm's
    is 1: the flag system computes them per request, and the sample ratio
    is not checked).
    """

    __slots__ = ("arms", "control", "known", "weights")

    def __init__(
        self,
        arms: tuple[int, ...],
        weights: tuple[float, ...],
        control: int | None,
        known: bool,
    ) -> None:
        self.arms = arms
        self.weights = weights
        self.control = control
        self.known = known


def _split_parts(
    flag: CompiledFlag,
) -> list[tuple[Sequence[Result], Sequence[float] | None]]:
    """The flag's randomized assignments (its system's ``splits``): results, weights (None: not known)."""
    return [(split.results, split.weights) for split in splits_of(flag)]


class Watch:
    """A guard's watch of one flag version: its arms' counts, its looks, its pin.

    What the guarded head reads (``_evaluation._guarded.Watch``):
    :attr:`pinned`, and :attr:`scope`, the client's request scope, whose
    ``arms`` an evaluation that served an arm writes to.
    """

    __slots__ = (
        "_folding",
        "arm_values",
        "arm_variations",
        "counts",
        "evidence",
        "guard",
        "joint",
        "lanes",
        "left",
        "looking",
        "message",
        "needed",
        "next_look",
        "others",
        "overflowed",
        "pinned",
        "ratios",
        "released",
        "scope",
        "seen",
        "split_of",
        "splits",
        "state",
        "treatments",
        "version",
    )

    def __init__(
        self,
        guard: GuardRun,
        version: int,
        splits: list[_Split],
        arm_variations: list[int],
        arm_values: list[JSONValue],
        split_of: list[int],
    ) -> None:
        self.guard: GuardRun = guard
        self.scope: contextvars.ContextVar[Any] = guard.var
        self.version: int = version
        self.splits: list[_Split] = splits
        self.arm_variations: list[int] = arm_variations
        self.arm_values: list[JSONValue] = arm_values
        self.split_of: list[int] = split_of
        # What each look tests, fixed for the version (worked out once here):
        #: Each (control, treatment) pair of arms to compare (a split whose
        #: weights give control nothing, or a treatment nothing, has none).
        self.treatments: list[tuple[int, int]] = [
            (split.control, arm)
            for split in splits
            if split.control is not None
            and (not split.known or split.weights[split.arms.index(split.control)] > 0)
            for arm, weight in zip(split.arms, split.weights, strict=True)
            if arm != split.control and weight > 0
        ]
        #: The sample-ratio checks: per split with known weights and a
        #: control, the arms it sends to, their weights, their shares.
        self.ratios: list[tuple[list[int], list[float], list[float]]] = []
        for split in splits:
            if split.control is None or not split.known:
                continue
            sent = [
                (arm, weight)
                for arm, weight in zip(split.arms, split.weights, strict=True)
                if weight > 0
            ]
            if len(sent) >= 2:
                weights = [weight for _, weight in sent]
                whole = math.fsum(weights)
                self.ratios.append(
                    ([arm for arm, _ in sent], weights, [w / whole for w in weights])
                )
        self.counts: list[Counts] = [Counts() for _ in arm_variations]
        #: On a flag plane's leader: each follower's counts of this version
        #: (by member), added to this process's own when it looks.
        self.others: dict[str, list[Counts]] = {}
        #: The requests this version shared with another guard's watch, by
        #: that guard: (its watch, requests by this arm then its arm).
        self.joint: dict[GuardRun, tuple[Watch, list[list[int]]]] = {}
        #: The pin's result (control, reason GUARDED), or None.
        self.pinned: Result | None = None
        #: Released for this version: it keeps counting and never decides again.
        self.released: bool = False
        self.seen: int = 0
        #: The requests (all arms) at which it looks next (``_stats.next_look``).
        self.next_look: int = _stats.next_look(0, len(arm_variations))
        #: Each arm's :class:`Lane`: a scope's end appends there, and
        #: counts down :attr:`left`; folded when it reaches 0, or when the
        #: status is read.
        self.lanes: list[Lane] = [Lane(self, arm) for arm in range(len(arm_variations))]
        #: The requests still to end before the next fold.
        self.left: int = min(self.next_look, FOLD_EVERY)
        self._folding = threading.Lock()
        self.state: str = "collecting"
        self.needed: int | None = None
        #: The last look's evidence: (metric, treatment's variation, the
        #: test's Evidence), made into MetricEvidence by :meth:`status` only.
        self.evidence: list[tuple[str, int, _stats.Evidence]] = []
        #: What the status says (a version with nothing to compare: from the start).
        self.message: str = "" if self.treatments else self._nothing_to_compare()
        #: The app metrics whose sums overflowed (said once, then not tested).
        self.overflowed: set[str] = set()
        #: Held while it looks or releases: two threads of a blocking client
        #: reaching a look at once make one decision (the other skips its
        #: look), and a release is not undone by a look under way. Reentrant:
        #: a handler told of the decision may release it.
        self.looking: threading.RLock = threading.RLock()

    # ------------------------------------------------------- the recording
    def fold(self, look: bool = True) -> None:
        """Fold the requests waiting in the lanes into the arms' counts; a look if one is due.

        A request scope's end only appends its seconds to its arm's
        :class:`Lane` (``_scope``): the logarithms and sums are taken here,
        once :attr:`left` counts down to 0, or when the status is read
        (``look`` false). A lock keeps two threads (a blocking client) from
        folding the same requests; one appended meanwhile waits for the next.
        """
        with self._folding:
            self.left = FOLD_EVERY  # (if this fold fails: the next in as many)
            for lane in self.lanes:
                counts = self.counts[lane.arm]
                for failed, waiting in ((False, lane.ok), (True, lane.failed)):
                    taken = len(waiting)
                    if taken:
                        logs = waiting[:taken]
                        del waiting[:taken]  # (appends meanwhile stay, for the next)
                        counts.add_requests(failed, logs)
                        self.seen += taken
                taken = len(lane.metrics)
                if taken:
                    sent = lane.metrics[:taken]
                    del lane.metrics[:taken]
                    counts.add_metrics(sent)
            due = self.seen >= self.next_look
            if due and look:
                self.next_look = _stats.next_look(self.seen, len(self.counts))
            self.left = max(1, min(self.next_look - self.seen, FOLD_EVERY))
        if due and look:
            self.look()

    def total(self, arm: int) -> Counts:
        """Arm ``arm``'s counts: this process's, and its followers' on a plane."""
        own = self.counts[arm]
        if not self.others:
            return own
        summed = Counts()
        summed.add(own)
        for counts in self.others.values():
            summed.add(counts[arm])
        return summed

    # -------------------------------------------------------- the deciding
    def look(self) -> None:
        """Test the counts: sample ratio first, then each metric; decide if strong.

        A follower on a flag plane never decides: its leader does. A look
        already under way on another thread: this one is skipped (the next
        comes on the schedule, :attr:`next_look`).
        """
        looking = self.looking
        if not looking.acquire(blocking=False):
            return
        try:
            self._look()
        finally:
            looking.release()

    def _look(self) -> None:
        if self.released or self.state in ("alerted", "pinned") or self.guard.follows:
            return
        config = self.guard.config
        treatments = self.treatments
        for arms, weights, shares in self.ratios:
            # (the sample-ratio test takes the arms the rollout sends to)
            counts = [self.total(arm).requests for arm in arms]
            ratio = _stats.ratio(counts, shares, config.alpha)
            if ratio.decided:
                if self.state != "sample ratio off":
                    self.message = (
                        f"Guard {config.name!r}: flag {config.flag!r} version"
                        f" {self.version}: the arms' requests {counts} are off the"
                        f" rollout's weights {weights} (e-value"
                        f" {ratio.value:.3g}): it decides nothing until they agree"
                    )
                    logger.warning("%s", self.message)
                self.state = "sample ratio off"
                return
        if not treatments:  # (no treatment beside control: nothing to compare)
            self.state = "collecting"
            self.needed = None
            self.message = self._nothing_to_compare()
            return
        each = _stats.split_alpha(config.alpha, len(config.metrics) * len(treatments))
        seen: list[tuple[str, int, _stats.Evidence]] = []
        needed = 0
        for control, arm in treatments:
            for metric in config.metrics:
                evidence = self._test(metric, control, arm, each)
                seen.append((metric.name, self.arm_variations[arm], evidence))
                if evidence.decided:
                    self.evidence = seen
                    other = _confounded(self, control, arm, config.alpha)
                    if other is not None:
                        self._cannot_tell(other, metric)
                        return
                    self._decide(metric, control, arm, evidence.value, each)
                    return
                needed = max(needed, evidence.needed)
        self.evidence = seen
        self.state = "collecting"
        self.needed = needed

    def _nothing_to_compare(self) -> str:
        config = self.guard.config
        return (
            f"Guard {config.name!r}: flag {config.flag!r} version"
            f" {self.version}: its rollout sends no requests to both control"
            f" ({config.control!r}) and another variation: nothing to compare,"
            " it decides nothing (a weight of 0, or one variation at 100 %)"
        )

    def _cannot_tell(self, other: str, metric: Metric) -> None:
        if self.state != "cannot tell":
            config = self.guard.config
            self.message = (
                f"Guard {config.name!r}: flag {config.flag!r} version"
                f" {self.version}, metric {metric.name!r}: cannot tell from"
                f" {other!r}: their rollouts put the same requests in the same"
                " arms (the same seed or bucketBy), so the harm may be either"
                " flag's; it decides nothing (bucket them independently, or"
                " roll one out at a time)"
            )
            logger.warning("%s", self.message)
        self.state = "cannot tell"

    def _test(
        self, metric: Metric, control: int, arm: int, alpha: float
    ) -> _stats.Evidence:
        c, t = self.total(control), self.total(arm)
        # (the unchecked tests: these counts are the watch's own, valid by making)
        if metric.name == "errors":
            return _stats.rates(c.requests, c.errors, t.requests, t.errors, alpha)
        if metric.name == "latency":
            return _stats.means(
                c.log_n, c.log_s, c.log_q, t.log_n, t.log_s, t.log_q, alpha
            )
        n_c, s_c, q_c = c.metric(metric.name)
        n_t, s_t, q_t = t.metric(metric.name)
        if not math.isfinite(s_c + q_c + s_t + q_t):
            # Finite values whose sums overflow (1e200 squared): not tested,
            # said once per version; the other metrics go on.
            if metric.name not in self.overflowed:
                self.overflowed.add(metric.name)
                logger.warning(
                    "Guard %r: metric %r: its values are too large to sum"
                    " (their squares overflow a float): it is not tested for flag %r version %s"
                    " (send it in smaller units)",
                    self.guard.config.name,
                    metric.name,
                    self.guard.config.flag,
                    self.version,
                )
            return _stats.Evidence(value=1.0, decided=False, needed=0)
        return _stats.means(
            n_c, s_c, q_c, n_t, s_t, q_t, alpha, higher=metric.worse == "higher"
        )

    def _figures(self, metric: Metric, arm: int) -> str:
        counts = self.total(arm)
        if metric.name == "errors":
            rate = counts.errors / counts.requests if counts.requests else 0.0
            return f"{counts.errors}/{counts.requests} errors ({rate:.2%})"
        if metric.name == "latency":
            mean = math.exp(counts.log_s / counts.log_n) if counts.log_n else 0.0
            return f"{counts.log_n} requests, latency {mean * 1000:.1f} ms (geometric mean)"
        n, s, _ = counts.metric(metric.name)
        return f"{n} requests sent {metric.name}, mean {s / n if n else 0.0:.4g}"

    def _decide(
        self, metric: Metric, control: int, arm: int, value: float, alpha: float
    ) -> None:
        config = self.guard.config
        pin = config.action == "pin"
        self.message = (
            f"Guard {config.name!r} {'pinned' if pin else 'alerted'}: flag"
            f" {config.flag!r} version {self.version}, metric {metric.name!r}:"
            f" variation {self.arm_values[arm]!r}"
            f" {self._figures(metric, arm)} against control"
            f" {self.arm_values[control]!r} {self._figures(metric, control)};"
            f" e-value {value:.3g} (>= 1/alpha, alpha {alpha:.3g})"
            + (
                f"; serving control until the flag's version changes or"
                f" client.guards.release({config.name!r})"
                if pin
                else ""
            )
        )
        logger.warning("%s", self.message)
        self.needed = 0
        if pin:
            self.pinned = Result(  # (made once: one decision per version)
                self.arm_values[control],
                self.arm_variations[control],
                Reason({"kind": "GUARDED", "guard": config.name}),
                False,
                own_cache(),
            )
            self.state = "pinned"
        else:
            self.state = "alerted"
        self.guard.tell("pinned" if pin else "alerted", self, metric.name, self.message)

    def adopt(self, kind: str, variation: object, message: str) -> None:
        """The plane's leader decided ``kind`` ("pinned", "alerted") for this version: so here.

        ``variation``: the control's variation index it pins; ``message``:
        the leader's. Told as a decision of this process's (status,
        events); logged at INFO (the leader logged the WARNING).
        """
        if self.released or self.state in ("alerted", "pinned"):
            return
        if kind == "pinned":
            if variation not in self.arm_variations:
                return  # (not one of this version's arms: nothing to pin)
            arm = self.arm_variations.index(variation)
            self.pinned = Result(
                self.arm_values[arm],
                self.arm_variations[arm],
                Reason({"kind": "GUARDED", "guard": self.guard.config.name}),
                False,
                own_cache(),
            )
            decided: Literal["alerted", "pinned"] = "pinned"
        elif kind == "alerted":
            decided = "alerted"
        else:
            return
        self.state = decided
        self.needed = 0
        self.message = message
        logger.info("%s (the flag plane's leader decided)", message)
        self.guard.tell(decided, self, None, message)

    def release(self) -> bool:
        """Drop the pin (or the alert) of this version; it keeps counting, never decides again."""
        with self.looking:
            return self._release()

    def _release(self) -> bool:
        if self.released:
            return False
        self.released = True
        self.pinned = None
        self.state = "released"
        self.message = (
            f"Guard {self.guard.config.name!r} released: flag"
            f" {self.guard.config.flag!r} version {self.version} serves its"
            " rollout again; the guard does not decide again for this version"
        )
        logger.info("%s", self.message)
        self.guard.tell("released", self, None, self.message)
        return True

    def status(self) -> GuardStatus:
        """What ``client.guards.status`` says of it (the requests ended so far folded in)."""
        self.fold(look=False)
        return _status_of(self)


def _status_of(watch: Watch) -> GuardStatus:
    """What ``client.guards.status`` says of a watch (as folded)."""
    config = watch.guard.config
    arms = []
    requests = []
    for arm in range(len(watch.counts)):
        counts = watch.total(arm)
        requests.append(counts.requests)
        split = watch.splits[watch.split_of[arm]]
        arms.append(
            ArmStatus(
                variation=watch.arm_variations[arm],
                value=watch.arm_values[arm],
                control=split.control == arm,
                split=watch.split_of[arm],
                requests=counts.requests,
                errors=counts.errors,
                error_rate=(
                    counts.errors / counts.requests if counts.requests else None
                ),
                latency=(
                    math.exp(counts.log_s / counts.log_n) if counts.log_n else None
                ),
                metrics={  # (a copy: a thread may be adding a metric)
                    name: s / n
                    for name, (n, s, _) in tuple(counts.metrics.items())
                    if n
                },
            )
        )
    needed = watch.needed
    if needed is None and watch.treatments:  # (no look yet: none before the floor)
        needed = max(
            0,
            _stats.MIN_PER_ARM
            - min(min(requests[c], requests[t]) for c, t in watch.treatments),
        )
    return GuardStatus(
        name=config.name,
        flag=config.flag,
        version=watch.version,
        state=watch.state,
        needed=needed,
        arms=tuple(arms),
        evidence=tuple(
            MetricEvidence(
                metric=name,
                variation=variation,
                value=evidence.value,
                decided=evidence.decided,
                needed=evidence.needed,
            )
            for name, variation, evidence in watch.evidence
        ),
        message=watch.message,
    )


def record_joint(arms: Mapping[Watch, int]) -> None:
    """One request that two guarded flags or more served: each pair's arms counted together."""
    for watch, arm in arms.items():
        joint = watch.joint
        for other, at in arms.items():
            if other is watch:
                continue
            kept = joint.get(other.guard)
            if kept is None or kept[0] is not other:  # (new, or a new version)
                table = [[0] * len(other.counts) for _ in watch.counts]
                joint[other.guard] = (other, table)
            else:
                table = kept[1]
            table[arm][at] += 1


def _confounded(watch: Watch, control: int, arm: int, alpha: float) -> str | None:
    """The guard whose arms coincide with ``watch``'s treatment ``arm``'s beyond chance, or None.

    Two guarded flags that share requests, bucketed independently (other
    keys or salts), spread each other's requests evenly over their arms:
    a fault in one shows in its own test only. Bucketed alike (the same
    rollout seed, ``bucketBy``), a treatment's requests are the other
    flag's treatment's too, and neither test can tell whose variation did
    the harm. That shows in the shared requests: the share of each of the
    other's arms among this treatment's requests differs from its share
    among control's (two-sided, ``alpha`` split over the other's arms).
    """
    # (a copy: another thread of a blocking client may add a guard to it)
    for run, (other, table) in tuple(watch.joint.items()):
        if other is not run.current:
            continue  # (its version changed: those requests are not its now)
        mine, theirs = table[arm], table[control]
        n_t, n_c = sum(mine), sum(theirs)
        each = _stats.split_alpha(alpha, 2 * len(other.counts))
        strong = 1.0 / each  # (no low-traffic floor: refusing is the safe side)
        for at in range(len(other.counts)):
            x_t, x_c = mine[at], theirs[at]
            if (
                _stats.rate_evidence(n_c, x_c, n_t, x_t, each).value >= strong
                or _stats.rate_evidence(n_t, x_t, n_c, x_c, each).value >= strong
            ):
                return run.config.name
    return None


class GuardRun:
    """One configured guard at run time: what the matcher holds for its flag.

    Shown a flag (:meth:`watch`), it checks the version once and keeps its
    :class:`Watch` until the version changes.
    """

    __slots__ = (
        "_checked",
        "_lock",
        "_made",
        "config",
        "current",
        "follows",
        "problem",
        "tell_guards",
        "var",
    )

    def __init__(
        self,
        config: Guard,
        var: contextvars.ContextVar[Any],
        tell: Callable[[GuardEvent], None],
    ) -> None:
        self.config: Guard = config
        #: The client's request scope (its ``ContextVar``, of a ``_scope.Scope``:
        #: typed Any, as ``_scope`` imports this module).
        self.var: contextvars.ContextVar[Any] = var
        self.tell_guards: Callable[[GuardEvent], None] = tell
        #: The watch of the current version (None: none to watch).
        self.current: Watch | None = None
        #: This process follows a flag plane's leader: it counts, never decides.
        self.follows: bool = False
        #: What is wrong with the version seen last ("" if nothing), and
        #: the state it puts the guard in (said once per version).
        self.problem: tuple[str, str] | None = None
        #: The last version checked (None: no data yet; -1: the flag missing).
        self._checked: int | None = None
        #: The last flag object shown and what it gave.
        self._made: tuple[object, tuple[Watch, dict[int, Lane]] | None] = (None, None)
        #: Held while a flag object is checked (once per flag per snapshot,
        #: never per evaluation): two threads of a blocking client making
        #: the same head at once share one watch of the version.
        self._lock = threading.Lock()

    def watch(
        self, flag: CompiledFlag | None
    ) -> tuple[Watch, Mapping[int, Lane]] | None:
        """The watch of ``flag``'s version and its arms' lanes by result id (None: nothing to watch)."""
        made = self._made
        if made[0] is flag and flag is not None:
            return made[1]
        with self._lock:
            made = self._made  # (another thread may have checked it meanwhile)
            if made[0] is flag and flag is not None:
                return made[1]
            try:
                found = self._watch_of(flag)
            except Exception:  # a bug here never reaches an evaluation or the data
                logger.exception(
                    "Guard %r failed to read flag %r: it decides nothing",
                    self.config.name,
                    self.config.flag,
                )
                found = None
            self._made = (flag, found)
        return found

    def _refuse(self, version: int, state: str, message: str, level: int) -> None:
        if self._checked != version:
            logger.log(level, "%s", message)
        self._checked = version
        self.current = None
        self.problem = (state, message)

    def _watch_of(
        self, flag: CompiledFlag | None
    ) -> tuple[Watch, dict[int, Lane]] | None:
        config = self.config
        what = f"Guard {config.name!r}"
        if flag is None:
            self._refuse(
                -1,
                "misconfigured",
                f"{what}: Guard.flag {config.flag!r} is not a flag of this data:"
                " the guard decides nothing (fix the key, or add the flag)",
                logging.ERROR,
            )
            return None
        variations = flag.variations
        # (a variation's value may be control's twice: either is control)
        controls = {
            i for i, value in enumerate(variations) if _same(value, config.control)
        }
        control = min(controls, default=None)
        if control is None:
            self._refuse(
                flag.version,
                "misconfigured",
                f"{what}: Guard.control {config.control!r} is not one of flag"
                f" {config.flag!r}'s variations {list(variations)!r} (version"
                f" {flag.version}): the guard decides nothing",
                logging.ERROR,
            )
            return None
        parts = _split_parts(flag)
        current = self.current
        if current is not None and current.version != flag.version:
            current = None  # a new version: afresh
        splits: list[_Split] = []
        arms: dict[int, int] = {}
        arm_variations: list[int] = []
        arm_values: list[JSONValue] = []
        split_of: list[int] = []
        for results, weights in parts:
            by_variation: dict[int, int] = {}
            split_arms: list[int] = []
            split_weights: list[float] = []
            known = weights is not None
            shares = weights if weights is not None else [1.0] * len(results)
            for result, weight in zip(results, shares, strict=True):
                index = result.variation_index
                if index is None:
                    continue
                key = control if index in controls else index
                arm = by_variation.get(key)
                if arm is None:
                    arm = by_variation[key] = len(arm_variations)
                    arm_variations.append(index)
                    arm_values.append(variations[index])
                    split_of.append(len(splits))
                    split_arms.append(arm)
                    split_weights.append(0.0)
                at = split_arms.index(arm)
                split_weights[at] = split_weights[at] + weight if known else 1.0
                arms[id(result)] = arm
            splits.append(
                _Split(
                    tuple(split_arms),
                    tuple(split_weights),
                    by_variation.get(control),
                    known,
                )
            )
        if not arms:
            self._refuse(
                flag.version,
                "no rollout",
                f"{what}: flag {config.flag!r} (version {flag.version}) has no"
                " percentage rollout: only a randomized assignment counts, so the"
                " guard decides nothing (give the flag a rollout)",
                logging.WARNING,
            )
            return None
        if current is None:
            current = Watch(
                self, flag.version, splits, arm_variations, arm_values, split_of
            )
            self.current = current
            self._checked = flag.version
            self.problem = None
        lanes = current.lanes
        return current, {key: lanes[arm] for key, arm in arms.items()}

    def tell(
        self,
        kind: Literal["alerted", "pinned", "released"],
        watch: Watch,
        metric: str | None,
        message: str,
    ) -> None:
        """A decision or a release: the client's guards hand it to handlers and iterators."""
        self.tell_guards(
            GuardEvent(
                kind=kind,
                name=self.config.name,
                flag=self.config.flag,
                version=watch.version,
                metric=metric,
                message=message,
                status=watch.status(),
            )
        )

    def status(self) -> GuardStatus:
        """This guard's status now."""
        config = self.config
        current = self.current
        if current is not None:
            return current.status()
        if self.problem is not None:
            state, message = self.problem
            version = self._checked if self._checked not in (None, -1) else None
            return GuardStatus(
                name=config.name,
                flag=config.flag,
                version=version,
                state=state,
                message=message,
            )
        return GuardStatus(
            name=config.name, flag=config.flag, version=None, state="waiting for data"
        )
