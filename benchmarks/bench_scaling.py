"""Past one process: N uvicorn workers on one Redis (daemon mode), streaming each, or on a flag plane.

    python benchmarks/bench_scaling.py [--workers 1,2,4,8] [--runs 3]
        [--duration 5] [--updates 20] [--cache-ttl 1.0] [--join-flags 1000] [--smoke]

Every part is a process of its own, on 127.0.0.1:

- a redis-server (Debian's binary, no persistence, a free port);
- a flag server (``aioflags.testing.FlagServer``) with ``--flags`` flags;
- **daemon**: one *writer* (an aioflags client streaming from the flag
  server, writing every change to Redis: ``DataSystem.streaming(store=...)``)
  and N *workers* in daemon mode (``DataSystem.daemon(RedisStore(cache_ttl=
  ...))``: flags only from Redis, read again every ``--cache-ttl`` s);
- **streaming**: N workers each streaming from the flag server on its own;
- **plane**: N workers streaming with ``DataSystem.streaming(plane=PATH)``:
  one leads (its stream is the only one upstream), the others follow it
  over the plane's Unix socket.

Each worker is uvicorn serving a Starlette app whose aioflags client lives in
the app's lifespan; ``GET /eval`` awaits ``client.variation`` for every flag
(``--flags`` evaluations a request). One load generator (async httpx, in
this process) keeps ``--concurrency`` requests in flight per worker for
``--duration`` s. Reported per worker: evaluations per second, RSS (VmRSS
from /proc), and update propagation: a flag changed on the flag server is
timed until each worker's flag-change handler sees it (CLOCK_MONOTONIC is
system-wide, so the processes' stamps compare), p50 and p99 over all
workers and updates; for daemon mode also flag server -> Redis (the writer's
share, from a Redis keyspace notification). Propagation is measured with no
load running. With ``--runs`` > 1 the WORSE figure of the runs is reported
(lowest throughput, highest RSS and latencies). Timings are never asserted.

For the plane, also: the streams and full downloads the flag server served
while the N workers started; a change from the leader's store to each
follower's (the leader's flag-change handler to each follower's), p50 and
p99; the leader killed with SIGKILL until the flag server sees the new
leader's stream; and, at ``--join-flags`` flags, a worker joining a running
plane: from the start of its ``async with client`` to READY, and the
requests it made upstream (none expected).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from starlette.requests import Request

HERE = Path(__file__).resolve()
PREFIX = "bench"
PROPAGATION_FLAG = "propagate"
MODES = ("daemon", "streaming", "plane")


def now() -> float:
    """CLOCK_MONOTONIC: system-wide on Linux, so stamps compare across processes."""
    return time.monotonic()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------ roles
def flag_data(count: int) -> Any:
    """``count`` flags with a rule and a rollout, and the propagation flag."""
    from aioflags.testing import FlagData, clause

    data = FlagData()
    builders = [
        data.flag(f"flag-{i}")
        .variations(False, True)
        .fallthrough(False)
        .rule(clause("plan", "in", "pro", "enterprise"), serve=True)
        for i in range(count)
    ]
    builders.append(
        data.flag(PROPAGATION_FLAG).variations(*range(10_000)).fallthrough(0)
    )
    data.update(*builders)
    return data


async def role_flagserver(flags: int) -> None:
    """Serve the flags; on "update N" from stdin serve N from the propagation flag."""
    from aioflags.testing import FlagServer

    data = flag_data(flags)
    async with FlagServer() as server:
        data.attach(server)
        print(f"URL {server.url}", flush=True)
        stdin = anyio.wrap_file(sys.stdin)
        async for line in stdin:
            parts = line.split()
            if parts[:1] == ["update"]:
                stamp = now()
                data.update(data.flag(PROPAGATION_FLAG).fallthrough(int(parts[1])))
                print(f"SENT {parts[1]} {stamp!r}", flush=True)
            elif parts[:1] == ["count"]:
                # Streams, and full downloads (a stream or poll without a basis).
                streams = server.requests_to("/sdk/stream")
                polls = server.requests_to("/sdk/poll")
                full = sum("basis" not in r.query for r in (*streams, *polls))
                print(f"COUNT {len(streams)} {full}", flush=True)


async def role_writer(flag_url: str, redis_url: str) -> None:
    """Stream from the flag server, write every change to Redis, until stdin closes."""
    import aioflags
    from aioflags.stores import RedisStore

    store = RedisStore(url=redis_url, prefix=PREFIX)
    config = aioflags.Config(
        "sdk-key",
        base_uri=flag_url,
        stream_uri=flag_url,
        send_events=False,
        ready_timeout=30,
        data_system=aioflags.DataSystem.streaming(store=store),
    )
    async with aioflags.Client(config) as client:
        print(f"READY {client.status.name}", flush=True)
        stdin = anyio.wrap_file(sys.stdin)
        async for _ in stdin:
            pass


def worker_app(config: Any, flags: int) -> Any:
    """The worker's ASGI app: the client in the lifespan, /eval and /changes."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import aioflags

    keys = [f"flag-{i}" for i in range(flags)]
    contexts = [
        aioflags.Context.create(f"user-{i}", attributes={"plan": plan})
        for i, plan in enumerate(["free", "pro", "enterprise", "free"] * 25)
    ]
    changes: list[tuple[Any, float]] = []
    state: dict[str, Any] = {"n": 0}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with aioflags.Client(config) as client:
            state["client"] = client

            def changed(change: aioflags.FlagValueChange) -> None:
                changes.append((change.new_value, now()))

            client.add_flag_value_change_handler(
                PROPAGATION_FLAG, contexts[0], changed, default=-1
            )
            print(f"READY {client.status.name}", flush=True)
            yield

    async def evaluate(request: Request) -> JSONResponse:
        del request
        client = state["client"]
        state["n"] += 1
        context = contexts[state["n"] % len(contexts)]
        served = 0
        for key in keys:
            served += await client.bool_variation(key, context, False)
        return JSONResponse({"evaluations": len(keys), "served": served})

    async def recorded(request: Request) -> JSONResponse:
        del request
        role = state["client"].plane_role
        return JSONResponse({"changes": changes, "pid": os.getpid(), "role": role})

    return Starlette(
        routes=[Route("/eval", evaluate), Route("/changes", recorded)],
        lifespan=lifespan,
    )


