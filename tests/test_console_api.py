"""The console's second version, without a browser: own versions, details, evaluate, reset, SDKs, trouble."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse

from aioflags import Client, Context
from aioflags._service import _console as console
from aioflags._service import _words as words
from aioflags.testing import FlagServer
from tests.processes import GUARD, ended

BOOL = {"variations": [True, False], "offVariation": 1}
#: A flag with everything the details show, and the evaluations a context can get.
RICH: dict[str, Any] = {
    **BOOL,
    "on": True,
    "description": "the new checkout",
    "tags": ["team-a", "beta"],
    "targets": [{"variation": 0, "values": ["vip"]}],
    "contextTargets": [
        {"contextKind": "user", "variation": 0, "values": []},
        {"contextKind": "org", "variation": 1, "values": ["o1", "o2"]},
    ],
    "rules": [
        {
            "id": "r1",
            "clauses": [
                {
                    "attribute": "email",
                    "op": "endsWith",
                    "values": ["@example.com"],
                }
            ],
            "variation": 0,
        },
        {
            "id": "r2",
            "description": "Germans",
            "clauses": [
                {
                    "attribute": "country",
                    "op": "in",
                    "values": ["DE", "AT"],
                    "negate": True,
                },
                {"attribute": "", "op": "segmentMatch", "values": ["beta-users"]},
            ],
            "rollout": {
                "variations": [
                    {"variation": 0, "weight": 30000},
                    {"variation": 1, "weight": 70000},
                ]
            },
        },
    ],
    "fallthrough": {"rollout": {"variations": [{"variation": 1, "weight": 100000}]}},
    "prerequisites": [{"key": "gate", "variation": 0}],
}
GATE: dict[str, Any] = {**BOOL, "on": True, "fallthrough": {"variation": 0}}
FLAGS: dict[str, dict[str, Any]] = {
    "rich": RICH,
    "gate": GATE,
    "plain": {**BOOL, "on": True, "fallthrough": {"variation": 0}},
    "dark": {**BOOL, "on": False, "fallthrough": {"variation": 0}},
    "broken": {**BOOL, "on": True, "fallthrough": {"variation": 9}},
}
SEGMENTS = {"beta-users": {"included": ["beta1"]}}


@contextlib.asynccontextmanager
async def serving(
    flags: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[tuple[FlagServer, httpx.AsyncClient, dict[str, str]]]:
    """A FlagServer, an HTTP client for its console, and the token headers."""
    async with (
        FlagServer(FLAGS if flags is None else flags, SEGMENTS) as server,
        # A guard against a hang, not httpx's 5 s: at load 16 an Evaluate of
        # 2,000 flags took longer (issue 97).
        httpx.AsyncClient(base_url=server.url, timeout=GUARD) as http,
    ):
        page = await http.get("/ui/")
        found = re.search(r'name="aioflags-token" content="([^"]+)"', page.text)
        assert found is not None
        yield server, http, {"x-aioflags-token": found[1]}


async def post(
    http: httpx.AsyncClient, path: str, body: object, headers: dict[str, str]
) -> httpx.Response:
    return await http.post(f"/ui/api/{path}", content=json.dumps(body), headers=headers)


# ------------------------------------------------------------- own versions
@pytest.mark.asyncio
async def test_each_flag_counts_its_own_versions() -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            FlagServer({"a": BOOL, "b": BOOL}, {"s": {}})
        )
        client = await stack.enter_async_context(
            Client(server.config(send_events=False))
        )
        send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
        stack.enter_context(send)
        stack.enter_context(receive)
        client.add_flag_change_handler(send.send_nowait)
        server.set_flag("a", {**BOOL, "on": True})
        server.set_flag("a", {**BOOL, "on": False})
        server.set_flag("b", {**BOOL, "on": True})
        with anyio.fail_after(30):
            while "b" not in await receive.receive():
                pass
        versions = {k: f["version"] for k, f in server.flags.items()}
        assert versions == {"a": 3, "b": 2}  # not the service's 4
        # A reload: the unchanged keep theirs, the changed take one more.
        state = server.state
        server.replace_all({"a": {**BOOL, "on": False}, "b": BOOL}, {"s": {}})
        with anyio.fail_after(30):
            assert await receive.receive() == {"b"}
        assert server.state != state  # the payload's version moves on
        versions = {k: f["version"] for k, f in server.flags.items()}
        assert versions == {"a": 3, "b": 3}
        assert server.segments["s"]["version"] == 1
        server.set_segment("s", {"included": ["x"]})
        assert server.segments["s"]["version"] == 2
        # A deleted flag's tombstone outranks it, and a new one outranks that.
        server.delete_flag("a")
        with anyio.fail_after(30):
            assert await receive.receive() == {"a"}
        server.set_flag("a", GATE)
        with anyio.fail_after(30):
            assert await receive.receive() == {"a"}
        assert server.flags["a"]["version"] == 5
        assert await client.variation("a", Context.create("u"), None) is True


# ----------------------------------------------------- changed, reset, confirm
@pytest.mark.asyncio
async def test_a_console_change_is_marked_and_reset_puts_the_file_back() -> None:
    async with serving() as (server, http, token):
        before = server.flags["rich"]
        answer = await post(http, "flag", {"key": "rich", "variation": 1}, token)
        assert answer.status_code == 409  # it has rules: asked first
        assert "confirm" in answer.json()["message"]
        answer = await post(
            http, "flag", {"key": "rich", "variation": 1, "confirm": True}, token
        )
        assert answer.status_code == 200
        assert answer.json()["changed"] is True and answer.json()["version"] == 2
        assert "rules" not in server.flags["rich"]
        state = (await http.get("/ui/api/state")).json()
        rows = {row["key"]: row for row in state["flags"]}
        assert rows["rich"]["changed"] is True and rows["plain"]["changed"] is False
        details = (await http.get("/ui/api/flag", params={"key": "rich"})).json()
        assert details["changed"] is True
        assert details["file"].startswith("the file has it on, with targets or rules")
        # Flipped twice more: still the console's change, one reset undoes all.
        await post(http, "flag", {"key": "rich", "on": False}, token)
        answer = await post(http, "reset", {"key": "rich"}, token)
        assert answer.status_code == 200
        row = answer.json()
        assert row["changed"] is False and row["version"] == 4
        after = server.flags["rich"]
        assert {**after, "version": 1} == before  # rules and all, a new version
        assert (await post(http, "reset", {"key": "rich"}, token)).status_code == 409
        assert (await post(http, "reset", {"key": "nope"}, token)).status_code == 404


@pytest.mark.asyncio
async def test_changed_back_by_hand_or_reloaded_is_no_longer_changed() -> None:
    async with serving() as (server, http, token):
        await post(http, "flag", {"key": "plain", "on": False}, token)
        await post(http, "flag", {"key": "dark", "on": True}, token)
        row = (await post(http, "flag", {"key": "plain", "on": True}, token)).json()
        assert row["changed"] is False  # as the file has it again
        server.replace_all(FLAGS, SEGMENTS)  # the file wins
        state = (await http.get("/ui/api/state")).json()
        assert not any(row["changed"] for row in state["flags"])
        assert (await post(http, "reset", {"key": "dark"}, token)).status_code == 409


# ------------------------------------------------------------------ details
def test_the_details_of_a_flag_in_words() -> None:
    details = words.details({"key": "rich", "version": 1, **RICH}, FLAGS)
    assert details == {
        "key": "rich",
        "description": "the new checkout",
        "tags": ["team-a", "beta"],
        "on": True,
        "version": 1,
        "changed": False,
        "variations": [
            {"index": 0, "value": "true", "name": None},
            {"index": 1, "value": "false", "name": None},
        ],
        "off": "serves false (variation 1)",
        "fallthrough": "rollout: 100 % false (by key)",
        "targets": [
            {"kind": "user", "values": ["vip"], "serves": "serves true (variation 0)"},
            {
                "kind": "org",
                "values": ["o1", "o2"],
                "serves": "serves false (variation 1)",
            },
        ],
        "rules": [
            {
                "index": 1,
                "id": "r1",
                "description": None,
                "clauses": ['email ends with "@example.com"'],
                "serves": "serves true (variation 0)",
            },
            {
                "index": 2,
                "id": "r2",
                "description": "Germans",
                "clauses": [
                    'not country is one of "DE", "AT"',
                    "in segment beta-users",
                ],
                "serves": "rollout: 30 % true, 70 % false (by key)",
            },
        ],
        "prerequisites": [{"key": "gate", "variation": "gate is true (variation 0)"}],
        "file": None,
    }


@pytest.mark.parametrize(
    ("clause", "text"),
    [
        ({"attribute": "key", "op": "in", "values": ["a"]}, 'key is "a"'),
        ({"attribute": "n", "op": "in", "values": [1, True]}, "n is one of 1, true"),
        ({"attribute": "e", "op": "endsWith", "values": [".io"]}, 'e ends with ".io"'),
        (
            {"attribute": "e", "op": "startsWith", "values": ["a"]},
            'e starts with "a"',
        ),
        ({"attribute": "e", "op": "matches", "values": ["^a.*"]}, 'e matches "^a.*"'),
        ({"attribute": "e", "op": "contains", "values": ["x"]}, 'e contains "x"'),
        ({"attribute": "age", "op": "lessThan", "values": [18]}, "age < 18"),
        ({"attribute": "age", "op": "lessThanOrEqual", "values": [18]}, "age ≤ 18"),
        ({"attribute": "age", "op": "greaterThan", "values": [65]}, "age > 65"),
        ({"attribute": "age", "op": "greaterThanOrEqual", "values": [65]}, "age ≥ 65"),
        (
            {"attribute": "t", "op": "before", "values": ["2024-01-01T00:00:00Z"]},
            't is before "2024-01-01T00:00:00Z"',
        ),
        ({"attribute": "t", "op": "after", "values": [0]}, "t is after 0"),
        (
            {"attribute": "v", "op": "semVerEqual", "values": ["1.2.0"]},
            'v is version "1.2.0"',
        ),
        (
            {"attribute": "v", "op": "semVerLessThan", "values": ["2.0.0"]},
            'v is a version before "2.0.0"',
        ),
        (
            {"attribute": "v", "op": "semVerGreaterThan", "values": ["2.0.0"]},
            'v is a version after "2.0.0"',
        ),
        ({"op": "segmentMatch", "values": ["beta"]}, "in segment beta"),
        (
            {"op": "segmentMatch", "values": ["a", "b"], "negate": True},
            "not in one of the segments a, b",
        ),
        (
            {"attribute": "plan", "op": "in", "values": ["pro"], "contextKind": "org"},
            'org plan is "pro"',
        ),
        (
            {"attribute": "x", "op": "resembles", "values": [1]},
            "x resembles (an operator the evaluator does not know) 1",
        ),
        # No values satisfy nothing: say so, not "email is one of" and a blank.
        (
            {"attribute": "email", "op": "in", "values": []},
            "email is one of (no values)",
        ),
        (
            {"attribute": "email", "op": "endsWith", "values": [], "negate": True},
            "not email ends with (no values)",
        ),
        ({"op": "segmentMatch", "values": []}, "in one of the segments (no values)"),
    ],
)
def test_clauses_in_words(clause: dict[str, Any], text: str) -> None:
    assert words.clause_text(clause) == text


@pytest.mark.parametrize(
    ("served", "text"),
    [
        ({"variation": 0}, "serves true (variation 0)"),
        ({"variation": 5}, "serves variation 5 (no such variation)"),
        ({}, "nothing (no variation)"),
        (
            {
                "rollout": {
                    "kind": "experiment",
                    "bucketBy": "email",  # ignored by experiments
                    "variations": [
                        {"variation": 0, "weight": 12500},
                        {"variation": 1, "weight": 87500},
                    ],
                }
            },
            "experiment: 12.5 % true, 87.5 % false (by key)",
        ),
        (
            {
                "rollout": {
                    "bucketBy": "email",
                    "contextKind": "org",
                    "variations": [{"variation": 1, "weight": 100000}],
                }
            },
            "rollout: 100 % false (by org email)",
        ),
    ],
)
def test_what_is_served_in_words(served: dict[str, Any], text: str) -> None:
    assert words.served_text(BOOL, served) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("shadow", "shadow"),
        (True, "true"),
        (3, "3"),
        ({"a": 1}, '{"a": 1}'),
        (None, "null"),
    ],
)
def test_values_are_written_as_people_write_them(value: object, text: str) -> None:
    assert words.written(value) == text


@pytest.mark.parametrize(
    ("reason", "variation", "text"),
    [
        ({"kind": "OFF"}, 1, "off"),
        ({"kind": "TARGET_MATCH"}, 0, "target match"),
        ({"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r1"}, 0, "rule 1 matched"),
        ({"kind": "RULE_MATCH", "ruleIndex": 1}, 0, "rule 2 matched, rollout 30 %"),
        ({"kind": "FALLTHROUGH"}, 1, "fallthrough rollout 100 %"),
        (
            {"kind": "PREREQUISITE_FAILED", "prerequisiteKey": "gate"},
            1,
            "prerequisite gate failed",
        ),
        (
            {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"},
            None,
            "error: malformed flag",
        ),
        (
            {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"},
            None,
            "error: flag not found",
        ),
    ],
)
def test_reasons_in_words(
    reason: dict[str, Any], variation: int | None, text: str
) -> None:
    assert words.reason_text(reason, RICH, variation) == text
    assert words.reason_text({"kind": "FALLTHROUGH"}, GATE, 0) == "fallthrough"


@pytest.mark.asyncio
async def test_the_details_endpoint() -> None:
    async with serving() as (server, http, _token):
        answer = await http.get("/ui/api/flag", params={"key": "rich"})
        assert answer.status_code == 200
        assert answer.json()["label"] == "rich"
        assert answer.json()["rules"][1]["clauses"][1] == "in segment beta-users"
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        # Bidirectional controls are written out in every text, as in labels.
        server.set_flag(
            "a\u202eb",
            {
                **GATE,
                "rules": [
                    {
                        "clauses": [
                            {"attribute": "n", "op": "in", "values": ["x\u202ey"]}
                        ],
                        "variation": 0,
                    }
                ],
            },
        )
        answer = await http.get("/ui/api/flag", params={"key": "a\u202eb"})
        assert answer.json()["key"] == "a\u202eb"  # what a change names, exactly
        assert answer.json()["label"] == "a⟨U+202E⟩b"
        assert answer.json()["rules"][0]["clauses"] == ['n is "x⟨U+202E⟩y"']
        missing = await http.get("/ui/api/flag", params={"key": "nope"})
        assert missing.status_code == 404 and "nope" in missing.json()["message"]
        assert (await http.get("/ui/api/flag")).status_code == 400


# ----------------------------------------------------------------- evaluate
@pytest.mark.asyncio
async def test_evaluate_says_what_a_context_gets_and_why() -> None:
    async with serving() as (_, http, token):
        context = {"kind": "user", "key": "u1", "email": "a@example.com"}
        answer = await post(http, "evaluate", {"context": context}, token)
        assert answer.status_code == 200
        result = answer.json()
        assert result["context"] == {"kinds": ["user"], "key": "u1"}
        by_key = {r["key"]: r for r in result["results"]}
        assert list(by_key) == sorted(FLAGS)
        assert by_key["rich"] == {
            "key": "rich",
            "label": "rich",
            "value": "true",
            "variation": 0,
            "reason": "rule 1 matched",
            "reason_kind": "RULE_MATCH",
        }
        assert by_key["dark"]["reason"] == "off"
        assert by_key["plain"]["reason"] == "fallthrough"
        assert by_key["broken"] == {
            "key": "broken",
            "label": "broken",
            "value": "null",
            "variation": None,
            "reason": "error: malformed flag",
            "reason_kind": "ERROR",
        }
        # A bare key is a user; one flag can be asked alone.
        answer = await post(http, "evaluate", {"context": "vip", "flag": "rich"}, token)
        assert [(r["key"], r["reason"]) for r in answer.json()["results"]] == [
            ("rich", "target match")
        ]
        org = {"kind": "org", "key": "o9"}
        answer = await post(http, "evaluate", {"context": org, "flag": "rich"}, token)
        assert answer.json()["results"][0]["reason"] == "fallthrough rollout 100 %"


@pytest.mark.asyncio
async def test_evaluate_says_what_a_context_without_kind_left_out() -> None:
    """Issue 77: an old-user context's top-level attributes were dropped silently."""
    async with serving() as (_, http, token):
        context = {"key": "u1", "country": "DE", "plan": "beta"}
        answer = await post(http, "evaluate", {"context": context}, token)
        asked = answer.json()["context"]
        # Read as LaunchDarkly reads the old user JSON (country is one of
        # its attributes, plan is not), and said, with how to write it.
        assert asked == {
            "kinds": ["user"],
            "key": "u1",
            "ignored": ["plan"],
            "note": "'plan' ignored: a context without \"kind\" is LaunchDarkly's "
            'old user JSON, which has its custom attributes under "custom". '
            'Write {"kind": "user", "key": ..., "plan": ...}, or '
            '{"key": ..., "custom": {"plan": ...}}',
        }
        for written in (
            {**context, "kind": "user"},
            {"key": "u1", "custom": {"plan": 1}},
        ):
            answer = await post(http, "evaluate", {"context": written}, token)
            assert "note" not in answer.json()["context"]


