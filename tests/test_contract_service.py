"""contract-tests/service.py: every endpoint and command, against a FlagServer."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

import aioflags
from aioflags.stores import RedisStore, StoreMode, context_hash
from aioflags.testing import Fault, FlagData, FlagServer, clause
from tests.flags import match_flag
from tests.modules import ROOT, load
from tests.processes import HTTP_GUARD
from tests.redis_server import RedisServer
from tests.test_stores import expect_write, flag, raw_redis, seed

#: The contract-test service, end to end (and as a process: its documented command).
pytestmark = pytest.mark.slow

SERVICE_PATH = ROOT / "contract-tests" / "service.py"


service = load("contract-tests/service.py", "contract_service")


class Harness:
    """What the outside harness does: HTTP requests to the service."""

    def __init__(self, http: httpx.AsyncClient, server: FlagServer, data: FlagData):
        self.http = http
        self.server = server
        self.data = data

    def config(self, **overrides: Any) -> dict[str, Any]:
        # The v3 harness sends every optional field, null when unset.
        config: dict[str, Any] = {
            "credential": "test-sdk-key",
            "startWaitTimeMs": 5000,
            "initCanFail": None,
            "serviceEndpoints": None,
            "events": None,
            "bigSegments": None,
            "tags": None,
            "tls": None,
            "proxy": None,
            "wrapper": None,
            "hooks": None,
            "persistentDataStore": None,
            "clientSide": None,
            "dataSystem": {
                "useDefaultDataSystem": None,
                "store": None,
                "storeMode": 0,
                "initializers": [
                    {"polling": {"baseUri": self.server.url, "pollIntervalMs": None}}
                ],
                "synchronizers": [
                    {
                        "streaming": {
                            "baseUri": self.server.url,
                            "initialRetryDelayMs": None,
                        },
                        "polling": None,
                    }
                ],
                "fdv1Fallback": None,
                "connectionModeConfig": None,
            },
        }
        config.update(overrides)
        return config

    async def create(self, **overrides: Any) -> str:
        reply = await self.http.post(
            "/", json={"tag": "t", "configuration": self.config(**overrides)}
        )
        assert reply.status_code == 201, reply.text
        return reply.headers["location"]

    async def command(self, url: str, name: str, params: dict[str, Any]) -> Any:
        reply = await self.http.post(url, json={"command": name, name: params})
        assert reply.status_code in (200, 204), reply.text
        return reply.json() if reply.status_code == 200 else None


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Harness]:
    """The service app (with its lifespan) in front of a FlagServer.

    A context manager rather than a fixture: pytest-asyncio would exit the
    task groups inside from another task than the one that entered them.
    """
    data = FlagData()
    data.update(
        data.flag("color")
        .variations("red", "green")
        .fallthrough("red")
        .rule(clause("email", "endsWith", "@example.com"), serve="green", rule_id="r")
        .client_side(),
        data.flag("n").variations(7, 8.5).fallthrough(7).track_events(),
    )
    app = service.create_app()
    async with (
        FlagServer() as server,
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            timeout=HTTP_GUARD,
            transport=httpx.ASGITransport(app=app),
            base_url="http://service",
        ) as http,
    ):
        data.attach(server)
        yield Harness(http, server, data)


USER = {"kind": "user", "key": "u1", "email": "u1@example.com"}


@pytest.mark.asyncio
async def test_status_declares_what_aioflags_supports() -> None:
    async with running() as harness:
        reply = (await harness.http.get("/")).json()
        assert reply["name"] == "aioflags"
        assert reply["clientVersion"] == aioflags.__version__
        caps = set(reply["capabilities"])
        assert {"server-side", "fdv1-fallback", "secure-mode-hash", "user-type"} <= caps
        assert {"evaluation-hooks", "track-hooks", "hook-environment-id"} <= caps
        assert {"big-segments", "persistent-data-store-redis"} <= caps
        # An invalid filter key is dropped, never sent: the strict behaviour.
        assert {"filtering", "filtering-strict"} <= caps
        assert "migrations" in caps
        # Nothing aioflags lacks is declared.
        assert not caps & {"client-per-context-summaries"}


@pytest.mark.asyncio
async def test_evaluate_every_value_type_with_and_without_detail() -> None:
    async with running() as harness:
        url = await harness.create()
        base = {"flagKey": "color", "context": USER, "defaultValue": "d"}
        assert await harness.command(
            url, "evaluate", {**base, "valueType": "string", "detail": False}
        ) == {"value": "green"}
        assert await harness.command(
            url, "evaluate", {**base, "valueType": "any", "detail": True}
        ) == {
            "value": "green",
            "variationIndex": 1,
            "reason": {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r"},
        }
        wrong = await harness.command(
            url,
            "evaluate",
            {**base, "valueType": "bool", "defaultValue": False, "detail": True},
        )
        assert wrong == {
            "value": False,
            "reason": {"kind": "ERROR", "errorKind": "WRONG_TYPE"},
        }
        for value_type, default in (("int", 0), ("double", 0.5)):
            reply = await harness.command(
                url,
                "evaluate",
                {
                    "flagKey": "n",
                    "user": {"key": "old-user-shape"},
                    "valueType": value_type,
                    "defaultValue": default,
                    "detail": True,
                },
            )
            assert reply["value"] == 7 and reply["variationIndex"] == 0
        reply = await harness.command(
            url,
            "evaluate",
            {**base, "flagKey": "nope", "valueType": "any", "detail": True},
        )
        assert reply["reason"] == {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}


@pytest.mark.asyncio
async def test_evaluate_all_with_every_option() -> None:
    async with running() as harness:
        url = await harness.create()
        plain = await harness.command(url, "evaluateAll", {"context": USER})
        assert plain["state"]["color"] == "green" and plain["state"]["$valid"] is True
        client_side = await harness.command(
            url,
            "evaluateAll",
            {
                "context": USER,
                "withReasons": True,
                "clientSideOnly": True,
                "detailsOnlyForTrackedFlags": False,
            },
        )
        assert set(client_side["state"]) == {"color", "$flagsState", "$valid"}
        assert (
            client_side["state"]["$flagsState"]["color"]["reason"]["kind"]
            == "RULE_MATCH"
        )
        tracked = await harness.command(
            url,
            "evaluateAll",
            {"context": USER, "withReasons": True, "detailsOnlyForTrackedFlags": True},
        )
        meta = tracked["state"]["$flagsState"]
        assert "reason" in meta["n"] and "reason" not in meta["color"]


@pytest.mark.asyncio
async def test_context_commands() -> None:
    async with running() as harness:
        url = await harness.create()
        built = await harness.command(
            url,
            "contextBuild",
            {
                "single": {
                    "kind": "org",
                    "key": "o1",
                    "name": "Org",
                    "anonymous": True,
                    "private": ["secret"],
                    "custom": {"tier": 3},
                }
            },
        )
        assert json.loads(built["output"]) == {
            "kind": "org",
            "key": "o1",
            "name": "Org",
            "anonymous": True,
            "tier": 3,
            "_meta": {"privateAttributes": ["secret"]},
        }
        multi = await harness.command(
            url,
            "contextBuild",
            {"multi": [{"kind": "user", "key": "u"}, {"kind": "org", "key": "o"}]},
        )
        assert json.loads(multi["output"]) == {
            "kind": "multi",
            "org": {"key": "o"},
            "user": {"key": "u"},
        }
        bad = await harness.command(url, "contextBuild", {"single": {"key": ""}})
        assert "error" in bad and "output" not in bad

        converted = await harness.command(
            url,
            "contextConvert",
            {"input": json.dumps({"key": "u", "custom": {"a": 1}})},
        )
        assert json.loads(converted["output"]) == {"kind": "user", "key": "u", "a": 1}
        for broken in ("{nope", json.dumps({"kind": "user"})):
            reply = await harness.command(url, "contextConvert", {"input": broken})
            assert reply["error"]

        def single(**extra: Any) -> dict[str, Any]:
            return {"single": {"kind": "user", "key": "k", **extra}}

        attrs = [{"name": "name", "value": "N"}, {"name": "a", "value": {"b": 1}}]
        private = [
            {"value": "/a/b", "literal": False},
            {"value": "/x", "literal": True},
        ]
        same = await harness.command(
            url,
            "contextComparison",
            {
                "context1": single(attributes=attrs, privateAttributes=private),
                "context2": single(
                    attributes=attrs[::-1], privateAttributes=private[::-1]
                ),
            },
        )
        assert same == {"equals": True}
        different = await harness.command(
            url,
            "contextComparison",
            {
                "context1": {"multi": [single()["single"]]},
                "context2": single(attributes=[{"name": "anonymous", "value": True}]),
            },
        )
        assert different == {"equals": False}


@pytest.mark.asyncio
async def test_secure_mode_hash() -> None:
    async with running() as harness:
        url = await harness.create(credential="secret")
        reply = await harness.command(
            url, "secureModeHash", {"context": {"kind": "user", "key": "Message"}}
        )
        # HMAC-SHA256("secret", "Message"), the vector LaunchDarkly's SDKs test with.
        assert reply == {
            "result": "aa747c502a898200f9e4fa21bac68136f886a0e27aec70ba06daf2e2a5cb5597"
        }


@pytest.mark.asyncio
async def test_listeners_post_to_the_callback_and_can_be_removed() -> None:
    async with running() as harness:
        url = await harness.create()
        callback = f"{harness.server.url}/callback"
        await harness.command(
            url,
            "registerFlagChangeListener",
            {"listenerId": "all", "flagKey": None, "callbackUri": callback},
        )
        await harness.command(
            url,
            "registerFlagValueChangeListener",
            {
                "listenerId": "value",
                "flagKey": "color",
                "context": USER,
                "defaultValue": "d",
                "callbackUri": callback,
            },
        )
        harness.data.update(harness.data.flag("color").clear_targeting())
        with anyio.fail_after(30):
            await harness.server.wait_for_requests("/callback", 2)
        bodies = [r.json() for r in harness.server.requests_to("/callback")]
        for body in bodies:
            assert isinstance(body, dict)
            assert isinstance(body.pop("timestamp"), int)
        assert sorted(bodies, key=str) == sorted(
            [
                {"listenerId": "all", "flagKey": "color"},
                {
                    "listenerId": "value",
                    "flagKey": "color",
                    "oldValue": "green",
                    "newValue": "red",
                },
            ],
            key=str,
        )
        for listener in ("all", "value"):
            await harness.command(url, "unregisterListener", {"listenerId": listener})
        reply = await harness.http.post(
            url,
            json={
                "command": "unregisterListener",
                "unregisterListener": {"listenerId": "x"},
            },
        )
        assert reply.status_code == 400 and "no listener" in reply.text


def hook_config(harness: Harness, *hooks: dict[str, Any]) -> dict[str, Any]:
    """The harness's ``hooks`` section: each hook posts to /hook-<name>."""
    return {
        "hooks": [
            {
                "name": h["name"],
                "callbackUri": f"{harness.server.url}/hook-{h['name']}",
                "data": h.get("data"),
                "errors": h.get("errors"),
            }
            for h in hooks
        ]
    }


