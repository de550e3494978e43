"""What the OpenFeature provider answers: contexts mapped, errors raised, answers kept.

The private half of ``aioflags.openfeature`` (its provider's helpers), imported
by it alone: it needs the OpenFeature SDK, the ``openfeature`` extra.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from openfeature.exception import (
    FlagNotFoundError,
    GeneralError,
    InvalidContextError,
    ParseError,
    ProviderFatalError,
    ProviderNotReadyError,
    TargetingKeyMissingError,
    TypeMismatchError,
)
from openfeature.flag_evaluation import Reason

from aioflags._evaluation._pipeline import (
    BOOL_VARIATION_DETAIL,
    FLOAT_VARIATION_DETAIL,
    INT_VARIATION_DETAIL,
    JSON_VARIATION_DETAIL,
    STRING_VARIATION_DETAIL,
)

from ._events import ProviderStatus
from ._ofcontext import ContextError, given_context_from

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from openfeature.evaluation_context import EvaluationContext

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._model import CompiledFlag, FlagSystem
    from aioflags._evaluation._pipeline import Method
    from aioflags._evaluation._results import EvaluationDetail, Result
    from aioflags._evaluation._snapshot import FlagSnapshot

__all__ = [
    "KEPT_ANSWERS",
    "NO_ATTRIBUTES",
    "TYPED_DETAIL",
    "Answers",
    "answers_of",
    "context_for",
    "mapping",
    "raise_for",
    "reason",
    "refused",
]

#: ``aioflags.openfeature``'s logger (the same object): where a mapping
#: says what it dropped.
logger: logging.Logger = logging.getLogger("aioflags.openfeature")

#: The attributes of no context (None): none.
NO_ATTRIBUTES: Final[dict[str, Any]] = {}

#: OpenFeature's reason words, to hand back its own enum members.
REASONS: Final = {reason.value: reason for reason in Reason}


def refused(exc: ContextError) -> TargetingKeyMissingError | InvalidContextError:
    """The SDK's exception for a context a mapping refused (``exc``)."""
    if exc.code == "TARGETING_KEY_MISSING":
        return TargetingKeyMissingError(str(exc))
    return InvalidContextError(str(exc))


def context_for(
    system: FlagSystem | None, evaluation_context: EvaluationContext | None
) -> Context:
    """An OpenFeature context as ``system`` (the flag's; None: no flag) maps it.

    The flag's system maps it (``FlagSystem.context_from``, which makes
    OpenFeature's values JSON in its one pass). A key with no flag takes
    the attributes as given (``given_context_from``: no context refused
    for want of a key, the answer is FLAG_NOT_FOUND all the same).
    """
    key: str | None = None
    attributes: Mapping[str, Any] = NO_ATTRIBUTES
    if evaluation_context is not None:
        key, attributes = (
            evaluation_context.targeting_key,
            evaluation_context.attributes,
        )
    try:
        if system is None:
            return given_context_from(key, attributes)
        return system.context_from(key, attributes, logger)
    except ContextError as exc:
        raise refused(exc) from None


def mapping(system: FlagSystem | None) -> Callable[[EvaluationContext], Context]:
    """What maps an OpenFeature context (not None) for ``system``'s flags (None: a key with no flag).

    :func:`context_for`, with the system's mapping bound once: it runs
    for every context not kept (a new object per call: every call).
    """
    if system is None:
        return functools.partial(context_for, None)
    context_from = system.context_from

    def mapped(evaluation_context: EvaluationContext) -> Context:
        try:
            return context_from(
                evaluation_context.targeting_key, evaluation_context.attributes, logger
            )
        except ContextError as exc:
            raise refused(exc) from None

    return mapped


def reason(word: str) -> Reason | str:
    """OpenFeature's ``Reason`` member for ``word``; LaunchDarkly's own words as they are."""
    return REASONS.get(word, word)


def raise_for(detail: EvaluationDetail[Any], status: ProviderStatus) -> None:
    """Raise the SDK's exception for ``detail``'s error, if it has one (``status``: the client's)."""
    error = detail.reason.get("errorKind")
    if error is None:
        return
    if error == "FLAG_NOT_FOUND":
        raise FlagNotFoundError("no such flag")
    if error == "WRONG_TYPE":
        raise TypeMismatchError("the flag's value does not have the requested type")
    if error == "CLIENT_NOT_READY":
        if status is ProviderStatus.FATAL:
            raise ProviderFatalError("the aioflags client is FATAL")
        raise ProviderNotReadyError("the aioflags client has no flag data yet")
    if error in ("MALFORMED_FLAG", "PARSE_ERROR"):
        raise ParseError("the flag's configuration is malformed")
    if error == "USER_NOT_SPECIFIED":
        raise InvalidContextError("the evaluation context is not valid")
    raise GeneralError(f"evaluation failed: {error}")


#: What the provider answers of a result: (the result, the resolver kind,
#: ``FlagResolutionDetails``' arguments in its fields' order: the value, no
#: error code, no error message, the reason, the variant, the metadata).
Answers: TypeAlias = "tuple[Result, str, tuple[Any, None, None, Reason | str, str | None, Mapping[str, JSONValue]]]"


#: The snapshot's typed evaluation method for each resolver kind (what
#: its ``*_variation_detail`` methods answer with).
TYPED_DETAIL: Final[dict[str, Method[EvaluationDetail[Any]]]] = {
    "bool": BOOL_VARIATION_DETAIL,
    "int": INT_VARIATION_DETAIL,
    "float": FLOAT_VARIATION_DETAIL,
    "str": STRING_VARIATION_DETAIL,
    "object": JSON_VARIATION_DETAIL,
}

#: The answers a compiled flag keeps (``CompiledFlag.openfeature``); when
#: full, it starts over.
KEPT_ANSWERS: Final = 64


def answers_of(
    snapshot: FlagSnapshot,
    key: str,
    flag: CompiledFlag | None,
    result: Result,
    detail: EvaluationDetail[Any],
    kind: str,
    status: ProviderStatus,
) -> Answers:
    """What OpenFeature reports of ``detail`` (``result``'s), an evaluation of ``flag`` (``key``) for resolver ``kind``.

    Raises the SDK's exception for an error (:func:`raise_for`) or a value
    OpenFeature does not take for ``kind``. A result that serves a
    variation is a compiled flag's own, the same object at every
    evaluation that ends there, and a flag version's reasons, variants and
    metadata never change: its answers are kept on the flag
    (``CompiledFlag.openfeature``, by the result's identity; the entry
    holds the result, so that identity is not reused while it is kept).
    """
    raise_for(detail, status)
    value: Any = detail.value
    if kind == "float" and isinstance(value, int):
        value = float(value)
    elif kind == "object" and not isinstance(value, (dict, list)):
        raise TypeMismatchError("the flag's value is not an object or a list")
    if kind == "float" and isinstance(value, float) and not math.isfinite(value):
        raise TypeMismatchError("the flag's value is not a finite number")
    word, variant, metadata = snapshot.openfeature_details(key, detail)
    answers = (result, kind, (value, None, None, reason(word), variant, metadata))
    if flag is not None and result.variation_index is not None:
        kept = flag.openfeature
        if len(kept) >= KEPT_ANSWERS:
            kept.clear()
        kept[id(result)] = answers
    return answers
