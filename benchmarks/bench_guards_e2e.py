"""Guarded rollouts end to end (issue 98): a FastAPI app under ``uvicorn --workers 4`` on a flag plane.

    python benchmarks/bench_guards_e2e.py [--workers 4] [--rate 300] [--fault 0.05]
        [--minutes 10] [--runs 1] [--smoke]

A loopback ``aioflags.testing.FlagServer`` serves flag ``new-checkout``, a
50/50 rollout of ``True`` against ``False``; ``examples/guarded_rollout.py``
runs under ``uvicorn --workers N``, each worker's client on one flag plane
(a temporary folder), with ``Guard("new-checkout", control=False,
action="pin")``. Its new checkout raises in ``--fault`` of its requests.
httpx drives ``GET /checkout`` at ``--rate`` requests a second (paced; a
new connection each, so that the kernel spreads them over the workers;
each with a user key of its own, so that the rollout splits them). Each
answer names its worker, the worker's plane role, what the flag served
and why, and the worker's count of evaluations (``x-seq``). Measured:

- **pin**: the seconds from the first request until every worker has
  answered ``GUARDED``, and the requests sent by then;
- **after**: the treatment answers a worker gave after its first
  ``GUARDED`` one, by ``x-seq`` (evaluated after the pin: 0 expected);
- **kill -9**: the plane's leader (its pid from ``x-plane-role``) killed
  with SIGKILL; uvicorn starts a worker in its place; the traffic goes on
  until the new worker answers ``GUARDED`` (``--after-kill`` seconds at
  most): the treatment answers the surviving workers gave (0 expected),
  and those the new worker gave before it pinned (0 with the plane
  carrying the pin; without it, each worker decides alone);
- **A/A**: the same app for ``--minutes`` with no fault in the new
  checkout and the same 1 % fault in both: the ``GUARDED`` answers and the
  decisions the workers printed (0 expected).

Printed: each figure, and the rate reached (the machine may not reach
``--rate``: what it reached is said, never faked); with ``--runs`` > 1,
the worse of the runs. ``--smoke``: 2 workers, 20 requests, no decision.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

ROOT = Path(__file__).resolve().parent.parent
FLAG = "new-checkout"
#: A safety net against a hang, never a timing: workers import aioflags and
#: FastAPI and start a client each; a loaded machine takes long to do it.
GUARD = 120
#: Requests in flight at most: past it the driver waits (the rate reached drops).
IN_FLIGHT = 256


def rollout_flag() -> dict[str, Any]:
    """Flag ``new-checkout``: a 50/50 rollout of ``True`` (variation 0) against ``False``.

    The example's flag file's (``examples/guarded_rollout.json``).
    """
    flags = json.loads((ROOT / "examples" / "guarded_rollout.json").read_text())
    flag: dict[str, Any] = flags["flags"][FLAG]
    return flag


def free_port() -> int:
    """A port on 127.0.0.1 free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --------------------------------------------------------------- the app
