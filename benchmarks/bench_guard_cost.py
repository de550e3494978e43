"""CPU instructions a guard costs (issue 98): a guarded flag's evaluation, and recording a request.

    python benchmarks/bench_guard_cost.py [--requests 20000] [--smoke]

Runs itself under ``valgrind --tool=callgrind`` (one process, windows
opened on ``os.getpgrp`` and dumped on ``os.getppid``, as eval_window.py).
One client, a 50/50 LaunchDarkly rollout flag ``f`` and ``--requests``
contexts, the same keys in each window (new objects: nothing a context
keeps from one window helps the next), each window the same evaluations
(``await client.variation("f", ...)``):

1. ``plain``: the flag unguarded (a guard on another flag, never evaluated)
2. ``guarded``: the flag guarded, no request scope open
3. ``in scope``: the flag guarded, all evaluations inside one open scope
   (the first notes the arm; the rest find it noted)
4. ``scopes``: request scopes opened and closed with nothing in them
   (``async with client.guards.request(): pass``), per scope
5. ``requests``: each evaluation in a request scope of its own, opened and
   closed: the outcome recorded, its arm's lane folded every 250
   requests (``_watch.FOLD_EVERY``) and looked at on ``_stats.next_look``'s
   schedule, amortised
6. ``asgi``: ASGI requests through ``aioflags.lens.LensMiddleware`` of a
   client with no guard and no lens, to an app that answers at once and
   evaluates no flag, per request
7. ``asgi guards``: the same through a client with a guard (on a flag the
   app does not evaluate): each request in the guards' scope

Windows 3-5 run in ``ROUNDS`` interleaved rounds of a quarter of
``--requests`` each (3, 4, 5, 3, 4, 5...); the first round is a warm-up,
printed apart: a window's first round pays for the memory the process
has not made yet, by up to 2,000 instructions an evaluation, and the
three must be measured in the same state for their difference to mean
anything.

Prints instructions per evaluation (or scope) for each, the guarded
evaluation against the plain one, and recording a request's outcome:
(5 - 3 - 4), what a request with an arm costs beyond its evaluation in a
scope and an empty scope: the arm noted, the clock, the append, the folds
and looks amortised. (An evaluation in a scope reads the scope's variable
whether or not it notes an arm: that is the guarded evaluation's cost.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WINDOWS = (
    "plain",
    "guarded",
    "in scope",
    "scopes",
    "requests",
    "asgi",
    "asgi guards",
)
#: The three request windows run in this many rounds, interleaved; the
#: first is a warm-up (printed, not counted): a window's first round pays
#: for the memory the process has not yet made, by up to 2,000
#: instructions an evaluation, and the three must be measured alike.
ROUNDS = 5
_ROUNDED = ("in scope", "scopes", "requests")


def child(requests: int) -> None:
    """The measured process: the windows, in order."""
    sys.path.insert(0, str(ROOT))
    import aioflags
    from aioflags.testing import FlagData

    def data() -> FlagData:
        flags = FlagData()
        flags.update(
            flags.flag("f").boolean().fallthrough_rollout({True: 50, False: 50}),
            flags.flag("g").boolean().fallthrough_rollout({True: 50, False: 50}),
        )
        return flags

    async def evaluate(
        client: aioflags.Client, contexts: list[aioflags.Context]
    ) -> None:
        for context in contexts:
            await client.variation("f", context, False)

    async def main() -> None:
        batches = [
            [aioflags.Context.create(f"user-{i}") for i in range(requests)]
            for _ in range(len(WINDOWS) + 1)
        ]  # (all made first, as before the rounds: the same memory for "plain")
        warm = [aioflags.Context.create(f"warm-{i}") for i in range(200)]
        other = aioflags.Config(
            data_system=data().data_system(),
            guards=[aioflags.Guard("g", control=False)],
        )
        async with aioflags.Client(other) as client:
            await evaluate(client, warm)
            os.getpgrp()
            await evaluate(client, batches[0])
            os.getppid()
        guarded = aioflags.Config(
            data_system=data().data_system(),
            guards=[aioflags.Guard("f", control=False)],
        )
        async with aioflags.Client(guarded) as client:
            await evaluate(client, warm)
            os.getpgrp()
            await evaluate(client, batches[1])
            os.getppid()
            for context in warm:
                async with client.guards.request():
                    await client.variation("f", context, False)
            part = requests // (ROUNDS - 1)
            for _ in range(ROUNDS):  # (interleaved: each window in each state)
                in_scope, empty, each = (
                    [aioflags.Context.create(f"r-{i}") for i in range(part)]
                    for _ in range(3)
                )
                async with client.guards.request():
                    os.getpgrp()
                    await evaluate(client, in_scope)
                    os.getppid()
                os.getpgrp()
                for _ in empty:
                    async with client.guards.request():
                        pass
                os.getppid()
                os.getpgrp()
                for context in each:
                    async with client.guards.request():
                        await client.variation("f", context, False)
                os.getppid()
            counted = sum(a.requests for a in client.guards.status["f"].arms)
            if counted < requests:
                raise SystemExit(f"only {counted} requests recorded")
        bare = aioflags.Config(data_system=data().data_system())
        async with aioflags.Client(bare) as client:
            await asgi(client, requests)
        async with aioflags.Client(other) as client:
            await asgi(client, requests)

    async def asgi(client: aioflags.Client, requests: int) -> None:
        """``requests`` ASGI requests through the middleware, counted (after a warm-up)."""
        from aioflags.lens import LensMiddleware

        async def app(scope: object, receive: object, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: object) -> None:
            pass

        middleware = LensMiddleware(app, client=client)
        http = {"type": "http", "method": "GET", "path": "/", "headers": []}
        http["query_string"] = b""
        for _ in range(200):
            await middleware(http, receive, send)  # type: ignore[arg-type]
        os.getpgrp()
        for _ in range(requests):
            await middleware(http, receive, send)  # type: ignore[arg-type]
        os.getppid()

    asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--smoke", action="store_true", help="tiny, natively: no counts")
    a = ap.parse_args()
    if a.smoke:  # (the windows run, uncounted: tests/test_benchmarks.py)
        child(300)
        print(
            "smoke: the windows ran natively; instructions are counted under valgrind"
        )
        return
    env = dict(os.environ, PYTHONHASHSEED="0")
    me = str(Path(__file__).resolve())
    subprocess.run(
        [sys.executable, me, "--child", "200"], env=env, check=True
    )  # caches
    with tempfile.TemporaryDirectory(prefix="guard-cost-") as tmp:
        out = os.path.join(tmp, "cg")
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--dump-instr=no",
            "--zero-before=os_getpgrp",
            "--dump-before=os_getppid",
            sys.executable,
            me,
            "--child",
            str(a.requests),
        ]
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=3000
        )
        dumps = sorted(
            (f for f in os.listdir(tmp) if f.startswith("cg.")),
            key=lambda name: int(name.rsplit(".", 1)[1]),
        )
        order = ["plain", "guarded", *(_ROUNDED * ROUNDS), "asgi", "asgi guards"]
        if done.returncode != 0 or len(dumps) != len(order):
            sys.stderr.write(done.stderr[-3000:])
            raise SystemExit(
                f"callgrind run failed (rc {done.returncode}, {len(dumps)} dumps)"
            )
        counted = dict.fromkeys(WINDOWS, 0)
        first = dict.fromkeys(_ROUNDED, 0)
        for index, (window, dump) in enumerate(zip(order, dumps, strict=True)):
            text = Path(tmp, dump).read_text()
            m = re.search(r"^totals:\s*(\d+)", text, re.M)
            assert m is not None
            if window in _ROUNDED and index < 2 + len(_ROUNDED):
                first[window] = int(m.group(1))
            else:
                counted[window] += int(m.group(1))
        part = a.requests // (ROUNDS - 1)
        per = {w: n / a.requests for w, n in counted.items()}
        for window in _ROUNDED:
            per[window] = counted[window] / (part * (ROUNDS - 1))
        warm = {w: n / part for w, n in first.items()}
    for window in WINDOWS:
        print(f"{window:>9}: {per[window]:8.0f} instructions/evaluation")
    print(
        f"guarded evaluation: {per['guarded'] / per['plain'] - 1:+.1%} (no scope),"
        f" {per['in scope'] / per['plain'] - 1:+.1%} (in a scope)"
    )
    print(f"a request scope (empty): {per['scopes']:.0f} instructions")
    print(
        f"an ASGI request through LensMiddleware: {per['asgi']:.0f} instructions"
        f" without guards, {per['asgi guards']:.0f} with"
        f" ({per['asgi guards'] - per['asgi']:+.0f})"
    )
    print(
        f"recording a request's outcome (its arm noted, the clock, folds and looks): "
        f"{per['requests'] - per['in scope'] - per['scopes']:.0f} instructions"
        f" (rounds 2-{ROUNDS}; the warm-up round:"
        f" {warm['requests'] - warm['in scope'] - warm['scopes']:.0f})"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
    else:
        main()
