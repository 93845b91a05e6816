"""Scaling out on CPU: Lightning DDP with two processes through `python -m s2d.run` (rank 0 runs the
stages, rank 1 joins the training), and the data-parallel rank detection."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from s2d.distributed import process_rank


@pytest.mark.parametrize("env,rank", [({}, 0), ({"LOCAL_RANK": "1"}, 1), ({"RANK": "3"}, 3), ({"NODE_RANK": "1"}, 1),
                                      ({"SLURM_PROCID": "2", "SLURM_NTASKS": "1"}, 0),
                                      ({"SLURM_PROCID": "2", "SLURM_NTASKS": "8"}, 2)])
def test_process_rank(monkeypatch, env, rank):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert process_rank() == rank


def _run_ddp(tiny_model_dir, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """`python -m s2d.run` on the tiny model with DDP over two CPU processes, one epoch; `args` add to it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_SILENT="true")
    cmd = [sys.executable, "-m", "s2d.run", *args, "model=smollm2-135m", f"model.name_or_path={tiny_model_dir}",
           "logger=none", "backend.progress=false", "task.n_train=8", "task.n_eval=4", "generate.n=2",
           "generate.max_new_tokens=16", "eval.max_new_tokens=16", "filter=none", "target=full_response",
           "train.batch_size=2", "train/trainer=ddp", "train.trainer.accelerator=cpu", "train.trainer.devices=2",
           "train.trainer.precision=32-true", "train.trainer.max_epochs=1", "train.trainer.enable_progress_bar=false",
           f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes_runs_the_loop(tiny_model_dir, tmp_path):
    proc = _run_ddp(tiny_model_dir, tmp_path, f"hydra.run.dir={tmp_path / 'run'}")
    train = json.loads((tmp_path / "run" / "train" / "DONE.json").read_text())
    # one epoch: each of the 2 processes takes its own half of the pairs, 2 per step
    assert train["trained"] and train["pairs"] >= 8 and train["steps"] == math.ceil(train["pairs"] / 4)
    assert train["config"]["train"]["trainer"]["strategy"] == "ddp"
    assert "rank 1: training done" in proc.stderr + proc.stdout  # the second process trained and left
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "distilled/accuracy" in m and "system1/accuracy" in m  # rank 0 evaluated after training


@pytest.mark.slow
def test_ddp_multirun_trains_every_cell_with_two_processes(tiny_model_dir, tmp_path):
    """Two cells of one `-m` sweep in one process, each training with two DDP processes: the second cell's
    Trainer must launch its own second process (the first cell's launch leaves LOCAL_RANK and the process
    group behind, and the first cell's second process has exited)."""
    proc = _run_ddp(tiny_model_dir, tmp_path, "-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    for cell in ("0", "1"):
        train = json.loads((tmp_path / "sweep" / cell / "train" / "DONE.json").read_text())
        assert train["config"]["seed"] == int(cell)
        # each of the two processes took half of the pairs: two processes trained this cell
        assert train["trained"] and train["steps"] == math.ceil(train["pairs"] / 4)
        assert "distilled/accuracy" in json.loads((tmp_path / "sweep" / cell / "metrics.json").read_text())
    assert (proc.stderr + proc.stdout).count("rank 1: training done") == 2


def _compose(overrides, return_hydra_config=False):
    from hydra import compose, initialize_config_dir

    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=return_hydra_config)


@pytest.mark.parametrize("overrides,match", [
    # the trainer default (cpu, float32) with a 7.6B model: ~127 GiB in one process, on a 64 GiB machine
    (["model=qwen2.5-7b-instruct"], r"full fine-tuning in float32 on cpu .* needs about 127 GiB per process"),
    # DDP keeps a whole copy per GPU: ~65 GiB in bf16 fits 80 GB, but not in float32 (~127 GiB)
    (["model=llama-3.1-8b-instruct", "train/trainer=ddp"], r"needs about 134 GiB per device, and there are 80 GiB"),
    (["model=llama-2-70b-chat", "train/trainer=fsdp", "train.dtype=bfloat16", "train=lora"],
     "merge_on_save=true under FSDP"),
    (["model=llama-2-70b-chat", "train/trainer=fsdp", "train.trainer.devices=8", "train.dtype=bfloat16"],
     r"8 training processes each load the full model in bfloat16 \(about 1131 GiB of host memory"),
])
def test_a_config_that_cannot_fit_says_so_before_loading(overrides, match):
    from s2d.training.memory import check_fits

    with pytest.raises(ValueError, match=match):
        check_fits(_compose(overrides), host_gib=64)


@pytest.mark.parametrize("overrides,host,per_device", [
    (["model=qwen2.5-7b-instruct", "train/trainer=fsdp", "train.dtype=bfloat16"], 256, 9.8),
    (["model=llama-3.1-8b-instruct", "train=lora", "train/trainer=gpu", "train.dtype=bfloat16"], 64, 18.9),
    (["model=llama-2-70b-chat", "train=lora", "train.lora.merge_on_save=false", "train/trainer=fsdp",
      "train.dtype=bfloat16"], 2048, 20.2),
])
def test_fitting_configs_pass_the_check(overrides, host, per_device):
    from s2d.training.memory import check_fits

    need = check_fits(_compose(overrides), host_gib=host)
    assert need["per_device"] == pytest.approx(per_device, abs=0.1)
    assert check_fits(_compose(["model=smollm2-135m"])) is None  # size unknown: nothing to check


@pytest.mark.parametrize("overrides,warned", [
    (["train.dtype=bfloat16"], True),                                      # full fine-tuning on bf16 weights
    (["train.dtype=bfloat16", "train/trainer=fsdp"], True),
    (["train.dtype=bfloat16", "train=lora"], False),                       # adapters stay float32
    (["train/trainer=fsdp"], False),                                       # float32 weights, bf16-mixed compute
    (["train.dtype=bfloat16", "train/trainer=deepspeed"], False),          # DeepSpeed keeps float32 masters
])
def test_full_fine_tuning_on_16_bit_weights_is_warned_at_start(overrides, warned, caplog):
    from s2d.training.memory import check_fits

    with caplog.at_level("WARNING", logger="s2d.training.memory"):
        check_fits(_compose(["model=smollm2-135m", *overrides]))
    assert ("most updates at fine-tuning learning rates round away" in caplog.text) == warned


def test_slurm_memory_is_sized_from_the_model():
    import s2d.training.memory  # noqa: F401  (registers the s2d_node_mem_gb resolver, as s2d.run's import does)

    cfg = _compose(["hydra/launcher=slurm", "model=llama-2-70b-chat", "train/trainer=fsdp", "train.dtype=bfloat16"],
                   return_hydra_config=True)
    assert cfg.hydra.launcher.mem_gb == 64 + 1215  # 64 + 8 processes x 69B x 2 bytes x 1.1, rounded up
    small = _compose(["hydra/launcher=slurm", "model=smollm2-135m"], return_hydra_config=True)
    assert small.hydra.launcher.mem_gb == 64


def test_ddp_children_of_a_multirun_cell_run_that_cell_only(monkeypatch, tmp_path):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning_fabric.strategies.launchers.subprocess_script import _hydra_subprocess_cmd
    from omegaconf import open_dict

    from s2d.run import ddp_children_run_this_cell

    cfg = _compose(["method=cot", f"paths.output_dir={tmp_path / 'cell3'}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.overrides.task = ["method=cot", "task=coin_flip"]
        cfg.hydra.runtime.cwd = str(tmp_path)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # restored after the test
    HydraConfig.instance().set_config(cfg)
    monkeypatch.setattr(sys, "argv", ["s2d/run.py", "-m", "method=cot,rar2", "task=coin_flip"])
    before, _ = _hydra_subprocess_cmd(local_rank=1)
    args = lambda cmd: cmd[3:]  # after `python -m <module>`
    assert args(before)[:2] == ["-m", "method=cot,rar2"]  # without the fix: the child runs the whole sweep again
    ddp_children_run_this_cell(cfg)
    cmd, _ = _hydra_subprocess_cmd(local_rank=1)
    assert args(cmd)[:2] == ["method=cot", "task=coin_flip"] and "-m" not in args(cmd)
    assert f'hydra.run.dir="{tmp_path / "cell3"}"' in cmd


def test_directory_checkpoints_are_replaced_atomically_and_resumed(tmp_path, tiny_model_dir):
    """A strategy that saves checkpoints as directories (as DeepSpeed does): the second epoch's last.ckpt
    replaces the first's, and a run started again resumes from it."""
    import torch
    from helpers import train_node
    from pytorch_lightning.strategies import SingleDeviceStrategy

    from s2d.llm.model import ModelSource
    from s2d.training.fit import fit

    class DirectoryStrategy(SingleDeviceStrategy):
        saves = []

        def save_checkpoint(self, checkpoint, filepath, storage_options=None):
            os.makedirs(filepath)
            torch.save(checkpoint, os.path.join(filepath, "state.pt"))
            DirectoryStrategy.saves.append(filepath)

        def load_checkpoint(self, checkpoint_path, weights_only=None):
            return torch.load(os.path.join(checkpoint_path, "state.pt"), weights_only=False)

    train = train_node(max_epochs=2, log_every_n_steps=1)
    import s2d.training.fit as F

    real = F.strategy_of
    F.strategy_of = lambda node, model: DirectoryStrategy(device=torch.device("cpu"))  # fit's strategy hook
    try:
        pairs = [("q1", "a1"), ("q2", "a2"), ("q3", "a3"), ("q4", "a4")]
        src = ModelSource(name="tiny", name_or_path=str(tiny_model_dir))
        first = fit(pairs, src, train, tmp_path, seed=0)
        last = tmp_path / "checkpoints" / "last.ckpt"
        assert last.is_dir() and (last / "state.pt").exists() and first["steps"] == 4
        assert len(DirectoryStrategy.saves) == 2  # the second save went over a directory (Errno 39 before)
        assert not (tmp_path / "checkpoints" / "last.ckpt.tmp").exists()
        assert not (tmp_path / "checkpoints" / "last.ckpt.old").exists()
        train.trainer.max_epochs = 3
        again = fit(pairs, src, train, tmp_path, seed=0)
        assert again["resumed_from_checkpoint"] and again["steps"] == 6
    finally:
        F.strategy_of = real


def test_a_follower_stops_when_the_lead_fails_or_goes_quiet(tmp_path):
    """Followers started beside the lead (SLURM tasks, torchrun) wait for its filtered data; a lead that fails
    or dies must end their wait with an error, not leave them polling until the job's time limit."""
    import threading
    import time

    from s2d.distributed import LeadHeartbeat, LeadWatch
    from s2d.run import follow, lead_heartbeat_path

    cfg = _compose(["model=smollm2-135m", f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path}"])
    beat = lead_heartbeat_path(cfg)
    lead = LeadHeartbeat(beat, every_s=0.05).start()
    threading.Timer(0.3, lead.stop, args=(False,)).start()  # the lead's cell fails after a while
    t0 = time.time()
    with pytest.raises(RuntimeError, match=r"rank 0: the lead process \(rank 0\) failed"):
        follow(cfg, poll_seconds=0.05)
    assert time.time() - t0 < 5
    # the failure mark of an earlier attempt of the job (a requeue) does not stop the next attempt's follower ...
    assert LeadWatch(beat, stale_s=60, attempt="job.1").gone() is None
    assert LeadWatch(beat, stale_s=60).gone() is None  # nor one that finds it already there
    # ... but a lead that never beats again does, after stale_s
    with pytest.raises(RuntimeError, match=r"no sign of life from the lead process \(rank 0\)"):
        follow(cfg, poll_seconds=0.05, stale_s=0.3)


def test_the_lead_heartbeat_beats_then_marks_how_it_ended(tmp_path):
    import time

    from s2d.distributed import LeadHeartbeat, LeadWatch

    path = tmp_path / "runs" / "cell.lead"
    watch = LeadWatch(path, stale_s=0.2, attempt="job.0")
    lead = LeadHeartbeat(path, every_s=0.05, attempt="job.0").start()
    for _ in range(6):  # fresh beats keep a follower waiting past stale_s
        time.sleep(0.08)
        assert watch.gone() is None
    assert path.read_text().startswith("alive job.0 ")
    lead.stop(ok=True)
    assert path.read_text().startswith("finished job.0 ") and watch.gone() is None
    assert not list(path.parent.glob("*.tmp"))
    time.sleep(0.3)
    assert "no sign of life" in watch.gone()  # nothing changes after the end


def test_a_heartbeat_that_cannot_write_logs_and_keeps_beating(tmp_path, caplog):
    """A passing file system error must neither stop the beat nor raise into the run."""
    import time

    from s2d.distributed import LeadHeartbeat

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    lead = LeadHeartbeat(blocker / "cell.lead", every_s=0.05)  # its directory cannot be made
    with caplog.at_level("WARNING", logger="s2d.distributed"):
        lead.start()
        time.sleep(0.2)
        assert lead._thread.is_alive()
        blocker.unlink()  # the file system recovers
        time.sleep(0.2)
        lead.stop(ok=False)
    assert "could not write" in caplog.text
    assert (blocker / "cell.lead").read_text().startswith("failed ")


def test_the_launch_leaves_no_trace_in_the_launching_process(monkeypatch):
    """After a fit whose processes this process launched: the launch's environment variables and torch's
    thread count are back, and Ctrl+C still raises KeyboardInterrupt (Lightning's own teardown helper resets
    the SIGINT handler)."""
    import signal
    from types import SimpleNamespace

    import torch

    from s2d.training.fit import processes_end_with_fit

    for key in ("LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "RANK", "OMP_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    trainer = SimpleNamespace(strategy=SimpleNamespace(
        launcher=object(), cluster_environment=SimpleNamespace(creates_processes_externally=False)))
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGINT)
    with processes_end_with_fit(trainer):
        os.environ.update(LOCAL_RANK="0", WORLD_SIZE="2", MASTER_PORT="12345", RANK="0", OMP_NUM_THREADS="1")
        torch.set_num_threads(1)
    assert not any(k in os.environ for k in ("LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "RANK", "OMP_NUM_THREADS"))
    assert torch.get_num_threads() == threads and signal.getsignal(signal.SIGINT) is handler
