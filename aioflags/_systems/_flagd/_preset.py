"""``DataSystem.flagd()``'s body: a flagd sync server's data system, its arguments checked as declared.

``DataSystem.flagd`` (its signature and its documentation) stays the
public face; it hands its arguments here through the flag system's
registry (``SystemConfiguration.preset``), so that nothing below flagd's
package builds flagd's sources.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from aioflags._core._options import check
from aioflags._datasystem._config import DataSystem, check_file_reading
from aioflags._datasystem._context import mark_flag_system, mark_streaming
from aioflags._datasystem._plane._config import plane_of

from ._plane import plane_source

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["WHERE", "flagd_data_system"]

#: How errors name the preset.
WHERE = "DataSystem.flagd"


def flagd_data_system(
    target: str | None = None,
    *,
    selector: str | None = None,
    provider_id: str | None = None,
    tls: bool = False,
    cert_path: str | os.PathLike[str] | None = None,
    socket_path: str | os.PathLike[str] | None = None,
    fatal_status_codes: Iterable[str] = (),
    retry_grace_period: float = 5.0,
    deadline: float = 0.5,
    stream_deadline: float = 600.0,
    keepalive: float | None = None,
    retry_backoff: tuple[float, float] = (1.0, 5.0),
    fractional: int = 3,
    max_message_size: int = 16 * 1024 * 1024,
    plane: str | os.PathLike[str] | None = None,
    saved_state: None = None,
    host: None = None,
    port: None = None,
) -> DataSystem:
    """``DataSystem.flagd(...)``: its arguments checked, its two sources marked flagd's.

    Raises:
        ConfigurationError: an argument is invalid (naming it), or the
            ``flagd`` extra is not installed.
    """
    from aioflags._systems._flagd._sync import _settings
    from aioflags._systems._flagd._sync._link import FlagdOptions, check_extra
    from aioflags._systems._flagd._sync._source import (
        FlagdShared,
        flagd_initializer,
        flagd_synchronizer,
    )

    where = WHERE
    _settings.refuse_provider_names(where, host, port, saved_state)
    target = _settings.target_of(where, target, socket_path)
    given = {
        "selector": selector,
        "provider_id": provider_id,
        "tls": tls,
        "retry_grace_period": retry_grace_period,
        "deadline": deadline,
        "stream_deadline": stream_deadline,
        "keepalive": keepalive,
        "max_message_size": max_message_size,
    }
    for name, value in given.items():  # (their declarations say how)
        check(_settings.OPTION[name], value, where)
    _settings.check_cert_path(where, cert_path, tls=tls)
    codes = _settings.status_names(where, fatal_status_codes)
    first, most = _settings.backoff(where, retry_backoff)
    check_file_reading(where, None, fractional)
    check_extra()
    options = FlagdOptions(
        target=target,
        selector=selector or None,
        provider_id=provider_id or None,
        tls=tls,
        cert_path=None if cert_path is None else os.fspath(cert_path),
        fatal_status_codes=frozenset(codes),
        deadline=float(deadline),
        stream_deadline=float(stream_deadline),
        keepalive=None if keepalive is None else float(keepalive),
        retry_backoff=(float(first), float(most)),
        fractional=fractional,
        max_message_size=max_message_size,
    )
    shared = FlagdShared()  # (the versions both stamp, and more)
    name = "flagd"  # (the flag system's: its sources serve its flags)
    # One synchronizer and nothing to fail over to: it is never given up
    # on (it retries by itself), as daemon mode's store is not.
    return DataSystem(
        initializers=(mark_flag_system(flagd_initializer(options, shared), name),),
        synchronizers=(
            mark_flag_system(mark_streaming(flagd_synchronizer(options, shared)), name),
        ),
        initializing_timeout=math.inf,
        interrupted_timeout=math.inf,
        plane=plane_of(
            plane,
            "flagd",
            plane_source(
                options.target, options.selector, options.provider_id, fractional
            ),
            name,
        ),
        grace_period=float(retry_grace_period),
    )
