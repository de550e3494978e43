"""Nothing a web page or a client sends can crash, stall or bloat the flag service.

Each case of issue 48's S/N list runs against the real thing twice: an
in-process ``FlagServer`` (what tests and the pytest plugin use, behind its
connection-counting relay) and an ``aioflags serve`` process. After every
hostile request the service must still answer a normal one; a process must
still be running.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import anyio
import anyio.abc
import anyio.lowlevel
import httpx
import pytest

from aioflags._service import _console as console
from aioflags.testing import FlagServer, Limits
from tests.flags import BOOL_FLAG
from tests.processes import HTTP_GUARD, ended

#: The service's bounds, as every FlagServer and `aioflags serve` has them.
LIMITS = Limits()
MAX_BODY = LIMITS.max_body
MAX_EVENTS_BODY = LIMITS.max_events_body
STREAM_QUEUE_BYTES = LIMITS.stream_queue_bytes

#: Real sockets, held open or flooded, and an ``aioflags serve`` process per case.
pytestmark = pytest.mark.slow

FLAGS = {"f": BOOL_FLAG}
KINDS = pytest.mark.parametrize("kind", ["FlagServer", "serve"])
DEEP = b"[" * 100_000 + b"]" * 100_000
#: A guard against a hang, never a timing the test relies on.
GUARD = 30
#: The same for a request that waits behind a backlog of held connections.
BACKLOG_GUARD = 120


@dataclass
class Service:
    url: str
    process: subprocess.Popen[str] | None
    server: FlagServer | None

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host.strip("[]"), int(port)

    async def token(self, http: httpx.AsyncClient) -> str:
        page = (await http.get("/ui/")).text
        found = re.search(r'name="aioflags-token" content="([^"]+)"', page)
        assert found is not None
        return found.group(1)

    async def still_serves(self, http: httpx.AsyncClient) -> None:
        """The service answers a normal request, and its process runs."""
        if self.process is not None:
            assert self.process.poll() is None, self.process.stderr
        answer = await http.get("/sdk/latest-all")
        assert answer.status_code == 200
        assert "f" in answer.json()["flags"]


def _start_serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": FLAGS}))
    process = subprocess.Popen(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert " at " in first, process.communicate(timeout=GUARD)
    return process, first.rsplit(" at ", 1)[1].strip()


def _stop(process: subprocess.Popen[str]) -> None:
    ended(process)


@contextlib.asynccontextmanager
async def service(
    kind: str, tmp_path: Path
) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    if kind == "FlagServer":
        async with (
            FlagServer(FLAGS) as server,
            httpx.AsyncClient(base_url=server.url, timeout=GUARD) as http,
        ):
            yield Service(server.url, None, server), http
        return
    process, url = _start_serve(tmp_path)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=GUARD) as http:
            yield Service(url, process, None), http
    finally:
        _stop(process)


async def _raw(service: Service, data: bytes) -> bytes:
    """Send raw bytes on a new connection; everything answered until it closes."""
    host, port = service.host_port
    answer = b""
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(data)
        with anyio.fail_after(GUARD), contextlib.suppress(anyio.EndOfStream):
            while True:
                answer += await stream.receive()
    return answer


# ------------------------------------------------------------------ S1
@KINDS
@pytest.mark.asyncio
async def test_s1_a_path_urlsplit_refuses_is_a_404_not_a_crash(
    kind: str, tmp_path: Path
) -> None:
    async with service(kind, tmp_path) as (svc, http):
        for target in (b"//[x", b"/sdk/poll?[", b"//[::1", b"/%ff%fe"):
            answer = await _raw(
                svc,
                b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
                b"Connection: close\r\n\r\n",
            )
            assert answer.startswith(b"HTTP/1.1 "), answer[:80]
            await svc.still_serves(http)


# ------------------------------------------------------------------ S2
@KINDS
@pytest.mark.asyncio
async def test_s2_malformed_posts_are_refused_one_by_one(
    kind: str, tmp_path: Path
) -> None:
    async with service(kind, tmp_path) as (svc, http):
        token = await svc.token(http)
        ui = {"x-aioflags-token": token}
        cases: list[tuple[str, bytes, dict[str, str]]] = [
            ("/bulk", b'[{"kind":"feature","key":[1]}]', {}),
            ("/bulk", b'[{"kind":"summary","features":{"f":{"counters":[1]}}}]', {}),
            ("/bulk", DEEP, {}),
            ("/diagnostic", DEEP, {}),
            ("/ui/api/flag", DEEP, ui),
            ("/ui/api/flag", b'{"key": [1], "on": true}', ui),
            ("/bulk", b"\x1f\x8b\x08\x00garbage", {"content-encoding": "gzip"}),
            ("/bulk", gzip.compress(b"[")[:-4], {"content-encoding": "gzip"}),
            ("/bulk", b"\xff\xfe", {}),
            ("/bulk", b"NaN", {}),
        ]
        for path, body, headers in cases:
            answer = await http.post(path, content=body, headers=headers)
            assert answer.status_code < 500, (path, body[:40], answer.text)
            await svc.still_serves(http)


@pytest.mark.asyncio
async def test_s2_a_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    bomb = gzip.compress(b"[" + b" " * (256 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < MAX_EVENTS_BODY
    async with service("FlagServer", tmp_path) as (svc, http):
        answer = await http.post(
            "/bulk", content=bomb, headers={"content-encoding": "gzip"}
        )
        assert answer.status_code == 400
        assert svc.server is not None and svc.server.events == []
        await svc.still_serves(http)


# ------------------------------------------------------------------ S3
@pytest.mark.asyncio
async def test_s3_a_stream_that_stops_reading_collapses_to_one_full_payload(
    tmp_path: Path,
) -> None:
    """Issue 60, F2: a stalled stream holds at most STREAM_QUEUE_BYTES, then catches up."""
    async with service("FlagServer", tmp_path) as (svc, http):
        server = svc.server
        assert server is not None
        host, port = svc.host_port
        async with await anyio.connect_tcp(host, port) as stalled:
            await stalled.send(b"GET /sdk/stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
            with anyio.fail_after(GUARD):
                await server.wait_for_stream()
            (subscriber,) = server._fanout._subscribers.values()
            # Never read; 32 MiB of changes, past any socket buffer.
            big = {**BOOL_FLAG, "description": "x" * 65536}
            for flip in range(512):
                server.set_flag("f", {**big, "on": flip % 2 == 0})
                assert subscriber.outbox.queued_bytes <= STREAM_QUEUE_BYTES
                if flip % 64 == 0:
                    await anyio.lowlevel.checkpoint()  # let the stream's task run
            assert subscriber.outbox.collapsed >= 1
            assert server.open_streams() == 1  # kept, not dropped
            # Reading again, the client gets one full transfer of the latest data.
            received = b""
            with anyio.fail_after(GUARD):
                while server.state.encode() not in received:
                    received += await stalled.receive()
            assert b"xfer-full" in received.split(b"payload-transferred", 1)[1]
        await svc.still_serves(http)


@KINDS
@pytest.mark.asyncio
async def test_s3_clients_that_reset_while_flags_change_do_not_end_the_service(
    kind: str, tmp_path: Path
) -> None:
    async with service(kind, tmp_path) as (svc, http):
        host, port = svc.host_port
        for n in range(20):
            async with await anyio.connect_tcp(host, port) as stream:
                await stream.send(
                    b"GET /sdk/stream HTTP/1.1\r\nHost: localhost\r\n\r\n"
                )
                with anyio.fail_after(GUARD):
                    await stream.receive(1)
                if svc.server is not None:
                    svc.server.set_flag("f", {**BOOL_FLAG, "on": n % 2 == 0})
                # A reset (RST), not a clean close.
                raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                raw.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
        await svc.still_serves(http)


# ------------------------------------------------------------------ S4
@pytest.mark.asyncio
async def test_s4_a_client_that_never_finishes_its_headers_is_dropped(
    tmp_path: Path,
) -> None:
    async with service("FlagServer", tmp_path) as (svc, http):
        host, port = svc.host_port
        async with anyio.create_task_group() as tg:
            closed = 0

            async def slowloris() -> None:
                nonlocal closed
                async with await anyio.connect_tcp(host, port) as stream:
                    await stream.send(b"GET /sdk/poll HTTP/1.1\r\nHost: local")
                    with (
                        anyio.fail_after(GUARD),
                        contextlib.suppress(
                            anyio.EndOfStream, anyio.BrokenResourceError
                        ),
                    ):
                        while await stream.receive():
                            pass
                closed += 1

            for _ in range(50):
                tg.start_soon(slowloris)
        assert closed == 50  # each was closed by the service's idle timeout
        await svc.still_serves(http)


_EMFILE_SCRIPT = """
import resource, socket, sys, anyio, httpx
from aioflags.testing import FlagServer

