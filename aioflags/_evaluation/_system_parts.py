"""The parts of a flag system that name no flag: its document format, its configuration.

Beside them, what a system whose flags share nothing answers the store
(LaunchDarkly's ``shared_keys`` and ``link``). The flag system itself
(``FlagSystem``) and its registry stay with the compiled flag that holds one
(``_model.py``): each names the other, and annotations close no import
cycle (tests/test_layering.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from aioflags._core._json import JSONObject, JSONValue
    from aioflags._core._options import Option

__all__ = [
    "DocumentFormat",
    "DocumentProblem",
    "SystemConfiguration",
    "link_nothing",
    "no_shared_keys",
]


#: A problem ``validate`` says of a file: where in its data (keys and
#: indexes from the top), what, whether it is of a value's shape (the flag
#: cannot be used), whether a warning (``_sources._lint.Problem``).
DocumentProblem: TypeAlias = tuple[tuple[str | int, ...], str, bool, bool]


class DocumentFormat(Protocol):
    """How a file of one system's flags is recognised, read, checked and described.

    The file reader (``_sources/_files.py``: ``DataSystem.file``,
    ``aioflags serve``, ``eval --file``), ``aioflags validate`` and
    ``aioflags schema`` ask it; a file none recognises is read in the file
    reader's own shape (LaunchDarkly's, whose system declares none).
    """

    def recognises(self, data: object) -> bool:
        """Whether a file's parsed ``data`` is a document of this format."""
        ...

    def read(
        self,
        path: Path,
        raw: bytes,
        data: object,
        *,
        fractional: int,
        shared: dict[str, JSONObject] | None,
        allow_empty: bool,
    ) -> Mapping[str, JSONObject]:
        """The flag objects of file ``path`` (its bytes ``raw``, parsed: ``data``).

        ``fractional``: the bucketing of a fractional rollout (flagd's 3,
        or 2); ``shared``: where what its flags share goes (their shared
        form), if given; without ``allow_empty``, a document without flags
        is refused.

        Raises:
            FlagFileError: the document is no flags of this format (the
                message names the file, and the place where known).
        """
        ...

    def problems(self, data: object) -> Sequence[DocumentProblem]:
        """What a document the reader took still gets wrong (``aioflags validate``)."""
        ...

    def schema(self) -> str:
        """The JSON Schema of its documents, as text (``aioflags schema --format``)."""
        ...


class SystemConfiguration(Protocol):
    """What a flag system contributes to configuration: its data system's options and variables.

    ``Config.from_env`` asks each registered system's for the data system
    its environment variables describe, ``DataSystem.<name>()`` (flagd's)
    hands over to its :attr:`preset`, docs/configuration.md tables its
    :attr:`options` under the system's name, and a client asks it what a
    block of a data system of its flags leaves behind. The data systems
    it makes are ``aioflags.DataSystem``'s (``object`` here: this layer
    names none above it; the faces check).

    Attributes:
        options: its preset's options, each declared once (name, type,
            default, bounds, environment variable, doc): checked from
            there, tabled in docs/configuration.md.
        preset: ``DataSystem.<name>()``'s body (None: it has none).
    """

    @property
    def options(self) -> Sequence[Option]:
        """Its preset's options, declared once (docs/configuration.md's table)."""
        ...

    @property
    def preset(self) -> Callable[..., object] | None:
        """``DataSystem.<name>()``'s body (None: it has none)."""
        ...

    def from_environment(
        self, env: Mapping[str, str], *, plane: str | None = None
    ) -> object | None:
        """The ``DataSystem`` its variables in ``env`` describe (None: none asked for).

        ``plane``: the flag plane's path (``aioflags plane PATH``).

        Raises:
            ConfigurationError: a variable cannot be used (the message
                names it).
        """
        ...

    def unclaimed(self, env: Mapping[str, str]) -> None:
        """Refuse its variables in ``env`` where they made no data system and nothing else is set.

        Raises:
            ConfigurationError: naming the variables and what is missing.
        """
        ...

    def after_block(self) -> None:
        """What a client's block (its run) over a data system of its flags leaves behind, released."""
        ...


# What a system whose flags share nothing answers the store (LaunchDarkly's):
# functions of this layer, so that ingest never calls up a layer
# (tests/test_layering.py).
def no_shared_keys(flag: JSONObject) -> Sequence[str]:
    """``FlagSystem.shared_keys`` of a system whose flags share nothing."""
    return ()


def link_nothing(
    change_set: Any, held: dict[str, JSONValue]
) -> tuple[Any, dict[str, JSONValue]]:
    """``FlagSystem.link`` of a system whose flags share nothing: the change set as it is."""
    return change_set, held
