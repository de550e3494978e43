"""The SDK's worker-thread work runs on its own limiter (aioflags/_core/_threads.py)."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from aioflags import Client, Context, ProviderStatus
from aioflags._core._threads import SDK_THREADS, sdk_limiter
from aioflags.testing import FlagServer
from tests.flags import BOOL_FLAG, match_flag

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@asynccontextmanager
async def app_threads_busy() -> AsyncIterator[anyio.CapacityLimiter]:
    """Every thread of anyio's default limiter blocked in the app's sync work.

    As a Starlette/FastAPI app's sync endpoints would hold them: each thread
    has started (it said so) and waits on an event set on the way out.
    """
    limiter = anyio.to_thread.current_default_thread_limiter()
    total = int(limiter.total_tokens)
    release = threading.Event()
    entered: list[int] = []
    all_entered = anyio.Event()

    def arrived() -> None:  # on the loop
        entered.append(threading.get_ident())
        if len(entered) == total:
            all_entered.set()

    def work() -> None:
        anyio.from_thread.run_sync(arrived)
        release.wait()

    async with anyio.create_task_group() as tg:
        try:
            for _ in range(total):
                tg.start_soon(anyio.to_thread.run_sync, work)
            await all_entered.wait()
            assert limiter.available_tokens == 0
            yield limiter
        finally:
            release.set()


@pytest.mark.asyncio
async def test_flag_changes_apply_while_the_apps_threads_are_all_busy() -> None:
    """Start-up and a streamed change (with a pattern to compile) need no app thread."""
    pattern = r"^busy-pool-\d+$"
    clause = {"attribute": "email", "op": "matches", "values": [pattern]}
    async with FlagServer({"f": BOOL_FLAG}) as server, app_threads_busy() as pool:
        # A hang guard only: on anyio's shared limiter this never finished.
        with anyio.fail_after(30):
            async with Client(server.config("k", send_events=False)) as client:
                assert client.status is ProviderStatus.READY
                await server.wait_for_stream()
                changed = anyio.Event()
                client.add_flag_change_handler(lambda keys: changed.set())
                server.set_flag("f", {**match_flag(clause), "version": 99})
                await changed.wait()
                ctx = Context.create("u", attributes={"email": "busy-pool-7"})
                assert await client.variation("f", ctx, None) is True
        assert pool.available_tokens == 0  # the app's threads were never touched


@pytest.mark.asyncio
async def test_the_sdk_limiter_is_its_own_one_per_event_loop() -> None:
    limiter = sdk_limiter()
    assert limiter is sdk_limiter()
    assert limiter is not anyio.to_thread.current_default_thread_limiter()
    assert limiter.total_tokens == SDK_THREADS


def test_each_event_loop_gets_its_own_sdk_limiter() -> None:
    async def limiter() -> anyio.CapacityLimiter:
        return sdk_limiter()

    assert anyio.run(limiter) is not anyio.run(limiter, backend="trio")
