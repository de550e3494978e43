"""Flag files: the loader, DataSystem.file, and `python -m aioflags serve` in a subprocess."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflags import (
    Client,
    Config,
    Context,
    DataSystem,
    ErrorKind,
    ProviderEvent,
    ProviderStatus,
)
from aioflags._datasystem._sources._files import FlagFileError, load_flag_files
from aioflags._datasystem._sources._versions import ContentVersions
from aioflags._datasystem._store import snapshot_from_data
from aioflags.testing import FakeClock, FlagServer
from tests.flags import STRING_FLAG

USER = Context.create("u1")
FLAG = STRING_FLAG


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_loader_merges_flags_values_and_segments(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {"flags": {"f": FLAG}, "flagValues": {"v": 42}})
    b = write(tmp_path / "b.json", {"segments": {"s": {"included": ["u1"]}}})
    flags, segments = load_flag_files(a, b)
    assert flags["f"]["version"] == 1 and flags["f"]["key"] == "f"
    assert flags["v"] == {
        "key": "v",
        "version": 1,
        "on": True,
        "variations": [42],
        "fallthrough": {"variation": 0},
    }
    assert segments["s"]["key"] == "s"
    empty = tmp_path / "empty.json"
    empty.write_text("null")
    assert load_flag_files(empty) == ({}, {})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1]", "must be an object"),
        ('{"flagz": {}}', "unknown top-level keys"),
        ('{"flags": []}', "must be an object keyed"),
        ('{"flags": {"f": 5}}', "flags/f must be an object"),
    ],
)
def test_loader_errors_say_what_and_where(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(FlagFileError, match=message) as info:
        load_flag_files(path)
    assert str(path) in str(info.value)


def test_loader_rejects_missing_files_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(FlagFileError, match="cannot read"):
        load_flag_files(tmp_path / "missing.json")
    a = write(tmp_path / "a.json", {"flags": {"f": FLAG}})
    b = write(tmp_path / "b.json", {"flagValues": {"f": 1}})
    with pytest.raises(FlagFileError, match="defined more than once"):
        load_flag_files(a, b)


def test_loader_warns_about_variation_indexes_out_of_range(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = {
        **FLAG,
        "offVariation": 2,
        "targets": [{"values": ["u2"], "variation": 0}],
        "rules": [
            {"clauses": [], "variation": 1},
            {"clauses": [], "rollout": {"variations": [{"variation": 7}]}},
        ],
    }
    path = write(tmp_path / "flags.json", {"flags": {"bad": bad, "good": FLAG}})
    with caplog.at_level(logging.WARNING, logger="aioflags"):
        flags, _ = load_flag_files(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: flag 'bad' has 2 variations, but offVariation is 2, "
        "rules[1].rollout.variations[0].variation is 7; evaluations that reach "
        "them return the default with MALFORMED_FLAG"
    ]
    # Loaded all the same: only evaluations that reach a bad index fail.
    snapshot = snapshot_from_data(flags)  # type: ignore[arg-type]
    assert snapshot.variation("bad", Context.create("u2"), "d") == "on"  # target
    assert snapshot.variation("bad", USER, "d") == "off"  # the first rule
    off = snapshot_from_data({"bad": {**bad, "on": False}})
    detail = off.variation_detail("bad", USER, "d")
    assert detail.value == "d" and detail.reason["errorKind"] == "MALFORMED_FLAG"


def test_yaml_needs_the_extra_or_works(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text("flagValues:\n  v: 7\n")
    try:
        import yaml  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        with pytest.raises(FlagFileError, match=r"aioflags\[yaml\]"):
            load_flag_files(path)
    else:
        assert load_flag_files(path)[0]["v"]["variations"] == [7]


@pytest.mark.asyncio
async def test_file_data_system_reloads_and_keeps_last_good_data(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "flags.json", {"flags": {"f": FLAG}})
    clock = FakeClock()
    async with Client(
        Config(data_system=DataSystem.file(path, reload=True, interval=1)), clock=clock
    ) as client:
        assert client.status is ProviderStatus.READY
        assert await client.variation("f", USER, None) == "on"
        path.write_text("{broken")
        os.utime(path, ns=(1, 1))  # a new stamp even on coarse file-system clocks
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        with anyio.fail_after(5):
            await client._bus.wait_status(lambda s: s is not ProviderStatus.READY)
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert (
            status.error.kind is ErrorKind.INVALID_DATA
            and "invalid JSON" in status.error.message
        )
        assert await client.variation("f", USER, None) == "on"  # last good data
        write(path, {"flags": {"f": {**FLAG, "fallthrough": {"variation": 1}}}})
        os.utime(path, ns=(2, 2))
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        with anyio.fail_after(5):
            await client._bus.wait_status(lambda s: s is ProviderStatus.READY)
        assert await client.variation("f", USER, None) == "off"


def test_content_versions_move_exactly_when_content_does() -> None:
    versions = ContentVersions()
    first = versions.stamp("flag", {"a": {"on": True}, "b": {"version": 7, "x": 1}})
    assert first["a"]["version"] == 1 and first["b"]["version"] == 7
    # Same content, keys reordered, file version bumped: nothing changed.
    same = versions.stamp("flag", {"a": {"on": True}, "b": {"x": 1, "version": 9}})
    assert same["a"]["version"] == 1 and same["b"]["version"] == 7
    # 1, 1.0 and true are different JSON; a higher file version wins.
    changed = versions.stamp("flag", {"a": {"on": 1}, "b": {"version": 20, "x": 1.0}})
    assert changed["a"]["version"] == 2 and changed["b"]["version"] == 20
    # Kinds are versioned apart.
    assert versions.stamp("segment", {"a": {"on": True}})["a"]["version"] == 1


async def _reload(path: Path, data: Any, stamp: int, clock: FakeClock) -> None:
    """Write ``data`` and let the file source's next check see it."""
    write(path, data)
    os.utime(path, ns=(stamp, stamp))  # a new stamp even on coarse file-system clocks
    await clock.wait_for_sleeper(within=1)
    await clock.advance(1)


