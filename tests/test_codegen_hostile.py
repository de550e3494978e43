"""``aioflags codegen`` on hostile flag files (issue 84): every key and value imports.

What the flags hold is written as data (string literals, comments,
docstrings), never as code: the module imports, passes ``mypy --strict``
and ``ruff format --check``, and running it runs nothing of the flags'.
What cannot be written is refused in one line, never with a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from aioflags.__main__ import main
from aioflags._lifecycle._codegen import MAX_DEPTH
from tests.processes import MYPY_TEST_TIMEOUT, mypy_strict

if TYPE_CHECKING:
    from pathlib import Path

#: Touches MARKER (in the working directory) if it is ever run.
PAYLOAD = "__import__('pathlib').Path('MARKER').touch()"
#: The payload in every quoting context a literal, a comment or a docstring has.
CONTEXTS = [
    f'"""+{PAYLOAD}+"""',
    f"'''+{PAYLOAD}+'''",
    f"'+{PAYLOAD}+'",
    f'"+{PAYLOAD}+"',
    f"\\\n{PAYLOAD}",
    f"\n{PAYLOAD}\n",
    f"#\n{PAYLOAD}",
    f"\\'{PAYLOAD}",
    f'\\"""\n{PAYLOAD}\n"""',
    f"\r{PAYLOAD}",
    f"\x0c{PAYLOAD}",
    f"\u2028{PAYLOAD}",
    f"\x00{PAYLOAD}",
    f"{{{PAYLOAD}}}",
    f"\\N{{{PAYLOAD}}}",
    f"{PAYLOAD}\\",
]


def codegen(*args: str | Path) -> int:
    return main(["codegen", *(str(a) for a in args)])


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


def hostile_flags() -> dict[str, Any]:
    flags: dict[str, Any] = {}
    for n, text in enumerate(CONTEXTS):
        # The payload as a key, a Literal's strings, a description, a
        # default, an object's keys and values.
        flags[f"k{n}{text}"] = {
            "variations": [text, f"b{text}"],
            "default": text,
            "description": text,
        }
        flags[f"obj{n}"] = {
            "variations": [{text: text, "ok": 1}, {text: "x", "ok": 2}],
            "offVariation": 0,
            "description": f"x{text}",
        }
    by_key: dict[str, list[Any]] = {
        # Keywords and constants: as methods, and as their types' names.
        "none": ["a", "b"],
        "true": [{"a": 1}],
        "false": ["x"],
        "class": ["c"],
        "__class__": [1, 2],  # (class_ too: --name settles it)
        "import": [{"from": 1}],
        "match": ["m"],  # (a soft keyword)
        # Dunder-like keys and fields; names the module's classes use.
        "__init__": ["i"],
        "__slots__": ["s"],
        "_client": [True, False],
        "self": [1],
        "context": [1],
        "cast": ["c"],
        "aioflags": ["a"],
        "dunder-fields": [{"__init__": 1, "__x": "s"}],
        "field-int": [{"int": 1, "str": "s"}],
        "field-json": [{"JSON": [1]}],
        # Names the module's annotations and its own names use.
        "bool": [1],
        "Flags": ["f"],
        "JSON": ["j"],
        "j-s-o-n": ["j"],
        "typed-dict": ["t"],
        "type-checking": ["t"],
        # Not ASCII, lone surrogates, controls.
        "café": ["é", "e"],
        "日本": ["日本"],
        "\ud800surrogate": ["\ud800", "\udfff"],
        "ligature": [{"ﬁ": 1}],
        "controls": ["\x1b[31m", "\x07", "\x00", "\u200b"],
        # Numbers at their edges.
        "big": [2**70, 1],
        "floats": [1e308, -0.0, 2.5e-7],
    }
    flags |= {key: {"variations": v} for key, v in by_key.items()}
    flags["controls"]["description"] = (
        "red \x1b[31m bell \x07 nul \x00 vt \x0b ff \x0c nel \x85 ls \u2028 "
        "surrogate \ud800 zero-width \u200b tab\tend \\"
    )
    flags["deepest"] = {"variations": [_nested(MAX_DEPTH), []], "offVariation": 0}
    return flags


CALL_ALL = """\
import hostile_mod


class Client:
    def __getattr__(self, name):
        return lambda key, context, default: default


flags = hostile_mod.BlockingFlags(Client())
for name in dir(flags):
    if not name.startswith("_"):
        getattr(flags, name)(None)
