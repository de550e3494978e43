"""The environment's configuration, read by the options' declarations: ``AIOFLAGS_*`` for ``Config.from_env()``, each flag system's for its data system.

Each ``AIOFLAGS_*`` variable is the one an option's declaration names
(``_client/_options.py``), read in its unit. A flag system's variables
(flagd's ``FLAGD_*``) are its own: :func:`data_system_from_env` asks each
registered system's configuration (``FlagSystem.configuration``) for the
data system they describe, and :func:`refuse_unclaimed` lets each refuse
its variables where they made none. An error the option's owner raises
later (``Config``, ``DataSystem.<preset>()``) is given the names of the
variables that set the options it is about (:func:`naming_variables`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aioflags._core._exceptions import ConfigurationError
from aioflags._core._options import parse
from aioflags._datasystem._config import configurations, data_system_made

from ._options import ENVIRONMENT

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from aioflags._datasystem._config import DataSystem

__all__ = [
    "config_values",
    "data_system_from_env",
    "naming_variables",
    "refuse_unclaimed",
]


def config_values(
    env: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, tuple[str]]]:
    """``Config``'s options from ``AIOFLAGS_*`` (and the SDK key's variables), and the variable of each.

    Raises:
        ConfigurationError: an unknown ``AIOFLAGS_*`` variable (a typo
            would otherwise be ignored), or one that cannot be read.
    """
    values: dict[str, Any] = {}
    #: the variable each option was read from, to name it in an error
    read_from: dict[str, tuple[str]] = {}
    for variable in ("AIOFLAGS_SDK_KEY", "LAUNCHDARKLY_SDK_KEY"):
        if env.get(variable):  # (as it is: its error says what to strip)
            values["sdk_key"] = env[variable]
            read_from["sdk_key"] = (variable,)
            break
    for variable, text in env.items():
        if not variable.startswith("AIOFLAGS_") or variable == "AIOFLAGS_SDK_KEY":
            continue
        option = ENVIRONMENT.get(variable)
        if option is None:
            raise ConfigurationError(
                f"unknown environment variable {variable}: aioflags reads "
                f"AIOFLAGS_SDK_KEY, {', '.join(ENVIRONMENT)}"
            )
        value = parse(option, variable, text)
        if value is not None:  # (an empty variable is an unset one)
            values[option.name] = value
            read_from[option.name] = (variable,)
    return values, read_from


def naming_variables(
    exc: ConfigurationError,
    read_from: Mapping[str, Sequence[str]],
    names: Sequence[str] | None = None,
) -> ConfigurationError:
    """``exc`` led by the variables that set the options it is about (itself if none).

    The options are ``names``, else the words of its message before
    ``, got`` (never the value it got: it may be the SDK key).
    """
    message = str(exc)
    if names is None:
        subject = message.split(", got ", 1)[0]
        names = list(dict.fromkeys(re.findall(r"[a-z][a-z0-9_]*", subject)))
    variables = [v for name in names if name in read_from for v in read_from[name]]
    if not variables:
        return exc
    return ConfigurationError(f"{', '.join(variables)}: {message}")


def data_system_from_env(
    env: Mapping[str, str], *, plane: str | None = None
) -> DataSystem | None:
    """The data system a flag system's variables in ``env`` describe (None: none asked for).

    Each registered system with a configuration is asked
    (``SystemConfiguration.from_environment``: flagd's reads
    ``FLAGD_RESOLVER`` and the rest); ``plane``: the flag plane's path
    (``aioflags plane PATH``).

    Raises:
        ConfigurationError: a variable cannot be used (the message names
            it), or the variables of two systems each describe one.
    """
    found: list[tuple[str, DataSystem]] = []
    for name, configuration in configurations():
        made = configuration.from_environment(env, plane=plane)
        if made is not None:
            found.append((name, data_system_made(made, name)))
    if len(found) > 1:
        names = " and ".join(f"{name}'s" for name, _ in found)
        raise ConfigurationError(
            f"the environment describes two data systems, {names}: set the "
            "variables of one flag system only (docs/configuration.md)"
        )
    return found[0][1] if found else None


def refuse_unclaimed(env: Mapping[str, str]) -> None:
    """Let each flag system refuse its variables in ``env``: set, yet no data system came of them.

    Asked where nothing else makes one (no SDK key, data system or
    ``offline``), so that the client does not ask for an SDK key instead
    of what the variables lack (flagd's: ``FLAGD_RESOLVER``).

    Raises:
        ConfigurationError: naming the variables and what is missing.
    """
    for _, configuration in configurations():
        configuration.unclaimed(env)
