"""Argument and value types of interface messages, and their conversion from wire values.

The wire dialect has one string type (raw), so a decoded frame holds ``bytes`` wherever a
string was sent. The interface tables say which of those are text; these descriptors turn wire
values into the Python values a handler expects, or raise ``TypeError`` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Convert = Callable[[Any], Any]


def textify(value: Any) -> Any:
    """Recursively turn UTF-8 ``bytes`` into ``str`` in a dynamic document (maps, arrays)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, list):
        return [textify(v) for v in value]
    if isinstance(value, dict):
        return {textify(k): textify(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Type:
    """A named wire type with its converter."""

    name: str
    convert: Convert

    def __call__(self, value: Any) -> Any:
        return self.convert(value)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TypeError("expected a UTF-8 string") from exc
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {_kind(value)}")


def _blob(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise TypeError(f"expected a string or bytes, got {_kind(value)}")


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    raise TypeError(f"expected an integer, got {_kind(value)}")


def _uint(value: Any) -> int:
    if type(value) is int and value >= 0:
        return value
    raise TypeError(f"expected an unsigned integer, got {_kind(value)}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected a boolean, got {_kind(value)}")


def _kind(value: Any) -> str:
    names: dict[type, str] = {bytes: "string", str: "string", list: "array", dict: "map"}
    return names.get(type(value), type(value).__name__)


TEXT = Type("string", _text)
BLOB = Type("bytes", _blob)
INT = Type("int", _int)
UINT = Type("uint", _uint)
BOOL = Type("bool", _bool)
ANY = Type("any", lambda v: v)
DYNAMIC = Type("dynamic", textify)


def list_of(item: Type) -> Type:
    def convert(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {_kind(value)}")
        return [item(v) for v in value]

    return Type(f"array<{item.name}>", convert)


def map_of(key: Type, item: Type) -> Type:
    def convert(value: Any) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise TypeError(f"expected a map, got {_kind(value)}")
        return {key(k): item(v) for k, v in value.items()}

    return Type(f"map<{key.name},{item.name}>", convert)


@dataclass(frozen=True)
class Args:
    """The argument list of a message: required types, then optional ones."""

    required: tuple[Type, ...] = ()
    optional: tuple[Type, ...] = ()
    # Derived once for the hot path: every type in order, and whether all of them are ANY.
    types: tuple[Type, ...] = field(init=False, repr=False, compare=False)
    passthrough: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types = self.required + self.optional
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "passthrough", all(t is ANY for t in types))

    def convert(self, values: list[Any]) -> list[Any]:
        types = self.types
        n, lo, hi = len(values), len(self.required), len(types)
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise TypeError(f"expected {want} arguments, got {n}")
        if self.passthrough:
            return values
        out = []
        for i in range(n):
            try:
                out.append(types[i].convert(values[i]))
            except TypeError as exc:
                raise TypeError(f"argument {i + 1}: {exc}") from None
        return out


NO_ARGS = Args()
ANY_ARGS = Args((), (ANY,) * 16)

__all__ = [
    "ANY",
    "ANY_ARGS",
    "BLOB",
    "BOOL",
    "DYNAMIC",
    "INT",
    "NO_ARGS",
    "TEXT",
    "UINT",
    "Args",
    "Type",
    "list_of",
    "map_of",
    "textify",
]
