"""The package's layers (docs/architecture.md): imports run down, never up, never in a cycle.

An AST walk of every module under ``aioflags/``: every import of an
``aioflags`` module, at the top or inside a function, counts. Those under
``if TYPE_CHECKING:`` (annotations only, never executed) count apart: they
name no upper layer either (a type a higher layer hands down is named by a
Protocol of its own layer or a lower one), and close no cycle but those
TYPE_CYCLES lists. The layers below are the ones
docs/architecture.md draws; a module may import from its own layer's
package or from any lower layer.
"""

from __future__ import annotations

import ast
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

import aioflags

ROOT = Path(aioflags.__file__).parent

#: Lowest first. A module belongs to the first entry that is its name or a
#: package containing it; the public modules (``aioflags`` and its
#: documented submodules) are the top layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("aioflags._version",),
    ("aioflags._core",),
    ("aioflags._evaluation",),
    # A flag system's package spans layers: each part sits where it belongs
    # (a more specific entry, in a lower layer, wins over ``_systems``'s).
    ("aioflags._systems._flagd._engine",),
    ("aioflags._datasystem._datatypes",),
    ("aioflags._datasystem._patterns",),
    ("aioflags._systems._flagd._data",),
    (
        "aioflags._datasystem._context",
        "aioflags._datasystem._mirror",
        "aioflags._datasystem._options",
        "aioflags._datasystem._payloads",
    ),
    ("aioflags._datasystem._sources", "aioflags._datasystem._stores"),
    ("aioflags._systems._flagd._sync",),
    ("aioflags._datasystem._store",),
    ("aioflags._datasystem._plane",),
    ("aioflags._datasystem._config",),
    ("aioflags._datasystem._failover",),
    ("aioflags._datasystem._supervisor",),
    ("aioflags._analytics",),
    ("aioflags._lens",),
    ("aioflags._guards",),
    ("aioflags._client", "aioflags._asgi"),
    ("aioflags._systems",),
    ("aioflags._ofrep", "aioflags._diff", "aioflags._lifecycle"),
    ("aioflags._service",),
    ("aioflags._testing",),
    ("aioflags._cli",),
)
PUBLIC = len(LAYERS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _group(module: str) -> tuple[int, str]:
    """The layer index and the package (layer entry) a module belongs to."""
    for rank, entries in enumerate(LAYERS):
        for entry in entries:
            if module == entry or module.startswith(entry + "."):
                return rank, entry
    return PUBLIC, "aioflags"


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``), exactly."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, *, annotations: bool = False) -> set[str]:
    """The aioflags modules ``module`` imports at run time (``annotations``: or for types)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if (
            isinstance(node, ast.If)
            and _is_type_checking(node.test)
            and not annotations
        ):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("aioflags"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] == "aioflags":
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    visit(tree)
    if _dynamic_imports(path):
        # Modules imported by name (the client's start-up imports them ahead
        # of use) count too: every aioflags module name written as a string.
        found.update(
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and n.value.startswith("aioflags.")
            and n.value in MODULES
        )
    found.discard(module)
    return {m for m in found if m in MODULES}


def _dynamic_imports(path: Path) -> list[str]:
    """Calls of ``import_module`` or ``__import__`` (the walk reads their names as strings)."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else getattr(func, "id", "")
            )
            named = (
                node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and not node.args[0].value.startswith("aioflags")
            )
            if name in ("import_module", "__import__") and not named:
                # (a literal outside aioflags, e.g. "re._parser", hides no edge)
                calls.append(ast.unparse(node))
    return calls


GRAPH: dict[str, set[str]] = {m: _imports(m, p) for m, p in MODULES.items()}
#: With the imports made for annotations only (under ``if TYPE_CHECKING:``).
TYPED: dict[str, set[str]] = {
    m: _imports(m, p, annotations=True) for m, p in MODULES.items()
}


def _public() -> set[str]:
    """``aioflags``, its documented submodules and ``__main__``.

    A module inside a private package is private whatever its own name (the
    flagd sync protocol's generated ``sync_pb2``, named by protoc).
    """
    return {
        m
        for m in MODULES
        if m == "aioflags.__main__"
        or not any(part.startswith("_") for part in m.split(".")[1:])
    }


def test_every_private_module_has_a_layer() -> None:
    public = _public()
    unplaced = [
        m
        for m in MODULES
        if _group(m)[0] == PUBLIC
        and m not in public
        and GRAPH[m]  # a bare package is not placed
    ]
    assert unplaced == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_down_the_layers(module: str) -> None:
    rank, entry = _group(module)
    upward = []
    for target in sorted(GRAPH[module]):
        target_rank, target_entry = _group(target)
        if target_rank > rank or (target_rank == rank and target_entry != entry):
            upward.append(target)
    assert upward == [], f"{module} imports from its own layer or above: {upward}"


