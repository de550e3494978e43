"""The flag console of ``aioflags serve``: a web page under ``/ui/`` on the FlagServer.

The server (``_testserver.py``) owns the sockets; this module decides what
the console answers, holds its evaluations log and writes its event stream:

- ``GET /ui/`` (the page, ``console.js``, ``console.css``, shipped in
  ``console/`` as package data), ``GET /ui/api/state`` (flags, evaluations),
  ``GET /ui/api/events`` (the same state as server-sent events, again on every
  change) and ``POST /ui/api/flag`` (``{"key": ..., "on": bool}`` and/or
  ``{"key": ..., "variation": int}``).
- Safety: a request whose ``Host`` is not a loopback name, nor the IP
  address the server is bound to, is refused (DNS rebinding); a state-changing request needs the page's token (the
  ``X-Aioflags-Token`` header) and no foreign ``Origin``; every response
  carries a ``Content-Security-Policy`` of ``default-src 'self'``.
- Changes live in the server until it restarts, or until ``serve`` reloads
  the flag file (the file then wins); nothing is written back to the file.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Final, Protocol

from . import _wire as wire

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from aioflags._core._json import JSONObject, JSONValue

__all__ = ["EVENTS", "PREFIX", "Console", "Reply"]

PREFIX: Final = "/ui"
EVENTS: Final = "/ui/api/events"
_STATE: Final = "/ui/api/state"
_FLAG: Final = "/ui/api/flag"
_TOKEN_HEADER: Final = "x-aioflags-token"
_STATIC: Final = {
    "/ui/": ("index.html", b"text/html; charset=utf-8"),
    "/ui/console.js": ("console.js", b"text/javascript; charset=utf-8"),
    "/ui/console.css": ("console.css", b"text/css; charset=utf-8"),
    "/ui/favicon.svg": ("favicon.svg", b"image/svg+xml"),
}
_TOKEN_PLACEHOLDER: Final = b"{{token}}"
#: The evaluations log keeps this many rows (flag, variation, value), newest first.
LOG_SIZE: Final = 100
#: A value or key longer than this is shown cut (the log's memory stays bounded).
_TEXT_LIMIT: Final = 200
_STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Sent with every console response: nothing from another host, no framing
#: (a switch must not be clickable through someone else's page), no sniffing.
HEADERS: Final = [
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
PERSISTENCE: Final = (
    "Changes made here are not written to the flag file: they last until the "
    "service restarts or the file is saved again (the file then wins)."
)


class FlagHost(Protocol):
    """What the console needs of the server it runs on."""

    @property
    def flags(self) -> dict[str, JSONObject]: ...

    def set_flag(self, key: str, flag: JSONObject) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A complete response: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(HEADERS))


def _json_reply(status: int, data: JSONValue) -> Reply:
    return Reply(status=status, body=json.dumps(data).encode())


def _error(status: int, message: str) -> Reply:
    return _json_reply(status, {"message": message})


def _host_name(host: str) -> str | None:
    """The name or address of a ``Host`` header without its port; None if malformed."""
    if host.startswith("["):  # [::1]:port
        name, bracket, _ = host[1:].partition("]")
        return name if bracket else None
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def _address(name: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name or "")
    except ValueError:
        return None


def is_loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine: localhost or a loopback address."""
    name = _host_name(host) if host else None
    if name is None:
        return False
    if name.lower() == "localhost":
        return True
    address = _address(name)
    return address is not None and address.is_loopback


def is_loopback_bind(bound: str) -> bool:
    """Whether the address a server binds is loopback only (``localhost`` included)."""
    address = _address(bound)
    return bound == "localhost" or (address is not None and address.is_loopback)


def is_allowed_host(host: str | None, bound: str) -> bool:
    """Whether the console answers a request with this ``Host`` header.

    A loopback name or address, or the very IP address the server is bound to
    (``--allow-remote --host 192.0.2.2``): an IP literal is no name a DNS
    rebinding attacker controls. A wildcard bind (``0.0.0.0``, ``::``) adds
    nothing: its console is at localhost.
    """
    if is_loopback_host(host):
        return True
    address = _address(_host_name(host) if host else None)
    return (
        address is not None
        and not address.is_unspecified
        and address == _address(bound)
    )


