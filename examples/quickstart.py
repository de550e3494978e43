"""aioflags quickstart: a live flag service, a streaming client, and the FDv1 fallback.

Runs on one machine with nothing else installed: it starts aioflags' own
loopback flag server with examples/flags.json, connects a client to it, and
tells what happens, step by step.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import anyio

import aioflags
from aioflags.testing import FlagServer

FLAGS = json.loads((Path(__file__).parent / "flags.json").read_text())
PEOPLE = [
    aioflags.Context.create("alice", attributes={"plan": "beta"}),
    aioflags.Context.create("bob", attributes={"plan": "free"}),
    aioflags.Context.create("carol"),
]


def say(text: str) -> None:
    print(text, flush=True)


def on_event(details: aioflags.EventDetails) -> None:
    changed = f" {sorted(details.flags_changed)}" if details.flags_changed else ""
    say(
        f"    [event] {details.event.name} -> status {details.status.name}{changed}: {details.message}"
    )


async def show(client: aioflags.Client) -> None:
    for person in PEOPLE:
        checkout = await client.variation_detail("new-checkout", person, False)
        colour = await client.string_variation("banner-colour", person, "grey")
        say(
            f"    {person.key:<6} new-checkout={checkout.value!s:<5} ({checkout.reason['kind']}), banner={colour}"
        )


async def main() -> None:
    # aioflags logs through the "aioflags" logger; show its warnings in the story.
    logging.basicConfig(
        stream=sys.stdout, level=logging.WARNING, format="    [log] %(message)s"
    )
    say("1. Starting a flag service on 127.0.0.1 with examples/flags.json")
    async with FlagServer(FLAGS["flags"], FLAGS["segments"]) as server:
        say(f"    serving at {server.url}")
        config = aioflags.Config(
            "sdk-quickstart",
            base_uri=server.url,
            stream_uri=server.url,
            events_uri=server.url,  # analytics events go to the local server too
            poll_interval=0.5,  # FDv1 polling after the fallback, quick for the demo
        )
        client = aioflags.Client(config)
        for event in aioflags.ProviderEvent:
            client.add_handler(event, on_event)

        say("2. Connecting: FDv2 polling initializer, then the FDv2 stream")
        async with client:
            await server.wait_for_stream()
            say(f"    status: {client.status.name}")
            await show(client)

            say("3. Turning the checkout on for everyone, live")
            changed = anyio.Event()
            client.add_handler(
                aioflags.ProviderEvent.CONFIGURATION_CHANGED, lambda _: changed.set()
            )
            server.set_flag(
                "new-checkout",
                {**FLAGS["flags"]["new-checkout"], "fallthrough": {"variation": 0}},
            )
            await changed.wait()
            await show(client)

            say(
                "4. The service now answers with the FDv1 fallback directive (X-LD-FD-Fallback: true)"
            )
            server.fail("/sdk/stream", headers={"X-LD-FD-Fallback": "true"})
            server.disconnect_streams()
            await server.wait_for_requests("/sdk/latest-all")
            await server.wait_for_streams_closed()
            status = client.data_source_status
            assert status is not None
            say(
                f"    FDv1 fallback engaged: {status.fdv1_fallback}; status: {client.status.name}; "
                f"stream connections open: {server.open_streams()}"
            )

            say("5. Changing the banner; it arrives through FDv1 polling")
            changed = anyio.Event()
            client.add_handler(
                aioflags.ProviderEvent.CONFIGURATION_CHANGED, lambda _: changed.set()
            )
            server.set_flag(
                "banner-colour", {**FLAGS["flags"]["banner-colour"], "on": False}
            )
            await changed.wait()
            await show(client)
        say(
            f"6. Closed: status {client.status.name}, stream connections open: {server.open_streams()}"
        )


if __name__ == "__main__":
    anyio.run(main)