print("ran", hostile_mod.__doc__)
"""


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *(str(a) for a in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(MYPY_TEST_TIMEOUT)
def test_every_hostile_key_and_value_imports_type_checks_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mypy_cache: Path
) -> None:
    """Finding 4: keywords, constants, dunders, non-ASCII, surrogates, deep values,
    a file name with a newline and controls in descriptions: the module imports,
    passes mypy --strict and ruff format, and runs nothing of the flags'.
    """
    # A flag file whose name holds a newline and the payload.
    path = tmp_path / f"flags\n{PAYLOAD}\n#.json"
    path.write_text(json.dumps({"flags": hostile_flags()}))
    out = tmp_path / "hostile_mod.py"
    assert codegen(path, "--name", "__class__=dunder_class", "-o", out) == 0
    assert "wrote" in capsys.readouterr().out
    text = out.read_text()
    lines = text.splitlines()
    docstring = lines.index(
        '"""Typed accessors for the flags (generated by ``aioflags codegen``)."""'
    )
    assert all(line.startswith("#") for line in lines[:docstring])
    assert lines[1] == (
        f"#   aioflags codegen $'{tmp_path}/flags\\n__import__(\\'pathlib\\')"
        ".Path(\\'MARKER\\').touch()\\n#.json' --name __class__=dunder_class "
        f"-o {out}"
    )
    # Imported, and every accessor run, in a process of its own.
    (tmp_path / "call_all.py").write_text(CALL_ALL)
    result = _run("call_all.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ran Typed accessors")
    result = mypy_strict(tmp_path, mypy_cache, out.name)
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run("-m", "ruff", "format", "--check", "--diff", out.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "MARKER").exists()
    # Each of them once, as a string, in the module's code.
    code = "\n".join(line for line in lines if not line.startswith("#"))
    for key in ("none", "true", "false", "class", "__slots__", "café"):
        assert code.count(json.dumps(key, ensure_ascii=False)) == 1, key


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 201, 900])
def test_a_value_nested_too_deeply_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], depth: int
) -> None:
    """Finding 4: a variation nested past 200 levels gave a module that failed to import."""
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": {"deep": {"variations": [_nested(depth)]}}}))
    assert codegen(path, "-o", tmp_path / "m.py") == 2
    assert capsys.readouterr().err == (
        f"error: flag 'deep': a value nested {depth} levels deep: a module "
        f"writes at most {MAX_DEPTH} (Python's parser stops at 200)\n"
    )
    assert not (tmp_path / "m.py").exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "the file is empty (no flags, flagValues or segments)"),
        ("# nothing yet\n", "the file is empty (no flags, flagValues or segments)"),
        ("flags:\n", "the file is empty (no flags, flagValues or segments)"),
    ],
)
def test_an_empty_flag_file_is_an_error_as_serve_and_validate_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, says: str
) -> None:
    """Finding 5: an empty flag file wrote a module of 0 flags."""
    path = tmp_path / "flags.yaml"
    path.write_text(content)
    assert codegen(path, "-o", tmp_path / "m.py") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: {says}")
    assert not (tmp_path / "m.py").exists()
    assert main(["validate", str(path)]) == 1
    assert says in capsys.readouterr().err
    # No flags, said so: a module without flags.
    path.write_text("flags: {}\n")
    assert codegen(path, "-o", tmp_path / "m.py") == 0


def test_a_misspelt_variations_says_what_was_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 5: ``variatons:`` gave 0 flags, exit 0."""
    path = tmp_path / "flags.yaml"
    path.write_text("flags:\n  a:\n    on: true\n    variatons: [1, 2]\n")
    assert codegen(path, "-o", tmp_path / "m.py") == 2
    assert capsys.readouterr().err == (
        "error: flag 'a': unknown field 'variatons' (did you mean 'variations'?); "
        "it has no variations: nothing to type its accessor from\n"
    )
    path.write_text("flags:\n  a:\n    on: true\n")
    assert codegen(path, "-o", tmp_path / "m.py") == 2
    assert capsys.readouterr().err == (
        "error: flag 'a' has no variations: nothing to type its accessor from "
        "(`aioflags validate` says what else is wrong)\n"
    )
    assert not (tmp_path / "m.py").exists()


def test_a_flag_file_given_to_from_ld_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 5: ``--from-ld flags.yaml`` said "invalid JSON" twice, with no hint."""
    for name, content in (
        ("flags.yaml", "flags:\n  a:\n    variations: [1]\n"),
        ("flags.json", '{"flagValues": {"a": 1}}'),
    ):
        path = tmp_path / name
        path.write_text(content)
        assert codegen("--from-ld", path, "-o", tmp_path / "m.py") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {path}: ")
        assert "invalid JSON: invalid JSON" not in err
        assert err.endswith("; a flag file (JSON or YAML) goes without --from-ld\n")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"f": {"variations": "abc"}}, "flag 'f' has no variations"),
        ({"f": {"variations": []}}, "flag 'f' has no variations"),
        ({"f": {"variations": {"a": 1}}}, "flag 'f' has no variations"),
        (
            {"f": {"variations": [1.5, 10**400], "default": 10**400}},
            f"flag 'f': its default {10**400} is too large for a float",
        ),
        (
            {"f": {"variations": [1], "default": _nested(500)}},
            "flag 'f': a value nested 500 levels deep",
        ),
        (
            {"f": {"variations": [1], "default": _nested(50)}},
            "flag 'f': default [",
        ),
    ],
    ids=[
        "variations-text",
        "no-variations",
        "variations-object",
        "big-int",
        "deep-default",
        "default-no-variation",
    ],
)
def test_malformed_flags_are_one_line_never_a_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: dict[str, Any],
    says: str,
) -> None:
    """Finding 5: no traceback for any input."""
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": flags}))
    assert codegen(path, "-o", tmp_path / "m.py") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {says}")
