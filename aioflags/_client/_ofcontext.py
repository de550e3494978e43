"""OpenFeature evaluation contexts as aioflags contexts: one mapping for the provider and OFREP.

:func:`context_from` takes what every OpenFeature context is, a targeting key
and attributes (already JSON values), and raises :class:`ContextError` with
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

from typing import TYPE_CHECKING, Any, Final, Literal, final

from aioflags._evaluation._context import Context
from aioflags._evaluation._logonce import Occurrences

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Mapping

    from openfeature.evaluation_context import EvaluationContext

__all__ = ["ContextCache", "ContextError", "context_from", "flagd_context_from"]

_RESERVED: Final = frozenset({"kind", "key", "targetingKey", "privateAttributes"})
#: Attribute names dropped, not refused: LaunchDarkly's context builders
#: ignore an empty name (``ContextBuilder.set`` in its SDKs), and OFREP's
#: document allows any property name in a context.
_DROPPED_NAMES: Final = frozenset({""})
#: The attribute names that are not a single context's custom attributes:
#: one set, one test per attribute.
_NOT_CUSTOM: Final = _RESERVED | {"name", "anonymous"} | _DROPPED_NAMES
#: (logger, name) pairs already said at DEBUG: each once, at most this many.
_MAX_DROPPED: Final = 64
_DROPPED: Final = Occurrences(_MAX_DROPPED)


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
    empty name is dropped (said once at DEBUG on ``logger``).
    """
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


def flagd_context_from(
    key: object,
    attributes: Mapping[str, Any],
    convert: Callable[[Any], Any] | None = None,
) -> Context:
    """An OpenFeature context as flagd's providers give it to a flagd flag.

    The targeting key (none is valid: flagd's rules see ``targetingKey``
    as null) and the attributes as they are, ``targetingKey`` aside: no
    name is LaunchDarkly's (``kind``, ``name``, ``privateAttributes`` are
    attributes like any other). ``convert``: what makes a value that is
    not a string, a number or a boolean JSON (the OpenFeature SDK's
    datetimes); OFREP's values are JSON already.

    One pass, one dict: it runs per evaluation.

    Raises:
        ContextError: a targeting key that is not a string (INVALID_CONTEXT).
    """
    if key is not None and not isinstance(key, str):
        raise ContextError("INVALID_CONTEXT", "the targeting key must be a string")
    values: dict[str, Any] = {}
    for name, value in attributes.items():
        if isinstance(value, (str, int, float)):  # (bool is an int)
            values[name] = value
        elif value is not None:
            values[str(name)] = value if convert is None else convert(value)
    values.pop("targetingKey", None)
    return Context._flagd(key, values)


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

    OpenFeature's ``EvaluationContext`` is a mutable dataclass: its
    ``targeting_key`` and ``attributes`` can be reassigned, and its
    attributes (a dict) and any dict or list inside them changed in place.
    The SDK's own client hands the provider a new one per call (it merges
    the global, transaction, client and invocation contexts); a caller of
    the provider may hand it the same object again. The rule, which cannot
    hand back a stale context:

    - the first time an object is seen it is mapped and remembered (the
      object alone: a call with a new object each time pays one dict store);
    - the second time, if its attributes are made only of dicts, lists,
      strings and None (no number: ``1 == 1.0 == True``, which map
      differently; no datetime), its context is kept with a copy of them;
    - after that, its context is reused while the object is the same (held
      here, so its ``id`` is not reused), its ``targeting_key`` is the same
      object and its attributes equal the copy (one comparison, in C: any
      change in place, at any depth, is seen).

    Anything else is mapped afresh at every call, as is a context that was
    refused (its error is raised again). At most :data:`_CACHED` objects are
    remembered; when full, it starts over. Safe from any thread: a lookup
    and a store are each one dict operation, and an entry is a tuple.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[
            int,
            tuple[EvaluationContext, str | None, object, Context | None],
        ] = {}

    def get(
        self,
        of_context: EvaluationContext,
        mapping: Callable[[EvaluationContext], Context],
    ) -> Context:
        """``mapping(of_context)``, or the context it gave for this same, unchanged object."""
        entries = self._entries
        entry = entries.get(id(of_context))
        if entry is None or entry[0] is not of_context:
            if len(entries) >= _CACHED:
                entries.clear()
            entries[id(of_context)] = (of_context, None, None, None)  # seen once
            return mapping(of_context)
        context = entry[3]
        if (
            context is not None
            and entry[1] is of_context.targeting_key
            and of_context.attributes == entry[2]
        ):
            return context
        if entry[2] is _NO:  # seen before, and not made to be kept
            return mapping(of_context)
        key, copied = of_context.targeting_key, _copy(of_context.attributes)
        context = mapping(of_context)
        entries[id(of_context)] = (
            (of_context, key, copied, context)
            if copied is not _NO
            else (of_context, None, _NO, None)
        )
        return context
