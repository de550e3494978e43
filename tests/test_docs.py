"""The code samples in the README and docs/ run as tests; the docs site builds."""

from __future__ import annotations

import ast
import re

import pytest

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
        name for name, how, _ in SAMPLES if how not in ("compile", "exec", "pytest")
    ]
    assert not untested, f"add <!-- test: compile|exec|pytest --> before {untested}"
    assert len(SAMPLES) >= 10


@pytest.mark.parametrize(
    ("how", "code"),
    [(how, code) for _, how, code in SAMPLES],
    ids=[name for name, _, _ in SAMPLES],
)
def test_sample(how: str, code: str, pytester: pytest.Pytester) -> None:
    # Every sample is valid Python (top-level await allowed: docs show snippets).
    compiled = compile(code, "<sample>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if how == "exec":
        exec(compiled, {})
    elif how == "pytest":
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
