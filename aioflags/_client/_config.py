"""Config: everything a Client needs, validated when it is constructed."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Final, final

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._frozen import Frozen, set_field
from aioflags._core._logname import client_logger
from aioflags._core._options import check
from aioflags._datasystem._config import DataSystem

from ._environment import (
    config_values,
    data_system_from_env,
    naming_variables,
    refuse_unclaimed,
)
from ._options import (
    DEFAULT_EVENTS_URI,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_PAYLOAD_CHANGES,
    OPTIONS,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping, Sequence

    from aioflags._analytics._metrics import Exporter
    from aioflags._datasystem._stores._bigsegments import BigSegmentsConfig
    from aioflags._evaluation._model import FlagSystem
    from aioflags._guards._config import Guard
    from aioflags._lens._config import LensConfig

    from ._hooks import Hook

__all__ = ["Config"]

logger = client_logger("aioflags")

_SDK_KEY: Final = re.compile(r"[A-Za-z0-9._-]{1,8192}")
_TAG: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _sdk_key_problem(key: object) -> str | None:
    """What is wrong with an SDK key, precisely enough to fix it; ``None`` if nothing."""
    if not isinstance(key, str):
        return f"sdk_key must be a string, got {type(key).__name__}"
    if not key:
        return "sdk_key is empty (use offline=True to run without one)"
    if len(key) > 8192:
        return f"sdk_key is {len(key)} characters long; the limit is 8192"
    for index, char in enumerate(key):
        if not (char.isascii() and (char.isalnum() or char in "._-")):
            where = (
                "at the end"
                if index == len(key) - 1
                else "at the start"
                if index == 0
                else f"at position {index}"
            )
            hint = (
                " (read from a file or an environment variable? strip it)"
                if char.isspace()
                else ""
            )
            return (
                f"sdk_key has {char!r} {where}{hint}: an SDK key is letters, "
                "digits, '.', '_' and '-'"
            )
    return None


_FILTER_KEY: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TAG_RULE: Final = (
    "is dropped: a tag is 1-64 characters of letters, digits, '.', '_' and '-' "
    "(the other tags are still sent)"
)
_FILTER_RULE: Final = (
    "is ignored: a filter key starts with a letter or digit, then letters, "
    "digits, '.', '_' and '-'; all flags are fetched"
)


def _lenient(
    name: str, value: object, pattern: re.Pattern[str], rule: str
) -> str | None:
    """An option LaunchDarkly drops when invalid: ``None`` (and a warning) then.

    ``""`` is unset, as in LaunchDarkly's SDKs (tags, the payload filter key).
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    logger.warning("Config.%s=%r %s", name, value, rule)
    return None


def _is_big_segments_config(value: object) -> bool:
    # Imported only when big segments are configured (not with aioflags).
    from aioflags._datasystem._stores._bigsegments import BigSegmentsConfig

    return isinstance(value, BigSegmentsConfig)


def _is_lens_config(value: object) -> bool:
    from aioflags._lens._config import LensConfig

    return isinstance(value, LensConfig)


def _is_metrics(value: object) -> bool:
    # (``aioflags.otel`` is above the client: it is told by what it holds.)
    from aioflags._analytics._metrics import MetricTotals

    return isinstance(getattr(value, "_totals", None), MetricTotals)


#: Said when a boolean option is given a string (a truthy ``"false"``).
_FROM_TEXT: Final = (
    ": a string is not parsed here (Config.from_env() reads true/false "
    "from the environment)"
)
_PROXY_SCHEMES: Final = ("http://", "https://", "socks5://", "socks5h://")


def _data_system_problem(value: object) -> str:
    """Why ``value`` is not a data system, and the call that makes one."""
    made_by = getattr(value, "__self__", None) is DataSystem
    if made_by and callable(value):  # DataSystem.polling, not called
        call = f"{getattr(value, '__qualname__', 'DataSystem.default')}()"
        return (
            f"data_system must be an aioflags.DataSystem, got the method that "
            f"makes one: call it, as in data_system={call}"
        )
    preset = getattr(DataSystem, value, None) if isinstance(value, str) else None
    hint = (
        f": use data_system=DataSystem.{value}()"
        if isinstance(value, str) and callable(preset) and not value.startswith("_")
        else " (DataSystem.default(), DataSystem.polling(), "
        "DataSystem.custom(synchronizers=[...]), ...)"
    )
    return f"data_system must be an aioflags.DataSystem, got {value!r}{hint}"


