"""Reloads never serve a partial file (issue 62): ``DataSystem.file`` and ``serve``'s reloader.

A save in chunks (quick ones, and slow ones pausing between pieces), an
empty file, a save that drops most flags, and versions that move only for
flags whose content changed. The fake clock drives the reload checks, their
settle interval and a held save's quiet; the writer writes between them.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import yaml

from aioflags import Client, Config, Context, DataSystem, ProviderStatus
from aioflags._cli._serving import watch
from aioflags._datasystem._sources._watch import (
    QUIET,
    SETTLE,
    Failed,
    FlagFileWatcher,
    Held,
    Loaded,
)
from aioflags.testing import FakeClock, FlagServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

USER = Context.create("u1")
KEYS = [f"k{i}" for i in range(10)]
BEFORE: dict[str, Any] = {"flagValues": {k: f"v-{k}" for k in KEYS}}
#: One flag changed: the other nine must keep their versions.
AFTER: dict[str, Any] = {"flagValues": {**BEFORE["flagValues"], "k0": "new"}}


def dump(data: dict[str, Any]) -> bytes:
    text: str = yaml.safe_dump(data)
    return text.encode()


class Evaluator:
    """A client evaluating every flag in a loop: one round per :meth:`tick`.

    The test ticks at each point where the reloader is asleep, so the rounds
    see every state of the data it produced (it applies at most one load
    between two sleeps). Ticks, not a free-running loop: a loop that never
    waits starves the reloader's file-reading threads of the GIL.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.missing: list[str] = []
        self.rounds = 0
        self.ticks = 0
        self._send, self._receive = anyio.create_memory_object_stream[None](1000)

    def tick(self) -> None:
        self.ticks += 1
        self._send.send_nowait(None)

    async def run(self) -> None:
        with self._receive:
            await self._rounds()

    async def _rounds(self) -> None:
        async for _ in self._receive:
            for key in KEYS:
                detail = await self.client.variation_detail(key, USER, None)
                if detail.reason.get("errorKind") == "FLAG_NOT_FOUND":
                    self.missing.append(key)
            self.rounds += 1


@asynccontextmanager
async def evaluating(client: Client) -> AsyncIterator[Evaluator]:
    """An :class:`Evaluator` running meanwhile; it has done every round on exit."""
    evaluator = Evaluator(client)
    async with anyio.create_task_group() as tg:
        tg.start_soon(evaluator.run)
        evaluator.tick()
        yield evaluator
        evaluator._send.close()
    assert evaluator.rounds == evaluator.ticks > 5


async def save_in_chunks(
    path: Path, data: bytes, clock: FakeClock, ev: Evaluator
) -> None:
    """Truncate, then write ``data`` in four flushes, each seen by a reload check.

    The file is truncated just before a check, and each piece is written
    while the reloader waits out its settle interval: every read it makes
    until the last piece is of a half-written file.
    """
    await clock.wait_for_sleeper(within=1)  # the reloader is between checks
    with path.open("wb") as file:  # truncates, as yaml.safe_dump(d, open(p, "w"))
        file.flush()
        await clock.advance(1)  # the check: it sees the empty file
        step = len(data) // 4 + 1
        for start in range(0, len(data), step):
            # It is settling (a reloader that applied a part sleeps till the next check).
            await clock.wait_for_sleeper(within=1)
            ev.tick()
            file.write(data[start : start + step])
            file.flush()
            ev.tick()
            await clock.advance(SETTLE)  # it sees the file changed again
    await elapse(clock, QUIET + 1.5, ev)  # settled, then quiet: applied


async def save_slowly(
    path: Path, data: bytes, clock: FakeClock, ev: Evaluator, pause: float
) -> None:
    """Truncate, then write ``data`` in four pieces, ``pause`` seconds apart.

    The reloader checks as often as it does: every piece but the last has
    time to settle, so it reads each half-written file that a slow writer
    leaves behind.
    """
    await clock.wait_for_sleeper(within=1)
    with path.open("wb") as file:
        file.flush()
        await elapse(clock, pause, ev)
        step = len(data) // 4 + 1
        for start in range(0, len(data), step):
            file.write(data[start : start + step])
            file.flush()
            await elapse(clock, pause, ev)
    await elapse(clock, QUIET + 1.5, ev)  # quiet: applied


async def elapse(clock: FakeClock, seconds: float, ev: Evaluator | None) -> None:
    """Let ``seconds`` of fake time pass, from one sleep of the reloader to the next.

    ``ev`` evaluates once in each of them: it sees every state of the data.
    """
    end = clock.now() + seconds
    while (left := end - clock.now()) > 1e-9:
        await clock.wait_for_sleeper(within=1)  # the reloader is asleep
        deadline = clock.next_deadline
        assert deadline is not None
        if ev is not None:
            ev.tick()
        await clock.advance(min(left, deadline - clock.now()))
    await clock.wait_for_sleeper(within=1)
    if ev is not None:
        ev.tick()


