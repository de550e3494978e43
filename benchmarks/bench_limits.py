"""What an oversized input costs the client: peak memory and the worst event-loop stall.

    python benchmarks/bench_limits.py [--cases bomb,poll,...] [--scale 1.0]
        [--max-bytes N] [--max-changes N] [--smoke]

For each of the SDK's input limits, a raw loopback server (this process)
answers the client's first request with one oversized input, byte for byte,
then closes the connection:

- ``bomb``: a stream whose body is gzip (``Content-Encoding: gzip``): one
  ``data:`` line of 1 GB of zeros that never ends, in about 1 MB;
- ``poll-bomb``: the same as a polling body (1 GB of JSON whitespace);
- ``poll``: a polling body of 200 MB of valid flag data (200,000 flags);
- ``line``: a stream line of 400 MB with no line end;
- ``changes``: a streamed payload of 1,000,000 ``put-object`` events that
  never ends (no ``payload-transferred``).

The client runs in a child process of its own (a fresh heap), with the
data system's one source (a streaming or polling synchronizer) pointed at
the server, after a first client has warmed the imports up, and stops at the
first of: a warning from the data source (the input refused), READY (the
input taken), or the stream closing (the input held until then). Printed for
each: the peak RSS it added (``VmHWM`` of ``/proc/self/status`` at the end,
reset just before the client started, less ``VmRSS`` then: what the input
cost at its worst, Python objects or not; with ``BENCH_TRACEMALLOC=1`` the
child also reports tracemalloc's peak), the worst stall of the event loop (a task sleeping 1 ms at a
time records how late each wake-up is) and its ratio to the worst one while
idle, how long until the outcome, and the outcome (the log line, for a
refusal). ``--scale`` multiplies every size; ``--max-bytes`` and
``--max-changes`` set ``Config.max_payload_bytes`` and
``max_payload_changes`` (the defaults otherwise).

To measure another checkout's ``aioflags`` (the code before a change), put it
first on the path: ``PYTHONPATH=/path/to/checkout python benchmarks/...``;
the first line printed says which one ran (the child imports the same).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

import aioflags

if TYPE_CHECKING:
    from collections.abc import Callable

PERIOD = 0.001  # the probe's sleep, seconds
MB = 1_000_000
CHILD_TIMEOUT = 300.0
#: The checkout this aioflags comes from: the child imports the same.
ROOT = str(Path(aioflags.__file__).resolve().parent.parent)


# ------------------------------------------------------------------ inputs
def _flag(key: str, pad: int = 0) -> dict[str, Any]:
    return {
        "key": key,
        "version": 1,
        "on": True,
        "variations": [True, False],
        "offVariation": 1,
        "fallthrough": {"variation": 0},
        "description": "d" * pad,
    }


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


def _intent() -> bytes:
    payloads = [{"id": "p", "target": 1, "intentCode": "xfer-full"}]
    return _sse("server-intent", json.dumps({"payloads": payloads}))


def _gzip_of_repeated(head: bytes, byte: bytes, size: int) -> bytes:
    """gzip of ``head`` then ``size`` times ``byte``, made a megabyte at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = byte * MB
    out = [compressor.compress(head)]
    out += [compressor.compress(block) for _ in range(size // MB)]
    out.append(compressor.compress(byte * (size % MB)))
    out.append(compressor.flush())
    return b"".join(out)


def bomb(scale: float) -> tuple[bool, bytes, bool]:
    """(a stream?, the body, gzip?): 1 GB of zeros on one line, about 1 MB gzip."""
    body = _gzip_of_repeated(b"event: put-object\ndata: ", b"0", int(1000 * MB * scale))
    return True, body, True


def poll_bomb(scale: float) -> tuple[bool, bytes, bool]:
    """A polling body: 1 GB of JSON whitespace, about 1 MB gzip."""
    return False, _gzip_of_repeated(b'{"events": [', b" ", int(1000 * MB * scale)), True


def poll(scale: float) -> tuple[bool, bytes, bool]:
    """A polling body of valid flags: 200,000 of about 1 kB each (200 MB)."""
    count = int(200_000 * scale)
    one = json.dumps(
        {
            "event": "put-object",
            "data": {
                "kind": "flag",
                "key": "KEY",
                "version": 1,
                "object": _flag("KEY", 840),
            },
        }
    )
    events = [one.replace("KEY", f"flag-{i:07d}") for i in range(count)]
    done = json.dumps(
        {"event": "payload-transferred", "data": {"state": "s", "version": 1}}
    )
    intent = json.dumps(
        {
            "event": "server-intent",
            "data": {"payloads": [{"id": "p", "target": 1, "intentCode": "xfer-full"}]},
        }
    )
    text = '{"events": [' + ",".join([intent, *events, done]) + "]}"
    return False, text.encode(), False


def line(scale: float) -> tuple[bool, bytes, bool]:
    """A stream line of 400 MB with no line end."""
    return True, b"event: put-object\ndata: " + b"x" * int(400 * MB * scale), False


def changes(scale: float) -> tuple[bool, bytes, bool]:
    """A streamed payload of 1,000,000 small puts that never ends."""
    count = int(1_000_000 * scale)
    one = _sse(
        "put-object",
        json.dumps(
            {"kind": "flag", "key": "KEY", "version": 1, "object": _flag("KEY")}
        ),
    )
    return (
        True,
        _intent()
        + b"".join(one.replace(b"KEY", f"f{i:07d}".encode()) for i in range(count)),
        False,
    )


CASES: dict[str, Callable[[float], tuple[bool, bytes, bool]]] = {
    "bomb": bomb,
    "poll-bomb": poll_bomb,
    "poll": poll,
    "line": line,
    "changes": changes,
}


# ------------------------------------------------------------------ server
async def serve(
    body: bytes,
    *,
    stream: bool,
    gzipped: bool,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Answer the first request with ``body`` and close; later ones, never."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    first = True

    async def handle(conn: anyio.abc.SocketStream) -> None:
        nonlocal first
        async with conn:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    head += await conn.receive()
                if not first:
                    while await conn.receive():
                        pass
                first = False
                kind = b"text/event-stream" if stream else b"application/json"
                length = b"" if stream else b"content-length: %d\r\n" % len(body)
                encoding = b"content-encoding: gzip\r\n" if gzipped else b""
                await conn.send(
                    b"HTTP/1.1 200 OK\r\ncontent-type: "
                    + kind
                    + b"\r\n"
                    + length
                    + encoding
                    + b"connection: close\r\n\r\n"
                )
                view = memoryview(body)
                for at in range(0, len(body), MB):
                    await conn.send(view[at : at + MB])  # type: ignore[arg-type]
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return  # the client hung up (it refused the input)

    async with listener:
        task_status.started(f"http://127.0.0.1:{port}")
        await listener.serve(handle)


# ------------------------------------------------------------------- child
def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` figure in kB: ``VmRSS`` now, ``VmHWM`` its peak."""
    with open("/proc/self/status") as status:
        for row in status:
            if row.startswith(f"{field}:"):
                return int(row.split()[1])
    raise LookupError(field)


def _reset_peak() -> int:
    """Start the peak RSS afresh (Linux 4.0+); the RSS now, in kB.

    ``getrusage().ru_maxrss`` would not do: it keeps the parent's RSS at
    ``fork`` through ``exec``, and the parent holds the inputs.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass  # VmHWM then counts from the start: the warm-up client is small
    return _status_kb("VmRSS")


class _Outcome(logging.Handler):
    """Ends the measure at a data source warning, READY, or a closed stream."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.text = ""
        self.done = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            if not message.startswith("aioflags data source"):
                return  # (the client's own, e.g. not ready after ready_timeout)
            self.text = f"refused: {message}"
        elif " READY" in message:
            self.text = "taken (READY)"
        elif "stream closed" in message:
            self.text = "held until the connection closed"
        else:
            return
        self.done.set()


async def _probe(worst: list[float], stop: anyio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await anyio.sleep(PERIOD)
        worst[0] = max(worst[0], time.perf_counter() - start - PERIOD)


def _config(url: str, streaming: bool, limits: dict[str, Any]) -> aioflags.Config:
    from aioflags import sources

    source = (
        sources.streaming_synchronizer()
        if streaming
        else sources.polling_synchronizer()
    )
    return aioflags.Config(
        "sdk-key",
        base_uri=url,
        stream_uri=url,
        data_system=aioflags.DataSystem.custom(synchronizers=[source]),
        send_events=False,
        ready_timeout=0,
        **limits,
    )


async def child(url: str, streaming: bool, limits: dict[str, int]) -> None:
    logging.getLogger("aioflags").setLevel(logging.INFO)
    # A first client against a port nothing listens on: what a start imports
    # and sets up once is not counted against the input.
    warm = _Outcome()
    logging.getLogger("aioflags").addHandler(warm)
    async with aioflags.Client(_config("http://127.0.0.1:9", streaming, limits)):
        await warm.done.wait()
    logging.getLogger("aioflags").removeHandler(warm)
    config = _config(url, streaming, limits)
    outcome = _Outcome()
    logging.getLogger("aioflags").addHandler(outcome)
    idle, busy = [0.0], [0.0]
    async with anyio.create_task_group() as tg:
        stop = anyio.Event()
        tg.start_soon(_probe, idle, stop)
        await anyio.sleep(0.5)
        stop.set()
    client = aioflags.Client(config)
    baseline = _reset_peak()
    if os.environ.get("BENCH_TRACEMALLOC"):
        tracemalloc.start()
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        stop = anyio.Event()
        tg.start_soon(_probe, busy, stop)
        async with client:
            with anyio.move_on_after(CHILD_TIMEOUT):
                await outcome.done.wait()
        stop.set()
    elapsed = time.perf_counter() - started
    peak = _status_kb("VmHWM")
    traced = (
        tracemalloc.get_traced_memory()[1] / MB if tracemalloc.is_tracing() else None
    )
    print(
        json.dumps(
            {
                "rss_mb": max(0, peak - baseline) / 1024,
                "traced_mb": traced,
                "stall_ms": busy[0] * 1000,
                "idle_ms": idle[0] * 1000,
                "seconds": elapsed,
                "outcome": outcome.text or "no outcome (timed out)",
            }
        )
    )


# ------------------------------------------------------------------ parent
async def measure(name: str, scale: float, limits: dict[str, int]) -> dict[str, Any]:
    streaming, body, gzipped = CASES[name](scale)
    async with anyio.create_task_group() as tg:
        url = await tg.start(
            lambda **kw: serve(body, stream=streaming, gzipped=gzipped, **kw)
        )
        env = {**os.environ, "PYTHONPATH": ROOT}
        argv = [sys.executable, __file__, "--child", url, "--streaming", str(streaming)]
        argv += [
            f"--{k.replace('_', '-').replace('payload-', '')}={v}"
            for k, v in limits.items()
        ]
        result = await anyio.run_process(
            argv, env=env, stderr=subprocess.STDOUT, check=False
        )
        tg.cancel_scope.cancel()
    output = result.stdout.decode()
    try:
        fields: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fields = {"outcome": f"child failed: {output[-500:]}"}
    fields["input_mb"] = len(body) / MB
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--max-bytes", type=int)
    parser.add_argument("--max-changes", type=int)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--streaming", help=argparse.SUPPRESS)
    args = parser.parse_args()
    limits = {
        k: v
        for k, v in (
            ("max_payload_bytes", args.max_bytes),
            ("max_payload_changes", args.max_changes),
        )
        if v is not None
    }
    if args.child:
        anyio.run(child, args.child, args.streaming == "True", limits)
        return
    if args.smoke:  # tiny inputs, over limits as tiny
        args.scale = 0.002
        limits = {"max_payload_bytes": 100_000, "max_payload_changes": 100}
    print(f"aioflags from {Path(aioflags.__file__).resolve().parent}")
    print(f"limits: {limits or 'the defaults'}; sizes x{args.scale:g}")
    print(
        f"{'case':<10} {'input MB':>9} {'peak RSS +MB':>13} {'worst stall ms':>15} "
        f"{'ratio to idle':>14} {'seconds':>8}  outcome"
    )
    for name in args.cases.split(","):
        r = anyio.run(measure, name, args.scale, limits)
        ratio = r.get("stall_ms", 0) / max(r.get("idle_ms", 0), 0.001)
        print(
            f"{name:<10} {r['input_mb']:>9.1f} {r.get('rss_mb', 0):>13.1f} "
            f"{r.get('stall_ms', 0):>15.1f} {ratio:>14.1f} {r.get('seconds', 0):>8.2f}  "
            f"{r['outcome'][:160]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
