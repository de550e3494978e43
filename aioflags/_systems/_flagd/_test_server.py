"""FlagdServer: a flagd sync server (``flagd.sync.v1``) on loopback, for tests.

It serves flagd flag definition documents over gRPC as flagd's sync
service does (``flagd/pkg/service/flag-sync/handler.go``): ``SyncFlags``
streams the whole selected document at once and again after every change,
``FetchAllFlags`` answers it, ``GetMetadata`` answers the static context (or
``UNIMPLEMENTED``, as ``flagd --disable-sync-metadata`` does). Faults are
injected by hand (:meth:`FlagdServer.refuse`, :meth:`~FlagdServer.drop_streams`,
:meth:`~FlagdServer.stop` and :meth:`~FlagdServer.start`), every call is
recorded, and :meth:`~FlagdServer.wait_until` waits on what it records, so
tests never sleep.

gRPC (``grpc.aio``) runs on asyncio only, and comes with the ``flagd``
extra: it is imported when a server starts, so ``aioflags.testing`` imports
without it.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, final

import anyio

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Callable, Mapping
    from types import TracebackType

    import grpc
    import grpc.aio

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._systems._flagd._sync import sync_pb2

__all__ = ["FlagdCall", "FlagdServer"]

_INSTALL: Final = "FlagdServer needs the flagd extra: pip install 'aioflags[flagd]'"
_SERVICE: Final = "flagd.sync.v1.FlagSyncService"
#: The header a selector travels in (flagd's ``FLAGD_SELECTOR_HEADER``).
SELECTOR_HEADER: Final = "flagd-selector"
#: The selector keys flagd knows (``core/pkg/store/query.go``).
_SELECTOR_KEYS: Final = ("source", "flagSetId")


@final
class FlagdCall(Frozen):
    """One call a :class:`FlagdServer` received.

    Attributes:
        method: ``"SyncFlags"``, ``"FetchAllFlags"`` or ``"GetMetadata"``.
        selector_header: the ``flagd-selector`` header's value ("" if none).
        selector: the request body's (deprecated) ``selector`` ("" if none).
        provider_id: the request body's ``provider_id`` ("" if none).
        peer: the client's end of the connection, as gRPC names it
            (``"ipv4:127.0.0.1:50312"``): calls on one connection share it.
    """

    __slots__ = ("method", "selector_header", "selector", "provider_id", "peer")  # noqa: RUF023 - fields in order
    method: str
    selector_header: str
    selector: str
    provider_id: str
    peer: str

    def __init__(
        self,
        *,
        method: str,
        selector_header: str,
        selector: str,
        provider_id: str,
        peer: str = "",
    ) -> None:
        set_field(self, "method", method)
        set_field(self, "selector_header", selector_header)
        set_field(self, "selector", selector)
        set_field(self, "provider_id", provider_id)
        set_field(self, "peer", peer)


#: Why FlagdServer refuses a document with NaN or Infinity.
_NOT_JSON: Final = (
    "FlagdServer: {what} holds NaN or Infinity, which JSON has not and flagd "
    "never sends: use numbers JSON has"
)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(name)


def _json_copy(value: Any, what: str) -> Any:
    """A copy of ``value`` (the test cannot change it), which must be JSON.

    Raises:
        ConfigurationError: it holds NaN or Infinity, which JSON has not:
            flagd, which writes JSON, never sends them.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        raise ConfigurationError(_NOT_JSON.format(what=what)) from None
    return json.loads(text)


def _document(given: JSONObject | str | os.PathLike[str]) -> JSONObject:
    """A flagd document: as given, or read from a JSON file (no NaN or Infinity either way)."""
    if isinstance(given, dict):
        copy: JSONObject = _json_copy(given, "the flagd document")
        return copy
    text = Path(given).read_text(encoding="utf-8")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        if str(exc) in ("NaN", "Infinity", "-Infinity"):
            raise ConfigurationError(
                _NOT_JSON.format(what=f"the flagd document {given}")
            ) from None
        raise
    if not isinstance(data, dict):
        raise ConfigurationError(f"{given}: a flagd document is a JSON object")
    return data


