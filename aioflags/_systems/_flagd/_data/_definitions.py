"""flagd's flag definitions, read into aioflags' flag data.

flagd (OpenFeature's flag system) writes its flags as one JSON document,
in a file or in each message of its sync protocol::

    {"$schema": "https://flagd.dev/schema/v0/flags.json",
     "flags": {"new-ui": {"state": "ENABLED",
                          "variants": {"on": true, "off": false},
                          "defaultVariant": "off",
                          "targeting": {"if": [...]}}},
     "$evaluators": {"shared-rule": {...}},
     "metadata": {"flagSetId": "web"}}

:func:`flagd_flags` turns such a document into aioflags' flag objects, one
per flag, which the store, the plane, saved state and every tool carry as
they carry LaunchDarkly's flags. Each holds what flagd evaluates, under
``"flagd"``: the state, the variants (an ordered object: a variant's index
is its place in it), the default variant, the targeting with every
``{"$ref": name}`` replaced by ``$evaluators[name]`` (one level, as flagd
does: a reference inside an evaluator stays one, which targeting cannot
apply), and the flag's metadata merged over the document's. Beside it, the
fields every aioflags tool reads of any flag: ``key``, ``version``, ``on``
(the state is ``ENABLED``) and ``variations`` (the variants' values, in
order). The evaluation layer compiles the ``"flagd"`` part
(``aioflags/_systems/_flagd/_engine/_compile.py``).

What flags share is written once, not once a flag (docs/flagd.md,
"Limits"): given ``shared``, :func:`flagd_flags` writes each flag in its
*shared form*, the one the data system, the flag plane, saved state and
``aioflags serve`` carry. Its targeting keeps each ``{"$ref": name}`` as
written and ``"evaluators"`` maps each name it refers to to the key of a
shared item; ``"syncContext"`` names the shared item that holds the
``sync_context``. A shared item is a segment (the kind every carrier of
flag data carries) keyed by its content's digest (:data:`SHARED_PREFIX`),
``{"key": ..., "version": 1, "flagd": {"shared": value}}``: an evaluator
that changes is another item, so the flags that use it change too (their
versions follow their content) and no others do. The store
(:func:`linked_flag`) puts the shared values back in before a flag is
compiled, the one object for every flag that uses it.

A document that flagd would refuse as a whole is refused here as a whole
(:class:`FlagdDocumentError`, naming the flag and the field): a flag with
no valid ``state``, with no variants, a ``defaultVariant`` that is not a
string, metadata whose values are not strings, numbers or booleans. A
``defaultVariant`` that names no variant is kept: that flag evaluates to
an error where it would serve it (as flagd's Python provider has it), and
``aioflags validate`` says so.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from aioflags._core._exceptions import AioflagsError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aioflags._core._json import JSONObject, JSONValue

__all__ = [
    "FRACTIONAL_VERSIONS",
    "SHARED_PREFIX",
    "FlagdDocumentError",
    "flagd_flags",
    "is_flagd_document",
    "is_flagd_flag",
    "linked_flag",
    "shared_keys",
    "shared_value",
    "shares",
]

#: The ``fractional`` bucketings a data system may ask for: 3 (flagd's
#: newest, the default) or 2 (the older high-precision one).
FRACTIONAL_VERSIONS: Final = (2, 3)
#: The top-level keys of a flagd document (``$schema`` for editors).
_TOP_LEVEL: Final = frozenset({"flags", "$evaluators", "metadata", "$schema"})
_STATES: Final = ("ENABLED", "DISABLED")
#: The start of a shared item's key (a segment's: no LaunchDarkly key has a
#: ``$``), then its content's digest.
SHARED_PREFIX: Final = "$flagd:"


class FlagdDocumentError(AioflagsError):
    """A flagd flag definition document flagd would refuse (the message says where and why).

    ``at``: where in the document, as keys and indexes from the top
    (``("flags", "f", "state")``); the message starts with it as a path.
    """

    def __init__(self, what: str, at: tuple[str | int, ...] = ()) -> None:
        where = "/".join(str(part) for part in at)
        super().__init__(f"{where}: {what}" if where else what)
        self.at = at


def is_flagd_flag(item: object) -> bool:
    """Whether a flag object is flagd's shape (``state`` and ``variants``)."""
    return isinstance(item, dict) and "state" in item and "variants" in item