@final
class Config(Frozen):
    """The configuration of a :class:`Client`. Construction does no I/O.

    Args:
        sdk_key: the server-side SDK key; required unless ``offline`` or a data
            system that needs no network (``DataSystem.file``, custom sources).
        base_uri: polling endpoints (FDv2 ``/sdk/poll``, FDv1 ``/sdk/latest-all``).
        stream_uri: streaming endpoints (FDv2 ``/sdk/stream``, FDv1 ``/all``).
        data_system: which sources run; ``None`` means ``DataSystem.default()``.
        ready_timeout: how long ``async with client`` waits for the first
            status (READY, ERROR or FATAL) before carrying on; 0 starts the
            client without waiting (the status says when it is READY).
        offline: no data system at all; evaluations return defaults.
        poll_interval: seconds between polls (minimum 30 against LaunchDarkly's
            own endpoints is recommended; smaller values are allowed for relays
            and tests).
        initial_retry_delay: first reconnect delay after a recoverable failure.
        max_retry_delay: the cap of the exponential backoff.
        retry_jitter: the fraction (0-1) of each delay that is randomly subtracted.
        retry_reset_after: a connection healthy this long resets the backoff.
        grace_period: how long the status stays STALE after the connection is
            interrupted before it becomes ERROR (0: straight to ERROR); with
            ``ready_timeout=0``, how long a start stays NOT_READY through
            failures that waiting may fix before it becomes ERROR. A data
            system that carries its own (``DataSystem.flagd(retry_grace_period=...)``)
            is run with that one instead.
        fatal_status_codes: HTTP statuses that remove a source at once with no
            retry; during initialisation with no source left, the client is FATAL.
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds any one read of a poll's or an event post's
            answer may wait; and, with ``connect_timeout``, the bound of the
            whole request. A poll, from connecting to the last byte of its
            answer, and an event post, to its answer's status, end within
            ``connect_timeout + read_timeout`` seconds (20 by default),
            however slowly the server answers. A poll that does not is
            abandoned as a network error (INTERRUPTED, logged) and the next
            poll follows at the poll interval; an event post that does not
            is retried once, as a failed post is. Raise it if the flag data
            is large and the link slow. Streams are not bounded by it:
            ``stream_read_timeout`` is theirs.
        stream_read_timeout: seconds without a byte (not even a heart-beat)
            before a stream reconnects.
        max_payload_bytes: the most bytes, once decompressed, of one
            payload: a polling response's body, one stream line or event,
            and the events of one streamed payload together. A bigger one
            is refused as invalid data (one log line names this option) and
            the source retries with backoff; it is read no further, so a
            hostile or broken server (a gzip bomb, a line that never ends)
            costs at most this much memory. The default, 100 MiB, is several
            times the flag data of the largest environments. Added in
            version 0.1.0.
        max_payload_changes: the most flags and segments (puts and deletes)
            one payload may carry; a payload with more is refused as
            ``max_payload_bytes`` says. The default, 250,000, is ten times a
            very large environment's. Added in version 0.1.0.
        verify: TLS verification: ``True``, ``False``, a CA bundle path or an
            ``ssl.SSLContext``.
        proxy: an HTTP(S) or SOCKS proxy URL (an ``httpx.Proxy`` or
            ``httpx.URL`` is handed to httpx as it is).
        application_id: sent in ``X-LaunchDarkly-Tags``; an empty string is
            unset, and an invalid value (not 1-64 of ``[A-Za-z0-9._-]``) is
            dropped with a warning, as LaunchDarkly's SDKs do.
        application_version: like ``application_id``.
        wrapper_name: sent in ``X-LaunchDarkly-Wrapper``: visible ASCII
            characters, spaces only inside (an HTTP header value).
        wrapper_version: sent in ``X-LaunchDarkly-Wrapper``; like
            ``wrapper_name``.
        instance_id: sent in ``X-LaunchDarkly-Instance-Id``; like
            ``wrapper_name``. By default each client makes a uuid4 of its
            own, and a new one in a forked child.
        payload_filter_key: a LaunchDarkly payload filter: only the flags it
            selects are fetched (``filter=`` on every data request). An
            invalid key (not ``[A-Za-z0-9][A-Za-z0-9._-]*``) is dropped with a
            warning, as LaunchDarkly's SDKs do.
        send_events: send analytics events (evaluations, ``track``,
            ``identify``) to ``events_uri``. They are never sent when
            ``offline``, without an ``sdk_key``, or with a data system that
            needs none (``DataSystem.file``, ``FlagData.data_system()``): see
            :attr:`events_enabled`. When the missing ``sdk_key`` is the only
            reason (daemon mode), the client logs a warning at start.
            Added in version 0.1.0.
        events_uri: the event recorder (``/bulk`` and ``/diagnostic``).
        events_capacity: how many events (not counting the summary) are
            buffered between flushes; more are dropped, with one warning.
        flush_interval: seconds between flushes of the event buffer.
        all_attributes_private: redact every context attribute but ``key``,
            ``kind`` and ``anonymous`` from events.
        private_attributes: attribute references redacted from every
            context in events (``"email"``, ``"/address/street"``).
        context_keys_capacity: how many context keys are remembered, so that
            each context is sent once (in an ``index`` event) per window.
        context_keys_flush_interval: seconds after which the remembered
            context keys are forgotten.
        diagnostic_opt_out: send no diagnostic events.
        diagnostic_recording_interval: seconds between periodic diagnostic
            events (at least 60).
        omit_anonymous_contexts: leave anonymous contexts out of ``index``
            and ``identify`` events.
        compress_events: gzip the event payloads (``Content-Encoding: gzip``).
        hooks: evaluation and track hooks (:class:`aioflags.Hook`), in
            registration order; ``client.add_hook()`` appends more. See
            docs/hooks.md. Added in version 0.1.0.
        gc_freeze: compile every flag in the background after READY
            (without it a flag compiles on its first evaluation), then call
            ``gc.freeze()``: everything alive
            in the process then moves to the garbage collector's permanent
            generation, so later full collections no longer scan the flags
            (a 10,000-flag data set otherwise adds tens of milliseconds to
            each). Off by default: it affects the whole process, and garbage
            cycles that were alive when it ran (an older data set's flags,
            your own) are never collected. See docs/benchmarks.md. Added in
            version 0.1.0.
        big_segments: where big (unbounded) segments' memberships come from:
            an ``aioflags.BigSegmentsConfig``; ``None`` (the default): big
            segments match only by their rules, with ``NOT_CONFIGURED`` in
            the reason. Added in version 0.1.0.
        lens: the flag lens (``aioflags.lens.LensConfig``): requests that
            carry a signed token see its overrides, and a trace if it asks
            for one (docs/lens.md). ``None`` (the default): no lens, and
            evaluation costs nothing for it. Added in version 0.2.0.
        metrics: evaluation metrics for OpenTelemetry
            (``aioflags.otel.Metrics``): counts per flag, variant, reason and
            error, read when the metric reader collects. They count with
            analytics events off too (docs/logging.md, "Metrics"). ``None``
            (the default): no metrics. Added in version 0.2.0.
        guards: guarded rollouts (``aioflags.Guard``, one per flag, names
            unique): each watches its flag's rollout and alerts or pins
            ``control`` when a treatment does harm (``client.guards``).
            Empty (the default): no guards, and evaluation costs nothing
            for them. Added in version 0.2.0.
        plane: refused, saying where it goes: ``plane=`` is the data
            system's (``DataSystem.default(plane=...)``).

    Raises:
        ConfigurationError: when a value is invalid or of the wrong type (a
            boolean option is ``True`` or ``False``, not a truthy string);
            the message says which.

    Added in version 0.1.0.
    """

    __slots__ = (  # noqa: RUF023 - fields in order (repr)
        "sdk_key",
        "base_uri",
        "stream_uri",
        "data_system",
        "ready_timeout",
        "offline",
        "poll_interval",
        "initial_retry_delay",
        "max_retry_delay",
        "retry_jitter",
        "retry_reset_after",
        "grace_period",
        "fatal_status_codes",
        "connect_timeout",
        "read_timeout",
        "stream_read_timeout",
        "max_payload_bytes",
        "max_payload_changes",
        "verify",
        "proxy",
        "application_id",
        "application_version",
        "wrapper_name",
        "wrapper_version",
        "instance_id",
        "payload_filter_key",
        "send_events",
        "events_uri",
        "events_capacity",
        "flush_interval",
        "all_attributes_private",
        "private_attributes",
        "context_keys_capacity",
        "context_keys_flush_interval",
        "diagnostic_opt_out",
        "diagnostic_recording_interval",
        "omit_anonymous_contexts",
        "compress_events",
        "hooks",
        "gc_freeze",
        "big_segments",
        "lens",
        "metrics",
        "guards",
    )
    __match_args__: ClassVar[tuple[str, ...]] = ("sdk_key",)
    _hidden = ("sdk_key",)  # a secret: never in logs

    sdk_key: str | None
    base_uri: str
    stream_uri: str
    data_system: DataSystem | None
    ready_timeout: float
    offline: bool
    poll_interval: float
    initial_retry_delay: float
    max_retry_delay: float
    retry_jitter: float
    retry_reset_after: float
    grace_period: float
    fatal_status_codes: frozenset[int]
    connect_timeout: float
    read_timeout: float
    stream_read_timeout: float
    max_payload_bytes: int
    max_payload_changes: int
    verify: bool | str | ssl.SSLContext
    proxy: str | None
    application_id: str | None
    application_version: str | None
    wrapper_name: str | None
    wrapper_version: str | None
    instance_id: str | None
    payload_filter_key: str | None
    send_events: bool
    events_uri: str
    events_capacity: int
    flush_interval: float
    all_attributes_private: bool
    private_attributes: tuple[str, ...]
    context_keys_capacity: int
    context_keys_flush_interval: float
    diagnostic_opt_out: bool
    diagnostic_recording_interval: float
    omit_anonymous_contexts: bool
    compress_events: bool
    hooks: Sequence[Hook]
    gc_freeze: bool
    big_segments: BigSegmentsConfig | None
    lens: LensConfig | None
    metrics: Exporter | None
    guards: tuple[Guard, ...]

    def __init__(
        self,
        sdk_key: str | None = None,
        *,
        base_uri: str = "https://sdk.launchdarkly.com",
        stream_uri: str = "https://stream.launchdarkly.com",
        data_system: DataSystem | None = None,
        ready_timeout: float = 5.0,
        offline: bool = False,
        poll_interval: float = 30.0,
        initial_retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
        retry_jitter: float = 0.5,
        retry_reset_after: float = 60.0,
        grace_period: float = 5.0,
        fatal_status_codes: frozenset[int] = frozenset({401, 403}),
        connect_timeout: float = 10.0,
        read_timeout: float = 10.0,
        stream_read_timeout: float = 300.0,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_payload_changes: int = DEFAULT_MAX_PAYLOAD_CHANGES,
        verify: bool | str | ssl.SSLContext = True,
        proxy: str | None = None,
        application_id: str | None = None,
        application_version: str | None = None,
        wrapper_name: str | None = None,
        wrapper_version: str | None = None,
        instance_id: str | None = None,
        payload_filter_key: str | None = None,
        send_events: bool = True,
        events_uri: str = DEFAULT_EVENTS_URI,
        events_capacity: int = 10000,
        flush_interval: float = 5.0,
        all_attributes_private: bool = False,
        private_attributes: tuple[str, ...] = (),
        context_keys_capacity: int = 1000,
        context_keys_flush_interval: float = 300.0,
        diagnostic_opt_out: bool = False,
        diagnostic_recording_interval: float = 900.0,
        omit_anonymous_contexts: bool = False,
        compress_events: bool = False,
        hooks: Sequence[Hook] = (),
        gc_freeze: bool = False,
        big_segments: BigSegmentsConfig | None = None,
        lens: LensConfig | None = None,
        metrics: Exporter | None = None,
        guards: Sequence[Guard] = (),
        plane: None = None,
    ) -> None:
        if plane is not None:
            raise ConfigurationError(
                "Config takes no plane=: the flag plane is part of the data system,"
                " Config(data_system=DataSystem.default(plane=...)) (or .streaming,"
                " .polling, .custom)"
            )
        set_field(self, "sdk_key", sdk_key)
        set_field(self, "base_uri", base_uri)
        set_field(self, "stream_uri", stream_uri)
        set_field(self, "data_system", data_system)
        set_field(self, "ready_timeout", ready_timeout)
        set_field(self, "offline", offline)
        set_field(self, "poll_interval", poll_interval)
        set_field(self, "initial_retry_delay", initial_retry_delay)
        set_field(self, "max_retry_delay", max_retry_delay)
        set_field(self, "retry_jitter", retry_jitter)
        set_field(self, "retry_reset_after", retry_reset_after)
        set_field(self, "grace_period", grace_period)
        set_field(self, "fatal_status_codes", fatal_status_codes)
        set_field(self, "connect_timeout", connect_timeout)
        set_field(self, "read_timeout", read_timeout)
        set_field(self, "stream_read_timeout", stream_read_timeout)
        set_field(self, "max_payload_bytes", max_payload_bytes)
        set_field(self, "max_payload_changes", max_payload_changes)
        set_field(self, "verify", verify)
        set_field(self, "proxy", proxy)
        set_field(self, "application_id", application_id)
        set_field(self, "application_version", application_version)
        set_field(self, "wrapper_name", wrapper_name)
        set_field(self, "wrapper_version", wrapper_version)
        set_field(self, "instance_id", instance_id)
        set_field(self, "payload_filter_key", payload_filter_key)
        set_field(self, "send_events", send_events)
        set_field(self, "events_uri", events_uri)
        set_field(self, "events_capacity", events_capacity)
        set_field(self, "flush_interval", flush_interval)
        set_field(self, "all_attributes_private", all_attributes_private)
        set_field(self, "private_attributes", private_attributes)
        set_field(self, "context_keys_capacity", context_keys_capacity)
        set_field(self, "context_keys_flush_interval", context_keys_flush_interval)
        set_field(self, "diagnostic_opt_out", diagnostic_opt_out)
        set_field(self, "diagnostic_recording_interval", diagnostic_recording_interval)
        set_field(self, "omit_anonymous_contexts", omit_anonymous_contexts)
        set_field(self, "compress_events", compress_events)
        set_field(self, "hooks", hooks)
        set_field(self, "gc_freeze", gc_freeze)
        set_field(self, "big_segments", big_segments)
        set_field(self, "lens", lens)
        set_field(self, "metrics", metrics)
        set_field(self, "guards", guards)
        self._validate()

    def _validate(self) -> None:
        key: object = self.sdk_key  # checked at run time: callers may not be typed
        if key is not None and not (isinstance(key, str) and _SDK_KEY.fullmatch(key)):
            raise ConfigurationError(_sdk_key_problem(key) or "invalid sdk_key")
        for option in OPTIONS:  # what the declarations say (their kinds, bounds)
            value = getattr(self, option.name)
            set_field(self, option.name, check(option, value, text_hint=_FROM_TEXT))
        if self.data_system is not None and not isinstance(
            self.data_system, DataSystem
        ):
            raise ConfigurationError(_data_system_problem(self.data_system))
        system = self.data_system
        if self.offline and system is not None and system.plane is not None:
            raise ConfigurationError(
                "offline=True takes no flag plane: an offline client reads no"
                " upstream for the processes of a host to share (drop plane=...)"
            )
        self._check_events()
        self._check_hooks()
        self._check_objects()
        from aioflags._guards._config import check_guards  # (imported by aioflags)

        guards: object = self.guards  # (callers may not be typed)
        set_field(self, "guards", () if guards is None else check_guards(guards))
        if self.max_retry_delay < self.initial_retry_delay:
            raise ConfigurationError(
                "max_retry_delay must not be smaller than initial_retry_delay"
            )
        given: object = self.fatal_status_codes  # callers may not be typed
        codes = tuple(given) if isinstance(given, Iterable) else ()
        if (
            isinstance(given, (str, bytes))
            or not isinstance(given, Iterable)
            or not all(isinstance(c, int) and 400 <= c <= 599 for c in codes)
        ):
            raise ConfigurationError(
                "fatal_status_codes must be a set of HTTP error statuses "
                f"(400-599), got {given!r}"
            )
        set_field(self, "fatal_status_codes", frozenset(codes))
        self._check_http()
        for name in ("application_id", "application_version"):
            value = _lenient(name, getattr(self, name), _TAG, _TAG_RULE)
            set_field(self, name, value)
        set_field(
            self,
            "payload_filter_key",
            _lenient(
                "payload_filter_key", self.payload_filter_key, _FILTER_KEY, _FILTER_RULE
            ),
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Config:
        """A Config from ``AIOFLAGS_*`` environment variables; keyword arguments win.

        The SDK key comes from ``AIOFLAGS_SDK_KEY``, else ``LAUNCHDARKLY_SDK_KEY``.
        ``AIOFLAGS_BASE_URI``, ``AIOFLAGS_STREAM_URI``, ``AIOFLAGS_OFFLINE``,
        ``AIOFLAGS_READY_TIMEOUT``, ``AIOFLAGS_POLL_INTERVAL``,
        ``AIOFLAGS_GRACE_PERIOD``, ``AIOFLAGS_CONNECT_TIMEOUT``,
        ``AIOFLAGS_READ_TIMEOUT``, ``AIOFLAGS_PROXY``,
        ``AIOFLAGS_APPLICATION_ID``, ``AIOFLAGS_APPLICATION_VERSION``,
        ``AIOFLAGS_PAYLOAD_FILTER_KEY``, ``AIOFLAGS_SEND_EVENTS`` and
        ``AIOFLAGS_EVENTS_URI`` set
        the option of the same name (docs/configuration.md lists them);
        numbers are seconds, booleans are ``true``/``false``/``1``/``0``.
        Unknown ``AIOFLAGS_*`` variables are an error (a typo would otherwise
        be ignored silently).

        A flag system's own variables make the data system: each registered
        system's configuration is asked (``FlagSystem.configuration``). With
        ``FLAGD_RESOLVER=in-process`` (or ``file``), the data system is
        flagd's, from the ``FLAGD_*`` variables flagd's providers read
        (docs/configuration.md); a ``data_system`` keyword wins. Other
        resolvers are refused: aioflags evaluates in process. ``FLAGD_*``
        variables without ``FLAGD_RESOLVER`` (flagd's providers then use
        rpc), and no SDK key, data system or ``offline``, are refused,
        naming ``FLAGD_RESOLVER``.

        Raises:
            ConfigurationError: a variable cannot be parsed, or is unknown; the
                message names it.
        """
        env = os.environ if environ is None else environ
        values, read_from = config_values(env)
        if "data_system" not in overrides:
            system = data_system_from_env(env)
            if system is not None:
                values["data_system"] = system
        values.update(overrides)
        for name in overrides:
            read_from.pop(name, None)
        if not (
            values.get("sdk_key") or values.get("data_system") or values.get("offline")
        ):
            refuse_unclaimed(env)
        sdk_key = values.pop("sdk_key", None)
        try:
            return cls(sdk_key, **values)
        except ConfigurationError as exc:
            raise naming_variables(exc, read_from) from None

    def _check_http(self) -> None:
        """The TLS and proxy options."""
        verify: object = self.verify
        if not isinstance(verify, (bool, str)):
            import ssl  # only here: it is slow to import

            if not isinstance(verify, ssl.SSLContext):
                raise ConfigurationError(
                    "verify must be True, False, the path of a CA bundle or an "
                    f"ssl.SSLContext, got {verify!r}"
                )
        proxy: object = self.proxy
        # httpx's own Proxy (with credentials or headers) and URL are taken
        # as httpx takes them; httpx is imported already if a caller made one.
        httpx = sys.modules.get("httpx")
        if not (
            proxy is None
            or (isinstance(proxy, str) and proxy.lower().startswith(_PROXY_SCHEMES))
            or (httpx is not None and isinstance(proxy, (httpx.Proxy, httpx.URL)))
        ):
            raise ConfigurationError(
                "proxy must be a proxy URL (http://, https://, socks5:// or "
                f"socks5h://), an httpx.Proxy or None, got {proxy!r}"
            )

    def _check_objects(self) -> None:
        """The options that hold an object of a layer above: each of its class or None."""
        for name, is_one, what in (
            ("big_segments", _is_big_segments_config, "aioflags.BigSegmentsConfig"),
            ("lens", _is_lens_config, "aioflags.lens.LensConfig"),
            ("metrics", _is_metrics, "aioflags.otel.Metrics"),
        ):
            value = getattr(self, name)
            if value is not None and not is_one(value):
                raise ConfigurationError(f"{name} must be an {what}, got {value!r}")

    def _check_hooks(self) -> None:
        from ._hooks import check_hook

        hooks: object = self.hooks
        if isinstance(hooks, (str, bytes)) or not hasattr(hooks, "__iter__"):
            raise ConfigurationError(
                f"hooks must be a sequence of aioflags.Hook instances, got {hooks!r}"
            )
        set_field(
            self,
            "hooks",
            tuple(check_hook(h, "Config(hooks=...)") for h in self.hooks),
        )

    def _check_events(self) -> None:
        private: object = self.private_attributes  # callers may not be typed
        if isinstance(private, str) or not isinstance(private, Iterable):
            raise ConfigurationError(
                "private_attributes must be a sequence of attribute references "
                "(non-empty strings such as 'email' or '/address/street')"
            )
        # Once: an iterator (a generator) would be used up by the check.
        private = tuple(private)
        if not all(isinstance(p, str) and p for p in private):
            raise ConfigurationError(
                "private_attributes must be a sequence of attribute references "
                "(non-empty strings such as 'email' or '/address/street')"
            )
        set_field(self, "private_attributes", private)

    @property
    def events_enabled(self) -> bool:
        """Whether analytics events are sent.

        Only when ``send_events`` is on, the client is not ``offline``, there
        is an ``sdk_key``, and the data system talks to a flag service (one
        made only of local sources, such as ``DataSystem.file`` or
        ``FlagData.data_system()``, needs no SDK key and sends no events).
        ``DataSystem.flagd`` sends them only to an ``events_uri`` of the
        app's own (a Relay Proxy, ``aioflags serve``): LaunchDarkly's
        recorder knows none of flagd's flags.

        Added in version 0.1.0.
        """
        return self.sdk_key is not None and self._events_wanted()

    def _events_wanted(self) -> bool:
        """Whether events would be sent given an SDK key (the client warns if none)."""
        from aioflags._datasystem._config import is_local

        return (
            self.send_events
            and not self.offline
            and not (self.data_system is not None and is_local(self.data_system))
            and self._unrecorded_system() is None
        )

    def _unrecorded_system(self) -> FlagSystem | None:
        """The flag system of the data system's flags, if LaunchDarkly's recorder would get their events but knows none of them.

        A system whose flags LaunchDarkly's recorder does not know
        (``FlagSystem.events_recorded``: flagd's) sends analytics events
        only to an ``events_uri`` the app names (a Relay Proxy,
        ``aioflags serve``). None: events may go where they are set to.
        """
        from aioflags._datasystem._config import flag_system_of
        from aioflags._evaluation._model import system_named

        if self.data_system is None or self.events_uri != DEFAULT_EVENTS_URI:
            return None
        name = flag_system_of(self.data_system)
        system = None if name is None else system_named(name)
        return None if system is None or system.events_recorded else system

    def _events_elsewhere(self) -> bool:
        """Whether flags come from this machine but events go to another host.

        The mark of an app pointed at ``aioflags serve`` or a local Relay
        Proxy by ``base_uri`` alone: its events go to LaunchDarkly and the
        local service never sees them (the client says so at start).
        """
        return _loopback(self.base_uri) and not _loopback(self.events_uri)

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


def _loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost`` or a loopback address)."""
    import ipaddress  # only here: a client's start, not `import aioflags`
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
