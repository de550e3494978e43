"""The values that data sources yield and the data system consumes (protocol.md §6).

Initializers yield :class:`Basis` results; synchronizers yield :class:`Update`
results. Both may carry the FDv1 fallback directive (``fallback_to_fdv1``):
the supervisor applies the payload first, then switches to FDv1 for good.
"""

from __future__ import annotations

import enum
import itertools
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast, final

from aioflags._core._frozen import Frozen, refuse, set_field
from aioflags._core._json import RAW_OBJECT, raw_object

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from aioflags._core._json import JSONObject

__all__ = [
    "Basis",
    "Change",
    "ChangeKind",
    "ChangeSet",
    "DataSourceStatus",
    "ErrorInfo",
    "ErrorKind",
    "IntentCode",
    "ObjectKind",
    "Selector",
    "SourceState",
    "Update",
]


@final
class Selector(Frozen):
    """Where a payload stands: the server's ``state`` string and ``version``.

    A selector is *defined* unless it is ``("", 0)``; only a defined selector
    is sent back to the server as ``basis=<state>``.
    """

    __slots__ = ("state", "version")
    state: str
    version: int

    def __init__(self, *, state: str = "", version: int = 0) -> None:
        set_field(self, "state", state)
        set_field(self, "version", version)

    @property
    def defined(self) -> bool:
        """Whether this selector names a payload state (not ``("", 0)``)."""
        return self.state != "" or self.version != 0


#: The undefined selector (FDv1 data, files, "no change").
NO_SELECTOR = Selector()


class IntentCode(enum.Enum):
    """What a change set does to the store."""

    TRANSFER_FULL = "xfer-full"
    TRANSFER_CHANGES = "xfer-changes"
    TRANSFER_NONE = "none"


class ObjectKind(enum.Enum):
    """The kinds of object a change carries."""

    FLAG = "flag"
    SEGMENT = "segment"


class ChangeKind(enum.Enum):
    """Put (create or replace) or delete."""

    PUT = "put"
    DELETE = "delete"


#: What ingest learned about a put's object: its own ``version`` (0 if none),
#: whether it is ``deleted``, then the flags and segments it uses, each as
#: ``"f" + key`` or ``"s" + key`` (the store's dependency nodes). Flat, all
#: strings, ints and a bool: the garbage collector stops tracking such a
#: tuple at its first collection (a tuple nested in it would take a
#: collection more).
ObjectMeta: TypeAlias = tuple[Any, ...]


@final
class Change:
    """One object put or deleted. ``obj`` is the flag or segment JSON for a put.

    A frozen value (keyword-only constructor, equality by fields). Changes
    that aioflags' own sources build keep the object's JSON text and parse it
    only when ``obj`` is read; the store compiles a flag from that text on its
    first evaluation.
    """

    __slots__ = ("_obj", "_path", "_raw", "action", "key", "kind", "version")
    __match_args__ = ()

    action: ChangeKind
    kind: ObjectKind
    key: str
    version: int
    _obj: JSONObject | None
    _raw: str | None
    _path: int

    def __init__(
        self,
        *,
        action: ChangeKind,
        kind: ObjectKind,
        key: str,
        version: int,
        obj: JSONObject | None = None,
    ) -> None:
        set_field(self, "action", action)
        set_field(self, "kind", kind)
        set_field(self, "key", key)
        set_field(self, "version", version)
        set_field(self, "_obj", obj)
        set_field(self, "_raw", None)
        set_field(self, "_path", RAW_OBJECT)

    @classmethod
    def _raw_put(
        cls,
        kind: ObjectKind,
        key: str,
        version: int,
        raw: str,
        path: int,
    ) -> Change:
        """A put whose object stays JSON text until ``obj`` is read (ingest's path)."""
        change = object.__new__(cls)
        set_field(change, "action", ChangeKind.PUT)
        set_field(change, "kind", kind)
        set_field(change, "key", key)
        set_field(change, "version", version)
        set_field(change, "_obj", None)
        set_field(change, "_raw", raw)
        set_field(change, "_path", path)
        return change

    @property
    def obj(self) -> JSONObject | None:
        """The flag or segment JSON for a put (None for a delete).

        A put with None is of an object its source could not use (an FDv2
        ``put-object`` without an integer ``version`` or an object): the
        store keeps it as malformed, answering MALFORMED_FLAG.
        """
        obj = self._obj
        if obj is None and self._raw is not None:
            obj = raw_object(self._raw, self._path)
            set_field(self, "_obj", obj)
        return obj

    def __setattr__(self, name: str, value: object) -> None:
        refuse(name, "assign to")

    def __delattr__(self, name: str) -> None:
        refuse(name, "delete")

    def _fields(self) -> tuple[object, ...]:
        return (self.action, self.kind, self.key, self.version, self.obj)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Change:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[object, ...]:
        # copy and pickle rebuild it through the constructor (frozen).
        return (_change, self._fields())

    def __repr__(self) -> str:
        return (
            f"Change(action={self.action!r}, kind={self.kind!r}, key={self.key!r}, "
            f"version={self.version!r}, obj={self.obj!r})"
        )


