"""Guarded rollouts where users meet them (issue 98): the middleware, OpenTelemetry.

``LensMiddleware`` (ASGI) and ``aiohttp_middleware`` open
``client.guards.request()`` around every HTTP request of a client with
guards. Apps are served on 127.0.0.1 (uvicorn for Starlette, aiohttp's own
server for aiohttp) and the counts in ``client.guards.status`` are checked
against what the app itself says it served: per arm, the requests and the
errors (raised, or answered 5xx; a 4xx is not one). A request that
evaluates no guarded flag, or whose flag a lens token overrode, counts
nowhere; nor does one whose client left. Cancellation and an exception's
identity are checked on the middleware itself (pure ASGI, no server).
A decision counts in ``aioflags.otel.Metrics``' ``aioflags.guard.decisions``
(read with the OpenTelemetry SDK's in-memory reader). A ``FlagServer``'s
console shows a client's guards (``server.show_guards(client.guards)``) in
``/ui/api/state`` and releases them under its own rules; the banner itself
is tested in Chromium (tests/test_guards_console.py).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

import aioflags
from aioflags import Context, Guard
from aioflags.guards import errors, latency
from aioflags.lens import LensConfig, LensMiddleware, aiohttp_middleware, mint
from aioflags.testing import FlagData, FlagServer
from tests.processes import HTTP_GUARD
from tests.test_lens import served_by_uvicorn

SECRET = "a-secret-of-the-guard-web-tests-0123456789abcdef"
FLAG = "new-checkout"
#: Requests per served test: enough for both arms, too few for a decision
#: to matter (the guard alerts at most: it never pins).
REQUESTS = 60


class Clock:
    """The guards' clock (``client.guards.clock``): moved by the app."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _client(*, lens: bool = False, guards: bool = True) -> aioflags.Client:
    data = FlagData()
    data.update(data.flag(FLAG).boolean().fallthrough_rollout({True: 50, False: 50}))
    return aioflags.Client(
        aioflags.Config(
            data_system=data.data_system(),
            guards=[Guard(FLAG, control=False, metrics=[errors(), latency()])]
            if guards
            else [],
            lens=LensConfig(secrets=[SECRET], allow=[FLAG]) if lens else None,
        )
    )


def _counted(client: aioflags.Client) -> dict[Any, tuple[int, int]]:
    """Each arm's (requests, errors), by the variation's value."""
    return {
        arm.value: (arm.requests, arm.errors) for arm in client.guards.status[FLAG].arms
    }


class Tally:
    """What the app says it served: per variation, requests and errors."""

    def __init__(self) -> None:
        self.served: dict[bool, list[int]] = {True: [0, 0], False: [0, 0]}

    def count(self, value: bool, error: bool) -> None:
        self.served[value][0] += 1
        self.served[value][1] += error

    def as_counted(self) -> dict[Any, tuple[int, int]]:
        return {value: (n, e) for value, (n, e) in self.served.items() if n}


def _fails(i: int) -> str | None:
    """How the treatment's request ``i`` fails: raises, answers 500, or not at all."""
    return {0: "raise", 1: "500"}.get(i % 6)


