"""Payload assembly: FDv2 events into change sets, FDv1 JSON into change sets.

Pure functions and one small state machine; the network sources feed them and
raise :class:`ProtocolError` for data they cannot use (protocol.md §2, §4, §5).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from ._datatypes import Change, ChangeKind, ChangeSet, IntentCode, ObjectKind, Selector
from ._exceptions import ProtocolError

if TYPE_CHECKING:
    from ._json import JSONObject, JSONValue

__all__ = [
    "ChangeSetBuilder",
    "fdv1_delete",
    "fdv1_full",
    "fdv1_patch",
    "parse_fdv2_poll",
]

logger = logging.getLogger("aioflags.datasource")
_KINDS: Final = {"flag": ObjectKind.FLAG, "segment": ObjectKind.SEGMENT}
_INTENTS: Final = {i.value: i for i in IntentCode}


def _field(data: JSONObject, name: str, typ: type, event: str) -> JSONValue:
    value = data.get(name)
    ok = type(value) is int if typ is int else isinstance(value, typ)
    if not ok:
        raise ProtocolError(f"{event}: {name!r} is missing or has the wrong type")
    return value


def _object(data: JSONValue, event: str) -> JSONObject:
    if not isinstance(data, dict):
        raise ProtocolError(f"{event}: data must be a JSON object")
    return data


class ChangeSetBuilder:
    """Assembles FDv2 events into change sets (protocol.md §2.2).

    Nothing is emitted before ``payload-transferred``. After a completed
    ``xfer-full`` the intent becomes ``xfer-changes``: later payloads on the
    same connection are deltas until a new ``server-intent``.
    """

    __slots__ = ("_changes", "_intent")

    def __init__(self) -> None:
        self._intent: IntentCode | None = None
        self._changes: list[Change] = []

    @property
    def intent(self) -> IntentCode | None:
        """The current intent, if a ``server-intent`` has been seen."""
        return self._intent

    def server_intent(self, data: JSONValue) -> IntentCode:
        """Handle ``server-intent``; returns the intent (``none`` means up to date)."""
        body = _object(data, "server-intent")
        payloads = body.get("payloads")
        if (
            not isinstance(payloads, list)
            or not payloads
            or not isinstance(payloads[0], dict)
        ):
            raise ProtocolError(
                "server-intent: 'payloads' must be a non-empty list of objects"
            )
        code = payloads[0].get("intentCode")
        intent = _INTENTS.get(code) if isinstance(code, str) else None
        if intent is None:
            raise ProtocolError(f"server-intent: unknown intentCode {code!r}")
        self._changes = []
        # Intent "none" means later objects (without a new intent) are deltas.
        self._intent = (
            IntentCode.TRANSFER_CHANGES
            if intent is IntentCode.TRANSFER_NONE
            else intent
        )
        return intent

    def put_object(self, data: JSONValue) -> None:
        """Queue a ``put-object`` (unknown kinds are ignored)."""
        body = _object(data, "put-object")
        kind = _field(body, "kind", str, "put-object")
        key = _field(body, "key", str, "put-object")
        version = _field(body, "version", int, "put-object")
        obj = _field(body, "object", dict, "put-object")
        if kind not in _KINDS:
            logger.debug("Ignoring put-object of unknown kind %r", kind)
            return
        self._changes.append(
            Change(
                action=ChangeKind.PUT,
                kind=_KINDS[kind],
                key=key,
                version=version,
                obj=obj,
            )
        )

    def delete_object(self, data: JSONValue) -> None:
        """Queue a ``delete-object`` (unknown kinds are ignored)."""
        body = _object(data, "delete-object")
        kind = _field(body, "kind", str, "delete-object")
        key = _field(body, "key", str, "delete-object")
        version = _field(body, "version", int, "delete-object")
        if kind not in _KINDS:
            logger.debug("Ignoring delete-object of unknown kind %r", kind)
            return
        self._changes.append(
            Change(
                action=ChangeKind.DELETE, kind=_KINDS[kind], key=key, version=version
            )
        )

    def error(self) -> None:
        """Handle an ``error`` event: drop pending changes, keep the intent."""
        self._changes = []

    def reset(self) -> None:
        """Forget everything (a new connection)."""
        self._intent = None
        self._changes = []

    def payload_transferred(self, data: JSONValue) -> ChangeSet:
        """Handle ``payload-transferred``: emit the change set and clear the queue."""
        body = _object(data, "payload-transferred")
        state = _field(body, "state", str, "payload-transferred")
        version = _field(body, "version", int, "payload-transferred")
        if self._intent is None:
            raise ProtocolError("changeset: cannot complete without a server-intent")
        change_set = ChangeSet(
            intent=self._intent,
            changes=tuple(self._changes),
            selector=Selector(state=state, version=version),
        )
        self._changes = []
        self._intent = IntentCode.TRANSFER_CHANGES
        return change_set


def parse_fdv2_poll(body: JSONValue) -> ChangeSet:
    """A ``/sdk/poll`` body (``{"events": [...]}``) as a change set (§4)."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ProtocolError("Invalid payload: 'events' key is missing or not a list")
    builder = ChangeSetBuilder()
    for item in body["events"]:
        if not isinstance(item, dict):
            raise ProtocolError("Invalid payload: every event must be an object")
        name = item.get("event")
        data = item.get("data")
        if name == "server-intent":
            if builder.server_intent(data) is IntentCode.TRANSFER_NONE:
                return ChangeSet.no_changes()
        elif name == "put-object":
            builder.put_object(data)
        elif name == "delete-object":
            builder.delete_object(data)
        elif name == "payload-transferred":
            return builder.payload_transferred(data)
    raise ProtocolError("didn't receive any known protocol events in polling payload")


