"""Serve an ASGI app on a socket we bound, with Hypercorn, on the running backend.

Hypercorn is the maintained ASGI server that runs on both of anyio's
backends (asyncio and trio), so a :class:`FlagServer` entered under trio
serves as it does under asyncio. It owns HTTP: parsing, keep-alive, the
header size cap, the idle timeout before a request, one connection's failure
never touching another's, and accept errors (``EMFILE``) survived.

It is served through its documented entry points, ``hypercorn.asyncio.serve``
and ``hypercorn.trio.serve``, on a socket we bound ourselves (so the port is
known before the first request, and a test's ``port=0`` works): its
configuration's ``create_sockets()`` gives Hypercorn that socket (``fd://N``
would do it too, but Hypercorn makes such a socket inheritable, and a child
process then holds the port after the server has stopped). The socket is
closed by its owner whatever happens.

asyncio's (and trio's) accept errors and the tracebacks a stopped server
leaves behind are asyncio's own logging: only ``aioflags serve``, an
application configuring its own process, filters them
(:func:`filter_loop_noise`); a ``FlagServer`` in a user's tests or app
leaves every logger of the process as it was (issue 77).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from hypercorn.config import Config

    from aioflags._asgi._limits import Limits

__all__ = ["bind", "filter_loop_noise", "serve_asgi"]

logger = logging.getLogger("aioflags.testing")

#: During a shortage, whether it is over is asked this often; it is over once
#: no accept failed for :data:`_SHORTAGE_QUIET` seconds (asyncio retries its
#: accepts every second) and a descriptor is free.
_SHORTAGE_PROBE: Final = 1.0
_SHORTAGE_QUIET: Final = 2.0
#: What asyncio's and trio's accept loops log, with a traceback, for each
#: accept that fails for want of resources (by logger).
_SHORTAGE_RECORDS: Final = {
    "asyncio": "socket.accept() out of system resource",
    "trio.serve_listeners": "accept returned ",
}


class _Shortage(logging.Filter):
    """One log line when accepting fails for want of resources, one when it works again.

    asyncio's accept loop logs an ERROR with a traceback for each accept
    that fails so, ``backlog`` (1,024) times per wake-up: ``serve`` logged
    52,862 of them (21 MB) in 16 s out of file descriptors. In ``aioflags
    serve``'s process (:func:`filter_loop_noise`), this filter sits on
    asyncio's (and trio's) logger: the first such record of an episode
    becomes one WARNING on ``aioflags.testing``, the others are counted and
    dropped, and the episode's end (no accept failed for 2 s, and a
    descriptor is free) is said with how many were dropped. Other records
    pass. There is one for the process, as its descriptors are.
    """

    def __init__(self) -> None:
        super().__init__()
        self.users = 0
        #: When the episode began (None: accepting works), and how many
        #: failed accepts it has not logged.
        self.since: float | None = None
        self.hidden = 0
        #: When an accept last failed.
        self.last = 0.0
        #: Tasks waiting for an episode to begin, by thread (events are the
        #: thread's own event loop's).
        self._waiting: dict[anyio.Event, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        start = _SHORTAGE_RECORDS.get(record.name)
        if start is None or not str(record.msg).startswith(start):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        self.begin(exc.strerror if isinstance(exc, OSError) else None)
        return False

    def begin(self, why: str | None) -> None:
        """An accept failed for want of resources."""
        self.last = time.monotonic()
        if self.since is not None:
            self.hidden += 1
            return
        self.since, self.hidden = self.last, 0
        logger.warning(
            "FlagServer: cannot accept connections (%s); retrying until "
            "resources are free, and saying so (accept errors are not logged "
            "until then)",
            why or "out of file descriptors or memory",
        )
        here = threading.get_ident()
        for event, thread in list(self._waiting.items()):
            if thread == here:
                event.set()

    def end(self) -> None:
        """Accepting works again (a free descriptor, no failure for a while)."""
        if self.since is None or time.monotonic() - self.last < _SHORTAGE_QUIET:
            return
        if not _descriptor_free():
            return
        logger.warning(
            "FlagServer: accepting connections again after %.1f s (%d failed "
            "accepts not logged)",
            time.monotonic() - self.since,
            self.hidden,
        )
        self.since = None

    async def wait_begin(self) -> None:
        """Wait until an episode begins."""
        event = anyio.Event()
        self._waiting[event] = threading.get_ident()
        try:
            await event.wait()
        finally:
            del self._waiting[event]

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Filter asyncio's and trio's accept records meanwhile."""
        if self.users == 0:
            for name in _SHORTAGE_RECORDS:
                logging.getLogger(name).addFilter(self)
        self.users += 1
        try:
            yield
        finally:
            self.users -= 1
            if self.users == 0:
                for name in _SHORTAGE_RECORDS:
                    logging.getLogger(name).removeFilter(self)


