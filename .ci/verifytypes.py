"""Type completeness of aioflags' public surface (pyright --verifytypes).

Usage: ``python .ci/verifytypes.py VENV`` with aioflags (and its extras)
installed in VENV. Fails on any diagnostic of severity error or a score
under 100%; prints the score.

Pyright runs from an empty folder (from the checkout it would resolve the
source tree, which it does not treat as an installed package), with the
interpreter of a throwaway virtual environment that sees VENV's packages
through a ``.pth`` file, plus one correction:

The OpenFeature SDK is a namespace package (``openfeature/`` has no
``__init__.py``) that ships its ``py.typed`` marker at the namespace's root.
PEP 561 asks namespace packages to mark each subpackage instead, and pyright
looks only there (microsoft/pyright#1343), so it reads ``openfeature.provider``
as untyped and calls every subclass of its classes unknown -- ``AioflagsProvider``
included, whose own annotations are complete. The throwaway environment holds a
copy of the installed SDK with the marker in each subpackage, ahead of VENV's
site-packages; nothing in VENV changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

venv = Path(sys.argv[1]).resolve()
python = venv / "bin" / "python"


def site_packages(interpreter: Path) -> Path:
    """The ``purelib`` folder of ``interpreter``'s environment."""
    out = subprocess.run(
        [
            str(interpreter),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Path(out.strip())


with tempfile.TemporaryDirectory() as scratch:
    overlay = Path(scratch) / "env"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(overlay)], check=True
    )
    overlay_python = overlay / "bin" / "python"
    overlay_site = site_packages(overlay_python)
    base_site = site_packages(python)
    # VENV's site-packages, with its own .pth files (the editable install).
    (overlay_site / "base.pth").write_text(
        f"import site; site.addsitedir({str(base_site)!r})\n"
    )
    sdk = base_site / "openfeature"
    if sdk.is_dir():
        copy = overlay_site / "openfeature"
        shutil.copytree(sdk, copy, ignore=shutil.ignore_patterns("__pycache__"))
        for sub in copy.iterdir():
            if (sub / "__init__.py").is_file():
                (sub / "py.typed").touch()
    empty = Path(scratch) / "empty"
    empty.mkdir()
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(overlay),
        # pyright --verifytypes takes the first ``python`` on PATH (it ignores
        # --pythonpath).
        "PATH": f"{overlay / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
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
    if diagnostic["severity"] == "error"
]
counts = report["exportedSymbolCounts"]
lines = [
    f"type completeness: {report['completenessScore']:.1%} "
    f"({counts['withKnownType']} exported symbols known, "
    f"{counts['withUnknownType']} unknown, {counts['withAmbiguousType']} ambiguous)"
]
lines += [f"  {name}: {message}" for name, message in errors]
sys.stdout.write("\n".join(lines) + "\n")
sys.exit(1 if errors or report["completenessScore"] < 1.0 else 0)
