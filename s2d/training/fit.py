"""One supervised fine-tuning run with Lightning: (prompt → target) pairs in, a saved model directory out.

Shared by the distillation stage and the model organism, so both resume, checkpoint and save the same way.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from s2d.distributed import process_rank
from s2d.training.data import SFTDataModule

log = logging.getLogger(__name__)


def fit(pairs: Sequence[tuple[str, str]], source, train: DictConfig, out: Path, seed: int, logger=False,
        before_training: Callable[[], None] | None = None) -> dict:
    """Fine-tune `source`'s model on `pairs` as `train` (a conf/train node) says; save it to `out/model`.

    An atomic `out/checkpoints/last.ckpt` is written each epoch, and a killed run started again resumes
    from it; call `drop_checkpoints(out)` once the result is recorded. Returns the run's facts (steps, final
    loss, seconds, peak memory); under DDP, processes other than the lead save nothing and return
    `global_zero: False`.
    """
    if before_training is not None:
        before_training()
    pl.seed_everything(seed, workers=True, verbose=False)
    model, tok = source.load(train.dtype)
    lora = train.get("lora")
    if lora:
        model = with_lora(model, lora)
    data = SFTDataModule(pairs, tok, batch_size=train.batch_size, max_length=train.max_length, seed=seed,
                         group_by_length=bool(train.get("group_by_length", False)))
    module = instantiate(train.module, model=model)
    ckpt_dir = out / "checkpoints"
    node, clip = trainer_node(train.trainer), []
    if _is_fsdp(node_strategy(train.trainer)) and node.get("gradient_clip_val") \
            and node.get("gradient_clip_algorithm") in (None, "norm"):
        clip = [FSDPClipGradNorm(node.pop("gradient_clip_val"))]
    trainer = instantiate(node, default_root_dir=str(out), logger=logger,
                          strategy=strategy_of(train.trainer, model),
                          callbacks=[AtomicCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1,
                                                      every_n_epochs=1, enable_version_counter=False),
                                     *clip, *instantiate(train.get("extra_callbacks") or [])])
    last = ckpt_dir / "last.ckpt"
    aside = ckpt_dir / "last.ckpt.old"  # a kill between replace_path's two renames leaves only this one
    resume = str(last) if last.exists() else str(aside) if aside.exists() else None
    if resume:
        log.info("train: resuming from %s", last)
    t0 = time.time()
    with processes_end_with_fit(trainer):
        # weights_only: the checkpoint is read without unpickling arbitrary objects.
        try:
            trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
        except SIGTERMException as e:
            # Lightning stops on SIGTERM with a SystemExit whose code is 0; a stopped run must not read as a
            # finished one to a shell, a scheduler or a sweep, so it exits as a process killed by SIGTERM does.
            log.error("train: stopped by SIGTERM; every finished stage is cached, and the same command resumes "
                      "after the last one, and this training from its last epoch checkpoint if it wrote one")
            raise SystemExit(128 + signal.SIGTERM) from e
        seconds = time.time() - t0
        state = full_state_dict(trainer)  # collective under FSDP: every rank takes part, rank 0 gets the weights
    if not trainer.is_global_zero:
        # Data-parallel followers hold the same weights; the lead process alone writes the result.
        return {"global_zero": False, "steps": trainer.global_step}
    if state is None and lora and lora.merge_on_save:
        model = model.merge_and_unload()  # plain weights: any engine loads them like a full fine-tune
    if state is not None and lora:
        save_adapter(model, state, out / "model")
    else:
        # A PEFT model writes only its adapter (adapter_config.json).
        model.save_pretrained(out / "model", **({"state_dict": state} if state is not None else {}))
    tok.save_pretrained(out / "model")
    loss = trainer.callback_metrics.get("train/loss")
    steps = trainer.global_step
    del trainer, module, model, data
    _free_accelerator_memory()  # an engine for evaluation (vLLM) needs the GPU memory the trainer held
    return {"global_zero": True, "pairs": len(pairs), "steps": steps,
            "resumed_from_checkpoint": resume is not None,
            "train/loss": float(loss) if loss is not None else None, "seconds": seconds,
            "seconds_per_step": seconds / max(1, steps), "peak_rss_gib": peak_rss_gib()}


class FSDPClipGradNorm(pl.Callback):
    """Gradient clipping by norm under FSDP, through the root FSDP module, which takes the norm over every
    rank's shard: Lightning's FSDP precision plugin refuses norm clipping (`gradient_clip_val` is taken off the
    Trainer and given here). Runs where Lightning would clip: after the backward pass (and after unscaling
    under 16-mixed), before the optimizer step, on every rank."""

    def __init__(self, max_norm: float):
        self.max_norm = float(max_norm)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        trainer.strategy.model.clip_grad_norm_(self.max_norm)


# What Lightning's process launcher writes into the launching process's environment (DeepSpeed adds RANK).
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK", "OMP_NUM_THREADS")


@contextmanager
def processes_end_with_fit(trainer: pl.Trainer):
    """When this process starts the other training processes itself (Lightning DDP/FSDP/DeepSpeed on one
    machine, no SLURM or torchrun), undo afterwards what the launch left behind: the environment variables
    (with LOCAL_RANK set, the next Trainer in this process would take itself for a process started from
    outside and launch nobody), torch's thread count (the launch divides the CPUs among the processes, which
    would slow this process's evaluation and later cells) and the process group joined with processes that
    have since exited. Without this, the second cell of a multirun with the basic or local launcher would train
    against dead peers. Lightning's watcher of the launched processes stays: it ends once they exit cleanly."""
    import torch
    import torch.distributed as dist

    env = getattr(trainer.strategy, "cluster_environment", None)
    launches = getattr(trainer.strategy, "launcher", None) is not None and env is not None \
        and not env.creates_processes_externally
    saved, threads = {k: os.environ.get(k) for k in LAUNCH_ENV}, torch.get_num_threads()
    try:
        yield
    finally:
        if launches:
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()  # not Lightning's helper: it resets this process's SIGINT handler
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            torch.set_num_threads(threads)