async def main():
    async with FlagServer({"f": {"on": True, "variations": [True, False],
                                 "fallthrough": {"variation": 0}}}) as server:
        host, port = server.url[7:].rsplit(":", 1)
        async with httpx.AsyncClient(timeout=60, base_url=server.url) as http:
            await http.get("/sdk/latest-all")
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (60, hard))
            held = []
            for _ in range(80):
                try:
                    held.append(socket.create_connection((host, int(port))))
                except OSError:
                    break
            with anyio.fail_after(30):
                await anyio.sleep(0.5)  # let the accept loop hit EMFILE
            for sock in held:
                sock.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            with anyio.fail_after(30):
                while True:
                    try:
                        answer = await http.get("/sdk/latest-all")
                        break
                    except httpx.TransportError:
                        await anyio.sleep(0.2)
            print(answer.status_code)

anyio.run(main)
"""


def test_s4_running_out_of_file_descriptors_is_survived() -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_EMFILE_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "200"


def _lines_until(process: subprocess.Popen[str], text: str) -> list[str]:
    """The process's stderr lines up to the first containing ``text`` (a guard: GUARD s)."""
    assert process.stderr is not None
    lines: list[str] = []
    deadline = GUARD * 10  # lines, not seconds: a flood fails fast
    while not lines or text not in lines[-1]:
        line = process.stderr.readline()
        assert line, f"ended without {text!r}: {lines[-20:]}"
        lines.append(line)
        assert len(lines) < deadline, f"flooded: {lines[:5]} ..."
    return lines


