"""OpenFeature evaluation contexts as aioflags contexts: one mapping for the provider and OFREP.

:func:`context_from` takes what every OpenFeature context is, a targeting key
and attributes (already JSON values), and raises :class:`ContextError` with
OpenFeature's error code for what it refuses; ``aioflags.openfeature`` turns
that into the SDK's own exceptions, OFREP into an error body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal

from aioflags._evaluation._context import Context

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ContextError", "context_from"]

_RESERVED: Final = frozenset({"kind", "key", "targetingKey", "privateAttributes"})


class ContextError(ValueError):
    """A context aioflags cannot evaluate, with OpenFeature's error code."""

    def __init__(
        self, code: Literal["TARGETING_KEY_MISSING", "INVALID_CONTEXT"], message: str
    ) -> None:
        super().__init__(message)
        self.code = code


def _single(kind: str, key: object, attributes: Mapping[str, Any]) -> Context:
    if not isinstance(key, str) or not key:
        raise ContextError(
            "TARGETING_KEY_MISSING",
            f"the {kind!r} context needs a targeting key (or a 'key' attribute)",
        )
    name = attributes.get("name")
    anonymous = attributes.get("anonymous", False)
    private = attributes.get("privateAttributes") or []
    custom = {
        k: v
        for k, v in attributes.items()
        if k not in _RESERVED and k not in ("name", "anonymous")
    }
    context = Context.create(
        key,
        kind,
        name=name,
        anonymous=anonymous,
        attributes=custom,
        private_attributes=private,
    )
    if not context.valid:
        raise ContextError("INVALID_CONTEXT", context.error or "invalid context")
    return context


def context_from(key: object, attributes: Mapping[str, Any]) -> Context:
    """The aioflags context of an OpenFeature targeting key and attributes.

    The targeting key is the context key (a ``key`` attribute also works);
    ``kind`` sets the context kind (``"user"`` by default); ``name``,
    ``anonymous`` and ``privateAttributes`` are LaunchDarkly's; other
    attributes are custom attributes. With ``kind: "multi"``, each other
    attribute but ``targetingKey`` is one kind's context: an object with its
    own ``targetingKey`` (or ``key``) and attributes.
    """
    kind = attributes.get("kind", "user")
    if kind != "multi":
        if not isinstance(kind, str):
            raise ContextError(
                "INVALID_CONTEXT", "the 'kind' attribute must be a string"
            )
        return _single(kind, key or attributes.get("key"), attributes)
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
            _single(part_kind, part.get("targetingKey") or part.get("key"), part)
        )
    if not parts:
        raise ContextError(
            "INVALID_CONTEXT", "a multi-kind context needs at least one kind"
        )
    context = Context.create_multi(*parts)
    if not context.valid:
        raise ContextError("INVALID_CONTEXT", context.error or "invalid context")
    return context
