"""The GPU check: one command on one CUDA GPU, no network, nothing downloaded.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu.json] [--skip train_8b_full,e2e]

Models are randomly initialised from configs shaped like SmolLM2-135M and like an 8B Llama (speed and memory
need no weights); the tokenizer is one token per printable character. Sections:
  env          versions and the device
  shapes       parameter counts of the two shapes (meta device; runs anywhere)
  generation   s2d's hf backend in bf16 on CUDA vs a sequential per-sample `generate` loop (tokens/s)
  training     one Lightning run per shape: bf16-mixed, full and LoRA, seconds per step and peak memory;
               the small full model and the 8B adapter are saved and reloaded
  e2e          `python -m s2d.run` on a tiny random model with train/trainer=gpu and backend.device=cuda
Without CUDA the device sections are recorded as skipped and the rest still runs (the test suite does that).
Writes one JSON file; it needs the wheels in benchmarks/gpu_requirements.txt beside torch/transformers/lightning.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SECTIONS = ("env", "shapes", "generation", "training", "e2e")
# Llama-architecture configs with the published sizes of the two models (no weights are read).
SHAPES = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192,
                         tie_word_embeddings=True, rope_theta=100000.0),
    "llama-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
                     tie_word_embeddings=False, rope_theta=500000.0),
}
def char_tokenizer():
    """The tests' one-token-per-character tokenizer (s2d.llm.tiny), imported where it runs: s2d.llm needs no Hydra."""
    from s2d.llm.tiny import char_tokenizer as tiny_char_tokenizer

    return tiny_char_tokenizer()


def llama_config(shape: str, **changes):
    from transformers import LlamaConfig

    tok_ids = {"pad_token_id": 0, "eos_token_id": 2, "bos_token_id": None}
    return LlamaConfig(**{**SHAPES[shape], **tok_ids, **changes})


def parameter_count(shape: str) -> int:
    """Parameters of a shape, counted on the meta device (no memory)."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(shape))
    return sum(p.numel() for p in model.parameters())


def random_model(shape: str, device: str, dtype: str = "bfloat16", **changes):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(llama_config(shape, **changes)).to(getattr(torch, dtype))
    return model.eval()


def tiny_model_dir(path: Path) -> Path:
    """A 2-layer random Llama saved like any local model directory (for `python -m s2d.run`)."""
    model = random_model("smollm2-135m", "cpu", "float32", hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                         max_position_embeddings=1024)
    model.save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


class InMemory:
    """A model source for s2d's trainer that hands over a model already built (no checkpoint to read)."""

    def __init__(self, model, tok):
        self.model, self.tok, self.name = model, tok, "random"

    def load(self, dtype: str = "float32"):
        return self.model, self.tok


def prompts(n: int) -> list[str]:
    return [f"Take the last letters of the words in \"Ann Bob{i}\" and concatenate them. Think step by step."
            for i in range(n)]


def backend_on(model, tok, device: str):
    from s2d.llm.hf import HFBackend
    from s2d.llm.model import ModelSource

    backend = HFBackend(ModelSource(name="random", name_or_path="unused"), device=device, dtype="bfloat16",
                        progress=False, batch_size=256)
    backend._model, backend._tok = model, tok  # built here, not loaded from a directory
    return backend


# ---- sections ----

def env_section(device: str) -> dict:
    import importlib.metadata as md

    import torch

    versions = {}
    for pkg in ("torch", "transformers", "pytorch-lightning", "peft", "hydra-core", "omegaconf", "vllm"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    out = {"python": platform.python_version(), "versions": versions, "device": device}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   bf16_supported=torch.cuda.is_bf16_supported())
    return out


def shapes_section() -> dict:
    return {shape: {"parameters": parameter_count(shape), **SHAPES[shape]} for shape in SHAPES}


