"""(System 1 prompt → target) pairs as token ids, with the loss only on the target."""

from __future__ import annotations

from typing import Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler

from s2d.chat import encode_chat, render_prompt

IGNORE = -100


def build_features(tokenizer, prompt: str, target: str, max_length: int) -> dict[str, list[int]]:
    """Prompt in the chat template, then the target and EOS; only target and EOS carry labels.

    Nothing is cut: a pair longer than `max_length` is an error, since a prompt without its start (the
    instructions, the question) would teach the model on inputs unlike the ones it is evaluated on.
    """
    prompt_ids = encode_chat(tokenizer, prompt)
    target_ids = tokenizer(target, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    if len(prompt_ids) + len(target_ids) > max_length:
        raise PairTooLong(
            f"a training pair has {len(prompt_ids)} prompt + {len(target_ids)} target tokens, more than "
            f"train.max_length={max_length}; raise train.max_length, or make the task's inputs fit (judge tasks: "
            f"task.max_input_tokens shortens the replies; it defaults to train.max_length). Prompt starts: {render_prompt(prompt)[:80]!r}")
    return {"input_ids": prompt_ids + target_ids, "labels": [IGNORE] * len(prompt_ids) + target_ids}


class PairTooLong(ValueError):
    pass


def collate(features: Sequence[dict], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        ids[i, :n] = torch.tensor(f["input_ids"])
        labels[i, :n] = torch.tensor(f["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class SFTDataModule(pl.LightningDataModule):
    def __init__(self, pairs: Sequence[tuple[str, str]], tokenizer, batch_size: int = 8, max_length: int = 256,
                 seed: int = 0, group_by_length: bool = False):
        super().__init__()
        self.pairs = list(pairs)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.seed = seed
        self.group_by_length = group_by_length
        self.features: list[dict] = []

    def setup(self, stage: str | None = None) -> None:
        if not self.features:
            self.features = [build_features(self.tokenizer, p, t, self.max_length) for p, t in self.pairs]

    def train_dataloader(self) -> DataLoader:
        # The order of epoch e depends on (seed, e) only — Lightning calls set_epoch — so a run resumed from
        # an epoch checkpoint sees the same batches as an uninterrupted one. Lightning leaves a loader whose
        # sampler is already a DistributedSampler as it is, so the shard is set here: under DDP, FSDP or
        # DeepSpeed each process takes its own 1/world of the pairs, as the strategy's kwargs say.
        shard = (self.trainer.distributed_sampler_kwargs if self.trainer is not None else None) \
            or {"num_replicas": 1, "rank": 0}
        if self.group_by_length:
            # Shuffled, then sorted by length within groups of 50 batches: a batch pads to similar lengths.
            from transformers.trainer_pt_utils import DistributedLengthGroupedSampler

            sampler = DistributedLengthGroupedSampler(self.batch_size, num_replicas=shard["num_replicas"],
                                                      rank=shard["rank"], seed=self.seed,
                                                      lengths=[len(f["input_ids"]) for f in self.features])
        else:
            sampler = DistributedSampler(self.features, shuffle=True, seed=self.seed, **shard)
        pad = self.tokenizer.pad_token_id
        return DataLoader(self.features, batch_size=self.batch_size, sampler=sampler,
                          collate_fn=lambda b: collate(b, pad))
