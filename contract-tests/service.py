"""LaunchDarkly's SDK test service for aioflags (see README.md beside this file).

Run from the repository root, with the package and this service's dependencies
installed (``pip install -e . --group contract-tests``)::

    python contract-tests/service.py --port 8000

An ASGI app (Starlette) on uvicorn: both run on anyio, as aioflags does, and
they are the field's well-kept choice; the service is a test tool, so neither
is a runtime dependency of aioflags. Every client the service creates runs in
the app's task group (its lifespan), in a task that enters and leaves the
client's ``async with`` block, so ``DELETE`` closes it cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import aioflags
from aioflags import Client, Config, Context, DataSystem, ProviderStatus, sources
from aioflags.migrations import (
    ExecutionOrder,
    MigratorBuilder,
    Operation,
    Result,
    Stage,
)
from aioflags.stores import RedisStore, StoreMode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from anyio.abc import TaskGroup
    from starlette.requests import Request

log = logging.getLogger("aioflags.contract-tests")

#: What aioflags really supports; each opens harness suites (README.md).
CAPABILITIES = (
    "server-side",
    "strongly-typed",
    "server-side-polling",
    "filtering",
    # An invalid filter key is dropped (logged), never sent: the strict
    # behaviour, which the harness tests under this capability.
    "filtering-strict",
    "service-endpoints",
    "tags",
    "wrapper",
    "instance-id",
    "etag-caching",
    "polling-gzip",
    "http-proxy",
    "tls:verify-peer",
    "tls:skip-verify-peer",
    "tls:custom-ca",
    "fdv1-fallback",
    "all-flags-with-reasons",
    "all-flags-client-side-only",
    "all-flags-details-only-for-tracked-flags",
    "context-type",
    "context-comparison",
    "user-type",
    "secure-mode-hash",
    "flag-change-listeners",
    "flag-value-change-listeners",
    # Analytics events (events.md §12).
    "event-gzip",
    "optional-event-gzip",
    "event-sampling",
    "inline-context",
    "inline-context-all",
    "anonymous-redaction",
    "omit-anonymous-contexts",
    "client-prereq-events",
    # Hooks (hooks.md §5): evaluation and track series, and the environment
    # id from the flag service's X-LD-EnvID header.
    "evaluation-hooks",
    "track-hooks",
    "hook-environment-id",
    # Big segments through the harness's callback store (shared/stores.md §8).
    "big-segments",
    # dataSystem.store with a Redis persistent store (shared/stores.md §7).
    "persistent-data-store-redis",
    # Technology migrations (docs/migrations.md): the origins are the
    # harness's callback endpoints.
    "migrations",
)

#: Commands for features aioflags does not have, with the reason given.
UNSUPPORTED = {
    "aliasEvent": "alias events are legacy: LaunchDarkly's SDKs no longer send them",
}


class BadRequest(Exception):
    """The request is malformed or asks for something unsupported (HTTP 400)."""


# ------------------------------------------------------------------ helpers
def _obj(value: object, what: str) -> dict[str, Any]:
    """A JSON object, or ``{}`` for null/absent (null means omitted)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object")
    return value


