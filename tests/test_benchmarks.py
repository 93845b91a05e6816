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
