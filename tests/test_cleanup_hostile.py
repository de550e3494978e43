"""``aioflags cleanup`` against a hostile review's findings (issue 84's second pass).

Each test reproduces one way the review made cleanup damage a file, change
behaviour beyond the flag, print a traceback or hang, leave code ruff
flags, or exit with a status that lies; its docstring says which. Real
files in ``tmp_path``, through the command line.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aioflags.__main__ import main
from aioflags._lifecycle import _cleanup_run

FLAGS = {
    "flags": {
        "new-checkout": {
            "on": True,
            "variations": [True, False],
            "offVariation": 1,
            "fallthrough": {"variation": 0},
        }
    }
}
SITE = """\
def f(client, ctx):
    if client.bool_variation("new-checkout", ctx, False):
        return 1
    return 2
"""
SITE_AFTER = "def f(client, ctx):\n    return 1\n"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flags.json").write_text(json.dumps(FLAGS))
    (tmp_path / "app").mkdir()
    return tmp_path


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _run(*args: str, key: str = "new-checkout", keep: str = "true") -> int:
    return main(["cleanup", key, f"--keep={keep}", *args])


# ------------------------------------------------------------ file damage
def test_a_mode_or_link_changed_during_the_run_is_not_undone(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile A1: a chmod or a new hard link made while it runs survives; the file is left, listed, exit 3."""
    for name in ("m1.py", "m2.py", "m3.py"):
        (tree / "app" / name).write_text(SITE)
    outside = tree / "linked.py"

    def transformed(path: Path) -> None:
        if path.name == "m3.py":  # (every file read and rewritten in memory)
            (tree / "app" / "m1.py").chmod(0o600)
            os.link(tree / "app" / "m2.py", outside)

    status = _cleanup_run.cleanup(
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
    assert "file left as it was: app/m1.py: changed since it was read" in out
    assert "file left as it was: app/m2.py: changed since it was read" in out
    assert stat.S_IMODE((tree / "app" / "m1.py").stat().st_mode) == 0o600
    assert (tree / "app" / "m1.py").read_text() == SITE
    assert (tree / "app" / "m2.py").read_text() == outside.read_text() == SITE
    assert (tree / "app" / "m3.py").read_text() == SITE_AFTER


def test_a_comment_in_an_import_statement_is_never_lost(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile A2: a comment on a kept import name (or a # noqa) is not deleted: the import stays, listed."""
    _write(
        tree,
        {
            "app/a.py": """\
            from legacy import (
                keep_me,  # pinned: see issue 12
                old,
            )


            def f(client, ctx):
                keep_me()
                if client.bool_variation("new-checkout", ctx, False):
                    return 1
                return old()
            """
        },
    )
    assert _run("app", "--flags", "flags.json") == 0
    after = (tree / "app" / "a.py").read_text()
    assert "    keep_me,  # pinned: see issue 12\n    old,\n" in after
    assert "return old()" not in after
    assert (
        "left: app/a.py:3: the import of old is unused now, but its import "
        "statement holds a comment"
    ) in capsys.readouterr().out


def test_an_import_marked_noqa_stays(tree: Path) -> None:
    """Hostile B7: ``import app_signals  # noqa: F401`` (imported for its effect) stays though dead code used it."""
    _write(
        tree,
        {
            "app/models.py": """\
            import app_signals  # noqa: F401  (connects the handlers on import)


            def save(client, ctx, obj):
                if client.bool_variation("new-checkout", ctx, False):
                    return obj
                app_signals.legacy_saved(obj)
                return obj
            """
        },
    )
    assert _run("app", "--flags", "flags.json") == 0
    after = (tree / "app" / "models.py").read_text()
    assert after.startswith("import app_signals  # noqa: F401")
    assert "legacy_saved" not in after


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_while_writing_leaves_no_temporary_file(tree: Path) -> None:
    """Hostile A3: SIGTERM (``timeout``, a CI job cancelled) during the write removes the temporary file."""
    (tree / "app" / "a.py").write_text(SITE)
    script = tree / "term.py"
    script.write_text(
        textwrap.dedent(
            """\
            import os, signal, sys
            real = os.fsync

            def fsync(fd):
                os.kill(os.getpid(), signal.SIGTERM)  # (arrives inside the write)
                real(fd)

            os.fsync = fsync
            from aioflags.__main__ import main
            sys.exit(main(sys.argv[1:]))
            """
        )
    )
    run = subprocess.run(
        [
            *(sys.executable, str(script), "cleanup", "new-checkout"),
            *("--keep", "true", "app", "--flags", "flags.json"),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0
    assert sorted(p.name for p in (tree / "app").iterdir()) == ["a.py"]
    assert (tree / "app" / "a.py").read_text() == SITE
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # (this process's own)


def test_a_symlink_into_a_skipped_directory_is_outside(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile A4: a link to a file under ``.venv`` (which the walk skips) is not followed into it."""
    vendored = tree / ".venv" / "lib" / "dep" / "mod.py"
    vendored.parent.mkdir(parents=True)
    vendored.write_text(SITE)
    (tree / "app" / "vendored.py").symlink_to(vendored)
    assert _run(".", "--flags", "flags.json") == 3
    assert vendored.read_text() == SITE
    assert "app/vendored.py: a symlink to" in capsys.readouterr().out


# ------------------------------------------------ behaviour beyond the flag
def test_another_flags_constant_of_the_same_name_is_not_the_key(tree: Path) -> None:
    """Hostile B1: ``from theme_flags import FLAG_KEY`` ("dark-mode") is not checkout_flags' ``FLAG_KEY``; a local of that name shadows the constant."""
    _write(
        tree,
        {
            "app/__init__.py": "",
            "app/checkout_flags.py": 'FLAG_KEY = "new-checkout"\n',
            "app/theme_flags.py": 'FLAG_KEY = "dark-mode"\n',
            "app/theme.py": """\
            from app.theme_flags import FLAG_KEY


            def theme(client, ctx):
                if client.bool_variation(FLAG_KEY, ctx, False):
                    return "dark"
                return "light"
            """,
            "app/checkout.py": """\
            from .checkout_flags import FLAG_KEY

            FLAG = "new-checkout"


            def checkout(client, ctx):
                if client.bool_variation(FLAG_KEY, ctx, False):
                    return "new"
                return "old"


            def other(client, ctx, FLAG="dark-mode"):
                return client.bool_variation(FLAG, ctx, False)
            """,
        },
    )
    theme = (tree / "app" / "theme.py").read_text()
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "theme.py").read_text() == theme
    after = (tree / "app" / "checkout.py").read_text()
    assert 'def checkout(client, ctx):\n    return "new"\n' in after
    assert "return client.bool_variation(FLAG, ctx, False)" in after


def test_a_method_named_like_the_accessor_on_another_object_is_not_the_flag(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile B2: ``mailer.send_email(user)`` is not the ``send-email`` flag's accessor: its effect stays."""
    _write(
        tree,
        {
            "app/signup.py": """\
            def signup(mailer, user):
                mailer.send_email(user)
                return user
            """,
            "app/uses.py": """\
            from app.flags import Flags


            async def unknown(holder, ctx):
                return await holder.flags.send_email(ctx)


            async def annotated(flags: Flags, ctx):
                return await flags.send_email(ctx)
            """,
        },
    )
    signup = (tree / "app" / "signup.py").read_text()
    assert _run("app", "--force", key="send-email") == 0
    assert (tree / "app" / "signup.py").read_text() == signup
    after = (tree / "app" / "uses.py").read_text()
    assert "return await holder.flags.send_email(ctx)" in after
    assert "async def annotated(flags: Flags, ctx):\n    return True\n" in after
    assert (
        "left: app/uses.py:5: send_email(): cannot tell that its receiver is "
        "codegen's Flags"
    ) in capsys.readouterr().out


def test_a_generator_stays_a_generator(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile B3: a fold that would drop a function's last ``yield`` leaves the file, listed (exit 3)."""
    _write(
        tree,
        {
            "app/gen.py": """\
            def items(client, ctx):
                if client.bool_variation("new-checkout", ctx, False):
                    return
                yield 1
            """
        },
    )
    before = (tree / "app" / "gen.py").read_text()
    assert _run("app", "--flags", "flags.json") == 3
    assert (tree / "app" / "gen.py").read_text() == before
    assert "would take away items() yields" in capsys.readouterr().out


def test_a_deleted_flag_in_the_flag_file_refuses(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile B4: ``"deleted": true`` serves the caller's default, not VALUE: refused (exit 1)."""
    flags = json.loads(json.dumps(FLAGS))
    flags["flags"]["new-checkout"]["deleted"] = True
    (tree / "flags.json").write_text(json.dumps(flags))
    (tree / "app" / "a.py").write_text(SITE)
    assert _run("app", "--flags", "flags.json") == 1
    assert "'new-checkout' is deleted" in capsys.readouterr().out
    assert (tree / "app" / "a.py").read_text() == SITE


def test_an_import_patched_by_object_or_star_imported_stays(tree: Path) -> None:
    """Hostile B5: ``patch.object(views, "helper")`` and ``from app.views import *`` keep ``helper``'s import."""
    views = """\
    from app.helpers import helper


    def render(client, ctx):
        if client.bool_variation("new-checkout", ctx, False):
            return "new"
        return helper()
    """
    for other in (
        "from unittest import mock\nimport app.views as views\n\n"
        "def test_it():\n    with mock.patch.object(views, 'helper'): ...\n",
        "from app.views import *\n\n\ndef legacy():\n    return helper()\n",
    ):
        _write(tree, {"app/__init__.py": "", "app/views.py": views})
        (tree / "app" / "other.py").write_text(other)
        assert _run("app", "--flags", "flags.json") == 0
        after = (tree / "app" / "views.py").read_text()
        assert "from app.helpers import helper\n" in after
        assert "return helper()" not in after


def test_a_function_that_reads_its_locals_keeps_its_variables(tree: Path) -> None:
    """Hostile B6: ``template.format(**locals())`` still finds ``on``."""
    _write(
        tree,
        {
            "app/r.py": """\
            def render(client, ctx, template):
                on = client.bool_variation("new-checkout", ctx, False)
                if on:
                    print("new")
                return template.format(**locals())
            """
        },
    )
    assert _run("app", "--flags", "flags.json") == 0
    after = (tree / "app" / "r.py").read_text()
    assert "    on = True\n" in after
    assert "return template.format(**locals())" in after


@pytest.mark.parametrize("keep", ["1e400", "-1e400"])
def test_a_value_python_cannot_write_is_a_usage_error(
    tree: Path, capsys: pytest.CaptureFixture[str], keep: str
) -> None:
    """Hostile B8: ``--keep 1e400`` wrote ``inf`` (a NameError): exit 2."""
    (tree / "app" / "a.py").write_text(SITE)
    assert _run("app", "--force", keep=keep) == 2
    assert "finite numbers" in capsys.readouterr().err
    assert (tree / "app" / "a.py").read_text() == SITE


# ------------------------------------------------------ traceback or hang
def test_a_value_the_files_encoding_cannot_hold_is_listed(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile C1: ``--keep '"€"'`` in a Latin-1 file: listed (exit 3), no traceback, other files rewritten."""
    source = (
        b"# -*- coding: latin-1 -*-\ndef f(client, ctx):\n"
        b'    return client.string_variation("new-checkout", ctx, "x")\n'
    )
    (tree / "app" / "a.py").write_bytes(source)
    (tree / "app" / "b.py").write_text(
        'def f(client, ctx):\n    return client.string_variation("new-checkout", ctx, "x")\n'
    )
    assert _run("app", "--force", keep='"\u20ac"') == 3
    captured = capsys.readouterr()
    assert "cannot be written in the file's encoding (iso-8859-1)" in captured.out
    assert (tree / "app" / "a.py").read_bytes() == source
    assert '    return "\u20ac"\n' in (tree / "app" / "b.py").read_text()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("option", ["--evidence", "--flags"])
def test_evidence_that_is_a_fifo_is_a_usage_error(tree: Path, option: str) -> None:
    """Hostile C2: a FIFO given as evidence or flag file hung it: exit 2 (a subprocess, bounded)."""
    os.mkfifo(tree / "usage.json")
    run = subprocess.run(
        [
            *(sys.executable, "-m", "aioflags", "cleanup", "new-checkout"),
            *("--keep", "true", "app", option, "usage.json"),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "usage.json: a FIFO, device or socket, not a file" in run.stderr


# ------------------------------------------------------------------ ruff
def test_an_exception_name_only_the_dead_branch_used_goes(tree: Path) -> None:
    """Hostile D1: ``except ValueError as exc:`` whose ``exc`` only the folded branch used loses ``as exc`` (no F841)."""
    _write(
        tree,
        {
            "app/g.py": """\
            def g(client, ctx, work):
                try:
                    work()
                except ValueError as exc:
                    if not client.bool_variation("new-checkout", ctx, False):
                        raise RuntimeError("wrapped") from exc
                    return 0
            """
        },
    )
    assert _run("app", "--flags", "flags.json") == 0
    assert (
        "    except ValueError:\n        return 0\n"
        in (tree / "app" / "g.py").read_text()
    )


# ----------------------------------------------------- exit and reporting
def test_a_second_run_exits_as_the_first_with_a_similar_key_about(
    tree: Path,
) -> None:
    """Hostile E1: a second run said "did you mean 'new-checkouts'" and exited 2; nothing to do is 0."""
    (tree / "app" / "a.py").write_text(
        SITE + "\n\ndef g(client, ctx):\n"
        '    return client.bool_variation("new-checkouts", ctx, False)\n'
    )
    assert _run("app", "--flags", "flags.json") == 0
    assert _run("app", "--flags", "flags.json") == 0


def test_a_string_value_inside_an_f_string_is_written_with_the_other_quotes(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile E3: a site inside ``f"{...}"`` got ``"green"`` (not parsable before 3.12): ``'green'``; one it cannot quote is listed."""
    _write(
        tree,
        {
            "app/f.py": """\
            def f(client, ctx):
                return f"{client.string_variation('new-checkout', ctx, 'x')}!"


            def g(client, ctx):
                return f'{client.string_variation("new-checkout", ctx, "x")}!'
            """
        },
    )
    assert _run("app", "--force", keep='"green"') == 0
    assert (tree / "app" / "f.py").read_text() == textwrap.dedent(
        """\
        def f(client, ctx):
            return f"{'green'}!"


        def g(client, ctx):
            return f'{"green"}!'
        """
    )
    _write(
        tree,
        {
            "app/f.py": """\
            def f(client, ctx):
                return f"{client.string_variation('new-checkout', ctx, 'x')}!"
            """
        },
    )
    assert _run("app", "--force", keep='"it\'s \\"green\\""') == 0
    assert "inside an f-string whose quotes the value needs" in capsys.readouterr().out


def test_a_bare_statement_the_flag_made_constant_goes(tree: Path) -> None:
    """Hostile E4: a site alone on its line left ``True`` there; ``(flag and True)`` left ``if (True):``."""
    _write(
        tree,
        {
            "app/e.py": """\
            def f(client, ctx):
                client.bool_variation("new-checkout", ctx, False)
                if (client.bool_variation("new-checkout", ctx, False) and True):
                    return 1
                return 2
            """
        },
    )
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "e.py").read_text() == "def f(client, ctx):\n    return 1\n"


def test_a_file_deleted_during_the_run_is_said_so_and_a_path_given_twice_listed_once(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile E4: a file deleted mid-run was called "read-only"; a path given twice listed its skipped files twice."""
    (tree / "app" / "a.py").write_text(SITE)
    (tree / "app" / "b.py").write_text(SITE)
    os.mkfifo(tree / "app" / "x.py")

    def transformed(path: Path) -> None:
        if path.name == "b.py":
            (tree / "app" / "a.py").unlink()

    status = _cleanup_run.cleanup(
        "new-checkout",
        "true",
        [Path("app"), Path("app")],
        evidence=[],
        flag_files=[Path("flags.json")],
        force=False,
        dry_run=False,
        transformed=transformed,
    )
    assert status == 3
    out = capsys.readouterr().out
    assert "file left as it was: app/a.py: changed since it was read" in out
    assert out.count("app/x.py") == 1
    assert not (tree / "app" / "a.py").exists()
    assert (tree / "app" / "b.py").read_text() == SITE_AFTER


# ------------------------------------------------------------ second pass
def test_a_name_codegen_gives_another_flag_is_not_this_flags_accessor(
    tree: Path,
) -> None:
    """Hostile 2-1: with ``--name New-Checkout=...``, ``flags.new_checkout`` is ``new-checkout``'s: cleaning ``New-Checkout`` leaves it."""
    (tree / "flags.json").write_text(
        json.dumps(
            {
                "flags": {
                    "New-Checkout": {
                        "on": True,
                        "variations": [True, False],
                        "fallthrough": {"variation": 1},
                    },
                    "new-checkout": {
                        "on": True,
                        "variations": [True, False],
                        "fallthrough": {"variation": 0},
                    },
                }
            }
        )
    )
    argv = ["codegen", "flags.json", "-o", "app/flags.py"]
    assert main([*argv, "--name", "New-Checkout=new_checkout_upper"]) == 0
    _write(
        tree,
        {
            "app/__init__.py": "",
            "app/views.py": """\
            from app.flags import Flags


            async def checkout(client, ctx):
                flags = Flags(client)
                if await flags.new_checkout(ctx):
                    return "new"
                if await flags.new_checkout_upper(ctx):
                    return "upper"
                return "old"
            """,
        },
    )
    assert _run("app", "--flags", "flags.json", key="New-Checkout", keep="false") == 0
    after = (tree / "app" / "views.py").read_text()
    assert "if await flags.new_checkout(ctx):" in after
    assert "new_checkout_upper" not in after


def test_a_site_left_in_an_f_string_keeps_its_receiver(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile 2-2, 2-3, 2-6: a site listed inside an f-string keeps ``flags = Flags(client)``; a JSON object or a ``{...=}`` there is listed, not written."""
    _write(
        tree,
        {
            "app/v.py": """\
            from app.flags import Flags


            async def page(client, ctx):
                flags = Flags(client)
                return f'color: {await flags.color(ctx)}'


            def debug(client, ctx):
                return f"{client.json_variation('color', ctx, {})=}"
            """
        },
    )
    before = (tree / "app" / "v.py").read_text()
    assert _run("app", "--force", key="color", keep='"it\'s"') == 0
    assert (tree / "app" / "v.py").read_text() == before
    out = capsys.readouterr().out
    assert "app/v.py:6: inside an f-string whose quotes the value needs" in out
    assert "app/v.py:10: inside an f-string's `{...=}`" in out
    assert _run("app", "--force", key="color", keep='{"a": {"b": 1}}') == 0
    assert (tree / "app" / "v.py").read_text() == before
    assert "a JSON object inside an f-string" in capsys.readouterr().out


def test_a_negative_or_whole_number_keeps_its_precedence(tree: Path) -> None:
    """Hostile 2-4: ``--keep -3`` made ``site ** 2`` into ``-3 ** 2`` (-9); ``--keep 3`` made ``site.bit_length()`` unparsable."""
    _write(
        tree,
        {
            "app/p.py": """\
            def f(client, ctx):
                return client.int_variation("n", ctx, 0) ** 2


            def g(client, ctx):
                return client.int_variation("n", ctx, 0).bit_length()
            """
        },
    )
    assert _run("app", "--force", key="n", keep="-3") == 0
    after = (tree / "app" / "p.py").read_text()
    assert "return (-3) ** 2" in after
    assert "return (-3).bit_length()" in after
    namespace: dict[str, object] = {}
    exec(compile(after, "p.py", "exec"), namespace)
    f = namespace["f"]
    assert callable(f)
    assert f(None, None) == 9


def test_a_coroutine_handed_on_in_an_async_function_is_left(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile 2-5: ``gather(*(client.bool_variation(...) for c in cs))``, a task list, a dict of coroutines: left, listed."""
    _write(
        tree,
        {
            "app/c.py": """\
            import asyncio


            async def many(client, cs):
                return await asyncio.gather(
                    *(client.bool_variation("new-checkout", c, False) for c in cs)
                )


            async def tasks(client, cs):
                pending = [client.bool_variation("new-checkout", c, False) for c in cs]
                return await asyncio.gather(*pending)


            async def table(client, c):
                return {"on": client.bool_variation("new-checkout", c, False)}
            """
        },
    )
    before = (tree / "app" / "c.py").read_text()
    assert _run("app", "--flags", "flags.json") == 0
    assert (tree / "app" / "c.py").read_text() == before
    assert capsys.readouterr().out.count("passed on un-awaited") == 3


def test_a_global_declared_in_a_dead_branch_is_not_lost(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile 2-7: a ``global`` in the branch that goes would make the name local: the file is left, listed."""
    _write(
        tree,
        {
            "app/g.py": """\
            counter = 0


            def bump(client):
                if not client.bool_variation("new-checkout", None, False):
                    global counter
                    print("off")
                counter = 5
            """
        },
    )
    before = (tree / "app" / "g.py").read_text()
    assert _run("app", "--flags", "flags.json") == 3
    assert (tree / "app" / "g.py").read_text() == before
    assert "bump() global counter" in capsys.readouterr().out


def test_a_receiver_that_may_be_flags_is_listed(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile 2-8: ``flags`` bound to ``Flags(client)`` or to another call: listed, not "no call site"."""
    _write(
        tree,
        {
            "app/m.py": """\
            from app.flags import Flags


            async def page(client, ctx, test, make_flags):
                flags = Flags(client)
                if test:
                    flags = make_flags(client)
                return await flags.new_checkout(ctx)
            """
        },
    )
    assert _run("app", "--flags", "flags.json") == 0
    assert "app/m.py:8: new_checkout(): cannot tell that its receiver is" in (
        capsys.readouterr().out
    )


def test_dry_run_says_a_read_only_file_would_be_left(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile 2-9: ``--dry-run`` on a read-only file exited 0 where the run exits 3."""
    (tree / "app" / "a.py").write_text(SITE)
    (tree / "app" / "a.py").chmod(0o444)
    assert _run("app", "--flags", "flags.json", "--dry-run") == 3
    assert "app/a.py: read-only" in capsys.readouterr().out


def test_codegen_takes_its_module_back_from_a_crlf_checkout(tree: Path) -> None:
    """Hostile 2-9: a generated module checked out with CRLF (git autocrlf) is codegen's, current for --check, and rewritten."""
    argv = ["codegen", "flags.json", "-o", "app/flags.py"]
    assert main(argv) == 0
    module = tree / "app" / "flags.py"
    module.write_bytes(module.read_bytes().replace(b"\n", b"\r\n"))
    assert main([*argv, "--check"]) == 0
    assert main(argv) == 0
    assert b"\r\n" not in module.read_bytes()


# ------------------------------------------------------------- J7: depth
DEEP = SITE + "\n\nX = " + "(" * 3000 + "1" + ")" * 3000 + "\n"


@pytest.mark.slow
def test_J7_a_file_nested_past_libcsts_parser_is_left_not_a_crash(tree: Path) -> None:
    """J7: 3,000 parentheses crashed libcst's parser (SIGSEGV, no file named): now listed as left, the others rewritten."""
    (tree / "app" / "deep.py").write_text(DEEP)
    (tree / "app" / "b.py").write_text(SITE)
    run = subprocess.run(
        [
            *(sys.executable, "-m", "aioflags", "cleanup", "new-checkout"),
            *("--keep", "true", "app", "--flags", "flags.json"),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 3, (run.returncode, run.stderr)  # some files left
    deep = str(Path("app") / "deep.py")
    assert (
        f"file left as it was: {deep}: nested too deep to parse: too many nested "
        "parentheses (line 7)"
    ) in run.stdout.splitlines()
    assert "Traceback" not in run.stderr
    assert (tree / "app" / "deep.py").read_text() == DEEP
    assert (tree / "app" / "b.py").read_text() == SITE_AFTER  # (and went on)


def test_J7_the_depth_screen_refuses_what_python_refuses_for_its_depth() -> None:
    """J7: what Python's parser gives up on for depth never reaches libcst; the rest does."""
    from aioflags._lifecycle._nesting import MAX_BRACKETS, too_deep

    here = Path("m.py")
    assert too_deep(SITE, here) is None
    assert too_deep("x = " + "(" * 150 + "1" + ")" * 150 + "\n", here) is None
    said = too_deep(DEEP, here)
    assert said is not None and "too many nested parentheses" in said
    # A chain no bracket counts: Python's parser gives up with an exception.
    chain = too_deep("x = " + "-" * 20_000 + "1\n", here)
    assert chain is not None and chain.startswith("nested too deep to parse")
    # A syntax error elsewhere: libcst says where, unless the brackets are
    # deeper than Python takes (counted by the tokenizer, no recursion).
    assert too_deep("def f(:\n    pass\n", here) is None
    broken = (
        "def f(:\n    pass\nx = " + "[" * (MAX_BRACKETS + 1) + "]" * (MAX_BRACKETS + 1)
    )
    said = too_deep(broken + "\n", here)
    assert said is not None and "nested too deep to parse" in said
