"""Evaluation logging that cannot flood: once per key, then counted, in bounded memory.

An evaluation runs thousands of times a second, so whatever it logs is logged
once per key (an unknown flag key; a flag and the kind of its failure), not
once per evaluation; later occurrences are only counted. At most ``limit``
keys are remembered: past that, new keys are no longer remembered (nor logged
at WARNING), which the caller says once. Used from any number of threads (the
blocking client): a lock guards the counts, taken only off the hot path.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Hashable

__all__ = ["Occurrences"]


class Occurrences:
    """How many times each of at most ``limit`` keys has occurred."""

    __slots__ = ("_counts", "_limit", "_lock", "_refused")

    def __init__(self, limit: int) -> None:
        self._counts: dict[Hashable, int] = {}
        self._limit = limit
        self._lock = threading.Lock()
        self._refused = False  # a key was refused (full): said once

    def __contains__(self, key: Hashable) -> bool:
        return key in self._counts  # one dict read: atomic, no lock

    def add(self, key: Hashable) -> int:
        """Count one occurrence of ``key``; return its count (1: the first).

        Returns 0 when ``key`` is new and ``limit`` keys are remembered
        already: it is not counted (see :meth:`newly_full`).
        """
        with self._lock:
            count = self._counts.get(key, 0) + 1
            if count == 1 and len(self._counts) >= self._limit:
                return 0
            self._counts[key] = count
            return count

    def newly_full(self) -> bool:
        """After :meth:`add` returned 0: whether this is the first refusal (say so once)."""
        with self._lock:
            first, self._refused = not self._refused, True
            return first

    def clear(self) -> None:
        """Forget every key (for tests)."""
        with self._lock:
            self._counts.clear()
            self._refused = False
