"""A flag system is an object (issue 96): each compiled flag holds its system, and the faces ask it.

LaunchDarkly's and flagd's systems (``aioflags/_systems/``) register in one
line each; a flag's ``system`` is the registered object. The evaluation's
type step and failure, the snapshot's OpenFeature words, OFREP, the
OpenFeature provider, flag coverage and the console's words ask the flag's
system: a toy third system (``tests/toy_system.py``), registered in one line
and known nowhere else, runs through each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import pytest_asyncio

from aioflags import (
    Client,
    Config,
    Context,
    DataSystem,
    EventDetails,
    ProviderEvent,
    ProviderStatus,
)
from aioflags.__main__ import main
from aioflags._core._exceptions import ConfigurationError
from aioflags._datasystem._config import flag_system_of, is_local
from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    Selector,
)
from aioflags._datasystem._sources._files import FlagFileError, load_flag_files
from aioflags._datasystem._store import Store, snapshot_from_data
from aioflags._evaluation._model import compile_flag, document_format, formats
from aioflags._service import _words as words
from aioflags._systems import (
    FLAGD,
    LAUNCHDARKLY,
    default_system,
    registered,
    system_named,
)
from aioflags._testing._coverage import FlagCoverage
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagData
from tests.processes import HTTP_GUARD, MYPY_TEST_TIMEOUT, mypy_strict
from tests.toy_system import (
    PREBUILT,
    TOY,
    TOY_CONFIGURATION,
    ToySource,
    registered_toy,
    toy_flag,
)

U1 = Context.create("u1")
LD_HALF = {
    "key": "ld-half",
    "version": 1,
    "on": True,
    "variations": [0.5, 2],
    "fallthrough": {"variation": 0},
}
LD_TWO = {**LD_HALF, "key": "ld-two", "fallthrough": {"variation": 1}}


def _flagd(key: str, value: Any) -> dict[str, Any]:
    """A flagd flag object, as the flagd document reader makes them."""
    spec = {"state": "ENABLED", "variants": {"v": value}, "defaultVariant": "v"}
    return {"key": key, "version": 1, "on": True, "variations": [value], "flagd": spec}


FLAGS: dict[str, Any] = {
    "ld-half": LD_HALF,
    "ld-two": LD_TWO,
    "half": _flagd("half", 0.5),
    "two": _flagd("two", 2),
    "yes": _flagd("yes", True),
}


@pytest.fixture
def toy() -> Iterator[object]:
    with registered_toy() as system:
        yield system


# ------------------------------------------------------------------ the seam
def test_each_compiled_flag_holds_its_registered_system() -> None:
    assert system_named("launchdarkly") is LAUNCHDARKLY is default_system()
    assert system_named("flagd") is FLAGD
    assert registered()[:2] == (LAUNCHDARKLY, FLAGD)
    assert {"PARSE_ERROR", "GENERAL"} == FLAGD.error_kinds
    assert {"MALFORMED_FLAG", "EXCEPTION"} <= LAUNCHDARKLY.error_kinds
    assert LAUNCHDARKLY.events_recorded and not FLAGD.events_recorded
    assert compile_flag("ld-half", LD_HALF).system is LAUNCHDARKLY
    assert compile_flag("half", FLAGS["half"]).system is FLAGD
    # A flag no system can compile is its system's word for it.
    broken = compile_flag("b", {"key": "b", "version": 1, "flagd": 3})
    assert broken.system is FLAGD
    assert broken.constant is FLAGD.unusable
    snapshot = snapshot_from_data(dict(FLAGS))
    assert snapshot.flag_format("half") == FLAGD.name == "flagd"
    assert snapshot.flag_format("ld-half") == "launchdarkly"
    assert snapshot.flag_format("nope") is None


def test_a_system_registered_in_one_line_is_found_and_forgotten() -> None:
    assert compile_flag("t", toy_flag("t", 1)).system is LAUNCHDARKLY
    with registered_toy():
        assert system_named("toy") is TOY and TOY in registered()
        assert compile_flag("t", toy_flag("t", 1)).system is TOY
    assert system_named("toy") is None
    assert compile_flag("t", toy_flag("t", 1)).system is LAUNCHDARKLY


@pytest.mark.asyncio
async def test_96_the_store_has_a_large_definition_built_ahead_by_its_system(
    toy: object,
) -> None:
    # The store asks each flag object's system whether its definition is
    # large (FlagSystem.is_large) and has the system build those ahead, on
    # a worker thread (FlagSystem.prebuild), before it installs the set:
    # flagd's large targeting goes this way (test_flagd_limits.py's J2),
    # the store naming no system.
    PREBUILT.clear()
    flags = {
        "big": toy_flag("big", "v", a="x", b="y", c="z"),
        "small": toy_flag("small", "v", a="x"),
        **FLAGS,
    }
    changes = tuple(
        Change(action=ChangeKind.PUT, kind=ObjectKind.FLAG, key=k, version=1, obj=v)
        for k, v in flags.items()
    )
    store = Store()
    await store.apply(
        ChangeSet(
            intent=IntentCode.TRANSFER_FULL,
            changes=changes,
            selector=Selector(state="(p:1)", version=1),
        )
    )
    assert [keys for _, keys in PREBUILT] == [["big"]]
    assert PREBUILT[0][0] != threading.get_ident()
    assert store.snapshot.variation("big", Context.create("b"), None) == "y"
    # Neither LaunchDarkly's flags nor flagd's small ones are large.
    assert not LAUNCHDARKLY.is_large(LD_HALF)
    assert not FLAGD.is_large(FLAGS["half"]["flagd"])


# --------------------------------------------------------- the type step
def test_96_int_variation_on_a_flagd_flag_follows_flagds_types() -> None:
    # Before: the pipeline's type step took LaunchDarkly's rules for every
    # flag, so a flagd flag's 0.5 was 0 to int_variation (flagd's
    # providers, and aioflags' own OpenFeature provider: a type mismatch).
    snapshot = snapshot_from_data(dict(FLAGS))
    half = snapshot.int_variation_detail("half", U1, 7)
    assert (half.value, half.error_kind) == (7, "WRONG_TYPE")
    assert snapshot.int_variation("half", U1, 7) == 7
    # An integer is a float, to flagd too; a boolean is no number.
    assert snapshot.float_variation("two", U1, 0.0) == 2.0
    assert type(snapshot.float_variation("two", U1, 0.0)) is float
    assert snapshot.int_variation_detail("yes", U1, 3).error_kind == "WRONG_TYPE"
    # LaunchDarkly's flags keep LaunchDarkly's rules: truncated, converted.
    assert snapshot.int_variation("ld-half", U1, 7) == 0
    assert snapshot.float_variation("ld-two", U1, 0.0) == 2.0


@pytest.mark.asyncio
async def test_96_the_async_clients_typed_methods_follow_a_flagd_flags_types() -> None:
    data = FlagData()
    for key, flag in FLAGS.items():
        data.set_flag(key, flag)
    config = Config(data_system=data.data_system(), send_events=False)
    async with Client(config) as client:
        await client.wait_ready(5)
        assert await client.int_variation("half", U1, 7) == 7
        detail = await client.int_variation_detail("half", U1, 7)
        assert detail.error_kind == "WRONG_TYPE"
        assert await client.int_variation("ld-half", U1, 7) == 0
        assert await client.float_variation("two", U1, 0.0) == 2.0


def test_the_type_step_and_a_failure_are_the_flags_systems(
    toy: object, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = snapshot_from_data({"t": toy_flag("t", 2, u1=3), "ld-two": LD_TWO})
    # The toy converts no number: LaunchDarkly's rules would give 2.0.
    assert snapshot.float_variation_detail("t", U1, 0.0).error_kind == "WRONG_TYPE"
    assert snapshot.float_variation("ld-two", U1, 0.0) == 2.0
    assert snapshot.int_variation_detail("t", U1, 0).value == 3
    # A failed evaluation answers in its system's word.
    caplog.set_level(logging.CRITICAL, "aioflags")
    detail = snapshot.variation_detail("t", Context.create("boom"), None)
    assert detail.error_kind == "TOY_FAILED"


# -------------------------------------------------------------- the faces
def test_the_snapshots_openfeature_words_are_the_systems(toy: object) -> None:
    snapshot = snapshot_from_data({"t": toy_flag("t", "a", u1="b"), **FLAGS})
    detail = snapshot.variation_detail("t", U1, None)
    assert (detail.value, detail.reason) == ("b", {"kind": "TOY_KEY"})
    assert snapshot.flag_format("t") == "toy"
    assert snapshot.openfeature_details("t", detail) == (
        "TARGETING_MATCH",
        "toy-1",
        {"system": "toy"},
    )
    assert snapshot.flag_metadata("t") == {"system": "toy"}
    flagd = snapshot.variation_detail("half", U1, None)
    assert snapshot.openfeature_details("half", flagd) == ("STATIC", "v", {})


def test_coverage_and_the_consoles_words_ask_the_system(toy: object) -> None:
    raw = toy_flag("t", "a", u1="b")
    flag = compile_flag("t", raw)
    coverage = FlagCoverage()
    coverage.learn(flag)
    snapshot = snapshot_from_data({"t": raw})
    coverage.count("t", flag, snapshot.variation_detail("t", U1, None))
    coverage.count("t", None, snapshot.variation_detail("t", U1, None))
    report = coverage.report()["flags"]["t"]
    assert report["branches"] == {"toy:everyone": 0, "toy:by-key": 2}
    assert words.summary_text(raw) == "a toy, serves 'a'"
    assert words.details(raw, {"t": raw})["off"] == "the caller's default"
    assert words.reason_text({"kind": "TOY_KEY"}) == "a toy's key"
    # LaunchDarkly's and flagd's words are their systems' too.
    assert words.reason_text({"kind": "STATIC"}) == "static (the default variant)"
    assert words.reason_text({"kind": "FALLTHROUGH"}) == "fallthrough"


@pytest_asyncio.fixture
async def toy_client(toy: object) -> AsyncIterator[Client]:
    data = FlagData()
    data.set_flag("t", toy_flag("t", "a", u1="b"))
    data.set_flag("ld-two", LD_TWO)
    data.set_flag("two", FLAGS["two"])
    async with Client(Config(data_system=data.data_system(), send_events=False)) as c:
        await c.wait_ready(5)
        yield c


@pytest.mark.asyncio
async def test_the_toy_system_runs_through_the_client_and_ofrep(
    toy_client: Client,
) -> None:
    assert await toy_client.variation("t", U1, None) == "b"
    assert await toy_client.variation("t", Context.create("u2"), None) == "a"
    app = OFREPApp(toy_client, expose="all")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        timeout=HTTP_GUARD, transport=transport, base_url="http://app"
    ) as http:
        one = await http.post(
            "/ofrep/v1/evaluate/flags/t", json={"context": {"targetingKey": "u1"}}
        )
        assert one.json() == {
            "key": "t",
            "reason": "TARGETING_MATCH",
            "metadata": {"system": "toy"},
            "value": "b",
            "variant": "toy-1",
        }
        # The toy's own context mapping refuses no key; flagd's needs none.
        refused = await http.post("/ofrep/v1/evaluate/flags/t", json={"context": {}})
        assert (refused.status_code, refused.json()["errorCode"]) == (
            400,
            "TARGETING_KEY_MISSING",
        )
        bulk = await http.post("/ofrep/v1/evaluate/flags", json={"context": {}})
        by_key = {item["key"]: item for item in bulk.json()["flags"]}
        assert by_key["two"]["value"] == 2
        assert by_key["t"]["errorDetails"] == "a toy needs a targeting key"
        assert by_key["ld-two"]["errorCode"] == "TARGETING_KEY_MISSING"
        # A body OFREP's schema refuses is refused whole, as before systems.
        five = {"context": {"targetingKey": 5}}
        broken = await http.post("/ofrep/v1/evaluate/flags", json=five)
        assert (broken.status_code, broken.json()["errorCode"]) == (
            400,
            "INVALID_CONTEXT",
        )


@pytest.mark.asyncio
async def test_the_toy_system_runs_through_the_openfeature_provider(
    toy: object,
) -> None:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode

    from aioflags.openfeature import AioflagsProvider

    data = FlagData()
    data.set_flag("t", toy_flag("t", 2, u1=3))
    provider = AioflagsProvider(
        Config(data_system=data.data_system(), send_events=False)
    )
    await asyncio.to_thread(api.set_provider_and_wait, provider)
    try:
        client = api.get_client()
        detail = client.get_integer_details("t", 0, EvaluationContext("u1"))
        assert (detail.value, detail.variant, detail.reason) == (
            3,
            "toy-1",
            "TARGETING_MATCH",
        )
        assert detail.flag_metadata == {"system": "toy"}
        # The toy's type step: no integer is a float.
        mismatch = client.get_float_details("t", 0.0, EvaluationContext("u1"))
        assert mismatch.error_code == ErrorCode.TYPE_MISMATCH
        missing = client.get_integer_details("t", 0, EvaluationContext())
        assert missing.error_code == ErrorCode.TARGETING_KEY_MISSING
    finally:
        await asyncio.to_thread(api.shutdown)
        api.clear_providers()


# ------------------------------------------------------ files, eval, validate
TOY_FILE = {"toy": 1, "flags": {"t": {"value": "a", "by_key": {"u1": "b"}}}}


def test_96_the_toy_format_is_asked_only_while_the_toy_is_registered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "toys.json"
    path.write_text(json.dumps(TOY_FILE))
    assert formats() == ("launchdarkly", "flagd")
    with pytest.raises(FlagFileError, match="unknown top-level key 'toy'"):
        load_flag_files(path)  # (no toy: the reader's own shape refuses it)
    with registered_toy():
        assert formats() == ("launchdarkly", "flagd", "toy")
        flags, segments = load_flag_files(path, allow_empty=False)
        assert (flags, segments) == ({"t": toy_flag("t", "a", u1="b")}, {})
        assert compile_flag("t", flags["t"]).system is TOY
        # A flagd document is still flagd's, a LaunchDarkly file the reader's.
        assert document_format({"flags": {"f": {"state": "ENABLED", "variants": {}}}})
        assert document_format({"flags": {}}) is None


def test_96_the_toy_system_runs_through_eval_from_its_own_file(
    toy: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "toys.yaml"  # (YAML too: the reader parses, the format reads)
    path.write_text("toy: 1\nflags:\n  t:\n    value: a\n    by_key: {u1: b}\n")
    assert main(["eval", "t", "--context", "u1", "--file", str(path)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == {
        "key": "t",
        "value": "b",
        "variationIndex": 1,
        "reason": {"kind": "TOY_KEY"},
        "variant": "toy-1",  # (a system of its own: its variant's name)
        "status": "READY",
    }
    # A context without "kind" is the toy's own (its context_from): it
    # needs a targeting key, and says so in its words.
    body = json.dumps({"targetingKey": "u2"})
    assert main(["eval", "t", "--context", body, "--file", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == "a"
    assert main(["eval", "t", "--context", "{}", "--file", str(path)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("--context: a toy needs a targeting key")
    )


def test_96_the_toy_system_runs_through_validate_with_its_own_linter(
    toy: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(TOY_FILE))
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: 1 flags, 0 segments: valid"
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"toy": 1, "flags": {\n'
        '  "none": {"by_key": {}},\n'
        '  "mixed": {"value": "a", "by_key": {"u1": 2}},\n'
        '  "listed": {"value": "a", "by_key": ["u1"]}\n'
        "}}\n"
    )
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr()
    assert out.err.splitlines() == [
        # the toy's linter: a shape (its system's own: no MALFORMED_FLAG
        # said), and a warning, each placed
        f"error: {bad}:2:3: flags/none: a toy flag needs a value",
        f"warning: {bad}:3:38: flags/mixed/by_key/u1: 'u1' is served 2, not of "
        "its value's type",
        # what its compiler refuses: its own error kind, for every evaluation
        f"error: {bad}:4:3: flag 'listed': a toy's by_key must be an object"
        " (every evaluation of it is TOY_BROKEN)",
    ]
    assert out.out.strip() == f"{bad}: 3 flags, 0 segments: 2 problem(s), 1 warning(s)"


def test_96_schema_prints_the_toys_own_schema(
    toy: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "--format", "toy"]) == 0
    assert json.loads(capsys.readouterr().out)["required"] == ["toy"]
    assert main(["schema", "--format", "flagd"]) == 0
    assert "flagd" in json.loads(capsys.readouterr().out)["title"]


# ------------------------------------------------------------ events, usage
def test_96_events_and_usage_ask_the_flag_system_of_the_data_systems_flags(
    toy: object,
) -> None:
    from aioflags._client._usage import no_figures_reason
    from aioflags._datasystem._context import SourceContext, mark_flag_system
    from aioflags.sources import Update

    async def toys(ctx: SourceContext) -> AsyncGenerator[Update, None]:
        return  # (never run)
        yield

    data_system = DataSystem.custom(synchronizers=[mark_flag_system(toys, "toy")])
    config = Config("sdk-key", data_system=data_system)
    # The toy's flags are none of LaunchDarkly's recorder's (events_recorded).
    assert config._unrecorded_system() is TOY
    assert not config.events_enabled
    assert (
        "(the data system is toy's, and LaunchDarkly's recorder knows none of "
        "its flags: set events_uri to a recorder of your own to send them)"
    ) in no_figures_reason(config)
    # To a recorder of the app's own, they go.
    own = Config("sdk-key", data_system=data_system, events_uri="http://127.0.0.1:9")
    assert own._unrecorded_system() is None and own.events_enabled
    # flagd's data system, as before; LaunchDarkly's sends its events.
    assert (
        Config("sdk-key", data_system=DataSystem.flagd())._unrecorded_system() is FLAGD
    )
    assert Config("sdk-key")._unrecorded_system() is None


# ------------------------------------------- the tools: console, codegen, cleanup
async def _console_post(
    http: httpx.AsyncClient, token: dict[str, str], body: object
) -> httpx.Response:
    return await http.post("/ui/api/flag", content=json.dumps(body), headers=token)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue96_the_toy_runs_through_the_consoles_editing_api(
    toy: object,
) -> None:
    import re

    from aioflags.testing import FlagServer

    flags = {"t": toy_flag("t", "a", u1="b"), "ld-two": LD_TWO}
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(FlagServer(flags, {}))
        http = await stack.enter_async_context(
            httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url)
        )
        page = await http.get("/ui/")
        found = re.search(r'name="aioflags-token" content="([^"]+)"', page.text)
        assert found is not None
        token = {"x-aioflags-token": found[1]}
        client = await stack.enter_async_context(
            Client(server.config(send_events=False))
        )
        await client.wait_ready(30)
        send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
        stack.enter_context(send)
        stack.enter_context(receive)
        client.add_flag_change_handler(send.send_nowait)

        async def changed() -> None:
            with anyio.fail_after(30):
                while "t" not in await receive.receive():
                    pass

        state = (await http.get("/ui/api/state")).json()
        row = {r["key"]: r for r in state["flags"]}["t"]
        # The row's values and what it serves are the toy's (keyed: "rules").
        assert (row["on"], row["variations"], row["serves"]) == (
            True,
            ["a", "b"],
            "rules",
        )
        # Switched off: the toy's own "off", its clients the caller's default.
        off = await _console_post(http, token, {"key": "t", "on": False})
        assert off.status_code == 200, off.text
        assert (off.json()["on"], off.json()["changed"]) == (False, True)
        assert server.flags["t"]["toy"]["off"] is True
        await changed()
        detail = await client.variation_detail("t", U1, "dflt")
        assert (detail.value, detail.reason) == ("dflt", {"kind": "TOY_OFF"})
        # And on again.
        on = await _console_post(http, token, {"key": "t", "on": True})
        assert on.json()["on"] is True
        await changed()
        assert await client.variation("t", U1, "dflt") == "b"
        # One value for everyone drops its keyed values: the toy asks first.
        index = await _console_post(http, token, {"key": "t", "variation": 2})
        assert index.status_code == 400
        assert index.json()["message"] == '"variation" must be an index below 2'
        asked = await _console_post(http, token, {"key": "t", "variation": 0})
        assert asked.status_code == 409
        assert asked.json()["message"] == (
            "'t' has keyed values: one for everyone drops them (confirm)"
        )
        one = {"key": "t", "variation": 0, "confirm": True}
        served = await _console_post(http, token, one)
        assert served.status_code == 200
        assert (served.json()["serves"], served.json()["variations"]) == (0, ["a"])
        await changed()
        assert await client.variation("t", U1, None) == "a"
        # Reset puts the file's back; LaunchDarkly's flags are as before.
        reset = await http.post(
            "/ui/api/reset", content=json.dumps({"key": "t"}), headers=token
        )
        assert reset.json()["serves"] == "rules"
        await changed()
        assert await client.variation("t", U1, None) == "b"
        ld = await _console_post(http, token, {"key": "ld-two", "variation": 0})
        assert ld.json()["serves"] == 0
        assert server.flags["ld-two"]["fallthrough"] == {"variation": 0}


TOY_CODEGEN = {
    "toy": 1,
    "flags": {
        "tier": {"value": "basic", "by_key": {"u1": "gold"}, "about": "a tier"},
        "limit": {"value": 10, "by_key": {"u1": 20}},
    },
}
TOY_CALLER = """\
from aioflags import Context
from toyflags import Flags, Tier


