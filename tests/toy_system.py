"""A toy flag system, in one module: issue 96's proof that a system plugs in.

A toy flag is a flag object with a ``"toy"`` part: ``{"value": V,
"by_key": {"u1": W}}`` serves ``W`` to the context whose key is ``u1``
(reason ``TOY_KEY``) and ``V`` to everyone else (``TOY_DEFAULT``); with
``"off": true`` it serves the caller's default (``TOY_OFF``), and the flag
object's ``on`` mirrors it. Its contexts need a targeting key; its type
step is strict (no number becomes another); its metadata says it is a toy.
:data:`TOY` registers in one line (:func:`registered_toy`); nothing outside
this module knows it.

The tools ask it too: codegen (its values, its default: its value for
everyone), the console's editing API (switched off is ``"off": true``; one
value for everyone drops its keyed values, asked first) and cleanup's
evidence (settled: on, no keyed values, that value).

Its document format (:class:`ToyDocument`): a JSON or YAML file
``{"toy": 1, "flags": {KEY: {"value": V, "by_key": {...}}}}`` is read by
``DataSystem.file``, ``aioflags eval --file`` and ``aioflags validate``,
checked by its own linter (a toy without a value; a keyed value of
another type than the value, a warning) and described by its own schema
(``aioflags schema --format toy``).

Its configuration (:class:`ToyConfiguration`): ``TOY_FLAG_FILE`` (and
``TOY_RELOAD``, seconds between checks) make ``Config.from_env()``'s data
system ``DataSystem.file(path, format="toy")``; ``TOY_RELOAD`` without
``TOY_FLAG_FILE`` is refused, naming both; docs/configuration.md's tables
would show its options under ``toy``; a client's block over a data system
of its flags tells it when it ends (``TOY_CONFIGURATION.blocks``).
A toy keyed for :data:`LARGE` contexts or more is large: the store has the
toy build it ahead, on a worker thread (``is_large``, ``prebuild``).
Toys share too: ``{"value_from": "toy:NAME"}`` takes the value of the
shared item (a segment) ``toy:NAME`` (``{"toy_value": V}``), which the store
links in through the toy (``shared_keys``, ``link``).

Its data source (:class:`ToySource`) runs on the flag plane: a follower
serves the leader's toys, and the plane names the source as the toy writes
it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import AsyncGenerator, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import anyio

from aioflags import Context, DataSystem
from aioflags._client._ofcontext import ContextError
from aioflags._core._exceptions import ConfigurationError
from aioflags._core._json import JSONObject, JSONValue
from aioflags._core._options import Kind, Option, check, parse
from aioflags._datasystem._context import mark_flag_system
from aioflags._datasystem._plane._config import Plane
from aioflags._datasystem._sources._files import EMPTY_FILE, FlagFileError
from aioflags._evaluation._codegen import Code
from aioflags._evaluation._model import CompiledFlag, Split
from aioflags._evaluation._results import Reason, Result, own_cache
from aioflags._evaluation._system_parts import (
    DocumentFormat,
    DocumentProblem,
    SystemConfiguration,
)
from aioflags._systems import register, unregister
from aioflags.sources import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    SourceContext,
    SourceState,
    Update,
)

BY_KEY: Final = Reason({"kind": "TOY_KEY"})
EVERYONE: Final = Reason({"kind": "TOY_DEFAULT"})
BROKEN: Final = Result(
    None, None, Reason({"kind": "ERROR", "errorKind": "TOY_BROKEN"}), False, None
)
FAILED: Final = Result(
    None, None, Reason({"kind": "ERROR", "errorKind": "TOY_FAILED"}), False, None
)
OFF: Final = Result(None, None, Reason({"kind": "TOY_OFF"}), False, None)
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
            key: {"key": key, "version": 1, "on": _on(d), "toy": d}
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


def _on(definition: object) -> bool:
    """The flag object's ``on``: the mirror of its definition's ``off``."""
    return not (isinstance(definition, dict) and definition.get("off") is True)


def _by_key(definition: Mapping[str, JSONValue]) -> Mapping[str, JSONValue]:
    by_key = definition.get("by_key")
    return by_key if isinstance(by_key, dict) else {}


#: The toy data system's options, declared once: checked and tabled from here.
TOY_OPTIONS: Final = (
    Option(
        "path", Kind.OTHER, type="path", default=None, env=("TOY_FLAG_FILE",),
        doc="the toy file",
    ),
    Option(
        "interval", Kind.SECONDS, default=None, env=("TOY_RELOAD",),
        doc="seconds between checks of the toy file (None: read once)",
    ),
)  # fmt: skip


class ToyConfiguration:
    """The toy's configuration: every member of ``SystemConfiguration``, nothing more."""

    __slots__ = ("blocks",)

    options: Sequence[Option] = TOY_OPTIONS
    preset: None = None  # (no ``DataSystem.toy()``)

    def __init__(self) -> None:
        #: the client blocks over a data system of toy flags that ended
        self.blocks = 0

    def from_environment(
        self, env: Mapping[str, str], *, plane: str | None = None
    ) -> DataSystem | None:
        interval_option = TOY_OPTIONS[1]
        path = env.get("TOY_FLAG_FILE", "").strip()
        if not path:
            return None
        text = env.get("TOY_RELOAD", "").strip()
        interval = parse(interval_option, "TOY_RELOAD", text) if text else None
        if not isinstance(interval, float | int):
            return DataSystem.file(path, format="toy")
        try:
            check(interval_option, interval, "DataSystem.file", variable="TOY_RELOAD")
        except ConfigurationError as exc:
            raise ConfigurationError(f"TOY_RELOAD={text!r}: {exc}") from None
        return DataSystem.file(path, reload=True, interval=interval, format="toy")

    def unclaimed(self, env: Mapping[str, str]) -> None:
        if env.get("TOY_RELOAD", "").strip():
            raise ConfigurationError("TOY_RELOAD is set but TOY_FLAG_FILE is not")

    def after_block(self) -> None:
        self.blocks += 1


