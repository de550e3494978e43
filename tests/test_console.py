"""The flag console's HTTP API (``/ui/`` on FlagServer and ``aioflags serve``), without a browser."""

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
from aioflags._service import _evaluations as evaluations
from aioflags._service import _guard as guard
from aioflags.testing import Fault, FlagBuilder, FlagServer
from tests.processes import GUARD, HTTP_GUARD, ended

USER = Context.create("u1")
BANNER: dict[str, Any] = {
    "on": True,
    "variations": ["<img src=x onerror=alert(1)>", "plain", "bold"],
    "fallthrough": {"variation": 0},
    "offVariation": 1,
}
RULED = FlagBuilder("ruled").boolean().target(True, "u2").build()


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[FlagServer, httpx.AsyncClient]]:
    """A FlagServer with two flags, and an HTTP client for its console."""
    async with (
        FlagServer({"banner": BANNER, "ruled": RULED}) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        yield server, http


async def token_of(http: httpx.AsyncClient) -> str:
    page = await http.get("/ui/")
    found = re.search(r'name="aioflags-token" content="([^"]+)"', page.text)
    assert found is not None
    return found[1]


async def post(http: httpx.AsyncClient, body: object, **headers: str) -> httpx.Response:
    return await http.post("/ui/api/flag", content=json.dumps(body), headers=headers)


# ----------------------------------------------------------------- the page
@pytest.mark.asyncio
async def test_the_page_and_its_assets_are_served_with_a_strict_policy() -> None:
    async with serving() as (_, http):
        page = await http.get("/ui/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert 'aria-label="Flags"' in page.text
        assert 'role="log" aria-label="Evaluations"' in page.text
        assert "{{token}}" not in page.text
        # Nothing from another host: every src and href is relative.
        assert not re.search(r'(src|href)="(https?:)?//', page.text)
        for asset, kind in (
            ("console.js", "text/javascript"),
            ("console.css", "text/css"),
        ):
            response = await http.get(f"/ui/{asset}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(kind)
            assert "default-src 'self'" in response.headers["content-security-policy"]
        bare = await http.get("/ui")
        assert (bare.status_code, bare.headers["location"]) == (308, "/ui/")
        assert (await http.get("/ui/nothing")).status_code == 404
        assert (await http.delete("/ui/api/state")).status_code == 403  # no token


def test_the_script_never_writes_markup() -> None:
    """Flag data reaches the page as text only: the script has no innerHTML at all."""
    script = Path(console.__file__).parent / "console" / "static" / "console.js"
    text = script.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in text


@pytest.mark.asyncio
async def test_state_lists_every_flag() -> None:
    async with serving() as (server, http):
        state = (await http.get("/ui/api/state")).json()
        assert state["flags"] == [
            {
                "key": "banner",
                "label": "banner",
                "on": True,
                # Values as people write them: a string bare.
                "variations": ["<img src=x onerror=alert(1)>", "plain", "bold"],
                "serves": 0,
                "version": 1,
                "changed": False,
                "description": None,
                "tags": [],
            },
            {
                "key": "ruled",
                "label": "ruled",
                "on": True,
                "variations": ["true", "false"],
                "serves": "rules",
                "version": 1,
                "changed": False,
                "description": None,
                "tags": [],
            },
        ]
        assert state["evaluations"] == []
        assert "not written to the flag file" in state["persistence"]
        assert state["trouble"] is None
        assert state["sdks"] == []
        assert state["events_uri"] == server.url


# ------------------------------------------------------------ changing flags
@pytest.mark.asyncio
async def test_a_flip_reaches_a_connected_client() -> None:
    async with serving() as (server, http):
        token = await token_of(http)
        async with Client(server.config(send_events=False)) as client:
            assert (
                await client.variation("banner", USER, None) == BANNER["variations"][0]
            )
            send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
            client.add_flag_change_handler(send.send_nowait)
            async with send, receive:
                response = await post(
                    http, {"key": "banner", "on": False}, **{"x-aioflags-token": token}
                )
                assert response.status_code == 200
                row = response.json()
                assert row["on"] is False and row["version"] > 1
                with anyio.fail_after(30):
                    assert await receive.receive() == {"banner"}
                assert await client.variation("banner", USER, None) == "plain"

                # Its target would be lost: the console asks first.
                ruled = server.flags["ruled"]
                response = await post(
                    http,
                    {"key": "ruled", "variation": 1},
                    **{"x-aioflags-token": token, "origin": server.url},
                )
                assert response.status_code == 409
                assert "confirm" in response.json()["message"]
                assert server.flags["ruled"] == ruled  # nothing changed
                response = await post(
                    http,
                    {"key": "ruled", "variation": 1, "confirm": True},
                    **{"x-aioflags-token": token, "origin": server.url},
                )
                assert response.status_code == 200 and response.json()["serves"] == 1
                with anyio.fail_after(30):
                    assert await receive.receive() == {"ruled"}
                # Served to everyone now: the target for u2 is gone.
                assert (
                    await client.variation("ruled", Context.create("u2"), None) is False
                )
        assert server.flags["banner"]["version"] == row["version"]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "token"),
        ({"x-aioflags-token": "guessed"}, "token"),
        ({"origin": "http://evil.test"}, "cross-origin"),
        ({"origin": "http://localhost:1"}, "cross-origin"),
        ({"origin": "null"}, "cross-origin"),
    ],
    ids=["no-token", "wrong-token", "foreign-origin", "other-port", "null-origin"],
)
@pytest.mark.asyncio
async def test_a_change_without_token_or_from_another_origin_is_refused(
    headers: dict[str, str],
    why: str,
) -> None:
    async with serving() as (server, http):
        token = await token_of(http)
        if "origin" in headers:  # the right token does not make a foreign origin right
            headers = {**headers, "x-aioflags-token": token}
        before = server.flags
        response = await post(http, {"key": "banner", "on": False}, **headers)
        assert response.status_code == 403
        assert why in response.json()["message"]
        assert server.flags == before


