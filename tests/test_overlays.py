"""Every experiment overlay composes, and one cell of each paper overlay runs end to end on the tiny model."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF, ROOT
from s2d.run import run

OVERLAYS = sorted(str(p.relative_to(ROOT / "experiments").with_suffix("")) for p in (ROOT / "experiments").rglob("*.yaml"))


def cfg_of(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=False)


def sweep_of(name):
    """The overlay's multirun sweep params, read from its file (compose leaves hydra.sweeper out)."""
    node = OmegaConf.load(ROOT / "experiments" / f"{name}.yaml")
    return {k: str(v).split(",") for k, v in OmegaConf.select(node, "hydra.sweeper.params", default={}).items()}


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_composes_and_its_cells_instantiate(name, tmp_path):
    cells = [[]]
    for key, values in sweep_of(name).items():
        cells = [c + [f"{key}={v}"] for c in cells for v in values]
    for cell in cells:
        cfg = cfg_of(f"experiment={name}", f"paths.output_dir={tmp_path}", *cell)
        for group in ("method", "filter", "task"):
            assert type(instantiate(cfg[group])).__module__.startswith("s2d."), (name, cell, group)


def restore_overrides(name):
    """The overrides an overlay's `# RESTORE:` line documents for the paper's own data."""
    line = next(l for l in (ROOT / "experiments" / f"{name}.yaml").read_text().splitlines() if l.startswith("# RESTORE:"))
    return line.removeprefix("# RESTORE:").split()


@pytest.mark.parametrize("task", ["oasst2", "mt_bench"])
def test_table3_recipe_composes_with_its_restore_the_paper_overrides(task):
    """Every key the recipe tells a user to set exists in both tasks' configs, passes the type check and
    reaches the task (MT-bench: all judgments of the hub's split, expert votes; OASST2: the hub's splits)."""
    from s2d.config import check_leaf_types

    overrides = restore_overrides("paper/table3_bsm")
    if task == "oasst2":  # the MT-bench keys are not OASST2's: a user sets them on the mt_bench cells only
        overrides = [o for o in overrides if o.split("=")[0] not in ("task.judgments_path", "task.voters")]
    cfg = cfg_of("experiment=paper/table3_bsm", "method=bsm", f"task={task}", "paths.output_dir=/tmp/x", *overrides)
    check_leaf_types(cfg)
    t = instantiate(cfg.task)
    inner = t.oasst2 if task == "mt_bench" else t
    assert inner.path is None and inner.n_train is None and inner.pairing == "all_ranked"
    assert (inner.hub_splits == {"train": "train", "eval": "validation"})
    if task == "mt_bench":
        assert t.judgments_path is None and t.n_eval is None and t.voters == "experts" and inner.n_eval == 0
        assert t.judgments_hub_id == "lmsys/mt_bench_human_judgments" and t.data_files().keys() == {"questions_path"}
    else:
        assert t.n_eval is None and t.data_files() == {}


def test_paper_overlays_pin_the_paper_settings():
    t3 = cfg_of("experiment=paper/table3_bsm", "method=bsm", "task=oasst2", "paths.output_dir=/tmp/x")
    assert t3.filter._target_.endswith("InputPerturbation") and t3.generate.n == 1
    assert t3.task.max_input_tokens == t3.train.max_length == 1024
    assert sweep_of("paper/table3_bsm") == {"method": ["cot", "bsm"], "task": ["oasst2", "mt_bench"]}
    few = cfg_of("experiment=paper/table4_cot_fewshot", "paths.output_dir=/tmp/x")
    assert few.method._target_.endswith("CoTFewShot") and few.method.shots == 8 and few.system1.shots == 8
    coin = cfg_of("experiment=paper/table1_rar_coin_val", "paths.output_dir=/tmp/x")
    assert coin.task.eval_path.endswith("coin_val.json") and coin.task.n_eval == 1333 and coin.generate.n == 8
    ll = cfg_of("experiment=paper/table1_rar_last_letter_file", "paths.output_dir=/tmp/x")
    assert ll.task.eval_path.endswith("last_letter_concatenation_gpt-4.json") and ll.task.n_eval == 200
    nf = cfg_of("experiment=paper/table1_rar_no_filter", "paths.output_dir=/tmp/x")
    assert nf.filter._target_.endswith("NoFilter") and nf.method._target_.endswith("RaR2") and nf.generate.n == 8


