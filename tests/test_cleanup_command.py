"""``aioflags cleanup``: a flag removed from code, on evidence (issue 79).

A sample project is written in a temporary directory: flag files, accessors
``aioflags codegen`` writes, an app with async, blocking and snapshot call
sites, and a test suite of its own, run in a subprocess against
``DataSystem.file`` before and after the rewrite.
"""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aioflags.__main__ import main
from aioflags._lifecycle._cleanup import accessor_names, clean_source

FLAGS = {
    "flags": {
        "new-checkout": {
            "on": True,
            "variations": [True, False],
            "offVariation": 1,
            "fallthrough": {"variation": 0},
        },
        "color": {
            "on": True,
            "variations": ["green", "blue"],
            "fallthrough": {"variation": 0},
        },
    }
}

#: The evidence the sample's runs give: its flag file (new-checkout serves
#: true to everyone).
FLAG_FILE = ["--flags", "flags.json"]

CHECKOUT = '''\
"""The checkout: behind the new-checkout flag."""

from __future__ import annotations

import aioflags
import aioflags.blocking
from aioflags import Context

from app.flags import BlockingFlags, Flags

NEW_CHECKOUT = "new-checkout"
ALL_FLAGS = ["new-checkout", "color"]


async def checkout_steps(client: aioflags.Client, ctx: Context) -> int:
    # Three steps in the new checkout.
    if await client.bool_variation("new-checkout", ctx, False):
        steps = 3  # the new flow
    else:
        # the old flow, kept until the flag goes
        steps = 5
    return steps


async def banner(client: aioflags.Client, ctx: Context) -> str:
    new = await client.variation(NEW_CHECKOUT, ctx, False)
    if not new:
        return "old"
    elif ctx.key == "vip":  # vips first
        return "vip"
    return "new"


async def label(client: aioflags.Client, ctx: Context) -> str:
    flags = Flags(client)
    color = await client.string_variation("color", ctx, "green")
    return ("fast" if await flags.new_checkout(ctx) else "slow") + " " + color


def sync_steps(client: aioflags.blocking.Client, ctx: Context) -> int:
    if client.bool_variation(NEW_CHECKOUT, ctx, False) is True and ctx.key != "x":
        return 3
    return 5


def sync_label(client: aioflags.blocking.Client, ctx: Context) -> str:
    flags = BlockingFlags(client)
    if flags.new_checkout(ctx) == False:
        return "slow"
    return "fast"


def from_snapshot(client: aioflags.blocking.Client, ctx: Context) -> str:
    snapshot = client.snapshot()
    # nested conditions
    if ctx.key:
        if snapshot.variation("new-checkout", ctx, False) or ctx.key == "beta":
            return "new"
        else:
            return "old"
    return "none"


async def reason(client: aioflags.Client, ctx: Context) -> str:
    detail = await client.bool_variation_detail("new-checkout", ctx, False)
    return str(detail.reason["kind"])


async def side_effects(client: aioflags.Client, ctx: Context) -> bool:
    return await client.bool_variation("new-checkout", Context.create(ctx.key), False)


def dynamic(client: aioflags.blocking.Client, ctx: Context, key: str) -> object:
    return client.variation(key, ctx, False)
'''

#: A module with the key constants imported: codegen's, and checkout's.
CART = '''\
"""The cart: the key imported."""

from __future__ import annotations

import aioflags
import aioflags.blocking
from aioflags import Context

from app.checkout import NEW_CHECKOUT
from app.flags import NEW_CHECKOUT_KEY as KEY


async def cart_size(client: aioflags.Client, ctx: Context) -> int:
    if await client.bool_variation(KEY, ctx, False):
        return 10  # room for more
    return 5


def cart_label(client: aioflags.blocking.Client, ctx: Context) -> str:
    return "new" if client.variation(NEW_CHECKOUT, ctx, False) else "old"
'''

