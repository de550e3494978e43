"""Evaluation speed: aioflags vs LaunchDarkly's LDClient and AsyncLDClient, same data, one run.

Rows marked "events on" send analytics events (to a FlagServer on
127.0.0.1): the cost of recording evaluations for LaunchDarkly.

    python benchmarks/bench_eval.py [--flags 1000] [--contexts 100] [--repeat 7] [--smoke]
    python benchmarks/bench_eval.py --instructions | --hooks | --events | --interleaved | --misses
    python benchmarks/bench_eval.py --interleaved --events

Three measurements, because wall-clock time on a shared machine swings 2x
between runs:

- *block*: each implementation evaluates every flag for every context in turn;
- *interleaved*: the implementations take turns per context, so a burst of
  load elsewhere hits both alike; the ratio is of the summed times
  (``--interleaved`` prints only these; its last row adds serialising the
  state to JSON, ``to_json()`` and LaunchDarkly's ``to_json_string()``);
- *instructions*: CPU instructions per ``await variation`` counted by
  valgrind's callgrind, of the measured loop alone: after set-up and a
  warm-up (every flag evaluated for five contexts), each SDK evaluates every
  flag once for 25 more contexts, new objects it has not seen before, as a
  request's are, the same contexts for both. The child process calls
  ``os.getpgrp()`` just before that loop and ``os.getppid()`` just after
  it, and callgrind zeroes its counters on entering the first and writes
  them out on entering the second. Set-up paces itself by the wall clock,
  so how much work it does depends on the machine's load: an earlier
  version of this script took the difference of two processes' whole runs
  and moved from 5,565 to 6,698 instructions when the machine was busy.
  Skipped with a message when valgrind is not installed.
  The same count with zero, one and three no-op hooks gives the cost of
  hooks: ``aioflags.Hook()`` (no stage of its own, so nothing runs), a
  hook whose own stages return the data (the series runs), and
  LaunchDarkly's no-op hook (9.18's ``AsyncHook`` with its pass-through
  stages; 9.20's ``Hook`` with stages that return the data) (``--hooks``
  prints only that table; ``--instructions`` only the count without hooks).
  The production configuration, analytics events on, is counted the same
  way (``--events`` prints only that table; ``--instructions`` and
  ``--hooks`` include its rows): both SDKs send their events to a
  ``FlagServer`` on 127.0.0.1 in the measured process and flush only when
  they close, after the count, so the figure is the cost of recording an
  evaluation; then the same with one hook on each, aioflags' with stages
  of its own that return the data and LaunchDarkly's no-op hook (as
  above). ``--interleaved --events`` times the interleaved rows with
  events on.

- *misses*: what the interleaved wall clock mostly pays for, counted
  instead of timed: callgrind's cache simulation (``--cache-sim=yes``, a
  1 MiB last level, as this machine's L2 per core) of aioflags' pass over
  every flag right after one of LaunchDarkly's, in one process: the
  last-level misses (reads and writes) per ``await variation``, the same
  in every run. Each line missed is a wait on memory when the other SDK's
  work has evicted it (``--misses`` prints only this).

The summary line gives the worse of the block and interleaved ratios.
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import in_memory_system, ld_async_client, ld_sync_client, table
from corpus import contexts, make_corpus

import aioflags
import aioflags.blocking
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
    client = aioflags.Client(
        aioflags.Config(data_system=in_memory_system(data), send_events=False)
    )
    # The sync face runs its own copy of the client on its own thread.
    blocking = aioflags.blocking.Client(
        aioflags.Config(data_system=in_memory_system(data), send_events=False)
    )
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
        await asyncio.to_thread(blocking.start)
        assert blocking.status is aioflags.ProviderStatus.READY
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
                    "aioflags blocking.Client." + label: [],
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
                    rows["aioflags blocking.Client." + label].append(
                        await per_eval(getattr(blocking, label), ours, False)
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
        await asyncio.to_thread(blocking.close)
        sync_ld.close()
        await async_ld.close()
        await async_ld_events.close()
        await events_server.__aexit__(None, None, None)
    return "\n".join(out)


async def interleaved(
    n_flags: int, n_contexts: int, repeat: int, events: bool = False
) -> tuple[str, dict[str, float]]:
    """Both SDKs take turns per context; ratios of the summed times.

    With ``events``, both send analytics events to a ``FlagServer`` on
    127.0.0.1 and flush only when they close.
    """
    async with FlagServer() as sink:
        return await _interleaved(
            n_flags, n_contexts, repeat, sink.url if events else None
        )


async def _interleaved(
    n_flags: int, n_contexts: int, repeat: int, events_uri: str | None
) -> tuple[str, dict[str, float]]:
    data = make_corpus(n_flags)
    raw_contexts = contexts(n_contexts)
    keys = list(data["flags"])
    ours = [aioflags.Context.from_dict(c) for c in raw_contexts]
    import ldclient

    theirs = [ldclient.Context.from_dict(c) for c in raw_contexts]
    if events_uri is None:
        async_ld = await ld_async_client(data)
        client = aioflags.Client(
            aioflags.Config(data_system=in_memory_system(data), send_events=False)
        )
    else:
        async_ld = await ld_async_client(
            data, events_uri, flush_interval=NO_FLUSH_S, diagnostic_opt_out=True
        )
        client = aioflags.Client(
            aioflags.Config(
                "sdk-key",
                data_system=in_memory_system(data),
                events_uri=events_uri,
                flush_interval=NO_FLUSH_S,
                diagnostic_opt_out=True,
            )
        )
    ratios: dict[str, float] = {}
    lines = [
        f"\ninterleaved (turns per context, {n_flags} flags x {n_contexts} "
        f"contexts x {repeat}{', events on' if events_uri else ''}): "
        "µs per evaluation, ms per all_flags_state",
        f"  {'call':<20}{'aioflags':>12}{'AsyncLDClient':>16}   ratio",
    ]
    try:
        async with client:
            # Steady state, as in run(): each SDK evaluates every flag once
            # before anything is timed (aioflags compiles a flag on first
            # use, so the first row would otherwise time the compiler), and
            # serialises one all-flags state (aioflags plans an all-flags
            # state once per snapshot and options, and its JSON pieces once
            # per plan: 6-40 ms for 1,000 flags, which the first timed call
            # of 75 would otherwise carry; a data change plans it anew).
            for key in keys:
                await client.variation(key, ours[0], None)
                await async_ld.variation(key, theirs[0], None)
            (await client.all_flags_state(ours[0])).to_json()
            (await async_ld.all_flags_state(theirs[0])).to_json_string()
            for label in (
                "variation",
                "variation_detail",
                "all_flags_state",
                "all_flags_state+json",
            ):
                whole = label.startswith("all_flags_state")
                mine = getattr(client, label.removesuffix("+json"))
                other = getattr(async_ld, label.removesuffix("+json"))
                totals = [0.0, 0.0]
                gc.collect()
                for _ in range(repeat):
                    for c_ours, c_theirs in zip(ours, theirs, strict=True):
                        for slot, fn, ctx in ((0, mine, c_ours), (1, other, c_theirs)):
                            start = time.perf_counter()
                            if label == "all_flags_state":
                                await fn(ctx)
                            elif whole:  # and the bootstrap JSON a page embeds
                                state = await fn(ctx)
                                if slot == 0:
                                    state.to_json()
                                else:
                                    state.to_json_string()
                            else:
                                for key in keys:
                                    await fn(key, ctx, False)
                            totals[slot] += time.perf_counter() - start
                calls = repeat * len(ours) * (1 if whole else len(keys))
                scale = 1e3 if whole else 1e6
                ratios[label] = totals[1] / totals[0]
                lines.append(
                    f"  {label:<20}{totals[0] / calls * scale:>12.3f}"
                    f"{totals[1] / calls * scale:>16.3f}   {ratios[label]:5.1f}x"
                )
    finally:
        await async_ld.close()
    return "\n".join(lines), ratios


# ------------------------------------------------------------ instructions
#: contexts each SDK evaluates every flag for before counting starts (a flag
#: is compiled on its first evaluation, and a client's first calls fill its
#: caches): the state a service is in after its first requests
CALLGRIND_WARM = 5
#: contexts counted, each new to the process and the same for both SDKs
#: (25,000 evaluations with 1,000 flags; the count is of the loop alone, so
#: it needs no more to be steady, and LaunchDarkly's SDK takes ~3 billion
#: instructions for them)
CALLGRIND_MEASURED = 25
#: callgrind zeroes its counters when the measured process enters the first
#: of these C functions and writes them out when it enters the second: the
#: child calls ``os.getpgrp()`` just before its measured loop and
#: ``os.getppid()`` just after it, and nothing on an evaluation's path calls
#: either. So the count is of the measured loop alone, whatever set-up did
#: (set-up paces itself by the wall clock, so its work depends on the load).
CALLGRIND_MARKS = ("os_getpgrp", "os_getppid")


async def _callgrind_child(which: str, n_flags: int, n_contexts: int) -> None:
    """The measured process: set up, warm up, then count one loop.

    The loop evaluates every flag once for each of ``n_contexts`` contexts
    that the process has not evaluated before, as a request's are.
    """
    data = make_corpus(n_flags)
    keys = list(data["flags"])
    raw_contexts = contexts(CALLGRIND_WARM + n_contexts)
    warm_raw, measured_raw = (
        raw_contexts[:CALLGRIND_WARM],
        raw_contexts[CALLGRIND_WARM:],
    )
    events = which.startswith("events-")
    which = which.removeprefix("events-")
    kind, _, count = which.rpartition("-")
    sink = FlagServer() if events else None
    if sink is not None:  # the loopback sink both SDKs send their events to
        await sink.__aenter__()
    try:
        if which == "aioflags" or kind in ("hooks", "stages"):
            await _callgrind_ours(kind, count, data, keys, warm_raw, measured_raw, sink)
        else:
            await _callgrind_theirs(
                kind, count, data, keys, warm_raw, measured_raw, sink
            )
    finally:
        if sink is not None:
            await sink.__aexit__(None, None, None)


#: Neither SDK flushes its events while it is measured: they are flushed
#: when it closes, after the count (the figure is the cost of recording
#: evaluations, not of sending them).
NO_FLUSH_S = 3600


async def _callgrind_ours(
    kind: str,
    count: str,
    data: dict[str, Any],
    keys: list[str],
    warm_raw: list[Any],
    measured_raw: list[Any],
    sink: FlagServer | None,
) -> None:
    hook = PassThrough if kind == "stages" else aioflags.Hook
    hooks = [hook() for _ in range(int(count) if kind else 0)]
    events: dict[str, Any] = (
        {"send_events": False}
        if sink is None
        else {
            "sdk_key": "sdk-key",
            "events_uri": sink.url,
            "flush_interval": NO_FLUSH_S,
            "diagnostic_opt_out": True,
        }
    )
    # Under valgrind everything runs ~50x slower: compiling the corpus
    # takes longer than the default ready_timeout, and a client that is
    # not ready yet answers CLIENT_NOT_READY (which is what an earlier
    # version of this script measured, 2,431 instructions).
    client = aioflags.Client(
        aioflags.Config(
            data_system=in_memory_system(data),
            hooks=hooks,
            ready_timeout=3600,
            **events,
        )
    )
    async with client:
        assert client.snapshot().initialized, "measure a ready client"
        for raw in warm_raw:
            c = aioflags.Context.from_dict(raw)
            for key in keys:
                await client.variation(key, c, False)
        measured = [aioflags.Context.from_dict(raw) for raw in measured_raw]
        gc.collect()  # the same collector state in every run
        os.getpgrp()  # callgrind: zero the counters
        for c in measured:
            for key in keys:
                await client.variation(key, c, False)
        os.getppid()  # callgrind: dump the counters


async def _callgrind_theirs(
    kind: str,
    count: str,
    data: dict[str, Any],
    keys: list[str],
    warm_raw: list[Any],
    measured_raw: list[Any],
    sink: FlagServer | None,
) -> None:
    import ldclient
    import ldclient.hook
    from ldclient.hook import Metadata

    # 9.18's AsyncLDClient took an AsyncHook (pass-through stages of its own);
    # 9.20's takes the Hook of both clients, whose stages are abstract.
    base: Any = getattr(ldclient.hook, "AsyncHook", ldclient.hook.Hook)

    class LDNoOp(base):  # type: ignore[misc]
        """LaunchDarkly's no-op hook: stages that return the data they are given."""

        if base is ldclient.hook.Hook:

            def before_evaluation(self, series_context: Any, data: Any) -> Any:
                return data

            def after_evaluation(
                self, series_context: Any, data: Any, detail: Any
            ) -> Any:
                return data

        @property
        def metadata(self) -> Metadata:
            return Metadata(name="no-op")

    ld_hooks = [LDNoOp() for _ in range(int(count) if kind == "ld-hooks" else 0)]
    ld = (
        await ld_async_client(data, hooks=ld_hooks)
        if sink is None
        else await ld_async_client(
            data,
            sink.url,
            hooks=ld_hooks,
            flush_interval=NO_FLUSH_S,
            diagnostic_opt_out=True,
        )
    )
    assert await ld.is_initialized(), "measure a ready client"
    for raw in warm_raw:
        ld_c = ldclient.Context.from_dict(raw)
        for key in keys:
            await ld.variation(key, ld_c, False)
    ld_measured = [ldclient.Context.from_dict(raw) for raw in measured_raw]
    gc.collect()
    os.getpgrp()  # callgrind: zero the counters
    for ld_c in ld_measured:
        for key in keys:
            await ld.variation(key, ld_c, False)
    os.getppid()  # callgrind: dump the counters
    await ld.close()


