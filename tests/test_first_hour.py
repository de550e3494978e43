"""A new user's first hour (issue 23): misuse that says what to do, config, the command line."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import aioflags
from aioflags import Client, Config, ConfigurationError, Context, ProviderStatus
from aioflags.__main__ import main
from aioflags.testing import FlagData, FlagServer
from tests.flags import BOOL_FLAG

FLAG = BOOL_FLAG


# ----------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("sdk-abc\n", r"'\\n' at the end \(read from a file or an environment"),
        (" sdk-abc", "' ' at the start"),
        ("sdk abc", "' ' at position 3"),
        ("sdk-é", "'é' at the end"),
        ("", "empty .*offline=True"),
        ("x" * 9000, "9000 characters long; the limit is 8192"),
    ],
    ids=[
        "trailing-newline",
        "leading-space",
        "inner-space",
        "non-ascii",
        "empty",
        "long",
    ],
)
def test_a_bad_sdk_key_says_which_character_and_where(key: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Config(key, send_events=False)


def test_tags_follow_launchdarkly_empty_is_unset_invalid_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert Config("k", application_id="", send_events=False).tags_header is None
    config = Config(
        "k", application_id="has space", application_version="1.2", send_events=False
    )
    assert config.tags_header == "application-version/1.2"  # the valid one is sent
    config = Config("k", application_id="a" * 65, send_events=False)
    assert config.tags_header is None
    assert caplog.text.count("is dropped") == 2
    assert "application_id='has space'" in caplog.text


def test_config_from_the_environment() -> None:
    env = {
        "LAUNCHDARKLY_SDK_KEY": "ld-key",
        "AIOFLAGS_BASE_URI": "http://127.0.0.1:9/",
        "AIOFLAGS_OFFLINE": "false",
        "AIOFLAGS_READY_TIMEOUT": "0",
        "AIOFLAGS_APPLICATION_ID": "checkout",
        "OTHER": "ignored",
    }
    config = Config.from_env(env)
    assert config.sdk_key == "ld-key"  # LaunchDarkly's variable as the fallback
    assert config.base_uri == "http://127.0.0.1:9"
    assert config.ready_timeout == 0 and config.offline is False
    assert config.tags_header == "application-id/checkout"
    assert Config.from_env({**env, "AIOFLAGS_SDK_KEY": "ours"}).sdk_key == "ours"
    assert Config.from_env(env, ready_timeout=3).ready_timeout == 3  # keywords win
    assert Config.from_env({}).sdk_key is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIOFLAGS_BASEURI": "x"}, "unknown environment variable AIOFLAGS_BASEURI"),
        (
            {"AIOFLAGS_OFFLINE": "maybe"},
            "AIOFLAGS_OFFLINE='maybe': expected true or false",
        ),
        (
            {"AIOFLAGS_READY_TIMEOUT": "5s"},
            "AIOFLAGS_READY_TIMEOUT='5s': expected a number",
        ),
        ({"AIOFLAGS_SDK_KEY": "k\n"}, "at the end"),
    ],
)
def test_config_from_env_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Config.from_env(env)


def test_a_missing_sdk_key_names_the_variables_from_env_reads() -> None:
    config = Config.from_env({"AIOFLAGS_READY_TIMEOUT": "1"})
    with pytest.raises(ConfigurationError) as raised:
        Client(config)
    assert str(raised.value) == (
        "an sdk_key is required to connect to the flag service: pass "
        "Config(sdk_key), or set AIOFLAGS_SDK_KEY (or LAUNCHDARKLY_SDK_KEY) for "
        "Config.from_env(); or use offline=True, or a data system that needs "
        "none such as DataSystem.file"
    )


@pytest.mark.asyncio
async def test_ready_timeout_zero_starts_without_waiting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        config = server.config("k", ready_timeout=0, send_events=False)
        async with Client(config) as client:
            # No wait, and no ERROR either: nothing has failed yet.
            assert client.status is ProviderStatus.NOT_READY
            server.clear_faults()
            assert await client.wait_ready(timeout=10) is ProviderStatus.READY
        assert "not ready after" not in caplog.text


# ----------------------------------------------------------------- misuse
@pytest.mark.asyncio
async def test_evaluations_never_raise_for_something_that_is_not_a_context(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflags._evaluation import _door

    # Logged once per type for the process: a test before this one in the
    # same worker may have logged "got str" already.
    monkeypatch.setattr(_door, "_MISUSED", set())
    data = FlagData()
    data.set_value("f", True)
    async with Client(
        Config(data_system=data.data_system(), send_events=False)
    ) as client:
        detail = await client.bool_variation_detail("f", "alice", False)  # type: ignore[arg-type]
        assert (detail.value, detail.error_kind) == (False, "USER_NOT_SPECIFIED")
        assert await client.variation("f", {"key": "alice"}, "d") == "d"  # type: ignore[arg-type]
        assert not (await client.all_flags_state(42)).valid  # type: ignore[arg-type]
        assert client.snapshot().int_variation("f", b"x", 7) == 7  # type: ignore[arg-type]
        await client.bool_variation("f", "bob", False)  # type: ignore[arg-type]
    assert caplog.text.count("got str") == 1  # once per type
    assert "Context.create(key) or Context.from_dict" in caplog.text


NO_CONTEXT = (
    "aioflags evaluation got no context (None): the default is returned with "
    "USER_NOT_SPECIFIED. Pass a valid Context: Context.create(key) with a "
    "non-empty key, or Context.from_dict({...}); context.error says what is "
    "wrong with one (logged once per reason)"
)
EMPTY_KEY = NO_CONTEXT.replace(
    "got no context (None)",
    "got an invalid Context (context key must not be empty)",
)


@pytest.mark.asyncio
@pytest.mark.parametrize("events", [False, True], ids=["events-off", "events-on"])
async def test_no_context_or_an_invalid_one_is_logged_once_per_reason(
    events: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        config = server.config(send_events=events, diagnostic_opt_out=True)
        async with Client(config) as client:
            snapshot = client.snapshot()
            for _ in range(2):
                for context in (None, Context.create("")):
                    assert await client.variation("f", context, "d") == "d"
                    assert not await client.bool_variation("f", context, False)
                    detail = await client.variation_detail("f", context, 1)
                    assert detail.error_kind == "USER_NOT_SPECIFIED"
                    assert snapshot.int_variation("f", context, 7) == 7
                    assert not (await client.all_flags_state(context)).valid
    warned = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "aioflags.evaluation"
    ]
    assert warned == [("WARNING", NO_CONTEXT), ("WARNING", EMPTY_KEY)]


def test_a_blocking_client_never_started_says_how_to_start_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import aioflags.blocking

    client = aioflags.blocking.Client(Config("k", send_events=False))
    assert client.variation("f", Context.create("u"), 1) == 1
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "aioflags client evaluated before it was started: evaluations return "
        "defaults (CLIENT_NOT_READY) until it is started: call client.start() "
        "or use `with client:`"
    ]


@pytest.mark.asyncio
async def test_evaluating_a_client_never_started_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client(Config("k", send_events=False))
    user = Context.create("u")
    for _ in range(3):
        detail = await client.variation_detail("f", user, 1)
        assert detail.error_kind == "CLIENT_NOT_READY"
    assert caplog.text.count("evaluated before it was started") == 1
    assert "async with client" in caplog.text


@pytest.mark.asyncio
async def test_registering_a_watcher_before_start_does_not_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client(Config("k", send_events=False))
    client.add_flag_value_change_handler("f", Context.create("u"), print)
    assert "evaluated before" not in caplog.text


LOOP_ENDED = (
    "aioflags client was still running when its event loop ended (`async with "
    "client:` was never left): it has stopped (NOT_READY; evaluations return "
    "defaults, CLIENT_NOT_READY). A client runs on the event loop that starts it: "
    "leave `async with client:` (or await client.aclose()) before that loop ends, "
    "and start the client on the loop that uses it"
)
USED_AFTER_ITS_LOOP = (
    "aioflags client evaluated after the event loop it ran on ended with it still "
    "running: evaluations return defaults (CLIENT_NOT_READY) until it is started "
    "on this loop: start it with `async with client:` (in your app's lifespan, "
    "for example)"
)


def test_a_client_left_running_when_its_loop_ends_says_so_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not 36 lines of asyncio's tracebacks from finalising it on the loop's way out."""
    data = FlagData()
    data.set_value("f", True)
    client = Client(Config(data_system=data.data_system(), send_events=False))
    user = Context.create("u")

    async def start_and_forget_to_close() -> bool:
        await client.__aenter__()
        return await client.bool_variation("f", user, False)

    async def evaluate() -> str | None:
        return (await client.bool_variation_detail("f", user, False)).error_kind

    async def start_here() -> bool:
        async with client:
            return await client.bool_variation("f", user, False)

    assert asyncio.run(start_and_forget_to_close()) is True
    assert client.status is ProviderStatus.NOT_READY  # not READY on stale data
    for _ in range(2):
        assert asyncio.run(evaluate()) == "CLIENT_NOT_READY"
    assert asyncio.run(start_here()) is True  # a client started on this loop
    logged = [
        (r.name, r.levelname, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.WARNING
    ]
    assert logged == [
        ("aioflags", "WARNING", LOOP_ENDED),
        ("aioflags", "WARNING", USED_AFTER_ITS_LOOP),
    ]


@pytest.mark.asyncio
async def test_closing_a_client_from_another_event_loop_says_where_to_close_it() -> (
    None
):
    data = FlagData()
    data.set_value("f", True)
    async with Client(
        Config(data_system=data.data_system(), send_events=False)
    ) as client:

        async def close_it() -> None:
            await client.aclose()

        with pytest.raises(RuntimeError) as raised, anyio.fail_after(30):  # no hang
            await anyio.to_thread.run_sync(
                asyncio.run, close_it(), abandon_on_cancel=True
            )
        assert str(raised.value) == (
            "this aioflags client runs on another event loop (the one that entered "
            "`async with client:`): close it from that loop. A client runs on one "
            "event loop: give each loop (or thread) a client of its own, or use "
            "aioflags.blocking.Client from threads"
        )
        assert client.status is ProviderStatus.READY  # untouched


def test_sync_with_says_use_async_with() -> None:
    client = Client(Config(offline=True))
    with pytest.raises(TypeError, match="use `async with client:`"), client:
        pass


# ------------------------------------------------------------ the command
def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aioflags", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_and_help_for_every_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"aioflags {aioflags.__version__}"
    for command in ("serve", "validate", "eval", "lens", "lens mint", "lens inspect"):
        with pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        text = capsys.readouterr().out
        # Every argument has help text (argparse prints nothing after a bare name):
        # the lines of its argument sections (the usage may wrap a bare name).
        sections = text.split("\n\n", 1)[1]  # (after the usage)
        options = [line for line in sections.splitlines() if line.startswith("  ")]
        assert options and all(len(line.split(None, 1)) == 2 for line in options), text


def test_serve_help_shows_a_config_with_events_uri(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without events_uri an app sends its events to LaunchDarkly: the console stays empty."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    url = "'http://127.0.0.1:8765'"
    line = f"  Config(sdk_key, base_uri={url}, stream_uri={url}, events_uri={url})"
    assert line in text.splitlines(), text  # the line `serve` prints, unwrapped
    assert "AIOFLAGS_EVENTS_URI" in text


def test_validate_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"flags": {"f": {"key": "f", **FLAG}}, "flagValues": {"g": 1}})
    )
    assert main(["validate", str(good)]) == 0
    assert "2 flags, 0 segments: valid" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"flags": {"f": {"key": "f", **FLAG, "rules": "nope"}}}))
    assert main(["validate", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "flags/f/rules" in captured.err and "MALFORMED_FLAG" in captured.err
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert main(["validate", str(broken)]) == 1
    assert "invalid JSON" in capsys.readouterr().err


def test_eval_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flagValues": {"banner": "hello"}}))
    assert main(["eval", "banner", "--context", "u1", "--file", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["value"] == "hello" and out["status"] == "READY"
    context = json.dumps({"kind": "org", "key": "o1"})
    assert main(["eval", "missing", "--context", context, "--file", str(path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["reason"] == {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}


def test_eval_says_which_attributes_a_context_without_kind_left_out(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 77: ``--context '{"key": "u1", "plan": "beta"}'`` dropped plan silently."""
    path = tmp_path / "flags.json"
    rule = {
        "variation": 0,
        "clauses": [{"attribute": "plan", "op": "in", "values": ["beta"]}],
    }
    path.write_text(json.dumps({"flags": {"f": {"key": "f", **FLAG, "rules": [rule]}}}))
    context = json.dumps({"key": "u1", "plan": "beta"})
    assert main(["eval", "f", "--context", context, "--file", str(path)]) == 0
    # Read as LaunchDarkly reads it: the rule on plan does not match ...
    assert json.loads(capsys.readouterr().out)["reason"] == {"kind": "FALLTHROUGH"}
    # ... and the command says why, and how to write it.
    (said,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == (
        "--context: 'plan' ignored: a context without \"kind\" is LaunchDarkly's "
        'old user JSON, which has its custom attributes under "custom". Write '
        '{"kind": "user", "key": ..., "plan": ...}, or '
        '{"key": ..., "custom": {"plan": ...}}'
    )
    caplog.clear()
    written = json.dumps({"kind": "user", "key": "u1", "plan": "beta"})
    assert main(["eval", "f", "--context", written, "--file", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["reason"]["kind"] == "RULE_MATCH"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.asyncio
async def test_eval_from_the_service_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        monkeypatch.setenv("AIOFLAGS_SDK_KEY", "k")
        monkeypatch.setenv("AIOFLAGS_BASE_URI", server.url)
        monkeypatch.setenv("AIOFLAGS_STREAM_URI", server.url)
        code = await anyio.to_thread.run_sync(
            main, ["eval", "f", "--context", '{"key": "u1"}']
        )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["value"] is True


@pytest.mark.slow
def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flagValues": {"f": True}}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", str(path), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is in use "
        "(pick another with --port, or --port 0 for a free one)"
    ]


@pytest.mark.slow
def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "aioflags"
    result = subprocess.run(
        [str(script), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == f"aioflags {aioflags.__version__}"


def test_logging_of_misuse_uses_the_library_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "aioflags")
    Config("k", application_version="bad version", send_events=False)
    assert caplog.records[-1].name == "aioflags"


# ------------------------------------------- LaunchDarkly's config behaviours
@pytest.mark.asyncio
async def test_a_payload_filter_is_sent_on_every_data_request() -> None:
    flags = {"f": FLAG}
    async with FlagServer(flags) as server:
        config = server.config(
            "k", payload_filter_key="mobile-flags", send_events=False
        )
        async with Client(config) as client:
            await server.wait_for_stream()
            assert client.status is ProviderStatus.READY
        fdv1 = server.config(
            "k",
            payload_filter_key="mobile-flags",
            data_system=aioflags.DataSystem.fdv1(),
            send_events=False,
        )
        async with Client(fdv1) as client:
            assert client.status is ProviderStatus.READY
    for path in ("/sdk/poll", "/sdk/stream", "/all"):
        requests = server.requests_to(path)
        assert requests, path
        assert all(r.query.get("filter") == "mobile-flags" for r in requests), path
    stream = server.requests_to("/sdk/stream")[0]
    assert next(iter(stream.query)) == "filter"  # before basis (protocol.md §1)


def test_an_invalid_filter_key_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert (
        Config("k", payload_filter_key="-bad", send_events=False).payload_filter_key
        is None
    )
    assert (
        Config("k", payload_filter_key="", send_events=False).payload_filter_key is None
    )
    assert (
        Config("k", payload_filter_key="ok.key_1", send_events=False).payload_filter_key
        == "ok.key_1"
    )
    assert caplog.text.count("payload_filter_key='-bad' is ignored") == 1


def test_polling_launchdarkly_faster_than_every_30_s_is_clamped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from types import SimpleNamespace

    from aioflags._datasystem._sources._common import poll_interval

    ctx: Any = SimpleNamespace(config=Config("k", poll_interval=5, send_events=False))
    assert poll_interval(ctx, "https://sdk.launchdarkly.com/sdk/poll", None) == 30
    assert poll_interval(ctx, "https://sdk.launchdarkly.us/sdk/poll", 1) == 30
    assert poll_interval(ctx, "https://sdk.launchdarkly.com/sdk/poll", 60) == 60
    # Relays and services of your own may be polled as often as you like.
    assert poll_interval(ctx, "http://127.0.0.1:8765/sdk/poll", None) == 5
    assert poll_interval(ctx, "https://relay.example/launchdarkly.com", 1) == 1
    assert caplog.text.count("below LaunchDarkly's minimum") <= 2
    assert "sdk.launchdarkly.com every 5 s" in caplog.text


@pytest.mark.slow
@pytest.mark.asyncio
async def test_messages_when_the_service_never_answers_or_has_no_such_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FlagServer({"f": FLAG}) as server:
        server.fail("/sdk/poll", hang=True)
        server.fail("/sdk/stream", hang=True)
        config = server.config("k", ready_timeout=0.2, send_events=False)
        async with Client(config) as client:
            last = client._bus.last_status_event
            assert last is not None
            assert (
                f"no answer yet from the flag service at {server.url}" in last.message
            )
            assert "is it reachable" in last.message
        server.clear_faults()
        server.fail("/sdk/poll", status=404)
        server.fail("/sdk/stream", status=404)
        config = server.config("k", ready_timeout=30, send_events=False)
        async with Client(config) as client:
            assert client.status is ProviderStatus.ERROR
    assert "no flag data was received, evaluations return defaults" in caplog.text
    assert "serving last known data" not in caplog.text.split("no answer yet")[-1]
