"""Import time: `python -c 'import aioflags'` against `import ldclient.async_client`.

    python benchmarks/bench_import.py [--pairs N] [--importtime] [--smoke]

Whole processes, interpreter start included, in **pairs**: each pair runs both
imports back to back, the order alternating from one pair to the next, so a
burst of load on a shared machine hits both sides of a pair alike. The ratio
is taken per pair; the median and the **worst** pair are printed.

Each child's CPU time (user + system, from ``wait4``) is taken too: on a
shared machine the wall clock also counts the time a process waits for a
CPU, which load bursts hand out unevenly; the CPU ratio is the steadier one.

Bytecode caches are written first (one import of each with
``PYTHONDONTWRITEBYTECODE`` removed from the child's environment, which is also
how every timed child runs): with that variable set, every import recompiles
its sources and both figures measure the compiler instead.

It also counts the CPU instructions of each whole process with valgrind's
callgrind (steady whatever else the machine is doing; skipped with a message
when valgrind is not installed, and in ``--smoke``).

``--start`` measures where the import cost went: fresh processes import
aioflags, then start a client (events on) against a local ``FlagServer``
of 100 flags; it prints the import, the time from ``async with client`` to
READY (which now includes the imports a running client needs), their sum,
and the first evaluation after READY.

``--importtime`` adds ``python -X importtime`` for ``import aioflags``: the
self time summed per top-level package (aioflags' own modules one by one),
largest first.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

AIOFLAGS = "import aioflags"
LAUNCHDARKLY = "import ldclient.async_client"
BARE = "pass"


def child_env() -> dict[str, str]:
    """The environment of every child: bytecode caches read and written."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Milliseconds of wall time and of CPU time for one `python -c code` process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1e3
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: no second wait
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, code)
    return wall, (usage.ru_utime + usage.ru_stime) * 1e3


def _row(name: str, values: list[float]) -> str:
    return (
        f"  {name:<34}{statistics.median(values):>9.1f}"
        f"{min(values):>9.1f}{max(values):>9.1f}"
    )


def _ratios(name: str, ratios: list[float]) -> str:
    return (
        f"  {name}: median {statistics.median(ratios):.2f}x, "
        f"worst {max(ratios):.2f}x, best {min(ratios):.2f}x"
    )


def pairs(n: int) -> str:
    """``n`` alternating pairs; returns the printed table."""
    env = child_env()
    for code in (AIOFLAGS, LAUNCHDARKLY, BARE):  # write the caches, warm the disk
        run_once(code, env)
    wall: dict[str, list[float]] = {AIOFLAGS: [], LAUNCHDARKLY: [], BARE: []}
    cpu: dict[str, list[float]] = {AIOFLAGS: [], LAUNCHDARKLY: [], BARE: []}
    wall_ratios: list[float] = []
    cpu_ratios: list[float] = []
    for i in range(n):
        order = (AIOFLAGS, LAUNCHDARKLY) if i % 2 == 0 else (LAUNCHDARKLY, AIOFLAGS)
        got = {code: run_once(code, env) for code in order}
        got[BARE] = run_once(BARE, env)
        for code, (wall_ms, cpu_ms) in got.items():
            wall[code].append(wall_ms)
            cpu[code].append(cpu_ms)
        wall_ratios.append(got[AIOFLAGS][0] / got[LAUNCHDARKLY][0])
        cpu_ratios.append(got[AIOFLAGS][1] / got[LAUNCHDARKLY][1])
    header = f"  {'ms':<34}{'median':>9}{'min':>9}{'max':>9}"
    lines = [
        f"import: `python -c '...'`, {n} alternating pairs (interpreter start "
        "included, bytecode caches written)",
        "wall time",
        header,
        *(_row(code, values) for code, values in wall.items()),
        "CPU time (user + system)",
        header,
        *(_row(code, values) for code, values in cpu.items()),
        _ratios("ratio aioflags / ldclient.async_client per pair, wall", wall_ratios),
        _ratios("ratio aioflags / ldclient.async_client per pair, CPU", cpu_ratios),
    ]
    return "\n".join(lines)


