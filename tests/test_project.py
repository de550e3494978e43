"""The project's own promises: public surface, README commands, CI, packaging."""

from __future__ import annotations

import enum
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aioflags

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_complete() -> None:
    assert list(aioflags.__all__) == sorted(aioflags.__all__)
    public = {n for n in vars(aioflags) if not n.startswith("_")} | {"__version__"}
    # Submodules imported implicitly are not part of the surface.
    public -= {n for n, v in vars(aioflags).items() if inspect.ismodule(v)}
    public.discard("annotations")  # `from __future__ import annotations`
    assert set(aioflags.__all__) == public


def test_exports_claim_the_package_and_are_final_or_bases() -> None:
    for name in aioflags.__all__:
        obj = getattr(aioflags, name)
        if not isinstance(obj, type):
            continue
        assert obj.__module__ == "aioflags", name
        assert obj.__doc__, f"{name} has no docstring"
        is_base = any(
            obj in c.__mro__[1:]
            for c in (getattr(aioflags, n) for n in aioflags.__all__)
            if isinstance(c, type)
        )
        # typing.final records __final__ only from Python 3.11 on.
        final = getattr(obj, "__final__", sys.version_info < (3, 11))
        # Hook is there to be subclassed by applications (docs/hooks.md).
        extension_point = obj is aioflags.Hook
        assert final or issubclass(obj, enum.Enum) or is_base or extension_point, name


def test_source_authoring_names_live_in_sources_only() -> None:
    import aioflags.sources

    moved = {"Basis", "SourceContext", "SourceError", "Update"}
    assert moved <= set(aioflags.sources.__all__)
    assert not moved & set(aioflags.__all__)
    assert list(aioflags.sources.__all__) == sorted(aioflags.sources.__all__)
    for name in moved:
        obj = getattr(aioflags.sources, name)
        assert obj.__module__ == "aioflags.sources", name
        assert obj.__doc__, f"{name} has no docstring"
        # One path for each name (no alias kept from before the package's release).
        assert not hasattr(aioflags, name), name
        assert name not in dir(aioflags)
    with pytest.raises(ImportError):
        exec("from aioflags import Basis", {})


@pytest.mark.slow
def test_source_types_annotations_resolve() -> None:
    # typing.get_type_hints reads a class's annotations in the namespace of
    # its __module__: renaming it to a module that lacks the names breaks it.
    code = (
        "import typing, aioflags.sources\n"
        "names = ('Basis', 'Update', 'ChangeSet', 'Selector')\n"
        "for n in names:\n"
        "    cls = getattr(aioflags.sources, n)\n"
        "    assert cls.__module__ == 'aioflags.sources', cls\n"
        "    typing.get_type_hints(cls)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_callables_have_docstrings() -> None:
    for name in aioflags.__all__:
        obj = getattr(aioflags, name)
        if not isinstance(obj, type) or issubclass(obj, (enum.Enum, BaseException)):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_") or not (
                callable(member) or isinstance(member, (property, classmethod))
            ):
                continue
            assert inspect.getdoc(getattr(obj, attr)), f"{name}.{attr} has no docstring"


def test_version_is_pep440() -> None:
    assert re.fullmatch(
        r"\d+\.\d+\.\d+(\.dev\d+|a\d+|b\d+|rc\d+)?", aioflags.__version__
    )


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "aioflags" / "py.typed").exists()


def _readme_command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(
        rf"<!-- {marker} -->\s*```(?:bash|sh|console)?\n(.+?)\n```", text, re.S
    )
    assert match, f"README has no command marked {marker}"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = _readme_command("test-command")
    assert command in (ROOT / ".ci" / "run").read_text()


def test_readme_first_screen_has_both_commands_and_an_example() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:60])
    assert "<!-- quickstart-command -->" in first_screen
    assert "<!-- test-command -->" in first_screen
    assert "async with" in first_screen


def test_ci_script_is_strict() -> None:
    text = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in text
    assert "no tests ran" in text


def _quick() -> str:
    """The marker expression of ``nox -s quick`` (noxfile.py's QUICK)."""
    match = re.search(r'^QUICK = "(.+)"$', (ROOT / "noxfile.py").read_text(), re.M)
    assert match, "noxfile.py has no QUICK expression"
    return match.group(1)


def test_the_quick_run_is_named_in_the_readme_and_contributing() -> None:
    quick = _quick()
    assert "nox -s quick" in (ROOT / "README.md").read_text()
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    assert "nox -s quick" in contributing
    assert f'pytest -m "{quick}"' in contributing
    pyproject = (ROOT / "pyproject.toml").read_text()
    markers = re.findall(r"\b(?!not\b|or\b|and\b)\w+", quick)
    assert markers == ["slow", "redis", "chromium", "differential"]
    for marker in markers:
        assert f'"{marker}: ' in pyproject, f"{marker} is not registered"
        assert f"| `{marker}` |" in contributing, f"CONTRIBUTING.md omits {marker}"


