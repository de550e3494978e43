"""Evaluation reasons and results, table-driven (evaluation.md §4-§11)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from aioflags import Context, EvaluationDetail, FlagSnapshot
from aioflags._datasystem._store import snapshot_from_data

USER = Context.create(
    "u1",
    attributes={
        "email": "a@example.com",
        "age": 30,
        "tags": ["x", "y"],
        "nested": {"a": {"b": "deep"}},
        "n": 3.0,
    },
)
ORG = Context.create("o1", "org", attributes={"plan": "pro"})
MULTI = Context.create_multi(USER, ORG)


def flag(key: str = "f", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": key,
        "version": 1,
        "on": True,
        "variations": ["a", "b", "c"],
        "offVariation": 1,
        "fallthrough": {"variation": 0},
    }
    base.update(fields)
    return base


def detail(
    f: dict[str, Any],
    ctx: Context | None = USER,
    *,
    flags: dict[str, Any] | None = None,
    segments: dict[str, Any] | None = None,
) -> tuple[Any, int | None, dict[str, Any]]:
    snap = snapshot_from_data({f["key"]: f, **(flags or {})}, segments)
    d = snap.variation_detail(f["key"], ctx, "dflt")
    return d.value, d.variation_index, d.reason


def clause(
    attribute: str, op: str, *values: Any, negate: bool = False, kind: str | None = None
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "attribute": attribute,
        "op": op,
        "values": list(values),
        "negate": negate,
    }
    if kind is not None:
        c["contextKind"] = kind
    return c


def rule(*clauses: dict[str, Any], variation: int = 2, **extra: Any) -> dict[str, Any]:
    return {"id": "r0", "clauses": list(clauses), "variation": variation, **extra}


MALFORMED = {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}

CASES: list[tuple[str, dict[str, Any], Any, tuple[Any, int | None, dict[str, Any]]]] = [
    ("off", flag(on=False), USER, ("b", 1, {"kind": "OFF"})),
    (
        "off-no-off-variation",
        flag(on=False, offVariation=None),
        USER,
        ("dflt", None, {"kind": "OFF"}),
    ),
    (
        "off-bad-off-variation",
        flag(on=False, offVariation=9),
        USER,
        ("dflt", None, MALFORMED),
    ),
    (
        "off-negative-off-variation",
        flag(on=False, offVariation=-1),
        USER,
        ("dflt", None, MALFORMED),
    ),
    ("fallthrough", flag(), USER, ("a", 0, {"kind": "FALLTHROUGH"})),
    (
        "fallthrough-bad-index",
        flag(fallthrough={"variation": 3}),
        USER,
        ("dflt", None, MALFORMED),
    ),
    ("fallthrough-empty", flag(fallthrough={}), USER, ("dflt", None, MALFORMED)),
    (
        "fallthrough-empty-rollout",
        flag(fallthrough={"rollout": {"variations": []}}),
        USER,
        ("dflt", None, MALFORMED),
    ),
    (
        "target",
        flag(targets=[{"variation": 2, "values": ["u1"]}]),
        USER,
        ("c", 2, {"kind": "TARGET_MATCH"}),
    ),
    (
        "target-no-match",
        flag(targets=[{"variation": 2, "values": ["u2"]}]),
        USER,
        ("a", 0, {"kind": "FALLTHROUGH"}),
    ),
    (
        "target-bad-index",
        flag(targets=[{"variation": 7, "values": ["u1"]}]),
        USER,
        ("dflt", None, MALFORMED),
    ),
    (
        "context-target-other-kind",
        flag(contextTargets=[{"contextKind": "org", "variation": 2, "values": ["o1"]}]),
        MULTI,
        ("c", 2, {"kind": "TARGET_MATCH"}),
    ),
    (
        "context-target-user-points-into-targets",
        flag(
            targets=[{"variation": 1, "values": ["u1"]}],
            contextTargets=[{"contextKind": "user", "variation": 1, "values": []}],
        ),
        USER,
        ("b", 1, {"kind": "TARGET_MATCH"}),
    ),
    (
        "context-target-user-ignores-own-values",
        flag(
            contextTargets=[{"contextKind": "user", "variation": 1, "values": ["u1"]}]
        ),
        USER,
        ("a", 0, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rule-match",
        flag(rules=[rule(clause("email", "endsWith", "@example.com"))]),
        USER,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "rule-no-id",
        flag(rules=[{"clauses": [], "variation": 2}]),
        USER,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0}),
    ),
    (
        "rule-empty-clauses-matches",
        flag(rules=[rule()]),
        USER,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "rule-negate",
        flag(rules=[rule(clause("email", "endsWith", "@example.com", negate=True))]),
        USER,
        ("a", 0, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rule-missing-attribute-never-matches-even-negated",
        flag(rules=[rule(clause("missing", "in", "x", negate=True))]),
        USER,
        ("a", 0, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rule-missing-kind-never-matches-even-negated",
        flag(rules=[rule(clause("plan", "in", "x", negate=True, kind="org"))]),
        USER,
        ("a", 0, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rule-array-any-element",
        flag(rules=[rule(clause("tags", "in", "y"))]),
        USER,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "rule-path-reference",
        flag(rules=[rule(clause("/nested/a/b", "in", "deep", kind="user"))]),
        USER,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "rule-literal-reference-with-slash",
        flag(rules=[rule(clause("/nested/a/b", "in", "deep"))]),
        USER,
        ("a", 0, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rule-kind-match",
        flag(rules=[rule(clause("kind", "in", "org"))]),
        MULTI,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "rule-kind-match-negated",
        flag(rules=[rule(clause("kind", "in", "org", negate=True))]),
        USER,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "rule-anonymous-defaults-false",
        flag(rules=[rule(clause("anonymous", "in", False))]),
        USER,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "rule-other-kind",
        flag(rules=[rule(clause("plan", "in", "pro", kind="org"))]),
        MULTI,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "rule-invalid-reference-aborts",
        flag(rules=[rule(clause("/a//b", "in", "x", kind="user"))]),
        USER,
        ("dflt", None, MALFORMED),
    ),
    (
        "rule-empty-attribute-aborts",
        flag(rules=[rule(clause("", "in", "x"))]),
        USER,
        ("dflt", None, MALFORMED),
    ),
    (
        "rule-invalid-reference-other-kind-is-no-match",
        flag(rules=[rule(clause("/a//b", "in", "x", kind="org"))]),
        USER,
        ("a", 0, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rule-bad-index-only-when-reached",
        flag(rules=[rule(clause("email", "in", "nope"), variation=9)]),
        USER,
        ("a", 0, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rule-without-variation-or-rollout",
        flag(rules=[{"clauses": []}]),
        USER,
        ("dflt", None, MALFORMED),
    ),
    (
        "unknown-operator-negated-matches",
        flag(rules=[rule(clause("email", "nope", "x", negate=True))]),
        USER,
        ("c", 2, {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r0"}),
    ),
    (
        "experiment",
        flag(
            fallthrough={
                "rollout": {
                    "kind": "experiment",
                    "variations": [{"variation": 1, "weight": 100000}],
                }
            }
        ),
        USER,
        ("b", 1, {"kind": "FALLTHROUGH", "inExperiment": True}),
    ),
    (
        "experiment-untracked",
        flag(
            fallthrough={
                "rollout": {
                    "kind": "experiment",
                    "variations": [
                        {"variation": 1, "weight": 100000, "untracked": True}
                    ],
                }
            }
        ),
        USER,
        ("b", 1, {"kind": "FALLTHROUGH"}),
    ),
    (
        "experiment-context-lacks-kind",
        flag(
            fallthrough={
                "rollout": {
                    "kind": "experiment",
                    "contextKind": "org",
                    "variations": [{"variation": 1, "weight": 100000}],
                }
            }
        ),
        USER,
        ("b", 1, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rollout-weights-short-takes-last",
        flag(
            fallthrough={
                "rollout": {
                    "variations": [
                        {"variation": 0, "weight": 0},
                        {"variation": 2, "weight": 0},
                    ]
                }
            }
        ),
        USER,
        ("c", 2, {"kind": "FALLTHROUGH"}),
    ),
    (
        "rollout-bad-bucket-by-aborts",
        flag(
            fallthrough={
                "rollout": {
                    "contextKind": "user",
                    "bucketBy": "/",
                    "variations": [{"variation": 0, "weight": 100000}],
                }
            }
        ),
        USER,
        ("dflt", None, MALFORMED),
    ),
    (
        "rollout-bad-index",
        flag(
            fallthrough={
                "rollout": {"variations": [{"variation": 5, "weight": 100000}]}
            }
        ),
        USER,
        ("dflt", None, MALFORMED),
    ),
]


@pytest.mark.parametrize(
    ("name", "f", "ctx", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_evaluation(
    name: str,
    f: dict[str, Any],
    ctx: Context,
    expected: tuple[Any, int | None, dict[str, Any]],
) -> None:
    assert detail(f, ctx) == expected


class TestPrerequisites:
    def test_met(self) -> None:
        p = flag("p", fallthrough={"variation": 1})
        f = flag(prerequisites=[{"key": "p", "variation": 1}])
        assert detail(f, flags={"p": p}) == ("a", 0, {"kind": "FALLTHROUGH"})

    def test_wrong_variation(self) -> None:
        p = flag("p")
        f = flag(prerequisites=[{"key": "p", "variation": 1}])
        assert detail(f, flags={"p": p}) == (
            "b",
            1,
            {"kind": "PREREQUISITE_FAILED", "prerequisiteKey": "p"},
        )

    def test_off_prerequisite_fails_even_with_matching_off_variation(self) -> None:
        p = flag("p", on=False, offVariation=1)
        f = flag(prerequisites=[{"key": "p", "variation": 1}])
        assert detail(f, flags={"p": p})[2]["kind"] == "PREREQUISITE_FAILED"

    def test_missing_and_deleted(self) -> None:
        f = flag(prerequisites=[{"key": "gone", "variation": 0}])
        assert detail(f)[2] == {
            "kind": "PREREQUISITE_FAILED",
            "prerequisiteKey": "gone",
        }
        assert (
            detail(f, flags={"gone": {"key": "gone", "version": 2, "deleted": True}})[
                2
            ]["kind"]
            == "PREREQUISITE_FAILED"
        )

    def test_malformed_prerequisite_is_a_failure_not_an_abort(self) -> None:
        p = flag("p", fallthrough={"variation": 99})
        f = flag(prerequisites=[{"key": "p", "variation": 0}])
        assert detail(f, flags={"p": p})[2] == {
            "kind": "PREREQUISITE_FAILED",
            "prerequisiteKey": "p",
        }

    def test_self_cycle_aborts(self) -> None:
        f = flag(prerequisites=[{"key": "f", "variation": 0}])
        assert detail(f) == ("dflt", None, MALFORMED)

    def test_cycle_through_chain_aborts_parent(self) -> None:
        a = flag("a", prerequisites=[{"key": "b", "variation": 0}])
        b = flag("b", prerequisites=[{"key": "a", "variation": 0}])
        assert detail(a, flags={"b": b}) == ("dflt", None, MALFORMED)

    def test_diamond_is_not_a_cycle(self) -> None:
        leaf = flag("leaf")
        left = flag("left", prerequisites=[{"key": "leaf", "variation": 0}])
        right = flag("right", prerequisites=[{"key": "leaf", "variation": 0}])
        top = flag(
            "top",
            prerequisites=[
                {"key": "left", "variation": 0},
                {"key": "right", "variation": 0},
            ],
        )
        assert detail(top, flags={"leaf": leaf, "left": left, "right": right}) == (
            "a",
            0,
            {"kind": "FALLTHROUGH"},
        )


class TestSegments:
    def seg(self, **fields: Any) -> dict[str, Any]:
        return {"key": "s", "version": 1, **fields}

    def match(
        self, seg: dict[str, Any], ctx: Context = USER, **extra_segments: Any
    ) -> Any:
        f = flag(rules=[rule(clause("", "segmentMatch", "s"))])
        return detail(f, ctx, segments={"s": seg, **extra_segments})

    def test_included(self) -> None:
        assert self.match(self.seg(included=["u1"]))[1] == 2

    def test_inclusion_wins_over_exclusion(self) -> None:
        assert self.match(self.seg(included=["u1"], excluded=["u1"]))[1] == 2

    def test_excluded_beats_rules(self) -> None:
        assert self.match(self.seg(excluded=["u1"], rules=[{"clauses": []}]))[1] == 0

    def test_included_contexts(self) -> None:
        assert (
            self.match(
                self.seg(includedContexts=[{"contextKind": "org", "values": ["o1"]}]),
                MULTI,
            )[1]
            == 2
        )

    def test_included_contexts_of_a_nested_segment(self) -> None:
        # (nested: the careful path's membership, not the compiled one's)
        seg = self.seg(
            includedContexts=[{"contextKind": "org", "values": ["o1"]}],
            rules=[{"clauses": [clause("", "segmentMatch", "t")]}],
        )
        t = {"key": "t", "version": 1, "included": ["someone-else"]}
        assert self.match(seg, USER, t=t)[1] != 2  # no org part to be included
        assert self.match(seg, MULTI, t=t)[1] == 2

    def test_excluded_contexts(self) -> None:
        seg = self.seg(
            excludedContexts=[{"contextKind": "org", "values": ["o1"]}],
            rules=[{"clauses": []}],
        )
        assert self.match(seg, MULTI)[1] == 0

    def test_rule(self) -> None:
        seg = self.seg(rules=[{"clauses": [clause("email", "contains", "example")]}])
        assert self.match(seg)[1] == 2

    def test_weighted_rule(self) -> None:
        assert self.match(self.seg(rules=[{"clauses": [], "weight": 100000}]))[1] == 2
        assert self.match(self.seg(rules=[{"clauses": [], "weight": 0}]))[1] == 0

    def test_weighted_rule_context_lacks_kind_matches(self) -> None:
        seg = self.seg(
            rules=[{"clauses": [], "weight": 1, "rolloutContextKind": "org"}]
        )
        assert self.match(seg)[1] == 2

    def test_missing_and_deleted_segment(self) -> None:
        f = flag(rules=[rule(clause("", "segmentMatch", "nope", 5))])
        assert detail(f)[1] == 0
        assert self.match({"key": "s", "version": 2, "deleted": True})[1] == 0

    def test_nested(self) -> None:
        inner = {"key": "inner", "version": 1, "included": ["u1"]}
        seg = self.seg(rules=[{"clauses": [clause("", "segmentMatch", "inner")]}])
        assert self.match(seg, inner=inner)[1] == 2

    def test_cycle_aborts(self) -> None:
        seg = self.seg(rules=[{"clauses": [clause("", "segmentMatch", "s")]}])
        assert self.match(seg) == ("dflt", None, MALFORMED)

    def test_cycle_not_reached_when_keys_decide(self) -> None:
        seg = self.seg(
            included=["u1"], rules=[{"clauses": [clause("", "segmentMatch", "s")]}]
        )
        assert self.match(seg)[1] == 2

    def test_unbounded_reports_not_configured(self) -> None:
        seg = self.seg(
            unbounded=True,
            generation=1,
            included=["u1"],
            rules=[{"clauses": [clause("email", "contains", "a")]}],
        )
        assert self.match(seg) == (
            "c",
            2,
            {
                "kind": "RULE_MATCH",
                "ruleIndex": 0,
                "ruleId": "r0",
                "bigSegmentsStatus": "NOT_CONFIGURED",
            },
        )

    def test_unbounded_without_generation(self) -> None:
        seg = self.seg(unbounded=True, rules=[{"clauses": []}])
        assert self.match(seg) == (
            "a",
            0,
            {"kind": "FALLTHROUGH", "bigSegmentsStatus": "NOT_CONFIGURED"},
        )

    def test_unbounded_other_kind_records_nothing(self) -> None:
        seg = self.seg(unbounded=True, generation=1, unboundedContextKind="org")
        assert self.match(seg) == ("a", 0, {"kind": "FALLTHROUGH"})

    def test_malformed_segment_makes_the_flag_malformed(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        assert self.match(self.seg(included="u1")) == ("dflt", None, MALFORMED)
        assert "Segment 's' is malformed" in caplog.text


class TestErrors:
    def test_client_not_ready(self) -> None:
        d = FlagSnapshot().variation_detail("f", USER, 1)
        assert (d.value, d.variation_index, d.reason) == (
            1,
            None,
            {"kind": "ERROR", "errorKind": "CLIENT_NOT_READY"},
        )
        assert d.error_kind == "CLIENT_NOT_READY" and d.is_default_value

    def test_a_snapshot_that_is_not_ready_serves_no_flag(self) -> None:
        ready = snapshot_from_data({"f": flag()}, {})
        snap = FlagSnapshot(
            ready._data.flags, ready._data.segments
        )  # initialized=False
        assert ready.variation("f", USER, 1) != 1
        assert snap.variation("f", USER, 1) == 1
        assert snap.bool_variation("f", USER, True) is True
        assert snap.variation_detail("f", USER, 1).error_kind == "CLIENT_NOT_READY"
        assert snap.flag_keys == frozenset()

    @pytest.mark.parametrize("ctx", [None, Context.create("")])
    def test_invalid_context(self, ctx: Context | None) -> None:
        assert detail(flag(), ctx)[2] == {
            "kind": "ERROR",
            "errorKind": "USER_NOT_SPECIFIED",
        }

    def test_invalid_context_wins_over_missing_flag(self) -> None:
        snap = snapshot_from_data({})
        assert snap.variation_detail("nope", None, 0).error_kind == "USER_NOT_SPECIFIED"

    def test_flag_not_found(self) -> None:
        snap = snapshot_from_data({"d": {"key": "d", "version": 1, "deleted": True}})
        assert snap.variation_detail("nope", USER, 0).error_kind == "FLAG_NOT_FOUND"
        assert snap.variation_detail("d", USER, 0).error_kind == "FLAG_NOT_FOUND"
        assert snap.variation("nope", USER, 7) == 7

    @pytest.mark.parametrize(
        "bad",
        [
            {"on": "yes"},
            {"variations": "x"},
            {"offVariation": 1.0},
            {"targets": [5]},
            {"rules": [{"clauses": "x"}]},
            {"prerequisites": [{"key": 1, "variation": 0}]},
            {"version": "1"},
            {"debugEventsUntilDate": "x"},
            {"targets": [{"variation": 0, "values": [1]}]},
        ],
        ids=lambda b: next(iter(b)),
    )
    def test_malformed_json_is_isolated_and_logged_once(
        self, bad: dict[str, Any], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, "aioflags")
        snap = snapshot_from_data({"bad": flag("bad", **bad), "good": flag("good")})
        for _ in range(3):
            assert snap.variation_detail("bad", USER, "d").reason == MALFORMED
        assert snap.variation("good", USER, "d") == "a"
        assert caplog.text.count("Flag 'bad' is malformed") == 1

    def test_not_an_object(self) -> None:
        snap = snapshot_from_data({"bad": 5, "seg-user": flag("seg-user")}, {"s": 5})
        assert snap.variation_detail("bad", USER, "d").reason == MALFORMED

    def test_unexpected_exception_is_exception_reason(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A number too large for a float raises inside evaluation, in the
        # generic test (float(v)): a bound of 2**53 or more has no inline form.
        f = flag(rules=[rule(clause("big", "lessThan", 2**60))])
        ctx = Context.create("u", attributes={"big": 10**400})
        assert detail(f, ctx)[2] == {"kind": "ERROR", "errorKind": "EXCEPTION"}
        assert "Unexpected error evaluating flag 'f'" in caplog.text


class TestTyped:
    snap = snapshot_from_data(
        {
            "b": flag("b", variations=[True, False]),
            "i": flag("i", variations=[2.5, 1]),
            "k": flag("k", variations=[3]),
            "s": flag("s"),
            "j": flag("j", variations=[{"a": 1}]),
            "n": flag("n", variations=[None]),
            "off": flag("off", on=False, offVariation=None),
        }
    )

    def test_matching_types(self) -> None:
        s = self.snap
        assert s.bool_variation("b", USER, False) is True
        assert s.int_variation("i", USER, 0) == 2
        assert s.float_variation("i", USER, 0.0) == 2.5
        assert s.string_variation("s", USER, "") == "a"
        assert s.json_variation("j", USER, {}) == {"a": 1}
        d = s.float_variation_detail("i", USER, 0.0)
        assert (d.value, d.variation_index) == (2.5, 0)

    def test_int_method_on_int_and_float_method_on_int(self) -> None:
        snap = snapshot_from_data({"i": flag("i", variations=[3])})
        assert snap.float_variation("i", USER, 0.0) == 3.0
        assert isinstance(snap.float_variation("i", USER, 0.0), float)
        assert snap.int_variation_detail("i", USER, 0).value == 3

    @pytest.mark.parametrize(
        ("method", "key", "default"),
        [
            ("bool_variation_detail", "s", False),
            ("int_variation_detail", "b", 0),
            ("float_variation_detail", "s", 0.0),
            ("string_variation_detail", "b", ""),
            ("string_variation_detail", "n", ""),
        ],
    )
    def test_wrong_type(self, method: str, key: str, default: Any) -> None:
        d = getattr(self.snap, method)(key, USER, default)
        assert (d.value, d.variation_index, d.reason) == (
            default,
            None,
            {"kind": "ERROR", "errorKind": "WRONG_TYPE"},
        )

    @pytest.mark.parametrize("kind", ["bool", "int", "float", "string", "json"])
    @pytest.mark.parametrize("default", [False, 7, 7.5, "d", None, {"d": 1}])
    def test_values_agree_with_details(self, kind: str, default: Any) -> None:
        """The value methods' fast path says what the detail methods say."""
        value = getattr(self.snap, f"{kind}_variation")
        detail = getattr(self.snap, f"{kind}_variation_detail")
        for key in ("b", "i", "k", "s", "j", "n", "off", "missing"):
            got, expected = value(key, USER, default), detail(key, USER, default).value
            assert got == expected and type(got) is type(expected), (kind, key)

    def test_no_index_skips_the_type_check(self) -> None:
        d = self.snap.bool_variation_detail("off", USER, False)
        assert d.reason == {"kind": "OFF"} and d.value is False
        assert self.snap.json_variation_detail("j", USER, None).value == {"a": 1}

    def test_none_default_skips_the_check(self) -> None:
        result: object = self.snap.string_variation("b", USER, None)  # type: ignore[arg-type]
        assert result is True

    def test_reason_is_a_read_only_dict(self) -> None:
        import json
        import pickle

        d = self.snap.variation_detail("s", USER, "")
        assert isinstance(d.reason, dict)
        assert d.reason == {"kind": "FALLTHROUGH"}
        assert json.dumps(d.reason) == '{"kind": "FALLTHROUGH"}'
        mutations: list[Callable[[Any], object]] = [
            lambda r: r.__setitem__("kind", "X"),
            lambda r: r.update(x=1),
            lambda r: r.pop("kind"),
            lambda r: r.clear(),
            lambda r: r.setdefault("x", 1),
            lambda r: r.popitem(),
            lambda r: r.__delitem__("kind"),
        ]
        for mutate in mutations:
            with pytest.raises(TypeError, match="read-only"):
                mutate(d.reason)
        copy = d.reason.copy()
        copy["kind"] = "MINE"
        assert type(copy) is dict
        assert pickle.loads(pickle.dumps(d.reason)) == d.reason
        assert self.snap.variation_detail("s", USER, "").reason == {
            "kind": "FALLTHROUGH"
        }

    def test_a_result_handed_out_as_detail_behaves_as_an_evaluation_detail(
        self,
    ) -> None:
        import copy
        import dataclasses
        import pickle

        d = self.snap.variation_detail("s", USER, "")
        # A flag's own result, shared between evaluations...
        assert self.snap.variation_detail("s", USER, "") is d
        # ...that is an EvaluationDetail to every reader.
        built = EvaluationDetail(
            value=d.value, variation_index=d.variation_index, reason=d.reason
        )
        assert isinstance(d, EvaluationDetail)
        assert d == built and built == d
        assert not d != built  # noqa: SIM202 - __ne__ too
        assert repr(d) == repr(built)
        assert repr(d).startswith("EvaluationDetail(value=")
        for copied in (pickle.loads(pickle.dumps(d)), copy.copy(d), copy.deepcopy(d)):
            assert type(copied) is EvaluationDetail
            assert copied == d
        changed = d.__replace__(value="other")
        assert type(changed) is EvaluationDetail
        assert changed.value == "other"
        with pytest.raises(TypeError, match="no field"):
            d.__replace__(experiment=True)
        with pytest.raises(dataclasses.FrozenInstanceError):
            d.value = "x"
        with pytest.raises(TypeError):  # the reason is a dict, as before
            hash(d)
        # No variation: the caller's default, in a detail built for this call.
        off = self.snap.variation_detail("off", USER, "mine")
        assert off.value == "mine" and off.variation_index is None
        assert type(off) is EvaluationDetail


