"""Contexts in events: private attributes, references, anonymous redaction (events.md §4, §12)."""

from __future__ import annotations

from typing import Any

import pytest

from aioflags import Config, Context
from aioflags._analytics._format import escape_reference
from tests.analytics import flag, formatter_for, running


def fmt(
    context: dict[str, Any], *, redact_anonymous: bool = False, **options: Any
) -> dict[str, Any] | None:
    formatter = formatter_for(Config("k", **options))
    return formatter.context(
        Context.from_dict(context),
        redact_anonymous=redact_anonymous,
        omit_anonymous=options.get("omit_anonymous_contexts", False),
    )


ADDRESS = {"street": "1 Main St", "city": "Oakland"}


@pytest.mark.parametrize(
    ("context", "options", "expected"),
    [
        (
            {"kind": "user", "key": "u", "name": "Ann", "email": "a@b.c"},
            {},
            {"kind": "user", "key": "u", "name": "Ann", "email": "a@b.c"},
        ),
        (
            {"kind": "user", "key": "u", "name": "Ann", "email": "a@b.c"},
            {"private_attributes": ("email",)},
            {
                "kind": "user",
                "key": "u",
                "name": "Ann",
                "_meta": {"redactedAttributes": ["email"]},
            },
        ),
        (
            {
                "kind": "user",
                "key": "u",
                "email": "a@b.c",
                "_meta": {"privateAttributes": ["email"]},
            },
            {},
            {"kind": "user", "key": "u", "_meta": {"redactedAttributes": ["email"]}},
        ),
        (
            {"kind": "user", "key": "u", "address": ADDRESS},
            {"private_attributes": ("/address/street",)},
            {
                "kind": "user",
                "key": "u",
                "address": {"city": "Oakland"},
                "_meta": {"redactedAttributes": ["/address/street"]},
            },
        ),
        (
            {"kind": "user", "key": "u", "/ssn": "123", "a~b": 1},
            {"private_attributes": ("/~1ssn", "a~b")},
            {
                "kind": "user",
                "key": "u",
                "_meta": {"redactedAttributes": ["/~1ssn", "/a~0b"]},
            },
        ),
        (
            {"kind": "user", "key": "u", "name": "Ann", "/ssn": "1", "anonymous": True},
            {"all_attributes_private": True},
            {
                "kind": "user",
                "key": "u",
                "anonymous": True,
                "_meta": {"redactedAttributes": ["name", "/~1ssn"]},
            },
        ),
        (
            {"kind": "user", "key": "u", "address": "not an object", "name": "Ann"},
            {"private_attributes": ("/address/street", "/missing", "key", "kind")},
            {"kind": "user", "key": "u", "address": "not an object", "name": "Ann"},
        ),
        (
            {
                "kind": "multi",
                "user": {
                    "key": "u",
                    "email": "e",
                    "_meta": {"privateAttributes": ["email"]},
                },
                "org": {"key": "o", "email": "e"},
            },
            {},
            {
                "kind": "multi",
                "org": {"key": "o", "email": "e"},
                "user": {"key": "u", "_meta": {"redactedAttributes": ["email"]}},
            },
        ),
    ],
    ids=[
        "nothing-private",
        "global",
        "per-context",
        "nested-reference",
        "escaped-names",
        "all-private",
        "references-that-redact-nothing",
        "one-kind-s-private-list-stays-in-that-kind",
    ],
)
def test_private_attributes(
    context: dict[str, Any], options: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert fmt(context, **options) == expected


def test_the_context_itself_is_not_changed() -> None:
    context = Context.from_dict({"kind": "user", "key": "u", "address": ADDRESS})
    formatter = formatter_for(Config("k", private_attributes=("/address/street",)))
    formatter.context(context, redact_anonymous=False)
    assert context.get("address") == ADDRESS


def test_anonymous_redaction_applies_only_to_anonymous_kinds() -> None:
    context = {
        "kind": "multi",
        "user": {"key": "u", "anonymous": True, "name": "Ann", "plan": "pro"},
        "org": {"key": "o", "name": "Acme"},
    }
    assert fmt(context, redact_anonymous=True) == {
        "kind": "multi",
        "org": {"key": "o", "name": "Acme"},
        "user": {
            "key": "u",
            "anonymous": True,
            "_meta": {"redactedAttributes": ["name", "plan"]},
        },
    }
    # Index, identify and debug events are not anonymous-redacted.
    assert fmt(context, redact_anonymous=False)["user"]["name"] == "Ann"  # type: ignore[index]


def test_omitting_anonymous_contexts() -> None:
    anonymous = {"kind": "user", "key": "u", "anonymous": True}
    assert fmt(anonymous, omit_anonymous_contexts=True) is None
    multi = {
        "kind": "multi",
        "user": {"key": "u", "anonymous": True},
        "org": {"key": "o"},
    }
    assert fmt(multi, omit_anonymous_contexts=True) == {"kind": "org", "key": "o"}


@pytest.mark.parametrize(
    ("path", "listed"),
    [
        (("email",), "email"),
        (("/ssn",), "/~1ssn"),
        (("a~b",), "/a~0b"),
        (("address", "street"), "/address/street"),
        (("a/b", "c~d"), "/a~1b/c~0d"),
    ],
)
def test_redacted_attributes_are_listed_as_references(
    path: tuple[str, ...], listed: str
) -> None:
    assert escape_reference(path) == listed


# ------------------------------------------------- in events, end to end
ANON = Context.from_dict({"kind": "user", "key": "a", "anonymous": True, "name": "X"})


@pytest.mark.asyncio
async def test_anonymous_contexts_are_redacted_in_feature_and_custom_events_only() -> (
    None
):
    async with running({"f": flag(trackEvents=True)}) as (server, client, _):
        await client.variation("f", ANON, False)
        client.track("k", ANON)
        await client.flush()
        client.identify(ANON)
        await client.flush()
        contexts = {e["kind"]: e["context"] for e in server.events if "context" in e}
    redacted = {
        "kind": "user",
        "key": "a",
        "anonymous": True,
        "_meta": {"redactedAttributes": ["name"]},
    }
    assert contexts["feature"] == contexts["custom"] == redacted
    assert contexts["index"]["name"] == contexts["identify"]["name"] == "X"


@pytest.mark.asyncio
async def test_omit_anonymous_contexts_skips_their_index_and_identify_events() -> None:
    async with running({"f": flag(trackEvents=True)}, omit_anonymous_contexts=True) as (
        server,
        client,
        _,
    ):
        await client.variation("f", ANON, False)
        client.identify(ANON)
        await client.flush()
    assert [e["kind"] for e in server.events] == ["feature", "summary"]


@pytest.mark.asyncio
async def test_private_attributes_of_one_context_do_not_leak_into_the_next() -> None:
    first = Context.from_dict(
        {
            "kind": "user",
            "key": "a",
            "email": "x",
            "_meta": {"privateAttributes": ["email"]},
        }
    )
    second = Context.from_dict({"kind": "user", "key": "b", "email": "y"})
    async with running(private_attributes=("name",)) as (server, client, _):
        client.identify(first)
        client.identify(second)
        await client.flush()
    a, b = (e["context"] for e in server.events)
    assert a["_meta"] == {"redactedAttributes": ["email"]}
    assert b == {"kind": "user", "key": "b", "email": "y"}
