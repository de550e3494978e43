"""Start-up, update propagation, fallback switch, event-loop lag, memory and import time.

Each table runs aioflags and LaunchDarkly's Python SDK (sync ``LDClient`` and
``AsyncLDClient``, 9.20.0) on the same data from the same loopback
``FlagServer``, in one invocation, and prints medians, spread and ratios::

    python benchmarks/bench_system.py [--repeat 5] [--smoke]

LaunchDarkly's clients run as configured here, without ``datasystem_config``,
so they speak FDv1 (``/sdk/latest-all``, ``/all``); aioflags speaks FDv2
(``/sdk/poll``, ``/sdk/stream``); the server serves both from one flag set.
9.20 also has an FDv2 data system, experimental, which ``AsyncLDClient``
reaches only through builders in ``ldclient.impl`` (see ``fallback``), so no
table uses it. Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import in_memory_system, server_process, table
from corpus import make_corpus

import aioflags
from aioflags import sources
from aioflags.testing import FlagServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

HERE = Path(__file__).resolve().parent
ASYNC_LD = "LaunchDarkly AsyncLDClient"
SYNC_LD = "LaunchDarkly LDClient"
USER = aioflags.Context.create("bench-user")


# ------------------------------------------------------------------ clients
def aioflags_config(url: str, *, streaming: bool) -> aioflags.Config:
    synchronizers = [sources.streaming_synchronizer()] if streaming else []
    return aioflags.Config(
        "sdk-key",
        base_uri=url,
        stream_uri=url,
        ready_timeout=60,
        data_system=aioflags.DataSystem.custom(
            initializers=[sources.polling_initializer()],
            synchronizers=synchronizers
            or [sources.polling_synchronizer(interval=3600)],
        ),
    )


def ld_config(url: str, *, stream: bool, asynchronous: bool) -> Any:
    if asynchronous:
        from ldclient.async_config import AsyncConfig as Config
    else:
        from ldclient.config import Config  # type: ignore[assignment]
    return Config(
        "sdk-key",
        base_uri=url,
        stream_uri=url,
        events_uri=url,
        stream=stream,
        send_events=False,
        diagnostic_opt_out=True,
    )


async def ld_async(url: str, *, stream: bool) -> Any:
    from ldclient.async_client import AsyncLDClient

    client = AsyncLDClient(ld_config(url, stream=stream, asynchronous=True))
    await client.start(start_wait=60)
    return client


def ld_sync(url: str, *, stream: bool) -> Any:
    import ldclient

    return ldclient.LDClient(
        ld_config(url, stream=stream, asynchronous=False), start_wait=60
    )


@contextlib.asynccontextmanager
async def serving(n_flags: int) -> AsyncIterator[FlagServer]:
    """An in-process server, for benchmarks that script it (changes, faults)."""
    corpus = make_corpus(n_flags)
    async with FlagServer(corpus["flags"], corpus["segments"]) as server:
        yield server


@contextlib.contextmanager
def separate_server(n_flags: int) -> Iterator[str]:
    """``python -m aioflags serve`` in another process: its own work (serialising
    the payload) then neither shares the loop nor the GIL with the clients measured.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flags.json"
        path.write_text(json.dumps(make_corpus(n_flags)))
        with server_process("-m", "aioflags", "serve", str(path), "--port", "0") as url:
            yield url


# ---------------------------------------------------------------- start-up
async def startup(n_flags: int, repeat: int) -> str:
    rows: dict[str, list[float]] = {"aioflags Client": [], ASYNC_LD: [], SYNC_LD: []}
    with separate_server(n_flags) as url:
        for _ in range(repeat):
            start = time.perf_counter()
            async with aioflags.Client(aioflags_config(url, streaming=False)) as c:
                assert c.status is aioflags.ProviderStatus.READY
                rows["aioflags Client"].append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            client = await ld_async(url, stream=False)
            assert await client.is_initialized()
            rows[ASYNC_LD].append((time.perf_counter() - start) * 1e3)
            await client.close()
            start = time.perf_counter()
            sync = await asyncio.to_thread(ld_sync, url, stream=False)
            assert sync.is_initialized()
            rows[SYNC_LD].append((time.perf_counter() - start) * 1e3)
            await asyncio.to_thread(sync.close)
    return table(
        f"start-up: ms from client created to READY, polling, {n_flags} flags",
        "ms",
        list(rows.items()),
        ASYNC_LD,
    )


