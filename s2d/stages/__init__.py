"""The pipeline's stages, each a plain function of the config that reads and writes stage directories."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from s2d.types import Sampling


def stage_dir(cfg: DictConfig, name: str) -> Path:
    d = Path(cfg.paths.output_dir) / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def sampling(node: DictConfig, seed: int) -> Sampling:
    return Sampling(
        n=int(node.n),
        temperature=float(node.temperature),
        top_p=float(node.top_p),
        max_new_tokens=int(node.max_new_tokens),
        seed=int(seed),
        stop=tuple(node.get("stop") or ()),
    )