def starlette_app(client: aioflags.Client, tally: Tally) -> Any:
    async def checkout(request: Request) -> PlainTextResponse:
        i = int(request.query_params["i"])
        value = await client.bool_variation(FLAG, Context.create(f"user-{i}"), False)
        await anyio.lowlevel.checkpoint()  # other requests run in between
        if request.headers.get("x-lensed"):
            return PlainTextResponse(str(value))  # (overridden: not tallied)
        how = _fails(i) if value else None
        tally.count(value, how is not None)
        if how == "raise":
            raise LookupError("the treatment failed")
        return PlainTextResponse(str(value), status_code=500 if how else 200)

    async def missing(request: Request) -> PlainTextResponse:
        i = int(request.query_params["i"])
        value = await client.bool_variation(FLAG, Context.create(f"user-{i}"), False)
        tally.count(value, False)
        raise HTTPException(404, "no such order")

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse("no flag here")

    app = Starlette(
        routes=[
            Route("/checkout", checkout),
            Route("/missing", missing),
            Route("/plain", plain),
        ]
    )
    app.add_middleware(LensMiddleware, client=client)
    return app


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue98_starlette_counts_per_arm_what_the_app_served() -> None:
    """Raised and 500 are errors, 404 is not; no flag, or a lens override: nowhere."""
    tally = Tally()
    log: list[str] = []
    lensed = mint(SECRET, {FLAG: True}, ttl=600)
    async with (
        _client(lens=True) as client,
        served_by_uvicorn(starlette_app(client, tally), log) as url,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
    ):
        statuses: dict[int, int] = {}
        for i in range(REQUESTS):
            answer = await http.get("/checkout", params={"i": i})
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert (await http.get("/missing", params={"i": i})).status_code == 404
            assert (await http.get("/plain")).text == "no flag here"
            overridden = await http.get(
                "/checkout",
                params={"i": i},
                headers={"X-Aioflags-Lens": lensed, "X-Lensed": "1"},
            )
            assert overridden.text == "True"
        counted = _counted(client)
    assert set(tally.served) == {True, False} and all(
        n for n, _ in tally.served.values()
    )
    assert counted == tally.as_counted()
    assert counted[True][1] > 0 and counted[False][1] == 0
    # Every error the app made reached its client as a 500.
    assert statuses[500] == counted[True][1]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue98_aiohttp_counts_per_arm_what_the_app_served() -> None:
    """aiohttp: raised, ``HTTPInternalServerError`` and a 500 answer are errors; 404 is not."""
    tally = Tally()
    async with _client() as client:

        async def checkout(request: web.Request) -> web.Response:
            i = int(request.query["i"])
            context = Context.create(f"user-{i}")
            value = await client.bool_variation(FLAG, context, False)
            how = _fails(i) if value else None
            if value and i % 6 == 2:
                how = "HTTPException"
            tally.count(value, how is not None)
            if how == "raise":
                raise LookupError("the treatment failed")
            if how == "HTTPException":
                raise web.HTTPInternalServerError(text="failed")
            return web.Response(text=str(value), status=500 if how else 200)

        async def missing(request: web.Request) -> web.Response:
            i = int(request.query["i"])
            context = Context.create(f"user-{i}")
            tally.count(await client.bool_variation(FLAG, context, False), False)
            raise web.HTTPNotFound(text="no such order")

        async def plain(request: web.Request) -> web.Response:
            return web.Response(text="no flag here")

        app = web.Application(middlewares=[aiohttp_middleware(client)])
        app.router.add_get("/checkout", checkout)
        app.router.add_get("/missing", missing)
        app.router.add_get("/plain", plain)
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            for i in range(REQUESTS):
                answer = await http.get("/checkout", params={"i": i})
                assert answer.status in (200, 500)
                assert (await http.get("/missing", params={"i": i})).status == 404
                assert (await http.get("/plain")).status == 200
        counted = _counted(client)
    assert counted == tally.as_counted()
    assert counted[True][1] > 0 and counted[False][1] == 0


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue98_a_stream_is_timed_until_its_last_chunk() -> None:
    """Latency runs to the response's end (``more_body`` false): not its start, not a background task."""
    clock = Clock()
    log: list[str] = []
    async with _client() as client:
        client.guards.clock = clock
        finished = anyio.Event()

        async def later() -> None:
            clock.now += 100.0  # after the response: not timed
            await client.bool_variation(FLAG, Context.create("late"), False)
            finished.set()

        async def stream(request: Request) -> StreamingResponse:
            await client.bool_variation(FLAG, Context.create("user-1"), False)

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(3):
                    clock.now += 1.0
                    yield b"chunk\n"

            return StreamingResponse(chunks(), background=BackgroundTask(later))

        app = Starlette(routes=[Route("/stream", stream)])
        app.add_middleware(LensMiddleware, client=client)
        async with (
            served_by_uvicorn(app, log) as url,
            httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
        ):
            assert (await http.get("/stream")).text == "chunk\n" * 3
            with anyio.fail_after(30):
                await finished.wait()
        (arm,) = (a for a in client.guards.status[FLAG].arms if a.requests)
    assert arm.requests == 1 and arm.errors == 0
    assert arm.latency == pytest.approx(3.0)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue98_a_client_that_leaves_mid_stream_counts_nowhere() -> None:
    """The client closes its connection mid-stream: the request is neither an error nor a request."""
    log: list[str] = []
    async with _client() as client:
        started = anyio.Event()
        ended: list[anyio.Event] = []

        async def stream(request: Request) -> Any:
            user = request.query_params["user"]
            await client.bool_variation(FLAG, Context.create(user), False)
            if user != "leaver":
                return JSONResponse({"done": True})

            async def chunks() -> AsyncIterator[bytes]:
                yield b"first\n"
                started.set()
                await anyio.sleep_forever()  # until the client leaves
                yield b"never\n"  # pragma: no cover

            return StreamingResponse(chunks())

        inner = Starlette(routes=[Route("/stream", stream)])
        inner.add_middleware(LensMiddleware, client=client)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            """The app, saying when the middleware is done with a request."""
            done = anyio.Event()
            ended.append(done)
            try:
                await inner(scope, receive, send)
            finally:
                done.set()

        async with served_by_uvicorn(app, log) as url:
            async with httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http:
                assert (await http.get("/stream?user=stayer")).json() == {"done": True}
                async with http.stream("GET", "/stream?user=leaver") as answer:
                    async for _ in answer.aiter_bytes():
                        break
                    with anyio.fail_after(30):
                        await started.wait()
            # (the connection is closed: the stream ends, and the request)
            with anyio.fail_after(30):
                for done in ended:
                    await done.wait()
        arms = client.guards.status[FLAG].arms
    assert sum(arm.requests for arm in arms) == 1
    assert sum(arm.errors for arm in arms) == 0


