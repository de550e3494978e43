"""The places that run a flag's code and map its exceptions (issue 49, "one pipeline").

An AST walk of every module under ``aioflags/``: a place is a function
with an ``except`` handler that maps what a flag's code raised to a
result (it calls ``finish``: MALFORMED_FLAG for an abort, EXCEPTION for a
bug, both logged), or one that runs a flag's code and swallows its abort
(``contextlib.suppress(MalformedAbort)``). The pipeline's own place is
``RUN_HEAD``, the text ``run_head`` and each compiled hook series are
written from; the client's inlined hot path is the other one allowed.
Any other is seen here when it is added.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import aioflags

ROOT = Path(aioflags.__file__).parent

#: Where a flag's code is run and its exceptions mapped in the source,
#: "module:function": Client.variation, the inlined hot path (issue 49).
#: The pipeline's own place, run_head, is written from the text RUN_HEAD
#: (as is every hook series): see the test below.
PLACES = {
    "_client/_client.py:variation",  # the inlined hot path (kept)
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
    """Two handlers in the source: the inlined hot path's, events off and
    events on (kept apart: one block for both cost the events-off path 2 %,
    callgrind). The pipeline's place is RUN_HEAD, a text (below)."""
    assert _places() == {"_client/_client.py:variation": 2}


def test_the_pipelines_place_is_one_text_written_where_heads_run() -> None:
    """``RUN_HEAD`` maps a flag's exceptions; run_head and each hook series are it.

    No other string in the package calls ``finish`` (code written at run
    time would be a place the AST walk above cannot see).
    """
    from aioflags._evaluation import _evaluate
    from aioflags._evaluation._evaluate import RUN_HEAD, run_head

    assert "except Exception as exc:" in RUN_HEAD
    assert "finish(key, exc, head[1] is not None)" in RUN_HEAD
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
