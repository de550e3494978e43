"""``aioflags codegen``: typed accessors generated from flag files (issue 79).

(tests/test_codegen.py is the evaluator's compiled flags, another codegen.)
The generated module is checked as its users check it: mypy --strict and
ruff format --check in subprocesses (slow), and run against real clients.
"""

from __future__ import annotations

import json
import keyword
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aioflags import Client, Config, Context, DataSystem
from aioflags.__main__ import main
from aioflags._lifecycle._codegen import flag_type, identifier
from tests.processes import MYPY_TEST_TIMEOUT, mypy_strict

FLAGS_YAML = """\
flags:
  new-checkout:
    on: true
    variations: [true, false]
    offVariation: 1
    fallthrough: {variation: 0}
    description: The new checkout flow, by region.
  color:
    on: true
    variations: [green, blue]
    offVariation: 0
    fallthrough: {variation: 1}
    default: green
  class:
    on: true
    variations: [1, 2]
    fallthrough: {variation: 1}
  ratio:
    on: true
    variations: [1, 2.5]
    fallthrough: {variation: 1}
  checkout-config:
    on: true
    variations:
      - {steps: 3, theme: dark, extras: [1]}
      - {steps: 4, theme: light, extras: []}
    offVariation: 0
    fallthrough: {variation: 1}
  mixed:
    on: true
    variations: [1, "a", {"a": [1, 2]}]
    fallthrough: {variation: 2}
flagValues:
  newCheckout: "x"
  new_checkout_detail: true
"""

CALLER = """\
from __future__ import annotations

import aioflags
import aioflags.blocking
from aioflags import Context, EvaluationDetail

from {module} import BlockingFlags, CheckoutConfig, Color, Flags


async def use(client: aioflags.Client, sync: aioflags.blocking.Client) -> None:
    ctx = Context.create("u")
    flags = Flags(client)
    on: bool = await flags.new_checkout(ctx)
    color: Color = await flags.color(ctx)
    config: CheckoutConfig = await flags.checkout_config(ctx)
    steps: int = config["steps"]
    count: int = await flags.class_(ctx)
    ratio: float = await flags.ratio(ctx)
    detail: EvaluationDetail[Color] = await flags.color_detail(ctx)
    same = BlockingFlags(sync).color(ctx) == "green"
    print(on, color, steps, count, ratio, detail, same, await flags.mixed(ctx))
"""


#: FLAGS_YAML's two keys whose names another flag's methods have, named.
NAMES = (
    "--name",
    "newCheckout=new_checkout_text",
    "--name",
    "new_checkout_detail=new_checkout_verbose",
)


def codegen(*args: str | Path) -> int:
    return main(["codegen", *(str(a) for a in args)])


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.yaml"
    path.write_text(FLAGS_YAML)
    return path


def generated(
    tmp_path: Path, flag_file: Path, name: str = "flags_mod.py", *extra: str
) -> str:
    out = tmp_path / name
    assert codegen(flag_file, "-o", out, *NAMES, *extra) == 0
    return out.read_text()


# ------------------------------------------------------------- naming, types
@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("new-checkout", "new_checkout"),
        ("newCheckout", "new_checkout"),
        ("HTTPServer", "http_server"),
        ("a.b--c", "a_b_c"),
        ("-edge-", "edge"),
        ("3d", "flag_3d"),
        ("***", "flag"),
        ("café", "caf"),
    ],
)
def test_a_key_becomes_a_python_name(key: str, name: str) -> None:
    assert identifier(key) == name


@pytest.mark.parametrize(
    ("variations", "kind"),
    [
        ([True, False], "bool"),
        ([1, 2], "int"),
        ([1, 2.5], "float"),
        (["a", "b"], "literal"),
        ([{"a": 1}, {"a": 2.5}], "typeddict"),
        ([{"a": 1}, {"b": 1}], "json"),
        ([{"a": 1}, {"a": "x"}], "json"),
        ([{}], "json"),
        ([True, 1], "json"),
        ([None], "json"),
    ],
)
def test_a_flags_type_follows_its_variations(variations: list[Any], kind: str) -> None:
    assert flag_type(variations).kind == kind


