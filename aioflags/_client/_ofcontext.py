"""OpenFeature evaluation contexts as aioflags contexts: one mapping for the provider and OFREP.

:func:`context_from` (LaunchDarkly's) and :func:`given_context_from` (the
attributes as given: flagd's) take what every OpenFeature context is, a
targeting key and attributes (JSON values, or OpenFeature's, made JSON by
:func:`json_value`), and raise :class:`ContextError` with
OpenFeature's error code for what it refuses; ``aioflags.openfeature`` turns
that into the SDK's own exceptions, OFREP into an error body. An attribute
whose name is empty is dropped, as LaunchDarkly's SDKs drop it (their context
builders ignore it; so does their OpenFeature provider), and said once at
DEBUG on the caller's logger.

:class:`ContextCache` keeps the aioflags contexts of the OpenFeature
context objects the provider saw last, to hand the same one back when the
same object comes back unchanged (its rule is in its docstring).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, final

from aioflags._evaluation._context import Context
from aioflags._evaluation._logonce import Occurrences

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from openfeature.evaluation_context import EvaluationContext

    from aioflags._core._json import JSONValue

__all__ = [
    "ContextCache",
    "ContextError",
    "context_from",
    "given_context_from",
    "json_value",
]

_RESERVED: Final = frozenset({"kind", "key", "targetingKey", "privateAttributes"})
#: Attribute names dropped, not refused: LaunchDarkly's context builders
#: ignore an empty name (``ContextBuilder.set`` in its SDKs), and OFREP's
#: document allows any property name in a context.
_DROPPED_NAMES: Final = frozenset({""})
#: The attribute names that are not a single context's custom attributes:
#: one set, one test per attribute.
_NOT_CUSTOM: Final = _RESERVED | {"name", "anonymous"} | _DROPPED_NAMES
#: The exact types of the values a context of the attributes as given keeps as they are.
_SCALARS: Final = frozenset({str, int, float, bool})
#: (logger, name) pairs already said at DEBUG: each once, at most this many.
_MAX_DROPPED: Final = 64
_DROPPED: Final = Occurrences(_MAX_DROPPED)


#: The exact types of the values that are JSON as they are (their
#: subclasses take the isinstance checks).
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def json_value(value: object) -> JSONValue:
    """An OpenFeature attribute value as JSON (a datetime as an RFC 3339 string); a dict or a list copied."""
    # Exact types first, one set lookup: a failed isinstance of a tuple of
    # types costs ~1,300 CPU instructions (callgrind), and the ABC checks
    # below ~1,500 each, per attribute per evaluation. Subclasses (an
    # IntEnum, a str subclass) fall through to the same answers below.
    if type(value) in _PLAIN:
        return value  # (None, str, int, float, bool)
    if type(value) is dict:
        # (a name that is a str, a value of a plain type: as they are,
        # without a call each; a loop, not a comprehension: its function
        # and frame cost ~1,000 instructions a dict)
        copied: dict[str, JSONValue] = {}
        for k, v in value.items():
            copied[k if type(k) is str else str(k)] = (
                v if type(v) in _PLAIN else json_value(v)
            )
        return copied
    if type(value) is list:
        return [v if type(v) in _PLAIN else json_value(v) for v in value]
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [json_value(v) for v in value]
    return value


class ContextError(ValueError):
    """A context aioflags cannot evaluate, with OpenFeature's error code."""

    def __init__(
        self, code: Literal["TARGETING_KEY_MISSING", "INVALID_CONTEXT"], message: str
    ) -> None:
        super().__init__(message)
        self.code = code


def _dropped(name: str, kind: str, logger: logging.Logger) -> None:
    """Say once per logger and name, at DEBUG, that an attribute was dropped."""
    if (logger.name, name) in _DROPPED:
        return
    if _DROPPED.add((logger.name, name)) == 1:
        logger.debug(
            "dropped the attribute named %r of a %r context, as LaunchDarkly's "
            "SDKs drop an attribute whose name is empty (logged once per name)",
            name,
            kind,
        )


