"""Summary counts stay exact when many threads evaluate (docs/sync.md: any number)."""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
from typing import TYPE_CHECKING

import pytest
from anyio.from_thread import start_blocking_portal

from aioflags import Config, Context, DataSystem
from aioflags._analytics._recorder import Recorder
from aioflags._datasystem._store import snapshot_from_data
from aioflags.blocking import Client
from aioflags.testing import FlagData, FlagServer
from tests.analytics import flag, recorder_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from aioflags._evaluation._snapshot import FlagSnapshot

THREADS = 8
ROUNDS = 10_000  # per thread; each round evaluates four ways
BOUND = 60.0  # a safety net for waits on threads, never a synchronisation
DEADLOCKED_AFTER = 5.0  # two threads still waiting then are waiting for ever


def versions(rec: Recorder) -> Iterator[FlagSnapshot]:
    """Snapshots of ever newer versions of the same flags, recording into ``rec``."""
    version = 0
    while True:
        version += 1
        yield snapshot_from_data(
            {
                "plain": {**flag(), "key": "plain", "version": version},
                "tracked": {**flag(trackEvents=True), "key": "tracked", "version": 1},
                "child": {
                    **flag(prerequisites=[{"key": "plain", "variation": 0}]),
                    "key": "child",
                    "version": version,
                },
            }
        ).recording(rec)


@pytest.mark.slow
@pytest.mark.no_cover
def test_summary_counts_are_exact_with_threads_flag_changes_and_flushes() -> None:
    """N threads x M evaluations while flags change and flushes happen: all counted.

    Each round evaluates ``plain`` (the snapshot's inlined hot path),
    ``child`` (its prerequisite ``plain`` is counted too), ``tracked`` (the
    recorder's own path, with a full event) and a flag that does not exist.
    A short switch interval makes the threads interleave often enough that
    unguarded counters lose counts in every run.
    """
    rec = recorder_for(Config("k", events_capacity=10**9))
    snapshots = versions(rec)
    current = [next(snapshots)]
    counted: dict[str, int] = {}
    ready = threading.Barrier(THREADS + 1)

    def evaluate(n: int) -> None:
        context = Context.create(f"user-{n}")
        ready.wait(BOUND)
        for _ in range(ROUNDS):
            snapshot = current[0]
            snapshot.variation("plain", context, False)
            snapshot.bool_variation("child", context, False)
            snapshot.variation_detail("tracked", context, False)
            snapshot.variation("missing", context, False)

    def take() -> None:
        batch = rec.take()
        if batch is None:
            return
        for key, counter in batch.counters:
            counted[key] = counted.get(key, 0) + counter.none + sum(counter.counts)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            done = [pool.submit(evaluate, n) for n in range(THREADS)]
            ready.wait(BOUND)
            flushes = 0
            # Flush, and change the flags, for as long as the threads evaluate.
            while not all(future.done() for future in done):
                take()
                flushes += 1
                if flushes % 8 == 0:
                    current[0] = next(snapshots)
            for future in done:
                future.result(BOUND)  # re-raises what failed in a thread
    finally:
        sys.setswitchinterval(interval)
    take()

    assert flushes > 10  # the flushes did race with the evaluations
    total = THREADS * ROUNDS
    assert counted == {
        "plain": 2 * total,  # evaluated, and as the prerequisite of child
        "child": total,
        "tracked": total,
        "missing": total,
    }


