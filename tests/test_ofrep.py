"""OFREP: the protocol as ../shared/ofrep.md has it, by hand and with OpenFeature's real provider.

Against ``aioflags serve`` (its FlagServer) and against ``OFREPApp`` mounted in
a Starlette app under uvicorn, evaluated by a running client.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from starlette.applications import Starlette
from starlette.routing import Mount

import aioflags
from aioflags import Client, Context
from aioflags.ofrep import OFREPApp, Request
from aioflags.testing import FlagServer, Limits
from tests.processes import HTTP_GUARD, ended

CLIENT_SIDE = {"clientSideAvailability": {"usingEnvironmentId": True}}
BANNER = {
    "on": True,
    "variations": ["red", "blue"],
    "fallthrough": {"variation": 0},
    "offVariation": 1,
    "rules": [
        {
            "id": "r",
            "variation": 1,
            "clauses": [
                {"attribute": "plan", "op": "in", "values": ["pro"], "negate": False}
            ],
        }
    ],
    **CLIENT_SIDE,
}
LIMIT = {
    "on": True,
    "variations": [10, 20],
    "fallthrough": {"variation": 1},
    **CLIENT_SIDE,
}
SECRET = {"on": True, "variations": [True, False], "fallthrough": {"variation": 0}}
FLAGS = {"banner": BANNER, "limit": LIMIT, "server-only": SECRET}
U1 = {"context": {"targetingKey": "u1"}}
GUARD = 30  # a guard against a hang, never a timing the test relies on


# ------------------------------------------------------------------ by hand
@pytest.mark.asyncio
async def test_single_answers_value_variant_reason_and_metadata() -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        answer = await http.post("/ofrep/v1/evaluate/flags/banner", json=U1)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {
            "key": "banner",
            "value": "red",
            "variant": "0",
            "reason": "DEFAULT",
            "metadata": {"version": 1, "ldReason": "FALLTHROUGH"},
        }
        pro = {"context": {"targetingKey": "u2", "plan": "pro"}}
        answer = await http.post("/ofrep/v1/evaluate/flags/banner", json=pro)
        assert answer.json()["value"] == "blue"
        assert answer.json()["reason"] == "TARGETING_MATCH"
        answer = await http.post("/ofrep/v1/evaluate/flags/limit", json=U1)
        assert answer.json()["reason"] == "STATIC"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "INVALID_CONTEXT"),
        (b"[1]", 400, "INVALID_CONTEXT"),
        (b'{"context": 3}', 400, "INVALID_CONTEXT"),
        (b'{"context": {}}', 400, "TARGETING_KEY_MISSING"),
        (b'{"context": {"targetingKey": "u", "kind": "kind"}}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"kind": "multi"}}', 400, "INVALID_CONTEXT"),
        (b"[" * 100_000, 400, "GENERAL"),  # over 64 KiB
    ],
)
@pytest.mark.asyncio
async def test_bad_input_is_a_400_with_an_ofrep_failure_body(
    body: bytes, status: int, code: str
) -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        for path in ("/ofrep/v1/evaluate/flags/banner", "/ofrep/v1/evaluate/flags"):
            answer = await http.post(path, content=body)
            assert answer.status_code == status
            failure = answer.json()
            assert failure["errorCode"] == code
            assert isinstance(failure["errorDetails"], str)
        assert (await http.post("/ofrep/v1/evaluate/flags/banner", json=U1)).is_success


@pytest.mark.asyncio
async def test_a_large_body_is_refused_without_being_read() -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):

        async def endless() -> AsyncIterator[bytes]:
            for _ in range(16):  # 1 MiB, chunked: no Content-Length
                yield b" " * 65536

        answer = await http.post("/ofrep/v1/evaluate/flags", content=endless())
        assert answer.status_code == 400 and answer.json()["errorCode"] == "GENERAL"


@pytest.mark.asyncio
async def test_unknown_flags_and_wrong_methods() -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        answer = await http.post("/ofrep/v1/evaluate/flags/nope", json=U1)
        assert answer.status_code == 404
        assert answer.json() == {
            "key": "nope",
            "errorCode": "FLAG_NOT_FOUND",
            "errorDetails": "no flag 'nope'",
        }
        answer = await http.get("/ofrep/v1/evaluate/flags")
        assert answer.status_code == 405 and answer.headers["allow"] == "POST, OPTIONS"
        # A method is one word, not a piece of another ("OST" of "POST").
        for method, path in [
            ("OST", "/evaluate/flags/banner"),
            ("ET", "/event-stream"),
        ]:
            answer = await http.request(method, f"/ofrep/v1{path}", json=U1)
            assert answer.status_code == 405, method
        # OPTIONS says what the other methods find: the same endpoints, methods.
        options = await http.options("/ofrep/v1/event-stream")
        assert (options.status_code, options.headers["allow"]) == (204, "GET, OPTIONS")
        options = await http.options("/ofrep/v1/evaluate/flags/")  # no key: none
        assert options.status_code == 404 and options.json()["errorCode"] == "GENERAL"


@contextlib.asynccontextmanager
async def both_targets() -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """HTTP clients of ``serve`` (its FlagServer) and of an ``OFREPApp`` over it."""
    async with (
        FlagServer(FLAGS) as server,
        Client(server.config(send_events=False)) as client,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as served,
        httpx.AsyncClient(
            timeout=HTTP_GUARD,
            transport=httpx.ASGITransport(app=OFREPApp(client, expose="all")),
            base_url="http://app",
        ) as app,
    ):
        yield {"serve": served, "OFREPApp": app}


@pytest.mark.asyncio
async def test_an_attribute_with_an_empty_name_is_dropped_as_launchdarkly_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Was 400 INVALID_CONTEXT ("context attribute names must be non-empty
    # strings"); OFREP's document allows any property name, and LaunchDarkly's
    # SDKs drop an attribute whose name is empty (issue 80).
    caplog.set_level(logging.DEBUG, logger="aioflags.ofrep")
    plain = {"context": {"": None, "targetingKey": "0"}}
    pro = {"context": {"": "x", "targetingKey": "0", "plan": "pro"}}
    async with both_targets() as targets:
        for name, http in targets.items():
            single = await http.post("/ofrep/v1/evaluate/flags/banner", json=plain)
            assert (single.status_code, single.json()["value"]) == (200, "red"), name
            # The other attributes still count.
            single = await http.post("/ofrep/v1/evaluate/flags/banner", json=pro)
            assert single.json()["reason"] == "TARGETING_MATCH", name
            bulk = await http.post("/ofrep/v1/evaluate/flags", json=pro)
            assert bulk.status_code == 200, name
            banner = next(f for f in bulk.json()["flags"] if f["key"] == "banner")
            assert banner["value"] == "blue", name
    dropped = [
        r
        for r in caplog.records
        if r.name == "aioflags.ofrep" and "attribute named ''" in r.getMessage()
    ]
    assert [r.levelno for r in dropped] == [logging.DEBUG]  # once per name


@pytest.mark.parametrize("path", ["flags/a%0Ab", "flags/a%0A", "flags/%0A", "x%0Ay"])
@pytest.mark.asyncio
async def test_every_path_under_ofrep_answers_in_ofrep_s_shapes(path: str) -> None:
    # `serve` answered a key with a newline {"message": "not found"}: its
    # route's pattern did not match "\n" (issue 80).
    async with both_targets() as targets:
        for name, http in targets.items():
            answer = await http.post(f"/ofrep/v1/evaluate/{path}", json=U1)
            assert answer.status_code == 404, name
            failure = answer.json()
            if path.startswith("flags/"):
                key = path.removeprefix("flags/").replace("%0A", "\n")
                assert failure == {
                    "key": key,
                    "errorCode": "FLAG_NOT_FOUND",
                    "errorDetails": f"no flag {key!r}",
                }, name
            else:
                assert failure["errorCode"] == "GENERAL", name


@pytest.mark.asyncio
async def test_bulk_has_an_etag_a_304_and_a_new_tag_after_a_change() -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        bulk = "/ofrep/v1/evaluate/flags"
        first = await http.post(bulk, json=U1)
        assert first.status_code == 200
        body = first.json()
        assert [f["key"] for f in body["flags"]] == ["banner", "limit", "server-only"]
        assert body["eventStreams"] == [
            {
                "type": "sse",
                "endpoint": {"requestUri": "/ofrep/v1/event-stream"},
                "inactivityDelaySec": 120,
            }
        ]
        tag = first.headers["etag"]
        again = await http.post(
            bulk, json=U1, headers={"if-none-match": f'W/{tag}, "x"'}
        )
        assert again.status_code == 304 and again.headers["etag"] == tag
        other = await http.post(
            bulk,
            json={"context": {"targetingKey": "u9", "plan": "pro"}},
            headers={"if-none-match": tag},
        )
        assert other.status_code == 200 and other.headers["etag"] != tag
        server.set_flag(
            "limit", {**LIMIT, "on": False}
        )  # seen by the very next request
        changed = await http.post(bulk, json=U1, headers={"if-none-match": tag})
        assert changed.status_code == 200
        limit = next(f for f in changed.json()["flags"] if f["key"] == "limit")
        # Off with no off variation: no value, no variant (the code default).
        assert limit["reason"] == "DISABLED" and "value" not in limit


@pytest.mark.asyncio
async def test_cors_for_loopback_pages_only() -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(timeout=HTTP_GUARD, base_url=server.url) as http,
    ):
        page = {
            "origin": "http://localhost:5173",
            "access-control-request-method": "POST",
        }
        preflight = await http.options("/ofrep/v1/evaluate/flags", headers=page)
        assert preflight.is_success  # (an ok status: what Fetch asks of a preflight)
        assert (
            preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
        )
        assert "if-none-match" in preflight.headers["access-control-allow-headers"]
        answer = await http.post("/ofrep/v1/evaluate/flags", json=U1, headers=page)
        assert answer.headers["access-control-expose-headers"] == "ETag"
        foreign = {"origin": "https://evil.example"}
        answer = await http.post("/ofrep/v1/evaluate/flags", json=U1, headers=foreign)
        assert "access-control-allow-origin" not in answer.headers


@pytest.mark.asyncio
async def test_the_change_stream_says_refetch_on_every_change() -> None:
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(base_url=server.url, timeout=GUARD) as http,
        http.stream(
            "GET", "/ofrep/v1/event-stream", headers={"last-event-id": "0"}
        ) as stream,
    ):
        assert stream.headers["content-type"] == "text/event-stream"
        lines = stream.aiter_lines()
        with anyio.fail_after(GUARD):
            # Behind (0 < 1): one event at once.
            assert await anext(lines) == "id: 1"
            assert await anext(lines) == "event: message"
            data = json.loads((await anext(lines)).removeprefix("data: "))
            assert data["type"] == "refetchEvaluation"
            server.set_flag("limit", {**LIMIT, "on": False})
            while await anext(lines) != "id: 2":
                pass
            assert await anext(lines) == "event: message"


@pytest.mark.parametrize(
    "last", [b"\xb2", b"1" * 5000], ids=["superscript-two", "5000-digits"]
)
@pytest.mark.asyncio
async def test_a_last_event_id_int_cannot_read_is_as_good_as_none(
    last: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """``str.isdigit()`` passes ``²`` and 5,000 digits; ``int()`` refused them (500)."""
    async with (
        FlagServer(FLAGS) as server,
        httpx.AsyncClient(base_url=server.url, timeout=GUARD) as http,
        http.stream(
            "GET", "/ofrep/v1/event-stream", headers={b"last-event-id": last}
        ) as stream,
    ):
        assert stream.status_code == 200
        with anyio.fail_after(GUARD):
            assert await anext(stream.aiter_lines()) == ": connected"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("0", 0),
        ("007", 7),
        ("123456789012345678", 123456789012345678),
        ("1234567890123456789", 10**18),
        ("9" * 5000, 10**18),
        ("0" * 5000 + "5", 5),
        ("", None),
        ("\xb2", None),
        ("\u0661", None),  # ARABIC-INDIC DIGIT ONE
        ("-1", None),
        (" 1", None),
    ],
)
def test_a_numeric_header_is_ascii_digits_read_at_most_18_of_them(
    value: str, number: int | None
) -> None:
    from aioflags._asgi._limits import header_number

    assert header_number(value) == number


# ------------------------------------------- OpenFeature's Python provider
def _resolve(
    base_url: str, domain: str, calls: list[tuple[str, str, Any, dict[str, Any]]]
) -> list[Any]:
    """Evaluate through OpenFeature's OFREP provider (blocking: run on a thread)."""
    api.set_provider_and_wait(OFREPProvider(base_url, timeout=GUARD), domain)
    client = api.get_client(domain)
    results = []
    for kind, key, default, attributes in calls:
        ctx = EvaluationContext(attributes.pop("targetingKey", None), attributes)
        method = getattr(client, f"get_{kind}_details")
        results.append(method(key, default, ctx))
    return results


