"""Ingest side by side: aioflags Client and LaunchDarkly's AsyncLDClient, 1k to 100k flags.

For each flag count, one server process serves the corpus (``corpus.py``)
on loopback, its bodies serialised once (as LaunchDarkly's service caches
them: the server's own JSON work is not what is measured); each SDK then starts in a fresh
subprocess of its own (interleaved, ``--repeat`` times). In each child the
SDK first starts once against a 5-flag corpus (its imports on first use,
first TLS and socket set-up: the same cost whatever the flag count, shown as
its own figure), then measures:

- time to READY: from creating the client to ``async with`` / ``start()``
  returning initialised (polling: one GET of the whole payload), on the wall
  clock and in CPU time of the process (all threads: what a loaded machine
  does not inflate);
- worst stall: the worst oversleep of a 1 ms ticker on the same event loop,
  from creating the client to 1 s after READY; the longest loop step in CPU
  time; the longest garbage collection in that window;
- RSS growth at READY, and after evaluating every flag once;
- a full (generation 2) garbage collection's pause, with the data held.

aioflags runs twice: as configured by default, and with
``Config(gc_freeze=True)``. LaunchDarkly's 9.18 AsyncLDClient polls
``/sdk/latest-all`` (FDv1, its fastest start-up path); aioflags polls
``/sdk/poll`` (FDv2). Tables show the WORST run of each; ratios divide the
worst aioflags run by LaunchDarkly's median run. Each repeat runs the three
in turn (aioflags, gc_freeze, LaunchDarkly), so for the time to READY, on the
wall clock and in CPU time, each repeat also gives a ratio of its own (each
aioflags configuration's run i over LaunchDarkly's run i): their median and
worst are printed below the table, steadier against a burst of load on the
machine::

    python benchmarks/bench_ingest.py [--sizes 1000,10000,50000,100000]
        [--repeat 3] [--ld-max 50000] [--plot docs/img/ingest.png]
    python benchmarks/bench_ingest.py --instructions --sizes 10000

``--instructions`` counts instead, under valgrind's callgrind, each SDK's
instructions from creating the client to READY (after the same first start):
steady whatever the load, blind to waits and to cache misses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from _common import server_process
from bench_system import Ticker
from corpus import make_corpus

if TYPE_CHECKING:
    import ssl

HERE = Path(__file__).resolve().parent
WARM_UP = "/warm-up"
_SLICE = 256 * 1024
OURS = "aioflags Client"
FROZEN = "aioflags, gc_freeze=True"
LD = "LaunchDarkly AsyncLDClient"
FIGURES = (
    ("ready_ms", "time to READY (ms)"),
    ("ready_cpu_ms", "CPU time to READY, all threads (ms)"),
    ("stall_ms", "worst loop stall, start to READY + 1 s (ms)"),
    ("step_cpu_ms", "longest loop step, CPU ms of the loop's thread"),
    ("rss_ready_mib", "RSS growth at READY (MiB)"),
    ("rss_eval_mib", "RSS growth after evaluating every flag (MiB)"),
    ("gc_worst_ms", "longest GC pause, start to READY + 1 s (ms)"),
    ("gc_ms", "full GC pause with the data held (ms)"),
    ("first_ready_ms", "first start in the process, 5 flags (ms)"),
)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# ----------------------------------------------------------------- server
def _bodies(n_flags: int, prefix: str = "") -> dict[str, bytes]:
    """The FDv2 poll body and the FDv1 payload of ``make_corpus(n_flags)``."""
    corpus = make_corpus(n_flags)
    events: list[dict[str, Any]] = [
        {
            "event": "server-intent",
            "data": {
                "payloads": [
                    {
                        "id": "bench",
                        "target": 1,
                        "intentCode": "xfer-full",
                        "reason": "",
                    }
                ]
            },
        }
    ]
    for kind, items in (("flag", corpus["flags"]), ("segment", corpus["segments"])):
        events += [
            {
                "event": "put-object",
                "data": {"kind": kind, "key": k, "version": o["version"], "object": o},
            }
            for k, o in items.items()
        ]
    events.append(
        {"event": "payload-transferred", "data": {"state": "(p:bench:1)", "version": 1}}
    )
    return {
        f"{prefix}/sdk/poll": json.dumps({"events": events}).encode(),
        f"{prefix}/sdk/latest-all": json.dumps(corpus).encode(),
    }


async def serve(n_flags: int, ssl_context: ssl.SSLContext | None = None) -> None:
    """A static flag server: ``/sdk/poll`` (FDv2) and ``/sdk/latest-all`` (FDv1).

    Under ``/warm-up`` it serves a 5-flag corpus: each child starts its SDK
    once against it first, so that what is measured is not the one-off cost
    of a process's first start (imports done on first use, first TLS and
    socket set-up), which is the same whatever the flag count.
    """
    bodies = {**_bodies(n_flags), **_bodies(5, WARM_UP)}
    none = {"payloads": [{"id": "bench", "target": 1, "intentCode": "none"}]}
    up_to_date = json.dumps({"events": [{"event": "server-intent", "data": none}]})
    up_to_date = up_to_date.encode()

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path, _, query = head.split(b" ", 2)[1].decode().partition("?")
                # A poll that names its basis is up to date: intent "none".
                body = up_to_date if "basis=" in query else bodies.get(path)
                status = b"200 OK" if body is not None else b"404 Not Found"
                body = body or b""
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                )
                # In slices: a 90 MB write() is buffered whole, and Python
                # 3.11's transport then moves the rest of it down after each
                # send (quadratic: tens of seconds when the client reads as
                # it parses).
                view = memoryview(body)
                for at in range(0, len(body), _SLICE):
                    writer.write(view[at : at + _SLICE])
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "http" if ssl_context is None else "https"
    print(f"serving {scheme}://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------ child
class StepMeter:
    """The longest single step of the event loop, in CPU time of the loop's thread.

    The ticker's wall-clock stall also counts the time the process waits for
    a CPU on a loaded machine; this counts only what a callback (and any
    garbage collection inside it) cost the loop's own thread.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self.active = False
        run = asyncio.events.Handle._run
        meter = self

        def timed(handle: asyncio.events.Handle) -> None:
            start = time.thread_time()
            try:
                run(handle)
            finally:
                spent = time.thread_time() - start
                if meter.active and spent > meter.worst:
                    meter.worst = spent

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]


