"""A plane never holds a host's flags hostage (issue 85, plane.md "Liveness").

The leader here is often this test, by hand: it holds the plane's lock
and listens on its socket, and answers (or does not) as a stopped, a
silent or a broken leader would. The follower is a real client on a
:class:`FakeClock`, so its 1.5 s and 3 s limits and its 5 s retries pass
when the test says so. tests/test_plane_processes.py does the same with
real processes stopped by SIGSTOP.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import aioflags
import aioflags.sources
from aioflags import Client, Config, DataSystem, ProviderStatus
from aioflags._datasystem._plane import _wire as wire
from aioflags._datasystem._plane._lock import Lease, try_lead
from aioflags.testing import FakeClock, FlagServer
from tests.flags import STRING_FLAG
from tests.test_plane import OFF, STREAM, USER, _payload, config, until, value

pytestmark = pytest.mark.asyncio

ENVIRONMENT = wire.environment_of("sdk-key")
VALID = (
    b'{"event":"plane-status","data":{"heartbeat":true,"state":"valid","error":null}}\n'
)
GREETING = wire.hello(ENVIRONMENT) + VALID


@pytest.fixture
def plane(tmp_path: Path) -> str:
    return str(tmp_path / "flags.plane")


class Said(logging.Handler):
    """The records of ``aioflags.datasource``, and an event when one says ``words``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._waits: list[tuple[str, anyio.Event]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for words, event in self._waits:
            if words in record.getMessage():
                event.set()

    def lines(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]

    async def until(self, words: str) -> None:
        if any(words in r.getMessage() for r in self.records):
            return
        event = anyio.Event()
        self._waits.append((words, event))
        with anyio.fail_after(30):
            await event.wait()


@pytest.fixture
def said() -> Iterator[Said]:
    handler = Said()
    logger = logging.getLogger("aioflags.datasource")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def advance_until(clock: FakeClock, done: Callable[[], bool]) -> None:
    """Move ``clock`` on in half seconds until ``done()`` (each step a handshake)."""
    with anyio.fail_after(30):
        while not done():
            await clock.wait_for_sleepers()
            await clock.advance(0.5)


def plane_warnings(said: Said, plane: str) -> list[str]:
    """The WARNINGs naming the plane.

    (Not every WARNING: the fake clock may run on while a follower's socket
    I/O is real time, and a client not ready after so many fake seconds
    says so too.)
    """
    return [line for line in said.lines(logging.WARNING) if plane in line]


def role_of(client: Client) -> str | None:
    return client.plane_role


@asynccontextmanager
async def leading_by_hand(plane: str) -> AsyncIterator[anyio.abc.SocketListener]:
    """This test holds the plane's lock and listens on its socket."""
    lease = try_lead(plane + ".lock")
    assert lease is not None
    try:
        async with await anyio.create_unix_listener(plane) as listener:
            yield listener
    finally:
        lease.release()


@asynccontextmanager
async def holding_the_lock(plane: str) -> AsyncIterator[Lease]:
    """The lock held by a process that does not listen (a squatter, another host's leader)."""
    lease = try_lead(plane + ".lock")
    assert lease is not None
    try:
        yield lease
    finally:
        lease.release()


def follower_config(server: FlagServer, plane: str, **kwargs: Any) -> Config:
    return config(server, plane, ready_timeout=0, grace_period=600, **kwargs)


async def test_a_silent_leader_is_left_for_the_own_upstream_and_followed_again(
    plane: str, said: Said
) -> None:
    """Issue 85, frozen leader: a follower that hears nothing for 3 s runs solo, keeping its data, then follows again."""
    clock = FakeClock()
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane) as listener,
        Client(follower_config(server, plane), clock=clock) as follower,
    ):
        stale = anyio.Event()
        follower.add_handler(aioflags.ProviderEvent.STALE, lambda _: stale.set())
        first = await listener.accept()
        await first.receive()  # its hello
        await first.send(GREETING + b"".join(_payload("xfer-full", "off", 1)))
        await until(follower, "off")
        assert follower.status is ProviderStatus.READY
        # The leader stops (SIGSTOP, a debugger): its socket stays open, silent.
        await advance_until(clock, lambda: role_of(follower) == "solo")
        (warning,) = plane_warnings(said, plane)
        assert plane in warning and "sent nothing for 3 s" in warning
        await stale.wait()  # never VALID past the silence
        assert await value(follower) == "off"  # its data kept, never a default
        await server.wait_for_stream(STREAM)  # its own upstream
        await until(follower, "on")
        assert follower.status is ProviderStatus.READY
        # The leader answers again: the next try finds it, and follows it.
        probe = await accept_while(clock, listener)
        await probe.receive()
        await probe.send(GREETING)
        again = await accept_while(clock, listener)
        await again.receive()
        await again.send(GREETING + b"".join(_payload("xfer-full", "off", 2)))
        await until(follower, "off")
        assert follower.plane_role == "follower"
        with anyio.fail_after(30):  # its own upstream is closed
            await server.wait_for_streams_closed(STREAM)
        await first.aclose()
        await probe.aclose()
        await again.aclose()