def _flags(document: JSONObject) -> dict[str, Any]:
    flags = document.get("flags")
    return dict(flags) if isinstance(flags, dict) else {}


def _flag_set_id(flag: object, document: JSONObject) -> str:
    """A flag's ``flagSetId``: its own metadata's, else its document's ("" if none)."""
    for metadata in (
        flag.get("metadata") if isinstance(flag, dict) else None,
        document.get("metadata"),
    ):
        if isinstance(metadata, dict) and "flagSetId" in metadata:
            return str(metadata["flagSetId"])
    return ""


@final
class FlagdServer:
    """A flagd sync server on 127.0.0.1 (or a Unix socket), optionally over TLS.

    Use it as an async context manager; ``target`` is what
    ``DataSystem.flagd(target=...)`` takes once it is listening::

        async with FlagdServer({"flags": {"new-ui": {...}}}) as server:
            config = Config(data_system=DataSystem.flagd(server.target))

    Args:
        document: the flagd document served (a dict, or a JSON file's
            path), as the source named ``"default"``.
        sources: documents by source name (flagd's ``--uri`` names), served
            together: a flag in a later source replaces one of the same key
            in an earlier one. Give ``document`` or ``sources``, or neither
            (no flags until :meth:`set_document`).
        sync_context: the static context sent with every ``SyncFlags``
            message (flagd's ``--context-value``); ``None``: an empty one,
            as flagd sends without ``--context-value`` (flagd always sends
            the field; flagd's Python provider fails without it).
        get_metadata: ``True``: ``GetMetadata`` answers ``metadata`` (or,
            without it, ``sync_context``; an empty one without either) as
            flagd does; ``False``: it answers ``UNIMPLEMENTED`` (``flagd
            --disable-sync-metadata``).
        metadata: what ``GetMetadata`` answers, as a server of an older
            flagd does, that sends no sync context: given without
            ``sync_context``, ``SyncFlags`` messages carry none.
        socket_path: listen on this Unix socket instead of 127.0.0.1.
        tls: ``(certificate_chain_path, private_key_path)``: serve TLS with
            this certificate (PEM files).

    What a selector selects (flagd's ``core/pkg/store/query.go``, kept
    simple): ``""`` every source; ``"source=NAME"`` or ``"NAME"`` (no
    ``=``) one source's document as it is, ``$evaluators`` and
    ``metadata`` included; ``"flagSetId=ID"`` the flags whose own
    metadata's ``flagSetId``, else their document's, is ``ID`` (``""``:
    those with none). Any other key is refused with ``INVALID_ARGUMENT``,
    as flagd does. Several sources together are sent as one document: the
    flags merged, the ``$evaluators`` merged, and each document's
    ``metadata`` merged into its own flags' (the set-level metadata, which
    differs per source, is left out).

    The header ``flagd-selector`` wins over the body's deprecated
    ``selector``, as in flagd. Every call is recorded (:attr:`calls`).

    What it serves is JSON, as flagd's is: a document, a flag, a sync
    context or metadata holding NaN or Infinity (``float("nan")``) is
    refused where it is given, with a :class:`~aioflags.ConfigurationError`.

    Added in version 0.2.0.
    """

    __slots__ = (
        "_changed",
        "_drop",
        "_get_metadata",
        "_made",
        "_metadata_answer",
        "_port",
        "_refusals",
        "_server",
        "_socket_path",
        "_sources",
        "_sync_context",
        "_tls",
        "calls",
        "open_streams",
        "refused",
    )

    def __init__(
        self,
        document: JSONObject | str | os.PathLike[str] | None = None,
        *,
        sources: Mapping[str, JSONObject | str | os.PathLike[str]] | None = None,
        sync_context: Mapping[str, JSONValue] | None = None,
        get_metadata: bool = True,
        metadata: Mapping[str, JSONValue] | None = None,
        socket_path: str | os.PathLike[str] | None = None,
        tls: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    ) -> None:
        if document is not None and sources is not None:
            raise ConfigurationError(
                "FlagdServer takes a document or sources, not both"
            )
        given = {"default": document} if document is not None else dict(sources or {})
        self._sources: dict[str, JSONObject] = {
            name: _document(doc) for name, doc in given.items()
        }
        self._sync_context = _context(sync_context, "the sync context")
        self._get_metadata = get_metadata
        self._metadata_answer = _context(metadata, "the GetMetadata metadata")
        self._socket_path = None if socket_path is None else str(socket_path)
        #: (certificate chain, private key) as PEM bytes, read now.
        self._tls = (
            None
            if tls is None
            else (Path(tls[0]).read_bytes(), Path(tls[1]).read_bytes())
        )
        self._port = 0
        self._server: grpc.aio.Server | None = None
        #: Its servers that may still live (weakly: ``release_grpc``).
        self._made: weakref.WeakSet[grpc.aio.Server] = weakref.WeakSet()
        #: Set and replaced on every change of what is served or recorded.
        self._changed = anyio.Event()
        #: Set (and replaced) to end the streams open now (drop_streams()).
        self._drop = _Drop()
        #: (status code name, calls left to refuse: None for every call).
        self._refusals: tuple[str, int | None] | None = None
        #: Every call received, in order.
        self.calls: list[FlagdCall] = []
        #: How many ``SyncFlags`` streams are open now.
        self.open_streams: int = 0
        #: How many calls were refused (:meth:`refuse`).
        self.refused: int = 0

    # -------------------------------------------------------------- serving
    @property
    def port(self) -> int:
        """The port it listens on (0 before the first start, and on a Unix socket)."""
        return self._port

    @property
    def target(self) -> str:
        """What ``DataSystem.flagd(target=...)`` takes: ``127.0.0.1:PORT`` or ``unix:PATH``."""
        if self._socket_path is not None:
            return f"unix:{self._socket_path}"
        return f"127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        """Whether it is listening."""
        return self._server is not None

    async def __aenter__(self) -> FlagdServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        from aioflags._systems._flagd._sync._link import release_grpc

        release_grpc(self._made)  # (its servers: gRPC's engine goes with this loop)

    async def start(self) -> None:
        """Listen (again, on the same port or socket after :meth:`stop`)."""
        if self._server is not None:
            raise RuntimeError("this FlagdServer is already running")
        try:
            import grpc
            import grpc.aio

            from aioflags._systems._flagd._sync import sync_pb2
        except ImportError:
            raise ConfigurationError(_INSTALL) from None
        from aioflags._systems._flagd._sync._link import check_asyncio

        check_asyncio("FlagdServer")
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "SyncFlags": grpc.unary_stream_rpc_method_handler(
                self._sync_flags,
                request_deserializer=sync_pb2.SyncFlagsRequest.FromString,
                response_serializer=sync_pb2.SyncFlagsResponse.SerializeToString,
            ),
            "FetchAllFlags": grpc.unary_unary_rpc_method_handler(
                self._fetch_all_flags,
                request_deserializer=sync_pb2.FetchAllFlagsRequest.FromString,
                response_serializer=sync_pb2.FetchAllFlagsResponse.SerializeToString,
            ),
            "GetMetadata": grpc.unary_unary_rpc_method_handler(
                self._metadata,
                request_deserializer=sync_pb2.GetMetadataRequest.FromString,
                response_serializer=sync_pb2.GetMetadataResponse.SerializeToString,
            ),
        }
        # No SO_REUSEPORT: a restarted server must not share its port with
        # one still closing (gRPC sets it by default).
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self._made.add(server)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE, handlers),)
        )
        address = (
            f"unix:{self._socket_path}"
            if self._socket_path is not None
            else f"127.0.0.1:{self._port}"
        )
        if self._tls is None:
            port = server.add_insecure_port(address)
        else:
            chain, key = self._tls
            credentials = grpc.ssl_server_credentials([(key, chain)])
            port = server.add_secure_port(address, credentials)
        await server.start()
        if self._socket_path is None:
            self._port = port
        self._server = server
        self._notify()

    async def stop(self) -> None:
        """Stop listening and end every open call (their clients see UNAVAILABLE)."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(None)
            self._notify()

    # --------------------------------------------------------------- flags
    def set_document(
        self, document: JSONObject | str | os.PathLike[str], *, source: str = "default"
    ) -> None:
        """Serve ``document`` as ``source`` (replacing it): every open stream gets it."""
        self._sources[source] = _document(document)
        self._notify()

    def set_flag(
        self, key: str, definition: JSONObject | None, *, source: str = "default"
    ) -> None:
        """Put one flag's definition in ``source`` (``None``: remove it); streams get it."""
        document = self._sources.setdefault(source, {"flags": {}})
        flags = _flags(document)
        if definition is None:
            flags.pop(key, None)
        else:
            flags[key] = _json_copy(definition, f"flag {key!r}")
        document["flags"] = flags
        self._notify()

    def set_sync_context(self, context: Mapping[str, JSONValue] | None) -> None:
        """Send ``context`` as the sync context from now on (``None``: none)."""
        self._sync_context = _context(context, "the sync context")
        self._notify()

    def selected(self, selector: str = "") -> JSONObject:
        """The document a ``selector`` selects (see the class), as it is sent.

        Raises:
            ValueError: the selector names a key flagd does not know.
        """
        key, _, value = selector.partition("=")
        if not selector:
            chosen = list(self._sources.items())
        elif "=" not in selector or key == "source":
            name = selector if "=" not in selector else value
            document = self._sources.get(name)
            return {"flags": {}} if document is None else document
        elif key == "flagSetId":
            chosen = list(self._sources.items())
        else:
            raise ValueError(
                f"invalid selector key {key!r}, valid keys: "
                + ", ".join(repr(k) for k in _SELECTOR_KEYS)
            )
        if len(chosen) == 1 and key != "flagSetId":
            return chosen[0][1]
        flags: dict[str, JSONValue] = {}
        evaluators: dict[str, JSONValue] = {}
        for _, document in chosen:
            set_metadata = document.get("metadata")
            more = document.get("$evaluators")
            if isinstance(more, dict):
                evaluators.update(more)
            for name, flag in _flags(document).items():
                if key == "flagSetId" and _flag_set_id(flag, document) != value:
                    continue
                if isinstance(set_metadata, dict) and isinstance(flag, dict):
                    own = flag.get("metadata")
                    flag = {
                        **flag,
                        "metadata": {
                            **set_metadata,
                            **(own if isinstance(own, dict) else {}),
                        },
                    }
                flags[name] = flag
        merged: JSONObject = {"flags": flags}
        if evaluators:
            merged["$evaluators"] = evaluators
        return merged

    # -------------------------------------------------------------- faults
    def refuse(self, code: str | None, *, times: int | None = None) -> None:
        """Abort calls with the gRPC status ``code`` (a name: ``"PERMISSION_DENIED"``).

        ``times``: how many calls (any method) to refuse; ``None``: every
        call until ``refuse(None)``.
        """
        if code is not None:
            _status_code(code)  # (a name gRPC knows)
        self._refusals = None if code is None else (code, times)

    def drop_streams(self, code: str | None = None) -> None:
        """End every open ``SyncFlags`` stream: cleanly, or with the status ``code``."""
        if code is not None:
            _status_code(code)
        drop, self._drop = self._drop, _Drop()
        drop.code = code
        drop.event.set()

    # ---------------------------------------------------------- recording
    @property
    def streams_opened(self) -> int:
        """How many ``SyncFlags`` calls were received (refused ones included)."""
        return self.calls_of("SyncFlags")

    def calls_of(self, method: str) -> int:
        """How many calls of ``method`` were received."""
        return sum(1 for call in self.calls if call.method == method)

    async def wait_until(self, predicate: Callable[[FlagdServer], bool]) -> None:
        """Wait until ``predicate(server)`` holds, checked after each call, change or stream end."""
        while not predicate(self):
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # ------------------------------------------------------------ handlers
    def _record(self, method: str, request: Any, context: Any) -> FlagdCall:
        header = ""
        for key, value in context.invocation_metadata() or ():
            if key == SELECTOR_HEADER:
                header = value
                break
        call = FlagdCall(
            method=method,
            selector_header=header,
            selector=getattr(request, "selector", ""),
            provider_id=getattr(request, "provider_id", ""),
            peer=context.peer() or "",
        )
        self.calls.append(call)
        self._notify()
        return call

    async def _refused(self, context: Any) -> None:
        """Abort the call if refusals are set (:meth:`refuse`)."""
        refusal = self._refusals
        if refusal is None:
            return
        code, times = refusal
        if times is not None:
            self._refusals = None if times <= 1 else (code, times - 1)
        self.refused += 1
        self._notify()
        await context.abort(_status_code(code), f"refused by the test: {code}")

    async def _document_for(self, call: FlagdCall, context: Any) -> str:
        try:
            document = self.selected(call.selector_header or call.selector)
        except ValueError as exc:
            await context.abort(_status_code("INVALID_ARGUMENT"), str(exc))
            raise  # (abort raises)
        return json.dumps(document)

    async def _sync_flags(
        self,
        request: sync_pb2.SyncFlagsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[sync_pb2.SyncFlagsResponse]:
        from aioflags._systems._flagd._sync import sync_pb2

        call = self._record("SyncFlags", request, context)
        await self._refused(context)
        drop = self._drop
        self.open_streams += 1
        self._notify()
        try:
            sent: tuple[str, object] | None = None
            while True:
                changed = self._changed  # (before reading: no change missed)
                payload = await self._document_for(call, context), self._sync_context
                if payload != sent:
                    response = sync_pb2.SyncFlagsResponse(flag_configuration=payload[0])
                    if payload[1] is not None:
                        response.sync_context.SetInParent()  # (sent when empty too)
                        response.sync_context.update(payload[1])
                    elif self._metadata_answer is None:  # flagd's: an empty context
                        response.sync_context.SetInParent()
                    yield response
                    sent = payload
                    continue
                if drop.event.is_set():
                    break
                await _either(changed, drop.event)
        finally:
            self.open_streams -= 1
            self._notify()
        if drop.code is not None:
            await context.abort(_status_code(drop.code), "dropped by the test")

    async def _fetch_all_flags(
        self,
        request: sync_pb2.FetchAllFlagsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> sync_pb2.FetchAllFlagsResponse:
        from aioflags._systems._flagd._sync import sync_pb2

        call = self._record("FetchAllFlags", request, context)
        await self._refused(context)
        return sync_pb2.FetchAllFlagsResponse(
            flag_configuration=await self._document_for(call, context)
        )

    async def _metadata(
        self,
        request: sync_pb2.GetMetadataRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> sync_pb2.GetMetadataResponse:
        from aioflags._systems._flagd._sync import sync_pb2

        self._record("GetMetadata", request, context)
        await self._refused(context)
        if not self._get_metadata:
            await context.abort(
                _status_code("UNIMPLEMENTED"), "GetMetadata is disabled"
            )
        response = sync_pb2.GetMetadataResponse()
        response.metadata.SetInParent()  # (sent when empty too, as flagd does)
        answer = self._metadata_answer
        response.metadata.update(
            (self._sync_context if answer is None else answer) or {}
        )
        return response


def _context(
    context: Mapping[str, JSONValue] | None, what: str
) -> dict[str, JSONValue] | None:
    """A sync context (or GetMetadata's metadata) as sent: JSON, no NaN or Infinity."""
    if context is None:
        return None
    copy: dict[str, JSONValue] = _json_copy(dict(context), what)
    return copy


class _Drop:
    """One :meth:`FlagdServer.drop_streams`: its event, and the code the streams end with."""

    __slots__ = ("code", "event")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.code: str | None = None


async def _either(first: anyio.Event, second: anyio.Event) -> None:
    """Wait until either event is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(wait, first)
        tg.start_soon(wait, second)


def _status_code(name: str) -> grpc.StatusCode:
    """The gRPC status code of that name (``"PERMISSION_DENIED"``)."""
    import grpc

    code = getattr(grpc.StatusCode, name, None)
    if not isinstance(code, grpc.StatusCode) or code is grpc.StatusCode.OK:
        raise ConfigurationError(f"{name!r} is not a gRPC status code name")
    return code
