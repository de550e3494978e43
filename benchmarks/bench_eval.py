"""Evaluation speed: aioflags vs LaunchDarkly's LDClient and AsyncLDClient, same data, one run.

Rows marked "events on" send analytics events (to a FlagServer on
127.0.0.1): the cost of recording evaluations for LaunchDarkly.

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
from aioflags.testing import FlagServer


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
    out = []
    events_server = FlagServer()
    await events_server.__aenter__()
    async_ld_events = await ld_async_client(data, events_server.url)
    with_events = aioflags.Client(
        aioflags.Config(
            "sdk-key",
            data_system=in_memory_system(data),
            events_uri=events_server.url,
            diagnostic_opt_out=True,
        )
    )
    try:
        async with client, with_events:
            assert client.status is aioflags.ProviderStatus.READY
            assert with_events.status is aioflags.ProviderStatus.READY
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

            for label in ("variation", "variation_detail"):
                rows: dict[str, list[float]] = {
                    "aioflags await client." + label: [],
                    "aioflags snapshot()." + label + " (sync)": [],
                    "aioflags await client." + label + " (events on)": [],
                    "aioflags snapshot()." + label + " (sync, events on)": [],
                    "LaunchDarkly LDClient": [],
                    "LaunchDarkly AsyncLDClient": [],
                    "LaunchDarkly AsyncLDClient (events on)": [],
                }
                snap = client.snapshot()
                snap_events = with_events.snapshot()
                for _ in range(repeat):
                    rows["aioflags await client." + label].append(
                        await per_eval(getattr(client, label), ours, True)
                    )
                    rows["aioflags snapshot()." + label + " (sync)"].append(
                        await per_eval(getattr(snap, label), ours, False)
                    )
                    rows["aioflags await client." + label + " (events on)"].append(
                        await per_eval(getattr(with_events, label), ours, True)
                    )
                    rows["aioflags snapshot()." + label + " (sync, events on)"].append(
                        await per_eval(getattr(snap_events, label), ours, False)
                    )
                    rows["LaunchDarkly LDClient"].append(
                        await per_eval(getattr(sync_ld, label), theirs, False)
                    )
                    rows["LaunchDarkly AsyncLDClient"].append(
                        await per_eval(getattr(async_ld, label), theirs, True)
                    )
                    rows["LaunchDarkly AsyncLDClient (events on)"].append(
                        await per_eval(getattr(async_ld_events, label), theirs, True)
                    )
                    await with_events.flush()  # between runs, as the timer would
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
        sync_ld.close()
        await async_ld.close()
        await async_ld_events.close()
        await events_server.__aexit__(None, None, None)
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
