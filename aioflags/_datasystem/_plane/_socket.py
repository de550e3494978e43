"""The plane's connections, on the event loop's transports rather than on raw sockets.

anyio's asyncio backend gives a Unix socket's stream (``connect_unix``,
a Unix listener's ``accept``) that waits for data with a future the
event loop's reader callback resolves. A read cancelled in the same turn
of the loop as the socket becomes readable (a follower that gives up on
its leader as data arrives; a leader that drops a follower as its bytes
come; every process after a SIGSTOP, when everything is due at once)
leaves that callback to resolve a cancelled future, and asyncio logs an
``InvalidStateError`` traceback at ERROR. A stream over the loop's
transport (as every TCP stream of anyio is) has no such future: the
plane's connections are moved onto one as soon as they are made.
"""

from __future__ import annotations

import errno

import anyio
from anyio.abc import SocketAttribute, SocketStream

from ._lock import inherit_not

__all__ = ["transported"]


async def transported(stream: SocketStream) -> SocketStream:
    """The connection of ``stream`` on a transport's stream; ``stream`` itself is closed.

    The new stream's socket is one a forked child does not keep
    (:func:`._lock.inherit_not`).

    Raises:
        OSError: no file descriptor left to move it with, or the connection
            has ended (``stream`` is closed either way).
    """
    try:
        sock = stream.extra(SocketAttribute.raw_socket).dup()
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
    try:
        moved = await SocketStream.from_socket(sock)
    except ValueError:  # pragma: no cover - (macOS: the other end has gone)
        sock.close()
        raise OSError(errno.ENOTCONN, "the plane's connection has ended") from None
    except BaseException:
        sock.close()
        raise
    inherit_not(sock)
    return moved