def test_the_module_says_how_to_regenerate_it_and_its_renames(
    tmp_path: Path, flag_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = generated(tmp_path, flag_file)
    out = capsys.readouterr().out
    command = (
        f"aioflags codegen {flag_file} --name newCheckout=new_checkout_text "
        f"--name new_checkout_detail=new_checkout_verbose -o {tmp_path / 'flags_mod.py'}"
    )
    assert text.splitlines()[1] == f"#   {command}"
    assert "do not edit" in text.splitlines()[0]
    renames = [
        'flag "class" is class_ (class is a Python keyword)',
        'flag "newCheckout" is new_checkout_text (--name)',
        'flag "new_checkout_detail" is new_checkout_verbose (--name)',
    ]
    for line in renames:
        assert f"# {line}\n" in text
        assert f"{line}\n" in out
    assert "wrote" in out and "8 flags" in out
    # Each key once as a string (the comments name keys too); a method (and a
    # _detail) per flag, in both classes.
    code = "\n".join(s for s in text.splitlines() if not s.startswith("#"))
    for key in ("new-checkout", "color", "class", "checkout-config", "newCheckout"):
        assert code.count(json.dumps(key)) == 1, key
    for name in ("new_checkout", "class_", "new_checkout_text", "new_checkout_verbose"):
        assert text.count(f"async def {name}(") == 1
        assert text.count(f"    def {name}(") == 1
        assert text.count(f"async def {name}_detail(") == 1
    assert "Literal[" in text and "class CheckoutConfig(TypedDict):" in text
    assert not re.search(r"\bAny\b", code)
    assert not any(keyword.iskeyword(m) for m in re.findall(r"def (\w+)\(", text))


def test_the_same_flags_give_the_same_bytes(tmp_path: Path, flag_file: Path) -> None:
    first = generated(tmp_path, flag_file)
    # The same flags in another order, as JSON: the same module, but for the
    # command in its header.
    data = json.loads(json.dumps(_yaml(flag_file)))
    data["flags"] = dict(reversed(list(data["flags"].items())))
    json_file = tmp_path / "flags.json"
    json_file.write_text(json.dumps(data))
    second = generated(tmp_path, flag_file, "second.py")
    third = generated(tmp_path, json_file, "flags_mod.py")
    assert first.splitlines()[2:] == second.splitlines()[2:]
    assert first.splitlines()[2:] == third.splitlines()[2:]
    assert generated(tmp_path, flag_file) == first


def _yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def test_docstrings_carry_description_variations_and_default(
    tmp_path: Path, flag_file: Path
) -> None:
    text = generated(tmp_path, flag_file)
    assert '"""The new checkout flow, by region.' in text
    assert "Variations: true, false." in text
    assert "false, its off variation." in text  # new-checkout's offVariation
    assert '"green", its default.' in text  # color's default:
    # class has no offVariation: its first variation.
    assert "1, its first variation (it has no off variation)." in text
    assert "self._client.int_variation(CLASS__KEY, context, 1)" in text
    assert 'string_variation(COLOR_KEY, context, "green")' in text
    assert "float_variation(RATIO_KEY, context, 1.0)" in text


# ----------------------------------------------------------- default: checked
def test_a_default_that_is_no_variation_is_refused_by_codegen_and_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "flags.json"
    path.write_text(
        json.dumps(
            {"flags": {"f": {"variations": [True, False], "default": 1}}}, indent=1
        )
    )
    assert codegen(path, "-o", tmp_path / "m.py") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "flag 'f': default 1 is not one of its variations (true, false)" in err
    assert not (tmp_path / "m.py").exists()
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}:8:4: flags/f/default" in err  # (where "default" is)
    assert "flags/f/default: default 1 is not one of the flag's variations" in err
    # description and default are known keys: no "unknown field".
    path.write_text(
        json.dumps(
            {
                "flags": {
                    "f": {
                        "variations": [1, 2],
                        "fallthrough": {"variation": 0},
                        "default": 2.0,
                        "description": "d",
                    }
                }
            }
        )
    )
    assert main(["validate", str(path)]) == 0
    assert "unknown field" not in capsys.readouterr().err


# ------------------------------------------------------------ usage errors
@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "No such file"),
        ("{broken", "invalid JSON"),
    ],
)
def test_an_unreadable_file_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, says: str
) -> None:
    path = tmp_path / "flags.json"
    if content is not None:
        path.write_text(content)
    assert codegen(path, "-o", tmp_path / "m.py") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and str(path) in err
    assert codegen("--from-ld", path, "-o", tmp_path / "m.py") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err


