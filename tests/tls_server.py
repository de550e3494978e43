"""A loopback TLS front for a plain test server: ``https://127.0.0.1:<port>``.

It presents ``tests/certs/server.pem`` (signed by the test CA,
``tests/certs/ca.pem``, which no default trust store holds) and forwards each
connection's bytes, decrypted, to the plain server on ``upstream_port``, and
back. The port is bound first and reported once listening (no free-port
race); when either side closes, the pair is closed.
"""

from __future__ import annotations

import ssl
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio
import anyio.abc
from anyio.streams.tls import TLSListener

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import ByteStream

CERTS: Final = Path(__file__).resolve().parent / "certs"
#: The test CA: give it as ``Config(verify=CA)`` to trust the front.
CA: Final = str(CERTS / "ca.pem")


def server_context() -> ssl.SSLContext:
    """The front's SSL context: the server certificate and its key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTS / "server.pem", CERTS / "server.key")
    return context


async def _pipe(source: ByteStream, sink: ByteStream, scope: anyio.CancelScope) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # one side went away: the pair is closed below
    finally:
        scope.cancel()


@asynccontextmanager
async def tls_front(upstream_port: int) -> AsyncIterator[str]:
    """Serve TLS on a free loopback port in front of ``upstream_port``; yield its URL."""

    async def forward(client: ByteStream) -> None:
        async with (
            client,
            await anyio.connect_tcp("127.0.0.1", upstream_port) as up,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(_pipe, client, up, tg.cancel_scope)
            tg.start_soon(_pipe, up, client, tg.cancel_scope)

    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener = TLSListener(tcp, server_context(), standard_compatible=False)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, forward)
        try:
            yield f"https://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()
