"""What the service received: every request, and the analytics event posts.

A test reads them (``FlagServer.requests``, ``events``...); ``keep`` and
``keep_bytes`` bound them (``aioflags serve`` keeps 1,000 and 32 MiB). The
``Recording`` middleware (``_middleware``) records each request.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from aioflags._asgi._signal import Signal
    from aioflags._core._json import JSONValue

__all__ = ["RecordedRequest", "Recorder"]

#: A payload id longer than this is kept as its hash (ids are bounded in bytes).
_PAYLOAD_ID: Final = 64


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> JSONValue:
        """The body parsed as JSON."""
        value: JSONValue = json.loads(self.body)
        return value


@final
class Recorder:
    """The requests and event posts received, the oldest forgotten past the bounds.

    ``keep``: the last ``keep`` requests, event payloads and diagnostic
    events (None: all). ``keep_bytes``: only as many request bodies as fit
    in that many bytes, and as many event posts (their JSON) as fit in that
    many more; past it the oldest go first.
    """

    __slots__ = (
        "_body_bytes",
        "_event_bytes",
        "_keep",
        "_keep_bytes",
        "_payload_ids",
        "_seq",
        "_signal",
        "diagnostics",
        "payloads",
        "requests",
    )

    def __init__(
        self, signal: Signal, *, keep: int | None, keep_bytes: int | None
    ) -> None:
        self._signal = signal
        self._keep = keep
        self._keep_bytes = keep_bytes
        #: The requests, oldest first.
        self.requests: list[RecordedRequest] = []
        self._body_bytes = 0
        #: ``/bulk`` payloads and diagnostic events as received (JSON, gzip
        #: undone), numbered in arrival order.
        self.payloads: list[tuple[int, bytes]] = []
        self.diagnostics: list[tuple[int, bytes]] = []
        self._event_bytes = 0
        self._seq = itertools.count()
        self._payload_ids: dict[str, None] = {}  # in arrival order (to forget)

    def record(self, request: RecordedRequest) -> None:
        """Remember one request."""
        self.requests.append(request)
        self._body_bytes += len(request.body)
        if self._keep is not None and len(self.requests) > self._keep:
            self._body_bytes -= len(self.requests.pop(0).body)
        if self._keep_bytes is not None:
            while self._body_bytes > self._keep_bytes and self.requests:
                self._body_bytes -= len(self.requests.pop(0).body)
        self._signal.notify()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to ``path``."""
        return [r for r in self.requests if r.path == path]

    def first_delivery(self, payload_id: str | None) -> bool:
        """Whether an event payload is new: False for a retry of one received."""
        if payload_id is None:
            return True
        if len(payload_id) > _PAYLOAD_ID:  # (a UUID is 36 characters)
            payload_id = hashlib.blake2b(
                payload_id.encode(), digest_size=16
            ).hexdigest()
        if payload_id in self._payload_ids:
            return False
        self._payload_ids[payload_id] = None
        if self._keep is not None and len(self._payload_ids) > self._keep:
            del self._payload_ids[next(iter(self._payload_ids))]
        return True

    def keep_event(self, kept: list[tuple[int, bytes]], body: bytes) -> None:
        """Keep an event post's JSON in :attr:`payloads` or :attr:`diagnostics`.

        The two share ``keep_bytes``: past it the oldest of either goes first.
        """
        kept.append((next(self._seq), body))
        self._event_bytes += len(body)
        if self._keep is not None and len(kept) > self._keep:
            self._event_bytes -= len(kept.pop(0)[1])
        if self._keep_bytes is None:
            return
        payloads, diagnostics = self.payloads, self.diagnostics
        while self._event_bytes > self._keep_bytes:
            older = (
                payloads
                if payloads and (not diagnostics or payloads[0][0] < diagnostics[0][0])
                else diagnostics
            )
            self._event_bytes -= len(older.pop(0)[1])

    def clear_events(self) -> None:
        """Forget the event posts received so far."""
        self.payloads.clear()
        self.diagnostics.clear()
        self._event_bytes = 0
