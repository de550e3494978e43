"""Flag coverage: ``pytest --aioflags-coverage`` on a small user project.

The sessions run in a subprocess (the coverage hook is process-wide), on
the aioflags under test.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import aioflags
from aioflags._evaluation._model import compile_flag
from aioflags._testing._coverage import FlagCoverage, branches_of, summary_lines
from aioflags.pytest_plugin import _COVERAGE, _Coverage, _percent, pytest_testnodedown

pytest_plugins = ["pytester"]

# The app's flags: a target, a rule, an off flag, a plain value, and a flag
# with a prerequisite and a rollout.
FLAGS = {
    "flags": {
        "checkout": {
            "on": True,
            "variations": [False, True],
            "offVariation": 0,
            "targets": [{"variation": 1, "values": ["alice"]}],
            "rules": [
                {
                    "id": "beta",
                    "clauses": [
                        {
                            "attribute": "email",
                            "op": "endsWith",
                            "values": ["@example.com"],
                        }
                    ],
                    "variation": 1,
                }
            ],
            "fallthrough": {"variation": 0},
        },
        "banner": {
            "on": False,
            "variations": ["old", "new"],
            "offVariation": 0,
            "fallthrough": {"variation": 1},
        },
        "theme": {
            "on": True,
            "variations": ["light", "dark"],
            "offVariation": 0,
            "prerequisites": [{"key": "checkout", "variation": 1}],
            "fallthrough": {
                "rollout": {
                    "variations": [
                        {"variation": 0, "weight": 50000},
                        {"variation": 1, "weight": 50000},
                    ]
                }
            },
        },
    },
    "flagValues": {"limit": 3},
}

# The app builds its own client, at import (its conftest imports it, before
# pytest configures the session).
APP = """
import aioflags

client = aioflags.Client(
    aioflags.Config(data_system=aioflags.DataSystem.file("flags.json"), send_events=False)
)
"""

CONFTEST = "import app  # noqa: F401\n"

USER_TESTS = """
import pytest

import aioflags
import aioflags.blocking
from aioflags import Context

import app

ALICE = Context.create("alice")
BOB = Context.from_dict({"key": "bob", "email": "bob@example.com"})
CAROL = Context.create("carol")


async def test_the_app_client():
    async with app.client:
        assert await app.client.bool_variation("checkout", ALICE, False)
        assert await app.client.bool_variation("checkout", BOB, False)
        assert await app.client.string_variation("theme", CAROL, "x") == "light"


def test_a_blocking_client():
    config = aioflags.Config(
        data_system=aioflags.DataSystem.file("flags.json"), send_events=False
    )
    with aioflags.blocking.Client(config) as client:
        assert not client.bool_variation("checkout", CAROL, True)
        assert client.string_variation("banner", CAROL, "x") == "old"


def test_an_openfeature_provider():
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext

    from aioflags.openfeature import AioflagsProvider

    config = aioflags.Config(
        data_system=aioflags.DataSystem.file("flags.json"), send_events=False
    )
    api.set_provider_and_wait(AioflagsProvider(config))
    try:
        context = EvaluationContext("carol")
        assert api.get_client().get_string_value("banner", "x", context) == "old"
    finally:
        api.shutdown()


@pytest.mark.aioflags({"greeting": "hi"})
async def test_the_fixtures(aioflags_client):
    snapshot = aioflags_client.snapshot()
    assert snapshot.string_variation("greeting", CAROL, "x") == "hi"
    assert await aioflags_client.string_variation("greeting", CAROL, "x") == "hi"
