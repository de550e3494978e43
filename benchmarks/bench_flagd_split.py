"""Where one evaluation's instructions go: door, find, run, answer (issue 88).

    python benchmarks/bench_flagd_split.py [--testbed /tmp/flagd-testbed] [--evaluations 1000] [--smoke]

``bench_flagd_eval.py`` counts a whole ``FlagSnapshot.variation_detail``;
this script counts each step of the pipeline (``_pipeline``'s door, find,
run, answer) in a window of its own, as that script counts (callgrind, the
main thread's ``summary:`` between ``os.getpgrp()`` and ``os.getppid()``,
the garbage collector off, the same 50 contexts, every step's inputs made
before the windows, each window's loop run once before as a warm-up). Each window is a loop that calls one step, so a step's
count includes the call that reaches it, as in an evaluation. The flags: a
``$ref`` flag (this script's own, ``bench_flagd_eval.py``'s ``own-ref``;
with ``--testbed``, the testbed's ``some-email-targeted-flag`` too, read in
place), a static flagd flag, and a LaunchDarkly flag of one rule (the same
``endsWith`` test as ``own-ref``).

The windows, each minus ``loop`` (the loop alone, with its context lookup):

- ``evaluation``: ``snapshot.variation_detail``, what ``bench_flagd_eval.py``
  counts (with its own loop);
- ``door``: ``_door.door(context, key)``;
- ``find``: ``_pipeline.find(matcher, key)``;
- ``run``: ``_evaluate.run_head(head, key, context, matcher)``, of which
  ``code`` is the flag's generated function alone (``head.run(...)``);
- ``answer``: ``_results.detail_of(result, default)`` (the detail);
- ``layers``: the rest: the frames that chain the steps
  (``FlagSnapshot.variation_detail``, ``Evaluation.answer``,
  ``Flags.evaluate``), shared by every flag.

Needs valgrind; aioflags alone (the reference is not imported).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import callgrind_windows  # (this folder is first on the path)
from bench_flagd_eval import OWN  # (this folder is first on the path)

CONTEXTS = 50
#: a static flagd flag and a LaunchDarkly flag of one rule, for comparison
STATIC: dict[str, Any] = {
    "flags": {
        "split-static": {
            "state": "ENABLED",
            "variants": {"staff": "staff", "public": "public"},
            "defaultVariant": "public",
        }
    }
}
LAUNCHDARKLY: dict[str, Any] = {
    "flags": {
        "split-launchdarkly": {
            "key": "split-launchdarkly",
            "version": 1,
            "on": True,
            "variations": ["staff", "public"],
            "fallthrough": {"variation": 1},
            "offVariation": 1,
            "salt": "split",
            "targets": [],
            "prerequisites": [],
            "rules": [
                {
                    "id": "staff",
                    "variation": 0,
                    "clauses": [
                        {
                            "contextKind": "user",
                            "attribute": "email",
                            "op": "endsWith",
                            "values": ["@example.com"],
                            "negate": False,
                        }
                    ],
                }
            ],
        }
    }
}
#: the testbed's $ref flag (read in place with --testbed)
TESTBED = ("flags/evaluator-refs.json", "some-email-targeted-flag")
STEPS = ["loop", "evaluation", "door", "find", "run", "code", "answer"]


# -------------------------------------------------------------------- child
async def child(keys: list[str], paths: list[str], evaluations: int) -> None:
    """Count each (flag, step) of ``keys`` x :data:`STEPS` in a window of its own."""
    import aioflags
    from aioflags._evaluation._door import door
    from aioflags._evaluation._evaluate import run_head
    from aioflags._evaluation._pipeline import find
    from aioflags._evaluation._results import Result, detail_of

    emails = ["ballmer@macrosoft.com", "ann@example.com", "bob@test.io"]
    ctxs = [
        aioflags.Context.from_dict(
            {"kind": "user", "key": f"user-{i}", "email": emails[i % len(emails)]}
        )
        for i in range(CONTEXTS)
    ]
    config = aioflags.Config(
        data_system=aioflags.DataSystem.file(*[Path(p) for p in paths]),
        send_events=False,
    )
    async with aioflags.Client(config) as client:
        if client.status is not aioflags.ProviderStatus.READY:
            raise SystemExit(f"not READY: {client.status}")
        snapshot = client.snapshot()
        matcher = snapshot._data.matcher

        def window(key: str, step: str, n: int, counted: bool) -> None:
            head = find(matcher, key)
            assert head is not None, key
            results = [run_head(head, key, c, matcher) for c in ctxs]
            run = None if type(head) is Result else head.run
            operands = None if type(head) is Result else head.operands
            if counted:
                os.getpgrp()  # the window opens
            if step == "evaluation":
                for i in range(n):
                    snapshot.variation_detail(key, ctxs[i % CONTEXTS], "x")
            elif step == "door":
                for i in range(n):
                    door(ctxs[i % CONTEXTS], key)
            elif step == "find":
                for i in range(n):
                    find(matcher, key)
                    ctxs[i % CONTEXTS]
            elif step == "run":
                for i in range(n):
                    run_head(head, key, ctxs[i % CONTEXTS], matcher)
            elif step == "code" and run is not None:
                for i in range(n):
                    run(operands, ctxs[i % CONTEXTS], matcher)
            elif step == "answer":
                for i in range(n):
                    detail_of(results[i % CONTEXTS], "x")
            else:  # the loop alone (and a constant head's code: none)
                for i in range(n):
                    ctxs[i % CONTEXTS]
            if counted:
                os.getppid()  # the window closes (callgrind dumps)

        for key in keys:  # the warm-up: every path run, every head made
            for step in STEPS:
                window(key, step, 2 * CONTEXTS, counted=False)
        gc.collect()
        gc.disable()
        for key in keys:
            for step in STEPS:
                window(key, step, evaluations, counted=True)
        os._exit(0)


# ------------------------------------------------------------------- parent
def main() -> None:
    """Run the windows under callgrind; print the split per flag."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--testbed", type=Path, default=None)
    parser.add_argument("--evaluations", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        keys_json, paths_json, n = args.child
        asyncio.run(child(json.loads(keys_json), json.loads(paths_json), int(n)))
        return
    if args.smoke:
        args.evaluations = 20
    folder = Path(tempfile.mkdtemp(prefix="flagd-split-"))
    documents = {"own.json": OWN, "static.json": STATIC, "ld.json": LAUNCHDARKLY}
    paths = []
    for name, document in documents.items():
        (folder / name).write_text(json.dumps(document))
        paths.append(str(folder / name))
    keys = ["own-ref", "split-static", "split-launchdarkly"]
    if args.testbed is not None:
        paths.append(str(args.testbed / TESTBED[0]))
        keys.insert(0, TESTBED[1])
    plan = [(key, step) for key in keys for step in STEPS]
    found = callgrind_windows(
        folder,
        __file__,
        [keys, paths, str(args.evaluations)],
        len(plan),
        args.evaluations,
    )
    counts: dict[tuple[str, str], int] = dict(zip(plan, found, strict=True))
    columns = ["evaluation", "door", "find", "run", "(code)", "answer", "layers"]
    print(
        f"\ninstructions per evaluation by step ({args.evaluations} per window, "
        f"{CONTEXTS} contexts, callgrind, main thread; each minus the loop):"
    )
    print(f"{'flag':<28}{'loop':>8}" + "".join(f"{c:>12}" for c in columns))
    for key in keys:
        loop = counts[key, "loop"]
        net = {step: counts[key, step] - loop for step in STEPS}
        layers = net["evaluation"] - net["door"] - net["find"] - net["run"]
        row = [
            net["evaluation"],
            net["door"],
            net["find"],
            net["run"],
            net["code"],
            net["answer"],
            layers - net["answer"],
        ]
        print(f"{key:<28}{loop:>8,}" + "".join(f"{n:>12,}" for n in row))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
