"""The lens a client holds, and the view one request sees flags through.

A client configured with ``Config(lens=...)`` holds one :class:`Lens`: a
``ContextVar`` of its own (two clients' tokens never mix), the count of
overridden evaluations per flag (``usage()``), and the rules of
``LensConfig``. The middleware (or :func:`aioflags.lens.scope`) opens a
:class:`View` for a request that carries a valid token and sets it in the
variable for the request's task; the tasks it starts copy it, others
never see it.

While some request, anywhere, has a view open (:meth:`Lens.watch`), a
client's compositions run the flag data's own step as
``_evaluation._pipeline.LensedFlags``: it reads the variable, and a
request without a view goes on as without the lens, in the same frame;
one with a view runs the lens's stage (:class:`LensStage`)::

    view = lens.var.get()                         # None: no token here
    if view is None: the flag data's own step     # as without the lens
    else: the token's override, or the inner step (the flag's code, its count)
          view.saw(key, result, default)          # the trace, if it asked for one

An overridden evaluation runs no flag code and records no analytics event;
the hooks' stages run around it as around any other.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import hashlib
import heapq
import json
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Final, Literal, final

from aioflags._analytics._usage import _same
from aioflags._core._clock import wall_ms
from aioflags._evaluation._door import door
from aioflags._evaluation._pipeline import find, typed
from aioflags._evaluation._results import Reason, Result

from ._config import allowed as allow_rule
from ._token import LEEWAY, Claims, Refusal, verify

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._door import Data
    from aioflags._evaluation._evaluate import Matcher
    from aioflags._evaluation._model import CompiledFlag
    from aioflags._evaluation._pipeline import Evaluation, Method, Step

    from ._config import LensConfig

__all__ = [
    "MAX_REDEEMED",
    "MAX_TRACE_BYTES",
    "WARN_EVERY",
    "Lens",
    "LensStage",
    "View",
    "warn",
]

logger = logging.getLogger("aioflags.lens")

#: Seconds between two WARNINGs of one cause (the rest are DEBUG).
WARN_EVERY: Final = 60.0
#: The longest ``X-Aioflags-Trace`` value, its ``; ...+N more`` included.
MAX_TRACE_BYTES: Final = 8192
#: Room kept for the ``; ...+N more`` marker.
_MARKER_ROOM: Final = 32
#: (token id, flag key) pairs whose refusal was logged (each once), at most.
_MAX_TOLD: Final = 4096
#: Links redeemed and not yet expired that a lens remembers, at most (each
#: a 32-byte digest and its expiry): past it, a link is refused until one
#: of them expires, so that no link is ever redeemed twice by one process.
MAX_REDEEMED: Final = 10_000

# cause -> when its last WARNING was logged (time.monotonic): per process
_warned: dict[str, float] = {}
_told: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
_log_lock = threading.Lock()


def warn(cause: str, message: str, *args: object) -> None:
    """Log ``message`` as a WARNING, at most once a minute per ``cause`` (else DEBUG)."""
    now = time.monotonic()
    with _log_lock:
        last = _warned.get(cause)
        loud = last is None or now - last >= WARN_EVERY
        if loud:
            _warned[cause] = now
    logger.log(logging.WARNING if loud else logging.DEBUG, message, *args)


def _refuse_flag(jti: str, key: str, why: str) -> None:
    """A token's flag is not overridden: a WARNING once per token and flag.

    Not limited to one a minute, as a refused token is (issue 86, row
    109): only a token that verifies gets here, so only whoever holds the
    secret can make more of these lines, and each says something new.
    """
    with _log_lock:
        if (jti, key) in _told:
            return
        _told[(jti, key)] = None
        if len(_told) > _MAX_TOLD:
            _told.popitem(last=False)
    logger.warning(
        "aioflags lens: token %s does not override flag %r: %s (its other flags"
        " still apply)",
        jti,
        key,
        why,
    )


def _has_key(context: Context, key: str) -> bool:
    """Whether ``context`` (of any kind, or any of a multi-context's) has ``key``."""
    if not context.multiple:
        return context.key == key
    for kind in context.kinds:
        single = context.individual_context(kind)
        if single is not None and single.key == key:
            return True
    return False


@final
class Lens:
    """A client's flag lens: its configuration, its context variable, its counts."""

    __slots__ = (
        "_allowed",
        "_evaluations",
        "_expiries",
        "_lock",
        "_redeemed",
        "_unchecked",
        "active",
        "bearer_said",
        "config",
        "overridden",
        "served",
        "var",
    )

    def __init__(self, config: LensConfig) -> None:
        self.config: LensConfig = config
        #: The view of the current request (None: none, or no valid token).
        self.var: contextvars.ContextVar[View | None] = contextvars.ContextVar(
            "aioflags_lens", default=None
        )
        #: How many views are set now, in any task or thread (:meth:`looking`):
        #: while none is, no composition runs the lens's stage (:meth:`watch`).
        self.active: int = 0
        #: Overridden evaluations per flag key, for ``usage()``.
        self.overridden: dict[str, int] = {}
        self._lock = threading.Lock()  # (a blocking client's threads count too)
        self._allowed: dict[str, bool] = {}
        #: The compositions with this lens's stage (:meth:`watch`).
        self._evaluations: weakref.WeakSet[Evaluation] = weakref.WeakSet()
        #: The links redeemed (:meth:`redeem`): digest -> until when it is kept.
        self._redeemed: dict[bytes, float] = {}
        #: The same, as a heap of (until when, digest): the soonest first.
        self._expiries: list[tuple[float, bytes]] = []
        #: Whether the first evaluation is yet to ask whether anything
        #: reads tokens for this lens (:meth:`first_look`).
        self._unchecked: bool = True
        #: Whether a middleware was made for its client, or scope() used.
        self.served: bool = False
        #: Whether a lens token sent as ``Authorization: Bearer`` was told of.
        self.bearer_said: bool = False

    def watch(self, evaluation: Evaluation) -> None:
        """Turn ``evaluation``'s lens stage in while a view is open, out while none is.

        A composition with a lens runs its stage only while :attr:`active`
        is above zero (``Evaluation.look``): a lens no request uses costs
        an evaluation nothing. Held by a weak reference: a composition
        replaced is forgotten.
        """
        with self._lock:
            self._evaluations.add(evaluation)
            evaluation.look(self.active > 0)
            if self._unchecked:  # (until the first evaluation, one step more)
                evaluation.step = _FirstLook(self, evaluation.step)

    def serve(self) -> None:
        """A middleware was made for this lens's client, or ``scope()`` used: tokens are read."""
        with self._lock:
            self.served = True
            self._checked()

    def bearer(self) -> None:
        """A lens token came as ``Authorization: Bearer``: a WARNING, once (row 118)."""
        with self._lock:
            if self.bearer_said:
                return
            self.bearer_said = True
        logger.warning(
            "aioflags lens: a request sent a lens token as `Authorization: Bearer`,"
            " which the lens never reads (that header is the app's own): send it as"
            " the X-Aioflags-Lens header (or follow a link); the request went on"
            " without the lens"
        )

    def first_look(self) -> None:
        """The client's first evaluation: a WARNING if nothing reads its tokens (row 115).

        ``Config(lens=...)`` without ``LensMiddleware`` (or aiohttp's)
        ignores every request's token, silently but for this line. A
        middleware is made before the app serves its first request (the
        evaluations it makes); a process that evaluates before it ever
        calls ``scope()`` gets the line too.
        """
        with self._lock:
            if not self._unchecked:
                return
            self._checked()
            quiet = self.served
        if not quiet:
            logger.warning(
                "aioflags lens: this client has Config(lens=...), and no"
                " LensMiddleware or aiohttp_middleware was made for it before its"
                " first evaluation: requests' tokens are not read (add the"
                " middleware to the app; aioflags.lens.scope() needs none)"
            )

    def _checked(self) -> None:
        """Nothing left to ask (under the lock): every first-look step out."""
        if self._unchecked:
            self._unchecked = False
            for evaluation in self._evaluations:
                evaluation.look(self.active > 0)

    def get(self) -> View | None:
        """The current request's view (None: none, or no valid token)."""
        return self.var.get()

    def allows(self, key: str) -> bool:
        """Whether ``LensConfig.allow`` lets a token override flag ``key``."""
        allowed = self._allowed.get(key)
        if allowed is None:
            allowed = allow_rule(self.config.allow, key)
            if len(self._allowed) < _MAX_TOLD:
                self._allowed[key] = allowed
        return allowed

    def open(
        self, token: str, exists: Callable[[str], bool] | None = None
    ) -> View | None:
        """The view ``token`` gives, or None (refused: logged, rate-limited).

        ``exists``: whether a flag is in the current data, to say at once
        which of the token's flags are not (None: not known yet).
        """
        verdict = self.check(token, exists)
        return None if isinstance(verdict, Refusal) else verdict

    def check(
        self, token: str, exists: Callable[[str], bool] | None = None
    ) -> View | Refusal:
        """What :meth:`open` does, the refusal (logged, rate-limited) given back too."""
        verdict = verify(token, self.config.secrets, self.config.max_ttl)
        if isinstance(verdict, Refusal):
            warn(
                verdict.cause,
                "aioflags lens: a token was refused (%s: %s); the request goes on"
                " without the lens",
                verdict.cause,
                verdict.why,
            )
            return verdict
        return View(self, verdict, exists)

    def redeem(
        self, token: str, expires: float, now: float | None = None
    ) -> Literal["redeemed", "used", "full"]:
        """Redeem a verified link's ``token`` once: ``"redeemed"`` the first time.

        ``"used"``: this lens redeemed it already; ``"full"``: it remembers
        :data:`MAX_REDEEMED` links that have not expired, and takes no more
        until one does. A link is remembered until it expires (``expires``,
        with the leeway :func:`verify` gives), by a digest of what its
        signature covers: the same token written another way (a
        signature's unused base64 bits) is the same link.
        """
        signed = token.rpartition(".")[0]
        digest = hashlib.sha256(signed.encode("utf-8", "surrogatepass")).digest()
        moment = wall_ms() / 1000 if now is None else now
        with self._lock:
            redeemed, expiries = self._redeemed, self._expiries
            while expiries and expiries[0][0] < moment:
                _, gone = heapq.heappop(expiries)
                redeemed.pop(gone, None)
            if digest in redeemed:
                return "used"
            if len(redeemed) >= MAX_REDEEMED:
                return "full"
            until = expires + LEEWAY
            redeemed[digest] = until
            heapq.heappush(expiries, (until, digest))
            return "redeemed"

    @contextlib.contextmanager
    def looking(self, view: View) -> Iterator[None]:
        """Evaluations in this context (and tasks it starts) see ``view`` inside the block."""
        with self._lock:
            self.served = True  # (a view: something reads tokens)
            self._unchecked = False
            self.active += 1
            if self.active == 1:  # the first view open: every stage in
                for evaluation in self._evaluations:
                    evaluation.look(True)
        reset = self.var.set(view)
        try:
            yield
        finally:
            self.var.reset(reset)
            with self._lock:
                self.active -= 1
                if self.active == 0:  # none open any more: every stage out
                    for evaluation in self._evaluations:
                        evaluation.look(False)

    def count(self, key: str) -> None:
        """One more overridden evaluation of flag ``key``."""
        with self._lock:
            self.overridden[key] = self.overridden.get(key, 0) + 1

    def counts(self) -> dict[str, int]:
        """A copy of the overridden evaluations per flag key."""
        with self._lock:
            return dict(self.overridden)


@final
class _FirstLook:
    """The first evaluation's extra step: :meth:`Lens.first_look`, then the steps as ever."""

    __slots__ = ("inner", "lens")

    def __init__(self, lens: Lens, inner: Step) -> None:
        self.lens = lens
        self.inner = inner

    def evaluate(
        self,
        data: Data,
        method: Method[Any],
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Result:
        """Flag ``key``'s result, once the lens asked whether anything reads its tokens."""
        self.lens.first_look()
        return self.inner.evaluate(data, method, key, context, default)


@final
class LensStage:
    """The lens's stage of a composition: the request's view around the step it holds.

    Run only for a request with a view (``LensedFlags`` reads the variable
    first, :meth:`Lens.watch`); for one with none, the inner step
    evaluates as without the lens. With one, a flag the token overrides
    (the door passed, the flag exists) is served its override, typed for
    a typed method, and the inner step (the flag's code, its count) does
    not run; either way the view's trace is told what was answered.
    """

    __slots__ = ("inner", "lens")

    def __init__(self, lens: Lens, inner: Step) -> None:
        self.lens = lens
        self.inner = inner

    def evaluate(
        self,
        data: Data,
        method: Method[Any],
        key: str,
        context: Context | None,
        default: Any,
        /,
    ) -> Result:
        """Flag ``key``'s result as the request's view sees it."""
        view = self.lens.get()  # (in the steps only while some view is open)
        if view is None:
            return self.inner.evaluate(data, method, key, context, default)
        result = None
        if door(context, key):
            matcher = data.matcher
            if find(matcher, key) is not None:
                result = view.override(matcher, key, context)
        if result is None:
            result = self.inner.evaluate(data, method, key, context, default)
        elif method.kind is not None:
            result = typed(result, method.kind, default, data.matcher, key)
        view.saw(key, result, default)
        return result


@final
class View:
    """What one request sees through the lens: a verified token's overrides and trace."""

    __slots__ = (
        "_made",
        "_more",
        "_size",
        "expires",
        "flags",
        "jti",
        "lens",
        "sub",
        "trace",
    )

    def __init__(
        self, lens: Lens, claims: Claims, exists: Callable[[str], bool] | None
    ) -> None:
        self.lens: Lens = lens
        self.jti: str = claims.jti
        self.sub: str | None = claims.sub
        #: When the token expires (epoch seconds): the cookie's lifetime.
        self.expires: float = claims.exp
        flags: dict[str, JSONValue] = {}
        for key, value in claims.flags.items():
            if not lens.allows(key):
                _refuse_flag(self.jti, key, "it is not in LensConfig.allow")
            elif exists is not None and not exists(key):
                _refuse_flag(self.jti, key, "no such flag")
            else:
                flags[key] = value
        #: Flag key -> the value to serve (allowed flags only).
        self.flags: dict[str, JSONValue] = flags
        #: The trace's entries (None: the token asked for none).
        self.trace: list[str] | None = [] if claims.trace else None
        self._size = 0
        self._more = 0
        # flag key -> (the flag, its override's result or None), per flag version
        self._made: dict[str, tuple[CompiledFlag, Result | None]] = {}

    def override(self, matcher: Matcher, key: str, context: Context) -> Result | None:
        """Flag ``key``'s overridden result for ``context``, or None (not overridden)."""
        if key not in self.flags:
            return None
        if self.sub is not None and not _has_key(context, self.sub):
            return None
        flag = matcher.flag(key)
        made = self._made.get(key)
        if made is None or made[0] is not flag:
            made = self._made[key] = (flag, self._result(flag, key))
        result = made[1]
        if result is not None:
            self.lens.count(key)
        return result

    def _result(self, flag: CompiledFlag, key: str) -> Result | None:
        """The result serving the token's value of ``flag``, if it is a variation."""
        value = self.flags[key]
        for index, variation in enumerate(flag.variations):
            if _same(variation, value):
                reason = Reason({"kind": "OVERRIDE", "lens": self.jti})
                return Result(variation, index, reason, False, None)
        _refuse_flag(self.jti, key, f"{_json(value)} is not one of its variations")
        return None

    def looked(
        self,
        matcher: Matcher,
        results: Iterable[tuple[str, CompiledFlag, Result]],
        context: Context,
    ) -> Iterator[tuple[str, CompiledFlag, Result]]:
        """Each flag's result of an all-flags evaluation, overridden and traced."""
        for key, flag, result in results:
            over = self.override(matcher, key, context)
            shown = result if over is None else over
            self.saw(key, shown, None)
            yield key, flag, shown

    def saw(self, key: str, result: Result, default: Any) -> None:
        """Add flag ``key``'s evaluation to the trace, if the token asked for one."""
        trace = self.trace
        if trace is None:
            return
        reason = result.reason
        kind = reason.get("kind")
        value = default if result.variation_index is None else result.value
        # (a header's value: control characters escaped, as non-ASCII is)
        shown = key.encode("unicode_escape").decode("ascii")
        entry = f"{shown}={_json(value)} ({kind}{_which(kind, reason)})"
        size = self._size + len(entry) + (2 if trace else 0)
        if self._more or size > MAX_TRACE_BYTES - _MARKER_ROOM:
            self._more += 1
            return
        trace.append(entry)
        self._size = size

    def header(self) -> str | None:
        """The ``X-Aioflags-Trace`` value (None: no trace asked for)."""
        if self.trace is None:
            return None
        text = "; ".join(self.trace)
        if self._more:
            marker = f"...+{self._more} more"
            text = f"{text}; {marker}" if text else marker
        return text


def _which(kind: object, reason: Reason) -> str:
    """What a trace entry adds to its reason's kind: the rule, or the prerequisite.

    ``RULE_MATCH``: the rule's index, then its id as JSON if it has one
    (`` 1 "beta-testers"``); ``PREREQUISITE_FAILED``: the prerequisite's
    key as JSON; nothing for the other kinds (issue 86, row 121).
    """
    if kind == "RULE_MATCH":
        rule_id = reason.get("ruleId")
        named = f" {_json(rule_id)}" if isinstance(rule_id, str) and rule_id else ""
        return f" {reason.get('ruleIndex')}{named}"
    if kind == "PREREQUISITE_FAILED":
        return f" {_json(reason.get('prerequisiteKey'))}"
    return ""


def _json(value: object) -> str:
    """``value`` as compact ASCII JSON (as a header may carry it)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError):  # a default that is no JSON value
        return json.dumps(repr(value), ensure_ascii=True)
