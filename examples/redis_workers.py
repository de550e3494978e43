"""Many workers, one Redis: a read-write client keeps Redis current, daemon clients read it.

    python examples/redis_workers.py redis://127.0.0.1:6379/0

Needs ``pip install 'aioflags[redis]'`` and a Redis it may write to (keys under
the prefix ``aioflags-example``). It starts aioflags' loopback flag server,
one *writer* client that streams from it and writes every change to Redis,
and three *worker* clients in daemon mode that read only Redis, as the
workers of a web server would (each in its own process there). Then it flips
a flag on the flag service and shows the change reach every worker through
Redis. See docs/stores.md.
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack

import anyio

import aioflags
from aioflags.stores import RedisStore
from aioflags.testing import FlagData, FlagServer

USER = aioflags.Context.create("alice")


def say(text: str) -> None:
    print(text, flush=True)


async def main(url: str) -> None:
    data = FlagData()
    data.update(data.flag("new-checkout").variations(False, True).fallthrough(False))
    # Workers read Redis again every 0.2 s (the default is 15 s).
    store = RedisStore(url=url, prefix="aioflags-example", cache_ttl=0.2)
    async with FlagServer() as server:
        data.attach(server)
        writer_config = aioflags.Config(
            "sdk-key",
            base_uri=server.url,
            stream_uri=server.url,
            events_uri=server.url,  # analytics events to the local server too
            data_system=aioflags.DataSystem.streaming(store=store),
        )
        async with aioflags.Client(writer_config) as writer, AsyncExitStack() as stack:
            say(f"1. writer: {writer.status.name}, streaming and writing to Redis")
            workers = []
            for _ in range(3):
                # Daemon mode: flags only from Redis. The SDK key is for
                # analytics events (without it none are sent, with a warning).
                worker = aioflags.Client(
                    aioflags.Config(
                        "sdk-key",
                        events_uri=server.url,
                        data_system=aioflags.DataSystem.daemon(store),
                    )
                )
                workers.append(await stack.enter_async_context(worker))
            for n, worker in enumerate(workers):
                value = await worker.bool_variation("new-checkout", USER, False)
                say(f"2. worker {n}: {worker.status.name}, new-checkout={value}")
            say("3. the flag service turns new-checkout on")
            async with AsyncExitStack() as watching:
                streams = [
                    await watching.enter_async_context(
                        w.flag_value_changes("new-checkout", USER, default=False)
                    )
                    for w in workers
                ]
                data.update(data.flag("new-checkout").fallthrough(True))
                with anyio.fail_after(10):
                    for n, changes in enumerate(streams):
                        change = await changes.receive()
                        say(
                            f"4. worker {n}: new-checkout={change.new_value} (via Redis)"
                        )
    say(f"5. store status: {store.status}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    anyio.run(main, sys.argv[1])
