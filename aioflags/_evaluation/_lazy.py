"""Flags compiled on first use: the raw entry a snapshot holds until then.

Ingest keeps each flag as its JSON text (or parsed object) with the few
facts the store needs before compiling (key, version, deleted, the keys it
reaches). :func:`cold_flag` wraps those in a :class:`CompiledFlag` whose
other attributes are not set yet: the first read of any of them compiles the
flag (once, under a lock, so threads evaluating it at the same moment wait
for one compilation) and the object *becomes* a plain :class:`CompiledFlag`
(its class is swapped), so the evaluation code and its speed are those of a
compiled flag, and the object's identity never changes.

Until then the flag's only slot set is ``run``, which holds a ``RawPut``
tuple (see ``aioflags._datasystem._datatypes``): the change set's own for
what ingest made (no new tuple, and freeing the change set then frees
nothing but its list), one of the same shape otherwise. The garbage collector stops tracking
it (it holds strings and ints), so a cold flag is one tracked object that
refers to one other (the collector walks every tracked object at each full
collection, and 100,000 flags load at once). ``key``, ``version`` and
``deleted`` are read from the tuple; reading ``run`` or any other attribute
compiles the flag.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final

from aioflags._core._json import raw_object

from ._model import CompiledFlag, compile_flag

if TYPE_CHECKING:
    from collections.abc import Callable

    from aioflags._core._json import JSONObject

    from ._context import Context
    from ._model import EvalState, Result

__all__ = ["cold_flag", "cold_flag_of", "is_cold", "warm"]

#: ``path`` of a source that is a parsed object, not text.
PARSED: Final = -1
_LOCK: Final = threading.Lock()
#: Every slot of a compiled flag (its bases' included), with its descriptor:
#: set through it, as ``_ColdFlag.run`` is a property over the ``run`` slot.
_SLOTS: Final = tuple(
    (name, cls.__dict__[name])
    for cls in CompiledFlag.__mro__
    for name in cls.__dict__.get("__slots__", ())
)
_RUN: Final = next(d for name, d in _SLOTS if name == "run")
_UNSET: Final = object()


def _source_object(source: str | JSONObject, path: int) -> object:
    if path == PARSED:
        return source
    return raw_object(source, path)  # type: ignore[arg-type]


class _ColdFlag(CompiledFlag):
    """A :class:`CompiledFlag` not compiled yet (same layout: its class is swapped).

    Only its ``run`` slot is set: ``key``, ``version`` and ``deleted`` are
    read from the tuple there, so that a full collection visits one object
    from a cold flag, not three (each visit a likely cache miss: a full
    collection over 100,000 cold flags took 31 ms of CPU instead of 34).
    """

    __slots__ = ()

    @property
    def key(self) -> str:  # type: ignore[override]
        """The flag's key."""
        return _RUN.__get__(self)[1]  # type: ignore[no-any-return]

    @property
    def version(self) -> int:  # type: ignore[override]
        """The flag's own version (0 if it has none)."""
        return _RUN.__get__(self)[5]  # type: ignore[no-any-return]

    @property
    def deleted(self) -> bool:  # type: ignore[override]
        """Whether the flag is a tombstone (``"deleted": true``)."""
        return _RUN.__get__(self)[6]  # type: ignore[no-any-return]

    @property
    def run(self) -> Callable[[Any, Context, EvalState], Result]:  # type: ignore[override]
        """The compiled flag's ``run`` (compiling it first)."""
        warm(self)
        return self.run

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
    _RUN.__set__(flag, ("flag", key, version, source, path, version, deleted))
    return flag


def cold_flag_of(item: tuple[Any, ...]) -> CompiledFlag:
    """A flag that compiles itself from an ingested put (the tuple is its ``run``)."""
    flag = object.__new__(_ColdFlag)
    _RUN.__set__(flag, item)
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
        run = _RUN.__get__(flag)
        compiled = compile_flag(run[1], _source_object(run[3], run[4]))
        for name, slot in _SLOTS:
            value = getattr(compiled, name, _UNSET)
            if value is not _UNSET:
                slot.__set__(flag, value)
            elif slot is _RUN:
                slot.__delete__(flag)  # (every compiled flag has one today)
        flag.__class__ = type(compiled)  # type: ignore[assignment]
