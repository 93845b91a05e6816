"""Stage 5: gather every stage's figures into metrics.json, W&B, and a table on the console."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from s2d.artifacts import read_json, read_jsonl, write_json
from s2d.config import SYSTEMS
from s2d.plots import plot_frontiers
from s2d.routing import frontier_rows, point_of
from s2d.stats import mcnemar_exact

# (a, b): is a right more often than b on the same eval items? Distilled against both ends first; routed
# against System 2 (does it keep its accuracy?) and against distilled (does routing help?).
PAIRS = (("distilled", "system2"), ("distilled", "system1"), ("system2", "system1"), ("routed", "system2"),
         ("routed", "distilled"))
_INTERVAL_ENDS = ("_ci_low", "_ci_high")


def paired(evaluate_dirs: dict) -> dict:
    """Exact McNemar test for each pair of systems, on the eval items both predicted.

    `paired/<a>_vs_<b>/b`: items a got right and b wrong; `/c`: the reverse; `/n`: items compared;
    `/p_value`: two-sided exact p-value of "a and b are equally accurate on these items".
    """
    correct = {s: {r["example_id"]: bool(r["correct"]) for r in read_jsonl(Path(d) / "predictions.jsonl")}
               for s, d in evaluate_dirs.items()}
    out = {}
    for a, b in PAIRS:
        if a not in correct or b not in correct:
            continue
        items = correct[a].keys() & correct[b].keys()
        only_a = sum(correct[a][i] and not correct[b][i] for i in items)
        only_b = sum(correct[b][i] and not correct[a][i] for i in items)
        key = f"paired/{a}_vs_{b}"
        out.update({f"{key}/b": only_a, f"{key}/c": only_b, f"{key}/n": len(items),
                    f"{key}/p_value": mcnemar_exact(only_a, only_b)})
    return out


def groups(metrics: dict) -> list[str]:
    """Groups the task tagged its inputs with (TriviaQA: biased / unbiased), from `<system>/accuracy_<group>`."""
    found = set()
    for key in metrics:
        system, _, name = key.partition("/")
        if system in SYSTEMS and name.startswith("accuracy_") and not name.endswith(_INTERVAL_ENDS):
            found.add(name[len("accuracy_"):])
    return sorted(found)


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
    metrics.update(paired(dirs["evaluate"]))
    return metrics


def with_interval(metrics: dict, key: str) -> str:
    """`0.675 [0.52, 0.80]`: the figure and its Wilson 95% interval (the figure alone for older records)."""
    value = metrics.get(key)
    if value is None:
        return "—"
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} [{low:.2f}, {high:.2f}]"


def table(metrics: dict, cell: dict) -> str:
    # Tasks that tag inputs with groups (TriviaQA: biased / unbiased) get one accuracy column per group;
    # judging tasks an agreement column (both orders of each pair).
    cols = [("accuracy", "accuracy")] + [(f"accuracy_{g}", g) for g in groups(metrics)]
    if any(f"{s}/agreement" in metrics for s in SYSTEMS):
        cols.append(("agreement", "agreement"))
    lines = [f"s2d  method={cell['method']}  task={cell['task']}  filter={cell['filter']}",
             f"{'system':<11}{'n':>5}" + "".join(f"  {title:<19}" for _, title in cols) + f"{'tokens/input':>14}"]
    for s in SYSTEMS:
        n = metrics.get(f"{s}/n")
        if s == "routed" and n is None:
            continue  # an optional fourth system (eval.systems): shown only when it ran
        cells = "".join(f"  {with_interval(metrics, f'{s}/{key}'):<19}" for key, _ in cols)
        tokens = metrics.get(f"{s}/tokens_per_input")
        lines.append(f"{s:<11}{'—' if n is None else n:>5}" + cells + f"{'—' if tokens is None else f'{tokens:.1f}':>14}")
    lines.append("[low, high]: Wilson 95% interval; n: eval items")
    tests = [(a, b) for a, b in PAIRS if f"paired/{a}_vs_{b}/p_value" in metrics]
    if tests:
        lines.append("paired on the same items (exact McNemar):")
    for a, b in tests:
        key = f"paired/{a}_vs_{b}"
        lines.append(f"  {a} vs {b}: {metrics[f'{key}/b']} right only by {a}, {metrics[f'{key}/c']} only by {b}, "
                     f"of {metrics[f'{key}/n']}; p = {metrics[f'{key}/p_value']:.3g}")
    lines += routing_lines(metrics)
    if "filter/yield" in metrics:
        lines.append(f"filter: kept {metrics['filter/kept']} of {metrics['filter/seen']} train inputs "
                     f"(yield {metrics['filter/yield']:.2f})")
    return "\n".join(lines)


def routing_lines(metrics: dict) -> list[str]:
    """The routed system's decision rule, its cheapest threshold reaching System 2, each signal's calibration."""
    if "routed/threshold" not in metrics:
        return []
    lines = [f"routed: {metrics['routed/signal']} < {metrics['routed/threshold']:g} sends "
             f"{100 * metrics['routed/share_routed']:.0f}% of inputs to System 2"]
    if "routed/reaches_system2/threshold" in metrics:
        lines.append(f"  cheapest threshold within System 2's 95% interval: {metrics['routed/reaches_system2/threshold']:g}"
                     f" (accuracy {metrics['routed/reaches_system2/accuracy']:.3f}, "
                     f"{metrics['routed/reaches_system2/tokens_per_input']:.1f} tokens/input, "
                     f"{100 * metrics['routed/reaches_system2/share_routed']:.0f}% routed)")
    else:
        lines.append("  no threshold reaches System 2's accuracy within its 95% interval")
    signals = sorted({k.split("/")[2] for k in metrics if k.startswith("routed/calibration/")})
    cal = []
    for s in signals:
        auroc = metrics.get(f"routed/calibration/{s}/auroc")
        kept, routed = (metrics.get(f"routed/calibration/{s}/{w}_distilled_accuracy") for w in ("kept", "routed"))
        cal.append(f"{s} AUROC {'—' if auroc is None else f'{auroc:.2f}'}, distilled right on kept "
                   f"{'—' if kept is None else f'{kept:.2f}'} vs routed {'—' if routed is None else f'{routed:.2f}'}")
    if cal:
        lines.append("  signals (predicting a wrong distilled answer): " + "; ".join(cal))
    return lines


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
    if "routed" in dirs["evaluate"]:
        frontier = read_json(Path(dirs["evaluate"]["routed"]) / "frontier.json")
        png = plot_frontiers([(cell["task"], frontier, point_of(metrics, "system1"))], run_dir / "frontier.png")
        rows = frontier_rows(frontier)
        tracker.table("routed/frontier_points", rows)
        tracker.line("routed/frontier", rows, x="tokens_per_input", y="accuracy", stroke="signal",
                     title=f"{cell['task']}: routed accuracy vs generated tokens per input")
        tracker.image("routed/frontier_plot", png)
    print(table(metrics, cell))
    return metrics
