"""Start-up in fresh processes: aioflags Client against AsyncLDClient, over http and https.

    python benchmarks/bench_startup.py [--flags 1000] [--pairs 10] [--runs 1]
        [--schemes http,https] [--data-system default|polling]
        [--envs test,minimal,fastapi] [--python PATH] [--venvs DIR]
        [--floor] [--instructions] [--where] [--profile PATH] [--smoke]

Each run is a **fresh process** that imports its SDK, constructs its client
(its ``Config`` included), waits until it is READY (``async with`` /
``start()`` returning initialised) and then evaluates one flag (``await
client.variation(...)``: ``flag-3`` of the corpus, a flag with rules, a
segment and a rollout, for a context with every attribute its clauses
read). Three figures come out of it:

- **cold start: import + construct + READY + the first evaluation**, the
  figure issue 49's target is held to: everything a service pays for its
  SDK before it has served one answer, however the SDK splits that work
  between its import, its first start and its first evaluation
  (LaunchDarkly's SDK imports aiohttp and its own modules in ``import
  ldclient``; aioflags imports httpx, anyio's backend and its running parts
  on its first start, and compiles a flag on its first evaluation);
- **whole: import + construct + READY**, the figure issue 18's start-up
  target was held to (the same process, stopped short of the evaluation);
- **window: client created to READY**, the same process's first start
  alone (the imports an SDK does on first use, its TLS set-up and its first
  socket included): kept for comparison, it is not the fair one.

The interpreter's own start and what the measuring script imports first
(asyncio, json, argparse, logging, pathlib: an application has them too) are
in neither figure. The runs come in **pairs**, one of each SDK back to back,
the order alternating from one pair to the next, so a burst of load on a
shared machine hits both sides of a pair alike; the ratio aioflags /
AsyncLDClient is taken per pair, and its median and **worst** pair are
printed; ``--runs N`` repeats the whole measurement (a fresh server each
time) and ends with the worst of the runs. CPU time is that of the whole
process (all threads): waiting for a CPU does not inflate it, but work
overlapped on two threads counts in full.

The flags (``corpus.py``) come from a server process on loopback, its bodies
serialised once: FDv2 ``/sdk/poll`` for aioflags, FDv1 ``/sdk/latest-all``
for LaunchDarkly's 9.20 SDK (``stream=False``, its fastest start-up path).
aioflags runs its default data system (a poll, then streaming after READY)
with only ``import aioflags`` done before the client is constructed, as an
application would; ``--data-system polling`` polls only, and imports
``aioflags.sources`` (which brings httpx) with the SDK. Events are off on
both sides.

Over https the server presents a certificate of the test CA
(``tests/certs``). Both SDKs are given one CA file, certifi's bundle with
the test CA appended (``Config(verify=path)``, ``HTTPConfig(ca_certs=path)``):
each loads as many certificates as it would from the default bundle.
Over http, aioflags sets up no TLS at all; AsyncLDClient builds its SSL
context (loading the bundle) either way.

``--instructions`` also counts each whole process's instructions under
valgrind's callgrind, stopped before the SDK's import, once it is imported,
at READY and after the first evaluation: the differences are the figures
above, steady whatever the load, but blind to overlap (work on two threads
counts in full).

**Three environments** (``--envs``), because what else is installed changes
the figures: with click, pygments and rich installed, ``import httpx``
imports them (``httpx._main``, about 26 ms), and with trio installed
httpcore imports it on a first start (tens of milliseconds); LaunchDarkly's
SDK imports neither.

- ``test``: both SDKs' children run ``--python`` (by default the
  interpreter running this script: this repository's test environment, with
  every dependency group installed);
- ``minimal``: each SDK's children run in a virtual environment of its own
  holding only that SDK and its runtime dependencies, as a service installs
  it: ``DIR/aioflags`` (``pip install -e .`` of this checkout) and
  ``DIR/ld`` (``pip install "launchdarkly-server-sdk[async]==9.20.0"``),
  made in ``--venvs DIR`` if missing (with pip, once) and reused;
- ``fastapi``: the same, each beside ``fastapi[standard]``, as FastAPI's
  docs say to install it (``DIR/fastapi-aioflags``, ``DIR/fastapi-ld``).
  It brings click, pygments and rich (through typer and fastapi-cli), so
  ``import httpx`` imports its command-line client there: httpx 0.28's
  ``__init__`` imports ``httpx._main`` whenever they import. aioflags cannot
  avoid it and keep httpx (only a stub put in ``sys.modules``, a global
  change a library does not make, would); where users run FastAPI this is
  the figure they see.

``--floor`` adds a third fresh process to each pair: **the dependencies
alone**, timed as the SDKs' imports are (after the same preamble), importing
what aioflags' first start imports from other packages
(:data:`FLOOR_MODULES`: httpx, httpcore, anyio's asyncio backend and
``to_thread``, httpx-sse, and whatever each of them imports in that
environment) and nothing of aioflags. Its ratio to ``AsyncLDClient``'s cold
start is the least aioflags' could be there if its own code cost nothing.

Each SDK's line also counts the **full garbage collections** (generation 2)
that ran in its cold start. One costs ~13-20 ms of CPU after a first start's
imports (it walks every object), and whether one falls inside a cold start
depends on how many collections of generation 1 the process made before: a
few thousand objects more or less, anywhere in the process, decide it.

``--profile PATH`` measures nothing: it runs one aioflags cold start under
cProfile, every thread by its own CPU clock, writes the statistics to PATH
and prints the largest cumulative times (the first environment and scheme).

The run ends with a summary: per environment and scheme, the worst of the
runs' per-pair ratios and, with ``--instructions``, the whole process's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Final

# Nothing from aioflags or LaunchDarkly's SDK at the top, and no more of the
# standard library than a child needs: a child imports only the SDK it
# measures (ssl with it, for instance); the parent's helpers are imported
# where they are used.
HERE = Path(__file__).resolve().parent
CERTS = HERE.parent / "tests" / "certs"
OURS = "aioflags Client"
LD = "LaunchDarkly AsyncLDClient"
FLOOR = "dependencies alone"

#: What aioflags' first start imports from other packages (``--floor``), each
#: with what it imports in turn: ``import httpx`` its command-line client
#: when click, pygments and rich are installed, httpcore trio and h2 when
#: they are. (certifi, h11, idna and sniffio come with them.)
FLOOR_MODULES: Final = (
    "httpx",
    "httpcore",
    "httpcore._backends.anyio",
    "anyio._backends._asyncio",
    "anyio.to_thread",
    "httpx_sse",
)


# ------------------------------------------------------------------ child
def _stop_here(point: str) -> None:
    """End the process at once at ``point`` if asked (``--stop``): instruction counts."""
    if _WHERE is not None:
        _WHERE.phase(point)
    if _PROFILE is not None and point == "evaluated":
        _PROFILE.dump()
    if os.environ.get("BENCH_STOP") == point:
        sys.stdout.flush()
        os._exit(0)


class _Where:
    """``--where``: segment marks for callgrind, each labelled with what ran in it.

    A mark is a call of ``os.getppid()``, which callgrind is told to dump its
    counts before (``--dump-before=os_getppid``): one file per segment. A
    segment is labelled with the module whose own code ran in it (an import
    marks where it starts and ends: the modules it imports are theirs), a
    function of :data:`LABELLED` (its own code), or ``<own code>`` for the
    rest: the script, the SDK's code already imported, the event loop.
    Threads mark too (the labels are per thread, the counts are not: work
    overlapped on two threads is split by whichever marks first).
    """

    #: Functions whose own code is labelled apart, as ``module: [qualname]``.
    LABELLED: Final = {
        "aioflags._datasystem._payloads": ["parse_fdv2_poll_stream"],
        "aioflags._datasystem._store": ["Store.apply"],
    }

    def __init__(self, path: str) -> None:
        import threading

        self._path = path
        self._local = threading.local()
        self._phase = "before"
        self.marks: list[tuple[str, str]] = []

    def _stack(self) -> list[str]:
        stack: list[str] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def mark(self, label: str) -> None:
        """End the segment that ran since the last mark, as ``label``'s."""
        self.marks.append((self._phase, label))
        os.getppid()

    def enter(self, label: str) -> None:
        stack = self._stack()
        self.mark(stack[-1] if stack else "<own code>")
        stack.append(label)

    def leave(self, label: str) -> None:
        self.mark(label)
        self._stack().pop()

    def phase(self, point: str) -> None:
        """``start``, ``imported``, ``ready`` or ``evaluated``: the phase that ends there.

        The first start and the first evaluation are one phase (``window``).
        """
        stack = self._stack()
        self.mark(stack[-1] if stack else "<own code>")
        self._phase = {"start": "import", "imported": "window", "ready": "window"}.get(
            point, "after"
        )
        if point == "evaluated":
            Path(self._path).write_text(json.dumps(self.marks))
            os._exit(0)

    def install(self) -> None:
        """Mark every module's execution, and the functions of :data:`LABELLED`."""
        import importlib.abc
        import importlib.machinery

        where = self

        class Finder(importlib.abc.MetaPathFinder):
            def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
                spec = importlib.machinery.PathFinder.find_spec(name, path, target)
                loader = getattr(spec, "loader", None)
                if loader is None or not hasattr(loader, "exec_module"):
                    return spec
                run = loader.exec_module

                def exec_module(module: Any) -> None:
                    where.enter(name)
                    try:
                        run(module)
                        where.label(name, module)
                    finally:
                        where.leave(name)

                loader.exec_module = exec_module
                return spec

        sys.meta_path.insert(0, Finder())

    def label(self, name: str, module: Any) -> None:
        for qualname in self.LABELLED.get(name, ()):
            owner = module
            *path, attr = qualname.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, attr, self._wrap(getattr(owner, attr), f"{qualname}()"))

    def _wrap(self, func: Any, label: str) -> Any:
        import functools
        import inspect

        where = self
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
                where.enter(label)
                try:
                    return await func(*args, **kwargs)
                finally:
                    where.leave(label)

            return wrapped_async

        @functools.wraps(func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            where.enter(label)
            try:
                return func(*args, **kwargs)
            finally:
                where.leave(label)

        return wrapped


_WHERE = _Where(os.environ["BENCH_WHERE"]) if os.environ.get("BENCH_WHERE") else None


class _Profile:
    """``--profile``: cProfile on every thread, each timed by its own CPU clock.

    A profiler starts on the main thread, and one on each thread started
    after (``threading.setprofile``: a thread's first call enables its own);
    at the first evaluation their statistics are merged into one file.
    Timing each thread by ``time.thread_time`` keeps a thread's waits for
    the GIL out of the functions it was in.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._profiles: list[Any] = []

    def install(self) -> None:
        import cProfile
        import threading

        def start(*_: object) -> None:
            # A thread's first call: its own profiler replaces this hook there.
            profile = cProfile.Profile(time.thread_time)
            self._profiles.append(profile)
            profile.enable()

        threading.setprofile(start)
        start()

    def dump(self) -> None:
        """Merge and write the statistics (on the main thread, at the first evaluation).

        The main thread's profiler is stopped, its calls in flight counted up
        to now; the other threads' are read as they stand (stopping one from
        another thread would time its calls in flight by this thread's
        clock), their calls in flight left out: a worker waiting for work.
        """
        import marshal
        import pstats
        import threading

        threading.setprofile(None)
        main, *others = self._profiles
        stats = pstats.Stats(main)
        part = Path(self._path + ".thread")
        for profile in others:
            profile.snapshot_stats()
            part.write_bytes(marshal.dumps(profile.stats))  # (as dump_stats writes)
            stats.add(str(part))
        part.unlink(missing_ok=True)
        stats.dump_stats(self._path)


_PROFILE = (
    _Profile(os.environ["BENCH_PROFILE"]) if os.environ.get("BENCH_PROFILE") else None
)


#: The flag each process evaluates once READY, and the context it evaluates
#: it for (``corpus.py``: rules on ``contains``, ``matches`` and ``lessThan``,
#: a ``segmentMatch`` rule and a rollout for the fallthrough).
FIRST_FLAG: Final = "flag-3"
FIRST_CONTEXT: Final = {
    "kind": "user",
    "key": "user-42",
    "email": "zed@example.com",
    "name": "Zed",
    "country": "jp",
    "age": 40,
    "appVersion": "2.2.1",
    "createdAt": 1750000000000,
}

#: What one SDK's start reports: seconds of wall clock and of CPU time from
#: the client's construction to READY, then to the end of the first
#: evaluation; and the full garbage collections the process has made by then.
Timings = tuple[float, float, float, float, int]


def _full_collections() -> int:
    """How many collections of generation 2 this process has made so far."""
    import gc

    return int(gc.get_stats()[2]["collections"])


async def _ours(url: str, ca: str | None, data_system: str) -> Timings:
    import aioflags

    options: dict[str, Any] = {}
    if data_system == "polling":
        from aioflags import sources

        options["data_system"] = aioflags.DataSystem.custom(
            initializers=[sources.polling_initializer()],
            synchronizers=[sources.polling_synchronizer(interval=3600)],
        )
    start, cpu = time.perf_counter(), time.process_time()
    config = aioflags.Config(
        "sdk-key",
        base_uri=url,
        stream_uri=url,
        events_uri=url,
        ready_timeout=300,
        send_events=False,
        verify=ca if ca else True,
        **options,
    )
    async with aioflags.Client(config) as client:
        ready = time.perf_counter() - start, time.process_time() - cpu
        _stop_here("ready")
        value = await client.variation(
            FIRST_FLAG, aioflags.Context.from_dict(FIRST_CONTEXT), None
        )
        evaluated = time.perf_counter() - start, time.process_time() - cpu
        full = _full_collections()
        _stop_here("evaluated")
        assert client.status is aioflags.ProviderStatus.READY, client.status
        assert isinstance(value, bool), value
        assert len(client.snapshot().flag_keys) > 0
    return (*ready, *evaluated, full)


async def _ld(url: str, ca: str | None) -> Timings:
    from ldclient import Context
    from ldclient.async_client import AsyncLDClient
    from ldclient.async_config import AsyncConfig
    from ldclient.config import HTTPConfig

    start, cpu = time.perf_counter(), time.process_time()
    client = AsyncLDClient(
        AsyncConfig(
            "sdk-key",
            base_uri=url,
            stream_uri=url,
            events_uri=url,
            stream=False,
            send_events=False,
            diagnostic_opt_out=True,
            http=HTTPConfig(ca_certs=ca),
        )
    )
    await client.start(start_wait=300)
    ready = time.perf_counter() - start, time.process_time() - cpu
    _stop_here("ready")
    value = await client.variation(FIRST_FLAG, Context.from_dict(FIRST_CONTEXT), None)
    evaluated = time.perf_counter() - start, time.process_time() - cpu
    full = _full_collections()
    _stop_here("evaluated")
    assert isinstance(value, bool), value
    assert await client.is_initialized()
    state = await client.all_flags_state(Context.create("bench-user"))
    assert state.valid
    assert len(state.to_values_map()) > 0
    await client.close()
    return (*ready, *evaluated, full)


def child(which: str, url: str, ca: str | None, data_system: str) -> None:
    """One fresh process: import the SDK, then time one start and one evaluation.

    ``deps`` (``--floor``): import :data:`FLOOR_MODULES` only, timed alike.
    """
    if _WHERE is not None:
        _WHERE.install()
    _stop_here("start")
    if _PROFILE is not None:
        _PROFILE.install()
    collections = _full_collections()
    start, cpu = time.perf_counter(), time.process_time()
    if which == "deps":
        for name in FLOOR_MODULES:
            __import__(name)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        _stop_here("imported")
        full = _full_collections() - collections
        print(
            json.dumps(
                {"cold_ms": wall * 1e3, "cold_cpu_ms": cpu * 1e3, "full_gc": full}
            )
        )
        return
    if which == "ld":
        import ldclient.async_client
        import ldclient.async_config  # noqa: F401
    else:
        import aioflags

        if data_system == "polling":
            import aioflags.sources  # noqa: F401
    imported, imported_cpu = time.perf_counter() - start, time.process_time() - cpu
    _stop_here("imported")
    wall, cpu, first_wall, first_cpu, full = asyncio.run(
        _ld(url, ca) if which == "ld" else _ours(url, ca, data_system)
    )
    out = {
        "import_ms": imported * 1e3,
        "import_cpu_ms": imported_cpu * 1e3,
        "wall_ms": wall * 1e3,
        "cpu_ms": cpu * 1e3,
    }
    out["total_ms"] = out["import_ms"] + out["wall_ms"]
    out["total_cpu_ms"] = out["import_cpu_ms"] + out["cpu_ms"]
    out["cold_ms"] = out["import_ms"] + first_wall * 1e3
    out["cold_cpu_ms"] = out["import_cpu_ms"] + first_cpu * 1e3
    out["first_ms"] = (first_wall - wall) * 1e3
    out["full_gc"] = full - collections
    print(json.dumps(out))


def child_argv(
    pythons: dict[str, str], which: str, url: str, ca: str | None, data_system: str
) -> list[str]:
    """The command of one measured process: ``which`` SDK starting from ``url``.

    The dependencies alone (``deps``) run in aioflags' environment.
    """
    python = pythons["aioflags" if which == "deps" else which]
    argv = [python, __file__, "--child", which, url]
    return [*argv, "--data-system", data_system, *(["--ca", ca] if ca else [])]


def child_env(**extra: str) -> dict[str, str]:
    """A measured process's environment: this one's, bytecode caches read and written."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_child(
    pythons: dict[str, str], which: str, url: str, ca: str | None, data_system: str
) -> dict[str, float]:
    import subprocess

    result = subprocess.run(
        child_argv(pythons, which, url, ca, data_system),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=child_env(),
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ----------------------------------------------------------------- server
def serve_main(n_flags: int, tls: bool) -> None:
    import ssl

    from bench_ingest import serve

    context = None
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(CERTS / "server.pem", CERTS / "server.key")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(n_flags, ssl_context=context))


