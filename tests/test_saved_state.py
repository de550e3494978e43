"""Saved state (issue 63): start from the last good flag data on disk.

A client with ``saved_state`` writes the data it gets from the flag service
to a file (atomically, at most once per interval, never on the evaluation
path); a client started while the service is down is READY from that file,
with the values it held, and the network's data replaces it when the
service is back. Files it cannot use are skipped with one line saying why.
"""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

import aioflags
from aioflags import Client, Context, DataSystem, ProviderEvent, ProviderStatus
from aioflags.sources import saved_state
from aioflags.testing import FakeClock, FlagServer
from tests.flags import STRING_FLAG

pytestmark = pytest.mark.asyncio

USER = Context.create("user-1")
POLL, STREAM = "/sdk/poll", "/sdk/stream"


def flag(served: int, key: str = "f") -> dict[str, Any]:
    return {**STRING_FLAG, "key": key, "fallthrough": {"variation": served}}


def down(**options: Any) -> aioflags.Config:
    """A client whose flag service does not answer (nothing listens on port 9)."""
    nowhere = "http://127.0.0.1:9"
    settings: dict[str, Any] = {"send_events": False, "ready_timeout": 5, **options}
    return aioflags.Config("sdk-key", base_uri=nowhere, stream_uri=nowhere, **settings)


def down_then_back(
    server: FlagServer, saved: Path | aioflags.sources.SavedState, **options: Any
) -> aioflags.Config:
    """A config for ``server``, which fails every data request until its faults clear.

    ``server``'s flag ``f`` is a later version than the one saved (as the
    flag service numbers a change); retries come quickly once it is back.
    """
    server.fail(POLL, status=503)
    server.fail(STREAM, status=503)
    return server.config(
        send_events=False,
        initial_retry_delay=0.05,
        max_retry_delay=0.1,
        data_system=DataSystem.default(saved_state=saved),
        **options,
    )


def leftovers(folder: Path) -> list[Path]:
    """Temporary files the saver left in ``folder``."""
    return list(folder.glob(".*.tmp"))


async def save(path: Path, flags: dict[str, Any], **options: Any) -> None:
    """Run a client against a service with ``flags`` until it saved them."""
    async with FlagServer(flags) as server:
        system = DataSystem.default(saved_state=saved_state(path, **options))
        async with Client(server.config(send_events=False, data_system=system)):
            pass  # closing writes what is not saved yet


async def test_a_client_starts_from_saved_state_while_the_service_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "aioflags")
    path = tmp_path / "flags.saved.json"
    await save(path, {"f": flag(1), "g": flag(0, "g")})
    head = path.read_text()[:80]
    assert head.startswith('{"format":"aioflags-saved-state","version":1,"saved_at":')
    assert leftovers(tmp_path) == []  # no temporary file left

    readies: list[str | None] = []
    client = Client(down(data_system=DataSystem.default(saved_state=path)))
    client.add_handler(
        ProviderEvent.READY, lambda details: readies.append(details.message)
    )
    async with client:
        assert client.status is ProviderStatus.READY
        assert await client.variation("f", USER, "?") == "off"
        assert await client.variation("g", USER, "?") == "on"
    assert readies and readies[0] is not None
    assert readies[0].startswith(f"flag data received from the saved state in {path}")
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"Starting from the saved state in {path}" in said
    assert "READY in" in said and f"from the saved state in {path}" in said


