"""Streaming sources: FDv2 ``/sdk/stream`` and FDv1 ``/all``.

:func:`._common.send` opens the connection; the events are read by
:mod:`._sse`, which decodes strictly (invalid UTF-8 is invalid data, never U+FFFD). Any
:class:`ProtocolError` (bad bytes, JSON or fields, or a line, event or
payload over ``Config.max_payload_bytes`` or ``max_payload_changes``) drops
the connection and reconnects with backoff from the current basis, keeping
the last good data.

Nothing is applied before ``payload-transferred``; an ``error`` event drops the
pending changes; unknown events and object kinds are ignored; a reconnect
sends the current basis. The fallback directive in the connect headers is
latched onto the next completed payload or error (protocol.md §3).

Cleanup is shielded: when the supervisor abandons the stream (directive,
failover, shutdown), the response and its TCP connection are closed before
the generator finishes, even under cancellation.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Final, TypeAlias

import httpx
from httpx_sse import SSEError

from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import RAW_DATA
from aioflags._core._logname import client_logger
from aioflags._core._pacing import Pacer
from aioflags._datasystem._context import mark_streaming, progress_of
from aioflags._datasystem._datatypes import (
    ChangeSet,
    ErrorInfo,
    IntentCode,
    SourceState,
    Update,
)
from aioflags._datasystem._payloads import (
    ChangeSetBuilder,
    fdv1_delete,
    fdv1_full,
    fdv1_patch,
)
from aioflags._datasystem._sources._backoff import Backoff

from ._common import (
    check_source_options,
    data_params,
    display_url,
    environment_id,
    failure,
    fallback_directive,
    parse_json,
    parse_json_or_cut,
    send,
)
from ._sse import aiter_sse

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable
    from contextlib import AbstractAsyncContextManager

    from httpx_sse import ServerSentEvent

    from aioflags._core._json import JSONValue
    from aioflags._core._settings import Settings
    from aioflags._datasystem._context import SourceContext

__all__ = ["fdv1_streaming_synchronizer", "streaming_synchronizer"]

logger = client_logger("aioflags.datasource")
#: The least initial delay a server's ``retry:`` field can set, in seconds.
#: Above zero, the backoff's doubling (reset only after ``retry_reset_after``
#: of healthy connection) spreads out even a server that drops every
#: connection at once; at zero every delay was zero: a hot loop.
RETRY_FLOOR: Final = 0.1


def _open(
    ctx: SourceContext, url: str, params: dict[str, str], headers: dict[str, str]
) -> AbstractAsyncContextManager[httpx.Response]:
    config = ctx.config
    timeout = httpx.Timeout(
        connect=config.connect_timeout,
        read=config.stream_read_timeout,
        write=config.connect_timeout,
        pool=config.connect_timeout,
    )
    headers = {**headers, "Accept": "text/event-stream", "Cache-Control": "no-store"}
    return send(ctx, url, params=params, headers=headers, timeouts=timeout)


def _backoff(ctx: SourceContext, initial: float | None) -> Backoff:
    config = ctx.config
    return Backoff(
        initial=initial or config.initial_retry_delay,
        maximum=config.max_retry_delay,
        jitter=config.retry_jitter,
        reset_after=config.retry_reset_after,
        clock=ctx.clock,
        random=ctx.random,
    )


def _connect_failure(
    ctx: SourceContext, response: httpx.Response, what: str, url: str
) -> tuple[ErrorInfo | None, bool]:
    """What is wrong with a stream's connect response (None if nothing), and whether to retry."""
    if response.status_code != 200:
        return failure(ctx, what, url, response.status_code)
    content_type: str = response.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        wrong = SSEError(
            f"the response is not text/event-stream (Content-Type: {content_type!r})"
        )
        return failure(ctx, what, url, wrong)
    return None, True


