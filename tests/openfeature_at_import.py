"""OpenFeature set up at import, evaluated in async handlers on uvicorn.

    python tests/openfeature_at_import.py FLAG_SERVICE_URL

Run in a subprocess by tests/test_openfeature.py: the provider is built and
registered at module level, where no event loop runs (as in an app module),
then uvicorn serves a Starlette app on a loop of its own and its handlers
evaluate. Prints what the handlers answered, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import uvicorn
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import aioflags
from aioflags.openfeature import AioflagsProvider

URL = sys.argv[1]
USER = EvaluationContext("u1", {"email": "u1@example.com"})
ready = threading.Event()


def on_ready(details: EventDetails) -> None:
    if details.provider_name == "aioflags":  # not the no-op provider's replay
        ready.set()


# The set-up under test: at import, in sync code, no event loop running.
api.add_handler(ProviderEvent.PROVIDER_READY, on_ready)
api.set_provider(
    AioflagsProvider(aioflags.Config("sdk-key", base_uri=URL, stream_uri=URL))
)
flags = api.get_client()


def client_threads() -> int:
    return [t.name for t in threading.enumerate()].count("aioflags-client")


async def checkout(request: Request) -> JSONResponse:
    details = await flags.get_boolean_details_async("checkout", False, USER)
    return JSONResponse(
        {
            "value": details.value,
            "reason": details.reason,
            "error_code": details.error_code,
            "status": flags.get_provider_status().value,
            "handler_thread": threading.current_thread().name,
            "client_threads": client_threads(),
        }
    )


def static(request: Request) -> JSONResponse:  # sync: run on a worker thread
    details = flags.get_string_details("static", "", USER)
    return JSONResponse({"value": details.value, "reason": details.reason})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # Serve once the provider is ready (set_provider initialises on a thread).
    await anyio.to_thread.run_sync(ready.wait, 30.0)
    yield


app = Starlette(
    routes=[Route("/checkout", checkout), Route("/static", static)],
    lifespan=lifespan,
)


async def serve_and_ask() -> dict[str, object]:
    # Bound and listening before uvicorn starts: requests wait in the backlog
    # until it accepts them, so no waiting for start-up is needed.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    answers: dict[str, object] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for path in ("/checkout", "/static"):
                response = await http.get(path, timeout=30.0)
                answers[path] = response.json()
        server.should_exit = True
    sock.close()
    return answers


if __name__ == "__main__":
    answers = asyncio.run(serve_and_ask())
    api.shutdown()  # stops the provider's thread
    answers["client_threads_after_shutdown"] = client_threads()
    print(json.dumps(answers))
