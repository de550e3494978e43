"""Flag files: the loader, DataSystem.file, and `python -m aioflags serve` in a subprocess."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from aioflags._datasystem._sources._watch import SETTLE
from aioflags._datasystem._store import snapshot_from_data
from aioflags.testing import FakeClock, FlagServer
from tests.flags import STRING_FLAG
from tests.processes import ended

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
        ('{"flagz": {}}', r"unknown top-level key 'flagz' \(did you mean 'flags'\?\)"),
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


def test_yaml_needs_the_extra_or_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text("flagValues:\n  v: 7\n")
    assert load_flag_files(path)[0]["v"]["variations"] == [7]
    # Without PyYAML (an extra), the error says how to install it.
    monkeypatch.setitem(sys.modules, "yaml", None)
    monkeypatch.delitem(sys.modules, "aioflags._datasystem._sources._yaml")
    with pytest.raises(FlagFileError, match=r"pip install 'aioflags\[yaml\]'"):
        load_flag_files(path)


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
        await clock.wait_for_sleeper(within=SETTLE)  # the settle check
        await clock.advance(SETTLE)
        with anyio.fail_after(30):
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
        await clock.wait_for_sleeper(within=SETTLE)  # the settle check
        await clock.advance(SETTLE)
        with anyio.fail_after(30):
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
    # A version that is no integer (true is not 1) is replaced.
    odd = versions.stamp("segment", {"t": {"version": True}, "s": {"version": "1"}})
    assert [type(odd[k]["version"]) for k in "ts"] == [int, int]


async def _reload(path: Path, data: Any, stamp: int, clock: FakeClock) -> None:
    """Write ``data`` and let the file source's next check see it, and settle."""
    await clock.wait_for_sleeper(within=1)  # the source is between checks
    write(path, data)
    os.utime(path, ns=(stamp, stamp))  # a new stamp even on coarse file-system clocks
    await clock.advance(1)
    await clock.wait_for_sleeper(within=SETTLE)  # the settle check
    await clock.advance(SETTLE)


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
        with anyio.fail_after(30):
            assert await receive.receive() == {"f"}
        assert await client.variation("f", USER, None) == "off"

        data = {"flags": {"f": edited, "g": FLAG}, "flagValues": {"v": 2, "w": "same"}}
        await _reload(path, data, 2, clock)
        with anyio.fail_after(30):
            assert await receive.receive() == {"v"}
        assert await client.variation("v", USER, None) == 2

        # Rewritten unchanged (the file's stamp moves): nothing to announce; the
        # next event is the one for the edit after it.
        await _reload(path, data, 3, clock)
        await _reload(path, {**data, "flagValues": {"v": 2, "w": "new"}}, 4, clock)
        with anyio.fail_after(30):
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
            with anyio.fail_after(30):
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
        with anyio.fail_after(30):
            assert str(path) in await receive.receive()
        await _reload(path, {"flagValues": {"v": 1}}, 1, clock)
        with anyio.fail_after(30):
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


