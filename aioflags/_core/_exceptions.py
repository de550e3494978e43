"""The exceptions aioflags raises.

The tree (mirrored in ``docs/exceptions.md``)::

    AioflagsError
    ├── ConfigurationError     bad configuration, raised when it is constructed
    ├── ClientClosedError      a client used after it was closed, or restarted
    │                          after it failed for good
    └── SourceError            a source reports its failure by raising it
        └── ProtocolError      the flag service sent data that cannot be used

Application code meets only the first two. ``SourceError`` is for the authors
of sources (:mod:`aioflags.sources`): a source that raises it ends with a
reason, logged and reported in the data-source status as a failure of that
source, not as a bug (no traceback). aioflags' own sources raise
``ProtocolError`` at their parsing boundary and report it the same way.

Evaluation never raises for bad data, a missing flag or a wrong type: it returns
the default value with an ``ERROR`` reason. Exceptions are for programmer errors
and lifecycle misuse.
"""

from __future__ import annotations

from typing import final

__all__ = [
    "AioflagsError",
    "ClientClosedError",
    "ConfigurationError",
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
    """The client's lifecycle does not allow the call.

    Raised when a FATAL client (an invalid SDK key) is started again, when
    the client is closed while it is starting, when an
    :class:`aioflags.blocking.Client` is used before it was started, and
    when the client closes while ``wait_for_status()`` waits.
    """


class SourceError(AioflagsError):
    """Raised by a data source to end with a reason; never reaches the application.

    The supervisor logs ``str(exc)`` as a warning (no traceback) and reports
    it in the data-source status: as an ``ERROR_RESPONSE`` with
    ``status_code`` when one is given, else a ``NETWORK_ERROR``
    (:class:`ProtocolError`: ``INVALID_DATA``). The source is then treated
    as having failed: an initializer is followed by the next one, a
    synchronizer is dropped, the FDv1 source stops.

    Attributes:
        status_code: the HTTP status code involved, or 0 when there was none.
    """

    def __init__(self, message: str, *, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code


@final
class ProtocolError(SourceError):
    """The flag service sent something aioflags cannot understand."""
