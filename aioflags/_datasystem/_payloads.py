"""Payload assembly: FDv2 events into change sets, FDv1 JSON into change sets.

Pure functions and one small state machine; the network sources feed them and
raise :class:`ProtocolError` for data they cannot use (protocol.md §2, §4, §5).
"""

from __future__ import annotations

import re
import sys
from json import JSONDecodeError
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Final

from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import (
    _DECODER,
    RAW_DATA,
    RAW_EVENT,
    TOO_DEEP,
    shallow_decode,
)
from aioflags._core._logname import client_logger
from aioflags._core._pacing import Pacer
from aioflags._evaluation._model import system_of

from ._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    ObjectMeta,
    RawPut,
    Selector,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aioflags._core._json import JSONObject, JSONValue

    from ._patterns import FoundPatterns

__all__ = [
    "ChangeSetBuilder",
    "fdv1_delete",
    "fdv1_full",
    "fdv1_patch",
    "object_meta",
    "over_limit",
    "parse_fdv2_poll",
    "parse_fdv2_poll_stream",
    "parse_fdv2_poll_text",
    "put_meta",
]

logger = client_logger("aioflags.datasource")
_KINDS: Final = {"flag": ObjectKind.FLAG, "segment": ObjectKind.SEGMENT}
_INTENTS: Final = {i.value: i for i in IntentCode}
#: How many unusable objects of a payload its WARNING names (the rest counted).
_NAMED: Final = 5
_NO_VERSION: Final = "has no integer 'version'"


def over_limit(what: str, limit: int, *, changes: bool = False) -> ProtocolError:
    """The error for an input over one of the SDK's input limits.

    Its message (logged once by the data system, kept in the status) names
    the limit and the ``Config`` option that raises it:
    ``max_payload_changes`` with ``changes``, else ``max_payload_bytes``.
    """
    option, unit = (
        ("max_payload_changes", "changes")
        if changes
        else ("max_payload_bytes", "bytes")
    )
    return ProtocolError(
        f"{what} is over the limit of {limit:,} {unit} (Config.{option}): "
        f"refused and read no further; if the flag data is really this big, "
        f"raise Config.{option}"
    )


def _field(data: JSONObject, name: str, typ: type, event: str) -> JSONValue:
    value = data.get(name)
    ok = type(value) is int if typ is int else isinstance(value, typ)
    if not ok:
        raise ProtocolError(f"{event}: {name!r} is missing or has the wrong type")
    return value


def object_meta(obj: JSONObject, raw: str | None = None) -> ObjectMeta:
    """What the store needs of an object before compiling it (:data:`ObjectMeta`).

    Its own ``version`` (0 if it has none), whether it is ``deleted``, and
    the keys it reaches: prerequisite flags and ``segmentMatch`` segments
    (for change notifications), and for a flag of another system than
    LaunchDarkly's the shared items it names (``FlagSystem.shared_keys``:
    a store reader reads them with it). A superset
    is harmless: keys in malformed entries are kept. ``raw``, the text the
    object came from, lets the common case (no ``segmentMatch`` in it) skip
    the walk over the rules.
    """
    version = obj.get("version")
    if type(version) is not int:
        version = 0
    if obj.get("deleted") is True:
        return (version, True)
    system = system_of(obj)[0]
    if system.part is not None:
        return (version, False, *["s" + key for key in system.shared_keys(obj)])
    items = obj.get("prerequisites")
    rules = obj.get("rules")  # (before the text search: most flags have none)
    if rules and (raw is None or "segmentMatch" in raw):
        nodes = dict.fromkeys(_segment_nodes(rules))
    elif not items:
        return (version, False)
    else:
        nodes = {}
    if items and isinstance(items, list):
        for p in items:
            if isinstance(p, dict):
                key = p.get("key")
                if type(key) is str:
                    nodes["f" + key] = None
    return (version, False, *nodes)