# ------------------------------------------------------ update propagation
async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    # Busy-polling is the measurement: "visible to evaluation" is what is timed.
    while not await check():  # noqa: ASYNC110
        await asyncio.sleep(0)


async def propagation(n_flags: int, changes: int) -> str:
    rows: dict[str, list[float]] = {"aioflags Client": [], ASYNC_LD: [], SYNC_LD: []}
    async with serving(n_flags) as server:
        key = next(iter(server.flags))
        base = server.flags[key]
        flag = {
            **base,
            "on": True,
            "variations": [0, 1],
            "fallthrough": {"variation": 0},
            "rules": [],
            "targets": [],
            "contextTargets": [],
            "prerequisites": [],
        }
        server.set_flag(key, flag)
        ctx = {"kind": "user", "key": "bench-user"}
        async with aioflags.Client(aioflags_config(server.url, streaming=True)) as ours:
            await server.wait_for_stream()
            theirs = await ld_async(server.url, stream=True)
            sync = await asyncio.to_thread(ld_sync, server.url, stream=True)
            await server.wait_until(lambda: server.open_streams("/all") == 2)
            from ldclient import Context as LDContext

            ld_ctx = LDContext.from_dict(ctx)

            def sync_wait(value: int) -> float:
                while sync.variation(key, ld_ctx, -1) != value:
                    time.sleep(0.0001)  # noqa: TID251 - a reader thread, not the loop
                return time.perf_counter()

            for i in range(1, changes + 1):
                value = i % 2
                start = time.perf_counter()
                server.set_flag(key, {**flag, "fallthrough": {"variation": value}})
                sync_done = asyncio.create_task(asyncio.to_thread(sync_wait, value))  # noqa: TID251 - benchmark harness
                done: dict[str, float] = {}

                async def ours_seen(
                    value: int = value, done: dict[str, float] = done
                ) -> bool:
                    if ours.snapshot().variation(key, USER, -1) == value:
                        done.setdefault("aioflags Client", time.perf_counter())
                    if await theirs.variation(key, ld_ctx, -1) == value:
                        done.setdefault(ASYNC_LD, time.perf_counter())
                    return len(done) == 2

                await asyncio.wait_for(_until(ours_seen), 10)
                done[SYNC_LD] = await asyncio.wait_for(sync_done, 10)
                for name, at in done.items():
                    rows[name].append((at - start) * 1e3)
            await theirs.close()
            await asyncio.to_thread(sync.close)

    def pct(samples: list[float], q: float) -> float:
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    extra = "\n".join(
        f"  {name:<34} p50 {pct(s, 0.5):.2f} ms   p99 {pct(s, 0.99):.2f} ms"
        for name, s in rows.items()
    )
    return (
        table(
            f"update propagation: ms from a change pushed on the stream to the new "
            f"value served ({changes} changes, {n_flags} flags)",
            "ms",
            list(rows.items()),
            ASYNC_LD,
        )
        + "\n"
        + extra
    )


# -------------------------------------------------------- fallback switch
LD_FALLBACK_NA = "n/a: 9.20's FDv2 needs ldclient.impl builders"


