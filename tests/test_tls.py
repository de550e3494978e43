"""TLS set-up: none for ``http://``, made at start for ``https://``, always verified."""

from __future__ import annotations

import ssl
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from aioflags import Client, Config, Context, DataSystem, ProviderStatus
from aioflags._client._http import make_http_client
from aioflags._client._lifecycle import _needs_tls, _open_http
from aioflags._client._transport import LazyTLSTransport
from aioflags.testing import FlagData, FlagServer
from tests.flags import BOOL_FLAG
from tests.tls_server import CA, tls_front

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

USER = Context.create("u")


@pytest.fixture
def ca_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every CA bundle or default trust store loaded into an SSL context."""
    loads: list[str] = []
    for name in ("load_verify_locations", "load_default_certs"):
        method = getattr(ssl.SSLContext, name)

        def counted(
            self: ssl.SSLContext,
            *args: Any,
            _m: Any = method,
            _n: str = name,
            **kw: Any,
        ) -> Any:
            loads.append(_n)
            return _m(self, *args, **kw)

        monkeypatch.setattr(ssl.SSLContext, name, counted)
    return loads


@asynccontextmanager
async def https_server() -> AsyncIterator[tuple[FlagServer, str]]:
    """A flag server behind a TLS front that only the test CA vouches for."""
    async with FlagServer({"f": BOOL_FLAG}) as server:
        port = httpx.URL(server.url).port
        assert port is not None
        async with tls_front(port) as url:
            yield server, url


def https_config(url: str, **options: Any) -> Config:
    return Config("sdk-key", base_uri=url, stream_uri=url, events_uri=url, **options)


def transport_of(http: httpx.AsyncClient) -> LazyTLSTransport:
    transport = http._transport
    assert isinstance(transport, LazyTLSTransport)
    return transport


# ------------------------------------------------------------------ http://
@pytest.mark.asyncio
@pytest.mark.parametrize("verify", [True, CA], ids=["default", "ca-path"])
async def test_a_client_on_http_loads_no_ca_bundle(
    verify: bool | str, ca_loads: list[str]
) -> None:
    # Events on: the event recorder is http:// too. A CA path is not even read.
    async with (
        FlagServer({"f": BOOL_FLAG}) as server,
        Client(server.config(verify=verify)) as client,
    ):
        assert client.status is ProviderStatus.READY
        assert await client.variation("f", USER, False) is True
        await client.flush()
        await server.wait_for_payloads()
    assert ca_loads == []


@pytest.mark.asyncio
async def test_a_missing_ca_path_is_no_error_when_only_http_is_used() -> None:
    # (with an https:// URI it is FATAL at start: tests/test_lifecycle.py)
    async with FlagServer({"f": BOOL_FLAG}) as server:
        config = server.config(verify="/nonexistent/ca.pem", send_events=False)
        async with Client(config) as client:
            assert client.status is ProviderStatus.READY


def test_which_configs_need_tls() -> None:
    http = "http://127.0.0.1:1"
    assert _needs_tls(Config("k"))  # LaunchDarkly's https:// services
    assert not _needs_tls(https_config(http))
    assert _needs_tls(Config("k", base_uri=http, stream_uri=http))  # events_uri
    assert not _needs_tls(
        Config("k", base_uri=http, stream_uri=http, send_events=False)
    )
    assert not _needs_tls(Config("k", data_system=FlagData().data_system()))
    # flagd's sync has its own connection: LaunchDarkly's URIs are never
    # called, only a recorder of the app's own is, when events are on.
    flagd = DataSystem.flagd("127.0.0.1:1")
    relay = "https://relay.example.com"
    assert not _needs_tls(Config(data_system=flagd))
    assert not _needs_tls(Config("k", data_system=flagd))
    assert not _needs_tls(
        Config("k", data_system=flagd, events_uri=relay, send_events=False)
    )
    assert _needs_tls(Config("k", data_system=flagd, events_uri=relay))
    mixed = DataSystem.custom(
        initializers=flagd.initializers,
        synchronizers=DataSystem.default().synchronizers,
    )
    assert _needs_tls(Config("k", data_system=mixed, send_events=False))
    # A proxy's TLS is httpx's own transports' business.
    assert not _needs_tls(Config("k", proxy="http://127.0.0.1:3128"))


# ----------------------------------------------------------------- https://
@pytest.mark.asyncio
async def test_a_client_on_https_makes_its_tls_transport_at_start(
    ca_loads: list[str],
) -> None:
    async with (
        https_server() as (_, url),
        await _open_http(https_config(url, verify=CA), "i") as http,
    ):
        assert transport_of(http).tls_ready  # before any request
        assert ca_loads == ["load_verify_locations"]
        response = await http.get(f"{url}/sdk/latest-all")
        assert response.status_code == 200
    assert ca_loads == ["load_verify_locations"]  # once


@pytest.mark.asyncio
async def test_a_client_on_https_trusting_the_ca_is_ready() -> None:
    async with (
        https_server() as (server, url),
        Client(https_config(url, verify=CA)) as client,
    ):
        assert client.status is ProviderStatus.READY
        assert await client.variation("f", USER, False) is True
        await client.flush()
        await server.wait_for_payloads()  # events over https:// too


@pytest.mark.asyncio
@pytest.mark.parametrize("made", ["at-start", "on-first-request"])
async def test_https_verifies_the_certificate(made: str) -> None:
    async def http_for(config: Config) -> httpx.AsyncClient:
        if made == "at-start":
            return await _open_http(config, "i")
        return make_http_client(config, "i")  # e.g. a redirect to https://

    async with https_server() as (_, url):
        # The default trust store does not hold the test CA: the handshake fails.
        async with await http_for(https_config(url)) as http:
            assert transport_of(http).tls_ready is (made == "at-start")
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(f"{url}/sdk/latest-all")
        async with await http_for(https_config(url, verify=CA)) as http:
            assert (await http.get(f"{url}/sdk/latest-all")).status_code == 200
        # verify=False is honoured too (never the default).
        async with await http_for(https_config(url, verify=False)) as http:
            assert (await http.get(f"{url}/sdk/latest-all")).status_code == 200