def generation_section(device: str, sizes: dict) -> dict:
    """Generated tokens per second: s2d's batched loop vs one `generate` call per sample."""
    import torch

    from s2d.types import Sampling

    tok = char_tokenizer()
    out = {}
    for shape, (n_prompts, n, seq_prompts) in sizes.items():
        model = random_model(shape, device)
        backend = backend_on(model, tok, device)
        sampling = Sampling(n=n, temperature=0.7, top_p=0.9, max_new_tokens=128, seed=0)
        backend.generate(prompts(2), Sampling(n=1, max_new_tokens=8))  # warm-up (kernels, allocator)
        torch.cuda.synchronize() if device == "cuda" else None
        t0 = time.perf_counter()
        comps = backend.generate(prompts(n_prompts), sampling)
        torch.cuda.synchronize() if device == "cuda" else None
        batched_s = time.perf_counter() - t0
        batched_tokens = sum(c.completion_tokens for cs in comps for c in cs)
        t0 = time.perf_counter()
        seq_tokens = 0
        for p in prompts(seq_prompts):
            ids = torch.tensor([backend.encode(p)], device=device)
            for _ in range(n):
                gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=128, do_sample=True,
                                     temperature=0.7, top_p=0.9, pad_token_id=tok.pad_token_id,
                                     eos_token_id=tok.eos_token_id)
                seq_tokens += gen.shape[1] - ids.shape[1]
        torch.cuda.synchronize() if device == "cuda" else None
        seq_s = time.perf_counter() - t0
        out[shape] = {"prompts": n_prompts, "n": n, "batched_tokens": batched_tokens,
                      "batched_tokens_per_s": batched_tokens / batched_s, "sequential_prompts": seq_prompts,
                      "sequential_tokens": seq_tokens, "sequential_tokens_per_s": seq_tokens / seq_s,
                      "speedup": (batched_tokens / batched_s) / (seq_tokens / seq_s),
                      "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None}
        del backend, model
        _free(device)
    return out


def train_config(accelerator: str, lora: bool, steps: int, batch_size: int):
    from omegaconf import OmegaConf

    node = {"dtype": "bfloat16", "batch_size": batch_size, "max_length": 256, "extra_callbacks": [],
            "module": {"_target_": "s2d.training.SFTModule", "warmup_steps": 1, "decay": "constant",
                       "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True,
                                     "lr": 2e-4 if lora else 1e-5}},
            "trainer": {"_target_": "pytorch_lightning.Trainer", "accelerator": accelerator, "devices": 1,
                        "num_nodes": 1, "strategy": "auto",
                        "precision": "bf16-mixed" if accelerator == "gpu" else "32-true",
                        "max_steps": steps, "max_epochs": 100, "gradient_clip_val": 1.0,
                        "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False,
                        "log_every_n_steps": 1}}
    if lora:
        node["lora"] = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear",
                        "merge_on_save": False}
    return OmegaConf.create(node)


def training_section(device: str, runs: list[tuple[str, bool]], work: Path) -> dict:
    """Lightning fits of a few steps; saved results reload (full: transformers; LoRA: peft) and generate."""
    import torch
    from pytorch_lightning.callbacks import Callback

    import s2d.training.fit as F

    class NoCheckpoint(Callback):
        pass

    tok = char_tokenizer()
    pairs = [(f"Question {i}: " + "x" * 60, f"The answer is {i}.") for i in range(64)]
    out = {}
    accelerator = "gpu" if device == "cuda" else "cpu"
    for shape, lora in runs:
        name = f"{shape}/{'lora' if lora else 'full'}"
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        model = random_model(shape, device)
        train = train_config(accelerator, lora, steps=6, batch_size=8)
        # the resume checkpoint is not what is measured here; fit's own checkpoint callback stays out
        real = F.AtomicCheckpoint
        F.AtomicCheckpoint = lambda **kw: NoCheckpoint()
        try:
            facts = F.fit(pairs, InMemory(model, tok), train, work / name.replace("/", "-"), seed=0)
        finally:
            F.AtomicCheckpoint = real
        saved = work / name.replace("/", "-") / "model"
        row = {"steps": facts["steps"], "seconds_per_step": facts["seconds_per_step"], "loss": facts["train/loss"],
               "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
               "saved_mib": sum(f.stat().st_size for f in saved.iterdir()) / 2**20}
        del model
        _free(device)
        row["reload"] = _reload(saved, lora, shape, device)
        out[name] = row
    return out