@pytest.mark.asyncio
async def test_file_edits_announce_exactly_the_changed_flags(tmp_path: Path) -> None:
    """No version bump needed, flagValues included, unchanged flags not announced."""
    data: dict[str, Any] = {
        "flags": {"f": FLAG, "g": FLAG},
        "flagValues": {"v": 1, "w": "same"},
    }
    path = write(tmp_path / "flags.json", data)
    clock = FakeClock()
    send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
    async with (
        Client(
            Config(data_system=DataSystem.file(path, reload=True, interval=1)),
            clock=clock,
        ) as client,
        send,
        receive,
    ):
        client.add_flag_change_handler(send.send_nowait)
        edited = {**FLAG, "fallthrough": {"variation": 1}}  # same "version"
        await _reload(path, {**data, "flags": {"f": edited, "g": FLAG}}, 1, clock)
        with anyio.fail_after(5):
            assert await receive.receive() == {"f"}
        assert await client.variation("f", USER, None) == "off"

        data = {"flags": {"f": edited, "g": FLAG}, "flagValues": {"v": 2, "w": "same"}}
        await _reload(path, data, 2, clock)
        with anyio.fail_after(5):
            assert await receive.receive() == {"v"}
        assert await client.variation("v", USER, None) == 2

        # Rewritten unchanged (the file's stamp moves): nothing to announce; the
        # next event is the one for the edit after it.
        await _reload(path, data, 3, clock)
        await _reload(path, {**data, "flagValues": {"v": 2, "w": "new"}}, 4, clock)
        with anyio.fail_after(5):
            assert await receive.receive() == {"w"}


@pytest.mark.asyncio
async def test_flag_server_replace_all_reversions_only_what_changed() -> None:
    flags = {"f": FLAG, "g": FLAG}
    async with FlagServer(flags) as server:
        config = server.config()
        async with Client(config) as client:
            send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
            client.add_flag_change_handler(send.send_nowait)
            before = server.flags
            server.replace_all({"f": {**FLAG, "on": False}, "g": FLAG})
            with anyio.fail_after(5):
                assert await receive.receive() == {"f"}
            after = server.flags
            assert after["g"] == before["g"]
            assert after["f"]["version"] > before["f"]["version"]
            send.close()
            receive.close()


