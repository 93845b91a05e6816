"""Stage 3: fine-tune the model on (System 1 prompt → target) with Lightning; save it with save_pretrained."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d import cache
from s2d.artifacts import is_done, mark_done, read_jsonl, require_done
from s2d.artifacts import stage_lock
from s2d.distributed import process_rank
from s2d.stages import resolved, stage_dir
from s2d.training.checkpoints import drop_checkpoints
from s2d.training.fit import fit

log = logging.getLogger(__name__)


def run(cfg: DictConfig, filter_dir: Path, tracker, before_training=None) -> Path:
    """`before_training`: called just before a model is loaded for training (to free other models' memory)."""
    require_done(filter_dir)
    out = stage_dir(cfg, "train", cache.train_key(cfg, cache.targets_digest(filter_dir)))
    if is_done(out):
        log.info("train: reusing %s", out)
        return out
    if process_rank() > 0:  # a DDP follower joins the lead process's training, which holds the lock
        return _train(cfg, filter_dir, out, tracker, before_training)
    with stage_lock(out):
        if is_done(out):
            log.info("train: reusing %s (trained meanwhile by another process)", out)
            return out
        return _train(cfg, filter_dir, out, tracker, before_training)


def _train(cfg: DictConfig, filter_dir: Path, out: Path, tracker, before_training) -> Path:
    rows = read_jsonl(filter_dir / "targets.jsonl")
    if not rows:
        # Nothing passed the filter: a real outcome for a weak model, reported rather than crashed on.
        log.warning("train: the filter kept no input, so there is no distilled model. Lower filter.min_share, "
                    "raise generate.n, or use filter=none.")
        mark_done(out, {"stage": "train", "trained": False, "pairs": 0, "config": resolved(cfg)})
        return out
    info = fit([(r["prompt"], r["target"]) for r in rows], instantiate(cfg.model), cfg.train, out, cfg.seed,
               logger=tracker.lightning_logger(), before_training=before_training)
    if not info.pop("global_zero"):
        return out  # a DDP follower: the lead process records the stage
    info = mark_done(out, {"stage": "train", "trained": True, **info, "config": resolved(cfg)})
    log.info("train: %d pairs, %d steps in %.1fs, final loss %s", len(rows), info["steps"], info["seconds"],
             info["train/loss"])
    drop_checkpoints(out)
    return out
