"""The flag plane with real worker processes (tests/plane_worker.py) on a real Unix socket.

Three workers against the loopback FlagServer: one stream upstream, the
same values everywhere, flips reach every worker; a leader killed with
SIGKILL, or closed with SIGTERM, hands over with no default served and no
change missed; a fork of a process that leads does not take its lock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

from aioflags.testing import FlagServer
from tests.flags import STRING_FLAG

if TYPE_CHECKING:
    from aioflags.testing import FlagdServer

# (timeout: pytest-timeout's net, past GUARD: several processes start in
# each test, and on a loaded machine a test takes minutes, not a hang)
pytestmark = [pytest.mark.asyncio, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
STREAM = "/sdk/stream"
OFF = {**STRING_FLAG, "fallthrough": {"variation": 1}}
#: A safety net against a hang, never a timing: every wait here ends on a
#: line a process prints or a request the server sees. Worker processes
#: import aioflags and start a client; on a loaded machine (issue 97, load
#: 13-15 on two cores) that alone took more than the 10 s these waits had.
GUARD = 120


class Worker:
    """One worker process and the lines it prints."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self._text = TextReceiveStream(process.stdout)
        self._pending = ""
        self.lines: list[str] = []

    async def until(self, line: str) -> None:
        """Read its lines until ``line`` (every line is kept)."""
        with anyio.fail_after(GUARD):
            while line not in self.lines:
                if "\n" not in self._pending:
                    self._pending += await self._text.receive()
                    continue
                one, self._pending = self._pending.split("\n", 1)
                self.lines.append(one)

    async def next_line(self) -> None:
        """Until it prints one more line."""
        count = len(self.lines)
        while len(self.lines) == count:
            if "\n" not in self._pending:
                self._pending += await self._text.receive()
                continue
            one, self._pending = self._pending.split("\n", 1)
            self.lines.append(one)

    @property
    def role(self) -> str | None:
        roles = [line.split()[1] for line in self.lines if line.startswith("role ")]
        return roles[-1] if roles else None


async def first_to(some: list[Worker], line: str) -> Worker:
    """The first of ``some`` to print ``line``."""
    found: list[Worker] = []
    async with anyio.create_task_group() as group:
        for worker in some:

            async def wait(worker: Worker = worker) -> None:
                await worker.until(line)
                found.append(worker)
                group.cancel_scope.cancel()

            group.start_soon(wait)
    return found[0]


@asynccontextmanager
async def workers(
    plane: str,
    url: str,
    count: int,
    mode: str = "serve",
    *more: str,
    stderr: int | None = None,
) -> AsyncIterator[list[Worker]]:
    """``count`` worker processes (``more``: their further arguments; ``stderr``: subprocess.PIPE to read it)."""
    async with AsyncExitStack() as stack:
        started = []
        for _ in range(count):
            argv = [sys.executable, "-m", "tests.plane_worker", mode, plane, url]
            process = await stack.enter_async_context(
                await anyio.open_process([*argv, *more], cwd=ROOT, stderr=stderr)
            )
            started.append(Worker(process))
        try:
            yield started
        finally:
            for worker in started:
                if worker.process.returncode is None:
                    worker.process.kill()


async def test_workers_share_one_stream_and_hand_over_when_the_leader_is_killed(
    tmp_path: Path,
) -> None:
    plane = str(tmp_path / "plane")
    async with FlagServer({"f": STRING_FLAG}) as server:
        async with workers(plane, server.url, 3) as every:
            for worker in every:
                await worker.until("value on")
            # Each has taken its role once the value came (leader or follower).
            for worker in every:
                await worker.until(f"role {worker.role}")
            roles = sorted(str(w.role) for w in every)
            assert roles == ["follower", "follower", "leader"]
            assert len(server.requests_to(STREAM)) == 1
            server.set_flag("f", OFF)
            for worker in every:
                await worker.until("value off")

            (leader,) = [w for w in every if w.role == "leader"]
            others = [w for w in every if w is not leader]
            leader.process.send_signal(signal.SIGKILL)
            with anyio.fail_after(GUARD):
                await server.wait_for_requests(STREAM, 2)  # a new leader's upstream
            server.set_flag("f", STRING_FLAG)
            for worker in others:
                await worker.until("value on")
            second = await first_to(others, "role leader")

            # A graceful close hands over too.
            (last,) = [w for w in others if w is not second]
            second.process.send_signal(signal.SIGTERM)
            assert await second.process.wait() == 0
            await last.until("role leader")
            server.set_flag("f", OFF)
            await last.until("value off")
            last.process.send_signal(signal.SIGTERM)
            assert await last.process.wait() == 0
        for worker in every:
            assert "default" not in worker.lines  # never, through every handover
    assert sorted(os.listdir(tmp_path)) == ["plane.lock"]


