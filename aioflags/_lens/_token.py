"""Lens tokens: JWTs (RFC 7519) signed with HS256, verified and minted with PyJWT.

PyJWT (``aioflags[lens]``) is the JWT library most of the Python field
uses; it checks the signature in constant time (``hmac.compare_digest``),
the algorithm against the one allowed, and ``exp``, ``iat`` and ``aud``
with a leeway. This module adds the lens's own rules: the 4 KiB cap, the
longest lifetime, the claims' types, and the cause of each refusal
(the middleware logs one WARNING a minute per cause).
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from typing import TYPE_CHECKING, Any, Final, TypeGuard, final

from aioflags._core._clock import wall_ms

from ._config import secret_bytes

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from aioflags._core._json import JSONValue

__all__ = [
    "AUDIENCE",
    "LEEWAY",
    "MAX_TOKEN_BYTES",
    "Claims",
    "Refusal",
    "a_time",
    "jwt",
    "mint",
    "verify",
]

#: The audience every lens token names, so that another JWT signed with the
#: same secret (a session's, say) is never taken for one.
AUDIENCE: Final = "aioflags-lens"
#: Seconds of clock skew allowed on ``exp`` and ``iat``.
LEEWAY: Final = 30
#: The longest token accepted (a header or a cookie stays well within
#: servers' limits).
MAX_TOKEN_BYTES: Final = 4096
#: A JWT's compact form: three base64url segments, unpadded (the signature's
#: may be empty, as alg "none" has it). Checked here, whatever PyJWT's
#: release forgives (trailing "=", or, in older ones, any character outside
#: base64url): a token that verifies is safe to write in a cookie as it is,
#: and ``sig=`` is not a second spelling of ``sig``.
_COMPACT: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def jwt() -> Any:
    """PyJWT, or an ImportError that says how to install it."""
    try:
        import jwt as pyjwt
    except ImportError as missing:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "the flag lens verifies tokens with PyJWT: pip install 'aioflags[lens]'"
        ) from missing
    return pyjwt


@final
class Claims:
    """A verified token's claims, as the lens uses them."""

    __slots__ = ("exp", "flags", "jti", "sub", "trace")

    def __init__(
        self,
        jti: str,
        flags: dict[str, JSONValue],
        sub: str | None,
        trace: bool,
        exp: float,
    ) -> None:
        #: The token's id for logs and reasons (a hash of it when it has none).
        self.jti: str = jti
        #: Flag key -> the value to serve (not yet checked against ``allow``).
        self.flags: dict[str, JSONValue] = flags
        #: The context key the overrides are limited to (None: any context).
        self.sub: str | None = sub
        #: Whether the response carries the request's trace.
        self.trace: bool = trace
        #: When it expires (epoch seconds).
        self.exp: float = exp


@final
class Refusal:
    """Why a token was refused: a cause (one WARNING a minute each) and the detail."""

    __slots__ = ("cause", "why")

    #: The causes, as the contract names them.
    CAUSES: Final = (
        "forged",
        "expired",
        "algorithm",
        "audience",
        "malformed",
        "oversized",
    )

    def __init__(self, cause: str, why: str) -> None:
        self.cause: str = cause
        self.why: str = why

    def __repr__(self) -> str:
        return f"Refusal({self.cause!r}, {self.why!r})"


