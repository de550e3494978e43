"""Config's options, declared once: type, unit, default, bounds, environment variable, doc.

``Config`` checks each declared option from its declaration
(``aioflags._core._options.check``) and ``Config.from_env()`` reads the
``AIOFLAGS_*`` variables they name; ``OTHER`` options (objects, sets,
lenient tags) are checked by ``Config`` itself. docs/configuration.md's
tables are made from them (``python -m aioflags._client._tables``).
"""

from __future__ import annotations

from typing import Final

from aioflags._core._options import Kind, Option

__all__ = [
    "DEFAULT_EVENTS_URI",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_PAYLOAD_CHANGES",
    "ENVIRONMENT",
    "OPTIONS",
]

#: LaunchDarkly's event recorder (``Config.events_uri``'s default).
DEFAULT_EVENTS_URI: Final = "https://events.launchdarkly.com"
#: ``Config.max_payload_bytes``: 100 MiB, decompressed (see docs/configuration.md).
DEFAULT_MAX_PAYLOAD_BYTES: Final = 100 * 1024 * 1024
#: ``Config.max_payload_changes``.
DEFAULT_MAX_PAYLOAD_CHANGES: Final = 250_000

_LIMITS: Final = "(see [Input limits](#input-limits))"

#: Every option of ``Config``, in its signature's order. ``section``:
#: ``"events"`` for the analytics events' table.
OPTIONS: Final = (
    Option(
        "sdk_key",
        Kind.OTHER,
        type="string",
        default=None,
        env=("AIOFLAGS_SDK_KEY", "LAUNCHDARKLY_SDK_KEY"),
        doc="the server-side SDK key (the second variable if the first is unset; "
        "see [The SDK key](#the-sdk-key))",
    ),
    Option(
        "base_uri",
        Kind.URL,
        default="https://sdk.launchdarkly.com",
        env=("AIOFLAGS_BASE_URI",),
        doc="polling endpoints",
    ),
    Option(
        "stream_uri",
        Kind.URL,
        default="https://stream.launchdarkly.com",
        env=("AIOFLAGS_STREAM_URI",),
        doc="streaming endpoints",
    ),
    Option(
        "data_system",
        Kind.OTHER,
        type="`DataSystem`",
        default=None,
        shown="`DataSystem.default()`",
        doc="which sources run (or a flag system's own variables: see below)",
    ),
    Option(
        "ready_timeout",
        Kind.SECONDS,
        default=5.0,
        least=0,
        env=("AIOFLAGS_READY_TIMEOUT",),
        doc="how long `async with client` waits for READY/ERROR/FATAL; 0 starts "
        "without waiting",
    ),
    Option(
        "offline",
        Kind.BOOL,
        default=False,
        env=("AIOFLAGS_OFFLINE",),
        doc="no data system; evaluations return defaults",
    ),
    Option(
        "poll_interval",
        Kind.SECONDS,
        default=30.0,
        env=("AIOFLAGS_POLL_INTERVAL",),
        doc="between polls; against LaunchDarkly's own hosts (`*.launchdarkly.com`, "
        "`*.launchdarkly.us`) at least 30 (a shorter interval is raised, with one "
        "warning); a relay proxy or `aioflags serve` may be polled as often as "
        "you like",
    ),
    Option(
        "initial_retry_delay",
        Kind.SECONDS,
        default=1.0,
        doc="the first reconnect delay after a recoverable failure",
    ),
    Option(
        "max_retry_delay",
        Kind.SECONDS,
        default=30.0,
        doc="the cap of the reconnect backoff; not below `initial_retry_delay`",
    ),
    Option(
        "retry_jitter",
        Kind.FRACTION,
        default=0.5,
        doc="fraction of each delay randomly subtracted",
    ),
    Option(
        "retry_reset_after",
        Kind.SECONDS,
        default=60.0,
        doc="healthy seconds that reset the backoff",
    ),
    Option(
        "grace_period",
        Kind.SECONDS,
        default=5.0,
        least=0,
        env=("AIOFLAGS_GRACE_PERIOD",),
        doc="STALE before ERROR (0: straight to ERROR)",
    ),
    Option(
        "fatal_status_codes",
        Kind.OTHER,
        type="HTTP statuses",
        default=frozenset({401, 403}),
        shown="{401, 403}",
        doc="remove a source at once; FATAL during initialisation (400-599)",
    ),
    Option(
        "connect_timeout",
        Kind.SECONDS,
        default=10.0,
        env=("AIOFLAGS_CONNECT_TIMEOUT",),
        doc="a connection; with `read_timeout`, the bound of a whole poll or event "
        "post (see [Request deadlines](#request-deadlines))",
    ),
    Option(
        "read_timeout",
        Kind.SECONDS,
        default=10.0,
        env=("AIOFLAGS_READ_TIMEOUT",),
        doc="one read of a poll's or an event post's answer (see "
        "[Request deadlines](#request-deadlines))",
    ),
    Option(
        "stream_read_timeout",
        Kind.SECONDS,
        default=300.0,
        doc="no byte for this long reconnects the stream",
    ),
    Option(
        "max_payload_bytes",
        Kind.BYTES,
        default=DEFAULT_MAX_PAYLOAD_BYTES,
        doc="the most bytes, decompressed, of one payload: a poll body, a stream "
        "line, an event's `data` lines, a streamed payload's puts together " + _LIMITS,
    ),
    Option(
        "max_payload_changes",
        Kind.COUNT,
        default=DEFAULT_MAX_PAYLOAD_CHANGES,
        doc="the most flags and segments one payload may carry " + _LIMITS,
    ),
    Option(
        "verify",
        Kind.OTHER,
        type="bool, CA path or `ssl.SSLContext`",
        default=True,
        doc="TLS verification",
    ),
    Option(
        "proxy",
        Kind.OTHER,
        type="URL or `httpx.Proxy`",
        default=None,
        env=("AIOFLAGS_PROXY",),
        doc="an `http://`, `https://` or `socks5://` proxy",
    ),
    Option(
        "application_id",
        Kind.OTHER,
        type="string",
        default=None,
        env=("AIOFLAGS_APPLICATION_ID",),
        doc='`X-LaunchDarkly-Tags`; `""` is unset, an invalid value (not 1-64 of '
        "`[A-Za-z0-9._-]`) is dropped with a warning and the other tag is still "
        "sent",
    ),
    Option(
        "application_version",
        Kind.OTHER,
        type="string",
        default=None,
        env=("AIOFLAGS_APPLICATION_VERSION",),
        doc="`X-LaunchDarkly-Tags`, as `application_id`",
    ),
    Option(
        "wrapper_name",
        Kind.HEADER,
        default=None,
        doc="`X-LaunchDarkly-Wrapper`; visible ASCII, spaces only inside",
    ),
    Option(
        "wrapper_version",
        Kind.HEADER,
        default=None,
        doc="`X-LaunchDarkly-Wrapper`, as `wrapper_name`",
    ),
    Option(
        "instance_id",
        Kind.HEADER,
        default=None,
        shown="a uuid4 per client (a new one in a forked child)",
        doc="`X-LaunchDarkly-Instance-Id`; visible ASCII, spaces only inside",
    ),
    Option(
        "payload_filter_key",
        Kind.OTHER,
        type="string",
        default=None,
        env=("AIOFLAGS_PAYLOAD_FILTER_KEY",),
        doc="a LaunchDarkly payload filter: `filter=` on every data request; an "
        "invalid key is dropped with a warning",
    ),
    Option(
        "send_events",
        Kind.BOOL,
        default=True,
        env=("AIOFLAGS_SEND_EVENTS",),
        section="events",
        doc="send analytics events (see below for when they are off)",
    ),
    Option(
        "events_uri",
        Kind.URL,
        default=DEFAULT_EVENTS_URI,
        env=("AIOFLAGS_EVENTS_URI",),
        section="events",
        doc="the event recorder: `/bulk`, `/diagnostic`",
    ),
    Option(
        "events_capacity",
        Kind.COUNT,
        default=10000,
        section="events",
        doc="events buffered between flushes (the summary is extra); more are "
        "dropped, with one warning per flush",
    ),
    Option(
        "flush_interval",
        Kind.SECONDS,
        default=5.0,
        section="events",
        doc="between flushes",
    ),
    Option(
        "all_attributes_private",
        Kind.BOOL,
        default=False,
        section="events",
        doc="redact every attribute but `key`, `kind`, `anonymous`",
    ),
    Option(
        "private_attributes",
        Kind.OTHER,
        type="attribute references",
        default=(),
        section="events",
        doc='redacted from every context (`"email"`, `"/address/street"`)',
    ),
    Option(
        "context_keys_capacity",
        Kind.COUNT,
        default=1000,
        section="events",
        doc="contexts remembered, so that each is sent once per window",
    ),
    Option(
        "context_keys_flush_interval",
        Kind.SECONDS,
        default=300.0,
        section="events",
        doc="after which remembered contexts are forgotten",
    ),
    Option(
        "diagnostic_opt_out",
        Kind.BOOL,
        default=False,
        section="events",
        doc="send no diagnostic events",
    ),
    Option(
        "diagnostic_recording_interval",
        Kind.SECONDS,
        default=900.0,
        least=60,
        section="events",
        doc="between periodic diagnostic events",
    ),
    Option(
        "omit_anonymous_contexts",
        Kind.BOOL,
        default=False,
        section="events",
        doc="leave anonymous contexts out of `index` and `identify` events",
    ),
    Option(
        "compress_events",
        Kind.BOOL,
        default=False,
        section="events",
        doc="gzip event payloads (`Content-Encoding: gzip`)",
    ),
    Option(
        "hooks",
        Kind.OTHER,
        type="`aioflags.Hook`s",
        default=(),
        doc="evaluation and track hooks, in registration order; `client.add_hook()` "
        "appends more (see [Hooks and tracing](hooks.md))",
    ),
    Option(
        "gc_freeze",
        Kind.BOOL,
        default=False,
        section="events",
        doc="compile every flag in the background after READY (by default a flag is "
        "compiled on its first evaluation) and `gc.freeze()` what each slice of "
        "ingest and of that compilation allocated, so that full garbage "
        "collections skip the flags (process-wide: see the "
        "[FAQ](faq.md#my-service-has-tens-of-thousands-of-flags-why-does-start-up-pause))",
    ),
    Option(
        "big_segments",
        Kind.OTHER,
        type="`aioflags.BigSegmentsConfig`",
        default=None,
        doc="where big segments' memberships come from; `None`: they match only by "
        "their rules (see [Big segments](big-segments.md))",
    ),
    Option(
        "lens",
        Kind.OTHER,
        type="`aioflags.lens.LensConfig`",
        default=None,
        doc="the flag lens: signed per-request overrides and traces (see "
        "[The flag lens](lens.md))",
    ),
    Option(
        "metrics",
        Kind.OTHER,
        type="`aioflags.otel.Metrics`",
        default=None,
        doc="evaluation metrics for OpenTelemetry: counts per flag, variant, reason "
        "and error, counted with events off too (see "
        '[Logging, "Metrics"](logging.md#metrics))',
    ),
    Option(
        "guards",
        Kind.OTHER,
        type="`aioflags.Guard`s",
        default=(),
        doc="guarded rollouts (`aioflags.Guard`, one per flag): each watches its "
        "flag's rollout and alerts, or pins `control`, when a treatment does harm "
        "(`client.guards`)",
    ),
)

#: The options ``Config.from_env()`` reads, by variable (the SDK key's apart).
ENVIRONMENT: Final = {
    variable: option
    for option in OPTIONS
    if option.name != "sdk_key"
    for variable in option.env
}