# s2d's own keys in a train/trainer node: read by the size check, not arguments of pytorch_lightning.Trainer.
TRAINER_EXTRA_KEYS = ("device_memory_gib",)


def trainer_node(trainer: DictConfig) -> dict:
    """The Trainer's arguments: the node without s2d's own keys and without the strategy (see `strategy_of`)."""
    node = OmegaConf.to_container(trainer, resolve=True)
    for key in (*TRAINER_EXTRA_KEYS, "strategy"):
        node.pop(key, None)
    return node


def _is_fsdp(strategy) -> bool:
    return isinstance(strategy, dict) and str(strategy.get("_target_", "")).endswith("FSDPStrategy") \
        or isinstance(strategy, str) and strategy.startswith("fsdp")


def node_strategy(trainer: DictConfig):
    """The node's strategy as plain data: a name, or a dict with `_target_`."""
    strategy = trainer.get("strategy", "auto")
    return OmegaConf.to_container(strategy, resolve=True) if isinstance(strategy, DictConfig) else strategy


def strategy_of(trainer: DictConfig, model):
    """The Trainer's strategy. An FSDP node with `auto_wrap_policy: decoder_layers` wraps each decoder layer
    (the classes the model names in `_no_split_modules`) as its own unit, so parameters are sharded and
    gathered layer by layer; as one unit the whole model would be gathered on every device at once."""
    strategy = node_strategy(trainer)
    if not isinstance(strategy, dict):
        return strategy
    kwargs = {k: v for k, v in strategy.items() if k != "_target_"}
    if _is_fsdp(strategy) and kwargs.get("auto_wrap_policy") == "decoder_layers":
        kwargs["auto_wrap_policy"] = decoder_layer_classes(model)
        if any(not p.requires_grad for p in model.parameters()):
            kwargs["auto_wrap_policy"] = adapter_wrap_policy(kwargs["auto_wrap_policy"])
    return get_class(strategy["_target_"])(**kwargs)


def adapter_wrap_policy(layer_classes: set[type]):
    """FSDP units for a model with frozen weights and trained adapters (LoRA): each decoder layer, and each
    leaf module whose own weights all train (an adapter's A or B) as a unit of its own. One unit flattens its
    parameters into one tensor of one dtype, and PEFT keeps adapters in float32 over bfloat16 base weights;
    in separate units the adapters also keep float32 weights and optimizer state (bf16-mixed computes in bf16)."""
    from torch.distributed.fsdp.wrap import CustomPolicy

    layers = tuple(layer_classes)

    def wrap(module) -> bool:
        own = list(module.parameters(recurse=False))
        trained_leaf = next(module.children(), None) is None and own and all(p.requires_grad for p in own)
        return isinstance(module, layers) or bool(trained_leaf)

    return CustomPolicy(wrap)


