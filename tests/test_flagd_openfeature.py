"""flagd flags through aioflags' OpenFeature provider: variant, reason, metadata, context.

What flagd's OpenFeature providers report for a flag: its variant's name,
flagd's reason word, the flag's metadata (its flag set's under its own),
and the context as OpenFeature gives it (a targeting key is optional).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from aioflags import Config, DataSystem
from aioflags.openfeature import AioflagsProvider, to_flagd_context

DOCUMENT: dict[str, Any] = {
    "metadata": {"flagSetId": "shop"},
    "flags": {
        "theme": {
            "state": "ENABLED",
            "variants": {"light": "#fff", "dark": "#000"},
            "defaultVariant": "dark",
            "metadata": {"owner": "ui", "rank": 2, "ratio": 0.5, "beta": True},
        },
        "beta": {
            "state": "DISABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
        "limit": {"state": "ENABLED", "variants": {"low": 10}, "defaultVariant": None},
        "ratio": {
            "state": "ENABLED",
            "variants": {"half": 0.5},
            "defaultVariant": "half",
        },
        "count": {"state": "ENABLED", "variants": {"two": 2}, "defaultVariant": "two"},
        "flag": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"},
        "stray": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "b"},
        # Targeting flagd cannot apply: PARSE_ERROR for every evaluation.
        "broken": {
            "state": "ENABLED",
            "variants": {"a": 1},
            "defaultVariant": "a",
            "targeting": {"no-such-operator": [1]},
        },
    },
}


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[OpenFeatureClient]:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(DOCUMENT))
    provider = AioflagsProvider(
        Config(data_system=DataSystem.file(path), send_events=False)
    )
    await asyncio.to_thread(api.set_provider_and_wait, provider)
    try:
        yield api.get_client()
    finally:
        await asyncio.to_thread(api.shutdown)
        api.clear_providers()


@pytest.mark.asyncio
async def test_a_variant_is_named_and_the_metadata_merged(
    client: OpenFeatureClient,
) -> None:
    # No targeting key: flagd needs none.
    detail = client.get_string_details("theme", "?")
    assert (detail.value, detail.variant, detail.reason) == (
        "#000",
        "dark",
        Reason.STATIC,
    )
    assert detail.error_code is None
    assert detail.flag_metadata == {
        "flagSetId": "shop",
        "owner": "ui",
        "rank": 2,
        "ratio": 0.5,
        "beta": True,
    }


@pytest.mark.asyncio
async def test_the_metadata_handed_out_cannot_change_the_next_calls(
    client: OpenFeatureClient,
) -> None:
    """One read-only mapping per flag is handed out, not a copy per call."""
    expected = {"flagSetId": "shop", "owner": "ui", "rank": 2, "ratio": 0.5}
    first = client.get_string_details("theme", "?").flag_metadata
    with pytest.raises(TypeError):
        first["owner"] = "someone else"  # type: ignore[index]
    with pytest.raises(TypeError):
        del first["owner"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        first.clear()  # type: ignore[attr-defined]
    again = client.get_string_details("theme", "?").flag_metadata
    assert again == {**expected, "beta": True}
    # (a flag without metadata of its own: its flag set's, untouched)
    assert client.get_boolean_details("beta", False).flag_metadata == {
        "flagSetId": "shop"
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("key", "default", "value", "reason", "code"),
    [
        ("beta", False, False, Reason.DISABLED, None),
        ("limit", 3, 3, Reason.DEFAULT, None),
        ("stray", 3, 3, Reason.ERROR, ErrorCode.GENERAL),
        ("missing", 3, 3, Reason.ERROR, ErrorCode.FLAG_NOT_FOUND),
    ],
)
async def test_flagds_reasons_and_errors_are_openfeatures(
    client: OpenFeatureClient,
    key: str,
    default: Any,
    value: Any,
    reason: Reason,
    code: ErrorCode | None,
) -> None:
    get = client.get_boolean_details if key == "beta" else client.get_integer_details
    detail = get(key, default, EvaluationContext("u1"))
    assert (detail.value, detail.reason, detail.error_code, detail.variant) == (
        value,
        reason,
        code,
        None,
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("context", [None, EvaluationContext(None, {"tier": 3})])
async def test_a_flag_flagd_cannot_evaluate_is_a_parse_error_without_a_targeting_key(
    client: OpenFeatureClient, context: EvaluationContext | None
) -> None:
    # flagd's context needs no targeting key, even for a flag that cannot
    # be compiled: the error is the flag's, not the context's.
    detail = client.get_integer_details("broken", 3, context)
    assert (detail.value, detail.reason, detail.error_code) == (
        3,
        Reason.ERROR,
        ErrorCode.PARSE_ERROR,
    )


@pytest.mark.asyncio
async def test_a_value_of_another_type_is_a_type_mismatch(
    client: OpenFeatureClient,
) -> None:
    detail = client.get_boolean_details("theme", True)
    assert (detail.value, detail.error_code) == (True, ErrorCode.TYPE_MISMATCH)


def test_flagds_context_keeps_every_attribute_under_its_own_name() -> None:
    context = to_flagd_context(
        EvaluationContext("u1", {"kind": "org", "name": "n", "tier": 3})
    )
    assert context.valid and context.key == "u1" and context.kind == "user"
    assert (context.get("kind"), context.get("name"), context.get("tier")) == (
        "org",
        "n",
        3,
    )
    keyless = to_flagd_context(EvaluationContext(None, {"tier": 3}))
    assert keyless.valid and keyless.key == "" and keyless.get("tier") == 3
    assert to_flagd_context(None).valid


@pytest.mark.asyncio
async def test_numbers_keep_flagds_types(client: OpenFeatureClient) -> None:
    # flagd converts no number to another: 0.5 is not an integer (not 0),
    # and a boolean is no number (a correction: flagd's Python provider
    # serves true as 1.0).
    ratio = client.get_integer_details("ratio", 7)
    assert (ratio.value, ratio.error_code) == (7, ErrorCode.TYPE_MISMATCH)
    assert client.get_float_details("ratio", 1.0).value == 0.5
    count = client.get_float_details("count", 1.0)
    assert (count.value, type(count.value), count.variant) == (2.0, float, "two")
    assert client.get_integer_details("count", 7).value == 2
    for get in (client.get_integer_details, client.get_float_details):
        flag = get("flag", 7)
        assert (flag.value, flag.error_code) == (7, ErrorCode.TYPE_MISMATCH)
    assert client.get_object_details("count", {}).error_code == ErrorCode.TYPE_MISMATCH
