"""Helpers that test subprocesses import (with tests/ on PYTHONPATH)."""

import time

from pytorch_lightning.callbacks import Callback


def train_node(lr: float = 1e-3, **trainer):
    """A conf/train node for s2d.training.fit in tests: float32, batches of 2, no progress bar; `trainer`
    adds to or overrides the Trainer's arguments (one CPU device by default)."""
    from omegaconf import OmegaConf

    return OmegaConf.create({
        "dtype": "float32", "batch_size": 2, "max_length": 64, "extra_callbacks": [],
        "module": {"_target_": "s2d.training.SFTModule", "warmup_steps": 0, "decay": "constant",
                   "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": lr}},
        "trainer": {"_target_": "pytorch_lightning.Trainer", "accelerator": "cpu", "devices": 1, "strategy": "auto",
                    "enable_progress_bar": False, "enable_model_summary": False, **trainer}})


class PauseAtEpoch(Callback):
    """Sleeps when an epoch starts, so a test can kill training at a known point (after an epoch checkpoint)."""

    def __init__(self, epoch: int = 1, seconds: float = 60):
        self.epoch = epoch
        self.seconds = seconds

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            time.sleep(self.seconds)


class RecordLosses(Callback):
    """Appends each optimizer step's training loss to a JSON-lines file (golden-number tests)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import json

        with open(self.path, "a") as f:
            f.write(json.dumps(float(outputs["loss"])) + "\n")
