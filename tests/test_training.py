"""Answer-only SFT: the loss mask, batching, and one Lightning step that moves the loss."""

from pathlib import Path

import pytorch_lightning as pl
import torch

from s2d.llm.base import encode_chat
from s2d.training import SFTDataModule, SFTModule, build_features
from s2d.training.data import IGNORE, collate


def test_only_target_tokens_carry_labels(tiny_backend):
    tok = tiny_backend.tokenizer
    f = build_features(tok, "Take the last letters", 'The answer is "ne".', max_length=256)
    n_prompt = len(encode_chat(tok, "Take the last letters"))
    n_target = len('The answer is "ne".') + 1  # one token per character, then EOS
    assert len(f["input_ids"]) == n_prompt + n_target
    assert f["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert f["labels"][n_prompt:] == f["input_ids"][n_prompt:]
    assert f["labels"][-1] == tok.eos_token_id


def test_over_long_pair_is_an_error_not_a_cut_prompt(tiny_backend):
    import pytest

    from s2d.training.data import PairTooLong

    tok = tiny_backend.tokenizer
    n_prompt = len(encode_chat(tok, "x" * 300))
    with pytest.raises(PairTooLong, match=f"{n_prompt} prompt \\+ 4 target tokens, more than train.max_length=20"):
        build_features(tok, "x" * 300, "abc", max_length=20)
    f = build_features(tok, "x" * 300, "abc", max_length=n_prompt + 4)  # exactly fits: nothing cut
    assert len(f["input_ids"]) == n_prompt + 4 and f["labels"][:n_prompt] == [IGNORE] * n_prompt


def test_collate_pads_right_and_masks_padding(tiny_backend):
    tok = tiny_backend.tokenizer
    feats = [build_features(tok, "a", "b", 64), build_features(tok, "a longer prompt", "bc", 64)]
    batch = collate(feats, tok.pad_token_id)
    short = len(feats[0]["input_ids"])
    assert batch["input_ids"].shape == (2, len(feats[1]["input_ids"]))
    assert batch["attention_mask"][0, short:].sum() == 0
    assert (batch["labels"][0, short:] == IGNORE).all()


def test_lightning_steps_lower_the_target_loss(tiny_backend):
    tok, model = tiny_backend.tokenizer, tiny_backend.model
    pairs = [("q1", "The answer is yes."), ("q2", "The answer is no.")] * 4
    data = SFTDataModule(pairs, tok, batch_size=8, max_length=64)
    data.setup()
    batch = collate(data.features, tok.pad_token_id)
    with torch.no_grad():
        before = model(**batch).loss.item()
    module = SFTModule(model, optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3), warmup_steps=1)
    trainer = pl.Trainer(max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 5
    with torch.no_grad():
        after = model(**batch).loss.item()
    assert after < before - 0.5


def test_target_only_head_gives_the_models_own_loss_and_gradients(tiny_backend):
    from s2d.training.module import target_loss

    tok, model = tiny_backend.tokenizer, tiny_backend.model
    feats = [build_features(tok, p, t, 64) for p, t in [("a question", "yes"), ("q", "The answer is no."),
                                                          ("longer question here", "ok")]]
    batch = collate(feats, tok.pad_token_id)
    model.zero_grad()
    ours = target_loss(model, batch)
    ours.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    theirs = model(**batch).loss
    theirs.backward()
    assert torch.allclose(ours, theirs, atol=1e-5)
    for g, p in zip(grads, [p for p in model.parameters() if p.grad is not None]):
        assert torch.allclose(g, p.grad, atol=1e-5)
    model.zero_grad()


def _sampled(data, trainer) -> list[int]:
    data.trainer = trainer
    loader = data.train_dataloader()
    loader.sampler.set_epoch(0)
    return list(loader.sampler)


def test_each_data_parallel_process_trains_on_its_own_share(tiny_backend):
    """Lightning keeps a sampler that is already a DistributedSampler, so the data module must shard by the
    strategy itself: under DDP with 2 processes, rank 0 takes half the pairs, not all of them."""
    tok = tiny_backend.tokenizer
    data = SFTDataModule([(f"q{i}", "a") for i in range(10)], tok, batch_size=2, max_length=64, seed=3)
    data.setup()
    quiet = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    single = _sampled(data, pl.Trainer(devices=1, **quiet))
    assert sorted(single) == list(range(10))
    ddp = pl.Trainer(devices=2, strategy="ddp", **quiet)  # not fitted: no process is started
    assert ddp.distributed_sampler_kwargs == {"num_replicas": 2, "rank": 0}
    rank0 = _sampled(data, ddp)
    assert len(rank0) == 5 and len(set(rank0)) == 5
    assert rank0 == single[0::2]  # the same seeded order as one process, every second pair


def test_length_grouped_batches_pad_less_and_still_cover_every_pair_once(tiny_backend):
    """train.group_by_length: batches of similar length (less padding), every pair once per epoch, the order a
    function of (seed, epoch) as for resumption, and each data-parallel process its own share."""
    from s2d.training.data import collate

    tok = tiny_backend.tokenizer
    pairs = [(f"q{i}", " ".join(["word"] * (1 + (7 * i) % 23))) for i in range(64)]
    quiet = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)

    def padding(group: bool, epoch: int = 0) -> tuple[float, list[int]]:
        data = SFTDataModule(pairs, tok, batch_size=4, max_length=256, seed=3, group_by_length=group)
        data.setup()
        data.trainer = pl.Trainer(devices=1, **quiet)
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)
        order = list(loader.sampler)
        pad = sum((b["attention_mask"] == 0).sum().item() for b in loader)
        return pad / sum(len(f["input_ids"]) for f in data.features), order

    plain, _ = padding(False)
    grouped, order = padding(True)
    assert sorted(order) == list(range(64))  # every pair once
    assert grouped < plain / 3, (grouped, plain)
    assert padding(True)[1] == order and padding(True, epoch=1)[1] != order  # seeded by (seed, epoch)
    data = SFTDataModule(pairs, tok, batch_size=4, max_length=256, seed=3, group_by_length=True)
    data.setup()
    data.trainer = pl.Trainer(devices=2, strategy="ddp", **quiet)  # not fitted: no process is started
    rank0 = _sampled(data, data.trainer)
    assert len(rank0) == 32 and rank0 == order[0::2]


def test_loggers_hear_of_each_atomic_checkpoint(tiny_model_dir, tmp_path):
    """AtomicCheckpoint replaces ModelCheckpoint's save; loggers (W&B's uploads checkpoints when asked) are still
    told of each one, as ModelCheckpoint tells them."""
    from pytorch_lightning.loggers import CSVLogger

    from helpers import train_node

    from s2d.llm.model import ModelSource
    from s2d.training.fit import fit

    class Recording(CSVLogger):
        saved = []

        def after_save_checkpoint(self, checkpoint_callback):
            Recording.saved.append(checkpoint_callback.last_model_path or checkpoint_callback._last_checkpoint_saved)

    train = train_node(max_epochs=2)
    pairs = [("q1", "a1"), ("q2", "a2"), ("q3", "a3"), ("q4", "a4")]
    fit(pairs, ModelSource(name="tiny", name_or_path=str(tiny_model_dir)), train, tmp_path, seed=0,
        logger=Recording(tmp_path / "logs"))
    assert [Path(p).name for p in Recording.saved] == ["last.ckpt", "last.ckpt"]  # one per epoch
