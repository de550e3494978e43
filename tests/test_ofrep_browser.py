"""OpenFeature's OFREP web provider in Chromium, against ``aioflags serve``'s service.

The page is served from another origin than the flag service (a CORS
preflight and an exposed ETag are needed); it reads a flag, the flag is
flipped through the service, and the page shows the new value, pushed by
the service's change stream (the web provider does not poll by default).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from aioflags.testing import FlagServer
from tests.chromium import chromium
from tests.ofrep_web import bundle
from tests.test_ofrep import uvicorn_app

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


async def test_the_web_provider_sees_a_flip_made_through_the_service() -> None:
    async with (
        FlagServer({"banner": BANNER}) as server,
        page_server() as origin,
        chromium() as browser,
    ):
        page = await browser.new_page()
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        await page.goto(f"{origin}/?ofrep={server.url}")
        await expect(page.locator("#status")).to_have_text("ready")
        await expect(page.locator("#banner")).to_have_text("red")
        server.set_flag("banner", {**BANNER, "on": False})
        await expect(page.locator("#banner")).to_have_text("blue")
        assert not [u for u in failed if not u.endswith("/event-stream")]
        bulk = [r for r in server.requests if r.path == "/ofrep/v1/evaluate/flags"]
        assert len(bulk) >= 2  # the first, then the re-fetch the stream asked for
