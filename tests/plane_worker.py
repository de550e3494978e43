"""A worker process of the flag plane's process tests (tests/test_plane_processes.py).

    python -m tests.plane_worker serve PLANE URL
    python -m tests.plane_worker fork PLANE URL
    python -m tests.plane_worker crash PLANE URL
    python -m tests.plane_worker flagd PLANE TARGET [SELECTOR]

``serve``: a client on the plane, evaluating flag ``f`` over and over as
an app's handlers would; it prints a line when its role or the value
changes (``role leader``, ``value on``), and ``default`` at once if an
evaluation ever serves the default. SIGTERM closes the client and exits 0.

``flagd``: the same, on a flagd sync server's data (with a selector, if
given) instead of the flag service's.

``crash``: the same, on a data system that crashes after its first data.
SIGUSR1 blocks its event loop for 10 s (a handler that never awaits, a
debugger at a breakpoint), as SIGSTOP stops it whole.

``fork``: a blocking client started on the plane (it leads: ``parent
leader``), then a fork, as gunicorn's ``--preload`` forks workers from a
master that started one. The child starts a client of its own (``child
follower``); then the parent dies abruptly, and the child, which closed
its copy of the parent's lock at the fork, takes the lead (``child
leader``).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

import anyio

import aioflags
import aioflags.blocking
import aioflags.sources
from aioflags import Context, DataSystem

USER = Context.create("user-1")
#: How long a worker's client waits for READY before it serves (defaults,
#: which the tests count as a failure). Not a timing: a safety net as long
#: as a loaded machine needs (issue 97: 10 s was beaten at load 13-15).
READY_TIMEOUT = 120


def _crashing() -> aioflags.sources.SynchronizerFactory:
    """A synchronizer that gives its data, then raises (a bug in the data system)."""
    polling = aioflags.sources.polling_synchronizer()

    async def crashing(
        context: aioflags.sources.SourceContext,
    ) -> AsyncGenerator[aioflags.sources.Update, None]:
        async with aclosing(polling(context)) as updates:
            async for update in updates:
                yield update
                raise RuntimeError("a bug in the data system")

    return crashing


def _config(
    plane: str, url: str, *, crash: bool = False, selector: str | None = None
) -> aioflags.Config:
    if selector is not None:  # (url: a flagd sync server's target)
        return aioflags.Config(
            data_system=DataSystem.flagd(url, selector=selector or None, plane=plane),
            send_events=False,
            ready_timeout=READY_TIMEOUT,
        )
    system = (
        DataSystem.custom(synchronizers=[_crashing()], plane=plane)
        if crash
        else DataSystem.streaming(plane=plane)
    )
    return aioflags.Config(
        "sdk-key",
        base_uri=url,
        stream_uri=url,
        events_uri=url,
        data_system=system,
        send_events=False,
        ready_timeout=READY_TIMEOUT,
        initial_retry_delay=0.05,
    )


def say(line: str) -> None:
    print(line, flush=True)


def _block(*_: object) -> None:
    """Block the event loop (this handler runs on the loop's thread, between its steps)."""
    time.sleep(10)  # noqa: TID251 - the point: a loop that does not turn


async def serve(
    plane: str, url: str, *, crash: bool = False, selector: str | None = None
) -> None:
    signal.signal(signal.SIGUSR1, _block)
    config = _config(plane, url, crash=crash, selector=selector)
    async with aioflags.Client(config) as client:
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async with anyio.create_task_group() as group:

                async def closing() -> None:
                    async for _ in signals:
                        group.cancel_scope.cancel()
                        return

                group.start_soon(closing)
                role: str | None = "?"
                value: object = "?"
                while True:
                    now = await client.variation("f", USER, "default")
                    if now == "default":
                        say("default")
                    if client.plane_role != role:
                        role = client.plane_role
                        say(f"role {role}")
                    if now != value:
                        value = now
                        say(f"value {value}")
                    await anyio.sleep(0.002)  # (an app's pace, not a test's wait)


class _Leads(logging.Handler):
    """Sets ``led`` when the client's INFO line says this process leads."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.led = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "leads the flag plane" in record.getMessage():
            self.led.set()


def fork(plane: str, url: str) -> None:
    parent = aioflags.blocking.Client(_config(plane, url))
    parent.start()
    say(f"parent {parent.async_client.plane_role}")
    started, tell = os.pipe()
    if os.fork() != 0:  # the parent: once the child runs, it dies abruptly
        os.close(tell)
        os.read(started, 1)
        os._exit(0)  # (a crash: nothing closed, the OS frees what it held)
    os.close(started)
    leads = _Leads()
    logger = logging.getLogger("aioflags.datasource")
    logger.addHandler(leads)
    logger.setLevel(logging.INFO)
    child = aioflags.blocking.Client(_config(plane, url))
    child.start()
    say(f"child {child.async_client.plane_role}")
    os.write(tell, b"!")
    # Its parent's lock is freed with the parent (this process closed its
    # copy at the fork): it takes the lead, and says so.
    leads.led.wait(READY_TIMEOUT)  # (a safety net: the line says if it led)
    say(f"child {child.async_client.plane_role}")
    child.close()


if __name__ == "__main__":
    mode, plane, url = sys.argv[1:4]
    if mode in ("serve", "crash"):
        anyio.run(functools.partial(serve, plane, url, crash=mode == "crash"))
    elif mode == "flagd":
        selector = sys.argv[4] if len(sys.argv) > 4 else ""
        anyio.run(functools.partial(serve, plane, url, selector=selector))
    else:
        fork(plane, url)
