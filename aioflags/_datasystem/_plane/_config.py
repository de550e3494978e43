"""``plane=``: the path the processes of one host share, checked when it is given."""

from __future__ import annotations

import os
import sys
from typing import Final, final

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field

__all__ = ["MAX_PATH_BYTES", "Plane", "flagd_source", "plane_of"]

#: The longest Unix-socket path the platform takes, in bytes (``sun_path``
#: with its terminating NUL: 108 bytes on Linux, 104 on macOS and the BSDs).
MAX_PATH_BYTES: Final = 107 if sys.platform.startswith("linux") else 103


@final
class Plane(Frozen):
    """Where the processes of one host share one upstream: a Unix socket's path.

    The lock is ``path + ".lock"`` beside it. Made by ``DataSystem``'s
    ``plane=`` (a ``str`` or ``os.PathLike``). ``source``: where the flags
    come from when that is not the SDK key's environment (a flagd sync
    server, its selector...: ``DataSystem.flagd``), as words; it is part of
    what the plane's processes must share (:func:`._wire.environment_of`).
    """

    __slots__ = ("path", "source")
    path: str
    source: str | None

    def __init__(self, path: str, source: str | None = None) -> None:
        set_field(self, "path", path)
        set_field(self, "source", source)

    @property
    def lock_path(self) -> str:
        """The lock file whose exclusive ``flock`` makes its holder the leader."""
        return self.path + ".lock"

    def __repr__(self) -> str:
        if self.source is None:
            return f"Plane({self.path!r})"
        return f"Plane({self.path!r}, source={self.source!r})"


def flagd_source(
    target: str, selector: str | None, provider_id: str | None, fractional: int
) -> str:
    """A flagd data system's source as words: what its plane's processes must share.

    The sync server (``host:port``, or ``unix:PATH``), the selector and
    the provider id it is asked with, and the ``fractional`` bucketing
    its flags are evaluated with: two apps that differ in any of these
    must not serve each other's flags. Then the form its flags travel in:
    what they share written once ("evaluators shared",
    ``_systems/_flagd/_data/_definitions.py``), which an aioflags from before that cannot
    read, so that its processes and these never share a plane. Quoted as
    Python does (``ascii``), so that it is one line of ASCII whatever it
    holds.
    """
    said = [f"selector {selector!a}"] if selector else []
    if provider_id:
        said.append(f"provider id {provider_id!a}")
    said.append(f"fractional v{fractional}")
    said.append("evaluators shared")
    where = ascii(target)[1:-1]  # (its escapes, without the quotes)
    return f"flagd at {where} ({', '.join(said)})"


def plane_of(given: object, preset: str, source: str | None = None) -> Plane | None:
    """``plane=`` of ``DataSystem.<preset>()``, checked: a :class:`Plane`, or None.

    ``source``: the flags' source, for a preset that does not read the SDK
    key's environment (:class:`Plane`).

    Raises:
        ConfigurationError: not a path, a relative path, a path too long for a Unix socket,
            or a platform without Unix sockets or ``fcntl`` (a ``ValueError``).
    """
    if given is None:
        return None
    if isinstance(given, Plane):
        return given if source is None else Plane(given.path, source)
    if not isinstance(given, (str, os.PathLike)):
        raise ConfigurationError(
            f"DataSystem.{preset}(plane=...) takes the path of the plane's Unix "
            f"socket (a str or a path), got {given!r}"
        )
    path = os.fspath(given)
    if not isinstance(path, str) or not path:
        raise ConfigurationError(
            f"DataSystem.{preset}(plane=...) takes a non-empty text path, got {given!r}"
        )
    if not os.path.isabs(path):
        raise ConfigurationError(
            f"DataSystem.{preset}(plane={path!r}): give an absolute path (such as"
            f" {os.path.abspath(path)!r}): a relative one names another plane in"
            " each working directory"
        )
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES:
        raise ConfigurationError(
            f"DataSystem.{preset}(plane={path!r}): the path is {size} bytes, and a "
            f"Unix socket's path may be at most {MAX_PATH_BYTES}: use a shorter one, "
            "in a folder only the app's user can enter (such as $XDG_RUNTIME_DIR)"
        )
    import socket  # (not with aioflags: a client without a plane never loads it)

    if not hasattr(socket, "AF_UNIX"):  # pragma: no cover - Windows
        raise ConfigurationError(
            "the flag plane needs Unix sockets, which this platform does not have"
        )
    try:
        import fcntl  # noqa: F401 - only whether it is there
    except ImportError:  # pragma: no cover - Windows
        raise ConfigurationError(
            "the flag plane needs fcntl (flock), which this platform does not have"
        ) from None
    return Plane(path, source)
