"""An HTTP transport that sets up TLS only for the first ``https://`` request.

Loading the CA bundle into an SSL context costs tens of milliseconds, which
a client talking to ``http://`` URIs (a relay proxy on the host, a test
server) never needs. Plain-HTTP requests go through a transport made at once
(its SSL context is never given a CA bundle); the verifying one is made in a
worker thread on the first ``https://`` request (a redirect to ``https://``
included), so it never blocks the event loop either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import httpx

if TYPE_CHECKING:
    import ssl
    from types import TracebackType

__all__ = ["LazyTLSTransport"]


class LazyTLSTransport(httpx.AsyncBaseTransport):
    """Plain HTTP at once; TLS (verified with ``verify``) on first use."""

    def __init__(self, verify: bool | ssl.SSLContext) -> None:
        self._verify = verify
        self._plain = httpx.AsyncHTTPTransport(verify=False)  # no CA bundle loaded
        self._tls: httpx.AsyncHTTPTransport | None = None
        self._lock: anyio.Lock | None = None

    @property
    def tls_ready(self) -> bool:
        """Whether the TLS transport has been made (an ``https://`` request was sent)."""
        return self._tls is not None

    async def _tls_transport(self) -> httpx.AsyncHTTPTransport:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._tls is None:
                verify = self._verify
                self._tls = await anyio.to_thread.run_sync(
                    lambda: httpx.AsyncHTTPTransport(verify=verify)
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