@pytest.mark.asyncio
async def test_evaluate_follows_the_current_data() -> None:
    async with serving() as (server, http, token):
        server.set_flag("gate", {**GATE, "on": False})
        answer = await post(http, "evaluate", {"context": "u1", "flag": "rich"}, token)
        assert answer.json()["results"][0]["reason"] == "prerequisite gate failed"


@pytest.mark.asyncio
async def test_a_change_recompiles_only_what_changed() -> None:
    """An evaluation after a change compiles the changed flag, not all of them."""
    async with serving() as (server, http, token):
        compiled = server._ofrep.snapshot()._flag("plain")
        assert compiled is not None
        server.set_flag("dark", {**BOOL, "on": True, "fallthrough": {"variation": 0}})
        assert server._ofrep.snapshot()._flag("plain") is compiled
        answer = await post(http, "evaluate", {"context": "u1", "flag": "dark"}, token)
        assert answer.json()["results"][0]["reason"] == "fallthrough"
        # A reload: what it removes is gone, what it changes is new, the rest stays.
        server.replace_all({k: v for k, v in FLAGS.items() if k != "gate"}, SEGMENTS)
        snapshot = server._ofrep.snapshot()
        assert snapshot._flag("plain") is compiled
        assert snapshot._flag("gate") is None
        answer = await post(http, "evaluate", {"context": "u1", "flag": "dark"}, token)
        assert answer.json()["results"][0]["reason"] == "off"
        answer = await post(http, "evaluate", {"context": "u1", "flag": "rich"}, token)
        assert answer.json()["results"][0]["reason"] == "prerequisite gate failed"
        server.delete_flag("plain")
        assert server._ofrep.snapshot()._flag("plain") is None


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "the body must be JSON"),
        (b"[" * 60_000, 400, "nested too deeply"),
        (b'{"context": "\xff"}', 400, "the body must be JSON"),
        (b"[]", 400, '"context"'),
        (b'{"context": "u", "flag": 3}', 400, '"flag" must be'),
    ],
)
@pytest.mark.asyncio
async def test_evaluate_refuses_bad_input_readably(
    body: bytes, status: int, message: str
) -> None:
    async with serving() as (_, http, token):
        answer = await http.post("/ui/api/evaluate", content=body, headers=token)
        assert answer.status_code == status
        assert message in answer.json()["message"]