_SHORTAGE: Final = _Shortage()


class _StoppedServerNoise(logging.Filter):
    """Drops asyncio's tracebacks for what a stopped server leaves behind.

    Neither is an error of anyone's, and both are logged after the fact:

    - Python 3.11 logs one for each connection task Hypercorn cancels as it
      stops (its stream callback asks a cancelled task for its exception;
      3.12 checks ``task.cancelled()`` first);
    - an accept that failed for want of descriptors is retried a second
      later by a timer that nothing cancels: if the server has closed its
      socket meanwhile, the retry logs ``Invalid file descriptor: -1``.

    In ``aioflags serve``'s process (:func:`filter_loop_noise`) it sits on
    asyncio's logger until the event loop has ended (the retry may come
    after the server has stopped); it drops those two records, and nothing
    else.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = str(record.msg)
        if message.startswith(_CANCELLED_CONNECTION):
            return not isinstance(exc, asyncio.CancelledError)
        if message.startswith(_STALE_RETRY):
            return not (isinstance(exc, ValueError) and "-1" in str(exc))
        return True


_CANCELLED_CONNECTION: Final = (
    "Exception in callback StreamReaderProtocol.connection_made.<locals>.callback"
)
_STALE_RETRY: Final = "Exception in callback BaseSelectorEventLoop._start_serving"
_NOISE: Final = _StoppedServerNoise()


@contextlib.contextmanager
def filter_loop_noise() -> Iterator[None]:
    """For ``aioflags serve``'s process only: filter the event loops' noise meanwhile.

    An application may configure its own process; a library may not: a
    ``FlagServer`` in a user's tests or app installs no filter, and asyncio
    logs there as it always does. Meanwhile, a server that cannot accept
    says so in one line and again when it can (:class:`_Shortage`), and
    what a stopped server leaves behind is not logged
    (:class:`_StoppedServerNoise`). Around the whole event loop's run.
    """
    noise = logging.getLogger("asyncio")
    noise.addFilter(_NOISE)
    try:
        with _SHORTAGE.installed():
            yield
    finally:
        noise.removeFilter(_NOISE)


def _descriptor_free() -> bool:
    """Whether this process can open a file descriptor now."""
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return False
    os.close(fd)
    return True


async def _say_when_shortage_ends() -> None:
    """Wait for each shortage, then for a free descriptor, and end the episode."""
    while True:
        await _SHORTAGE.wait_begin()
        while _SHORTAGE.since is not None:
            await anyio.sleep(_SHORTAGE_PROBE)
            _SHORTAGE.end()


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port)."""
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    # IPv4 first: "localhost" then binds where clients try first.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_asgi(
    app: Any,  # (an ASGI app: Hypercorn and Starlette each type it their own way)
    sock: socket.socket,
    shutdown: Callable[[], Awaitable[None]],
    limits: Limits,
) -> None:
    """Serve ``app`` on ``sock`` until ``shutdown()`` returns; ``sock`` is closed after.

    Within ``limits``: a connection idle for ``idle_timeout`` (before its
    first request is complete, and between requests) is closed, a request
    head still arriving past ``max_head`` bytes is refused (HTTP/1.1; the
    app refuses a whole one: ``HeadLimit``), an HTTP/2 header list too,
    ``backlog`` connections wait.
    """
    config = _config(sock)
    config.keep_alive_timeout = limits.idle_timeout
    config.h11_max_incomplete_size = limits.max_head
    config.h2_max_header_list_size = limits.max_head
    config.backlog = limits.backlog
    # The service ends its own streams before it shuts Hypercorn down.
    config.graceful_timeout = 1.0
    config.include_server_header = False
    # The event endpoints write their own Date (FlagServer.clock_skew moves it).
    config.include_date_header = False
    config.accesslog = None
    config.errorlog = logger
    try:
        async with anyio.create_task_group() as tg:
            if _SHORTAGE.users:  # (aioflags serve: filter_loop_noise)
                tg.start_soon(_say_when_shortage_ends)
            # anyio's own answer to "which backend": trio's Cancelled or asyncio's.
            if anyio.get_cancelled_exc_class().__module__.startswith("trio"):
                from hypercorn.trio import serve
            else:
                from hypercorn.asyncio import serve  # type: ignore[assignment]
            await serve(app, config, shutdown_trigger=shutdown, mode="asgi")
            tg.cancel_scope.cancel()
    finally:
        sock.close()  # the same object Hypercorn used: closing twice is a no-op


def _config(sock: socket.socket) -> Config:
    """Hypercorn's configuration, serving ``sock`` (what ``create_sockets`` gives)."""
    from hypercorn.config import Config, Sockets

    class Bound(Config):
        def create_sockets(self) -> Sockets:
            return Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])

    return Bound()