async def accept_while(
    clock: FakeClock, listener: anyio.abc.SocketListener
) -> anyio.abc.SocketStream:
    """The next connection, the clock moved on meanwhile (a solo process tries every 5 s)."""
    accepted: list[anyio.abc.SocketStream] = []
    async with anyio.create_task_group() as group:

        async def accept() -> None:
            accepted.append(await listener.accept())
            group.cancel_scope.cancel()

        group.start_soon(accept)
        await advance_until(clock, lambda: False)
    return accepted[0]


async def test_a_starting_process_beside_a_leader_that_does_not_answer_is_ready(
    plane: str, said: Said
) -> None:
    """Issue 85, a worker starting beside a stopped leader: READY from its own upstream within 2 s, no defaults."""
    clock = FakeClock()
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane),  # (never accepts: a stopped process's backlog)
        Client(follower_config(server, plane), clock=clock) as late,
    ):
        await said.until("follows the leader of the flag plane")
        began = clock.now()
        await advance_until(clock, lambda: role_of(late) == "solo")
        assert clock.now() - began <= 2  # (1.5 s, and the half-second step)
        (warning,) = plane_warnings(said, plane)
        assert "did not answer within 1.5 s" in warning and plane in warning
        with anyio.fail_after(30):
            await late._bus.wait_status(lambda s: s is ProviderStatus.READY)
        assert await value(late) == "on"


@pytest.mark.parametrize("socket_file", ["none", "nobody listens"])
async def test_a_lock_held_by_a_process_with_no_socket_leaves_no_one_waiting(
    plane: str, said: Said, socket_file: str
) -> None:
    """Issue 85, squatted lock, and a plane path on a volume two hosts share (the lock held, a socket nobody listens on): solo, READY, never defaults."""
    clock = FakeClock()
    if socket_file == "nobody listens":
        import socket

        with socket.socket(socket.AF_UNIX) as dead:
            dead.bind(plane)  # (closed: the file stays, nobody listens)
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        holding_the_lock(plane),
        Client(follower_config(server, plane), clock=clock) as client,
    ):
        await advance_until(clock, lambda: role_of(client) == "solo")
        (warning,) = plane_warnings(said, plane)
        assert "another process holds its lock" in warning and plane in warning
        with anyio.fail_after(30):
            await client._bus.wait_status(lambda s: s is ProviderStatus.READY)
        assert await value(client) == "on"
        assert not said.lines(logging.ERROR)


async def test_a_solo_process_leads_once_the_lock_is_free(
    plane: str, said: Said
) -> None:
    """Issue 85: the lock freed (the stopped leader killed), a solo process takes the lead from its data."""
    clock = FakeClock()
    squatter = try_lead(plane + ".lock")
    assert squatter is not None
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        Client(follower_config(server, plane), clock=clock) as client,
    ):
        await advance_until(clock, lambda: role_of(client) == "solo")
        await until(client, "on")
        squatter.release()
        await advance_until(clock, lambda: role_of(client) == "leader")
        async with Client(config(server, plane)) as follower:
            assert follower.plane_role == "follower"
            server.set_flag("f", OFF)
            await until(follower, "off")
        assert not said.lines(logging.ERROR)


