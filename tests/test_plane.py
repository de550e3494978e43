"""The flag plane: the processes of a host share one upstream (issue 78, docs/scaling.md).

Clients in one process take the plane's lock on open file descriptions of
their own, so each is a process of the plane as far as the lock, the
socket and the wire go: most tests here run several clients in the test's
own process against the real loopback FlagServer, on a real Unix socket.
tests/test_plane_processes.py runs real worker processes (kill -9, fork).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import aioflags
from aioflags import (
    Client,
    Config,
    ConfigurationError,
    Context,
    DataSystem,
    ProviderStatus,
    SourceState,
)
from aioflags.testing import FakeClock, FlagServer
from tests.flags import STRING_FLAG

pytestmark = pytest.mark.asyncio

USER = Context.create("user-1")
STREAM = "/sdk/stream"
OFF = {**STRING_FLAG, "fallthrough": {"variation": 1}}


@pytest.fixture
def plane(tmp_path: Path) -> str:
    return str(tmp_path / "flags.plane")


def config(server: FlagServer, plane: str | None, **kwargs: Any) -> Config:
    # ready_timeout: a net for READY (issue 97); tests of its expiry give their own
    options = {"ready_timeout": 30, "initial_retry_delay": 0.05, **kwargs}
    return server.config(
        data_system=DataSystem.streaming(plane=plane), send_events=False, **options
    )


async def value(client: Client, key: str = "f") -> object:
    return await client.variation(key, USER, "default")


async def until(client: Client, expected: object) -> None:
    """Until ``client`` serves ``expected`` for "f" (re-checked at each READY or change event)."""
    changed = anyio.Event()

    def handler(_: aioflags.EventDetails) -> None:
        changed.set()

    events = (
        aioflags.ProviderEvent.READY,  # (the first data)
        aioflags.ProviderEvent.CONFIGURATION_CHANGED,
    )
    for event in events:
        client.add_handler(event, handler)
    try:
        with anyio.fail_after(30):
            while await value(client) != expected:
                await changed.wait()
                changed = anyio.Event()
    finally:
        for event in events:
            client.remove_handler(event, handler)


def role_of(client: Client) -> str | None:
    """Read through a call, so mypy does not narrow the role across a block's end."""
    return client.plane_role


@asynccontextmanager
async def serving() -> AsyncIterator[FlagServer]:
    async with FlagServer({"f": STRING_FLAG}) as server:
        yield server


async def test_one_leads_the_others_follow_with_one_stream_upstream(
    plane: str,
) -> None:
    async with serving() as server:
        async with Client(config(server, plane)) as leader:
            assert leader.plane_role == "leader"
            assert await value(leader) == "on"
            async with (
                Client(config(server, plane)) as first,
                Client(config(server, plane)) as second,
            ):
                for follower in (first, second):
                    assert follower.plane_role == "follower"
                    assert follower.status is ProviderStatus.READY
                    assert await value(follower) == "on"
                server.set_flag("f", OFF)
                for client in (leader, first, second):
                    await until(client, "off")
                assert len(server.requests_to(STREAM)) == 1
                assert len(server.requests_to("/sdk/poll")) == 0
                status = first.data_source_status
                assert status is not None and status.state is SourceState.VALID
            assert leader.plane_role == "leader"
        assert role_of(leader) is None  # (closed)
    assert os.listdir(Path(plane).parent) == ["flags.plane.lock"]


async def test_a_closed_leader_hands_over_and_no_default_is_served(
    plane: str,
) -> None:
    async with (
        serving() as server,
        Client(config(server, plane)) as leader,
        Client(config(server, plane)) as first,
        Client(config(server, plane)) as second,
    ):
        seen: list[object] = []

        async def watch() -> None:
            while True:
                seen.extend([await value(first), await value(second)])
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            await leader.aclose()
            with anyio.fail_after(30):  # the new leader's upstream
                await server.wait_for_requests(STREAM, 2)
            roles = sorted([str(first.plane_role), str(second.plane_role)])
            assert roles == ["follower", "leader"]
            new = server.requests_to(STREAM)[1]
            assert new.query["basis"] == server.state  # from the data it held
            server.set_flag("f", OFF)
            await until(first, "off")
            await until(second, "off")
            group.cancel_scope.cancel()
        assert "default" not in seen and "on" in seen
        for client in (first, second):
            assert client.status is ProviderStatus.READY