@pytest.mark.parametrize(
    "host", ["evil.test", "evil.test:80", "192.168.1.10:8765", "localhost.evil.test"]
)
@pytest.mark.asyncio
async def test_a_foreign_host_is_refused(host: str) -> None:
    """DNS rebinding: a name that resolves to 127.0.0.1 is not one of ours."""
    async with serving() as (server, http):
        token = await token_of(http)
        before = server.flags
        for method, path in (
            ("GET", "/ui/"),
            ("GET", "/ui/api/state"),
            ("GET", "/ui/api/events"),
        ):
            response = await http.request(method, path, headers={"host": host})
            assert response.status_code == 403
            assert "localhost" in response.json()["message"]
        response = await post(
            http,
            {"key": "banner", "on": False},
            host=host,
            **{"x-aioflags-token": token},
        )
        assert response.status_code == 403
        assert server.flags == before


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:8765", True),
        ("LOCALHOST:1", True),
        ("127.0.0.1:8765", True),
        ("127.1.2.3", True),
        ("[::1]:8765", True),
        ("[::1]", True),
        ("[::1", False),
        ("", False),
        (None, False),
        ("evil.test", False),
        ("10.0.0.1:8765", False),
        ("[::2]:80", False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert guard.is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("host", "bound", "allowed"),
    [
        ("localhost:8765", "192.0.2.2", True),
        ("127.0.0.1:8765", "0.0.0.0", True),
        # The IP address the server is bound to: no name to rebind.
        ("192.0.2.2:8765", "192.0.2.2", True),
        ("192.0.2.2", "192.0.2.2", True),
        ("[2001:db8::1]:8765", "2001:db8::1", True),
        ("[2001:db8::1]:8765", "2001:db8:0::1", True),
        # Any other address or name stays refused.
        ("192.0.2.2:8765", "127.0.0.1", False),
        ("192.0.2.3:8765", "192.0.2.2", False),
        ("0.0.0.0:8765", "0.0.0.0", False),
        ("[::]:8765", "::", False),
        ("my-box.example:8765", "my-box.example", False),
        ("evil.test:8765", "192.0.2.2", False),
        ("192.0.2.2.evil.test", "192.0.2.2", False),
        (None, "192.0.2.2", False),
        ("[2001:db8::1", "2001:db8::1", False),
    ],
)
def test_allowed_hosts(host: str | None, bound: str, allowed: bool) -> None:
    assert guard.is_allowed_host(host, bound) is allowed
    headers = {} if host is None else {"host": host}
    refused = console.Console(bound).refusal("GET", "/ui/", headers)
    assert (refused is None) is allowed