"""

# The section, exactly: one line per flag with a branch no test took.
SECTION = """\
banner     1/2  missing: fallthrough
checkout   3/4  missing: off
greeting   1/2  missing: off
limit      0/2  missing: off, fallthrough
theme      1/4  missing: off, fallthrough:0 ("light"), fallthrough:1 ("dark")
unused     0/2  missing: off, fallthrough
TOTAL     6/16  37.5%
"""


#: What --aioflags-coverage-json writes for the session above (with extra.json).
REPORT = {
    "flags": {
        "banner": {
            # off: the blocking client, then the OpenFeature provider
            "branches": {"off": 2, "fallthrough": 0},
            "covered": 1,
            "total": 2,
            # (the values the branches taken served, and how often)
            "served": {"off": {'"old"': 2}},
        },
        "checkout": {
            # alice by target, bob by the rule (the app's client); carol
            # falls through (the blocking client)
            "branches": {"off": 0, "target:1": 1, "rule:beta": 1, "fallthrough": 1},
            "covered": 3,
            "total": 4,
            # (what the branches named by a variation's index serve)
            "values": {"target:1": "true"},
            "served": {
                "target:1": {"true": 1},
                "rule:beta": {"true": 1},
                "fallthrough": {"false": 1},
            },
        },
        "greeting": {
            # once on the fixture client's snapshot, once awaited
            "branches": {"off": 0, "fallthrough": 2},
            "covered": 1,
            "total": 2,
            "served": {"fallthrough": {'"hi"': 2}},
        },
        "limit": {
            "branches": {"off": 0, "fallthrough": 0},
            "covered": 0,
            "total": 2,
        },
        "theme": {
            "branches": {
                "off": 0,
                "prerequisite:checkout": 1,
                "fallthrough:0": 0,
                "fallthrough:1": 0,
            },
            "covered": 1,
            "total": 4,
            "values": {"fallthrough:0": '"light"', "fallthrough:1": '"dark"'},
            "served": {"prerequisite:checkout": {'"light"': 1}},
        },
        "unused": {
            "branches": {"off": 0, "fallthrough": 0},
            "covered": 0,
            "total": 2,
        },
    },
    "covered": 6,
    "total": 16,
    "percent": 37.5,
}


def _section(out: str) -> str:
    """The lines of the ``aioflags flag coverage`` section."""
    _, header, rest = out.partition(" aioflags flag coverage -")
    assert header, out
    lines = rest.splitlines()[1:]
    end = next(i for i, line in enumerate(lines) if line.startswith(("=", "JSON")))
    return "".join(f"{line}\n" for line in lines[:end])


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user project; its sessions import the aioflags under test."""
    path = [str(Path(aioflags.__file__).parent.parent), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))
    pytester.makeini(
        "[pytest]\n"
        "addopts = -p no:cacheprovider --strict-markers --strict-config\n"
        "filterwarnings = error\n"
        "asyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    (pytester.path / "flags.json").write_text(json.dumps(FLAGS))
    (pytester.path / "extra.json").write_text('{"flagValues": {"unused": 1}}')
    pytester.makepyfile(app=APP, test_user=USER_TESTS)
    pytester.makeconftest(CONFTEST)
    return pytester.path


@pytest.mark.slow
def test_every_client_counts_in_the_report_and_the_json(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest_subprocess(
        "--aioflags-coverage",
        "--aioflags-coverage-flags",
        "extra.json",
        "--aioflags-coverage-json",
        "coverage.json",
    )
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    assert _section(result.stdout.str()) == SECTION
    result.stdout.fnmatch_lines(["JSON written to coverage.json"])
    report = json.loads((project / "coverage.json").read_text())
    assert report == REPORT


@pytest.mark.slow
def test_pytest_xdist_workers_counts_add_up_in_the_controller(
    pytester: pytest.Pytester, project: Path
) -> None:
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--aioflags-coverage-flags",
        "extra.json",
        "--aioflags-coverage-json",
        "coverage.json",
    )
    result.assert_outcomes(passed=4)
    assert _section(result.stdout.str()) == SECTION
    assert json.loads((project / "coverage.json").read_text()) == REPORT


@pytest.mark.slow
def test_a_crashed_xdist_worker_s_lost_counts_are_said_in_the_report(
    pytester: pytest.Pytester, project: Path
) -> None:
    """The worker's evaluations vanish with it: the section and the JSON say so."""
    pytest.importorskip("xdist")
    # One worker runs every test, in order: the last one ends its process.
    pytester.makepyfile(
        test_zz_crash="import os\n\ndef test_crash():\n    os._exit(1)\n"
    )
    result = pytester.runpytest_subprocess(
        "-n",
        "1",
        "--aioflags-coverage-json",
        "coverage.json",
        "--aioflags-coverage-fail-under",
        "50",
    )
    result.assert_outcomes(passed=4, failed=1)
    # Not a word before: "TOTAL  0/0  100%", the flags gone with their counts.
    total, warning = _section(result.stdout.str()).splitlines()
    assert total == "TOTAL  0/0  100%"
    # Why is pytest-xdist's (execnet's) word: "Not properly terminated".
    assert fnmatch.fnmatch(
        warning,
        "WARNING: pytest-xdist worker gw0 went down (*): the flags and "
        "evaluations it counted are missing from the figures above",
    ), warning
    result.stdout.fnmatch_lines(
        [
            "FAIL Required flag coverage of 50% cannot be shown: a worker's counts "
            "are missing. Total flag coverage: 100%"
        ]
    )
    report = json.loads((project / "coverage.json").read_text())
    assert list(report["lost_workers"]) == ["gw0"]


@pytest.mark.slow
def test_fail_under_fails_a_passing_session_and_says_why(
    pytester: pytest.Pytester, project: Path
) -> None:
    # (written with a percent sign: "90%" was refused, "invalid float value")
    result = pytester.runpytest_subprocess("--aioflags-coverage-fail-under", "50%")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "TOTAL*6/14  42.86%",  # (no extra.json: no "unused")
            "FAIL Required flag coverage of 50% not reached. "
            "Total flag coverage: 42.86%",
        ]
    )
    passing = pytester.runpytest_subprocess("--aioflags-coverage-fail-under", "42.5")
    assert passing.ret == pytest.ExitCode.OK
    assert "FAIL Required" not in passing.stdout.str()


