"""The Trainer's strategy from a conf/train/trainer node: plain names (auto, ddp, deepspeed_stage_2) pass through;
FSDP nodes get decoder-layer wrapping, LoRA-aware units, norm clipping over shards and the gathered full
weights at the end."""

from __future__ import annotations

import pytorch_lightning as pl
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf


# s2d's own keys in a train/trainer node: read by the size check, not arguments of pytorch_lightning.Trainer.
TRAINER_EXTRA_KEYS = ("device_memory_gib",)


def trainer_node(trainer: DictConfig) -> dict:
    """The Trainer's arguments: the node without s2d's own keys and without the strategy (see `strategy_of`)."""
    node = OmegaConf.to_container(trainer, resolve=True)
    for key in (*TRAINER_EXTRA_KEYS, "strategy"):
        node.pop(key, None)
    return node


def is_fsdp(strategy) -> bool:
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
    if is_fsdp(strategy) and kwargs.get("auto_wrap_policy") == "decoder_layers":
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

class FSDPClipGradNorm(pl.Callback):
    """Gradient clipping by norm under FSDP, through the root FSDP module, which takes the norm over every
    rank's shard: Lightning's FSDP precision plugin refuses norm clipping (`gradient_clip_val` is taken off the
    Trainer and given here). Runs where Lightning would clip: after the backward pass (and after unscaling
    under 16-mixed), before the optimizer step, on every rank."""

    def __init__(self, max_norm: float):
        self.max_norm = float(max_norm)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        trainer.strategy.model.clip_grad_norm_(self.max_norm)
