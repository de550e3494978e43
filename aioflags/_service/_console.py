"""The flag console of ``aioflags serve``: what it knows, and the rules it answers by.

The server (``_server.py``) owns the sockets and ``_console_app`` answers
the console's requests; this module holds its evaluations log (read by
``_evaluations``), the SDKs seen, the flags it changed (to reset them), its
token and rules, and writes its state (for the page's event stream too).
Its endpoints:

- ``GET /ui/`` (the page, ``console.js``, ``console.css``, shipped in
  ``console/`` as package data; ``favicon.svg``), ``GET /ui/api/state``
  (flags, evaluations, SDKs, the flag file's trouble), ``GET
  /ui/api/events`` (the same state as server-sent events, again on every
  change), ``GET /ui/api/flag?key=K`` (one flag's targeting in words),
  ``POST /ui/api/flag`` (``{"key": ..., "on": bool}`` and/or ``{"key": ...,
  "variation": int, "confirm": bool}``), ``POST /ui/api/reset``
  (``{"key": ...}``: back to the file) and ``POST /ui/api/evaluate``
  (``{"context": ..., "flag": ...}``: what the SDK's evaluator answers);
  with a lens secret (``aioflags serve --lens-secret-file``), ``POST
  /ui/api/lens`` (``{"url", "flags": [{"key", "variation"}], "ttl",
  "context_key", "trace"}``: a flag lens link, docs/lens.md), which also
  needs the lens key (``X-Aioflags-Lens-Key``: made at each start, printed
  by ``serve`` after the console's ``#``, never in a page); with a
  client's guards shown (``FlagServer.show_guards``), ``POST
  /ui/api/guards/<name>/release`` (``_banners``). The JSON contract with
  the page is in docs/console.md.
- Safety: a request whose ``Host`` is not a loopback name, nor the IP
  address the server is bound to, is refused (DNS rebinding); a state-changing request needs the page's token (the
  ``X-Aioflags-Token`` header) and no foreign ``Origin``; every response
  carries a ``Content-Security-Policy`` of ``default-src 'self'``.
- Changes live in the server until it restarts, or until ``serve`` reloads
  the flag file (the file then wins); nothing is written back to the file.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from aioflags._core._clock import wall_ms
from aioflags._lens._config import allowed

from . import _wire as wire
from . import _words as words
from ._evaluations import EvaluationsLog
from ._guard import is_allowed_host
from ._shown import cut, visible

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._evaluation._snapshot import FlagSnapshot

    from ._banners import ShownGuards

__all__ = ["EVENTS", "LENS_KEY_HEADER", "PREFIX", "Console", "sdk_identity"]

PREFIX: Final = "/ui"
EVENTS: Final = "/ui/api/events"
#: The lifetimes the console mints lens links for, at most (a day).
LENS_MAX_TTL: Final = 86400
_TOKEN_HEADER: Final = "x-aioflags-token"
#: The header of the lens key, which ``POST /ui/api/lens`` needs.
LENS_KEY_HEADER: Final = "x-aioflags-lens-key"
_COMPACT: Final = (",", ":")
#: A text of a flag's details longer than this is shown cut: a page laying out
#: a 10 MB variation written out twice stalls for many seconds.
DETAILS_TEXT: Final = 20_000
#: Tags shown per flag.
_TAGS: Final = 20
#: The SDKs listed: the most recently seen this many.
SDKS: Final = 50
#: Console pages (with the page's token) that may hold the event stream at
#: once, and as many streams without it; one more of either is refused (503):
#: each is written the whole state on every change.
PAGES: Final = 32
_VIA: Final = ("stream", "poll", "events")
_STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Sent with every console response: nothing from another host, no framing
#: (a switch must not be clickable through someone else's page), no sniffing.
HEADERS: Final = {
    "content-security-policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
PERSISTENCE: Final = (
    "Changes made here are not written to the flag file: they last until the "
    "service restarts or the file is saved again (the file then wins)."
)


class FlagHost(Protocol):
    """What the console needs of the server it runs on: to change a flag."""

    def set_flag(self, key: str, flag: JSONObject) -> None: ...


def flag_row(flag: Mapping[str, JSONValue], *, changed: bool = False) -> JSONObject:
    """One row of the Flags table (``changed``: by the console, since the file was read)."""
    system, definition = words.read_by(flag)
    key = flag.get("key")
    description = flag.get("description")
    tags = flag.get("tags")
    return {
        "key": key,
        "label": visible(key) if isinstance(key, str) else key,
        "on": flag.get("on") is True,
        "variations": [cut(words.written(v)) for v in system.values(flag, definition)],
        # the variation it serves when on: its index, "rules" (choosing one
        # asks first: they stop applying), "rollout", or None (none)
        "serves": system.served_index(flag, definition),
        "version": flag.get("version"),
        "changed": changed,
        "description": cut(description) if isinstance(description, str) else None,
        "tags": [cut(t) for t in tags if isinstance(t, str)][:_TAGS]
        if isinstance(tags, list)
        else [],
    }


def _visible_all(value: JSONValue) -> JSONValue:
    """Every text in ``value`` with bidirectional controls written out, cut if long.

    Past :data:`DETAILS_TEXT` characters a text ends with "…".
    """
    if isinstance(value, str):
        text = visible(value)
        return text if len(text) <= DETAILS_TEXT else text[: DETAILS_TEXT - 1] + "…"
    if isinstance(value, list):
        return [_visible_all(v) for v in value]
    if isinstance(value, dict):
        return {k: _visible_all(v) for k, v in value.items()}
    return value


@dataclass(slots=True)
class _Sdk:
    """An SDK the service has seen: on a stream, a poll, or posting events."""

    name: str
    version: str | None
    since: int
    last_seen: int
    via: set[str] = field(default_factory=set)
    streams: int = 0

    def as_json(self) -> JSONObject:
        return {
            "name": self.name,
            "version": self.version,
            "since": self.since,
            "last_seen": self.last_seen,
            "via": [v for v in _VIA if v in self.via],
            "connected": self.streams > 0,
        }


def sdk_identity(
    headers: Mapping[str, str], diagnostic: JSONValue = None
) -> tuple[str, str | None] | None:
    """An SDK's name and version, from its request headers (or a diagnostic event's ``sdk``).

    ``X-LaunchDarkly-User-Agent``, else ``User-Agent``: its first product
    (``PythonClient/9.20.0``, ``AIOFlags/0.4.0``); a wrapper
    (``X-LaunchDarkly-Wrapper``) is named beside it. A diagnostic event's
    ``sdk`` ``{name, version}`` is taken only when the headers name no
    product (the same SDK would be listed twice under two names).
    """
    agent = (
        headers.get("x-launchdarkly-user-agent") or headers.get("user-agent") or ""
    ).strip()
    product = agent.split(" ", 1)[0] if agent else ""
    name, _, version = product.partition("/")
    if not name and isinstance(diagnostic, dict):
        sdk = diagnostic.get("sdk")
        if isinstance(sdk, dict) and isinstance(sdk.get("name"), str):
            given = sdk.get("version")
            name, version = sdk["name"], given if isinstance(given, str) else ""
    if not name:
        return None
    wrapper = headers.get("x-launchdarkly-wrapper")
    if wrapper:
        name = f"{name} ({wrapper.strip()})"
    return cut(name), cut(version) if version else None


class Console:
    """The console of one FlagServer: its token, its evaluations log, its answers."""

    __slots__ = (
        "_bound",
        "_event",
        "_log",
        "_rows",
        "_sdks",
        "_text",
        "evaluator",
        "guards",
        "lens_allow",
        "lens_key",
        "lens_secret",
        "originals",
        "token",
        "trouble",
        "url",
    )

    def __init__(
        self,
        bound: str = "127.0.0.1",
        snapshot: Callable[[], Awaitable[FlagSnapshot]] | None = None,
    ) -> None:
        #: The address the server binds (its IP literal is an allowed ``Host``).
        self._bound = bound
        #: The same-origin token: only the page (served same-origin) can read it.
        self.token = secrets.token_urlsafe(32)
        #: The evaluations log (``/bulk`` posts read into rows).
        self._log = EvaluationsLog()
        #: The flags the console changed, as they were before (the file's).
        self.originals: dict[str, JSONObject] = {}
        self._sdks: OrderedDict[tuple[str, str | None], _Sdk] = OrderedDict()
        #: The server's evaluator over its current data (``/ui/api/evaluate``).
        self.evaluator = snapshot
        #: The service's trouble with its flag file (``{"file", "line",
        #: "message"}``), shown on the page; None when all is well.
        self.trouble: JSONObject | None = None
        #: The guards the console shows (``FlagServer.show_guards``; None: none).
        self.guards: ShownGuards | None = None
        #: The service's URL (what an app's ``events_uri`` must be).
        self.url = ""
        #: The secret lens links are signed with (None: no "Share a lens").
        self.lens_secret: bytes | None = None
        #: What a request must show to have a lens link made (:meth:`use_lens`).
        self.lens_key: str | None = None
        #: The app's ``LensConfig.allow``, when ``serve`` was told it (None:
        #: unknown, and each link made says the console cannot check it).
        self.lens_allow: tuple[str, ...] | None = None
        #: Each flag's row as JSON text, with the flag object and ``changed``
        #: it was written from (a flag changes by being replaced).
        self._rows: dict[str, tuple[Mapping[str, JSONValue], bool, str]] = {}
        #: The state as JSON text and as a server-sent event, until it changes.
        self._text: str | None = None
        self._event: bytes | None = None

    # ----------------------------------------------------- evaluations log
    @property
    def evaluations(self) -> list[JSONObject]:
        """The evaluations log, newest first."""
        return self._log.rows

    async def record(
        self,
        payload: Iterable[JSONObject],
        flags: Mapping[str, Mapping[str, JSONValue]] | None = None,
    ) -> bool:
        """Log one ``/bulk`` payload's evaluations and migrations; whether it had any.

        :meth:`EvaluationsLog.record <._evaluations.EvaluationsLog.record>`
        says how; the page is told when the log changed.
        """
        counted = await self._log.record(payload, flags)
        if counted:
            self.invalidate()
        return counted

    # ------------------------------------------------------------------ SDKs
    @property
    def sdks(self) -> list[JSONObject]:
        """The SDKs seen, most recently seen first."""
        return [sdk.as_json() for sdk in reversed(self._sdks.values())]

    def sdk_seen(
        self, via: str, headers: Mapping[str, str], diagnostic: JSONValue = None
    ) -> bool:
        """Note a request of an SDK (``via``: stream, poll, events); whether the list changed.

        The list keeps the :data:`SDKS` most recently seen; a change of
        ``last_seen`` alone is no change (the page is not pushed for it).
        """
        identity = sdk_identity(headers, diagnostic)
        if identity is None:
            return False
        self.invalidate()  # (last_seen moves)
        now = wall_ms()
        sdk = self._sdks.pop(identity, None)
        changed = sdk is None or via not in sdk.via
        if sdk is None:
            sdk = _Sdk(identity[0], identity[1], now, now)
        sdk.last_seen = now
        sdk.via.add(via)
        self._sdks[identity] = sdk
        while len(self._sdks) > SDKS:
            self._sdks.popitem(last=False)
        return changed

    def stream_opened(
        self, headers: Mapping[str, str]
    ) -> tuple[str, str | None] | None:
        """An SDK opened a stream: its identity, for :meth:`stream_closed`."""
        self.sdk_seen("stream", headers)
        identity = sdk_identity(headers)
        sdk = self._sdks.get(identity) if identity is not None else None
        if sdk is not None:
            sdk.streams += 1
        return identity

    def stream_closed(self, identity: tuple[str, str | None] | None) -> None:
        """An SDK's stream closed."""
        sdk = self._sdks.get(identity) if identity is not None else None
        if sdk is not None:
            sdk.streams = max(0, sdk.streams - 1)
            sdk.last_seen = wall_ms()
            self.invalidate()

    # ------------------------------------------------------ console changes
    def forget(self, key: str) -> None:
        """Flag ``key`` is no longer the console's change (deleted, reset)."""
        self.originals.pop(key, None)
        self.invalidate()

    def forget_all(self) -> None:
        """The data was replaced (the file reloaded): it wins over every change."""
        self.originals.clear()
        self.invalidate()

    # ---------------------------------------------------------------- state
    def invalidate(self) -> None:
        """The state changed: the next page or stream that asks has it written anew."""
        self._text = None
        self._event = None

    def state_text(self, flags: Mapping[str, JSONObject]) -> str:
        """What the page shows, as JSON text, written once per change.

        Flags by key, evaluations, SDKs, trouble, where changes go; anew
        after :meth:`invalidate`. Every open page is sent the same text, and a flag's row is written
        again only when the flag (or whether the console changed it) did:
        at 2,000 flags, 100 pages each writing the whole state made a flip
        take 2.2 s. ``flags`` are the server's own (a change replaces a flag).
        """
        if self._text is not None:
            return self._text
        rows = self._rows
        if len(rows) > len(flags) or not rows.keys() <= flags.keys():
            rows = self._rows = {k: v for k, v in rows.items() if k in flags}
        written: list[str] = []
        for key in sorted(flags):
            flag = flags[key]
            changed = key in self.originals
            kept = rows.get(key)
            if kept is None or kept[0] is not flag or kept[1] is not changed:
                text = json.dumps(flag_row(flag, changed=changed), separators=_COMPACT)
                kept = rows[key] = (flag, changed, text)
            written.append(kept[2])
        rest = json.dumps(
            {
                "evaluations": self.evaluations,
                "persistence": PERSISTENCE,
                "trouble": self.trouble,
                "sdks": self.sdks,
                "events_uri": self.url,
                "lens": self.lens_secret is not None,
                "guards": [] if self.guards is None else self.guards.rows(),
            },
            separators=_COMPACT,
        )
        self._text = f'{{"flags":[{",".join(written)}],{rest[1:]}'
        return self._text

    def state_event(self, flags: Mapping[str, JSONObject]) -> bytes:
        """The state as one server-sent event for the page (made once per change)."""
        if self._event is None or self._text is None:
            self._event = wire.frame("state", self.state_text(flags)).encode()
        return self._event

    def use_lens(self, secret: bytes, allow: tuple[str, ...] | None = None) -> None:
        """Make lens links, signed with ``secret``, for whoever holds a new lens key.

        ``allow``: the app's ``LensConfig.allow`` (None: unknown); a link
        for a flag outside it says so (:meth:`lens_warning`).

        The key is made here, once per start, and reaches no page: ``serve``
        prints it after the console's ``#`` (a fragment, in no request and
        no log), the page keeps it in ``sessionStorage``. What ``GET /ui/``
        embeds (its token) any local process can read; the key, only who
        sees ``serve``'s output.
        """
        self.lens_secret = secret
        self.lens_allow = allow
        self.lens_key = secrets.token_urlsafe(32)

    def lens_warning(self, keys: Iterable[str]) -> str | None:
        """What a link for flags ``keys`` will not do in the app (None: nothing to say).

        The app overrides only the flags its ``LensConfig.allow`` matches
        (issue 95, row 123): with that list (``--lens-allow``), the flags
        outside it are named; without it, the link says the console could
        not check.
        """
        picked = list(keys)
        if not picked:
            return None
        allow = self.lens_allow
        if allow is None:
            return (
                "The app overrides only the flags its LensConfig.allow lists, and"
                " ignores the others (its log says so in a WARNING): this console"
                " does not know that list; start `aioflags serve` with --lens-allow"
                " PATTERN (each of the app's patterns) to have it checked here."
            )
        outside = [key for key in picked if not allowed(allow, key)]
        if not outside:
            return None
        names = ", ".join(cut(key) for key in outside)
        them = "it" if len(outside) == 1 else "them"
        return (
            f"The app will not override {names}: outside its LensConfig.allow"
            f" ({cut(', '.join(allow))}), so it serves as usual and logs a"
            f" WARNING. Add {them} to the app's allow, or leave {them} out of"
            " the link."
        )

    def lens_refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why a request may not have a lens link made (None: it may)."""
        key = self.lens_key
        given = headers.get(LENS_KEY_HEADER)
        if key is None or given is None:
            return (
                "this page has no lens key: open the console at the address"
                " `aioflags serve` printed at start (it ends in #lens-key=...)"
            )
        if not hmac.compare_digest(given.encode(), key.encode()):
            return (
                "wrong lens key: open the console at the address `aioflags"
                " serve` printed at this start (the key changes at each start)"
            )
        return None

    # ------------------------------------------------------------- requests
    def holds_token(self, token: str | None) -> bool:
        """Whether ``token`` is the page's (its event stream sends it as ``?token=``)."""
        return token is not None and hmac.compare_digest(
            token.encode(), self.token.encode()
        )

    def refusal(self, method: str, path: str, headers: Mapping[str, str]) -> str | None:
        """Why the console must not serve a request (a 403 says it), else None.

        Its ``Host`` must name this machine or the address it is bound to
        (DNS rebinding); a state-changing request must carry the page's token
        and come from no foreign ``Origin``.
        """
        host = headers.get("host")
        if not is_allowed_host(host, self._bound):
            return (
                "the console answers only to localhost, 127.0.0.1, [::1] "
                "or the address it is bound to"
            )
        if method not in _STATE_CHANGING:
            return None
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return "cross-origin request refused"
        token = headers.get(_TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return "missing or wrong console token: reload the page"
        return None
