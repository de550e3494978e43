"""The flag console of ``aioflags serve``: what it knows, and the rules it answers by.

The server (``_server.py``) owns the sockets and ``_console_app`` answers
the console's requests; this module holds its evaluations log, the SDKs
seen, the flags it changed (to reset them), its token and rules, and writes
its state (for the page's event stream too). Its endpoints:

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
  by ``serve`` after the console's ``#``, never in a page). The JSON
  contract with the page is in docs/console.md.
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
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from aioflags._core._clock import wall_ms
from aioflags._core._pacing import Pacer
from aioflags._lens._config import allowed

from . import _wire as wire
from . import _words as words
from ._guard import is_allowed_host

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._evaluation._snapshot import FlagSnapshot

__all__ = ["EVENTS", "LENS_KEY_HEADER", "PREFIX", "Console", "sdk_identity"]

PREFIX: Final = "/ui"
EVENTS: Final = "/ui/api/events"
#: The lifetimes the console mints lens links for, at most (a day).
LENS_MAX_TTL: Final = 86400
_TOKEN_HEADER: Final = "x-aioflags-token"
#: The header of the lens key, which ``POST /ui/api/lens`` needs.
LENS_KEY_HEADER: Final = "x-aioflags-lens-key"
_COMPACT: Final = (",", ":")
#: The evaluations log keeps this many rows (flag, variation, value), newest first.
LOG_SIZE: Final = 100
#: A value or key longer than this is shown cut (the log's memory stays bounded).
_TEXT_LIMIT: Final = 200
#: A text of a flag's details longer than this is shown cut: a page laying out
#: a 10 MB variation written out twice stalls for many seconds.
DETAILS_TEXT: Final = 20_000
#: Contexts kept per log row (newest first), tags shown per flag.
_CONTEXTS: Final = 5
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


#: Bidirectional controls: shown as ``⟨U+202E⟩``, never obeyed, so a key
#: cannot be made to read as another (``admin\u202eresu`` as ``adminuser``).
_BIDI: Final = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with its bidirectional control characters written out."""
    return _BIDI.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def _cut(text: str) -> str:
    text = visible(text)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _served(flag: Mapping[str, JSONValue]) -> int | str | None:
    """The variation a flag serves when on: its index, "rules", "rollout", or None (none).

    "rules": it has rules or individual targets (choosing a variation asks
    first: they stop applying); "rollout": a percentage rollout alone.
    """
    if _targeted(flag):
        return "rules"
    part = words.flagd_part(flag)
    if part is not None:  # a flagd flag: its default variant, unless targeting
        variants = part.get("variants")
        names = list(variants) if isinstance(variants, dict) else []
        default = part.get("defaultVariant")
        return names.index(default) if default in names else None
    fallthrough = flag.get("fallthrough")
    if not isinstance(fallthrough, dict):
        return None
    variation = words.whole(fallthrough.get("variation"))
    if variation is not None:
        return variation
    return "rollout" if "rollout" in fallthrough else None


def _targeted(flag: Mapping[str, JSONValue]) -> bool:
    """Whether a flag has rules or individual targets (a fixed variation drops them).

    A flagd flag's: whether it has targeting.
    """
    part = words.flagd_part(flag)
    if part is not None:
        return "targeting" in part
    return bool(flag.get("rules") or flag.get("targets") or flag.get("contextTargets"))


