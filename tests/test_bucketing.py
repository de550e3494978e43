"""Bucketing invariants (evaluation.md §8), as properties."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioflags import Context
from aioflags._datasystem._store import snapshot_from_data
from aioflags._evaluation._model import Bucketer


def bucketer(prefix: str = "flag.salt.", attribute: str = "key") -> Bucketer:
    return Bucketer(prefix=prefix, kind="user", attribute=attribute, literal=True)


def test_reference_values() -> None:
    assert (
        bucketer("my-flag.abc123.").bucket(Context.create("user-1"))
        == 0.47077247112004034
    )
    assert bucketer("42.").bucket(Context.create("user-1")) == 0.7412286779214651


keys = st.text(min_size=1, max_size=30)


@pytest.mark.slow
@given(keys)
def test_bucket_is_stable_and_in_range(key: str) -> None:
    ctx = Context.create(key)
    b = bucketer().bucket(ctx)
    assert 0.0 <= b < 1.0
    assert bucketer().bucket(Context.create(key)) == b


@given(
    keys,
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
)
def test_seed_replaces_key_and_salt(key: str, seed: int, other: int) -> None:
    ctx = Context.create(key)
    seeded = bucketer(f"{seed}.").bucket(ctx)
    assert seeded == Bucketer(
        prefix=f"{seed}.", kind="user", attribute="key", literal=True
    ).bucket(ctx)
    if seed != other:
        # Different seeds almost always move a key; equality would need a SHA-1 prefix collision.
        assert seeded != bucketer(f"{other}.").bucket(ctx)


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_integers_bucket_like_their_decimal_string(n: int) -> None:
    as_int = Context.create("k", attributes={"n": n})
    as_str = Context.create("k", attributes={"n": str(n)})
    assert bucketer(attribute="n").bucket(as_int) == bucketer(attribute="n").bucket(
        as_str
    )


@given(
    st.one_of(
        st.floats(allow_nan=False),
        st.booleans(),
        st.lists(st.text(), max_size=2),
        st.dictionaries(st.text(), st.text(), max_size=2),
    )
)
def test_unbucketable_values_give_zero(value: object) -> None:
    ctx = Context.create("k", attributes={"v": value})
    assert bucketer(attribute="v").bucket(ctx) == 0.0


def test_missing_kind_is_minus_one_and_missing_attribute_zero() -> None:
    assert (
        Bucketer(prefix="p.", kind="org", attribute="key", literal=True).bucket(
            Context.create("u")
        )
        == -1.0
    )
    assert bucketer(attribute="nope").bucket(Context.create("u")) == 0.0


@pytest.mark.slow
@pytest.mark.no_cover
@settings(max_examples=20)  # no deadline: tests/conftest.py
@given(st.integers(min_value=0, max_value=100000))
def test_rollout_distribution_within_tolerance(weight: int) -> None:
    snap = snapshot_from_data(
        {
            "f": {
                "key": "f",
                "version": 1,
                "on": True,
                "salt": "s",
                "variations": ["a", "b"],
                "fallthrough": {
                    "rollout": {
                        "variations": [
                            {"variation": 0, "weight": weight},
                            {"variation": 1, "weight": 100000 - weight},
                        ]
                    }
                },
            }
        }
    )
    n = 4000
    counts = Counter(
        snap.variation("f", Context.create(f"user-{i}"), None) for i in range(n)
    )
    expected = weight / 100000
    # Four standard deviations of a binomial proportion, plus a floor for tiny weights.
    tolerance = 4 * (expected * (1 - expected) / n) ** 0.5 + 0.002
    assert abs(counts["a"] / n - expected) <= tolerance
