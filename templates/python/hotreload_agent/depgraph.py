"""Module-level import graph and the reload order derived from it."""

import ast
import graphlib
from typing import Dict, Iterable, List, Set

Graph = Dict[str, Set[str]]  # module -> modules it imports (within the known set)


def _module_level_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Walk the tree but skip function bodies: imports there run at call time
    (and are the usual way to break cycles), so they do not bind old objects."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                stack.append(child)


def _resolve_relative(module: str, is_package: bool, level: int, target: str) -> str:
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    base = ".".join(parts)
    if target:
        return base + "." + target if base else target
    return base


def imports_of(source: bytes, module: str, is_package: bool, known: Set[str]) -> Set[str]:
    """Known modules that `module` imports at module level."""
    tree = ast.parse(source)
    deps: Set[str] = set()
    for node in _module_level_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                # `import a.b.c` executes a, a.b and a.b.c and binds `a`.
                for i in range(1, len(parts) + 1):
                    deps.add(".".join(parts[:i]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module or "")
            else:
                base = node.module or ""
            if base:
                deps.add(base)
            for alias in node.names:
                # `from pkg import mod` binds a submodule when one exists.
                deps.add(base + "." + alias.name if base else alias.name)
    deps.discard(module)
    return deps & known


def dependents_closure(graph: Graph, changed: Iterable[str]) -> Set[str]:
    """Changed modules plus everything that imports them, transitively."""
    reverse: Graph = {name: set() for name in graph}
    for name, deps in graph.items():
        for dep in deps:
            reverse.setdefault(dep, set()).add(name)
    result: Set[str] = set()
    stack = [c for c in changed if c in graph]
    while stack:
        name = stack.pop()
        if name in result:
            continue
        result.add(name)
        stack.extend(reverse.get(name, ()))
    return result


def _strongly_connected(graph: Graph) -> List[List[str]]:
    """Kosaraju, iterative (deep package trees must not hit the recursion limit)."""
    order: List[str] = []
    seen: Set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(graph[start])))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                stack.pop()
                order.append(node)
    reverse: Graph = {name: set() for name in graph}
    for name, deps in graph.items():
        for dep in deps:
            reverse[dep].add(name)
    components: List[List[str]] = []
    assigned: Set[str] = set()
    for start in reversed(order):
        if start in assigned:
            continue
        component, stack = [], [start]
        assigned.add(start)
        while stack:
            node = stack.pop()
            component.append(node)
            for nxt in reverse[node]:
                if nxt not in assigned:
                    assigned.add(nxt)
                    stack.append(nxt)
        components.append(sorted(component))
    return components


def reload_steps(graph: Graph, members: Set[str]) -> List[List[str]]:
    """Steps in dependency order (dependencies first). An import cycle becomes
    one step whose members are loaded together, as on a cold start."""
    sub: Graph = {m: graph.get(m, set()) & members for m in members}
    components = _strongly_connected(sub)
    owner = {name: i for i, comp in enumerate(components) for name in comp}
    sorter: "graphlib.TopologicalSorter[int]" = graphlib.TopologicalSorter()
    for i, comp in enumerate(components):
        sorter.add(i, *{owner[d] for m in comp for d in sub[m] if owner[d] != i})
    sorter.prepare()
    steps: List[List[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda i: components[i][0])
        for i in ready:
            steps.append(components[i])
            sorter.done(i)
    return steps
