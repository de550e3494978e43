"""Who the service answers: the ``Host`` and ``Origin`` rules against DNS rebinding.

Bound to loopback, the service answers only requests that name this
machine (a web page on another site that a DNS rebinding attacker points at
127.0.0.1 names its own domain); nobody's web page may post analytics
events; the console answers only names of this machine or the very address
it is bound to. The ``Refusal`` middleware (``_middleware``) applies them.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "foreign_events_post",
    "is_allowed_host",
    "is_loopback_bind",
    "is_loopback_host",
]


def _host_name(host: str) -> str | None:
    """The name or address of a ``Host`` header without its port; None if malformed."""
    if host.startswith("["):  # [::1]:port
        name, bracket, _ = host[1:].partition("]")
        return name if bracket else None
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def _address(name: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name or "")
    except ValueError:
        return None


def is_loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine: localhost or a loopback address."""
    name = _host_name(host) if host else None
    if name is None:
        return False
    if name.lower() == "localhost":
        return True
    address = _address(name)
    return address is not None and address.is_loopback


def is_loopback_bind(bound: str) -> bool:
    """Whether the address a server binds is loopback only (``localhost`` included)."""
    address = _address(bound)
    return bound == "localhost" or (address is not None and address.is_loopback)


def is_allowed_host(host: str | None, bound: str) -> bool:
    """Whether the console answers a request with this ``Host`` header.

    A loopback name or address, or the very IP address the server is bound to
    (``--allow-remote --host 192.0.2.2``): an IP literal is no name a DNS
    rebinding attacker controls. A wildcard bind (``0.0.0.0``, ``::``) adds
    nothing: its console is at localhost.
    """
    if is_loopback_host(host):
        return True
    address = _address(_host_name(host) if host else None)
    return (
        address is not None
        and not address.is_unspecified
        and address == _address(bound)
    )


def foreign_events_post(headers: Mapping[str, str], bound: str) -> bool:
    """Whether a ``/bulk`` or ``/diagnostic`` POST comes from a web page of another site.

    SDKs send neither ``Origin`` nor ``Sec-Fetch-Site``; a browser sends
    them with any page's request, even a no-cors one that needs no
    preflight. Bound to loopback, a foreign ``Host`` is DNS rebinding.
    """
    host = headers.get("host")
    if not is_loopback_host(host) and (
        # Bound to loopback, a foreign Host is DNS rebinding; on a wildcard or
        # an address, an SDK names the server by IP address, a rebinding
        # page by its own domain name.
        is_loopback_bind(bound) or _address(_host_name(host) if host else None) is None
    ):
        return True
    origin = headers.get("origin")
    if origin is not None and origin != f"http://{host}":
        return True
    return headers.get("sec-fetch-site") in ("cross-site", "same-site")
