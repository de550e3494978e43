"""Which of a flag's results come from a randomized assignment: the seam guards count on (issue 98).

A guard counts a request when the guarded flag's result *is* (by
identity) one of a split's results (``splits_of``, ``FlagSystem.splits``):
a LaunchDarkly rollout in a rule or the fallthrough (an experiment too),
a flagd ``fractional``. Never a target, a rule without a rollout, the off
variation, a prerequisite, an error, a default, or a context the rollout
cannot bucket, even where that result is equal to a split's by value
(``Result`` compares by value). Every result here is the pipeline's own
(the snapshot's ``RESULT`` method), as a guard's runtime sees it.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from aioflags import Context
from aioflags._datasystem._store import snapshot_from_data
from aioflags._evaluation._codegen import MAX_CLAUSES
from aioflags._evaluation._model import Result, Split, splits_of
from aioflags._evaluation._pipeline import RESULT
from aioflags._evaluation._snapshot import FlagSnapshot
from aioflags._systems._flagd._data._definitions import flagd_flags
from aioflags._systems._flagd._engine._compile import _prebuilt
from aioflags._systems._flagd._system import FLAGD
from tests.toy_system import TOY, registered_toy, toy_flag

KEYS = 10_000


def snapshot(flags: dict[str, Any]) -> FlagSnapshot:
    """LaunchDarkly flags, each given a version."""
    return snapshot_from_data(
        {key: {"key": key, "version": 1, **f} for key, f in flags.items()}
    )


def flagd_snapshot(flags: dict[str, Any]) -> FlagSnapshot:
    return snapshot_from_data(dict(flagd_flags({"flags": flags})))


def result(snap: FlagSnapshot, key: str, context: Context) -> Result:
    """What the pipeline serves (a variation evaluation), the object itself."""
    answer: Result = snap._answer(RESULT, key, context, None)
    return answer


def splits(snap: FlagSnapshot, key: str) -> tuple[Split, ...]:
    flag = snap._flag(key)
    assert flag is not None
    return splits_of(flag)


def counted(found: tuple[Split, ...]) -> dict[int, tuple[int, int | None]]:
    """What a guard's runtime builds once per flag version: ``id`` -> (split, variation)."""
    return {
        id(r): (at, r.variation_index)
        for at, split in enumerate(found)
        for r in split.results
    }


def users(n: int, **attributes: Any) -> list[Context]:
    return [
        Context.from_dict({"kind": "user", "key": f"user-{i}", **attributes})
        for i in range(n)
    ]


def within_chance(count: int, n: int, p: float) -> bool:
    """``count`` of ``n`` is within 5 standard deviations of ``n * p``."""
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def ld_rollout(*weights: int, **fields: Any) -> dict[str, Any]:
    return {
        "rollout": {
            "variations": [
                {"variation": at, "weight": w} for at, w in enumerate(weights)
            ],
            **fields,
        }
    }


def ld_flag(**fields: Any) -> dict[str, Any]:
    return {
        "on": True,
        "variations": ["a", "b", "c"],
        "offVariation": 0,
        "fallthrough": {"variation": 0},
        **fields,
    }


BETA = {"attribute": "plan", "op": "in", "values": ["beta"]}
FREE = {"attribute": "plan", "op": "in", "values": ["free"]}

# Each flag, and the parts of it that are rollouts (by the reason's words).
LD_FLAGS = {
    "fallthrough": (ld_flag(fallthrough=ld_rollout(30000, 70000)), {"FALLTHROUGH"}),
    "rule": (
        ld_flag(
            rules=[
                {"id": "fixed", "clauses": [FREE], "variation": 1},
                {"id": "r", "clauses": [BETA], **ld_rollout(50000, 50000)},
            ]
        ),
        {"RULE_MATCH 1"},
    ),
    "experiment": (
        ld_flag(
            fallthrough={
                "rollout": {
                    "kind": "experiment",
                    "seed": 61,
                    "variations": [
                        {"variation": 0, "weight": 40000},
                        {"variation": 1, "weight": 40000},
                        {"variation": 2, "weight": 20000, "untracked": True},
                    ],
                }
            }
        ),
        {"FALLTHROUGH"},
    ),
    "targets": (
        ld_flag(
            targets=[
                {"values": [f"user-{i}" for i in range(0, 400, 7)], "variation": 1}
            ],
            contextTargets=[],
            rules=[{"id": "fixed", "clauses": [FREE], "variation": 1}],
            fallthrough=ld_rollout(50000, 50000),
        ),
        {"FALLTHROUGH"},
    ),
    "fixed": (
        ld_flag(rules=[{"id": "fixed", "clauses": [BETA], "variation": 1}]),
        set(),
    ),
    "off": (ld_flag(on=False, fallthrough=ld_rollout(50000, 50000)), set()),
    "prerequisite": (
        ld_flag(
            prerequisites=[{"key": "off", "variation": 1}],
            fallthrough=ld_rollout(50000, 50000),
        ),
        {"FALLTHROUGH"},  # (a rollout it never reaches: the prerequisite fails)
    ),
}