async def test_a_fork_of_the_leader_does_not_take_its_lock(tmp_path: Path) -> None:
    plane = str(tmp_path / "plane")
    async with FlagServer({"f": STRING_FLAG}) as server:
        result = await anyio.run_process(
            [sys.executable, "-m", "tests.plane_worker", "fork", plane, server.url],
            cwd=ROOT,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    # The child followed its parent, and led once the parent died: it had
    # not kept the parent's lock held with a copy of its file.
    lines = result.stdout.decode().splitlines()
    assert lines == ["parent leader", "child follower", "child leader"]


async def test_the_plane_command_leads_for_the_workers_and_hands_over(
    tmp_path: Path,
) -> None:
    plane = str(tmp_path / "plane")
    async with FlagServer({"f": STRING_FLAG}) as server:
        environment = {
            **os.environ,
            "AIOFLAGS_SDK_KEY": "sdk-key",
            "AIOFLAGS_BASE_URI": server.url,
            "AIOFLAGS_STREAM_URI": server.url,
            "AIOFLAGS_EVENTS_URI": server.url,
        }
        async with await anyio.open_process(
            [sys.executable, "-m", "aioflags", "plane", plane],
            cwd=ROOT,
            env=environment,
        ) as sidecar:
            with anyio.fail_after(GUARD):
                await server.wait_for_requests(STREAM)  # it leads
            async with workers(plane, server.url, 1) as (worker,):
                await worker.until("value on")
                await worker.until("role follower")
                sidecar.send_signal(signal.SIGTERM)
                assert await sidecar.wait() == 0
                await worker.until("role leader")
                assert len(server.requests_to(STREAM)) == 2
                assert not server.requests_to("/bulk")  # (no analytics events)
            assert sidecar.stderr is not None
            said = ""
            with contextlib.suppress(anyio.EndOfStream), anyio.fail_after(GUARD):
                while True:  # (it has exited: read what it said, to its end)
                    said += (await sidecar.stderr.receive()).decode()
        assert f"This process leads the flag plane at {plane}" in said


@asynccontextmanager
async def _uvicorn(
    argv: list[str], environment: dict[str, str]
) -> AsyncIterator[anyio.abc.Process]:
    """uvicorn in a session of its own; its whole process group ends with the test.

    Killing the master alone leaves its workers (multiprocessing's spawned
    children) running: they would go on reconnecting to ports that later
    tests reuse. SIGTERM first (uvicorn stops its workers), SIGKILL to the
    group for what is left.
    """
    async with await anyio.open_process(
        argv, cwd=ROOT, env=environment, start_new_session=True
    ) as uvicorn:
        try:
            yield uvicorn
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(uvicorn.pid, signal.SIGTERM)
            with anyio.move_on_after(10, shield=True):
                await uvicorn.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(uvicorn.pid, signal.SIGKILL)


async def test_uvicorn_workers_keep_one_stream(tmp_path: Path) -> None:
    plane = str(tmp_path / "plane")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with FlagServer({"f": STRING_FLAG}) as server:
        environment = {
            **os.environ,
            "AIOFLAGS_TEST_PLANE": plane,
            "AIOFLAGS_TEST_URL": server.url,
        }
        argv = [sys.executable, "-m", "uvicorn", "tests.plane_app:app"]
        argv += ["--workers", "3", "--port", str(port), "--log-level", "info"]
        async with _uvicorn(argv, environment) as uvicorn:
            await _three_workers(uvicorn, server, port)


async def _three_workers(
    uvicorn: anyio.abc.Process, server: FlagServer, port: int
) -> None:
    assert uvicorn.stderr is not None
    said = ""
    with anyio.move_on_after(GUARD):
        while said.count("Application startup complete") < 3:
            said += (await uvicorn.stderr.receive()).decode()
    assert said.count("Application startup complete") == 3, said
    assert len(server.requests_to(STREAM)) == 1, said
    roles = said.count("leads the flag plane"), said.count("follows the leader")
    assert roles == (1, 2), said
    server.set_flag("f", OFF)
    with anyio.move_on_after(GUARD):  # the flip reaches every worker
        while said.count("flag f serves off") < 3:
            said += (await uvicorn.stderr.receive()).decode()
    assert said.count("flag f serves off") == 3, said
    async with httpx.AsyncClient(timeout=GUARD) as http:
        reply = await http.get(f"http://127.0.0.1:{port}/")
    assert reply.text.startswith("off ")
    assert len(server.requests_to(STREAM)) == 1
    uvicorn.send_signal(signal.SIGTERM)
    assert await uvicorn.wait() == 0


async def test_the_plane_command_ends_cleanly_on_sigterm_as_it_starts(
    tmp_path: Path,
) -> None:
    environment = {
        **os.environ,
        "AIOFLAGS_SDK_KEY": "sdk-key",
        "AIOFLAGS_BASE_URI": "http://127.0.0.1:9",  # (nothing answers: never READY)
        "AIOFLAGS_STREAM_URI": "http://127.0.0.1:9",
        "AIOFLAGS_READY_TIMEOUT": "60",
    }
    async with await anyio.open_process(
        [sys.executable, "-m", "aioflags", "plane", str(tmp_path / "plane")],
        cwd=ROOT,
        env=environment,
    ) as sidecar:
        assert sidecar.stderr is not None
        said = ""
        with anyio.fail_after(GUARD):  # its role: it is starting, not READY
            while "leads the flag plane" not in said:
                said += (await sidecar.stderr.receive()).decode()
        sidecar.send_signal(signal.SIGTERM)
        with anyio.fail_after(GUARD):
            assert await sidecar.wait() == 0


def _rss(pid: int) -> int:
    """A process's resident memory, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")  # pragma: no cover


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_a_hundred_followers_that_never_read_cost_the_leader_little(
    tmp_path: Path,
) -> None:
    """Issue 85, unbounded: 100 followers that never read grow the leader by at most 50 MB (was 4 MB each)."""
    from aioflags._datasystem._plane import _wire as wire

    plane = str(tmp_path / "plane")
    flags = {
        f"f{n}": {**STRING_FLAG, "key": f"f{n}", "variations": ["x" * 100_000, "y"]}
        for n in range(40)
    }
    flags["f"] = STRING_FLAG
    async with (
        FlagServer(flags) as server,
        workers(plane, server.url, 1) as (leader,),
        AsyncExitStack() as stack,
    ):
        await leader.until("value on")
        await leader.until("role leader")
        before = _rss(leader.process.pid)
        hello = wire.hello(wire.environment_of("sdk-key"))
        for _ in range(100):
            stream = await stack.enter_async_context(await anyio.connect_unix(plane))
            await stream.send(hello)
            got = b""
            while len(got) < len(hello) + 1000:  # served: then it reads no more
                got += await stream.receive(len(hello) + 1000 - len(got))
        grown = _rss(leader.process.pid) - before
        assert grown <= 50 * 1024 * 1024, f"{grown / 2**20:.1f} MiB"


async def test_the_plane_command_without_a_key_exits_2(tmp_path: Path) -> None:
    """Issue 85, silent misconfigurations: `aioflags plane` with no SDK key never leads."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIOFLAGS_")}
    with anyio.fail_after(GUARD):  # (it used to lead, with no key, for good)
        result = await anyio.run_process(
            [sys.executable, "-m", "aioflags", "plane", str(tmp_path / "plane")],
            cwd=ROOT,
            env=environment,
            check=False,
        )
    assert result.returncode == 2
    assert "AIOFLAGS_SDK_KEY" in result.stderr.decode()
    assert not (tmp_path / "plane.lock").exists()  # it never tried to lead