@pytest.mark.asyncio
async def test_f7_out_of_file_descriptors_serve_logs_one_line_and_its_end(
    tmp_path: Path,
) -> None:
    """Issue 60, F7: asyncio logged a traceback per failed accept (52,862 in 16 s)."""
    import resource

    process, url = _start_serve(tmp_path)
    try:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        hard = resource.prlimit(process.pid, resource.RLIMIT_NOFILE)[1]
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (32, hard))
        held = [socket.create_connection((host, int(port))) for _ in range(64)]
        try:
            with anyio.fail_after(GUARD):
                first = await anyio.to_thread.run_sync(_lines_until, process, "accept")
        finally:
            for sock in held:
                sock.close()
        async with httpx.AsyncClient(base_url=url, timeout=GUARD) as http:
            assert (await http.get("/sdk/latest-all")).status_code == 200
        with anyio.fail_after(GUARD):
            rest = await anyio.to_thread.run_sync(
                _lines_until, process, "accepting connections again"
            )
    finally:
        _stop(process)
    lines = first + rest
    assert "cannot accept connections (Too many open files)" in first[-1]
    assert sum("accept" in line for line in lines) == 2, lines
    assert not any("Traceback" in line or "ERROR" in line for line in lines)


_HELD_SCRIPT = """
import resource, sys, anyio
from aioflags.testing import FlagServer, Limits

async def main():
    async with FlagServer({"f": {"on": True, "variations": [True, False],
                                 "fallthrough": {"variation": 0}}},
                          # (the relay's and Hypercorn's: 5 s in use)
                          limits=Limits(idle_timeout=0.5)) as server:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, hard))
        print(server.url, flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)

anyio.run(main)
"""


def _start_script(
    script: str, stderr: IO[str] | int = subprocess.PIPE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


@pytest.mark.asyncio
async def test_f7_flag_server_serves_again_while_idle_connections_are_held(
    tmp_path: Path,
) -> None:
    """Issue 60, F7: the relay held connections Hypercorn could not accept for ever.

    The app's stderr goes to a file: a FlagServer filters no logger (issue
    77), and asyncio's traceback for each failed accept would fill a pipe
    nobody reads, and stall the process on it.
    """
    with (tmp_path / "stderr").open("w+") as stderr:
        process = _start_script(_HELD_SCRIPT, stderr)
        try:
            await _serves_again_while_held(process)
        finally:  # (its pipes closed too, even if the test failed)
            ended(process, signal.SIGKILL)
        stderr.seek(0)
        errors = stderr.read()
    assert process.returncode == 0, errors[-3000:]
    # asyncio's own records, as for any server of the app: each failed
    # accept (OSError), its retry finding the server closed (ValueError:
    # fd -1), and on 3.11 a connection still open as the server stops
    # (CancelledError out of its task group; 3.12 says nothing). Nothing else.
    ends = _traceback_ends(errors)
    known = {
        "OSError: [Errno 24] Too many open files",
        "ValueError: Invalid file descriptor: -1",
        "asyncio.exceptions.CancelledError",
    }
    assert ends and ends <= known, (ends, errors[-3000:])


def _traceback_ends(text: str) -> set[str]:
    """The exception line that ends each traceback in ``text``."""
    lines = text.splitlines()
    ends = set()
    for n, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            end = n + 1
            while end < len(lines) and (
                lines[end].startswith(" ") or not lines[end].strip()
            ):
                end += 1
            ends.add(lines[end] if end < len(lines) else "(the end)")
    return ends


async def _serves_again_while_held(process: subprocess.Popen[str]) -> None:
    """Hold 100 idle connections; a request is served meanwhile; the app ends."""
    assert process.stdout is not None and process.stdin is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://"), process.communicate(timeout=GUARD)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    held = [socket.create_connection((host, int(port))) for _ in range(100)]
    try:
        # Answered once the 100 held connections before it in the backlog
        # are accepted and closed as idle, about 30 at a time (the file
        # descriptors): seconds, many more on a loaded machine (issue 97).
        async with httpx.AsyncClient(base_url=url, timeout=BACKLOG_GUARD) as http:
            answer = await http.get("/sdk/latest-all")
        assert answer.status_code == 200
    finally:
        for sock in held:
            sock.close()
    process.stdin.write("\n")
    process.stdin.flush()
    process.communicate(timeout=GUARD)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_flag_server_cancelled_as_it_starts_leaves_nothing_behind(
    backend: str,
) -> None:
    """Hypercorn, cancelled while it starts, left its lifespan task pending for
    ever (asyncio) and its socket open: it is stopped, never cancelled."""

    def descriptors() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    async def main() -> tuple[int, int]:
        async with FlagServer(FLAGS):  # (the imports and the loop's own)
            pass
        before = descriptors()
        for checkpoints in range(8):  # cancelled at each point of its start
            with anyio.CancelScope() as scope:
                async with FlagServer(FLAGS):
                    for _ in range(checkpoints):
                        await anyio.lowlevel.checkpoint()
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()
        return before, descriptors()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before, after = anyio.run(main, backend=backend)
    assert after == before


#: A child process's report: how many of its descriptors are a socket
#: listening on the port it is given.
_LISTENERS_INHERITED = """
import os, socket, sys
port, found = int(sys.argv[1]), 0
for fd in os.listdir("/proc/self/fd"):
    try:
        sock = socket.socket(fileno=os.dup(int(fd)))
    except OSError:
        continue  # (not a socket)
    try:
        found += bool(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            and sock.getsockname()[1] == port
        )
    except OSError:
        pass
    finally:
        sock.close()
print(found)
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
@pytest.mark.asyncio
async def test_a_child_process_inherits_no_listening_socket() -> None:
    """A child a test starts (a shell, close_fds=False) inherits no listening
    socket: it would hold the port open after the server stopped."""
    async with FlagServer(FLAGS) as server:
        port = server.url.rsplit(":", 1)[1]
        async with httpx.AsyncClient(base_url=server.url, timeout=GUARD) as http:
            assert (await http.get("/sdk/latest-all")).status_code == 200  # serving
        report = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [sys.executable, "-c", _LISTENERS_INHERITED, port],
                capture_output=True,
                text=True,
                close_fds=False,
                timeout=GUARD,
                check=True,
            )
        )
    assert report.stdout.strip() == "0"


# ------------------------------------------------------------------ S5
@KINDS
@pytest.mark.asyncio
async def test_s5_an_oversized_or_foreign_body_is_refused_before_it_is_read(
    kind: str, tmp_path: Path
) -> None:
    async with service(kind, tmp_path) as (svc, http):
        big = b"[" + b" " * (MAX_EVENTS_BODY + 1) + b"]"
        # Answered on its head, then the connection closes: the client may see
        # the 413 or, still sending, the close.
        with contextlib.suppress(httpx.TransportError):
            answer = await http.post("/bulk", content=big)
            assert answer.status_code == 413
        foreign = {"origin": "http://evil.test", "sec-fetch-site": "cross-site"}
        answer = await http.post("/bulk", content=b"[]" + b" " * 1000, headers=foreign)
        assert answer.status_code == 403
        # Its body unread, the connection ends: said, so that no client puts
        # it back in its pool for the next request to meet the close.
        assert answer.headers["connection"] == "close"
        # No token: refused on its head, the connection closed behind it (the
        # client, still sending, may see the close instead of the 403).
        with contextlib.suppress(httpx.TransportError):
            answer = await http.post("/ui/api/flag", content=b" " * (MAX_BODY + 1))
            assert answer.status_code == 403
        if svc.server is not None:
            assert all(r.body == b"" for r in svc.server.requests if r.path == "/bulk")
        await svc.still_serves(http)


@pytest.mark.asyncio
async def test_s5_a_chunked_body_is_cut_at_the_cap() -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(MAX_EVENTS_BODY // 65536 + 2):
                yield b" " * 65536

        answer = await http.post("/bulk", content=chunks())
        assert answer.status_code == 413
        assert server.requests[-1].body == b""


@pytest.mark.asyncio
async def test_s5_keep_bytes_bounds_the_recorded_bodies() -> None:
    async with (
        FlagServer(FLAGS, keep_bytes=10_000) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        for _ in range(20):
            await http.post("/bulk", content=b"[" + b" " * 2000 + b"]")
        assert sum(len(r.body) for r in server.requests) <= 10_000
        assert len(server.events) == 0  # empty payloads, all received


@pytest.mark.asyncio
async def test_keep_bytes_bounds_the_kept_event_payloads_too() -> None:
    """Issue 60, F2: payloads were kept parsed, bounded by count alone (200 MB a post)."""
    payload = b"[" + b"{}," * 999 + b"{}]"  # 3,000 bytes, 1,000 events
    async with (
        FlagServer(FLAGS, keep_bytes=10_000) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        for _ in range(10):
            assert (await http.post("/bulk", content=payload)).status_code == 202
            await http.post("/diagnostic", content=b'{"kind": "diagnostic"}')
        assert len(server.event_payloads) == 3  # the newest that fit
        assert len(server.events) == 3000
        assert server.diagnostic_events[-1] == {"kind": "diagnostic"}
        assert server._recorder._event_bytes <= 10_000


# ------------------------------------------------------------------ N1-N3
def test_n1_an_ipv6_host_is_printed_in_brackets(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    process, url = _start_serve(tmp_path, "--host", "::1")
    try:
        assert url.startswith("http://[::1]:")
        answer = httpx.get(f"{url}/sdk/latest-all", timeout=GUARD)
        assert answer.status_code == 200
    finally:
        _stop(process)


@pytest.mark.asyncio
async def test_n2_on_a_wildcard_bind_a_rebinding_page_cannot_post_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FlagServer(FLAGS) as server:
        # As bound to 0.0.0.0 (tests may not bind beyond loopback: conftest.py).
        monkeypatch.setattr(server, "_host", "0.0.0.0")
        port = server.url.rsplit(":", 1)[1]
        async with httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http:
            rebound = {"host": f"attacker.example:{port}"}
            answer = await http.post("/bulk", content=b"[]", headers=rebound)
            assert answer.status_code == 403
            by_address = {"host": f"192.0.2.7:{port}"}  # an SDK on the network
            answer = await http.post("/bulk", content=b"[]", headers=by_address)
            assert answer.status_code == 202


def test_n3_bidirectional_controls_are_shown_not_obeyed() -> None:
    key = "admin\N{RIGHT-TO-LEFT OVERRIDE}resu"
    row = console.flag_row({"key": key, "variations": ["a\u2066b"], "on": True})
    assert row["key"] == key  # what a change names, exactly
    assert row["label"] == "admin⟨U+202E⟩resu"
    assert row["variations"] == ["a⟨U+2066⟩b"]  # written out, so visible too


@pytest.mark.asyncio
async def test_an_event_response_has_one_date_the_skewed_one() -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        server.clock_skew = 3600.0
        answer = await http.post("/bulk", content=b"[]")
        dates = answer.headers.get_list("date")
        assert len(dates) == 1
        skew = email.utils.parsedate_to_datetime(dates[0]) - datetime.now(timezone.utc)
        assert 3000 < skew.total_seconds() < 4200


# ------------------------------------------------------------ the extra
_WITHOUT_EXTRA = """
import sys
sys.modules["starlette"] = None  # as if the service extra were not installed
sys.modules["hypercorn"] = None
import anyio
from aioflags.testing import FakeClock, FlagData, FlagServer
from aioflags.ofrep import OFREPApp  # a plain ASGI app: no framework needed

async def main():
    try:
        async with FlagServer():
            pass
    except ModuleNotFoundError as exc:
        print(exc)

anyio.run(main)
"""


def test_without_the_service_extra_the_test_aids_import_and_say_what_to_install() -> (
    None
):
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "pip install 'aioflags[service]'" in result.stdout


def test_keep_and_keep_bytes_together_keep_recording() -> None:
    """Requests past ``keep`` gave their bodies' bytes back to ``keep_bytes``
    only when ``keep_bytes`` trimmed them: the count drifted up until every
    request with a body emptied the history (``serve`` sets both)."""
    from aioflags._asgi._signal import Signal
    from aioflags._service._recorder import RecordedRequest, Recorder

    recorder = Recorder(Signal(), keep=10, keep_bytes=1000)

    def request(body: bytes) -> RecordedRequest:
        return RecordedRequest(
            method="POST", path="/p", query={}, headers={}, body=body
        )

    for _ in range(10):
        recorder.record(request(b"x" * 90))  # 900 bytes kept
    for _ in range(10):
        recorder.record(request(b""))  # the bodies leave with their requests
    recorder.record(request(b"y" * 500))
    assert len(recorder.requests) == 10
    assert recorder.requests[-1].body == b"y" * 500


# ---------------------------------------------------- heads, HTTP/2, methods
@pytest.mark.asyncio
@pytest.mark.parametrize("http2", [False, True])
async def test_a_head_past_max_head_is_a_431_over_http_1_and_2(http2: bool) -> None:
    """Hypercorn bounds a head while it arrives; a whole one is bounded too."""
    async with (
        FlagServer({"f": BOOL_FLAG}) as server,
        httpx.AsyncClient(
            timeout=HTTP_GUARD, base_url=server.url, http1=not http2, http2=http2
        ) as http,
    ):
        big = await http.get("/sdk/latest-all", headers={"x-big": "y" * 17_000})
        assert (big.http_version, big.status_code) == (
            "HTTP/2" if http2 else "HTTP/1.1",
            431,
        )
        assert "16384 bytes" in big.json()["message"]
        fits = await http.get("/sdk/latest-all", headers={"x-big": "y" * 15_000})
        assert fits.status_code == 200


@pytest.mark.asyncio
async def test_a_request_refused_over_http_2_is_answered_and_its_connection_lives() -> (
    None
):
    # Hypercorn's HTTP/2 dropped the whole connection (and logged a KeyError)
    # when an answer came before the body it refused (pgjones/hypercorn#329).
    async with (
        FlagServer({"f": BOOL_FLAG}) as server,
        httpx.AsyncClient(
            timeout=HTTP_GUARD, base_url=server.url, http1=False, http2=True
        ) as http,
    ):
        refused = await http.post("/ui/api/flag", content=b"x" * 40_000)  # no token
        assert (refused.http_version, refused.status_code) == ("HTTP/2", 403)
        assert (await http.get("/sdk/latest-all")).status_code == 200


@pytest.mark.asyncio
async def test_streams_are_opened_by_get_alone() -> None:
    async with (
        FlagServer({"f": BOOL_FLAG}) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        for path in ("/sdk/stream", "/all"):
            posted = await http.post(path)
            assert posted.status_code == 405
            assert set(posted.headers["allow"].split(", ")) == {"GET", "HEAD"}


@pytest.mark.asyncio
@pytest.mark.parametrize("http2", [False, True])
async def test_a_head_too_large_with_a_body_is_answered_431_and_harms_no_other_request(
    http2: bool,
) -> None:
    """Its body is dropped before the answer: a client sending it whole reads
    the 431, not a reset, and over HTTP/2 the connection's other streams live
    (answering first failed the whole connection: hypercorn#329)."""
    async with (
        FlagServer({"f": BOOL_FLAG}) as server,
        httpx.AsyncClient(
            base_url=server.url, http1=not http2, http2=http2, timeout=GUARD
        ) as http,
        http.stream("GET", "/sdk/stream") as stream,
    ):
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("event:")
        big = await http.post(
            "/bulk",
            content=b"[" + b"{}," * 2_000_000 + b"{}]",  # 6 MB, within the events cap
            headers={"x-big": "y" * 17_000},
        )
        assert big.status_code == 431
        server.set_flag("f", {**BOOL_FLAG, "on": not BOOL_FLAG["on"]})
        assert "event:" in " ".join([await anext(lines) for _ in range(3)])
