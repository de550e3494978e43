"""The values that data sources yield and the data system consumes (protocol.md §6).

Initializers yield :class:`Basis` results; synchronizers yield :class:`Update`
results. Both may carry the FDv1 fallback directive (``fallback_to_fdv1``):
the supervisor applies the payload first, then switches to FDv1 for good.
"""

from __future__ import annotations

import enum
import json
from dataclasses import FrozenInstanceError, dataclass
from typing import TYPE_CHECKING, Final, TypeAlias, final

if TYPE_CHECKING:
    from ._json import JSONObject

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
@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Where a payload stands: the server's ``state`` string and ``version``.

    A selector is *defined* unless it is ``("", 0)``; only a defined selector
    is sent back to the server as ``basis=<state>``.
    """

    state: str = ""
    version: int = 0

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


#: Where a raw change's object sits in its JSON text.
RAW_OBJECT: Final = 0  # the text is the object itself
RAW_EVENT: Final = 1  # an FDv2 event: {"event": ..., "data": {..., "object": {...}}}
RAW_DATA: Final = 2  # an FDv2 event's data: {"kind": ..., "object": {...}}

#: What ingest learned about a put's object: its own ``version`` (0 if none),
#: whether it is ``deleted``, and the keys it uses: (prerequisite flag keys,
#: segment keys).
ObjectMeta: TypeAlias = "tuple[int, bool, tuple[str, ...], tuple[str, ...]]"


@final
class Change:
    """One object put or deleted. ``obj`` is the flag or segment JSON for a put.

    A frozen value (keyword-only constructor, equality by fields). Changes
    that aioflags' own sources build keep the object's JSON text and parse it
    only when ``obj`` is read; the store compiles a flag from that text on its
    first evaluation.
    """

    __slots__ = ("_meta", "_obj", "_path", "_raw", "action", "key", "kind", "version")
    __match_args__ = ()

    action: ChangeKind
    kind: ObjectKind
    key: str
    version: int
    _obj: JSONObject | None
    _raw: str | None
    _path: int
    _meta: ObjectMeta | None

    def __init__(
        self,
        *,
        action: ChangeKind,
        kind: ObjectKind,
        key: str,
        version: int,
        obj: JSONObject | None = None,
    ) -> None:
        _set(self, "action", action)
        _set(self, "kind", kind)
        _set(self, "key", key)
        _set(self, "version", version)
        _set(self, "_obj", obj)
        _set(self, "_raw", None)
        _set(self, "_path", RAW_OBJECT)
        _set(self, "_meta", None)

    @classmethod
    def _raw_put(
        cls,
        kind: ObjectKind,
        key: str,
        version: int,
        raw: str,
        path: int,
        meta: ObjectMeta,
    ) -> Change:
        """A put whose object stays JSON text until ``obj`` is read (ingest's path)."""
        change = object.__new__(cls)
        _set(change, "action", ChangeKind.PUT)
        _set(change, "kind", kind)
        _set(change, "key", key)
        _set(change, "version", version)
        _set(change, "_obj", None)
        _set(change, "_raw", raw)
        _set(change, "_path", path)
        _set(change, "_meta", meta)
        return change

    @property
    def obj(self) -> JSONObject | None:
        """The flag or segment JSON for a put (None for a delete)."""
        obj = self._obj
        if obj is None and self._raw is not None:
            obj = raw_object(self._raw, self._path)
            _set(self, "_obj", obj)
        return obj

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

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


_set = object.__setattr__


def _change(
    action: ChangeKind, kind: ObjectKind, key: str, version: int, obj: JSONObject | None
) -> Change:
    return Change(action=action, kind=kind, key=key, version=version, obj=obj)


def raw_object(raw: str, path: int) -> JSONObject:
    """The object in a raw change's text (the text was validated at ingest)."""
    value = json.loads(raw)
    if path == RAW_EVENT:
        value = value["data"]["object"]
    elif path == RAW_DATA:
        value = value["object"]
    return value  # type: ignore[no-any-return]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeSet:
    """A complete payload: the intent, its changes, and the selector it reaches.

    ``compare_versions`` is set for FDv1 patches, which only apply when newer;
    FDv2 deltas never compare item versions (protocol.md §10).
    """

    intent: IntentCode
    changes: tuple[Change, ...] = ()
    selector: Selector = NO_SELECTOR
    compare_versions: bool = False

    @classmethod
    def no_changes(cls) -> ChangeSet:
        """The change set for "nothing changed" (intent ``none``, a 304)."""
        return cls(intent=IntentCode.TRANSFER_NONE)


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
@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
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

    kind: ErrorKind
    status_code: int = 0
    message: str = ""
    time: float = 0.0
    fatal: bool = False
    action_required: bool = False
    url: str = ""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Basis:
    """What an initializer yields: a payload to start from, or a failure.

    A failed attempt has ``change_set=None`` and ``error`` set; it may still
    carry the fallback directive (read from an error response's headers).
    """

    change_set: ChangeSet | None
    persist: bool = False
    environment_id: str | None = None
    fallback_to_fdv1: bool = False
    error: ErrorInfo | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """What a synchronizer yields, for as long as it runs."""

    state: SourceState
    change_set: ChangeSet | None = None
    error: ErrorInfo | None = None
    fallback_to_fdv1: bool = False
    environment_id: str | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class DataSourceStatus:
    """The data system's state as the status layer sees it.

    Attributes:
        state: INITIALIZING until the first synchronizer reports; then VALID,
            INTERRUPTED or OFF.
        since: when ``state`` last changed (the data system clock's seconds).
        error: the last error; sticky (a later VALID keeps it).
        fdv1_fallback: whether the server's fallback directive has switched the
            data system to FDv1.
    """

    state: SourceState
    since: float
    error: ErrorInfo | None = None
    fdv1_fallback: bool = False
