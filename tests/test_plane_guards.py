"""Guards on the flag plane (issue 98): counts go up to the leader, its decisions down.

A fake guard link (it records what the plane does with it) in clients of
one process, each a process of the plane as in tests/test_plane.py, on a
real Unix socket against the loopback FlagServer; and in real worker
processes (tests/plane_guard_worker.py) for a leader killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import aioflags
from aioflags import Client, Context, Guard
from aioflags._datasystem._plane import _wire as wire
from aioflags._datasystem._plane._guardlink import SafeLink
from aioflags._guards._plane import PlaneLink
from aioflags.guards import GuardEvent, errors
from aioflags.testing import FlagData, FlagServer
from tests.flags import STRING_FLAG
from tests.test_plane import OFF, config, serving, until, value
from tests.test_plane_processes import ROOT, Worker, first_to

pytestmark = pytest.mark.asyncio

#: A net against a hang, never a timing: every wait ends on a call seen.
GUARD = 60


@pytest.fixture
def plane(tmp_path: Path) -> str:
    return str(tmp_path / "flags.plane")


class FakeLink:
    """A guard link that records what the plane does with it."""

    def __init__(
        self,
        counts: dict[str, Any] | None = None,
        choice: dict[str, Any] | None = None,
    ) -> None:
        self.counts = counts  # what report() gives
        self.choice = choice  # what decisions() gives
        self.roles: list[str] = []
        self.reports: dict[str, dict[str, Any]] = {}  # reported(): the last per member
        self.seen: list[dict[str, Any]] = []  # decided()
        self.calls = 0
        self._poke = anyio.Event()

    def _called(self) -> None:
        self.calls += 1
        self._poke.set()

    def role(self, role: str) -> None:
        self.roles.append(role)
        self._called()

    def report(self) -> dict[str, Any] | None:
        self._called()
        return self.counts

    def reported(self, member: str, report: dict[str, Any]) -> None:
        self.reports[member] = report
        self._called()

    def decisions(self) -> dict[str, Any] | None:
        self._called()
        return self.choice

    def decided(self, decisions: dict[str, Any]) -> None:
        self.seen.append(decisions)
        self._called()

    async def until(self, check: Callable[[], bool]) -> None:
        """Until ``check()`` holds, looked at after each call the plane makes."""
        with anyio.fail_after(GUARD):
            while not check():
                await self._poke.wait()
                self._poke = anyio.Event()


def seen(link: FakeLink, count: int) -> Callable[[], bool]:
    """Whether ``link`` has been told ``count`` decisions, or more."""
    return lambda: len(link.seen) >= count


def linked(server: FlagServer, plane: str, link: object, **kwargs: Any) -> Client:
    """A client on ``plane`` whose guards are ``link`` (as the client hands its own)."""
    client = Client(config(server, plane, **kwargs))
    client._life.guard_link = link  # type: ignore[assignment]
    return client


def own_tasks() -> set[asyncio.Task[Any]]:
    return set(asyncio.all_tasks())


@pytest.mark.slow
async def test_issue98_a_followers_counts_reach_the_leader_and_replace_its_last(
    plane: str,
) -> None:
    before = own_tasks()
    lead, follow = FakeLink(), FakeLink(counts={"requests": 1})
    async with (
        serving() as server,
        linked(server, plane, lead) as leader,
        linked(server, plane, follow) as follower,
    ):
        assert (leader.plane_role, follower.plane_role) == ("leader", "follower")
        assert (lead.roles, follow.roles) == (["leader"], ["follower"])
        await lead.until(lambda: list(lead.reports.values()) == [{"requests": 1}])
        (member,) = lead.reports
        assert member.startswith(f"{os.getpid()}-")  # (a process's, per run)
        follow.counts = {"requests": 2}  # cumulative: it replaces the last one
        await lead.until(lambda: lead.reports == {member: {"requests": 2}})
        assert follow.reports == {} and lead.seen == []  # (each does its part only)
    await anyio.wait_all_tasks_blocked()
    assert own_tasks() - before == set()  # no task left behind
    assert os.listdir(Path(plane).parent) == ["flags.plane.lock"]  # nor a socket


@pytest.mark.slow
async def test_issue98_the_leaders_decisions_reach_every_follower_and_one_that_joins_later(
    plane: str,
) -> None:
    lead = FakeLink(choice={"pins": {"g": "control"}})
    first, second, late = FakeLink(), FakeLink(), FakeLink()
    async with (
        serving() as server,
        linked(server, plane, lead) as leader,
        linked(server, plane, first),
        linked(server, plane, second),
    ):
        assert leader.plane_role == "leader"
        for link in (first, second):
            await link.until(seen(link, 1))
            assert link.seen == [lead.choice]
        lead.choice = {"pins": {"g": "control", "h": "off"}}
        for link in (first, second):
            await link.until(seen(link, 2))
            assert link.seen[1] == lead.choice
        async with linked(server, plane, late) as joined:
            assert joined.plane_role == "follower"
            await late.until(lambda: bool(late.seen))
            assert late.seen == [lead.choice]  # the latest, replayed at once
        # A decision that did not change is not sent again.
        calls = lead.calls
        await lead.until(lambda: lead.calls >= calls + 3)
        assert len(first.seen) == len(second.seen) == 2


class CarryingLink(FakeLink):
    """Leading, it decides as a real guard carries a pin on: by it, with what it was told."""

    def __init__(self, name: str) -> None:
        super().__init__(counts={"from": name})
        self.name = name

    def decisions(self) -> dict[str, Any] | None:
        self._called()
        if not self.roles or self.roles[-1] != "leader":
            return None
        carried = self.seen[-1]["by"] if self.seen else None
        return {"by": self.name, "carried": carried}


async def test_issue98_a_new_leader_decides_for_the_others_and_they_report_to_it(
    plane: str,
) -> None:
    links = {name: CarryingLink(name) for name in ("a", "b", "c")}
    async with serving() as server, AsyncExitStack() as stack:
        clients = {}
        for name, link in links.items():
            clients[name] = await stack.enter_async_context(linked(server, plane, link))
        assert clients["a"].plane_role == "leader"
        for name in ("b", "c"):
            link = links[name]
            await link.until(seen(link, 1))
            assert link.seen == [{"by": "a", "carried": None}]
        await links["a"].until(lambda: len(links["a"].reports) == 2)
        await clients["a"].aclose()  # the leader goes: b or c leads
        await links["b"].until(lambda: "leader" in links["b"].roles + links["c"].roles)
        new, other = ("b", "c") if "leader" in links["b"].roles else ("c", "b")
        # Its decisions reach the other, carrying the pin it was told on...
        await links[other].until(lambda: len(links[other].seen) == 2)
        assert links[other].seen[1] == {"by": new, "carried": "a"}
        # ...which re-reports its totals to it.
        await links[new].until(
            lambda: list(links[new].reports.values()) == [{"from": other}]
        )
        assert links[new].roles == ["follower", "leader"]


async def raw_follower(plane: str, server: FlagServer) -> anyio.abc.SocketStream:
    """A connection to the leader that has said a good hello (a hand-made follower)."""
    stream = await anyio.connect_unix(plane)
    sdk_key = config(server, plane).sdk_key
    await stream.send(wire.hello(wire.environment_of(sdk_key)))
    return stream


async def until_closed(stream: anyio.abc.SocketStream) -> None:
    """Read what the leader sends until it closes the connection."""
    gone = (anyio.EndOfStream, anyio.BrokenResourceError)
    with anyio.fail_after(GUARD), contextlib.suppress(*gone):
        while True:
            await stream.receive()


@pytest.mark.slow
async def test_issue98_junk_and_oversized_lines_drop_that_follower_with_a_warning(
    plane: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "aioflags")
    lead, honest = FakeLink(), FakeLink(counts={"n": 1})
    async with (
        serving() as server,
        linked(server, plane, lead) as leader,
        linked(server, plane, honest) as follower,
    ):
        await lead.until(lambda: len(lead.reports) == 1)
        junk = (
            b"not json at all\n",
            b"\xff\xfe\n",  # not UTF-8
            b'{"event":"guard-report","data":{"counts":{}}}\n',  # no member
            b"[1, 2]\n",  # the first cause again: said once a minute
            b"x" * wire.MAX_GUARD_LINE,  # no newline within the bound
        )
        for line in junk:
            async with await raw_follower(plane, server) as stream:
                with contextlib.suppress(anyio.BrokenResourceError):
                    await stream.send(line)
                await until_closed(stream)
        # An event of a later version is skipped; its report then counts.
        async with await raw_follower(plane, server) as stream:
            report = wire.guard_report("raw-1", {"n": 7})
            await stream.send(b'{"event":"later-thing","data":{}}\n' + report)
            await lead.until(lambda: lead.reports.get("raw-1") == {"n": 7})
        # The others go on: the honest follower still reports and is told.
        honest.counts = {"n": 2}
        await lead.until(lambda: {"n": 2} in lead.reports.values())
        lead.choice = {"pins": {}}
        await honest.until(lambda: honest.seen == [{"pins": {}}])
        server.set_flag("f", OFF)
        await until(follower, "off")
        assert (leader.plane_role, follower.plane_role) == ("leader", "follower")
    dropped = [
        r.getMessage() for r in caplog.records if "dropped a follower" in r.getMessage()
    ]
    assert len(dropped) == 3, dropped
    assert "not a JSON event" in dropped[0] and plane in dropped[0]
    assert "without a member" in dropped[1]
    assert "longer than 1024 KiB" in dropped[2]
    assert not any(r.exc_info for r in caplog.records)  # one line each, no traceback


class Said(logging.Handler):
    """A log handler that wakes a test when a line containing ``words`` is logged."""

    def __init__(self, words: str) -> None:
        super().__init__(logging.WARNING)
        self.words = words
        self.lines: list[str] = []
        self.event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage():
            self.lines.append(record.getMessage())
            self.event.set()


@pytest.mark.slow
async def test_issue98_followers_guards_under_a_leader_without_guards_are_said_once(
    plane: str,
) -> None:
    # The `aioflags plane` command leads without guards: the workers'
    # guards count and nobody decides. That was silent; the leader says it.
    said = Said("reports guards, but its leader")
    logger = logging.getLogger("aioflags")
    logger.addHandler(said)
    try:
        follow = FakeLink(counts={"n": 1})
        async with (
            serving() as server,
            Client(config(server, plane)) as leader,
            linked(server, plane, follow) as follower,
        ):
            assert (leader.plane_role, follower.plane_role) == ("leader", "follower")
            with anyio.fail_after(GUARD):
                await said.event.wait()
            # More reports, from another follower too: nothing more is said.
            async with await raw_follower(plane, server) as stream:
                await stream.send(wire.guard_report("raw-1", {"n": 7}))
                await stream.send(wire.guard_report("raw-1", {"n": 8}))
            follow.counts = {"n": 2}
            await follow.until(lambda: follow.calls >= 4)  # (reported again)
            server.set_flag("f", OFF)
            await until(follower, "off")  # (the plane goes on)
    finally:
        logger.removeHandler(said)
    assert len(said.lines) == 1, said.lines
    assert plane in said.lines[0] and "aioflags plane" in said.lines[0]


class FaultyLink(FakeLink):
    """A link that raises in every call."""

    def _called(self) -> None:
        super()._called()
        raise RuntimeError("a bug in the guards")


@pytest.mark.slow
async def test_issue98_a_link_that_raises_is_said_once_and_the_plane_goes_on(
    plane: str, caplog: pytest.LogCaptureFixture
) -> None:
    lead, follow = FaultyLink(), FaultyLink()
    async with (
        serving() as server,
        linked(server, plane, lead) as leader,
        linked(server, plane, follow) as follower,
    ):
        await lead.until(lambda: lead.calls >= 4)  # role, then decisions() each tick
        await follow.until(lambda: follow.calls >= 3)  # role, then report() each second
        server.set_flag("f", OFF)
        await until(follower, "off")
        assert await value(leader) == "off"
        assert (leader.plane_role, follower.plane_role) == ("leader", "follower")
    said = [r for r in caplog.records if "guards' link" in r.getMessage()]
    assert len(said) == 2  # once in each process
    assert all(r.levelno == logging.ERROR and r.exc_info for r in said)


async def test_issue98_a_report_the_wire_cannot_carry_is_not_sent_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = FakeLink(counts={"big": "x" * wire.MAX_GUARD_LINE})
    safe = SafeLink(link, "member-1")
    assert safe.report_line() is None  # over the line's bound
    link.counts = {"rate": math.nan}  # JSON has no NaN
    assert safe.report_line() is None
    link.counts = {"rate": 0.5}
    line = safe.report_line()
    assert (
        line
        == b'{"event":"guard-report","data":{"member":"member-1","counts":{"rate":0.5}}}\n'
    )
    link.choice = {"pins": {"g": math.inf}}
    assert safe.decisions_line() is None
    link.choice = {"pins": {"g": "x" * wire.MAX_GUARD_LINE}}  # (decisions too)
    assert safe.decisions_line() is None
    link.choice = {"pins": {"g": "control"}}
    assert safe.decisions_line() == (
        b'{"event":"guard-decisions","data":{"pins":{"g":"control"}}}\n'
    )
    said = [r for r in caplog.records if "guards' link" in r.getMessage()]
    assert len(said) == 1 and "over the plane's 1048576 a line" in said[0].getMessage()


@asynccontextmanager
async def guard_workers(
    plane: str, url: str, count: int
) -> AsyncIterator[list[Worker]]:
    """``count`` processes of tests/plane_guard_worker.py on ``plane``."""
    async with AsyncExitStack() as stack:
        started = []
        argv = [sys.executable, "-m", "tests.plane_guard_worker", plane, url]
        for _ in range(count):
            process = await stack.enter_async_context(
                await anyio.open_process(argv, cwd=ROOT)
            )
            started.append(Worker(process))
        try:
            yield started
        finally:
            for worker in started:
                if worker.process.returncode is None:
                    worker.process.kill()


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_issue98_after_kill_9_of_the_leader_the_new_one_carries_its_pin_on(
    tmp_path: Path,
) -> None:
    plane = str(tmp_path / "plane")
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        guard_workers(plane, server.url, 3) as every,
    ):
        for worker in every:
            await worker.until("ready")
        (leader,) = [w for w in every if "role leader" in w.lines]
        followers = [w for w in every if w is not leader]
        first = leader.process.pid
        for worker in followers:
            await worker.until(f"decided {first} None")
            await leader.until(f"reported {worker.process.pid}")
        leader.process.send_signal(signal.SIGKILL)
        await leader.process.wait()
        new = await first_to(followers, "role leader")
        (other,) = [w for w in followers if w is not new]
        # The new leader's decisions reach the other, carrying the first's on;
        # and the other re-reports its totals to it.
        await other.until(f"decided {new.process.pid} {first}")
        await new.until(f"reported {other.process.pid}")
        for worker in followers:
            worker.process.send_signal(signal.SIGTERM)
        for worker in followers:
            assert await worker.process.wait() == 0
    assert json.dumps(sorted(os.listdir(tmp_path))) in (
        '["plane", "plane.lock"]',  # (the killed leader's socket, taken over)
        '["plane.lock"]',
    )


ROLLOUT = {
    "key": "f",
    "version": 1,
    "on": True,
    "salt": "f",
    "variations": [True, False],
    "offVariation": 1,
    "targets": [],
    "rules": [],
    "prerequisites": [],
    "fallthrough": {
        "rollout": {
            "variations": [
                {"variation": 0, "weight": 50000},
                {"variation": 1, "weight": 50000},
            ]
        }
    },
}


@pytest.mark.slow
async def test_issue98_a_pin_from_a_followers_counts_reaches_it_and_a_new_leader_carries_it(
    plane: str,
) -> None:
    """The follower's requests alone: the leader sums them and pins; the follower serves control, and leads on with the pin."""
    guard = Guard("f", control=False, action="pin", metrics=[errors()])
    pinned = anyio.Event()

    def told(event: GuardEvent) -> None:
        if event.kind == "pinned":
            pinned.set()

    async with (
        FlagServer({"f": ROLLOUT}) as server,
        Client(config(server, plane, guards=[guard])) as leader,
        Client(config(server, plane, guards=[guard])) as follower,
    ):
        assert (leader.plane_role, follower.plane_role) == ("leader", "follower")
        follower.guards.add_handler(told)
        rng = random.Random(1)
        for i in range(4000):  # (the treatment fails in 40 % of its requests)
            with contextlib.suppress(LookupError):
                async with follower.guards.request():
                    user = Context.create(f"u{i}")
                    served = await follower.bool_variation("f", user, False)
                    if served and rng.random() < 0.4:
                        raise LookupError("the treatment failed")
            if i % 100 == 0:
                await anyio.lowlevel.checkpoint()  # (its reports go out)
        with anyio.fail_after(GUARD):
            await pinned.wait()
        decided = leader.guards.status["f"]
        assert decided.state == "pinned"
        assert sum(arm.requests for arm in decided.arms) > 0  # the follower's
        status = follower.guards.status["f"]
        assert status.state == "pinned" and status.message == decided.message
        await served_control(follower)
        # The leader goes: the follower leads, carrying its pin on to a newcomer.
        await leader.aclose()
        with anyio.fail_after(GUARD):  # (the new leader's stream upstream)
            await server.wait_for_requests("/sdk/stream", 2)
        assert follower.plane_role == "leader"
        newcomer = Client(config(server, plane, guards=[guard]))
        newcomer.guards.add_handler(told)
        pinned = anyio.Event()
        async with newcomer:
            assert newcomer.plane_role == "follower"
            with anyio.fail_after(GUARD):
                await pinned.wait()
            assert newcomer.guards.status["f"].message == decided.message
            await served_control(newcomer)
        assert follower.guards.status["f"].state == "pinned"


