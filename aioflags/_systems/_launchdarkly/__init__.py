"""LaunchDarkly's flag system: its flags as LaunchDarkly's SDKs evaluate them."""

from __future__ import annotations

from ._system import LAUNCHDARKLY, LaunchDarkly

__all__ = ["LAUNCHDARKLY", "LaunchDarkly"]