async def fallback(n_flags: int, repeat: int) -> str:
    """aioflags only. 9.20's ``AsyncLDClient`` honours ``X-LD-FD-Fallback`` only
    when given an experimental ``AsyncDataSystemConfig`` whose sources come from
    ``ldclient.impl.datasourcev2`` (not public API): the public
    ``ldclient.datasystem`` builders build sync sources, on which its FDv2 loop
    fails (``'async for' requires an object with __aiter__``) and ``start``
    times out. Measured with a scratch script on 2026-11-26 (docs/benchmarks.md).
    """
    samples: list[float] = []
    async with serving(n_flags) as server:
        key = next(iter(server.flags))
        for _ in range(repeat):
            server.clear_faults()
            original = server.flags
            config = aioflags.Config(
                "sdk-key",
                base_uri=server.url,
                stream_uri=server.url,
                initial_retry_delay=0.01,
                ready_timeout=60,
            )
            async with aioflags.Client(config) as client:
                await server.wait_for_stream()
                directive = {"X-LD-FD-Fallback": "true"}
                server.fail("/sdk/stream", status=503, headers=directive)
                server.fail("/sdk/poll", status=503, headers=directive)
                before = len(server.requests_to("/sdk/stream"))
                server.disconnect_streams(abort=True)
                # New data that only the FDv1 poll can deliver (no FDv2 stream
                # is open), replaced before the clock starts: the server runs
                # in this process, and re-serialising its flags is its work.
                marker = {**original[key], "on": False, "offVariation": None}
                server.replace_all({**original, key: marker}, server.segments)
                await server.wait_for_requests("/sdk/stream", before + 1)
                start = time.perf_counter()

                def switched() -> bool:
                    # Only the marker (off, no offVariation) serves the default:
                    # the flag may already be off, so its reason proves nothing.
                    detail = client.snapshot().variation_detail(key, USER, "x")
                    status = client.data_source_status
                    return (
                        detail.value == "x"
                        and status is not None
                        and status.fdv1_fallback
                    )

                while not switched():  # noqa: ASYNC110 - polling is the measurement
                    await asyncio.sleep(0)
                samples.append((time.perf_counter() - start) * 1e3)
            server.replace_all(original, server.segments)
    med = statistics.median(samples)
    return (
        f"\nfallback switch: ms from the directive response to the first FDv1 payload "
        f"served ({n_flags} flags)\n"
        f"  {'aioflags Client':<34}{med:>10.2f}ms{min(samples):>10.2f}{max(samples):>10.2f}"
        f"\n  {ASYNC_LD:<34}{LD_FALLBACK_NA:>46}"
    )


