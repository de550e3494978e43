"""Contexts: construction, JSON parsing (current and old user shape), validation."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aioflags import Context
from aioflags._evaluation import _context
from aioflags._evaluation._context import parse_reference
from aioflags._evaluation._logonce import Occurrences


def test_create_defaults_to_user() -> None:
    ctx = Context.create("u1")
    assert ctx.valid and ctx.error is None
    assert (ctx.kind, ctx.key, ctx.name, ctx.anonymous, ctx.multiple) == (
        "user",
        "u1",
        None,
        False,
        False,
    )
    assert ctx.fully_qualified_key == "u1"
    assert ctx.to_dict() == {"kind": "user", "key": "u1"}


def test_create_with_everything() -> None:
    ctx = Context.create(
        "o1",
        "org",
        name="Org",
        anonymous=True,
        attributes={"plan": "pro", "gone": None},
        private_attributes=["plan"],
    )
    assert ctx.get("plan") == "pro" and ctx.get("gone") is None
    assert ctx.custom_attributes == ("plan",)
    assert ctx.private_attributes == ("plan",)
    assert ctx.fully_qualified_key == "org:o1"
    assert ctx.to_dict() == {
        "kind": "org",
        "key": "o1",
        "name": "Org",
        "plan": "pro",
        "anonymous": True,
        "_meta": {"privateAttributes": ["plan"]},
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": ""}, "key must not be empty"),
        ({"key": 5}, "key must be a string"),
        ({"key": "k", "kind": ""}, "kind must not be empty"),
        ({"key": "k", "kind": "kind"}, "must not be 'kind'"),
        ({"key": "k", "kind": "multi"}, "must not be 'multi'"),
        ({"key": "k", "kind": "a b"}, "characters"),
        ({"key": "k", "kind": 3}, "must be a string"),
        ({"key": "k", "name": 3}, "name must be a string"),
        ({"key": "k", "anonymous": "yes"}, "anonymous must be a boolean"),
        ({"key": "k", "attributes": {"": 1}}, "non-empty"),
        ({"key": "k", "attributes": {"key": "x"}}, "built-in"),
        ({"key": "k", "private_attributes": [1]}, "list of strings"),
        # One string is not a list of letters: "email" must not redact "e"...
        ({"key": "k", "private_attributes": "email"}, "list of strings"),
        ({"key": "k", "private_attributes": 5}, "list of strings"),
        # Was a ValueError from dict("abc"), a TypeError from dict(5).
        ({"key": "k", "attributes": "abc"}, "attributes must be a mapping"),
        ({"key": "k", "attributes": 5}, "attributes must be a mapping"),
        ({"key": "k", "attributes": [1, 2]}, "got list"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_create_invalid_never_raises(kwargs: dict[str, Any], message: str) -> None:
    ctx = Context.create(**kwargs)
    assert not ctx.valid
    assert ctx.error is not None and message in ctx.error
    assert "invalid" in repr(ctx)


def test_attributes_given_as_pairs_make_a_mapping() -> None:
    """What ``dict()`` takes is taken: pairs, a mapping's items, nothing."""
    pairs: list[Any] = [
        [("plan", "gold")],
        {"plan": "gold"}.items(),
        (("plan", "gold"),),
    ]
    for given in pairs:  # (typed as a Mapping; untyped callers pass these)
        ctx = Context.create("k", attributes=given)
        assert ctx.valid and ctx.get("plan") == "gold"
    nothing: Any = []
    assert Context.create("k", attributes=nothing).valid


def test_multi_kind_sorted_and_escaped() -> None:
    ctx = Context.create_multi(Context.create("o:1%", "org"), Context.create("u1"))
    assert ctx.multiple and ctx.kind == "multi" and ctx.key == ""
    assert ctx.kinds == ("org", "user")
    assert ctx.fully_qualified_key == "org:o%3A1%25:user:u1"
    assert ctx.individual_context("user") == Context.create("u1")
    assert ctx.individual_context("device") is None
    assert ctx.to_dict() == {
        "kind": "multi",
        "org": {"key": "o:1%"},
        "user": {"key": "u1"},
    }
    assert Context.from_dict(ctx.to_dict()) == ctx


