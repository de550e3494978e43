"""What an awaited method returns: a coroutine that is loud when used unawaited (issue 95).

``if client.bool_variation(...)`` without ``await`` tested a coroutine
object, which is always true: the flag was on for everyone, and only
Python's ``RuntimeWarning`` at exit said anything. ``bool_variation``, and
the migrator's ``read`` and ``write``, return one of these instead of a
native coroutine. Awaited, each is the ``async def`` it replaces (typed
``Coroutine[Any, Any, T]``, so type checkers still report it where it is
tested unawaited). Used as a value, it raises a ``TypeError`` that says to
await it: in a boolean context, and for a migration's result at the
result's attributes too.

Each is a :class:`collections.abc.Coroutine` (``send``, ``throw``,
``close``): whatever takes a native coroutine (``asyncio.gather``, a task
group's ``start_soon``) takes it too.

:class:`Answered` holds an answer evaluated at the call (the data in
memory, no gate to pass: the common case), :class:`Pending` a native
coroutine (an evaluation that waits at a gate, a migration). Either costs
an ``await`` more than a coroutine does (an ``__await__`` called through
its type's slot, a generator): ~550 CPU instructions for an answer made
once, ~1,400 for one made per call. So the methods whose answers are not
tested for truth stay coroutines (docs/benchmarks.md, "A forgotten
await").
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Generator
    from types import TracebackType

__all__ = ["RESULT_NAMES", "Answered", "Pending", "answered", "not_awaited"]

T = TypeVar("T")

#: The attributes of a migration's ``OperationResult`` and ``WriteResult``.
RESULT_NAMES: Final = frozenset(
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


def not_awaited(call: str) -> TypeError:
    """The error for ``call``'s result, used without ``await``."""
    return TypeError(
        f"{call}(...) was not awaited: use `await {call}(...)` "
        "(its coroutine object is always true)"
    )


@final
class Answered(Coroutine[Any, Any, T]):
    """An evaluation answered at the call: awaiting it returns :attr:`value`.

    Made by :func:`answered` (no ``__init__`` frame). Awaiting it more
    than once returns the same value, so one may be made once and shared
    (``bool_variation``'s ``True`` and ``False``).
    """

    __slots__ = ("call", "value")

    #: What returned it, as the user writes it (``client.bool_variation``).
    call: str
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
        return f"<{self.call}(...) answered: await it>"


_new: Final = object.__new__


def answered(call: str, value: T) -> Answered[T]:
    """An :class:`Answered` of ``call`` (``client.bool_variation``) holding ``value``."""
    done: Answered[T] = _new(Answered)
    done.call = call
    done.value = value
    return done


@final
class Pending(Coroutine[Any, Any, T]):
    """A native coroutine behind a method's name: awaited, it is that coroutine.

    Used unawaited as a boolean, or (a migration's) at one of ``refused``
    (:data:`RESULT_NAMES`), it raises :func:`not_awaited`'s error and
    closes the coroutine: that error is the one report, no
    ``RuntimeWarning`` after it. Other names raise ``AttributeError`` as
    usual (``hasattr`` leaves it to be awaited).
    """

    __slots__ = ("_call", "_coroutine", "_refused")

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, T],
        call: str,
        refused: frozenset[str] = frozenset(),
    ) -> None:
        self._coroutine = coroutine
        self._call = call
        self._refused = refused

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

    def __getattr__(self, name: str) -> NoReturn:
        if name in self._refused:
            self._refuse()
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def __repr__(self) -> str:
        return f"<{self._call}(...) not awaited>"
