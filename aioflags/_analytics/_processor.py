"""EventProcessor: ships analytics events from one task group it owns (events.md §1, §2, §9-§11).

The client's runner starts :meth:`EventProcessor.run` in its task group. It
turns recording on for the client's evaluations (its ``switch``), then
runs three tasks in the processor's own task group: a *ticker* (every
``flush_interval`` it asks for a flush, and forgets recently seen contexts
every ``context_keys_flush_interval``), a *sender* (takes the buffer and
posts it to ``{events_uri}/bulk``, one payload at a time) and, unless opted
out, *diagnostics*.

Closing: when the client closes, the group is cancelled, and what was
recorded before has ``CLOSE_BOUND`` seconds to be delivered: a dead endpoint
delays shutdown by that much at most, never more. A payload the sender is
delivering goes on (its delivery is shielded; closing gives it the bound as
its deadline), not sent again from scratch: a re-send of a post to a slow
endpoint would spend the bound on events the server may already have. What
was recorded since is taken and sent at once, alongside it, so that the
newest events do not wait behind a slow post. One WARNING then says how
many of these events were not confirmed delivered (the bound passed, or the
delivery failed).

Encoding: a batch is formatted and JSON-encoded on the loop a slice of
events at a time (:data:`_ENCODE_SLICE`), and its summary a slice of flags
at a time (:data:`_SUMMARY_SLICE`), with a checkpoint between slices, so
that a flush of thousands of events or flags never holds the loop for long
(``benchmarks/bench_flush_stall.py``: a 10,000-event flush held it 64 ms at
once, a summary of 10,000 flags ~80 ms; now ~4-8 ms at most, the batch's
take and the body's join and send). The batch is consumed as it is encoded,
so that freeing it is spread over the slices too. Slices rather than a
worker thread: a thread formatting Python objects holds the GIL for up to
``sys.getswitchinterval()`` (5 ms) each time the loop wants it back, and the
loop wants it several times per wake-up (measured: ~30 ms stalls). Compressing
a big body, which lets the GIL go, is done in a worker thread.

Delivery: one retry after a one-second pause, with the same payload ID, on a
network error, a 5xx, or 400/408/429; any other 4xx disables the processor
for good (the SDK key is invalid or events are refused). Every response's
``Date`` header tells the recorder the server's clock, for debug windows.
The answer's body is never used: at most a few KB of it are read, raw (never
decompressed), for a second at most, then the response is closed (a 1 MB
gzip bomb answer, read and inflated whole, held 3 GB and the loop for
seconds). Each attempt ends within ``connect_timeout + read_timeout``
(:func:`~aioflags._core._settings.request_deadline`), however slowly the
endpoint trickles its answer: one whose status has not arrived by then has
failed, as a refused connection has.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import math
import uuid
from contextlib import aclosing
from typing import TYPE_CHECKING, Final, cast

import anyio
import anyio.to_thread
from anyio.lowlevel import checkpoint

from aioflags._core._clock import wall_ms
from aioflags._core._logname import client_logger
from aioflags._core._settings import request_deadline
from aioflags._core._threads import sdk_limiter
from aioflags._evaluation._context import Context

from ._diagnostics import Diagnostics
from ._format import EventFormatter, by_flag, summary_head
from ._mend import NOT_WRITTEN, as_json, say_not_json, serialisable
from ._recorder import Recorder
from ._summary import SummaryWriter, unique

if TYPE_CHECKING:
    import random
    from collections.abc import AsyncGenerator, Awaitable, Callable

    import httpx
    from anyio.abc import TaskGroup, TaskStatus

    from aioflags._core._clock import Clock
    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._evaluation._migration import MigrationOpEvent

    from ._diagnostics import AnalyticsSettings
    from ._recorder import Batch, Counter
    from ._usage import Tally

__all__ = ["CLOSE_BOUND", "EventProcessor"]

logger = client_logger("aioflags.events")

#: Seconds the final flush may take when the client closes.
CLOSE_BOUND: Final = 2.0
#: The pause before the one retry of a failed delivery.
RETRY_PAUSE: Final = 1.0
#: 4xx statuses that are retried; any other 4xx disables event delivery.
_RECOVERABLE: Final = frozenset({400, 408, 429})
_SCHEMA: Final = "4"
#: Events formatted and encoded between two checkpoints of a flush (~0.6 ms).
_ENCODE_SLICE: Final = 50
#: The summary's flags written between two checkpoints (~1 ms: written from
#: the counters, a flag costs a third of what formatting it as a dict did).
_SUMMARY_SLICE: Final = 200
#: Counters grouped by flag key between two checkpoints (~0.3 ms).
_GROUP_SLICE: Final = 2_000
#: Counters folded into the client's usage totals between two checkpoints (~0.3 ms).
_FOLD_SLICE: Final = 250
#: Bodies this long or longer are compressed in a worker thread.
_THREAD_GZIP_BYTES: Final = 64 * 1024
_SEPARATORS: Final = (",", ":")
#: The most bytes of an events answer's body read (raw, never decompressed):
#: the answer's status and headers are all that is used.
_ANSWER_BYTES: Final = 4 * 1024
#: The most seconds spent reading an events answer's body, once its head is in.
_ANSWER_WAIT: Final = 1.0
#: Seconds to close an answer in, even when the delivery is being cancelled.
_CLOSE_TIMEOUT: Final = 1.0


def _dumps(events: list[JSONObject]) -> tuple[bytes, list[str]]:
    """Compact JSON of ``events`` without its brackets; the values that are not JSON.

    Such a value is sent as ``null`` (:func:`~aioflags._analytics._mend.as_json`),
    the rest of its event as recorded. The slices of a flush are joined
    with ``,``: the same bytes as one ``json.dumps`` of every event.
    """
    try:
        text = json.dumps(events, separators=_SEPARATORS, allow_nan=False)
    except NOT_WRITTEN:
        odd: list[str] = []
        mended = [e if serialisable(e) else as_json(e, odd) for e in events]
        return json.dumps(mended, separators=_SEPARATORS)[1:-1].encode(), odd
    return text[1:-1].encode(), []


def _array(items: list[bytes], last: list[bytes]) -> bytes:
    """The JSON array of ``items``, then of the element in pieces ``last``.

    Empty items are skipped; ``last`` (the summary, if any) is one element.
    Joined once: a flush's body is megabytes, and each copy costs the loop ~1 ms.
    """
    out = [b"["]
    for item in items:
        if item:
            if len(out) > 1:
                out.append(b",")
            out.append(item)
    if last:
        if len(out) > 1:
            out.append(b",")
        out += last
    out.append(b"]")
    return b"".join(out)


def _add(pieces: list[bytes], entries: str) -> None:
    """Add a slice of the summary's ``features`` entries to its pieces (head first)."""
    if entries:
        if len(pieces) > 2:
            pieces.append(b",")
        pieces.append(entries.encode())


