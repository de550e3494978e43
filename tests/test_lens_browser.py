"""The flag lens in a real browser: a link made in the console, followed into a FastAPI app.

Chromium (tests/chromium.py) opens the console of a flag service that has
the lens secret, makes a link to an app served by uvicorn on 127.0.0.1
with ``LensMiddleware``, and follows it: the confirm page shows what the
token asks for, the token leaves the address bar and the tab's history at
once, a click turns the lens on, the app's page shows the overridden
value, and uvicorn's access log never holds the token. A second browser
following the same link gets nothing; a form posted from another site is
refused. The console of ``aioflags serve`` makes links only in a page
opened at the address it printed (its lens key after ``#``). What remains
is pinned too: Chromium's own history of a profile
(chrome://history) keeps the address as first opened, token included.
Nothing sleeps: every wait is one of Playwright's expectations.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import jwt as pyjwt
import pytest
from anyio.streams.text import TextReceiveStream
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import BrowserContext, Page, async_playwright, expect

import aioflags
from aioflags.lens import LensConfig, LensMiddleware, mint
from aioflags.testing import FlagServer
from tests.chromium import ARGS, GUARD_MS, chromium, executable
from tests.test_lens import served, served_by_uvicorn

SECRET = "the-console-lens-secret-0123456789abcdef"
CHECKOUT: dict[str, Any] = {
    "on": True,
    "variations": [False, True],
    "fallthrough": {"variation": 0},
    "offVariation": 0,
}


def shop(client: aioflags.Client) -> FastAPI:
    app = FastAPI()

    @app.get("/cart", response_class=HTMLResponse)
    async def cart(user: str = "user-42") -> str:
        context = aioflags.Context.create(user)
        on = await client.bool_variation("new-checkout", context, False)
        return f"<!doctype html><title>cart</title><p id=checkout>New checkout: {'on' if on else 'off'}</p>"

    app.add_middleware(LensMiddleware, client=client)
    return app


async def history_urls(context: BrowserContext, tab: Page) -> list[str]:
    """Every address of the tab's history (back and forward), as Chromium keeps it."""
    cdp = await context.new_cdp_session(tab)
    try:
        history = await cdp.send("Page.getNavigationHistory")
    finally:
        await cdp.detach()
    return [entry["url"] for entry in history["entries"]]


async def make_link(page: Page, console_url: str, page_url: str) -> str:
    """A link made in ``page`` with the console's Share a lens form."""
    await page.goto(console_url)
    await expect(page.get_by_role("status").first).to_have_text("Live")
    form = page.get_by_role("form", name="Share a lens")
    await form.get_by_label("Your app's page").fill(page_url)
    await form.get_by_label("Flag 1", exact=True).fill("new-checkout")
    await form.get_by_label("Flag 1 serves").select_option(label="true")
    await form.get_by_label("Expires after").select_option(label="15 minutes")
    await form.get_by_role("button", name="Make the link").click()
    link_box = page.get_by_label("The link")
    await expect(link_box).not_to_have_value("")
    return await link_box.input_value()


