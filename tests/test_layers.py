"""The house rules of ARCHITECTURE.md, read from the source: knowledge flows down, and no package
imports itself in a circle.

Layers, bottom to top: engine/ and ldm/ (side by side, neither knows the other), nodes/, then ui/
and main.py. Every import statement counts, including those inside functions (a lazy import
upward is still an upward arrow).
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "ldm", "nodes", "ui")
# what each package may never import (top-level module names)
FORBIDDEN = {
    "engine": {"torch", "ldm", "nodes", "ui", "main", "fastapi", "gradio", "tools"},
    "ldm": {"engine", "nodes", "ui", "main", "tools"},
    "nodes": {"ui", "main", "tools"},
    "ui": {"main", "tools"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Absolute module names imported anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            out.add(stem)
            # `from pkg import mod` imports the submodule when there is one
            out.update(f"{stem}.{alias.name}" for alias in node.names if f"{stem}.{alias.name}" in MODULES)
    return out


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_upward_or_sideways_import(name):
    layer = name.split(".")[0]
    bad = sorted(m for m in _imports(name, MODULES[name]) if m.split(".")[0] in FORBIDDEN[layer])
    assert not bad, f"{name} imports {bad}: against the layering in ARCHITECTURE.md"


def test_no_import_cycle_between_modules():
    graph = nx.DiGraph()
    for name, path in MODULES.items():
        graph.add_node(name)
        for target in _imports(name, path):
            if target in MODULES and target != name:
                graph.add_edge(name, target)
    # a package's __init__ re-exporting its own submodules is not a cycle of knowledge
    cycles = [c for c in nx.simple_cycles(graph)
              if not any(b.startswith(a + ".") or a.startswith(b + ".") for a in c for b in c if a != b)]
    assert not cycles, f"import cycles: {cycles[:5]}"