CART_AFTER = (
    CART.replace(
        # (the key constants' imports go with their last uses; the blank line
        # before them was theirs)
        """

from app.checkout import NEW_CHECKOUT
from app.flags import NEW_CHECKOUT_KEY as KEY
""",
        "\n",
    )
    .replace(
        """    if await client.bool_variation(KEY, ctx, False):
        return 10  # room for more
    return 5
""",
        """    return 10  # room for more
""",
    )
    .replace('"new" if client.variation(NEW_CHECKOUT, ctx, False) else "old"', '"new"')
)

#: checkout.py after ``cleanup new-checkout --keep true``.
CHECKOUT_AFTER = '''\
"""The checkout: behind the new-checkout flag."""

from __future__ import annotations

import aioflags
import aioflags.blocking
from aioflags import Context

NEW_CHECKOUT = "new-checkout"
ALL_FLAGS = ["new-checkout", "color"]


async def checkout_steps(client: aioflags.Client, ctx: Context) -> int:
    # Three steps in the new checkout.
    steps = 3  # the new flow
    return steps


async def banner(client: aioflags.Client, ctx: Context) -> str:
    if ctx.key == "vip":  # vips first
        return "vip"
    return "new"


async def label(client: aioflags.Client, ctx: Context) -> str:
    color = await client.string_variation("color", ctx, "green")
    return ("fast") + " " + color


def sync_steps(client: aioflags.blocking.Client, ctx: Context) -> int:
    if ctx.key != "x":
        return 3
    return 5


def sync_label(client: aioflags.blocking.Client, ctx: Context) -> str:
    return "fast"


def from_snapshot(client: aioflags.blocking.Client, ctx: Context) -> str:
    # nested conditions
    if ctx.key:
        return "new"
    return "none"


async def reason(client: aioflags.Client, ctx: Context) -> str:
    detail = await client.bool_variation_detail("new-checkout", ctx, False)
    return str(detail.reason["kind"])


async def side_effects(client: aioflags.Client, ctx: Context) -> bool:
    return await client.bool_variation("new-checkout", Context.create(ctx.key), False)


def dynamic(client: aioflags.blocking.Client, ctx: Context, key: str) -> object:
    return client.variation(key, ctx, False)
'''

#: What cleanup leaves in checkout.py, and why (lines of the file before).
LEFT = [
    "left: app/checkout.py:12: the key 'new-checkout' used as data",
    "left: app/checkout.py:65: bool_variation_detail(): the detail (reason, "
    "variation) has no constant",
    "left: app/checkout.py:70: another argument may have side effects (a call, "
    "an await...): rewrite it by hand",
    "left: app/checkout.py:74: variation() with a dynamic key: cannot tell "
    "whether it evaluates 'new-checkout'",
]

SAMPLE_TESTS = """\
import asyncio
from pathlib import Path

import aioflags.blocking
from aioflags import Client, Config, Context, DataSystem

from app import cart, checkout

FLAGS = Path(__file__).parent.parent / "flags.json"


def config():
    return Config(data_system=DataSystem.file(FLAGS), send_events=False)


def test_the_async_client():
    async def run():
        async with Client(config()) as client:
            ctx = Context.create("u")
            assert await checkout.checkout_steps(client, ctx) == 3
            assert await checkout.banner(client, ctx) == "new"
            assert await checkout.banner(client, Context.create("vip")) == "vip"
            assert await checkout.label(client, ctx) == "fast green"
            assert await checkout.reason(client, ctx) == "FALLTHROUGH"
            assert await checkout.side_effects(client, ctx) is True
            assert await cart.cart_size(client, ctx) == 10

    asyncio.run(run())


def test_the_blocking_client_and_a_snapshot():
    with aioflags.blocking.Client(config()) as client:
        ctx = Context.create("u")
        assert checkout.sync_steps(client, ctx) == 3
        assert checkout.sync_steps(client, Context.create("x")) == 5
        assert checkout.sync_label(client, ctx) == "fast"
        assert checkout.from_snapshot(client, ctx) == "new"
        assert checkout.dynamic(client, ctx, "new-checkout") is True
        assert cart.cart_label(client, ctx) == "new"
"""


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample project (the working directory): flags, accessors, app, tests."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flags.json").write_text(json.dumps(FLAGS, indent=2))
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    assert main(["codegen", "flags.json", "-o", "app/flags.py"]) == 0
    (app / "checkout.py").write_text(CHECKOUT)
    (app / "cart.py").write_text(CART)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_app.py").write_text(SAMPLE_TESTS)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings = error\npythonpath = .\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    return tmp_path


