"""Flag files: LaunchDarkly's file-data-source shape, in JSON or YAML.

A file has any of ``flags`` (full flag objects by key), ``flagValues`` (key to
a plain value: a flag that serves it to everyone) and ``segments``. Several
files merge; a key defined twice is an error. A flag that names a variation
it does not have is loaded with a warning on the ``aioflags`` logger (it
evaluates to MALFORMED_FLAG where it reaches that index).

:func:`load_flag_files` is the one loader behind ``DataSystem.file()``,
``aioflags serve``, ``aioflags eval --file`` and ``aioflags validate``: they
cannot read a file differently. What it returns is JSON whatever the file's
format (string keys, no NaN): YAML is read as YAML 1.2's core schema
(:mod:`._yaml`), so LaunchDarkly's flag JSON written as YAML means what it
says. Every error is a :class:`FlagFileError` that names the file, and the
line and column where the parser gives them (``PATH:LINE:COLUMN: ...``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from aioflags._core._exceptions import AioflagsError, ProtocolError
from aioflags._core._json import decode_text
from aioflags._core._logname import client_logger
from aioflags._evaluation._model import document_format

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from aioflags._core._json import JSONObject

__all__ = [
    "EMPTY_FILE",
    "FlagFileError",
    "load_flag_files",
    "parse_flag_files",
    "read_flag_file",
]

logger = client_logger("aioflags.datasource")

#: Why a reload refuses a file with nothing in it (the last good data stays).
EMPTY_FILE: Final = (
    "the file is empty (no flags, flagValues or segments): a save still being "
    'written? To serve no flags, write {"flags": {}}'
)


#: A flag file's top-level keys. "$schema": where editors find the JSON
#: Schema (flagfile.schema.json).
_SECTIONS: Final = ("flags", "flagValues", "segments")
_TOP_LEVEL: Final = frozenset({*_SECTIONS, "$schema"})


def _unknown_keys(unknown: list[str]) -> str:
    """Why a file is refused: its unknown top-level keys, each with the one meant."""
    from ._lint import did_you_mean  # (only for a file refused)

    named = ", ".join(
        f"{key!r}{did_you_mean(key, list(_SECTIONS))}" for key in unknown[:5]
    )
    if len(unknown) > 5:
        named += f" and {len(unknown) - 5} more"
    plural = "s" if len(unknown) > 1 else ""
    return (
        f"unknown top-level key{plural} {named}: a flag file has flags, "
        "flagValues and segments"
    )


class FlagFileError(AioflagsError):
    """A flag file is missing, unreadable or malformed (the message says which and why)."""


def _parse(path: Path, data: bytes) -> Any:
    try:
        text = decode_text(data)
    except ProtocolError as exc:
        raise FlagFileError(f"{path}: {exc}") from None
    if text.startswith("\ufeff"):  # a byte-order mark may start either
        text = text[1:]
    if path.suffix.lower() in (".yaml", ".yml"):
        return _parse_yaml(path, text)
    try:
        return _FILE_JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise FlagFileError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
        ) from None
    except RecursionError:
        raise FlagFileError(f"{path}: JSON nested too deeply to parse") from None
    except ValueError as exc:  # NaN, Infinity, a key twice, too many digits
        raise FlagFileError(f"{path}: invalid JSON: {exc}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(
                    f"the key {key!r} appears twice in one object: keys must be unique"
                )
            seen.add(key)
    return obj


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


#: The JSON of flag files: strict like every JSON aioflags reads (no NaN or
#: Infinity), and a key twice in one object is an error, never a flag lost
#: without a word (a file is read once per edit: the hook costs nothing).
_FILE_JSON: Final = json.JSONDecoder(
    parse_constant=_no_constants, object_pairs_hook=_unique_keys
)


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        from ._yaml import JSONYamlLoader
    except ModuleNotFoundError as exc:
        if exc.name != "yaml":
            raise
        raise FlagFileError(
            f"{path}: YAML flag files need PyYAML: pip install 'aioflags[yaml]'"
        ) from None
    import yaml

    try:
        loader = JSONYamlLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise FlagFileError(_yaml_message(path, exc)) from None
    except yaml.reader.ReaderError as exc:  # a control character
        line = text.count("\n", 0, exc.position) + 1
        raise FlagFileError(
            f"{path}:{line}: invalid YAML: character #x{exc.character:04x} "
            "is not allowed in YAML"
        ) from None
    except RecursionError:  # PyYAML's composer recurses per nesting level
        raise FlagFileError(f"{path}: YAML nested too deeply to parse") from None


def _yaml_message(path: Path, exc: Any) -> str:
    """``PATH:LINE:COLUMN: invalid YAML: problem (context at line N)``."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = exc.problem or exc.context or "cannot parse"
    context = ""
    if exc.problem and exc.context:
        at = exc.context_mark
        context = f" ({exc.context}" + (
            f" at line {at.line + 1})" if at and at.line != mark.line else ")"
        )
    note = f"; {exc.note}" if exc.note else ""
    return f"{where}: invalid YAML: {problem}{context}{note}"


