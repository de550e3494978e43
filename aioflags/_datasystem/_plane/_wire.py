"""The plane's wire: a hello line each way, then FDv2 events, one JSON object a line.

Each side's first line names the wire's version and the environment (a
hash of the SDK key, never the key)::

    aioflags-plane 1 <environment>

The leader answers a follower of another environment or version with its
own hello and ``refused: <why>``, and closes. Then the leader sends FDv2's
events as a poll body holds them (``{"event": ..., "data": ...}``), one a
line: a ``server-intent``, the ``put-object`` events of its whole data set
and a ``payload-transferred`` with its selector; then each change set it
applies, the same way (``xfer-changes``); and ``plane-status`` events, its
data-source status, and FDv2's ``heart-beat`` event when it has had
nothing else to send for a while (at least once a second: a follower that
hears nothing for three takes the leader for gone). A follower reads them
with FDv2's own event code
(:func:`aioflags._datasystem._payloads._poll_event`).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Final

import anyio

from aioflags._datasystem._datatypes import IntentCode, SourceState

if TYPE_CHECKING:
    from aioflags._datasystem._datatypes import DataSourceStatus, Selector

__all__ = [
    "GONE",
    "HEARTBEAT",
    "MAX_HELLO",
    "VERSION",
    "changes",
    "environment_of",
    "hello",
    "read_hello",
    "status",
]

#: What the other side's going away raises, on either side of the wire.
GONE: Final = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
#: The leader's line when it has nothing else to send (FDv2's own heartbeat).
HEARTBEAT: Final = b'{"event":"heart-beat"}\n'
#: The wire's version: a follower of another one is refused.
VERSION: Final = 1
#: The longest hello line either side reads, in bytes.
MAX_HELLO: Final = 512
_MAGIC: Final = "aioflags-plane"
_COMPACT: Final = (",", ":")


def environment_of(sdk_key: str | None, payload_filter: str | None = None) -> str:
    """The environment a plane names: a hash of the SDK key and payload filter (never the key).

    The payload filter is part of it: a follower never takes a subset of
    the flags another filter chose.
    """
    named = f"aioflags-plane:{sdk_key or ''}:{payload_filter or ''}"
    return hashlib.sha256(named.encode()).hexdigest()[:32]


def hello(environment: str, refused: str | None = None) -> bytes:
    """This side's first line (the leader's, with ``refused``, says why it closes)."""
    line = f"{_MAGIC} {VERSION} {environment}"
    if refused is not None:
        line += " refused: " + refused.replace("\n", " ")
    return (line + "\n").encode()


def read_hello(line: bytes) -> tuple[int, str, str | None] | None:
    """A hello line's version, environment and refusal (None: no hello at all)."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    magic, _, rest = text.partition(" ")
    version, _, rest = rest.partition(" ")
    environment, _, refusal = rest.partition(" ")
    if magic != _MAGIC or not (version.isascii() and version.isdigit()):
        return None
    if not environment:
        return None
    why = refusal.removeprefix("refused: ") if refusal else None
    return int(version), environment, why


def _line(text: str) -> str:
    """An event's text on one line (a pretty-printed poll body's spans several)."""
    if "\n" in text or "\r" in text:
        return json.dumps(json.loads(text), separators=_COMPACT)
    return text


def changes(intent: IntentCode, events: list[str], selector: Selector) -> bytes:
    """A payload: its ``server-intent``, ``events`` and ``payload-transferred``, a line each."""
    code = "xfer-full" if intent is IntentCode.TRANSFER_FULL else "xfer-changes"
    head = json.dumps(
        {
            "event": "server-intent",
            "data": {
                "payloads": [
                    {"id": "plane", "target": selector.version, "intentCode": code}
                ]
            },
        },
        separators=_COMPACT,
    )
    tail = json.dumps(
        {
            "event": "payload-transferred",
            "data": {"state": selector.state, "version": selector.version},
        },
        separators=_COMPACT,
    )
    lines = [head, *map(_line, events), tail]
    return ("\n".join(lines) + "\n").encode()


def status(current: DataSourceStatus, environment_id: str | None = None) -> bytes:
    """A ``plane-status`` event: the leader's data-source state and last error.

    ``environment_id``: the environment's id the flag service named
    (``X-LD-EnvID``), for the followers' hooks as for the leader's.
    """
    error = current.error
    data: dict[str, object] = {
        "heartbeat": True,  # (a follower watches its silence: a leader before them had none)
        "state": current.state.value,
        "error": None
        if error is None or current.state is SourceState.VALID
        else {
            "kind": error.kind.value,
            "message": error.message,
            "status_code": error.status_code,
        },
    }
    if environment_id is not None:
        data["environment_id"] = environment_id
    return (
        json.dumps({"event": "plane-status", "data": data}, separators=_COMPACT) + "\n"
    ).encode()
