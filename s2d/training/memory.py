"""Will the configured training fit: memory estimates per training process and per node, checked by
`check_fits` when a run starts, before anything loads (also the `s2d_node_mem_gb` resolver of the SLURM
launcher config)."""

from __future__ import annotations

import logging
import math
import os

from omegaconf import DictConfig, OmegaConf

from s2d.distributed import process_rank
from s2d.training.strategy import is_fsdp, node_strategy

log = logging.getLogger(__name__)

DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


def training_memory_gib(params_b: float, dtype: str, lora: bool, strategy: str, world: int) -> dict:
    """Rough memory of one training process in GiB: weights, gradients and AdamW's two moments (all in the
    weights' dtype, as torch's AdamW keeps them), sharded as the strategy does; LoRA trains ~1% of the weights.
    `load`: host memory of one process while it loads the full model before any sharding."""
    w = DTYPE_BYTES[dtype] * params_b * 1e9 / 2**30
    trained = 0.01 * w if lora else w
    if strategy == "fsdp":
        per_device = (w + 3 * trained) / world
    elif strategy == "deepspeed_stage_2":
        per_device = w + trained + 2 * trained / world
    elif strategy == "deepspeed_stage_3":
        per_device = (w + 3 * trained) / world
    else:
        per_device = w + 3 * trained
    return {"per_device": per_device * 1.1 + 2, "load": w * 1.1}


def _strategy_name(strategy) -> str:
    if is_fsdp(strategy):
        return "fsdp"
    if isinstance(strategy, dict):
        target = str(strategy.get("_target_", ""))
        stage = strategy.get("stage", 2)
        return f"deepspeed_stage_{3 if stage == 3 else 2}" if target.endswith("DeepSpeedStrategy") else "ddp"
    if isinstance(strategy, str) and strategy.startswith("deepspeed"):
        return "deepspeed_stage_3" if "stage_3" in strategy else "deepspeed_stage_2"
    return "ddp" if isinstance(strategy, str) and strategy.startswith("ddp") else "single"


def node_mem_gb(params_b, dtype: str, devices) -> int:
    """Host memory (GB) to ask a scheduler for one node: 64 GB for everything else plus, per training
    process, the full model in `dtype` as it is loaded before sharding. 64 when the model's size is unknown."""
    if params_b in (None, "null", ""):
        return 64
    return int(math.ceil(64 + int(devices) * float(params_b) * DTYPE_BYTES[str(dtype)] * 1.1))


OmegaConf.register_new_resolver("s2d_node_mem_gb", node_mem_gb, replace=True)


def host_memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


LOW_PRECISION = ("bfloat16", "float16", "half")
LOW_PRECISION_FULL_FINE_TUNING = (
    "train.dtype=%s with full fine-tuning: the weights and AdamW's moments are held in %s, where most updates "
    "at fine-tuning learning rates round away (measured on SmolLM2-135M: 1.9%% of the weights changed after 3 "
    "AdamW steps at lr 1e-5, against 100%% in float32). Keep train.dtype=float32 with a bf16-mixed trainer "
    "(train/trainer=gpu, ddp or fsdp compute in bf16 over float32 weights), or use train=lora (adapters stay "
    "float32 over bfloat16 base weights)")


def check_fits(cfg: DictConfig, host_gib: float | None = None) -> dict | None:
    """Raise, naming the keys to change, when the configured training cannot hold the model: per device
    (train.trainer.device_memory_gib on GPUs, this machine's memory on CPU) and while every process of a node
    loads the full model into host memory. Needs the model's size (model.num_parameters_b); None without it.
    Warns when full fine-tuning would hold its weights in 16 bits (DeepSpeed keeps float32 masters itself)."""
    source = cfg.model
    params_b = source.get("num_parameters_b") if "num_parameters_b" in source else None
    train = cfg.train
    lora = train.get("lora")
    strategy = node_strategy(train.trainer)
    if is_fsdp(strategy) and lora and lora.merge_on_save:
        raise ValueError("train=lora with train.lora.merge_on_save=true under FSDP: the adapter cannot be merged "
                         "into sharded weights; set train.lora.merge_on_save=false (backend=vllm serves the adapter)")
    if not lora and train.dtype in LOW_PRECISION and not _strategy_name(strategy).startswith("deepspeed") \
            and process_rank() == 0:
        log.warning(LOW_PRECISION_FULL_FINE_TUNING, train.dtype, train.dtype)
    if not params_b:
        return None
    gpu = train.trainer.accelerator in ("gpu", "cuda")
    devices = int(train.trainer.devices) if gpu else 1
    world = devices * int(train.trainer.get("num_nodes", 1))
    need = training_memory_gib(float(params_b), train.dtype, bool(lora), _strategy_name(strategy), world)
    host = host_memory_gib() if host_gib is None else host_gib
    have = float(train.trainer.get("device_memory_gib") or 80) if gpu else host
    name = source.get("name", "?")
    hint = ("on GPUs: train/trainer=fsdp train.trainer.devices=8 (float32 weights, bf16-mixed compute), or "
            "train=lora train.lora.merge_on_save=false train/trainer=gpu train.dtype=bfloat16")
    where = f"{world} x {train.trainer.accelerator}" if gpu else "cpu"
    if need["per_device"] > have:
        raise ValueError(
            f"model '{name}' ({params_b}B parameters) does not fit training as configured: "
            f"{'LoRA' if lora else 'full fine-tuning'} in {train.dtype} on {where} "
            f"(strategy {_strategy_name(strategy)}) needs about {need['per_device']:.0f} GiB per "
            f"{'device' if gpu else 'process'}, and there are {have:.0f} GiB"
            f"{' (train.trainer.device_memory_gib)' if gpu else ' on this machine'}; {hint}")
    if gpu and devices * need["load"] > host:
        raise ValueError(
            f"model '{name}' ({params_b}B parameters): {devices} training processes each load the full model "
            f"in {train.dtype} (about {devices * need['load']:.0f} GiB of host memory together), and this "
            f"machine has {host:.0f} GiB; use fewer train.trainer.devices per node, train=lora with train.dtype=bfloat16, or a "
            "node with more memory (hydra.launcher.mem_gb under SLURM)")
    return need
