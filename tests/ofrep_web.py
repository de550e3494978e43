"""The OFREP web provider bundled for a test page: npm packages at pinned versions, esbuild.

Installed once per machine into a cache folder named by the versions (npm's
registry is reached at test set-up, never by the page), then bundled into one
script. Without ``npm`` the browser test is skipped locally and fails under
CI, like the Chromium tests (tests/chromium.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest

from tests.chromium import required

#: Pinned: the versions ../shared/ofrep.md was read against.
PACKAGES: Final = {
    "@openfeature/web-sdk": "1.10.0",
    "@openfeature/ofrep-web-provider": "0.4.3",
    "esbuild": "0.28.2",
}
_HERE: Final = Path(__file__).parent / "ofrep_web"


def _cache() -> Path:
    tag = "-".join(v for v in PACKAGES.values())
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "aioflags-tests" / f"ofrep-web-{tag}"


def bundle() -> bytes:
    """The page's script, with the provider and the SDK in it."""
    npm = shutil.which("npm")
    if npm is None:
        message = "npm not found: install Node.js to run the OFREP web provider test"
        if required():
            pytest.fail(f"{message} (required under CI)", pytrace=False)
        pytest.skip(message)
    folder = _cache()
    out = folder / "bundle.js"
    if not out.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text(
            json.dumps({"name": "aioflags-ofrep-web-test", "private": True})
        )
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"]
            + [f"{name}@{version}" for name, version in PACKAGES.items()],
            cwd=folder,
            check=True,
            timeout=600,
        )
        shutil.copy(_HERE / "page.js", folder / "page.js")
        subprocess.run(
            [
                str(folder / "node_modules" / ".bin" / "esbuild"),
                "page.js",
                "--bundle",
                "--format=esm",
                "--log-level=warning",
                f"--outfile={out}",
            ],
            cwd=folder,
            check=True,
            timeout=120,
        )
    return out.read_bytes()
