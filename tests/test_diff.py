"""`aioflags diff OLD NEW --contexts FILE`: which contexts a change of flag files flips.

The command is checked against the evaluator itself: on seeded random pairs
of flag files (tests/reference.py's generator: every operator, segments in
segments, prerequisites, rollouts, multi-kind contexts), each context is
evaluated with the old and the new data independently, every flag, through
``variation_detail``; what flips there is what the command must report.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import pytest

from aioflags import Context
from aioflags.__main__ import main
from aioflags._datasystem._store import snapshot_from_data
from tests.reference import Case, Generator

yaml = pytest.importorskip("yaml")

ON: dict[str, Any] = {
    "on": True,
    "variations": [True, False],
    "offVariation": 1,
    "fallthrough": {"variation": 1},
}


def beta(*plans: str) -> dict[str, Any]:
    """A flag that serves true to the plans given, false to everyone else."""
    clause = {"attribute": "plan", "op": "in", "values": list(plans)}
    return {**ON, "rules": [{"id": "beta", "variation": 0, "clauses": [clause]}]}


def write(
    path: Path, flags: dict[str, Any], segments: dict[str, Any] | None = None
) -> Path:
    data = {"flags": flags, "segments": segments or {}}
    if path.suffix in (".yaml", ".yml"):
        path.write_text(yaml.safe_dump(data))
    else:
        path.write_text(json.dumps(data))
    return path


def lines(path: Path, *contexts: Any) -> Path:
    path.write_text(
        "".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in contexts)
    )
    return path


def run_json(
    capsys: pytest.CaptureFixture[str], old: Path, new: Path, contexts: Path
) -> tuple[int, dict[str, Any], str]:
    status = main(["diff", str(old), str(new), "--contexts", str(contexts), "--json"])
    out, err = capsys.readouterr()
    return status, json.loads(out), err


USERS = [
    {"kind": "user", "key": "alice", "plan": "beta"},
    {"kind": "user", "key": "bob", "plan": "pro"},
    {"kind": "multi", "user": {"key": "carol", "plan": "pro"}, "org": {"key": "acme"}},
    {"kind": "user", "key": "dan", "plan": "free"},
]


# ------------------------------------------------------ against the evaluator
def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def expected(
    old: Case, new: Case, contexts: list[dict[str, Any]]
) -> tuple[dict[str, Any], int]:
    """What flips, from the evaluator alone: every flag both have, every context.

    Built without the store (``snapshot_from_data`` compiles the JSON as
    given): the command's versioning and dependency fan-out are not used.
    """
    before = snapshot_from_data(old.flags, old.segments)
    after = snapshot_from_data(new.flags, new.segments)
    flags: dict[str, Any] = {}
    flipped = 0
    for data in contexts:
        context = Context.from_dict(data)
        flips = False
        for key in sorted(before.flag_keys & after.flag_keys):
            o = before.variation_detail(key, context, None)
            n = after.variation_detail(key, context, None)
            was = None if o.variation_index is None else _text(o.value)
            now = None if n.variation_index is None else _text(n.value)
            if was == now:
                continue
            flips = True
            t = flags.setdefault(key, {}).setdefault(
                (was, now), {"count": 0, "examples": [], "reasons": []}
            )
            t["count"] += 1
            if len(t["examples"]) < 5:
                t["examples"].append(context.fully_qualified_key)
                t["reasons"].append({"from": dict(o.reason), "to": dict(n.reason)})
        flipped += flips
    return flags, flipped


def _changed_pair(seed: int) -> tuple[Case, Case]:
    """Random flag data, and a change of it: some flags, segments and prerequisites."""
    r = random.Random(seed)
    old = Generator(seed).case(n_contexts=40)
    other = Generator(seed + 100_000).case(n_flags=9)
    flags = dict(old.flags)
    segments = dict(old.segments)
    for key in r.sample(sorted(flags), r.randint(0, 3)):
        flags[key] = other.flags[key]
    for key in r.sample(sorted(segments), r.randint(0, 2)):
        segments[key] = other.segments[key]
    if r.random() < 0.3:  # a flag that others may name as prerequisite appears
        flags["flag-8"] = other.flags["flag-8"]
    if r.random() < 0.3:
        del flags[r.choice(sorted(old.flags))]
    return old, Case(flags, segments, old.contexts)


@pytest.mark.slow
@pytest.mark.no_cover
@pytest.mark.parametrize("first", range(0, 60, 20), ids=lambda s: f"seeds-{s}-{s + 19}")
def test_diff_reports_what_the_evaluator_flips(
    first: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL)  # out-of-range variations warn
    seen = {"flips": 0, "through": 0, "added": 0, "removed": 0, "unflipped": 0}
    for seed in range(first, first + 20):
        old, new = _changed_pair(seed)
        suffix = ".yaml" if seed % 2 else ".json"
        status, report, _ = run_json(
            capsys,
            write(tmp_path / f"old{suffix}", old.flags, old.segments),
            write(tmp_path / f"new{suffix}", new.flags, new.segments),
            lines(tmp_path / "contexts.jsonl", *old.contexts),
        )
        flags, flipped = expected(old, new, old.contexts)
        got = {
            key: {
                (
                    None if t["fromDefault"] else _text(t["from"]),
                    None if t["toDefault"] else _text(t["to"]),
                ): {k: t[k] for k in ("count", "examples", "reasons")}
                for t in flag["transitions"]
            }
            for key, flag in report["flags"].items()
        }
        assert got == flags, f"seed {seed}"
        for key, flag in report["flags"].items():
            assert flag["changed"] == sum(t["count"] for t in flags[key].values())
        assert report["contexts"] == len(old.contexts)
        assert report["flipped"] == flipped, f"seed {seed}"
        assert report["added"] == sorted(set(new.flags) - set(old.flags))
        assert report["removed"] == sorted(set(old.flags) - set(new.flags))
        assert set(report["unflipped"]).isdisjoint(report["flags"])
        assert status == (1 if flags or report["added"] or report["removed"] else 0)
        seen["flips"] += bool(flags)
        # A flag flips whose own JSON is unchanged: through a segment or a prerequisite.
        seen["through"] += any(old.flags[k] == new.flags[k] for k in flags)
        seen["added"] += bool(report["added"])
        seen["removed"] += bool(report["removed"])
        seen["unflipped"] += bool(report["unflipped"])
    assert all(seen.values()), seen  # the seeds exercise every part


# ----------------------------------------------------------- the report
def test_a_flag_flipped_through_a_segment_names_the_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_pros = {"attribute": "", "op": "segmentMatch", "values": ["pros"]}
    flag = {**ON, "rules": [{"id": "pros", "variation": 0, "clauses": [in_pros]}]}
    status, report, _ = run_json(
        capsys,
        write(tmp_path / "old.json", {"f": flag}, {"pros": {"included": ["bob"]}}),
        write(tmp_path / "new.json", {"f": flag}, {"pros": {"included": ["dan"]}}),
        lines(tmp_path / "c.jsonl", *USERS),
    )
    assert status == 1
    assert report["flags"]["f"] == {
        "changed": 2,
        "transitions": [
            {
                "from": False,
                "to": True,
                "fromDefault": False,
                "toDefault": False,
                "count": 1,
                "examples": ["dan"],
                "reasons": [
                    {
                        "from": {"kind": "FALLTHROUGH"},
                        "to": {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "pros"},
                    }
                ],
            },
            {
                "from": True,
                "to": False,
                "fromDefault": False,
                "toDefault": False,
                "count": 1,
                "examples": ["bob"],
                "reasons": [
                    {
                        "from": {
                            "kind": "RULE_MATCH",
                            "ruleIndex": 0,
                            "ruleId": "pros",
                        },
                        "to": {"kind": "FALLTHROUGH"},
                    }
                ],
            },
        ],
    }


def test_the_json_report_has_the_documented_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = [{"kind": "user", "key": f"u{i}", "plan": "pro"} for i in range(8)]
    status, report, _ = run_json(
        capsys,
        write(tmp_path / "old.json", {"f": beta("beta"), "gone": ON, "same": ON}),
        write(tmp_path / "new.json", {"f": beta("pro"), "new": ON, "same": ON}),
        lines(tmp_path / "c.jsonl", *many, "nope"),
    )
    assert status == 1
    assert report == {
        "contexts": 8,
        "flipped": 8,
        "flags": {
            "f": {
                "changed": 8,
                "transitions": [
                    {
                        "from": False,
                        "to": True,
                        "fromDefault": False,
                        "toDefault": False,
                        "count": 8,
                        "examples": ["u0", "u1", "u2", "u3", "u4"],  # five at most
                        "reasons": [
                            {
                                "from": {"kind": "FALLTHROUGH"},
                                "to": {
                                    "kind": "RULE_MATCH",
                                    "ruleIndex": 0,
                                    "ruleId": "beta",
                                },
                            }
                        ]
                        * 5,
                    }
                ],
            }
        },
        "unflipped": [],
        "added": ["new"],
        "removed": ["gone"],
        "skipped": [
            {
                "line": 9,
                "error": "invalid JSON: Expecting value: line 1 column 1 (char 0)",
            }
        ],
        "ignored": {"contexts": 0, "sets": []},
    }


def test_a_default_served_on_one_side_is_a_flip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flag that now serves no variation (MALFORMED_FLAG) flips everyone to the default."""
    status, report, _ = run_json(
        capsys,
        write(tmp_path / "old.json", {"f": ON}),
        write(tmp_path / "new.json", {"f": {**ON, "fallthrough": {"variation": 5}}}),
        lines(tmp_path / "c.jsonl", *USERS[:2]),
    )
    assert status == 1
    (transition,) = report["flags"]["f"]["transitions"]
    assert (transition["to"], transition["toDefault"], transition["count"]) == (
        None,
        True,
        2,
    )
    assert transition["reasons"][0]["to"] == {
        "kind": "ERROR",
        "errorKind": "MALFORMED_FLAG",
    }
    main(
        [
            "diff",
            str(tmp_path / "old.json"),
            str(tmp_path / "new.json"),
            "--contexts",
            str(tmp_path / "c.jsonl"),
        ]
    )
    assert "false -> (default): 2 contexts" in capsys.readouterr().out


