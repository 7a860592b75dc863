"""Size and dependency checks that ruff and mypy do not make (run by ``make lint``).

* no function or method longer than ``--max-function`` lines (60);
* no module longer than ``--max-module`` lines (300) unless its first lines carry a
  ``# size: <reason>`` comment saying why it is one unit;
* no import cycle between the project's own modules (module-level imports and imports inside
  functions both count: a cycle through a lazy import is still a cycle in the design).

    python scripts/check_shape.py recsys predictors

Exit code 1 with one line per problem, 0 when the tree is clean.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZE_REASON = "# size:"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def long_functions(tree: ast.AST, limit: int) -> list[tuple[str, int, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > limit:
                out.append((node.name, node.lineno, length))
    return out


def has_size_reason(text: str) -> bool:
    return any(line.startswith(SIZE_REASON) for line in text.splitlines()[:15])


def imports_of(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (``from a import b`` counts a.b when that is a module)."""
    out: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                out.add(t)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("packages", nargs="+", help="package directories to check, e.g. recsys predictors")
    p.add_argument("--max-function", type=int, default=60)
    p.add_argument("--max-module", type=int, default=300)
    args = p.parse_args(argv)
    files = sorted(f for pkg in args.packages for f in (REPO / pkg).rglob("*.py"))
    trees = {f: ast.parse(f.read_text(), str(f)) for f in files}
    known = {module_name(f) for f in files}
    problems = []
    graph: dict[str, set[str]] = {}
    for f, tree in trees.items():
        rel = f.relative_to(REPO)
        text = f.read_text()
        n_lines = len(text.splitlines())
        if n_lines > args.max_module and not has_size_reason(text):
            problems.append(f"{rel}: {n_lines} lines (> {args.max_module}) without a '{SIZE_REASON}' reason at its top")
        for fname, line, length in long_functions(tree, args.max_function):
            problems.append(f"{rel}:{line}: function {fname} is {length} lines (> {args.max_function})")
        graph[module_name(f)] = imports_of(tree, module_name(f), f.name == "__init__.py", known)
    cycle = find_cycle(graph)
    if cycle:
        problems.append("import cycle: " + " -> ".join(cycle))
    for line in problems:
        print(line)
    print(f"check_shape: {len(files)} modules, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
