"""Pure HTTP mapping with respx: URLs, query, headers, status classification, TLS/proxy options."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
import respx

from aioflags import Config, ErrorKind, sources
from aioflags._client._http import base_headers, make_http_client
from aioflags._datasystem._sources._common import failure, is_recoverable
from aioflags.sources import Basis, Selector, SourceContext
from tests.sources import source_context

NO_SELECTOR = Selector()


def context(
    http: httpx.AsyncClient, selector: Selector = NO_SELECTOR, **options: Any
) -> SourceContext:
    config = Config("sdk-key", base_uri="https://relay.example/", **options)
    return source_context(http, config=config, selector=selector)


@pytest.mark.parametrize(
    ("status", "recoverable"),
    [
        (400, True),
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (204, True),
        (401, False),
        (403, False),
        (404, False),
        (405, False),
        (409, False),
    ],
)
def test_status_classification(status: int, recoverable: bool) -> None:
    assert is_recoverable(status) is recoverable


@pytest.mark.asyncio
async def test_fatal_codes_and_messages() -> None:
    async with httpx.AsyncClient() as http:
        ctx = context(http, fatal_status_codes=frozenset({401, 418}))
        url = "https://user:secret@relay.example/sdk/poll?basis=x"
        err, retry = failure(ctx, "polling request", url, 401)
        assert (
            err.fatal
            and not retry
            and err.kind is ErrorKind.ERROR_RESPONSE
            and err.status_code == 401
        )
        assert err.message == (
            "Received HTTP error 401 (invalid SDK key) for polling request to "
            "https://relay.example/sdk/poll - giving up permanently: check that the "
            "SDK key is the server-side SDK key of this environment"
        )
        assert failure(ctx, "x", url, 418)[0].fatal
        assert not failure(ctx, "x", url, 403)[0].fatal
        error, retry = failure(ctx, "x", url, 503)
        assert retry and error.message.endswith("will retry")


@pytest.mark.asyncio
@respx.mock
async def test_polling_initializer_url_query_headers_and_directive() -> None:
    route = respx.get("https://relay.example/sdk/poll").mock(
        return_value=httpx.Response(
            500, headers={"X-LD-FD-Fallback": "true", "X-LD-EnvID": "env-1"}
        )
    )
    async with make_http_client(Config("sdk-key"), "i") as http:
        gen = sources.polling_initializer()(
            context(http, Selector(state="(p:x:1)", version=1))
        )
        basis = await gen.__anext__()
        await gen.aclose()
    assert isinstance(basis, Basis)
    assert (
        basis.change_set is None
        and basis.fallback_to_fdv1
        and basis.environment_id == "env-1"
    )
    assert basis.error is not None and basis.error.status_code == 500
    request = route.calls.last.request
    assert request.url.params["basis"] == "(p:x:1)"
    assert request.headers["authorization"] == "sdk-key"


@pytest.mark.asyncio
@respx.mock
async def test_only_exact_true_is_the_directive() -> None:
    respx.get("https://relay.example/sdk/poll").mock(
        return_value=httpx.Response(500, headers={"X-LD-FD-Fallback": "TRUE"})
    )
    async with make_http_client(Config("sdk-key"), "i") as http:
        gen = sources.polling_initializer()(context(http))
        basis = await gen.__anext__()
        await gen.aclose()
    assert not basis.fallback_to_fdv1


@pytest.mark.asyncio
@respx.mock
async def test_polling_transport_error_is_a_network_error_not_a_crash() -> None:
    respx.get("https://relay.example/sdk/poll").mock(
        side_effect=httpx.ConnectError("refused")
    )
    async with make_http_client(Config("sdk-key"), "i") as http:
        gen = sources.polling_synchronizer(interval=5)(context(http))
        update = await gen.__anext__()
        await gen.aclose()
    assert update.error is not None and update.error.kind is ErrorKind.NETWORK_ERROR
    assert "refused" in update.error.message


def test_headers_and_client_options() -> None:
    config = Config(
        "k",
        application_version="2.0",
        wrapper_name="w",
        wrapper_version="1",
        instance_id="i",
    )
    headers = base_headers(config, config.instance_id or "")
    assert headers["X-LaunchDarkly-Tags"] == "application-version/2.0"
    assert headers["X-LaunchDarkly-Wrapper"] == "w/1"
    assert "X-LaunchDarkly-Tags" not in base_headers(Config("k"), "i")


@pytest.mark.asyncio
async def test_tls_and_proxy_are_passed_to_httpx() -> None:
    context_ = ssl.create_default_context()
    import certifi  # ships with httpx

    for verify in (False, context_, certifi.where()):
        async with make_http_client(
            Config("k", verify=verify, proxy="http://127.0.0.1:3128"), "i"
        ) as http:
            assert http.timeout.connect == 10.0 and http.timeout.read == 10.0
