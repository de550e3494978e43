"""An HTTP transport that sets up TLS only when an ``https://`` request needs it.

Loading the CA bundle into an SSL context costs tens of milliseconds, which
a client talking to ``http://`` URIs (a relay proxy on the host, a test
server) never needs. Plain-HTTP requests go through a transport made at once
(its SSL context is never given a CA bundle). The verifying one is either
handed over ready-made (the client builds it at start when a configured URI is
``https://``, beside its other start-up work: see ``_client``) or made in a
worker thread on the first ``https://`` request (a redirect to ``https://``
included), so it never blocks the event loop either.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import httpx

from aioflags._core._threads import sdk_limiter

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["LazyTLSTransport", "tls_context", "tls_transport"]


def tls_context(verify: bool | str | ssl.SSLContext) -> ssl.SSLContext:
    """The SSL context ``https://`` requests use, as ``Config.verify`` asks.

    A CA bundle path is loaded as it is; ``True`` is what httpx itself does
    for ``verify=True`` (certifi's bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``). Blocking: loading a bundle takes tens of milliseconds
    (with the GIL released), so call it on a worker thread.
    """
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=verify)


def tls_transport(verify: bool | str | ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    """The transport of ``https://`` requests (blocking: see :func:`tls_context`)."""
    return httpx.AsyncHTTPTransport(verify=tls_context(verify))


class LazyTLSTransport(httpx.AsyncBaseTransport):
    """Plain HTTP at once; TLS (verified with ``verify``) given or made on first use."""

    def __init__(
        self,
        verify: bool | str | ssl.SSLContext,
        tls: httpx.AsyncHTTPTransport | None = None,
    ) -> None:
        self._verify = verify
        self._plain = httpx.AsyncHTTPTransport(verify=False)  # no CA bundle loaded
        self._tls = tls
        self._lock: anyio.Lock | None = None

    @property
    def tls_ready(self) -> bool:
        """Whether the TLS transport is there (given, or made for an ``https://`` request)."""
        return self._tls is not None

    async def _tls_transport(self) -> httpx.AsyncHTTPTransport:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._tls is None:
                verify = self._verify
                self._tls = await anyio.to_thread.run_sync(
                    lambda: tls_transport(verify), limiter=sdk_limiter()
                )
        return self._tls

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on the transport for its scheme."""
        if request.url.scheme == "https":
            tls = self._tls or await self._tls_transport()
            return await tls.handle_async_request(request)
        return await self._plain.handle_async_request(request)

    async def aclose(self) -> None:
        """Close both transports' connections."""
        await self._plain.aclose()
        if self._tls is not None:
            await self._tls.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()
