"""flagd's document format: how a file of flagd's flags is recognised, read, checked and described.

The file reader, ``aioflags validate`` and ``aioflags schema`` ask
:data:`FLAGD_DOCUMENT` (``Flagd.document``). Light at import: what it
reads and checks with loads when a file is met (``_reader.py``,
``_lint.py``), never when ``aioflags`` is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from aioflags._core._json import JSONObject
    from aioflags._evaluation._system_parts import DocumentProblem

__all__ = ["FLAGD_DOCUMENT", "FlagdDocument"]


@final
class FlagdDocument:
    """flagd's flag definitions (flagd.schema.json): ``{"flags": {...}, "$evaluators": ...}``."""

    __slots__ = ()

    def recognises(self, data: object) -> bool:
        """A flagd document: ``is_flagd_document`` (its flags have ``state`` and ``variants``...)."""
        from aioflags._systems._flagd._data._definitions import is_flagd_document

        return is_flagd_document(data)

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
        """Its flags, as flagd reads them (``_reader.read_flagd_file``)."""
        from ._reader import read_flagd_file

        return read_flagd_file(
            path,
            raw,
            data,
            fractional=fractional,
            shared=shared,
            allow_empty=allow_empty,
        )

    def problems(self, data: Any) -> Sequence[DocumentProblem]:
        """What flagd takes but its author did not mean (``_lint.flagd_problems``)."""
        from ._lint import flagd_problems

        return flagd_problems(data)

    def schema(self) -> str:
        """The JSON Schema of flagd's flag definitions (``flagd.schema.json``, shipped)."""
        from importlib import resources  # (not at import: ~20 modules)

        return (
            resources.files("aioflags").joinpath("flagd.schema.json").read_text("utf-8")
        )

    def __repr__(self) -> str:
        return "<document format flagd>"


#: flagd's document format (``Flagd.document``).
FLAGD_DOCUMENT: Final = FlagdDocument()
