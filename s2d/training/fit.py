"""One supervised fine-tuning run with Lightning: (prompt → target) pairs in, a saved model directory out.

Shared by the distillation stage and the model organism, so both resume, checkpoint and save the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from s2d.training.data import SFTDataModule

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
    data = SFTDataModule(pairs, tok, batch_size=train.batch_size, max_length=train.max_length, seed=seed)
    module = instantiate(train.module, model=model)
    ckpt_dir = out / "checkpoints"
    trainer = instantiate(train.trainer, default_root_dir=str(out), logger=logger,
                          callbacks=[AtomicCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1,
                                                      every_n_epochs=1, enable_version_counter=False),
                                     *instantiate(train.get("extra_callbacks") or [])])
    last = ckpt_dir / "last.ckpt"
    resume = str(last) if last.exists() else None
    if resume:
        log.info("train: resuming from %s", last)
    t0 = time.time()
    # weights_only: the checkpoint is read without unpickling arbitrary objects.
    trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    seconds = time.time() - t0
    if not trainer.is_global_zero:
        # Data-parallel followers hold the same weights; the lead process alone writes the result.
        return {"global_zero": False, "steps": trainer.global_step}
    if lora and lora.merge_on_save:
        model = model.merge_and_unload()  # plain weights: any engine loads them like a full fine-tune
    model.save_pretrained(out / "model")  # a PEFT model writes only its adapter (adapter_config.json)
    tok.save_pretrained(out / "model")
    loss = trainer.callback_metrics.get("train/loss")
    steps = trainer.global_step
    del trainer, module, model, data
    _free_accelerator_memory()  # an engine for evaluation (vLLM) needs the GPU memory the trainer held
    return {"global_zero": True, "pairs": len(pairs), "steps": steps,
            "resumed_from_checkpoint": resume is not None,
            "train/loss": float(loss) if loss is not None else None, "seconds": seconds,
            "seconds_per_step": seconds / max(1, steps), "peak_rss_gib": peak_rss_gib()}


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


def drop_checkpoints(out: Path) -> None:
    """The saved model supersedes the resume checkpoint (removed only after the stage is marked done)."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)


class AtomicCheckpoint(ModelCheckpoint):
    """Writes each checkpoint to a temporary file and renames it, so a kill mid-write leaves the previous
    checkpoint intact instead of a truncated one."""

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath


def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
