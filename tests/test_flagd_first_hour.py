"""A flagd user's first hour (issue 95): every misstep told in one line.

``FLAGD_*`` without a resolver, a context outside OFREP's ``"context"``,
``aioflags eval`` of an unknown flag or with a quoted key, and OpenFeature's
Python OFREP provider on a disabled flagd flag and on a lensed answer.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from starlette.applications import Starlette
from starlette.routing import Mount

import aioflags
from aioflags import Config, ConfigurationError, DataSystem
from aioflags.__main__ import main
from aioflags._datasystem._sources._files import load_flag_files
from aioflags.lens import LensConfig, LensMiddleware, mint
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagServer
from tests.processes import HTTP_GUARD
from tests.test_ofrep import _resolve, uvicorn_app

GUARD = 30  # a guard against a hang, never a timing the test relies on
#: flagd flags: one for user-42 alone, one disabled, one with no default variant.
FLAGD: dict[str, Any] = {
    "flags": {
        "for-42": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {
                "if": [{"==": [{"var": "targetingKey"}, "user-42"]}, "on", "off"]
            },
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
    }
}
#: A LaunchDarkly flag that serves true to user-42 alone.
LAUNCHDARKLY: dict[str, Any] = {
    "flags": {
        "banner": {
            "on": True,
            "variations": [True, False],
            "fallthrough": {"variation": 1},
            "targets": [{"values": ["user-42"], "variation": 0}],
            "clientSideAvailability": {"usingEnvironmentId": True},
        }
    }
}


@pytest.fixture
def flagd_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.flagd.json"
    path.write_text(json.dumps(FLAGD))
    return path


@pytest.fixture
def ld_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(LAUNCHDARKLY))
    return path


# ------------------------------------------------------------ FLAGD_* (N4)
def test_row230_N4_flagd_variables_without_a_resolver_name_flagd_resolver() -> None:
    """flagd's providers default to rpc: aioflags says which resolver it reads."""
    env = {"FLAGD_HOST": "localhost", "FLAGD_PORT": "8013"}
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env(env)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("FLAGD_HOST and FLAGD_PORT are set but FLAGD_RESOLVER")
    assert "FLAGD_RESOLVER=in-process" in message and "FLAGD_RESOLVER=file" in message
    one = {"FLAGD_OFFLINE_FLAG_SOURCE_PATH": "flags.json"}
    with pytest.raises(
        ConfigurationError, match="FLAGD_OFFLINE_FLAG_SOURCE_PATH is set"
    ):
        Config.from_env(one)
    # With something else to connect to, flagd's variables are someone else's.
    assert Config.from_env({**env, "AIOFLAGS_SDK_KEY": "sdk-1"}).sdk_key == "sdk-1"
    assert Config.from_env({**env, "AIOFLAGS_OFFLINE": "true"}).offline
    system = DataSystem.file("flags.json")
    assert Config.from_env(env, data_system=system).data_system is system
    # With the resolver, they are read (and an empty variable is an unset one).
    read = Config.from_env({**env, "FLAGD_RESOLVER": "in-process"})
    assert read.data_system is not None
    assert Config.from_env({"FLAGD_HOST": " "}, offline=False).sdk_key is None