def is_flagd_document(data: object) -> bool:
    """Whether a parsed flag file is flagd's.

    It is when its ``$schema`` names flagd, it has ``$evaluators``, or a
    flag in it (in an object by key, or in flagd's daemon form: a list) has
    flagd's ``state`` and ``variants``.
    """
    if not isinstance(data, dict):
        return False
    schema = data.get("$schema")
    if isinstance(schema, str) and "flagd" in schema.lower():
        return True
    if "$evaluators" in data:
        return True
    flags = data.get("flags")
    if isinstance(flags, dict):
        flags = list(flags.values())
    return isinstance(flags, list) and any(is_flagd_flag(f) for f in flags)


def _metadata(value: object, at: tuple[str | int, ...]) -> JSONObject:
    """Metadata as flagd takes it: an object of strings, numbers and booleans."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FlagdDocumentError("'metadata' must be an object", at)
    for name, item in value.items():
        if not name:
            raise FlagdDocumentError("a metadata key must not be empty", at)
        if not isinstance(item, (str, int, float, bool)):
            raise FlagdDocumentError(
                f"metadata {name!r} must be a string, a number or a "
                f"boolean, not {_kind(item)}",
                (*at, name),
            )
    return dict(value)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_ref(value: object) -> str | None:
    """The name a ``{"$ref": name}`` object refers to (else None)."""
    if isinstance(value, dict) and len(value) == 1:
        name = value.get("$ref")
        if isinstance(name, str):
            return name
    return None


def _resolve_refs(rule: JSONValue, evaluators: dict[str, JSONValue]) -> JSONValue:
    """``rule`` with each ``{"$ref": name}`` replaced by ``evaluators[name]``.

    One level, as flagd replaces them: what an evaluator holds is taken as
    it is, the one object for every flag that refers to it (shared, not
    copied). A name no evaluator has stays a reference (targeting cannot
    apply it: the flag evaluates to a parse error). Only objects and arrays
    are walked (a reference is an object), without recursion however deep
    they nest; the rest is taken as it is.
    """
    top, walk = _resolved(rule, evaluators)
    stack = [top] if walk else []
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node))
        for k in keys:
            value = node[k]
            if isinstance(value, (dict, list)):
                node[k], walk = _resolved(value, evaluators)
                if walk:
                    stack.append(node[k])
    return top


def _resolved(node: Any, evaluators: dict[str, JSONValue]) -> tuple[Any, bool]:
    """``node``'s replacement (its evaluator, or a copy), and whether to walk it."""
    if isinstance(node, dict):
        name = _is_ref(node)
        if name is not None:
            return evaluators.get(name, node), False
        return dict(node), True
    if isinstance(node, list):
        return list(node), True
    return node, False


def _flags_of(data: JSONObject) -> list[tuple[str, Any]]:
    """The document's flags as (key, definition), from its object or its list."""
    flags = data.get("flags")
    if isinstance(flags, dict):
        return list(flags.items())
    if isinstance(flags, list):  # flagd's daemon form: each flag has its key
        pairs: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for n, item in enumerate(flags):
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str) or not key:
                raise FlagdDocumentError("a flag in a list needs a 'key'", ("flags", n))
            if key in seen:
                raise FlagdDocumentError(
                    f"flag {key!r} is defined twice", ("flags", n, "key")
                )
            seen.add(key)
            pairs.append((key, {k: v for k, v in item.items() if k != "key"}))
        return pairs
    if flags is None:
        raise FlagdDocumentError("a flagd document needs 'flags'")
    raise FlagdDocumentError("'flags' must be an object keyed by flag key")