def hook_posts(harness: Harness) -> list[tuple[str, Any]]:
    """Every hook payload received, in arrival order, with the hook it came to."""
    return [
        (r.path.removeprefix("/hook-"), r.json())
        for r in harness.server.requests
        if r.path.startswith("/hook-")
    ]


@pytest.mark.asyncio
async def test_evaluation_hooks_post_each_stage_in_order_with_their_data() -> None:
    async with running() as harness:
        harness.server.fail("/sdk/poll", headers={"X-LD-EnvID": "env-12345"})
        harness.server.fail("/sdk/stream", headers={"X-LD-EnvID": "env-12345"})
        url = await harness.create(
            hooks=hook_config(
                harness,
                {
                    "name": "a",
                    "data": {
                        "beforeEvaluation": {"someData": "the hookData"},
                        "afterEvaluation": None,
                    },
                },
                {"name": "b"},
            )
        )
        reply = await harness.command(
            url,
            "evaluate",
            {
                "flagKey": "color",
                "context": USER,
                "valueType": "string",
                "defaultValue": "d",
                "detail": True,
            },
        )
        # Posted before the command answered, one at a time, in order.
        posts = hook_posts(harness)
        assert [(hook, body["stage"]) for hook, body in posts] == [
            ("a", "beforeEvaluation"),
            ("b", "beforeEvaluation"),
            ("b", "afterEvaluation"),
            ("a", "afterEvaluation"),
        ]
        before = posts[0][1]
        assert before == {
            "stage": "beforeEvaluation",
            "evaluationSeriesContext": {
                "flagKey": "color",
                "context": USER,
                "defaultValue": "d",
                "method": "string_variation_detail",
                "environmentId": "env-12345",
            },
            "evaluationSeriesData": {},
        }
        after = posts[3][1]
        assert after["evaluationSeriesData"] == {"someData": "the hookData"}
        assert after["evaluationDetail"] == reply
        assert posts[2][1]["evaluationSeriesData"] == {}
        # evaluateAll runs no hooks.
        await harness.command(url, "evaluateAll", {"context": USER})
        assert len(hook_posts(harness)) == 4


