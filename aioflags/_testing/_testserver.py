"""FlagServer: a real HTTP server on 127.0.0.1 that speaks FDv2 and FDv1.

Built on h11 over anyio (h11 already comes with httpx: no new dependency).
It serves an in-memory flag set, pushes changes to open streams, injects
faults per endpoint, and records every request and every connection's open and
close, with awaitable waits so tests never sleep. Under ``/ui/`` it serves the
flag console (``_console.py``).
"""

from __future__ import annotations

import email.utils
import gzip
import json
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, final
from urllib.parse import parse_qs, urlsplit

import anyio
import h11

from aioflags._client._config import Config
from aioflags._core._clock import wall_ms
from aioflags._core._lifespan import Span, background_group
from aioflags._datasystem._datatypes import Change, ChangeKind
from aioflags._datasystem._sources._versions import same_content

from . import _console as console
from . import _wire as wire

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from anyio.abc import SocketStream, TaskGroup
    from anyio.streams.memory import MemoryObjectSendStream

    from aioflags._core._json import JSONObject, JSONValue

__all__ = ["Fault", "FlagServer", "RecordedRequest"]

#: The test tools' own logger: silence it alone without losing the client's.
logger = logging.getLogger("aioflags.testing")

FDV2_POLL: Final = "/sdk/poll"
FDV2_STREAM: Final = "/sdk/stream"
FDV1_POLL: Final = "/sdk/latest-all"
FDV1_STREAM: Final = "/all"
EVENTS_BULK: Final = "/bulk"
EVENTS_DIAGNOSTIC: Final = "/diagnostic"
_STREAMS: Final = (FDV2_STREAM, FDV1_STREAM)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """How the server misbehaves for one request to an endpoint.

    Attributes:
        status: answer with this status instead (the normal body is replaced by
            ``body`` or an error message).
        headers: extra response headers (e.g. ``{"X-LD-FD-Fallback": "true"}``).
        delay: seconds to wait before answering.
        hang: never answer (the connection stays open until the client closes it).
        body: raw body bytes instead of the normal payload (malformed JSON...).
        events: raw SSE text to send on a stream instead of the normal payload.
        close_after_events: on a stream, end the response cleanly after sending
            the payload (or ``events``) instead of keeping it open.
        abort_after_events: on a stream, drop the connection mid-body after
            sending the payload (or ``events``).
        hang_after_events: on a stream, stop sending anything but keep the
            connection open after the payload (or ``events``).
    """

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False
    body: bytes | None = None
    events: str | None = None
    close_after_events: bool = False
    abort_after_events: bool = False
    hang_after_events: bool = False


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    connection: int
    body: bytes = b""

    def json(self) -> JSONValue:
        """The body parsed as JSON."""
        value: JSONValue = json.loads(self.body)
        return value


_CLOSE: Final = (
    "\x00close"  # sentinels pushed to a stream's queue (compared by identity)
)
_ABORT: Final = "\x00abort"
#: A console page's "the state changed": its state is written when sent, so a
#: page that reads slowly gets the latest state once, not every one queued.
_STATE: Final = "\x00state"


async def _until_client_closes(stream: SocketStream) -> None:
    """Read and discard until the client closes its end (a hang that sees hang-ups)."""
    try:
        while await stream.receive():
            pass
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