def put_meta(obj: JSONObject) -> tuple[ObjectMeta, tuple[str, ...]]:
    """A put's :func:`object_meta` and its distinct ``matches`` patterns, in one walk.

    Ingest's common case, for an object just parsed from JSON (exact
    ``dict``, ``list`` and ``str``): its rules are walked once for both the
    ``segmentMatch`` segments and the patterns (which :func:`object_meta`
    and :func:`~._patterns.patterns_in` would walk apart, each after a
    search of the text), so no text is searched, and nothing is made for
    what an object does not have. The meta is :func:`object_meta`'s, a
    superset at most (a ``segmentMatch`` operator spelled with an escape is
    found too); a deleted object's patterns are none (nothing compiles it).
    """
    version = obj.get("version")
    if type(version) is not int:
        version = 0
    if obj.get("deleted") is True:
        return (version, True), ()
    items = obj.get("prerequisites")
    rules = obj.get("rules")
    nodes: dict[str, None] | None = None
    patterns: dict[str, None] | None = None
    if rules and type(rules) is list:
        for rule in rules:
            clauses = rule.get("clauses") if type(rule) is dict else None
            if type(clauses) is not list:
                continue
            for c in clauses:
                if type(c) is not dict:
                    continue
                op = c.get("op")
                if op == "segmentMatch":
                    values = c.get("values")
                    if type(values) is list:
                        if nodes is None:
                            nodes = {}
                        for v in values:
                            if type(v) is str:
                                nodes["s" + v] = None
                elif op == "matches":
                    values = c.get("values")
                    if type(values) is list:
                        if patterns is None:
                            patterns = {}
                        for v in values:
                            if type(v) is str:
                                patterns[v] = None
    if items and type(items) is list:
        if nodes is None:
            nodes = {}
        for p in items:
            if type(p) is dict:
                key = p.get("key")
                if type(key) is str:
                    nodes["f" + key] = None
    return (
        (version, False) if nodes is None else (version, False, *nodes),
        () if patterns is None else tuple(patterns),
    )


def _named(key: str) -> str:
    """A key as a WARNING names it: quoted and escaped, and at most 100 characters."""
    return repr(key) if len(key) <= 100 else f"{key[:100]!r}..."


def _say_unusable(count: int, first: tuple[str, ...], *, served: bool) -> None:
    """The one WARNING of a payload with ``count`` objects it could not use, ``first`` named."""
    more = count - len(first)
    logger.warning(
        "Could not use %d object%s of the flag data: %s%s. %sThe rest of"
        " the payload applies",
        count,
        "" if count == 1 else "s",
        "; ".join(first),
        f"; and {more:,} more" if more else "",
        "An evaluation of a flag named answers MALFORMED_FLAG, as does"
        " one reaching a segment named. "
        if served
        else "",
    )


def _segment_nodes(rules: JSONValue) -> list[str]:
    """``"s" + key`` for each segment a ``segmentMatch`` clause names."""
    found: list[str] = []
    if isinstance(rules, list):
        for rule in rules:
            clauses = rule.get("clauses") if isinstance(rule, dict) else None
            if isinstance(clauses, list):
                for c in clauses:
                    if isinstance(c, dict) and c.get("op") == "segmentMatch":
                        values = c.get("values")
                        if isinstance(values, list):
                            found += ["s" + v for v in values if type(v) is str]
    return found


def _object(data: JSONValue, event: str) -> JSONObject:
    if not isinstance(data, dict):
        raise ProtocolError(f"{event}: data must be a JSON object")
    return data


