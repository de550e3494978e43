"""The flag plane's liveness figures (issue 85): a stopped leader, a worker starting beside it, SIGCONT, followers that never read.

    python benchmarks/bench_plane_liveness.py [--followers 8] [--runs 2] [--data-mb 4] [--smoke]

A loopback ``aioflags.testing.FlagServer`` runs in this process; each
worker is a process of its own (``--role worker``): a client on the plane
streaming from it, evaluating flag ``f`` every 2 ms as an app's handlers
would, printing a CLOCK_MONOTONIC stamp (system-wide on Linux, so the
processes' stamps compare) with each change of its role or value, a line
at READY, and ``default`` if an evaluation ever served the default.

Each run: 1 + ``--followers`` workers start on one plane and agree on
``f``; the leader is stopped (SIGSTOP) and ``f`` flipped at once; timed
until every follower serves the flip (from its own upstream: the leader
is stopped). Then a worker starts beside the stopped leader: spawn to
READY, beside a worker's start on a plane of its own (its normal start
time). Then the leader continues (SIGCONT): timed until every worker
follows again and the flag service has one stream open. Last, a leader
with ``--data-mb`` of flags and 100 connections that say hello and never
read: the leader's RSS growth (VmRSS). With ``--runs`` > 1 the worse
figure of the runs is printed. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream

HERE = Path(__file__).resolve()
STREAM = "/sdk/stream"
ON: dict[str, Any] = {
    "on": True,
    "variations": ["on", "off"],
    "offVariation": 1,
    "fallthrough": {"variation": 0},
}
OFF: dict[str, Any] = {**ON, "fallthrough": {"variation": 1}}


def now() -> float:
    return time.monotonic()


# ------------------------------------------------------------------ worker
async def role_worker(plane: str, url: str) -> None:
    import aioflags

    config = aioflags.Config(
        "sdk-key",
        base_uri=url,
        stream_uri=url,
        events_uri=url,
        data_system=aioflags.DataSystem.streaming(plane=plane),
        send_events=False,
        ready_timeout=30,
        initial_retry_delay=0.05,
    )
    user = aioflags.Context.create("user-1")
    async with aioflags.Client(config) as client:
        print(f"{now():.6f} ready", flush=True)
        role: object = "?"
        value: object = "?"
        while True:
            served = await client.variation("f", user, "default")
            if served == "default":
                print(f"{now():.6f} default", flush=True)
            if client.plane_role != role:
                role = client.plane_role
                print(f"{now():.6f} role {role}", flush=True)
            if served != value:
                value = served
                print(f"{now():.6f} value {value}", flush=True)
            await anyio.sleep(0.002)


# -------------------------------------------------------------- controller
class Worker:
    """A worker process and its stamped lines."""

    def __init__(self, process: anyio.abc.Process, spawned: float) -> None:
        self.process = process
        self.spawned = spawned
        assert process.stdout is not None
        self._text = TextReceiveStream(process.stdout)
        self._pending = ""
        self.lines: list[tuple[float, str]] = []

    async def until(self, words: str, after: float = 0.0) -> float:
        """The stamp of its first line ``words`` stamped after ``after``."""
        with anyio.fail_after(60):
            while True:
                for stamp, line in self.lines:
                    if line == words and stamp >= after:
                        return stamp
                if "\n" not in self._pending:
                    self._pending += await self._text.receive()
                    continue
                one, self._pending = self._pending.split("\n", 1)
                stamp, _, line = one.partition(" ")
                self.lines.append((float(stamp), line))

    @property
    def role(self) -> str:
        roles = [line for _, line in self.lines if line.startswith("role ")]
        return roles[-1].split()[1] if roles else "?"

    @property
    def defaults(self) -> int:
        return sum(1 for _, line in self.lines if line == "default")


async def spawn(stack: AsyncExitStack, plane: str, url: str) -> Worker:
    spawned = now()
    process = await stack.enter_async_context(
        await anyio.open_process(
            [sys.executable, str(HERE), "--role", "worker", plane, url],
            stderr=None,
        )
    )
    stack.callback(lambda: process.returncode is None and process.kill())
    return Worker(process, spawned)


async def one_run(followers: int, data_mb: int) -> dict[str, float]:
    from aioflags.testing import FlagServer

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        plane = os.path.join(folder, "plane")
        async with FlagServer({"f": ON}) as server, AsyncExitStack() as stack:
            every = [
                await spawn(stack, plane, server.url) for _ in range(followers + 1)
            ]
            for worker in every:
                await worker.until("value on")
            await anyio.sleep(0.5)  # (each has printed its role)
            for worker in every:
                await worker.until(f"role {worker.role}")
            (leader,) = [w for w in every if w.role == "leader"]
            others = [w for w in every if w is not leader]

            stopped = now()
            leader.process.send_signal(signal.SIGSTOP)
            server.set_flag("f", OFF)
            fresh = [await w.until("value off", stopped) for w in others]
            figures["stopped → every follower on fresh data (s)"] = max(fresh) - stopped

            late = await spawn(stack, plane, server.url)
            ready = await late.until("ready")
            figures["a worker starting beside it → READY (s)"] = ready - late.spawned

            resumed = now()
            leader.process.send_signal(signal.SIGCONT)
            following = [
                await w.until("role follower", resumed) for w in [*others, late]
            ]
            with anyio.fail_after(60):
                await server.wait_until(lambda: server.open_streams(STREAM) == 1)
            one_stream = now()
            figures["SIGCONT → following again, one stream (s)"] = (
                max([*following, one_stream]) - resumed
            )
            figures["defaults served"] = sum(w.defaults for w in [*every, late])

        # A worker's start time on a plane of its own (it leads).
        async with FlagServer({"f": ON}) as server, AsyncExitStack() as stack:
            alone = await spawn(stack, os.path.join(folder, "alone"), server.url)
            figures["a worker's start on its own plane → READY (s)"] = (
                await alone.until("ready") - alone.spawned
            )

        figures[
            "100 followers that never read → leader RSS growth (MiB)"
        ] = await non_readers(os.path.join(folder, "big"), data_mb)
    return figures


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def non_readers(plane: str, data_mb: int) -> float:
    from aioflags._datasystem._plane import _wire as wire
    from aioflags.testing import FlagServer

    flags = {
        f"big{n}": {**ON, "variations": ["x" * 100_000, "y"]}
        for n in range(data_mb * 10)
    }
    flags["f"] = ON
    async with FlagServer(flags) as server, AsyncExitStack() as stack:
        leader = await spawn(stack, plane, server.url)
        await leader.until("value on")
        await anyio.sleep(1)  # (settled)
        before = rss(leader.process.pid)
        hello = wire.hello(wire.environment_of("sdk-key"))
        for _ in range(100):
            stream = await stack.enter_async_context(await anyio.connect_unix(plane))
            await stream.send(hello)
            got = b""
            while len(got) < len(hello) + 1000:  # served: then it reads no more
                got += await stream.receive(len(hello) + 1000 - len(got))
        await anyio.sleep(2)  # (the leader queues what it would send)
        return (rss(leader.process.pid) - before) / 2**20


async def controller(args: argparse.Namespace) -> None:
    worst: dict[str, float] = {}
    for run in range(args.runs):
        figures = await one_run(args.followers, args.data_mb)
        print(f"run {run + 1}:", flush=True)
        for name, figure in figures.items():
            print(f"  {name}: {figure:.3f}", flush=True)
            worst[name] = max(worst.get(name, figure), figure)
    print(f"worse of {args.runs} runs ({args.followers} followers):")
    for name, figure in worst.items():
        print(f"  {name}: {figure:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["controller", "worker"])
    parser.add_argument("positional", nargs="*")
    parser.add_argument("--followers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--data-mb", type=int, default=4)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes: 1 follower, 1 run, 1 MB (tests)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.followers, args.runs, args.data_mb = 1, 1, 1
    if args.role == "worker":
        anyio.run(role_worker, *args.positional)
    else:
        anyio.run(controller, args)


if __name__ == "__main__":
    main()
