"""A file of flagd's flag definitions, read into flag objects (the file reader's flagd format).

What ``DataSystem.file``, ``aioflags serve``, ``eval --file`` and
``validate`` read a flagd document with (``_document.py`` asks it, when
the file reader meets one): flagd's reader (``_data/_definitions.py``), its
refusals placed at the file's ``line:column``, and what it raises beyond
them one line naming the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aioflags._core._json import decode_text
from aioflags._datasystem._sources._files import EMPTY_FILE, FlagFileError
from aioflags._systems._flagd._data._definitions import FlagdDocumentError, flagd_flags

if TYPE_CHECKING:
    from pathlib import Path

    from aioflags._core._json import JSONObject

__all__ = ["read_flagd_file"]


def read_flagd_file(
    path: Path,
    raw: bytes,
    data: Any,
    *,
    fractional: int,
    shared: dict[str, JSONObject] | None,
    allow_empty: bool,
) -> dict[str, JSONObject]:
    """A flagd file's flags (``shared``: where what they share goes, if given).

    Raises:
        FlagFileError: no flags where some are needed, a document flagd
            refuses (at its place), or one the reader cannot take.
    """
    if not allow_empty and (
        data is None or (isinstance(data, dict) and data.get("flags") is None)
    ):
        raise FlagFileError(f"{path}: {EMPTY_FILE}")
    try:
        return flagd_flags(data, fractional=fractional, shared=shared)
    except FlagdDocumentError as exc:
        from aioflags._datasystem._sources._lint import Places  # (a file refused)

        place = Places(path, decode_text(raw).removeprefix("\ufeff"))(exc.at)
        raise FlagFileError(f"{place}: {exc}") from None
    except RecursionError:
        raise FlagFileError(f"{path}: nested too deeply to read") from None
    except Exception as exc:
        # (a bug of the reader, memory: one line naming the file, no traceback)
        from aioflags._datasystem._sources._cause import cause_of

        raise FlagFileError(
            f"{path}: cannot read the flagd document ({cause_of(exc)})"
        ) from exc
