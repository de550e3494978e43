"""``DataSystem.flagd()``'s settings: refused at configuration where surely wrong, named in errors after.

At configuration (no I/O but a ``stat`` and a read of ``cert_path``):
flagd's provider's option names, a URL where gRPC wants ``host:port``, a
Unix socket path longer than the system takes; and, from :data:`OPTIONS`
(each option declared once, with its ``FLAGD_*`` variable), a
``deadline`` that is surely milliseconds, a ``max_message_size`` out of
bounds. Each is refused with one line naming the setting and what to give
instead, as ``DataSystem.file()`` refuses what it cannot use.

At run time, :func:`hint` reads gRPC's status details for the failures
whose cause is usually a setting (the port of an HTTP server, TLS on one
side only, a CA not given, a configuration over ``max_message_size``) and
says which setting to check, before gRPC's own text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Final

from aioflags._core._checks import check_seconds
from aioflags._core._exceptions import ConfigurationError
from aioflags._core._options import Kind, Option

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "GRPC_STATUS_NAMES",
    "MAX_DEADLINE",
    "MAX_MESSAGE_SIZE_RANGE",
    "OPTION",
    "OPTIONS",
    "SOCKET_PATH_MAX",
    "backoff",
    "check_cert_path",
    "check_target",
    "hint",
    "refuse_provider_names",
    "status_names",
    "target_of",
    "unix_path",
]

#: The gRPC status codes by name, as ``fatal_status_codes`` takes them.
GRPC_STATUS_NAMES: Final = (
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
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
#: ``DataSystem.flagd()``'s options, with flagd's provider's variables
#: (``Config.from_env()`` reads them with ``FLAGD_RESOLVER=in-process``).
#: ``OTHER`` ones are checked by ``DataSystem.flagd()`` itself.
OPTIONS: Final = (
    Option(
        "target",
        Kind.OTHER,
        type="string",
        default="localhost:8015",
        env=("FLAGD_HOST", "FLAGD_SYNC_PORT", "FLAGD_PORT"),
        doc="the sync server's `host:port` (its sync port, not rpc's 8013), or any "
        "gRPC target (`dns:///...`, `unix:PATH`); from the environment, "
        "`FLAGD_HOST` and `FLAGD_SYNC_PORT`, else `FLAGD_PORT`",
    ),
    Option(
        "selector",
        Kind.TEXT,
        default=None,
        env=("FLAGD_SOURCE_SELECTOR",),
        doc="which flags the server sends (`flagd-selector`)",
    ),
    Option(
        "provider_id",
        Kind.TEXT,
        default=None,
        env=("FLAGD_PROVIDER_ID",),
        doc="sent in each request, for servers that filter or authorise by it",
    ),
    Option(
        "tls",
        Kind.BOOL,
        default=False,
        env=("FLAGD_TLS",),
        doc="connect with TLS (the system's roots, or `cert_path`'s CA)",
    ),
    Option(
        "cert_path",
        Kind.OTHER,
        type="path",
        default=None,
        env=("FLAGD_SERVER_CERT_PATH",),
        doc="the CA to trust with `tls=True`: a PEM file of at most 1 MiB",
    ),
    Option(
        "socket_path",
        Kind.OTHER,
        type="path",
        default=None,
        env=("FLAGD_SOCKET_PATH",),
        doc="a Unix socket instead of `target` (its path at most 107 bytes long, "
        "103 on macOS and BSD)",
    ),
    Option(
        "fatal_status_codes",
        Kind.OTHER,
        type="gRPC status names",
        default=(),
        shown="()",
        env=("FLAGD_FATAL_STATUS_CODES",),
        doc="statuses that end the source at once (`PERMISSION_DENIED`); "
        "comma-separated in the variable",
    ),
    Option(
        "retry_grace_period",
        Kind.SECONDS,
        default=5.0,
        least=0,
        env=("FLAGD_RETRY_GRACE_PERIOD",),
        doc="STALE before ERROR after the connection is lost (replaces "
        "`Config.grace_period`)",
    ),
    Option(
        "deadline",
        Kind.SECONDS,
        default=0.5,
        most=MAX_DEADLINE,
        env=("FLAGD_DEADLINE_MS",),
        env_unit="ms",
        doc="each attempt's time to connect and bring the first byte of an "
        "answer; more than 60 is surely milliseconds and refused",
    ),
    Option(
        "stream_deadline",
        Kind.SECONDS,
        default=600.0,
        least=0,
        env=("FLAGD_STREAM_DEADLINE_MS",),
        env_unit="ms",
        doc="the stream is opened anew after this long (0 or `math.inf`: never)",
    ),
    Option(
        "keepalive",
        Kind.SECONDS,
        default=None,
        env=("FLAGD_KEEP_ALIVE_TIME_MS",),
        env_unit="ms",
        doc="between HTTP/2 keepalive pings; `None` (the variable's 0): none",
    ),
    Option(
        "retry_backoff",
        Kind.OTHER,
        type="(seconds, seconds)",
        default=(1.0, 5.0),
        env=("FLAGD_RETRY_BACKOFF_MS", "FLAGD_RETRY_BACKOFF_MAX_MS"),
        env_unit="ms",
        doc="`(first, most)` between attempts, doubling, less up to "
        "`Config.retry_jitter`",
    ),
    Option(
        "fractional",
        Kind.OTHER,
        type="3 or 2",
        default=3,
        doc="flagd's `fractional` bucketing: 3, or 2 (its older one)",
    ),
    Option(
        "max_message_size",
        Kind.BYTES,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        least=MAX_MESSAGE_SIZE_RANGE[0],
        most=MAX_MESSAGE_SIZE_RANGE[1],
        doc="the largest flag configuration received (gRPC's own limit is 4 MiB)",
    ),
)
#: :data:`OPTIONS` by name.
OPTION: Final = {option.name: option for option in OPTIONS}
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


def target_of(where: str, target: object, socket_path: object) -> str:
    """The gRPC target ``target`` or ``socket_path`` gives (``localhost:8015``: neither).

    Raises:
        ConfigurationError: both, a path or a target of the wrong type, a
            URL as the target, a socket path longer than the system takes.
    """
    if socket_path is not None:
        if target is not None:
            raise ConfigurationError(
                f"{where}() takes a target or a socket_path, not both"
            )
        if not isinstance(socket_path, (str, os.PathLike)) or not os.fspath(
            socket_path
        ):
            raise ConfigurationError(
                f"{where}(socket_path=...) must be a path, got {socket_path!r}"
            )
        unix = f"unix:{os.fspath(socket_path)}"
        check_target(where, "socket_path", unix)
        return unix
    if target is None:
        return "localhost:8015"
    if not isinstance(target, str) or not target.strip():
        raise ConfigurationError(
            f"{where}(target=...) must be a gRPC target such as "
            f"'localhost:8015', got {target!r}"
        )
    check_target(where, "target", target)
    return target


def check_cert_path(where: str, cert_path: object, *, tls: bool) -> None:
    """``cert_path`` is a readable PEM file of a CA, given with ``tls=True`` (or ``None``)."""
    if cert_path is None:
        return
    if not isinstance(cert_path, (str, os.PathLike)):
        raise ConfigurationError(
            f"{where}(cert_path=...) must be a path, got {cert_path!r}"
        )
    if not tls:
        raise ConfigurationError(
            f"{where}(cert_path=...) is the CA for TLS: give tls=True too"
        )
    from ._certs import ca_file_problem

    problem = ca_file_problem(os.fspath(cert_path))
    if problem is not None:
        raise ConfigurationError(f"{where}(cert_path=...): {problem}")


def status_names(where: str, given: object) -> frozenset[str]:
    """``fatal_status_codes``: gRPC status names, as a set.

    Raises:
        ConfigurationError: not an iterable of gRPC status names (a single
            string is not one).
    """
    codes = (
        tuple(given)
        if isinstance(given, Iterable) and not isinstance(given, (str, bytes, Mapping))
        else None
    )
    if codes is None or not all(c in GRPC_STATUS_NAMES for c in codes):
        raise ConfigurationError(
            f"{where}(fatal_status_codes=...) must be gRPC status names such "
            f"as 'PERMISSION_DENIED' (one of {', '.join(GRPC_STATUS_NAMES)}), "
            f"got {given!r}"
        )
    return frozenset(codes)


def backoff(where: str, given: object) -> tuple[float, float]:
    """``retry_backoff``: ``(first, most)``, numbers of seconds, ``most`` not shorter.

    Raises:
        ConfigurationError: naming ``retry_backoff`` and what is wrong.
    """
    if not isinstance(given, (tuple, list)) or len(given) != 2:
        raise ConfigurationError(
            f"{where}(retry_backoff=...) must be (first, most) in seconds, "
            f"got {given!r}"
        )
    first, most = given
    check_seconds(f"{where}(retry_backoff=...)'s first delay", first)
    check_seconds(f"{where}(retry_backoff=...)'s longest delay", most)
    if most < first:
        raise ConfigurationError(
            f"{where}(retry_backoff=...): the longest delay must not be "
            f"shorter than the first, got {given!r}"
        )
    return float(first), float(most)


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
