"""A real browser for the console tests: Debian's Chromium, driven by Playwright.

Playwright's own browser download cannot be reached from CI, so the tests
launch the system Chromium (``apt-get install chromium``) through
``executable_path``. The tests that use it carry the ``chromium`` marker
(tests/conftest.py adds it to every test of a module that imports from here).
Without it they are skipped, with a message saying how to install it, except
under CI (``CI`` or ``CHROMIUM_TESTS_REQUIRED`` set), where they fail: CI
must never pass by skipping them. Whether it is there is looked up once per
session (:func:`find`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import AsyncIterator
from typing import Final

import pytest
from playwright.async_api import Browser, async_playwright, expect

#: Playwright's waits are nets, not timings: its assertions (``expect``)
#: wait for the page to show what they ask, 5 s at most by default, and
#: launching waits 30 s for the browser. A loaded machine (issue 97: load
#: 13-15 on two cores) renders slower than that; these are the nets of every
#: test that imports this module.
GUARD_MS: Final = 60_000
expect.set_options(timeout=GUARD_MS)

_MISSING: Final = (
    "chromium not found: install it (Debian: apt-get install chromium) to run "
    "the console's browser tests"
)
#: A name the browser resolves to 127.0.0.1 (a DNS-rebinding attacker's name).
REBOUND: Final = "rebind.test"
ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1",
)


def required() -> bool:
    """Whether a missing Chromium is a failure (CI) rather than a skip."""
    return bool(os.environ.get("CI") or os.environ.get("CHROMIUM_TESTS_REQUIRED"))


@functools.cache
def find() -> str | None:
    """The Chromium binary, or None: looked up once, the session's answer."""
    return shutil.which("chromium") or shutil.which("chromium", path="/usr/bin")


def executable() -> str:
    """The Chromium to run; skips (fails under CI) when there is none."""
    path = find()
    if path is None:
        if required():
            pytest.fail(f"{_MISSING} (required under CI)", pytrace=False)
        pytest.skip(_MISSING)
    return path


@contextlib.asynccontextmanager
async def chromium(*extra: str) -> AsyncIterator[Browser]:
    """A headless Chromium for one test, closed afterwards."""
    path = executable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, args=[*ARGS, *extra], timeout=GUARD_MS
        )
        try:
            yield browser
        finally:
            await browser.close()
