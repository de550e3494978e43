"""READY from a flagd sync server with 1,000 flags: aioflags vs flagd's Python provider (issue 88).

    python benchmarks/bench_flagd_ready.py [--flags 1000] [--runs 6] [--smoke] [--preimport] [--collect] [--both]

One server (``aioflags.testing.FlagdServer``, flagd's ``flagd.sync.v1`` on
loopback) in a process of its own serves one document of ``--flags`` flagd
flags (a third static, a third ``fractional``, a third ``if`` over
``sem_ver`` and a ``$ref``). Each run is a fresh process that imports its
SDK, then measures, on the wall clock and in CPU time (the process's, every
thread), from the start to READY:

- aioflags: ``async with aioflags.Client(Config(data_system=DataSystem.flagd(...)))``
  entered (the client READY);
- flagd: ``api.set_provider_and_wait(FlagdProvider(resolver_type=IN_PROCESS,
  ...))`` returned. Its ``initialize`` waits on a thread that receives the
  first message, polling every 50 ms: its times are quantised to 50 ms.

What each side imports before its window is timed apart (``imports``;
``imports+wall``: from the first import to READY, the ratio of those sums):
flagd's provider imports all it runs with when it is imported; aioflags
imports gRPC before the window (as flagd's provider does), and what its
client needs to run (anyio's event loop backend, the supervisor, the store,
the generated messages) as the client starts: inside the window, unless
``--preimport`` (the modules a first start imported, learnt from a start
before the timed runs, are imported before each window). ``--both``:
aioflags' process imports flagd's provider too (a migration has both:
their ``flagd.sync.v1`` messages load side by side), whose modules' garbage
may then cost aioflags' window a full collection; ``--collect`` collects
the imports' garbage before each window, on both sides.

The runs alternate (aioflags, flagd, flagd, aioflags, ...) against the same
server; each pair's ratio is printed, and the worst. Needs flagd's provider
and the ``flagd`` extra (see flagd_reference.py). Never a CI assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


def document(flags: int) -> dict[str, Any]:
    """``flags`` flagd flags: static, fractional, and sem_ver with a $ref."""
    out: dict[str, Any] = {}
    for i in range(flags):
        flag: dict[str, Any] = {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
        }
        if i % 3 == 1:
            flag["targeting"] = {
                "fractional": [
                    {"cat": [{"var": "$flagd.flagKey"}, {"var": "user.id"}]},
                    ["on", 10 + i % 50],
                    ["off", 50],
                ]
            }
        elif i % 3 == 2:
            flag["targeting"] = {
                "if": [
                    {"$ref": f"staff-{i % 10}"},
                    "on",
                    {"sem_ver": [{"var": "version"}, ">=", f"{i % 7}.{i % 5}.0"]},
                    "on",
                    None,
                ]
            }
        out[f"flag-{i}"] = flag
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "metadata": {"flagSetId": "bench"},
        "$evaluators": {
            f"staff-{n}": {"ends_with": [{"var": "email"}, f"@team{n}.example.com"]}
            for n in range(10)
        },
        "flags": out,
    }


# ------------------------------------------------------------------ the server
async def serve(flags: int) -> None:
    from aioflags.testing import FlagdServer

    # GetMetadata UNIMPLEMENTED (flagd --disable-sync-metadata): flagd's
    # provider 0.6.1 loses its sync thread to a KeyError when GetMetadata
    # answers an empty metadata and no sync_context comes with the flags.
    async with FlagdServer(document(flags), get_metadata=False) as server:
        print(server.port, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes it


# -------------------------------------------------------------------- the runs
async def ours(
    port: int, preimport: list[str], collect: bool, both: bool, probe: bool
) -> None:
    import importlib

    imports = time.perf_counter()
    # gRPC imported before the window, as flagd's provider imports it with
    # itself (aioflags imports it when a flagd data system starts).
    import grpc.aio  # noqa: F401

    import aioflags

    if both:
        # flagd's own provider in the same process (a migration has both):
        # their generated flagd.sync.v1 modules load side by side.
        import openfeature.contrib.provider.flagd  # noqa: F401
    for name in preimport:
        importlib.import_module(name)
    imports = time.perf_counter() - imports
    if collect:
        gc.collect()

    config = aioflags.Config(
        data_system=aioflags.DataSystem.flagd(f"127.0.0.1:{port}", deadline=10.0),
        send_events=False,
    )
    before = set(sys.modules)
    cpu, wall = time.process_time(), time.perf_counter()
    async with aioflags.Client(config) as client:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        started = sorted(set(sys.modules) - before)
        if client.status is not aioflags.ProviderStatus.READY:
            raise SystemExit(f"not READY: {client.status}")
        user = aioflags.Context.from_dict({"kind": "user", "key": "u"})
        if await client.variation("flag-0", user, True) is not False:
            raise SystemExit("no flags")
        result: dict[str, Any] = {"wall": wall, "cpu": cpu, "imports": imports}
        if probe:
            result["started"] = started
        print(json.dumps(result), flush=True)


def theirs(port: int, collect: bool) -> None:
    imports = time.perf_counter()
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType

    imports = time.perf_counter() - imports
    if collect:
        gc.collect()
    provider = FlagdProvider(
        resolver_type=ResolverType.IN_PROCESS,
        host="127.0.0.1",
        port=port,
        deadline_ms=10_000,
    )
    cpu, wall = time.process_time(), time.perf_counter()
    api.set_provider_and_wait(provider)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    details = api.get_client().get_boolean_details("flag-0", True)
    if details.variant != "off":
        raise SystemExit(f"not READY: {details}")
    print(json.dumps({"wall": wall, "cpu": cpu, "imports": imports}), flush=True)
    api.shutdown()


def run(
    side: str, port: int, preimport: list[str], collect: bool, both: bool = False
) -> dict[str, Any]:
    extra = ["--preimport-names", ",".join(preimport)] if preimport else []
    extra += ["--collect"] if collect else []
    extra += ["--both"] if both else []
    done = subprocess.run(
        [sys.executable, str(HERE), "--run", side, str(port), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{side}: {done.stdout[-1000:]}{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=6, help="runs of each side")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--preimport",
        action="store_true",
        help="import what aioflags' client loads as it starts before the window too",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="gc.collect() before each window (both sides): the imports' garbage",
    )
    parser.add_argument(
        "--both",
        action="store_true",
        help="aioflags' process imports flagd's provider too (a migration's)",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--preimport-names", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve))
        return
    if args.run is not None:
        side, port = args.run
        names = [n for n in args.preimport_names.split(",") if n]
        if side in ("aioflags", "probe"):
            asyncio.run(
                ours(int(port), names, args.collect, args.both, side == "probe")
            )
        else:
            theirs(int(port), args.collect)
        return
    if args.smoke:
        args.flags, args.runs = 30, 1
    server = subprocess.Popen(
        [sys.executable, str(HERE), "--serve", str(args.flags)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        pre: list[str] = []
        if args.preimport:
            # What a first start imports, learnt from a start of its own.
            pre = run("probe", port, [], False, args.both)["started"]
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        collect, both = args.collect, args.both
        for i in range(args.runs):
            if i % 2 == 0:
                a = run("aioflags", port, pre, collect, both)
                b = run("flagd", port, [], collect)
            else:
                b = run("flagd", port, [], collect)
                a = run("aioflags", port, pre, collect, both)
            pairs.append((a, b))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    print(
        f"\nflagd READY, {args.flags} flags from a loopback sync server, {args.runs} interleaved pairs:"
    )
    where = "before the window" if args.preimport else "in the window"
    swept = "; gc.collect() before each window" if args.collect else ""
    beside = "; flagd's provider imported in aioflags' process too" if args.both else ""
    print(
        f"(aioflags' start-up imports {where}; imports: before each window{swept}{beside})"
    )
    if pre:
        print(f"(imported before aioflags' window: {', '.join(pre)})")
    print(
        f"{'':>6}{'aioflags wall':>15}{'flagd wall':>12}{'ratio':>8}{'aioflags CPU':>15}{'flagd CPU':>12}{'ratio':>8}"
        f"{'imports: aioflags':>20}{'flagd':>10}{'imports+wall ratio':>20}"
    )
    for n, (a, b) in enumerate(pairs, start=1):
        print(
            f"{n:>6}{a['wall'] * 1000:>12.1f} ms{b['wall'] * 1000:>9.1f} ms{a['wall'] / b['wall']:>7.2f}x"
            f"{a['cpu'] * 1000:>12.1f} ms{b['cpu'] * 1000:>9.1f} ms{a['cpu'] / b['cpu']:>7.2f}x"
            f"{a['imports'] * 1000:>17.1f} ms{b['imports'] * 1000:>7.1f} ms"
            f"{_total(a) / _total(b):>19.2f}x"
        )
    walls = [a["wall"] / b["wall"] for a, b in pairs]
    cpus = [a["cpu"] / b["cpu"] for a, b in pairs]
    totals = [_total(a) / _total(b) for a, b in pairs]
    print(
        f"ratio aioflags/flagd: wall median {statistics.median(walls):.2f}x, worst {max(walls):.2f}x; "
        f"CPU median {statistics.median(cpus):.2f}x, worst {max(cpus):.2f}x; "
        f"imports + wall median {statistics.median(totals):.2f}x, worst {max(totals):.2f}x"
    )


def _total(side: dict[str, Any]) -> float:
    """From the first import to READY: the imports before the window, and the window."""
    total: float = side["imports"] + side["wall"]
    return total


if __name__ == "__main__":
    main()
