"""The CPU cost of one analytics flush, aioflags vs LaunchDarkly's AsyncLDClient.

    python benchmarks/bench_flush.py [--flags 1000] [--contexts 25] [--runs 1]
        [--sdks aioflags,ld] [--keep DIR] [--time] [--smoke]

Each SDK runs in its own process with analytics events on, sending them to a
loopback sink that runs in another process (so receiving them is never
counted). Each loads the same flag data (``benchmarks/corpus.py``, 1,000
flags), evaluates every flag for a few contexts and flushes, as a warm-up;
then it evaluates every flag once for each of ``--contexts`` contexts new to
it (25: one ``index`` event each) *outside* the measurement. What is
measured is the flush alone: ``await client.flush()`` of one summary of
every flag plus the index events, until the sink has received the POST.

Two measures, because wall clocks on this machine swing 2x:

- *instructions* (the default): the child runs under valgrind's callgrind,
  which zeroes its counters when the child enters ``os.getpgrp()`` (just
  before the flush) and writes them out when it enters ``os.getppid()``
  (just after the sink confirmed the POST). Every thread of the process is
  counted: LaunchDarkly formats and posts its events on threads of its own.
  ``--keep DIR`` keeps the callgrind files there (``callgrind_annotate``).
  Skipped with a message when valgrind is not installed.
- *CPU* (``--time``, and ``--smoke``): the process's CPU time
  (``time.process_time()``, every thread) over the same stretch, the median
  of ``--runs`` flushes, each of a window of fresh contexts. Printed, never
  asserted.

Prints one line per measure, last the ratio LaunchDarkly / aioflags:
  flush of 1000 flags + 25 index events, instructions: aioflags 9.1M LD 40.2M ratio 4.4x

To measure another checkout's ``aioflags`` (the code before a change), put it
first on the path: ``PYTHONPATH=/path/to/checkout python benchmarks/...``; the
first line printed says which one ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: contexts whose evaluations and flush warm each client up before it is measured
WARM = 5


# ------------------------------------------------------------------ the sink
def sink() -> None:
    """The events sink (``--sink``): 202 to every POST; ``GET /wait/N`` answers
    once more than N posts to ``/bulk`` came, with their count."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    cond = threading.Condition()
    posts = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            after = int(self.path.rpartition("/")[2])
            with cond:
                cond.wait_for(lambda: posts[0] > after, timeout=600)
                out = str(posts[0]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/bulk"):
                with cond:
                    posts[0] += 1
                    cond.notify_all()
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"sink http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


async def _posts_after(url: str, seen: int) -> int:
    """The sink's count of posts, once it is above ``seen`` (a plain HTTP/1.0 GET)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /wait/{seen} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(data.split(b"\r\n\r\n", 1)[1])


# ----------------------------------------------------------------- the child
async def _child(sdk: str, n_flags: int, n_contexts: int, runs: int, url: str) -> None:
    """One SDK's process: warm up, then per run record a window and measure its flush.

    Prints a JSON line with the CPU seconds of each measured flush.
    """
    from _common import in_memory_system, ld_async_client
    from corpus import contexts, make_corpus

    data = make_corpus(n_flags)
    keys = list(data["flags"])
    raw = contexts(WARM + n_contexts * runs)
    for i, c in enumerate(raw):
        c["key"] = f"user-{i}"  # each context new: one index event each
    posts = 0

    async def flushed(client: Any) -> None:
        nonlocal posts
        await client.flush()
        posts = await _posts_after(url, posts)

    async def measure(client: Any, make: Any) -> list[float]:
        for c in raw[:WARM]:
            context = make(c)
            for key in keys:
                await client.variation(key, context, False)
        await flushed(client)
        cpu = []
        for run in range(runs):
            window = raw[WARM + run * n_contexts : WARM + (run + 1) * n_contexts]
            for c in window:
                context = make(c)
                for key in keys:
                    await client.variation(key, context, False)
            start = time.process_time()
            os.getpgrp()  # callgrind: zero the counters
            await flushed(client)
            os.getppid()  # callgrind: dump the counters
            cpu.append(time.process_time() - start)
        return cpu

    if sdk == "aioflags":
        import aioflags

        config = aioflags.Config(
            "sdk-key",
            data_system=in_memory_system(data),
            events_uri=url,
            flush_interval=3600.0,
            diagnostic_opt_out=True,
            ready_timeout=3600,
        )
        async with aioflags.Client(config) as client:
            assert client.snapshot().initialized, "measure a ready client"
            cpu = await measure(client, aioflags.Context.from_dict)
    else:
        from ldclient import Context

        ld = await ld_async_client(
            data, url, flush_interval=3600, diagnostic_opt_out=True
        )
        try:
            assert await ld.is_initialized(), "measure a ready client"
            cpu = await measure(ld, Context.from_dict)
        finally:
            await ld.close()
    print(json.dumps({"cpu": cpu}), flush=True)


# ------------------------------------------------------------------ the main
def _run_child(
    sdk: str, args: argparse.Namespace, url: str, callgrind: str | None
) -> tuple[list[float], int | None]:
    """Run one SDK's child: its flushes' CPU seconds, and the instructions counted."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        sdk,
        str(args.flags),
        str(args.contexts),
        str(args.runs if callgrind is None else 1),
        url,
    ]
    if callgrind is not None:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={callgrind}",
            "--dump-instr=no",
            "--zero-before=os_getpgrp",
            "--dump-before=os_getppid",
            *cmd,
        ]
    env = dict(
        os.environ, PYTHONHASHSEED="0", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1"
    )
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3000)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        raise SystemExit(f"{sdk}: the child failed (rc {done.returncode})")
    cpu = json.loads(done.stdout.strip().splitlines()[-1])["cpu"]
    if callgrind is None:
        return cpu, None
    folder, name = os.path.split(callgrind)
    dumps = sorted(f for f in os.listdir(folder) if f.startswith(name + "."))
    text = Path(folder, dumps[0]).read_text()
    match = re.search(r"^totals:\s*(\d+)", text, re.M)
    assert match is not None, "no totals in the callgrind dump"
    return cpu, int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--contexts", type=int, default=25)
    parser.add_argument("--runs", type=int, default=5, help="flushes timed (--time)")
    parser.add_argument("--sdks", default="aioflags,ld")
    parser.add_argument("--keep", help="keep the callgrind files in this folder")
    parser.add_argument("--time", action="store_true", help="CPU time, no valgrind")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU time")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sdk, n_flags, n_contexts, runs, url = sys.argv[2:7]
        asyncio.run(_child(sdk, int(n_flags), int(n_contexts), int(runs), url))
        return
    args = parser.parse_args()
    if args.sink:
        sink()
        return
    if args.smoke:
        args.flags, args.contexts, args.runs, args.time = 50, 3, 1, True
    import aioflags

    print(f"aioflags from {Path(aioflags.__file__).parent}")
    use_callgrind = not args.time
    if use_callgrind and shutil.which("valgrind") is None:
        print("valgrind is not installed: instructions skipped (try --time)")
        return
    sdks = args.sdks.split(",")
    what = f"flush of {args.flags} flags + {args.contexts} index events"
    with tempfile.TemporaryDirectory(prefix="bench-flush-") as tmp:
        keep = args.keep or tmp
        sink_process = subprocess.Popen(
            [sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert sink_process.stdout is not None
            url = sink_process.stdout.readline().split()[-1]
            cpu: dict[str, float] = {}
            counted: dict[str, int] = {}
            for sdk in sdks:
                if use_callgrind:
                    # bytecode caches first, natively, so the count pays for none
                    _run_child(
                        sdk, argparse.Namespace(**{**vars(args), "runs": 1}), url, None
                    )
                out = os.path.join(keep, f"cg.{sdk}") if use_callgrind else None
                seconds, instructions = _run_child(sdk, args, url, out)
                cpu[sdk] = statistics.median(seconds)
                if instructions is not None:
                    counted[sdk] = instructions
        finally:
            sink_process.terminate()
            sink_process.wait(10)
    if len(sdks) != 2:
        for sdk in sdks:
            figure = counted.get(sdk)
            print(
                f"{what}: {sdk} CPU {cpu[sdk] * 1000:.1f} ms"
                + (f", {figure / 1e6:.1f}M instructions" if figure else "")
            )
        return
    ours, theirs = sdks
    if counted:
        print(
            f"{what}, instructions: {ours} {counted[ours] / 1e6:.1f}M "
            f"{theirs} {counted[theirs] / 1e6:.1f}M "
            f"ratio {counted[theirs] / counted[ours]:.1f}x"
        )
    else:
        print(
            f"{what}, CPU (median of {args.runs}): {ours} {cpu[ours] * 1000:.1f} ms "
            f"{theirs} {cpu[theirs] * 1000:.1f} ms "
            f"ratio {cpu[theirs] / max(cpu[ours], 1e-9):.1f}x"
        )


if __name__ == "__main__":
    main()
