"""What every network source shares: status classification, the directive, errors.

httpx and httpx-sse errors, HTTP error statuses and unusable payloads are
translated here, at one boundary (:func:`failure`), into :class:`ErrorInfo`
values the data system understands, with messages that name the URL, the
status or the root cause, and what to do.
"""

from __future__ import annotations

import socket
import ssl
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import anyio
import httpx
from httpx_sse import SSEError

from aioflags._core._checks import check_seconds, check_url
from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import parse, parse_or_cut
from aioflags._core._logname import client_logger
from aioflags._core._threads import sdk_limiter
from aioflags._datasystem._datatypes import ErrorInfo, ErrorKind

from ._body import ACCEPT_ENCODING

if sys.version_info < (3, 11):  # anyio's own dependency there
    from exceptiongroup import ExceptionGroup

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aioflags._core._json import JSONValue
    from aioflags._datasystem._context import SourceContext

__all__ = [
    "FALLBACK_HEADER",
    "HttpOutcome",
    "PollTimeout",
    "check_source_options",
    "data_params",
    "display_url",
    "failure",
    "fallback_directive",
    "is_recoverable",
    "parse_json",
    "parse_json_or_cut",
    "poll_interval",
    "root_cause",
    "send",
]

logger = client_logger("aioflags.datasource")

FALLBACK_HEADER: Final = "X-LD-FD-Fallback"
ENV_ID_HEADER: Final = "X-LD-EnvID"
#: LaunchDarkly's own service asks for no more than one poll every 30 s.
POLL_FLOOR: Final = 30.0
_LAUNCHDARKLY_HOSTS: Final = ("launchdarkly.com", "launchdarkly.us")
_floor_warned: set[str] = set()
#: Seconds to close a response in, even when the source is being cancelled.
_CLOSE_TIMEOUT: Final = 1.0
#: What sending a request raises besides httpx's own errors: a redirect to a
#: URL httpx cannot use (``data:,x``: InvalidURL), a header value that does
#: not encode (UnicodeError), a port out of range from the socket layer
#: (OverflowError, inside anyio's ExceptionGroup).
_REQUEST_ERRORS: Final = (httpx.InvalidURL, UnicodeError, OverflowError)
_GROUPED_ERRORS: Final = (httpx.HTTPError, *_REQUEST_ERRORS)


class PollTimeout(TimeoutError):
    """A request did not end within its deadline (``connect_timeout + read_timeout``)."""


def data_params(ctx: SourceContext) -> dict[str, str]:
    """Query parameters every data request carries (``filter`` first, protocol.md §1)."""
    key = ctx.config.payload_filter_key
    return {"filter": key} if key else {}


def check_source_options(
    factory: str,
    *,
    base_uri: object = None,
    interval: object = None,
    initial_retry_delay: object = None,
) -> None:
    """A network source's options, checked when its factory is made, not when it runs.

    ``None`` is "the Config's"; anything else must be an http(s) URL or a
    number of seconds > 0. The message names the factory and the option.
    """
    if base_uri is not None:
        check_url(f"{factory}(base_uri=...)", base_uri)
    for name, value in (
        ("interval", interval),
        ("initial_retry_delay", initial_retry_delay),
    ):
        if value is not None:
            check_seconds(f"{factory}({name}=...)", value)


def poll_interval(ctx: SourceContext, url: str, interval: float | None) -> float:
    """The polling interval for ``url``: at least 30 s against LaunchDarkly's service.

    Relays, ``FlagServer`` and other services of your own may be polled as
    often as you like; LaunchDarkly's hosts cannot be polled faster by
    accident (the interval is raised with one warning).
    """
    every = interval or ctx.config.poll_interval
    host = urlsplit(url).hostname or ""
    if every < POLL_FLOOR and (
        host in _LAUNCHDARKLY_HOSTS
        or host.endswith(tuple(f".{h}" for h in _LAUNCHDARKLY_HOSTS))
    ):
        if host not in _floor_warned:
            _floor_warned.add(host)
            logger.warning(
                "polling %s every %g s is below LaunchDarkly's minimum: polling every "
                "%g s instead (a relay proxy or a service of your own may be polled faster)",
                host,
                every,
                POLL_FLOOR,
            )
        return POLL_FLOOR
    return every


