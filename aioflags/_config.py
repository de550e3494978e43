"""Config: everything a Client needs, validated when it is constructed."""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Final, final

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    import ssl

    from ._datasystem import DataSystem

__all__ = ["Config"]

_SDK_KEY: Final = re.compile(r"[A-Za-z0-9._-]{1,8192}")
_TAG: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigurationError(
            f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}"
        )


@final
@dataclass(frozen=True, slots=True)
class Config:
    """The configuration of a :class:`Client`. Construction does no I/O.

    Args:
        sdk_key: the server-side SDK key; required unless ``offline`` or a data
            system that needs no network (``DataSystem.file``, custom sources).
        base_uri: polling endpoints (FDv2 ``/sdk/poll``, FDv1 ``/sdk/latest-all``).
        stream_uri: streaming endpoints (FDv2 ``/sdk/stream``, FDv1 ``/all``).
        data_system: which sources run; ``None`` means ``DataSystem.default()``.
        ready_timeout: how long ``async with client`` waits for the first
            status (READY, ERROR or FATAL) before carrying on.
        offline: no data system at all; evaluations return defaults.
        poll_interval: seconds between polls (minimum 30 against LaunchDarkly's
            own endpoints is recommended; smaller values are allowed for relays
            and tests).
        initial_retry_delay: first reconnect delay after a recoverable failure.
        max_retry_delay: the cap of the exponential backoff.
        retry_jitter: the fraction (0-1) of each delay that is randomly subtracted.
        retry_reset_after: a connection healthy this long resets the backoff.
        grace_period: how long the status stays STALE after the connection is
            interrupted before it becomes ERROR (0: straight to ERROR).
        fatal_status_codes: HTTP statuses that remove a source at once with no
            retry; during initialisation with no source left, the client is FATAL.
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds to wait for a polling response.
        stream_read_timeout: seconds without a byte (not even a heart-beat)
            before a stream reconnects.
        verify: TLS verification: ``True``, ``False``, a CA bundle path or an
            ``ssl.SSLContext``.
        proxy: an HTTP(S) proxy URL.
        application_id: sent in ``X-LaunchDarkly-Tags``.
        application_version: sent in ``X-LaunchDarkly-Tags``.
        wrapper_name: sent in ``X-LaunchDarkly-Wrapper``.
        wrapper_version: sent in ``X-LaunchDarkly-Wrapper``.
        instance_id: sent in ``X-LaunchDarkly-Instance-Id``; by default each
            client makes a uuid4 of its own, and a new one in a forked child.

    Raises:
        ConfigurationError: when a value is invalid; the message says which.

    Added in version 0.1.0.
    """

    sdk_key: str | None = field(default=None, repr=False)  # a secret: never in logs
    _: KW_ONLY
    base_uri: str = "https://sdk.launchdarkly.com"
    stream_uri: str = "https://stream.launchdarkly.com"
    data_system: DataSystem | None = None
    ready_timeout: float = 5.0
    offline: bool = False
    poll_interval: float = 30.0
    initial_retry_delay: float = 1.0
    max_retry_delay: float = 30.0
    retry_jitter: float = 0.5
    retry_reset_after: float = 60.0
    grace_period: float = 5.0
    fatal_status_codes: frozenset[int] = frozenset({401, 403})
    connect_timeout: float = 10.0
    read_timeout: float = 10.0
    stream_read_timeout: float = 300.0
    verify: bool | str | ssl.SSLContext = True
    proxy: str | None = None
    application_id: str | None = None
    application_version: str | None = None
    wrapper_name: str | None = None
    wrapper_version: str | None = None
    instance_id: str | None = None

    def __post_init__(self) -> None:
        key: object = self.sdk_key  # checked at run time: callers may not be typed
        if key is not None and (
            not isinstance(key, str) or not _SDK_KEY.fullmatch(key)
        ):
            raise ConfigurationError(
                "sdk_key must be 1-8192 characters of letters, digits, '.', '_' and '-'"
            )
        for name in ("base_uri", "stream_uri"):
            uri = getattr(self, name)
            if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"{name} must be an http:// or https:// URL, got {uri!r}"
                )
            object.__setattr__(self, name, uri.rstrip("/"))
        for name in (
            "ready_timeout",
            "initial_retry_delay",
            "max_retry_delay",
            "connect_timeout",
            "read_timeout",
            "stream_read_timeout",
            "poll_interval",
            "retry_reset_after",
        ):
            _positive(name, getattr(self, name))
        _positive("grace_period", self.grace_period, allow_zero=True)
        if not 0 <= self.retry_jitter <= 1:
            raise ConfigurationError(
                f"retry_jitter must be between 0 and 1, got {self.retry_jitter!r}"
            )
        if self.max_retry_delay < self.initial_retry_delay:
            raise ConfigurationError(
                "max_retry_delay must not be smaller than initial_retry_delay"
            )
        codes: frozenset[object] = frozenset(self.fatal_status_codes)
        if not all(isinstance(c, int) and 400 <= c <= 599 for c in codes):
            raise ConfigurationError(
                "fatal_status_codes must be HTTP error statuses (400-599)"
            )
        object.__setattr__(self, "fatal_status_codes", codes)
        for name in ("application_id", "application_version"):
            value = getattr(self, name)
            if value is not None and not _TAG.fullmatch(value):
                raise ConfigurationError(
                    f"{name} must be 1-64 characters of letters, digits, '.', '_' and '-'"
                )

    @property
    def tags_header(self) -> str | None:
        """The ``X-LaunchDarkly-Tags`` value, if any tag is set."""
        parts = [
            f"application-{name}/{value}"
            for name, value in (
                ("id", self.application_id),
                ("version", self.application_version),
            )
            if value
        ]
        return " ".join(parts) or None

    @property
    def wrapper_header(self) -> str | None:
        """The ``X-LaunchDarkly-Wrapper`` value, if a wrapper is set."""
        if not self.wrapper_name:
            return None
        return (
            f"{self.wrapper_name}/{self.wrapper_version}"
            if self.wrapper_version
            else self.wrapper_name
        )