async def test_the_network_replaces_saved_state_and_is_saved_in_turn(
    tmp_path: Path,
) -> None:
    path = tmp_path / "saved.json"
    await save(path, {"f": flag(1)})
    saved_at = json.loads(path.read_text())["saved_at"]
    async with FlagServer({"f": {**flag(0), "version": 2}}) as server:
        # Down at first: the data system serves the file, then the service.
        config = down_then_back(server, saved_state(path, interval=0.05))
        async with Client(config) as client:
            assert await client.variation("f", USER, "?") == "off"  # from the file
            # Started from the file, the client wrote nothing back.
            assert json.loads(path.read_text())["saved_at"] == saved_at
            changed = anyio.Event()
            client.add_flag_change_handler(lambda keys: changed.set())
            server.clear_faults()
            with anyio.fail_after(30):
                await changed.wait()
            assert await client.variation("f", USER, "?") == "on"
        saved = json.loads(path.read_text())
        assert saved["saved_at"] > saved_at
        puts = [e["data"] for e in saved["events"] if e["event"] == "put-object"]
        assert [p["object"]["fallthrough"] for p in puts] == [{"variation": 0}]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "it is empty"),
        (b'{"format":"aioflags-saved-state","version":1,"saved_at":1', "truncated"),
        (b'{"flags": {}}', "not an aioflags saved state"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (
            b'{"format":"aioflags-saved-state","version":9,"saved_at":1,"events":[]}',
            "another version",
        ),
    ],
    ids=["empty", "truncated", "foreign", "binary", "other-version"],
)
async def test_a_file_it_cannot_use_is_skipped_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    path = tmp_path / "saved.json"
    if why == "truncated":
        await save(path, {"f": flag(1)})
        content = path.read_bytes()[:-40]
        content = content.replace(b'"saved_at":', b'"saved_at":', 1)
    path.write_bytes(content)
    async with FlagServer({"f": flag(0)}) as server:
        system = DataSystem.default(saved_state=path)
        async with Client(server.config(send_events=False, data_system=system)) as c:
            assert await c.variation("f", USER, "?") == "on"  # from the network
    said = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
        and r.getMessage().startswith("Not starting from the saved state")
    ]
    assert len(said) == 1 and why in said[0], said
    # A file this SDK wrote (of any version, whole or not) is replaced; any
    # other is left as it was, and that is said once, naming it.
    ours = why in ("truncated", "another version")
    assert (path.read_bytes() != content) is ours
    refused = [r.getMessage() for r in caplog.records if "Not saving" in r.getMessage()]
    assert len(refused) == (0 if ours else 1), refused
    if not ours:
        assert str(path) in refused[0] and "left as it is" in refused[0]


_HEAD = '{"format":"aioflags-saved-state","version":1,"saved_at":'


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("huge number", "not an aioflags saved state"),
        ("future", "from now"),
        ("pipe", "not a regular file"),
        ("too big", "more than max_payload_bytes"),
    ],
)
async def test_a_file_that_would_stop_or_stall_the_start_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, why: str
) -> None:
    # issue 77: a saved_at of more than 4,300 digits stopped the client (int's
    # limit), a pipe at the path kept it from ever applying the network's
    # data, a file was read whole whatever its size, and a saved_at in the
    # future never aged. Each is one line; the client is READY from the
    # network as usual.
    import os

    path = tmp_path / "saved.json"
    events = ',"events":[]}'
    if case == "huge number":
        path.write_text(_HEAD + "9" * 5000 + events)
    elif case == "future":
        path.write_text(_HEAD + str(10**17) + events)
    elif case == "pipe":
        os.mkfifo(path)
    else:
        path.write_text(_HEAD + "1" + ',"events":[' + " " * 20_000 + "]}")
    async with FlagServer({"f": flag(0)}) as server:
        system = DataSystem.default(saved_state=path)
        config = server.config(
            send_events=False, data_system=system, max_payload_bytes=10_000
        )
        with anyio.fail_after(30):
            async with Client(config) as c:
                assert c.status is ProviderStatus.READY
                assert await c.variation("f", USER, "?") == "on"
    said = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("Not starting from the saved state")
    ]
    assert len(said) == 1 and why in said[0], said


@pytest.mark.parametrize("what", ["flag file", "link", "folder"])
async def test_a_path_holding_what_it_did_not_write_is_never_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, what: str
) -> None:
    # issue 77: pointed at the README's own flags.json (or at the file
    # `aioflags serve` serves), saved state replaced it. Now nothing that
    # is not a saved state this SDK wrote is replaced, whatever the client
    # gets from the flag service: refused once, naming the file.
    flags = tmp_path / "flags.json"
    original = json.dumps({"flagValues": {"f": "mine"}}).encode()
    flags.write_bytes(original)
    path = {
        "flag file": flags,
        "link": tmp_path / "saved.json",
        "folder": tmp_path / "dir",
    }[what]
    if what == "link":
        path.symlink_to(flags)
    elif what == "folder":
        path.mkdir()
    async with FlagServer({"f": flag(0)}) as server:
        system = DataSystem.default(saved_state=saved_state(path, interval=0.01))
        async with Client(server.config(send_events=False, data_system=system)) as c:
            assert await c.variation("f", USER, "?") == "on"  # the network's
            changed = anyio.Event()
            c.add_flag_change_handler(lambda keys: changed.set())
            server.set_flag("f", {**flag(1), "version": 2})  # (more to save)
            with anyio.fail_after(30):
                await changed.wait()
            assert await c.variation("f", USER, "?") == "off"
    assert flags.read_bytes() == original
    assert path.is_symlink() if what == "link" else path.exists()
    if what == "folder":
        assert path.is_dir() and list(path.iterdir()) == []
    assert leftovers(tmp_path) == []
    refused = [r.getMessage() for r in caplog.records if "Not saving" in r.getMessage()]
    assert len(refused) == 1 and str(path) in refused[0], refused


