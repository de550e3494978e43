"""The screenshots of the flag console in the docs, from the real page.

Run ``python -m tests.console_screenshot [DIRECTORY]`` (``docs/img`` by
default): a FlagServer with a few flags, a Client that evaluates them (a
typo'd key among them, and a migration read through a Migrator), and
Chromium (tests/chromium.py) on the console once its log has them, with one
flag's details open and an Evaluate answer shown. Two full-page pictures:
``console.png`` (desktop, 1280x800) and ``console-phone.png`` (390x844).
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from playwright.async_api import Browser, expect

from aioflags import Client, Context
from aioflags.migrations import MigratorBuilder, Stage
from aioflags.testing import FlagBuilder, FlagServer
from tests.chromium import chromium

FLAGS = {
    "checkout.new-flow": FlagBuilder("checkout.new-flow").boolean().build(),
    "search.ranking": {
        **FlagBuilder("search.ranking")
        .variations("classic", "semantic", "hybrid")
        .fallthrough("hybrid")
        .build(),
        "description": "Which ranking the search page uses",
        "tags": ["search", "experiment"],
        "prerequisites": [{"key": "checkout.new-flow", "variation": 0}],
        "targets": [{"values": ["alice", "bob"], "variation": 1}],
        "rules": [
            {
                "id": "staff",
                "clauses": [
                    {
                        "attribute": "email",
                        "op": "endsWith",
                        "values": ["@example.com"],
                    }
                ],
                "variation": 1,
            }
        ],
        "fallthrough": {
            "rollout": {
                "variations": [
                    {"variation": 0, "weight": 70000},
                    {"variation": 2, "weight": 30000},
                ]
            }
        },
        "trackEvents": True,
    },
    "orders.move-to-new-store": {
        "on": True,
        "variations": ["off", "dualwrite", "shadow", "live", "rampdown", "complete"],
        "fallthrough": {"variation": 2},
        "offVariation": 0,
    },
    "max-upload-mb": {"on": True, "variations": [25], "fallthrough": {"variation": 0}},
    "dark-mode": FlagBuilder("dark-mode").boolean().on(False).build(),
}


async def read_old(order: object) -> str:
    """The old store has the order."""
    return f"order {order}"


async def read_new(order: object) -> str:
    """The new store is still empty."""
    return "no such order"


async def evaluate(server: FlagServer) -> None:
    """A real app's evaluations, a typo and a migration read, sent to the log."""
    async with Client(server.config()) as client:
        for n in range(12):
            user = Context.create(f"user-{n}")
            await client.variation("checkout.new-flow", user, False)
            await client.variation("search.ranking", user, "classic")
        staff = Context.create("ann", attributes={"email": "ann@example.com"})
        await client.variation("search.ranking", staff, "classic")
        await client.variation("max-upload-mb", Context.create("u"), 10)
        await client.variation("dark-mod", Context.create("u"), False)  # a typo
        migrator = (
            MigratorBuilder(client)
            .read(read_old, read_new, comparison=str.__eq__)
            .write(read_old, read_new)
            .build()
        )
        for order in (17, 18):
            await migrator.read(
                "orders.move-to-new-store", Context.create("user-3"), Stage.OFF, order
            )
        await client.flush()


async def shoot(
    browser: Browser, url: str, path: Path, width: int, height: int
) -> None:
    """One full-page picture of the console at ``width`` x ``height``."""
    page = await browser.new_page(viewport={"width": width, "height": height})
    await page.goto(url)
    await expect(page.get_by_role("status")).to_have_text("Live")
    log = page.get_by_role("log", name="Evaluations")
    await expect(
        log.get_by_role("listitem").filter(has_text="migration")
    ).to_have_count(1)
    await expect(
        log.get_by_role("listitem").filter(has_text="dark-mod ")
    ).to_have_count(1)
    await page.get_by_role("button", name="search.ranking", exact=True).click()
    details = page.get_by_role("region", name="search.ranking details")
    await expect(details).to_contain_text("ends with")
    form = page.get_by_role("form", name="Evaluate")
    await form.get_by_role("textbox", name="Context").fill(
        '{"kind": "user", "key": "ann", "email": "ann@example.com"}'
    )
    await form.get_by_role("button", name="Evaluate").click()
    result = page.get_by_role("region", name="Evaluation result")
    await expect(result).to_contain_text("rule 1 matched")
    await page.evaluate("window.scrollTo(0, 0)")
    await page.locator(":focus").blur()
    await page.screenshot(path=path, full_page=True)
    await page.close()


async def main(directory: Path) -> None:
    """Both pictures into ``directory``."""
    async with FlagServer(FLAGS) as server:
        await evaluate(server)
        url = f"{server.url}/ui/"
        async with chromium() as browser:
            await shoot(browser, url, directory / "console.png", 1280, 800)
            await shoot(browser, url, directory / "console-phone.png", 390, 844)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
    anyio.run(main, target)
    print(f"saved {target / 'console.png'} and {target / 'console-phone.png'}")