@pytest.mark.parametrize("content", [None, "{broken"], ids=["missing", "malformed"])
@pytest.mark.asyncio
async def test_a_file_that_cannot_load_without_reload_is_fatal_at_once(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "flags.json"
    if content is not None:
        path.write_text(content)
    clock = FakeClock()  # never advanced: nothing waits for a timeout
    config = Config(data_system=DataSystem.file(path), ready_timeout=3600)
    async with Client(config, clock=clock) as client:
        assert client.status is ProviderStatus.FATAL
        status = client.data_source_status
        assert status is not None and status.error is not None
        message = status.error.message
        assert str(path) in message
        assert ("No such file" if content is None else "invalid JSON") in message
        assert "reads its files once: fix them and start a new client" in message
        assert status.error.fatal


@pytest.mark.asyncio
async def test_a_missing_file_with_reload_is_an_error_at_once_then_ready(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.json"
    clock = FakeClock()
    config = Config(
        data_system=DataSystem.file(path, reload=True, interval=1), ready_timeout=3600
    )
    send, receive = anyio.create_memory_object_stream[str](10)
    async with Client(config, clock=clock) as client, send, receive:
        assert client.status is ProviderStatus.ERROR
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert (
            f"{path}: cannot read the flag file: No such file" in status.error.message
        )
        assert "watching for edits" in status.error.message
        # The ERROR event that set the status (replayed to a new handler).
        client.add_handler(ProviderEvent.ERROR, lambda d: send.send_nowait(d.message))
        with anyio.fail_after(5):
            assert str(path) in await receive.receive()
        await _reload(path, {"flagValues": {"v": 1}}, 1, clock)
        with anyio.fail_after(5):
            await client._bus.wait_status(lambda s: s is ProviderStatus.READY)
        assert await client.variation("v", USER, None) == 1


def test_file_data_system_validation() -> None:
    from aioflags import ConfigurationError

    with pytest.raises(ConfigurationError, match="at least one path"):
        DataSystem.file()
    with pytest.raises(ConfigurationError, match="interval"):
        DataSystem.file("x.json", interval=0)


def test_serve_refuses_remote_addresses(tmp_path: Path) -> None:
    path = write(tmp_path / "flags.json", {"flags": {"f": FLAG}})
    result = subprocess.run(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "not a loopback address" in result.stderr


class Served:
    """A ``python -m aioflags serve`` process: its URL, then what it printed."""

    url = ""
    out = ""
    err = ""


@contextlib.contextmanager
def serve(path: Path) -> Iterator[Served]:
    """Run the serve command on ``path``; stop it with SIGINT (Ctrl-C) afterwards."""
    served = Served()
    # A shell without job control starts background jobs with SIGINT ignored,
    # and an ignored signal stays ignored across exec: the child would never
    # see the Ctrl-C. A handler is reset to the default by exec, so the child
    # gets Python's KeyboardInterrupt whatever this process inherited.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "aioflags flag service" in line, line + (
            proc.stderr.read() if proc.stderr else ""
        )
        served.url = line.rsplit(" at ", 1)[1].strip()
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        served.out, served.err = proc.communicate(timeout=60)  # a guard, not a timing
    assert proc.returncode == 0, served.err
    assert "stopped" in served.out


@pytest.mark.slow
def test_serve_command_with_a_real_client(tmp_path: Path) -> None:
    """Toggling one flag in the served file announces that flag, and only it."""
    data = {"flags": {"f": FLAG, "g": FLAG}, "flagValues": {"v": 1}}
    path = write(tmp_path / "flags.json", data)
    with serve(path) as served:
        url = served.url

        async def check() -> None:
            config = Config("sdk-key", base_uri=url, stream_uri=url, events_uri=url)
            send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
            async with Client(config) as client, send, receive:
                assert await client.variation("f", USER, None) == "on"
                client.add_flag_change_handler(send.send_nowait)
                write(path, {**data, "flags": {"f": {**FLAG, "on": False}, "g": FLAG}})
                with anyio.fail_after(10):
                    assert await receive.receive() == {"f"}
                assert await client.variation("f", USER, None) == "off"
                write(
                    path,
                    {
                        **data,
                        "flags": {"f": {**FLAG, "on": False}, "g": FLAG},
                        "flagValues": {"v": 22},  # a new size: a new stamp
                    },
                )
                with anyio.fail_after(10):
                    assert await receive.receive() == {"v"}
                assert await client.variation("v", USER, None) == 22

        anyio.run(check)


@pytest.mark.slow
def test_serve_warns_about_a_variation_index_out_of_range(tmp_path: Path) -> None:
    bad = {**FLAG, "fallthrough": {"variation": 5}}
    path = write(tmp_path / "flags.json", {"flags": {"bad": bad}})
    with serve(path) as served:
        pass  # it serves
    assert (
        f"{path}: flag 'bad' has 2 variations, but fallthrough.variation is 5; "
        "evaluations that reach it return the default with MALFORMED_FLAG"
    ) in served.err


def test_serve_reports_a_bad_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    assert main(["serve", str(tmp_path / "missing.json"), "--port", "0"]) == 2
    assert "error:" in capsys.readouterr().err
    assert (
        main(["serve", str(write(tmp_path / "bad.json", [1])), "--host", "localhost"])
        == 2
    )
