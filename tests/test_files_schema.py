"""The JSON Schema for flag files (aioflags/flagfile.schema.json) against the flag files we ship.

Every flag file in examples/, the README and docs/ (each ```yaml or ```json
block with flags, flagValues or segments), and the flag JSON the tests
share, is valid against the schema, and loads and validates as the schema
says. The schema rejects what the loader and ``aioflags validate`` reject
for its shape. No JSON Schema library is a dependency: the linter's checker
(``_lint.schema_problems``) implements the keywords the schema uses and
refuses any other (so the schema cannot use one that goes unchecked).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from aioflags.__main__ import main
from aioflags._datasystem._sources._files import FlagFileError, load_flag_files
from aioflags._datasystem._sources._lint import pointer, schema_problems
from aioflags._datasystem._sources._yaml import JSONYamlLoader
from aioflags._systems._flagd._data._definitions import is_flagd_document
from tests.flags import BOOL_FLAG, STRING_FLAG, match_flag
from tests.modules import ROOT
from tests.test_files import NATURAL_YAML
from tests.test_validate import ON as VALIDATE_ON

SCHEMA: dict[str, Any] = json.loads(
    resources.files("aioflags").joinpath("flagfile.schema.json").read_text()
)


def errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """Where ``value`` breaks ``schema``: the linter's own check (``aioflags validate``)."""
    return [f"/{pointer(p.at)}: {p.what}" for p in schema_problems(value, schema)]


def _load_text(text: str, yaml: bool) -> Any:
    if not yaml:
        return json.loads(text)
    loader = JSONYamlLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


FLAG_FILE_KEYS = {"flags", "flagValues", "segments", "$schema"}
BLOCK = re.compile(r"```(yaml|json)\n(.*?)```", re.S)


#: The JSON files of tests/ that are not flag files.
NOT_FLAG_FILES = {
    # savvi's and gbstats' answers, recorded (tests/guard_streams.py)
    "tests/guard_references.json",
}