class _Stream:
    """One streaming source: its protocol, and what it carries across connections."""

    __slots__ = (
        "backoff",
        "fdv2",
        "last_event_id",
        "latched",
        "max_bytes",
        "max_changes",
        "on_bytes",
        "read",
        "source",
        "url",
        "what",
    )

    def __init__(
        self,
        url: str,
        backoff: Backoff,
        read: _Reader,
        *,
        fdv2: bool,
        what: str,
        source: str,
        config: Settings,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url
        #: Told the bytes each read brings (the run's ``Progress``).
        self.on_bytes = on_bytes
        #: ``Config.max_payload_bytes`` and ``max_payload_changes``.
        self.max_bytes = config.max_payload_bytes
        self.max_changes = config.max_payload_changes
        self.backoff = backoff
        self.read = read  # reads one connection's events
        self.fdv2 = fdv2
        self.what = what  # for messages: "stream connection"...
        self.source = source  # the log records' ``source`` field
        #: The fallback directive, latched from any connect response (FDv2 only).
        self.latched = False
        self.last_event_id: str | None = None


class _Refused(Exception):
    """The connect response was not a stream: the failure, and whether to retry."""

    def __init__(self, error: ErrorInfo, recoverable: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.recoverable = recoverable


#: Reads one connection's events: yields updates; the last one it yields may
#: carry the fallback directive, and then the stream ends for good.
_Reader: TypeAlias = (
    "Callable[[httpx.Response, _Stream, str | None], AsyncGenerator[Update, None]]"
)


async def _reconnecting(
    ctx: SourceContext, stream: _Stream
) -> AsyncGenerator[Update, None]:
    """The reconnect loop both protocols share (protocol.md §3).

    Reads connection after connection; on a failure reports INTERRUPTED and
    retries with backoff; an unrecoverable status, or a failure once the
    directive is latched, reports OFF and ends.
    """
    while True:
        error: ErrorInfo | None = None
        recoverable = True
        try:
            connection = _connection(ctx, stream)
            async with aclosing(connection) as updates:
                async for update in updates:
                    yield update
                    if update.fallback_to_fdv1:
                        return
                    del update  # (not held while the next event is awaited)
        except _Refused as refused:
            error, recoverable = refused.error, refused.recoverable
        except (ProtocolError, httpx.HTTPError) as exc:
            # Bad bytes, JSON or fields (ProtocolError) or a broken
            # connection: start again from the basis (protocol.md §3).
            error, recoverable = failure(ctx, stream.what, stream.url, exc)
        if error is not None:
            if stream.latched or not recoverable:
                yield Update(
                    state=SourceState.OFF, error=error, fallback_to_fdv1=stream.latched
                )
                return
            yield Update(state=SourceState.INTERRUPTED, error=error)
        elif stream.fdv2:
            logger.info("The flag stream closed; reconnecting")
        await ctx.clock.sleep(stream.backoff.next_delay())


async def _connection(
    ctx: SourceContext, stream: _Stream
) -> AsyncGenerator[Update, None]:
    """One connection's updates; raises :class:`_Refused` if it is not a stream."""
    url, fdv2 = stream.url, stream.fdv2
    params = data_params(ctx)
    headers: dict[str, str] = {}
    if fdv2:
        selector = ctx.selector()  # reconnect from the current basis
        if selector.defined:
            params["basis"] = selector.state
        if stream.last_event_id:
            headers["Last-Event-ID"] = stream.last_event_id
    async with _open(ctx, url, params, headers) as response:
        if fdv2 and fallback_directive(response.headers):
            stream.latched = True
        error, recoverable = _connect_failure(ctx, response, stream.what, url)
        if error is not None:
            raise _Refused(error, recoverable)
        stream.backoff.connected()
        logger.info(
            "Connected to the %s at %s",
            "flag stream" if fdv2 else "FDv1 flag stream",
            display_url(url),
            extra={"url": display_url(url), "source": stream.source},
        )
        env = environment_id(response.headers)
        # (open while its events are read: its bytes are the run's progress)
        with progress_of(ctx).receiving():
            async with aclosing(stream.read(response, stream, env)) as updates:
                async for update in updates:
                    yield update
                    del update  # (not held while the next event is awaited)


def streaming_synchronizer(
    *, base_uri: str | None = None, initial_retry_delay: float | None = None
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """An FDv2 streaming synchronizer (``GET /sdk/stream``).

    Args:
        base_uri: overrides ``Config.stream_uri`` for this source.
        initial_retry_delay: overrides ``Config.initial_retry_delay``.

    Raises:
        ConfigurationError: ``base_uri`` is not an http(s) URL, or
            ``initial_retry_delay`` not a number of seconds > 0.
    """
    return _synchronizer(
        "/sdk/stream",
        _fdv2_updates,
        base_uri=base_uri,
        initial_retry_delay=initial_retry_delay,
        fdv2=True,
        what="stream connection",
        source="fdv2-stream",
    )


def _synchronizer(
    path: str,
    read: _Reader,
    *,
    base_uri: str | None,
    initial_retry_delay: float | None,
    fdv2: bool,
    what: str,
    source: str,
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """A streaming synchronizer factory: one reconnect loop, ``read`` per connection."""
    check_source_options(
        "streaming_synchronizer" if fdv2 else "fdv1_streaming_synchronizer",
        base_uri=base_uri,
        initial_retry_delay=initial_retry_delay,
    )

    def synchronizer(ctx: SourceContext) -> AsyncGenerator[Update, None]:
        url = f"{(base_uri or ctx.config.stream_uri).rstrip('/')}{path}"
        stream = _Stream(
            url,
            _backoff(ctx, initial_retry_delay),
            read,
            fdv2=fdv2,
            what=what,
            source=source,
            config=ctx.config,
            on_bytes=progress_of(ctx).add,
        )
        return _reconnecting(ctx, stream)

    return mark_streaming(synchronizer)


async def _fdv2_updates(
    response: httpx.Response, stream: _Stream, env: str | None
) -> AsyncGenerator[Update, None]:
    """One FDv2 connection's events, as updates (a payload at a time)."""
    builder = ChangeSetBuilder(
        max_changes=stream.max_changes, max_bytes=stream.max_bytes
    )
    # A payload of 100,000 events may arrive faster than it is parsed: yield
    # to the loop every few milliseconds.
    pacer = Pacer()
    events = aiter_sse(response, max_bytes=stream.max_bytes, on_bytes=stream.on_bytes)
    async with aclosing(events):
        async for sse in events:
            if pacer.due():
                await pacer.pause()
            if sse.id:
                stream.last_event_id = sse.id
            if sse.retry is not None:
                stream.backoff.initial = max(sse.retry / 1000, RETRY_FLOOR)
            update = await _fdv2_event(builder, sse, env)
            if update is None:
                continue
            if stream.latched:  # the payload first, then the switch
                yield Update(
                    state=update.state,
                    change_set=update.change_set,
                    fallback_to_fdv1=True,
                    environment_id=env,
                )
                return
            yield update


async def _fdv2_event(
    builder: ChangeSetBuilder, sse: ServerSentEvent, env: str | None
) -> Update | None:
    """One FDv2 event; raises ProtocolError for data it cannot use."""
    name = sse.event
    if name == "heart-beat":
        return None
    if name == "server-intent":
        intent = builder.server_intent(await parse_json(sse.data))
        if intent is IntentCode.TRANSFER_NONE:
            return Update(state=SourceState.VALID, environment_id=env)
    elif name == "put-object":
        data = await _object_data(builder, name, sse.data)
        if data is not None:
            # The change keeps the event's text: the store compiles it on first use.
            builder.put_object(data, sse.data, RAW_DATA)
    elif name == "delete-object":
        data = await _object_data(builder, name, sse.data)
        if data is not None:
            builder.delete_object(data)
    elif name == "payload-transferred":
        change_set = builder.payload_transferred(await parse_json(sse.data))
        return Update(
            state=SourceState.VALID, change_set=change_set, environment_id=env
        )
    elif name == "error":
        builder.error()
        logger.warning("The flag service reported a payload error: %s", sse.data)
    elif name == "goodbye":
        logger.info("The flag service said goodbye: %s", sse.data)
    else:
        logger.debug("Ignoring unexpected stream event %r", name)
    return None


async def _object_data(
    builder: ChangeSetBuilder, name: str, text: str
) -> JSONValue | None:
    """A ``put-object`` or ``delete-object`` event's data; None: nested too deeply.

    The object such an event names cannot be used: the builder serves it
    as MALFORMED_FLAG and says so as the payload ends, and the rest of the
    payload applies (:meth:`ChangeSetBuilder.too_deep`).
    """
    data, whole = await parse_json_or_cut(text)
    if whole:
        return data
    builder.too_deep(name, data)
    return None


def fdv1_streaming_synchronizer(
    *, base_uri: str | None = None, initial_retry_delay: float | None = None
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """An FDv1 streaming synchronizer (``GET /all`` with put/patch/delete).

    Its arguments are those of :func:`streaming_synchronizer`.
    """
    return _synchronizer(
        "/all",
        _fdv1_updates,
        base_uri=base_uri,
        initial_retry_delay=initial_retry_delay,
        fdv2=False,
        what="FDv1 stream connection",
        source="fdv1-stream",
    )


async def _fdv1_updates(
    response: httpx.Response, stream: _Stream, env: str | None
) -> AsyncGenerator[Update, None]:
    """One FDv1 connection's events: each put, patch or delete is an update."""
    # (FDv1 has no event ids, retry hints or directive: only the limits count.)
    events = aiter_sse(response, max_bytes=stream.max_bytes, on_bytes=stream.on_bytes)
    async with aclosing(events):
        async for sse in events:
            change_set = await _fdv1_event(sse, stream.max_changes)
            # The event and its change set are the store's once yielded: not
            # held while the next event is awaited (a put's parsed flags
            # would outlive the flags compiled from them).
            del sse
            if change_set is not None:
                yield Update(
                    state=SourceState.VALID, change_set=change_set, environment_id=env
                )
            del change_set


async def _fdv1_event(sse: ServerSentEvent, max_changes: int) -> ChangeSet | None:
    """One FDv1 event; raises ProtocolError for data it cannot use."""
    name = sse.event
    if name == "put":
        body = await parse_json(sse.data)
        if not isinstance(body, dict):
            raise ProtocolError("put: data must be a JSON object")
        return fdv1_full(body.get("data"), max_changes=max_changes)
    if name == "patch":
        return fdv1_patch(await parse_json(sse.data))
    if name == "delete":
        return fdv1_delete(await parse_json(sse.data))
    logger.debug("Ignoring unexpected FDv1 stream event %r", name)
    return None
