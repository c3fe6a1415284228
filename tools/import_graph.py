"""Print the import graph of a package and its import cycles: ``python -m tools.import_graph``.

Reads the source with :mod:`ast` (nothing is imported or run), so it works on a checkout
without any dependency installed. Every ``import`` counts, at module level or inside a
function: a cycle held together by a function-level import is still a cycle. Imports under
``if TYPE_CHECKING:`` are left out, since they never run.

Usage: ``python -m tools.import_graph [PACKAGE] [--packages]``. ``--packages`` folds modules
into their subpackages (``kms_service.wire``, ``kms_service.operations``...), the picture
docs/architecture.md draws. Exits 1 if there is a cycle, else 0.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Container, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

Graph = dict[str, set[str]]


def module_files(package: str, root: Path = ROOT) -> dict[str, Path]:
    """Every module of ``package`` (``__init__`` as the package itself), by dotted name."""
    modules: dict[str, Path] = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(
    tree: ast.AST, module: str, is_package: bool, modules: Container[str]
) -> Iterator[str]:
    """The dotted names a module imports: ``from a import b`` gives ``a.b`` if that is one of
    ``modules``, else ``a`` (a name defined in ``a``)."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # A submodule (``from pkg import sub``) or a name defined in ``base``.
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
        pending.extend(ast.iter_child_nodes(node))


def build_graph(package: str, root: Path = ROOT) -> Graph:
    """Module -> the modules of ``package`` it imports (itself excluded)."""
    modules = module_files(package, root)
    graph: Graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {
            imported
            for imported in _imported_names(tree, name, path.name == "__init__.py", modules)
            if imported in modules and imported != name
        }
        graph[name] = targets
    return graph


def fold(graph: Graph, depth: int) -> Graph:
    """The graph with every module named by its first ``depth`` dotted parts."""
    folded: Graph = {}
    for source, targets in graph.items():
        head = ".".join(source.split(".")[:depth])
        edges = folded.setdefault(head, set())
        edges.update(".".join(target.split(".")[:depth]) for target in targets)
        edges.discard(head)
    return folded


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    """Print the graph (one ``module -> imports`` line each) and any cycles."""
    parser = argparse.ArgumentParser(prog="python -m tools.import_graph", description=__doc__)
    parser.add_argument("package", nargs="?", default="kms_service")
    parser.add_argument("--packages", action="store_true", help="fold modules into subpackages")
    arguments = parser.parse_args(argv)
    graph = build_graph(arguments.package)
    if arguments.packages:
        graph = fold(graph, arguments.package.count(".") + 2)
    for source in sorted(graph):
        print(f"{source} -> {', '.join(sorted(graph[source])) or '(nothing)'}")
    found = cycles(graph)
    for component in found:
        print(f"CYCLE: {' <-> '.join(component)}")
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports, {len(found)} cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