def flag_files() -> dict[str, tuple[str, str]]:
    """Every flag file we ship or show: name -> (suffix, text)."""
    found: dict[str, tuple[str, str]] = {}
    for folder in ("examples", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if str(path.relative_to(ROOT)) in NOT_FLAG_FILES:
                continue
            if path.suffix in (".json", ".yaml", ".yml"):
                found[str(path.relative_to(ROOT))] = (path.suffix, path.read_text())
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, match in enumerate(BLOCK.finditer(page.read_text())):
            language, text = match.groups()
            if "wrong on purpose" in text:  # (an example of validate's errors)
                continue
            data = _load_text(text, language == "yaml")
            if is_flagd_document(data):  # (FLAGD_FILES: flagd's schema)
                continue
            if isinstance(data, dict) and data and set(data) <= FLAG_FILE_KEYS:
                found[f"{page.name}#{n}"] = (f".{language}", text)
    # The flag JSON that the tests share, and the YAML they read as written.
    shared = {
        "bool": BOOL_FLAG,
        "string": STRING_FLAG,
        "match": match_flag({"attribute": "plan", "op": "in", "values": ["beta"]}),
        "validate-on": VALIDATE_ON,
    }
    found["tests/flags.py"] = (".json", json.dumps({"flags": shared}))
    found["tests/test_files.py#NATURAL_YAML"] = (".yaml", NATURAL_YAML)
    return found


FLAG_FILES = flag_files()


def flagd_files() -> dict[str, tuple[str, str]]:
    """Every flagd document the docs show: name -> (suffix, text)."""
    found: dict[str, tuple[str, str]] = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, match in enumerate(BLOCK.finditer(page.read_text())):
            language, text = match.groups()
            if "wrong on purpose" in text:
                continue
            if is_flagd_document(_load_text(text, language == "yaml")):
                found[f"{page.name}#{n}"] = (f".{language}", text)
    return found


FLAGD_FILES = flagd_files()


def test_the_flagd_page_shows_a_flagd_file() -> None:
    assert any(name.startswith("flagd.md#") for name in FLAGD_FILES), FLAGD_FILES


@pytest.mark.parametrize("name", FLAGD_FILES)
def test_every_flagd_file_we_show_is_valid_and_loads(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suffix, text = FLAGD_FILES[name]
    flagd_schema = json.loads(
        resources.files("aioflags").joinpath("flagd.schema.json").read_text()
    )
    data = _load_text(text, suffix != ".json")
    assert [p.what for p in schema_problems(data, root=flagd_schema)] == []
    path = tmp_path / f"flags{suffix}"
    path.write_text(text)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_flag_files_are_found_in_examples_and_docs() -> None:
    names = set(FLAG_FILES)
    assert {"examples/flags.json", "examples/flags.yaml"} <= names
    assert any(name.startswith("testing.md#") for name in names), names


@pytest.mark.parametrize("name", FLAG_FILES)
def test_every_flag_file_we_ship_or_show_is_valid_and_loads(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suffix, text = FLAG_FILES[name]
    assert errors(_load_text(text, suffix != ".json"), SCHEMA) == []
    path = tmp_path / f"flags{suffix}"
    path.write_text(text)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


#: Files the loader or ``aioflags validate`` refuses for their shape.
REFUSED: dict[str, Any] = {
    "not an object": [1],
    "an unknown top-level key": {"flagz": {}},
    "flags as a list": {"flags": []},
    "a flag that is not an object": {"flags": {"f": 5}},
    "a segment that is not an object": {"segments": {"s": "x"}},
    "on as text (YAML 1.2: on: yes)": {"flags": {"f": {"on": "yes"}}},
    "a version as text": {"flags": {"f": {"version": "1"}}},
    "variations as an object": {"flags": {"f": {"variations": {"a": 1}}}},
    "an offVariation as text": {"flags": {"f": {"offVariation": "1"}}},
    "a negative offVariation": {"flags": {"f": {"offVariation": -1}}},
    "a prerequisite without a key": {
        "flags": {"f": {"prerequisites": [{"variation": 0}]}}
    },
    "rules as text": {"flags": {"f": {"rules": "nope"}}},
    "clause values as text": {
        "flags": {"f": {"rules": [{"clauses": [{"op": "in", "values": "a"}]}]}}
    },
    "target values of numbers": {
        "flags": {"f": {"targets": [{"values": [1], "variation": 0}]}}
    },
    "a rollout bucket as a number": {
        "flags": {"f": {"fallthrough": {"rollout": {"variations": [1]}}}}
    },
    "segment included as text": {"segments": {"s": {"included": "u1"}}},
    "a segment rule weight as text": {"segments": {"s": {"rules": [{"weight": "5"}]}}},
    # The SDK ignores these, as LaunchDarkly's do; the linter says so.
    "an unknown field": {"flags": {"f": {"unknownField": 1}}},
    "a misspelt field": {"flags": {"f": {"variatons": [True]}}},
    "an unknown operator": {
        "flags": {"f": {"rules": [{"clauses": [{"op": "equals", "values": []}]}]}}
    },
    "a clause without op": {
        "flags": {"f": {"rules": [{"clauses": [{"operator": "in", "values": []}]}]}}
    },
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_the_schema_refuses_what_the_loader_or_validate_refuses(
    data: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert errors(data, SCHEMA) != []
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(data))
    try:
        load_flag_files(path)
    except FlagFileError:
        return
    assert main(["validate", str(path)]) == 1
    assert "error: " in capsys.readouterr().err


ACCEPTED: dict[str, Any] = {
    "nothing": None,
    "null sections": {"flags": None, "flagValues": None, "segments": None},
    "$schema for editors": {
        "$schema": "flagfile.schema.json",
        "flagValues": {"a": [1, {"b": None}]},
    },
    "null fields": {"flags": {"f": {"on": None, "offVariation": None}}},
}


@pytest.mark.parametrize("data", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_the_schema_accepts_what_the_loader_accepts(data: Any, tmp_path: Path) -> None:
    assert errors(data, SCHEMA) == []
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(data))
    load_flag_files(path)


def test_the_schema_command_prints_the_shipped_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA
