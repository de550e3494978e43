"""Every aioflags tool on flagd flags (issue 88): each test writes a flagd file.

``aioflags eval``, OFREP (``aioflags serve`` and ``OFREPApp``), ``codegen``,
``cleanup``, flag coverage, ``usage()`` and hooks, the lens, the console
and ``aioflags diff``, each on flags read from flagd's flag definition
format (docs/flagd.md, "Every tool on flagd flags").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openfeature.flag_evaluation import Reason

import aioflags
from aioflags import Config, Context, DataSystem
from aioflags.__main__ import main
from aioflags._datasystem._sources._files import load_flag_files, parse_flag_files
from aioflags._datasystem._store import snapshot_from_data
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagServer
from tests.processes import HTTP_GUARD, MYPY_TEST_TIMEOUT, mypy_strict
from tests.test_ofrep import _resolve

#: A flag set with no targeting: what each tool can do before JsonLogic.
DOCUMENT: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "metadata": {"flagSetId": "shop"},
    "flags": {
        "theme": {
            "state": "ENABLED",
            "variants": {"light": "#fff", "dark": "#000"},
            "defaultVariant": "dark",
            "metadata": {"owner": "ui", "rank": 2},
        },
        "beta": {
            "state": "DISABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
        "limit": {
            "state": "ENABLED",
            "variants": {"low": 10, "high": 20},
            "defaultVariant": None,
        },
    },
}
#: A LaunchDarkly flag beside them (a mixed data set).
LD_FLAGS: dict[str, Any] = {
    "flags": {
        "banner": {
            "on": True,
            "variations": ["red", "blue"],
            "fallthrough": {"variation": 0},
            "offVariation": 1,
        }
    }
}
GUARD = 30  # a guard against a hang, never a timing the test relies on


def load_flag_files_of(
    document: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A flagd document's flags as a flag file of it gives them."""
    return parse_flag_files([(Path("flags.flagd.json"), json.dumps(document).encode())])


def write(path: Path, document: dict[str, Any] = DOCUMENT) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def flagd_file(tmp_path: Path) -> Path:
    return write(tmp_path / "flags.flagd.json")


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flags of a flagd file and a LaunchDarkly flag file, as ``serve`` reads them."""
    return load_flag_files(
        write(tmp_path / "flags.flagd.json"),
        write(tmp_path / "ld.json", LD_FLAGS),
    )


pytest_plugins = ["pytester"]


# -------------------------------------------------------------- aioflags eval
def test_eval_reads_flagd_s_context_and_names_the_variant(
    flagd_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = ["--file", str(flagd_file)]
    # flagd's evaluation context: no targeting key needed.
    assert main(["eval", "theme", "--context", "{}", *file]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "key": "theme",
        "value": "#000",
        "variationIndex": 1,
        "reason": {"kind": "STATIC"},
        "variant": "dark",
        "status": "READY",
    }
    context = '{"targetingKey": "u1", "plan": "pro"}'
    assert main(["eval", "beta", "--context", context, *file]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["value"], answer["reason"], answer["variant"]) == (
        None,
        {"kind": "DISABLED"},
        None,
    )
    # A plain key, and LaunchDarkly's context JSON, still work: the key is
    # the targeting key.
    assert main(["eval", "theme", "--context", "u1", *file]) == 0
    assert json.loads(capsys.readouterr().out)["variant"] == "dark"
    assert (
        main(["eval", "limit", "--context", '{"kind": "user", "key": "u"}', *file]) == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert (answer["value"], answer["reason"]) == (None, {"kind": "DEFAULT"})
    # Targeting reads flagd's context: no key, attributes under their names.
    ruled = write(flagd_file.with_name("ruled.flagd.json"), CLEANUP_DOCUMENT)
    context = '{"plan": "pro"}'
    assert main(["eval", "ruled", "--context", context, "--file", str(ruled)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["value"], answer["reason"], answer["variant"]) == (
        True,
        {"kind": "TARGETING_MATCH"},
        "on",
    )
    assert main(["eval", "ruled", "--context", "{}", "--file", str(ruled)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["value"], answer["reason"], answer["variant"]) == (
        False,
        {"kind": "DEFAULT"},
        "off",
    )
    # A targeting key that is not a string is refused, said in one line.
    assert main(["eval", "theme", "--context", '{"targetingKey": 3}', *file]) == 2
    assert "targeting key must be a string" in capsys.readouterr().err


# ---------------------------------------------------------------------- OFREP
@pytest.mark.asyncio
async def test_ofrep_answers_a_flagd_flag_with_its_variant_reason_and_metadata(
    mixed: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    async with (
        FlagServer(*mixed) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        # No targeting key: a flagd flag needs none.
        answer = await http.post("/ofrep/v1/evaluate/flags/theme", json={})
        assert answer.status_code == 200
        assert answer.json() == {
            "key": "theme",
            "value": "#000",
            "variant": "dark",
            "reason": "STATIC",
            "metadata": {"flagSetId": "shop", "owner": "ui", "rank": 2},
        }
        answer = await http.post("/ofrep/v1/evaluate/flags/beta", json={})
        assert answer.json() == {
            "key": "beta",
            "reason": "DISABLED",
            "variant": "",  # (OpenFeature's Python OFREP provider needs one)
            "metadata": {"flagSetId": "shop"},
        }
        # No default variant: the code default, reason DEFAULT.
        answer = await http.post("/ofrep/v1/evaluate/flags/limit", json={})
        assert answer.json() == {
            "key": "limit",
            "reason": "DEFAULT",
            "variant": "",
            "metadata": {"flagSetId": "shop"},
        }
        # A LaunchDarkly flag still needs its key, and answers as it did.
        answer = await http.post("/ofrep/v1/evaluate/flags/banner", json={})
        assert answer.status_code == 400
        assert answer.json()["errorCode"] == "TARGETING_KEY_MISSING"
        u1 = {"context": {"targetingKey": "u1"}}
        answer = await http.post("/ofrep/v1/evaluate/flags/banner", json=u1)
        assert answer.json() == {
            "key": "banner",
            "value": "red",
            "variant": "0",
            "reason": "STATIC",
            "metadata": {"version": 1, "ldReason": "FALLTHROUGH"},
        }
        # An unknown key is not found, whatever the context lacks.
        answer = await http.post("/ofrep/v1/evaluate/flags/nope", json={})
        assert (answer.status_code, answer.json()["errorCode"]) == (
            404,
            "FLAG_NOT_FOUND",
        )


@pytest.mark.asyncio
async def test_ofrep_bulk_maps_each_flag_s_context_by_its_own_system(
    mixed: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    async with (
        FlagServer(*mixed) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        # Without a targeting key: the flagd flags evaluate, the LaunchDarkly
        # flag says what it lacks.
        answer = await http.post("/ofrep/v1/evaluate/flags", json={})
        assert answer.status_code == 200
        items = {item["key"]: item for item in answer.json()["flags"]}
        assert items["banner"] == {
            "key": "banner",
            "errorCode": "TARGETING_KEY_MISSING",
            "errorDetails": items["banner"]["errorDetails"],
        }
        assert items["theme"]["variant"] == "dark"
        assert items["theme"]["metadata"]["owner"] == "ui"
        assert items["beta"]["reason"] == "DISABLED" and "value" not in items["beta"]
        # With one, every flag evaluates, each with its own system's context.
        u1 = {"context": {"targetingKey": "u1", "kind": "user"}}
        answer = await http.post("/ofrep/v1/evaluate/flags", json=u1)
        items = {item["key"]: item for item in answer.json()["flags"]}
        assert items["banner"]["value"] == "red"
        assert items["theme"]["value"] == "#000"
        assert sorted(items) == ["banner", "beta", "limit", "theme"]
    # A data set of LaunchDarkly flags alone refuses the request as before.
    async with (
        FlagServer(*load_flag_files(write(tmp_path / "ld.json", LD_FLAGS))) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        answer = await http.post("/ofrep/v1/evaluate/flags", json={})
        assert (answer.status_code, answer.json()["errorCode"]) == (
            400,
            "TARGETING_KEY_MISSING",
        )


@pytest.mark.asyncio
async def test_ofrep_evaluates_flagd_targeting_on_flagd_s_context(
    tmp_path: Path,
) -> None:
    flags = load_flag_files(write(tmp_path / "flags.flagd.json", CLEANUP_DOCUMENT))
    async with (
        FlagServer(*flags) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        pro = {"context": {"plan": "pro"}}  # no targeting key
        answer = await http.post("/ofrep/v1/evaluate/flags/ruled", json=pro)
        assert answer.json() == {
            "key": "ruled",
            "value": True,
            "variant": "on",
            "reason": "TARGETING_MATCH",
            "metadata": {},
        }
        answer = await http.post("/ofrep/v1/evaluate/flags/ruled", json={})
        assert (answer.json()["variant"], answer.json()["reason"]) == ("off", "DEFAULT")
        bulk = await http.post("/ofrep/v1/evaluate/flags", json=pro)
        items = {item["key"]: item for item in bulk.json()["flags"]}
        assert items["ruled"]["variant"] == "on"


@pytest.mark.asyncio
async def test_ofrep_app_over_a_client_reading_a_flagd_file(flagd_file: Path) -> None:
    config = Config(data_system=DataSystem.file(flagd_file), send_events=False)
    async with aioflags.Client(config) as client:
        for expose, status in (("all", 200), ("client-side", 404)):
            app = OFREPApp(client, expose=expose)  # type: ignore[arg-type]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                timeout=HTTP_GUARD, transport=transport, base_url="http://app"
            ) as http:
                answer = await http.post("/ofrep/v1/evaluate/flags/theme", json={})
                assert answer.status_code == status, expose
                if status == 200:
                    assert answer.json()["variant"] == "dark"
                bulk = await http.post("/ofrep/v1/evaluate/flags", json={})
                keys = [item["key"] for item in bulk.json()["flags"]]
                # (a flagd flag has no client-side mark: expose="all" serves it)
                assert keys == (["beta", "limit", "theme"] if status == 200 else [])


@pytest.mark.asyncio
async def test_openfeature_s_ofrep_provider_reads_a_flagd_flag_from_serve(
    mixed: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    async with FlagServer(*mixed) as server:
        theme, banner = await anyio.to_thread.run_sync(
            _resolve,
            server.url,
            "ofrep-flagd",
            [
                ("string", "theme", "?", {}),
                ("string", "banner", "?", {"targetingKey": "u1"}),
            ],
        )
    assert (theme.value, theme.variant, theme.reason) == ("#000", "dark", Reason.STATIC)
    assert theme.flag_metadata == {"flagSetId": "shop", "owner": "ui", "rank": 2}
    assert (banner.value, banner.variant) == ("red", "0")


# -------------------------------------------------------------------- codegen
CODEGEN_DOCUMENT: dict[str, Any] = {
    "flags": {
        **DOCUMENT["flags"],
        "mixed": {
            "state": "ENABLED",
            "variants": {"one": 1, "word": "x"},
            "defaultVariant": "word",
            "metadata": {"description": "Numbers or words."},
        },
        "stray": {
            "state": "ENABLED",
            "variants": {"a": "x", "b": "y"},
            "defaultVariant": "c",
        },
    }
}

CODEGEN_CALLER = """\
from __future__ import annotations

import aioflags
from aioflags import Context

from flagd_mod import Flags, Theme


async def use(client: aioflags.Client) -> None:
    flags = Flags(client)
    ctx = Context.create("u")
    theme: Theme = await flags.theme(ctx)
    beta: bool = await flags.beta(ctx)
    limit: int = await flags.limit(ctx)
    print(theme, beta, limit, await flags.mixed(ctx))


async def wrong(flags: Flags) -> bool:
    return await flags.theme(Context.create("u")) == "purple"
"""


@pytest.mark.slow
@pytest.mark.timeout(MYPY_TEST_TIMEOUT)
@pytest.mark.asyncio
async def test_codegen_types_a_flagd_flag_by_its_variants_and_defaults_to_its_default_variant(
    tmp_path: Path, mypy_cache: Path
) -> None:
    from tests.test_codegen_command import _load

    source = write(tmp_path / "flags.flagd.json", CODEGEN_DOCUMENT)
    out = tmp_path / "flagd_mod.py"
    assert main(["codegen", str(source), "-o", str(out)]) == 0
    text = out.read_text()
    # Types from the variants; the default is the default variant's value,
    # the first variant's where there is none; the docstring names them.
    assert 'Theme: TypeAlias = Literal["#fff", "#000"]' in text
    assert "async def limit(self, context: Context) -> int:" in text
    assert "async def mixed(self, context: Context) -> JSON:" in text
    assert 'string_variation(THEME_KEY, context, "#000")' in text
    assert "bool_variation(BETA_KEY, context, True)" in text
    assert "int_variation(LIMIT_KEY, context, 10)" in text
    assert 'json_variation(MIXED_KEY, context, "x")' in text
    assert 'Variants: "light" = "#fff", "dark" = "#000".' in text
    assert '"#000", its default variant ("dark")' in text
    assert "10, its first variant (it has no default variant)" in text
    assert 'string_variation(STRAY_KEY, context, "x")' in text
    assert '"x", its first variant (its default variant names none)' in text
    assert "Numbers or words." in text
    # It imports and works on a client reading the same file.
    module = _load(out)
    config = Config(data_system=DataSystem.file(source), send_events=False)
    async with aioflags.Client(config) as client:
        flags = module.Flags(client)
        ctx = Context.create("u1")
        assert await flags.theme(ctx) == "#000"
        assert await flags.beta(ctx) is True  # DISABLED: the code default
        assert await flags.limit(ctx) == 10
        assert await flags.mixed(ctx) == "x"
        detail = await flags.theme_detail(ctx)
        assert (detail.variation_index, detail.reason) == (1, {"kind": "STATIC"})
    # mypy --strict takes it, and a wrong use of it is caught.
    (tmp_path / "caller.py").write_text(CODEGEN_CALLER)
    result = await anyio.to_thread.run_sync(
        lambda: mypy_strict(tmp_path, mypy_cache, "flagd_mod.py", "caller.py")
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith("caller.py:19: error: Non-overlapping equality check")


# -------------------------------------------------------------------- cleanup
CLEANUP_DOCUMENT: dict[str, Any] = {
    "flags": {
        **DOCUMENT["flags"],
        "new-checkout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
        "ruled": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "on", None]},
        },
    }
}

APP = """\
from aioflags import Client, Context


async def steps(client: Client, ctx: Context) -> int:
    if await client.bool_variation("new-checkout", ctx, False):
        return 3
    return 5
"""

APP_AFTER = """\
from aioflags import Client, Context


async def steps(client: Client, ctx: Context) -> int:
    return 3
"""


@pytest.mark.parametrize(
    ("key", "keep", "says"),
    [
        ("ruled", "true", "has targeting: not everyone gets the same value"),
        ("beta", "true", "is DISABLED: clients serve the caller's default"),
        ("limit", "10", "has no default variant: clients serve the caller's default"),
        ("theme", '"#fff"', 'serves its default variant "dark" = "#000", not "#fff"'),
        ("new-checkout", "false", 'default variant "on" = true, not false'),
    ],
)
def test_cleanup_refuses_a_flagd_flag_that_is_not_settled_on_the_value(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: str,
    keep: str,
    says: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "flags.flagd.json", CLEANUP_DOCUMENT)
    (tmp_path / "app.py").write_text(APP)
    argv = ["cleanup", key, "--keep", keep, "app.py", "--flags", "flags.flagd.json"]
    assert main(argv) == 1
    assert says in capsys.readouterr().out
    assert (tmp_path / "app.py").read_text() == APP


def test_cleanup_removes_a_flagd_flag_settled_on_its_default_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "flags.flagd.json", CLEANUP_DOCUMENT)
    (tmp_path / "app.py").write_text(APP)
    argv = ["cleanup", "new-checkout", "--keep", "true", "app.py"]
    assert main([*argv, "--flags", "flags.flagd.json"]) == 0
    assert (tmp_path / "app.py").read_text() == APP_AFTER


# --------------------------------------------------------------- flag coverage
COVERAGE_APP_TESTS = """
import aioflags
from aioflags import Context

