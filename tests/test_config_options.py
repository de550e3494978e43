"""Declared configuration (issue 96): each option of ``Config`` and ``DataSystem.flagd()`` declared once.

From its declaration (``aioflags/_client/_options.py``,
``aioflags/_systems/_flagd/_sync/_settings.py``) an option is
checked, read from its environment variable, and listed in
docs/configuration.md's tables. These tests hold the declarations to the
signatures, the errors to naming the option (and the variable), and the
page to the declarations.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from aioflags import Config, DataSystem
from aioflags._client import _tables
from aioflags._client._options import OPTIONS
from aioflags._core._exceptions import ConfigurationError
from aioflags._core._options import Kind, Option, check, parse
from aioflags._datasystem._options import FILE, POLLING
from aioflags._datasystem._options import OPTIONS as DATA_SYSTEM
from aioflags._systems._flagd._environment import flagd_from_env
from aioflags._systems._flagd._sync._settings import OPTIONS as FLAGD

DOCS = Path(__file__).parents[1] / "docs"

#: A value of the wrong type for each kind an option is checked by.
WRONG: dict[str, Any] = {
    Kind.SECONDS: "5",
    Kind.BOOL: "false",
    Kind.COUNT: 1.5,
    Kind.BYTES: "16MiB",
    Kind.URL: "relay:8030",
    Kind.TEXT: 42,
    Kind.HEADER: "checkout\r\n",
    Kind.FRACTION: 2,
}
#: A text that is no value, for each kind a variable is parsed as.
UNREADABLE: dict[str, str] = {Kind.SECONDS: "soon", Kind.BOOL: "maybe"}


def _declared(options: tuple[Option, ...]) -> list[Option]:
    """The options checked from their declaration (not by their owner)."""
    return [o for o in options if o.kind is not Kind.OTHER]


def test_96_config_the_docs_tables_are_made_from_the_declarations() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert page.count("<!-- generated: ") == 7  # (none lost in an edit)
    assert _tables.render(page) == page, (
        "docs/configuration.md's tables are not the declarations': run "
        "`python -m aioflags._client._tables`"
    )


def test_96_config_the_tables_are_rewritten_by_the_command(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(
        "# Options\n\n<!-- generated: flagd (made) -->\nstale\n<!-- end generated -->\n",
        encoding="utf-8",
    )
    assert _tables.main([str(page)]) == 0
    made = page.read_text(encoding="utf-8")
    assert "stale" not in made
    assert (
        "| `deadline` | seconds | 0.5 | > 0, <= 60 | `FLAGD_DEADLINE_MS` (ms) |" in made
    )
    with pytest.raises(ValueError, match="'nothing'"):
        _tables.render("<!-- generated: nothing -->\n<!-- end generated -->")


def _parameters(function: Any, *refused: str) -> dict[str, object]:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if name not in ("self", "cls", *refused)
    }


def test_96_config_every_option_of_the_signatures_is_declared_with_its_default() -> (
    None
):
    config = _parameters(Config.__init__, "plane")
    assert [o.name for o in OPTIONS] == list(config)
    assert {o.name: o.default for o in OPTIONS} == config
    flagd = _parameters(DataSystem.flagd, "plane", "saved_state", "host", "port")
    assert [o.name for o in FLAGD] == list(flagd)
    declared = {o.name: o.default for o in FLAGD}
    assert declared.pop("target") == "localhost:8015"
    assert flagd.pop("target") is None  # (the signature's None is that)
    assert declared == flagd
    system = _parameters(DataSystem.__init__)
    assert {o.name: o.default for o in DATA_SYSTEM} == {
        o.name: system[o.name] for o in DATA_SYSTEM
    }
    polling = _parameters(DataSystem.polling, "store", "saved_state", "plane")
    assert {o.name: o.default for o in POLLING} == polling
    file = _parameters(DataSystem.file, "paths", "saved_state", "plane")
    assert {o.name: o.default for o in FILE} == file


@pytest.mark.parametrize("option", _declared(OPTIONS), ids=lambda o: o.name)
def test_96_config_an_error_names_the_option(option: Option) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Config("k", **{option.name: WRONG[option.kind]})
    said = str(raised.value)
    assert said.startswith(f"{option.name} ") and " must be " in said, said
    assert "\n" not in str(raised.value)


#: Options of Config its owner checks (not the lenient tags and filter key:
#: an invalid one is dropped with a warning), and a wrong value of each.
OWNED: dict[str, Any] = {
    "sdk_key": 5,
    "data_system": "polling",
    "fatal_status_codes": "401",
    "verify": 5,
    "proxy": "ftp://proxy",
    "private_attributes": "email",
    "hooks": 5,
    "big_segments": 5,
    "lens": 5,
    "metrics": 5,
    "guards": 5,
}


def test_96_config_every_option_is_checked_from_its_declaration_or_by_config() -> None:
    owned = {o.name for o in OPTIONS if o.kind == Kind.OTHER}
    lenient = {"application_id", "application_version", "payload_filter_key"}
    assert owned == set(OWNED) | lenient


@pytest.mark.parametrize(("name", "value"), OWNED.items(), ids=list(OWNED))
def test_96_config_an_error_of_an_option_config_checks_names_it(
    name: str, value: object
) -> None:
    options: dict[str, Any] = {"sdk_key": "k", name: value}
    with pytest.raises(ConfigurationError) as raised:
        Config(**options)
    assert str(raised.value).startswith(f"{name} "), raised.value


@pytest.mark.parametrize("option", _declared(FLAGD), ids=lambda o: o.name)
def test_96_config_a_flagd_error_names_the_option(option: Option) -> None:
    with pytest.raises(ConfigurationError) as raised:
        DataSystem.flagd(**{option.name: WRONG[option.kind]})
    said = str(raised.value)
    assert said.startswith(f"DataSystem.flagd({option.name}=...) must be "), said


@pytest.mark.parametrize("option", DATA_SYSTEM, ids=lambda o: o.name)
def test_96_config_a_data_system_timing_error_names_the_option(option: Option) -> None:
    with pytest.raises(ConfigurationError) as raised:
        DataSystem(**{option.name: -1})  # type: ignore[arg-type]
    said = str(raised.value)
    assert said.startswith(f"DataSystem {option.name} must be "), said


@pytest.mark.parametrize(
    ("preset", "option"),
    [("polling", o) for o in _declared(POLLING)]
    + [("file", o) for o in _declared(FILE)],
    ids=lambda x: x if isinstance(x, str) else x.name,
)
def test_96_config_a_preset_error_names_the_option(preset: str, option: Option) -> None:
    paths = ("flags.json",) if preset == "file" else ()
    with pytest.raises(ConfigurationError) as raised:
        getattr(DataSystem, preset)(*paths, **{option.name: WRONG[option.kind]})
    said = str(raised.value)
    assert said.startswith(f"DataSystem.{preset}({option.name}=...) must be "), said


def _variables() -> list[tuple[Option, str]]:
    return [
        (option, variable)
        for option in (*OPTIONS, *FLAGD)
        for variable in option.env
        if option.kind in UNREADABLE
    ]


@pytest.mark.parametrize(
    ("option", "variable"), _variables(), ids=[v for _, v in _variables()]
)
def test_96_config_an_unreadable_variable_is_named(
    option: Option, variable: str
) -> None:
    text = UNREADABLE[option.kind]
    env = {variable: text, "FLAGD_RESOLVER": "in-process", "AIOFLAGS_SDK_KEY": "k"}
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env(env)
    unit = "milliseconds" if option.env_unit == "ms" else "seconds"
    expected = "true or false" if option.kind == Kind.BOOL else f"a number of {unit}"
    assert str(raised.value) == f"{variable}={text!r}: expected {expected}"


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"AIOFLAGS_GRACE_PERIOD": "-1"},
            "AIOFLAGS_GRACE_PERIOD: grace_period must be >= 0, got -1.0",
        ),
        (
            {"FLAGD_RETRY_GRACE_PERIOD": "-1"},
            "FLAGD_RETRY_GRACE_PERIOD='-1': DataSystem.flagd(retry_grace_period=...) "
            "must be >= 0, got -1.0",
        ),
        (
            {"FLAGD_STREAM_DEADLINE_MS": "-5"},
            "FLAGD_STREAM_DEADLINE_MS='-5': DataSystem.flagd(stream_deadline=...) "
            "must be >= 0, got -0.005 (FLAGD_STREAM_DEADLINE_MS is in milliseconds, "
            "the option in seconds)",
        ),
        (
            {"FLAGD_KEEP_ALIVE_TIME_MS": "-1"},
            "FLAGD_KEEP_ALIVE_TIME_MS='-1': DataSystem.flagd(keepalive=...) must be "
            "> 0, got -0.001 (FLAGD_KEEP_ALIVE_TIME_MS is in milliseconds, the "
            "option in seconds)",
        ),
        (
            {"FLAGD_RETRY_BACKOFF_MAX_MS": "-1"},
            "FLAGD_RETRY_BACKOFF_MAX_MS='-1': DataSystem.flagd(retry_backoff=...)'s "
            "delays must be >= 0 (milliseconds)",
        ),
        (
            {"FLAGD_RETRY_BACKOFF_MS": "0"},
            "FLAGD_RETRY_BACKOFF_MS: DataSystem.flagd(retry_backoff=...)'s first "
            "delay must be > 0, got 0.0",
        ),
        (
            {"FLAGD_HOST": "http://flagd", "FLAGD_SYNC_PORT": "8015"},
            "FLAGD_HOST, FLAGD_SYNC_PORT: DataSystem.flagd(target='http://flagd:8015')",
        ),
        (
            {"FLAGD_SOCKET_PATH": "/" + "s" * 200, "FLAGD_HOST": "flagd"},
            "FLAGD_SOCKET_PATH: DataSystem.flagd(socket_path=...) is a Unix socket",
        ),
    ],
    ids=[
        "config-bound",
        "flagd-seconds",
        "flagd-ms",
        "flagd-keepalive",
        "flagd-backoff",
        "flagd-backoff-first",
        "flagd-target",
        "flagd-socket",
    ],
)
def test_96_config_a_value_from_the_environment_names_variable_and_option(
    env: dict[str, str], said: str
) -> None:
    env = {"FLAGD_RESOLVER": "in-process", **env}
    with pytest.raises(ConfigurationError) as raised:
        Config.from_env({"AIOFLAGS_SDK_KEY": "k", **env})
    assert str(raised.value).startswith(said), raised.value
    assert "\n" not in str(raised.value)


def test_96_config_a_flagd_deadline_in_the_variable_s_milliseconds_is_bounded() -> None:
    """``FLAGD_DEADLINE_MS`` is milliseconds; the option's bound (60 s) holds, with no guess."""
    system = flagd_from_env(
        {"FLAGD_RESOLVER": "in-process", "FLAGD_DEADLINE_MS": "60000"}
    )
    assert system is not None
    with pytest.raises(ConfigurationError) as raised:
        flagd_from_env({"FLAGD_RESOLVER": "in-process", "FLAGD_DEADLINE_MS": "60001"})
    assert str(raised.value) == (
        "FLAGD_DEADLINE_MS='60001': DataSystem.flagd(deadline=...) must be at most "
        "60 seconds, got 60.001 (FLAGD_DEADLINE_MS is in milliseconds, the option "
        "in seconds)"
    )


