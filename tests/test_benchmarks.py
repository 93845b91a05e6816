"""The benchmark report: goals read from the results JSON, marked met or not, skipped sections shown."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_runner():
    spec = importlib.util.spec_from_file_location("s2d_benchmarks", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_marks_goals_and_skipped_sections():
    bench = load_runner()
    results = {"machine": {"cpu": "test cpu", "cores": 2, "memory_gib": 24.0, "torch": "x", "torch_threads": 2},
               "self_consistency": {"n1_seconds": 1.0, "n4_seconds": 2.0, "n8_seconds": 4.0, "inputs": 8,
                                    "n8_over_n1_time": 4.0},
               "cache": {"first_seconds": 10.0, "rerun_seconds": 0.1, "rerun_over_first_time": 0.01}}
    lines = bench.table(results).splitlines()
    row = {line[:36].strip(): line for line in lines}
    assert row["wall time N=8 / N=1"].endswith("NO")
    assert row["generate-stage rerun / first run"].endswith("yes")
    assert "skipped" in row["s2d generation vs sequential loop"]
    assert bench.lookup(results, "cache.rerun_over_first_time") == 0.01
    assert bench.lookup(results, "generation.speedup_vs_sequential") is None


def test_committed_results_carry_the_required_keys():
    bench = load_runner()
    results = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    for key, *_ in bench.GOALS:
        assert isinstance(bench.lookup(results, key), float), key
    assert results["machine"]["cores"] >= 1
    # the side-by-side section: hf loop and the real vLLM engine, greedy and N=4 at batch 1, 32 and 128
    v = results["vllm"]
    cells = {f"{m}_b{b}" for m in ("greedy", "n4") for b in (1, 32, 128)}
    assert set(v["vllm_over_hf"]) == cells and all(v["vllm_over_hf"][k] > 0 for k in cells)
    assert v["engine_start_seconds"] > 0 and v["smoke_run"]["seconds"] > 0


def test_every_section_runs_at_toy_sizes(tiny_model_dir, tmp_path):
    """`benchmarks/run.py --tiny` on the tiny model: every section runs (the vllm one against the strict
    stand-in, so it runs where vllm is not installed too) and the table prints, so a refactor that breaks a
    section fails here rather than at the next measurement."""
    import os
    import subprocess
    import sys

    out = tmp_path / "latest.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "assets" / "fake_vllm"), str(ROOT)])
    env["FAKE_VLLM_GPU_DIR"] = str(tmp_path / "gpu")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tiny",
                           f"--set=model.name_or_path={tiny_model_dir}", "--set=paths.cache_dir=" + str(tmp_path / "c"),
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    bench = load_runner()
    assert set(bench.SECTIONS) <= set(results) and results["sizes"] == "tiny"
    for key, *_ in bench.GOALS:
        assert isinstance(bench.lookup(results, key), float), key
    v = results["vllm"]
    assert set(v["hf"]) == set(v["vllm"]) == {"greedy_b1", "n4_b1", "greedy_b2", "n4_b2"}
    assert all(v["hf"][k]["tokens"] > 0 and v["vllm"][k]["tokens"] > 0 for k in v["hf"])
    assert v["engine_start_seconds"] > 0
    assert "s2d hf loop vs vLLM engine" in proc.stdout
