"""The package layering of DESIGN.md §2: imports point down only, and the protocol has no I/O.

    errors ← protocol ← idl ← rpc ← client ← worker ← runtime, proxy, tool, the root, the aliases

Every ``import`` in ``src/cocaine`` counts, wherever it stands: inside functions, inside
``try`` blocks and inside ``if TYPE_CHECKING:``. The alias modules (``cocaine.services`` …)
exist for code written for the original framework; they only re-export.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "cocaine"

# What each layer may import from the project (besides itself). Layers not listed may import
# anything in the project.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "protocol": {"errors"},
    "idl": {"errors", "protocol"},
    "rpc": {"errors", "protocol", "idl"},
    "client": {"errors", "protocol", "idl", "rpc"},
    "worker": {"errors", "protocol", "idl", "rpc", "client"},
}
TOP = {"runtime", "proxy", "tool"}
ALIASES = {"services", "exceptions", "logging", "decorators"}
NO_IO = {
    "asyncio",
    "socket",
    "time",
    "logging",
    "uvloop",
    "selectors",
    "ssl",
    "threading",
    "subprocess",
    "concurrent",
}


def module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """True if ``name`` is a module or package of the source tree."""
    parts = name.split(".")
    if parts[0] != "cocaine":
        return False
    base = SRC.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_in(source: str, module: str, is_package: bool) -> set[str]:
    """Every module ``source`` imports, as absolute dotted names (``from a import b``: ``a.b``
    when ``b`` is a module of the tree, else ``a``)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                assert node.module is not None
                base = node.module
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if alias.name != "*" and is_module(sub) else base)
    return found


@cache
def all_imports() -> dict[str, set[str]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_of(path)
        out[module] = imports_in(path.read_text(), module, path.name == "__init__.py")
    return out


def layer_of(module: str) -> str:
    """``protocol``, ``idl`` … for subpackages; ``errors``; ``alias``; ``root``; or ``external``."""
    parts = module.split(".")
    if parts[0] != "cocaine":
        return "external"
    if len(parts) == 1:
        return "root"
    if parts[1] in ALIASES and len(parts) == 2:
        return "alias"
    return parts[1]


def violations(layer: str) -> list[str]:
    allowed = ALLOWED[layer] | {layer}
    return sorted(
        f"{module} imports {imported}"
        for module, imported_set in all_imports().items()
        if layer_of(module) == layer
        for imported in imported_set
        if layer_of(imported) != "external" and layer_of(imported) not in allowed
    )


# -- the collector itself -------------------------------------------------------------------------


def test_collector_sees_every_kind_of_import() -> None:
    source = """
from __future__ import annotations
import os.path
from typing import TYPE_CHECKING
from . import graph
from .framing import pack
from .. import errors
from ..rpc.channel import Channel
if TYPE_CHECKING:
    import asyncio
    from cocaine.runtime import context
def later():
    from cocaine.client import Service
    import socket
try:
    import uvloop
except ImportError:
    pass
"""
    found = imports_in(source, "cocaine.protocol.channel", is_package=False)
    assert found >= {
        "os.path",
        "typing",
        "cocaine.protocol.graph",
        "cocaine.protocol.framing",
        "cocaine.errors",
        "cocaine.rpc.channel",
        "asyncio",
        "cocaine.runtime.context",
        "cocaine.client",
        "socket",
        "uvloop",
    }
    assert imports_in("from . import x", "cocaine.idl", is_package=True) == {"cocaine.idl"}


def test_the_tree_is_where_we_look() -> None:
    imports = all_imports()
    assert {"cocaine", "cocaine.errors", "cocaine.protocol.framing", "cocaine.rpc.connection"} <= (
        set(imports)
    )
    assert "cocaine.protocol.framing" in imports["cocaine.rpc.connection"]
    # rpc.channel imports asyncio and the connection only for type checking; both are seen
    assert {"asyncio", "cocaine.rpc.connection"} <= imports["cocaine.rpc.channel"]


# -- the rules ------------------------------------------------------------------------------------


def test_protocol_is_sans_io() -> None:
    bad = sorted(
        f"{module} imports {imported}"
        for module, imported_set in all_imports().items()
        if layer_of(module) == "protocol"
        for imported in imported_set
        if imported.split(".")[0] in NO_IO
    )
    assert bad == []


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_imports_point_down(layer: str) -> None:
    assert violations(layer) == []


@pytest.mark.parametrize("layer", ["protocol", "idl", "rpc", "client", "worker"])
def test_lower_layers_never_import_the_top(layer: str) -> None:
    """Stated on its own so the message names the arrow: nothing below imports the top."""
    bad = sorted(
        f"{module} imports {imported}"
        for module, imported_set in all_imports().items()
        if layer_of(module) == layer
        for imported in imported_set
        if layer_of(imported) in TOP | {"root", "alias"}
    )
    assert bad == []


def test_client_never_imports_the_worker() -> None:
    bad = [
        f"{module} imports {imported}"
        for module, imported_set in all_imports().items()
        if layer_of(module) == "client"
        for imported in imported_set
        if layer_of(imported) == "worker"
    ]
    assert bad == []


def test_every_subpackage_has_a_place() -> None:
    known = set(ALLOWED) | TOP | {"root", "alias"}
    assert {layer_of(m) for m in all_imports()} <= known


def test_nothing_in_the_package_imports_the_alias_modules() -> None:
    bad = sorted(
        f"{module} imports {imported}"
        for module, imported_set in all_imports().items()
        if layer_of(module) != "alias"
        for imported in imported_set
        if layer_of(imported) == "alias"
    )
    assert bad == []


def reexport_problems(source: str) -> list[str]:
    """What in an alias module is more than imports, ``__all__`` and plain renames."""
    tree = ast.parse(source)
    imported: set[str] = set()
    problems = []
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom | ast.Import):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
            continue
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            target, value = node.targets[0].id, node.value
            if (
                target == "__all__"
                and isinstance(value, ast.List | ast.Tuple)
                and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
                )
            ):
                continue
            if isinstance(value, ast.Name) and value.id in imported:
                imported.add(target)  # ``ChokeEvent = EndOfStream``
                continue
        problems.append(f"line {node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return problems


def test_reexport_checker() -> None:
    assert reexport_problems('"""doc"""\nfrom a import b\nc = b\n__all__ = ["b", "c"]\n') == []
    assert reexport_problems("from a import b\ndef f():\n    pass\n") == ["line 2: def f():"]
    assert reexport_problems("x = 1\n") == ["line 1: x = 1"]
    assert reexport_problems("c = d\n") == ["line 1: c = d"]


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_alias_module_only_reexports(name: str) -> None:
    path = PACKAGE / f"{name}.py"
    if not path.exists():
        pytest.skip(f"cocaine/{name}.py does not exist yet")
    source = path.read_text()
    assert reexport_problems(source) == []
    exported = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__":
            exported = {e.value for e in node.value.elts}  # type: ignore[attr-defined]
    assert exported, f"cocaine/{name}.py has no __all__"