def test_96_config_a_deadline_given_in_code_as_milliseconds_says_so() -> None:
    """Issue 95 row 226 kept: in code, seconds; a number past the bound that is surely ms is named."""
    with pytest.raises(ConfigurationError) as raised:
        DataSystem.flagd(deadline=500)
    assert str(raised.value) == (
        "DataSystem.flagd(deadline=...) must be at most 60 seconds, got 500 (500 "
        "looks like milliseconds, as FLAGD_DEADLINE_MS: deadline=0.5)"
    )


def test_96_config_the_docstrings_and_flagd_page_name_every_variable() -> None:
    flagd_page = (DOCS / "flagd.md").read_text(encoding="utf-8")
    for option in OPTIONS:
        for variable in option.env:
            assert variable in (Config.from_env.__doc__ or ""), variable
    for option in FLAGD:
        for variable in option.env:
            assert variable in (flagd_from_env.__doc__ or ""), variable
            assert variable in flagd_page, variable


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        (Option("n", Kind.SECONDS, default=1.0, doc=""), 0, "n must be > 0, got 0"),
        (Option("n", Kind.SECONDS, default=1.0, doc="", least=0), 0, None),
        (
            Option("n", Kind.SECONDS, default=1.0, doc="", least=60),
            59,
            "n must be at least 60 seconds, got 59",
        ),
        (Option("n", Kind.SECONDS, default=None, doc=""), None, None),
        (
            Option("n", Kind.SECONDS, default=1.0, doc="", most=10),
            11,
            "n must be at most 10 seconds, got 11",
        ),
        (Option("n", Kind.COUNT, default=1, doc=""), True, "n must be a positive"),
        (
            Option("n", Kind.BYTES, default=2048, doc="", least=1024, most=4096),
            8192,
            "n must be a number of bytes from 1024 (1 KiB) to 4096 (4 KiB), got 8192",
        ),
        (Option("n", Kind.TEXT, default="", doc=""), None, "n must be a string, got"),
        (Option("n", Kind.FRACTION, default=0.5, doc=""), 1, None),
        (Option("n", Kind.OTHER, default=None, doc=""), object, None),
    ],
)
def test_96_config_check_follows_the_declaration(
    option: Option, value: object, said: str | None
) -> None:
    if said is None:
        assert check(option, value) is value
        return
    with pytest.raises(ConfigurationError) as raised:
        check(option, value)
    assert str(raised.value).startswith(said)


def test_96_config_parse_reads_the_variable_s_unit() -> None:
    ms = Option("n", Kind.SECONDS, default=1.0, doc="", env=("N_MS",), env_unit="ms")
    assert parse(ms, "N_MS", "1500") == 1.5
    assert parse(Option("b", Kind.BOOL, default=False, doc=""), "B", "") is False
    assert parse(Option("t", Kind.TEXT, default=None, doc=""), "T", "  ") is None
    with pytest.raises(ValueError, match="env_unit"):
        Option("n", Kind.SECONDS, default=1.0, doc="", env_unit="h")
    with pytest.raises(ValueError, match="kind"):
        Option("n", "second", default=1.0, doc="")
