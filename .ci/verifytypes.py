"""Type completeness of aioflags' public surface (pyright --verifytypes).

Run from outside the checkout (pyright otherwise resolves the source tree,
which it does not treat as an installed package). Fails on any error other
than the one known below; prints the score.

Known: pyright reports the base class of ``aioflags.openfeature.AioflagsProvider``
(OpenFeature's ``AbstractProvider``) as unknown under --verifytypes, while it
resolves it in a plain check of the same environment (tests/typing/). The
OpenFeature SDK is a namespace package (``openfeature/`` has a ``py.typed``
but no ``__init__.py``): under --verifytypes, pyright 1.1.414 calls a
subclass of any of its classes (``Hook`` as well) unknown, which a
ten-line package reproduces; a subclass of httpx's classes is known.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

KNOWN = {"aioflags.openfeature.AioflagsProvider"}
venv = Path(sys.argv[1]).resolve()
env = {
    **os.environ,
    "VIRTUAL_ENV": str(venv),
    "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
}
with tempfile.TemporaryDirectory() as empty:
    out = subprocess.run(
        [
            str(venv / "bin" / "pyright"),
            "--verifytypes",
            "aioflags",
            "--ignoreexternal",
            "--outputjson",
        ],
        capture_output=True,
        text=True,
        cwd=empty,
        env=env,
        check=False,
    ).stdout
report = json.loads(out)["typeCompleteness"]
errors = [
    (symbol["name"], diagnostic["message"])
    for symbol in report["symbols"]
    for diagnostic in symbol["diagnostics"]
    if diagnostic["severity"] == "error" and symbol["name"] not in KNOWN
]
lines = [f"type completeness: {report['completenessScore']:.1%}"]
lines += [f"  {name}: {message}" for name, message in errors]
sys.stdout.write("\n".join(lines) + "\n")
sys.exit(1 if errors or report["completenessScore"] < 0.99 else 0)
