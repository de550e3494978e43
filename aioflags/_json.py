"""The JSON value alias used wherever flag data or attribute values appear."""

from __future__ import annotations

from typing import Any, TypeAlias

#: Any JSON value: None, bool, int, float, str, list or dict of JSON values.
#: Kept as ``Any`` on purpose: flag variations are user data whose shape the
#: type checker cannot know, and a recursive union would force every caller to
#: narrow values they already know the shape of.
JSONValue: TypeAlias = Any
JSONObject: TypeAlias = dict[str, Any]
