"""``aioflags validate``, the flagd schema and the reload's log on targeting that can only fail.

flagd takes these rules and says nothing until an evaluation meets them
(docs/flagd.md, "Checking a file"): a ``fractional`` whose weights are
all 0 (row 203) or whose weight is ``50.0`` (row 204), a ``fractional``
(row 205) or an ``if`` (row 206) naming a variant the flag lacks, a
``sem_ver`` with an operator it lacks (row 207), a ``$ref`` to nothing
(row 214: the reload's log says what ``validate`` says), and the schema
``aioflags schema --format flagd`` prints (row 244). Each is an error
where evaluations that meet it are errors, a warning where flagd serves
something all the same, at its ``file:line:col``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflags import Client, Config, Context, DataSystem
from aioflags.__main__ import main
from aioflags._datasystem._sources._lint import pointer, schema_problems
from aioflags._datasystem._sources._watch import SETTLE
from aioflags._datasystem._store import snapshot_from_data
from aioflags._systems._flagd._data._definitions import flagd_flags
from aioflags.testing import FakeClock

USER = Context.create("u1", attributes={"version": "2.0.0", "tier": 1})


def flagd(targeting: Any, **extra: Any) -> dict[str, Any]:
    """A flagd document of one flag ``f`` (variants ``a``, ``b``) with ``targeting``."""
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            "f": {
                "state": "ENABLED",
                "variants": {"a": "A", "b": "B"},
                "defaultVariant": "a",
                "targeting": targeting,
            }
        },
        **extra,
    }


def validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any
) -> tuple[int, str, list[str]]:
    """``aioflags validate`` of ``document``: the status, the summary, stderr's lines."""
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(document, indent=2))
    status = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return status, out.strip(), err.splitlines()


def placed(line: str, kind: str, path: Path, at: str) -> bool:
    """Whether ``line`` is ``KIND: PATH:LINE:COL: AT: ...``."""
    return (
        re.match(rf"{kind}: {re.escape(str(path))}:\d+:\d+: {re.escape(at)}: ", line)
        is not None
    )


def evaluate(document: Any) -> Any:
    """The detail of ``f`` for USER, from ``document`` as the reader takes it."""
    flags: dict[str, object] = dict(flagd_flags(document))
    return snapshot_from_data(flags).variation_detail("f", USER, "default")


# ------------------------------------------------------------------ warnings


def test_row203_a_fractional_whose_weights_are_all_0_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = flagd({"fractional": [["a", 0], ["b", 0]]})
    # flagd serves it: the fractional gives null, the default variant serves
    assert evaluate(document).reason == {"kind": "DEFAULT"}
    status, summary, said = validate(tmp_path, capsys, document)
    assert status == 0  # a warning: flagd serves the flag
    assert summary.endswith("valid, 1 warning(s)")
    [line] = said
    assert placed(
        line, "warning", tmp_path / "flags.json", "flags/f/targeting/fractional"
    )
    assert "every weight is 0" in line and "default variant" in line
    # A weight that is not 0 makes a split: nothing to say.
    fine = flagd({"fractional": [["a", 0], ["b", 1]]})
    assert validate(tmp_path, capsys, fine)[2] == []


def test_row204_a_fractional_weight_that_is_not_an_integer_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = flagd({"fractional": [["a", 50.0], ["b", 50]]})
    # flagd's Python provider and aioflags' bucketing refuse the whole
    # fractional: null for every context, the default variant served
    assert evaluate(document).reason == {"kind": "DEFAULT"}
    status, summary, said = validate(tmp_path, capsys, document)
    assert status == 0
    assert summary.endswith("valid, 1 warning(s)")
    [line] = said
    assert placed(
        line, "warning", tmp_path / "flags.json", "flags/f/targeting/fractional/0/1"
    )
    assert "weight 50.0 is not an integer" in line and "write 50" in line
    # 25.5: no flagd takes it (no "write" to suggest); true: not a number
    said = validate(
        tmp_path, capsys, flagd({"fractional": [["a", 25.5], ["b", True]]})
    )[2]
    assert len(said) == 2
    assert "weight 25.5 is not an integer" in said[0] and "write" not in said[0]
    assert "weight True is not a number" in said[1]


def test_row207_a_sem_ver_operator_flagd_lacks_is_a_warning_naming_the_one_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = flagd(
        {"if": [{"sem_ver": [{"var": "version"}, "=>", "1.0.0"]}, "b", "a"]}
    )
    # the condition is never true: the else serves, 2.0.0 >= 1.0.0 or not
    assert evaluate(document).value == "A"
    status, _, said = validate(tmp_path, capsys, document)
    assert status == 0
    [line] = said
    assert placed(
        line, "warning", tmp_path / "flags.json", "flags/f/targeting/if/0/sem_ver/1"
    )
    assert "sem_ver has no operator '=>' (did you mean '>='?)" in line
    ok = flagd({"if": [{"sem_ver": [{"var": "version"}, ">=", "1.0.0"]}, "b", "a"]})
    assert evaluate(ok).value == "B"
    assert validate(tmp_path, capsys, ok)[2] == []


# -------------------------------------------------------------------- errors


