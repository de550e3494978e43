"""``aioflags cleanup`` on real trees: never a lost line, never a half-applied run (issue 84).

Each test names the finding it pins (issue 84's list, and the contract's
"Safe on real trees" in docs/lifecycle-tools.md). Every case runs on real
files in ``tmp_path``, through the command line (``main``) or its driver
where a test must act between the reads and the writes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aioflags.__main__ import main
from aioflags._lifecycle import _evidence
from aioflags._lifecycle._cleanup_run import cleanup

FLAGS = {
    "flags": {
        "new-checkout": {
            "on": True,
            "variations": [True, False],
            "offVariation": 1,
            "fallthrough": {"variation": 0},
        },
        "limit": {
            "on": True,
            "variations": [10, 20],
            "offVariation": 0,
            "fallthrough": {"variation": 1},
        },
        "color": {
            "on": True,
            "variations": ["green", "blue"],
            "offVariation": 0,
            "fallthrough": {"variation": 0},
        },
    }
}

#: A module with one site of new-checkout: a folding if/else.
SITE = """\
import aioflags


async def steps(client: aioflags.Client, ctx: aioflags.Context) -> int:
    if await client.bool_variation("new-checkout", ctx, False):
        return 3
    return 5
"""
SITE_AFTER = """\
import aioflags


async def steps(client: aioflags.Client, ctx: aioflags.Context) -> int:
    return 3
"""


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project: the flag file, and ``app/`` with one module that evaluates new-checkout."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flags.json").write_text(json.dumps(FLAGS))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "site.py").write_text(SITE)
    return tmp_path


def _run(*args: str) -> int:
    return main(["cleanup", "new-checkout", "--keep", "true", *args])


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# ---------------------------------------------------------------- evidence
def test_no_evidence_refuses_and_changes_nothing(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No evidence, no refusal: without --evidence or --flags it refuses (exit 1)."""
    before = _snapshot(tree)
    assert main(["cleanup", "color", "--keep", '"purple"', "app"]) == 1
    err = capsys.readouterr().err
    assert "refused: no evidence of what 'color' serves; nothing changed" in err
    assert "--force to rewrite anyway" in err
    assert _snapshot(tree) == before
    # --force goes without, and says so.
    assert _run("app", "--force") == 0
    assert "--force: rewriting 'new-checkout' as true with no evidence" in (
        capsys.readouterr().out
    )
    assert (tree / "app" / "site.py").read_text() == SITE_AFTER


@pytest.mark.parametrize(
    ("flag", "keep", "says"),
    [
        ("color", '"purple"', '--keep "purple" is not one of the variations of'),
        ("color", "3", "--keep 3 is not one of the variations of 'color'"),
        ("new-chekout", "true", "no flag 'new-chekout' (did you mean 'new-checkout'?)"),
    ],
)
def test_keep_must_be_a_variation_of_the_flag(
    tree: Path, capsys: pytest.CaptureFixture[str], flag: str, keep: str, says: str
) -> None:
    """No evidence, no refusal: ``--keep '"purple"'``, ``--keep 3`` for a string flag, a misspelt key (exit 2)."""
    before = _snapshot(tree)
    assert main(["cleanup", flag, "--keep", keep, "app", "--flags", "flags.json"]) == 2
    assert says in capsys.readouterr().err
    assert _snapshot(tree) == before


