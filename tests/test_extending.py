"""Extending s2d is one module + one YAML per component: a method (Self-Refine) and a task (addition) that live
outside the package (tests/assets/extending) run through the whole loop, with no file of s2d touched."""

import sys

from conftest import ROOT, compose_config, tiny_overrides
from s2d.artifacts import read_jsonl
from s2d.run import run

EXT = ROOT / "tests" / "assets" / "extending"


def test_a_method_and_a_task_from_outside_the_package_run_the_whole_loop(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXT))
    cfg = compose_config(f"hydra.searchpath=[file://{EXT / 'conf'}]", "method=self_refine", "task=addition",
                         "filter=none", "target=full_response", *tiny_overrides(tiny_model_dir, tmp_path))
    metrics = run(cfg)
    assert metrics["system1/n"] == metrics["system2/n"] == metrics["distilled/n"] == 4
    traces = read_jsonl(next((tmp_path / "cache" / "generate").glob("*/traces.jsonl")))
    assert len(traces) == 8 * 2 and all([c["stage"] for c in t["calls"]] == ["draft", "critique", "refine"]
                                        for t in traces)
    # System 2's tokens are the sum over its three calls, as for every method
    rows = read_jsonl(next(p for p in (tmp_path / "cache" / "evaluate").glob("*/predictions.jsonl")
                           if read_jsonl(p)[0]["calls"] == 3))
    assert all(r["tokens"] == sum(map(sum, r["call_tokens"])) for r in rows)
    assert "s2d_toy" in sys.modules and not str(sys.modules["s2d_toy"].__file__).startswith(str(ROOT / "s2d"))


def test_experiment_tiny_distils_from_the_command_line(tmp_path):
    """The contributor's first command, `python -m s2d.run experiment=tiny`, builds the tiny model and distils:
    every input is kept (filter=none) and trained on (target=full_response), and the table has a distilled row."""
    import json
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(S2D_MODEL_CACHE=str(tmp_path / "models"), S2D_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "s2d.run", "experiment=tiny", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["filter/kept"] == metrics["filter/seen"] == 8 and metrics["distilled/n"] == 8
    train = json.loads(next((tmp_path / "cache" / "train").glob("*/DONE.json")).read_text())
    assert train["trained"] and train["pairs"] == 8
    assert any(line.startswith("distilled ") for line in proc.stdout.splitlines()), proc.stdout
    assert (tmp_path / "models" / "tiny-v1" / "config.json").exists()
