"""The public value classes behave as the frozen dataclasses they replaced.

They are plain slotted classes (aioflags/_core/_frozen.py) so that importing
aioflags runs no dataclass machinery: equality, hashing, repr, immutability,
keyword construction, copy/pickle and ``copy.replace`` are checked here.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import pickle
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from aioflags import (
    BigSegmentsConfig,
    Config,
    ConfigurationError,
    Context,
    DataSourceStatus,
    DataSystem,
    ErrorInfo,
    ErrorKind,
    EvaluationDetail,
    EventDetails,
    FlagValueChange,
    HookMetadata,
    ProviderEvent,
    ProviderStatus,
    Reason,
    SourceState,
    TrackSeriesContext,
)
from aioflags._client._client import _new_instance_id
from aioflags.sources import Basis, ChangeSet, IntentCode, Selector, Update
from aioflags.stores import BigSegmentStoreStatus, DataStoreStatus


class _Store:
    def connect(self) -> Any:  # pragma: no cover - never connected here
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:  # copies compare equal
        return isinstance(other, _Store)

    def __hash__(self) -> int:
        return 0


STORE = _Store()
USER = Context.create("u")

#: (name, a factory, a different value) for each value class.
VALUES: list[tuple[str, Callable[[], object], object]] = [
    ("Config", lambda: Config("k", poll_interval=40), Config("k")),
    ("Selector", lambda: Selector(state="s", version=1), Selector()),
    (
        "ChangeSet",
        lambda: ChangeSet(intent=IntentCode.TRANSFER_FULL),
        ChangeSet(intent=IntentCode.TRANSFER_NONE),
    ),
    (
        "ErrorInfo",
        lambda: ErrorInfo(kind=ErrorKind.UNKNOWN, message="m"),
        ErrorInfo(kind=ErrorKind.UNKNOWN),
    ),
    ("Basis", lambda: Basis(change_set=None), Basis(change_set=None, persist=True)),
    (
        "Update",
        lambda: Update(state=SourceState.VALID),
        Update(state=SourceState.OFF),
    ),
    (
        "DataSourceStatus",
        lambda: DataSourceStatus(state=SourceState.VALID, since=1.0),
        DataSourceStatus(state=SourceState.VALID, since=2.0),
    ),
    (
        "EventDetails",
        lambda: EventDetails(
            event=ProviderEvent.READY, status=ProviderStatus.READY, seq=1
        ),
        EventDetails(event=ProviderEvent.READY, status=ProviderStatus.READY, seq=2),
    ),
    (
        "FlagValueChange",
        lambda: FlagValueChange(key="f", old_value=1, new_value=2),
        FlagValueChange(key="f", old_value=1, new_value=3),
    ),
    ("HookMetadata", lambda: HookMetadata("h"), HookMetadata("other")),
    (
        "TrackSeriesContext",
        lambda: TrackSeriesContext("e", USER, None, 1.5),
        TrackSeriesContext("e", USER, None, None),
    ),
    ("DataSystem", lambda: DataSystem(), DataSystem(recovery_after=1.0)),
    (
        "BigSegmentsConfig",
        lambda: BigSegmentsConfig(STORE),
        BigSegmentsConfig(STORE, stale_after=1.0),
    ),
    (
        "BigSegmentStoreStatus",
        lambda: BigSegmentStoreStatus(available=True, stale=False),
        BigSegmentStoreStatus(available=True, stale=True),
    ),
    ("DataStoreStatus", lambda: DataStoreStatus(), DataStoreStatus(stale=True)),
    (
        "EvaluationDetail",
        lambda: EvaluationDetail(
            value=1, variation_index=0, reason=Reason(kind="FALLTHROUGH")
        ),
        EvaluationDetail(value=1, variation_index=None, reason=Reason(kind="OFF")),
    ),
]
IDS = [name for name, _, _ in VALUES]
#: Whose fields include a dict (the reason): unhashable, as the dataclass was.
UNHASHABLE = {"EvaluationDetail"}


@pytest.mark.parametrize(("name", "make", "other"), VALUES, ids=IDS)
def test_equal_by_fields_and_hashed_alike(
    name: str, make: Callable[[], object], other: object
) -> None:
    one, same = make(), make()
    assert one == same and one is not same
    assert one != other and other != one
    assert one != name and one.__eq__(name) is NotImplemented
    if name in UNHASHABLE:
        with pytest.raises(TypeError, match="unhashable"):
            hash(one)
    else:
        assert hash(one) == hash(same)
        assert len({one, same, other}) == 2


@pytest.mark.parametrize(("name", "make", "other"), VALUES, ids=IDS)
def test_frozen(name: str, make: Callable[[], object], other: object) -> None:
    value = make()
    cls: Any = type(value)
    field = cls.__slots__[0]
    before = getattr(value, field)
    with pytest.raises(dataclasses.FrozenInstanceError, match=repr(field)):
        setattr(value, field, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(value, field)
    with pytest.raises(AttributeError):
        value.not_a_field = 1  # type: ignore[attr-defined]
    assert getattr(value, field) is before


@pytest.mark.parametrize(("name", "make", "other"), VALUES, ids=IDS)
def test_copied_and_pickled_whole(
    name: str, make: Callable[[], object], other: object
) -> None:
    value = make()
    assert copy.copy(value) == value
    assert copy.deepcopy(value) == value
    assert pickle.loads(pickle.dumps(value)) == value


@pytest.mark.parametrize(("name", "make", "other"), VALUES, ids=IDS)
def test_public_and_documented(
    name: str, make: Callable[[], object], other: object
) -> None:
    cls = type(make())
    assert cls.__doc__
    assert cls.__module__ in ("aioflags", "aioflags.sources", "aioflags.stores")
    public = importlib.import_module(cls.__module__)
    assert getattr(public, name) is cls  # pickles name the documented module


def test_repr_lists_the_fields_in_order_and_hides_the_key() -> None:
    assert repr(ErrorInfo(kind=ErrorKind.UNKNOWN, message="m")) == (
        "ErrorInfo(kind=<ErrorKind.UNKNOWN: 'unknown'>, status_code=0, "
        "message='m', time=0.0, fatal=False, action_required=False, url='')"
    )
    assert repr(Selector(state="s", version=2)) == "Selector(state='s', version=2)"
    text = repr(Config("secret-key"))
    assert text.startswith("Config(base_uri='https://sdk.launchdarkly.com', ")
    assert "secret-key" not in text and "sdk_key" not in text


def test_keyword_construction_as_before() -> None:
    with pytest.raises(TypeError):
        Selector("s", 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Config("k", "https://example.com")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ErrorInfo(kind=ErrorKind.UNKNOWN, colour="red")  # type: ignore[call-arg]
    assert Config(sdk_key="k") == Config("k")
    assert BigSegmentsConfig(store=STORE) == BigSegmentsConfig(STORE)
    assert TrackSeriesContext(key="e", context=USER, data=None, metric_value=None) == (
        TrackSeriesContext("e", USER, None, None)
    )


def test_match_patterns_as_before() -> None:
    match Config("k"):
        case Config(key):
            assert key == "k"
    match TrackSeriesContext("e", USER, 1, 2.0):
        case TrackSeriesContext(key, context, data, metric):
            assert (key, context, data, metric) == ("e", USER, 1, 2.0)
    match Selector(state="s", version=1):
        case Selector(state=state, version=version):
            assert (state, version) == ("s", 1)


def test_replace_validates_again() -> None:
    config = Config("k", poll_interval=40, base_uri="https://relay.example/")
    changed = config.__replace__(ready_timeout=1)
    assert changed.ready_timeout == 1 and changed.poll_interval == 40
    assert changed.sdk_key == "k" and changed.base_uri == "https://relay.example"
    with pytest.raises(ConfigurationError, match="ready_timeout"):
        config.__replace__(ready_timeout=-1)
    with pytest.raises(TypeError, match="no field 'colour'"):
        config.__replace__(colour="red")
    system = DataSystem.polling(interval=5)
    assert system.with_timings(recovery_after=9).recovery_after == 9
    with pytest.raises(ConfigurationError, match="recovery_after"):
        system.with_timings(recovery_after=0)
    replace = getattr(copy, "replace", None)  # Python 3.13+
    if replace is not None:
        assert replace(config, ready_timeout=2).ready_timeout == 2


def test_the_instance_id_is_a_uuid4() -> None:
    ids = {_new_instance_id() for _ in range(100)}
    assert len(ids) == 100
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
