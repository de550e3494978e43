"""The evidence ``aioflags cleanup`` reads before it rewrites anything.

Three kinds, each read whole before a file is touched (docs/lifecycle-tools.md):

- flag coverage JSON (pytest's ``--aioflags-coverage-json``): every branch of
  FLAG the session took must have served VALUE only;
- ``client.usage().to_dict()`` saved as JSON: FLAG evaluated in the window,
  every evaluation accounted for by a value served, each VALUE;
- flag files (``--flags``): FLAG's targeting now serves VALUE to everyone,
  and VALUE is one of its variations. A flagd flag is settled when it is
  ``ENABLED`` with no targeting and its default variant is VALUE.

A file that is missing, unreadable, too large, not JSON, nested too deep, or
of neither shape (a field of the wrong type included) is a usage error
(:class:`CleanupError`), said in one line: never a traceback.
"""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING, Final

from aioflags._core._exceptions import AioflagsError, ProtocolError
from aioflags._core._json import parse, same_json
from aioflags._evaluation._model import read_by

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "MAX_DEPTH",
    "MAX_EVIDENCE_BYTES",
    "CleanupError",
    "depth",
    "refusals",
    "variation_for",
]

#: The largest evidence file read (a coverage report of thousands of flags
#: is a few MiB).
MAX_EVIDENCE_BYTES: Final = 64 * 1024 * 1024
#: The deepest JSON value read as evidence or as ``--keep``: deeper than any
#: flag's value needs, shallow enough to compare without recursing far.
MAX_DEPTH: Final = 100


class CleanupError(AioflagsError):
    """A usage error: a path missing, evidence unreadable, a value that is not JSON."""


def depth(value: object) -> int:
    """How deep ``value`` nests (a scalar: 0), counted without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            stack += ((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack += ((v, level + 1) for v in item)
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            break
    return deepest


def _read_json(path: Path) -> JSONValue:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_EVIDENCE_BYTES + 1)
    except OSError as exc:
        raise CleanupError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_EVIDENCE_BYTES:
        raise CleanupError(
            f"{path}: larger than {MAX_EVIDENCE_BYTES // (1024 * 1024)} MiB: "
            "not evidence this command reads"
        )
    try:
        value = parse(data)
    except ProtocolError as exc:
        raise CleanupError(f"{path}: not JSON: {exc}") from None
    if depth(value) > MAX_DEPTH:
        raise CleanupError(
            f"{path}: nested deeper than {MAX_DEPTH} levels: not evidence this "
            "command reads"
        )
    return value


class _Shape:
    """Reads fields of one evidence file, with a usage error naming a field of the wrong type."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what

    def wrong(self, where: str, expected: str) -> CleanupError:
        return CleanupError(f"{self.path}: not {self.what}: {where} is not {expected}")

    def mapping(self, value: object, where: str) -> Mapping[str, JSONValue]:
        if not isinstance(value, dict):
            raise self.wrong(where, "an object")
        return value

    def count(self, value: object, where: str) -> int:
        if type(value) is not int or value < 0:
            raise self.wrong(where, "a count (a whole number, 0 or more)")
        return value


def _served_text(text: str) -> tuple[bool, JSONValue]:
    try:
        return True, parse(text)
    except ProtocolError:
        return False, None  # (a value cut short: "…")


def _coverage_refusals(
    path: Path,
    report: Mapping[str, JSONValue],
    key: str,
    value: JSONValue,
    seen: list[JSONValue],
) -> list[str]:
    shape = _Shape(path, "a flag coverage report")
    flags = shape.mapping(report.get("flags"), "flags")
    if key not in flags:
        return [
            f"{path}: the test session never evaluated {key!r}: no evidence of what it serves"
        ]
    flag = shape.mapping(flags[key], f"flags/{key}")
    branches = shape.mapping(flag.get("branches", {}), f"flags/{key}/branches")
    taken = {
        branch: n
        for branch, count in branches.items()
        if (n := shape.count(count, f"flags/{key}/branches/{branch}"))
    }
    if not taken:
        return [
            f"{path}: the test session never evaluated {key!r}: no evidence of what it serves"
        ]
    served = shape.mapping(flag.get("served", {}), f"flags/{key}/served")
    values = shape.mapping(flag.get("values", {}), f"flags/{key}/values")
    out = []
    want = json.dumps(value)
    for branch, count in taken.items():
        texts = shape.mapping(served.get(branch, {}), f"flags/{key}/served/{branch}")
        counts = {
            text: shape.count(n, f"flags/{key}/served/{branch}/{text}")
            for text, n in texts.items()
        }
        if sum(counts.values()) >= count:
            for text, n in counts.items():
                ok, got = _served_text(text)
                if ok and same_json(got, value):
                    seen.append(got)
                else:
                    out.append(
                        f"{path}: branch {branch} of {key!r} served {text} "
                        f"({n} evaluations), not {want}"
                    )
            continue
        recorded = values.get(branch)
        ok, got = _served_text(recorded) if isinstance(recorded, str) else (False, None)
        if not ok:
            out.append(
                f"{path}: branch {branch} of {key!r} was taken, and the report does "
                "not say what it served (unknown)"
            )
        elif not same_json(got, value):
            out.append(
                f"{path}: branch {branch} of {key!r} serves {recorded}, not {want}"
            )
    return out