def _shared_key(value: JSONValue) -> str:
    """The key of the shared item holding ``value``: its content's digest."""
    import hashlib  # (only where a document shares values: not at import aioflags)

    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return SHARED_PREFIX + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _ref_names(rule: JSONValue) -> dict[str, None]:
    """The names ``rule`` refers to with ``{"$ref": name}``, in order (one level, as :func:`_resolve_refs`)."""
    names: dict[str, None] = {}
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = _is_ref(node)
            if name is not None:
                names[name] = None
            else:
                stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


class _Sharing:
    """Writes a document's shared parts once, as items in ``items`` (see the module)."""

    __slots__ = ("_keys", "items")

    def __init__(self, items: dict[str, JSONObject]) -> None:
        self.items = items
        #: the key made for each value, by the value's identity (each is digested once)
        self._keys: dict[int, str] = {}

    def key(self, value: JSONValue) -> str:
        """The key of the shared item holding ``value`` (made and kept on its first use)."""
        key = self._keys.get(id(value))
        if key is None:
            key = self._keys[id(value)] = _shared_key(value)
            if key not in self.items:
                self.items[key] = {"key": key, "version": 1, "flagd": {"shared": value}}
        return key


def shared_value(item: object) -> tuple[bool, JSONValue]:
    """Whether a segment object is a shared item, and the value it holds."""
    part = item.get("flagd") if isinstance(item, dict) else None
    if isinstance(part, dict) and "shared" in part:
        return True, part["shared"]
    return False, None


def shares(flag: object) -> bool:
    """Whether a flag object is a flagd flag in its shared form (it names shared items)."""
    part = flag.get("flagd") if isinstance(flag, dict) else None
    return isinstance(part, dict) and ("evaluators" in part or "syncContext" in part)


def shared_keys(flag: JSONObject) -> list[str]:
    """The keys of the shared items a flagd flag names (none unless it is in its shared form)."""
    part = flag.get("flagd")
    if not isinstance(part, dict):
        return []
    names = part.get("evaluators")
    keys = (
        [k for k in names.values() if isinstance(k, str)]
        if isinstance(names, dict)
        else []
    )
    context = part.get("syncContext")
    if isinstance(context, str):
        keys.append(context)
    return keys


def linked_flag(flag: JSONObject, shared: Mapping[str, JSONValue]) -> JSONObject:
    """A flag in its shared form with the shared values it names put in (see the module).

    What the evaluation compiles: the targeting with each ``$ref`` replaced
    by its evaluator and the ``sync_context`` under ``"context"``, as
    :func:`flagd_flags` without ``shared`` writes it. A name whose item
    ``shared`` lacks stays a reference (the flag is a PARSE_ERROR).
    """
    part: dict[str, Any] = flag["flagd"]  # (shares() checked it)
    linked = {k: v for k, v in part.items() if k not in ("evaluators", "syncContext")}
    names = part.get("evaluators")
    if isinstance(names, dict) and "targeting" in part:
        evaluators = {
            name: shared[key]
            for name, key in names.items()
            if isinstance(key, str) and key in shared
        }
        linked["targeting"] = _resolve_refs(part["targeting"], evaluators)
    key = part.get("syncContext")
    context = shared.get(key) if isinstance(key, str) else None
    if isinstance(context, dict) and "targeting" in part:
        linked["context"] = context
    return {**flag, "flagd": linked}