@contextlib.contextmanager
def ca_bundle() -> Any:
    """certifi's bundle with the test CA appended: the size of a real default."""
    import tempfile

    import certifi

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.pem"
        path.write_text(
            Path(certifi.where()).read_text() + (CERTS / "ca.pem").read_text()
        )
        yield str(path)


# ----------------------------------------------------------------- parent
FIGURES = (
    ("cold_ms", "cold start (import + construct + READY + 1st evaluation), wall"),
    ("cold_cpu_ms", "cold start (import + construct + READY + 1st evaluation), CPU"),
    ("total_ms", "whole (import + construct + READY), wall"),
    ("total_cpu_ms", "whole (import + construct + READY), CPU"),
    ("wall_ms", "window (client created to READY), wall"),
    ("cpu_ms", "window (client created to READY), CPU"),
    ("import_ms", "import, wall"),
    ("first_ms", "first evaluation, wall"),
)


#: Each child kind's name in the reports.
NAMES: Final = {"aioflags": OURS, "ld": LD, "deps": FLOOR}


def measure(
    pythons: dict[str, str],
    n_flags: int,
    pairs: int,
    scheme: str,
    data_system: str,
    floor: bool = False,
) -> dict[str, list[dict[str, float]]]:
    """``pairs`` alternating pairs of fresh processes over ``scheme``.

    With ``floor``, triples: the dependencies alone too, the order rotating.
    """
    from _common import server_process

    tls = scheme == "https"
    kinds = ["aioflags", "ld", *(["deps"] if floor else [])]
    runs: dict[str, list[dict[str, float]]] = {NAMES[k]: [] for k in kinds}
    with contextlib.ExitStack() as stack:
        ca = stack.enter_context(ca_bundle()) if tls else None
        argv = [__file__, "--serve", str(n_flags), *(["--tls"] if tls else [])]
        url = stack.enter_context(server_process(*argv))
        for which in kinds:  # the bytecode caches, the disk warm
            run_child(pythons, which, url, ca, data_system)
        for i in range(pairs):
            if floor:
                order = kinds[i % 3 :] + kinds[: i % 3]
            else:
                order = kinds if i % 2 == 0 else kinds[::-1]
            for which in order:
                runs[NAMES[which]].append(
                    run_child(pythons, which, url, ca, data_system)
                )
    return runs


