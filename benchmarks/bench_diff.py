"""`aioflags diff` on 100,000 contexts and 100 flags, end to end.

    python benchmarks/bench_diff.py [--contexts 100000] [--flags 100] [--smoke]

The flags are benchmarks/corpus.py's (rules of every operator, segments,
targets, rollouts, prerequisites); the contexts its random users, one JSON
object a line. Two changes are timed, each the worst of two runs of the
whole command (reading both flag files and the contexts, evaluating, the
report): every flag edited (a rule added to each: every flag is evaluated
twice per context, the worst case), and one flag edited (the common case:
only the flags a change can reach are evaluated). Timings are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from corpus import contexts, make_corpus

from aioflags.__main__ import main as aioflags_main


def edited(data: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``data`` with a rule first in each of ``keys``: Germans get variation 1."""
    flags = dict(data["flags"])
    for key in keys:
        rule = {
            "id": "germany",
            "variation": 1,
            "clauses": [{"attribute": "country", "op": "in", "values": ["de"]}],
        }
        flags[key] = {**flags[key], "rules": [rule, *flags[key]["rules"]]}
    return {"flags": flags, "segments": data["segments"]}


def run(old: Path, new: Path, lines: Path) -> tuple[float, dict[str, Any]]:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        status = aioflags_main(
            ["diff", str(old), str(new), "--contexts", str(lines), "--json"]
        )
    elapsed = time.perf_counter() - start
    assert status in (0, 1), status
    report: dict[str, Any] = json.loads(out.getvalue())
    return elapsed, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contexts", type=int, default=100_000)
    parser.add_argument("--flags", type=int, default=100)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.contexts = 1000
    data = make_corpus(args.flags, n_segments=10)
    keys = list(data["flags"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = folder / "old.json"
        old.write_text(json.dumps(data))
        lines = folder / "contexts.jsonl"
        lines.write_text(
            "".join(json.dumps(c) + "\n" for c in contexts(args.contexts, seed=3))
        )
        runs = 1 if args.smoke else 2
        for name, changed in (("every flag", keys), ("one flag (flag-7)", ["flag-7"])):
            new = folder / "new.json"
            new.write_text(json.dumps(edited(data, changed)))
            times = []
            for _ in range(runs):
                elapsed, report = run(old, new, lines)
                times.append(elapsed)
            print(
                f"{name} edited: {report['contexts']:,} contexts x {args.flags} "
                f"flags in {max(times):.2f} s (worst of {runs}; "
                f"{', '.join(f'{t:.2f}' for t in times)}); "
                f"{len(report['flags'])} flags flip; "
                f"differences: {report['flipped']:,} contexts flipped"
            )


if __name__ == "__main__":
    main()
