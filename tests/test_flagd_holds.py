"""flagd holds under any document and any peer (issue 94).

No exception from a document, a payload or a peer ends a source: the
flagd sync source, ``DataSystem.file(reload=True)`` and ``aioflags serve``
refuse what they cannot use, alone, in one line that says where and why,
keep the last good data, try again as their backoff says, and take the
next good document. The failures are injected (a reader that raises
``MemoryError``, ``RecursionError``, a bug's error) and natural (JSON
nested 1,000 deep, a sync context nested past protobuf's limit or holding
NaN, a configuration with NaN or Infinity). Time is a FakeClock's.
(The plane's case, with real processes: tests/test_plane_processes.py.)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from aioflags import (
    Client,
    Config,
    ConfigurationError,
    Context,
    DataSystem,
    ProviderStatus,
)
from aioflags._cli._serving import watch
from aioflags._datasystem._sources import _files
from aioflags._datasystem._sources._watch import FlagFileWatcher
from aioflags._systems._flagd import _reader
from aioflags._systems._flagd._sync import _link, _source
from aioflags.testing import FakeClock, FlagdServer, FlagServer
from tests.flagd_raw import RawSyncServer

USER = Context.create("user-1")


def flag(default: str) -> dict[str, Any]:
    return {
        "state": "ENABLED",
        "variants": {"hi": "hello", "bye": "goodbye"},
        "defaultVariant": default,
    }


GOOD: dict[str, Any] = {"flags": {"greeting": flag("hi")}}
MENDED: dict[str, Any] = {"flags": {"greeting": flag("bye")}}
#: A flag whose presence makes the injected reader raise.
SPOILED: dict[str, Any] = {"flags": {**GOOD["flags"], "spoiled": flag("hi")}}

#: What an injected reader raises, and the cause the one line gives.
RAISED = [
    pytest.param(MemoryError(), "too large to read (out of memory)", id="MemoryError"),
    pytest.param(
        RecursionError("maximum recursion depth exceeded"),
        "nested too deeply to read",
        id="RecursionError",
    ),
    pytest.param(
        RuntimeError("a bug in a reader\nits second line"),
        "RuntimeError: a bug in a reader",
        id="a-bug",
    ),
    pytest.param(KeyError("variants"), "KeyError: 'variants'", id="KeyError"),
]


def raising_on_spoiled(
    monkeypatch: pytest.MonkeyPatch, module: Any, exc: Exception
) -> None:
    """``module.flagd_flags`` raises ``exc`` for a document with the flag ``spoiled``."""
    real = module.flagd_flags

    def flagd_flags(data: Any, **options: Any) -> Any:
        if isinstance(data, dict) and "spoiled" in data.get("flags", {}):
            raise exc
        return real(data, **options)

    monkeypatch.setattr(module, "flagd_flags", flagd_flags)


def parse_raising_on_spoiled(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    """The flag file parser raises ``exc`` for a file that names ``spoiled``."""
    real = _files._parse

    def parse(path: Path, data: bytes) -> Any:
        if b'"spoiled"' in data:
            raise exc
        return real(path, data)

    monkeypatch.setattr(_files, "_parse", parse)


#: Where reading a flag file raises: in the flagd document's reader, or in
#: the file's parser (what no reader of the file turns into its own words).
READERS = ["flagd-document", "file-parser"]


def reader_raising(
    reader: str, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    if reader == "flagd-document":
        raising_on_spoiled(monkeypatch, _reader, exc)
    else:
        parse_raising_on_spoiled(monkeypatch, exc)


def one_line(message: str, start: str, cause: str) -> bool:
    """Whether ``message`` is one line, from ``start``, ending with ``cause`` (or ``(cause)``)."""
    return (
        "\n" not in message
        and message.startswith(start)
        and message.endswith((cause, f"({cause})"))
    )


def nested(depth: int) -> str:
    """A JSON array nested ``depth`` deep, as text (no encoder of Python's need write it)."""
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def flagd(target: str) -> Config:
    # (deadline in real time: an attempt on a loaded machine must not miss it)
    system = DataSystem.flagd(target, retry_backoff=(1.0, 1.0), deadline=30.0)
    return Config(data_system=system, send_events=False)


async def greeting(client: Client) -> str:
    return str(await client.variation("greeting", USER, "default"))


async def status(client: Client, *wanted: ProviderStatus) -> None:
    with anyio.fail_after(30):
        await client.wait_for_status(*wanted)


async def advance_until(
    client: Client, clock: FakeClock, wanted: ProviderStatus, step: float = 1.0
) -> None:
    """Let the source's waits pass, ``step`` at a time, until the client is ``wanted``."""
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:

            async def advance() -> None:
                while True:
                    await clock.wait_for_sleeper(within=1)
                    await clock.advance(step)

            group.start_soon(advance)
            await client.wait_for_status(wanted)
            group.cancel_scope.cancel()


def said(caplog: pytest.LogCaptureFixture, words: str) -> list[logging.LogRecord]:
    """The log records at WARNING or above that say ``words`` (none may carry a traceback)."""
    found = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and words in r.getMessage()
    ]
    assert all(r.exc_info is None for r in found)
    assert all("\n" not in r.getMessage() for r in found)
    return found


