"""flagd's provider variables (``FLAGD_*``) as a data system: what ``Config.from_env`` asks flagd's system.

Each variable is the one an option's declaration names
(``_systems/_flagd/_sync/_settings.py``), read in its unit and
checked there, so that an error names the variable, its text and the
option; an error ``DataSystem.flagd()`` raises later is given the names
of the variables that set the options it is about
(``_client._environment.naming_variables``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aioflags._client._environment import naming_variables
from aioflags._core._exceptions import ConfigurationError
from aioflags._core._options import check, parse, parse_seconds
from aioflags._datasystem._config import DataSystem

from ._preset import flagd_data_system

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aioflags._core._options import Option

__all__ = ["flagd_from_env", "flagd_without_resolver"]


def flagd_without_resolver(env: Mapping[str, str]) -> None:
    """Refuse flagd's variables without ``FLAGD_RESOLVER``, where nothing else is set.

    flagd's providers then evaluate over RPC, which aioflags does not do:
    without this, the client would ask for an SDK key, not a resolver.

    Raises:
        ConfigurationError: naming the variables and ``FLAGD_RESOLVER``.
    """
    if env.get("FLAGD_RESOLVER", "").strip():
        return
    names = sorted(v for v in env if v.startswith("FLAGD_") and env[v].strip())
    if not names:
        return
    shown = " and ".join(names) if len(names) < 3 else f"{names[0]}, {names[1]}, ..."
    raise ConfigurationError(
        f"{shown} {'is' if len(names) == 1 else 'are'} set but FLAGD_RESOLVER "
        "is not: aioflags reads flagd's variables with FLAGD_RESOLVER=in-process "
        "(a sync server at FLAGD_HOST and FLAGD_SYNC_PORT or FLAGD_PORT: flagd's "
        "sync port, 8015, not its rpc port 8013) or FLAGD_RESOLVER=file "
        "(FLAGD_OFFLINE_FLAG_SOURCE_PATH); flagd's providers default to rpc, "
        "which aioflags does not do (for LaunchDarkly, set AIOFLAGS_SDK_KEY)"
    )


def flagd_from_env(
    env: Mapping[str, str], *, plane: str | None = None
) -> DataSystem | None:
    """The flagd data system flagd's provider variables describe (None: none asked for).

    Read only with ``FLAGD_RESOLVER=in-process`` (or ``file``): ``FLAGD_HOST``
    and ``FLAGD_SYNC_PORT`` (else ``FLAGD_PORT``; ``localhost:8015``),
    ``FLAGD_SOCKET_PATH``, ``FLAGD_TLS``, ``FLAGD_SERVER_CERT_PATH``,
    ``FLAGD_SOURCE_SELECTOR``, ``FLAGD_PROVIDER_ID``,
    ``FLAGD_RETRY_GRACE_PERIOD`` (seconds), ``FLAGD_FATAL_STATUS_CODES``
    (names, comma-separated), ``FLAGD_DEADLINE_MS``,
    ``FLAGD_STREAM_DEADLINE_MS``, ``FLAGD_KEEP_ALIVE_TIME_MS`` (0: none),
    ``FLAGD_RETRY_BACKOFF_MS`` and ``FLAGD_RETRY_BACKOFF_MAX_MS``; or, with
    ``FLAGD_OFFLINE_FLAG_SOURCE_PATH``, that flagd file
    (``DataSystem.file(path, reload=True, format="flagd")``). Empty
    variables are unset ones. ``plane``: the flag plane's path
    (``aioflags plane PATH``): the sync stream shared by a host's processes.

    Raises:
        ConfigurationError: a variable cannot be used (the message names
            it), or ``plane`` with a flag file, which has no upstream to share.
    """
    resolver = env.get("FLAGD_RESOLVER", "").strip().lower()
    if not resolver:
        return None
    if resolver not in ("in-process", "file"):
        raise ConfigurationError(
            f"FLAGD_RESOLVER={env['FLAGD_RESOLVER']!r}: aioflags evaluates flagd's "
            "flags in process: use in-process (or file)"
        )

    def get(name: str) -> str | None:
        text = env.get(name, "").strip()
        return text or None

    offline = get("FLAGD_OFFLINE_FLAG_SOURCE_PATH")
    if offline is not None or resolver == "file":
        return _flagd_file(offline, plane)
    from aioflags._systems._flagd._sync._settings import OPTIONS as FLAGD

    options: dict[str, Any] = {}
    #: the variables each option was read from, to name them in an error
    read_from: dict[str, list[str]] = {}
    for option in FLAGD:
        for variable in option.env:
            text = get(variable)
            if text is not None:
                read_from.setdefault(option.name, []).append(variable)
                options[option.name] = _flagd_value(option, variable, text)
    if "socket_path" in options:
        options.pop("target", None)
        read_from.pop("target", None)
    else:
        options["target"] = _flagd_target(get, read_from)
    if "retry_backoff" in options:
        options["retry_backoff"] = _flagd_backoff(get)
    try:
        return flagd_data_system(**options, plane=plane)
    except ConfigurationError as exc:
        # DataSystem.flagd's messages name their options as name=...
        named = [name for name in read_from if f"{name}=" in str(exc)]
        raise naming_variables(exc, read_from, named) from None


def _flagd_file(path: str | None, plane: str | None) -> DataSystem:
    """``FLAGD_OFFLINE_FLAG_SOURCE_PATH``'s flagd file, reloaded on change."""
    if path is None:
        raise ConfigurationError(
            "FLAGD_RESOLVER=file needs FLAGD_OFFLINE_FLAG_SOURCE_PATH"
        )
    if plane is not None:
        raise ConfigurationError(
            "FLAGD_OFFLINE_FLAG_SOURCE_PATH (FLAGD_RESOLVER=file) is a flag"
            " file every process reads itself: a flag plane has no upstream"
            " to share there. Use FLAGD_RESOLVER=in-process with FLAGD_HOST"
            " and FLAGD_PORT (or FLAGD_SOCKET_PATH) instead"
        )
    return DataSystem.file(path, reload=True, format="flagd")