@pytest.mark.asyncio
async def test_a_console_link_followed_in_chromium_shows_the_override() -> None:
    lens = LensConfig(secrets=[SECRET], allow=["new-checkout"])
    access_log: list[str] = []
    async with (
        FlagServer({"new-checkout": CHECKOUT}, lens_secret=SECRET) as server,
        aioflags.Client(server.config(send_events=False, lens=lens)) as client,
        served_by_uvicorn(shop(client), access_log) as app_url,
        chromium() as browser,
    ):
        console = await browser.new_context()
        cart = f"{app_url}/cart?user=user-42"
        assert server.lens_key is not None
        key_url = f"{server.url}/ui/#lens-key={server.lens_key}"
        link = await make_link(await console.new_page(), key_url, cart)
        marked = f"{cart}&aioflags_lens"
        assert link.startswith(f"{marked}#aioflags_lens=")
        token = link.partition("#aioflags_lens=")[2]
        await console.close()

        # Someone follows the link in their own browser: the confirm page
        # says what it asks for, and the token is gone from the address.
        visitor = await browser.new_context()
        tab = await visitor.new_page()
        errors: list[str] = []
        tab.on(
            "console",
            lambda m: errors.append(m.text) if "Security Policy" in m.text else None,
        )
        tab.on("pageerror", lambda error: errors.append(str(error)))
        await tab.goto(link)
        await expect(tab.get_by_role("heading")).to_have_text("Turn on the flag lens?")
        await expect(tab.get_by_role("list", name="Flags")).to_have_text(
            "new-checkout → true"
        )
        await expect(tab).to_have_url(marked)  # (history.replaceState)
        assert all(token not in url for url in await history_urls(visitor, tab))
        await tab.get_by_role("button", name="Turn on the lens").click()
        await expect(tab.locator("#checkout")).to_have_text("New checkout: on")
        assert tab.url == cart  # no marker, no token
        history = await history_urls(visitor, tab)
        assert history[-2:] == [marked, cart]
        assert all(token not in url for url in history)
        again = await visitor.new_page()
        await again.goto(cart)  # the cookie keeps it
        await expect(again.locator("#checkout")).to_have_text("New checkout: on")
        # Back to the confirm page: no token there any more.
        await tab.go_back()
        await expect(tab).to_have_url(marked)
        await expect(tab.get_by_role("alert")).to_contain_text("carries no lens token")
        assert errors == []  # (the page's CSP let its own script and style run)
        await visitor.close()

        # Someone else follows the same link (it leaked): nothing is set.
        late = await browser.new_context()
        tab = await late.new_page()
        await tab.goto(link)
        await tab.get_by_role("button", name="Turn on the lens").click()
        await expect(tab.get_by_role("heading")).to_have_text(
            "This link was used already"
        )
        assert await late.cookies() == []
        await tab.goto(cart)
        await expect(tab.locator("#checkout")).to_have_text("New checkout: off")
        await late.close()

    # uvicorn logged every request of the link, and never its token.
    assert any(f'"GET {marked[len(app_url) :]} HTTP/1.1" 200' in x for x in access_log)
    assert any(f'"POST {marked[len(app_url) :]} HTTP/1.1" 303' in x for x in access_log)
    assert [line for line in access_log if token in line] == []


@pytest.mark.asyncio
async def test_a_link_needs_javascript_and_another_site_cannot_post_it() -> None:
    lens = LensConfig(secrets=[SECRET], allow=["new-checkout"])
    data = aioflags.testing.FlagData()
    data.update(data.flag("new-checkout").boolean().fallthrough(False))
    config = aioflags.Config(data_system=data.data_system(), lens=lens)
    token = mint(SECRET, {"new-checkout": True}, ttl=600)
    async with (
        aioflags.Client(config) as client,
        served(shop(client)) as app_url,
        chromium() as browser,
    ):
        cart = f"{app_url}/cart"
        plain = await browser.new_context(java_script_enabled=False)
        tab = await plain.new_page()
        await tab.goto(f"{cart}?aioflags_lens#aioflags_lens={token}")
        await expect(tab.get_by_text("This link needs JavaScript.")).to_be_visible()
        await expect(tab.get_by_role("button")).to_have_count(0)
        await plain.close()

        # Another site (localhost is not 127.0.0.1's site) posts the form
        # itself, as a page that wants its visitors to carry a lens would.
        evil = FastAPI()

        @evil.get("/", response_class=HTMLResponse)
        async def lure() -> str:
            return (
                f'<!doctype html><form method=post action="{cart}?aioflags_lens">'
                f'<input type=hidden name=token value="{token}">'
                "<button>Win a prize</button></form>"
            )

        async with served(evil) as evil_url:
            victim = await browser.new_context()
            tab = await victim.new_page()
            await tab.goto(evil_url.replace("127.0.0.1", "localhost"))
            await tab.get_by_role("button", name="Win a prize").click()
            await expect(tab.get_by_role("alert")).to_contain_text("from elsewhere")
            assert await victim.cookies() == []
            await tab.goto(cart)
            await expect(tab.locator("#checkout")).to_have_text("New checkout: off")
            await victim.close()