async def check_once(clock: FakeClock) -> None:
    """One reload check (the file changed or a load is held), settle included."""
    await clock.wait_for_sleeper(within=1)
    await clock.advance(1)
    await clock.wait_for_sleeper(within=SETTLE)
    await clock.advance(SETTLE)


async def versions(client: Client) -> dict[str, int]:
    state = (await client.all_flags_state(USER)).to_dict()["$flagsState"]
    assert isinstance(state, dict)
    found: dict[str, int] = {}
    for key, meta in state.items():
        assert isinstance(meta, dict) and isinstance(meta["version"], int)
        found[key] = meta["version"]
    return found


#: How the save is written: quickly in pieces (each seen mid-settle), or by
#: a slow writer pausing between pieces (each long enough to settle).
WRITERS = [
    pytest.param(None, id="quick"),
    *(pytest.param(p, id=f"pause-{p:g}s") for p in (SETTLE * 3, 0.6, QUIET * 0.75)),
]


async def save(
    path: Path, data: bytes, clock: FakeClock, ev: Evaluator, pause: float | None
) -> None:
    """Save ``data`` in pieces, as a ``WRITERS`` writer does."""
    if pause is None:
        await save_in_chunks(path, data, clock, ev)
    else:
        await save_slowly(path, data, clock, ev, pause)


@pytest.mark.asyncio
@pytest.mark.parametrize("pause", WRITERS)
async def test_file_source_never_serves_a_partial_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pause: float | None
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_bytes(dump(BEFORE))
    clock = FakeClock()
    send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
    config = Config(data_system=DataSystem.file(path, reload=True, interval=1))
    async with Client(config, clock=clock) as client, send, receive:
        client.add_flag_change_handler(send.send_nowait)
        first = await versions(client)

        # A save in pieces of a file that changes one flag.
        async with evaluating(client) as evaluator:
            await save(path, dump(AFTER), clock, evaluator, pause)
            with anyio.fail_after(30):
                assert await receive.receive() == {"k0"}  # one batch, one flag
        assert evaluator.missing == []
        after = await versions(client)
        assert after["k0"] > first["k0"]
        assert {k: after[k] for k in KEYS[1:]} == {k: first[k] for k in KEYS[1:]}
        assert await client.variation("k0", USER, None) == "new"

        # The same bytes saved again: nothing changes.
        path.write_bytes(dump(AFTER))
        await elapse(clock, QUIET + 1.5, None)
        assert await versions(client) == after
        assert receive.statistics().current_buffer_used == 0

        # An empty file is an error: the last good data stays.
        path.write_bytes(b"# nothing yet\n")
        await check_once(clock)
        with anyio.fail_after(30):
            await client._bus.wait_status(lambda s: s is not ProviderStatus.READY)
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert f"{path}: the file is empty" in status.error.message
        assert await client.variation("k5", USER, None) == "v-k5"

        # A save that drops 8 of 10 flags is held (and logged once), then
        # applied when it has stayed as it is for QUIET seconds.
        kept = {"flagValues": {k: AFTER["flagValues"][k] for k in KEYS[:2]}}
        path.write_bytes(dump(kept))
        caplog.clear()  # (a slow writer's pieces dropped flags too)
        with caplog.at_level(logging.WARNING, logger="aioflags"):
            await check_once(clock)
            await elapse(clock, QUIET - SETTLE - 0.5, None)  # still held
            assert await client.variation("k5", USER, None) == "v-k5"
            await elapse(clock, 1, None)
        drops = [r for r in caplog.records if "drops 8 of 10 flags" in r.getMessage()]
        assert len(drops) == 1
        with anyio.fail_after(30):
            assert await receive.receive() == set(KEYS[2:])
        assert (await client.variation_detail("k5", USER, None)).reason == {
            "kind": "ERROR",
            "errorKind": "FLAG_NOT_FOUND",
        }
        assert (await versions(client))["k1"] == first["k1"]  # still unchanged


def trouble_of(server: FlagServer) -> dict[str, Any] | None:
    """The console's trouble alert (a call: the checker narrows no attribute)."""
    return server._console.trouble