def _has_ipv6_loopback() -> bool:
    """Whether this machine can listen on ``::1``."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("allow_remote", [False, True])
def test_serve_takes_the_ipv6_loopback_in_brackets(
    tmp_path: Path, allow_remote: bool
) -> None:
    """G12: ``--host '[::1]'`` (as a URL writes it) is the IPv6 loopback.

    It said "[::1] is not a loopback address"; with ``--allow-remote``, a
    ``socket.gaierror`` traceback. Where this machine has no IPv6 loopback,
    one line says so (and what to use), never a traceback.
    """
    path = write(tmp_path / "flags.json", {"flags": {"f": FLAG}})
    options = ["--host", "[::1]", *(["--allow-remote"] if allow_remote else [])]
    if _has_ipv6_loopback():
        with serve(path, *options) as served:
            assert served.url.startswith("http://[::1]:")
            # (the console answers [::1], as it does every loopback name)
            assert httpx.get(f"{served.url}/ui/", timeout=30).status_code == 200
        assert "Listening on" not in served.out  # loopback: nothing to warn of
        return
    result = subprocess.run(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0", *options],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: cannot listen on [::1]:0: this machine has no such address "
        "(it has no IPv6 loopback: use 127.0.0.1)"
    ]


def test_serve_says_in_one_line_that_there_is_no_ipv6_loopback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """G12: on a machine without IPv6 loopback, ``--host '[::1]'`` is one line.

    (Pinned here whatever this machine has: binding ``::1`` fails as it
    does where the kernel has no IPv6.)
    """
    import errno

    from aioflags.__main__ import main
    from aioflags._service import _hosting

    def no_ipv6(host: str, port: int, backlog: int) -> socket.socket:
        assert host == "::1"
        raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    monkeypatch.setattr(_hosting, "bind", no_ipv6)
    path = write(tmp_path / "flags.json", {"flags": {"f": FLAG}})
    assert main(["serve", str(path), "--host", "[::1]", "--port", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: cannot listen on [::1]:0: this machine has no such address "
        "(it has no IPv6 loopback: use 127.0.0.1)"
    ]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            ["--host", "nosuch.invalid", "--allow-remote"],
            "error: cannot listen on nosuch.invalid: the name does not resolve",
        ),
        (
            ["--host", "[127.0.0.1]"],
            "error: --host: [127.0.0.1] is not an IPv6 address in brackets",
        ),
    ],
)
def test_serve_says_in_one_line_why_it_cannot_listen(
    tmp_path: Path, options: list[str], said: str
) -> None:
    """G12: a host name that does not resolve ended in a ``socket.gaierror`` traceback."""
    path = write(tmp_path / "flags.json", {"flags": {"f": FLAG}})
    result = subprocess.run(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert said in result.stderr.splitlines()[-1]


class Served:
    """A ``python -m aioflags serve`` process: its URL, then what it printed."""

    url = ""
    out = ""
    err = ""


@contextlib.contextmanager
def serve(path: Path, *options: str) -> Iterator[Served]:
    """Run the serve command on ``path``; stop it with SIGINT (Ctrl-C) afterwards."""
    served = Served()
    # A shell without job control starts background jobs with SIGINT ignored,
    # and an ignored signal stays ignored across exec: the child would never
    # see the Ctrl-C. A handler is reset to the default by exec, so the child
    # gets Python's KeyboardInterrupt whatever this process inherited.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aioflags",
                "serve",
                str(path),
                "--port",
                "0",
                *options,
            ],
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
        served.out, served.err = ended(proc, signal.SIGINT)
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
                with anyio.fail_after(30):
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
                with anyio.fail_after(30):
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
    capsys.readouterr()
    empty = tmp_path / "empty.yaml"
    empty.write_text("# flags to come\n")
    assert main(["serve", str(empty), "--port", "0"]) == 2
    assert f"{empty}: the file is empty" in capsys.readouterr().err


# ------------------------------------------------- a misspelt top-level key
MISSPELT = {
    "flag": "'flag' (did you mean 'flags'?)",
    "flagz": "'flagz' (did you mean 'flags'?)",
    "flagvalues": "'flagvalues' (did you mean 'flagValues'?)",
}


def misspelt_file(tmp_path: Path, key: str, suffix: str) -> tuple[Path, str]:
    """A file whose only top-level key is ``key``, and what it must be called."""
    path = tmp_path / f"flags{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({key: {"f": 1}}))
    else:
        path.write_text(f"# flags\n{key}:\n  f: 1\n")
    expected = (
        f"{path}: unknown top-level key {MISSPELT[key]}: a flag file has flags, "
        "flagValues and segments"
    )
    return path, expected


ENTRY_POINTS = ["DataSystem.file", "serve", "validate", "eval --file", "diff"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize("key", list(MISSPELT))
def test_a_file_whose_only_key_is_misspelt_says_so_with_the_key_meant(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    key: str,
    suffix: str,
    entry: str,
) -> None:
    """Issue 77: such a file was "empty ... a save still being written?"."""
    from aioflags.__main__ import main

    path, expected = misspelt_file(tmp_path, key, suffix)
    if entry == "DataSystem.file":

        async def start() -> str:
            config = Config(data_system=DataSystem.file(path), ready_timeout=3600)
            async with Client(config, clock=FakeClock()) as client:
                assert client.status is ProviderStatus.FATAL
                status = client.data_source_status
                assert status is not None and status.error is not None
                return status.error.message

        said = anyio.run(start)
    elif entry == "serve":
        assert main(["serve", str(path), "--port", "0"]) == 2
        said = capsys.readouterr().err
    elif entry == "validate":
        assert main(["validate", str(path)]) == 1
        said = capsys.readouterr().err
    elif entry == "eval --file":
        assert main(["eval", "f", "--context", "u1", "--file", str(path)]) == 1
        said = "\n".join(r.getMessage() for r in caplog.records)
    else:
        contexts = tmp_path / "c.jsonl"
        contexts.write_text('{"kind": "user", "key": "u1"}\n')
        good = write(tmp_path / "good.json", {"flagValues": {"f": 1}})
        assert main(["diff", str(good), str(path), "--contexts", str(contexts)]) == 2
        said = capsys.readouterr().err
    assert expected in said
    assert "empty" not in said


def test_unknown_top_level_keys_are_each_named_then_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "f.json",
        {"flags": {}, "segmnets": {}, **{f"x{i}": 1 for i in range(6)}},
    )
    with pytest.raises(FlagFileError) as info:
        load_flag_files(path)
    assert str(info.value) == (
        f"{path}: unknown top-level keys 'segmnets' (did you mean 'segments'?), "
        "'x0', 'x1', 'x2', 'x3' and 2 more: a flag file has flags, flagValues "
        "and segments"
    )


# ---------------------------------------------------------------- YAML as written
#: LaunchDarkly's flag JSON written as YAML the way people write it: ``on``,
#: ``off``, ``yes`` and ``no`` unquoted, keys that look like numbers, a date.
#: PyYAML alone reads YAML 1.1, where ``on: true`` is ``{True: True}``.
NATURAL_YAML = """\
# LaunchDarkly flag JSON, written as YAML
flags:
  new-checkout:
    on: true
    variations: [true, false]
    offVariation: 1
    fallthrough: {variation: 0}
  dark-mode:
    on: false
    variations: [on, off]
    offVariation: 1
    fallthrough:
      variation: 0