@pytest.mark.asyncio
async def test_hook_errors_post_nothing_for_that_stage_and_spare_the_rest() -> None:
    async with running() as harness:
        url = await harness.create(
            hooks=hook_config(
                harness,
                {"name": "x", "errors": {"beforeEvaluation": "before failed"}},
                {
                    "name": "y",
                    "errors": {
                        "afterEvaluation": "after failed",
                        "afterTrack": "track failed",
                    },
                },
            ),
            events={"baseUri": harness.server.url},
        )
        reply = await harness.command(
            url,
            "evaluate",
            {
                "flagKey": "n",
                "user": {"key": "k"},
                "valueType": "int",
                "defaultValue": 0,
            },
        )
        assert reply == {"value": 7}
        await harness.command(
            url,
            "customEvent",
            {
                "eventKey": "custom-event-4",
                "context": USER,
                "data": {"boolData": True},
                "metricValue": 11111.0,
            },
        )
        posts = hook_posts(harness)
        assert [(hook, body["stage"]) for hook, body in posts] == [
            ("y", "beforeEvaluation"),
            ("x", "afterEvaluation"),  # with empty data after its before failed
            ("x", "afterTrack"),
        ]
        assert posts[1][1]["evaluationSeriesData"] == {}
        assert posts[1][1]["evaluationDetail"] == {
            "value": 7,
            "variationIndex": 0,
            "reason": {"kind": "FALLTHROUGH"},
        }
        assert posts[2][1] == {
            "stage": "afterTrack",
            "trackSeriesContext": {
                "key": "custom-event-4",
                "context": USER,
                "data": {"boolData": True},
                "metricValue": 11111.0,
                "environmentId": None,
            },
        }