def foreign_events_post(headers: Mapping[str, str], bound: str) -> bool:
    """Whether a ``/bulk`` or ``/diagnostic`` POST comes from a web page of another site.

    SDKs send neither ``Origin`` nor ``Sec-Fetch-Site``; a browser sends
    them with any page's request, even a no-cors one that needs no
    preflight. Bound to loopback, a foreign ``Host`` is DNS rebinding.
    """
    host = headers.get("host")
    if not is_loopback_host(host) and (
        # Bound to loopback, a foreign Host is DNS rebinding; on a wildcard or
        # an address, an SDK names the server by IP address, a rebinding
        # page by its own domain name.
        is_loopback_bind(bound) or _address(_host_name(host) if host else None) is None
    ):
        return True
    origin = headers.get("origin")
    if origin is not None and origin != f"http://{host}":
        return True
    return headers.get("sec-fetch-site") in ("cross-site", "same-site")


#: Bidirectional controls: shown as ``⟨U+202E⟩``, never obeyed, so a key
#: cannot be made to read as another (``admin\u202eresu`` as ``adminuser``).
_BIDI: Final = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with its bidirectional control characters written out."""
    return _BIDI.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def _cut(text: str) -> str:
    text = visible(text)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _dumps(value: object) -> str:
    """``value`` as JSON text for the page; a value too deep to write is "…"."""
    try:
        return json.dumps(value)
    except (RecursionError, ValueError, TypeError):
        return "…"


def _served(flag: Mapping[str, JSONValue]) -> int | str | None:
    """The variation a flag serves when on: its index, "rules", or None (none)."""
    if flag.get("rules") or flag.get("targets") or flag.get("contextTargets"):
        return "rules"
    fallthrough = flag.get("fallthrough")
    if not isinstance(fallthrough, dict):
        return None
    variation = fallthrough.get("variation")
    if isinstance(variation, int) and not isinstance(variation, bool):
        return variation
    return "rules" if "rollout" in fallthrough else None


def flag_row(flag: Mapping[str, JSONValue]) -> JSONObject:
    """One row of the Flags table."""
    variations = flag.get("variations")
    key = flag.get("key")
    return {
        "key": key,
        "label": visible(key) if isinstance(key, str) else key,
        "on": flag.get("on") is True,
        "variations": [
            _cut(_dumps(v))
            for v in (variations if isinstance(variations, list) else [])
        ],
        "serves": _served(flag),
        "version": flag.get("version"),
    }


class Console:
    """The console of one FlagServer: its token, its evaluations log, its answers."""

    __slots__ = ("_bound", "_log", "token")

    def __init__(self, bound: str = "127.0.0.1") -> None:
        #: The address the server binds (its IP literal is an allowed ``Host``).
        self._bound = bound
        #: The same-origin token: only the page (served same-origin) can read it.
        self.token = secrets.token_urlsafe(32)
        self._log: OrderedDict[tuple[str, int | None, str], int] = OrderedDict()

    # ----------------------------------------------------- evaluations log
    @property
    def evaluations(self) -> list[JSONObject]:
        """The evaluations log, newest first."""
        return [
            {"key": key, "variation": variation, "value": value, "count": count}
            for (key, variation, value), count in reversed(self._log.items())
        ]

    def _count(self, key: object, variation: object, value: object, n: int) -> bool:
        if not isinstance(key, str) or n <= 0:
            return False
        if not isinstance(variation, int) or isinstance(variation, bool):
            variation = None
        row = (_cut(key), variation, _cut(_dumps(value)))
        self._log[row] = self._log.pop(row, 0) + n
        while len(self._log) > LOG_SIZE:
            self._log.popitem(last=False)
        return True

    def record(self, payload: Iterable[JSONObject]) -> bool:
        """Count one ``/bulk`` payload's evaluations; whether it had any.

        Summary counters count every evaluation; a feature event counts one
        only for a flag the payload's summaries do not cover (SDKs that send
        both would otherwise be counted twice).
        """
        events = list(payload)
        counted = False
        summarised: set[str] = set()
        for event in events:
            features = event.get("features")
            if event.get("kind") != "summary" or not isinstance(features, dict):
                continue
            for key, feature in features.items():
                summarised.add(key)
                counters = (
                    feature.get("counters") if isinstance(feature, dict) else None
                )
                for counter in counters if isinstance(counters, list) else []:
                    if isinstance(counter, dict) and isinstance(
                        counter.get("count"), int
                    ):
                        counted |= self._count(
                            key,
                            counter.get("variation"),
                            counter.get("value"),
                            counter["count"],
                        )
        for event in events:
            key = event.get("key")
            if event.get("kind") == "feature" and not (
                isinstance(key, str) and key in summarised
            ):
                counted |= self._count(
                    key, event.get("variation"), event.get("value"), 1
                )
        return counted

    # ---------------------------------------------------------------- state
    def state(self, flags: Mapping[str, JSONObject]) -> JSONObject:
        """What the page shows: flags by key, evaluations, where changes go."""
        return {
            "flags": [flag_row(flags[key]) for key in sorted(flags)],
            "evaluations": self.evaluations,
            "persistence": PERSISTENCE,
        }

    def state_event(self, flags: Mapping[str, JSONObject]) -> str:
        """The state as one server-sent event for the page."""
        return wire.sse("state", self.state(flags))

    # ------------------------------------------------------------- requests
    def refusal(self, method: str, headers: Mapping[str, str]) -> Reply | None:
        """A 403 for a request the console must not serve, else None."""
        host = headers.get("host")
        if not is_allowed_host(host, self._bound):
            return _error(
                403,
                "the console answers only to localhost, 127.0.0.1, [::1] "
                "or the address it is bound to",
            )
        if method not in _STATE_CHANGING:
            return None
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return _error(403, "cross-origin request refused")
        token = headers.get(_TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return _error(403, "missing or wrong console token: reload the page")
        return None

    def respond(
        self,
        server: FlagHost,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply | None:
        """The answer to a request under ``/ui``; None: open the event stream."""
        refused = self.refusal(method, headers)
        if refused is not None:
            return refused
        if path == PREFIX:
            return Reply(
                status=308,
                body=b"",
                content_type=b"text/plain",
                headers=[*HEADERS, (b"location", b"/ui/")],
            )
        if method == "POST" and path == _FLAG:
            return self._change(server, body)
        if method != "GET":
            return _error(405, f"{method} {path} is not allowed")
        if path == EVENTS:
            return None
        if path == _STATE:
            return _json_reply(200, self.state(server.flags))
        static = _STATIC.get(path)
        if static is None:
            return _error(404, "not found")
        name, content_type = static
        data = resources.files(__package__).joinpath("console", name).read_bytes()
        body = data.replace(_TOKEN_PLACEHOLDER, self.token.encode())
        return Reply(status=200, body=body, content_type=content_type)

    def _change(self, server: FlagHost, body: bytes) -> Reply:
        try:
            request = json.loads(body)
        except ValueError:
            return _error(400, "the body must be JSON")
        if not isinstance(request, dict) or not isinstance(request.get("key"), str):
            return _error(
                400, 'the body must be {"key": ..., "on" or "variation": ...}'
            )
        on = request.get("on")
        variation = request.get("variation")
        if on is None and variation is None:
            return _error(400, 'give "on" (true or false) or "variation" (an index)')
        if on is not None and not isinstance(on, bool):
            return _error(400, '"on" must be true or false')
        flag = server.flags.get(request["key"])
        if flag is None:
            return _error(404, f"no flag {request['key']!r}")
        changed: JSONObject = dict(flag)
        if on is not None:
            changed["on"] = on
        if variation is not None:
            count = len(flag.get("variations") or [])
            if (
                not isinstance(variation, int)
                or isinstance(variation, bool)
                or not (0 <= variation < count)
            ):
                return _error(400, f'"variation" must be an index below {count}')
            # Serve it to everyone: targets and rules would keep serving others.
            for targeting in ("targets", "contextTargets", "rules"):
                changed.pop(targeting, None)
            changed["fallthrough"] = {"variation": variation}
        server.set_flag(request["key"], changed)
        return _json_reply(200, flag_row(server.flags[request["key"]]))
