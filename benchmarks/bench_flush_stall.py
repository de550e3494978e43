"""How long an analytics event flush stalls the event loop, by a loop-lag probe.

    python benchmarks/bench_flush_stall.py [--events 10000] [--flags 1] [--runs 5]
        [--compress] [--smoke]

A client with analytics events on evaluates one flag for ``--events``
contexts new to it (``benchmarks/corpus.py`` contexts with distinct keys: one
``index`` event each, and the summary). With ``--flags N`` (say 10,000) the
flag data has N flags, and one ``user`` and one ``org`` context evaluate
every one of them in each flush window too: a summary of N flags, two
context kinds each, the events a flush encodes besides. Then
``await client.flush()``
formats, encodes and posts them to an events sink in another process (so
that receiving them costs this loop nothing). Meanwhile a *probe* task
sleeps 1 ms at a time and records how late each wake-up is: the loop's
stalls. The same probe then runs through an idle stretch as long as the
flush took: the machine's own noise.

Two measures of each wake-up, because this machine is shared and the wall
clock counts the time the OS gave the process's CPU to someone else:

- *lag*: how late the wake-up was, by the loop's clock;
- *CPU*: how much CPU time the loop's thread spent between the probe going
  to sleep and waking (``time.thread_time()``): the work other tasks did on
  the loop in the meantime, which is what stalled it, whatever the load.

Printed, for each run and the worst of the runs: the worst and the
99th-percentile of each during the flush and while idle; the ratio is the
worst CPU stall during the flush to the worst idle one. The collector is
emptied before each measured stretch (a full collection's pause depends on
the whole heap, not on the flush), and the longest collection during the
flush is printed. Timings are printed, never asserted.

To measure another checkout's ``aioflags`` (the code before a change), put it
first on the path: ``PYTHONPATH=/path/to/checkout python benchmarks/...``;
the first line printed says which one ran.
"""

from __future__ import annotations

import argparse
import gc
import http.server
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import in_memory_system, server_process
from corpus import contexts

import aioflags

PERIOD = 0.001  # the probe's sleep, seconds
FLAG = {
    "key": "f",
    "version": 1,
    "on": True,
    "variations": [True, False],
    "offVariation": 1,
    "fallthrough": {"variation": 0},
}


def flag_data(n_flags: int) -> dict[str, Any]:
    """``f`` and, with ``n_flags`` > 1, more flags (string values, as rv/summary)."""
    flags: dict[str, Any] = {"f": FLAG}
    for i in range(1, n_flags):
        flags[f"f{i}"] = {
            **FLAG,
            "key": f"f{i}",
            "version": 3,
            "variations": ["a" * 20, "b" * 20],
        }
    return {"flags": flags, "segments": {}}


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts every POST with 202, as LaunchDarkly's events endpoint does."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


def sink() -> None:
    """The events sink (``--sink``): prints its URL, serves until stopped."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Sink)
    print(f"sink http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


class GcPauses:
    """The longest pause of Python's garbage collector while ``counting`` (ms)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.counting = False
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.counting:
            self.longest = max(self.longest, (time.perf_counter() - self._start) * 1000)