flagValues:
  yes: no
  on: off
  123: one-two-three
  1.10: ten
  launch: 2024-01-01
"""
#: What each flag evaluates to, whichever way the file is read.
NATURAL_VALUES: dict[str, Any] = {
    "new-checkout": True,
    "dark-mode": "off",
    "yes": "no",
    "on": "off",
    "123": "one-two-three",
    "1.10": "ten",
    "launch": "2024-01-01",
}


@pytest.fixture
def natural_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "flags.yaml"
    path.write_text(NATURAL_YAML)
    return path


def test_yaml_flag_files_mean_what_they_say(natural_yaml: Path) -> None:
    flags, _ = load_flag_files(natural_yaml)
    assert set(flags) == set(NATURAL_VALUES)
    assert flags["new-checkout"]["on"] is True and "True" not in flags["new-checkout"]
    assert flags["dark-mode"]["on"] is False
    assert flags["dark-mode"]["variations"] == ["on", "off"]
    snapshot = snapshot_from_data(flags)  # type: ignore[arg-type]
    assert {k: snapshot.variation(k, USER, None) for k in flags} == NATURAL_VALUES


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # YAML 1.2's core schema: these six are the booleans, no others.
        ("[true, True, TRUE, false, False, FALSE]", [True] * 3 + [False] * 3),
        ("[yes, no, on, off, y, n, Yes, ON]", ["yes", "no", "on", "off", "y", "n", "Yes", "ON"]),
        ("[null, Null, NULL, ~, '', nil]", [None] * 4 + ["", "nil"]),
        ("[1, -2, +3, 0777, 0o17, 0x1F, 1_000, '1', 1:30]", [1, -2, 3, 777, 15, 31, "1_000", "1", "1:30"]),
        ("[1.5, .5, 1e3, -2.5E-1, 1.]", [1.5, 0.5, 1000.0, -0.25, 1.0]),
        ("[2024-01-01, 2024-01-01T10:00:00Z]", ["2024-01-01", "2024-01-01T10:00:00Z"]),
        ("{<<: {a: 1, b: 2}, b: 3}", {"a": 1, "b": 3}),
        ("{base: &b {a: 1, b: 2}, merged: {<<: *b, b: 3}}", {"base": {"a": 1, "b": 2}, "merged": {"a": 1, "b": 3}}),
        ("{a: &x [1, {b: 2}], b: *x, c: {<<: [{d: 4}, {e: 5}]}}", {"a": [1, {"b": 2}], "b": [1, {"b": 2}], "c": {"d": 4, "e": 5}}),
        ("{1: a, 1.0: b, true: c, null: d, ~: e, 0x1F: f}", {"1": "a", "1.0": "b", "true": "c", "null": "d", "~": "e", "0x1F": "f"}),
    ],
)  # fmt: skip
def test_yaml_is_read_as_the_core_schema_with_text_keys(
    tmp_path: Path, text: str, value: Any
) -> None:
    """Values as YAML 1.2 reads them; every key is the text written (JSON keys are strings)."""
    path = tmp_path / "flags.yml"
    path.write_text(f"flagValues:\n  v: {text}\n")
    assert load_flag_files(path)[0]["v"]["variations"] == [value]


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("flags:\n  a: [\n", "3:1", "expected the node content"),
        ("flags:\n  f:\n  - 1\n g: 2\n", "4:2", "at line 1"),
        ("flagValues:\n  a: 1\n  b: 2\n  a: 3\n", "4:3", "the key 'a' appears twice in one mapping (first at line 2)"),
        ("flagValues:\n  ? [a, b]\n  : 1\n", "2:5", "a key must be plain text"),
        ("flagValues:\n  a: .inf\n", "2:6", "JSON has no infinity or NaN"),
        ("flagValues:\n  a: 1e999\n", "2:6", "too large"),
        ("flagValues:\n  a: !!timestamp 2024-01-01\n", "2:6", "quote it"),
        ("flagValues:\n  a: !!binary aGk=\n", "2:6", "base64"),
        ("flagValues:\n  a: !!set {x}\n", "2:6", "write a list"),
        ("flagValues:\n  a: !!bool yes\n", "2:6", "'yes' is not a boolean: write true or false"),
        ("flagValues:\n  a: !!int x\n", "2:6", "'x' is not an integer"),
        ("flagValues:\n  a: !!float x\n", "2:6", "'x' is not a number"),
        ("flagValues:\n  a: !!int " + "9" * 5000 + "\n", "2:6", "digits"),
        ("flagValues:\n  a: !custom 1\n", "2:6", "'!custom'"),
        ("flagValues:\n  a: 1\n---\nflags: {}\n", "3:1", "a single document"),
        ("flagValues:\n  a: \x01\n", "2", "character #x0001 is not allowed"),
        ("flagValues:\n  a: [1]\n  b: *x\n", "3:6", "found undefined alias 'x'"),
        ("flagValues:\n  a: &x 1\n  b: &x 2\n", "3:6", "found duplicate anchor 'x'"),
        # An alias inside what it names would expand forever (JSON has no cycles).
        ("flagValues:\n  a: &x [1, *x]\n", "2:13", "the alias *x is inside the node it names"),
        ("flagValues:\n  a: &x {b: {<<: *x}}\n", "2:18", "the alias *x is inside the node it names"),
    ],
)  # fmt: skip
def test_yaml_errors_name_the_file_and_the_line(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(text)
    with pytest.raises(FlagFileError) as info:
        load_flag_files(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{where}: invalid YAML: "), message
    assert problem in message
    assert "<unicode string>" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('{"flags": {\n  "f": 1,,\n}}', ":2:10: invalid JSON: ", "Expecting"),
        ('{"flagValues": {"a": 1, "a": 2}}', ": invalid JSON: ", "the key 'a' appears twice"),
        ('{"flagValues": {"a": NaN}}', ": invalid JSON: ", "NaN is not valid JSON"),
        ("\ufeff[", ":1:2: invalid JSON: ", "Expecting value"),
    ],
)  # fmt: skip
def test_json_errors_name_the_file_and_the_line_where_there_is_one(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = tmp_path / "flags.json"
    path.write_text(text)
    with pytest.raises(FlagFileError) as info:
        load_flag_files(path)
    assert str(info.value).startswith(f"{path}{where}"), str(info.value)
    assert problem in str(info.value)


def test_validate_reads_yaml_as_the_others_do(
    natural_yaml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    assert main(["validate", str(natural_yaml)]) == 0
    assert f"{natural_yaml}: 7 flags, 0 segments: valid" in capsys.readouterr().out
    # ``on: yes`` is the string "yes" (YAML 1.2): a malformed flag, said so,
    # never a flag that is silently off.
    yes = tmp_path / "yes.yaml"
    yes.write_text("flags:\n  f:\n    on: yes\n    variations: [a]\n")
    assert main(["validate", str(yes)]) == 1
    assert (
        f'{yes}:3:5: flags/f/on: "yes" is text, where true or false is expected'
        in capsys.readouterr().err
    )


def test_eval_file_reads_yaml_as_written(
    natural_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    for key, value in NATURAL_VALUES.items():
        assert main(["eval", key, "--context", "u1", "--file", str(natural_yaml)]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["value"], out["status"]) == (value, "READY"), key


@pytest.mark.asyncio
async def test_file_data_system_reads_yaml_as_written(natural_yaml: Path) -> None:
    async with Client(Config(data_system=DataSystem.file(natural_yaml))) as client:
        assert client.status is ProviderStatus.READY
        values = {k: await client.variation(k, USER, None) for k in NATURAL_VALUES}
        assert values == NATURAL_VALUES


def test_serve_serves_yaml_as_written(natural_yaml: Path) -> None:
    import httpx

    with serve(natural_yaml) as served:
        flags = httpx.get(f"{served.url}/sdk/latest-all", timeout=30).json()["flags"]
    assert set(flags) == set(NATURAL_VALUES)
    assert flags["new-checkout"]["on"] is True
    assert flags["dark-mode"]["on"] is False
    assert flags["yes"]["variations"] == ["no"]


def test_a_broken_yaml_file_is_named_with_its_line_by_every_entry_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    path = tmp_path / "flags.yaml"
    path.write_text("flags:\n  f:\n    on: true\n    on: false\n")
    said = f"{path}:4:5: invalid YAML: the key 'on' appears twice"
    assert main(["validate", str(path)]) == 1
    assert said in capsys.readouterr().err
    assert main(["serve", str(path), "--port", "0"]) == 2
    assert said in capsys.readouterr().err

    async def status_message() -> str:
        async with Client(Config(data_system=DataSystem.file(path))) as client:
            assert client.status is ProviderStatus.FATAL
            status = client.data_source_status
            assert status is not None and status.error is not None
            return status.error.message

    assert said in anyio.run(status_message)
    assert main(["eval", "f", "--context", "u1", "--file", str(path)]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "FATAL"


#: 602 bytes that PyYAML expands to 10**10 values: each level is ten aliases
#: of the one above.
ALIAS_BOMB = "flagValues:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 10)
)
#: The same with ``<<`` merges: merging builds 10**10 keys before anything
#: else walks the document.
MERGE_BOMB = "flagValues:\n  a0: &a0 {k0: x, k1: x, k2: x, k3: x, k4: x}\n" + "".join(
    f"  a{n}: &a{n} {{<<: [{', '.join([f'*a{n - 1}'] * 10)}]}}\n" for n in range(1, 10)
)
#: What the bound says, after the place of the alias that crosses it.
PAST_THE_BOUND = (
    "invalid YAML: aliases expand this document past 1,000,000 nodes (an alias bomb?)"
)


def test_an_alias_bomb_is_refused_by_every_entry_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``validate`` refuses what the others would expand: one loader, bounded aliases."""
    from aioflags.__main__ import main

    path = tmp_path / "flags.yaml"
    path.write_text(ALIAS_BOMB)
    # a5 (line 7) is where the count passes 1,000,000: at its eighth *a4, as
    # each costs the 111,111 nodes a4 expands to.
    said = f"{path}:7:47: {PAST_THE_BOUND}"
    assert main(["validate", str(path)]) == 1
    assert said in capsys.readouterr().err
    contexts = write(tmp_path / "contexts.jsonl", {"key": "u1"})
    assert main(["diff", str(path), str(path), "--contexts", str(contexts)]) == 2
    assert said in capsys.readouterr().err
    assert main(["eval", "a9", "--context", "u1", "--file", str(path)]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "FATAL"
    assert main(["serve", str(path), "--port", "0"]) == 2
    assert said in capsys.readouterr().err

    async def status_message() -> str:
        async with Client(Config(data_system=DataSystem.file(path))) as client:
            status = client.data_source_status
            assert status is not None and status.error is not None
            return status.error.message

    assert said in anyio.run(status_message)


@pytest.mark.asyncio
async def test_a_reload_into_an_alias_bomb_keeps_the_last_good_data(
    tmp_path: Path,
) -> None:
    """What a reloading ``serve`` or ``DataSystem.file`` does: report it, serve on."""
    path = tmp_path / "flags.yaml"
    path.write_text("flagValues:\n  a0: &a0 [x]\n  a1: *a0\n")
    clock = FakeClock()
    async with Client(
        Config(data_system=DataSystem.file(path, reload=True, interval=1)), clock=clock
    ) as client:
        assert await client.variation("a1", USER, None) == ["x"]
        path.write_text(ALIAS_BOMB)
        os.utime(path, ns=(1, 1))  # a new stamp even on coarse file-system clocks
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        await clock.wait_for_sleeper(within=SETTLE)  # the settle check
        await clock.advance(SETTLE)
        with anyio.fail_after(30):
            await client._bus.wait_status(lambda s: s is not ProviderStatus.READY)
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert status.error.kind is ErrorKind.INVALID_DATA
        assert f"{path}:7:47: {PAST_THE_BOUND}" in status.error.message
        assert await client.variation("a1", USER, None) == ["x"]  # last good data


@pytest.mark.parametrize(
    ("bomb", "where"), [(ALIAS_BOMB, "7:47"), (MERGE_BOMB, "7:52")]
)
def test_an_alias_bomb_is_refused_before_anything_expands_it(
    tmp_path: Path, bomb: str, where: str
) -> None:
    """Counted as composed, each anchor once: a few hundred KB, never the expansion."""
    import tracemalloc

    path = tmp_path / "flags.yaml"
    path.write_text(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(FlagFileError) as info:
            load_flag_files(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value).startswith(f"{path}:{where}: {PAST_THE_BOUND}: ")
    assert "50 times the" in str(info.value)
    assert peak < 2_000_000, peak


#: A flag file the way people share rules: ``<<`` merges of a base flag, and
#: one rule list named by every flag.
SHARED_YAML = """\
flags:
  base: &base
    on: true
    variations: [beta, stable]
    offVariation: 1
    fallthrough: {variation: 1}
    rules: &rules
    - id: beta-testers
      variation: 0
      clauses:
      - {attribute: key, op: in, values: [u1, u2]}
  checkout:
    <<: *base
    key: checkout
  search:
    <<: *base
    on: false
  dark-mode:
    <<: *base
    variations: [dark, light]
    rules: *rules
"""


def test_merges_and_aliases_load_as_their_expansion(tmp_path: Path) -> None:
    """``<<: *base`` merges and an alias mean the value written out."""
    path = tmp_path / "flags.yaml"
    path.write_text(SHARED_YAML)
    flags, _ = load_flag_files(path)
    rules = [
        {
            "id": "beta-testers",
            "variation": 0,
            "clauses": [{"attribute": "key", "op": "in", "values": ["u1", "u2"]}],
        }
    ]
    base = {
        "on": True,
        "variations": ["beta", "stable"],
        "offVariation": 1,
        "fallthrough": {"variation": 1},
        "rules": rules,
    }
    written = {
        "base": base,
        "checkout": {**base, "key": "checkout"},
        "search": {**base, "on": False},
        "dark-mode": {**base, "variations": ["dark", "light"]},
    }
    out = tmp_path / "written.json"
    out.write_text(json.dumps({"flags": written}))
    assert flags == load_flag_files(out)[0]
    snapshot = snapshot_from_data(flags)  # type: ignore[arg-type]
    other = Context.create("u9")
    assert {k: snapshot.variation(k, USER, None) for k in flags} == {
        "base": "beta",
        "checkout": "beta",
        "search": "stable",
        "dark-mode": "dark",
    }
    assert snapshot.variation("dark-mode", other, None) == "light"


def test_a_safe_dump_of_shared_objects_loads_and_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A script's ``yaml.safe_dump`` writes an object met twice as an alias (&id001)."""
    import yaml

    from aioflags.__main__ import main

    rules = [
        {
            "id": "beta",
            "variation": 0,
            "clauses": [{"attribute": "key", "op": "in", "values": ["u1"]}],
        }
    ]
    variations = [True, False]
    flag = {"on": True, "offVariation": 1, "fallthrough": {"variation": 1}}
    data = {
        "flags": {
            f"f{n}": {**flag, "variations": variations, "rules": rules}
            for n in range(3)
        }
    }
    path = tmp_path / "flags.yaml"
    path.write_text(yaml.safe_dump(data))
    assert "&id001" in path.read_text() and "*id001" in path.read_text()
    flags, _ = load_flag_files(path)
    assert flags == {
        key: {**value, "key": key, "version": 1}
        for key, value in json.loads(json.dumps(data))["flags"].items()
    }
    snapshot = snapshot_from_data(flags)  # type: ignore[arg-type]
    assert [snapshot.variation(k, USER, None) for k in flags] == [True] * 3
    assert main(["validate", str(path)]) == 0
    assert f"{path}: 3 flags, 0 segments: valid" in capsys.readouterr().out
    assert main(["eval", "f2", "--context", "u1", "--file", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["value"] is True


def expanded_nodes(value: Any) -> int:
    """Nodes in a value as the expansion visits them (a mapping's keys count)."""
    if isinstance(value, dict):
        return 1 + sum(1 + expanded_nodes(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(expanded_nodes(v) for v in value)
    return 1


def expanded_depth(value: Any) -> int:
    """Levels in a value as the expansion nests them (a scalar is one)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        value, level = pending.pop()
        deepest = max(deepest, level)
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            pending.extend((item, level + 1) for item in value)
    return deepest


def shared_list(items: int, padding: int, aliases: int) -> str:
    """One anchored list of ``items``, ``padding`` scalars, and ``aliases`` of the list."""
    return (
        "flagValues:\n  v:\n"
        f"  - &s [{', '.join(['x'] * items)}]\n"
        + "  - y\n" * padding
        + "  - *s\n" * aliases
    )


@pytest.mark.parametrize(("padding", "refused"), [(995, False), (996, True)])
def test_a_document_may_expand_to_a_million_nodes_and_no_more(
    tmp_path: Path, padding: int, refused: bool
) -> None:
    """The floor: 2,000 nodes written that expand to 1,000,000 load; one more is refused."""
    path = tmp_path / "flags.yaml"
    text = shared_list(999, padding, 998)
    path.write_text(text)
    # Written: 5 (two mappings, two keys, the list), the 1,000 of &s and the
    # padding; each alias costs the 1,000 nodes of &s.
    assert 1_005 + padding + 998 * 1_000 == 1_000_000 + refused
    if not refused:
        flags, _ = load_flag_files(path)
        assert len(flags["v"]["variations"][0]) == 1 + padding + 998
        return
    with pytest.raises(FlagFileError) as info:
        load_flag_files(path)
    line = text.count("\n")  # the last alias: the one past the bound
    assert str(info.value) == (
        f"{path}:{line}:5: {PAST_THE_BOUND}: a flag file may expand to 50 times "
        "the 2,001 nodes it writes, or to 1,000,000"
    )


@pytest.mark.parametrize("aliases", [49, 50])
def test_a_large_document_may_expand_to_fifty_times_its_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aliases: int
) -> None:
    """Past the floor, the bound is 50 times the nodes written (the floor made small here)."""
    import yaml

    from aioflags._datasystem._sources import _yaml

    monkeypatch.setattr(_yaml, "EXPANSION_FLOOR", 1_000)
    path = tmp_path / "flags.yaml"
    text = shared_list(99, 0, aliases)
    path.write_text(text)
    # 105 nodes written (past the floor's 1,000 / 50), each alias 100 more.
    expanded = expanded_nodes(yaml.safe_load(text))
    assert expanded == 105 + 100 * aliases
    if expanded <= 50 * 105:
        assert load_flag_files(path)[0]["v"]["variations"][0][-1] == ["x"] * 99
        return
    with pytest.raises(FlagFileError) as info:
        load_flag_files(path)
    assert str(info.value) == (
        f"{path}:{text.count(chr(10))}:5: invalid YAML: aliases expand this "
        "document past 5,250 nodes (an alias bomb?): a flag file may expand "
        "to 50 times the 105 nodes it writes, or to 1,000"
    )


def alias_chain(links: int) -> str:
    """Each anchor a list of the one before: the last nests ``links + 2`` levels."""
    return "flagValues:\n  a0: &a0 [x]\n" + "".join(
        f"  a{n}: &a{n} [*a{n - 1}]\n" for n in range(1, links + 1)
    )


@pytest.mark.slow  # 0.3 s: PyYAML reads 500 lines, twice
@pytest.mark.parametrize(("links", "refused"), [(496, False), (497, True)])
def test_aliases_may_nest_a_document_500_levels_deep_and_no_deeper(
    tmp_path: Path, links: int, refused: bool
) -> None:
    """Written YAML stops near 300 levels; a chain of aliases stops at 500, at the alias."""
    import yaml

    path = tmp_path / "flags.yaml"
    text = alias_chain(links)
    path.write_text(text)
    assert expanded_depth(yaml.safe_load(text)) == 500 + refused
    if not refused:
        flags, _ = load_flag_files(path)
        assert expanded_depth(flags[f"a{links}"]["variations"]) == links + 3
        return
    with pytest.raises(FlagFileError) as info:
        load_flag_files(path)
    column = text.splitlines()[-1].index("*") + 1  # the last alias
    assert str(info.value) == (
        f"{path}:{links + 2}:{column}: invalid YAML: aliases nest this document "
        f"deeper than 500 levels (*a{links - 1}, at level 4, names {links + 1} levels)"
    )


#: Pieces of YAML (and JSON) that make the loader's corners: structure,
#: YAML 1.1 booleans, number forms, tags, anchors, merges, documents.
PIECES = (
    *("flags:", "flagValues:", "segments:", "\n", "  ", "- ", ": ", ", ", "? "),
    *("on", "off", "yes", "No", "true", "123", "1.10", "0o7", "0x1F", "1e999"),
    *("~", "null", ".inf", ".NaN", "2024-01-01", "1:30", "<<", "&a ", "*a"),
    *("!!set ", "!!binary ", "!!int ", "!!bool ", "!x ", "!!str ", "!!omap "),
    *("{", "}", "[", "]", "'", '"', "#", "|", ">", "---\n", "\t", "\x00", "é"),
)  # fmt: skip


@settings(max_examples=400)
@given(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.sampled_from([".yaml", ".json"]),
)
def test_any_flag_file_loads_as_json_or_fails_naming_the_file(
    text: str, suffix: str
) -> None:
    """Never an internal exception: JSON with string keys, or a FlagFileError naming the file."""
    refused = ""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"flags{suffix}"
        path.write_text(text)
        try:
            flags, segments = load_flag_files(path)
        except FlagFileError as exc:
            refused = str(exc)
    if refused:
        assert refused.startswith(f"{path}:") and "\n" not in refused, refused
        return
    # What the file source and `serve` do next: version by canonical JSON.
    versions = ContentVersions()
    versions.stamp("flag", flags)
    versions.stamp("segment", segments)
    json.dumps([flags, segments], sort_keys=True, allow_nan=False)