@final
class FlagServer:
    """A flag service on 127.0.0.1, for tests and ``python -m aioflags serve``.

    Use it as an async context manager; ``url`` is set once it is listening::

        async with FlagServer(flags={"my-flag": flag_json}) as server:
            config = server.config()  # flags and events from and to this server

    ``url + "/ui/"`` is its flag console: a page that lists the flags, flips
    them and shows what connected SDKs evaluated (see docs/console.md).

    ``keep``: remember only the last ``keep`` requests (``requests``), event
    payloads and diagnostic events (None, the default: all of them, as tests
    want). ``aioflags serve`` keeps 1000, so its memory stays bounded. Bound to
    loopback, the server refuses (403) a request whose ``Host`` is not a
    loopback name (DNS rebinding), and every server refuses an event post from
    a web page of another site.

    Added in version 0.1.0.
    """

    def __init__(
        self,
        flags: Mapping[str, JSONObject] | None = None,
        segments: Mapping[str, JSONObject] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keep: int | None = None,
    ) -> None:
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be at least 1 or None, not {keep!r}")
        self._host = host
        self._keep = keep
        self._port = port
        self._flags: dict[str, JSONObject] = {}
        self._segments: dict[str, JSONObject] = {}
        self._version = 1
        for key, flag in (flags or {}).items():
            self._flags[key] = {"key": key, "version": 1, **flag}
        for key, seg in (segments or {}).items():
            self._segments[key] = {"key": key, "version": 1, **seg}
        self.requests: list[RecordedRequest] = []
        self.connections_opened: int = 0
        self.connections_closed: int = 0
        self._open_streams: dict[int, str] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._sticky: dict[str, Fault] = {}
        self._subscribers: dict[int, tuple[str, MemoryObjectSendStream[str]]] = {}
        self._changed: anyio.Event | None = None
        self._tg: TaskGroup | None = None
        self._span: AbstractAsyncContextManager[Span] | None = None
        self._entering = False
        self.url: str = ""
        #: Seconds added to the clock in the ``Date`` header of event responses
        #: (analytics debug windows compare with the server's clock).
        self.clock_skew: float = 0.0
        self._payloads: list[list[JSONObject]] = []
        self._payload_ids: dict[str, None] = {}  # in arrival order (to forget)
        self._diagnostics: list[JSONObject] = []
        self._console = console.Console(host)

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> FlagServer:
        if self._span is not None or self._entering:
            raise RuntimeError("this FlagServer is already running")
        self._entering = True  # claimed before the first await
        try:
            listener = await anyio.create_tcp_listener(
                local_host=self._host, local_port=self._port
            )
        finally:
            self._entering = False
        span = background_group()
        try:
            # The span enters no checkpoint before it yields: nothing can be
            # cancelled between creating the listener and handing it over.
            self._tg = (await span.__aenter__()).tg
        except BaseException:
            await listener.aclose()
            raise
        self._span = span
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self.url = f"http://{self._host}:{port}"
        logger.info("FlagServer listening on %s", self.url, extra={"url": self.url})
        self._tg.start_soon(self._serve, listener)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        span, self._span, self._tg = self._span, None, None
        if span is None:
            return None
        return await span.__aexit__(exc_type, exc, tb)

    async def _serve(self, listener: anyio.abc.Listener[SocketStream]) -> None:
        async with listener:
            await listener.serve(self._connection, task_group=self._tg)

    def config(self, sdk_key: str = "sdk-key", /, **options: Any) -> Config:
        """A :class:`~aioflags.Config` that takes flags from and sends events to this server.

        ``base_uri``, ``stream_uri`` and ``events_uri`` are this server's
        ``url``; ``options`` are any other ``Config`` arguments (they may
        override those three too). Call it once the server is listening.

        Added in version 0.1.0.
        """
        if not self.url:
            raise RuntimeError("this FlagServer is not listening yet: enter it first")
        uris = {"base_uri": self.url, "stream_uri": self.url, "events_uri": self.url}
        return Config(sdk_key, **{**uris, **options})

    # ---------------------------------------------------------------- data
    @property
    def state(self) -> str:
        """The FDv2 payload state of the current data (changes with every edit)."""
        return f"(p:aioflags-test:{self._version})"

    @property
    def flags(self) -> dict[str, JSONObject]:
        """A copy of the current flags."""
        return {k: dict(v) for k, v in self._flags.items()}

    @property
    def segments(self) -> dict[str, JSONObject]:
        """A copy of the current segments."""
        return {k: dict(v) for k, v in self._segments.items()}

    def set_flag(self, key: str, flag: JSONObject) -> None:
        """Create or replace a flag and push it to every open stream."""
        self._put("flag", key, flag)

    def set_segment(self, key: str, segment: JSONObject) -> None:
        """Create or replace a segment and push it to every open stream."""
        self._put("segment", key, segment)

    def delete_flag(self, key: str) -> None:
        """Delete a flag and push the deletion to every open stream."""
        self._delete("flag", key)

    def delete_segment(self, key: str) -> None:
        """Delete a segment and push the deletion to every open stream."""
        self._delete("segment", key)

    def apply_change(self, change: Change) -> None:
        """Apply one data-system change (a put or a delete), as ``FlagData`` does."""
        kind = change.kind.value
        if change.action is ChangeKind.DELETE:
            self._delete(kind, change.key)
        else:
            assert change.obj is not None
            self._put(kind, change.key, change.obj)

    def _delete(self, kind: str, key: str) -> None:
        self._version += 1
        (self._flags if kind == "flag" else self._segments).pop(key, None)
        self._push(
            wire.fdv2_delete(kind, key, self.state, self._version),
            wire.fdv1_delete(kind, key, self._version),
        )

    def replace_all(
        self,
        flags: Mapping[str, JSONObject],
        segments: Mapping[str, JSONObject] | None = None,
    ) -> None:
        """Replace the whole data set; open streams get a full transfer.

        Items whose content is unchanged keep their version; the others get
        a new one, so clients announce exactly the flags that changed.
        """
        self._version += 1
        self._flags = self._reversioned(self._flags, flags)
        self._segments = self._reversioned(self._segments, segments or {})
        self._push(self._fdv2_full(), wire.fdv1_put(self._flags, self._segments))

    def _reversioned(
        self, old: dict[str, JSONObject], new: Mapping[str, JSONObject]
    ) -> dict[str, JSONObject]:
        items: dict[str, JSONObject] = {}
        for key, obj in new.items():
            item = {**obj, "key": key, "version": self._version}
            before = old.get(key)
            items[key] = (
                before if before is not None and same_content(before, item) else item
            )
        return items

    def _put(self, kind: str, key: str, obj: JSONObject) -> None:
        self._version += 1
        item = {**obj, "key": key, "version": self._version}
        (self._flags if kind == "flag" else self._segments)[key] = item
        self._push(
            wire.fdv2_put(kind, item, self.state, self._version),
            wire.fdv1_patch(kind, item),
        )

    def disconnect_streams(self, *, abort: bool = False) -> None:
        """End every open stream: cleanly, or by dropping the socket mid-body."""
        for _, send in self._subscribers.values():
            send.send_nowait(_ABORT if abort else _CLOSE)

    def _push(self, fdv2: str, fdv1: str) -> None:
        for path, send in self._subscribers.values():
            if path != console.EVENTS:
                send.send_nowait(fdv2 if path == FDV2_STREAM else fdv1)
        self._push_console()

    def _push_console(self) -> None:
        """Tell every open console page that the state changed (at most one pending)."""
        for path, send in self._subscribers.values():
            if path == console.EVENTS and not send.statistics().current_buffer_used:
                send.send_nowait(_STATE)

    def _objects(self) -> list[tuple[str, JSONObject]]:
        return [("flag", f) for f in self._flags.values()] + [
            ("segment", s) for s in self._segments.values()
        ]

    def _fdv2_full(self) -> str:
        return wire.fdv2_full(self._objects(), self.state, self._version)

    # -------------------------------------------------------------- faults
    def fail(self, path: str, fault: Fault | None = None, /, **kwargs: object) -> None:
        """Apply ``fault`` (or ``Fault(**kwargs)``) to every request to ``path`` until cleared."""
        self._sticky[path] = fault or Fault(**kwargs)  # type: ignore[arg-type]

    def script(self, path: str, *faults: Fault) -> None:
        """Answer the next requests to ``path`` with these faults, in order, then normally."""
        self._faults.setdefault(path, []).extend(faults)

    def clear_faults(self, path: str | None = None) -> None:
        """Remove the faults of ``path`` (or of every endpoint)."""
        if path is None:
            self._faults.clear()
            self._sticky.clear()
        else:
            self._faults.pop(path, None)
            self._sticky.pop(path, None)

    def _fault_for(self, path: str) -> Fault | None:
        queue = self._faults.get(path)
        if queue:
            return queue.pop(0)
        return self._sticky.get(path)

    # --------------------------------------------------------------- waits
    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is re-checked on every server event."""
        while not predicate():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to ``path``."""
        return [r for r in self.requests if r.path == path]

    async def wait_for_requests(self, path: str, count: int = 1) -> RecordedRequest:
        """Wait until ``path`` has had ``count`` requests; return the last one."""
        await self.wait_until(lambda: len(self.requests_to(path)) >= count)
        return self.requests_to(path)[count - 1]

    def open_streams(self, path: str | None = None) -> int:
        """How many stream connections are open (to ``path``, or to either SDK stream).

        A console page's event stream (``/ui/api/events``) counts only when asked by path.
        """
        return sum(
            1
            for p in self._open_streams.values()
            if p == path or (path is None and p in _STREAMS)
        )

    async def wait_for_stream(self, path: str = FDV2_STREAM) -> None:
        """Wait until a stream to ``path`` is open."""
        await self.wait_until(lambda: self.open_streams(path) > 0)

    async def wait_for_streams_closed(self, path: str | None = None) -> None:
        """Wait until every stream connection (to ``path``) has been closed by the client."""
        await self.wait_until(lambda: self.open_streams(path) == 0)

    # ------------------------------------------------------ analytics events
    @property
    def events(self) -> list[JSONObject]:
        """Every analytics event received on ``/bulk``, in arrival order.

        A payload is counted once even if the SDK retried it (same
        ``X-LaunchDarkly-Payload-ID``), as LaunchDarkly does.
        """
        return [dict(e) for payload in self._payloads for e in payload]

    @property
    def event_payloads(self) -> list[list[JSONObject]]:
        """The ``/bulk`` payloads (one per flush), in arrival order."""
        return [[dict(e) for e in payload] for payload in self._payloads]

    @property
    def diagnostic_events(self) -> list[JSONObject]:
        """Every diagnostic event received on ``/diagnostic``."""
        return [dict(e) for e in self._diagnostics]

    def events_of(self, kind: str) -> list[JSONObject]:
        """The received analytics events of one ``kind`` (``"feature"``, ``"summary"``...)."""
        return [e for e in self.events if e.get("kind") == kind]

    def clear_events(self) -> None:
        """Forget the analytics and diagnostic events received so far."""
        self._payloads.clear()
        self._diagnostics.clear()

    async def wait_for_events(
        self, count: int = 1, *, kind: str | None = None
    ) -> list[JSONObject]:
        """Wait until ``count`` analytics events (of ``kind``) have arrived; return them all."""
        await self.wait_until(
            lambda: len(self.events if kind is None else self.events_of(kind)) >= count
        )
        return self.events if kind is None else self.events_of(kind)

    async def wait_for_payloads(self, count: int = 1) -> list[list[JSONObject]]:
        """Wait until ``count`` ``/bulk`` payloads have arrived; return them all."""
        await self.wait_until(lambda: len(self._payloads) >= count)
        return self.event_payloads

    def _receive_events(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """Record an event post; the HTTP status to answer."""
        try:
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            data = json.loads(body)
        except (OSError, EOFError, ValueError):
            return 400
        if path == EVENTS_DIAGNOSTIC:
            if not isinstance(data, dict):
                return 400
            self._diagnostics.append(data)
            self._trim(self._diagnostics)
            return 202
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            return 400
        payload_id = headers.get("x-launchdarkly-payload-id")
        if payload_id is not None:
            if payload_id in self._payload_ids:
                return 202  # a retry of a payload already received
            self._payload_ids[payload_id] = None
            if self._keep is not None and len(self._payload_ids) > self._keep:
                del self._payload_ids[next(iter(self._payload_ids))]
        self._payloads.append(data)
        self._trim(self._payloads)
        if self._console.record(data):
            self._push_console()
        return 202

    def _trim(self, kept: list[Any]) -> None:
        """Forget the oldest items beyond ``keep``."""
        if self._keep is not None and len(kept) > self._keep:
            del kept[: len(kept) - self._keep]

    def _date(self) -> bytes:
        now = wall_ms() / 1000 + self.clock_skew
        return email.utils.formatdate(now, usegmt=True).encode()

    # -------------------------------------------------------- connections
    async def _connection(self, stream: SocketStream) -> None:
        self.connections_opened += 1
        number = self.connections_opened
        self._notify()
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while True:
                    received = await self._read_request(conn, stream)
                    if received is None:
                        return
                    request, body = received
                    keep = await self._respond(conn, stream, request, number, body)
                    if not keep or conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            h11.ProtocolError,
        ):
            return
        finally:
            self._open_streams.pop(number, None)
            self.connections_closed += 1
            self._notify()

    async def _read_request(
        self, conn: h11.Connection, stream: SocketStream
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive(65536)
                except anyio.EndOfStream:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _send(
        self, conn: h11.Connection, stream: SocketStream, event: h11.Event
    ) -> None:
        data = conn.send(event)
        if data:
            await stream.send(data)

    async def _respond(
        self,
        conn: h11.Connection,
        stream: SocketStream,
        request: h11.Request,
        number: int,
        body: bytes = b"",
    ) -> bool:
        target = urlsplit(request.target.decode())
        path = target.path
        query = {
            k: v[0] for k, v in parse_qs(target.query, keep_blank_values=True).items()
        }
        # Latin-1 is HTTP's own: any byte decodes (h11 has checked the rest).
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers
        }
        self.requests.append(
            RecordedRequest(
                method=request.method.decode(),
                path=path,
                query=query,
                headers=headers,
                connection=number,
                body=body,
            )
        )
        self._trim(self.requests)
        self._notify()
        is_console = path == console.PREFIX or path.startswith(f"{console.PREFIX}/")
        if not is_console and self._refused(path, request.method, headers):
            await self._reply(conn, stream, 403, b'{"message": "refused"}')
            return True
        fault = self._fault_for(path)
        logger.debug(
            "FlagServer %s: %s %s%s",
            self.url,
            request.method.decode(),
            path,
            "" if fault is None else f" ({fault!r})",
            extra={"url": f"{self.url}{path}", "fault": fault is not None},
        )
        if fault is not None and fault.delay:
            await anyio.sleep(fault.delay)
        if fault is not None and fault.hang:
            await _until_client_closes(stream)
            return False
        extra = [
            (k.encode(), v.encode())
            for k, v in (fault.headers if fault else {}).items()
        ]
        if fault is not None and fault.status is not None:
            body = (
                fault.body
                if fault.body is not None
                else f"fault injected: HTTP {fault.status}".encode()
            )
            if path in (EVENTS_BULK, EVENTS_DIAGNOSTIC):
                extra = [(b"date", self._date()), *extra]
            await self._reply(conn, stream, fault.status, body, b"text/plain", extra)
            return True
        if path in _STREAMS:
            await self._stream(conn, stream, path, query, fault, extra, number)
            return False
        if is_console:
            method = request.method.decode()
            reply = self._console.respond(self, method, path, headers, body)
            if reply is None:  # the console page's event stream
                extra = [*console.HEADERS, *extra]
                await self._stream(conn, stream, path, query, fault, extra, number)
                return False
            extra = [*reply.headers, *extra]
            await self._reply(
                conn, stream, reply.status, reply.body, reply.content_type, extra
            )
            return True
        if path in (EVENTS_BULK, EVENTS_DIAGNOSTIC) and request.method == b"POST":
            status = self._receive_events(path, headers, body)
            self._notify()
            await self._reply(
                conn, stream, status, b"", extra=[(b"date", self._date()), *extra]
            )
            return True
        if path == FDV2_POLL:
            poll = wire.fdv2_poll_body(
                self._objects(), self.state, self._version, query.get("basis")
            )
            payload = json.dumps(poll).encode()
        elif path == FDV1_POLL:
            payload = json.dumps(wire.fdv1_body(self._flags, self._segments)).encode()
        else:
            await self._reply(conn, stream, 404, b'{"message": "not found"}')
            return True
        etag = f'"{self._version}"'.encode()
        if headers.get("if-none-match") == etag.decode() and (
            fault is None or fault.body is None
        ):
            await self._send(
                conn,
                stream,
                h11.Response(status_code=304, headers=[(b"etag", etag), *extra]),
            )
            await self._send(conn, stream, h11.EndOfMessage())
            return True
        body = fault.body if fault is not None and fault.body is not None else payload
        await self._reply(conn, stream, 200, body, extra=[(b"etag", etag), *extra])
        return True

    def _refused(self, path: str, method: bytes, headers: Mapping[str, str]) -> bool:
        """Whether to refuse an SDK request: DNS rebinding, or a foreign page's event post."""
        if console.is_loopback_bind(self._host) and not console.is_loopback_host(
            headers.get("host")
        ):
            return True
        return (
            path in (EVENTS_BULK, EVENTS_DIAGNOSTIC)
            and method == b"POST"
            and console.foreign_events_post(headers, self._host)
        )

    async def _reply(
        self,
        conn: h11.Connection,
        stream: SocketStream,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """A complete response with a body."""
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
        ]
        await self._send(
            conn,
            stream,
            h11.Response(status_code=status, headers=[*headers, *(extra or [])]),
        )
        await self._send(conn, stream, h11.Data(data=body))
        await self._send(conn, stream, h11.EndOfMessage())

    async def _stream(
        self,
        conn: h11.Connection,
        stream: SocketStream,
        path: str,
        query: dict[str, str],
        fault: Fault | None,
        extra: list[tuple[bytes, bytes]],
        number: int,
    ) -> None:
        if fault is not None and fault.events is not None:
            first = fault.events
        elif path == console.EVENTS:
            first = self._console.state_event(self._flags)
        elif path == FDV2_STREAM:
            if query.get("basis") == self.state:
                first = wire.fdv2_up_to_date(self._version)
            else:
                first = self._fdv2_full()
        else:
            first = wire.fdv1_put(self._flags, self._segments)
        # The first payload is computed and the subscriber registered in one step
        # (no await between): every later change is pushed after that payload.
        # Created right before the try that closes it: nothing between can raise.
        send, recv = anyio.create_memory_object_stream[str](math.inf)
        self._subscribers[number] = (path, send)
        try:
            async with anyio.create_task_group() as tg:

                async def watch_close() -> None:
                    # The client closing its socket ends the stream at once.
                    try:
                        while await stream.receive():
                            pass
                    except (
                        anyio.EndOfStream,
                        anyio.BrokenResourceError,
                        anyio.ClosedResourceError,
                    ):
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_close)
                await self._send(
                    conn,
                    stream,
                    h11.Response(
                        status_code=200,
                        headers=[
                            (b"content-type", b"text/event-stream"),
                            (b"cache-control", b"no-cache"),
                            *extra,
                        ],
                    ),
                )
                await self._send(conn, stream, h11.Data(data=first.encode()))
                # Open (for wait_for_stream) once the client has its first payload.
                self._open_streams[number] = path
                self._notify()
                if fault is not None and fault.close_after_events:
                    await self._send(conn, stream, h11.EndOfMessage())
                    tg.cancel_scope.cancel()
                    return
                if fault is not None and fault.abort_after_events:
                    tg.cancel_scope.cancel()  # drop the socket mid-body
                    return
                if fault is not None and fault.hang_after_events:
                    await anyio.sleep_forever()
                async for text in recv:
                    if text is _CLOSE:
                        await self._send(conn, stream, h11.EndOfMessage())
                        tg.cancel_scope.cancel()
                        return
                    if text is _ABORT:
                        tg.cancel_scope.cancel()
                        return
                    if text is _STATE:
                        text = self._console.state_event(self._flags)
                    await self._send(conn, stream, h11.Data(data=text.encode()))
        finally:
            self._subscribers.pop(number, None)
            send.close()
            recv.close()
