"""What both middlewares do with a request: find its token, clean a link, set the cookie.

Pure functions of the request's parts, shared by the ASGI middleware and
aiohttp's (``aioflags.lens``). A link is ``https://app/page?q=1&aioflags_lens#aioflags_lens=TOKEN``:
the bare ``aioflags_lens`` query marker says the middleware answers it (a
confirm page, ``_link``), and the token travels in the fragment, which a
browser never sends to a server (nor in ``Referer``).
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from typing import TYPE_CHECKING, Final

from aioflags._core._clock import wall_ms

from ._token import AUDIENCE

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._lens import View

__all__ = [
    "COOKIE",
    "HEADER",
    "PARAM",
    "TRACE_HEADER",
    "bearer_lens",
    "cookie_token",
    "fragment_token",
    "location",
    "marker",
    "set_cookie",
    "with_token",
]

#: The request header that carries a token.
HEADER: Final = "x-aioflags-lens"
#: The cookie that carries a token (set by a link).
COOKIE: Final = "aioflags_lens"
#: A link's query marker (bare: ``?aioflags_lens``), and the name of its token
#: in the link's fragment (``#aioflags_lens=TOKEN``).
PARAM: Final = "aioflags_lens"
#: The response header of a trace.
TRACE_HEADER: Final = "x-aioflags-trace"
# What a Location keeps as it is; everything else is percent-encoded
# (never a space, a control character or a non-ASCII byte in a header).
_SAFE_PATH: Final = "/%:@!$&'()*+,;=-._~"


def cookie_token(headers: Iterable[str]) -> str | None:
    """The lens cookie's value in these ``Cookie`` header values (None: none)."""
    for header in headers:
        for part in header.split(";"):
            name, sep, value = part.partition("=")
            if sep and name.strip() == COOKIE:
                return value.strip().strip('"')
    return None


def marker(query: str) -> tuple[bool, str]:
    """Whether ``query`` has a link's marker, and the rest of it as written.

    The marker is ``aioflags_lens``, bare or with a value: a value (an old
    form of link, the token in the query) is never used, only dropped. The
    rest keeps every other parameter as it was written, in order.
    """
    marked = False
    kept: list[str] = []
    for piece in query.split("&"):
        name = piece.partition("=")[0]
        if urllib.parse.unquote_plus(name) == PARAM:
            marked = True
            continue
        if piece:
            kept.append(piece)
    return marked, "&".join(kept)


def location(path: str, query: str) -> str:
    r"""The clean URL a link redirects to: this path (on this host) and ``query``.

    Both are the request's bytes as latin-1 text (each byte one character).
    Relative, and never protocol-relative: a path that begins ``//`` or
    ``/\\`` would send the browser to another host.
    """
    local = "/" + path.lstrip("/\\")
    quoted = urllib.parse.quote(local, safe=_SAFE_PATH, encoding="latin-1")
    clean_query = urllib.parse.quote(query, safe=_SAFE_PATH + "?", encoding="latin-1")
    return f"{quoted}?{clean_query}" if clean_query else quoted


def set_cookie(token: str, view: View, secure: bool, now: float | None = None) -> str:
    """The ``Set-Cookie`` value that keeps ``token`` until it expires."""
    moment = wall_ms() / 1000 if now is None else now
    age = max(0, int(view.expires - moment))
    cookie = f"{COOKIE}={token}; Path=/; Max-Age={age}; HttpOnly; SameSite=Lax"
    return f"{cookie}; Secure" if secure else cookie


def with_token(url: str, token: str) -> str:
    """A link to ``url`` that carries ``token``: the bare marker in its query, the token after ``#``.

    ``url``'s own query is kept; its fragment is replaced (a page's own
    ``#section`` does not survive the link).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url {url!r} is not an http(s) URL")
    kept = marker(parts.query)[1]  # (a marker already there: one is enough)
    query = f"{kept}&{PARAM}" if kept else PARAM
    return urllib.parse.urlunsplit(
        parts._replace(query=query, fragment=f"{PARAM}={token}")
    )


def fragment_token(url: str) -> str | None:
    """The token a link carries after ``#`` (None: none)."""
    fragment = urllib.parse.urlsplit(url).fragment
    for piece in fragment.split("&"):
        name, sep, value = piece.partition("=")
        if sep and urllib.parse.unquote(name) == PARAM:
            return urllib.parse.unquote(value)
    return None


def bearer_lens(authorization: str) -> bool:
    """Whether an ``Authorization`` value is ``Bearer`` and a lens token (row 118).

    The lens never reads ``Authorization``: it is the app's own, and its
    tokens are the app's. This only tells a lens token sent there (its
    claims read, not verified: its ``aud`` names the lens) so that the
    middleware can say where it goes.
    """
    scheme, _, token = authorization.strip().partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3 or len(token) > 4096:
        return False
    payload = parts[1]
    try:
        claims = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (binascii.Error, ValueError, RecursionError):  # (not ours to judge)
        return False
    audience = claims.get("aud") if isinstance(claims, dict) else None
    return audience == AUDIENCE or (isinstance(audience, list) and AUDIENCE in audience)