def test_multi_of_one_is_that_context() -> None:
    single = Context.create("u1")
    assert Context.create_multi(single) is single


@pytest.mark.parametrize(
    "parts",
    [
        (),
        (Context.create("a"), Context.create("b")),
        (Context.create(""),),
        (
            Context.create_multi(Context.create("a"), Context.create("o", "org")),
            Context.create("d", "device"),
        ),
    ],
    ids=["empty", "repeated-kind", "invalid-part", "nested-multi"],
)
def test_multi_invalid(parts: tuple[Context, ...]) -> None:
    assert not Context.create_multi(*parts).valid


def test_create_multi_rejects_non_contexts() -> None:
    assert not Context.create_multi("nope").valid  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"kind": "user", "key": "u", "email": "e"},
            {"kind": "user", "key": "u", "email": "e"},
        ),
        ({"kind": "user", "key": "u", "x": None}, {"kind": "user", "key": "u"}),
        (
            {
                "kind": "org",
                "key": "o",
                "_meta": {"privateAttributes": ["/a~1b"], "other": 1},
            },
            {"kind": "org", "key": "o", "_meta": {"privateAttributes": ["/a~1b"]}},
        ),
        (
            {"kind": "multi", "user": {"key": "u"}, "org": {"key": "o", "kind": "org"}},
            {"kind": "multi", "org": {"key": "o"}, "user": {"key": "u"}},
        ),
        ({"kind": "multi", "user": {"key": "u"}}, {"kind": "user", "key": "u"}),
    ],
)
def test_from_dict_current_format(
    data: dict[str, Any], expected: dict[str, Any]
) -> None:
    ctx = Context.from_dict(data)
    assert ctx.valid, ctx.error
    assert ctx.to_dict() == expected


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"kind": "user"},
        {"kind": "user", "key": ""},
        {"kind": "", "key": "k"},
        {"kind": 1, "key": "k"},
        {"kind": "user", "key": "k", "anonymous": None},
        {"kind": "user", "key": "k", "_meta": []},
        {"kind": "user", "key": "k", "_meta": {"privateAttributes": "a"}},
        {"kind": "user", "key": "k", "": 1},
        {"kind": "multi"},
        {"kind": "multi", "user": "x"},
        {"kind": "multi", "user": {"key": ""}},
        {"kind": "multi", "user": {"key": "u", "kind": "multi"}},
        {"kind": "multi", "user": {"key": "u"}, "org": {"key": "o", "kind": "user"}},
        {"key": 5},
        {"key": "u", "email": 5},
        {"key": "u", "custom": []},
        {"key": "u", "privateAttributeNames": [1]},
    ],
)
def test_from_dict_invalid(data: Any) -> None:
    ctx = Context.from_dict(data)
    assert not ctx.valid
    assert ctx.error


def test_old_user_shape() -> None:
    ctx = Context.from_dict(
        {
            "key": "",
            "name": "N",
            "email": "e@x",
            "firstName": None,
            "anonymous": None,
            "custom": {"plan": "pro", "key": "ignored", "kind": "ignored", "x": None},
            "privateAttributeNames": ["email", "/weird"],
            "secondary": "s",
            "unknown": 1,
        }
    )
    assert ctx.valid, ctx.error
    assert (ctx.kind, ctx.key, ctx.name, ctx.anonymous) == ("user", "", "N", False)
    assert ctx.get("email") == "e@x" and ctx.get("plan") == "pro"
    assert ctx.get("unknown") is None and ctx.get("secondary") is None
    assert ctx.private_attributes == ("email", "/~1weird")


def _ignored_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "aioflags.evaluation" and r.levelno == logging.WARNING
    ]
    caplog.clear()
    return lines


