"""Evaluation speed: aioflags vs LaunchDarkly's LDClient and AsyncLDClient, same data, one run.

    python benchmarks/bench_eval.py [--flags 1000] [--contexts 100] [--repeat 7] [--smoke]

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

from _common import in_memory_system, ld_async_client, ld_sync_client, table
from corpus import contexts, make_corpus

import aioflags
import aioflags.blocking


async def run(n_flags: int, n_contexts: int, repeat: int) -> str:
    import ldclient

    data = make_corpus(n_flags)
    raw_contexts = contexts(n_contexts)
    keys = list(data["flags"])
    ours = [aioflags.Context.from_dict(c) for c in raw_contexts]
    theirs = [ldclient.Context.from_dict(c) for c in raw_contexts]
    sync_ld = ld_sync_client(data)
    async_ld = await ld_async_client(data)
    client = aioflags.Client(aioflags.Config(data_system=in_memory_system(data)))
    # The sync face runs its own copy of the client on its own thread.
    blocking = aioflags.blocking.Client(
        aioflags.Config(data_system=in_memory_system(data))
    )
    out = []
    try:
        await asyncio.to_thread(blocking.start)
        assert blocking.status is aioflags.ProviderStatus.READY
        async with client:
            assert client.status is aioflags.ProviderStatus.READY
            # Same answers before timing anything.
            for c_ours, c_theirs in zip(ours[:10], theirs[:10], strict=True):
                for key in keys:
                    assert await client.variation(
                        key, c_ours, None
                    ) == sync_ld.variation(key, c_theirs, None), key
            n = len(keys) * len(ours)

            async def per_eval(fn: Any, ctxs: list[Any], is_async: bool) -> float:
                gc.collect()
                start = time.perf_counter()
                if is_async:
                    for c in ctxs:
                        for key in keys:
                            await fn(key, c, False)
                else:
                    for c in ctxs:
                        for key in keys:
                            fn(key, c, False)
                return (time.perf_counter() - start) / n * 1e6

            async def per_state(fn: Any, ctxs: list[Any], is_async: bool) -> float:
                gc.collect()
                subset = ctxs[: max(1, len(ctxs) // 10)]
                start = time.perf_counter()
                for c in subset:
                    if is_async:
                        await fn(c)
                    else:
                        fn(c)
                return (time.perf_counter() - start) / len(subset) * 1e3

            for label, ours_fn, sync_fn, async_fn in (
                ("variation", client.variation, sync_ld.variation, async_ld.variation),
                (
                    "variation_detail",
                    client.variation_detail,
                    sync_ld.variation_detail,
                    async_ld.variation_detail,
                ),
            ):
                rows: dict[str, list[float]] = {
                    "aioflags await client." + label: [],
                    "aioflags snapshot()." + label + " (sync)": [],
                    "aioflags blocking.Client." + label: [],
                    "LaunchDarkly LDClient": [],
                    "LaunchDarkly AsyncLDClient": [],
                }
                snap = client.snapshot()
                for _ in range(repeat):
                    rows["aioflags await client." + label].append(
                        await per_eval(ours_fn, ours, True)
                    )
                    rows["aioflags snapshot()." + label + " (sync)"].append(
                        await per_eval(getattr(snap, label), ours, False)
                    )
                    rows["aioflags blocking.Client." + label].append(
                        await per_eval(getattr(blocking, label), ours, False)
                    )
                    rows["LaunchDarkly LDClient"].append(
                        await per_eval(sync_fn, theirs, False)
                    )
                    rows["LaunchDarkly AsyncLDClient"].append(
                        await per_eval(async_fn, theirs, True)
                    )
                out.append(
                    table(
                        f"{label}: µs per evaluation ({n_flags} flags x {n_contexts} contexts)",
                        "µs",
                        list(rows.items()),
                        "LaunchDarkly AsyncLDClient",
                    )
                )
            rows = {
                "aioflags await client.all_flags_state": [],
                "LaunchDarkly LDClient": [],
                "LaunchDarkly AsyncLDClient": [],
            }
            for _ in range(repeat):
                rows["aioflags await client.all_flags_state"].append(
                    await per_state(client.all_flags_state, ours, True)
                )
                rows["LaunchDarkly LDClient"].append(
                    await per_state(sync_ld.all_flags_state, theirs, False)
                )
                rows["LaunchDarkly AsyncLDClient"].append(
                    await per_state(async_ld.all_flags_state, theirs, True)
                )
            out.append(
                table(
                    f"all_flags_state: ms per call ({n_flags} flags)",
                    "ms",
                    list(rows.items()),
                    "LaunchDarkly AsyncLDClient",
                )
            )
    finally:
        await asyncio.to_thread(blocking.close)
        sync_ld.close()
        await async_ld.close()
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--contexts", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, to keep the script from rotting",
    )
    args = parser.parse_args()
    if args.smoke:
        args.flags, args.contexts, args.repeat = 20, 4, 1
    print(asyncio.run(run(args.flags, args.contexts, args.repeat)))


if __name__ == "__main__":
    main()