def role_worker(args: argparse.Namespace) -> None:
    import uvicorn

    import aioflags
    from aioflags.stores import RedisStore

    if args.mode == "daemon":
        store = RedisStore(url=args.redis, prefix=PREFIX, cache_ttl=args.cache_ttl)
        config = aioflags.Config(
            data_system=aioflags.DataSystem.daemon(store),
            send_events=False,
            ready_timeout=30,
        )
    else:
        config = aioflags.Config(
            "sdk-key",
            base_uri=args.flag_url,
            stream_uri=args.flag_url,
            data_system=aioflags.DataSystem.streaming(plane=args.plane),
            send_events=False,
            ready_timeout=30,
        )
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    server = uvicorn.Server(
        uvicorn.Config(
            worker_app(config, args.flags),
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
    )
    server.run(sockets=[sock])


async def role_joiner(flag_url: str, plane: str) -> None:
    """Join the plane at ``plane``: print the ms from ``async with`` to READY (imports warm), then leave."""
    import aioflags

    config = aioflags.Config(
        "sdk-key",
        base_uri=flag_url,
        stream_uri=flag_url,
        data_system=aioflags.DataSystem.streaming(plane=plane),
        send_events=False,
        ready_timeout=30,
    )
    # What a process loads once, at its first start, is loaded first (a client
    # joined and left): the figure is the join itself, from the lock tried
    # and the socket connected to READY.
    async with aioflags.Client(config):
        pass
    client = aioflags.Client(config)
    start = now()
    async with client:
        took = now() - start
        print(
            f"JOINED {took * 1000:.1f} {client.plane_role} {client.status.name}",
            flush=True,
        )


# ------------------------------------------------------------- processes
class Proc:
    """A child process whose stdout lines we read (and stdin we write)."""

    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            bufsize=1,
        )

    def expect(self, prefix: str) -> str:
        """Read lines until one starts with ``prefix``; return it."""
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith(prefix):
                return line.strip()
        raise RuntimeError(f"process {self.popen.args!r} ended before {prefix!r}")

    def expect_anywhere(self, text: str) -> None:
        """Read lines until one contains ``text``."""
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if text in line:
                return
        raise RuntimeError(f"{self.popen.args!r} ended before {text!r}")

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    @property
    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.popen.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def script(*args: str) -> list[str]:
    return [sys.executable, str(HERE), *args]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server") or shutil.which(
        "redis-server", path="/usr/sbin:/usr/local/sbin"
    )
    if binary is None:
        sys.exit("redis-server not found: apt-get install redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        proc = Proc(
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", directory,
                "--logfile", "",
            ]
        )  # fmt: skip
        try:
            proc.expect_anywhere("Ready to accept connections")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.stop()


