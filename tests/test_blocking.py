"""aioflags.blocking.Client: the sync face, against a FlagServer on its own portal."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

import aioflags
import aioflags.blocking
from aioflags.blocking import Client
from aioflags.testing import FlagData, FlagServer, clause

USER = aioflags.Context.create("u1", attributes={"email": "u1@example.com"})
THREAD = "aioflags-client"
BOUND = 30.0  # a safety net for waits on other threads, never a synchronisation


class Served:
    """A FlagServer running on a portal of its own, driven from sync tests."""

    def __init__(self, portal: BlockingPortal, server: FlagServer, data: FlagData):
        self.portal = portal
        self.server = server
        self.data = data

    def config(self, **options: Any) -> aioflags.Config:
        options.setdefault("data_system", aioflags.DataSystem.streaming())
        return aioflags.Config(
            "sdk-key",
            base_uri=self.server.url,
            stream_uri=self.server.url,
            **options,
            send_events=False,
        )

    def set_value(self, key: str, value: str) -> None:
        self.portal.call(self.data.set_value, key, value)


def flag_data() -> FlagData:
    data = FlagData()
    data.update(
        data.flag("checkout").rule(
            clause("email", "endsWith", "@example.com"), serve=True
        ),
        data.flag("static").value_for_all("same"),
        data.flag("num").variations(3, 2.5).fallthrough(3),
        data.flag("obj").variations({"a": 1}, "text").fallthrough({"a": 1}),
    )
    return data


@pytest.fixture
def served() -> Iterator[Served]:
    data = flag_data()
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(FlagServer()) as server,
    ):
        portal.call(data.attach, server)
        yield Served(portal, server, data)


def status_of(client: Client) -> aioflags.ProviderStatus:
    """The status, read afresh (mypy narrows ``client.status`` after a check)."""
    return client.status


def new_threads(before: set[Any]) -> list[str]:
    return [t.name for t in set(threading.enumerate()) - before]


def test_start_evaluate_close_twice_and_no_thread_is_left(served: Served) -> None:
    before = set(threading.enumerate())
    client = Client(served.config())
    assert new_threads(before) == []  # construction starts nothing
    with client as entered:
        assert entered is client
        assert client.status is aioflags.ProviderStatus.READY
        assert new_threads(before).count(THREAD) == 1
        assert client.wait_ready(BOUND) is aioflags.ProviderStatus.READY
        assert client.variation("checkout", USER, False) is True
        detail = client.variation_detail("checkout", USER, False)
        assert (detail.value, detail.variation_index, detail.reason["kind"]) == (
            True,
            0,
            "RULE_MATCH",
        )
        assert client.bool_variation("checkout", USER, False) is True
        assert client.int_variation("num", USER, 0) == 3
        assert client.float_variation("num", USER, 0.0) == 3.0
        assert client.string_variation("static", USER, "") == "same"
        assert client.json_variation("obj", USER, None) == {"a": 1}
        assert client.bool_variation_detail("checkout", USER, False).value is True
        assert client.int_variation_detail("num", USER, 0).variation_index == 0
        assert client.float_variation_detail("num", USER, 0.0).value == 3.0
        assert client.string_variation_detail("static", USER, "").value == "same"
        assert client.json_variation_detail("obj", USER, None).value == {"a": 1}
        wrong = client.int_variation_detail("static", USER, 7)
        assert (wrong.value, wrong.reason.get("errorKind")) == (7, "WRONG_TYPE")
        state = client.all_flags_state(USER, with_reasons=True)
        assert state.valid and state.to_dict()["static"] == "same"
        assert client.snapshot().string_variation("static", USER, "") == "same"
        assert client.data_source_status is not None
        assert client.secure_mode_hash(USER) == aioflags.Client(
            served.config()
        ).secure_mode_hash(USER)
        assert "running" in repr(client) and "READY" in repr(client)
    assert status_of(client) is aioflags.ProviderStatus.NOT_READY
    closed = client.bool_variation_detail("checkout", USER, False)
    assert closed.reason == {"kind": "ERROR", "errorKind": "CLIENT_NOT_READY"}
    client.close()  # idempotent
    client.close()
    assert "stopped" in repr(client)
    assert new_threads(before) == []
    served.portal.call(streams_closed, served.server)  # the server saw them close


async def streams_closed(server: FlagServer) -> None:
    with anyio.fail_after(30):
        await server.wait_for_streams_closed()


def test_a_change_is_seen_by_handlers_on_the_client_thread(served: Served) -> None:
    with Client(served.config()) as client:
        calls: queue.Queue[tuple[str, object, str]] = queue.Queue()

        def on_ready(details: aioflags.EventDetails) -> None:
            calls.put(("ready", details.status, threading.current_thread().name))

        def on_change(keys: frozenset[str]) -> None:
            value = client.string_variation("static", USER, "")
            calls.put(("changed", (keys, value), threading.current_thread().name))

        def on_value(change: aioflags.FlagValueChange) -> None:
            values = (change.old_value, change.new_value)
            calls.put(("value", values, threading.current_thread().name))

        client.add_handler(aioflags.ProviderEvent.READY, on_ready)  # replayed once
        assert calls.get(timeout=BOUND) == (
            "ready",
            aioflags.ProviderStatus.READY,
            THREAD,
        )
        remove_change = client.add_flag_change_handler(on_change)
        remove_value = client.add_flag_value_change_handler("static", USER, on_value)

        served.set_value("static", "changed")
        seen = {calls.get(timeout=BOUND), calls.get(timeout=BOUND)}
        assert seen == {
            ("changed", (frozenset({"static"}), "changed"), THREAD),
            ("value", ("same", "changed"), THREAD),
        }
        assert client.string_variation("static", USER, "") == "changed"

        remove_change()
        remove_value()
        client.remove_handler(aioflags.ProviderEvent.READY, on_ready)
        client.add_handler(aioflags.ProviderEvent.CONFIGURATION_CHANGED, on_ready)
        served.set_value("static", "again")
        assert calls.get(timeout=BOUND)[1] is aioflags.ProviderStatus.READY
        assert calls.empty()  # the removed handlers saw nothing


def test_handlers_may_add_handlers_but_not_wait_for_the_client(
    served: Served,
) -> None:
    with Client(served.config()) as client:
        outcomes: queue.Queue[object] = queue.Queue()

        def nested(details: aioflags.EventDetails) -> None:
            outcomes.put(("nested", details.status))

        def on_ready(details: aioflags.EventDetails) -> None:
            for misuse in (client.close, lambda: client.wait_ready(1), client.start):
                with pytest.raises(RuntimeError) as raised:
                    misuse()
                outcomes.put(str(raised.value))
            client.add_handler(aioflags.ProviderEvent.READY, nested)

        client.add_handler(aioflags.ProviderEvent.READY, on_ready)
        for what in ("close()", "wait_ready()", "start()"):
            message = outcomes.get(timeout=BOUND)
            assert isinstance(message, str)
            assert message.startswith(
                f"{what} was called on the aioflags client's own thread"
            )
            assert "call it from another thread" in message
        assert outcomes.get(timeout=BOUND) == ("nested", aioflags.ProviderStatus.READY)
        assert client.status is aioflags.ProviderStatus.READY


def test_evaluations_from_many_threads_while_flags_change(served: Served) -> None:
    with Client(served.config()) as client:
        changed = threading.Event()
        client.add_flag_change_handler(lambda keys: changed.set())
        start = threading.Barrier(9)

        def evaluate() -> set[str]:
            start.wait(BOUND)
            seen = set()
            for _ in range(2000):
                assert client.bool_variation("checkout", USER, False) is True
                seen.add(client.string_variation("static", USER, "default"))
            return seen

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = [pool.submit(evaluate) for _ in range(8)]
            start.wait(BOUND)
            served.set_value("static", "changed")
            assert changed.wait(BOUND)
            seen = set().union(*(r.result() for r in results))
        # Each evaluation saw one whole version of the data, never a default.
        assert seen <= {"same", "changed"}
        assert client.string_variation("static", USER, "") == "changed"


def test_wait_ready_returns_the_status_when_closed_from_another_thread(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.portal.call(lambda: served.server.fail("/sdk/stream", hang=True))
    waiting = threading.Event()
    original = aioflags.Client.wait_ready

    async def wait_ready(self: aioflags.Client, *args: Any) -> Any:
        waiting.set()  # on the client's loop: the wait has begun
        return await original(self, *args)

    monkeypatch.setattr(aioflags.Client, "wait_ready", wait_ready)
    before = set(threading.enumerate())
    client = Client(served.config(ready_timeout=0.1))
    assert client.start() is aioflags.ProviderStatus.ERROR  # not ready in time
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.wait_ready)  # no timeout
        assert waiting.wait(BOUND)
        client.close()
        assert pending.result(BOUND) is aioflags.ProviderStatus.NOT_READY
    assert new_threads(before) == []


def test_restart_after_close(served: Served) -> None:
    client = Client(served.config())
    for _ in range(2):
        assert client.start() is aioflags.ProviderStatus.READY
        assert client.string_variation("static", USER, "") == "same"
        client.close()
        assert client.status is aioflags.ProviderStatus.NOT_READY


def test_a_fatal_client_says_to_create_a_new_one_and_leaves_no_thread(
    served: Served,
) -> None:
    served.portal.call(lambda: served.server.fail("/sdk/stream", status=401))
    before = set(threading.enumerate())
    client = Client(served.config())
    with client:
        assert client.status is aioflags.ProviderStatus.FATAL
        assert client.wait_ready(BOUND) is aioflags.ProviderStatus.FATAL
    assert client.status is aioflags.ProviderStatus.FATAL
    with pytest.raises(aioflags.ClientClosedError, match="create a new one"):
        client.start()
    assert new_threads(before) == []


def test_misuse_says_what_happened_and_what_to_do(served: Served) -> None:
    with pytest.raises(aioflags.ConfigurationError, match=r"takes an aioflags\.Config"):
        Client("sdk-key")  # type: ignore[arg-type]
    client = Client(served.config())
    with pytest.raises(TypeError, match=r"takes an aioflags\.Context"):
        client.secure_mode_hash("u1")  # type: ignore[arg-type]
    with pytest.raises(aioflags.ClientClosedError, match=r"not started: use `with"):
        client.wait_ready(1)
    # Not started: evaluations answer, handlers register for the next start.
    assert client.bool_variation("checkout", USER, False) is False
    got: queue.Queue[aioflags.EventDetails] = queue.Queue()
    client.add_handler(aioflags.ProviderEvent.READY, got.put)
    with client:
        assert got.get(timeout=BOUND).status is aioflags.ProviderStatus.READY
        with pytest.raises(RuntimeError, match=r"already started: close\(\) it"):
            client.start()


def test_migration_variation_and_track_migration_op_in_sync_code(
    served: Served,
) -> None:
    from aioflags.migrations import Operation, Origin, Stage

    stages = [stage.value for stage in Stage]
    flag = {
        "key": "move",
        "version": 3,
        "on": True,
        "variations": stages,
        "fallthrough": {"variation": stages.index("live")},
        "offVariation": 0,
    }
    served.portal.call(served.data.set_flag, "move", flag)
    flag = {**flag, "key": "orders-to-documents"}
    served.portal.call(served.data.set_flag, "orders-to-documents", flag)
    # docs/migrations.md's sync example, its origins on a dict.
    orders = {1: {"id": 1}}

    def docs_read(order_id: int) -> Any:
        return orders[order_id]

    def pg_read(order_id: int) -> Any:
        raise ConnectionError("the old database is down")

    sample: dict[str, Any] = {"pg_read": pg_read, "docs_read": docs_read}
    exec(_sync_migration_sample(), sample)
    config = aioflags.Config(
        "sdk-key",
        base_uri=served.server.url,
        stream_uri=served.server.url,
        events_uri=served.server.url,
        data_system=aioflags.DataSystem.streaming(),
        diagnostic_opt_out=True,
    )
    with Client(config) as client:
        stage, tracker = client.migration_variation("move", USER, Stage.OFF)
        assert stage is Stage.LIVE
        tracker.operation(Operation.READ).invoked(Origin.NEW).invoked(Origin.OLD)
        client.track_migration_op(tracker.consistent(lambda: False))
        client.track_migration_op("not a tracker")  # type: ignore[arg-type]
        missing, _ = client.migration_variation("missing", USER, Stage.SHADOW)
        assert missing is Stage.SHADOW
        assert sample["read_order"](client, USER, 1) == {"id": 1}
        client.flush(timeout=BOUND)
    event, example = served.server.events_of("migration_op")
    assert event["evaluation"]["value"] == "live"
    # The version FlagData published (FlagServer keeps an item's own version).
    assert event["evaluation"]["version"] == served.server.flags["move"]["version"]
    assert event["measurements"][:2] == [
        {"key": "invoked", "values": {"old": True, "new": True}},
        {"key": "consistent", "value": False, "samplingRatio": 1},
    ]
    assert example["evaluation"]["key"] == "orders-to-documents"
    keys = [m["key"] for m in example["measurements"]]
    assert keys == ["invoked", "latency_ms", "error"]  # old failed: no check
    assert example["measurements"][2] == {"key": "error", "values": {"old": True}}


def _sync_migration_sample(defined: str = "def read_order(") -> str:
    from tests.modules import ROOT

    page = (ROOT / "docs" / "migrations.md").read_text()
    (sample,) = [
        block.split("```")[0]
        for block in page.split("```python\n")[1:]
        if defined in block
    ]
    return sample


def events_config(served: Served) -> aioflags.Config:
    """A config whose analytics events go to the served FlagServer."""
    return aioflags.Config(
        "sdk-key",
        base_uri=served.server.url,
        stream_uri=served.server.url,
        events_uri=served.server.url,
        data_system=aioflags.DataSystem.streaming(),
        diagnostic_opt_out=True,
    )


def test_a_sync_migrator_reads_both_origins_at_once_on_worker_threads(
    served: Served,
) -> None:
    """docs/migrations.md's sync migrator: each origin waits for the other.

    Run one after the other, the first would wait on the barrier alone and
    break it (a failed read); only a read that runs both at once succeeds.
    """
    from aioflags.migrations import BlockingMigrator, Origin, Stage

    flag = served.data.flag("orders-to-documents").migration(Stage.SHADOW)
    served.portal.call(served.data.update, flag)
    barrier = threading.Barrier(2, timeout=BOUND)
    threads: set[tuple[int, str]] = set()
    written: list[tuple[str, Any]] = []

    def read(name: str) -> Any:
        def call(order_id: int) -> dict[str, Any]:
            threads.add((threading.get_ident(), threading.current_thread().name))
            barrier.wait()
            return {"id": order_id}

        return call

    def write(name: str) -> Any:
        return lambda order: written.append((name, order))

    sample: dict[str, Any] = {
        "pg_read": read("old"),
        "docs_read": read("new"),
        "pg_write": write("old"),
        "docs_write": write("new"),
    }
    exec(_sync_migration_sample("def orders_migrator("), sample)
    with Client(events_config(served)) as client:
        orders = sample["orders_migrator"](client)
        assert isinstance(orders, BlockingMigrator)
        assert sample["get_order"](orders, USER, 7) == {"id": 7}
        result = orders.write("orders-to-documents", USER, Stage.OFF, {"id": 8})
        client.flush(timeout=BOUND)
    assert result.authoritative.origin is Origin.OLD
    assert written == [("old", {"id": 8}), ("new", {"id": 8})]  # old first
    # A worker thread each: neither this thread nor the client's loop thread.
    assert len(threads) == 2
    assert {name for _, name in threads} == {"AnyIO worker thread"}
    read_event, write_event = served.server.events_of("migration_op")
    assert read_event["operation"] == "read"
    measured = {m["key"]: m for m in read_event["measurements"]}
    assert measured["invoked"]["values"] == {"old": True, "new": True}
    assert measured["consistent"]["value"] is True
    assert "error" not in measured
    assert write_event["operation"] == "write"


def test_a_sync_migrator_needs_a_started_client(served: Served) -> None:
    from aioflags.migrations import MigratorBuilder, Stage

    client = Client(served.config())
    orders = MigratorBuilder(client).read(str, str).write(str, str).build()
    for operation in (orders.read, orders.write):
        with pytest.raises(aioflags.ClientClosedError, match="is not started: use"):
            operation("move", USER, Stage.OFF)
    with client:  # built before start(): it works once started
        assert orders.read("move", USER, Stage.OFF, 5).value == "5"


def test_closing_the_client_during_a_sync_migration_cancels_it(
    served: Served,
) -> None:
    from aioflags.migrations import MigratorBuilder, Stage

    started = threading.Event()

    async def hangs(payload: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    client = Client(served.config())
    client.start()
    orders = MigratorBuilder(client).read(hangs, hangs).write(hangs, hangs).build()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reading = pool.submit(orders.read, "move", USER, Stage.OFF)
        assert started.wait(BOUND)
        client.close()
        with pytest.raises(aioflags.ClientClosedError, match="closed during"):
            reading.result(BOUND)


@pytest.mark.asyncio
async def test_a_sync_migrator_refuses_to_block_a_running_event_loop() -> None:
    from aioflags.migrations import MigratorBuilder, Stage

    client = Client(aioflags.Config(offline=True, ready_timeout=0))
    client.start()
    try:
        orders = MigratorBuilder(client).read(str, str).write(str, str).build()
        with pytest.raises(RuntimeError) as raised:
            orders.read("move", USER, Stage.OFF)
        message = str(raised.value)
        assert message.startswith(
            "migrator.read() was called on a running asyncio event loop's own thread"
        )
        assert "build the migrator over an aioflags.Client" in message
        assert "await asyncio.to_thread(migrator.read, ...)" in message
        # What it says works.
        read = await anyio.to_thread.run_sync(orders.read, "move", USER, Stage.OFF, 1)
        assert read.value == "1"
    finally:
        client.close()


def test_the_blocking_module_is_a_documented_public_module() -> None:
    assert aioflags.blocking.__all__ == ["Client"]
    assert Client.__module__ == "aioflags.blocking"
    if sys.version_info >= (3, 11):  # typing.final marks classes from 3.11 on
        assert Client.__final__  # type: ignore[attr-defined]
    assert aioflags.blocking.__doc__


@pytest.mark.asyncio
async def test_works_beside_a_running_event_loop() -> None:
    """A sync call site inside async code (a sync helper): its own loop, not ours."""
    client = Client(aioflags.Config(offline=True))
    status = await anyio.to_thread.run_sync(client.start)
    assert status is aioflags.ProviderStatus.READY
    assert client.bool_variation("x", USER, True) is True
    await anyio.to_thread.run_sync(client.close)


def client_threads() -> int:
    return sum(t.name == THREAD for t in threading.enumerate())


@pytest.mark.asyncio
async def test_start_on_the_event_loop_thread_refuses_rather_than_block_it() -> None:
    """It would block this loop for ready_timeout: refused, no thread started."""
    client = Client(aioflags.Config(offline=True, ready_timeout=5))
    with pytest.raises(RuntimeError) as raised:
        client.start()
    message = str(raised.value)
    assert "start() was called on a running asyncio event loop's own thread" in message
    assert "ready_timeout=5 s" in message
    assert "await asyncio.to_thread(client.start)" in message
    assert "async with aioflags.Client(config)" in message
    assert client_threads() == 0
    with pytest.raises(RuntimeError, match="own thread"), client:
        pass
    status = await anyio.to_thread.run_sync(client.start)  # what it says: works
    assert status is aioflags.ProviderStatus.READY
    await anyio.to_thread.run_sync(client.close)


@pytest.mark.asyncio
async def test_start_without_waiting_is_allowed_on_the_event_loop_thread() -> None:
    client = Client(aioflags.Config(offline=True, ready_timeout=0))
    client.start()
    try:
        assert client.bool_variation("x", USER, True) is True
    finally:
        client.close()
    assert client_threads() == 0


@pytest.mark.asyncio
async def test_waits_on_the_event_loop_thread_are_refused_unless_they_do_not_wait() -> (
    None
):
    """wait_ready() and flush() would block this loop as start() would: refused."""
    client = Client(aioflags.Config(offline=True, ready_timeout=0))
    client.start()  # does not wait: allowed here
    try:
        for wait, words in (
            (client.wait_ready, "with no bound (timeout=None)"),
            (functools.partial(client.wait_ready, 5), "up to timeout=5 s"),
            (functools.partial(client.flush, timeout=5), "up to timeout=5 s"),
        ):
            with pytest.raises(RuntimeError) as raised:
                wait()
            message = str(raised.value)
            assert "was called on a running asyncio event loop's own thread" in message
            assert f"waiting {words} for the aioflags client" in message
            assert "await asyncio.to_thread(client." in message
        # Without a wait, allowed; on a worker thread, as the message says.
        assert client.wait_ready(0) is aioflags.ProviderStatus.READY
        client.flush(timeout=0)
        status = await anyio.to_thread.run_sync(client.wait_ready, 5)
        assert status is aioflags.ProviderStatus.READY
        await anyio.to_thread.run_sync(functools.partial(client.flush, timeout=5))
    finally:
        client.close()  # never refused: closing must always work
    assert client_threads() == 0


def test_wait_ready_inside_trio_refuses_and_names_trio_s_worker_thread() -> None:
    import trio

    client = Client(aioflags.Config(offline=True, ready_timeout=0))

    async def main() -> str:
        with pytest.raises(RuntimeError) as raised:
            client.wait_ready(5)
        return str(raised.value)

    with client:
        message = trio.run(main)
    assert "wait_ready() was called inside trio.run" in message
    assert "await trio.to_thread.run_sync(client.wait_ready, timeout)" in message


def test_start_inside_trio_refuses_and_names_trio_s_worker_thread() -> None:
    import trio

    client = Client(aioflags.Config(offline=True, ready_timeout=5))

    async def main() -> str:
        with pytest.raises(RuntimeError) as raised:
            client.start()
        return str(raised.value)

    message = trio.run(main)
    assert "start() was called inside trio.run" in message
    assert "await trio.to_thread.run_sync(client.start)" in message
    assert client_threads() == 0


def test_close_from_another_thread_aborts_a_start_that_is_waiting(
    served: Served,
) -> None:
    served.portal.call(lambda: served.server.fail("/sdk/stream", hang=True))
    before = set(threading.enumerate())
    client = Client(served.config(ready_timeout=60.0))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        starting = pool.submit(client.start)
        # The client has connected: start() is now waiting for a first status.
        served.portal.call(served.server.wait_for_requests, "/sdk/stream")
        client.close()  # does not wait out the 60 s ready_timeout
        assert starting.result(BOUND) is aioflags.ProviderStatus.NOT_READY
    assert new_threads(before) == []
    served.portal.call(served.server.wait_for_streams_closed)
    served.portal.call(served.server.clear_faults)
    with client:  # and it starts again
        assert client.status is aioflags.ProviderStatus.READY


FORK_SCRIPT = """
import logging, os, signal, sys, threading, warnings