class GcMeter:
    """The longest garbage collection (any generation) while active."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.active = False
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.active:
            self.worst = max(self.worst, time.perf_counter() - self._start)


async def _start_ld(url: str) -> Any:
    from ldclient.async_client import AsyncLDClient
    from ldclient.async_config import AsyncConfig

    ld = AsyncLDClient(
        AsyncConfig(
            "sdk-key",
            base_uri=url,
            stream_uri=url,
            events_uri=url,
            stream=False,
            send_events=False,
            diagnostic_opt_out=True,
        )
    )
    await ld.start(start_wait=300)
    assert await ld.is_initialized()
    return ld


def _config(url: str, *, frozen: bool, slow: bool = False) -> Any:
    """The measured client's config; ``slow``: under valgrind (see :func:`_cg_child`)."""
    import aioflags
    from aioflags import sources

    system = aioflags.DataSystem.custom(
        initializers=[sources.polling_initializer()],
        synchronizers=[sources.polling_synchronizer(interval=3600)],
    )
    # Under callgrind a 10,000-flag poll takes minutes: the poll's deadline
    # (connect_timeout + read_timeout, 20 s) and the synchronizer's
    # initializing_timeout (10 s) would cut it and poll again, counting the
    # body many times over (and at times never reaching READY).
    return aioflags.Config(
        "sdk-key",
        base_uri=url,
        stream_uri=url,
        ready_timeout=6000 if slow else 300,
        send_events=False,
        gc_freeze=frozen,
        data_system=system.with_timings(initializing_timeout=6000) if slow else system,
        connect_timeout=600 if slow else 10,  # (10 s each: the defaults)
        read_timeout=6000 if slow else 10,
    )


async def _first_start(which: str, url: str) -> float:
    """Start and close the SDK once against the 5-flag corpus: ms to READY."""
    import aioflags

    start = time.perf_counter()
    if which == "ld":
        ld = await _start_ld(url + WARM_UP)
        elapsed = time.perf_counter() - start
        await ld.close()
    else:
        # (gc_freeze here would freeze the heap before the measured start)
        async with aioflags.Client(_config(url + WARM_UP, frozen=False)):
            elapsed = time.perf_counter() - start
    return elapsed * 1e3