def flagd_flags(
    data: object,
    *,
    fractional: int = 3,
    context: JSONObject | None = None,
    shared: dict[str, JSONObject] | None = None,
) -> dict[str, JSONObject]:
    """A flagd document's flags as aioflags flag objects, by key (see the module).

    ``fractional``: the bucketing ``fractional`` uses (3, or 2 for fleets
    whose other evaluators still use flagd's older one), kept in each flag
    that is not on 3.

    ``context``: flagd's static context (a sync server's ``sync_context``,
    or its ``GetMetadata`` metadata), kept in each flag with targeting under
    ``"context"``: the attributes its targeting sees under the evaluation
    context's own (flagd's "context enrichment"; the evaluation merges
    them). Flags without targeting read no context: they carry none. It is
    one object shared by the flags, not a copy each (never changed after).

    ``shared``: write the flags in their shared form, and the items they
    share into ``shared`` by key (see the module); without it, each flag
    holds its evaluators and the context itself (the same objects).

    Raises:
        FlagdDocumentError: the document is not one flagd would take.
    """
    if fractional not in FRACTIONAL_VERSIONS:
        raise ValueError(f"fractional must be 2 or 3, not {fractional!r}")
    if not isinstance(data, dict):
        raise FlagdDocumentError("a flagd document must be a JSON object")
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise FlagdDocumentError(
            f"unknown top-level key {unknown[0]!r}: a flagd document has flags, "
            "$evaluators and metadata"
        )
    set_metadata = _metadata(data.get("metadata"), ("metadata",))
    evaluators = data.get("$evaluators")
    if evaluators is None:
        evaluators = {}
    elif not isinstance(evaluators, dict):
        raise FlagdDocumentError(
            "'$evaluators' must be an object of rules by name", ("$evaluators",)
        )
    flags: dict[str, JSONObject] = {}
    listed = isinstance(data.get("flags"), list)
    sharing = None if shared is None else _Sharing(shared)
    for n, (key, definition) in enumerate(_flags_of(data)):
        at: tuple[str | int, ...] = ("flags", n if listed else key)
        flag = _flag(key, at, definition, evaluators, set_metadata, fractional, sharing)
        part = flag["flagd"]
        if context and "targeting" in part:
            if sharing is None:
                part["context"] = context  # (one object for all: shared)
            else:
                part["syncContext"] = sharing.key(context)
        flags[key] = flag
    return flags


def _flag(
    key: str,
    at: tuple[str | int, ...],
    definition: object,
    evaluators: dict[str, JSONValue],
    set_metadata: JSONObject,
    fractional: int,
    sharing: _Sharing | None,
) -> JSONObject:
    if not key:
        raise FlagdDocumentError("a flag key must not be empty", at)
    if not isinstance(definition, dict):
        raise FlagdDocumentError("a flag must be an object", at)
    state = definition.get("state")
    if state not in _STATES:
        raise FlagdDocumentError(
            f'\'state\' must be "ENABLED" or "DISABLED", not {state!r}',
            (*at, "state") if "state" in definition else at,
        )
    variants = definition.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise FlagdDocumentError(
            "'variants' must be an object with at least one variant",
            (*at, "variants") if "variants" in definition else at,
        )
    default = definition.get("defaultVariant")
    if isinstance(default, bool):  # flagd takes true/false for "true"/"false"
        default = "true" if default else "false"
    elif default == "":
        default = None
    elif default is not None and not isinstance(default, str):
        raise FlagdDocumentError(
            f"'defaultVariant' must be a variant's name or null, not {_kind(default)}",
            (*at, "defaultVariant"),
        )
    own = definition.get("metadata")
    if own is None:
        metadata = dict(set_metadata)
    else:
        metadata = {**set_metadata, **_metadata(own, (*at, "metadata"))}
    flagd: JSONObject = {
        "state": state,
        "variants": dict(variants),
        "defaultVariant": default,
        "metadata": metadata,
    }
    targeting = definition.get("targeting")
    if targeting is not None and targeting != {}:
        if sharing is None:
            flagd["targeting"] = _resolve_refs(targeting, evaluators)
        else:  # (as written: the document's, never changed)
            flagd["targeting"] = targeting
            names = {
                name: sharing.key(evaluators[name])
                for name in _ref_names(targeting)
                if name in evaluators
            }
            if names:
                flagd["evaluators"] = names
    if fractional != 3:
        flagd["fractional"] = fractional
    return {
        "key": key,
        "version": 1,
        "on": state == "ENABLED",
        "variations": list(variants.values()),
        "flagd": flagd,
    }