def test_the_bound_address_can_change_flags_with_the_token() -> None:
    """--allow-remote --host 192.0.2.2: the page at that address works, same origin."""
    page = console.Console("192.0.2.2")
    headers = {"host": "192.0.2.2:8765", "x-aioflags-token": page.token}
    same = {**headers, "origin": "http://192.0.2.2:8765"}
    assert page.refusal("POST", "/ui/api/flag", same) is None
    foreign = {**headers, "origin": "http://evil.test"}
    assert (
        page.refusal("POST", "/ui/api/flag", foreign) == "cross-origin request refused"
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"on": false}', 400),
        (b'{"key": "banner"}', 400),
        (b'{"key": "banner", "on": "no"}', 400),
        (b'{"key": "banner", "variation": 3}', 400),
        (b'{"key": "banner", "variation": -1}', 400),
        (b'{"key": "banner", "variation": true}', 400),
        (b'{"key": "missing", "on": false}', 404),
        (b"[" * 60_000, 400),  # nested past the parser: a 400, not a 500
        (b'{"key": "banner", "confirm": true}', 400),
    ],
)
@pytest.mark.asyncio
async def test_a_bad_change_is_answered_and_changes_nothing(
    body: bytes, status: int
) -> None:
    async with serving() as (server, http):
        token = await token_of(http)
        before = server.flags
        response = await http.post(
            "/ui/api/flag", content=body, headers={"x-aioflags-token": token}
        )
        assert response.status_code == status
        assert response.json()["message"]
        assert server.flags == before


@pytest.mark.asyncio
async def test_the_console_s_rules_and_headers_come_before_a_planned_fault() -> None:
    """A fault a test plans for a console endpoint meets only requests the
    console would serve, and every answer under /ui has its headers."""
    policy = "default-src 'self'"
    async with serving() as (server, http):
        server.script("/ui/api/flag", Fault(status=503))
        refused = await http.post("/ui/api/flag", content=b"{}")  # no token
        assert refused.status_code == 403
        assert policy in refused.headers["content-security-policy"]
        token = await token_of(http)
        faulted = await post(http, {}, **{"x-aioflags-token": token})
        assert faulted.status_code == 503  # (the fault waited for it)
        assert policy in faulted.headers["content-security-policy"]
        server.fail("/ui/api/state", headers={"x-planned": "yes"})
        state = await http.get("/ui/api/state")
        assert state.headers["x-planned"] == "yes"
        assert policy in state.headers["content-security-policy"]
        foreign = await http.get("/ui/", headers={"host": "evil.test"})
        assert foreign.status_code == 403
        assert "the console answers only to localhost" in foreign.json()["message"]
        assert policy in foreign.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("flag", "serves"),
    [
        ({"fallthrough": {"variation": 1}}, 1),
        ({"fallthrough": {"variation": True}}, None),
        ({"fallthrough": {"rollout": {"variations": []}}}, "rollout"),
        ({"fallthrough": {}}, None),
        ({}, None),
        ({"targets": [{"values": ["u"], "variation": 0}]}, "rules"),
        ({"contextTargets": [{}], "fallthrough": {"variation": 0}}, "rules"),
        ({"rules": [{}], "fallthrough": {"variation": 0}}, "rules"),
    ],
    ids=[
        "fallthrough",
        "bool-index",
        "rollout",
        "no-variation",
        "no-fallthrough",
        "targets",
        "context-targets",
        "rules",
    ],
)
def test_what_a_row_says_the_flag_serves(flag: dict[str, Any], serves: object) -> None:
    row = console.flag_row({"key": "k", **flag})
    assert row["serves"] == serves
    assert row["variations"] == [] and row["on"] is False