# ------------------------------------------------------------ measurement
async def load(ports: list[int], duration: float, concurrency: int) -> dict[int, int]:
    """Keep ``concurrency`` requests in flight per worker; evaluations served per port."""
    import httpx

    served = dict.fromkeys(ports, 0)
    deadline = now() + duration
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            port: await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
                )
            )
            for port in ports
        }

        async def drive(port: int) -> None:
            while now() < deadline:
                reply = await clients[port].get("/eval")
                served[port] += reply.json()["evaluations"]

        async with anyio.create_task_group() as tg:
            for port in ports:
                for _ in range(concurrency):
                    tg.start_soon(drive, port)
    return served


async def propagation(
    flagserver: Proc,
    ports: list[int],
    updates: int,
    redis_url: str | None,
    spacing: float,
    first: int,
) -> tuple[list[float], list[float], list[dict[int, float]]]:
    """Seconds from the flag server's update to each worker (and to Redis); each update's stamps by port."""
    import httpx

    to_workers: list[float] = []
    to_redis: list[float] = []
    rounds: list[dict[int, float]] = []
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        pubsub = None
        if redis_url is not None:
            from redis.asyncio import Redis

            raw = Redis.from_url(redis_url, decode_responses=True)
            stack.push_async_callback(raw.aclose)
            await raw.config_set("notify-keyspace-events", "KA")
            pubsub = await stack.enter_async_context(raw.pubsub())
            await pubsub.subscribe(f"__keyspace@0__:{PREFIX}:features")
        for n in range(first, first + updates):
            flagserver.send(f"update {n}")
            sent = float(flagserver.expect(f"SENT {n} ").split()[2])
            if pubsub is not None:
                with anyio.fail_after(30):
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=5.0
                        )
                        if message is not None and message["data"] == "hset":
                            to_redis.append(now() - sent)
                            break
            stamps: dict[int, float] = {}
            for port in ports:
                with anyio.fail_after(30):
                    while True:
                        reply = await http.get(f"http://127.0.0.1:{port}/changes")
                        seen = [t for v, t in reply.json()["changes"] if v == n]
                        if seen:
                            to_workers.append(seen[0] - sent)
                            stamps[port] = seen[0]
                            break
                        await anyio.sleep(0.01)
            rounds.append(stamps)
            # Spread the updates over the reload cycle (daemon mode).
            await anyio.sleep(spacing)
    return to_workers, to_redis, rounds


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def counts(flagserver: Proc) -> tuple[int, int]:
    """The streams and full downloads the flag server has served so far."""
    flagserver.send("count")
    _, streams, full = flagserver.expect("COUNT").split()
    return int(streams), int(full)


async def leader_port(ports: list[int]) -> int:
    import httpx

    async with httpx.AsyncClient(timeout=30) as http:
        for port in ports:
            reply = await http.get(f"http://127.0.0.1:{port}/changes")
            if reply.json()["role"] == "leader":
                return port
    raise RuntimeError("no worker leads the plane")