#: contexts whose pass is simulated for ``--misses``, each after a pass of
#: LaunchDarkly's (the count varies ~15% with the context: it is averaged)
MISSES_CONTEXTS = 4


async def _misses_child(n_flags: int) -> None:
    """Both SDKs in one process; each measured pass of ours follows one of theirs."""
    import ldclient

    data = make_corpus(n_flags)
    keys = list(data["flags"])
    # One pass more than reported: callgrind's first dump also holds the
    # set-up (its first zeroing does not take, whatever the marks), so the
    # first measured pass is left out.
    raw_contexts = contexts(CALLGRIND_WARM + 1 + MISSES_CONTEXTS)
    ld = await ld_async_client(data)
    client = aioflags.Client(
        aioflags.Config(
            data_system=in_memory_system(data), ready_timeout=3600, send_events=False
        )
    )
    async with client:
        assert client.snapshot().initialized, "measure a ready client"
        pairs = [
            (aioflags.Context.from_dict(raw), ldclient.Context.from_dict(raw))
            for raw in raw_contexts
        ]
        for ours, theirs in pairs[:CALLGRIND_WARM]:
            for key in keys:
                await client.variation(key, ours, False)
                await ld.variation(key, theirs, False)
        gc.collect()
        for ours, theirs in pairs[CALLGRIND_WARM:]:
            for key in keys:
                await ld.variation(key, theirs, False)
            os.getpgrp()  # callgrind: zero the counters
            for key in keys:
                await client.variation(key, ours, False)
            os.getppid()  # callgrind: dump the counters
    await ld.close()


