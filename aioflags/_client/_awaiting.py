"""What an evaluation method returns: an awaitable that is loud used unawaited (issue 95).

``if client.bool_variation(...)`` without ``await`` tested a coroutine
object, which is always true: the flag was on for everyone, and only
Python's ``RuntimeWarning`` at exit said anything. Likewise
``string_variation(...) == "x"`` was always false, and
``variation_detail(...).value`` an ``AttributeError`` about a coroutine.
The typed methods (``bool_variation``, ``int_variation``,
``float_variation``, ``string_variation``, ``json_variation``), the six
``*_detail`` methods, ``all_flags_state`` and the migrator's ``read`` and
``write`` return one of these instead of a native coroutine. Awaited, each
is the ``async def`` it replaces (typed ``Coroutine[Any, Any, T]``, so
type checkers still report it where it is used unawaited). Used as a
value, it raises a ``TypeError`` that says to await it: in a boolean
context, compared with ``==``, ``!=``, ``<``..., and read as the result
it stands for (:data:`REFUSED`: ``.value``, ``.reason``,
``.is_success()``, ``.to_json()``...).

Each is a :class:`collections.abc.Coroutine` (``send``, ``throw``,
``close``): whatever takes a native coroutine (a task group's
``start_soon``, trio's nursery through anyio) takes it too. Two
of them compare as any two objects do (by identity), so a list or a set
of them works; only a comparison with a value is refused.

:class:`Answered` holds an answer evaluated at the call (the data in
memory, no gate to pass: the common case), :class:`Pending` a native
coroutine (an evaluation that waits at a gate, a migration, all-flags
state). Either costs an ``await`` more than a coroutine does: its
``__await__`` is called through its type's slot (a frame entered from C)
and returns a generator, ~550 CPU instructions for an answer made once
(``bool_variation``'s ``True`` and ``False``), ~1,400 for one made per
call (the other typed methods, the details: the class called and its
two slots set in the method's frame, the cheapest way measured). No
cheaper awaitable exists in pure Python: ``await`` takes a native
coroutine without a call, but a coroutine's truth cannot be changed, and
the ``__await__`` paths that hand a value back from C (``anext``'s
default, here through a ``functools.partial`` subclass whose
``__await__`` is ``partial.__call__``: no Python frame at all) allocate
more than they save (+2,500). So ``client.variation``, the one method
eval_window's floors measure (13x / 10.5x / 10x LaunchDarkly's SDK, met
with ~265 / ~365 / no instructions to spare an evaluation), stays a
coroutine, pinned by ``test_variation_stays_a_native_coroutine_for_the_speed_floors``:
+1,440 an evaluation would take it to ~11.4x / ~9.7x / ~9.2x
(docs/benchmarks.md, "A forgotten ``await``").
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Generator
    from types import TracebackType

__all__ = [
    "DETAIL_NAMES",
    "REFUSED",
    "RESULT_NAMES",
    "Answered",
    "Pending",
    "answered",
    "not_awaited",
]

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
#: The attributes of an ``EvaluationDetail``.
DETAIL_NAMES: Final = frozenset(
    ("error_kind", "is_default_value", "reason", "value", "variation_index")
)
#: The attributes of a ``FlagsState``.
FLAGS_STATE_NAMES: Final = frozenset(
    ("get_flag_reason", "get_flag_value", "to_dict", "to_json", "valid")
)
#: What an unawaited evaluation refuses to be read as (an answer's names):
#: any other name raises ``AttributeError`` as usual, so ``hasattr`` and
#: the probes of task runners (``cr_frame``, ``_asyncio_future_blocking``)
#: leave it to be awaited.
REFUSED: Final = RESULT_NAMES | DETAIL_NAMES | FLAGS_STATE_NAMES


def not_awaited(call: str) -> TypeError:
    """The error for ``call``'s result, used without ``await``."""
    return TypeError(
        f"{call}(...) was not awaited: use `await {call}(...)` "
        "(unawaited, it is an awaitable, not its answer)"
    )


@final
class Answered(Coroutine[Any, Any, T]):
    """An evaluation answered at the call: awaiting it returns :attr:`answer`.

    Made by calling the class and setting both slots (no ``__init__``
    frame), or by :func:`answered`. Awaiting it more than once returns the
    same answer, so one may be made once and shared (``bool_variation``'s
    ``True`` and ``False``).
    """

    __slots__ = ("answer", "call")

    #: What returned it, as the user writes it (``client.bool_variation``).
    call: str
    #: The answer (not ``value``: that is a detail's name, refused).
    answer: T

    def __await__(self) -> Generator[Any, None, T]:
        return self.answer
        yield  # type: ignore[unreachable]  # (a generator: awaiting it returns the answer)

    def send(self, value: object, /) -> NoReturn:
        """Finish at once with :attr:`answer` (what a task driving it sees)."""
        raise StopIteration(self.answer)

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

    def _refuse(self) -> NoReturn:
        raise not_awaited(self.call)

    def __bool__(self) -> NoReturn:
        self._refuse()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Awaitable):  # (two awaitables: by identity)
            return NotImplemented
        self._refuse()  # (a value: what an unawaited result is mistaken for)

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = object.__hash__  # (as a coroutine's: by identity)

    def _refused_name(self) -> NoReturn:
        self._refuse()

    # The answer's names (:data:`REFUSED`), read unawaited: one property,
    # not ``__getattr__``, which would slow every read of the slots (a
    # type with it gets no specialised attribute reads: +~290
    # instructions an ``await``).
    (
        authoritative,
        error,
        error_kind,
        exception,
        get_flag_reason,
        get_flag_value,
        is_default_value,
        is_success,
        nonauthoritative,
        origin,
        reason,
        to_dict,
        to_json,
        valid,
        value,
        variation_index,
    ) = (property(_refused_name),) * 16

    def __repr__(self) -> str:
        return f"<{self.call}(...) answered: await it>"


def answered(call: str, answer: T) -> Answered[T]:
    """An :class:`Answered` of ``call`` (``client.bool_variation``) holding ``answer``."""
    done: Answered[T] = Answered()
    done.call = call
    done.answer = answer
    return done


@final
class Pending(Coroutine[Any, Any, T]):
    """A native coroutine behind a method's name: awaited, it is that coroutine.

    Used unawaited as a value (a boolean, a comparison, or read at one of
    ``refused``'s names), it raises :func:`not_awaited`'s error and closes
    the coroutine: that error is the one report, no ``RuntimeWarning``
    after it. Other names raise ``AttributeError`` as usual (``hasattr``
    leaves it to be awaited).
    """

    __slots__ = ("_call", "_coroutine", "_names")

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, T],
        call: str,
        refused: frozenset[str] = REFUSED,
    ) -> None:
        self._coroutine = coroutine
        self._call = call
        self._names = refused

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

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Awaitable):  # (two awaitables: by identity)
            return NotImplemented
        self._refuse()  # (a value: what an unawaited result is mistaken for)

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = object.__hash__  # (as a coroutine's: by identity)

    def __getattr__(self, name: str) -> NoReturn:
        if name in self._names:
            self._refuse()
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def __repr__(self) -> str:
        return f"<{self._call}(...) not awaited>"
