"""The one httpx.AsyncClient per aioflags Client, and the headers every request carries."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import httpx

from aioflags._version import __version__

if TYPE_CHECKING:
    from aioflags._client._config import Config

__all__ = ["USER_AGENT", "base_headers", "make_http_client"]

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


def make_http_client(config: Config, instance_id: str) -> httpx.AsyncClient:
    """A pooled client with explicit timeouts, TLS and proxy from the config."""
    verify: bool | ssl.SSLContext
    if isinstance(config.verify, str):
        verify = ssl.create_default_context(cafile=config.verify)
    else:
        verify = config.verify
    # Without a proxy, TLS (the CA bundle) is set up on the first https://
    # request only: http:// URIs (a relay, a test server) never pay for it.
    from ._transport import LazyTLSTransport

    # httpx reads proxies from the environment (HTTPS_PROXY, ...) only when
    # no transport is given: a proxy named there keeps httpx's own transport.
    transport = (
        None if config.proxy or _environment_proxies() else LazyTLSTransport(verify)
    )
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
