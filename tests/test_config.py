"""Every config in conf/ composes and its _target_s instantiate; bad options and keys fail at compose time."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from conftest import option_cells, CONF, compose_config, conf_options

GROUPS = ["model", "backend", "method", "filter", "task", "train", "logger"]


def cells():
    return option_cells(GROUPS)


def compose_cfg(overrides, tmp_path):
    return compose_config(*overrides, f"paths.output_dir={tmp_path}")


@pytest.mark.parametrize("group,opt", list(cells()))
def test_every_option_composes_and_instantiates(group, opt, tmp_path):
    cfg = compose_cfg([f"{group}={opt}", "logger.mode=disabled" if opt == "wandb" else "seed=0"], tmp_path)
    if group == "train":
        module = instantiate(cfg.train.module, model=torch.nn.Linear(2, 2))
        assert module.warmup_steps == cfg.train.module.warmup_steps
        trainer = instantiate(cfg.train.trainer, logger=False, default_root_dir=str(tmp_path))
        assert trainer.max_epochs == cfg.train.trainer.max_epochs
    else:
        obj = instantiate(cfg[group])
        assert type(obj).__module__.startswith("s2d.")
    if group == "backend":
        assert obj.source.name == cfg.model.name  # the backend takes the composed model


def test_default_run_is_the_small_organism(tmp_path):
    # issue 19: the default run shows the paper's ordering, so it runs cot on a small organism taught coin flip
    cfg = compose_cfg([], tmp_path)
    assert cfg.method._target_.endswith("CoT") and cfg.model._target_.endswith("Organism")
    assert cfg.task._target_.endswith("CoinFlip") and list(cfg.model.tasks) == ["coin_flip"]
    assert cfg.filter._target_.endswith("SelfConsistency")
    # the organism learned to reason under exactly the prompt the default cot method sends
    assert instantiate(cfg.model).instruction == instantiate(cfg.method).instruction
    # its distillation step size comes with it (model.distill, read by train=full and train/trainer=cpu)
    assert cfg.train.module.optimizer.lr == 1e-4 and cfg.train.trainer.max_epochs == 3
    # the plain embedded model is one override away
    plain = compose_cfg(["model=smollm2-135m"], tmp_path)
    assert plain.model.name == "smollm2-135m" and plain.model.name_or_path is None
    assert plain.train.module.optimizer.lr == 1e-5 and plain.train.trainer.max_epochs == 2


def test_experiment_overlay(tmp_path):
    cfg = compose_cfg(["experiment=smoke"], tmp_path)
    assert cfg.generate.n == 2 and cfg.task.n_train == 4 and cfg.train.trainer.max_steps == 1


def test_unknown_option_names_the_allowed_ones(tmp_path):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg(["method=rar3"], tmp_path)
    msg = str(e.value)
    assert "rar3" in msg and "rar2" in msg and "system1" in msg


def test_unknown_key_fails_at_compose_time(tmp_path):
    with pytest.raises(ConfigCompositionException, match="num_samples"):
        compose_cfg(["generate.num_samples=8"], tmp_path)


def test_ill_typed_value_fails_at_compose_time(tmp_path):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg(["generate.n=many"], tmp_path)
    assert "generate.n" in str(e.value.__cause__ or e.value) or "many" in str(e.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("target=reasoning", "target='reasoning' is not allowed; use one of: answer, full_response"),
        ("eval.systems=[system1,system3]", "eval.systems: unknown ['system3']"),
        ("generate.top_p=0", "generate: need n >= 1"),
    ],
)
def test_bad_values_are_named_before_any_stage_runs(override, message, tmp_path):
    from s2d.config import check

    with pytest.raises(ValueError) as e:
        check(compose_cfg([override], tmp_path))
    assert message in str(e.value)


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp", "fsdp", "deepspeed"])
@pytest.mark.parametrize("train", ["full", "lora"])
def test_trainer_configs_compose_with_devices_and_nodes(trainer, train, tmp_path):
    cfg = compose_cfg([f"train={train}", f"train/trainer={trainer}", "train.trainer.num_nodes=2"], tmp_path)
    t = cfg.train.trainer
    assert t.num_nodes == 2 and t.devices == (1 if trainer in ("cpu", "gpu") else 8)
    assert t.precision == ("32-true" if trainer == "cpu" else "bf16-mixed")
    assert ("lora" in cfg.train) == (train == "lora")
    if trainer == "cpu":
        assert instantiate(t, logger=False, default_root_dir=str(tmp_path)).num_nodes == 2


@pytest.mark.parametrize("launcher", ["slurm", "local"])
def test_launcher_configs_compose(launcher, tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}", "train/trainer=ddp",
                                           "train.trainer.devices=4", "train.trainer.num_nodes=2"],
                      return_hydra_config=True)
    launcher_cfg = cfg.hydra.launcher
    if launcher == "slurm":
        assert launcher_cfg._target_.endswith("SlurmLauncher")
        # one SLURM task per training device, on as many nodes as the trainer spans
        assert (launcher_cfg.tasks_per_node, launcher_cfg.gpus_per_node, launcher_cfg.nodes) == (4, 4, 2)
        assert launcher_cfg.max_num_timeout > 0 and launcher_cfg.additional_parameters.requeue
    else:
        assert launcher_cfg._target_.endswith("JoblibLauncher") and launcher_cfg.n_jobs == 2


def test_seed_changes_samples_not_the_eval_items(tmp_path):
    """`seed` is sampling only; `data_seed` draws splits, templates and few-shot examples."""
    from s2d import cache

    base = compose_cfg(["task=coin_flip", "task.n_eval=6", "task.n_train=6"], tmp_path)
    seed1 = compose_cfg(["task=coin_flip", "task.n_eval=6", "task.n_train=6", "seed=1"], tmp_path)
    data1 = compose_cfg(["task=coin_flip", "task.n_eval=6", "task.n_train=6", "data_seed=1"], tmp_path)
    items = [[e.input for e in instantiate(c.task).eval_examples()] for c in (base, seed1, data1)]
    assert items[0] == items[1] and items[0] != items[2]
    assert instantiate(seed1.system1).seed == 0 and instantiate(data1.system1).seed == 1
    assert cache.generate_key(base) != cache.generate_key(seed1)
    # greedy eval: System 1's records are the same at every sampling seed, so its stage is shared
    assert cache.evaluate_key(base, "system1", None) == cache.evaluate_key(seed1, "system1", None)
    assert cache.evaluate_key(base, "system1", None) != cache.evaluate_key(data1, "system1", None)
    sampled = ["eval.temperature=0.7", "eval.k=3"]
    assert cache.evaluate_key(compose_cfg(sampled, tmp_path), "system1", None) != \
        cache.evaluate_key(compose_cfg([*sampled, "seed=1"], tmp_path), "system1", None)


@pytest.mark.parametrize("group,opt", [("method", m) for m in conf_options("method")] + [("filter", "usc")])
def test_prompt_texts_live_in_the_program_and_the_yaml_names_them(group, opt, tmp_path):
    """One source of truth: the module's PROMPTS holds the texts; the YAML lists every name with null (so
    `method.prompts.<name>=...` needs no `+`), and `python -m s2d.prompts` shows the texts in effect."""
    from hydra.utils import get_class

    from s2d.prompts import show

    node = compose_cfg([f"{group}={opt}"], tmp_path)[group]
    defaults = get_class(node._target_).PROMPTS
    assert list(node.prompts) == list(defaults) and all(v is None for v in node.prompts.values())
    shown = show(compose_cfg([f"{group}={opt}"], tmp_path))
    for name, text in defaults.items():
        assert f"{group}.prompts.{name}:\n" + "\n".join(f"    {line}".rstrip() for line in text.splitlines()) in shown


def test_the_prompts_command_shows_an_override_and_the_records_hold_every_text(tmp_path, capsys):
    from s2d import cache
    from s2d.methods.rar import RaR2
    from s2d.prompts import main
    from s2d.stages import resolved

    main(["method=rar2", "method.prompts.respond='{question} Answer briefly.'"])
    out = capsys.readouterr().out
    assert "method.prompts.respond:  # set in the config\n    {question} Answer briefly.\n" in out
    assert "    Rewrite the question above so that it is clearer" in out  # the module's text, not in any YAML
    assert "# system1: s2d.methods.system1.System1, no text of its own" in out
    cfg = compose_cfg(["method=rar2"], tmp_path)
    assert resolved(cfg)["method"]["prompts"] == RaR2.PROMPTS  # a stage's DONE.json shows the texts sent
    # the run's key holds the texts in effect: an override equal to the default is the same run
    same = compose_cfg(["method=rar2", f"method.prompts.respond='{RaR2.PROMPTS['respond']}'"], tmp_path)
    assert cache.run_key(same) == cache.run_key(cfg) == cache.run_key(compose_cfg(["method=rar2"], tmp_path))


def test_a_prompt_override_changes_the_generate_key_and_an_unknown_name_fails(tmp_path):
    from s2d import cache

    base = compose_cfg(["method=rar2"], tmp_path)
    changed = compose_cfg(["method=rar2", "method.prompts.respond='{question} Answer briefly.'"], tmp_path)
    assert cache.generate_key(base) != cache.generate_key(changed)
    assert cache.method_key(changed.method)["prompts"]["respond"] == "{question} Answer briefly."
    with pytest.raises(Exception, match="method.prompts: unknown \\['rephrse'\\]; allowed: rephrase, respond"):
        instantiate(compose_cfg(["method=rar2", "+method.prompts.rephrse=x"], tmp_path).method)


def test_editing_a_default_prompt_in_the_program_changes_the_key(tmp_path, monkeypatch):
    """With `prompts` left out of the YAML, the key still holds the program's text (no version to bump)."""
    from s2d import cache
    from s2d.methods.rar import RaR1

    node = compose_cfg(["method=rar1", "~method.prompts"], tmp_path).method
    before = cache.method_key(node)
    monkeypatch.setattr(RaR1, "PROMPTS", {"instruction": "Say it again, then answer."})
    assert cache.method_key(node) != before


