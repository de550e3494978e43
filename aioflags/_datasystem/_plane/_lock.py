"""Who leads: an exclusive ``flock`` on the plane's lock file, freed by the OS however its holder ends.

The lock file is opened close-on-exec, and a forked child closes its copy
without unlocking (``os.register_at_fork``): a fork after the client
started (gunicorn's ``--preload``) never holds, or frees, its parent's
lock. The file itself is never deleted: another process may be waiting on
it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import weakref
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    import socket

__all__ = [
    "Lease",
    "PlaneUnusable",
    "check_usable",
    "inherit_not",
    "other_user",
    "try_lead",
]

#: The leases this process holds, and the plane's sockets it has open.
_HELD: Final[weakref.WeakSet[Lease]] = weakref.WeakSet()
_SOCKETS: Final[weakref.WeakSet[socket.socket]] = weakref.WeakSet()


def inherit_not(sock: socket.socket) -> None:
    """A plane socket (the leader's listener, a follower's connection) a forked child must not keep."""
    _SOCKETS.add(sock)


def _close_inherited() -> None:
    """In a forked child: close the parent's lease files and plane sockets, never unlocking.

    ``flock`` locks belong to the open file description the parent and the
    child now share: unlocking here would free the parent's lock; closing
    this copy leaves it held by the parent, and its sockets end when the
    parent's do (a follower of a dead leader is told so).
    """
    for lease in list(_HELD):
        fd, lease._fd = lease._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    for sock in list(_SOCKETS):
        with contextlib.suppress(OSError):
            os.close(sock.detach())
    _HELD.clear()
    _SOCKETS.clear()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_close_inherited)


class PlaneUnusable(Exception):
    """The plane's path cannot be used (not a socket, not a regular lock file...): why, naming it."""


@final
class Lease:
    """The exclusive lock on a plane's lock file: this process leads until :meth:`release`."""

    __slots__ = ("__weakref__", "_fd")

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        _HELD.add(self)

    def release(self) -> None:
        """Free the lock (closing the file frees it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _HELD.discard(self)
            with contextlib.suppress(OSError):
                os.close(fd)


def try_lead(lock_path: str) -> Lease | None:
    """The lease, if no other process leads now; None if one does.

    The lock file is made (``0600``) if it is not there; it is never
    followed as a link.

    Raises:
        PlaneUnusable: it cannot be opened, or it is not a regular file.
    """
    import fcntl

    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(lock_path, flags, 0o600)
    except OSError as exc:
        raise PlaneUnusable(
            f"cannot open the plane's lock file {lock_path} ({exc.strerror or exc})"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PlaneUnusable(
                f"the plane's lock file {lock_path} is not a regular file: left as it is"
            )
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as exc:  # no locks there (a network filesystem...)
        os.close(fd)
        raise PlaneUnusable(
            f"cannot lock the plane's lock file {lock_path} ({exc.strerror or exc})"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return Lease(fd)


def socket_at(path: str) -> bool:
    """Whether a socket is at the plane's ``path`` (False: nothing is).

    Raises:
        PlaneUnusable: something else is there (left as it is), or the
            path cannot be looked at.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise PlaneUnusable(
            f"cannot use the plane's path {path} ({exc.strerror or exc})"
        ) from None
    if not stat.S_ISSOCK(found.st_mode):
        raise PlaneUnusable(f"the plane's path {path} is not a socket: left as it is")
    return True


def check_usable(path: str) -> None:
    """Raise :class:`PlaneUnusable` if the plane at ``path`` cannot be used as it is now.

    Something that is not a socket at ``path`` (a file, a folder), or a
    lock file that cannot be opened or is not a regular file. Nothing is
    made or changed.
    """
    socket_at(path)
    lock_path = path + ".lock"
    try:
        found = os.lstat(lock_path)
    except FileNotFoundError:
        folder = os.path.dirname(path) or "."
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PlaneUnusable(
                f"cannot make the plane's lock file in {folder}: not writable"
            ) from None
        return
    except OSError as exc:
        raise PlaneUnusable(
            f"cannot use the plane's lock file {lock_path} ({exc.strerror or exc})"
        ) from None
    if not stat.S_ISREG(found.st_mode):
        raise PlaneUnusable(
            f"the plane's lock file {lock_path} is not a regular file: left as it is"
        )
    if not os.access(lock_path, os.R_OK | os.W_OK):
        raise PlaneUnusable(f"cannot open the plane's lock file {lock_path}")


def other_user(sock: socket.socket) -> bool:
    """Whether the process at the other end of a plane socket runs as another user.

    Read from the kernel (``SO_PEERCRED``, Linux): a plane takes data only
    from, and gives it only to, processes of its own user, whoever made
    the socket or the lock file. Where the platform cannot say, False (the
    socket's mode and its folder's are what protect it then).
    """
    import socket as sockets
    import struct

    option = getattr(sockets, "SO_PEERCRED", None)
    if option is None:  # pragma: no cover - not Linux
        return False
    try:
        raw = sock.getsockopt(sockets.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return False
    _, uid, _ = struct.unpack("3i", raw)
    return bool(uid != os.geteuid())
