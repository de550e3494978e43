"""`aioflags validate` finds every flag that evaluates to MALFORMED_FLAG.

Each case is a flag (with what it needs) that the evaluator answers with
MALFORMED_FLAG for some context: the command must say so and exit 1, and the
same file, evaluated for that context, must give MALFORMED_FLAG (so the
command and the evaluator cannot drift apart).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from aioflags.__main__ import main
from aioflags._evaluation._evaluate import MAX_CHAIN_DEPTH

#: A well-formed flag: on, serving true; ``**ON`` and override a part.
ON: dict[str, Any] = {
    "version": 1,
    "on": True,
    "variations": [True, False],
    "offVariation": 1,
    "fallthrough": {"variation": 0},
}
IN_A = {"attribute": "email", "op": "in", "values": ["a@example.com"]}
USER_A = {"kind": "user", "key": "u", "email": "a@example.com"}


def rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r0", "clauses": [IN_A], **fields}


def in_segment(key: str) -> dict[str, Any]:
    """A flag that serves false to the members of segment ``key``."""
    clause = {"attribute": "", "op": "segmentMatch", "values": [key]}
    return {**ON, "rules": [{"id": "r0", "clauses": [clause], "variation": 1}]}


def nested_in(key: str) -> dict[str, Any]:
    """A segment whose members are the members of segment ``key``."""
    clause = {"attribute": "", "op": "segmentMatch", "values": [key]}
    return {"version": 1, "rules": [{"clauses": [clause]}]}


def prerequisite_chain(top: str, depth: int) -> dict[str, Any]:
    """``top`` -> p1 -> ... -> p<depth>: flags that all run (none is constant)."""
    keys = [top, *(f"p{i}" for i in range(1, depth + 1))]
    flags = {
        key: {**ON, "prerequisites": [{"key": below, "variation": 0}]}
        for key, below in itertools.pairwise(keys)
    }
    flags[keys[-1]] = {**ON, "rules": [rule(variation=0)]}  # not constant
    return flags


class Case(NamedTuple):
    flags: dict[str, Any]
    segments: dict[str, Any]
    context: dict[str, Any]
    message: str


CASES: dict[str, Case] = {
    "the flag's JSON has the wrong shape": Case(
        {"f": {**ON, "rules": "nope"}},
        {},
        USER_A,
        'flags/f/rules: "nope" is text, where a list is expected',
    ),
    "JSON that no check foresaw": Case(
        {
            "f": {
                **ON,
                "fallthrough": {
                    "rollout": {"variations": [{"variation": 0, "weight": 10**400}]}
                },
            }
        },
        {},
        USER_A,
        "flag 'f': OverflowError: ",
    ),
    "the fallthrough serves nothing": Case(
        {"f": {**ON, "fallthrough": {}}},
        {},
        USER_A,
        "flag 'f': the fallthrough has neither a variation nor a rollout",
    ),
    "a rollout without buckets": Case(
        {"f": {**ON, "fallthrough": {"rollout": {"variations": []}}}},
        {},
        USER_A,
        "flag 'f': the fallthrough has neither a variation nor a rollout",
    ),
    "a rollout bucket without a variation": Case(
        {
            "f": {
                **ON,
                "fallthrough": {"rollout": {"variations": [{"weight": 100000}]}},
            }
        },
        {},
        USER_A,
        "flag 'f': a rollout bucket of the fallthrough has no variation",
    ),
    "the off variation is out of range": Case(
        {"f": {**ON, "on": False, "offVariation": 2}},
        {},
        USER_A,
        "flag 'f': offVariation serves variation 2, but the flag has 2 variations",
    ),
    "a failed prerequisite serves an off variation out of range": Case(
        {
            "f": {
                **ON,
                "offVariation": 5,
                "prerequisites": [{"key": "p", "variation": 0}],
            },
            "p": {**ON, "on": False},
        },
        {},
        USER_A,
        "flag 'f': offVariation serves variation 5, but the flag has 2 variations",
    ),
    "a user target's variation is out of range": Case(
        {"f": {**ON, "targets": [{"variation": 3, "values": ["u"]}]}},
        {},
        USER_A,
        "flag 'f': a target serves variation 3",
    ),
    "a context target's variation is out of range": Case(
        {
            "f": {
                **ON,
                "contextTargets": [
                    {"contextKind": "org", "variation": -1, "values": ["o"]}
                ],
            }
        },
        {},
        {"kind": "org", "key": "o"},
        "flags/f/contextTargets/0/variation: -1 is less than 0",
    ),
    "a rule's variation is out of range": Case(
        {"f": {**ON, "rules": [rule(variation=7)]}},
        {},
        USER_A,
        "flag 'f': rules[0] serves variation 7, but the flag has 2 variations",
    ),
    "a rule's rollout names a variation out of range": Case(
        {
            "f": {
                **ON,
                "rules": [
                    rule(rollout={"variations": [{"variation": 9, "weight": 100000}]})
                ],
            }
        },
        {},
        USER_A,
        "flag 'f': rules[0] serves variation 9",
    ),
    "a rule serves nothing": Case(
        {"f": {**ON, "rules": [rule()]}},
        {},
        USER_A,
        "flag 'f': rules[0] has neither a variation nor a rollout",
    ),
    "an invalid attribute reference in a clause": Case(
        {
            "f": {
                **ON,
                "rules": [
                    {
                        "clauses": [
                            {
                                "contextKind": "user",
                                "attribute": "/",
                                "op": "in",
                                "values": ["x"],
                            }
                        ],
                        "variation": 1,
                    }
                ],
            }
        },
        {},
        USER_A,
        "flag 'f': a clause has an invalid attribute reference '/'",
    ),
    "an invalid bucketBy reference": Case(
        {
            "f": {
                **ON,
                "fallthrough": {
                    "rollout": {
                        "contextKind": "user",
                        "bucketBy": "//",
                        "variations": [{"variation": 0, "weight": 100000}],
                    }
                },
            }
        },
        {},
        USER_A,
        "flag 'f': a rollout has an invalid bucketBy reference '//'",
    ),
    "a prerequisite cycle": Case(
        {
            "f": {**ON, "prerequisites": [{"key": "g", "variation": 0}]},
            "g": {**ON, "prerequisites": [{"key": "f", "variation": 0}]},
        },
        {},
        USER_A,
        "flag 'f': prerequisite cycle f -> g -> f",
    ),
    "a flag that is its own prerequisite": Case(
        {"f": {**ON, "prerequisites": [{"key": "f", "variation": 0}]}},
        {},
        USER_A,
        "flag 'f': prerequisite cycle f -> f",
    ),
    "a malformed segment": Case(
        {"f": in_segment("s")},
        {"s": {"version": 1, "included": "u"}},
        USER_A,
        'segments/s/included: "u" is text, where a list is expected',
    ),
    "an invalid attribute reference in a segment rule": Case(
        {"f": in_segment("s")},
        {
            "s": {
                "version": 1,
                "rules": [
                    {
                        "clauses": [
                            {
                                "contextKind": "user",
                                "attribute": "/",
                                "op": "in",
                                "values": ["x"],
                            }
                        ]
                    }
                ],
            }
        },
        USER_A,
        "segment 's': a clause has an invalid attribute reference '/'",
    ),
    "an invalid bucketBy reference in a segment rule": Case(
        {"f": in_segment("s")},
        {
            "s": {
                "version": 1,
                "rules": [
                    {
                        "clauses": [IN_A],
                        "weight": 50000,
                        "rolloutContextKind": "user",
                        "bucketBy": "//",
                    }
                ],
            }
        },
        USER_A,
        "segment 's': a rollout has an invalid bucketBy reference '//'",
    ),
    "a segment rule cycle": Case(
        {"f": in_segment("s")},
        {"s": nested_in("t"), "t": nested_in("s")},
        USER_A,
        "segment 's': segment rule cycle s -> t -> s",
    ),
    # MAX_CHAIN_DEPTH levels below f run; one more is too deep (p1 is fine).
    "a prerequisite chain deeper than the evaluator follows": Case(
        prerequisite_chain("f", MAX_CHAIN_DEPTH + 1),
        {},
        USER_A,
        f"flag 'f': prerequisite chain {MAX_CHAIN_DEPTH + 1} levels deep, more "
        f"than the evaluator's {MAX_CHAIN_DEPTH}: f -> p1 -> p2 -> ... ",
    ),
    "a segment rule chain deeper than the evaluator follows": Case(
        {"f": in_segment("s0")},
        {
            **{f"s{i}": nested_in(f"s{i + 1}") for i in range(MAX_CHAIN_DEPTH + 2)},
            f"s{MAX_CHAIN_DEPTH + 2}": {"version": 1},  # (no rules: the end)
        },
        USER_A,
        f"segment 's0': segment rule chain {MAX_CHAIN_DEPTH + 1} levels deep, "
        f"more than the evaluator's {MAX_CHAIN_DEPTH}: s0 -> s1 -> s2 -> ... ",
    ),
}


def write(tmp_path: Path, flags: dict[str, Any], segments: dict[str, Any]) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": flags, "segments": segments}))
    return path


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_validate_reports_what_the_evaluator_answers_with_malformed_flag(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, case.flags, case.segments)
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    problems = [
        line for line in captured.err.splitlines() if line.startswith("error: ")
    ]
    assert len(problems) == 1, captured.err
    # where it is (file:line:col), then what
    assert re.match(rf"error: {re.escape(str(path))}:\d+:\d+: ", problems[0])
    assert f": {case.message}" in problems[0], captured.err
    assert problems[0].endswith("(evaluations that reach it are MALFORMED_FLAG)")
    assert "1 problem(s)" in captured.out
    # The evaluator agrees: this context reaches the problem.
    context = json.dumps(case.context)
    assert main(["eval", "f", "--context", context, "--file", str(path)]) == 1
    reason = json.loads(capsys.readouterr().out)["reason"]
    assert reason == {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}


def test_validate_passes_well_formed_flags_and_segments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = {
        "f": {
            **ON,
            "targets": [{"variation": 1, "values": ["u"]}],
            "rules": [
                rule(variation=1),
                rule(rollout={"variations": [{"variation": 0, "weight": 100000}]}),
            ],
            "prerequisites": [{"key": "p", "variation": 0}],
        },
        "p": {**ON, "prerequisites": [{"key": "q", "variation": 0}]},
        "q": ON,
        "seg": in_segment("s"),
    }
    # A segment rule without a weight never buckets: its bucketBy is unused.
    unweighted = {"clauses": [IN_A], "rolloutContextKind": "user", "bucketBy": "//"}
    segments = {
        "s": nested_in("t"),
        "t": {"version": 1, "included": ["u"], "rules": [unweighted]},
    }
    path = write(tmp_path, flags, segments)
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "4 flags, 2 segments: valid" in captured.out
    assert "error" not in captured.err


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.yaml", ""),
        ("comment.yaml", "# nothing yet\n"),
        ("null.json", "null"),
        ("sections.json", '{"flags": null}'),
    ],
)
def test_an_empty_file_is_an_error_as_it_is_to_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: the file is empty" in err
    assert '{"flags": {}}' in err  # what to write to serve no flags
    path.write_text('{"flags": {}}')
    assert main(["validate", str(path)]) == 0


def test_chains_as_deep_as_the_evaluator_follows_are_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The limit's other side: validate and the evaluator agree there too."""
    flags = prerequisite_chain("f", MAX_CHAIN_DEPTH)
    flags["g"] = in_segment("s0")
    segments = {f"s{i}": nested_in(f"s{i + 1}") for i in range(MAX_CHAIN_DEPTH + 1)}
    segments[f"s{MAX_CHAIN_DEPTH + 1}"] = {"version": 1}  # (no rules: the end)
    path = write(tmp_path, flags, segments)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    for key, kind in (("f", "FALLTHROUGH"), ("g", "FALLTHROUGH")):
        assert main(["eval", key, "--context", "u", "--file", str(path)]) == 0
        assert json.loads(capsys.readouterr().out)["reason"] == {"kind": kind}


