"""Versions for file data that move exactly when an item's content does.

The store (and every LaunchDarkly SDK) announces a flag as changed when its
version moves. Flag files rarely bump ``version`` by hand, and ``flagValues``
have none, so the file source and ``python -m aioflags serve`` version each
item by its content instead: an unchanged item keeps its version, a changed
one gets a new one. Items are compared as canonical JSON, so ``1``, ``1.0``
and ``true`` differ, and key order does not matter.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aioflags._core._json import JSONObject

__all__ = ["ContentVersions", "same_content"]


def _content(item: JSONObject) -> str:
    """An item's content, ``version`` aside, in one canonical form."""
    return json.dumps(
        {k: v for k, v in item.items() if k != "version"},
        sort_keys=True,
        separators=(",", ":"),
    )


def _digest(item: JSONObject) -> bytes:
    """A digest of an item's content (what :class:`ContentVersions` keeps of it).

    Kept instead of the content itself: a flag's content holds what it
    shares with others written out (a flagd ``$ref``'s evaluator, the
    ``sync_context``), thousands of times over in a large set.
    """
    return hashlib.blake2b(_content(item).encode(), digest_size=16).digest()


def same_content(a: JSONObject, b: JSONObject) -> bool:
    """Whether two flags (or two segments) differ in nothing but ``version``."""
    return _content(a) == _content(b)


class ContentVersions:
    """Stamps successive loads of file data with versions that follow content.

    The first time an item is seen it keeps its own ``version`` (1 if it has
    none); later, an unchanged item keeps the version it had, and a changed
    one gets the next version (or its own, if that is higher).

    An item's canonical content is made when a later load has its key, and
    only its digest is kept: until then the item itself is kept (the data is never changed once loaded:
    tests/test_flagd_sync.py reloads an evaluated set), so a first load of a
    large set (a flagd sync server's 1,000 flags, READY's path) makes none.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        #: (kind, key): (its content's digest, or the item not yet compared; its version).
        self._seen: dict[tuple[str, str], tuple[bytes | JSONObject, int]] = {}

    def stamp(self, kind: str, items: dict[str, JSONObject]) -> dict[str, JSONObject]:
        """``items`` (of one ``kind``) with versions that show what changed."""
        stamped: dict[str, JSONObject] = {}
        for key, item in items.items():
            given = item.get("version")
            version = given if type(given) is int else 1
            seen = self._seen.get((kind, key))
            if seen is None:
                self._seen[kind, key] = (item, version)
            else:
                old, old_version = seen
                content = _digest(item)
                if content == (old if isinstance(old, bytes) else _digest(old)):
                    version = old_version
                else:
                    version = max(version, old_version + 1)
                self._seen[kind, key] = (content, version)
            # (an item whose version stands is kept as it is: no copy)
            if type(given) is int and given == version:
                stamped[key] = item
            else:
                stamped[key] = {**item, "version": version}
        return stamped