def test_keep_is_written_as_the_variation_is(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--keep 20.0`` on an int flag writes ``20``, not ``20.0``, into an ``int`` site."""
    (tree / "app" / "limit.py").write_text(
        "def limit(client, ctx):\n    return client.int_variation('limit', ctx, 10)\n"
    )
    argv = ["cleanup", "limit", "--keep", "20.0", "app", "--flags", "flags.json"]
    assert main(argv) == 0
    assert (tree / "app" / "limit.py").read_text() == (
        "def limit(client, ctx):\n    return 20\n"
    )
    assert "rewrote 1 sites" in capsys.readouterr().out


def test_keep_from_usage_evidence_is_written_as_served(tree: Path) -> None:
    """``--keep 20.0`` with usage evidence that served ``20``: written ``20``."""
    (tree / "app" / "limit.py").write_text(
        "def limit(client, ctx):\n    return client.int_variation('limit', ctx, 10)\n"
    )
    (tree / "usage.json").write_text(json.dumps(_usage({"limit": _flag([(20, 7)])})))
    argv = ["cleanup", "limit", "--keep", "20.0", "app", "--evidence", "usage.json"]
    assert main(argv) == 0
    assert "return 20\n" in (tree / "app" / "limit.py").read_text()


def _usage(flags: dict[str, object]) -> dict[str, object]:
    return {
        "available": True,
        "reason": None,
        "counting": True,
        "since": "2026-11-01T00:00:00+00:00",
        "flags": flags,
        "never_evaluated": [],
    }


def _flag(
    served: list[tuple[object, int]], evaluations: int | None = None
) -> dict[str, object]:
    return {
        "key": "new-checkout",
        "evaluations": sum(n for _, n in served)
        if evaluations is None
        else evaluations,
        "variations": [{"value": v, "evaluations": n} for v, n in served],
        "defaults": 0,
        "last_evaluated": "2026-11-20T00:00:00+00:00",
        "overridden": 0,
    }


def test_usage_counting_evaluations_but_no_values_is_no_evidence(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Usage evidence with evaluations but no served values does not pass the gate."""
    (tree / "usage.json").write_text(
        json.dumps(_usage({"new-checkout": _flag([], evaluations=40)}))
    )
    before = _snapshot(tree)
    assert _run("app", "--evidence", "usage.json") == 1
    out = capsys.readouterr().out
    assert "'new-checkout' was evaluated 40 times and the file says what 0" in out
    assert _snapshot(tree) == before
    # Some accounted for, not all: refused too.
    (tree / "usage.json").write_text(
        json.dumps(_usage({"new-checkout": _flag([(True, 10)], evaluations=40)}))
    )
    assert _run("app", "--evidence", "usage.json") == 1
    assert "evaluated 40 times and the file says what 10" in capsys.readouterr().out
    # All accounted for: through.
    (tree / "usage.json").write_text(
        json.dumps(_usage({"new-checkout": _flag([(True, 40)])}))
    )
    assert _run("app", "--evidence", "usage.json") == 0


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (
            '{"flags": {"new-checkout": ' + _nested(100_000) + '}, "covered": 1}',
            "usage.json: not JSON: JSON nested too deep",
        ),
        (
            '{"flags": {"new-checkout": ' + _nested(150) + '}, "covered": 1}',
            "nested deeper than 100 levels",
        ),
        (
            '{"flags": {"new-checkout": {"branches": []}}, "covered": 1}',
            "not a flag coverage report: flags/new-checkout/branches is not an object",
        ),
        (
            '{"flags": {"new-checkout": {"branches": {"off": "3"}}}, "covered": 1}',
            "flags/new-checkout/branches/off is not a count",
        ),
        (
            '{"flags": [], "covered": 1}',
            "not a flag coverage report: flags is not an object",
        ),
        (
            '{"available": true, "flags": {"new-checkout": {"evaluations": 3, '
            '"variations": {"true": 3}}}}',
            "not client.usage().to_dict(): flags/new-checkout/variations is not a list",
        ),
        (
            '{"available": true, "flags": {"new-checkout": {"evaluations": 3, '
            '"variations": [{"value": true, "evaluations": -1}]}}}',
            "flags/new-checkout/variations/0/evaluations is not a count",
        ),
        ('{"flags": {}, "covered": 1, "x": "\udc00"}', "usage.json: not JSON"),
    ],
)
def test_malformed_evidence_is_a_usage_error(
    tree: Path, capsys: pytest.CaptureFixture[str], content: str, says: str
) -> None:
    """Deeply nested or wrongly typed evidence JSON: exit 2 with a message, no traceback."""
    (tree / "usage.json").write_bytes(content.encode("utf-8", "surrogatepass"))
    before = _snapshot(tree)
    assert _run("app", "--evidence", "usage.json") == 2
    err = capsys.readouterr().err
    assert says in err, err
    assert err.count("\n") == 1
    assert _snapshot(tree) == before