#: The toy's configuration (``Toy.configuration``).
TOY_CONFIGURATION: Final = ToyConfiguration()


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
    configuration: SystemConfiguration | None = TOY_CONFIGURATION

    def compile(self, flag: CompiledFlag, definition: JSONValue) -> None:
        if not isinstance(definition, dict) or "value" not in definition:
            raise ValueError("a toy flag needs a value")
        by_key = definition.get("by_key") or {}
        if not isinstance(by_key, dict):  # (unusable, said by the toy itself)
            flag.malformed = "a toy's by_key must be an object"
            flag.constant = BROKEN
            return
        flag.variations = (definition["value"], *by_key.values())
        flag.on = definition.get("off") is not True
        if not flag.on:
            flag.constant = OFF
            return
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

    def splits(self, flag: CompiledFlag) -> tuple[Split, ...]:
        return ()  # (its flags assign nothing by chance)

    def variant(self, flag: CompiledFlag | None, index: int) -> str:
        return f"toy-{index}"

    def metadata(self, flag: CompiledFlag | None) -> Mapping[str, JSONValue]:
        return _METADATA

    def ofrep_metadata(
        self, flag: CompiledFlag | None, version: int, reason: Mapping[str, Any]
    ) -> dict[str, JSONValue]:
        return dict(_METADATA)

    def reason_word(self, flag: CompiledFlag | None, reason: Mapping[str, Any]) -> str:
        words = {"TOY_KEY": "TARGETING_MATCH", "TOY_OFF": "DISABLED"}
        return {**words, "TOY_DEFAULT": "DEFAULT"}.get(
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
        off = "the caller's default"
        return {"off": off, "fallthrough": self.summary_text(flag, definition)}

    def reason_text(
        self,
        reason: Mapping[str, JSONValue],
        flag: Mapping[str, JSONValue] | None,
        variation: int | None,
    ) -> str | None:
        kind = reason.get("kind")
        if kind == "TOY_KEY":
            return "a toy's key"
        if kind == "TOY_OFF":
            return "a toy switched off"
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

    # The tools: codegen, the console's editing API, cleanup's evidence.
    def values(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> list[JSONValue]:
        return [definition.get("value"), *_by_key(definition).values()]

    def value_names(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> list[str] | None:
        return None

    def description(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> str | None:
        said = definition.get("about")
        return said if isinstance(said, str) else None

    def code_default(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        values: Sequence[JSONValue],
    ) -> tuple[JSONValue, str]:
        return values[0], "its value for everyone"

    def served_index(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> int | str | None:
        return "rules" if _by_key(definition) else 0

    def serve_one_asks(
        self,
        key: str,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
    ) -> str | None:
        if not _by_key(definition):
            return None
        return f"{key!r} has keyed values: one for everyone drops them (confirm)"

    def changed(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        on: bool | None,
        index: int | None,
    ) -> JSONObject:
        part: JSONObject = dict(definition)
        if on is not None:
            part["off"] = not on
        if index is not None:
            part["value"] = self.values(flag, definition)[index]
            part["by_key"] = {}
        return {**flag, "on": _on(part), "toy": part}

    def settled_refusals(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        value: JSONValue,
        subject: str,
    ) -> list[str]:
        if definition.get("off") is True:
            return [f"{subject} is a toy switched off"]
        if _by_key(definition):
            return [f"{subject} has keyed values: not everyone gets the same value"]
        if json.dumps(definition.get("value")) != json.dumps(value):
            return [f"{subject} serves {definition.get('value')!r}, not {value!r}"]
        return []

    def is_large(self, definition: JSONValue) -> bool:
        by_key = definition.get("by_key") if isinstance(definition, dict) else None
        return isinstance(by_key, dict) and len(by_key) >= LARGE

    def prebuild(self, definitions: list[tuple[str, JSONValue]]) -> None:
        PREBUILT.append((threading.get_ident(), [key for key, _ in definitions]))

    # What toys share: a toy with ``"value_from": "toy:NAME"`` takes its
    # value for everyone from the shared item (a segment) ``toy:NAME``'s
    # ``toy_value``, which the store links in (the toy's own held values).
    def shared_keys(self, flag: JSONObject) -> Sequence[str]:
        part = flag.get("toy")
        named = part.get("value_from") if isinstance(part, dict) else None
        return [named] if isinstance(named, str) else []

    def link(
        self, change_set: Any, held: dict[str, JSONValue]
    ) -> tuple[Any, dict[str, JSONValue]]:
        assert isinstance(change_set, ChangeSet)
        if change_set.intent is IntentCode.TRANSFER_NONE:
            return change_set, held
        full = change_set.intent is IntentCode.TRANSFER_FULL
        shared = {} if full else dict(held)
        for change in change_set.changes:
            if change.kind is ObjectKind.SEGMENT and change.key.startswith(SHARED):
                obj = change.obj if change.action is ChangeKind.PUT else None
                if isinstance(obj, dict):
                    shared[change.key] = obj.get("toy_value")
                else:
                    shared.pop(change.key, None)
        changes = tuple(_linked(change, shared) for change in change_set.changes)
        if all(a is b for a, b in zip(changes, change_set.changes, strict=True)):
            return change_set, shared
        linked = ChangeSet(
            intent=change_set.intent,
            changes=changes,
            selector=change_set.selector,
            compare_versions=change_set.compare_versions,
        )
        return linked, shared


#: The prefix of the items toys share (:meth:`Toy.link`).
SHARED: Final = "toy:"


def _linked(change: Change, shared: Mapping[str, JSONValue]) -> Change:
    """``change``, a toy put naming a shared item the store holds, with its value put in."""
    obj = change.obj if change.action is ChangeKind.PUT else None
    part = obj.get("toy") if isinstance(obj, dict) else None
    named = part.get("value_from") if isinstance(part, dict) else None
    if not isinstance(named, str) or named not in shared:
        return change
    assert isinstance(obj, dict) and isinstance(part, dict)
    value = {**part, "value": shared[named]}
    return Change(
        action=change.action,
        kind=change.kind,
        key=change.key,
        version=change.version,
        obj={**obj, "toy": value},
    )


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
    return {
        "key": key,
        "version": 1,
        "on": True,
        "toy": {"value": value, "by_key": by_key},
    }


class ToySource:
    """A toy data source: a synchronizer factory serving toy flags, and changes put while it runs.

    Its data system (:meth:`data_system`) shares a flag plane the toy's way:
    the plane carries the source's identity as the toy writes it
    (:attr:`words`, ``Plane.source``) under the toy's name (``Plane.system``).
    """

    def __init__(self, words: str, **flags: JSONObject) -> None:
        self.words = words
        self.flags = dict(flags)
        #: How many times the data system ran it (a follower's: never).
        self.runs = 0
        self._pending: list[JSONObject] = []
        self._changed = anyio.Event()

    def put(self, flag: JSONObject) -> None:
        """Change (or add) a toy flag: the running source sends it."""
        self.flags[str(flag["key"])] = flag
        self._pending.append(flag)
        self._changed.set()

    def data_system(self, plane: str) -> DataSystem:
        """A data system of this source alone, on the flag plane at ``plane``."""
        # (``plane=`` takes a Plane as it is: the path, with the source's
        # words and its system's name, which DataSystem.custom's own
        # arguments do not say)
        on_plane: Any = Plane(plane, self.words, "toy")
        return DataSystem.custom(
            synchronizers=[mark_flag_system(self, "toy")], plane=on_plane
        )

    async def __call__(self, context: SourceContext) -> AsyncGenerator[Update, None]:
        self.runs += 1
        flags, self._pending = list(self.flags.values()), []
        yield _update(IntentCode.TRANSFER_FULL, flags)
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            flags, self._pending = self._pending, []
            yield _update(IntentCode.TRANSFER_CHANGES, flags)


def _update(intent: IntentCode, flags: Sequence[JSONObject]) -> Update:
    changes = tuple(
        Change(
            action=ChangeKind.PUT,
            kind=ObjectKind.FLAG,
            key=str(flag["key"]),
            version=int(str(flag["version"])),
            obj=flag,
        )
        for flag in flags
    )
    change_set = ChangeSet(intent=intent, changes=changes)
    return Update(state=SourceState.VALID, change_set=change_set)
