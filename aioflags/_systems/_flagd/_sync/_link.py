"""A flagd source's link to its server: its options, the channel each attempt opens, its errors.

What :mod:`._source` connects by and keeps between attempts: the options
(:class:`FlagdOptions`), whether gRPC can run here (the ``flagd`` extra,
asyncio), the state one source keeps from one attempt to the next
(:class:`Link`: its backoff, whether a configuration was delivered, the
last refusal reported; a failure, or a message it cannot use, in one
line), and the channel each attempt opens and closes (TLS, keepalive,
gRPC's own reconnect timers and shared subchannels kept out), with the
bookkeeping that lets gRPC's asyncio engine go with its event loop
(:func:`release_grpc`).
"""

from __future__ import annotations

import asyncio
import gc
import traceback
import weakref
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio

from aioflags._core._exceptions import ConfigurationError, ProtocolError
from aioflags._core._frozen import Frozen, set_field
from aioflags._core._json import parse
from aioflags._datasystem._datatypes import (
    ChangeSet,
    ErrorInfo,
    ErrorKind,
    ObjectKind,
    full_transfer,
    puts,
)
from aioflags._datasystem._sources._backoff import Backoff
from aioflags._datasystem._sources._cause import cause_of
from aioflags._systems._flagd._data._definitions import FlagdDocumentError, flagd_flags

from ._certs import CaFile, CaFileError
from ._settings import hint

if TYPE_CHECKING:
    import grpc.aio

    from aioflags._core._json import JSONObject
    from aioflags._datasystem._context import SourceContext
    from aioflags._datasystem._sources._versions import ContentVersions

__all__ = [
    "SELECTOR_HEADER",
    "Failed",
    "FlagdOptions",
    "Link",
    "check_asyncio",
    "check_extra",
    "close_channel",
    "forget_frames",
    "made",
    "no_answer",
    "not_asyncio",
    "open_channel",
    "release_grpc",
]

INSTALL: Final = "pip install 'aioflags[flagd]'"
#: The header flagd reads the selector from (the body's field is deprecated).
SELECTOR_HEADER: Final = "flagd-selector"
#: Seconds a channel's close may take when the source is being cancelled.
_CLOSE_BOUND: Final = 1.0


