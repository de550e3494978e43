"""The flag console in a real browser: Chromium driven by Playwright (tests/chromium.py).

Every wait is one of Playwright's auto-waiting expectations or an awaited
event of the server or the client: nothing sleeps. One Chromium serves the
whole module (a fresh browser context, with its own storage, per page).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import pytest_asyncio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    Route,
    expect,
)

from aioflags import Client, Context
from aioflags.testing import FlagServer
from tests.chromium import REBOUND, chromium

pytestmark = pytest.mark.asyncio(loop_scope="module")

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


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module's tests."""
    async with chromium() as launched:
        yield launched


@contextlib.asynccontextmanager
async def console_page(
    browser: Browser, url: str, *, failing: bool = False, **options: Any
) -> AsyncIterator[Page]:
    """A tab on the console at ``url`` (``.../ui/``), once it is live.

    On the way out it checks that the page broke no rule of its
    Content-Security-Policy, threw nothing, sent no POST without its token
    and, unless the test makes requests fail on purpose (``failing``), that
    no request failed (a 4xx or 5xx, such as a ``/favicon.ico`` that is not
    there, or a bad Evaluate) and nothing was logged as an error.
    """
    context = await browser.new_context(**options)
    complaints: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # A refused request is logged as an error too: the page's own flows
        # (a change confirmed, a bad Evaluate) must leave none.
        if "Content Security Policy" in message.text or (
            message.type == "error" and not failing
        ):
            complaints.append(message.text)

    def response(answer: Response) -> None:
        if answer.status >= 400 and not failing:
            complaints.append(f"{answer.status} {answer.url}")

    def request(sent: Request) -> None:
        if sent.method == "POST" and "x-aioflags-token" not in sent.headers:
            complaints.append(f"POST {sent.url} without the token")

    try:
        page = await context.new_page()
        page.on("console", console)
        page.on("pageerror", lambda error: complaints.append(str(error)))
        page.on("response", response)
        page.on("request", request)
        answer = await page.goto(url)
        assert answer is not None and answer.status == 200
        await expect(page.get_by_role("status")).to_have_text("Live")
        yield page
        assert complaints == []
    finally:
        await context.close()


async def test_a_flip_in_the_page_reaches_a_connected_client(browser: Browser) -> None:
    async with (
        FlagServer({"banner": BANNER}) as server,
        Client(server.config(send_events=False)) as client,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        assert await client.variation("banner", USER, None) == "wide"
        send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
        client.add_flag_change_handler(send.send_nowait)
        switch = page.get_by_role("switch", name="banner on", exact=True)
        await expect(switch).to_have_attribute("aria-checked", "true")
        async with send, receive:
            await switch.click()
            with anyio.fail_after(30):
                assert await receive.receive() == {"banner"}
            assert await client.variation("banner", USER, None) == "narrow"
            await expect(switch).to_have_attribute("aria-checked", "false")
            # The flag's own version (what SDKs see): 1 -> 2 on its first change.
            assert server.flags["banner"]["version"] == 2
            row = page.get_by_role("row").filter(has=switch)
            await expect(row.get_by_role("cell").last).to_have_text("2")

            await switch.click()
            await page.get_by_role(
                "combobox", name="banner serves", exact=True
            ).select_option(label="narrow")
            with anyio.fail_after(30):
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


async def test_a_file_edit_or_a_broken_file_shows_without_reload(
    browser: Browser, tmp_path: Path
) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {"banner": BANNER}}))
    async with serve_command(path) as url, console_page(browser, url) as page:
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

        # A broken save: the page says which file and line, and the flags the
        # service last read stay on it (and served).
        await expect(page.get_by_role("alert")).to_have_count(0)
        path.write_text('{\n  "flags": {\n    "banner": {"on": tru}\n  }\n}\n')
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text(f"{path}, line 3")
        await expect(switch).to_have_attribute("aria-checked", "false")
        await expect(
            page.get_by_role("switch", name="added on", exact=True)
        ).to_be_visible()
        path.write_text(json.dumps({"flags": {"banner": BANNER}}))
        await expect(alert).to_have_count(0)
        await expect(switch).to_have_attribute("aria-checked", "true")


