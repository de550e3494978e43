"""The flag lens in a real browser: a link made in the console, followed into a FastAPI app.

Chromium (tests/chromium.py) opens the console of a flag service that has
the lens secret, makes a link to an app served on 127.0.0.1 with
``LensMiddleware``, and follows it: the app's page shows the overridden
value, the address bar keeps no token, and another browser sees the flag
as it is. Nothing sleeps: every wait is one of Playwright's expectations.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import expect

import aioflags
from aioflags.lens import LensConfig, LensMiddleware
from aioflags.testing import FlagServer
from tests.chromium import chromium
from tests.test_lens import served

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


@pytest.mark.asyncio
async def test_a_console_link_followed_in_chromium_shows_the_override() -> None:
    lens = LensConfig(secrets=[SECRET], allow=["new-checkout"])
    async with (
        FlagServer({"new-checkout": CHECKOUT}, lens_secret=SECRET) as server,
        aioflags.Client(server.config(send_events=False, lens=lens)) as client,
        served(shop(client)) as app_url,
        chromium() as browser,
    ):
        console = await browser.new_context()
        page = await console.new_page()
        await page.goto(f"{server.url}/ui/")
        await expect(page.get_by_role("status").first).to_have_text("Live")
        form = page.get_by_role("form", name="Share a lens")
        await form.get_by_label("Your app's page").fill(f"{app_url}/cart?user=user-42")
        await form.get_by_label("Flag 1", exact=True).fill("new-checkout")
        await form.get_by_label("Flag 1 serves").select_option(label="true")
        await form.get_by_label("Expires after").select_option(label="15 minutes")
        await form.get_by_role("button", name="Make the link").click()
        link_box = page.get_by_label("The link")
        await expect(link_box).not_to_have_value("")
        link = await link_box.input_value()
        assert link.startswith(f"{app_url}/cart?user=user-42&aioflags_lens=")
        await console.close()

        # Someone follows the link in their own browser.
        visitor = await browser.new_context()
        tab = await visitor.new_page()
        await tab.goto(link)
        await expect(tab.locator("#checkout")).to_have_text("New checkout: on")
        assert tab.url == f"{app_url}/cart?user=user-42"  # no token left in it
        await tab.goto(f"{app_url}/cart?user=user-42")  # the cookie keeps it
        await expect(tab.locator("#checkout")).to_have_text("New checkout: on")
        await visitor.close()

        # Anyone else sees the flag as it is.
        other = await browser.new_context()
        tab = await other.new_page()
        await tab.goto(f"{app_url}/cart?user=user-42")
        await expect(tab.locator("#checkout")).to_have_text("New checkout: off")
        await other.close()