async def test_an_upstream_outage_reaches_the_followers_and_recovers(
    plane: str,
) -> None:
    async with (
        serving() as server,
        Client(config(server, plane, grace_period=60)) as leader,
        Client(config(server, plane, grace_period=60)) as follower,
    ):
        assert follower.plane_role == "follower"
        server.fail(STREAM, status=503)
        server.disconnect_streams()
        with anyio.fail_after(30):
            await follower._bus.wait_status(lambda s: s is ProviderStatus.STALE)
        status = follower.data_source_status
        assert status is not None and status.error is not None
        assert "flag plane's leader" in status.error.message
        assert "503" in status.error.message
        assert await value(follower) == "on"  # the last good data
        server.clear_faults()
        with anyio.fail_after(30):
            await follower._bus.wait_status(lambda s: s is ProviderStatus.READY)
        assert leader.status is ProviderStatus.READY


async def test_another_environment_on_the_path_is_refused_and_reads_its_own(
    plane: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving() as server, Client(config(server, plane)) as leader:
        other = server.config(
            sdk_key="sdk-another-environment",
            data_system=DataSystem.streaming(plane=plane),
            send_events=False,
            ready_timeout=5.0,
        )
        async with Client(other) as stranger:
            assert stranger.plane_role is None
            assert await value(stranger) == "on"  # from its own upstream
        assert leader.plane_role == "leader"
        assert len(server.requests_to(STREAM)) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert plane in errors[0] and "another environment" in errors[0]
    assert "reads the flag service itself" in errors[0]


@pytest.mark.parametrize("what", ["file", "folder"])
async def test_a_path_that_is_not_a_socket_is_refused_and_left_as_it_is(
    plane: str, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    if what == "file":
        await anyio.Path(plane).write_bytes(b"somebody's data")
    else:
        await anyio.Path(plane).mkdir()
    async with serving() as server, Client(config(server, plane)) as client:
        assert client.plane_role is None
        assert await value(client) == "on"
    if what == "file":
        assert await anyio.Path(plane).read_bytes() == b"somebody's data"
    else:
        assert await anyio.Path(plane).is_dir()
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"the plane's path {plane} is not a socket: left as it is" in error


async def test_only_the_leader_writes_saved_state(tmp_path: Path, plane: str) -> None:
    async with serving() as server:
        leader_file, follower_file = (
            tmp_path / "leader.json",
            tmp_path / "follower.json",
        )
        async with (
            Client(config(server, plane)) as leader,
            Client(
                server.config(
                    data_system=DataSystem.streaming(
                        plane=plane, saved_state=follower_file
                    ),
                    send_events=False,
                    ready_timeout=5.0,
                )
            ) as follower,
        ):
            assert follower.plane_role == "follower"
            server.set_flag("f", OFF)
            await until(follower, "off")
        assert not follower_file.exists()
        async with Client(
            server.config(
                data_system=DataSystem.streaming(plane=plane, saved_state=leader_file),
                send_events=False,
                ready_timeout=5.0,
            )
        ) as alone:
            assert alone.plane_role == "leader"
        assert leader_file.exists()
        del leader


async def test_a_follower_that_stops_reading_is_dropped_and_the_rest_go_on(
    plane: str,
) -> None:
    big = {**STRING_FLAG, "variations": ["x" * 1_000_000, "off"]}
    async with (
        FlagServer({"f": big}) as server,
        Client(config(server, plane)) as leader,
        Client(config(server, plane)) as follower,
        await anyio.connect_unix(plane) as stalled,
    ):
        from aioflags._datasystem._plane import _wire as wire

        await stalled.send(wire.hello(wire.environment_of("sdk-key")))
        await stalled.receive()  # (its hello: then it reads no more)
        for n in range(10):  # 20 MB of changes, past the 16 MiB bound
            served = f"{n}a" * 1_000_000
            server.set_flag("f", {**big, "variations": [served, "off"]})
            await until(leader, served)  # (each its own change set)
        await until(follower, served)
        with (  # the stalled one was disconnected
            anyio.fail_after(30),
            contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError),
        ):
            while True:
                await stalled.receive()
        assert follower.plane_role == "follower"


@pytest.mark.parametrize(
    ("line", "refusal"),
    [
        (b"aioflags-plane 2 ENV\n", "wire version 2"),
        (b"aioflags-plane 1 0000\n", "another environment"),
        (b"GET / HTTP/1.1\n", "no aioflags-plane hello"),
    ],
)
async def test_the_leader_refuses_a_stranger_by_its_hello(
    plane: str, line: bytes, refusal: str
) -> None:
    from aioflags._datasystem._plane import _wire as wire

    async with serving() as server, Client(config(server, plane)) as leader:
        environment = wire.environment_of("sdk-key")
        async with await anyio.connect_unix(plane) as stranger:
            await stranger.send(line.replace(b"ENV", environment.encode()))
            said = wire.read_hello(await stranger.receive())
        assert said is not None and said[1] == environment
        assert said[2] is not None and refusal in said[2]
        assert leader.plane_role == "leader"
        assert os.stat(plane).st_mode & 0o777 == 0o600


async def test_plane_is_refused_where_there_is_no_upstream_to_share(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "p")
    with pytest.raises(ValueError, match=r"DataSystem.file\(\) takes no plane"):
        DataSystem.file(str(tmp_path / "flags.json"), plane=path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"DataSystem.daemon\(\) takes no plane"):
        DataSystem.daemon(object(), plane=path)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at most 107"):
        DataSystem.default(plane="/tmp/" + "p" * 200)
    with pytest.raises(ConfigurationError, match="offline=True takes no flag plane"):
        Config("k", offline=True, data_system=DataSystem.default(plane=path))
    with pytest.raises(ConfigurationError, match="takes the path"):
        DataSystem.polling(plane=5)  # type: ignore[arg-type]
    assert DataSystem.default(plane=Path(path)).plane is not None


async def test_a_socket_deleted_under_the_leader_is_made_again(plane: str) -> None:
    clock = FakeClock()
    async with (
        serving() as server,
        Client(config(server, plane), clock=clock) as leader,
    ):
        assert leader.plane_role == "leader"
        await anyio.Path(plane).unlink()
        await clock.wait_for_sleeper(within=1)
        await clock.advance(1)  # the leader's check
        async with Client(config(server, plane)) as follower:
            assert follower.plane_role == "follower"
            assert await value(follower) == "on"


def _payload(intent: str, value: str, version: int) -> list[bytes]:
    """A payload's lines as a leader sends them: flag "f" serving ``value``."""
    served = 0 if value == "on" else 1
    flag = {**STRING_FLAG, "key": "f", "version": version}
    flag["fallthrough"] = {"variation": served}
    data = {"kind": "flag", "key": "f", "version": version, "object": flag}
    events = [
        {
            "event": "server-intent",
            "data": {
                "payloads": [{"id": "p", "target": version, "intentCode": intent}]
            },
        },
        {"event": "put-object", "data": data},
        {
            "event": "payload-transferred",
            "data": {"state": f"s{version}", "version": version},
        },
    ]
    return [(json.dumps(event) + "\n").encode() for event in events]


@asynccontextmanager
async def leading_by_hand(
    plane: str,
) -> AsyncIterator[tuple[anyio.abc.SocketListener, Client, bytes]]:
    """This test holds the plane's lock and listens on its socket: a follower client, and the leader's first lines."""
    from aioflags._datasystem._plane import _wire as wire
    from aioflags._datasystem._plane._lock import try_lead

    lease = try_lead(plane + ".lock")
    assert lease is not None
    valid = b'{"event":"plane-status","data":{"state":"valid","error":null}}\n'
    greeting = wire.hello(wire.environment_of("sdk-key")) + valid
    try:
        async with (
            serving() as server,
            await anyio.create_unix_listener(plane) as listener,
            Client(config(server, plane, ready_timeout=0)) as follower,
        ):
            yield listener, follower, greeting
    finally:
        lease.release()


@pytest.mark.parametrize("cut", [1, 2, 3])  # after the intent, after the put, mid-line
async def test_a_leader_gone_mid_change_set_applies_none_of_it(
    plane: str, cut: int
) -> None:
    async with leading_by_hand(plane) as (listener, follower, greeting):
        first = await listener.accept()
        await first.receive()  # its hello
        await first.send(greeting)
        await first.send(b"".join(_payload("xfer-full", "on", 1)))
        await until(follower, "on")
        change = b"".join(_payload("xfer-changes", "off", 2))
        sent = b"".join(_payload("xfer-changes", "off", 2)[: min(cut, 2)])
        if cut == 3:  # half of the last line
            sent = change[: len(change) - 20]
        await first.send(sent)
        await first.aclose()  # the leader is gone, mid-way
        second = await listener.accept()  # it reconnects to the next one
        assert await value(follower) == "on"  # none of the change applied
        await second.receive()
        await second.send(greeting)
        await second.send(b"".join(_payload("xfer-full", "off", 2)))
        await until(follower, "off")  # nothing lost
        assert follower.plane_role == "follower"
        await second.aclose()


@pytest.mark.parametrize("when", ["before its hello", "after its hello"])
async def test_a_leader_gone_as_a_follower_reaches_it_is_followed_again(
    plane: str, when: str
) -> None:
    async with leading_by_hand(plane) as (listener, follower, greeting):
        gone = await listener.accept()
        if when == "after its hello":
            await gone.receive()
        await gone.aclose()  # (nothing answered)
        with anyio.fail_after(30):  # it comes again
            again = await listener.accept()
        await again.receive()
        await again.send(greeting)
        await again.send(b"".join(_payload("xfer-full", "on", 1)))
        await until(follower, "on")
        assert follower.plane_role == "follower"
        await again.aclose()


async def test_a_follower_joining_a_leader_whose_upstream_is_down_is_stale(
    plane: str,
) -> None:
    async with (
        serving() as server,
        Client(config(server, plane, grace_period=60)) as leader,
    ):
        server.fail(STREAM, status=503)
        server.disconnect_streams()
        with anyio.fail_after(30):
            await leader._bus.wait_status(lambda s: s is ProviderStatus.STALE)
        async with Client(config(server, plane, grace_period=60)) as late:
            with anyio.fail_after(30):  # never fresher than its leader
                await late._bus.wait_status(lambda s: s is ProviderStatus.STALE)
            assert await value(late) == "on"  # the leader's last good data
            status = late.data_source_status
            assert status is not None and status.error is not None
            assert "flag plane's leader" in status.error.message


async def test_a_follower_that_comes_to_lead_writes_saved_state(
    tmp_path: Path, plane: str
) -> None:
    saved = tmp_path / "saved.json"
    async with serving() as server, Client(config(server, plane)) as leader:
        follower = Client(
            server.config(
                data_system=DataSystem.streaming(plane=plane, saved_state=saved),
                send_events=False,
                ready_timeout=5.0,
            )
        )
        async with follower:
            assert follower.plane_role == "follower"
            await leader.aclose()
            with anyio.fail_after(30):  # it leads: the next stream is its
                await server.wait_for_requests(STREAM, 2)
            assert role_of(follower) == "leader"
        # (what it had not saved is written as it closes)
        text = await anyio.Path(saved).read_text()
    assert '"key":"f"' in text and '"format":"aioflags-saved-state"' in text


async def test_another_payload_filter_is_another_environment(
    plane: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving() as server, Client(config(server, plane)) as leader:
        async with Client(config(server, plane, payload_filter_key="mobile")) as other:
            assert other.plane_role is None
        assert leader.plane_role == "leader"
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "another environment" in error


async def test_what_is_queued_for_a_follower_starts_with_its_hello() -> None:
    from aioflags._datasystem._plane._leader import _Outbox

    sent: list[bytes] = []

    class Stream:
        async def send(self, data: bytes) -> None:
            sent.append(data)
            if len(sent) == 3:
                outbox.over = True  # (enough: end the pump)

    outbox = _Outbox(b"hello+data+status\n")
    outbox.put_status(b"status-1\n")
    outbox.put(b"full\n", full=True)  # before the pump ever ran
    outbox.put_status(b"status-2\n")
    await outbox.pump(Stream())  # type: ignore[arg-type]
    assert sent == [b"hello+data+status\n", b"full\n", b"status-2\n"]


async def test_a_leader_of_another_user_is_refused(
    plane: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving() as server, Client(config(server, plane)) as leader:
        # This process runs as another user from now on, as far as the plane
        # asks (the kernel gives the socket's other end's: the leader's).
        monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
        async with Client(config(server, plane)) as stranger:
            assert stranger.plane_role is None
            assert await value(stranger) == "on"  # from its own upstream
        assert leader.plane_role == "leader"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("runs as another user" in e for e in errors), errors


async def test_a_socket_another_program_listens_on_is_left_as_it_is(
    plane: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with await anyio.create_unix_listener(plane) as theirs:
        before = (await anyio.Path(plane).stat()).st_ino
        async with serving() as server, Client(config(server, plane)) as client:
            assert client.plane_role is None  # (no leader serves there)
            assert await value(client) == "on"  # from its own upstream
        assert (await anyio.Path(plane).stat()).st_ino == before  # theirs, still
        assert theirs.extra(anyio.abc.SocketAttribute.local_address) == plane
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "listens on" in error and "left as it is" in error


def _flagd_flag(value: str) -> dict[str, Any]:
    return {"state": "ENABLED", "variants": {"v": value}, "defaultVariant": "v"}


def _flagd(target: str, selector: str, plane: str) -> Config:
    system = DataSystem.flagd(target, selector=selector, deadline=30.0, plane=plane)
    return Config(data_system=system, send_events=False, ready_timeout=10.0)


@pytest.mark.slow
@pytest.mark.parametrize("other", ["selector", "server"])
async def test_row234_N1_another_flagd_source_on_the_path_is_refused_naming_both(
    plane: str, other: str, caplog: pytest.LogCaptureFixture
) -> None:
    """row 234 / N1: a flagd app of another selector (or another sync server) on the path is refused, never serving the leader's flags; one WARNING and one ERROR, each naming both sources."""
    from aioflags.testing import FlagdServer

    first = {"a": {"flags": {"banner": _flagd_flag("from-A")}}}
    second = {"a": {"flags": {"banner": _flagd_flag("from-B")}}}
    if other == "selector":
        first["b"] = second.pop("a")
    async with (
        FlagdServer(sources=first) as server,
        FlagdServer(sources=second or {"none": {"flags": {}}}) as another,
    ):
        theirs = server if other == "selector" else another
        selector = "source=b" if other == "selector" else "source=a"
        async with (
            Client(_flagd(server.target, "source=a", plane)) as leader,
            Client(_flagd(theirs.target, selector, plane)) as stranger,
        ):
            assert leader.plane_role == "leader"
            assert stranger.plane_role is None  # its own sync stream
            assert await value(stranger, "banner") == "from-B"
            assert await value(leader, "banner") == "from-A"
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.WARNING, logging.ERROR]
    mine = (
        f"flagd at {server.target} (selector 'source=a', fractional v3,"
        " evaluators shared)"
    )
    stranger_source = (
        f"flagd at {theirs.target} (selector {selector!r}, fractional v3,"
        " evaluators shared)"
    )
    for record in refusals:
        said = record.getMessage()
        assert plane in said and mine in said and stranger_source in said, said


async def test_row234_N1_the_hello_names_the_flag_source() -> None:
    """row 234 / N1: a flagd process's hello carries its source (target, selector, provider id, fractional), cut short to fit the hello's bound; the environment is the source's."""
    from aioflags._datasystem._plane import _wire as wire
    from aioflags._systems._flagd._plane import plane_source as flagd_source

    source = flagd_source("127.0.0.1:8015", "source=a b", "web-1", 2)
    assert source == (
        "flagd at 127.0.0.1:8015 (selector 'source=a b', provider id 'web-1',"
        " fractional v2, evaluators shared)"
    )
    others = [
        flagd_source("127.0.0.1:8016", "source=a b", "web-1", 2),
        flagd_source("127.0.0.1:8015", "source=b", "web-1", 2),
        flagd_source("127.0.0.1:8015", "source=a b", "web-2", 2),
        flagd_source("127.0.0.1:8015", "source=a b", "web-1", 3),
        None,
    ]
    environment = wire.environment_of(None, None, source, "flagd")
    assert environment == wire.environment_of("sdk-key", "mobile", source, "flagd")
    assert all(
        wire.environment_of(None, None, o, "flagd") != environment for o in others
    )
    said = wire.read_hello(wire.hello(environment, source=source))
    assert said == wire.Hello(wire.VERSION, environment, None, source)
    # A long source and a refusal naming two: one line within the bound.
    long = flagd_source("unix:/" + "p" * 100, "ü" * 300, "x" * 300, 3)
    line = wire.hello(environment, wire.mismatch(long, long), long)
    assert len(line) <= wire.MAX_HELLO and line.count(b"\n") == 1
    cut = wire.read_hello(line)
    assert cut is not None and cut.source is not None and cut.refused is not None
    assert long.startswith(cut.source) and "another flag source" in cut.refused
    # A hello of before (no source) reads as the SDK key's environment.
    assert wire.read_hello(b"aioflags-plane 1 abc\n") == wire.Hello(1, "abc", None)


@pytest.mark.slow
async def test_J1_a_change_set_the_plane_cannot_carry_is_refused_and_the_leader_leads_on(
    plane: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """J1: a flagd document the reader takes but the plane cannot write as JSON (a value nested
    past what the encoder follows from the leader's stack) is refused whole before the store
    applies it: no source ends, leader and follower keep the last good data, STALE said in one
    line, and the next good document is taken by both (on 701b12d the leader's data system crashed)."""
    from aioflags._datasystem import _mirror
    from aioflags.testing import FlagdServer

    event_of = _mirror.event_of

    def deep_here(change: Any) -> str | None:
        # The real trigger (a value ~970 levels deep) sits on a boundary that moves
        # with the stack; the encoder's RecursionError is raised here for it.
        if "poison" in json.dumps(change.obj):
            raise RecursionError("maximum recursion depth exceeded while encoding")
        return event_of(change)

    monkeypatch.setattr(_mirror, "event_of", deep_here)

    def document(value: str) -> dict[str, Any]:
        return {"flags": {"f": _flagd_flag(value)}}

    async with (
        FlagdServer(document("one")) as server,
        Client(_flagd(server.target, "", plane)) as leader,
        Client(_flagd(server.target, "", plane)) as follower,
    ):
        assert (leader.plane_role, follower.plane_role) == ("leader", "follower")
        stale = anyio.Event()
        leader.add_handler(aioflags.ProviderEvent.STALE, lambda _: stale.set())
        server.set_document(document("poison"))
        with anyio.fail_after(30):  # (a safety net: the event ends the wait)
            await stale.wait()
        status = leader.data_source_status
        assert status is not None and status.error is not None
        assert "cannot carry" in status.error.message
        assert leader.plane_role == "leader"
        assert await value(leader) == await value(follower) == "one"
        server.set_document(document("two"))
        for client in (leader, follower):
            await until(client, "two")
        assert leader.plane_role == "leader"
        assert leader.status is ProviderStatus.READY
    # One line each: the leader's status, and the follower's (its leader's word).
    refused = [r for r in caplog.records if "cannot carry" in r.getMessage()]
    assert [r.levelno for r in refused] == [logging.WARNING] * 2
    assert "the flag plane's leader" in refused[1].getMessage()
    assert not any("\n" in r.getMessage() for r in refused)
    assert not [
        r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING
    ]