class App:
    """uvicorn's master process and the lines its workers print on stderr."""

    def __init__(self, process: anyio.abc.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []
        self.ended = False
        self._changed = anyio.Event()

    async def read(self) -> None:
        """Keep every stderr line (a task of its own, until the process ends)."""
        assert self.process.stderr is not None
        pending = ""
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
            async for chunk in self.process.stderr:
                pending += chunk.decode(errors="replace")
                *lines, pending = pending.split("\n")
                if lines:
                    self.lines.extend(lines)
                    self._changed.set()
                    self._changed = anyio.Event()
        self.ended = True
        self._changed.set()

    def count(self, text: str) -> int:
        """How many lines contain ``text``."""
        return sum(text in line for line in self.lines)

    async def until(self, text: str, times: int = 1) -> None:
        """Until ``times`` lines contain ``text`` (fails after :data:`GUARD` seconds, or if uvicorn exits)."""
        with anyio.fail_after(GUARD):
            while self.count(text) < times:
                if self.ended:
                    said = "\n".join(self.lines[-30:])
                    raise RuntimeError(f"uvicorn exited before {text!r}:\n{said}")
                await self._changed.wait()


@asynccontextmanager
async def app(
    url: str, plane: str, workers: int, *, fault: float, base_fault: float = 0.0
) -> AsyncIterator[App]:
    """The example under ``uvicorn --workers``, started; its process group ends with the block.

    uvicorn runs in a session of its own: killing its master alone would
    leave its workers running. SIGTERM to the group first (uvicorn stops
    its workers), SIGKILL for what is left.
    """
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIOFLAGS_")},
        "AIOFLAGS_SDK_KEY": "sdk-key",
        "AIOFLAGS_BASE_URI": url,
        "AIOFLAGS_STREAM_URI": url,
        "AIOFLAGS_SEND_EVENTS": "false",
        "AIOFLAGS_READY_TIMEOUT": str(GUARD),
        "CHECKOUT_PLANE": plane,
        "CHECKOUT_FAULT": str(fault),
        "CHECKOUT_BASE_FAULT": str(base_fault),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    argv = [sys.executable, "-m", "uvicorn", "guarded_rollout:app"]
    argv += ["--app-dir", str(ROOT / "examples"), "--workers", str(workers)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    process = await anyio.open_process(
        argv,
        cwd=ROOT,
        env=environment,
        start_new_session=True,
        stdout=subprocess.DEVNULL,  # (uvicorn and the app say all on stderr)
    )
    async with process, anyio.create_task_group() as group:
        running = App(process, port)
        group.start_soon(running.read)
        try:
            await running.until("Application startup complete", workers)
            yield running
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with anyio.move_on_after(GUARD, shield=True):
                await process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            group.cancel_scope.cancel()


# --------------------------------------------------------------- traffic
@dataclass
class Worker:
    """What one worker's answers said."""

    pid: int
    #: Seconds from the run's first request to this worker's first answer.
    first_at: float = 0.0
    role: str = "?"
    answers: int = 0
    treatment: int = 0
    #: ``x-seq`` and time of its first ``GUARDED`` answer (None: none yet).
    pinned_seq: int | None = None
    pinned_at: float | None = None
    #: Treatment answers evaluated after its first ``GUARDED`` one.
    treatment_after: int = 0
    #: Treatment answers it gave, each ``x-seq``, to count late ones exactly.
    treatment_seqs: list[int] = field(default_factory=list)


@dataclass
class Tally:
    """Every answer, by worker; the failures and the time."""

    start: float = 0.0
    sent: int = 0
    answered: int = 0
    errors: int = 0  # 5xx: the checkout's faults
    lost: int = 0  # no answer (a worker killed with the request in it)
    guarded: int = 0
    workers: dict[int, Worker] = field(default_factory=dict)

    def add(self, reply: httpx.Response, now: float) -> None:
        """Count one answer."""
        headers = reply.headers
        pid = int(headers["x-worker"])
        worker = self.workers.get(pid)
        if worker is None:
            worker = self.workers[pid] = Worker(pid, now - self.start)
        worker.role = headers["x-plane-role"]
        worker.answers += 1
        self.answered += 1
        if reply.status_code >= 500:
            self.errors += 1
        seq = int(headers["x-seq"])
        if json.loads(headers["x-variation"]) is True:
            worker.treatment += 1
            worker.treatment_seqs.append(seq)
            if worker.pinned_seq is not None and seq > worker.pinned_seq:
                worker.treatment_after += 1
        if headers["x-reason"] == "GUARDED":
            self.guarded += 1
            if worker.pinned_seq is None or seq < worker.pinned_seq:
                worker.pinned_seq = seq
                worker.pinned_at = now - self.start
                # (answers that arrived before this one, evaluated after it)
                worker.treatment_after = sum(s > seq for s in worker.treatment_seqs)

    def pinned(self, pids: set[int] | None = None) -> bool:
        """Whether each of ``pids`` (default: every worker seen) has answered GUARDED."""
        chosen = self.workers if pids is None else pids
        return all(self.workers[p].pinned_seq is not None for p in chosen)


async def drive(
    port: int,
    rate: float,
    tally: Tally,
    done: Callable[[], bool],
    limit: float,
    *,
    prefix: str,
) -> float:
    """``GET /checkout`` at ``rate`` a second until ``done()`` or ``limit`` seconds; the rate reached.

    The rate reached: the answers received over the seconds it drove.
    """
    url = f"http://127.0.0.1:{port}/checkout"
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=0)
    room = anyio.Semaphore(IN_FLIGHT)
    start = anyio.current_time()
    if not tally.start:
        tally.start = start
    answered_before = tally.answered
    async with (
        httpx.AsyncClient(limits=limits, timeout=GUARD) as http,
        anyio.create_task_group() as group,
    ):

        async def one(key: str) -> None:
            try:
                reply = await http.get(
                    url, params={"user": key}, headers={"x-request-id": key}
                )
            except httpx.TransportError:
                tally.lost += 1
                return
            finally:
                room.release()
            tally.add(reply, anyio.current_time())

        tick = start
        while not done() and anyio.current_time() - start < limit:
            await anyio.sleep_until(tick)
            tick = max(tick + 1 / rate, anyio.current_time() - 1)  # (no burst past 1 s)
            await room.acquire()  # (the app is behind: the rate drops)
            group.start_soon(one, f"{prefix}{tally.sent}")
            tally.sent += 1
    elapsed = anyio.current_time() - start
    return (tally.answered - answered_before) / elapsed if elapsed > 0 else 0.0


# ---------------------------------------------------------------- the runs
@dataclass
class Figures:
    """One run's figures (the contract's row)."""

    workers: int
    rate: float = 0.0
    pin_seconds: float | None = None
    pin_requests: int = 0
    treatment_after: int = 0
    answers: int = 0
    leader_killed: bool = False
    restarted: bool = False
    survivors_treatment_after: int = 0
    new_worker_treatment: int = 0
    new_worker_answered_seconds: float | None = None
    new_worker_pinned_seconds: float | None = None
    aa_seconds: float = 0.0
    aa_rate: float = 0.0
    aa_answers: int = 0
    aa_errors: int = 0
    aa_guarded: int = 0
    aa_decisions: int = 0
    #: Each worker's guard state at the end of the A/A run, and the fewest
    #: requests counted in an arm of any worker.
    aa_states: dict[int, str] = field(default_factory=dict)
    aa_fewest: int = 0
    lost: int = 0


async def guarded_run(
    workers: int,
    rate: float,
    fault: float,
    *,
    tail: float = 5.0,
    limit: float = 600.0,
    after_kill: float = 120.0,
    kill: bool = True,
) -> Figures:
    """The pin, the treatment after it, and the leader's ``kill -9``."""
    from aioflags.testing import FlagServer

    figures = Figures(workers)
    tally = Tally()
    with tempfile.TemporaryDirectory() as folder:
        async with (
            FlagServer({FLAG: rollout_flag()}) as server,
            app(server.url, str(Path(folder) / "plane"), workers, fault=fault) as run,
        ):
            # Until every worker has answered GUARDED, then a tail.
            pinned_at: list[float] = []

            def all_pinned() -> bool:
                if pinned_at:
                    return anyio.current_time() - pinned_at[0] >= tail
                if len(tally.workers) >= workers and tally.pinned():
                    pinned_at.append(anyio.current_time())
                    figures.pin_requests = tally.sent
                return False

            figures.rate = await drive(
                run.port, rate, tally, all_pinned, limit, prefix="u"
            )
            if tally.pinned() and len(tally.workers) >= workers:
                figures.pin_seconds = max(
                    w.pinned_at for w in tally.workers.values() if w.pinned_at
                )
            figures.treatment_after = sum(
                w.treatment_after for w in tally.workers.values()
            )
            figures.answers = tally.answered
            if kill and figures.pin_seconds is not None:
                await _kill_the_leader(run, tally, figures, rate, after_kill)
            figures.lost = tally.lost
    return figures


async def _kill_the_leader(
    run: App,
    tally: Tally,
    figures: Figures,
    rate: float,
    after_kill: float,
) -> None:
    leaders = [w.pid for w in tally.workers.values() if w.role == "leader"]
    if not leaders:
        return
    before = set(tally.workers)
    started = run.count("Application startup complete")
    os.kill(leaders[0], signal.SIGKILL)  # (a worker of the uvicorn this run started)
    kill_time = anyio.current_time()
    figures.leader_killed = True
    survivors = before - {leaders[0]}
    for pid in survivors:  # (counted afresh from here)
        tally.workers[pid].treatment_after = 0

    def new_worker_pinned() -> bool:
        new = set(tally.workers) - before
        return bool(new) and tally.pinned(new)

    # The traffic goes on through the kill (the killed worker's requests
    # are lost) and uvicorn's restart, until the new worker has pinned.
    await drive(run.port, rate, tally, new_worker_pinned, after_kill, prefix="k")
    figures.restarted = run.count("Application startup complete") > started
    figures.survivors_treatment_after = sum(
        tally.workers[p].treatment_after for p in survivors
    )
    new = [tally.workers[p] for p in set(tally.workers) - before]
    figures.new_worker_treatment = sum(
        len([s for s in w.treatment_seqs if w.pinned_seq is None or s < w.pinned_seq])
        for w in new
    )
    if new:
        figures.new_worker_answered_seconds = max(
            w.first_at - (kill_time - tally.start) for w in new
        )
    if new and all(w.pinned_at is not None for w in new):
        figures.new_worker_pinned_seconds = max(
            (w.pinned_at or 0.0) - (kill_time - tally.start) for w in new
        )


async def guard_states(port: int, workers: int) -> dict[int, dict[str, Any]]:
    """Each worker's ``GET /guards``, asked until every one of ``workers`` has answered."""
    found: dict[int, dict[str, Any]] = {}
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=GUARD) as http:
        with anyio.fail_after(GUARD):
            while len(found) < workers:  # (a new connection each: any worker)
                body = (await http.get(f"http://127.0.0.1:{port}/guards")).json()
                found[body["worker"]] = body
    return found


