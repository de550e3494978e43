"""What the service's ASGI app needs of its server.

``_app`` (which needs Starlette) names the server only through
:class:`Host`, so the server can import the app lazily without the two
modules importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextlib import AbstractContextManager

    from starlette.types import Receive, Send

    from aioflags._core._json import JSONObject

    from ._console import Console
    from ._faults import Fault
    from ._flagset import FlagSet
    from ._limits import Limits
    from ._ofrep import DataSource

__all__ = ["Host"]


class Host(Protocol):
    """The server an app answers for (``FlagServer``)."""

    url: str
    clock_skew: float
    #: What the server accepts (``Limits``).
    limits: Limits
    _console: Console
    _ofrep: DataSource
    #: The flags and segments, and the bodies written from them.
    _data: FlagSet

    @property
    def host(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def _flags(self) -> dict[str, JSONObject]: ...

    @property
    def flags(self) -> dict[str, JSONObject]: ...

    @property
    def segments(self) -> dict[str, JSONObject]: ...

    def set_flag(self, key: str, flag: JSONObject) -> None: ...

    def _handling(self) -> AbstractContextManager[None]: ...

    def _sdk_polled(self, headers: Mapping[str, str]) -> None: ...

    async def _receive_events(
        self, path: str, headers: Mapping[str, str], body: bytes
    ) -> int: ...

    async def _stream(
        self,
        path: str,
        query: Mapping[str, str],
        request_headers: Mapping[str, str],
        fault: Fault | None,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
    ) -> None: ...