def _flagd_value(option: Option, variable: str, text: str) -> object:
    """A ``FLAGD_*`` variable's value for ``DataSystem.flagd()``, checked as declared.

    Raises:
        ConfigurationError: ``VARIABLE='text': ...``, naming the option.
    """
    if option.name == "fatal_status_codes":
        return [c.strip().upper() for c in text.split(",") if c.strip()]
    if option.name in ("target", "retry_backoff"):
        return text  # (made of several variables: below)
    value = parse(option, variable, text)
    if option.name == "keepalive" and value == 0:
        return None  # (flagd's 0: no keepalive)
    try:
        return check(option, value, "DataSystem.flagd", variable=variable)
    except ConfigurationError as exc:
        unit = (
            f" ({variable} is in milliseconds, the option in seconds)"
            if option.env_unit == "ms"
            else ""
        )
        raise ConfigurationError(f"{variable}={text!r}: {exc}{unit}") from None


def _flagd_target(
    get: Callable[[str], str | None], read_from: dict[str, list[str]]
) -> str:
    """``FLAGD_HOST`` and ``FLAGD_SYNC_PORT`` (else ``FLAGD_PORT``) as ``host:port``."""
    host = get("FLAGD_HOST") or "localhost"
    variable = "FLAGD_SYNC_PORT" if get("FLAGD_SYNC_PORT") else "FLAGD_PORT"
    port = get(variable) or "8015"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"{variable}={port!r}: expected a port number")
    if "target" in read_from:  # only the variables that were used
        read_from["target"] = [
            v for v in ("FLAGD_HOST", variable) if v in read_from["target"]
        ]
    return f"{host}:{port}"


def _flagd_backoff(get: Callable[[str], str | None]) -> tuple[float, float]:
    """``FLAGD_RETRY_BACKOFF_MS`` and ``FLAGD_RETRY_BACKOFF_MAX_MS`` as ``(first, most)``, in seconds.

    A longest delay shorter than the first is the first (flagd's providers
    take it so).

    Raises:
        ConfigurationError: naming the variable and the option.
    """
    delays = []
    for variable, default in (
        ("FLAGD_RETRY_BACKOFF_MS", 1.0),
        ("FLAGD_RETRY_BACKOFF_MAX_MS", 5.0),
    ):
        text = get(variable)
        delay = default if text is None else parse_seconds(variable, text, "ms")
        if delay < 0:
            raise ConfigurationError(
                f"{variable}={text!r}: DataSystem.flagd(retry_backoff=...)'s "
                "delays must be >= 0 (milliseconds)"
            )
        delays.append(delay)
    first, most = delays
    return first, max(first, most)
