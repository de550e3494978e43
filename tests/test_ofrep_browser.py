"""OpenFeature's OFREP web provider in Chromium, against ``aioflags serve``'s service.

The page is served from another origin than the flag service (a CORS
preflight and an exposed ETag are needed); it reads a flag, the flag is
flipped through the service, and the page shows the new value, pushed by
the service's change stream (the web provider does not poll by default).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, expect
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from aioflags import Client
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagServer
from tests.chromium import chromium
from tests.ofrep_web import bundle
from tests.test_ofrep import CLIENT_SIDE, uvicorn_app

pytestmark = pytest.mark.asyncio

BANNER = {
    "on": True,
    "variations": ["red", "blue"],
    "fallthrough": {"variation": 0},
    "offVariation": 1,
}
PAGE = (
    '<!doctype html><meta charset="utf-8"><title>OFREP</title>'
    '<p id="status">loading</p><p id="banner"></p>'
    '<script type="module" src="/page.js"></script>'
)


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[str]:
    """The page and its script, on an origin of their own."""
    script = bundle()

    async def page(_: object) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def js(_: object) -> Response:
        return Response(script, media_type="text/javascript")

    app = Starlette(routes=[Route("/", page), Route("/page.js", js)])
    async with uvicorn_app(app) as url:
        yield url


async def _flip_seen(
    browser: Browser,
    page_origin: str,
    ofrep: str,
    server: FlagServer,
    flag: dict[str, Any],
) -> None:
    """A page reads ``banner`` at ``ofrep``, the flag is switched off, the page sees it."""
    page = await browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    # (the flip waits for the page's change stream to be open: a change made
    # before it opens is one the page was never going to be told of)
    async with page.expect_response(lambda r: r.url.endswith("/event-stream")):
        await page.goto(f"{page_origin}/?ofrep={ofrep}")
        await expect(page.locator("#status")).to_have_text("ready")
        await expect(page.locator("#banner")).to_have_text("red")
    server.set_flag("banner", {**flag, "on": False})
    await expect(page.locator("#banner")).to_have_text("blue")
    assert not [u for u in failed if not u.endswith("/event-stream")]
    await page.close()  # its change stream closes with it


async def test_the_web_provider_sees_a_flip_made_through_the_service() -> None:
    async with (
        FlagServer({"banner": BANNER}) as server,
        page_server() as origin,
        chromium() as browser,
    ):
        await _flip_seen(browser, origin, server.url, server, BANNER)
        bulk = [r for r in server.requests if r.path == "/ofrep/v1/evaluate/flags"]
        assert len(bulk) >= 2  # the first, then the re-fetch the stream asked for


async def test_the_web_provider_against_an_ofrep_app_mounted_in_fastapi() -> None:
    flag = {**BANNER, **CLIENT_SIDE}
    async with (
        FlagServer({"banner": flag}) as server,
        Client(server.config(send_events=False)) as client,
        page_server() as origin,
        chromium() as browser,
    ):
        app = FastAPI()
        app.mount("/flags", OFREPApp(client))
        # The page is on another origin: the app's own CORS, ETag exposed.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[origin],
            allow_methods=["POST", "GET", "OPTIONS"],
            allow_headers=["content-type", "if-none-match", "last-event-id"],
            expose_headers=["ETag"],
        )
        async with uvicorn_app(app) as url:
            await _flip_seen(browser, origin, f"{url}/flags", server, flag)
