"""``LensConfig``: which secrets sign lens tokens, which flags they may override."""

from __future__ import annotations

import fnmatch
import importlib.util
from typing import TYPE_CHECKING, final

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["MIN_SECRET_BYTES", "LensConfig", "allowed", "secret_bytes"]

#: The shortest secret accepted: HS256's own size (RFC 7518, section 3.2);
#: a shorter one can be guessed offline from any token signed with it.
MIN_SECRET_BYTES = 32


def secret_bytes(value: str | bytes) -> bytes:
    r"""A lens secret as the lens uses it: its bytes, its trailing line ending left out.

    The one way every part reads a secret: ``LensConfig``, :func:`mint`,
    ``aioflags lens mint`` and ``inspect``, ``serve --lens-secret-file``
    (issue 86, T3). A file written by ``echo`` ends in a newline, and
    ``Path.read_text()`` keeps it: ``"s3cret\n"`` and ``"s3cret"`` are one
    secret, everywhere. ``str`` is read as UTF-8.

    Raises:
        ConfigurationError: not ``str`` or ``bytes``, or shorter than
            :data:`MIN_SECRET_BYTES` (its line ending not counted).
    """
    given: object = value  # (callers may not be typed)
    if isinstance(given, str):
        secret = given.encode()
    elif isinstance(given, bytes):
        secret = given
    else:
        raise ConfigurationError(
            f"a lens secret is str or bytes, got {type(given).__name__}"
        )
    secret = secret.rstrip(b"\r\n")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"a lens secret must be at least {MIN_SECRET_BYTES} bytes (HS256's"
            f" key size), got {len(secret)}: make one with"
            " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return secret


@final
class LensConfig(Frozen):
    """The flag lens of a :class:`~aioflags.Config`: ``Config(lens=LensConfig(...))``.

    Requests that carry a token signed with one of ``secrets`` see the
    token's variations of the flags ``allow`` lets it override (docs/lens.md).

    Args:
        secrets: the HS256 secrets, at least 32 bytes each (``str`` is read
            as UTF-8; a trailing newline, as a file read with ``read_text()``
            has, is not part of the secret). The first one signs (``aioflags lens mint``, the
            console); any of them verifies: to rotate, put the new one
            first, and drop the old one once its tokens expired.
        allow: glob patterns (``fnmatch``'s, case-sensitive) of the flag
            keys a token may override: ``["new-checkout", "checkout-*"]``.
            Required, with no default: a flag not listed (a kill switch,
            say) is out of every token's reach.
        max_ttl: the longest lifetime, in seconds from its ``iat`` to its
            ``exp``, of a token accepted (default one hour).

    Raises:
        ConfigurationError: an empty list, a short secret, a pattern that is
            not a non-empty string, or a ``max_ttl`` that is not positive.

    Added in version 0.2.0.
    """

    __slots__ = ("secrets", "allow", "max_ttl")  # noqa: RUF023 - fields in order
    _hidden = ("secrets",)  # never in logs
    secrets: tuple[bytes, ...]
    allow: tuple[str, ...]
    max_ttl: float

    def __init__(
        self,
        *,
        secrets: Iterable[str | bytes],
        allow: Iterable[str],
        max_ttl: float = 3600,
    ) -> None:
        given: tuple[object, object] = (secrets, allow)  # (callers may not be typed)
        if isinstance(given[0], (str, bytes)) or isinstance(given[1], str):
            raise ConfigurationError(
                "LensConfig(secrets=..., allow=...) take lists: secrets=[secret],"
                ' allow=["flag-key", "prefix-*"]'
            )
        kept = tuple(secret_bytes(secret) for secret in secrets)
        if not kept:
            raise ConfigurationError("LensConfig needs at least one secret")
        patterns = tuple(allow)
        if not patterns:
            raise ConfigurationError(
                "LensConfig(allow=[...]) lists the flags a token may override"
                ' (glob patterns such as "checkout-*"); it has no default'
            )
        for pattern in patterns:
            seen: object = pattern  # (callers may not be typed)
            if not isinstance(seen, str) or not pattern:
                raise ConfigurationError(
                    f"LensConfig allow patterns are non-empty strings, got {pattern!r}"
                )
        ttl: object = max_ttl  # (callers may not be typed)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ConfigurationError(
                f"LensConfig max_ttl is a positive number of seconds, got {max_ttl!r}"
            )
        if importlib.util.find_spec("jwt") is None:  # said now, not at a token
            raise ConfigurationError(
                "the flag lens verifies tokens with PyJWT, which is not installed:"
                " pip install 'aioflags[lens]'"
            )
        set_field(self, "secrets", kept)
        set_field(self, "allow", patterns)
        set_field(self, "max_ttl", float(max_ttl))


def allowed(allow: Iterable[str], key: str) -> bool:
    """Whether ``allow`` (``LensConfig.allow``'s glob patterns) lets a token override flag ``key``.

    The one rule the lens applies and the console checks a link against:
    ``fnmatch``'s patterns, case-sensitive.
    """
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in allow)