def flag_file_text(path: Path) -> tuple[str, Any]:
    """A flag file's text and what it holds (for ``aioflags validate``'s places).

    Raises:
        FlagFileError: the file cannot be read, or is not valid JSON or YAML.
    """
    raw = read_flag_file(path)
    if isinstance(raw, str):
        raise FlagFileError(f"{path}: cannot read the flag file: {raw}")
    data = _parse(path, raw)
    text = decode_text(raw)
    return text.removeprefix("\ufeff"), data


def read_flag_file(path: Path) -> bytes | str:
    """A file's bytes, or why it cannot be read (the ``strerror``)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        return str(exc.strerror or exc)


def load_flag_files(
    *paths: str | Path,
    allow_empty: bool = True,
    warn: bool = True,
    format: str | None = None,
    fractional: int = 3,
    share: bool = False,
) -> tuple[dict[str, JSONObject], dict[str, JSONObject]]:
    """Read and merge flag files into ``(flags, segments)`` JSON.

    ``allow_empty``, ``warn``, ``format``, ``fractional`` and ``share`` as
    for :func:`parse_flag_files`.

    Raises:
        FlagFileError: a file is missing or malformed, or a key is defined twice.
    """
    files = [Path(p) for p in paths]
    return parse_flag_files(
        [(path, read_flag_file(path)) for path in files],
        allow_empty=allow_empty,
        warn=warn,
        format=format,
        fractional=fractional,
        share=share,
    )


def parse_flag_files(
    contents: Sequence[tuple[Path, bytes | str]],
    *,
    allow_empty: bool = True,
    warn: bool = True,
    format: str | None = None,
    fractional: int = 3,
    share: bool = False,
) -> tuple[dict[str, JSONObject], dict[str, JSONObject]]:
    """Merge files already read (bytes, or why they could not be read) into ``(flags, segments)``.

    Without ``allow_empty``, a file with nothing in it (no document, or no
    ``flags``, ``flagValues`` or ``segments`` at all) is an error: what a
    reload sees of a save still being written, never what its author meant.
    An explicit ``"flags": {}`` is not empty. Without ``warn``, a variation
    index out of range is not logged (``aioflags validate`` says it itself).

    A file in a flag system's own document format (``format=`` its name,
    or told by what it holds: :func:`document_format`; flagd's, for one)
    is read by that format into flag objects that carry the system's
    definition (``fractional``: the bucketing it asks for);
    ``format="launchdarkly"`` reads every file as LaunchDarkly's shape.
    With ``share`` (what the data system and ``aioflags serve`` carry),
    such flags are in their shared form: what they share is written once,
    as segments; without it, each holds it (for the tools that read flags
    one by one).

    Raises:
        FlagFileError: a file is missing or malformed, or a key is defined twice.
    """
    flags: dict[str, JSONObject] = {}
    segments: dict[str, JSONObject] = {}
    for path, raw in contents:
        if isinstance(raw, str):
            raise FlagFileError(f"{path}: cannot read the flag file: {raw}")
        if not allow_empty and not raw.strip():  # JSON too: no "Expecting value"
            raise FlagFileError(f"{path}: {EMPTY_FILE}")
        data = _parse(path, raw)
        document = document_format(data, format)
        if document is not None:
            shared: dict[str, JSONObject] | None = {} if share else None
            read = document.read(
                path,
                raw,
                data,
                fractional=fractional,
                shared=shared,
                allow_empty=allow_empty,
            )
            _merge_document(path, read, shared, flags, segments)
            continue
        # An unknown key first: a file whose only key is misspelt (`flag:`)
        # has none of the three, and is no save still being written.
        unknown = sorted(set(data) - _TOP_LEVEL) if isinstance(data, dict) else []
        if unknown:
            raise FlagFileError(f"{path}: {_unknown_keys(unknown)}")
        if not allow_empty and (
            data is None
            or (
                isinstance(data, dict)
                and all(
                    data.get(f) is None for f in ("flags", "flagValues", "segments")
                )
            )
        ):
            raise FlagFileError(f"{path}: {EMPTY_FILE}")
        if data is None:
            continue
        if not isinstance(data, dict):
            raise FlagFileError(
                f"{path}: a flag file must be an object with flags, flagValues or segments"
            )
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
                    if field == "flags" and warn:
                        _warn_out_of_range(path, key, item)
    return flags, segments


def _merge_document(
    path: Path,
    read: Mapping[str, JSONObject],
    shared: Mapping[str, JSONObject] | None,
    flags: dict[str, JSONObject],
    segments: dict[str, JSONObject],
) -> None:
    """A document's flags, added to ``flags`` (a key defined twice is an error).

    ``shared``: what they share (their shared form), added to ``segments``.
    """
    for key, flag in read.items():
        if key in flags:
            raise FlagFileError(f"{path}: flag {key!r} is defined more than once")
        flags[key] = flag
    if shared:
        for key, item in shared.items():  # (a key is its content's digest:
            segments.setdefault(key, item)  # two files' same rule is one item)


def _variation_refs(flag: JSONObject) -> Iterator[tuple[str, object]]:
    """Every place a flag names one of its own variations, and the index there."""

    def result(where: str, holder: object) -> Iterator[tuple[str, object]]:
        if not isinstance(holder, dict):
            return
        if "variation" in holder:
            yield f"{where}.variation", holder["variation"]
        rollout = holder.get("rollout")
        buckets = rollout.get("variations") if isinstance(rollout, dict) else None
        for n, bucket in enumerate(buckets if isinstance(buckets, list) else ()):
            if isinstance(bucket, dict):
                yield (
                    f"{where}.rollout.variations[{n}].variation",
                    bucket.get("variation"),
                )

    if "offVariation" in flag:
        yield "offVariation", flag["offVariation"]
    yield from result("fallthrough", flag.get("fallthrough"))
    for field in ("targets", "contextTargets", "rules"):
        items = flag.get(field)
        for n, item in enumerate(items if isinstance(items, list) else ()):
            yield from result(f"{field}[{n}]", item)


def _warn_out_of_range(path: Path, key: str, flag: JSONObject) -> None:
    """Warn about variation indexes past the flag's variations (loaded all the same).

    Like every LaunchDarkly SDK, aioflags keeps such a flag: an evaluation
    that reaches the bad index returns the default with MALFORMED_FLAG.
    """
    variations = flag.get("variations")
    if not isinstance(variations, list):
        return  # malformed as a whole: evaluation says MALFORMED_FLAG
    count = len(variations)
    bad = [
        f"{where} is {index}"
        for where, index in _variation_refs(flag)
        if type(index) is int and not 0 <= index < count
    ]
    if bad:
        logger.warning(
            "%s: flag %r has %d variation%s, but %s; evaluations that reach "
            "%s return the default with MALFORMED_FLAG",
            path,
            key,
            count,
            "" if count == 1 else "s",
            ", ".join(bad),
            "it" if len(bad) == 1 else "them",
        )
