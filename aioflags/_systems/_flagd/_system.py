"""flagd's system object: how its flags compile, type, fail, and read to OpenFeature and OFREP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

from aioflags._client._ofcontext import given_context_from
from aioflags._evaluation._data import EMPTY

from . import _coverage, _tools, _words
from ._configuration import FLAGD_CONFIGURATION
from ._data._definitions import shared_keys
from ._data._shared import link
from ._document import FLAGD_DOCUMENT
from ._engine._compile import (
    GENERAL_RESULT,
    PARSE_ERROR_RESULT,
    compile_flagd_flag,
    large_targeting,
    prebuild_flagd,
)

if TYPE_CHECKING:
    import logging
    from collections.abc import Collection, Mapping, Sequence

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._model import CompiledFlag, Split
    from aioflags._evaluation._results import Result
    from aioflags._evaluation._system_parts import DocumentFormat, SystemConfiguration

__all__ = ["FLAGD", "Flagd", "typed_check"]


def typed_check(value: JSONValue, kind: type) -> tuple[bool, JSONValue]:
    """Flagd's type rules, as its providers apply them: no number becomes another.

    An integer suits a float method (as a float); a float never suits an
    integer one (0.5 is a type mismatch, not 0), a boolean is no number.
    Reached only for a value whose type is not ``kind`` (the pipeline's
    ``typed`` passes those as they are).
    """
    tv = type(value)
    if kind is float and tv is int:
        return True, float(value)
    return tv is kind, value


@final
class Flagd:
    """flagd's flags: a flag object's ``"flagd"`` part (``_data/_definitions.py`` makes them).

    Its reasons are flagd's (``STATIC``, ``TARGETING_MATCH``, ``DEFAULT``,
    ``DISABLED``), its errors PARSE_ERROR (a definition flagd cannot
    evaluate) and GENERAL (an evaluation that failed), its type step
    flagd's (:func:`typed_check`), its variant the variant's name, its
    metadata the flag's own merged over its flag set's, its context
    flagd's (no targeting key needed; every attribute is one of flagd's).
    """

    __slots__ = ()

    name: str = "flagd"
    part: str | None = "flagd"
    unusable: Result = PARSE_ERROR_RESULT
    failed: Result = GENERAL_RESULT
    #: OpenFeature's Python OFREP provider needs a ``variant`` in every
    #: answer: a disabled flag reads as disabled there, not as an error
    unserved_variant: str | None = ""
    error_kinds: frozenset[str] = frozenset(("PARSE_ERROR", "GENERAL"))
    events_recorded: bool = False
    #: its files (``_document.py``): the file reader, ``validate``, ``schema``
    document: DocumentFormat | None = FLAGD_DOCUMENT
    #: ``DataSystem.flagd()``'s options, the ``FLAGD_*`` variables
    #: (``_configuration.py``): ``Config.from_env``, the docs' tables
    configuration: SystemConfiguration | None = FLAGD_CONFIGURATION
    compile = staticmethod(compile_flagd_flag)
    typed_check = staticmethod(typed_check)
    branches = staticmethod(_coverage.branches)
    branch_taken = staticmethod(_coverage.branch_taken)

    def splits(self, flag: CompiledFlag) -> tuple[Split, ...]:
        """Its targeting's ``fractional``s that are a branch's value, as compiled (``_engine._compile``)."""
        return flag.compiled_splits

    def variant(self, flag: CompiledFlag | None, index: int) -> str:
        """The variant's name (``"on"``, ``"blue"``)."""
        names = None if flag is None else flag.variant_names
        if names is not None and index < len(names):
            return names[index]
        return str(index)

    def metadata(self, flag: CompiledFlag | None) -> Mapping[str, JSONValue]:
        """The flag's metadata, its flag set's merged under its own (read-only)."""
        metadata = None if flag is None else flag.flag_metadata
        return EMPTY if metadata is None else metadata

    def ofrep_metadata(
        self, flag: CompiledFlag | None, version: int, reason: Mapping[str, Any]
    ) -> dict[str, JSONValue]:
        """The flag's own metadata (:meth:`metadata`), a fresh dict."""
        return dict(self.metadata(flag))

    def reason_word(self, flag: CompiledFlag | None, reason: Mapping[str, Any]) -> str:
        """Flagd's reasons are OpenFeature's words already."""
        return str(reason["kind"])

    def context_from(
        self,
        targeting_key: JSONValue,
        attributes: Mapping[str, Any],
        logger: logging.Logger | None = None,
    ) -> Context:
        """Flagd's context of a JSON body's or OpenFeature's attributes (``_ofcontext.given_context_from``)."""
        return given_context_from(targeting_key, attributes)

    def is_large(self, definition: JSONValue) -> bool:
        """A targeting of 2,000 nodes or more (``_engine._compile.large_targeting``)."""
        return large_targeting(definition)

    def prebuild(self, definitions: list[tuple[str, JSONValue]]) -> None:
        """Their targeting built ahead (``_engine._compile.prebuild_flagd``)."""
        prebuild_flagd([(k, d) for k, d in definitions if isinstance(d, dict)])

    def summary_text(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> str:
        """Its state, and what it serves (``_words.summary_text``)."""
        return _words.summary_text(flag, definition)

    def details(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        flags: Mapping[str, Mapping[str, JSONValue]],
        segments: Collection[str] | None,
    ) -> JSONObject:
        """Its variants by name, what it serves, and flagd's own fields in words."""
        return _words.details(flag, definition, flags, segments)

    def reason_text(
        self,
        reason: Mapping[str, JSONValue],
        flag: Mapping[str, JSONValue] | None,
        variation: int | None,
    ) -> str | None:
        """Flagd's reasons in words (``static (the default variant)``)."""
        return _words.reason_text(reason, flag, variation)

    def __repr__(self) -> str:
        return "<flag system flagd>"

    # The tools' questions (``_tools.py``): codegen, the console, cleanup.
    def values(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> list[JSONValue]:
        """Its variants' values."""
        return _tools.values(definition)

    def value_names(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> list[str] | None:
        """Its variants' names."""
        return _tools.value_names(definition)

    def description(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> str | None:
        """Its metadata's ``description``."""
        return _tools.description(definition)

    def code_default(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        values: Sequence[JSONValue],
    ) -> tuple[JSONValue, str]:
        """Its default variant's value, else its first variant's."""
        return _tools.code_default(definition, values)

    def served_index(
        self, flag: Mapping[str, JSONValue], definition: Mapping[str, JSONValue]
    ) -> int | str | None:
        """Its default variant's index, or ``"rules"`` (targeting), None."""
        return _tools.served_index(definition)

    def serve_one_asks(
        self,
        key: str,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
    ) -> str | None:
        """Whether it has targeting, which one variant served to everyone drops."""
        return _tools.serve_one_asks(key, definition)

    def changed(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        on: bool | None,
        index: int | None,
    ) -> JSONObject:
        """Its state switched; variant ``index`` its default variant, targeting dropped."""
        return _tools.changed(flag, definition, on, index)

    def settled_refusals(
        self,
        flag: Mapping[str, JSONValue],
        definition: Mapping[str, JSONValue],
        value: JSONValue,
        subject: str,
    ) -> list[str]:
        """DISABLED, targeting, no default variant, another value."""
        return _tools.settled_refusals(definition, value, subject)

    # What the store asks of what its flags share: a document's
    # ``$evaluators``, a sync server's ``sync_context``, carried once as
    # shared items. (Functions of the layers below: ingest never calls up
    # into this one.)
    shared_keys = staticmethod(shared_keys)
    link = staticmethod(link)


#: flagd's system (``aioflags._systems`` registers it).
FLAGD: Final = Flagd()