def _instructions(argv: list[str], stop: str) -> int:
    import re
    import subprocess

    env = child_env(BENCH_STOP=stop, PYTHONHASHSEED="0")
    err = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=900,
    ).stderr
    match = re.search(r"Collected : (\d+)", err)
    assert match, err
    return int(match.group(1))


def instructions(
    pythons: dict[str, str],
    n_flags: int,
    scheme: str,
    data_system: str,
    floor: bool = False,
) -> tuple[str, float]:
    """Instructions (callgrind, all threads): import, window, first evaluation, totals.

    Whole processes, stopped before the SDK is imported, once it is imported,
    at READY and after the first evaluation; the figures are the
    differences: what no load on the machine changes. They count work, not
    waiting, so they cannot show work overlapped on two threads (the wall
    clock does). With ``floor``, the dependencies alone too (their imports).
    Returns the table and the cold start's ratio.
    """
    import shutil

    if shutil.which("valgrind") is None:
        return "instructions: skipped, valgrind is not installed", float("nan")
    from _common import server_process

    tls = scheme == "https"
    stops = ("start", "imported", "ready", "evaluated")
    counts: dict[str, tuple[int, ...]] = {}
    with contextlib.ExitStack() as stack:
        ca = stack.enter_context(ca_bundle()) if tls else None
        argv = [__file__, "--serve", str(n_flags), *(["--tls"] if tls else [])]
        url = stack.enter_context(server_process(*argv))
        for which, name in (("aioflags", OURS), ("ld", LD)):
            child = child_argv(pythons, which, url, ca, data_system)
            run_child(pythons, which, url, ca, data_system)  # bytecode caches
            counts[name] = tuple(_instructions(child, stop) for stop in stops)
        if floor:
            child = child_argv(pythons, "deps", url, ca, data_system)
            deps = [_instructions(child, stop) for stop in stops[:2]]

    def columns(c: tuple[int, ...]) -> tuple[int, ...]:
        """import, window, first evaluation, whole, cold start, process."""
        return (c[1] - c[0], c[2] - c[1], c[3] - c[2], c[2] - c[0], c[3] - c[0], c[3])

    ours, theirs = columns(counts[OURS]), columns(counts[LD])
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    heads = ("import", "window", "1st eval", "whole", "cold", "process")
    text = "\n".join(
        [
            f"instructions (callgrind, all threads), {scheme}, {n_flags} flags, "
            f"aioflags' {data_system} data system",
            f"  {'millions':<28}" + "".join(f"{h:>10}" for h in heads),
            *(
                f"  {name:<28}" + "".join(f"{v / 1e6:>10,.1f}" for v in columns(c))
                for name, c in counts.items()
            ),
            "  (import: the SDK's; window: client created to READY; whole: import"
            " + construct + READY;\n   cold: whole + the first evaluation; process:"
            " all of it, the interpreter's start included)",
            "  ratio aioflags / AsyncLDClient: "
            + ", ".join(f"{h} {r:.2f}x" for h, r in zip(heads, ratios, strict=True)),
        ]
    )
    if floor:
        alone = deps[1] - deps[0]
        text += (
            f"\n  {FLOOR} (their imports): {alone / 1e6:,.1f} millions, "
            f"{alone / theirs[4]:.2f}x AsyncLDClient's cold start"
        )
    return text, ratios[4]


