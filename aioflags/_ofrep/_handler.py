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
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import httpx

from aioflags._asgi import _http as wire
from aioflags._asgi._limits import Limits, ended_by_disconnect, header_number
from aioflags._core._clock import wall_ms
from aioflags._evaluation._context import Context
from aioflags._evaluation._logonce import Occurrences
from aioflags._evaluation._results import detail_of
from aioflags._systems import default_system

from ._request import Asked, BadInput, ContextFn, Request, read_context

if TYPE_CHECKING:
    from starlette.types import Message, Receive, Scope, Send

    from aioflags._evaluation._model import CompiledFlag
    from aioflags._evaluation._results import EvaluationDetail, Result
    from aioflags._evaluation._snapshot import FlagSnapshot
    from aioflags._systems import FlagSystem

    from ._source import Source

__all__ = ["OFREPHandler"]

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
    "with FlagData, .client_side() on its builder; a flag of another flag "
    'system has no such mark), or pass expose="all" if every flag may be seen '
    "by this endpoint's callers"
)


def _failure(code: str, details: str, key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {} if key is None else {"key": key}
    body.update(errorCode=code, errorDetails=details)
    return body


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

    async def _context(self, scope: Scope, ofrep: dict[str, Any]) -> Context | None:
        """The context the app's ``context=`` callable makes (None: there is none)."""
        if self._context_fn is not None:
            try:
                made: object = self._context_fn(Request(scope), ofrep)
                if inspect.isawaitable(made):
                    made = await made
            except Exception as exc:  # noqa: BLE001 - the app's callable: a 400
                raise BadInput(
                    "INVALID_CONTEXT", f"the context callable raised {exc!r}"
                ) from None
            if not isinstance(made, Context) or not made.valid:
                raise BadInput(
                    "INVALID_CONTEXT",
                    "the context callable did not return a valid aioflags.Context",
                )
            return made
        return None

    async def _refuse(self, send: Send, bad: BadInput, key: str | None) -> None:
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
    ) -> Asked | None:
        """The request's context as sent, or None once a failure has been answered.

        The context is mapped later, by the system of the flag evaluated
        (:meth:`Asked.context`), unless the app's ``context=`` callable
        made it.
        """
        try:
            ofrep = await read_context(receive)
            made = await self._context(scope, ofrep)
        except BadInput as bad:
            await self._refuse(send, bad, key)
            return None
        except anyio.EndOfStream:
            return None
        if not self._source.ready():
            await _not_ready(send, key)
            return None
        return Asked(ofrep, made)

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
        except BadInput as bad:
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
        except BadInput as bad:
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
        self, snapshot: FlagSnapshot, asked: Asked
    ) -> tuple[
        list[tuple[str, CompiledFlag, Result]] | None,
        dict[FlagSystem, BadInput] | None,
    ]:
        """Every flag's result, each for the context its own system maps.

        Each flag's result as the evaluation gives it (not read back out of
        LaunchDarkly's bootstrap shape). The second item: the systems whose
        flags have no result, and why (their system refused the context,
        as LaunchDarkly's does for want of a targeting key, where flagd's
        needs none): each such flag is then an item with that failure.

        Raises:
            BadInput: the context suits no flag of the data: the whole
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
            raise BadInput("INVALID_CONTEXT", "the targeting key must be a string")
        contexts: dict[FlagSystem, Context] = {}
        refused: dict[FlagSystem, BadInput] = {}
        for system in systems:
            mapped = asked.mapped(system)
            if isinstance(mapped, BadInput):
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
