"""No import circle in the package: every import statement, at module level or inside a function
(a lazy import is still a dependency), read from the source, forms a graph without cycles.

A circle means two modules each need the other, so neither layer is below the other; the one
there was (faces/detectors.py's factory and the detectors importing its base class back) is why
faces/base.py exists.
"""
from __future__ import annotations

import ast

from conftest import PACKAGE_DIR

ROOT = PACKAGE_DIR / "emotion_perception"
PACKAGE = "emotion_perception"


def module_names() -> dict[str, bool]:
    """Dotted module name -> whether it is a package (__init__.py)."""
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        names[".".join(parts[:-1] if is_package else parts)] = is_package
    return names


def imports_of(name: str, is_package: bool, modules: dict[str, bool]) -> set[str]:
    """The package's modules that module ``name`` imports anywhere in its source."""
    path = ROOT.parent.joinpath(*name.split(".")) / "__init__.py" if is_package else \
        ROOT.parent.joinpath(*name.split(".")).with_suffix(".py")
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name: its nearest module
                target = target.rpartition(".")[0]
            if target and target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, is_package, modules) for name, is_package in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_and_relative_imports():
    """The reader resolves what the package really writes: a relative import of a sibling module,
    of a name in a parent package, and an import inside a function."""
    graph = import_graph()
    assert "emotion_perception.faces.base" in graph["emotion_perception.faces.mtcnn"]
    assert "emotion_perception.faces" in graph["emotion_perception.engine.core"]  # from ..faces import crop_face
    assert "emotion_perception.faces.mtcnn" in graph["emotion_perception.faces.detectors"]  # inside _mtcnn()


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_package():
    assert cycles(import_graph()) == []
