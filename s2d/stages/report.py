"""Stage 5: gather every stage's figures into metrics.json, W&B, and a table on the console."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from s2d.artifacts import read_json, read_jsonl, write_json
from s2d.config import SYSTEMS


def collect(dirs: dict) -> dict:
    gen = read_json(dirs["generate"] / "DONE.json")
    train = read_json(dirs["train"] / "DONE.json")
    metrics = {
        "generate/tokens_per_input": gen["tokens_per_input"],
        "generate/seconds": gen["seconds"],
        "train/pairs": train["pairs"],
    }
    for d in (dirs["filter"], dirs["train"], *dirs["evaluate"].values()):
        info = read_json(d / "DONE.json")
        metrics.update({k: v for k, v in info.items() if "/" in k and v is not None})
    if train.get("trained"):
        metrics["train/steps"] = train["steps"]
        metrics["train/seconds_per_step"] = train["seconds_per_step"]
    return metrics


def table(metrics: dict, cell: dict) -> str:
    # Tasks that tag inputs with groups (TriviaQA: biased / unbiased) get one accuracy column per group.
    groups = sorted({k.split("/accuracy_", 1)[1] for k in metrics if "/accuracy_" in k})
    lines = [f"s2d  method={cell['method']}  task={cell['task']}  filter={cell['filter']}",
             f"{'system':<11}{'accuracy':>10}" + "".join(f"{g:>12}" for g in groups) + f"{'tokens/input':>14}"]
    for s in SYSTEMS:
        if f"{s}/accuracy" in metrics:
            lines.append(f"{s:<11}{metrics[f'{s}/accuracy']:>10.3f}"
                         + "".join(f"{metrics.get(f'{s}/accuracy_{g}', float('nan')):>12.3f}" for g in groups)
                         + f"{metrics[f'{s}/tokens_per_input']:>14.1f}")
        else:
            lines.append(f"{s:<11}{'—':>10}" + "".join(f"{'—':>12}" for _ in groups) + f"{'—':>14}")
    if "filter/yield" in metrics:
        lines.append(f"filter: kept {metrics['filter/kept']} of {metrics['filter/seen']} train inputs "
                     f"(yield {metrics['filter/yield']:.2f})")
    return "\n".join(lines)


def run(cfg: DictConfig, cell: dict, dirs: dict, tracker) -> dict:
    run_dir = Path(cfg.paths.output_dir)
    metrics = collect(dirs)
    stages = {k: str(v) for k, v in dirs.items() if k != "evaluate"}
    stages.update({f"evaluate/{s}": str(d) for s, d in dirs["evaluate"].items()})
    write_json(run_dir / "run.json", {**cell, "stages": stages})
    write_json(run_dir / "metrics.json", metrics)
    tracker.summary(metrics)
    for system, d in dirs["evaluate"].items():
        tracker.table(f"predictions/{system}", read_jsonl(d / "predictions.jsonl"))
    print(table(metrics, cell))
    return metrics