@asynccontextmanager
async def serving(
    path: Path, clock: FakeClock
) -> AsyncIterator[tuple[FlagServer, Client]]:
    """``serve``'s server and reloader on 127.0.0.1, and a client streaming from it."""
    watcher = FlagFileWatcher((path,), clock)
    first = watcher.load()
    async with (
        FlagServer(first.flags, first.segments) as server,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(lambda: watch(path, server, watcher, interval=1))
        async with Client(server.config()) as client:
            yield server, client
        tg.cancel_scope.cancel()


@pytest.mark.asyncio
@pytest.mark.parametrize("pause", WRITERS)
async def test_serve_never_serves_a_partial_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pause: float | None
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_bytes(dump(BEFORE))
    clock = FakeClock()
    send, receive = anyio.create_memory_object_stream[frozenset[str]](10)
    async with serving(path, clock) as (server, client), send, receive:
        client.add_flag_change_handler(send.send_nowait)
        first = {k: f["version"] for k, f in server.flags.items()}
        async with evaluating(client) as evaluator:
            await save(path, dump(AFTER), clock, evaluator, pause)
            with anyio.fail_after(30):
                assert await receive.receive() == {"k0"}  # one batch, one flag
        assert evaluator.missing == []
        assert await client.variation("k0", USER, None) == "new"
        after = {k: f["version"] for k, f in server.flags.items()}
        assert after["k0"] > first["k0"]
        assert {k: after[k] for k in KEYS[1:]} == {k: first[k] for k in KEYS[1:]}
        assert trouble_of(server) is None  # a small drop waits quietly
        # The same bytes saved again: not "reloaded".
        path.write_bytes(dump(AFTER))
        await elapse(clock, QUIET + 1.5, None)
        out = capsys.readouterr().out
        assert out.count("reloaded") == 1 and "10 flags" in out  # one reload

        # An empty file: the console's trouble alert, the last good data served.
        path.write_bytes(b"")
        await check_once(clock)
        await clock.wait_for_sleeper(within=1)
        trouble = trouble_of(server)
        assert trouble is not None and "the file is empty" in trouble["message"]
        assert await client.variation("k5", USER, None) == "v-k5"

        # A mass drop: held, shown on the console, then applied.
        kept = {"flagValues": {k: AFTER["flagValues"][k] for k in KEYS[:2]}}
        path.write_bytes(dump(kept))
        await check_once(clock)
        await clock.wait_for_sleeper(within=1)
        trouble = trouble_of(server)
        assert trouble is not None and "drops 8 of 10 flags" in trouble["message"]
        assert set(server.flags) == set(KEYS)
        await elapse(clock, QUIET - SETTLE - 0.5, None)
        assert set(server.flags) == set(KEYS)  # still held
        await elapse(clock, 1, None)
        assert trouble_of(server) is None
        assert set(server.flags) == set(KEYS[:2])
        assert server.flags["k1"]["version"] == first["k1"]


@pytest.mark.asyncio
async def test_an_empty_file_at_start_is_an_error_too(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text("")
    clock = FakeClock()  # never advanced: nothing waits for a timeout
    config = Config(data_system=DataSystem.file(path), ready_timeout=3600)
    async with Client(config, clock=clock) as client:
        assert client.status is ProviderStatus.FATAL
        status = client.data_source_status
        assert status is not None and status.error is not None
        assert f"{path}: the file is empty" in status.error.message


def resave(path: Path, data: bytes, stamp: int) -> None:
    """Write ``data``, with a stamp of its own even on a coarse file-system clock."""
    path.write_bytes(data)
    os.utime(path, ns=(stamp, stamp))


@pytest.mark.asyncio
async def test_undoing_a_bad_edit_clears_the_trouble(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_bytes(dump(BEFORE))
    watcher = FlagFileWatcher((path,), FakeClock(), settle=0)
    watcher.load()
    resave(path, b"flagValues: [", 1)  # a typo
    assert isinstance(await watcher.check(), Failed)
    resave(path, dump(BEFORE), 2)  # undone: the same bytes as served
    again = await watcher.check()
    # Applied again (the same data: no version moves), so the error clears.
    assert isinstance(again, Loaded) and set(again.flags) == set(KEYS)
    os.utime(path, ns=(3, 3))  # touched, nothing wrong: nothing to do
    assert await watcher.check() is None


@pytest.mark.asyncio
async def test_a_save_in_progress_stays_one_through_a_syntax_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flags.yaml"
    path.write_bytes(dump(BEFORE))
    clock = FakeClock()
    watcher = FlagFileWatcher((path,), clock, settle=0)
    watcher.load()
    resave(path, b"", 1)  # truncated: a save begins
    assert isinstance(await watcher.check(), Failed)
    resave(path, dump(AFTER)[:12] + b'"', 2)  # a piece that does not parse
    assert isinstance(await watcher.check(), Failed)
    resave(path, dump(AFTER), 3)  # drops nothing, but the save may go on
    held = await watcher.check()
    assert isinstance(held, Held) and not held.warn  # a quiet wait
    await clock.advance(QUIET)
    loaded = await watcher.check()
    assert isinstance(loaded, Loaded) and set(loaded.flags) == set(KEYS)