@pytest.mark.asyncio
async def test_hook_configuration_errors_are_400() -> None:
    async with running() as harness:
        for hooks in (
            {"hooks": [{"name": "a", "callbackUri": None}]},
            {"hooks": {"name": "a"}},
        ):
            reply = await harness.http.post(
                "/", json={"tag": "t", "configuration": harness.config(hooks=hooks)}
            )
            assert reply.status_code == 400, hooks


@pytest.mark.asyncio
async def test_fdv1_line_configuration_and_fallback_section() -> None:
    async with running() as harness:
        for overrides in (
            {"dataSystem": None, "streaming": {"baseUri": harness.server.url}},
            {"dataSystem": None, "polling": {"baseUri": harness.server.url}},
        ):
            url = await harness.create(**overrides)
            reply = await harness.command(
                url,
                "evaluate",
                {
                    "flagKey": "color",
                    "context": USER,
                    "valueType": "any",
                    "defaultValue": None,
                },
            )
            assert reply == {"value": "green"}
        assert harness.server.requests_to("/all") and harness.server.requests_to(
            "/sdk/latest-all"
        )
        # The directive on the FDv2 poll switches to the configured FDv1 poller.
        harness.server.fail(
            "/sdk/poll", headers={"X-LD-FD-Fallback": "true"}, status=500
        )
        system = harness.config()["dataSystem"]
        system["fdv1Fallback"] = {
            "baseUri": harness.server.url,
            "pollIntervalMs": 60000,
        }
        system["synchronizers"] = []
        polls = len(harness.server.requests_to("/sdk/latest-all"))
        url = await harness.create(dataSystem=system)
        assert len(harness.server.requests_to("/sdk/latest-all")) == polls + 1


@pytest.mark.asyncio
async def test_options_map_onto_config() -> None:
    async with running() as harness:
        config, can_fail = service.config_from(
            harness.config(
                startWaitTimeMs=250,
                initCanFail=True,
                serviceEndpoints={
                    "polling": "http://p",
                    "streaming": "http://s",
                    "events": None,
                },
                tags={"applicationId": "app", "applicationVersion": "1.0"},
                wrapper={"name": "W", "version": "2"},
                tls={"skipVerifyPeer": True, "customCAFile": None},
                proxy={"httpProxy": "http://proxy:3128"},
                dataSystem={"useDefaultDataSystem": True},
            )
        )
        assert can_fail is True
        assert (config.base_uri, config.stream_uri, config.ready_timeout) == (
            "http://p",
            "http://s",
            0.25,
        )
        assert (config.application_id, config.application_version) == ("app", "1.0")
        assert (config.wrapper_name, config.wrapper_version) == ("W", "2")
        assert config.verify is False and config.proxy == "http://proxy:3128"
        ca, _ = service.config_from(harness.config(tls={"customCAFile": "/ca.pem"}))
        assert ca.verify == "/ca.pem"


@pytest.mark.asyncio
async def test_headers_reach_the_server() -> None:
    async with running() as harness:
        await harness.create(
            tags={"applicationId": "app", "applicationVersion": None},
            wrapper={"name": "W", "version": "2"},
        )
        headers = harness.server.requests_to("/sdk/poll")[0].headers
        assert headers["x-launchdarkly-tags"] == "application-id/app"
        assert headers["x-launchdarkly-wrapper"] == "W/2"
        assert headers["authorization"] == "test-sdk-key"


