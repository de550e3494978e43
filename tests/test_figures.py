"""Every measured figure in the README and docs/ says how to measure it again (issue 97).

A figure here is a ratio (``13.5x``), an instruction count, or a time in
milliseconds or microseconds. The section that states one (the text
between two headings) must name the command that reproduces it: a
``rerun:`` line, a ``benchmarks/`` or ``tests/`` script, or a link to
docs/benchmarks.md, where each section's ``rerun:`` line names the script,
its options and its environment. docs/benchmarks-history.md is the dated
diary (each figure with its date and commit) and is not checked; nor is
the changelog.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.modules import ROOT

#: A ratio, an instruction count, or a time in ms or µs.
FIGURE = re.compile(
    r"\b\d(?:[\d,.]*\d)?\s?[x\u00d7](?![\w-])|\binstructions\b"
    r"|\b\d(?:[\d,.]*\d)?\s?(?:ms|µs)\b"
)
#: What traces a section's figures to a command.
TRACE = re.compile(
    r"^rerun: |`(?:python )?(?:benchmarks|tests)/\w+\.py|\(?benchmarks\.md[#)]"
    r"|benchmarks/\w+\.py|tests/test_\w+\.py",
    re.M,
)
#: Pages not checked: the dated diary, and the changelog (a snippet of CHANGELOG.md).
UNCHECKED = {"benchmarks-history.md", "changelog.md"}
#: Sections whose times are settings or examples, not measurements.
SETTINGS = {
    ("data-system.md", "Connection policy"),  # the server's retry: floor
    ("faq.md", "Which thread does it use?"),  # the slice a design step takes
    ("logging.md", "Several clients in one process"),  # a log line shown
}
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def sections(page: Path) -> list[tuple[str, str]]:
    """``page``'s sections: (heading, text), code blocks kept but not split at ``#``."""
    found: list[tuple[str, list[str]]] = [("", [])]
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#{1,6} ", line):
            found.append((line.lstrip("#").strip(), []))
        else:
            found[-1][1].append(line)
    return [(heading, "\n".join(lines)) for heading, lines in found]


def untraced(page: Path) -> list[str]:
    """The headings of ``page``'s sections that state a figure and no command."""
    return [
        heading
        for heading, text in sections(page)
        if FIGURE.search(text)
        and not TRACE.search(text)
        and (page.name, heading) not in SETTINGS
    ]


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if p.name not in UNCHECKED],
    ids=lambda p: p.name,
)
def test_every_figure_names_the_command_that_measures_it(page: Path) -> None:
    assert untraced(page) == []


def test_each_benchmarks_section_with_figures_has_a_rerun_line() -> None:
    page = ROOT / "docs" / "benchmarks.md"
    missing = [
        heading
        for heading, text in sections(page)
        if FIGURE.search(text)
        and not re.search(r"^rerun: `", text, re.M)
        and heading not in ("Benchmarks", "How to read them")
    ]
    assert missing == []


def test_the_rerun_lines_name_scripts_that_exist() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    lines = re.findall(r"^rerun: (.+)$", text, re.M)
    assert len(lines) >= 15
    scripts = {s for line in lines for s in re.findall(r"(\w+/\w+\.py)", line)}
    assert "benchmarks/eval_window.py" in scripts
    assert [s for s in sorted(scripts) if not (ROOT / s).is_file()] == []
    # every benchmark script is reachable from the page
    benches = {f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert sorted(benches - scripts) == []


def test_the_benchmarks_page_is_today_s_figures_and_links_its_history() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert len(page.splitlines()) < 600
    assert "](benchmarks-history.md)" in page
    assert "TBD" not in page
    assert "benchmarks-history.md" in (ROOT / "mkdocs.yml").read_text()


def test_the_readme_states_no_test_count_or_suite_time() -> None:
    """Issue 97: "3,000 tests", "about 5 minutes": nothing checked them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.findall(r"\b\d[\d,]* tests\b|\b\d+ min(?:utes?)?\b", text) == []


def test_the_flagd_comparisons_say_what_they_count() -> None:
    """Issue 97: sem_ver's 68.5x counted a traceback; READY's 0.39x a sleep."""
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    flagd = text.split("\n## flagd\n", 1)[1].split("\n## ", 1)[0]
    paragraphs = re.split(r"\n\s*\n", flagd)
    # the old figures only where they are said to be of an invalid version / the wall
    assert [p for p in paragraphs if "68.5x" in p and "invalid" not in p] == []
    assert [p for p in paragraphs if "0.39x" in p and "wall clock" not in p] == []
    assert "valid semantic versions" in flagd
    ready = flagd.split("### READY", 1)[1].split("\n### ", 1)[0]
    assert "CPU" in ready
    assert "50 ms" in ready  # the provider's poll, which its wall time measures


def test_the_flagd_bench_measures_sem_ver_on_valid_versions_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 97: one version in seven was ``"bad"``; flagd logs that with a traceback."""
    from aioflags._systems._flagd._engine._operators import parse_version
    from tests.modules import load

    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts its folder first
    bench = load("benchmarks/bench_flagd_eval.py", "bench_flagd_eval")
    monkeypatch.delitem(sys.modules, "bench_flagd_eval")
    assert [v for v in bench.VERSIONS if parse_version(v) is None] == []
    assert parse_version(bench.INVALID) is None  # what --invalid-version adds