def misses(n_flags: int) -> str:
    """Last-level misses per ``await variation`` after LaunchDarkly's pass (simulated)."""
    if shutil.which("valgrind") is None:
        return "\nmisses: skipped, valgrind is not installed (apt-get install valgrind)"
    with tempfile.TemporaryDirectory() as tmp:
        _callgrind(tmp, ["--cache-sim=yes", "--LL=1048576,16,64"], "misses", n_flags, 0)
        # One dump per measured pass; the first also holds the set-up.
        parts = sorted(
            (int(m.group(1)), p)
            for p in Path(tmp).iterdir()
            if (m := re.fullmatch(r"callgrind\.out\.(\d+)", p.name))
        )
        if len(parts) != MISSES_CONTEXTS + 1:
            raise RuntimeError(f"expected {MISSES_CONTEXTS + 1} dumps: {parts}")
        parts = parts[1:]
        per_pass = []
        for _, path in parts:
            text = path.read_text()
            events = re.search(r"^events:\s*(.+)$", text, re.M)
            summary = re.search(r"^summary:\s*(.+)$", text, re.M)
            assert events, "no events in the callgrind output"
            assert summary, "no summary in the callgrind output"
            counts = dict(
                zip(
                    events.group(1).split(),
                    map(int, summary.group(1).split()),
                    strict=True,
                )
            )
            per_pass.append((counts["DLmr"] + counts["DLmw"]) / n_flags)
    return (
        f"\nlast-level misses per await variation after a LaunchDarkly pass "
        f"(callgrind's cache simulation, 1 MiB last level, {n_flags} flags, "
        f"{MISSES_CONTEXTS} contexts): " + ", ".join(f"{m:.2f}" for m in per_pass)
    )


