"""Flags compiled on first use: the raw entry a snapshot holds until then.

Ingest keeps each flag as its JSON text (or parsed object) with the few
facts the store needs before compiling (key, version, deleted, the keys it
reaches). :func:`cold_flag` wraps those in a :class:`CompiledFlag` whose
other attributes are not set yet: the first read of any of them compiles the
flag (once, under a lock, so threads evaluating it at the same moment wait
for one compilation) and the object *becomes* a plain :class:`CompiledFlag`
(its class is swapped), so the evaluation code and its speed are those of a
compiled flag, and the object's identity never changes.

Until then the flag's ``run`` is a partial of :func:`_cold_run` with the source;
called directly (no evaluation path does that before reading another
attribute) it compiles a throw-away copy and runs it, so it is never wrong.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from ._datatypes import RAW_DATA, RAW_EVENT
from ._model import CompiledFlag, compile_flag

if TYPE_CHECKING:
    from ._context import Context
    from ._json import JSONObject
    from ._model import EvalState, Result

__all__ = ["cold_flag", "is_cold", "warm"]

#: ``path`` of a source that is a parsed object, not text.
PARSED: Final = -1
_LOCK: Final = threading.Lock()
#: Every slot of a compiled flag (its bases' included).
_SLOTS: Final = tuple(
    name for cls in CompiledFlag.__mro__ for name in getattr(cls, "__slots__", ())
)
_UNSET: Final = object()
_set = object.__setattr__


def _source_object(source: str | JSONObject, path: int) -> object:
    if path == PARSED:
        return source
    value = json.loads(source)  # type: ignore[arg-type]
    if path == RAW_EVENT:
        return value["data"]["object"]
    if path == RAW_DATA:
        return value["object"]
    return value


def _cold_run(
    key: str, source: str | JSONObject, path: int, ctx: Context, st: EvalState
) -> Result:
    """A cold flag's ``run`` (a partial of this): compile a copy, run it."""
    flag = compile_flag(key, _source_object(source, path))
    if flag.constant is not None:
        return flag.constant
    return flag.run(ctx, st)


class _ColdFlag(CompiledFlag):
    """A :class:`CompiledFlag` not compiled yet (same layout: its class is swapped)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes that are not set: compile, then read.
        if name.startswith("__"):
            raise AttributeError(name)
        warm(self)
        return getattr(self, name)


def cold_flag(
    key: str, version: int, deleted: bool, source: str | JSONObject, path: int
) -> CompiledFlag:
    """A flag that compiles itself from ``source`` on first use.

    ``path`` says where the flag's object is in ``source``: ``RAW_OBJECT``,
    ``RAW_EVENT`` or ``RAW_DATA`` for JSON text, ``PARSED`` for an object.
    ``version`` and ``deleted`` must be what :func:`compile_flag` will find.
    """
    flag = object.__new__(_ColdFlag)
    _set(flag, "key", key)
    _set(flag, "version", version)
    _set(flag, "deleted", deleted)
    _set(flag, "run", partial(_cold_run, key, source, path))
    return flag


def is_cold(flag: CompiledFlag) -> bool:
    """Whether ``flag`` has not been compiled yet."""
    return type(flag) is _ColdFlag


def warm(flag: CompiledFlag) -> None:
    """Compile a cold flag in place (exactly once, whatever the threads); else nothing."""
    if type(flag) is not _ColdFlag:
        return
    with _LOCK:
        if type(flag) is not _ColdFlag:
            return  # another thread compiled it while this one waited
        _, source, path = flag.run.args  # type: ignore[attr-defined]
        compiled = compile_flag(flag.key, _source_object(source, path))
        for name in _SLOTS:
            value = getattr(compiled, name, _UNSET)
            if value is not _UNSET:
                _set(flag, name, value)
        flag.__class__ = type(compiled)  # type: ignore[assignment]
