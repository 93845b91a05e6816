"""Imports point down the stack: run/report/rescore → stages → (methods, filters, training) → (tasks, llm) →
(types, artifacts, voting, stats). Read from the source with `ast`, so a new upward import fails here."""

import ast
from pathlib import Path

import pytest

from conftest import ROOT

TOP = ("s2d.run", "s2d.report", "s2d.rescore")
FORBIDDEN = {  # module prefix → prefixes it must not import
    "s2d.types": ("s2d.",),
    "s2d.voting": ("s2d.",),
    "s2d.stats": ("s2d.",),
    "s2d.distributed": ("s2d.",),
    "s2d.artifacts": ("s2d.",),
    "s2d.chat": ("s2d.",),
    "s2d.tasks": ("s2d.methods", "s2d.filters", "s2d.training", "s2d.stages", "s2d.cache", "s2d.config", *TOP),
    # a model source that trains (training, the cot prompt) and keys its cache, but never a stage
    "s2d.organism": ("s2d.stages", *TOP),
    "s2d.llm": ("s2d.tasks", "s2d.methods", "s2d.filters", "s2d.training", "s2d.stages", *TOP),
    "s2d.methods": ("s2d.stages", "s2d.training", "s2d.filters", "s2d.cache", *TOP),
    "s2d.filters": ("s2d.stages", "s2d.training", "s2d.methods", "s2d.cache", *TOP),
    "s2d.training": ("s2d.stages", "s2d.methods", "s2d.filters", "s2d.tasks", *TOP),
    "s2d.stages": TOP,
}


def imports():
    for path in sorted((ROOT / "s2d").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "s2d":  # from s2d import cache
                names = [f"s2d.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("s2d."):
                    yield module, name


def rule(module: str):
    """The most specific rule for a module (s2d.organism before s2d.llm)."""
    hits = [p for p in FORBIDDEN if module == p or module.startswith(p + ".")]
    return FORBIDDEN[max(hits, key=len)] if hits else ()


def test_no_module_imports_from_a_layer_above_it():
    upward = sorted({(m, n) for m, n in imports() if any(n == f or n.startswith(f + ".") or
                                                         (f.endswith(".") and n.startswith(f)) for f in rule(m))})
    assert not upward, "imports that point up the stack: " + ", ".join(f"{m} → {n}" for m, n in upward)


@pytest.mark.parametrize("module, name, upward", [
    ("s2d.tasks.judge", "s2d.stages.evaluate", True),
    ("s2d.llm.hf", "s2d.types", False),
    ("s2d.organism", "s2d.training.fit", False),
    ("s2d.organism", "s2d.report", True),
    ("s2d.llm.vllm", "s2d.training.fit", True),
])
def test_the_rule_itself(module, name, upward):
    assert any(name == f or name.startswith(f + ".") or (f.endswith(".") and name.startswith(f))
               for f in rule(module)) is upward