async def aa_run(
    workers: int, rate: float, seconds: float, *, until_each: int | None = None
) -> Figures:
    """The A/A twin: no fault in the new checkout, 1 % in both; nothing may be pinned.

    It runs ``seconds``, or until each of ``workers`` has answered
    ``until_each`` requests, whichever comes first.
    """
    from aioflags.testing import FlagServer

    figures = Figures(workers)
    tally = Tally()
    with tempfile.TemporaryDirectory() as folder:
        async with (
            FlagServer({FLAG: rollout_flag()}) as server,
            app(
                server.url,
                str(Path(folder) / "plane"),
                workers,
                fault=0.0,
                base_fault=0.01,
            ) as run,
        ):

            def enough() -> bool:
                return (
                    until_each is not None
                    and len(tally.workers) >= workers
                    and all(w.answers >= until_each for w in tally.workers.values())
                )

            start = anyio.current_time()
            figures.aa_rate = await drive(
                run.port, rate, tally, enough, seconds, prefix="a"
            )
            figures.aa_seconds = anyio.current_time() - start
            states = await guard_states(run.port, workers)
            figures.aa_states = {pid: body["state"] for pid, body in states.items()}
            figures.aa_fewest = min(
                (
                    arm["requests"]
                    for body in states.values()
                    for arm in body["arms"].values()
                ),
                default=0,
            )
            figures.aa_answers = tally.answered
            figures.aa_errors = tally.errors
            figures.aa_guarded = tally.guarded
            figures.aa_decisions = sum(
                run.count(f"guard {FLAG}: {kind}") for kind in ("alerted", "pinned")
            )
            figures.lost = tally.lost
    return figures


