"""What the service's ASGI app needs of its server, and what both speak of.

``_app`` (which needs Starlette) names the server only through
:class:`Host`, so the server can import the app lazily without the two
modules importing each other; :class:`Fault` and :class:`RecordedRequest`
live here for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, final

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextlib import AbstractContextManager

    from starlette.types import Receive, Send

    from aioflags._core._json import JSONObject, JSONValue

    from ._console import Console
    from ._limits import Limits
    from ._ofrep import DataSource

__all__ = ["ASGIApp", "Fault", "Host", "RecordedRequest", "RequestInfo"]

#: An ASGI application (Hypercorn and Starlette each spell it their own way).
ASGIApp: TypeAlias = Any


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


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the pipeline learnt of a request, for its route."""

    request_id: int
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    fault: Fault | None


class Host(Protocol):
    """The server an app answers for (``FlagServer``)."""

    url: str
    clock_skew: float
    #: What the server accepts (``Limits``).
    limits: Limits
    _console: Console
    _ofrep: DataSource
    _version: int
    _flags: dict[str, JSONObject]

    @property
    def state(self) -> str: ...

    @property
    def flags(self) -> dict[str, JSONObject]: ...

    @property
    def segments(self) -> dict[str, JSONObject]: ...

    def set_flag(self, key: str, flag: JSONObject) -> None: ...

    def _objects(self) -> list[tuple[str, JSONObject]]: ...

    def _request_started(self, client_port: int | None) -> tuple[int, int]: ...

    def _handling(self) -> AbstractContextManager[None]: ...

    def _refused(self, path: str, method: str, headers: Mapping[str, str]) -> bool: ...

    def _record(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        connection: int,
        body: bytes,
    ) -> None: ...

    def _fault_for(self, path: str) -> Fault | None: ...

    def _fdv1_poll_body(self) -> bytes: ...

    def _fdv2_poll_body(self, basis: str | None) -> bytes: ...

    def _sdk_polled(self, headers: Mapping[str, str]) -> None: ...

    async def _receive_events(
        self, path: str, headers: Mapping[str, str], body: bytes
    ) -> int: ...

    async def _stream(
        self,
        path: str,
        info: RequestInfo,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
    ) -> None: ...