def _callgrind(
    tmp: str, options: list[str], which: str, n_flags: int, n_contexts: int
) -> None:
    """Run the child ``which`` under callgrind, its dumps written in ``tmp``.

    Counters are zeroed and dumped at :data:`CALLGRIND_MARKS`.
    """
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={Path(tmp) / 'callgrind.out'}",
            f"--zero-before={CALLGRIND_MARKS[0]}",
            f"--dump-before={CALLGRIND_MARKS[1]}",
            *options,
            sys.executable,
            __file__,
            "--callgrind-child",
            which,
            "--flags",
            str(n_flags),
            "--contexts",
            str(n_contexts),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def _instructions(which: str, n_flags: int, n_contexts: int) -> int:
    """Instructions of the child's measured loop (its main thread's)."""
    with tempfile.TemporaryDirectory() as tmp:
        # a thread of the SDK's, if it has one, is counted apart
        _callgrind(tmp, ["--separate-threads=yes"], which, n_flags, n_contexts)
        dumps = sorted(p.name for p in Path(tmp).iterdir())
        # The marked dump is part 1 of the main thread (01); the rest is the
        # dump at exit (no part number), and other threads' (02...).
        parts = [
            m.group(1)
            for name in dumps
            if (m := re.fullmatch(r"callgrind\.out\.(\d+)-01", name))
        ]
        if parts != ["1"]:
            raise RuntimeError(
                f"expected one dump at {CALLGRIND_MARKS[1]} (is the Python "
                f"binary stripped of its symbols?): {dumps}"
            )
        text = (Path(tmp) / "callgrind.out.1-01").read_text()
        # summary: the part's cost, the total callgrind_annotate shows
        match = re.search(r"^summary:\s*(\d+)", text, re.M)
        assert match, "no summary in the callgrind output"
        return int(match.group(1))


