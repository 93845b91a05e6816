"""The pipeline's stages, each a plain function of the config that reads and writes stage directories:
inputs → generate → filter → train → evaluate (→ route) → report. This package module holds only what every
stage shares: where a stage's directory is, and the resolved config it records."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from s2d.artifacts import safe_child


def stage_dir(cfg: DictConfig, stage: str, key: str) -> Path:
    """`<paths.cache_dir>/<stage>/<key>`: the same content key always lands in the same directory."""
    d = safe_child(Path(cfg.paths.cache_dir), stage, key)
    d.mkdir(parents=True, exist_ok=True)
    return d


def resolved(cfg: DictConfig) -> dict:
    """The resolved config as a stage records it, with every prompt text in effect (the YAML holds overrides)."""
    from s2d import cache

    return cache.with_prompts_in_effect(cfg, OmegaConf.to_container(cfg, resolve=True))
