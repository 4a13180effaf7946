"""Profiles: how an app's pool behaves. A typed schema; every default lives here.

Stored as a msgpack map in ``profiles/<name>``. Keys are kebab-case as in the original
(``pool-limit``, ``queue-limit`` …); unknown keys are ignored so old profiles load.
Timeouts are seconds (floats allowed).
"""

from __future__ import annotations

from typing import Any

import msgspec

from cocaine.errors import ConfigError


class IsolateSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    type: str = "process"
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class Profile(msgspec.Struct, kw_only=True, forbid_unknown_fields=False, rename="kebab"):
    name: str = "default"
    pool_limit: int = 10
    queue_limit: int = 100
    concurrency: int = 10
    grow_threshold: int | None = None
    spawn_timeout: float = 1.0
    handshake_timeout: float = 5.0
    heartbeat_timeout: float = 30.0
    seal_timeout: float = 60.0
    terminate_timeout: float = 10.0
    idle_timeout: float = 600.0
    request_timeout: float = 86400.0
    crashlog_limit: int = 50
    log_output: bool = False
    publish_on: int = 0
    unpublish_under: int = 0
    isolate: IsolateSpec = msgspec.field(default_factory=IsolateSpec)

    @property
    def threshold(self) -> int:
        """Queue depth per extra worker: the profile's, else max(1, queue/pool/2)."""
        if self.grow_threshold is not None:
            return self.grow_threshold
        return max(1, self.queue_limit // self.pool_limit // 2)


_POSITIVE = (
    "pool_limit",
    "concurrency",
    "heartbeat_timeout",
    "spawn_timeout",
    "handshake_timeout",
    "terminate_timeout",
    "request_timeout",
)
_NON_NEGATIVE = ("queue_limit", "seal_timeout", "idle_timeout", "crashlog_limit")
ISOLATES = ("process", "legacy_process")


def parse_profile(name: str, data: Any) -> Profile:
    """Validate a decoded profile; errors name the bad field (``$.pool-limit: …``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"profile '{name}': must be a map, got {type(data).__name__}")
    data = {k: v for k, v in data.items() if k != "name"}
    try:
        profile = msgspec.convert(data, Profile, strict=False)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).rpartition(" - at ")
        raise ConfigError(f"profile '{name}': {where.strip('`')}: {text}") from None
    profile.name = name
    for field in _POSITIVE:
        if getattr(profile, field) <= 0:
            raise ConfigError(f"profile '{name}': $.{field.replace('_', '-')}: must be > 0")
    for field in _NON_NEGATIVE:
        if getattr(profile, field) < 0:
            raise ConfigError(f"profile '{name}': $.{field.replace('_', '-')}: must be >= 0")
    if profile.grow_threshold is not None and profile.grow_threshold <= 0:
        raise ConfigError(f"profile '{name}': $.grow-threshold: must be > 0")
    if profile.isolate.type not in ISOLATES:
        raise ConfigError(
            f"profile '{name}': $.isolate.type: unknown isolate {profile.isolate.type!r} "
            f"(supported: {', '.join(ISOLATES)})"
        )
    return profile


def profile_report(profile: Profile) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(profile)
    return out


__all__ = ["ISOLATES", "IsolateSpec", "Profile", "parse_profile", "profile_report"]