def report(name: str, figures: Figures, target: float) -> None:
    """Print one run's figures."""
    pin = (
        "never"
        if figures.pin_seconds is None
        else f"{figures.pin_seconds:.1f} s ({figures.pin_requests:,} requests)"
    )
    print(f"{name}: {figures.workers} workers, {figures.rate:.0f} requests/s reached")
    print(f"  (asked {target:.0f}/s)")
    print(f"  pin in all workers: {pin}")
    print(f"  treatment requests after a worker's pin: {figures.treatment_after}")
    if figures.leader_killed:
        pinned = figures.new_worker_pinned_seconds
        answered = figures.new_worker_answered_seconds
        print(
            f"  kill -9 of the leader: restarted {figures.restarted} (its first"
            f" answer {'never' if answered is None else f'{answered:.1f} s'} after"
            f" the kill); treatment in the survivors after: "
            f"{figures.survivors_treatment_after}; treatment served by the new"
            f" worker before its pin: {figures.new_worker_treatment} (pinned"
            f" {'never' if pinned is None else f'{pinned:.1f} s'} after the kill)"
        )
    print(f"  answers {figures.answers:,}, lost {figures.lost}")


def worse(runs: list[Figures]) -> Figures:
    """Each figure the worse of ``runs``: the lowest rate, the longest times, the most treatment."""

    def longest(values: list[float | None]) -> float | None:
        return None if None in values else max(v for v in values if v is not None)

    first = runs[0]
    return Figures(
        first.workers,
        rate=min(f.rate for f in runs),
        pin_seconds=longest([f.pin_seconds for f in runs]),
        pin_requests=max(f.pin_requests for f in runs),
        treatment_after=max(f.treatment_after for f in runs),
        answers=min(f.answers for f in runs),
        leader_killed=all(f.leader_killed for f in runs),
        restarted=all(f.restarted for f in runs),
        survivors_treatment_after=max(f.survivors_treatment_after for f in runs),
        new_worker_treatment=max(f.new_worker_treatment for f in runs),
        new_worker_answered_seconds=longest(
            [f.new_worker_answered_seconds for f in runs]
        ),
        new_worker_pinned_seconds=longest([f.new_worker_pinned_seconds for f in runs]),
        lost=max(f.lost for f in runs),
    )


async def main(args: argparse.Namespace) -> None:
    """Each run, then the worse figures."""
    runs = []
    for n in range(args.runs):
        figures = await guarded_run(
            args.workers, args.rate, args.fault, limit=args.limit, kill=not args.smoke
        )
        report(f"run {n + 1}", figures, args.rate)
        runs.append(figures)
    worst = worse(runs)
    report("worse of the runs", worst, args.rate)
    if args.minutes > 0:
        aa = await aa_run(args.workers, args.rate, args.minutes * 60)
        print(
            f"A/A twin: {aa.aa_seconds / 60:.1f} min, {aa.aa_rate:.0f} requests/s"
            f" reached, {aa.aa_answers:,} answers ({aa.aa_errors:,} 5xx), GUARDED"
            f" answers {aa.aa_guarded}, decisions {aa.aa_decisions}; guard states"
            f" {sorted(set(aa.aa_states.values()))}, fewest requests in an arm"
            f" {aa.aa_fewest:,}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--fault", type=float, default=0.05)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--limit", type=float, default=600.0, help="seconds at most until the pin"
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.workers, args.rate, args.minutes, args.limit = 2, 20.0, 0.0, 1.0
    anyio.run(main, args)
