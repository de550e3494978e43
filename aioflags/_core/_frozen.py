"""Immutable value classes without dataclass machinery.

``@dataclass`` builds each class's methods by generating source and
``exec``-ing it when the module is imported (about 0.5 ms a class here), and
importing :mod:`dataclasses` pulls in :mod:`inspect` and :mod:`ast`. The
SDK's public value classes (``Config``, ``EvaluationDetail``, ``ErrorInfo``,
...) are imported with ``import aioflags``, so they are plain slotted classes
instead: each writes its own keyword ``__init__`` (what type checkers and
readers see), and :class:`Frozen` gives them what ``@dataclass(frozen=True,
slots=True)`` gave: equality, hashing and ``repr`` by fields (in
``__slots__`` order), assignment refused with
:class:`dataclasses.FrozenInstanceError`, ``copy``/``pickle`` support, and
``copy.replace()`` (Python 3.13) through ``__replace__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Self

    # Only for type checkers: at run time a bound given as a string is
    # compiled, and the first compile() of a process costs ~2 ms.
    _F = TypeVar("_F", bound="Frozen")

__all__ = ["Frozen", "refuse", "set_field"]

#: Sets a field from ``__init__`` (``Frozen.__setattr__`` refuses to).
set_field = object.__setattr__


def refuse(name: str, verb: str) -> NoReturn:
    """Raise what a frozen dataclass raised: ``verb`` is "assign to" or "delete"."""
    # Imported on this error path only: it is what dataclasses raised, so
    # code that catches it keeps working.
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot {verb} field {name!r}")


def _rebuild(cls: type[_F], values: tuple[object, ...]) -> _F:
    """``copy`` and ``pickle``: the fields as they were (no validation again)."""
    obj = object.__new__(cls)
    names: tuple[str, ...] = cls.__slots__
    for name, value in zip(names, values, strict=True):
        set_field(obj, name, value)
    return obj


class Frozen:
    """Base of an immutable value class whose ``__slots__`` are its fields.

    Subclasses declare ``__slots__`` (the fields, in order: not sorted) and
    an ``__init__`` that sets each with :data:`set_field`.
    """

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()
    #: Fields left out of ``repr`` (secrets).
    _hidden: ClassVar[tuple[str, ...]] = ()

    def _names(self) -> tuple[str, ...]:
        return self.__slots__

    def _astuple(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._names()])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __repr__(self) -> str:
        hidden = self._hidden
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self._names()
            if name not in hidden
        )
        return f"{type(self).__qualname__}({fields})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        refuse(name, "assign to")

    def __delattr__(self, name: str) -> NoReturn:
        refuse(name, "delete")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self._astuple()))

    def __replace__(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated again (``copy.replace``, 3.13)."""
        values = dict(zip(self._names(), self._astuple(), strict=True))
        unknown = changes.keys() - values.keys()
        if unknown:
            raise TypeError(
                f"{type(self).__qualname__} has no field {sorted(unknown)[0]!r}"
            )
        values.update(changes)
        return type(self)(**values)
