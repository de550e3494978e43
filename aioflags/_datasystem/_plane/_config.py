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
    ``plane=`` (a ``str`` or ``os.PathLike``). ``source``: where the flags
    come from when that is not the SDK key's environment, as words its
    flag system ``system`` (a name) writes (flagd's: its sync server,
    selector...: ``DataSystem.flagd``); both are part of what the plane's
    processes must share (:func:`._wire.environment_of`).
    """

    __slots__ = ("path", "source", "system")
    path: str
    source: str | None
    system: str | None

    def __init__(
        self, path: str, source: str | None = None, system: str | None = None
    ) -> None:
        set_field(self, "path", path)
        set_field(self, "source", source)
        set_field(self, "system", None if source is None else system)

    @property
    def lock_path(self) -> str:
        """The lock file whose exclusive ``flock`` makes its holder the leader."""
        return self.path + ".lock"

    def __repr__(self) -> str:
        if self.source is None:
            return f"Plane({self.path!r})"
        return f"Plane({self.path!r}, source={self.source!r}, system={self.system!r})"


def plane_of(
    given: object, preset: str, source: str | None = None, system: str | None = None
) -> Plane | None:
    """``plane=`` of ``DataSystem.<preset>()``, checked: a :class:`Plane`, or None.

    ``source``: the flags' source in words, and ``system`` the name of the
    flag system that wrote them, for a preset that does not read the SDK
    key's environment (:class:`Plane`).

    Raises:
        ConfigurationError: not a path, a relative path, a path too long for a Unix socket,
            or a platform without Unix sockets or ``fcntl`` (a ``ValueError``).
    """
    if given is None:
        return None
    if isinstance(given, Plane):
        return given if source is None else Plane(given.path, source, system)
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
    return Plane(path, source, system)