# ------------------------------------------------------------- loop lag
class Ticker:
    """A task that wakes every millisecond and records the worst oversleep."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    def stop(self) -> None:
        self._stop.set()


async def _lag(start: Callable[[], Awaitable[Any]]) -> float:
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())  # noqa: TID251 - benchmark harness
    await asyncio.sleep(0.01)
    ticker.worst = 0.0
    result = await start()
    ticker.stop()
    await task
    await result()
    return ticker.worst * 1e3


async def loop_lag(n_flags: int, repeat: int) -> str:
    rows: dict[str, list[float]] = {"aioflags Client": [], ASYNC_LD: [], SYNC_LD: []}
    with separate_server(n_flags) as url:
        for _ in range(repeat):

            async def ours() -> Callable[[], Awaitable[None]]:
                client = aioflags.Client(aioflags_config(url, streaming=False))
                await client.__aenter__()

                async def close() -> None:
                    await client.__aexit__(None, None, None)

                return close

            async def theirs() -> Callable[[], Awaitable[None]]:
                client = await ld_async(url, stream=False)
                return client.close  # type: ignore[no-any-return]

            async def sync() -> Callable[[], Awaitable[None]]:
                client = await asyncio.to_thread(ld_sync, url, stream=False)

                async def close() -> None:
                    await asyncio.to_thread(client.close)

                return close

            rows["aioflags Client"].append(await _lag(ours))
            rows[ASYNC_LD].append(await _lag(theirs))
            rows[SYNC_LD].append(await _lag(sync))
    return table(
        f"event-loop lag: worst stall (ms) of a 1 ms ticker while {n_flags} flags "
        "are fetched and ingested",
        "ms",
        list(rows.items()),
        ASYNC_LD,
    )


# --------------------------------------------------------------- handlers
async def _handlers_once(
    server: FlagServer, which: str, n_handlers: int
) -> tuple[float, float, float, int]:
    """Add ``n_handlers`` change handlers, push one change: add ms, delivery ms, stall ms, tasks."""
    key = next(iter(server.flags))
    flag = server.flags[key]
    calls = 0
    done = asyncio.Event()

    def handler(_: object) -> None:
        nonlocal calls
        calls += 1
        if calls == n_handlers:
            done.set()

    if which == ASYNC_LD:
        ld = await ld_async(server.url, stream=True)
        await server.wait_until(lambda: server.open_streams("/all") == 1)
        add: Callable[[], object] = functools.partial(
            ld.flag_tracker.add_listener, handler
        )
        close: Callable[[], Awaitable[object]] = ld.close
    else:
        ours = aioflags.Client(aioflags_config(server.url, streaming=True))
        await ours.__aenter__()
        await server.wait_for_stream()
        add = functools.partial(ours.add_flag_change_handler, handler)
        close = functools.partial(ours.__aexit__, None, None, None)
    tasks_before = len(asyncio.all_tasks())
    start = time.perf_counter()
    for _ in range(n_handlers):
        add()
    added = (time.perf_counter() - start) * 1e3
    extra_tasks = len(asyncio.all_tasks()) - tasks_before
    ticker = Ticker()
    tick = asyncio.create_task(ticker.run())  # noqa: TID251 - benchmark harness
    await asyncio.sleep(0.01)
    ticker.worst = 0.0
    version = int(flag.get("version", 1)) + 1  # type: ignore[call-overload]
    start = time.perf_counter()
    server.set_flag(key, {**flag, "version": version, "on": not flag["on"]})
    await asyncio.wait_for(done.wait(), 60)
    delivered = (time.perf_counter() - start) * 1e3
    ticker.stop()
    await tick
    await close()
    return added, delivered, ticker.worst * 1e3, extra_tasks


async def handlers(n_handlers: int, repeat: int) -> str:
    """Many change handlers: the cost to add them, to deliver one change, the stall."""
    names = ("aioflags Client", ASYNC_LD)
    rows: list[dict[str, list[float]]] = [{n: [] for n in names} for _ in range(4)]
    async with serving(10) as server:
        for _ in range(repeat):
            for name in names:  # interleaved: both see the same machine state
                for row, value in zip(
                    rows, await _handlers_once(server, name, n_handlers), strict=True
                ):
                    row[name].append(value)
    titles = [
        "ms to add them all",
        "ms to deliver one change to all",
        "worst stall (ms) of a 1 ms ticker during delivery",
    ]
    tables = [
        table(
            f"{n_handlers} change handlers: {title}", "ms", list(row.items()), ASYNC_LD
        )
        for title, row in zip(titles, rows, strict=False)
    ]
    tasks = "\n".join(
        f"  {name:<34} extra tasks while idle: {max(counts):.0f}"
        for name, counts in rows[3].items()
    )
    return "\n".join([*tables, tasks])


# ----------------------------------------------------------------- memory
def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _memory_child(which: str, n_flags: int) -> None:
    import ldclient  # noqa: F401 - both libraries loaded in every child: same baseline
    from _common import ld_async_client, ld_sync_client

    corpus = make_corpus(n_flags)
    raw = json.dumps(corpus)
    del corpus
    gc.collect()
    before = _rss_kb()
    data = json.loads(raw)
    if which == "aioflags":
        async with aioflags.Client(
            aioflags.Config(data_system=in_memory_system(data))
        ) as client:
            del data
            gc.collect()
            assert client.snapshot().initialized
            print(_rss_kb() - before)
    elif which == "async":
        client = await ld_async_client(data)
        del data
        gc.collect()
        print(_rss_kb() - before)
        await client.close()
    else:
        sync = ld_sync_client(data)
        del data
        gc.collect()
        print(_rss_kb() - before)
        sync.close()


def memory(n_flags: int, repeat: int) -> str:
    rows: dict[str, list[float]] = {"aioflags Client": [], ASYNC_LD: [], SYNC_LD: []}
    for _ in range(repeat):
        for name, which in (
            ("aioflags Client", "aioflags"),
            (ASYNC_LD, "async"),
            (SYNC_LD, "sync"),
        ):
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", which, str(n_flags)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows[name].append(int(out.strip().splitlines()[-1]) / 1024)
    return table(
        f"memory: RSS growth (MiB) holding {n_flags} flags (fresh process each)",
        "MB",
        list(rows.items()),
        ASYNC_LD,
    )


# ----------------------------------------------------------------- import
def import_time(repeat: int) -> str:
    """Alternating pairs with bytecode caches written (benchmarks/bench_import.py)."""
    from bench_import import pairs

    return pairs(repeat)


# ------------------------------------------------------------------- main
async def run(args: argparse.Namespace) -> None:
    sizes = [50] if args.smoke else [1000, 10000]
    repeat = 1 if args.smoke else args.repeat
    for n in sizes:
        print(await startup(n, repeat), flush=True)
    print(await propagation(sizes[0], 3 if args.smoke else 100), flush=True)
    print(await fallback(sizes[0], repeat), flush=True)
    print(await loop_lag(sizes[-1], repeat), flush=True)
    print(await handlers(100 if args.smoke else 10000, repeat), flush=True)
    print(memory(sizes[-1], 1 if args.smoke else 3), flush=True)
    print(import_time(1 if args.smoke else 20), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--memory-child", nargs=2, metavar=("WHICH", "N"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # both SDKs log reconnects loudly
    if args.memory_child:
        asyncio.run(_memory_child(args.memory_child[0], int(args.memory_child[1])))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