def part(r: Result) -> str:
    """The part of a LaunchDarkly flag that served ``r``, in its reason's words."""
    kind = str(r.reason["kind"])
    return f"{kind} {r.reason['ruleIndex']}" if kind == "RULE_MATCH" else kind


@pytest.mark.parametrize("key", list(LD_FLAGS))
def test_issue98_launchdarkly_counts_exactly_what_a_rollout_served(key: str) -> None:
    """Counted (identity in a split) if and only if a rollout served it, whatever else served an equal value."""
    snap = snapshot({k: f for k, (f, _) in LD_FLAGS.items()})
    found = splits(snap, key)
    ids = counted(found)
    rollouts = LD_FLAGS[key][1]
    assert bool(found) == bool(rollouts)
    plans = ["beta", "free", "pro"]
    served: Counter[tuple[str, bool]] = Counter()
    for i, context in enumerate(users(600)):
        plan = plans[i % 3]
        context = Context.from_dict({"kind": "user", "key": context.key, "plan": plan})
        r = result(snap, key, context)
        served[part(r), id(r) in ids] += 1
        assert (id(r) in ids) == (part(r) in rollouts), (key, r)
        if id(r) in ids:
            assert r.variation_index is not None
            assert ids[id(r)][1] == r.variation_index
    # each flag took the paths it has: the test sees what it says it does
    kinds = {p for p, _ in served}
    expected = {
        "fallthrough": {"FALLTHROUGH"},
        "rule": {"FALLTHROUGH", "RULE_MATCH 0", "RULE_MATCH 1"},
        "experiment": {"FALLTHROUGH"},
        "targets": {"TARGET_MATCH", "RULE_MATCH 0", "FALLTHROUGH"},
        "fixed": {"FALLTHROUGH", "RULE_MATCH 0"},
        "off": {"OFF"},
        "prerequisite": {"PREREQUISITE_FAILED"},
    }[key]
    assert kinds == expected


def test_issue98_results_equal_to_a_rollouts_are_other_objects() -> None:
    """A target, a fixed rule and the off variation equal by value to nothing counted; the split's objects are distinct from every other path's."""
    f, _ = LD_FLAGS["targets"]
    snap = snapshot({"f": f})
    flag = snap._flag("f")
    assert flag is not None
    found = splits(snap, "f")
    (split,) = found
    others = [
        flag.off_result,
        *(r for _, lookup in flag.targets for r in lookup.values()),
    ]
    others += [resolver.fixed for _, resolver in flag.rules if resolver.fixed]
    assert others
    assert not {id(r) for r in others} & set(counted(found))
    assert split.where == "the rollout of the fallthrough"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("weights", "shares"),
    [
        ((30000, 70000), (0.3, 0.7)),
        ((33333, 33333, 33334), (0.33333, 0.33333, 0.33334)),
        # under 100%: the last bucket takes the rest
        ((20000, 30000), (0.2, 0.8)),
        # over 100%: what is past 100% is never served
        ((60000, 60000, 10000), (0.6, 0.4)),
    ],
    ids=["30-70", "thirds", "under-100", "over-100"],
)
def test_issue98_a_rollouts_counts_over_10000_keys_match_its_weights(
    weights: tuple[int, ...], shares: tuple[float, ...]
) -> None:
    snap = snapshot({"f": ld_flag(fallthrough=ld_rollout(*weights))})
    (split,) = splits(snap, "f")
    assert split.weights == pytest.approx(shares)
    assert sum(split.weights or ()) == pytest.approx(1.0)
    ids = counted((split,))
    seen: Counter[int | None] = Counter()
    for context in users(KEYS):
        r = result(snap, "f", context)
        assert id(r) in ids
        seen[ids[id(r)][1]] += 1
    for r, share in zip(split.results, shares, strict=True):
        assert within_chance(seen[r.variation_index], KEYS, share), (seen, shares)


