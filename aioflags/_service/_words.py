"""A flag's targeting, and an evaluation's reason, in words (the console's details).

Pure functions over flag JSON as the file or the service holds it: nothing
here evaluates; they say what a flag would do, in the words the console page
shows (``email ends with "@example.com"``, ``rollout: 30 % true, 70 % false
(by key)``, ``rule 2 matched``). Rules are numbered from 1, as people count;
values are written as people write them (:func:`written`). Malformed parts
are described as what they are (``variation 7 (no such variation)``), never
raised: the console shows any file the service serves. What a flag's own
parts say is its system's (``FlagSystem.summary_text``, ``details``,
``reason_text``: ``aioflags/_systems/*/_words.py``); this module is the
face that asks it, and writes what every flag has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aioflags._evaluation._model import read_by
from aioflags._systems import registered
from aioflags._systems._launchdarkly._words import (
    clause_text,
    rollout_share,
    served_text,
)
from aioflags._systems._text import whole, written

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "clause_text",
    "details",
    "read_by",
    "reason_text",
    "rollout_share",
    "served_text",
    "summary_text",
    "whole",
    "written",
]


def summary_text(flag: Mapping[str, JSONValue]) -> str:
    """What a flag does, in one line: on or off, and what it serves."""
    system, definition = read_by(flag)
    return system.summary_text(flag, definition)


def details(
    flag: Mapping[str, JSONValue],
    flags: Mapping[str, Mapping[str, JSONValue]],
    original: Mapping[str, JSONValue] | None = None,
    segments: Collection[str] | None = None,
) -> JSONObject:
    """Everything the console's ``<key> details`` show of one flag.

    ``flags``: every flag (prerequisites are written in their values);
    ``original``: the flag as the file has it, when the console changed it;
    ``segments``: the keys of every segment (a rule naming another says so).
    What the flag's own parts say (its variations, off, fallthrough,
    targets, rules, prerequisites, a system's own fields) is its system's.
    """
    key = flag.get("key")
    description = flag.get("description")
    tags = flag.get("tags")
    version = flag.get("version")
    system, definition = read_by(flag)
    answer: JSONObject = {
        "key": key,
        "description": description if isinstance(description, str) else None,
        "tags": [t for t in tags if isinstance(t, str)]
        if isinstance(tags, list)
        else [],
        "on": flag.get("on") is True,
        "version": whole(version),
        "changed": original is not None,
    }
    answer.update(system.details(flag, definition, flags, segments))
    answer["file"] = (
        None if original is None else f"the file has it {summary_text(original)}"
    )
    return answer


def reason_text(
    reason: Mapping[str, JSONValue],
    flag: Mapping[str, JSONValue] | None = None,
    variation: int | None = None,
) -> str:
    """An evaluation's reason in words: ``rule 2 matched``, ``fallthrough rollout 30 %``.

    Rules are counted from 1. ``flag`` and ``variation``: the flag evaluated
    and the variation served, to say which share of a rollout served it
    (a reason does not carry it); without them, just ``fallthrough``. The
    system whose reason it is says it; an error, or a kind no system
    knows, is said here.
    """
    for system in registered():
        text = system.reason_text(reason, flag, variation)
        if text is not None:
            return text
    kind = reason.get("kind")
    if kind == "ERROR":
        error = reason.get("errorKind")
        words = (
            written(error).lower().replace("_", " ") if error is not None else "unknown"
        )
        return f"error: {words}"
    return written(kind).lower() if kind is not None else "unknown"
