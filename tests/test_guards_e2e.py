"""Guarded rollouts end to end (issue 98), at CI size: examples/guarded_rollout.py under ``uvicorn --workers 2``.

The same runs as benchmarks/bench_guards_e2e.py (its functions, imported):
a loopback ``FlagServer`` serving a 50/50 rollout, the app's workers on one
flag plane, httpx driving ``GET /checkout`` with a user key each. The
treatment fails in 30 % of its requests (5 % in the benchmark), so that
the leader decides at the floor of 1,000 requests per arm.
Every wait ends on an answer or a line the workers print; the run's
limits are nets against a hang, never timings. uvicorn runs in a session
of its own, and its whole process group is ended with each test.

On the plane the leader sums the workers' counts and decides once for
the host; every worker pins when it does, and a worker uvicorn starts in
place of a killed leader takes the pin from the plane: it never serves
the treatment.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.modules import load

# (timeout: pytest-timeout's net, past the runs' own: processes start, and
# thousands of requests go through them on a loaded machine)
pytestmark = [pytest.mark.asyncio, pytest.mark.slow, pytest.mark.timeout(900)]

#: The treatment's faults: 30 % against none in control decides soon after
#: the floor of 1,000 requests per arm.
FAULT = 0.3
#: Requests a second asked of the driver (the test needs no rate: what
#: the machine reaches is enough).
RATE = 400


def _bench() -> ModuleType:
    """benchmarks/bench_guards_e2e.py, imported (when a test runs: not in the sdist)."""
    return load("benchmarks/bench_guards_e2e.py", "bench_guards_e2e")


async def test_issue98_e2e_every_uvicorn_worker_pins_and_serves_no_treatment_after() -> (
    None
):
    figures = await _bench().guarded_run(
        2, RATE, FAULT, tail=2.0, limit=400.0, after_kill=400.0
    )
    assert figures.pin_seconds is not None, figures  # every worker answered GUARDED
    assert figures.treatment_after == 0, figures
    # kill -9 of the plane's leader: uvicorn starts a worker in its place;
    # the survivor's pin holds (it leads now), and the new worker's too.
    assert figures.leader_killed, figures
    assert figures.restarted, figures
    assert figures.survivors_treatment_after == 0, figures
    assert figures.new_worker_pinned_seconds is not None, figures
    # The plane carries the pin to the worker started in the leader's place:
    # it never serves the treatment, not even before its first look.
    assert figures.new_worker_treatment == 0, figures


async def test_issue98_e2e_an_aa_twin_pins_nothing() -> None:
    figures = await _bench().aa_run(2, RATE, 400.0, until_each=2_500)
    assert figures.aa_guarded == 0, figures
    assert figures.aa_decisions == 0, figures
    # Past the floor in both workers' counts: nothing kept the leader from
    # deciding (no "sample ratio off", no "no rollout").
    assert sorted(figures.aa_states.values()) == ["collecting", "collecting"], figures
    assert figures.aa_fewest >= 1_000, figures
