"""OFREP, the OpenFeature Remote Evaluation Protocol, as a plain ASGI app.

``POST /ofrep/v1/evaluate/flags/{key}`` (one flag), ``POST
/ofrep/v1/evaluate/flags`` (every exposed flag, with an ``ETag`` and a
change stream announced in ``eventStreams``) and ``GET
/ofrep/v1/event-stream`` (``refetchEvaluation`` on every data change), under
whatever ``root_path`` the app is mounted at (../shared/ofrep.md is the
contract). It needs no web framework: ``aioflags.ofrep.OFREPApp`` serves a
running :class:`~aioflags.Client` with it, and ``aioflags serve`` its own
flags (a :class:`Source` each).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import anyio
import httpx

from aioflags._asgi import _http as wire
from aioflags._asgi._limits import (
    BodyRefused,
    Limits,
    ended_by_disconnect,
    header_number,
    read_body,
)
from aioflags._asgi._signal import Signal
from aioflags._client._ofcontext import ContextError
from aioflags._core._clock import wall_ms
from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import parse
from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    IntentCode,
    ObjectKind,
    full_transfer,
    puts,
)
from aioflags._datasystem._store import Store
from aioflags._evaluation._context import Context
from aioflags._evaluation._logonce import Occurrences
from aioflags._evaluation._results import detail_of
from aioflags._systems import default_system

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, MutableMapping

    from starlette.types import Message, Receive, Scope, Send

    from aioflags._core._json import JSONObject
    from aioflags._evaluation._model import CompiledFlag
    from aioflags._evaluation._results import EvaluationDetail, Result
    from aioflags._evaluation._snapshot import FlagSnapshot
    from aioflags._systems import FlagSystem

__all__ = [
    "DataSource",
    "OFREPHandler",
    "Request",
    "Source",
]

logger = logging.getLogger("aioflags.ofrep")

#: An OFREP handler's bounds unless it is given others.
DEFAULT_LIMITS: Final = Limits()

_PREFIX: Final = "/ofrep/v1"
_SINGLE: Final = f"{_PREFIX}/evaluate/flags/"
_BULK: Final = f"{_PREFIX}/evaluate/flags"
_STREAM: Final = f"{_PREFIX}/event-stream"
#: OFREP's reasons are OpenFeature's words (the Python provider, 0.3.0,
#: refuses any other); LaunchDarkly's own word stays in ``metadata.ldReason``.
#: The one exception is the flag lens's ``OVERRIDE``, which its contract
#: reports as it is (an evaluation only a lens token's holder sees).
_OPENFEATURE_REASONS: Final = frozenset(
    {
        "STATIC",
        "DEFAULT",
        "TARGETING_MATCH",
        "SPLIT",
        "CACHED",
        "DISABLED",
        "UNKNOWN",
        "OVERRIDE",
    }
)
#: Flag keys hidden by ``expose="client-side"`` that one handler logs, at most
#: (each once); past that, hidden flags are answered without a word.
MAX_HIDDEN_LOGGED: Final = 1000
#: Hidden keys a bulk request's warning names.
_HIDDEN_NAMED: Final = 5
_EXPOSE_FIX: Final = (
    "mark the flag available to client-side SDKs (in LaunchDarkly; in flag "
    "JSON, clientSideAvailability.usingEnvironmentId or clientSide: true; "
    "with FlagData, .client_side() on its builder; a flagd flag has no such "
    'mark), or pass expose="all" if every flag may be seen by this endpoint\'s '
    "callers"
)


class Source(Protocol):
    """What OFREP evaluates: a client, or ``serve``'s own flags."""

    def snapshot(self) -> FlagSnapshot:
        """The current flag data."""
        ...

    def ready(self) -> bool:
        """Whether there is flag data to evaluate yet."""
        ...

    def version(self) -> int:
        """A number that grows with every data change."""
        ...

    async def evaluate(self, key: str, context: Context) -> EvaluationDetail[Any]:
        """Evaluate one flag as the source's own evaluation (events, hooks)."""
        ...

    async def changed(self, after: int) -> None:
        """Return once :meth:`version` is past ``after``."""
        ...


