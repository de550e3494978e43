"""What ``client.guards`` tells: each guard's status and the events of its decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, final

from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

__all__ = ["STATES", "ArmStatus", "GuardEvent", "GuardStatus", "MetricEvidence"]

#: A guard's states, as :attr:`GuardStatus.state` says them.
STATES: Final = (
    "waiting for data",
    "misconfigured",
    "no rollout",
    "collecting",
    "sample ratio off",
    "cannot tell",
    "alerted",
    "pinned",
    "released",
)


@final
class ArmStatus(Frozen):
    """One arm of a guarded rollout: a variation a randomized assignment served.

    Attributes:
        variation: the variation's index.
        value: its value.
        control: whether it is the guard's ``control``.
        split: which randomized assignment (0: the first the flag has).
        requests: requests counted in it.
        errors: those that raised or answered 5xx.
        error_rate: ``errors / requests`` (None: no request yet).
        latency: the geometric mean of its requests' durations, in
            seconds (None: none yet).
        metrics: each app metric's mean per request that sent it.

    Added in version 0.2.0.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "variation",
        "value",
        "control",
        "split",
        "requests",
        "errors",
        "error_rate",
        "latency",
        "metrics",
    )
    variation: int
    value: JSONValue
    control: bool
    split: int
    requests: int
    errors: int
    error_rate: float | None
    latency: float | None
    metrics: dict[str, float]

    def __init__(
        self,
        *,
        variation: int,
        value: JSONValue,
        control: bool,
        split: int,
        requests: int,
        errors: int,
        error_rate: float | None,
        latency: float | None,
        metrics: dict[str, float],
    ) -> None:
        set_field(self, "variation", variation)
        set_field(self, "value", value)
        set_field(self, "control", control)
        set_field(self, "split", split)
        set_field(self, "requests", requests)
        set_field(self, "errors", errors)
        set_field(self, "error_rate", error_rate)
        set_field(self, "latency", latency)
        set_field(self, "metrics", metrics)


@final
class MetricEvidence(Frozen):
    """The last look's evidence on one metric for one treatment against control.

    Attributes:
        metric: the metric's name.
        variation: the treatment's variation index.
        value: the test's evidence (its statistic; larger is stronger).
        decided: whether it was strong enough to decide.
        needed: requests per arm still needed before it could (0: enough).

    Added in version 0.2.0.
    """

    __slots__ = ("metric", "variation", "value", "decided", "needed")  # noqa: RUF023 - fields in order
    metric: str
    variation: int
    value: float
    decided: bool
    needed: int

    def __init__(
        self, *, metric: str, variation: int, value: float, decided: bool, needed: int
    ) -> None:
        set_field(self, "metric", metric)
        set_field(self, "variation", variation)
        set_field(self, "value", value)
        set_field(self, "decided", decided)
        set_field(self, "needed", needed)


@final
class GuardStatus(Frozen):
    """One guard's state (``client.guards.status[name]``).

    Attributes:
        name: the guard's name.
        flag: the guarded flag's key.
        version: the flag version it watches (None: none yet).
        state: one of ``"waiting for data"``, ``"misconfigured"`` (no such
            flag, or ``control`` is not one of its variations: see
            ``message``), ``"no rollout"`` (it decides nothing),
            ``"collecting"``, ``"sample ratio off"`` (the arms' counts are
            off the rollout's weights: it decides nothing until they
            agree), ``"cannot tell"`` (another guarded flag's rollout puts
            the same requests in the same arms: whose harm it is cannot be
            told, so it decides nothing; ``message`` names it), ``"alerted"``, ``"pinned"``, ``"released"``.
        needed: while collecting, the requests per arm still needed before
            it could decide (0: enough; it waits for evidence).
        arms: each arm's counts and rates.
        evidence: the last look's evidence, per metric and treatment.
        message: what it last said (the alert's WARNING, a problem).

    Added in version 0.2.0.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "name",
        "flag",
        "version",
        "state",
        "needed",
        "arms",
        "evidence",
        "message",
    )
    name: str
    flag: str
    version: int | None
    state: str
    needed: int | None
    arms: tuple[ArmStatus, ...]
    evidence: tuple[MetricEvidence, ...]
    message: str

    def __init__(
        self,
        *,
        name: str,
        flag: str,
        version: int | None,
        state: str,
        needed: int | None = None,
        arms: tuple[ArmStatus, ...] = (),
        evidence: tuple[MetricEvidence, ...] = (),
        message: str = "",
    ) -> None:
        set_field(self, "name", name)
        set_field(self, "flag", flag)
        set_field(self, "version", version)
        set_field(self, "state", state)
        set_field(self, "needed", needed)
        set_field(self, "arms", arms)
        set_field(self, "evidence", evidence)
        set_field(self, "message", message)


@final
class GuardEvent(Frozen):
    """A guard decided (alerted, pinned) or was released.

    Attributes:
        kind: ``"alerted"``, ``"pinned"`` or ``"released"``.
        name: the guard's name.
        flag: the guarded flag's key.
        version: the flag version.
        metric: the metric that decided (None for a release).
        message: the WARNING it logged (or what the release did).
        status: the guard's status then.

    Added in version 0.2.0.
    """

    __slots__ = ("kind", "name", "flag", "version", "metric", "message", "status")  # noqa: RUF023 - fields in order
    kind: Literal["alerted", "pinned", "released"]
    name: str
    flag: str
    version: int
    metric: str | None
    message: str
    status: GuardStatus

    def __init__(
        self,
        *,
        kind: Literal["alerted", "pinned", "released"],
        name: str,
        flag: str,
        version: int,
        metric: str | None,
        message: str,
        status: GuardStatus,
    ) -> None:
        set_field(self, "kind", kind)
        set_field(self, "name", name)
        set_field(self, "flag", flag)
        set_field(self, "version", version)
        set_field(self, "metric", metric)
        set_field(self, "message", message)
        set_field(self, "status", status)