def test_train_dropout_sets_the_models_dropout_for_training(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = compose_cfg(["train.dropout=0.1"], tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.attention_dropout == 0.0
    module = instantiate(cfg.train.module, model=model)
    attention = [m for n, m in module.model.named_modules() if n.endswith("self_attn")]
    assert len(attention) == 2 and all(m.attention_dropout == 0.1 for m in attention)
    assert module.model.config.attention_dropout == 0.1 and module.model.training
    # null (the default) keeps the model's own rate
    kept = instantiate(compose_cfg([], tmp_path).train.module, model=AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    assert all(m.attention_dropout == 0.0 for n, m in kept.model.named_modules() if n.endswith("self_attn"))
    with pytest.raises(Exception, match=r"train.dropout must lie in \[0, 1\)"):
        instantiate(compose_cfg(["train.dropout=1.5"], tmp_path).train.module, model=model)


@pytest.mark.parametrize("overrides, message", [
    (["task.n_train=abc"], r"task.n_train='abc': expected int \(CoinFlip"),
    (["task=triviaqa", "task.eval_unbiased_share=most"], r"task.eval_unbiased_share='most': expected float"),
    (["filter=usc", "filter.fallback_answers=ten"], r"filter.fallback_answers=.ten.: expected int"),
    (["method=bsm", "method.demo=maybe"], r"method.demo=.maybe.: expected bool"),
])
def test_leaf_values_are_checked_against_the_constructor_before_any_stage(overrides, message, tmp_path):
    from s2d.config import check

    with pytest.raises(ValueError, match=message):
        check(compose_cfg(overrides, tmp_path))
    check(compose_cfg(["task.n_train=12", "train.module.optimizer.lr=1"], tmp_path))  # an int where a float is fine