def _say_undelivered(owed: list[_Payload]) -> None:
    """One WARNING at close for the events owed then that were not delivered."""
    lost = sum(p.count for p in owed if not p.delivered)
    if lost:
        logger.warning(
            "%d of %d analytics event(s) recorded before the client closed were "
            "not confirmed delivered within %g s; the client gave up on them",
            lost,
            sum(p.count for p in owed),
            CLOSE_BOUND,
        )


def _server_time(response: httpx.Response) -> int | None:
    """The ``Date`` header in epoch milliseconds (None if absent or unreadable)."""
    date = response.headers.get("date")
    if not date:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(date).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


async def _skim(response: httpx.Response) -> None:
    """Read a streamed answer's raw body to its end, or past :data:`_ANSWER_BYTES`."""
    read = 0
    chunks = cast("AsyncGenerator[bytes, None]", response.aiter_raw())
    async with aclosing(chunks):
        async for chunk in chunks:
            read += len(chunk)
            if read > _ANSWER_BYTES:
                return


class _Payload:
    """One ``/bulk`` body and its ID, kept until delivered (a retry reuses both)."""

    __slots__ = ("body", "count", "delivered", "id")

    def __init__(self, body: bytes, count: int) -> None:
        self.body = body
        self.count = count
        self.id = str(uuid.uuid4())
        #: The server accepted it (a 2xx).
        self.delivered = False