def _fresh(
    calls: list[tuple[str, str, Any, dict[str, Any]]],
) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """The calls with attribute dicts of their own (_resolve pops from them)."""
    return [(kind, key, default, dict(attrs)) for kind, key, default, attrs in calls]


CALLS: list[tuple[str, str, Any, dict[str, Any]]] = [
    ("string", "banner", "grey", {"targetingKey": "u1"}),
    ("string", "banner", "grey", {"targetingKey": "u2", "plan": "pro"}),
    ("integer", "limit", 0, {"targetingKey": "u1"}),
    ("string", "nope", "grey", {"targetingKey": "u1"}),
    ("boolean", "limit", False, {"targetingKey": "u1"}),  # a type mismatch
]


def _check(results: list[Any]) -> None:
    red, blue, limit, missing, mismatch = results
    assert (red.value, red.variant, red.reason) == ("red", "0", Reason.DEFAULT)
    assert (blue.value, blue.reason) == ("blue", Reason.TARGETING_MATCH)
    assert (limit.value, limit.reason) == (20, Reason.STATIC)
    assert limit.flag_metadata == {"version": 1, "ldReason": "FALLTHROUGH"}
    assert (missing.value, missing.error_code) == ("grey", ErrorCode.FLAG_NOT_FOUND)
    assert (mismatch.value, mismatch.error_code) == (False, ErrorCode.TYPE_MISMATCH)