@pytest.mark.parametrize("what", ["folder", "relative"])
async def test_the_plane_command_on_an_unusable_path_exits_with_the_error(
    tmp_path: Path, what: str
) -> None:
    """Issue 85, silent misconfigurations: `aioflags plane` on a folder (or a relative path) exits with the error."""
    path = tmp_path / "plane"
    path.mkdir()
    environment = {
        **os.environ,
        "AIOFLAGS_SDK_KEY": "sdk-key",
        "AIOFLAGS_BASE_URI": "http://127.0.0.1:9",
        "AIOFLAGS_STREAM_URI": "http://127.0.0.1:9",
    }
    given = str(path) if what == "folder" else "plane"
    with anyio.fail_after(GUARD):  # (it used to run as a client for good)
        result = await anyio.run_process(
            [sys.executable, "-m", "aioflags", "plane", given],
            cwd=tmp_path,
            env={**environment, "PYTHONPATH": str(ROOT)},
            check=False,
        )
    assert result.returncode == 2
    said = result.stderr.decode()
    if what == "folder":
        assert f"the plane's path {path} is not a socket" in said
    else:
        assert "give an absolute path" in said
    assert path.is_dir()  # left as it is


async def _leader_of(every: list[Worker]) -> Worker:
    for worker in every:
        await worker.until("value on")
    for worker in every:
        await worker.until(f"role {worker.role}")
    (leader,) = [w for w in every if w.role == "leader"]
    return leader


