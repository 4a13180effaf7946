"""The runtime's configuration: a typed schema with every default in one place.

The runtime runs with no config file at all. A file, when given, is JSON in the shape of the
original v4 config (unknown sections are ignored); command-line flags override it. A bad field
is reported with its path, e.g. ``$.network.pinned.locator: Expected `int`, got `str```.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec

from cocaine.errors import ConfigError
from cocaine.protocol.framing import DEFAULT_MAX_FRAME_SIZE

DEFAULT_LOCATOR_PORT = 10053


class Paths(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    state: str | None = None  # holds storage, spool and sockets unless set one by one
    runtime: str | None = None  # worker sockets
    spool: str | None = None  # unpacked apps


class Network(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    endpoint: str | None = None  # bind address for every service; None = all interfaces
    hostname: str | None = None  # advertised instead of the bound addresses when set
    pinned: dict[str, int] = msgspec.field(default_factory=dict)
    shared: tuple[int, int] | None = None  # port range for the other services


class Component(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    type: str = ""
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class Logging(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    severity: str = "info"


class Limits(msgspec.Struct, kw_only=True, forbid_unknown_fields=False, rename="kebab"):
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    version: int = 4
    paths: Paths = msgspec.field(default_factory=Paths)
    network: Network = msgspec.field(default_factory=Network)
    logging: Logging = msgspec.field(default_factory=Logging)
    storages: dict[str, Component] = msgspec.field(default_factory=dict)
    services: dict[str, Component] = msgspec.field(default_factory=dict)
    limits: Limits = msgspec.field(default_factory=Limits)
    token: str | None = None
    uuid: str | None = None

    # -- derived ----------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return Path(self.paths.state or default_state_dir())

    @property
    def runtime_dir(self) -> Path:
        return Path(self.paths.runtime) if self.paths.runtime else self.state_dir / "run"

    @property
    def spool_dir(self) -> Path:
        return Path(self.paths.spool) if self.paths.spool else self.state_dir / "spool"

    @property
    def locator_port(self) -> int:
        return self.network.pinned.get("locator", DEFAULT_LOCATOR_PORT)

    def storage_backend(self) -> Component:
        """The backend the storage service uses (``services.storage.args.backend``, 'core')."""
        name = str(self.services.get("storage", Component()).args.get("backend", "core"))
        backend = self.storages.get(name)
        if backend is None:
            if name != "core":
                raise ConfigError(f"$.storages.{name}: no such storage backend")
            backend = Component(type="files", args={"path": str(self.state_dir / "storage")})
        if backend.type not in ("files", "postgres"):
            raise ConfigError(f"$.storages.{name}.type: unknown backend type {backend.type!r}")
        return backend

    @property
    def runlist(self) -> str:
        return str(self.services.get("node", Component()).args.get("runlist", "default"))


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/cocaine``, else ``~/.local/state/cocaine``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cocaine"


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """Load and validate a config file (or none), then apply command-line overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the config must be a JSON object")
    try:
        config = msgspec.convert(data, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_path_first(_name_keys(data, str(exc)))}") from None
    _apply(config, overrides)
    _check(config)
    return config


def _apply(config: Config, overrides: dict[str, Any]) -> None:
    if overrides.get("state_dir"):
        config.paths.state = str(overrides["state_dir"])
    if overrides.get("port") is not None:
        config.network.pinned["locator"] = int(overrides["port"])
    if overrides.get("endpoint"):
        config.network.endpoint = str(overrides["endpoint"])
    if overrides.get("token"):
        config.token = str(overrides["token"])


def _check(config: Config) -> None:
    for name, port in config.network.pinned.items():
        if not 0 <= port < 65536:
            raise ConfigError(f"$.network.pinned.{name}: port {port} is out of range")
    if config.network.shared is not None:
        lo, hi = config.network.shared
        if not 0 < lo <= hi < 65536:
            raise ConfigError(f"$.network.shared: bad port range [{lo}, {hi}]")
    if config.limits.max_frame_size < 1024:
        raise ConfigError("$.limits.max-frame-size: must be at least 1024")


def _name_keys(data: dict[str, Any], message: str) -> str:
    """msgspec writes a map's value as ``[...]``; put the key of the bad value in its place.

    Each ``[...]`` is resolved by converting the data again with that map cut down to one
    entry at a time: the first entry that still fails is the bad one.
    """
    marker = "[...]"
    head, sep, _ = message.partition(marker)
    if not sep or "`$" not in head:
        return message
    where = head[head.rindex("`$") :] + marker  # e.g. `$.network.pinned[...]
    keys = [k for k in where[2 : -len(marker)].split(".") if k]
    node: Any = data
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return message
    for key, value in node.items():
        trial = _replace(data, keys, {key: value})
        try:
            msgspec.convert(trial, Config, strict=True)
        except msgspec.ValidationError as exc:
            if where not in str(exc):
                continue  # this entry is fine; the error is elsewhere
            named = str(exc).replace(where, where[: -len(marker)] + f".{key}", 1)
            return _name_keys(trial, named)
    return message


def _replace(data: dict[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the map at ``keys`` replaced by ``value``."""
    if not keys:
        return dict(value)
    out = dict(data)
    out[keys[0]] = _replace(data[keys[0]], keys[1:], value)
    return out


def _path_first(message: str) -> str:
    """msgspec says 'X - at `$.a.b`'; we say '$.a.b: X'."""
    text, sep, where = message.rpartition(" - at ")
    return f"{where.strip('`')}: {text}" if sep else message


__all__ = ["DEFAULT_LOCATOR_PORT", "Component", "Config", "default_state_dir", "load_config"]
