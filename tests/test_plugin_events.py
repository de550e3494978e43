"""The plugin's analytics event fixture, run through pytester (pytest-asyncio and anyio)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest

from aioflags import Context
from aioflags.testing import FlagBuilder

USER = Context.create("u1")


@pytest.mark.aioflags(flags={"beta": FlagBuilder("beta").boolean().track_events()})
async def test_events_reach_the_flag_server(aioflags_client, aioflags_events):
    assert await aioflags_client.bool_variation("beta", USER, False)
    aioflags_client.track("checkout", USER, metric_value=3)
    events = await aioflags_events.flush()
    assert [e["kind"] for e in events] == ["index", "feature", "custom", "summary"]
    assert aioflags_events.of("custom")[0]["metricValue"] == 3
    aioflags_events.clear()
    assert aioflags_events.events == []
"""


def _ini(pytester: pytest.Pytester, **options: str) -> None:
    lines = [
        "[pytest]",
        "addopts = -p no:cacheprovider --strict-markers --strict-config",
        "filterwarnings = error",
        "asyncio_default_fixture_loop_scope = function",
        *(f"{k} = {v}" for k, v in options.items()),
    ]
    pytester.makeini("\n".join(lines))


def test_aioflags_events_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio_mode="auto")
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.runpytest().assert_outcomes(passed=1)


def test_aioflags_events_under_anyio_on_asyncio_and_trio(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester, asyncio_mode="strict")
    pytester.makepyfile(
        test_user="import pytest\n"
        "pytestmark = pytest.mark.anyio\n"
        "@pytest.fixture(params=['asyncio', 'trio'])\n"
        "def anyio_backend(request):\n"
        "    return request.param\n" + USER_TESTS
    )
    pytester.runpytest().assert_outcomes(passed=2)
