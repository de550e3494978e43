"""The code generator's one back end (aioflags/_evaluation/_generate.py), under both front ends.

LaunchDarkly's clauses (``_codegen``) and flagd's JsonLogic (``_jsonlogic``)
write source; one module compiles it: one shape cache, one name counter,
one globals policy, one ``exec`` (issue 96). What each front end writes is
tested beside it (tests/test_codegen.py, tests/test_flagd_logic.py).
"""

from __future__ import annotations

import ast
import gc
import inspect
import linecache
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import aioflags
from aioflags._evaluation import _codegen, _generate
from aioflags._evaluation._generate import Front, generate
from aioflags._evaluation._model import compile_flag
from aioflags._systems._flagd._engine import _jsonlogic, _jsonlogic_compiler
from aioflags._systems._flagd._engine._jsonlogic import build_targeting

if TYPE_CHECKING:
    from types import FunctionType

ROOT = Path(aioflags.__file__).parent


def _ld_run() -> FunctionType:
    flag = compile_flag(
        "ld",
        {
            "key": "ld",
            "version": 1,
            "on": True,
            "variations": ["off", "on"],
            "fallthrough": {"variation": 1},
            "rules": [
                {
                    "variation": 0,
                    "clauses": [{"attribute": "key", "op": "in", "values": ["x"]}],
                }
            ],
        },
    )
    assert flag.code is not None
    run: FunctionType = flag.code.run  # type: ignore[assignment]
    return run


def _jsonlogic_run(rule: Any = None) -> FunctionType:
    run, _ = build_targeting(
        rule or {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}, "flagd"
    )
    return run  # type: ignore[return-value]


def _code_sites() -> list[tuple[str, int, str]]:
    """Every call in aioflags/ that runs or compiles Python: (module, line, name).

    ``exec`` and ``eval``, and ``compile`` unless it asks for a tree only
    (``flags=ast.PyCF_ONLY_AST``: a parse, as ``ast.parse`` is). A method
    named so (``re.compile``, ``regex.exec``) is not one of them.
    """
    sites = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if not re.search(r"\b(exec|eval|compile)\(", text):
            continue  # (no such call: not parsed, for speed)
        for node in ast.walk(ast.parse(text)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            name = node.func.id
            parse_only = any(
                k.arg == "flags" and "PyCF_ONLY_AST" in ast.unparse(k.value)
                for k in node.keywords
            )
            if name in ("exec", "eval") or (name == "compile" and not parse_only):
                module = path.relative_to(ROOT.parent).as_posix()
                sites.append((module, node.lineno, name))
    return sites


@pytest.mark.slow  # (parses every module that names such a call: ~0.5-2 s)
def test_one_exec_site_in_aioflags() -> None:
    """Issue 96: the two generators' two compile-and-exec sites are one, the back end's."""
    sites = _code_sites()
    assert [(module, name) for module, _, name in sites] == [
        ("aioflags/_evaluation/_generate.py", "exec"),
        ("aioflags/_evaluation/_generate.py", "compile"),
    ], sites
    assert sites[0][1] == sites[1][1]  # exec(compile(...)): one line, one site


def test_both_front_ends_share_one_shape_cache_and_one_counter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_generate, "_shapes", {})
    ld, flagd = _ld_run(), _jsonlogic_run()
    fronts = {front for front, _ in _generate._shapes}
    assert fronts == {_codegen._FRONT, _jsonlogic._FRONT}
    # (the same shape again is the same function: nothing compiled)
    assert _ld_run() is ld and _jsonlogic_run() is flagd
    assert len(_generate._shapes) == 2
    names = [f.__code__.co_filename for f in (ld, flagd)]
    assert re.fullmatch(r"<aioflags generated run \d+>", names[0]), names
    assert re.fullmatch(r"<aioflags flagd targeting run \d+>", names[1]), names
    numbers = {name.rstrip(">").rsplit(" ", 1)[1] for name in names}
    assert len(numbers) == 2  # one counter: no two shapes share a file name


def test_a_source_of_one_front_end_is_not_shared_with_another() -> None:
    """The cache is keyed by front end too: each front end's code names its own helpers."""
    source = "def run(o, ctx, st):\n    return o\n"
    one = generate(Front("one", {"_a": 1}), [source])
    two = generate(Front("two", {"_b": 2}), [source])
    assert one is not two
    assert "_a" in one.__globals__ and "_a" not in two.__globals__


def test_generated_code_sees_the_policys_builtins_and_its_front_ends_helpers() -> None:
    for run, front in (
        (_ld_run(), _codegen._FRONT),
        (_jsonlogic_run(), _jsonlogic._FRONT),
    ):
        namespace = run.__globals__
        assert namespace["__builtins__"] is _generate._BUILTINS
        assert set(namespace) - {"run"} == set(front.globals)
    for name in ("__import__", "open", "eval", "exec", "compile", "getattr", "vars"):
        assert name not in _generate._BUILTINS
    with pytest.raises(ValueError, match="private"):
        Front("bad", {"open": open})


def test_each_shape_has_globals_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """What one shape defines (its hoisted ``_f0``...) is in no other's globals."""
    monkeypatch.setattr(_jsonlogic_compiler, "WIDTH", 2)
    wide = _jsonlogic_run({"or": [{"var": f"v{i}"} for i in range(5)]})
    plain = _jsonlogic_run()
    assert "_f0" in wide.__globals__ and "_f0" not in plain.__globals__
    assert plain.__globals__ is not _jsonlogic._FRONT.globals


@pytest.mark.slow  # (a full gc.collect)
def test_generated_source_is_shown_while_its_code_lives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracebacks, debuggers and ``inspect`` read the source; it goes with the code."""
    assert inspect.getsource(_ld_run()).startswith("def run(o, ctx, st):")
    monkeypatch.setattr(_jsonlogic_compiler, "WIDTH", 2)
    hoisted = _jsonlogic_run({"and": [{"var": f"w{i}"} for i in range(5)]})
    assert inspect.getsource(hoisted.__globals__["_f0"]).startswith("def _f0(")
    monkeypatch.setattr(_generate, "_shapes", {})
    run = generate(Front("lifetime", {}), ["def run(o, ctx, st):\n    return o\n"])
    filename = run.__code__.co_filename
    assert linecache.getlines(filename) == ["def run(o, ctx, st):\n", "    return o\n"]
    _generate._shapes.clear()
    del run
    gc.collect()  # (a function and its globals hold each other)
    assert filename not in linecache.cache
