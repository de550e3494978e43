"""The screenshot of the flag console in the docs (docs/img/console.png), from the real page.

Run ``python -m tests.console_screenshot [PATH]``: a FlagServer with a few
flags, a Client that evaluates them, and Chromium (tests/chromium.py) on the
console once the evaluations are in its log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from playwright.async_api import expect

from aioflags import Client, Context
from aioflags.testing import FlagBuilder, FlagServer
from tests.chromium import chromium

FLAGS = {
    "checkout.new-flow": FlagBuilder("checkout.new-flow").boolean().build(),
    "search.ranking": FlagBuilder("search.ranking")
    .variations("classic", "semantic", "hybrid")
    .fallthrough("hybrid")
    .build(),
    "beta-users": FlagBuilder("beta-users")
    .boolean()
    .target(True, "alice", "bob")
    .fallthrough(False)
    .build(),
    "max-upload-mb": {"on": True, "variations": [25], "fallthrough": {"variation": 0}},
    "dark-mode": FlagBuilder("dark-mode").boolean().on(False).build(),
}


async def main(path: Path) -> None:
    async with FlagServer(FLAGS) as server:
        async with Client(server.config()) as client:
            for n in range(12):
                user = Context.create(f"user-{n}")
                await client.variation("checkout.new-flow", user, False)
                await client.variation("search.ranking", user, "classic")
                await client.variation("beta-users", user, False)
            await client.variation("beta-users", Context.create("alice"), False)
            await client.variation("max-upload-mb", Context.create("u"), 10)
            await client.flush()
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 900, "height": 640})
            await page.goto(f"{server.url}/ui/")
            await expect(page.get_by_role("status")).to_have_text("Live")
            log = page.get_by_role("log", name="Evaluations")
            await expect(log.get_by_role("listitem")).to_have_count(5)
            await page.screenshot(path=path, full_page=True)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/console.png")
    anyio.run(main, target)
    print(f"saved {target}")
