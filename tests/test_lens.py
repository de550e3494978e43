"""The flag lens (../shared/lens.md): signed per-request overrides and traces.

Tokens are minted with PyJWT directly (an outside JWT library, as a support
tool in another language would) as well as with ``aioflags.lens.mint``.
Apps are served on 127.0.0.1 (Hypercorn for the FastAPI app, aiohttp's own
server for aiohttp's; uvicorn where its access log is read) unless a case
is pure mapping. A link is followed here as a browser follows it (its
fragment kept by the client, the token posted from its confirm page);
tests/test_lens_browser.py follows one in Chromium.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import jwt as pyjwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import FastAPI

import aioflags
import aioflags.blocking
from aioflags import Context
from aioflags._core._clock import wall_ms
from aioflags._lens import _lens as lens_runtime
from aioflags._lens._link import MAX_FORM_BYTES
from aioflags._lens._web import fragment_token, marker, with_token
from aioflags._service._hosting import bind, serve_asgi
from aioflags.lens import LensConfig, LensMiddleware, aiohttp_middleware, mint, scope
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagData, FlagServer, Limits, clause
from tests.processes import HTTP_GUARD

SECRET = "first-secret-of-the-lens-0123456789abcdef"
SECOND = "second-secret-of-the-lens-0123456789abcdef"
USER = Context.create("user-42")
ALLOW = ["new-checkout", "search-*", "banner"]


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    """Each test sees the first WARNING of each cause (the limit is per process)."""
    lens_runtime._warned.clear()
    lens_runtime._told.clear()
    yield
    lens_runtime._warned.clear()
    lens_runtime._told.clear()


def flag_data() -> FlagData:
    data = FlagData()
    data.update(
        data.flag("new-checkout").boolean().fallthrough(False),
        data.flag("search-v2")
        .variations("a", "b", "c")
        .fallthrough("a")
        .rule(clause("key", "in", "rule-user"), serve="b")
        .rule(clause("key", "in", "user-42"), serve="c"),
        data.flag("banner").variations("blue", "green").fallthrough("blue"),
        data.flag("kill-switch").boolean().fallthrough(True),
        data.flag("limit").variations(1, 2, 3).fallthrough(1),
    )
    return data


def config(**options: Any) -> aioflags.Config:
    lens = options.pop("lens", LensConfig(secrets=[SECRET], allow=ALLOW))
    return aioflags.Config(data_system=flag_data().data_system(), lens=lens, **options)


def token(
    flags: dict[str, Any],
    *,
    secret: str = SECRET,
    ttl: int = 600,
    **claims: Any,
) -> str:
    """A token minted with PyJWT: the outside library a support tool would use."""
    now = int(wall_ms() / 1000)
    body = {"aud": "aioflags-lens", "iat": now, "exp": now + ttl, "jti": "t1"}
    body.update(flags=flags, **claims)
    algorithm = str(body.pop("alg", "HS256"))
    return str(pyjwt.encode(body, secret, algorithm=algorithm))


def make_app(client: aioflags.Client) -> FastAPI:
    app = FastAPI()

    @app.get("/flags")
    async def flags(user: str = "user-42") -> dict[str, Any]:
        context = Context.create(user)
        checkout = await client.bool_variation("new-checkout", context, False)
        await anyio.lowlevel.checkpoint()  # other requests run in between
        search = await client.string_variation("search-v2", context, "?")
        return {"checkout": checkout, "search": search}

    @app.get("/tasks")
    async def tasks() -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def inside() -> None:
            seen["inside"] = await client.bool_variation("new-checkout", USER, False)

        async with anyio.create_task_group() as tg:
            tg.start_soon(inside)
        return seen

    @app.get("/everything")
    async def everything() -> dict[str, Any]:
        state = await client.all_flags_state(USER, with_reasons=True)
        detail = await client.variation_detail("new-checkout", USER, None)
        return {
            "state": state.to_dict(),
            "detail": [detail.value, detail.variation_index, dict(detail.reason)],
            "snapshot": client.snapshot().bool_variation("new-checkout", USER, False),
        }

    app.add_middleware(LensMiddleware, client=client)
    return app


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` served by Hypercorn on 127.0.0.1; its base URL."""
    limits = Limits()
    sock = bind("127.0.0.1", 0, limits.backlog)
    port = sock.getsockname()[1]
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_asgi, app, sock, stop.wait, limits)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop.set()


@contextlib.asynccontextmanager
async def served_by_uvicorn(app: Any, log: list[str]) -> AsyncIterator[str]:
    """``app`` served by uvicorn on 127.0.0.1, as many apps are deployed; its base URL.

    Each line of its access log (``uvicorn.access``, uvicorn's own format,
    on by default) is added to ``log``.
    """
    import uvicorn

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            log.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    keep, level = Keep(), access.level
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    sock = bind("127.0.0.1", 0, Limits().backlog)
    # (h11: what `uvicorn app:app` runs without httptools; no websockets)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="off", http="h11", ws="none")
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])  # (connections wait in the backlog)
            try:
                yield f"http://127.0.0.1:{sock.getsockname()[1]}"
            finally:
                server.should_exit = True
    finally:
        access.removeHandler(keep)
        access.setLevel(level)
        sock.close()


@contextlib.asynccontextmanager
async def fastapi_app(**options: Any) -> AsyncIterator[tuple[aioflags.Client, str]]:
    async with (
        aioflags.Client(config(**options)) as client,
        served(make_app(client)) as url,
    ):
        yield client, url


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aioflags.lens" and r.levelno == logging.WARNING
    ]


