"""The examples run as tests: README command 1 must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_tells_the_whole_story() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status: READY" in out
    assert "bob    new-checkout=True  (FALLTHROUGH)" in out  # the live change arrived
    assert (
        "FDv1 fallback engaged: True; status: READY; stream connections open: 0" in out
    )
    assert "[log] The flag service directed a fallback to FDv1" in out
    assert (
        "CONFIGURATION_CHANGED -> status READY ['banner-colour']" in out
    )  # via FDv1 polling
    assert "6. Closed: status NOT_READY, stream connections open: 0" in out
    assert result.stderr == ""