def test_values_differ_as_json_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1, 1.0 and true are three values (Python's == says they are one)."""
    served = {"on": True, "fallthrough": {"variation": 0}}
    status, report, _ = run_json(
        capsys,
        write(
            tmp_path / "old.json",
            {"a": {**served, "variations": [1]}, "b": {**served, "variations": [1.0]}},
        ),
        write(
            tmp_path / "new.json",
            {"a": {**served, "variations": [True]}, "b": {**served, "variations": [1]}},
        ),
        lines(tmp_path / "c.jsonl", USERS[0]),
    )
    assert status == 1
    assert [(t["from"], t["to"]) for t in report["flags"]["a"]["transitions"]] == [
        (1, True)
    ]
    assert report["flags"]["b"]["transitions"][0]["from"] == 1.0


# ------------------------------------------------------------ exit statuses
def test_nothing_changes_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same flags (a new version alone changes nothing), and a rule nobody matches."""
    old = write(tmp_path / "old.json", {"f": beta("beta"), "g": beta("beta")})
    new = write(
        tmp_path / "new.json",
        {"f": {**beta("beta"), "version": 7}, "g": beta("beta", "nobody")},
    )
    status, report, _ = run_json(capsys, old, new, lines(tmp_path / "c.jsonl", *USERS))
    assert status == 0
    assert report["flags"] == {}
    assert report["unflipped"] == ["g"]  # changed, flips none of these
    assert (
        main(["diff", str(old), str(new), "--contexts", str(tmp_path / "c.jsonl")]) == 0
    )
    out = capsys.readouterr().out
    assert "changed, but flip none of these contexts: g" in out
    assert out.rstrip().endswith("0 flags flip 0 of 4 contexts; 0 added, 0 removed")


def test_a_flag_added_or_removed_is_a_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path / "old.json", {"f": ON})
    c = lines(tmp_path / "c.jsonl", *USERS)
    added = write(tmp_path / "added.json", {"f": ON, "g": ON})
    removed = write(tmp_path / "removed.json", {})
    assert main(["diff", str(old), str(added), "--contexts", str(c)]) == 1
    assert "added: g" in capsys.readouterr().out
    assert main(["diff", str(old), str(removed), "--contexts", str(c)]) == 1
    assert "removed: f" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("which", "content", "message"),
    [
        ("old", None, r"error: .*old\.json: cannot read the flag file: No such file"),
        ("new", '{"flags": {\n  "f": }', r"error: .*new\.json:2:8: invalid JSON"),
        (
            "contexts",
            None,
            r"error: .*c\.jsonl: cannot read the contexts: No such file",
        ),
    ],
    ids=["missing flag file", "malformed flag file", "missing contexts"],
)
def test_an_unreadable_file_exits_2_naming_it(
    which: str,
    content: str | None,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = {
        "old": write(tmp_path / "old.json", {"f": ON}),
        "new": write(tmp_path / "new.json", {"f": ON}),
        "contexts": lines(tmp_path / "c.jsonl", *USERS),
    }
    if content is None:
        paths[which].unlink()
    else:
        paths[which].write_text(content)
    argv = [
        "diff",
        str(paths["old"]),
        str(paths["new"]),
        "--contexts",
        str(paths["contexts"]),
    ]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert re.fullmatch(message + r".*\n", err), err
    assert out == ""


def test_a_malformed_yaml_flag_file_exits_2_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path / "old.yaml", {"f": ON})
    new = tmp_path / "new.yaml"
    new.write_text("flags:\n  f:\n    on: true\n    on: false\n")
    assert (
        main(
            [
                "diff",
                str(old),
                str(new),
                "--contexts",
                str(lines(tmp_path / "c", *USERS)),
            ]
        )
        == 2
    )
    assert "new.yaml:4:5: invalid YAML" in capsys.readouterr().err


def test_a_missing_contexts_option_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["diff", "old.json", "new.json"])
    assert exc.value.code == 2
    assert "the following arguments are required: --contexts" in capsys.readouterr().err


# ------------------------------------------------------------ the contexts
def test_malformed_lines_are_reported_with_their_number_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"  # a byte-order mark first is no error
        + json.dumps(USERS[0]).encode()
        + b"\n"
        + b"{not json\n"
        + b"\n"  # blank: no context, no error
        + b"[1, 2]\n"
        + b'{"kind": "user", "key": ""}\n'
        + b'{"kind": "user", "key": "caf\xe9"}\n'  # Latin-1, not UTF-8
        + json.dumps(USERS[1]).encode()  # the last line without a newline
    )
    status, report, err = run_json(
        capsys,
        write(tmp_path / "old.json", {"f": beta("beta")}),
        write(tmp_path / "new.json", {"f": beta("pro")}),
        path,
    )
    assert status == 1
    assert report["contexts"] == 2
    examples = [t["examples"] for t in report["flags"]["f"]["transitions"]]
    assert examples == [["bob"], ["alice"]]  # false -> true, true -> false
    assert [s["line"] for s in report["skipped"]] == [2, 4, 5, 6]
    messages = err.splitlines()
    assert [m.split(": skipped: ")[0] for m in messages] == [
        f"{path}:{n}" for n in (2, 4, 5, 6)
    ]
    assert "invalid JSON" in messages[0]
    assert "a context must be a JSON object" in messages[1]
    assert "not a valid context" in messages[2]
    assert "UTF-8" in messages[3]


def test_many_malformed_lines_are_counted_past_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, report, err = run_json(
        capsys,
        write(tmp_path / "old.json", {"f": ON}),
        write(tmp_path / "new.json", {"f": ON}),
        lines(tmp_path / "c.jsonl", *(["nope"] * 25), USERS[0]),
    )
    assert status == 0
    assert len(report["skipped"]) == 25
    messages = err.splitlines()
    assert len(messages) == 21
    assert messages[-1] == f"{tmp_path / 'c.jsonl'}: 5 more line(s) skipped"


def test_attributes_the_old_user_json_ignores_are_counted_and_said(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 77: "flip none" where 659 of 2,000 contexts flip, ``plan`` dropped silently.

    A context without ``kind`` is LaunchDarkly's old user JSON: its
    top-level ``plan`` is not an attribute, as LaunchDarkly reads it. The
    report is of that reading, and says what was left out and how to write it.
    """
    old = write(tmp_path / "old.json", {"f": ON})
    new = write(tmp_path / "new.json", {"f": beta("beta")})
    contexts = lines(
        tmp_path / "c.jsonl",
        {"key": "u1", "plan": "beta"},
        {"kind": "user", "key": "u2", "plan": "beta"},  # read whole: it flips
        {"key": "u3", "plan": "beta"},
        {"key": "u4", "tier": 1, "plan": "beta"},
        {"key": "u5", "custom": {"plan": "beta"}},  # read whole: it flips
    )
    status, report, _ = run_json(capsys, old, new, contexts)
    assert (status, report["contexts"], report["flipped"]) == (1, 5, 2)
    fix = (
        'a context without "kind" is LaunchDarkly\'s old user JSON, which has '
        'its custom attributes under "custom". Write {"kind": "user", "key": '
        '..., "plan": ...}, or {"key": ..., "custom": {"plan": ...}}'
    )
    assert report["ignored"] == {
        "contexts": 3,
        "sets": [
            {
                "attributes": ["plan"],
                "contexts": 2,
                "line": 1,
                "example": "u1",
                "fix": f"'plan' ignored: {fix}",
            },
            {
                "attributes": ["plan", "tier"],
                "contexts": 1,
                "line": 4,
                "example": "u4",
                "fix": f"'plan', 'tier' ignored: {fix}",
            },
        ],
    }
    # A WARNING line per distinct set of names, with where and how to write it.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{contexts}: line 1 (key 'u1') and 1 more context: 'plan' ignored: {fix}",
        f"{contexts}: line 4 (key 'u4'): 'plan', 'tier' ignored: {fix}",
    ]
    caplog.clear()
    # The text report says it under its first line.
    assert main(["diff", str(old), str(new), "--contexts", str(contexts)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == [
        "5 contexts, 1 flag before, 1 after",
        "3 of them evaluated without attributes their JSON has, as LaunchDarkly "
        f"reads it: line 1 (key 'u1') and 1 more context: 'plan' ignored: {fix}",
    ]
    assert printed[-1] == "1 flag flips 2 of 5 contexts; 0 added, 0 removed"


def test_ignored_attributes_are_said_for_so_many_sets_then_counted(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    contexts = lines(
        tmp_path / "c.jsonl", *({"key": f"u{i}", f"a{i}": 1} for i in range(25))
    )
    _, report, _ = run_json(
        capsys,
        write(tmp_path / "old.json", {"f": ON}),
        write(tmp_path / "new.json", {"f": ON}),
        contexts,
    )
    assert report["ignored"]["contexts"] == 25
    assert len(report["ignored"]["sets"]) == 20
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 21
    assert warnings[-1] == f"{contexts}: 5 more contexts had other attributes ignored"


@pytest.mark.parametrize("indent", [None, 2], ids=["one-line", "pretty"])
def test_a_json_array_of_contexts_is_read_like_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], indent: int | None
) -> None:
    # It reported "0 contexts ... flip none" and exited 0: each line of the
    # array was skipped as "not a JSON object" or "invalid JSON".
    old = write(tmp_path / "old.json", {"f": beta("beta")})
    new = write(tmp_path / "new.json", {"f": beta("pro")})
    as_lines = run_json(capsys, old, new, lines(tmp_path / "c.jsonl", *USERS))
    array = tmp_path / "c.json"
    array.write_text("\n" + json.dumps(USERS, indent=indent) + "\n")
    as_array = run_json(capsys, old, new, array)
    assert as_array == as_lines
    status, report, err = as_array
    assert (status, report["contexts"], err) == (1, 4, "")
    assert report["flags"]["f"]["changed"] == 3


def test_bad_elements_of_a_json_array_are_skipped_by_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        "[\n"
        + json.dumps(USERS[0])
        + ",\n  [1, 2],\n"
        + '  {"kind": "user",\n   "key": ""},\n'
        + json.dumps(USERS[1])
        + "\n]\n"
    )
    status, report, err = run_json(
        capsys,
        write(tmp_path / "old.json", {"f": beta("beta")}),
        write(tmp_path / "new.json", {"f": beta("pro")}),
        path,
    )
    assert (status, report["contexts"]) == (1, 2)
    assert [s["line"] for s in report["skipped"]] == [3, 4]
    assert "a context must be a JSON object" in report["skipped"][0]["error"]
    assert "not a valid context" in report["skipped"][1]["error"]
    assert [m.split(": skipped: ")[0] for m in err.splitlines()] == [
        f"{path}:3",
        f"{path}:4",
    ]


