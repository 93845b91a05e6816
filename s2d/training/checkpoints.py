"""Resume checkpoints of a training run: written atomically each epoch (`AtomicCheckpoint`), removed once the
saved model is recorded (`drop_checkpoints`)."""

from __future__ import annotations

import os
import shutil
import weakref
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


def drop_checkpoints(out: Path) -> None:
    """The saved model supersedes the resume checkpoint (removed only after the stage is marked done)."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)


class AtomicCheckpoint(ModelCheckpoint):
    """Writes each checkpoint to a temporary file and renames it, so a kill mid-write leaves the previous
    checkpoint intact instead of a truncated one."""

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        if trainer.is_global_zero:
            _remove(tmp)  # left by a run killed mid-write
        trainer.strategy.barrier("s2d-checkpoint-tmp")
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            replace_path(tmp, filepath)
        trainer.strategy.barrier("s2d-checkpoint-replaced")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:  # as ModelCheckpoint does: a logger may record or upload the checkpoint
            for logger in trainer.loggers:
                logger.after_save_checkpoint(weakref.proxy(self))

def _remove(path: str | Path) -> None:
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def replace_path(src: str | Path, dst: str | Path) -> None:
    """Move `src` onto `dst`, a file or a directory (DeepSpeed and sharded FSDP checkpoints are directories,
    which os.replace cannot put over an existing one): the old one is renamed aside first and removed after,
    so at every moment either the old or the new checkpoint is complete under some name."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir() and not dst.is_dir():
        os.replace(src, dst)
        return
    old = dst.with_name(dst.name + ".old")
    _remove(old)
    if dst.exists() or dst.is_symlink():
        os.replace(dst, old)
    os.replace(src, dst)
    _remove(old)
