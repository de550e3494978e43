"""Diagnostic events: what LaunchDarkly learns about the SDK's setup and health (events.md §11)."""

from __future__ import annotations

import math
import platform
import uuid
from typing import TYPE_CHECKING, Final, Protocol

from aioflags._core._settings import Settings
from aioflags._datasystem._context import is_streaming
from aioflags._version import __version__

if TYPE_CHECKING:
    from aioflags._core._json import JSONObject
    from aioflags._datasystem._config import DataSystem

__all__ = ["AnalyticsSettings", "Diagnostics"]


class AnalyticsSettings(Settings, Protocol):
    """What analytics reads of the client's ``Config``: the plain options and the data system.

    Diagnostic events describe the data system (streaming or not, its
    store); analytics sits above the data system and below the client.
    """

    @property
    def data_system(self) -> DataSystem | None: ...


_DEFAULTS: Final = {
    "base_uri": "https://sdk.launchdarkly.com",
    "events_uri": "https://events.launchdarkly.com",
    "stream_uri": "https://stream.launchdarkly.com",
}


def _ms(seconds: float) -> int:
    if not math.isfinite(seconds):  # "never": as large as a JSON integer goes
        return 2**53 - 1 if seconds > 0 else 0
    return round(seconds * 1000)


def _platform() -> JSONObject:
    system = platform.system()
    return {
        "name": "python",
        "osArch": platform.machine(),
        "osName": "MacOS" if system == "Darwin" else system,
        "osVersion": platform.release(),
        "pythonVersion": platform.python_version(),
        "pythonImplementation": platform.python_implementation(),
    }


class Diagnostics:
    """Builds the ``diagnostic-init`` and periodic ``diagnostic`` events of one client."""

    __slots__ = ("_config", "_id", "_since")

    def __init__(self, config: AnalyticsSettings, now_ms: int) -> None:
        self._config = config
        self._id: JSONObject = {
            "diagnosticId": str(uuid.uuid4()),
            "sdkKeySuffix": (config.sdk_key or "")[-6:],
        }
        self._since = now_ms

    def init_event(self, now_ms: int) -> JSONObject:
        """The ``diagnostic-init`` event, sent once when the client starts."""
        config = self._config
        sdk: JSONObject = {"name": "aioflags", "version": __version__}
        if config.wrapper_name:
            sdk["wrapperName"] = config.wrapper_name
            if config.wrapper_version:
                sdk["wrapperVersion"] = config.wrapper_version
        system = config.data_system
        streaming = system is None or any(is_streaming(s) for s in system.synchronizers)
        store = system.store if system is not None else None
        # Daemon mode: flags only from a store, as with LaunchDarkly's relay.
        daemon = (
            system is not None
            and store is not None
            and not system.synchronizers
            and not system.initializers
        )
        store_type = (
            "memory"
            if store is None
            else type(store).__name__.removesuffix("Store").lower()
        )
        return {
            "kind": "diagnostic-init",
            "id": self._id,
            "creationDate": now_ms,
            "sdk": sdk,
            "platform": _platform(),
            "configuration": {
                "customBaseURI": config.base_uri != _DEFAULTS["base_uri"],
                "customEventsURI": config.events_uri != _DEFAULTS["events_uri"],
                "customStreamURI": config.stream_uri != _DEFAULTS["stream_uri"],
                "eventsCapacity": config.events_capacity,
                "connectTimeoutMillis": _ms(config.connect_timeout),
                "socketTimeoutMillis": _ms(config.read_timeout),
                "eventsFlushIntervalMillis": _ms(config.flush_interval),
                "usingProxy": config.proxy is not None,
                "streamingDisabled": not streaming,
                "usingRelayDaemon": daemon,
                "allAttributesPrivate": config.all_attributes_private,
                "pollingIntervalMillis": _ms(config.poll_interval),
                "userKeysCapacity": config.context_keys_capacity,
                "userKeysFlushIntervalMillis": _ms(config.context_keys_flush_interval),
                "diagnosticRecordingIntervalMillis": _ms(
                    config.diagnostic_recording_interval
                ),
                "dataStoreType": store_type,
            },
        }

    def periodic_event(
        self, now_ms: int, *, dropped: int, deduplicated: int, last_batch: int
    ) -> JSONObject:
        """A periodic ``diagnostic`` event; the next one counts from ``now_ms``."""
        since, self._since = self._since, now_ms
        return {
            "kind": "diagnostic",
            "id": self._id,
            "creationDate": now_ms,
            "dataSinceDate": since,
            "droppedEvents": dropped,
            "deduplicatedUsers": deduplicated,
            "eventsInLastBatch": last_batch,
            "streamInits": [],
        }
