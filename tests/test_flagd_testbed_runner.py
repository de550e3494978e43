"""contract-tests/flagd_testbed.py on a testbed of the tests' own.

flagd's testbed has no licence, so none of it is here: these suites and
flags are written for the test, in the testbed's layout and its step
vocabulary, so that CI proves the runner parses, selects, runs, counts and
reports without the testbed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.modules import load

runner = load("contract-tests/flagd_testbed.py", "flagd_testbed")

#: Two files the launchpad would merge into one document, and a selector's
#: file it leaves out.
SHAPES = {
    "flags": {
        "square": {
            "state": "ENABLED",
            "variants": {"small": 2, "large": 20},
            "defaultVariant": "large",
            "metadata": {"sides": 4, "owner": "geometry", "regular": True},
        },
        "circle": {
            "state": "DISABLED",
            "variants": {"red": "#f00", "blue": "#00f"},
            "defaultVariant": "red",
        },
    }
}
COLOURS = {
    "flags": {
        "changing-flag": {
            "state": "ENABLED",
            "variants": {"foo": "foo", "bar": "bar"},
            "defaultVariant": "foo",
        },
        "paint": {
            "state": "ENABLED",
            "variants": {"matt": "matt", "gloss": "gloss"},
            "defaultVariant": "gloss",
        },
    }
}
SELECTED = {
    "flags": {
        "circle": {
            "state": "ENABLED",
            "variants": {"red": "#f00", "blue": "#00f"},
            "defaultVariant": "blue",
        }
    },
    "metadata": {"flagSetId": "picked"},
}
TESTKIT = {
    "flags": {
        "ratio": {
            "state": "ENABLED",
            "variants": {"third": 0.33},
            "defaultVariant": "third",
        }
    }
}

PROVIDER_SUITE = """\
@file @rpc
Feature: shapes and colours

  Background:
    Given a stable flagd provider

  Scenario Outline: Values by type
    Given a <type>-flag with key "<key>" and a default value "<default>"
    When the flag was evaluated with details
    Then the resolved details value should be "<value>"
    And the reason should be "<reason>"

    Examples:
      | key    | type    | default | value | reason   |
      | square | Integer | 1       | 20    | STATIC   |
      | circle | String  | none    | none  | DISABLED |

    @fractional-v1
    Examples: an old bucketing
      | key    | type    | default | value | reason |
      | square | Integer | 1       | 20    | STATIC |

  Scenario: Metadata and variant
    Given a Integer-flag with key "square" and a default value "0"
    And a context containing a key "kind", with type "String" and with value "org"
    When the flag was evaluated with details
    Then the variant should be "large"
    And the error-code should be ""
    And the resolved metadata should contain
      | key     | metadata_type | value    |
      | sides   | Integer       | 4        |
      | owner   | String        | geometry |
      | regular | Boolean       | true     |

  Scenario: A wrong expectation fails where it is
    Given a String-flag with key "paint" and a default value "none"
    When the flag was evaluated with details
    Then the resolved details value should be "matt"

  Scenario: An unknown key
    Given a Boolean-flag with key "triangle" and a default value "true"
    When the flag was evaluated with details
    Then the resolved details value should be "true"
    And the error-code should be "FLAG_NOT_FOUND"

  Scenario: A flag change is an event
    Given a String-flag with key "changing-flag" and a default value "none"
    And a change event handler
    When the flag was modified
    And a change event was fired
    Then the flag should be part of the event payload

  @targetURI
  Scenario: Through a proxy
    Given a Boolean-flag with key "square" and a default value "true"
    When the flag was evaluated with details
"""

SELECTOR_SUITE = """\
Feature: a selector

  @file
  Scenario: The selected file's flags
    Given an option "selector" of type "String" with value "rawflags/selector-picked.json"
    And a stable flagd provider
    And a String-flag with key "circle" and a default value "none"
    When the flag was evaluated with details
    Then the resolved details value should be "#00f"
    And the resolved metadata should contain
      | key       | metadata_type | value  |
      | flagSetId | String        | picked |

  @rpc
  Scenario: Remote only
    Given a stable flagd provider
    When the flag was evaluated with details
"""

EVALUATOR_SUITE = """\
Feature: an evaluator

  Scenario: A float
    Given an evaluator
    And a Float-flag with key "ratio" and a fallback value "1.0"
    When the flag was evaluated with details
    Then the resolved details value should be "0.33"
    And the reason should be "STATIC"

  Scenario: A step no one wrote
    Given an evaluator
    When the moon is full
