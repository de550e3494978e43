"""What every network source shares: status classification, the directive, errors.

httpx and httpx-sse errors are translated here, at one boundary, into
:class:`ErrorInfo` values the data system understands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

from aioflags._datatypes import ErrorInfo, ErrorKind
from aioflags._json import parse

if TYPE_CHECKING:
    import httpx

    from aioflags._datasystem import SourceContext
    from aioflags._json import JSONValue

__all__ = [
    "FALLBACK_HEADER",
    "HttpOutcome",
    "error_for_status",
    "fallback_directive",
    "is_recoverable",
    "parse_json",
]

FALLBACK_HEADER: Final = "X-LD-FD-Fallback"
ENV_ID_HEADER: Final = "X-LD-EnvID"
_THREAD_PARSE_BYTES: Final = 256 * 1024  # parse bigger bodies off the event loop


def is_recoverable(status: int) -> bool:
    """400, 408, 429 and everything outside 4xx are recoverable (protocol.md §9)."""
    return not 400 <= status <= 499 or status in (400, 408, 429)


def fallback_directive(headers: httpx.Headers) -> bool:
    """Whether the response carries ``X-LD-FD-Fallback: true`` (exactly ``true``)."""
    value: str | None = headers.get(FALLBACK_HEADER)
    return value == "true"


def environment_id(headers: httpx.Headers) -> str | None:
    """The ``X-LD-EnvID`` header, if present."""
    value: str | None = headers.get(ENV_ID_HEADER)
    return value


def error_for_status(ctx: SourceContext, status: int, what: str) -> ErrorInfo:
    """The error for an HTTP status, marked fatal for the configured fatal codes."""
    recoverable = is_recoverable(status) and status not in ctx.config.fatal_status_codes
    reason = " (invalid SDK key)" if status in (401, 403) else ""
    tail = "will retry" if recoverable else "giving up permanently"
    return ErrorInfo(
        kind=ErrorKind.ERROR_RESPONSE,
        status_code=status,
        message=f"Received HTTP error {status}{reason} for {what} - {tail}",
        time=ctx.clock.now(),
        fatal=status in ctx.config.fatal_status_codes,
    )


def status_failure(
    ctx: SourceContext, status: int, what: str
) -> tuple[ErrorInfo, bool]:
    """The error for an HTTP error status, and whether to retry (not for fatal codes)."""
    error = error_for_status(ctx, status, what)
    return error, is_recoverable(status) and not error.fatal


def network_error(ctx: SourceContext, exc: BaseException, what: str) -> ErrorInfo:
    """The error for a transport failure (refused, reset, timeout, DNS...)."""
    detail = str(exc) or type(exc).__name__
    return ErrorInfo(
        kind=ErrorKind.NETWORK_ERROR,
        message=f"{what} failed: {detail}",
        time=ctx.clock.now(),
    )


def invalid_data(ctx: SourceContext, exc: BaseException, what: str) -> ErrorInfo:
    """The error for a payload that cannot be used."""
    return ErrorInfo(
        kind=ErrorKind.INVALID_DATA,
        message=f"invalid data from {what}: {exc}",
        time=ctx.clock.now(),
    )


async def parse_json(body: bytes | str) -> JSONValue:
    """Strict JSON (:func:`aioflags._json.parse`), off the event loop for large bodies.

    Raises:
        ProtocolError: the body is not UTF-8, not JSON, or nested too deeply.
    """
    if len(body) < _THREAD_PARSE_BYTES:
        return parse(body)
    return await anyio.to_thread.run_sync(parse, body, abandon_on_cancel=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpOutcome:
    """One polling request's result."""

    body: JSONValue = None
    not_modified: bool = False
    error: ErrorInfo | None = None
    recoverable: bool = True
    fallback: bool = False
    environment_id: str | None = None