def error_of(client: Client) -> str:
    status = client.data_source_status
    assert status is not None and status.error is not None
    return status.error.message


# --------------------------------------------------------- the sync source


@pytest.mark.parametrize(("raised", "cause"), RAISED)
@pytest.mark.asyncio
async def test_J1_a_configuration_whose_reading_raises_is_refused_alone(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    raised: Exception,
    cause: str,
) -> None:
    raising_on_spoiled(monkeypatch, _link, raised)
    clock = FakeClock()
    async with (
        FlagdServer(GOOD) as server,
        Client(flagd(server.target), clock=clock) as client,
    ):
        assert await greeting(client) == "hello"
        server.set_document(SPOILED)
        await status(client, ProviderStatus.STALE)  # the last good data is kept
        assert await greeting(client) == "hello"
        line = f"flagd sync ({server.target}): unusable flag configuration: {cause}"
        assert error_of(client) == line
        # Tried again as the backoff says; the same refusal is not said again.
        with anyio.fail_after(30):
            await clock.wait_for_sleeper(within=1)
        await clock.advance(1)
        await server.wait_until(lambda s: s.streams_opened >= 2)
        with anyio.fail_after(30):
            await clock.wait_for_sleeper(within=1)  # (its second attempt failed)
        assert len(said(caplog, line)) == 1
        # A good document is taken.
        server.set_document(MENDED)
        await advance_until(client, clock, ProviderStatus.READY)
        assert await greeting(client) == "goodbye"


@pytest.mark.asyncio
async def test_J1_whatever_an_attempt_raises_fails_that_attempt_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = _source._first
    raised: list[str] = []

    async def first(call: Any, *more: Any) -> Any:
        if not raised:  # the first stream: what a peer made gRPC raise
            raised.append("once")
            raise RuntimeError("gRPC raised what it documents nowhere")
        return await real(call, *more)

    monkeypatch.setattr(_source, "_first", first)
    clock = FakeClock()
    async with (
        FlagdServer(GOOD) as server,
        Client(flagd(server.target), clock=clock) as client,
    ):
        assert await greeting(client) == "hello"  # (the initializer's fetch)
        await status(client, ProviderStatus.STALE)
        assert error_of(client).endswith(
            "the attempt failed: RuntimeError: gRPC raised what it documents nowhere"
        )
        assert said(caplog, "the attempt failed")
        server.set_document(MENDED)
        await advance_until(client, clock, ProviderStatus.READY)
        assert await greeting(client) == "goodbye"


@pytest.mark.asyncio
async def test_J1_a_sync_context_past_protobufs_nesting_limit_is_refused() -> None:
    clock = FakeClock()
    async with (
        FlagdServer(GOOD) as server,
        Client(flagd(server.target), clock=clock) as client,
    ):
        assert await greeting(client) == "hello"
        server.set_sync_context(deep_object(101))
        await status(client, ProviderStatus.STALE)
        assert "a SyncFlagsResponse that cannot be decoded" in error_of(client)
        assert await greeting(client) == "hello"
        server.set_sync_context(None)
        server.set_document(MENDED)
        await advance_until(client, clock, ProviderStatus.READY)
        assert await greeting(client) == "goodbye"


