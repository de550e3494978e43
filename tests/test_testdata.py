"""FlagData and its builders: the JSON they make, how it evaluates, where it is served."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from aioflags import Client, Config, Context, ProviderStatus
from aioflags._datasystem._store import snapshot_from_data
from aioflags.testing import (
    FlagBuilder,
    FlagData,
    FlagServer,
    SegmentBuilder,
    clause,
    in_segment,
)

if TYPE_CHECKING:
    from collections.abc import Callable

ALICE = Context.from_dict({"kind": "user", "key": "alice", "email": "a@example.com"})
BOB = Context.from_dict({"kind": "user", "key": "bob", "email": "b@other.org"})
ACME = Context.create("acme", kind="org")


def evaluate(data: FlagData, key: str, context: Context) -> tuple[Any, dict[str, Any]]:
    detail = snapshot_from_data(data.flags, data.segments).variation_detail(  # type: ignore[arg-type]
        key, context, "default"
    )
    return detail.value, dict(detail.reason)


def test_a_new_flag_is_an_on_boolean_serving_true() -> None:
    data = FlagData()
    data.update(data.flag("f"))
    assert evaluate(data, "f", ALICE) == (True, {"kind": "FALLTHROUGH"})
    data.update(data.flag("f").off())
    assert evaluate(data, "f", ALICE) == (False, {"kind": "OFF"})
    data.update(data.flag("f").on().fallthrough(False))
    assert evaluate(data, "f", ALICE)[0] is False


def test_targets_rules_and_reasons() -> None:
    data = FlagData()
    data.update(
        data.flag("color")
        .variations("red", "green", "blue")
        .fallthrough("blue")
        .off_variation("red")
        .target("green", "bob")
        .target("red", "acme", kind="org")
        .rule(clause("email", "endsWith", "@example.com"), serve="red", rule_id="r1")
    )
    assert evaluate(data, "color", BOB) == ("green", {"kind": "TARGET_MATCH"})
    assert evaluate(data, "color", ACME) == ("red", {"kind": "TARGET_MATCH"})
    assert evaluate(data, "color", ALICE) == (
        "red",
        {"kind": "RULE_MATCH", "ruleIndex": 0, "ruleId": "r1"},
    )
    assert evaluate(data, "color", Context.create("carol")) == (
        "blue",
        {"kind": "FALLTHROUGH"},
    )
    # Re-targeting a key moves it; a negated clause inverts the match.
    data.update(
        data.flag("color")
        .target("blue", "bob")
        .rule(clause("email", "endsWith", "@example.com", negate=True), serve="green")
    )
    assert evaluate(data, "color", BOB) == ("blue", {"kind": "TARGET_MATCH"})
    carol = Context.from_dict({"key": "carol", "email": "c@other.org"})
    assert evaluate(data, "color", carol)[0] == "green"
    # A missing attribute matches no clause, negated or not.
    assert evaluate(data, "color", Context.create("dan"))[0] == "blue"


def test_value_for_all_and_set_value() -> None:
    data = FlagData()
    data.set_value("limit", 42)
    data.set_value("config", {"a": [1, 2]})
    assert evaluate(data, "limit", ALICE) == (42, {"kind": "FALLTHROUGH"})
    assert evaluate(data, "config", ALICE)[0] == {"a": [1, 2]}
    # A builder taken after set_value continues from it.
    data.update(data.flag("limit").variations(1, 2).fallthrough(2))
    assert evaluate(data, "limit", ALICE)[0] == 2


def test_rollouts_split_by_percentage_and_report_experiments() -> None:
    data = FlagData()
    data.update(
        data.flag("ab")
        .variations("a", "b")
        .fallthrough_rollout({"a": 50, "b": 50}, seed=7, experiment=True)
    )
    seen = {evaluate(data, "ab", Context.create(f"user-{i}"))[0] for i in range(200)}
    assert seen == {"a", "b"}
    reason = evaluate(data, "ab", ALICE)[1]
    assert reason["kind"] == "FALLTHROUGH" and reason["inExperiment"] is True
    # 100% to one side serves it to everyone; rollouts work in rules too.
    data.update(
        data.flag("ab")
        .fallthrough_rollout([("b", 100.0)])
        .rule(clause("key", "in", "alice"), rollout={"a": 100}, bucket_by="email")
    )
    assert evaluate(data, "ab", BOB)[0] == "b"
    assert evaluate(data, "ab", ALICE)[0] == "a"


def test_segments_with_included_excluded_and_weighted_rules() -> None:
    data = FlagData()
    data.update(
        data.segment("beta")
        .included("bob")
        .included("acme", kind="org")
        .excluded("alice")
        .excluded("evil", kind="org")
        .rule(clause("email", "endsWith", "@example.com"))
        .rule(clause("key", "startsWith", "p"), percentage=100, bucket_by="key"),
        data.flag("beta-ui").rule(in_segment("beta"), serve=True).fallthrough(False),
    )
    assert evaluate(data, "beta-ui", BOB)[0] is True
    assert evaluate(data, "beta-ui", ACME)[0] is True
    assert evaluate(data, "beta-ui", ALICE)[0] is False  # excluded beats the rule
    assert evaluate(data, "beta-ui", Context.create("evil", kind="org"))[0] is False
    assert evaluate(data, "beta-ui", Context.create("pat"))[0] is True
    assert evaluate(data, "beta-ui", Context.create("zed"))[0] is False
    data.delete_segment("beta")
    assert evaluate(data, "beta-ui", BOB)[0] is False


def test_prerequisites_resolve_values_to_indexes() -> None:
    data = FlagData()
    data.update(data.flag("base").variations("x", "y").fallthrough("y"))
    data.update(data.flag("child").prerequisite("base", "y"))
    assert evaluate(data, "child", ALICE) == (True, {"kind": "FALLTHROUGH"})
    data.update(data.flag("base").fallthrough("x"))
    assert evaluate(data, "child", ALICE) == (
        False,
        {"kind": "PREREQUISITE_FAILED", "prerequisiteKey": "base"},
    )
    data.update(data.flag("child").clear_targeting())
    assert evaluate(data, "child", ALICE)[0] is True


def test_client_side_and_track_events_reach_all_flags_state() -> None:
    data = FlagData()
    data.update(data.flag("public").client_side().track_events(), data.flag("secret"))
    state = snapshot_from_data(data.flags).all_flags_state(  # type: ignore[arg-type]
        ALICE, client_side_only=True
    )
    assert set(state.to_dict()) == {"public", "$flagsState", "$valid"}
    assert state.to_dict()["$flagsState"]["public"]["trackEvents"] is True


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda d: d.flag(""), "non-empty"),
        (lambda d: d.segment(""), "non-empty"),
        (lambda d: d.flag("f").fallthrough("nope"), "not one of its variations"),
        (lambda d: d.flag("f").variations(), "at least one value"),
        (lambda d: d.flag("f").rule(serve=True), "at least one clause"),
        (lambda d: d.flag("f").rule(clause("k", "in", 1)), "either serve= or rollout="),
        (
            lambda d: d.flag("f").fallthrough_rollout({True: 60, False: 30}),
            "add up to 100, not 90",
        ),
        (lambda d: d.segment("s").rule(), "at least one clause"),
        (lambda d: d.segment("s").rule(clause("k", "in", 1), percentage=101), "0..100"),
        (lambda d: clause("email", "in"), "at least one value"),
        (lambda d: in_segment(), "at least one segment key"),
        (lambda d: d.update(d.flag("f").prerequisite("other", True)), "is unknown"),
        (lambda d: d.update("f"), "takes FlagBuilder or SegmentBuilder"),
    ],
)
def test_bad_input_gets_a_clear_error(build: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        build(FlagData())


def test_a_prerequisite_value_must_exist() -> None:
    data = FlagData()
    data.set_value("base", "x")
    with pytest.raises(ValueError, match="has no variation 'z'"):
        data.update(data.flag("child").prerequisite("base", "z"))


def test_builders_are_copies_and_published_data_is_a_copy() -> None:
    data = FlagData()
    builder = data.flag("f").variations(1, 2)
    data.update(builder)
    builder.fallthrough(2)  # not published
    assert evaluate(data, "f", ALICE)[0] == 1
    data.flags["f"]["on"] = False
    assert evaluate(data, "f", ALICE)[0] == 1
    assert isinstance(builder.copy(), FlagBuilder) and builder.key == "f"
    segment = SegmentBuilder("s").included("a")
    assert segment.copy().build() == segment.build() and segment.key == "s"


@pytest.mark.asyncio
async def test_in_memory_data_system_serves_and_pushes_changes() -> None:
    data = FlagData()
    data.set_value("f", "one")
    data.set_segment("s", {"included": ["alice"]})
    async with Client(Config(data_system=data.data_system())) as client:
        assert client.status is ProviderStatus.READY
        assert await client.variation("f", ALICE, None) == "one"
        async with client.flag_value_changes("f", ALICE) as changes:
            data.set_value("f", "two")
            with anyio.fail_after(30):
                change = await changes.receive()
            assert (change.old_value, change.new_value) == ("one", "two")
            data.delete_flag("f")
            with anyio.fail_after(30):
                change = await changes.receive()
            assert change.new_value is None
        detail = await client.variation_detail("f", ALICE, "dflt")
        assert detail.reason["errorKind"] == "FLAG_NOT_FOUND"
    assert not data._subscribers  # the source let go of its stream


@pytest.mark.asyncio
async def test_attached_server_gets_the_data_and_every_change() -> None:
    data = FlagData()
    data.set_value("f", 1)
    data.update(data.segment("s").included("alice"))
    async with FlagServer() as server:
        data.attach(server)
        assert server.flags["f"]["variations"] == [1]
        config = server.config("k", send_events=False)
        async with Client(config) as client:
            assert await client.variation("f", ALICE, None) == 1
            async with client.flag_value_changes("g", ALICE) as changes:
                data.update(data.flag("g").rule(in_segment("s"), serve=False))
                with anyio.fail_after(30):
                    assert (await changes.receive()).new_value is False
                data.delete_segment("s")
                with anyio.fail_after(30):
                    assert (await changes.receive()).new_value is True
        data.detach(server)
        data.set_value("f", 2)
        assert server.flags["f"]["variations"] == [1]


def test_a_boolean_value_for_all_keeps_both_variations() -> None:
    data = FlagData()
    data.set_value("on", False)
    assert data.flags["on"]["variations"] == [True, False]
    assert evaluate(data, "on", ALICE) == (False, {"kind": "FALLTHROUGH"})
    data.update(data.flag("on").off())
    assert evaluate(data, "on", ALICE) == (False, {"kind": "OFF"})
    data.update(data.flag("on").on().rule(clause("key", "in", "alice"), serve=True))
    assert evaluate(data, "on", ALICE)[0] is True


@pytest.mark.parametrize(
    ("publish", "message"),
    [
        (
            lambda d: d.set_value("x", object()),
            r"flag 'x': value is <object object at .*> \(type object\), "
            r"which is not JSON; use None, bool, int, float, str",
        ),
        (
            lambda d: d.set_value("x", {1: "a"}),
            r"flag 'x': value has the key 1 \(type int\)",
        ),
        (
            lambda d: d.set_value("x", {"a": [1, object()]}),
            r"flag 'x': value\.a\[1\] is <object object at .*> \(type object\)",
        ),
        (
            lambda d: d.set_flag("y", {"variations": [1, {"a": {2}}]}),
            r"flag 'y': variations\[1\]\.a is \{2\} \(type set\)",
        ),
        (
            lambda d: d.update(d.flag("z").variations("a", b"b")),
            r"flag 'z': variations\[1\] is b'b' \(type bytes\)",
        ),
        (
            lambda d: d.set_segment("s", {"included": [("u", object())]}),
            r"segment 's': included\[0\]\[1\] is <object",
        ),
    ],
    ids=["value", "key", "nested-value", "flag-json", "builder", "segment"],
)
def test_values_that_are_not_json_say_which_flag_and_where(
    publish: Callable[[FlagData], None], message: str
) -> None:
    data = FlagData()
    with pytest.raises(TypeError, match=message):
        publish(data)
    assert data.flags == {} and data.segments == {}


@pytest.mark.asyncio
async def test_flag_server_config_points_data_and_events_at_the_server() -> None:
    server = FlagServer(
        {"f": {"on": True, "variations": [1], "fallthrough": {"variation": 0}}}
    )
    with pytest.raises(RuntimeError, match="not listening yet"):
        server.config()
    async with server:
        config = server.config(ready_timeout=1)
        assert (config.sdk_key, config.ready_timeout) == ("sdk-key", 1)
        assert config.base_uri == config.stream_uri == config.events_uri == server.url
        assert server.config("k", events_uri="http://127.0.0.1:9").events_uri == (
            "http://127.0.0.1:9"
        )
        async with Client(config) as client:
            assert await client.variation("f", Context.create("u"), 0) == 1
            await client.flush()
            await server.wait_for_events(1)  # the evaluation's summary reached it


def test_a_rule_is_named_by_id_as_coverage_names_it() -> None:
    data = FlagData()
    built = (
        data.flag("f").boolean().rule(clause("key", "in", "a"), serve=True, id="beta")
    )
    assert built.build()["rules"][0]["id"] == "beta"  # coverage: rule:beta
    older = (
        data.flag("g").boolean().rule(clause("key", "in", "a"), serve=True, rule_id="b")
    )
    assert older.build()["rules"][0]["id"] == "b"
    with pytest.raises(ValueError, match="give the rule's id once"):
        data.flag("h").boolean().rule(
            clause("key", "in", "a"), serve=True, id="x", rule_id="y"
        )
