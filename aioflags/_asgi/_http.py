"""HTTP and SSE framing, written by hand for ASGI: what the service and OFREP send.

The local flag service's SDK streams and console and the OFREP handler
write their event streams and plain answers with these (no web framework
needed: ``OFREPApp`` runs without one).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.types import Send

    from aioflags._core._json import JSONValue

__all__ = [
    "etags",
    "frame",
    "respond",
    "sse",
    "stream_chunk",
    "stream_end",
    "stream_start",
]


def sse(event: str, data: JSONValue, *, event_id: int | None = None) -> str:
    """One SSE message of ``data`` as JSON (``event_id``: its ``id:`` line)."""
    return frame(event, json.dumps(data, separators=(",", ":")), event_id=event_id)


def frame(event: str, text: str, *, event_id: int | None = None) -> str:
    """One SSE message of ``text``, a line of JSON already written.

    The service's one writer of SSE framing: the SDK streams, OFREP's change
    stream and the console's page stream all send what it writes.
    """
    head = "" if event_id is None else f"id: {event_id}\n"
    return f"{head}event: {event}\ndata: {text}\n\n"


def stream_start() -> dict[str, Any]:
    """An event stream's ``http.response.start``: made fresh for each stream.

    (A middleware may add to a message's headers in place: a list shared by
    every stream would carry one stream's headers into the next ones.)
    """
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    return {"type": "http.response.start", "status": 200, "headers": headers}


def stream_end() -> dict[str, Any]:
    """The end of an event stream's body (a fresh message, as :func:`stream_start`)."""
    return {"type": "http.response.body", "body": b"", "more_body": False}


def stream_chunk(body: bytes) -> dict[str, Any]:
    """An event stream's next piece of body (more to come)."""
    return {"type": "http.response.body", "body": body, "more_body": True}


async def respond(
    send: Send,
    status: int,
    headers: Iterable[tuple[bytes, bytes]] = (),
    json_body: bytes | None = None,
) -> None:
    """A whole answer, for the parts that need no framework (OFREP, body limits).

    ``json_body``: JSON text, sent with its type and length (None: no body).
    """
    head = list(headers)
    if json_body is not None:
        head += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(json_body)).encode()),
        ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": json_body or b""})


def etags(header: str | None) -> list[str]:
    """The entity tags of an ``If-None-Match`` header (weak ones as strong)."""
    return [tag.strip().removeprefix("W/") for tag in (header or "").split(",")]