def test_a_blocking_client_sends_a_count_of_every_evaluation() -> None:
    """The same through ``blocking.Client``: threads evaluate while the flag
    changes on the flag service and flushes post summaries to it, ten times."""
    threads, changes = 6, 10
    data = FlagData()
    data.update(data.flag("f").variations("a", "b").fallthrough("a"))
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(FlagServer()) as server,
    ):
        portal.call(data.attach, server)
        config = Config(
            "sdk-key",
            base_uri=server.url,
            stream_uri=server.url,
            events_uri=server.url,
            data_system=DataSystem.streaming(),
            diagnostic_opt_out=True,
            flush_interval=3600.0,  # flushes are this test's
        )
        ready, stop = threading.Barrier(threads + 1), threading.Event()

        def evaluate(n: int) -> int:
            context = Context.create(f"user-{n}")
            evaluated = 0
            ready.wait(BOUND)
            while not stop.is_set():
                client.variation("f", context, "default")
                client.string_variation_detail("f", context, "default")
                evaluated += 2
            return evaluated

        with Client(config) as client:
            interval = sys.getswitchinterval()
            sys.setswitchinterval(1e-6)
            try:
                with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                    done = [pool.submit(evaluate, n) for n in range(threads)]
                    ready.wait(BOUND)
                    for change in range(changes):
                        client.flush(timeout=BOUND)
                        portal.call(data.set_value, "f", f"v{change}")
                    stop.set()
                    evaluated = sum(future.result(BOUND) for future in done)
            finally:
                sys.setswitchinterval(interval)
            # The rest, flushed here with a generous bound: the close's own
            # flush is bounded by CLOSE_BOUND, too short on a loaded machine.
            client.flush(timeout=BOUND)
        summaries = server.events_of("summary")
    counted = sum(
        row["count"]
        for summary in summaries
        for row in summary["features"]["f"]["counters"]
    )
    assert counted == evaluated


def test_a_log_handler_that_evaluates_does_not_deadlock_with_a_full_buffer() -> None:
    """Thread B, inside an application's log handler (holding the handler's
    lock), evaluates a flag while thread A evaluates into a full buffer.

    The recorder logs nothing under its lock (the flush warns, on the loop):
    were A to log "buffer full" holding the recorder's lock, it would wait for
    the handler's lock, which B holds while it waits for the recorder's.
    Deterministic: B evaluates once A has either started to log (a filter
    sees A's record before the handler's lock is taken) or finished.
    """
    rec = recorder_for(Config("k", events_capacity=1))
    snapshot = next(versions(rec))
    rec.identify(Context.create("u"))  # the buffer is full (capacity 1)
    b_in_handler, a_logs_or_is_done = threading.Event(), threading.Event()
    b_saw: list[object] = []

    class FlagGated(logging.Handler):
        def filter(self, record: logging.LogRecord) -> bool:
            if threading.current_thread().name == "A":
                a_logs_or_is_done.set()  # A holds the recorder's lock, if any
            return True

        def emit(self, record: logging.LogRecord) -> None:
            if threading.current_thread().name == "B":
                b_in_handler.set()
                a_logs_or_is_done.wait(BOUND)
                b_saw.append(snapshot.variation("plain", Context.create("x"), 0))

    handler = FlagGated()
    app, events = logging.getLogger("app.gated"), logging.getLogger("aioflags.events")
    app.addHandler(handler)
    events.addHandler(handler)
    app.propagate = False

    def a() -> None:
        b_in_handler.wait(BOUND)
        snapshot.variation("tracked", Context.create("u"), False)  # dropped
        a_logs_or_is_done.set()

    # Daemon threads (a pool's are joined at exit): if they deadlock, the
    # test fails rather than hangs.
    ta = threading.Thread(target=a, name="A", daemon=True)  # noqa: TID251
    tb = threading.Thread(  # noqa: TID251
        target=lambda: app.warning("app line"), name="B", daemon=True
    )
    try:
        ta.start()
        tb.start()
        ta.join(DEADLOCKED_AFTER)
        tb.join(DEADLOCKED_AFTER)
        deadlocked = ta.is_alive() and tb.is_alive()
    finally:
        app.removeHandler(handler)
        events.removeHandler(handler)
        app.propagate = True
    assert not deadlocked
    assert b_saw == [True]
    batch = rec.take()
    assert batch is not None
    assert batch.dropped == 2  # A's feature event, B's index event: counted
