"""flagd flags compiled into the same heads as LaunchDarkly's (flagd.md, "Evaluation").

A flagd flag reaches the model as the ``"flagd"`` part of a flag object
(``aioflags/_systems/_flagd/_data/_definitions.py`` reads flagd's documents
into them); the model hands it to flagd's system, whose ``compile`` is
:func:`compile_flagd_flag`. :func:`compile_flagd` compiles it into the
fields of a ``CompiledFlag`` (:class:`FlagdParts`), as ``_compile_flag_body`` does
LaunchDarkly's JSON: its results made once, and a head the pipeline runs
like any other (door, find, run, answer are one for both):

- ``state: DISABLED``: the caller's default, reason ``DISABLED`` (the
  flag's constant result, as an off flag's).
- no targeting: the default variant, reason ``STATIC`` (constant).
- targeting: its rule compiled once (``_jsonlogic.build_targeting``) and
  run per evaluation; what it gives chooses the result: a variant's name
  (``true``/``false`` name the variants ``"true"``/``"false"``; a number
  names the variant its text is, as flagd's Python provider has it) is
  that variant, reason ``TARGETING_MATCH``; null is the default variant,
  reason ``DEFAULT``; anything else is an error, ``GENERAL``.
- no default variant (null, absent or ``""``) where it would serve: the
  caller's default, reason ``DEFAULT`` (flagd's "code default"); a
  default variant that names no variant: ``GENERAL``.
- targeting flagd cannot apply (an unknown operator, a ``$ref`` to no
  evaluator): ``PARSE_ERROR`` for every evaluation, said once in the log.

A result's ``variation_index`` is the variant's place among the flag's
variants; ``CompiledFlag.variant_names`` names it (OpenFeature's
``variant``) and ``CompiledFlag.flag_metadata`` is the flag's metadata
merged over its flag set's.
"""

from __future__ import annotations

import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NamedTuple, final

from aioflags._core._logname import client_logger
from aioflags._evaluation._codegen import Code
from aioflags._evaluation._model import Split, _told
from aioflags._evaluation._results import Reason, Result, own_cache

from ._jsonlogic import TargetingError, build_targeting, constant_run

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._evaluation._model import CompiledFlag

    from ._jsonlogic_compiler import FractionalForm


__all__ = [
    "DEFAULT",
    "DISABLED",
    "GENERAL",
    "GENERAL_RESULT",
    "PARSE_ERROR",
    "PARSE_ERROR_RESULT",
    "STATIC",
    "TARGETING_MATCH",
    "FlagdFlagError",
    "FlagdParts",
    "Variants",
    "compile_flagd",
    "compile_flagd_flag",
    "large_targeting",
    "prebuild_flagd",
    "targeting_outcomes",
    "variant_name",
]

logger = client_logger("aioflags.evaluation")

STATIC: Final = Reason({"kind": "STATIC"})
TARGETING_MATCH: Final = Reason({"kind": "TARGETING_MATCH"})
DEFAULT: Final = Reason({"kind": "DEFAULT"})
DISABLED: Final = Reason({"kind": "DISABLED"})
#: flagd's errors, in the reason's ``errorKind`` (OpenFeature's codes)
PARSE_ERROR: Final = Reason({"kind": "ERROR", "errorKind": "PARSE_ERROR"})
GENERAL: Final = Reason({"kind": "ERROR", "errorKind": "GENERAL"})

_GENERAL_RESULT: Final = Result(None, None, GENERAL, False, None)
#: A flagd flag's evaluation that failed (flagd's word: GENERAL).
GENERAL_RESULT: Final = _GENERAL_RESULT
#: the constant result of a flag flagd cannot evaluate
PARSE_ERROR_RESULT: Final = Result(None, None, PARSE_ERROR, False, None)


class FlagdFlagError(Exception):
    """A flagd flag's definition the model cannot use (the flag is PARSE_ERROR)."""