@pytest.mark.asyncio
async def test_the_python_provider_against_the_flag_service() -> None:
    async with FlagServer(FLAGS) as server:
        results = await anyio.to_thread.run_sync(
            _resolve,
            server.url,
            "ofrep-serve",
            _fresh(CALLS),
        )
        _check(results)
        server.set_flag("banner", {**BANNER, "on": False})
        [off] = await anyio.to_thread.run_sync(
            _resolve,
            server.url,
            "ofrep-serve",
            [("string", "banner", "grey", {"targetingKey": "u1"})],
        )
        assert (off.value, off.reason) == ("blue", Reason.DISABLED)


@pytest.mark.slow
def test_the_python_provider_against_an_aioflags_serve_process(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps({"flags": FLAGS}))
    process = subprocess.Popen(
        [sys.executable, "-m", "aioflags", "serve", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" at ", 1)[1].strip()
        _check(_resolve(url, "ofrep-process", _fresh(CALLS)))
    finally:
        ended(process)


@contextlib.asynccontextmanager
async def uvicorn_app(app: Starlette | FastAPI | OFREPApp) -> AsyncIterator[str]:
    """``app`` served by uvicorn on 127.0.0.1; yields its URL."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
        )
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            yield f"http://127.0.0.1:{port}"
            server.should_exit = True
    finally:
        sock.close()


def _session_context(request: Request, ofrep: dict[str, Any]) -> Context:
    """The app's own idea of who asks: its session cookie, not the body."""
    return Context.create(
        request.cookies.get("session", "anonymous"), attributes={"plan": "pro"}
    )


@pytest.mark.slow
@pytest.mark.asyncio
async def test_the_python_provider_against_an_ofrep_app_in_fastapi_under_uvicorn() -> (
    None
):
    async with FlagServer(FLAGS) as flags:
        config = flags.config(diagnostic_opt_out=True)
        async with Client(config) as client:
            app = FastAPI()
            app.mount("/flags", OFREPApp(client))
            async with uvicorn_app(app) as url:
                base = f"{url}/flags"
                results = await anyio.to_thread.run_sync(
                    _resolve,
                    base,
                    "ofrep-app",
                    _fresh(CALLS),
                )
                _check(results)
                # expose="client-side": a server-only flag is an unknown flag.
                async with httpx.AsyncClient(timeout=HTTP_GUARD, base_url=base) as http:
                    hidden = await http.post(
                        "/ofrep/v1/evaluate/flags/server-only", json=U1
                    )
                    unknown = await http.post("/ofrep/v1/evaluate/flags/nope", json=U1)
                    assert hidden.status_code == unknown.status_code == 404
                    assert hidden.content == unknown.content.replace(
                        b"nope", b"server-only"
                    )
                    bulk = await http.post("/ofrep/v1/evaluate/flags", json=U1)
                    assert "server-only" not in [f["key"] for f in bulk.json()["flags"]]
                    assert bulk.json()["eventStreams"][0]["endpoint"] == {
                        "requestUri": "/flags/ofrep/v1/event-stream"
                    }
                # A change reaches the app's client, then the provider.
                changed = anyio.Event()
                client.add_handler(
                    aioflags.ProviderEvent.CONFIGURATION_CHANGED,
                    lambda _: changed.set(),
                )
                flags.set_flag("limit", {**LIMIT, "fallthrough": {"variation": 0}})
                with anyio.fail_after(GUARD):
                    await changed.wait()
                [limit] = await anyio.to_thread.run_sync(
                    _resolve,
                    base,
                    "ofrep-app",
                    [("integer", "limit", 0, {"targetingKey": "u1"})],
                )
                assert limit.value == 10
            await client.flush()
        # Single evaluations are the client's own: summarised for the service.
        events = await flags.wait_for_events(kind="summary")
        counted = {key for e in events for key in e.get("features", {})}
        assert {"banner", "limit"} <= counted


@pytest.mark.slow
@pytest.mark.asyncio
async def test_context_callable_overrides_the_body() -> None:
    async with (
        FlagServer(FLAGS) as flags,
        Client(flags.config(send_events=False)) as client,
    ):
        app = Starlette(
            routes=[
                Mount("/", OFREPApp(client, context=_session_context, expose="all"))
            ]
        )
        async with (
            uvicorn_app(app) as url,
            httpx.AsyncClient(timeout=HTTP_GUARD, base_url=url) as http,
        ):
            answer = await http.post(
                "/ofrep/v1/evaluate/flags/banner",
                json={"context": {"targetingKey": "u1", "plan": "free"}},
                headers={"cookie": "session=alice"},
            )
            assert answer.json()["value"] == "blue"  # the app's plan, not the body's
            assert (
                await http.post("/ofrep/v1/evaluate/flags/server-only", json=U1)
            ).is_success


@pytest.mark.asyncio
async def test_a_client_without_data_answers_503_with_retry_after() -> None:
    async with FlagServer(FLAGS) as flags:
        flags.fail("/sdk/poll", hang=True)
        flags.fail("/sdk/stream", hang=True)
        client = Client(flags.config(send_events=False, ready_timeout=0))
        async with client:
            app = OFREPApp(client)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                timeout=HTTP_GUARD, transport=transport, base_url="http://app"
            ) as http:
                answer = await http.post("/ofrep/v1/evaluate/flags/banner", json=U1)
                assert answer.status_code == 503
                assert answer.headers["retry-after"] == "1"
                assert answer.json()["errorCode"] == "GENERAL"