class Probe:
    """Sleeps PERIOD at a time; records each wake-up's lateness and the loop's CPU."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.cpu: list[float] = []

    async def run(self, stop: anyio.Event, started: anyio.Event) -> None:
        while not stop.is_set():
            before, cpu = anyio.current_time(), time.thread_time()
            await anyio.sleep(PERIOD)
            self.cpu.append(time.thread_time() - cpu)
            self.lags.append(anyio.current_time() - before - PERIOD)
            started.set()


async def probed(work: Any, pauses: GcPauses) -> tuple[Probe, float]:
    """Run ``await work()`` beside the probe: what it saw, and how long work took."""
    probe = Probe()
    stop, started = anyio.Event(), anyio.Event()
    gc.collect()
    pauses.longest = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe.run, stop, started)
        await started.wait()
        probe.lags.clear()
        probe.cpu.clear()
        pauses.counting = True
        begin = anyio.current_time()
        await work()
        took = anyio.current_time() - begin
        pauses.counting = False
        stop.set()
    return probe, took


def figures(values: list[float]) -> tuple[float, float]:
    """Worst and 99th percentile, in ms."""
    if len(values) < 2:
        return max(values, default=0.0) * 1000, max(values, default=0.0) * 1000
    p99 = statistics.quantiles(values, n=100, method="inclusive")[98]
    return max(values) * 1000, p99 * 1000


async def main(n_events: int, n_flags: int, runs: int, compress: bool) -> None:
    print(f"aioflags from {Path(aioflags.__file__).parent}")
    raw = contexts(n_events * runs)
    for i, c in enumerate(raw):
        c["key"] = f"user-{i}"  # one index event each
    pauses = GcPauses()
    rows: list[tuple[float, ...]] = []
    with server_process(__file__, "--sink") as url:
        config = aioflags.Config(
            "sdk-key",
            data_system=in_memory_system(flag_data(n_flags)),
            events_uri=url,
            events_capacity=n_events + 10,
            flush_interval=3600.0,
            diagnostic_opt_out=True,
            compress_events=compress,
        )
        async with aioflags.Client(config) as client:
            snapshot = client.snapshot()
            assert snapshot.initialized
            keys = list(flag_data(n_flags)["flags"])
            for run in range(runs):
                for c in raw[run * n_events : (run + 1) * n_events]:
                    await client.variation("f", aioflags.Context.from_dict(c), False)
                if n_flags > 1:  # one summary entry per flag, two kinds each
                    for kind in ("user", "org"):
                        context = aioflags.Context.create(f"{kind}-{run}", kind=kind)
                        for key in keys:
                            snapshot.variation(key, context, "default")
                flush, took = await probed(lambda: client.flush(timeout=60.0), pauses)
                gc_pause = pauses.longest
                idle, _ = await probed(lambda t=took: anyio.sleep(t), pauses)
                row = (
                    *figures(flush.lags),
                    *figures(flush.cpu),
                    *figures(idle.lags),
                    *figures(idle.cpu),
                )
                rows.append(row)
                print(
                    f"run {run + 1}: flush took {took * 1000:.1f} ms, longest gc "
                    f"pause {gc_pause:.1f} ms; during it lag worst {row[0]:.1f} "
                    f"p99 {row[1]:.1f}, CPU worst {row[2]:.1f} p99 {row[3]:.1f}; "
                    f"idle lag worst {row[4]:.1f} p99 {row[5]:.1f}, CPU worst "
                    f"{row[6]:.1f} p99 {row[7]:.1f} (ms)"
                )
    worst = [max(r[i] for r in rows) for i in range(8)]
    print(
        f"\nloop stall during a flush of {n_events} events"
        f"{f' and a summary of {n_flags} flags' if n_flags > 1 else ''}"
        f"{' (gzip)' if compress else ''}, worst of {runs} runs (ms):\n"
        f"  lag: worst {worst[0]:.1f}, p99 {worst[1]:.1f}"
        f"   (idle: worst {worst[4]:.1f}, p99 {worst[5]:.1f})\n"
        f"  CPU: worst {worst[2]:.1f}, p99 {worst[3]:.1f}"
        f"   (idle: worst {worst[6]:.1f}, p99 {worst[7]:.1f})\n"
        f"  ratio (CPU worst, flush to idle) {worst[2] / max(worst[6], 0.001):.1f}x"
    )


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument(
        "--flags", type=int, default=1, help="flags evaluated in each window"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compress", action="store_true", help="gzip the payloads")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink()
        return
    if args.smoke:
        args.events, args.flags, args.runs = 200, 300, 1  # both parts of a flush
    anyio.run(main, args.events, args.flags, args.runs, args.compress)


if __name__ == "__main__":
    run()