@pytest.mark.parametrize("how", ["SIGSTOP", "blocked loop"])
async def test_a_stopped_leader_holds_no_worker_hostage(
    tmp_path: Path, how: str
) -> None:
    """Issue 85, frozen leader (SIGSTOP; a blocked event loop): followers run solo on fresh data, a worker starting beside it is READY, and all follow again once it runs."""
    plane = str(tmp_path / "plane")
    async with FlagServer({"f": STRING_FLAG}) as server:
        async with workers(plane, server.url, 3) as every:
            leader = await _leader_of(every)
            others = [w for w in every if w is not leader]
            stop = signal.SIGSTOP if how == "SIGSTOP" else signal.SIGUSR1
            leader.process.send_signal(stop)
            server.set_flag("f", OFF)  # a flip after the stop
            for worker in others:
                await worker.until("role solo")
                await worker.until("value off")  # its own upstream's
            async with workers(plane, server.url, 1) as (late,):
                await late.until("value off")  # READY in its start time
                if how == "SIGSTOP":
                    leader.process.send_signal(signal.SIGCONT)
                # The leader answers again: every solo process follows it.
                for worker in [*others, late]:
                    with anyio.fail_after(GUARD):
                        while worker.role != "follower":
                            await worker.next_line()
                with anyio.fail_after(GUARD):
                    await server.wait_until(lambda: server.open_streams(STREAM) == 1)
                server.set_flag("f", STRING_FLAG)
                for worker in [*every, late]:
                    await worker.until("value on")
                assert "default" not in late.lines
        for worker in every:
            assert "default" not in worker.lines


async def test_a_lock_squatted_by_a_process_that_serves_nothing(
    tmp_path: Path,
) -> None:
    """Issue 85, squatted lock (a 0666 lock another process holds; another host on a shared volume): workers run solo, then lead once it goes."""
    plane = str(tmp_path / "plane")
    squat = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        await anyio.open_process(
            [sys.executable, "-c", squat, plane + ".lock"]
        ) as squatter,
    ):
        assert squatter.stdout is not None
        with anyio.fail_after(GUARD):
            assert (await squatter.stdout.receive()).startswith(b"held")
        async with workers(plane, server.url, 2) as every:
            for worker in every:
                await worker.until("role solo")
                await worker.until("value on")
            server.set_flag("f", OFF)
            for worker in every:
                await worker.until("value off")
            squatter.kill()  # the lock is free: one leads, the other follows it
            first = await first_to(every, "role leader")
            (other,) = [w for w in every if w is not first]
            await other.until("role follower")
            with anyio.fail_after(GUARD):
                await server.wait_until(lambda: server.open_streams(STREAM) == 1)
        for worker in every:
            assert "default" not in worker.lines