def test_row230_N4_eval_without_a_file_says_so_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AIOFLAGS_SDK_KEY", "LAUNCHDARKLY_SDK_KEY", "FLAGD_RESOLVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLAGD_HOST", "localhost")
    assert main(["eval", "f", "--context", "u1"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: FLAGD_HOST is set but FLAGD_RESOLVER is not")


# ------------------------------------------------- OFREP's "context" (N6)
@pytest.mark.parametrize(
    "body",
    [
        {"targetingKey": "user-42"},
        {"targetingKey": "user-42", "plan": "pro"},
        {"kind": "user", "key": "user-42"},
    ],
)
@pytest.mark.asyncio
async def test_row240_N6_row94_a_context_outside_context_is_refused_saying_where(
    flagd_file: Path, ld_file: Path, body: dict[str, Any]
) -> None:
    """Not evaluated as ``{}`` (flagd: another bucket; LaunchDarkly: no key)."""
    async with (
        FlagServer(*load_flag_files(flagd_file, ld_file)) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        for path in (
            "/ofrep/v1/evaluate/flags/for-42",  # flagd (row 240)
            "/ofrep/v1/evaluate/flags/banner",  # LaunchDarkly (row 94)
            "/ofrep/v1/evaluate/flags",
        ):
            answer = await http.post(path, json=body)
            assert answer.status_code == 400, path
            failure = answer.json()
            assert failure["errorCode"] == "INVALID_CONTEXT"
            details = failure["errorDetails"]
            assert '"context"' in details and "\n" not in details
            assert '{"context": {"targetingKey": "u1", ...}}' in details
        # Wrapped, it is evaluated for user-42 (flagd reads targetingKey alone).
        wrapped = {"context": body}
        answer = await http.post("/ofrep/v1/evaluate/flags/for-42", json=wrapped)
        assert answer.json()["value"] is ("targetingKey" in body)
        answer = await http.post("/ofrep/v1/evaluate/flags/banner", json=wrapped)
        assert answer.json()["value"] is True


@pytest.mark.asyncio
async def test_a_body_without_context_attributes_stays_an_empty_context(
    flagd_file: Path,
) -> None:
    """``{}`` and an unknown top-level name are OFREP's "no context" (a flagd flag needs no key)."""
    async with (
        FlagServer(*load_flag_files(flagd_file)) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        for body in ({}, {"extension": 1}):
            answer = await http.post("/ofrep/v1/evaluate/flags/for-42", json=body)
            assert (answer.status_code, answer.json()["variant"]) == (200, "off")
        # A "context" beside them is read; the names beside it are not.
        both = {"context": {"targetingKey": "user-42"}, "targetingKey": "x"}
        answer = await http.post("/ofrep/v1/evaluate/flags/for-42", json=both)
        assert answer.json()["variant"] == "on"


# ------------------------------------------------------ aioflags eval (N7, N8)
@pytest.mark.parametrize("context", ["{}", '{"kind": "user"}', '{"targetingKey": 3}'])
@pytest.mark.parametrize("which", ["flagd", "launchdarkly"])
def test_row237_N7_eval_of_an_unknown_flag_is_flag_not_found_whatever_the_context(
    flagd_file: Path,
    ld_file: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    context: str,
    which: str,
) -> None:
    path = flagd_file if which == "flagd" else ld_file
    assert main(["eval", "nope", "--context", context, "--file", str(path)]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["reason"] == {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}
    assert answer["value"] is None
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [line for line in said if "context" in line.lower()], said


@pytest.mark.parametrize(
    ("written", "flag"),
    [
        ('"user-42"', "for-42"),  # a flagd flag
        ('"user-42"', "banner"),  # a LaunchDarkly flag
        (' "user-42"\n', "for-42"),  # as a file or a shell may give it
        ('"user\\u002d42"', "banner"),  # any JSON string
    ],
)
def test_row238_N8_a_json_string_context_is_the_key_without_its_quotes(
    flagd_file: Path,
    ld_file: Path,
    capsys: pytest.CaptureFixture[str],
    written: str,
    flag: str,
) -> None:
    files = ["--file", str(flagd_file), "--file", str(ld_file)]
    assert main(["eval", flag, "--context", written, *files]) == 0
    quoted = json.loads(capsys.readouterr().out)
    assert main(["eval", flag, "--context", "user-42", *files]) == 0
    bare = json.loads(capsys.readouterr().out)
    assert quoted == bare and bare["value"] is True


def test_row238_N8_a_context_file_with_a_json_string_is_the_key(
    flagd_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = tmp_path / "context.json"
    context.write_text(json.dumps("user-42") + "\n")
    file = ["--file", str(flagd_file)]
    assert main(["eval", "for-42", "--context", f"@{context}", *file]) == 0
    assert json.loads(capsys.readouterr().out)["variant"] == "on"


@pytest.mark.parametrize("written", ['"user-42', '"a" "b"', '"'])
def test_row238_N8_a_quote_that_opens_no_json_string_is_refused_in_one_line(
    flagd_file: Path, capsys: pytest.CaptureFixture[str], written: str
) -> None:
    file = ["--file", str(flagd_file)]
    with pytest.raises(SystemExit) as raised:
        main(["eval", "for-42", "--context", written, *file])
    assert raised.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "starts with a quote but is not a JSON string" in error
    assert 'give the key bare (user-42) or as JSON ("user-42")' in error


# ------------------------------------- OpenFeature's Python OFREP provider (N11)
@pytest.mark.asyncio
async def test_row241_N11_the_python_ofrep_provider_reads_a_disabled_flagd_flag(
    flagd_file: Path,
) -> None:
    """A code default (DISABLED, no default variant) is not an error there."""
    async with FlagServer(*load_flag_files(flagd_file)) as server:
        beta, limit, on = await anyio.to_thread.run_sync(
            _resolve,
            server.url,
            "ofrep-first-hour",
            [
                ("boolean", "beta", True, {}),
                ("integer", "limit", 7, {"targetingKey": "u1"}),
                ("boolean", "for-42", False, {"targetingKey": "user-42"}),
            ],
        )
    assert (beta.value, beta.reason, beta.error_code) == (True, Reason.DISABLED, None)
    assert (limit.value, limit.reason, limit.error_code) == (7, Reason.DEFAULT, None)
    assert (on.value, on.variant, on.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert beta.variant == limit.variant == ""  # (no variant served)


# --------------------------------------------------- the lens (row 126)
SECRET = "a-lens-secret-for-the-first-hour-0123456789"


def _resolve_lensed(base_url: str, token: str) -> Any:
    """``for-42`` through OpenFeature's OFREP provider, with a lens token (blocking)."""
    provider = OFREPProvider(
        base_url, headers_factory=lambda: {"X-Aioflags-Lens": token}, timeout=GUARD
    )
    api.set_provider_and_wait(provider, "ofrep-lensed")
    client = api.get_client("ofrep-lensed")
    return client.get_boolean_details("for-42", False, EvaluationContext("u1"))


@pytest.mark.slow
@pytest.mark.asyncio
async def test_row126_a_lensed_answer_through_the_python_provider_is_as_documented(
    flagd_file: Path,
) -> None:
    """The lens's ``OVERRIDE`` is no reason word that provider knows: documented."""
    lens = LensConfig(secrets=[SECRET], allow=["for-42"])
    config = Config(
        data_system=DataSystem.file(flagd_file), send_events=False, lens=lens
    )
    async with aioflags.Client(config) as client:
        app = Starlette(routes=[Mount("/", OFREPApp(client, expose="all"))])
        app.add_middleware(LensMiddleware, client=client)
        token = mint(SECRET, flags={"for-42": True})
        async with uvicorn_app(app) as url:
            async with httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http:
                answer = await http.post(
                    "/ofrep/v1/evaluate/flags/for-42",
                    json={"context": {"targetingKey": "u1"}},
                    headers={"X-Aioflags-Lens": token},
                )
                assert answer.json()["reason"] == "OVERRIDE"  # (docs/lens.md)
                assert answer.json()["variant"] == "on"
            details = await anyio.to_thread.run_sync(_resolve_lensed, url, token)
    assert (details.value, details.error_code) == (False, ErrorCode.GENERAL)
    assert "OVERRIDE" in (details.error_message or "")
    # What docs/flagd.md says of it, beside the flagd flags' OFREP answers.
    page = (Path(__file__).parent.parent / "docs" / "flagd.md").read_text()
    ofrep = page.split("### OFREP (`aioflags serve`, `OFREPApp`)", 1)[1]
    ofrep = " ".join(ofrep.split("\n### ", 1)[0].split())
    assert "lensed answer" in ofrep and '`"OVERRIDE"`' in ofrep


# ------------------------------------------ docs/flagd.md's first screen
def _three_ways_in() -> dict[str, dict[str, str]]:
    """docs/flagd.md's "Three ways in" table: each row's environment, as written."""
    page = (Path(__file__).parent.parent / "docs" / "flagd.md").read_text()
    table = page.split("## Three ways in", 1)[1].split("\n\n", 2)[1]
    rows: dict[str, dict[str, str]] = {}
    for line in table.splitlines()[2:]:
        you_have, _, environment = (cell.strip() for cell in line.strip("|").split("|"))
        rows[you_have] = dict(
            pair.split("=", 1)
            for pair in re.findall(r"`(FLAGD_\w+=[^`]*)`", environment)
        )
    return rows


@pytest.mark.asyncio
async def test_the_flagd_page_s_three_ways_in_work_as_written(flagd_file: Path) -> None:
    """The first screen's environments, set as written (the host and paths ours), evaluate."""
    from aioflags.testing import FlagdServer

    rows = _three_ways_in()
    assert len(rows) == 3, rows
    from_file = rows["a flag file"]
    assert from_file["FLAGD_RESOLVER"] == "file"
    assert from_file["FLAGD_OFFLINE_FLAG_SOURCE_PATH"] == "flags.flagd.json"
    from_file["FLAGD_OFFLINE_FLAG_SOURCE_PATH"] = str(flagd_file)
    from_server = rows["a flagd server (its sync port)"]
    assert from_server == {
        "FLAGD_RESOLVER": "in-process",
        "FLAGD_HOST": "flagd",
        "FLAGD_SYNC_PORT": "8015",
    }
    async with FlagdServer(FLAGD) as server:
        host, port = server.target.rsplit(":", 1)
        from_server.update(FLAGD_HOST=host, FLAGD_SYNC_PORT=port)
        for env in (from_file, from_server):
            with anyio.fail_after(GUARD):
                async with aioflags.Client(Config.from_env(env)) as client:
                    context = aioflags.Context.create("user-42")
                    assert await client.variation("for-42", context, False) is True
