"""Typed schema of the primary config, so an ill-typed value (generate.n=many) fails at compose time.

The group nodes (model, method, …) stay free-form here: their keys are checked by Hydra's struct mode
and their values by the `_target_` they instantiate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class GenerateConf:
    n: int = 4
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 64
    stop: List[str] = field(default_factory=list)
    chunk_size: int = 16


@dataclass
class EvalConf:
    systems: List[str] = field(default_factory=lambda: ["system1", "system2", "distilled"])
    k: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: List[str] = field(default_factory=list)
    chunk_size: int = 40


@dataclass
class S2DConf:
    model: Any = MISSING
    backend: Any = MISSING
    method: Any = MISSING
    filter: Any = MISSING
    task: Any = MISSING
    train: Any = MISSING
    logger: Any = MISSING
    paths: Any = MISSING
    system1: Any = MISSING
    seed: int = 0
    target: str = "answer"
    distill_from: str = "method"
    generate: GenerateConf = field(default_factory=GenerateConf)
    eval: EvalConf = field(default_factory=EvalConf)


TARGETS = ("answer", "full_response")
DISTILL_FROM = ("method", "system1")
SYSTEMS = ("system1", "system2", "distilled")


def register() -> None:
    ConfigStore.instance().store(name="s2d_schema", node=S2DConf)


def check(cfg) -> None:
    """Value checks a type cannot express, run before any stage so no work is lost to a typo."""
    if cfg.target not in TARGETS:
        raise ValueError(f"target='{cfg.target}' is not allowed; use one of: {', '.join(TARGETS)}")
    unknown = [s for s in cfg.eval.systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"eval.systems: unknown {unknown}; allowed: {', '.join(SYSTEMS)}")
    if cfg.distill_from not in DISTILL_FROM:
        raise ValueError(f"distill_from='{cfg.distill_from}' is not allowed; use one of: {', '.join(DISTILL_FROM)}")
    for key, samples in (("generate", "n"), ("eval", "k")):
        node = cfg[key]
        if node[samples] < 1 or node.chunk_size < 1 or node.max_new_tokens < 1 or not 0 < node.top_p <= 1 \
                or node.temperature < 0:
            raise ValueError(f"{key}: need {samples} >= 1, chunk_size >= 1, max_new_tokens >= 1, 0 < top_p <= 1, "
                             f"temperature >= 0; got {samples}={node[samples]}, chunk_size={node.chunk_size}, "
                             f"max_new_tokens={node.max_new_tokens}, top_p={node.top_p}, temperature={node.temperature}")
        if node[samples] > 1 and node.temperature == 0:
            raise ValueError(f"{key}.{samples}={node[samples]} samples at {key}.temperature=0 are all the same "
                             f"greedy output; set {key}.temperature > 0 (e.g. 0.7)")

register()
