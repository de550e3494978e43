"""SHA-1 for bucketing, without importing :mod:`hashlib` with aioflags.

``hashlib`` loads OpenSSL's libcrypto (about 4 ms of ``import aioflags``);
CPython's own SHA-1 (``_sha1``) loads in a fraction of that and is as fast
per call for bucketing's short inputs. Builds without it (some FIPS builds)
use ``hashlib``'s. The digests are the same: bucketing is SHA-1 by protocol,
not for security (``usedforsecurity=False``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["sha1"]

if TYPE_CHECKING:
    from hashlib import sha1
else:
    try:
        from _sha1 import sha1
    except ImportError:  # pragma: no cover - a CPython built without it
        from hashlib import sha1
