"""The flag console in a real browser: Chromium driven by Playwright (tests/chromium.py).

Every wait is one of Playwright's auto-waiting expectations or an awaited
event of the server or the client: nothing sleeps.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from playwright.async_api import Page, Route, expect

from aioflags import Client, Context
from aioflags.testing import FlagServer
from tests.chromium import REBOUND, chromium

pytestmark = pytest.mark.asyncio

USER = Context.create("u1")
#: Chromium's own defences against public pages reaching loopback.
LOCAL_NETWORK_ACCESS = (
    "LocalNetworkAccessChecks",
    "BlockInsecurePrivateNetworkRequests",
    "PrivateNetworkAccessSendPreflights",
)
MARKUP = "<img src=x onerror=\"document.title='pwned'\">"
BANNER: dict[str, Any] = {
    "on": True,
    "variations": ["wide", "narrow"],
    "fallthrough": {"variation": 0},
    "offVariation": 1,
}


@contextlib.asynccontextmanager
async def console_page(url: str) -> AsyncIterator[Page]:
    """A browser tab on the console at ``url`` (``.../ui/``), once it is live."""
    async with chromium() as browser:
        page = await browser.new_page()
        response = await page.goto(url)
        assert response is not None and response.status == 200
        await expect(page.get_by_role("status")).to_have_text("Live")
        yield page


async def test_a_flip_in_the_page_reaches_a_connected_client() -> None:
    async with (
        FlagServer({"banner": BANNER}) as server,
        Client(server.config(send_events=False)) as client,
        console_page(f"{server.url}/ui/") as page,
    ):
        assert await client.variation("banner", USER, None) == "wide"
        send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
        client.add_flag_change_handler(send.send_nowait)
        switch = page.get_by_role("switch", name="banner on", exact=True)
        await expect(switch).to_have_attribute("aria-checked", "true")
        async with send, receive:
            await switch.click()
            with anyio.fail_after(10):
                assert await receive.receive() == {"banner"}
            assert await client.variation("banner", USER, None) == "narrow"
            await expect(switch).to_have_attribute("aria-checked", "false")
            version = server.flags["banner"]["version"]
            row = page.get_by_role("row").filter(has=switch)
            await expect(row.get_by_role("cell").last).to_have_text(str(version))

            await switch.click()
            await page.get_by_role(
                "combobox", name="banner serves", exact=True
            ).select_option(label="narrow")
            with anyio.fail_after(10):
                while await client.variation("banner", USER, None) != "narrow":
                    await receive.receive()
        assert server.flags["banner"]["on"] is True
        assert server.flags["banner"]["fallthrough"] == {"variation": 1}


@contextlib.asynccontextmanager
async def serve_command(path: Path) -> AsyncIterator[str]:
    """``python -m aioflags serve path``: yields its console URL, stops it afterwards."""
    import sys

    process: Process = await anyio.open_process(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0"]
    )
    try:
        assert process.stdout is not None
        lines = ""
        async for text in TextReceiveStream(process.stdout):
            lines += text
            if "Console: " in lines and lines.endswith("\n"):
                break
        console = lines.split("Console: ", 1)[1].split()[0]
        yield console
    finally:
        process.terminate()
        with anyio.fail_after(30):  # a guard, not a timing
            await process.wait()
        await process.aclose()


async def test_a_file_edit_updates_the_page_without_reload(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {"banner": BANNER}}))
    async with serve_command(path) as url, console_page(url) as page:
        switch = page.get_by_role("switch", name="banner on", exact=True)
        await expect(switch).to_have_attribute("aria-checked", "true")
        await page.evaluate("window.loadedOnce = true")
        path.write_text(
            json.dumps(
                {
                    "flags": {"banner": {**BANNER, "on": False}},
                    "flagValues": {"added": 7},
                }
            )
        )
        await expect(switch).to_have_attribute("aria-checked", "false")
        await expect(
            page.get_by_role("switch", name="added on", exact=True)
        ).to_be_visible()
        assert await page.evaluate("window.loadedOnce") is True  # no reload


async def test_evaluations_appear_in_the_log() -> None:
    async with (
        FlagServer({"banner": BANNER}) as server,
        console_page(f"{server.url}/ui/") as page,
    ):
        log = page.get_by_role("log", name="Evaluations")
        await expect(log.get_by_role("listitem")).to_have_count(0)
        async with Client(server.config()) as client:
            for _ in range(3):
                await client.variation("banner", USER, None)
            await client.variation("missing", USER, "fallback")
            await client.flush()
        await expect(log.get_by_role("listitem")).to_have_count(2)
        await expect(log).to_contain_text(
            "banner → wide (variation 0) \N{MULTIPLICATION SIGN} 3"
        )
        await expect(log).to_contain_text(
            "missing → fallback \N{MULTIPLICATION SIGN} 1"
        )


async def test_markup_in_flag_data_stays_text() -> None:
    flags = {
        MARKUP: {
            "on": True,
            "variations": [MARKUP, "b"],
            "fallthrough": {"variation": 0},
        },
    }
    async with (
        FlagServer(flags) as server,
        console_page(f"{server.url}/ui/") as page,
    ):
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        switch = page.get_by_role("switch", name=f"{MARKUP} on", exact=True)
        await expect(switch).to_have_attribute("aria-checked", "true")
        table = page.get_by_role("table", name="Flags")
        await expect(table.get_by_role("cell").first).to_have_text(MARKUP)
        serves = page.get_by_role("combobox", name=f"{MARKUP} serves", exact=True)
        await expect(serves.locator("option").first).to_have_text(MARKUP)
        async with Client(server.config()) as client:
            await client.variation(MARKUP, USER, None)
            await client.flush()
        log = page.get_by_role("log", name="Evaluations")
        await expect(log).to_contain_text(f"{MARKUP} → {MARKUP}")
        assert await page.locator("img").count() == 0
        assert await page.title() == "aioflags console"
        assert dialogs == []


async def test_a_cross_origin_post_is_refused_and_changes_nothing() -> None:
    """A page of another site, open in the same browser, cannot flip a flag.

    Recent Chromium blocks a public page's requests to loopback by itself
    (Local Network Access); Firefox, Safari and older Chromium do not, so the
    check is turned off here: the request reaches the server, which must
    refuse it.
    """
    async with (
        FlagServer({"banner": BANNER}) as server,
        chromium(f"--disable-features={','.join(LOCAL_NETWORK_ACCESS)}") as browser,
    ):
        page = await browser.new_page()
        attacker = "http://evil.test/"  # fulfilled by the route: never resolved
        await page.route(
            attacker,
            lambda route: route.fulfill(
                content_type="text/html", body="<p>cute kittens</p>"
            ),
        )
        await page.goto(attacker)
        target = f"{server.url}/ui/api/flag"
        answers: list[tuple[int, Any]] = []

        async def forward(route: Route) -> None:
            # The page's own request, headers and all (its Origin), sent on to
            # the server: a no-cors answer is opaque to the browser, and the
            # test must see which rule refused it.
            response = await route.fetch()
            answers.append((response.status, await response.json()))
            await route.fulfill(response=response)

        await page.route(target, forward)
        async with page.expect_response(target):
            # A "simple" request (no preflight): the browser sends it, with
            # the attacker's Origin; only the server can refuse it.
            await page.evaluate(
                """target => fetch(target, {
                    method: "POST", mode: "no-cors",
                    headers: {"content-type": "text/plain"},
                    body: JSON.stringify({key: "banner", on: false}),
                }).catch(() => null)""",
                target,
            )
        # The Origin rule refused it, not only the token's (it has none).
        assert answers == [(403, {"message": "cross-origin request refused"})]
        request = server.requests_to("/ui/api/flag")[-1]
        assert request.headers["origin"] == "http://evil.test"
        assert server.flags["banner"]["on"] is True
        assert server.flags["banner"]["version"] == 1


@pytest.mark.parametrize("failure", ["refused", "unreachable"])
async def test_a_change_that_fails_leaves_the_page_showing_what_is_served(
    failure: str,
) -> None:
    """The select does not keep showing a choice the service does not serve."""
    async with (
        FlagServer({"banner": BANNER}) as server,
        console_page(f"{server.url}/ui/") as page,
    ):

        async def fail(route: Route) -> None:
            if failure == "refused":
                body = json.dumps({"message": "no, thanks"})
                await route.fulfill(status=403, body=body)
            else:
                await route.abort()

        await page.route(f"{server.url}/ui/api/flag", fail)
        serves = page.get_by_role("combobox", name="banner serves", exact=True)
        await expect(serves).to_have_value("0")
        await serves.select_option(label="narrow")
        # The page says why (just before it shows the served value again).
        await expect(page.get_by_role("alert")).to_contain_text("banner: ")
        await expect(serves).to_have_value("0")
        assert server.flags["banner"]["fallthrough"] == {"variation": 0}


async def test_a_foreign_host_is_refused() -> None:
    """DNS rebinding: a name that resolves to 127.0.0.1 gets no console."""
    async with FlagServer({"banner": BANNER}) as server, chromium() as browser:
        page = await browser.new_page()
        port = server.url.rsplit(":", 1)[1]
        response = await page.goto(f"http://{REBOUND}:{port}/ui/")
        assert response is not None and response.status == 403
        assert server.requests_to("/ui/")[-1].headers["host"] == f"{REBOUND}:{port}"
        await expect(page.get_by_role("table", name="Flags")).to_have_count(0)
        assert "localhost" in await page.content()