async def test_the_folder_of_the_path_is_made(tmp_path: Path) -> None:
    # issue 77: a saved_state path in a folder not made yet was never written.
    path = tmp_path / "cache" / "myapp" / "flags.saved.json"
    await save(path, {"f": flag(1)})
    assert json.loads(path.read_text())["format"] == "aioflags-saved-state"


@pytest.mark.parametrize("preset", ["file", "daemon"])
async def test_a_preset_that_fetches_nothing_refuses_saved_state_clearly(
    tmp_path: Path, preset: str
) -> None:
    # issue 77: DataSystem.file(saved_state=) and daemon(saved_state=) were
    # Python's "unexpected keyword argument".
    make: Any = getattr(DataSystem, preset)
    given: Any = tmp_path / "saved.json"
    first: Any = tmp_path / "flags.json" if preset == "file" else object()
    with pytest.raises(aioflags.ConfigurationError, match="takes no saved_state"):
        make(first, saved_state=given)


async def test_what_a_killed_writer_left_is_swept_at_the_first_save(
    tmp_path: Path,
) -> None:
    # issue 77: a writer killed mid-write left its temporary file forever.
    # The first save removes this SDK's own temporary files for the path
    # that are a minute old or more; a fresh one (another process writing
    # now) and anything else stay.
    import os

    from aioflags._core._clock import wall_ms

    path = tmp_path / "saved.json"
    stale = tmp_path / ".saved.json.abcd1234.tmp"
    fresh = tmp_path / ".saved.json.wxyz9876.tmp"
    other = tmp_path / ".saved.json.notours"
    others = tmp_path / ".other.json.abcd1234.tmp"
    for left in (stale, fresh, other, others):
        left.write_text("{")
    an_hour_ago = wall_ms() / 1000 - 3600
    for old in (stale, other, others):
        os.utime(old, (an_hour_ago, an_hour_ago))
    await save(path, {"f": flag(1)})
    assert not stale.exists()
    assert fresh.exists() and other.exists() and others.exists()
    assert json.loads(path.read_text())["format"] == "aioflags-saved-state"


async def test_a_file_older_than_max_age_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "saved.json"
    await save(path, {"f": flag(1)})
    text = path.read_text()
    saved_at = json.loads(text)["saved_at"]
    path.write_text(
        text.replace(f'"saved_at":{saved_at}', f'"saved_at":{saved_at - 7200_000}')
    )
    config = down(
        ready_timeout=1,  # (the service is down: it waits this long, in vain)
        data_system=DataSystem.default(saved_state=saved_state(path, max_age=3600)),
    )
    async with Client(config) as client:
        assert client.status is not ProviderStatus.READY
        assert await client.variation("f", USER, "?") == "?"
    assert any("longer than max_age (3600 s)" in r.getMessage() for r in caplog.records)


async def test_a_failed_write_is_a_warning_never_a_fault(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"  # (where a folder should be: no write)
    blocked.write_text("")
    path = blocked / "saved.json"
    async with FlagServer({"f": flag(0)}) as server:
        system = DataSystem.default(saved_state=path)
        async with Client(server.config(send_events=False, data_system=system)) as c:
            assert await c.variation("f", USER, "?") == "on"
            assert c.status is ProviderStatus.READY
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"Could not save the flag data to {path}" in m for m in said), said


async def test_writes_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflags._datasystem._sources import _saved

    written: list[str] = []
    write = _saved._write_atomically

    def counting(path: Path, text: str) -> None:
        write(path, text)
        written.append(text)

    monkeypatch.setattr(_saved, "_write_atomically", counting)
    path = tmp_path / "saved.json"
    clock = FakeClock()
    async with FlagServer({"f": flag(0)}) as server:
        system = DataSystem.streaming(saved_state=saved_state(path, interval=30))
        config = server.config(send_events=False, data_system=system)
        async with Client(config, clock=clock) as client:
            await server.wait_for_stream()
            with anyio.fail_after(30):
                while len(written) < 1:  # the first data, saved at once
                    await clock.wait_for_sleeper(within=30)
            for served in (1, 0, 1):
                server.set_flag("f", flag(served))
            with anyio.fail_after(30):
                while await client.variation("f", USER, "?") != "off":
                    await anyio.lowlevel.checkpoint()
            assert len(written) == 1  # the interval has not passed
            await clock.advance(30)
            with anyio.fail_after(30):
                while len(written) < 2:
                    await clock.wait_for_sleeper(within=30)
    events = json.loads(path.read_text())["events"]
    assert [e["data"]["object"]["fallthrough"] for e in events[1:-1]] == [
        {"variation": 1}
    ]


