"""LightningModule around a causal LM: cross-entropy on target tokens, AdamW, linear warmup."""

from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from s2d.training.data import IGNORE


def target_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled (target) positions.

    The output head runs only where a label is, not over every prompt position: with a 49k vocabulary
    and prompts longer than their targets, that is most of the head's work in a step. Models whose
    logits are more than `head(hidden)` (soft-capped or scaled) take the model's own loss instead.
    """
    config = getattr(model, "config", None)
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    plain = (decoder is not None and head is not None and not getattr(config, "final_logit_softcapping", None)
             and getattr(config, "logit_scale", None) in (None, 1.0))
    if not plain:
        return model(**batch).loss
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE
    logits = head(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, labels[keep])


# Dropout rates a transformers config may declare (names vary by architecture).
DROPOUT_KEYS = ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop",
                "hidden_dropout_prob", "attention_probs_dropout_prob", "activation_dropout")


def set_dropout(model: torch.nn.Module, p: float) -> list[str]:
    """Set every dropout rate the model declares to `p`, for training: its config's keys, the same attributes
    its modules copied at build time (e.g. Llama attention's `attention_dropout`) and its `nn.Dropout` layers
    (LoRA's own dropout left alone). Returns what was set."""
    done = []
    config = getattr(model, "config", None)
    for key in DROPOUT_KEYS:
        if config is not None and isinstance(getattr(config, key, None), float):
            setattr(config, key, p)
            done.append(f"config.{key}")
    for name, module in model.named_modules():
        if "lora" in name:
            continue
        if isinstance(module, torch.nn.Dropout):
            module.p = p
            done.append(name)
            continue
        for key in DROPOUT_KEYS:
            if isinstance(getattr(module, key, None), float):
                setattr(module, key, p)
                done.append(f"{name}.{key}")
    return done


class SFTModule(pl.LightningModule):
    """`dropout`: the rate set on every dropout the model has while it trains (paper: 0.1); None keeps the model's."""

    def __init__(self, model: torch.nn.Module, optimizer: Callable, warmup_steps: int = 0, decay: str = "constant",
                 dropout: float | None = None):
        super().__init__()
        if decay not in ("constant", "linear"):
            raise ValueError(f"train.module.decay must be 'constant' or 'linear', got '{decay}'")
        if dropout is not None:
            if not 0.0 <= dropout < 1.0:
                raise ValueError(f"train.dropout must lie in [0, 1), got {dropout}")
            if not set_dropout(model, float(dropout)):
                raise ValueError(f"train.dropout={dropout}: the model declares no dropout to set; use train.dropout=null")
        # Loaders hand back models in eval mode; fine-tuning needs dropout (if the model has any) active.
        self.model = model.train()
        self.optimizer_factory = optimizer
        self.warmup_steps = warmup_steps
        self.decay = decay

    def training_step(self, batch, batch_idx):
        loss = target_loss(self.model, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def configure_optimizers(self):
        # Frozen weights (all but the adapters under LoRA) get no optimizer state.
        opt = self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])
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
