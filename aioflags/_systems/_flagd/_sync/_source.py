"""flagd's sync protocol as a data source: ``FetchAllFlags`` to start, the ``SyncFlags`` stream to stay current.

``DataSystem.flagd()`` builds both from one :class:`~._link.FlagdOptions`. Every
message of flagd's sync protocol is the whole flag configuration (a flagd
document, :mod:`aioflags._systems._flagd._data._definitions`): each becomes a full
transfer, so a flag that is gone is gone. Its items are versioned by content
(:class:`~aioflags._datasystem._sources._versions.ContentVersions`), so a
message announces exactly the flags it changes.

Connection policy (flagd's providers specification, docs/flagd.md):

- Each attempt has ``deadline`` seconds to connect and to bring the first
  byte of an answer (``GetMetadata``; ``FetchAllFlags``'s headers; the
  stream's): gRPC's connect timeout is ``deadline`` too, so a connection
  that never completes its handshake is closed by then, not after gRPC's
  default 20 s. A configuration whose first byte came in time then has
  ``stream_deadline`` to arrive whole: a large one on a slow link is not
  cut at ``deadline`` (as flagd's Python provider waits ``deadline`` for
  the connection, and bounds the stream by ``stream_deadline``). Messages up to
  ``max_message_size`` bytes are received (gRPC's own limit is 4 MiB).
- A status code among ``fatal_status_codes`` ends the source: OFF with a
  fatal error, no more calls (the client is FATAL before it was ever
  READY; after, ERROR, with the last data kept).
- Any other failure (``UNAVAILABLE``, ``UNKNOWN``, a missed deadline, data
  that is not a flagd document) is reported INTERRUPTED and retried with
  backoff (``retry_backoff``: doubling from its first value, capped at its
  second, jittered by ``Config.retry_jitter``). Before the first
  configuration the error is flagged ``action_required``: the client is
  ERROR at once, as flagd's providers are when initialisation misses its
  deadline, and READY when a configuration arrives.
- No exception from a message or the peer ends the source: a message
  protobuf cannot decode, a configuration or a sync context aioflags cannot
  use (not JSON, NaN or Infinity, nested too deeply, out of memory reading
  it), anything an attempt raises, is that attempt failing: reported as
  above, in one line, and retried; the last good data stays. The same
  refusal again (the server still sends that document) is not reported
  again until a configuration has been taken.
- A stream that ends, or passes ``stream_deadline``, is opened again after
  the backoff's delay, without a report.

Each attempt opens its own channel and closes it after: a reconnect is a
fresh connection on aioflags' backoff, never gRPC's own reconnect timers.
``grpc.aio`` runs on asyncio only: under trio the sources refuse to start
(:func:`._link.check_asyncio`). Nothing of gRPC exists before the client starts (a
process that forks after configuring, as uvicorn's workers do, is safe).

Context enrichment: a message's ``sync_context`` (else, where the server
has it, ``GetMetadata``'s ``metadata``, asked once per connection; once
``UNIMPLEMENTED``, never again) is flagd's static context. It is one
shared item of the message's change set, named by each flag with targeting
(``flagd_flags(context=..., shared=...)``), as each ``$evaluators`` rule a
flag refers to is: what is shared is written once. The evaluation reads
the invocation's attributes over it.
``FetchAllFlags`` carries no sync context: the initializer asks
``GetMetadata`` first, and where that is unimplemented it fetches nothing
and leaves the start to the stream (which then does not ask again), so no
evaluation sees flags without the context they are sent with.
"""

from __future__ import annotations

import functools
import math
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Final

import anyio

from aioflags._core._clock import TIMEOUT, before
from aioflags._core._logname import client_logger
from aioflags._datasystem._context import at_run_end
from aioflags._datasystem._datatypes import (
    Basis,
    ErrorInfo,
    ErrorKind,
    SourceState,
    Update,
)
from aioflags._datasystem._sources._cause import cause_of
from aioflags._datasystem._sources._versions import ContentVersions

