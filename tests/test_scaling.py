"""Scaling out on CPU: Lightning DDP with two processes through `python -m s2d.run` (rank 0 runs the
stages, rank 1 joins the training), and the data-parallel rank detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from s2d.stages import process_rank


@pytest.mark.parametrize("env,rank", [({}, 0), ({"LOCAL_RANK": "1"}, 1), ({"RANK": "3"}, 3), ({"NODE_RANK": "1"}, 1),
                                      ({"SLURM_PROCID": "2", "SLURM_NTASKS": "1"}, 0),
                                      ({"SLURM_PROCID": "2", "SLURM_NTASKS": "8"}, 2)])
def test_process_rank(monkeypatch, env, rank):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert process_rank() == rank


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes_runs_the_loop(tiny_model_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_SILENT="true")
    cmd = [sys.executable, "-m", "s2d.run", f"model.name_or_path={tiny_model_dir}", "logger=none",
           "backend.progress=false", "task.n_train=8", "task.n_eval=4", "generate.n=2", "generate.max_new_tokens=8",
           "eval.max_new_tokens=8", "filter=none", "target=full_response", "train.batch_size=2",
           "train/trainer=ddp", "train.trainer.accelerator=cpu", "train.trainer.devices=2",
           "train.trainer.precision=32-true", "train.trainer.max_steps=3", "train.trainer.enable_progress_bar=false",
           f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    train = json.loads((tmp_path / "run" / "train" / "DONE.json").read_text())
    assert train["trained"] and train["steps"] == 3
    assert train["config"]["train"]["trainer"]["strategy"] == "ddp"
    assert "rank 1: training done" in proc.stderr + proc.stdout  # the second process trained and left
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "distilled/accuracy" in m and "system1/accuracy" in m  # rank 0 evaluated after training
