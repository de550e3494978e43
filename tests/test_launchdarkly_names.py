"""LaunchDarkly SDK names that aioflags spells differently say what to use instead."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import aioflags
import aioflags.blocking
from aioflags import Client, Config, Context

CONFIG = Config(offline=True)
ASYNC = Client(CONFIG)
BLOCKING = aioflags.blocking.Client(CONFIG)
CONTEXT = Context.create("k")
STATE = aioflags.FlagsState(valid=True, values={}, meta={})


@pytest.mark.parametrize(
    ("owner", "name", "hint"),
    [
        (ASYNC, "start", "async with client:"),
        (ASYNC, "close", "await client.aclose()"),
        (ASYNC, "is_initialized", "client.status is ProviderStatus.READY"),
        (ASYNC, "flag_tracker", "client.add_flag_change_handler(fn)"),
        (ASYNC, "data_source_status_provider", "client.data_source_status"),
        (ASYNC, "big_segment_store_status_provider", "big_segment_store_status"),
        (ASYNC, "postfork", "nothing to call"),
        (ASYNC, "is_offline", "client.config.offline"),
        (ASYNC, "get_sdk_key", "client.config.sdk_key"),
        (BLOCKING, "is_initialized", "client.status is ProviderStatus.READY"),
        (BLOCKING, "flag_tracker", "client.add_flag_change_handler(fn)"),
        (Context, "builder", "Context.create(key, kind=..."),
        (Context, "multi_builder", "Context.create_multi(*contexts)"),
        (CONTEXT, "builder", "Context.create(key, kind=..."),
        (CONTEXT, "get_individual_context", "context.individual_context(kind)"),
        (CONTEXT, "individual_context_count", "len(context.kinds)"),
        (CONTEXT, "to_json_string", "json.dumps(context.to_dict())"),
        (STATE, "to_json_dict", "state.to_dict()"),
        (STATE, "to_json_string", "state.to_json()"),
        (aioflags.FlagsState, "to_json_dict", "state.to_dict()"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_a_launchdarkly_name_raises_an_attribute_error_naming_the_equivalent(
    owner: Any, name: str, hint: str
) -> None:
    with pytest.raises(AttributeError) as raised:
        getattr(owner, name)
    message = str(raised.value)
    assert "(a LaunchDarkly SDK name)" in message and hint in message
    assert "docs/migration.md" in message
    assert raised.value.name == name
    assert not hasattr(owner, name)


def test_the_names_aioflags_has_are_untouched() -> None:
    assert BLOCKING.start.__name__ == "start"
    assert BLOCKING.close.__name__ == "close"
    assert Context.create("k", kind="org").kind == "org"
    copied = pickle.loads(pickle.dumps(CONTEXT))
    assert copied == CONTEXT


def test_an_ordinary_typo_keeps_python_s_message() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'statsu'"):
        ASYNC.statsu  # type: ignore[attr-defined]  # noqa: B018
