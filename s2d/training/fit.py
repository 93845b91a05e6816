"""One supervised fine-tuning run with Lightning: (prompt → target) pairs in, a saved model directory out.

Shared by the distillation stage and the model organism, so both resume, checkpoint and save the same way.
The Trainer's strategy comes from strategy.py, the resume checkpoints from checkpoints.py; whether a
configuration fits in memory is checked before the run starts (memory.py).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from s2d.training.checkpoints import AtomicCheckpoint
from s2d.training.data import SFTDataModule
from s2d.training.strategy import FSDPClipGradNorm, full_state_dict, is_fsdp, node_strategy, strategy_of, trainer_node

log = logging.getLogger(__name__)


def fit(pairs: Sequence[tuple[str, str]], source, train: DictConfig, out: Path, seed: int, logger=False,
        before_training: Callable[[], None] | None = None) -> dict:
    """Fine-tune `source`'s model on `pairs` as `train` (a conf/train node) says; save it to `out/model`.

    An atomic `out/checkpoints/last.ckpt` is written each epoch, and a killed run started again resumes
    from it; call `drop_checkpoints(out)` once the result is recorded. Returns the run's facts (steps, final
    loss, seconds, peak memory); under DDP, processes other than the lead save nothing and return
    `global_zero: False`.
    """
    if before_training is not None:
        before_training()
    pl.seed_everything(seed, workers=True, verbose=False)
    model, tok = source.load(train.dtype)
    lora = train.get("lora")
    if lora:
        model = with_lora(model, lora)
    data = SFTDataModule(pairs, tok, batch_size=train.batch_size, max_length=train.max_length, seed=seed,
                         group_by_length=bool(train.get("group_by_length", False)))
    module = instantiate(train.module, model=model)
    ckpt_dir = out / "checkpoints"
    node, clip = trainer_node(train.trainer), []
    if is_fsdp(node_strategy(train.trainer)) and node.get("gradient_clip_val") \
            and node.get("gradient_clip_algorithm") in (None, "norm"):
        clip = [FSDPClipGradNorm(node.pop("gradient_clip_val"))]
    trainer = instantiate(node, default_root_dir=str(out), logger=logger,
                          strategy=strategy_of(train.trainer, model),
                          callbacks=[AtomicCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1,
                                                      every_n_epochs=1, enable_version_counter=False),
                                     *clip, *instantiate(train.get("extra_callbacks") or [])])
    last = ckpt_dir / "last.ckpt"
    aside = ckpt_dir / "last.ckpt.old"  # a kill between replace_path's two renames leaves only this one
    resume = str(last) if last.exists() else str(aside) if aside.exists() else None
    if resume:
        log.info("train: resuming from %s", last)
    t0 = time.time()
    with processes_end_with_fit(trainer):
        # weights_only: the checkpoint is read without unpickling arbitrary objects.
        try:
            trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
        except SIGTERMException as e:
            # Lightning stops on SIGTERM with a SystemExit whose code is 0; a stopped run must not read as a
            # finished one to a shell, a scheduler or a sweep, so it exits as a process killed by SIGTERM does.
            log.error("train: stopped by SIGTERM; every finished stage is cached, and the same command resumes "
                      "after the last one, and this training from its last epoch checkpoint if it wrote one")
            raise SystemExit(128 + signal.SIGTERM) from e
        seconds = time.time() - t0
        state = full_state_dict(trainer)  # collective under FSDP: every rank takes part, rank 0 gets the weights
    if not trainer.is_global_zero:
        # Data-parallel followers hold the same weights; the lead process alone writes the result.
        return {"global_zero": False, "steps": trainer.global_step}
    if state is None and lora and lora.merge_on_save:
        model = model.merge_and_unload()  # plain weights: any engine loads them like a full fine-tune
    if state is not None and lora:
        save_adapter(model, state, out / "model")
    else:
        # A PEFT model writes only its adapter (adapter_config.json).
        model.save_pretrained(out / "model", **({"state_dict": state} if state is not None else {}))
    tok.save_pretrained(out / "model")
    loss = trainer.callback_metrics.get("train/loss")
    steps = trainer.global_step
    del trainer, module, model, data
    _free_accelerator_memory()  # an engine for evaluation (vLLM) needs the GPU memory the trainer held
    return {"global_zero": True, "pairs": len(pairs), "steps": steps,
            "resumed_from_checkpoint": resume is not None,
            "train/loss": float(loss) if loss is not None else None, "seconds": seconds,
            "seconds_per_step": seconds / max(1, steps), "peak_rss_gib": peak_rss_gib()}

# What Lightning's process launcher writes into the launching process's environment (DeepSpeed adds RANK).
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK", "OMP_NUM_THREADS")


@contextmanager
def processes_end_with_fit(trainer: pl.Trainer):
    """When this process starts the other training processes itself (Lightning DDP/FSDP/DeepSpeed on one
    machine, no SLURM or torchrun), undo afterwards what the launch left behind: the environment variables
    (with LOCAL_RANK set, the next Trainer in this process would take itself for a process started from
    outside and launch nobody), torch's thread count (the launch divides the CPUs among the processes, which
    would slow this process's evaluation and later cells) and the process group joined with processes that
    have since exited. Without this, the second cell of a multirun with the basic or local launcher would train
    against dead peers. Lightning's watcher of the launched processes stays: it ends once they exit cleanly."""
    import torch
    import torch.distributed as dist

    env = getattr(trainer.strategy, "cluster_environment", None)
    launches = getattr(trainer.strategy, "launcher", None) is not None and env is not None \
        and not env.creates_processes_externally
    saved, threads = {k: os.environ.get(k) for k in LAUNCH_ENV}, torch.get_num_threads()
    try:
        yield
    finally:
        if launches:
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()  # not Lightning's helper: it resets this process's SIGINT handler
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            torch.set_num_threads(threads)

def _free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

def with_lora(model, lora: DictConfig):
    """The model wrapped by PEFT with LoRA adapters as `train.lora` says; only adapter weights train."""
    from omegaconf import OmegaConf
    from peft import LoraConfig, get_peft_model

    targets = lora.target_modules
    targets = targets if isinstance(targets, str) else list(OmegaConf.to_container(targets))
    config = LoraConfig(r=int(lora.r), lora_alpha=int(lora.alpha), lora_dropout=float(lora.dropout),
                        target_modules=targets, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("train: LoRA r=%d on %s: %d of %d parameters train (%.2f%%)", config.r, targets, trainable, total,
             100 * trainable / total)
    return model


def save_adapter(model, state: dict, path: Path) -> None:
    """Save a PEFT model's adapter from FSDP's gathered full state dict. PEFT picks the adapter's entries by
    walking the model's modules, and FSDP units nested in the model put `_fsdp_wrapped_module` into those
    module names (not into the gathered keys), so PEFT would find no adapter entry and save an empty one.
    The walk runs over the same architecture built on the meta device instead (no memory, no weights)."""
    import copy

    import torch
    from peft import get_peft_model

    name = model.active_adapter
    config = copy.deepcopy(model.peft_config[name])
    base = model.get_base_model()
    with torch.device("meta"):
        skeleton = type(base)(copy.deepcopy(base.config))  # the very class, also for trust_remote_code models
    skeleton = get_peft_model(skeleton, config, adapter_name=name)
    skeleton.peft_config[name].base_model_name_or_path = model.peft_config[name].base_model_name_or_path
    skeleton.save_pretrained(path, state_dict=state)

def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
