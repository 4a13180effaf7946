"""App packages for ``app upload``: the manifest check and the tar.gz the runtime unpacks.

An app is a directory with a ``manifest.json`` naming its executable (``slave``, relative to
the app root). The package is a gzip tar whose members are relative to the app root (the
runtime unpacks it into the app's spool directory), with file modes preserved so that the
slave stays executable. ``__pycache__`` and ``.git`` are left out.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
EXCLUDED = frozenset({"__pycache__", ".git"})


class PackageError(ValueError):
    """The app directory, manifest or package cannot be uploaded; the message says why."""


@dataclass(frozen=True)
class Package:
    """What ``app upload`` writes: ``apps/<name>`` and ``manifests/<name>``."""

    name: str
    manifest: dict[str, Any]
    archive: bytes  # tar.gz


def parse_manifest(text: str, source: str) -> dict[str, Any]:
    """The manifest as a JSON object with a ``slave``; raises PackageError naming the field."""
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PackageError(f"{source}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(manifest, dict):
        raise PackageError(f"{source}: a manifest must be a JSON object")
    slave = manifest.get("slave")
    if slave is None:
        raise PackageError(f"{source}: $.slave is required (the app's executable)")
    if not isinstance(slave, str) or not slave:
        raise PackageError(f"{source}: $.slave must be a non-empty string")
    env = manifest.get("environment", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise PackageError(f"{source}: $.environment must be a map of strings")
    name = manifest.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise PackageError(f"{source}: $.name must be a non-empty string")
    return manifest


def load_manifest(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PackageError(
            f"{path}: no manifest (expected {MANIFEST_FILE} or --manifest)"
        ) from None
    except UnicodeDecodeError:
        raise PackageError(f"{path}: a manifest must be UTF-8 JSON") from None
    return parse_manifest(text, str(path))


def check_slave(root: Path, slave: str) -> None:
    """The slave must be a regular, executable file inside the app directory."""
    path = root / slave
    if not path.is_file():
        raise PackageError(f"the slave '{slave}' named by the manifest is not a file in {root}")
    if not os.access(path, os.X_OK):
        raise PackageError(f"the slave '{slave}' is not executable (chmod u+x {path})")


def _excluded(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if Path(info.name).name in EXCLUDED else info


def pack_directory(root: Path) -> bytes:
    """A tar.gz of everything under ``root``, members relative to it, modes kept."""
    buffer = io.BytesIO()
    # A fixed mtime in the gzip header: the same tree packs to the same bytes.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for child in sorted(root.iterdir()):
            tar.add(child, arcname=child.name, filter=_excluded)
    return buffer.getvalue()


def check_archive(archive: bytes, slave: str, source: str) -> None:
    """A given ``--package`` must be a tar.gz holding an executable slave."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members = {os.path.normpath(m.name): m for m in tar.getmembers()}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PackageError(f"{source}: not a tar.gz archive ({exc})") from None
    member = members.get(os.path.normpath(slave))
    if member is None or not member.isfile():
        raise PackageError(f"{source}: the slave '{slave}' is not a file in the archive")
    if not member.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        raise PackageError(f"{source}: the slave '{slave}' is not executable in the archive")


def build(
    path: Path,
    *,
    name: str | None = None,
    manifest_file: Path | None = None,
    package_file: Path | None = None,
) -> Package:
    """Read, check and pack the app at ``path`` (or take ``package_file`` as the archive)."""
    root = path.resolve()
    if package_file is None and not root.is_dir():
        raise PackageError(f"{path}: not a directory")
    manifest = load_manifest(manifest_file or root / MANIFEST_FILE)
    slave: str = manifest["slave"]
    if package_file is not None:
        archive = package_file.read_bytes()
        check_archive(archive, slave, str(package_file))
    else:
        check_slave(root, slave)
        archive = pack_directory(root)
    app = name or manifest.get("name") or root.name
    return Package(app, manifest, archive)


__all__ = [
    "EXCLUDED",
    "MANIFEST_FILE",
    "Package",
    "PackageError",
    "build",
    "check_archive",
    "check_slave",
    "load_manifest",
    "pack_directory",
    "parse_manifest",
]
