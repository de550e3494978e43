"""A guard's banner on the console, in a real browser (issue 98; tests/chromium.py).

A ``FlagServer`` serves a 50/50 rollout to a client with a pinning guard
and shows its guards (``server.show_guards(client.guards)``). The page,
open before the guard decides, shows the banner as it pins (the flag, the
metric, both arms' figures, "pinned to false"); its Release button
releases the pin through the console's API, and the banner goes.
Every wait is one of Playwright's auto-waiting expectations.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

import aioflags
from aioflags import Context, Guard
from aioflags.guards import errors
from aioflags.testing import FlagServer
from tests.chromium import chromium
from tests.test_console_browser import console_page
from tests.test_guards_web import FLAG, ROLLOUT, Clock, _decide


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue98_a_pinned_guard_is_a_banner_whose_release_button_releases_it() -> (
    None
):
    guard = Guard(FLAG, control=False, metrics=[errors()], action="pin")
    async with (
        chromium() as browser,
        FlagServer({FLAG: ROLLOUT}) as server,
        aioflags.Client(server.config(send_events=False, guards=[guard])) as client,
        console_page(browser, f"{server.url}/ui/") as page,
    ):
        clock = Clock()
        client.guards.clock = clock
        server.show_guards(client.guards)
        banner = page.get_by_role("alert", name=f"Guard {FLAG}", exact=True)
        await expect(banner).to_have_count(0)

        await _decide(client, clock, "pinned")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text(f"Guard {FLAG} on {FLAG}: ")
        await expect(banner).to_contain_text("errors is worse in the treatment")
        await expect(banner).to_contain_text("pinned to false")
        status = client.guards.status[FLAG]
        for arm in status.arms:
            role = "control" if arm.control else "treatment"
            value = "true" if arm.value else "false"
            rate = f"{(arm.errors / arm.requests) * 100:.1f} %"
            await expect(banner).to_contain_text(
                f"{role} {value}: {arm.requests} requests, {arm.errors} errors ({rate})"
            )
        user = Context.create("someone")
        assert (await client.variation_detail(FLAG, user, None)).reason[
            "kind"
        ] == "GUARDED"

        await banner.get_by_role("button", name=f"Release {FLAG}", exact=True).click()
        await expect(banner).to_have_count(0)
        assert client.guards.status[FLAG].state == "released"
        assert (await client.variation_detail(FLAG, user, None)).reason[
            "kind"
        ] != "GUARDED"