class Request:
    """What a ``context=`` callable sees of the request: headers, cookies, scope."""

    __slots__ = ("cookies", "headers", "scope")

    def __init__(self, scope: Scope) -> None:
        #: The ASGI scope of the request.
        self.scope: MutableMapping[str, Any] = scope
        headers = httpx.Headers(scope.get("headers", []))
        #: Its headers (any case finds them).
        self.headers: Mapping[str, str] = headers
        #: Its cookies by name (HTTP/2 sends a ``Cookie`` header per cookie).
        self.cookies: Mapping[str, str] = _cookies(headers.get_list("cookie"))


def _cookies(headers: list[str]) -> dict[str, str]:
    """``Cookie`` headers' cookies by name, read as browsers write them.

    Not ``http.cookies.SimpleCookie``: it drops every cookie of a header
    with one it does not take (a space in a value, a pair with no ``=``).
    A value in double quotes is read without them.
    """
    cookies: dict[str, str] = {}
    for pair in "; ".join(headers).split(";"):
        name, _, value = pair.partition("=") if "=" in pair else ("", "", pair)
        name, value = name.strip(), value.strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name or value:
            cookies[name] = value
    return cookies


class _BadInput(Exception):
    """A request OFREP answers with 400 and a failure body.

    ``unread``: its body was not read to its end (too large, too slow):
    the answer closes the connection, so that no client sends its next
    request on it.
    """

    def __init__(self, code: str, details: str, *, unread: bool = False) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.unread = unread


