"""aiohttp with aioflags: a cleanup context owns the client for the app's life.

Run it (serves examples/flags.json; set AIOFLAGS_SDK_KEY to use LaunchDarkly)::

    pip install aiohttp && python examples/aiohttp_app.py
    curl 'http://127.0.0.1:8000/checkout?user=alice&plan=beta'
"""

import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import aioflags

FLAGS = web.AppKey("flags", aioflags.Client)


async def checkout(request: web.Request) -> web.Response:
    flags = request.app[FLAGS]
    context = aioflags.Context.create(
        request.query["user"], attributes={"plan": request.query.get("plan", "free")}
    )
    return web.json_response(
        {"new_checkout": await flags.bool_variation("new-checkout", context, False)}
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"flags": request.app[FLAGS].status.name})


def create_app(config: aioflags.Config) -> web.Application:
    """The app; the client is created here (no I/O: safe before a fork)."""
    client = aioflags.Client(config)

    async def flags_ctx(app: web.Application) -> AsyncIterator[None]:
        async with client:  # started with the app, closed at cleanup
            app[FLAGS] = client
            yield

    app = web.Application()
    app.cleanup_ctx.append(flags_ctx)
    app.router.add_get("/checkout", checkout)
    app.router.add_get("/healthz", health)
    return app


if __name__ == "__main__":
    key = os.environ.get("AIOFLAGS_SDK_KEY")
    flags_file = Path(__file__).with_name("flags.json")
    config = (
        aioflags.Config(key)
        if key
        else aioflags.Config(
            data_system=aioflags.DataSystem.file(flags_file, reload=True)
        )
    )
    web.run_app(create_app(config), host="127.0.0.1", port=8000)
