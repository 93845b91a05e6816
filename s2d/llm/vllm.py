"""vLLM backend (`backend=vllm`): the same prompts, chat template and token accounting as `backend=hf`,
on vLLM's engine, for GPU nodes. vllm is an optional extra (`pip install -e .[vllm]`); nothing here
imports it until a generation runs.

The engine lives in its own process for the backend's lifetime: `release()` (called before training)
ends that process, so all of its GPU memory is back before the trainer loads its copy. A distilled
model saved as a LoRA adapter (`train=lora train.lora.merge_on_save=false`) is served as base model +
`LoRARequest`, without merging, and the backend checks on a few probe prompts that the adapter changes
the outputs.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

from s2d.llm.base import Prompt
from s2d.llm.hf import encode_chat
from s2d.types import Completion, Sampling

log = logging.getLogger(__name__)

ADAPTER_NAME = "s2d-adapter"


# ---- request building: pure functions, tested without vllm or a GPU ----

def sampling_kwargs(sampling: Sampling) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for one batch (temperature 0: greedy, top_p unused)."""
    greedy = sampling.temperature == 0
    return {"n": sampling.n, "temperature": 0.0 if greedy else float(sampling.temperature),
            "top_p": 1.0 if greedy else float(sampling.top_p), "max_tokens": sampling.max_new_tokens,
            "seed": sampling.seed, "stop": list(sampling.stop) or None}


def adapter_of(path: str) -> tuple[str, str] | None:
    """(base model, adapter directory) when `path` holds a PEFT LoRA adapter rather than full weights."""
    config = Path(path) / "adapter_config.json"
    if not config.exists():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config}: no base_model_name_or_path, so the adapter's base model is unknown")
    return base, str(Path(path).resolve())


def lora_request_kwargs(adapter_dir: str) -> dict[str, Any]:
    """Keyword arguments of `vllm.lora.request.LoRARequest` for the adapter (one adapter per engine)."""
    return {"lora_name": ADAPTER_NAME, "lora_int_id": 1, "lora_path": adapter_dir}


