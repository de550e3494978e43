"""Where an OpenFeature provider call's instructions go, above the evaluation (issue 88).

    python benchmarks/bench_of_provider_split.py [--testbed /tmp/flagd-testbed] [--evaluations 1000] [--smoke]

``bench_flagd_eval.py`` counts a whole ``AioflagsProvider.resolve_string_details``;
this script counts each step it takes in a window of its own, as
``bench_flagd_split.py`` counts the pipeline's (callgrind, the main
thread's ``summary:`` between ``os.getpgrp()`` and ``os.getppid()``, the
garbage collector off, the same 50 OpenFeature contexts as
``bench_flagd_eval.py``, every step's inputs made before the windows, each
window's loop run once before as a warm-up). Each window is a loop that
calls one step, minus ``loop`` (the loop alone, with its context lookup).
The flags: a flagd ``$ref`` flag (``bench_flagd_eval.py``'s ``own-ref``;
with ``--testbed``, the testbed's ``some-email-targeted-flag`` too, read in
place), a static flagd flag and a LaunchDarkly flag of one rule
(``bench_flagd_split.py``'s).

The windows:

- ``provider``: ``provider.resolve_string_details(key, "x", context)``,
  the 50 contexts in turn (the same objects again and again, each called
  twice before the window: kept, not mapped again, issue 96);
- ``new objects``: the same, each call with an OpenFeature context object
  it has not seen (made before the window, from the 50), as OpenFeature's
  own client gives it (it merges its contexts into a new one per call);
- ``evaluation``: the snapshot's evaluation the provider runs, on a context
  mapped before the window (``variation_detail`` for a flagd flag,
  ``string_variation_detail`` for a LaunchDarkly one);
- ``mapped+eval``: the same, on a context mapped in the loop (a new
  ``Context`` per call), minus ``mapping``: what a fresh context adds to
  the evaluation;
- ``read``: ``openfeature_read(client)``, the provider's one read of the
  client: its status, its snapshot, that snapshot's data and steps;
- ``context``: the provider's context step: its cache of mapped contexts
  (``ContextCache.get``; the provider makes its hit test inline), each
  context kept (issue 96);
- ``mapping``: ``to_flagd_context`` / ``to_context``, what a context not
  kept costs (a new object's: ``new objects`` minus ``provider``, about);
- ``lookup``: the provider's lookup of the compiled flag (its system picks
  the mapping; it keeps the OpenFeature answers), in the flags made so far
  (``SnapshotData.matcher.hot``);
- ``answers``: the lookup of the answers the flag keeps for the result of
  the composition's steps (reason, variant, metadata: mapped once per flag
  version and result);
- ``details``: OpenFeature's ``FlagResolutionDetails(...)`` of ready
  arguments, positional from the tuple the flag keeps (the SDK's type:
  it stays);
- ``fresh``: ``mapped+eval`` minus ``mapping`` and ``evaluation``;
- ``rest``: ``provider`` minus the others (``_resolve``'s frames, the
  checks of the answers kept, the context cache's lookup; negative: the
  provider runs the composition's steps itself, without
  ``Evaluation.answer``'s frame and the method's answer that
  ``evaluation`` counts).

Printed beside them: ``above``, ``provider`` minus ``evaluation`` (issue
96's budget: at most 8,000), and the same for ``new objects``.

Needs valgrind and the OpenFeature SDK (the ``openfeature`` extra).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import callgrind_windows  # (this folder is first on the path)
from bench_flagd_eval import OWN, contexts  # (this folder is first on the path)
from bench_flagd_split import LAUNCHDARKLY, STATIC

CONTEXTS = 50
#: the testbed's $ref flag (read in place with --testbed)
TESTBED = ("flags/evaluator-refs.json", "some-email-targeted-flag")
STEPS = [
    "loop",
    "provider",
    "new objects",
    "evaluation",
    "mapped+eval",
    "read",
    "context",
    "mapping",
    "lookup",
    "answers",
    "details",
]


# -------------------------------------------------------------------- child
async def child(keys: list[str], paths: list[str], evaluations: int) -> None:
    """Count each (flag, step) of ``keys`` x :data:`STEPS` in a window of its own."""
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagResolutionDetails

    import aioflags
    from aioflags._client._client import openfeature_read
    from aioflags._client._ofcontext import ContextCache
    from aioflags._evaluation._pipeline import STRING_VARIATION_DETAIL
    from aioflags.openfeature import AioflagsProvider, to_context, to_flagd_context

    ofs = contexts()
    config = aioflags.Config(
        data_system=aioflags.DataSystem.file(*[Path(p) for p in paths]),
        send_events=False,
    )
    async with aioflags.Client(config) as client:
        if client.status is not aioflags.ProviderStatus.READY:
            raise SystemExit(f"not READY: {client.status}")
        provider = AioflagsProvider(client)
        snapshot = client.snapshot()

        def window(key: str, step: str, n: int, counted: bool) -> None:
            flagd = snapshot.flag_format(key) == "flagd"
            mapping = to_flagd_context if flagd else to_context
            evaluate = (
                snapshot.variation_detail if flagd else snapshot.string_variation_detail
            )
            ours = [mapping(c) for c in ofs]
            new = (
                [
                    EvaluationContext(c.targeting_key, dict(c.attributes))
                    for c in (ofs * (n // CONTEXTS + 1))[:n]
                ]
                if step == "new objects"
                else []
            )
            # (a cache of mapped contexts as the provider keeps, this flag's kind)
            cache = ContextCache(mapping)
            flag = snapshot.openfeature_flag(key)
            assert flag is not None
            if step == "provider":  # (each context seen twice: kept)
                for c in ofs + ofs:
                    provider.resolve_string_details(key, "x", c)
            elif step == "context":
                for c in ofs + ofs:
                    cache.get(c)
            detail = evaluate(key, ours[1], "x")
            _, _, data, step_ = openfeature_read(client)
            hot = data.matcher.hot
            result = step_.evaluate(data, STRING_VARIATION_DETAIL, key, ours[1], "x")
            about = snapshot.openfeature_details(key, detail)
            value, reason, variant, metadata = detail.value, *about
            arguments = (value, None, None, reason, variant, metadata)
            if counted:
                os.getpgrp()  # the window opens
            if step == "provider":
                for i in range(n):
                    provider.resolve_string_details(key, "x", ofs[i % CONTEXTS])
            elif step == "new objects":
                for i in range(n):
                    provider.resolve_string_details(key, "x", new[i])
            elif step == "evaluation":
                for i in range(n):
                    evaluate(key, ours[i % CONTEXTS], "x")
            elif step == "mapped+eval":
                for i in range(n):
                    evaluate(key, mapping(ofs[i % CONTEXTS]), "x")
            elif step == "read":
                for i in range(n):
                    openfeature_read(client)
                    ofs[i % CONTEXTS]
            elif step == "context":
                for i in range(n):
                    cache.get(ofs[i % CONTEXTS])
            elif step == "mapping":
                for i in range(n):
                    mapping(ofs[i % CONTEXTS])
            elif step == "lookup":
                for i in range(n):
                    hot.get(key)
                    ofs[i % CONTEXTS]
            elif step == "answers":
                for i in range(n):
                    flag.openfeature.get(id(result))
                    ofs[i % CONTEXTS]
            elif step == "details":
                for i in range(n):
                    FlagResolutionDetails(*arguments)
                    ofs[i % CONTEXTS]
            else:  # the loop alone
                for i in range(n):
                    ofs[i % CONTEXTS]
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
    folder = Path(tempfile.mkdtemp(prefix="of-split-"))
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
    columns = [s if s != "mapped+eval" else "fresh" for s in STEPS[1:]] + ["rest"]
    columns.remove("new objects")
    print(
        f"\ninstructions per provider call by step ({args.evaluations} per window, "
        f"{CONTEXTS} contexts, callgrind, main thread; each minus the loop):"
    )
    print(
        f"{'flag':<28}{'loop':>7}"
        + "".join(f"{c:>12}" for c in columns)
        + f"{'above':>8}{'new objects':>13}{'above':>8}"
    )
    for key in keys:
        loop = counts[key, "loop"]
        net = {step: counts[key, step] - loop for step in STEPS}
        net["fresh"] = net.pop("mapped+eval") - net["mapping"] - net["evaluation"]
        net["rest"] = net["provider"] - sum(
            net[c] for c in columns if c not in ("provider", "mapping", "rest")
        )
        above = net["provider"] - net["evaluation"]
        new = net["new objects"]
        print(
            f"{key:<28}{loop:>7,}"
            + "".join(f"{net[c]:>12,}" for c in columns)
            + f"{above:>8,}{new:>13,}{new - net['evaluation']:>8,}"
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
