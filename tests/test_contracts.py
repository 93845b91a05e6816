"""Every `_target_` in conf/ honours its group's protocol, read off the protocol classes themselves; the
option lists come from conf/ (nothing hard-coded), and the README lists every option a user can pick."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra.utils import get_class, instantiate

from conftest import option_cells, ROOT, compose_config, conf_options
from s2d.filters.base import Filter
from s2d.llm.base import LLM
from s2d.methods.base import Method
from s2d.tasks.base import Task
from s2d.tracking import Tracker

PROTOCOLS = {"method": Method, "filter": Filter, "task": Task, "backend": LLM, "logger": Tracker}


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