def check_extra() -> None:
    """Refuse a flagd data system when the ``flagd`` extra is not installed (nothing imported)."""
    import importlib.util

    for module in ("grpc", "google.protobuf", "mmh3"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigurationError(
                f"DataSystem.flagd() needs the flagd extra ({module} is not "
                f"installed): {INSTALL}"
            )


def not_asyncio(what: str) -> str | None:
    """Why gRPC cannot run here (``grpc.aio`` runs on asyncio only), or None."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return (
            f"{what} runs on asyncio only: flagd's sync protocol is spoken with "
            "grpc.aio, which does not run under trio. Run this client under "
            "asyncio (anyio.run(main, backend='asyncio')), or use "
            "DataSystem.file() with flagd's flag files"
        )
    return None


def check_asyncio(what: str) -> None:
    """Refuse to run gRPC anywhere but on asyncio: raises ConfigurationError."""
    why = not_asyncio(what)
    if why is not None:
        raise ConfigurationError(why)


class FlagdOptions(Frozen):
    """How a flagd data system connects (``DataSystem.flagd()``'s arguments, checked).

    Attributes:
        target: gRPC's target: ``host:port``, or ``unix:PATH``.
        selector: sent as the ``flagd-selector`` header and in the body.
        provider_id: sent in the body.
        tls: connect with TLS.
        cert_path: a PEM file of the CA to trust (the system roots otherwise).
        fatal_status_codes: gRPC status names that end the source.
        deadline: seconds each attempt has to bring a configuration.
        stream_deadline: seconds after which a stream is opened anew (0: never).
        keepalive: seconds between HTTP/2 keepalive pings (``None``: none).
        retry_backoff: (first, most) seconds between attempts.
        fractional: the ``fractional`` bucketing (3, or 2).
        max_message_size: the largest message received, in bytes.
    """

    __slots__ = (  # noqa: RUF023 - fields in order
        "target",
        "selector",
        "provider_id",
        "tls",
        "cert_path",
        "fatal_status_codes",
        "deadline",
        "stream_deadline",
        "keepalive",
        "retry_backoff",
        "fractional",
        "max_message_size",
    )
    target: str
    selector: str | None
    provider_id: str | None
    tls: bool
    cert_path: str | None
    fatal_status_codes: frozenset[str]
    deadline: float
    stream_deadline: float
    keepalive: float | None
    retry_backoff: tuple[float, float]
    fractional: int
    max_message_size: int

    def __init__(
        self,
        *,
        target: str,
        selector: str | None,
        provider_id: str | None,
        tls: bool,
        cert_path: str | None,
        fatal_status_codes: frozenset[str],
        deadline: float,
        stream_deadline: float,
        keepalive: float | None,
        retry_backoff: tuple[float, float],
        fractional: int,
        max_message_size: int,
    ) -> None:
        set_field(self, "target", target)
        set_field(self, "selector", selector)
        set_field(self, "provider_id", provider_id)
        set_field(self, "tls", tls)
        set_field(self, "cert_path", cert_path)
        set_field(self, "fatal_status_codes", fatal_status_codes)
        set_field(self, "deadline", deadline)
        set_field(self, "stream_deadline", stream_deadline)
        set_field(self, "keepalive", keepalive)
        set_field(self, "retry_backoff", retry_backoff)
        set_field(self, "fractional", fractional)
        set_field(self, "max_message_size", max_message_size)


class Failed(Exception):
    """An attempt failed: the error to report."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class Link:
    """One source's connection state: what outlives one attempt."""

    __slots__ = (
        "backoff",
        "clock",
        "delivered",
        "metadata_unimplemented",
        "options",
        "reported",
    )

    def __init__(self, options: FlagdOptions, ctx: SourceContext) -> None:
        self.options = options
        self.clock = ctx.clock
        first, most = options.retry_backoff
        self.backoff = Backoff(
            initial=first,
            maximum=most,
            jitter=ctx.config.retry_jitter,
            reset_after=ctx.config.retry_reset_after,
            clock=ctx.clock,
            random=ctx.random,
        )
        #: A configuration was delivered (errors no longer need action).
        self.delivered = False
        #: The server answered GetMetadata with UNIMPLEMENTED: never ask again.
        self.metadata_unimplemented = False
        #: The last refusal reported (a message or an attempt that failed),
        #: until a configuration is taken: the same one is not said again.
        self.reported: str | None = None

    def headers(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call sends: the selector's header, if there is a selector."""
        selector = self.options.selector
        return ((SELECTOR_HEADER, selector),) if selector else ()

    def error(
        self, kind: ErrorKind, message: str, code: str = "", status: int = 0
    ) -> ErrorInfo:
        """An error of this source (fatal when ``code`` is a fatal status code)."""
        fatal = code in self.options.fatal_status_codes
        return ErrorInfo(
            kind=kind,
            status_code=status,
            message=f"flagd sync ({self.options.target}): {message}",
            time=self.clock.now(),
            fatal=fatal,
            # (a fatal error ends the source: FATAL says it, not ERROR first)
            action_required=not self.delivered and not fatal,
        )

    def rpc_error(self, exc: grpc.aio.AioRpcError) -> ErrorInfo:
        """A failed call as this source's error, with the likely cause where one is known."""
        code = exc.code()
        name = code.name
        details = exc.details() or ""
        fatal = name in self.options.fatal_status_codes
        what = f"{name}{': ' + details if details else ''}"
        options = self.options
        likely = hint(
            details,
            tls=options.tls,
            cert_path=options.cert_path,
            max_message_size=options.max_message_size,
        )
        if likely:
            what = f"{likely} ({what})"
        if fatal:
            what += " (a fatal status code: not retried)"
        return self.error(
            ErrorKind.NETWORK_ERROR
            if name in ("UNAVAILABLE", "UNKNOWN", "DEADLINE_EXCEEDED")
            else ErrorKind.ERROR_RESPONSE,
            what,
            name,
            code.value[0],
        )

    def change_set(
        self, text: str, context: JSONObject | None, versions: ContentVersions
    ) -> ChangeSet:
        """A message's configuration as a full transfer; raises Failed if unusable.

        Read as strictly as a flag file (:func:`~aioflags._core._json.parse`:
        no NaN or Infinity, nesting bounded). Whatever reading it raises is
        this configuration refused, never the source's end.
        """
        try:
            data = parse(text)
            shared: dict[str, JSONObject] = {}
            flags = flagd_flags(
                data, fractional=self.options.fractional, context=context, shared=shared
            )
            stamped = versions.stamp("flag", flags)
        except (ProtocolError, FlagdDocumentError) as exc:
            cause = str(exc)
        except Exception as exc:  # noqa: BLE001 - a document's fault, whatever it is, is its refusal (one line)
            cause = cause_of(exc)
        else:
            # (what flags share first: written once, see _data/_definitions.py)
            return full_transfer(
                puts(ObjectKind.SEGMENT, shared), puts(ObjectKind.FLAG, stamped)
            )
        raise Failed(
            self.error(ErrorKind.INVALID_DATA, f"unusable flag configuration: {cause}")
        )

    def context(self, struct: Any, what: str) -> JSONObject:
        """A ``google.protobuf.Struct`` (a sync context, GetMetadata's metadata) as JSON; raises Failed if unusable."""
        try:
            return _struct(struct)
        except Exception as exc:  # noqa: BLE001 - NaN, Infinity: the message's refusal
            cause = cause_of(exc)
        raise Failed(self.error(ErrorKind.INVALID_DATA, f"unusable {what}: {cause}"))

    def decoded(self, kind: Any, data: bytes) -> Any:
        """A response's bytes as a ``kind`` message; raises Failed if protobuf cannot decode them.

        gRPC is given no deserializer: one that raises is logged by gRPC with
        its traceback and the call answers None.
        """
        try:
            return kind.FromString(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError (nested past protobuf's limit), MemoryError
            cause = cause_of(exc)
        raise Failed(
            self.error(
                ErrorKind.INVALID_DATA,
                f"a {kind.__name__} that cannot be decoded: {cause}",
            )
        )


T = TypeVar("T")

#: The channels and calls flagd data systems made that may still live,
#: weakly held, for :func:`release_grpc`.
_MADE: weakref.WeakSet[Any] = weakref.WeakSet()


def made(grpc_object: T) -> T:
    """``grpc_object`` (a channel, a call), remembered for :func:`release_grpc`."""
    _MADE.add(grpc_object)
    return grpc_object


def release_grpc(made: weakref.WeakSet[Any] = _MADE) -> None:
    """Let gRPC's asyncio engine go with the event loop that made it: after a client ends.

    gRPC keeps one asyncio engine per process, bound to the event loop
    that was running when its first channel or server was made, for as
    long as any gRPC object lives; a later event loop's calls (a test's
    next loop, an app's second ``asyncio.run``) are then answered on the
    closed one ("Event loop is closed" in a callback; seen to crash a
    process). Run as a flagd data system's run ends (the client's close:
    ``_client/_lifecycle.py``), and as a ``FlagdServer`` stops (with the
    objects it made).

    Most ends leave nothing: attempts close their channels and forget
    their frames (:func:`forget_frames`). A call cancelled before its request
    was sent (a server that refused the connection) is kept by a cycle of
    gRPC's own (the call, its sending task, that task's
    ``CancelledError``, whose traceback holds the call), so the collector
    runs then, and only then: when an object in ``made`` still lives.
    """
    if made:
        gc.collect()


async def open_channel(link: Link, ca: CaFile | None) -> grpc.aio.Channel:
    """A channel for one attempt (gRPC imported here, once the client runs).

    Raises Failed when ``cert_path`` cannot be read now.
    """
    import grpc
    import grpc.aio

    options = link.options
    deadline_ms = max(1, round(options.deadline * 1000))
    channel_options: list[tuple[str, Any]] = [
        # A channel of its own subchannels: by default gRPC shares one
        # subchannel per address across a process's channels, and a new
        # channel to a server that just came back waits out the shared
        # one's reconnect backoff (1 s doubling, in real time: 10 s and
        # more seen on a loaded machine), not this source's schedule.
        ("grpc.use_local_subchannel_pool", 1),
        # gRPC's connect timeout: the larger of its minimum reconnect
        # backoff (20 s by default) and its first backoff (1 s). A
        # handshake that never completes kept its socket that long, even
        # after the channel was closed (a socket per failed attempt,
        # hundreds on a short backoff). ``deadline`` bounds the attempt
        # anyway; gRPC's own reconnects are not used (see above).
        ("grpc.min_reconnect_backoff_ms", deadline_ms),
        ("grpc.initial_reconnect_backoff_ms", deadline_ms),
        ("grpc.max_receive_message_length", options.max_message_size),
    ]
    if options.keepalive is not None:
        channel_options.append(
            ("grpc.keepalive_time_ms", int(options.keepalive * 1000))
        )
    if not options.tls:
        return made(grpc.aio.insecure_channel(options.target, options=channel_options))
    roots = None
    if ca is not None:
        try:
            roots = await anyio.to_thread.run_sync(ca.pem)
        except CaFileError as exc:
            raise Failed(link.error(ErrorKind.UNKNOWN, str(exc))) from None
    credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    return made(
        grpc.aio.secure_channel(options.target, credentials, options=channel_options)
    )


def no_answer(link: Link) -> ErrorInfo:
    """An attempt's answer did not begin within ``deadline``."""
    return link.error(
        ErrorKind.NETWORK_ERROR,
        f"no flag configuration: no answer within the {link.options.deadline:g} s "
        "deadline (connecting included)",
    )


def forget_frames(exc: BaseException) -> None:
    """Let the finished frames ``exc`` passed through go (their gRPC call, their channel).

    A cancelled task's ``CancelledError`` is kept in a reference cycle by
    anyio's task groups (``task_done`` holds it; its traceback holds
    ``task_done``) until the collector runs, and with it every frame it
    passed through: gRPC's own, whose ``self`` is the call. gRPC keeps its
    asyncio engine on the loop that made it while any call or channel
    lives, and a later event loop's calls would be answered on the closed
    one. Clearing the frames (``traceback.clear_frames``: only finished
    ones) lets them go when the attempt ends, not when the collector runs.
    """
    traceback.clear_frames(exc.__traceback__)


async def close_channel(channel: grpc.aio.Channel) -> None:
    """Close ``channel``, even while the source is cancelled, within :data:`_CLOSE_BOUND` seconds."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_BOUND):
        await channel.close()


def _struct(message: Any) -> JSONObject:
    from google.protobuf.json_format import MessageToDict

    value: JSONObject = MessageToDict(message)
    return value
