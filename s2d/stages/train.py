"""Stage 3: fine-tune the model on (System 1 prompt → target) with Lightning; save it with save_pretrained."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d import cache
from s2d.artifacts import is_done, mark_done, read_jsonl, require_done
from s2d.stages import resolved, stage_dir
from s2d.training import SFTDataModule

log = logging.getLogger(__name__)


def run(cfg: DictConfig, filter_dir: Path, tracker, before_training=None) -> Path:
    """`before_training`: called just before a model is loaded for training (to free other models' memory)."""
    require_done(filter_dir)
    out = stage_dir(cfg, "train", cache.train_key(cfg, filter_dir.name))
    if is_done(out):
        log.info("train: reusing %s", out)
        return out
    rows = read_jsonl(filter_dir / "targets.jsonl")
    if not rows:
        # Nothing passed the filter: a real outcome for a weak model, reported rather than crashed on.
        log.warning("train: the filter kept no input, so there is no distilled model. Lower filter.min_share, "
                    "raise generate.n, or use filter=none.")
        mark_done(out, {"stage": "train", "trained": False, "pairs": 0, "config": resolved(cfg)})
        return out
    if before_training is not None:
        before_training()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    source = instantiate(cfg.model)
    model, tok = source.load(cfg.train.dtype)
    data = SFTDataModule([(r["prompt"], r["target"]) for r in rows], tok, batch_size=cfg.train.batch_size,
                         max_length=cfg.train.max_length, seed=cfg.seed)
    module = instantiate(cfg.train.module, model=model)
    ckpt_dir = out / "checkpoints"
    trainer = instantiate(cfg.train.trainer, default_root_dir=str(out), logger=tracker.lightning_logger(),
                          callbacks=[AtomicCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1,
                                                      every_n_epochs=1, enable_version_counter=False),
                                     *instantiate(cfg.train.get("extra_callbacks") or [])])
    last = ckpt_dir / "last.ckpt"
    resume = str(last) if last.exists() else None
    if resume:
        log.info("train: resuming from %s", last)
    t0 = time.time()
    # weights_only: the checkpoint is read without unpickling arbitrary objects.
    trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    seconds = time.time() - t0
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    loss = trainer.callback_metrics.get("train/loss")
    info = mark_done(out, {
        "stage": "train", "trained": True, "pairs": len(rows), "steps": trainer.global_step,
        "resumed_from_checkpoint": resume is not None,
        "train/loss": float(loss) if loss is not None else None, "seconds": seconds,
        "seconds_per_step": seconds / max(1, trainer.global_step),
        "peak_rss_gib": _peak_rss_gib(), "config": resolved(cfg),
    })
    log.info("train: %d pairs, %d steps in %.1fs, final loss %s", len(rows), info["steps"], seconds, info["train/loss"])
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # the saved model supersedes the resume checkpoint
    return out


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


def _peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
