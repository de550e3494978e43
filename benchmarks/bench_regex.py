"""Hostile `matches` values: aioflags vs LaunchDarkly's LDClient, one evaluation each.

    python benchmarks/bench_regex.py [--repeat 5] [--smoke]

A catastrophic pattern (`^(a+)+$`) against `"a" * n + "!"` for growing n,
through `FlagSnapshot.variation` and `LDClient.variation`. LaunchDarkly's SDK
runs Python's re, so it is measured only while it finishes in seconds; aioflags
is also measured on a 10 KB value, with and without RE2 (the `re2` extra).
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from _common import ld_sync_client, table

import aioflags
from aioflags._datasystem._store import snapshot_from_data
from aioflags._evaluation import _regex

PATTERN = r"^(a+)+$"


def flag(key: str, pattern: str) -> dict[str, Any]:
    return {
        "key": key,
        "version": 1,
        "on": True,
        "variations": [False, True],
        "offVariation": 0,
        "fallthrough": {"variation": 0},
        "rules": [
            {
                "id": "m",
                "clauses": [{"attribute": "ua", "op": "matches", "values": [pattern]}],
                "variation": 1,
            }
        ],
        "salt": "",
    }


def without_re2(flags: dict[str, Any]) -> aioflags.FlagSnapshot:
    """The flags compiled as if the `re2` extra were not installed."""
    saved = _regex._load_re2
    _regex.compile_pattern.cache_clear()
    _regex._load_re2 = lambda: None
    try:
        return snapshot_from_data(flags)
    finally:
        _regex._load_re2 = saved
        _regex.compile_pattern.cache_clear()


def once(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1e3


def run(sizes: list[int], ld_sizes: list[int], repeat: int) -> str:
    import ldclient

    logging.getLogger("aioflags").setLevel(logging.ERROR)
    data = {"flags": {"f": flag("f", PATTERN)}, "segments": {}}
    with_re2 = snapshot_from_data(data["flags"])
    no_re2 = without_re2(data["flags"])
    ld = ld_sync_client(data)
    out = []
    try:
        for n in sizes:
            value = "a" * n + "!"
            ours = aioflags.Context.create("u", attributes={"ua": value})
            theirs = ldclient.Context.builder("u").set("ua", value).build()
            rows: dict[str, list[float]] = {
                "aioflags (RE2 extra)": [],
                "aioflags without RE2": [],
            }
            if n in ld_sizes:
                rows["LaunchDarkly LDClient"] = []
            for _ in range(repeat):
                rows["aioflags (RE2 extra)"].append(
                    once(with_re2.variation, "f", ours, None)
                )
                rows["aioflags without RE2"].append(
                    once(no_re2.variation, "f", ours, None)
                )
                if n in ld_sizes:
                    rows["LaunchDarkly LDClient"].append(
                        once(ld.variation, "f", theirs, None)
                    )
            baseline = (
                "LaunchDarkly LDClient" if n in ld_sizes else "aioflags (RE2 extra)"
            )
            out.append(
                table(
                    f"{PATTERN} against {n} x 'a' + '!': ms per evaluation",
                    "ms",
                    list(rows.items()),
                    baseline,
                )
            )
    finally:
        ld.close()
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, to keep the script from rotting",
    )
    args = parser.parse_args()
    if args.smoke:
        print(run([12, 10_000], [12], 1))
    else:
        print(run([18, 22, 24, 10_240], [18, 22, 24], args.repeat))


if __name__ == "__main__":
    main()
