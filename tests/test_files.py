"""Flag files: the loader, DataSystem.file, and `python -m aioflags serve` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflags import Client, Config, Context, DataSystem, ErrorKind, ProviderStatus
from aioflags._files import FlagFileError, load_flag_files
from aioflags.testing import FakeClock

USER = Context.create("u1")
FLAG: dict[str, Any] = {
    "on": True,
    "variations": ["on", "off"],
    "offVariation": 1,
    "fallthrough": {"variation": 0},
}


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


@pytest.mark.asyncio
async def test_missing_file_is_a_clear_error_status(tmp_path: Path) -> None:
    async with Client(
        Config(data_system=DataSystem.file(tmp_path / "nope.json"), ready_timeout=0.2)
    ) as client:
        assert client.status is ProviderStatus.ERROR
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert "cannot read the flag file" in status.error.message


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


def test_serve_command_with_a_real_client(tmp_path: Path) -> None:
    path = write(tmp_path / "flags.json", {"flags": {"f": FLAG}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "aioflags flag service" in line, line + (
            proc.stderr.read() if proc.stderr else ""
        )
        url = line.rsplit(" at ", 1)[1].strip()

        async def check() -> None:
            config = Config("sdk-key", base_uri=url, stream_uri=url, events_uri=url)
            async with Client(config) as client:
                assert await client.variation("f", USER, None) == "on"
                changed = anyio.Event()
                client.add_flag_change_handler(lambda keys: changed.set())
                write(path, {"flags": {"f": {**FLAG, "fallthrough": {"variation": 1}}}})
                with anyio.fail_after(10):
                    await changed.wait()
                assert await client.variation("f", USER, None) == "off"

        anyio.run(check)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "stopped" in out


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