@pytest.mark.asyncio
async def test_init_failure_is_500_unless_init_can_fail() -> None:
    async with running() as harness:
        harness.server.fail("/sdk/poll", status=401)
        harness.server.fail("/sdk/stream", status=401)
        config = harness.config(startWaitTimeMs=2000)
        reply = await harness.http.post("/", json={"tag": "t", "configuration": config})
        assert reply.status_code == 500 and "did not initialise" in reply.text
        config["initCanFail"] = True
        reply = await harness.http.post("/", json={"tag": "t", "configuration": config})
        assert reply.status_code == 201
        url = reply.headers["location"]
        evaluation = await harness.command(
            url,
            "evaluate",
            {
                "flagKey": "color",
                "context": USER,
                "valueType": "any",
                "defaultValue": "d",
                "detail": True,
            },
        )
        assert evaluation["value"] == "d"
        assert (await harness.http.delete(url)).status_code == 204
        assert (await harness.http.delete(url)).status_code == 404


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1]", "must be an object"),
        (json.dumps({"configuration": {"credential": 5}}).encode(), "wrong type"),
        (
            json.dumps(
                {"configuration": {"hooks": {"hooks": [{"name": "a"}]}}}
            ).encode(),
            "callbackUri",
        ),
        (
            json.dumps({"configuration": {"bigSegments": {}}}).encode(),
            "callbackUri is required",
        ),
        (
            json.dumps(
                {"configuration": {"dataSystem": {"synchronizers": [{"x": {}}]}}}
            ).encode(),
            "needs streaming or polling",
        ),
        (
            json.dumps(
                {"configuration": {"dataSystem": {"initializers": [{"streaming": {}}]}}}
            ).encode(),
            "unsupported initializer",
        ),
        (
            json.dumps({"configuration": {"startWaitTimeMs": -1}}).encode(),
            "non-negative",
        ),
        (
            json.dumps(
                {"configuration": {"serviceEndpoints": {"polling": "ftp://x"}}}
            ).encode(),
            "base_uri must be an http",
        ),
    ],
)
@pytest.mark.asyncio
async def test_bad_requests_get_400_with_a_message(
    request_body: bytes, message: str
) -> None:
    async with running() as harness:
        reply = await harness.http.post("/", content=request_body)
        assert reply.status_code == 400
        assert message in reply.text


@pytest.mark.asyncio
async def test_unsupported_and_unknown_commands() -> None:
    async with running() as harness:
        url = await harness.create()
        for name, message in (
            ("aliasEvent", "legacy"),
            ("getBigSegmentStoreStatus", "big segments"),
            ("fly", "unknown command"),
        ):
            reply = await harness.http.post(url, json={"command": name, name: {}})
            assert reply.status_code == 400 and message in reply.text
        reply = await harness.http.post(url, json={"command": 5})
        assert reply.status_code == 400
        reply = await harness.http.post("/clients/999", json={"command": "evaluate"})
        assert reply.status_code == 404


def test_the_documented_command_starts_it_and_delete_stops_it() -> None:
    process = subprocess.Popen(
        [sys.executable, str(SERVICE_PATH), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        url = line.split()[-1]
        with httpx.Client(base_url=url, timeout=60) as http:  # (a net)
            assert http.get("/").json()["name"] == "aioflags"
            assert http.delete("/").status_code == 204
        assert process.wait(timeout=60) == 0  # (a net: it exits as told)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _store_section(
    url: str, mode: str | None = "ttl", ttl: int | None = 1
) -> dict[str, Any]:
    return {
        "persistentDataStore": {
            "store": {"type": "redis", "prefix": None, "dsn": url},
            "cache": {"mode": mode, "ttl": ttl},
        }
    }


@pytest.mark.asyncio
async def test_persistent_store_daemon_mode_reads_redis(
    redis_server: RedisServer,
) -> None:
    async with running() as harness, raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("from-redis")}, inited=False)
        url = await harness.create(
            dataSystem={
                "store": _store_section(redis_server.url),
                "storeMode": 0,
                "initializers": None,
                "synchronizers": None,
            }
        )
        reply = await harness.command(
            url,
            "evaluate",
            {"flagKey": "f", "context": USER, "valueType": "any", "defaultValue": None},
        )
        assert reply == {"value": "from-redis"}
        assert harness.server.requests_to("/sdk/poll") == []


@pytest.mark.asyncio
async def test_persistent_store_cache_off_shows_a_write_at_the_next_evaluation(
    redis_server: RedisServer,
) -> None:
    async with running() as harness, raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("v1")}, inited=False)
        url = await harness.create(
            dataSystem={
                "store": _store_section(redis_server.url, "off", None),
                "storeMode": 0,
                "initializers": None,
                "synchronizers": None,
            }
        )
        params = {"flagKey": "f", "context": USER, "valueType": "any"}
        reply = await harness.command(url, "evaluate", {**params, "defaultValue": None})
        assert reply == {"value": "v1"}
        await raw.hset("launchdarkly:features", "f", json.dumps(flag("v2", 2)))
        reply = await harness.command(url, "evaluate", {**params, "defaultValue": None})
        assert reply == {"value": "v2"}


@pytest.mark.asyncio
async def test_persistent_store_read_write_mode_writes_redis(
    redis_server: RedisServer,
) -> None:
    async with running() as harness, raw_redis(redis_server) as raw:
        system = harness.config()["dataSystem"]
        system.update(store=_store_section(redis_server.url), storeMode=1)
        async with expect_write(raw, "launchdarkly:$inited", "set"):
            await harness.create(dataSystem=system)
        features = await raw.hgetall("launchdarkly:features")
        assert sorted(features) == ["color", "n"]


