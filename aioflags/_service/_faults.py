"""Fault injection: how the service misbehaves for a request to an endpoint.

:class:`Fault` says how; :class:`FaultPlan` holds which fault the next
request to each path meets (``FlagServer.fail``, ``script`` and
``clear_faults``); the ``Faults`` middleware (``_middleware``) applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Fault", "FaultPlan"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """How the server misbehaves for one request to an endpoint.

    Attributes:
        status: answer with this status instead (the normal body is replaced by
            ``body`` or an error message).
        headers: extra response headers (e.g. ``{"X-LD-FD-Fallback": "true"}``).
        delay: seconds to wait before answering.
        hang: never answer (the connection stays open until the client closes it).
        body: raw body bytes instead of the normal payload (malformed JSON...).
        events: raw SSE text to send on a stream instead of the normal payload.
        close_after_events: on a stream, end the response cleanly after sending
            the payload (or ``events``) instead of keeping it open.
        abort_after_events: on a stream, drop the connection mid-body after
            sending the payload (or ``events``).
        hang_after_events: on a stream, stop sending anything but keep the
            connection open after the payload (or ``events``).
    """

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False
    body: bytes | None = None
    events: str | None = None
    close_after_events: bool = False
    abort_after_events: bool = False
    hang_after_events: bool = False


@final
class FaultPlan:
    """Which fault the next request to each path meets: scripted ones first, then a standing one."""

    __slots__ = ("_scripted", "_standing")

    def __init__(self) -> None:
        self._scripted: dict[str, list[Fault]] = {}
        self._standing: dict[str, Fault] = {}

    def fail(self, path: str, fault: Fault) -> None:
        """Apply ``fault`` to every request to ``path`` until cleared."""
        self._standing[path] = fault

    def script(self, path: str, faults: tuple[Fault, ...]) -> None:
        """Answer the next requests to ``path`` with these faults, in order, then normally."""
        self._scripted.setdefault(path, []).extend(faults)

    def clear(self, path: str | None = None) -> None:
        """Remove the faults of ``path`` (or of every endpoint)."""
        if path is None:
            self._scripted.clear()
            self._standing.clear()
        else:
            self._scripted.pop(path, None)
            self._standing.pop(path, None)

    def next_for(self, path: str) -> Fault | None:
        """The fault a request to ``path`` meets now (a scripted one is used up)."""
        queue = self._scripted.get(path)
        if queue:
            return queue.pop(0)
        return self._standing.get(path)
