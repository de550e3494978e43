"""``plane=``: the path the processes of one host share, checked when it is given."""

from __future__ import annotations

import os
import sys
from typing import Final, final

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field

__all__ = ["MAX_PATH_BYTES", "Plane", "plane_of"]

#: The longest Unix-socket path the platform takes, in bytes (``sun_path``
#: with its terminating NUL: 108 bytes on Linux, 104 on macOS and the BSDs).
MAX_PATH_BYTES: Final = 107 if sys.platform.startswith("linux") else 103


@final
class Plane(Frozen):
    """Where the processes of one host share one upstream: a Unix socket's path.

    The lock is ``path + ".lock"`` beside it. Made by ``DataSystem``'s
    ``plane=`` (a ``str`` or ``os.PathLike``).
    """

    __slots__ = ("path",)
    path: str

    def __init__(self, path: str) -> None:
        set_field(self, "path", path)

    @property
    def lock_path(self) -> str:
        """The lock file whose exclusive ``flock`` makes its holder the leader."""
        return self.path + ".lock"

    def __repr__(self) -> str:
        return f"Plane({self.path!r})"


def plane_of(given: object, preset: str) -> Plane | None:
    """``plane=`` of ``DataSystem.<preset>()``, checked: a :class:`Plane`, or None.

    Raises:
        ConfigurationError: not a path, a relative path, a path too long for a Unix socket,
            or a platform without Unix sockets or ``fcntl`` (a ``ValueError``).
    """
    if given is None:
        return None
    if isinstance(given, Plane):
        return given
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
    return Plane(path)