def _id_of(token: str) -> str:
    """A short id for a token without ``jti`` (never the token itself)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def verify(
    token: str, secrets: Sequence[bytes], max_ttl: float, now: float | None = None
) -> Claims | Refusal:
    """``token``'s claims if one of ``secrets`` signed it and every rule holds; else why not."""
    if len(token) > MAX_TOKEN_BYTES:
        return Refusal("oversized", f"{len(token)} bytes, over {MAX_TOKEN_BYTES}")
    if _COMPACT.fullmatch(token) is None:
        return Refusal("malformed", "not a JWT (three base64url segments)")
    pyjwt = jwt()
    try:
        header = pyjwt.get_unverified_header(token)
    except pyjwt.InvalidTokenError as exc:
        return Refusal("malformed", f"not a JWT ({exc})")
    alg = header.get("alg")
    if alg != "HS256":
        return Refusal("algorithm", f"alg {alg!r}: only HS256 is accepted")
    moment = wall_ms() / 1000 if now is None else now
    claims: Mapping[str, Any] | None = None
    for secret in secrets:
        try:
            claims = pyjwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                leeway=LEEWAY,
                # (the times are checked below, against ``now``)
                options={
                    "require": ["exp", "iat", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
            break
        except pyjwt.InvalidSignatureError:
            continue  # another secret may have signed it
        except (pyjwt.InvalidAudienceError, pyjwt.MissingRequiredClaimError) as exc:
            if "aud" in str(exc) or isinstance(exc, pyjwt.InvalidAudienceError):
                return Refusal("audience", f"not for {AUDIENCE!r} ({exc})")
            return Refusal("malformed", str(exc))
        except pyjwt.InvalidTokenError as exc:
            return Refusal("malformed", str(exc))
    if claims is None:
        return Refusal("forged", "its signature matches none of the lens secrets")
    return _checked(token, claims, max_ttl, moment)


#: The largest time a token may name, in epoch seconds (year ~33,658).
_MAX_SECONDS: Final = 10**12


def a_time(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a time a token may name: a finite number of seconds, in range.

    (``aioflags lens inspect`` shows only such times as dates.)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return -_MAX_SECONDS <= value <= _MAX_SECONDS
    return math.isfinite(value) and -_MAX_SECONDS <= value <= _MAX_SECONDS


def _checked(
    token: str, claims: Mapping[str, Any], max_ttl: float, now: float
) -> Claims | Refusal:
    """The lens's own rules over verified ``claims``."""
    exp, iat = claims["exp"], claims["iat"]
    if not (a_time(exp) and a_time(iat)):
        # (NaN compares false with every time: it would never expire; an
        # integer past a float's range made math.isfinite raise: a 500)
        return Refusal("malformed", "exp and iat are finite numbers")
    if now >= exp + LEEWAY:
        return Refusal("expired", "its exp has passed")
    if iat > now + LEEWAY:
        return Refusal("expired", "issued in the future (iat)")
    nbf = claims.get("nbf")  # (optional: RFC 7519's "not before")
    if nbf is not None:
        if not a_time(nbf):
            return Refusal("malformed", "nbf is a finite number")
        if nbf > now + LEEWAY:
            return Refusal("expired", "not valid yet (nbf)")
    if exp - iat > max_ttl:
        return Refusal(
            "expired",
            f"it lives {exp - iat:.0f} s, longer than max_ttl {max_ttl:.0f} s",
        )
    flags = claims.get("flags", {})
    sub = claims.get("sub")
    trace = claims.get("trace", False)
    jti = claims.get("jti")
    if not isinstance(flags, dict) or not all(isinstance(k, str) for k in flags):
        return Refusal("malformed", "flags is an object of flag keys")
    if sub is not None and not isinstance(sub, str):
        return Refusal("malformed", "sub is a context key (a string)")
    if not isinstance(trace, bool):
        return Refusal("malformed", "trace is true or false")
    if jti is not None and (not isinstance(jti, str) or len(jti) > 128):
        return Refusal("malformed", "jti is a string of at most 128 characters")
    return Claims(jti or _id_of(token), dict(flags), sub, trace, float(exp))


def mint(
    secret: str | bytes,
    flags: Mapping[str, JSONValue],
    *,
    ttl: float = 1800,
    context_key: str | None = None,
    trace: bool = False,
    now: float | None = None,
) -> str:
    """A lens token: ``flags`` served for ``ttl`` seconds, to ``context_key`` only if given.

    ``secret`` is the first of the app's ``LensConfig.secrets`` (it signs),
    read as ``LensConfig`` reads it (a trailing newline is not part of it).
    Any JWT library mints the same (HS256; claims ``aud`` =
    ``"aioflags-lens"``, ``exp``, ``iat``, ``jti``, ``flags``, optional
    ``sub`` and ``trace``): docs/lens.md.

    Raises:
        ConfigurationError: a secret no app accepts (under 32 bytes).
        ValueError: a ``ttl`` under 1 second.

    Added in version 0.2.0.
    """
    key = secret_bytes(secret)  # (a secret every app refuses: refused here too)
    lifetime: object = ttl  # (callers may not be typed)
    if (
        not isinstance(lifetime, (int, float))
        or isinstance(lifetime, bool)
        or not lifetime >= 1
    ):
        raise ValueError(f"ttl is a number of seconds, at least 1, got {ttl!r}")
    issued = int(wall_ms() / 1000 if now is None else now)
    claims: dict[str, Any] = {
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + int(ttl),
        "jti": uuid.uuid4().hex[:16],
        "flags": dict(flags),
    }
    if context_key is not None:
        claims["sub"] = context_key
    if trace:
        claims["trace"] = True
    token: str = jwt().encode(claims, key, algorithm="HS256")
    return token
