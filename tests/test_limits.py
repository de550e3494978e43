"""One ``Limits`` value: every bound of the local flag service, and each part reads it (issue 61)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trio
import trio.testing

from aioflags import Client, Config, ConfigurationError
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagServer, Limits
from tests.flags import BOOL_FLAG

GUARD = 10.0  # a safety net, never a synchronisation


def test_the_defaults_are_the_service_s_bounds() -> None:
    limits = Limits()
    assert (limits.max_body, limits.max_events_body) == (64 * 1024, 8 * 1024 * 1024)
    assert (limits.body_timeout, limits.idle_timeout) == (30.0, 5.0)
    assert limits.stream_queue_bytes == 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"max_body": 0}, ValueError),
        ({"body_timeout": -1.0}, ValueError),
        ({"idle_timeout": math.nan}, ValueError),
        ({"max_body": "64k"}, TypeError),
        ({"backlog": True}, TypeError),
    ],
)
def test_a_bound_that_is_no_positive_number_is_refused(
    given: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error, match=f"Limits.{next(iter(given))} must be"):
        Limits(**given)  # type: ignore[arg-type]


def test_only_a_limits_is_taken() -> None:
    with pytest.raises(TypeError, match=r"aioflags\.testing\.Limits"):
        FlagServer(limits={"max_body": 10})  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_every_part_of_a_flag_server_reads_its_limits() -> None:
    limits = Limits(max_body=100, max_events_body=1000, body_timeout=0.3)
    async with (
        FlagServer({"f": BOOL_FLAG}, limits=limits) as server,
        httpx.AsyncClient(base_url=server.url, timeout=GUARD) as http,
    ):
        page = await http.get("/ui/")
        token = page.text.split('name="aioflags-token" content="')[1].split('"')[0]
        # The console's API: 101 bytes is too many.
        answer = await http.post(
            "/ui/api/flag",
            content=b" " * 101,
            headers={"x-aioflags-token": token, "content-type": "application/json"},
        )
        assert answer.status_code == 413
        # An event post may be larger than other requests, up to its own bound.
        events = await http.post("/bulk", content=b"[" + b" " * 500 + b"]")
        assert events.status_code == 202
        events = await http.post("/bulk", content=b"[" + b" " * 1000 + b"]")
        assert events.status_code == 413
        # OFREP, in its own words.
        ofrep = await http.post(
            "/ofrep/v1/evaluate/flags",
            content=b'{"context": {"key": "' + b"u" * 100 + b'"}}',
        )
        assert ofrep.status_code == 400
        assert "larger than 100 bytes" in ofrep.json()["errorDetails"]
        # A body that trickles is refused once body_timeout has passed.
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        async with await anyio.connect_tcp(host, int(port)) as raw:
            await raw.send(
                b"POST /bulk HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n["
            )
            with anyio.fail_after(GUARD):
                head = await raw.receive()
        assert head.startswith(b"HTTP/1.1 408")


@pytest.mark.asyncio
async def test_an_ofrep_app_takes_limits_and_only_limits() -> None:
    client = Client(Config(offline=True))  # (never started)
    with pytest.raises(ConfigurationError, match=r"aioflags\.testing\.Limits"):
        OFREPApp(client, limits=30)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_route_added_later_inherits_every_limit() -> None:
    """Any app mounted on the service meets its body limits, its recording,
    its refusals and its faults, though it knows none of them."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from aioflags._service import _hosting

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"read": len(await request.body())})

    dummy = Mount("/dummy", routes=[Route("/echo", echo, methods=["POST"])])
    limits = Limits(max_body=100, body_timeout=0.3)
    server = FlagServer({"f": BOOL_FLAG}, limits=limits)  # (its parts: not served)
    app = server._make_app()
    app.routes.insert(0, dummy)
    sock = _hosting.bind("127.0.0.1", 0, limits.backlog)
    port = sock.getsockname()[1]
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_hosting.serve_asgi, app, sock, stop.wait, limits)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=GUARD
        ) as http:
            # Within its bounds it is served, and recorded.
            answer = await http.post("/dummy/echo", content=b"x" * 100)
            assert (answer.status_code, answer.json()) == (200, {"read": 100})
            assert server.requests_to("/dummy/echo")[-1].body == b"x" * 100
            # Too large, said or sent: 413, never read whole, recorded empty.
            answer = await http.post("/dummy/echo", content=b"x" * 101)
            assert answer.status_code == 413
            assert "larger than 100 bytes" in answer.json()["message"]

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(4):
                    yield b"x" * 60

            answer = await http.post("/dummy/echo", content=chunks())
            assert answer.status_code == 413
            assert server.requests_to("/dummy/echo")[-1].body == b""
            # A foreign Host (DNS rebinding): refused on its head.
            answer = await http.post(
                "/dummy/echo", content=b"{}", headers={"host": "evil.test"}
            )
            assert answer.status_code == 403
            # A fault planned for it applies.
            server.fail("/dummy/echo", status=503)
            answer = await http.post("/dummy/echo", content=b"{}")
            assert answer.status_code == 503
            server.clear_faults()
        # Too slow: 408 once body_timeout has passed.
        async with await anyio.connect_tcp("127.0.0.1", port) as raw:
            await raw.send(
                b"POST /dummy/echo HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Length: 10\r\n\r\nx"
            )
            with anyio.fail_after(GUARD):
                head = await raw.receive()
        assert head.startswith(b"HTTP/1.1 408")
        stop.set()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path", ["/bulk", "/ui/api/flag", "/ofrep/v1/evaluate/flags", "/sdk/poll"]
)
async def test_a_client_gone_mid_body_is_nobody_s_error(path: str) -> None:
    """The app returns (it raises nothing for the server to log as its error)."""
    server = FlagServer({"f": BOOL_FLAG})  # (its parts: not served)
    app = server._make_app()
    given: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> MutableMapping[str, Any]:
        return given.pop(0) if given else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass  # (the client is gone: nothing reaches it)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"localhost"),
            (b"content-length", b"100"),
            (b"x-aioflags-token", server._console.token.encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    with anyio.fail_after(GUARD):
        await app(scope, receive, send)
    assert server.requests_to(path)[-1].body == b""  # (never whole)


@pytest.mark.parametrize(
    ("given", "taken"),
    [
        (["max_body=128KiB"], Limits(max_body=128 * 1024)),
        (
            ["max_events_body=16MiB", "body_timeout=60"],
            Limits(max_events_body=16 * 1024 * 1024, body_timeout=60.0),
        ),
        (["idle_timeout=0.5", "backlog=64"], Limits(idle_timeout=0.5, backlog=64)),
        ([], Limits()),
    ],
)
def test_serve_takes_any_bound_with_limit(
    given: list[str], taken: Limits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflags.__main__ import main
    from aioflags._cli import _serving

    class Made(Exception):
        """The server was made (and is not started)."""

    made: list[object] = []

    def server(*args: object, **options: object) -> FlagServer:
        made.append(options["limits"])
        raise Made

    path = tmp_path / "flags.json"
    path.write_text('{"flagValues": {"v": 1}}')
    monkeypatch.setattr(_serving, "FlagServer", server)
    options = [arg for item in given for arg in ("--limit", item)]
    with pytest.raises(Made):
        main(["serve", str(path), "--port", "0", *options])
    assert made == [taken]


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("max_bdy=10", "NAME one of max_body, max_events_body"),
        ("max_body", "give NAME=VALUE"),
        ("max_body=ten", "max_body is a number (sizes may end in KiB or MiB)"),
        ("max_body=1.5", "max_body is a whole number"),
        ("body_timeout=0", "Limits.body_timeout must be more than 0"),
        ("body_timeout=1KiB", "body_timeout is a number"),
        ("backlog=1e10", "Limits.backlog must be at most 65535"),
    ],
)
def test_serve_says_what_a_bad_limit_is(
    given: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aioflags.__main__ import main

    path = tmp_path / "flags.json"
    path.write_text('{"flagValues": {"v": 1}}')
    with pytest.raises(SystemExit) as exit:
        main(["serve", str(path), "--port", "0", "--limit", given])
    assert exit.value.code == 2
    assert said in capsys.readouterr().err


def _answer_of(
    limits: Limits,
    given: list[tuple[float, MutableMapping[str, Any]]],
    declared: int | None,
) -> int:
    """The status BodyLimits answers an app that reads the body ``given`` paced.

    On trio's virtual clock (``MockClock``, jumping whenever every task
    waits): the client's pauses and BodyLimits' deadlines are that clock's,
    so the test takes no real time and no real time can skew it.
    """
    clock = trio.testing.MockClock(autojump_threshold=0)
    return anyio.run(
        _answered,
        limits,
        given,
        declared,
        backend="trio",
        backend_options={"clock": clock},
    )


async def _answered(
    limits: Limits,
    given: list[tuple[float, MutableMapping[str, Any]]],
    declared: int | None,
) -> int:
    from aioflags._asgi._limits import BodyLimits, read_body

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await read_body(receive)
        raise AssertionError("the body was to be refused")

    async def receive() -> MutableMapping[str, Any]:
        if not given:
            await anyio.sleep_forever()  # (the client sends nothing more)
        pause, message = given.pop(0)
        await anyio.sleep(pause)  # (how the client paces what it sends: virtual)
        return message

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": "/x",
        "headers": []
        if declared is None
        else [(b"content-length", str(declared).encode())],
    }
    with anyio.fail_after(GUARD):
        await BodyLimits(app, limits)(scope, receive, send)
    status: int = sent[0]["status"]
    return status


def _chunk(size: int, more: bool = True) -> MutableMapping[str, Any]:
    return {"type": "http.request", "body": b"x" * size, "more_body": more}


def test_a_body_too_large_is_413_though_its_drain_outlasts_the_deadline() -> None:
    # Past the cap at 0.3 s of a 1 s deadline, and still sending after it:
    # the answer is the 413 it earned, not a 408 for the time it was dropped.
    limits = Limits(max_body=100, body_timeout=1.0)
    given = [(0.0, _chunk(60)), (0.3, _chunk(60))]
    given += [(0.1, _chunk(10)) for _ in range(11)] + [(0.1, _chunk(10, more=False))]
    assert _answer_of(limits, given, None) == 413  # (chunked: no length)


def test_a_declared_body_too_large_is_answered_once_the_client_is_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A client that sends nothing after its head (it waits to be told) is
    # answered when it goes quiet, not after the whole linger.
    from aioflags._asgi import _limits

    monkeypatch.setattr(_limits, "LINGER", 60.0)  # (past the test's guard)
    assert _answer_of(Limits(max_body=100), [], 10_000) == 413
