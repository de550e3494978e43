"""What both middlewares do with a request: find its token, clean a link, set the cookie.

Pure functions of the request's parts, shared by the ASGI middleware and
aiohttp's (``aioflags.lens``).
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Final

from aioflags._core._clock import wall_ms

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._lens import View

__all__ = [
    "COOKIE",
    "HEADER",
    "PARAM",
    "TRACE_HEADER",
    "cookie_token",
    "link",
    "location",
    "set_cookie",
    "with_token",
]

#: The request header that carries a token.
HEADER: Final = "x-aioflags-lens"
#: The cookie that carries a token (set by a link).
COOKIE: Final = "aioflags_lens"
#: The query parameter of a one-time link.
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


def link(query: str) -> tuple[str | None, str]:
    """A one-time link's token in ``query`` (None: no such parameter), and the rest of it.

    The rest keeps every other parameter as it was written, in order.
    """
    token: str | None = None
    kept: list[str] = []
    for piece in query.split("&"):
        name = piece.partition("=")[0]
        if urllib.parse.unquote_plus(name) == PARAM:
            if token is None:
                token = urllib.parse.unquote_plus(piece.partition("=")[2])
            continue
        if piece:
            kept.append(piece)
    return token, "&".join(kept)


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
    """``url`` with the token as one more query parameter (its own query kept)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url {url!r} is not an http(s) URL")
    query = f"{parts.query}&" if parts.query else ""
    return urllib.parse.urlunsplit(
        parts._replace(query=f"{query}{PARAM}={token}", fragment=parts.fragment)
    )
