"""The door of every evaluation: what is answered when it cannot run a flag's code.

An evaluation runs a flag's code for a valid :class:`Context` and a flag
that exists in a ready snapshot. Everything else is answered here, in one
place (:func:`other`): a snapshot that is not ready (CLIENT_NOT_READY), no
or an invalid Context (USER_NOT_SPECIFIED), a key that is not a str or
that no flag has (FLAG_NOT_FOUND), each logged once per reason, and
counted as analytics events count them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol, TypeGuard, TypeVar

from aioflags._core._logname import client_logger

from ._context import Context
from ._evaluate import ERROR_RESULTS, run_head
from ._logonce import Occurrences

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

    from ._evaluate import Matcher
    from ._results import Result

__all__ = ["Data", "Unknowns", "admits", "door", "other", "refused"]


def admits(context: object) -> TypeGuard[Context]:
    """Whether ``context`` is a valid Context: the door's test (all-flags state's too).

    An object that only claims the class (a mock's ``spec``) is not one:
    ``type()`` is the class it was made of.
    """
    return type(context) is Context and context._error is None


def door(context: Context | None, key: object) -> TypeGuard[Context]:
    """Whether an evaluation may run flag ``key``'s code: a valid Context and a str key.

    The first step of every evaluation (``_pipeline.Flags``). A ``str``
    subclass (a ``StrEnum`` member) is a key too; anything else (``None``,
    a list) is the door's to answer (:func:`other`), as is no Context or
    an invalid one. (The Context test is :func:`admits`', written out:
    one call less on every evaluation.)
    """
    return (
        type(context) is Context
        and context._error is None
        and (key.__class__ is str or isinstance(key, str))
    )


class Data(Protocol):
    """What an evaluation reads of the flag data: a snapshot's (``_data.SnapshotData``).

    The pipeline's steps read :attr:`matcher` once per evaluation that the
    door lets through, and :attr:`initialized` only for one it turns away
    (:func:`other`). Both are plain attributes of an immutable value.
    """

    @property
    def initialized(self) -> bool:
        """Whether it holds data from a source (else: no flags, CLIENT_NOT_READY)."""
        ...

    @property
    def matcher(self) -> Matcher:
        """Its flags' heads, and the data their code reads (flags, segments, memberships)."""
        ...


logger = client_logger("aioflags.evaluation")
_MISUSED: set[str] = set()  # the argument types already logged as not a Context
R = TypeVar("R")


def _misused(context: object) -> bool:
    """Whether an evaluation got something other than a Context or None.

    Logged as a bug (:func:`_not_a_context`), not as a missing context.
    """
    return context is not None and type(context) is not Context


def _refused(context: object, answer: R) -> R:
    """The answer of an evaluation without a valid Context: what was wrong is logged once.

    Something other than a Context is logged at ERROR once per type (a
    bug); no context (``None``) and an invalid Context (an empty key, often
    from a request that had none) at WARNING, once per reason.
    """
    if context is None:
        _invalid_context("None", "got no context (None)")
    elif type(context) is not Context:
        _not_a_context(context, answer)
    elif context._error is not None:
        _invalid_context(context._error, f"got an invalid Context ({context._error})")
    return answer


#: The reasons evaluations got no valid context already logged (None, or a
#: Context's error): at most this many, then one line says further are not.
_MAX_INVALID_CONTEXTS: Final = 100
_INVALID_CONTEXTS: Final = Occurrences(_MAX_INVALID_CONTEXTS)


def _invalid_context(reason: str, got: str) -> None:
    """An evaluation got ``None`` or an invalid Context: warn once per ``reason``."""
    if reason in _INVALID_CONTEXTS:
        return  # the lock only for a reason not logged yet
    count = _INVALID_CONTEXTS.add(reason)
    if count == 1:
        logger.warning(
            "aioflags evaluation %s: the default is returned with "
            "USER_NOT_SPECIFIED. Pass a valid Context: Context.create(key) with "
            "a non-empty key, or Context.from_dict({...}); context.error says "
            "what is wrong with one (logged once per reason)",
            got,
        )
    elif count == 0 and _INVALID_CONTEXTS.newly_full():
        logger.warning(
            "%d reasons for an invalid context have been logged: further ones "
            "are not (their evaluations still return the default, "
            "USER_NOT_SPECIFIED)",
            _MAX_INVALID_CONTEXTS,
        )


def _not_a_context(context: object, answer: R) -> R:
    """An evaluation got something other than a Context: log once per type."""
    _once_per_type(
        _MISUSED,
        context,
        "aioflags evaluations take an aioflags.Context, got %s %r: the default "
        "is returned with USER_NOT_SPECIFIED. Use Context.create(key) or "
        "Context.from_dict({...}).",
    )
    return answer


_NOT_KEYS: set[str] = set()  # the key types already logged as not a str


def _not_a_key(key: object, answer: R) -> R:
    """An evaluation got a flag key that is not a str: log once per type.

    Checked at the door before any lookup (``key.__class__ is not str``
    first: a str subclass, a ``StrEnum`` member, is a key too): an
    unhashable key (a list) would otherwise raise from the lookup.
    """
    _once_per_type(
        _NOT_KEYS,
        key,
        "aioflags flag keys are str, got %s %r: the default is returned "
        "(FLAG_NOT_FOUND)",
    )
    return answer


def _once_per_type(seen: set[str], given: object, message: str) -> None:
    """Log ``message`` (``%s %r``: the type's name, ``given``) once per type in ``seen``."""
    kind = type(given).__name__
    if kind not in seen:
        seen.add(kind)
        logger.error(message, kind, given)


#: Unknown flag keys already logged: at most this many, then none are logged.
_MAX_UNKNOWN_KEYS: Final = 1000
_UNKNOWN_KEYS: Final = Occurrences(_MAX_UNKNOWN_KEYS)


def _unknown_flag(key: str, client: str | None) -> Result:
    """An evaluation of a key that no flag has: warn once per key and client (a typo?).

    ``client``: the label of the client evaluating (``_logname``), which
    the line names while two or more run; None: no client's.
    """
    seen = key if client is None else (client, key)
    if seen not in _UNKNOWN_KEYS:  # the lock only for a key not logged yet
        count = _UNKNOWN_KEYS.add(seen)
        extra = None if client is None else {"aioflags_client": client}
        if count == 1:
            logger.warning(
                "No flag %r in the flag data: the default is returned "
                "(FLAG_NOT_FOUND). A typo in the key, or a flag not created in "
                "this environment? (logged once per key)",
                key,
                extra=extra,
            )
        elif count == 0 and _UNKNOWN_KEYS.newly_full():
            logger.warning(
                "%d unknown flag keys have been logged: further unknown keys are "
                "not (their evaluations still return the default, FLAG_NOT_FOUND)",
                _MAX_UNKNOWN_KEYS,
                extra=extra,
            )
    return NOT_FOUND


NOT_READY: Final = ERROR_RESULTS["CLIENT_NOT_READY"]
NO_CONTEXT: Final = ERROR_RESULTS["USER_NOT_SPECIFIED"]
NOT_FOUND: Final = ERROR_RESULTS["FLAG_NOT_FOUND"]


class Unknowns(Protocol):
    """Where evaluations of flags that are not there are counted (analytics)."""

    def unknown(
        self, key: str, context: Context | None, default: JSONValue, result: Result, /
    ) -> None:
        """Count an evaluation of ``key`` that found no flag (or no data yet).

        ``context`` None: one that had no valid Context.
        """
        ...


def refused(context: object, answer: R) -> R:
    """``answer``, for an evaluation whose ``context`` is not a valid Context.

    What was wrong is logged (:func:`_refused`); for all-flags state,
    which has no flag key.
    """
    return _refused(context, answer)


def other(
    data: Data,
    key: str,
    context: Context | None,
    default: Any,
    unknowns: Unknowns | None,
    client: str | None = None,
) -> Result:
    """The result of an evaluation that the door or the flag lookup turned away.

    In order: a snapshot that is not ready (CLIENT_NOT_READY; a context
    that is not a Context at all is a bug, logged even then), no valid
    Context (USER_NOT_SPECIFIED), a key that is not a str, no such flag
    or a deleted one (FLAG_NOT_FOUND). ``unknowns`` (analytics events on,
    or counting for metrics) counts the evaluation when it has a str key
    (one with no valid Context for ``usage()`` and metrics only). A flag
    whose code could not be made is its head's EXCEPTION (logged there),
    counted against nothing. ``client``: the label of the client evaluating
    (its unknown keys are logged once per client, naming it).
    """
    ready = data.initialized
    if not admits(context):
        if ready or _misused(context):
            _refused(context, None)
        result = NO_CONTEXT if ready else NOT_READY
        if unknowns is not None and isinstance(key, str):  # (a StrEnum too)
            unknowns.unknown(key, None, default, result)
        return result
    given: object = key  # typed str; callers may not be
    if given.__class__ is not str and not isinstance(given, str):
        return _not_a_key(given, NOT_FOUND if ready else NOT_READY)
    if not ready:
        result = NOT_READY
    else:
        matcher = data.matcher
        head = matcher.find_head(key)
        if head is not None:  # a flag whose head raises: its EXCEPTION
            return run_head(head, key, context, matcher)
        # (a deleted flag is not logged: it was there)
        result = NOT_FOUND if key in matcher.flags else _unknown_flag(key, client)
    if unknowns is not None:
        unknowns.unknown(key, context, default, result)
    return result
