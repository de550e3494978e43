"""The flag lens's sharp edges of issue 86, each by its ID (docs/lens.md).

Each test names the finding it pins; each fails on the code before the
issue's lens half (9fae710).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import FastAPI

import aioflags
from aioflags import Context
from aioflags._core._clock import wall_ms
from aioflags._lens import _lens as lens_runtime
from aioflags.lens import LensConfig, LensMiddleware, aiohttp_middleware, mint, scope
from aioflags.testing import FlagData, FlagServer, clause
from tests.processes import HTTP_GUARD
from tests.test_lens import (
    ALLOW,
    CONSOLE_CHECKOUT,
    SECRET,
    USER,
    config,
    make_app,
    served,
    token,
    warnings_of,
)


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    """Each test sees the first WARNING of each cause (the limit is per process)."""
    lens_runtime._warned.clear()
    lens_runtime._told.clear()
    yield
    lens_runtime._warned.clear()
    lens_runtime._told.clear()


def _main(*argv: str) -> int:
    from aioflags.__main__ import main

    return main(list(argv))


# ------------------------------------------------------------------ tokens
def test_inspect_says_in_one_line_that_a_time_out_of_range_is_no_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """G7: ``lens inspect`` on ``exp`` = 10**400 printed a traceback (OverflowError)."""
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    now = int(wall_ms() / 1000)
    for exp in (10**400, 10**12):  # past a float; past year 9999
        minted = pyjwt.encode(
            {"aud": "aioflags-lens", "iat": now, "exp": exp, "flags": {}},
            SECRET,
            algorithm="HS256",
        )
        assert _main("lens", "inspect", minted, "--secret-file", str(secret)) == 1
        out = capsys.readouterr().out
        said = [line for line in out.splitlines() if line.startswith("exp: ")]
        assert len(said) == 1, out
        assert "is not a time" in said[0] or "past the dates" in said[0], said
        assert "refused (" in out, out
        assert "Traceback" not in out


@pytest.mark.asyncio
async def test_a_token_not_valid_yet_or_with_a_bad_nbf_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """G10: ``nbf`` was ignored: a token valid only tomorrow, or ``nbf: "x"``, applied."""
    caplog.set_level(logging.DEBUG, "aioflags.lens")
    tomorrow = int(wall_ms() / 1000) + 86_400
    async with aioflags.Client(config()) as client:
        for nbf, cause in ((tomorrow, "expired"), ("x", "malformed")):
            with scope(client, token({"new-checkout": True}, nbf=nbf)) as lensed:
                assert not lensed.active
                assert not await client.bool_variation("new-checkout", USER, False)
            said = warnings_of(caplog)
            assert len(said) == 1 and f"({cause}:" in said[0] and "nbf" in said[0]
            caplog.clear()
        # A token valid from now on (nbf now, within the leeway) applies.
        now = int(wall_ms() / 1000)
        with scope(client, token({"new-checkout": True}, nbf=now + 10)) as lensed:
            assert lensed.active
            assert await client.bool_variation("new-checkout", USER, False)


@pytest.mark.asyncio
async def test_a_secret_file_with_a_newline_is_one_secret_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """T3 / row 103: a secret read with ``read_text()`` kept its newline: "forged"."""
    secret = tmp_path / "lens-secret"
    secret.write_text(SECRET + "\n")  # as `echo SECRET > lens-secret` writes it
    assert (
        _main(
            "lens", "mint", "--secret-file", str(secret), "--flag", "new-checkout=true"
        )
        == 0
    )
    minted = capsys.readouterr().out.strip()
    assert _main("lens", "inspect", minted, "--secret-file", str(secret)) == 0
    assert "verifies" in capsys.readouterr().out
    by_text = LensConfig(secrets=[secret.read_text()], allow=ALLOW)
    by_bytes = LensConfig(secrets=[secret.read_bytes()], allow=ALLOW)
    assert by_text.secrets == by_bytes.secrets == (SECRET.encode(),)
    async with aioflags.Client(config(lens=by_text)) as client:
        for signed in (minted, mint(secret.read_text(), {"new-checkout": True})):
            with scope(client, signed) as lensed:
                assert lensed.active
                assert await client.bool_variation("new-checkout", USER, False)


def test_mint_refuses_a_secret_every_app_refuses() -> None:
    """Row 114: ``mint()`` with a 5-byte secret returned a token no app accepts."""
    with pytest.raises(aioflags.ConfigurationError, match="at least 32 bytes"):
        mint("short", {"new-checkout": True})
    with pytest.raises(aioflags.ConfigurationError, match="at least 32 bytes"):
        mint(b"x" * 31 + b"\n", {"new-checkout": True})  # (its newline not counted)


def test_mint_refuses_a_ttl_the_app_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Row 112: ``lens mint --ttl 2h`` succeeded though apps refuse over 1 h (max_ttl)."""
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    base = ("lens", "mint", "--secret-file", str(secret), "--flag", "a=1")
    assert _main(*base, "--ttl", "2h") == 2
    err = capsys.readouterr().err
    assert "--ttl 2h is longer than the app's max_ttl (1h)" in err, err
    assert "--max-ttl" in err
    assert _main(*base, "--ttl", "2h", "--max-ttl", "3h") == 0
    minted = capsys.readouterr().out.strip()
    claims = pyjwt.decode(
        minted, SECRET, algorithms=["HS256"], audience="aioflags-lens"
    )
    assert claims["exp"] - claims["iat"] == 7200
    assert _main(*base, "--ttl", "1h") == 0  # the default max_ttl itself: fine


