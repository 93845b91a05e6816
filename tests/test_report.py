"""The sweep workflow on a real tiny multirun: report table = runs' metrics, a plot, and W&B offline records."""

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, ROOT
from s2d.report import load_runs, markdown, points, report


@pytest.fixture(scope="module")
def sweep_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_SILENT="true")
    cmd = [sys.executable, "-m", "s2d.run", "-m", "experiment=sweep/tiny", f"model.name_or_path={tiny_model_dir}",
           "target=full_response", "filter=none", "backend.progress=false", "train.trainer.enable_progress_bar=false",
           f"hydra.sweep.dir={out}", f"paths.cache_dir={out / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_report_table_matches_the_runs_metrics(sweep_dir):
    runs = load_runs(sweep_dir)
    assert sorted((r["method"], r["task"]) for r in runs) == sorted(
        (m, t) for m in ("system1", "rar2") for t in ("last_letter", "coin_flip"))
    pts = points(runs)
    by = {(p["task"], p["row"]): p for p in pts}
    for r in runs:
        m = r["metrics"]
        assert by[(r["task"], "System 1")]["accuracy"] == m["system1/accuracy"]
        assert by[(r["task"], "System 1")]["tokens_per_input"] == m["system1/tokens_per_input"]
        if r["method"] == "rar2":
            assert by[(r["task"], "System 2: rar2")]["tokens_per_input"] == m["system2/tokens_per_input"]
            assert by[(r["task"], "Distilled rar2")]["tokens_per_input"] == m["distilled/tokens_per_input"]
        else:
            assert by[(r["task"], "Distill System 1")]["accuracy"] == m["distilled/accuracy"]
    md = (sweep_dir / "report.md").read_text()
    assert markdown(pts) in md
    row = next(line for line in md.splitlines() if line.startswith("| System 2: rar2 |"))
    coin = next(r for r in runs if r["method"] == "rar2" and r["task"] == "coin_flip")["metrics"]
    assert f"{coin['system2/tokens_per_input']:.1f}" in row  # coin_flip comes first (tasks sorted)
    assert (sweep_dir / "report.png").stat().st_size > 20_000


def test_wandb_offline_runs_hold_metrics_tables_and_scatter(sweep_dir):
    cells = sorted(p for p in sweep_dir.iterdir() if p.name.isdigit())
    assert len(cells) == 4
    for cell in cells:
        record_log = next(cell.glob("wandb/offline-run-*/run-*.wandb")).read_bytes()
        metrics = json.loads((cell / "metrics.json").read_text())
        missing = [k for k in metrics if k.encode() not in record_log]
        assert not missing, f"{cell.name}: not in the W&B record log: {missing}"
        assert sweep_dir.name.encode() in record_log  # the sweep is the W&B group
        assert list(cell.glob("wandb/offline-run-*/files/media/table/predictions/system1_*.table.json"))
    report_run = next(sweep_dir.glob("wandb/offline-run-*"))
    tables = {p.name.split("_table")[0].split("_0")[0] for p in report_run.glob("files/media/table/report/*.json")}
    assert {"coin_flip", "last_letter", "points"} <= tables
    assert list(report_run.glob("files/media/images/report/plot_*.png"))
    assert b"report" in next(report_run.glob("run-*.wandb")).read_bytes()


def test_report_cli_on_a_single_run(sweep_dir, capsys):
    res = report(sweep_dir / "0")
    assert res["runs"] == 1
    assert "| System 1 |" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["paper/table1_rar", "paper/table4_gsm8k", "sweep/all_pairs", "sweep/tiny", "smoke"])
def test_experiments_compose(name):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
    if name.startswith(("paper/table1", "sweep")):
        params = cfg.hydra.sweeper.params
        assert set(params) == {"method", "task"}
    if name == "paper/table4_gsm8k":
        assert cfg.task._target_.endswith("GSM8k") and cfg.system1.shots == 8 and cfg.method._target_.endswith("CoT")
    if name == "paper/table1_rar":
        assert cfg.generate.n == 8 and cfg.filter._target_.endswith("SelfConsistency")


def test_wandb_table_takes_mixed_and_list_columns(tmp_path):
    from s2d.tracking import WandbTracker

    tracker = WandbTracker(mode="offline")
    tracker.start({}, tmp_path)
    try:
        # votes mix None and strings across rows, as predictions with unparsable samples do
        tracker.table("predictions/x", [{"answer": None, "votes": [None, "2"]}, {"answer": "3", "votes": ["3", "3"]}])
    finally:
        tracker.finish()
    assert list(tmp_path.glob("wandb/offline-run-*/files/media/table/predictions/x_*.table.json"))
