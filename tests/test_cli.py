"""The ``aioflags`` command as commands: a module each, and a start that loads none of what they run on.

What each command says and does is tested by its own tests (test_validate,
test_diff, test_codegen_command, test_cleanup_command, test_first_hour...);
these check the shape that ``aioflags.__main__`` dispatches.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from aioflags.__main__ import COMMANDS, _parser

#: What the commands run on: none of it is loaded to say ``--version`` or
#: ``--help`` (``__main__.py`` imported the flag service and anyio at its
#: top when it held every command).
NOT_FOR_HELP = (
    "anyio",
    "asyncio",
    "socket",
    "dataclasses",
    "aioflags._service._server",
    "aioflags._asgi._limits",
    "aioflags._datasystem._sources._files",
    "aioflags._datasystem._sources._watch",
    "aioflags._diff._blast",
    "aioflags._lifecycle._codegen_run",
    "aioflags._lifecycle._cleanup_run",
    "aioflags._cli._serving",
)


@pytest.mark.slow
def test_help_and_version_load_nothing_a_command_runs_on() -> None:
    code = """
        import contextlib, io, json, sys
        from aioflags.__main__ import main
        for argv in (["--version"], ["--help"], ["serve", "--help"], ["eval", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
                main(argv)
        print(json.dumps(sorted(sys.modules)))
    """
    # Not under coverage: its tracer (the README's command measures
    # subprocesses) loads socket and dataclasses itself.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout))
    assert "aioflags._cli._serve" in loaded  # (the check sees what --help loads)
    assert sorted(loaded & set(NOT_FOR_HELP)) == []


def test_each_command_is_a_module_of_its_own() -> None:
    names = [command.name for command in COMMANDS]
    assert names == [
        "serve",
        "validate",
        "diff",
        "schema",
        "codegen",
        "cleanup",
        "eval",
        "plane",
        "lens",
    ]
    for command in COMMANDS:
        # (lens's verbs are the lens's own module)
        home = "lens._cli" if command.name == "lens" else f"cli._{command.name}"
        assert command.add_args.__module__ == f"aioflags._{home}", command.name
        assert command.run.__module__ == f"aioflags._{home}", command.name


def test_the_parser_lists_the_commands_in_their_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    text = capsys.readouterr().out
    # (a help too long for its line goes on below, indented further)
    listed = re.findall(r"^    (\S+)", text, re.MULTILINE)
    assert listed == [command.name for command in COMMANDS], text
