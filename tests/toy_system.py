"""A toy flag system, in one module: issue 96's proof that a system plugs in.

A toy flag is a flag object with a ``"toy"`` part: ``{"value": V,
"by_key": {"u1": W}}`` serves ``W`` to the context whose key is ``u1``
(reason ``TOY_KEY``) and ``V`` to everyone else (``TOY_DEFAULT``). Its
contexts need a targeting key; its type step is strict (no number becomes
another); its metadata says it is a toy. :data:`TOY` registers in one line
(:func:`registered_toy`); nothing outside this module knows it.

Its document format (:class:`ToyDocument`): a JSON or YAML file
``{"toy": 1, "flags": {KEY: {"value": V, "by_key": {...}}}}`` is read by
``DataSystem.file``, ``aioflags eval --file`` and ``aioflags validate``,
checked by its own linter (a toy without a value; a keyed value of
another type than the value, a warning) and described by its own schema
(``aioflags schema --format toy``).

A toy keyed for :data:`LARGE` contexts or more is large: the store has the
toy build it ahead, on a worker thread (``is_large``, ``prebuild``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from aioflags import Context
from aioflags._client._ofcontext import ContextError
from aioflags._core._json import JSONObject, JSONValue
from aioflags._datasystem._sources._files import EMPTY_FILE, FlagFileError
from aioflags._evaluation._codegen import Code
from aioflags._evaluation._model import CompiledFlag, DocumentFormat, DocumentProblem
from aioflags._evaluation._results import Reason, Result, own_cache
from aioflags._systems import register, unregister

BY_KEY: Final = Reason({"kind": "TOY_KEY"})
EVERYONE: Final = Reason({"kind": "TOY_DEFAULT"})
BROKEN: Final = Result(
    None, None, Reason({"kind": "ERROR", "errorKind": "TOY_BROKEN"}), False, None
)
FAILED: Final = Result(
    None, None, Reason({"kind": "ERROR", "errorKind": "TOY_FAILED"}), False, None
)
_METADATA: Final[Mapping[str, JSONValue]] = {"system": "toy"}
#: A toy keyed for this many contexts or more is large: the store has the
#: toy build it ahead (``prebuild``), which notes (thread, keys) here.
LARGE: Final = 3
PREBUILT: list[tuple[int, list[str]]] = []


def _run(operands: tuple[object, ...], context: Context, state: object) -> Result:
    by_key, everyone = operands
    assert isinstance(by_key, dict)
    if context.key == "boom":  # (a toy's bug, to see its failure's word)
        raise RuntimeError("boom")
    return by_key.get(context.key, everyone)  # type: ignore[no-any-return]


#: The toy format's JSON Schema (``aioflags schema --format toy``).
SCHEMA: Final = json.dumps(
    {
        "type": "object",
        "properties": {
            "toy": {"enum": [1]},
            "flags": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"value": {}, "by_key": {"type": "object"}},
                    "required": ["value"],
                },
            },
        },
        "required": ["toy"],
    },
    indent=2,
)


class ToyDocument:
    """The toy's files: ``{"toy": 1, "flags": {KEY: definition}}``: every member of ``DocumentFormat``."""

    __slots__ = ()

    def recognises(self, data: object) -> bool:
        return isinstance(data, dict) and data.get("toy") == 1

    def read(
        self,
        path: Path,
        raw: bytes,
        data: object,
        *,
        fractional: int,
        shared: dict[str, JSONObject] | None,
        allow_empty: bool,
    ) -> Mapping[str, JSONObject]:
        flags = data.get("flags") if isinstance(data, dict) else None
        if flags is None and not allow_empty:
            raise FlagFileError(f"{path}: {EMPTY_FILE}")
        if not isinstance(flags, dict | None):
            raise FlagFileError(f"{path}: a toy file's flags must be an object")
        return {
            key: {"key": key, "version": 1, "toy": d}
            for key, d in (flags or {}).items()
        }

    def problems(self, data: object) -> Sequence[DocumentProblem]:
        found: list[DocumentProblem] = []
        flags = data.get("flags") if isinstance(data, dict) else None
        for key, toy in (flags or {}).items() if isinstance(flags, dict) else ():
            if not isinstance(toy, dict) or "value" not in toy:
                found.append((("flags", key), "a toy flag needs a value", True, False))
                continue
            by_key = toy.get("by_key")
            for name, value in by_key.items() if isinstance(by_key, dict) else ():
                if type(value) is not type(toy["value"]):
                    what = f"{name!r} is served {value!r}, not of its value's type"
                    found.append((("flags", key, "by_key", name), what, False, True))
        return found

    def schema(self) -> str:
        return SCHEMA


