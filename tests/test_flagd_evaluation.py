"""flagd flags with targeting: what a rule's value chooses, as flagd's documentation says.

A rule that gives a variant's name serves it (TARGETING_MATCH); null
serves the default variant (DEFAULT); a name no variant has is an error
(GENERAL); ``true``/``false`` name the variants ``"true"``/``"false"``; a
number names the variant its text is. The operators themselves are
tests/test_flagd_logic.py's.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aioflags import Context
from aioflags._datasystem._store import snapshot_from_data
from aioflags._systems._flagd._data._definitions import flagd_flags

EMAIL = {"var": "email"}


def flag(
    targeting: Any, variants: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "state": "ENABLED",
        "variants": {"a": "A", "b": "B", "true": "T", "false": "F", "1": "one"}
        if variants is None
        else variants,
        "defaultVariant": "a",
        "targeting": targeting,
        **fields,
    }


def evaluate(definition: dict[str, Any], context: Context, default: Any = "d") -> Any:
    snapshot = snapshot_from_data(dict(flagd_flags({"flags": {"f": definition}})))
    return snapshot.variation_detail("f", context, default)


USER = Context.create("u1", attributes={"email": "x@example.com", "n": 3})


@pytest.mark.parametrize(
    ("targeting", "value", "index", "reason"),
    [
        # A variant's name.
        (
            {"if": [{"==": [EMAIL, "x@example.com"]}, "b", "a"]},
            "B",
            1,
            "TARGETING_MATCH",
        ),
        # null: the default variant, reason DEFAULT.
        ({"if": [{"==": [EMAIL, "nobody"]}, "b"]}, "A", 0, "DEFAULT"),
        # true and false name "true" and "false".
        ({"==": [EMAIL, "x@example.com"]}, "T", 2, "TARGETING_MATCH"),
        ({"!=": [EMAIL, "x@example.com"]}, "F", 3, "TARGETING_MATCH"),
        # A number names the variant its text is.
        ({"-": [{"var": "n"}, 2]}, "one", 4, "TARGETING_MATCH"),
        # Even when the default variant's name is the rule's constant.
        ("b", "B", 1, "TARGETING_MATCH"),
    ],
)
def test_what_a_rule_gives_chooses_the_variant(
    targeting: Any, value: Any, index: int, reason: str
) -> None:
    detail = evaluate(flag(targeting), USER)
    assert (detail.value, detail.variation_index, detail.reason) == (
        value,
        index,
        {"kind": reason},
    )


@pytest.mark.parametrize(
    "targeting",
    [
        "zzz",  # a name no variant has
        {"cat": ["b", "b"]},  # the same, computed
        {"var": "n"},  # 3: no variant "3"
        [1, 2],  # neither a name nor null
    ],
)
def test_a_value_that_names_no_variant_is_general(targeting: Any) -> None:
    detail = evaluate(flag(targeting), USER)
    assert (detail.value, detail.reason) == (
        "d",
        {"kind": "ERROR", "errorKind": "GENERAL"},
    )


def test_a_variant_whose_value_is_null_is_never_served() -> None:
    detail = evaluate(flag("n", variants={"a": "A", "n": None}), USER)
    assert detail.reason == {"kind": "ERROR", "errorKind": "GENERAL"}


def test_a_rule_that_fails_as_it_runs_is_general() -> None:
    # A division by zero: flagd's Python provider raises; its OpenFeature
    # client reports GENERAL.
    detail = evaluate(flag({"/": [{"var": "n"}, 0]}), USER)
    assert (detail.value, detail.reason) == (
        "d",
        {"kind": "ERROR", "errorKind": "GENERAL"},
    )


def test_without_a_default_variant_null_is_the_callers_default() -> None:
    definition = flag({"if": [False, "b"]}, defaultVariant=None)
    detail = evaluate(definition, USER, "mine")
    assert (detail.value, detail.variation_index, detail.reason) == (
        "mine",
        None,
        {"kind": "DEFAULT"},
    )
    stray = flag({"if": [False, "b"]}, defaultVariant="nope")
    assert evaluate(stray, USER).reason == {"kind": "ERROR", "errorKind": "GENERAL"}


def test_a_disabled_flag_never_runs_its_rule() -> None:
    # Not even a rule flagd cannot apply: disabled comes first.
    definition = flag({"nope": [1]}, state="DISABLED")
    assert evaluate(definition, USER).reason == {"kind": "DISABLED"}


def test_a_rule_flagd_cannot_apply_is_a_parse_error_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="aioflags.evaluation")
    snapshot = snapshot_from_data(
        dict(flagd_flags({"flags": {"f": flag({"if": [{"nope": [1]}, "b"]})}}))
    )
    for _ in range(3):
        detail = snapshot.variation_detail("f", USER, "d")
        assert (detail.value, detail.reason) == (
            "d",
            {"kind": "ERROR", "errorKind": "PARSE_ERROR"},
        )
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1
    assert "'f'" in said[0] and "unknown operator 'nope'" in said[0]


def test_a_keyless_context_has_a_null_targeting_key() -> None:
    keyless = Context._given(None, {"email": "x@example.com"})
    targeting = {
        "if": [
            {"==": [{"var": "targetingKey"}, None]},
            "a",
            {"==": [EMAIL, "x@example.com"]},
        ]
    }
    assert evaluate(flag(targeting), keyless).value == "A"
    assert evaluate(flag(targeting), USER).value == "T"
    # The fractional shorthand buckets nothing without a key: null.
    shorthand = {"fractional": [["a", 50], ["b", 50]]}
    assert evaluate(flag(shorthand), keyless).reason == {"kind": "DEFAULT"}
    assert evaluate(flag(shorthand), USER).reason == {"kind": "TARGETING_MATCH"}


def test_the_flag_key_and_time_are_flagds_to_give() -> None:
    targeting = {
        "if": [
            {
                "and": [
                    {"==": [{"var": "$flagd.flagKey"}, "f"]},
                    {">": [{"var": "$flagd.timestamp"}, 1_700_000_000]},
                ]
            },
            "b",
        ]
    }
    assert evaluate(flag(targeting), USER).value == "B"


def test_a_sync_context_is_seen_under_the_contexts_own_attributes() -> None:
    # flagd's static context (a sync server's sync_context), as the reader
    # puts it in each flag with targeting.
    rule = {
        "if": [
            {"==": [{"var": "region"}, "eu"]},
            "b",
            {"==": [{"var": "email"}, "x@example.com"]},
        ]
    }
    flags = flagd_flags({"flags": {"f": flag(rule)}}, context={"region": "eu"})
    snapshot = snapshot_from_data(dict(flags))
    assert snapshot.variation_detail("f", USER, "d").value == "B"
    # The context's own attribute wins over the static one.
    local = Context.create("u1", attributes={"region": "us", "email": "x@example.com"})
    assert snapshot.variation_detail("f", local, "d").value == "T"
    # And the whole data (a computed path) sees both.
    whole = {"if": [{"var": {"cat": ["reg", "ion"]}}, {"var": "region"}]}
    variants = {"eu": "EU", "us": "US"}
    flags = flagd_flags(
        {"flags": {"g": flag(whole, variants=variants, defaultVariant="us")}},
        context={"region": "eu"},
    )
    snapshot = snapshot_from_data(dict(flags))
    assert snapshot.variation_detail("g", USER, "d").value == "EU"
    assert snapshot.variation_detail("g", local, "d").value == "US"