async def use(flags: Flags) -> int:
    tier: Tier = await flags.tier(Context.create("u"))
    return await flags.limit(Context.create(tier)) + 1


async def wrong(flags: Flags) -> bool:
    return await flags.tier(Context.create("u")) == "silver"
"""


@pytest.mark.slow
@pytest.mark.timeout(MYPY_TEST_TIMEOUT)
def test_issue96_codegen_types_a_toy_flag_and_its_module_runs(
    toy: object, tmp_path: Path, mypy_cache: Path
) -> None:
    import importlib.util

    path = tmp_path / "toys.json"
    path.write_text(json.dumps(TOY_CODEGEN))
    module = tmp_path / "toyflags.py"
    assert main(["codegen", str(path), "-o", str(module)]) == 0
    text = module.read_text()
    # Its values typed (a Literal of the toy's strings, an int), its default
    # and its description the toy's.
    assert 'Tier: TypeAlias = Literal["basic", "gold"]' in text
    assert "Default (when it cannot be evaluated, or serves a value of" in text
    assert '"basic", its value for everyone.' in text
    assert "a tier" in text
    # The module runs against the toy's own file, through the client.
    spec = importlib.util.spec_from_file_location("toyflags", module)
    assert spec is not None and spec.loader is not None
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)

    async def run() -> tuple[object, object]:
        config = Config(data_system=DataSystem.file(path), send_events=False)
        async with Client(config) as client:
            await client.wait_ready(10)
            flags = generated.Flags(client)
            return await flags.tier(U1), await flags.limit(Context.create("u2"))

    assert anyio.run(run) == ("gold", 10)
    # And type-checks as its users check it: a wrong use is caught.
    (tmp_path / "caller.py").write_text(TOY_CALLER)
    result = mypy_strict(tmp_path, mypy_cache, "toyflags.py", "caller.py")
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith("caller.py:11: error: Non-overlapping equality")


def test_issue96_cleanups_flag_file_evidence_asks_the_toy(
    toy: object, tmp_path: Path
) -> None:
    from aioflags._lifecycle._evidence import refusals, variation_for

    path = tmp_path / "toys.json"
    path.write_text(json.dumps(TOY_CODEGEN))
    assert refusals("tier", "basic", [], [path])[0] == [
        f"{path}: 'tier' has keyed values: not everyone gets the same value"
    ]
    assert variation_for("limit", 20.0, [path]) == 20
    settled = {"toy": 1, "flags": {"tier": {"value": "basic"}}}
    path.write_text(json.dumps(settled))
    assert refusals("tier", "basic", [], [path])[0] == []
    assert refusals("tier", "gold", [], [path])[0] == [
        f"{path}: 'tier' serves 'basic', not 'gold'"
    ]


# ------------------------------------------------------------- configuration
# A system's configuration (FlagSystem.configuration) is its own: the toy's
# variables make Config.from_env's data system, its format is DataSystem.file's,
# its options are tabled, a block over its flags tells it when it ends; no
# module outside tests/toy_system.py names it.
@pytest.mark.asyncio
async def test_issue96_config_from_env_reads_the_toys_own_variables(
    toy: object, tmp_path: Path
) -> None:
    path = tmp_path / "toys.json"
    path.write_text(json.dumps(TOY_FILE))
    config = Config.from_env({"TOY_FLAG_FILE": str(path)})
    assert config.data_system is not None and is_local(config.data_system)
    async with Client(config) as client:
        assert (await client.wait_ready(5)).name == "READY"
        assert await client.variation("t", U1, None) == "b"
        assert await client.variation("t", Context.create("u2"), None) == "a"
    # A data_system keyword wins, as over flagd's variables.
    mine = DataSystem.file(path, format="toy", reload=True)
    assert Config.from_env({"TOY_FLAG_FILE": "x"}, data_system=mine).data_system is mine


def test_issue96_the_toys_variables_are_read_only_while_it_is_registered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "toys.json"
    path.write_text(json.dumps(TOY_FILE))
    assert Config.from_env({"TOY_FLAG_FILE": str(path)}).data_system is None
    assert Config.from_env({"TOY_RELOAD": "2"}).data_system is None
    with registered_toy():
        assert Config.from_env({"TOY_FLAG_FILE": str(path)}).data_system is not None


def test_issue96_the_toys_variable_errors_name_the_variable(
    toy: object, tmp_path: Path
) -> None:
    path = str(tmp_path / "toys.json")
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env({"TOY_FLAG_FILE": path, "TOY_RELOAD": "soon"})
    assert str(raised.value).startswith("TOY_RELOAD='soon': "), raised.value
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env({"TOY_FLAG_FILE": path, "TOY_RELOAD": "-1"})
    assert str(raised.value).startswith("TOY_RELOAD='-1': "), raised.value
    assert "interval" in str(raised.value)
    # Its variables without the one that makes a data system are refused
    # (the system's own ``unclaimed``), where nothing else is set.
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env({"TOY_RELOAD": "2"})
    assert str(raised.value) == "TOY_RELOAD is set but TOY_FLAG_FILE is not"
    assert Config.from_env({"TOY_RELOAD": "2", "AIOFLAGS_SDK_KEY": "k"}).sdk_key
    # flagd's refusal is still flagd's own, and still names FLAGD_RESOLVER.
    with pytest.raises(
        ConfigurationError, match="FLAGD_HOST is set but FLAGD_RESOLVER"
    ):
        Config.from_env({"FLAGD_HOST": "h"})


def test_issue96_two_systems_variables_are_refused_naming_both(
    toy: object, tmp_path: Path
) -> None:
    path = tmp_path / "toys.json"
    path.write_text(json.dumps(TOY_FILE))
    env = {
        "FLAGD_RESOLVER": "file",
        "FLAGD_OFFLINE_FLAG_SOURCE_PATH": str(path),
        "TOY_FLAG_FILE": str(path),
    }
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env(env)
    assert str(raised.value) == (
        "the environment describes two data systems, flagd's and toy's: set the "
        "variables of one flag system only (docs/configuration.md)"
    )


def test_issue96_file_formats_are_the_registered_systems(tmp_path: Path) -> None:
    path = tmp_path / "toys.json"
    with pytest.raises(ConfigurationError) as raised:
        DataSystem.file(path, format="toy")
    assert str(raised.value) == (
        'DataSystem.file(format=...) must be "flagd", "launchdarkly" or None '
        "(told from each file), not 'toy'"
    )
    with registered_toy():
        DataSystem.file(path, format="toy")
        with pytest.raises(ConfigurationError) as raised:
            DataSystem.file(path, format="yaml")
        assert str(raised.value).startswith(
            'DataSystem.file(format=...) must be "flagd", "launchdarkly", "toy" or None'
        )


def test_issue96_the_docs_tables_include_each_systems_options(toy: object) -> None:
    from aioflags._client import _tables

    page = "<!-- generated: toy the toy's -->\n<!-- end generated -->"
    made = _tables.render(page)
    assert "| `interval` | seconds | None |" in made
    assert "`TOY_FLAG_FILE`" in made and "`TOY_RELOAD`" in made
    # flagd's table is its system's declarations, as the page shows them.
    assert "`FLAGD_DEADLINE_MS` (ms)" in _tables.render(
        "<!-- generated: flagd x -->\n<!-- end generated -->"
    )


@pytest.mark.asyncio
async def test_issue96_a_block_over_a_systems_flags_tells_its_configuration(
    toy: object,
) -> None:
    from aioflags._datasystem._context import mark_flag_system

    data = FlagData()
    data.set_flag("t", toy_flag("t", "a", u1="b"))
    (source,) = data.data_system().synchronizers
    toys = DataSystem.custom(synchronizers=[mark_flag_system(source, "toy")])
    before = TOY_CONFIGURATION.blocks
    async with Client(Config(data_system=toys, send_events=False)) as client:
        await client.wait_ready(5)
        assert await client.variation("t", U1, None) == "b"
        assert TOY_CONFIGURATION.blocks == before
    assert TOY_CONFIGURATION.blocks == before + 1
    # A block over LaunchDarkly's flags asks no system's configuration.
    plain = FlagData().data_system()
    async with Client(Config(data_system=plain, send_events=False)):
        pass
    assert TOY_CONFIGURATION.blocks == before + 1


def test_issue96_datasystem_flagd_hands_over_to_flagds_system() -> None:
    from aioflags._systems import register, unregister

    assert FLAGD.configuration is not None
    assert FLAGD.configuration.preset is not None
    unregister(FLAGD)
    try:
        with pytest.raises(ConfigurationError) as raised:
            DataSystem.flagd()
    finally:
        register(FLAGD)
    assert str(raised.value) == (
        "DataSystem.flagd() needs the flagd flag system, which is not registered:"
        " import aioflags before its modules"
    )
    assert registered()[:2] == (LAUNCHDARKLY, FLAGD)
    assert flag_system_of(DataSystem.flagd()) == "flagd"


# ------------------------------------------------------- the store, the plane
def test_issue96_the_planes_environment_is_the_source_as_its_system_names_it() -> None:
    from aioflags._datasystem._plane import _wire as wire

    words = "toy at memory (one)"
    toy = wire.environment_of(None, None, words, "toy")
    assert toy == wire.environment_of("sdk-key", "mobile", words, "toy")
    assert toy != wire.environment_of(None, None, words, "flagd")
    assert toy != wire.environment_of(None, None, "toy at memory (two)", "toy")
    # flagd's, as the processes of earlier versions hash it: they share a plane.
    flagd = f"aioflags-plane:flagd:{words}".encode()
    assert (
        wire.environment_of(None, None, words, "flagd")
        == (hashlib.sha256(flagd).hexdigest()[:32])
    )
    said = wire.read_hello(wire.hello(toy, source=words))
    assert said == wire.Hello(wire.VERSION, toy, None, words)


def _toy_config(source: ToySource, plane: str) -> Config:
    return Config(
        "sdk-key",
        data_system=source.data_system(plane),
        send_events=False,
        ready_timeout=30,
    )


@pytest.mark.asyncio
async def test_issue96_toy_flags_go_through_the_plane_to_a_follower(
    toy: object, tmp_path: Path
) -> None:
    plane = str(tmp_path / "toys.plane")
    words = "toy at memory (issue 96)"
    leaders = ToySource(words, t=toy_flag("t", "everyone", u1="u1's"))
    own = ToySource(words, t=toy_flag("t", "the follower's own"))
    async with (
        Client(_toy_config(leaders, plane)) as leader,
        Client(_toy_config(own, plane)) as follower,
    ):
        assert (leader.plane_role, follower.plane_role) == ("leader", "follower")
        assert follower.status is ProviderStatus.READY
        detail = await follower.variation_detail("t", U1, "default")
        assert (detail.value, detail.reason["kind"]) == ("u1's", "TOY_KEY")
        assert await follower.variation("t", Context.create("u2"), "-") == "everyone"
        snapshot = follower.snapshot()
        assert snapshot.flag_format("t") == "toy"
        assert (leaders.runs, own.runs) == (1, 0)  # (it follows: never runs its own)
        # A change at the leader's toy source reaches the follower.
        changed = anyio.Event()

        def handler(_: EventDetails) -> None:
            changed.set()

        follower.add_handler(ProviderEvent.CONFIGURATION_CHANGED, handler)
        leaders.put({**toy_flag("t", "everyone", u1="changed"), "version": 2})
        with anyio.fail_after(30):
            while await follower.variation("t", U1, "-") != "changed":
                await changed.wait()
                changed = anyio.Event()


@pytest.mark.asyncio
async def test_issue96_another_toy_source_on_the_plane_is_refused_naming_both(
    toy: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plane = str(tmp_path / "toys.plane")
    first = ToySource("toy at memory (one)", t=toy_flag("t", "one"))
    second = ToySource("toy at memory (two)", t=toy_flag("t", "two"))
    async with (
        Client(_toy_config(first, plane)) as leader,
        Client(_toy_config(second, plane)) as stranger,
    ):
        assert (leader.plane_role, stranger.plane_role) == ("leader", None)
        assert await stranger.variation("t", U1, "-") == "two"  # its own source
        assert await leader.variation("t", U1, "-") == "one"
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals and all(
        "toy at memory (one)" in said and "toy at memory (two)" in said
        for said in refusals
    ), refusals


def test_issue96_the_store_links_what_a_systems_flags_share_through_the_system(
    toy: object,
) -> None:
    from aioflags._datasystem._payloads import object_meta
    from aioflags.sources import Change, ChangeKind, ChangeSet, IntentCode, ObjectKind

    def put(kind: ObjectKind, obj: dict[str, Any]) -> Change:
        key = obj["key"]
        return Change(action=ChangeKind.PUT, kind=kind, key=key, version=1, obj=obj)

    colour = {"key": "toy:colour", "version": 1, "toy_value": "blue"}
    shared_toy = {
        "key": "t",
        "version": 1,
        "toy": {"value_from": "toy:colour", "by_key": {"u1": "red"}},
    }
    # A store reader reads the shared item with the flag: the toy names it.
    assert object_meta(shared_toy) == (1, False, "stoy:colour")
    store = Store()
    full = (
        put(ObjectKind.SEGMENT, colour),
        put(ObjectKind.FLAG, shared_toy),
        put(ObjectKind.FLAG, FLAGS["half"]),
    )
    store.apply_now(ChangeSet(intent=IntentCode.TRANSFER_FULL, changes=full))
    u2 = Context.create("u2")
    assert store.snapshot.variation("t", u2, None) == "blue"
    assert store.snapshot.variation("t", U1, None) == "red"
    assert store.snapshot.variation("half", U1, None) == 0.5
    # A delta's toy names the item of before: the store held it for the toy.
    later = {**shared_toy, "key": "u", "toy": {"value_from": "toy:colour"}}
    delta = (put(ObjectKind.FLAG, later),)
    store.apply_now(ChangeSet(intent=IntentCode.TRANSFER_CHANGES, changes=delta))
    assert store.snapshot.variation("u", u2, None) == "blue"