def instructions(n_flags: int) -> tuple[str, float | None]:
    """Instructions per ``await variation``: aioflags vs AsyncLDClient (callgrind)."""
    if shutil.which("valgrind") is None:
        return (
            "\ninstructions: skipped, valgrind is not installed "
            "(apt-get install valgrind)",
            None,
        )
    per: dict[str, float] = {}
    for which in ("aioflags", "ld"):
        per[which] = _per_evaluation(which, n_flags)
    ratio = per["ld"] / per["aioflags"]
    return (
        f"\ninstructions per await variation (callgrind, the measured loop only: "
        f"{n_flags} flags x {CALLGRIND_MEASURED} new contexts, the same for both)\n"
        f"  aioflags Client              {per['aioflags']:>10,.0f}\n"
        f"  LaunchDarkly AsyncLDClient   {per['ld']:>10,.0f}   ratio {ratio:.1f}x"
        + event_instructions(n_flags),
        ratio,
    )


def _per_evaluation(which: str, n_flags: int) -> float:
    """Instructions per ``await variation`` of the child ``which`` (callgrind)."""
    return _instructions(which, n_flags, CALLGRIND_MEASURED) / (
        n_flags * CALLGRIND_MEASURED
    )


#: (row, aioflags' child, LaunchDarkly's child) with analytics events on
EVENT_ROWS = (
    ("events on", "events-aioflags", "events-ld"),
    ("events on + 1 hook", "events-stages-1", "events-ld-hooks-1"),
)