@pytest.mark.slow
def test_issue98_an_experiments_buckets_are_counted_tracked_or_not() -> None:
    f, _ = LD_FLAGS["experiment"]
    snap = snapshot({"f": f})
    (split,) = splits(snap, "f")
    assert split.weights == pytest.approx((0.4, 0.4, 0.2))
    assert split.where == "the experiment of the fallthrough"
    assert [r.reason.get("inExperiment", False) for r in split.results] == [
        True,
        True,
        False,
    ]
    ids = counted((split,))
    seen: Counter[int | None] = Counter()
    for context in users(KEYS):
        r = result(snap, "f", context)
        assert id(r) in ids
        seen[r.variation_index] += 1
    for at, share in enumerate((0.4, 0.4, 0.2)):
        assert within_chance(seen[at], KEYS, share), seen


def test_issue98_several_buckets_of_one_variation_are_one_entry_each() -> None:
    """The runtime sums by variation index; a bucket of no variation is left out."""
    rollout = {
        "rollout": {
            "variations": [
                {"variation": 0, "weight": 25000},
                {"variation": 1, "weight": 25000},
                {"variation": 0, "weight": 25000},
                {"variation": 9, "weight": 25000},  # no such variation
            ]
        }
    }
    snap = snapshot({"f": ld_flag(fallthrough=rollout)})
    (split,) = splits(snap, "f")
    assert [r.variation_index for r in split.results] == [0, 1, 0]
    assert split.weights == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert len({id(r) for r in split.results}) == 3


def unbucketed_flags() -> dict[str, Any]:
    """Rollouts some contexts cannot be bucketed by, written inline, by resolve, interpreted."""
    by_team = ld_rollout(50000, 50000, bucketBy="team")
    by_org = ld_rollout(50000, 50000, contextKind="org")
    never = {"attribute": "plan", "op": "in", "values": ["never"]}
    return {
        "team": ld_flag(fallthrough=by_team),
        "org": ld_flag(fallthrough=by_org),
        # a nested attribute: bucketed by Resolver.resolve, not inline
        "nested": ld_flag(
            fallthrough=ld_rollout(
                50000, 50000, bucketBy="/team/name", contextKind="user"
            )
        ),
        # an experiment: by Resolver.resolve too
        "experiment": ld_flag(
            fallthrough={
                "rollout": {
                    "kind": "experiment",
                    "contextKind": "org",
                    "variations": [
                        {"variation": 0, "weight": 50000},
                        {"variation": 1, "weight": 50000},
                    ],
                }
            }
        ),
        # too many clauses for generated code: the interpreter
        "interpreted": ld_flag(
            rules=[{"id": "r", "clauses": [never] * (MAX_CLAUSES + 1), "variation": 1}],
            fallthrough=by_team,
        ),
        # a first bucket of no weight: bucket -1 is served it, bucket 0 not
        "first-empty": ld_flag(
            fallthrough={
                "rollout": {
                    "bucketBy": "team",
                    "contextKind": "user",
                    "variations": [
                        {"variation": 2, "weight": 0},
                        {"variation": 0, "weight": 50000},
                        {"variation": 1, "weight": 50000},
                    ],
                }
            }
        ),
    }