async def served_control(client: Client) -> None:
    """``client`` serves the pin's control for "f", with reason GUARDED."""
    for i in range(30):
        detail = await client.variation_detail("f", Context.create(f"x{i}"), True)
        assert (detail.value, detail.variation_index) == (False, 1)
        assert detail.reason == {"kind": "GUARDED", "guard": "f"}


def _pinning_config() -> aioflags.Config:
    """A plane-less client's config: flag ``f`` a 50/50 rollout, guard ``f`` pinning ``False`` on errors."""
    data = FlagData()
    data.update(data.flag("f").boolean().fallthrough_rollout({True: 50, False: 50}))
    guard = Guard("f", control=False, action="pin", metrics=[errors()])
    return aioflags.Config(data_system=data.data_system(), guards=[guard])


def _link(client: Client, role: str) -> PlaneLink:
    """``client``'s guards on a plane link of their own, in ``role`` (the plane played by the test)."""
    runs = {run.config.name: run for run in (client.guards.by_flag or {}).values()}
    link = PlaneLink(runs)
    link.role(role)
    return link


async def test_issue98_a_report_of_another_version_or_shape_is_not_counted() -> None:
    config = _pinning_config()
    async with Client(config) as client:
        link = _link(client, "leader")
        (version,) = {client.guards.status["f"].version}
        arm = [10, 1, 10, 0.0, 0.0, {}]
        for report in (
            {"f": {"version": 999, "arms": [arm, arm]}},  # another version
            {"f": {"version": version, "arms": [arm]}},  # not this version's arms
            {"f": {"version": version, "arms": [[True, 1, 1, 0, 0, {}], arm]}},
            {"f": {"version": version, "arms": [[1, 0, 1, math.nan, 0, {}], arm]}},
            {"f": "junk"},
            {"g": {"version": version, "arms": [arm, arm]}},  # no such guard
        ):
            link.reported("m1", report)
            status = client.guards.status["f"]
            assert sum(a.requests for a in status.arms) == 0, report
        link.reported("m2", {"f": {"version": version, "arms": [arm, arm]}})
        link.reported("m2", {"f": {"version": version, "arms": [arm, arm]}})
        status = client.guards.status["f"]
        assert sum(a.requests for a in status.arms) == 20  # m2's last, once
        assert link.decisions() is None  # (nothing decided on 20 requests)