@asynccontextmanager
async def send(
    ctx: SourceContext,
    url: str,
    *,
    params: dict[str, str],
    headers: dict[str, str],
    timeouts: httpx.Timeout | None = None,
) -> AsyncIterator[httpx.Response]:
    """``GET url``, its response streamed, closed on exit even under cancellation.

    Whatever keeps the request from getting a response is an
    :class:`httpx.HTTPError`: the failures httpx does not translate itself
    are raised as :class:`httpx.TransportError`, caused by the original, so
    a source retries them as it retries a refused connection (protocol.md §3,
    §12.10). Nothing else is caught: a bug still surfaces as itself.

    Raises:
        httpx.HTTPError: no response.
    """
    try:
        request = ctx.http.build_request(
            "GET",
            url,
            params=params,
            # Only what ._body inflates in bounded steps (never br or zstd).
            headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
            timeout=httpx.USE_CLIENT_DEFAULT if timeouts is None else timeouts,
        )
        response = await ctx.http.send(request, stream=True)
    except _REQUEST_ERRORS as exc:
        raise httpx.TransportError(str(exc)) from exc
    except ExceptionGroup as group:
        leaves = _leaves(group)
        if not all(isinstance(leaf, _GROUPED_ERRORS) for leaf in leaves):
            raise
        raise httpx.TransportError(str(leaves[0])) from leaves[0]
    try:
        yield response
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
            await response.aclose()


def _leaves(group: ExceptionGroup[Exception]) -> list[Exception]:
    """The exceptions in ``group`` and in the groups nested in it."""
    return [
        leaf
        for exc in group.exceptions
        for leaf in (_leaves(exc) if isinstance(exc, ExceptionGroup) else [exc])
    ]


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


