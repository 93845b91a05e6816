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
    cmd = [sys.executable, "-m", "s2d.run", "-m", "experiment=sweep/tiny", "model=smollm2-135m",
           f"model.name_or_path={tiny_model_dir}",
           "target=full_response", "filter=none", "backend.progress=false", "train.trainer.enable_progress_bar=false",
           f"hydra.sweep.dir={out}", f"paths.cache_dir={out / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow  # a real 4-cell multirun in a subprocess (minutes)
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


@pytest.mark.slow  # a real 4-cell multirun in a subprocess (minutes)
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


@pytest.mark.slow  # a real 4-cell multirun in a subprocess (minutes)
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


# ---- intervals, paired tests and labels, on hand-made records (no model) -----------------------------------

def fake_run(root, name, method, task, systems):
    """A finished run's run.json + metrics.json; `systems`: {system: (right, n, tokens)}."""
    from s2d.artifacts import write_json
    from s2d.stats import wilson

    metrics = {"filter/seen": 10, "filter/yield": 1.0}
    for s, (k, n, tokens) in systems.items():
        low, high = wilson(k, n)
        metrics.update({f"{s}/accuracy": k / n, f"{s}/accuracy_ci_low": low, f"{s}/accuracy_ci_high": high,
                        f"{s}/n": n, f"{s}/tokens_per_input": tokens})
    if "distilled" in systems and "system1" in systems:
        metrics.update({"paired/distilled_vs_system1/b": 6, "paired/distilled_vs_system1/c": 0,
                        "paired/distilled_vs_system1/n": 40, "paired/distilled_vs_system1/p_value": 0.03125})
    write_json(root / name / "run.json", {"method": method, "task": task, "filter": "none", "model": "m",
                                          "target": "answer", "distill_from": "method", "stages": {}})
    write_json(root / name / "metrics.json", metrics)


def test_report_shows_intervals_n_and_paired_tests(tmp_path):
    fake_run(tmp_path, "0", "system1", "coin_flip", {"system1": (27, 40, 5.0), "distilled": (27, 40, 5.0)})
    fake_run(tmp_path, "1", "rar2", "coin_flip", {"system1": (27, 40, 5.0), "system2": (20, 40, 80.0),
                                                   "distilled": (33, 40, 5.0)})
    res = report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| System 1 |"))
    assert "67.5% [52.0, 79.9] (n=40)" in row
    assert "| Distilled rar2 | 82.5% [68.0, 91.3] (n=40) | 5.0 |" in md
    assert "Wilson 95%" in md
    assert "## Paired tests on the same eval items" in md
    assert "| coin_flip | rar2 | none | 10 | distilled vs system1 | 82.5% vs 67.5% | 6 | 0 | 40 | 0.0312 |" in md
    assert len(res["paired"]) == 2
    pts = {p["row"]: p for p in res["points"]}
    assert (pts["System 2: rar2"]["ci_low"], pts["System 2: rar2"]["n"]) == (pytest.approx(0.351993, abs=1e-5), 40)  # Wilson(20, 40)


def test_report_intervals_for_runs_recorded_before_intervals(tmp_path):
    from s2d.artifacts import write_json
    from s2d.report import interval

    assert interval({"system1/accuracy": 0.5, "system1/n": 10}, "system1") == pytest.approx((0.236590, 0.763410),
                                                                                           abs=1e-5)
    assert interval({}, "distilled") == (None, None)
    fake_run(tmp_path, "0", "rar2", "coin_flip", {"system1": (5, 10, 3.0)})
    metrics = json.loads((tmp_path / "0" / "metrics.json").read_text())
    write_json(tmp_path / "0" / "metrics.json", {k: v for k, v in metrics.items() if "_ci_" not in k})
    assert "50.0% [23.7, 76.3] (n=10)" in report(tmp_path)["markdown"]


def test_labels_of_coinciding_points_do_not_overlap():
    from s2d.plots import LABEL_SIZE, label_offsets

    texts = ["Distilled rar2", "Distill System 1", "System 1", "System 2: rar2"]
    anchors = [(100.0, 200.0), (100.0, 200.0), (101.0, 201.0), (300.0, 50.0)]
    offsets = label_offsets(anchors, texts)
    assert offsets[0] != offsets[1] and len({o for o in offsets[:3]}) == 3
    assert offsets[3] == offsets[0]  # a point far from the others keeps the default place
    line = LABEL_SIZE * 1.3
    boxes = [(x + dx, y + dy, x + dx + 0.6 * LABEL_SIZE * len(t), y + dy + line)
             for (x, y), (dx, dy), t in zip(anchors, offsets, texts)]
    for i in range(len(boxes)):
        for j in range(i):
            a, b = boxes[i], boxes[j]
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (texts[i], texts[j])


def test_plot_draws_error_bars_and_separate_labels(tmp_path, monkeypatch):
    import matplotlib.axes

    from s2d import report as report_module

    fake_run(tmp_path, "0", "system1", "coin_flip", {"system1": (27, 40, 5.0), "distilled": (27, 40, 5.0)})
    fake_run(tmp_path, "1", "rar2", "coin_flip", {"system1": (27, 40, 5.0), "distilled": (27, 40, 5.0)})
    bars, labels = [], []
    real_errorbar, real_annotate = matplotlib.axes.Axes.errorbar, matplotlib.axes.Axes.annotate
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda self, *a, **k: bars.append((a, k)) or real_errorbar(self, *a, **k))
    monkeypatch.setattr(matplotlib.axes.Axes, "annotate",
                        lambda self, text, *a, **k: labels.append((text, k["xytext"])) or real_annotate(self, text, *a, **k))
    report_module.report(tmp_path)
    # one bar per point: 27/40 → Wilson [52.0, 79.9] → 15.5 below and 12.4 above 67.5
    assert len(bars) == 3
    below, above = bars[0][1]["yerr"]
    assert (below[0], above[0]) == pytest.approx((67.5 - 52.0175, 79.9157 - 67.5), abs=1e-3)
    offsets = dict(labels)
    assert offsets["Distilled rar2"] != offsets["Distill System 1"]  # the two distilled points coincide


