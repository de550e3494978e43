"""The exceptions aioflags raises.

The tree (mirrored in ``docs/exceptions.md``)::

    AioflagsError
    ├── ConfigurationError     bad configuration, raised eagerly at construction
    ├── ClientClosedError      a client used outside its ``async with`` / after close
    ├── NotReadyError          a deadline passed before the client was ready
    └── SourceError            a data source failed (reported through the status,
        ├── ConnectError       never raised into application code by the SDK)
        ├── AuthenticationError
        └── ProtocolError      a bad payload or SSE frame

Evaluation never raises for bad data, a missing flag or a wrong type: it returns
the default value with an ``ERROR`` reason. Exceptions are for programmer errors
and lifecycle misuse.
"""

from __future__ import annotations

from typing import final

__all__ = [
    "AioflagsError",
    "AuthenticationError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "NotReadyError",
    "ProtocolError",
    "SourceError",
]


class AioflagsError(Exception):
    """The base class of every exception aioflags raises."""


@final
class ConfigurationError(AioflagsError, ValueError):
    """The configuration is invalid; raised when it is constructed."""


@final
class ClientClosedError(AioflagsError, RuntimeError):
    """The client was used after it was closed, or before it was started."""


@final
class NotReadyError(AioflagsError, TimeoutError):
    """A deadline passed before the client reached a ready status."""


class SourceError(AioflagsError):
    """A data source failed. Reported through the status, never raised to the app.

    Attributes:
        status_code: the HTTP status code involved, or 0 when there was none.
    """

    def __init__(self, message: str, *, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code


@final
class ConnectError(SourceError):
    """The flag service could not be reached, or the connection broke."""


@final
class AuthenticationError(SourceError):
    """The flag service rejected the SDK key (HTTP 401 or 403)."""


@final
class ProtocolError(SourceError):
    """The flag service sent something aioflags cannot understand."""