@pytest.mark.parametrize(
    ("key", "context", "index", "equal_in_split"),
    [
        ("team", {"kind": "user", "key": "u"}, 0, True),
        ("team", {"kind": "user", "key": "u", "team": 1.5}, 0, True),
        ("team", {"kind": "user", "key": "u", "team": True}, 0, True),
        ("org", {"kind": "user", "key": "u"}, 0, True),
        ("nested", {"kind": "user", "key": "u", "team": "t"}, 0, True),
        # (an experiment's results say inExperiment: none is equal)
        ("experiment", {"kind": "user", "key": "u"}, 0, False),
        ("interpreted", {"kind": "user", "key": "u"}, 0, True),
        ("first-empty", {"kind": "user", "key": "u"}, 0, True),
        # (the bucket of no weight is in no split)
        ("first-empty", {"kind": "org", "key": "u"}, 2, False),
    ],
)
def test_issue98_a_context_a_rollout_cannot_bucket_is_served_an_uncounted_twin(
    key: str, context: dict[str, Any], index: int, equal_in_split: bool
) -> None:
    """LaunchDarkly's variation (bucket -1: the first bucket; bucket 0: the first with a weight), not counted."""
    snap = snapshot(unbucketed_flags())
    found = splits(snap, key)
    ids = counted(found)
    r = result(snap, key, Context.from_dict(context))
    assert r.variation_index == index
    assert r.reason["kind"] == "FALLTHROUGH"
    assert "inExperiment" not in r.reason
    assert id(r) not in ids
    # equal by value to the bucket's own result, which a bucketed context gets
    (split,) = found
    twin = [s for s in split.results if s == r]
    assert len(twin) == equal_in_split
    assert all(s is not r for s in split.results)


@pytest.mark.parametrize("key", ["team", "nested", "interpreted", "first-empty"])
def test_issue98_a_bucketed_context_is_counted_on_every_path(key: str) -> None:
    """The generated code, Resolver.resolve and the interpreter serve the split's own objects."""
    snap = snapshot(unbucketed_flags())
    ids = counted(splits(snap, key))
    seen: Counter[int | None] = Counter()
    for i in range(400):
        team: Any = {"name": f"t{i}"} if key == "nested" else f"t{i}"
        context = {"kind": "user", "key": "u", "team": team}
        r = result(snap, key, Context.from_dict(context))
        assert id(r) in ids
        seen[r.variation_index] += 1
    assert set(seen) == {0, 1}


def test_issue98_flags_without_rollouts_have_no_splits() -> None:
    snap = snapshot({k: f for k, (f, _) in LD_FLAGS.items()})
    for key in ("fixed", "off", "prerequisite"):
        assert key == "prerequisite" or splits(snap, key) == ()
    # (the prerequisite's own fallthrough is a rollout: counted when it serves)
    assert len(splits(snap, "prerequisite")) == 1


# ------------------------------------------------------------------ flagd

VARIANTS = {"on": True, "off": False, "blue": "blue"}


def flagd(targeting: Any = None, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        **fields,
    }
    if targeting is not None:
        spec["targeting"] = targeting
    return spec


BETA_RULE = {"==": [{"var": "plan"}, "beta"]}
FRACTIONAL = {"fractional": [["on", 25], ["off", 75]]}

# Each flag, and whether a fractional can serve it.
FLAGD_FLAGS: dict[str, tuple[dict[str, Any], bool]] = {
    "top": (flagd(FRACTIONAL), True),
    "in-if": (flagd({"if": [BETA_RULE, "off", FRACTIONAL]}), True),
    "nested-if": (
        flagd({"if": [BETA_RULE, {"if": [{"var": "ok"}, FRACTIONAL, "on"]}, "off"]}),
        True,
    ),
    "by-value": (
        flagd({"fractional": [{"var": "team"}, ["on", 50], ["off", 50]]}),
        True,
    ),
    "literal": (flagd({"if": [BETA_RULE, "on", "off"]}), False),
    "default": (flagd({"if": [BETA_RULE, "on", None]}), False),
    "static": (flagd(), False),
    "disabled": (flagd(FRACTIONAL, state="DISABLED"), False),
}


