"""The evaluator: the one way a client's evaluations reach the data.

The store holds data alone (its current immutable :class:`FlagSnapshot`).
The :class:`Evaluator` composes it with what a run adds: the analytics
recorder, the hooks, the flag lens, the big segments' memberships, and
the gate an awaited evaluation passes first (a persistent store's reads,
memberships to fetch). Every evaluation entry point goes through it:
``Client``'s awaited methods (:attr:`Evaluator.evaluation` on the
store's snapshot, or :meth:`Evaluator.gated`), the snapshot
``client.snapshot()`` hands out and ``aioflags.blocking.Client``'s methods
(:meth:`Evaluator.snapshot`: synchronous, no gate).

The composition is a value of ordinary objects (:func:`compose`), built
once each time a part changes (:meth:`Evaluator._changed`), never decided
per call: the flag data's own step with the ledger that counts, inside
the lens's stage, inside the hooks' stage. The snapshot it hands out is
the store's data with the big segments and that composition
(:meth:`FlagSnapshot.composed`), made once per data version: a snapshot
is immutable, evaluated as it was composed (a hook or a recorder added
later applies to the snapshots handed out from then on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar, final

from aioflags._evaluation._pipeline import PLAIN, Evaluation, LensedFlags, flags_step

from ._hooks import hook_stage

if TYPE_CHECKING:
    from collections.abc import Callable

    from aioflags._analytics._processor import EventProcessor
    from aioflags._analytics._recorder import Ledger as LoopLedger
    from aioflags._datasystem._stores._bigsegments import BigSegments
    from aioflags._datasystem._stores._gate import EvaluationGate
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._data import SnapshotData
    from aioflags._evaluation._pipeline import Method, Step
    from aioflags._evaluation._recording import Ledger
    from aioflags._evaluation._results import FlagsState
    from aioflags._evaluation._snapshot import FlagSnapshot
    from aioflags._lens._lens import Lens

    from ._hooks import HookRunner


__all__ = ["Data", "Evaluator"]

T = TypeVar("T")
R = TypeVar("R")


class Data(Protocol):
    """Where an evaluator reads the flag data: what it uses of a run's ``Store``.

    The client's stand-in before it is started (``_client._WarnOnUse``) is
    one too.
    """

    @property
    def snapshot(self) -> FlagSnapshot:
        """The current data (an immutable snapshot, composed with nothing)."""
        ...

    @property
    def data(self) -> SnapshotData:
        """:attr:`snapshot`'s data: what the client's awaited evaluations read."""
        ...

    async def warm(self) -> FlagSnapshot:
        """The current data with every flag compiled (``all_flags_state``)."""
        ...

    #: Called as :attr:`snapshot` is replaced, before anything evaluates the
    #: new one (None: nothing to call). The event loop's ledger counts the
    #: current data's flags by key (``Ledger.forget_fast``): data whose
    #: snapshot is replaced must call it (``Store`` does); data whose
    #: snapshot never changes may ignore it.
    on_swap: Callable[[], None] | None


def compose(
    ledger: Ledger | None,
    lens: Lens | None = None,
    hooks: HookRunner | None = None,
    client: str | None = None,
) -> Evaluation:
    """The composition of these parts: the flag data's step, then each stage around it.

    ``ledger`` counts (None: analytics events off); ``lens`` looks
    (None: not configured); ``hooks`` run their evaluation stages (None,
    or none of their own: nothing runs). The plain one for none. A new
    stage is one class (a :class:`~aioflags._evaluation._pipeline.Step`
    that holds the step inside it) and one entry in :func:`_stack`. The
    lens's steps run only while a view is open somewhere
    (``Evaluation.look``): a lens no request uses costs nothing, and a
    request without a view pays one read of the lens's variable
    (``LensedFlags``). ``client``: the label of the client it evaluates
    for (the door's log lines name it).
    """
    hooked = hooks is not None and hooks.observes_evaluations
    if ledger is None and lens is None and not hooked and client is None:
        return PLAIN
    still = _stack(ledger, None, hooks if hooked else None, client)
    if lens is None:
        return Evaluation(still, ledger=ledger, hooked=hooked)
    looking = _stack(ledger, lens, hooks if hooked else None, client)
    evaluation = Evaluation(
        still, ledger=ledger, lens=lens, hooked=hooked, looking=looking
    )
    lens.watch(evaluation)  # (its stage in while a view is open anywhere)
    return evaluation


def _stack(
    ledger: Ledger | None,
    lens: Lens | None,
    hooks: HookRunner | None,
    client: str | None = None,
) -> Step:
    """The flag data's step, then each stage around it, innermost first."""
    step: Step = flags_step(ledger, client)
    if lens is not None:
        from aioflags._lens._lens import LensStage  # (imported with a lens only)

        # (a request without a view reads the lens's variable, and goes on
        # in the same frame: only a request with one runs the stage)
        step = LensedFlags(ledger, lens.var, LensStage(lens, step), client)
    if hooks is not None:
        step = hook_stage(hooks, step)
    return step


@final
class Evaluator:
    """One client run's evaluations: the store's data with events, hooks, lens, big segments, gate."""

    __slots__ = (
        "_forget",
        "_made",
        "big_segments",
        "client",
        "environment_id",
        "evaluation",
        "events",
        "gate",
        "hooks",
        "lens",
        "shared",
        "store",
        "unhooked_evaluation",
    )

    def __init__(
        self,
        store: Data,
        hooks: HookRunner | None = None,
        lens: Lens | None = None,
        client: str | None = None,
    ) -> None:
        self.store = store
        #: The label of the client it evaluates for (log lines name it).
        self.client = client
        #: The client's hooks (shared by its runs; None: none registered).
        self.hooks = hooks
        #: The client's flag lens (None: not configured).
        self.lens = lens
        #: The composition of the client's awaited evaluations, on the
        #: event loop: counted in the loop's ledger (its thread alone).
        self.evaluation: Evaluation = PLAIN
        #: The composition of the snapshots it hands out, for any thread:
        #: counted in the recorder (its lock).
        self.shared: Evaluation = PLAIN
        #: The SDK's own evaluations' (value watchers): no hooks, no lens.
        self.unhooked_evaluation: Evaluation = PLAIN
        #: The event processor evaluations record into (None: events off).
        self.events: EventProcessor | None = None
        #: Where unbounded segments' memberships come from (None: not configured).
        self.big_segments: BigSegments | None = None
        #: What awaited evaluations pass first (None: nothing).
        self.gate: EvaluationGate | None = None
        #: The environment's id, from the flag service's ``X-LD-EnvID`` header.
        self.environment_id: str | None = None
        # (the store's data, the snapshot composed of it), the last made: one
        # tuple, so a thread never reads one's data with another's snapshot
        self._made: tuple[FlagSnapshot, FlagSnapshot] | None = None
        # What the store calls as it replaces its data (the loop's ledger's).
        self._forget: Callable[[], None] | None = None
        self._changed()

    # ------------------------------------------------------------ composing
    def _changed(self) -> None:
        """A part changed: compose anew (:func:`compose`), once, for every face."""
        self._made = None
        events = self.events
        # The async methods count on the loop's ledger (its thread alone);
        # a snapshot's, from any thread, on the recorder (its lock).
        loop = recorder = None
        if events is not None:
            recorder = events.recorder
            loop = recorder.loop
            loop.forget_fast()  # (counted by key: maybe another store's flags)
        self._watch(loop)
        self.evaluation = compose(loop, self.lens, self.hooks, self.client)
        self.shared = compose(recorder, self.lens, self.hooks, self.client)
        self.unhooked_evaluation = compose(recorder)

    def _watch(self, loop: LoopLedger | None) -> None:
        """The event loop's ledger ``loop`` forgets what it counts by key as the store's data is replaced.

        (It counts the flags of the data the async methods read in place,
        by key: a new snapshot may have new objects of them.) None: no
        ledger to tell (the store's ``on_swap`` is taken back if it is
        this evaluator's; another's, set since, stays).
        """
        store = self.store
        forget = None if loop is None else loop.forget_fast
        if forget is not None:
            store.on_swap = forget  # (one step: no swap between two)
        elif self._forget is not None and store.on_swap == self._forget:
            store.on_swap = None
        self._forget = forget

    def retire(self) -> None:
        """Another evaluator serves the client now: its store no longer tells this one's ledger."""
        self._watch(None)

    def use_hooks(self, hooks: HookRunner) -> None:
        """Run ``hooks`` around evaluations from now on (a hook was added)."""
        self.hooks = hooks
        if self.environment_id is not None:
            hooks.environment_id = self.environment_id
        self._changed()

    def use_big_segments(self, big_segments: BigSegments) -> None:
        """Evaluate unbounded segments with ``big_segments``' memberships."""
        self.big_segments = big_segments
        self._changed()

    def use_gate(self, gate: EvaluationGate) -> None:
        """Awaited evaluations pass ``gate`` first."""
        self.gate = gate
        self._changed()

    def record(self, processor: EventProcessor, on: bool) -> None:
        """Record evaluations into ``processor`` (``on``), or stop (if it is the one)."""
        if on:
            self.events = processor
        elif self.events is processor:
            self.events = None
        else:
            return
        self._changed()

    def record_environment_id(self, environment_id: str) -> None:
        """The flag service named its environment (``X-LD-EnvID``): tell the hooks."""
        self.environment_id = environment_id
        if self.hooks is not None:
            self.hooks.environment_id = environment_id

    def _compose(self, data: FlagSnapshot, evaluation: Evaluation) -> FlagSnapshot:
        big = self.big_segments
        if evaluation is PLAIN and big is None:
            return data
        return data.composed(evaluation, big)

    def snapshot(self) -> FlagSnapshot:
        """The store's current data with big segments and the shared composition (made once each)."""
        data = self.store.snapshot
        made = self._made
        if made is None or made[0] is not data:
            made = self._made = (data, self._compose(data, self.shared))
        return made[1]

    def unhooked(self) -> FlagSnapshot:
        """:meth:`snapshot` without hooks: the SDK's own evaluations (value watchers)."""
        return self._compose(self.store.snapshot, self.unhooked_evaluation)

    # ----------------------------------------------------------- evaluating
    async def gated(
        self, method: Method[R], key: str, context: Context | None, default: Any
    ) -> R:
        """What ``method`` answers for flag ``key``, past the gate (:attr:`gate` is set).

        Evaluated now, on the event loop's composition, where the gate lets
        it through at once (a cached store holds the flag; a key that is
        no str, which the door refuses); else once the gate has (a store
        read, big-segment memberships), on the snapshot it gives.
        """
        gate = self.gate
        if gate is None or self._at_once(key):
            return self.evaluation.answer(
                self.store.data, method, key, context, default
            )
        return await gate.evaluate(
            key,
            context,
            lambda snapshot: snapshot._answer(method, key, context, default),
        )

    async def evaluate(
        self,
        call: Callable[[FlagSnapshot, str, Context | None, T], R],
        key: str,
        context: Context | None,
        default: T,
    ) -> R:
        """``call(snapshot, key, context, default)`` after the gate, if any.

        ``call`` is a :class:`FlagSnapshot` method (``FlagSnapshot.bool_variation``...).
        """
        snapshot = self.now(key)
        if snapshot is not None:
            return call(snapshot, key, context, default)
        return await self.later(call, key, context, default)

    def now(self, key: str) -> FlagSnapshot | None:
        """:meth:`snapshot`, if flag ``key`` can be evaluated now; None: await :meth:`later`.

        Now unless there is a gate that every evaluation must pass (a
        refresher, big segments) or one that this key does not pass (a
        cached store reads a key the data lacks through).
        """
        if self._at_once(key):
            return self.snapshot()
        return None

    def _at_once(self, key: str) -> bool:
        """Whether the gate lets an evaluation of ``key`` through without a wait.

        A key that is no str does not wait (the door refuses it); nor does
        one a cached store holds, where the gate does not stop every
        evaluation (a refresher or big segments do).
        """
        gate = self.gate
        given: object = key  # typed str; callers may not be
        return (
            gate is None
            or not isinstance(given, str)
            or (not gate.always and gate.passes(key))
        )

    async def later(
        self,
        call: Callable[[FlagSnapshot, str, Context | None, T], R],
        key: str,
        context: Context | None,
        default: T,
    ) -> R:
        """``call(snapshot, key, context, default)`` once the gate has let it through.

        For what :meth:`now` did not evaluate (with no gate, it is evaluated
        at once).
        """
        gate = self.gate
        if gate is None:
            return call(self.snapshot(), key, context, default)
        return await gate.evaluate(
            key, context, lambda snapshot: call(snapshot, key, context, default)
        )

    async def all_flags_state(
        self, context: Context | None, **options: bool
    ) -> FlagsState:
        """Every flag's state for ``context``, the cold flags compiled first, in slices."""
        await self.store.warm()
        gate = self.gate
        if gate is None:
            return self.snapshot().all_flags_state(context, **options)
        return await gate.evaluate(
            None, context, lambda snapshot: snapshot.all_flags_state(context, **options)
        )
