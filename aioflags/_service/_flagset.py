"""The flag service's data: flags and segments with versions, and the payloads written from them.

A :class:`FlagSet` holds the data and counts its changes: each flag and
segment has its own ``version`` (one more on each change of it, or the
version its JSON comes with, if higher, kept by :meth:`FlagSet.replace_all`
when its content is unchanged), and the data set has one that moves on with
every change (the payload's ``state``, which is new at each start as well).
Each change is returned as a :class:`Edit`: the stream messages that carry
it and the items it touched, for the server to hand on (the fan-out, OFREP,
the console). The poll bodies and the streams' full payloads are written
once per data version.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from aioflags._datasystem._sources._versions import same_content

from . import _wire as wire
from ._paths import FDV2_STREAM

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aioflags._core._json import JSONObject

__all__ = ["Edit", "FlagSet"]


@final
@dataclass(frozen=True, slots=True)
class Edit:
    """One change of a :class:`FlagSet`: how streams carry it, and what it touched."""

    #: The FDv2 and FDv1 stream messages that carry it.
    fdv2: str
    fdv1: str
    #: ``(kind, key, version, item)`` of each item it put (``item`` None:
    #: deleted, ``version`` its tombstone's).
    items: tuple[tuple[str, str, int, JSONObject | None], ...]
    #: The whole data set was replaced (``replace_all``).
    replaced: bool = False


@final
class FlagSet:
    """Flags and segments by key, each with its own version, and the data's version."""

    __slots__ = ("_bodies", "_item_versions", "_start", "flags", "segments", "version")

    def __init__(
        self,
        flags: Mapping[str, JSONObject] | None = None,
        segments: Mapping[str, JSONObject] | None = None,
    ) -> None:
        #: The data's version: one more on every change.
        self.version = 1
        #: Unique to this data set (each start of a service): an SDK that
        #: reconnects after a restart, its basis a state of the one before,
        #: is sent the data whole, not "up to date" (the version restarts).
        self._start = secrets.token_hex(4)
        #: Each item's own version (deleted ones too): see :meth:`_next_version`.
        self._item_versions: dict[tuple[str, str], int] = {}
        #: The flags and segments themselves (a change replaces an item's object).
        self.flags: dict[str, JSONObject] = {}
        self.segments: dict[str, JSONObject] = {}
        #: Bodies written from the data, by name, with the version they are of.
        self._bodies: dict[str, tuple[int, bytes]] = {}
        # A version that is no whole number (a file's "seven") is replaced, as
        # a change does: SDKs and the evaluator order items by it.
        for key, flag in (flags or {}).items():
            version = self._next_version("flag", key, flag.get("version"))
            self.flags[key] = {"key": key, **flag, "version": version}
        for key, seg in (segments or {}).items():
            version = self._next_version("segment", key, seg.get("version"))
            self.segments[key] = {"key": key, **seg, "version": version}

    @property
    def state(self) -> str:
        """The FDv2 payload state of the current data (changes with every change).

        New at each start too: a state of another start is never current.
        """
        return f"(p:{wire.PAYLOAD_ID}:{self._start}:{self.version})"

    def objects(self) -> list[tuple[str, JSONObject]]:
        """Every item, with its kind (``"flag"`` or ``"segment"``)."""
        return [("flag", f) for f in self.flags.values()] + [
            ("segment", s) for s in self.segments.values()
        ]

    # ------------------------------------------------------------- changes
    def put(self, kind: str, key: str, obj: JSONObject) -> Edit:
        """Create or replace a flag or a segment."""
        self.version += 1
        version = self._next_version(kind, key, obj.get("version"))
        item = {**obj, "key": key, "version": version}
        (self.flags if kind == "flag" else self.segments)[key] = item
        return Edit(
            wire.fdv2_put(kind, item, self.state, self.version),
            wire.fdv1_patch(kind, item),
            ((kind, key, version, item),),
        )

    def delete(self, kind: str, key: str) -> Edit:
        """Delete a flag or a segment (its tombstone outranks it; a later put, both)."""
        self.version += 1
        (self.flags if kind == "flag" else self.segments).pop(key, None)
        tombstone = self._next_version(kind, key, None)
        return Edit(
            wire.fdv2_delete(kind, key, tombstone, self.state, self.version),
            wire.fdv1_delete(kind, key, tombstone),
            ((kind, key, tombstone, None),),
        )

    def replace_all(
        self, flags: Mapping[str, JSONObject], segments: Mapping[str, JSONObject]
    ) -> Edit:
        """Replace the whole data set; an item whose content is unchanged keeps its version.

        All or nothing: what cannot be written (JSON nested past what the
        encoder follows) raises with the data as it was.
        """
        old = self.version, self.flags, self.segments
        touched: list[tuple[str, str, int, JSONObject | None]] = []
        try:
            self.version += 1
            self.flags = self._reversioned("flag", self.flags, flags, touched)
            self.segments = self._reversioned(
                "segment", self.segments, segments, touched
            )
            return Edit(
                wire.fdv2_full(self.objects(), self.state, self.version),
                wire.fdv1_put(self.flags, self.segments),
                tuple(touched),
                replaced=True,
            )
        except BaseException:
            self.version, self.flags, self.segments = old
            raise

    def _reversioned(
        self,
        kind: str,
        old: dict[str, JSONObject],
        new: Mapping[str, JSONObject],
        touched: list[tuple[str, str, int, JSONObject | None]],
    ) -> dict[str, JSONObject]:
        items: dict[str, JSONObject] = {}
        for key, obj in new.items():
            before = old.get(key)
            if before is not None and same_content(before, {**obj, "key": key}):
                items[key] = before
            else:
                version = self._next_version(kind, key, obj.get("version"))
                items[key] = item = {**obj, "key": key, "version": version}
                touched.append((kind, key, version, item))
        touched.extend(
            (kind, key, self._next_version(kind, key, None), None)
            for key in old.keys() - items.keys()
        )
        return items

    def _next_version(self, kind: str, key: str, given: object) -> int:
        """The next own version of an item: one past its last, or ``given`` if higher.

        Each flag and segment counts its own changes (what SDKs and the
        console see); the data's version counts every change. A deleted
        item's count is kept, so a new item of that key outranks its
        tombstone.
        """
        last = self._item_versions.get((kind, key), 0)
        version = max(last + 1, given if type(given) is int else 0)
        self._item_versions[kind, key] = version
        return version

    # -------------------------------------------------------------- bodies
    def _body(self, name: str, write: Callable[[], str]) -> bytes:
        """Body ``name`` of the current data, written once per data version."""
        kept = self._bodies.get(name)
        if kept is None or kept[0] != self.version:
            kept = self._bodies[name] = (self.version, write().encode())
        return kept[1]

    def fdv1_poll_body(self) -> bytes:
        """The ``/sdk/latest-all`` body.

        An FDv1 SDK polls for all of it every time: 1,000 flags took ~20 ms to
        write per poll, on the event loop that serves every SDK.
        """
        return self._body(
            "fdv1-poll", lambda: json.dumps(wire.fdv1_body(self.flags, self.segments))
        )

    def fdv2_poll_body(self, basis: str | None) -> bytes:
        """The ``/sdk/poll`` body for ``basis`` (a full transfer: 740 ms at 20,000 flags)."""
        if basis == self.state:
            poll = wire.fdv2_poll_body((), self.state, self.version, basis)
            return json.dumps(poll).encode()
        return self._body(
            "fdv2-poll",
            lambda: json.dumps(
                wire.fdv2_poll_body(self.objects(), self.state, self.version, None)
            ),
        )

    def full(self, path: str) -> bytes:
        """SDK stream ``path``'s whole data as one message (a lagging stream catches up)."""
        if path == FDV2_STREAM:
            return self._body(
                path, lambda: wire.fdv2_full(self.objects(), self.state, self.version)
            )
        return self._body(path, lambda: wire.fdv1_put(self.flags, self.segments))

    def first(self, path: str, basis: str | None) -> bytes:
        """The first message of a new SDK stream (``basis``: the state the SDK has)."""
        if path == FDV2_STREAM and basis == self.state:
            return wire.fdv2_up_to_date(self.version).encode()
        return self.full(path)