async def one_configuration(
    args: argparse.Namespace,
    mode: str,
    n: int,
    flagserver: Proc,
    flag_url: str,
    redis_url: str,
    first_update: int,
) -> dict[str, Any]:
    procs: list[Proc] = []
    plane = tempfile.mkdtemp(prefix="plane-")
    try:
        if mode == "daemon":
            from redis.asyncio import Redis

            raw = Redis.from_url(redis_url)
            await raw.flushall()
            await raw.aclose()
            writer = Proc(script("--role", "writer", flag_url, redis_url))
            procs.append(writer)
            writer.expect("READY")
        ports = [free_port() for _ in range(n)]
        workers = []
        before = counts(flagserver)
        for port in ports:
            worker = Proc(
                script(
                    "--role", "worker", "--mode", mode, "--port", str(port),
                    "--flag-url", flag_url, "--redis", redis_url,
                    "--cache-ttl", str(args.cache_ttl), "--flags", str(args.flags),
                )
                + (["--plane", f"{plane}/p"] if mode == "plane" else [])
            )  # fmt: skip
            procs.append(worker)
            workers.append(worker)
        for worker in workers:
            worker.expect("READY")
        after = counts(flagserver)
        await load(ports, min(0.5, args.duration), args.concurrency)  # warm-up
        served = await load(ports, args.duration, args.concurrency)
        rates = [served[p] / args.duration for p in ports]
        rss = [w.rss_mib for w in workers]
        to_workers, to_redis, rounds = await propagation(
            flagserver,
            ports,
            args.updates,
            redis_url if mode == "daemon" else None,
            args.cache_ttl / 3 if mode == "daemon" else 0.05,
            first_update,
        )
        figures = {
            "rate_mean": statistics.mean(rates),
            "rate_min": min(rates),
            "rss_max": max(rss),
            "p50": percentile(to_workers, 0.5),
            "p99": percentile(to_workers, 0.99),
            "redis_p50": percentile(to_redis, 0.5),
            "redis_p99": percentile(to_redis, 0.99),
            "streams": after[0] - before[0],
            "downloads": after[1] - before[1],
            "plane_p50": float("nan"),
            "plane_p99": float("nan"),
            "handover": float("nan"),
        }
        if mode == "plane" and n > 1:
            lead = await leader_port(ports)
            spread = [r[p] - r[lead] for r in rounds for p in r if p != lead]
            figures["plane_p50"] = percentile(spread, 0.5)
            figures["plane_p99"] = percentile(spread, 0.99)
            figures["handover"] = handover(flagserver, workers[ports.index(lead)])
        return figures
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(plane, ignore_errors=True)


def handover(flagserver: Proc, leader: Proc) -> float:
    """Seconds from SIGKILL of the plane's leader to the flag server counting a new stream."""
    streams = counts(flagserver)[0]
    start = now()
    leader.popen.kill()
    while counts(flagserver)[0] == streams:
        if now() - start > 30:
            raise RuntimeError("no new leader's stream within 30 s")
    return now() - start


async def joining(args: argparse.Namespace) -> tuple[float, int]:
    """At ``--join-flags`` flags: a worker joining a running plane, READY in (worst) s; requests upstream."""
    procs: list[Proc] = []
    plane = tempfile.mkdtemp(prefix="plane-")
    try:
        flagserver = Proc(
            script("--role", "flagserver", "--flags", str(args.join_flags))
        )
        procs.append(flagserver)
        flag_url = flagserver.expect("URL").split()[1]
        leader = Proc(
            script(
                "--role", "worker", "--mode", "plane", "--port", str(free_port()),
                "--flag-url", flag_url, "--flags", str(args.join_flags),
                "--plane", f"{plane}/p",
            )
        )  # fmt: skip
        procs.append(leader)
        leader.expect("READY")
        before = counts(flagserver)
        worst = 0.0
        for _ in range(5):
            joiner = Proc(script("--role", "joiner", flag_url, f"{plane}/p"))
            procs.append(joiner)
            _, took, role, status = joiner.expect("JOINED").split()
            if role != "follower" or status != "READY":
                raise RuntimeError(f"a joiner was {role}, {status}")
            worst = max(worst, float(took) / 1000)
            joiner.stop()
        after = counts(flagserver)
        return worst, after[0] - before[0] + after[1] - before[1]
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(plane, ignore_errors=True)


