"""Values as people write them: the words every system's console text is made of."""

from __future__ import annotations

import json

__all__ = ["whole", "written"]


def written(value: object) -> str:
    """A value as people write it: a string bare (``shadow``), anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return "…"


def whole(value: object) -> int | None:
    """``value`` if it is a JSON whole number (an ``int``, not a ``bool``), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