def test_row205_a_fractional_naming_a_missing_variant_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = flagd({"fractional": [["a", 50], ["c", 50]]})
    status, summary, said = validate(tmp_path, capsys, document)
    assert status == 1
    assert summary.endswith("1 problem(s)")
    [line] = said
    assert placed(
        line, "error", tmp_path / "flags.json", "flags/f/targeting/fractional/1/0"
    )
    assert "variant 'c' is not one of the flag's variants" in line
    assert "(GENERAL)" in line
    # A fractional that only decides a condition names no variant.
    inner = flagd({"if": [{"==": [{"fractional": [["x", 1]]}, "x"]}, "a", "b"]})
    assert validate(tmp_path, capsys, inner)[2] == []


def test_row206_an_if_naming_a_missing_variant_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = flagd({"if": [{"==": [{"var": "tier"}, 1]}, "c", "a"]})
    # flagd: a name no variant has is an error where it is reached
    assert evaluate(document).reason == {"kind": "ERROR", "errorKind": "GENERAL"}
    status, _, said = validate(tmp_path, capsys, document)
    assert status == 1
    [line] = said
    assert placed(line, "error", tmp_path / "flags.json", "flags/f/targeting/if/1")
    assert "'c' is not one of the flag's variants" in line
    # Nested ifs, the else, true naming "true", a number naming its text;
    # what a condition compares with is no variant's name.
    document = {
        "flags": {
            "g": {
                "state": "ENABLED",
                "variants": {"true": 1, "false": 0, "7": 7},
                "targeting": {
                    "if": [
                        {"==": [{"var": "x"}, "nope"]},
                        {"if": [{"var": "y"}, True, 8]},
                        7,
                        "falsy",
                    ]
                },
            }
        }
    }
    said = validate(tmp_path, capsys, document)[2]
    assert sorted(line.split(": ")[2] for line in said) == [
        "flags/g/targeting/if/1/if/2",
        "flags/g/targeting/if/3",
    ]


def test_row206_a_missing_variant_inside_an_evaluator_is_said_there_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = flagd(
        {"$ref": "split"},
        **{"$evaluators": {"split": {"fractional": [["a", 1], ["c", 1]]}}},
    )
    status, _, said = validate(tmp_path, capsys, document)
    assert status == 1
    [line] = said
    assert placed(
        line, "error", tmp_path / "flags.json", "$evaluators/split/fractional/1/0"
    )
    assert "'c' is not one of flag 'f''s variants" in line


# --------------------------------------------------------------- $ref, reload


def test_row214_a_ref_to_nothing_is_said_alike_by_validate_and_the_reload_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    document = flagd({"if": [{"$ref": "nope"}, "b", "a"]})
    status, _, said = validate(tmp_path, capsys, document)
    assert status == 1
    assert "no evaluator is named 'nope'" in said[0]
    with caplog.at_level(logging.ERROR, logger="aioflags"):
        detail = evaluate(document)
    assert detail.reason == {"kind": "ERROR", "errorKind": "PARSE_ERROR"}
    [record] = [r for r in caplog.records if "cannot be evaluated" in r.getMessage()]
    assert "no evaluator is named 'nope'" in record.getMessage()
    assert "unknown operator" not in record.getMessage()


@pytest.mark.asyncio
async def test_row214_a_reload_into_a_ref_to_nothing_logs_what_validate_says(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(flagd({"if": [True, "b", "a"]})))
    clock = FakeClock()
    send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
    config = Config(
        data_system=DataSystem.file(path, reload=True, interval=1), send_events=False
    )
    async with Client(config, clock=clock) as client, send, receive:
        assert await client.variation("f", USER, None) == "B"
        client.add_flag_change_handler(send.send_nowait)
        await clock.wait_for_sleeper(within=1)  # between two checks of the file
        path.write_text(json.dumps(flagd({"if": [{"$ref": "nope"}, "b", "a"]})))
        os.utime(path, ns=(1, 1))  # a new stamp even on coarse clocks
        await clock.advance(1)
        await clock.wait_for_sleeper(within=SETTLE)  # the settle check
        await clock.advance(SETTLE)
        with anyio.fail_after(30):
            while "f" not in await receive.receive():
                pass
        detail = await client.variation_detail("f", USER, None)
    assert detail.reason == {"kind": "ERROR", "errorKind": "PARSE_ERROR"}
    said = [r.getMessage() for r in caplog.records if "PARSE_ERROR" in r.getMessage()]
    assert said and all("no evaluator is named 'nope'" in s for s in said), said


# -------------------------------------------------------------------- schema