def profile(
    pythons: dict[str, str], n_flags: int, scheme: str, data_system: str, path: Path
) -> str:
    """``--profile``: one aioflags cold start under cProfile (:class:`_Profile`).

    The statistics go to ``path`` (``pstats``); the text is their 40 largest
    cumulative times. cProfile makes Python code several times slower than
    it runs, and C code not: read the shares, not the milliseconds.
    """
    import io
    import pstats
    import subprocess

    from _common import server_process

    tls = scheme == "https"
    with contextlib.ExitStack() as stack:
        ca = stack.enter_context(ca_bundle()) if tls else None
        argv = [__file__, "--serve", str(n_flags), *(["--tls"] if tls else [])]
        url = stack.enter_context(server_process(*argv))
        run_child(pythons, "aioflags", url, ca, data_system)  # bytecode caches
        subprocess.run(
            child_argv(pythons, "aioflags", url, ca, data_system),
            capture_output=True,
            check=True,
            env=child_env(BENCH_PROFILE=str(path)),
            timeout=300,
        )
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("cumulative").print_stats(40)
    return f"cProfile of one cold start, {scheme}, {n_flags} flags, in {path}\n" + (
        out.getvalue()
    )


def _group(label: str) -> str:
    """A segment's row: an aioflags subpackage, another top-level package, or a label."""
    if label.startswith("aioflags."):
        return ".".join(label.split(".")[:2])
    if label.startswith("<") or label.endswith("()"):
        return label
    return label.split(".")[0]