def worse(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The worse of two runs' figures, figure by figure (NaN: not measured)."""
    out = {}
    for key in a:
        low_is_bad = key.startswith("rate")
        pick = min if low_is_bad else max
        values = [v for v in (a[key], b[key]) if v == v]  # (NaN is not itself)
        out[key] = pick(values) if values else float("nan")
    return out


async def controller(args: argparse.Namespace) -> None:
    workers = [int(n) for n in args.workers.split(",")]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    update = 1
    with redis_server() as redis_url:
        flagserver = Proc(script("--role", "flagserver", "--flags", str(args.flags)))
        try:
            flag_url = flagserver.expect("URL").split()[1]
            for _ in range(args.runs):
                for n in workers:
                    for mode in args.modes.split(","):
                        got = await one_configuration(
                            args, mode, n, flagserver, flag_url, redis_url, update
                        )
                        update += args.updates
                        key = (mode, n)
                        results[key] = (
                            worse(results[key], got) if key in results else got
                        )
        finally:
            flagserver.stop()
    join = None
    for _ in range(args.runs if args.join_flags else 0):
        got_join = await joining(args)
        join = (
            got_join
            if join is None
            else (max(join[0], got_join[0]), max(join[1], got_join[1]))
        )
    ms = 1000.0
    print(
        f"\nScaling: {args.flags} flags, {args.flags} evaluations per request, "
        f"{args.concurrency} requests in flight per worker, {args.duration:g} s "
        f"of load; daemon cache_ttl={args.cache_ttl:g} s; worse of {args.runs} run(s); "
        f"{os.cpu_count()} CPU(s)"
    )
    print(
        f"  {'mode':<10}{'workers':>8}{'evals/s/worker':>16}{'(slowest)':>11}"
        f"{'RSS MiB':>9}{'p50 ms':>9}{'p99 ms':>9}{'->Redis p50/p99 ms':>20}"
        f"{'ratio':>8}"
    )
    modes = args.modes.split(",")
    for n in workers:
        for mode in modes:
            r = results[(mode, n)]
            base = results.get(("streaming", n), r)["rate_mean"]
            to_redis = (
                f"{r['redis_p50'] * ms:.1f}/{r['redis_p99'] * ms:.1f}"
                if mode == "daemon"
                else "-"
            )
            ratio = r["rate_mean"] / base if base else float("nan")
            print(
                f"  {mode:<10}{n:>8}{r['rate_mean']:>16,.0f}{r['rate_min']:>11,.0f}"
                f"{r['rss_max']:>9.1f}{r['p50'] * ms:>9.1f}{r['p99'] * ms:>9.1f}"
                f"{to_redis:>20}{ratio:>7.2f}x"
            )
    print(
        "  ratio: the mode's evaluations per second per worker over streaming's "
        "at the same worker count"
    )
    print(
        f"\n  {'plane':<10}{'workers':>8}{'streams':>9}{'downloads':>11}"
        f"{'leader->followers p50/p99 ms':>30}{'kill -9 -> new stream ms':>26}"
    )
    for n in workers:
        for mode in modes:
            r = results[(mode, n)]
            spread = (
                f"{r['plane_p50'] * ms:.1f}/{r['plane_p99'] * ms:.1f}"
                if mode == "plane" and n > 1
                else "-"
            )
            handed = f"{r['handover'] * ms:.0f}" if mode == "plane" and n > 1 else "-"
            print(
                f"  {mode:<10}{n:>8}{r['streams']:>9}{r['downloads']:>11}"
                f"{spread:>30}{handed:>26}"
            )
    print("  streams, downloads: what the flag server served while the workers started")
    if join is not None:
        print(
            f"\n  a worker joining a running plane at {args.join_flags:,} flags: READY in"
            f" {join[0] * ms:.1f} ms (worst of {5 * args.runs}), {join[1]} request(s) upstream"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--role", choices=["controller", "flagserver", "writer", "worker", "joiner"]
    )
    parser.add_argument("positional", nargs="*")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--cache-ttl", type=float, default=1.0)
    parser.add_argument("--flags", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--mode", choices=list(MODES))
    parser.add_argument("--plane", help="(a worker's) the plane's path")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="which layouts to run (default all)"
    )
    parser.add_argument(
        "--join-flags",
        type=int,
        default=1000,
        help="flags for the joining figure (0: skip)",
    )
    parser.add_argument("--port", type=int)
    parser.add_argument("--flag-url")
    parser.add_argument("--redis")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    args = parser.parse_args()
    if args.smoke:
        args.workers, args.runs, args.duration = "1", 1, 0.3
        args.updates, args.cache_ttl, args.flags = 2, 0.2, 5
        args.workers, args.join_flags = "2", 20
    role = args.role or "controller"
    if role == "flagserver":
        anyio.run(role_flagserver, args.flags)
    elif role == "writer":
        anyio.run(role_writer, *args.positional)
    elif role == "worker":
        role_worker(args)
    elif role == "joiner":
        anyio.run(role_joiner, *args.positional)
    else:
        anyio.run(controller, args)


if __name__ == "__main__":
    main()
