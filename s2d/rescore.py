"""Re-score stored evaluations: `python -m s2d.rescore <run or sweep dir>` applies the current graders.

For every run under the directory, each evaluate stage's stored replies (traces.jsonl) are graded again
by the task's current `extract` and `score`; predictions.jsonl, the stage's DONE.json figures and the
run's metrics.json are rewritten. No model is loaded and nothing is generated.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from omegaconf import OmegaConf

from s2d.artifacts import read_json, require_done, write_json
from s2d.stages import evaluate, report as report_stage, route
from s2d.stages.inputs import load_task

log = logging.getLogger(__name__)


class NoGeneration:
    """Stands in for a backend: re-scoring must never call a model, so any call is an error."""

    def generate(self, prompts, sampling, desc="", seeds=None):
        raise RuntimeError(f"s2d.rescore never generates, but '{desc}' asked the model: the task's model-written "
                           "inputs are not in the stage cache; rerun the run with `python -m s2d.run` instead")


def task_of(config: dict):
    """The task of a stored run, built from the resolved config its stage recorded, with the current code."""
    return load_task(OmegaConf.create(config), NoGeneration())


def rescore_run(run_dir: Path, done: dict[str, dict] | None = None) -> list[dict]:
    """Re-score one run's evaluate stages and rewrite its metrics.json; returns one summary per system.

    `done`: evaluate directories already re-scored in this invocation (the cells of a sweep share System 1's).
    """
    done = {} if done is None else done
    run_dir = Path(run_dir)
    cell = read_json(run_dir / "run.json")
    stages = cell["stages"]
    evaluate_dirs = {k.split("/", 1)[1]: Path(v) for k, v in stages.items() if k.startswith("evaluate/")}
    summaries = []
    for system, d in evaluate_dirs.items():
        key = str(d.resolve())
        if key not in done:
            task = task_of(require_done(d)["config"])
            done[key] = route.rescore(d, task) if system == "routed" else evaluate.rescore(d, task, system)
        summaries.append({**done[key], "system": system, "run": str(run_dir)})
    dirs = {k: Path(v) for k, v in stages.items() if not k.startswith("evaluate/")}
    dirs["evaluate"] = evaluate_dirs
    write_json(run_dir / "metrics.json", report_stage.collect(dirs))
    return summaries


def rescore(root: Path) -> list[dict]:
    """Re-score every run (a directory holding run.json and metrics.json) under `root`."""
    root = Path(root)
    runs = sorted(p.parent for p in root.rglob("run.json") if (p.parent / "metrics.json").exists())
    if not runs:
        raise FileNotFoundError(f"no finished runs (run.json + metrics.json) under {root}")
    done: dict[str, dict] = {}
    out = []
    for run_dir in runs:
        out += rescore_run(run_dir, done)
    return out


def describe(summary: dict) -> str:
    before = summary["accuracy_before"]
    before = "—" if before is None else f"{before:.3f}"
    return (f"{summary['system']:<10} {summary['answers_changed']:>4} of {summary['n']} answers and "
            f"{summary['verdicts_changed']} verdicts changed, "
            f"accuracy {before} → {summary['accuracy_after']:.3f} "
            f"(grader version {summary['grader_version_before']} → {summary['grader_version_after']})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m s2d.rescore", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a run directory or a multirun (sweep) directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    summaries = rescore(args.root)
    for run_dir in dict.fromkeys(s["run"] for s in summaries):
        print(run_dir)
        for s in (s for s in summaries if s["run"] == run_dir):
            print(f"  {describe(s)}")
    if (args.root / "report.md").exists():  # a sweep's comparison, redrawn from the new metrics
        from s2d.report import report

        report(args.root)


if __name__ == "__main__":
    main()