@pytest.mark.parametrize(
    "context",
    [{"kind": "user"}, {"kind": "a b", "key": "k"}, "", 3],
    ids=["no key", "a bad kind", "an empty key", "a number"],
)
@pytest.mark.asyncio
async def test_an_invalid_context_is_answered_as_an_app_is(context: object) -> None:
    async with serving() as (_, http, token):
        answer = await post(http, "evaluate", {"context": context}, token)
        assert answer.status_code == 200
        body = answer.json()
        assert body["context"]["error"].startswith("the context is not valid: ")
        assert body["results"]
        assert all(r["reason_kind"] == "ERROR" for r in body["results"])
        assert all(r["variation"] is None for r in body["results"])
        assert all(r["reason"] == "error: user not specified" for r in body["results"])


@pytest.mark.asyncio
async def test_a_flag_that_is_not_there_is_answered_as_an_app_is() -> None:
    async with serving() as (_, http, token):
        answer = await post(http, "evaluate", {"context": "u", "flag": "nope"}, token)
        assert answer.status_code == 200
        [result] = answer.json()["results"]
        assert (result["key"], result["variation"]) == ("nope", None)
        assert result["reason"] == "error: flag not found"


# ------------------------------------------------------------------- safety
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("evaluate", {"context": "u1"}),
        ("reset", {"key": "plain"}),
        ("flag", {"key": "plain", "on": False}),
    ],
)
@pytest.mark.asyncio
async def test_the_new_endpoints_refuse_what_the_old_ones_do(
    path: str, body: dict[str, Any]
) -> None:
    async with serving() as (server, http, token):
        await post(http, "flag", {"key": "plain", "on": False}, token)  # to reset
        before = server.flags
        port = server.url.rsplit(":", 1)[1]
        for headers in (
            {},  # no token
            {"x-aioflags-token": "wrong"},
            {**token, "origin": "http://attacker.example"},
            {**token, "host": f"attacker.example:{port}"},
        ):
            answer = await post(http, path, body, headers)
            assert answer.status_code == 403, headers
            assert server.flags == before
        rebound = {"host": f"attacker.example:{port}"}
        for get in ("/ui/api/flag?key=plain", "/ui/favicon.svg", "/ui/api/state"):
            assert (await http.get(get, headers=rebound)).status_code == 403
        # A body past the pipeline's cap is refused before it is read.
        oversized = {**body, "pad": "x" * 70_000}
        assert (await post(http, path, oversized, token)).status_code == 413
        assert server.flags == before
        # With the token, from the page's origin, the same request is served.
        page = {**token, "origin": server.url}
        assert (await post(http, path, body, page)).status_code == 200


