"""benchmarks/gpu_check.py on a machine without CUDA: the device sections are recorded as skipped, the rest runs."""

from __future__ import annotations

import importlib.util
import json

from conftest import ROOT


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_side_runs_and_device_sections_are_skipped(tmp_path):
    import torch

    g = _gpu_check()
    out = tmp_path / "gpu.json"
    results = g.run(out, skip=set(), device="cpu")
    assert json.loads(out.read_text()) == json.loads(json.dumps(results, default=str))
    sections = results["sections"]
    assert {k: sections[k] for k in ("generation", "training", "e2e")} == {
        k: {"skipped": "no CUDA device"} for k in ("generation", "training", "e2e")}
    assert sections["env"]["device"] == "cpu" and sections["env"]["versions"]["torch"] == torch.__version__
    # the published sizes: SmolLM2-135M (134.5M, tied embeddings) and Llama-3.1-8B (8.03B)
    assert sections["shapes"]["smollm2-135m"]["parameters"] == 134_515_008
    assert sections["shapes"]["llama-8b"]["parameters"] == 8_030_261_248


def test_its_tiny_model_and_tokenizer_load_through_s2d(tmp_path):
    from s2d.llm.hf import HFBackend
    from s2d.llm.model import ModelSource
    from s2d.types import Sampling

    g = _gpu_check()
    d = g.tiny_model_dir(tmp_path / "tiny")
    backend = HFBackend(ModelSource(name="tiny", name_or_path=str(d)), progress=False)
    text = "Ann Bob"
    assert backend.count_tokens(text) == len(text)  # one token per character
    out = backend.generate(g.prompts(2), Sampling(n=2, temperature=0.7, max_new_tokens=4))
    assert [len(c) for c in out] == [2, 2] and all(0 < x.completion_tokens <= 4 for c in out for x in c)
    node = g.train_config("cpu", lora=True, steps=2, batch_size=2)
    assert node.trainer.precision == "32-true" and node.lora.merge_on_save is False
    assert g.train_config("gpu", lora=False, steps=2, batch_size=2).trainer.precision == "bf16-mixed"