def _items(data: JSONObject, field: str) -> list[Change]:
    items = data.get(field)
    if items is None:
        return []
    if not isinstance(items, dict):
        raise ProtocolError(f"FDv1 payload: {field!r} must be an object")
    kind = ObjectKind.FLAG if field == "flags" else ObjectKind.SEGMENT
    out = []
    for key, obj in items.items():
        if not isinstance(obj, dict) or type(obj.get("version")) is not int:
            raise ProtocolError(
                f"FDv1 payload: {field}/{key} must be an object with a version"
            )
        out.append(
            Change(
                action=ChangeKind.PUT,
                kind=kind,
                key=key,
                version=obj["version"],
                obj=obj,
            )
        )
    return out


def fdv1_full(data: JSONValue) -> ChangeSet:
    """An FDv1 ``{"flags": {...}, "segments": {...}}`` payload as a full transfer."""
    body = _object(data, "FDv1 payload")
    return ChangeSet(
        intent=IntentCode.TRANSFER_FULL,
        changes=(*_items(body, "flags"), *_items(body, "segments")),
    )


def _path(path: JSONValue) -> tuple[ObjectKind, str] | None:
    if isinstance(path, str):
        for prefix, kind in (
            ("/flags/", ObjectKind.FLAG),
            ("/segments/", ObjectKind.SEGMENT),
        ):
            if path.startswith(prefix) and len(path) > len(prefix):
                return kind, path[len(prefix) :]
    return None


def fdv1_patch(data: JSONValue) -> ChangeSet | None:
    """An FDv1 stream ``patch`` as a version-compared upsert (None: unknown path)."""
    body = _object(data, "patch")
    target = _path(body.get("path"))
    if target is None:
        logger.debug("Ignoring patch for unknown path %r", body.get("path"))
        return None
    obj = _field(body, "data", dict, "patch")
    version = _field(obj, "version", int, "patch")
    change = Change(
        action=ChangeKind.PUT, kind=target[0], key=target[1], version=version, obj=obj
    )
    return ChangeSet(
        intent=IntentCode.TRANSFER_CHANGES, changes=(change,), compare_versions=True
    )


def fdv1_delete(data: JSONValue) -> ChangeSet | None:
    """An FDv1 stream ``delete`` as a version-compared tombstone (None: unknown path)."""
    body = _object(data, "delete")
    target = _path(body.get("path"))
    if target is None:
        logger.debug("Ignoring delete for unknown path %r", body.get("path"))
        return None
    version = _field(body, "version", int, "delete")
    change = Change(
        action=ChangeKind.DELETE, kind=target[0], key=target[1], version=version
    )
    return ChangeSet(
        intent=IntentCode.TRANSFER_CHANGES, changes=(change,), compare_versions=True
    )
