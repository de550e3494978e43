"""OFREP bulk evaluation: requests per second and p99 latency, ``serve`` and ``OFREPApp``.

    python benchmarks/bench_ofrep.py [--flags 100] [--seconds 5] [--concurrency 8] [--smoke]

Each request is a bulk evaluation (``POST /ofrep/v1/evaluate/flags``) of
``--flags`` flags of the benchmark corpus for a fresh context (no 304),
from ``--concurrency`` httpx connections in this process, over loopback:

- against a ``FlagServer`` (what ``aioflags serve`` runs: Hypercorn);
- against ``OFREPApp`` mounted in a Starlette app under uvicorn, evaluated by
  a running client (events off: bulk requests record no evaluations anyway).

LaunchDarkly's SDKs have no OFREP server to compare with; the ratio printed
is OFREPApp's throughput over ``serve``'s. The load generator shares the
machine (and the process) with the server: the figures are a floor, and
wall-clock figures swing on a shared machine; rerun before quoting.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

sys.path.insert(0, str(Path(__file__).parent))

from corpus import make_corpus

import aioflags
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagServer


async def load(base: str, seconds: float, concurrency: int) -> tuple[float, float, int]:
    latencies: list[float] = []
    errors = 0
    clients = [httpx.AsyncClient(base_url=base, timeout=30) for _ in range(concurrency)]
    for http in clients:  # warm: a connection each, the first evaluation compiled
        await http.post(
            "/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "w"}}
        )
    deadline = time.perf_counter() + seconds

    async def worker(n: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < deadline:
            body = {"context": {"targetingKey": f"user-{n}-{i}", "plan": "pro"}}
            start = time.perf_counter()
            answer = await http.post("/ofrep/v1/evaluate/flags", json=body)
            latencies.append(time.perf_counter() - start)
            errors += answer.status_code != 200
            i += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for n, http in enumerate(clients):
            tg.start_soon(worker, n, http)
    elapsed = time.perf_counter() - started
    for http in clients:
        await http.aclose()
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else 0.0
    return len(latencies) / elapsed, p99 * 1000, errors


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flags", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.flags, args.seconds, args.concurrency = 10, 0.3, 2
    corpus = make_corpus(n_flags=args.flags)
    flags, segments = corpus["flags"], corpus["segments"]
    print(f"aioflags from {Path(aioflags.__file__).parent}")
    print(f"bulk OFREP, {len(flags)} flags per request, {args.concurrency} connections")
    async with FlagServer(flags, segments) as server:
        serve = await load(server.url, args.seconds, args.concurrency)
        print(
            f"serve      {serve[0]:8.0f} req/s   p99 {serve[1]:7.1f} ms   errors {serve[2]}"
        )
        config = server.config(send_events=False, diagnostic_opt_out=True)
        async with aioflags.Client(config) as client:
            app = Starlette(routes=[Mount("/flags", OFREPApp(client, expose="all"))])
            # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say TCP.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]
            uv = uvicorn.Server(
                uvicorn.Config(app, log_level="warning", lifespan="off")
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(uv.serve, [sock])
                mounted = await load(
                    f"http://127.0.0.1:{port}/flags", args.seconds, args.concurrency
                )
                uv.should_exit = True
            sock.close()
    print(
        f"OFREPApp   {mounted[0]:8.0f} req/s   p99 {mounted[1]:7.1f} ms   errors {mounted[2]}"
    )
    print(f"throughput ratio OFREPApp/serve: {mounted[0] / serve[0]:.2f}")
    if serve[2] or mounted[2]:
        sys.exit(1)


if __name__ == "__main__":
    anyio.run(main)
