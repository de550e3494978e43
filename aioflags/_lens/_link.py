"""A lens link's two answers: its confirm page (GET), its redemption (POST).

A link is ``https://app/page?q=1&aioflags_lens#aioflags_lens=TOKEN``
(``_web.with_token``). The token is in the fragment, which a browser never
sends to a server nor puts in ``Referer``: no access log, proxy log or
other site sees it. The middleware answers a request with the marker
itself, without calling the app, the same way for ASGI and aiohttp:

- ``GET`` (or any method but ``POST``): :func:`confirm_page`, a page whose
  own script takes the token out of the address bar and of this history
  entry (``history.replaceState``), shows what it asks for, and posts it
  (``token=...``, a form) to the same address when the user turns the lens
  on. Its Content-Security-Policy allows its inline script and style by
  hash and nothing else; no framing.
- ``POST``: :func:`redeem`. Same origin only (``Sec-Fetch-Site``,
  ``Origin`` against ``Host``), a body of 8 KiB at most, a token that
  verifies, and one its lens has not redeemed before (``Lens.redeem``):
  then a ``303`` to the clean URL, setting the cookie. Anything else is a
  small page that says what happened (403, 409, 413, 400, 503), never a
  cookie, never a 500.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import urllib.parse
from importlib import resources
from typing import TYPE_CHECKING, Final, final

from ._lens import warn
from ._token import Refusal
from ._web import set_cookie

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._lens import Lens

__all__ = ["MAX_FORM_BYTES", "Answer", "confirm_page", "redeem"]

#: The longest form a link's POST may send (a token is at most 4 KiB).
MAX_FORM_BYTES: Final = 8192

_COMMON: Final = (
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
)
#: The confirm page's: ``same-origin``, not ``no-referrer``, under which a
#: browser sends its form's POST with ``Origin: null`` (Fetch, "serializing
#: a request origin"), as a sandboxed page of any site would. A fragment is
#: never part of a referrer: the token is in none.
_CONFIRM_REFERRER: Final = "same-origin"


@final
class Answer:
    """One answer to a link's request: a status, its headers, its body."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.status: int = status
        #: (name, value) pairs, visible ASCII only.
        self.headers: list[tuple[str, str]] = headers
        self.body: bytes = body


def _hash(text: str) -> str:
    """A CSP source for an inline element of exactly this ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@functools.cache
def _pages() -> tuple[str, str, str, str]:
    """The confirm page's and the notice's templates, and each one's CSP."""
    folder = resources.files(__package__).joinpath("page")
    style = folder.joinpath("page.css").read_text("utf-8")
    script = folder.joinpath("confirm.js").read_text("utf-8")
    confirm = (
        folder.joinpath("confirm.html")
        .read_text("utf-8")
        .replace("{{style}}", style)
        .replace("{{script}}", script)
    )
    notice = folder.joinpath("notice.html").read_text("utf-8")
    notice = notice.replace("{{style}}", style)
    rest = "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    styled = f"style-src {_hash(style)}; {rest}"
    confirm_csp = f"default-src 'none'; script-src {_hash(script)}; {styled}"
    notice_csp = f"default-src 'none'; {styled}"
    return confirm, confirm_csp, notice, notice_csp


def _html(status: int, text: str, csp: str, referrer: str = "no-referrer") -> Answer:
    body = text.encode()
    headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("content-length", str(len(body))),
        ("content-security-policy", csp),
        ("referrer-policy", referrer),
        *_COMMON,
    ]
    return Answer(status, headers, body)


def confirm_page(clean: str) -> Answer:
    """The page a link's ``GET`` is answered with; ``clean``: the URL without the marker."""
    template, csp, _, _ = _pages()
    page = template.replace("{{clean}}", html.escape(clean))
    return _html(200, page, csp, _CONFIRM_REFERRER)


def notice(status: int, title: str, message: str, clean: str) -> Answer:
    """A small page (no script) that says why the lens was not turned on."""
    _, _, template, csp = _pages()
    text = (
        template.replace("{{title}}", html.escape(title))
        .replace("{{message}}", html.escape(message))
        .replace("{{clean}}", html.escape(clean))
    )
    return _html(status, text, csp)