def _single(
    kind: str,
    key: object,
    attributes: Mapping[str, Any],
    logger: logging.Logger,
) -> Context:
    if not isinstance(key, str) or not key:
        raise ContextError(
            "TARGETING_KEY_MISSING",
            f"the {kind!r} context needs a targeting key (or a 'key' attribute)",
        )
    name = attributes.get("name")
    anonymous = attributes.get("anonymous", False)
    private = attributes.get("privateAttributes") or []
    # (a copy in C, then the names that are not custom removed: usually none)
    custom = dict(attributes)
    for not_custom in _NOT_CUSTOM.intersection(custom):
        del custom[not_custom]
    if not _DROPPED_NAMES.isdisjoint(attributes):  # (in C, no set made)
        for dropped in _DROPPED_NAMES.intersection(attributes):
            _dropped(dropped, kind, logger)
    # (a list, as it comes from OpenFeature: what Context.create checks it
    # against, without its frame; anything else takes create's conversion)
    context = (
        Context._build(kind, key, name, anonymous, custom, private)
        if type(private) is list
        else Context.create(
            key,
            kind,
            name=name,
            anonymous=anonymous,
            attributes=custom,
            private_attributes=private,
        )
    )
    if not context.valid:
        raise ContextError("INVALID_CONTEXT", context.error or "invalid context")
    return context


def context_from(
    key: object,
    attributes: Mapping[str, Any],
    *,
    logger: logging.Logger,
) -> Context:
    """The aioflags context of an OpenFeature targeting key and attributes.

    The targeting key is the context key (a ``key`` attribute also works);
    ``kind`` sets the context kind (``"user"`` by default); ``name``,
    ``anonymous`` and ``privateAttributes`` are LaunchDarkly's; other
    attributes are custom attributes. With ``kind: "multi"``, each other
    attribute but ``targetingKey`` is one kind's context: an object with its
    own ``targetingKey`` (or ``key``) and attributes. An attribute with an
    empty name is dropped (said once at DEBUG on ``logger``). The attributes
    are JSON values or OpenFeature's, made JSON first (:func:`json_value`).
    """
    # (OpenFeature's values made JSON: each name a str, each value
    # json_value's; a value of a plain type and a str name as they are,
    # without a call each; a loop, not a comprehension, as json_value's)
    converted: dict[str, JSONValue] = {}
    for k, v in attributes.items():
        converted[k if type(k) is str else str(k)] = (
            v if type(v) in _PLAIN else json_value(v)
        )
    attributes = converted
    kind = attributes.get("kind", "user")
    if kind != "multi":
        if not isinstance(kind, str):
            raise ContextError(
                "INVALID_CONTEXT", "the 'kind' attribute must be a string"
            )
        return _single(kind, key or attributes.get("key"), attributes, logger)
    parts = []
    for part_kind, part in attributes.items():
        if part_kind in ("kind", "targetingKey"):
            continue
        if not isinstance(part, dict):
            raise ContextError(
                "INVALID_CONTEXT",
                f"in a multi-kind context, attribute {part_kind!r} must be an object",
            )
        parts.append(
            _single(
                part_kind, part.get("targetingKey") or part.get("key"), part, logger
            )
        )
    if not parts:
        raise ContextError(
            "INVALID_CONTEXT", "a multi-kind context needs at least one kind"
        )
    context = Context.create_multi(*parts)
    if not context.valid:
        raise ContextError("INVALID_CONTEXT", context.error or "invalid context")
    return context


def given_context_from(key: object, attributes: Mapping[str, Any]) -> Context:
    """A context of the attributes as given: flagd's, as its providers map OpenFeature's.

    The targeting key (none is valid: the rules see ``targetingKey`` as
    null) and the attributes as they are, ``targetingKey`` aside, and none
    with a null value: no name is LaunchDarkly's (``kind``, ``name``,
    ``privateAttributes`` are attributes like any other). A value that is
    not a string, a number or a boolean is made JSON (:func:`json_value`:
    OpenFeature's datetimes; a JSON body's as they are, copied).

    One pass, one dict: it runs per evaluation.

    Raises:
        ContextError: a targeting key that is not a string (INVALID_CONTEXT).
    """
    if key is not None and not isinstance(key, str):
        raise ContextError("INVALID_CONTEXT", "the targeting key must be a string")
    values: dict[str, Any] = {}
    for name, value in attributes.items():
        # (the exact types first, one set lookup: a failed isinstance of a
        # tuple of types is the dearer; their subclasses take it)
        if type(value) in _SCALARS or isinstance(value, (str, int, float)):
            values[name] = value
        elif value is not None:
            values[str(name)] = json_value(value)
    values.pop("targetingKey", None)
    return Context._given(key, values)


#: OpenFeature contexts whose aioflags contexts a provider keeps, each.
_CACHED: Final = 64


def _copy(value: object) -> object:
    """A copy of ``value`` made only of dicts, lists, strings and None; :data:`_NO` if it is not one.

    What a cached context is compared with: equal to it, and holding
    nothing a change in place could reach (its dicts and lists are its
    own; strings and None cannot change).
    """
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is dict:
        copied = {}
        for name, item in value.items():  # type: ignore[attr-defined]
            if type(name) is not str:
                return _NO
            copied[name] = item = _copy(item)
            if item is _NO:
                return _NO
        return copied
    if kind is list:
        items = [_copy(item) for item in value]  # type: ignore[attr-defined]
        return _NO if _NO in items else items
    return _NO


