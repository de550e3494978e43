"""A guarded rollout in a FastAPI app: a 50/50 rollout that pins itself when its new variation fails.

Flag ``new-checkout`` is a 50/50 percentage rollout of ``True`` (the new
checkout) against ``False`` (the old one, known good). A guard compares
the two arms' requests; the new checkout raises in 5 % of its requests, so
after a few thousand requests the guard pins ``False``: every request is
then served the old checkout, with reason ``GUARDED``, until the flag's
version changes or ``client.guards.release("new-checkout")``.

Run it under uvicorn's workers, on a flag plane (one stream upstream for
every worker), against a flag service that serves the rollout (``aioflags
serve`` of examples/guarded_rollout.json, a relay, LaunchDarkly)::

    aioflags serve examples/guarded_rollout.json --port 8030 &
    AIOFLAGS_SDK_KEY=sdk-key AIOFLAGS_BASE_URI=http://127.0.0.1:8030 \\
    AIOFLAGS_STREAM_URI=http://127.0.0.1:8030 AIOFLAGS_SEND_EVENTS=false \\
    uvicorn --app-dir examples guarded_rollout:app --workers 4
    curl -i 'http://127.0.0.1:8000/checkout?user=alice'
    curl 'http://127.0.0.1:8000/guards'

``benchmarks/bench_guards_e2e.py`` drives it at 300 requests a second and
times the pin (docs/benchmarks.md). Besides ``AIOFLAGS_*`` (the client's
configuration, ``Config.from_env``): ``CHECKOUT_PLANE``, the plane's path
(default: ``new-checkout.plane`` in the temporary folder);
``CHECKOUT_FAULT``, the share of the new checkout's requests that raise
(default 0.05); ``CHECKOUT_BASE_FAULT``, the share of every request that
raises, whichever checkout it got (default 0: an A/A run sets
``CHECKOUT_FAULT=0`` and this to the same rate in both arms).

Each answer says which worker answered (``x-worker``: its process id, and
``x-plane-role``), what the flag served (``x-variation``, ``x-reason``)
and ``x-seq``, the worker's count of evaluations so far: a request that
``x-seq`` orders after a ``GUARDED`` one was evaluated after the pin.
"""

import json
import os
import sys
import tempfile
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

import aioflags
from aioflags.guards import GuardEvent
from aioflags.lens import LensMiddleware

FLAG = "new-checkout"


class CheckoutFailed(Exception):
    """The checkout failed (the new one's bug, or a fault both have): answered 500."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("the checkout failed")
        self.headers = headers


def flags(request: Request) -> aioflags.Client:
    """The app's client (started by the lifespan)."""
    client: aioflags.Client = request.app.state.flags
    return client


Flags = Annotated[aioflags.Client, Depends(flags)]


def faulty(request_id: str, share: float) -> bool:
    """Whether this request fails: ``share`` of requests, chosen by a hash of its id (repeatable)."""
    return zlib.crc32(request_id.encode()) % 10_000 < share * 10_000


def said(event: GuardEvent) -> None:
    """Each decision as one line on stderr, with this worker's process id."""
    print(
        f"{os.getpid()} guard {event.name}: {event.kind}", file=sys.stderr, flush=True
    )


def create_app(config: aioflags.Config, *, fault: float, base_fault: float) -> FastAPI:
    """The app; the client is created here (no I/O: safe before a fork)."""
    client = aioflags.Client(config)
    evaluations = 0

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client:  # started in each worker, closed on shutdown
            client.guards.add_handler(said)
            app.state.flags = client
            yield

    app = FastAPI(lifespan=lifespan)
    # Each HTTP request in client.guards.request(): one that raises, or
    # answers 500 or more, is an error in the arm the flag served it.
    app.add_middleware(LensMiddleware, client=client)

    @app.exception_handler(CheckoutFailed)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        headers = exc.headers if isinstance(exc, CheckoutFailed) else {}
        return JSONResponse({"error": "checkout failed"}, 500, headers=headers)

    @app.get("/checkout")
    async def checkout(user: str, request: Request, flags: Flags) -> JSONResponse:
        nonlocal evaluations
        context = aioflags.Context.create(user)
        detail = await flags.bool_variation_detail(FLAG, context, False)
        evaluations += 1
        headers = {
            "x-worker": str(os.getpid()),
            "x-plane-role": str(flags.plane_role),
            "x-variation": json.dumps(detail.value),
            "x-reason": str(detail.reason.get("kind")),
            "x-seq": str(evaluations),
        }
        request_id = request.headers.get("x-request-id", user)
        if faulty(request_id, base_fault) or (
            detail.value and faulty(request_id, fault)
        ):
            raise CheckoutFailed(headers)
        new = "new" if detail.value else "old"
        return JSONResponse({"checkout": new}, headers=headers)

    @app.get("/guards")
    def guards(flags: Flags) -> dict[str, object]:
        status = flags.guards.status[FLAG]
        arms = {
            json.dumps(arm.value): {"requests": arm.requests, "errors": arm.errors}
            for arm in status.arms
        }
        return {
            "worker": os.getpid(),
            "plane_role": flags.plane_role,
            "state": status.state,
            "arms": arms,
        }

    return app


def default_config() -> aioflags.Config:
    """``AIOFLAGS_*`` from the environment, on the plane, with the guard that pins."""
    plane = os.environ.get("CHECKOUT_PLANE") or str(
        Path(tempfile.gettempdir()) / "new-checkout.plane"
    )
    guard = aioflags.Guard(FLAG, control=False, action="pin")
    return aioflags.Config.from_env(
        data_system=aioflags.DataSystem.streaming(plane=plane), guards=[guard]
    )


app = create_app(
    default_config(),
    fault=float(os.environ.get("CHECKOUT_FAULT", "0.05")),
    base_fault=float(os.environ.get("CHECKOUT_BASE_FAULT", "0")),
)
