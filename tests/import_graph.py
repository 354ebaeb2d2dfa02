"""Shared by the import-graph tests (tests/test_layers.py, tests/sem/test_sem_layers.py)."""

from __future__ import annotations


def find_cycle(direct: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(direct.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(direct):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