class ChangeSetBuilder:
    """Assembles FDv2 events into change sets (protocol.md §2.2).

    Nothing is emitted before ``payload-transferred``. After a completed
    ``xfer-full`` the intent becomes ``xfer-changes``: later payloads on the
    same connection are deltas until a new ``server-intent``. A payload may
    queue ``max_changes`` changes (``Config.max_payload_changes``) and puts
    of ``max_bytes`` characters of text together (``Config.max_payload_bytes``);
    more raises :class:`ProtocolError`.
    """

    __slots__ = (
        "_changes",
        "_intent",
        "_nodes",
        "_patterns",
        "_size",
        "_unusable",
        "max_bytes",
        "max_changes",
    )

    def __init__(
        self, *, max_changes: int | None = None, max_bytes: int | None = None
    ) -> None:
        #: The most changes one payload may queue (no limit: ``sys.maxsize``).
        self.max_changes = sys.maxsize if max_changes is None else max_changes
        #: The most text the queued puts may hold together (no limit: ``sys.maxsize``).
        self.max_bytes = sys.maxsize if max_bytes is None else max_bytes
        self._size = 0  # the text the queued puts hold
        self._intent: IntentCode | None = None
        #: Deletes as :class:`Change` objects, puts with their text as
        #: :data:`RawPut` tuples (untracked by the garbage collector).
        self._changes: list[Change | RawPut] = []
        #: The ``matches`` patterns of those puts, found as they are parsed
        #: (the store would parse their texts again to find them).
        self._patterns: FoundPatterns = {}
        #: The same patterns by item node (``"f"`` or ``"s"``, then its key),
        #: the last change of a node counting: what the store compiles, with
        #: no walk over the changes (every queued put is in it if it has any).
        self._nodes: dict[str, tuple[str, ...]] = {}
        #: The payload's objects this SDK cannot use, said in one WARNING
        #: as the payload ends: how many, and the first few, each named by
        #: its kind and key (it is served as MALFORMED_FLAG) or, with no
        #: key to name it by, by what it was (it is skipped).
        self._unusable: tuple[int, tuple[str, ...], bool] = (0, (), False)

    def _known(self, event: str, data: JSONValue) -> tuple[JSONObject, str, str] | None:
        """``data``, its kind and its key, if this SDK can name the object; None: skipped.

        An object of a kind this SDK does not know (a later protocol's) is
        skipped whatever else it holds, said at DEBUG; one with no shape to
        name it by (its ``data`` not an object, its ``kind`` or ``key`` not
        a string) is skipped and said as the payload ends. The caller
        checks the rest (:meth:`_unusable`).
        """
        if type(data) is not dict:
            self._note(f"a {event} whose data is not an object")
            return None
        kind = data.get("kind")
        if type(kind) is not str:
            self._note(f"a {event} whose kind is not a string")
            return None
        if kind not in _KINDS:
            logger.debug("Ignoring %s of unknown kind %r", event, kind)
            return None
        key = data.get("key")
        if type(key) is not str:
            self._note(f"a {event} of a {kind} whose key is not a string")
            return None
        return data, kind, key

    def _note(self, what: str, *, served: bool = False) -> None:
        """One object of this payload cannot be used: said as the payload ends.

        ``served``: it is named, and served as MALFORMED_FLAG (else skipped).
        """
        count, first, named = self._unusable
        if len(first) < _NAMED:
            first = (*first, what)
        self._unusable = (count + 1, first, named or served)

    def _unusable_item(
        self, event: str, kind: str, key: str, version: JSONValue, why: str
    ) -> None:
        """Flag or segment ``key`` of this payload cannot be used: it is served as MALFORMED_FLAG.

        Put with no object (:attr:`Change.obj` None), which the store keeps
        as malformed: its evaluations answer their default with
        MALFORMED_FLAG, and a flag that reaches it too, as for a flag whose
        fields have the wrong types. Said as the payload ends.
        """
        self._note(f"{kind} {_named(key)}, whose {event} {why}", served=True)
        self._changes.append(
            Change(
                action=ChangeKind.PUT,
                kind=_KINDS[kind],
                key=key,
                version=version if type(version) is int else 0,
            )
        )
        self._nodes.pop(("f" if kind == "flag" else "s") + key, None)
        self._check_count()

    def too_deep(self, event: str, data: JSONValue) -> None:
        """A ``put-object`` or ``delete-object`` nested too deeply to parse.

        ``data`` is its data as :func:`~aioflags._core._json.shallow_decode`
        reads it: the object it names is served as MALFORMED_FLAG (or, with
        no kind and key to name it by, skipped), and said as the payload ends.
        """
        known = self._known(event, data)
        if known is not None:
            body, kind, key = known
            self._unusable_item(
                event, kind, key, body.get("version"), "is nested too deeply to parse"
            )

    def _tell_unusable(self) -> None:
        count, first, served = self._unusable
        if count:
            _say_unusable(count, first, served=served)
            self._unusable = (0, (), False)

    @property
    def intent(self) -> IntentCode | None:
        """The current intent, if a ``server-intent`` has been seen."""
        return self._intent

    def server_intent(self, data: JSONValue) -> IntentCode:
        """Handle ``server-intent``; returns the intent (``none`` means up to date)."""
        body = _object(data, "server-intent")
        payloads = body.get("payloads")
        if (
            not isinstance(payloads, list)
            or not payloads
            or not isinstance(payloads[0], dict)
        ):
            raise ProtocolError(
                "server-intent: 'payloads' must be a non-empty list of objects"
            )
        code = payloads[0].get("intentCode")
        intent = _INTENTS.get(code) if isinstance(code, str) else None
        if intent is None:
            raise ProtocolError(f"server-intent: unknown intentCode {code!r}")
        self._changes = []
        self._size = 0
        self._patterns = {}
        self._nodes = {}
        # Intent "none" means later objects (without a new intent) are deltas.
        self._intent = (
            IntentCode.TRANSFER_CHANGES
            if intent is IntentCode.TRANSFER_NONE
            else intent
        )
        return intent

    def put_object(
        self, data: JSONValue, raw: str | None = None, path: int = RAW_DATA
    ) -> None:
        """Queue a ``put-object`` (unknown kinds are ignored).

        ``raw`` is the JSON text ``data`` was parsed from (``path`` says
        where the object sits in it): the change then keeps the text, not
        the parsed object.
        """
        kind: JSONValue
        key: JSONValue
        version: JSONValue
        obj: JSONValue
        if type(data) is dict:  # the common case, checked in one go
            kind = data.get("kind")
            key = data.get("key")
            version = data.get("version")
            obj = data.get("object")
            fine = (
                type(kind) is str
                and kind in _KINDS
                and type(key) is str
                and type(version) is int
                and type(obj) is dict
            )
        else:
            fine = False
        if not fine:  # the same checks, one at a time: the first failure is named
            known = self._known("put-object", data)
            if known is None:
                return
            body, kind, key = known
            version = body.get("version")
            obj = body.get("object")
            if type(version) is not int:
                self._unusable_item("put-object", kind, key, 0, _NO_VERSION)
                return
            if type(obj) is not dict:
                self._unusable_item(
                    "put-object",
                    kind,
                    key,
                    version,
                    "has no 'object' that is an object",
                )
                return
        if raw is not None:
            self._size += len(raw)
            if self._size > self.max_bytes:
                raise over_limit("the payload", self.max_bytes)
            meta, patterns = put_meta(obj)
            self._changes.append((kind, key, version, raw, path, *meta))
            node = ("f" if kind == "flag" else "s") + key
            if patterns:
                self._patterns[raw] = (path, patterns)
                self._nodes[node] = patterns
            else:
                self._nodes.pop(node, None)
        else:
            patterns = put_meta(obj)[1]
            node = ("f" if kind == "flag" else "s") + key
            if patterns:
                self._nodes[node] = patterns
            else:
                self._nodes.pop(node, None)
            self._changes.append(
                Change(
                    action=ChangeKind.PUT,
                    kind=_KINDS[kind],
                    key=key,
                    version=version,
                    obj=obj,
                )
            )
        self._check_count()

    def delete_object(self, data: JSONValue) -> None:
        """Queue a ``delete-object`` (unknown kinds are ignored)."""
        known = self._known("delete-object", data)
        if known is None:
            return
        body, kind, key = known
        version = body.get("version")
        if type(version) is not int:
            self._unusable_item("delete-object", kind, key, 0, _NO_VERSION)
            return
        self._changes.append(
            Change(
                action=ChangeKind.DELETE, kind=_KINDS[kind], key=key, version=version
            )
        )
        self._nodes.pop(("f" if kind == "flag" else "s") + key, None)
        self._check_count()

    def _check_count(self) -> None:
        if len(self._changes) > self.max_changes:
            raise over_limit("the payload", self.max_changes, changes=True)

    def error(self) -> None:
        """Handle an ``error`` event: drop pending changes, keep the intent."""
        self._changes = []
        self._size = 0
        self._patterns = {}
        self._nodes = {}

    def reset(self) -> None:
        """Forget everything (a new connection)."""
        self._intent = None
        self._changes = []
        self._size = 0
        self._patterns = {}
        self._nodes = {}
        self._unusable = (0, (), False)

    def payload_transferred(self, data: JSONValue) -> ChangeSet:
        """Handle ``payload-transferred``: emit the change set and clear the queue."""
        body = _object(data, "payload-transferred")
        state = _field(body, "state", str, "payload-transferred")
        version = _field(body, "version", int, "payload-transferred")
        if self._intent is None:
            raise ProtocolError("changeset: cannot complete without a server-intent")
        self._tell_unusable()
        change_set = ChangeSet._raw(
            self._intent,
            self._changes,
            Selector(state=state, version=version),
            self._patterns or None,
            self._nodes,
        )
        self._changes = []
        self._size = 0
        self._patterns = {}
        self._nodes = {}
        self._intent = IntentCode.TRANSFER_CHANGES
        return change_set


