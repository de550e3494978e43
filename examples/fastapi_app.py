"""FastAPI with aioflags: the lifespan owns the client, handlers get it by dependency.

Run it (serves examples/flags.json, reloaded on edit; set AIOFLAGS_SDK_KEY to
use LaunchDarkly instead)::

    pip install fastapi uvicorn && python examples/fastapi_app.py
    curl 'http://127.0.0.1:8000/checkout?user=alice&plan=beta'
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request

import aioflags


def flags(request: Request) -> aioflags.Client:
    """The app's client (started by the lifespan)."""
    client: aioflags.Client = request.app.state.flags
    return client


def flag_snapshot(request: Request) -> aioflags.FlagSnapshot:
    """One immutable view of the flags for the whole request (sync evaluation)."""
    return flags(request).snapshot()


Flags = Annotated[aioflags.Client, Depends(flags)]
Snapshot = Annotated[aioflags.FlagSnapshot, Depends(flag_snapshot)]


def create_app(config: aioflags.Config) -> FastAPI:
    """The app; the client is created here (no I/O: safe before a fork)."""
    client = aioflags.Client(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client:  # started in each worker, closed on shutdown
            app.state.flags = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/checkout")
    async def checkout(
        user: str, flags: Flags, plan: str = "free"
    ) -> dict[str, object]:
        context = aioflags.Context.create(user, attributes={"plan": plan})
        return {
            "new_checkout": await flags.bool_variation("new-checkout", context, False)
        }

    @app.get("/page")
    def page(user: str, flags: Snapshot) -> dict[str, object]:
        # Every flag read in this request sees the same version of the data.
        context = aioflags.Context.create(user)
        return {
            "banner": flags.string_variation("banner-colour", context, "grey"),
            "new_checkout": flags.bool_variation("new-checkout", context, False),
        }

    @app.get("/healthz")
    def health(flags: Flags) -> dict[str, str]:
        return {"flags": flags.status.name}

    return app


def default_config() -> aioflags.Config:
    """LaunchDarkly with AIOFLAGS_SDK_KEY set; otherwise examples/flags.json."""
    key = os.environ.get("AIOFLAGS_SDK_KEY")
    if key:
        return aioflags.Config(key)
    path = Path(__file__).with_name("flags.json")
    return aioflags.Config(data_system=aioflags.DataSystem.file(path, reload=True))


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(default_config()), host="127.0.0.1", port=8000)