async def _child(which: str, url: str) -> dict[str, float]:
    import ldclient  # noqa: F401 - both SDKs loaded in every child: one baseline

    import aioflags

    out: dict[str, float] = {"first_ready_ms": await _first_start(which, url)}
    gc.collect()
    before = _rss_kb()
    loop = asyncio.get_running_loop()
    ticker = Ticker()
    tick = loop.create_task(ticker.run())
    await asyncio.sleep(0.01)
    ticker.worst = 0.0
    meter = StepMeter()
    gcs = GcMeter()
    meter.active = gcs.active = True
    start = time.perf_counter()
    cpu = time.process_time()

    async def ready() -> None:
        """READY now: the figures of the start, then one more second of ticks."""
        out["ready_cpu_ms"] = (time.process_time() - cpu) * 1e3
        out["ready_ms"] = (time.perf_counter() - start) * 1e3
        out["rss_ready_mib"] = (_rss_kb() - before) / 1024
        await asyncio.sleep(1)
        ticker.stop()
        await tick
        out["stall_ms"] = ticker.worst * 1e3
        meter.active = gcs.active = False
        out["step_cpu_ms"] = meter.worst * 1e3
        out["gc_worst_ms"] = gcs.worst * 1e3

    if which == "ld":
        from ldclient import Context as LDContext

        ld = await _start_ld(url)
        await ready()
        state = await ld.all_flags_state(LDContext.create("bench-user"))
        keys = list(state.to_values_map())
        ctx = LDContext.create("bench-user")
        for key in keys:
            await ld.variation(key, ctx, None)
        out["rss_eval_mib"] = (_rss_kb() - before) / 1024
        out["gc_ms"] = _gc_pause()
        out["flags"] = len(keys)
        await ld.close()
        return out
    async with aioflags.Client(_config(url, frozen=which == "frozen")) as client:
        await ready()
        assert client.status is aioflags.ProviderStatus.READY
        snapshot = client.snapshot()
        user = aioflags.Context.create("bench-user")
        keys = sorted(snapshot.flag_keys)
        for key in keys:
            snapshot.variation(key, user, None)
        out["rss_eval_mib"] = (_rss_kb() - before) / 1024
        out["gc_ms"] = _gc_pause()
        out["flags"] = len(keys)
    return out


async def _cg_child(which: str, url: str) -> None:
    """``--instructions``: a first start, then a mark, the measured start, a mark at READY.

    A mark is a call of ``os.getppid()``, which callgrind dumps its counts
    before: the second dump is the measured start, creation to READY.
    """
    import ldclient  # noqa: F401 - both SDKs loaded in every child: one baseline

    import aioflags

    await _first_start(which, url)
    gc.collect()
    os.getppid()
    if which == "ld":
        await _start_ld(url)
    else:
        await aioflags.Client(_config(url, frozen=False, slow=True)).__aenter__()
    os.getppid()
    os._exit(0)


def instructions(n_flags: int) -> str:
    """Instructions from creating the client to READY, each SDK under callgrind."""
    import tempfile

    counts = {}
    with (
        server_process(__file__, "--serve", str(n_flags)) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for which, name in (("aioflags", OURS), ("ld", LD)):
            out = Path(tmp) / which
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--dump-before=os_getppid",
                    "--dump-instr=no",
                    f"--callgrind-out-file={out}",
                    sys.executable,
                    __file__,
                    "--cg-child",
                    which,
                    url,
                ],
                capture_output=True,
                check=True,
                timeout=3600,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            text = Path(f"{out}.2").read_text()
            summary = next(x for x in text.splitlines() if x.startswith("summary:"))
            counts[name] = int(summary.split()[1])
    ours, theirs = counts[OURS], counts[LD]
    return (
        f"\n{n_flags} flags, instructions from creating the client to READY "
        f"(callgrind): {OURS} {ours / 1e6:,.1f} M, {LD} {theirs / 1e6:,.1f} M, "
        f"ratio {ours / theirs:.3f}x"
    )


def _gc_pause() -> float:
    gc.collect()  # whatever start-up left behind
    start = time.perf_counter()
    gc.collect(2)
    return (time.perf_counter() - start) * 1e3


