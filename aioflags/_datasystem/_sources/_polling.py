"""Polling sources: FDv2 ``/sdk/poll`` (initializer and synchronizer), FDv1 ``/sdk/latest-all``.

Each source instance keeps its own ETag (never shared, protocol.md §12.13);
304 means "no change", not "empty data". The fallback directive is read on
every response, success or error. A poll, body included, ends within
``connect_timeout + read_timeout`` (:func:`request_deadline`), or brings
``PROGRESS_BYTES`` of its body in each such time (a big payload on a slow
link): one that does neither is a network error like any other
(INTERRUPTED, logged, polled again at the next interval), never a poll that
waits for ever.
"""

from __future__ import annotations

import codecs
from contextlib import aclosing
from typing import TYPE_CHECKING

import anyio
import httpx

from aioflags._core._checks import header_value
from aioflags._core._exceptions import ProtocolError
from aioflags._core._logname import client_logger
from aioflags._core._settings import request_deadline
from aioflags._datasystem._context import progress_of
from aioflags._datasystem._datatypes import Basis, ChangeSet, SourceState, Update
from aioflags._datasystem._payloads import fdv1_full, parse_fdv2_poll_stream

from ._body import body_pieces, read_body
from ._common import (
    HttpOutcome,
    PollTimeout,
    check_source_options,
    data_params,
    display_url,
    environment_id,
    failure,
    fallback_directive,
    parse_json,
    poll_interval,
    send,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

    from aioflags._datasystem._context import SourceContext
    from aioflags._datasystem._datatypes import ErrorInfo

__all__ = ["fdv1_polling_synchronizer", "polling_initializer", "polling_synchronizer"]

logger = client_logger("aioflags.datasource")


class _Requester:
    """GETs one endpoint with this instance's ETag; reads the directive every time."""

    def __init__(self, ctx: SourceContext, url: str, *, fdv2: bool) -> None:
        self._ctx = ctx
        self.url = url
        self.fdv2 = fdv2
        self._etag: str | None = None
        self._pending_etag: str | None = None
        self.what = "polling request" if fdv2 else "FDv1 polling request"

    def accept_etag(self) -> None:
        """The last body was usable: send its ETag from now on."""
        if self._pending_etag:
            self._etag, self._pending_etag = self._pending_etag, None

    async def get(self) -> HttpOutcome:
        ctx = self._ctx
        params = data_params(ctx)
        if self.fdv2:
            selector = ctx.selector()
            if selector.defined:
                params["basis"] = selector.state
        headers = {"If-None-Match": self._etag} if self._etag else {}
        # httpx's timeouts bound each read: a server trickling a byte now
        # and then would hold this poll, and every poll after it, for ever.
        # A body that brings PROGRESS_BYTES each such window is slow, not
        # stalled: the deadline moves on with it (issue 95, K1).
        deadline = request_deadline(ctx.config)
        progress = progress_of(ctx)
        with anyio.move_on_after(deadline) as scope:
            mark = progress.mark()

            def arrived(count: int) -> None:
                nonlocal mark
                progress.add(count)
                if progress.moved(mark):
                    mark = progress.mark()
                    scope.deadline = anyio.current_time() + deadline

            try:
                async with send(
                    ctx, self.url, params=params, headers=headers
                ) as response:
                    with progress.receiving():
                        return await self._outcome(response, arrived)
            except httpx.HTTPError as exc:
                return HttpOutcome(error=failure(ctx, self.what, self.url, exc)[0])
        late = PollTimeout(
            f"no complete response within {deadline:g} s "
            "(connect_timeout + read_timeout)"
        )
        return HttpOutcome(error=failure(ctx, self.what, self.url, late)[0])

    async def _outcome(
        self, response: httpx.Response, on_bytes: Callable[[int], None]
    ) -> HttpOutcome:
        ctx = self._ctx
        fallback = fallback_directive(response.headers)
        env = environment_id(response.headers)
        status = response.status_code
        if status >= 400:
            error, recoverable = failure(ctx, self.what, self.url, status)
            return HttpOutcome(
                error=error,
                recoverable=recoverable,
                fallback=fallback,
                environment_id=env,
            )
        if status == 304:
            return HttpOutcome(not_modified=True, fallback=fallback, environment_id=env)
        limit = ctx.config.max_payload_bytes
        try:
            # FDv2: parsed one event at a time as the body arrives (the
            # body is a ChangeSet then); FDv1: parsed whole. Either way no
            # more than max_payload_bytes of it is read.
            if self.fdv2:
                chunks = text_chunks(response, limit, on_bytes)
                async with aclosing(chunks):
                    body = await parse_fdv2_poll_stream(
                        chunks,
                        freeze_gc=ctx.config.gc_freeze,
                        max_changes=ctx.config.max_payload_changes,
                    )
            else:
                raw = await read_body(
                    response, limit=limit, what="the body", on_bytes=on_bytes
                )
                body = await parse_json(raw)
        except ProtocolError as exc:
            return HttpOutcome(
                error=failure(ctx, self.what, self.url, exc)[0],
                fallback=fallback,
                environment_id=env,
            )
        # Sent from the next poll on once the body is taken (accept_etag): a
        # body that fails to parse is asked for again in full.
        etag: str = response.headers.get("ETag", "")
        if not header_value(etag):
            logger.debug("Ignoring an ETag that is not a valid header value: %r", etag)
            etag = ""
        self._pending_etag = etag or None
        return HttpOutcome(body=body, fallback=fallback, environment_id=env)


async def text_chunks(
    response: httpx.Response,
    limit: int,
    on_bytes: Callable[[int], None] | None = None,
) -> AsyncGenerator[str, None]:
    """A response's body as text, decoded strictly chunk by chunk as it arrives.

    Raises:
        ProtocolError: the body is not UTF-8, or more than ``limit`` bytes
            (``Config.max_payload_bytes``) once decompressed.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    start = 0  # where the bytes the decoder holds begin in the body
    pieces = body_pieces(response, limit=limit, what="the body", on_bytes=on_bytes)
    async with aclosing(pieces):
        try:
            async for chunk in pieces:
                text = decoder.decode(chunk)
                start += len(chunk) - len(decoder.getstate()[0])
                if text:
                    yield text
            text = decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            at = start + exc.start
            raise ProtocolError(f"invalid UTF-8 at byte {at} ({exc.reason})") from None
    if text:
        yield text


def _change_set(
    ctx: SourceContext, requester: _Requester, outcome: HttpOutcome
) -> ChangeSet | ErrorInfo:
    """The change set a poll brought, or what went wrong."""
    if outcome.error is not None:
        return outcome.error
    if outcome.not_modified:
        return ChangeSet.no_changes()
    if requester.fdv2:
        change_set: ChangeSet = outcome.body  # parsed as it arrived
    else:
        try:
            change_set = fdv1_full(
                outcome.body, max_changes=ctx.config.max_payload_changes
            )
        except ProtocolError as exc:
            return failure(ctx, requester.what, requester.url, exc)[0]
    requester.accept_etag()
    return change_set


def polling_initializer(
    *, base_uri: str | None = None
) -> Callable[[SourceContext], AsyncGenerator[Basis, None]]:
    """An FDv2 polling initializer: one ``GET /sdk/poll``, yielding one Basis.

    Args:
        base_uri: overrides ``Config.base_uri`` for this source.

    Raises:
        ConfigurationError: ``base_uri`` is not an http(s) URL.
    """
    check_source_options("polling_initializer", base_uri=base_uri)

    async def initializer(ctx: SourceContext) -> AsyncGenerator[Basis, None]:
        url = f"{(base_uri or ctx.config.base_uri).rstrip('/')}/sdk/poll"
        requester = _Requester(ctx, url, fdv2=True)
        outcome = await requester.get()
        change_set = _change_set(ctx, requester, outcome)
        if not isinstance(change_set, ChangeSet):
            yield Basis(
                change_set=None,
                error=change_set,
                fallback_to_fdv1=outcome.fallback,
                environment_id=outcome.environment_id,
            )
            return
        yield Basis(
            change_set=change_set,
            persist=change_set.selector.defined,
            environment_id=outcome.environment_id,
            fallback_to_fdv1=outcome.fallback,
        )

    return initializer


def _polling(
    ctx: SourceContext, base_uri: str | None, interval: float | None, *, fdv2: bool
) -> tuple[_Requester, float]:
    """A polling synchronizer's requester and interval, announced in the log."""
    path, label, source = (
        ("/sdk/poll", "", "fdv2-poll")
        if fdv2
        else ("/sdk/latest-all", " (FDv1)", "fdv1-poll")
    )
    url = f"{(base_uri or ctx.config.base_uri).rstrip('/')}{path}"
    every = poll_interval(ctx, url, interval)
    logger.info(
        "Polling %s every %g s%s",
        display_url(url),
        every,
        label,
        extra={"url": display_url(url), "source": source},
    )
    return _Requester(ctx, url, fdv2=fdv2), every


def polling_synchronizer(
    *, base_uri: str | None = None, interval: float | None = None
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """An FDv2 polling synchronizer: ``GET /sdk/poll`` now, then every ``interval``.

    Args:
        base_uri: overrides ``Config.base_uri`` for this source.
        interval: seconds between polls; overrides ``Config.poll_interval``.

    Raises:
        ConfigurationError: ``base_uri`` is not an http(s) URL, or
            ``interval`` not a number of seconds > 0.
    """
    return _synchronizer(base_uri, interval, fdv2=True)


def fdv1_polling_synchronizer(
    *, base_uri: str | None = None, interval: float | None = None
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """An FDv1 polling synchronizer (``GET /sdk/latest-all``): the directed fallback.

    Its arguments are those of :func:`polling_synchronizer`.
    """
    return _synchronizer(base_uri, interval, fdv2=False)


def _synchronizer(
    base_uri: str | None, interval: float | None, *, fdv2: bool
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """The polling loop both protocols share (FDv1 has no fallback to direct)."""
    check_source_options(
        "polling_synchronizer" if fdv2 else "fdv1_polling_synchronizer",
        base_uri=base_uri,
        interval=interval,
    )

    async def synchronizer(ctx: SourceContext) -> AsyncGenerator[Update, None]:
        requester, every = _polling(ctx, base_uri, interval, fdv2=fdv2)
        while True:
            outcome = await requester.get()
            fallback = fdv2 and outcome.fallback
            change_set = _change_set(ctx, requester, outcome)
            if not isinstance(change_set, ChangeSet):
                if fallback or not outcome.recoverable:
                    yield Update(
                        state=SourceState.OFF,
                        error=change_set,
                        fallback_to_fdv1=fallback,
                        environment_id=outcome.environment_id,
                    )
                    return
                yield Update(state=SourceState.INTERRUPTED, error=change_set)
            else:
                yield Update(
                    state=SourceState.VALID,
                    change_set=change_set,
                    fallback_to_fdv1=fallback,
                    environment_id=outcome.environment_id,
                )
                if fallback:
                    return
            # The response and its change set are the store's now: not held
            # through the wait (a payload's objects would outlive the flags
            # compiled from them, until the next poll).
            del outcome, change_set
            await ctx.clock.sleep(every)

    return synchronizer