def event_instructions(n_flags: int) -> str:
    """Instructions per ``await variation`` with analytics events on, and a hook too.

    The production configuration: both SDKs send their events to a
    ``FlagServer`` on 127.0.0.1 in the measured process and flush only when
    they close, after the count (the cost of recording an evaluation, not
    of sending it). The hook is aioflags' with its own stages returning the
    data (:class:`PassThrough`) and LaunchDarkly's ``AsyncHook`` with its
    pass-through stages.
    """
    lines = [
        f"\ninstructions per await variation with analytics events on "
        f"(callgrind, {n_flags} flags x {CALLGRIND_MEASURED} new contexts)",
        f"  {'configuration':<22}{'aioflags':>10}{'AsyncLDClient':>15}   ratio",
    ]
    for label, ours, theirs in EVENT_ROWS:
        mine, other = _per_evaluation(ours, n_flags), _per_evaluation(theirs, n_flags)
        lines.append(
            f"  {label:<22}{mine:>10,.0f}{other:>15,.0f}   {other / mine:.1f}x"
        )
    return "\n".join(lines)


HOOK_COUNTS = (1, 3)
HOOK_CHILDREN = tuple(
    f"{kind}-{n}" for kind in ("hooks", "stages", "ld-hooks") for n in HOOK_COUNTS
)
EVENT_CHILDREN = tuple(child for _, *pair in EVENT_ROWS for child in pair)


class PassThrough(aioflags.Hook):
    """A hook with stages of its own that do nothing: the series' own cost."""

    def before_evaluation(self, series_context: Any, data: Any) -> Any:
        return data

    def after_evaluation(self, series_context: Any, data: Any, detail: Any) -> Any:
        return data