class TestAllFlagsState:
    def test_shape(self) -> None:
        snap = snapshot_from_data(
            {
                "a": flag("a", trackEvents=True, debugEventsUntilDate=5),
                "b": flag("b", on=False, offVariation=None, clientSide=True),
                "c": flag(
                    "c",
                    prerequisites=[
                        {"key": "a", "variation": 0},
                        {"key": "missing", "variation": 0},
                    ],
                ),
                "d": {"key": "d", "version": 3, "deleted": True},
                "e": flag(
                    "e",
                    fallthrough={
                        "rollout": {
                            "kind": "experiment",
                            "variations": [{"variation": 0, "weight": 100000}],
                        }
                    },
                ),
            }
        )
        state = snap.all_flags_state(USER)
        assert state.valid
        assert state.to_dict() == {
            "a": "a",
            "b": None,
            "c": "b",
            "e": "a",
            "$flagsState": {
                "a": {
                    "variation": 0,
                    "version": 1,
                    "trackEvents": True,
                    "debugEventsUntilDate": 5,
                },
                "b": {"version": 1},
                "c": {"variation": 1, "version": 1, "prerequisites": ["a", "missing"]},
                "e": {
                    "variation": 0,
                    "version": 1,
                    "reason": {"kind": "FALLTHROUGH", "inExperiment": True},
                    "trackEvents": True,
                    "trackReason": True,
                },
            },
            "$valid": True,
        }
        assert state.get_flag_value("a") == "a"
        assert state.get_flag_reason("a") is None
        assert state.get_flag_reason("e") == {
            "kind": "FALLTHROUGH",
            "inExperiment": True,
        }
        assert '"$valid":true' in state.to_json()
        assert json.loads(state.to_json()) == state.to_dict()
        assert state == snap.all_flags_state(USER)
        assert "flags=4" in repr(state)

    def test_the_state_is_built_on_first_read_and_copied_out(self) -> None:
        snap = snapshot_from_data(
            {
                "a": flag("a", trackEvents=True),
                "c": flag("c", prerequisites=[{"key": "a", "variation": 1}]),
                "k": flag("k", on=False),
            }
        )
        expected = {
            "a": "a",
            "c": "b",
            "k": "b",
            "$flagsState": {
                "a": {"variation": 0, "version": 1, "trackEvents": True},
                "c": {"variation": 1, "version": 1, "prerequisites": ["a"]},
                "k": {"variation": 1, "version": 1},
            },
            "$valid": True,
        }
        # Each way in first: the same state, whichever read builds it.
        reads: list[Callable[[Any], object]] = [
            lambda s: s.get_flag_value("a"),
            lambda s: s.get_flag_reason("a"),
            lambda s: s.to_dict(),
            lambda s: s.to_json(),
            repr,
        ]
        text = json.dumps(expected, separators=(",", ":"))
        for read in reads:
            for with_reasons in (False, True):
                state = snap.all_flags_state(USER, with_reasons=with_reasons)
                read(state)
                # to_json() joins kept pieces: json.dumps' very text
                assert state.to_json() == json.dumps(
                    state.to_dict(), separators=(",", ":")
                )
            state = snap.all_flags_state(USER)
            read(state)
            assert state.to_dict() == expected
            assert state.to_json() == text
        # The entries are shared between calls: to_dict hands out copies.
        out = snap.all_flags_state(USER).to_dict()
        out["$flagsState"]["c"]["prerequisites"].append("x")
        out["$flagsState"]["a"]["version"] = 99
        assert snap.all_flags_state(USER).to_dict() == expected
        reasons_out = snap.all_flags_state(USER, with_reasons=True).to_dict()
        reasons_out["$flagsState"]["a"]["reason"]["kind"] = "X"
        assert snap.all_flags_state(USER, with_reasons=True).get_flag_reason("a") == {
            "kind": "FALLTHROUGH"
        }

    def test_to_json_of_flags_named_as_its_own_keys(self) -> None:
        # to_dict()'s "$flagsState" and "$valid" replace such flags' values
        # in place; to_json() says the same.
        snap = snapshot_from_data(
            {
                "$valid": flag("$valid", targets=[{"values": ["u"], "variation": 2}]),
                'x\u00e9"': flag('x\u00e9"', fallthrough={"variation": 2}),
                "$flagsState": flag("$flagsState", on=False),
            }
        )
        state = snap.all_flags_state(USER)
        assert state.to_json() == json.dumps(state.to_dict(), separators=(",", ":"))
        assert list(state.to_dict()) == ["$valid", 'x\u00e9"', "$flagsState"]

    def test_options(self) -> None:
        snap = snapshot_from_data(
            {
                "a": flag("a", clientSide=True),
                "b": flag(
                    "b",
                    clientSideAvailability={"usingEnvironmentId": False},
                    clientSide=True,
                ),
                "t": flag("t", trackEvents=True),
            }
        )
        assert set(snap.all_flags_state(USER, client_side_only=True).to_dict()) == {
            "a",
            "$flagsState",
            "$valid",
        }
        with_reasons = snap.all_flags_state(USER, with_reasons=True).to_dict()[
            "$flagsState"
        ]
        assert with_reasons["a"]["reason"] == {"kind": "FALLTHROUGH"}
        tracked = snap.all_flags_state(
            USER, with_reasons=True, details_only_for_tracked_flags=True
        ).to_dict()["$flagsState"]
        assert tracked["a"] == {"variation": 0}
        assert tracked["t"] == {
            "variation": 0,
            "version": 1,
            "reason": {"kind": "FALLTHROUGH"},
            "trackEvents": True,
        }

    def test_invalid(self) -> None:
        assert FlagSnapshot().all_flags_state(USER).to_dict() == {
            "$flagsState": {},
            "$valid": False,
        }
        assert not snapshot_from_data({"a": flag("a")}).all_flags_state(None).valid

    def test_to_dict_is_a_copy(self) -> None:
        snap = snapshot_from_data(
            {
                "e": flag(
                    "e",
                    fallthrough={
                        "rollout": {
                            "kind": "experiment",
                            "variations": [{"variation": 0, "weight": 100000}],
                        }
                    },
                )
            }
        )
        state = snap.all_flags_state(USER)
        state.to_dict()["$flagsState"]["e"]["reason"]["kind"] = "X"
        assert state.to_dict()["$flagsState"]["e"]["reason"]["kind"] == "FALLTHROUGH"


def test_flag_keys_and_repr() -> None:
    snap = snapshot_from_data(
        {"a": flag("a"), "d": {"key": "d", "version": 1, "deleted": True}}
    )
    assert snap.flag_keys == {"a"}
    assert snap.initialized
    assert "flags=2" in repr(snap)
