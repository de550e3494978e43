"""The FlagServer's wire formats: FDv2 and FDv1 bodies and stream messages (protocol.md §3-§5).

Pure functions of the data set: the server (``_server.py``) decides
what to send when; this module only says how it is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aioflags._asgi._http import (
    etags,
    frame,
    respond,
    sse,
    stream_chunk,
    stream_end,
    stream_start,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from aioflags._core._json import JSONObject

__all__ = [
    "etags",
    "fdv1_body",
    "fdv1_delete",
    "fdv1_patch",
    "fdv1_put",
    "fdv2_delete",
    "fdv2_full",
    "fdv2_poll_body",
    "fdv2_put",
    "fdv2_up_to_date",
    "frame",
    "respond",
    "sse",
    "stream_chunk",
    "stream_end",
    "stream_start",
]

#: The payload id the test server announces in every server-intent.
PAYLOAD_ID: Final = "aioflags-test"


def _intent(version: int, code: str, reason: str) -> JSONObject:
    return {
        "payloads": [
            {"id": PAYLOAD_ID, "target": version, "intentCode": code, "reason": reason}
        ]
    }


def _put_data(kind: str, obj: JSONObject) -> JSONObject:
    return {"kind": kind, "key": obj["key"], "version": obj["version"], "object": obj}


def _transferred(state: str, version: int) -> JSONObject:
    return {"state": state, "version": version}


# ------------------------------------------------------------------- FDv2
def fdv2_full(
    objects: Iterable[tuple[str, JSONObject]], state: str, version: int
) -> str:
    """A full transfer on the FDv2 stream: intent, every object, transferred."""
    parts = [sse("server-intent", _intent(version, "xfer-full", "payload-missing"))]
    parts += [sse("put-object", _put_data(kind, obj)) for kind, obj in objects]
    parts.append(sse("payload-transferred", _transferred(state, version)))
    return "".join(parts)


def fdv2_up_to_date(version: int) -> str:
    """The FDv2 stream's answer to a client whose basis is current."""
    return sse("server-intent", _intent(version, "none", "up-to-date"))


def fdv2_put(kind: str, obj: JSONObject, state: str, version: int) -> str:
    """One changed object on the FDv2 stream, then the new state."""
    return sse("put-object", _put_data(kind, obj)) + sse(
        "payload-transferred", _transferred(state, version)
    )


def fdv2_delete(
    kind: str, key: str, item_version: int, state: str, version: int
) -> str:
    """One deleted object (its tombstone's ``item_version``), then the new state."""
    deleted = {"kind": kind, "key": key, "version": item_version}
    return sse("delete-object", deleted) + sse(
        "payload-transferred", _transferred(state, version)
    )


def fdv2_poll_body(
    objects: Iterable[tuple[str, JSONObject]],
    state: str,
    version: int,
    basis: str | None,
) -> JSONObject:
    """The ``/sdk/poll`` body: "up to date" for a current basis, else a full transfer."""
    if basis == state:
        return {
            "events": [
                {
                    "event": "server-intent",
                    "data": _intent(version, "none", "up-to-date"),
                }
            ]
        }
    events: list[JSONObject] = [
        {
            "event": "server-intent",
            "data": _intent(version, "xfer-full", "payload-missing"),
        }
    ]
    events += [{"event": "put-object", "data": _put_data(k, o)} for k, o in objects]
    events.append(
        {"event": "payload-transferred", "data": _transferred(state, version)}
    )
    return {"events": events}


# ------------------------------------------------------------------- FDv1
def fdv1_body(
    flags: Mapping[str, JSONObject], segments: Mapping[str, JSONObject]
) -> JSONObject:
    """The ``/sdk/latest-all`` body (and the FDv1 stream's ``put`` data)."""
    return {
        "flags": {k: dict(v) for k, v in flags.items()},
        "segments": {k: dict(v) for k, v in segments.items()},
    }


def fdv1_put(
    flags: Mapping[str, JSONObject], segments: Mapping[str, JSONObject]
) -> str:
    """The FDv1 stream's full data set."""
    return sse("put", {"path": "/", "data": fdv1_body(flags, segments)})


def fdv1_patch(kind: str, obj: JSONObject) -> str:
    """One changed object on the FDv1 stream."""
    return sse("patch", {"path": f"/{kind}s/{obj['key']}", "data": obj})


def fdv1_delete(kind: str, key: str, version: int) -> str:
    """One deleted object on the FDv1 stream."""
    return sse("delete", {"path": f"/{kind}s/{key}", "version": version})