def test_from_dict_says_which_top_level_attributes_the_old_user_json_ignores(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 77: ``{"key": "u1", "plan": "beta"}`` dropped ``plan`` without a word."""
    ctx = Context.from_dict({"key": "u1", "plan": "beta"})
    # Read as LaunchDarkly reads the old user JSON: plan is not an attribute.
    assert ctx.valid and ctx.to_dict() == {"kind": "user", "key": "u1"}
    assert _ignored_lines(caplog) == [
        "Context.from_dict: 'plan' ignored: a context without \"kind\" is "
        "LaunchDarkly's old user JSON, which has its custom attributes under "
        '"custom". Write {"kind": "user", "key": ..., "plan": ...}, or '
        '{"key": ..., "custom": {"plan": ...}} (logged once per attribute name)'
    ]
    # Once per name: plan is not named again, tier is new.
    Context.from_dict({"key": "u2", "plan": "free"})
    assert _ignored_lines(caplog) == []
    Context.from_dict({"key": "u3", "plan": "free", "tier": 2})
    (line,) = _ignored_lines(caplog)
    assert line.startswith("Context.from_dict: 'tier' ignored")
    # Written either way, nothing is ignored, and nothing is said.
    for written in (
        {"kind": "user", "key": "u4", "seat": 1},
        {"key": "u5", "email": "e@x", "custom": {"seat": 1}, "anonymous": False},
        {"kind": "multi", "user": {"key": "u6", "seat": 1}},
    ):
        assert Context.from_dict(written).get("seat") in (1, None)
    assert _ignored_lines(caplog) == []


def test_from_dict_names_at_most_so_many_ignored_attributes(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_context, "_IGNORED_NAMES", Occurrences(2))
    monkeypatch.setattr(_context, "_MAX_IGNORED_NAMES", 2)
    Context.from_dict({"key": "u", "a": 1, "b": 2})
    Context.from_dict({"key": "u", "c": 3})
    Context.from_dict({"key": "u", "d": 4})
    lines = _ignored_lines(caplog)
    assert len(lines) == 2
    assert lines[0].startswith("Context.from_dict: 'a', 'b' ignored")
    assert lines[1] == (
        "Context.from_dict has named 2 ignored attributes of the old user JSON: "
        "further ones are not logged"
    )
    assert len(_context._IGNORED_NAMES._counts) == 2  # bounded


def test_equality_and_hash() -> None:
    a = Context.create("u", attributes={"x": [1]}, private_attributes=["a", "b"])
    b = Context.create("u", attributes={"x": [1]}, private_attributes=["b", "a"])
    assert a == b and hash(a) == hash(b)
    assert a != Context.create("u", attributes={"x": [2]})
    assert a != Context.create("u", "org")
    invalid = Context.create("")
    assert invalid == invalid and invalid != Context.create("")
    assert a != "u"


def test_cannot_instantiate_directly() -> None:
    with pytest.raises(TypeError, match=r"Context\.create"):
        Context()


@pytest.mark.parametrize(
    ("ref", "literal", "expected"),
    [
        ("name", False, ("name",)),
        ("a/b", False, ("a/b",)),
        ("/a/b", False, ("a", "b")),
        ("/a~1b/c~0d", False, ("a/b", "c~d")),
        ("/~01", False, ("~1",)),
        ("/a/b", True, ("/a/b",)),
        ("", False, None),
        ("", True, None),
        ("/", False, None),
        ("/a//b", False, None),
        ("/a/", False, None),
        ("/a~2", False, None),
        ("/a~", False, None),
    ],
)
def test_parse_reference(
    ref: str, literal: bool, expected: tuple[str, ...] | None
) -> None:
    assert parse_reference(ref, literal=literal) == expected


def _kinds_of_contexts() -> list[Context]:
    """A user, an org, and multi-kind contexts with and without a user part."""
    user = Context.from_dict({"kind": "user", "key": "u", "email": "a@b"})
    org = Context.from_dict({"kind": "org", "key": "o", "tier": 3})
    return [
        user,
        org,
        Context.create_multi(user, org),
        Context.create_multi(org, Context.from_dict({"kind": "dev", "key": "d"})),
    ]


def test_the_user_part_and_attribute_lookups_are_at_hand() -> None:
    # The generated code reads ctx._user, ctx._user_key and ctx._user_get
    # for the kind "user", and part._get for the others: each must be what
    # a lookup in the parts and their values gives (no user part: no key,
    # None, which is in no target list).
    from aioflags._evaluation._context import NO_ATTRIBUTES

    for ctx in _kinds_of_contexts():
        part = ctx._parts.get("user")
        assert ctx._user is part
        assert ctx._user_key == (None if part is None else part._key)
        if part is None:
            assert ctx._user_get is NO_ATTRIBUTES
        else:
            assert ctx._user_get("email") == "a@b"
            assert ctx._user_get("missing") is None
        for p in ctx._parts.values():
            for name, value in p._values.items():
                assert p._get(name) == value
    assert NO_ATTRIBUTES("email") is None
    invalid = Context.from_dict({"kind": "user"})  # no key
    assert not invalid.valid and invalid._user is None
    assert invalid._user_key is None


def test_contexts_pickle_and_copy_with_what_the_code_reads() -> None:
    # A context pickles and copies the slots it is made of; the ones the
    # generated code reads (_get, _user, _user_get, _user_key) are made again, bound to
    # the copy's own values. A pickle from before those slots existed
    # (CPython's default state of a slotted object) loads the same way.
    import copy
    import pickle

    from aioflags._evaluation._context import NO_ATTRIBUTES

    cases = [*_kinds_of_contexts(), Context.from_dict({"kind": "user"})]  # + invalid

    def check(original: Context, made: Context) -> None:
        assert (made.valid, made.error, repr(made)) == (
            original.valid,
            original.error,
            repr(original),
        )
        assert made == original or not original.valid  # (invalid: equal to none)
        for part in made._parts.values():
            assert part._get.__self__ is part._values  # type: ignore[attr-defined]
        user_part = made._parts.get("user")
        assert made._user is user_part
        assert made._user_key == (None if user_part is None else user_part._key)
        if user_part is None:
            assert made._user_get is NO_ATTRIBUTES
        else:
            assert made._user_get.__self__ is user_part._values  # type: ignore[attr-defined]

    for ctx in cases:
        for made in (
            pickle.loads(pickle.dumps(ctx)),
            copy.copy(ctx),
            copy.deepcopy(ctx),
        ):
            check(ctx, made)
        old = object.__new__(Context)
        old.__setstate__((None, {name: getattr(ctx, name) for name in Context._STATE}))
        check(ctx, old)


def test_private_attributes_and_attributes_are_checked_as_given() -> None:
    """Every private attribute must be a string; attributes, any mapping."""
    import types

    refused = "private attributes must be a list of strings"
    assert Context.create("u", private_attributes=["a", 1]).error == refused  # type: ignore[list-item]
    assert Context.create("u", private_attributes=[1, "a"]).error == refused  # type: ignore[list-item]
    assert Context.create("u", private_attributes="email").error == refused
    assert Context.create("u", private_attributes=5).error == refused  # type: ignore[arg-type]
    fine = Context.create("u", private_attributes=("a", "b"))
    assert fine.valid and fine.to_dict()["_meta"] == {"privateAttributes": ["a", "b"]}
    assert Context.create("u", private_attributes=[]).valid
    proxy = types.MappingProxyType({"plan": "pro"})
    assert Context.create("u", attributes=proxy).get("plan") == "pro"
    not_mapping = Context.create("u", attributes="plan")  # type: ignore[arg-type]
    assert not not_mapping.valid
    assert "mapping of attribute names" in (not_mapping.error or "")
