"""Guarded rollouts: a percentage rollout that notices its new variation failing.

A guard watches one flag's randomized assignment (a LaunchDarkly rollout,
flagd's ``fractional``). Each request in a scope (the lens's middleware,
or ``async with client.guards.request():``) counts in the arm the flag
served it; its outcome (it raised or answered 5xx, how long it took, an
app metric sent with ``client.track(name, context, metric_value=x)``) is
compared between each treatment and ``control``. When a treatment is
worse beyond chance, the guard alerts (one WARNING, an event, its status)
and, with ``action="pin"``, serves ``control`` with reason
``{"kind": "GUARDED", "guard": NAME}`` until the flag's version changes or
``client.guards.release(NAME)``::

    import aioflags
    from aioflags.guards import errors, latency

    guard = aioflags.Guard(
        "new-checkout", control=False, metrics=[errors(), latency()], action="pin"
    )
    client = aioflags.Client(aioflags.Config(sdk_key, guards=[guard]))
    async with client.guards.request():
        ...  # one request's work

A request's arm is what the guarded flag's randomized assignment served
it first in the scope, whether the app evaluated the flag or another
flag reached it as a prerequisite (the request was served its variation
indirectly: its outcome depends on it), on every evaluation path. A
pinned evaluation is what it is everywhere: analytics events count the
control variation with the reason ``GUARDED`` (in detail events), and no
prerequisite of the flag (the pin is served before the flag's rules
run); ``client.usage()`` counts it under control's value; all-flags
state lists no prerequisite for it; flag coverage counts it under no
branch (docs/testing.md). A flag with the pinned flag as a prerequisite
sees control, whichever path evaluates it.

Added in version 0.2.0.
"""

from __future__ import annotations

from ._guards._config import Guard as Guard
from ._guards._config import Metric as Metric
from ._guards._config import errors as errors
from ._guards._config import latency as latency
from ._guards._config import metric as metric
from ._guards._scope import Guards as Guards
from ._guards._scope import Scope as Scope
from ._guards._status import ArmStatus as ArmStatus
from ._guards._status import GuardEvent as GuardEvent
from ._guards._status import GuardStatus as GuardStatus
from ._guards._status import MetricEvidence as MetricEvidence

__all__ = [
    "ArmStatus",
    "Guard",
    "GuardEvent",
    "GuardStatus",
    "Guards",
    "Metric",
    "MetricEvidence",
    "Scope",
    "errors",
    "latency",
    "metric",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj is not Guard:  # (aioflags.Guard)
        _obj.__module__ = "aioflags.guards"
del _name, _obj
