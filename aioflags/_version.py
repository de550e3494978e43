"""The package version (read by hatchling and sent in the User-Agent header)."""

from __future__ import annotations

__version__ = "0.1.0"
