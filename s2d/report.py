"""Compare runs: `python -m s2d.report <run or multirun dir>` → a paper-style table and an accuracy-vs-tokens plot.

Also the Hydra callback that runs the report at the end of every multirun, and logs it to W&B as a
`report` job of the sweep's group when the sweep's logger is W&B.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from s2d.artifacts import read_json
from s2d.plots import plot_curve, plot_frontiers, plot_points
from s2d.routing import frontier_rows, point_of
from s2d.stats import wilson

log = logging.getLogger(__name__)

# (a, b) pairs tested on the same eval items by the report stage (s2d/stages/report.py PAIRS).
PAIRED = (("distilled", "system2"), ("distilled", "system1"), ("system2", "system1"), ("routed", "system2"),
          ("routed", "distilled"))


def load_runs(root: Path) -> list[dict]:
    """Every finished run under `root` (a run directory or a sweep directory): its cell and metrics."""
    runs = []
    for cell_file in sorted(Path(root).rglob("run.json")):
        metrics_file = cell_file.parent / "metrics.json"
        if metrics_file.exists():
            runs.append({**read_json(cell_file), "metrics": read_json(metrics_file), "dir": str(cell_file.parent)})
    if not runs:
        raise FileNotFoundError(f"no finished runs (run.json + metrics.json) under {root}")
    return runs


def points(runs: list[dict]) -> list[dict]:
    """One point per (task, row): System 1 once per task, then System 2 and distilled per method (and filter)."""
    filters = {r["filter"] for r in runs}
    sizes = _sizes(runs)
    out, seen = [], set()
    for r in runs:
        m = r["metrics"]
        suffix = f" [{r['filter']}]" if len(filters) > 1 else ""
        if len(sizes[r["task"]]) > 1:
            suffix += f" (n={m.get('filter/seen')})"
        rows = [("system1", "System 1", "system1")]
        if r["method"] != "system1":
            rows.append(("system2", f"System 2: {r['method']}", r["method"]))
        from_system1 = r["method"] == "system1" or r.get("distill_from") == "system1"
        distilled = "Distill System 1" if from_system1 else f"Distilled {r['method']}"
        rows.append(("distilled", distilled + suffix, r["method"]))
        for system, label, method in rows:
            key = (r["task"], label)
            if key in seen:
                continue
            seen.add(key)
            # A distilled row with no metrics: the filter kept nothing to train on; shown, not hidden.
            low, high = interval(m, system)
            out.append({"task": r["task"], "row": label, "system": system, "method": method,
                        "accuracy": m.get(f"{system}/accuracy"), "ci_low": low, "ci_high": high,
                        "n": m.get(f"{system}/n"), "tokens_per_input": m.get(f"{system}/tokens_per_input"),
                        "filter_yield": m.get("filter/yield") if system == "distilled" else None})
    order = {"system1": 0, "system2": 1, "distilled": 2}
    return sorted(out, key=lambda p: (order[p["system"]], p["row"]))


def interval(m: dict, system: str) -> tuple[float | None, float | None]:
    """The Wilson 95% interval of a system's accuracy: from the metrics, or from accuracy × n for runs
    recorded before intervals were; (None, None) when the system has no accuracy."""
    acc, n = m.get(f"{system}/accuracy"), m.get(f"{system}/n")
    if acc is None:
        return None, None
    if f"{system}/accuracy_ci_low" in m:
        return m[f"{system}/accuracy_ci_low"], m[f"{system}/accuracy_ci_high"]
    return wilson(round(acc * n), n) if n else (None, None)


def percent(acc: float, low: float | None, high: float | None, n: int | None) -> str:
    """`67.5% [52.0, 79.9] (n=40)`."""
    text = f"{100 * acc:.1f}%"
    if low is not None:
        text += f" [{100 * low:.1f}, {100 * high:.1f}]"
    return text + (f" (n={n})" if n is not None else "")


def paired_rows(runs: list[dict]) -> list[dict]:
    """Each run's paired tests (exact McNemar on the same eval items), one row per comparison."""
    out = []
    for r in runs:
        m = r["metrics"]
        for a, b in PAIRED:
            key = f"paired/{a}_vs_{b}"
            if f"{key}/p_value" not in m:
                continue
            out.append({"task": r["task"], "method": r["method"], "filter": r["filter"],
                        "unlabeled": m.get("filter/seen"), "a": a, "b": b, "only_a": m[f"{key}/b"],
                        "only_b": m[f"{key}/c"], "n": m[f"{key}/n"], "p_value": m[f"{key}/p_value"],
                        "accuracy_a": m.get(f"{a}/accuracy"), "accuracy_b": m.get(f"{b}/accuracy")})
    return out