@pytest.mark.asyncio
async def test_other_methods_are_not_allowed() -> None:
    async with serving() as (server, http):
        token = await token_of(http)
        before = server.flags
        for method in ("PUT", "PATCH", "DELETE"):
            response = await http.request(
                method, "/ui/api/flag", headers={"x-aioflags-token": token}
            )
            assert response.status_code == 405
            allowed = set(response.headers["allow"].split(", "))  # (RFC 9110)
            assert allowed == {"GET", "HEAD", "POST"}
        assert (await http.request("OPTIONS", "/ui/api/flag")).status_code == 405
        assert server.flags == before
        sdk = await http.post("/sdk/poll")  # an SDK endpoint says it too
        assert sdk.status_code == 405
        assert set(sdk.headers["allow"].split(", ")) == {"GET", "HEAD"}


@pytest.mark.asyncio
async def test_a_console_handler_that_fails_answers_500_with_the_console_s_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the console")

    monkeypatch.setattr("aioflags._service._words.details", broken)
    async with serving() as (_, http):
        response = await http.get("/ui/api/flag", params={"key": "banner"})
        assert response.status_code == 500
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert (await http.get("/ui/api/state")).status_code == 200  # (one request)


# --------------------------------------------------------------- evaluations
@pytest.mark.asyncio
async def test_evaluations_come_from_the_events_the_sdk_posts() -> None:
    async with serving() as (server, http):
        server.set_flag(
            "tracked", FlagBuilder("tracked").boolean().track_events().build()
        )
        async with Client(server.config()) as client:
            for _ in range(3):
                await client.variation("banner", USER, None)
            await client.variation("tracked", Context.create("o1", "org"), False)
            await client.variation("unknown", USER, "fallback")
            await client.int_variation("banner", USER, 7)  # a string flag
            await client.flush()
            await server.wait_for_events(kind="summary")
        evaluations = (await http.get("/ui/api/state")).json()["evaluations"]
        for row in evaluations:
            assert isinstance(row.pop("last"), int)
        # The tracked flag's feature event is in the summary too: counted once,
        # and it says which context evaluated it.
        row = {"type": "evaluation", "reason": None, "contexts": []}
        assert sorted(evaluations, key=lambda e: (e["key"], e["value"])) == [
            row
            | {
                "key": "banner",
                "variation": None,
                "value": "7",
                "count": 1,
                "default": True,
                "error": "WRONG_TYPE",
            },
            row
            | {
                "key": "banner",
                "variation": 0,
                "value": "<img src=x onerror=alert(1)>",
                "count": 3,
                "default": False,
                "error": None,
            },
            row
            | {
                "key": "tracked",
                "variation": 0,
                "value": "true",
                "count": 1,
                "default": False,
                "error": None,
                "contexts": [{"kind": "org", "key": "o1"}],
            },
            row
            | {
                "key": "unknown",
                "variation": None,
                "value": "fallback",
                "count": 1,
                "default": True,
                "error": "FLAG_NOT_FOUND",
            },
        ]