"""


def write(path: Path, text: str | dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if isinstance(text, str) else json.dumps(text))


@pytest.fixture
def testbed(tmp_path: Path) -> Path:
    root = tmp_path / "testbed"
    write(root / "flags" / "shapes.json", SHAPES)
    write(root / "flags" / "colours.json", COLOURS)
    write(root / "flags" / "selector-picked.json", SELECTED)
    write(root / "gherkin" / "shapes.feature", PROVIDER_SUITE)
    write(root / "gherkin" / "selector.feature", SELECTOR_SUITE)
    write(root / "evaluator" / "gherkin" / "ratio.feature", EVALUATOR_SUITE)
    write(root / "evaluator" / "flags" / "testkit-flags.json", TESTKIT)
    write(root / "version.txt", "0.0.1\n")
    return root


def test_the_runner_counts_each_suite_and_says_where_a_case_failed(
    testbed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "counts.json"
    status = runner.main(["--testbed", str(testbed), "--json", str(out)])
    assert status == 1  # a case failed
    suites = json.loads(out.read_text())["suites"]
    shapes = suites["gherkin/shapes.feature"]
    assert (shapes["passed"], shapes["failed"], shapes["skipped"]) == (5, 1, 2)
    assert shapes["skippedBy"] == {
        f"[file] {runner.FRACTIONAL_V1}": 1,
        f"[file] {runner.TARGET_URI}": 1,
    }
    (failure,) = shapes["failures"]
    assert failure["scenario"] == "A wrong expectation fails where it is"
    assert failure["step"] == 'the resolved details value should be "matt"'
    assert failure["expected"] == "value='matt'"
    assert failure["actual"].startswith("value='gloss' reason=STATIC variant='gloss'")
    selector = suites["gherkin/selector.feature"]
    assert (selector["passed"], selector["failed"]) == (1, 0)
    assert selector["skippedBy"] == {f"[file] {runner.RPC_ONLY}": 1}
    evaluator = suites["evaluator/gherkin/ratio.feature"]
    assert (evaluator["passed"], evaluator["failed"], evaluator["skipped"]) == (1, 1, 0)
    assert evaluator["failures"][0]["actual"] == "undefined step"
    printed = capsys.readouterr().out
    assert "gherkin/shapes.feature: 5 passed, 1 failed, 2 skipped" in printed
    assert "FAILED [file] A wrong expectation fails where it is" in printed
    assert "total: 7 passed, 2 failed, 3 skipped" in printed


def test_an_outline_row_is_one_case_with_its_tags_and_the_background(
    testbed: Path,
) -> None:
    cases = runner.load_cases(testbed, ["gherkin/shapes.feature"])
    rows = [c for c in cases if c.name == "Values by type"]
    assert [dict(c.row) for c in rows] == [
        {
            "key": "square",
            "type": "Integer",
            "default": "1",
            "value": "20",
            "reason": "STATIC",
        },
        {
            "key": "circle",
            "type": "String",
            "default": "none",
            "value": "none",
            "reason": "DISABLED",
        },
        {
            "key": "square",
            "type": "Integer",
            "default": "1",
            "value": "20",
            "reason": "STATIC",
        },
    ]
    assert rows[0].tags == {"file", "rpc"}
    assert rows[2].tags == {"file", "rpc", "fractional-v1"}
    assert rows[1].steps[0].text == "a stable flagd provider"
    assert (
        rows[1].steps[1].text
        == 'a String-flag with key "circle" and a default value "none"'
    )


def test_the_combined_document_is_the_launchpads_deep_merge(testbed: Path) -> None:
    combined = runner.combined_document(testbed / "flags")
    assert sorted(combined["flags"]) == ["changing-flag", "circle", "paint", "square"]
    assert combined["flags"]["circle"]["state"] == "DISABLED"  # selector-* left out
    merged = runner.deep_merge(
        {"a": {"x": 1, "y": {"z": 1}}}, {"a": {"y": {"w": 2}}, "b": 3}
    )
    assert merged == {"a": {"x": 1, "y": {"z": 1, "w": 2}}, "b": 3}


def test_values_compare_with_their_json_type() -> None:
    assert runner.same({"a": [1, 2.5]}, {"a": [1, 2.5]})
    assert not runner.same(1, 1.0)
    assert not runner.same(1, True)
    assert not runner.same({"a": 1}, {"a": 1, "b": 2})
    assert runner.CASTS["Object"]('{\\"k\\": true}') == {"k": True}