def _change(
    action: ChangeKind, kind: ObjectKind, key: str, version: int, obj: JSONObject | None
) -> Change:
    return Change(action=action, kind=kind, key=key, version=version, obj=obj)


#: A put as ingest keeps it, before anything asks for a :class:`Change`:
#: ``(kind, key, version, raw, path, *meta)`` (see :meth:`Change._raw_put`
#: and :data:`ObjectMeta`), ``kind`` being an :class:`ObjectKind`'s value
#: ("flag", "segment"). Flat, and only strings, ints and bools, so the
#: garbage collector stops tracking it at its first collection (an enum
#: member or a tuple inside would keep it tracked longer), where a
#: :class:`Change` stays a tracked object: at 100,000 flags, 100,000 objects
#: fewer for each full collection during the ingest to walk.
RawPut: TypeAlias = tuple[Any, ...]


@final
class ChangeSet(Frozen):
    """A complete payload: the intent, its changes, and the selector it reaches.

    ``compare_versions`` is set for FDv1 patches, which only apply when newer;
    FDv2 deltas never compare item versions (protocol.md §10).
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "intent",
        "_changes",
        "selector",
        "compare_versions",
        "_items",
        "_patterns",
        "_nodes",
    )
    intent: IntentCode
    selector: Selector
    compare_versions: bool
    _changes: tuple[Change, ...] | None
    if TYPE_CHECKING:  # (not for get_type_hints: the class is re-exported)
        #: The changes as the store reads them: :class:`Change` objects, or
        #: :data:`RawPut` tuples (ingest's puts) that become ``Change``
        #: objects only if :attr:`changes` is read.
        _items: Sequence[Change | RawPut]
        #: The ``matches`` patterns of its raw puts, found as ingest parsed
        #: them (see :data:`aioflags._datasystem._patterns.FoundPatterns`), so
        #: that the store does not parse their texts again; ``None``: none known.
        _patterns: dict[str, tuple[int, tuple[str, ...]]] | None
        #: Each item's distinct ``matches`` patterns by node (``"f"`` or
        #: ``"s"``, then its key; the last change of a node counts), every
        #: item that has any: what the store compiles, known without a walk
        #: over the items (``None``: not known, read from the items).
        _nodes: dict[str, tuple[str, ...]] | None

    def __init__(
        self,
        *,
        intent: IntentCode,
        changes: tuple[Change, ...] = (),
        selector: Selector = NO_SELECTOR,
        compare_versions: bool = False,
    ) -> None:
        set_field(self, "intent", intent)
        set_field(self, "_changes", changes)
        set_field(self, "selector", selector)
        set_field(self, "compare_versions", compare_versions)
        set_field(self, "_items", changes)
        set_field(self, "_patterns", None)
        set_field(self, "_nodes", None)

    @classmethod
    def _raw(
        cls,
        intent: IntentCode,
        items: list[Change | RawPut],
        selector: Selector,
        patterns: dict[str, tuple[int, tuple[str, ...]]] | None = None,
        nodes: dict[str, tuple[str, ...]] | None = None,
    ) -> ChangeSet:
        """A change set of ingest's items (puts as :data:`RawPut` tuples).

        ``patterns``: the puts' ``matches`` patterns, found as they were
        parsed; ``nodes``: the same by item, every item that has any.
        """
        change_set = object.__new__(cls)
        set_field(change_set, "intent", intent)
        set_field(change_set, "_changes", None)
        set_field(change_set, "selector", selector)
        set_field(change_set, "compare_versions", False)
        set_field(change_set, "_items", items)
        set_field(change_set, "_patterns", patterns)
        set_field(change_set, "_nodes", nodes)
        return change_set

    @property
    def changes(self) -> tuple[Change, ...]:
        """The changes, in order (built on first read for ingest's change sets)."""
        changes = self._changes
        if changes is None:
            changes = tuple(
                Change._raw_put(ObjectKind(item[0]), *item[1:5])
                if isinstance(item, tuple)
                else item
                for item in self._items
            )
            set_field(self, "_changes", changes)
        return changes

    def _names(self) -> tuple[str, ...]:
        return _CHANGE_SET_FIELDS

    def __reduce__(self) -> tuple[object, ...]:
        return (_change_set, self._astuple())

    @classmethod
    def no_changes(cls) -> ChangeSet:
        """The change set for "nothing changed" (intent ``none``, a 304)."""
        return cls(intent=IntentCode.TRANSFER_NONE)


_CHANGE_SET_FIELDS: Final = ("intent", "changes", "selector", "compare_versions")


def puts(kind: ObjectKind, items: Mapping[str, JSONObject]) -> Iterator[Change]:
    """A put of each of ``items`` (by key), at the version its JSON carries."""
    for key, obj in items.items():
        version = cast("int", obj["version"])  # (every caller's items have one)
        yield Change(
            action=ChangeKind.PUT, kind=kind, key=key, version=version, obj=obj
        )


def full_transfer(*changes: Iterable[Change]) -> ChangeSet:
    """``changes`` (one iterable or several, in order) as the whole data: no selector."""
    return ChangeSet(
        intent=IntentCode.TRANSFER_FULL, changes=tuple(itertools.chain(*changes))
    )


def _change_set(
    intent: IntentCode,
    changes: tuple[Change, ...],
    selector: Selector,
    compare_versions: bool,
) -> ChangeSet:
    return ChangeSet(
        intent=intent,
        changes=changes,
        selector=selector,
        compare_versions=compare_versions,
    )


class SourceState(enum.Enum):
    """A data source's state, as reported to the status layer."""

    INITIALIZING = "initializing"
    VALID = "valid"
    INTERRUPTED = "interrupted"
    OFF = "off"


class ErrorKind(enum.Enum):
    """The class of a data source error."""

    UNKNOWN = "unknown"
    NETWORK_ERROR = "network_error"
    ERROR_RESPONSE = "error_response"
    INVALID_DATA = "invalid_data"
    STORE_ERROR = "store_error"


@final
class ErrorInfo(Frozen):
    """What went wrong in a data source.

    Attributes:
        kind: the class of error.
        status_code: the HTTP status, 0 when there was none.
        message: a human-readable description.
        time: when it happened, seconds on the event loop's clock
            (``anyio.current_time()``); 0.0 when unknown.
        fatal: the error is unrecoverable: a status code that is one of the
            configured fatal codes, or flag files that are not watched
            (``DataSystem.file`` without ``reload``) and cannot be loaded.
        action_required: waiting will not help until something outside
            changes (a watched flag file is missing or malformed): before
            the first data, the client reports ERROR at once instead of
            after ``ready_timeout``, and becomes READY when data arrives.
        url: the request's URL, without query or credentials ("" when the
            error has no request).
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "kind",
        "status_code",
        "message",
        "time",
        "fatal",
        "action_required",
        "url",
    )
    kind: ErrorKind
    status_code: int
    message: str
    time: float
    fatal: bool
    action_required: bool
    url: str

    def __init__(
        self,
        *,
        kind: ErrorKind,
        status_code: int = 0,
        message: str = "",
        time: float = 0.0,
        fatal: bool = False,
        action_required: bool = False,
        url: str = "",
    ) -> None:
        set_field(self, "kind", kind)
        set_field(self, "status_code", status_code)
        set_field(self, "message", message)
        set_field(self, "time", time)
        set_field(self, "fatal", fatal)
        set_field(self, "action_required", action_required)
        set_field(self, "url", url)


@final
class Basis(Frozen):
    """What an initializer yields: a payload to start from, or a failure.

    A failed attempt has ``change_set=None`` and ``error`` set; it may still
    carry the fallback directive (read from an error response's headers).
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "change_set",
        "persist",
        "environment_id",
        "fallback_to_fdv1",
        "error",
    )
    change_set: ChangeSet | None
    persist: bool
    environment_id: str | None
    fallback_to_fdv1: bool
    error: ErrorInfo | None

    def __init__(
        self,
        *,
        change_set: ChangeSet | None,
        persist: bool = False,
        environment_id: str | None = None,
        fallback_to_fdv1: bool = False,
        error: ErrorInfo | None = None,
    ) -> None:
        set_field(self, "change_set", change_set)
        set_field(self, "persist", persist)
        set_field(self, "environment_id", environment_id)
        set_field(self, "fallback_to_fdv1", fallback_to_fdv1)
        set_field(self, "error", error)


@final
class Update(Frozen):
    """What a synchronizer yields, for as long as it runs."""

    __slots__ = (  # noqa: RUF023 - fields in order
        "state",
        "change_set",
        "error",
        "fallback_to_fdv1",
        "environment_id",
    )
    state: SourceState
    change_set: ChangeSet | None
    error: ErrorInfo | None
    fallback_to_fdv1: bool
    environment_id: str | None

    def __init__(
        self,
        *,
        state: SourceState,
        change_set: ChangeSet | None = None,
        error: ErrorInfo | None = None,
        fallback_to_fdv1: bool = False,
        environment_id: str | None = None,
    ) -> None:
        set_field(self, "state", state)
        set_field(self, "change_set", change_set)
        set_field(self, "error", error)
        set_field(self, "fallback_to_fdv1", fallback_to_fdv1)
        set_field(self, "environment_id", environment_id)


@final
class DataSourceStatus(Frozen):
    """The data system's state as the status layer sees it.

    Attributes:
        state: INITIALIZING until the first synchronizer reports; then VALID,
            INTERRUPTED or OFF.
        since: when ``state`` last changed (the data system clock's seconds).
        error: the last error; sticky (a later VALID keeps it).
        fdv1_fallback: whether the server's fallback directive has switched the
            data system to FDv1.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "state",
        "since",
        "error",
        "fdv1_fallback",
    )
    state: SourceState
    since: float
    error: ErrorInfo | None
    fdv1_fallback: bool

    def __init__(
        self,
        *,
        state: SourceState,
        since: float,
        error: ErrorInfo | None = None,
        fdv1_fallback: bool = False,
    ) -> None:
        set_field(self, "state", state)
        set_field(self, "since", since)
        set_field(self, "error", error)
        set_field(self, "fdv1_fallback", fdv1_fallback)
