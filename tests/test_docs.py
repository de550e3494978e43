"""The code samples in the README and docs/ run as tests; the docs site builds."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import aioflags
import aioflags.blocking
import aioflags.migrations
from aioflags.lens import LensConfig, mint
from aioflags.testing import FlagData, FlagServer
from tests.modules import ROOT

pytest_plugins = ["pytester"]

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- test: (\w+) -->\n)?```python\n(.*?)```", re.S)


def samples() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for n, match in enumerate(BLOCK.finditer(text)):
            found.append((f"{page.name}#{n}", match.group(1) or "", match.group(2)))
    return found


SAMPLES = samples()


def test_every_python_sample_says_how_it_is_tested() -> None:
    untested = [
        name
        for name, how, _ in SAMPLES
        if how not in ("compile", "exec", "run", "pytest", "process")
    ]
    assert not untested, (
        f"add <!-- test: compile|exec|run|pytest|process --> before {untested}"
    )
    assert len(SAMPLES) >= 10


#: The samples only compiled, and why: every other one runs.
COMPILED_ONLY = {
    # two environments' clients talk to LaunchDarkly itself (prod_key,
    # staging_key): tests/test_environments.py runs the same against
    # two local flag services
    "configuration.md#0": "aioflags.Config(prod_key)",
    # Django and Celery are not test dependencies
    "sync.md#2": "from django.apps import AppConfig",
    "sync.md#3": "from celery import Celery",
    # a generated module, shortened (tests/test_codegen_command.py runs whole
    # ones), and a caller of it (app.flags is the reader's)
    "lifecycle-tools.md#0": "class BlockingFlags: ...",
    "lifecycle-tools.md#1": "from app.flags import Flags",
}


def test_every_sample_runs_but_those_that_cannot() -> None:
    compiled = {name: code for name, how, code in SAMPLES if how == "compile"}
    assert set(compiled) == set(COMPILED_ONLY)
    for name, code in compiled.items():
        assert COMPILED_ONLY[name] in code, name


@pytest.mark.parametrize(
    ("how", "code"),
    [(how, code) for _, how, code in SAMPLES],
    ids=[name for name, _, _ in SAMPLES],
)
def test_sample(
    how: str,
    code: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every sample is valid Python (top-level await allowed: docs show snippets).
    compiled = compile(code, "<sample>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if how == "exec":
        exec(compiled, {})
    elif how == "run":
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("AIOFLAGS_SDK_KEY", "sdk-key")
        (tmp_path / "flags.json").write_text(json.dumps({"flagValues": FLAG_VALUES}))
        levels = {n: logging.getLogger(n).level for n in ("aioflags.datasource",)}
        environment = dict(os.environ)  # (a sample may set a variable: conftest's)
        try:
            asyncio.run(_run(compiled))
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            for name in set(os.environ) - set(environment):
                del os.environ[name]
            os.environ.update(environment)
    elif how == "process":
        # As written, on an event loop of its own, in a process of its own:
        # the gRPC samples (flagd's sync server). In a long-lived pytest-xdist
        # worker that had run ~1,000 other tests, gRPC's C core took the
        # worker down on the FlagdServer sample (3 full runs out of 3; never
        # alone, in its file, or in one process with the same files).
        script = (
            "import ast, asyncio, sys\n"
            "code = compile(sys.stdin.read(), '<sample>', 'exec', "
            "flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)\n"
            "result = eval(code, {})\n"
            "if asyncio.iscoroutine(result):\n"
            "    asyncio.run(result)\n"
        )
        done = subprocess.run(
            [sys.executable, "-W", "error", "-c", script],
            input=code,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    elif how == "pytest":
        # Asked for here alone: pytester puts sys.modules back as it was
        # when the test ends, and an extension module it drops that way is
        # imported (initialised) again by a later test: _multiprocessing's,
        # dropped after one sample imported hypercorn, then took the
        # worker down with a segmentation fault (a SemLock attribute read
        # in multiprocessing/synchronize.py) as the next imported it.
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        pytester.makeini(
            "[pytest]\n"
            "addopts = -p no:cacheprovider --strict-markers\n"
            "filterwarnings = error\n"
            "asyncio_mode = strict\n"
            "asyncio_default_fixture_loop_scope = function\n"
        )
        pytester.makepyfile(test_sample=code)
        result = pytester.runpytest()
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) >= 1 and not (
            outcomes.get("failed") or outcomes.get("errors")
        ), result.stdout.str()


#: The flags a ``run`` sample's app has (``flags.json`` holds them too).
FLAG_VALUES: dict[str, Any] = {"new-checkout": True, "search-v2": "b"}
#: A ``run`` sample's flag lens secret (``secret``).
LENS_SECRET = "docs-lens-secret-0123456789abcdef0123456789"


class _Rows:
    """A database a migrations sample reads (``old_db``)."""

    async def fetchrow(self, query: str, *args: object) -> dict[str, object]:
        return {"id": args[0]}


class _Orders:
    """A store a migrations sample reads (``new_store``)."""

    async def get_order(self, order_id: object) -> dict[str, object]:
        return {"id": order_id}


async def _written(payload: object) -> object:
    return payload


async def _run(compiled: Any) -> None:
    """Run a sample as written, where an app's names are: ``client`` (started,
    on a local flag service, analytics events on, a flag lens), ``user``,
    ``config``, ``data``, ``sdk_key``, ``token`` and ``secret`` (a lens's),
    ``logger``, and the stores the migrations samples read and write."""
    data = FlagData()
    data.update(
        data.flag("new-checkout").variations(True, False).fallthrough(True),
        data.flag("search-v2").variations("a", "b").fallthrough("b"),
        data.flag("orders-to-documents").migration(aioflags.migrations.Stage.OFF),
    )
    async with FlagServer() as server:
        data.attach(server)
        config = server.config(
            "sdk-key", lens=LensConfig(secrets=[LENS_SECRET], allow=["*"])
        )
        async with aioflags.Client(config) as client:
            names: dict[str, Any] = {
                "aioflags": aioflags,
                "client": client,
                "user": aioflags.Context.create("user-42"),
                "config": config,
                "data": data,
                "sdk_key": "sdk-key",
                "secret": LENS_SECRET,
                "token": mint(LENS_SECRET, {"new-checkout": False}),
                "logger": logging.getLogger("docs-sample"),
                "pg_read": lambda order_id: {"id": order_id},
                "docs_read": lambda order_id: {"id": order_id},
                "old_db": _Rows(),
                "new_store": _Orders(),
                "write_old": _written,
                "write_new": _written,
                "__name__": "docs_sample",
            }
            done = eval(compiled, names)
            if inspect.iscoroutine(done):
                await done


def test_docs_pages_are_all_in_the_site_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert {p for p in pages if f": {p}" not in nav} == set()


def test_examples_are_linked_from_docs() -> None:
    docs = "".join(p.read_text() for p in PAGES)
    for example in (ROOT / "examples").glob("*.py"):
        assert f"examples/{example.name}" in docs, example.name


@pytest.mark.parametrize("page", ["quickstart.md", "integrations.md"])
def test_the_pages_that_show_evaluations_warn_of_a_forgotten_await(page: str) -> None:
    # A coroutine is always true: `if client.bool_variation(...)` without
    # `await` takes the flagged path every time (issue 38). The warning, and
    # the type-checker settings that catch it, stay on these pages.
    text = " ".join((ROOT / "docs" / page).read_text().split())
    assert "always true" in text
    assert 'enable_error_code = ["truthy-bool"]' in text
    assert "reportUnnecessaryComparison" in text


def test_every_page_that_uses_store_mode_says_how_to_install_the_redis_store() -> None:
    pages = [p for p in PAGES if "StoreMode" in p.read_text()]
    assert pages
    for page in pages:
        assert "pip install 'aioflags[redis]'" in page.read_text(), page.name


#: A sample's plane path: ``plane="..."``, ``aioflags plane PATH``, an
#: ``AIOFLAGS_PLANE=...``-like variable, any ``"....plane"`` literal.
PLANE_PATH = re.compile(
    r"""plane=(["'])(?P<given>[^"'\n]+)\1"""
    r"""|aioflags plane (?P<sidecar>[^\s`'"]+)"""
    r"""|PLANE=["']?(?P<variable>[^\s`'"]+)"""
    r"""|["'](?P<literal>[^"'\s]*\.plane)["']"""
)
#: Words that name no app: a path of only these is one every app might be
#: given (``/tmp/aioflags.plane``, ``/run/app/flags.plane``).
GENERIC_PATH_WORDS = frozenset(
    {
        "run",
        "tmp",
        "var",
        "lib",
        "app",
        "apps",
        "aioflags",
        "flag",
        "flags",
        "plane",
        "sock",
        "socket",
        "shared",
        "flagd",
    }
)


def _plane_paths() -> list[tuple[str, int, str]]:
    """(page, line number, path) of each plane path the pages show, placeholders left out."""
    found = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for match in PLANE_PATH.finditer(line):
                path = next(g for g in match.groups()[1:] if g is not None)
                if not re.fullmatch(r"[A-Z_]+|\.\.\.", path):  # PATH, ...
                    found.append((page.name, number, path))
    return found


def test_row234_N1_every_plane_path_sample_names_its_app() -> None:
    """Row 234 / N1: a sample's plane path is an app's own (its name in it), never one path that every app would copy and share."""
    paths = _plane_paths()
    pages = {page for page, _, _ in paths}
    assert {"README.md", "scaling.md", "flagd.md"} <= pages, paths
    shared = [
        f"{page}:{number}: {path!r} names no app (put the app's name in it)"
        for page, number, path in paths
        if set(re.split(r"[/._~-]+", path)) <= GENERIC_PATH_WORDS | {""}
    ]
    assert shared == [], "\n".join(shared)