def inline_hashes(page: str) -> dict[str, str]:
    """The CSP source of each inline script and style of ``page``, by tag."""
    found = {}
    for tag in ("script", "style"):
        match = re.search(f"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        if match is not None:
            digest = hashlib.sha256(match.group(1).encode()).digest()
            found[tag] = f"'sha256-{base64.b64encode(digest).decode()}'"
    return found


async def follow(http: httpx.AsyncClient, link: str, **post: Any) -> httpx.Response:
    """Follow ``link`` as a browser does: GET its page, then post its token.

    The fragment stays with the client (httpx, as a browser, never sends
    it); the page's script would post the token it holds to the same URL.
    ``post``: more of ``http.post``'s arguments (``headers``).
    """
    page = await http.get(link)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    token = fragment_token(link)
    assert token is not None
    return await http.post(link.partition("#")[0], data={"token": token}, **post)


# ---------------------------------------------------------- header, cookie, link
@pytest.mark.asyncio
async def test_header_cookie_and_link_each_override() -> None:
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        plain = (await http.get("/flags")).json()
        assert plain == {"checkout": False, "search": "c"}
        lensed = token({"new-checkout": True, "search-v2": "b"})

        by_header = await http.get("/flags", headers={"X-Aioflags-Lens": lensed})
        assert by_header.json() == {"checkout": True, "search": "b"}
        http.cookies.set("aioflags_lens", lensed)
        by_cookie = await http.get("/flags")
        assert by_cookie.json() == {"checkout": True, "search": "b"}
        http.cookies.clear()

        # The link: the token after "#", the bare marker in the query.
        link = with_token(f"{url}/flags?x=1&y=%20z", lensed)
        assert link == f"{url}/flags?x=1&y=%20z&aioflags_lens#aioflags_lens={lensed}"
        # Its POST: 303 to the same URL without the marker, with the cookie.
        redeemed = await follow(http, link)
        assert redeemed.status_code == 303
        assert redeemed.headers["location"] == "/flags?x=1&y=%20z"
        cookie = redeemed.headers["set-cookie"]
        assert cookie.startswith(f"aioflags_lens={lensed}; Path=/; Max-Age=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # plain http
        assert redeemed.content == b""
        # A browser follows it: the cookie now carries the token.
        followed = await http.get(redeemed.headers["location"])
        assert followed.json() == {"checkout": True, "search": "b"}
        assert followed.url.query == b"x=1&y=%20z"
        http.cookies.clear()
        assert (await http.get("/flags")).json() == plain


@pytest.mark.asyncio
async def test_a_link_s_page_is_answered_by_the_middleware_strictly_and_sets_nothing() -> (
    None
):
    lensed = token({"new-checkout": True})
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        # (the fragment is the client's own: only the marker reaches the server)
        page = await http.get(with_token(f"{url}/flags?a=%22&b=2", lensed))
        assert page.status_code == 200 and "set-cookie" not in page.headers
        assert page.headers["cache-control"] == "no-store"
        # (same-origin: under no-referrer, Chromium posts its form with
        # "Origin: null", as a sandboxed page of another site would)
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["x-frame-options"] == "DENY"
        policy = page.headers["content-security-policy"]
        hashes = inline_hashes(page.text)
        assert policy == (
            f"default-src 'none'; script-src {hashes['script']}; style-src"
            f" {hashes['style']}; form-action 'self'; frame-ancestors 'none';"
            " base-uri 'none'"
        )
        assert "Turn on the lens" in page.text  # the confirm page, not the app
        assert '<a href="/flags?a=%22&amp;b=2">Continue without the lens</a>' in (
            page.text
        )
        head = await http.head("/flags?aioflags_lens")
        assert head.status_code == 200 and head.content == b""
        # A link of the old form (its token in the query) sets nothing: its
        # token is never read, and the page says the link carries none.
        old = await http.get(f"/flags?aioflags_lens={lensed}")
        assert old.status_code == 200 and "set-cookie" not in old.headers
        assert "Turn on the lens" in old.text
        followed = await http.get("/flags")
        assert followed.json()["checkout"] is False


@pytest.mark.asyncio
async def test_a_link_turns_the_lens_on_once_per_process() -> None:
    lensed = token({"new-checkout": True})
    link = with_token("http://app.example/flags", lensed)
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        first = await follow(http, link.replace("http://app.example", url))
        assert first.status_code == 303 and "set-cookie" in first.headers
        http.cookies.clear()
        # Followed again (by anyone: a chat log, the browser's back button):
        # no cookie, a page that says it was used.
        again = await follow(http, link.replace("http://app.example", url))
        assert again.status_code == 409 and "set-cookie" not in again.headers
        assert "used already" in again.text
        assert (await http.get("/flags")).json()["checkout"] is False
        # The token itself is still a bearer token until it expires.
        headed = await http.get("/flags", headers={"X-Aioflags-Lens": lensed})
        assert headed.json()["checkout"] is True
    # Another process (another worker) remembers nothing of it: the record
    # of redeemed links is each lens's own.
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        other = await follow(http, link.replace("http://app.example", url))
        assert other.status_code == 303 and "set-cookie" in other.headers


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # the same host, another port
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
    ],
)
async def test_a_link_posted_from_another_site_is_refused_and_sets_nothing(
    headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    lensed = token({"new-checkout": True})
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        refused = await http.post(
            "/flags?aioflags_lens", data={"token": lensed}, headers=headers
        )
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
        assert "from elsewhere" in refused.text
        assert (await http.get("/flags")).json()["checkout"] is False
        # The refusal redeemed nothing: the link's own page still can.
        same = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
        mine = await http.post(
            "/flags?aioflags_lens", data={"token": lensed}, headers=same
        )
        assert mine.status_code == 303 and "set-cookie" in mine.headers
    said = warnings_of(caplog)
    assert len(said) == 1 and "another site" in said[0]


@pytest.mark.asyncio
async def test_a_link_s_form_past_8_kib_or_without_a_token_is_refused() -> None:
    async def chunks() -> AsyncIterator[bytes]:  # (no Content-Length: chunked)
        yield b"token="
        yield b"x" * MAX_FORM_BYTES

    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        marked = "/flags?aioflags_lens"
        declared = await http.post(marked, content=b"token=" + b"x" * 9000)
        assert declared.status_code == 413
        chunked = await http.post(marked, content=chunks())
        assert chunked.status_code == 413 and "set-cookie" not in chunked.headers
        assert (await http.post(marked, data={})).status_code == 400
        assert (await http.post(marked, content=b"\xff\xfe")).status_code == 400
        assert (await http.post(marked, data={"token": "garbage"})).status_code == 403
        # Just within the bound: read, and refused for what it carries.
        near = b"token=" + b"x" * (MAX_FORM_BYTES - 6)
        assert (await http.post(marked, content=near)).status_code == 403


@pytest.mark.asyncio
async def test_a_link_over_https_sets_a_secure_cookie() -> None:
    async with aioflags.Client(config()) as client:
        app = make_app(client)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            timeout=HTTP_GUARD, transport=transport, base_url="https://app.example"
        ) as http:
            lensed = token({"new-checkout": True})
            reply = await http.post("/flags?aioflags_lens", data={"token": lensed})
            assert "; Secure" in reply.headers["set-cookie"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        (b"//evil.example/x", "/evil.example/x"),
        (b"/\\evil.example", "/evil.example"),
        (b"/a b/\xc3\xa9", "/a%20b/%C3%A9"),
    ],
)
async def test_a_link_never_redirects_to_another_host(
    raw_path: bytes, expected: str
) -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a link is answered by the middleware")

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"token=" + token({}).encode()}

    async with aioflags.Client(config()) as client:
        scope_ = {
            "type": "http",
            "method": "POST",
            "scheme": "http",
            "path": raw_path.decode("latin-1"),
            "raw_path": raw_path,
            "query_string": b"aioflags_lens",
            "headers": [],
        }
        await LensMiddleware(app, client=client)(scope_, receive, send)
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 303
    assert headers[b"location"].decode() == expected