def variant_name(value: JSONValue) -> str | None:
    """The variant a targeting rule's value names (None: it names none).

    A string names itself; ``true``/``false`` name ``"true"``/``"false"``;
    a number names the variant its text is (``1`` → ``"1"``, ``1.5`` →
    ``"1.5"``: flagd's Python provider's ``str``).
    """
    cls = value.__class__
    if isinstance(value, str):
        return value
    if cls is bool:
        return "true" if value else "false"
    if cls is int or cls is float:
        return str(value)
    return None


@final
class Variants:
    """A flagd flag's results by what its targeting gives (``_jsonlogic.Choice``).

    The generated targeting returns the result a branch's value chooses:
    chosen when the rule is compiled where the rule writes the value (a
    variant's name, ``null``), else looked up as it runs (a ``fractional``'s
    name: :attr:`by_name`, or :meth:`result_of` for what is not a string).
    """

    __slots__ = ("by_name", "general", "on_null", "splits")

    def __init__(self, by_name: dict[str, Result], on_null: Result) -> None:
        #: the ``TARGETING_MATCH`` result of each variant (but a null one:
        #: flagd refuses to serve it)
        self.by_name = by_name
        #: what a rule that gives null serves (the default variant, DEFAULT)
        self.on_null = on_null
        #: what a name no variant has, or a rule that fails as it runs,
        #: gives (flagd's Python provider's OpenFeature client: GENERAL)
        self.general = _GENERAL_RESULT
        #: the fractionals' splits, as :meth:`randomized` makes their choices
        self.splits: list[Split] = []

    def randomized(self, form: FractionalForm, where: str) -> Variants:
        """The choice of a ``fractional`` that is a branch's value: results of its own.

        Each variant's ``TARGETING_MATCH`` result again, equal to
        :attr:`by_name`'s but other objects (the answers stay the same to
        the byte: OFREP, OpenFeature, coverage read values, not
        identities), so that what this fractional serves is told apart by
        identity from a variant the rule names itself. Null and a name no
        variant has still give :attr:`on_null` and :attr:`general`. Its
        :class:`Split` joins :attr:`splits`: the variants its entries name,
        each weighed (a name in several entries once, their weights
        summed; an entry naming no variant left out, and the weights the
        shares of those listed), or every variant, unweighed, where the
        weights are computed per evaluation.
        """
        own = Variants(
            {
                name: Result(r.value, r.variation_index, r.reason, False, own_cache())
                for name, r in self.by_name.items()
            },
            self.on_null,
        )
        fractions = form.fractions
        if not form.serves:
            return own
        if fractions is None:
            if own.by_name:
                self.splits.append(Split(tuple(own.by_name.values()), None, where))
            return own
        shares: dict[str, int] = {}
        low = 0
        for variant, threshold in zip(
            fractions.variants, fractions.thresholds, strict=True
        ):
            name = variant_name(variant)
            if name is not None and name in own.by_name and threshold > low:
                shares[name] = shares.get(name, 0) + threshold - low
            low = threshold
        total = sum(shares.values())
        if total:
            self.splits.append(
                Split(
                    tuple(own.by_name[name] for name in shares),
                    tuple(weight / total for weight in shares.values()),
                    where,
                )
            )
        return own

    def result_of(self, value: JSONValue) -> Result:
        """The result a rule's ``value`` chooses (see the module)."""
        if value is None:
            return self.on_null
        name = variant_name(value)
        hit = None if name is None else self.by_name.get(name)
        return _GENERAL_RESULT if hit is None else hit


class FlagdParts(NamedTuple):
    """What a flagd flag's definition compiles to: the fields of its ``CompiledFlag``."""

    variant_names: tuple[str, ...]
    variations: tuple[JSONValue, ...]
    #: read-only: one mapping per compiled flag, handed out as it is
    flag_metadata: Mapping[str, JSONValue]
    on: bool
    #: the result when the flag is disabled
    off_result: Result
    #: the result for every context (``None``: run :attr:`code`)
    constant: Result | None
    code: Code | None
    #: the targeting's fractionals that choose by chance (``Split``)
    splits: tuple[Split, ...] = ()