@pytest.mark.asyncio
async def test_what_remains_a_profile_s_history_keeps_the_link_as_first_opened(
    tmp_path: Path,
) -> None:
    # docs/lens.md says so: replaceState clears the tab's history (above),
    # not the browser's record of every address opened.
    lens = LensConfig(secrets=[SECRET], allow=["new-checkout"])
    data = aioflags.testing.FlagData()
    data.update(data.flag("new-checkout").boolean().fallthrough(False))
    config = aioflags.Config(data_system=data.data_system(), lens=lens)
    token = mint(SECRET, {"new-checkout": True}, ttl=600)
    async with (
        aioflags.Client(config) as client,
        served(shop(client)) as app_url,
        async_playwright() as playwright,
    ):
        profile = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=executable(),
            args=list(ARGS),
            timeout=GUARD_MS,
        )
        try:
            tab = await profile.new_page()
            await tab.goto(f"{app_url}/cart?aioflags_lens#aioflags_lens={token}")
            await tab.get_by_role("button", name="Turn on the lens").click()
            await expect(tab.locator("#checkout")).to_have_text("New checkout: on")
        finally:
            await profile.close()  # (the profile's history is written by now)
    [history] = (tmp_path / "profile").glob("*/History")
    with contextlib.closing(sqlite3.connect(history)) as db:
        urls = [row[0] for row in db.execute("SELECT url FROM urls ORDER BY id")]
    assert urls == [
        f"{app_url}/cart?aioflags_lens#aioflags_lens={token}",
        f"{app_url}/cart?aioflags_lens",
        f"{app_url}/cart",
    ]


@pytest.mark.asyncio
async def test_only_the_console_opened_at_the_printed_address_makes_links(
    tmp_path: Path,
) -> None:
    flags, secret = tmp_path / "flags.json", tmp_path / "lens-secret"
    flags.write_text(json.dumps({"flags": {"new-checkout": CHECKOUT}}))
    secret.write_text(SECRET + "\n")
    command = [sys.executable, "-m", "aioflags", "serve", str(flags), "--port", "0"]
    process = await anyio.open_process([*command, "--lens-secret-file", str(secret)])
    try:
        assert process.stdout is not None and process.stderr is not None
        printed = ""
        async for text in TextReceiveStream(process.stdout):
            printed += text
            if "Console: " in printed and printed.endswith("\n"):
                break
        printed_url = printed.split("Console: ", 1)[1].split()[0]
        console_url, _, key = printed_url.partition("#lens-key=")
        assert key and console_url.endswith("/ui/")
        async with chromium() as browser:
            # The operator opens what `serve` printed: the key leaves the
            # address bar, the tab keeps it (a reload still has it).
            operator = await browser.new_context()
            page = await operator.new_page()
            await page.goto(printed_url)
            await expect(page.get_by_role("status").first).to_have_text("Live")
            await expect(page).to_have_url(console_url)
            await page.reload()
            shop = "https://shop.example/cart"
            link = await make_link(page, console_url, shop)
            assert link.startswith(f"{shop}?aioflags_lens#aioflags_lens=")
            # Another tab has no key: the tab kept it (sessionStorage).
            tab = await operator.new_page()
            await tab.goto(console_url)
            await expect(
                tab.get_by_role("button", name="Make the link")
            ).to_be_disabled()
            await operator.close()

            # Anyone else who reads the console (another local user, another
            # browser) has its token but not the key: no link.
            other = await browser.new_context()
            page = await other.new_page()
            await page.goto(console_url)
            await expect(page.get_by_role("status").first).to_have_text("Live")
            form = page.get_by_role("form", name="Share a lens")
            await expect(
                form.get_by_role("button", name="Make the link")
            ).to_be_disabled()
            await expect(page.get_by_text("printed at start")).to_be_visible()
            status = await page.evaluate(
                """fetch("api/lens", {
                    method: "POST",
                    headers: {
                        "content-type": "application/json",
                        "x-aioflags-token": document.querySelector(
                            'meta[name="aioflags-token"]').content,
                    },
                    body: JSON.stringify({
                        url: "https://shop.example/",
                        flags: [{key: "new-checkout", variation: 1}],
                    }),
                }).then((answer) => answer.status)"""
            )
            assert status == 403
            await other.close()
    finally:
        process.terminate()
        with anyio.fail_after(30):  # a guard, not a timing
            await process.wait()
        told = b""
        if process.stderr is not None:
            async for chunk in process.stderr:
                told += chunk
        await process.aclose()
    token = link.partition("#aioflags_lens=")[2]
    assert told.decode().count("INFO: aioflags console: made lens link ") == 1
    assert token not in told.decode()


