"""Helpers that test subprocesses import (with tests/ on PYTHONPATH)."""

import time

from pytorch_lightning.callbacks import Callback


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
