"""``aioflags codegen``'s names never move (issue 84).

Adding, removing or renaming a flag never changes which flag another
flag's accessor reads, nor the name of another flag's type: two flags that
would share a name are refused, naming both, until ``--name`` settles it.
Which flag an accessor reads is seen by running it, on a client that
records the key it is asked for.
"""

from __future__ import annotations

import importlib.util
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from aioflags.__main__ import main

if TYPE_CHECKING:
    from pathlib import Path


def codegen(*args: str | Path) -> int:
    return main(["codegen", *(str(a) for a in args)])


def _write(path: Path, flags: dict[str, list[Any]]) -> Path:
    path.write_text(
        json.dumps({"flags": {k: {"variations": v} for k, v in flags.items()}})
    )
    return path


class _Recorder:
    """A blocking client that answers each evaluation with the key it was asked."""

    def __getattr__(self, method: str) -> Any:
        def evaluate(key: str, context: object, default: object) -> str:
            return key

        return evaluate


def _reads(module_path: Path) -> dict[str, str]:
    """Each accessor of the module at ``module_path``, and the key it reads."""
    spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flags = module.BlockingFlags(_Recorder())
    return {
        name: getattr(flags, name)(None)
        for name in dir(flags)
        if not name.startswith("_")
    }


def _generate(tmp_path: Path, flags: dict[str, list[Any]], *names: str) -> int:
    out = tmp_path / "flags_mod.py"
    return codegen(_write(tmp_path / "flags.json", flags), "-o", out, *names)


def test_adding_a_key_with_the_same_name_is_refused_and_moves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 3: adding ``New-Checkout`` re-pointed ``new_checkout`` to it."""
    out = tmp_path / "flags_mod.py"
    assert _generate(tmp_path, {"new-checkout": [True, False]}) == 0
    assert _reads(out)["new_checkout"] == "new-checkout"
    before = out.read_bytes()
    capsys.readouterr()
    flags = {"new-checkout": [True, False], "New-Checkout": [True, False]}
    assert _generate(tmp_path, flags) == 2
    err = capsys.readouterr().err
    assert err == (
        'error: flags "New-Checkout" and "new-checkout" would both have the '
        "method new_checkout: give one of them another name with --name "
        "KEY=IDENT\n"
    )
    assert out.read_bytes() == before
    assert _generate(tmp_path, flags, "--name", "New-Checkout=new_checkout_upper") == 0
    reads = _reads(out)
    assert reads["new_checkout"] == "new-checkout"
    assert reads["new_checkout_upper"] == "New-Checkout"
    assert reads["new_checkout_upper_detail"].startswith("New-Checkout")


def test_a_name_that_is_another_flags_detail_method_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 3: ``foo-detail`` became ``foo_detail_2`` beside ``foo``'s ``foo_detail``."""
    assert _generate(tmp_path, {"foo": [1, 2], "foo-detail": [True]}) == 2
    err = capsys.readouterr().err
    assert 'flags "foo" and "foo-detail" would both have the method foo_detail' in err
    assert (
        _generate(tmp_path, {"foo": [1, 2], "foo-detail": [True]}, "--name", "foo=fu")
        == 0
    )
    assert _reads(tmp_path / "flags_mod.py") == {
        "foo_detail": "foo-detail",
        "foo_detail_detail": "foo-detail",
        "fu": "foo",
        "fu_detail": "foo",
    }


def test_adding_removing_or_renaming_a_flag_never_moves_another(
    tmp_path: Path,
) -> None:
    """Finding 3: which flag an accessor reads depends on its key alone."""
    flags: dict[str, list[Any]] = {
        "a": [1],
        "class": ["x", "y"],
        "checkout": [{"k": 1}],
        "zeta": [True],
    }
    assert _generate(tmp_path, flags) == 0
    first = _reads(tmp_path / "flags_mod.py")
    assert first["class_"] == "class"
    for changed in (
        {**flags, "A-Aardvark": [1], "zz": ["q"]},  # added before and after
        {k: v for k, v in flags.items() if k != "a"},  # removed
        {**{k: v for k, v in flags.items() if k != "a"}, "b": [1]},  # renamed
    ):
        assert _generate(tmp_path, changed) == 0
        now = _reads(tmp_path / "flags_mod.py")
        assert {n: now[n] for n in now.keys() & first.keys()} == {
            n: first[n] for n in now.keys() & first.keys()
        }
        assert len(now.keys() & first.keys()) >= 6