_START_CHILD = """
import sys, time
t0 = time.perf_counter()
import anyio, aioflags
t1 = time.perf_counter()

async def main(url):
    config = aioflags.Config("sdk-key", base_uri=url, stream_uri=url, events_uri=url)
    t2 = time.perf_counter()
    async with aioflags.Client(config) as client:
        t3 = time.perf_counter()
        assert client.status is aioflags.ProviderStatus.READY, client.status
        await client.variation("flag-0", aioflags.Context.create("u"), False)
        t4 = time.perf_counter()
    print((t1 - t0) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3)

anyio.run(main, sys.argv[1])
"""


def start(n: int) -> str:
    """Import, then the first start: where the deferred imports are paid."""
    import anyio

    from aioflags.testing import FlagServer

    flag = {
        "on": True,
        "variations": [True, False],
        "offVariation": 1,
        "fallthrough": {"variation": 0},
    }
    env = child_env()

    async def measure() -> list[list[float]]:
        rows = []
        async with FlagServer({f"flag-{i}": flag for i in range(100)}) as server:
            for i in range(n + 1):
                out = await anyio.run_process(
                    [sys.executable, "-c", _START_CHILD, server.url], env=env
                )
                if i:  # the first one writes the caches
                    rows.append([float(x) for x in out.stdout.split()])
        return rows

    rows = anyio.run(measure)
    imports, ready, first = (list(column) for column in zip(*rows, strict=True))
    total = [a + b for a, b in zip(imports, ready, strict=True)]
    header = f"  {'ms':<34}{'median':>9}{'min':>9}{'max':>9}"
    return "\n".join(
        [
            f"first start: {n} fresh processes, 100 flags from a local FlagServer",
            header,
            _row("import aioflags", imports),
            _row("async with client: until READY", ready),
            _row("import + READY", total),
            _row("first evaluation after READY", first),
        ]
    )


def _instructions(code: str, env: dict[str, str]) -> int:
    err = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stderr
    match = re.search(r"Collected : (\d+)", err)
    assert match, "no totals in callgrind's output"
    return int(match.group(1))


def instructions() -> str:
    """Instructions of each whole process (callgrind), and the ratio."""
    if shutil.which("valgrind") is None:
        return "instructions: skipped, valgrind is not installed (apt-get install valgrind)"
    env = child_env()
    counts = {code: _instructions(code, env) for code in (AIOFLAGS, LAUNCHDARKLY, BARE)}
    lines = ["import: instructions of the whole `python -c '...'` process (callgrind)"]
    lines += [f"  {code:<34}{count:>15,}" for code, count in counts.items()]
    lines.append(
        f"  ratio aioflags / ldclient.async_client, instructions: "
        f"{counts[AIOFLAGS] / counts[LAUNCHDARKLY]:.3f}x "
        f"({(counts[AIOFLAGS] - counts[BARE]) / (counts[LAUNCHDARKLY] - counts[BARE]):.3f}x "
        "without the interpreter's own start)"
    )
    return "\n".join(lines)


def _self_times(env: dict[str, str]) -> collections.Counter[str]:
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", AIOFLAGS],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stderr
    per: collections.Counter[str] = collections.Counter()
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.split(":", 1)[1].split("|")
        name = name.strip()
        package = name if name.startswith("aioflags") else name.split(".")[0]
        per[package] += int(self_us)
    return per


def importtime(top: int, runs: int = 5) -> str:
    """``python -X importtime -c 'import aioflags'``: self time per package.

    The least of ``runs`` runs for each package (a load burst inflates one run).
    """
    env = child_env()
    run_once(AIOFLAGS, env)  # the caches
    every = [_self_times(env) for _ in range(runs)]
    per = {name: min(run.get(name, 0) for run in every) for name in every[0]}
    ranked = sorted(per.items(), key=lambda item: -item[1])
    lines = [
        f"import aioflags, -X importtime: self time {sum(per.values()) / 1e3:.1f} ms "
        f"in {len(per)} packages (least of {runs} runs each); the top {top} (ms):"
    ]
    lines += [f"  {us / 1e3:7.2f}  {name}" for name, us in ranked[:top]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--start", action="store_true", help="import, then READY")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--smoke", action="store_true", help="one pair (tests)")
    args = parser.parse_args()
    print(pairs(1 if args.smoke else args.pairs), flush=True)
    if not args.smoke:
        print(instructions(), flush=True)
    if args.start or args.smoke:
        print(start(1 if args.smoke else 10), flush=True)
    if args.importtime or args.smoke:
        print(importtime(args.top, 1 if args.smoke else 5), flush=True)


if __name__ == "__main__":
    main()
