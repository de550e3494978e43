"""The one httpx.AsyncClient per aioflags Client, and the headers every request carries."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import httpx

from aioflags._version import __version__

if TYPE_CHECKING:
    from ._config import Config

__all__ = ["USER_AGENT", "base_headers", "make_http_client", "proxied"]

USER_AGENT = f"aioflags/{__version__}"


def base_headers(config: Config, instance_id: str) -> dict[str, str]:
    """Headers sent on every data request (protocol.md §1)."""
    headers = {
        "Authorization": config.sdk_key or "",
        "User-Agent": USER_AGENT,
        "X-LaunchDarkly-Instance-Id": instance_id,
    }
    if config.tags_header:
        headers["X-LaunchDarkly-Tags"] = config.tags_header
    if config.wrapper_header:
        headers["X-LaunchDarkly-Wrapper"] = config.wrapper_header
    return headers


def _environment_proxies() -> bool:
    """Whether the environment names a proxy (``HTTPS_PROXY``, ``ALL_PROXY``, ...)."""
    import urllib.request  # only here: it is slow to import

    return bool(urllib.request.getproxies())


def proxied(config: Config) -> bool:
    """Whether requests go through a proxy: httpx's own transports then do TLS."""
    return bool(config.proxy) or _environment_proxies()


def make_http_client(
    config: Config,
    instance_id: str,
    *,
    tls: httpx.AsyncHTTPTransport | None = None,
) -> httpx.AsyncClient:
    """A pooled client with explicit timeouts, TLS and proxy from the config.

    ``tls``: the transport for ``https://`` requests, already made (see
    :func:`~aioflags._client._transport.tls_transport`); without it, it is made
    on the first ``https://`` request. Neither when a proxy is used: httpx's
    own transports are, with ``Config.verify``.
    """
    # httpx reads proxies from the environment (HTTPS_PROXY, ...) only when
    # no transport is given: a proxy named there keeps httpx's own transport.
    transport: httpx.AsyncBaseTransport | None = None
    verify: bool | ssl.SSLContext = True  # unused with our own transport
    if proxied(config):
        if isinstance(config.verify, str):
            verify = ssl.create_default_context(cafile=config.verify)
        else:
            verify = config.verify
    else:
        # TLS (the CA bundle) is set up for https:// only: http:// URIs (a
        # relay, a test server) never pay for it.
        from ._transport import LazyTLSTransport

        transport = LazyTLSTransport(config.verify, tls)
    return httpx.AsyncClient(
        transport=transport,
        headers=base_headers(config, instance_id),
        timeout=httpx.Timeout(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.read_timeout,
            pool=config.connect_timeout,
        ),
        verify=verify,
        proxy=config.proxy,
        follow_redirects=True,
        max_redirects=3,
    )