def _type_names(path: Path) -> set[str]:
    """The Literal aliases and TypedDicts the module defines."""
    return set(
        re.findall(
            r"^(?:class )?(\w+)(?:: TypeAlias = Literal|\(TypedDict\)| = TypedDict)",
            path.read_text(),
            re.MULTILINE,
        )
    )


def test_type_names_depend_on_their_flag_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 3: a type's ``2``, ``3``... suffix depended on the other flags."""
    out = tmp_path / "flags_mod.py"
    flags: dict[str, list[Any]] = {
        "color": ["a", "b"],
        "flags": ["on", "off"],  # Flags is the module's class: Flags_
        "none": ["x"],  # None is a keyword: None_
        "config": [{"k": 1}],
    }
    assert _generate(tmp_path, flags) == 0
    assert _type_names(out) == {"Color", "Flags_", "None_", "Config"}
    notes = capsys.readouterr().out
    assert "flag \"flags\"'s type is Flags_ (Flags is the module's)" in notes
    assert 'flag "none"\'s type is None_ (None is a Python keyword)' in notes
    # Another flag whose type would be Color (color_ is no name codegen makes
    # for a key: --name's): refused, naming both, and nothing moves.
    assert _generate(tmp_path, {**flags, "x": ["p"]}, "--name", "x=color_") == 2
    assert 'flags "color" and "x" would both have the type Color' in (
        capsys.readouterr().err
    )
    assert _generate(tmp_path, {**flags, "color-2": ["p"], "color2": ["q"]}) == 2
    assert 'flags "color-2" and "color2" would both have the type Color2' in (
        capsys.readouterr().err
    )
    extra = {**flags, "color-2": ["p"], "color2": ["q"], "Flag": ["r"]}
    assert _generate(tmp_path, extra, "--name", "color2=color_two") == 0
    assert _type_names(out) == {
        "Color",
        "Flags_",
        "None_",
        "Config",
        "Color2",
        "ColorTwo",
        "Flag",
    }


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("x=Upper", "a name is lower-case ASCII letters, digits and _"),
        ("x=_private", "a name is lower-case ASCII letters, digits and _"),
        ("x=__init__", "a name is lower-case ASCII letters, digits and _"),
        ("x=1st", "a name is lower-case ASCII letters, digits and _"),
        ("x=café", "a name is lower-case ASCII letters, digits and _"),
        ("x=", "a name is lower-case ASCII letters, digits and _"),
        ("x=class", "it is a Python keyword"),
        ("x=int", "it is a type the module's annotations name"),
        ("x=my_detail", "a name ending _detail would be another flag's _detail"),
        ("nothing", "give KEY=IDENT"),
        ("=x", "give KEY=IDENT"),
    ],
)
def test_a_name_option_that_is_no_name_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, says: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        _generate(tmp_path, {"x": [1]}, "--name", option)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --name: {option!r}: {says}" in err
    assert not (tmp_path / "flags_mod.py").exists()


def test_a_name_option_for_no_flag_or_twice_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _generate(tmp_path, {"new-checkout": [1]}, "--name", "new-chekout=x") == 2
    assert capsys.readouterr().err == (
        "error: --name new-chekout=x: no flag 'new-chekout' "
        "(did you mean 'new-checkout'?)\n"
    )
    with pytest.raises(SystemExit) as exc:
        _generate(tmp_path, {"x": [1]}, "--name", "x=a", "--name", "x=b")
    assert exc.value.code == 2
    assert "--name: 'x' is named twice" in capsys.readouterr().err
    # A key with "=" in it: IDENT is after the last one.
    assert _generate(tmp_path, {"a=b": [1]}, "--name", "a=b=ab") == 0
    assert _reads(tmp_path / "flags_mod.py")["ab"] == "a=b"