def run_child(which: str, url: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", which, url],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ----------------------------------------------------------------- parent
def measure(
    sizes: list[int], repeat: int, ld_max: int, repeat_large: int
) -> dict[int, dict[str, list[dict[str, float]]]]:
    results: dict[int, dict[str, list[dict[str, float]]]] = {}
    for n in sizes:
        runs: dict[str, list[dict[str, float]]] = {OURS: [], FROZEN: [], LD: []}
        load = os.getloadavg()[0]
        with server_process(__file__, "--serve", str(n)) as url:
            for _ in range(repeat if n <= 10000 else repeat_large):
                # interleaved: every SDK sees the same machine state
                runs[OURS].append(run_child("aioflags", url))
                runs[FROZEN].append(run_child("frozen", url))
                if n <= ld_max:
                    runs[LD].append(run_child("ld", url))
        for name, samples in runs.items():
            if samples:
                assert all(s["flags"] == n for s in samples), (name, samples)
        results[n] = runs
        # The wall-clock figures count the time spent waiting for a CPU.
        print(
            f"\n{n} flags: load average {load:.1f} -> {os.getloadavg()[0]:.1f}",
            end="",
        )
        print(report({n: runs}), flush=True)
    return results


def worst(samples: list[dict[str, float]], field: str) -> float:
    return max(s[field] for s in samples)


#: The figures also given as interleaved pairs (:func:`pairs`).
PAIRED: Final = ("ready_ms", "ready_cpu_ms")


def pairs(runs: dict[str, list[dict[str, float]]], name: str, field: str) -> str:
    """``name``'s run i against LaunchDarkly's run i, for each repeat: median and worst ratio.

    The runs of one repeat follow each other (:func:`measure`: aioflags,
    gc_freeze, LaunchDarkly), so a burst of load on the machine is likelier
    to fall on both sides of a pair; the worst run of one side against the
    median of the other (the table) mixes two moments of the machine.
    """
    ratios = sorted(
        o[field] / t[field] for o, t in zip(runs[name], runs[LD], strict=True)
    )
    return f"median {statistics.median(ratios):.2f}x, worst {ratios[-1]:.2f}x"


def report(results: dict[int, dict[str, list[dict[str, float]]]]) -> str:
    lines = []
    for n, runs in results.items():
        lines.append(
            f"\n{n} flags (worst of {len(runs[OURS])} runs; ratio: worst / LD median)"
        )
        lines.append(
            f"  {'figure':<46}{OURS:>18}{FROZEN:>26}{LD:>28}   ratio  ratio frozen"
        )
        for field, title in FIGURES:
            ours, frozen = worst(runs[OURS], field), worst(runs[FROZEN], field)
            if runs[LD]:
                theirs = statistics.median(s[field] for s in runs[LD])
                ld_text = f"{worst(runs[LD], field):.1f} (median {theirs:.1f})"
                ratio = f"{ours / theirs:7.2f}x {frozen / theirs:7.2f}x"
            else:
                ld_text, ratio = "not run", "      -        -"
            lines.append(
                f"  {title:<46}{ours:>18.1f}{frozen:>26.1f}{ld_text:>28}   {ratio}"
            )
        if runs[LD]:
            lines.append("  interleaved pairs, run i / LaunchDarkly's run i:")
            for field, title in FIGURES:
                if field in PAIRED:
                    lines.append(
                        f"    {title}: {OURS} {pairs(runs, OURS, field)}; "
                        f"gc_freeze {pairs(runs, FROZEN, field)}"
                    )
    return "\n".join(lines)


def markdown(results: dict[int, dict[str, list[dict[str, float]]]]) -> str:
    """The table docs/benchmarks.md shows."""
    lines = [
        "| flags | figure | aioflags (worst) | aioflags, gc_freeze (worst) "
        "| AsyncLDClient (median) | ratio | ratio, gc_freeze |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for n, runs in results.items():
        for field, title in FIGURES:
            ours, frozen = worst(runs[OURS], field), worst(runs[FROZEN], field)
            if runs[LD]:
                theirs = statistics.median(s[field] for s in runs[LD])
                cells = f"{theirs:.1f} | {ours / theirs:.2f}x | {frozen / theirs:.2f}x"
            else:
                cells = "not run | - | -"
            lines.append(f"| {n:,} | {title} | {ours:.1f} | {frozen:.1f} | {cells} |")
    paired = [
        f"- {n:,} flags, {title}: {pairs(runs, OURS, field)} "
        f"(gc_freeze {pairs(runs, FROZEN, field)})"
        for n, runs in results.items()
        if runs[LD]
        for field, title in FIGURES
        if field in PAIRED
    ]
    if paired:
        lines += ["", "Interleaved pairs (aioflags' run i / LaunchDarkly's run i):", ""]
        lines += paired
    return "\n".join(lines)


def plot(results: dict[int, dict[str, list[dict[str, float]]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (the table above is the figure)")
        return
    sizes = sorted(results)
    columns = 3
    rows = -(-len(FIGURES) // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.4 * rows))
    axes = list(grid.flat)
    for ax in axes[len(FIGURES) :]:
        ax.set_visible(False)
    for ax, (field, title) in zip(axes, FIGURES, strict=False):
        for name, style in ((OURS, "o-"), (FROZEN, "s--"), (LD, "^-")):
            xs = [n for n in sizes if results[n][name]]
            ax.plot(xs, [worst(results[n][name], field) for n in xs], style, label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("flags")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    print(f"plot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ld-max", type=int, default=50000)
    parser.add_argument(
        "--repeat-large", type=int, default=2, help="repeats above 10,000 flags"
    )
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions to READY under callgrind instead (slow: minutes)",
    )
    parser.add_argument("--child", nargs=2, metavar=("WHICH", "URL"))
    parser.add_argument("--cg-child", nargs=2, metavar=("WHICH", "URL"))
    parser.add_argument("--serve", type=int, metavar="N")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.serve))
        return
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child[0], args.child[1]))))
        return
    if args.cg_child:
        asyncio.run(_cg_child(args.cg_child[0], args.cg_child[1]))
        return
    sizes = [20] if args.smoke else [int(s) for s in args.sizes.split(",")]
    if args.instructions:
        for n in sizes:
            print(instructions(n), flush=True)
        return
    repeat = 1 if args.smoke else args.repeat
    results = measure(sizes, repeat, args.ld_max, min(repeat, args.repeat_large))
    print("\n" + markdown(results))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