@pytest.mark.asyncio
async def test_share_a_lens_makes_a_trace_only_link_and_says_how_to_have_it() -> None:
    """Row 124: a trace-only link refused ("pick at least one flag"); no word without a secret."""
    async with (
        FlagServer({"new-checkout": CHECKOUT}) as plain,
        FlagServer({"new-checkout": CHECKOUT}, lens_secret=SECRET) as server,
        chromium() as browser,
    ):
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{plain.url}/ui/")
        await expect(page.get_by_role("status").first).to_have_text("Live")
        section = page.get_by_role("region", name="Share a lens")
        await expect(section).to_be_visible()
        await expect(
            section.get_by_text("This console has no lens secret")
        ).to_be_visible()
        await expect(section).to_contain_text("aioflags serve --lens-secret-file F")
        await expect(page.get_by_role("form", name="Share a lens")).to_be_hidden()
        assert server.lens_key is not None
        await page.goto(f"{server.url}/ui/#lens-key={server.lens_key}")
        await expect(page.get_by_role("status").first).to_have_text("Live")
        await expect(
            section.get_by_text("This console has no lens secret")
        ).to_be_hidden()
        form = page.get_by_role("form", name="Share a lens")
        await form.get_by_label("Your app's page").fill("https://shop.example/cart")
        await form.get_by_role("button", name="Make the link").click()  # nothing asked
        await expect(page.get_by_role("alert")).to_contain_text("or ask for a trace")
        await form.get_by_label("Trace: responses list").check()
        await form.get_by_role("button", name="Make the link").click()
        link_box = page.get_by_label("The link")
        await expect(link_box).not_to_have_value("")
        token = (await link_box.input_value()).partition("#aioflags_lens=")[2]
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"], audience="aioflags-lens")
    assert claims["flags"] == {} and claims["trace"] is True


@pytest.mark.asyncio
async def test_row123_row161_share_a_lens_says_what_the_link_will_not_do() -> None:
    """Row 123: a flag outside the app's allow is named next to the link; row 161: once per process."""
    flags = {"new-checkout": CHECKOUT, "checkout-v2": CHECKOUT}
    async with (
        FlagServer(flags, lens_secret=SECRET, lens_allow=["checkout-*"]) as server,
        chromium() as browser,
    ):
        page = await (await browser.new_context()).new_page()
        assert server.lens_key is not None
        link = await make_link(
            page,
            f"{server.url}/ui/#lens-key={server.lens_key}",
            "https://shop.example/cart",
        )
        assert "#aioflags_lens=" in link
        made = page.locator("#lens-made")
        warning = made.get_by_role("status", name="Link warning")
        await expect(warning).to_be_visible()
        await expect(warning).to_contain_text(
            "The app will not override new-checkout: outside its LensConfig.allow"
            " (checkout-*)"
        )
        await expect(made).to_contain_text(
            "It turns the lens on once per app process: an app served by several"
            " processes (uvicorn --workers 4, replicas) accepts it once in each"
        )
        # A link for a flag inside the allow: nothing to warn of.
        form = page.get_by_role("form", name="Share a lens")
        await form.get_by_label("Flag 1", exact=True).fill("checkout-v2")
        await form.get_by_label("Flag 1 serves").select_option(label="true")
        await form.get_by_role("button", name="Make the link").click()
        await expect(page.get_by_label("The link")).not_to_have_value(link)
        await expect(warning).to_be_hidden()
