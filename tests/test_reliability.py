"""Faults and bad input: kills during training and evaluation, damaged files, clear messages, safe writes."""

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
from s2d.artifacts import is_done, read_jsonl, require_done, safe_child, write_json
from s2d.config import check
from s2d.llm.model import ModelSource, local_model_digest
from s2d.run import NothingToDistill, run
from s2d.tasks.base import BadDataFile, load_records
from s2d.tasks.coin_flip import CoinFlip
from s2d.tasks.gsm8k import GSM8k


def cfg_of(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def tiny(model_dir, tmp_path, *extra, run="run"):
    return ["model=smollm2-135m", "method=rar2", f"model.name_or_path={model_dir}", f"paths.output_dir={tmp_path / run}",
            f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", "backend.progress=false",
            "task.n_train=16", "task.n_eval=6", "generate.n=2", "generate.max_new_tokens=8",
            "eval.max_new_tokens=8", "train.batch_size=4", "train.trainer.max_epochs=2",
            "train.trainer.enable_progress_bar=false", "filter=none", "target=full_response", *extra]


def launch(overrides, run_dir, env=None):
    return subprocess.Popen([sys.executable, "-m", "s2d.run", *overrides, f"hydra.run.dir={run_dir}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, **(env or {})})


def wait_for(predicate, proc, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and not predicate():
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the kill: " + proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# ---- kills --------------------------------------------------------------------------------------------

@pytest.mark.slow  # SIGKILL and resume in subprocesses: about a minute on 2 cores
def test_killed_training_resumes_from_its_checkpoint_with_the_same_wandb_run(tiny_model_dir, tmp_path):
    overrides = tiny(tiny_model_dir, tmp_path, "logger=wandb", "logger.mode=offline")
    cfg = cfg_of(*overrides)
    pause = ["+train.extra_callbacks=[{_target_: helpers.PauseAtEpoch, epoch: 1, seconds: 120}]"]
    proc = launch(overrides + pause, tmp_path / "run", env={"PYTHONPATH": str(ROOT / "tests")})
    wait_for(lambda: any((tmp_path / "cache" / "train").glob("*/checkpoints/last.ckpt")), proc)
    train_dir = next((tmp_path / "cache" / "train").iterdir())
    assert not is_done(train_dir) and (train_dir / "checkpoints" / "last.ckpt").exists()
    state = json.loads(next((tmp_path / "cache" / "runs").glob("*.json")).read_text())
    assert state["status"] == "running"

    metrics = run(cfg_of(*overrides, f"paths.output_dir={tmp_path / 'again'}"))
    done = json.loads((train_dir / "DONE.json").read_text())
    assert done["resumed_from_checkpoint"] is True and done["steps"] == 8  # 16 pairs / 4 × 2 epochs
    assert not (train_dir / "checkpoints").exists()  # the saved model supersedes it
    after = json.loads(next((tmp_path / "cache" / "runs").glob("*.json")).read_text())
    assert after == {**state, "status": "finished", "run_dir": str(tmp_path / "again")}
    assert list((tmp_path / "again" / "wandb").glob(f"offline-run-*-{state['wandb_id']}"))  # the same W&B run

    ref = run(cfg_of(*overrides, f"paths.cache_dir={tmp_path / 'ref'}", f"paths.output_dir={tmp_path / 'ref-run'}"))
    assert metrics["train/loss"] == pytest.approx(ref["train/loss"], rel=1e-5)
    assert {k: v for k, v in metrics.items() if k.startswith("distilled/")} == \
        {k: v for k, v in ref.items() if k.startswith("distilled/")}


@pytest.mark.slow  # SIGKILL and resume in subprocesses: about a minute on 2 cores
def test_killed_evaluation_resumes_without_loss_or_duplicates(tiny_model_dir, tmp_path):
    overrides = tiny(tiny_model_dir, tmp_path, "task.n_eval=60", "eval.chunk_size=1", "eval.max_new_tokens=24",
                     "eval.systems=[system1]", "train.trainer.max_steps=1")
    proc = launch(overrides, tmp_path / "run")
    ev = tmp_path / "cache" / "evaluate"
    wait_for(lambda: any(len(read_jsonl(p)) >= 10 for p in ev.glob("*/traces.jsonl")), proc)
    traces = next(ev.glob("*/traces.jsonl"))
    partial = read_jsonl(traces)
    assert 10 <= len(partial) < 60 and not is_done(traces.parent)

    metrics = run(cfg_of(*overrides, f"paths.output_dir={tmp_path / 'again'}"))
    rows = read_jsonl(traces)
    assert len(rows) == 60 == len({r["example_id"] for r in rows}) and rows[: len(partial)] == partial
    ref = run(cfg_of(*overrides, f"paths.cache_dir={tmp_path / 'ref'}", f"paths.output_dir={tmp_path / 'ref-run'}"))
    assert {k: v for k, v in metrics.items() if k.startswith("system1/")} == \
        {k: v for k, v in ref.items() if k.startswith("system1/")}


# ---- damaged files and the cache ----------------------------------------------------------------------

def test_a_damaged_done_file_makes_the_stage_recompute(tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "DONE.json").write_text('{"stage": "gener')  # cut short
    assert not is_done(stage)
    assert (stage / "DONE.json.corrupt").exists() and not (stage / "DONE.json").exists()
    with pytest.raises(RuntimeError, match="did not finish"):
        require_done(stage)
    write_json(stage / "DONE.json", {"stage": "x"})
    assert is_done(stage)


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    """write_json and rewrite_jsonl replace a file in one rename: a writer that fails half way (here an object
    json cannot encode after the first key) changes nothing a reader sees and leaves no temporary file."""
    from s2d.artifacts import read_json, rewrite_jsonl

    path = tmp_path / "stage" / "info.json"
    write_json(path, {"done": 1})

    class Unwritable:
        def __str__(self):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"a": 1, "b": Unwritable()})
    assert read_json(path) == {"done": 1}
    with pytest.raises(OSError, match="disk full"):
        rewrite_jsonl(path.with_suffix(".jsonl"), [{"a": 1}, {"b": Unwritable()}])
    assert sorted(p.name for p in path.parent.iterdir()) == ["info.json"]


def test_a_damaged_done_file_is_recomputed_by_the_run(tiny_model_dir, tmp_path):
    overrides = tiny(tiny_model_dir, tmp_path, "train.trainer.max_steps=1")
    first = run(cfg_of(*overrides))
    gen = next((tmp_path / "cache" / "generate").iterdir())
    (gen / "DONE.json").write_text("not json")
    again = run(cfg_of(*overrides, f"paths.output_dir={tmp_path / 'again'}"))
    timing = ("generate/seconds",)
    assert {k: v for k, v in again.items() if k not in timing} == {k: v for k, v in first.items() if k not in timing}
    assert json.loads((gen / "DONE.json").read_text())["stage"] == "generate" and (gen / "DONE.json.corrupt").exists()


def test_keys_separate_models_tokenizers_prompt_versions_and_seeds(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    other = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, other)
    base = ["paths.output_dir=/tmp/x", "model=smollm2-135m", "method=rar2", f"model.name_or_path={tiny_model_dir}"]
    key = cache.generate_key(cfg_of(*base))
    assert cache.generate_key(cfg_of(*base, "seed=1")) != key
    assert cache.generate_key(cfg_of(*base[:3], f"model.name_or_path={other}")) != key
    # the same directory with another tokenizer is another model
    before = local_model_digest(other)
    cfgfile = other / "tokenizer_config.json"
    cfgfile.write_text(cfgfile.read_text().replace("<pad>", "<pad>", 1) + " ")
    assert local_model_digest(other) != before
    # a prompt's text (not a version number) is part of the key
    assert cache.generate_key(cfg_of(*base, "method.prompts.respond='{question}\n\nAnswer it.'")) != key


# ---- bad input: one clear message each -----------------------------------------------------------------

@pytest.mark.parametrize("name, text, message", [
    ("empty.jsonl", "", r"empty.jsonl: the file is empty"),
    ("blank.jsonl", "\n \n", r"the file is empty"),
    ("broken.jsonl", '{"question": "a", "answer": "b"}\n{"question": "c", "answer": \n', r"broken.jsonl, line 2: not valid JSON"),
    ("list.jsonl", '["a", "b"]\n', r"list.jsonl, line 1: expected a JSON object"),
    ("array.json", '[{"question": "a",\n  "answer": }]', r"array.json, line 2: not valid JSON"),
    ("table.txt", "x", r"unsupported file type '.txt'"),
])
def test_broken_data_files_name_file_and_line(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(BadDataFile, match=message):
        load_records(p)


def test_missing_fields_and_short_eval_splits_are_named(tmp_path):
    p = tmp_path / "coins.jsonl"
    p.write_text('{"question": "A coin is heads up. Is it still heads up?", "answer": "yes"}\n{"question": "x"}\n')
    with pytest.raises(ValueError, match=r"coins.jsonl record 2: missing field 'answer' or 'targets'"):
        CoinFlip(n_eval=2, n_train=1, eval_path=str(p)).eval_examples()
    with pytest.raises(ValueError, match=r"has 2 records but task.n_eval=5; lower task.n_eval"):
        CoinFlip(n_eval=5, n_train=1, eval_path=str(p)).eval_examples()
    g = tmp_path / "gsm.jsonl"
    g.write_text('{"question": "1+1?", "answer": "2"}\n')
    with pytest.raises(ValueError, match=r"record 1: the answer has no '#### <number>'"):
        GSM8k(n_train=1, n_eval=1, train_path=str(g), eval_path=str(g), hub_id=None).train_examples()


@pytest.mark.parametrize("overrides, message", [
    (["method=s2a", "generate.max_new_tokens=4"], r"generate.max_new_tokens=4 is too small for method 'S2A'.*>=8"),
    (["method=cot", "eval.max_new_tokens=8"], r"eval.max_new_tokens=8 is too small for method 'CoT'"),
    (["on_nothing_to_distill=maybe"], r"on_nothing_to_distill='maybe' is not allowed; use one of: fail, skip"),
])
def test_config_values_out_of_range_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        check(cfg_of("paths.output_dir=/tmp/x", *overrides))


def test_nothing_to_distill_fails_after_keeping_the_evaluations(tiny_model_dir, tmp_path):
    # a random model never writes a parsable answer, so self-consistency keeps nothing
    overrides = tiny(tiny_model_dir, tmp_path, "filter=self_consistency", "target=answer")
    with pytest.raises(NothingToDistill, match=r"kept 0 of 16 train inputs .*generate.n.*filter=none"):
        run(cfg_of(*overrides))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "system1/accuracy" in metrics and "system2/accuracy" in metrics  # the finished work is kept
    assert run(cfg_of(*overrides, "on_nothing_to_distill=skip"))["train/pairs"] == 0


def test_bad_input_exits_non_zero_with_one_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    bad = tmp_path / "coins.jsonl"
    bad.write_text('{"question": "q", "answer": "yes"}\n{oops\n')
    proc = subprocess.run([sys.executable, "-m", "s2d.run", "logger=none", f"task.eval_path={bad}",
                           f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert f"{bad}, line 2: not valid JSON" in proc.stderr


# ---- security ---------------------------------------------------------------------------------------------

def test_remote_code_only_when_the_config_says_so(tiny_model_dir, monkeypatch):
    import transformers

    seen = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*a, **k):
        seen.append(k.get("trust_remote_code"))
        return real(*a, **k)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    ModelSource(name="t", name_or_path=str(tiny_model_dir)).load()
    ModelSource(name="t", name_or_path=str(tiny_model_dir), trust_remote_code=True).load()
    assert seen == [False, True]
    assert cfg_of("paths.output_dir=/tmp/x", "model=smollm2-135m").model.trust_remote_code is False
    assert cfg_of("paths.output_dir=/tmp/x").model.base.trust_remote_code is False  # the organism's base model


def test_no_api_key_reaches_disk_or_wandb(tiny_model_dir, tmp_path):
    secret = "s2d-test-secret-0123456789abcdef0123456789abcdef"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_API_KEY=secret, HF_TOKEN=secret, WANDB_SILENT="true")
    overrides = tiny(tiny_model_dir, tmp_path, "logger=wandb", "logger.mode=offline", "train.trainer.max_steps=1")
    proc = subprocess.run([sys.executable, "-m", "s2d.run", *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert secret not in proc.stdout + proc.stderr
    leaks = [p for root in (tmp_path / "run", tmp_path / "cache") for p in root.rglob("*")
             if p.is_file() and not p.is_symlink() and secret.encode() in p.read_bytes()]
    assert leaks == []


def test_artifact_names_cannot_leave_their_directory(tmp_path):
    assert safe_child(tmp_path, "filter", "abc") == tmp_path / "filter" / "abc"
    for bad in ("..", "../x", "/etc/passwd", "a/b", "", "."):
        with pytest.raises(ValueError, match="refusing"):
            safe_child(tmp_path, bad)


# ---- determinism -----------------------------------------------------------------------------------------

def test_same_seed_same_data_samples_and_metrics(tiny_model_dir, tmp_path):
    overrides = tiny(tiny_model_dir, tmp_path, "generate.temperature=0.9", "train.trainer.max_steps=2")
    a = run(cfg_of(*overrides))
    b = run(cfg_of(*overrides, f"paths.cache_dir={tmp_path / 'other'}", f"paths.output_dir={tmp_path / 'b'}"))
    ga, gb = (next((root / "generate").iterdir()) for root in (tmp_path / "cache", tmp_path / "other"))
    assert read_jsonl(ga / "traces.jsonl") == read_jsonl(gb / "traces.jsonl")
    assert read_jsonl(ga / "examples.jsonl") == read_jsonl(gb / "examples.jsonl")
    drop = ("generate/seconds", "train/seconds_per_step")
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


def test_line_check_splits_on_newlines_only(tmp_path):
    p = tmp_path / "nel.jsonl"
    p.write_text(json.dumps({"question": "Sutherland Brothers and \x85?", "answer": "Quiver"}, ensure_ascii=False) + "\n",
                 encoding="utf-8")
    assert load_records(p)[0]["answer"] == "Quiver"


def test_a_run_stopped_by_sigterm_in_training_exits_non_zero(tiny_model_dir, tmp_path, monkeypatch):
    """Lightning ends training on SIGTERM with a SystemExit whose code is 0; the run must exit 143 (as a process
    killed by SIGTERM does), write no metrics and cache no trained model, and the same command then finishes."""
    from s2d.training.module import SFTModule

    real_step = SFTModule.training_step

    def step_then_sigterm(self, batch, batch_idx):
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler catches it and stops after this step
        return real_step(self, batch, batch_idx)

    overrides = tiny(tiny_model_dir, tmp_path)
    monkeypatch.setattr(SFTModule, "training_step", step_then_sigterm)
    with pytest.raises(SystemExit) as stopped:
        run(cfg_of(*overrides))
    assert stopped.value.code == 128 + signal.SIGTERM
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not any(is_done(d) for d in (tmp_path / "cache" / "train").iterdir())
    monkeypatch.undo()  # the real training_step again
    assert "distilled/accuracy" in run(cfg_of(*overrides))