logging.basicConfig()  # an application that shows warnings (aioflags adds none)

import aioflags
import aioflags.blocking
from aioflags.testing import FlagData

# Python 3.12+ warns about fork with threads running: the case under test.
warnings.filterwarnings("ignore", "This process", DeprecationWarning)
data = FlagData()
data.update(data.flag("f").value_for_all(True))
client = aioflags.blocking.Client(aioflags.Config(data_system=data.data_system()))
user = aioflags.Context.create("u")
client.start()
pid = os.fork()
if pid == 0:  # the child: the client's thread was not forked with it
    signal.alarm(30)  # a safety net: a hung child must not outlive the test
    assert client.status is aioflags.ProviderStatus.NOT_READY
    assert client.bool_variation("f", user, False) is False  # warns once
    client.close()  # nothing to wait for: returns at once
    client.start()  # afresh, in this process
    assert client.bool_variation("f", user, False) is True
    client.close()
    assert "aioflags-client" not in [t.name for t in threading.enumerate()]
    print("child ok", flush=True)
    sys.exit(0)  # a normal exit: finalizers run, and must not hang
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert client.bool_variation("f", user, False) is True  # the parent is unaffected
client.close()
print("parent ok", flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_client_running_at_fork_is_forgotten_in_the_child() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["child ok", "parent ok"]
    assert "until it is started here" in result.stderr  # the child's warning
    assert "start() for an aioflags.blocking.Client" in result.stderr