#: A targeting of this many JSON nodes or more is built before its flag's
#: first evaluation, on a worker thread (:func:`prebuild_flagd`): about
#: 20 ms of work (docs/flagd.md, "Limits").
PREBUILD_NODES: Final = 2_000
#: The parts built ahead, by their definition's identity, until evaluated:
#: those of the last change set only (a store builds them just before it
#: installs the set; held no longer, a part of data since replaced is not
#: kept alive here).
_prebuilt: dict[int, tuple[JSONObject, FlagdParts | None]] = {}
_prebuilt_lock: Final = threading.Lock()


def large_targeting(spec: object) -> bool:
    """Whether the targeting of a ``"flagd"`` part has :data:`PREBUILD_NODES` nodes or more.

    Cheap, for the event loop: it counts no further than that.
    """
    if not isinstance(spec, dict):
        return False
    stack = [spec.get("targeting")]
    count = 0
    while stack:
        node = stack.pop()
        count += 1
        if count >= PREBUILD_NODES:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def prebuild_flagd(specs: list[tuple[str, JSONObject]]) -> None:
    """Compile large flagd parts (key, part) ahead, for a worker thread.

    A large targeting takes seconds to build (CPython compiling megabytes
    of source); built lazily, at its flag's first evaluation, it would
    block the event loop that long. The store calls this on a worker
    thread before it installs the data; :func:`compile_flagd` then takes
    the built part (the same object: its identity is the key). A part
    that does not compile is left for the evaluation, which says why.
    The parts of an earlier call not taken yet are dropped.
    """
    built = {id(spec): (spec, _compiled(key, spec)) for key, spec in specs}
    with _prebuilt_lock:
        _prebuilt.clear()
        _prebuilt.update(built)


def _compiled(key: str, spec: JSONObject) -> FlagdParts | None:
    """:func:`compile_flagd`, or None where it raises (left for the evaluation)."""
    try:
        return compile_flagd(key, spec)
    except FlagdFlagError:
        return None


def _take_prebuilt(spec: JSONObject) -> FlagdParts | None:
    with _prebuilt_lock:
        held = _prebuilt.pop(id(spec), None)
    return held[1] if held is not None and held[0] is spec else None


def compile_flagd(key: str, spec: JSONObject) -> FlagdParts:
    """Compile the ``"flagd"`` part of flag ``key``'s object (see the module).

    Raises:
        FlagdFlagError: the part is not what the document reader writes,
            or its targeting is not one flagd can apply.
    """
    if _prebuilt:
        built = _take_prebuilt(spec)
        if built is not None:
            return built
    variants = spec.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise FlagdFlagError("'variants' must be an object with at least one variant")
    state = spec.get("state")
    if state not in ("ENABLED", "DISABLED"):
        raise FlagdFlagError("'state' must be ENABLED or DISABLED")
    metadata = spec.get("metadata")
    names = tuple(variants)
    off = Result(None, None, DISABLED, False, own_cache())

    def parts(constant: Result | None, code: Code | None = None) -> FlagdParts:
        return FlagdParts(
            names,
            tuple(variants.values()),
            MappingProxyType(dict(metadata) if isinstance(metadata, dict) else {}),
            state == "ENABLED",
            off,
            constant,
            code,
        )

    if state == "DISABLED":
        return parts(off)

    def served(name: str, reason: Reason) -> Result:
        index = names.index(name)
        return Result(variants[name], index, reason, False, own_cache())

    default = spec.get("defaultVariant")
    if default is None or default == "":
        static = on_null = Result(None, None, DEFAULT, False, own_cache())
    elif isinstance(default, str) and default in variants:
        static = served(default, STATIC)
        on_null = served(default, DEFAULT)
    else:  # a default variant that names no variant
        static = on_null = _GENERAL_RESULT
    if "targeting" not in spec:
        return parts(static)
    fractional = spec.get("fractional", 3)
    sync_context = spec.get("context")  # (a sync server's sync_context)
    by_name = {
        name: served(name, TARGETING_MATCH)
        for name, value in variants.items()
        if value is not None
    }
    choose = Variants(by_name, on_null)
    try:
        run, operands = build_targeting(
            spec["targeting"],
            key,
            fractional=fractional,
            choose=choose,
            static=sync_context
            if isinstance(sync_context, dict) and sync_context
            else None,
        )
    except TargetingError as exc:
        raise FlagdFlagError(str(exc)) from None
    # (a rule that is a value, "on": its result for every context)
    constant = operands[0] if run is constant_run else None
    if isinstance(constant, Result):
        return parts(constant)
    return parts(None, Code(run, True, operands))._replace(splits=tuple(choose.splits))


