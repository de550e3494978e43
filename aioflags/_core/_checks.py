"""The checks every constructor of options shares: each raises ConfigurationError.

``Config``, ``DataSystem`` and the source factories (``aioflags.sources``)
take options from callers that may not be typed. A value of the wrong type
must fail where it is given, with a message that names the option, not later
inside the client's task (a ``TypeError`` from a comparison, a truthy
``"false"``). ``name`` is how the message names the option: ``"offline"``, or
``"DataSystem.polling(interval=...)"`` for an argument of a factory.
"""

from __future__ import annotations

import re
from typing import Final

from aioflags._core._exceptions import ConfigurationError

__all__ = ["check_bool", "check_seconds", "check_url", "header_value"]

#: Visible ASCII, spaces only inside (or nothing): what every HTTP stack
#: sends as a header value as it is (httpx encodes values as ASCII; h11
#: refuses control characters and outer spaces).
_HEADER_VALUE: Final = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")


def header_value(value: str) -> bool:
    """Whether ``value`` can be sent as an HTTP header value as it is."""
    return _HEADER_VALUE.fullmatch(value) is not None


def check_bool(name: str, value: object, *, text_hint: str = "") -> None:
    """``value`` is ``True`` or ``False``, not merely truthy (``"false"`` is)."""
    if not isinstance(value, bool):
        hint = text_hint if isinstance(value, str) else ""
        raise ConfigurationError(f"{name} must be True or False, got {value!r}{hint}")


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> None:
    """``value`` is a number of seconds, > 0 (or >= 0); infinity is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    # Written so that NaN fails too (every comparison with NaN is false).
    if not (value > 0 or (allow_zero and value == 0)):
        raise ConfigurationError(
            f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}"
        )


def check_url(name: str, value: object) -> str:
    """``value`` is an ``http://`` or ``https://`` URL; returned without a trailing ``/``."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"{name} must be an http:// or https:// URL, got {value!r}"
        )
    return value.rstrip("/")
