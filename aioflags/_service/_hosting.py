"""Serve an ASGI app on a socket we bound, with Hypercorn, on the running backend.

Hypercorn is the maintained ASGI server that runs on both of anyio's
backends (asyncio and trio), so a :class:`FlagServer` entered under trio
serves as it does under asyncio. It owns HTTP: parsing, keep-alive, the
header size cap, the idle timeout before a request, one connection's failure
never touching another's, and accept errors (``EMFILE``) survived.

Its documented entry point binds its own sockets and does not say which port
it got; ``worker_serve`` (what ``hypercorn.asyncio.serve`` and
``hypercorn.trio.serve`` call, the same signature since Hypercorn 0.11) takes
sockets we bound ourselves, so the port is known before the first request and
the socket is closed by its owner whatever happens.

:func:`relay` is the one hand-written piece beside it: ASGI has no event for
a connection opening or closing, and FlagServer's tests count both. It
accepts on the public socket, opens one connection to Hypercorn per accepted
one, and copies bytes both ways; see :func:`relay`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Final

import anyio
import anyio.abc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from anyio.abc import SocketStream

    from ._host import ASGIApp
    from ._limits import Limits

__all__ = ["bind", "relay", "serve_asgi"]

logger = logging.getLogger("aioflags.testing")

#: Seconds a client may go on sending once the server has answered and
#: closed (it reads the answer, not a reset), before the relay closes.
_LINGER: Final = 2.0
#: An accept that fails for want of resources is retried after this long.
_ACCEPT_RETRY: Final = 0.1
_ACCEPT_RESOURCES: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)
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
    52,862 of them (21 MB) in 16 s out of file descriptors. While a server
    runs, this filter sits on asyncio's (and trio's) logger: the first such
    record of an episode becomes one WARNING on ``aioflags.testing``, the
    others are counted and dropped, and the episode's end (no accept failed
    for 2 s, and a descriptor is free) is said with how many were dropped.
    Other records pass. There is one for the process, as its descriptors are.
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
    app: ASGIApp,
    sock: socket.socket,
    shutdown: Callable[[], Awaitable[None]],
    limits: Limits,
) -> None:
    """Serve ``app`` on ``sock`` until ``shutdown()`` returns; ``sock`` is closed after.

    Within ``limits``: a connection idle for ``idle_timeout`` (before its
    first request is complete, and between requests) is closed, a request
    head is at most ``max_head`` bytes, ``backlog`` connections wait.
    """
    from hypercorn.config import Config, Sockets
    from hypercorn.utils import wrap_app

    config = Config()
    config.keep_alive_timeout = limits.idle_timeout
    config.h11_max_incomplete_size = limits.max_head
    config.backlog = limits.backlog
    # The service ends its own streams before it shuts Hypercorn down.
    config.graceful_timeout = 1.0
    config.include_server_header = False
    # The event endpoints write their own Date (FlagServer.clock_skew moves it).
    config.include_date_header = False
    config.accesslog = None
    config.errorlog = logger
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    try:
        with _SHORTAGE.installed():
            async with anyio.create_task_group() as tg:
                tg.start_soon(_say_when_shortage_ends)
                # anyio's own answer to "which backend": trio's Cancelled or
                # asyncio's.
                if anyio.get_cancelled_exc_class().__module__.startswith("trio"):
                    from hypercorn.trio.run import worker_serve as trio_serve

                    await trio_serve(
                        wrapped, config, sockets=sockets, shutdown_trigger=shutdown
                    )
                else:
                    from hypercorn.asyncio.run import worker_serve as asyncio_serve

                    await asyncio_serve(
                        wrapped, config, sockets=sockets, shutdown_trigger=shutdown
                    )
                tg.cancel_scope.cancel()
    finally:
        sock.close()  # the same object Hypercorn used: closing twice is a no-op


async def relay(
    listener: socket.socket,
    upstream: tuple[str, int],
    opened: Callable[[int], int],
    closed: Callable[[int], None],
    idle_timeout: float,
) -> None:
    """Accept on ``listener`` and relay each connection to ``upstream``.

    ``opened(local_port)`` is called with the port of the relay's own
    connection to ``upstream`` (what the app sees as its client) and returns
    the connection's number; ``closed(number)`` once both ends are closed.
    Either end closing closes the other: a server that drops a response
    mid-body drops the client's connection, and a client that goes away is a
    disconnect for the app. Copying waits for the slower side, so a client
    that stops reading stops the app's sends (backpressure), never a buffer.

    A connection is relayed once its client has sent something: one that
    sends nothing for ``idle_timeout`` seconds is closed, as Hypercorn closes
    one, and holds one descriptor meanwhile, not three (its own, the
    relay's to Hypercorn, Hypercorn's). Held idle connections that Hypercorn
    could not accept (out of descriptors) were kept open for ever, so the
    server did not serve again while they were held.

    An accept that fails for want of file descriptors is retried every
    0.1 s, logged once when it starts and once when accepting works again.
    """
    accepting = await anyio.abc.SocketListener.from_socket(listener)
    async with accepting, anyio.create_task_group() as tg:
        while True:
            try:
                client = await accepting.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_RESOURCES:
                    raise
                _SHORTAGE.begin(exc.strerror)
                await anyio.sleep(_ACCEPT_RETRY)
                continue
            tg.start_soon(_relay_one, client, upstream, opened, closed, idle_timeout)


async def _relay_one(
    client: SocketStream,
    upstream: tuple[str, int],
    opened: Callable[[int], int],
    closed: Callable[[int], None],
    idle_timeout: float,
) -> None:
    number: int | None = None
    try:
        async with client:
            first: bytes | None = None
            with anyio.move_on_after(idle_timeout):
                first = await client.receive()
            if first is None:
                return  # nothing sent: never relayed (nor counted)
            try:
                with anyio.fail_after(idle_timeout):
                    server = await anyio.connect_tcp(*upstream)
            except OSError:  # (TimeoutError included)
                number = opened(0)
                return
            async with server:
                number = opened(server.extra(anyio.abc.SocketAttribute.local_port))
                await server.send(first)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_upstream, client, server, tg.cancel_scope)
                    tg.start_soon(_downstream, server, client, tg.cancel_scope)
    except (OSError, anyio.EndOfStream, anyio.BrokenResourceError):
        pass  # closed or reset: the connection is over either way
    finally:
        if number is not None:
            closed(number)


_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


async def _upstream(
    client: SocketStream, server: SocketStream, both: anyio.CancelScope
) -> None:
    """The client's bytes to the server; once the server is gone, read and dropped.

    Hypercorn answers a request it refuses (a body too large, say) and
    closes before it has read the body: the relay then reads the rest of
    what the client sends, so that the client reads the answer rather than
    a reset (a lingering close, bounded by :func:`_downstream`).
    """
    gone = False
    try:
        async for chunk in client:
            if not gone:
                try:
                    await server.send(chunk)
                except _GONE:
                    gone = True
    except _GONE:
        pass
    both.cancel()


async def _downstream(
    server: SocketStream, client: SocketStream, both: anyio.CancelScope
) -> None:
    """The server's bytes to the client; when the server is done, the client is told.

    Then the client has :data:`_LINGER` seconds to read the answer and go
    (:func:`_upstream` drops what it still sends) before the relay closes.
    """
    try:
        async for chunk in server:
            await client.send(chunk)
        await client.send_eof()
    except _GONE:
        both.cancel()
        return
    await anyio.sleep(_LINGER)
    both.cancel()
