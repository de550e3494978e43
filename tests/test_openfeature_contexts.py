"""The provider's context cache: the same OpenFeature context object, unchanged, is mapped once (issue 96).

``ContextCache``'s rule: an object seen twice whose attributes are made of
dicts, lists, strings and None keeps its aioflags context while it is the
same object with the same targeting key and attributes equal to a copy
taken when it was kept. Each test changes one thing an OpenFeature context
lets a caller change and checks the provider sees it: no stale context.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import TargetingKeyMissingError, TypeMismatchError

from aioflags import Client, Config, DataSystem, ProviderStatus
from aioflags._client import _ofcontext
from aioflags._client._client import openfeature_read
from aioflags._client._ofanswers import TYPED_DETAIL
from aioflags._client._ofcontext import ContextCache
from aioflags.openfeature import AioflagsProvider, to_context, to_flagd_context

#: A flagd flag and a LaunchDarkly flag, each "staff" for an email at
#: example.com (the flagd one reads it nested too, under "user").
FLAGD: dict[str, Any] = {
    "flags": {
        "flagd-staff": {
            "state": "ENABLED",
            "variants": {"staff": "staff", "public": "public"},
            "defaultVariant": "public",
            "targeting": {
                "if": [
                    {
                        "or": [
                            {"ends_with": [{"var": "email"}, "@example.com"]},
                            {"ends_with": [{"var": "user.email"}, "@example.com"]},
                        ]
                    },
                    "staff",
                    "public",
                ]
            },
        },
        "flagd-key": {
            "state": "ENABLED",
            "variants": {"a": "a", "b": "b"},
            "defaultVariant": "b",
            "targeting": {"if": [{"==": [{"var": "targetingKey"}, "k1"]}, "a", "b"]},
        },
        "flagd-cat": {
            "state": "ENABLED",
            "variants": {"one": "one", "other": "other"},
            "defaultVariant": "other",
            "targeting": {"if": [{"===": [{"var": "n"}, 1]}, "one", "other"]},
        },
    }
}
LAUNCHDARKLY: dict[str, Any] = {
    "flags": {
        "ld-staff": {
            "key": "ld-staff",
            "version": 1,
            "on": True,
            "variations": ["staff", "public"],
            "fallthrough": {"variation": 1},
            "offVariation": 1,
            "salt": "s",
            "targets": [],
            "prerequisites": [],
            "rules": [
                {
                    "id": "staff",
                    "variation": 0,
                    "clauses": [
                        {
                            "contextKind": "user",
                            "attribute": "email",
                            "op": "endsWith",
                            "values": ["@example.com"],
                            "negate": False,
                        }
                    ],
                }
            ],
        }
    }
}


@pytest_asyncio.fixture
async def provider(tmp_path: Path) -> AsyncIterator[AioflagsProvider]:
    paths = []
    for name, document in (("flagd.json", FLAGD), ("ld.json", LAUNCHDARKLY)):
        (tmp_path / name).write_text(json.dumps(document))
        paths.append(tmp_path / name)
    config = Config(data_system=DataSystem.file(*paths), send_events=False)
    async with Client(config) as client:
        assert client.status is ProviderStatus.READY
        yield AioflagsProvider(client)


def _counting(mapping: Any) -> tuple[list[int], Any]:
    calls: list[int] = []

    def counted(context: EvaluationContext) -> Any:
        calls.append(1)
        return mapping(context)

    return calls, counted


def test_issue96_the_same_unchanged_object_is_mapped_twice_then_reused() -> None:
    calls, mapping = _counting(to_flagd_context)
    cache = ContextCache(mapping)
    attributes: Any = {"user": {"id": "u", "tags": ["a", None]}}  # (None: JSON's null)
    context = EvaluationContext("k1", attributes)
    first = cache.get(context)
    second = cache.get(context)
    kept = [cache.get(context) for _ in range(5)]
    assert len(calls) == 2  # seen once, then kept
    assert all(k is second for k in kept)
    assert first is not second
    assert first._values == second._values


def test_issue96_a_new_object_per_call_is_mapped_each_time() -> None:
    calls, mapping = _counting(to_context)
    cache = ContextCache(mapping)
    for _ in range(5):
        cache.get(EvaluationContext("k1", {"email": "a@example.com"}))
    assert len(calls) == 5


@pytest.mark.parametrize(
    "attributes",
    [
        {"n": 1},
        {"beta": True},
        {"ratio": 0.5},
        {"nested": {"n": 1}},
        {"list": ["a", 1]},
        {"when": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},
        {"tuple": ("a",)},
    ],
    ids=["int", "bool", "float", "nested int", "list int", "datetime", "tuple"],
)
def test_issue96_numbers_datetimes_and_tuples_are_never_kept(
    attributes: dict[str, Any],
) -> None:
    # (1 == 1.0 == True, and each maps otherwise: equality cannot tell them
    # apart, so such a context is mapped every time)
    calls, mapping = _counting(to_flagd_context)
    cache = ContextCache(mapping)
    context = EvaluationContext("k1", attributes)
    for _ in range(4):
        cache.get(context)
    assert len(calls) == 4


def test_issue96_the_cache_is_bounded() -> None:
    cache = ContextCache(to_flagd_context)
    contexts = [EvaluationContext(f"k{i}", {}) for i in range(200)]
    for context in contexts:
        cache.get(context)
        cache.get(context)
    assert len(cache.kept) <= _ofcontext._CACHED
    assert len(cache._seen) <= _ofcontext._CACHED


async def _seen_twice(
    provider: AioflagsProvider, key: str, context: EvaluationContext
) -> str:
    """The value for ``context``, after it was evaluated enough times to be kept."""
    for _ in range(3):
        value = provider.resolve_string_details(key, "x", context).value
    return value


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["flagd-staff", "ld-staff"])
async def test_issue96_an_attribute_changed_in_place_is_seen(
    provider: AioflagsProvider, key: str
) -> None:
    context = EvaluationContext("k1", {"email": "ann@example.com"})
    assert await _seen_twice(provider, key, context) == "staff"
    context.attributes["email"] = "bob@test.io"  # type: ignore[index]
    assert provider.resolve_string_details(key, "x", context).value == "public"
    assert (
        await provider.resolve_string_details_async(key, "x", context)
    ).value == "public"


@pytest.mark.asyncio
async def test_issue96_a_nested_attribute_changed_in_place_is_seen(
    provider: AioflagsProvider,
) -> None:
    user = {"email": "ann@example.com"}
    context = EvaluationContext("k1", {"user": user})
    assert await _seen_twice(provider, "flagd-staff", context) == "staff"
    user["email"] = "bob@test.io"
    assert provider.resolve_string_details("flagd-staff", "x", context).value == (
        "public"
    )


@pytest.mark.asyncio
async def test_issue96_reassigned_fields_are_seen(provider: AioflagsProvider) -> None:
    context = EvaluationContext("k1", {"email": "ann@example.com"})
    assert await _seen_twice(provider, "flagd-key", context) == "a"
    context.targeting_key = "k2"
    assert provider.resolve_string_details("flagd-key", "x", context).value == "b"
    assert await _seen_twice(provider, "flagd-staff", context) == "staff"
    context.attributes = {"email": "bob@test.io"}
    assert provider.resolve_string_details("flagd-staff", "x", context).value == (
        "public"
    )


@pytest.mark.asyncio
async def test_issue96_a_string_swapped_for_an_equal_number_is_seen(
    provider: AioflagsProvider,
) -> None:
    # "1" kept, then 1: unequal, so mapped again (and 1 is never kept).
    context = EvaluationContext("k1", {"n": "1"})
    assert await _seen_twice(provider, "flagd-cat", context) == "other"
    context.attributes["n"] = 1  # type: ignore[index]
    assert provider.resolve_string_details("flagd-cat", "x", context).value == "one"
    context.attributes["n"] = True  # type: ignore[index]
    assert provider.resolve_string_details("flagd-cat", "x", context).value == ("other")


@pytest.mark.asyncio
async def test_issue96_a_refused_context_is_refused_every_time(
    provider: AioflagsProvider,
) -> None:
    context = EvaluationContext(None, {"email": "ann@example.com"})
    for _ in range(3):
        with pytest.raises(TargetingKeyMissingError):
            provider.resolve_string_details("ld-staff", "x", context)
    context.targeting_key = "k1"
    assert await _seen_twice(provider, "ld-staff", context) == "staff"


@pytest.mark.asyncio
async def test_issue96_a_kept_context_answers_as_a_fresh_one(
    provider: AioflagsProvider,
) -> None:
    context = EvaluationContext("k1", {"email": "ann@example.com", "kind": "user"})
    await _seen_twice(provider, "ld-staff", context)
    flag = provider.client.snapshot().openfeature_flag("ld-staff")
    assert flag is not None
    kept = provider._contexts[flag.system]  # (the LaunchDarkly system's)
    assert id(context) in kept.kept
    assert kept.get(context)._values == to_context(context)._values


@pytest.mark.asyncio
async def test_issue96_a_flag_keeps_its_openfeature_answers_per_detail(
    provider: AioflagsProvider,
) -> None:
    """Reason, variant and metadata are mapped once per flag version and detail.

    What a kept answer gives is what a first call gives (the snapshot's
    ``openfeature_details``), in a new ``FlagResolutionDetails`` each call;
    an error is never kept (raised again), and a detail served by no
    variation (the caller's default) is never kept.
    """
    snapshot = provider.client.snapshot()
    staff = EvaluationContext("k1", {"email": "ann@example.com"})
    public = EvaluationContext("k2", {"email": "bob@test.io"})
    for key in ("flagd-staff", "ld-staff"):
        flag = snapshot.openfeature_flag(key)
        assert flag is not None
        flag.openfeature.clear()
        first = [provider.resolve_string_details(key, "x", c) for c in (staff, public)]
        assert len(flag.openfeature) == 2  # one per detail served
        again = [provider.resolve_string_details(key, "x", c) for c in (staff, public)]
        assert again == first
        assert all(a is not b for a, b in zip(again, first, strict=True))
        for details, context in zip(again, (staff, public), strict=True):
            detail = snapshot.string_variation_detail(
                key,
                (to_flagd_context if key == "flagd-staff" else to_context)(context),
                "x",
            )
            word, variant, metadata = snapshot.openfeature_details(key, detail)
            assert (details.value, details.reason, details.variant) == (
                detail.value,
                word,
                variant,
            )
            assert details.flag_metadata is metadata
            assert (details.error_code, details.error_message) == (None, None)
        # the float resolver's answers are not the string resolver's
        with pytest.raises(TypeMismatchError):
            provider.resolve_float_details(key, 1.5, staff)
        assert len(flag.openfeature) == 2


@pytest.mark.asyncio
async def test_issue96_the_provider_reads_the_client_as_its_status_and_snapshot(
    provider: AioflagsProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """What ``openfeature_read`` gives the provider is what the public reads give.

    The client's status and snapshot (``Client.status``, with its fork
    check, and ``Client.snapshot()`` without their frames), and the
    snapshot's data and steps, which the provider runs itself
    (``Evaluation.answer`` without its frame and the method's answer on
    a kept answer): each is pinned here against the public read.
    """
    client = provider.client
    status, snapshot, data, step = openfeature_read(client)
    assert status is client.status
    assert snapshot is client.snapshot()
    staff = EvaluationContext("k1", {"email": "ann@example.com"})
    for key, mapping in (("flagd-staff", to_flagd_context), ("ld-staff", to_context)):
        context = mapping(staff)
        method = TYPED_DETAIL["str"]
        result = step.evaluate(data, method, key, context, "x")
        assert method.answer(result, "x") == snapshot.string_variation_detail(
            key, context, "x"
        )
    # a client in a forked child: the provider warns as client.status does
    client._forked_from = 1  # (what Client's at-fork hook sets)
    with caplog.at_level(logging.WARNING, logger="aioflags"):
        provider.resolve_string_details("ld-staff", "x", staff)
    assert any("forked" in r.getMessage() for r in caplog.records)
    assert client._forked_from is None  # (warned once, as client.status does)
