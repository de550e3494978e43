"""The pytest plugin, run through pytester under pytest-asyncio and anyio's plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioflags.testing import FlagServer

pytest_plugins = ["pytester"]
#: Each test runs a pytest session of its own (pytester).
pytestmark = pytest.mark.slow

# What a user writes: the marker presets flags, the fixtures run the server and
# client, a change made during the test reaches the client over its stream.
USER_TESTS = """
import anyio
import pytest

from aioflags import Context, ProviderStatus
from aioflags.testing import clause

USER = Context.from_dict({"key": "u1", "email": "u1@example.com"})


@pytest.mark.aioflags({"new-checkout": True, "limit": 3})
async def test_preset_values(aioflags_client):
    assert aioflags_client.status is ProviderStatus.READY
    assert await aioflags_client.bool_variation("new-checkout", USER, False)
    assert await aioflags_client.int_variation("limit", USER, 0) == 3


@pytest.mark.aioflags({"banner": "old"})
async def test_changes_reach_the_client(aioflags_client, aioflags_data, flag_server):
    async with aioflags_client.flag_value_changes("banner", USER) as changes:
        aioflags_data.update(
            aioflags_data.flag("banner")
            .variations("old", "new")
            .rule(clause("email", "endsWith", "@example.com"), serve="new")
        )
        with anyio.fail_after(30):
            assert (await changes.receive()).new_value == "new"
    assert flag_server.requests_to("/sdk/stream")


async def test_no_marker_no_flags(aioflags_client):
    detail = await aioflags_client.variation_detail("missing", USER, "d")
    assert detail.reason["errorKind"] == "FLAG_NOT_FOUND"
"""


def _ini(pytester: pytest.Pytester, **options: str) -> None:
    lines = [
        "[pytest]",
        "addopts = -p no:cacheprovider --strict-markers --strict-config",
        "filterwarnings = error",
        *(f"{k} = {v}" for k, v in options.items()),
    ]
    pytester.makeini("\n".join(lines))


def test_under_pytest_asyncio_strict_mode(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio_mode="strict", asyncio_default_fixture_loop_scope="function")
    pytester.makepyfile(
        test_user="import pytest\npytestmark = pytest.mark.asyncio\n" + USER_TESTS
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_under_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio_mode="auto", asyncio_default_fixture_loop_scope="function")
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.runpytest().assert_outcomes(passed=3)


def test_under_anyio_plugin_on_asyncio_and_trio(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio_mode="strict", asyncio_default_fixture_loop_scope="function")
    pytester.makepyfile(
        test_user="""
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param
"""
        + USER_TESTS
    )
    pytester.runpytest().assert_outcomes(passed=6)


def test_markers_on_class_and_test_merge_and_config_can_be_overridden(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester, asyncio_mode="auto", asyncio_default_fixture_loop_scope="function")
    pytester.makeconftest(
        """
import pytest
import aioflags


@pytest.fixture
def aioflags_config(flag_server):
    return aioflags.Config(
        "k",
        base_uri=flag_server.url,
        events_uri=flag_server.url,
        data_system=aioflags.DataSystem.polling(60),
    )
"""
    )
    pytester.makepyfile(
        test_user="""
import pytest
from aioflags import Context
from aioflags.testing import FlagBuilder, SegmentBuilder, in_segment

USER = Context.create("u1")