async def test_the_leader_sends_a_heartbeat_when_it_has_nothing_else_to_send(
    plane: str,
) -> None:
    """Issue 85, heartbeat: at least once a second, from the leader's own loop."""
    clock = FakeClock()
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        Client(config(server, plane), clock=clock) as leader,
        await anyio.connect_unix(plane) as follower,
    ):
        assert leader.plane_role == "leader"
        await follower.send(wire.hello(ENVIRONMENT))
        heard = b""
        with anyio.fail_after(30):
            while b'"heart-beat"' not in heard:
                await clock.wait_for_sleeper(within=1)
                await clock.advance(1)
                with anyio.move_on_after(0.05):  # (what this second brought)
                    heard += await follower.receive()
        assert clock.now() <= 2


async def test_a_leader_whose_data_system_crashed_lets_another_lead(
    plane: str, said: Said
) -> None:
    """Issue 85, a crashed leader: its lock is freed at once, a follower leads, nobody serves a default."""

    polling = aioflags.sources.polling_synchronizer()

    async def crashing(
        context: aioflags.sources.SourceContext,
    ) -> AsyncGenerator[aioflags.sources.Update, None]:
        # (its data first, then a bug)
        async with aclosing(polling(context)) as updates:
            async for update in updates:
                yield update
                raise RuntimeError("a bug in the data system")

    async with FlagServer({"f": STRING_FLAG}) as server:
        crashes = server.config(
            data_system=DataSystem.custom(synchronizers=[crashing], plane=plane),
            send_events=False,
            ready_timeout=5.0,
        )
        async with Client(crashes) as leader:
            assert await value(leader) == "on"
            await said.until("stops leading")
            # The lock is free: anyone may lead now.
            async with Client(config(server, plane)) as next_leader:
                assert next_leader.plane_role == "leader"
                await until(leader, "on")
                server.set_flag("f", OFF)
                await until(leader, "off")  # it follows the new leader
                assert leader.plane_role == "follower"


async def test_a_follower_that_reads_nothing_for_30_s_is_dropped(plane: str) -> None:
    """Issue 85, bounded followers: a queue not drained for 30 s is dropped; the others go on."""
    clock = FakeClock()
    big = {**STRING_FLAG, "variations": ["x" * 2_000_000, "off"]}
    async with (
        FlagServer({"f": big}) as server,
        Client(config(server, plane), clock=clock) as leader,
        Client(config(server, plane)) as follower,
        await anyio.connect_unix(plane) as stalled,
    ):
        assert leader.plane_role == "leader"
        await stalled.send(wire.hello(ENVIRONMENT))
        await stalled.receive(1)  # (its hello begins: then it reads no more)
        for _ in range(59):  # 29.5 s: still connected
            await clock.wait_for_sleeper(within=0.5)
            await clock.advance(0.5)
        server.set_flag("f", OFF)
        await until(follower, "off")
        await clock.advance(1)  # 30.5 s
        got = [b"?"]
        with (  # disconnected, short of the whole data set
            anyio.fail_after(30),
            contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError),
        ):
            while True:
                got.append(await stalled.receive())
        assert sum(map(len, got)) < 2_000_000
        assert follower.plane_role == "follower"


async def test_the_environment_id_reaches_the_followers_hooks(plane: str) -> None:
    """Issue 85, environment id: the X-LD-EnvID the leader learned reaches its followers' hooks."""
    from tests.test_hooks import Calls, Recording

    calls: Calls = []
    async with FlagServer({"f": STRING_FLAG}) as server:
        server.fail(STREAM, headers={"X-LD-EnvID": "env-plane"})
        async with (
            Client(config(server, plane)) as leader,
            Client(config(server, plane, hooks=[Recording("a", calls)])) as follower,
        ):
            assert leader.plane_role == "leader"
            assert follower.plane_role == "follower"
            await follower.variation("f", USER, "default")
    assert [c[2].environment_id for c in calls] == ["env-plane"] * 2


