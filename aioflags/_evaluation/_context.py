"""Evaluation contexts: single and multi-kind, the old user shape, validation.

A ``Context`` never raises on bad input. An invalid one records why in
``Context.error``; evaluating a flag for it returns the default value with the
reason ``{"kind": "ERROR", "errorKind": "USER_NOT_SPECIFIED"}``.

Internally each single-kind context keeps one dict of every attribute it has
(``kind``, ``key``, ``anonymous``, ``name`` when set, and the custom ones), so
a clause lookup during evaluation is one ``dict.get``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, cast, final

from aioflags._core._renamed import point_to

from ._logonce import Occurrences

if TYPE_CHECKING:
    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "NO_ATTRIBUTES",
    "Context",
    "ignored_user_properties",
    "parse_reference",
    "read_context",
    "written_otherwise",
]

logger = logging.getLogger("aioflags.evaluation")

#: The attribute lookup of a part a context does not have: nothing is there.
NO_ATTRIBUTES: Final = cast("Callable[[str], JSONValue]", MappingProxyType({}).get)

_KIND_CHARS: Final = re.compile(r"[A-Za-z0-9._-]+")
_BUILTINS: Final = frozenset({"kind", "key", "name", "anonymous"})
_OLD_USER_STRINGS: Final = (
    "name",
    "firstName",
    "lastName",
    "email",
    "country",
    "avatar",
    "ip",
)
_OLD_USER_RESERVED: Final = frozenset({"kind", "key", "name", "anonymous", "_meta"})
#: The top-level properties LaunchDarkly's old user JSON reads; it ignores
#: any other (its custom attributes are under "custom").
_OLD_USER_PROPERTIES: Final = frozenset(
    {*_OLD_USER_STRINGS, "key", "anonymous", "custom", "privateAttributeNames"}
)
#: The ignored properties ``Context.from_dict`` has named in a warning (once each).
_MAX_IGNORED_NAMES: Final = 100
_IGNORED_NAMES: Final = Occurrences(_MAX_IGNORED_NAMES)
_BAD_ESCAPE: Final = re.compile(r"~(?![01])")


def parse_reference(ref: str, *, literal: bool) -> tuple[str, ...] | None:
    """Parse an attribute reference into its components; ``None`` if invalid.

    With ``literal`` the whole string is one attribute name (data written before
    contexts existed). Otherwise ``/a/b`` is a path with ``~1`` for ``/`` and
    ``~0`` for ``~``, and a string without a leading slash is one name.
    """
    if not ref:
        return None
    if literal or ref[0] != "/":
        return (ref,)
    parts = ref[1:].split("/")
    out: list[str] = []
    for part in parts:
        if not part or _BAD_ESCAPE.search(part):
            return None
        out.append(part.replace("~1", "/").replace("~0", "~"))
    return tuple(out)


def _valid_kind(kind: object) -> str | None:
    """Return an error message if ``kind`` is not a valid context kind."""
    if type(kind) is str and kind == "user":  # (the default: no pattern to match)
        return None
    if not isinstance(kind, str):
        return "context kind must be a string"
    if kind == "":
        return "context kind must not be empty"
    if kind in ("kind", "multi"):
        return f"context kind must not be {kind!r}"
    if not _KIND_CHARS.fullmatch(kind):
        return "context kind contains characters other than ASCII letters, digits, '.', '_' and '-'"
    return None


def _is_context(value: object) -> bool:
    return isinstance(value, Context)


def _escape_key(key: str) -> str:
    return key.replace("%", "%25").replace(":", "%3A")


@final
class Context:
    """Who or what a flag is evaluated for: a user, an organisation, a device...

    Build one with :meth:`create`, :meth:`create_multi` or :meth:`from_dict`.
    Contexts are immutable. An invalid context is still a ``Context``:
    :attr:`valid` is false and :attr:`error` says why.

    Added in version 0.1.0.
    """

    __slots__ = (
        "_error",
        "_fq_key",
        "_get",
        "_key",
        "_kind",
        "_parts",
        "_private",
        "_user",
        "_user_get",
        "_user_key",
        "_values",
    )

    _kind: str
    _key: str
    _values: JSONObject
    #: ``_values.get``, bound once: the generated code's attribute lookup
    #: (a call of it is 20 bytes of bytecode fewer than ``_values.get(...)``)
    _get: Callable[[str], JSONValue]
    #: the part of kind ``user`` (or ``None``) and its values' ``get`` (or
    #: :data:`NO_ATTRIBUTES`): most flags test that kind's attributes alone,
    #: and the generated code reads these two instead of looking the part up
    _user: Context | None
    _user_get: Callable[[str], JSONValue]
    #: the user part's key (``None``: no such part), which the generated
    #: code tests against target lists (``None`` is in none)
    _user_key: str | None
    _private: tuple[str, ...]
    _parts: dict[str, Context]
    _error: str | None
    _fq_key: str

    def __init__(self) -> None:
        raise TypeError(
            "use Context.create(), Context.create_multi() or Context.from_dict()"
        )

    # ------------------------------------------------------------ constructors
    @classmethod
    def _single(
        cls,
        kind: str,
        key: str,
        values: JSONObject,
        private: tuple[str, ...],
        error: str | None,
    ) -> Context:
        self = object.__new__(cls)
        self._kind = kind
        self._key = key
        self._values = values
        self._private = private
        self._error = error
        self._parts = {} if error else {kind: self}
        self._fq_key = (
            "" if error else (key if kind == "user" else f"{kind}:{_escape_key(key)}")
        )
        self._derive()
        return self

    #: the slots a context is made of (what it pickles and copies); the
    #: others are derived from these (:meth:`_derive`)
    _STATE: Final = (
        "_error",
        "_fq_key",
        "_key",
        "_kind",
        "_parts",
        "_private",
        "_values",
    )

    def _derive(self) -> None:
        """Set the slots the generated code reads instead of looking things up."""
        self._get = self._values.get
        user = self._parts.get("user")
        self._user = user
        # (A part's _derive ran first: made first, or loaded first.)
        self._user_get = NO_ATTRIBUTES if user is None else user._get
        self._user_key = None if user is None else user._key

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self._STATE}

    def __setstate__(self, state: object) -> None:
        # A pickle from a version without __getstate__ holds CPython's
        # default state of a slotted object: (None, {slot: value}).
        if isinstance(state, tuple):
            state = state[1]
        assert isinstance(state, dict)
        for name in self._STATE:
            setattr(self, name, state[name])
        self._derive()

    @classmethod
    def _invalid(cls, error: str, kind: str = "user", key: str = "") -> Context:
        return cls._single(
            kind, key, {"kind": kind, "key": key, "anonymous": False}, (), error
        )

    @classmethod
    def _given(cls, targeting_key: str | None, attributes: JSONObject) -> Context:
        """A context of the attributes as given (flagd's providers map OpenFeature's so).

        A single ``user`` context whose attributes are ``attributes`` as
        given (none of them read as LaunchDarkly's built-ins: flagd's
        targeting sees ``kind`` or ``name`` as any other attribute), and
        whose key is the targeting key: none (``""``: flagd's rules see
        ``targetingKey`` as null) is valid here, as it is to flagd.
        ``attributes`` become the context's own (not copied: the caller
        makes them for it, without null values).
        """
        # (what _single("user", key, attributes, (), None) makes, its slots
        # set here: one call fewer, per OpenFeature evaluation)
        self = object.__new__(cls)
        key = targeting_key or ""
        get = attributes.get
        self._kind = "user"
        self._key = self._fq_key = self._user_key = key
        self._values = attributes
        self._private = ()
        self._error = None
        self._parts = {"user": self}
        self._get = self._user_get = get
        self._user = self
        return self

    @classmethod
    def create(
        cls,
        key: str,
        kind: str = "user",
        *,
        name: str | None = None,
        anonymous: bool = False,
        attributes: Mapping[str, JSONValue] | None = None,
        private_attributes: Iterable[str] = (),
    ) -> Context:
        """Create a single-kind context.

        Args:
            key: the context key; must be a non-empty string.
            kind: the context kind (``"user"`` by default): ASCII letters,
                digits, ``.``, ``_`` and ``-``; not ``"kind"`` or ``"multi"``.
            name: an optional display name (the ``name`` attribute).
            anonymous: whether the context is anonymous.
            attributes: custom attributes, a mapping of names to JSON values;
                a ``None`` value means "absent".
                Built-in names (``kind``, ``key``, ``name``, ``anonymous``)
                are set through the parameters above, not here.
            private_attributes: attribute references to redact from events
                (metadata only; never used in evaluation): an iterable of
                strings; a single string is invalid (not a list of letters).

        Returns:
            The context; check :attr:`valid` / :attr:`error` for bad input.
        """
        private: object = private_attributes
        if not isinstance(private_attributes, (str, bytes)):
            # A string is refused, not split into letters: "email" would
            # otherwise redact "e", "m"... and send the email.
            # (Not iterable: refused as not a list of strings.)
            # (try, not contextlib.suppress: its context manager costs ~4,500
            # CPU instructions per context made, callgrind)
            try:  # noqa: SIM105
                private = list(private_attributes)
            except TypeError:
                pass
        given: object = {} if attributes is None else attributes
        if type(given) is not dict and not isinstance(given, (Mapping, str, bytes)):
            # Pairs ([("plan", "gold")], d.items()) make a mapping, as dict()
            # takes them; what dict() refuses is refused below.
            with contextlib.suppress(TypeError, ValueError):
                given = dict(given)  # type: ignore[call-overload]
        return cls._build(kind, key, name, anonymous, given, private)

    @classmethod
    def _build(
        cls,
        kind: object,
        key: object,
        name: object,
        anonymous: object,
        attributes: object,
        private: object,
        *,
        allow_empty_key: bool = False,
    ) -> Context:
        error = _valid_kind(kind)
        if error:
            return cls._invalid(error)
        assert isinstance(kind, str)
        if not isinstance(key, str):
            return cls._invalid("context key must be a string", kind)
        if key == "" and not allow_empty_key:
            return cls._invalid("context key must not be empty", kind)
        if name is not None and not isinstance(name, str):
            return cls._invalid("context name must be a string", kind, key)
        if not isinstance(anonymous, bool):
            return cls._invalid("context anonymous must be a boolean", kind, key)
        if private is None:
            private = []
        # (a loop, not all() of a generator: that costs ~2,200 CPU
        # instructions per context made even when the list is empty)
        if not isinstance(private, list):
            return cls._invalid(
                "private attributes must be a list of strings", kind, key
            )
        for reference in private:
            if not isinstance(reference, str):
                return cls._invalid(
                    "private attributes must be a list of strings", kind, key
                )
        if type(attributes) is not dict and not isinstance(attributes, Mapping):
            return cls._invalid(
                "context attributes must be a mapping of attribute names to "
                f"values (a dict), got {type(attributes).__name__}",
                kind,
                key,
            )
        values: JSONObject = {"kind": kind, "key": key, "anonymous": anonymous}
        if name is not None:
            values["name"] = name
        for attr, value in attributes.items():
            if not (isinstance(attr, str) and attr):  # (a non-empty string)
                return cls._invalid(
                    "context attribute names must be non-empty strings", kind, key
                )
            if attr in _BUILTINS or attr == "_meta":
                return cls._invalid(
                    f"{attr!r} is a built-in attribute; pass it as a parameter, not in attributes",
                    kind,
                    key,
                )
            if value is not None:
                values[attr] = value
        return cls._single(kind, key, values, tuple(private), None)

    @classmethod
    def create_multi(cls, *contexts: Context) -> Context:
        """Combine single-kind contexts of distinct kinds into a multi-kind context.

        A multi-kind context built from exactly one context is that context.
        """
        if not contexts:
            return cls._invalid(
                "a multi-kind context needs at least one context", "multi"
            )
        parts: dict[str, Context] = {}
        for ctx in contexts:
            if not _is_context(ctx):
                return cls._invalid("create_multi takes Context objects", "multi")
            if ctx._error:
                return cls._invalid(
                    f"invalid part {ctx._kind!r}: {ctx._error}", "multi"
                )
            if ctx.multiple:
                return cls._invalid(
                    "a multi-kind context cannot contain a multi-kind context", "multi"
                )
            if ctx._kind in parts:
                return cls._invalid(
                    f"kind {ctx._kind!r} appears more than once", "multi"
                )
            parts[ctx._kind] = ctx
        if len(parts) == 1:
            return next(iter(parts.values()))
        self = object.__new__(cls)
        self._kind = "multi"
        self._key = ""
        self._values = {}
        self._private = ()
        self._error = None
        self._parts = dict(sorted(parts.items()))
        self._fq_key = ":".join(
            f"{k}:{_escape_key(p._key)}" for k, p in self._parts.items()
        )
        self._derive()
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue] | None) -> Context:
        """Parse LaunchDarkly's context JSON (or the old user JSON, without ``kind``).

        An object without ``kind`` is read as LaunchDarkly reads it: as the
        old user JSON, whose top-level properties are ``key``, ``name``,
        ``firstName``, ``lastName``, ``email``, ``avatar``, ``ip``,
        ``country``, ``anonymous``, ``custom`` (the custom attributes) and
        ``privateAttributeNames``. Any other top-level property (``{"key":
        "u1", "plan": "beta"}``) is ignored: a WARNING on
        ``aioflags.evaluation`` names it (once per name) and says how to
        write it, ``{"kind": "user", "key": "u1", "plan": "beta"}`` or under
        ``"custom"``.
        """
        if isinstance(data, Mapping) and "kind" not in data:
            ignored = ignored_user_properties(data)
            if ignored:
                _warn_ignored(ignored)
        return cls._read(data)

    @classmethod
    def _read(cls, data: Mapping[str, JSONValue] | None) -> Context:
        """:meth:`from_dict` without its warning (the caller says what was ignored)."""
        if not isinstance(data, Mapping):
            return cls._invalid("context JSON must be an object")
        if "kind" not in data:
            return cls._from_old_user(data)
        kind = data["kind"]
        if kind == "multi":
            parts: list[Context] = []
            for part_kind, part in data.items():
                if part_kind == "kind":
                    continue
                if not isinstance(part, Mapping):
                    return cls._invalid(
                        f"multi-kind part {part_kind!r} must be an object", "multi"
                    )
                part_ctx = cls._from_single_dict(part.get("kind", part_kind), part)
                if part_ctx._error:
                    return cls._invalid(
                        f"invalid part {part_kind!r}: {part_ctx._error}", "multi"
                    )
                parts.append(part_ctx)
            if not parts:
                return cls._invalid(
                    "a multi-kind context needs at least one part", "multi"
                )
            return cls.create_multi(*parts)
        return cls._from_single_dict(kind, data)

    @classmethod
    def _from_single_dict(cls, kind: object, data: Mapping[str, JSONValue]) -> Context:
        if "anonymous" in data and data["anonymous"] is None:
            return cls._invalid("context anonymous must be a boolean, not null")
        meta = data.get("_meta")
        private: object = None
        if meta is not None:
            if not isinstance(meta, Mapping):
                return cls._invalid("_meta must be an object")
            private = meta.get("privateAttributes")
        attributes = {k: v for k, v in data.items() if k not in _OLD_USER_RESERVED}
        return cls._build(
            kind,
            data.get("key"),
            data.get("name"),
            data.get("anonymous", False),
            attributes,
            private,
        )

    @classmethod
    def _from_old_user(cls, data: Mapping[str, JSONValue]) -> Context:
        key = data.get("key")
        if not isinstance(key, str):
            return cls._invalid("user key must be a string")
        attributes: JSONObject = {}
        for attr in _OLD_USER_STRINGS:
            value = data.get(attr)
            if value is not None and not isinstance(value, str):
                return cls._invalid(
                    f"user attribute {attr!r} must be a string", "user", key
                )
            if value is not None and attr != "name":
                attributes[attr] = value
        anonymous = data.get("anonymous")
        if anonymous is None:
            anonymous = False
        custom = data.get("custom")
        if custom is not None:
            if not isinstance(custom, Mapping):
                return cls._invalid(
                    "user custom attributes must be an object", "user", key
                )
            for attr, value in custom.items():
                if attr not in _OLD_USER_RESERVED:
                    attributes[attr] = value
        names = data.get("privateAttributeNames")
        private: object = None
        if names is not None:
            if not isinstance(names, list) or not all(
                isinstance(n, str) for n in names
            ):
                return cls._invalid(
                    "privateAttributeNames must be a list of strings", "user", key
                )
            # Literal names become references: a leading slash must be escaped.
            private = [
                "/" + n.replace("~", "~0").replace("/", "~1")
                if n.startswith("/")
                else n
                for n in names
            ]
        return cls._build(
            "user",
            key,
            data.get("name"),
            anonymous,
            attributes,
            private,
            allow_empty_key=True,
        )

    # ------------------------------------------------------------- properties
    @property
    def valid(self) -> bool:
        """Whether the context can be evaluated."""
        return self._error is None

    @property
    def error(self) -> str | None:
        """Why the context is invalid, or ``None`` if it is valid."""
        return self._error

    @property
    def kind(self) -> str:
        """The kind, or ``"multi"`` for a multi-kind context."""
        return self._kind

    @property
    def key(self) -> str:
        """The key (``""`` for a multi-kind context)."""
        return self._key

    @property
    def name(self) -> str | None:
        """The ``name`` attribute, if set."""
        name = self._values.get("name")
        return name if isinstance(name, str) else None

    @property
    def anonymous(self) -> bool:
        """Whether the context is anonymous (false for a multi-kind context)."""
        return bool(self._values.get("anonymous", False))

    @property
    def multiple(self) -> bool:
        """Whether this is a multi-kind context."""
        return self._kind == "multi"

    @property
    def fully_qualified_key(self) -> str:
        """The key used by events and secure-mode hashes.

        For a single ``user`` context it is the key; otherwise ``kind:key``
        pairs (``%`` and ``:`` escaped), joined by ``:`` in kind order.
        """
        return self._fq_key

    @property
    def private_attributes(self) -> tuple[str, ...]:
        """The private attribute references (metadata for events)."""
        return self._private

    @property
    def custom_attributes(self) -> tuple[str, ...]:
        """The names of the custom (non-built-in) attributes that are set."""
        return tuple(k for k in self._values if k not in _BUILTINS)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds this context holds (one, or each part's in order)."""
        return tuple(self._parts)

    def individual_context(self, kind: str) -> Context | None:
        """The single-kind context of ``kind`` in this context, if there is one."""
        return self._parts.get(kind)

    def get(self, attribute: str) -> JSONValue:
        """Return a top-level attribute's value (``None`` if unset or multi-kind)."""
        return self._values.get(attribute)

    # ---------------------------------------------------------- serialisation
    def to_dict(self) -> JSONObject:
        """LaunchDarkly's context JSON for this context."""
        if self.multiple:
            out: JSONObject = {"kind": "multi"}
            for kind, part in self._parts.items():
                body = part.to_dict()
                del body["kind"]
                out[kind] = body
            return out
        body = {k: v for k, v in self._values.items() if k != "anonymous"}
        if self._values.get("anonymous"):
            body["anonymous"] = True
        if self._private:
            body["_meta"] = {"privateAttributes": list(self._private)}
        return body

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Context):
            return NotImplemented
        if self._error or other._error:
            return self is other
        if self.multiple:
            return other.multiple and self._parts == other._parts
        return (
            self._values == other._values
            and sorted(self._private) == sorted(other._private)
            and not other.multiple
        )

    def __hash__(self) -> int:
        return hash((self._kind, self._fq_key))

    def __repr__(self) -> str:
        if self._error:
            return f"Context(invalid: {self._error})"
        return f"Context({self.to_dict()!r})"


