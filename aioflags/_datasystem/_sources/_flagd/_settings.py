"""``DataSystem.flagd()``'s settings: refused at configuration where surely wrong, named in errors after.

At configuration (no I/O but a ``stat`` and a read of ``cert_path``):
flagd's provider's option names, a URL where gRPC wants ``host:port``, a
Unix socket path longer than the system takes, a ``deadline`` that is
surely milliseconds, a ``max_message_size`` out of bounds. Each is refused
with one line naming the setting and what to give instead, as
``DataSystem.file()`` refuses what it cannot use.

At run time, :func:`hint` reads gRPC's status details for the failures
whose cause is usually a setting (the port of an HTTP server, TLS on one
side only, a CA not given, a configuration over ``max_message_size``) and
says which setting to check, before gRPC's own text.
"""

from __future__ import annotations

import os
import sys
from typing import Final

from aioflags._core._exceptions import ConfigurationError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_DEADLINE",
    "MAX_MESSAGE_SIZE_RANGE",
    "SOCKET_PATH_MAX",
    "check_deadline",
    "check_max_message_size",
    "check_target",
    "hint",
    "refuse_provider_names",
    "unix_path",
]

#: The longest Unix socket path the system takes, in bytes (``sun_path`` less its NUL).
SOCKET_PATH_MAX: Final = (
    103 if sys.platform == "darwin" or "bsd" in sys.platform else 107
)
#: The longest ``deadline``, in seconds: more is surely flagd's milliseconds.
MAX_DEADLINE: Final = 60.0
#: The largest flag configuration received by default, in bytes (gRPC's own is 4 MiB).
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
#: The bounds of ``max_message_size``, in bytes: 64 KiB to 1 GiB.
MAX_MESSAGE_SIZE_RANGE: Final = (64 * 1024, 1024 * 1024 * 1024)
#: URL schemes given as a target, and whether each means TLS.
_URL_SCHEMES: Final = {"http": False, "https": True, "grpc": False, "grpcs": True}


def refuse_provider_names(
    where: str, host: object, port: object, saved_state: object
) -> None:
    """Refuse flagd's provider's ``host``/``port``, and ``saved_state``, saying what to give."""
    if host is not None or port is not None:
        target = f"{host if host is not None else 'localhost'}:{port or 8015}"
        raise ConfigurationError(
            f"{where}() takes no host= or port= (flagd's provider's names): "
            f"give target={target!r} (gRPC's host:port)"
        )
    if saved_state is not None:
        raise ConfigurationError(
            f"{where}() takes no saved_state: flagd's sync server brings the "
            "whole configuration at every start. Saved state is for the "
            "presets that read LaunchDarkly's flag service: DataSystem.default(),"
            " .streaming(), .polling() and .custom()"
        )


def unix_path(target: str) -> str | None:
    """The socket path of a ``unix:PATH`` or ``unix:///PATH`` target (None: not one)."""
    if target.startswith("unix://"):
        return target[len("unix://") :]
    if target.startswith("unix:"):
        return target[len("unix:") :]
    return None


def check_target(where: str, name: str, target: str) -> None:
    """Refuse a URL as a target, and a Unix socket path longer than the system takes."""
    scheme, sep, rest = target.partition("://")
    if sep and scheme.lower() in _URL_SCHEMES:
        address = rest.split("/", 1)[0] or "localhost:8015"
        tls = ", tls=True" if _URL_SCHEMES[scheme.lower()] else ""
        raise ConfigurationError(
            f"{where}(target={target!r}) is a URL: give gRPC's host:port, "
            f"target={address!r}{tls}"
        )
    path = unix_path(target)
    if path is None:
        return
    size = len(os.fsencode(path))
    if size > SOCKET_PATH_MAX:
        raise ConfigurationError(
            f"{where}({name}=...) is a Unix socket path of {size} bytes: this "
            f"system takes at most {SOCKET_PATH_MAX}. Give a shorter one (a "
            "symlink to the socket's folder will do)"
        )


def check_deadline(where: str, deadline: float) -> None:
    """Refuse a ``deadline`` that is surely milliseconds (flagd's ``deadlineMs``)."""
    if deadline > MAX_DEADLINE:
        raise ConfigurationError(
            f"{where}(deadline={deadline!r}): at most {MAX_DEADLINE:g} seconds "
            f"({deadline:g} looks like milliseconds, as flagd's deadlineMs: "
            f"deadline={deadline / 1000:g})"
        )


def check_max_message_size(where: str, size: object) -> None:
    """``max_message_size`` is a number of bytes within :data:`MAX_MESSAGE_SIZE_RANGE`."""
    least, most = MAX_MESSAGE_SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, int) or not least <= size <= most:
        raise ConfigurationError(
            f"{where}(max_message_size=...) must be a number of bytes from "
            f"{least} (64 KiB) to {most} (1 GiB), got {size!r}"
        )


def hint(
    details: str, *, tls: bool, cert_path: str | None, max_message_size: int
) -> str:
    """The setting a failure's gRPC details point to, in words ("" if none).

    ``tls``, ``cert_path``, ``max_message_size``: the data system's.
    """
    if "http1.x server" in details or "Received http2 header with status" in details:
        return (
            "an HTTP server answered, not flagd's sync service: check the "
            "target's port (flagd's sync port is 8015)"
        )
    if "Misformatted domain name" in details:
        return "the target is not gRPC's host:port"
    if "Received message larger than max" in details:
        return (
            "the flag configuration is larger than max_message_size "
            f"({max_message_size} bytes): give "
            "DataSystem.flagd(max_message_size=...) more"
        )
    if not tls and "Socket closed" in details:
        return "the server closed the connection: if it serves TLS, give tls=True"
    if not tls:
        return ""
    if "WRONG_VERSION_NUMBER" in details:
        return "the TLS handshake failed: if the server does not serve TLS, tls=False"
    if "CERTIFICATE_VERIFY_FAILED" in details:
        if cert_path is None:
            return (
                "the server's certificate is not trusted by the system's roots: "
                "give cert_path= the PEM file of the CA that signed it"
            )
        return (
            "the server's certificate is not signed by cert_path's CA "
            f"({cert_path}): check cert_path"
        )
    return ""
