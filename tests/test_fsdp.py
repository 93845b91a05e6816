"""FSDP on CPU with two gloo processes: each decoder layer its own unit, the full weights gathered onto rank 0
before save_pretrained, and the saved model reloads and generates. Run as a script, this file is one training
process (Lightning starts the second by running it again with LOCAL_RANK=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _cpu_fsdp_class():
    from pytorch_lightning.strategies import FSDPStrategy

    class CPUFSDPStrategy(FSDPStrategy):
        """Lightning refuses the FSDPStrategy class itself on CPU, and passes FSDP no device there; torch FSDP
        runs on CPU with gloo when told `device_id=cpu`. bf16-mixed autocasts on CPU as it does on GPUs.
        Everything else is Lightning's FSDP path."""

        def _setup_model(self, model):
            import torch
            import torch.distributed.fsdp as fsdp

            real = fsdp.FullyShardedDataParallel

            class OnCPU(real):
                def __init__(self, *args, device_id=None, **kwargs):
                    super().__init__(*args, device_id=torch.device("cpu"), **kwargs)

            fsdp.FullyShardedDataParallel = OnCPU
            if "mixed" in self.precision_plugin.precision:
                # On GPUs Lightning computes under torch.autocast("cuda"), which does nothing on CPU: the same on CPU.
                self.precision_plugin.forward_context = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
            try:
                return super()._setup_model(model)
            finally:
                fsdp.FullyShardedDataParallel = real

        def lightning_module_state_dict(self):
            # Lightning gathers with offload_to_cpu=True; on CPU that copy is a no-op that torch 2.13 then
            # clones from freed memory (a segfault here). The gather itself is the same, rank 0 only.
            from torch.distributed.fsdp import FullStateDictConfig, StateDictType
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT,
                                      FullStateDictConfig(offload_to_cpu=False, rank0_only=True)):
                return self.model.state_dict()

    return CPUFSDPStrategy


if __name__ == "__main__":
    CPUFSDPStrategy = _cpu_fsdp_class()


def _train(model_dir: str, out: str, mode: str = "full") -> None:
    import torch
    import s2d.training.fit as F
    from helpers import train_node
    from s2d.llm.model import ModelSource

    # gradient_clip_val as conf/train/trainer/cpu.yaml sets it, which fsdp.yaml inherits: norm clipping must go
    # through the root FSDP module (Lightning's FSDP precision plugin refuses it).
    train = train_node(lr=1e-2, devices=2, num_nodes=1, precision="32-true", max_steps=2, gradient_clip_val=1.0,
                       enable_checkpointing=True, log_every_n_steps=1,
                       strategy={"_target_": f"{__name__}.CPUFSDPStrategy", "process_group_backend": "gloo",
                                 "sharding_strategy": "FULL_SHARD", "auto_wrap_policy": "decoder_layers",
                                 "state_dict_type": "full"})
    train.dtype = "float32" if mode == "full" else "bfloat16"
    if mode == "lora":  # the 70B recipe of docs/scaling-out.md: LoRA on bf16 weights, the adapter saved alone
        train.lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "merge_on_save": False}
        train.trainer.precision = "bf16-mixed"  # as on GPUs (32-true would cast every weight to float32)
    real = F.strategy_of

    def strategy_of(node, model):  # the conf/train/trainer/fsdp.yaml path, with the CPU-allowed subclass
        strategy = real(node, model)
        units = strategy.kwargs.get("auto_wrap_policy")
        Path(out, f"policy-{os.environ.get('LOCAL_RANK', '0')}.json").write_text(
            json.dumps(sorted(c.__name__ for c in getattr(units, "_module_classes", []))))
        return strategy

    F.strategy_of = strategy_of
    torch.manual_seed(0)
    pairs = [(f"q{i}", f"a{i}") for i in range(8)]
    facts = F.fit(pairs, ModelSource(name="tiny", name_or_path=model_dir), train, Path(out), seed=0)
    Path(out, f"facts-{os.environ.get('LOCAL_RANK', '0')}.json").write_text(json.dumps(facts))


@pytest.mark.slow
def test_fsdp_two_cpu_processes_save_a_model_that_reloads_and_generates(tiny_model_dir, tmp_path):
    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOCAL_RANK", "RANK", "WORLD_SIZE"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(tiny_model_dir), str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lead, follower = (json.loads((tmp_path / f"facts-{r}.json").read_text()) for r in (0, 1))
    assert lead["global_zero"] and lead["steps"] == 2 and follower == {"global_zero": False, "steps": 2}
    assert json.loads((tmp_path / "policy-0.json").read_text()) == ["LlamaDecoderLayer"]

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    base = load_file(str(tiny_model_dir / "model.safetensors"))
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    # every tensor whole (flattened shard views have other shapes), and training changed the weights
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape) for k, v in base.items() if k in saved}
    assert set(base) - set(saved) <= {"lm_head.weight"}  # tied to the embeddings
    assert any(not torch.equal(saved[k], base[k]) for k in saved)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (1, 7)


@pytest.mark.slow
def test_fsdp_trains_lora_adapters_on_bf16_weights(tiny_model_dir, tmp_path):
    """LoRA under FSDP with the base weights in bfloat16: the adapters (float32, as PEFT keeps them) are
    their own FSDP units, since one unit's parameters must share a dtype; the saved adapter reloads."""
    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOCAL_RANK", "RANK", "WORLD_SIZE"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(tiny_model_dir), str(tmp_path), "lora"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lead = json.loads((tmp_path / "facts-0.json").read_text())
    assert lead["global_zero"] and lead["steps"] == 2

    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict

    assert (tmp_path / "model" / "adapter_config.json").exists()
    adapter = load_file(str(tmp_path / "model" / "adapter_model.safetensors"))
    # every adapter tensor a plain (unsharded) PEFT save of the same LoRA config writes, whole
    plain = get_peft_model_state_dict(get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")))
    assert {k: tuple(v.shape) for k, v in adapter.items()} == {k: tuple(v.shape) for k, v in plain.items()}
    # lora_B starts at zero: trained adapters have moved it
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, tmp_path / "model")
    out = model.generate(input_ids=torch.tensor([[1, 2, 3]]), max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (1, 7)


if __name__ == "__main__":
    _train(*sys.argv[1:])