def _poll_event(
    builder: ChangeSetBuilder, item: JSONValue, raw: str | None = None
) -> ChangeSet | None:
    """One element of a poll body's ``events``; a change set ends the payload."""
    if not isinstance(item, dict):
        builder._note("an event that is not an object")
        return None
    name = item.get("event")
    data = item.get("data")
    if name == "server-intent":
        if builder.server_intent(data) is IntentCode.TRANSFER_NONE:
            return ChangeSet.no_changes()
    elif name == "put-object":
        builder.put_object(data, raw, RAW_EVENT)
    elif name == "delete-object":
        builder.delete_object(data)
    elif name == "payload-transferred":
        return builder.payload_transferred(data)
    return None


def _too_deep(builder: ChangeSetBuilder, item: JSONValue) -> None:
    """An element of a poll body's ``events`` nested too deeply to parse (read shallowly).

    A ``put-object`` or ``delete-object`` names the object it cannot use
    (:meth:`ChangeSetBuilder.too_deep`); any other event refuses the payload.
    """
    name = item.get("event") if type(item) is dict else None
    if name not in ("put-object", "delete-object"):
        raise ProtocolError(TOO_DEEP)
    builder.too_deep(name, item.get("data"))


_NO_EVENTS: Final = "didn't receive any known protocol events in polling payload"
_NOT_A_LIST: Final = "Invalid payload: 'events' key is missing or not a list"