def _reload(saved: Path, lora: bool, shape: str, device: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    if lora:
        from peft import PeftModel

        model = PeftModel.from_pretrained(random_model(shape, device), saved)
    else:
        model = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.bfloat16).to(device)
    ids = torch.tensor([[5, 6, 7]], device=device)
    gen = model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0)
    result = {"seconds": time.perf_counter() - t0, "generated": int(gen.shape[1] - 3)}
    del model
    _free(device)
    return result


def e2e_section(device: str, work: Path) -> dict:
    """The whole loop on a tiny random model: generate, filter, train on the GPU, evaluate, report."""
    model_dir = tiny_model_dir(work / "tiny-model")
    cmd = [sys.executable, "-m", "s2d.run", "model=smollm2-135m", f"model.name_or_path={model_dir}", "logger=none",
           f"backend.device={device}", "backend.dtype=bfloat16", "backend.progress=false", "method=cot",
           "task=coin_flip", "task.n_train=16", "task.n_eval=8", "generate.n=2", "generate.max_new_tokens=16",
           "eval.max_new_tokens=16", "filter=none", "target=full_response", "train.batch_size=4",
           f"train/trainer={'gpu' if device == 'cuda' else 'cpu'}", "train.trainer.max_steps=3",
           "train.trainer.enable_progress_bar=false", f"hydra.run.dir={work / 'run'}",
           f"paths.cache_dir={work / 'cache'}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=420)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"ok": False, "seconds": seconds, "stderr_tail": proc.stderr[-3000:]}
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    train = json.loads((work / "run" / "train" / "DONE.json").read_text())
    return {"ok": True, "seconds": seconds, "train_steps": train.get("steps"),
            "accelerator": train["config"]["train"]["trainer"]["accelerator"],
            "metrics": {k: v for k, v in metrics.items() if k.endswith(("/accuracy", "/tokens_per_input"))}}


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def run(out: Path, skip: set[str], device: str | None = None) -> dict:
    """Every section not skipped; device sections are skipped without CUDA. Writes and returns the results."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "sections": {}}
    work = Path(tempfile.mkdtemp(prefix="s2d-gpu-check-"))
    plan = {
        "env": lambda: env_section(device),
        "shapes": shapes_section,
        "generation": lambda: generation_section(device, {"smollm2-135m": (64, 8, 1), "llama-8b": (32, 8, 1)}),
        "training": lambda: training_section(device, [("smollm2-135m", False), ("smollm2-135m", True),
                                                      ("llama-8b", True)]
                                             + ([] if "train_8b_full" in skip else [("llama-8b", False)]), work),
        "e2e": lambda: e2e_section(device, work),
    }
    for name in SECTIONS:
        if name in skip:
            results["sections"][name] = {"skipped": "--skip"}
            continue
        if name in ("generation", "training", "e2e") and device != "cuda":
            results["sections"][name] = {"skipped": "no CUDA device"}
            continue
        t0 = time.perf_counter()
        try:
            results["sections"][name] = {**plan[name](), "seconds": time.perf_counter() - t0}
        except Exception as e:  # one failing section is recorded and the others still run
            results["sections"][name] = {"error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}
        print(f"{name}: {json.dumps(results['sections'][name], default=str)[:400]}", flush=True)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.json")
    parser.add_argument("--skip", default="", help="comma-separated: " + ", ".join((*SECTIONS, "train_8b_full")))
    args = parser.parse_args(argv)
    results = run(args.out, {s for s in args.skip.split(",") if s})
    failed = [k for k, v in results["sections"].items() if "error" in v or v.get("ok") is False]
    print(f"wrote {args.out}; failed sections: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