def test_an_unknown_option_or_no_input_is_exit_2(
    tmp_path: Path, flag_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        codegen(flag_file, "-o", tmp_path / "m.py", "--chek")
    assert exc.value.code == 2
    assert "unrecognized arguments: --chek" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        codegen("-o", tmp_path / "m.py")
    assert exc.value.code == 2
    assert "give flag files, or --from-ld FILE" in capsys.readouterr().err
    ld = tmp_path / "ld.json"
    ld.write_text('{"items": []}')
    assert codegen("--from-ld", ld, "-o", tmp_path / "m.py") == 2
    assert "not LaunchDarkly's flag JSON" in capsys.readouterr().err


# ---------------------------------------------------------------- --check
def test_check_passes_a_current_module_and_shows_a_stale_ones_diff(
    tmp_path: Path, flag_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "flags_mod.py"
    assert codegen(flag_file, "-o", out, "--check", *NAMES) == 1  # none yet
    capsys.readouterr()
    text = generated(tmp_path, flag_file)
    capsys.readouterr()
    assert codegen(flag_file, "-o", out, "--check", *NAMES) == 0
    assert "is current" in capsys.readouterr().out
    flag_file.write_text(FLAGS_YAML.replace("[green, blue]", "[green, teal]"))
    assert codegen(flag_file, "-o", out, "--check", *NAMES) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"--- {out}\n+++ {out} (generated now)\n")
    assert '-Color: TypeAlias = Literal["green", "blue"]' in captured.out
    assert '+Color: TypeAlias = Literal["green", "teal"]' in captured.out
    assert "not what the flags make now" in captured.err
    assert out.read_text() == text  # --check writes nothing


# -------------------------------------------------------------- --from-ld
def test_from_ld_reads_launchdarklys_flag_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ld = tmp_path / "latest-all.json"
    ld.write_text(
        json.dumps(
            {
                "flags": {
                    "dark-mode": {
                        "key": "dark-mode",
                        "version": 3,
                        "on": True,
                        "variations": ["on", "off"],
                        "offVariation": 1,
                        "fallthrough": {"variation": 0},
                        "description": "ignored: LaunchDarkly's JSON has none",
                    },
                    "gone": {"key": "gone", "deleted": True, "version": 4},
                },
                "segments": {},
            }
        )
    )
    out = tmp_path / "ld_mod.py"
    assert codegen("--from-ld", ld, "-o", out) == 0
    text = out.read_text()
    assert f"#   aioflags codegen --from-ld {ld} -o {out}" in text
    assert 'DarkMode: TypeAlias = Literal["on", "off"]' in text
    assert '"""The flag ``dark-mode``.' in text
    assert "ignored" not in text and "gone" not in text
    assert 'string_variation(DARK_MODE_KEY, context, "off")' in text


# ----------------------------------------------------------------- running
def _load(path: Path) -> Any:
    """A generated module, imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.asyncio
async def test_a_generated_module_works_on_a_client(
    tmp_path: Path, flag_file: Path
) -> None:
    generated(tmp_path, flag_file, "flags_run.py")
    module = _load(tmp_path / "flags_run.py")
    ctx = Context.create("user-1")
    config = Config(data_system=DataSystem.file(flag_file), send_events=False)
    async with Client(config) as client:
        flags = module.Flags(client)
        assert await flags.new_checkout(ctx) is True
        assert await flags.color(ctx) == "blue"
        assert await flags.class_(ctx) == 2
        assert await flags.ratio(ctx) == 2.5
        assert await flags.checkout_config(ctx) == {
            "steps": 4,
            "theme": "light",
            "extras": [],
        }
        assert await flags.mixed(ctx) == {"a": [1, 2]}
        assert await flags.new_checkout_text(ctx) == "x"
        detail = await flags.color_detail(ctx)
        assert (detail.value, detail.variation_index) == ("blue", 1)
        assert detail.reason["kind"] == "FALLTHROUGH"
    # A client without the flags: each accessor serves its default.
    empty = tmp_path / "empty.json"
    empty.write_text('{"flags": {}}')
    config = Config(data_system=DataSystem.file(empty), send_events=False)
    async with Client(config) as client:
        flags = module.Flags(client)
        assert await flags.new_checkout(ctx) is False
        assert await flags.color(ctx) == "green"
        detail = await flags.color_detail(ctx)
        assert detail.reason["errorKind"] == "FLAG_NOT_FOUND"


def test_a_generated_module_works_on_a_blocking_client(
    tmp_path: Path, flag_file: Path
) -> None:
    import aioflags.blocking

    generated(tmp_path, flag_file, "flags_sync.py")
    module = _load(tmp_path / "flags_sync.py")
    ctx = Context.create("user-1")
    config = Config(data_system=DataSystem.file(flag_file), send_events=False)
    with aioflags.blocking.Client(config) as sync:
        flags = module.BlockingFlags(sync)
        assert flags.new_checkout(ctx) is True
        assert flags.color(ctx) == "blue"
        assert flags.ratio_detail(ctx).value == 2.5
        assert flags.checkout_config_detail(ctx).value["steps"] == 4


# ------------------------------------------------------- mypy, ruff format
def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *(str(a) for a in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(MYPY_TEST_TIMEOUT)
def test_the_module_passes_mypy_strict_and_catches_wrong_uses(
    tmp_path: Path, flag_file: Path, mypy_cache: Path
) -> None:
    generated(tmp_path, flag_file, "flags_mod.py")
    # flags_old.py: flags.yaml without color (a removed flag).
    removed = tmp_path / "removed.yaml"
    removed.write_text(FLAGS_YAML.replace("  color:", "  colour-old:"))
    assert codegen(removed, "-o", tmp_path / "flags_old.py", *NAMES) == 0
    (tmp_path / "good.py").write_text(CALLER.format(module="flags_mod"))
    (tmp_path / "purple.py").write_text(
        "from aioflags import Context\n"
        "from flags_mod import Flags\n\n\n"
        "async def use(flags: Flags) -> bool:\n"
        '    return await flags.color(Context.create("u")) == "purple"\n'
    )
    (tmp_path / "gone.py").write_text(
        "from aioflags import Context\n"
        "from flags_old import Flags\n\n\n"
        "async def use(flags: Flags) -> object:\n"
        '    return await flags.color(Context.create("u"))\n'
    )
    result = mypy_strict(
        tmp_path,
        mypy_cache,
        *("flags_mod.py", "flags_old.py", "good.py", "purple.py", "gone.py"),
    )
    errors = sorted(line for line in result.stdout.splitlines() if ": error:" in line)
    assert len(errors) == 2, result.stdout + result.stderr
    assert errors[0].startswith("gone.py:6: error: ")
    assert '"Flags" has no attribute "color"' in errors[0]
    assert errors[0].endswith("[attr-defined]")
    assert errors[1].startswith("purple.py:6: error: Non-overlapping equality check")
    assert errors[1].endswith("[comparison-overlap]")


@pytest.mark.slow
def test_the_module_is_as_ruff_format_leaves_it(
    tmp_path: Path, flag_file: Path
) -> None:
    long_key = "a-very-long-flag-key-" * 5
    flag_file.write_text(
        FLAGS_YAML
        + f"""\
  {long_key}: {{"k": "v", "other-key": 1}}
  quotes: 'say "hi"'
  long-literal: "{"x" * 100}"
"""
    )
    data = _yaml(flag_file)
    data["flags"]["many"] = {
        "variations": [f"option-number-{n}" for n in range(12)],
        "description": 'Has\ttabs, a \\ backslash, """quotes""" and\n\n  an indent "',
    }
    data["flags"]["big-object"] = {
        "variations": [{"items": list(range(40)), "name": "y" * 70, "ok": True}]
    }
    longer = "b-very-long-flag-key-" * 7
    data["flagValues"] |= {
        longer: "x",  # its def's return type alone is longer than a line
        longer[:-25]: {"k": 1},  # its TypedDict's class line too
        "huge": 1e100,  # (ruff writes 1e100, not Python's 1e+100)
        "tiny": 2.5e-7,
        "escapes": "\u0007\u2028 é \\ 'x' \"",
        "new\nline": 1,
    }
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "flags_mod.py"
    assert codegen(path, "-o", out, *NAMES) == 0
    assert any(len(line) > 88 for line in out.read_text().splitlines())
    result = _run("ruff", "format", "--check", "--diff", out, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    compile(out.read_text(), str(out), "exec")