point_to(
    Context,
    "aioflags.Context",
    builder=(
        "build a context with Context.create(key, kind=..., name=..., "
        "attributes={...}, private_attributes=[...])"
    ),
    multi_builder="build a multi-context with Context.create_multi(*contexts)",
    builder_from_context=(
        "build a changed copy with Context.from_dict({**context.to_dict(), ...})"
    ),
    get_individual_context="use context.individual_context(kind)",
    individual_context_count="use len(context.kinds)",
    to_json_string="use json.dumps(context.to_dict())",
)


def ignored_user_properties(data: Mapping[str, object]) -> tuple[str, ...]:
    """The top-level properties of ``data`` that the old user JSON ignores.

    None when ``data`` has ``kind`` (LaunchDarkly's context JSON, where
    every top-level property is an attribute).
    """
    if "kind" in data:
        return ()
    return tuple(name for name in data if name not in _OLD_USER_PROPERTIES)


def written_otherwise(ignored: Iterable[str]) -> str:
    """What was ignored and how to write it: one sentence for a log line or a note."""
    names = list(ignored)
    shown = ", ".join(repr(n) for n in names[:10])
    if len(names) > 10:
        shown += f" and {len(names) - 10} more"
    name = json.dumps(names[0])
    return (
        f'{shown} ignored: a context without "kind" is LaunchDarkly\'s old '
        f'user JSON, which has its custom attributes under "custom". '
        f'Write {{"kind": "user", "key": ..., {name}: ...}}, or '
        f'{{"key": ..., "custom": {{{name}: ...}}}}'
    )


def read_context(data: Mapping[str, JSONValue]) -> tuple[Context, tuple[str, ...]]:
    """``data`` as a context, and the top-level properties its reading ignored.

    For a context a person typed (``aioflags eval --context``, the console's
    Evaluate, ``aioflags diff --contexts``): the caller says what was
    ignored, there, and :meth:`Context.from_dict` does not log it.
    """
    return Context._read(data), ignored_user_properties(data)


def _warn_ignored(names: tuple[str, ...]) -> None:
    """``Context.from_dict`` ignored ``names``: a WARNING for those not named yet."""
    new: list[str] = []
    refused = False
    for name in names:
        if name in _IGNORED_NAMES:
            continue  # the lock only for a name not logged yet
        count = _IGNORED_NAMES.add(name)
        if count == 1:
            new.append(name)
        refused = refused or count == 0
    if new:
        logger.warning(
            "Context.from_dict: %s (logged once per attribute name)",
            written_otherwise(new),
        )
    if refused and _IGNORED_NAMES.newly_full():
        logger.warning(
            "Context.from_dict has named %d ignored attributes of the old user "
            "JSON: further ones are not logged",
            _MAX_IGNORED_NAMES,
        )