class _Route:
    """What every POST to one URL through one client shares, merged once.

    The URL parsed, the client's headers with the path's own, and the
    client's timeouts: what ``http.build_request`` merges into each request
    (see :meth:`EventProcessor._request`).
    """

    __slots__ = ("extensions", "headers", "http", "url")

    def __init__(
        self, http: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        import httpx  # loaded with the HTTP client (a worker thread), not here

        self.http = http
        request = http.build_request("POST", url, headers=headers)
        self.url = request.url
        #: Without the ``Host`` and ``Content-Length`` a request adds itself.
        self.headers = httpx.Headers(http.headers)
        self.headers.update(headers)
        self.extensions = dict(request.extensions)


class EventProcessor:
    """Owns the analytics event tasks of one running client.

    The client's runner starts it with ``await tg.start(processor.run)``;
    cancelling that group stops it, after a final flush (shielded, bounded).
    """

    __slots__ = (
        "_bulk_headers",
        "_clock",
        "_close_deadline",
        "_config",
        "_counting",
        "_diagnostics",
        "_disabled",
        "_formatter",
        "_headers",
        "_http",
        "_in_flight",
        "_last_batch",
        "_owed",
        "_round",
        "_routes",
        "_sending",
        "_summary_writer",
        "_switch",
        "_tg",
        "_wake",
        "recorder",
    )

    def __init__(
        self,
        config: AnalyticsSettings,
        http: httpx.AsyncClient | None,
        switch: Callable[[EventProcessor, bool], None] | None,
        clock: Clock,
        random: random.Random,
        *,
        now_ms: Callable[[], int] = wall_ms,
        tally: Tally | None = None,
        counting: bool = False,
    ) -> None:
        self._config = config
        #: Counting only (for evaluation metrics, events off): every flush
        #: folds the counters into ``tally`` and sends nothing, not even
        #: diagnostics; custom and identify events are not recorded.
        self._counting = counting
        self._http = http
        #: Turns recording into this processor on (True) or off (False) for
        #: the client's evaluations (its evaluator's; None: nothing records).
        self._switch = switch
        self._clock = clock
        #: The synchronous half: evaluations, track and identify record here;
        #: each flush folds the counters it takes into ``tally`` (the client's,
        #: for ``client.usage()``), if given.
        self.recorder = Recorder(
            capacity=config.events_capacity,
            keys_capacity=config.context_keys_capacity,
            omit_anonymous=config.omit_anonymous_contexts,
            random=random,
            now_ms=now_ms,
            tally=tally,
        )
        self._formatter = EventFormatter(
            all_private=config.all_attributes_private,
            private=config.private_attributes,
            omit_anonymous=config.omit_anonymous_contexts,
        )
        self._diagnostics = (
            None
            if config.diagnostic_opt_out or counting
            else Diagnostics(config, now_ms())
        )
        #: Writes each flush's summary straight from its counters.
        self._summary_writer = SummaryWriter()
        #: The headers of a ``/diagnostic`` post; a ``/bulk`` one's add the
        #: schema, and its payload's ID.
        self._headers = {"Content-Type": "application/json"}
        if config.compress_events:
            self._headers["Content-Encoding"] = "gzip"
        self._bulk_headers = {**self._headers, "X-LaunchDarkly-Event-Schema": _SCHEMA}
        #: Per path, what every post there shares, made once: see :meth:`_request`.
        self._routes: dict[str, _Route] = {}
        self._disabled = counting
        #: The payload the sender is delivering (None between deliveries).
        self._in_flight: _Payload | None = None
        #: The sender's shielded scope while it takes and delivers a payload.
        self._sending: anyio.CancelScope | None = None
        #: When the closing delivery must end (``anyio.current_time()``);
        #: ``inf`` until the client closes.
        self._close_deadline = math.inf
        #: The payloads owed at close (recorded before it): the one in
        #: flight, the last one. None until the client closes.
        self._owed: list[_Payload] | None = None
        self._last_batch = 0
        self._wake = anyio.Event()
        self._round = anyio.Event()  # set when the next flush round has ended
        self._tg: TaskGroup | None = None

    # ------------------------------------------------------------ lifecycle
    def _record(self, on: bool) -> None:
        if self._switch is not None:
            self._switch(self, on)

    def use_http(self, http: httpx.AsyncClient) -> None:
        """The client to deliver with, once the client has one (recording starts earlier)."""
        self._http = http

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Record and ship events until cancelled; then flush, bounded.

        The processor's own task group lives here, inside this one task
        (``await task_group.start(processor.run)``), so it never spans
        anybody else's code.
        """
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._guarded, self._ticker)
                tg.start_soon(self._guarded, self._sender)
                if self._diagnostics is not None:
                    diagnostics = self._diagnostics
                    tg.start_soon(
                        self._guarded, lambda: self._diagnostics_loop(diagnostics)
                    )
                self._record(True)
                task_status.started()
                try:
                    await anyio.sleep_forever()  # until the client closes
                finally:
                    # Here, before the group waits for its tasks: the
                    # sender's delivery is shielded until it is given the
                    # deadline, and the rest goes out alongside it.
                    await self._close()
        finally:
            self._tg = None
            self._record(False)
            self._round.set()  # nobody waits for a round that will not come
            if self._owed is not None:  # the sender has ended too
                _say_undelivered(self._owed)

    async def _close(self) -> None:
        """Deliver what was recorded before the close, within ``CLOSE_BOUND``.

        The payload in flight is not sent again: its delivery goes on, in
        the sender, until the deadline. The newer events are taken and sent
        now, alongside it. Both are owed (:attr:`_owed`), to count what was
        not delivered once the sender has ended.
        """
        self._record(False)
        self._close_deadline = anyio.current_time() + CLOSE_BOUND
        # A payload the sender is still encoding joins it when taken.
        self._owed = [] if self._in_flight is None else [self._in_flight]
        if self._sending is not None:
            self._sending.deadline = self._close_deadline
        with anyio.CancelScope(shield=True, deadline=self._close_deadline):
            await self._guarded(self._final_flush)

    async def _guarded(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run one of the processor's tasks; a bug in it must not stop the client.

        The flags keep updating; what the failing task would have sent is lost,
        and the log says so with the traceback.
        """
        try:
            await task()
        except Exception:
            logger.exception(
                "Analytics events failed unexpectedly; evaluation and flag updates "
                "are unaffected"
            )

    # ------------------------------------------------------------ public face
    @property
    def disabled(self) -> bool:
        """Whether delivery stopped for good (the recorder refused the SDK key)."""
        return self._disabled

    def track(
        self,
        event_key: object,
        context: object,
        data: JSONValue,
        metric_value: object,
    ) -> None:
        """Record a custom event; never raises (bad input is logged and dropped).

        The arguments are checked at run time: callers may not be typed.
        """
        if self._counting:  # events are off
            return
        if not isinstance(event_key, str) or not event_key:
            logger.warning("track() needs a non-empty event key; event dropped")
            return
        if not isinstance(context, Context) or context._error is not None:
            logger.warning("track(%r) got an invalid context; event dropped", event_key)
            return
        if metric_value is not None and (
            isinstance(metric_value, bool)
            or not isinstance(metric_value, int | float)
            or (isinstance(metric_value, float) and not math.isfinite(metric_value))
        ):
            logger.warning(
                "track(%r): metric_value must be a finite number, got %r; the "
                "event is sent without it",
                event_key,
                metric_value,
            )
            metric_value = None
        try:
            # A copy, so that later changes to the caller's object cannot make
            # the event unsendable (or different from what was tracked).
            data = json.loads(json.dumps(data, allow_nan=False))
        except (TypeError, ValueError):
            logger.warning("track(%r): data is not JSON; event dropped", event_key)
            return
        if not self._disabled:
            self.recorder.custom(event_key, context, data, metric_value)

    def identify(self, context: object) -> None:
        """Record an identify event; never raises (bad input is logged and dropped)."""
        if self._counting:  # events are off
            return
        if not isinstance(context, Context) or context._error is not None:
            logger.warning("identify() got an invalid context; event dropped")
            return
        if not self._disabled:
            self.recorder.identify(context)

    def migration_op(self, event: MigrationOpEvent) -> None:
        """Record a ``migration_op`` event (built and checked by the caller)."""
        if not self._disabled:
            self.recorder.migration_op(event)

    # ASYNC109: the client's flush() passes its own bound through.
    async def flush(self, timeout: float) -> None:  # noqa: ASYNC109
        """Ask for a flush now and wait (up to ``timeout`` seconds) until it is done."""
        done = self._round
        self._wake.set()
        with anyio.move_on_after(timeout):
            await done.wait()

    # ------------------------------------------------------------------ tasks
    async def _ticker(self) -> None:
        """Flush every ``flush_interval``; forget contexts every ``context_keys_...``.

        Two deadlines, each on its own schedule: the ticker sleeps until the
        earlier one (either interval may be the shorter).
        """
        config = self._config
        clock = self._clock
        now = clock.now()
        flush_at = now + config.flush_interval
        forget_at = now + config.context_keys_flush_interval
        while True:
            await clock.sleep(min(flush_at, forget_at) - now)
            now = clock.now()
            if now >= forget_at:
                self.recorder.reset_context_keys()
                forget_at = now + config.context_keys_flush_interval
            if now >= flush_at:
                flush_at = now + config.flush_interval
                self._wake.set()

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            done, self._round = self._round, anyio.Event()
            # Shielded: a batch taken is encoded and delivered even if the
            # client closes meanwhile, by the close's deadline (_close).
            sending = anyio.CancelScope(shield=True, deadline=self._close_deadline)
            self._sending = sending
            try:
                with sending:
                    payload = await self._take()
                    if payload is not None:
                        self._in_flight = payload
                        if self._owed is not None:  # taken after the close began
                            self._owed.append(payload)
                        await self._deliver("/bulk", payload)
            except Exception:
                logger.exception("Analytics events could not be sent; they are dropped")
            finally:
                self._sending = None
                self._in_flight = None
                done.set()

    async def _diagnostics_loop(self, diagnostics: Diagnostics) -> None:
        recorder = self.recorder
        await self._post_diagnostic(diagnostics.init_event(recorder._now()))
        while True:
            await self._clock.sleep(self._config.diagnostic_recording_interval)
            with recorder.lock:  # threads count these as they record
                dropped, deduplicated = recorder.dropped, recorder.deduplicated
                recorder.dropped = recorder.deduplicated = 0
            event = diagnostics.periodic_event(
                recorder._now(),
                dropped=dropped,
                deduplicated=deduplicated,
                last_batch=self._last_batch,
            )
            await self._post_diagnostic(event)

    # --------------------------------------------------------------- delivery
    async def _take(self) -> _Payload | None:
        """Take the recorder's batch and encode it, a slice at a time.

        Between slices the loop runs other tasks: run it shielded if the
        batch must not be lost to a cancellation.
        """
        recorder = self.recorder
        if self._disabled:
            batch = recorder.take()  # discard (usage() still counts it)
            await self._fold()
            if batch is not None:
                recorder.recycle(batch.own)
            return None
        batch = recorder.take()
        await self._fold()
        if batch is None:
            return None
        if batch.dropped:
            # Here, not where the events were dropped: the recorder's lock is
            # held there, and no log handler may run under it.
            logger.warning(
                "Analytics event buffer was full (events_capacity=%d): %d event(s) "
                "dropped since the last flush; raise events_capacity or lower "
                "flush_interval",
                self._config.events_capacity,
                batch.dropped,
            )
        formatter = self._formatter
        # The batch is consumed as it is encoded, a slice at a time: freed in
        # one go at the end, a big one would hold the loop too (~3 ms).
        records = batch.records
        pieces: list[bytes] = []  # slices of JSON: joined once, at the end
        count = 0
        odd: list[str] = []  # the values that are not JSON, sent as null
        first = True
        while records:
            if not first:
                await checkpoint()
            first = False
            chunk = records[:_ENCODE_SLICE]
            del records[:_ENCODE_SLICE]
            events = [e for e in map(formatter.record, chunk) if e is not None]
            json_bytes, mended = _dumps(events)
            pieces.append(json_bytes)
            count += len(events)
            odd += mended
        summary: list[bytes] = []
        if batch.counters:
            summary = await self._summary(batch, odd)
            count += 1
        # Written and folded (the fold above: all the tally held): the next
        # window counts into them again.
        recorder.recycle(batch.own)
        say_not_json(odd)
        body = _array(pieces, summary)
        if self._config.compress_events:
            if len(body) < _THREAD_GZIP_BYTES:
                body = gzip.compress(body)
            else:  # zlib lets the GIL go while it works
                body = await anyio.to_thread.run_sync(
                    gzip.compress, body, limiter=sdk_limiter()
                )
        self._last_batch = count
        return _Payload(body, count)

    async def _fold(self) -> None:
        """Fold the counters taken into the client's usage totals, a slice at a time.

        Whatever a cancellation leaves unfolded stays with the tally, which
        ``usage()`` reads too, and is folded by the next flush.
        """
        tally = self.recorder.tally
        if tally is None:
            return
        more = tally.unfolded
        while more:
            await checkpoint()  # apart from the take, and from one another
            more = tally.fold(_FOLD_SLICE)
        tally.publish()

    async def _summary(self, batch: Batch, odd: list[str]) -> list[bytes]:
        """The summary event's JSON, in pieces, a slice of flags at a time.

        Joined, the same bytes as one ``json.dumps`` of
        :meth:`EventFormatter.summary`'s event, whose ``features`` come
        last: its head, then each slice's entries, written straight from
        the counters (:class:`~aioflags._analytics._summary.SummaryWriter`),
        joined with ``,``. The batch's counters are consumed (see
        :meth:`_take`); the values that are not JSON are added to ``odd``.
        """
        head = json.dumps(summary_head(batch), separators=_SEPARATORS)
        out = [head[:-1].encode(), b',"features":{']
        writer = self._summary_writer
        counters = batch.counters
        if unique(counters):  # each flag counted once: the common case
            while counters:
                await checkpoint()
                text = writer.entries(counters[:_SUMMARY_SLICE], odd)
                del counters[:_SUMMARY_SLICE]
                _add(out, text)
        else:  # a flag counted by two ledgers, or by two objects of it
            by_key: dict[str, list[Counter]] = {}
            while counters:
                await checkpoint()
                by_flag(counters[:_GROUP_SLICE], by_key)
                del counters[:_GROUP_SLICE]
            groups = list(by_key.items())
            by_key.clear()
            while groups:
                await checkpoint()
                text = writer.grouped(groups[:_SUMMARY_SLICE], odd)
                del groups[:_SUMMARY_SLICE]
                _add(out, text)
        writer.done()
        out.append(b"}}")
        return out

    async def _final_flush(self) -> None:
        """Send the events recorded since the last flush (the newest), now."""
        payload = await self._take()
        if payload is not None:
            assert self._owed is not None  # closing
            self._owed.append(payload)
            await self._deliver("/bulk", payload)

    async def _post_diagnostic(self, event: JSONValue) -> None:
        if self._disabled:
            return
        body = json.dumps(event, separators=(",", ":")).encode()
        if self._config.compress_events:
            body = gzip.compress(body)
        await self._send("/diagnostic", body, self._headers)

    async def _deliver(self, path: str, payload: _Payload) -> None:
        payload.delivered = await self._send(
            path, payload.body, self._bulk_headers, payload.id
        )

    async def _send(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
        payload_id: str | None = None,
    ) -> bool:
        """POST once, and once more after a pause if that failed recoverably.

        ``headers`` are the same for every post to ``path``; ``payload_id``,
        if given, is sent as ``X-LaunchDarkly-Payload-ID`` (a retry's too).
        """
        url = self._config.events_uri + path
        http = self._http
        if http is None:
            return False
        for attempt in range(2):
            if attempt:
                await self._clock.sleep(RETRY_PAUSE)
            request = self._request(http, path, url, body, headers, payload_id)
            response = await self._post(http, url, request)
            if response is None:
                continue
            server_time = _server_time(response)
            if server_time is not None:
                self.recorder.server_time = server_time
            status = response.status_code
            if response.is_success:
                return True
            if status < 400 or status >= 500 or status in _RECOVERABLE:
                logger.warning(
                    "Sending analytics events to %s failed: HTTP %d", url, status
                )
                continue
            logger.error(
                "Analytics events were refused (HTTP %d from %s): no more events "
                "will be sent by this client (is the SDK key valid?)",
                status,
                url,
            )
            self._disable()
            return False
        logger.warning("Analytics events dropped after a retry (%s)", url)
        return False

    def _request(
        self,
        http: httpx.AsyncClient,
        path: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        payload_id: str | None,
    ) -> httpx.Request:
        """The POST of ``body`` to ``url``, what ``http.build_request`` would make.

        ``build_request`` merges the client's headers, URL, cookies and
        timeouts into each request it makes, anew every time (~0.2 M
        instructions a post, a third of httpx's client-side work); none of
        them changes between two posts to one path, so they are merged once
        per client (:class:`_Route`) and each post only adds its body and
        payload ID. Cookies are the exception (a server may set some, and
        httpx sends them back): a client holding any builds the request the
        usual way.
        """
        if http.cookies:
            if payload_id is not None:
                headers = {**headers, "X-LaunchDarkly-Payload-ID": payload_id}
            return http.build_request("POST", url, content=body, headers=headers)
        route = self._routes.get(path)
        if route is None or route.http is not http:
            route = self._routes[path] = _Route(http, url, headers)
        import httpx  # loaded with the HTTP client (a worker thread), not here

        request = httpx.Request(
            "POST",
            route.url,
            headers=route.headers,
            content=body,
            extensions=route.extensions,
        )
        if payload_id is not None:
            request.headers["X-LaunchDarkly-Payload-ID"] = payload_id
        return request

    async def _post(
        self, http: httpx.AsyncClient, url: str, request: httpx.Request
    ) -> httpx.Response | None:
        """One POST, within :func:`request_deadline`; None (logged) if it failed.

        Only the answer's status and headers are used: once they are in,
        the post's outcome is known. Its body is read raw (never
        decompressed), no more than :data:`_ANSWER_BYTES` of it and for no
        longer than :data:`_ANSWER_WAIT`, then the response is closed. A
        short body, read to its end, lets the connection be used again; a
        longer or slower one (a gzip bomb, a page of HTML, a trickle)
        costs one closed connection, and is not a failure.
        """
        import httpx  # loaded with the HTTP client (a worker thread), not here

        deadline = request_deadline(self._config)
        response: httpx.Response | None = None
        with anyio.move_on_after(deadline):
            try:
                response = await http.send(request, stream=True)
                try:
                    with anyio.move_on_after(_ANSWER_WAIT):
                        await _skim(response)
                finally:
                    # Shielded, with its own deadline: one scope, not two nested.
                    closing = anyio.current_time() + _CLOSE_TIMEOUT
                    with anyio.CancelScope(shield=True, deadline=closing):
                        await response.aclose()
            except httpx.HTTPError as exc:
                if response is None:
                    logger.warning(
                        "Sending analytics events to %s failed: %r", url, exc
                    )
                    return None
                # The body broke off: unused, and the status is known.
        if response is None:
            logger.warning(
                "Sending analytics events to %s failed: no answer within %g s "
                "(connect_timeout + read_timeout)",
                url,
                deadline,
            )
        return response

    def _disable(self) -> None:
        self._disabled = True
        self.recorder.take()
        self._record(False)