@pytest.mark.asyncio
async def test_J1_a_start_on_a_context_protobuf_cannot_decode_is_an_error_then_ready() -> (
    None
):
    clock = FakeClock()
    # GetMetadata's answer and every stream message: nested past the limit.
    async with (
        FlagdServer(GOOD, sync_context=deep_object(101)) as server,
        Client(flagd(server.target), clock=clock) as client,
    ):
        assert client.status is ProviderStatus.ERROR
        assert "cannot be decoded" in error_of(client)
        assert await greeting(client) == "default"
        server.set_sync_context({"region": "eu"})
        await advance_until(client, clock, ProviderStatus.READY)
        assert await greeting(client) == "hello"


def text(document: dict[str, Any]) -> str:
    import json

    return json.dumps(document)


#: A configuration's text with NaN or Infinity where a variant's value is.
NOT_JSON = [
    pytest.param(
        text(GOOD).replace('"hello"', constant), None, f"{constant} is not valid JSON"
    )
    for constant in ("NaN", "Infinity", "-Infinity")
] + [
    pytest.param(
        text(GOOD), {"rate": value}, f"{name} is not valid JSON", id=f"context-{name}"
    )
    for name, value in (("NaN", float("nan")), ("Infinity", float("inf")))
]


async def refused_then_mended(
    configuration: str, sync_context: dict[str, Any] | None, cause: str
) -> None:
    """A raw sync server sends a good configuration, then this one, then a good one."""
    clock = FakeClock()
    async with (
        RawSyncServer(text(GOOD)) as server,
        Client(flagd(server.target), clock=clock) as client,
    ):
        assert client.status is ProviderStatus.READY
        assert await greeting(client) == "hello"
        server.send(configuration, sync_context)
        await status(client, ProviderStatus.STALE)
        assert cause in error_of(client)
        assert await greeting(client) == "hello"
        server.send(text(MENDED))
        await advance_until(client, clock, ProviderStatus.READY)
        assert await greeting(client) == "goodbye"


@pytest.mark.parametrize(("configuration", "sync_context", "cause"), NOT_JSON)
@pytest.mark.asyncio
async def test_J5_a_sync_message_with_nan_or_infinity_is_refused_as_a_file_is(
    configuration: str, sync_context: dict[str, Any] | None, cause: str
) -> None:
    await refused_then_mended(configuration, sync_context, cause)


@pytest.mark.parametrize(
    ("configuration", "sync_context", "cause"),
    [
        pytest.param(
            # (Python 3.11's parser refuses this depth; 3.12's and later take
            # it, and the metadata's type refuses it: refused either way.)
            text(GOOD)[:-1] + f', "metadata": {{"deep": {nested(1000)}}}}}',
            None,
            "unusable flag configuration",
            id="json-1000-deep",
        ),
        pytest.param(
            text(GOOD)[:-1] + f', "metadata": {{"deep": {nested(100_000)}}}}}',
            None,
            "JSON nested too deeply to parse",
            id="json-100000-deep",
        ),
        pytest.param(
            text(GOOD), deep_object(101), "cannot be decoded", id="context-101-deep"
        ),
    ],
)
@pytest.mark.asyncio
async def test_J1_json_nested_past_any_reader_is_refused(
    configuration: str, sync_context: dict[str, Any] | None, cause: str
) -> None:
    await refused_then_mended(configuration, sync_context, cause)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(
            lambda: FlagdServer({"flags": {"f": {"x": float("nan")}}}), id="doc"
        ),
        pytest.param(
            lambda: FlagdServer(GOOD, sync_context={"x": float("inf")}), id="ctx"
        ),
        pytest.param(
            lambda: FlagdServer(GOOD, metadata={"x": float("-inf")}), id="meta"
        ),
    ],
)
@pytest.mark.asyncio
async def test_J5_flagd_server_refuses_nan_and_infinity_when_given(
    given: Callable[[], FlagdServer],
) -> None:
    with pytest.raises(ConfigurationError, match="holds NaN or Infinity"):
        given()