@pytest.mark.parametrize(
    "line",
    [
        b"\xff\xfe\xfd not UTF-8\n",
        b"aioflags-plane \xc2\xb2 env\n",  # (a digit to str.isdigit, not to int)
        b'{"not": "a hello"}\n',
        b"aioflags-plane 7 env\n",
    ],
)
async def test_bad_hellos_are_refused_quietly(
    plane: str, line: bytes, said: Said
) -> None:
    """Issue 85, noisy: a bad hello is one line without a traceback per cause per minute."""
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        Client(config(server, plane)) as leader,
    ):
        for _ in range(5):
            async with await anyio.connect_unix(plane) as stranger:
                await stranger.send(line)
                said_back = wire.read_hello(await stranger.receive())
                assert said_back is not None and said_back[2] is not None
        assert leader.plane_role == "leader"
        assert await value(leader) == "on"
    assert not [r for r in said.records if r.exc_info]
    refusals = [line for line in said.lines(logging.WARNING) if "refused" in line]
    assert len(refusals) == 1, refusals


@pytest.mark.parametrize(
    "sent", [b"{not json\n", b'{"event":"' + b"x" * 300_000 + b'"}\n']
)
async def test_a_follower_that_cannot_use_its_leader_backs_off(
    plane: str, said: Said, sent: bytes
) -> None:
    """Issue 85, noisy and a payload over the follower's limits: it runs solo and tries again after 1 s doubling to 30 s, never in a loop."""
    clock = FakeClock()
    connections = 0
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane) as listener,
        Client(
            follower_config(server, plane, max_payload_bytes=200_000), clock=clock
        ) as client,
        anyio.create_task_group() as group,
    ):

        async def broken(stream: anyio.abc.SocketStream) -> None:
            nonlocal connections
            connections += 1
            async with stream:
                await stream.receive()  # its hello
                with contextlib.suppress(anyio.BrokenResourceError):
                    await stream.send(GREETING + sent)
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    await stream.receive()

        group.start_soon(listener.serve, broken)
        await said.until("cannot follow the flag plane")  # (its first try)
        began = clock.now()
        await advance_until(clock, lambda: clock.now() >= began + 60)
        # (solo, or between a look that found the leader and its next try)
        assert client.plane_role in ("solo", "follower")
        assert await value(client) == "on"  # from its own upstream meanwhile
        group.cancel_scope.cancel()
    # Tries at 1, 2, 4, 8, 16 and 30 s: each a look and a follow.
    assert 4 <= connections <= 16, connections
    assert len(said.lines(logging.WARNING)) <= 8


async def test_a_relative_plane_path_is_refused(tmp_path: Path) -> None:
    """Issue 85, silent misconfigurations: a relative path would make one plane per working directory."""
    with pytest.raises(ValueError, match="give an absolute path"):
        DataSystem.default(plane="rel.plane")
    with pytest.raises(ValueError, match="give an absolute path"):
        DataSystem.streaming(plane=Path("run") / "flags.plane")


async def test_plane_given_where_it_does_not_go_says_where_it_goes() -> None:
    """Issue 85, silent misconfigurations: Config(plane=) and DataSystem.fdv1(plane=) say where plane= goes."""
    with pytest.raises(ValueError, match=r"data_system=DataSystem.default\(plane="):
        Config("sdk-key", plane="/run/flags.plane")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"DataSystem.custom\(synchronizers="):
        DataSystem.fdv1(plane="/run/flags.plane")  # type: ignore[arg-type]