def _collect(expression: str, *files: str) -> set[str]:
    """The test ids ``pytest -m expression`` selects in ``files``."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q"]
    out = subprocess.run(
        [*command, "-m", expression, *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line for line in out.splitlines() if "::" in line}


@pytest.mark.slow
def test_the_quick_run_leaves_out_the_tests_needing_redis_or_chromium() -> None:
    """tests/conftest.py marks them by what they use: a new one is left out too."""
    files = ("tests/test_redis_server.py", "tests/test_console_browser.py")
    # Not the test using the redis_server fixture, nor any of the browser's.
    assert _collect(_quick(), *files) == {
        "tests/test_redis_server.py::"
        "test_missing_redis_server_skips_outside_ci_and_fails_in_ci",
        "tests/test_redis_server.py::"
        "test_whether_there_is_a_redis_server_is_decided_once_per_session",
    }


def _extras() -> list[str]:
    """The extras pyproject.toml declares (read as text: tomllib is Python 3.11+)."""
    text = (ROOT / "pyproject.toml").read_text()
    table = text.split("[project.optional-dependencies]\n", 1)[1].split("\n[", 1)[0]
    return re.findall(r"^([a-z0-9-]+) = \[", table, re.M)


def test_the_readme_and_the_installation_page_name_every_extra() -> None:
    extras = _extras()
    assert {"service", "redis", "otel", "yaml"} <= set(extras)
    readme = (ROOT / "README.md").read_text()
    line = readme.split("\nExtras: ", 1)[1].split("\nThe install gives you", 1)[0]
    assert [e for e in extras if f"`{e}`" not in line] == []
    page = (ROOT / "docs" / "installation.md").read_text()
    assert [e for e in extras if f"\n| `{e}`" not in page] == []


def test_the_contract_readme_lists_the_leaves_the_last_harness_run_failed() -> None:
    """contract-tests/README.md's "Leaves that fail": no leaf known to pass.

    The last full harness run (issue 62, on a4622ce, persistence suites on)
    failed the seven v2 store leaves and the three TLS leaves listed here;
    ``can disable cache`` has passed since the cache-off change. The
    poll-interval leaf is a long-running one that run did not report.
    """
    text = (ROOT / "contract-tests" / "README.md").read_text(encoding="utf-8")
    section = text.split("## Leaves that fail, and why", 1)[1].split("\n## ", 1)[0]
    table = section.split("| leaf | line | why it fails |", 1)[1]
    leaves = re.findall(r"^\| `([^`]+)` \|", table, re.MULTILINE)
    assert leaves == [
        "…/daemon mode/ignores database initialization flag",
        "…/daemon mode/caches flag for duration/cache miss persists for TTL",
        "…/daemon mode/caches flag for duration/cache hit persists for TTL",
        "…/daemon mode/caches flag forever",
        "…/read-write/cache mode infinite/ignores direct database modifications",
        "…/read-write/cache mode ttl/ignores direct database modifications",
        "…/read-write/cache mode ttl/ignores dropped flags",
        "polling/interval/polling interval below minimum is clamped",
        "streaming/requests/invalid tls certificate/https-verify-peer",
        "polling/requests/invalid tls certificate/https-verify-peer",
        "events/requests/invalid tls certificate/https-verify-peer",
    ]
    assert "`…/daemon mode/can disable cache` has\npassed" in section


def test_96_small3_coverage_omits_the_generated_protobuf_modules_and_nothing_gone() -> (
    None
):
    """Each omit pattern of [tool.coverage.run] and [tool.coverage.report] is a pattern that matches a module (the generated module moved once: a stale path omits nothing), and every generated protobuf module is omitted by both."""
    import coverage
    from coverage.files import GlobMatcher, prep_patterns

    # Read and matched as coverage itself does: its configuration reader,
    # its glob rules (``*`` stops at a slash) on each module's absolute path.
    settings = coverage.Coverage(config_file=str(ROOT / "pyproject.toml"))
    modules = [str(p.resolve()) for p in (ROOT / "aioflags").rglob("*.py")]
    generated = [m for m in modules if m.endswith(("_pb2.py", "_pb2_grpc.py"))]
    assert generated, "no generated protobuf module under aioflags/"
    for section in ("run", "report"):
        patterns = settings.get_option(f"{section}:omit")
        assert isinstance(patterns, list) and patterns, (
            f"[tool.coverage.{section}] has no omit"
        )
        for pattern in patterns:
            # (a relative one is made absolute from the current folder: a
            # subprocess run elsewhere measured the module, and reported it)
            assert pattern.startswith("*"), (
                f"[tool.coverage.{section}] omit {pattern!r}: a pattern, not a path"
            )
            one = GlobMatcher(prep_patterns([pattern]))
            assert any(one.match(m) for m in modules), (
                f"[tool.coverage.{section}] omit {pattern!r} matches no module"
            )
        every = GlobMatcher(prep_patterns(patterns))
        assert [m for m in generated if not every.match(m)] == [], (
            f"[tool.coverage.{section}] omit misses a generated protobuf module"
        )
