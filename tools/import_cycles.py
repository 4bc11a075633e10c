"""Import cycles among the modules of a package (make lint): every import of one of its modules is
an edge, at the top of a file or not, so a cycle cannot hide inside a function.

    .venv/bin/python tools/import_cycles.py python/oxport     # exit 1 and list them if any
"""
from __future__ import annotations

import ast
import os
import sys


def imports(package_dir: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports (relative, or absolute through the package)."""
    package = os.path.basename(os.path.normpath(package_dir))
    modules = {f[:-3] for f in os.listdir(package_dir) if f.endswith(".py")}
    graph: dict[str, set[str]] = {}
    for module in modules:
        with open(os.path.join(package_dir, module + ".py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                parts = (node.module or "").split(".")
                if node.level == 0 and parts[0] != package:
                    continue
                inside = parts[1:] if node.level == 0 else parts
                if inside and inside[0]:
                    found.add(inside[0])
                else:   # `from . import a, b`
                    found.update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == package and len(parts) > 1:
                        found.add(parts[1])
        graph[module] = {m for m in found if m in modules and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle, each once, starting at its smallest module name."""
    out: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                out.append(path)
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for module in sorted(graph):
        walk(module, module, [module])
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = cycles(imports(sys.argv[1]))
    for cycle in found:
        print("import cycle: " + " -> ".join([*cycle, cycle[0]]), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