# ------------------------------------------------------ the middleware alone
async def _call(middleware: Any, path: str = "/") -> None:
    scope = {"type": "http", "method": "GET", "path": path, "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    await middleware(scope, receive, send)


@pytest.mark.asyncio
async def test_issue98_an_exception_leaving_the_app_is_an_error_raised_untouched() -> (
    None
):
    raised = LookupError("the treatment failed")

    async with _client() as client:

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await client.bool_variation(FLAG, Context.create("user-1"), False)
            raise raised

        with pytest.raises(LookupError) as caught:
            await _call(LensMiddleware(app, client=client))
        assert caught.value is raised
        assert caught.value.__context__ is None  # (nothing chained on)
        arms = client.guards.status[FLAG].arms
        assert sum(arm.requests for arm in arms) == 1
        assert sum(arm.errors for arm in arms) == 1


@pytest.mark.asyncio
async def test_issue98_a_cancelled_request_counts_nowhere() -> None:
    """A request cancelled (its client left, the server stops) is neither an error nor a request."""
    async with _client() as client:
        evaluated = anyio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            user = "stayer" if scope["path"] == "/stay" else "leaver"
            await client.bool_variation(FLAG, Context.create(user), False)
            if user == "stayer":
                await send({"type": "http.response.start", "status": 200})
                await send({"type": "http.response.body", "body": b"ok"})
                return
            evaluated.set()
            await anyio.sleep_forever()

        middleware = LensMiddleware(app, client=client)
        await _call(middleware, "/stay")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_call, middleware, "/leave")
            with anyio.fail_after(30):
                await evaluated.wait()
            tg.cancel_scope.cancel()
        arms = client.guards.status[FLAG].arms
        assert sum(arm.requests for arm in arms) == 1
        assert sum(arm.errors for arm in arms) == 0


class _Transport:
    """An aiohttp request's transport, open or closing (its client left)."""

    def __init__(self, closing: bool) -> None:
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue98_aiohttp_a_client_that_left_or_a_cancelled_handler_counts_nowhere() -> (
    None
):
    from aiohttp.test_utils import make_mocked_request

    async with _client() as client:
        middleware = aiohttp_middleware(client)
        evaluated = anyio.Event()

        async def handler(request: web.Request) -> web.StreamResponse:
            user = request.query["user"]
            await client.bool_variation(FLAG, Context.create(user), False)
            if user == "reset":  # (a write to a client that left)
                raise ConnectionResetError("the client left")
            if user == "cancelled":
                evaluated.set()
                await anyio.sleep_forever()
            if user == "failed":
                raise LookupError("the treatment failed")
            return web.Response(text="ok")

        def request(user: str, *, closing: bool = False) -> web.Request:
            return make_mocked_request(
                "GET", f"/?user={user}", transport=_Transport(closing)
            )

        assert (await middleware(request("stayer"), handler)).status == 200
        with pytest.raises(ConnectionResetError):
            await middleware(request("reset", closing=True), handler)
        with pytest.raises(LookupError):  # (its connection open: an error)
            await middleware(request("failed"), handler)
        async with anyio.create_task_group() as tg:
            tg.start_soon(middleware, request("cancelled"), handler)
            with anyio.fail_after(30):
                await evaluated.wait()
            tg.cancel_scope.cancel()
        arms = client.guards.status[FLAG].arms
        assert sum(arm.requests for arm in arms) == 2
        assert sum(arm.errors for arm in arms) == 1


