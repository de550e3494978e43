"""flagd's flag system: its flags as flagd and its providers evaluate them (flagd.md)."""

from __future__ import annotations

from ._system import FLAGD, Flagd

__all__ = ["FLAGD", "Flagd"]
