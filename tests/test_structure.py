"""The package's import structure: no cycles, and no import from a lower layer into a higher one.

Every import counts, also those inside functions (they run too; only when).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lower layers never import higher ones. data/ and models/ know nothing of tasks, the lifecycle,
# the entry points or the CLI; the lifecycle imports no command: it is handed one (cli.COMMANDS).
LAYERS: dict[str, int] = {
    "errors": 0, "utils": 0,
    "data": 1, "models": 1, "metrics": 1,
    "tasks": 2, "config": 2, "added_keys": 2,
    "callbacks": 3, "tracking": 3, "aggregate": 3,
    "build": 4, "hardware": 4, "scale": 4,
    "lifecycle": 5, "commands": 5, "deploy": 5, "tuning": 5,
    "cli": 6, "train": 6, "eval": 6, "predict": 6, "compare": 6, "submit": 6, "__main__": 6,
}  # fmt: skip


def _modules() -> dict[str, Path]:
    out = {}
    for p in (SRC / "litvision").rglob("*.py"):
        name = ".".join(p.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("litvision"):
                    graph[name].add(t)
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_the_package() -> None:
    """Catches: e.g. cli -> lifecycle -> cli (the old train <-> eval <-> cli circle)."""
    assert cycles(import_graph()) == []


def test_every_subpackage_has_a_layer() -> None:
    unknown = {m.split(".")[1] for m in _modules() if "." in m and _layer(m) is None}
    assert not unknown, f"add these to LAYERS in {__file__}: {sorted(unknown)}"


def test_no_import_from_a_lower_layer_into_a_higher_one() -> None:
    """Catches: data/ or models/ importing tasks/, the lifecycle, the entry points or the CLI."""
    wrong = [
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        for b in targets
        if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a)
    ]
    assert not wrong, wrong


def test_the_checks_see_a_planted_cycle_and_an_upward_import() -> None:
    graph = {"litvision.data.a": {"litvision.tasks.b"}, "litvision.tasks.b": {"litvision.data.a"}}
    assert cycles(graph) == [["litvision.data.a", "litvision.tasks.b"]]
    assert _layer("litvision.tasks.b") > _layer("litvision.data.a")


def test_the_lifecycle_is_handed_its_commands() -> None:
    """The lifecycle imports no command and names none by a "module:function" string: the CLI's one table
    (litvision.cli.COMMANDS) hands it each command's spec, with the runner imported directly.
    Catches: runner.py calling "litvision.commands.fit:run" through importlib again (the string hides a
    commands -> lifecycle -> commands circle from the graph), or importing a command module itself."""
    import re

    commands = ("commands", "tuning", "deploy", "cli", "train")
    wrong = [
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        if a.startswith("litvision.lifecycle")
        for b in targets
        if b.split(".")[1] in commands
    ]
    wrong += [
        f"{p.name}: {s}"
        for p in sorted((SRC / "litvision" / "lifecycle").glob("*.py"))
        for s in re.findall(r"litvision(?:\.\w+)+:\w+", p.read_text())
    ]
    assert not wrong, wrong