def test_console_table_intervals_groups_and_paired(tmp_path):
    from s2d.artifacts import write_jsonl
    from s2d.scoring import accuracy_figures
    from s2d.stages.report import groups, paired, table

    rows = [{"correct": i < 27, "tokens": 2} for i in range(40)]
    metrics = {**accuracy_figures(rows, "system1"), **accuracy_figures(rows[:10], "system1", "_biased")}
    assert metrics["system1/accuracy_biased_ci_low"] == pytest.approx(0.722467, abs=1e-5)  # Wilson(10, 10)
    assert groups(metrics) == ["biased"]
    right = {"system1": [1, 1, 0, 0, 1, 0], "distilled": [1, 1, 1, 1, 1, 1], "system2": [0, 1, 1, 1, 1, 1]}
    dirs = {}
    for s, marks in right.items():
        dirs[s] = tmp_path / s
        write_jsonl(dirs[s] / "predictions.jsonl", [{"example_id": f"e{i}", "correct": bool(c)} for i, c in enumerate(marks)])
    tests = paired(dirs)
    assert (tests["paired/distilled_vs_system1/b"], tests["paired/distilled_vs_system1/c"]) == (3, 0)
    assert tests["paired/distilled_vs_system1/p_value"] == 0.25
    assert (tests["paired/distilled_vs_system2/b"], tests["paired/distilled_vs_system2/n"]) == (1, 6)
    assert (tests["paired/system2_vs_system1/b"], tests["paired/system2_vs_system1/c"]) == (3, 1)
    text = table({**metrics, **tests}, {"method": "rar2", "task": "t", "filter": "none"})
    line = next(line for line in text.splitlines() if line.startswith("system1"))
    assert line.split()[:7] == ["system1", "40", "0.675", "[0.52,", "0.80]", "1.000", "[0.72,"]
    assert "Wilson 95%" in text
    assert "distilled vs system1: 3 right only by distilled, 0 only by system1, of 6; p = 0.25" in text


def test_wandb_report_tables_carry_the_intervals(tmp_path):
    from s2d.tracking import WandbTracker

    fake_run(tmp_path, "0", "rar2", "coin_flip", {"system1": (27, 40, 5.0), "system2": (20, 40, 80.0),
                                                   "distilled": (33, 40, 5.0)})
    tracker = WandbTracker(mode="offline")
    tracker.start({}, tmp_path / "wb", job_type="report")
    try:
        report(tmp_path, tracker)
    finally:
        tracker.finish()
    media = tmp_path / "wb"
    scatter = json.loads(next(media.glob("wandb/offline-run-*/files/media/table/report/coin_flip_*.table.json")).read_text())
    assert {"ci_low", "ci_high", "n"} <= set(scatter["columns"])
    row = dict(zip(scatter["columns"], next(r for r in scatter["data"] if r[scatter["columns"].index("system")] == "system2")))
    assert row["ci_low"] == pytest.approx(0.351993, abs=1e-5) and row["n"] == 40
    paired_table = json.loads(next(media.glob("wandb/offline-run-*/files/media/table/report/paired_*.table.json")).read_text())
    assert paired_table["data"][0][paired_table["columns"].index("p_value")] == 0.03125


def test_judge_agreement_gets_an_interval_over_both_orders():
    from s2d.scoring import score
    from s2d.tasks.judge import pair_examples, pair_metrics
    from s2d.types import Call, Trace

    class Judge:
        def score(self, answer, ex):
            return answer == ex.gold

        def extra_metrics(self, examples, answers, system):
            return pair_metrics(examples, answers, system)

    examples, traces = [], []
    for i, (gold, v_ab, v_ba) in enumerate([("A", "A", "B"), ("A", "A", "A"), ("B", "A", "B"), ("A", "A", "B")]):
        ab, ba = pair_examples(f"p{i}", "q", "x", "y", gold, None, 0)
        examples += [ab, ba]
        traces += [Trace(ab.id, 0, [Call("judge", "p", v_ab, 1, 1)], v_ab, v_ab),
                   Trace(ba.id, 0, [Call("judge", "p", v_ba, 1, 1)], v_ba, v_ba)]
    _, m = score(examples, traces, Judge(), "system1")
    # the swapped order's gold is swapped: right in p0 twice, p1 once, p2 never, p3 twice → 5 of 8 verdicts
    assert m["system1/agreement"] == 0.625 and m["system1/agreement_n"] == 8
    assert (m["system1/agreement_ci_low"], m["system1/agreement_ci_high"]) == pytest.approx((0.305738, 0.863158), abs=1e-5)