def test_huge_evidence_is_a_usage_error(
    tree: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Huge evidence JSON: exit 2 with a message, read no further than the limit."""
    monkeypatch.setattr(_evidence, "MAX_EVIDENCE_BYTES", 1024)
    (tree / "usage.json").write_text(json.dumps(_usage({"x": "y" * 2000})))
    assert _run("app", "--evidence", "usage.json") == 2
    assert "usage.json: larger than" in capsys.readouterr().err


def test_a_misspelt_key_with_no_site_says_so(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt key with no evidence: "no call site evaluates", with did-you-mean (exit 0: nothing to do, as a second run)."""
    before = _snapshot(tree)
    argv = ["cleanup", "new-chekout", "--keep", "true", "app", "--force"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "rewrote 0 sites, left 0, 0 files touched" in captured.out
    assert (
        "no call site evaluates 'new-chekout' (did you mean 'new-checkout'?)"
        in captured.err
    )
    assert _snapshot(tree) == before
    # A key nothing resembles: nothing to do, exit 0, said.
    assert main(["cleanup", "zzz", "--keep", "true", "app", "--force"]) == 0
    assert "no call site evaluates 'zzz'\n" in capsys.readouterr().err


# ------------------------------------------------------- all or nothing
@pytest.mark.slow
@pytest.mark.timeout(300)  # (2,100 files: seconds alone, a minute on a busy machine)
def test_an_edit_saved_during_the_run_survives(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cleanup overwrites an edit saved while it runs: on 2,000+ files it survives, listed, exit 3."""
    app = tree / "app"
    for n in range(2_100):
        package = app / f"pkg{n // 100}"
        package.mkdir(exist_ok=True)
        if n % 100 == 0:
            (package / "__init__.py").write_text("")
        # every tenth module evaluates the flag; the rest never name it
        (package / f"m{n}.py").write_text(SITE if n % 10 == 0 else f"X = {n}\n")
    edited = app / "pkg10" / "m1000.py"
    saved = SITE.replace("return 5", "return 5  # the user's edit, saved mid-run")

    def transformed(path: Path) -> None:
        # the user saves the file once the command has read and rewritten
        # the first half of the tree in memory (before any write)
        if path.name == "m1500.py":
            edited.write_text(saved)

    before = _snapshot(tree)
    status = cleanup(
        "new-checkout",
        "true",
        [Path("app")],
        evidence=[],
        flag_files=[Path("flags.json")],
        force=False,
        dry_run=False,
        transformed=transformed,
    )
    assert status == 3
    out = capsys.readouterr().out
    assert edited.read_text() == saved
    assert (
        f"file left as it was: {edited.relative_to(tree)}: changed since it was "
        "read (its bytes, mode or links): left as it is (run the command again)"
    ) in out
    assert out.splitlines()[-1] == (
        "rewrote 210 sites, left 0, 210 files touched, 1 left as they were "
        "(listed above)"
    )
    after = _snapshot(tree)
    changed = {name for name in before if before[name] != after[name]}
    assert len(changed) == 211  # the 210 rewritten and the edit
    for name in changed - {str(edited.relative_to(tree))}:
        assert after[name].decode() == SITE_AFTER
    # A second run takes the edited file too, and only it.
    assert _run("app", "--flags", "flags.json") == 0
    assert "rewrote 1 sites" in capsys.readouterr().out
    assert "# the user's edit" not in edited.read_text()


#: Files libcst cannot parse or walk, each with a site of the flag (so it is
#: read): the issue's shapes.
UNWALKABLE = {
    "terms.py": "X = "
    + " + ".join(["1"] * 600)
    + "\n"
    + SITE.replace("import aioflags\n", ""),
    "elifs.py": SITE
    + "def f(x):\n    if x == 0:\n        return 0\n"
    + "".join(f"    elif x == {n}:\n        return {n}\n" for n in range(1, 400)),
    "strings.py": 'S = "new-checkout" ' + '"a" ' * 1000 + "\n" + SITE,
    "syntax.py": SITE + "def broken(:\n",
}


@pytest.mark.parametrize("name", [*UNWALKABLE, "latin1.py"])
def test_a_file_libcst_cannot_walk_is_listed_and_the_rest_rewritten(
    tree: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """One file libcst cannot walk (600 terms, 400 elifs, 1,000 strings, a Latin-1 comment without cookie, a syntax error): listed, no traceback, the rest rewritten, exit 3."""
    app = tree / "app"
    (app / "a_first.py").write_text(SITE)
    (app / "z_last.py").write_text(SITE)
    bad = app / name
    if name == "latin1.py":
        bad.write_bytes(b"# caf\xe9 (Latin-1, no coding cookie)\n" + SITE.encode())
    else:
        bad.write_text(UNWALKABLE[name])
    data = bad.read_bytes()
    assert _run("app", "--flags", "flags.json") == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    (line,) = [
        line
        for line in captured.out.splitlines()
        if line.startswith("file left as it was:")
    ]
    assert line.startswith(f"file left as it was: app/{name}: ")
    reason = line.split(": ", 2)[2]
    assert reason.startswith(("cannot parse it", "cannot read it", "nested too deep"))
    assert bad.read_bytes() == data
    for good in ("a_first.py", "site.py", "z_last.py"):
        assert (app / good).read_text() == SITE_AFTER


def test_a_file_with_a_coding_cookie_is_rewritten_in_its_encoding(
    tree: Path,
) -> None:
    """An encoding with its cookie: read and written back in that encoding."""
    source = b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + SITE.encode()
    (tree / "app" / "site.py").write_bytes(source)
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "site.py").read_bytes() == (
        b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + SITE_AFTER.encode()
    )


# ------------------------------------------------------------ odd files
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_py_is_skipped_without_hanging(tree: Path) -> None:
    """A FIFO named ``x.py`` hangs it: skipped and listed (a subprocess, bounded in time)."""
    os.mkfifo(tree / "app" / "x.py")
    run = subprocess.run(
        [
            *(sys.executable, "-m", "aioflags", "cleanup", "new-checkout"),
            *("--keep", "true", "app", "--flags", "flags.json"),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert "file left as it was: app/x.py: a FIFO, not a file: skipped" in run.stdout
    assert (tree / "app" / "site.py").read_text() == SITE_AFTER
    assert stat.S_ISFIFO(os.lstat(tree / "app" / "x.py").st_mode)


def test_a_link_to_dev_zero_is_skipped(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link to ``/dev/zero`` named ``y.py`` grew it to 4.2 GB: skipped, never read."""
    (tree / "app" / "y.py").symlink_to("/dev/zero")
    assert _run("app", "--flags", "flags.json") == 3
    out = capsys.readouterr().out
    assert (
        "file left as it was: app/y.py: a symlink to a device, not a file: skipped"
        in out
    )
    assert (tree / "app" / "site.py").read_text() == SITE_AFTER


def test_a_symlink_inside_is_rewritten_at_its_target_and_stays_a_link(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A symlinked file became a regular file: the target is rewritten, the link stays a link."""
    (tree / "app" / "alias.py").symlink_to("site.py")
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "alias.py").is_symlink()
    assert os.readlink(tree / "app" / "alias.py") == "site.py"
    assert (tree / "app" / "site.py").read_text() == SITE_AFTER
    # (one file, reached twice: rewritten once)
    assert "rewrote 1 sites, left 0, 1 files touched" in capsys.readouterr().out


def test_a_symlink_outside_the_paths_is_listed_and_its_target_untouched(
    tree: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A symlink to a file outside the paths named: listed, the target left byte for byte."""
    outside = tmp_path_factory.mktemp("elsewhere") / "theirs.py"
    outside.write_text(SITE)
    (tree / "app" / "theirs.py").symlink_to(outside)
    assert _run("app", "--flags", "flags.json") == 3
    out = capsys.readouterr().out
    assert f"file left as it was: app/theirs.py: a symlink to {outside}, outside" in out
    assert outside.read_text() == SITE
    assert (tree / "app" / "theirs.py").is_symlink()
    assert (tree / "app" / "site.py").read_text() == SITE_AFTER
    # Named, it is inside the paths: rewritten at its target.
    assert _run("app", str(outside), "--flags", "flags.json") == 0
    assert outside.read_text() == SITE_AFTER


def test_a_read_only_file_is_left_and_listed(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Read-only files rewritten without a word: left as they are, listed, exit 3."""
    site = tree / "app" / "site.py"
    site.chmod(0o444)
    assert _run("app", "--flags", "flags.json") == 3
    out = capsys.readouterr().out
    assert "file left as it was: app/site.py: read-only: left as it is" in out
    assert site.read_text() == SITE
    assert stat.S_IMODE(site.stat().st_mode) == 0o444


def test_file_modes_are_kept(tree: Path) -> None:
    """The file's mode survives the rewrite (an executable script stays one)."""
    site = tree / "app" / "site.py"
    site.chmod(0o751)
    assert _run("app", "--flags", "flags.json") == 0
    assert site.read_text() == SITE_AFTER
    assert stat.S_IMODE(site.stat().st_mode) == 0o751
    assert not list((tree / "app").glob(".*.aioflags-tmp"))


def test_hard_links_are_not_split(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hard links split: a file with other links is left and listed, both names the same file."""
    site = tree / "app" / "site.py"
    other = tree / "app" / "other.py"
    os.link(site, other)
    assert _run("app", "--flags", "flags.json") == 3
    out = capsys.readouterr().out
    assert "has 2 hard links, which a rewrite would split: left as it is" in out
    assert site.read_text() == other.read_text() == SITE
    assert os.stat(site).st_ino == os.stat(other).st_ino


# ------------------------------------------------------ what it made unused
APP_UTIL = '''\
def artificial_delay() -> None:
    """A helper only the old checkout uses."""


def shared() -> int:
    return 1
'''
APP_KEYS = 'NEW_CHECKOUT = "new-checkout"\n'
VIEWS = '''\
"""Views."""

import json  # (unused before the rewrite: stays)

import aioflags
from app.keys import NEW_CHECKOUT
from app.util import artificial_delay, shared


async def checkout(client: aioflags.Client, ctx: aioflags.Context) -> int:
    if not await client.bool_variation(NEW_CHECKOUT, ctx, False):
        artificial_delay()
        return 5
    return 3 + shared()
'''
VIEWS_AFTER = '''\
"""Views."""

import json  # (unused before the rewrite: stays)

import aioflags
from app.util import shared


async def checkout(client: aioflags.Client, ctx: aioflags.Context) -> int:
    return 3 + shared()
'''


def test_imports_the_rewrite_made_unused_go(tree: Path) -> None:
    """It leaves what it made unused: a helper's import and the key constant's import go, nothing else."""
    app = tree / "app"
    (app / "__init__.py").write_text("")
    (app / "util.py").write_text(APP_UTIL)
    (app / "keys.py").write_text(APP_KEYS)
    (app / "views.py").write_text(VIEWS)
    assert _run("app", "--flags", "flags.json") == 0
    assert (app / "views.py").read_text() == VIEWS_AFTER
    assert (app / "keys.py").read_text() == APP_KEYS  # (the constant stays)
    assert (app / "util.py").read_text() == APP_UTIL
    # What it wrote passes ruff's unused-import check where the input did
    # (json's import was unused before: the only finding, as before).
    ruff = subprocess.run(
        [
            *(sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated"),
            *("--select", "F401,F811,F841", "--output-format", "concise", "app"),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [line for line in ruff.stdout.splitlines() if line.startswith("app")]
    assert findings == ["app/views.py:3:8: F401 [*] `json` imported but unused"], (
        ruff.stdout
    )


def test_a_packages_init_keeps_its_imports(tree: Path) -> None:
    """An ``__init__.py``'s imports are its interface: they stay, though the rewrite stopped using them."""
    app = tree / "app"
    (app / "util.py").write_text(APP_UTIL)
    (app / "keys.py").write_text(APP_KEYS)
    (app / "__init__.py").write_text(VIEWS)
    assert _run("app", "--flags", "flags.json") == 0
    after = (app / "__init__.py").read_text()
    assert "from app.keys import NEW_CHECKOUT\n" in after
    assert "from app.util import artificial_delay, shared\n" in after
    assert "return 3 + shared()" in after
    assert "artificial_delay()\n" not in after


def test_a_block_the_import_removal_empties_says_pass(tree: Path) -> None:
    """An ``if TYPE_CHECKING:`` block whose only import went is left with ``pass``: the module parses."""
    (tree / "app" / "typed.py").write_text(
        textwrap.dedent(
            """\
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from app.util import Delay


            def f(client, ctx) -> None:
                if not client.bool_variation("new-checkout", ctx, False):
                    x: Delay = None
                    print(x)
            """
        )
    )
    assert _run("app", "--flags", "flags.json") == 0
    after = (tree / "app" / "typed.py").read_text()
    compile(after, "typed.py", "exec")
    assert "from app.util import Delay" not in after
    assert "if TYPE_CHECKING:\n    pass\n" in after


def test_an_import_another_file_takes_from_the_module_stays(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An import a test patches through the module (``patch("app.views.ld_client")``), or another module imports from it, stays."""
    app = tree / "app"
    (app / "__init__.py").write_text("")
    (app / "util.py").write_text(APP_UTIL)
    (app / "keys.py").write_text(APP_KEYS)
    (app / "views.py").write_text(VIEWS)
    (tree / "tests").mkdir()
    (tree / "tests" / "test_views.py").write_text(
        "from unittest.mock import patch\n\n\n"
        "@patch('app.views.artificial_delay')\n"
        "def test_checkout(delay): ...\n"
    )
    (tree / "app" / "other.py").write_text(
        "from app.views import (\n    checkout,\n    NEW_CHECKOUT,\n)\n"
    )
    assert _run(".", "--flags", "flags.json") == 0
    after = (app / "views.py").read_text()
    assert "from app.keys import NEW_CHECKOUT\n" in after
    assert "from app.util import artificial_delay, shared\n" in after
    assert "if not await" not in after
    # Each is listed once, with the file that takes it.
    left = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("left:")
    ]
    assert left == [
        "left: app/views.py:6: the import of NEW_CHECKOUT is unused now, but "
        "app/other.py takes it from this module (a mock.patch target?): left; "
        "remove both by hand",
        "left: app/views.py:7: the import of artificial_delay is unused now, but "
        "tests/test_views.py takes it from this module (a mock.patch target?): "
        "left; remove both by hand",
    ]
    # Named by another module of the same name elsewhere, it goes.
    (app / "views.py").write_text(VIEWS)
    (tree / "tests" / "test_views.py").write_text(
        "from unittest.mock import patch\n\n\n"
        "@patch('other.views.artificial_delay')\n"
        "def test_checkout(delay): ...\n"
    )
    (app / "other.py").write_text("")
    assert _run(".", "--flags", "flags.json") == 0
    assert (app / "views.py").read_text() == VIEWS_AFTER


def test_a_receiver_only_the_flag_used_goes(tree: Path) -> None:
    """A local ``flags = Flags(client)`` or ``snapshot = client.snapshot()`` used only by the flag goes (no unused variable left); one used otherwise stays; a method of that name on another class is not the flag's."""
    (tree / "app" / "accessors.py").write_text(
        textwrap.dedent(
            """\
            from app.flags import Flags


            class Local:
                def __init__(self, client):
                    print("an effect")

                def new_checkout(self, ctx):
                    return True


            async def only_flag(client, ctx):
                flags = Flags(client)
                snapshot = client.snapshot()
                if snapshot.variation("new-checkout", ctx, False):
                    return await flags.new_checkout(ctx)
                return False


            async def used_otherwise(client, ctx):
                flags = Flags(client)
                print(flags)
                return await flags.new_checkout(ctx)


            def local_class(client, ctx):
                mine = Local(client)
                return mine.new_checkout(ctx)
            """
        )
    )
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "accessors.py").read_text() == textwrap.dedent(
        """\
        from app.flags import Flags


        class Local:
            def __init__(self, client):
                print("an effect")

            def new_checkout(self, ctx):
                return True


        async def only_flag(client, ctx):
            return True


        async def used_otherwise(client, ctx):
            flags = Flags(client)
            print(flags)
            return True


        def local_class(client, ctx):
            mine = Local(client)
            return mine.new_checkout(ctx)
        """
    )


def test_a_block_whose_first_statements_went_starts_without_a_blank_line(
    tree: Path,
) -> None:
    """The shape of a real Django view: a guard on the flag first, then a blank line; the body starts at once after the guard goes."""
    (tree / "app" / "view.py").write_text(
        textwrap.dedent(
            """\
            def view(client, request):
                on = client.variation("new-checkout", {"key": "anonymous"}, False)
                if not on:
                    return 404

                if request.method == "POST":
                    return 200
                return 400
            """
        )
    )
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "view.py").read_text() == textwrap.dedent(
        """\
        def view(client, request):
            if request.method == "POST":
                return 200
            return 400
        """
    )


def test_a_condition_that_may_have_effects_beside_the_flag_is_listed(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``if X() and not FLAG`` (a real middleware's shape): X still runs, so the ``if`` stays, listed; a name beside the flag folds."""
    (tree / "app" / "middleware.py").write_text(
        textwrap.dedent(
            """\
            def check(client, request):
                if request.path.startswith("/ref/") and not client.variation(
                    "new-checkout", {"key": "anonymous"}, False
                ):
                    raise LookupError(request.path)
                if request.user and not client.variation("new-checkout", {}, False):
                    raise LookupError("user")
                while request.more and not client.variation("new-checkout", {}, False):
                    request.next()
                else:
                    request.done()
                return request
            """
        )
    )
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "middleware.py").read_text() == textwrap.dedent(
        """\
        def check(client, request):
            if request.path.startswith("/ref/") and False:
                raise LookupError(request.path)
            request.done()
            return request
        """
    )
    out = capsys.readouterr().out
    assert (
        "left: app/middleware.py:2: the condition still evaluates what is beside "
        "the flag's value (it may have effects): fold it by hand"
    ) in out
    assert "rewrote 4 sites, left 1, 2 files touched" in out  # (site.py too)


def test_an_accessor_renamed_with_name_is_found(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """codegen's ``--name KEY=IDENT``: cleanup finds ``flags.IDENT(ctx)`` through the generated module among the paths."""
    assert (
        main(
            [
                *("codegen", "flags.json", "-o", "app/flags.py"),
                *("--name", "new-checkout=checkout_v2"),
            ]
        )
        == 0
    )
    (tree / "app" / "use.py").write_text(
        textwrap.dedent(
            """\
            from app.flags import Flags


            async def use(client, ctx):
                if await Flags(client).checkout_v2(ctx):
                    return "new"
                return "old"
            """
        )
    )
    generated = (tree / "app" / "flags.py").read_bytes()
    capsys.readouterr()
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "use.py").read_text() == textwrap.dedent(
        """\
        async def use(client, ctx):
            return "new"
        """
    )
    assert (tree / "app" / "flags.py").read_bytes() == generated
    assert "rewrote 2 sites" in capsys.readouterr().out


def test_a_file_name_that_is_not_text_is_printed_escaped(tree: Path) -> None:
    """A file whose name holds a byte that is not UTF-8: rewritten, its name printed escaped, no traceback."""
    name = os.fsdecode(b"caf\xe9.py")
    (tree / "app" / name).write_text(SITE)
    run = subprocess.run(
        [
            *(sys.executable, "-m", "aioflags", "cleanup", "new-checkout"),
            *("--keep", "true", "app", "--flags", "flags.json", "--dry-run"),
        ],
        cwd=tree,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert b"--- app/caf\\udce9.py\n" in run.stdout
    assert b"Traceback" not in run.stderr
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / name).read_text() == SITE_AFTER