@pytest.mark.asyncio
async def test_issue98_an_app_that_ends_no_response_is_an_error() -> None:
    async with _client() as client:

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await client.bool_variation(FLAG, Context.create("user-1"), False)
            await send({"type": "http.response.start", "status": 200})

        await _call(LensMiddleware(app, client=client))
        arms = client.guards.status[FLAG].arms
        assert sum(arm.errors for arm in arms) == 1


@pytest.mark.asyncio
async def test_issue98_guards_without_a_lens_get_no_warning_and_neither_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "aioflags.lens")
    async with _client() as client:
        LensMiddleware(Starlette(), client=client)
        aiohttp_middleware(client)
    assert [r for r in caplog.records if r.name == "aioflags.lens"] == []
    async with _client(guards=False) as client:
        LensMiddleware(Starlette(), client=client)
    (said,) = (r.getMessage() for r in caplog.records if r.name == "aioflags.lens")
    assert "Config(lens=LensConfig(...)) or Config(guards=[...])" in said


@pytest.mark.asyncio
async def test_issue98_without_guards_a_request_opens_no_scope() -> None:
    """No guards, no lens: the middleware hands the request on as it is."""
    async with _client(guards=False) as client:
        seen: list[tuple[Any, Any]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append((receive, send))

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            pass

        await LensMiddleware(app, client=client)(scope, receive, send)
        assert seen == [(receive, send)]


# ------------------------------------------------------------- OpenTelemetry
async def _decide(client: aioflags.Client, clock: Clock, state: str) -> None:
    """Requests, the treatment failing in 40 % of its own, until the guard is in ``state``."""
    for i in range(20_000):
        with contextlib.suppress(LookupError):
            async with client.guards.request():
                value = await client.bool_variation(
                    FLAG, Context.create(f"u{i}"), False
                )
                clock.now += 0.01
                if value and i % 5 < 2:
                    raise LookupError("the treatment failed")
        if client.guards.status[FLAG].state == state:
            return
    raise AssertionError(f"never {state}: {client.guards.status[FLAG]}")


def _decision_points(memory: Any) -> list[tuple[dict[str, Any], Any]]:
    """The ``aioflags.guard.decisions`` points an ``InMemoryMetricReader`` holds."""
    from aioflags.otel import GUARD_DECISIONS

    return [
        (dict(point.attributes or {}), point.value)
        for resource in memory.get_metrics_data().resource_metrics
        for scoped in resource.scope_metrics
        for metric in scoped.metrics
        if metric.name == GUARD_DECISIONS
        for point in metric.data.data_points
    ]


def _metered(
    provider: Any, action: Literal["alert", "pin"], **attributes: str
) -> aioflags.Config:
    """A client's config: FLAG a 50/50 rollout, its guard deciding on errors, metrics to ``provider``."""
    from aioflags.otel import Metrics

    data = FlagData()
    data.update(data.flag(FLAG).boolean().fallthrough_rollout({True: 50, False: 50}))
    guard = Guard(FLAG, control=False, metrics=[errors()], action=action)
    return aioflags.Config(
        data_system=data.data_system(),
        guards=[guard],
        metrics=Metrics(provider, attributes=attributes or None),
    )


@pytest.mark.slow
@pytest.mark.parametrize(("action", "state"), [("alert", "alerted"), ("pin", "pinned")])
@pytest.mark.asyncio
async def test_issue98_a_decision_counts_in_the_otel_counter(
    action: Literal["alert", "pin"], state: str
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    try:
        config = _metered(provider, action, env="test")
        clock = Clock()
        async with aioflags.Client(config) as client:
            client.guards.clock = clock
            await _decide(client, clock, state)
            client.guards.release(FLAG)  # (a release is no decision)
        points = _decision_points(memory)
    finally:
        provider.shutdown()
    assert points == [
        (
            {
                "aioflags.guard.name": FLAG,
                "feature_flag.key": FLAG,
                "aioflags.guard.metric": "errors",
                "aioflags.guard.action": action,
                "env": "test",
            },
            1,
        )
    ]


@pytest.mark.asyncio
async def test_issue98_a_followers_applied_decision_counts_with_no_metric() -> None:
    # On a flag plane each process counts the decision it serves; a
    # follower applied the leader's: its point says no metric (docs/logging.md).
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from aioflags._guards._plane import PlaneLink

    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    try:
        config = _metered(provider, "pin")
        async with aioflags.Client(config) as client:
            runs = {
                run.config.name: run for run in (client.guards.by_flag or {}).values()
            }
            link = PlaneLink(runs)
            link.role("follower")
            version = client.guards.status[FLAG].version
            link.decided(
                {
                    FLAG: {
                        "version": version,
                        "state": "pinned",
                        "control": 1,
                        "message": "m",
                    }
                }
            )
            assert client.guards.status[FLAG].state == "pinned"
        points = _decision_points(memory)
    finally:
        provider.shutdown()
    assert points == [
        (
            {
                "aioflags.guard.name": FLAG,
                "feature_flag.key": FLAG,
                "aioflags.guard.metric": "",
                "aioflags.guard.action": "pin",
            },
            1,
        )
    ]


@pytest.mark.asyncio
async def test_issue98_guards_without_metrics_and_metrics_without_guards_add_no_handler() -> (
    None
):
    from opentelemetry.sdk.metrics import MeterProvider

    from aioflags.otel import Metrics

    provider = MeterProvider()
    try:
        async with _client() as client:
            assert client.guards._handlers == []
        data = FlagData()
        config = aioflags.Config(
            data_system=data.data_system(), metrics=Metrics(provider)
        )
        async with aioflags.Client(config) as client:
            assert client.guards._handlers == []
    finally:
        provider.shutdown()


# ------------------------------------------------------------------ console
#: The guarded flag as a flag service serves it: a 50/50 rollout.
ROLLOUT: dict[str, Any] = {
    "key": FLAG,
    "on": True,
    "variations": [True, False],
    "fallthrough": {
        "rollout": {
            "variations": [
                {"variation": 0, "weight": 50_000},
                {"variation": 1, "weight": 50_000},
            ]
        }
    },
    "offVariation": 1,
    "version": 1,
}


async def _page_token(http: httpx.AsyncClient) -> dict[str, str]:
    page = await http.get("/ui/")
    found = re.search(r'name="aioflags-token" content="([^"]+)"', page.text)
    assert found is not None
    return {"x-aioflags-token": found[1]}


@pytest.mark.slow
@pytest.mark.asyncio
async def test_issue98_the_console_state_carries_the_guards_and_release_keeps_its_rules() -> (
    None
):
    async with FlagServer({FLAG: ROLLOUT}) as server:
        guard = Guard(FLAG, control=False, metrics=[errors()], action="pin")
        config = server.config(send_events=False, guards=[guard])
        clock = Clock()
        async with (
            aioflags.Client(config) as client,
            httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
        ):
            client.guards.clock = clock
            state = (await http.get("/ui/api/state")).json()
            assert state["guards"] == []
            server.show_guards(client.guards)
            (row,) = (await http.get("/ui/api/state")).json()["guards"]
            assert (row["name"], row["flag"], row["state"]) == (
                FLAG,
                FLAG,
                "collecting",
            )
            await _decide(client, clock, "pinned")
            (row,) = (await http.get("/ui/api/state")).json()["guards"]
            assert row["state"] == "pinned" and row["metric"] == "errors"
            assert row["control"] == "false"
            arms = {arm["value"]: arm for arm in row["arms"]}
            assert arms["true"]["errors"] > 0 and arms["false"]["errors"] == 0
            assert arms["false"]["control"] and not arms["true"]["control"]

            release = f"/ui/api/guards/{FLAG}/release"
            token = await _page_token(http)
            port = server.url.rsplit(":", 1)[1]
            for headers in (
                {},
                {"x-aioflags-token": "wrong"},
                {**token, "origin": "http://attacker.example"},
                {**token, "host": f"attacker.example:{port}"},
            ):
                assert (await http.post(release, headers=headers)).status_code == 403
                assert client.guards.status[FLAG].state == "pinned"
            missing = await http.post("/ui/api/guards/nope/release", headers=token)
            assert missing.status_code == 404
            assert missing.json() == {"message": "no guard 'nope'"}
            answer = await http.post(release, headers={**token, "origin": server.url})
            assert answer.status_code == 200
            assert answer.json()["released"] is True
            assert answer.json()["state"] == "released"
            assert client.guards.status[FLAG].state == "released"
            again = await http.post(release, headers=token)
            assert again.json()["released"] is False


@pytest.mark.asyncio
async def test_issue98_a_console_without_guards_has_no_release() -> None:
    async with (
        FlagServer({FLAG: ROLLOUT}) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        token = await _page_token(http)
        answer = await http.post(f"/ui/api/guards/{FLAG}/release", headers=token)
        assert answer.status_code == 404
        assert answer.json() == {"message": "this console shows no guards"}