@pytest.mark.asyncio
async def test_J5_flagd_server_refuses_nan_in_a_change_or_a_file(
    tmp_path: Path,
) -> None:
    server = FlagdServer(GOOD)
    with pytest.raises(ConfigurationError, match="the flagd document holds NaN"):
        server.set_document({"flags": {"f": {"x": float("nan")}}})
    with pytest.raises(ConfigurationError, match="flag 'f' holds NaN"):
        server.set_flag("f", {"x": float("inf")})
    with pytest.raises(ConfigurationError, match="the sync context holds NaN"):
        server.set_sync_context({"x": float("nan")})
    path = tmp_path / "flags.json"
    path.write_text(text(GOOD).replace('"hello"', "NaN"))
    with pytest.raises(ConfigurationError, match=f"document {path} holds NaN"):
        server.set_document(path)
    assert server.selected() == GOOD  # what it serves is as it was


# ------------------------------------------------------ files and serve


def write(path: Path, document: dict[str, Any], stamp: int) -> None:
    """Write ``document``, with a stamp of its own even on a coarse file-system clock."""
    import os

    path.write_text(text(document))
    os.utime(path, ns=(stamp * 10**9, stamp * 10**9))


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("raised", "cause"), RAISED)
@pytest.mark.asyncio
async def test_J1_a_file_reload_whose_reading_raises_is_refused_alone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    raised: Exception,
    cause: str,
    reader: str,
) -> None:
    reader_raising(reader, monkeypatch, raised)
    path = tmp_path / "flags.json"
    write(path, GOOD, 1)
    clock = FakeClock()
    system = DataSystem.file(path, reload=True)
    async with Client(Config(data_system=system), clock=clock) as client:
        assert await greeting(client) == "hello"
        write(path, SPOILED, 2)
        await advance_until(client, clock, ProviderStatus.STALE, step=0.1)
        line = error_of(client)
        assert one_line(line, f"{path}: ", cause), line
        assert await greeting(client) == "hello"
        write(path, MENDED, 3)
        await advance_until(client, clock, ProviderStatus.READY, step=0.1)
        assert await greeting(client) == "goodbye"
        assert len(said(caplog, line)) == 1


@pytest.mark.asyncio
async def test_J1_a_file_reload_that_cannot_be_versioned_is_refused_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aioflags._datasystem._sources._versions import ContentVersions

    real = ContentVersions.stamp

    def stamp(self: ContentVersions, kind: str, items: dict[str, Any]) -> Any:
        if "spoiled" in items:
            raise RecursionError("maximum recursion depth exceeded while encoding")
        return real(self, kind, items)

    monkeypatch.setattr(ContentVersions, "stamp", stamp)
    path = tmp_path / "flags.json"
    write(path, GOOD, 1)
    clock = FakeClock()
    system = DataSystem.file(path, reload=True)
    async with Client(Config(data_system=system), clock=clock) as client:
        write(path, SPOILED, 2)
        await advance_until(client, clock, ProviderStatus.STALE, step=0.1)
        assert error_of(client) == f"{path}: cannot be read: nested too deeply to read"
        write(path, MENDED, 3)
        await advance_until(client, clock, ProviderStatus.READY, step=0.1)
        assert await greeting(client) == "goodbye"


@asynccontextmanager
async def serving(path: Path, clock: FakeClock) -> AsyncIterator[FlagServer]:
    """``serve``'s server and reloader (its checks on ``clock``)."""
    watcher = FlagFileWatcher((path,), clock)
    first = watcher.load()
    async with (
        FlagServer(first.flags, first.segments) as server,
        anyio.create_task_group() as group,
    ):
        group.start_soon(lambda: watch(path, server, watcher, interval=1))
        yield server
        group.cancel_scope.cancel()


async def served(server: FlagServer, clock: FakeClock, wanted: str) -> None:
    """Let ``serve``'s checks pass until flag ``greeting`` serves ``wanted``'s variant."""
    with anyio.fail_after(30):
        while server.flags["greeting"]["flagd"]["defaultVariant"] != wanted:
            await clock.wait_for_sleeper(within=1)
            await clock.advance(0.1)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("raised", "cause"), RAISED)
