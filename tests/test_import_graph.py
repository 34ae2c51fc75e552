"""The package's layers: no import cycle between its packages, and no domain code importing the HTTP layer.

The graph is read from the source with `ast` (every `import`, lazy ones inside functions too), one
node per top-level package or module under loraforge/ (docs/architecture.md draws it).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "loraforge"
# Only these may import loraforge.api: the CLI commands that start a server.
MAY_IMPORT_API = {"api", "commands"}


def _node_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    if parts[0] != "loraforge" or len(parts) < 2:
        return None
    name = parts[1]
    return name if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file() else None


def package_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """{package: packages it imports} over every .py file under `root` (the package itself excluded)."""
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        source = path.relative_to(root).parts[0].removesuffix(".py")
        targets = graph.setdefault(source, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            targets.update(t for t in map(_node_of, names) if t and t != source)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one package (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph()
    assert {"api", "usecases", "jobstate", "dispatch", "worker", "training"} <= set(graph)
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_domain_code_never_imports_the_http_layer() -> None:
    importers = sorted(p for p, targets in package_graph().items() if "api" in targets)
    assert set(importers) <= MAY_IMPORT_API, importers
