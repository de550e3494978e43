"""The places that run a flag's code and map its exceptions (issue 49, "one pipeline").

An AST walk of every module under ``aioflags/``: a place is a function
with an ``except`` handler that maps what a flag's code raised to a
result (it calls ``finish``: MALFORMED_FLAG for an abort, EXCEPTION for a
bug, both logged), or one that runs a flag's code and swallows its abort
(``contextlib.suppress(MalformedAbort)``). The pipeline's own place is
``run_head``; the client's inlined hot path is the other one allowed. The
rest are listed here so that each one removed (or added) is seen: the
target is those two alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import aioflags

ROOT = Path(aioflags.__file__).parent

#: Where a flag's code is run and its exceptions mapped, "module:function":
#: issue 49's target, run_head and Client.variation (the hot path) only.
PLACES = {
    "_client/_client.py:variation",  # the inlined hot path (kept)
    "_evaluation/_evaluate.py:run_head",  # the pipeline's place (kept)
}


def _calls(node: ast.AST, name: str) -> bool:
    """Whether ``node`` calls ``name`` (a bare name or an attribute)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if (isinstance(func, ast.Name) and func.id == name) or (
                isinstance(func, ast.Attribute) and func.attr == name
            ):
                return True
    return False


def _suppresses_abort(node: ast.With) -> bool:
    """Whether ``node`` is ``with contextlib.suppress(MalformedAbort)``."""
    for item in node.items:
        call = item.context_expr
        if (
            isinstance(call, ast.Call)
            and _calls(call, "suppress")
            and any(
                isinstance(arg, ast.Name) and arg.id == "MalformedAbort"
                for arg in call.args
            )
        ):
            return True
    return False


def _places() -> dict[str, int]:
    """Each function that maps a flag's exceptions, and how many times it does."""
    found: dict[str, int] = {}
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = path.relative_to(ROOT).as_posix()
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            count = 0
            for node in ast.walk(func):
                maps = isinstance(node, ast.ExceptHandler) and any(
                    _calls(stmt, "finish") for stmt in node.body
                )
                if maps or (isinstance(node, ast.With) and _suppresses_abort(node)):
                    count += 1
            if count:
                found[f"{module}:{func.name}"] = count
    return found


def test_the_places_that_run_flag_code_are_the_listed_ones() -> None:
    """No new place maps a flag's exceptions; one removed is taken off PLACES."""
    assert set(_places()) == PLACES


def test_the_count_of_places() -> None:
    """Two handlers: the pipeline's and the hot path's, one each."""
    assert sum(_places().values()) == 2


def _class_lines(path: Path, name: str) -> int:
    """How many lines class ``name`` of the module at ``path`` spans."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            assert node.end_lineno is not None
            return node.end_lineno - node.lineno + 1
    raise AssertionError(f"no class {name} in {path}")


def test_flag_snapshot_is_data_plus_short_public_methods() -> None:
    """Issue 49: ``FlagSnapshot`` under 350 lines (490 before).

    Its evaluation's steps are functions beside it (assigned to the class,
    so no call more per evaluation); the class keeps its data, its public
    methods and their docstrings.
    """
    assert _class_lines(ROOT / "_evaluation" / "_snapshot.py", "FlagSnapshot") < 350
