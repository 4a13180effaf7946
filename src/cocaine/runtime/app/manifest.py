"""Manifests: what an app is. ``slave`` (the executable, relative to the app's directory) and
``environment`` (extra variables for its workers). Stored as a msgpack map in ``manifests/<app>``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from cocaine.errors import ConfigError


class Manifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    slave: str
    environment: dict[str, str] = msgspec.field(default_factory=dict)


def parse_manifest(app: str, data: Any) -> Manifest:
    if not isinstance(data, dict):
        raise ConfigError(f"manifest of '{app}': must be a map, got {type(data).__name__}")
    if "slave" not in data:
        raise ConfigError(f"manifest of '{app}': $.slave: required field is missing")
    environment = data.get("environment")
    if isinstance(environment, dict):
        for key, value in environment.items():
            if not isinstance(key, str) or not isinstance(value, str):
                bad = value if isinstance(key, str) else key
                raise ConfigError(
                    f"manifest of '{app}': $.environment.{key}: expected a string, "
                    f"got {type(bad).__name__}"
                )
    try:
        manifest = msgspec.convert(data, Manifest, strict=False)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).rpartition(" - at ")
        raise ConfigError(f"manifest of '{app}': {where.strip('`')}: {text}") from None
    if not manifest.slave or "\x00" in manifest.slave:
        raise ConfigError(f"manifest of '{app}': $.slave: must be a file name")
    return manifest


__all__ = ["Manifest", "parse_manifest"]
