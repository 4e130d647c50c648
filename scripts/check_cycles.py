"""Fail on any import cycle between the modules of `src/yolor_deploy`, lazy imports included.

Every `import` / `from ... import` anywhere in a module (top level, inside functions, under `if
TYPE_CHECKING:`) is an edge to the yolor_deploy module it names; `from . import x` is an edge to the
submodule `x` when one exists, else to the package. A package's `__init__` is left out of the graph as
a source (importing `a.b` runs `a/__init__` first: that is Python's order, not a design cycle); edges *to*
a package mean its `__init__`. Cycles are the strongly connected components of more than one module,
plus self-imports. Exit status 1 and one line per cycle when any is found.

    python scripts/check_cycles.py [src]
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "yolor_deploy"


def module_names(src: Path) -> dict[str, Path]:
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(anchor + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        for name in names:
            target = _target(name, modules)
            if target is not None:
                found.add(target)
    found.discard(module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node, and self-loops (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in graph.get(node, ()):
                    out.append(sorted(comp))
    return sorted(out)


def graph_of(src: Path) -> dict[str, set[str]]:
    modules = module_names(src)
    graph = {}
    for name, path in modules.items():
        edges = imports(name, path, modules)
        if path.name == "__init__.py":  # a package's own re-exports are not cycles (see the docstring)
            edges = {e for e in edges if not e.startswith(name + ".")}
        graph[name] = edges
    return graph


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    found = cycles(graph_of(src))
    for comp in found:
        print(f"import cycle: {' <-> '.join(comp)}")
    if found:
        print(f"{len(found)} import cycle(s) in {src / PACKAGE} (lazy imports count): move the shared piece "
              "to its own module", file=sys.stderr)
        return 1
    print(f"no import cycles in {src / PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