async def test_uvicorn_workers_beside_a_stopped_leader_serve_a_later_flip(
    tmp_path: Path,
) -> None:
    """Issue 85, proof: `uvicorn --workers 3` with the leader worker SIGSTOPped: the other workers get a flip made after the stop."""
    plane = str(tmp_path / "plane")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with FlagServer({"f": STRING_FLAG}) as server:
        environment = {
            **os.environ,
            "AIOFLAGS_TEST_PLANE": plane,
            "AIOFLAGS_TEST_URL": server.url,
        }
        argv = [sys.executable, "-m", "uvicorn", "tests.plane_app:app"]
        argv += ["--workers", "3", "--port", str(port), "--log-level", "info"]
        async with _uvicorn(argv, environment) as uvicorn:
            leader = 0
            try:
                assert uvicorn.stderr is not None
                said = ""
                with anyio.fail_after(GUARD):
                    while said.count("Application startup complete") < 3:
                        said += (await uvicorn.stderr.receive()).decode()
                (line,) = [x for x in said.splitlines() if "leads the flag plane" in x]
                leader = int(line.split()[0])
                os.kill(leader, signal.SIGSTOP)
                server.set_flag("f", OFF)
                with anyio.fail_after(GUARD):
                    while said.count("flag f serves off") < 2:
                        said += (await uvicorn.stderr.receive()).decode()
                served = [x for x in said.splitlines() if "flag f serves off" in x]
                assert len({x.split()[0] for x in served}) == 2
                assert str(leader) not in {x.split()[0] for x in served}
            finally:
                if leader:
                    os.kill(leader, signal.SIGCONT)


async def test_a_leader_whose_data_system_crashed_hands_over(tmp_path: Path) -> None:
    """Issue 85, a crashed leader: it frees the lock at once, another worker leads, the crashed one follows it; no default."""
    plane = str(tmp_path / "plane")
    async with FlagServer({"f": STRING_FLAG}) as server:
        async with workers(plane, server.url, 1, "crash") as (crashed,):
            await crashed.until("value on")  # (it led, then its data system crashed)
            async with workers(plane, server.url, 1) as (other,):
                await other.until("role leader")
                await crashed.until("role follower")
                server.set_flag("f", OFF)
                await crashed.until("value off")  # from the new leader
                await other.until("value off")
        for worker in (crashed, other):
            assert "default" not in worker.lines


FLAGD_ON: dict[str, object] = {
    "state": "ENABLED",
    "variants": {"on": "on", "off": "off"},
    "defaultVariant": "on",
}


async def test_uvicorn_workers_keep_one_flagd_sync_stream(tmp_path: Path) -> None:
    """docs/flagd.md's walk: four uvicorn workers, one sync connection to flagd."""
    from aioflags.testing import FlagdServer

    plane = str(tmp_path / "plane")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with FlagdServer({"flags": {"f": FLAGD_ON}}) as server:
        environment = {
            **os.environ,
            "AIOFLAGS_TEST_PLANE": plane,
            "AIOFLAGS_TEST_FLAGD": server.target,
        }
        argv = [sys.executable, "-m", "uvicorn", "tests.plane_app:app"]
        argv += ["--workers", "4", "--port", str(port), "--log-level", "info"]
        async with _uvicorn(argv, environment) as uvicorn:
            assert uvicorn.stderr is not None
            said = ""
            with anyio.move_on_after(GUARD):
                while said.count("Application startup complete") < 4:
                    said += (await uvicorn.stderr.receive()).decode()
            assert said.count("Application startup complete") == 4, said
            roles = said.count("leads the flag plane"), said.count("follows the leader")
            assert roles == (1, 3), said
            # One sync stream for the host: the leader's (READY came with
            # its first fetch; the stream follows it).
            with anyio.fail_after(GUARD):
                await server.wait_until(lambda s: s.open_streams >= 1)
            assert (server.streams_opened, server.open_streams) == (1, 1), said
            fetches = [c for c in server.calls if c.method == "FetchAllFlags"]
            assert len(fetches) == 1, said
            async with httpx.AsyncClient(timeout=GUARD) as http:
                for _ in range(8):
                    answer = await http.get(f"http://127.0.0.1:{port}/")
                    assert answer.text.split()[0] == "on", answer.text
            server.set_flag("f", {**FLAGD_ON, "defaultVariant": "off"})
            with anyio.move_on_after(GUARD):  # the change reaches every worker
                while said.count("flag f serves off") < 4:
                    said += (await uvicorn.stderr.receive()).decode()
            assert said.count("flag f serves off") == 4, said