def test_broken_json_in_an_array_is_named_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.json"
    path.write_text("[\n" + json.dumps(USERS[0]) + ",\n{not json},\n" + "]")
    status, report, err = run_json(
        capsys,
        write(tmp_path / "old.json", {"f": beta("beta")}),
        write(tmp_path / "new.json", {"f": beta("pro")}),
        path,
    )
    assert (status, report["contexts"]) == (1, 1)
    assert err.startswith(f"{path}:3: skipped: invalid JSON")
    (skipped,) = report["skipped"]
    assert skipped["line"] == 3
    assert "invalid JSON" in skipped["error"]
    assert "the rest is not read" in skipped["error"]


@pytest.mark.parametrize(
    "text",
    [
        '{"kind": "user",\n "key": "alice"}\n',  # an object over several lines
        '{"contexts": [{"kind": "user", "key": "alice"}]}\n',
        "kind,key\nuser,alice\n",
    ],
    ids=["pretty-object", "wrapped", "csv"],
)
def test_a_contexts_file_with_nothing_usable_is_an_error_saying_the_forms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "c.txt"
    path.write_text(text)
    status = main(
        [
            "diff",
            str(write(tmp_path / "old.json", {"f": beta("beta")})),
            str(write(tmp_path / "new.json", {"f": beta("pro")})),
            "--contexts",
            str(path),
        ]
    )
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.splitlines()[-1] == (
        f"error: {path}: no context could be read; expected JSON Lines "
        "(one context object a line) or one JSON array of context objects, "
        "in LaunchDarkly's context JSON"
    )