async def test_evaluations_appear_in_the_log(browser: Browser) -> None:
    async with (
        FlagServer({"banner": BANNER}) as server,
        console_page(browser, f"{server.url}/ui/") as page,
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
            "missing → fallback default FLAG_NOT_FOUND \N{MULTIPLICATION SIGN} 1"
        )


async def test_markup_in_flag_data_stays_text(browser: Browser) -> None:
    flags = {
        MARKUP: {
            "on": True,
            "variations": [MARKUP, "b"],
            "fallthrough": {"variation": 0},
        },
    }
    async with (
        FlagServer(flags) as server,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        switch = page.get_by_role("switch", name=f"{MARKUP} on", exact=True)
        await expect(switch).to_have_attribute("aria-checked", "true")
        table = page.get_by_role("table", name="Flags")
        key = table.get_by_role("cell").first.get_by_role("button", name=MARKUP)
        await expect(key).to_have_text(MARKUP)
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
    browser: Browser, failure: str
) -> None:
    """The select does not keep showing a choice the service does not serve."""
    async with (
        FlagServer({"banner": BANNER}) as server,
        console_page(browser, f"{server.url}/ui/", failing=True) as page,
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


async def test_a_foreign_host_is_refused(browser: Browser) -> None:
    """DNS rebinding: a name that resolves to 127.0.0.1 gets no console."""
    async with FlagServer({"banner": BANNER}) as server:
        page = await browser.new_page()
        try:
            port = server.url.rsplit(":", 1)[1]
            response = await page.goto(f"http://{REBOUND}:{port}/ui/")
            assert response is not None and response.status == 403
            host = server.requests_to("/ui/")[-1].headers["host"]
            assert host == f"{REBOUND}:{port}"
            await expect(page.get_by_role("table", name="Flags")).to_have_count(0)
            assert "localhost" in await page.content()
        finally:
            await page.close()


def numbered(count: int) -> dict[str, Any]:
    """``count`` two-variation flags, ``flag-0000`` on, in key order."""
    return {
        f"flag-{n:04d}": {
            "on": True,
            "variations": ["a", "b"],
            "fallthrough": {"variation": 0},
            "offVariation": 1,
        }
        for n in range(count)
    }


async def test_the_filter_narrows_a_thousand_flags_and_counts_them(
    browser: Browser,
) -> None:
    async with (
        FlagServer(numbered(1000)) as server,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        table = page.get_by_role("table", name="Flags")
        count = page.get_by_text("flags", exact=False).and_(page.locator("#count"))
        await expect(count).to_have_text("1000 flags")
        await expect(table.get_by_role("row").last).to_contain_text("flag-0999")
        search = page.get_by_role("searchbox", name="Filter flags")
        await search.press_sequentially("FLAG-099")  # case-insensitive, as typed
        await expect(count).to_have_text("10 of 1000 flags shown")
        # The rows in view: the header row and the ten that match.
        await expect(table.get_by_role("row")).to_have_count(11)
        await expect(table.get_by_role("row").nth(1)).to_contain_text("flag-0990")
        # A row that arrives while the filter is set obeys it.
        server.set_flag("flag-0995x", numbered(1)["flag-0000"])
        server.set_flag("zzz", numbered(1)["flag-0000"])
        await expect(count).to_have_text("11 of 1002 flags shown")
        await expect(table.get_by_role("row").filter(has_text="zzz")).to_have_count(0)
        await search.fill("")
        await expect(count).to_have_text("1002 flags")
        await expect(table.get_by_role("row")).to_have_count(1003)


async def focused(page: Page) -> str | None:
    """The accessible name (aria-label) of the element that has the focus."""
    name: str | None = await page.evaluate(
        "document.activeElement && document.activeElement.getAttribute('aria-label')"
    )
    return name


async def test_focus_and_scroll_are_kept_on_row_200_of_300(browser: Browser) -> None:
    """A flip, by keyboard, and an update from elsewhere keep focus and scroll.

    Scrolled is measured where the person looks: the focused control's place
    in the window, to a pixel or two (rows are laid out as they come into
    view, so the document's own offset may move, by subpixels on screen;
    losing the place is a jump of hundreds of pixels).
    """
    async with (
        FlagServer(numbered(300)) as server,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        # Row 200 (found by its text first: naming 300 switches is slow).
        row = page.get_by_role("row").filter(has_text="flag-0199")
        switch = row.get_by_role("switch", name="flag-0199 on", exact=True)
        await switch.focus()  # scrolled into view
        # Scrolled to it: the page, or the table's own box on a wide screen.
        assert (
            await page.evaluate(
                "window.scrollY + document.querySelector('.table-box').scrollTop"
            )
            > 0
        )
        place = await where(page)
        await page.keyboard.press("Space")
        await expect(switch).to_have_attribute("aria-checked", "false")
        assert server.flags["flag-0199"]["on"] is False
        assert await focused(page) == "flag-0199 on"
        assert await where(page) == pytest.approx(place, abs=2)

        # Tab on to the row's select; the service changes the flag (its
        # variations too) and another one, from elsewhere.
        await page.keyboard.press("Tab")
        assert await focused(page) == "flag-0199 serves"
        place = await where(page)
        flag = server.flags["flag-0199"]
        server.set_flag(
            "flag-0199", {**flag, "on": True, "variations": ["a", "b", "c"]}
        )
        server.set_flag("flag-0000", {**flag, "on": False})
        await expect(switch).to_have_attribute("aria-checked", "true")
        serves = row.get_by_role("combobox", name="flag-0199 serves", exact=True)
        await expect(serves.locator("option")).to_have_count(3)
        assert await focused(page) == "flag-0199 serves"
        assert await where(page) == pytest.approx(place, abs=2)
        # A flag above it goes away: the rows below it stay where they are.
        server.delete_flag("flag-0000")
        await expect(page.locator("#count")).to_have_text("299 flags")
        assert await focused(page) == "flag-0199 serves"
        # And the keyboard goes on from there: down picks the next variation.
        await page.keyboard.press("ArrowDown")
        await server.wait_until(
            lambda: server.flags["flag-0199"]["fallthrough"] == {"variation": 1}
        )


async def where(page: Page) -> float:
    """How far down the window the focused element is, in CSS pixels."""
    top: float = await page.evaluate(
        "document.activeElement.getBoundingClientRect().top"
    )
    return top


LONG_KEY = "checkout.banner-colour_of-the-summer-sale.background-image-variant"


async def test_at_phone_width_nothing_scrolls_sideways_and_keys_wrap_at_separators(
    browser: Browser,
) -> None:
    flags = {LONG_KEY: BANNER, "banner": BANNER}
    async with (
        FlagServer(flags) as server,
        console_page(
            browser, f"{server.url}/ui/", viewport={"width": 390, "height": 844}
        ) as page,
    ):
        await expect(page.get_by_role("switch", name=f"{LONG_KEY} on")).to_be_visible()
        width = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width[0] <= width[1] == 390
        # Each piece of the key between separators stays on one line (one
        # box), and the key takes several lines.
        key = page.get_by_role("button", name=LONG_KEY, exact=True)
        lines = await key.evaluate(
            """key => {
                const tops = new Set();
                for (const node of key.childNodes) {
                    if (node.nodeType !== Node.TEXT_NODE) continue;
                    const range = document.createRange();
                    range.selectNodeContents(node);
                    const boxes = range.getClientRects();
                    if (boxes.length !== 1) return -1;  // broken mid-word
                    tops.add(Math.round(boxes[0].top));
                }
                return tops.size;
            }"""
        )
        assert lines > 1
        # The details and an Evaluate answer fit too.
        await key.click()
        details = page.get_by_role("region", name=f"{LONG_KEY} details")
        await expect(details).to_contain_text("wide")
        form = page.get_by_role("form", name="Evaluate")
        await form.get_by_role("textbox", name="Context").fill("alice")
        await form.get_by_role("button", name="Evaluate").click()
        result = page.get_by_role("region", name="Evaluation result")
        await expect(result).to_contain_text("fallthrough")
        width = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width[0] <= width[1] == 390


async def test_the_page_has_its_own_icon(browser: Browser) -> None:
    """The page links an icon the service serves: no /favicon.ico 404 on load."""
    async with (
        FlagServer({"banner": BANNER}) as server,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        href = await page.locator('link[rel="icon"]').evaluate("link => link.href")
        assert href == f"{server.url}/ui/favicon.svg"
        icon = await page.request.get(href)
        assert icon.status == 200
        assert icon.headers["content-type"] == "image/svg+xml"
        assert "default-src 'self'" in icon.headers["content-security-policy"]


RULED: dict[str, Any] = {
    "on": True,
    "description": "The banner on the home page",
    "tags": ["home", "ui"],
    "variations": ["wide", "narrow", "hidden"],
    "offVariation": 2,
    "prerequisites": [{"key": "checkout", "variation": 0}],
    "targets": [{"values": ["alice"], "variation": 2}],
    "rules": [
        {
            "id": "staff",
            "clauses": [
                {"attribute": "email", "op": "endsWith", "values": ["@example.com"]}
            ],
            "variation": 1,
        }
    ],
    "fallthrough": {
        "rollout": {
            "variations": [
                {"variation": 0, "weight": 30000},
                {"variation": 1, "weight": 70000},
            ]
        }
    },
}
CHECKOUT: dict[str, Any] = {
    "on": True,
    "variations": [True, False],
    "fallthrough": {"variation": 0},
    "offVariation": 1,
}


async def test_details_and_evaluate_say_what_a_context_gets_and_why(
    browser: Browser,
) -> None:
    async with (
        FlagServer({"banner": RULED, "checkout": CHECKOUT}) as server,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        key = page.get_by_role("button", name="banner", exact=True)
        await key.focus()
        await page.keyboard.press("Enter")
        details = page.get_by_role("region", name="banner details")
        for words in (
            "The banner on the home page",
            "home",
            'email ends with "@example.com"',  # the rule's clause in words
            "rollout: 30 % wide, 70 % narrow",  # the fallthrough's percentages
            "checkout is true (variation 0)",  # the prerequisite
            "user alice",  # the target
            "As the flag file says",
        ):
            await expect(details).to_contain_text(words)
        await expect(
            details.get_by_role("heading", name="banner details")
        ).to_be_focused()
        await details.get_by_role("button", name="Close").press("Enter")
        await expect(details).to_be_hidden()
        await expect(key).to_be_focused()

        form = page.get_by_role("form", name="Evaluate")
        context = form.get_by_role("textbox", name="Context")
        await context.fill('{"kind": "user", "key": "bob", "email": "bob@example.com"}')
        await form.get_by_role("button", name="Evaluate").click()
        result = page.get_by_role("region", name="Evaluation result")
        staff = result.get_by_role("row").filter(has_text="banner")
        await expect(staff).to_contain_text("narrow")
        await expect(staff).to_contain_text("rule 1 matched")
        await expect(
            result.get_by_role("row").filter(has_text="checkout")
        ).to_contain_text("fallthrough")
        # Just a key, and one flag chosen.
        await context.fill("alice")
        await form.get_by_role("combobox", name="Flag").fill("banner")
        await context.press("Tab")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")  # the Evaluate button, by keyboard
        await expect(result.get_by_role("row")).to_have_count(2)  # header + banner
        await expect(result).to_contain_text("target match")
        # A context that is no JSON: a readable sentence, not a trace.
        await context.fill('{"kind": "user", "key": ')
        await form.get_by_role("button", name="Evaluate").click()
        await expect(result).to_contain_text("not valid JSON")
        # An invalid context, and a flag that is not there: answered as an
        # app is (and nothing in the browser's console: the page checks).
        await context.fill('{"kind": "user"}')
        await form.get_by_role("combobox", name="Flag").fill("")
        await form.get_by_role("button", name="Evaluate").click()
        await expect(result).to_contain_text("the context is not valid")
        await expect(result).to_contain_text("error: user not specified")
        await context.fill("alice")
        await form.get_by_role("combobox", name="Flag").fill("no-such-flag")
        await form.get_by_role("button", name="Evaluate").click()
        await expect(result).to_contain_text("error: flag not found")


MIGRATION: dict[str, Any] = {
    "on": True,
    "variations": ["off", "dualwrite", "shadow", "live", "rampdown", "complete"],
    "fallthrough": {"variation": 2},
    "offVariation": 0,
}


async def test_the_log_shows_defaults_migrations_and_who_is_connected(
    browser: Browser,
) -> None:
    from aioflags.migrations import MigratorBuilder, Stage

    async def old(payload: object) -> str:
        return "order from the old store"

    async def new(payload: object) -> str:
        return "no such order"  # the new store is empty

    async with (
        FlagServer({"banner": BANNER, "orders-move": MIGRATION}) as server,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        log = page.get_by_role("log", name="Evaluations")
        await expect(log.get_by_role("listitem")).to_have_count(0)
        # Before anything arrives: how to connect an app.
        await expect(page.get_by_text("Nothing evaluated yet")).to_contain_text(
            f'events_uri="{server.url}"'
        )
        sdks = page.get_by_role("list", name="SDKs")
        await expect(sdks.get_by_role("listitem")).to_have_count(0)
        async with Client(server.config()) as client:
            await expect(sdks.get_by_role("listitem")).to_have_count(1)
            await expect(sdks).to_contain_text("aioflags")
            await expect(sdks).to_contain_text("stream")
            await expect(sdks).to_contain_text("since")
            await client.variation("banner", USER, "none")
            await client.variation("baner", USER, "none")  # a typo
            migrator = MigratorBuilder(client).read(old, new, comparison=str.__eq__)
            await (
                migrator.write(old, new)
                .build()
                .read("orders-move", USER, Stage.OFF, payload=42)
            )
            await client.flush()
            typo = log.get_by_role("listitem").filter(has_text="baner")
            await expect(typo).to_contain_text("default")
            await expect(typo).to_contain_text("FLAG_NOT_FOUND")
            banner = log.get_by_role("listitem").filter(has_text="banner")
            await expect(banner).to_contain_text("banner → wide (variation 0)")
            await expect(banner).not_to_contain_text("default")
            move = log.get_by_role("listitem").filter(has_text="migration read")
            await expect(move).to_contain_text("orders-move")
            await expect(move).to_contain_text("old")
            await expect(move).to_contain_text("new")
            await expect(move).to_contain_text("inconsistent")
            await expect(move).to_contain_text("last at")
        await expect(page.get_by_text("Nothing evaluated yet")).to_be_hidden()


async def test_reset_undoes_a_change_and_a_fixed_variation_asks_first(
    browser: Browser,
) -> None:
    async with (
        FlagServer({"banner": RULED, "checkout": CHECKOUT}) as server,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        switch = page.get_by_role("switch", name="checkout on", exact=True)
        reset = page.get_by_role("button", name="Reset checkout", exact=True)
        await expect(reset).to_be_hidden()
        await switch.click()
        await expect(switch).to_have_attribute("aria-checked", "false")
        await reset.click()
        await expect(switch).to_have_attribute("aria-checked", "true")
        await expect(reset).to_be_hidden()
        assert server.flags["checkout"]["on"] is True
        # Each flag's own version: checkout changed twice, banner never.
        versions = page.get_by_role("table", name="Flags").get_by_role("row")
        await expect(versions.filter(has=switch).get_by_role("cell").last).to_have_text(
            "3"
        )
        banner_row = versions.filter(has_text="banner")
        await expect(banner_row.get_by_role("cell").last).to_have_text("1")

        # A fixed variation on a flag with rules asks first; Escape says no.
        # (Asked before any request: no refusal shows in the browser's console.)
        refused: list[int] = []
        page.on(
            "response",
            lambda answer: (
                refused.append(answer.status) if answer.status >= 400 else None
            ),
        )
        serves = page.get_by_role("combobox", name="banner serves", exact=True)
        await serves.select_option(label="narrow")
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("rules")
        await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await expect(serves).to_have_value("rules")
        assert server.flags["banner"]["rules"] == RULED["rules"]
        # Asked again, confirmed by keyboard: narrow for everyone...
        await serves.select_option(label="narrow")
        await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(serves).to_have_value("1")
        # (the select shows the choice at once; the service has it once the
        # row says the console changed the flag)
        await expect(
            page.get_by_role("button", name="Reset banner", exact=True)
        ).to_be_visible()
        assert server.flags["banner"]["fallthrough"] == {"variation": 1}
        assert not server.flags["banner"].get("rules")
        assert refused == []
        # ... and Reset puts the rules back.
        await page.get_by_role("button", name="Reset banner", exact=True).click()
        await expect(serves).to_have_value("rules")
        assert server.flags["banner"]["rules"] == RULED["rules"]
        assert server.flags["banner"]["targets"] == RULED["targets"]


async def test_an_evaluate_answer_shows_keys_with_bidi_controls_written_out(
    browser: Browser,
) -> None:
    """``admin\u202eresu`` must not read as ``adminuser`` in the Values table either."""
    async with (
        FlagServer({"admin\u202eresu": BANNER}) as server,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        form = page.get_by_role("form", name="Evaluate")
        await form.get_by_role("textbox", name="Context").fill("alice")
        await form.get_by_role("button", name="Evaluate").click()
        result = page.get_by_role("region", name="Evaluation result")
        cell = result.get_by_role("cell").first
        await expect(cell).to_have_text("admin⟨U+202E⟩resu")


async def test_a_refused_change_names_the_flag_by_its_label(browser: Browser) -> None:
    async with (
        FlagServer({"admin\u202eresu": BANNER}) as server,
        console_page(browser, f"{server.url}/ui/", failing=True) as page,
    ):
        server.fail("/ui/api/flag", status=503, body=b'{"message": "busy"}')
        await page.get_by_role("switch", name="admin⟨U+202E⟩resu on").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "Not changed: admin⟨U+202E⟩resu: busy"
        )


async def test_a_flagd_flag_shows_its_state_variants_and_targeting_and_flips(
    browser: Browser, tmp_path: Path
) -> None:
    from aioflags._datasystem._sources._files import load_flag_files

    targeting = {"if": [{"==": [{"var": "plan"}, "pro"]}, "wide", None]}
    path = tmp_path / "flags.flagd.json"
    path.write_text(
        json.dumps(
            {
                "flags": {
                    "layout": {
                        "state": "ENABLED",
                        "variants": {"wide": "w", "narrow": "n"},
                        "defaultVariant": "narrow",
                    },
                    "ruled": {
                        "state": "DISABLED",
                        "variants": {"wide": "w", "narrow": "n"},
                        "defaultVariant": "narrow",
                        "targeting": targeting,
                    },
                }
            }
        )
    )
    async with (
        FlagServer(*load_flag_files(path)) as server,
        Client(server.config(send_events=False)) as client,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        await page.get_by_role("button", name="ruled", exact=True).click()
        details = page.get_by_role("region", name="ruled details")
        for words in ("DISABLED", "narrow", "wide: w", "narrow: n"):
            await expect(details).to_contain_text(words)
        shown = await details.get_by_label("ruled targeting").text_content()
        assert shown is not None and json.loads(shown) == targeting
        await details.get_by_role("button", name="Close").click()
        assert await client.variation("layout", USER, "code") == "n"
        send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
        client.add_flag_change_handler(send.send_nowait)
        switch = page.get_by_role("switch", name="layout on", exact=True)
        await expect(switch).to_have_attribute("aria-checked", "true")
        async with send, receive:
            await switch.click()
            with anyio.fail_after(30):
                assert await receive.receive() == {"layout"}
        await expect(switch).to_have_attribute("aria-checked", "false")
        detail = await client.variation_detail("layout", USER, "code")
        assert (detail.value, detail.reason) == ("code", {"kind": "DISABLED"})
        assert server.flags["layout"]["flagd"]["state"] == "DISABLED"