async def test_issue98_a_release_on_a_follower_is_its_own_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _pinning_config()
    async with Client(config) as client:
        link = _link(client, "follower")
        version = client.guards.status["f"].version
        link.decided(
            {"f": {"version": version, "state": "pinned", "control": 1, "message": "m"}}
        )
        with caplog.at_level(logging.WARNING, "aioflags.guards"):
            assert client.guards.release("f") is True
        said = [
            r.getMessage()
            for r in caplog.records
            if "this process only" in r.getMessage()
        ]
        assert len(said) == 1 and "release it on the leader" in said[0]
        assert client.guards.status["f"].state == "released"
    # On its own (no plane), a release says nothing.
    async with Client(config) as client:
        watch = client.guards._runs["f"].current
        assert watch is not None
        watch.adopt("pinned", 1, "m")
        assert client.guards.status["f"].state == "pinned"
        caplog.clear()
        with caplog.at_level(logging.WARNING, "aioflags.guards"):
            assert client.guards.release("f") is True
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_issue98_a_followers_guard_applies_the_leaders_pin_and_release() -> None:
    config = _pinning_config()
    async with Client(config) as client:
        link = _link(client, "follower")
        version = client.guards.status["f"].version
        pin = {"version": version, "state": "pinned", "control": 1, "message": "m"}
        link.decided({"f": {**pin, "version": 999}})  # another version: not this
        assert client.guards.status["f"].state == "collecting"
        link.decided({"f": pin})
        assert client.guards.status["f"].state == "pinned"
        await served_control(client)
        assert link.decisions() == {"f": pin}  # (leading next, it carries it on)
        link.decided({"f": {**pin, "state": "released"}})
        assert client.guards.status["f"].state == "released"
        values = {
            await client.bool_variation("f", Context.create(f"u{i}"), False)
            for i in range(40)
        }
        assert values == {True, False}  # the rollout again