# ------------------------------------------------------------ file formats
def test_yaml_and_json_files_give_the_same_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = {"f": beta("beta"), "g": ON}, {"f": beta("pro"), "h": ON}
    c = lines(tmp_path / "c.jsonl", *USERS)
    reports = []
    for old_name, new_name in (
        ("old.json", "new.json"),
        ("old.yaml", "new.yaml"),
        ("old.json", "new.yml"),
    ):
        status, report, _ = run_json(
            capsys, write(tmp_path / old_name, old), write(tmp_path / new_name, new), c
        )
        assert status == 1
        reports.append(report)
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["flags"]["f"]["changed"] == 3  # alice, bob, carol
    assert reports[0]["added"] == ["h"]


def test_flag_values_are_compared_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("flagValues:\n  banner: Welcome\n  limit: 10\n")
    new.write_text("flagValues:\n  banner: Welcome back\n  limit: 10\n")
    status, report, _ = run_json(capsys, old, new, lines(tmp_path / "c.jsonl", *USERS))
    assert status == 1
    assert list(report["flags"]) == ["banner"]
    (t,) = report["flags"]["banner"]["transitions"]
    assert (t["from"], t["to"], t["count"]) == ("Welcome", "Welcome back", 4)


# ------------------------------------------------------------ the docs
def test_the_worked_example_in_the_docs_is_what_the_command_prints(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = Path(__file__).parent.parent / "docs" / "testing.md"
    blocks = dict(
        re.findall(
            r"<!-- diff: ([\w.-]+) -->\n```\w+\n(.*?)```", page.read_text(), re.S
        )
    )
    assert set(blocks) == {"flags.yaml", "flags-new.yaml", "contexts.jsonl", "output"}
    for name in ("flags.yaml", "flags-new.yaml", "contexts.jsonl"):
        (tmp_path / name).write_text(blocks[name])
    command, printed = blocks["output"].split("\n", 1)
    assert command.startswith("$ aioflags ")
    monkeypatch.chdir(tmp_path)
    assert main(command.split()[2:]) == 1
    out, err = capsys.readouterr()
    assert err + out == printed
