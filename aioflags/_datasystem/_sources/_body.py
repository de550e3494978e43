"""Response bodies read within limits: decompressed a bounded piece at a time, counted.

httpx decompresses a body one network read at a time: 64 KiB of a gzip bomb
(zeros shrink a thousandfold) became 64 MB in one call that held the event
loop for 0.3 s, and nothing counted the total. Here the raw bytes are
inflated by zlib in pieces of at most :data:`PIECE` bytes (``max_length``),
each piece is counted against the limit before the next one is made, and the
event loop gets a turn every few milliseconds (:class:`Pacer`): a body over
the limit costs the limit in memory, never more, and is refused without a
stall.

Data requests ask for ``gzip`` or ``deflate`` only (:data:`ACCEPT_ENCODING`,
what httpx asks for without its optional decoders). A body in an encoding
that was not asked for (``br``, ``zstd``) is still decoded by httpx if it
can, and counted the same way, but in pieces as big as httpx makes them.
"""

from __future__ import annotations

import zlib
from contextlib import aclosing
from typing import TYPE_CHECKING, Final, cast

import httpx

from aioflags._core._pacing import Pacer
from aioflags._datasystem._payloads import over_limit

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Iterator

__all__ = ["ACCEPT_ENCODING", "PIECE", "body_pieces", "read_body"]

#: The ``Accept-Encoding`` of data requests: the encodings inflated here.
ACCEPT_ENCODING: Final = "gzip, deflate"
#: The most bytes one step of decompression makes.
PIECE: Final = 64 * 1024
_GZIP: Final = ("gzip", "x-gzip")
_IDENTITY: Final = ("", "identity")


class _Inflater:
    """A gzip or deflate body's bytes, inflated :data:`PIECE` bytes at a time."""

    __slots__ = ("_encoding", "_first", "_request", "_zlib")

    def __init__(self, encoding: str, request: httpx.Request) -> None:
        gzip = encoding in _GZIP
        self._encoding = encoding
        self._request = request
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        # "deflate" is zlib-wrapped by the standard, raw from some servers:
        # as httpx does, a first chunk that is not zlib is tried as raw deflate.
        self._first = not gzip

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """What ``data`` inflates to, in pieces of at most :data:`PIECE` bytes.

        Raises:
            httpx.DecodingError: the data is not what the encoding says.
        """
        try:
            if self._first and data:
                self._first = False
                try:
                    out = self._zlib.decompress(data, PIECE)
                except zlib.error:
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    out = self._zlib.decompress(data, PIECE)
            else:
                out = self._zlib.decompress(data, PIECE)
            while True:
                if out:
                    yield out
                data = self._zlib.unconsumed_tail
                # A full piece may leave output inside zlib with no input left.
                if self._zlib.eof or (not data and len(out) < PIECE):
                    return
                out = self._zlib.decompress(data, PIECE)
        except zlib.error as exc:
            raise self._error(exc) from None

    def rest(self) -> bytes:
        """What is left once the raw body has ended (nothing, as a rule).

        Raises:
            httpx.DecodingError: the data is not what the encoding says.
        """
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise self._error(exc) from None

    def _error(self, exc: zlib.error) -> httpx.DecodingError:
        return httpx.DecodingError(
            f"the body is not valid {self._encoding}: {exc}", request=self._request
        )


async def body_pieces(
    response: httpx.Response,
    *,
    limit: int | None = None,
    what: str = "the body",
    on_bytes: Callable[[int], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """A streamed response's body, decompressed, in bounded pieces.

    With ``limit`` (``Config.max_payload_bytes``), a body that decompresses
    to more bytes than that raises before the piece that crosses it is
    yielded. The event loop gets a turn at least every few milliseconds.
    ``on_bytes`` is told how many bytes each network read brought (before
    decompression): the run's progress (``_context.Progress``).

    Raises:
        ProtocolError: the body is over ``limit``.
        httpx.HTTPError: the connection failed, or the body is not in the
            encoding its ``Content-Encoding`` names (``DecodingError``).
    """
    encoding = response.headers.get("content-encoding", "").strip().lower()
    inflater = (
        _Inflater(encoding, response.request)
        if encoding in (*_GZIP, "deflate")
        else None
    )
    # httpx types these as iterators; they are async generators, closed now
    # (not when collected) so that the connection is released at once. An
    # encoding not asked for is left to httpx (it raises if it cannot).
    raw = (
        response.aiter_raw()
        if encoding in _IDENTITY or inflater
        else response.aiter_bytes()
    )
    total = 0
    pacer = Pacer()
    async with aclosing(cast("AsyncGenerator[bytes, None]", raw)) as chunks:
        async for chunk in chunks:
            if on_bytes is not None:
                on_bytes(len(chunk))
            for piece in (chunk,) if inflater is None else inflater.pieces(chunk):
                total += len(piece)
                if limit is not None and total > limit:
                    raise over_limit(what, limit)
                yield piece
                if pacer.due():
                    await pacer.pause()
    last = b"" if inflater is None else inflater.rest()
    if limit is not None and total + len(last) > limit:
        raise over_limit(what, limit)
    if last:
        yield last


async def read_body(
    response: httpx.Response,
    *,
    limit: int,
    what: str,
    on_bytes: Callable[[int], None] | None = None,
) -> bytes:
    """The whole body, decompressed (see :func:`body_pieces`, and its ``on_bytes``).

    Raises:
        ProtocolError: the body is over ``limit``.
        httpx.HTTPError: the connection failed, or the body is not in its encoding.
    """
    pieces = body_pieces(response, limit=limit, what=what, on_bytes=on_bytes)
    async with aclosing(pieces):
        return b"".join([piece async for piece in pieces])
