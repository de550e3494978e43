"""A plane leader's evaluation cost while it serves followers, beside a plain client's.

    python benchmarks/bench_plane_eval.py [--flags 1000] [--contexts 25] [--followers 8] [--runs 2]

Each run counts, under ``valgrind --tool=callgrind``, the instructions of
``await client.variation`` in a window (as ``bench/eval_window.py`` does: every
flag of the shared corpus for ``--contexts`` contexts not seen before,
callgrind zeroing on ``os.getpgrp`` and dumping on ``os.getppid``), for a
client polling a loopback FlagServer (FDv1, once an hour): **plain** (no
plane), and **plane**, the same client leading a flag plane that
``--followers`` other processes follow (all connected before the window
opens; no change during it, as in production between changes). The runs
alternate plain, plane, plain, plane...; printed: each figure as the worse
(highest) of its runs, and plane / plain. Analytics events off.
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

HERE = Path(__file__).resolve().parent
WARM = 5


def _system(url: str, plane: str | None) -> object:
    import aioflags
    from aioflags import sources

    return aioflags.DataSystem.custom(
        synchronizers=[sources.fdv1_polling_synchronizer(base_uri=url, interval=3600)],
        plane=plane,
    )


def _config(url: str, plane: str | None) -> object:
    import aioflags

    return aioflags.Config(
        "sdk-key",
        base_uri=url,
        events_uri=url,
        data_system=_system(url, plane),
        send_events=False,
        ready_timeout=600,
    )


def child(
    url: str, flags: int, contexts: int, plane: str | None, followers: int
) -> None:
    """The measured process: warm up, wait for the followers, count the window."""
    sys.path.insert(0, str(HERE))
    from corpus import contexts as make_contexts
    from corpus import make_corpus

    import aioflags

    keys = list(make_corpus(flags)["flags"])
    users = [aioflags.Context.from_dict(c) for c in make_contexts(WARM + contexts)]

    async def run() -> None:
        async with aioflags.Client(_config(url, plane)) as client:  # type: ignore[arg-type]
            if client.status is not aioflags.ProviderStatus.READY:
                raise SystemExit(f"not READY: {client.status}")
            if plane is not None:
                if client.plane_role != "leader":
                    raise SystemExit(f"the measured client is {client.plane_role}")
                procs = [
                    await asyncio.create_subprocess_exec(
                        sys.executable, __file__, "--follower", url, plane,
                        stdout=asyncio.subprocess.PIPE,
                    )
                    for _ in range(followers)
                ]  # fmt: skip
                for proc in procs:
                    assert proc.stdout is not None
                    await proc.stdout.readline()  # "following"
            for user in users[:WARM]:
                for key in keys:
                    await client.variation(key, user, False)
            os.getpgrp()  # the window opens
            for user in users[WARM:]:
                for key in keys:
                    await client.variation(key, user, False)
            os.getppid()  # the window closes
            if plane is not None:
                for proc in procs:
                    proc.terminate()
                    await proc.wait()

    asyncio.run(run())


def follower(url: str, plane: str) -> None:
    """A follower process: follows until terminated."""
    import anyio

    import aioflags

    async def run() -> None:
        async with aioflags.Client(_config(url, plane)) as client:  # type: ignore[arg-type]
            if client.plane_role != "follower":
                raise SystemExit(f"a follower is {client.plane_role}")
            print("following", flush=True)
            await anyio.sleep_forever()

    anyio.run(run)


def count(url: str, args: argparse.Namespace, plane: str | None, out: str) -> float:
    extra = ["--plane", plane] if plane else []
    argv = [
        sys.executable, __file__, "--child", url, str(args.flags), str(args.contexts),
        "--followers", str(args.followers), *extra,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run(argv, env=env, check=True, timeout=600)  # bytecode caches first
    if args.smoke:
        return float("nan")  # (it ran: no callgrind in a smoke run)
    subprocess.run(
        [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            "--dump-instr=no", "--zero-before=os_getpgrp", "--dump-before=os_getppid",
            *argv,
        ],
        env=env, check=True, timeout=3000, capture_output=True,
    )  # fmt: skip
    dumps = sorted(p for p in Path(out).parent.glob(Path(out).name + ".*"))
    totals = re.search(r"^totals:\s*(\d+)", dumps[0].read_text(), re.M)
    assert totals is not None
    for dump in dumps:
        dump.unlink()
    return int(totals.group(1)) / (args.flags * args.contexts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--contexts", type=int, default=25)
    parser.add_argument("--followers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, no callgrind (tests)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.flags, args.contexts, args.followers, args.runs = 20, 1, 2, 1
    sys.path.insert(0, str(HERE))
    import anyio
    from corpus import make_corpus

    from aioflags.testing import FlagServer

    async def run() -> tuple[list[float], list[float]]:
        plain: list[float] = []
        planed: list[float] = []
        with tempfile.TemporaryDirectory(prefix="plane-eval-") as tmp:
            corpus = make_corpus(args.flags)
            async with FlagServer(
                corpus["flags"], segments=corpus["segments"]
            ) as server:
                for n in range(args.runs):
                    plain.append(
                        await anyio.to_thread.run_sync(
                            count, server.url, args, None, f"{tmp}/plain{n}"
                        )
                    )
                    planed.append(
                        await anyio.to_thread.run_sync(
                            count, server.url, args, f"{tmp}/p{n}", f"{tmp}/plane{n}"
                        )
                    )
        return plain, planed

    plain, planed = anyio.run(run)
    if args.smoke:  # (the children ran: nothing counted, no ratio to give)
        print(
            "smoke: a plain client and a plane's leader with 2 followers ran;"
            " ratio plane/plain not counted without callgrind"
        )
        return
    worst_plain, worst_plane = max(plain), max(planed)
    print(
        f"window instructions/eval: plain {worst_plain:,.0f}, leading a plane of"
        f" {args.followers} followers {worst_plane:,.0f} (worse of {args.runs}"
        f" interleaved runs each): ratio plane/plain {worst_plane / worst_plain:.4f}"
    )
    print(
        f"  runs: plain {[round(x) for x in plain]}, plane {[round(x) for x in planed]}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        rest = sys.argv[5:]
        plane = rest[rest.index("--plane") + 1] if "--plane" in rest else None
        followers = int(rest[rest.index("--followers") + 1])
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), plane, followers)
    elif len(sys.argv) > 1 and sys.argv[1] == "--follower":
        follower(sys.argv[2], sys.argv[3])
    else:
        main()