@pytest.mark.asyncio
async def test_a_lens_that_remembers_all_it_may_refuses_links_rather_than_forget(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lens_runtime, "MAX_REDEEMED", 1)
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        first = await follow(http, with_token(f"{url}/flags", token({}, jti="a")))
        assert first.status_code == 303
        http.cookies.clear()
        full = await follow(http, with_token(f"{url}/flags", token({}, jti="b")))
        assert full.status_code == 503 and "set-cookie" not in full.headers
        assert "try again later" in full.text
    assert any("holds as many as it may" in m for m in warnings_of(caplog))


def test_a_lens_remembers_redeemed_links_until_they_expire_and_at_most_its_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lens = lens_runtime.Lens(LensConfig(secrets=[SECRET], allow=ALLOW))
    one, two = token({}, jti="one"), token({}, jti="two")
    assert lens.redeem(one, 1000, now=900) == "redeemed"
    assert lens.redeem(one, 1000, now=950) == "used"
    # (kept with verify's leeway: until exp + 30 s, as long as it verifies)
    assert lens.redeem(one, 1000, now=1029) == "used"
    # The same link written another way (its signature's unused base64
    # bits) is the same link.
    head, _, signature = one.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = f"{head}.{signature[:-1]}{alphabet[alphabet.index(signature[-1]) ^ 1]}"
    assert respelled != one and lens.redeem(respelled, 1000, now=1000) == "used"
    monkeypatch.setattr(lens_runtime, "MAX_REDEEMED", 2)
    assert lens.redeem(two, 1100, now=1000) == "redeemed"
    assert lens.redeem(token({}, jti="three"), 1100, now=1000) == "full"
    # Once one expired, it is forgotten, and there is room again.
    assert lens.redeem(token({}, jti="three"), 1100, now=1031) == "redeemed"
    assert len(lens._redeemed) == 2 and len(lens._expiries) == 2