@pytest.mark.asyncio
async def test_fdv1_line_persistent_store_daemon_and_read_write(
    redis_server: RedisServer,
) -> None:
    """The FDv1 line's top-level ``persistentDataStore``: daemon mode, or written by the source."""
    async with running() as harness, raw_redis(redis_server) as raw:
        await seed(raw, {"f": flag("from-redis")}, inited=False)
        store = _store_section(redis_server.url)["persistentDataStore"]
        url = await harness.create(dataSystem=None, persistentDataStore=store)
        reply = await harness.command(
            url,
            "evaluate",
            {"flagKey": "f", "context": USER, "valueType": "any", "defaultValue": None},
        )
        assert reply == {"value": "from-redis"}
        assert harness.server.requests_to("/all") == []
        assert harness.server.requests_to("/sdk/latest-all") == []

        async with expect_write(raw, "launchdarkly:$inited", "set"):
            await harness.create(
                dataSystem=None,
                polling={"baseUri": harness.server.url},
                persistentDataStore=store,
            )
        assert sorted(await raw.hgetall("launchdarkly:features")) == ["color", "n"]


@pytest.mark.asyncio
async def test_a_daemon_client_on_an_empty_store_is_created_and_evaluates(
    redis_server: RedisServer,
) -> None:
    """Not ready (nobody initialised the store), but the harness gets its client."""
    async with running() as harness:
        url = await harness.create(
            startWaitTimeMs=1,
            dataSystem={
                "store": _store_section(redis_server.url),
                "storeMode": 0,
                "initializers": None,
                "synchronizers": None,
            },
        )
        reply = await harness.command(
            url,
            "evaluate",
            {
                "flagKey": "f",
                "context": USER,
                "valueType": "string",
                "defaultValue": "default",
                "detail": True,
            },
        )
        assert reply["value"] == "default"
        assert reply["reason"]["kind"] == "ERROR"


@pytest.mark.asyncio
async def test_persistent_store_configuration_maps_cache_modes() -> None:
    async with running() as harness:
        for mode, ttl, expected in (
            ("ttl", 2, 2.0),
            (None, None, 15.0),
            ("infinite", None, float("inf")),
            ("off", None, 0.0),
        ):
            system = harness.config()["dataSystem"]
            system["store"] = _store_section("redis://127.0.0.1:9/0", mode, ttl)
            config, _ = service.config_from(harness.config(dataSystem=system))
            assert config.data_system is not None
            store = config.data_system.store
            assert isinstance(store, RedisStore) and store.cache_ttl == expected
            assert config.data_system.store_mode is StoreMode.READ_ONLY
        for section, message in (
            ({"persistentDataStore": {"store": {"type": "consul"}}}, "only redis"),
            (_store_section("redis://h:1/0", "sometimes"), "unknown cache mode"),
            (_store_section("http://nope"), "url must start"),
        ):
            system = harness.config()["dataSystem"]
            system["store"] = section
            reply = await harness.http.post(
                "/",
                json={"tag": "t", "configuration": harness.config(dataSystem=system)},
            )
            assert reply.status_code == 400 and message in reply.text
        system = harness.config()["dataSystem"]
        system.update(store=_store_section("redis://h:1/0"), storeMode=7)
        reply = await harness.http.post(
            "/", json={"tag": "t", "configuration": harness.config(dataSystem=system)}
        )
        assert reply.status_code == 400 and "storeMode" in reply.text


# ------------------------------------------------------------ big segments
class BigSegmentCallbacks:
    """The harness's big-segment store fixture: a real HTTP server on loopback."""

    def __init__(self) -> None:
        self.last_up_to_date: int | None = 0  # None: answer 500
        self.memberships: dict[str, dict[str, bool | None] | None] = {}
        self.membership_fails = False
        self.queried: list[str] = []
        self.url = ""

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def metadata(request: Request) -> Response:
            del request
            if self.last_up_to_date is None:
                return Response("store down", status_code=500)
            return JSONResponse({"lastUpToDate": self.last_up_to_date})

        async def membership(request: Request) -> Response:
            digest = (await request.json())["contextHash"]
            self.queried.append(digest)
            if self.membership_fails:
                return Response("store down", status_code=500)
            return JSONResponse({"values": self.memberships.get(digest)})

        return Starlette(
            routes=[
                Route("/getMetadata", metadata, methods=["POST"]),
                Route("/getMembership", membership, methods=["POST"]),
            ]
        )


@contextlib.asynccontextmanager
async def callbacks() -> AsyncIterator[BigSegmentCallbacks]:
    import socket

    import uvicorn

    fixture = BigSegmentCallbacks()
    # Listening before uvicorn starts: requests wait in the backlog.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    fixture.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(fixture.app(), log_level="warning", lifespan="off")
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield fixture
            finally:
                server.should_exit = True
    finally:
        sock.close()


def _big_section(url: str, **overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "callbackUri": url,
        "userCacheSize": None,
        "userCacheTimeMs": None,
        # One poll, at start: each test sets the store's state before it.
        "statusPollIntervalMs": 3_600_000,
        "staleAfterMs": None,
    }
    section.update(overrides)
    return section


