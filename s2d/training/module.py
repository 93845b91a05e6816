"""LightningModule around a causal LM: cross-entropy on target tokens, AdamW, linear warmup."""

from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch


class SFTModule(pl.LightningModule):
    def __init__(self, model: torch.nn.Module, optimizer: Callable, warmup_steps: int = 0, decay: str = "constant"):
        super().__init__()
        if decay not in ("constant", "linear"):
            raise ValueError(f"train.module.decay must be 'constant' or 'linear', got '{decay}'")
        # Loaders hand back models in eval mode; fine-tuning needs dropout (if the model has any) active.
        self.model = model.train()
        self.optimizer_factory = optimizer
        self.warmup_steps = warmup_steps
        self.decay = decay

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train/loss", out.loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return out.loss

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.model.parameters())
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = self.warmup_steps

        def scale(step: int) -> float:
            if warm and step < warm:
                return (step + 1) / warm
            if self.decay == "linear":
                return max(0.0, (total - step) / max(1, total - warm))
            return 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, scale)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
