"""The FastAPI, Starlette and aiohttp examples, run against a FlagServer."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from aioflags.testing import FlagServer
from tests.modules import ROOT, load
from tests.processes import HTTP_GUARD

FLAGS = json.loads((ROOT / "examples" / "flags.json").read_text())
fastapi_app = load("examples/fastapi_app.py", "fastapi_example")
starlette_app = load("examples/starlette_app.py", "starlette_example")
aiohttp_app = load("examples/aiohttp_app.py", "aiohttp_example")


async def checkout_answers(get: Any) -> None:
    """What every integration must answer, READY, with live changes."""
    assert await get("/healthz") == {"flags": "READY"}
    assert await get("/checkout?user=alice&plan=beta") == {"new_checkout": True}
    assert await get("/checkout?user=bob") == {"new_checkout": False}


@pytest.mark.parametrize(
    "module", [fastapi_app, starlette_app], ids=["fastapi", "starlette"]
)
@pytest.mark.asyncio
async def test_asgi_apps_own_the_client_through_the_lifespan(module: Any) -> None:
    async with FlagServer(FLAGS["flags"]) as server:
        app = module.create_app(server.config())
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                timeout=HTTP_GUARD,
                transport=httpx.ASGITransport(app=app),
                base_url="http://app",
            ) as http,
        ):
            with anyio.fail_after(30):
                await server.wait_for_stream()  # the client's stream is open

            async def get(path: str) -> Any:
                reply = await http.get(path)
                assert reply.status_code == 200, reply.text
                return reply.json()

            await checkout_answers(get)
            if module is fastapi_app:
                page = await get("/page?user=carol")
                assert page["banner"] in ("blue", "green")
                assert page["new_checkout"] is False
        # Shutdown closed the client and its stream.
        await server.wait_for_streams_closed()


@pytest.mark.asyncio
async def test_aiohttp_app_owns_the_client_through_cleanup_ctx() -> None:
    async with FlagServer(FLAGS["flags"]) as server:
        app = aiohttp_app.create_app(server.config())
        async with TestClient(TestServer(app)) as http:

            async def get(path: str) -> Any:
                reply = await http.get(path)
                assert reply.status == 200, await reply.text()
                return await reply.json()

            await checkout_answers(get)
        await server.wait_for_streams_closed()


def test_examples_default_to_the_flag_file() -> None:
    config = fastapi_app.default_config()
    assert config.sdk_key is None and config.data_system is not None