def _upward(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    edges = set()
    for module, targets in graph.items():
        rank, entry = _group(module)
        for target in targets:
            target_rank, target_entry = _group(target)
            if target_rank > rank or (target_rank == rank and target_entry != entry):
                edges.add((module, target))
    return edges


def test_annotations_name_no_upper_layer() -> None:
    # (The imports made to run are test_imports_run_down_the_layers's.)
    assert _upward(TYPED) - _upward(GRAPH) == set()


@pytest.mark.slow
def test_imports_by_name_are_found_by_the_walk() -> None:
    # A dynamic import the walk cannot read would hide an edge: private
    # modules import others by name only from a list of string constants.
    for module, path in MODULES.items():
        if _group(module)[0] == PUBLIC:
            continue
        for call in _dynamic_imports(path):
            assert any(
                isinstance(n, ast.Constant)
                and isinstance(n.value, str)
                and n.value.startswith("aioflags.")
                for n in ast.walk(ast.parse(path.read_text("utf-8")))
            ), f"{module}: {call} imports a name the layering test cannot see"


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(module: str, stack: list[str]) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                walk(target, stack)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module, [])
    assert cycles == []


def _components(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module: the cycles (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = {stack.pop()}
            while module not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


#: The cycles that annotations (``if TYPE_CHECKING:`` imports) still close,
#: each a strongly connected component, and why. Issue 39 is to break them;
#: a new one fails test_no_cycles_through_annotations_but_those_listed, and
#: one broken must leave this list.
TYPE_CYCLES: dict[frozenset[str], str] = {}


def test_no_cycles_through_annotations_but_those_listed() -> None:
    assert _components(GRAPH) == []  # at run time: none at all
    assert set(_components(TYPED)) == set(TYPE_CYCLES)


def test_below_the_client_the_configuration_is_a_protocol() -> None:
    # Config holds the DataSystem (whose sources take a SourceContext) and
    # the hooks, so nothing below the client names it: those layers name
    # _core/_settings.py's Settings, every plain option of Config, and
    # Config satisfies it (mypy checks each place one is handed down).
    below = [
        m
        for m, targets in TYPED.items()
        if "aioflags._client._config" in targets
        and _group(m)[0] < _group("aioflags._client._config")[0]
    ]
    assert below == []
    from aioflags._core._settings import Settings

    members = {n for n, v in vars(Settings).items() if isinstance(v, property)}
    derived = {n for n, v in vars(aioflags.Config).items() if isinstance(v, property)}
    holding = {
        "data_system",
        "hooks",
        "big_segments",
        "lens",
        "metrics",
        "guards",
    }  # objects of higher layers
    assert members == (set(aioflags.Config.__slots__) - holding) | derived


def test_the_walk_sees_imports() -> None:
    # A walk that found nothing would pass every test above.
    assert "aioflags._evaluation._codegen" in GRAPH["aioflags._evaluation._model"]
    # Function-level and by-name imports count: the lifecycle imports these so.
    assert "aioflags._client._status" in GRAPH["aioflags._client._lifecycle"]
    assert (
        "aioflags._datasystem._sources._polling" in GRAPH["aioflags._client._lifecycle"]
    )
    # ...and TYPE_CHECKING imports do not (the evaluator names the processor).
    assert "aioflags._analytics._processor" not in GRAPH["aioflags._client._evaluator"]
    assert "aioflags._analytics._processor" in TYPED["aioflags._client._evaluator"]
    assert "aioflags._core._settings" in TYPED["aioflags._datasystem._context"]
    assert (
        _group("aioflags._evaluation._model")[0]
        < _group("aioflags._datasystem._store")[0]
    )
    assert "aioflags._datasystem._store" in GRAPH["aioflags._client._client"]
    assert sum(len(v) for v in GRAPH.values()) > 100


ARCHITECTURE = ROOT.parent / "docs" / "architecture.md"


def _section(title: str) -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_architecture_page_draws_these_layers() -> None:
    rows = [
        line.split("|")[2]
        for line in _section("Layers").splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ]
    drawn = [tuple(name.strip(" `") for name in row.split(",")) for row in rows]
    assert drawn[:-1] == list(LAYERS)
    assert set(drawn[-1]) == _public()


def _summary(path: Path) -> str:
    """A module's docstring's first paragraph, as the page's table cell."""
    doc = ast.get_docstring(ast.parse(path.read_text("utf-8"))) or ""
    return doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")


@pytest.mark.slow
def test_the_architecture_page_lists_every_module_with_its_docstring() -> None:
    rows = {
        line.split("`")[1]: line.split(" | ", 1)[1].removesuffix(" |")
        for line in _section("Modules").splitlines()
        if line.startswith("| `aioflags/")
    }
    expected = {
        str(p.relative_to(ROOT.parent)): _summary(p) for p in ROOT.rglob("*.py")
    }
    assert rows == expected


def _calls_up(
    run: Callable[[], object],
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The calls between aioflags modules while ``run`` runs: (up a layer, down).

    A call is *up* when the called function's module sits in a higher layer
    than its caller's, or in the same layer's other entry: a callback, which
    the import graph cannot show (the lower module holds a function or an
    object the higher one handed it).
    """
    up: set[tuple[str, str]] = set()
    down: set[tuple[str, str]] = set()

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event != "call" or frame.f_back is None:
            return
        callee = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "")
        if callee == caller or not (
            callee.startswith("aioflags.") and caller.startswith("aioflags.")
        ):
            return
        (rank, entry), (caller_rank, caller_entry) = _group(callee), _group(caller)
        if rank > caller_rank or (rank == caller_rank and entry != caller_entry):
            up.add((caller, callee))
        else:
            down.add((caller, callee))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return up, down


def test_a_change_set_runs_down_the_layers_from_ingest_to_evaluation() -> None:
    # Issue 49: ingest in one direction. The store asks the model to compile
    # (through the tables it builds), and an evaluation that compiles a flag
    # on its first lookup never calls back into the store: no call from
    # parse to first evaluation runs up a layer. The flags reach a `matches`
    # pattern, a segment, a prerequisite and a rollout; a delta then lays an
    # overlay over the table, evaluated as well.
    import anyio

    from aioflags import Context
    from aioflags._datasystem._payloads import parse_fdv2_poll_text
    from aioflags._datasystem._store import Store

    rules = [
        {
            "id": "r",
            "variation": 0,
            "clauses": [
                {"attribute": "email", "op": "matches", "values": ["@example\\.org$"]},
                {"attribute": "key", "op": "segmentMatch", "values": ["s"]},
            ],
        }
    ]
    rollout = {
        "variations": [
            {"variation": 0, "weight": 50000},
            {"variation": 1, "weight": 50000},
        ]
    }
    flags = {
        "f": {"on": True, "rules": rules, "fallthrough": {"variation": 1}},
        "g": {
            "on": True,
            "prerequisites": [{"key": "f", "variation": 0}],
            "fallthrough": {"rollout": rollout},
        },
    }

    def put(
        kind: str, key: str, obj: dict[str, object], version: int = 1
    ) -> dict[str, object]:
        body = {"key": key, "version": version, **obj}
        if kind == "flag":
            body.update(variations=[True, False], offVariation=1)
        data = {"kind": kind, "key": key, "version": version, "object": body}
        return {"event": "put-object", "data": data}

    def payload(intent: str, *puts: dict[str, object]) -> str:
        target = {"id": "p", "target": 1, "intentCode": intent}
        events = [
            {"event": "server-intent", "data": {"payloads": [target]}},
            *puts,
            {"event": "payload-transferred", "data": {"state": intent, "version": 1}},
        ]
        return json.dumps({"events": events})

    first = anyio.run(
        parse_fdv2_poll_text,
        payload(
            "xfer-full",
            *(put("flag", k, v) for k, v in flags.items()),
            put("segment", "s", {"included": ["u"]}),
        ),
    )
    second = anyio.run(
        parse_fdv2_poll_text,
        payload("xfer-changes", put("flag", "g", flags["g"], version=2)),
    )
    user = Context.from_dict({"kind": "user", "key": "u", "email": "u@example.org"})
    store = Store()
    answers: list[object] = []

    def ingest_and_evaluate() -> None:
        store.apply_now(first)
        answers.append(store.snapshot.variation("g", user, None))
        store.apply_now(second)
        answers.append(store.snapshot.variation("g", user, None))
        answers.append(store.snapshot.variation_detail("f", user, None).value)

    up, down = _calls_up(ingest_and_evaluate)
    assert answers[2] is True and answers[0] in (True, False)
    assert up == set()
    # The walk saw the calls: the store's into the tables and the model,
    # the evaluation's lookups (Matcher) into the tables, which compile
    # with the model.
    assert {
        ("aioflags._datasystem._store", "aioflags._evaluation._tables"),
        ("aioflags._evaluation._tables", "aioflags._evaluation._model"),
        ("aioflags._evaluation._evaluate", "aioflags._evaluation._tables"),
    } <= down
