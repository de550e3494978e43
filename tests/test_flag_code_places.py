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
import inspect
from pathlib import Path
from typing import Any

import aioflags

ROOT = Path(aioflags.__file__).parent

#: Where a flag's code is run and its exceptions mapped, "module:function".
#: Issue 49's target: run_head and Client.variation (the hot path) only.
PLACES = {
    "_client/_client.py:variation",  # the inlined hot path (kept)
    "_evaluation/_evaluate.py:find_head",  # making a head (compiling)
    "_evaluation/_evaluate.py:evaluate",  # the snapshot's driver
    "_evaluation/_snapshot.py:_result",  # the snapshot's untyped evaluation
    "_evaluation/_evaluate.py:_careful",  # big-segment status, recorded prereqs
    "_evaluation/_evaluate.py:prerequisites_reached",  # a re-run
    "_evaluation/_snapshot.py:_all_flags_state",  # the two all-flags loops
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
    """Nine handlers today (the all-flags state's two loops count twice, and
    the hot path's: events off, and events on, kept apart for speed)."""
    assert sum(_places().values()) == 9


def test_the_pipelines_place_is_one_text_written_where_heads_run() -> None:
    """``RUN_HEAD`` maps a flag's exceptions; run_head and each hook series are it.

    No other string in the package calls ``finish`` (code written at run
    time would be a place the AST walk above cannot see).
    """
    from aioflags._evaluation import _evaluate
    from aioflags._evaluation._evaluate import RUN_HEAD, run_head

    assert "except Exception as exc:" in RUN_HEAD
    assert "finish(key, exc)" in RUN_HEAD
    source = inspect.getsource(run_head)
    assert "\n".join(_evaluate.write_run_head("    ")) in source
    writers = set()
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "finish(" in node.value
                and node.value is not RUN_HEAD
                and node.value != RUN_HEAD
            ):
                raise AssertionError(f"{module} writes code that calls finish()")
            if _calls(node, "write_run_head") and isinstance(node, ast.Call):
                writers.add(module)
    assert writers == {"_client/_hooks.py", "_evaluation/_evaluate.py"}


def test_a_hook_series_runs_the_head_in_its_own_frame() -> None:
    """The compiled series maps a raising head itself: EXCEPTION, the stages run."""
    from aioflags import Hook
    from aioflags._client._hooks import HookRunner

    seen: list[object] = []

    class Seen(Hook):
        def after_evaluation(self, series_context: Any, data: Any, detail: Any) -> Any:
            seen.append(detail.error_kind)
            return data

    def broken(head: object, context: object, matcher: object) -> object:
        raise RuntimeError("a bug in the flag's code")

    runner = HookRunner([Seen()])
    result = runner.run((broken, True), "f", None, None, "variation", False)
    assert result.reason["errorKind"] == "EXCEPTION"
    assert seen == ["EXCEPTION"]