def flagd_users(n: int) -> list[Context]:
    plans = ["beta", "free"]
    return [
        Context.from_dict(
            {
                "kind": "user",
                "key": f"user-{i}",
                "plan": plans[i % 2],
                "ok": i % 3 != 0,
                "team": f"team-{i}",
            }
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("key", list(FLAGD_FLAGS))
def test_issue98_flagd_counts_exactly_what_a_fractional_served(key: str) -> None:
    snap = flagd_snapshot({k: f for k, (f, _) in FLAGD_FLAGS.items()})
    found = splits(snap, key)
    ids = counted(found)
    assert bool(found) == FLAGD_FLAGS[key][1]
    outcomes: Counter[tuple[str, bool]] = Counter()
    for context in flagd_users(300):
        r = result(snap, key, context)
        counts = id(r) in ids
        plan, ok = context.get("plan"), context.get("ok")
        by_chance = {
            "top": True,
            "in-if": plan != "beta",
            "nested-if": plan == "beta" and ok is True,
            "by-value": True,
        }.get(key, False)
        assert counts == by_chance, (key, context, r)
        outcomes[str(r.reason["kind"]), counts] += 1
    kinds = {kind for kind, _ in outcomes}
    assert kinds == {
        "static": {"STATIC"},
        "disabled": {"DISABLED"},
        "default": {"TARGETING_MATCH", "DEFAULT"},
    }.get(key, {"TARGETING_MATCH"})


def test_issue98_a_variant_the_rule_names_equals_the_fractionals_but_is_not_it() -> (
    None
):
    """Same value, index and reason (the answers are byte-identical), another object."""
    snap = flagd_snapshot({"f": flagd({"if": [BETA_RULE, "on", FRACTIONAL]})})
    ids = counted(splits(snap, "f"))
    named = by_chance = None
    for context in flagd_users(40):
        r = result(snap, "f", context)
        if r.value is True:
            if id(r) in ids:
                by_chance = r
            else:
                named = r
    assert named is not None and by_chance is not None
    assert named == by_chance and named is not by_chance
    assert named.reason == by_chance.reason == {"kind": "TARGETING_MATCH"}
    beta = Context.from_dict({"kind": "user", "key": "user-0", "plan": "beta"})
    other = Context.from_dict({"kind": "user", "key": "user-0", "plan": "free"})
    if result(snap, "f", other).value is True:  # (both serve "on": compare the answers)
        assert snap.variation_detail("f", beta, None) == snap.variation_detail(
            "f", other, None
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("targeting", "shares"),
    [
        (FRACTIONAL, {"on": 0.25, "off": 0.75}),
        ({"if": [{"var": "never"}, "off", FRACTIONAL]}, {"on": 0.25, "off": 0.75}),
        (
            {"fractional": [{"var": "team"}, ["on", 1], ["off", 1], ["blue", 2]]},
            {"on": 0.25, "off": 0.25, "blue": 0.5},
        ),
        # a name in two entries: one result, the weights summed; a name no
        # variant has: left out, the shares those of the others
        (
            {"fractional": [["on", 30], ["off", 40], ["on", 30], ["nope", 100]]},
            {"on": 0.6, "off": 0.4},
        ),
    ],
    ids=["top", "in-if", "by-value", "repeated-and-unknown"],
)
def test_issue98_a_fractionals_counts_over_10000_keys_match_its_weights(
    targeting: Any, shares: dict[str, float]
) -> None:
    snap = flagd_snapshot({"f": flagd(targeting, variants=VARIANTS)})
    (split,) = splits(snap, "f")
    names = list(VARIANTS)
    assert split.weights is not None
    assert {
        names[r.variation_index or 0]: w
        for r, w in zip(split.results, split.weights, strict=True)
    } == pytest.approx(shares)
    ids = counted((split,))
    seen: Counter[str] = Counter()
    for context in flagd_users(KEYS):
        r = result(snap, "f", context)
        if id(r) in ids:
            seen[names[r.variation_index or 0]] += 1
    total = sum(seen.values())
    # an unknown name is an error (GENERAL), not counted
    assert total == (
        KEYS if "nope" not in str(targeting) else pytest.approx(KEYS / 2, rel=0.1)
    )
    for name, share in shares.items():
        assert within_chance(seen[name], total, share), (seen, shares)


def test_issue98_a_fractional_weighed_per_request_has_no_weights() -> None:
    targeting = {"fractional": [["on", {"var": "w"}], ["off", 50]]}
    snap = flagd_snapshot({"f": flagd(targeting)})
    (split,) = splits(snap, "f")
    assert split.weights is None
    assert split.where == "targeting: fractional"
    ids = counted((split,))
    context = Context.from_dict({"kind": "user", "key": "u", "w": 50})
    assert id(result(snap, "f", context)) in ids


def test_issue98_a_fractional_without_a_targeting_key_is_the_default_not_counted() -> (
    None
):
    snap = flagd_snapshot({"f": flagd(FRACTIONAL)})
    ids = counted(splits(snap, "f"))
    keyless = Context._given(None, {"plan": "free"})
    r = result(snap, "f", keyless)
    assert r.reason == {"kind": "DEFAULT"}
    assert id(r) not in ids


def test_issue98_where_names_the_fractional() -> None:
    snap = flagd_snapshot(
        {k: f for k, (f, _) in FLAGD_FLAGS.items() if FLAGD_FLAGS[k][1]}
    )
    assert {
        k: [s.where for s in splits(snap, k)] for k in ("top", "in-if", "nested-if")
    } == {
        "top": ["targeting: fractional"],
        "in-if": ["targeting: if[2]: fractional"],
        "nested-if": ["targeting: if[1]: if[1]: fractional"],
    }


def test_issue98_a_fractional_an_evaluator_holds_is_counted() -> None:
    """A ``$ref`` to a shared evaluator is the fractional itself once linked."""
    document = {
        "$evaluators": {"half": {"fractional": [["on", 50], ["off", 50]]}},
        "flags": {"f": flagd({"if": [BETA_RULE, "on", {"$ref": "half"}]})},
    }
    snap = snapshot_from_data(dict(flagd_flags(document)))
    (split,) = splits(snap, "f")
    assert split.where == "targeting: if[2]: fractional"
    ids = counted((split,))
    free = Context.from_dict({"kind": "user", "key": "u", "plan": "free"})
    beta = Context.from_dict({"kind": "user", "key": "u", "plan": "beta"})
    assert id(result(snap, "f", free)) in ids
    assert id(result(snap, "f", beta)) not in ids


def test_issue98_a_large_targeting_built_ahead_keeps_its_splits() -> None:
    """A targeting the store builds on a worker thread (``prebuild``) has the same splits."""
    tests = [{"==": [{"var": "plan"}, f"plan-{i}"]} for i in range(700)]
    chain: list[Any] = []
    for test in tests:
        chain += [test, "off"]
    read = dict(flagd_flags({"flags": {"f": flagd({"if": [*chain, FRACTIONAL]})}}))
    spec = read["f"]["flagd"]
    flags: dict[str, object] = dict(read)
    assert FLAGD.is_large(spec)
    FLAGD.prebuild([("f", spec)])
    assert id(spec) in _prebuilt
    snap = snapshot_from_data(flags)
    assert id(spec) not in _prebuilt  # (its compile took what was built)
    (split,) = splits(snap, "f")
    assert split.weights == pytest.approx((0.25, 0.75))
    context = Context.from_dict({"kind": "user", "key": "u", "plan": "free"})
    assert id(result(snap, "f", context)) in counted((split,))


def test_issue98_the_toy_system_assigns_nothing_by_chance() -> None:
    with registered_toy():
        snap = snapshot_from_data({"t": toy_flag("t", 1)})
        flag = snap._flag("t")
        assert flag is not None and flag.system is TOY
        assert splits_of(flag) == ()


def test_issue98_a_rollout_that_never_serves_is_no_split() -> None:
    """An invalid ``bucketBy`` reference: every evaluation reaching it is MALFORMED_FLAG."""
    bad = ld_rollout(50000, 50000, bucketBy="/", contextKind="user")
    snap = snapshot({"f": ld_flag(fallthrough=bad)})
    assert splits(snap, "f") == ()
    r = result(snap, "f", Context.create("u"))
    assert r.reason == {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}


@pytest.mark.parametrize(("depth", "found"), [(15, 1), (16, 0)])
def test_issue98_a_fractional_in_up_to_15_nested_ifs_is_counted(
    depth: int, found: int
) -> None:
    """Deeper, it serves the flag's own results (not counted); the answer is the same."""
    node: Any = FRACTIONAL
    for _ in range(depth):
        node = {"if": [{"var": "ok"}, node, "off"]}
    snap = flagd_snapshot({"f": flagd(node)})
    assert len(splits(snap, "f")) == found
    answers = Counter(
        snap.variation("f", context, None) for context in flagd_users(300)
    )
    assert set(answers) == {True, False}