@pytest.mark.asyncio
async def test_the_log_counts_feature_events_alone_and_keeps_the_newest() -> None:
    log = console.Console()
    await log.record([{"kind": "feature", "key": "a", "value": 1, "variation": 0}])
    await log.record(
        [
            {"kind": "feature", "key": "a", "value": 1, "variation": 0},
            {"kind": "feature", "key": "b", "value": "x" * 1000, "variation": 2},
            {"kind": "custom", "key": "a"},
            {"kind": "feature", "value": 1},  # no key: nothing to count
            {"kind": "feature", "key": [1], "value": 1},  # nor here
            {"kind": "summary", "features": {"d": {"counters": [{"count": 0}]}}},
            {"kind": "summary", "features": "not an object"},
            {"kind": "summary", "features": {"c": {"counters": [{"count": "x"}]}}},
        ]
    )
    newest, oldest = log.evaluations
    assert (oldest["key"], oldest["variation"], oldest["value"], oldest["count"]) == (
        "a",
        0,
        "1",
        2,
    )
    assert newest["key"] == "b" and len(newest["value"]) == 200
    for n in range(evaluations.LOG_SIZE + 10):
        await log.record([{"kind": "feature", "key": f"k{n}", "value": n}])
    assert len(log.evaluations) == evaluations.LOG_SIZE
    assert log.evaluations[0]["key"] == f"k{evaluations.LOG_SIZE + 9}"
    # A row seen again moves to the top.
    await log.record(
        [{"kind": "feature", "key": "k20", "value": 20, "creationDate": 5}]
    )
    assert log.evaluations[0] == {
        "type": "evaluation",
        "key": "k20",
        "variation": None,
        "value": "20",
        "count": 2,
        "default": True,
        "error": None,
        "reason": None,
        "contexts": [],
        "last": log.evaluations[0]["last"],
    }


# ------------------------------------------------------------- event stream
@pytest.mark.asyncio
async def test_the_page_stream_follows_changes_and_evaluations() -> None:
    async with (
        serving() as (server, http),
        aconnect_sse(http, "GET", "/ui/api/events") as source,
    ):
        assert (
            "default-src 'self'" in source.response.headers["content-security-policy"]
        )
        events = source.aiter_sse()
        with anyio.fail_after(30):
            first = json.loads((await anext(events)).data)
            assert [f["key"] for f in first["flags"]] == ["banner", "ruled"]
            await server.wait_for_stream(console.EVENTS)
            assert server.open_streams() == 0  # a page is not an SDK stream
            server.set_flag("new", {"on": False, "variations": [1, 2]})
            second = json.loads((await anext(events)).data)
            assert [f["key"] for f in second["flags"]] == ["banner", "new", "ruled"]
            server.delete_flag("ruled")
            third = json.loads((await anext(events)).data)
            assert [f["key"] for f in third["flags"]] == ["banner", "new"]
            async with Client(server.config()) as client:
                await client.variation("banner", USER, None)
            fourth = json.loads((await anext(events)).data)
            while not fourth["evaluations"]:  # the SDK's stream came first
                fourth = json.loads((await anext(events)).data)
            assert fourth["evaluations"][0]["key"] == "banner"


@pytest.mark.asyncio
async def test_a_page_that_reads_slowly_gets_the_latest_state_once() -> None:
    """Changes made while a page's stream is busy are not queued one by one."""
    async with (
        serving() as (server, http),
        aconnect_sse(http, "GET", "/ui/api/events") as source,
    ):
        events = source.aiter_sse()
        with anyio.fail_after(30):
            await anext(events)
            for n in range(100):  # no await: the page's stream cannot send meanwhile
                server.set_flag("counter", {"on": True, "variations": [n]})
            latest = json.loads((await anext(events)).data)
            counter = next(f for f in latest["flags"] if f["key"] == "counter")
            assert counter["variations"] == ["99"]
            server.delete_flag("counter")
            after = json.loads((await anext(events)).data)
            assert "counter" not in [f["key"] for f in after["flags"]]