def test_row244_the_flagd_schema_says_what_json_schema_can_of_these_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "--format", "flagd"]) == 0
    schema = json.loads(capsys.readouterr().out)

    def problems(document: Any) -> list[str]:
        return [
            f"{pointer(p.at)}: {p.what}" for p in schema_problems(document, root=schema)
        ]

    float_weight = problems(flagd({"fractional": [["a", 50.0], ["b", 50]]}))
    assert float_weight == [
        "flags/f/targeting/fractional/0/1: 50.0 is a number, where an integer "
        "or an object is expected"
    ]
    semver = problems(
        flagd({"if": [{"sem_ver": [{"var": "v"}, "=>", "1.0.0"]}, "b", "a"]})
    )
    assert len(semver) == 1 and semver[0].startswith(
        "flags/f/targeting/if/0/sem_ver/1: unknown value '=>'"
    )
    # In an evaluator too.
    evaluator = {"$evaluators": {"old": {"sem_ver": [{"var": "v"}, "=<", "1.0.0"]}}}
    [said] = problems(flagd({"$ref": "old"}, **evaluator))
    assert said.startswith("$evaluators/old/sem_ver/1: unknown value '=<'")
    # What the schema cannot say (a sum, a name among the variants), it
    # leaves to validate; what is right passes.
    goods = [
        flagd({"fractional": [{"var": "email"}, ["a", 50], ["b", {"var": "w"}]]}),
        flagd({"fractional": [["a"], ["b", 3]]}),
        flagd({"if": [{"sem_ver": [{"var": "v"}, "^", "1.0.0"]}, "b", None]}),
        flagd({"fractional": [["a", 0], ["b", 0]]}),
    ]
    for good in goods:
        assert problems(good) == []


# ------------------------------------------------- J1: a reader that raises


def _commands(path: Path, tmp_path: Path) -> dict[str, tuple[list[str], int]]:
    """Each command that reads flag files, on ``path``, and its exit status for a file it cannot read."""
    contexts = tmp_path / "contexts.jsonl"
    contexts.write_text('{"kind": "user", "key": "u1"}\n')
    other = tmp_path / "other.json"
    other.write_text(json.dumps(flagd({"if": [True, "b", "a"]})))
    app = tmp_path / "app.py"
    app.write_text("def f(c, x):\n    return c.variation('f', x, 'A')\n")
    return {
        "validate": (["validate", str(path)], 1),
        "diff": (["diff", str(path), str(other), "--contexts", str(contexts)], 2),
        "diff new": (["diff", str(other), str(path), "--contexts", str(contexts)], 2),
        "codegen": (["codegen", str(path), "-o", str(tmp_path / "out.py")], 2),
        "cleanup": (
            ["cleanup", "f", "--keep", '"A"', "--flags", str(path), str(app)],
            2,
        ),
    }


def _one_line(err: str, path: Path, cause: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}: "), lines
    assert cause in lines[0], lines
    assert "Traceback" not in err


@pytest.mark.slow  # (five commands each; cleanup imports libcst)
@pytest.mark.parametrize(
    ("raised", "cause"),
    [
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
        (RuntimeError("injected"), "(RuntimeError: injected)"),
    ],
    ids=["recursion", "bug"],
)
def test_J1_a_flagd_reader_that_raises_is_one_line_naming_the_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    cause: str,
) -> None:
    """J1: what the reader raises (deep targeting did) was a traceback in every command."""
    import aioflags._systems._flagd._reader as files

    def reader(*args: Any, **kwargs: Any) -> Any:
        raise raised

    path = tmp_path / "flags.json"
    path.write_text(json.dumps(flagd({"if": [True, "b", "a"]})))
    monkeypatch.setattr(files, "flagd_flags", reader)
    for name, (argv, status) in _commands(path, tmp_path).items():
        if name == "diff new":
            continue  # (the reader fails on the first file it reads: OLD)
        assert main(argv) == status, name
        _one_line(capsys.readouterr().err, path, cause)


def test_J1_validate_says_a_document_its_checks_cannot_walk_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """J1: what the reader took but the linter's walk could not (nested past it) is one line."""
    import aioflags._datasystem._sources._lint as lint

    def walk(*args: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(lint, "lint", walk)
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(flagd({"if": [True, "b", "a"]})))
    assert main(["validate", str(path)]) == 1
    _one_line(capsys.readouterr().err, path, "nested too deeply to check")


def test_J1_eval_on_a_flagd_reader_that_raises_names_the_file_without_a_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """J1: ``eval`` logged the reader's exception with its traceback; now the file and the cause."""
    import aioflags._systems._flagd._reader as files

    def reader(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    path = tmp_path / "flags.json"
    path.write_text(json.dumps(flagd({"if": [True, "b", "a"]})))
    monkeypatch.setattr(files, "flagd_flags", reader)
    assert main(["eval", "f", "--context", "u1", "--file", str(path)]) == 1
    said = [r.getMessage() for r in caplog.records]
    assert any(f"{path}: nested too deeply to read" in s for s in said), said
    assert not any(r.exc_info for r in caplog.records)
    assert json.loads(capsys.readouterr().out)["reason"]["kind"] == "ERROR"


def test_J1_json_nested_past_the_parser_is_one_line_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """J1: JSON nested 100,000 deep (past any parser's depth) stays one line naming the file."""
    path = tmp_path / "flags.json"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(
        '{"flags": {"f": {"state": "ENABLED", "variants": {"a": ' + deep + "}}}}"
    )
    for name, (argv, status) in _commands(path, tmp_path).items():
        assert main(argv) == status, name
        _one_line(capsys.readouterr().err, path, "nested too deeply to parse")