async def test_a_broken_hello_from_the_leader_is_one_error_and_its_own_upstream(
    plane: str, said: Said
) -> None:
    """Issue 85, a broken hello: one ERROR naming the path, and READY from its own upstream (no defaults)."""
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane) as listener,
        anyio.create_task_group() as group,
    ):

        async def broken(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await stream.receive()
                await stream.send(b"\xff\xfe not a hello\n")

        group.start_soon(listener.serve, broken)
        async with Client(config(server, plane)) as client:
            assert client.plane_role is None
            assert await value(client) == "on"
        group.cancel_scope.cancel()
    (error,) = said.lines(logging.ERROR)
    assert plane in error and "no flag plane's leader" in error


async def test_a_hello_the_leader_never_finishes_leaves_no_one_waiting(
    plane: str, said: Said
) -> None:
    """Issue 85, a broken hello (cut short, never ended): solo after 1.5 s, READY from its own upstream."""
    clock = FakeClock()
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane) as listener,
        anyio.create_task_group() as group,
    ):
        cut = anyio.Event()

        async def cut_short(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await stream.receive()
                await stream.send(b"aioflags-plane 1 ")
                cut.set()
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    await stream.receive()

        group.start_soon(listener.serve, cut_short)
        async with Client(follower_config(server, plane), clock=clock) as client:
            # (the clock moves once the hello is cut short: before, the
            # follower's socket I/O is real time, and only other timers sleep)
            with anyio.fail_after(30):
                await cut.wait()
            await advance_until(clock, lambda: role_of(client) == "solo")
            with anyio.fail_after(30):
                await client._bus.wait_status(lambda s: s is ProviderStatus.READY)
            assert await value(client) == "on"
        group.cancel_scope.cancel()
    (warning,) = [line for line in said.lines(logging.WARNING) if plane in line]
    assert "did not answer within 1.5 s" in warning


async def test_a_leader_from_before_heartbeats_is_followed_through_its_silence(
    plane: str, said: Said
) -> None:
    """Issue 85, a rolling upgrade: a leader whose status does not say it beats (before issue 85) is not left for its silence."""
    clock = FakeClock()
    old_status = b'{"event":"plane-status","data":{"state":"valid","error":null}}\n'
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane) as listener,
        Client(follower_config(server, plane), clock=clock) as follower,
    ):
        old = await listener.accept()
        await old.receive()
        await old.send(wire.hello(ENVIRONMENT) + old_status)
        await old.send(b"".join(_payload("xfer-full", "off", 1)))
        await until(follower, "off")
        for _ in range(20):  # 10 s of an idle leader
            await clock.wait_for_sleepers()
            await clock.advance(0.5)
        assert follower.plane_role == "follower"
        assert follower.status is ProviderStatus.READY
        assert not server.requests_to(STREAM)
        await old.aclose()
    assert not said.lines(logging.WARNING)


def broken_waits(said: Said) -> list[float]:
    """The waits before each next try after data that could not be used, as the WARNINGs say them.

    (Not those after a leader that did not answer: the fake clock may run
    on while the follower's socket I/O is real time.)
    """
    found = (
        re.search(r"cannot use .* again in ([0-9.]+) s", line)
        for line in said.lines(logging.WARNING)
    )
    return [float(match.group(1)) for match in found if match]


@pytest.mark.slow
async def test_H7_a_leader_whose_line_after_its_data_set_is_unusable_is_backed_off(
    plane: str, said: Said
) -> None:
    """H7: the leader's whole data set applies, its next line cannot be used: the follower backs off 1 s doubling to 30 s all the same (it went back every 1.0 s)."""
    clock = FakeClock()
    connections = 0
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane) as listener,
        Client(follower_config(server, plane), clock=clock) as client,
        anyio.create_task_group() as group,
    ):

        async def broken(stream: anyio.abc.SocketStream) -> None:
            nonlocal connections
            connections += 1
            data = b"".join(_payload("xfer-full", "off", connections))
            async with stream:
                await stream.receive()  # its hello
                with contextlib.suppress(anyio.BrokenResourceError):
                    await stream.send(GREETING + data + b"{not json\n")
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    await stream.receive()

        group.start_soon(listener.serve, broken)
        await said.until("cannot follow the flag plane")  # (its first try)
        began = clock.now()
        await advance_until(clock, lambda: clock.now() >= began + 60)
        assert client.plane_role in ("solo", "follower")
        assert await value(client) in ("on", "off")  # never a default
        group.cancel_scope.cancel()
    # Tries at about 1, 2, 4, 8, 16 and 30 s (less up to half of each):
    # each a look and a follow. (It tried again every 1.0 s.)
    assert 4 <= connections <= 16, connections
    waits = broken_waits(said)[:5]
    assert len(waits) >= 3 and waits == sorted(set(waits)), waits  # (doubling)