def hook_instructions(n_flags: int) -> str:
    """Instructions per ``await variation`` with zero, one and three no-op hooks.

    Three columns: aioflags with ``aioflags.Hook()`` (no stage of its own:
    detected at registration, it runs nothing), aioflags with a hook whose
    stages are its own and return the data (the series runs), and
    LaunchDarkly's AsyncLDClient with an ``AsyncHook`` that overrides no
    stage (LaunchDarkly runs its pass-through stages); the ratio is
    LaunchDarkly's over aioflags' ``Hook()`` column.
    """
    if shutil.which("valgrind") is None:
        return "\nhook instructions: skipped, valgrind is not installed"
    added = CALLGRIND_MEASURED

    def per(which: str) -> float:
        return _instructions(which, n_flags, added) / (n_flags * added)

    base, ld_base = per("aioflags"), per("ld")
    lines = [
        f"\ninstructions per await variation with no-op hooks (callgrind, "
        f"{n_flags} flags x {added} new contexts)",
        "  hooks     aioflags Hook()   aioflags own stages   "
        "LaunchDarkly AsyncHook   ratio",
        f"  none      {base:>15,.0f}   {base:>19,.0f}   {ld_base:>22,.0f}   "
        f"{ld_base / base:.1f}x",
    ]
    for count in HOOK_COUNTS:
        ours, stages, theirs = (
            per(f"{kind}-{count}") for kind in ("hooks", "stages", "ld-hooks")
        )
        lines.append(
            f"  {count:<8}  {ours:>15,.0f}   {stages:>19,.0f}   {theirs:>22,.0f}   "
            f"{theirs / ours:.1f}x"
        )
    # The production configuration: analytics events on, and one hook
    # whose stages run (the ratio is over the own-stages column).
    stages, theirs = per("events-stages-1"), per("events-ld-hooks-1")
    lines.append(
        f"  1, events on  {'':>11}   {stages:>19,.0f}   {theirs:>22,.0f}   "
        f"{theirs / stages:.1f}x"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--contexts", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, to keep the script from rotting (no callgrind)",
    )
    parser.add_argument(
        "--no-callgrind", action="store_true", help="skip the instruction counts"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="only the instruction counts without hooks (callgrind)",
    )
    parser.add_argument(
        "--interleaved",
        action="store_true",
        help="only the interleaved wall-clock ratios (1,000 flags x 25 contexts x 3)",
    )
    parser.add_argument(
        "--hooks",
        action="store_true",
        help="only the instruction counts with zero, one and three no-op hooks",
    )
    parser.add_argument(
        "--events",
        action="store_true",
        help="only the instruction counts with analytics events on, and with a "
        "hook (with --interleaved: its wall clock with events on)",
    )
    parser.add_argument(
        "--misses",
        action="store_true",
        help="only the simulated cache misses per evaluation after a LaunchDarkly pass",
    )
    parser.add_argument(
        "--callgrind-child",
        choices=["aioflags", "ld", "misses", *HOOK_CHILDREN, *EVENT_CHILDREN],
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.callgrind_child == "misses":
        asyncio.run(_misses_child(args.flags))
        return
    if args.misses:
        print(misses(args.flags), flush=True)
        return
    if args.callgrind_child:
        asyncio.run(_callgrind_child(args.callgrind_child, args.flags, args.contexts))
        return
    if args.hooks:
        print(hook_instructions(args.flags), flush=True)
        return
    if args.events and not args.interleaved:
        print(event_instructions(args.flags), flush=True)
        return
    if args.instructions:
        print(instructions(args.flags)[0], flush=True)
        return
    if args.interleaved:
        print(
            asyncio.run(
                interleaved(args.flags, max(1, args.contexts // 4), 3, args.events)
            )[0],
            flush=True,
        )
        return
    if args.smoke:
        args.flags, args.contexts, args.repeat = 20, 4, 1
    print(asyncio.run(run(args.flags, args.contexts, args.repeat)), flush=True)
    text, ratios = asyncio.run(
        interleaved(args.flags, max(1, args.contexts // 4), args.repeat)
    )
    print(text, flush=True)
    instruction_ratio: float | None = None
    if args.smoke or args.no_callgrind:
        print("\ninstructions: skipped (--smoke or --no-callgrind)")
    else:
        text, instruction_ratio = instructions(args.flags)
        print(text, flush=True)
        print(hook_instructions(args.flags), flush=True)
        print(misses(args.flags), flush=True)
    # Side by side: the steady count, and the wall clock on this machine.
    print(
        "\nratios vs AsyncLDClient: instructions per await variation "
        + (f"{instruction_ratio:.1f}x" if instruction_ratio else "(not measured)")
        + "; interleaved wall clock "
        + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items())
        + " (block runs above are less stable: report the worse)"
    )


if __name__ == "__main__":
    main()
