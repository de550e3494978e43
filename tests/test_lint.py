"""``aioflags validate`` as a linter (issue 62): typos, unknown operators, missing references, each at ``file:line:col``.

Every case here passed as "valid" before: each is a rule that silently never
matches, or a field the SDK silently ignores. The SDK stays as tolerant as
LaunchDarkly's (it loads these files); the linter says what is wrong, where,
and what was meant.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from aioflags.__main__ import main
from aioflags._datasystem._sources._files import load_flag_files

pytest.importorskip("yaml")

YAML = textwrap.dedent(
    """\
    flags:
      checkout:
        on: true
        variatons: [true, false]
        fallthrough: {variation: 1}
        prerequisites:
          - {key: login, variation: 0}
          - {key: sigin, variation: 0}
        rules:
          - clauses:
              - {attribute: plan, operator: in, values: [pro]}
            variation: 0
          - clauses:
              - attribute: plan
                op: equals
                values: [pro]
            variation: 0
          - clauses:
              - {attribute: plan, op: In, values: [pro]}
              - {attribute: "", op: segmentMatch, values: [beta-testers, betatesters]}
            variation: 0
      login:
        on: true
        variations: [true, false]
        fallthrough: {variation: 0}
    segments:
      beta-testers:
        included: [u1]
        exclude: [u2]
    """
)


def place(path: Path, line: int, needle: str) -> str:
    """``path:line:col`` of ``needle`` on line ``line`` of :data:`YAML`."""
    return f"{path}:{line}:{YAML.splitlines()[line - 1].index(needle) + 1}"


def run(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[str], str]:
    code = main(["validate", *map(str, paths)])
    captured = capsys.readouterr()
    return code, captured.err.splitlines(), captured.out


def test_typos_and_missing_references_each_at_their_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(YAML)
    code, errors, out = run(capsys, path)
    assert code == 1
    expected = [
        f"{place(path, 4, 'variatons')}: flags/checkout/variatons: unknown field 'variatons' (did you "
        "mean 'variations'?): LaunchDarkly's model has no such field, so it is ignored",
        f"{place(path, 11, '{')}: flags/checkout/rules/0/clauses/0: 'op' is required: a "
        "clause without one never matches",
        f"{place(path, 11, 'operator')}: flags/checkout/rules/0/clauses/0/operator: unknown field "
        "'operator' (did you mean 'op'?): LaunchDarkly's model has no such field, "
        "so it is ignored",
        f"{place(path, 15, 'op')}: flags/checkout/rules/1/clauses/0/op: unknown operator "
        "'equals': the clause never matches",
        f"{place(path, 19, 'op')}: flags/checkout/rules/2/clauses/0/op: unknown operator 'In' "
        "(did you mean 'in'?): the clause never matches",
        f"{place(path, 29, 'exclude')}: segments/beta-testers/exclude: unknown field 'exclude' (did "
        "you mean 'excluded'?): LaunchDarkly's model has no such field, so it is "
        "ignored",
        f"{place(path, 8, 'key')}: flags/checkout/prerequisites/1/key: prerequisite flag "
        "'sigin' is not defined (did you mean 'login'?): the flag serves its off "
        "variation",
        f"{place(path, 20, 'betatesters')}: flags/checkout/rules/2/clauses/1/values/1: segment "
        "'betatesters' is not defined (did you mean 'beta-testers'?): it matches "
        "no one",
    ]
    said = [e.removeprefix("error: ") for e in errors]
    assert said[: len(expected)] == expected
    # ...then what the compiler makes of it: with no variations, what serves
    # a variation is malformed (the misspelt field's consequence).
    rest = said[len(expected) :]
    assert rest and all(
        line.startswith(f"{place(path, 2, 'checkout')}: flag 'checkout': ")
        and "but the flag has 0 variations" in line
        for line in rest
    ), rest
    assert f"{path}: 2 flags, 1 segments: {len(said)} problem(s)" in out
    # The SDK loads it all the same, as LaunchDarkly's would.
    flags, segments = load_flag_files(path)
    assert set(flags) == {"checkout", "login"} and set(segments) == {"beta-testers"}


def test_json_places_are_exact_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "flags.json"
    data = {
        "flags": {
            "f": {
                "on": True,
                "variations": ["a", "b"],
                "rules": [
                    {"clauses": [{"attribute": "x", "op": "startWith"}], "variation": 1}
                ],
                "fallthrough": {"variation": 0, "rolout": None},
            }
        }
    }
    path.write_text(json.dumps(data, indent=2))
    code, errors, _ = run(capsys, path)
    assert code == 1
    assert errors == [
        f"error: {path}:14:15: flags/f/rules/0/clauses/0/op: unknown operator "
        "'startWith' (did you mean 'startsWith'?): the clause never matches",
        f"error: {path}:22:9: flags/f/fallthrough/rolout: unknown field 'rolout' "
        "(did you mean 'rollout'?): LaunchDarkly's model has no such field, so it "
        "is ignored",
    ]


def test_with_two_files_each_error_names_its_file_and_references_cross(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base.json"
    base.write_text(
        json.dumps(
            {
                "flags": {
                    "login": {"variations": [True], "fallthrough": {"variation": 0}}
                }
            },
            indent=1,
        )
    )
    more = tmp_path / "more.yaml"
    more.write_text(
        "flags:\n"
        "  checkout:\n"
        "    prerequisites: [{key: login, variation: 0}]\n"  # in base.json: fine
        "    variations: [1]\n"
        "    offVariation: 3\n"
        "    salt: 5\n"
    )
    code, errors, out = run(capsys, base, more)
    assert code == 1
    assert errors == [
        f"error: {more}:6:5: flags/checkout/salt: 5 is an integer, where text is "
        "expected (evaluations that reach it are MALFORMED_FLAG)",
    ]
    assert "2 flags, 0 segments: 1 problem(s)" in out
    # The compiler's verdicts say where the flag is too.
    more.write_text(
        "flags:\n  checkout:\n    variations: [1]\n    offVariation: 3\n"
        "    fallthrough: {variation: 0}\n"
    )
    code, errors, _ = run(capsys, base, more)
    assert errors == [
        f"error: {more}:2:3: flag 'checkout': offVariation serves variation 3,"
        " but the flag has 1 variation (evaluations that reach it are MALFORMED_FLAG)"
    ]


def test_a_clean_file_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(
        "flags:\n"
        "  f:\n"
        "    on: true\n"
        "    variations: [a, b]\n"
        "    rules:\n"
        "      - clauses: [{attribute: '', op: segmentMatch, values: [s]}]\n"
        "        variation: 1\n"
        "    fallthrough: {variation: 0}\n"
        "segments:\n"
        "  s: {included: [u1]}\n"
    )
    code, errors, out = run(capsys, path)
    assert (code, errors) == (0, [])
    assert out.endswith("1 flags, 1 segments: valid\n")


def test_the_docs_example_is_what_validate_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (Path(__file__).parent.parent / "docs" / "testing.md").read_text()
    start = page.index("# flags.yaml, wrong on purpose")
    text = page[start : page.index("```", start)]
    shown = page.index("```text\n$ aioflags validate flags.yaml\n", start)
    output = page[shown : page.index("```", shown + 3)].splitlines()[2:]
    (tmp_path / "flags.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    code = main(["validate", "flags.yaml"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.splitlines() + captured.out.splitlines() == output