def test_a_bad_expose_is_refused_at_once() -> None:
    config = aioflags.Config("k", send_events=False)
    with pytest.raises(aioflags.ConfigurationError, match='"client-side" or "all"'):
        OFREPApp(Client(config), expose="server")  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_change_stream_ends_once_its_client_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, stop = anyio.Event(), anyio.Event()
    clients: list[Client] = []

    async def run_client(config: aioflags.Config) -> None:
        async with Client(config) as client:  # in a task of its own: closed on stop
            clients.append(client)
            started.set()
            await stop.wait()

    async with FlagServer(FLAGS) as flags, anyio.create_task_group() as tg:
        tg.start_soon(run_client, flags.config(send_events=False))
        await started.wait()
        async with (
            uvicorn_app(
                OFREPApp(clients[0], limits=Limits(ofrep_keepalive=0.05))
            ) as url,
            httpx.AsyncClient(base_url=url, timeout=GUARD) as http,
            http.stream("GET", "/ofrep/v1/event-stream") as stream,
        ):
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"
            stop.set()  # the client closes
            with anyio.fail_after(GUARD):
                rest = [line async for line in lines]
            assert all(line in ("", ": keep-alive") for line in rest)


@pytest.mark.asyncio
async def test_a_single_evaluation_runs_the_client_s_hooks_a_bulk_one_does_not() -> (
    None
):
    seen: list[str] = []

    class Seen(aioflags.Hook):
        def after_evaluation(
            self,
            series_context: aioflags.EvaluationSeriesContext,
            data: Any,
            detail: Any,
        ) -> Any:
            seen.append(series_context.key)
            return data

    async with (
        FlagServer(FLAGS) as flags,
        Client(flags.config(send_events=False, hooks=[Seen()])) as client,
        httpx.AsyncClient(
            timeout=HTTP_GUARD,
            transport=httpx.ASGITransport(app=OFREPApp(client)),
            base_url="http://app",
        ) as http,
    ):
        assert (await http.post("/ofrep/v1/evaluate/flags/banner", json=U1)).is_success
        assert (await http.post("/ofrep/v1/evaluate/flags", json=U1)).is_success
    assert seen == ["banner"]