@pytest.mark.parametrize(
    ("value", "percent"),
    [("90", 90.0), ("87.5", 87.5), ("90%", 90.0), (" 87.5 % ", 87.5)],
)
def test_fail_under_accepts_the_documented_forms(value: str, percent: float) -> None:
    # (the option's parser; the session tests above run two of them)
    assert _percent(value) == percent


@pytest.mark.parametrize("value", ["ninety", "101", "-1", "nan", ""])
def test_fail_under_refuses_a_bad_value_saying_the_forms(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        _percent(value)
    assert str(refused.value) == (
        f"expected a percentage from 0 to 100, written 90, 87.5 or 90%; got {value!r}"
    )


@pytest.mark.slow
def test_a_bad_fail_under_is_a_usage_error_naming_the_option(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "--collect-only", "--aioflags-coverage-fail-under", "ninety"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*error: argument --aioflags-coverage-fail-under: expected a percentage "
            "from 0 to 100, written 90, 87.5 or 90%; got 'ninety'"
        ]
    )


@pytest.mark.slow
def test_collecting_only_reports_nothing_and_fails_nothing(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest_subprocess(
        "--collect-only", "--aioflags-coverage-fail-under", "90"
    )
    assert result.ret == pytest.ExitCode.OK
    assert "aioflags flag coverage" not in result.stdout.str()


@pytest.mark.slow
def test_without_the_option_nothing_is_recorded(
    pytester: pytest.Pytester, project: Path
) -> None:
    pytester.makepyfile(
        test_untouched="""
from aioflags._client._client import PROCESS_HOOKS

import app


async def test_no_hook_anywhere(aioflags_client):
    assert PROCESS_HOOKS == []
    # no hook: evaluations take the client's unhooked path
    assert app.client._hooks is None and aioflags_client._hooks is None
"""
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=5)
    assert "aioflags flag coverage" not in result.stdout.str()


@pytest.mark.slow
def test_an_unreadable_flags_file_is_a_usage_error(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest_subprocess("--aioflags-coverage-flags", "missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--aioflags-coverage-flags: missing.json: cannot read the flag file" in (
        result.stderr.str()
    )


# ------------------------------------------------------------- the branches
def _branches(flag: dict[str, Any]) -> list[str]:
    return branches_of(compile_flag("f", {"key": "f", "version": 1, **flag}))


def test_branches_name_rules_by_id_or_index_and_rollouts_by_variation() -> None:
    rule = {"clauses": [{"attribute": "key", "op": "in", "values": ["a"]}]}
    assert _branches(
        {
            "on": True,
            "variations": ["a", "b", "c"],
            "contextTargets": [
                {"contextKind": "org", "variation": 2, "values": ["o"]},
                {"contextKind": "user", "variation": 0, "values": []},
            ],
            "targets": [{"variation": 0, "values": ["u"]}],
            "rules": [
                {**rule, "id": "r", "variation": 1},
                {
                    **rule,
                    "rollout": {
                        "variations": [
                            {"variation": 0, "weight": 1},
                            {"variation": 1, "weight": 99999},
                        ]
                    },
                },
            ],
            # a bucket with no weight serves nothing; the last serves the rest
            "fallthrough": {
                "rollout": {
                    "variations": [
                        {"variation": 2, "weight": 0},
                        {"variation": 0, "weight": 40000},
                        {"variation": 1, "weight": 0},
                    ]
                }
            },
        }
    ) == [
        "off",
        "target:0",
        "target:2",
        "rule:r",
        "rule:1",
        "fallthrough:0",
        "fallthrough:1",
    ]


def test_deleted_and_malformed_flags_have_no_branches() -> None:
    assert _branches({"deleted": True}) == []
    assert _branches({"on": True, "variations": "no"}) == []


def test_a_workers_report_merges_into_the_controllers() -> None:
    """What pytest-xdist's controller does with each worker's report."""
    worker, controller = FlagCoverage(), FlagCoverage()
    worker.learn_json({"a": {"key": "a", "version": 1, "on": True, "variations": [1]}})
    controller.learn_json({"b": {"key": "b", "version": 1, "variations": [1]}})
    controller.merge(worker.report())
    controller.merge(
        {
            "flags": {"a": {"branches": {"fallthrough": 3}, "covered": 1, "total": 1}},
            "covered": 1,
            "total": 1,
            "percent": 100.0,
        }
    )
    report = controller.report()
    assert report["flags"]["a"]["branches"] == {"off": 0, "fallthrough": 3}
    assert (report["covered"], report["total"], report["percent"]) == (1, 4, 25.0)
    assert summary_lines(report) == [
        "a      1/2  missing: off",
        "b      0/2  missing: off, fallthrough",
        "TOTAL  1/4  25%",
    ]


def test_the_values_served_add_up_across_workers() -> None:
    """``served`` (the evidence ``aioflags cleanup`` reads) merges by branch and value."""
    controller = FlagCoverage()
    for served in ({"fallthrough": {"1": 2}}, {"fallthrough": {"1": 1, '"x"': 1}}):
        branches = {"fallthrough": sum(served["fallthrough"].values())}
        flag: Any = {"branches": branches, "covered": 1, "total": 1, "served": served}
        controller.merge(
            {"flags": {"a": flag}, "covered": 1, "total": 1, "percent": 100.0}
        )
    report = controller.report()
    assert report["flags"]["a"]["served"] == {"fallthrough": {'"x"': 1, "1": 3}}


def test_an_interrupted_worker_reported_down_twice_counts_once() -> None:
    """pytest-xdist calls ``pytest_testnodedown`` again for an interrupted worker."""
    worker = FlagCoverage()
    worker.learn_json({"a": {"key": "a", "version": 1, "on": True, "variations": [1]}})
    report = worker.report()
    report["flags"]["a"]["branches"]["fallthrough"] = 1
    options = SimpleNamespace(
        aioflags_coverage_json=None,
        aioflags_coverage_fail_under=None,
        aioflags_coverage_flags=[],
    )
    config = SimpleNamespace(stash=pytest.Stash())
    state = config.stash[_COVERAGE] = _Coverage(options)
    node = SimpleNamespace(
        config=config,
        gateway=SimpleNamespace(id="gw0"),
        workeroutput={"aioflags_coverage": report},
    )
    pytest_testnodedown(node, None)  # finished...
    pytest_testnodedown(node, "keyboard-interrupt")  # ... and down
    assert state.coverage.report()["flags"]["a"]["branches"]["fallthrough"] == 1
    assert state.lost == {}


def test_nothing_to_cover_is_full_coverage() -> None:
    assert summary_lines(FlagCoverage().report()) == ["TOTAL  0/0  100%"]