BIG_FLAG = match_flag(
    {"attribute": "key", "op": "segmentMatch", "values": ["big"]}, key="big-flag"
)
BIG_SEGMENT = {
    "key": "big",
    "version": 1,
    "unbounded": True,
    "generation": 100,
    "salt": "s",
}


async def _evaluate_big(harness: Harness, url: str, key: str) -> Any:
    return await harness.command(
        url,
        "evaluate",
        {
            "flagKey": "big-flag",
            "context": {"kind": "user", "key": key},
            "valueType": "bool",
            "defaultValue": False,
            "detail": True,
        },
    )


@pytest.mark.asyncio
async def test_big_segments_through_the_callback_store() -> None:
    async with running() as harness, callbacks() as store:
        harness.server.set_flag("big-flag", BIG_FLAG)
        harness.server.set_segment("big", BIG_SEGMENT)
        store.last_up_to_date = int(time.time() * 1000)  # noqa: TID251 - the store's wall-clock stamp
        user1 = context_hash("user1")
        store.memberships[user1] = {"big.g100": True, "other.g1": None}
        url = await harness.create(bigSegments=_big_section(store.url))
        status = await harness.command(url, "getBigSegmentStoreStatus", {})
        assert status == {"available": True, "stale": False}
        reply = await _evaluate_big(harness, url, "user1")
        assert reply == {
            "value": True,
            "variationIndex": 0,
            "reason": {
                "kind": "RULE_MATCH",
                "ruleIndex": 0,
                "ruleId": "r1",
                "bigSegmentsStatus": "HEALTHY",
            },
        }
        reply = await _evaluate_big(harness, url, "user2")
        assert reply["reason"] == {
            "kind": "FALLTHROUGH",
            "bigSegmentsStatus": "HEALTHY",
        }
        await _evaluate_big(harness, url, "user1")  # cached: no query
        assert store.queried == [user1, context_hash("user2")]


@pytest.mark.asyncio
async def test_big_segment_statuses_through_the_callback_store() -> None:
    async with running() as harness, callbacks() as store:
        harness.server.set_flag("big-flag", BIG_FLAG)
        harness.server.set_segment("big", BIG_SEGMENT)
        store.last_up_to_date = 1  # long ago: STALE
        url = await harness.create(bigSegments=_big_section(store.url))
        status = await harness.command(url, "getBigSegmentStoreStatus", {})
        assert status == {"available": True, "stale": True}
        reply = await _evaluate_big(harness, url, "user1")
        assert reply["reason"]["bigSegmentsStatus"] == "STALE"
        store.last_up_to_date = None  # the metadata query fails: STORE_ERROR
        url = await harness.create(bigSegments=_big_section(store.url))
        status = await harness.command(url, "getBigSegmentStoreStatus", {})
        assert status == {"available": False, "stale": False}
        reply = await _evaluate_big(harness, url, "user1")
        assert reply["reason"]["bigSegmentsStatus"] == "STORE_ERROR"
        # A membership query that fails: the rules only, STORE_ERROR.
        store.last_up_to_date = int(time.time() * 1000)  # noqa: TID251 - the store's wall-clock stamp
        store.membership_fails = True
        url = await harness.create(bigSegments=_big_section(store.url))
        reply = await _evaluate_big(harness, url, "user1")
        assert reply["reason"] == {
            "kind": "FALLTHROUGH",
            "bigSegmentsStatus": "STORE_ERROR",
        }


@pytest.mark.asyncio
async def test_big_segments_configuration_maps_onto_big_segments_config() -> None:
    async with running() as harness:
        config, _ = service.config_from(
            harness.config(
                bigSegments=_big_section(
                    "http://127.0.0.1:9",
                    userCacheSize=2,
                    userCacheTimeMs=10,
                    statusPollIntervalMs=10,
                    staleAfterMs=2000,
                )
            )
        )
        big = config.big_segments
        assert big is not None
        assert (
            big.context_cache_size,
            big.context_cache_time,
            big.status_poll_interval,
            big.stale_after,
        ) == (2, 0.01, 0.01, 2.0)
        defaults, _ = service.config_from(
            harness.config(
                bigSegments=_big_section("http://h:9", statusPollIntervalMs=None)
            )
        )
        assert defaults.big_segments is not None
        assert defaults.big_segments == aioflags.BigSegmentsConfig(
            defaults.big_segments.store
        )
        reply = await harness.http.post(
            "/",
            json={
                "tag": "t",
                "configuration": harness.config(bigSegments={"callbackUri": None}),
            },
        )
        assert reply.status_code == 400 and "callbackUri" in reply.text
        # A client without big segments says so.
        url = await harness.create()
        reply = await harness.http.post(
            url,
            json={
                "command": "getBigSegmentStoreStatus",
                "getBigSegmentStoreStatus": {},
            },
        )
        assert reply.status_code == 400 and "not configured" in reply.text


