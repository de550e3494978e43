"""The strict SSE reader: line ends, fields and UTF-8, however the bytes are chunked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from aioflags._datasystem._sources._sse import LineSplitter, aiter_sse
from aioflags.sources import ProtocolError

STREAM = (
    "\ufeff: a comment\r\n"
    "event: put-object\r\n"
    'data: {"key": "caf\u00e9 \u2603"}\r\n'
    "id: 7\n"
    "retry: 1500\r"
    "\r"
    "event: heart-beat\n"
    "data: a\n"
    "data:b\n"
    "retry: soon\n"
    "id: bad\0id\n"
    "unknown: field\n"
    "\n"
    "\n"
    "event: unfinished"
).encode()
EXPECTED = [
    ("put-object", '{"key": "caf\u00e9 \u2603"}', "7", 1500),
    ("heart-beat", "a\nb", "7", None),  # the last id is kept; a bad retry ignored
]


async def events(chunks: Sequence[bytes]) -> list[tuple[str, str, str, int | None]]:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    response = httpx.Response(200, content=body())
    return [(e.event, e.data, e.id, e.retry) async for e in aiter_sse(response)]


@pytest.mark.asyncio
async def test_fields_comments_and_line_ends() -> None:
    assert await events([STREAM]) == EXPECTED


@pytest.mark.asyncio
async def test_every_split_point_gives_the_same_events() -> None:
    """CR LF split between chunks, and UTF-8 characters cut in half, change nothing."""
    for cut in range(1, len(STREAM)):
        assert await events([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
@example(cuts=[15, 15])  # an empty chunk right after a CR that a LF follows
@example(cuts=[99])  # a chunk that ends "CR CR event: heart-beat", then LF
def test_line_splitter_is_independent_of_chunking(cuts: list[int]) -> None:
    points = sorted(cuts)
    chunks = [
        STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)
    ]
    splitter = LineSplitter()
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    whole = LineSplitter().feed(STREAM)
    assert lines == whole
    assert whole[-1] == ""  # "event: unfinished" has no line end: never a line


@pytest.mark.asyncio
@pytest.mark.parametrize("cut", [0, 10, 18, 19, 20])
async def test_invalid_utf8_is_refused_and_names_the_line(cut: int) -> None:
    data = b'event: put-object\ndata: "v\xff\xfe2"\n\n'
    with pytest.raises(ProtocolError, match="invalid UTF-8 in stream line 2"):
        await events([data[:cut], data[cut:]])