def where(pythons: dict[str, str], n_flags: int, scheme: str, data_system: str) -> str:
    """Where each SDK's whole-process instructions go (``--where``): a table.

    One process each under callgrind, its segments labelled (:class:`_Where`):
    the rows are the import, per package (an aioflags module apart), and
    the first start's own code, each with its share of the whole.
    """
    import collections
    import shutil
    import subprocess
    import tempfile

    if shutil.which("valgrind") is None:
        return "where: skipped, valgrind is not installed"
    from _common import server_process

    tls = scheme == "https"
    lines = [f"where the instructions go, {scheme}, {n_flags} flags (millions)"]
    with contextlib.ExitStack() as stack:
        ca = stack.enter_context(ca_bundle()) if tls else None
        argv = [__file__, "--serve", str(n_flags), *(["--tls"] if tls else [])]
        url = stack.enter_context(server_process(*argv))
        for which, name in (("aioflags", OURS), ("ld", LD)):
            run_child(pythons, which, url, ca, data_system)  # bytecode caches
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            env = child_env(BENCH_WHERE=str(tmp / "marks.json"), PYTHONHASHSEED="0")
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--dump-before=os_getppid",
                    "--dump-instr=no",
                    f"--callgrind-out-file={tmp / 'cg'}",
                    *child_argv(pythons, which, url, ca, data_system),
                ],
                capture_output=True,
                check=True,
                env=env,
                timeout=1800,
            )
            marks = json.loads((tmp / "marks.json").read_text())
            rows: dict[str, collections.Counter[str]] = {
                "import": collections.Counter(),
                "window": collections.Counter(),
            }
            for i, (phase, label) in enumerate(marks, 1):
                if phase in rows:
                    for line in (tmp / f"cg.{i}").open():
                        if line.startswith("summary:"):
                            rows[phase][_group(label)] += int(line.split()[1])
                            break
            whole = sum(sum(c.values()) for c in rows.values())
            lines.append(f"  {name}: whole {whole / 1e6:,.1f}")
            for phase, title in (
                ("import", "import"),
                ("window", "first start and first evaluation"),
            ):
                counts = rows[phase]
                lines.append(f"    {title}: {sum(counts.values()) / 1e6:,.1f}")
                shown = 0
                for row, count in counts.most_common():
                    if count < whole / 100:
                        break
                    shown += count
                    lines.append(
                        f"      {count / 1e6:>8,.1f} {count / whole:>6.1%}  {row}"
                    )
                rest = sum(counts.values()) - shown
                lines.append(
                    f"      {rest / 1e6:>8,.1f} {rest / whole:>6.1%}  (the rest, each < 1 %)"
                )
    return "\n".join(lines)


