"""Big-segment membership as the evaluator asks it: the answer and the status word.

The lookup itself (the store, the LRU, the status poll) belongs to the data
system (``aioflags._datasystem._stores._bigsegments``); the evaluator only
calls :func:`unbounded_member` with whatever answers :class:`MembershipSource`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._context import Context
    from ._model import CompiledSegment

__all__ = [
    "HEALTHY",
    "NOT_CONFIGURED",
    "STALE",
    "STORE_ERROR",
    "MembershipSource",
    "unbounded_member",
    "worse",
]

HEALTHY: Final = "HEALTHY"
STALE: Final = "STALE"
NOT_CONFIGURED: Final = "NOT_CONFIGURED"
STORE_ERROR: Final = "STORE_ERROR"
#: When statuses differ within one evaluation, the reason reports the worst.
_RANK: Final = {None: -1, HEALTHY: 0, STALE: 1, NOT_CONFIGURED: 2, STORE_ERROR: 3}


class MembershipSource(Protocol):
    """What answers a context key's big-segment membership (``BigSegments``)."""

    def answer(self, key: str) -> tuple[Mapping[str, bool] | None, str]:
        """The key's membership (segment ref -> included) and the status word."""
        ...


def worse(current: str | None, new: str) -> str:
    """The less healthy of two big-segment statuses."""
    return new if _RANK[new] > _RANK[current] else current  # type: ignore[return-value]


def unbounded_member(
    big: MembershipSource | None,
    seg: CompiledSegment,
    ctx: Context,
    current: str | None,
) -> tuple[bool | None, str | None]:
    """An unbounded segment reached by an evaluation (shared/stores.md §6.2).

    Returns ``(answer, status)``: ``answer`` True/False decides (no rules are
    consulted), None means "evaluate the segment's rules"; ``status`` is the
    big-segment status for the reason (the worse of ``current`` and this
    lookup's). Without a generation nothing matches (NOT_CONFIGURED); a
    context without the segment's kind does not match and records nothing.
    In an awaited evaluation the source answers a cache miss as a store
    error for now and notes the key: that evaluation's result is dropped,
    and it runs again once the membership is fetched.
    """
    if seg.generation is None:
        return False, worse(current, NOT_CONFIGURED)
    part = ctx._parts.get(seg.unbounded_kind)
    if part is None:
        return False, current
    if big is None:
        return None, worse(current, NOT_CONFIGURED)
    membership, status = big.answer(part._key)
    status = worse(current, status)
    if membership is not None:
        member = membership.get(f"{seg.key}.g{seg.generation}")
        if member is not None:
            return member, status
    return None, status