@pytest.mark.asyncio
async def test_1000_concurrent_requests_each_see_only_their_own_token() -> None:
    import aiohttp

    variations = ["a", "b", "c"]
    tokens = {v: token({"search-v2": v, "new-checkout": True}) for v in variations}
    async with (
        fastapi_app() as (_, url),
        # (aiohttp's pool, not httpx's: 1,000 requests waiting for 100
        # connections cost httpx's a scan of the waiters at every release)
        aiohttp.ClientSession(
            base_url=url, connector=aiohttp.TCPConnector(limit=100)
        ) as http,
    ):
        seen: dict[int, dict[str, Any]] = {}

        async def one(i: int) -> None:
            # half with tokens (for different variations), half without
            headers = {}
            if i % 2 == 0:
                headers["X-Aioflags-Lens"] = tokens[variations[i // 2 % 3]]
            async with http.get(
                "/flags", params={"user": f"u{i}"}, headers=headers
            ) as reply:
                seen[i] = await reply.json()

        with anyio.fail_after(120):  # a guard, not a timing
            async with anyio.create_task_group() as tg:
                for i in range(1000):
                    tg.start_soon(one, i)
    for i in range(1000):
        if i % 2 == 0:
            assert seen[i] == {"checkout": True, "search": variations[i // 2 % 3]}, i
        else:
            assert seen[i] == {"checkout": False, "search": "a"}, i


@pytest.mark.asyncio
async def test_a_task_started_inside_a_request_sees_it_one_outside_never() -> None:
    async with (
        fastapi_app() as (client, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        lensed = token({"new-checkout": True})
        reply = await http.get("/tasks", headers={"X-Aioflags-Lens": lensed})
        assert reply.json() == {"inside": True}
        # The test's own task (outside any request) never sees it.
        assert await client.bool_variation("new-checkout", USER, False) is False


@pytest.mark.asyncio
async def test_sub_limits_the_overrides_to_that_context_key() -> None:
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        lensed = token({"new-checkout": True}, sub="user-42")
        mine = await http.get("/flags", headers={"X-Aioflags-Lens": lensed})
        other = await http.get(
            "/flags", params={"user": "user-7"}, headers={"X-Aioflags-Lens": lensed}
        )
        assert mine.json()["checkout"] is True
        assert other.json()["checkout"] is False


@pytest.mark.asyncio
async def test_sub_matches_a_key_of_any_kind_of_a_multi_context() -> None:
    async with aioflags.Client(config()) as client:
        org = Context.create("org-9", kind="organization")
        multi = Context.create_multi(Context.create("user-1"), org)
        with scope(client, token({"new-checkout": True}, sub="org-9")) as lensed:
            assert lensed.active
            assert await client.bool_variation("new-checkout", multi, False) is True
            assert await client.bool_variation("new-checkout", USER, False) is False


# ------------------------------------------------------------- bad tokens
def bad_tokens() -> dict[str, tuple[str, str]]:
    """Each bad token, and the cause its WARNING names."""
    now = int(wall_ms() / 1000)
    unsigned = pyjwt.encode(
        {"aud": "aioflags-lens", "iat": now, "exp": now + 60, "flags": {}},
        None,
        algorithm="none",
    )
    return {
        "forged": (token({"new-checkout": True}, secret="x" * 40), "forged"),
        "expired": (
            token({"new-checkout": True}, iat=now - 4000, exp=now - 3000),
            "expired",
        ),
        "alg none": (str(unsigned), "algorithm"),
        "HS512": (
            token({"new-checkout": True}, alg="HS512", secret="z" * 64),
            "algorithm",
        ),
        "another aud": (token({"new-checkout": True}, aud="someone-else"), "audience"),
        "over 4 KiB": (token({"new-checkout": True, "pad": "x" * 5000}), "oversized"),
        "garbage": ("not.a.token", "malformed"),
        "too long a life": (token({"new-checkout": True}, ttl=7200), "expired"),
        # issue 77: an exp past a float's range was a 500 (math.isfinite raised)
        "exp past a float": (
            token({"new-checkout": True}, exp=10**400, iat=now),
            "malformed",
        ),
        "iat past a float": (
            token({"new-checkout": True}, exp=now + 60, iat=-(10**400)),
            "malformed",
        ),
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "case",
    [
        "forged",
        "expired",
        "alg none",
        "HS512",
        "another aud",
        "over 4 KiB",
        "garbage",
        "too long a life",
        "exp past a float",
        "iat past a float",
    ],
)
async def test_a_bad_token_gives_a_normal_response_no_override_no_trace_one_warning(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad, cause = bad_tokens()[case]
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        for _ in range(3):
            reply = await http.get("/flags", headers={"X-Aioflags-Lens": bad})
            assert reply.status_code == 200
            assert reply.json() == {"checkout": False, "search": "c"}
            assert "x-aioflags-trace" not in reply.headers
        # A link with it: a page that says it was refused, and no cookie.
        link = await follow(http, with_token(f"{url}/flags", bad))
        assert link.status_code == 403 and "set-cookie" not in link.headers
        assert f"was refused ({cause})" in link.text
    said = warnings_of(caplog)
    assert len(said) == 1, said  # rate-limited: one a minute per cause
    assert f"({cause}:" in said[0]
    assert bad not in said[0]  # never the token itself


@pytest.mark.asyncio
async def test_a_refused_flag_is_not_overridden_and_the_rest_still_apply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "aioflags.lens")
    lensed = token(
        {
            "kill-switch": False,  # not in allow
            "banner": "purple",  # not one of its variations
            "no-such-flag": True,  # does not exist
            "limit": True,  # True is not the variation 1
            "new-checkout": True,
        },
        trace=True,
    )
    everything = LensConfig(secrets=[SECRET], allow=["*"])
    async with aioflags.Client(config(lens=everything)) as client:
        with scope(client, lensed) as lensed_scope:
            for _ in range(2):
                assert await client.bool_variation("new-checkout", USER, False)
                assert await client.variation("banner", USER, None) == "blue"
                assert await client.variation("limit", USER, None) == 1
            assert lensed_scope.trace() is not None
    said = warnings_of(caplog)
    assert len(said) == 3  # one WARNING per token and flag (issue 86, row 109)
    assert any("'banner'" in m and "not one of its variations" in m for m in said)
    assert any("'no-such-flag'" in m and "no such flag" in m for m in said)
    assert any("'limit'" in m for m in said)
    assert sum("'banner'" in m for m in said) == 1  # once per token and flag


@pytest.mark.asyncio
async def test_kill_switch_stays_out_of_reach_unless_allowed() -> None:
    async with aioflags.Client(config()) as client:
        with scope(client, token({"kill-switch": False})) as lensed:
            assert lensed.active
            assert await client.bool_variation("kill-switch", USER, False) is True


@pytest.mark.asyncio
async def test_rotation_second_secret_verifies_a_removed_one_does_not() -> None:
    rotated = LensConfig(secrets=[SECOND, SECRET], allow=ALLOW)
    async with aioflags.Client(config(lens=rotated)) as client:
        for secret in (SECOND, SECRET):
            with scope(client, token({"new-checkout": True}, secret=secret)):
                assert await client.bool_variation("new-checkout", USER, False)
    after = LensConfig(secrets=[SECOND], allow=ALLOW)
    async with aioflags.Client(config(lens=after)) as client:
        with scope(client, token({"new-checkout": True}, secret=SECRET)) as lensed:
            assert not lensed.active
            assert not await client.bool_variation("new-checkout", USER, False)


@pytest.mark.asyncio
async def test_scope_never_raises_and_a_client_without_a_lens_ignores_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with aioflags.Client(config(lens=None)) as client:
        with scope(client, token({"new-checkout": True})) as lensed:
            assert not lensed.active and lensed.trace() is None
            assert not await client.bool_variation("new-checkout", USER, False)
        async with (
            served(make_app(client)) as url,
            httpx.AsyncClient(timeout=HTTP_GUARD) as http,
        ):
            link = with_token(f"{url}/flags", token({"new-checkout": True}))
            reply = await http.get(link)
            assert reply.status_code == 200  # untouched: the app's answer
            assert reply.json()["checkout"] is False
            posted = await http.post(f"{url}/flags?aioflags_lens")
            assert posted.status_code == 405  # (the app's: it has no POST)
    assert any("without Config(lens=" in m for m in warnings_of(caplog))


# ------------------------------------------------------- what an override is
@pytest.mark.asyncio
async def test_no_analytics_event_for_an_override_and_usage_counts_it() -> None:
    data = flag_data()
    async with FlagServer() as server:
        data.attach(server)
        lens = LensConfig(secrets=[SECRET], allow=ALLOW)
        async with aioflags.Client(server.config(lens=lens)) as client:
            with scope(client, token({"new-checkout": True})):
                for _ in range(3):
                    assert await client.bool_variation("new-checkout", USER, False)
                    detail = await client.variation_detail("new-checkout", USER, None)
                    assert detail.reason == {"kind": "OVERRIDE", "lens": "t1"}
                    assert await client.variation("banner", USER, None) == "blue"
            assert not await client.bool_variation("new-checkout", USER, False)
            usage = client.usage()
            await client.flush()
            events = await server.wait_for_events(kind="summary")
        checkout = usage.flags["new-checkout"]
        assert (checkout.overridden, checkout.evaluations) == (6, 1)
        assert checkout.to_dict()["overridden"] == 6
        assert usage.flags["banner"].overridden == 0
        summary = events[-1]["features"]
        assert summary["new-checkout"]["counters"] == [
            {"count": 1, "value": False, "variation": 1, "version": 1}
        ]
        assert sum(c["count"] for c in summary["banner"]["counters"]) == 3
        assert not [
            e
            for e in server.events
            if e.get("kind") == "feature" and e.get("key") == "new-checkout"
        ]


@pytest.mark.asyncio
async def test_hooks_run_and_see_the_override() -> None:
    seen: list[Any] = []

    class Watch(aioflags.Hook):
        def after_evaluation(self, series: Any, data: Any, detail: Any) -> Any:
            seen.append((series.key, detail.value, dict(detail.reason)))
            return data

    async with aioflags.Client(config(hooks=[Watch()])) as client:
        with scope(client, token({"new-checkout": True})):
            assert await client.bool_variation("new-checkout", USER, False)
            assert client.snapshot().bool_variation("new-checkout", USER, False)
    assert seen == [("new-checkout", True, {"kind": "OVERRIDE", "lens": "t1"})] * 2


@pytest.mark.asyncio
async def test_every_face_sees_the_override() -> None:
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        lensed = token({"new-checkout": True})
        body = (
            await http.get("/everything", headers={"X-Aioflags-Lens": lensed})
        ).json()
        assert body["state"]["new-checkout"] is True
        assert body["state"]["$flagsState"]["new-checkout"]["reason"] == {
            "kind": "OVERRIDE",
            "lens": "t1",
        }
        assert body["detail"] == [True, 0, {"kind": "OVERRIDE", "lens": "t1"}]
        assert body["snapshot"] is True
        plain = (await http.get("/everything")).json()
        assert plain["state"]["new-checkout"] is False and not plain["snapshot"]


@pytest.mark.asyncio
async def test_typed_methods_still_check_the_type_of_an_override() -> None:
    async with aioflags.Client(config()) as client:
        with scope(client, token({"new-checkout": True})):
            detail = await client.string_variation_detail("new-checkout", USER, "x")
            assert detail.value == "x"
            assert detail.reason["errorKind"] == "WRONG_TYPE"


@pytest.mark.asyncio
async def test_openfeature_and_ofrep_report_override() -> None:
    from openfeature.evaluation_context import EvaluationContext
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from aioflags.openfeature import AioflagsProvider

    async with aioflags.Client(config()) as client:
        provider = AioflagsProvider(client)
        user = EvaluationContext(targeting_key="user-42")
        with scope(client, token({"new-checkout": True})):
            details = provider.resolve_boolean_details("new-checkout", False, user)
            later = await provider.resolve_boolean_details_async(
                "new-checkout", False, user
            )
        assert (details.value, details.reason, details.variant) == (
            True,
            "OVERRIDE",
            "0",
        )
        assert (later.value, later.reason) == (True, "OVERRIDE")
        app = Starlette(routes=[Mount("/", OFREPApp(client, expose="all"))])
        app.add_middleware(LensMiddleware, client=client)
        async with (
            served(app) as url,
            httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
        ):
            lensed = {"X-Aioflags-Lens": token({"new-checkout": True})}
            ask = {"context": {"targetingKey": "user-42"}}
            one = await http.post(
                "/ofrep/v1/evaluate/flags/new-checkout", json=ask, headers=lensed
            )
            assert one.json()["reason"] == "OVERRIDE" and one.json()["value"] is True
            bulk = await http.post("/ofrep/v1/evaluate/flags", json=ask, headers=lensed)
            flags = {f["key"]: f for f in bulk.json()["flags"]}
            assert flags["new-checkout"]["reason"] == "OVERRIDE"
            assert flags["banner"]["reason"] != "OVERRIDE"


# ------------------------------------------------------------------ traces
@pytest.mark.asyncio
async def test_the_trace_lists_what_the_request_evaluated_in_order() -> None:
    async with (
        fastapi_app() as (_, url),
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        lensed = token({"new-checkout": True}, trace=True)
        reply = await http.get(
            "/flags", params={"user": "rule-user"}, headers={"X-Aioflags-Lens": lensed}
        )
        assert reply.headers["x-aioflags-trace"] == (
            'new-checkout=true (OVERRIDE); search-v2="b" (RULE_MATCH 0 "rule-0")'
        )
        plain = token({"new-checkout": True})  # no trace asked for
        reply = await http.get("/flags", headers={"X-Aioflags-Lens": plain})
        assert "x-aioflags-trace" not in reply.headers
        assert "x-aioflags-trace" not in (await http.get("/flags")).headers


@pytest.mark.asyncio
async def test_a_flag_key_with_control_characters_is_escaped_in_the_trace() -> None:
    # issue 77: a key with CR, LF or NUL dropped the response; ESC and DEL
    # went into the header as they were.
    data = FlagData()
    odd = "odd\r\nX-Injected: 1\x00\x1b[31m\x7f\u00e9"
    data.update(data.flag(odd).boolean().fallthrough(True))
    lens = LensConfig(secrets=[SECRET], allow=["*"])
    cfg = aioflags.Config(data_system=data.data_system(), lens=lens)
    async with aioflags.Client(cfg) as client:
        app = FastAPI()

        @app.get("/")
        async def one() -> bool:
            return bool(await client.variation(odd, USER, None))

        app.add_middleware(LensMiddleware, client=client)
        async with (
            served(app) as url,
            httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
        ):
            reply = await http.get(
                "/", headers={"X-Aioflags-Lens": token({}, trace=True)}
            )
    assert reply.status_code == 200 and reply.json() is True
    assert "x-injected" not in reply.headers
    assert reply.headers["x-aioflags-trace"] == (
        "odd\\r\\nX-Injected: 1\\x00\\x1b[31m\\x7f\\xe9=true (FALLTHROUGH)"
    )


@pytest.mark.asyncio
async def test_the_trace_stops_at_8_kib_and_says_how_many_more() -> None:
    data = FlagData()
    for i in range(400):
        data.update(data.flag(f"flag-{i:03}-" + "k" * 40).boolean().fallthrough(True))
    lens = LensConfig(secrets=[SECRET], allow=["*"])
    cfg = aioflags.Config(data_system=data.data_system(), lens=lens)
    async with aioflags.Client(cfg) as client:
        app = FastAPI()

        @app.get("/")
        async def many() -> int:
            for key in sorted(data.flags):
                await client.variation(key, USER, None)
            return 0

        app.add_middleware(LensMiddleware, client=client)
        async with (
            served(app) as url,
            httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
        ):
            reply = await http.get(
                "/", headers={"X-Aioflags-Lens": token({}, trace=True)}
            )
    header = reply.headers["x-aioflags-trace"]
    assert len(header.encode()) <= 8192
    shown = header.split("; ")
    assert shown[-1].startswith("...+") and shown[-1].endswith(" more")
    more = int(shown[-1][4:-5])
    assert len(shown) - 1 + more == 400
    assert shown[0] == f"flag-000-{'k' * 40}=true (FALLTHROUGH)"


# ----------------------------------------------------------------- aiohttp
@pytest.mark.asyncio
async def test_aiohttp_middleware_header_link_and_trace() -> None:
    async with aioflags.Client(config()) as client:

        async def flags(request: web.Request) -> web.Response:
            checkout = await client.bool_variation("new-checkout", USER, False)
            return web.json_response({"checkout": checkout})

        app = web.Application(middlewares=[aiohttp_middleware(client)])
        app.router.add_get("/flags", flags)
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            lensed = token({"new-checkout": True}, trace=True)
            reply = await http.get("/flags", headers={"X-Aioflags-Lens": lensed})
            assert await reply.json() == {"checkout": True}
            assert reply.headers["X-Aioflags-Trace"] == "new-checkout=true (OVERRIDE)"
            bad = await http.get("/flags", headers={"X-Aioflags-Lens": "garbage"})
            assert bad.status == 200 and "X-Aioflags-Trace" not in bad.headers

            # A link: the same page, the same headers as LensMiddleware's.
            page = await http.get("/flags?a=1&aioflags_lens")
            text = await page.text()
            assert page.status == 200 and "Turn on the lens" in text
            hashes = inline_hashes(text)
            policy = page.headers["Content-Security-Policy"]
            assert hashes["script"] in policy and hashes["style"] in policy
            assert page.headers["Cache-Control"] == "no-store"
            assert page.headers["X-Frame-Options"] == "DENY"
            assert page.headers["Content-Type"] == "text/html; charset=utf-8"
            head = await http.head("/flags?aioflags_lens")
            assert head.status == 200 and await head.read() == b""
            marked = "/flags?a=1&aioflags_lens"
            foreign = await http.post(
                marked,
                data={"token": lensed},
                headers={"Origin": "http://evil.example"},
            )
            assert foreign.status == 403 and "Set-Cookie" not in foreign.headers
            big = await http.post(marked, data=b"token=" + b"x" * 9000)
            assert big.status == 413
            assert (await http.post(marked, data={"token": "garbage"})).status == 403
            link = await http.post(
                marked,
                data={"token": lensed},
                headers={"Sec-Fetch-Site": "same-origin"},
                allow_redirects=False,
            )
            assert link.status == 303 and link.headers["Location"] == "/flags?a=1"
            assert link.headers["Set-Cookie"].startswith(f"aioflags_lens={lensed};")
            followed = await http.get("/flags?a=1")  # the cookie jar has it
            assert await followed.json() == {"checkout": True}
            http.session.cookie_jar.clear()
            again = await http.post(
                marked, data={"token": lensed}, allow_redirects=False
            )
            assert again.status == 409 and "Set-Cookie" not in again.headers
            assert await (await http.get("/flags?a=1")).json() == {"checkout": False}


# --------------------------------------------------------------- the tokens
def test_a_link_s_marker_is_found_and_the_rest_of_the_query_kept_as_written() -> None:
    assert marker("a=1&&aioflags_lens&b=%20&aioflags_lens=old&") == (
        True,
        "a=1&b=%20",  # the others as written, empty pieces dropped
    )
    assert marker("aioflags%5Flens=T") == (True, "")  # (a value is never read)
    assert marker("a=1&aioflags_lensx=2") == (False, "a=1&aioflags_lensx=2")
    assert marker("") == (False, "")


def test_a_link_carries_its_token_after_the_hash_only() -> None:
    assert with_token("https://app.example/cart?x=1#top", "T.o.k") == (
        "https://app.example/cart?x=1&aioflags_lens#aioflags_lens=T.o.k"
    )
    assert with_token("http://app.example/?aioflags_lens=old", "T.o.k") == (
        "http://app.example/?aioflags_lens#aioflags_lens=T.o.k"
    )
    assert fragment_token("https://a.example/?aioflags_lens#aioflags_lens=T.o") == "T.o"
    assert fragment_token("https://a.example/?aioflags_lens=T.o") is None
    with pytest.raises(ValueError, match="not an http"):
        with_token("javascript:alert(1)//", "T.o.k")


def test_mint_makes_a_token_any_jwt_library_reads() -> None:
    minted = mint(SECRET, {"new-checkout": True}, ttl=60, context_key="u", trace=True)
    claims = pyjwt.decode(
        minted, SECRET, algorithms=["HS256"], audience="aioflags-lens"
    )
    assert claims["flags"] == {"new-checkout": True}
    assert claims["sub"] == "u" and claims["trace"] is True
    assert claims["exp"] - claims["iat"] == 60 and claims["jti"]


def test_a_lens_without_pyjwt_is_refused_when_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # issue 77: without the lens extra, the first token was a 500.
    import sys

    monkeypatch.setitem(sys.modules, "jwt", None)  # (as if not installed)
    with pytest.raises(aioflags.ConfigurationError, match=r"aioflags\[lens\]"):
        LensConfig(secrets=[SECRET], allow=["*"])


def test_lens_config_refuses_what_would_be_unsafe_or_a_typo() -> None:
    with pytest.raises(aioflags.ConfigurationError, match="at least 32 bytes"):
        LensConfig(secrets=["short"], allow=["x"])
    with pytest.raises(aioflags.ConfigurationError, match="no default"):
        LensConfig(secrets=[SECRET], allow=[])
    with pytest.raises(aioflags.ConfigurationError, match="take lists"):
        LensConfig(secrets=SECRET, allow=["x"])
    with pytest.raises(aioflags.ConfigurationError, match="max_ttl"):
        LensConfig(secrets=[SECRET], allow=["x"], max_ttl=0)
    with pytest.raises(aioflags.ConfigurationError, match="LensConfig"):
        aioflags.Config(offline=True, lens={"secrets": [SECRET]})  # type: ignore[arg-type]
    assert SECRET not in repr(LensConfig(secrets=[SECRET], allow=["x"]))


# --------------------------------------------------------------- the command
def test_lens_mint_and_inspect_from_the_command_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")  # the trailing newline is ignored
    assert (
        main(
            [
                "lens",
                "mint",
                "--secret-file",
                str(secret_file),
                "--flag",
                "new-checkout=true",
                "--flag",
                "search-v2=b",
                "--flag",
                'limit="2"',
                "--ttl",
                "30m",
                "--context-key",
                "user-42",
                "--trace",
                "--url",
                "https://app.example/cart?x=1",
            ]
        )
        == 0
    )
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://app.example/cart?x=1&aioflags_lens#aioflags_lens=")
    minted = link.split("#aioflags_lens=")[1]
    claims = pyjwt.decode(
        minted, SECRET, algorithms=["HS256"], audience="aioflags-lens"
    )
    assert claims["flags"] == {"new-checkout": True, "search-v2": "b", "limit": "2"}
    assert claims["exp"] - claims["iat"] == 1800
    assert claims["sub"] == "user-42" and claims["trace"] is True

    assert main(["lens", "inspect", link, "--secret-file", str(secret_file)]) == 0
    out = capsys.readouterr().out
    assert '"new-checkout": true' in out and out.rstrip().endswith("verifies")
    other = tmp_path / "other"
    other.write_text(SECOND)
    assert main(["lens", "inspect", minted, "--secret-file", str(other)]) == 1
    assert "refused (forged)" in capsys.readouterr().out
    assert main(["lens", "inspect", minted]) == 0
    assert "not verified" in capsys.readouterr().out

    short = tmp_path / "short"
    short.write_text("too-short\n")
    assert main(["lens", "mint", "--secret-file", str(short), "--flag", "a=1"]) == 2
    assert "at least 32" in capsys.readouterr().err
    assert main(["lens", "inspect", "garbage"]) == 2
    with pytest.raises(SystemExit):
        main(["lens", "mint", "--secret-file", str(secret_file), "--ttl", "soon"])
    assert "not a lifetime" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_the_lens_is_read_only_while_a_view_is_open_and_always_closed() -> None:
    async with aioflags.Client(config()) as client:
        lens = client._lens
        assert lens is not None and lens.active == 0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            assert lens.active == 1
            assert await client.bool_variation("new-checkout", USER, False)
            raise RuntimeError("the app fails")

        http_scope = {
            "type": "http",
            "path": "/",
            "query_string": b"",
            "headers": [(b"x-aioflags-lens", token({"new-checkout": True}).encode())],
        }
        with pytest.raises(RuntimeError, match="the app fails"):
            await LensMiddleware(app, client=client)(http_scope, None, None)  # type: ignore[arg-type]
        assert lens.active == 0  # the app's exception passed through, unwrapped
        with scope(client, token({"new-checkout": True})):
            with scope(client, token({"new-checkout": False})):
                assert lens.active == 2
                assert not await client.bool_variation("new-checkout", USER, True)
            assert await client.bool_variation("new-checkout", USER, False)
        assert lens.active == 0
        assert not await client.bool_variation("new-checkout", USER, False)


@pytest.mark.asyncio
async def test_a_lens_no_request_uses_runs_no_lens_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # lens.md's cost: a request without a token costs at most 3 % more. The
    # lens's stage is in an evaluation only while a view is open somewhere;
    # a snapshot handed out before a view opened sees it too.
    from aioflags._lens._lens import LensStage

    calls: list[str] = []
    evaluate = LensStage.evaluate

    def counted(self: LensStage, *args: Any) -> Any:
        calls.append(args[2])  # (the flag key)
        return evaluate(self, *args)

    monkeypatch.setattr(LensStage, "evaluate", counted)
    async with aioflags.Client(config()) as client:
        before = client.snapshot()
        assert not await client.bool_variation("new-checkout", USER, False)
        assert not before.bool_variation("new-checkout", USER, False)
        assert calls == []  # no view anywhere: no stage
        with scope(client, token({"new-checkout": True})):
            assert await client.bool_variation("new-checkout", USER, False)
            assert before.bool_variation("new-checkout", USER, False)
            other = await _elsewhere(client)  # a task that never had the view
        assert other is False  # no view there: the stage did not run (G9)
        assert calls == ["new-checkout"] * 2
        assert not await client.bool_variation("new-checkout", USER, False)
        assert len(calls) == 2  # closed: out again


async def _elsewhere(client: aioflags.Client) -> bool:
    """``new-checkout`` evaluated in a task started with an empty context."""
    import contextvars

    answers: list[bool] = []

    async def evaluate() -> None:
        answers.append(await client.bool_variation("new-checkout", USER, False))

    async with anyio.create_task_group() as tg:
        # (a task copies the context it is started in: here, an empty one)
        contextvars.Context().run(tg.start_soon, evaluate)
    return answers[0]


# ------------------------------------------------------------- the console
CONSOLE_CHECKOUT: dict[str, Any] = {
    "on": True,
    "variations": [False, True],
    "fallthrough": {"variation": 0},
    "offVariation": 0,
}


@pytest.mark.asyncio
async def test_the_console_mints_only_with_a_secret_and_only_real_variations(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "aioflags.lens")
    async with (
        FlagServer({"new-checkout": CONSOLE_CHECKOUT}) as plain,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=plain.url) as http,
    ):
        page = await http.get("/ui/")
        token = page.text.split('name="aioflags-token" content="')[1].split('"')[0]
        state = (await http.get("/ui/api/state")).json()
        assert state["lens"] is False
        reply = await http.post(
            "/ui/api/lens",
            json={
                "url": "http://x/",
                "flags": [{"key": "new-checkout", "variation": 1}],
            },
            headers={"x-aioflags-token": token},
        )
        assert reply.status_code == 404 and "--lens-secret-file" in reply.text
        assert plain.lens_key is None
    with pytest.raises(aioflags.ConfigurationError, match="at least 32 bytes"):
        FlagServer(lens_secret="short")
    async with (
        FlagServer({"new-checkout": CONSOLE_CHECKOUT}, lens_secret=SECRET) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        page = await http.get("/ui/")
        token = page.text.split('name="aioflags-token" content="')[1].split('"')[0]
        assert (await http.get("/ui/api/state")).json()["lens"] is True
        key = server.lens_key
        assert key is not None and key not in page.text  # (no page carries it)

        async def mint(
            body: Any, with_token: bool = True, lens_key: str | None = key
        ) -> httpx.Response:
            headers = {"x-aioflags-token": token} if with_token else {}
            if lens_key is not None:
                headers["x-aioflags-lens-key"] = lens_key
            return await http.post("/ui/api/lens", json=body, headers=headers)

        good = {
            "url": "https://shop.example/cart?x=1",
            "flags": [{"key": "new-checkout", "variation": 1}],
            "ttl": 900,
            "context_key": "user-42",
            "trace": True,
        }
        made = await mint(good)
        assert made.status_code == 200
        link = made.json()["link"]
        assert link == (
            "https://shop.example/cart?x=1&aioflags_lens#aioflags_lens="
            + made.json()["token"]
        )
        claims = pyjwt.decode(
            made.json()["token"],
            SECRET,
            algorithms=["HS256"],
            audience="aioflags-lens",
        )
        assert claims["flags"] == {"new-checkout": True}
        assert claims["sub"] == "user-42" and claims["trace"] is True
        assert claims["exp"] - claims["iat"] == 900
        # Each link made is said (INFO), never with its token.
        told = [r.getMessage() for r in caplog.records if r.name == "aioflags.lens"]
        assert told == [
            f"aioflags console: made lens link {claims['jti']} for"
            " https://shop.example/cart: new-checkout=true, for 900 s, context key"
            " 'user-42', with a trace"
        ]
        assert (await mint(good, with_token=False)).status_code == 403
        # What any local process can read (the page's token) is not enough.
        keyless = await mint(good, lens_key=None)
        assert keyless.status_code == 403 and "#lens-key=" in keyless.text
        wrong = await mint(good, lens_key=key[:-1] + ("A" if key[-1] != "A" else "B"))
        assert wrong.status_code == 403 and "wrong lens key" in wrong.text
        assert (await mint([1, 2], lens_key=None)).status_code == 403
        for bad, status in [
            ({**good, "url": "javascript:alert(1)"}, 400),
            ({**good, "flags": [], "trace": False}, 400),  # nothing asked
            ({**good, "flags": [{"key": "nope", "variation": 0}]}, 404),
            ({**good, "flags": [{"key": "new-checkout", "variation": 2}]}, 400),
            ({**good, "flags": [{"key": "new-checkout", "variation": True}]}, 400),
            ({**good, "ttl": 10}, 400),
            ({**good, "ttl": 10**9}, 400),
            ({**good, "trace": "yes"}, 400),
            ({**good, "context_key": 7}, 400),
            ([1, 2], 400),
            ({**good, "context_key": "k" * 5000}, 400),  # a token over 4 KiB
        ]:
            reply = await mint(bad)
            assert reply.status_code == status, (bad, reply.text)


async def _console_lens(server: FlagServer, body: Any) -> httpx.Response:
    """``POST /ui/api/lens`` as the console's page sends it (its token, the lens key)."""
    async with httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http:
        page = await http.get("/ui/")
        token = page.text.split('name="aioflags-token" content="')[1].split('"')[0]
        assert server.lens_key is not None
        headers = {"x-aioflags-token": token, "x-aioflags-lens-key": server.lens_key}
        return await http.post("/ui/api/lens", json=body, headers=headers)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_row123_a_console_link_for_a_flag_outside_the_app_allow_says_so() -> None:
    """The answer that carries the link says which flags the app will not override."""
    flags = {"new-checkout": CONSOLE_CHECKOUT, "checkout-v2": CONSOLE_CHECKOUT}
    allow = ["checkout-*"]
    both = {
        "url": "https://shop.example/cart",
        "flags": [
            {"key": "new-checkout", "variation": 1},
            {"key": "checkout-v2", "variation": 1},
        ],
    }
    inside = {**both, "flags": [{"key": "checkout-v2", "variation": 1}]}
    async with FlagServer(flags, lens_secret=SECRET, lens_allow=allow) as server:
        made = await _console_lens(server, both)
        assert made.status_code == 200
        warning = made.json()["warning"]
        assert warning.startswith("The app will not override new-checkout:")
        assert "checkout-v2" not in warning and "(checkout-*)" in warning
        fine = await _console_lens(server, inside)
        assert fine.status_code == 200 and fine.json()["warning"] is None
        trace_only = {**both, "flags": [], "trace": True}
        assert (await _console_lens(server, trace_only)).json()["warning"] is None
    # It is true: the app with that allow overrides checkout-v2 alone.
    lens = LensConfig(secrets=[SECRET], allow=allow)
    app_data = FlagData()
    for key, flag in flags.items():
        app_data.set_flag(key, flag)
    app_config = aioflags.Config(data_system=app_data.data_system(), lens=lens)
    async with aioflags.Client(app_config) as client:
        await client.wait_ready()
        with scope(client, made.json()["token"]):
            assert await client.bool_variation("checkout-v2", USER, False) is True
            assert await client.bool_variation("new-checkout", USER, False) is False
    # Without the app's list, every link with flags says it was not checked.
    async with FlagServer(flags, lens_secret=SECRET) as unknown:
        made = await _console_lens(unknown, inside)
        assert made.status_code == 200
        assert "does not know that list" in made.json()["warning"]
        assert "--lens-allow" in made.json()["warning"]
    with pytest.raises(ValueError, match="lens_allow"):
        FlagServer(lens_allow=allow)
    with pytest.raises(aioflags.ConfigurationError, match="non-empty strings"):
        FlagServer(lens_secret=SECRET, lens_allow=[""])


@pytest.mark.slow
def test_row123_serve_takes_the_app_allow_only_with_a_lens_secret(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    flags = tmp_path / "flags.json"
    flags.write_text('{"flagValues": {"a": true}}')
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    with pytest.raises(SystemExit) as exited:
        main(["serve", str(flags), "--lens-allow", "checkout-*"])
    assert exited.value.code == 2
    assert "--lens-allow needs --lens-secret-file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            ["serve", str(flags), "--lens-secret-file", str(secret), "--lens-allow", ""]
        )
    assert "--lens-allow: a pattern" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_row161_where_a_link_is_made_it_says_it_works_once_per_process() -> None:
    """The console's page (next to the link) and docs/lens.md's story say it plainly."""
    async with (
        FlagServer({"new-checkout": CONSOLE_CHECKOUT}, lens_secret=SECRET) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        page = " ".join((await http.get("/ui/")).text.split())
    made = page.split('<div id="lens-made" hidden>')[1].split("</div>")[0]
    assert (
        "It turns the lens on once per app process: an app served by several"
        " processes (<code>uvicorn --workers 4</code>, replicas) accepts it once"
        " in each, until it expires." in made
    )
    docs = Path(__file__).parent.parent / "docs" / "lens.md"
    story = " ".join(docs.read_text().split("## Setting it up")[0].split())
    assert "**A link turns the lens on once per app process.**" in story
    assert "(`uvicorn --workers 4`, replicas" in story


def test_serve_refuses_a_lens_secret_file_it_cannot_use(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    flags = tmp_path / "flags.json"
    flags.write_text('{"flagValues": {"a": true}}')
    short = tmp_path / "short"
    short.write_text("short\n")
    assert main(["serve", str(flags), "--lens-secret-file", str(short)]) == 2
    assert "--lens-secret-file" in capsys.readouterr().err
    missing = tmp_path / "missing"
    assert main(["serve", str(flags), "--lens-secret-file", str(missing)]) == 2
    assert "missing" in capsys.readouterr().err


def test_a_blocking_client_looks_through_the_lens_in_scope_only() -> None:
    with aioflags.blocking.Client(config()) as client:
        assert client.bool_variation("new-checkout", USER, False) is False
        with scope(client, token({"new-checkout": True})) as lensed:
            assert lensed.active
            assert client.bool_variation("new-checkout", USER, False) is True
            detail = client.variation_detail("new-checkout", USER, None)
            assert detail.reason == {"kind": "OVERRIDE", "lens": "t1"}
        assert client.bool_variation("new-checkout", USER, False) is False