def report(runs: dict[str, list[dict[str, float]]], title: str) -> str:
    """Each figure's median, min and max; the per-pair ratios, median and worst."""
    import statistics

    lines = [
        title,
        f"  {'ms':<88}{'median':>9}{'min':>9}{'max':>9}",
    ]
    for field, name in FIGURES:
        for sdk in (OURS, LD):
            values = [r[field] for r in runs[sdk]]
            lines.append(
                f"  {sdk + ', ' + name:<88}{statistics.median(values):>9.1f}"
                f"{min(values):>9.1f}{max(values):>9.1f}"
            )
    if FLOOR in runs:
        for field, name in FIGURES[:2]:
            values = [r[field] for r in runs[FLOOR]]
            lines.append(
                f"  {FLOOR + ', import, ' + name.split(', ')[-1]:<88}"
                f"{statistics.median(values):>9.1f}{min(values):>9.1f}"
                f"{max(values):>9.1f}"
            )
    for field, name in FIGURES:
        ratios = [
            ours[field] / theirs[field]
            for ours, theirs in zip(runs[OURS], runs[LD], strict=True)
        ]
        lines.append(
            f"  ratio aioflags / AsyncLDClient per pair, {name}: "
            f"median {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x, "
            f"best {min(ratios):.2f}x"
        )
    if FLOOR in runs:
        for field, name in FIGURES[:2]:
            ratios = [
                deps[field] / theirs[field]
                for deps, theirs in zip(runs[FLOOR], runs[LD], strict=True)
            ]
            lines.append(
                f"  ratio {FLOOR} / AsyncLDClient's {name}, per pair: "
                f"median {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x, "
                f"best {min(ratios):.2f}x"
            )
    full = ", ".join(
        f"{sdk} {sorted(int(r['full_gc']) for r in sdk_runs)}"
        for sdk, sdk_runs in runs.items()
    )
    lines.append(
        f"  full garbage collections (generation 2) in each cold start: {full}"
    )
    return "\n".join(lines)


