"""Instructions per evaluation of flagd flags: aioflags vs flagd's Python provider (issue 88).

    python benchmarks/bench_flagd_eval.py [--testbed /tmp/flagd-testbed] [--evaluations 1000]
        [--invalid-version] [--smoke]

Counted as tests/test_instruction_budget.py counts (callgrind, the main
thread's ``summary:`` between ``os.getpgrp()`` and ``os.getppid()``, the
garbage collector off), all in one process under valgrind, one window per
(flag, evaluator), the same contexts (50, made before the windows) for
each. The flags: a ``fractional``, a ``sem_ver`` and a ``$ref`` flag — the
testbed's own (``custom-ops.json``'s ``fractional-flag`` and
``equal-greater-lesser-version-flag``, ``evaluator-refs.json``'s
``some-email-targeted-flag``) with ``--testbed``, and this script's own
equivalents always. The evaluators:

- ``snapshot``: aioflags' ``FlagSnapshot.variation_detail`` (an aioflags
  ``Context``, made by ``to_flagd_context`` before the window);
- ``client``: aioflags' ``await client.variation`` (events off);
- ``provider``: aioflags' OpenFeature provider, ``resolve_string_details``
  (the 50 OpenFeature context objects in turn, each called twice before
  the window: its mapping is kept, issue 96);
- ``provider-new``: the same, each call with a context object it has not
  seen (made before the window, from the 50), as OpenFeature's own client
  gives it (a new merged object per call): mapped at each call;
- ``FlagdCore``: flagd's ``FlagdCore.resolve_string_value``;
- ``FlagdProvider``: flagd's in-process provider in file mode,
  ``resolve_string_details`` (its file thread sleeps: the main thread alone
  is counted).

The contexts' versions are all valid semantic versions: an invalid one
is a different path on each side (flagd's provider logs it with a full
traceback, ~5 million instructions; aioflags answers false), which would
make a ``sem_ver`` figure of the log, not of the evaluation.
``--invalid-version`` puts one back (``"bad"``, one context in seven) to
show that cost.

Needs valgrind and flagd's provider (see flagd_reference.py). Prints each
count and the ratios flagd / aioflags.
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

#: This script's own flags: a fractional, a sem_ver and a $ref flag.
OWN: dict[str, Any] = {
    "$evaluators": {"is-staff": {"ends_with": [{"var": "email"}, "@example.com"]}},
    "flags": {
        "own-fractional": {
            "state": "ENABLED",
            "variants": {
                "red": "red",
                "green": "green",
                "blue": "blue",
                "grey": "grey",
            },
            "defaultVariant": "grey",
            "targeting": {
                "fractional": [
                    {"cat": [{"var": "$flagd.flagKey"}, {"var": "user.id"}]},
                    ["red", 30],
                    ["green", 30],
                    ["blue", 40],
                ]
            },
        },
        "own-semver": {
            "state": "ENABLED",
            "variants": {"old": "old", "current": "current", "next": "next"},
            "defaultVariant": "old",
            "targeting": {
                "if": [
                    {"sem_ver": [{"var": "version"}, ">=", "3.0.0"]},
                    "next",
                    {"sem_ver": [{"var": "version"}, "^", "2.0.0"]},
                    "current",
                    "old",
                ]
            },
        },
        "own-ref": {
            "state": "ENABLED",
            "variants": {"staff": "staff", "public": "public"},
            "defaultVariant": "public",
            "targeting": {"if": [{"$ref": "is-staff"}, "staff", "public"]},
        },
    },
}
TESTBED = [
    ("flags/custom-ops.json", "fractional-flag", "fractional"),
    ("flags/custom-ops.json", "equal-greater-lesser-version-flag", "sem_ver"),
    ("flags/evaluator-refs.json", "some-email-targeted-flag", "$ref"),
]
EVALUATORS = [
    "snapshot",
    "client",
    "provider",
    "provider-new",
    "FlagdCore",
    "FlagdProvider",
]
CONTEXTS = 50
#: The contexts' versions: valid semantic versions, each side's ``sem_ver``
#: path (a ``v`` prefix is one flagd's and aioflags' ``sem_ver`` both take).
VERSIONS = ["1.0.0", "2.0.0", "2.5.1", "3.0.0", "3.1.0-rc.1", "v2.1.0", "1.9.9"]
#: With ``--invalid-version``: one not a semantic version, in place of the last.
INVALID = "bad"


def contexts(invalid: bool = False) -> list[Any]:
    from openfeature.evaluation_context import EvaluationContext

    versions = [*VERSIONS[:-1], INVALID] if invalid else VERSIONS
    emails = ["ballmer@macrosoft.com", "ann@example.com", "bob@test.io"]
    return [
        EvaluationContext(
            f"user-{i}",
            {
                "user": {"id": f"id-{i}", "name": f"name-{i}"},
                "version": versions[i % len(versions)],
                "email": emails[i % len(emails)],
                "tier": "premium" if i % 2 else "basic",
            },
        )
        for i in range(CONTEXTS)
    ]


# -------------------------------------------------------------------- child
async def child(
    plan: list[tuple[str, str]], paths: list[str], evaluations: int, invalid: bool
) -> None:
    """Evaluate each (flag, evaluator) of ``plan`` in a window of its own."""
    from flagd_reference import Reference
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType

    import aioflags
    from aioflags.openfeature import AioflagsProvider, to_flagd_context

    config = aioflags.Config(
        data_system=aioflags.DataSystem.file(*[Path(p) for p in paths]),
        send_events=False,
    )
    documents = [json.loads(Path(p).read_text()) for p in paths]  # noqa: ASYNC240
    cores = {k: Reference(d) for d in documents for k in d["flags"]}
    providers = {}
    for path, document in zip(paths, documents, strict=True):
        provider = FlagdProvider(
            resolver_type=ResolverType.FILE, offline_flag_source_path=path
        )
        provider.initialize(contexts()[0])
        for key in document["flags"]:
            providers[key] = provider
    ofs = contexts(invalid)
    ours = [to_flagd_context(c) for c in ofs]
    async with aioflags.Client(config) as client:
        if client.status is not aioflags.ProviderStatus.READY:
            raise SystemExit(f"not READY: {client.status}")
        ours_provider = AioflagsProvider(client)
        snapshot = client.snapshot()

        def new_objects(n: int) -> list[Any]:
            from openfeature.evaluation_context import EvaluationContext

            return [
                EvaluationContext(c.targeting_key, dict(c.attributes))
                for c in (ofs * (n // CONTEXTS + 1))[:n]
            ]

        async def run(
            key: str, evaluator: str, n: int, new: list[Any] | None = None
        ) -> None:
            if evaluator == "snapshot":
                for i in range(n):
                    snapshot.variation_detail(key, ours[i % CONTEXTS], "x")
            elif evaluator == "client":
                for i in range(n):
                    await client.variation(key, ours[i % CONTEXTS], "x")
            elif evaluator == "provider":
                for i in range(n):
                    ours_provider.resolve_string_details(key, "x", ofs[i % CONTEXTS])
            elif evaluator == "provider-new":
                new = new_objects(n) if new is None else new
                for i in range(n):
                    ours_provider.resolve_string_details(key, "x", new[i])
            elif evaluator == "FlagdCore":
                core = cores[key].core
                for i in range(n):
                    core.resolve_string_value(key, "x", ofs[i % CONTEXTS])
            else:
                provider = providers[key]
                for i in range(n):
                    provider.resolve_string_details(key, "x", ofs[i % CONTEXTS])

        for key, evaluator in plan:  # the warm-up: every path compiled and cached
            await run(key, evaluator, 2 * CONTEXTS)
        # (each side's answers, checked once, outside the windows)
        for key, _ in plan:
            a = snapshot.variation_detail(key, ours[1], "x").value
            b = cores[key].core.resolve_string_value(key, "x", ofs[1]).value
            if a != b:
                raise SystemExit(f"{key}: aioflags {a!r}, flagd {b!r}")
        gc.collect()
        gc.disable()
        for key, evaluator in plan:
            new = new_objects(evaluations) if evaluator == "provider-new" else None
            if evaluator == "provider":  # (each context seen twice: kept)
                for c in ofs + ofs:
                    ours_provider.resolve_string_details(key, "x", c)
            os.getpgrp()  # the window opens
            await run(key, evaluator, evaluations, new)
            os.getppid()  # the window closes (callgrind dumps)
        os._exit(0)


# ------------------------------------------------------------------- parent
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--testbed", type=Path, default=None)
    parser.add_argument("--evaluations", type=int, default=1000)
    parser.add_argument(
        "--invalid-version",
        action="store_true",
        help='one context in seven with version "bad" (not a semantic version)',
    )
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        plan_json, paths_json, n, invalid = args.child
        plan = [tuple(p) for p in json.loads(plan_json)]
        asyncio.run(
            child(plan, json.loads(paths_json), int(n), invalid == "invalid")  # type: ignore[arg-type]
        )
        return
    if args.smoke:
        args.evaluations = 20
    folder = Path(tempfile.mkdtemp(prefix="flagd-eval-"))
    own = folder / "own.json"
    own.write_text(json.dumps(OWN))
    paths = [str(own)]
    flags = [
        ("own", k, w)
        for k, w in zip(OWN["flags"], ["fractional", "sem_ver", "$ref"], strict=True)
    ]
    if args.testbed is not None:
        paths += [
            str(args.testbed / name) for name in sorted({f for f, _, _ in TESTBED})
        ]
        flags = [("testbed", k, w) for _, k, w in TESTBED] + flags
    plan = [(key, e) for _, key, _ in flags for e in EVALUATORS]
    found = callgrind_windows(
        folder,
        __file__,
        [
            plan,
            paths,
            str(args.evaluations),
            "invalid" if args.invalid_version else "valid",
        ],
        len(plan),
        args.evaluations,
    )
    counts: dict[tuple[str, str], int] = dict(zip(plan, found, strict=True))
    versions = "one in seven invalid" if args.invalid_version else "all valid"
    print(
        f"\nflagd instructions per evaluation ({args.evaluations} per window, "
        f"{CONTEXTS} contexts, versions {versions}, callgrind, main thread):"
    )
    print(
        f"{'flag':<44}"
        + "".join(f"{e:>15}" for e in EVALUATORS)
        + "   ratio core/snapshot, provider/provider (new objects)"
    )
    for source, key, what in flags:
        row = [counts[key, e] for e in EVALUATORS]
        core_ratio = counts[key, "FlagdCore"] / counts[key, "snapshot"]
        provider_ratio = counts[key, "FlagdProvider"] / counts[key, "provider"]
        new_ratio = counts[key, "FlagdProvider"] / counts[key, "provider-new"]
        print(
            f"{f'{what}: {key} ({source})':<44}"
            + "".join(f"{n:>15,}" for n in row)
            + f"   {core_ratio:.1f}x, {provider_ratio:.1f}x ({new_ratio:.1f}x)"
        )
    for source in sorted({s for s, _, _ in flags}):
        keys = [k for s, k, _ in flags if s == source]
        flagd = sum(counts[k, "FlagdProvider"] for k in keys)
        print(
            f"{source} flags together, flagd's provider / aioflags' provider: "
            f"{flagd / sum(counts[k, 'provider'] for k in keys):.1f}x "
            f"(new objects: {flagd / sum(counts[k, 'provider-new'] for k in keys):.1f}x)"
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