CAROL = Context.create("carol")


async def test_flagd_flags():
    config = aioflags.Config(
        data_system=aioflags.DataSystem.file("flags.flagd.json"), send_events=False
    )
    async with aioflags.Client(config) as client:
        assert await client.string_variation("theme", CAROL, "x") == "#000"
        assert await client.bool_variation("beta", CAROL, False) is False
"""


@pytest.mark.slow
def test_flag_coverage_counts_a_flagd_flag_s_branches_in_the_pytest_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_flag_coverage import _section

    path = [str(Path(aioflags.__file__).parent.parent)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    pytester.makeini(
        "[pytest]\n"
        "addopts = -p no:cacheprovider --strict-markers --strict-config\n"
        "filterwarnings = error\n"
        "asyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    write(pytester.path / "flags.flagd.json")
    pytester.makepyfile(test_user=COVERAGE_APP_TESTS)
    result = pytester.runpytest_subprocess(
        "--aioflags-coverage",
        "--aioflags-coverage-flags",
        "flags.flagd.json",
        "--aioflags-coverage-json",
        "coverage.json",
    )
    result.assert_outcomes(passed=1)
    # limit (no default variant: the code default, reason DEFAULT) never ran;
    # beta is DISABLED: nothing to cover, its evaluation counted as such.
    assert _section(result.stdout.str()) == (
        "limit  0/1  missing: default\nTOTAL  2/3  66.67%\n"
    )
    report = json.loads((pytester.path / "coverage.json").read_text())
    assert report["flags"] == {
        "beta": {
            "branches": {"disabled": 1},
            "covered": 1,
            "total": 1,
            "served": {"disabled": {"false": 1}},
        },
        "limit": {"branches": {"default": 0}, "covered": 0, "total": 1},
        "theme": {
            "branches": {"static": 1},
            "covered": 1,
            "total": 1,
            "values": {"static": '"#000"'},
            "served": {"static": {'"#000"': 1}},
        },
    }


@pytest.mark.parametrize(
    ("rule", "names", "none"),
    [
        ({"if": [{"==": [{"var": "plan"}, "pro"]}, "on", None]}, {"on"}, True),
        (
            {"if": [{"var": "x"}, "on", {"var": "y"}, "off", "mid"]},
            {"on", "off", "mid"},
            False,
        ),
        ({"if": [{"var": "x"}, "on"]}, {"on"}, True),
        ({"?:": [{"var": "x"}, True, False]}, {"true", "false"}, False),
        (
            {"if": [{"var": "x"}, {"if": [{"var": "y"}, "a", "b"]}, "c"]},
            {"a", "b", "c"},
            False,
        ),
        ({"fractional": [["red", 50], ["blue", 50]]}, {"red", "blue"}, False),
        (
            {"fractional": [{"var": "email"}, ["red", 50], ["blue"]]},
            {"red", "blue"},
            False,
        ),
        ("off", {"off"}, False),
        ({"var": "variant"}, None, True),
        ({"if": [{"var": "x"}, {"cat": ["o", "n"]}, "off"]}, None, True),
    ],
)
def test_what_a_targeting_rule_can_choose_is_read_from_its_shape(
    rule: Any, names: set[str] | None, none: bool
) -> None:
    from aioflags._systems._flagd._engine._compile import targeting_outcomes

    assert targeting_outcomes(rule) == (
        None if names is None else frozenset(names),
        none,
    )


def test_a_flagd_flag_s_branches_are_flagd_s_reasons() -> None:
    from aioflags._evaluation._model import compile_flag
    from aioflags._testing._coverage import branches_of

    flags, _ = load_flag_files_of(CLEANUP_DOCUMENT)
    assert branches_of(compile_flag("theme", flags["theme"])) == ["static"]
    assert branches_of(compile_flag("limit", flags["limit"])) == ["default"]
    assert branches_of(compile_flag("beta", flags["beta"])) == []
    # A rule that is a name serves that variant to everyone: one branch.
    always = {**CLEANUP_DOCUMENT["flags"]["ruled"], "targeting": "on"}
    flags, _ = load_flag_files_of({"flags": {"always": always}})
    assert branches_of(compile_flag("always", flags["always"])) == ["variant:on"]


def test_a_flagd_flag_with_targeting_has_a_branch_per_variant_it_can_name() -> None:
    from aioflags._evaluation._model import compile_flag
    from aioflags._testing._coverage import FlagCoverage, branches_of

    flags, _ = load_flag_files_of(CLEANUP_DOCUMENT)
    ruled = compile_flag("ruled", flags["ruled"])
    assert branches_of(ruled) == ["variant:on", "default"]
    coverage = FlagCoverage()
    coverage.learn(ruled)
    pro = Context.create("u1", attributes={"plan": "pro"})
    snapshot = snapshot_from_data({"ruled": flags["ruled"]})
    for context in (pro, Context.create("u2")):
        detail = snapshot.variation_detail("ruled", context, None)
        coverage.count("ruled", ruled, detail)
    assert coverage.report()["flags"]["ruled"] == {
        "branches": {"variant:on": 1, "default": 1},
        "covered": 2,
        "total": 2,
        "values": {"variant:on": "true", "default": "false"},
        "served": {"variant:on": {"true": 1}, "default": {"false": 1}},
    }


# ------------------------------------------------------------ usage(), hooks
@pytest.mark.asyncio
async def test_usage_counts_flagd_evaluations_by_variant_and_hooks_see_flagd_s_reasons(
    flagd_file: Path,
) -> None:
    seen: list[tuple[str, Any, int | None, dict[str, Any]]] = []

    class Watch(aioflags.Hook):
        def after_evaluation(self, series: Any, data: Any, detail: Any) -> Any:
            seen.append(
                (series.key, detail.value, detail.variation_index, dict(detail.reason))
            )
            return data

    # serve's flags from the flagd file; the client streams them and sends
    # its events there.
    server = FlagServer(*load_flag_files(flagd_file))
    async with server, aioflags.Client(server.config(hooks=[Watch()])) as client:
        user = Context.create("u1")
        for _ in range(3):
            assert await client.string_variation("theme", user, "?") == "#000"
        assert await client.bool_variation("beta", user, False) is False
        assert await client.int_variation("limit", user, 7) == 7
        usage = client.usage()
    assert usage.available
    theme = usage.flags["theme"]
    assert theme.evaluations == 3
    # (by the variant's value: usage() names values, flagd's and LaunchDarkly's)
    assert [(v.value, v.evaluations) for v in theme.variations] == [("#000", 3)]
    # DISABLED and no default variant: the caller's default, counted as such.
    assert (usage.flags["beta"].evaluations, usage.flags["beta"].defaults) == (1, 1)
    assert usage.flags["limit"].defaults == 1
    assert seen == [
        *[("theme", "#000", 1, {"kind": "STATIC"})] * 3,
        ("beta", False, None, {"kind": "DISABLED"}),
        ("limit", 7, None, {"kind": "DEFAULT"}),
    ]


# ------------------------------------------------------------------- the lens
@pytest.mark.asyncio
async def test_the_lens_overrides_a_flagd_flag_by_a_variant_s_value(
    flagd_file: Path,
) -> None:
    from aioflags.lens import LensConfig, mint, scope

    secret = "a-lens-secret-for-flagd-flags-0123456789"
    config = Config(
        data_system=DataSystem.file(flagd_file),
        send_events=False,
        lens=LensConfig(secrets=[secret], allow=["theme", "limit", "beta"]),
    )
    async with aioflags.Client(config) as client:
        user = Context.create("u1")
        token = mint(secret, flags={"theme": "#fff", "limit": 20, "beta": "no"})
        with scope(client, token):
            detail = await client.variation_detail("theme", user, "?")
            snapshot = client.snapshot()
            assert (detail.value, detail.variation_index) == ("#fff", 0)
            assert detail.reason["kind"] == "OVERRIDE"
            assert snapshot.openfeature_variant("theme", detail) == "light"
            limit = await client.variation_detail("limit", user, 0)
            assert (limit.value, limit.variation_index) == (20, 1)
            assert snapshot.openfeature_variant("limit", limit) == "high"
            # "no" is none of beta's variants' values: not overridden.
            beta = await client.variation_detail("beta", user, None)
            assert beta.reason == {"kind": "DISABLED"}
        detail = await client.variation_detail("theme", user, "?")
        assert (detail.value, detail.reason) == ("#000", {"kind": "STATIC"})


# ------------------------------------------------------------- aioflags diff
def test_diff_reports_the_contexts_a_flagd_change_flips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path / "old.flagd.json")
    changed = json.loads(json.dumps(DOCUMENT))
    changed["flags"]["theme"]["defaultVariant"] = "light"  # a new default variant
    changed["flags"]["beta"]["state"] = "ENABLED"  # DISABLED -> ENABLED
    changed["flags"]["limit"]["metadata"] = {"owner": "ops"}  # serves the same
    changed["flags"]["ruled"] = CLEANUP_DOCUMENT["flags"]["ruled"]  # targeting
    old = write(
        old,
        {
            "flags": {
                **DOCUMENT["flags"],
                "ruled": {**CLEANUP_DOCUMENT["flags"]["ruled"], "targeting": {}},
            }
        },
    )
    new = write(tmp_path / "new.flagd.json", changed)
    contexts = tmp_path / "contexts.jsonl"
    contexts.write_text(
        '{"kind": "user", "key": "u1"}\n{"kind": "user", "key": "u2", "plan": "pro"}\n'
    )
    argv = ["diff", str(old), str(new), "--contexts", str(contexts)]
    assert main([*argv, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["contexts"] == 2
    flips = {
        key: [
            (t["from"], t["fromDefault"], t["to"], t["count"], t["examples"])
            for t in flag["transitions"]
        ]
        for key, flag in report["flags"].items()
    }
    # DISABLED served the caller's default; limit's metadata changes nothing.
    assert flips == {
        "beta": [(None, True, True, 2, ["u1", "u2"])],
        "theme": [("#000", False, "#fff", 2, ["u1", "u2"])],
        # the new targeting: the pro user alone (a context's attributes are
        # the rule's)
        "ruled": [(False, False, True, 1, ["u2"])],
    }
    assert (report["added"], report["removed"]) == ([], [])
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "beta: 2 of 2 contexts change" in out
    assert "u1: DISABLED -> STATIC" in out


# ---------------------------------------------------------------- the console
CONSOLE_DOCUMENT: dict[str, Any] = {
    "flags": {
        **DOCUMENT["flags"],
        "ruled": CLEANUP_DOCUMENT["flags"]["ruled"],
    }
}


@pytest.mark.asyncio
async def test_the_console_shows_a_flagd_flag_and_its_switch_flips_its_state(
    tmp_path: Path,
) -> None:
    import re

    from tests.test_console_api import post

    flags, segments = load_flag_files(
        write(tmp_path / "flags.flagd.json", CONSOLE_DOCUMENT)
    )
    async with (
        FlagServer(flags, segments) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
        aioflags.Client(server.config(send_events=False)) as client,
    ):
        page = await http.get("/ui/")
        found = re.search(r'name="aioflags-token" content="([^"]+)"', page.text)
        assert found is not None
        token = {"x-aioflags-token": found[1]}
        state = (await http.get("/ui/api/state")).json()
        rows = {row["key"]: row for row in state["flags"]}
        assert rows["theme"]["on"] is True and rows["beta"]["on"] is False
        assert rows["theme"]["variations"] == ["#fff", "#000"]
        assert rows["theme"]["serves"] == 1  # the default variant's index
        assert rows["ruled"]["serves"] == "rules"  # targeting
        assert rows["limit"]["serves"] is None  # no default variant
        # The flag's page: state, variants by name, default, targeting as JSON.
        details = (await http.get("/ui/api/flag", params={"key": "ruled"})).json()
        assert details["flagd"]["state"] == "ENABLED"
        assert details["flagd"]["defaultVariant"] == "off"
        assert (
            json.loads(details["flagd"]["targeting"])
            == (CLEANUP_DOCUMENT["flags"]["ruled"]["targeting"])
        )
        assert [(v["name"], v["value"]) for v in details["variations"]] == [
            ("on", "true"),
            ("off", "false"),
        ]
        assert details["fallthrough"] == "serves its default variant off (false)"
        theme = (await http.get("/ui/api/flag", params={"key": "theme"})).json()
        assert theme["flagd"]["metadata"] == {"owner": "ui", "rank": "2"}
        assert theme["flagd"]["targeting"] is None

        user = Context.create("u1")

        changed = [anyio.Event()]
        client.add_flag_change_handler(lambda _keys: changed[-1].set())

        async def sees(key: str, value: Any, reason: str) -> None:
            # (the flip reaches the client over serve's stream)
            with anyio.fail_after(GUARD):
                while True:
                    changed.append(anyio.Event())  # (before the look: none missed)
                    detail = await client.variation_detail(key, user, "code")
                    if (detail.value, detail.reason["kind"]) == (value, reason):
                        return
                    await changed[-1].wait()

        # The switch flips flagd's state: what flagd evaluates, not a mirror.
        answer = await post(http, "flag", {"key": "theme", "on": False}, token)
        assert answer.status_code == 200 and answer.json()["on"] is False
        assert server.flags["theme"]["flagd"]["state"] == "DISABLED"
        await sees("theme", "code", "DISABLED")
        await post(http, "flag", {"key": "beta", "on": True}, token)
        await sees("beta", True, "STATIC")
        # Choosing a variant makes it the default variant; targeting asks first.
        answer = await post(http, "flag", {"key": "ruled", "variation": 0}, token)
        assert answer.status_code == 409 and "targeting" in answer.json()["message"]
        answer = await post(
            http, "flag", {"key": "ruled", "variation": 0, "confirm": True}, token
        )
        assert answer.status_code == 200 and answer.json()["serves"] == 0
        assert "targeting" not in server.flags["ruled"]["flagd"]
        await sees("ruled", True, "STATIC")
        # Reset puts the file's flag back.
        assert (await post(http, "reset", {"key": "theme"}, token)).status_code == 200
        await sees("theme", "#000", "STATIC")
        assert server.flags["theme"]["flagd"]["state"] == "ENABLED"