def _ofrep_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aioflags.ofrep" and r.levelno >= logging.WARNING
    ]


@pytest.mark.asyncio
async def test_a_flag_hidden_by_expose_is_logged_once_with_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A first try answered 404 "no flag" for every server-side flag, silently.
    caplog.set_level(logging.WARNING)
    async with (
        FlagServer(FLAGS) as flags,
        Client(flags.config(send_events=False)) as client,
        httpx.AsyncClient(
            timeout=HTTP_GUARD,
            transport=httpx.ASGITransport(app=OFREPApp(client)),
            base_url="http://app",
        ) as http,
    ):
        for _ in range(3):
            hidden = await http.post("/ofrep/v1/evaluate/flags/server-only", json=U1)
            assert hidden.status_code == 404
        assert (
            await http.post("/ofrep/v1/evaluate/flags/nope", json=U1)
        ).status_code == 404
        assert (await http.post("/ofrep/v1/evaluate/flags/banner", json=U1)).is_success
        (warning,) = _ofrep_warnings(caplog)
        assert warning.startswith(
            "OFREP: flag 'server-only' is not available to client-side SDKs, so it "
            'is answered as unknown (404 FLAG_NOT_FOUND) under expose="client-side"'
        )
        assert "clientSide: true" in warning
        assert ".client_side()" in warning  # FlagData
        assert 'pass expose="all"' in warning
        assert warning.endswith("(logged once per flag)")
        # The answer itself still says nothing the page may not know.
        assert hidden.json() == {
            "key": "server-only",
            "errorCode": "FLAG_NOT_FOUND",
            "errorDetails": "no flag 'server-only'",
        }
        caplog.clear()
        for _ in range(2):
            bulk = await http.post("/ofrep/v1/evaluate/flags", json=U1)
            assert [f["key"] for f in bulk.json()["flags"]] == ["banner", "limit"]
        (warning,) = _ofrep_warnings(caplog)
        assert warning.startswith(
            "OFREP: a bulk evaluation served 2 flags and left out 1 not available "
            "to client-side SDKs (expose=\"client-side\", the default): 'server-only'. "
            "To serve a flag, mark the flag available to client-side SDKs"
        )
        assert warning.endswith("(logged once)")