def worst(
    all_runs: list[dict[str, list[dict[str, float]]]], field: str, sdk: str = OURS
) -> str:
    """The worst of the runs' per-pair ratios of ``field`` (``sdk``'s): median and pair."""
    import statistics

    medians, pairs = [], []
    for runs in all_runs:
        ratios = [
            ours[field] / theirs[field]
            for ours, theirs in zip(runs[sdk], runs[LD], strict=True)
        ]
        medians.append(statistics.median(ratios))
        pairs.append(max(ratios))
    return f"median {max(medians):.2f}x, pair {max(pairs):.2f}x"


#: What each minimal environment holds: one SDK and its runtime dependencies.
MINIMAL = {
    "aioflags": ["-e", str(HERE.parent)],
    "ld": ["launchdarkly-server-sdk[async]==9.20.0"],
}

#: Where FastAPI's users are: ``pip install "fastapi[standard]"`` (as
#: FastAPI's docs install it) beside each SDK. It brings click, pygments and
#: rich, and with them httpx's command-line client into ``import httpx``.
FASTAPI = {which: [*req, "fastapi[standard]"] for which, req in MINIMAL.items()}


def minimal_pythons(directory: Path, env: str = "minimal") -> dict[str, str]:
    """Each SDK's interpreter in a virtual environment of its own (made if missing).

    ``directory/aioflags`` holds this checkout installed as ``pip install -e
    .`` does (anyio, httpx, httpx-sse and what they need: no click, pygments,
    rich or trio); ``directory/ld`` only ``launchdarkly-server-sdk[async]``.
    A service installs its SDK with its dependencies and nothing else. With
    ``env="fastapi"``, ``directory/fastapi-aioflags`` and
    ``directory/fastapi-ld``: the same, each with ``fastapi[standard]``.
    """
    import subprocess

    pythons = {}
    wanted = FASTAPI if env == "fastapi" else MINIMAL
    prefix = "fastapi-" if env == "fastapi" else ""
    for which, requirement in wanted.items():
        venv = directory / f"{prefix}{which}"
        python = venv / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *requirement], check=True
            )
        pythons[which] = str(python)
    return pythons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument(
        "--runs", type=int, default=1, help="measurements per scheme (worst printed)"
    )
    parser.add_argument("--schemes", default="http,https")
    parser.add_argument(
        "--data-system",
        choices=("default", "polling"),
        default="default",
        help="aioflags' data system: the default (only `import aioflags` before "
        "the clock starts), or polling (`aioflags.sources` imported too)",
    )
    parser.add_argument(
        "--envs",
        default="test",
        help="comma-separated: test (both SDKs under --python, by default this "
        "interpreter: the test environment), minimal (each SDK in a virtual "
        "environment holding only it and its runtime dependencies, in --venvs) "
        "and/or fastapi (the same, each beside fastapi[standard])",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="both SDKs' interpreter in the test environment",
    )
    parser.add_argument(
        "--venvs",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "aioflags-bench-startup",
        help="where the minimal environments are made, if missing, and reused",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time the dependencies aioflags' first start imports, alone, "
        "in a third process beside each pair (and count them with --instructions)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions with valgrind's callgrind (slow)",
    )
    parser.add_argument(
        "--where",
        action="store_true",
        help="also show where each SDK's instructions go, per package (callgrind)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help="instead of measuring: cProfile one aioflags cold start (every "
        "thread, each by its CPU time) in the first environment and scheme, "
        "write the statistics to PATH and print the largest",
    )
    parser.add_argument("--smoke", action="store_true", help="one small pair (tests)")
    parser.add_argument("--child", nargs=2, metavar=("WHICH", "URL"))
    parser.add_argument("--ca")
    parser.add_argument("--serve", type=int, metavar="N")
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    if args.serve:
        serve_main(args.serve, args.tls)
        return
    if args.child:
        child(args.child[0], args.child[1], args.ca, args.data_system)
        return
    n_flags, pairs = (20, 1) if args.smoke else (args.flags, args.pairs)
    n_runs = 1 if args.smoke else args.runs
    floor = args.floor or args.smoke
    summary = []
    for env in args.envs.split(","):
        if env == "test":
            pythons = {"aioflags": args.python, "ld": args.python}
        elif env in ("minimal", "fastapi"):
            pythons = minimal_pythons(args.venvs, env)
        else:
            parser.error(f"--envs: unknown environment {env!r}")
        if args.profile:
            scheme = args.schemes.split(",")[0]
            print(profile(pythons, n_flags, scheme, args.data_system, args.profile))
            return
        for scheme in args.schemes.split(","):
            all_runs = []
            for i in range(n_runs):
                load = os.getloadavg()[0]
                runs = measure(pythons, n_flags, pairs, scheme, args.data_system, floor)
                title = (
                    f"\nstart-up over {scheme}, {env} environment, {n_flags} flags, "
                    f"aioflags' {args.data_system} data system, run {i + 1} of "
                    f"{n_runs}: {pairs} alternating {'triples' if floor else 'pairs'} "
                    f"of fresh processes (load average {load:.1f} -> "
                    f"{os.getloadavg()[0]:.1f})"
                )
                print(report(runs, title), flush=True)
                all_runs.append(runs)
            line = (
                f"{env:<8} {scheme:<6} worst of {n_runs} run(s), aioflags / "
                f"AsyncLDClient: cold start, wall: {worst(all_runs, 'cold_ms')}; "
                f"cold start, CPU: {worst(all_runs, 'cold_cpu_ms')}; whole, wall: "
                f"{worst(all_runs, 'total_ms')}; whole, CPU: "
                f"{worst(all_runs, 'total_cpu_ms')}"
            )
            if floor:
                line += (
                    f"; {FLOOR} / AsyncLDClient's cold start, CPU: "
                    f"{worst(all_runs, 'cold_cpu_ms', FLOOR)}"
                )
            print(line, flush=True)
            summary.append(line)
            if args.instructions and not args.smoke:
                text, whole = instructions(
                    pythons, n_flags, scheme, args.data_system, floor
                )
                print(text, flush=True)
                summary.append(
                    f"{env:<8} {scheme:<6} instructions, cold start: {whole:.2f}x"
                )
            if args.where and not args.smoke:
                print(where(pythons, n_flags, scheme, args.data_system), flush=True)
    print("\nsummary\n  " + "\n  ".join(summary), flush=True)


if __name__ == "__main__":
    main()
