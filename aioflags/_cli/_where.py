"""Where ``aioflags serve`` listens, and how it says so: ``--host``, the console's URL, the Config line.

Shared by the command (``_serve``: which addresses it refuses, its error
lines) and what it runs (``_serving``: the lines it prints at start).
"""

from __future__ import annotations

import ipaddress


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether ``--host`` names this machine's loopback (``localhost`` or a loopback IP)."""
    address = _ip(host)
    return host == "localhost" or (address is not None and address.is_loopback)


def literal_host(host: str) -> str:
    """``--host`` as a URL or an error line writes it (an IPv6 address in brackets)."""
    address = _ip(host)
    return host if address is None else _literal(address)


def _literal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as a URL names it (IPv6 in brackets)."""
    return f"[{address}]" if address.version == 6 else str(address)


def bind_host(host: str) -> str:
    """``--host`` as a socket binds it: ``[::1]``, as a URL writes it, is ``::1``.

    Raises:
        ValueError: brackets around something that is no IPv6 address.
    """
    if not host.startswith("["):
        return host
    inside = host[1:].removesuffix("]")
    address = _ip(inside) if host.endswith("]") else None
    if address is None or address.version != 6:
        raise ValueError(f"{host} is not an IPv6 address in brackets (as [::1])")
    return inside


def console_url(url: str, host: str, bound: str) -> str:
    """The console's address (``Console: ...`` at start).

    The console answers loopback names and the IP address the service is
    bound to, never another name (DNS rebinding). ``bound`` is the address
    the socket got: on a wildcard (``::`` is IPv6 only) the console is at
    that family's loopback address, which ``localhost`` may not name.
    """
    port = url.rsplit(":", 1)[1]
    if is_loopback(host):
        return f"{url}/ui/"
    address = ipaddress.ip_address(bound)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    elif not address.is_loopback and address != _ip(host):
        # A host name bound to another address: the console answers neither
        # that name nor that address (is_allowed_host), localhost as before.
        return f"http://localhost:{port}/ui/"
    return f"http://{_literal(address)}:{port}/ui/"


def listening(url: str, host: str, bound: str) -> str | None:
    """What ``--allow-remote`` bound, said at start (None on loopback)."""
    if is_loopback(host):
        return None
    address = ipaddress.ip_address(bound)
    where = f"{_literal(address)}:{url.rsplit(':', 1)[1]}"
    if not address.is_unspecified:
        return f"Listening on {where}" + ("" if _ip(host) == address else f" ({host})")
    family, other, flag = (
        ("IPv6", "IPv4", "0.0.0.0") if address.version == 6 else ("IPv4", "IPv6", "::")
    )
    return (
        f"Listening on {where}: every {family} address of this machine, "
        f"and no {other} one (--host {flag} for {other})"
    )


def config_line(url: str) -> str:
    """The ``Config`` that points an app at a flag service at ``url`` (events too)."""
    return (
        f"  Config(sdk_key, base_uri={url!r}, stream_uri={url!r}, events_uri={url!r})"
    )
