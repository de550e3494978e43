"""What an awaited method returns: a coroutine that is loud when used unawaited (issue 95).

``if client.bool_variation(...)`` without ``await`` tests a coroutine
object, which is always true: the flag is on for everyone, and only
Python's ``RuntimeWarning`` at exit says anything. So the client's
evaluation methods, and the migrator's ``read`` and ``write``, return one
of these instead of a native coroutine. Awaited, each is the same as the
``async def`` it replaces (``await client.bool_variation(...)`` is a
``bool``; typed ``Coroutine[Any, Any, bool]``, it still fails type
checking where it is tested unawaited). Used as a value, it raises a
``TypeError`` that says to await it: in a boolean context
(:class:`Answered`, :class:`Pending`), and for a migration's result, at
its attributes too (:class:`PendingResult`).

Each is a :class:`collections.abc.Coroutine` (``send``, ``throw``,
``close``): ``asyncio.create_task``, ``asyncio.gather`` and anyio's
``start_soon`` take it as they take a native one.

:class:`Answered` holds an answer the client evaluated at the call (the
data was in memory, no gate to pass: an evaluation's common case). It is
made without a Python ``__init__`` (:func:`answered`), and awaiting it
runs one generator frame: about what the native coroutine cost, whose
frame it replaces (docs/benchmarks.md). :class:`Pending` delegates to a
native coroutine (an evaluation that waits for a gate, a migration).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Generator
    from types import TracebackType

__all__ = ["Answered", "Pending", "PendingResult", "answered", "not_awaited"]

T = TypeVar("T")


def not_awaited(call: str) -> TypeError:
    """The error for ``call``'s result, used without ``await``."""
    return TypeError(
        f"{call}(...) was not awaited: use `await {call}(...)` "
        "(its coroutine object is always true)"
    )


class Answered(Coroutine[Any, Any, T]):
    """An evaluation answered at the call: awaiting it returns :attr:`value`.

    One subclass per method (:func:`answered_type`), whose :attr:`call`
    the error names; made by :func:`answered`. Awaiting it more than once
    returns the same value.
    """

    __slots__ = ("value",)

    #: What returned it, as the user writes it (``client.bool_variation``).
    call: ClassVar[str] = "client.variation"
    #: The answer.
    value: T

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # type: ignore[unreachable]  # (a generator: awaiting it returns the value)

    def send(self, value: object, /) -> NoReturn:
        """Finish at once with :attr:`value` (what a task driving it sees)."""
        raise StopIteration(self.value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
        /,
    ) -> NoReturn:
        """Raise what is thrown in: nothing is suspended to catch it."""
        raise typ if isinstance(typ, BaseException) else typ()

    def close(self) -> None:
        """Nothing to close: the evaluation is done."""

    def __bool__(self) -> NoReturn:
        raise not_awaited(self.call)

    def __repr__(self) -> str:
        return f"<{self.call}(...) answered, not awaited>"


_new: Final = object.__new__


def answered(kind: type[Answered[T]], value: T) -> Answered[T]:
    """An :class:`Answered` of ``kind`` holding ``value``: no ``__init__`` frame."""
    done: Answered[T] = _new(kind)
    done.value = value
    return done


def answered_type(call: str) -> type[Answered[Any]]:
    """The :class:`Answered` subclass whose error names ``call`` (``client.bool_variation``)."""
    name = call.rpartition(".")[2]
    return type(f"Answered_{name}", (Answered,), {"__slots__": (), "call": call})


class Pending(Coroutine[Any, Any, T]):
    """A native coroutine behind a method's name: awaited, it is that coroutine.

    Used unawaited as a boolean, it raises :func:`not_awaited`'s error and
    closes the coroutine (that error is the one report: no
    ``RuntimeWarning`` after it).
    """

    __slots__ = ("_call", "_coroutine")

    def __init__(self, coroutine: Coroutine[Any, Any, T], call: str) -> None:
        self._coroutine = coroutine
        self._call = call

    def __await__(self) -> Generator[Any, None, T]:
        return self._coroutine.__await__()

    def send(self, value: Any, /) -> Any:
        """Resume the coroutine with ``value``."""
        return self._coroutine.send(value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any:
        """Raise ``typ`` in the coroutine where it waits."""
        error = typ if isinstance(typ, BaseException) else typ()
        return self._coroutine.throw(error)

    def close(self) -> None:
        """Close the coroutine."""
        self._coroutine.close()

    def _refuse(self) -> NoReturn:
        self._coroutine.close()
        raise not_awaited(self._call)

    def __bool__(self) -> NoReturn:
        self._refuse()

    def __repr__(self) -> str:
        return f"<{self._call}(...) not awaited>"


@final
class PendingResult(Pending[T]):
    """A :class:`Pending` migration operation: its result's attributes refuse too.

    ``migrator.read(...).is_success()`` without ``await`` raises the same
    ``TypeError`` as ``bool()`` does, naming the fix, where a coroutine
    would raise ``AttributeError: 'coroutine' object has no attribute
    'is_success'``. Other names raise ``AttributeError`` as usual.
    """

    __slots__ = ()

    #: The attributes of ``OperationResult`` and ``WriteResult``.
    RESULT_NAMES: ClassVar[frozenset[str]] = frozenset(
        (
            "authoritative",
            "error",
            "exception",
            "is_success",
            "nonauthoritative",
            "origin",
            "value",
        )
    )

    def __getattr__(self, name: str) -> NoReturn:
        if name in self.RESULT_NAMES:
            self._refuse()
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )
