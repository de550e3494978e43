"""Random flag data and contexts, evaluated by aioflags and by LaunchDarkly's SDK.

Used by tests/test_differential.py (a modest seeded run in CI) and by
benchmarks/bench_differential.py (a larger run). The generator stays inside
the domain where evaluation.md says aioflags must agree with the Python SDK:
no old-user JSON, only timestamp strings every parser accepts, ``clientSide``
rather than ``clientSideAvailability``.
"""

from __future__ import annotations

import contextvars
import json
import random
from dataclasses import dataclass, field
from typing import Any

import aioflags
from aioflags._analytics._format import features
from aioflags._analytics._recorder import Batch, Recorder
from aioflags._client._evaluator import Evaluator
from aioflags._client._hooks import HookRunner
from aioflags._datasystem._store import snapshot_from_data
from aioflags._lens._lens import Lens
from aioflags.lens import LensConfig, mint

KINDS = ["user", "org", "device"]
# Every kind a clause, a rollout or a target may name: the contexts' own, the
# one no context has a part of ("multi": a multi-kind context's own kind) and
# one no context here has at all.
ANY_KINDS = [*KINDS, "multi", "team"]
ATTRS = [
    "email",
    "name",
    "country",
    "age",
    "score",
    "tags",
    "version",
    "created",
    "nested",
    "flag",
]
OPS = [
    "in",
    "endsWith",
    "startsWith",
    "contains",
    "matches",
    "lessThan",
    "lessThanOrEqual",
    "greaterThan",
    "greaterThanOrEqual",
    "before",
    "after",
    "semVerEqual",
    "semVerLessThan",
    "semVerGreaterThan",
    "segmentMatch",
    "unknownOp",
]
STRINGS = [
    "alice@example.com",
    "bob@test.io",
    "carol",
    "",
    "de",
    "fr",
    "us",
    "A",
    "B",
    "xyz",
]
VERSIONS = [
    "1.0.0",
    "2.1.0",
    "2.1",
    "2",
    "3.0.0-rc.1",
    "3.0.0-rc.2",
    "3.0.0",
    "1.0.0+build",
    "bad",
]
DATES = [
    "2020-01-01T00:00:00Z",
    "2021-06-15T12:30:00.123+00:00",
    "2019-12-31T23:59:59.999999+00:00",
    1577836800000,
    1600000000000.5,
    "not a date",
]


def _value(r: random.Random, attr: str) -> Any:
    if attr in ("email", "name", "country"):
        return r.choice(STRINGS)
    if attr == "age":
        return r.choice([17, 18, 30, 30.0, 45, 65, -1])
    if attr == "score":
        return r.choice([0.5, 1.5, 2, 99.9])
    if attr == "tags":
        return r.sample(STRINGS, r.randint(0, 3))
    if attr == "version":
        return r.choice(VERSIONS)
    if attr == "created":
        return r.choice(DATES)
    if attr == "nested":
        return {"a": {"b": r.choice(STRINGS)}, "n": r.choice([1, 2])}
    return r.choice([True, False, 1, 0])


@dataclass
class Case:
    flags: dict[str, Any]
    segments: dict[str, Any]
    contexts: list[dict[str, Any]] = field(default_factory=list)


class Generator:
    """Seeded random flags, segments and contexts."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def context_dict(self) -> dict[str, Any]:
        r = self.r

        def single(kind: str) -> dict[str, Any]:
            d: dict[str, Any] = {"key": f"{kind}-{r.randrange(12)}"}
            for attr in r.sample(ATTRS, r.randint(0, 6)):
                d[attr] = _value(r, attr)
            if r.random() < 0.2:
                d["anonymous"] = r.random() < 0.5
            return d

        if r.random() < 0.3:
            kinds = r.sample(KINDS, r.randint(2, 3))
            return {"kind": "multi", **{k: single(k) for k in kinds}}
        kind = r.choice([*KINDS, "user"])
        return {"kind": kind, **single(kind)}

    def clause(self, n_segments: int) -> dict[str, Any]:
        r = self.r
        op = r.choice(OPS)
        if op == "segmentMatch":
            return {
                "attribute": "",
                "op": op,
                "negate": r.random() < 0.2,
                "values": [
                    f"seg-{r.randrange(n_segments + 1)}" for _ in range(r.randint(1, 2))
                ],
            }
        kind = r.choice(["", "user", *ANY_KINDS])
        attr = r.choice(
            [
                *ATTRS,
                "key",
                "kind",
                "anonymous",
                "/nested/a/b",
                "/nested/n",
                "" if r.random() < 0.05 else "name",
            ]
        )
        if attr.startswith("/") and not kind:
            kind = "user"
        if attr in ("/nested/a/b",):
            pool: list[Any] = STRINGS
        elif attr == "kind":
            pool = [*ANY_KINDS, "x"]
        elif op in ("before", "after"):
            pool = DATES
        elif op.startswith("semVer"):
            pool = VERSIONS
        elif op in ("lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"):
            pool = [18, 30, 45.5, 2, "30"]
        elif op == "matches":
            pool = ["^a", "example\\.com$", "[", "o", "^$"]
        else:
            pool = [*STRINGS, 30, 30.0, True, 1, ["carol"]]
        clause: dict[str, Any] = {
            "attribute": attr,
            "op": op,
            "negate": r.random() < 0.25,
            "values": r.sample(pool, r.randint(0, 3)),
        }
        if kind:
            clause["contextKind"] = kind
        return clause

    def rollout(self, n_vars: int) -> dict[str, Any]:
        r = self.r
        n = r.randint(0, 3)
        weights = [r.randrange(0, 100001) for _ in range(n)]
        if n and r.random() < 0.7:
            total = sum(weights) or 1
            weights = [w * 100000 // total for w in weights]
        ro: dict[str, Any] = {
            "variations": [
                {
                    "variation": r.randrange(n_vars + 1),
                    "weight": w,
                    **({"untracked": True} if r.random() < 0.2 else {}),
                }
                for w in weights
            ]
        }
        if r.random() < 0.3:
            ro["kind"] = "experiment"
        if r.random() < 0.3:
            ro["seed"] = r.randrange(1000)
        if r.random() < 0.3:
            ro["bucketBy"] = r.choice(["email", "age", "score", "missing", "key"])
        if r.random() < 0.3:
            ro["contextKind"] = r.choice(ANY_KINDS)
        return ro

    def vor(self, n_vars: int) -> dict[str, Any]:
        r = self.r
        x = r.random()
        if x < 0.55:
            return {
                "variation": r.randrange(
                    -1 if r.random() < 0.05 else 0,
                    n_vars + (1 if r.random() < 0.05 else 0),
                )
            }
        if x < 0.97:
            return {"rollout": self.rollout(n_vars)}
        return {}

    def case(self, n_flags: int = 8, n_segments: int = 4, n_contexts: int = 12) -> Case:
        r = self.r
        segments = {}
        for s in range(n_segments):
            key = f"seg-{s}"
            seg: dict[str, Any] = {
                "key": key,
                "version": 1,
                "salt": r.choice(["", "salty"]),
                "included": [f"user-{r.randrange(12)}" for _ in range(r.randint(0, 2))],
                "excluded": [f"user-{r.randrange(12)}" for _ in range(r.randint(0, 2))],
                "includedContexts": [
                    {
                        "contextKind": r.choice(ANY_KINDS),
                        "values": [f"org-{r.randrange(12)}"],
                    }
                    for _ in range(r.randint(0, 1))
                ],
                "excludedContexts": [
                    {
                        "contextKind": r.choice(ANY_KINDS),
                        "values": [f"device-{r.randrange(12)}"],
                    }
                    for _ in range(r.randint(0, 1))
                ],
                "rules": [],
            }
            for _ in range(r.randint(0, 2)):
                rule: dict[str, Any] = {
                    "id": f"sr{s}",
                    "clauses": [
                        self.clause(n_segments) for _ in range(r.randint(0, 2))
                    ],
                }
                if r.random() < 0.4:
                    rule["weight"] = r.randrange(0, 100001)
                    if r.random() < 0.5:
                        rule["bucketBy"] = r.choice(["email", "age", "key"])
                    if r.random() < 0.4:
                        rule["rolloutContextKind"] = r.choice(ANY_KINDS)
                seg["rules"].append(rule)
            if r.random() < 0.1:
                seg["unbounded"] = True
                seg["generation"] = r.choice([None, 1])
            segments[key] = seg
        flags = {}
        for i in range(n_flags):
            key = f"flag-{i}"
            variations: list[Any] = r.choice(
                [[True, False], ["a", "b", "c"], [1, 2.5, 3], [{"x": 1}, [1], None]]
            )
            nv = len(variations)
            flag: dict[str, Any] = {
                "key": key,
                "version": r.randrange(1, 9),
                "on": r.random() < 0.85,
                "salt": r.choice(["", "s1"]),
                "variations": variations,
                "offVariation": r.choice([None, 0, 1, nv]),
                "fallthrough": self.vor(nv),
                "targets": [],
                "contextTargets": [],
                "rules": [],
                "prerequisites": [],
                "trackEvents": r.random() < 0.2,
                "trackEventsFallthrough": r.random() < 0.2,
                "clientSide": r.random() < 0.5,
            }
            if r.random() < 0.2:
                flag["debugEventsUntilDate"] = r.choice([0, 4102444800000])
            for _ in range(r.randint(0, 2)):
                flag["targets"].append(
                    {
                        "variation": r.randrange(nv),
                        "values": [f"user-{r.randrange(12)}" for _ in range(3)],
                    }
                )
            if r.random() < 0.4:
                for _ in range(r.randint(1, 3)):
                    kind = r.choice(ANY_KINDS)
                    flag["contextTargets"].append(
                        {
                            "contextKind": kind,
                            "variation": r.randrange(nv),
                            "values": []
                            if kind == "user"
                            else [f"{kind}-{r.randrange(12)}" for _ in range(3)],
                        }
                    )
            for j in range(r.randint(0, 3)):
                rule = {
                    "clauses": [
                        self.clause(n_segments) for _ in range(r.randint(0, 3))
                    ],
                    "trackEvents": r.random() < 0.2,
                    **self.vor(nv),
                }
                if r.random() < 0.8:
                    rule["id"] = f"r{i}-{j}"
                flag["rules"].append(rule)
            for _ in range(r.choice([0, 0, 1, 2])):
                flag["prerequisites"].append(
                    {
                        "key": f"flag-{r.randrange(n_flags + 1)}",
                        "variation": r.randrange(3),
                    }
                )
            flags[key] = flag
        return Case(flags, segments, [self.context_dict() for _ in range(n_contexts)])


def _normalize_reason(reason: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in reason.items() if v is not None}
    if out.get("inExperiment") is False:
        del out["inExperiment"]
    return out


class Reference:
    """LaunchDarkly's Python SDK, loaded with one case's data."""

    def __init__(self, case: Case) -> None:
        import ldclient
        from ldclient.config import Config
        from ldclient.feature_store import InMemoryFeatureStore
        from ldclient.versioned_data_kind import FEATURES, SEGMENTS

        store = InMemoryFeatureStore()
        store.init({FEATURES: case.flags, SEGMENTS: case.segments})
        self._ld = ldclient
        self.client = ldclient.LDClient(
            Config("sdk-key", feature_store=store, use_ldd=True, send_events=False)
        )
        # One LaunchDarkly Context per context dict (they are immutable): the
        # same dict is evaluated for every flag and four all-flags states.
        self._contexts: dict[int, tuple[dict[str, Any], Any]] = {}

    def close(self) -> None:
        self.client.close()

    def _context(self, context: dict[str, Any]) -> Any:
        known = self._contexts.get(id(context))
        if known is None or known[0] is not context:
            known = (context, self._ld.Context.from_dict(context))
            self._contexts[id(context)] = known
        return known[1]

    def detail(
        self, key: str, context: dict[str, Any], default: Any
    ) -> tuple[Any, Any, Any]:
        d = self.client.variation_detail(key, self._context(context), default)
        return d.value, d.variation_index, _normalize_reason(d.reason)

    def all_flags(self, context: dict[str, Any], **options: bool) -> dict[str, Any]:
        state = self.client.all_flags_state(self._context(context), **options)
        out: dict[str, Any] = state.to_json_dict()
        for meta in out.get("$flagsState", {}).values():
            if "reason" in meta:
                meta["reason"] = _normalize_reason(meta["reason"])
        return out


def ours(case: Case) -> aioflags.FlagSnapshot:
    return snapshot_from_data(case.flags, case.segments)


class _OneSnapshot:
    """A store that holds one snapshot (the client's common case: no gate)."""

    def __init__(self, snapshot: aioflags.FlagSnapshot) -> None:
        self.snapshot = snapshot
        self.data = snapshot._data
        self.on_swap: Any = None  # (its snapshot is never replaced)

    async def warm(self) -> aioflags.FlagSnapshot:
        return self.snapshot


def _awaited(coro: Any) -> Any:
    """The value of a coroutine that never suspends (no gate: nothing to await)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the evaluation suspended")


def client_over(
    snapshot: aioflags.FlagSnapshot,
    hooks: HookRunner | None = None,
    recorder: Recorder | None = None,
    lens: Lens | None = None,
) -> aioflags.Client:
    """A client evaluating ``snapshot`` on its straight-line path (never started).

    With ``hooks``, on its hooked one: their series around the same evaluation;
    with ``recorder``, recording its evaluations into it (analytics events on);
    with ``lens``, through the lens's stage while a view is open anywhere.
    """
    client = aioflags.Client(aioflags.Config(offline=True))
    client._install(Evaluator(_OneSnapshot(snapshot), hooks, lens))
    if recorder is not None:  # what the evaluator reads of an event processor
        processor: Any = _Processor(recorder)
        client._evaluator.record(processor, True)
    return client


@dataclass
class _Processor:
    recorder: Recorder


def new_recorder() -> Recorder:
    """A recorder as a client's event processor makes it (events on)."""
    return Recorder(
        capacity=10**6,
        keys_capacity=1000,
        omit_anonymous=False,
        random=random.Random(0),
    )


def recorded(recorder: Recorder) -> tuple[Any, list[tuple[Any, ...]]]:
    """What ``recorder`` recorded since the last call, times left out.

    The summary's ``features`` as the flush sends them, and each buffered
    record's kind, context key and, for an evaluation's, the flag's key and
    version, the variation, value, default, whether with a reason, and the
    flag that required it.
    """
    batch: Batch | None = recorder.take()
    if batch is None:
        return {}, []
    groups: dict[str, list[Any]] = {}
    for key, counter in batch.counters:
        groups.setdefault(key, []).append(counter)
    records = []
    for record in batch.records:
        kind, _, context, *rest = record
        if rest:
            flag, result, value, default, detail, prereq_of = rest
            rest = [
                flag.key,
                flag.version,
                result.variation_index,
                value,
                default,
                detail,
                prereq_of,
            ]
        records.append((kind, context._fq_key, *rest))
    return features(list(groups.items())), records


class LastDetail(aioflags.Hook):
    """A hook with stages of its own that keeps the last detail its after stage saw."""

    detail: aioflags.EvaluationDetail[Any] | None = None

    def before_evaluation(
        self, series_context: aioflags.EvaluationSeriesContext, data: Any
    ) -> Any:
        return {"key": series_context.key}

    def after_evaluation(
        self,
        series_context: aioflags.EvaluationSeriesContext,
        data: Any,
        detail: aioflags.EvaluationDetail[Any],
    ) -> Any:
        assert data == {"key": series_context.key}
        self.detail = detail
        return data

    def take(self) -> aioflags.EvaluationDetail[Any] | None:
        """The last detail seen (None: none since the last take)."""
        detail, self.detail = self.detail, None
        return detail


#: The lens's secret in :func:`compare` (a view open elsewhere).
_LENS_SECRET = "the-differential-lens-secret-0123456789"


def compare(case: Case) -> list[str]:
    """Evaluate every flag for every context both ways; return the differences.

    aioflags evaluates each flag on the snapshot, and again on the async
    client's straight-line path (which must agree with the snapshot).
    """
    snap = ours(case)
    client = client_over(snap)
    seen = LastDetail()
    hooked = client_over(snap, HookRunner([seen]))
    # Analytics events on: the snapshot's recording path (any thread, the
    # recorder's lock) against the client's, plain and hooked (the loop's).
    snapshot_recorder, plain_recorder, hooked_recorder, face_recorder = (
        new_recorder(),
        new_recorder(),
        new_recorder(),
        new_recorder(),
    )
    recording = snap.recording(snapshot_recorder)
    recorded_client = client_over(snap, recorder=plain_recorder)
    recorded_hooked = client_over(snap, HookRunner([LastDetail()]), hooked_recorder)
    # The snapshot a client hands out with events and hooks on: what
    # client.snapshot(), blocking.Client and the console evaluate.
    face_seen = LastDetail()
    face = client_over(snap, HookRunner([face_seen]), face_recorder).snapshot()
    # A flag lens, a view open in another request: every evaluation here runs
    # the lens's stage, finds no view of its own, and must answer and count
    # as without it (hooks and events on).
    lens_recorder = new_recorder()
    lens = Lens(LensConfig(secrets=[_LENS_SECRET], allow=["*"]))
    view = lens.open(mint(_LENS_SECRET, {"missing-flag": True}))
    assert view is not None
    open_elsewhere = lens.looking(view)
    elsewhere = contextvars.Context()
    elsewhere.run(open_elsewhere.__enter__)
    lensed = client_over(snap, HookRunner([LastDetail()]), lens_recorder, lens)
    ref = Reference(case)
    problems = []
    try:
        for cdict in case.contexts:
            ctx = aioflags.Context.from_dict(cdict)
            for key in [*case.flags, "missing-flag"]:
                a = snap.variation_detail(key, ctx, "default")
                mine = (a.value, a.variation_index, a.reason)
                theirs = ref.detail(key, cdict, "default")
                if mine != theirs:
                    problems.append(
                        f"{key} for {cdict}: aioflags {mine} != LaunchDarkly {theirs}"
                    )
                # variation() first: its heads hold value-only results,
                # which variation_detail() must never hand out.
                value = _awaited(client.variation(key, ctx, "default"))
                b = _awaited(client.variation_detail(key, ctx, "default"))
                if (b.value, b.variation_index, b.reason) != mine or value != a.value:
                    problems.append(
                        f"{key} for {cdict}: the client's path gave {b} and "
                        f"{value!r}, the snapshot {a}"
                    )
                # The hooked path: the same value, and its hook shown the detail.
                value = _awaited(hooked.variation(key, ctx, "default"))
                shown = seen.take()
                if (
                    value != a.value
                    or shown is None
                    or (shown.value, shown.variation_index, shown.reason) != mine
                ):
                    problems.append(
                        f"{key} for {cdict}: the hooked path gave {value!r}, its "
                        f"hook saw {shown}, the snapshot {a}"
                    )
                values = (
                    recording.variation(key, ctx, "default"),
                    _awaited(recorded_client.variation(key, ctx, "default")),
                    _awaited(recorded_hooked.variation(key, ctx, "default")),
                )
                if values != (a.value,) * 3:
                    problems.append(
                        f"{key} for {cdict}: with events on the snapshot, the "
                        f"client and the hooked client gave {values}, not {a.value!r}"
                    )
                details = [
                    (d.value, d.variation_index, d.reason)
                    for d in (
                        recording.variation_detail(key, ctx, "default"),
                        _awaited(recorded_client.variation_detail(key, ctx, "default")),
                        _awaited(recorded_hooked.variation_detail(key, ctx, "default")),
                    )
                ]
                if details != [mine] * 3:
                    problems.append(
                        f"{key} for {cdict}: with events on the snapshot, the "
                        f"client and the hooked client detailed {details}, not {mine}"
                    )
                through = (
                    _awaited(lensed.variation(key, ctx, "default")),
                    _awaited(lensed.variation_detail(key, ctx, "default")),
                )
                if (
                    through[0] != a.value
                    or (
                        through[1].value,
                        through[1].variation_index,
                        through[1].reason,
                    )
                    != mine
                ):
                    problems.append(
                        f"{key} for {cdict}: through the lens's stage (no view "
                        f"here) {through}, not {mine}"
                    )
                value = face.variation(key, ctx, "default")
                face_seen.take()
                d = face.variation_detail(key, ctx, "default")
                shown = face_seen.take()
                if (
                    value != a.value
                    or (d.value, d.variation_index, d.reason) != mine
                    or shown is None
                    or (shown.value, shown.variation_index, shown.reason) != mine
                ):
                    problems.append(
                        f"{key} for {cdict}: the client's snapshot (events, hooks) "
                        f"gave {value!r} and {d}, its hook saw {shown}, not {mine}"
                    )
            # OFREP's bulk answer: every flag's result from the evaluation.
            bulk = {
                key: (result.variation_index, result.reason)
                for key, _, result in snap._results(ctx, False) or []
            }
            for key in case.flags:
                if key in bulk:
                    theirs = ref.detail(key, cdict, "default")
                    if bulk[key] != theirs[1:]:
                        problems.append(
                            f"{key} for {cdict}: OFREP's bulk gave {bulk[key]}, "
                            f"LaunchDarkly {theirs[1:]}"
                        )
            for options in (
                {},
                {"with_reasons": True},
                {"client_side_only": True},
                {"details_only_for_tracked_flags": True, "with_reasons": True},
            ):
                state = snap.all_flags_state(ctx, **options)
                text = state.to_json()  # joined from kept pieces, first
                mine_all = state.to_dict()
                theirs_all = ref.all_flags(cdict, **options)
                if mine_all != theirs_all:
                    problems.append(
                        f"all_flags_state{options} for {cdict}:\n  {mine_all}\n  {theirs_all}"
                    )
                if text != json.dumps(mine_all, separators=(",", ":")):
                    problems.append(
                        f"all_flags_state{options} for {cdict}: to_json() {text}"
                    )
        expected = recorded(snapshot_recorder)
        for name, recorder in (
            ("client", plain_recorder),
            ("hooked", hooked_recorder),
            ("client's snapshot", face_recorder),
            ("lensed", lens_recorder),
        ):
            got = recorded(recorder)
            if got != expected:
                problems.append(
                    f"events recorded by the {name}'s path:\n  {got}\n"
                    f"  the snapshot's:\n  {expected}"
                )
    finally:
        elsewhere.run(open_elsewhere.__exit__, None, None, None)
        ref.close()
    return problems
