"""flagd's flag definition files: read, told apart, refused, and evaluated as flagd has them.

What flagd's documentation says of a flag (flagd.md, "Evaluation"): a
disabled flag gives the caller's default with reason DISABLED; a flag
without targeting, its default variant with reason STATIC; no default
variant (null, absent or empty), the caller's default with reason
DEFAULT; metadata of the flag set merged under the flag's own. Targeting
has its own tests (tests/test_flagd_logic.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from aioflags import Client, Config, ConfigurationError, Context, DataSystem
from aioflags._datasystem._sources._files import FlagFileError, load_flag_files
from aioflags._datasystem._store import snapshot_from_data
from aioflags._systems._flagd._data._definitions import (
    FlagdDocumentError,
    flagd_flags,
    is_flagd_document,
)
from tests.flags import STRING_FLAG

USER = Context.create("u1", attributes={"email": "a@example.com"})

COLOURS: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "metadata": {"flagSetId": "web", "version": "v1"},
    "flags": {
        "colour": {
            "state": "ENABLED",
            "variants": {"red": "#f00", "blue": "#00f"},
            "defaultVariant": "blue",
            "metadata": {"version": "v7", "owner": "ui"},
        },
        "off": {
            "state": "DISABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
        "code-default": {
            "state": "ENABLED",
            "variants": {"a": 1, "b": 2},
            "defaultVariant": None,
        },
        "absent-default": {"state": "ENABLED", "variants": {"a": 1}},
        "empty-default": {
            "state": "ENABLED",
            "variants": {"a": 1},
            "defaultVariant": "",
        },
        "bool-default": {
            "state": "ENABLED",
            "variants": {"true": "yes", "false": "no"},
            "defaultVariant": True,
        },
        "unknown-default": {
            "state": "ENABLED",
            "variants": {"a": 1},
            "defaultVariant": "z",
        },
        "empty-targeting": {
            "state": "ENABLED",
            "variants": {"a": 1.5},
            "defaultVariant": "a",
            "targeting": {},
        },
    },
}


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def evaluated(data: dict[str, Any]) -> Any:
    flags = flagd_flags(data)
    return snapshot_from_data(dict(flags))


@pytest.mark.parametrize(
    ("data", "flagd"),
    [
        (COLOURS, True),
        ({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {}}, True),
        ({"flags": {}, "$evaluators": {}}, True),
        ({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}}}}, True),
        ({"flags": [{"key": "f", "state": "ENABLED", "variants": {"a": 1}}]}, True),
        ({"flags": {"f": STRING_FLAG}}, False),
        ({"flags": {}}, False),
        ({"flags": []}, False),
        ({"flagValues": {"f": 1}}, False),
        ([], False),
        (None, False),
    ],
)
def test_a_flagd_document_is_told_by_what_it_holds(data: Any, flagd: bool) -> None:
    assert is_flagd_document(data) is flagd


def test_each_flag_carries_flagds_definition_beside_what_every_tool_reads() -> None:
    flags = flagd_flags(COLOURS)
    assert flags["colour"] == {
        "key": "colour",
        "version": 1,
        "on": True,
        "variations": ["#f00", "#00f"],
        "flagd": {
            "state": "ENABLED",
            "variants": {"red": "#f00", "blue": "#00f"},
            "defaultVariant": "blue",
            # The flag's own metadata wins over its flag set's.
            "metadata": {"flagSetId": "web", "version": "v7", "owner": "ui"},
        },
    }
    assert flags["off"]["on"] is False
    # An empty targeting is no targeting; true names the variant "true".
    assert "targeting" not in flags["empty-targeting"]["flagd"]
    assert flags["bool-default"]["flagd"]["defaultVariant"] == "true"
    assert flags["empty-default"]["flagd"]["defaultVariant"] is None


def test_references_are_replaced_by_their_evaluators_one_level_deep() -> None:
    rule = {"in": [{"var": "email"}, ["a@example.com"]]}
    data: dict[str, Any] = {
        "flags": {
            "f": {
                "state": "ENABLED",
                "variants": {"a": 1, "b": 2},
                "targeting": {
                    "if": [{"$ref": "listed"}, "a", {"$ref": "nowhere"}, "b"]
                },
            }
        },
        "$evaluators": {"listed": rule, "nested": {"$ref": "listed"}},
    }
    targeting = flagd_flags(data)["f"]["flagd"]["targeting"]
    # A name no evaluator has stays a reference: flagd cannot apply it.
    assert targeting == {"if": [rule, "a", {"$ref": "nowhere"}, "b"]}
    data["flags"]["f"]["targeting"] = {"$ref": "nested"}
    assert flagd_flags(data)["f"]["flagd"]["targeting"] == {"$ref": "listed"}


def test_the_daemon_form_lists_its_flags_with_their_keys() -> None:
    flags = flagd_flags(
        {"flags": [{"key": "f", "state": "ENABLED", "variants": {"a": 1}}]}
    )
    assert list(flags) == ["f"]
    assert "key" not in flags["f"]["flagd"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"flags": {"f": {"variants": {"a": 1}}}}, "flags/f: 'state' must be"),
        (
            {"flags": {"f": {"state": "ON", "variants": {"a": 1}}}},
            "not 'ON'",
        ),
        ({"flags": {"f": {"state": "ENABLED"}}}, "flags/f: 'variants' must be"),
        (
            {"flags": {"f": {"state": "ENABLED", "variants": {}}}},
            "at least one variant",
        ),
        (
            {
                "flags": {
                    "f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": 3}
                }
            },
            "'defaultVariant' must be a variant's name or null, not a number",
        ),
        (
            {
                "flags": {
                    "f": {
                        "state": "ENABLED",
                        "variants": {"a": 1},
                        "metadata": {"x": []},
                    }
                }
            },
            "metadata 'x' must be a string, a number or a boolean, not an array",
        ),
        (
            {
                "flags": {"f": {"state": "ENABLED", "variants": {"a": 1}}},
                "metadata": {"": 1},
            },
            "a metadata key must not be empty",
        ),
        ({"flags": {"f": 1}}, "flags/f: a flag must be an object"),
        ({"flags": [{"state": "ENABLED", "variants": {"a": 1}}]}, "needs a 'key'"),
        (
            {
                "flags": [
                    {"key": "f", "state": "ENABLED", "variants": {"a": 1}},
                    {"key": "f", "state": "ENABLED", "variants": {"a": 1}},
                ]
            },
            "flag 'f' is defined twice",
        ),
        ({"flags": {}, "$evaluators": []}, "'$evaluators' must be an object"),
        ({"flags": {}, "$evaluator": {}}, "unknown top-level key '$evaluator'"),
        ({"$evaluators": {}}, "needs 'flags'"),
    ],
)
def test_a_document_flagd_would_refuse_is_refused_saying_where(
    data: Any, message: str
) -> None:
    with pytest.raises(FlagdDocumentError, match=message.replace("$", r"\$")):
        flagd_flags(data)


def test_a_flagd_file_refused_names_the_file_and_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "flags.flagd.json"
    bad.write_text(
        json.dumps({"flags": {"f": {"state": "ENABLED", "variants": {}}}}, indent=2)
    )
    # {, "flags": {, "f": {, "state"..., then "variants" on line 5, column 7.
    with pytest.raises(FlagFileError) as caught:
        load_flag_files(bad)
    assert str(caught.value).startswith(
        f"{bad}:5:7: flags/f/variants: 'variants' must be"
    )


def test_flagd_and_launchdarkly_files_merge_and_a_key_twice_is_an_error(
    tmp_path: Path,
) -> None:
    flagd = write(tmp_path / "a.json", COLOURS)
    ld = write(tmp_path / "b.json", {"flags": {"ld": STRING_FLAG}})
    flags, _ = load_flag_files(flagd, ld)
    assert "flagd" in flags["colour"] and "flagd" not in flags["ld"]
    twice = write(tmp_path / "c.json", {"flags": {"colour": STRING_FLAG}})
    with pytest.raises(FlagFileError, match="'colour' is defined more than once"):
        load_flag_files(flagd, twice)


def test_the_format_can_be_forced_either_way(tmp_path: Path) -> None:
    # No $schema and no flag with state: told apart as LaunchDarkly's,
    # unless the caller says flagd.
    empty = write(tmp_path / "empty.json", {"flags": {}})
    assert load_flag_files(empty) == ({}, {})
    assert load_flag_files(empty, format="flagd") == ({}, {})
    path = write(tmp_path / "flagd.json", COLOURS)
    with pytest.raises(FlagFileError, match="unknown top-level key"):
        load_flag_files(path, format="launchdarkly")


def test_fractional_two_is_kept_in_each_flag_that_asks_for_it() -> None:
    flags = flagd_flags(COLOURS, fractional=2)
    assert all(f["flagd"]["fractional"] == 2 for f in flags.values())
    assert all("fractional" not in f["flagd"] for f in flagd_flags(COLOURS).values())
    with pytest.raises(ValueError, match="fractional must be 2 or 3"):
        flagd_flags(COLOURS, fractional=1)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("format", "yaml", 'format=...) must be "flagd", "launchdarkly" or None'),
        ("fractional", 1, "fractional=...) must be 3"),
        ("fractional", 3.0, "fractional=...) must be 3"),
    ],
)
def test_the_file_data_system_refuses_a_format_or_bucketing_it_does_not_know(
    keyword: str, value: object, message: str
) -> None:
    with pytest.raises(
        ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        DataSystem.file("flags.json", **{keyword: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "default", "value", "index", "reason"),
    [
        ("colour", "x", "#00f", 1, {"kind": "STATIC"}),
        ("empty-targeting", 0.0, 1.5, 0, {"kind": "STATIC"}),
        ("bool-default", "x", "yes", 0, {"kind": "STATIC"}),
        # A disabled flag: the caller's default, whatever its default variant.
        ("off", "x", "x", None, {"kind": "DISABLED"}),
        # No default variant: flagd's "code default", the caller's.
        ("code-default", 9, 9, None, {"kind": "DEFAULT"}),
        ("absent-default", 9, 9, None, {"kind": "DEFAULT"}),
        ("empty-default", 9, 9, None, {"kind": "DEFAULT"}),
        # A default variant that names none: an error, where it would serve.
        ("unknown-default", 9, 9, None, {"kind": "ERROR", "errorKind": "GENERAL"}),
        ("nope", 9, 9, None, {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}),
    ],
)
def test_a_flag_without_targeting_evaluates_as_flagd_says(
    key: str, default: Any, value: Any, index: int | None, reason: dict[str, Any]
) -> None:
    detail = evaluated(COLOURS).variation_detail(key, USER, default)
    assert (detail.value, detail.variation_index, detail.reason) == (
        value,
        index,
        reason,
    )


def test_a_value_of_the_wrong_type_is_the_typed_methods_error() -> None:
    snapshot = evaluated(COLOURS)
    detail = snapshot.bool_variation_detail("colour", USER, False)
    assert (detail.value, detail.error_kind) == (False, "WRONG_TYPE")
    # A disabled flag gives the default without a type to check, as flagd.
    assert snapshot.int_variation_detail("off", USER, 3).reason == {"kind": "DISABLED"}


def test_the_variant_name_and_the_metadata_are_the_snapshots_to_tell() -> None:
    snapshot = evaluated(COLOURS)
    detail = snapshot.variation_detail("colour", USER, "x")
    assert snapshot.openfeature_variant("colour", detail) == "blue"
    assert snapshot.openfeature_reason("colour", detail) == "STATIC"
    assert snapshot.flag_metadata("colour") == {
        "flagSetId": "web",
        "version": "v7",
        "owner": "ui",
    }
    # The flag set's metadata alone, for a flag without its own.
    assert snapshot.flag_metadata("off") == {"flagSetId": "web", "version": "v1"}
    off = snapshot.variation_detail("off", USER, "x")
    assert snapshot.openfeature_variant("off", off) is None
    assert snapshot.openfeature_reason("off", off) == "DISABLED"
    # A LaunchDarkly flag: no metadata, its index as the variant.
    ld = snapshot_from_data({"ld": {**STRING_FLAG, "version": 1}})
    ld_detail = ld.variation_detail("ld", USER, "x")
    assert ld_detail.variation_index is not None
    assert ld.flag_metadata("ld") == {}
    assert ld.openfeature_variant("ld", ld_detail) == str(ld_detail.variation_index)
    assert snapshot.flag_metadata("nope") == {}
    assert (snapshot.flag_format("colour"), ld.flag_format("ld")) == (
        "flagd",
        "launchdarkly",
    )
    assert snapshot.flag_format("nope") is None


def test_openfeature_details_are_the_three_methods_answers_with_read_only_metadata() -> (
    None
):
    """``openfeature_details``: reason, variant and metadata from one lookup.

    The same answers as ``openfeature_reason``, ``openfeature_variant`` and
    ``flag_metadata``; the metadata the flag's own mapping, which no caller
    can change (``flag_metadata`` is a fresh dict each call, to change).
    """
    snapshot = evaluated(COLOURS)
    ld = snapshot_from_data({"ld": {**STRING_FLAG, "version": 1}})
    for snap, key in [(snapshot, "colour"), (snapshot, "off"), (ld, "ld")]:
        detail = snap.variation_detail(key, USER, "x")
        reason, variant, metadata = snap.openfeature_details(key, detail)
        assert reason == snap.openfeature_reason(key, detail)
        assert variant == snap.openfeature_variant(key, detail)
        assert metadata == snap.flag_metadata(key)
        with pytest.raises(TypeError):
            metadata["owner"] = "someone else"  # type: ignore[index,unused-ignore]
        assert snap.openfeature_details(key, detail)[2] == snap.flag_metadata(key)
    missing = snapshot.variation_detail("nope", USER, "x")
    assert snapshot.openfeature_details("nope", missing) == ("ERROR", None, {})
    # flag_metadata's copy is the caller's: changing it changes nothing here.
    mine = snapshot.flag_metadata("colour")
    mine["owner"] = "me"
    assert snapshot.openfeature_details("colour", missing)[2]["owner"] == "ui"


def test_a_flag_the_model_cannot_use_is_a_parse_error_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # (The reader refuses such a definition; the model is as careful with
    # one that reaches it another way: a plane's or a store's.)
    broken = {"key": "f", "version": 3, "flagd": {"state": "ENABLED", "variants": []}}
    snapshot = snapshot_from_data({"f": broken})
    for _ in range(2):
        detail = snapshot.variation_detail("f", USER, "d")
        assert (detail.value, detail.reason) == (
            "d",
            {"kind": "ERROR", "errorKind": "PARSE_ERROR"},
        )
    said = [r for r in caplog.records if "cannot be evaluated" in r.getMessage()]
    assert len(said) == 1
    assert "PARSE_ERROR" in said[0].getMessage()
    # Still a flagd flag: its context is flagd's (no targeting key needed).
    assert snapshot.flag_format("f") == "flagd"


@pytest.mark.asyncio
async def test_a_client_serves_a_flagd_file_and_its_edits(tmp_path: Path) -> None:
    path = write(tmp_path / "flags.flagd.json", COLOURS)
    config = Config(
        data_system=DataSystem.file(path, format="flagd"), send_events=False
    )
    async with Client(config) as client:
        await client.wait_ready(5)
        assert await client.variation("colour", USER, "x") == "#00f"
        detail = await client.variation_detail("code-default", USER, 5)
        assert (detail.value, detail.reason) == (5, {"kind": "DEFAULT"})
        assert client.snapshot().flag_metadata("colour")["owner"] == "ui"


def test_validate_says_what_a_flagd_file_gets_wrong_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    document: dict[str, Any] = {
        "flags": {
            "a": {
                "state": "ENABLED",
                "variants": {"x": 1, "y": "two", "z": None},
                "defaultVarient": "x",
                "defaultVariant": "q",
            },
            "b": {
                "state": "ENABLED",
                "variants": {"x": 1},
                "targeting": {"if": [{"$ref": "isBalmer"}, "x", None]},
            },
            "fine": {"state": "ENABLED", "variants": {"x": 1}, "defaultVariant": "x"},
        },
        "$evaluators": {
            "isBallmer": {"==": [{"var": "email"}, "b@example.com"]},
            "nested": {"$ref": "isBallmer"},
        },
    }
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(document, indent=2))
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == f"{path}: 3 flags, 0 segments: 6 problem(s)"
    said = err.splitlines()
    expected = [
        "flags/a/defaultVarient: unknown field 'defaultVarient' (did you mean "
        "'defaultVariant'?): flagd's flags have no such field, so it is ignored",
        "flags/a/variants: the variants' values are of 2 types (number, string)",
        "flags/a/variants/z: variant 'z' is null: flagd never serves it",
        "flags/a/defaultVariant: default variant 'q' is not one of the flag's variants",
        "flags/b/targeting/if/0: no evaluator is named 'isBalmer' (did you mean "
        "'isBallmer'?): the flag is a PARSE_ERROR",
        "$evaluators/nested: 'isBallmer' is referred to inside an evaluator",
    ]
    for text in expected:
        line = next((s for s in said if text in s), None)
        assert line is not None, (text, said)
        # Each at its file:line:col.
        assert re.match(rf"error: {re.escape(str(path))}:\d+:\d+: ", line), line
    assert len(said) == len(expected)
    # Nothing for the flag that is right.
    assert not any("flags/fine" in line for line in said)
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps({"flags": {"fine": document["flags"]["fine"]}}))
    assert main(["validate", str(fine)]) == 0


def test_the_flagd_schema_says_what_the_reader_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aioflags.__main__ import main
    from aioflags._datasystem._sources._lint import pointer, schema_problems

    assert main(["schema", "--format", "flagd"]) == 0
    schema = json.loads(capsys.readouterr().out)

    def problems(data: Any) -> list[str]:
        return [
            f"{pointer(p.at)}: {p.what}" for p in schema_problems(data, root=schema)
        ]

    listed = {"flags": [{"key": "f", "state": "ENABLED", "variants": {"a": 1}}]}
    goods: list[dict[str, Any]] = [COLOURS, listed, {"flags": {}, "$evaluators": {}}]
    for good in goods:
        assert problems(good) == []
        flagd_flags(good)  # and the reader takes it
    bad = {
        "flags": {
            "f": {"state": "ON", "variants": {"a": 1}, "defaultVarient": "a"},
            "g": {"variants": {"a": 1}, "metadata": {"m": []}},
        },
        "extra": 1,
    }
    found = problems(bad)
    assert any(p.startswith("flags/f/state: unknown value 'ON'") for p in found)
    assert any(p.startswith("flags/f/defaultVarient: unknown field") for p in found)
    assert "flags/g: 'state' is required" in found
    assert any(p.startswith("flags/g/metadata/m: a list") for p in found)
    assert any(p.startswith("extra: unknown field") for p in found)