def _usage_refusals(
    path: Path,
    usage: Mapping[str, JSONValue],
    key: str,
    value: JSONValue,
    seen: list[JSONValue],
) -> list[str]:
    shape = _Shape(path, "client.usage().to_dict()")
    if usage.get("available") is not True:
        why = usage.get("reason") or "no figures"
        return [
            f"{path}: usage has no figures ({why}): no evidence of what {key!r} serves"
        ]
    flags = shape.mapping(usage.get("flags"), "flags")
    since = usage.get("since")
    if key not in flags:
        return [f"{path}: {key!r} was not evaluated in the window (since {since})"]
    flag = shape.mapping(flags[key], f"flags/{key}")
    evaluations = shape.count(flag.get("evaluations", 0), f"flags/{key}/evaluations")
    if not evaluations:
        return [f"{path}: {key!r} was not evaluated in the window (since {since})"]
    variations = flag.get("variations", [])
    if not isinstance(variations, list):
        raise shape.wrong(f"flags/{key}/variations", "a list")
    want = json.dumps(value)
    out = []
    accounted = 0
    for at, item in enumerate(variations):
        served = shape.mapping(item, f"flags/{key}/variations/{at}")
        n = shape.count(
            served.get("evaluations"), f"flags/{key}/variations/{at}/evaluations"
        )
        accounted += n
        if "value" not in served:
            raise shape.wrong(f"flags/{key}/variations/{at}/value", "there")
        if same_json(served["value"], value):
            seen.append(served["value"])
        elif n:
            out.append(
                f"{path}: {key!r} served {json.dumps(served['value'])} "
                f"({n} evaluations), not {want}"
            )
    defaults = shape.count(flag.get("defaults", 0), f"flags/{key}/defaults")
    if defaults:
        out.append(
            f"{path}: {key!r} served the caller's default {defaults} times "
            "(off with no off variation, not found, or an error): not known to be "
            f"{want}"
        )
    if accounted + defaults < evaluations:
        out.append(
            f"{path}: {key!r} was evaluated {evaluations} times and the file says "
            f"what {accounted + defaults} of them served: no evidence of what the "
            "others served"
        )
    return out


def _flag_of(flags: Mapping[str, JSONValue], key: str, where: str) -> JSONObject | str:
    raw = flags.get(key)
    if isinstance(raw, dict):
        return raw
    close = difflib.get_close_matches(key, list(flags), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{where}: no flag {key!r}{hint}"


def _targeting_refusals(
    raw: JSONObject, key: str, value: JSONValue, where: str
) -> list[str]:
    if raw.get("deleted") is True:
        return [
            f"{where}: {key!r} is deleted: clients serve the caller's default "
            "(FLAG_NOT_FOUND), not one value"
        ]
    system, definition = read_by(raw)
    return system.settled_refusals(raw, definition, value, f"{where}: {key!r}")


def _load_flags(flag_files: Sequence[Path]) -> Mapping[str, JSONObject]:
    from aioflags._datasystem._sources._files import FlagFileError, load_flag_files

    try:
        flags, _ = load_flag_files(*flag_files)
    except FlagFileError as exc:
        raise CleanupError(str(exc)) from None
    return flags


def variation_for(key: str, value: JSONValue, flag_files: Sequence[Path]) -> JSONValue:
    """VALUE as the flag files write the variation it is (``20.0`` → ``20``).

    Raises:
        CleanupError: FLAG is in none of the files, or VALUE is none of its
            variations (the message lists them).
    """
    where = ", ".join(str(p) for p in flag_files)
    raw = _flag_of(_load_flags(flag_files), key, where)
    if isinstance(raw, str):
        raise CleanupError(raw)
    if raw.get("deleted") is True:
        return value  # (refused by its targeting: refusals says why)
    system, definition = read_by(raw)
    variations = system.values(raw, definition)
    for variation in variations:
        if same_json(variation, value):
            return variation
    raise CleanupError(
        f"--keep {json.dumps(value)} is not one of the variations of {key!r} in "
        f"{where}: {', '.join(json.dumps(v) for v in variations) or 'it has none'}"
    )


def refusals(
    key: str,
    value: JSONValue,
    evidence: Sequence[Path],
    flag_files: Sequence[Path],
) -> tuple[list[str], JSONValue]:
    """Why the evidence says FLAG may serve something else than ``value`` (empty: it agrees).

    ``evidence``: flag coverage JSON (``--aioflags-coverage-json``) or
    ``client.usage().to_dict()`` JSON, told apart by their shape. With
    them, VALUE as the evidence saw it served (``20.0`` → ``20``).

    Raises:
        CleanupError: a file is missing, unreadable, too large or deep, or
            of neither shape.
    """
    out: list[str] = []
    seen: list[JSONValue] = []
    for path in evidence:
        data = _read_json(path)
        if isinstance(data, dict) and "available" in data and "flags" in data:
            out += _usage_refusals(path, data, key, value, seen)
        elif isinstance(data, dict) and "flags" in data and "covered" in data:
            out += _coverage_refusals(path, data, key, value, seen)
        else:
            raise CleanupError(
                f"{path}: neither a flag coverage report (--aioflags-coverage-json) "
                "nor client.usage().to_dict()"
            )
    if flag_files:
        where = ", ".join(str(p) for p in flag_files)
        raw = _flag_of(_load_flags(flag_files), key, where)
        out += (
            [raw]
            if isinstance(raw, str)
            else _targeting_refusals(raw, key, value, where)
        )
    if isinstance(value, float) and any(
        type(served) is int and served == value for served in seen
    ):
        return out, int(value)
    return out, value