async def test_a_new_process_is_ready_from_disk_with_1000_flags(tmp_path: Path) -> None:
    path = tmp_path / "saved.json"
    flags = {f"flag-{i}": flag(i % 2, f"flag-{i}") for i in range(1000)}
    await save(path, flags)
    child = textwrap.dedent(
        f"""
        import asyncio, aioflags
        async def main():
            nowhere = "http://127.0.0.1:9"
            config = aioflags.Config(
                "sdk-key", base_uri=nowhere, stream_uri=nowhere, send_events=False,
                data_system=aioflags.DataSystem.default(saved_state={str(path)!r}),
            )
            async with aioflags.Client(config) as client:
                user = aioflags.Context.create("u")
                values = [await client.variation(f"flag-{{i}}", user, None) for i in range(1000)]
                print(client.status.value, values.count("on"), values.count("off"))
        asyncio.run(main())
        """
    )
    with anyio.fail_after(60):
        result = await anyio.run_process([sys.executable, "-c", child], check=False)
    assert result.stdout.decode().split() == ["READY", "500", "500"], result.stderr


async def test_saved_state_refuses_what_it_cannot_use() -> None:
    with pytest.raises(aioflags.ConfigurationError, match="max_age"):
        saved_state("x.json", max_age=0)
    with pytest.raises(aioflags.ConfigurationError, match="interval"):
        saved_state("x.json", interval=-1)
    with pytest.raises(aioflags.ConfigurationError, match="file path"):
        saved_state("")
    with pytest.raises(aioflags.ConfigurationError, match="saved_state"):
        DataSystem(saved_state="x.json")  # type: ignore[arg-type]
    system = DataSystem.custom(synchronizers=[], saved_state="x.json")
    assert system.initializers == (system.saved_state,)


async def test_ready_from_disk_then_stale_while_the_service_is_down_then_ready(
    tmp_path: Path,
) -> None:
    path = tmp_path / "saved.json"
    await save(path, {"f": flag(1)})
    statuses: list[ProviderStatus] = []
    async with FlagServer({"f": {**flag(0), "version": 2}}) as server:
        client = Client(down_then_back(server, path, grace_period=60))
        for event in (ProviderEvent.READY, ProviderEvent.STALE):
            client.add_handler(event, lambda details: statuses.append(client.status))
        async with client:
            assert await client.variation("f", USER, "?") == "off"  # from disk
            with anyio.fail_after(30):
                await client._bus.wait_status(lambda s: s is ProviderStatus.STALE)
            assert await client.variation("f", USER, "?") == "off"  # still served
            server.clear_faults()
            with anyio.fail_after(30):
                await client._bus.wait_status(lambda s: s is ProviderStatus.READY)
            # (READY again once a source is valid: its data is applied by then)
            assert await client.variation("f", USER, "?") == "on"
    assert statuses[:3] == [
        ProviderStatus.READY,
        ProviderStatus.STALE,
        ProviderStatus.READY,
    ]


async def test_a_saved_state_read_that_hangs_is_given_up_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """G2: the saved state read beside the start was waited for without a limit.

    A read stuck in its worker thread (a file on a hung network mount) held
    the start for good, and the client's close too. It has
    ``initializing_timeout``, as every initializer has: then the client
    starts from the flag service, and nothing of the file is applied.
    """
    import threading

    from aioflags._datasystem._sources import _saved

    release = threading.Event()

    def hung(path: Path, max_age: float, max_bytes: int) -> None:
        # (a guard: on the code before, the close waited for this thread)
        release.wait(30)

    monkeypatch.setattr(_saved, "_load", hung)
    system = DataSystem.default(saved_state=tmp_path / "saved.json").with_timings(
        initializing_timeout=0.5
    )
    try:
        async with FlagServer({"f": flag(0)}) as server:
            config = server.config(send_events=False, data_system=system)
            with anyio.fail_after(20):
                async with Client(config) as client:
                    assert client.status is ProviderStatus.READY
                    assert await client.variation("f", USER, None) == "on"
    finally:
        release.set()
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        f"The saved state in {tmp_path / 'saved.json'} was not read within 0.5 s: "
        "starting the next data source (what the read gives when it ends is dropped)"
    ) in said