@pytest.mark.slow
@pytest.mark.no_cover
@pytest.mark.parametrize("closed", [False, True], ids=["chain", "cycle"])
def test_validate_follows_chains_of_thousands_of_flags(
    closed: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No RecursionError, however long the chain (the cycle check has its own stack)."""
    n = 5000
    flags = prerequisite_chain("f", n)
    if closed:
        flags[f"p{n}"]["prerequisites"] = [{"key": "f", "variation": 0}]
    path = write(tmp_path, flags, {})
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    problems = captured.err.splitlines()
    if closed:
        assert ": flag 'f': prerequisite cycle f -> p1" in problems[0]
    else:
        assert f": flag 'f': prerequisite chain {n} levels deep" in problems[0]
        assert f"{n - MAX_CHAIN_DEPTH} problem(s)" in captured.out


def test_validate_says_each_problem_once(tmp_path: Path) -> None:
    """Row 79: a problem was printed twice, as the loader's or compiler's log line
    (``WARNING: ... flag 'x' has 2 variations, but ...``, ``ERROR: Flag 'y' is
    malformed ...``) and again as ``error: FILE:LINE:COL: ...``. Once, with its line.
    """
    import subprocess
    import sys

    path = write(
        tmp_path,
        {
            "x": {**ON, "fallthrough": {"variation": 5}},  # the loader warned
            "y": {**ON, "on": "yes"},  # the compiler logged an ERROR
        },
        {"s": {"version": 1, "included": "no"}},  # the compiler, for a segment
    )
    result = subprocess.run(
        [sys.executable, "-m", "aioflags", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith(f"error: {path}:") for line in lines), result.stderr
    assert "3 problem(s)" in result.stdout
