"""Flag files: LaunchDarkly's file-data-source shape, in JSON or YAML.

A file has any of ``flags`` (full flag objects by key), ``flagValues`` (key to
a plain value: a flag that serves it to everyone) and ``segments``. Several
files merge; a key defined twice is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import AioflagsError, ProtocolError
from ._json import parse

if TYPE_CHECKING:
    from ._json import JSONObject

__all__ = ["FlagFileError", "load_flag_files"]


class FlagFileError(AioflagsError):
    """A flag file is missing, unreadable or malformed (the message says which and why)."""


def _parse(path: Path, data: bytes) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise FlagFileError(
                f"{path}: YAML flag files need PyYAML: pip install 'aioflags[yaml]'"
            ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlagFileError(
                f"{path}: invalid UTF-8 at byte {exc.start} ({exc.reason})"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FlagFileError(f"{path}: invalid YAML: {exc}") from None
        except RecursionError:  # PyYAML's composer recurses per nesting level
            raise FlagFileError(f"{path}: YAML nested too deeply to parse") from None
    try:
        return parse(data)
    except ProtocolError as exc:
        message = str(exc)
        if not message.startswith("invalid JSON"):
            message = f"invalid JSON: {message}"
        raise FlagFileError(f"{path}: {message}") from None


def load_flag_files(
    *paths: str | Path,
) -> tuple[dict[str, JSONObject], dict[str, JSONObject]]:
    """Read and merge flag files into ``(flags, segments)`` JSON.

    Raises:
        FlagFileError: a file is missing or malformed, or a key is defined twice.
    """
    flags: dict[str, JSONObject] = {}
    segments: dict[str, JSONObject] = {}
    for raw_path in paths:
        path = Path(raw_path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise FlagFileError(
                f"{path}: cannot read the flag file: {exc.strerror or exc}"
            ) from None
        data = _parse(path, raw)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise FlagFileError(
                f"{path}: a flag file must be an object with flags, flagValues or segments"
            )
        unknown = set(data) - {"flags", "flagValues", "segments"}
        if unknown:
            raise FlagFileError(f"{path}: unknown top-level keys {sorted(unknown)}")
        for field, target in (
            ("flags", flags),
            ("flagValues", flags),
            ("segments", segments),
        ):
            items = data.get(field)
            if items is None:
                continue
            if not isinstance(items, dict):
                raise FlagFileError(
                    f"{path}: {field!r} must be an object keyed by {field[:-1]} key"
                )
            for key, item in items.items():
                if key in target:
                    raise FlagFileError(
                        f"{path}: {field[:-1]} {key!r} is defined more than once"
                    )
                if field == "flagValues":
                    target[key] = {
                        "key": key,
                        "version": 1,
                        "on": True,
                        "variations": [item],
                        "fallthrough": {"variation": 0},
                    }
                elif not isinstance(item, dict):
                    raise FlagFileError(f"{path}: {field}/{key} must be an object")
                else:
                    target[key] = {"version": 1, **item, "key": key}
    return flags, segments
