"""LaunchDarkly's system object: how its flags compile, type, fail, and read to OpenFeature and OFREP."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, final

from aioflags._client._ofcontext import context_from
from aioflags._evaluation._data import EMPTY
from aioflags._evaluation._evaluate import ERROR_RESULTS, typed_check
from aioflags._evaluation._model import (
    MALFORMED,
    compile_launchdarkly,
    launchdarkly_splits,
)
from aioflags._evaluation._system_parts import link_nothing, no_shared_keys

from . import _coverage, _tools, _words

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._model import CompiledFlag
    from aioflags._evaluation._results import Result
    from aioflags._evaluation._system_parts import DocumentFormat, SystemConfiguration

__all__ = ["LAUNCHDARKLY", "LaunchDarkly"]

_logger: Final = logging.getLogger("aioflags.evaluation")


@final
class LaunchDarkly:
    """LaunchDarkly's flags: the default system, whose definition is the flag object itself.

    Its reasons are LaunchDarkly's (``OFF``, ``RULE_MATCH``...), its errors
    MALFORMED_FLAG and EXCEPTION among LaunchDarkly's error kinds, its type
    step LaunchDarkly's (an int is a float, a float an int, truncated), its
    variant the variation's index as text, its metadata none, its context
    LaunchDarkly's (a targeting key needed; ``kind``, ``name``,
    ``anonymous``, ``privateAttributes`` are its own).
    """

    __slots__ = ()

    name: str = "launchdarkly"
    part: str | None = None
    unusable: Result = MALFORMED
    failed: Result = ERROR_RESULTS["EXCEPTION"]
    unserved_variant: str | None = None
    error_kinds: frozenset[str] = frozenset(ERROR_RESULTS)
    events_recorded: bool = True
    #: its flags are the file reader's own shape (``_sources/_files.py``)
    document: DocumentFormat | None = None
    #: its options and variables are ``Config``'s own (``AIOFLAGS_*``)
    configuration: SystemConfiguration | None = None
    compile = staticmethod(compile_launchdarkly)
    splits = staticmethod(launchdarkly_splits)
    typed_check = staticmethod(typed_check)
    branches = staticmethod(_coverage.branches)
    branch_taken = staticmethod(_coverage.branch_taken)

    def variant(self, flag: CompiledFlag | None, index: int) -> str:
        """The variation's index as text (``"0"``)."""
        return str(index)

    def metadata(self, flag: CompiledFlag | None) -> Mapping[str, JSONValue]:
        """None of its own: one shared, read-only, empty mapping."""
        return EMPTY

    def ofrep_metadata(
        self, flag: CompiledFlag | None, version: int, reason: Mapping[str, Any]
    ) -> dict[str, JSONValue]:
        """Its version and LaunchDarkly's reason word (OFREP's reasons are OpenFeature's)."""
        return {"version": version, "ldReason": str(reason.get("kind"))}

    def reason_word(self, flag: CompiledFlag | None, reason: Mapping[str, Any]) -> str:
        """OpenFeature's word for a LaunchDarkly reason (``FlagSnapshot.openfeature_reason``)."""
        kind = reason["kind"]
        if kind == "OFF":
            return "DISABLED"
        if kind == "RULE_MATCH":
            rule = reason.get("ruleIndex")
            if (
                flag is not None
                and isinstance(rule, int)
                and rule < len(flag.rules)
                and flag.rules[rule][1].fixed is None
            ):
                return "SPLIT"
            return "TARGETING_MATCH"
        if kind == "TARGET_MATCH":
            return "TARGETING_MATCH"
        if kind == "FALLTHROUGH":
            if flag is None:
                return "DEFAULT"
            if flag.fallthrough is not None and flag.fallthrough.fixed is None:
                return "SPLIT"
            if not (flag.prerequisites or flag.targets or flag.rules):
                return "STATIC"
            return "DEFAULT"
        return str(kind)

    def context_from(
        self,
        targeting_key: JSONValue,
        attributes: Mapping[str, Any],
        logger: logging.Logger | None = None,
    ) -> Context:
        """LaunchDarkly's context from a JSON body (``_ofcontext.context_from``)."""
        return context_from(targeting_key, attributes, logger=logger or _logger)

    def is_large(self, definition: JSONValue) -> bool:
        """Never: a LaunchDarkly flag compiles on its first evaluation, at once."""
        return False

    def prebuild(self, definitions: list[tuple[str, JSONValue]]) -> None:
        """Nothing to build ahead (:meth:`is_large` is never true)."""

    def summary_text(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> str:
        """On or off, and what it serves (``_words.summary_text``)."""
        return _words.summary_text(definition)

    def details(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        flags: Mapping[str, Mapping[str, JSONValue]],
        segments: Collection[str] | None,
    ) -> JSONObject:
        """Its variations, off, fallthrough, targets, rules and prerequisites in words."""
        return _words.details(definition, flags, segments)

    def reason_text(
        self,
        reason: Mapping[str, JSONValue],
        flag: Mapping[str, JSONValue] | None,
        variation: int | None,
    ) -> str | None:
        """LaunchDarkly's reasons in words (``rule 2 matched``)."""
        return _words.reason_text(reason, flag, variation)

    def __repr__(self) -> str:
        return "<flag system launchdarkly>"

    # The tools' questions (``_tools.py``): codegen, the console, cleanup.
    def values(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> list[JSONValue]:
        """Its variations."""
        return _tools.values(definition)

    def value_names(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> list[str] | None:
        """None: its variations are numbered."""
        return None

    def description(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> str | None:
        """The flag file's ``description``."""
        said = definition.get("description")
        return said if isinstance(said, str) else None

    def code_default(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        values: Sequence[JSONValue],
    ) -> tuple[JSONValue, str]:
        """Its off variation, else its first."""
        return _tools.code_default(definition, values)

    def served_index(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> int | str | None:
        """Its fallthrough's variation, or ``"rules"``, ``"rollout"``, None."""
        return _tools.served_index(definition)

    def serve_one_asks(
        self,
        key: str,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
    ) -> str | None:
        """Whether it has rules or individual targets, which one variation drops."""
        return _tools.serve_one_asks(key, definition)

    def changed(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        on: bool | None,
        index: int | None,
    ) -> JSONObject:
        """``on`` switched; variation ``index`` its fallthrough, targets and rules dropped."""
        return _tools.changed(definition, on, index)

    def settled_refusals(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        value: JSONValue,
        subject: str,
    ) -> list[str]:
        """Off, prerequisites, targets, rules, a rollout, another variation."""
        return _tools.settled_refusals(definition, value, subject)

    # What the store asks of what its flags share: nothing (they name their
    # prerequisites and segments themselves). (Functions of the evaluation's
    # layer: ingest never calls up into this one.)
    shared_keys = staticmethod(no_shared_keys)
    link = staticmethod(link_nothing)


#: LaunchDarkly's system (``aioflags._systems`` registers it).
LAUNCHDARKLY: Final = LaunchDarkly()