# --------------------------------------------------------------- migrations
STAGES = ["off", "dualwrite", "shadow", "live", "rampdown", "complete"]


def migration_flag(stage: str) -> dict[str, Any]:
    return {
        "key": "move",
        "version": 2,
        "on": True,
        "variations": [*STAGES, "bogus"],
        "fallthrough": {"variation": [*STAGES, "bogus"].index(stage)},
        "offVariation": 0,
        "salt": "s",
    }


def migration_operation(harness: Harness, **fields: Any) -> dict[str, Any]:
    # The harness's MigrationOperationParams, every field sent.
    params: dict[str, Any] = {
        "key": "move",
        "context": USER,
        "defaultStage": "off",
        "readExecutionOrder": "serial",
        "operation": "read",
        "oldEndpoint": f"{harness.server.url}/old",
        "newEndpoint": f"{harness.server.url}/new",
        "payload": "the payload",
        "trackLatency": True,
        "trackErrors": True,
        "trackConsistency": True,
    }
    params.update(fields)
    return params


@pytest.mark.asyncio
async def test_migration_variation_command() -> None:
    async with running() as harness:
        harness.data.set_flag("move", migration_flag("rampdown"))
        harness.data.set_flag("bogus", {**migration_flag("bogus"), "key": "bogus"})
        url = await harness.create()
        for key, default, expected in (
            ("move", "off", "rampdown"),
            ("missing", "live", "live"),
            ("missing", "not-a-stage", "off"),  # logged; OFF, as LaunchDarkly
        ):
            reply = await harness.command(
                url,
                "migrationVariation",
                {"key": key, "context": USER, "defaultStage": default},
            )
            assert reply == {"result": expected}, (key, default)
        reply = await harness.command(
            url,
            "migrationVariation",
            {"key": "bogus", "context": USER, "defaultStage": "shadow"},
        )
        assert reply == {"result": "shadow"}


@pytest.mark.asyncio
@pytest.mark.parametrize("order", ["serial", "random", "concurrent", "parallel"])
async def test_migration_read_calls_the_callback_origins_and_sends_the_event(
    order: str,
) -> None:
    from tests.test_contract_events import events_config

    async with running() as harness:
        harness.data.set_flag("move", migration_flag("live"))
        harness.server.fail("/old", Fault(status=200, body=b"same"))
        harness.server.fail("/new", Fault(status=200, body=b"same"))
        url = await harness.create(events=events_config(harness.server.url))
        reply = await harness.command(
            url,
            "migrationOperation",
            migration_operation(harness, readExecutionOrder=order),
        )
        await harness.command(url, "flushEvents", {})
        await harness.server.wait_for_events(kind="migration_op")
        (event,) = harness.server.events_of("migration_op")
    assert reply == {"result": "same"}
    for path in ("/old", "/new"):
        (request,) = harness.server.requests_to(path)
        assert request.method == "POST" and request.body == b"the payload"
    assert event["operation"] == "read"
    assert event["evaluation"]["value"] == "live"
    keys = [m["key"] for m in event["measurements"]]
    assert keys == ["invoked", "consistent", "latency_ms"]
    # samplingRatio even when it is 1: the harness requires it.
    assert event["measurements"][1] == {
        "key": "consistent",
        "value": True,
        "samplingRatio": 1,
    }


@pytest.mark.asyncio
async def test_migration_write_reports_the_authoritative_failure() -> None:
    from tests.test_contract_events import events_config

    async with running() as harness:
        harness.data.set_flag("move", migration_flag("live"))
        harness.server.fail("/new", Fault(status=503))
        url = await harness.create(events=events_config(harness.server.url))
        reply = await harness.command(
            url,
            "migrationOperation",
            migration_operation(harness, operation="write", payload=None),
        )
        await harness.command(url, "flushEvents", {})
        await harness.server.wait_for_events(kind="migration_op")
        (event,) = harness.server.events_of("migration_op")
        old_calls = harness.server.requests_to("/old")
    assert reply == {"result": "Request failed with status code 503"}
    assert old_calls == []  # the authoritative write failed: no other write
    assert event["operation"] == "write"
    assert event["measurements"][0] == {"key": "invoked", "values": {"new": True}}
    assert event["measurements"][-1] == {"key": "error", "values": {"new": True}}


@pytest.mark.asyncio
async def test_migration_operation_bad_parameters_are_400() -> None:
    async with running() as harness:
        url = await harness.create()
        for fields in (
            {"operation": "delete"},
            {"readExecutionOrder": "sideways"},
            {"oldEndpoint": None},
        ):
            params = migration_operation(harness, **fields)
            reply = await harness.http.post(
                url,
                json={"command": "migrationOperation", "migrationOperation": params},
            )
            assert reply.status_code == 400, fields