def _bytes(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sample_tests(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _unused(root: Path) -> list[str]:
    """Ruff's unused imports and variables under ``root/app`` (not the generated module)."""
    ruff = subprocess.run(
        [
            *(sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated"),
            *("--select", "F401,F841", "--output-format", "concise"),
            *("--exclude", "app/flags.py", "app"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in ruff.stdout.splitlines() if line.startswith("app")]


# --------------------------------------------------------- the rewrite
@pytest.mark.slow
def test_cleanup_folds_the_sample_and_its_tests_still_pass(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _sample_tests(sample)
    assert before.returncode == 0, before.stdout + before.stderr
    assert _unused(sample) == []
    generated = (sample / "app" / "flags.py").read_bytes()

    assert main(["cleanup", "new-checkout", "--keep", "true", "app", *FLAG_FILE]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("app/flags.py: written by `aioflags codegen`, left alone")
    assert "regenerate" in out[0]
    assert [line for line in out if line.startswith("left: ")] == LEFT
    assert out[-1] == "rewrote 8 sites, left 4, 2 files touched"
    after = (sample / "app" / "checkout.py").read_text()
    assert after == CHECKOUT_AFTER
    assert (sample / "app" / "cart.py").read_text() == CART_AFTER
    assert (sample / "app" / "flags.py").read_bytes() == generated

    # Every line it added is one of the old file's, but for the literals
    # that replaced the calls (and the lines that lost a condition).
    added = [
        line[1:]
        for line in difflib.unified_diff(CHECKOUT.splitlines(), after.splitlines(), n=0)
        if line.startswith("+") and not line.startswith("+++")
    ]
    assert added == [
        "    steps = 3  # the new flow",
        '    if ctx.key == "vip":  # vips first',
        '    return ("fast") + " " + color',
        '    if ctx.key != "x":',
        '        return "new"',  # (a block up)
    ]

    after_tests = _sample_tests(sample)
    assert after_tests.returncode == 0, after_tests.stdout + after_tests.stderr
    # Nothing it made is left unused: no import, no variable (ruff's F401,
    # F841, on the sample as it is after; it had none before).
    assert _unused(sample) == []

    # A second run changes nothing.
    files = _bytes(sample / "app")
    assert main(["cleanup", "new-checkout", "app", "--keep", "true", *FLAG_FILE]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == "rewrote 0 sites, left 4, 0 files touched"
    )
    assert _bytes(sample / "app") == files


def test_dry_run_prints_the_diff_and_changes_no_byte(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _bytes(sample)
    assert (
        main(["cleanup", "new-checkout", "--keep", "true", "--dry-run", *FLAG_FILE])
        == 0
    )
    out = capsys.readouterr().out
    assert "--- app/checkout.py\n+++ app/checkout.py (cleaned up)\n" in out
    assert '-    if await client.bool_variation("new-checkout", ctx, False):\n' in out
    assert out.splitlines()[-1] == (
        # (and the sample's own test passes the key to dynamic(): left too)
        "would rewrite 8 sites, left 5, 2 files to touch"
    )
    assert _bytes(sample) == files


# --------------------------------------------------------- the folding
def _clean(source: str, keep: object = True, key: str = "new-checkout") -> str:
    result = clean_source(Path("m.py"), textwrap.dedent(source).encode(), key, keep)
    return result.after.decode()


CALL = 'await client.bool_variation("new-checkout", ctx, False)'


@pytest.mark.parametrize(
    ("source", "keep", "expected"),
    [
        # elif chains: a constant elif folds into else, or goes
        (
            f"if a:\n    x()\nelif {CALL}:\n    y()\nelse:\n    z()\n",
            True,
            "if a:\n    x()\nelse:\n    y()\n",
        ),
        (
            f"if a:\n    x()\nelif {CALL}:\n    y()\nelse:\n    z()\n",
            False,
            "if a:\n    x()\nelse:\n    z()\n",
        ),
        (f"if {CALL}:\n    y()\nelif b:\n    z()\n", False, "if b:\n    z()\n"),
        (f"if not {CALL}:\n    y()\n", True, "\n"),
        (f"x = a if {CALL} else b\n", False, "x = b\n"),
        (f"x = {CALL} and a\n", True, "x = a\n"),
        (f"x = {CALL} or a\n", True, "x = True\n"),
        (f"if a or {CALL}:\n    y()\n", False, "if a:\n    y()\n"),
        (f"x = [v for v in r if {CALL} if v]\n", True, "x = [v for v in r if v]\n"),
        (f"x = [v for v in r if {CALL}]\n", False, "x = [v for v in r if False]\n"),
        # what follows a return a fold brought up is dead
        (
            f"for i in r:\n    if {CALL}:\n        continue\n    z()\nw()\n",
            True,
            "for i in r:\n    continue\nw()\n",
        ),
        # a walrus is no constant; a global is no local
        (f"if (on := {CALL}):\n    y()\n", True, "if (on := True):\n    y()\n"),
        (
            f"def f():\n    global on\n    on = {CALL}\n    if on:\n        y()\n",
            True,
            "def f():\n    global on\n    on = True\n    if on:\n        y()\n",
        ),
        # `del x` is no use that folds: x stays
        (
            f"def f():\n    on = {CALL}\n    if on:\n        y()\n    del on\n",
            True,
            "def f():\n    on = True\n    y()\n    del on\n",
        ),
        # only what a site made constant folds
        ("if True:\n    y()\n", True, "if True:\n    y()\n"),
        # comparisons with a literal
        (
            'if await c.string_variation("new-checkout", ctx, "red") == "green":\n'
            "    y()\nelse:\n    z()\n",
            "green",
            "y()\n",
        ),
        (
            'async def f(c):\n    s = await c.string_variation("new-checkout", ctx, "")\n'
            '    return 1 if s != "green" else 2\n',
            "green",
            "async def f(c):\n    return 2\n",
        ),
        # a module's variable may be imported elsewhere: kept, uses too
        (
            'c = await c.string_variation("new-checkout", ctx, "red")\n'
            'x = 1 if c != "green" else 2\n',
            "green",
            'c = "green"\nx = 1 if c != "green" else 2\n',
        ),
        (f"if {CALL} is None:\n    y()\n", True, "\n"),
        (
            'r = await c.float_variation("new-checkout", ctx, 0.5)\n',
            2,
            "r = 2.0\n",
        ),
        (
            'v = await c.json_variation("new-checkout", ctx, {})\n',
            {"a": [1, None]},
            'v = {"a": [1, None]}\n',
        ),
    ],
)
def test_it_folds_what_the_constant_makes_dead(
    source: str, keep: object, expected: str
) -> None:
    assert _clean(source, keep) == expected


def test_a_local_assigned_from_the_flag_goes_with_the_conditions_that_fold() -> None:
    source = f"""\
    async def f(client, ctx):
        # the flag
        on = {CALL}
        if on:
            return 1
        return 2


    async def g(client, ctx):
        on = {CALL}
        log(on)  # used as a value: kept, as the constant
        if on:
            return 1
        return 2
    """
    assert _clean(source) == textwrap.dedent(
        """\
        async def f(client, ctx):
            return 1


        async def g(client, ctx):
            on = True
            log(on)  # used as a value: kept, as the constant
            return 1
        """
    )


def test_a_block_left_empty_says_pass() -> None:
    assert _clean(f"def f():\n    if {CALL}:\n        y()\n", False) == (
        "def f():\n    pass\n"
    )


def test_a_value_of_another_type_than_the_method_returns_is_left() -> None:
    source = 'x = await c.bool_variation("new-checkout", ctx, False)\n'
    result = clean_source(Path("m.py"), source.encode(), "new-checkout", "green")
    assert result.after == result.before
    assert [str(left) for left in result.left] == [
        'm.py:1: bool_variation() cannot return "green": it serves its default '
        "for a value of another type"
    ]


def test_a_call_passed_on_unawaited_in_an_async_function_is_left() -> None:
    source = (
        "async def f(client, ctx):\n"
        '    task = asyncio.create_task(client.bool_variation("new-checkout", ctx, False))\n'
        "    return await task\n"
        "\n"
        "\n"
        "def g(snapshot, ctx):\n"
        '    return str(snapshot.variation("new-checkout", ctx, False))\n'
    )
    result = clean_source(Path("m.py"), source.encode(), "new-checkout", True)
    assert result.after.decode() == source.replace(
        'snapshot.variation("new-checkout", ctx, False)', "True"
    )
    assert [str(left) for left in result.left] == [
        "m.py:2: passed on un-awaited in an async function (a coroutine, to "
        "create_task or gather?): rewrite it by hand"
    ]


def test_the_accessor_is_named_as_codegen_names_it() -> None:
    assert accessor_names("new-checkout") == {"new_checkout", "new_checkout_"}
    assert accessor_names("class") == {"class", "class_"}


# --------------------------------------------------------- the evidence
def _coverage(served: dict[str, dict[str, int]]) -> dict[str, object]:
    branches = {b: sum(v.values()) for b, v in served.items()}
    flag = {"branches": branches, "covered": 1, "total": 2, "served": served}
    return {"flags": {"new-checkout": flag}, "covered": 1, "total": 2, "percent": 50.0}


def _usage(flags: dict[str, object], available: bool = True) -> dict[str, object]:
    return {
        "available": available,
        "reason": None if available else "events are off",
        "counting": available,
        "since": "2026-11-01T00:00:00+00:00",
        "flags": flags,
        "never_evaluated": [],
    }


def _usage_flag(values: dict[str, int], defaults: int = 0) -> dict[str, object]:
    variations = [{"value": json.loads(v), "evaluations": n} for v, n in values.items()]
    return {
        "key": "new-checkout",
        "evaluations": sum(values.values()) + defaults,
        "variations": variations,
        "defaults": defaults,
        "last_evaluated": "2026-11-20T00:00:00+00:00",
        "overridden": 0,
    }


@pytest.mark.parametrize(
    ("evidence", "says"),
    [
        (
            _coverage({"fallthrough": {"false": 2}}),
            "branch fallthrough of 'new-checkout' served false",
        ),
        (
            # an older report: a branch taken, its value unknown
            {
                "flags": {
                    "new-checkout": {
                        "branches": {"rule:beta": 1},
                        "covered": 1,
                        "total": 1,
                    }
                },
                "covered": 1,
                "total": 1,
                "percent": 100.0,
            },
            "branch rule:beta of 'new-checkout' was taken, and the report does not say what it served",
        ),
        (
            {"flags": {}, "covered": 0, "total": 0, "percent": 100.0},
            "the test session never evaluated 'new-checkout'",
        ),
        (
            _usage({"new-checkout": _usage_flag({"true": 5, "false": 1})}),
            "'new-checkout' served false (1 evaluations), not true",
        ),
        (
            _usage({"new-checkout": _usage_flag({"true": 5}, defaults=2)}),
            "served the caller's default 2 times",
        ),
        (_usage({}), "'new-checkout' was not evaluated in the window"),
        (_usage({}, available=False), "usage has no figures (events are off)"),
    ],
)
def test_evidence_against_keep_refuses_and_changes_no_byte(
    sample: Path, capsys: pytest.CaptureFixture[str], evidence: object, says: str
) -> None:
    (sample / "evidence.json").write_text(json.dumps(evidence))
    files = _bytes(sample)
    argv = [
        "cleanup",
        "new-checkout",
        "--keep",
        "true",
        "app",
        "--evidence",
        "evidence.json",
    ]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert says in captured.out
    assert "refused" in captured.err
    assert _bytes(sample) == files
    assert main([*argv, "--force"]) == 0
    assert (sample / "app" / "checkout.py").read_text() == CHECKOUT_AFTER


def test_evidence_that_agrees_lets_it_through(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample / "coverage.json").write_text(
        json.dumps(_coverage({"fallthrough": {"true": 3}, "off": {"true": 1}}))
    )
    (sample / "usage.json").write_text(
        json.dumps(_usage({"new-checkout": _usage_flag({"true": 9})}))
    )
    argv = ["cleanup", "new-checkout", "--keep", "true", "app"]
    argv += ["--evidence", "coverage.json", "--evidence", "usage.json"]
    assert main([*argv, "--flags", "flags.json"]) == 0
    assert (sample / "app" / "checkout.py").read_text() == CHECKOUT_AFTER


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        (
            {"on": True, "variations": [True, False], "fallthrough": {"variation": 1}},
            "falls through to a variation that serves false, not true",
        ),
        (
            {
                "on": False,
                "variations": [True, False],
                "offVariation": 1,
                "fallthrough": {"variation": 0},
            },
            "is off and its off variation serves false",
        ),
        (
            {"on": False, "variations": [True, False], "fallthrough": {"variation": 0}},
            "serves no variation (the caller's default)",
        ),
        (
            {
                "on": True,
                "variations": [True, False],
                "fallthrough": {"variation": 0},
                "rules": [
                    {
                        "id": "r",
                        "variation": 0,
                        "clauses": [{"attribute": "key", "op": "in", "values": ["a"]}],
                    }
                ],
            },
            "has rules: not everyone gets the same value",
        ),
        (
            {
                "on": True,
                "variations": [True, False],
                "fallthrough": {
                    "rollout": {
                        "variations": [
                            {"variation": 0, "weight": 50000},
                            {"variation": 1, "weight": 50000},
                        ]
                    }
                },
            },
            "falls through to a rollout",
        ),
    ],
)
def test_targeting_that_does_not_serve_keep_to_everyone_refuses(
    sample: Path, capsys: pytest.CaptureFixture[str], flag: dict[str, object], says: str
) -> None:
    (sample / "now.json").write_text(json.dumps({"flags": {"new-checkout": flag}}))
    files = _bytes(sample)
    assert (
        main(["cleanup", "new-checkout", "--keep", "true", "--flags", "now.json"]) == 1
    )
    assert says in capsys.readouterr().out
    assert _bytes(sample) == files


@pytest.mark.slow
def test_the_pytest_plugins_coverage_json_is_evidence(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = _sample_tests(
        sample, "--aioflags-coverage", "--aioflags-coverage-json", "cov.json"
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    files = _bytes(sample / "app")
    assert (
        main(["cleanup", "new-checkout", "--keep", "false", "--evidence", "cov.json"])
        == 1
    )
    assert "served true" in capsys.readouterr().out
    assert _bytes(sample / "app") == files
    assert (
        main(
            [
                "cleanup",
                "new-checkout",
                "--keep",
                "true",
                "--evidence",
                "cov.json",
                "app",
            ]
        )
        == 0
    )
    assert (sample / "app" / "checkout.py").read_text() == CHECKOUT_AFTER


# ------------------------------------------------------- usage errors
def test_usage_errors_are_exit_2(
    sample: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _bytes(sample / "app")
    assert main(["cleanup", "new-checkout", "--keep", "true", "nowhere"]) == 2
    assert "nowhere: no such file or directory" in capsys.readouterr().err
    assert (
        main(["cleanup", "new-checkout", "--keep", "true", "--evidence", "nope.json"])
        == 2
    )
    assert "nope.json: cannot read it" in capsys.readouterr().err
    (sample / "bad.json").write_text("{")
    assert (
        main(["cleanup", "new-checkout", "--keep", "true", "--evidence", "bad.json"])
        == 2
    )
    assert "bad.json: not JSON" in capsys.readouterr().err
    (sample / "other.json").write_text("[]")
    assert (
        main(["cleanup", "new-checkout", "--keep", "true", "--evidence", "other.json"])
        == 2
    )
    assert "neither a flag coverage report" in capsys.readouterr().err
    assert main(["cleanup", "new-checkout", "--keep", "green"]) == 2
    assert "not JSON" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "libcst", None)
    assert main(["cleanup", "new-checkout", "--keep", "true"]) == 2
    assert "pip install 'aioflags[codemod]'" in capsys.readouterr().err
    assert _bytes(sample / "app") == files