from ._certs import CaFile
from ._link import (
    Failed,
    FlagdOptions,
    Link,
    close_channel,
    forget_frames,
    made,
    no_answer,
    not_asyncio,
    open_channel,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

    import grpc.aio

    from aioflags._core._json import JSONObject
    from aioflags._datasystem._context import SourceContext

__all__ = [
    "FlagdShared",
    "flagd_initializer",
    "flagd_synchronizer",
]

logger = client_logger("aioflags.datasource")

_SYNC: Final = "/flagd.sync.v1.FlagSyncService/SyncFlags"
_FETCH: Final = "/flagd.sync.v1.FlagSyncService/FetchAllFlags"
_METADATA: Final = "/flagd.sync.v1.FlagSyncService/GetMetadata"


def _refusal(why: str, clock: Any) -> ErrorInfo:
    """Not on asyncio: the source ends for good (the client is FATAL)."""
    return ErrorInfo(kind=ErrorKind.UNKNOWN, message=why, time=clock.now(), fatal=True)


class FlagdShared:
    """What the initializer and the synchronizer of one flagd data system share.

    ``versions`` stamps what both bring, so that a flag's version moves
    exactly when its content does, whichever brought it;
    ``metadata_unimplemented`` says the initializer found no ``GetMetadata``
    (the synchronizer does not ask again); ``fetched`` says
    the initializer of the current run gave the configuration: the
    synchronizer then starts VALID from it (the data is the server's,
    fetched now), so that a stream that fails before its first message is
    an interruption of that data (STALE, ERROR after the grace period), not
    a start that never ended.

    The initializer's channel, connected, is kept for the synchronizer of
    the same run (:meth:`park`, :meth:`take`): its stream opens on the
    connection the initializer made rather than on a new one (a connection
    fewer before READY: a TLS handshake fewer to a remote flagd, ~4 ms on
    loopback). One nobody takes is closed as the run ends.

    ``cert_path``'s certificates are read once for both, and again only
    when the file changes (:meth:`ca`).
    """

    __slots__ = (
        "_ca",
        "_parked",
        "fetched",
        "metadata_unimplemented",
        "refused",
        "versions",
    )

    def __init__(self) -> None:
        self._ca: CaFile | None = None
        self.versions = ContentVersions()
        self.fetched = False
        self.metadata_unimplemented = False
        #: What the initializer of the current run refused (its report's
        #: message): the synchronizer does not say the same again.
        self.refused: str | None = None
        # (the run's context, its initializer's channel): a list, as
        # clients sharing one Config run side by side
        self._parked: list[tuple[SourceContext, grpc.aio.Channel]] = []

    async def park(self, ctx: SourceContext, channel: grpc.aio.Channel) -> None:
        """Keep ``channel`` for run ``ctx``'s synchronizer; closed as the run ends if not taken."""
        old = self.take(ctx)
        if old is not None:  # (an earlier initializer's of this run)
            await close_channel(old)
        self._parked.append((ctx, channel))
        at_run_end(ctx, functools.partial(self._close_parked, ctx))

    def take(self, ctx: SourceContext) -> grpc.aio.Channel | None:
        """Run ``ctx``'s parked channel, now the caller's to close (None: none)."""
        for n, (owner, channel) in enumerate(self._parked):
            if owner is ctx:
                del self._parked[n]
                return channel
        return None

    def ca(self, cert_path: str | None) -> CaFile | None:
        """``cert_path``'s CA file, kept from one attempt to the next (None: no cert_path)."""
        if cert_path is None:
            return None
        if self._ca is None or self._ca.path != cert_path:
            self._ca = CaFile(cert_path)
        return self._ca

    async def _close_parked(self, ctx: SourceContext) -> None:
        channel = self.take(ctx)
        if channel is not None:
            await close_channel(channel)


async def _metadata(
    channel: grpc.aio.Channel, link: Link, deadline: float
) -> JSONObject | None:
    """GetMetadata's metadata within ``deadline`` seconds (None: not implemented, or it failed).

    Raises Failed: metadata aioflags cannot use (the configuration would
    be applied without the context it is sent with).
    """
    import grpc
    import grpc.aio

    from . import sync_pb2

    if link.metadata_unimplemented:
        return None
    call: grpc.aio.UnaryUnaryMultiCallable[Any, bytes] = channel.unary_unary(
        _METADATA,
        request_serializer=sync_pb2.GetMetadataRequest.SerializeToString,
        response_deserializer=None,  # (bytes: decoded by link.decoded)
    )
    try:
        data = await call(sync_pb2.GetMetadataRequest(), timeout=deadline)
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
            link.metadata_unimplemented = True
        else:
            logger.debug("flagd GetMetadata failed: %s", exc.code().name)
        return None
    response = link.decoded(sync_pb2.GetMetadataResponse, data)
    return link.context(response.metadata, "GetMetadata metadata")


async def _read(call: Any, limit: float | None, clock: Any) -> Any:
    """The stream's next message (or ``grpc.aio.EOF``), or ``TIMEOUT`` past ``limit`` on ``clock``."""
    if limit is None:
        return await call.read()
    return await before(clock, limit, call.read)


async def _answered(call: Any, deadline: float) -> bool:
    """Whether ``call``'s answer began (its headers, or its status) within ``deadline`` seconds of real time.

    Real time: a network bound, as HTTP's timeouts are. The answer's
    message itself is not bounded here: a large configuration on a slow
    link may take longer than ``deadline`` to arrive whole.
    """
    with anyio.move_on_after(deadline):
        await call.initial_metadata()
        return True
    return False


def _body_timeout(options: FlagdOptions) -> float | None:
    """The timeout gRPC gives ``FetchAllFlags``: ``stream_deadline`` (None: never)."""
    limit = options.stream_deadline
    return limit if limit > 0 and not math.isinf(limit) else None


async def _first(call: Any, link: Link) -> Any:
    """The stream's first message (or ``grpc.aio.EOF``); raises Failed.

    Begun within ``deadline``, whole within ``stream_deadline`` (real time).
    """
    options = link.options
    if not await _answered(call, options.deadline):
        raise Failed(no_answer(link))
    body = _body_timeout(options)
    with anyio.move_on_after(math.inf if body is None else body):
        return await call.read()
    raise Failed(
        link.error(
            ErrorKind.NETWORK_ERROR,
            "the first flag configuration did not arrive whole within "
            f"stream_deadline ({body:g} s)",
        )
    )


def flagd_initializer(
    options: FlagdOptions, shared: FlagdShared
) -> Callable[[SourceContext], AsyncGenerator[Basis, None]]:
    """``FetchAllFlags`` within ``deadline``: the configuration to start from."""
    versions = shared.versions

    async def initializer(ctx: SourceContext) -> AsyncGenerator[Basis, None]:
        import grpc.aio

        from . import sync_pb2

        shared.fetched = False
        shared.metadata_unimplemented = False
        shared.refused = None
        why = not_asyncio("DataSystem.flagd()")
        if why is not None:
            yield Basis(change_set=None, error=_refusal(why, ctx.clock))
            return
        link = Link(options, ctx)
        try:
            channel = await open_channel(link, shared.ca(options.cert_path))
        except Failed as failed:
            yield Basis(change_set=None, error=failed.error)
            return
        keep = False  # (the channel, for the synchronizer: not on an error)
        try:
            # Called as a server stream of one message (the same call on
            # the wire: gRPC's HTTP/2 framing does not tell the two apart):
            # grpc.aio gives a unary call's headers only with its whole
            # answer, and a stream's as they arrive (see _answered).
            fetch: grpc.aio.UnaryStreamMultiCallable[Any, bytes] = channel.unary_stream(
                _FETCH,
                request_serializer=sync_pb2.FetchAllFlagsRequest.SerializeToString,
                response_deserializer=None,  # (bytes: decoded by link.decoded)
            )
            request = sync_pb2.FetchAllFlagsRequest(
                provider_id=options.provider_id or "", selector=options.selector or ""
            )
            # One deadline for the attempt, both calls included.
            end = anyio.current_time() + options.deadline
            try:
                # GetMetadata first: where it is unimplemented there is no
                # sync context to be had here, and the stream brings the
                # start; FetchAllFlags' whole configuration would be thrown
                # away (and the synchronizer need not ask again).
                context = await _metadata(channel, link, options.deadline)
                if link.metadata_unimplemented:
                    shared.metadata_unimplemented = True
                    keep = True
                    return
                # Its answer begun within the deadline; the configuration
                # then has stream_deadline to arrive whole (a large one).
                call = made(
                    fetch(
                        request, metadata=link.headers(), timeout=_body_timeout(options)
                    )
                )
                try:
                    left = max(end - anyio.current_time(), 0.0)
                    if not await _answered(call, left):
                        raise Failed(no_answer(link))
                    data: Any = await call.read()
                finally:
                    call.cancel()  # (answered: nothing more to read)
                if data is grpc.aio.EOF:
                    raise Failed(
                        link.error(
                            ErrorKind.INVALID_DATA, "FetchAllFlags answered nothing"
                        )
                    )
                response = link.decoded(sync_pb2.FetchAllFlagsResponse, data)
                change_set = link.change_set(
                    response.flag_configuration, context, versions
                )
                keep = True
            except grpc.aio.AioRpcError as exc:
                yield Basis(change_set=None, error=link.rpc_error(exc))
                return
            except Failed as failed:
                shared.refused = failed.error.message
                yield Basis(change_set=None, error=failed.error)
                return
            except Exception as exc:  # noqa: BLE001 - no fault of the peer's ends the source
                error = _unexpected(link, exc)
                shared.refused = error.message
                yield Basis(change_set=None, error=error)
                return
        except BaseException as exc:
            forget_frames(exc)
            raise
        finally:
            if keep:
                await shared.park(ctx, channel)
            else:
                await close_channel(channel)
        shared.fetched = True
        yield Basis(change_set=change_set, persist=True)

    return initializer


def flagd_synchronizer(
    options: FlagdOptions, shared: FlagdShared
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """The ``SyncFlags`` stream, reopened with backoff, for as long as the client runs."""
    versions = shared.versions

    async def synchronizer(ctx: SourceContext) -> AsyncGenerator[Update, None]:
        why = not_asyncio("DataSystem.flagd()")
        if why is not None:
            yield Update(state=SourceState.OFF, error=_refusal(why, ctx.clock))
            return
        link = Link(options, ctx)
        # (the initializer of this run asked already: not there, never again)
        link.metadata_unimplemented = shared.metadata_unimplemented
        link.reported = shared.refused  # (said once: not again if the same)
        if shared.fetched:  # the initializer's configuration, fetched now
            link.delivered = True
            yield Update(state=SourceState.VALID)
        while True:
            error: ErrorInfo | None = None
            try:
                ca = shared.ca(options.cert_path)
                stream = _stream(link, versions, shared.take(ctx), ca)
                async with aclosing(stream):  # (its cleanup here, not in a stray task)
                    async for update in stream:
                        yield update
                        del update
            except Failed as failed:
                error = failed.error
            except Exception as exc:  # noqa: BLE001 - no fault of a peer's or a message's ends the source
                error = _unexpected(link, exc)
            if error is not None:
                if error.fatal:
                    yield Update(state=SourceState.OFF, error=error)
                    return
                if _repeated(link, error):
                    logger.debug("flagd sync attempt failed again: %s", error.message)
                else:
                    yield Update(state=SourceState.INTERRUPTED, error=error)
            await ctx.clock.sleep(link.backoff.next_delay())

    return synchronizer


def _unexpected(link: Link, exc: Exception) -> ErrorInfo:
    """An attempt raised what no failure of it was expected to: that attempt failed.

    One line for the report; the traceback at DEBUG, for a bug report.
    """
    logger.debug("flagd sync attempt raised", exc_info=exc)
    return link.error(ErrorKind.UNKNOWN, f"the attempt failed: {cause_of(exc)}")


def _repeated(link: Link, error: ErrorInfo) -> bool:
    """Whether ``error`` refuses again what was refused last (not reported again).

    Only refusals of what the server sent and unexpected failures: a
    network error is reported at each attempt, as before.
    """
    if error.kind not in (ErrorKind.INVALID_DATA, ErrorKind.UNKNOWN):
        return False
    if error.message == link.reported:
        return True
    link.reported = error.message
    return False


async def _stream(
    link: Link,
    versions: ContentVersions,
    channel: grpc.aio.Channel | None,
    ca: CaFile | None = None,
) -> AsyncGenerator[Update, None]:
    """One ``SyncFlags`` call's configurations; raises Failed; returns when it ends.

    On ``channel`` (the initializer's, connected), else on a new one; closed
    as the call ends either way.
    """
    import grpc
    import grpc.aio

    from . import sync_pb2

    options, clock = link.options, link.clock
    if channel is None:
        channel = await open_channel(link, ca)
    call: grpc.aio.UnaryStreamCall[Any, bytes] | None = None
    try:
        request = sync_pb2.SyncFlagsRequest(
            provider_id=options.provider_id or "", selector=options.selector or ""
        )
        call = made(
            channel.unary_stream(
                _SYNC,
                request_serializer=sync_pb2.SyncFlagsRequest.SerializeToString,
                response_deserializer=None,  # (bytes: decoded by link.decoded)
            )(request, metadata=link.headers())
        )
        end_by = (
            clock.now() + options.stream_deadline
            if options.stream_deadline > 0 and not math.isinf(options.stream_deadline)
            else None
        )
        first = True
        metadata: JSONObject | None = None
        asked = False
        while True:
            failed: ErrorInfo | None = None
            try:
                if first:
                    message = await _first(call, link)
                else:
                    message = await _read(call, end_by, clock)
            except grpc.aio.AioRpcError as exc:
                # Raised outside the except: raised inside it, this frame
                # would keep ``exc`` (and its traceback, this frame: a cycle
                # holding the call and the channel until the collector
                # runs). gRPC keeps its asyncio engine on the loop that
                # made it while any channel lives, and a later loop's
                # calls (a test's next event loop) would then be answered
                # on the closed one.
                failed = link.rpc_error(exc)
            if failed is not None:
                raise Failed(failed)
            if message is TIMEOUT:
                logger.debug("The flagd sync stream reached its deadline; reopening")
                return
            if message is grpc.aio.EOF:
                logger.info("The flagd sync stream ended; reopening")
                return
            if first:
                link.backoff.connected()
                logger.info("Connected to flagd's sync stream at %s", options.target)
            first = False
            message = link.decoded(sync_pb2.SyncFlagsResponse, message)
            if message.HasField("sync_context"):
                context: JSONObject | None = link.context(
                    message.sync_context, "sync context"
                )
            else:
                if not asked:
                    metadata = await _metadata(channel, link, options.deadline)
                    asked = True
                context = metadata
            change_set = link.change_set(message.flag_configuration, context, versions)
            link.delivered = True
            link.reported = None  # (a refusal after this one is news)
            yield Update(state=SourceState.VALID, change_set=change_set)
            del change_set, message
    except BaseException as exc:
        forget_frames(exc)
        raise
    finally:
        if call is not None:
            call.cancel()
        await close_channel(channel)
        # This frame may outlive the call in a traceback kept by a cycle
        # (anyio's task_done keeps a cancelled task's CancelledError, whose
        # traceback is its own frame), until the collector runs: it must
        # not keep the call and the channel so (see forget_frames).
        channel = call = None
