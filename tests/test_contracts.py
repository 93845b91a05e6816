"""Every `_target_` in conf/ honours its group's protocol, read off the protocol classes themselves; the
option lists come from conf/ (nothing hard-coded), and the README lists every option a user can pick."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra.utils import get_class, instantiate

from conftest import option_cells, ROOT, compose_config, conf_options
from s2d.filters.base import OPTIONAL_FILTER_PARTS, Filter
from s2d.llm.base import LLM
from s2d.methods.base import OPTIONAL_METHOD_PARTS, Method
from s2d.tasks.base import OPTIONAL_TASK_PARTS, Task
from s2d.tracking import Tracker

PROTOCOLS = {"method": Method, "filter": Filter, "task": Task, "backend": LLM, "logger": Tracker}
OPTIONAL = {"method": OPTIONAL_METHOD_PARTS, "filter": OPTIONAL_FILTER_PARTS, "task": OPTIONAL_TASK_PARTS}


def members(protocol) -> set[str]:
    """A protocol's required parts: its annotated attributes and its methods."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")}
    return names


options = conf_options


def cells():
    return option_cells(PROTOCOLS)


def compose_cfg(overrides, tmp_path):
    return compose_config(*overrides, f"paths.output_dir={tmp_path}")


@pytest.mark.parametrize("group,opt", list(cells()))
def test_every_target_honours_its_protocol(group, opt, tmp_path):
    cfg = compose_cfg([f"{group}={opt}", "logger.mode=disabled" if opt == "wandb" else "seed=0"], tmp_path)
    obj = instantiate(cfg[group])
    # getattr_static: a backend's `context_length` is a property that would load the model
    missing = sorted(n for n in members(PROTOCOLS[group]) if not _has(obj, n))
    assert not missing, f"{group}={opt} ({type(obj).__name__}) lacks {missing} of {PROTOCOLS[group].__name__}"
    if group == "task":
        assert "truncated" in inspect.signature(obj.extract).parameters
        assert all(Path(p).exists() for p in obj.data_files().values())
    if group == "method":
        assert all(isinstance(t, str) for t in obj.prompts.values())


def _has(obj, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
        return True
    except AttributeError:
        return False


def test_the_system1_node_is_a_method():
    cfg = compose_config()
    assert not sorted(n for n in members(Method) if not _has(instantiate(cfg.system1), n))


@pytest.mark.parametrize("group", ["method", "task", "filter"])
def test_readme_lists_every_option_of_the_paper_axes(group):
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{group}` |"))
    assert all(f"`{opt}`" in row for opt in options(group) if not opt.startswith("_")), row


def test_protocols_declare_what_the_stages_ask_of_them():
    assert {"curate", "needs_model", "name"} <= members(Filter)
    assert {"data_files", "extract", "grader_version", "train_only_keys", "version"} <= members(Task)
    assert {"generate", "count_tokens", "release", "context_length"} <= members(LLM)
    assert {"start", "finish", "summary"} <= members(Tracker)
    for group in ("task",):
        for opt in options(group):
            cls = get_class(compose_cfg([f"{group}={opt}"], Path("/tmp"))[group]._target_)
            assert isinstance(cls.train_only_keys, tuple) and isinstance(cls.version, int)


@pytest.mark.parametrize("group,opt", [c for c in cells() if c[0] in OPTIONAL]
                         + [("task", "organism/s2a"), ("task", "organism/bsm")])
def test_an_optional_part_is_there_whole_or_not_at_all(group, opt, tmp_path):
    """A component with some members of an optional part's protocol but not all would be taken for one without
    it (isinstance fails) and silently skipped: every option has each part whole, or none of it."""
    obj = instantiate(compose_cfg([f"{group}={opt}"], tmp_path)[group])
    for part in OPTIONAL[group]:
        own = members(part) - members(PROTOCOLS[group])  # `name` is every component's
        have = {n for n in own if _has(obj, n)}
        assert have in (set(), own), f"{group}={opt} has {sorted(have)} of {part.__name__} but not {sorted(own - have)}"
        assert isinstance(obj, part) == (have == own)


def test_the_optional_parts_that_the_shipped_components_have():
    def parts(group, opt):
        obj = instantiate(compose_cfg([f"{group}={opt}"], Path("/tmp"))[group])
        return {p.__name__ for p in OPTIONAL[group] if isinstance(obj, p)}

    assert parts("task", "coin_flip") == {"WorkedSolutions", "SplitStats"}
    assert parts("task", "gsm8k") == {"WorkedSolutions", "FewShotPool"}
    assert parts("task", "organism/bsm") == {"Rubric", "ExtraMetrics", "SplitStats"}
    assert parts("task", "triviaqa") == {"UnbiasedInputs", "DraftsInputs"}
    assert parts("method", "s2a") == {"Teaches", "Replays"}
    assert parts("method", "cot") == parts("method", "bsm") == {"Teaches"}
    assert parts("method", "rar2") == set()
    assert parts("filter", "usc") == {"TeachesFilter"} and parts("filter", "self_consistency") == set()


def test_a_task_without_a_version_is_an_error_naming_what_to_add():
    from s2d.tasks.base import version_of

    class NoVersion:
        name = "x"

    with pytest.raises(ValueError, match=r"model.tasks.x: .*NoVersion has no `version`.*add `version = 1`"):
        version_of(NoVersion, "model.tasks.x")


def test_s2d_reads_its_own_objects_through_protocols_not_getattr():
    """getattr/hasattr are left only where s2d reads library objects (torch, transformers, vllm, Lightning):
    the backends and model loading in s2d/llm/ and the training package."""
    import re

    allowed = ("s2d/training/", "s2d/llm/hf.py", "s2d/llm/vllm.py", "s2d/llm/model.py")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "s2d").rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\b(getattr|hasattr)\(", line) and not str(p.relative_to(ROOT)).startswith(allowed)]
    assert not found, found
