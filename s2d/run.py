"""Entry point: `python -m s2d.run [overrides]` runs generate → filter → train → evaluate → report."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from s2d import config as s2d_config
from s2d.stages import evaluate, filter as filter_stage, generate, report, train

log = logging.getLogger("s2d")


def run(cfg: DictConfig) -> dict:
    """The whole loop on one config; returns the metrics also written to metrics.json."""
    s2d_config.check(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tracker = instantiate(cfg.logger)
    tracker.start(OmegaConf.to_container(cfg, resolve=True), run_dir)
    ok = False
    try:
        dirs = {"generate": generate.run(cfg)}
        dirs["filter"] = filter_stage.run(cfg, dirs["generate"])
        dirs["train"] = train.run(cfg, dirs["filter"], tracker)
        dirs["evaluate"] = evaluate.run(cfg, dirs["train"])
        metrics = report.run(cfg, dirs, tracker)
        ok = True
        return metrics
    finally:
        # Always close the W&B run, so one failing cell of a sweep leaves a finished (failed) run behind.
        tracker.finish(exit_code=0 if ok else 1)
        log.info("run directory: %s", run_dir)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    metrics = run(cfg)
    # Returned for Hydra sweepers that optimise a metric.
    return metrics.get("distilled/accuracy")


if __name__ == "__main__":
    main()