@pytest.mark.asyncio
async def test_J1_serve_keeps_serving_through_a_save_whose_reading_raises(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: Exception,
    cause: str,
    reader: str,
) -> None:
    reader_raising(reader, monkeypatch, raised)
    path = tmp_path / "flags.json"
    write(path, GOOD, 1)
    clock = FakeClock()
    async with serving(path, clock) as server:
        write(path, SPOILED, 2)
        with anyio.fail_after(30):
            while server._console.trouble is None:
                await clock.wait_for_sleeper(within=1)
                await clock.advance(0.1)
        trouble = server._console.trouble
        assert one_line(trouble["message"], "", cause), trouble
        assert set(server.flags) == {"greeting"}  # the last good data, served
        err = capsys.readouterr().err
        assert one_line(err.removesuffix("\n"), f"not reloaded: {path}: ", cause), err
        write(path, MENDED, 3)
        await served(server, clock, "bye")
        assert server._console.trouble is None


@pytest.mark.asyncio
async def test_J1_serve_keeps_serving_through_a_save_it_cannot_write(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aioflags._service import _wire

    real = _wire.fdv2_full

    def fdv2_full(objects: Any, state: str, version: int) -> str:
        objects = list(objects)
        if any(item.get("key") == "spoiled" for _, item in objects):
            raise RecursionError("maximum recursion depth exceeded while encoding")
        return real(objects, state, version)

    monkeypatch.setattr(_wire, "fdv2_full", fdv2_full)
    path = tmp_path / "flags.json"
    write(path, GOOD, 1)
    clock = FakeClock()
    async with serving(path, clock) as server:
        before = server.flags
        write(path, SPOILED, 2)
        with anyio.fail_after(30):
            while server._console.trouble is None:
                await clock.wait_for_sleeper(within=1)
                await clock.advance(0.1)
        message = "cannot be served: nested too deeply to read"
        assert server._console.trouble["message"] == message
        assert server.flags == before  # all or nothing: the last good data
        assert capsys.readouterr().err == f"not reloaded: {path}: {message}\n"
        write(path, MENDED, 3)
        await served(server, clock, "bye")
        assert server._console.trouble is None


# ------------------------------------------------- flagd's words for errors


def test_J9_a_flagd_flag_that_cannot_be_compiled_is_parse_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aioflags._datasystem._store import snapshot_from_data
    from aioflags._systems._flagd._data._definitions import flagd_flags
    from aioflags._systems._flagd._engine import _compile

    def compile_flagd(key: str, spec: Any) -> Any:
        raise RuntimeError("what no check foresaw")

    monkeypatch.setattr(_compile, "compile_flagd", compile_flagd)
    flags = flagd_flags({"flags": {"j9-compiled": flag("hi")}})
    detail = snapshot_from_data(dict(flags)).variation_detail("j9-compiled", USER, "d")
    assert detail.value == "d"
    assert detail.reason == {"kind": "ERROR", "errorKind": "PARSE_ERROR"}
    assert "will evaluate to PARSE_ERROR" in caplog.text


def test_J9_a_flagd_flag_whose_targeting_raises_is_general(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aioflags._datasystem._store import snapshot_from_data
    from aioflags._evaluation._codegen import Code
    from aioflags._systems._flagd._data._definitions import flagd_flags
    from aioflags._systems._flagd._engine import _compile
    from aioflags._systems._flagd._engine._compile import compile_flagd as real

    def run(operands: Any, context: Any, state: Any) -> Any:
        raise RuntimeError("a bug in the generated code")

    def compile_flagd(key: str, spec: Any) -> Any:
        parts = real(key, spec)
        return parts._replace(constant=None, code=Code(run, True, ()))

    monkeypatch.setattr(_compile, "compile_flagd", compile_flagd)
    targeted = {**flag("hi"), "targeting": {"if": [True, "bye", None]}}
    flags = flagd_flags({"flags": {"j9-raises": targeted}})
    snapshot = snapshot_from_data(dict(flags))
    general = {"kind": "ERROR", "errorKind": "GENERAL"}
    detail = snapshot.variation_detail("j9-raises", USER, "d")
    assert (detail.value, detail.reason) == ("d", general)
    state = snapshot.all_flags_state(USER, with_reasons=True).to_dict()
    assert state["$flagsState"]["j9-raises"]["reason"] == general
    assert "default is returned (GENERAL)" in caplog.text
