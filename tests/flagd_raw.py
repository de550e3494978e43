"""RawSyncServer: a flagd sync server on loopback that sends what it is given, as it is.

``aioflags.testing.FlagdServer`` sends only what flagd would: JSON. This one
sends any text as the flag configuration (NaN, JSON nested past every
parser) and any sync context (NaN, nesting past protobuf's limit), for the
tests of what aioflags does with what it cannot use. ``GetMetadata`` is
unimplemented (so the client's start is the stream's first message, and
``FetchAllFlags`` is never asked); ``SyncFlags`` sends the message set now,
then each one set after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import anyio
import grpc
import grpc.aio

from aioflags._core._json import JSONObject
from aioflags._systems._flagd._sync import sync_pb2
from aioflags._systems._flagd._sync._link import release_grpc

_SERVICE = "flagd.sync.v1.FlagSyncService"


class RawSyncServer:
    """Sends ``configuration``, then :meth:`send`'s messages, on every ``SyncFlags`` stream (see the module)."""

    def __init__(self, configuration: str) -> None:
        self._message = b""
        self._changed = anyio.Event()
        self._server: grpc.aio.Server | None = None
        self.target = ""
        #: How many ``SyncFlags`` calls were received.
        self.streams_opened = 0
        self.send(configuration)

    def send(self, configuration: str, sync_context: JSONObject | None = None) -> None:
        """Send this configuration text (and sync context) on every stream, from now on."""
        response = sync_pb2.SyncFlagsResponse(flag_configuration=configuration)
        if sync_context is not None:
            response.sync_context.update(sync_context)
        self._message = response.SerializeToString()
        self._notify()

    async def wait_for_streams(self, count: int) -> None:
        """Until ``count`` ``SyncFlags`` calls were received."""
        with anyio.fail_after(30):
            while self.streams_opened < count:
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _sync_flags(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        self.streams_opened += 1
        self._notify()
        sent = None
        while True:
            changed = self._changed
            if self._message != sent:
                sent = self._message
                yield sent
            await changed.wait()

    async def _unimplemented(self, request: bytes, context: Any) -> bytes:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not here")
        raise AssertionError("abort raises")

    async def __aenter__(self) -> RawSyncServer:
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "SyncFlags": grpc.unary_stream_rpc_method_handler(self._sync_flags),
            "FetchAllFlags": grpc.unary_unary_rpc_method_handler(self._unimplemented),
            "GetMetadata": grpc.unary_unary_rpc_method_handler(self._unimplemented),
        }
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE, handlers),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        self.target = f"127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None
        release_grpc()
