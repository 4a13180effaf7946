"""Unpack an app archive safely: nothing may land outside the app's directory.

The archive is what ``cocaine-tool app upload`` stores: a msgpack raw string holding a tar
(any compression). Members with absolute paths or ``..``, links leaving the directory, and
device files are refused with an error naming the member; nothing is written in that case.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from pathlib import Path

import msgpack

from cocaine.errors import ConfigError


def archive_bytes(blob: bytes) -> bytes:
    """The tar bytes inside a stored ``apps/<name>`` value (msgpack raw, or the bare tar)."""
    try:
        value = msgpack.unpackb(blob, raw=True)
    except Exception:
        return blob
    return value if isinstance(value, bytes) else blob


def _check(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith("/") or ".." in parts:
        raise ConfigError(f"archive member {name!r} would be written outside the app directory")
    if member.isdev() or member.isfifo():
        raise ConfigError(f"archive member {name!r} is a device or fifo, which is not allowed")
    if member.issym() or member.islnk():
        target = member.linkname
        base = Path(name).parent if member.issym() else Path(".")
        resolved = Path("/x") / base / target
        if (
            target.startswith("/")
            or ".." in Path(*resolved.parts[1:]).parts
            or not str(resolved.resolve()).startswith("/x")
        ):
            raise ConfigError(f"archive member {name!r} links outside the app directory")


def unpack(archive: bytes, dest: Path) -> None:
    """Replace ``dest`` with the archive's contents, atomically from a reader's point of view."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check(member)
                tar.extractall(staging, members=members, filter="data")
        except tarfile.TarError as exc:
            raise ConfigError(f"the app archive is not a valid tar archive: {exc}") from None
        old = dest.with_name(f".{dest.name}.old")
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


__all__ = ["archive_bytes", "unpack"]