def engine_kwargs(model_path: str, *, tensor_parallel_size: int, dtype: str, gpu_memory_utilization: float,
                  max_model_len: int | None, enable_prefix_caching: bool, seed: int, trust_remote_code: bool,
                  revision: str | None, lora: bool, max_lora_rank: int) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM`."""
    kw: dict[str, Any] = {"model": model_path, "tokenizer": model_path, "tensor_parallel_size": tensor_parallel_size,
                          "dtype": dtype, "gpu_memory_utilization": gpu_memory_utilization,
                          "enable_prefix_caching": enable_prefix_caching, "seed": seed,
                          "trust_remote_code": trust_remote_code}
    if max_model_len:
        kw["max_model_len"] = max_model_len
    if revision:
        kw["revision"] = revision
    if lora:
        kw.update(enable_lora=True, max_lora_rank=max_lora_rank)
    return kw


def prompt_requests(tokenizer, prompts: Sequence[Prompt]) -> list[dict[str, list[int]]]:
    """Token-id prompts through the tokenizer's chat template, exactly as `backend=hf` encodes them."""
    return [{"prompt_token_ids": encode_chat(tokenizer, p)} for p in prompts]


def completions_of(request_outputs) -> list[list[Completion]]:
    """Completions with the engine's own counts: prompt tokens, and generated tokens including a final EOS."""
    return [[Completion(text=o.text.strip(), prompt_tokens=len(r.prompt_token_ids),
                        completion_tokens=len(o.token_ids)) for o in r.outputs] for r in request_outputs]


# ---- the engine process ----

def _engine_main(conn, engine: dict, adapter: str | None) -> None:
    """Runs in the engine process: build `vllm.LLM` once, then answer (requests, params, use_adapter)."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(**engine)
    lora = LoRARequest(**lora_request_kwargs(adapter)) if adapter else None
    conn.send(("ready", None))
    while True:
        msg = conn.recv()
        if msg is None:
            break
        requests, params, use_adapter = msg
        try:
            outs = llm.generate(requests, SamplingParams(**params), lora_request=lora if use_adapter else None,
                                use_tqdm=False)
            conn.send(("ok", [{"prompt_token_ids": list(r.prompt_token_ids),
                               "outputs": [{"text": o.text, "token_ids": list(o.token_ids)} for o in r.outputs]}
                              for r in outs]))
        except Exception as e:  # the parent re-raises it with the engine's message
            conn.send(("error", f"{type(e).__name__}: {e}"))


class VLLMBackend:
    """`backend=vllm`: prompts → completions on a vLLM engine in a child process (see module docstring)."""

    def __init__(self, model, tensor_parallel_size: int = 1, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.85, max_model_len: int | None = None,
                 enable_prefix_caching: bool = True, seed: int = 0, max_lora_rank: int = 64,
                 probe_adapter: int = 8, progress: bool = True):
        self.source = model
        self.tensor_parallel_size = tensor_parallel_size
        self.dtype = dtype
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.enable_prefix_caching = enable_prefix_caching
        self.seed = seed
        self.max_lora_rank = max_lora_rank
        self.probe_adapter = probe_adapter
        self.progress = progress
        self._tok = None
        self._proc = None
        self._conn = None
        self.adapter_check: dict | None = None

    # where the weights are: a hub id, a directory, the converted copy of a GGUF file, or base + adapter
    def _paths(self) -> tuple[str, str | None]:
        src, gguf = self.source.resolve()
        if gguf:
            src = str(self.source._converted_copy(src, gguf))
        found = adapter_of(src) if Path(src).is_dir() else None
        return found if found else (src, None)

    @property
    def tokenizer(self):
        if self._tok is None:
            from transformers import AutoTokenizer

            base, adapter = self._paths()
            self._tok = AutoTokenizer.from_pretrained(adapter or base,
                                                      trust_remote_code=bool(self.source.trust_remote_code))
        return self._tok

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def encode(self, prompt: Prompt) -> list[int]:
        return encode_chat(self.tokenizer, prompt)

    def _start(self) -> None:
        if self._proc is not None:
            return
        base, adapter = self._paths()
        engine = engine_kwargs(base, tensor_parallel_size=self.tensor_parallel_size, dtype=self.dtype,
                               gpu_memory_utilization=self.gpu_memory_utilization, max_model_len=self.max_model_len,
                               enable_prefix_caching=self.enable_prefix_caching, seed=self.seed,
                               trust_remote_code=bool(self.source.trust_remote_code),
                               revision=getattr(self.source, "revision", None), lora=adapter is not None,
                               max_lora_rank=self.max_lora_rank)
        ctx = mp.get_context("spawn")  # CUDA cannot be initialised in a forked child
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_engine_main, args=(child, engine, adapter), daemon=False)
        self._proc.start()
        status, detail = self._conn.recv()
        if status != "ready":
            raise RuntimeError(f"vLLM engine failed to start: {detail}")
        self._adapter = adapter
        log.info("vllm: engine up for %s%s", base, f" + adapter {adapter}" if adapter else "")

    def _call(self, requests, params: dict, use_adapter: bool) -> list[list[Completion]]:
        self._conn.send((requests, params, use_adapter))
        status, payload = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"vLLM generation failed: {payload}")
        return completions_of(SimpleNamespace(prompt_token_ids=r["prompt_token_ids"],
                                              outputs=[SimpleNamespace(**o) for o in r["outputs"]]) for r in payload)

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, desc: str = "") -> list[list[Completion]]:
        self._start()
        requests = prompt_requests(self.tokenizer, prompts)
        params = sampling_kwargs(sampling)
        if self._adapter and self.adapter_check is None and self.probe_adapter:
            self.adapter_check = self._check_adapter(requests[: self.probe_adapter], sampling)
        return self._call(requests, params, use_adapter=self._adapter is not None)

    def _check_adapter(self, requests, sampling: Sampling) -> dict:
        """Greedy outputs on probe prompts with and without the adapter; an adapter that changes none of
        them was most likely not applied (wrong target modules, rank above max_lora_rank, …)."""
        greedy = sampling_kwargs(Sampling(n=1, temperature=0.0, max_new_tokens=min(32, sampling.max_new_tokens)))
        with_adapter = self._call(requests, greedy, use_adapter=True)
        without = self._call(requests, greedy, use_adapter=False)
        changed = sum(a[0].text != b[0].text for a, b in zip(with_adapter, without))
        check = {"probes": len(requests), "changed": changed}
        if requests and not changed:
            raise RuntimeError(f"vllm: the LoRA adapter {self._adapter} changed none of {len(requests)} probe "
                               "outputs; check that it was trained and saved (train.lora.merge_on_save=false) "
                               "and that its rank fits backend.max_lora_rank")
        log.info("vllm: adapter changed %d of %d probe outputs", changed, len(requests))
        return check

    def release(self) -> None:
        """End the engine process; its GPU memory is free once it has exited."""
        if self._proc is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=60)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
            self._proc = self._conn = None

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown: the child is a non-daemon process and exits with its pipe
            pass