@pytest.mark.asyncio
async def test_hidden_flags_are_logged_up_to_a_cap_and_not_with_expose_all(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr("aioflags._ofrep._handler.MAX_HIDDEN_LOGGED", 2)
    hidden = {f"secret-{n}": SECRET for n in range(4)}
    async with (
        FlagServer({**FLAGS, **hidden}) as flags,
        Client(flags.config(send_events=False)) as client,
    ):
        for expose in ("all", "client-side"):
            app = OFREPApp(client, expose=expose)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                timeout=HTTP_GUARD, transport=transport, base_url="http://a"
            ) as http:
                for key in [*hidden, *hidden]:
                    answer = await http.post(f"/ofrep/v1/evaluate/flags/{key}", json=U1)
                    assert answer.status_code == (200 if expose == "all" else 404)
                bulk = await http.post("/ofrep/v1/evaluate/flags", json=U1)
                assert bulk.is_success
            if expose == "all":
                assert _ofrep_warnings(caplog) == []
    warnings = _ofrep_warnings(caplog)
    assert [w.split(" is not available")[0] for w in warnings[:2]] == [
        "OFREP: flag 'secret-0'",
        "OFREP: flag 'secret-1'",
    ]
    assert warnings[2] == (
        'OFREP: 2 flags hidden by expose="client-side" have been logged: further '
        "ones are not (they are still answered as unknown)"
    )
    assert warnings[3].startswith(
        "OFREP: a bulk evaluation served 2 flags and left out 5 not available to "
        "client-side SDKs (expose=\"client-side\", the default): 'secret-0', "
        "'secret-1', 'secret-2', 'secret-3', 'server-only'. To serve a flag"
    )
    assert len(warnings) == 4