#: What :func:`_copy` answers for a value that cannot be cached.
_NO: Final = object()


@final
class ContextCache:
    """The aioflags contexts of OpenFeature contexts seen again, reused while they are unchanged.

    One per mapping (``mapping``: an OpenFeature context to an aioflags
    context, a flag system's). OpenFeature's ``EvaluationContext`` is a
    mutable dataclass: its ``targeting_key`` and ``attributes`` can be
    reassigned, and its attributes (a dict) and any dict or list inside
    them changed in place. The SDK's own client hands the provider a new
    one per call (it merges the global, transaction, client and invocation
    contexts); a caller of the provider may hand it the same object again.
    The rule, which cannot hand back a stale context:

    - the first time an object is seen it is mapped and remembered (the
      object alone: a call with a new object each time pays one dict store);
    - the second time, if its attributes are made only of dicts, lists,
      strings and None (no number: ``1 == 1.0 == True``, which map
      differently; no datetime), its context is kept with a copy of them;
    - after that, its context is reused while the object is the same (held
      here, so its ``id`` is not reused), its ``targeting_key`` is the same
      object and its attributes equal the copy (one comparison, in C: any
      change in place, at any depth, is seen).

    That last test is :attr:`kept`'s: a caller on a hot path makes it
    inline (:meth:`hit` says it in one place; the provider's ``_resolve``
    spells it out, a frame fewer) and calls :meth:`miss` when it fails.
    Anything else is mapped afresh at every call, as is a context that was
    refused (its error is raised again). At most :data:`_CACHED` objects are
    kept, and as many seen; when either is full, it starts over. Safe from any thread: a lookup
    and a store are each one dict operation, and an entry is a tuple.
    """

    __slots__ = ("_seen", "kept", "mapping")

    def __init__(self, mapping: Callable[[EvaluationContext], Context]) -> None:
        #: What maps an OpenFeature context to an aioflags one.
        self.mapping: Final = mapping
        #: The contexts kept, by the ``id`` of their OpenFeature object:
        #: ``(object, its targeting key, a copy of its attributes, context)``.
        self.kept: Final[
            dict[int, tuple[EvaluationContext, str | None, object, Context]]
        ] = {}
        #: The objects seen once, and those seen again that cannot be kept
        #: (their attributes hold a number, a datetime...: True), by ``id``.
        self._seen: Final[dict[int, tuple[EvaluationContext, bool]]] = {}

    @staticmethod
    def hit(
        entry: tuple[EvaluationContext, str | None, object, Context] | None,
        of_context: EvaluationContext,
    ) -> bool:
        """Whether ``entry`` (``kept.get(id(of_context))``) holds ``of_context``'s context, unchanged."""
        # (entry[0] is of_context: the entry holds its object, so no other
        # object has its id while it is kept)
        return (
            entry is not None
            and entry[1] is of_context.targeting_key
            and of_context.attributes == entry[2]
        )

    def get(self, of_context: EvaluationContext) -> Context:
        """``mapping(of_context)``, or the context it gave for this same, unchanged object."""
        entry = self.kept.get(id(of_context))
        if entry is not None and self.hit(entry, of_context):
            return entry[3]
        return self.miss(of_context, entry)

    def miss(
        self,
        of_context: EvaluationContext,
        entry: tuple[EvaluationContext, str | None, object, Context] | None,
    ) -> Context:
        """:meth:`get` past a failed :meth:`hit` of ``entry`` (``kept.get(id(of_context))``)."""
        ident = id(of_context)
        seen = self._seen
        once = seen.get(ident)
        if entry is None and (once is None or once[0] is not of_context):
            if len(seen) >= _CACHED:
                seen.clear()
            seen[ident] = (of_context, False)  # seen once
            return self.mapping(of_context)
        if entry is None and once is not None and once[1]:
            return self.mapping(of_context)  # seen before, and not made to be kept
        # (seen before, or kept and changed since: kept again if it can be)
        key, copied = of_context.targeting_key, _copy(of_context.attributes)
        context = self.mapping(of_context)
        kept = self.kept
        if copied is _NO:
            kept.pop(ident, None)
            seen[ident] = (of_context, True)
        else:
            seen.pop(ident, None)
            if len(kept) >= _CACHED:
                kept.clear()
            kept[ident] = (of_context, key, copied, context)
        return context