def paired_markdown(rows: list[dict]) -> str:
    lines = ["| task | method | filter | unlabeled | comparison | accuracy | right only by first | "
             "right only by second | items | p (exact McNemar) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in rows:
        lines.append(f"| {p['task']} | {p['method']} | {p['filter']} | {p['unlabeled']} | {p['a']} vs {p['b']} | "
                     f"{100 * p['accuracy_a']:.1f}% vs {100 * p['accuracy_b']:.1f}% | {p['only_a']} | {p['only_b']} | "
                     f"{p['n']} | {p['p_value']:.3g} |")
    return "\n".join(lines)


def _sizes(runs: list[dict]) -> dict[str, set]:
    """Per task, the numbers of unlabeled train inputs its runs used (several in a data-size sweep)."""
    sizes: dict[str, set] = {}
    for r in runs:
        sizes.setdefault(r["task"], set()).add(r["metrics"].get("filter/seen"))
    return sizes


def curve(runs: list[dict]) -> list[dict]:
    """Distilled accuracy against the number of unlabeled inputs, for tasks whose runs used several
    (e.g. `task.n_train=25,50,100`); System 1 and System 2 are the same at every size."""
    sizes = _sizes(runs)
    out = []
    for r in runs:
        m = r["metrics"]
        if len(sizes[r["task"]]) < 2 or m.get("distilled/accuracy") is None:
            continue
        low, high = interval(m, "distilled")
        out.append({"task": r["task"], "method": r["method"], "filter": r["filter"],
                    "distill_from": r.get("distill_from", "method"), "unlabeled": m.get("filter/seen"),
                    "kept": m.get("filter/kept"), "accuracy": m["distilled/accuracy"], "ci_low": low,
                    "ci_high": high, "n": m.get("distilled/n"),
                    "tokens_per_input": m["distilled/tokens_per_input"],
                    "system1": m.get("system1/accuracy"), "system2": m.get("system2/accuracy")})
    return sorted(out, key=lambda c: (c["task"], c["method"], c["filter"], c["distill_from"], c["unlabeled"]))


def curve_markdown(rows: list[dict]) -> str:
    lines = ["| task | distilled from | filter | unlabeled inputs | kept | distilled accuracy | tokens/input |",
             "|---|---|---|---|---|---|---|"]
    for c in rows:
        source = "system1" if c["distill_from"] == "system1" or c["method"] == "system1" else c["method"]
        lines.append(f"| {c['task']} | {source} | {c['filter']} | {c['unlabeled']} | {c['kept']} | "
                     f"{percent(c['accuracy'], c['ci_low'], c['ci_high'], c['n'])} | {c['tokens_per_input']:.1f} |")
    return "\n".join(lines)


INTERVAL_NOTE = "Accuracy: % of eval items right [Wilson 95% interval] (n = eval items)."
PAIRED_NOTE = ("Two systems answered the same items; exact McNemar test on the items exactly one of them got "
               "right. A large p (say above 0.05) means the difference is within the noise of this many items.")


def markdown(pts: list[dict]) -> str:
    tasks = sorted({p["task"] for p in pts})
    rows = list(dict.fromkeys(p["row"] for p in pts))
    cell = {(p["row"], p["task"]): p for p in pts}
    head = "| system | " + " | ".join(f"{t} accuracy | {t} tokens/input" for t in tasks) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(tasks))]
    for row in rows:
        vals = []
        for t in tasks:
            p = cell.get((row, t))
            if p is None:
                vals += ["—", "—"]
            elif p["accuracy"] is None:
                vals += [f"— (filter kept {100 * (p['filter_yield'] or 0):.0f}%)", "—"]
            else:
                vals += [percent(p["accuracy"], p["ci_low"], p["ci_high"], p["n"]), f"{p['tokens_per_input']:.1f}"]
        lines.append(f"| {row} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def frontiers(runs: list[dict]) -> list[dict]:
    """Each run that evaluated the routed system: its cell, the routed stage's frontier.json, System 1's point."""
    out = []
    for r in runs:
        d = r.get("stages", {}).get("evaluate/routed")
        if d is None or not (Path(d) / "frontier.json").exists():
            continue
        out.append({"task": r["task"], "method": r["method"], "filter": r["filter"],
                    "frontier": read_json(Path(d) / "frontier.json"), "system1": point_of(r["metrics"], "system1")})
    return sorted(out, key=lambda f: (f["task"], f["method"], f["filter"]))


def _number(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _cell(p: dict) -> str:
    """`67.5% [52.0, 79.9] (n=40), 12.3 tok`: accuracy with its interval, and tokens per input."""
    return f"{percent(p['accuracy'], p.get('ci_low'), p.get('ci_high'), p.get('n'))}, {p['tokens_per_input']:.1f} tok"


def frontier_markdown(rows: list[dict]) -> str:
    """Per run: the routed system at its threshold next to System 2 and distilled, the cheapest threshold that
    reaches System 2's interval, and each signal's AUROC for a wrong distilled answer."""
    lines = ["| task | method | filter | rule | routed | routed share | System 2 | distilled | "
             "cheapest threshold within System 2's interval | AUROC by signal |", "|---|---|---|---|---|---|---|---|---|---|"]
    for f in rows:
        fr = f["frontier"]
        reach = fr["signals"][fr["signal"]]["reaches_system2"]
        reach_text = "none" if reach is None else (f"{reach['threshold']:.3g}: {100 * reach['accuracy']:.1f}%, "
                                                   f"{reach['tokens_per_input']:.1f} tok, "
                                                   f"{100 * reach['share_routed']:.0f}% routed")
        aurocs = ", ".join(f"{s} {_number(d['calibration']['auroc'])}" for s, d in fr["signals"].items())
        lines.append(f"| {f['task']} | {f['method']} | {f['filter']} | {fr['signal']} < {fr['threshold']:g} | "
                     f"{_cell(fr['at_threshold'])} | {100 * fr['at_threshold']['share_routed']:.0f}% | "
                     f"{_cell(fr['system2'])} | {_cell(fr['distilled'])} | {reach_text} | {aurocs} |")
    return "\n".join(lines)


FRONTIER_NOTE = ("Routed: the distilled model answers; an input whose confidence signal is below the threshold goes "
                 "to System 2, and its tokens are the distilled attempt's, the signal's and System 2's. Every "
                 "threshold is one point of a routed curve (docs/routing.md).")


def report(root: Path, tracker=None) -> dict:
    """Write report.md and report.png into `root`, print the table, and log both to `tracker` if given."""
    root = Path(root)
    runs = load_runs(root)
    pts = points(runs)
    table = markdown(pts)
    text = (f"# s2d report: {root}\n\n{len(runs)} runs.\n\n{table}\n\n{INTERVAL_NOTE}\n\n"
            "![accuracy vs tokens](report.png)\n")
    png = plot_points(pts, root / "report.png")
    print(f"{table}\n{INTERVAL_NOTE}")
    tests = paired_rows(runs)
    if tests:
        tests_table = paired_markdown(tests)
        text += f"\n## Paired tests on the same eval items\n\n{PAIRED_NOTE}\n\n{tests_table}\n"
        print(f"\n{tests_table}")
    rows = curve(runs)
    if rows:
        curve_table = curve_markdown(rows)
        text += f"\n## Distilled accuracy against unlabeled inputs\n\n{curve_table}\n\n![curve](curve.png)\n"
        plot_curve(rows, root / "curve.png")
        print(f"\n{curve_table}")
    routed = frontiers(runs)
    if routed:
        frontier_table = frontier_markdown(routed)
        frontier_png = plot_frontiers([(f"{f['task']}: {f['method']} [{f['filter']}]", f["frontier"], f["system1"])
                                       for f in routed], root / "frontier.png")
        text += (f"\n## Routing between distilled System 1 and System 2\n\n{FRONTIER_NOTE}\n\n{frontier_table}\n\n"
                 "![frontier](frontier.png)\n")
        print(f"\n{frontier_table}")
    (root / "report.md").write_text(text)
    print(f"\nwrote {root / 'report.md'} and {png}")
    if tracker is not None:
        tracker.table("report/points", pts)
        if tests:
            tracker.table("report/paired", tests)
        for task in sorted({p["task"] for p in pts}):
            tracker.scatter(f"report/{task}", [p for p in pts if p["task"] == task and p["accuracy"] is not None],
                            x="tokens_per_input",
                            y="accuracy", title=f"{task}: accuracy vs generated tokens per input")
        tracker.image("report/plot", png)
        for f in routed:
            name = f"report/frontier/{f['task']}/{f['method']}/{f['filter']}"
            tracker.line(name, frontier_rows(f["frontier"]), x="tokens_per_input", y="accuracy", stroke="signal",
                         title=f"{f['task']} ({f['method']}, {f['filter']}): routed accuracy vs tokens per input")
        if routed:
            tracker.image("report/frontier_plot", frontier_png)
    return {"runs": len(runs), "points": pts, "markdown": table, "png": png, "curve": rows, "paired": tests,
            "frontiers": routed}


class SweepReport(Callback):
    """At the end of a multirun, report on its directory and log the report to the sweep's tracker."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from hydra.utils import instantiate

        sweep_dir = Path(config.hydra.sweep.dir)
        tracker = instantiate(config.logger)
        tracker.start({"sweep_dir": str(sweep_dir)}, sweep_dir, job_type="report", group=sweep_dir.name)
        ok = False
        try:
            report(sweep_dir, tracker)
            ok = True
        finally:
            tracker.finish(exit_code=0 if ok else 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m s2d.report", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a run directory or a multirun (sweep) directory")
    args = parser.parse_args(argv)
    report(args.root)


if __name__ == "__main__":
    main()