def decoder_layer_classes(model) -> set[type]:
    """The module classes a transformers model keeps whole when it is split (its decoder layers)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    classes = {type(m) for m in model.modules() if type(m).__name__ in names}
    if not classes:
        raise ValueError(f"train.trainer.strategy.auto_wrap_policy=decoder_layers: {type(model).__name__} names no "
                         "decoder layer class (_no_split_modules); give a list of module class paths instead")
    return classes


def full_state_dict(trainer: pl.Trainer) -> dict | None:
    """Under FSDP, the full (unsharded) weights gathered onto rank 0, keys as the wrapped model names them;
    None under other strategies, where each rank's model already holds whole tensors. Every rank must call it."""
    from pytorch_lightning.strategies import FSDPStrategy

    if not isinstance(trainer.strategy, FSDPStrategy):
        return None
    state = trainer.strategy.lightning_module_state_dict()
    if not trainer.is_global_zero:
        return None
    prefix = "model."  # SFTModule keeps the model as `self.model`
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# ---- will it fit: checked when a run starts, before anything loads ----

_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


def training_memory_gib(params_b: float, dtype: str, lora: bool, strategy: str, world: int) -> dict:
    """Rough memory of one training process in GiB: weights, gradients and AdamW's two moments (all in the
    weights' dtype, as torch's AdamW keeps them), sharded as the strategy does; LoRA trains ~1% of the weights.
    `load`: host memory of one process while it loads the full model before any sharding."""
    w = _BYTES[dtype] * params_b * 1e9 / 2**30
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
    if _is_fsdp(strategy):
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
    return int(math.ceil(64 + int(devices) * float(params_b) * _BYTES[str(dtype)] * 1.1))


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
    if _is_fsdp(strategy) and lora and lora.merge_on_save:
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


def _free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def with_lora(model, lora: DictConfig):
    """The model wrapped by PEFT with LoRA adapters as `train.lora` says; only adapter weights train."""
    from omegaconf import OmegaConf
    from peft import LoraConfig, get_peft_model

    targets = lora.target_modules
    targets = targets if isinstance(targets, str) else list(OmegaConf.to_container(targets))
    config = LoraConfig(r=int(lora.r), lora_alpha=int(lora.alpha), lora_dropout=float(lora.dropout),
                        target_modules=targets, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("train: LoRA r=%d on %s: %d of %d parameters train (%.2f%%)", config.r, targets, trainable, total,
             100 * trainable / total)
    return model


def save_adapter(model, state: dict, path: Path) -> None:
    """Save a PEFT model's adapter from FSDP's gathered full state dict. PEFT picks the adapter's entries by
    walking the model's modules, and FSDP units nested in the model put `_fsdp_wrapped_module` into those
    module names (not into the gathered keys), so PEFT would find no adapter entry and save an empty one.
    The walk runs over the same architecture built on the meta device instead (no memory, no weights)."""
    import copy

    import torch
    from peft import get_peft_model

    name = model.active_adapter
    config = copy.deepcopy(model.peft_config[name])
    base = model.get_base_model()
    with torch.device("meta"):
        skeleton = type(base)(copy.deepcopy(base.config))  # the very class, also for trust_remote_code models
    skeleton = get_peft_model(skeleton, config, adapter_name=name)
    skeleton.peft_config[name].base_model_name_or_path = model.peft_config[name].base_model_name_or_path
    skeleton.save_pretrained(path, state_dict=state)


def drop_checkpoints(out: Path) -> None:
    """The saved model supersedes the resume checkpoint (removed only after the stage is marked done)."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)


class AtomicCheckpoint(ModelCheckpoint):
    """Writes each checkpoint to a temporary file and renames it, so a kill mid-write leaves the previous
    checkpoint intact instead of a truncated one."""

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        if trainer.is_global_zero:
            _remove(tmp)  # left by a run killed mid-write
        trainer.strategy.barrier("s2d-checkpoint-tmp")
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            replace_path(tmp, filepath)
        trainer.strategy.barrier("s2d-checkpoint-replaced")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:  # as ModelCheckpoint does: a logger may record or upload the checkpoint
            for logger in trainer.loggers:
                logger.after_save_checkpoint(weakref.proxy(self))


def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _remove(path: str | Path) -> None:
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def replace_path(src: str | Path, dst: str | Path) -> None:
    """Move `src` onto `dst`, a file or a directory (DeepSpeed and sharded FSDP checkpoints are directories,
    which os.replace cannot put over an existing one): the old one is renamed aside first and removed after,
    so at every moment either the old or the new checkpoint is complete under some name."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir() and not dst.is_dir():
        os.replace(src, dst)
        return
    old = dst.with_name(dst.name + ".old")
    _remove(old)
    if dst.exists() or dst.is_symlink():
        os.replace(dst, old)
    os.replace(src, dst)
    _remove(old)
