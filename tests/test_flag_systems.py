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
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from aioflags import Client, Config, Context, DataSystem
from aioflags.__main__ import main
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
from tests.toy_system import PREBUILT, TOY, registered_toy, toy_flag

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
    assert words.details(raw, {"t": raw})["off"] == "never off"
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
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
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
