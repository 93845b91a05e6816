"""A strict stand-in for the vllm package, for testing s2d's engine process on CPU.

It copies the behaviours of the real vLLM that s2d's engine lifecycle depends on:
- `LLM(**kwargs)` takes only fields of vLLM's EngineArgs (TypeError otherwise), checks dtype, the LoRA
  rank against vLLM's allowed set, the TP size against the model's heads, and fails on a path that holds
  no config.json (no hub here);
- the engine runs in an engine-core child process that holds its `gpu_memory_utilization` share of a
  shared "GPU" (share files in $FAKE_VLLM_GPU_DIR); a second engine whose share does not fit while another
  live process holds one refuses to start, as vLLM does when free memory is below its requested share;
- `SamplingParams(n>1, temperature=0)` raises; `generate` takes one SamplingParams or a list, one per prompt;
- outputs keep the EOS id in `token_ids` and carry finish_reason "stop" or "length".

Replies are a deterministic function of (prompt length, seed, sample index, adapter), so a test can check
what reached the engine. FAKE_VLLM_START=hang|crash makes the engine hang in or crash during start-up;
FAKE_VLLM_PLATFORM=cpu makes `vllm.platforms.current_platform` a CPU platform (default: a CUDA one);
FAKE_VLLM_GENERATE=die makes the engine core die in its first `generate`.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

__version__ = "0.0.0+fake"

# Fields of vLLM's EngineArgs that s2d or a researcher might pass (the real class rejects anything else).
ENGINE_ARGS = frozenset({
    "model", "tokenizer", "tokenizer_mode", "skip_tokenizer_init", "trust_remote_code", "tensor_parallel_size",
    "pipeline_parallel_size", "dtype", "quantization", "revision", "tokenizer_revision", "seed",
    "gpu_memory_utilization", "swap_space", "cpu_offload_gb", "enforce_eager", "max_model_len",
    "enable_prefix_caching", "enable_lora", "max_lora_rank", "max_loras", "max_num_seqs", "max_num_batched_tokens",
    "disable_log_stats", "distributed_executor_backend", "download_dir", "load_format", "generation_config",
    "hf_overrides", "compilation_config", "task", "enable_chunked_prefill", "kv_cache_memory_bytes",
})
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
SAMPLING_FIELDS = frozenset({
    "n", "temperature", "top_p", "top_k", "min_p", "max_tokens", "min_tokens", "seed", "stop", "stop_token_ids",
    "ignore_eos", "logprobs", "presence_penalty", "frequency_penalty", "repetition_penalty", "skip_special_tokens",
    "include_stop_str_in_output",
})


class SamplingParams:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"SamplingParams got unexpected keyword arguments {sorted(unknown)}")
        self.n = kwargs.get("n", 1)
        self.temperature = kwargs.get("temperature", 1.0)
        self.top_p = kwargs.get("top_p", 1.0)
        self.max_tokens = kwargs.get("max_tokens", 16)
        self.seed = kwargs.get("seed")
        self.stop = kwargs.get("stop")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or (self.max_tokens is not None and self.max_tokens < 1):
            raise ValueError(f"invalid sampling parameters {kwargs}")
        if self.n > 1 and self.temperature < 1e-5:
            raise ValueError(f"n must be 1 when using greedy sampling, got {self.n}.")


def _gpu_dir() -> Path | None:
    d = os.environ.get("FAKE_VLLM_GPU_DIR")
    return Path(d) if d else None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie holds no memory


def held_shares(gpu: Path) -> dict[int, float]:
    """{pid: share} of the engine-core processes alive now."""
    out = {}
    for f in gpu.glob("engine-*.json"):
        rec = json.loads(f.read_text())
        if _alive(rec["pid"]):
            out[rec["pid"]] = rec["share"]
        else:
            f.unlink(missing_ok=True)
    return out


class _EngineCore:
    """vLLM's engine-core process: a child of the engine that holds the GPU memory until it ends."""

    def __init__(self, share: float):
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        self.file = None
        gpu = _gpu_dir()
        if gpu is None:
            return
        gpu.mkdir(parents=True, exist_ok=True)
        with open(gpu / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            held = held_shares(gpu)
            if sum(held.values()) + share > 1.0 + 1e-9:
                self.proc.kill()
                self.proc.wait()
                raise ValueError(
                    f"Free memory on device ({1 - sum(held.values()):.2f} of the GPU) on startup is less than desired "
                    f"GPU memory utilization ({share}). Decrease GPU memory utilization or reduce GPU memory used "
                    f"by other processes (engine-core pids {sorted(held)}).")
            self.file = gpu / f"engine-{self.proc.pid}.json"
            self.file.write_text(json.dumps({"pid": self.proc.pid, "share": share, "engine_pid": os.getpid()}))

    def shutdown(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.file is not None:
            self.file.unlink(missing_ok=True)


class LLM:
    def __init__(self, model: str, **kwargs):
        unknown = set(kwargs) - ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument '{sorted(unknown)[0]}'")
        self.kwargs = {"model": model, **kwargs}
        mode = os.environ.get("FAKE_VLLM_START")
        if mode == "crash":
            os._exit(9)  # dies without a word, like a CUDA or NCCL abort
        config = Path(model) / "config.json"
        if not config.is_file():
            raise OSError(f"{model} is not a local folder and is not a valid model identifier")
        cfg = json.loads(config.read_text())
        self.eos = cfg.get("eos_token_id", 0)
        dtype = kwargs.get("dtype", "auto")
        if dtype not in DTYPES:
            raise ValueError(f"Unknown dtype: {dtype}")
        tp = kwargs.get("tensor_parallel_size", 1)
        heads = cfg.get("num_attention_heads", 1)
        if heads % tp:
            raise ValueError(f"Total number of attention heads ({heads}) must be divisible by tensor parallel "
                             f"size ({tp}).")
        if kwargs.get("enable_lora") and kwargs.get("max_lora_rank", 16) not in LORA_RANKS:
            raise ValueError(f"max_lora_rank ({kwargs['max_lora_rank']}) must be one of {LORA_RANKS}.")
        share = kwargs.get("gpu_memory_utilization", 0.9)
        if not 0 < share <= 1:
            raise ValueError(f"GPU memory utilization must be within (0, 1]. Got {share}.")
        self.llm_engine = SimpleNamespace(engine_core=_EngineCore(share))
        if mode == "hang":
            time.sleep(3600)  # stuck in start-up (a hung NCCL init, a stalled download)

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None):
        if os.environ.get("FAKE_VLLM_GENERATE") == "die":  # the engine core dies mid-call, as vLLM's does
            self.llm_engine.engine_core.resources = SimpleNamespace(engine_dead=True)
            raise RuntimeError("EngineCore encountered an issue. See stack trace (above) for the root cause.")
        if isinstance(prompts, dict):
            prompts = [prompts]
        if sampling_params is None:
            sampling_params = SamplingParams()
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        if lora_request is not None and not self.kwargs.get("enable_lora"):
            raise ValueError(f"LoRA is not enabled; cannot serve lora_request {lora_request.lora_name}")
        outs = []
        for r, p in zip(prompts, params):
            ids = r["prompt_token_ids"]
            tag = f" lora={lora_request.lora_name}" if lora_request is not None else ""
            outputs = []
            for k in range(p.n):
                length = 3 + k + (p.seed or 0) % 3  # tokens to EOS, EOS included
                if length > p.max_tokens:
                    token_ids, reason = list(range(p.max_tokens)), "length"
                else:
                    token_ids, reason = list(range(length - 1)) + [self.eos], "stop"
                outputs.append(SimpleNamespace(
                    text=f" len={len(ids)} k={k} seed={p.seed} t={p.temperature} max={p.max_tokens}{tag} "
                         f"tp={self.kwargs.get('tensor_parallel_size', 1)}",
                    token_ids=token_ids, finish_reason=reason))
            outs.append(SimpleNamespace(prompt_token_ids=ids, outputs=outputs))
        return outs