@pytest.mark.asyncio
async def test_a_body_that_trickles_is_refused_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FlagServer(FLAGS, limits=Limits(body_timeout=0.2)) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        async with await anyio.connect_tcp(host, int(port)) as raw:
            await raw.send(
                b"POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: localhost\r\n"
                b'Content-Length: 100\r\n\r\n{"context":'
            )
            answer = b""
            with anyio.fail_after(GUARD):  # a guard, not a timing
                while b"errorDetails" not in answer:
                    answer += await raw.receive()
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"took over 0.2 s" in answer


def test_a_context_callable_s_request_reads_any_case_and_every_cookie() -> None:
    request = Request(
        {
            "type": "http",
            "headers": [
                (b"x-session", b"s1"),
                (b"cookie", b"a=1; b=2"),
                (b"cookie", b"c=3"),  # (HTTP/2 sends a cookie header per cookie)
            ],
        }
    )
    assert request.headers["X-Session"] == request.headers["x-session"] == "s1"
    assert request.cookies == {"a": "1", "b": "2", "c": "3"}
    # Read as browsers write them: one odd pair loses nothing else.
    odd = Request({"type": "http", "headers": [(b"cookie", b'a=b c; e; s="x y"; k=1')]})
    assert odd.cookies == {"a": "b c", "": "e", "s": "x y", "k": "1"}


@pytest.mark.asyncio
async def test_a_middleware_adding_to_a_stream_s_headers_adds_to_that_stream_alone() -> (
    None
):
    """Each change stream's start message is its own (a list shared by every
    stream took each stream's added header into all the later ones)."""

    def tagging(app: Any) -> Any:
        async def tagged(scope: Any, receive: Any, send: Any) -> None:
            async def sending(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message["headers"].append((b"x-request-id", b"r"))  # in place
                await send(message)

            await app(scope, receive, sending)

        return tagged

    async with (
        FlagServer(FLAGS) as flags,
        Client(flags.config(send_events=False)) as client,
        uvicorn_app(tagging(OFREPApp(client))) as url,
        httpx.AsyncClient(base_url=url, timeout=GUARD) as http,
    ):
        for _ in range(3):
            async with http.stream("GET", "/ofrep/v1/event-stream") as stream:
                assert stream.headers.get_list("x-request-id") == ["r"]