async def test_H7_a_leader_usable_past_its_data_set_resets_the_back_off(
    plane: str, said: Said
) -> None:
    """H7: a change set applied after the data set proves the leader usable: its next unusable line is tried again after 1 s, not the longer wait before."""
    clock = FakeClock()

    def waits() -> list[float]:
        return broken_waits(said)

    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane) as listener,
        Client(follower_config(server, plane), clock=clock) as client,
        anyio.create_task_group() as group,
    ):

        async def leader(stream: anyio.abc.SocketStream) -> None:
            lines = b"".join(_payload("xfer-full", "off", 1))
            if len(waits()) >= 3:  # usable past its data set from now, then not
                lines += b"".join(_payload("xfer-changes", "on", 2))
            async with stream:
                await stream.receive()  # its hello
                with contextlib.suppress(anyio.BrokenResourceError):
                    await stream.send(GREETING + lines + b"{not json\n")
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                    await stream.receive()

        group.start_soon(listener.serve, leader)
        await advance_until(clock, lambda: len(waits()) >= 4)
        assert client.plane_role in ("solo", "follower")
        group.cancel_scope.cancel()
    first, second, third, after = waits()[:4]
    assert 0.5 <= first <= 1 < second <= 2 < third <= 4, waits()
    assert after <= 1, waits()  # reset: 1 s (less up to half) again, not 8 s


@pytest.mark.slow
async def test_J6_a_follower_whose_own_loop_was_blocked_does_not_blame_its_leader(
    plane: str, said: Said
) -> None:
    """J6: this process's own event loop did not run for 3.5 s (as after SIGSTOP): the leader's silence is not known, and a heartbeat after it keeps the follower following."""
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        leading_by_hand(plane) as listener,
        Client(follower_config(server, plane)) as follower,
        anyio.create_task_group() as group,
    ):
        stream = await listener.accept()
        await stream.receive()  # its hello
        await stream.send(GREETING + b"".join(_payload("xfer-full", "off", 1)))
        await until(follower, "off")

        async def beat() -> None:
            while True:
                await anyio.sleep(0.2)
                await stream.send(wire.HEARTBEAT)

        group.start_soon(beat)
        # The stimulus, not a wait: the loop blocked past the 3 s of
        # silence (the leader's beats wait in the socket meanwhile).
        time.sleep(3.5)  # noqa: ASYNC251, TID251 - a process that did not run
        await stream.send(b"".join(_payload("xfer-changes", "on", 2)))
        await until(follower, "on")
        assert follower.plane_role == "follower"
        assert not server.requests_to(STREAM)  # no stream of its own
        group.cancel_scope.cancel()
        await stream.aclose()
    assert not plane_warnings(said, plane)


async def test_J6_a_plane_read_cancelled_as_its_data_comes_logs_no_error() -> None:
    """J6: the plane's streams (transports) have no future that a read cancelled as data arrives leaves for the event loop to set (asyncio's InvalidStateError ERROR)."""
    import asyncio
    import socket

    from aioflags._datasystem._plane._socket import transported

    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    ours, theirs = socket.socketpair()
    try:
        raw = await anyio.abc.UNIXSocketStream.from_socket(ours)
        stream = await transported(raw)
        go = anyio.Event()
        async with stream, anyio.create_task_group() as group:

            async def reader() -> None:
                await stream.receive()

            async def canceller() -> None:
                await go.wait()
                group.cancel_scope.cancel()  # (the turn the data is seen in)

            group.start_soon(reader)
            group.start_soon(canceller)
            await anyio.wait_all_tasks_blocked()
            theirs.send(b"x")
            go.set()
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
    finally:
        loop.set_exception_handler(None)
        theirs.close()
    assert not errors, errors