def display_url(url: httpx.URL | str) -> str:
    """A URL fit for messages: scheme, host, port and path; no credentials, no query.

    The SDK key travels in a header, never in the URL; userinfo (a relay behind
    basic auth) and the query are dropped all the same.
    """
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}{parsed.path}"


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of the chain that caused ``exc``.

    httpx wraps httpcore, which wraps anyio or the socket layer: the useful
    words (``[SSL: WRONG_VERSION_NUMBER]``, ``Connection reset by peer``) are
    at the bottom. ``__cause__`` is always followed. ``__context__`` is followed
    only into the exception a wrapper was built from (httpcore re-raises its
    wrappers ``from None``, which hides the cause) or from a wrapper with no
    message of its own (anyio's ``EndOfStream``): an unrelated exception that
    happened to be handled at the time is not a cause.
    """
    seen = {id(exc)}
    while True:
        inner = exc.__cause__
        if inner is None:
            context = exc.__context__
            if context is not None and (
                not str(exc) or any(arg is context for arg in exc.args)
            ):
                inner = context
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_PLAIN_HTTP_REASONS: Final = frozenset(
    # What OpenSSL reports when the answer to its ClientHello is not TLS.
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
)


def _transport_hint(exc: BaseException, root: BaseException, url: httpx.URL) -> str:
    """What to do about a transport failure, where it is obvious."""
    if isinstance(root, ssl.SSLCertVerificationError):
        return (
            "the server's certificate is not trusted; for a private CA use "
            "Config(verify='/path/to/ca.pem')"
        )
    if isinstance(root, ssl.SSLError) and url.scheme == "https":
        if getattr(root, "reason", None) in _PLAIN_HTTP_REASONS:
            return (
                "the server did not answer with TLS: "
                "is the URL http:// rather than https://?"
            )
        if isinstance(root, ssl.SSLEOFError) and isinstance(exc, httpx.ConnectError):
            return (
                "the server hung up during the TLS handshake: if it serves plain "
                "HTTP, the URL should be http:// rather than https://"
            )
    if isinstance(root, ConnectionRefusedError):
        return (
            "nothing accepted the connection: check the host and port, and that "
            "the flag service or relay proxy is running"
        )
    if isinstance(root, socket.gaierror):
        return "the host name did not resolve: check the URI"
    if isinstance(exc, httpx.ProxyError):
        return "the proxy failed: check Config.proxy"
    if isinstance(exc, httpx.ConnectTimeout):
        return "no connection within Config.connect_timeout: is the host reachable?"
    if isinstance(exc, httpx.ReadTimeout):
        return "the server went silent for longer than the read timeout"
    if isinstance(exc, PollTimeout):
        return (
            "the server answers too slowly: raise Config.read_timeout if the "
            "flag data is large and the link slow"
        )
    return ""


_STATUS_HINTS: Final = {
    401: "check that the SDK key is the server-side SDK key of this environment",
    403: "check that the SDK key is the server-side SDK key of this environment",
    404: "check the base URI (or the relay proxy's path): the server has no such endpoint",
    407: "the proxy wants credentials: put them in Config.proxy",
}


def failure(
    ctx: SourceContext,
    what: str,
    url: httpx.URL | str,
    cause: int | Exception,
) -> tuple[ErrorInfo, bool]:
    """The one translation of a failed request into the error the data system sees.

    Every network source calls it, for every kind of failure, so every message
    names the URL (never the SDK key) and what to do where that is obvious.

    Args:
        ctx: the source's context (config and clock).
        what: the request, e.g. ``"polling request"``.
        url: the request's URL; only scheme, host, port and path are shown.
        cause: an HTTP error status; an httpx transport error (its root cause,
            e.g. the SSL or socket error, is named); an httpx-sse error (the
            response is not an event stream); or a :class:`ProtocolError` for
            data that cannot be used.

    Returns:
        The error, and whether the source should retry.
    """
    where = display_url(url)
    now = ctx.clock.now()
    if isinstance(cause, int):
        fatal = cause in ctx.config.fatal_status_codes
        recoverable = is_recoverable(cause) and not fatal
        reason = " (invalid SDK key)" if cause in (401, 403) else ""
        tail = "will retry" if recoverable else "giving up permanently"
        hint = _STATUS_HINTS.get(cause)
        message = f"Received HTTP error {cause}{reason} for {what} to {where} - {tail}"
        error = ErrorInfo(
            kind=ErrorKind.ERROR_RESPONSE,
            status_code=cause,
            message=f"{message}: {hint}" if hint else message,
            time=now,
            fatal=fatal,
            url=where,
        )
        return error, recoverable
    if isinstance(cause, ProtocolError):
        message = f"invalid data from {what} to {where}: {cause}"
        error = ErrorInfo(
            kind=ErrorKind.INVALID_DATA, message=message, time=now, url=where
        )
        return error, True
    if isinstance(cause, SSEError):
        message = f"{what} to {where} failed: {cause}"
        return ErrorInfo(
            kind=ErrorKind.UNKNOWN, message=message, time=now, url=where
        ), True
    root = root_cause(cause)
    detail = _describe(cause)
    if root is not cause:
        if str(root) and str(root) in str(cause):  # httpx repeated the root's words
            if type(root).__name__ != type(cause).__name__:
                detail = f"{_describe(root)} ({type(cause).__name__})"
        else:
            detail = f"{detail} (caused by {_describe(root)})"
    hint = _transport_hint(cause, root, httpx.URL(url))
    message = f"{what} to {where} failed: {detail}"
    return ErrorInfo(
        kind=ErrorKind.NETWORK_ERROR,
        message=f"{message} - {hint}" if hint else message,
        time=now,
        url=where,
    ), True


async def parse_json(body: bytes | str) -> JSONValue:
    """Strict JSON (:func:`aioflags._core._json.parse`), off the event loop for large bodies.

    Raises:
        ProtocolError: the body is not UTF-8, not JSON, or nested too deeply.
    """
    if len(body) < _THREAD_PARSE_BYTES:
        return parse(body)
    return await anyio.to_thread.run_sync(
        parse, body, abandon_on_cancel=True, limiter=sdk_limiter()
    )


async def parse_json_or_cut(body: bytes | str) -> tuple[JSONValue, bool]:
    """:func:`parse_json`, but JSON nested too deeply is read shallowly (False).

    See :func:`aioflags._core._json.parse_or_cut`.

    Raises:
        ProtocolError: the body is not UTF-8, or not JSON.
    """
    if len(body) < _THREAD_PARSE_BYTES:
        return parse_or_cut(body)
    return await anyio.to_thread.run_sync(
        parse_or_cut, body, abandon_on_cancel=True, limiter=sdk_limiter()
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpOutcome:
    """One polling request's result."""

    body: JSONValue = None
    not_modified: bool = False
    error: ErrorInfo | None = None
    recoverable: bool = True
    fallback: bool = False
    environment_id: str | None = None