# ---------------------------------------------------------------- logging
@pytest.mark.asyncio
async def test_each_token_and_flag_refused_gets_its_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Row 109: a second refused flag within the minute was silent (DEBUG)."""
    caplog.set_level(logging.DEBUG, "aioflags.lens")
    async with aioflags.Client(config()) as client:
        for jti in ("first", "second", "first"):  # the first token again: said
            with scope(client, token({"kill-switch": False}, jti=jti)):
                await client.bool_variation("kill-switch", USER, True)
    said = warnings_of(caplog)
    assert len(said) == 2, said
    assert "token first does not override flag 'kill-switch'" in said[0]
    assert "token second does not override flag 'kill-switch'" in said[1]


@pytest.mark.asyncio
async def test_a_lens_without_a_middleware_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Row 115: ``Config(lens=...)`` without the middleware: tokens ignored, nothing logged."""
    caplog.set_level(logging.DEBUG, "aioflags.lens")
    async with aioflags.Client(config()) as client:
        for _ in range(3):
            await client.bool_variation("new-checkout", USER, False)
        client.snapshot().bool_variation("banner", USER, False)
    said = warnings_of(caplog)
    assert len(said) == 1, said
    assert "no LensMiddleware or aiohttp_middleware" in said[0]
    caplog.clear()
    # A middleware made before the first evaluation (as an app's is): no line.
    async with (
        aioflags.Client(config()) as client,
        served(LensMiddleware(make_app(client), client=client)) as url,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        assert (await http.get("/flags")).status_code == 200
    async with aioflags.Client(config()) as client:
        aiohttp_middleware(client)
        await client.bool_variation("new-checkout", USER, False)
    assert warnings_of(caplog) == []


def test_a_blocking_client_with_a_lens_reads_tokens_without_a_middleware(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Row 115 for ``aioflags.blocking.Client``: ``scope()`` is its only way, so no line."""
    import aioflags.blocking

    caplog.set_level(logging.DEBUG, "aioflags.lens")
    with aioflags.blocking.Client(config()) as client:
        assert client.bool_variation("new-checkout", USER, False) is False
        with scope(client, token({"new-checkout": True})):
            assert client.bool_variation("new-checkout", USER, False) is True
    assert warnings_of(caplog) == []


@pytest.mark.asyncio
async def test_a_middleware_without_a_lens_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Row 116: the middleware on a client without ``Config(lens=...)``: silence."""
    caplog.set_level(logging.DEBUG, "aioflags.lens")
    plain = aioflags.Config(data_system=FlagData().data_system())
    async with aioflags.Client(plain) as client:
        LensMiddleware(FastAPI(), client=client)
        aiohttp_middleware(client)
    said = warnings_of(caplog)
    assert len(said) == 2, said
    assert said[0].startswith("aioflags lens: LensMiddleware on a client without")
    assert said[1].startswith("aioflags lens: aiohttp_middleware on a client without")
    assert all("tokens are ignored" in line for line in said)


@pytest.mark.asyncio
async def test_a_lens_token_sent_as_bearer_is_told_where_it_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Row 118: a lens token as ``Authorization: Bearer`` was ignored silently."""
    caplog.set_level(logging.DEBUG, "aioflags.lens")
    lensed = token({"new-checkout": True})
    apps_own = pyjwt.encode(
        {"sub": "u1", "aud": "the-app"}, "x" * 32, algorithm="HS256"
    )
    async with (
        aioflags.Client(config()) as client,
        served(LensMiddleware(make_app(client), client=client)) as url,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        for bearer in ("Bearer not-a-jwt", f"Bearer {apps_own}"):
            reply = await http.get("/flags", headers={"Authorization": bearer})
            assert reply.json()["checkout"] is False
        assert warnings_of(caplog) == []  # the app's own: not ours to say
        for _ in range(2):
            reply = await http.get(
                "/flags", headers={"Authorization": f"Bearer {lensed}"}
            )
            assert reply.json()["checkout"] is False  # not read: the app's header
    said = warnings_of(caplog)
    assert len(said) == 1, said  # once
    assert "Authorization: Bearer" in said[0] and "X-Aioflags-Lens" in said[0]
    assert lensed not in said[0]
    caplog.clear()
    async with aioflags.Client(config()) as client:
        app = web.Application(middlewares=[aiohttp_middleware(client)])

        async def flags(request: web.Request) -> web.Response:
            on = await client.bool_variation("new-checkout", USER, False)
            return web.json_response({"checkout": on})

        app.router.add_get("/flags", flags)
        async with TestClient(TestServer(app)) as aiohttp_http:
            for _ in range(2):
                answer = await aiohttp_http.get(
                    "/flags", headers={"Authorization": f"bearer {lensed}"}
                )
                assert (await answer.json())["checkout"] is False
    said = warnings_of(caplog)
    assert len(said) == 1 and "Authorization: Bearer" in said[0], said


# ------------------------------------------------------------------ scope
@pytest.mark.asyncio
async def test_scope_is_entered_with_async_with_too() -> None:
    """Row 119: ``async with lens.scope(...)`` raised Python's protocol TypeError."""
    async with aioflags.Client(config()) as client:
        async with scope(client, token({"new-checkout": True}, trace=True)) as lensed:
            assert lensed.active
            assert await client.bool_variation("new-checkout", USER, False)
            assert lensed.trace() == "new-checkout=true (OVERRIDE)"
        assert not await client.bool_variation("new-checkout", USER, False)
        with scope(client, token({"new-checkout": True})) as lensed:
            assert await client.bool_variation("new-checkout", USER, False)
        made = scope(client, token({"new-checkout": True}))
        with made, pytest.raises(RuntimeError, match="entered already"):
            made.__enter__()


# ------------------------------------------------------------------ traces
@pytest.mark.asyncio
async def test_a_trace_names_the_rule_and_the_prerequisite() -> None:
    """Row 121: ``RULE_MATCH 1`` without the rule's id; ``PREREQUISITE_FAILED`` unnamed."""
    data = FlagData()
    data.update(
        data.flag("new-checkout").boolean().fallthrough(False),
        data.flag("search-v2")
        .variations("a", "b")
        .fallthrough("a")
        .rule(clause("key", "in", "nobody"), serve="a", id="staff")
        .rule(clause("key", "in", "user-42"), serve="b", id="beta-testers"),
        data.flag("banner")
        .variations("blue", "green")
        .fallthrough("green")
        .off_variation("blue")
        .prerequisite("new-checkout", True),
    )
    lens = LensConfig(secrets=[SECRET], allow=ALLOW)
    configured = aioflags.Config(data_system=data.data_system(), lens=lens)
    async with aioflags.Client(configured) as client:
        with scope(client, token({}, trace=True)) as lensed:
            assert await client.string_variation("search-v2", USER, "?") == "b"
            assert await client.string_variation("banner", USER, "?") == "blue"
            assert lensed.trace() == (
                'search-v2="b" (RULE_MATCH 1 "beta-testers");'
                ' banner="blue" (PREREQUISITE_FAILED "new-checkout")'
            )


# -------------------------------------------------------------- the cost
@pytest.mark.asyncio
async def test_a_request_without_a_token_runs_no_lens_stage_while_another_has_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """G9: while any request held a token, every evaluation ran the lens's stage.

    (+9.4 % instructions per evaluation, the contract's budget being 3 %;
    tests/test_instruction_budget.py counts it.) Now a request without a
    view reads the lens's variable and goes on in the flag data's own step:
    the stage runs for the request with the token alone, and every answer
    and count is what a client without a lens gives.
    """
    from aioflags._lens._lens import LensStage

    calls: list[str] = []
    evaluate = LensStage.evaluate

    def counted(self: LensStage, *args: Any) -> Any:
        calls.append(args[2])  # (the flag key)
        return evaluate(self, *args)

    monkeypatch.setattr(LensStage, "evaluate", counted)
    contexts = [Context.create(k) for k in ("user-42", "rule-user", "other")]
    keys = ["new-checkout", "search-v2", "banner", "kill-switch", "limit", "nope"]

    async def answers(client: aioflags.Client) -> list[Any]:
        seen: list[Any] = []
        for user in contexts:
            for key in keys:
                seen.append(await client.variation_detail(key, user, None))
                seen.append(await client.string_variation(key, user, "?"))
        state = await client.all_flags_state(USER, with_reasons=True)
        return [*seen, state.to_dict(), client.usage()]

    events = {"send_events": True, "events_uri": "http://127.0.0.1:9"}
    async with aioflags.Client(config(lens=None, **events)) as client:
        expected = await answers(client)
    async with aioflags.Client(config(**events)) as client:
        other = contextvars.Context()  # another request, its view open throughout
        held = scope(client, token({"new-checkout": True}))
        other.run(held.__enter__)
        got = await answers(client)
        assert calls == []  # no view here: no stage
        assert other.run(
            lambda: client.snapshot().bool_variation("new-checkout", USER, False)
        )
        assert calls == ["new-checkout"]  # the request with the token: the stage
        other.run(held.__exit__, None, None, None)
    assert got == expected


# ------------------------------------------------------------ the console
@pytest.mark.asyncio
async def test_the_console_makes_a_trace_only_link() -> None:
    """Row 124: the console's Share a lens refused a trace-only link, which the CLI makes."""
    async with (
        FlagServer({"new-checkout": CONSOLE_CHECKOUT}, lens_secret=SECRET) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        page = await http.get("/ui/")
        console = page.text.split('name="aioflags-token" content="')[1].split('"')[0]
        assert server.lens_key is not None
        headers = {"x-aioflags-token": console, "x-aioflags-lens-key": server.lens_key}
        body: dict[str, Any] = {"url": "https://shop.example/", "flags": [], "ttl": 900}
        refused = await http.post("/ui/api/lens", json=body, headers=headers)
        assert refused.status_code == 400 and "or a trace" in refused.text
        made = await http.post(
            "/ui/api/lens", json={**body, "trace": True}, headers=headers
        )
        assert made.status_code == 200, made.text
        claims = pyjwt.decode(
            made.json()["token"], SECRET, algorithms=["HS256"], audience="aioflags-lens"
        )
        assert claims["flags"] == {} and claims["trace"] is True
    async with aioflags.Client(config()) as client:
        with scope(client, made.json()["token"]) as lensed:
            await client.bool_variation("new-checkout", USER, False)
            assert lensed.trace() == "new-checkout=false (FALLTHROUGH)"


@pytest.mark.asyncio
async def test_a_view_held_elsewhere_adds_one_variable_read_per_evaluation() -> None:
    """G9: a request without a token pays one ``ContextVar.get``, and nothing more.

    While another request holds a view, each evaluation here makes the
    calls a client without a lens makes (Python's and C's, in order), plus
    one read of the lens's variable: no stage, no lookup of the view, no
    cache made anew. (+9.4 % instructions when the stage ran; the read is
    counted by tests/test_instruction_budget.py's ``lens-open``.)
    """
    import sys

    contexts = [Context.create(k) for k in ("user-42", "rule-user", "other")]
    keys = ["new-checkout", "search-v2", "banner", "kill-switch", "limit", "nope"]

    async def calls_of(client: aioflags.Client) -> list[str]:
        for user in contexts:  # (warm: every head made, every context seen)
            for key in keys:
                await client.variation(key, user, None)
        calls: list[str] = []

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                calls.append(frame.f_code.co_name)
            elif event == "c_call":
                calls.append(getattr(arg, "__qualname__", repr(arg)))

        sys.setprofile(profile)
        try:
            for user in contexts:
                for key in keys:
                    await client.variation(key, user, None)
        finally:
            sys.setprofile(None)
        return calls[:-1]  # (setprofile's own c_call)

    events = {"send_events": True, "events_uri": "http://127.0.0.1:9"}
    async with aioflags.Client(config(lens=None, **events)) as client:
        plain = await calls_of(client)
    async with aioflags.Client(config(**events)) as client:
        other = contextvars.Context()  # another request, its view open throughout
        held = scope(client, token({"new-checkout": True}))
        other.run(held.__enter__)
        try:
            lensed = await calls_of(client)
        finally:
            other.run(held.__exit__, None, None, None)
    reads = [call for call in lensed if call == "ContextVar.get"]
    assert len(reads) == len(contexts) * len(keys)  # one per evaluation
    assert [call for call in lensed if call != "ContextVar.get"] == plain