@pytest.mark.asyncio
async def test_the_favicon_is_served() -> None:
    async with serving() as (_, http, _token):
        icon = await http.get("/ui/favicon.svg")
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert "default-src 'self'" in icon.headers["content-security-policy"]
        assert icon.content.startswith(b"<svg")


# --------------------------------------------------------------------- SDKs
@pytest.mark.asyncio
async def test_connected_sdks_are_listed_from_streams_and_events() -> None:
    async with serving() as (server, http, _token):
        async with Client(server.config()) as client:
            await client.variation("plain", Context.create("u1"), False)
            sdks = (await http.get("/ui/api/state")).json()["sdks"]
            (sdk,) = sdks
            assert sdk["name"] == "aioflags" and sdk["version"] is not None
            assert "stream" in sdk["via"] and sdk["connected"] is True
            assert isinstance(sdk["since"], int) and sdk["last_seen"] >= sdk["since"]
            await client.flush()
            await server.wait_for_events(kind="summary")
        await server.wait_for_streams_closed()
        (sdk,) = (await http.get("/ui/api/state")).json()["sdks"]
        assert sdk["via"][0] == "stream" and sdk["via"][-1] == "events"
        assert sdk["connected"] is False


def test_sdk_names_come_from_headers_or_the_diagnostic_event() -> None:
    assert console.sdk_identity({"user-agent": "PythonClient/9.20.0"}) == (
        "PythonClient",
        "9.20.0",
    )
    assert console.sdk_identity(
        {
            "user-agent": "python-requests/2",
            "x-launchdarkly-user-agent": "GoClient/7.1.0",
            "x-launchdarkly-wrapper": "OpenFeature/0.5",
        }
    ) == ("GoClient (OpenFeature/0.5)", "7.1.0")
    diagnostic = {"sdk": {"name": "node-server-sdk", "version": "8.0.0"}}
    assert console.sdk_identity({}, diagnostic) == ("node-server-sdk", "8.0.0")
    assert console.sdk_identity({}) is None
    log = console.Console()
    for n in range(console.SDKS + 5):
        assert log.sdk_seen("events", {"user-agent": f"SDK{n}/1"}) is True
    assert log.sdk_seen("events", {"user-agent": "SDK50/1"}) is False  # seen again
    assert len(log.sdks) == console.SDKS  # the oldest are dropped
    assert log.sdks[0]["name"] == "SDK50" and log.sdks[-1]["name"] == "SDK5"


