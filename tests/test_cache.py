"""Stage cache: keys follow content, not infrastructure; reruns make no model calls; kills lose nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, ROOT
from s2d import cache
from s2d.artifacts import read_jsonl
from s2d.llm.hf import HFBackend
from s2d.llm.model import ModelSource
from s2d.run import run
from s2d.stages import generate


def tiny_overrides(model_dir, tmp_path, *extra):
    return ["model=smollm2-135m", "method=rar2", f"model.name_or_path={model_dir}", f"paths.output_dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", "backend.progress=false",
            "task.n_train=6", "task.n_eval=4", "generate.n=2", "generate.max_new_tokens=8",
            "eval.max_new_tokens=8", "train.trainer.max_steps=1", "train.trainer.enable_progress_bar=false",
            # a random model's text has no parsable answer: distil the full response so the loop trains
            "filter=none", "target=full_response", *extra]


def cfg_of(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


BASE = ["paths.output_dir=/tmp/x", "model=smollm2-135m", "method=rar2"]  # the defaults these keys were written for


def test_generate_key_is_stable_across_processes():
    here = cache.generate_key(cfg_of(*BASE))
    code = ("import s2d.config; from hydra import compose, initialize_config_dir; from s2d import cache;"
            f"initialize_config_dir(config_dir='{CONF}', version_base='1.3');"
            f"print(cache.generate_key(compose('config', overrides={[*BASE[1:], 'paths.output_dir=/tmp/y']!r})))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert there.stdout.strip().splitlines()[-1] == here


@pytest.mark.parametrize("override", [
    "generate.n=8", "generate.temperature=1.0", "seed=1", "method=rar1", "task=last_letter",
    "task.n_train=10", "backend.dtype=bfloat16", "model.package_file=other.gguf", "model.revision=abc",
])
def test_content_keys_change_the_generate_key(override):
    base = cache.generate_key(cfg_of(*BASE))
    try:
        changed = cache.generate_key(cfg_of(*BASE, override))
    except Exception as e:  # a model file that does not exist cannot be hashed: that is a change too
        assert "other.gguf" in override, e
        return
    assert changed != base


@pytest.mark.parametrize("override", [
    "backend.batch_size=4", "backend.threads=1", "backend.progress=false", "backend.device=cuda",
    "backend.shared_prefill=false", "generate.chunk_size=3", "logger=none", "paths.output_dir=/elsewhere",
    "filter=none", "train.trainer.max_steps=5", "eval.max_new_tokens=5", "generate.num_shards=4",
    "generate.shard_id=1",
])
def test_infrastructure_and_downstream_keys_keep_the_generate_key(override):
    assert cache.generate_key(cfg_of(*BASE, override)) == cache.generate_key(cfg_of(*BASE))


def test_task_version_is_part_of_the_key(monkeypatch):
    from s2d.tasks.coin_flip import CoinFlip

    base = cache.generate_key(cfg_of(*BASE))
    monkeypatch.setattr(CoinFlip, "version", CoinFlip.version + 1)
    assert cache.generate_key(cfg_of(*BASE)) != base


def test_downstream_keys():
    a, b = cfg_of(*BASE), cfg_of(*BASE, "filter=none")
    g = cache.generate_key(a)
    assert cache.filter_key(a, g) != cache.filter_key(b, g)
    assert cache.train_key(a, "f") != cache.train_key(cfg_of(*BASE, "train.module.optimizer.lr=1e-3"), "f")
    assert cache.train_key(a, "f") == cache.train_key(cfg_of(*BASE, "train.trainer.enable_progress_bar=false"), "f")
    # an option added later is keyed only when set: models trained before it keep their keys
    from omegaconf import open_dict

    without = cfg_of(*BASE)
    with open_dict(without):
        del without.train["group_by_length"]
    assert cache.train_key(a, "f") == cache.train_key(without, "f")
    assert cache.train_key(a, "f") != cache.train_key(cfg_of(*BASE, "train.group_by_length=true"), "f")
    # System 1 is shared by every method; System 2 is not
    c = cfg_of(*BASE, "method=rar1")
    assert cache.evaluate_key(a, "system1", "t") == cache.evaluate_key(c, "system1", "t")
    assert cache.evaluate_key(a, "system2", "t") != cache.evaluate_key(c, "system2", "t")
    assert cache.evaluate_key(a, "distilled", "t1") != cache.evaluate_key(a, "distilled", "t2")


@pytest.mark.parametrize("task", ["last_letter", "coin_flip", "multiplication"])
def test_eval_keys_of_synthetic_tasks_ignore_the_number_of_unlabeled_inputs(task):
    from hydra.utils import instantiate

    small, large = cfg_of(*BASE, f"task={task}", "task.n_train=8"), cfg_of(*BASE, f"task={task}", "task.n_train=64")
    # the eval items are the same, so System 1 and System 2 are evaluated once across a data-size sweep …
    assert [e.input for e in instantiate(small.task).eval_examples()] == \
        [e.input for e in instantiate(large.task).eval_examples()]
    assert cache.evaluate_key(small, "system1", None) == cache.evaluate_key(large, "system1", None)
    assert cache.evaluate_key(small, "system2", None) == cache.evaluate_key(large, "system2", None)
    # … while generation (and so the distilled model) follows the unlabeled inputs, which are nested
    assert cache.generate_key(small) != cache.generate_key(large)
    assert [e.input for e in instantiate(small.task).train_examples()] == \
        [e.input for e in instantiate(large.task).train_examples()][:8]
    assert cache.evaluate_key(small, "system1", None) != cache.evaluate_key(
        cfg_of(*BASE, f"task={task}", "task.n_eval=7"), "system1", None)


def test_rerun_of_finished_config_makes_no_model_calls(tiny_model_dir, tmp_path, monkeypatch):
    calls = {"generate": 0, "load": 0}
    real_generate, real_load = HFBackend.generate, ModelSource.load

    def counting_generate(self, *a, **k):
        calls["generate"] += 1
        return real_generate(self, *a, **k)

    def counting_load(self, *a, **k):
        calls["load"] += 1
        return real_load(self, *a, **k)

    monkeypatch.setattr(HFBackend, "generate", counting_generate)
    monkeypatch.setattr(ModelSource, "load", counting_load)
    first = run(cfg_of(*tiny_overrides(tiny_model_dir, tmp_path)))
    # loads: the base model for generation, its trainable copy (the base model is released meanwhile),
    # the base model again for evaluation, the distilled model
    assert calls["generate"] > 0 and calls["load"] == 4
    calls.update(generate=0, load=0)
    second = run(cfg_of(*tiny_overrides(tiny_model_dir, tmp_path, f"paths.output_dir={tmp_path / 'run2'}")))
    assert calls == {"generate": 0, "load": 0}
    assert second == first
    # changing only the filter reuses the generations and the base model's evaluations
    calls.update(generate=0, load=0)
    run(cfg_of(*tiny_overrides(tiny_model_dir, tmp_path, "filter=self_consistency", "on_nothing_to_distill=skip")))
    assert len(list((tmp_path / "cache" / "generate").iterdir())) == 1
    assert len(list((tmp_path / "cache" / "filter").iterdir())) == 2
    assert calls == {"generate": 0, "load": 0}  # nothing parsable to keep, so no model is trained or run


@pytest.mark.slow  # SIGKILL and resume in subprocesses: about a minute on 2 cores
def test_killed_generation_resumes_without_loss_or_duplicates(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task.n_train=60", "generate.chunk_size=1",
                               "generate.max_new_tokens=24", "filter=self_consistency")
    cfg = cfg_of(*overrides)
    gen_dir = tmp_path / "cache" / "generate" / cache.generate_key(cfg)
    traces = gen_dir / "traces.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "s2d.run", *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not traces.exists() or len(traces.read_text().splitlines()) < 10):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_jsonl(traces)
    assert 10 <= len(partial) < 120, "the kill should land in the middle of generation"
    assert not (gen_dir / "DONE.json").exists()

    resumed = generate.run(cfg)
    assert resumed == gen_dir
    rows = read_jsonl(traces)
    ref = generate.run(cfg_of(*overrides, f"paths.cache_dir={tmp_path / 'ref'}"))
    ref_rows = read_jsonl(ref / "traces.jsonl")
    assert len(rows) == 120 == len({(r["example_id"], r["sample"]) for r in rows})
    assert rows == ref_rows  # same records, same order, same samples as an uninterrupted run
    assert rows[: len(partial) // 2 * 2] == partial[: len(partial) // 2 * 2]
    done = json.loads((gen_dir / "DONE.json").read_text())
    assert done["completion_tokens"] == sum(c["completion_tokens"] for r in rows for c in r["calls"])


@pytest.mark.slow  # four shard runs and a join in subprocesses
def test_shards_are_disjoint_cover_the_inputs_and_join_into_the_unsharded_records(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task.n_train=11", "generate.chunk_size=2",
                               "generate.temperature=0.9")
    ref = read_jsonl(generate.run(cfg_of(*overrides, f"paths.cache_dir={tmp_path / 'ref'}")) / "traces.jsonl")
    shard_ids = []
    for i in (2, 0, 1):  # any order, as array jobs finish
        d = generate.run(cfg_of(*overrides, "generate.num_shards=3", f"generate.shard_id={i}"))
        assert d.name == f"{i}-of-3" and (d / "DONE.json").exists()
        shard_ids.append({r["example_id"] for r in read_jsonl(d / "traces.jsonl")})
    assert sum(map(len, shard_ids)) == 11 == len(set().union(*shard_ids))  # disjoint and covering
    joined = generate.run(cfg_of(*overrides, "generate.num_shards=3"))
    assert read_jsonl(joined / "traces.jsonl") == ref  # same samples, same order as one process
    assert json.loads((joined / "DONE.json").read_text())["shards"] == 3


def test_joining_incomplete_shards_names_the_missing_ones(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "generate.chunk_size=2")
    generate.run(cfg_of(*overrides, "generate.num_shards=3", "generate.shard_id=1"))
    with pytest.raises(RuntimeError, match=r"2 of 3 shards are not done \(\[0, 2\]\).*generate.shard_id=<i>"):
        generate.run(cfg_of(*overrides, "generate.num_shards=3"))
    with pytest.raises(ValueError, match="0 <= shard_id < num_shards"):
        generate.run(cfg_of(*overrides, "generate.num_shards=3", "generate.shard_id=3"))
    # a shard job stops after generation: no filter, training or evaluation
    assert run(cfg_of(*overrides, "generate.num_shards=3", "generate.shard_id=0")) == {}
    assert not (tmp_path / "cache" / "train").exists()


def hold_stage_lock(out, seconds, then=""):
    """A process that takes `out`'s stage lock, marks 'started', sleeps, runs `then`, and lets go."""
    code = ("import time, pathlib\n"
            "from s2d.artifacts import stage_lock\n"
            f"out = pathlib.Path({str(out)!r})\n"
            "with stage_lock(out):\n"
            "    (out / 'started').write_text('1')\n"
            f"    time.sleep({seconds})\n"
            f"    {then or 'pass'}\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    deadline = time.time() + 60
    while not (out / "started").exists() and time.time() < deadline:
        time.sleep(0.02)
    return proc


def test_a_stage_computed_by_another_process_is_waited_for_not_redone(tmp_path):
    """Two processes wanting the same stage: the second waits on the stage lock, then finds it done."""
    from s2d.artifacts import stage_lock

    out = tmp_path / "stage"
    holder = hold_stage_lock(out, 2, then="(out / 'DONE.json').write_text('{}')")
    t0 = time.time()
    with stage_lock(out):
        waited = time.time() - t0
        assert (out / "DONE.json").exists()  # the other process finished before this one got the lock
    holder.wait()
    assert waited > 1.0


def test_a_killed_holder_releases_the_lock(tmp_path):
    from s2d.artifacts import stage_lock

    out = tmp_path / "stage"
    holder = hold_stage_lock(out, 60)
    holder.kill()
    holder.wait()
    t0 = time.time()
    with stage_lock(out):
        assert time.time() - t0 < 5


def test_identity_exclusions_are_declared_in_config_as_dotted_paths():
    base = cfg_of(*BASE)
    assert "*.chunk_size" in base.identity.exclude
    # an excluded path leaves every key alone; removing it from identity.exclude makes it count
    assert cache.generate_key(cfg_of(*BASE, "generate.chunk_size=7")) == cache.generate_key(base)
    assert cache.generate_key(cfg_of(*BASE, "generate.chunk_size=7", "identity.exclude=[paths,logger]")) != \
        cache.generate_key(cfg_of(*BASE, "identity.exclude=[paths,logger]"))
    assert cache.generate_key(cfg_of(*BASE, "generate.n=3")) != cache.generate_key(base)
    # a node detached from the config (the organism's training config) uses the list declared in conf/config.yaml
    from omegaconf import OmegaConf

    detached = OmegaConf.create({"trainer": {"enable_progress_bar": True, "max_epochs": 2}})
    assert cache.content(detached) == {"trainer": {"max_epochs": 2}}