class Toy:
    """The toy system: every member of ``FlagSystem``, nothing more."""

    __slots__ = ()

    name: str = "toy"
    part: str | None = "toy"
    unusable: Result = BROKEN
    failed: Result = FAILED
    unserved_variant: str | None = None
    error_kinds: frozenset[str] = frozenset(("TOY_BROKEN", "TOY_FAILED"))
    events_recorded: bool = False
    document: DocumentFormat | None = ToyDocument()

    def compile(self, flag: CompiledFlag, definition: JSONValue) -> None:
        if not isinstance(definition, dict) or "value" not in definition:
            raise ValueError("a toy flag needs a value")
        by_key = definition.get("by_key") or {}
        if not isinstance(by_key, dict):  # (unusable, said by the toy itself)
            flag.malformed = "a toy's by_key must be an object"
            flag.constant = BROKEN
            return
        flag.variations = (definition["value"], *by_key.values())
        flag.on = True
        everyone = Result(definition["value"], 0, EVERYONE, False, own_cache())
        if not by_key:
            flag.constant = everyone
            return
        results = {
            key: Result(value, at, BY_KEY, False, own_cache())
            for at, (key, value) in enumerate(by_key.items(), 1)
        }
        flag.code = Code(_run, True, (results, everyone))

    def typed_check(self, value: JSONValue, kind: type) -> tuple[bool, JSONValue]:
        return type(value) is kind, value

    def variant(self, flag: CompiledFlag | None, index: int) -> str:
        return f"toy-{index}"

    def metadata(self, flag: CompiledFlag | None) -> Mapping[str, JSONValue]:
        return _METADATA

    def ofrep_metadata(
        self, flag: CompiledFlag | None, version: int, reason: Mapping[str, Any]
    ) -> dict[str, JSONValue]:
        return dict(_METADATA)

    def reason_word(self, flag: CompiledFlag | None, reason: Mapping[str, Any]) -> str:
        return {"TOY_KEY": "TARGETING_MATCH", "TOY_DEFAULT": "DEFAULT"}.get(
            str(reason["kind"]), str(reason["kind"])
        )

    def branches(self, flag: CompiledFlag) -> dict[str, JSONValue]:
        return {"toy:everyone": flag.variations[0], "toy:by-key": None}

    def branch_taken(
        self, flag: CompiledFlag | None, reason: Mapping[str, Any], index: int | None
    ) -> str | None:
        kind = reason.get("kind")
        if kind == "TOY_KEY":
            return "toy:by-key"
        return "toy:everyone" if kind == "TOY_DEFAULT" else None

    def summary_text(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> str:
        return f"a toy, serves {definition.get('value')!r}"

    def details(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        flags: Mapping[str, Mapping[str, JSONValue]],
        segments: Collection[str] | None,
    ) -> JSONObject:
        return {"off": "never off", "fallthrough": self.summary_text(flag, definition)}

    def reason_text(
        self,
        reason: Mapping[str, JSONValue],
        flag: Mapping[str, JSONValue] | None,
        variation: int | None,
    ) -> str | None:
        kind = reason.get("kind")
        if kind == "TOY_KEY":
            return "a toy's key"
        return "a toy's everyone" if kind == "TOY_DEFAULT" else None

    def context_from(
        self,
        targeting_key: JSONValue,
        attributes: Mapping[str, Any],
        logger: logging.Logger | None = None,
    ) -> Context:
        if not isinstance(targeting_key, str) or not targeting_key:
            raise ContextError("TARGETING_KEY_MISSING", "a toy needs a targeting key")
        return Context.create(targeting_key)

    def is_large(self, definition: JSONValue) -> bool:
        by_key = definition.get("by_key") if isinstance(definition, dict) else None
        return isinstance(by_key, dict) and len(by_key) >= LARGE

    def prebuild(self, definitions: list[tuple[str, JSONValue]]) -> None:
        PREBUILT.append((threading.get_ident(), [key for key, _ in definitions]))


TOY: Final = Toy()


@contextlib.contextmanager
def registered_toy() -> Iterator[Toy]:
    """The toy system registered (one line: ``register(TOY)``) while the block runs."""
    register(TOY)
    try:
        yield TOY
    finally:
        unregister(TOY)


def toy_flag(key: str, value: JSONValue, **by_key: JSONValue) -> JSONObject:
    """A toy flag object: ``value`` for everyone, ``by_key`` for those keys."""
    return {"key": key, "version": 1, "toy": {"value": value, "by_key": by_key}}