# ------------------------------------------------------------ the log, richer
@pytest.mark.asyncio
async def test_feature_debug_index_and_migration_events_in_the_log() -> None:
    log = console.Console()
    flags = {"f": {"variations": ["a", "b"]}}
    await log.record(
        [
            {
                "kind": "index",
                "creationDate": 1,
                "context": {"kind": "user", "key": "x"},
            },
            {
                "kind": "feature",
                "creationDate": 10,
                "key": "f",
                "variation": 1,
                "value": "b",
                "reason": {"kind": "RULE_MATCH", "ruleIndex": 2},
                "context": {
                    "kind": "multi",
                    "user": {"key": "u1"},
                    "org": {"key": "o1"},
                },
            },
            {
                "kind": "debug",
                "creationDate": 20,
                "key": "f",
                "variation": 1,
                "value": "b",
                "contextKeys": {"user": "u2"},
            },
            {
                "kind": "feature",
                "creationDate": 30,
                "key": "f",
                "value": "fallback",
                "reason": {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"},
                "contextKeys": {"user": "u3"},
            },
            {
                "kind": "migration_op",
                "creationDate": 40,
                "operation": "read",
                "context": {"kind": "user", "key": "u4"},
                "evaluation": {"key": "move", "value": "shadow", "variation": 2},
                "measurements": [
                    {"key": "invoked", "values": {"old": True, "new": True}},
                    {"key": "consistent", "value": False, "samplingRatio": 1},
                    {"key": "latency_ms", "values": {"old": 1.5, "new": 20, "x": 1}},
                    {"key": "error", "values": {"new": True, "elsewhere": True}},
                ],
            },
            {"kind": "migration_op", "operation": "fly", "evaluation": {"key": "x"}},
        ],
        flags,
    )
    migration, failed, served = log.evaluations
    assert served == {
        "type": "evaluation",
        "key": "f",
        "value": "b",
        "variation": 1,
        "count": 1,  # the debug event adds its context, not a count
        "default": False,
        "error": None,
        "reason": "rule 3 matched",
        "contexts": [
            {"kind": "user", "key": "u2"},
            {"kind": "user", "key": "u1"},
            {"kind": "org", "key": "o1"},
        ],
        "last": 20,
    }
    assert (failed["default"], failed["error"], failed["reason"]) == (
        True,
        "MALFORMED_FLAG",
        "error: malformed flag",
    )
    assert migration == {
        "type": "migration",
        "key": "move",
        "operation": "read",
        "count": 1,
        "origins": ["new", "old"],
        "latencies": {"new": 20, "old": 1.5},
        "errors": ["new"],
        "consistent": False,
        "contexts": [{"kind": "user", "key": "u4"}],
        "last": 40,
    }
    # A later consistent read does not hide the inconsistency; contexts stay at 5.
    for n in range(8):
        await log.record(
            [
                {
                    "kind": "migration_op",
                    "creationDate": 50 + n,
                    "operation": "read",
                    "contextKeys": {"user": f"v{n}"},
                    "evaluation": {"key": "move"},
                    "measurements": [{"key": "consistent", "value": True}],
                }
            ]
        )
    row = log.evaluations[0]
    assert (row["count"], row["consistent"], row["last"]) == (9, False, 57)
    assert [c["key"] for c in row["contexts"]] == ["v7", "v6", "v5", "v4", "v3"]


@pytest.mark.asyncio
async def test_a_summary_infers_the_error_kind_of_a_default() -> None:
    log = console.Console()
    summary = {
        "kind": "summary",
        "startDate": 1,
        "endDate": 99,
        "features": {
            "typo": {
                "default": 1,
                "counters": [{"value": 1, "count": 2, "unknown": True}],
            },
            "f": {
                "default": 7,
                "counters": [
                    {"value": 7, "count": 1},  # a number for a flag of strings
                    {"value": "a", "variation": 0, "version": 1, "count": 4},
                ],
            },
            "off": {"default": "z", "counters": [{"value": "z", "count": 1}]},
        },
    }
    await log.record(
        [summary], {"f": {"variations": ["a", "b"]}, "off": {"variations": ["a"]}}
    )
    rows = {(r["key"], r["value"]): r for r in log.evaluations}
    assert (rows["typo", "1"]["error"], rows["typo", "1"]["default"]) == (
        "FLAG_NOT_FOUND",
        True,
    )
    assert rows["f", "7"]["error"] == "WRONG_TYPE"
    assert (rows["f", "a"]["error"], rows["f", "a"]["count"]) == (None, 4)
    assert (rows["off", "z"]["error"], rows["off", "z"]["default"]) == (None, True)
    assert {r["last"] for r in rows.values()} == {99}


# ------------------------------------------------------------------ trouble
@pytest.mark.asyncio
async def test_a_flag_server_shows_file_trouble_through_its_public_calls() -> None:
    async with (
        serving() as (server, http, _),
        aconnect_sse(http, "GET", "/ui/api/events") as source,
    ):
        events = source.aiter_sse()
        with anyio.fail_after(30):
            assert json.loads((await anext(events)).data)["trouble"] is None
            server.show_file_trouble("flags.json", 3, "invalid JSON: here")
            state = json.loads((await anext(events)).data)
            assert state["trouble"] == {
                "file": "flags.json",
                "line": 3,
                "message": "invalid JSON: here",
            }
            server.clear_file_trouble()
            state = json.loads((await anext(events)).data)
            assert state["trouble"] is None


@pytest.mark.parametrize(
    ("message", "where"),
    [
        (
            "f.json:3:7: invalid JSON: Expecting value",
            ("f.json", 3, "invalid JSON: Expecting value"),
        ),
        (
            "f.json: unknown top-level keys ['x']",
            ("f.json", None, "unknown top-level keys ['x']"),
        ),
        (
            "f.json: cannot read the flag file: No such file",
            ("f.json", None, "cannot read the flag file: No such file"),
        ),
    ],
)
def test_the_loaders_error_names_file_and_line(
    message: str, where: tuple[str, int | None, str]
) -> None:
    from aioflags._cli._serving import _trouble

    assert _trouble(Path("f.json"), message) == where


@pytest.mark.slow
def test_serve_shows_a_broken_file_on_the_console_until_it_reads_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flagValues": {"v": 1}}))

    async def follow(url: str) -> None:
        async with (
            # (the read timeout is a net: each event comes as the file is read)
            httpx.AsyncClient(base_url=url, timeout=GUARD) as http,
            aconnect_sse(http, "GET", "/ui/api/events") as source,
        ):
            events = source.aiter_sse()
            with anyio.fail_after(30):
                assert json.loads((await anext(events)).data)["trouble"] is None
                path.write_text('{"flagValues":\n  {"v": }}')
                state = json.loads((await anext(events)).data)
                while state["trouble"] is None:
                    state = json.loads((await anext(events)).data)
                assert state["trouble"]["file"] == str(path)
                assert state["trouble"]["line"] == 2
                assert "invalid JSON" in state["trouble"]["message"]
                # The last good data is still served.
                assert [f["key"] for f in state["flags"]] == ["v"]
                path.write_text(json.dumps({"flagValues": {"v": 2}}))
                while state["trouble"] is not None:
                    state = json.loads((await anext(events)).data)
                assert state["flags"][0]["variations"] == ["2"]

    process = subprocess.Popen(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" at ", 1)[1].strip()
        anyio.run(follow, url)
    finally:
        ended(process)


# ------------------------------------------------------- hostile flag data
@pytest.mark.asyncio
async def test_a_rollout_weight_past_a_float_is_written_not_a_500() -> None:
    """A weight JSON allows (an int of 400 digits) is no float: written exactly."""
    huge = 10**400
    flag = {
        **GATE,
        "fallthrough": {"rollout": {"variations": [{"variation": 0, "weight": huge}]}},
    }
    async with serving({"huge": flag}) as (_, http, token):
        answer = await http.get("/ui/api/flag", params={"key": "huge"})
        assert answer.status_code == 200
        assert answer.json()["fallthrough"] == (
            f"rollout: {huge // 1000} % true (by key)"
        )
        # The evaluator finds it malformed; its answer is readable.
        answer = await post(http, "evaluate", {"context": "u"}, token)
        assert answer.status_code == 200
        assert answer.json()["results"][0]["reason"] == "error: malformed flag"
    # An SDK's event may say it fell through: the log writes the share.
    log = console.Console()
    event = {
        "kind": "feature",
        "key": "huge",
        "value": True,
        "variation": 0,
        "reason": {"kind": "FALLTHROUGH"},
    }
    assert await log.record([event], {"huge": flag})
    assert log.evaluations[0]["reason"] == f"fallthrough rollout {huge // 1000} %"
    assert [
        words.served_text(
            GATE, {"rollout": {"variations": [{"variation": 0, "weight": w}]}}
        )
        for w in (12500, -5, 100005, 0)
    ] == [
        "rollout: 12.5 % true (by key)",
        "rollout: -0.005 % true (by key)",
        "rollout: 100.005 % true (by key)",
        "rollout: 0 % true (by key)",
    ]


@pytest.mark.asyncio
async def test_an_events_rule_index_out_of_range_is_no_500() -> None:
    """An event's ``ruleIndex`` is the SDK's word, not an index to trust."""
    async with serving() as (_, http, _token):
        for index in (10**30, 2, -1, -1000):
            event = {
                "kind": "feature",
                "key": "rich",
                "value": True,
                "variation": 0,
                "reason": {"kind": "RULE_MATCH", "ruleIndex": index},
            }
            answer = await http.post("/bulk", json=[event])
            assert answer.status_code == 202, index
        state = (await http.get("/ui/api/state")).json()
        assert state["evaluations"][0]["reason"] == "rule matched"
    assert words.reason_text({"kind": "RULE_MATCH", "ruleIndex": -1}, RICH, 0) == (
        "rule matched"
    )


@pytest.mark.asyncio
async def test_choosing_a_variation_of_a_flag_without_a_list_of_them_is_a_400() -> None:
    flags = {
        "number": {"on": True, "variations": 5, "fallthrough": {"variation": 0}},
        "text": {"on": True, "variations": "abc", "fallthrough": {"variation": 0}},
    }
    async with serving(flags) as (server, http, token):
        for key in flags:
            answer = await post(http, "flag", {"key": key, "variation": 1}, token)
            assert answer.status_code == 400, key
            assert answer.json()["message"] == '"variation" must be an index below 0'
            assert server.flags[key]["fallthrough"] == {"variation": 0}


@pytest.mark.asyncio
async def test_a_files_version_that_is_no_number_does_not_break_evaluate() -> None:
    """``serve`` starts with the file's flags as given: a ``"version": "seven"`` too."""
    flags = {
        "text": {**GATE, "version": "seven"},
        "list": {**GATE, "version": [1]},
        "plain": GATE,
    }
    async with serving(flags) as (server, http, token):
        assert {k: f["version"] for k, f in server.flags.items()} == {
            "text": 1,
            "list": 1,
            "plain": 1,
        }
        answer = await post(http, "evaluate", {"context": "u"}, token)
        assert answer.status_code == 200
        assert [r["value"] for r in answer.json()["results"]] == ["true"] * 3


@pytest.mark.asyncio
async def test_an_events_time_past_what_a_page_can_show_is_taken_as_now() -> None:
    """A browser's ``Date`` ends at 8.64e15 ms: past it, "last at Invalid Date"."""
    log = console.Console()
    far = 10**30
    await log.record(
        [
            {"kind": "feature", "key": "f", "value": 1, "creationDate": far},
            {"kind": "summary", "endDate": far, "features": {"g": {"counters": []}}},
        ]
    )
    await log.record(
        [
            {
                "kind": "summary",
                "endDate": 8_640_000_000_000_001,
                "features": {"g": {"counters": [{"count": 1, "value": 1}]}},
            }
        ]
    )
    assert [row["last"] <= 8_640_000_000_000_000 for row in log.evaluations] == [
        True,
        True,
    ]


@pytest.mark.asyncio
async def test_the_details_name_a_segment_that_does_not_exist() -> None:
    """A typo'd segment never matches: the rule in words must not hide it."""
    flag = {
        **GATE,
        "rules": [
            {
                "clauses": [
                    {"attribute": "", "op": "segmentMatch", "values": ["beta-user"]},
                    {
                        "attribute": "",
                        "op": "segmentMatch",
                        "values": ["beta-users", "gone"],
                        "negate": True,
                    },
                    {"attribute": "", "op": "segmentMatch", "values": [["x"]]},
                ],
                "variation": 1,
            }
        ],
    }
    async with serving({"typo": flag}) as (_, http, _token):
        answer = await http.get("/ui/api/flag", params={"key": "typo"})
        assert answer.json()["rules"][0]["clauses"] == [
            "in segment beta-user (no such segment)",
            "not in one of the segments beta-users, gone (no such segment)",
            'in segment ["x"] (no such segment)',
        ]
    # Without the segments to look in, nothing is claimed.
    assert words.clause_text(flag["rules"][0]["clauses"][0]) == "in segment beta-user"


@pytest.mark.asyncio
async def test_the_details_of_a_huge_value_are_cut() -> None:
    """A 10 MB variation made the page lay out 20 MB of text (24 s in Chromium)."""
    huge = "x" * 1_000_000
    flag = {**GATE, "variations": [huge, {"v": huge}], "fallthrough": {"variation": 0}}
    async with serving({"huge": flag}) as (_, http, _token):
        answer = await http.get("/ui/api/flag", params={"key": "huge"})
        assert answer.status_code == 200
        details = answer.json()
        limit = console.DETAILS_TEXT
        assert [v["value"] for v in details["variations"]] == [
            huge[: limit - 1] + "…",
            '{"v": "' + huge[: limit - 8] + "…",
        ]
        assert details["fallthrough"] == f"serves {huge[: limit - 8]}…"
        assert len(answer.content) < 5 * limit  # four texts at most


@pytest.mark.asyncio
async def test_evaluate_results_carry_a_label_with_bidi_controls_written_out() -> None:
    """A key is exact (what a change names); what the page shows is its label."""
    async with serving({"a\u202eb": GATE}) as (_, http, token):
        answer = await post(http, "evaluate", {"context": "u"}, token)
        [result] = answer.json()["results"]
        assert (result["key"], result["label"]) == ("a\u202eb", "a⟨U+202E⟩b")


# ------------------------------------------------- work per change (issue 60, F3)
@pytest.mark.asyncio
async def test_a_change_is_written_once_for_every_open_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 2,000 flags, 100 pages each writing the whole state made a flip take 2.2 s."""
    rows: list[object] = []
    flag_row = console.flag_row

    def counting(flag: Any, *, changed: bool = False) -> Any:
        rows.append(flag.get("key"))
        return flag_row(flag, changed=changed)

    async with serving() as (server, http, _), contextlib.AsyncExitStack() as pages:
        streams = []
        for _ in range(5):
            source = await pages.enter_async_context(
                aconnect_sse(http, "GET", "/ui/api/events")
            )
            streams.append(source.aiter_sse())
        with anyio.fail_after(30):
            for events in streams:
                first = json.loads((await anext(events)).data)
                assert not next(f for f in first["flags"] if f["key"] == "dark")["on"]
        monkeypatch.setattr(console, "flag_row", counting)
        server.set_flag("dark", {**FLAGS["dark"], "on": True})
        with anyio.fail_after(30):
            for events in streams:
                state = json.loads((await anext(events)).data)
                assert next(f for f in state["flags"] if f["key"] == "dark")["on"]
        assert rows == ["dark"]  # one row, written once, for the five pages
        answer = (await http.get("/ui/api/state")).json()
        assert answer == state
        assert rows == ["dark"]


@pytest.mark.asyncio
async def test_pages_past_the_cap_are_refused_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console, "PAGES", 2)
    async with serving() as (server, http, token):
        page = {"token": token["x-aioflags-token"]}  # (as the page sends it)
        async with (
            aconnect_sse(http, "GET", "/ui/api/events", params=page) as one,
            aconnect_sse(http, "GET", "/ui/api/events", params=page) as two,
        ):
            for source in (one, two):
                with anyio.fail_after(30):
                    await anext(source.aiter_sse())
            third = await http.get("/ui/api/events", params=page)
            assert third.status_code == 503
            assert "has 2 pages open already" in third.json()["message"]
            assert "default-src 'self'" in third.headers["content-security-policy"]
            # (docs/console.md: the cap shuts out the live view only; the
            # service, the SDK endpoints and the console's requests answer)
            assert (await http.get("/ui/api/state")).status_code == 200
            assert (await http.get("/sdk/latest-all")).status_code == 200
            flip = await post(http, "flag", {"key": "dark", "on": True}, token)
            assert flip.status_code == 200
        with anyio.fail_after(30):
            await server.wait_until(lambda: server.open_streams(console.EVENTS) == 0)
        async with aconnect_sse(http, "GET", "/ui/api/events") as again:
            assert again.response.status_code == 200


@pytest.mark.asyncio
async def test_tokenless_streams_do_not_shut_the_console_page_out() -> None:
    """G11: 32 event streams without the console's token (a local process's)
    gave the console's own page a ``503`` on its event stream.

    The page sends its token with its stream (``?token=``): streams without
    it have places of their own, and cannot take the page's.
    """
    async with serving() as (_, http, token), contextlib.AsyncExitStack() as held:
        streams = []  # (each kept: a stream's iterator let go closes it)
        for _ in range(console.PAGES):  # what a local process keeps open
            source = await held.enter_async_context(
                aconnect_sse(http, "GET", "/ui/api/events")
            )
            streams.append(source.aiter_sse())
            with anyio.fail_after(30):
                await anext(streams[-1])
        one_more = await http.get("/ui/api/events")
        assert one_more.status_code == 503
        assert "without the console's token" in one_more.json()["message"]
        page = token["x-aioflags-token"]
        async with aconnect_sse(
            http, "GET", "/ui/api/events", params={"token": page}
        ) as source:
            assert source.response.status_code == 200
            with anyio.fail_after(30):
                state = json.loads((await anext(source.aiter_sse())).data)
            assert {f["key"] for f in state["flags"]} == set(FLAGS)
        # A wrong token is no token: it takes no page's place.
        wrong = await http.get("/ui/api/events", params={"token": page + "x"})
        assert wrong.status_code == 503


@pytest.mark.asyncio
async def test_evaluate_of_many_flags_lets_other_requests_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 20,000 flags one Evaluate held the event loop for 2.5 s."""
    from aioflags._core import _pacing

    flags = {f"f{n:04d}": FLAGS["plain"] for n in range(2000)}
    async with serving(flags) as (_, http, token):
        # The evaluator's data is built by the first request: not counted.
        await post(http, "evaluate", {"context": "u", "flag": "f0000"}, token)
        pauses = 0
        checkpoint = _pacing.checkpoint

        async def counting() -> None:
            nonlocal pauses
            pauses += 1
            await checkpoint()

        monkeypatch.setattr(_pacing, "checkpoint", counting)
        answer = await post(http, "evaluate", {"context": "u"}, token)
        assert answer.status_code == 200
        results = answer.json()["results"]
        assert [r["key"] for r in results] == sorted(flags)
        assert {r["value"] for r in results} == {"true"}
        assert pauses >= len(flags) // _pacing.MAX_OBJECTS
