"""aioflags against LaunchDarkly's own Python SDK, on seeded random flags and contexts.

A modest run here (240 cases: the whole suite must stay within four minutes)
keeps CI fast; `nox -s bench` runs a much larger one
(benchmarks/bench_differential.py).
"""

from __future__ import annotations

import logging

import pytest

from tests.reference import Generator, compare

CASES = 240


@pytest.mark.differential
@pytest.mark.no_cover
@pytest.mark.parametrize(
    "seed", range(0, CASES, 30), ids=lambda s: f"seeds-{s}-{s + 29}"
)
def test_matches_launchdarkly(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)
    problems = []
    for s in range(seed, seed + 30):
        problems += [f"seed {s}: {p}" for p in compare(Generator(s).case())]
    assert not problems, "\n".join(problems[:5])


def test_the_differential_test_can_fail() -> None:
    """The comparison detects a planted difference (a test that cannot fail is a defect)."""
    case = Generator(1).case()
    case.contexts = [{"kind": "user", "key": "u"}]
    for f in case.flags.values():
        f["on"] = False
    import tests.reference as ref

    real = ref.ours

    def skewed(c: ref.Case) -> object:
        flags = {k: {**v, "on": True} for k, v in c.flags.items()}
        return real(ref.Case(flags, c.segments))

    ref.ours = skewed  # type: ignore[assignment]
    try:
        assert compare(case)
    finally:
        ref.ours = real
