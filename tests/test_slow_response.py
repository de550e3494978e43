"""A slow first response that is arriving is not a failure (issue 95, K1).

A big payload on a slow link may take longer than ``initializing_timeout``
(or a poll's ``connect_timeout + read_timeout``). Cut there, the attempt
starts over, on the same synchronizer when it is the only one, and the
client never becomes READY. The timeouts are for time without progress:
a response that brings ``PROGRESS_BYTES`` each window goes on; one that
stalls, or trickles, is still cut. A real loopback server sends the body;
the supervisor's clock is a ``FakeClock`` the test moves window by window.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
import httpx
import pytest

from aioflags import Config, Context, DataSystem, SourceState
from aioflags._datasystem._store import Store
from aioflags._datasystem._supervisor import Supervisor
from aioflags.sources import fdv1_polling_synchronizer, polling_initializer
from aioflags.testing import FakeClock
from tests.raw_server import Answer, RawServer, complete, raw_server
from tests.sources import Recorder, source_context

FDV1_POLL = "/sdk/latest-all"
USER = Context.create("u")
WINDOW = 5.0  # initializing_timeout, on the fake clock
PIECE = 32 * 1024  # each piece is two PROGRESS_BYTES


def big_body(size: int) -> bytes:
    """An FDv1 poll body serving flag ``f`` = "big", padded to ``size`` bytes."""
    flag = {
        "key": "f",
        "version": 1,
        "on": True,
        "variations": ["big"],
        "fallthrough": {"variation": 0},
    }
    body = json.dumps({"flags": {"f": flag}, "segments": {}}).encode()
    return body + b" " * (size - len(body))


def big_fdv2_body(size: int) -> bytes:
    """An FDv2 poll body (a full payload) serving flag ``f`` = "big", padded to ``size``."""
    flag = {"on": True, "variations": ["big"], "fallthrough": {"variation": 0}}
    obj = {"key": "f", "version": 1, **flag}
    put = {"kind": "flag", "key": "f", "version": 1, "object": obj}
    events = [
        {
            "event": "server-intent",
            "data": {"payloads": [{"id": "p", "target": 1, "intentCode": "xfer-full"}]},
        },
        {"event": "put-object", "data": put},
        {"event": "payload-transferred", "data": {"state": "s1", "version": 1}},
    ]
    body = json.dumps({"events": events}).encode()
    return body + b" " * (size - len(body))


@dataclass
class Paced:
    """An answer sent piece by piece, each when the test lets it go."""

    body: bytes
    gates: list[anyio.Event]
    sent: list[anyio.Event]

    @classmethod
    def of(cls, body: bytes) -> Paced:
        pieces = math.ceil(len(body) / PIECE)
        return cls(
            body,
            [anyio.Event() for _ in range(pieces)],
            [anyio.Event() for _ in range(pieces)],
        )

    def answer(self) -> Answer:
        async def answer(stream: anyio.abc.SocketStream) -> bool:
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            await stream.send(head + b"content-length: %d\r\n\r\n" % len(self.body))
            for index, gate in enumerate(self.gates):
                await gate.wait()
                await stream.send(self.body[index * PIECE : (index + 1) * PIECE])
                self.sent[index].set()
            return True

        return answer

    async def send(self, index: int) -> None:
        """Let piece ``index`` go, and wait until the client has had it to read."""
        self.gates[index].set()
        await self.sent[index].wait()
        # (loopback: the bytes are in the client's socket; this lets every
        # task run until it waits, the client's read of them included)
        await anyio.wait_all_tasks_blocked()


async def stalled(stream: anyio.abc.SocketStream) -> bool:
    """A head announcing a body that never comes (the next requests')."""
    await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
    await anyio.sleep_forever()
    return False  # pragma: no cover - never reached


@dataclass
class Harness:
    supervisor: Supervisor
    store: Store
    recorder: Recorder
    clock: FakeClock
    server: RawServer

    def state(self) -> SourceState:
        return self.supervisor.status.state


@asynccontextmanager
async def running(first: Answer, system: DataSystem) -> AsyncIterator[Harness]:
    """A supervisor of ``system`` polling a raw server whose first answer is ``first``."""
    clock = FakeClock()
    store = Store()
    recorder = Recorder()
    async with raw_server(stalled) as server, httpx.AsyncClient(verify=False) as http:
        server.script(first)
        config = Config("sdk-key", base_uri=server.url, send_events=False)
        context = source_context(http, clock, config=config)
        supervisor = Supervisor(system, store, context, recorder, clock)
        async with anyio.create_task_group() as tg:
            tg.start_soon(supervisor.run)
            yield Harness(supervisor, store, recorder, clock, server)
            tg.cancel_scope.cancel()


def one_poller() -> DataSystem:
    """The FDv1 poller alone: its fallback is itself (the K1 report's set-up)."""
    return DataSystem.custom(
        synchronizers=[fdv1_polling_synchronizer(interval=3600)]
    ).with_timings(initializing_timeout=WINDOW)


@pytest.mark.slow  # (each window's wait lets every task run: ~1 s)
@pytest.mark.asyncio
async def test_K1_a_first_poll_arriving_slower_than_the_initializing_timeout_is_not_cut() -> (
    None
):
    """Four windows of the timeout go by while the body arrives: one request, then VALID."""
    paced = Paced.of(big_body(4 * PIECE))
    async with running(paced.answer(), one_poller()) as h:
        await h.server.wait_until(lambda: len(h.server.paths) == 1, "the first poll")
        for index in range(len(paced.gates) - 1):
            await h.clock.wait_for_sleeper(within=WINDOW)  # the failover timer
            await paced.send(index)
            await h.clock.advance(WINDOW)  # its window is over: bytes came in it
            assert h.server.paths == [FDV1_POLL], "the attempt was cut"
        await paced.send(len(paced.gates) - 1)
        await h.recorder.wait_for(lambda: h.state() is SourceState.VALID)
        assert h.store.snapshot.variation("f", USER, "default") == "big"
        assert h.server.paths == [FDV1_POLL]
        assert h.clock.now() == 3 * WINDOW  # slower than the timeout, three times


@pytest.mark.slow  # (each window's wait lets every task run: ~1 s)
@pytest.mark.asyncio
async def test_K1_an_initializer_poll_arriving_slower_than_its_timeout_is_not_cut() -> (
    None
):
    """An initializer has ``initializing_timeout`` too: for time without progress."""
    paced = Paced.of(big_fdv2_body(3 * PIECE))
    system = DataSystem.custom(initializers=[polling_initializer()]).with_timings(
        initializing_timeout=WINDOW
    )
    async with running(paced.answer(), system) as h:
        await h.server.wait_until(lambda: len(h.server.paths) == 1, "the poll")
        for index in range(len(paced.gates) - 1):
            await h.clock.wait_for_sleeper(within=WINDOW)  # the initializer's timer
            await paced.send(index)
            await h.clock.advance(WINDOW)
        await paced.send(len(paced.gates) - 1)
        await h.recorder.wait_for(
            lambda: h.store.snapshot.variation("f", USER, "default") == "big"
        )
        assert h.server.paths == ["/sdk/poll"]


@pytest.mark.asyncio
async def test_K1_a_first_poll_that_stops_arriving_is_still_cut() -> None:
    """A window without bytes ends the attempt: the next one is a new request."""
    paced = Paced.of(big_body(4 * PIECE))
    async with running(paced.answer(), one_poller()) as h:
        await h.server.wait_until(lambda: len(h.server.paths) == 1, "the first poll")
        await h.clock.wait_for_sleeper(within=WINDOW)
        await paced.send(0)
        await h.clock.advance(WINDOW)  # moved on: bytes came
        assert h.server.paths == [FDV1_POLL]
        await h.clock.wait_for_sleeper(within=WINDOW)
        await h.clock.advance(WINDOW)  # nothing came in this one: cut
        await h.server.wait_until(lambda: len(h.server.paths) == 2, "a new attempt")
        assert h.state() is SourceState.INITIALIZING


@pytest.mark.asyncio
async def test_K1_a_big_body_that_came_whole_and_failed_is_no_progress() -> None:
    """A source failing fast with big payloads (malformed) is failing, not slow."""
    bad = b"{" + b" " * (4 * PIECE)  # (no closing brace: malformed)
    async with running(complete(body=bad), one_poller()) as h:
        await h.server.wait_until(lambda: len(h.server.paths) == 1, "the first poll")
        await h.recorder.wait_for(lambda: h.supervisor.status.error is not None)
        await h.clock.wait_for_sleeper(within=WINDOW)
        await h.clock.advance(WINDOW)  # the bytes came, in a response now over
        await h.server.wait_until(lambda: len(h.server.paths) == 2, "a new attempt")


@pytest.mark.asyncio
async def test_K1_a_trickle_below_the_progress_floor_is_still_cut() -> None:
    """A byte now and then is a stall: the window passes, the attempt is cut."""

    async def trickle(stream: anyio.abc.SocketStream) -> bool:
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
        await stream.send(b" " * 1024)
        await anyio.sleep_forever()
        return False  # pragma: no cover - never reached

    async with running(trickle, one_poller()) as h:
        await h.server.wait_until(lambda: len(h.server.paths) == 1, "the first poll")
        await h.clock.wait_for_sleeper(within=WINDOW)
        await anyio.wait_all_tasks_blocked()  # (the kilobyte read)
        await h.clock.advance(WINDOW)
        await h.server.wait_until(lambda: len(h.server.paths) == 2, "a new attempt")


@dataclass
class Timed:
    """An answer whose body comes a piece every ``every`` seconds (its pace, not a wait)."""

    body: bytes
    every: float

    async def __call__(self, stream: anyio.abc.SocketStream) -> bool:
        await stream.send(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(self.body)
        )
        for start in range(0, len(self.body), PIECE):
            await anyio.sleep(self.every)
            await stream.send(self.body[start : start + PIECE])
        return True


@pytest.mark.slow
@pytest.mark.asyncio
async def test_K1_a_poll_body_arriving_for_longer_than_its_deadline_is_not_cut() -> (
    None
):
    """The poll's own deadline (connect + read timeout: 0.75 s) moves on with the body (2 s)."""
    system = DataSystem.custom(synchronizers=[fdv1_polling_synchronizer(interval=3600)])
    clock = (
        FakeClock()
    )  # (the supervisor's timeouts never come: the poll's own is real)
    store, recorder = Store(), Recorder()
    async with raw_server(stalled) as server, httpx.AsyncClient(verify=False) as http:
        server.script(Timed(big_body(20 * PIECE), every=0.1))
        config = Config(
            "sdk-key",
            base_uri=server.url,
            send_events=False,
            connect_timeout=0.25,
            read_timeout=0.5,
        )
        context = source_context(http, clock, config=config)
        supervisor = Supervisor(system, store, context, recorder, clock)
        async with anyio.create_task_group() as tg:
            tg.start_soon(supervisor.run)
            with anyio.fail_after(30):  # a guard: the body takes ~2 s
                await recorder.wait_for(lambda: bool(recorder.statuses))
            assert supervisor.status.state is SourceState.VALID, supervisor.status
            assert store.snapshot.variation("f", USER, "default") == "big"
            assert server.paths == [FDV1_POLL]
            tg.cancel_scope.cancel()