def _failure(code: str, details: str, key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {} if key is None else {"key": key}
    body.update(errorCode=code, errorDetails=details)
    return body


class _Asked:
    """A request's ``context`` object, to map for the flag evaluated.

    Each flag's system maps it (``FlagSystem.context_from``): a
    LaunchDarkly flag's as ``aioflags.openfeature.to_context`` does (a
    targeting key needed), a flagd flag's as flagd's providers do (none
    needed, every attribute flagd's). ``made``: the app's ``context=``
    callable's context, which every flag gets instead.
    """

    __slots__ = ("made", "ofrep")

    def __init__(self, ofrep: dict[str, Any], made: Context | None) -> None:
        self.ofrep = ofrep
        self.made = made

    def context(self, system: FlagSystem) -> Context:
        """The context for a flag of ``system`` (raises :class:`_BadInput`)."""
        if self.made is not None:
            return self.made
        ofrep = self.ofrep
        try:
            return system.context_from(ofrep.get("targetingKey"), ofrep, logger)
        except ContextError as exc:
            raise _BadInput(exc.code, str(exc)) from None

    def mapped(self, system: FlagSystem) -> Context | _BadInput:
        """:meth:`context`, or why ``system`` refuses it."""
        try:
            return self.context(system)
        except _BadInput as bad:
            return bad


ContextFn = Callable[[Request, "dict[str, Any]"], "Context | Awaitable[Context]"]


class OFREPHandler:
    """The OFREP endpoints over one :class:`Source`.

    ``expose``: ``"client-side"`` serves only flags LaunchDarkly marks for
    client-side SDKs (any other key answers exactly as an unknown one, and
    is logged at WARNING, once per key up to :data:`MAX_HIDDEN_LOGGED`, with
    the fix; a bulk answer that leaves flags out, once); ``"all"`` every flag. ``context``: a callable that derives the evaluated
    context from the request instead of trusting its body. CORS is the
    app's (``aioflags serve``: Starlette's ``CORSMiddleware`` for pages on
    this machine).
    """

    def __init__(
        self,
        source: Source,
        *,
        context: ContextFn | None = None,
        expose: Literal["client-side", "all"] = "client-side",
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._source = source
        #: Its bounds: the body's size and time, the stream's keep-alive.
        self._limits = limits
        self._context_fn = context
        self._client_side_only = expose == "client-side"
        self._warned: set[str] = set()
        self._hidden = Occurrences(MAX_HIDDEN_LOGGED)
        self._bulk_hid = False  # a bulk answer that left flags out was logged
        #: the data version whose bulk answers were looked at for hidden
        #: flags (once per version: the look walks every flag)
        self._bulk_looked = -1
        #: the last snapshot whose flags' systems were looked at, and them
        self._kinds: tuple[FlagSnapshot, tuple[FlagSystem, ...]] | None = None

    # --------------------------------------------------------------- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        method: str = scope["method"]
        if path == _STREAM:
            allowed = "GET"
        elif path == _BULK or (path.startswith(_SINGLE) and len(path) > len(_SINGLE)):
            allowed = "POST"
        else:
            await _answer(send, 404, _failure("GENERAL", "no such OFREP endpoint"))
            return
        allow = [(b"allow", f"{allowed}, OPTIONS".encode())]
        if method == "OPTIONS":  # (a CORS preflight is the app's: its middleware)
            await wire.respond(send, 204, allow)
            return
        if method != allowed:
            message = f"{method} is not allowed here"
            await _answer(send, 405, _failure("GENERAL", message), allow)
            return
        if path == _STREAM:
            await self._stream(scope, receive, send)
        elif path == _BULK:
            await self._bulk(scope, receive, send)
        else:
            await self._single(path[len(_SINGLE) :], scope, receive, send)

    # -------------------------------------------------------------- input
    def _note(self, kind: str, details: str) -> None:
        """One WARNING per kind of bad input; the rest at DEBUG."""
        if kind in self._warned:
            logger.debug("OFREP: refused a request: %s", details)
            return
        self._warned.add(kind)
        logger.warning(
            "OFREP: refused a request: %s (later ones of this kind are logged at DEBUG)",
            details,
        )

    def _hid(self, key: str) -> None:
        """``key`` is a flag that ``expose`` hides: say so once (it looks missing)."""
        if key in self._hidden:
            return
        count = self._hidden.add(key)
        if count == 1:
            logger.warning(
                "OFREP: flag %r is not available to client-side SDKs, so it is "
                'answered as unknown (404 FLAG_NOT_FOUND) under expose="client-side" '
                "(the default): to serve it, %s (logged once per flag)",
                key,
                _EXPOSE_FIX,
            )
        elif count == 0 and self._hidden.newly_full():
            logger.warning(
                'OFREP: %d flags hidden by expose="client-side" have been logged: '
                "further ones are not (they are still answered as unknown)",
                MAX_HIDDEN_LOGGED,
            )

    def _bulk_hides(self, snapshot: FlagSnapshot, served: int, keys: set[str]) -> None:
        """Say once that a bulk answer left out flags that ``expose`` hides."""
        hidden = sorted(snapshot.flag_keys - keys)
        if not hidden:
            return
        self._bulk_hid = True
        named = ", ".join(repr(key) for key in hidden[:_HIDDEN_NAMED])
        more = len(hidden) - _HIDDEN_NAMED
        logger.warning(
            "OFREP: a bulk evaluation served %d flags and left out %d not "
            'available to client-side SDKs (expose="client-side", the default): '
            "%s%s. To serve a flag, %s (logged once)",
            served,
            len(hidden),
            named,
            f" and {more} more" if more > 0 else "",
            _EXPOSE_FIX,
        )

    async def _read(self, receive: Receive) -> dict[str, Any]:
        """The request's ``context`` object (``{}`` when absent).

        A body with context attributes at its top level and no ``context``
        is refused, saying where they go: not evaluated for no context.

        The body is bounded by the :class:`~aioflags._asgi._limits.BodyLimits` around this
        app (``OFREPApp``'s own, or the flag service's): past a bound, OFREP
        answers ``400`` in its own words.
        """
        try:
            body = await read_body(receive)
        except BodyRefused as refused:
            raise _BadInput("GENERAL", refused.message, unread=True) from None
        if not body.strip():
            return {}
        try:
            data = parse(body)
        except ProtocolError as exc:
            raise _BadInput("INVALID_CONTEXT", f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise _BadInput("INVALID_CONTEXT", "the body must be a JSON object")
        if "context" not in data:
            # {"targetingKey": "u1"}: evaluated as {} it would serve another
            # bucket without a word (a body with no context at all is {}).
            _misplaced(data)
        context = data.get("context", {})
        if not isinstance(context, dict):
            raise _BadInput("INVALID_CONTEXT", "'context' must be a JSON object")
        return context

    async def _context(self, scope: Scope, ofrep: dict[str, Any]) -> Context | None:
        """The context the app's ``context=`` callable makes (None: there is none)."""
        if self._context_fn is not None:
            try:
                made: object = self._context_fn(Request(scope), ofrep)
                if inspect.isawaitable(made):
                    made = await made
            except Exception as exc:  # noqa: BLE001 - the app's callable: a 400
                raise _BadInput(
                    "INVALID_CONTEXT", f"the context callable raised {exc!r}"
                ) from None
            if not isinstance(made, Context) or not made.valid:
                raise _BadInput(
                    "INVALID_CONTEXT",
                    "the context callable did not return a valid aioflags.Context",
                )
            return made
        return None

    async def _refuse(self, send: Send, bad: _BadInput, key: str | None) -> None:
        """Answer ``bad`` input: 400 with its failure body (said once per kind)."""
        self._note(bad.code, bad.details)
        headers = [(b"connection", b"close")] if bad.unread else []
        await _answer(send, 400, _failure(bad.code, bad.details, key), headers)

    async def _prepare(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str | None,
    ) -> _Asked | None:
        """The request's context as sent, or None once a failure has been answered.

        The context is mapped later, by the system of the flag evaluated
        (:meth:`_Asked.context`), unless the app's ``context=`` callable
        made it.
        """
        try:
            ofrep = await self._read(receive)
            made = await self._context(scope, ofrep)
        except _BadInput as bad:
            await self._refuse(send, bad, key)
            return None
        except anyio.EndOfStream:
            return None
        if not self._source.ready():
            await _not_ready(send, key)
            return None
        return _Asked(ofrep, made)

    def _systems(self, snapshot: FlagSnapshot) -> tuple[FlagSystem, ...]:
        """The systems of ``snapshot``'s flags, in their flags' order (per data)."""
        kept = self._kinds
        if kept is not None and kept[0] is snapshot:
            return kept[1]
        found = dict.fromkeys(snapshot._system(key) for key in snapshot.flag_keys)
        systems = tuple(system for system in found if system is not None)
        self._kinds = (snapshot, systems)
        return systems

    # ------------------------------------------------------------- single
    async def _single(
        self, key: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        asked = await self._prepare(scope, receive, send, key)
        if asked is None:
            return
        snapshot = self._source.snapshot()
        flag = snapshot._flag(key)
        if flag is None or (self._client_side_only and not flag.client_side):
            if flag is not None:
                self._hid(key)
            await _answer(send, 404, _not_found(key))
            return
        # The context as the flag's own system maps it (a flagd flag needs
        # no targeting key): known once the flag is.
        try:
            context = asked.context(flag.system)
        except _BadInput as bad:
            await self._refuse(send, bad, key)
            return
        detail = await self._source.evaluate(key, context)
        error = detail.reason.get("errorKind")
        if error == "FLAG_NOT_FOUND":
            await _answer(send, 404, _not_found(key))
            return
        if error == "CLIENT_NOT_READY":
            await _not_ready(send, key)
            return
        if error is not None:
            await _answer(send, 400, _failed(key, error))
            return
        await _answer(send, 200, _success(key, detail, flag.version, snapshot))

    # --------------------------------------------------------------- bulk
    async def _bulk(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = await self._prepare(scope, receive, send, None)
        if asked is None:
            return
        version = self._source.version()  # (before the data it numbers)
        snapshot = self._source.snapshot()
        try:
            evaluated, refused = self._evaluated(snapshot, asked)
        except _BadInput as bad:
            await self._refuse(send, bad, None)
            return
        results = evaluated or []
        if (
            self._client_side_only
            and evaluated is not None
            and not self._bulk_hid
            and version != self._bulk_looked
        ):
            self._bulk_looked = version
            self._bulk_hides(snapshot, len(results), {key for key, _, _ in results})
        flags: list[dict[str, Any]] = []
        for key, flag, result in sorted(results, key=itemgetter(0)):
            refusal = None if refused is None else refused.get(flag.system)
            if refusal is not None:
                flags.append(_failure(refusal.code, refusal.details, key))
                continue
            error = result.reason.get("errorKind")
            if error is not None:
                flags.append(_failed(key, error))
                continue
            detail = detail_of(result, None)
            flags.append(_success(key, detail, flag.version, snapshot))
        root: str = scope.get("root_path", "")
        body = {
            "flags": flags,
            "metadata": {},
            "eventStreams": [
                {
                    "type": "sse",
                    "endpoint": {"requestUri": f"{root}{_STREAM}"},
                    "inactivityDelaySec": 120,
                }
            ],
        }
        data = json.dumps(body, separators=(",", ":")).encode()
        etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
        headers = [(b"etag", etag.encode()), (b"cache-control", b"no-cache")]
        if etag in wire.etags(httpx.Headers(scope["headers"]).get("if-none-match")):
            await wire.respond(send, 304, headers)
            return
        await wire.respond(send, 200, headers, data)

    def _evaluated(
        self, snapshot: FlagSnapshot, asked: _Asked
    ) -> tuple[
        list[tuple[str, CompiledFlag, Result]] | None,
        dict[FlagSystem, _BadInput] | None,
    ]:
        """Every flag's result, each for the context its own system maps.

        Each flag's result as the evaluation gives it (not read back out of
        LaunchDarkly's bootstrap shape). The second item: the systems whose
        flags have no result, and why (their system refused the context,
        as LaunchDarkly's does for want of a targeting key, where flagd's
        needs none): each such flag is then an item with that failure.

        Raises:
            _BadInput: the context suits no flag of the data: the whole
                request is refused, as a data set of one system refuses it;
                with flags of several systems, a body OFREP's schema refuses
                (a targeting key that is not a string), or one that every
                system refused (the first one's refusal).
        """
        client_side_only = self._client_side_only
        if asked.made is not None:
            return snapshot._results(asked.made, client_side_only), None
        systems = self._systems(snapshot)
        if len(systems) <= 1:
            context = asked.context(systems[0] if systems else default_system())
            return snapshot._results(context, client_side_only), None
        key = asked.ofrep.get("targetingKey")
        if key is not None and not isinstance(key, str):  # (OFREP's schema)
            raise _BadInput("INVALID_CONTEXT", "the targeting key must be a string")
        contexts: dict[FlagSystem, Context] = {}
        refused: dict[FlagSystem, _BadInput] = {}
        for system in systems:
            mapped = asked.mapped(system)
            if isinstance(mapped, _BadInput):
                refused[system] = mapped
            else:
                contexts[system] = mapped
        if not contexts:
            raise next(iter(refused.values()))
        by_system: dict[FlagSystem, dict[str, tuple[str, CompiledFlag, Result]]] = {}
        first: list[tuple[str, CompiledFlag, Result]] | None = None
        for system, context in contexts.items():
            results = snapshot._results(context, client_side_only)
            if results is None:
                return None, None
            by_system[system] = {item[0]: item for item in results}
            first = results if first is None else first
        assert first is not None  # (contexts is not empty)
        answered = [
            by_system[item[1].system][item[0]] if item[1].system in by_system else item
            for item in first
        ]
        return answered, refused or None

    # ------------------------------------------------------------- stream
    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = header_number(httpx.Headers(scope["headers"]).get("last-event-id", ""))
        # The version it starts from is read before the client sees the
        # stream open: a change made after that is a change it is told of.
        version = self._source.version()
        await send(wire.stream_start())
        async with ended_by_disconnect(receive):
            if seen is not None and seen < version:
                await send(_refetch(version))
            await send(wire.stream_chunk(b": connected\n\n"))
            while True:
                with anyio.move_on_after(self._limits.ofrep_keepalive) as waited:
                    await self._source.changed(version)
                if waited.cancelled_caught:
                    if not self._source.ready():
                        # The client closed (or lost its data): end the stream.
                        await send(wire.stream_end())
                        return
                    await send(wire.stream_chunk(b": keep-alive\n\n"))
                    continue
                version = self._source.version()  # a burst is one event
                await send(_refetch(version))


#: A body's top-level names that belong in its ``context``: a body with one
#: of them and no ``context`` put its context beside it, not in it.
_CONTEXT_NAMES: Final = ("targetingKey", "targeting_key", "kind", "key")


def _misplaced(body: Mapping[str, Any]) -> None:
    """Refuse a body whose context attributes are at its top level (no ``context``).

    Raises:
        _BadInput: INVALID_CONTEXT, naming the attributes and the wrapper.
    """
    names = [name for name in _CONTEXT_NAMES if name in body]
    if names:
        found = ", ".join(json.dumps(name) for name in names)
        raise _BadInput(
            "INVALID_CONTEXT",
            f"{found} at the top of the body: OFREP reads the context under "
            '"context", as in {"context": {"targetingKey": "u1", ...}}',
        )


def _not_found(key: str) -> dict[str, Any]:
    return _failure("FLAG_NOT_FOUND", f"no flag {key!r}", key)


def _failed(key: str, error: object) -> dict[str, Any]:
    """A flag whose evaluation failed (``error``: its reason's ``errorKind``)."""
    code = "PARSE_ERROR" if error in ("MALFORMED_FLAG", "PARSE_ERROR") else "GENERAL"
    return _failure(code, f"evaluation failed: {error}", key)


async def _not_ready(send: Send, key: str | None) -> None:
    """``503`` and ``Retry-After``: there is no flag data to evaluate yet."""
    body = _failure("GENERAL", "the flag data has not arrived yet", key)
    await _answer(send, 503, body, [(b"retry-after", b"1")])


def _success(
    key: str,
    detail: EvaluationDetail[Any],
    version: int,
    snapshot: FlagSnapshot,
) -> dict[str, Any]:
    """A success answer: the variant and the metadata as the flag's system says them.

    A flagd flag's variant is its name and its metadata its own; a
    LaunchDarkly flag's variant is its variation index as text, and its
    metadata its version and LaunchDarkly's reason word
    (``FlagSystem.ofrep_metadata``). No variant served (the code default):
    no ``value``; a flagd flag's (``DISABLED``, or no default variant) then
    has the variant ``""`` (``FlagSystem.unserved_variant``), as
    OpenFeature's Python OFREP provider needs a ``variant`` in every answer
    (and OFREP's is any string), so that a disabled flag reads as disabled
    there, not as an error.
    """
    word = snapshot.openfeature_reason(key, detail)
    body: dict[str, Any] = {
        "key": key,
        "reason": word if word in _OPENFEATURE_REASONS else "DEFAULT",
    }
    flag = snapshot._flag(key)
    system = default_system() if flag is None else flag.system
    body["metadata"] = system.ofrep_metadata(flag, version, detail.reason)
    if detail.variation_index is not None:
        body["value"] = detail.value
        body["variant"] = snapshot.openfeature_variant(key, detail)
    elif system.unserved_variant is not None:
        body["variant"] = system.unserved_variant
    return body


def _refetch(version: int) -> Message:
    data = {
        "type": "refetchEvaluation",
        "etag": f'"{version}"',
        "lastModified": wall_ms() // 1000,
    }
    return wire.stream_chunk(wire.sse("message", data, event_id=version).encode())


async def _answer(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await wire.respond(send, status, headers or [], json.dumps(body).encode())


#: Item changes a :class:`DataSource` keeps for its next snapshot; past this
#: many, the snapshot is built again from every object instead.
_MAX_PENDING: Final = 10_000


class DataSource:
    """A :class:`Source` over raw flag data (``aioflags serve``'s): no client.

    ``version()`` gives the data's version and ``items()`` its flags and
    segments by key (read only when the snapshot is built); the snapshot is brought up to date
    when the version moved, so the very next request after a change sees
    it. Changes told with :meth:`changed_item` are applied alone to the
    store (every other flag stays compiled: an evaluation of 1,000 flags
    after a change compiles one, not 1,000); without them, the store is
    built again from ``items()``. ``notify()`` is called on every change
    (it wakes the streams). Evaluations record nothing: the service has no
    analytics of its own.
    """

    def __init__(
        self,
        version: Callable[[], int],
        items: Callable[[], tuple[Mapping[str, JSONObject], Mapping[str, JSONObject]]],
    ) -> None:
        self._version = version
        self._items = items
        self._store: Store | None = None
        #: the version the store holds
        self._at: int | None = None
        #: the changes since, in order; None: build the store again
        self._pending: list[Change] | None = None
        self._changed = Signal()
        #: While :meth:`fresh_snapshot` builds a store: the changes since the
        #: version it builds (None: none is being built, or too many came).
        self._during: list[Change] | None = None
        self._building = anyio.Lock()

    def changed_item(
        self, kind: str, key: str, version: int, obj: JSONObject | None
    ) -> None:
        """An item was put (``obj``) or deleted (None): the next snapshot applies it alone."""
        change = Change(
            action=ChangeKind.PUT if obj is not None else ChangeKind.DELETE,
            kind=ObjectKind(kind),
            key=key,
            version=version,
            obj=obj,
        )
        during = self._during
        if during is not None:
            if len(during) >= _MAX_PENDING:
                self._during = None
            else:
                during.append(change)
        pending = self._pending
        if pending is None:
            return  # the store is built again anyway
        if len(pending) >= _MAX_PENDING:
            self._pending = None
            return
        pending.append(change)

    def version(self) -> int:
        return self._version()

    def ready(self) -> bool:
        return True

    def snapshot(self) -> FlagSnapshot:
        version = self._version()
        store = self._store
        if store is not None and self._at == version:
            return store.snapshot
        if store is not None and self._pending is not None:
            store.apply_now(
                ChangeSet(
                    intent=IntentCode.TRANSFER_CHANGES, changes=tuple(self._pending)
                )
            )
        else:
            store = self._store = Store()
            store.apply_now(self._everything())
        self._at = version
        self._pending = []
        return store.snapshot

    def _everything(self) -> ChangeSet:
        """Every object of the data, as one full transfer."""
        flags, segments = self._items()
        return full_transfer(
            puts(ObjectKind.FLAG, flags), puts(ObjectKind.SEGMENT, segments)
        )

    async def fresh_snapshot(self) -> FlagSnapshot:
        """:meth:`snapshot`, but a store built from every object is built in slices.

        The first time (or after more changes than are kept) the store is
        built from the whole data: at 20,000 flags that held the event loop
        over a second. A few changes are applied at once, as :meth:`snapshot`
        does. The snapshot is of the data as it was when asked, or newer.
        """
        async with self._building:
            if self._store is not None and self._pending is not None:
                return self.snapshot()
            version = self._version()
            everything = self._everything()
            self._during = []
            try:
                store = Store()
                await store.apply(everything)
                during = self._during
            finally:
                self._during = None
            if self._store is not None and self._pending is not None:
                return self.snapshot()  # built meanwhile (and kept up to date)
            self._store, self._at, self._pending = store, version, during
            return store.snapshot

    async def evaluate(self, key: str, context: Context) -> EvaluationDetail[Any]:
        return self.snapshot().variation_detail(key, context, None)

    def notify(self) -> None:
        self._changed.notify()

    async def changed(self, after: int) -> None:
        await self._changed.wait_until(lambda: self.version() > after)
