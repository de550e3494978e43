"""Starlette with aioflags: the lifespan owns the client, handlers read app.state.

Run it (serves examples/flags.json; set AIOFLAGS_SDK_KEY to use LaunchDarkly)::

    pip install starlette uvicorn && python examples/starlette_app.py
    curl 'http://127.0.0.1:8000/checkout?user=alice&plan=beta'
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import aioflags


async def checkout(request: Request) -> JSONResponse:
    flags: aioflags.Client = request.app.state.flags
    context = aioflags.Context.create(
        request.query_params["user"],
        attributes={"plan": request.query_params.get("plan", "free")},
    )
    return JSONResponse(
        {"new_checkout": await flags.bool_variation("new-checkout", context, False)}
    )


async def health(request: Request) -> JSONResponse:
    flags: aioflags.Client = request.app.state.flags
    return JSONResponse({"flags": flags.status.name})


def create_app(config: aioflags.Config) -> Starlette:
    """The app; the client is created here (no I/O: safe before a fork)."""
    client = aioflags.Client(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with client:  # started in each worker, closed on shutdown
            app.state.flags = client
            yield

    return Starlette(
        routes=[Route("/checkout", checkout), Route("/healthz", health)],
        lifespan=lifespan,
    )


if __name__ == "__main__":
    import uvicorn

    key = os.environ.get("AIOFLAGS_SDK_KEY")
    flags_file = Path(__file__).with_name("flags.json")
    config = (
        aioflags.Config(key)
        if key
        else aioflags.Config(
            data_system=aioflags.DataSystem.file(flags_file, reload=True)
        )
    )
    uvicorn.run(create_app(config), host="127.0.0.1", port=8000)