# ----------------------------------------------------------------- the command
@pytest.mark.slow
def test_serve_prints_the_console_url(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flagValues": {"v": 1}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" at ", 1)[1].strip()
        process.stdout.readline()  # the Config(...) line
        assert process.stdout.readline().strip() == f"Console: {url}/ui/"
        page = httpx.get(f"{url}/ui/", timeout=GUARD)
        assert page.status_code == 200 and 'aria-label="Flags"' in page.text
    finally:
        ended(process)


@pytest.mark.parametrize(
    ("host", "bound", "url", "console_url", "listening"),
    [
        ("127.0.0.1", "127.0.0.1", "http://127.0.0.1:8765", "http://127.0.0.1:8765/ui/", None),
        ("localhost", "127.0.0.1", "http://localhost:1", "http://localhost:1/ui/", None),
        # A wildcard: the loopback address of the family bound (:: is IPv6
        # only, and localhost may be 127.0.0.1 only).
        ("0.0.0.0", "0.0.0.0", "http://0.0.0.0:8765", "http://127.0.0.1:8765/ui/",
         "Listening on 0.0.0.0:8765: every IPv4 address of this machine, and no IPv6 one (--host :: for IPv6)"),
        ("::", "::", "http://[::]:8765", "http://[::1]:8765/ui/",
         "Listening on [::]:8765: every IPv6 address of this machine, and no IPv4 one (--host 0.0.0.0 for IPv4)"),
        # A name of this machine (Debian's hostname line is 127.0.1.1).
        ("my-box", "127.0.1.1", "http://my-box:1", "http://127.0.1.1:1/ui/",
         "Listening on 127.0.1.1:1 (my-box)"),
        ("my-box.example", "192.0.2.9", "http://my-box.example:1", "http://localhost:1/ui/",
         "Listening on 192.0.2.9:1 (my-box.example)"),
        # Bound to one address: the console answers there (see is_allowed_host).
        ("192.0.2.2", "192.0.2.2", "http://192.0.2.2:8765", "http://192.0.2.2:8765/ui/",
         "Listening on 192.0.2.2:8765"),
        ("2001:db8::1", "2001:db8::1", "http://[2001:db8::1]:8765", "http://[2001:db8::1]:8765/ui/",
         "Listening on [2001:db8::1]:8765"),
    ],
)  # fmt: skip
def test_with_allow_remote_the_console_is_printed_where_it_answers(
    host: str, bound: str, url: str, console_url: str, listening: str | None
) -> None:
    """And what was bound is said: ``--host ::`` is IPv6 only."""
    from aioflags._cli._where import console_url as console_url_of
    from aioflags._cli._where import listening as listening_of

    assert console_url_of(url, host, bound) == console_url
    assert listening_of(url, host, bound) == listening


def test_missing_chromium_skips_outside_ci_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import chromium

    monkeypatch.setattr(chromium, "find", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CHROMIUM_TESTS_REQUIRED", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        chromium.executable()
    monkeypatch.setenv("CHROMIUM_TESTS_REQUIRED", "1")
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        chromium.executable()


def test_whether_there_is_a_chromium_is_decided_once_per_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import chromium

    first = chromium.find()
    other = None if first else "/usr/bin/chromium"
    monkeypatch.setattr("shutil.which", lambda *a, **k: other)
    assert chromium.find() == first


# -------------------------------------------- the service beside the console
SUMMARY = [
    {
        "kind": "summary",
        "startDate": 0,
        "endDate": 1,
        "features": {"spoofed": {"counters": [{"value": "x", "count": 99}]}},
    }
]


@pytest.mark.parametrize(
    "headers",
    [
        # A page of another site: a no-cors text/plain POST needs no preflight.
        {"origin": "http://evil.test"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        # DNS rebinding: evil.test resolving to 127.0.0.1.
        {"host": "evil.test:80"},
        {"host": "evil.test:80", "origin": "http://evil.test:80"},
    ],
)
@pytest.mark.parametrize("path", ["/bulk", "/diagnostic"])
@pytest.mark.asyncio
async def test_a_web_page_cannot_post_events(
    headers: dict[str, str], path: str
) -> None:
    async with serving() as (server, http):
        body = SUMMARY if path == "/bulk" else {"kind": "diagnostic"}
        response = await http.post(
            path,
            content=json.dumps(body),
            headers={"content-type": "text/plain", **headers},
        )
        assert response.status_code == 403
        assert server.events == [] and server.diagnostic_events == []
        assert (await http.get("/ui/api/state")).json()["evaluations"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # an SDK
        {"sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "none"},
    ],
)
@pytest.mark.asyncio
async def test_event_posts_of_sdks_and_the_service_itself_land(
    headers: dict[str, str],
) -> None:
    async with serving() as (server, http):
        own = {"origin": str(http.base_url).rstrip("/")}
        for extra in (headers, {**headers, **own}):
            response = await http.post(
                "/bulk", content=json.dumps(SUMMARY), headers=extra
            )
            assert response.status_code == 202
        evaluations = (await http.get("/ui/api/state")).json()["evaluations"]
        assert evaluations[0]["count"] == 2 * 99
        assert len(server.events) == 2


@pytest.mark.asyncio
async def test_a_client_delivers_its_events_to_the_log() -> None:
    async with serving() as (server, http):
        async with Client(server.config()) as client:
            await client.variation("banner", USER, None)
        assert server.events_of("summary")
        [row] = (await http.get("/ui/api/state")).json()["evaluations"]
        assert row["key"] == "banner" and row["count"] == 1


@pytest.mark.parametrize("path", ["/sdk/latest-all", "/sdk/poll", "/all"])
@pytest.mark.asyncio
async def test_bound_to_loopback_the_sdk_endpoints_refuse_a_foreign_host(
    path: str,
) -> None:
    """DNS rebinding: a page of evil.test (resolving to 127.0.0.1) reads no flag."""
    async with serving() as (_, http):
        response = await http.get(path, headers={"host": "evil.test"})
        assert response.status_code == 403
        assert "banner" not in response.text


@pytest.mark.asyncio
async def test_bound_beyond_loopback_the_sdk_endpoints_answer_any_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``serve --allow-remote --host 0.0.0.0``: SDKs of other machines reach it.

    Tests may not bind beyond loopback (conftest's guard): the server is
    told it is bound to 0.0.0.0, which is all its rules look at.
    """
    async with serving() as (server, http):
        monkeypatch.setattr(server, "_host", "0.0.0.0")
        host = {"host": "flags.example:8765"}
        flags = await http.get("/sdk/latest-all", headers=host)
        assert flags.status_code == 200 and "banner" in flags.json()["flags"]
        # Events only by IP address: a name may be a rebinding page's (N2).
        posted = await http.post("/bulk", content=json.dumps(SUMMARY), headers=host)
        assert posted.status_code == 403
        host = {"host": "192.0.2.2:8765"}
        posted = await http.post("/bulk", content=json.dumps(SUMMARY), headers=host)
        assert posted.status_code == 202
        foreign = {**host, "origin": "http://evil.test"}
        posted = await http.post("/bulk", content=json.dumps(SUMMARY), headers=foreign)
        assert posted.status_code == 403
        assert len(server.events) == 1
        # The console still answers only loopback names and its own address.
        assert (await http.get("/ui/", headers=host)).status_code == 403
        async with Client(server.config()) as client:
            assert (
                await client.variation("banner", USER, None) == BANNER["variations"][0]
            )
            await client.flush()
        await server.wait_for_events(kind="summary")


@pytest.mark.asyncio
async def test_a_header_byte_beyond_ascii_does_not_bring_the_server_down() -> None:
    async with serving() as (server, http):
        host, port = server.url.rsplit("/", 1)[1].split(":")
        async with await anyio.connect_tcp(host, int(port)) as raw:
            await raw.send(
                b"GET /ui/api/state HTTP/1.1\r\nHost: localhost\r\n"
                b"X-Name: caf\xe9\r\nConnection: close\r\n\r\n"
            )
            answer = b""
            with anyio.fail_after(30):  # a guard, not a timing
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        answer += await raw.receive()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert (
            server.requests[-1].headers["x-name"]
            == "caf\N{LATIN SMALL LETTER E WITH ACUTE}"
        )
        assert (await http.get("/ui/api/state")).status_code == 200


@pytest.mark.asyncio
async def test_keep_bounds_what_the_server_remembers() -> None:
    async with (
        FlagServer({"banner": BANNER}, keep=3) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        for n in range(5):
            await http.get("/sdk/latest-all", params={"n": str(n)})
            payload = [{"kind": "custom", "key": f"e{n}"}]
            ids = {"x-launchdarkly-payload-id": f"p{n}"}
            await http.post("/bulk", content=json.dumps(payload), headers=ids)
            await http.post("/diagnostic", content=json.dumps({"n": n}))
        assert len(server.requests) == 3
        assert server.requests[-1].path == "/diagnostic"
        assert [e["key"] for e in server.events] == ["e2", "e3", "e4"]
        assert [e["n"] for e in server.diagnostic_events] == [2, 3, 4]
        assert len(server._recorder._payload_ids) == 3
        # A retry of a kept payload is still counted once.
        retry = {"x-launchdarkly-payload-id": "p4"}
        await http.post("/bulk", content=json.dumps([{"kind": "x"}]), headers=retry)
        assert len(server.events) == 3
    with pytest.raises(ValueError, match="keep"):
        FlagServer(keep=0)


def test_serve_keeps_a_bounded_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflags._cli import _serving as command

    class Made(Exception):
        """The server was made (and is not started)."""

    made: list[dict[str, object]] = []

    def server(*args: object, **options: object) -> FlagServer:
        made.append(options)
        raise Made

    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flagValues": {"v": 1}}))
    monkeypatch.setattr(command, "FlagServer", server)
    with pytest.raises(Made):
        anyio.run(command.serve, path, "127.0.0.1", 0)
    assert made == [
        {
            "host": "127.0.0.1",
            "port": 0,
            "keep": command.SERVE_KEEP,
            "keep_bytes": command.SERVE_KEEP_BYTES,
            "lens_secret": None,
            "lens_allow": None,
            "limits": None,
        }
    ]


@pytest.mark.asyncio
async def test_a_payload_without_evaluations_records_nothing() -> None:
    log = console.Console()
    assert await log.record([]) is False
    assert await log.record([{"kind": "custom", "key": "a"}]) is False
    assert await log.record([{"kind": "feature", "key": "a", "value": 1}]) is True


@pytest.mark.asyncio
async def test_pages_are_told_only_when_the_log_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving() as (server, http):
        pushes: list[None] = []
        fanout = type(server._fanout)
        push = fanout.push_full  # (how pages are told: a full state)
        monkeypatch.setattr(
            fanout, "push_full", lambda *args: pushes.append(push(*args))
        )
        await http.post("/bulk", content=b"[]")
        assert pushes == [None]  # a new SDK (httpx, by its User-Agent) is listed
        pushes.clear()
        for nothing in ([], [{"kind": "custom", "key": "a"}], [{"kind": "index"}]):
            response = await http.post("/bulk", content=json.dumps(nothing))
            assert response.status_code == 202
        assert pushes == []
        await http.post("/bulk", content=json.dumps(SUMMARY))
        assert pushes == [None]


@pytest.mark.asyncio
async def test_a_large_events_payload_is_recorded_in_slices_the_loop_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``/bulk`` records a payload into the console in slices (``Pacer``).

    A payload of tens of thousands of events took the console ~1 s to
    record, holding the event loop: every SDK stream and console page
    waited. With a slice per event here, a task of the same loop sees the
    payload part-way recorded.
    """
    from aioflags._core._pacing import Pacer

    monkeypatch.setattr(Pacer, "due", lambda self: True)  # a slice per event
    events = [{"kind": "feature", "key": "a", "value": 1, "variation": 0}] * 50
    async with serving() as (server, http):
        seen: set[int] = set()
        posted = anyio.Event()

        async def probe() -> None:
            while not posted.is_set():
                rows = server._console.evaluations
                seen.add(rows[0]["count"] if rows else 0)
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(probe)
            response = await http.post("/bulk", content=json.dumps(events))
            posted.set()
        assert response.status_code == 202
        assert server._console.evaluations[0]["count"] == 50
        assert seen & set(range(1, 50))  # part-way: the loop ran meanwhile