@pytest.mark.aioflags({"a": 1, "b": 1})
class TestMerged:
    @pytest.mark.aioflags(
        {"b": 2},
        flags={
            "c": FlagBuilder("c").rule(in_segment("s"), serve=False),
            "d": {"on": False, "variations": ["x"], "offVariation": 0},
        },
        segments={"s": SegmentBuilder("s").included("u1"), "t": {"included": []}},
    )
    async def test_it(self, aioflags_client, flag_server):
        assert await aioflags_client.variation("a", USER, 0) == 1
        assert await aioflags_client.variation("b", USER, 0) == 2
        assert await aioflags_client.variation("c", USER, None) is False
        assert await aioflags_client.variation("d", USER, None) == "x"
        assert flag_server.requests_to("/sdk/poll")
        assert not flag_server.requests_to("/sdk/stream")
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_sync_test_asking_for_an_async_fixture_gets_told_how(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester, asyncio_mode="strict", asyncio_default_fixture_loop_scope="function")
    pytester.makepyfile(
        test_user="""
def test_sync(flag_server):
    pass


def test_data_is_sync(aioflags_data):
    aioflags_data.set_value("f", True)
    assert aioflags_data.flags["f"]["variations"] == [True, False]


async def test_unmarked(aioflags_client):
    pass
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*flag_server is an async fixture: make the test async and run it with "
            "pytest-asyncio*",
            "*flag_server is an async fixture: mark the test to run it with "
            "pytest-asyncio (@pytest.mark.asyncio, or asyncio_mode = auto) or "
            "anyio's plugin (@pytest.mark.anyio)",
        ]
    )


# A sync test that asks for an async fixture, between tests that use them.
CASCADE_TESTS = """
from aioflags import Context

USER = Context.create("u1")


def test_sync_first(aioflags_client):
    pass


@pytest.mark.aioflags({"f": True})
async def test_client_after(aioflags_client):
    assert await aioflags_client.bool_variation("f", USER, False)


def test_sync_again(flag_server):
    pass


async def test_server_after(flag_server):
    assert flag_server.url.startswith("http://127.0.0.1:")
"""


ANYIO_BACKENDS = """

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param
"""


@pytest.mark.parametrize(
    ("mode", "marker"),
    [("strict", "asyncio"), ("auto", None), ("strict", "anyio")],
    ids=["pytest-asyncio-strict", "pytest-asyncio-auto", "anyio"],
)
def test_a_sync_test_does_not_break_later_async_tests(
    pytester: pytest.Pytester, mode: str, marker: str | None
) -> None:
    """Regression: after the refusal, later tests used to fail in pytest's fixtures."""
    _ini(pytester, asyncio_mode=mode, asyncio_default_fixture_loop_scope="function")
    tests = "import pytest\n" + CASCADE_TESTS
    if marker is not None:
        tests = tests.replace("\nasync def", f"\n@pytest.mark.{marker}\nasync def")
    if marker == "anyio":
        tests += ANYIO_BACKENDS
    pytester.makepyfile(test_user=tests)
    result = pytester.runpytest()
    if marker == "anyio":
        # The sync tests ask for no backend: they run (and are refused) once each.
        result.assert_outcomes(passed=4, errors=2)
    else:
        result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_sync_first*",
            "*flag_server is an async fixture*",
            "*ERROR at setup of test_sync_again*",
            "*flag_server is an async fixture*",
        ]
    )
    assert "AssertionError" not in result.stdout.str()


def test_without_pytest_asyncio_anyio_runs_the_fixtures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pytest-asyncio not installed, the fixtures are anyio's plugin's."""
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider --strict-markers\n"
        "filterwarnings = error\n"
    )
    # Shadows the installed package: `import pytest_asyncio` fails as if absent.
    pytester.makepyfile(pytest_asyncio="raise ImportError('not installed')")
    pytester.makepyfile(
        test_user="import pytest\npytestmark = pytest.mark.anyio\n"
        + CASCADE_TESTS.replace("\ndef test_sync", "\n@pytest.mark.skip\ndef test_sync")
    )
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess(
        "-p", "anyio", "-p", "aioflags.pytest_plugin"
    )
    # anyio's own anyio_backend runs each test on every backend installed.
    assert result.parseoutcomes()["passed"] >= 2
    result.assert_outcomes(passed=result.parseoutcomes()["passed"], skipped=2)
    assert "asyncio-" not in result.stdout.str()  # pytest-asyncio was not loaded


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("{'a': 1}, {'b': 2}", "takes one positional argument"),
        ("flagz={}", "unknown arguments ['flagz']"),
    ],
)
def test_a_bad_marker_is_a_usage_error(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    _ini(pytester, asyncio_mode="strict", asyncio_default_fixture_loop_scope="function")
    pytester.makepyfile(
        test_user=f"""
import pytest


@pytest.mark.aioflags({marker})
def test_it(aioflags_data):
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret != 0
    assert message in result.stdout.str() + result.stderr.str()


