"""The OpenFeature provider for aioflags (``pip install 'aioflags[openfeature]'``).

::

    from openfeature import api
    from aioflags.openfeature import AioflagsProvider

    api.set_provider(AioflagsProvider(aioflags.Config("sdk-key")))  # at import: fine

    async def handler() -> None:                                    # on any loop
        client = api.get_client()
        enabled = await client.get_boolean_value_async("new-checkout", False, ctx)

OpenFeature's Python SDK (0.10) has a synchronous provider lifecycle, while an
aioflags client lives on an event loop. The provider bridges the two:

- ``initialize`` (called by ``set_provider`` on a thread of its own, or by
  ``set_provider_and_wait`` in the caller's thread) starts an owned client:
  - on **a thread of its own** (an :class:`aioflags.blocking.Client`: anyio's
    blocking portal) when the provider knows no event loop, because it was
    built where none runs (at import, in sync start-up code) or the loop it
    was built on has closed. This is the common set-up, and evaluations then
    work from any thread and any event loop (asyncio or trio);
  - on the event loop the provider was built on (or given as ``loop=``),
    with ``asyncio.run_coroutine_threadsafe``, when there is one.
  Either way, called on a running event loop's own thread it cannot wait
  without blocking that loop, so it raises ``GeneralError`` saying what to
  call instead (``await asyncio.to_thread(api.set_provider_and_wait,
  provider)``, its trio twin, or ``api.set_provider``).
- Evaluations (sync and async) read the client's current immutable snapshot:
  they never wait on the loop, from any thread.
- Status changes after initialisation are forwarded as provider events (READY,
  STALE, ERROR, ERROR with ``PROVIDER_FATAL``, CONFIGURATION_CHANGED with the
  changed keys). The SDK itself sets READY (or ERROR) when ``initialize``
  returns (or raises), so the provider does not emit those; and since a status
  change could land between ``initialize`` returning and the SDK writing READY,
  the provider checks once the SDK has written it and re-emits the client's
  status if it is not READY (this reads the SDK's registry, a private API; see
  status-and-events.md §4).
- ``track`` (OpenFeature's tracking API) sends a custom event through the
  client: ``metricValue`` from the details' ``value``, ``data`` from their
  attributes.
- ``shutdown`` closes an owned client (and stops its thread); a shared
  client is left running.

Added in version 0.1.0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final, final

try:
    from openfeature.event import ProviderEventDetails
    from openfeature.exception import (
        ErrorCode,
        GeneralError,
        InvalidContextError,
        ProviderFatalError,
        TargetingKeyMissingError,
    )
    from openfeature.flag_evaluation import FlagResolutionDetails
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as _missing:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "aioflags.openfeature needs the OpenFeature SDK: pip install 'aioflags[openfeature]'"
    ) from _missing

import anyio

from ._client._blocking import Client as _Blocking
from ._client._blocking import running_library as _running_library
from ._client._client import Client, openfeature_read
from ._client._config import Config
from ._client._events import EventDetails, ProviderEvent, ProviderStatus
from ._client._ofanswers import NO_ATTRIBUTES as _NO_ATTRIBUTES
from ._client._ofanswers import TYPED_DETAIL as _TYPED_DETAIL
from ._client._ofanswers import answers_of as _answers
from ._client._ofanswers import context_for as _context_for
from ._client._ofanswers import mapping as _mapping
from ._client._ofanswers import refused as _refused
from ._client._ofcontext import (
    ContextCache,
    ContextError,
    context_from,
    given_context_from,
)
from ._client._ofcontext import json_value as _json
from ._core._exceptions import ClientClosedError
from ._evaluation._logonce import Occurrences

#: The statuses a client settles on first (it keeps trying after ERROR).
_SETTLED = (
    ProviderStatus.READY,
    ProviderStatus.STALE,
    ProviderStatus.ERROR,
    ProviderStatus.FATAL,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from openfeature.evaluation_context import EvaluationContext
    from openfeature.track import TrackingEventDetails

    from ._core._json import JSONValue
    from ._evaluation._context import Context
    from ._systems import FlagSystem

__all__ = ["AioflagsProvider", "to_context", "to_flagd_context"]

logger: logging.Logger = logging.getLogger("aioflags.openfeature")

_RECHECK_TIMEOUT: Final = 5.0


# ------------------------------------------------------------------ contexts


def to_context(evaluation_context: EvaluationContext | None) -> Context:
    """Map an OpenFeature evaluation context to an aioflags :class:`~aioflags.Context`.

    The targeting key is the context key (a ``key`` attribute also works);
    ``kind`` sets the context kind (``"user"`` by default); ``name``,
    ``anonymous`` and ``privateAttributes`` are LaunchDarkly's; other
    attributes are custom attributes. With ``kind: "multi"``, each other
    attribute is one kind's context: an object with its own ``targetingKey``
    (or ``key``) and attributes. An attribute whose name is empty is
    dropped, as LaunchDarkly's SDKs drop it (said once at DEBUG).

    Raises:
        TargetingKeyMissingError: no key.
        InvalidContextError: anything else LaunchDarkly would refuse.
    """
    key: str | None = None
    attributes: Mapping[str, Any] = _NO_ATTRIBUTES
    if evaluation_context is not None:
        key, attributes = (
            evaluation_context.targeting_key,
            evaluation_context.attributes,
        )
    try:
        return context_from(key, attributes, logger=logger)
    except ContextError as exc:
        raise _refused(exc) from None


def to_flagd_context(evaluation_context: EvaluationContext | None) -> Context:
    """Map an OpenFeature evaluation context as flagd's providers map it, for a flagd flag.

    The targeting key is flagd's ``targetingKey`` (none is valid: flagd's
    rules see it as null) and every attribute is one of flagd's, under its
    own name (``kind``, ``name``... are attributes like any other).

    Added in version 0.2.0.
    """
    if evaluation_context is None:
        return given_context_from(None, {})
    try:
        return given_context_from(
            evaluation_context.targeting_key, evaluation_context.attributes
        )
    except ContextError as exc:
        raise _refused(exc) from None


#: The status whose client raises at every evaluation.
_FATAL: Final = ProviderStatus.FATAL


# ------------------------------------------------------------------ provider
@final
class AioflagsProvider(AbstractProvider):
    """An OpenFeature provider over an aioflags :class:`~aioflags.Client`.

    Args:
        source: a :class:`~aioflags.Config` (the provider owns its client,
            starts it in ``initialize`` and closes it in ``shutdown``), or an
            existing :class:`~aioflags.Client` or
            :class:`aioflags.blocking.Client` that you start and close
            (``initialize`` waits until it is ready).
        loop: the event loop the client runs on; by default the loop running
            where the provider is constructed. With none (built at import or
            in sync start-up code), an owned client runs on a thread of its
            own and serves evaluations to any thread and any event loop.
        init_timeout: how long ``initialize`` waits (default: the config's
            ``ready_timeout`` plus 5 seconds).

    Added in version 0.1.0.
    """

    def __init__(
        self,
        source: Config | Client | _Blocking,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        init_timeout: float | None = None,
    ) -> None:
        super().__init__()
        #: The client's own thread: an owned client's when there is no loop
        #: to run it on, or the shared blocking client's.
        self._thread: _Blocking | None = None
        if isinstance(source, Client):
            self._client, self._owned = source, False
        elif isinstance(source, _Blocking):
            self._client, self._owned = source.async_client, False
            self._thread = source
        elif isinstance(source, Config):
            self._client, self._owned = Client(source), True
        else:
            raise TypeError(
                "AioflagsProvider takes an aioflags.Config, Client or "
                f"blocking.Client, got {source!r}"
            )
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self._loop = loop
        self._init_timeout = (
            init_timeout
            if init_timeout is not None
            else self._client.config.ready_timeout + 5.0
        )
        self._host: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._recheck: concurrent.futures.Future[None] | None = None
        self._handlers: list[tuple[ProviderEvent, Any]] = []
        self._live = False
        self._baseline = 0
        #: track() calls dropped, by the kind of context error: the first of
        #: each kind is a WARNING, the rest DEBUG (it may be every call).
        self._dropped_tracks = Occurrences(8)
        #: The contexts of the OpenFeature contexts evaluated again, by the
        #: system whose mapping made them (None: a key with no flag): the
        #: same object, unchanged, is not mapped again (one cache a system,
        #: made at its first flag).
        self._contexts: dict[FlagSystem | None, ContextCache] = {}

    @property
    def client(self) -> Client:
        """The aioflags client behind this provider.

        When the provider runs it on a thread of its own (built where no event
        loop runs), use only its evaluation methods and ``status`` from other
        threads and loops: they read its snapshot; its other methods belong to
        that thread's loop.
        """
        return self._client

    def get_metadata(self) -> Metadata:
        """The provider's name: ``aioflags``."""
        return Metadata(name="aioflags")

    # ---------------------------------------------------------- lifecycle
    def _require_loop(self, what: str) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or loop.is_closed():
            where = "knows no event loop" if loop is None else "has a closed event loop"
            raise GeneralError(
                f"{what}: this provider over an existing aioflags.Client {where}: "
                "construct the provider inside the async code where that client "
                "runs, or pass loop=; or build it from an aioflags.Config and it "
                "runs its own client on a thread of its own"
            )
        if _on_loop(loop):
            raise GeneralError(_ON_LOOP["asyncio"].format(what=what))
        return loop

    def _on_thread(self) -> bool:
        """Whether ``initialize`` runs the client on a thread of its own (no loop)."""
        if self._thread is not None:
            return True
        return self._owned and (self._loop is None or self._loop.is_closed())

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Start (or wait for) the client; raise if it is not READY in time.

        Raises ``ProviderFatalError`` when the client is FATAL (a bad SDK key),
        ``GeneralError`` when it is not ready in time or is in ERROR, or when
        called on a running event loop's own thread (it says what to call).
        """
        del evaluation_context  # aioflags evaluates each call's own context
        if self._on_thread():
            self._initialize_on_thread()
            return
        loop = self._require_loop("initialize")
        if self._owned and self._host is None:
            entered: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._host = asyncio.run_coroutine_threadsafe(self._hosted(entered), loop)
            try:
                entered.result(self._init_timeout)
            except concurrent.futures.TimeoutError:
                raise GeneralError(
                    "the aioflags client did not start in time"
                ) from None
        subscribed = asyncio.run_coroutine_threadsafe(self._subscribe(), loop)
        try:
            status = subscribed.result(self._init_timeout)
        except concurrent.futures.TimeoutError:
            subscribed.cancel()
            raise GeneralError("the aioflags client did not answer in time") from None
        self._settle(status)
        self._recheck = asyncio.run_coroutine_threadsafe(self._recheck_status(), loop)

    def _initialize_on_thread(self) -> None:
        """Run the owned client on a thread of its own (anyio's blocking portal)."""
        library = _running_library()
        if library is not None:
            raise GeneralError(_ON_LOOP[library].format(what="initialize"))
        thread = self._thread
        if thread is None:
            # Registered before it starts, so that a shutdown meanwhile stops it.
            thread = self._thread = _Blocking._over(self._client)
            try:
                thread.start()
            except ClientClosedError as exc:  # FATAL: re-initialised after a bad key
                if self._thread is thread:
                    self._thread = None
                raise ProviderFatalError(str(exc)) from None
        try:
            status: ProviderStatus | None = thread._call_async(self._subscribe)
        except ClientClosedError:
            if not self._owned:
                raise GeneralError(
                    "the aioflags.blocking.Client behind this provider is not "
                    "started: start it (`with client:` or client.start()) before "
                    "initialising the provider"
                ) from None
            status = None
        if status is None or self._thread is not thread:
            raise GeneralError(
                "the provider was shut down while initialize was running: "
                "initialise it again (api.set_provider) to use it"
            )
        self._settle(status)
        self._recheck = thread._spawn(self._recheck_status)

    def _settle(self, status: ProviderStatus) -> None:
        """Start forwarding events; raise unless the first status is READY."""
        self._live = True
        if status is ProviderStatus.FATAL:
            raise ProviderFatalError(self._message("the aioflags client is FATAL"))
        if status is not ProviderStatus.READY:
            raise GeneralError(
                self._message(f"the aioflags client is {status.name}, not READY")
            )

    def _message(self, default: str) -> str:
        event = self._client.status_details
        return event.message if event is not None and event.message else default

    async def _hosted(self, entered: concurrent.futures.Future[None]) -> None:
        """Own the client's ``async with`` in one task, from start to shutdown."""
        self._stop = asyncio.Event()
        try:
            async with self._client:
                entered.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not entered.done():
                entered.set_exception(exc)
            raise

    async def _subscribe(self) -> ProviderStatus:
        """On the loop: wait for the first status, then forward later events."""
        # The first status the client settles on: READY, ERROR (not ready in
        # time: it keeps trying) or FATAL. An owned client has already waited.
        with (
            anyio.move_on_after(max(self._init_timeout - 1.0, 0.0)),
            contextlib.suppress(ClientClosedError),  # a shared client closed
        ):
            await self._client.wait_for_status(*_SETTLED)
        status = self._client.status
        if not self._handlers:
            last = self._client.status_details
            self._baseline = last.seq if last is not None else 0
            for event in ProviderEvent:
                self._client.add_handler(event, self._forward)
                self._handlers.append((event, self._forward))
        return status

    def _forward(self, details: EventDetails) -> None:
        if not self._live:
            return
        if (
            details.event is not ProviderEvent.CONFIGURATION_CHANGED
            and details.seq <= self._baseline
        ):
            return  # the replay of the status initialize already reported
        self._emit(details)

    def _emit(self, details: EventDetails) -> None:
        if details.event is ProviderEvent.CONFIGURATION_CHANGED:
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=sorted(details.flags_changed))
            )
        elif details.event is ProviderEvent.READY:
            self.emit_provider_ready(ProviderEventDetails(message=details.message))
        elif details.event is ProviderEvent.STALE:
            self.emit_provider_stale(ProviderEventDetails(message=details.message))
        else:
            code = (
                ErrorCode.PROVIDER_FATAL
                if details.status is ProviderStatus.FATAL
                else ErrorCode.GENERAL
            )
            self.emit_provider_error(
                ProviderEventDetails(message=details.message, error_code=code)
            )

    async def _recheck_status(self) -> None:
        """After the SDK writes READY for us, re-emit the client's status if it moved."""
        from openfeature.provider import ProviderStatus as OFStatus
        from openfeature.provider._registry import provider_registry

        deadline = asyncio.get_running_loop().time() + _RECHECK_TIMEOUT
        while provider_registry.get_provider_status(self) is OFStatus.NOT_READY:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.005)
        last = self._client.status_details
        if (
            self._live
            and last is not None
            and last.status is not ProviderStatus.READY
            and last.seq > self._baseline
        ):
            self._emit(last)

    def shutdown(self) -> None:
        """Stop forwarding events; close the client if the provider owns it. Idempotent.

        An owned client running on a thread of its own is closed and its
        thread ended before this returns (bounded: about a second).
        """
        self._live = False
        thread = self._thread
        if thread is not None:
            if self._owned:
                self._thread = None
            if self._recheck is not None:
                self._recheck.cancel()
                self._recheck = None
            handlers, self._handlers = self._handlers, []
            for event, handler in handlers:
                thread.remove_handler(event, handler)
            if self._owned:
                thread.close()
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        handlers, self._handlers = self._handlers, []
        on_loop = _on_loop(loop)

        def release() -> None:
            for event, handler in handlers:
                self._client.remove_handler(event, handler)
            if self._stop is not None:
                self._stop.set()

        if on_loop:
            release()  # cannot wait here without blocking the loop
            return
        loop.call_soon_threadsafe(release)
        host, self._host = self._host, None
        if host is not None:
            try:
                host.result(self._client.config.ready_timeout + 5.0)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                logger.warning("the aioflags client did not close in time")
            except Exception:
                logger.exception("the aioflags client failed while closing")

    # ------------------------------------------------------------ tracking
    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        """Send a custom event, as :meth:`aioflags.Client.track` does.

        OpenFeature's ``client.track(name, context, details)`` lands here:
        the event's key is ``tracking_event_name``, its context is the
        evaluation context (mapped by :func:`to_context`), its
        ``metricValue`` is ``details.value`` and its ``data`` is
        ``details.attributes`` (as LaunchDarkly's provider maps them). Never
        raises and never blocks: a context without a targeting key or that
        is otherwise invalid drops the event, logged at WARNING the first
        time (for each kind of error), then at DEBUG.

        Added in version 0.1.0.
        """
        try:
            context = to_context(evaluation_context)
        except (TargetingKeyMissingError, InvalidContextError) as exc:
            if self._dropped_tracks.add(type(exc).__name__) == 1:
                logger.warning(
                    "track(%r): %s; event dropped (logged once: later events "
                    "dropped for this reason are logged at DEBUG)",
                    tracking_event_name,
                    exc.error_message,
                )
            else:
                logger.debug(
                    "track(%r): %s; event dropped",
                    tracking_event_name,
                    exc.error_message,
                )
            return
        data: JSONValue = None
        metric_value: float | None = None
        if tracking_event_details is not None:
            data = _json(tracking_event_details.attributes) or None
            metric_value = tracking_event_details.value
        self._client.track(tracking_event_name, context, data, metric_value)

    # ---------------------------------------------------------- evaluation
    def _resolve(
        self,
        flag_key: str,
        default_value: Any,
        evaluation_context: EvaluationContext | None,
        kind: str,
    ) -> FlagResolutionDetails[Any]:
        # One frame and one lookup of the flag per call (issue 96): the
        # compiled flag gives its system (the context's mapping) and keeps
        # the OpenFeature answers of its results (_answers). The client's
        # status and snapshot, and that snapshot's data and steps, come in
        # one call (openfeature_read); the flag first from those made so
        # far, a plain dict (the snapshot's lookup after).
        status, snapshot, data, step = openfeature_read(self._client)
        if status is _FATAL:
            raise ProviderFatalError("the aioflags client is FATAL")
        flag = data.matcher.hot.get(flag_key)
        if flag is None:
            flag = snapshot.openfeature_flag(flag_key)
        elif flag.deleted:
            flag = None
        system = None if flag is None else flag.system
        # The context as the flag's system maps OpenFeature's, kept for an
        # object seen again unchanged (ContextCache: its hit, inline).
        cache = self._contexts.get(system)
        if cache is None:
            cache = self._contexts.setdefault(system, ContextCache(_mapping(system)))
        if evaluation_context is None:
            context = _context_for(system, None)
        else:
            entry = cache.kept.get(id(evaluation_context))
            if (
                entry is not None
                and entry[1] is evaluation_context.targeting_key
                and evaluation_context.attributes == entry[2]
            ):
                context = entry[3]
            else:
                context = cache.miss(evaluation_context, entry)
        # The composition's steps (Evaluation.answer's, without its frame
        # and the method's answer: a kept answer is the result's), the types
        # as the flag's system has them in the pipeline's one type step.
        method = _TYPED_DETAIL[kind]
        result = step.evaluate(data, method, flag_key, context, default_value)
        if flag is not None:
            answers = flag.openfeature.get(id(result))
            # (answers[0] is result: the entry holds it, so no other
            # object has its id while it is kept)
            if answers is not None and answers[1] is kind:
                return FlagResolutionDetails(*answers[2])
        detail = method.answer(result, default_value)
        answers = _answers(snapshot, flag_key, flag, result, detail, kind, status)
        return FlagResolutionDetails(*answers[2])

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """Evaluate a boolean flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "bool")

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """Evaluate a string flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "str")

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        """Evaluate an integer flag (a JSON number with no fraction; never a bool)."""
        return self._resolve(flag_key, default_value, evaluation_context, "int")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """Evaluate a number flag (integers are served as floats; never a bool)."""
        return self._resolve(flag_key, default_value, evaluation_context, "float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Any,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        """Evaluate a JSON object or list flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "object")

    async def resolve_boolean_details_async(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """Evaluate a boolean flag (no waiting: the snapshot is in memory)."""
        return self._resolve(flag_key, default_value, evaluation_context, "bool")

    async def resolve_string_details_async(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """Evaluate a string flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "str")

    async def resolve_integer_details_async(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        """Evaluate an integer flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "int")

    async def resolve_float_details_async(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """Evaluate a number flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "float")

    async def resolve_object_details_async(
        self,
        flag_key: str,
        default_value: Any,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        """Evaluate a JSON object or list flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "object")


#: What to do instead of initialising on a running event loop's own thread.
_ON_LOOP: Final = {
    "asyncio": (
        "{what} was called on a running asyncio event loop's own thread, where "
        "waiting for the aioflags client would block the loop: use `await "
        "asyncio.to_thread(api.set_provider_and_wait, provider)` (or "
        "api.set_provider, which initialises on a thread of its own)"
    ),
    "trio": (
        "{what} was called inside trio.run, where waiting for the aioflags client "
        "would block trio: use `await trio.to_thread.run_sync("
        "api.set_provider_and_wait, provider)` (or api.set_provider, which "
        "initialises on a thread of its own). The client then runs on a thread "
        "of its own and evaluations work from trio and asyncio"
    ),
}


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
