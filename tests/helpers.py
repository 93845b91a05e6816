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
