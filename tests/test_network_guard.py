"""The suite's guard: no test reaches a host other than 127.0.0.1."""

from __future__ import annotations

import socket

import anyio
import pytest

pytest_plugins = ["pytester"]


def test_connecting_off_loopback_is_refused_and_recorded(
    loopback_guard: list[str],
) -> None:
    with socket.socket() as sock, pytest.raises(OSError, match=r"127\.0\.0\.1"):
        sock.connect(("192.0.2.1", 80))
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("events.launchdarkly.com", 443)
    assert len(loopback_guard) == 2
    loopback_guard.clear()  # the guard would fail this test at teardown


@pytest.mark.asyncio
async def test_async_connect_off_loopback_is_refused(
    loopback_guard: list[str],
) -> None:
    with pytest.raises(OSError, match=r"127\.0\.0\.1"):
        await anyio.connect_tcp("events.launchdarkly.com", 443)
    with pytest.raises(OSError, match="connection attempts failed"):
        await anyio.connect_tcp("192.0.2.1", 443)
    assert loopback_guard
    loopback_guard.clear()


@pytest.mark.asyncio
async def test_loopback_is_allowed() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.aclose()


def test_a_test_that_reaches_out_fails(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makeconftest("from tests.conftest import loopback_guard  # noqa: F401\n")
    pytester.makepyfile(
        """
        import socket

        def test_swallowed():
            try:
                socket.getaddrinfo("events.launchdarkly.com", 443)
            except OSError:
                pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*tried to reach a host other than 127.0.0.1*"])
