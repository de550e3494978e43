"""The plane's wire: a hello line each way, then FDv2 events, one JSON object a line.

Each side's first line names the wire's version and the environment (a
hash of the SDK key, never the key; of the flag source, for another flag
system's), and, for a flag source other than the SDK key's (flagd's sync
server), that source in words, as its flag system writes them
(percent-encoded: one token)::

    aioflags-plane 1 <environment>[ source=<flagd at host:port (...)>]

The leader answers a follower of another environment or version with its
own hello and ``refused: <why>`` (naming both sources), and closes. Then the leader sends FDv2's
events as a poll body holds them (``{"event": ..., "data": ...}``), one a
line: a ``server-intent``, the ``put-object`` events of its whole data set
and a ``payload-transferred`` with its selector; then each change set it
applies, the same way (``xfer-changes``); and ``plane-status`` events, its
data-source status, and FDv2's ``heart-beat`` event when it has had
nothing else to send for a while (at least once a second: a follower that
hears nothing for three takes the leader for gone). A follower reads them
with FDv2's own event code
(:func:`aioflags._datasystem._payloads._poll_event`).

Guards (issue 98) use the wire both ways, in the same one-line events:
a follower sends ``{"event":"guard-report","data":{"member":ID,
"counts":{...}}}``, its guards' cumulative counts (:func:`guard_report`),
at most :data:`MAX_GUARD_LINE` bytes a line; the leader sends
``{"event":"guard-decisions","data":{...}}``, what its guards decided
for every follower (:func:`guard_decisions`). Both are opaque to the
plane. A follower of an earlier version ignores ``guard-decisions`` (FDv2's
event code skips an event it does not know), and a leader of an earlier
version reads and drops what a follower sends: the version stays 1.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Final, NamedTuple, final
from urllib.parse import quote, unquote

import anyio

from aioflags._datasystem._datatypes import IntentCode, SourceState

if TYPE_CHECKING:
    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._datasystem._datatypes import DataSourceStatus, Selector

__all__ = [
    "GONE",
    "HEARTBEAT",
    "MAX_GUARD_LINE",
    "MAX_HELLO",
    "MAX_MEMBER",
    "VERSION",
    "Hello",
    "changes",
    "environment_of",
    "guard_decisions",
    "guard_report",
    "hello",
    "mismatch",
    "read_guard_report",
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
#: The longest line a follower may send after its hello (a guard report),
#: in bytes with its newline: a longer one drops the follower.
MAX_GUARD_LINE: Final = 1024 * 1024
#: The longest member id a guard report may name, in characters.
MAX_MEMBER: Final = 200
_MAGIC: Final = "aioflags-plane"
_COMPACT: Final = (",", ":")


def environment_of(
    sdk_key: str | None,
    payload_filter: str | None = None,
    source: str | None = None,
    system: str | None = None,
) -> str:
    """The environment a plane names: a hash of the SDK key and payload filter (never the key).

    The payload filter is part of it: a follower never takes a subset of
    the flags another filter chose. With ``source`` (in words, as the flag
    system named ``system`` writes it: ``Plane.source``), the flags are that
    source's, whatever the SDK key (it only sends events then): the hash is
    of the system and the source.
    """
    if source is not None:
        named = f"aioflags-plane:{system}:{source}"
    else:
        named = f"aioflags-plane:{sdk_key or ''}:{payload_filter or ''}"
    return hashlib.sha256(named.encode()).hexdigest()[:32]


#: What a hello's ``source=`` token holds at most, encoded, in bytes: the
#: whole hello (a refusal with it) stays within :data:`MAX_HELLO`, as the
#: processes of earlier versions read it.
_SOURCE_TOKEN: Final = 160
#: What a refusal says at most, in characters (two sources named, each cut short).
_REFUSAL: Final = 260
#: What the source token leaves as it is (printable ASCII but space and ``%``).
_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if c != ord("%"))


@final
class Hello(NamedTuple):
    """A hello line, read: its version, environment, refusal (None: none) and source (None: the SDK key's)."""

    version: int
    environment: str
    refused: str | None
    source: str | None = None


def _cut(text: str, most: int) -> str:
    """``text`` cut to ``most`` characters, saying so."""
    return text if len(text) <= most else text[: most - 3] + "..."


def hello(
    environment: str, refused: str | None = None, source: str | None = None
) -> bytes:
    """This side's first line (the leader's, with ``refused``, says why it closes).

    ``source``: the flag source in words when it is not the SDK key's
    environment (``Plane.source``): cut short to stay one short line.
    """
    line = f"{_MAGIC} {VERSION} {environment}"
    if source is not None:
        token = quote(source, safe=_SAFE)[:_SOURCE_TOKEN]
        if "%" in token[-2:]:  # (no escape cut in two)
            token = token[: token.rindex("%")]
        line += " source=" + token
    if refused is not None:
        why = refused.replace("\n", " ").replace("\r", " ")
        line += " refused: " + _cut(why, _REFUSAL)
    return (line + "\n").encode()


def read_hello(line: bytes) -> Hello | None:
    """A hello line's version, environment, refusal and source (None: no hello at all)."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    magic, _, rest = text.partition(" ")
    version, _, rest = rest.partition(" ")
    environment, _, rest = rest.partition(" ")
    if magic != _MAGIC or not (version.isascii() and version.isdigit()):
        return None
    if not environment:
        return None
    source: str | None = None
    if rest.startswith("source="):
        token, _, rest = rest.partition(" ")
        source = unquote(token.removeprefix("source=")) or None
    why = rest.removeprefix("refused: ") if rest else None
    return Hello(int(version), environment, why, source)


def mismatch(leader: str | None, follower: str | None) -> str:
    """Why a leader and a follower of other environments do not share: both sources named.

    ``leader``, ``follower``: each one's flag source (None: the SDK key's
    environment, which is never named).
    """
    if leader is None and follower is None:
        return "another environment (another SDK key) leads this plane"
    what = "flag source" if leader and follower else "environment"
    key = "the flag service of an SDK key"
    return (
        f"another {what} leads this plane: the leader reads"
        f" {_cut(leader or key, 110)}, and the process {_cut(follower or key, 110)}"
    )


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


def guard_report(member: str, counts: JSONObject) -> bytes:
    """A follower's ``guard-report`` line: its guards' cumulative ``counts``, as ``member``.

    Raises:
        TypeError: ``counts`` holds what JSON cannot say.
        ValueError: the same (a number JSON has no spelling for, a cycle).
    """
    data = {"member": member, "counts": counts}
    text = json.dumps(
        {"event": "guard-report", "data": data},
        separators=_COMPACT,
        allow_nan=False,
    )
    return (text + "\n").encode()


def guard_decisions(decisions: JSONObject) -> bytes:
    """The leader's ``guard-decisions`` line: what every follower's guards apply.

    Raises:
        TypeError: ``decisions`` holds what JSON cannot say.
        ValueError: the same (a number JSON has no spelling for, a cycle).
    """
    text = json.dumps(
        {"event": "guard-decisions", "data": decisions},
        separators=_COMPACT,
        allow_nan=False,
    )
    return (text + "\n").encode()


def read_guard_report(item: JSONValue) -> tuple[str, JSONObject] | None:
    """A ``guard-report`` event's member and counts (None: not a well-formed one)."""
    data = item.get("data") if type(item) is dict else None
    if type(data) is not dict:
        return None
    member, counts = data.get("member"), data.get("counts")
    if type(member) is not str or not 0 < len(member) <= MAX_MEMBER:
        return None
    if type(counts) is not dict:
        return None
    return member, counts
