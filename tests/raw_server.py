"""A raw HTTP/1.1 server on 127.0.0.1 whose answers a test writes byte for byte.

``FlagServer`` answers as a flag service should. Some tests need answers no
HTTP framework sends: a body trickled one byte at a time for ever, a body
far longer than any client should read. Each request here is answered by
the next scripted :data:`Answer` (or the default one), a coroutine writing
to the socket. The server counts the clients that hung up on an answer
(the socket refused a write), which is how a test sees that the client
stopped reading.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

#: Writes one answer; returns whether the connection may carry another request.
Answer = Callable[[anyio.abc.SocketStream], Awaitable[bool]]
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


def complete(status: int = 200, body: bytes = b"", headers: bytes = b"") -> Answer:
    """A whole answer at once, with its ``content-length`` (the connection stays)."""

    async def answer(stream: anyio.abc.SocketStream) -> bool:
        await stream.send(
            b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n" % (status, len(body))
            + headers
            + b"\r\n"
            + body
        )
        return True

    return answer


def trickled(every: float, status: int = 200, *, head: bool = False) -> Answer:
    """A head announcing a 1 MB body, then one byte of it every ``every`` seconds.

    With ``head``, the head itself is trickled, from its first byte. Each
    byte comes well within any read timeout the tests set: only a deadline
    on the whole request ends it.
    """

    async def answer(stream: anyio.abc.SocketStream) -> bool:
        start = b"HTTP/1.1 %d X\r\ncontent-length: 1000000\r\n\r\n" % status
        if not head:
            await stream.send(start)
        while True:
            await anyio.sleep(every)  # the pace of the trickle, not a wait
            await stream.send(start[:1] if head else b" ")
            start = start[1:] or b" "

    return answer


def long_body(size: int, status: int = 202) -> Answer:
    """An answer whose body is ``size`` bytes, sent in 64 KiB pieces as fast as read."""
    piece = b" " * 65536

    async def answer(stream: anyio.abc.SocketStream) -> bool:
        await stream.send(
            b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n" % (status, size)
        )
        for _ in range(size // len(piece)):
            await stream.send(piece)
        return True

    return answer


class RawServer:
    """Answers each request with the next scripted :data:`Answer`, else ``default``."""

    def __init__(self, default: Answer) -> None:
        self.default = default
        self.url = ""
        #: The path of each request received, in order.
        self.paths: list[str] = []
        #: How many answers the client hung up on before they were written.
        self.hung_up = 0
        self._script: list[Answer] = []
        self._changed = anyio.Event()

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order."""
        self._script.extend(answers)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self.url = f"http://127.0.0.1:{port}"
        async with listener:
            task_status.started()
            await listener.serve(self._handle)

    async def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until ``predicate()`` holds; it is checked each time something happens."""
        try:
            with anyio.fail_after(30):  # a guard with a message, not a timing
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"the server never saw {what}") from None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            keep = True
            while keep:
                try:
                    head = await reader.receive_until(b"\r\n\r\n", 65536)
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    await reader.receive_exactly(length)
                except (*_GONE, anyio.IncompleteRead, anyio.DelimiterNotFound):
                    return
                self.paths.append(head.split(b" ")[1].split(b"?")[0].decode())
                self._notify()
                answer = self._script.pop(0) if self._script else self.default
                try:
                    keep = await answer(stream)
                except _GONE:
                    self.hung_up += 1
                    self._notify()
                    return


@asynccontextmanager
async def raw_server(default: Answer) -> AsyncIterator[RawServer]:
    """A running :class:`RawServer`, stopped on exit."""
    server = RawServer(default)
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        yield server
        tg.cancel_scope.cancel()