#: JsonLogic's conditionals: ``[if, then, elif, then, ..., else]``.
_CONDITIONALS: Final = ("if", "?:")


def targeting_outcomes(rule: JSONValue) -> tuple[frozenset[str] | None, bool]:
    """What a targeting rule can give: the variant names it can name, and whether null.

    Read from the rule's shape, not run: a literal names its variant
    (:func:`variant_name`); a conditional (``if``, ``?:``) any of its
    results (null where it has no else); ``fractional`` its buckets'
    names; anything else computes a value the rule's text does not say:
    any name (``None``), or null. Flag coverage's branches of a flagd flag.
    """
    names: set[str] = set()
    none = False
    stack = [rule]  # (a stack: however deep the conditionals nest)
    while stack:
        node = stack.pop()
        if node is None:
            none = True
        elif not isinstance(node, dict):
            name = variant_name(node)
            if name is not None:
                names.add(name)
        elif len(node) != 1:
            return None, True
        else:
            op, args = next(iter(node.items()))
            if not isinstance(args, list):
                args = [args]
            if op in _CONDITIONALS:
                stack.extend(args[at] for at in range(1, len(args), 2))
                if len(args) % 2 == 1:
                    stack.append(args[-1])  # the else
                none = none or len(args) % 2 == 0
            elif op == "fractional":
                buckets = [arg for arg in args if isinstance(arg, list)]
                named = [variant_name(b[0]) if b else None for b in buckets]
                if not named or any(name is None for name in named):
                    return None, True
                names.update(name for name in named if name is not None)
            else:
                return None, True
    return frozenset(names), none


def compile_flagd_flag(flag: CompiledFlag, spec: JSONValue) -> None:
    """Fill ``flag`` from its flagd part ``spec``; one flagd cannot evaluate is PARSE_ERROR, logged once.

    flagd's system's ``compile`` (``Flagd.compile``, ``_system.py``): the
    model's :func:`~aioflags._evaluation._model.compile_flag` calls it for
    a flag object with a ``"flagd"`` part.
    """
    # A flagd flag even if it cannot be compiled: its evaluation context is
    # flagd's (its system's), so PARSE_ERROR needs no targeting key.
    flag.variant_names = ()
    try:
        if not isinstance(spec, dict):
            raise FlagdFlagError("a flagd flag's definition must be an object")
        parts = compile_flagd(flag.key, spec)
    except FlagdFlagError as exc:
        flag.malformed = str(exc)
        flag.constant = PARSE_ERROR_RESULT
        if _told("Flag", flag.key, flag.version):
            logger.error(
                "flagd flag %r cannot be evaluated and will evaluate to "
                "PARSE_ERROR: %s",
                flag.key,
                exc,
            )
        return
    flag.variant_names = parts.variant_names
    flag.variations = parts.variations
    flag.flag_metadata = parts.flag_metadata
    flag.on = parts.on
    flag.off_result = parts.off_result
    flag.constant = parts.constant
    flag.compiled_splits = parts.splits
    if parts.code is not None:
        flag.code = parts.code
        names, none = targeting_outcomes(spec.get("targeting"))
        variants = list(spec["variants"].items())  # (compile_flagd checked it)
        servable = tuple(
            at
            for at, (name, value) in enumerate(variants)
            if value is not None and (names is None or name in names)
        )
        default = spec.get("defaultVariant")
        at_default = [at for at, (name, _) in enumerate(variants) if name == default]
        flag.targeting_serves = (servable, none, at_default[0] if at_default else None)