def foreign(header: Callable[[str], str | None]) -> str | None:
    """Why a link's ``POST`` is not from the link's own page (None: it is, or may be).

    A browser says where a request comes from: ``Sec-Fetch-Site`` (only
    ``same-origin`` passes) and ``Origin`` (its host and port must be the
    request's ``Host``). A client that sends neither (not a browser) passes.
    """
    site = header("sec-fetch-site")
    if site is not None and site.strip().lower() != "same-origin":
        return f"Sec-Fetch-Site: {site.strip()[:40]}"
    origin = header("origin")
    if origin is not None and not _same_host(origin.strip(), header("host")):
        return "its Origin is not this host"
    return None


def _same_host(origin: str, host: str | None) -> bool:
    """Whether ``origin`` names the host and port of the ``Host`` header ``host``."""
    try:
        parts = urllib.parse.urlsplit(origin)
        parts.port  # noqa: B018 - (raises for a port that is no number)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or host is None:
        return False
    default = ":443" if parts.scheme == "https" else ":80"
    named = parts.netloc.lower().removesuffix(default)
    return named == host.strip().lower().removesuffix(default)


def _form_token(body: bytes) -> str | None:
    """The ``token`` field of a form body (None: none)."""
    try:
        fields = urllib.parse.parse_qsl(
            body.decode("ascii"), keep_blank_values=True, max_num_fields=8
        )
    except (UnicodeDecodeError, ValueError):
        return None
    for name, value in fields:
        if name == "token" and value.strip():
            return value.strip()
    return None


async def redeem(
    lens: Lens,
    exists: Callable[[str], bool] | None,
    clean: str,
    header: Callable[[str], str | None],
    read: Callable[[int], Awaitable[bytes | None]],
    secure: bool,
) -> Answer | None:
    """Answer a link's ``POST``: the cookie set if its token may be redeemed now.

    ``clean``: the URL without the marker (the only place it redirects to);
    ``header``: a request header by its lower-case name; ``read(limit)``:
    the body, read until it ends or is longer than ``limit`` (None: the
    client left, and nothing is answered); ``secure``: an https request
    (the cookie is ``Secure``).
    """
    why = foreign(header)
    if why is not None:
        warn(
            "cross-site",
            "aioflags lens: a link's form was posted from another site (%s): refused",
            why,
        )
        return notice(
            403,
            "The lens was not turned on",
            "The lens is turned on only from a link's own page on this site, and"
            " this request came from elsewhere. Open the link itself, then press"
            " Turn on the lens.",
            clean,
        )
    length = header("content-length")
    if length is not None:
        length = length.strip()
        if not (length.isascii() and length.isdigit()):
            return notice(
                400, "Not a lens form", "Its Content-Length is no number.", clean
            )
        if len(length) > 9 or int(length) > MAX_FORM_BYTES:
            return _too_large(clean)
    body = await read(MAX_FORM_BYTES)
    if body is None:
        return None
    if len(body) > MAX_FORM_BYTES:
        return _too_large(clean)
    token = _form_token(body)
    if token is None:
        return notice(
            400, "Not a lens form", "The form carries no lens token (token=...).", clean
        )
    view = lens.check(token, exists)
    if isinstance(view, Refusal):
        return notice(
            403,
            "The lens was not turned on",
            f"This link's token was refused ({view.cause}): ask for a new link.",
            clean,
        )
    outcome = lens.redeem(token, view.expires)
    if outcome == "used":
        warn(
            "replayed",
            "aioflags lens: link %s was followed again: a link turns the lens on once",
            view.jti,
        )
        return notice(
            409,
            "This link was used already",
            "A lens link turns the lens on once, in the browser that followed it"
            " first. If that was not you, ask for a new link.",
            clean,
        )
    if outcome == "full":
        warn(
            "redeemed",
            "aioflags lens: link %s refused: this process remembers the links it"
            " redeemed until they expire, and holds as many as it may",
            view.jti,
        )
        return notice(
            503,
            "The lens was not turned on",
            "Too many lens links were turned on here recently: try again later.",
            clean,
        )
    headers = [
        ("location", clean),
        ("content-length", "0"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("set-cookie", set_cookie(token, view, secure)),
    ]
    return Answer(303, headers, b"")


def _too_large(clean: str) -> Answer:
    warn("form", "aioflags lens: a link's form over %d bytes: refused", MAX_FORM_BYTES)
    return notice(
        413,
        "Not a lens form",
        f"The form is larger than a lens link's ({MAX_FORM_BYTES} bytes at most).",
        clean,
    )
