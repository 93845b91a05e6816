"""Stage 5: gather every stage's figures into metrics.json, W&B, and a table on the console."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from s2d.artifacts import read_json, read_jsonl, write_json
from s2d.config import SYSTEMS

STAGE_KEYS = ("filter/", "train/")


def collect(generate_dir: Path, filter_dir: Path, train_dir: Path, eval_dir: Path) -> dict:
    gen = read_json(generate_dir / "DONE.json")
    train = read_json(train_dir / "DONE.json")
    metrics = {
        "generate/tokens_per_input": gen["tokens_per_input"],
        "generate/tokens_per_second": gen["tokens_per_second"],
        "train/pairs": train["pairs"],
    }
    for d in (filter_dir, train_dir, eval_dir):
        info = read_json(d / "DONE.json")
        metrics.update({k: v for k, v in info.items() if "/" in k and v is not None})
    if train.get("trained"):
        metrics["train/steps"] = train["steps"]
        metrics["train/seconds_per_step"] = train["seconds_per_step"]
    return metrics


def table(metrics: dict, method: str, task: str) -> str:
    lines = [f"s2d  method={method}  task={task}", f"{'system':<11}{'accuracy':>10}{'tokens/input':>14}"]
    for s in SYSTEMS:
        if f"{s}/accuracy" in metrics:
            lines.append(f"{s:<11}{metrics[f'{s}/accuracy']:>10.3f}{metrics[f'{s}/tokens_per_input']:>14.1f}")
        else:
            lines.append(f"{s:<11}{'—':>10}{'—':>14}")
    if "filter/yield" in metrics:
        lines.append(f"filter: kept {metrics['filter/kept']} of {metrics['filter/seen']} train inputs "
                     f"(yield {metrics['filter/yield']:.2f})")
    return "\n".join(lines)


def run(cfg: DictConfig, dirs: dict[str, Path], tracker) -> dict:
    metrics = collect(dirs["generate"], dirs["filter"], dirs["train"], dirs["evaluate"])
    write_json(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    tracker.summary(metrics)
    tracker.log({k: v for k, v in metrics.items() if not k.startswith("train/")})
    for system in SYSTEMS:
        rows = read_jsonl(dirs["evaluate"] / f"{system}.predictions.jsonl")
        tracker.table(f"predictions/{system}", rows)
    print(table(metrics, instantiate(cfg.method).name, instantiate(cfg.task).name))
    return metrics