def flag_row(flag: Mapping[str, JSONValue], *, changed: bool = False) -> JSONObject:
    """One row of the Flags table (``changed``: by the console, since the file was read)."""
    variations = flag.get("variations")
    key = flag.get("key")
    description = flag.get("description")
    tags = flag.get("tags")
    return {
        "key": key,
        "label": visible(key) if isinstance(key, str) else key,
        "on": flag.get("on") is True,
        "variations": [
            _cut(words.written(v))
            for v in (variations if isinstance(variations, list) else [])
        ],
        "serves": _served(flag),
        "version": flag.get("version"),
        "changed": changed,
        "description": _cut(description) if isinstance(description, str) else None,
        "tags": [_cut(t) for t in tags if isinstance(t, str)][:_TAGS]
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


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "object"


def _wrong_type(value: object, flag: Mapping[str, JSONValue] | None) -> bool:
    """Whether ``value`` (a default served) is of another JSON type than the flag's values.

    A null default asks for no type (a JSON variation); a flag whose
    variations are of several types has no one type to differ from.
    """
    if flag is None or value is None:
        return False
    variations = flag.get("variations")
    types = {
        _json_type(v) for v in (variations if isinstance(variations, list) else [])
    }
    return len(types) == 1 and _json_type(value) not in types


def _contexts_of(event: Mapping[str, JSONValue]) -> list[JSONObject]:
    """The contexts (kind and key) an event names: ``context`` or ``contextKeys``."""
    found: list[JSONObject] = []
    context = event.get("context")
    keys = event.get("contextKeys")
    if isinstance(context, dict):
        kind = context.get("kind", "user")
        if kind == "multi":
            parts = [(k, v) for k, v in context.items() if k != "kind"]
        else:
            parts = [(kind, context)]
        for part_kind, part in parts:
            if isinstance(part_kind, str) and isinstance(part, dict):
                key = part.get("key")
                if isinstance(key, str):
                    found.append({"kind": _cut(part_kind), "key": _cut(key)})
    elif isinstance(keys, dict):
        found += [
            {"kind": _cut(kind), "key": _cut(key)}
            for kind, key in keys.items()
            if isinstance(key, str)
        ]
    return found[:_CONTEXTS]


#: The last instant a browser's ``Date`` holds (ms): a later time reads "Invalid Date".
_LAST_DATE: Final = 8_640_000_000_000_000


def _when(value: object) -> int:
    """An event's time in ms; now when it carries none, or one no page can show."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 < value <= _LAST_DATE
    ):
        return value
    return wall_ms()


@dataclass(slots=True)
class _Row:
    """One row of the evaluations log: what identifies it, and what adds up."""

    fixed: JSONObject
    count: int = 0
    last: int = 0
    contexts: list[JSONObject] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None
    # migration rows
    origins: set[str] = field(default_factory=set)
    latencies: dict[str, JSONValue] = field(default_factory=dict)
    errors: set[str] = field(default_factory=set)
    consistent: bool | None = None

    def add(self, count: int, when: int, contexts: list[JSONObject]) -> None:
        self.count += count
        self.last = max(self.last, when)
        for context in reversed(contexts):
            if context in self.contexts:
                self.contexts.remove(context)
            self.contexts.insert(0, context)
        del self.contexts[_CONTEXTS:]

    def as_json(self) -> JSONObject:
        row: JSONObject = {**self.fixed, "count": self.count}
        if self.fixed["type"] == "evaluation":
            row["default"] = self.fixed["variation"] is None
            row["error"] = self.error
            row["reason"] = self.reason
        else:
            row["origins"] = sorted(self.origins)
            row["latencies"] = dict(sorted(self.latencies.items()))
            row["errors"] = sorted(self.errors)
            row["consistent"] = self.consistent
        row["contexts"] = list(self.contexts)
        row["last"] = self.last
        return row


#: A migration's origins (any other name in an event is ignored: rows stay small).
_ORIGINS: Final = ("old", "new")


def _origins(values: object) -> list[str]:
    """The origins a measurement's ``values`` name (``old``, ``new``)."""
    if not isinstance(values, dict):
        return []
    return [o for o in _ORIGINS if values.get(o) is True]


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
    return _cut(name), _cut(version) if version else None


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
        self._log: OrderedDict[tuple[object, ...], _Row] = OrderedDict()
        #: The flags the console changed, as they were before (the file's).
        self.originals: dict[str, JSONObject] = {}
        self._sdks: OrderedDict[tuple[str, str | None], _Sdk] = OrderedDict()
        #: The server's evaluator over its current data (``/ui/api/evaluate``).
        self.evaluator = snapshot
        #: The service's trouble with its flag file (``{"file", "line",
        #: "message"}``), shown on the page; None when all is well.
        self.trouble: JSONObject | None = None
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
        return [row.as_json() for row in reversed(self._log.values())]

    def _row(self, identity: tuple[object, ...], fixed: JSONObject) -> _Row:
        """The log's row of ``identity`` (new, or moved to the top)."""
        row = self._log.pop(identity, None)
        if row is None:
            row = _Row(fixed)
        self._log[identity] = row
        while len(self._log) > LOG_SIZE:
            self._log.popitem(last=False)
        return row

    def _evaluation_row(
        self, key: str, variation: object, value: object, *, create: bool = True
    ) -> _Row | None:
        variation = words.whole(variation)
        text = _cut(words.written(value))
        identity = ("evaluation", key, variation, text)
        if not create and identity not in self._log:
            return None
        return self._row(
            identity,
            {
                "type": "evaluation",
                "key": _cut(key),
                "value": text,
                "variation": variation,
            },
        )

    async def record(
        self,
        payload: Iterable[JSONObject],
        flags: Mapping[str, Mapping[str, JSONValue]] | None = None,
    ) -> bool:
        """Log one ``/bulk`` payload's evaluations and migrations; whether it had any.

        Summary counters count every evaluation (their time: the summary's
        ``endDate``); a feature event counts one only for a flag the
        payload's summaries do not cover (SDKs that send both would
        otherwise be counted twice), and otherwise adds its context, reason
        and time to its counter's row. Debug events add the same, never a
        count. Index events name contexts but no flag: they are not tied to
        any row. ``migration_op`` events make migration rows (per flag and
        operation: the origins that ran, their latest latencies, the origins
        that failed, and whether any consistency check failed).

        Where events carry no reason (summary counters), the error kind of a
        default is *inferred*: ``unknown: true`` is ``FLAG_NOT_FOUND``, a
        default of another JSON type than the flag's variations (``flags``,
        the service's own) is ``WRONG_TYPE``; other defaults say none.

        It is done in slices (``Pacer``), so that a payload of tens of
        thousands of events (up to 32 MiB of JSON) does not hold the event
        loop meanwhile.
        """
        pacer = Pacer()
        flags = flags or {}
        events = list(payload)
        counted = False
        summarised: set[str] = set()
        for event in events:
            if pacer.due():
                await pacer.pause()
            features = event.get("features")
            if event.get("kind") != "summary" or not isinstance(features, dict):
                continue
            when = _when(event.get("endDate"))
            for key, feature in features.items():
                summarised.add(key)
                counters = (
                    feature.get("counters") if isinstance(feature, dict) else None
                )
                for counter in counters if isinstance(counters, list) else []:
                    if isinstance(counter, dict):
                        counted |= self._count(key, counter, flags.get(key), when)
        for event in events:
            if pacer.due():
                await pacer.pause()
            kind = event.get("kind")
            if kind in ("feature", "debug"):
                key = event.get("key")
                alone = isinstance(key, str) and key not in summarised
                counted |= self._feature(
                    event, flags, count=kind == "feature" and alone
                )
            elif kind == "migration_op":
                counted |= self._migration(event)
        if counted:
            self.invalidate()
        return counted

    def _count(
        self,
        key: str,
        counter: Mapping[str, JSONValue],
        flag: Mapping[str, JSONValue] | None,
        when: int,
    ) -> bool:
        count = words.whole(counter.get("count"))
        if count is None or count <= 0:
            return False
        value = counter.get("value")
        row = self._evaluation_row(key, counter.get("variation"), value)
        assert row is not None
        if counter.get("unknown") is True:
            row.error = "FLAG_NOT_FOUND"
        elif row.fixed["variation"] is None and _wrong_type(value, flag):
            row.error = "WRONG_TYPE"
        row.add(count, when, [])
        return True

    def _feature(
        self,
        event: Mapping[str, JSONValue],
        flags: Mapping[str, Mapping[str, JSONValue]],
        *,
        count: bool,
    ) -> bool:
        key = event.get("key")
        if not isinstance(key, str):
            return False
        value = event.get("value")
        row = self._evaluation_row(key, event.get("variation"), value, create=count)
        if row is None:
            return False
        reason = event.get("reason")
        flag = flags.get(key)
        variation = row.fixed["variation"]
        if isinstance(reason, dict):
            row.reason = words.reason_text(
                reason, flag, variation if isinstance(variation, int) else None
            )
            error = reason.get("errorKind")
            if isinstance(error, str):
                row.error = _cut(error)
        elif variation is None and _wrong_type(value, flag):
            row.error = "WRONG_TYPE"
        row.add(
            1 if count else 0, _when(event.get("creationDate")), _contexts_of(event)
        )
        return True

    def _migration(self, event: Mapping[str, JSONValue]) -> bool:
        evaluation = event.get("evaluation")
        key = evaluation.get("key") if isinstance(evaluation, dict) else None
        operation = event.get("operation")
        if not isinstance(key, str) or operation not in ("read", "write"):
            return False
        row = self._row(
            ("migration", key, operation),
            {"type": "migration", "key": _cut(key), "operation": operation},
        )
        measurements = event.get("measurements")
        for measurement in measurements if isinstance(measurements, list) else []:
            if not isinstance(measurement, dict):
                continue
            name = measurement.get("key")
            values = measurement.get("values")
            if name == "invoked":
                row.origins.update(_origins(values))
            elif name == "error":
                row.errors.update(_origins(values))
            elif name == "latency_ms" and isinstance(values, dict):
                for origin in _ORIGINS:
                    ms = values.get(origin)
                    if isinstance(ms, (int, float)) and not isinstance(ms, bool):
                        row.latencies[origin] = ms
            elif name == "consistent" and isinstance(measurement.get("value"), bool):
                # One inconsistency is what a developer must see.
                row.consistent = (
                    measurement["value"] is True and row.consistent is not False
                )
        row.add(1, _when(event.get("creationDate")), _contexts_of(event))
        return True

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
        names = ", ".join(_cut(key) for key in outside)
        them = "it" if len(outside) == 1 else "them"
        return (
            f"The app will not override {names}: outside its LensConfig.allow"
            f" ({_cut(', '.join(allow))}), so it serves as usual and logs a"
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