def _get(params: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = params.get(name)
    if value is not None and (
        not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    ):
        raise BadRequest(f"{name} has the wrong type")
    return value


def _seconds(ms: object, name: str) -> float | None:
    if ms is None:
        return None
    if not isinstance(ms, (int, float)) or isinstance(ms, bool) or ms < 0:
        raise BadRequest(f"{name} must be a non-negative number")
    return max(ms / 1000, 0.001)


# ------------------------------------------------------- big segments
class CallbackBigSegmentStore:
    """The harness's big-segment store, reached over HTTP callbacks.

    ``POST {uri}/getMetadata`` answers ``{"lastUpToDate": ms}``;
    ``POST {uri}/getMembership`` with ``{"contextHash": ...}`` answers
    ``{"values": {ref: true|false|null}}``. A non-2xx answer is a store
    error (the harness simulates STORE_ERROR with a 500).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[CallbackBigSegmentStore.Connection]:
        async with httpx.AsyncClient(timeout=5) as http:
            yield CallbackBigSegmentStore.Connection(http, self.uri)

    class Connection:
        """One client run's connection: an HTTP client of its own."""

        def __init__(self, http: httpx.AsyncClient, uri: str) -> None:
            self.http = http
            self.uri = uri

        async def get_metadata(self) -> int | None:
            reply = await self.http.post(f"{self.uri}/getMetadata")
            reply.raise_for_status()
            stamp = _obj(reply.json(), "metadata").get("lastUpToDate")
            if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
                return None
            return int(stamp)

        async def get_membership(self, context_hash: str) -> dict[str, bool] | None:
            reply = await self.http.post(
                f"{self.uri}/getMembership", json={"contextHash": context_hash}
            )
            reply.raise_for_status()
            values = _obj(reply.json(), "membership").get("values")
            if not isinstance(values, dict):
                return None
            # A null value means "no value" for that ref.
            return {ref: v for ref, v in values.items() if isinstance(v, bool)}


def _big_segments(spec: Mapping[str, Any]) -> aioflags.BigSegmentsConfig:
    """The ``bigSegments`` section: the callback store and its cache and polling."""
    uri = _get(spec, "callbackUri", str)
    if not uri:
        raise BadRequest("bigSegments.callbackUri is required")
    options: dict[str, Any] = {}
    size = _get(spec, "userCacheSize", int)
    if size is not None and size > 0:
        options["context_cache_size"] = size
    for field_name, option in (
        ("userCacheTimeMs", "context_cache_time"),
        ("statusPollIntervalMs", "status_poll_interval"),
        ("statusPollIntervalMS", "status_poll_interval"),  # as the docs spell it
        ("staleAfterMs", "stale_after"),
    ):
        seconds = _seconds(spec.get(field_name), field_name)
        if seconds is not None:
            options[option] = seconds
    try:
        return aioflags.BigSegmentsConfig(CallbackBigSegmentStore(uri), **options)
    except aioflags.ConfigurationError as exc:
        raise BadRequest(str(exc)) from exc


# ------------------------------------------------------- configuration
def _initializer(spec: Mapping[str, Any]) -> sources.InitializerFactory:
    polling = _obj(spec.get("polling"), "initializer.polling")
    if not polling and spec.get("polling") is None:
        raise BadRequest(
            f"unsupported initializer {sorted(k for k in spec if spec[k] is not None)}"
        )
    return sources.polling_initializer(base_uri=_get(polling, "baseUri", str))


def _synchronizer(spec: Mapping[str, Any]) -> sources.SynchronizerFactory:
    if spec.get("streaming") is not None:
        streaming = _obj(spec["streaming"], "synchronizer.streaming")
        return sources.streaming_synchronizer(
            base_uri=_get(streaming, "baseUri", str),
            initial_retry_delay=_seconds(
                streaming.get("initialRetryDelayMs"), "initialRetryDelayMs"
            ),
        )
    if spec.get("polling") is not None:
        polling = _obj(spec["polling"], "synchronizer.polling")
        return sources.polling_synchronizer(
            base_uri=_get(polling, "baseUri", str),
            interval=_seconds(polling.get("pollIntervalMs"), "pollIntervalMs"),
        )
    raise BadRequest("a synchronizer needs streaming or polling")


def _store(spec: Mapping[str, Any]) -> RedisStore:
    """``persistentDataStore`` (``dataSystem.store``'s or the FDv1 line's top-level one).

    A Redis store and its cache.
    """
    persistent = _obj(spec.get("persistentDataStore"), "persistentDataStore")
    store = _obj(persistent.get("store"), "persistentDataStore.store")
    if store.get("type") != "redis":
        raise BadRequest(
            f"aioflags supports only redis persistent stores, not {store.get('type')!r}"
        )
    cache = _obj(persistent.get("cache"), "persistentDataStore.cache")
    mode = cache.get("mode") or "ttl"
    if mode == "off":
        # Every awaited evaluation reads the store (docs/stores.md).
        ttl: float | None = 0.0
    elif mode == "infinite":
        ttl = None
    elif mode == "ttl":
        seconds = _get(cache, "ttl", (int, float))
        ttl = 15.0 if seconds is None else float(seconds)
    else:
        raise BadRequest(f"unknown cache mode {mode!r}")
    try:
        return RedisStore(
            url=_get(store, "dsn", str) or "redis://localhost:6379/0",
            prefix=_get(store, "prefix", str) or "launchdarkly",
            cache_ttl=ttl,
        )
    except aioflags.ConfigurationError as exc:
        raise BadRequest(str(exc)) from exc


def _data_system(spec: Mapping[str, Any]) -> DataSystem:
    """The FDv2 line's ``dataSystem`` section (with its persistent store, if any)."""
    system = _sources(spec)
    if spec.get("store") is None:
        return system
    mode = spec.get("storeMode")
    if mode not in (None, 0, 1):
        raise BadRequest(f"unknown storeMode {mode!r}")
    return DataSystem.custom(
        initializers=system.initializers,
        synchronizers=system.synchronizers,
        fdv1_fallback=system.fdv1_fallback,
        store=_store(_obj(spec["store"], "dataSystem.store")),
        store_mode=StoreMode.READ_WRITE if mode == 1 else StoreMode.READ_ONLY,
    )


def _sources(spec: Mapping[str, Any]) -> DataSystem:
    """The ``dataSystem`` section's sources."""
    if spec.get("useDefaultDataSystem"):
        return DataSystem.default()
    fallback = spec.get("fdv1Fallback")
    fdv1 = None
    if fallback is not None:
        fallback = _obj(fallback, "fdv1Fallback")
        fdv1 = sources.fdv1_polling_synchronizer(
            base_uri=_get(fallback, "baseUri", str),
            interval=_seconds(fallback.get("pollIntervalMs"), "pollIntervalMs"),
        )
    return DataSystem.custom(
        initializers=[
            _initializer(_obj(s, "initializer")) for s in spec.get("initializers") or []
        ],
        synchronizers=[
            _synchronizer(_obj(s, "synchronizer"))
            for s in spec.get("synchronizers") or []
        ],
        fdv1_fallback=fdv1,
    )


def _fdv1_data_system(
    streaming: Mapping[str, Any] | None,
    polling: Mapping[str, Any] | None,
    store: RedisStore | None = None,
) -> DataSystem:
    """The FDv1 line's top-level ``streaming`` / ``polling`` / ``persistentDataStore``.

    Polling only if only polling; with a store and neither, daemon mode (the
    store read only); with a store and a source, the source writes it.
    """
    if store is not None and streaming is None and polling is None:
        return DataSystem.daemon(store)
    if polling is not None and streaming is None:
        synchronizer = sources.fdv1_polling_synchronizer(
            base_uri=_get(polling, "baseUri", str),
            interval=_seconds(polling.get("pollIntervalMs"), "pollIntervalMs"),
        )
    else:
        streaming = streaming or {}
        synchronizer = sources.fdv1_streaming_synchronizer(
            base_uri=_get(streaming, "baseUri", str),
            initial_retry_delay=_seconds(
                streaming.get("initialRetryDelayMs"), "initialRetryDelayMs"
            ),
        )
    if store is None:
        return DataSystem.custom(synchronizers=[synchronizer])
    return DataSystem.custom(
        synchronizers=[synchronizer], store=store, store_mode=StoreMode.READ_WRITE
    )


def _events_options(spec: object, endpoints: Mapping[str, Any]) -> dict[str, Any]:
    """The ``events`` section: absent or null means events are off."""
    if spec is None:
        return {"send_events": False}
    events = _obj(spec, "events")
    options: dict[str, Any] = {
        "send_events": True,
        "diagnostic_opt_out": not events.get("enableDiagnostics"),
        "all_attributes_private": bool(events.get("allAttributesPrivate")),
        "private_attributes": tuple(
            _get(events, "globalPrivateAttributes", list) or ()
        ),
        "omit_anonymous_contexts": bool(events.get("omitAnonymousContexts")),
        "compress_events": bool(events.get("enableGzip")),
    }
    base = _get(events, "baseUri", str) or _get(endpoints, "events", str)
    if base is not None:
        options["events_uri"] = base
    capacity = _get(events, "capacity", int)
    if capacity is not None and capacity > 0:
        options["events_capacity"] = capacity
    interval = _seconds(events.get("flushIntervalMs"), "flushIntervalMs")
    if interval:
        options["flush_interval"] = interval
    return options


_STAGES = {
    "beforeEvaluation": "before_evaluation",
    "afterEvaluation": "after_evaluation",
    "afterTrack": "after_track",
}


def _detail_json(detail: aioflags.EvaluationDetail[Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {"value": detail.value, "reason": dict(detail.reason)}
    if detail.variation_index is not None:
        reply["variationIndex"] = detail.variation_index
    return reply


class TestHook(aioflags.Hook):
    """The harness's "test hook": reports each stage to its callback URI.

    Stages are synchronous, so a stage queues its payload in ``outbox`` and
    the service POSTs the queue, in order and one at a time, before it
    answers the command that ran the stages. A stage configured with an
    error raises instead (and reports nothing).
    """

    __test__ = False  # not a pytest class

    def __init__(
        self, spec: Mapping[str, Any], outbox: list[tuple[str, dict[str, Any]]]
    ) -> None:
        self.name = _get(spec, "name", str) or "test hook"
        self.uri = _get(spec, "callbackUri", str)
        if not self.uri:
            raise BadRequest("a hook needs a callbackUri")
        data = _obj(spec.get("data"), "hooks.data")
        errors = _obj(spec.get("errors"), "hooks.errors")
        self.data = {stage: _obj(data.get(stage), stage) for stage in _STAGES}
        self.errors = {s: _get(errors, s, str) for s in _STAGES if errors.get(s)}
        self.outbox = outbox

    @property
    def metadata(self) -> aioflags.HookMetadata:
        return aioflags.HookMetadata(name=self.name)

    def _stage(self, stage: str, payload: dict[str, Any]) -> None:
        error = self.errors.get(stage)
        if error is not None:
            raise RuntimeError(error)
        assert self.uri is not None
        self.outbox.append((self.uri, {"stage": stage, **payload}))

    def _series(
        self, series: aioflags.EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "evaluationSeriesContext": {
                "flagKey": series.key,
                "context": None if series.context is None else series.context.to_dict(),
                "defaultValue": series.default_value,
                "method": series.method,
                "environmentId": series.environment_id,
            },
            "evaluationSeriesData": dict(data),
        }

    def before_evaluation(
        self, series_context: aioflags.EvaluationSeriesContext, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        self._stage("beforeEvaluation", self._series(series_context, data))
        return {**data, **self.data["beforeEvaluation"]}

    def after_evaluation(
        self,
        series_context: aioflags.EvaluationSeriesContext,
        data: Mapping[str, Any],
        detail: aioflags.EvaluationDetail[Any],
    ) -> Mapping[str, Any]:
        payload = self._series(series_context, data)
        payload["evaluationDetail"] = _detail_json(detail)
        self._stage("afterEvaluation", payload)
        return {**data, **self.data["afterEvaluation"]}

    def after_track(self, series_context: aioflags.TrackSeriesContext) -> None:
        self._stage(
            "afterTrack",
            {
                "trackSeriesContext": {
                    "key": series_context.key,
                    "context": series_context.context.to_dict(),
                    "data": series_context.data,
                    "metricValue": series_context.metric_value,
                    "environmentId": series_context.environment_id,
                }
            },
        )


def _hooks(spec: object, outbox: list[tuple[str, dict[str, Any]]]) -> list[TestHook]:
    """The ``hooks`` section: one test hook per entry, in registration order."""
    hooks = _obj(spec, "hooks").get("hooks") or []
    if not isinstance(hooks, list):
        raise BadRequest("hooks.hooks must be a list")
    return [TestHook(_obj(h, "hooks.hooks[]"), outbox) for h in hooks]


def config_from(
    spec: Mapping[str, Any], outbox: list[tuple[str, dict[str, Any]]] | None = None
) -> tuple[Config, bool]:
    """Map the harness's configuration onto aioflags' public ``Config``.

    Returns the config and whether the service keeps a client that is not
    ready: ``initCanFail``, or daemon mode. A daemon-mode client on a store
    nobody has initialised is honestly not ready (docs/stores.md), where
    LaunchDarkly's SDKs report ready at once; the harness needs it to exist
    and evaluate. Test hooks queue their stage payloads in ``outbox``.
    """
    options: dict[str, Any] = {}
    endpoints = _obj(spec.get("serviceEndpoints"), "serviceEndpoints")
    if endpoints.get("polling") is not None:
        options["base_uri"] = _get(endpoints, "polling", str)
    if endpoints.get("streaming") is not None:
        options["stream_uri"] = _get(endpoints, "streaming", str)
    wait = _seconds(spec.get("startWaitTimeMs"), "startWaitTimeMs")
    options["ready_timeout"] = 5.0 if wait is None else wait
    tags = _obj(spec.get("tags"), "tags")
    options["application_id"] = _get(tags, "applicationId", str)
    options["application_version"] = _get(tags, "applicationVersion", str)
    wrapper = _obj(spec.get("wrapper"), "wrapper")
    options["wrapper_name"] = _get(wrapper, "name", str)
    options["wrapper_version"] = _get(wrapper, "version", str)
    tls = _obj(spec.get("tls"), "tls")
    if tls.get("skipVerifyPeer"):
        options["verify"] = False
    elif tls.get("customCAFile") is not None:
        options["verify"] = _get(tls, "customCAFile", str)
    proxy = _obj(spec.get("proxy"), "proxy")
    options["proxy"] = _get(proxy, "httpProxy", str)
    # A clientSide section on a server-side client is ignored, as
    # LaunchDarkly's own server-side services do.
    options.update(_events_options(spec.get("events"), endpoints))
    if spec.get("hooks") is not None:
        options["hooks"] = _hooks(spec["hooks"], [] if outbox is None else outbox)
    if spec.get("bigSegments") is not None:
        options["big_segments"] = _big_segments(
            _obj(spec["bigSegments"], "bigSegments")
        )

    if spec.get("dataSystem") is not None:
        options["data_system"] = _data_system(_obj(spec["dataSystem"], "dataSystem"))
    else:
        streaming = spec.get("streaming")
        polling = spec.get("polling")
        persistent = spec.get("persistentDataStore")
        options["data_system"] = _fdv1_data_system(
            None if streaming is None else _obj(streaming, "streaming"),
            None if polling is None else _obj(polling, "polling"),
            None if persistent is None else _store({"persistentDataStore": persistent}),
        )
        for section in (streaming, polling):
            if isinstance(section, dict) and section.get("filter") is not None:
                options["payload_filter_key"] = _get(section, "filter", str)
        # A source without its own base URI uses the config's.
        for section, key in ((streaming, "stream_uri"), (polling, "base_uri")):
            if isinstance(section, dict) and section.get("baseUri") is not None:
                options.setdefault(key, section["baseUri"])
    try:
        config = Config(_get(spec, "credential", str), **options)
    except (aioflags.ConfigurationError, TypeError) as exc:
        raise BadRequest(str(exc)) from exc
    system = config.data_system
    daemon = (
        system is not None
        and system.store is not None
        and not system.initializers
        and not system.synchronizers
        and system.fdv1_fallback is None
    )
    return config, bool(spec.get("initCanFail")) or daemon


# ------------------------------------------------------------ contexts
def _context(params: Mapping[str, Any]) -> Context:
    data = params.get("context")
    if data is None:
        data = params.get("user")
    return Context.from_dict(data)


def _stage(params: Mapping[str, Any]) -> Stage:
    """``defaultStage``; a name that is no stage is passed on for the SDK to refuse."""
    name = params.get("defaultStage")
    try:
        return Stage(name)
    except ValueError:
        # Passed on: the client logs it and uses OFF, as LaunchDarkly's SDK does.
        return cast("Stage", name)


def _build_single(params: Mapping[str, Any]) -> Context:
    return Context.create(
        _get(params, "key", str) or "",
        _get(params, "kind", str) or "user",
        name=_get(params, "name", str),
        anonymous=bool(params.get("anonymous")),
        attributes=_obj(params.get("custom"), "custom"),
        private_attributes=params.get("private") or [],
    )


def _literal_ref(name: str) -> str:
    if not name.startswith("/"):
        return name
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _comparison_single(params: Mapping[str, Any]) -> Context:
    attributes: dict[str, Any] = {}
    name = None
    anonymous = False
    for attr in params.get("attributes") or []:
        if attr.get("name") == "name":
            name = attr.get("value")
        elif attr.get("name") == "anonymous":
            anonymous = bool(attr.get("value"))
        else:
            attributes[attr["name"]] = attr.get("value")
    private = [
        _literal_ref(p["value"]) if p.get("literal") else p["value"]
        for p in params.get("privateAttributes") or []
    ]
    return Context.create(
        params.get("key") or "",
        params.get("kind") or "user",
        name=name,
        anonymous=anonymous,
        attributes=attributes,
        private_attributes=private,
    )


def _comparison_context(params: Mapping[str, Any]) -> Context:
    if params.get("single") is not None:
        return _comparison_single(params["single"])
    return Context.create_multi(
        *(_comparison_single(p) for p in params.get("multi") or [])
    )


def _context_reply(context: Context) -> dict[str, Any]:
    if not context.valid:
        return {"error": context.error}
    return {"output": json.dumps(context.to_dict())}


# ------------------------------------------------------------- clients
@dataclass
class TestClient:
    """One client created by the harness, and its listeners."""

    client: Client
    #: Hook stage payloads to POST before the command that ran them answers.
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stop: anyio.Event = field(default_factory=anyio.Event)
    stopped: anyio.Event = field(default_factory=anyio.Event)
    listeners: dict[str, Callable[[], None]] = field(default_factory=dict)
    #: Whether the configuration has big segments (else no status will come).
    big_segments: bool = False


class Service:
    """The clients, the callback HTTP client, and the commands."""

    def __init__(self, tg: TaskGroup, http: httpx.AsyncClient) -> None:
        self.tg = tg
        self.http = http
        self.clients: dict[str, TestClient] = {}
        self.ids = itertools.count(1)
        self.exit: Callable[[], None] = lambda: None

    async def create(self, body: Mapping[str, Any]) -> Response:
        outbox: list[tuple[str, dict[str, Any]]] = []
        config, init_can_fail = config_from(
            _obj(body.get("configuration"), "configuration"), outbox
        )
        entry = TestClient(
            Client(config), outbox, big_segments=config.big_segments is not None
        )
        entered = anyio.Event()
        failure: list[BaseException] = []

        async def host() -> None:
            try:
                async with entry.client:
                    entered.set()
                    await entry.stop.wait()
            except Exception as exc:  # reported to the harness, not raised in the group
                failure.append(exc)
                log.exception("client failed")
            finally:
                entered.set()
                entry.stopped.set()

        self.tg.start_soon(host)
        await entered.wait()
        if failure:
            return PlainTextResponse(f"client failed: {failure[0]}", status_code=500)
        status = entry.client.status
        if status is not ProviderStatus.READY and not init_can_fail:
            await self._close(entry)
            return PlainTextResponse(
                f"client did not initialise (status {status.name})", status_code=500
            )
        client_id = str(next(self.ids))
        self.clients[client_id] = entry
        return Response(status_code=201, headers={"Location": f"/clients/{client_id}"})

    async def _post_hook_stages(self, entry: TestClient) -> None:
        """POST what the hooks reported, in order, one at a time (hooks.md §5)."""
        while entry.outbox:
            uri, payload = entry.outbox.pop(0)
            try:
                await self.http.post(uri, json=payload)
            except httpx.HTTPError:
                log.warning("hook callback to %s failed", uri, exc_info=True)

    async def _close(self, entry: TestClient) -> None:
        for remove in entry.listeners.values():
            remove()
        entry.stop.set()
        await entry.stopped.wait()

    async def delete(self, client_id: str) -> Response:
        entry = self.clients.pop(client_id, None)
        if entry is None:
            return PlainTextResponse(f"no client {client_id}", status_code=404)
        await self._close(entry)
        return Response(status_code=204)

    async def close_all(self) -> None:
        while self.clients:
            await self._close(self.clients.popitem()[1])

    async def command(self, client_id: str, body: Mapping[str, Any]) -> Response:
        entry = self.clients.get(client_id)
        if entry is None:
            return PlainTextResponse(f"no client {client_id}", status_code=404)
        name = body.get("command")
        if not isinstance(name, str):
            raise BadRequest("command must be a string")
        if name in UNSUPPORTED:
            raise BadRequest(f"{name}: {UNSUPPORTED[name]}")
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            raise BadRequest(f"unknown command {name!r}")
        params = _obj(body.get(name), name)
        try:
            result = await handler(entry, params)
        finally:
            await self._post_hook_stages(entry)
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result)

    # ------------------------------------------------------------ commands
    async def _cmd_evaluate(self, entry: TestClient, p: Mapping[str, Any]) -> Any:
        client = entry.client
        key = _get(p, "flagKey", str) or ""
        context = _context(p)
        default = p.get("defaultValue")
        value_type = p.get("valueType") or "any"
        typed: dict[str, tuple[Any, Any]] = {
            "bool": (client.bool_variation_detail, client.bool_variation),
            "int": (client.int_variation_detail, client.int_variation),
            "double": (client.float_variation_detail, client.float_variation),
            "string": (client.string_variation_detail, client.string_variation),
            "any": (client.variation_detail, client.variation),
        }
        if value_type not in typed:
            raise BadRequest(f"unknown valueType {value_type!r}")
        with_detail, plain = typed[value_type]
        if not p.get("detail"):
            return {"value": await plain(key, context, default)}
        return _detail_json(await with_detail(key, context, default))

    async def _cmd_evaluateAll(self, entry: TestClient, p: Mapping[str, Any]) -> Any:
        state = await entry.client.all_flags_state(
            _context(p),
            with_reasons=bool(p.get("withReasons")),
            client_side_only=bool(p.get("clientSideOnly")),
            details_only_for_tracked_flags=bool(p.get("detailsOnlyForTrackedFlags")),
        )
        return {"state": state.to_dict()}

    async def _cmd_contextBuild(self, entry: TestClient, p: Mapping[str, Any]) -> Any:
        del entry
        if p.get("single") is not None:
            return _context_reply(_build_single(_obj(p["single"], "single")))
        parts = [_build_single(_obj(s, "multi[]")) for s in p.get("multi") or []]
        return _context_reply(Context.create_multi(*parts))

    async def _cmd_contextConvert(self, entry: TestClient, p: Mapping[str, Any]) -> Any:
        del entry
        try:
            data = json.loads(_get(p, "input", str) or "")
        except json.JSONDecodeError as exc:
            return {"error": f"invalid JSON: {exc}"}
        return _context_reply(Context.from_dict(data))

    async def _cmd_contextComparison(
        self, entry: TestClient, p: Mapping[str, Any]
    ) -> Any:
        del entry
        one = _comparison_context(_obj(p.get("context1"), "context1"))
        two = _comparison_context(_obj(p.get("context2"), "context2"))
        return {"equals": one == two}

    async def _cmd_customEvent(self, entry: TestClient, p: Mapping[str, Any]) -> Any:
        # Null data is left out of the event whether or not omitNullData is set.
        entry.client.track(
            _get(p, "eventKey", str) or "",
            _context(p),
            data=p.get("data"),
            metric_value=_get(p, "metricValue", (int, float)),
        )

    async def _cmd_identifyEvent(self, entry: TestClient, p: Mapping[str, Any]) -> Any:
        entry.client.identify(_context(p))

    async def _cmd_flushEvents(self, entry: TestClient, p: Mapping[str, Any]) -> Any:
        del p
        # Answer at once: the harness waits for the POST itself, and a flush
        # that waited for delivery would stall it when the sink is down.
        self.tg.start_soon(entry.client.flush)

    async def _cmd_getBigSegmentStoreStatus(
        self, entry: TestClient, p: Mapping[str, Any]
    ) -> Any:
        del p
        client = entry.client
        status = client.big_segment_store_status
        if status is None and entry.big_segments:
            # Not polled yet (the first poll starts with the client): wait for it.
            polled = anyio.Event()
            remove = client.add_big_segment_store_status_listener(
                lambda _: polled.set()
            )
            try:
                status = client.big_segment_store_status
                if status is None:
                    with anyio.move_on_after(5):
                        await polled.wait()
                    status = client.big_segment_store_status
            finally:
                remove()
        if status is None:
            raise BadRequest("big segments are not configured for this client")
        return {"available": status.available, "stale": status.stale}

    async def _cmd_secureModeHash(self, entry: TestClient, p: Mapping[str, Any]) -> Any:
        return {"result": entry.client.secure_mode_hash(_context(p))}

    async def _cmd_migrationVariation(
        self, entry: TestClient, p: Mapping[str, Any]
    ) -> Any:
        stage, _ = await entry.client.migration_variation(
            _get(p, "key", str) or "", _context(p), _stage(p)
        )
        return {"result": stage.value}

    async def _cmd_migrationOperation(
        self, entry: TestClient, p: Mapping[str, Any]
    ) -> Any:
        order = _get(p, "readExecutionOrder", str) or "parallel"
        try:
            # The harness says "concurrent" for what LaunchDarkly's SDK calls PARALLEL.
            execution = ExecutionOrder("parallel" if order == "concurrent" else order)
            operation = Operation(_get(p, "operation", str))
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        old, new = _get(p, "oldEndpoint", str), _get(p, "newEndpoint", str)
        if not old or not new:
            raise BadRequest("oldEndpoint and newEndpoint are required")
        comparison = (lambda a, b: a == b) if p.get("trackConsistency") else None
        migrator = (
            MigratorBuilder(entry.client)
            .read(self._origin(old), self._origin(new), comparison)
            .write(self._origin(old), self._origin(new))
            .read_execution_order(execution)
            .track_latency(bool(p.get("trackLatency")))
            .track_errors(bool(p.get("trackErrors")))
            .build()
        )
        args = (_get(p, "key", str) or "", _context(p), _stage(p), p.get("payload"))
        if operation is Operation.READ:
            result = await migrator.read(*args)
        else:
            result = (await migrator.write(*args)).authoritative
        return {"result": result.value if result.is_success() else result.error}

    def _origin(self, uri: str) -> Callable[[Any], Any]:
        """An origin that POSTs the payload to one of the harness's endpoints."""

        async def call(payload: Any) -> Result[str]:
            response = await self.http.post(uri, content=payload or b"")
            if response.status_code == 200:
                return Result.success(response.text)
            return Result.fail(
                f"Request failed with status code {response.status_code}"
            )

        return call

    async def _notify(self, uri: str, payload: dict[str, Any]) -> None:
        payload["timestamp"] = int(time.time() * 1000)  # noqa: TID251 - wall-clock stamp for the harness
        try:
            await self.http.post(uri, json=payload)
        except httpx.HTTPError:
            log.warning("listener callback to %s failed", uri, exc_info=True)

    def _listener_id(self, entry: TestClient, p: Mapping[str, Any]) -> tuple[str, str]:
        listener_id = _get(p, "listenerId", str)
        uri = _get(p, "callbackUri", str)
        if not listener_id or not uri:
            raise BadRequest("listenerId and callbackUri are required")
        if listener_id in entry.listeners:
            raise BadRequest(f"listener {listener_id!r} is already registered")
        return listener_id, uri

    async def _cmd_registerFlagChangeListener(
        self, entry: TestClient, p: Mapping[str, Any]
    ) -> Any:
        listener_id, uri = self._listener_id(entry, p)
        only = _get(p, "flagKey", str)

        async def on_change(keys: frozenset[str]) -> None:
            for key in sorted(keys):
                if not only or key == only:
                    await self._notify(uri, {"listenerId": listener_id, "flagKey": key})

        entry.listeners[listener_id] = entry.client.add_flag_change_handler(on_change)

    async def _cmd_registerFlagValueChangeListener(
        self, entry: TestClient, p: Mapping[str, Any]
    ) -> Any:
        listener_id, uri = self._listener_id(entry, p)
        key = _get(p, "flagKey", str)
        if not key:
            raise BadRequest("flagKey is required")

        async def on_value(change: aioflags.FlagValueChange) -> None:
            await self._notify(
                uri,
                {
                    "listenerId": listener_id,
                    "flagKey": change.key,
                    "oldValue": change.old_value,
                    "newValue": change.new_value,
                },
            )

        entry.listeners[listener_id] = entry.client.add_flag_value_change_handler(
            key, _context(p), on_value, default=p.get("defaultValue")
        )

    async def _cmd_unregisterListener(
        self, entry: TestClient, p: Mapping[str, Any]
    ) -> Any:
        listener_id = _get(p, "listenerId", str)
        remove = entry.listeners.pop(listener_id or "", None)
        if remove is None:
            raise BadRequest(f"no listener {listener_id!r}")
        remove()


# ---------------------------------------------------------------- the app
async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from exc
    return _obj(body, "the request body")


def create_app(exit_hook: Callable[[], None] = lambda: None) -> Starlette:
    """The service as an ASGI app; ``exit_hook`` is called on ``DELETE /``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            httpx.AsyncClient(timeout=5) as http,
            anyio.create_task_group() as tg,
        ):
            app.state.service = Service(tg, http)
            try:
                yield
            finally:
                await app.state.service.close_all()
                tg.cancel_scope.cancel()

    def service(request: Request) -> Service:
        svc: Service = request.app.state.service
        return svc

    async def status(request: Request) -> Response:
        del request
        return JSONResponse(
            {
                "name": "aioflags",
                "clientVersion": aioflags.__version__,
                "capabilities": list(CAPABILITIES),
            }
        )

    async def stop(request: Request) -> Response:
        await service(request).close_all()
        exit_hook()
        return Response(status_code=204)

    async def create(request: Request) -> Response:
        return await service(request).create(await _json_body(request))

    async def command(request: Request) -> Response:
        return await service(request).command(
            request.path_params["client_id"], await _json_body(request)
        )

    async def delete(request: Request) -> Response:
        return await service(request).delete(request.path_params["client_id"])

    async def bad_request(request: Request, exc: Exception) -> Response:
        del request
        return PlainTextResponse(str(exc), status_code=400)

    return Starlette(
        routes=[
            Route("/", status, methods=["GET"]),
            Route("/", stop, methods=["DELETE"]),
            Route("/", create, methods=["POST"]),
            Route("/clients/{client_id}", command, methods=["POST"]),
            Route("/clients/{client_id}", delete, methods=["DELETE"]),
        ],
        lifespan=lifespan,
        exception_handlers={BadRequest: bad_request},
    )


def main(argv: list[str] | None = None) -> None:
    """``python contract-tests/service.py [--port PORT]``: serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=8000, help="port (0: any free port)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts
    server: uvicorn.Server

    def exit_hook() -> None:
        server.should_exit = True

    server = uvicorn.Server(
        uvicorn.Config(create_app(exit_hook), log_level="warning", lifespan="on")
    )
    port = sock.getsockname()[1]
    print(f"aioflags contract-test service on http://127.0.0.1:{port}", flush=True)
    server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
