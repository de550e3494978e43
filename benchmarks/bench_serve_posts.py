"""``aioflags serve``'s memory after large event posts, from a fresh process each run.

    python benchmarks/bench_serve_posts.py [--posts N] [--mib M] [--runs R] [--smoke]

Starts ``python -m aioflags serve`` (a flag file of no flags, any free port),
reads its RSS (``VmRSS`` of ``/proc/PID/status``), then posts ``N`` bodies
of ``M`` MiB (10 of 8 MiB by default: the event limit) to ``/bulk`` one after
another, each a JSON array of empty objects (``[{},{},…]``: the most objects
a body of that size can hold), and reads its RSS again once it stops falling
after the last answer (``end``: a second without a fall) and its peak
(``VmHWM``). Each run is a fresh process; the worst
of ``R`` runs (3 by default) is printed last. Linux only (``/proc``).

What bounds it (docs/console.md, "What no request can do"): ``serve`` keeps
at most 32 MiB of request bodies and 32 MiB of event posts (four 8 MiB
posts each), and one post is parsed whole while it is recorded. Figures are
printed, never asserted (tests/test_benchmarks.py runs ``--smoke``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024


def _status_mb(pid: int, field: str) -> float:
    """``field`` (``VmRSS``, ``VmHWM``) of ``/proc/PID/status``, in MB (10**6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _settled(pid: int) -> float:
    """The RSS once it stops falling (the last post's objects are freed as its
    request ends, just after its answer): read every 0.25 s until a second
    without a fall, 10 s at most."""
    rss = _status_mb(pid, "VmRSS")
    steady = time.monotonic()
    deadline = steady + 10
    while time.monotonic() - steady < 1 and time.monotonic() < deadline:
        time.sleep(0.25)  # noqa: TID251 - a measurement, no event loop here
        now = _status_mb(pid, "VmRSS")
        if now < rss - 0.5:
            steady = time.monotonic()
        rss = min(rss, now)
    return _status_mb(pid, "VmRSS")


def _body(size: int) -> bytes:
    """A JSON array of empty objects, at most ``size`` bytes."""
    count = (size - 2 + 1) // 3  # "[" + "{}," * count, the last "," a "]"
    return b"[" + b",".join([b"{}"] * count) + b"]"


def run(posts: int, size: int) -> tuple[float, float, float]:
    """One fresh ``serve``: its RSS before, after the last post, and at its peak (MB)."""
    body = _body(size)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flags.json"
        path.write_text(json.dumps({"flags": {}}))
        process = subprocess.Popen(
            [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert " at " in first, first
            host, port = first.rsplit(" at ", 1)[1].strip()[7:].rsplit(":", 1)
            before = _status_mb(process.pid, "VmRSS")
            for _ in range(posts):
                connection = http.client.HTTPConnection(host, int(port), timeout=120)
                try:
                    connection.request(
                        "POST", "/bulk", body, {"content-type": "application/json"}
                    )
                    answer = connection.getresponse()
                    answer.read()
                finally:
                    connection.close()
                assert answer.status == 202, answer.status
            end = _settled(process.pid)
            peak = _status_mb(process.pid, "VmHWM")
        finally:
            process.terminate()
            process.wait(30)
            if process.stdout is not None:
                process.stdout.close()
    return before, end, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=10)
    parser.add_argument("--mib", type=float, default=8.0, help="each post's size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: it runs")
    args = parser.parse_args()
    if args.smoke:
        args.posts, args.mib, args.runs = 3, 0.25, 1
    size = int(args.mib * MiB)
    print(
        f"aioflags serve: {args.posts} posts of {size:,} bytes of [{{}},{{}},...] "
        f"to /bulk, a fresh process per run (RSS in MB)"
    )
    print(f"{'run':>4} {'before':>8} {'end':>8} {'peak':>8}")
    results = []
    for number in range(1, args.runs + 1):
        before, end, peak = run(args.posts, size)
        results.append((before, end, peak))
        print(f"{number:>4} {before:>8.0f} {end:>8.0f} {peak:>8.0f}", flush=True)
    worst = tuple(max(figures) for figures in zip(*results, strict=True))
    print(
        f"worst of {args.runs}: RSS {worst[0]:.0f} MB before, {worst[1]:.0f} MB "
        f"after the last post, {worst[2]:.0f} MB at its peak"
    )


if __name__ == "__main__":
    main()