def parse_fdv2_poll(body: JSONValue) -> ChangeSet:
    """A parsed ``/sdk/poll`` body (``{"events": [...]}``) as a change set (§4)."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ProtocolError(_NOT_A_LIST)
    builder = ChangeSetBuilder()
    for item in body["events"]:
        change_set = _poll_event(builder, item)
        if change_set is not None:
            return change_set
    raise ProtocolError(_NO_EVENTS)


_WS: Final = re.compile(r"[ \t\n\r]*")


def _skip(text: str, pos: int) -> int:
    """The position after the JSON whitespace at ``pos``."""
    return _WS.match(text, pos).end()  # type: ignore[union-attr]  # "*" always matches


class _Window:
    """The part of a body not parsed yet, refilled from its chunks as it arrives.

    Positions are in :attr:`text`; :attr:`base` is how many characters of
    the body came before it (for error messages). A refill drops what was
    parsed, so the window holds about one chunk and :attr:`reserve` (twice
    the longest event so far), never the body.
    """

    __slots__ = ("_chunks", "_pacer", "base", "eof", "reserve", "text")

    def __init__(self, chunks: AsyncIterator[str], pacer: Pacer) -> None:
        self._chunks = chunks
        self._pacer = pacer
        self.text = ""
        self.base = 0
        #: How much text the event parser wants ahead of an event before it
        #: tries to parse it: twice the longest event so far.
        self.reserve = 1024
        #: Whether the body has ended (the window then holds all that is left).
        self.eof = False

    async def more(self, pos: int, at_least: int = 1) -> int:
        """Keep ``text[pos:]`` and append ``at_least`` more characters (or the rest).

        Returns ``pos``'s new position (0). Asking for as much as the
        window already holds after a failed attempt (doubling) keeps the
        work linear even when the text at ``pos`` is invalid: it is tried
        again a logarithmic number of times until the body ends.
        """
        pieces = [self.text[pos:]]
        got = 0
        while got < at_least:
            # a wait for the network: the collector runs meanwhile
            chunk = await self._pacer.outside(anext(self._chunks, None))
            if chunk is None:
                self.eof = True
                break
            pieces.append(chunk)
            got += len(chunk)
        self.base += pos
        self.text = "".join(pieces)
        return 0

    def error(self, what: str, pos: int) -> ProtocolError:
        text = self.text
        found = repr(text[pos]) if pos < len(text) else "the end"
        return ProtocolError(
            f"invalid JSON: expected {what} at char {self.base + pos}, found {found}"
        )

    async def skip(self, pos: int) -> int:
        """The position of the next non-whitespace character (or the end)."""
        while True:
            pos = _skip(self.text, pos)
            if pos < len(self.text) or self.eof:
                return pos
            pos = await self.more(pos)

    async def peek(self, pos: int) -> tuple[str, int]:
        """The character at ``pos`` after whitespace ("" at the end), and its position."""
        pos = await self.skip(pos)
        return self.text[pos : pos + 1], pos

    async def string(self, pos: int) -> tuple[str, int]:
        """The JSON string whose opening quote is at ``pos``, and where it ends."""
        while True:
            try:
                found: tuple[str, int] = scanstring(self.text, pos + 1, True)
                return found
            except ValueError as exc:
                if self.eof:
                    raise ProtocolError(
                        f"invalid JSON: {self._describe(exc)}"
                    ) from None
            pos = await self.more(pos, max(1, len(self.text) - pos))

    async def value(self, pos: int) -> tuple[JSONValue, int, int]:
        """The JSON value at ``pos``, where it starts and ends now (strictly, as :func:`parse`)."""
        value, pos, end, whole = await self.value_or_cut(pos)
        if not whole:
            raise ProtocolError(TOO_DEEP)
        return value, pos, end

    async def value_or_cut(self, pos: int) -> tuple[JSONValue, int, int, bool]:
        """:meth:`value`, and whether it was read whole: nested too deeply, it is read shallowly.

        See :func:`~aioflags._core._json.shallow_decode` (False: what nests
        past 32 levels is None).
        """
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, pos)
            except RecursionError:
                break  # (read shallowly below, outside the handler's frame)
            except ValueError as exc:
                if self.eof:
                    raise ProtocolError(
                        f"invalid JSON: {self._describe(exc)}"
                    ) from None
                pos = await self.more(pos, max(1, len(self.text) - pos))
                continue
            # A number at the window's end may go on in the next chunk.
            if end < len(self.text) or self.eof:
                return value, pos, end, True
            pos = await self.more(pos)
        while True:
            try:
                value, end = shallow_decode(self.text, pos)
            except ProtocolError:
                if self.eof:
                    raise
                pos = await self.more(pos, max(1, len(self.text) - pos))
                continue
            return value, pos, end, False

    def _describe(self, exc: ValueError) -> str:
        if isinstance(exc, JSONDecodeError):
            return f"{exc.msg} at char {self.base + exc.pos}"
        return str(exc)


async def _events(
    w: _Window,
    pos: int,
    builder: ChangeSetBuilder,
    pacer: Pacer,
    result: ChangeSet | None,
) -> tuple[int, ChangeSet | None]:
    """Parse the events at ``pos`` in the ``events`` list; where the list goes on.

    The fast path: every event the window holds whole, separated by commas,
    without a call per character; returns at the first thing it does not
    handle (the list's end, a refill, an error), which the caller sorts out.
    The window is refilled *before* an event that may not be whole in it (a
    failed attempt at a cut event costs ``json``'s error, which counts the
    lines of the whole window), and a ``put-object`` of a known kind is
    queued here, in one step.
    """
    # The scanner itself, not raw_decode (a Python frame an event): it
    # raises StopIteration where raw_decode raises JSONDecodeError.
    scan = _DECODER.scan_once  # type: ignore[attr-defined]
    due = pacer.due
    kinds = _KINDS
    most = builder.max_changes
    changes = builder._changes
    found = builder._patterns
    nodes = builder._nodes
    while True:
        text = w.text
        size = len(text)
        if size - pos < w.reserve and not w.eof:
            pos = await w.more(pos, w.reserve - (size - pos))
            text = w.text
            size = len(text)
        whole = True
        try:
            item, end = scan(text, pos)
        except (RecursionError, StopIteration, ValueError):
            end = -1  # incomplete, invalid or too deep: the slow path says which
        if end < 0 or (end >= size and not w.eof):
            item, pos, end, whole = await w.value_or_cut(pos)
            text = w.text
            size = len(text)
        if end - pos > w.reserve >> 1:
            w.reserve = 2 * (end - pos)
        if not whole:
            if result is None:  # (after the payload: checked, not used)
                _too_deep(builder, item)
        elif result is None:
            data = item.get("data") if type(item) is dict else None
            if type(data) is dict and item.get("event") == "put-object":
                kind = data.get("kind")
                key = data.get("key")
                version = data.get("version")
                obj = data.get("object")
                raw = text[pos:end]
                if (
                    type(kind) is str
                    and type(key) is str
                    and type(version) is int
                    and type(obj) is dict
                    and kind in kinds
                ):
                    meta, patterns = put_meta(obj)
                    changes.append((kind, key, version, raw, RAW_EVENT, *meta))
                    if patterns:
                        found[raw] = (RAW_EVENT, patterns)
                        nodes[("f" if kind == "flag" else "s") + key] = patterns
                    elif nodes:
                        nodes.pop(("f" if kind == "flag" else "s") + key, None)
                    if len(changes) > most:
                        raise over_limit("the payload", most, changes=True)
                else:  # the checks again, one at a time, and the failure named
                    builder.put_object(data, raw, RAW_EVENT)
            else:
                result = _poll_event(
                    builder, item, text[pos:end] if type(item) is dict else None
                )
                changes = builder._changes  # a server-intent starts a new list
                found = builder._patterns
                nodes = builder._nodes
        if due():
            await pacer.pause()
        if text[end : end + 1] != ",":
            return end, result  # "]", whitespace, or an error
        pos = end + 1
        if text[pos : pos + 1] in _SPACE:  # (", " is one space: no regex)
            pos += 1
            if text[pos : pos + 1] in _SPACE:
                pos = _skip(text, pos)
        if pos >= size:
            return end, result  # the window ends: the caller refills


_SPACE: Final = frozenset(" \t\n\r")


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def parse_fdv2_poll_text(
    text: str, *, freeze_gc: bool = False, max_changes: int | None = None
) -> ChangeSet:
    """A whole ``/sdk/poll`` body's text as a change set (see :func:`parse_fdv2_poll_stream`)."""
    return await parse_fdv2_poll_stream(
        _one(text), freeze_gc=freeze_gc, max_changes=max_changes
    )


async def parse_fdv2_poll_stream(
    chunks: AsyncIterator[str],
    *,
    freeze_gc: bool = False,
    max_changes: int | None = None,
) -> ChangeSet:
    """A ``/sdk/poll`` body as a change set, parsed one event at a time as it arrives.

    ``chunks`` is the body's text in pieces (as the network delivers it):
    each event is parsed as soon as its text is there, so parsing overlaps
    the download and the body is never held whole. The whole document is
    checked as strictly as :func:`aioflags._core._json.parse` would (anything
    after the first ``payload-transferred`` is checked, not used), and the
    event loop runs between slices of a few milliseconds. A ``put-object``
    keeps its event's text (see :class:`Change`): no parsed object outlives
    its event.

    ``freeze_gc`` is ``Config.gc_freeze`` (see :class:`~aioflags._core._pacing.Pacer`);
    ``max_changes``, ``Config.max_payload_changes``.

    Raises:
        ProtocolError: invalid JSON, a payload that is not a usable FDv2
            poll body, or one with more than ``max_changes`` changes.
    """
    pacer = Pacer(freeze_gc=freeze_gc, hold_gc=True)
    try:
        return await _parse_stream(
            chunks, pacer, ChangeSetBuilder(max_changes=max_changes)
        )
    finally:
        pacer.close()


async def _parse_stream(
    chunks: AsyncIterator[str], pacer: Pacer, builder: ChangeSetBuilder
) -> ChangeSet:
    result: ChangeSet | None = None
    seen_events = False
    w = _Window(chunks, pacer)
    char, pos = await w.peek(0)
    if char == "\ufeff" and w.base == 0 and pos == 0:  # a byte-order mark
        char, pos = await w.peek(1)
    if char != "{":
        if char and char in '["-0123456789tfn':
            await w.value(pos)  # valid JSON of the wrong shape, or an error
            raise ProtocolError(_NOT_A_LIST)
        raise w.error("'{'", pos)
    char, pos = await w.peek(pos + 1)
    if char == "}":
        pos += 1
    else:
        while True:
            if char != '"':
                raise w.error("a property name", pos)
            name, pos = await w.string(pos)
            char, pos = await w.peek(pos)
            if char != ":":
                raise w.error("':'", pos)
            char, pos = await w.peek(pos + 1)
            if name == "events" and char == "[":
                seen_events = True
                char, pos = await w.peek(pos + 1)
                if char == "]":
                    pos += 1
                else:
                    while True:
                        pos, result = await _events(w, pos, builder, pacer, result)
                        char, pos = await w.peek(pos)
                        if char == "]":
                            pos += 1
                            break
                        if char != ",":
                            raise w.error("',' or ']'", pos)
                        pos = await w.skip(pos + 1)
            else:
                _, _, pos = await w.value(pos)
                if name == "events":
                    raise ProtocolError(_NOT_A_LIST)
            char, pos = await w.peek(pos)
            if char == ",":
                char, pos = await w.peek(pos + 1)
            elif char == "}":
                pos += 1
                break
            else:
                raise w.error("',' or '}'", pos)
    if (await w.peek(pos))[0]:
        raise ProtocolError(f"invalid JSON: extra data at char {w.base + pos}")
    if not seen_events:
        raise ProtocolError(_NOT_A_LIST)
    if result is None:
        raise ProtocolError(_NO_EVENTS)
    return result


def _items(data: JSONObject, field: str, unusable: list[str]) -> list[Change]:
    """An FDv1 payload's flags or segments as puts; ``unusable`` gets those it cannot use.

    An item that is not an object with an integer ``version`` is put with
    no object, as :class:`ChangeSetBuilder` puts an unusable FDv2 object:
    it answers MALFORMED_FLAG, and the rest of the payload applies.
    """
    items = data.get(field)
    if items is None:
        return []
    if not isinstance(items, dict):
        raise ProtocolError(f"FDv1 payload: {field!r} must be an object")
    kind = ObjectKind.FLAG if field == "flags" else ObjectKind.SEGMENT
    out = []
    for key, obj in items.items():
        if isinstance(obj, dict) and type(obj.get("version")) is int:
            out.append(
                Change(
                    action=ChangeKind.PUT,
                    kind=kind,
                    key=key,
                    version=obj["version"],
                    obj=obj,
                )
            )
        else:
            unusable.append(
                f"{kind.value} {_named(key)}, not an object with an integer version"
            )
            out.append(Change(action=ChangeKind.PUT, kind=kind, key=key, version=0))
    return out


def fdv1_full(data: JSONValue, *, max_changes: int | None = None) -> ChangeSet:
    """An FDv1 ``{"flags": {...}, "segments": {...}}`` payload as a full transfer.

    Raises:
        ProtocolError: the payload is not of that shape, or has more than
            ``max_changes`` flags and segments (``Config.max_payload_changes``).
    """
    body = _object(data, "FDv1 payload")
    if max_changes is not None:
        count = sum(
            len(items)
            for items in (body.get("flags"), body.get("segments"))
            if isinstance(items, dict)
        )
        if count > max_changes:
            raise over_limit("the payload", max_changes, changes=True)
    unusable: list[str] = []
    changes = (*_items(body, "flags", unusable), *_items(body, "segments", unusable))
    if unusable:
        _say_unusable(len(unusable), tuple(unusable[:_NAMED]), served=True)
    return ChangeSet(intent=IntentCode.TRANSFER_FULL, changes=changes)


#: Where an FDv1 ``patch`` or ``delete`` path points.
_FDV1_PATHS: Final = (("/flags/", ObjectKind.FLAG), ("/segments/", ObjectKind.SEGMENT))


def fdv1_patch(data: JSONValue) -> ChangeSet | None:
    """An FDv1 stream ``patch`` as a version-compared upsert (None: unknown path)."""
    return _fdv1_change(data, ChangeKind.PUT)


def fdv1_delete(data: JSONValue) -> ChangeSet | None:
    """An FDv1 stream ``delete`` as a version-compared tombstone (None: unknown path)."""
    return _fdv1_change(data, ChangeKind.DELETE)


def _fdv1_change(data: JSONValue, action: ChangeKind) -> ChangeSet | None:
    what = "patch" if action is ChangeKind.PUT else "delete"
    body = _object(data, what)
    path = body.get("path")
    target = next(
        (
            (kind, path[len(prefix) :])
            for prefix, kind in _FDV1_PATHS
            if isinstance(path, str) and path.startswith(prefix) and path != prefix
        ),
        None,
    )
    if target is None:
        logger.debug("Ignoring %s for unknown path %r", what, path)
        return None
    # A patch carries the object (with its version); a delete, the version.
    obj = _field(body, "data", dict, what) if action is ChangeKind.PUT else None
    version = _field(body if obj is None else obj, "version", int, what)
    change = Change(
        action=action, kind=target[0], key=target[1], version=version, obj=obj
    )
    return ChangeSet(
        intent=IntentCode.TRANSFER_CHANGES, changes=(change,), compare_versions=True
    )
