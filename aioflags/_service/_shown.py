"""Text as the flag console shows it: bidirectional controls written out, long text cut.

What a flag file or an SDK's event says (a key, a value, a reason) is
shown by the console's page; :func:`visible` keeps a key from being made to
read as another, :func:`cut` keeps the page's state, and the evaluations
log's memory, bounded.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["TEXT_LIMIT", "cut", "visible"]

#: A value or key longer than this is shown cut (the log's memory stays bounded).
TEXT_LIMIT: Final = 200

#: Bidirectional controls: shown as ``⟨U+202E⟩``, never obeyed, so a key
#: cannot be made to read as another (``admin\u202eresu`` as ``adminuser``).
_BIDI: Final = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with its bidirectional control characters written out."""
    return _BIDI.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def cut(text: str) -> str:
    """``text`` as the console shows a key or a value: :func:`visible`, cut past :data:`TEXT_LIMIT`."""
    text = visible(text)
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"