def test_a_marker_value_that_is_not_json_names_the_flag_and_says_what_is_accepted(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester, asyncio_mode="auto", asyncio_default_fixture_loop_scope="function")
    pytester.makepyfile(
        test_user="""
import pytest


@pytest.mark.aioflags({"x": object()})
async def test_value(aioflags_client):
    pass


@pytest.mark.aioflags(flags={"y": {"variations": [1, {"a": {2}}]}})
def test_flag_json(aioflags_data):
    pass


@pytest.mark.aioflags({"fine": [1, {"a": None}]})
def test_fine(aioflags_data):
    assert aioflags_data.flags["fine"]["variations"] == [[1, {"a": None}]]
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=2)
    out = result.stdout.str()
    assert (
        "@pytest.mark.aioflags: flag 'x': value is <object object at " in out
        and "(type object), which is not JSON; use None, bool, int, float, str, "
        "or lists and dicts (with str keys) of them"
        in out
    )
    assert (
        "@pytest.mark.aioflags: flag 'y': variations[1].a is {2} (type set), "
        "which is not JSON; use None" in out
    )
    assert "TypeError" not in result.stdout.str()


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio_default_fixture_loop_scope="function")
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.aioflags(values=None*"])


@pytest.mark.asyncio
async def test_flag_server_is_the_older_name_of_aioflags_flag_server(
    aioflags_flag_server: FlagServer, flag_server: FlagServer
) -> None:
    assert flag_server is aioflags_flag_server
    assert aioflags_flag_server.url.startswith("http://127.0.0.1:")


def test_a_session_with_the_plugin_changes_nothing_global(
    pytester: pytest.Pytester,
) -> None:
    """Issue 77: the plugin patched the ``taskgroup`` backport's class (Python
    3.10) in every session, and its server left a filter on asyncio's logger.

    The session runs in a process of its own (this one's conftest applies the
    project's own 3.10 patch); what it may not change is checked while its
    fixtures run and in a test after them.
    """
    _ini(pytester, asyncio_mode="strict", asyncio_default_fixture_loop_scope="function")
    pytester.makepyfile(
        test_user="""
import logging

import pytest

from aioflags import Context


def changed():
    \"\"\"What the plugin and its server may not have changed in the process.\"\"\"
    found = [
        f"{name}: {f!r}"
        for name in ("asyncio", "trio.serve_listeners")
        for f in logging.getLogger(name).filters
    ]
    try:  # (Python 3.10: Hypercorn's TaskGroup is the backport's)
        from taskgroup.install import WaitTaskRescheduled
    except ImportError:
        pass
    else:
        found += [f"WaitTaskRescheduled.{name}" for name in ("done",)
                  if name in vars(WaitTaskRescheduled)]
    return found


@pytest.mark.asyncio
@pytest.mark.aioflags({"f": True})
async def test_with_the_fixtures(aioflags_client, aioflags_flag_server):
    assert await aioflags_client.bool_variation("f", Context.create("u"), False)
    assert changed() == []


def test_after_them():
    assert changed() == []
"""
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def _scopes_sample() -> str:
    """docs/testing.md's sample of a flag server and client shared by a module."""
    page = (Path(__file__).parent.parent / "docs" / "testing.md").read_text()
    section = page.split("### Fixture scopes")[1].split("\n## ")[0]
    return section.split("```python\n")[1].split("```")[0]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_row138_the_documented_module_scoped_server_and_client_work(
    pytester: pytest.Pytester, backend: str
) -> None:
    """docs/testing.md says what the plugin's scopes are, and its pattern for a module runs."""
    _ini(pytester, asyncio_mode="strict", asyncio_default_fixture_loop_scope="function")
    sample = _scopes_sample()
    assert 'return "asyncio"' in sample
    # Beside it, a test of the plugin's own fixtures: the two coexist.
    pytester.makepyfile(
        test_shared=sample.replace('return "asyncio"', f'return "{backend}"'),
        test_plugin="import pytest\npytestmark = pytest.mark.asyncio\n" + USER_TESTS,
    )
    pytester.runpytest().assert_outcomes(passed=5)


def test_row138_a_wider_fixture_over_aioflags_config_is_what_the_docs_say(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester, asyncio_mode="strict", asyncio_default_fixture_loop_scope="function")
    pytester.makepyfile(
        test_wide="""
import pytest


@pytest.fixture(scope="module")
def app(aioflags_config):
    return aioflags_config


def test_it(app):
    pass
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    said = "You tried to access the function scoped fixture aioflags_config with a module scoped request object"
    result.stdout.fnmatch_lines([f"*{said}*"])
    docs = (Path(__file__).parent.parent / "docs" / "testing.md").read_text()
    assert f'("{said}")' in " ".join(docs.split())