def _without_flag_settings() -> dict[str, str]:
    """This process's environment without any AIOFLAGS_, LAUNCHDARKLY_ or FLAGD_ variable."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIOFLAGS_", "LAUNCHDARKLY_", "FLAGD_"))
    }


def _flagd_flag(value: str) -> dict[str, object]:
    return {"state": "ENABLED", "variants": {"v": value}, "defaultVariant": "v"}


async def _stderr_of(process: anyio.abc.Process) -> str:
    """What a process that has ended wrote on its stderr (a pipe)."""
    assert process.stderr is not None
    said = b""
    with contextlib.suppress(anyio.EndOfStream), anyio.fail_after(GUARD):
        while True:
            said += await process.stderr.receive()
    return said.decode()


async def _terminated(worker: Worker) -> str:
    """SIGTERM, its exit 0, and what it wrote on stderr."""
    worker.process.send_signal(signal.SIGTERM)
    with anyio.fail_after(GUARD):
        assert await worker.process.wait() == 0
    return await _stderr_of(worker.process)


async def test_row234_N1_apps_of_two_flagd_selectors_on_one_path_do_not_share(
    tmp_path: Path,
) -> None:
    """row 234 / N1: two apps given one plane path, flagd selectors source=a and source=b: the second is refused (it never serves the first's flags), both sides naming both sources."""
    from aioflags.testing import FlagdServer

    plane = str(tmp_path / "plane")
    sources = {
        "a": {"flags": {"f": _flagd_flag("from-A")}},
        "b": {"flags": {"f": _flagd_flag("from-B")}},
    }
    async with (
        FlagdServer(sources=sources) as server,
        workers(
            plane, server.target, 1, "flagd", "source=a", stderr=subprocess.PIPE
        ) as (first,),
    ):
        await first.until("value from-A")
        await first.until("role leader")
        async with workers(
            plane, server.target, 1, "flagd", "source=b", stderr=subprocess.PIPE
        ) as (second,):
            await second.until("value from-B")  # (it followed A: from-A)
            assert second.role == "None"  # (its own sync stream, no plane)
            assert "value from-A" not in second.lines
            refused = await _terminated(second)
        leader_said = await _terminated(first)
    (error,) = [line for line in refused.splitlines() if "cannot be used" in line]
    assert plane in error and "'source=a'" in error and "'source=b'" in error
    (warning,) = [line for line in leader_said.splitlines() if "refused" in line]
    assert plane in warning and "'source=a'" in warning and "'source=b'" in warning


async def test_row233_N2_the_plane_command_leads_a_flagd_plane_from_FLAGD_variables(
    tmp_path: Path,
) -> None:
    """row 233 / N2: `aioflags plane PATH` with FLAGD_RESOLVER=in-process and no SDK key leads flagd's sync stream for flagd workers, and hands over."""
    from aioflags.testing import FlagdServer

    plane = str(tmp_path / "plane")
    async with FlagdServer({"flags": {"f": FLAGD_ON}}) as server:
        host, port = server.target.rsplit(":", 1)
        environment = {
            **_without_flag_settings(),
            "FLAGD_RESOLVER": "in-process",
            "FLAGD_HOST": host,
            "FLAGD_PORT": port,
        }
        async with await anyio.open_process(
            [sys.executable, "-m", "aioflags", "plane", plane],
            cwd=ROOT,
            env=environment,
        ) as sidecar:
            with anyio.fail_after(GUARD):  # it leads: the host's sync stream
                await server.wait_until(lambda s: s.open_streams == 1)
            async with workers(plane, server.target, 1, "flagd", "") as (worker,):
                await worker.until("value on")
                await worker.until("role follower")
                assert server.streams_opened == 1
                server.set_flag("f", {**FLAGD_ON, "defaultVariant": "off"})
                await worker.until("value off")
                sidecar.send_signal(signal.SIGTERM)
                with anyio.fail_after(GUARD):
                    assert await sidecar.wait() == 0
                await worker.until("role leader")
                assert "default" not in worker.lines
            said = await _stderr_of(sidecar)
    assert f"This process leads the flag plane at {plane}" in said, said


@pytest.mark.parametrize("given", ["FLAGD_HOST alone", "a flag file"])
async def test_row233_N2_the_plane_command_says_what_a_flagd_plane_needs(
    tmp_path: Path, given: str
) -> None:
    """row 233 / N2: FLAGD_* without FLAGD_RESOLVER and no key, or flagd's file resolver: exit 2 with one line naming FLAGD_RESOLVER (not "needs the SDK key" alone)."""
    environment = _without_flag_settings()
    if given == "FLAGD_HOST alone":
        environment |= {"FLAGD_HOST": "127.0.0.1", "FLAGD_PORT": "9"}
    else:
        environment |= {
            "FLAGD_RESOLVER": "file",
            "FLAGD_OFFLINE_FLAG_SOURCE_PATH": str(tmp_path / "flags.json"),
        }
    with anyio.fail_after(GUARD):
        result = await anyio.run_process(
            [sys.executable, "-m", "aioflags", "plane", str(tmp_path / "plane")],
            cwd=ROOT,
            env=environment,
            check=False,
        )
    assert result.returncode == 2
    (line,) = [x for x in result.stderr.decode().splitlines() if "error:" in x]
    assert "FLAGD_RESOLVER" in line, line
    if given == "a flag file":
        assert "FLAGD_RESOLVER=in-process" in line
    assert not (tmp_path / "plane.lock").exists()  # it never tried to lead


async def _first_upstream(flagd: FlagdServer, launchdarkly: FlagServer) -> str:
    """Which of the two a plane that leads streams from first: "flagd" or "LaunchDarkly"."""
    led: list[str] = []
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as group:

            async def from_flagd() -> None:
                await flagd.wait_until(lambda s: s.open_streams >= 1)
                led.append("flagd")
                group.cancel_scope.cancel()

            async def from_launchdarkly() -> None:
                await launchdarkly.wait_for_requests(STREAM)
                led.append("LaunchDarkly")
                group.cancel_scope.cancel()

            group.start_soon(from_flagd)
            group.start_soon(from_launchdarkly)
    return led[0]


@pytest.mark.parametrize("resolver", ["in-process", None])
async def test_row233_N2_with_an_SDK_key_too_the_plane_command_leads_what_workers_read(
    tmp_path: Path, resolver: str | None
) -> None:
    """row 233 / N2, an SDK key set too: FLAGD_RESOLVER=in-process leads flagd's plane, as the workers' Config.from_env() reads flagd then (the key is not flagd's), with no word; FLAGD_* without FLAGD_RESOLVER leads the key's environment, saying so in one warning line naming FLAGD_RESOLVER."""
    from aioflags.testing import FlagdServer

    plane = str(tmp_path / "plane")
    async with (
        FlagdServer({"flags": {"f": FLAGD_ON}}) as flagd,
        FlagServer({"f": STRING_FLAG}) as launchdarkly,
    ):
        host, port = flagd.target.rsplit(":", 1)
        environment = {
            **_without_flag_settings(),
            "AIOFLAGS_SDK_KEY": "sdk-key",
            "AIOFLAGS_BASE_URI": launchdarkly.url,
            "AIOFLAGS_STREAM_URI": launchdarkly.url,
            "AIOFLAGS_EVENTS_URI": launchdarkly.url,
            "FLAGD_HOST": host,
            "FLAGD_PORT": port,
        }
        if resolver is not None:
            environment["FLAGD_RESOLVER"] = resolver
        async with await anyio.open_process(
            [sys.executable, "-m", "aioflags", "plane", plane],
            cwd=ROOT,
            env=environment,
        ) as sidecar:
            led = await _first_upstream(flagd, launchdarkly)
            sidecar.send_signal(signal.SIGTERM)
            with anyio.fail_after(GUARD):
                assert await sidecar.wait() == 0
            said = await _stderr_of(sidecar)
    assert f"This process leads the flag plane at {plane}" in said, said
    warnings = [line for line in said.splitlines() if line.startswith("warning:")]
    if resolver is not None:
        assert led == "flagd", said
        assert launchdarkly.requests == []
        assert warnings == [], said
    else:
        assert led == "LaunchDarkly", said
        assert flagd.calls == []
        (warning,) = warnings
        assert "SDK key" in warning and "FLAGD_RESOLVER" in warning, warning


async def test_J6_a_follower_itself_stopped_for_3_s_keeps_following(
    tmp_path: Path,
) -> None:
    """J6: a follower SIGSTOPped 3 s and more, then SIGCONTed, does not blame its leader (no solo, no stream of its own), and no process logs asyncio's InvalidStateError."""
    plane = str(tmp_path / "plane")
    async with (
        FlagServer({"f": STRING_FLAG}) as server,
        workers(plane, server.url, 2, stderr=subprocess.PIPE) as every,
    ):
        leader = await _leader_of(every)
        (follower,) = [w for w in every if w is not leader]
        for flip, value in [(OFF, "off"), (STRING_FLAG, "on"), (OFF, "off")]:
            seen = follower.lines.count(f"value {value}")
            follower.process.send_signal(signal.SIGSTOP)
            # (the stimulus, not a wait for a condition: a stop past the
            # leader's 3 s of silence, as the follower measures it)
            await anyio.sleep(3.5)
            follower.process.send_signal(signal.SIGCONT)
            server.set_flag("f", flip)  # it comes through the leader
            with anyio.fail_after(GUARD):
                while follower.lines.count(f"value {value}") == seen:
                    await follower.next_line()
            assert follower.role == "follower", follower.lines
        assert "role solo" not in follower.lines
        assert len(server.requests_to(STREAM)) == 1  # the leader's alone
        said = [await _terminated(w) for w in every]
    for text in said:
        assert "InvalidStateError" not in text and "Traceback" not in text, text
        assert "cannot follow" not in text, text


async def test_J1_a_flagd_document_the_leader_cannot_use_stops_no_worker(
    tmp_path: Path,
) -> None:
    """Issue 94: the leader refuses it, keeps leading and its data; the next good one reaches all."""
    from aioflags.testing import FlagdServer

    plane = str(tmp_path / "plane")
    # A sync context nested past protobuf's limit: no reader takes it.
    deep: dict[str, object] = {}
    for _ in range(101):
        deep = {"a": deep}
    async with FlagdServer({"flags": {"f": FLAGD_ON}}) as server:
        async with workers(plane, server.target, 3, mode="flagd") as every:
            for worker in every:
                await worker.until("value on")
            for worker in every:
                await worker.until(f"role {worker.role}")
            (leader,) = [w for w in every if w.role == "leader"]
            streams = server.streams_opened
            server.set_sync_context(deep)
            with anyio.fail_after(GUARD):  # refused, and tried again (backoff: 1 s)
                await server.wait_until(lambda s: s.streams_opened >= streams + 1)
            server.set_sync_context(None)
            server.set_flag("f", {**FLAGD_ON, "defaultVariant": "off"})
            for worker in every:
                await worker.until("value off")
            assert [w for w in every if w.role == "leader"] == [leader]
            for worker in every:
                assert "role solo" not in worker.lines
                assert worker.process.returncode is None
        for worker in every:
            assert "default" not in worker.lines
