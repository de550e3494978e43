"""An ASGI app whose client is on a flag plane, for ``uvicorn --workers N`` (tests/test_plane_processes.py).

``AIOFLAGS_TEST_PLANE`` is the plane's path and ``AIOFLAGS_TEST_URL`` the
flag server's (``AIOFLAGS_TEST_FLAGD``: a flagd sync server's target instead); ``GET /`` answers flag ``f``'s value and the worker's role,
and each change of its value is a line on stderr (each log line and each
change starts with the worker's process id).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import aioflags

# The app's choice (the test reads each worker's role line): aioflags' INFO lines.
logging.basicConfig(level=logging.WARNING, format="%(process)d %(name)s: %(message)s")
logging.getLogger("aioflags.datasource").setLevel(logging.INFO)

URL = os.environ.get("AIOFLAGS_TEST_URL", "http://127.0.0.1:9")
PLANE = os.environ.get("AIOFLAGS_TEST_PLANE", "/nonexistent/plane")
#: A flagd sync server's target instead of a flag service's URL.
FLAGD = os.environ.get("AIOFLAGS_TEST_FLAGD")
CONFIG = aioflags.Config(
    "sdk-key",
    base_uri=URL,
    stream_uri=URL,
    send_events=False,
    # (READY before "Application startup complete", even on a loaded machine)
    ready_timeout=120,
    data_system=aioflags.DataSystem.streaming(plane=PLANE)
    if FLAGD is None
    else aioflags.DataSystem.flagd(FLAGD, plane=PLANE),
)
CLIENT = aioflags.Client(CONFIG)


def changed(change: aioflags.FlagValueChange) -> None:
    print(
        f"{os.getpid()} flag f serves {change.new_value}", file=sys.stderr, flush=True
    )


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with CLIENT:
        CLIENT.add_flag_value_change_handler(
            "f", aioflags.Context.create("u"), changed, default="default"
        )
        yield


async def value(request: Request) -> PlainTextResponse:
    served = await CLIENT.variation("f", aioflags.Context.create("u"), "default")
    return PlainTextResponse(f"{served} {CLIENT.plane_role}")


app = Starlette(routes=[Route("/", value)], lifespan=lifespan)