def tiny(model_dir, tmp_path, *extra):
    return ["model=smollm2-135m", f"model.name_or_path={model_dir}", f"paths.output_dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", "backend.progress=false",
            "generate.max_new_tokens=16", "eval.max_new_tokens=16", "train.batch_size=2", "train.trainer.max_steps=1",
            "train.trainer.enable_progress_bar=false", "on_nothing_to_distill=skip", *extra]


def judge_trees(path: Path) -> str:
    trees = [{"message_tree_id": f"t{i}", "prompt": {"role": "prompter", "lang": "en", "text": f"Name a color {i}.",
                                                     "replies": [{"role": "assistant", "text": "Red.", "rank": 0},
                                                                 {"role": "assistant", "text": "No.", "rank": 1}]}}
             for i in range(4)]
    path.write_text("\n".join(json.dumps(t) for t in trees) + "\n")
    return str(path)


# One cell per paper overlay, at tiny sizes: (overlay, cell overrides, needs the staged data)
CELLS = {
    "paper/table1_rar": (["method=rar2", "task=coin_flip", "generate.n=2", "task.n_train=2", "task.n_eval=2"], False),
    "paper/table1_rar_no_filter": (["generate.n=2", "task.n_train=2", "task.n_eval=2"], False),
    "paper/table1_rar_coin_val": (["method=rar1", "generate.n=2", "task.n_train=2", "task.n_eval=2"], True),
    "paper/table1_rar_last_letter_file": (["method=system1", "generate.n=2", "task.n_train=2", "task.n_eval=2"], True),
    "paper/table2_s2a": (["filter=usc", "generate.n=2", "task.n_train=2", "task.n_eval=2"], True),
    "paper/table3_bsm": (["method=bsm", "task=oasst2", "method.max_criteria=1", "task.n_train=2", "task.n_eval=2"],
                         False),
    "paper/table4_gsm8k": (["generate.n=2", "task.n_train=2", "task.n_eval=2", "system1.shots=1",
                            "train.max_length=2048"], True),
    "paper/table4_cot_fewshot": (["generate.n=2", "task.n_train=2", "task.n_eval=2", "system1.shots=1",
                                  "method.shots=1", "train.max_length=2048"], True),
}


def test_every_paper_overlay_has_a_tiny_cell():
    assert sorted(CELLS) == [o for o in OVERLAYS if o.startswith("paper/")]


@pytest.mark.parametrize("name", sorted(CELLS))
def test_one_cell_of_each_paper_overlay_runs(name, tiny_model_dir, tmp_path):
    cell, needs_data = CELLS[name]
    extra = []
    if needs_data:
        from conftest import data_dir

        extra.append(f"paths.data_dir={data_dir()}")  # the shipped copy unless S2D_DATA_DIR names another
    if name == "paper/table3_bsm":
        extra.append(f"task.path={judge_trees(tmp_path / 'trees.jsonl')}")
    metrics = run(cfg_of(f"experiment={name}", *tiny(tiny_model_dir, tmp_path, *cell, *extra)))
    for system in ("system1", "system2"):
        assert metrics[f"{system}/n"] in (2, 4), (system, metrics)  # judge tasks: 2 pairs, both orders
        assert 0 <= metrics[f"{system}/accuracy"] <= 1
    gen = json.loads(next((tmp_path / "cache" / "generate").glob("*/DONE.json")).read_text())
    assert gen["inputs"] == (4 if name == "paper/table3_bsm" else 2)
    if name == "paper/table1_rar_last_letter_file":
        assert gen["split"]["overlap_words"] == 0
    if name == "paper/table1_rar_coin_val":
        assert gen["split"]["overlap_items"] == 0
    if name == "paper/table3_bsm":
        assert gen["split"]["train_pairs"] == 2 and gen["split"]["eval_pairs"] == 2
