"""The async client's evaluation methods, written per composition.

Each of the client's awaited evaluation methods (:data:`METHODS`) is
the composition's one evaluation (:func:`~aioflags._evaluation._composed.body`,
the text every face shares) with two things of its own around it::

    guard    still its composition, the class's own method?  no: the
             client's method now (:class:`Face`)
    body     door, find, [before], [lens], run, [type], [count],
             [after], answer: in the caller's frame, on the store's
             snapshot
    other    the snapshot's method (its evaluation: the door's answer,
             the same stages), through the gate if any (big segments, a
             store read per call)

The functions run in the caller's own frame (the client installs them as
its methods: a call more would cost ~490 instructions, 9 % of an
evaluation, callgrind).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol, cast, final

from aioflags._evaluation._composed import METHODS as COMPOSED
from aioflags._evaluation._composed import Composition
from aioflags._evaluation._composed import write as write_body
from aioflags._evaluation._snapshot import FlagSnapshot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from types import FunctionType

    from aioflags._evaluation._context import Context

    #: What the written methods read the data from (``Evaluator.store``).
    class _Data(Protocol):
        @property
        def snapshot(self) -> FlagSnapshot: ...

    #: ``Evaluator.now``: the snapshot to evaluate ``key`` in now, or None.
    _Now = Callable[[str], FlagSnapshot | None]
    #: ``Evaluator.later``: the evaluation once the gate has let it through.
    _Later = Callable[..., Awaitable[Any]]


__all__ = [
    "METHODS",
    "Composition",
    "Face",
    "Method",
    "retire",
    "through_class",
    "write",
]


class Method(Protocol):
    """``await method(key, context, default)``: one of a client's evaluation methods."""

    async def __call__(
        self, key: str, context: Context | None, default: Any, /
    ) -> Any: ...


@final
class Face:
    """The client a composition's methods are installed on, and its class's own methods.

    A written method is set on the client's instance (``Client._install``),
    so a reference to it may outlive its composition (kept by a caller, put
    back by a mock's ``patch.object`` on exit), and a test may patch the
    class's method. Each written method checks, first, that it is still its
    evaluator's composition and that the class's method is still the
    original; if not, the call goes where ``client.<method>`` would go
    through the class (:func:`through_class`).
    """

    __slots__ = ("client", "originals")

    def __init__(self, client: object, originals: Mapping[str, Any]) -> None:
        self.client = client
        #: The class's own methods, by name (what an unpatched class holds).
        self.originals = originals


def through_class(client: object, name: str) -> Any:
    """``client.<name>`` as the class gives it (a patched class's mock too)."""
    import inspect  # (only for a method out of date: not with aioflags)

    cls = type(client)
    attr = inspect.getattr_static(cls, name)
    get = getattr(type(attr), "__get__", None)
    return attr if get is None else get(attr, client, cls)


#: The client's awaited evaluation methods: the composed ones but those
#: that answer a result (the client's ``migration_variation`` is the
#: snapshot's).
METHODS: Final = frozenset(
    name for name, (_, _, answer, _) in COMPOSED.items() if answer != "result"
)


def write(
    composition: Composition,
    method: str,
    store: _Data,
    now: _Now,
    later: _Later,
    face: Face | None,
) -> Method:
    """The client's awaited ``method`` (one of :data:`METHODS`) for ``composition``.

    It reads the flag data from ``store``; what it does not evaluate in its
    own frame (the door's refusals, a missing flag, a gate) it hands to the
    snapshot ``now(key)`` gives, or awaits ``later``. Once its
    composition has changed (:func:`retire`), it hands its calls on,
    through ``face``'s class.
    """
    head = [
        f"async def {method}(key, context, default):",
        # guard: retired? (its composition changed, or a patch of the
        # class's method did: the call goes where client.<method> goes
        # now; a name of its own, read as cheaply as a name is)
        "    if retired:",
        "        return await elsewhere(key, context, default)",
    ]
    # other: what the snapshot's method answers, through the gate if any
    # (as Evaluator.evaluate() does it, without a second coroutine)
    tail = [
        "    snapshot = now(key)",
        "    if snapshot is not None:",
        f"        return snapshot.{method}(key, context, default)",
        f"    return await later(FlagSnapshot.{method}, key, context, default)",
    ]
    if face is not None:
        client = face.client

        async def elsewhere(key: str, context: Context | None, default: Any) -> Any:
            return await through_class(client, method)(key, context, default)

    else:

        async def elsewhere(key: str, context: Context | None, default: Any) -> Any:
            raise RuntimeError("a method of a composition that has changed")

    namespace = {
        "FlagSnapshot": FlagSnapshot,
        "composition": composition,
        "elsewhere": elsewhere,
        "retired": False,
        "later": later,
        "now": now,
        "store": store,
    }
    function = write_body(composition, method, head, tail, namespace)
    if face is not None:  # what the class's method says of itself
        import inspect  # (on a client's first call: not with aioflags)

        original = face.originals[method]
        function.__doc__ = original.__doc__
        function.__annotations__ = dict(original.__annotations__)
        signature = inspect.signature(original)
        function.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=list(signature.parameters.values())[1:]
        )
    function.__qualname__ = f"Client.{method}"
    function.__module__ = "aioflags"
    written: Method = function
    return written


def retire(method: Method) -> None:
    """``method``'s composition has changed: it hands its calls on from now on."""
    function = cast("FunctionType", method)  # (what write() made it: a function)
    function.__globals__["retired"] = True
