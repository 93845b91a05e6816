"""Imports point down the stack, and no s2d module reaches itself through its imports. From the bottom:
(types, voting, stats, distributed, artifacts, chat, plots, tracking, console) → (routing, config, llm, training) →
tasks → (scoring, cache, methods, filters) → (stages, organism) → report → (rescore, paper, run).
Read from the source with `ast` (imports inside functions too), so a new upward import or a circle fails here."""

import ast
from pathlib import Path

import pytest

from conftest import ROOT

BASE = ("s2d.types", "s2d.voting", "s2d.stats", "s2d.distributed", "s2d.artifacts", "s2d.chat", "s2d.plots",
        "s2d.tracking", "s2d.console")
MODELS = (*BASE, "s2d.llm", "s2d.tasks")  # what a method or a filter builds on
STAGES = (*MODELS, "s2d.routing", "s2d.scoring", "s2d.cache", "s2d.config", "s2d.methods", "s2d.filters",
          "s2d.training")
ALLOWED = {  # module (or package) → the prefixes it may import besides its own package; nothing else
    **{m: () for m in BASE},  # they import no s2d module
    "s2d.routing": ("s2d.stats",),
    "s2d.scoring": ("s2d.stats", "s2d.types", "s2d.voting", "s2d.tasks"),  # a task's grader and its extra figures
    "s2d.cache": ("s2d.artifacts", "s2d.tasks"),  # a task's version, data files and drafting keys its stages
    "s2d.config": ("s2d.types", "s2d.routing"),
    "s2d.llm": BASE,
    "s2d.training": BASE,  # the trainer encodes chats with s2d.chat, as the backends do, without a backend
    "s2d.tasks": (*BASE, "s2d.llm"),
    "s2d.methods": MODELS,
    "s2d.filters": MODELS,
    "s2d.organism": (*MODELS, "s2d.cache", "s2d.methods", "s2d.filters", "s2d.training"),  # a recipe: it trains
    "s2d.stages": STAGES,
    "s2d.report": (*BASE, "s2d.routing"),  # draws with s2d.plots, never through a stage
    "s2d.rescore": (*STAGES, "s2d.stages", "s2d.report"),
    "s2d.paper": (*BASE, "s2d.report"),
    "s2d.run": (*STAGES, "s2d.stages", "s2d.plan"),
    "s2d.prompts": ("s2d.cache", "s2d.config"),  # a command: the prompt texts a composed config sends
    "s2d.agreement": (*BASE, "s2d.tasks"),  # a command: the graders against hand labels on real replies
    "s2d.plan": (*STAGES, "s2d.stages", "s2d.organism"),  # a command: a cell's pilot, then its estimates
}


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_of(p) for p in (ROOT / "s2d").rglob("*.py")}


def imports():
    """(importing module, imported module) for every import of an s2d module, at any depth of the source.
    `from pkg import name` counts as an import of `pkg.name` where that is a module, else of `pkg`."""
    for path in sorted((ROOT / "s2d").rglob("*.py")):
        module = module_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.level == 0, f"{module}: relative import; s2d imports by full name"
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                         for a in node.names]
            else:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name == "s2d" or name.startswith("s2d."):
                    yield module, name


def rule(module: str) -> tuple[str, tuple[str, ...]]:
    """The most specific entry for a module (s2d.stages for s2d.stages.route): (its prefix, what it may import)."""
    hits = [p for p in ALLOWED if module == p or module.startswith(p + ".")]
    assert hits, f"{module} has no place in the stack: add it to ALLOWED in tests/test_layers.py"
    prefix = max(hits, key=len)
    return prefix, ALLOWED[prefix]


def allowed(module: str, name: str) -> bool:
    prefix, below = rule(module)
    return any(name == p or name.startswith(p + ".") for p in (prefix, *below))


def test_every_module_has_a_place_in_the_stack():
    assert not [m for m in MODULES if m != "s2d" and not any(m == p or m.startswith(p + ".") for p in ALLOWED)]


def test_no_module_imports_from_a_layer_above_it():
    upward = sorted({(m, n) for m, n in imports() if m != "s2d" and not allowed(m, n)})
    assert not upward, "imports that point up the stack: " + ", ".join(f"{m} → {n}" for m, n in upward)


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (or a module importing itself), by Tarjan's method."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_among_s2d_modules():
    """The module-to-module import graph (package __init__ modules as modules, imports inside functions too)
    has no circle: every module can be read, and tested, without the ones above it."""
    edges = {(m, n) for m, n in imports() if m != n}
    assert {n for _, n in edges} <= MODULES
    found = cycles(edges)
    assert not found, "import circles: " + "; ".join(" ↔ ".join(c) for c in found)


def test_the_circle_check_finds_a_circle():
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]
    assert cycles({("a", "b"), ("b", "c"), ("a", "c")}) == []


@pytest.mark.parametrize("module, name, upward", [
    ("s2d.tasks.judge", "s2d.stages.evaluate", True),
    ("s2d.llm.hf", "s2d.types", False),
    ("s2d.organism", "s2d.training.fit", False),
    ("s2d.organism", "s2d.report", True),
    ("s2d.organism", "s2d.stages.train", True),
    ("s2d.llm.vllm", "s2d.training.fit", True),
    ("s2d.training.data", "s2d.llm.base", True),
    ("s2d.training.fit", "s2d.training.data", False),
    ("s2d.stages.route", "s2d.stages.evaluate", False),
    ("s2d.cache", "s2d.llm.model", True),
    ("s2d.report", "s2d.stages.route", True),
    ("s2d.report", "s2d.plots", False),
    ("s2d.types", "s2d.stats", True),
])
def test_the_rule_itself(module, name, upward):
    assert (not allowed(module, name)) is upward
